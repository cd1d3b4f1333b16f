//! `atlas.*` actions: a client for the MongoDB Atlas Admin API v2.
//!
//! Everything ripcord asks Atlas is in [`Endpoint`], one table with the
//! resource version each call speaks (`Accept: application/vnd.atlas.<date>+json`),
//! because Atlas removes a version a year after a newer one appears.
//!
//! Auth is a service account (OAuth client credentials; the token is cached
//! and refreshed before it expires, since a restore outlives one token) or a
//! programmatic API key (HTTP Digest, MD5, implemented here). Secrets are read
//! from files, kept in [`Secret`] (whose `Debug` hides them) and scrubbed from
//! every message this module produces.
//!
//! Calls are retried with exponential backoff and jitter on 429 (after
//! `Retry-After` when Atlas sends it), 5xx and network errors. A call that
//! creates something (cluster, restore job, snapshot) is never blindly sent
//! twice: before every (re)try the action looks for what an earlier try or an
//! earlier attempt of the same step created, so a coordinator restart never
//! starts a second restore.
//!
//! Reference: `shared/reference/atlas-admin-api.md`.

use super::Outcome;
use crate::credentials::{Credentials, percent_encode};
use ripcord_engine::actions as args;
use ripcord_engine::duration::{self, Human};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as J, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The `[atlas]` section of the coordinator configuration.
///
/// ```toml
/// [atlas]
/// poll_interval = "10s"
///
/// [atlas.auth]
/// client_id = "mdb_sa_id_0123456789abcdef01234567"
/// client_secret_file = "/etc/ripcord/atlas-client-secret"
/// ```
///
/// or, with a programmatic API key:
///
/// ```toml
/// [atlas.auth]
/// public_key = "abcdefgh"
/// private_key_file = "/etc/ripcord/atlas-private-key"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasConfig {
    /// Base URL of the Admin API v2. Default "https://cloud.mongodb.com/api/atlas/v2".
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// OAuth token endpoint used by service accounts. Default
    /// "https://cloud.mongodb.com/api/oauth/token".
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// How ripcord authenticates: a service account (`client_id` and
    /// `client_secret_file`, recommended) or a programmatic API key
    /// (`public_key` and `private_key_file`). Secrets are only ever read from
    /// files, never written inline.
    pub auth: AtlasAuth,
    /// First wait between two polls of a cluster, restore job or snapshot;
    /// doubles on every poll up to `max_poll_interval`, with jitter. Default "10s".
    #[serde(default = "default_poll_interval", with = "duration::serde_str")]
    pub poll_interval: Duration,
    /// Longest wait between two polls. Default "60s".
    #[serde(default = "default_max_poll_interval", with = "duration::serde_str")]
    pub max_poll_interval: Duration,
}

/// Atlas credentials: where they are, never what they are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAuth")]
pub enum AtlasAuth {
    /// A service account: OAuth 2.0 client credentials, Bearer tokens.
    ServiceAccount { client_id: String, client_secret_file: PathBuf },
    /// A programmatic API key: HTTP Digest with the public key as user name.
    ApiKey { public_key: String, private_key_file: PathBuf },
}

/// `[atlas.auth]` as written; [`AtlasAuth`] is what it must mean.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    /// Service account client id (`mdb_sa_id_…`).
    #[serde(default)]
    client_id: Option<String>,
    /// File holding the service account's client secret.
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    /// Programmatic API key: the public key (the Digest user name).
    #[serde(default)]
    public_key: Option<String>,
    /// File holding the API key's private key (the Digest password).
    #[serde(default)]
    private_key_file: Option<PathBuf>,
}

impl TryFrom<RawAuth> for AtlasAuth {
    type Error = String;

    fn try_from(r: RawAuth) -> Result<Self, String> {
        match (r.client_id, r.client_secret_file, r.public_key, r.private_key_file) {
            (Some(client_id), Some(client_secret_file), None, None) => {
                Ok(AtlasAuth::ServiceAccount { client_id, client_secret_file })
            }
            (None, None, Some(public_key), Some(private_key_file)) => {
                Ok(AtlasAuth::ApiKey { public_key, private_key_file })
            }
            _ => Err("atlas auth needs either client_id and client_secret_file (a service account) \
                 or public_key and private_key_file (a programmatic API key), not a mix"
                .to_string()),
        }
    }
}

fn default_base_url() -> String {
    "https://cloud.mongodb.com/api/atlas/v2".into()
}
fn default_token_url() -> String {
    "https://cloud.mongodb.com/api/oauth/token".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_poll_interval() -> Duration {
    Duration::from_secs(60)
}

impl AtlasConfig {
    /// Resolves relative secret file paths against `base` (the directory of
    /// the config file).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut self.auth {
            AtlasAuth::ServiceAccount { client_secret_file, .. } => resolve(client_secret_file),
            AtlasAuth::ApiKey { private_key_file, .. } => resolve(private_key_file),
        }
    }
}

// ---------------------------------------------------------------------------
// The endpoint table
// ---------------------------------------------------------------------------

/// Every Admin API call ripcord makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListSnapshots,
    TakeSnapshot,
    StartRestore,
    GetRestoreJob,
    ListRestoreJobs,
    BackupSchedule,
    CreateCluster,
    GetCluster,
    DeleteCluster,
}

impl Endpoint {
    /// Method, path template and resource version: the one table to review
    /// when Atlas announces a version's sunset.
    pub const fn spec(self) -> (&'static str, &'static str, &'static str) {
        use Endpoint::*;
        match self {
            ListSnapshots => ("GET", "/groups/{groupId}/clusters/{clusterName}/backup/snapshots", "2023-01-01"),
            TakeSnapshot => ("POST", "/groups/{groupId}/clusters/{clusterName}/backup/snapshots", "2023-01-01"),
            StartRestore => ("POST", "/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs", "2023-01-01"),
            GetRestoreJob => ("GET", "/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs/{id}", "2023-01-01"),
            ListRestoreJobs => ("GET", "/groups/{groupId}/clusters/{clusterName}/backup/restoreJobs", "2023-01-01"),
            BackupSchedule => ("GET", "/groups/{groupId}/clusters/{clusterName}/backup/schedule", "2024-08-05"),
            CreateCluster => ("POST", "/groups/{groupId}/clusters", "2024-10-23"),
            GetCluster => ("GET", "/groups/{groupId}/clusters/{clusterName}", "2024-08-05"),
            DeleteCluster => ("DELETE", "/groups/{groupId}/clusters/{clusterName}", "2023-02-01"),
        }
    }

    pub const ALL: [Endpoint; 9] = [
        Endpoint::ListSnapshots,
        Endpoint::TakeSnapshot,
        Endpoint::StartRestore,
        Endpoint::GetRestoreJob,
        Endpoint::ListRestoreJobs,
        Endpoint::BackupSchedule,
        Endpoint::CreateCluster,
        Endpoint::GetCluster,
        Endpoint::DeleteCluster,
    ];

    pub fn method(self) -> reqwest::Method {
        match self.spec().0 {
            "POST" => reqwest::Method::POST,
            "DELETE" => reqwest::Method::DELETE,
            _ => reqwest::Method::GET,
        }
    }

