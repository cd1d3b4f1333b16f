//! What the owners are told: a reminder with the playbook's preparation
//! checklist, a missed occurrence, a refused start. Typed for programs, with
//! the sentence for people.

use crate::store::OccurrenceRecord;
use ripcord_engine::clock::Millis;
use ripcord_engine::duration;
use ripcord_schedule::{Drill, RunbookRef};

/// The playbook's "a week before" rehearsal checklist
/// (`shared/playbook/SCENARIOS.md`).
pub const CHECKLIST: [&str; 5] = [
    "announce the drill (Slack #engineering)",
    "gather DevOps, Backend and QA",
    "prepare the test environment",
    "check backups",
    "check monitoring",
];

/// A message to a drill's owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerNotice {
    /// The idempotency key: `RUN_ID/reminder`, `RUN_ID/missed`, `RUN_ID/refused`.
    pub key: String,
    pub drill: String,
    /// The occurrence's run id.
    pub run_id: String,
    pub environment: String,
    pub owners: Vec<String>,
    pub due_at: Millis,
    /// `due_at` in the drill's zone, RFC 3339 with its offset.
    pub due_local: String,
    /// The drill's IANA zone.
    pub timezone: String,
    pub kind: NoticeKind,
    /// The whole message, for a chat channel or a mail.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    /// The drill is coming: prepare.
    Reminder { checklist: Vec<String> },
    /// It was not started within its grace.
    Missed,
    /// Its start was refused.
    Refused { reason: String },
}

impl NoticeKind {
    fn key(&self) -> &'static str {
        match self {
            Self::Reminder { .. } => "reminder",
            Self::Missed => "missed",
            Self::Refused { .. } => "refused",
        }
    }
}

/// The notice of `kind` about `rec`, an occurrence of `drill`.
pub(crate) fn notice(drill: &Drill, rec: &OccurrenceRecord, kind: NoticeKind) -> OwnerNotice {
    let runbook = match &drill.runbook {
        RunbookRef::Builtin(id) => id.clone(),
        RunbookRef::File { path, .. } => path.clone(),
    };
    let zone = drill.schedule.timezone.name();
    let head = format!(
        "Drill {} (runbook {runbook}, environment {}), due {} ({zone})",
        drill.name, drill.environment, rec.due_local
    );
    let owners = if drill.owners.is_empty() { "(none)".to_string() } else { drill.owners.join(", ") };
    let text = match &kind {
        NoticeKind::Reminder { checklist } => {
            let mut t = format!(
                "{head}: a reminder for its owners {owners}, {} ahead. Before it:",
                duration::format(drill.remind_before)
            );
            for item in checklist {
                t.push_str("\n- ");
                t.push_str(item);
            }
            t
        }
        NoticeKind::Missed => format!(
            "{head}, was missed: no coordinator started it within its grace of {}. \
             Owners {owners}: run it by hand, or wait for the next occurrence.",
            duration::format(drill.grace)
        ),
        NoticeKind::Refused { reason } => {
            format!("{head}, was not started: {reason}. Owners {owners}: fix it, then run it by hand.")
        }
    };
    OwnerNotice {
        key: format!("{}/{}", rec.id, kind.key()),
        drill: drill.name.clone(),
        run_id: rec.id.clone(),
        environment: drill.environment.clone(),
        owners: drill.owners.clone(),
        due_at: rec.due_at,
        due_local: rec.due_local.clone(),
        timezone: zone.to_string(),
        kind,
        text,
    }
}

/// The reminder's kind: the checklist.
pub(crate) fn reminder() -> NoticeKind {
    NoticeKind::Reminder { checklist: CHECKLIST.iter().map(|s| s.to_string()).collect() }
}
