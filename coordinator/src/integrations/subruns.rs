//! `runbook.run`: a step that runs another (built-in) runbook as a child
//! run and waits for it — how the Q3 full-outage drill runs the MongoDB,
//! Redis and API recoveries in the playbook's order, each measured on its
//! own.
//!
//! The child has the parent's mode, declared incident time and
//! environment, and a run id derived from the parent's run, step and
//! attempt: performed again after a coordinator restart, the step finds its
//! child (the driver refuses a second start with the same id) and waits for
//! it instead of starting another. The step is done when the child has
//! recovered (a drill child's cleanup, such as a cluster deletion waiting
//! for approval, goes on in the child's own run). A child that fails fails
//! the step, and a retry of the step starts a new child (a new attempt).

use super::{BoxFuture, Call, Integration, Outcome};
use crate::driver::{self, Runs, StartRequest};
use ripcord_engine::run::{Actor, Key, RunStatus};
use ripcord_engine::value::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The runs handle arrives after the integrations are built (the driver
/// needs them first), hence the cell.
#[derive(Clone, Default)]
pub struct SubRuns {
    runs: Arc<OnceLock<Runs>>,
}

impl SubRuns {
    /// Gives it the driver's handle; calls before that fail.
    pub fn bind(&self, runs: Runs) {
        let _ = self.runs.set(runs);
    }
}

/// A child's run id: 16 hex digits of a SHA-256 of the parent's step key.
pub fn child_id(key: &Key) -> String {
    let mut h = Sha256::new();
    h.update(b"ripcord sub-run\0");
    h.update(key.run.as_bytes());
    h.update(b"\0");
    h.update(key.step.as_bytes());
    h.update(b"\0");
    h.update(key.attempt.to_be_bytes());
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Integration for SubRuns {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let runs = self.runs.get().cloned();
        Box::pin(async move {
            match run_child(runs.as_ref(), &call).await {
                Ok(outputs) => Outcome::Succeeded(outputs),
                Err(e) => Outcome::Failed(e),
            }
        })
    }
}

/// Whether a child's outcome is known: it finished, recovered (its
/// cleanup — a deletion waiting for approval — goes on in its own run, not
/// holding up the next part), or failed with its cleanup under way.
fn settled(r: &crate::store::RunRecord) -> bool {
    let s = &r.state;
    if s.status.is_finished() || s.recovered_at.is_some() {
        return true;
    }
    s.failing.is_some()
        && ripcord_engine::check::check(&r.runbook_text).is_ok_and(|rb| {
            rb.steps
                .iter()
                .filter(|d| d.cleanup)
                .any(|d| s.steps.get(&d.id).is_some_and(|st| st.status != ripcord_engine::run::StepStatus::Pending))
        })
}

async fn run_child(runs: Option<&Runs>, call: &Call) -> Result<BTreeMap<String, Value>, String> {
    let runbook = call.args.get("runbook").and_then(Value::as_str).ok_or("missing runbook")?.to_string();
    let text = ripcord_engine::builtin::get(&runbook).ok_or_else(|| format!("no built-in runbook \"{runbook}\""))?;
    let runs = runs.ok_or("the coordinator's run driver is not running yet")?;
    let params: BTreeMap<String, Value> = match call.args.get("params") {
        Some(Value::Map(m)) => m.clone(),
        _ => BTreeMap::new(),
    };
    let parent = runs.get(&call.key.run).map_err(|e| format!("parent run: {e}"))?;
    let id = child_id(&call.key);
    let req = StartRequest {
        id: Some(id.clone()),
        source: format!("builtin:{runbook}"),
        text: text.to_string(),
        params,
        incident_at: Some(parent.state.incident_at),
        mode: parent.state.mode,
        by: Actor { name: format!("run {}", call.key.run), role: "coordinator".into() },
        environment: parent.environment.clone(),
        parent: Some(call.key.run.clone()),
    };
    match runs.start(req).await {
        Ok(_) | Err(driver::Error::Exists(_)) => {}
        Err(e) => return Err(format!("{runbook} did not start: {e}")),
    }
    let child = runs.until(&id, settled).await.map_err(|e| format!("sub-run {id} ({runbook}): {e}"))?;
    let s = &child.state;
    if s.recovered_at.is_none() || matches!(s.status, RunStatus::Failed | RunStatus::Aborted) {
        let why = s.failing.as_deref().unwrap_or("no reason recorded");
        return Err(format!("sub-run {id} ({runbook}) {}: {why}", s.status));
    }
    let rto_s = ripcord_engine::check::check(&child.runbook_text)
        .ok()
        .and_then(|rb| rb.rto)
        .map_or(Value::Null, |d| Value::Int(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let mut out = BTreeMap::new();
    out.insert("run_id".into(), Value::str(&id));
    out.insert("runbook".into(), Value::str(&runbook));
    // "recovered" while the child still cleans up (a drill), else how it ended.
    let status = if s.status.is_finished() { s.status.to_string() } else { "recovered".to_string() };
    out.insert("status".into(), Value::str(status));
    out.insert("recovered_in_s".into(), s.recovered_at.map_or(Value::Null, |r| Value::Int((r - s.incident_at) / 1000)));
    out.insert("rto_s".into(), rto_s);
    Ok(out)
}
