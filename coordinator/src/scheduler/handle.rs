//! What gRPC asks of the scheduler: the drills with their next occurrence,
//! "run now", and what became of past occurrences.

use super::{Error, LaunchError, Shared};
use crate::store::{OccurrenceRecord, OccurrenceState, Origin};
use chrono::{SecondsFormat, TimeZone};
use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_engine::hint::closest;
use ripcord_schedule::{Drill, RunbookRef, occurrence_id};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A cheap, cloneable handle on a scheduler's drills and records.
#[derive(Clone)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
}

/// A drill and when it runs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillNext {
    pub name: String,
    /// A built-in runbook's id, or the file.
    pub runbook: String,
    pub environment: String,
    pub owners: Vec<String>,
    /// The IANA zone of its schedule.
    pub timezone: String,
    /// Its RFC 5545 rule.
    pub rrule: String,
    /// How long before an occurrence its owners are reminded.
    pub remind_before_ms: Millis,
    /// `None` when its rule has ended.
    pub next: Option<NextOccurrence>,
}

/// A coming occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextOccurrence {
    pub at: Millis,
    /// `at` in the drill's zone, RFC 3339 with its offset.
    pub local: String,
    /// The run id it will start with.
    pub run_id: String,
}

impl SchedulerHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Every drill, in file order, with its next occurrence after now.
    pub fn list(&self) -> Vec<DrillNext> {
        let now = (self.shared.clock)();
        self.shared
            .drills
            .drills
            .iter()
            .map(|d| DrillNext {
                name: d.name.clone(),
                runbook: match &d.runbook {
                    RunbookRef::Builtin(id) => id.clone(),
                    RunbookRef::File { path, .. } => path.clone(),
                },
                environment: d.environment.clone(),
                owners: d.owners.clone(),
                timezone: d.schedule.timezone.name().to_string(),
                rrule: d.schedule.rrule.clone(),
                remind_before_ms: i64::try_from(d.remind_before.as_millis()).unwrap_or(i64::MAX),
                next: d.occurrences_after(now, 1).into_iter().next().map(|o| NextOccurrence {
                    run_id: occurrence_id(d, &o),
                    at: o.at,
                    local: o.local,
                }),
            })
            .collect()
    }

    /// Starts drill `name` now, for operator `by`, with a run id of its own
    /// (from the drill's name and this instant; never an occurrence's), and
    /// records it. Returns the run id.
    pub async fn run_now(&self, name: &str, by: &str) -> Result<String, Error> {
        let drill = self.drill(name)?;
        let now = (self.shared.clock)();
        let id = run_now_id(&drill.name, now);
        let result = self.shared.launcher.launch(drill, &id, by).await;
        let mut rec = OccurrenceRecord::new(
            id.clone(),
            drill.name.clone(),
            now,
            local(drill, now),
            Origin::RunNow { by: by.to_string() },
        );
        let at = (self.shared.clock)();
        let outcome = match result {
            // Twice in one millisecond is the same start.
            Ok(()) | Err(LaunchError::Exists) => {
                rec.state = OccurrenceState::Started { run_id: id.clone(), at, late_ms: 0 };
                Ok(id)
            }
            Err(LaunchError::Refused(reason)) => {
                // The operator hears it in the answer; no notice.
                rec.state = OccurrenceState::Refused { at, reason: reason.clone() };
                Err(Error::Launch { drill: drill.name.clone(), source: LaunchError::Refused(reason) })
            }
            Err(e) => return Err(Error::Launch { drill: drill.name.clone(), source: e }),
        };
        self.shared.store.swap_occurrence(None, &rec)?;
        tracing::info!(drill = %drill.name, run = %rec.id, %by, ok = outcome.is_ok(), "drill run now");
        outcome
    }

    /// The occurrence records (scheduled and run-now) of drill `name`, or of
    /// every drill, newest due first.
    pub fn history(&self, name: Option<&str>) -> Result<Vec<OccurrenceRecord>, Error> {
        if let Some(name) = name {
            // Only a drill this file still has, or one with records.
            let all = self.shared.store.occurrences()?;
            if self.shared.drills.get(name).is_none() && !all.iter().any(|r| r.drill == name) {
                return Err(self.unknown(name));
            }
            return Ok(all.into_iter().filter(|r| r.drill == name).collect());
        }
        Ok(self.shared.store.occurrences()?)
    }

    fn drill(&self, name: &str) -> Result<&Drill, Error> {
        self.shared.drills.get(name).ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> Error {
        let hint = closest(name, self.shared.drills.drills.iter().map(|d| d.name.as_str())).map(str::to_string);
        Error::UnknownDrill { name: name.to_string(), hint }
    }
}

/// A run-now's run id: 16 hex digits from a SHA-256 of the drill's name and
/// the instant, with its own prefix so it never equals an occurrence's.
pub fn run_now_id(drill: &str, now: Millis) -> String {
    let mut h = Sha256::new();
    h.update(b"ripcord drill run-now\0");
    h.update(drill.as_bytes());
    h.update(b"\0");
    h.update(now.to_be_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `at` in `drill`'s zone, RFC 3339 with the offset in force then.
fn local(drill: &Drill, at: Millis) -> String {
    match drill.schedule.timezone.timestamp_millis_opt(at).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, false),
        None => rfc3339(at),
    }
}
