//! What operators see of a run: the engine's [`RunView`], built from the
//! stored record and event log, with every secret value redacted.
//! `ripcord show`, `watch` and reports read it (format in
//! `engine/src/model.rs`).

use crate::driver::{redact, secret_values};
use crate::store::{LoggedEvent, RunRecord};
use ripcord_engine::clock::Millis;
use ripcord_engine::measure;
use ripcord_engine::model::{self, ChecklistItem, RunView, StepView};
use ripcord_engine::run::{CheckResult, ItemCheck, RunState, StepStatus, TargetSpec};
use ripcord_engine::runbook::{Runbook, Step};
use ripcord_engine::value::Value;
use std::time::Duration;

fn ms(d: Option<Duration>) -> Option<Millis> {
    d.map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
}

/// The run's view at `now_ms`, secrets redacted.
pub fn run_view(rb: &Runbook, rec: &RunRecord, events: &[LoggedEvent], now_ms: Millis) -> RunView {
    let s = &rec.state;
    let params = s
        .params
        .iter()
        .map(|(k, v)| {
            let secret = rb.param(k).is_some_and(|p| p.secret);
            (k.clone(), if secret { Value::str(model::REDACTED) } else { v.clone() })
        })
        .collect();
    let handlers = rb.handlers();
    let end = match (s.recovered_at, s.finished_at) {
        (Some(t), _) => t,
        (None, Some(t)) if s.status.is_finished() => t,
        _ => now_ms,
    };
    let mut view = RunView {
        format: model::FORMAT,
        run_id: s.id.clone(),
        runbook_id: s.runbook_id.clone(),
        title: rb.title.clone(),
        description: rb.description.clone(),
        source: rec.runbook_source.clone(),
        mode: s.mode,
        status: s.status,
        started_by: rec.started_by.clone(),
        now_ms,
        created_at_ms: s.created_at,
        incident_at_ms: s.incident_at,
        recovered_at_ms: s.recovered_at,
        finished_at_ms: s.finished_at,
        rto_ms: ms(rb.rto),
        elapsed_ms: end - s.incident_at,
        rpo_ms: ms(rb.rpo),
        rpo_achieved: measure::rpo(rb, s),
        failing: s.failing.clone(),
        params,
        steps: rb.steps.iter().map(|def| step_view(def, s, handlers.contains(&def.id.as_str()))).collect(),
        events: events.to_vec(),
        milestones: model::milestones(s),
        acknowledged: s.acknowledged.clone(),
    };
    redact_view(&mut view, &secret_values(rb, s));
    view
}