    pub fn version(self) -> &'static str {
        self.spec().2
    }

    /// `application/vnd.atlas.<version>+json`, for `Accept` and `Content-Type`.
    pub fn media_type(self) -> String {
        format!("application/vnd.atlas.{}+json", self.version())
    }

    /// The path with the `{…}` placeholders filled in order. The parts are
    /// validated before (see `check_name`), so they need no escaping.
    fn path(self, parts: &[&str]) -> String {
        let mut out = String::new();
        let mut parts = parts.iter();
        let mut rest = self.spec().1;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
            out.push_str(parts.next().copied().unwrap_or_default());
            rest = &rest[close..];
        }
        out.push_str(rest);
        out
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What can go wrong. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the atlas {what} from {}: {source}", path.display())]
    SecretFile { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the atlas {what} file {} is empty", path.display())]
    EmptySecret { what: &'static str, path: PathBuf },
    #[error("bad atlas {what} {url:?}: {reason}")]
    BadUrl { what: &'static str, url: String, reason: String },
    #[error("cannot build the atlas http client: {0}")]
    Client(String),
    /// Atlas answered with an error.
    #[error("atlas: {code}: {detail} (HTTP {status})")]
    Api { status: u16, code: String, detail: String, retry_after: Option<Duration> },
    /// 401/403: the credentials are wrong, lack a role, or the IP is not allowed.
    #[error("atlas rejected the credentials (HTTP {status}): {hint}")]
    Credentials { status: u16, hint: String },
    /// No answer (connection, TLS, timeout).
    #[error("atlas: no answer to {what}: {reason}")]
    Transport { what: String, reason: String },
    /// An answer ripcord cannot read.
    #[error("atlas: unexpected answer to {what}: {reason}")]
    Protocol { what: String, reason: String },
    /// Ripcord refuses (bad arguments, unsafe request, failed job).
    #[error("atlas: {0}")]
    Refused(String),
    /// The step's timeout ran out.
    #[error("atlas: {0}")]
    Timeout(String),
}

impl Error {
    /// Worth trying again: rate limited, server error, no answer.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Secrets, tokens, digest challenges
// ---------------------------------------------------------------------------

pub use crate::credentials::Secret;

fn read_secret(what: &'static str, path: &Path) -> Result<Secret, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::SecretFile { what, path: path.into(), source })?;
    let s = text.trim();
    if s.is_empty() {
        return Err(Error::EmptySecret { what, path: path.into() });
    }
    Ok(Secret::new(s))
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    qop: Option<String>,
    algorithm: Option<String>,
    stale: bool,
    nc: u32,
}

enum Auth {
    Bearer {
        client_id: String,
        secret: Secret,
        secret_file: PathBuf,
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

impl Auth {
    fn hint(&self) -> String {
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

    fn who(&self) -> String {
        match self {
            Auth::Bearer { client_id, .. } => format!("service account \"{client_id}\""),
            Auth::Digest { user, .. } => format!("API key \"{user}\""),
        }
    }
}

// ---------------------------------------------------------------------------
// Retries and polling
// ---------------------------------------------------------------------------

/// How a failed call is retried: 429 (after `Retry-After` when Atlas sends
/// it), 5xx and network errors, `attempts` tries in all, waiting `base`
/// doubling up to `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self { attempts: 6, base: Duration::from_secs(1), max: Duration::from_secs(30) }
    }
}

impl Retry {
    /// The wait after the `n`th failure (0-based): half fixed, half random.
    pub fn delay(&self, n: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << n.min(16)).min(self.max);
        let half = exp / 2;
        half + jitter(exp - half)
    }
}

fn jitter(up_to: Duration) -> Duration {
    let ms = u64::try_from(up_to.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

/// How long after the step's timeout a call still in flight is abandoned.
const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Retention of snapshots taken by `atlas.take_snapshot`.
const SNAPSHOT_RETENTION_DAYS: u32 = 7;

type Deadline = Option<Instant>;

fn fits(deadline: Deadline, delay: Duration) -> bool {
    deadline.is_none_or(|d| Instant::now() + delay < d)
}

/// Polling with backoff: `poll_interval` doubling to `max_poll_interval`,
/// ±20% jitter, never sleeping past the deadline.
struct Poll {
    next: Duration,
    max: Duration,
    started: Instant,
    deadline: Deadline,
    polls: u32,
}

impl Poll {
    fn new(first: Duration, max: Duration, deadline: Deadline) -> Self {
        Self { next: first, max: max.max(first), started: Instant::now(), deadline, polls: 0 }
    }

    /// Sleeps before the next poll; false when the deadline has passed.
    async fn sleep(&mut self) -> bool {
        self.polls += 1;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let spread = base / 5;
        let mut wait = base - spread + jitter(spread * 2);
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            wait = wait.min(left);
        }
        tokio::time::sleep(wait).await;
        true
    }

    fn waited(&self) -> String {
        Human(Duration::from_millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))).to_string()
    }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// An Atlas Admin API client and the `atlas.*` actions. Cheap to clone: the
/// token cache and digest state are shared.
#[derive(Clone)]
pub struct Atlas {
    http: reqwest::Client,
    base: String,
    token_url: reqwest::Url,
    auth: Arc<Auth>,
    poll: Duration,
    max_poll: Duration,
    retry: Retry,
    /// Endpoints whose deprecation was already logged.
    warned: Arc<Mutex<BTreeSet<&'static str>>>,
    credentials: Credentials,
}

impl fmt::Debug for Atlas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Atlas").field("base", &self.base).field("auth", &self.auth.who()).finish_non_exhaustive()
    }
}

/// One call's answer.
struct Reply {
    json: J,
}

impl Atlas {
    /// Reads the secret file and builds the client. The rustls crypto
    /// provider must be installed first (`ripcord_pki::tls::install_crypto_provider`).
    pub fn new(config: &AtlasConfig) -> Result<Self, Error> {
        let base = config.base_url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| Error::BadUrl {
            what: "base_url",
            url: config.base_url.clone(),
            reason: e.to_string(),
        })?;
        let token_url = reqwest::Url::parse(&config.token_url).map_err(|e| Error::BadUrl {
            what: "token_url",
            url: config.token_url.clone(),
            reason: e.to_string(),
        })?;
        let auth = match &config.auth {
            AtlasAuth::ServiceAccount { client_id, client_secret_file } => Auth::Bearer {
                client_id: client_id.clone(),
                secret: read_secret("client secret", client_secret_file)?,
                secret_file: client_secret_file.clone(),
                token: tokio::sync::Mutex::new(None),
                current: Mutex::new(None),
            },
            AtlasAuth::ApiKey { public_key, private_key_file } => Auth::Digest {
                user: public_key.clone(),
                key: read_secret("private key", private_key_file)?,
                key_file: private_key_file.clone(),
                challenge: Mutex::new(None),
            },
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ripcord/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token_url,
            auth: Arc::new(auth),
            poll: config.poll_interval,
            max_poll: config.max_poll_interval,
            retry: Retry::default(),
            warned: Arc::default(),
            credentials: Credentials::default(),
        })
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Where `atlas.connection_string` finds the database credentials it is
    /// given the name of.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Performs `action` with no time limit.
    pub async fn perform(&self, action: &str, args: &Value, key: &Key) -> Outcome {
        self.perform_with_timeout(action, args, key, None).await
    }

    /// Performs `action`, giving up after `timeout` (the step's `timeout`,
    /// `Request::timeout_ms`).
    pub async fn perform_with_timeout(
        &self,
        action: &str,
        args: &Value,
        key: &Key,
        timeout: Option<Duration>,
    ) -> Outcome {
        // Waits stop polling at the deadline and report what they waited
        // for; a hung request is cut off shortly after.
        let deadline = timeout.map(|t| Instant::now() + t);
        let work = self.dispatch(action, args, key, deadline);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t + BACKSTOP_GRACE, work)
                .await
                .unwrap_or_else(|_| Err(Error::Timeout(format!("{action} timed out after {}", Human(t))))),
            None => work.await,
        };
        match result {
            Ok(out) => Outcome::Succeeded(out),
            Err(e) => {
                let msg = self.scrub(e.to_string());
                warn!(key = %key, action, error = %msg, "atlas action failed");
                Outcome::Failed(msg)
            }
        }
    }

    async fn dispatch(
        &self,
        action: &str,
        args: &Value,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        match action {
            "atlas.create_cluster_like" => self.create_cluster_like(&parse(action, args)?, key, d).await,
            "atlas.wait_cluster" => self.wait_cluster(&parse(action, args)?, d).await,
            "atlas.pitr_restore" => self.pitr_restore(&parse(action, args)?, key, d).await,
            "atlas.snapshot_restore" => self.snapshot_restore(&parse(action, args)?, key, d).await,
            "atlas.wait_restore" => self.wait_restore(&parse(action, args)?, d).await,
            "atlas.connection_string" => self.connection_string(&parse(action, args)?, d).await,
            "atlas.take_snapshot" => self.take_snapshot(&parse(action, args)?, key, d).await,
            "atlas.delete_cluster" => self.delete_cluster(&parse(action, args)?, key, d).await,
            other => Err(Error::Refused(format!("unknown action {other}"))),
        }
    }

    /// Replaces every secret this client knows with "••••".
    fn scrub(&self, mut s: String) -> String {
        let mut secrets = Vec::new();
        match &*self.auth {
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

    // -- HTTP -----------------------------------------------------------------

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, Error> {
        let text = format!("{}{path}", self.base);
        let mut url = reqwest::Url::parse(&text).map_err(|e| Error::BadUrl {
            what: "request url",
            url: text.clone(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// One API call with auth, retries and Atlas's error shape.
    /// GET and DELETE are retried on 5xx and network errors; a POST only on
    /// 429 (a rate-limited request was not processed): its other failures go
    /// back to the action, which looks for what it created before retrying.
    async fn call(
        &self,
        ep: Endpoint,
        parts: &[&str],
        query: &[(&str, String)],
        body: Option<&J>,
        d: Deadline,
    ) -> Result<Reply, Error> {
        let method = ep.method();
        let idempotent = method != reqwest::Method::POST;
        let path = ep.path(parts);
        let what = format!("{method} {path}");
        let url = self.url(&path, query)?;
        let media = ep.media_type();
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut failures = 0u32;
        let mut auth_retried = false;
        let mut challenged = false;
        loop {
            let mut req = self.http.request(method.clone(), url.clone()).header(reqwest::header::ACCEPT, &media);
            if let Some(b) = &bytes {
                req = req.header(reqwest::header::CONTENT_TYPE, &media).body(b.clone());
            }
            let (req, sent_auth, fresh_token) = self.authorize(req, &method, &url, d).await?;
            let started = Instant::now();
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = Error::Transport { what: what.clone(), reason: reqwest_reason(&e) };
                    if idempotent && failures + 1 < self.retry.attempts {
                        let delay = self.retry.delay(failures);
                        if fits(d, delay) {
                            warn!(call = %what, error = %err, retry_in = %Human(delay), "atlas call failed, retrying");
                            failures += 1;
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            debug!(call = %what, status, ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0), "atlas call");
            if (200..300).contains(&status) {
                self.note_deprecation(ep, &headers);
                let json = if text.trim().is_empty() {
                    json!({})
                } else {
                    serde_json::from_str(&text)
                        .map_err(|e| Error::Protocol { what: what.clone(), reason: format!("not JSON: {e}") })?
                };
                return Ok(Reply { json });
            }
            if status == 401 {
                match &*self.auth {
                    Auth::Digest { challenge, .. } => {
                        if let Some(ch) = digest_challenge(&headers) {
                            let stale = ch.stale;
                            if let Ok(mut c) = challenge.lock() {
                                *c = Some(ch);
                            }
                            // First contact (no Authorization sent yet) or a
                            // stale nonce: answer the challenge once.
                            if !challenged && (!sent_auth || stale) {
                                challenged = true;
                                continue;
                            }
                        }
                    }
                    Auth::Bearer { token, .. } => {
                        // A cached token the server no longer takes: fetch a
                        // new one once.
                        if !auth_retried && !fresh_token {
                            auth_retried = true;
                            *token.lock().await = None;
                            continue;
                        }
                    }
                }
                let (code, detail) = atlas_error(&text);
                return Err(Error::Credentials { status, hint: credentials_hint(self.auth.hint(), &code, &detail) });
            }
            if status == 403 {
                let (code, detail) = atlas_error(&text);
                let hint = format!(
                    "check that the {} has a project role that allows {what} and that this coordinator's \
                     IP address is on the project's IP access list",
                    self.auth.who()
                );
                return Err(Error::Credentials { status, hint: credentials_hint(hint, &code, &detail) });
            }
            let (mut code, mut detail) = atlas_error(&text);
            if code.is_empty() {
                code = headers
                    .get("x-error-code")
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| format!("HTTP_{status}"), str::to_string);
            }
            if detail.is_empty() {
                detail = text.chars().take(200).collect();
            }
            if status == 406 || status == 410 {
                let why = if status == 406 { "is not accepted" } else { "is past its sunset date" };
                detail = format!(
                    "{detail}; API version {} for {} {} {why}: this version of ripcord needs an update",
                    ep.version(),
                    ep.spec().0,
                    ep.spec().1
                );
            }
            let retry_after = retry_after(&headers);
            let err = Error::Api { status, code, detail, retry_after };
            let again = status == 429 || (status >= 500 && idempotent);
            if again && failures + 1 < self.retry.attempts {
                let delay = retry_after.unwrap_or_else(|| self.retry.delay(failures));
                if fits(d, delay) {
                    warn!(call = %what, error = %err, retry_in = %Human(delay), "atlas call failed, retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            return Err(err);
        }
    }

    /// Adds the Authorization header. Returns the request, whether it carries
    /// credentials, and whether the token was fetched just now.
    async fn authorize(
        &self,
        req: reqwest::RequestBuilder,
        method: &reqwest::Method,
        url: &reqwest::Url,
        d: Deadline,
    ) -> Result<(reqwest::RequestBuilder, bool, bool), Error> {
        match &*self.auth {
            Auth::Bearer { .. } => {
                let (token, fresh) = self.bearer(d).await?;
                Ok((req.bearer_auth(token.expose()), true, fresh))
            }
            Auth::Digest { user, key, challenge, .. } => {
                let header = {
                    let mut guard = challenge.lock().map_err(|_| Error::Refused("digest state poisoned".into()))?;
                    guard.as_mut().map(|ch| {
                        ch.nc += 1;
                        let mut uri = url.path().to_string();
                        if let Some(q) = url.query() {
                            uri.push('?');
                            uri.push_str(q);
                        }
                        let cnonce = format!("{:016x}", fastrand::u64(..));
                        digest_authorization(user, key.expose(), ch, method.as_str(), &uri, &cnonce)
                    })
                };
                match header {
                    Some(h) => {
                        let mut v = reqwest::header::HeaderValue::from_str(&h)
                            .map_err(|_| Error::Refused("the API public key is not a valid header value".into()))?;
                        v.set_sensitive(true);
                        Ok((req.header(reqwest::header::AUTHORIZATION, v), true, false))
                    }
                    None => Ok((req, false, false)),
                }
            }
        }
    }

    /// The cached service-account token, or a new one when it is close to
    /// expiring (the last minute, or the second half of a short lifetime).
    async fn bearer(&self, d: Deadline) -> Result<(Secret, bool), Error> {
        let Auth::Bearer { client_id, secret, token, current, .. } = &*self.auth else {
            return Err(Error::Refused("not a service account".into()));
        };
        let mut guard = token.lock().await;
        if let Some(t) = &*guard
            && Instant::now() < t.refresh_at
        {
            return Ok((t.value.clone(), false));
        }
        let (value, lifetime) = self.fetch_token(client_id, secret, d).await?;
        let margin = (lifetime / 2).min(Duration::from_secs(60));
        debug!(expires_in = %Human(lifetime), "atlas access token obtained");
        *guard = Some(Token { value: value.clone(), refresh_at: Instant::now() + lifetime - margin });
        if let Ok(mut c) = current.lock() {
            *c = Some(value.clone());
        }
        Ok((value, true))
    }

    async fn fetch_token(&self, client_id: &str, secret: &Secret, d: Deadline) -> Result<(Secret, Duration), Error> {
        let what = format!("POST {}", self.token_url.path());
        let basic = base64_encode(format!("{client_id}:{}", secret.expose()).as_bytes());
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| Error::Refused("the client id is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let mut failures = 0u32;
        loop {
            let sent = self
                .http
                .post(self.token_url.clone())
                .header(reqwest::header::AUTHORIZATION, auth.clone())
                .header(reqwest::header::ACCEPT, "application/json")
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await;
            let err = match sent {
                Err(e) => Error::Transport { what: what.clone(), reason: reqwest_reason(&e) },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        let v: J = serde_json::from_str(&text).map_err(|e| Error::Protocol {
                            what: what.clone(),
                            reason: format!("token answer is not JSON: {e}"),
                        })?;
                        let token = v["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
                            Error::Protocol { what: what.clone(), reason: "no access_token in the answer".into() }
                        })?;
                        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600).max(1));
                        return Ok((Secret::new(token), lifetime));
                    }
                    if matches!(status, 400 | 401 | 403) {
                        let (code, detail) = oauth_error(&text);
                        return Err(Error::Credentials {
                            status,
                            hint: credentials_hint(self.auth.hint(), &code, &detail),
                        });
                    }
                    let (code, detail) = oauth_error(&text);
                    Error::Api {
                        status,
                        code: if code.is_empty() { format!("HTTP_{status}") } else { code },
                        detail,
                        retry_after: retry_after(&headers),
                    }
                }
            };
            if err.retryable() && failures + 1 < self.retry.attempts {
                let delay = match &err {
                    Error::Api { retry_after: Some(r), .. } => *r,
                    _ => self.retry.delay(failures),
                };
                if fits(d, delay) {
                    warn!(error = %self.scrub(err.to_string()), retry_in = %Human(delay), "atlas token request failed, retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            return Err(err);
        }
    }

    fn note_deprecation(&self, ep: Endpoint, headers: &reqwest::header::HeaderMap) {
        let dep = headers.get("deprecation").and_then(|v| v.to_str().ok());
        let sunset = headers.get("sunset").and_then(|v| v.to_str().ok());
        if dep.is_none() && sunset.is_none() {
            return;
        }
        let first = self.warned.lock().map(|mut w| w.insert(ep.spec().1)).unwrap_or(true);
        if first {
            warn!(
                endpoint = %format!("{} {}", ep.spec().0, ep.spec().1),
                version = ep.version(),
                deprecation = dep.unwrap_or(""),
                sunset = sunset.unwrap_or(""),
                "atlas api version is deprecated: update the version table in integrations/atlas.rs"
            );
        }
    }

    // -- Resources --------------------------------------------------------------

    /// A cluster, or None when Atlas says CLUSTER_NOT_FOUND.
    async fn get_cluster(&self, project: &str, name: &str, d: Deadline) -> Result<Option<J>, Error> {
        match self.call(Endpoint::GetCluster, &[project, name], &[], None, d).await {
            Ok(r) => Ok(Some(r.json)),
            Err(e) if e.status() == Some(404) && e.code() == Some("CLUSTER_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A cluster; Atlas's CLUSTER_NOT_FOUND is an error.
    async fn cluster(&self, project: &str, name: &str, d: Deadline) -> Result<J, Error> {
        Ok(self.call(Endpoint::GetCluster, &[project, name], &[], None, d).await?.json)
    }

    /// Every item of a paged list.
    async fn list_all(&self, ep: Endpoint, parts: &[&str], d: Deadline) -> Result<Vec<J>, Error> {
        const PAGE: usize = 100;
        let mut out = Vec::new();
        for page in 1..=100u32 {
            let query = [("itemsPerPage", PAGE.to_string()), ("pageNum", page.to_string())];
            let r = self.call(ep, parts, &query, None, d).await?;
            let results = r.json["results"].as_array().cloned().unwrap_or_default();
            let n = results.len();
            out.extend(results);
            let total = r.json["totalCount"].as_u64().map(|t| usize::try_from(t).unwrap_or(usize::MAX));
            if n < PAGE || total.is_some_and(|t| out.len() >= t) {
                break;
            }
        }
        Ok(out)
    }

    // -- Actions -----------------------------------------------------------------

    async fn create_cluster_like(
        &self,
        a: &args::AtlasCreateClusterLike,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("like", &a.like)?;
        check_cluster("name", &a.name)?;
        if a.name == a.like {
            return Err(Error::Refused(format!("the new cluster's name must differ from the source's ({})", a.like)));
        }
        let source = self.cluster(&a.project, &a.like, d).await?;
        let body = like_body(&source, &a.name, a.region.as_deref(), a.instance_size.as_deref())?;
        let want = Shape::of(&body);
        let mut failures = 0u32;
        let created = loop {
            if let Some(existing) = self.get_cluster(&a.project, &a.name, d).await? {
                let have = Shape::of(&existing);
                if let Some(diff) = want.differs(&have) {
                    return Err(Error::Refused(format!(
                        "cluster {} already exists in project {} and is not like {}: {diff}; \
                         choose another name or delete it",
                        a.name, a.project, a.like
                    )));
                }
                info!(key = %key, cluster = %a.name, like = %a.like, state = %str_of(&existing["stateName"]),
                    "reusing the cluster an earlier attempt created");
                break existing;
            }
            match self.call(Endpoint::CreateCluster, &[&a.project], &[], Some(&body), d).await {
                Ok(r) => {
                    info!(key = %key, cluster = %a.name, like = %a.like, region = %want.region,
                        size = %want.instance_size, mongo = %want.major, "atlas cluster creation started");
                    break r.json;
                }
                // An earlier try went through after all: look again.
                Err(e) if e.code() == Some("DUPLICATE_CLUSTER_NAME") && failures == 0 => failures += 1,
                Err(e) if e.retryable() && failures + 1 < self.retry.attempts => {
                    let delay = self.retry.delay(failures);
                    if !fits(d, delay) {
                        return Err(e);
                    }
                    warn!(key = %key, error = %e, "atlas cluster creation failed, looking again before retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        let got = Shape::of(&created);
        if !want.major.is_empty() && !got.major.is_empty() && got.major != want.major {
            return Err(Error::Refused(format!(
                "cluster {} runs MongoDB {} but {} runs {}: a restore needs the same major version; \
                 delete {} before trying again",
                a.name, got.major, a.like, want.major, a.name
            )));
        }
        Ok(outputs([
            ("name", Value::str(str_of(&created["name"]).if_empty(&a.name))),
            ("state", Value::str(str_of(&created["stateName"]))),
            ("region", Value::str(got.region.if_empty(&want.region))),
            ("mongo_version", Value::str(got.major.if_empty(&want.major))),
        ]))
    }

    async fn wait_cluster(&self, a: &args::AtlasWaitCluster, d: Deadline) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let want = a.state.as_deref().unwrap_or("IDLE").trim().to_ascii_uppercase();
        let mut poll = Poll::new(self.poll, self.max_poll, d);
        loop {
            let state = match self.call(Endpoint::GetCluster, &[&a.project, &a.cluster], &[], None, d).await {
                Ok(r) => str_of(&r.json["stateName"]),
                Err(e) if want == "DELETED" && e.code() == Some("CLUSTER_NOT_FOUND") => "DELETED".to_string(),
                Err(e) => return Err(e),
            };
            if state == want {
                return Ok(outputs([("state", Value::str(state))]));
            }
            if state == "DELETING" && want != "DELETED" {
                return Err(Error::Refused(format!(
                    "cluster {} is being deleted; it will not become {want}",
                    a.cluster
                )));
            }
            debug!(cluster = %a.cluster, state = %state, want = %want, "waiting for atlas cluster");
            if !poll.sleep().await {
                return Err(Error::Timeout(format!(
                    "cluster {} is still {state} after {}; waiting for {want}",
                    a.cluster,
                    poll.waited()
                )));
            }
        }
    }

    async fn pitr_restore(
        &self,
        a: &args::AtlasPitrRestore,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("source", &a.source)?;
        check_cluster("target", &a.target)?;
        if a.source == a.target {
            return Err(Error::Refused(format!(
                "refusing to restore {} onto itself: a restore wipes its target; restore to a new cluster",
                a.source
            )));
        }
        let at = parse_rfc3339(&a.at).map_err(|e| Error::Refused(format!("at: {e}")))?;
        let now = unix_now();
        if at > now {
            return Err(Error::Refused(format!("at: {} is in the future", a.at)));
        }
        let want = Wanted { target_project: a.project.clone(), target: a.target.clone(), what: Point::Time(at) };
        let prepare = async {
            let source = self.cluster(&a.project, &a.source, d).await?;
            if source["pitEnabled"] == J::Bool(false) {
                return Err(Error::Refused(format!(
                    "cluster {} has continuous cloud backup off: no point-in-time restore is possible; \
                     use atlas.snapshot_restore",
                    a.source
                )));
            }
            if let Ok(r) = self.call(Endpoint::BackupSchedule, &[&a.project, &a.source], &[], None, d).await
                && let Some(days) = r.json["restoreWindowDays"].as_f64()
                && (days * 86_400.0) as i64 + at < now
            {
                return Err(Error::Refused(format!(
                    "at: {} is older than the {days}-day point-in-time window of {}",
                    a.at, a.source
                )));
            }
            self.check_target(&a.project, &a.target, &major_of(&source), &a.source, d).await?;
            Ok(json!({
                "deliveryType": "pointInTime",
                "pointInTimeUTCSeconds": at,
                "targetClusterName": a.target,
                "targetGroupId": a.project,
            }))
        };
        let job = self.start_restore(key, &a.project, &a.source, &want, prepare, d).await?;
        Ok(outputs([
            ("job_id", Value::str(str_of(&job["id"]))),
            ("target", Value::str(a.target.clone())),
            ("restore_point", Value::str(format_rfc3339(at))),
            ("snapshot_id", job["snapshotId"].as_str().map_or(Value::Null, Value::str)),
        ]))
    }

    async fn snapshot_restore(
        &self,
        a: &args::AtlasSnapshotRestore,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("source", &a.source)?;
        check_cluster("target", &a.target)?;
        let target_project = a.target_project.clone().unwrap_or_else(|| a.project.clone());
        check_project(&target_project)?;
        if a.source == a.target && target_project == a.project {
            return Err(Error::Refused(format!(
                "refusing to restore {} onto itself: a restore wipes its target; restore to a new cluster",
                a.source
            )));
        }
        let named = match a.snapshot.as_deref().map(str::trim) {
            None | Some("") | Some("latest") => None,
            Some(id) => {
                check_id("snapshot", id)?;
                Some(id.to_string())
            }
        };
        let want = Wanted {
            target_project: target_project.clone(),
            target: a.target.clone(),
            what: Point::Snapshot(named.clone()),
        };
        let prepare = async {
            let snapshots = self.list_all(Endpoint::ListSnapshots, &[&a.project, &a.source], d).await?;
            let chosen = match &named {
                Some(id) => snapshots.iter().find(|s| str_of(&s["id"]) == *id).cloned().ok_or_else(|| {
                    Error::Refused(format!("cluster {} has no snapshot {id} in project {}", a.source, a.project))
                })?,
                None => latest_snapshot(&snapshots).ok_or_else(|| {
                    Error::Refused(format!("cluster {} has no completed snapshot to restore", a.source))
                })?,
            };
            if !snapshot_complete(&chosen) {
                return Err(Error::Refused(format!(
                    "snapshot {} of {} is not complete yet (status {})",
                    str_of(&chosen["id"]),
                    a.source,
                    str_of(&chosen["status"]).if_empty("unknown")
                )));
            }
            let source = self.cluster(&a.project, &a.source, d).await?;
            let major = chosen["mongodVersion"].as_str().map(major_version).unwrap_or_else(|| major_of(&source));
            self.check_target(&target_project, &a.target, &major, &a.source, d).await?;
            Ok(json!({
                "deliveryType": "automated",
                "snapshotId": str_of(&chosen["id"]),
                "targetClusterName": a.target,
                "targetGroupId": target_project,
            }))
        };
        let job = self.start_restore(key, &a.project, &a.source, &want, prepare, d).await?;
        let snapshot_id = str_of(&job["snapshotId"]);
        let snapshots = self.list_all(Endpoint::ListSnapshots, &[&a.project, &a.source], d).await?;
        let restore_point = snapshots
            .iter()
            .find(|s| str_of(&s["id"]) == snapshot_id)
            .map(|s| str_of(&s["createdAt"]))
            .unwrap_or_default();
        Ok(outputs([
            ("job_id", Value::str(str_of(&job["id"]))),
            ("target", Value::str(a.target.clone())),
            ("snapshot_id", Value::str(snapshot_id)),
            ("restore_point", Value::str(restore_point)),
        ]))
    }

    /// The target of a restore must exist, be IDLE and run `major`.
    async fn check_target(
        &self,
        project: &str,
        target: &str,
        major: &str,
        source: &str,
        d: Deadline,
    ) -> Result<(), Error> {
        let t = self.get_cluster(project, target, d).await?.ok_or_else(|| {
            Error::Refused(format!(
                "the restore target {target} does not exist in project {project}: create it first \
                 (atlas.create_cluster_like)"
            ))
        })?;
        let state = str_of(&t["stateName"]);
        if state != "IDLE" {
            return Err(Error::Refused(format!(
                "the restore target {target} is {state}: wait for IDLE first (atlas.wait_cluster)"
            )));
        }
        let have = major_of(&t);
        if !major.is_empty() && !have.is_empty() && have != major {
            return Err(Error::Refused(format!(
                "the restore target {target} runs MongoDB {have} but the backup of {source} is {major}: \
                 a restore needs the same major version"
            )));
        }
        Ok(())
    }

    /// Finds the restore job an earlier try or attempt started, or runs
    /// `prepare` (the checks, answering the request body) and starts one;
    /// looks again before every retry.
    async fn start_restore(
        &self,
        key: &Key,
        project: &str,
        source: &str,
        want: &Wanted,
        prepare: impl std::future::Future<Output = Result<J, Error>>,
        d: Deadline,
    ) -> Result<J, Error> {
        let mut prepare = Some(prepare);
        let mut body = None;
        let mut failures = 0u32;
        loop {
            let jobs = self.list_all(Endpoint::ListRestoreJobs, &[project, source], d).await?;
            if let Some(job) = jobs.iter().rev().find(|j| want.matches(j)) {
                info!(key = %key, job = %str_of(&job["id"]), source, target = %want.target,
                    "reusing the restore job an earlier attempt started");
                return Ok(job.clone());
            }
            if let Some(p) = prepare.take() {
                body = Some(p.await?);
            }
            let sent = self.call(Endpoint::StartRestore, &[project, source], &[], body.as_ref(), d).await;
            match sent {
                Ok(r) => {
                    info!(key = %key, job = %str_of(&r.json["id"]), source, target = %want.target,
                        started_at = %format_rfc3339(unix_now()), "atlas restore job started");
                    return Ok(r.json);
                }
                Err(e) if e.retryable() && failures + 1 < self.retry.attempts => {
                    let delay = self.retry.delay(failures);
                    if !fits(d, delay) {
                        return Err(e);
                    }
                    warn!(key = %key, error = %e, retry_in = %Human(delay),
                        "starting the atlas restore failed, looking again before retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn wait_restore(&self, a: &args::AtlasWaitRestore, d: Deadline) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("source", &a.source)?;
        check_id("job_id", &a.job_id)?;
        let mut poll = Poll::new(self.poll, self.max_poll, d);
        loop {
            let job = self.call(Endpoint::GetRestoreJob, &[&a.project, &a.source, &a.job_id], &[], None, d).await?.json;
            let target = str_of(&job["targetClusterName"]);
            let what = format!("restore job {} from {} to {}", a.job_id, a.source, target.as_str().if_empty("?"));
            if job["failed"] == J::Bool(true) {
                return Err(Error::Refused(format!("{what} failed: Atlas marked it failed{}", job_detail(&job))));
            }
            if job["cancelled"] == J::Bool(true) {
                return Err(Error::Refused(format!("{what} failed: it was cancelled{}", job_detail(&job))));
            }
            if job["expired"] == J::Bool(true) {
                let at = str_of(&job["expiresAt"]);
                let when = if at.is_empty() { String::new() } else { format!(" at {at}") };
                return Err(Error::Refused(format!("{what} failed: it expired{when}{}", job_detail(&job))));
            }
            if let Some(finished) = job["finishedAt"].as_str().filter(|s| !s.is_empty()) {
                info!(job = %a.job_id, source = %a.source, target = %target, finished_at = finished,
                    waited = %poll.waited(), "atlas restore job finished");
                return Ok(outputs([("finished_at", Value::str(finished)), ("job_id", Value::str(a.job_id.clone()))]));
            }
            debug!(job = %a.job_id, "waiting for atlas restore job");
            if !poll.sleep().await {
                return Err(Error::Timeout(format!("{what} has not finished after {}", poll.waited())));
            }
        }
    }

    async fn connection_string(
        &self,
        a: &args::AtlasConnectionString,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let c = self.cluster(&a.project, &a.cluster, d).await?;
        let cs = &c["connectionStrings"];
        let uri = str_of(&cs["standardSrv"]).if_empty(&str_of(&cs["standard"]));
        if uri.is_empty() {
            return Err(Error::Refused(format!(
                "cluster {} has no connection string yet (state {}): wait for IDLE first",
                a.cluster,
                str_of(&c["stateName"]).if_empty("unknown")
            )));
        }
        let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri.as_str()));
        let host = rest.split(['/', '?']).next().unwrap_or(rest).to_string();
        let connection_string = match a.credentials.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            None => uri.clone(),
            Some(name) => {
                let creds = self.credentials.db(name).map_err(|e| Error::Refused(e.to_string()))?;
                format!("{scheme}://{}:{}@{rest}", percent_encode(&creds.user), percent_encode(creds.password.expose()))
            }
        };
        Ok(outputs([("connection_string", Value::str(connection_string)), ("host", Value::str(host))]))
    }

    async fn take_snapshot(
        &self,
        a: &args::AtlasTakeSnapshot,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        // The marker finds the snapshot of an earlier attempt of this step.
        let marker = format!("[ripcord {}/{}]", key.run, key.step);
        let text = a.description.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("taken by ripcord");
        let body = json!({ "description": format!("{text} {marker}"), "retentionInDays": SNAPSHOT_RETENTION_DAYS });
        let parts = [a.project.as_str(), a.cluster.as_str()];
        let mut failures = 0u32;
        let id = loop {
            let snapshots = self.list_all(Endpoint::ListSnapshots, &parts, d).await?;
            if let Some(s) = snapshots.iter().find(|s| str_of(&s["description"]).contains(&marker)) {
                info!(key = %key, snapshot = %str_of(&s["id"]), "reusing the snapshot an earlier attempt took");
                break str_of(&s["id"]);
            }
            match self.call(Endpoint::TakeSnapshot, &parts, &[], Some(&body), d).await {
                Ok(r) => {
                    info!(key = %key, cluster = %a.cluster, snapshot = %str_of(&r.json["id"]), "atlas snapshot started");
                    break str_of(&r.json["id"]);
                }
                Err(e) if e.retryable() && failures + 1 < self.retry.attempts => {
                    let delay = self.retry.delay(failures);
                    if !fits(d, delay) {
                        return Err(e);
                    }
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        if id.is_empty() {
            return Err(Error::Protocol { what: "take snapshot".into(), reason: "the snapshot has no id".into() });
        }
        // A snapshot is only usable (for a restore) once complete.
        let mut poll = Poll::new(self.poll, self.max_poll, d);
        loop {
            let snapshots = self.list_all(Endpoint::ListSnapshots, &parts, d).await?;
            let s = snapshots.iter().find(|s| str_of(&s["id"]) == id);
            let status = s.map(|s| str_of(&s["status"])).unwrap_or_default();
            if s.is_some_and(snapshot_complete) {
                return Ok(outputs([("snapshot_id", Value::str(id))]));
            }
            if status == "failed" {
                return Err(Error::Refused(format!("snapshot {id} of {} failed", a.cluster)));
            }
            if !poll.sleep().await {
                return Err(Error::Timeout(format!(
                    "snapshot {id} of {} is still {} after {}",
                    a.cluster,
                    status.if_empty("pending"),
                    poll.waited()
                )));
            }
        }
    }

    async fn delete_cluster(
        &self,
        a: &args::AtlasDeleteCluster,
        key: &Key,
        d: Deadline,
    ) -> Result<BTreeMap<String, Value>, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let done = || outputs([("deleted", Value::Bool(true))]);
        match self.get_cluster(&a.project, &a.cluster, d).await? {
            None => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster already gone");
                return Ok(done());
            }
            Some(c) if str_of(&c["stateName"]) == "DELETING" => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster already being deleted");
                return Ok(done());
            }
            Some(_) => {}
        }
        let query = [("retainBackups", "true".to_string())];
        match self.call(Endpoint::DeleteCluster, &[&a.project, &a.cluster], &query, None, d).await {
            Ok(_) => {
                info!(key = %key, cluster = %a.cluster, "atlas cluster deletion started (backups retained)");
                Ok(done())
            }
            Err(e) if e.code() == Some("CLUSTER_NOT_FOUND") => Ok(done()),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Restore job matching
// ---------------------------------------------------------------------------

enum Point {
    Time(i64),
    /// A named snapshot, or None for "the latest".
    Snapshot(Option<String>),
}

struct Wanted {
    target_project: String,
    target: String,
    what: Point,
}

impl Wanted {
    /// Is `job` the one an earlier attempt started for this restore? Failed,
    /// cancelled and expired jobs are not: a new attempt starts a new job.
    fn matches(&self, job: &J) -> bool {
        if str_of(&job["targetClusterName"]) != self.target {
            return false;
        }
        if let Some(g) = job["targetGroupId"].as_str()
            && g != self.target_project
        {
            return false;
        }
        if ["failed", "cancelled", "expired"].iter().any(|f| job[*f] == J::Bool(true)) {
            return false;
        }
        let delivery = str_of(&job["deliveryType"]);
        match &self.what {
            Point::Time(t) => delivery == "pointInTime" && job["pointInTimeUTCSeconds"].as_i64() == Some(*t),
            Point::Snapshot(None) => delivery == "automated",
            Point::Snapshot(Some(id)) => delivery == "automated" && str_of(&job["snapshotId"]) == *id,
        }
    }
}

fn job_detail(job: &J) -> String {
    let mut parts = Vec::new();
    for f in ["deliveryType", "snapshotId", "pointInTimeUTCSeconds", "finishedAt"] {
        match &job[f] {
            J::Null => {}
            J::String(s) if s.is_empty() => {}
            v => parts.push(format!("{f} {}", v.as_str().map_or_else(|| v.to_string(), str::to_string))),
        }
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

fn snapshot_complete(s: &J) -> bool {
    let status = str_of(&s["status"]);
    !str_of(&s["createdAt"]).is_empty() && (status.is_empty() || status == "completed")
}

fn latest_snapshot(snapshots: &[J]) -> Option<J> {
    snapshots
        .iter()
        .filter(|s| snapshot_complete(s))
        .max_by_key(|s| parse_rfc3339(&str_of(&s["createdAt"])).unwrap_or(i64::MIN))
        .cloned()
}

// ---------------------------------------------------------------------------
// Cluster specs
// ---------------------------------------------------------------------------

/// What makes a cluster "like" another for a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shape {
    major: String,
    provider: String,
    region: String,
    instance_size: String,
    nodes: u64,
}

impl Shape {
    fn of(c: &J) -> Shape {
        let primary = primary_region(c);
        let (provider, region, size) = primary.map_or_else(Default::default, |r| {
            (str_of(&r["providerName"]), str_of(&r["regionName"]), str_of(&r["electableSpecs"]["instanceSize"]))
        });
        let nodes = region_configs(c).map(|r| r["electableSpecs"]["nodeCount"].as_u64().unwrap_or(0)).sum();
        Shape { major: major_of(c), provider, region, instance_size: size, nodes }
    }

    /// How `have` differs from this, if it does.
    fn differs(&self, have: &Shape) -> Option<String> {
        let mut diffs = Vec::new();
        let mut cmp = |what: &str, want: &str, got: &str| {
            if !want.is_empty() && want != got {
                diffs.push(format!("{what} {} instead of {want}", got.if_empty("unset")));
            }
        };
        cmp("MongoDB", &self.major, &have.major);
        cmp("provider", &self.provider, &have.provider);
        cmp("region", &self.region, &have.region);
        cmp("instance size", &self.instance_size, &have.instance_size);
        if self.nodes != 0 && self.nodes != have.nodes {
            diffs.push(format!("{} electable nodes instead of {}", have.nodes, self.nodes));
        }
        if diffs.is_empty() { None } else { Some(diffs.join(", ")) }
    }
}

fn region_configs(c: &J) -> impl Iterator<Item = &J> {
    c["replicationSpecs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["regionConfigs"].as_array().into_iter().flatten())
}

fn primary_region(c: &J) -> Option<&J> {
    region_configs(c).max_by_key(|r| r["priority"].as_i64().unwrap_or(0))
}

fn major_of(c: &J) -> String {
    match c["mongoDBMajorVersion"].as_str() {
        Some(v) if !v.is_empty() => major_version(v),
        _ => c["mongoDBVersion"].as_str().map(major_version).unwrap_or_default(),
    }
}

/// "7.0.12" → "7.0".
fn major_version(v: &str) -> String {
    v.trim().split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Atlas region names are `US_EAST_1`; `us-east-1` is accepted too.
fn atlas_region(r: &str) -> String {
    r.trim().to_ascii_uppercase().replace('-', "_")
}

/// The create body for a cluster like `source`: same type, MongoDB major
/// version, provider, instance size, node count, disk, auto-scaling and
/// backup settings; optionally in `region` (the primary region moves, other
/// regions are dropped) and with another instance size.
fn like_body(source: &J, name: &str, region: Option<&str>, size: Option<&str>) -> Result<J, Error> {
    const COPIED: [&str; 7] = [
        "clusterType",
        "mongoDBMajorVersion",
        "versionReleaseSystem",
        "backupEnabled",
        "pitEnabled",
        "encryptionAtRestProvider",
        "configServerManagementMode",
    ];
    const REGION_FIELDS: [&str; 8] = [
        "providerName",
        "backingProviderName",
        "regionName",
        "priority",
        "electableSpecs",
        "readOnlySpecs",
        "analyticsSpecs",
        "autoScaling",
    ];
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    for f in COPIED {
        if let Some(v) = source.get(f).filter(|v| !v.is_null()) {
            body.insert(f.into(), v.clone());
        }
    }
    if body.get("versionReleaseSystem").and_then(J::as_str) == Some("CONTINUOUS") {
        body.remove("mongoDBMajorVersion");
    }
    body.insert("terminationProtectionEnabled".into(), json!(false));
    let specs = source["replicationSpecs"].as_array().filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Refused(format!("cannot copy {}: its description has no replicationSpecs", str_of(&source["name"])))
    })?;
    let mut out_specs = Vec::new();
    for spec in specs {
        let configs: Vec<&J> = spec["regionConfigs"].as_array().into_iter().flatten().collect();
        let chosen: Vec<&J> = match region {
            Some(_) => {
                configs.iter().copied().max_by_key(|r| r["priority"].as_i64().unwrap_or(0)).into_iter().collect()
            }
            None => configs,
        };
        let mut regions = Vec::new();
        for rc in chosen {
            let mut r = serde_json::Map::new();
            for f in REGION_FIELDS {
                if let Some(v) = rc.get(f).filter(|v| !v.is_null()) {
                    r.insert(f.into(), v.clone());
                }
            }
            if let Some(region) = region {
                r.insert("regionName".into(), json!(atlas_region(region)));
                r.insert("priority".into(), json!(7));
            }
            if let Some(size) = size {
                for s in ["electableSpecs", "readOnlySpecs"] {
                    if let Some(J::Object(o)) = r.get_mut(s) {
                        o.insert("instanceSize".into(), json!(size.trim().to_ascii_uppercase()));
                    }
                }
            }
            regions.push(J::Object(r));
        }
        let mut s = serde_json::Map::new();
        if let Some(z) = spec.get("zoneName").filter(|z| !z.is_null()) {
            s.insert("zoneName".into(), z.clone());
        }
        s.insert("regionConfigs".into(), J::Array(regions));
        out_specs.push(J::Object(s));
    }
    body.insert("replicationSpecs".into(), J::Array(out_specs));
    Ok(J::Object(body))
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

fn parse<T: DeserializeOwned>(action: &str, args: &Value) -> Result<T, Error> {
    let v = serde_json::to_value(args).map_err(|e| Error::Refused(format!("{action}: bad arguments: {e}")))?;
    serde_json::from_value(v).map_err(|e| Error::Refused(format!("{action}: bad arguments: {e}")))
}

fn outputs<const N: usize>(items: [(&str, Value); N]) -> BTreeMap<String, Value> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn str_of(v: &J) -> String {
    v.as_str().unwrap_or_default().to_string()
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self }
    }
}

impl IfEmpty for &str {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self.to_string() }
    }
}

/// Project (group) ids are 24 hex digits.
fn check_project(p: &str) -> Result<(), Error> {
    check_id("project", p)
}

fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Refused(format!("{what} must be an Atlas id (24 hex digits), not {id:?}")))
    }
}

/// Cluster names: letters, digits and hyphens, starting with a letter or digit.
fn check_cluster(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(Error::Refused(format!("{what}: {name:?} is not a valid Atlas cluster name"))) }
}

fn credentials_hint(hint: String, code: &str, detail: &str) -> String {
    match (code.is_empty(), detail.is_empty()) {
        (true, true) => hint,
        (false, true) => format!("{hint} (Atlas: {code})"),
        (true, false) => format!("{hint} (Atlas: {detail})"),
        (false, false) => format!("{hint} (Atlas: {code}: {detail})"),
    }
}

/// `errorCode` and `detail` of an Atlas error body.
fn atlas_error(text: &str) -> (String, String) {
    let v: J = serde_json::from_str(text).unwrap_or(J::Null);
    let detail = str_of(&v["detail"]).if_empty(&str_of(&v["reason"]));
    (str_of(&v["errorCode"]), detail)
}

/// `error` and `error_description` of an OAuth error body, or Atlas's shape.
fn oauth_error(text: &str) -> (String, String) {
    let v: J = serde_json::from_str(text).unwrap_or(J::Null);
    if v["errorCode"].is_string() {
        return atlas_error(text);
    }
    (str_of(&v["error"]), str_of(&v["error_description"]))
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".to_string());
    }
    if e.is_connect() {
        parts.push("cannot connect".to_string());
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------------------
// RFC 3339
// ---------------------------------------------------------------------------

/// Seconds since the Unix epoch of an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00.250+02:00`); fractions of a second are dropped.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    ripcord_engine::clock::parse_rfc3339(s)
        .map(|ms| ms.div_euclid(1000))
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (like 2024-05-01T12:00:00Z)"))
}

/// `2024-05-01T12:00:00Z`.
pub fn format_rfc3339(secs: i64) -> String {
    ripcord_engine::clock::rfc3339(secs.saturating_mul(1000))
}

// ---------------------------------------------------------------------------
// HTTP Digest (RFC 2617 / 7616, MD5, qop=auth), MD5 (RFC 1321), base64
// ---------------------------------------------------------------------------

/// The Digest challenge in the `WWW-Authenticate` headers, if any.
fn digest_challenge(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_digest_challenge)
}

/// Parses `Digest realm="…", nonce="…", qop="auth", algorithm=MD5, stale=false`.
fn parse_digest_challenge(header: &str) -> Option<Challenge> {
    let h = header.trim();
    let rest = h.get(..7).filter(|p| p.eq_ignore_ascii_case("digest "))?;
    let params = auth_params(&h[rest.len()..]);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    Some(Challenge {
        realm: get("realm").unwrap_or_default(),
        nonce: get("nonce")?,
        opaque: get("opaque"),
        qop: get("qop"),
        algorithm: get("algorithm"),
        stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        nc: 0,
    })
}

/// `k=v, k="quoted, \"value\""` pairs.
pub fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let name = name.trim().to_string();
        if !name.is_empty() {
            out.push((name, value.trim().to_string()));
        }
        if chars.peek().is_none() {
            return out;
        }
    }
}

/// The Digest `response` value (RFC 2617 3.2.2.1). `qop` None is the
/// RFC 2069 form.
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: Option<&str>,
) -> String {
    let ha1 = md5_hex(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some(q) => md5_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{q}:{ha2}").as_bytes()),
        None => md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

fn digest_authorization(user: &str, password: &str, ch: &Challenge, method: &str, uri: &str, cnonce: &str) -> String {
    let qop = ch.qop.as_deref().map(|q| q.split(',').map(str::trim).any(|q| q == "auth"));
    let nc = format!("{:08x}", ch.nc);
    let sess = ch.algorithm.as_deref().is_some_and(|a| a.eq_ignore_ascii_case("MD5-sess"));
    let response = if sess {
        let ha1 = md5_hex(format!("{user}:{}:{password}", ch.realm).as_bytes());
        let ha1 = md5_hex(format!("{ha1}:{}:{cnonce}", ch.nonce).as_bytes());
        let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
        md5_hex(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce).as_bytes())
    } else {
        let q = if qop == Some(true) { Some("auth") } else { None };
        digest_response(user, &ch.realm, password, method, uri, &ch.nonce, &nc, cnonce, q)
    };
    let mut h = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\"",
        ch.realm, ch.nonce
    );
    if let Some(a) = &ch.algorithm {
        h.push_str(&format!(", algorithm={a}"));
    }
    if qop == Some(true) || sess {
        h.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    }
    if let Some(o) = &ch.opaque {
        h.push_str(&format!(", opaque=\"{o}\""));
    }
    h
}

/// MD5 (RFC 1321). Only for HTTP Digest, which Atlas API keys require.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    // K[i] = floor(|sin(i + 1)| * 2^32), as RFC 1321 defines them.
    let k: [u32; 64] = std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64).wrapping_mul(8).to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([chunk[4 * i], chunk[4 * i + 1], chunk[4 * i + 2], chunk[4 * i + 3]])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, s) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s.to_le_bytes());
    }
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    md5(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_rfc_1321() {
        let table = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in table {
            assert_eq!(md5_hex(input.as_bytes()), want, "md5({input:?})");
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        let table = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in table {
            assert_eq!(base64_encode(input.as_bytes()), want, "base64({input:?})");
        }
    }

    #[test]
    fn digest_response_matches_rfc_2617_example() {
        let r = digest_response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "00000001",
            "0a4f113b",
            Some("auth"),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn digest_challenge_is_parsed() {
        let ch = parse_digest_challenge(
            r#"Digest realm="MMS Public API", domain="", nonce="a/b+c==", algorithm=MD5, qop="auth", stale=false"#,
        )
        .unwrap();
        assert_eq!(ch.realm, "MMS Public API");
        assert_eq!(ch.nonce, "a/b+c==");
        assert_eq!(ch.qop.as_deref(), Some("auth"));
        assert_eq!(ch.algorithm.as_deref(), Some("MD5"));
        assert!(!ch.stale);
        assert!(parse_digest_challenge("Bearer realm=\"x\"").is_none());
        let params = auth_params(r#"a="x, \"y\"", b=2"#);
        assert_eq!(params, vec![("a".into(), "x, \"y\"".into()), ("b".into(), "2".into())]);
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_junk() {
        let table = [
            ("1970-01-01T00:00:00Z", 0),
            ("2024-05-01T12:00:00Z", 1_714_564_800),
            ("2024-05-01T14:00:00.999+02:00", 1_714_564_800),
            ("2024-02-29T00:00:00z", 1_709_164_800),
            ("1969-12-31T23:59:59Z", -1),
        ];
        for (s, want) in table {
            assert_eq!(parse_rfc3339(s), Ok(want), "{s}");
        }
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        for bad in
            ["", "2024-05-01", "2024-05-01T12:00:00", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "incident-5m"]
        {
            assert!(parse_rfc3339(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn endpoint_paths_fill_in_order() {
        assert_eq!(
            Endpoint::GetRestoreJob.path(&["p", "c", "j"]),
            "/groups/p/clusters/c/backup/restoreJobs/j".to_string()
        );
        assert_eq!(Endpoint::CreateCluster.media_type(), "application/vnd.atlas.2024-10-23+json");
        for ep in Endpoint::ALL {
            let v = ep.version();
            assert!(v.len() == 10 && v.as_bytes()[4] == b'-', "{ep:?}: {v}");
        }
    }

    #[test]
    fn config_reads_both_auth_methods_and_refuses_mixes() {
        let sa: AtlasConfig =
            toml::from_str("[auth]\nclient_id = \"mdb_sa_id_1\"\nclient_secret_file = \"s\"\n").unwrap();
        assert_eq!(sa.base_url, "https://cloud.mongodb.com/api/atlas/v2");
        assert_eq!(sa.poll_interval, Duration::from_secs(10));
        assert_eq!(sa.max_poll_interval, Duration::from_secs(60));
        assert!(matches!(sa.auth, AtlasAuth::ServiceAccount { .. }));
        let key: AtlasConfig =
            toml::from_str("poll_interval = \"2s\"\n[auth]\npublic_key = \"abc\"\nprivate_key_file = \"/k\"\n")
                .unwrap();
        assert_eq!(key.poll_interval, Duration::from_secs(2));
        assert!(matches!(key.auth, AtlasAuth::ApiKey { .. }));
        let mixed = toml::from_str::<AtlasConfig>("[auth]\nclient_id = \"x\"\nprivate_key_file = \"/k\"\n");
        assert!(mixed.unwrap_err().to_string().contains("not a mix"));
        let inline = toml::from_str::<AtlasConfig>("[auth]\nclient_id = \"x\"\nclient_secret = \"hunter2\"\n");
        assert!(inline.unwrap_err().to_string().contains("unknown field `client_secret`"));
    }

    fn cluster(version: &str, region: &str, size: &str, nodes: u64) -> J {
        json!({
            "name": "chat-prod", "clusterType": "REPLICASET", "mongoDBMajorVersion": version,
            "mongoDBVersion": format!("{version}.12"), "backupEnabled": true, "pitEnabled": true,
            "stateName": "IDLE", "id": "x",
            "replicationSpecs": [{ "id": "r1", "zoneId": "z", "zoneName": "Zone 1", "regionConfigs": [{
                "providerName": "AWS", "regionName": region, "priority": 7,
                "electableSpecs": { "instanceSize": size, "nodeCount": nodes },
            }]}],
        })
    }

    #[test]
    fn like_body_copies_the_spec_and_overrides_region_and_size() {
        let src = cluster("7.0", "US_EAST_1", "M20", 3);
        let body = like_body(&src, "restore-1", None, None).unwrap();
        assert_eq!(body["name"], "restore-1");
        assert_eq!(body["mongoDBMajorVersion"], "7.0");
        assert_eq!(body["pitEnabled"], true);
        assert!(body.get("id").is_none() && body["replicationSpecs"][0].get("id").is_none());
        assert_eq!(Shape::of(&body), Shape::of(&src));
        let moved = like_body(&src, "restore-1", Some("eu-west-1"), Some("m30")).unwrap();
        let rc = &moved["replicationSpecs"][0]["regionConfigs"][0];
        assert_eq!(rc["regionName"], "EU_WEST_1");
        assert_eq!(rc["electableSpecs"]["instanceSize"], "M30");
        assert_eq!(rc["electableSpecs"]["nodeCount"], 3);
        let diff = Shape::of(&body).differs(&Shape::of(&cluster("8.0", "US_EAST_1", "M20", 3))).unwrap();
        assert!(diff.contains("MongoDB 8.0 instead of 7.0"), "{diff}");
    }

    #[test]
    fn restore_jobs_match_by_target_and_point() {
        let want = Wanted { target_project: "p".into(), target: "t".into(), what: Point::Time(100) };
        let job = |extra: J| {
            let mut j = json!({"id": "j", "deliveryType": "pointInTime", "pointInTimeUTCSeconds": 100,
                "targetClusterName": "t", "targetGroupId": "p"});
            if let (J::Object(a), J::Object(b)) = (&mut j, extra) {
                a.extend(b);
            }
            j
        };
        assert!(want.matches(&job(json!({}))));
        assert!(want.matches(&job(json!({"finishedAt": "2024-01-01T00:00:00Z"}))));
        assert!(!want.matches(&job(json!({"pointInTimeUTCSeconds": 101}))));
        assert!(!want.matches(&job(json!({"targetClusterName": "u"}))));
        assert!(!want.matches(&job(json!({"failed": true}))));
        assert!(!want.matches(&job(json!({"expired": true}))));
        assert!(!want.matches(&job(json!({"deliveryType": "automated"}))));
    }

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        let r = Retry { attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for n in 0..10 {
            let d = r.delay(n);
            let exp = (Duration::from_millis(100) * 2u32.pow(n.min(16))).min(Duration::from_secs(1));
            assert!(d >= exp / 2 && d <= exp, "{n}: {d:?}");
        }
    }

    /// The performer's futures must be `Send` (the driver spawns them).
    #[allow(dead_code)]
    fn perform_is_send(a: &Atlas, v: &Value, k: &Key) {
        fn send<T: Send>(_: T) {}
        send(a.perform("atlas.wait_cluster", v, k));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(••••)");
    }
}
