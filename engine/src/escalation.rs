//! The escalation policy a run follows: who is called at which time after
//! the declared incident, and who hears about the run's other notices.
//!
//! The coordinator holds the policies (its `[escalation]` config, with the
//! playbook's tiers by default) and hands the run the one that applies
//! when it starts ([`crate::run::NewRun::escalation`]); the run keeps it in
//! its state, so a restart or a config change never changes who a running
//! incident calls. A runbook's own `notify: escalate:` tiers come first.
//!
//! Recipients are names the coordinator's roster resolves: a role
//! (`on_call`, `devops_lead`…), a vendor (`mongodb-atlas`, `aws`) or a
//! contact's own name. The engine passes them through unread.

use crate::run::Topic;
use serde::{Deserialize, Serialize};

/// One tier: at `after_ms` from the incident, unless the run recovered or
/// was acknowledged, `to` are called with `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub after_ms: u64,
    /// Recipients; empty: only the runbook's own webhook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    pub text: String,
}

/// What a run escalates through; `Policy::default()` calls nobody.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    /// In order of time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// Who hears about the run's other notices (those in `on`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices_to: Vec<String>,
    /// Which notices `notices_to` hear about (escalation tiers go to their
    /// own recipients whatever this says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<Topic>,
    /// A person's approval or checklist waiting longer is announced to
    /// `notices_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_longer_than_ms: Option<u64>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty() && self.notices_to.is_empty()
    }

    /// Whether `notices_to` hear about `topic`.
    pub fn tells(&self, topic: Topic) -> bool {
        !self.notices_to.is_empty() && self.on.contains(&topic)
    }
}

/// The recipients in `a` and then those of `b` not in `a`.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for x in b {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_tells_nobody_and_union_keeps_order_once() {
        let p = Policy { on: vec![Topic::RunStarted], ..Policy::default() };
        assert!(p.is_empty());
        assert!(!p.tells(Topic::RunStarted), "nobody to tell");
        let p = Policy { notices_to: vec!["on_call".into()], ..p };
        assert!(p.tells(Topic::RunStarted));
        assert!(!p.tells(Topic::StepFailed));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(union(&s(&["a", "b"]), &s(&["b", "c", "a"])), s(&["a", "b", "c"]));
    }
}
