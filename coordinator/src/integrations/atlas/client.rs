//! The HTTP side of the Atlas client: the endpoint table with each call's
//! resource version, one call with auth, retries and Atlas's error shape,
//! paged lists, and polling with backoff.
//!
//! Calls are retried with exponential backoff and jitter on 429 (after
//! `Retry-After` when Atlas sends it), 5xx and network errors. A POST is
//! retried here only on 429 (a rate-limited request was not processed): its
//! other failures go back to the action, which looks for what an earlier try
//! created before it tries again.

use super::Error;
use super::auth::Auth;
use super::config::AtlasConfig;
use ripcord_engine::duration::Human;
use serde_json::{Value as J, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

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
    GetProject,
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
            GetProject => ("GET", "/groups/{groupId}", "2023-01-01"),
        }
    }

    pub const ALL: [Endpoint; 10] = [
        Endpoint::ListSnapshots,
        Endpoint::TakeSnapshot,
        Endpoint::StartRestore,
        Endpoint::GetRestoreJob,
        Endpoint::ListRestoreJobs,
        Endpoint::BackupSchedule,
        Endpoint::CreateCluster,
        Endpoint::GetCluster,
        Endpoint::DeleteCluster,
        Endpoint::GetProject,
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
    /// validated before (see `actions::check_id`), so they need no escaping.
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
// Retries and polling
// ---------------------------------------------------------------------------

/// When a call must be done by: the step's timeout, if it has one.
pub(super) type Deadline = Option<Instant>;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub use crate::integrations::backoff::Retry;
use crate::integrations::backoff::jitter;

/// How a failed Atlas call is retried: 429 (after `Retry-After` when Atlas
/// sends it), 5xx and network errors.
pub const DEFAULT_RETRY: Retry = Retry { attempts: 6, base: Duration::from_secs(1), max: Duration::from_secs(30) };

impl Retry {
    /// The wait before trying again after `failures + 1` failures (`asked`,
    /// Atlas's `Retry-After`, or the backoff), or None when no try is left
    /// or the wait would end past the deadline.
    pub(super) fn wait(&self, failures: u32, asked: Option<Duration>, d: Deadline) -> Option<Duration> {
        if failures + 1 >= self.attempts {
            return None;
        }
        let delay = asked.unwrap_or_else(|| self.delay(failures));
        d.is_none_or(|d| Instant::now() + delay < d).then_some(delay)
    }
}

/// Polling with backoff: `poll_interval` doubling to `max_poll_interval`,
/// ±20% jitter, never sleeping past the deadline.
pub(super) struct Poll {
    next: Duration,
    max: Duration,
    started: Instant,
    deadline: Deadline,
}

impl Poll {
    pub(super) fn new(first: Duration, max: Duration, deadline: Deadline) -> Self {
        Self { next: first, max: max.max(first), started: Instant::now(), deadline }
    }

    /// Sleeps before the next poll; false when the deadline has passed.
    pub(super) async fn sleep(&mut self) -> bool {
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

    /// How long the polling has gone on, for messages.
    pub(super) fn waited(&self) -> String {
        Human(Duration::from_millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))).to_string()
    }
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// The Admin API over HTTP. Cheap to clone: the token cache and digest
/// state are shared.
#[derive(Clone)]
pub(super) struct Client {
    http: reqwest::Client,
    pub(super) base: String,
    pub(super) auth: Arc<Auth>,
    pub(super) retry: Retry,
    /// Endpoints whose deprecation was already logged.
    warned: Arc<Mutex<BTreeSet<&'static str>>>,
}

/// One HTTP answer, read whole.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) text: String,
}

impl Answer {
    pub(super) fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body is `{}`.
    fn json(&self, what: &str) -> Result<J, Error> {
        if self.text.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&self.text)
            .map_err(|e| Error::Protocol { what: what.to_string(), reason: format!("not JSON: {e}") })
    }
}

