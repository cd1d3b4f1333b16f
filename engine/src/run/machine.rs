//! The state machine proper: one input in, the next state, events and
//! effects out.

use super::checks::brief;
use super::phase::Gate;
use super::types::*;
use crate::clock::{Millis, rfc3339};
use crate::milestone::Milestone;
use crate::runbook::{OnFailure, Runbook, Step};
use crate::template::{self, Ref, RunField, Scope};
use crate::value::Value;
use std::collections::BTreeMap;

/// Applies one input.
pub fn apply(rb: &Runbook, state: &RunState, input: &Input, now: Millis) -> Result<Transition, Rejected> {
    let mut m = Machine { rb, state: state.clone(), effects: Vec::new(), events: Vec::new(), now };
    m.input(input)?;
    Ok(m.finish())
}

pub(super) struct Machine<'a> {
    pub(super) rb: &'a Runbook,
    pub(super) state: RunState,
    pub(super) effects: Vec<Effect>,
    pub(super) events: Vec<Event>,
    pub(super) now: Millis,
}

pub(super) struct RunScope<'a>(&'a RunState);

impl Scope for RunScope<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        let s = self.0;
        match r {
            Ref::Param(p) => s.params.get(p).cloned(),
            Ref::Output { step, output } => s.steps.get(step)?.outputs.get(output).cloned(),
            Ref::Run(RunField::Id) => Some(Value::str(&s.id)),
            Ref::Run(RunField::ShortId) => Some(Value::str(s.short_id())),
            Ref::Run(RunField::IncidentAt) => Some(Value::str(rfc3339(s.incident_at))),
            Ref::Run(RunField::Mode) => Some(Value::str(s.mode.to_string())),
            // Stays a token; the coordinator resolves it when it performs.
            Ref::Credential { name, field } => Some(Value::str(template::credential_token(name, *field))),
        }
    }
}

