//! What a rehearsal cleaned up: the runbook's `cleanup:` steps (drills
//! only, after the main steps; `StepView::cleanup`) and how each ended. A
//! cleanup step never counts against the RTO — the engine's recovery time
//! does not wait for it — and one that failed or has not run yet is an
//! action item: what it was to undo is still there.

use crate::{ActionItem, ActionKind, human};
use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_engine::model::{RunView, StepView};
use ripcord_engine::run::{Mode, StepStatus};
use serde::{Deserialize, Serialize};

/// The reason the engine gives a cleanup step in a recovery run.
pub const DRILLS_ONLY: &str = "cleanup runs in drills only";

/// How a cleanup step ended, or where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupOutcome {
    /// It succeeded.
    Done,
    /// It never ran: a recovery run, or nothing to clean up (`reason`).
    Skipped,
    /// It failed (`error`).
    Failed,
    /// It waits for a person: an approval or a checklist (`waiting_for`).
    Waiting,
    /// It has not started: the main steps or its needs (an approval before
    /// a deletion) are not done, or the run ended first.
    Pending,
    /// It is running (or waiting to retry).
    Running,
}

impl CleanupOutcome {
    /// Whether what the step was to undo may still be there.
    pub fn outstanding(self) -> bool {
        !matches!(self, CleanupOutcome::Done | CleanupOutcome::Skipped)
    }

    pub fn word(self) -> &'static str {
        match self {
            CleanupOutcome::Done => "done",
            CleanupOutcome::Skipped => "skipped",
            CleanupOutcome::Failed => "failed",
            CleanupOutcome::Waiting => "waiting",
            CleanupOutcome::Pending => "pending",
            CleanupOutcome::Running => "running",
        }
    }
}

/// One cleanup step: what it does and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupItem {
    pub step: String,
    /// What it does, as the runbook words it (its title).
    pub title: String,
    pub action: String,
    pub outcome: CleanupOutcome,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it waits for (an approval, its needs), while waiting or pending.
    pub waiting_for: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<Millis>,
    /// The line people read: "delete (Delete the restore cluster): done in 2m".
    pub summary: String,
}

/// The cleanup steps of `v`, in runbook order.
pub(crate) fn items(v: &RunView) -> Vec<CleanupItem> {
    v.steps.iter().filter(|s| s.cleanup).map(|s| item(v, s)).collect()
}

fn item(v: &RunView, s: &StepView) -> CleanupItem {
    let outcome = match &s.status {
        StepStatus::Succeeded => CleanupOutcome::Done,
        StepStatus::Skipped { .. } => CleanupOutcome::Skipped,
        StepStatus::Failed => CleanupOutcome::Failed,
        StepStatus::Waiting => CleanupOutcome::Waiting,
        StepStatus::Pending | StepStatus::Deferred { .. } => CleanupOutcome::Pending,
        StepStatus::Running | StepStatus::Backoff { .. } => CleanupOutcome::Running,
    };
    let reason = match &s.status {
        StepStatus::Skipped { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let error = (outcome == CleanupOutcome::Failed).then(|| s.error.clone().unwrap_or_default());
    let waiting_for =
        s.waiting_for.clone().filter(|_| matches!(outcome, CleanupOutcome::Waiting | CleanupOutcome::Pending));
    let duration_ms = s.started_at_ms.zip(s.finished_at_ms).map(|(a, b)| b - a);
    let how = match outcome {
        CleanupOutcome::Done => format!("done{}", duration_ms.map(|d| format!(" in {}", human(d))).unwrap_or_default()),
        CleanupOutcome::Skipped => format!("skipped: {}", reason.as_deref().unwrap_or_default()),
        CleanupOutcome::Failed => format!("FAILED: {}", error.as_deref().unwrap_or_default()),
        CleanupOutcome::Waiting | CleanupOutcome::Pending if v.status.is_finished() => {
            "NOT done: the run ended before it ran".to_string()
        }
        CleanupOutcome::Waiting | CleanupOutcome::Pending => {
            format!("not done yet{}", waiting_for.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())
        }
        CleanupOutcome::Running => "still running".to_string(),
    };
    CleanupItem {
        step: s.id.clone(),
        title: s.title.clone(),
        action: s.action.clone(),
        outcome,
        reason,
        error,
        waiting_for,
        started_at: s.started_at_ms.map(rfc3339),
        finished_at: s.finished_at_ms.map(rfc3339),
        duration_ms,
        summary: format!("{} ({}): {how}", s.id, s.title),
    }
}

/// Whether the cleanup section is the one line "runs in drills only": a
/// recovery run, whose cleanup steps the engine skipped from the start.
pub(crate) fn drills_only(mode: Mode, items: &[CleanupItem]) -> bool {
    mode == Mode::Recovery && !items.is_empty()
}

/// An action item for each cleanup step that failed or has not run: what
/// it was to undo is still there ("restore cluster not deleted yet").
pub(crate) fn action_items(v: &RunView, items: &[CleanupItem], labels: &[String]) -> Vec<ActionItem> {
    let run = format!("run {} of {}", v.short_id(), v.runbook_id);
    items
        .iter()
        .filter(|c| c.outcome.outstanding())
        .map(|c| {
            let (title, body) = match c.outcome {
                CleanupOutcome::Failed => (
                    format!("cleanup failed: {} ({})", c.title, c.step),
                    format!(
                        "In {run}, cleanup step {} ({}) failed: {}. Whatever it was to undo is still there: do it by hand.",
                        c.step,
                        c.action,
                        c.error.as_deref().unwrap_or_default()
                    ),
                ),
                _ => (
                    format!("cleanup not done yet: {} ({})", c.title, c.step),
                    format!(
                        "In {run}, cleanup step {} ({}) is {}{}; until it runs, whatever it was to undo is still there.",
                        c.step,
                        c.action,
                        c.outcome.word(),
                        c.waiting_for.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
                    ),
                ),
            };
            let mut labels = labels.to_vec();
            labels.push("cleanup".into());
            ActionItem {
                id: format!("cleanup:{}", c.step),
                kind: ActionKind::Cleanup,
                step: Some(c.step.clone()),
                title,
                body,
                labels,
            }
        })
        .collect()
}
