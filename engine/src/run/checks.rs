//! Checklist steps: items confirmed by people, and by automated checks
//! where a machine can decide.
//!
//! When a checklist step begins an attempt, every item with a `check:` is
//! performed as a coordinator action (its `with:` rendered like a step's
//! arguments, credentials kept as tokens, the step's timeout) under its own
//! key, [`Key::check`] (`STEP#ITEM`, the attempt). Its outcome comes back
//! as `Input::Succeeded`/`Failed` with that key's `step`. A check that
//! passes confirms its item as [`Actor::check`]; one that fails leaves the
//! item to a person, with the error in the log and the step's state. The
//! step succeeds once every item is confirmed, by whoever. A result for an
//! attempt that is no longer current, for a step no longer waiting, or for
//! a check that already has one, is ignored.

use super::machine::Machine;
use super::types::*;
use crate::value::Value;
use std::collections::BTreeMap;

/// What a check's outcome was: its outputs, or its error.
pub(super) type Outcome<'a> = Result<&'a BTreeMap<String, Value>, &'a str>;

impl Machine<'_> {
    /// Checklist `step` began attempt `attempt` with its rendered `args`:
    /// one `Perform` per item with a check, and the checks' state reset.
    pub(super) fn start_checks(&mut self, step: &str, attempt: u32, args: &Value, timeout_ms: Option<u64>) {
        let items = match args.get("items") {
            Some(Value::List(items)) => items.as_slice(),
            _ => &[],
        };
        let checks: Vec<Option<(String, Value)>> = items
            .iter()
            .map(|item| {
                let check = item.get("check")?;
                let action = check.get("action")?.as_str()?.to_string();
                let with = check.get("with").cloned().unwrap_or_else(|| Value::Map(BTreeMap::new()));
                Some((action, with))
            })
            .collect();
        let run = self.state.id.clone();
        let Some(st) = self.state.steps.get_mut(step) else { return };
        st.checks = if checks.iter().any(Option::is_some) {
            checks.iter().map(|c| c.as_ref().map(|(action, _)| ItemCheck::pending(action))).collect()
        } else {
            Vec::new()
        };
        for (i, (action, args)) in checks.into_iter().enumerate().filter_map(|(i, c)| Some((i, c?))) {
            self.effects.push(Effect::Perform {
                key: Key::check(&run, step, i + 1, attempt),
                action,
                args,
                target: None,
                timeout_ms,
            });
        }
    }

    /// The outcome of item `item`'s check of checklist `step`, attempt
    /// `attempt`.
    pub(super) fn checked(&mut self, step: &str, item: usize, attempt: u32, outcome: Outcome<'_>) {
        let now = self.now;
        let st = self.state.steps.get(step).filter(|s| s.attempt == attempt && s.status == StepStatus::Waiting);
        // A check is performed once per attempt: a second outcome (a
        // delivery repeated after a restart) is late too.
        let action = st
            .and_then(|s| s.checks.get(item.wrapping_sub(1)))
            .and_then(Option::as_ref)
            .filter(|c| c.result == CheckResult::Pending)
            .map(|c| c.action.clone());
        let (Some(action), false) = (action, self.state.status.is_finished()) else {
            let what = if outcome.is_ok() { "result" } else { "failure" };
            let facts = Facts { attempt: Some(attempt), item: Some(item), ..Facts::default() };
            let message = format!("late {what} of item {item}'s check (attempt {attempt}) ignored");
            self.event_with(Some(step), EventKind::Ignored, message, facts);
            return;
        };
        let confirmed = st.and_then(|s| s.checklist.get(item - 1)).cloned().flatten();
        let (result, note, error) = match outcome {
            Ok(outputs) => {
                let shown = brief(outputs);
                let note = if shown.is_empty() { action.clone() } else { format!("{action}: {shown}") };
                (CheckResult::Passed, Some(note), None)
            }
            Err(e) => (CheckResult::Failed, None, Some(e.to_string())),
        };
        if let Some(c) =
            self.state.steps.get_mut(step).and_then(|s| s.checks.get_mut(item - 1)).and_then(Option::as_mut)
        {
            *c = ItemCheck { action: action.clone(), result, note: note.clone(), error: error.clone(), at: Some(now) };
        }
        let facts =
            Facts { attempt: Some(attempt), action: Some(action.clone()), item: Some(item), ..Facts::default() };
        match (note, error) {
            (Some(note), _) => {
                let by = Actor::check();
                let message = match &confirmed {
                    None => format!("item {item} confirmed by its check: {note}"),
                    Some(c) => format!("item {item}'s check passed ({note}); already confirmed by {}", c.by),
                };
                let facts = Facts { by: Some(by.clone()), note: Some(note.clone()), ..facts };
                self.event_with(Some(step), EventKind::CheckPassed, message, facts);
                if confirmed.is_none() {
                    self.confirm_item(step, item, Confirmation { by, note, at: now });
                }
            }
            (None, error) => {
                let error = error.unwrap_or_default();
                let message = format!("item {item}'s check {action} failed: {error}; a person can still confirm it");
                let facts = Facts { error: Some(error), ..facts };
                self.event_with(Some(step), EventKind::CheckFailed, message, facts);
            }
        }
    }

    /// Records `c` for item `item` (1-based, in range) of waiting checklist
    /// `step`; the step succeeds once every item is confirmed.
    pub(super) fn confirm_item(&mut self, step: &str, item: usize, c: Confirmation) {
        let Some(st) = self.state.steps.get_mut(step) else { return };
        let Some(slot) = st.checklist.get_mut(item.wrapping_sub(1)) else { return };
        let by = c.by.name.clone();
        *slot = Some(c);
        if st.checklist.iter().all(Option::is_some) {
            let mut outputs = BTreeMap::new();
            outputs.insert("confirmed_by".to_string(), Value::str(by));
            self.succeed(step, outputs);
        }
    }
}

/// A few scalar outputs, briefly (`state=IDLE, n=3`): what a person
/// watching wants to see.
pub(super) fn brief(outputs: &BTreeMap<String, Value>) -> String {
    let shown: Vec<String> = outputs
        .iter()
        .filter(|(k, v)| k.as_str() != "output" && !matches!(v, Value::List(_) | Value::Map(_) | Value::Null))
        .take(6)
        .map(|(k, v)| {
            let text = v.to_string();
            let text = if text.chars().count() > 80 {
                format!("{}…", text.chars().take(80).collect::<String>())
            } else {
                text
            };
            format!("{k}={text}")
        })
        .collect();
    shown.join(", ")
}
