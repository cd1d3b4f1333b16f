//! The run's data: its state, the effects it asks for, the inputs it takes
//! and the events of its log.

use crate::clock::Millis;
use crate::escalation::Policy;
use crate::milestone::{self, Milestone};
use crate::runbook::Target;
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
        /// The need that did not succeed, when that is why (a retry gives
        /// such a step another chance); `None` for a false `when`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        need: Option<String>,
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

    pub(crate) fn is_terminal(&self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped { .. })
    }

    pub(crate) fn is_active(&self) -> bool {
        matches!(self, StepStatus::Waiting | StepStatus::Running | StepStatus::Backoff { .. })
    }
}

/// Who did something, from their certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

impl Actor {
    /// Who confirms a checklist item that its automated check passed.
    pub fn check() -> Self {
        Actor { name: "ripcord".into(), role: "check".into() }
    }
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

/// Where a checklist item's automated check stands in the current attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    /// Not performed yet, or no answer yet.
    Pending,
    /// It passed: the item is confirmed by [`Actor::check`].
    Passed,
    /// It failed: the item waits for a person.
    Failed,
}

impl CheckResult {
    pub fn name(self) -> &'static str {
        match self {
            CheckResult::Pending => "pending",
            CheckResult::Passed => "passed",
            CheckResult::Failed => "failed",
        }
    }
}

/// A checklist item's automated check (`check: {action, with}`) and its
/// last result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCheck {
    pub action: String,
    pub result: CheckResult,
    /// What it found, when it passed (`atlas.wait_cluster: state=IDLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the result came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
}

impl ItemCheck {
    pub fn pending(action: &str) -> Self {
        ItemCheck { action: action.to_string(), result: CheckResult::Pending, note: None, error: None, at: None }
    }
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
    /// For checklist steps: one entry per item, `Some` for an item with an
    /// automated check; empty when no item has one (and in states stored
    /// before checks were performed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Option<ItemCheck>>,
    /// For failure handlers: whether a failure called them.
    pub triggered: bool,
}

impl StepState {
    pub(crate) fn new() -> Self {
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
            checks: Vec::new(),
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
    /// When every main step that is not deferred finished (cleanup steps
    /// never count): the end of the RTO clock.
    pub recovered_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Where the runbook's `notify:` notices go, resolved from the params
    /// when the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_webhook: Option<String>,
    /// When the run reached each rehearsal milestone, the first time
    /// (`kick_off` at its start); absent in states stored before them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub milestones: milestone::Reached,
    /// Who acknowledged the run (`ripcord ack`), when, with their note:
    /// from then on escalation tiers are not sent. Absent in states stored
    /// before acks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Confirmation>,
    /// The escalation policy the run follows, fixed when it started.
    #[serde(default, skip_serializing_if = "Policy::is_empty")]
    pub escalation: Policy,
    /// Recipients an escalation tier has paged: they get the ack and the
    /// resolve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paged: Vec<String>,
}

impl RunState {
    /// The first 8 characters of the id.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }
}

/// A timer that belongs to the run, not to a step's attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "timer", rename_all = "snake_case")]
pub enum RunTimer {
    /// The runbook's escalation tier `tier` (1-based) is due, counted from
    /// the incident.
    Escalate { tier: usize },
    /// `step` (attempt `attempt`) has waited for a person for longer than
    /// the runbook's `waiting_longer_than`.
    Waiting { step: String, attempt: u32 },
}

impl RunTimer {
    /// Unique in its run; step ids cannot hold `@` or `.`, so a name never
    /// collides with a step's effects.
    pub fn name(&self) -> String {
        match self {
            RunTimer::Escalate { tier } => format!("@escalate.{tier}"),
            RunTimer::Waiting { step, attempt } => format!("@waiting.{step}.{attempt}"),
        }
    }
}

/// What a notice is about; a runbook's `notify: on:` picks which go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    RunStarted,
    RunFinished,
    StepFailed,
    OverBudget,
    Waiting,
    Escalation,
    /// Someone acknowledged the run (`ripcord ack`).
    Acknowledged,
}

impl Topic {
    pub const ALL: [Topic; 7] = [
        Topic::RunStarted,
        Topic::RunFinished,
        Topic::StepFailed,
        Topic::OverBudget,
        Topic::Waiting,
        Topic::Escalation,
        Topic::Acknowledged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::RunStarted => "run_started",
            Topic::RunFinished => "run_finished",
            Topic::StepFailed => "step_failed",
            Topic::OverBudget => "over_budget",
            Topic::Waiting => "waiting",
            Topic::Escalation => "escalation",
            Topic::Acknowledged => "acknowledged",
        }
    }
}

/// A message to people, sent once: committed with the transition that
/// caused it, delivered by the coordinator with `name` as its idempotency
/// key, acknowledged by `Input::Notified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub topic: Topic,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The runbook's own Slack-compatible webhook, if it sends this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Recipients from the escalation policy, for the coordinator's roster
    /// (roles, vendors, contacts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// What the recipients' pagers get: the run is one incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<Page>,
    pub text: String,
}

/// A pager event about the run's incident (PagerDuty Events API v2, its
/// `dedup_key` the run id): opened by an escalation tier, acknowledged by
/// `ripcord ack`, resolved when the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    Trigger,
    Acknowledge,
    Resolve,
}

