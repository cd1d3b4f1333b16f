//! `[escalation]` in the coordinator's config: the policy runs escalate
//! through, with the playbook's tiers unless the config says otherwise.
//!
//! ```toml
//! [escalation]
//! notices_to = ["on_call"]          # who hears a run start, end, fail a step, run over budget, wait, get acked
//! waiting_longer_than = "10m"       # an approval or checklist waiting longer is announced
//! drills = false                    # drills page nobody (their owners hear of them); true to rehearse paging
//! pagerduty_url = "https://events.pagerduty.com"
//!
//! [[escalation.tiers]]              # from the declared incident time; these are the playbook's
//! after = "0m"
//! to = ["on_call"]
//! text = "recovery started: the on-call DevOps engineer"
//!
//! [escalation.runbooks.redis-oom]   # one runbook's own tiers
//! tiers = [{ after = "0m", to = ["on_call"], text = "Redis out of memory" }]
//! ```
//!
//! A recipient is a role (`on_call`, `devops_lead`, `backend_lead`, `dba`,
//! `cto`), a vendor (`mongodb-atlas`, `aws`, `hosting`) or a contact's
//! section name. Each must reach someone in the roster: a configured
//! policy that names nobody is refused before the coordinator binds. With
//! no `[escalation]` section the playbook's tiers apply once the roster
//! has contacts (recipients nobody holds are left out, with a warning), and
//! nothing escalates without a roster.
//!
//! The policy for a run is fixed when it starts ([`Escalation::policy_for`]);
//! a runbook's own `notify: escalate:` tiers come before all of this.

use crate::contacts::{ContactRole, Roster, Vendor};
use ripcord_engine::duration;
use ripcord_engine::escalation::{Policy, Tier};
use ripcord_engine::run::{Mode, Topic};
use serde::Deserialize;
use std::collections::BTreeMap;
use tracing::warn;

/// The playbook's tiers (긴급 연락처 → 에스컬레이션): minutes from the
/// incident, recipients, what they are told.
const PLAYBOOK_TIERS: [(u64, &[&str], &str); 3] = [
    (0, &["on_call"], "recovery started: the on-call DevOps engineer takes it (0–15 minutes)"),
    (15, &["devops_lead", "backend_lead"], "not recovered after 15 minutes: the DevOps lead and the backend lead"),
    (30, &["cto", "mongodb-atlas", "aws"], "not recovered after 30 minutes: the CTO, and MongoDB Atlas and AWS support"),
];

