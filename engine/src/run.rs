//! The run state machine: `apply(runbook, state, input, now) -> Transition`.
//!
//! Pure: no clock (`now` is passed in), no ids (the run id is in the state),
//! no I/O. Every side effect is returned as data ([`Effect`]) with an
//! idempotency key (run, step, attempt); the coordinator's driver commits the
//! new state and the effects together before performing any of them.
//! Retries, deferred steps, budgets and timeouts are timers, i.e. data.
//!
//! A result for an attempt that is no longer current (a late answer after a
//! timeout, a repeated delivery after a restart) is ignored: a step's state
//! only moves forward for its current attempt.

use crate::clock::{Millis, rfc3339};
use crate::runbook::{OnFailure, ParamType, Runbook, Step, Target, parse_time};
use crate::template::{self, Ref, RunField, Scope};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Recovery,
    Drill,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Recovery => "recovery",
            Mode::Drill => "drill",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Aborted,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        self != RunStatus::Running
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for its needs.
    Pending,
    /// `after:` — starts at `until`.
    Deferred {
        until: Millis,
    },
    /// An approval or checklist waiting for a person.
    Waiting,
    /// Its action is being performed (attempt `StepState::attempt`).
    Running,
    /// Failed; the next attempt starts at `until`.
    Backoff {
        until: Millis,
    },
    Succeeded,
    Failed,
    Skipped {
        reason: String,
    },
}

impl StepStatus {
    pub fn name(&self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Deferred { .. } => "deferred",
            StepStatus::Waiting => "waiting",
            StepStatus::Running => "running",
            StepStatus::Backoff { .. } => "retrying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped { .. } => "skipped",
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped { .. })
    }

    fn is_active(&self) -> bool {
        matches!(self, StepStatus::Waiting | StepStatus::Running | StepStatus::Backoff { .. })
    }
}

/// Who did something, from their certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    pub by: Actor,
    pub note: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    /// The current (or last) attempt; 0 before the first.
    pub attempt: u32,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub outputs: BTreeMap<String, Value>,
    pub error: Option<String>,
    pub over_budget: bool,
    /// For approve steps: who approved.
    pub approval: Option<Confirmation>,
    /// For checklist steps: one entry per item.
    pub checklist: Vec<Option<Confirmation>>,
    /// For failure handlers: whether a failure called them.
    pub triggered: bool,
}

