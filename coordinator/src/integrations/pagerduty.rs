//! PagerDuty Events API v2 (`POST /v2/enqueue`), the escalation channel: a
//! typed client that triggers, acknowledges and resolves one alert per run
//! (the run id is the dedup key: one run, one incident).
//!
//! - The request and the answer are typed serde structs ([`Event`],
//!   [`Payload`], [`Response`]); a summary is cut to PagerDuty's 1,024
//!   characters on a character boundary.
//! - A 202 is [`Accepted`]; a 400 is [`Error::Invalid`] with PagerDuty's
//!   `errors` and is never retried; 429 and 5xx are retried with capped
//!   exponential backoff and jitter, [`Retry::attempts`] tries in all, then
//!   [`Error::RateLimited`] or [`Error::Server`]. A request that got no
//!   answer is retried the same way when the event has a dedup key (a
//!   repeated trigger merges into the open alert, acknowledge and resolve
//!   are idempotent), then [`Error::Unreachable`], without the URL.
//! - The routing key is a secret: it is held in a [`RoutingKey`] whose
//!   `Debug` prints `***`, is never logged, never in an error (PagerDuty's
//!   own words are scrubbed of it too).

use super::http::without_url;
use ripcord_engine::clock::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use tracing::warn;

/// Where PagerDuty's Events API is (EU accounts: `https://events.eu.pagerduty.com`).
pub const DEFAULT_BASE_URL: &str = "https://events.pagerduty.com";

/// The longest summary PagerDuty takes, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// An integration key (32 characters). A secret: `Debug` prints `***`; the
/// value is only read by [`RoutingKey::expose`] and serialization.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoutingKey(String);

impl RoutingKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the request body.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

/// What a trigger says about the alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// At most [`MAX_SUMMARY_CHARS`] characters (cut when sent).
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    /// When it happened, unix milliseconds; sent as RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub timestamp: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Payload {
    /// A payload with the three required fields (the summary cut to
    /// [`MAX_SUMMARY_CHARS`]) and nothing else.
    pub fn new(summary: &str, source: &str, severity: Severity) -> Self {
        Self {
            summary: truncate_chars(summary, MAX_SUMMARY_CHARS).to_string(),
            source: source.to_string(),
            severity,
            timestamp: None,
            component: None,
            group: None,
            class: None,
            custom_details: None,
        }
    }
}

/// A link shown on the alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The body of `POST /v2/enqueue`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub routing_key: RoutingKey,
    pub event_action: EventAction,
    /// At most 255 characters; PagerDuty makes one up for a trigger without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Required for a trigger, not sent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// PagerDuty's answer (202 and 400 alike).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// An event PagerDuty took (202), under this dedup key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub dedup_key: String,
}

/// Why an event was not taken. None of these ever holds the routing key or
/// the URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 400: the event is wrong; sending it again would not help.
    #[error("PagerDuty refused the event: {message}{}", list(errors))]
    Invalid { message: String, errors: Vec<String> },
    /// 429 on every try.
    #[error("PagerDuty is rate limiting this integration (429); gave up after the last retry")]
    RateLimited,
    /// 5xx on the last try.
    #[error("PagerDuty answered {0}; gave up after the last retry")]
    Server(u16),
    /// No answer: cannot connect, timed out, connection dropped.
    #[error("PagerDuty is unreachable: {0}")]
    Unreachable(String),
    /// An answer the API does not document (another status, a body that
    /// is not PagerDuty's).
    #[error("PagerDuty answered {status} unexpectedly: {body}")]
    Unexpected { status: u16, body: String },
}

fn list(errors: &[String]) -> String {
    if errors.is_empty() { String::new() } else { format!(" ({})", errors.join("; ")) }
}

pub use super::backoff::Retry;

/// How a 429, a 5xx or a missing answer is retried.
pub const DEFAULT_RETRY: Retry = Retry { attempts: 5, base: Duration::from_millis(500), max: Duration::from_secs(30) };

