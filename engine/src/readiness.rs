//! Readiness: whether a runbook could do its job right now, as typed checks
//! (ok, warn or fail, with what was measured, the limit and the fix). Pure:
//! the caller passes what it knows (the fleet as plain [`Agent`]s), so the
//! checks are tested with tables. This is the first slice: every built-in
//! runbook passes `check`, and each agent step's target matches usable agents.

use crate::runbook::Runbook;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The runbook checked, if the check belongs to one.
    pub runbook: Option<String>,
    /// What was checked, e.g. `step fix: target role=redis`.
    pub subject: String,
    pub status: Status,
    pub measured: String,
    pub limit: String,
    /// What to do about it; empty when ok.
    pub fix: String,
}

/// An agent as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Agent {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub connected: bool,
    /// The actions its allowlist permits.
    pub actions: Vec<String>,
}

/// Every built-in runbook passes `check`.
pub fn builtin_runbooks() -> Vec<Check> {
    crate::builtin::BUILTIN.iter().map(|(id, text)| runbook(id, text)).collect()
}

/// Runbook `id` (YAML `text`) passes `check`.
pub fn runbook(id: &str, text: &str) -> Check {
    let (status, measured, fix) = match crate::check::check(text) {
        Ok(_) => (Status::Ok, "passes".to_string(), String::new()),
        Err(diags) => (
            Status::Fail,
            diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "),
            format!("fix the runbook (ripcord runbook check {id})"),
        ),
    };
    Check {
        runbook: Some(id.to_string()),
        subject: "runbook check".to_string(),
        status,
        measured,
        limit: "no problems".to_string(),
        fix,
    }
}

/// For each agent step of `rb`, with its params' defaults: the connected
/// agents its target matches that allow the step's action, the right number
/// of them.
pub fn fleet(rb: &Runbook, agents: &[Agent]) -> Vec<Check> {
    let defaults: BTreeMap<String, Value> =
        rb.params.iter().filter_map(|p| Some((p.name.clone(), p.default.clone()?))).collect();
    let mut out = Vec::new();
    for step in &rb.steps {
        let Some(t) = &step.target else { continue };
        let check = |subject: String, status: Status, measured: String, limit: &str, fix: String| Check {
            runbook: Some(rb.id.clone()),
            subject,
            status,
            measured,
            limit: limit.to_string(),
            fix,
        };
        let limit =
            if t.all { "at least one connected agent allowing it" } else { "exactly one connected agent allowing it" };
        let unknown: Vec<&str> = rb
            .params
            .iter()
            .filter(|p| p.default.is_none() && names_param(&t.selector, &p.name))
            .map(|p| p.name.as_str())
            .collect();
        if let Some(name) = unknown.first() {
            out.push(check(
                format!("step {}: target {}", step.id, t.selector),
                Status::Warn,
                format!("target depends on param {name}"),
                limit,
                format!("give param {name} a default, or check the fleet when the run starts"),
            ));
            continue;
        }
        let selector = match t.resolve(&defaults) {
            Ok(s) => s,
            Err(e) => {
                out.push(check(
                    format!("step {}: target {}", step.id, t.selector),
                    Status::Fail,
                    e.to_string(),
                    limit,
                    "fix the step's target".to_string(),
                ));
                continue;
            }
        };
        let subject = format!("step {}: target {selector}", step.id);
        let matching: Vec<&Agent> = agents.iter().filter(|a| selector.matches_map(&a.labels)).collect();
        let usable: Vec<&str> = matching
            .iter()
            .filter(|a| a.connected && a.actions.contains(&step.action))
            .map(|a| a.id.as_str())
            .collect();
        let disconnected: Vec<&str> = matching.iter().filter(|a| !a.connected).map(|a| a.id.as_str()).collect();
        let refusing: Vec<&str> = matching
            .iter()
            .filter(|a| a.connected && !a.actions.contains(&step.action))
            .map(|a| a.id.as_str())
            .collect();
        let mut measured = if usable.is_empty() {
            format!("no connected agent allows {}", step.action)
        } else {
            format!("{} usable: {}", usable.len(), usable.join(", "))
        };
        if !disconnected.is_empty() {
            measured.push_str(&format!("; disconnected: {}", disconnected.join(", ")));
        }
        if !refusing.is_empty() {
            measured.push_str(&format!("; not allowing {}: {}", step.action, refusing.join(", ")));
        }
        let (status, fix) = if usable.is_empty() {
            let mut fix = format!(
                "start or connect an agent labelled {selector} allowing {} (or allow it in the allowlist of a matching agent)",
                step.action
            );
            if !disconnected.is_empty() {
                fix = format!("reconnect {} or {fix}", disconnected.join(", "));
            }
            (Status::Fail, fix)
        } else if !t.all && usable.len() > 1 {
            (Status::Fail, format!("narrow the target {selector} to one agent (e.g. a host= label)"))
        } else if !disconnected.is_empty() {
            (Status::Warn, format!("reconnect or remove disconnected agents {}", disconnected.join(", ")))
        } else {
            (Status::Ok, String::new())
        };
        out.push(check(subject, status, measured, limit, fix));
    }
    out
}

