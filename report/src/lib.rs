//! The report of a run: the incident report of a recovery, the rehearsal
//! report of a drill. [`Report::of`] reads the typed run view
//! (`ripcord_engine::model::RunView`) and nothing else — the events' typed
//! facts, never their sentences — and [`markdown`], [`html`] and [`json`]
//! render it. Pure: no I/O, no clock (times come from the view).
//!
//! A report never holds a secret: the view has them redacted already, and
//! the report leaves the run's params out altogether.
//!
//! Besides the steps: what a rehearsal cleaned up ([`cleanup`]: the
//! runbook's `cleanup:` steps, never counted against the RTO), the
//! rehearsal day's milestones against the playbook's timetable
//! ([`milestones::PLAN`]), the parts of a composite run ([`parts`]: each
//! `runbook.run` child with its own RTO), and [`summary`], the few lines
//! for a chat webhook.

use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_engine::model::{LoggedEvent, RunView, StepView};
use ripcord_engine::run::{Actor, EventKind, Mode, RunStatus, StepStatus};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

pub mod cleanup;
mod gantt;
mod html;
mod markdown;
pub mod milestones;
pub mod parts;
mod summary;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rehearsal;

pub use cleanup::{CleanupItem, CleanupOutcome};
pub use html::html;
pub use markdown::markdown;
pub use milestones::{MilestoneReport, MilestoneStatus};
pub use parts::Part;
pub use summary::summary;

/// The version of the report's JSON. 2: action items of kind `cleanup`
/// (a cleanup step that failed or has not run); the fields added with it
/// (`cleanup`, `milestones`, `parts`, a step's `cleanup`) default when
/// absent, so a format 1 report still reads.
pub const FORMAT: u32 = 2;

/// One rendering of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown report format \"{0}\" (use md, html or json)")]
    UnknownFormat(String),
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "md" | "markdown" => Ok(Format::Markdown),
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            other => Err(Error::UnknownFormat(other.to_string())),
        }
    }
}

impl Format {
    pub fn render(self, r: &Report) -> String {
        match self {
            Format::Markdown => markdown(r),
            Format::Html => html(r),
            Format::Json => json(r),
        }
    }
}

/// Which report: a recovery's is an incident report, a drill's a rehearsal
/// report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Rehearsal,
}

/// A run's report: what happened, against what was wanted, and what to
/// change. Times are RFC 3339 text, durations milliseconds (`*_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    pub kind: Kind,
    /// "Incident report: …" or "Rehearsal report: …".
    pub title: String,
    pub run_id: String,
    pub runbook_id: String,
    pub runbook_title: String,
    /// Where the runbook came from: `builtin:ID` or the file name given.
    pub source: String,
    pub mode: Mode,
    pub status: RunStatus,
    pub started_by: Actor,
    pub incident_at: String,
    pub started_at: String,
    pub recovered_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the run's start to its end (or to when the view was taken, for
    /// a run still going): the span of the timeline.
    pub duration_ms: Millis,
    /// Why the run failed, when a failure stopped it.
    pub failing: Option<String>,
    pub rto: Objective,
    pub rpo: Objective,
    /// In runbook order, failure handlers included, cleanup steps last.
    pub steps: Vec<StepReport>,
    /// What the drill cleaned up: each cleanup step and its outcome. In a
    /// recovery run every one is skipped ("cleanup runs in drills only").
    #[serde(default)]
    pub cleanup: Vec<CleanupItem>,
    /// The rehearsal day: every milestone of the playbook's plan, reached or
    /// not; empty for an incident report.
    #[serde(default)]
    pub milestones: Vec<MilestoneReport>,
    /// The child runs of a composite run (its `runbook.run` steps), each
    /// with its own RTO; the whole run's RTO is [`Report::rto`].
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Approvals and checklist answers, oldest first.
    pub answers: Vec<Answer>,
    /// Notices delivered (or not) to people, oldest first.
    pub notices: Vec<NoticeSent>,
    /// Every over-budget or failed step, every cleanup that failed or has
    /// not run, and every operator note, ready to import into an issue
    /// tracker.
    pub action_items: Vec<ActionItem>,
    /// One change to the playbook per action item.
    pub playbook_changes: Vec<String>,
}

/// An objective (RTO or RPO): the target, what the run achieved, whether
/// that met it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objective {
    pub target_ms: Option<Millis>,
    pub achieved_ms: Option<Millis>,
    /// `None` while either is unknown.
    pub met: Option<bool>,
    /// How the achieved value was measured (RPO: the basis and the step).
    pub basis: Option<String>,
    /// The line people read: "RTO: 4m12s against a target of 30m (met)".
    pub summary: String,
}

