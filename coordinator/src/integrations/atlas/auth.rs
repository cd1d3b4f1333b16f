//! Who ripcord is to Atlas: a service account (OAuth 2.0 client
//! credentials; the Bearer token is cached and fetched again before it
//! expires, since a restore outlives one token) or a programmatic API key
//! (HTTP Digest, see `digest`). Secrets are read from files, kept in
//! [`Secret`] (whose `Debug` hides them) and scrubbed from every message.

use super::Error;
use super::client::{self, Answer, Deadline, Retry};
use super::config::AtlasAuth;
use super::digest::{self, Challenge};
use crate::credentials::Secret;
use base64::Engine as _;
use ripcord_engine::duration::Human;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn read_secret(what: &'static str, path: &Path) -> Result<Secret, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::SecretFile { what, path: path.into(), source })?;
    let s = text.trim();
    if s.is_empty() {
        return Err(Error::EmptySecret { what, path: path.into() });
    }
    Ok(Secret::new(s))
}

/// A service-account access token and when to fetch the next one.
pub(super) struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// The credentials and their state: the cached token or the last Digest
/// challenge. Shared by every clone of the client.
pub(super) enum Auth {
    Bearer {
        client_id: String,
        secret: Secret,
        secret_file: PathBuf,
        token_url: reqwest::Url,
        /// Held across the token request so concurrent calls fetch one token.
        token: tokio::sync::Mutex<Option<Token>>,
        /// The current token, for scrubbing messages.
        current: Mutex<Option<Secret>>,
    },
    Digest {
        user: String,
        key: Secret,
        key_file: PathBuf,
        challenge: Mutex<Option<Challenge>>,
    },
}

/// What [`Auth::authorize`] put on a request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent {
    /// An `Authorization` header (a Digest key has none before the first challenge).
    credentials: bool,
    /// A token fetched for this request, not a cached one.
    fresh_token: bool,
}

impl Auth {
    /// Reads the secret file.
    pub(super) fn new(config: &AtlasAuth, token_url: reqwest::Url) -> Result<Self, Error> {
        Ok(match config {
            AtlasAuth::ServiceAccount { client_id, client_secret_file } => Auth::Bearer {
                client_id: client_id.clone(),
                secret: read_secret("client secret", client_secret_file)?,
                secret_file: client_secret_file.clone(),
                token_url,
                token: tokio::sync::Mutex::new(None),
                current: Mutex::new(None),
            },
            AtlasAuth::ApiKey { public_key, private_key_file } => Auth::Digest {
                user: public_key.clone(),
                key: read_secret("private key", private_key_file)?,
                key_file: private_key_file.clone(),
                challenge: Mutex::new(None),
            },
        })
    }

    /// What to check when Atlas rejects the credentials.
    pub(super) fn hint(&self) -> String {
        match self {
            Auth::Bearer { client_id, secret_file, .. } => format!(
                "check the service account client id \"{client_id}\" and the client secret in {}",
                secret_file.display()
            ),
            Auth::Digest { user, key_file, .. } => {
                format!("check the API key \"{user}\" and the private key in {}", key_file.display())
            }
        }
    }

    /// The credentials' name, never their secret.
    pub(super) fn who(&self) -> String {
        match self {
            Auth::Bearer { client_id, .. } => format!("service account \"{client_id}\""),
            Auth::Digest { user, .. } => format!("API key \"{user}\""),
        }
    }

    /// Replaces every secret this client knows with "••••".
    pub(super) fn scrub(&self, mut s: String) -> String {
        let mut secrets = Vec::new();
        match self {
            Auth::Bearer { secret, current, .. } => {
                secrets.push(secret.expose().to_string());
                if let Some(t) = current.lock().ok().and_then(|c| c.clone()) {
                    secrets.push(t.expose().to_string());
                }
            }
            Auth::Digest { key, .. } => secrets.push(key.expose().to_string()),
        }
        for secret in secrets.iter().filter(|x| x.len() >= 4) {
            s = s.replace(secret.as_str(), "••••");
        }
        s
    }

    /// Adds the `Authorization` header: a Bearer token (fetched when the
    /// cached one is close to expiring) or the answer to the last Digest
    /// challenge (none before the first).
    pub(super) async fn authorize(
        &self,
        req: &mut reqwest::Request,
        http: &reqwest::Client,
        retry: &Retry,
        d: Deadline,
    ) -> Result<Sent, Error> {
        let (header, fresh_token) = match self {
            Auth::Bearer { .. } => {
                let (token, fresh) = self.bearer(http, retry, d).await?;
                (Some(format!("Bearer {}", token.expose())), fresh)
            }
            Auth::Digest { user, key, challenge, .. } => {
                let mut guard = challenge.lock().map_err(|_| Error::Refused("digest state poisoned".into()))?;
                let header = guard.as_mut().map(|ch| {
                    ch.nc += 1;
                    let mut uri = req.url().path().to_string();
                    if let Some(q) = req.url().query() {
                        uri.push('?');
                        uri.push_str(q);
                    }
                    let cnonce = format!("{:016x}", fastrand::u64(..));
                    digest::authorization(user, key.expose(), ch, req.method().as_str(), &uri, &cnonce)
                });
                (header, false)
            }
        };
        let Some(header) = header else {
            return Ok(Sent { credentials: false, fresh_token });
        };
        let mut v = reqwest::header::HeaderValue::from_str(&header)
            .map_err(|_| Error::Refused(format!("the {} is not a valid header value", self.who())))?;
        v.set_sensitive(true);
        req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
        Ok(Sent { credentials: true, fresh_token })
    }