/// Whether the template `text` names `params.NAME` (whole name).
fn names_param(text: &str, name: &str) -> bool {
    let needle = format!("params.{name}");
    text.match_indices(&needle).any(|(i, _)| {
        let next = text[i + needle.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// The worst status among `checks` (ok when there are none).
pub fn worst(checks: &[Check]) -> Status {
    checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, labels: &str, connected: bool, actions: &[&str]) -> Agent {
        Agent {
            id: id.into(),
            labels: labels
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.into(), v.into())
                })
                .collect(),
            connected,
            actions: actions.iter().map(|s| s.to_string()).collect(),
        }
    }

    const RB: &str = r#"
id: t
title: T
params:
  agents:
    type: string
    default: "role=redis"
  host:
    type: string
    required: true
steps:
  - id: fix
    action: redis.ping
    target: "{{ params.agents }}"
    with:
      instance: cache
  - id: each
    action: redis.ping
    target:
      selector: role=redis
      all: true
    with:
      instance: cache
  - id: pinned
    action: redis.ping
    target: "host={{ params.host }}"
    with:
      instance: cache
"#;

    #[test]
    fn every_builtin_runbook_passes_check() {
        let checks = builtin_runbooks();
        assert!(!checks.is_empty());
        for c in &checks {
            assert_eq!(c.status, Status::Ok, "{c:?}");
        }
    }

    #[test]
    fn a_broken_runbook_fails_with_its_diagnostics() {
        let c = runbook("bad", "id: bad\ntitle: B\nsteps:\n  - id: a\n    action: nope\n");
        assert_eq!(c.status, Status::Fail);
        assert!(c.measured.contains("nope"), "{c:?}");
        assert!(c.fix.contains("ripcord runbook check bad"));
    }

    /// Agents, the status of step fix, of step each, words in fix's measured, words in fix's fix.
    type Case = (Vec<Agent>, Status, Status, &'static [&'static str], &'static [&'static str]);

    #[test]
    fn fleet_table() {
        let rb = crate::check::check(RB).expect("valid");
        let ping = &["redis.ping"][..];
        let cases: Vec<Case> = vec![
            (vec![agent("r1", "role=redis", true, ping)], Status::Ok, Status::Ok, &["1 usable: r1"], &[]),
            (vec![], Status::Fail, Status::Fail, &["no connected agent"], &["start or connect", "role=redis"]),
            (
                vec![agent("r1", "role=redis", true, &[])],
                Status::Fail,
                Status::Fail,
                &["not allowing redis.ping: r1"],
                &["allowlist"],
            ),
            (
                vec![agent("r1", "role=redis", true, ping), agent("r2", "role=redis", true, ping)],
                Status::Fail,
                Status::Ok,
                &["2 usable: r1, r2"],
                &["narrow"],
            ),
            (
                vec![agent("r1", "role=redis", true, ping), agent("r2", "role=redis", false, ping)],
                Status::Warn,
                Status::Warn,
                &["1 usable: r1", "disconnected: r2"],
                &["r2"],
            ),
            (
                vec![agent("r2", "role=redis", false, ping)],
                Status::Fail,
                Status::Fail,
                &["disconnected: r2"],
                &["reconnect r2"],
            ),
            (vec![agent("w", "role=web", true, ping)], Status::Fail, Status::Fail, &["no connected agent"], &[]),
        ];
        for (i, (agents, fix, each, measured, words)) in cases.into_iter().enumerate() {
            let checks = fleet(&rb, &agents);
            assert_eq!(checks.len(), 3, "case {i}");
            assert_eq!(checks[0].subject, "step fix: target role=redis");
            assert_eq!(checks[0].status, fix, "case {i}: {:?}", checks[0]);
            assert_eq!(checks[1].status, each, "case {i}: {:?}", checks[1]);
            for m in measured {
                assert!(checks[0].measured.contains(m), "case {i}: {m} in {:?}", checks[0]);
            }
            for w in words {
                assert!(checks[0].fix.contains(w), "case {i}: {w} in {:?}", checks[0]);
            }
            assert_eq!(checks[2].status, Status::Warn, "case {i}");
            assert_eq!(checks[2].measured, "target depends on param host");
            assert_eq!(checks[0].runbook.as_deref(), Some("t"));
        }
    }

    #[test]
    fn names_param_needs_the_whole_name() {
        assert!(names_param("{{ params.host }}", "host"));
        assert!(!names_param("{{ params.hostname }}", "host"));
    }

    #[test]
    fn worst_and_serde() {
        let c = runbook("x", "id: x\ntitle: X\nsteps:\n  - id: a\n    action: wait\n    with:\n      duration: 1s\n");
        assert_eq!(worst(std::slice::from_ref(&c)), c.status);
        assert_eq!(worst(&[]), Status::Ok);
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(&format!("\"status\":\"{}\"", c.status.as_str())));
        let back: Check = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
