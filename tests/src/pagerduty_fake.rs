//! A fake PagerDuty Events API v2 for tests, following the documented API
//! (`../shared/reference/pagerduty-events-v2.md`).
//!
//! `POST /v2/enqueue` checks the body the way PagerDuty does: a JSON
//! object; `routing_key` 32 characters and one of the fake's integration
//! keys; `event_action` `trigger`, `acknowledge` or `resolve`; `dedup_key`
//! a string of at most 255 characters (a trigger without one gets one made
//! up; acknowledge and resolve need one); a trigger's `payload` with a
//! `summary` of at most 1,024 characters, a `source`, a `severity` of
//! `critical`, `error`, `warning` or `info` and, when given, an RFC 3339
//! `timestamp`; `links` a list of objects with an `href`. A good event is
//! answered 202 `{"status":"success","message":"Event processed",
//! "dedup_key":…}`, a bad one 400 `{"status":"invalid event","message":
//! "Event object is invalid","errors":[…]}` and changes nothing.
//!
//! Alerts are kept by dedup key: a trigger opens one (or, while it is open,
//! is merged into it: counted, still one alert), acknowledge and resolve
//! move it along (an event for an alert that is not open is taken and
//! changes nothing); a trigger after a resolve opens a new alert under the
//! same key. Every request to `/v2/enqueue` is recorded with the status it
//! got; [`FakePagerDuty::fail_next`] answers the next N with 429 or 5xx.
//! A small HTTP/1.1 server on std threads, on [`crate::http`]'s reader and
//! accept loop.

use serde_json::{Value as J, json};
use std::collections::{BTreeSet, VecDeque};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Where an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Triggered,
    Acknowledged,
    Resolved,
}

/// One alert, as PagerDuty would show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub dedup_key: String,
    pub state: AlertState,
    /// Triggers taken for it (the first and every one merged into it).
    pub triggers: usize,
    /// The summary of the first trigger.
    pub summary: String,
}

/// One request to `/v2/enqueue` and the status it was answered with.
#[derive(Clone, Debug)]
pub struct Seen {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body as sent (JSON when it parsed, else a string of the bytes).
    pub body: J,
}

impl Seen {
    pub fn event_action(&self) -> Option<&str> {
        self.body.get("event_action").and_then(J::as_str)
    }

    pub fn dedup_key(&self) -> Option<&str> {
        self.body.get("dedup_key").and_then(J::as_str)
    }
}

#[derive(Default)]
struct State {
    keys: BTreeSet<String>,
    events: Vec<Seen>,
    incidents: Vec<Incident>,
    /// Statuses to answer the next requests with, first first.
    failures: VecDeque<u16>,
    /// Answer this to every request from now on.
    always: Option<u16>,
}

#[derive(Clone)]
pub struct FakePagerDuty {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

/// A 32-character integration key, different on every call.
pub fn new_routing_key() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl FakePagerDuty {
    /// Starts on 127.0.0.1:0 knowing one integration key, [`Self::routing_key`].
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        state.lock().unwrap().keys.insert(new_routing_key());
        let s = Arc::clone(&state);
        crate::http::serve_connections(listener, move |stream| {
            let _ = serve(stream, &s);
        });
        Self { addr, state }
    }

    /// What `PagerDuty::new` takes.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The integration key the fake started with.
    pub fn routing_key(&self) -> String {
        self.state.lock().unwrap().keys.iter().next().cloned().expect("a key")
    }

    /// The next `n` requests get `status` (429 or a 5xx) and change nothing.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.state.lock().unwrap().failures.extend(std::iter::repeat_n(status, n));
    }

    /// Every request from now on gets `status` and changes nothing.
    pub fn fail_always(&self, status: u16) {
        self.state.lock().unwrap().always = Some(status);
    }

    /// Every request to `/v2/enqueue` so far, failed ones too.
    pub fn events(&self) -> Vec<Seen> {
        self.state.lock().unwrap().events.clone()
    }

    /// Every alert opened so far, oldest first.
    pub fn incidents(&self) -> Vec<Incident> {
        self.state.lock().unwrap().incidents.clone()
    }

    /// The newest alert under `dedup_key`.
    pub fn incident(&self, dedup_key: &str) -> Option<Incident> {
        self.state.lock().unwrap().incidents.iter().rev().find(|i| i.dedup_key == dedup_key).cloned()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(req) = crate::http::read_request(&mut reader)? {
        let (status, body) = if req.method == "POST" && req.path == "/v2/enqueue" {
            let sent = serde_json::from_slice::<J>(&req.body)
                .unwrap_or_else(|_| J::String(String::from_utf8_lossy(&req.body).into_owned()));
            let mut st = state.lock().unwrap();
            let (status, body) = st.enqueue(&sent, req.header("content-type"));
            st.events.push(Seen { status, content_type: req.header("content-type").map(str::to_string), body: sent });
            (status, body)
        } else {
            (404, json!({"status": "not found", "message": "Not Found"}))
        };
        let text = body.to_string();
        write!(
            stream,
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            reason(status),
            text.len()
        )?;
        stream.flush()?;
        if req.closes() {
            break;
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn invalid(errors: Vec<String>) -> (u16, J) {
    (400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}))
}

/// A field that must be a non-blank string.
fn text<'a>(v: &'a J, field: &str, name: &str, errors: &mut Vec<String>) -> Option<&'a str> {
    match v.get(field) {
        Some(J::String(s)) if !s.trim().is_empty() => Some(s),
        Some(J::String(_)) | None | Some(J::Null) => {
            errors.push(format!("'{name}' is missing or blank"));
            None
        }
        Some(_) => {
            errors.push(format!("'{name}' must be a string"));
            None
        }
    }
}

