//! One suite, every storage: what the driver and the fleet rely on.

use super::{
    AgentRecord, Commit, Delivery, LoggedEvent, OccurrenceRecord, OccurrenceState, Origin, RunRecord, Store, effect_id,
};
use ripcord_engine::run::{Actor, Effect, Event, EventKind, Key, RunState, RunTimer, TimerKind};

fn storages() -> Vec<(&'static str, Store)> {
    vec![("sled", Store::temporary().unwrap()), ("memory", Store::memory())]
}

fn record(id: &str, created_at: i64) -> RunRecord {
    RunRecord::new(
        "builtin:rb".into(),
        "id: rb".into(),
        state(id, created_at),
        Actor { name: "alice".into(), role: "operator".into() },
    )
}

/// A running drill's state, read from JSON so that fields the engine adds
/// with a serde default need no change here.
pub(crate) fn state(id: &str, created_at: i64) -> RunState {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "runbook_id": "rb",
        "mode": "drill",
        "params": {},
        "incident_at": created_at,
        "created_at": created_at,
        "status": "running",
        "steps": {},
    }))
    .unwrap_or_else(|e| panic!("run state: {e}"))
}

fn event(seq: u64) -> LoggedEvent {
    let event =
        Event { at: 1, step: None, kind: EventKind::RunStarted, message: format!("e{seq}"), facts: Default::default() };
    LoggedEvent { seq, event, actor: None }
}

fn timer(run: &str, step: &str) -> Effect {
    Effect::Timer { key: Key { run: run.into(), step: step.into(), attempt: 1 }, kind: TimerKind::Timeout, at: 5 }
}

#[test]
fn a_commit_is_read_back_whole() {
    for (name, store) in storages() {
        let rec = record("r1", 10);
        let effects =
            [timer("r1", "a"), Effect::RunTimer { run: "r1".into(), timer: RunTimer::Escalate { tier: 1 }, at: 9 }];
        let events = [event(0), event(1)];
        store.commit(&[Commit { record: &rec, events: &events, new_effects: &effects, acked: &[] }]).unwrap();
        assert_eq!(store.run("r1").unwrap().unwrap().state, rec.state, "{name}");
        assert_eq!(store.events("r1").unwrap(), events.to_vec(), "{name}");
        let pending: Vec<String> = store.pending_effects("r1").unwrap().into_iter().map(|(id, _)| id).collect();
        let mut expect: Vec<String> = effects.iter().map(effect_id).collect();
        expect.sort();
        assert_eq!(pending, expect, "{name}");
        assert!(store.bytes_of_run("r1") > 0, "{name}");
        assert_eq!(store.run("nope").unwrap().map(|r| r.state.id), None, "{name}");
    }
}

#[test]
fn acknowledged_effects_are_gone_and_others_stay() {
    for (name, store) in storages() {
        let rec = record("r1", 10);
        let effects = [timer("r1", "a"), timer("r1", "b")];
        store.commit(&[Commit { record: &rec, events: &[], new_effects: &effects, acked: &[] }]).unwrap();
        let acked = [effect_id(&effects[0])];
        store.commit(&[Commit { record: &rec, events: &[], new_effects: &[], acked: &acked }]).unwrap();
        let pending: Vec<Effect> = store.pending_effects("r1").unwrap().into_iter().map(|(_, e)| e).collect();
        assert_eq!(pending, vec![effects[1].clone()], "{name}");
    }
}

#[test]
fn step_ids_differing_only_in_case_keep_their_own_timers() {
    for (name, store) in storages() {
        let rec = record("r1", 10);
        let effects = [timer("r1", "DB"), timer("r1", "db")];
        store.commit(&[Commit { record: &rec, events: &[], new_effects: &effects, acked: &[] }]).unwrap();
        assert_eq!(store.pending_effects("r1").unwrap().len(), 2, "{name}: the timers of DB and db collided");
    }
}

