//! A run as people and reports see it: [`RunView`], built by the coordinator
//! from a run's record and log (`coordinator/src/view.rs`), carried to the
//! CLI as its serde JSON, and rendered by `ripcord show`/`watch`, by
//! `show --json` (that same JSON) and by reports. Secret params are redacted
//! before a view leaves the coordinator.
//!
//! The JSON (format [`FORMAT`]): times are unix ms, named `*_ms` at run and
//! step level and `at` in events and confirmations (the run's log as stored);
//! a step's state is flat (`status` with `until_ms` for `deferred` and
//! `retrying`, `skip_reason` and `skip_need` for `skipped`); enums are `snake_case` words;
//! an actor is `{name, role}`. Fields added since format 2 (a step's
//! `cleanup`, the run's `milestones`, a checklist item's `check`) default
//! when absent, so they did not change the format.

use crate::clock::Millis;
use crate::measure::Rpo;
use crate::milestone::Milestone;
use crate::run::{Actor, Confirmation, Event, ItemCheck, Mode, RunState, RunStatus, StepStatus, TargetSpec};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the view's JSON. 2: typed (actors as objects, targets as
/// `{selector, all}`, RPO basis as a word, events as logged).
pub const FORMAT: u32 = 2;

/// What a secret param's value is shown as.
pub const REDACTED: &str = "••••••";

/// One run: what it runs, where it stands against its objectives, every
/// step and the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// [`FORMAT`].
    pub format: u32,
    pub run_id: String,
    pub runbook_id: String,
    pub title: String,
    pub description: String,
    /// Where the runbook came from: `builtin:ID` or the file name given.
    pub source: String,
    pub mode: Mode,
    pub status: RunStatus,
    pub started_by: Actor,
    /// The coordinator's clock when it built the view.
    pub now_ms: Millis,
    pub created_at_ms: Millis,
    pub incident_at_ms: Millis,
    /// When every main step that is not deferred finished (cleanup steps
    /// never count): the end of the RTO clock.
    pub recovered_at_ms: Option<Millis>,
    pub finished_at_ms: Option<Millis>,
    /// The runbook's RTO.
    pub rto_ms: Option<Millis>,
    /// The RTO clock: from the incident to recovery, else to now while the
    /// run is running, else to its end.
    pub elapsed_ms: Millis,
    /// The runbook's RPO.
    pub rpo_ms: Option<Millis>,
    /// The RPO the run achieved so far (`measure::rpo`).
    pub rpo_achieved: Option<Rpo>,
    /// Why the run is failing, once a failure stopped it.
    pub failing: Option<String>,
    /// Secret ones are [`REDACTED`].
    pub params: BTreeMap<String, Value>,
    /// In runbook order, failure handlers included, cleanup steps last.
    pub steps: Vec<StepView>,
    pub events: Vec<LoggedEvent>,
    /// The rehearsal milestones reached so far, in the day's order
    /// ([`milestones`]).
    #[serde(default)]
    pub milestones: Vec<MilestoneView>,
    /// Who acknowledged the run (`ripcord ack`), when, with their note;
    /// absent in views of runs nobody acknowledged and in older views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Confirmation>,
}

/// When a run reached a rehearsal milestone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneView {
    pub name: Milestone,
    pub at_ms: Millis,
    /// From the run's start (its kick-off).
    pub since_start_ms: Millis,
}

/// The milestones `s` reached, in the day's order.
pub fn milestones(s: &RunState) -> Vec<MilestoneView> {
    s.milestones
        .iter()
        .map(|(m, at)| MilestoneView { name: *m, at_ms: *at, since_start_ms: at - s.created_at })
        .collect()
}

impl RunView {
    /// The first 8 characters of the id.
    pub fn short_id(&self) -> &str {
        self.run_id.get(..8).unwrap_or(&self.run_id)
    }

