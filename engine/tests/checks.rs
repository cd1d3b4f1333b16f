//! Checklist items with automated checks, as tables: a check is performed
//! when its step begins, its success confirms the item, its failure leaves
//! the item to a person, late results change nothing.

use ripcord_engine::run::{Actor, CheckResult, Effect, EventKind, Input, Key, RunStatus, TimerKind, apply, check_of};
use ripcord_engine::value::Value;

mod common;
use common::{Sim, T0};

const RUN: &str = "run00001abc";

fn alice() -> Actor {
    Actor { name: "alice".into(), role: "operator".into() }
}

/// A checklist `v`: item 1 for a person, item 2 checked over HTTP, item 3
/// by Atlas; a step after it.
fn mixed() -> String {
    "id: t\ntitle: T\nparams:\n  cluster: { default: chat }\n  url: { default: http://api }\nsteps:\n\
     - id: v\n  action: checklist\n  timeout: 5m\n  with:\n    items:\n\
     \x20     - text: people are here\n\
     \x20     - text: \"the API answers {{ params.url }}\"\n\
     \x20       check: { action: http.check, with: { url: \"{{ params.url }}/health\", expect_status: 200 } }\n\
     \x20     - text: \"{{ params.cluster }} is IDLE\"\n\
     \x20       check:\n\
     \x20         action: atlas.wait_cluster\n\
     \x20         with: { project: p1, cluster: \"{{ params.cluster }}-{{ run.short_id }}\", state: IDLE }\n\
     - {id: after, action: noop, needs: [v]}\n"
        .to_string()
}

/// Only checks: nobody has to do anything when they pass.
const CHECKED: &str = "id: t\ntitle: T\nsteps:\n- id: v\n  action: checklist\n  with:\n    items:\n\
     \x20     - {text: up, check: {action: http.check, with: {url: http://a}}}\n\
     \x20     - {text: idle, check: {action: atlas.wait_cluster, with: {project: p, cluster: c}}}\n";

fn checks(s: &Sim) -> Vec<(Key, String, Value, Option<u64>)> {
    s.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Perform { key, action, args, target, timeout_ms } if check_of(&key.step).is_some() => {
                assert!(target.is_none(), "a check runs in the coordinator");
                Some((key.clone(), action.clone(), args.clone(), *timeout_ms))
            }
            _ => None,
        })
        .collect()
}

fn passed(item: usize, attempt: u32, outputs: &[(&str, &str)]) -> Input {
    let outputs = outputs.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect();
    Input::Succeeded { step: format!("v#{item}"), attempt, outputs }
}

fn failed(item: usize, attempt: u32, error: &str) -> Input {
    Input::Failed { step: format!("v#{item}"), attempt, error: error.into() }
}