impl State {
    fn enqueue(&mut self, body: &J, content_type: Option<&str>) -> (u16, J) {
        if let Some(status) = self.always.or_else(|| self.failures.pop_front()) {
            return match status {
                429 => (
                    429,
                    json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly.  Please retry later."}),
                ),
                s => (s, json!({"status": "error", "message": "Internal Server Error"})),
            };
        }
        if !content_type.is_some_and(|c| c.starts_with("application/json")) {
            return invalid(vec!["Content-Type must be application/json".into()]);
        }
        if !body.is_object() {
            return invalid(vec!["Event object is not valid JSON".into()]);
        }
        let mut errors = Vec::new();
        if let Some(key) = text(body, "routing_key", "routing_key", &mut errors) {
            if key.chars().count() != 32 {
                errors.push("'routing_key' must be 32 characters".into());
            } else if !self.keys.contains(key) {
                errors.push("'routing_key' is not a known integration key".into());
            }
        }
        let action = text(body, "event_action", "event_action", &mut errors);
        if let Some(a) = action
            && !matches!(a, "trigger" | "acknowledge" | "resolve")
        {
            errors.push("'event_action' must be one of trigger, acknowledge, resolve".into());
        }
        let dedup_key = match body.get("dedup_key") {
            None | Some(J::Null) => None,
            Some(J::String(k)) if k.chars().count() > 255 => {
                errors.push("'dedup_key' must be at most 255 characters".into());
                None
            }
            Some(J::String(k)) if !k.is_empty() => Some(k.clone()),
            Some(J::String(_)) => {
                errors.push("'dedup_key' is blank".into());
                None
            }
            Some(_) => {
                errors.push("'dedup_key' must be a string".into());
                None
            }
        };
        if matches!(action, Some("acknowledge" | "resolve")) && matches!(body.get("dedup_key"), None | Some(J::Null)) {
            errors.push("'dedup_key' is missing or blank".into());
        }
        let mut summary = String::new();
        if action == Some("trigger") {
            match body.get("payload") {
                Some(p @ J::Object(_)) => {
                    if let Some(s) = text(p, "summary", "payload.summary", &mut errors) {
                        if s.chars().count() > 1024 {
                            errors.push("'payload.summary' must be at most 1024 characters".into());
                        }
                        summary = s.to_string();
                    }
                    text(p, "source", "payload.source", &mut errors);
                    if let Some(sev) = text(p, "severity", "payload.severity", &mut errors)
                        && !matches!(sev, "critical" | "error" | "warning" | "info")
                    {
                        errors.push("'payload.severity' must be one of critical, error, warning, info".into());
                    }
                    match p.get("timestamp") {
                        None | Some(J::Null) => {}
                        Some(J::String(t)) if ripcord_engine::clock::parse_rfc3339(t).is_some() => {}
                        Some(_) => errors.push("'payload.timestamp' must be an ISO 8601 time".into()),
                    }
                    if p.get("custom_details").is_some_and(|d| !d.is_object() && !d.is_null()) {
                        errors.push("'payload.custom_details' must be an object".into());
                    }
                }
                _ => errors.push("'payload' is missing or not an object".into()),
            }
        }
        match body.get("links") {
            None | Some(J::Null) => {}
            Some(J::Array(links)) if links.iter().all(|l| l.get("href").is_some_and(J::is_string)) => {}
            Some(_) => errors.push("'links' must be a list of objects with an 'href'".into()),
        }
        if !errors.is_empty() {
            return invalid(errors);
        }
        // PagerDuty makes one up for a trigger without one.
        let dedup_key = dedup_key.unwrap_or_else(|| format!("{:032x}", fastrand::u128(..)));
        let open =
            self.incidents.iter_mut().rev().find(|i| i.dedup_key == dedup_key && i.state != AlertState::Resolved);
        match (action, open) {
            (Some("trigger"), Some(i)) => i.triggers += 1,
            (Some("trigger"), None) => self.incidents.push(Incident {
                dedup_key: dedup_key.clone(),
                state: AlertState::Triggered,
                triggers: 1,
                summary,
            }),
            (Some("acknowledge"), Some(i)) => i.state = AlertState::Acknowledged,
            (Some("resolve"), Some(i)) => i.state = AlertState::Resolved,
            // Acknowledge or resolve of an alert that is not open: taken, no change.
            _ => {}
        }
        (202, json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}))
    }
}