/// The idempotency key of an effect: the same key is never performed twice
/// with different meaning, and a repeated key must not repeat the side effect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub run: String,
    pub step: String,
    pub attempt: u32,
}

/// Between a checklist step's id and an item's number in the key of that
/// item's check; step ids cannot hold it.
const CHECK_SEP: char = '#';

impl Key {
    /// The key of the automated check of item `item` (1-based) of checklist
    /// `step`, attempt `attempt`: `STEP#ITEM`, distinct per item and
    /// attempt and the same every time (a restart performs it again with
    /// it). Its outcome comes back as `Input::Succeeded`/`Failed` with that
    /// `step`, like any other.
    pub fn check(run: &str, step: &str, item: usize, attempt: u32) -> Key {
        Key { run: run.to_string(), step: format!("{step}{CHECK_SEP}{item}"), attempt }
    }
}

/// The checklist step and item (1-based) that an effect's or input's
/// `step` names when it is a check's ([`Key::check`]); `None` for a step.
pub fn check_of(step: &str) -> Option<(&str, usize)> {
    let (step, item) = step.split_once(CHECK_SEP)?;
    Some((step, item.parse().ok()?))
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

impl TimerKind {
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::After => "after",
            TimerKind::Backoff => "backoff",
            TimerKind::Budget => "budget",
            TimerKind::Timeout => "timeout",
            TimerKind::Wait => "wait",
        }
    }
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
    /// Deliver `Input::RunTimer` at `at`.
    RunTimer { run: String, timer: RunTimer, at: Millis },
    /// Send `notice`; answered with `Input::Notified`. `name` is unique in
    /// the run: the idempotency key of the delivery.
    Notify { run: String, name: String, notice: Notice },
}

impl Effect {
    /// The run it belongs to.
    pub fn run(&self) -> &str {
        match self {
            Effect::Perform { key, .. } | Effect::Timer { key, .. } => &key.run,
            Effect::RunTimer { run, .. } | Effect::Notify { run, .. } => run,
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
    pub(crate) fn of(t: &Target, params: &BTreeMap<String, Value>) -> Self {
        TargetSpec { selector: t.resolved_text(params), all: t.all }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case")]
pub enum Input {
    /// A `Perform` effect succeeded. `step` is its key's: a step id, or
    /// `STEP#ITEM` for a checklist item's check ([`check_of`]).
    Succeeded {
        step: String,
        attempt: u32,
        outputs: BTreeMap<String, Value>,
    },
    /// A `Perform` effect failed; `step` as for `Succeeded`.
    Failed {
        step: String,
        attempt: u32,
        error: String,
    },
    Timer {
        step: String,
        attempt: u32,
        kind: TimerKind,
    },
    Approve {
        step: String,
        by: Actor,
        note: String,
    },
    Confirm {
        step: String,
        item: usize,
        by: Actor,
        note: String,
    },
    Abort {
        by: Actor,
        reason: String,
    },
    Retry {
        by: Actor,
        step: Option<String>,
    },
    /// Someone took the run on (`ripcord ack`): its later escalation tiers
    /// are not sent.
    Ack {
        by: Actor,
        note: String,
    },
    RunTimer {
        timer: RunTimer,
    },
    /// A notice was delivered (`error: None`) or could not be.
    Notified {
        name: String,
        error: Option<String>,
        /// Who was reached, e.g. `kim (slack)`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reached: Vec<String>,
    },
}

/// A line of the run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    #[serde(default)]
    pub step: Option<String>,
    pub kind: EventKind,
    /// The sentence for people. Programs read `kind` and `facts`.
    pub message: String,
    #[serde(flatten)]
    pub facts: Facts,
}

/// What an event records, as data: which fields an event has depends on
/// its kind (an attempt and an error for a failure, who and a note for an
/// approval, the budget for an overrun…). Reports, escalation and the RTO
/// are computed from these, never from `Event::message`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The agents' selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How long the step took, from its first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt, or a deferred step, starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A checklist item, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The need whose failure skipped a step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need: Option<String>,
    /// Time from the declared incident (recovery, escalation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_incident_ms: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<Millis>,
    /// An escalation tier, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<usize>,
    /// A notice's name (its idempotency key in the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<Topic>,
    /// Who a notice reached (`kim (slack)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<String>,
    /// The rehearsal milestone reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestone: Option<Milestone>,
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
    /// A checklist item's automated check passed (`Facts::item`, `by`,
    /// `action`, `note`): the item is confirmed by [`Actor::check`].
    CheckPassed,
    /// A checklist item's automated check failed (`Facts::item`, `action`,
    /// `error`): the item waits for a person.
    CheckFailed,
    Recovered,
    RunSucceeded,
    RunFailed,
    RunAborted,
    RetryRequested,
    /// An escalation tier was reached with the run not yet recovered.
    Escalated,
    /// A step has waited for a person for longer than the runbook allows.
    StillWaiting,
    /// Someone acknowledged the run (`Facts::by`, `note`): later escalation
    /// tiers are not sent.
    RunAcknowledged,
    /// An escalation tier (`Facts::tier`) came due on an acknowledged run
    /// and was not sent (`Facts::by`: who acknowledged it).
    EscalationSuppressed,
    Notified,
    NotifyFailed,
    Ignored,
    /// A rehearsal milestone was reached (`Facts::milestone`), the first
    /// time.
    MilestoneReached,
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
