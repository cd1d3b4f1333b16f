//! The drill RPCs: the schedules with their next occurrence, "run now", and
//! the history of past occurrences with each run's RTO against its target.

use crate::driver::Runs;
use crate::scheduler::{self, SchedulerHandle};
use crate::store::{OccurrenceRecord, OccurrenceState, Origin};
use ripcord_proto::v1::{DrillInfo, DrillOccurrence, ListDrillsResponse};
use tonic::Status;

fn none() -> Status {
    Status::failed_precondition("the coordinator runs no drills: set `drills = \"drills.yaml\"` in its config")
}

fn status(e: scheduler::Error) -> Status {
    match e {
        e @ scheduler::Error::UnknownDrill { .. } => Status::not_found(e.to_string()),
        scheduler::Error::Launch { drill, source: scheduler::LaunchError::Refused(reason) } => {
            Status::failed_precondition(format!("drill {drill}: {reason}"))
        }
        e @ scheduler::Error::Launch { .. } => Status::unavailable(e.to_string()),
        e @ scheduler::Error::Store(_) => Status::internal(e.to_string()),
    }
}

pub fn list(handle: Option<&SchedulerHandle>, file: Option<&std::path::Path>) -> Result<ListDrillsResponse, Status> {
    let handle = handle.ok_or_else(none)?;
    let drills = handle
        .list()
        .into_iter()
        .map(|d| DrillInfo {
            next_unix_ms: d.next.as_ref().map_or(0, |n| n.at),
            next_local: d.next.as_ref().map(|n| n.local.clone()).unwrap_or_default(),
            next_run_id: d.next.as_ref().map(|n| n.run_id.clone()).unwrap_or_default(),
            remind_unix_ms: d.next.as_ref().map_or(0, |n| n.at - d.remind_before_ms),
            name: d.name,
            runbook: d.runbook,
            environment: d.environment,
            owners: d.owners,
            rrule: d.rrule,
            timezone: d.timezone,
        })
        .collect();
    Ok(ListDrillsResponse { drills, drills_file: file.map(|f| f.display().to_string()).unwrap_or_default() })
}

pub async fn run_now(handle: Option<&SchedulerHandle>, name: &str, by: &str) -> Result<String, Status> {
    handle.ok_or_else(none)?.run_now(name, by).await.map_err(status)
}

pub fn history(handle: Option<&SchedulerHandle>, runs: &Runs, name: &str) -> Result<Vec<DrillOccurrence>, Status> {
    let handle = handle.ok_or_else(none)?;
    let records = handle.history(Some(name).filter(|n| !n.is_empty())).map_err(status)?;
    Ok(records.into_iter().map(|r| occurrence(r, runs)).collect())
}

/// One record as the CLI sees it, with its run's outcome when it started.
fn occurrence(r: OccurrenceRecord, runs: &Runs) -> DrillOccurrence {
    let mut o = DrillOccurrence {
        drill: r.drill,
        occurrence_id: r.id,
        due_unix_ms: r.due_at,
        due_local: r.due_local,
        started_by: match r.origin {
            Origin::Schedule => "schedule".into(),
            Origin::RunNow { by } => by,
        },
        ..DrillOccurrence::default()
    };
    o.state = match r.state {
        OccurrenceState::Upcoming | OccurrenceState::Launching { .. } => "due".into(),
        OccurrenceState::Missed { .. } => "missed".into(),
        OccurrenceState::Refused { reason, .. } => {
            o.reason = reason;
            "refused".into()
        }
        OccurrenceState::Started { run_id, late_ms, .. } => {
            o.late_ms = late_ms;
            if let Ok(rec) = runs.get(&run_id) {
                let s = &rec.state;
                o.run_status = s.status.to_string();
                o.rto_achieved_ms = s.recovered_at.map_or(0, |at| at - s.incident_at);
                o.rto_target_ms = ripcord_engine::check::check(&rec.runbook_text)
                    .ok()
                    .and_then(|rb| rb.rto)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
            }
            o.run_id = run_id;
            "started".into()
        }
    };
    o
}
