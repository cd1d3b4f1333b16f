//! One suite, every storage: what the driver and the fleet rely on.

use super::{AgentRecord, Commit, LoggedEvent, RunRecord, Store, effect_id};
use ripcord_engine::run::{Actor, Effect, Event, EventKind, Key, Mode, RunState, RunStatus, RunTimer, TimerKind};
use std::collections::BTreeMap;

fn storages() -> Vec<(&'static str, Store)> {
    vec![("sled", Store::temporary().unwrap()), ("memory", Store::memory())]
}

fn record(id: &str, created_at: i64) -> RunRecord {
    let state = RunState {
        id: id.into(),
        runbook_id: "rb".into(),
        mode: Mode::Drill,
        params: BTreeMap::new(),
        incident_at: created_at,
        created_at,
        status: RunStatus::Running,
        steps: BTreeMap::new(),
        failing: None,
        recovered_at: None,
        finished_at: None,
        notify_webhook: None,
    };
    RunRecord::new("builtin:rb".into(), "id: rb".into(), state, Actor { name: "alice".into(), role: "operator".into() })
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
