//! What a run achieved against its objectives, worked out from its state.
//!
//! The RPO achieved is how much data the recovery lost: the time between the
//! newest data it kept and the incident. Three kinds of step tell it, and the
//! best evidence wins:
//! 1. `mongo.newest` on the restored data: the newest record there, measured;
//! 2. `atlas.pitr_restore` / `atlas.snapshot_restore`: the restore point;
//! 3. `redis.restore_rdb`: when the restored RDB backup was written.

use crate::clock::{Millis, parse_rfc3339};
use crate::run::{RunState, StepStatus};
use crate::runbook::Runbook;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// Where the newest data kept comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The age of the restored RDB backup.
    Backup,
    /// The point in time (or snapshot) Atlas restored to.
    RestorePoint,
    /// The newest record read back from the restored data.
    Measured,
}

impl Basis {
    pub fn describe(self) -> &'static str {
        match self {
            Basis::Backup => "RDB backup written",
            Basis::RestorePoint => "restore point",
            Basis::Measured => "newest record kept",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpo {
    /// Data written in this span before the incident is gone (0 when the
    /// data kept reaches the incident).
    pub lost_ms: Millis,
    /// The time of the newest data kept.
    #[serde(rename = "kept_until_ms")]
    pub kept_until: Millis,
    pub basis: Basis,
    /// The step that told it.
    pub step: String,
}

/// The RPO achieved so far; `None` until a step that tells it has succeeded.
pub fn rpo(rb: &Runbook, state: &RunState) -> Option<Rpo> {
    let mut best: Option<Rpo> = None;
    for def in &rb.steps {
        let Some(st) = state.steps.get(&def.id) else { continue };
        if st.status != StepStatus::Succeeded {
            continue;
        }
        let time = |name: &str| st.outputs.get(name).and_then(Value::as_str).and_then(parse_rfc3339);
        let found = match def.action.as_str() {
            "mongo.newest" => time("newest_at").map(|t| (t, Basis::Measured)),
            "atlas.pitr_restore" | "atlas.snapshot_restore" => time("restore_point").map(|t| (t, Basis::RestorePoint)),
            "redis.restore_rdb" => match (st.outputs.get("backup_age_seconds"), st.finished_at) {
                (Some(Value::Int(age)), Some(done)) => Some((done - age.saturating_mul(1000), Basis::Backup)),
                _ => None,
            },
            _ => None,
        };
        let Some((kept_until, basis)) = found else { continue };
        // Better evidence wins; of the same kind, the later step.
        if best.as_ref().is_some_and(|b| b.basis > basis) {
            continue;
        }
        let lost_ms = (state.incident_at - kept_until).max(0);
        best = Some(Rpo { lost_ms, kept_until, basis, step: def.id.clone() });
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use crate::run::{Input, Mode, NewRun, apply, start};
    use std::collections::BTreeMap;

    const T0: Millis = 1_800_000_000_000;

    const RB: &str = r#"
id: t
title: t
rpo: 5m
steps:
  - {id: restore, action: atlas.pitr_restore, with: {project: p, source: a, target: b, at: incident-5m}}
  - {id: newest, needs: [restore], action: mongo.newest, with: {uri: "mongodb://h", db: d, collection: c, field: t}}
  - {id: rdb, action: redis.restore_rdb, target: "role=redis", with: {instance: cache, backup: /b/x.rdb}}
"#;

    fn succeed(rb: &Runbook, state: RunState, step: &str, outputs: &[(&str, Value)], now: Millis) -> RunState {
        let attempt = state.steps[step].attempt;
        let outputs: BTreeMap<String, Value> = outputs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        apply(rb, &state, &Input::Succeeded { step: step.into(), attempt, outputs }, now).unwrap().state
    }

    #[test]
    fn the_best_evidence_of_the_data_kept_gives_the_rpo() {
        let rb = check(RB).unwrap_or_else(|d| panic!("{d:?}"));
        let new = NewRun { id: "run1".into(), mode: Mode::Recovery, params: BTreeMap::new(), incident_at: Some(T0) };
        let state = start(&rb, new, T0 + 60_000).unwrap().state;
        assert_eq!(rpo(&rb, &state), None, "nothing has told it yet");

        // The RDB backup was 10 minutes old when the restore finished, a
        // minute after the incident: 9 minutes lost.
        let state = succeed(&rb, state, "rdb", &[("backup_age_seconds", Value::Int(600))], T0 + 60_000);
        let r = rpo(&rb, &state).unwrap();
        assert_eq!((r.lost_ms, r.basis, r.step.as_str()), (540_000, Basis::Backup, "rdb"));

        // The restore point (5 minutes before) is better evidence…
        let state = succeed(
            &rb,
            state,
            "restore",
            &[("restore_point", Value::str(crate::clock::rfc3339(T0 - 300_000)))],
            T0 + 120_000,
        );
        let r = rpo(&rb, &state).unwrap();
        assert_eq!((r.lost_ms, r.basis), (300_000, Basis::RestorePoint));

        // …and the newest record read back is better still.
        let state = succeed(
            &rb,
            state,
            "newest",
            &[("newest_at", Value::str(crate::clock::rfc3339(T0 - 312_000)))],
            T0 + 180_000,
        );
        let r = rpo(&rb, &state).unwrap();
        assert_eq!(
            r,
            Rpo { lost_ms: 312_000, kept_until: T0 - 312_000, basis: Basis::Measured, step: "newest".into() }
        );
    }

    #[test]
    fn data_newer_than_the_incident_means_nothing_lost() {
        let rb = check(RB).unwrap_or_else(|d| panic!("{d:?}"));
        let new = NewRun { id: "run1".into(), mode: Mode::Recovery, params: BTreeMap::new(), incident_at: Some(T0) };
        let state = start(&rb, new, T0).unwrap().state;
        let state =
            succeed(&rb, state, "restore", &[("restore_point", Value::str(crate::clock::rfc3339(T0 + 1_000)))], T0);
        assert_eq!(rpo(&rb, &state).map(|r| r.lost_ms), Some(0));
    }
}
