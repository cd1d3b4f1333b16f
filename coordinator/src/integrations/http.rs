//! `http.check` and `notify`: reqwest, with the step's idempotency key sent
//! as the `Idempotency-Key` header so that a request repeated after a
//! coordinator restart can be recognised by the receiver.

use super::Outcome;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

fn arg<'a>(args: &'a Value, name: &str) -> Option<&'a Value> {
    args.get(name)
}

fn arg_str(args: &Value, name: &str) -> Option<String> {
    arg(args, name).map(|v| v.to_string())
}

fn arg_duration(args: &Value, name: &str) -> Result<Option<Duration>, String> {
    match arg(args, name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => ripcord_engine::duration::parse(&v.to_string()).map(Some).map_err(|e| format!("{name}: {e}")),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Does `actual` contain everything in `expected` (objects by key, other
/// values by equality)? Returns the first mismatch.
fn json_contains(actual: &serde_json::Value, expected: &serde_json::Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (serde_json::Value::Object(a), serde_json::Value::Object(e)) => {
            for (k, ev) in e {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match a.get(k) {
                    Some(av) => json_contains(av, ev, &p)?,
                    None => return Err(format!("body has no field {p}")),
                }
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        // YAML `1` vs JSON `1.0` and the like.
        (serde_json::Value::Number(a), serde_json::Value::Number(e)) if a.as_f64() == e.as_f64() => Ok(()),
        (a, e) => Err(format!("body field {path} is {a}, expected {e}")),
    }
}

/// The HTTP client every plain-HTTP integration uses: 30 s a request, 10 s
/// to connect, ripcord's user agent.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("ripcord/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

impl Http {
    pub fn new() -> Self {
        Self { client: client() }
    }

    /// One probe: Ok(outputs) if everything expected holds.
    async fn probe(&self, key: &Key, args: &Value) -> Result<BTreeMap<String, Value>, String> {
        let url = arg_str(args, "url").ok_or("missing url")?;
        let method = arg_str(args, "method").unwrap_or_else(|| "GET".into()).to_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| format!("bad method {method}"))?;
        let mut req = self.client.request(method, &url).header(IDEMPOTENCY_HEADER, key.to_string());
        if let Some(Value::Map(h)) = arg(args, "headers") {
            for (k, v) in h {
                req = req.header(k.as_str(), v.to_string());
            }
        }
        if let Some(body) = arg(args, "body") {
            req = req.json(&to_json(body));
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| format!("request failed: {}", without_url(&e)))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| format!("reading body: {}", without_url(&e)))?;
        let latency = started.elapsed();
        let expect_status = match arg(args, "expect_status") {
            Some(Value::Int(s)) => Some(*s),
            Some(v) => v.to_string().parse::<i64>().ok(),
            None => None,
        };
        let short: String = text.chars().take(200).collect();
        match expect_status {
            Some(want) if i64::from(status) != want => {
                return Err(format!("status {status}, expected {want}; body: {short}"));
            }
            None if !(200..300).contains(&status) => return Err(format!("status {status}; body: {short}")),
            _ => {}
        }
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(short.clone()));
        if let Some(expected) = arg(args, "expect_json") {
            json_contains(&body, &to_json(expected), "")?;
        }
        if let Some(max) = arg_duration(args, "max_latency")?
            && latency > max
        {
            return Err(format!("took {latency:?}, more than max_latency {max:?}"));
        }
        let mut out = BTreeMap::new();
        out.insert("status".into(), Value::Int(i64::from(status)));
        out.insert("latency_ms".into(), Value::Int(i64::try_from(latency.as_millis()).unwrap_or(i64::MAX)));
        out.insert("body".into(), serde_json::from_value(body).unwrap_or(Value::Null));
        Ok(out)
    }

    /// `http.check`: probes until it passes or `within` runs out.
    pub async fn check(&self, key: &Key, args: &Value) -> Outcome {
        let within = match arg_duration(args, "within") {
            Ok(w) => w,
            Err(e) => return Outcome::Failed(e),
        };
        let interval = match arg_duration(args, "interval") {
            Ok(i) => i.unwrap_or(Duration::from_secs(2)),
            Err(e) => return Outcome::Failed(e),
        };
        let deadline = within.map(|w| Instant::now() + w);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.probe(key, args).await {
                Ok(mut out) => {
                    out.insert("attempts".into(), Value::Int(attempts));
                    return Outcome::Succeeded(out);
                }
                Err(e) => match deadline {
                    Some(d) if Instant::now() + interval < d => tokio::time::sleep(interval).await,
                    _ => {
                        let tries = if attempts > 1 { format!(" (after {attempts} probes)") } else { String::new() };
                        return Outcome::Failed(format!("{e}{tries}"));
                    }
                },
            }
        }
    }

    /// `notify`: POST `{"text": …}` (Slack-compatible) to the webhook.
    pub async fn notify(&self, key: &Key, args: &Value) -> Outcome {
        let Some(url) = arg_str(args, "webhook") else { return Outcome::Failed("missing webhook".into()) };
        let text = arg_str(args, "text").unwrap_or_default();
        match self.post_text(&url, &key.to_string(), &text, arg_str(args, "channel").as_deref()).await {
            Ok(status) => {
                let mut out = BTreeMap::new();
                out.insert("status".into(), Value::Int(i64::from(status)));
                Outcome::Succeeded(out)
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// POSTs a Slack-compatible message (`{"text": …}`) to `url` with an
    /// idempotency key; the answer's status, or why there was none. The
    /// error never carries the URL (webhook URLs are secrets).
    pub async fn post_text(
        &self,
        url: &str,
        key: &str,
        text: &str,
        channel: Option<&str>,
    ) -> Result<u16, WebhookError> {
        let mut body = serde_json::Map::new();
        body.insert("text".into(), serde_json::Value::String(text.to_string()));
        if let Some(c) = channel {
            body.insert("channel".into(), serde_json::Value::String(c.to_string()));
        }
        self.post_json(url, key, &body).await
    }

    /// POSTs `body` as JSON to `url` with an idempotency key; the answer's
    /// status, or why there was none, never with the URL.
    pub async fn post_json(&self, url: &str, key: &str, body: &impl serde::Serialize) -> Result<u16, WebhookError> {
        match self.client.post(url).header(IDEMPOTENCY_HEADER, key).json(body).send().await {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err(WebhookError::Status(r.status().as_u16())),
            Err(e) => Err(WebhookError::Unreachable(without_url(&e))),
        }
    }
}

/// Why a webhook did not take a message; never with the URL (webhook URLs
/// are secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook answered {0}")]
    Status(u16),
    #[error("webhook request failed: {0}")]
    Unreachable(String),
}

/// Why a request got no answer, with every cause in the chain, without
/// the URL (webhook URLs carry tokens). Every HTTP integration says it so.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
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
        parts.push(if e.is_status() { "bad status".to_string() } else { "request error".to_string() });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_contains_table() {
        let body = json!({"ok": true, "ts": "x", "db": {"up": 1}});
        assert!(json_contains(&body, &json!({"ok": true}), "").is_ok());
        assert!(json_contains(&body, &json!({"db": {"up": 1.0}}), "").is_ok());
        assert_eq!(
            json_contains(&body, &json!({"ok": false}), ""),
            Err("body field ok is true, expected false".into())
        );
        assert_eq!(json_contains(&body, &json!({"db": {"down": 1}}), ""), Err("body has no field db.down".into()));
    }
}
