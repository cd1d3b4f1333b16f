//! A runbook's `notify:` section: where the run's notices go, which ones,
//! and the escalation tiers counted from the incident.
//!
//! ```yaml
//! notify:
//!   webhook: "{{ params.webhook }}"   # Slack-compatible; params only
//!   on: [run_started, run_finished, step_failed, over_budget, waiting, escalation]
//!   waiting_longer_than: 10m          # an approval or checklist waiting longer is announced
//!   escalate:                         # run-level timers from the declared incident time
//!     - after: 15m
//!       to: [devops_lead, backend_lead]   # optional: roles, vendors or contacts of the roster
//!       text: "not recovered after 15 minutes: DevOps lead and backend lead"
//! ```
//!
//! A runbook's own `escalate:` tiers replace the coordinator's escalation
//! policy (`crate::escalation`) for its runs; a tier without `to` goes to
//! the webhook only.
//!
//! Every notice is an effect (`run::Effect::Notify`), committed with the
//! transition that caused it and delivered once.

use crate::duration;
use crate::run::Topic;
use crate::runbook::{Diagnostic, Param};
use crate::template::{self, Ref};
use crate::yaml::{self, Node, Pos};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Notifications {
    /// Templated from params only.
    pub webhook: String,
    pub on: Vec<Topic>,
    pub waiting_longer_than: Duration,
    pub escalate: Vec<Tier>,
}

pub use crate::escalation::Tier;

impl Notifications {
    pub fn wants(&self, topic: Topic) -> bool {
        self.on.contains(&topic)
    }
}

const DEFAULT_WAITING: Duration = Duration::from_secs(10 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    webhook: String,
    #[serde(default)]
    on: Option<Vec<Topic>>,
    #[serde(default)]
    waiting_longer_than: Option<String>,
    #[serde(default)]
    escalate: Vec<RawTier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    after: String,
    #[serde(default)]
    to: Vec<String>,
    text: String,
}

/// Reads the section; problems go to `diags` with their positions.
pub(crate) fn load(node: &Node, params: &[Param], diags: &mut Vec<Diagnostic>) -> Option<Notifications> {
    let raw: Raw = match yaml::from_node(node, true) {
        Ok(r) => r,
        Err(e) => {
            diags.push(e.into());
            return None;
        }
    };
    let pos_of = |n: &Node, f: &str| n.get(f).map_or(n.pos, |x| x.pos);
    check_webhook(&raw.webhook, pos_of(node, "webhook"), params, diags);
    let dur = |text: &str, pos: Pos, diags: &mut Vec<Diagnostic>| {
        duration::parse(text).map_err(|e| diags.push(Diagnostic::new(pos, e.to_string())))
    };
    let waiting_longer_than = match &raw.waiting_longer_than {
        Some(w) => dur(w, pos_of(node, "waiting_longer_than"), diags).unwrap_or(DEFAULT_WAITING),
        None => DEFAULT_WAITING,
    };
    let tier_nodes: Vec<&Node> = match node.get("escalate").map(|n| &n.kind) {
        Some(yaml::Kind::Seq(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    let mut escalate: Vec<Tier> = Vec::new();
    for (i, t) in raw.escalate.iter().enumerate() {
        let pos = tier_nodes.get(i).map_or(node.pos, |n| pos_of(n, "after"));
        let Ok(after) = dur(&t.after, pos, diags) else { continue };
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        if let Some(prev) = escalate.last().filter(|p| p.after_ms >= after_ms) {
            diags.push(Diagnostic::new(
                pos,
                format!(
                    "escalation tiers go in order of time: {} is not after the previous tier's {}",
                    t.after,
                    duration::format(Duration::from_millis(prev.after_ms))
                ),
            ));
        }
        escalate.push(Tier { after_ms, to: t.to.clone(), text: t.text.clone() });
    }
    Some(Notifications {
        webhook: raw.webhook,
        on: raw.on.unwrap_or_else(|| Topic::ALL.to_vec()),
        waiting_longer_than,
        escalate,
    })
}

/// The webhook is resolved when the run starts: it may name params only.
fn check_webhook(webhook: &str, pos: Pos, params: &[Param], diags: &mut Vec<Diagnostic>) {
    if let Err((_, e)) = template::parse(webhook) {
        diags.push(Diagnostic::new(pos, e.to_string()));
        return;
    }
    for (r, _) in template::refs(webhook) {
        match &r {
            Ref::Param(p) if params.iter().any(|x| &x.name == p) => {}
            Ref::Param(p) => diags.push(Diagnostic::new(pos, format!("{{{{ {r} }}}}: no param \"{p}\""))),
            _ => diags.push(Diagnostic::new(
                pos,
                format!("{{{{ {r} }}}}: the notify webhook is resolved when the run starts and may name params only"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::runbook::load;

    fn diags(notify: &str) -> Vec<String> {
        let text = format!(
            "id: t\ntitle: t\nparams:\n  hook: {{ default: http://x }}\nnotify:\n{notify}steps:\n  - id: a\n    action: noop\n"
        );
        match load(&text) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_section_is_checked_with_positions() {
        let table: [(&str, &[&str]); 5] = [
            ("  webhook: \"{{ params.hook }}\"\n  escalate:\n    - {after: 15m, text: leads}\n", &[]),
            ("  webhook: \"{{ params.nope }}\"\n", &["6:12: {{ params.nope }}: no param \"nope\""]),
            (
                "  webhook: \"{{ steps.a.x }}\"\n",
                &["6:12: {{ steps.a.x }}: the notify webhook is resolved when the run starts and may name params only"],
            ),
            ("  webhook: x\n  on: [run_started, lunch]\n", &["7:21: unknown variant `lunch`"]),
            (
                "  webhook: x\n  escalate:\n    - {after: 30m, text: cto}\n    - {after: 15m, text: leads}\n",
                &["9:15: escalation tiers go in order of time: 15m is not after the previous tier's 30m"],
            ),
        ];
        for (notify, expect) in table {
            let got = diags(notify);
            assert_eq!(got.len(), expect.len(), "{notify}: {got:?}");
            for (g, e) in got.iter().zip(expect) {
                assert!(g.starts_with(e), "{notify}: got {g}, expected {e}");
            }
        }
    }
}