/// Sends `req` and reads the whole answer; `what` names it in messages.
pub(super) async fn send(http: &reqwest::Client, req: reqwest::Request, what: &str) -> Result<Answer, Error> {
    let started = Instant::now();
    let resp = http
        .execute(req)
        .await
        .map_err(|e| Error::Transport { what: what.to_string(), reason: crate::integrations::http::without_url(&e) })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    debug!(call = %what, status, ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(0), "atlas call");
    Ok(Answer { status, headers, text })
}

impl Client {
    /// Reads the secret file and builds the HTTP client.
    pub(super) fn new(config: &AtlasConfig) -> Result<Self, Error> {
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
        let auth = Auth::new(&config.auth, token_url)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ripcord/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Self { http, base, auth: Arc::new(auth), retry: DEFAULT_RETRY, warned: Arc::default() })
    }

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

    /// One API call with auth, retries and Atlas's error shape; the answer's
    /// JSON. GET and DELETE are retried on 5xx and network errors; a POST
    /// only on 429.
    pub(super) async fn call(
        &self,
        ep: Endpoint,
        parts: &[&str],
        query: &[(&str, String)],
        body: Option<&J>,
        d: Deadline,
    ) -> Result<J, Error> {
        let method = ep.method();
        let idempotent = method != reqwest::Method::POST;
        let path = ep.path(parts);
        let what = format!("{method} {path}");
        let url = self.url(&path, query)?;
        let media = ep.media_type();
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut failures = 0u32;
        let mut auth_retried = false;
        loop {
            let mut req = self.http.request(method.clone(), url.clone()).header(reqwest::header::ACCEPT, &media);
            if let Some(b) = &bytes {
                req = req.header(reqwest::header::CONTENT_TYPE, &media).body(b.clone());
            }
            let mut req = req.build().map_err(|e| Error::Protocol {
                what: what.clone(),
                reason: format!("cannot build the request: {e}"),
            })?;
            let sent = self.auth.authorize(&mut req, &self.http, &self.retry, d).await?;
            let err = match send(&self.http, req, &what).await {
                Ok(a) if a.success() => {
                    self.note_deprecation(ep, &a.headers);
                    return a.json(&what);
                }
                Ok(a) if a.status == 401 && self.auth.again_after_401(&a.headers, sent, auth_retried).await => {
                    auth_retried = true;
                    continue;
                }
                Ok(a) => self.api_error(ep, &what, &a),
                Err(e) => e,
            };
            let again = match &err {
                Error::Transport { .. } => idempotent,
                Error::Api { status, .. } => *status == 429 || (*status >= 500 && idempotent),
                _ => false,
            };
            match self.retry.wait(failures, err.retry_after(), d) {
                Some(delay) if again => {
                    warn!(call = %what, error = %err, retry_in = %Human(delay), "atlas call failed, retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(err),
            }
        }
    }

    /// The error an unsuccessful answer means: the credentials (401, 403),
    /// an API version Atlas no longer takes (406, 410), or Atlas's own error.
    fn api_error(&self, ep: Endpoint, what: &str, a: &Answer) -> Error {
        let status = a.status;
        let (mut code, mut detail) = atlas_error(&a.text);
        if status == 401 {
            return Error::Credentials { status, hint: credentials_hint(self.auth.hint(), &code, &detail) };
        }
        if status == 403 {
            let hint = format!(
                "check that the {} has a project role that allows {what} and that this coordinator's \
                 IP address is on the project's IP access list",
                self.auth.who()
            );
            return Error::Credentials { status, hint: credentials_hint(hint, &code, &detail) };
        }
        if code.is_empty() {
            code = a
                .headers
                .get("x-error-code")
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| format!("HTTP_{status}"), str::to_string);
        }
        if detail.is_empty() {
            detail = a.text.chars().take(200).collect();
        }
        if status == 406 || status == 410 {
            let why = if status == 406 { "is not accepted" } else { "is past its sunset date" };
            let (method, path, version) = ep.spec();
            detail = format!(
                "{detail}; API version {version} for {method} {path} {why}: this version of ripcord needs an update"
            );
        }
        Error::Api { status, code, detail, retry_after: retry_after(&a.headers) }
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
                "atlas api version is deprecated: update the version table in integrations/atlas/client.rs"
            );
        }
    }

    /// A cluster, or None when Atlas says CLUSTER_NOT_FOUND.
    pub(super) async fn get_cluster(&self, project: &str, name: &str, d: Deadline) -> Result<Option<J>, Error> {
        match self.call(Endpoint::GetCluster, &[project, name], &[], None, d).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.status() == Some(404) && e.code() == Some("CLUSTER_NOT_FOUND") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A cluster; Atlas's CLUSTER_NOT_FOUND is an error.
    pub(super) async fn cluster(&self, project: &str, name: &str, d: Deadline) -> Result<J, Error> {
        self.call(Endpoint::GetCluster, &[project, name], &[], None, d).await
    }

    /// Every item of a paged list.
    pub(super) async fn list_all(&self, ep: Endpoint, parts: &[&str], d: Deadline) -> Result<Vec<J>, Error> {
        const PAGE: usize = 100;
        let mut out = Vec::new();
        for page in 1..=100u32 {
            let query = [("itemsPerPage", PAGE.to_string()), ("pageNum", page.to_string())];
            let r = self.call(ep, parts, &query, None, d).await?;
            let results = r["results"].as_array().cloned().unwrap_or_default();
            let n = results.len();
            out.extend(results);
            let total = r["totalCount"].as_u64().map(|t| usize::try_from(t).unwrap_or(usize::MAX));
            if n < PAGE || total.is_some_and(|t| out.len() >= t) {
                break;
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Error shapes
// ---------------------------------------------------------------------------

/// `hint`, with what Atlas said.
pub(super) fn credentials_hint(hint: String, code: &str, detail: &str) -> String {
    match (code.is_empty(), detail.is_empty()) {
        (true, true) => hint,
        (false, true) => format!("{hint} (Atlas: {code})"),
        (true, false) => format!("{hint} (Atlas: {detail})"),
        (false, false) => format!("{hint} (Atlas: {code}: {detail})"),
    }
}

/// `errorCode` and `detail` (else `reason`) of an Atlas error body.
pub(super) fn atlas_error(text: &str) -> (String, String) {
    let v: J = serde_json::from_str(text).unwrap_or(J::Null);
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let detail = Some(s("detail")).filter(|d| !d.is_empty()).unwrap_or_else(|| s("reason"));
    (s("errorCode"), detail)
}

/// `Retry-After` in seconds, at most [`MAX_RETRY_AFTER`].
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retry_delays_grow_and_stay_bounded() {
        let r = Retry { attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for n in 0..10 {
            let d = r.delay(n);
            let exp = (Duration::from_millis(100) * 2u32.pow(n.min(16))).min(Duration::from_secs(1));
            assert!(d >= exp / 2 && d <= exp, "{n}: {d:?}");
        }
    }

    #[test]
    fn retry_waits_stop_at_the_last_try_and_the_deadline() {
        let r = Retry { attempts: 3, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let asked = Some(Duration::from_secs(2));
        assert_eq!(r.wait(0, asked, None), asked);
        assert!(r.wait(1, None, None).is_some());
        assert_eq!(r.wait(2, None, None), None, "three tries in all");
        assert_eq!(r.wait(0, asked, Some(Instant::now() + Duration::from_secs(1))), None, "past the deadline");
    }

    #[test]
    fn atlas_errors_and_retry_after_are_read() {
        assert_eq!(atlas_error(r#"{"errorCode":"X","detail":"d"}"#), ("X".into(), "d".into()));
        assert_eq!(atlas_error(r#"{"reason":"Not Found"}"#), (String::new(), "Not Found".into()));
        assert_eq!(atlas_error("<html>"), (String::new(), String::new()));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