    /// After a 401 to a request that carried `sent`: whether to send it
    /// again, once (`already` says it was). A Digest key answers a first or
    /// stale challenge; a service account fetches a new token when the
    /// server no longer takes the cached one.
    pub(super) async fn again_after_401(
        &self,
        headers: &reqwest::header::HeaderMap,
        sent: Sent,
        already: bool,
    ) -> bool {
        match self {
            Auth::Digest { challenge, .. } => {
                let Some(ch) = digest::challenge(headers) else { return false };
                let stale = ch.stale;
                if let Ok(mut c) = challenge.lock() {
                    *c = Some(ch);
                }
                !already && (!sent.credentials || stale)
            }
            Auth::Bearer { token, .. } => {
                if already || sent.fresh_token {
                    return false;
                }
                *token.lock().await = None;
                true
            }
        }
    }

    /// The cached service-account token, or a new one when it is close to
    /// expiring (the last minute, or the second half of a short lifetime).
    /// The flag says the token was fetched just now.
    async fn bearer(&self, http: &reqwest::Client, retry: &Retry, d: Deadline) -> Result<(Secret, bool), Error> {
        let Auth::Bearer { token, current, .. } = self else {
            return Err(Error::Refused("not a service account".into()));
        };
        let mut guard = token.lock().await;
        if let Some(t) = &*guard
            && Instant::now() < t.refresh_at
        {
            return Ok((t.value.clone(), false));
        }
        let (value, lifetime) = self.fetch_token(http, retry, d).await?;
        let margin = (lifetime / 2).min(Duration::from_secs(60));
        debug!(expires_in = %Human(lifetime), "atlas access token obtained");
        *guard = Some(Token { value: value.clone(), refresh_at: Instant::now() + lifetime - margin });
        if let Ok(mut c) = current.lock() {
            *c = Some(value.clone());
        }
        Ok((value, true))
    }

    /// A new token and its lifetime, retried like an idempotent call.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        retry: &Retry,
        d: Deadline,
    ) -> Result<(Secret, Duration), Error> {
        let Auth::Bearer { client_id, secret, token_url, .. } = self else {
            return Err(Error::Refused("not a service account".into()));
        };
        let what = format!("POST {}", token_url.path());
        let basic = base64_encode(format!("{client_id}:{}", secret.expose()).as_bytes());
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| Error::Refused("the client id is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut failures = 0u32;
        loop {
            let req = http
                .post(token_url.clone())
                .header(reqwest::header::AUTHORIZATION, auth.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .build()
                .map_err(|e| Error::Protocol {
                    what: what.clone(),
                    reason: format!("cannot build the request: {e}"),
                })?;
            let err = match client::send(http, req, &what).await {
                Ok(a) if a.success() => return token_of(&a, &what),
                Ok(a) => self.token_error(&a),
                Err(e) => e,
            };
            match retry.wait(failures, err.retry_after(), d) {
                Some(delay) if err.retryable() => {
                    warn!(error = %self.scrub(err.to_string()), retry_in = %Human(delay),
                        "atlas token request failed, retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// A refused token request: the credentials (400, 401, 403) or a
    /// server error.
    fn token_error(&self, a: &Answer) -> Error {
        let (code, detail) = oauth_error(&a.text);
        if matches!(a.status, 400 | 401 | 403) {
            return Error::Credentials {
                status: a.status,
                hint: client::credentials_hint(self.hint(), &code, &detail),
            };
        }
        Error::Api {
            status: a.status,
            code: if code.is_empty() { format!("HTTP_{}", a.status) } else { code },
            detail,
            retry_after: client::retry_after(&a.headers),
        }
    }
}

/// The token and its lifetime (`expires_in`, one hour when absent).
fn token_of(a: &Answer, what: &str) -> Result<(Secret, Duration), Error> {
    let v: J = serde_json::from_str(&a.text)
        .map_err(|e| Error::Protocol { what: what.to_string(), reason: format!("token answer is not JSON: {e}") })?;
    let token = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Protocol { what: what.to_string(), reason: "no access_token in the answer".into() })?;
    let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600).max(1));
    Ok((Secret::new(token), lifetime))
}

/// `error` and `error_description` of an OAuth error body, or Atlas's shape.
fn oauth_error(text: &str) -> (String, String) {
    let v: J = serde_json::from_str(text).unwrap_or(J::Null);
    if v["errorCode"].is_string() {
        return client::atlas_error(text);
    }
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (s("error"), s("error_description"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(••••)");
    }

    #[test]
    fn basic_credentials_are_standard_base64() {
        // RFC 7617 section 2.
        assert_eq!(base64_encode(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn oauth_errors_are_read_in_either_shape() {
        let oauth = r#"{"error": "invalid_client", "error_description": "bad secret"}"#;
        assert_eq!(oauth_error(oauth), ("invalid_client".into(), "bad secret".into()));
        let atlas = r#"{"errorCode": "UNAUTHORIZED", "detail": "no"}"#;
        assert_eq!(oauth_error(atlas), ("UNAUTHORIZED".into(), "no".into()));
    }

    #[test]
    fn scrub_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "  s3cr3t-key\n").unwrap();
        let auth = Auth::new(
            &AtlasAuth::ApiKey { public_key: "pub".into(), private_key_file: file },
            reqwest::Url::parse("http://127.0.0.1/token").unwrap(),
        )
        .unwrap();
        assert_eq!(auth.scrub("bad key s3cr3t-key here".into()), "bad key •••• here");
        assert_eq!(auth.who(), "API key \"pub\"");
    }
}