/// The Events API v2 client.
#[derive(Clone)]
pub struct PagerDuty {
    client: reqwest::Client,
    enqueue_url: String,
    retry: Retry,
}

impl fmt::Debug for PagerDuty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDuty").field("retry", &self.retry).finish_non_exhaustive()
    }
}

impl Default for PagerDuty {
    fn default() -> Self {
        Self::new(DEFAULT_BASE_URL)
    }
}

impl PagerDuty {
    /// A client for the Events API at `base_url` (scheme and host, e.g.
    /// [`DEFAULT_BASE_URL`]), with the default [`Retry`].
    pub fn new(base_url: &str) -> Self {
        ripcord_pki::tls::install_crypto_provider();
        let client = super::http::client();
        let enqueue_url = format!("{}/v2/enqueue", base_url.trim_end_matches('/'));
        Self { client, enqueue_url, retry: DEFAULT_RETRY }
    }

    /// The same client retrying as `retry` says.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Opens the alert `dedup_key` (or merges into it while it is open).
    pub async fn trigger(
        &self,
        routing_key: &RoutingKey,
        dedup_key: &str,
        payload: Payload,
    ) -> Result<Accepted, Error> {
        self.send(&Event {
            routing_key: routing_key.clone(),
            event_action: EventAction::Trigger,
            dedup_key: Some(dedup_key.to_string()),
            payload: Some(payload),
            links: vec![],
        })
        .await
    }

    /// Acknowledges the alert `dedup_key`.
    pub async fn acknowledge(&self, routing_key: &RoutingKey, dedup_key: &str) -> Result<Accepted, Error> {
        self.send(&bare(routing_key, EventAction::Acknowledge, dedup_key)).await
    }

    /// Resolves the alert `dedup_key`.
    pub async fn resolve(&self, routing_key: &RoutingKey, dedup_key: &str) -> Result<Accepted, Error> {
        self.send(&bare(routing_key, EventAction::Resolve, dedup_key)).await
    }