fn confirm(item: usize) -> Input {
    Input::Confirm { step: "v".into(), item, by: alice(), note: "seen".into() }
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

#[test]
fn a_checklist_performs_each_items_check_with_its_args_rendered() {
    let s = Sim::new(&mixed(), &[]);
    assert_eq!(s.status("v"), "waiting");
    let want = vec![
        (
            Key::check(RUN, "v", 2, 1),
            "http.check".to_string(),
            map(&[("url", Value::str("http://api/health")), ("expect_status", Value::Int(200))]),
            Some(300_000),
        ),
        (
            Key::check(RUN, "v", 3, 1),
            "atlas.wait_cluster".to_string(),
            map(&[
                ("project", Value::str("p1")),
                ("cluster", Value::str("chat-run00001")),
                ("state", Value::str("IDLE")),
            ]),
            Some(300_000),
        ),
    ];
    assert_eq!(checks(&s), want);
    assert_eq!(Key::check(RUN, "v", 2, 1).step, "v#2");
    assert_eq!(check_of("v#2"), Some(("v", 2)));
    assert_eq!(check_of("v"), None);
    let st = &s.state.steps["v"];
    assert_eq!(st.checklist, vec![None, None, None]);
    let results: Vec<Option<(&str, CheckResult)>> =
        st.checks.iter().map(|c| c.as_ref().map(|c| (c.action.as_str(), c.result))).collect();
    assert_eq!(
        results,
        [None, Some(("http.check", CheckResult::Pending)), Some(("atlas.wait_cluster", CheckResult::Pending))]
    );
    assert!(s.events.iter().any(|(k, m)| *k == EventKind::StepWaiting && m.ends_with("(2 checked automatically)")));
}

#[test]
fn a_check_that_passes_confirms_its_item_as_ripcord() {
    let mut s = Sim::new(&mixed(), &[]);
    s.now += 4_000;
    let t = apply(&s.rb, &s.state, &passed(3, 1, &[("state", "IDLE")]), s.now).unwrap();
    let e = t.events.iter().find(|e| e.kind == EventKind::CheckPassed).expect("a check_passed event");
    assert_eq!(e.step.as_deref(), Some("v"));
    assert_eq!(e.message, "item 3 confirmed by its check: atlas.wait_cluster: state=IDLE");
    assert_eq!(
        (e.facts.item, e.facts.by.clone(), e.facts.action.as_deref(), e.facts.note.as_deref(), e.facts.attempt),
        (Some(3), Some(Actor::check()), Some("atlas.wait_cluster"), Some("atlas.wait_cluster: state=IDLE"), Some(1))
    );
    s.absorb(t);
    let st = &s.state.steps["v"];
    let c = st.checklist[2].clone().expect("item 3 confirmed");
    assert_eq!((c.by, c.note.as_str(), c.at), (Actor::check(), "atlas.wait_cluster: state=IDLE", T0 + 4_000));
    assert_eq!(Actor::check(), Actor { name: "ripcord".into(), role: "check".into() });
    let check = st.checks[2].clone().unwrap();
    assert_eq!((check.result, check.at), (CheckResult::Passed, Some(T0 + 4_000)));
    assert_eq!(s.status("v"), "waiting", "items 1 and 2 are not confirmed yet");
}

#[test]
fn when_every_item_is_confirmed_by_its_check_the_step_succeeds() {
    let mut s = Sim::new(CHECKED, &[]);
    assert_eq!(checks(&s).len(), 2);
    s.feed(passed(1, 1, &[])).unwrap();
    assert_eq!(s.status("v"), "waiting");
    s.feed(passed(2, 1, &[("state", "IDLE")])).unwrap();
    assert_eq!(s.status("v"), "succeeded");
    assert_eq!(s.state.steps["v"].outputs["confirmed_by"], Value::str("ripcord"));
    assert_eq!(s.state.steps["v"].checklist[0].as_ref().unwrap().note, "http.check", "no outputs: the action alone");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn a_check_that_fails_leaves_its_item_to_a_person_with_the_error() {
    let mut s = Sim::new(CHECKED, &[]);
    let t = apply(&s.rb, &s.state, &failed(2, 1, "cluster c is UPDATING, not IDLE"), s.now).unwrap();
    let e = t.events.iter().find(|e| e.kind == EventKind::CheckFailed).expect("a check_failed event");
    assert_eq!((e.facts.item, e.facts.error.as_deref()), (Some(2), Some("cluster c is UPDATING, not IDLE")));
    assert_eq!(e.facts.action.as_deref(), Some("atlas.wait_cluster"));
    assert!(e.message.contains("a person can still confirm it"), "{}", e.message);
    assert!(!t.events.iter().any(|e| e.kind == EventKind::StepFailed), "the step does not fail");
    s.absorb(t);
    let st = &s.state.steps["v"];
    assert_eq!(st.checklist[1], None);
    let check = st.checks[1].clone().unwrap();
    assert_eq!((check.result, check.error.as_deref()), (CheckResult::Failed, Some("cluster c is UPDATING, not IDLE")));
    assert_eq!(s.status("v"), "waiting");
    s.feed(passed(1, 1, &[])).unwrap();
    assert_eq!(s.status("v"), "waiting", "item 2 still waits");
    s.feed(confirm(2)).unwrap();
    assert_eq!(s.status("v"), "succeeded");
    assert_eq!(s.state.steps["v"].checklist[1].as_ref().unwrap().by, alice());
    assert_eq!(s.state.steps["v"].outputs["confirmed_by"], Value::str("alice"));
}

#[test]
fn a_mixed_checklist_needs_its_person_and_its_checks() {
    let mut s = Sim::new(&mixed(), &[]);
    s.feed(passed(2, 1, &[("status", "200")])).unwrap();
    s.feed(failed(3, 1, "timed out after 5m")).unwrap();
    assert_eq!(s.status("v"), "waiting");
    // A person confirms items 1 and 3; the check's failure is still on record.
    s.feed(confirm(1)).unwrap();
    assert_eq!(s.status("v"), "waiting");
    s.feed(confirm(3)).unwrap();
    assert_eq!(s.status("v"), "succeeded");
    assert_eq!(s.performed().last().map(String::as_str), Some("after#1"));
    let st = &s.state.steps["v"];
    let by: Vec<String> = st.checklist.iter().map(|c| c.as_ref().unwrap().by.name.clone()).collect();
    assert_eq!(by, ["alice", "ripcord", "alice"]);
    assert_eq!(st.checks[2].as_ref().unwrap().result, CheckResult::Failed);
    // A person confirming first: the check's later pass keeps the person's answer.
    let mut s = Sim::new(&mixed(), &[]);
    s.feed(confirm(2)).unwrap();
    s.feed(passed(2, 1, &[])).unwrap();
    assert_eq!(s.state.steps["v"].checklist[1].as_ref().unwrap().by, alice());
    assert!(s.events.iter().any(|(k, m)| *k == EventKind::CheckPassed && m.contains("already confirmed by alice")));
}

#[test]
fn late_and_repeated_results_are_ignored() {
    let text = mixed().replace("  timeout: 5m\n", "  timeout: 5m\n  retry: {attempts: 2, backoff: 10s}\n");
    let mut s = Sim::new(&text, &[]);
    // Attempt 1 times out; attempt 2 performs its checks with new keys.
    s.fire("v", TimerKind::Timeout);
    s.fire("v", TimerKind::Backoff);
    assert_eq!(s.attempt("v"), 2);
    let keys: Vec<Key> = checks(&s).into_iter().map(|c| c.0).collect();
    assert_eq!(
        keys,
        [
            Key::check(RUN, "v", 2, 1),
            Key::check(RUN, "v", 3, 1),
            Key::check(RUN, "v", 2, 2),
            Key::check(RUN, "v", 3, 2)
        ]
    );
    let before = s.state.clone();
    let t = apply(&s.rb, &s.state, &passed(2, 1, &[]), s.now).unwrap();
    assert_eq!(t.state, before, "attempt 1's result changes nothing");
    assert_eq!(t.events.len(), 1);
    assert_eq!((t.events[0].kind, t.events[0].step.as_deref()), (EventKind::Ignored, Some("v")));
    assert_eq!(t.events[0].message, "late result of item 2's check (attempt 1) ignored");
    // A repeated delivery of attempt 2's outcome is ignored once one is in.
    s.feed(failed(3, 2, "not IDLE")).unwrap();
    let before = s.state.clone();
    let t = apply(&s.rb, &s.state, &passed(3, 2, &[]), s.now).unwrap();
    assert_eq!((t.state, t.events[0].kind), (before, EventKind::Ignored));
    // Once the step is done, a check's answer is late too.
    s.feed(confirm(1)).unwrap();
    s.feed(confirm(2)).unwrap();
    s.feed(confirm(3)).unwrap();
    assert_eq!(s.status("v"), "succeeded");
    let t = apply(&s.rb, &s.state, &passed(2, 2, &[]), s.now).unwrap();
    assert_eq!((&t.state, t.events[0].kind), (&s.state, EventKind::Ignored));
    // No item 9, no such step: ignored, never a panic.
    for step in ["v#9", "v#0", "nope#1"] {
        let t = apply(&s.rb, &s.state, &Input::Failed { step: step.into(), attempt: 2, error: "x".into() }, s.now);
        assert_eq!(t.unwrap().events[0].kind, EventKind::Ignored, "{step}");
    }
}

#[test]
fn a_restart_finds_the_same_check_keys() {
    // The same run started twice (as a restart re-reads it) asks for the
    // same checks with the same keys; the key names step, item and attempt.
    let first = Sim::new(&mixed(), &[]);
    let again = Sim::new(&mixed(), &[]);
    assert_eq!(checks(&first), checks(&again));
    // The state round-trips through its JSON (as stored) and the check's
    // outcome still routes to its item.
    let json = serde_json::to_string(&first.state).unwrap();
    let stored = serde_json::from_str(&json).unwrap();
    let t = apply(&first.rb, &stored, &passed(3, 1, &[("state", "IDLE")]), first.now).unwrap();
    assert!(t.state.steps["v"].checklist[2].is_some());
    // States stored before checks existed read with none.
    let mut j: serde_json::Value = serde_json::from_str(&json).unwrap();
    j["steps"]["v"].as_object_mut().unwrap().remove("checks");
    let old: ripcord_engine::run::RunState = serde_json::from_value(j).unwrap();
    assert!(old.steps["v"].checks.is_empty());
    let t = apply(&first.rb, &old, &passed(3, 1, &[]), first.now).unwrap();
    assert_eq!(t.events[0].kind, EventKind::Ignored, "no check on record: nothing to confirm");
    // A checklist without checks performs nothing and keeps no check state.
    let plain = "id: t\ntitle: T\nsteps:\n- {id: v, action: checklist, with: {items: [{text: a}]}}\n";
    let s = Sim::new(plain, &[]);
    assert!(checks(&s).is_empty() && s.state.steps["v"].checks.is_empty());
}
