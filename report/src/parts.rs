//! The parts of a composite run: each `runbook.run` step ran another
//! runbook as a child run, with an RTO of its own (its outputs
//! `recovered_in_s` against `rto_s`); the whole run's RTO is the report's.

use crate::{Objective, objective};
use ripcord_engine::clock::Millis;
use ripcord_engine::model::{RunView, StepView};
use ripcord_engine::value::Value;
use serde::{Deserialize, Serialize};

/// The action that runs a child run.
pub const RUNBOOK_RUN: &str = "runbook.run";

/// One child run of a composite run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The `runbook.run` step.
    pub step: String,
    pub title: String,
    /// The step's state (`succeeded`, `failed`…).
    pub status: String,
    /// The child run (output `run_id`), once it has one.
    pub run_id: Option<String>,
    /// The child's runbook (output `runbook`), where the step's outputs
    /// name it.
    pub runbook: Option<String>,
    /// How the child run ended (output `status`).
    pub child_status: Option<String>,
    /// The child's own RTO: `recovered_in_s` against `rto_s`, in ms.
    pub rto: Objective,
    /// Why the step failed.
    pub error: Option<String>,
}

/// A part per `runbook.run` step, in runbook order.
pub(crate) fn of(v: &RunView) -> Vec<Part> {
    v.steps.iter().filter(|s| s.action == RUNBOOK_RUN).map(part).collect()
}

fn text(s: &StepView, key: &str) -> Option<String> {
    match s.outputs.get(key)? {
        Value::Null => None,
        Value::Str(t) => Some(t.clone()),
        other => Some(other.to_string()),
    }
}

/// Seconds (an integer, a float or a number as text) as ms.
fn seconds(s: &StepView, key: &str) -> Option<Millis> {
    match s.outputs.get(key)? {
        Value::Int(i) => i.checked_mul(1_000),
        Value::Float(f) if f.is_finite() => Some((f * 1_000.0).round() as Millis),
        Value::Str(t) => {
            t.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| (f * 1_000.0).round() as Millis)
        }
        _ => None,
    }
}

fn part(s: &StepView) -> Part {
    let rto = objective("RTO", seconds(s, "rto_s"), seconds(s, "recovered_in_s"), None);
    Part {
        step: s.id.clone(),
        title: s.title.clone(),
        status: s.status.name().to_string(),
        run_id: text(s, "run_id"),
        runbook: text(s, "runbook"),
        child_status: text(s, "status"),
        rto,
        error: if s.status == ripcord_engine::run::StepStatus::Failed { s.error.clone() } else { None },
    }
}