fn step_view(def: &Step, s: &RunState, handler: bool) -> StepView {
    let st = s.steps.get(&def.id);
    let status = st.map_or(StepStatus::Pending, |x| x.status.clone());
    let with = Value::from_node(&def.with);
    let waiting_for = match (&status, def.action.as_str()) {
        (StepStatus::Waiting, "approve") => {
            let msg = with.get("message").map(|m| format!(": {m}")).unwrap_or_default();
            Some(format!("approval by an operator{msg}"))
        }
        (StepStatus::Waiting, "checklist") => {
            let left = st.map_or(0, |x| x.checklist.iter().filter(|c| c.is_none()).count());
            let checking = st.map_or(0, |x| {
                let pending = |c: &Option<ItemCheck>| c.as_ref().is_some_and(|c| c.result == CheckResult::Pending);
                x.checklist.iter().zip(&x.checks).filter(|(done, c)| done.is_none() && pending(c)).count()
            });
            let checking = if checking > 0 { format!(" ({checking} being checked)") } else { String::new() };
            Some(format!("{left} checklist item(s) to confirm{checking}"))
        }
        (StepStatus::Pending, _) => {
            let open: Vec<&str> = def
                .needs
                .iter()
                .filter(|(n, _)| s.steps.get(n).is_some_and(|x| x.status != StepStatus::Succeeded))
                .map(|(n, _)| n.as_str())
                .collect();
            (!open.is_empty()).then(|| format!("needs {}", open.join(", ")))
        }
        _ => None,
    };
    let checklist = match with.get("items") {
        Some(Value::List(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| ChecklistItem {
                item: u32::try_from(i + 1).unwrap_or(u32::MAX),
                text: item.get("text").map(|t| t.to_string()).unwrap_or_default(),
                confirmed: st.and_then(|x| x.checklist.get(i)).cloned().flatten(),
                // As the attempt left it, else what the runbook says.
                check: st.and_then(|x| x.checks.get(i)).cloned().flatten().or_else(|| {
                    let action = item.get("check")?.get("action")?.as_str()?;
                    Some(ItemCheck::pending(action))
                }),
            })
            .collect(),
        _ => vec![],
    };
    StepView {
        id: def.id.clone(),
        title: def.title.clone(),
        action: def.action.clone(),
        status,
        attempt: st.map_or(0, |x| x.attempt),
        max_attempts: def.retry.attempts,
        needs: def.needs.iter().map(|(n, _)| n.clone()).collect(),
        target: def.target.as_ref().map(|t| TargetSpec { selector: t.resolved_text(&s.params), all: t.all }),
        budget_ms: ms(def.budget),
        over_budget: st.is_some_and(|x| x.over_budget),
        started_at_ms: st.and_then(|x| x.started_at),
        finished_at_ms: st.and_then(|x| x.finished_at),
        error: st.and_then(|x| x.error.clone()),
        waiting_for,
        approval: st.and_then(|x| x.approval.clone()),
        checklist,
        outputs: st.map(|x| x.outputs.clone()).unwrap_or_default(),
        handler,
        triggered: st.is_some_and(|x| x.triggered),
        cleanup: def.cleanup,
    }
}

/// Every text of the view that a param's value can reach, with each secret
/// value replaced. (The driver redacts an event's message, error and note
/// before it stores them, too.)
fn redact_view(v: &mut RunView, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    let text = |t: &mut String| *t = redact(t, secrets);
    v.title = redact(&v.title, secrets);
    v.description = redact(&v.description, secrets);
    v.failing.iter_mut().for_each(text);
    v.acknowledged.iter_mut().for_each(|a| text(&mut a.note));
    v.params.values_mut().for_each(|x| redact_value(x, secrets));
    for st in &mut v.steps {
        st.error.iter_mut().chain(st.waiting_for.iter_mut()).for_each(text);
        if let StepStatus::Skipped { reason, .. } = &mut st.status {
            text(reason);
        }
        if let Some(t) = &mut st.target {
            text(&mut t.selector);
        }
        st.approval.iter_mut().for_each(|a| text(&mut a.note));
        for item in &mut st.checklist {
            text(&mut item.text);
            item.confirmed.iter_mut().for_each(|c| text(&mut c.note));
            if let Some(c) = &mut item.check {
                c.note.iter_mut().chain(c.error.iter_mut()).for_each(text);
            }
        }
        st.outputs.values_mut().for_each(|x| redact_value(x, secrets));
    }
    for e in &mut v.events {
        text(&mut e.event.message);
        let f = &mut e.event.facts;
        f.error.iter_mut().chain(f.note.iter_mut()).chain(f.target.iter_mut()).for_each(text);
    }
}

fn redact_value(v: &mut Value, secrets: &[String]) {
    match v {
        Value::Str(s) => *s = redact(s, secrets),
        Value::List(items) => items.iter_mut().for_each(|x| redact_value(x, secrets)),
        Value::Map(m) => m.values_mut().for_each(|x| redact_value(x, secrets)),
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_engine::check::check;
    use ripcord_engine::model::REDACTED;
    use ripcord_engine::run::{Actor, Input, Mode, NewRun, RunStatus, apply, start};
    use std::collections::BTreeMap;

    const T0: Millis = 1_800_000_000_000;
    const SECRET: &str = "hunter2-webhook";

    const RB: &str = r#"
id: v
title: view test
rto: 30m
params:
  webhook: {type: string, required: true, secret: true}
  host: {type: string, default: cache-1}
steps:
  - id: ping
    action: redis.ping
    target: "host={{ params.host }}"
    budget: 1m
    with: {instance: cache}
  - id: gate
    needs: [ping]
    action: approve
    with: {message: "is {{ params.host }} healthy?"}
  - id: check
    needs: [gate]
    action: checklist
    with:
      items:
        - text: paged the owner
        - text: told support
"#;

    fn alice() -> Actor {
        Actor { name: "alice".into(), role: "operator".into() }
    }

    #[test]
    fn a_view_is_built_from_the_record_with_secrets_redacted() {
        let rb = check(RB).unwrap_or_else(|d| panic!("{d:?}"));
        let params = BTreeMap::from([("webhook".to_string(), Value::str(SECRET))]);
        let new = NewRun { id: "0123456789abcdef".into(), mode: Mode::Drill, params, incident_at: Some(T0) };
        let started = start(&rb, new, T0 + 1_000).unwrap();
        let mut state = started.state;
        let step = |state: &RunState, input: Input, at: Millis| apply(&rb, state, &input, at).unwrap().state;
        let attempt = state.steps["ping"].attempt;
        let outputs = BTreeMap::from([("echo".to_string(), Value::str(format!("sent to {SECRET}")))]);
        state = step(&state, Input::Succeeded { step: "ping".into(), attempt, outputs }, T0 + 5_000);
        state = step(&state, Input::Approve { step: "gate".into(), by: alice(), note: "fine".into() }, T0 + 9_000);
        state = step(
            &state,
            Input::Confirm { step: "check".into(), item: 2, by: alice(), note: format!("{SECRET}?") },
            T0 + 10_000,
        );
        let rec = RunRecord::new("builtin:v".into(), RB.into(), state, alice());
        // The first line of the log, as if its message and note had named the secret.
        let mut first = started.events[0].clone();
        first.message = format!("with {SECRET}");
        first.facts.note = Some(format!("note {SECRET}"));
        let events = [LoggedEvent { seq: 0, event: first, actor: Some(alice()) }];

        let v = run_view(&rb, &rec, &events, T0 + 60_000);

        assert_eq!((v.run_id.as_str(), v.short_id(), v.source.as_str()), ("0123456789abcdef", "01234567", "builtin:v"));
        assert_eq!((v.mode, v.status, v.started_by.clone()), (Mode::Drill, RunStatus::Running, alice()));
        assert_eq!((v.incident_at_ms, v.rto_ms, v.elapsed_ms), (T0, Some(1_800_000), 60_000), "running: to now");
        assert_eq!(v.params["webhook"], Value::str(REDACTED));
        assert_eq!(v.params["host"], Value::str("cache-1"));
        let ping = v.step("ping").unwrap();
        assert_eq!((&ping.status, ping.attempt, ping.budget_ms), (&StepStatus::Succeeded, 1, Some(60_000)));
        assert_eq!(ping.target, Some(TargetSpec { selector: "host=cache-1".into(), all: false }));
        assert_eq!(ping.outputs["echo"], Value::str(format!("sent to {REDACTED}")));
        let gate = v.step("gate").unwrap();
        assert_eq!(
            gate.approval.as_ref().map(|a| (a.by.name.as_str(), a.note.as_str(), a.at)),
            Some(("alice", "fine", T0 + 9_000))
        );
        let check = v.step("check").unwrap();
        assert_eq!(check.status, StepStatus::Waiting);
        assert_eq!(check.waiting_for.as_deref(), Some("1 checklist item(s) to confirm"));
        let items: Vec<_> = check
            .checklist
            .iter()
            .map(|i| (i.item, i.text.as_str(), i.confirmed.as_ref().map(|c| c.note.as_str())))
            .collect();
        assert_eq!(items, [(1, "paged the owner", None), (2, "told support", Some(format!("{REDACTED}?").as_str()))]);
        assert_eq!(v.events[0].event.message, format!("with {REDACTED}"));
        assert_eq!(v.events[0].event.facts.note, Some(format!("note {REDACTED}")));
        assert_eq!(v.events[0].actor, Some(alice()));
        assert!(!serde_json::to_string(&v).unwrap().contains(SECRET));
    }

    #[test]
    fn the_rto_clock_stops_at_recovery_else_at_the_end() {
        let rb = check(RB).unwrap_or_else(|d| panic!("{d:?}"));
        let params = BTreeMap::from([("webhook".to_string(), Value::str(SECRET))]);
        let new = NewRun { id: "r".into(), mode: Mode::Recovery, params, incident_at: Some(T0) };
        let mut state = start(&rb, new, T0).unwrap().state;
        state.status = RunStatus::Aborted;
        state.finished_at = Some(T0 + 7_000);
        let rec = RunRecord::new("builtin:v".into(), RB.into(), state.clone(), alice());
        assert_eq!(run_view(&rb, &rec, &[], T0 + 60_000).elapsed_ms, 7_000);
        state.recovered_at = Some(T0 + 5_000);
        let rec = RunRecord::new("builtin:v".into(), RB.into(), state, alice());
        assert_eq!(run_view(&rb, &rec, &[], T0 + 60_000).elapsed_ms, 5_000);
    }
}