pub(super) fn ms(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Machine<'_> {
    pub(super) fn finish(self) -> Transition {
        Transition { state: self.state, effects: self.effects, events: self.events }
    }

    pub(super) fn event(&mut self, step: Option<&str>, kind: EventKind, message: String) {
        self.event_with(step, kind, message, Facts::default());
    }

    pub(super) fn event_with(&mut self, step: Option<&str>, kind: EventKind, message: String, facts: Facts) {
        self.events.push(Event { at: self.now, step: step.map(str::to_string), kind, message, facts });
    }

    pub(super) fn key(&self, step: &str) -> Key {
        let attempt = self.state.steps.get(step).map_or(0, |s| s.attempt);
        Key { run: self.state.id.clone(), step: step.to_string(), attempt }
    }

    fn step_state(&mut self, id: &str) -> Result<&mut StepState, Rejected> {
        self.state.steps.get_mut(id).ok_or_else(|| Rejected(format!("no step \"{id}\" in run {}", self.state.id)))
    }

    fn input(&mut self, input: &Input) -> Result<(), Rejected> {
        let finished = self.state.status.is_finished();
        match input {
            Input::Succeeded { step, attempt, outputs } => match check_of(step) {
                Some((step, item)) => self.checked(step, item, *attempt, Ok(outputs)),
                None if finished || !self.current(step, *attempt, |s| matches!(s, StepStatus::Running)) => {
                    self.event(Some(step), EventKind::Ignored, format!("late result of attempt {attempt} ignored"));
                    return Ok(());
                }
                None => self.succeed(step, outputs.clone()),
            },
            Input::Failed { step, attempt, error } => match check_of(step) {
                Some((step, item)) => self.checked(step, item, *attempt, Err(error)),
                None if finished || !self.current(step, *attempt, |s| matches!(s, StepStatus::Running)) => {
                    self.event(Some(step), EventKind::Ignored, format!("late failure of attempt {attempt} ignored"));
                    return Ok(());
                }
                None => self.fail(step, error.clone()),
            },
            Input::Timer { step, attempt, kind } => {
                if finished {
                    return Ok(());
                }
                self.timer(step, *attempt, *kind);
            }
            Input::RunTimer { timer } => {
                if finished {
                    return Ok(());
                }
                self.run_timer(timer);
            }
            // A notice may be delivered after its run finished (the one
            // saying so): it is recorded all the same.
            Input::Notified { name, error, reached } => {
                self.notified(name, error.as_deref(), reached);
                return Ok(());
            }
            Input::Approve { step, by, note } => {
                let now = self.now;
                let st = self.waiting(step, "approve", "an approval", "approval")?;
                st.approval = Some(Confirmation { by: by.clone(), note: note.clone(), at: now });
                let mut outputs = BTreeMap::new();
                outputs.insert("approved_by".to_string(), Value::str(&by.name));
                outputs.insert("note".to_string(), Value::str(note));
                let facts = Facts { by: Some(by.clone()), note: Some(note.clone()), ..Facts::default() };
                self.event_with(Some(step), EventKind::Approved, format!("approved by {by}{}", note_text(note)), facts);
                self.succeed(step, outputs);
            }
            Input::Confirm { step, item, by, note } => {
                let n = self.waiting(step, "checklist", "a checklist", "confirmation")?.checklist.len();
                if !(1..=n).contains(item) {
                    return Err(Rejected(format!("step \"{step}\" has items 1 to {n}; there is no item {item}")));
                }
                let facts =
                    Facts { by: Some(by.clone()), note: Some(note.clone()), item: Some(*item), ..Facts::default() };
                self.event_with(
                    Some(step),
                    EventKind::Confirmed,
                    format!("item {item} confirmed by {by}{}", note_text(note)),
                    facts,
                );
                let c = Confirmation { by: by.clone(), note: note.clone(), at: self.now };
                self.confirm_item(step, *item, c);
            }
            Input::Abort { by, reason } => {
                self.refuse_if_finished()?;
                self.state.status = RunStatus::Aborted;
                self.state.finished_at = Some(self.now);
                let facts = Facts { by: Some(by.clone()), note: Some(reason.clone()), ..Facts::default() };
                self.event_with(None, EventKind::RunAborted, format!("aborted by {by}: {reason}"), facts);
                self.announce_end();
                return Ok(());
            }
            Input::Ack { by, note } => {
                self.acknowledge(by, note)?;
                return Ok(());
            }
            Input::Retry { by, step } => {
                if self.state.status != RunStatus::Failed {
                    return Err(Rejected(format!(
                        "run {} is {}; only a failed run can be retried",
                        self.state.id, self.state.status
                    )));
                }
                let failed: Vec<String> = self
                    .state
                    .steps
                    .iter()
                    .filter(|(_, s)| s.status == StepStatus::Failed)
                    .map(|(id, _)| id.clone())
                    .collect();
                let to_retry = match step {
                    Some(s) if failed.contains(s) => vec![s.clone()],
                    Some(s) => {
                        self.def(s)?;
                        return Err(Rejected(format!(
                            "step \"{s}\" did not fail; failed steps: {}",
                            if failed.is_empty() { "none".into() } else { failed.join(", ") }
                        )));
                    }
                    None => failed,
                };
                for id in &to_retry {
                    let st = self.step_state(id)?;
                    st.status = StepStatus::Pending;
                    st.error = None;
                }
                // Steps skipped because a need failed get another chance.
                for st in self.state.steps.values_mut() {
                    if matches!(&st.status, StepStatus::Skipped { need: Some(_), .. }) {
                        st.status = StepStatus::Pending;
                    }
                }
                self.state.status = RunStatus::Running;
                self.state.failing = None;
                self.state.finished_at = None;
                self.event_with(
                    None,
                    EventKind::RetryRequested,
                    format!("retry of {} requested by {by}", to_retry.join(", ")),
                    Facts { by: Some(by.clone()), ..Facts::default() },
                );
            }
        }
        self.schedule();
        Ok(())
    }

    /// The state of `step` if it is an `action` step waiting for a person.
    fn waiting(&mut self, step: &str, action: &str, kind: &str, what: &str) -> Result<&mut StepState, Rejected> {
        self.refuse_if_finished()?;
        let def = self.def(step)?;
        if def.action != action {
            return Err(Rejected(format!("step \"{step}\" is a {} step, not {kind}", def.action)));
        }
        let st = self.step_state(step)?;
        if st.status != StepStatus::Waiting {
            return Err(Rejected(format!("step \"{step}\" is not waiting for {what} (it is {})", st.status.name())));
        }
        Ok(st)
    }

    fn refuse_if_finished(&self) -> Result<(), Rejected> {
        if self.state.status.is_finished() {
            Err(Rejected(format!("run {} is already {}", self.state.id, self.state.status)))
        } else {
            Ok(())
        }
    }

    fn def(&self, step: &str) -> Result<&Step, Rejected> {
        self.rb.step(step).ok_or_else(|| Rejected(format!("no step \"{step}\" in runbook {}", self.rb.id)))
    }

    fn current(&self, step: &str, attempt: u32, status: impl Fn(&StepStatus) -> bool) -> bool {
        self.state.steps.get(step).is_some_and(|s| s.attempt == attempt && status(&s.status))
    }

    pub(super) fn succeed(&mut self, step: &str, outputs: BTreeMap<String, Value>) {
        let now = self.now;
        let Some(st) = self.state.steps.get_mut(step) else { return };
        st.status = StepStatus::Succeeded;
        st.finished_at = Some(now);
        st.outputs = outputs;
        let took = st.started_at.map(|s| now - s).unwrap_or(0);
        // The scalar outputs, briefly: what a person watching wants to see.
        let shown = brief(&st.outputs);
        let detail = if shown.is_empty() { String::new() } else { format!(": {shown}") };
        let facts = Facts { attempt: Some(st.attempt), took_ms: Some(took), ..Facts::default() };
        self.event_with(Some(step), EventKind::StepSucceeded, format!("succeeded in {}{detail}", human(took)), facts);
        if let Some(m) = self.rb.step(step).and_then(|d| d.milestone) {
            self.reach(m, Some(step));
        }
    }

    fn fail(&mut self, step: &str, error: String) {
        let Some(def) = self.rb.step(step) else { return };
        let now = self.now;
        let Some(st) = self.state.steps.get_mut(step) else { return };
        if st.attempt < def.retry.attempts {
            let until = now + ms(def.retry.backoff);
            st.status = StepStatus::Backoff { until };
            st.error = Some(error.clone());
            let attempt = st.attempt;
            let facts =
                Facts { attempt: Some(attempt), error: Some(error.clone()), until: Some(until), ..Facts::default() };
            self.event_with(
                Some(step),
                EventKind::StepRetrying,
                format!(
                    "attempt {attempt} of {} failed: {error}; retrying in {}",
                    def.retry.attempts,
                    human(until - now)
                ),
                facts,
            );
            self.effects.push(Effect::Timer { key: self.key(step), kind: TimerKind::Backoff, at: until });
            return;
        }
        st.status = StepStatus::Failed;
        st.finished_at = Some(now);
        st.error = Some(error.clone());
        let attempts = st.attempt;
        let took = st.started_at.map(|s| now - s);
        let facts = Facts { attempt: Some(attempts), error: Some(error.clone()), took_ms: took, ..Facts::default() };
        self.event_with(
            Some(step),
            EventKind::StepFailed,
            format!("failed after {attempts} attempt(s): {error}"),
            facts,
        );
        self.announce(
            format!("@failed.{step}.{attempts}"),
            Topic::StepFailed,
            Some(step),
            format!("step {step} failed after {attempts} attempt(s): {error}"),
        );
        let phase = if def.cleanup { "cleanup step" } else { "step" };
        match &def.on_failure {
            OnFailure::Stop => {
                self.state.failing.get_or_insert_with(|| format!("{phase} {step} failed: {error}"));
            }
            OnFailure::Continue => {}
            OnFailure::Run(handlers) => {
                for h in handlers {
                    if let Some(hs) = self.state.steps.get_mut(h)
                        && !hs.triggered
                    {
                        hs.triggered = true;
                    }
                }
                self.state.failing.get_or_insert_with(|| format!("{phase} {step} failed: {error}"));
            }
        }
    }

    fn timer(&mut self, step: &str, attempt: u32, kind: TimerKind) {
        let Some(st) = self.state.steps.get(step) else { return };
        if st.attempt != attempt {
            return;
        }
        match (kind, &st.status) {
            (TimerKind::After, StepStatus::Deferred { .. }) => self.begin(step),
            (TimerKind::Backoff, StepStatus::Backoff { .. }) => self.begin(step),
            (TimerKind::Wait, StepStatus::Running) => self.succeed(step, BTreeMap::new()),
            (TimerKind::Timeout, StepStatus::Running | StepStatus::Waiting) => {
                let t = self.rb.step(step).and_then(|d| d.timeout).map(crate::duration::format).unwrap_or_default();
                self.fail(step, format!("timed out after {t}"));
            }
            (TimerKind::Budget, StepStatus::Running | StepStatus::Waiting | StepStatus::Backoff { .. }) => {
                let budget = self.rb.step(step).and_then(|d| d.budget).map(crate::duration::format).unwrap_or_default();
                let budget_ms = self.rb.step(step).and_then(|d| d.budget).map(ms);
                if let Some(st) = self.state.steps.get_mut(step)
                    && !st.over_budget
                {
                    st.over_budget = true;
                    let facts = Facts { budget_ms, ..Facts::default() };
                    self.event_with(Some(step), EventKind::OverBudget, format!("over its {budget} budget"), facts);
                    self.announce(
                        format!("@over-budget.{step}"),
                        Topic::OverBudget,
                        Some(step),
                        format!("step {step} is over its {budget} budget"),
                    );
                }
            }
            _ => {}
        }
    }

    /// Starts the next attempt of `step`.
    fn begin(&mut self, step: &str) {
        let Some(def) = self.rb.step(step) else { return };
        let now = self.now;
        let scope_args = template::render_value(&Value::from_node(&def.with), &RunScope(&self.state));
        let run_id = self.state.id.clone();
        let Some(st) = self.state.steps.get_mut(step) else { return };
        let first = st.attempt == 0;
        st.attempt += 1;
        if first {
            st.started_at = Some(now);
        }
        let attempt = st.attempt;
        let args = match scope_args {
            Ok(a) => a,
            Err(e) => {
                st.status = StepStatus::Running;
                // A missing value will be missing on every attempt: no retry.
                st.attempt = def.retry.attempts.max(attempt);
                self.fail(step, format!("cannot resolve arguments: {e}"));
                return;
            }
        };
        let key = Key { run: run_id, step: step.to_string(), attempt };
        match def.action.as_str() {
            "approve" => {
                st.status = StepStatus::Waiting;
                let msg = args.get("message").map(|m| format!(": {m}")).unwrap_or_default();
                self.event(Some(step), EventKind::StepWaiting, format!("waiting for approval{msg}"));
                self.watch_waiting(step, attempt);
            }
            "checklist" => {
                st.status = StepStatus::Waiting;
                let n = match args.get("items") {
                    Some(Value::List(items)) => items.len(),
                    _ => 0,
                };
                st.checklist = vec![None; n];
                let checked = match args.get("items") {
                    Some(Value::List(items)) => items.iter().filter(|i| i.get("check").is_some()).count(),
                    _ => 0,
                };
                let auto = if checked > 0 { format!(" ({checked} checked automatically)") } else { String::new() };
                self.event(
                    Some(step),
                    EventKind::StepWaiting,
                    format!("waiting for {n} checklist item(s) to be confirmed{auto}"),
                );
                self.watch_waiting(step, attempt);
                self.start_checks(step, attempt, &args, timeout_ms(def.timeout));
            }
            "wait" => {
                st.status = StepStatus::Running;
                let d = args.get("duration").and_then(Value::as_str).and_then(|d| crate::duration::parse(d).ok());
                let at = now + d.map(ms).unwrap_or(0);
                self.event(Some(step), EventKind::StepStarted, format!("waiting {}", human(at - now)));
                self.effects.push(Effect::Timer { key: key.clone(), kind: TimerKind::Wait, at });
            }
            action => {
                st.status = StepStatus::Running;
                let target = def.target.as_ref().map(|t| TargetSpec::of(t, &self.state.params));
                let on = target.as_ref().map(|t| format!(" on {}", t.selector)).unwrap_or_default();
                let msg =
                    if attempt > 1 { format!("attempt {attempt}: {action}{on}") } else { format!("{action}{on}") };
                let facts = Facts {
                    attempt: Some(attempt),
                    action: Some(action.to_string()),
                    target: target.as_ref().map(|t| t.selector.clone()),
                    ..Facts::default()
                };
                self.event_with(Some(step), EventKind::StepStarted, msg, facts);
                self.effects.push(Effect::Perform {
                    key: key.clone(),
                    action: action.to_string(),
                    args,
                    target,
                    timeout_ms: timeout_ms(def.timeout),
                });
            }
        }
        if let Some(t) = def.timeout {
            self.effects.push(Effect::Timer { key: key.clone(), kind: TimerKind::Timeout, at: now + ms(t) });
        }
        if first && let Some(b) = def.budget {
            self.effects.push(Effect::Timer { key, kind: TimerKind::Budget, at: now + ms(b) });
        }
    }

    /// Starts every step whose time has come, skips those that cannot run,
    /// and finishes the run when nothing is left.
    pub(super) fn schedule(&mut self) {
        if self.state.status.is_finished() {
            return;
        }
        loop {
            let mut changed = false;
            let main_over = self.main_over();
            for def in &self.rb.steps {
                if self.state.steps.get(&def.id).is_none_or(|st| st.status != StepStatus::Pending) {
                    continue;
                }
                let gate = if def.cleanup { self.cleanup_gate(def, main_over) } else { self.main_gate(def) };
                match gate {
                    Gate::Wait => continue,
                    Gate::Skip { reason, need } => {
                        self.skip(&def.id, reason, need);
                        changed = true;
                        continue;
                    }
                    Gate::Go => {}
                }
                if let Some((cond, _)) = &def.when {
                    match cond.eval(&RunScope(&self.state)) {
                        Ok(true) => {}
                        Ok(false) => {
                            self.skip(&def.id, "condition is false".to_string(), None);
                            changed = true;
                            continue;
                        }
                        Err(e) => {
                            if let Some(st) = self.state.steps.get_mut(&def.id) {
                                st.status = StepStatus::Running;
                                st.attempt = def.retry.attempts;
                            }
                            self.fail(&def.id, format!("cannot evaluate when: {e}"));
                            changed = true;
                            continue;
                        }
                    }
                }
                if let Some(after) = def.after {
                    self.defer(&def.id, after);
                } else {
                    self.begin(&def.id);
                }
                changed = true;
            }
            if !changed {
                break;
            }
        }
        self.settle();
    }

    /// Whether a pending main step may start: a handler once triggered,
    /// anything else while the run is not failing; all its needs done well
    /// (or skipped by their condition). A need that failed, or was skipped
    /// because of a failure, skips it.
    fn main_gate(&self, def: &Step) -> Gate {
        let is_handler = self.rb.handlers().contains(&def.id.as_str());
        let triggered = self.state.steps.get(&def.id).is_some_and(|st| st.triggered);
        if (is_handler && !triggered) || (self.state.failing.is_some() && !is_handler) {
            return Gate::Wait;
        }
        let mut ready = true;
        let mut blocked = None;
        for (n, _) in &def.needs {
            match self.state.steps.get(n).map(|s| &s.status) {
                Some(StepStatus::Succeeded) => {}
                Some(StepStatus::Skipped { need: None, .. }) => {}
                Some(StepStatus::Failed) | Some(StepStatus::Skipped { .. }) => blocked = Some(n.clone()),
                _ => ready = false,
            }
        }
        match blocked {
            Some(n) => Gate::Skip { reason: format!("needs {n}, which did not succeed"), need: Some(n) },
            None if ready => Gate::Go,
            None => Gate::Wait,
        }
    }

    fn defer(&mut self, step: &str, after: std::time::Duration) {
        let until = self.now + ms(after);
        if let Some(st) = self.state.steps.get_mut(step) {
            st.status = StepStatus::Deferred { until };
        }
        let facts = Facts { until: Some(until), ..Facts::default() };
        self.event_with(Some(step), EventKind::StepDeferred, format!("deferred until {}", rfc3339(until)), facts);
        self.effects.push(Effect::Timer { key: self.key(step), kind: TimerKind::After, at: until });
    }

    fn skip(&mut self, step: &str, reason: String, need: Option<String>) {
        let now = self.now;
        if let Some(st) = self.state.steps.get_mut(step) {
            st.status = StepStatus::Skipped { reason: reason.clone(), need: need.clone() };
            st.finished_at = Some(now);
        }
        self.event_with(
            Some(step),
            EventKind::StepSkipped,
            format!("skipped: {reason}"),
            Facts { need, ..Facts::default() },
        );
    }

    /// Records recovery and the end of the run when their time has come.
    /// Recovery is the main steps' alone; the run ends once its cleanup
    /// steps are done too.
    fn settle(&mut self) {
        let handlers = self.rb.handlers();
        let cleanup: Vec<&str> = self.rb.steps.iter().filter(|s| s.cleanup).map(|s| s.id.as_str()).collect();
        let relevant = |id: &str, st: &StepState| !handlers.contains(&id) || st.triggered;
        let any_active = self.state.steps.iter().any(|(id, s)| relevant(id, s) && s.status.is_active());
        if let Some(reason) = self.state.failing.clone() {
            let handler_pending = self
                .state
                .steps
                .iter()
                .any(|(id, s)| handlers.contains(&id.as_str()) && s.triggered && s.status == StepStatus::Pending);
            let cleanup_left =
                self.state.steps.iter().any(|(id, s)| cleanup.contains(&id.as_str()) && !s.status.is_terminal());
            if !any_active && !handler_pending && !cleanup_left {
                self.state.status = RunStatus::Failed;
                self.state.finished_at = Some(self.now);
                let facts = Facts { error: Some(reason.clone()), ..Facts::default() };
                self.event_with(None, EventKind::RunFailed, format!("run failed: {reason}"), facts);
                self.announce_end();
            }
            return;
        }
        let all_done = self.state.steps.iter().all(|(id, s)| !relevant(id, s) || s.status.is_terminal());
        let recovered = self.state.steps.iter().all(|(id, s)| {
            !relevant(id, s)
                || cleanup.contains(&id.as_str())
                || s.status.is_terminal()
                || matches!(s.status, StepStatus::Deferred { .. })
        });
        if recovered && self.state.recovered_at.is_none() {
            self.recovered();
        }
        if all_done {
            let failed: Vec<&str> = self
                .state
                .steps
                .iter()
                .filter(|(_, s)| s.status == StepStatus::Failed)
                .map(|(id, _)| id.as_str())
                .collect();
            self.state.status = RunStatus::Succeeded;
            self.state.finished_at = Some(self.now);
            let tolerated =
                if failed.is_empty() { String::new() } else { format!(" (tolerated failures: {})", failed.join(", ")) };
            self.event(None, EventKind::RunSucceeded, format!("run succeeded{tolerated}"));
            self.announce_end();
        }
    }

    /// The end of the RTO clock, and the `done` milestone unless a step
    /// claims it.
    fn recovered(&mut self) {
        self.state.recovered_at = Some(self.now);
        let rto = self.rb.rto.map(|r| format!(" of the {} RTO", crate::duration::format(r))).unwrap_or_default();
        let since = self.now - self.state.incident_at;
        let facts = Facts { since_incident_ms: Some(since), rto_ms: self.rb.rto.map(ms), ..Facts::default() };
        self.event_with(
            None,
            EventKind::Recovered,
            format!("recovered {} after the incident{rto}", human(since)),
            facts,
        );
        if !self.rb.steps.iter().any(|s| s.milestone == Some(Milestone::Done)) {
            self.reach(Milestone::Done, None);
        }
    }
}

fn timeout_ms(t: Option<std::time::Duration>) -> Option<u64> {
    t.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn note_text(note: &str) -> String {
    if note.is_empty() { String::new() } else { format!(": {note}") }
}

/// `1m30s`, `250ms`.
pub fn human(ms: Millis) -> String {
    crate::duration::format(std::time::Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)))
}