/// One step: when it ran, how long against its budget, how many attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub action: String,
    /// The step's state, as `show --json` words it (`succeeded`, `failed`…).
    pub status: String,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// A failure handler.
    pub handler: bool,
    /// A cleanup step: runs after recovery, not counted against the RTO.
    #[serde(default)]
    pub cleanup: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the run's start to the step's.
    pub offset_ms: Option<Millis>,
    /// From its first attempt to its end; `None` until it ends.
    pub duration_ms: Option<Millis>,
    pub budget_ms: Option<Millis>,
    pub over_budget: bool,
    pub attempts: u32,
    /// Attempts after the first.
    pub retries: u32,
    /// Every failed attempt, oldest first.
    pub failures: Vec<AttemptFailure>,
    /// The last error, if the step failed.
    pub error: Option<String>,
}

impl StepReport {
    /// Its state in words: "skipped: why", "failed (handler)",
    /// "succeeded (cleanup)".
    pub fn status_line(&self) -> String {
        let mut status = match (&self.skip_reason, self.handler) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, true) => format!("{} (handler)", self.status),
            (None, false) => self.status.clone(),
        };
        if self.cleanup {
            status.push_str(" (cleanup)");
        }
        status
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    pub attempt: u32,
    pub at: String,
    pub error: String,
}

/// An approval, or a checklist item confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub step: String,
    /// The checklist item (1-based) and its text; `None` for an approval.
    pub item: Option<u32>,
    pub text: Option<String>,
    pub by: Actor,
    pub note: String,
    pub at: String,
}

/// A notice the run sent (or failed to send) to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeSent {
    /// Its name in the run (its idempotency key): `@started`, `@over-budget.STEP`…
    pub name: String,
    /// What it was about (`run_started`, `over_budget`…).
    pub topic: String,
    pub step: Option<String>,
    pub at: String,
    pub delivered: bool,
    pub error: Option<String>,
}

/// Something to follow up, in the shape issue trackers import: a title, a
/// body and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionItem {
    /// Stable within the run: `over-budget:STEP`, `failed:STEP`,
    /// `cleanup:STEP`, `note:SEQ`.
    pub id: String,
    pub kind: ActionKind,
    pub step: Option<String>,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    OverBudget,
    /// A main step failed.
    Failed,
    /// A cleanup step failed or has not run: what it undoes is still there.
    Cleanup,
    Note,
}

/// The report as JSON (pretty), action items as an array under `action_items`.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the report: {e}\"}}"))
}

