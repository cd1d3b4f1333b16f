//! Delivering a run's notices ([`Notice`]): to the runbook's own webhook,
//! and to every contact its recipients name (roles, vendors, contacts of
//! the roster) on each of their channels.
//!
//! - A Slack-compatible webhook gets `{"text": …}`; a notice that names a
//!   vendor carries the vendor's instructions, so the people called know
//!   how to open the case.
//! - A generic JSON webhook gets a [`WebhookBody`].
//! - PagerDuty gets the notice's pager event only (an escalation tier
//!   triggers, `ripcord ack` acknowledges, the run's end resolves), with
//!   the run id as `dedup_key`: one run is one incident. Other notices do
//!   not page.
//!
//! Every request carries an idempotency key (run, notice, contact,
//! channel), so a notice delivered again after a restart is recognised by
//! receivers that honour it; PagerDuty merges by `dedup_key`. What comes
//! back names who was reached (`kim (slack)`) and why others were not —
//! never a URL or a key.

use crate::contacts::{Channel, Contact, ContactRole, Kind, Roster, Vendor};
use crate::integrations::http::Http;
use crate::integrations::pagerduty::{self, PagerDuty, Payload, RoutingKey, Severity};
use ripcord_engine::run::{Key, Notice, Page, Topic};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::task::JoinSet;

/// How a notice went: who was reached, and why the others were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub reached: Vec<String>,
    pub error: Option<String>,
}

/// What a generic JSON webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookBody {
    pub run: String,
    /// The notice's name in the run (`@escalate.2`).
    pub notice: String,
    pub topic: Topic,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    pub text: String,
}

/// The label of the runbook's own webhook in what was reached.
pub const RUNBOOK_WEBHOOK: &str = "runbook webhook";

/// Delivers notices to the roster's channels.
#[derive(Clone)]
pub struct Notices {
    roster: Arc<Roster>,
    http: Http,
    pagerduty: PagerDuty,
}

impl Notices {
    pub fn new(roster: Arc<Roster>, pagerduty: PagerDuty) -> Self {
        Self { roster, http: Http::new(), pagerduty }
    }

    /// Sends `notice` (named `name` in run `run`) everywhere it goes, each
    /// channel at the same time.
    pub async fn deliver(&self, run: &str, name: &str, notice: &Notice) -> Delivery {
        let (contacts, mut problems) = recipients(&self.roster, &notice.to);
        let text = with_instructions(&notice.text, &contacts);
        let mut tasks = JoinSet::new();
        if let Some(url) = notice.webhook.clone() {
            // The same key the `notify` action would give it.
            let key = Key { run: run.to_string(), step: name.to_string(), attempt: 0 }.to_string();
            let (http, text) = (self.http.clone(), notice.text.clone());
            tasks.spawn(async move {
                let r = http.post_text(&url, &key, &text, None).await.map(|_| ()).map_err(|e| e.to_string());
                (RUNBOOK_WEBHOOK.to_string(), r)
            });
        }
        // Contacts that share a PagerDuty service get one event: the run
        // is one incident there.
        let mut paged: Vec<&str> = Vec::new();
        for contact in contacts {
            for channel in &contact.channels {
                if let Channel::PagerDuty { routing_key } = channel {
                    if paged.contains(&routing_key.expose()) {
                        continue;
                    }
                    paged.push(routing_key.expose());
                }
                let Some(send) = self.send(run, name, notice, &text, contact, channel) else { continue };
                tasks.spawn(send);
            }
        }
        let mut reached = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((who, Ok(()))) => reached.push(who),
                Ok((who, Err(e))) => problems.push(format!("{who}: {e}")),
                Err(e) => problems.push(format!("a delivery task failed: {e}")),
            }
        }
        reached.sort();
        problems.sort();
        Delivery { reached, error: (!problems.is_empty()).then(|| problems.join("; ")) }
    }

    /// The request that sends `notice` on `channel`, if the channel takes
    /// it (PagerDuty takes pager events only).
    fn send(
        &self,
        run: &str,
        name: &str,
        notice: &Notice,
        text: &str,
        contact: &Contact,
        channel: &Channel,
    ) -> Option<impl Future<Output = (String, Result<(), String>)> + Send + 'static> {
        let kind = channel.kind().as_str();
        let key = format!("{run}/{name}/{}/{kind}", contact.id);
        let (http, pd, run) = (self.http.clone(), self.pagerduty.clone(), run.to_string());
        let job: Job = match channel {
            Channel::Slack(url) => Job::Slack { url: url.expose().to_string(), text: text.to_string() },
            Channel::Webhook(url) => Job::Json {
                url: url.expose().to_string(),
                body: WebhookBody {
                    run: run.clone(),
                    notice: name.to_string(),
                    topic: notice.topic,
                    step: notice.step.clone(),
                    page: notice.page,
                    text: text.to_string(),
                },
            },
            Channel::PagerDuty { routing_key } => {
                Job::Page { key: RoutingKey::new(routing_key.expose()), page: notice.page?, summary: notice.text.clone() }
            }
        };
        let who = match &job {
            Job::Page { page, .. } => format!("{} (pagerduty {})", contact.id, page_name(*page)),
            _ => format!("{} ({kind})", contact.id),
        };
        Some(async move {
            let r = match job {
                Job::Slack { url, text } => http.post_text(&url, &key, &text, None).await.map(|_| ()).map_err(|e| e.to_string()),
                Job::Json { url, body } => http.post_json(&url, &key, &body).await.map(|_| ()).map_err(|e| e.to_string()),
                Job::Page { key, page, summary } => page_once(&pd, &key, &run, page, &summary).await.map_err(|e| e.to_string()),
            };
            (who, r)
        })
    }
}