    pub fn step(&self, id: &str) -> Option<&StepView> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// One step of a run: its definition's essentials and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    pub id: String,
    pub title: String,
    pub action: String,
    /// `status`, with `until_ms`, or `skip_reason` and `skip_need` (the need
    /// that did not succeed), where the state has them.
    #[serde(flatten, with = "flat_status")]
    pub status: StepStatus,
    /// The current (or last) attempt; 0 before the first.
    pub attempt: u32,
    pub max_attempts: u32,
    pub needs: Vec<String>,
    /// The agents it runs on (params filled in); none for coordinator steps.
    pub target: Option<TargetSpec>,
    pub budget_ms: Option<Millis>,
    pub over_budget: bool,
    pub started_at_ms: Option<Millis>,
    pub finished_at_ms: Option<Millis>,
    pub error: Option<String>,
    /// What a waiting or pending step waits for, in words.
    pub waiting_for: Option<String>,
    /// For approve steps: who approved.
    pub approval: Option<Confirmation>,
    /// For checklist steps: every item.
    pub checklist: Vec<ChecklistItem>,
    pub outputs: BTreeMap<String, Value>,
    /// A failure handler (runs only when a failure calls it).
    pub handler: bool,
    /// For failure handlers: whether a failure called it.
    pub triggered: bool,
    /// A cleanup step (the runbook's `cleanup:`): runs in drills only,
    /// after the main steps; what a rehearsal cleaned up.
    #[serde(default)]
    pub cleanup: bool,
}

impl StepView {
    /// A step on its first attempt with nothing else known: where a view is
    /// built field by field (the coordinator's view, tests).
    pub fn new(id: &str, action: &str, status: StepStatus) -> Self {
        StepView {
            id: id.into(),
            title: id.into(),
            action: action.into(),
            status,
            attempt: 1,
            max_attempts: 1,
            needs: vec![],
            target: None,
            budget_ms: None,
            over_budget: false,
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
            waiting_for: None,
            approval: None,
            checklist: vec![],
            outputs: BTreeMap::new(),
            handler: false,
            triggered: false,
            cleanup: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// 1-based, as `ripcord approve --item` takes it.
    pub item: u32,
    pub text: String,
    pub confirmed: Option<Confirmation>,
    /// The item's automated check and its last result (`pending`,
    /// `passed` with a note, `failed` with an error); absent for an item
    /// only a person confirms, and in views from before checks ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ItemCheck>,
}

/// One line of a run's log, numbered: as the store keeps it and views show
/// it. Every field of [`Event`] is in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
    /// Who caused it, for operator actions.
    #[serde(default)]
    pub actor: Option<Actor>,
}

/// A [`StepStatus`] as flat fields of its step: `status` is the state's
/// name (`StepStatus::name`), `until_ms`, `skip_reason` and `skip_need` its
/// data.
mod flat_status {
    use super::*;
    use serde::{Deserializer, Serializer, de::Error as _};

    #[derive(Serialize, Deserialize)]
    struct Flat {
        status: String,
        #[serde(default)]
        until_ms: Option<Millis>,
        #[serde(default)]
        skip_reason: Option<String>,
        #[serde(default)]
        skip_need: Option<String>,
    }