impl StepState {
    fn new() -> Self {
        StepState {
            status: StepStatus::Pending,
            attempt: 0,
            started_at: None,
            finished_at: None,
            outputs: BTreeMap::new(),
            error: None,
            over_budget: false,
            approval: None,
            checklist: Vec::new(),
            triggered: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub id: String,
    pub runbook_id: String,
    pub mode: Mode,
    pub params: BTreeMap<String, Value>,
    pub incident_at: Millis,
    pub created_at: Millis,
    pub status: RunStatus,
    pub steps: BTreeMap<String, StepState>,
    /// Why the run is failing (set by a step failure with `on_failure: stop`
    /// or handlers); no new steps start while set.
    pub failing: Option<String>,
    /// When every step that is not deferred finished: the end of the RTO clock.
    pub recovered_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

impl RunState {
    /// The first 8 characters of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
}

/// The idempotency key of an effect: the same key is never performed twice
/// with different meaning, and a repeated key must not repeat the side effect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub run: String,
    pub step: String,
    pub attempt: u32,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.run, self.step, self.attempt)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// A deferred step's start.
    After,
    /// The next attempt after a failure.
    Backoff,
    /// The step's budget is used up (an event, not a failure).
    Budget,
    /// The step's timeout: the attempt fails.
    Timeout,
    /// A `wait` step is done.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Perform `action` with resolved `args`, on the coordinator or on the
    /// agents `target` selects. Answered with `Succeeded` or `Failed`.
    Perform {
        key: Key,
        action: String,
        args: Value,
        #[serde(default)]
        target: Option<TargetSpec>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Deliver `Input::Timer` at `at`.
    Timer { key: Key, kind: TimerKind, at: Millis },
}

impl Effect {
    pub fn key(&self) -> &Key {
        match self {
            Effect::Perform { key, .. } | Effect::Timer { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub selector: String,
    pub all: bool,
}

impl TargetSpec {
    /// `t` with the run's params filled in. A run checks every target when
    /// it starts; should one still not resolve, the selector goes as written
    /// and the agent dispatch refuses it with the parse error.
    fn of(t: &Target, params: &BTreeMap<String, Value>) -> Self {
        TargetSpec { selector: t.resolved_text(params), all: t.all }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    Succeeded { step: String, attempt: u32, outputs: BTreeMap<String, Value> },
    Failed { step: String, attempt: u32, error: String },
    Timer { step: String, attempt: u32, kind: TimerKind },
    Approve { step: String, by: Actor, note: String },
    Confirm { step: String, item: usize, by: Actor, note: String },
    Abort { by: Actor, reason: String },
    Retry { by: Actor, step: Option<String> },
}

/// A line of the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    #[serde(default)]
    pub step: Option<String>,
    pub kind: EventKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    StepStarted,
    StepWaiting,
    StepDeferred,
    StepSucceeded,
    StepFailed,
    StepRetrying,
    StepSkipped,
    OverBudget,
    Approved,
    Confirmed,
    Recovered,
    RunSucceeded,
    RunFailed,
    RunAborted,
    RetryRequested,
    Ignored,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub state: RunState,
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
}

/// An operator input that does not apply (approving a step that is not
/// waiting, retrying a run that did not fail…). Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// Parameters for a new run.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub mode: Mode,
    pub params: BTreeMap<String, Value>,
    pub incident_at: Option<Millis>,
}

/// Checks and resolves parameters (defaults, types, `incident-5m` times) and
/// starts the run: the first transition.
pub fn start(rb: &Runbook, new: NewRun, now: Millis) -> Result<Transition, Rejected> {
    let incident_at = new.incident_at.unwrap_or(now);
    let mut params = BTreeMap::new();
    for k in new.params.keys() {
        if rb.param(k).is_none() {
            let names: Vec<&str> = rb.params.iter().map(|p| p.name.as_str()).collect();
            let hint = crate::catalogue::closest(k, names.iter().copied())
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            return Err(Rejected(format!("runbook {} has no param \"{k}\"{hint}", rb.id)));
        }
    }
    for p in &rb.params {
        let given = new.params.get(&p.name).cloned();
        let mut v = match (given, &p.default) {
            (Some(v), _) => coerce(p.ty, v).map_err(|e| Rejected(format!("param {}: {e}", p.name)))?,
            (None, Some(d)) => d.clone(),
            (None, None) if p.required => {
                let what = if p.description.is_empty() { String::new() } else { format!(" — {}", p.description) };
                return Err(Rejected(format!(
                    "missing required param \"{}\"{what} (declared at line {}); pass --param {}=…",
                    p.name, p.pos, p.name
                )));
            }
            (None, None) => continue,
        };
        if p.ty == ParamType::Time
            && let Value::Str(s) = &v
        {
            let t = parse_time(s, incident_at).map_err(|e| Rejected(format!("param {}: {e}", p.name)))?;
            v = Value::Str(rfc3339(t));
        }
        params.insert(p.name.clone(), v);
    }
    for step in &rb.steps {
        if let Some(t) = step.target.as_ref().filter(|t| t.is_templated()) {
            t.resolve(&params).map_err(|e| Rejected(format!("step {}: {e}", step.id)))?;
        }
    }
    let state = RunState {
        id: new.id,
        runbook_id: rb.id.clone(),
        mode: new.mode,
        params,
        incident_at,
        created_at: now,
        status: RunStatus::Running,
        steps: rb.steps.iter().map(|s| (s.id.clone(), StepState::new())).collect(),
        failing: None,
        recovered_at: None,
        finished_at: None,
    };
    let mut t = Machine { rb, state, effects: Vec::new(), events: Vec::new(), now };
    t.event(
        None,
        EventKind::RunStarted,
        format!("{} run of {} started; incident at {}", new.mode, rb.id, rfc3339(incident_at)),
    );
    t.schedule();
    Ok(t.finish())
}

/// Parses a `--param` value into the param's type.
/// The credentials a run of `rb` with these (resolved) params will name,
/// each with the first step that names it: every `{{ credentials.NAME.… }}`
/// in step arguments, and the `credentials` argument of
/// `atlas.connection_string` where params alone decide it. The coordinator
/// refuses a run that needs one it does not hold, before anything happens.
pub fn credentials_needed(rb: &Runbook, params: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |name: String, step: &str| {
        if !name.is_empty() && !out.iter().any(|(n, _)| *n == name) {
            out.push((name, step.to_string()));
        }
    };
    for step in &rb.steps {
        let mut texts = Vec::new();
        crate::check::collect_strings(&step.with, &mut texts);
        for (t, _) in &texts {
            for (r, _) in template::refs(t) {
                if let Ref::Credential { name, .. } = r {
                    add(name, &step.id);
                }
            }
        }
        if step.action == "atlas.connection_string"
            && let Some(Value::Str(arg)) = Value::from_node(&step.with).get("credentials")
            && let Ok(Value::Str(name)) = template::render(arg, &template::Params(params))
        {
            add(name.trim().to_string(), &step.id);
        }
    }
    out
}

fn coerce(ty: ParamType, v: Value) -> Result<Value, String> {
    let v = match (ty, v) {
        (ParamType::Int, Value::Str(s)) => {
            Value::Int(s.trim().parse().map_err(|_| format!("\"{s}\" is not an integer"))?)
        }
        (ParamType::Bool, Value::Str(s)) => match s.trim() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => return Err(format!("\"{s}\" is not true or false")),
        },
        (_, v) => v,
    };
    crate::runbook::check_param_value(ty, &v)?;
    Ok(v)
}

/// Applies one input.
pub fn apply(rb: &Runbook, state: &RunState, input: &Input, now: Millis) -> Result<Transition, Rejected> {
    let mut m = Machine { rb, state: state.clone(), effects: Vec::new(), events: Vec::new(), now };
    m.input(input)?;
    Ok(m.finish())
}

struct Machine<'a> {
    rb: &'a Runbook,
    state: RunState,
    effects: Vec<Effect>,
    events: Vec<Event>,
    now: Millis,
}

struct RunScope<'a>(&'a RunState);

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

fn ms(d: std::time::Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Machine<'_> {
    fn finish(self) -> Transition {
        Transition { state: self.state, effects: self.effects, events: self.events }
    }

    fn event(&mut self, step: Option<&str>, kind: EventKind, message: String) {
        self.events.push(Event { at: self.now, step: step.map(str::to_string), kind, message });
    }

    fn key(&self, step: &str) -> Key {
        let attempt = self.state.steps.get(step).map_or(0, |s| s.attempt);
        Key { run: self.state.id.clone(), step: step.to_string(), attempt }
    }

    fn step_state(&mut self, id: &str) -> Result<&mut StepState, Rejected> {
        self.state.steps.get_mut(id).ok_or_else(|| Rejected(format!("no step \"{id}\" in run {}", self.state.id)))
    }

    fn input(&mut self, input: &Input) -> Result<(), Rejected> {
        let finished = self.state.status.is_finished();
        match input {
            Input::Succeeded { step, attempt, outputs } => {
                if finished || !self.current(step, *attempt, |s| matches!(s, StepStatus::Running)) {
                    self.event(Some(step), EventKind::Ignored, format!("late result of attempt {attempt} ignored"));
                    return Ok(());
                }
                self.succeed(step, outputs.clone());
            }
            Input::Failed { step, attempt, error } => {
                if finished || !self.current(step, *attempt, |s| matches!(s, StepStatus::Running)) {
                    self.event(Some(step), EventKind::Ignored, format!("late failure of attempt {attempt} ignored"));
                    return Ok(());
                }
                self.fail(step, error.clone());
            }
            Input::Timer { step, attempt, kind } => {
                if finished {
                    return Ok(());
                }
                self.timer(step, *attempt, *kind);
            }
            Input::Approve { step, by, note } => {
                let now = self.now;
                let st = self.waiting(step, "approve", "an approval", "approval")?;
                st.approval = Some(Confirmation { by: by.clone(), note: note.clone(), at: now });
                let mut outputs = BTreeMap::new();
                outputs.insert("approved_by".to_string(), Value::str(&by.name));
                outputs.insert("note".to_string(), Value::str(note));
                self.event(Some(step), EventKind::Approved, format!("approved by {by}{}", note_text(note)));
                self.succeed(step, outputs);
            }
            Input::Confirm { step, item, by, note } => {
                let now = self.now;
                let st = self.waiting(step, "checklist", "a checklist", "confirmation")?;
                let n = st.checklist.len();
                let Some(slot) = st.checklist.get_mut(item.wrapping_sub(1)) else {
                    return Err(Rejected(format!("step \"{step}\" has items 1 to {n}; there is no item {item}")));
                };
                *slot = Some(Confirmation { by: by.clone(), note: note.clone(), at: now });
                let done = st.checklist.iter().all(Option::is_some);
                self.event(
                    Some(step),
                    EventKind::Confirmed,
                    format!("item {item} confirmed by {by}{}", note_text(note)),
                );
                if done {
                    let mut outputs = BTreeMap::new();
                    outputs.insert("confirmed_by".to_string(), Value::str(&by.name));
                    self.succeed(step, outputs);
                }
            }
            Input::Abort { by, reason } => {
                self.refuse_if_finished()?;
                self.state.status = RunStatus::Aborted;
                self.state.finished_at = Some(self.now);
                self.event(None, EventKind::RunAborted, format!("aborted by {by}: {reason}"));
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
                    if matches!(&st.status, StepStatus::Skipped { reason } if reason.starts_with("needs ")) {
                        st.status = StepStatus::Pending;
                    }
                }
                self.state.status = RunStatus::Running;
                self.state.failing = None;
                self.state.finished_at = None;
                self.event(
                    None,
                    EventKind::RetryRequested,
                    format!("retry of {} requested by {by}", to_retry.join(", ")),
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

    fn succeed(&mut self, step: &str, outputs: BTreeMap<String, Value>) {
        let now = self.now;
        let Some(st) = self.state.steps.get_mut(step) else { return };
        st.status = StepStatus::Succeeded;
        st.finished_at = Some(now);
        st.outputs = outputs;
        let took = st.started_at.map(|s| now - s).unwrap_or(0);
        // The scalar outputs, briefly: what a person watching wants to see.
        let shown: Vec<String> = st
            .outputs
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
        let detail = if shown.is_empty() { String::new() } else { format!(": {}", shown.join(", ")) };
        self.event(Some(step), EventKind::StepSucceeded, format!("succeeded in {}{detail}", human(took)));
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
            self.event(
                Some(step),
                EventKind::StepRetrying,
                format!(
                    "attempt {attempt} of {} failed: {error}; retrying in {}",
                    def.retry.attempts,
                    human(until - now)
                ),
            );
            self.effects.push(Effect::Timer { key: self.key(step), kind: TimerKind::Backoff, at: until });
            return;
        }
        st.status = StepStatus::Failed;
        st.finished_at = Some(now);
        st.error = Some(error.clone());
        let attempts = st.attempt;
        self.event(Some(step), EventKind::StepFailed, format!("failed after {attempts} attempt(s): {error}"));
        match &def.on_failure {
            OnFailure::Stop => {
                self.state.failing.get_or_insert_with(|| format!("step {step} failed: {error}"));
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
                self.state.failing.get_or_insert_with(|| format!("step {step} failed: {error}"));
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
                if let Some(st) = self.state.steps.get_mut(step)
                    && !st.over_budget
                {
                    st.over_budget = true;
                    self.event(Some(step), EventKind::OverBudget, format!("over its {budget} budget"));
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
            }
            "checklist" => {
                st.status = StepStatus::Waiting;
                let n = match args.get("items") {
                    Some(Value::List(items)) => items.len(),
                    _ => 0,
                };
                st.checklist = vec![None; n];
                self.event(
                    Some(step),
                    EventKind::StepWaiting,
                    format!("waiting for {n} checklist item(s) to be confirmed"),
                );
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
                self.event(Some(step), EventKind::StepStarted, msg);
                self.effects.push(Effect::Perform {
                    key: key.clone(),
                    action: action.to_string(),
                    args,
                    target,
                    timeout_ms: def.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
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
    fn schedule(&mut self) {
        if self.state.status.is_finished() {
            return;
        }
        loop {
            let mut changed = false;
            for def in &self.rb.steps {
                let Some(st) = self.state.steps.get(&def.id) else { continue };
                if st.status != StepStatus::Pending {
                    continue;
                }
                let is_handler = self.rb.handlers().contains(&def.id.as_str());
                if is_handler && !st.triggered {
                    continue;
                }
                if self.state.failing.is_some() && !is_handler {
                    continue;
                }
                // Needs: all done well → go; one failed or skipped by failure → skip.
                let mut ready = true;
                let mut blocked = None;
                for (n, _) in &def.needs {
                    match self.state.steps.get(n).map(|s| &s.status) {
                        Some(StepStatus::Succeeded) => {}
                        Some(StepStatus::Skipped { reason }) if !reason.starts_with("needs ") => {}
                        Some(StepStatus::Failed) | Some(StepStatus::Skipped { .. }) => blocked = Some(n.clone()),
                        _ => ready = false,
                    }
                }
                if let Some(n) = blocked {
                    let reason = format!("needs {n}, which did not succeed");
                    self.skip(&def.id, reason);
                    changed = true;
                    continue;
                }
                if !ready {
                    continue;
                }
                if let Some((cond, _)) = &def.when {
                    match cond.eval(&RunScope(&self.state)) {
                        Ok(true) => {}
                        Ok(false) => {
                            self.skip(&def.id, "condition is false".to_string());
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
                    let until = self.now + ms(after);
                    if let Some(st) = self.state.steps.get_mut(&def.id) {
                        st.status = StepStatus::Deferred { until };
                    }
                    self.event(Some(&def.id), EventKind::StepDeferred, format!("deferred until {}", rfc3339(until)));
                    self.effects.push(Effect::Timer { key: self.key(&def.id), kind: TimerKind::After, at: until });
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

    fn skip(&mut self, step: &str, reason: String) {
        let now = self.now;
        if let Some(st) = self.state.steps.get_mut(step) {
            st.status = StepStatus::Skipped { reason: reason.clone() };
            st.finished_at = Some(now);
        }
        self.event(Some(step), EventKind::StepSkipped, format!("skipped: {reason}"));
    }

    /// Records recovery and the end of the run when their time has come.
    fn settle(&mut self) {
        let handlers = self.rb.handlers();
        let relevant = |id: &str, st: &StepState| !handlers.contains(&id) || st.triggered;
        let any_active = self.state.steps.iter().any(|(id, s)| relevant(id, s) && s.status.is_active());
        if let Some(reason) = self.state.failing.clone() {
            let handler_pending = self
                .state
                .steps
                .iter()
                .any(|(id, s)| handlers.contains(&id.as_str()) && s.triggered && s.status == StepStatus::Pending);
            if !any_active && !handler_pending {
                self.state.status = RunStatus::Failed;
                self.state.finished_at = Some(self.now);
                self.event(None, EventKind::RunFailed, format!("run failed: {reason}"));
            }
            return;
        }
        let all_done = self.state.steps.iter().all(|(id, s)| !relevant(id, s) || s.status.is_terminal());
        let recovered = self.state.steps.iter().all(|(id, s)| {
            !relevant(id, s) || s.status.is_terminal() || matches!(s.status, StepStatus::Deferred { .. })
        });
        if recovered && self.state.recovered_at.is_none() {
            self.state.recovered_at = Some(self.now);
            let rto = self.rb.rto.map(|r| format!(" of the {} RTO", crate::duration::format(r))).unwrap_or_default();
            self.event(
                None,
                EventKind::Recovered,
                format!("recovered {} after the incident{rto}", human(self.now - self.state.incident_at)),
            );
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
        }
    }
}

fn note_text(note: &str) -> String {
    if note.is_empty() { String::new() } else { format!(": {note}") }
}

/// `1m30s`, `250ms`.
pub fn human(ms: Millis) -> String {
    crate::duration::format(std::time::Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)))
}