#[test]
fn runs_come_newest_first_and_keep_to_themselves() {
    for (name, store) in storages() {
        let (old, new) = (record("r-old", 1), record("r-new", 2));
        let e_old = [timer("r-old", "a")];
        store.commit(&[Commit { record: &old, events: &[event(0)], new_effects: &e_old, acked: &[] }]).unwrap();
        store.commit(&[Commit { record: &new, events: &[event(0), event(1)], new_effects: &[], acked: &[] }]).unwrap();
        let ids: Vec<String> = store.runs().unwrap().into_iter().map(|r| r.state.id).collect();
        assert_eq!(ids, vec!["r-new", "r-old"], "{name}");
        assert_eq!(store.events("r-old").unwrap().len(), 1, "{name}");
        assert!(store.pending_effects("r-new").unwrap().is_empty(), "{name}");
    }
}

#[test]
fn agents_are_kept_by_id() {
    for (name, store) in storages() {
        let mut a = AgentRecord::new("cache-1".into());
        store.put_agent(&a).unwrap();
        a.connected = true;
        store.put_agent(&a).unwrap();
        store.flush().unwrap();
        assert_eq!(store.agents().unwrap(), vec![a.clone()], "{name}");
    }
}

fn occurrence(id: &str, drill: &str, due_at: i64) -> OccurrenceRecord {
    OccurrenceRecord::new(id.into(), drill.into(), due_at, format!("local {due_at}"), Origin::Schedule)
}

#[test]
fn an_occurrence_is_swapped_only_from_what_is_stored() {
    for (name, store) in storages() {
        let mut first = occurrence("0123456789abcdef", "q1", 100);
        first.reminder = Some(Delivery::Pending { since: 5 });
        assert!(store.swap_occurrence(None, &first).unwrap(), "{name}: create");
        assert!(!store.swap_occurrence(None, &first).unwrap(), "{name}: a second create must lose");
        let mut started = first.clone();
        started.state = OccurrenceState::Started { run_id: first.id.clone(), at: 101, late_ms: 1 };
        assert!(store.swap_occurrence(Some(&first), &started).unwrap(), "{name}: move on");
        let mut missed = first.clone();
        missed.state = OccurrenceState::Missed { noticed_at: 200 };
        assert!(
            !store.swap_occurrence(Some(&first), &missed).unwrap(),
            "{name}: a writer that read the old record must lose"
        );
        assert_eq!(store.occurrence(&first.id).unwrap(), Some(started), "{name}");
        assert_eq!(store.occurrence("nope").unwrap(), None, "{name}");
    }
}

#[test]
fn occurrences_come_newest_due_first() {
    for (name, store) in storages() {
        for (id, due) in [("a", 10), ("b", 30), ("c", 20)] {
            assert!(store.swap_occurrence(None, &occurrence(id, "q1", due)).unwrap(), "{name}");
        }
        let mut run_now = occurrence("d", "q2", 25);
        run_now.origin = Origin::RunNow { by: "alice".into() };
        run_now.state = OccurrenceState::Refused { at: 25, reason: "protected".into() };
        run_now.notice = Some(Delivery::Sent { at: 26 });
        assert!(store.swap_occurrence(None, &run_now).unwrap(), "{name}");
        let got: Vec<(String, i64)> = store.occurrences().unwrap().into_iter().map(|r| (r.id, r.due_at)).collect();
        assert_eq!(got, vec![("b".into(), 30), ("d".into(), 25), ("c".into(), 20), ("a".into(), 10)], "{name}");
        assert_eq!(store.occurrence("d").unwrap(), Some(run_now), "{name}: read back whole");
    }
}

#[test]
fn a_drill_is_watched_since_the_first_time_anyone_asked() {
    for (name, store) in storages() {
        assert_eq!(store.watching_since("q1", 1_000).unwrap(), 1_000, "{name}");
        assert_eq!(store.watching_since("q1", 9_000).unwrap(), 1_000, "{name}: the first moment holds");
        assert_eq!(store.watching_since("q2", 9_000).unwrap(), 9_000, "{name}: per drill");
    }
}