enum Job {
    Slack { url: String, text: String },
    Json { url: String, body: WebhookBody },
    Page { key: RoutingKey, page: Page, summary: String },
}

fn page_name(p: Page) -> &'static str {
    match p {
        Page::Trigger => "trigger",
        Page::Acknowledge => "acknowledge",
        Page::Resolve => "resolve",
    }
}

async fn page_once(pd: &PagerDuty, key: &RoutingKey, run: &str, page: Page, summary: &str) -> Result<(), pagerduty::Error> {
    match page {
        Page::Trigger => pd.trigger(key, run, Payload::new(summary, "ripcord", Severity::Critical)).await?,
        Page::Acknowledge => pd.acknowledge(key, run).await?,
        Page::Resolve => pd.resolve(key, run).await?,
    };
    Ok(())
}

/// The contacts `names` reach, each once in roster order, and the names
/// that reach nobody.
pub fn recipients<'a>(roster: &'a Roster, names: &[String]) -> (Vec<&'a Contact>, Vec<String>) {
    let mut out: Vec<&Contact> = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let found: Vec<&Contact> = if let Ok(role) = name.parse::<ContactRole>() {
            roster.by_role(role).collect()
        } else if let Ok(vendor) = name.parse::<Vendor>() {
            roster.vendors().filter(|c| c.vendor() == Some(vendor)).collect()
        } else {
            roster.get(name).into_iter().collect()
        };
        if found.is_empty() {
            problems.push(format!("{name}: nobody in [contacts] to reach"));
        }
        for c in found {
            if !out.iter().any(|o| o.id == c.id) {
                out.push(c);
            }
        }
    }
    (out, problems)
}

/// `text`, and for each vendor among `contacts` how to open its case.
fn with_instructions(text: &str, contacts: &[&Contact]) -> String {
    let mut out = text.to_string();
    for c in contacts {
        if let Kind::Vendor { instructions, url, email, .. } = &c.kind {
            out.push_str(&format!("\n- {}: {instructions}", c.name));
            for extra in [email, url].into_iter().flatten() {
                out.push_str(&format!(" ({extra})"));
            }
        }
    }
    out
}
