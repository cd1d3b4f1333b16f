//! What operators see of a run: one JSON document built from the stored
//! record and event log, with every secret value redacted. `ripcord show`,
//! `watch` and reports read it.
//!
//! Format 1: `run_id`, `short_id`, `runbook_id`, `title`, `source`, `mode`,
//! `status`, `started_by`, times as `*_ms` (unix ms, null when unset) with
//! `now_ms` the coordinator's clock, `rto_ms`, `rpo_ms`, `failing`,
//! `params`, `steps` (in runbook order: `id`, `title`, `action`, `status`,
//! `attempt`, `max_attempts`, `needs`, `target`, `budget_ms`, `over_budget`,
//! `started_at_ms`, `finished_at_ms`, `until_ms`, `error`, `skip_reason`,
//! `waiting_for`, `approval`, `checklist`, `outputs`) and `events`.

use crate::driver::{redact, secret_values};
use crate::store::{LoggedEvent, RunRecord};
use ripcord_engine::run::StepStatus;
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use serde_json::{Value as J, json};

fn ms(d: Option<std::time::Duration>) -> J {
    d.map_or(J::Null, |d| json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

fn redact_json(v: &mut J, secrets: &[String]) {
    match v {
        J::String(s) => *s = redact(s, secrets),
        J::Array(a) => a.iter_mut().for_each(|x| redact_json(x, secrets)),
        J::Object(o) => o.values_mut().for_each(|x| redact_json(x, secrets)),
        _ => {}
    }
}

pub fn run_view(rb: &Runbook, rec: &RunRecord, events: &[LoggedEvent], now_ms: i64) -> J {
    let s = &rec.state;
    let secrets = secret_values(rb, s);
    let params: serde_json::Map<String, J> = s
        .params
        .iter()
        .map(|(k, v)| {
            let secret = rb.param(k).is_some_and(|p| p.secret);
            (k.clone(), if secret { json!("••••••") } else { serde_json::to_value(v).unwrap_or(J::Null) })
        })
        .collect();
    let steps: Vec<J> = rb
        .steps
        .iter()
        .map(|def| {
            let st = s.steps.get(&def.id);
            let status = st.map(|x| &x.status);
            let waiting_for = match (status, def.action.as_str()) {
                (Some(StepStatus::Waiting), "approve") => {
                    let msg = Value::from_node(&def.with).get("message").map(|m| format!(": {m}")).unwrap_or_default();
                    json!(format!("approval by an operator{msg}"))
                }
                (Some(StepStatus::Waiting), "checklist") => {
                    let left = st.map_or(0, |x| x.checklist.iter().filter(|c| c.is_none()).count());
                    json!(format!("{left} checklist item(s) to confirm"))
                }
                (Some(StepStatus::Pending), _) => {
                    let open: Vec<&str> = def
                        .needs
                        .iter()
                        .filter(|(n, _)| s.steps.get(n).is_some_and(|x| x.status != StepStatus::Succeeded))
                        .map(|(n, _)| n.as_str())
                        .collect();
                    if open.is_empty() { J::Null } else { json!(format!("needs {}", open.join(", "))) }
                }
                _ => J::Null,
            };
            let items: Vec<J> = match Value::from_node(&def.with).get("items") {
                Some(Value::List(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let c = st.and_then(|x| x.checklist.get(i)).cloned().flatten();
                        json!({
                            "item": i + 1,
                            "text": item.get("text").map(|t| t.to_string()).unwrap_or_default(),
                            "confirmed_by": c.as_ref().map(|c| c.by.to_string()),
                            "note": c.as_ref().map(|c| c.note.clone()),
                            "at_ms": c.as_ref().map(|c| c.at),
                        })
                    })
                    .collect(),
                _ => vec![],
            };
            json!({
                "id": def.id,
                "title": def.title,
                "action": def.action,
                "status": status.map_or("pending", StepStatus::name),
                "attempt": st.map_or(0, |x| x.attempt),
                "max_attempts": def.retry.attempts,
                "needs": def.needs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                "target": def
                    .target
                    .as_ref()
                    .map(|t| format!("{}{}", t.resolved_text(&s.params), if t.all { " (all)" } else { "" })),
                "budget_ms": ms(def.budget),
                "over_budget": st.is_some_and(|x| x.over_budget),
                "started_at_ms": st.and_then(|x| x.started_at),
                "finished_at_ms": st.and_then(|x| x.finished_at),
                "until_ms": match status {
                    Some(StepStatus::Deferred { until } | StepStatus::Backoff { until }) => json!(until),
                    _ => J::Null,
                },
                "error": st.and_then(|x| x.error.clone()),
                "skip_reason": match status { Some(StepStatus::Skipped { reason }) => json!(reason), _ => J::Null },
                "waiting_for": waiting_for,
                "approval": st.and_then(|x| x.approval.as_ref()).map(|a| json!({"by": a.by.to_string(), "note": a.note, "at_ms": a.at})),
                "checklist": items,
                "outputs": st.map(|x| serde_json::to_value(&x.outputs).unwrap_or(J::Null)),
                "handler": rb.handlers().contains(&def.id.as_str()),
            })
        })
        .collect();
    let events: Vec<J> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at_ms": e.event.at,
                "step": e.event.step,
                "kind": e.event.kind,
                "message": e.event.message,
                "actor": e.actor.as_ref().map(|a| a.to_string()),
            })
        })
        .collect();
    let mut v = json!({
        "format": 1,
        "run_id": s.id,
        "short_id": s.short_id(),
        "runbook_id": s.runbook_id,
        "title": rb.title,
        "source": rec.runbook_source,
        "mode": s.mode.to_string(),
        "status": s.status.to_string(),
        "started_by": rec.started_by.to_string(),
        "now_ms": now_ms,
        "created_at_ms": s.created_at,
        "incident_at_ms": s.incident_at,
        "recovered_at_ms": s.recovered_at,
        "finished_at_ms": s.finished_at,
        "rto_ms": ms(rb.rto),
        "rpo_ms": ms(rb.rpo),
        "rpo_achieved": ripcord_engine::measure::rpo(rb, s).map(|r| json!({
            "lost_ms": r.lost_ms,
            "kept_until_ms": r.kept_until,
            "basis": r.basis.describe(),
            "step": r.step,
        })),
        "failing": s.failing,
        "params": params,
        "steps": steps,
        "events": events,
    });
    redact_json(&mut v, &secrets);
    v
}

/// "done/total" of the steps that count (not untriggered handlers).
pub fn progress(rb: &Runbook, rec: &RunRecord) -> String {
    let handlers = rb.handlers();
    let counted: Vec<_> =
        rec.state.steps.iter().filter(|(id, st)| !handlers.contains(&id.as_str()) || st.triggered).collect();
    let done = counted
        .iter()
        .filter(|(_, st)| matches!(st.status, StepStatus::Succeeded | StepStatus::Skipped { .. }))
        .count();
    format!("{done}/{}", counted.len())
}