/// A duration as people and runbooks write it: `1h30m`, `250ms`.
pub(crate) fn human(ms: Millis) -> String {
    ripcord_engine::duration::format(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

impl Report {
    pub fn of(v: &RunView) -> Report {
        let kind = match v.mode {
            Mode::Recovery => Kind::Incident,
            Mode::Drill => Kind::Rehearsal,
        };
        let title = match kind {
            Kind::Incident => format!("Incident report: {}", v.title),
            Kind::Rehearsal => format!("Rehearsal report: {}", v.title),
        };
        let end = v.finished_at_ms.unwrap_or(v.now_ms);
        let steps: Vec<StepReport> = v.steps.iter().map(|s| step_report(v, s)).collect();
        let answers = answers(v);
        let cleanup = cleanup::items(v);
        let action_items = action_items(v, &steps, &cleanup);
        let playbook_changes = action_items.iter().map(|a| change(a, &steps)).collect();
        Report {
            format: FORMAT,
            kind,
            title,
            run_id: v.run_id.clone(),
            runbook_id: v.runbook_id.clone(),
            runbook_title: v.title.clone(),
            source: v.source.clone(),
            mode: v.mode,
            status: v.status,
            started_by: v.started_by.clone(),
            incident_at: rfc3339(v.incident_at_ms),
            started_at: rfc3339(v.created_at_ms),
            recovered_at: v.recovered_at_ms.map(rfc3339),
            finished_at: v.finished_at_ms.map(rfc3339),
            duration_ms: (end - v.created_at_ms).max(0),
            failing: v.failing.clone(),
            rto: rto(v),
            rpo: rpo(v),
            steps,
            cleanup,
            milestones: milestones::of(v),
            parts: parts::of(v),
            answers,
            notices: notices(v),
            action_items,
            playbook_changes,
        }
    }
}

pub(crate) fn objective(
    name: &str,
    target_ms: Option<Millis>,
    achieved_ms: Option<Millis>,
    basis: Option<String>,
) -> Objective {
    let met = target_ms.zip(achieved_ms).map(|(t, a)| a <= t);
    let achieved = achieved_ms.map_or_else(|| "not achieved yet".to_string(), human);
    let target = target_ms.map_or_else(|| "no target set".to_string(), |t| format!("against a target of {}", human(t)));
    let verdict = match met {
        Some(true) => " (met)",
        Some(false) => " (MISSED)",
        None => "",
    };
    let how = basis.as_ref().map(|b| format!(", {b}")).unwrap_or_default();
    Objective { target_ms, achieved_ms, met, basis, summary: format!("{name}: {achieved} {target}{verdict}{how}") }
}

/// From the incident to recovery; nothing while the run has not recovered.
fn rto(v: &RunView) -> Objective {
    objective("RTO", v.rto_ms, v.recovered_at_ms.map(|r| r - v.incident_at_ms), None)
}

fn rpo(v: &RunView) -> Objective {
    let basis = v
        .rpo_achieved
        .as_ref()
        .map(|r| format!("from the {} at {} (step {})", r.basis.describe(), rfc3339(r.kept_until), r.step));
    let mut o = objective("RPO", v.rpo_ms, v.rpo_achieved.as_ref().map(|r| r.lost_ms), basis);
    if v.rpo_achieved.is_none() {
        o.summary = format!(
            "RPO: not measured (no step of this run tells it){}",
            v.rpo_ms.map(|t| format!(", target {}", human(t))).unwrap_or_default()
        );
    }
    o
}

fn step_events<'a>(v: &'a RunView, step: &'a str) -> impl Iterator<Item = &'a LoggedEvent> + 'a {
    v.events.iter().filter(move |e| e.event.step.as_deref() == Some(step))
}

fn step_report(v: &RunView, s: &StepView) -> StepReport {
    let failures = step_events(v, &s.id)
        .filter(|e| matches!(e.event.kind, EventKind::StepRetrying | EventKind::StepFailed))
        .map(|e| AttemptFailure {
            attempt: e.event.facts.attempt.unwrap_or(0),
            at: rfc3339(e.event.at),
            error: e.event.facts.error.clone().unwrap_or_default(),
        })
        .collect();
    let duration_ms = match (s.started_at_ms, s.finished_at_ms) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let over = s.over_budget || s.budget_ms.zip(duration_ms).is_some_and(|(b, d)| d > b);
    StepReport {
        id: s.id.clone(),
        title: s.title.clone(),
        action: s.action.clone(),
        status: s.status.name().to_string(),
        skip_reason: match &s.status {
            StepStatus::Skipped { reason, .. } => Some(reason.clone()),
            _ => None,
        },
        handler: s.handler,
        cleanup: s.cleanup,
        started_at: s.started_at_ms.map(rfc3339),
        finished_at: s.finished_at_ms.map(rfc3339),
        offset_ms: s.started_at_ms.map(|t| (t - v.created_at_ms).max(0)),
        duration_ms,
        budget_ms: s.budget_ms,
        over_budget: over,
        attempts: s.attempt,
        retries: s.attempt.saturating_sub(1),
        failures,
        error: if s.status == StepStatus::Failed { s.error.clone() } else { None },
    }
}

fn answers(v: &RunView) -> Vec<Answer> {
    let mut out: Vec<(Millis, Answer)> = Vec::new();
    for s in &v.steps {
        if let Some(a) = &s.approval {
            let answer = Answer {
                step: s.id.clone(),
                item: None,
                text: None,
                by: a.by.clone(),
                note: a.note.clone(),
                at: rfc3339(a.at),
            };
            out.push((a.at, answer));
        }
        for i in &s.checklist {
            if let Some(c) = &i.confirmed {
                let answer = Answer {
                    step: s.id.clone(),
                    item: Some(i.item),
                    text: Some(i.text.clone()),
                    by: c.by.clone(),
                    note: c.note.clone(),
                    at: rfc3339(c.at),
                };
                out.push((c.at, answer));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, a)| a).collect()
}

/// The topic and step a notice's name stands for (`engine::run::notices`
/// names them): `@started`, `@finished.T`, `@failed.STEP.N`,
/// `@over-budget.STEP`, `@waiting.STEP.N`, `@escalate.N`.
fn notice_topic(name: &str) -> (String, Option<String>) {
    let rest = name.strip_prefix('@').unwrap_or(name);
    let (head, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let first = tail.split('.').next().filter(|s| !s.is_empty()).map(str::to_string);
    match head {
        "started" => ("run_started".into(), None),
        "finished" => ("run_finished".into(), None),
        "failed" => ("step_failed".into(), first),
        "over-budget" => ("over_budget".into(), Some(tail.to_string())),
        "waiting" => ("waiting".into(), first),
        "escalate" => ("escalation".into(), None),
        other => (other.to_string(), None),
    }
}

fn notices(v: &RunView) -> Vec<NoticeSent> {
    v.events
        .iter()
        .filter(|e| matches!(e.event.kind, EventKind::Notified | EventKind::NotifyFailed))
        .map(|e| {
            let f = &e.event.facts;
            let name = f.notice.clone().unwrap_or_default();
            let (derived, step) = notice_topic(&name);
            NoticeSent {
                topic: f.topic.map_or(derived, |t| t.name().to_string()),
                step: e.event.step.clone().or(step),
                name,
                at: rfc3339(e.event.at),
                delivered: e.event.kind == EventKind::Notified,
                error: f.error.clone(),
            }
        })
        .collect()
}

fn action_items(v: &RunView, steps: &[StepReport], cleanup: &[CleanupItem]) -> Vec<ActionItem> {
    let label = |kind: &str| vec!["ripcord".to_string(), v.runbook_id.clone(), kind.to_string()];
    let run = format!("run {} of {}", v.short_id(), v.runbook_id);
    let mut items = Vec::new();
    for s in steps {
        if s.over_budget {
            let took =
                s.duration_ms.map_or_else(|| "it is still running".to_string(), |d| format!("it took {}", human(d)));
            let budget = s.budget_ms.map(human).unwrap_or_default();
            items.push(ActionItem {
                id: format!("over-budget:{}", s.id),
                kind: ActionKind::OverBudget,
                step: Some(s.id.clone()),
                title: format!("step {} went over its {budget} budget", s.id),
                body: format!("In {run}, step {} ({}) has a budget of {budget}; {took}.", s.id, s.action),
                labels: label("over-budget"),
            });
        }
        if s.status == "failed" && !s.cleanup {
            let error = s.error.clone().unwrap_or_default();
            items.push(ActionItem {
                id: format!("failed:{}", s.id),
                kind: ActionKind::Failed,
                step: Some(s.id.clone()),
                title: format!("step {} failed", s.id),
                body: format!("In {run}, step {} ({}) failed after {} attempt(s): {error}", s.id, s.action, s.attempts),
                labels: label("failed"),
            });
        }
    }
    items.extend(cleanup::action_items(v, cleanup, &["ripcord".to_string(), v.runbook_id.clone()]));
    for e in &v.events {
        let f = &e.event.facts;
        let note = f.note.as_deref().map(str::trim).unwrap_or_default();
        let noted = matches!(e.event.kind, EventKind::Approved | EventKind::Confirmed | EventKind::RunAborted);
        if !noted || note.is_empty() {
            continue;
        }
        let who = f.by.as_ref().or(e.actor.as_ref()).map(|a| a.to_string()).unwrap_or_else(|| "an operator".into());
        let on = e.event.step.as_ref().map(|s| format!(" on step {s}")).unwrap_or_default();
        items.push(ActionItem {
            id: format!("note:{}", e.seq),
            kind: ActionKind::Note,
            step: e.event.step.clone(),
            title: format!("note by {}{on}: {}", who, first_line(note)),
            body: format!("In {run}, {who} noted{on} at {}: {note}", rfc3339(e.event.at)),
            labels: label("note"),
        });
    }
    items
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 80 { format!("{}…", line.chars().take(80).collect::<String>()) } else { line.into() }
}

/// The change to the playbook an action item calls for.
fn change(a: &ActionItem, steps: &[StepReport]) -> String {
    let step = a.step.as_deref().unwrap_or_default();
    let s = steps.iter().find(|s| s.id == step);
    match a.kind {
        ActionKind::OverBudget => {
            let took = s.and_then(|s| s.duration_ms).map(human).unwrap_or_else(|| "longer".into());
            let budget = s.and_then(|s| s.budget_ms).map(human).unwrap_or_default();
            format!(
                "Step {step}: it took {took} against a budget of {budget}; make it faster or raise its budget (and check the RTO still holds)."
            )
        }
        ActionKind::Failed => format!(
            "Step {step}: it failed ({}); fix its cause, or give it a retry, a check before it or an on_failure handler.",
            s.and_then(|s| s.error.clone()).unwrap_or_default()
        ),
        ActionKind::Cleanup if s.is_some_and(|s| s.status == "failed") => format!(
            "Cleanup step {step}: it failed ({}); fix its cause or give it a retry, so a rehearsal leaves nothing behind.",
            s.and_then(|s| s.error.clone()).unwrap_or_default()
        ),
        ActionKind::Cleanup => format!(
            "Cleanup step {step}: it had not run when the report was made; see that it runs before the rehearsal day ends (ask for its approval early, name who gives it)."
        ),
        ActionKind::Note => {
            let on = if step.is_empty() { String::new() } else { format!(" (step {step})") };
            format!("Review the operator's note{on} and change the playbook where it says so: {}", a.title)
        }
    }
}