    /// Sends any event (links, no dedup key…), retrying as the module says.
    pub async fn send(&self, event: &Event) -> Result<Accepted, Error> {
        let mut event = event.clone();
        if let Some(p) = &mut event.payload {
            let cut = truncate_chars(&p.summary, MAX_SUMMARY_CHARS).len();
            p.summary.truncate(cut);
        }
        let secret = event.routing_key.expose().to_string();
        let attempts = self.retry.attempts.max(1);
        let mut failures = 0;
        loop {
            let err = match self.once(&event, &secret).await {
                Ok(accepted) => return Ok(accepted),
                Err(e) => e,
            };
            let again = match &err {
                Error::RateLimited | Error::Server(_) => true,
                Error::Unreachable(_) => event.dedup_key.is_some(),
                Error::Invalid { .. } | Error::Unexpected { .. } => false,
            };
            if !again || failures + 1 >= attempts {
                return Err(err);
            }
            let delay = self.retry.delay(failures);
            failures += 1;
            warn!(
                action = ?event.event_action,
                dedup_key = event.dedup_key.as_deref().unwrap_or(""),
                error = %err,
                attempt = failures,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "pagerduty event not taken, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One try.
    async fn once(&self, event: &Event, secret: &str) -> Result<Accepted, Error> {
        let resp = self
            .client
            .post(&self.enqueue_url)
            .json(event)
            .send()
            .await
            .map_err(|e| Error::Unreachable(scrub(&without_url(&e), secret)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| Error::Unreachable(scrub(&without_url(&e), secret)))?;
        let body: Option<Response> = serde_json::from_str(&text).ok();
        match (status, body) {
            (200..=299, Some(Response { dedup_key: Some(dedup_key), .. })) => Ok(Accepted { dedup_key }),
            (400, Some(r)) => Err(Error::Invalid {
                message: scrub(&r.message, secret),
                errors: r.errors.iter().map(|e| scrub(e, secret)).collect(),
            }),
            (429, _) => Err(Error::RateLimited),
            (500..=599, _) => Err(Error::Server(status)),
            (status, _) => Err(Error::Unexpected { status, body: scrub(truncate_chars(text.trim(), 200), secret) }),
        }
    }
}

fn bare(routing_key: &RoutingKey, event_action: EventAction, dedup_key: &str) -> Event {
    Event {
        routing_key: routing_key.clone(),
        event_action,
        dedup_key: Some(dedup_key.to_string()),
        payload: None,
        links: vec![],
    }
}

/// `text` with the routing key replaced by `***` (whatever the server says
/// back stays clear of it).
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() { text.to_string() } else { text.replace(secret, "***") }
}

/// The first `max` characters of `s`, cut on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

mod rfc3339_opt {
    use ripcord_engine::clock::{self, Millis};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(ms) => s.serialize_str(&clock::rfc3339(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(t) => clock::parse_rfc3339(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32";

    #[test]
    fn truncate_chars_cuts_on_a_character_boundary() {
        assert_eq!(truncate_chars("abc", 2), "ab");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abc", 10), "abc");
        assert_eq!(truncate_chars("ééé", 2), "éé");
        let long = "é".repeat(MAX_SUMMARY_CHARS + 5);
        let p = Payload::new(&long, "ripcord", Severity::Critical);
        assert_eq!(p.summary.chars().count(), MAX_SUMMARY_CHARS);
    }

    #[test]
    fn event_serializes_like_the_documented_body() {
        let mut payload = Payload::new("restore chat-prod", "ripcord", Severity::Critical);
        payload.timestamp = Some(1_795_741_749_552);
        payload.component = Some("mongo".into());
        let event = Event {
            routing_key: RoutingKey::new(KEY),
            event_action: EventAction::Trigger,
            dedup_key: Some("run-1".into()),
            payload: Some(payload),
            links: vec![Link { href: "https://x.invalid/run-1".into(), text: None }],
        };
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(
            v,
            json!({
                "routing_key": KEY, "event_action": "trigger", "dedup_key": "run-1",
                "payload": {"summary": "restore chat-prod", "source": "ripcord", "severity": "critical",
                            "timestamp": "2026-11-27T01:09:09.552Z", "component": "mongo"},
                "links": [{"href": "https://x.invalid/run-1"}]
            })
        );
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), event);
        let ack = serde_json::to_value(bare(&RoutingKey::new(KEY), EventAction::Acknowledge, "run-1")).unwrap();
        assert_eq!(ack, json!({"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "run-1"}));
    }

    #[test]
    fn debug_of_a_routing_key_and_an_event_hides_the_key() {
        let event = bare(&RoutingKey::new(KEY), EventAction::Resolve, "run-1");
        assert_eq!(format!("{:?}", RoutingKey::new(KEY)), "\"***\"");
        assert!(!format!("{event:?}").contains(KEY));
        assert!(!format!("{event:#?}").contains(KEY));
    }

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn retry_log_holds_neither_routing_key_nor_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let retry = Retry { attempts: 2, base: Duration::from_millis(1), max: Duration::from_millis(1) };
        let pd = PagerDuty::new(&format!("http://{addr}")).with_retry(retry);

        let err = pd.resolve(&RoutingKey::new(KEY), "run-1").await.unwrap_err();

        assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("retrying") && text.contains("run-1"), "nothing logged: {text}");
        assert!(!text.contains(KEY) && !text.contains(&addr), "{text}");
    }

    #[test]
    fn retry_delay_is_capped_and_at_least_half() {
        let r = Retry { attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        for n in 0..40 {
            let d = r.delay(n);
            let exp = Duration::from_millis(100).saturating_mul(1 << n.min(16)).min(Duration::from_secs(1));
            assert!(d >= exp / 2 && d <= exp, "delay {n} = {d:?}");
        }
    }
}