    pub fn serialize<S: Serializer>(st: &StepStatus, s: S) -> Result<S::Ok, S::Error> {
        let (until_ms, skip_reason, skip_need) = match st {
            StepStatus::Deferred { until } | StepStatus::Backoff { until } => (Some(*until), None, None),
            StepStatus::Skipped { reason, need } => (None, Some(reason.clone()), need.clone()),
            _ => (None, None, None),
        };
        Flat { status: st.name().to_string(), until_ms, skip_reason, skip_need }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<StepStatus, D::Error> {
        let f = Flat::deserialize(d)?;
        let until = |name| f.until_ms.ok_or_else(|| D::Error::custom(format!("a {name} step needs until_ms")));
        Ok(match f.status.as_str() {
            "pending" => StepStatus::Pending,
            "deferred" => StepStatus::Deferred { until: until("deferred")? },
            "waiting" => StepStatus::Waiting,
            "running" => StepStatus::Running,
            "retrying" => StepStatus::Backoff { until: until("retrying")? },
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            "skipped" => StepStatus::Skipped { reason: f.skip_reason.unwrap_or_default(), need: f.skip_need },
            other => return Err(D::Error::custom(format!("unknown step status \"{other}\""))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Basis;
    use crate::run::{CheckResult, NewRun, start};

    fn alice() -> Actor {
        Actor { name: "alice".into(), role: "operator".into() }
    }

    fn step(id: &str, status: StepStatus) -> StepView {
        StepView { title: format!("the {id} step"), max_attempts: 3, ..StepView::new(id, "wait", status) }
    }

    /// A view with every step state and every optional part filled in.
    fn full() -> RunView {
        let confirmed = Confirmation { by: alice(), note: "looks good".into(), at: 1_500 };
        let statuses = [
            StepStatus::Pending,
            StepStatus::Deferred { until: 9_000 },
            StepStatus::Waiting,
            StepStatus::Running,
            StepStatus::Backoff { until: 8_000 },
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped { reason: "when was false".into(), need: None },
            StepStatus::Skipped { reason: "s6 failed".into(), need: Some("s6".into()) },
        ];
        let mut steps: Vec<StepView> =
            statuses.into_iter().enumerate().map(|(i, st)| step(&format!("s{i}"), st)).collect();
        steps[2].approval = Some(confirmed.clone());
        steps[2].checklist = vec![
            ChecklistItem { item: 1, text: "paged the owner".into(), confirmed: Some(confirmed), check: None },
            ChecklistItem {
                item: 2,
                text: "cluster is IDLE".into(),
                confirmed: None,
                check: Some(ItemCheck {
                    action: "atlas.wait_cluster".into(),
                    result: CheckResult::Failed,
                    note: None,
                    error: Some("state is UPDATING".into()),
                    at: Some(1_600),
                }),
            },
        ];
        steps[3].target = Some(TargetSpec { selector: "role=redis".into(), all: true });
        steps[5].outputs = BTreeMap::from([
            ("keys".into(), Value::Int(12)),
            ("ratio".into(), Value::Float(0.5)),
            ("nested".into(), Value::Map(BTreeMap::from([("list".into(), Value::List(vec![Value::Bool(true)]))]))),
        ]);
        steps[5].budget_ms = Some(60_000);
        steps[5].over_budget = true;
        steps[5].started_at_ms = Some(1_000);
        steps[5].finished_at_ms = Some(70_000);
        steps[6].error = Some("exit 1".into());
        steps[7].handler = true;
        steps[8].cleanup = true;
        // Real log lines, whatever fields an event has.
        let rb = crate::check::check("id: t\ntitle: t\nsteps:\n  - {id: w, action: wait, with: {duration: 1s}}\n")
            .unwrap_or_else(|d| panic!("{d:?}"));
        let new = NewRun { id: "r".into(), mode: Mode::Drill, params: BTreeMap::new(), incident_at: None };
        let logged = start(&rb, new, 1_000).unwrap().events;
        assert!(logged.len() >= 2, "{logged:?}");
        let event = |seq: usize, actor| LoggedEvent { seq: seq as u64, event: logged[seq].clone(), actor };
        RunView {
            format: FORMAT,
            run_id: "0123456789abcdef".into(),
            runbook_id: "redis-aof".into(),
            title: "Redis AOF repair".into(),
            description: "d".into(),
            source: "builtin:redis-aof".into(),
            mode: Mode::Drill,
            status: RunStatus::Running,
            started_by: alice(),
            now_ms: 100_000,
            created_at_ms: 500,
            incident_at_ms: 0,
            recovered_at_ms: Some(90_000),
            finished_at_ms: None,
            rto_ms: Some(1_800_000),
            elapsed_ms: 90_000,
            rpo_ms: None,
            rpo_achieved: Some(Rpo { lost_ms: 300, kept_until: -300, basis: Basis::RestorePoint, step: "s5".into() }),
            failing: Some("step s6 failed".into()),
            params: BTreeMap::from([("password".into(), Value::str(REDACTED)), ("n".into(), Value::Int(2))]),
            steps,
            events: vec![event(0, Some(alice())), event(1, None)],
            milestones: vec![
                MilestoneView { name: Milestone::KickOff, at_ms: 500, since_start_ms: 0 },
                MilestoneView { name: Milestone::Restore, at_ms: 60_500, since_start_ms: 60_000 },
            ],
            acknowledged: Some(Confirmation { by: alice(), note: "on it".into(), at: 30_000 }),
        }
    }

    #[test]
    fn a_view_survives_its_json() {
        let v = full();
        let text = serde_json::to_string(&v).unwrap();
        let back: RunView = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, v);
    }

    #[test]
    fn the_json_is_flat_where_readers_compare_words() {
        let j = serde_json::to_value(full()).unwrap();
        let st = |i: usize, f: &str| j["steps"][i][f].clone();
        assert_eq!((j["mode"].as_str(), j["status"].as_str()), (Some("drill"), Some("running")));
        assert_eq!(st(1, "status"), "deferred");
        assert_eq!(st(1, "until_ms"), 9_000);
        assert_eq!(st(4, "status"), "retrying");
        assert_eq!(st(7, "skip_reason"), "when was false");
        assert_eq!(st(8, "skip_need"), "s6");
        assert!(st(0, "until_ms").is_null() && st(0, "skip_reason").is_null());
        assert_eq!(st(2, "approval")["by"]["name"], "alice");
        assert_eq!(j["rpo_achieved"]["basis"], "restore_point");
        assert_eq!(j["rpo_achieved"]["kept_until_ms"], -300);
        assert_eq!(j["events"][0]["kind"], "run_started");
        assert_eq!(j["events"][0]["at"], 1_000);
        assert_eq!(j["events"][0]["actor"]["role"], "operator");
        assert_eq!((st(8, "cleanup").as_bool(), st(7, "cleanup").as_bool()), (Some(true), Some(false)));
        let items = &st(2, "checklist");
        assert!(items[0].get("check").is_none(), "no check, no field: {items}");
        assert_eq!(items[1]["check"]["result"], "failed");
        assert_eq!(items[1]["check"]["error"], "state is UPDATING");
        assert_eq!(j["milestones"][1]["name"], "restore");
        assert_eq!(j["milestones"][1]["since_start_ms"], 60_000);
    }

    #[test]
    fn views_from_before_cleanup_milestones_and_checks_still_read() {
        let mut j = serde_json::to_value(full()).unwrap();
        j.as_object_mut().unwrap().remove("milestones");
        for step in j["steps"].as_array_mut().unwrap() {
            step.as_object_mut().unwrap().remove("cleanup");
            for item in step["checklist"].as_array_mut().unwrap() {
                item.as_object_mut().unwrap().remove("check");
            }
        }
        let v: RunView = serde_json::from_value(j).unwrap();
        assert!(v.milestones.is_empty() && v.steps.iter().all(|s| !s.cleanup));
        assert!(v.steps.iter().flat_map(|s| &s.checklist).all(|i| i.check.is_none()));
    }

    #[test]
    fn milestones_come_in_the_days_order_from_the_start() {
        let rb = crate::check::check("id: t\ntitle: t\nsteps:\n  - {id: w, action: noop}\n").unwrap();
        let new = NewRun { id: "r".into(), mode: Mode::Drill, params: BTreeMap::new(), incident_at: None };
        let mut s = start(&rb, new, 1_000).unwrap().state;
        s.milestones.insert(Milestone::Verification, 9_000);
        s.milestones.insert(Milestone::Snapshot, 4_000);
        let names: Vec<(Milestone, Millis)> = milestones(&s).iter().map(|m| (m.name, m.since_start_ms)).collect();
        assert_eq!(names, [(Milestone::KickOff, 0), (Milestone::Snapshot, 3_000), (Milestone::Verification, 8_000)]);
    }

    #[test]
    fn an_unknown_step_status_is_refused() {
        let mut j = serde_json::to_value(full()).unwrap();
        j["steps"][0]["status"] = "napping".into();
        let e = serde_json::from_value::<RunView>(j.clone()).unwrap_err().to_string();
        assert!(e.contains("unknown step status \"napping\""), "{e}");
        j["steps"][0]["status"] = "deferred".into();
        let e = serde_json::from_value::<RunView>(j).unwrap_err().to_string();
        assert!(e.contains("needs until_ms"), "{e}");
    }
}