/// `[escalation]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSection {
    /// Who hears about a run's notices other than tiers. Default: on_call.
    #[serde(default)]
    pub notices_to: Option<Vec<String>>,
    /// Which of those notices they hear (run_started, run_finished,
    /// step_failed, over_budget, waiting, acknowledged). Default: all.
    #[serde(default)]
    pub on: Option<Vec<Topic>>,
    /// An approval or checklist waiting longer is announced. Default 10m.
    #[serde(default)]
    pub waiting_longer_than: Option<String>,
    /// Whether drills escalate and page like incidents. Default false.
    #[serde(default)]
    pub drills: bool,
    /// PagerDuty's Events API (EU accounts: https://events.eu.pagerduty.com).
    #[serde(default)]
    pub pagerduty_url: Option<String>,
    /// The tiers, in order of time. Default: the playbook's.
    #[serde(default)]
    pub tiers: Option<Vec<TierSection>>,
    /// Per-runbook tiers, by runbook id.
    #[serde(default)]
    pub runbooks: BTreeMap<String, RunbookSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierSection {
    /// From the declared incident time, e.g. "15m".
    pub after: String,
    /// Roles, vendors or contacts.
    pub to: Vec<String>,
    /// What they are told.
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookSection {
    pub tiers: Vec<TierSection>,
}

/// A policy that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("escalation.{place}: {message}")]
pub struct Error {
    pub place: String,
    pub message: String,
}

/// The policies, checked against the roster.
#[derive(Debug, Clone, Default)]
pub struct Escalation {
    default: Policy,
    runbooks: BTreeMap<String, Vec<Tier>>,
    drills: bool,
    pagerduty_url: Option<String>,
}

impl Escalation {
    /// Nothing escalates (no roster, or tests).
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the section (absent: the playbook's) against `roster`.
    pub fn load(section: Option<&EscalationSection>, roster: &Roster) -> Result<Self, Error> {
        let Some(s) = section else { return Ok(Self::playbook(roster)) };
        let err = |place: &str, message: String| Error { place: place.to_string(), message };
        let notices_to = s.notices_to.clone().unwrap_or_else(|| vec![ContactRole::OnCall.as_str().to_string()]);
        for name in &notices_to {
            reaches(roster, name).map_err(|m| err("notices_to", m))?;
        }
        let waiting_longer_than_ms = match &s.waiting_longer_than {
            Some(w) => Some(millis(duration::parse(w).map_err(|e| err("waiting_longer_than", e.to_string()))?)),
            None => None,
        };
        let default_tiers = match &s.tiers {
            Some(t) => tiers(t, roster).map_err(|(i, m)| err(&format!("tiers[{i}]"), m))?,
            None => playbook_tiers(roster),
        };
        let mut runbooks = BTreeMap::new();
        for (id, r) in &s.runbooks {
            let t = tiers(&r.tiers, roster).map_err(|(i, m)| err(&format!("runbooks.{id}.tiers[{i}]"), m))?;
            runbooks.insert(id.clone(), t);
        }
        let default = Policy {
            tiers: default_tiers,
            notices_to,
            on: s.on.clone().unwrap_or_else(other_topics),
            waiting_longer_than_ms,
        };
        Ok(Self { default, runbooks, drills: s.drills, pagerduty_url: s.pagerduty_url.clone() })
    }

    /// The playbook's policy for `roster`: nothing without contacts;
    /// recipients nobody holds are left out, with a warning.
    fn playbook(roster: &Roster) -> Self {
        if roster.is_empty() {
            return Self::none();
        }
        let notices_to: Vec<String> =
            [ContactRole::OnCall.as_str().to_string()].into_iter().filter(|r| reaches(roster, r).is_ok()).collect();
        let default = Policy {
            tiers: playbook_tiers(roster),
            notices_to,
            on: other_topics(),
            waiting_longer_than_ms: None,
        };
        Self { default, ..Self::default() }
    }

    /// The policy a run of `runbook` in `mode` starts with.
    pub fn policy_for(&self, runbook: &str, mode: Mode) -> Policy {
        let mut p = self.default.clone();
        if let Some(t) = self.runbooks.get(runbook) {
            p.tiers = t.clone();
        }
        if mode == Mode::Drill && !self.drills {
            p.tiers.clear();
        }
        p
    }

    /// Where PagerDuty events go, if the config says.
    pub fn pagerduty_url(&self) -> Option<&str> {
        self.pagerduty_url.as_deref()
    }

    /// The default policy (for `ripcord contacts` and tests).
    pub fn default_policy(&self) -> &Policy {
        &self.default
    }
}

/// Every topic but escalation (tiers have their own recipients).
fn other_topics() -> Vec<Topic> {
    Topic::ALL.into_iter().filter(|t| *t != Topic::Escalation).collect()
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn playbook_tiers(roster: &Roster) -> Vec<Tier> {
    PLAYBOOK_TIERS
        .iter()
        .map(|(min, to, text)| {
            let (to, nobody): (Vec<String>, Vec<String>) =
                to.iter().map(|s| s.to_string()).partition(|r| reaches(roster, r).is_ok());
            if !nobody.is_empty() {
                warn!(after_min = min, recipients = %nobody.join(", "), "escalation tier: nobody in [contacts] holds these");
            }
            Tier { after_ms: min * 60_000, to, text: text.to_string() }
        })
        .collect()
}

/// Tiers as written, checked: durations, order, recipients.
fn tiers(written: &[TierSection], roster: &Roster) -> Result<Vec<Tier>, (usize, String)> {
    let mut out: Vec<Tier> = Vec::new();
    for (i, t) in written.iter().enumerate() {
        let after_ms = millis(duration::parse(&t.after).map_err(|e| (i, format!("after: {e}")))?);
        if let Some(prev) = out.last().filter(|p| p.after_ms >= after_ms) {
            return Err((i, format!("after: {} is not after the previous tier's {} ms", t.after, prev.after_ms)));
        }
        if t.to.is_empty() {
            return Err((i, "to: names nobody".into()));
        }
        for name in &t.to {
            reaches(roster, name).map_err(|m| (i, format!("to: {m}")))?;
        }
        out.push(Tier { after_ms, to: t.to.clone(), text: t.text.clone() });
    }
    Ok(out)
}

/// Whether `name` (a role, a vendor or a contact) reaches someone in the
/// roster; why not, naming the closest known name.
pub fn reaches(roster: &Roster, name: &str) -> Result<(), String> {
    if let Ok(role) = name.parse::<ContactRole>() {
        return match roster.by_role(role).next() {
            Some(_) => Ok(()),
            None => Err(format!("nobody in [contacts] holds role {role}")),
        };
    }
    if let Ok(vendor) = name.parse::<Vendor>() {
        return match roster.vendors().any(|c| c.vendor() == Some(vendor)) {
            true => Ok(()),
            false => Err(format!("no [contacts] section has vendor = \"{vendor}\"")),
        };
    }
    if roster.get(name).is_some() {
        return Ok(());
    }
    let mut known: Vec<&str> = ContactRole::ALL.iter().map(|r| r.as_str()).collect();
    known.extend(Vendor::ALL.iter().map(|v| v.as_str()));
    known.extend(roster.iter().map(|c| c.id.as_str()));
    match ripcord_engine::hint::closest(name, known.iter().copied()) {
        Some(h) => Err(format!("\"{name}\" is no role, vendor or contact (did you mean \"{h}\"?)")),
        None => Err(format!("\"{name}\" is no role, vendor or contact (known: {})", known.join(", "))),
    }
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
