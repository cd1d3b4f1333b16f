//! The rehearsal day: each milestone a drill reached, its time and its
//! offset from kick-off, next to the playbook's timetable ([`PLAN`]), late
//! ones marked and missing ones shown as not reached.

use crate::{Report, human};
use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_engine::milestone::Milestone;
use ripcord_engine::model::RunView;
use serde::{Deserialize, Serialize};

const MIN: Millis = 60_000;

/// One milestone of the playbook's day: due by `by_ms` after kick-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub milestone: Milestone,
    pub by_ms: Millis,
    /// The clock time of the playbook's day (kick-off at 09:00).
    pub clock: &'static str,
    pub what: &'static str,
}

/// The plan this report measures a rehearsal against: the playbook's
/// rehearsal day (`shared/playbook/PLAYBOOK.ko.md` "리허설 체크리스트",
/// `SCENARIOS.md` "Rehearsal checklist"): kick-off 09:00, backup snapshot
/// 09:15, scenario (restore) 09:30, verification 10:00, finish and clean up
/// 10:30, retrospective 11:00. A milestone is due by its time: the
/// snapshot is taken by 09:15 (the restore starts then), the restore is
/// done by 09:30 ("09:30 - 복구 완료"), the service verified by 10:00
/// ("10:00 - 헬스체크 통과"), recovered by 10:30 (then clean up until
/// 11:00, [`DAY_ENDS_MS`]).
pub const PLAN: [Planned; 5] = [
    Planned { milestone: Milestone::KickOff, by_ms: 0, clock: "09:00", what: "kick-off" },
    Planned { milestone: Milestone::Snapshot, by_ms: 15 * MIN, clock: "09:15", what: "backup snapshot taken" },
    Planned { milestone: Milestone::Restore, by_ms: 30 * MIN, clock: "09:30", what: "scenario run: data restored" },
    Planned { milestone: Milestone::Verification, by_ms: 60 * MIN, clock: "10:00", what: "data and service verified" },
    Planned { milestone: Milestone::Done, by_ms: 90 * MIN, clock: "10:30", what: "recovered; clean up next" },
];

/// Cleanup is done and the retrospective starts: 11:00, two hours after
/// kick-off.
pub const DAY_ENDS_MS: Millis = 120 * MIN;

/// Where a milestone stands against the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneStatus {
    OnTime,
    Late,
    NotReached,
}

/// One milestone of the day: planned, and reached (or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneReport {
    pub name: Milestone,
    /// What the playbook's day does by then.
    pub planned: String,
    /// The playbook's clock time ("09:15").
    pub planned_clock: String,
    /// Due this long after kick-off.
    pub planned_offset_ms: Millis,
    pub reached_at: Option<String>,
    /// From kick-off (the run's start).
    pub offset_ms: Option<Millis>,
    pub status: MilestoneStatus,
    /// How far past its planned offset, when late.
    pub late_by_ms: Option<Millis>,
    /// The line people read: "snapshot: +12m (plan 09:15, +15m): on time".
    pub summary: String,
}

/// Every milestone of the plan for a drill, in the day's order; none for
/// a recovery (an incident keeps no rehearsal timetable).
pub(crate) fn of(v: &RunView) -> Vec<MilestoneReport> {
    if v.mode != ripcord_engine::run::Mode::Drill {
        return vec![];
    }
    PLAN.iter()
        .map(|p| {
            let reached = v.milestones.iter().find(|m| m.name == p.milestone);
            let offset_ms = reached.map(|m| m.since_start_ms);
            let late_by_ms = offset_ms.filter(|o| *o > p.by_ms).map(|o| o - p.by_ms);
            let status = match (offset_ms, late_by_ms) {
                (None, _) => MilestoneStatus::NotReached,
                (Some(_), Some(_)) => MilestoneStatus::Late,
                (Some(_), None) => MilestoneStatus::OnTime,
            };
            let how = match (offset_ms, late_by_ms) {
                (None, _) => "not reached".to_string(),
                (Some(o), Some(l)) => format!("+{}, LATE by {}", human(o), human(l)),
                (Some(o), None) => format!("+{}, on time", human(o)),
            };
            MilestoneReport {
                name: p.milestone,
                planned: p.what.to_string(),
                planned_clock: p.clock.to_string(),
                planned_offset_ms: p.by_ms,
                reached_at: reached.map(|m| rfc3339(m.at_ms)),
                offset_ms,
                status,
                late_by_ms,
                summary: format!("{}: {how} (plan: {} by {}, +{})", p.milestone, p.what, p.clock, human(p.by_ms)),
            }
        })
        .collect()
}

/// The line under the table: when the run ended against the day's end
/// (nothing for an incident report).
pub(crate) fn day_end_line(r: &Report) -> Option<String> {
    if r.milestones.is_empty() {
        return None;
    }
    let plan = format!("the plan: cleaned up by 11:00, +{}, then the retrospective", human(DAY_ENDS_MS));
    Some(match r.finished_at {
        Some(_) => {
            let took = r.duration_ms;
            let late =
                if took > DAY_ENDS_MS { format!(", LATE by {}", human(took - DAY_ENDS_MS)) } else { String::new() };
            format!("The run ended +{}{late} ({plan}).", human(took))
        }
        None => format!("The run has not ended yet ({plan})."),
    })
}
