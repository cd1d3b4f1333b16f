//! The run state machine, as tables: runbook + inputs → effects and states.
//! Plus a property test over random DAGs, orders and outcomes.

use ripcord_engine::check::check;
use ripcord_engine::run::{
    Actor, Effect, EventKind, Input, NewRun, Rejected, RunState, RunStatus, StepStatus, TimerKind, apply, start,
};
use ripcord_engine::value::Value;
use std::collections::{BTreeMap, BTreeSet};

mod common;
use common::{Sim, T0};

fn alice() -> Actor {
    Actor { name: "alice".into(), role: "operator".into() }
}

fn rb(steps: &str) -> String {
    format!("id: t\ntitle: T\nrto: 30m\nparams:\n  p: {{ default: x }}\nsteps:\n{steps}")
}

#[test]
fn parallel_branches_join() {
    let mut s = Sim::new(
        &rb(
            "- {id: a, action: noop}\n- {id: b, action: noop, needs: [a]}\n- {id: c, action: noop, needs: [a]}\n- {id: d, action: noop, needs: [b, c]}\n",
        ),
        &[],
    );
    assert_eq!(s.performed(), ["a#1"]);
    s.ok("a");
    assert_eq!(s.performed(), ["a#1", "b#1", "c#1"], "b and c start together");
    s.ok("c");
    assert_eq!(s.performed().len(), 3, "d waits for b");
    s.ok("b");
    assert_eq!(s.performed(), ["a#1", "b#1", "c#1", "d#1"]);
    s.ok("d");
    assert_eq!(s.state.status, RunStatus::Succeeded);
    assert!(s.state.recovered_at.is_some());
}

#[test]
fn approval_gate_records_who_and_refuses_what_does_not_apply() {
    let mut s = Sim::new(
        &rb("- {id: gate, action: approve, with: {message: go?}}\n- {id: after, action: noop, needs: [gate]}\n"),
        &[],
    );
    assert_eq!(s.status("gate"), "waiting");
    assert!(s.performed().is_empty());
    let e = s.feed(Input::Approve { step: "after".into(), by: alice(), note: String::new() }).unwrap_err();
    assert_eq!(e.0, "step \"after\" is a noop step, not an approval");
    s.feed(Input::Approve { step: "gate".into(), by: alice(), note: "restore looks right".into() }).unwrap();
    let approval = s.state.steps["gate"].approval.clone().unwrap();
    assert_eq!(approval.by, alice());
    assert_eq!(approval.note, "restore looks right");
    assert_eq!(s.state.steps["gate"].outputs["approved_by"], Value::str("alice"));
    assert_eq!(s.performed(), ["after#1"]);
    let e = s.feed(Input::Approve { step: "gate".into(), by: alice(), note: String::new() }).unwrap_err();
    assert_eq!(e.0, "step \"gate\" is not waiting for approval (it is succeeded)");
}

#[test]
fn retry_succeeds_on_second_attempt_with_a_new_key() {
    let mut s = Sim::new(&rb("- {id: a, action: noop, retry: {attempts: 3, backoff: 10s}}\n"), &[]);
    s.fail("a");
    assert_eq!(s.status("a"), "retrying");
    assert_eq!(s.performed(), ["a#1"], "no new attempt before the backoff");
    s.fire("a", TimerKind::Backoff);
    assert_eq!(s.now, T0 + 10_000);
    assert_eq!(s.performed(), ["a#1", "a#2"]);
    s.ok("a");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn retries_stay_within_their_limit() {
    let mut s = Sim::new(&rb("- {id: a, action: noop, retry: {attempts: 2, backoff: 1s}}\n"), &[]);
    s.fail("a");
    s.fire("a", TimerKind::Backoff);
    s.fail("a");
    assert_eq!(s.status("a"), "failed");
    assert_eq!(s.performed(), ["a#1", "a#2"]);
    assert_eq!(s.state.status, RunStatus::Failed);
}

#[test]
fn deferred_step_runs_after_its_delay_and_recovery_is_recorded_before() {
    let mut s = Sim::new(
        &rb("- {id: fix, action: noop, budget: 5m}\n- {id: cleanup, action: noop, needs: [fix], after: 24h}\n"),
        &[],
    );
    s.now += 60_000;
    s.ok("fix");
    assert_eq!(s.status("cleanup"), "deferred");
    assert_eq!(s.state.recovered_at, Some(T0 + 60_000), "RTO clock stops before the deferred step");
    assert_eq!(s.state.status, RunStatus::Running);
    s.fire("cleanup", TimerKind::After);
    assert_eq!(s.now, T0 + 60_000 + 24 * 3_600_000);
    assert_eq!(s.performed(), ["fix#1", "cleanup#1"]);
    s.ok("cleanup");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn on_failure_continue_skips_dependents_and_run_succeeds() {
    let mut s = Sim::new(
        &rb(
            "- {id: a, action: noop, on_failure: continue}\n- {id: b, action: noop, needs: [a]}\n- {id: c, action: noop}\n",
        ),
        &[],
    );
    s.fail("a");
    assert_eq!(s.status("b"), "skipped");
    s.ok("c");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn on_failure_runs_handlers_then_fails_and_retry_resumes_from_the_failed_step() {
    let mut s = Sim::new(
        &rb(
            "- {id: a, action: noop}\n- {id: b, action: noop, needs: [a], on_failure: [tell]}\n- {id: c, action: noop, needs: [b]}\n- {id: tell, action: noop}\n",
        ),
        &[],
    );
    s.ok("a");
    s.fail("b");
    assert_eq!(s.performed(), ["a#1", "b#1", "tell#1"], "the handler runs, c does not");
    assert_eq!(s.state.status, RunStatus::Running, "the run waits for its handler");
    s.ok("tell");
    assert_eq!(s.state.status, RunStatus::Failed);
    assert_eq!(s.status("c"), "pending", "nothing new starts in a failed run");

    let e = s.feed(Input::Retry { by: alice(), step: Some("a".into()) }).unwrap_err();
    assert_eq!(e.0, "step \"a\" did not fail; failed steps: b");
    s.feed(Input::Retry { by: alice(), step: None }).unwrap();
    assert_eq!(s.performed(), ["a#1", "b#1", "tell#1", "b#2"], "a is not re-run; b gets a new attempt");
    s.ok("b");
    assert_eq!(s.performed().last().unwrap(), "c#1");
    s.ok("c");
    assert_eq!(s.state.status, RunStatus::Succeeded);
    let e = s.feed(Input::Retry { by: alice(), step: None }).unwrap_err();
    assert!(e.0.ends_with("is succeeded; only a failed run can be retried"), "{}", e.0);
}

#[test]
fn timeout_fails_the_attempt_and_a_late_answer_is_ignored() {
    let mut s = Sim::new(&rb("- {id: a, action: noop, timeout: 1m, retry: {attempts: 2, backoff: 1s}}\n"), &[]);
    s.fire("a", TimerKind::Timeout);
    assert_eq!(s.status("a"), "retrying");
    s.feed(Input::Succeeded { step: "a".into(), attempt: 1, outputs: BTreeMap::new() }).unwrap();
    assert_eq!(s.status("a"), "retrying", "the answer of a timed-out attempt does not count");
    assert_eq!(s.events.last().unwrap().0, EventKind::Ignored);
}

#[test]
fn budget_overrun_is_an_event_not_a_failure() {
    let mut s = Sim::new(&rb("- {id: a, action: noop, budget: 2m}\n"), &[]);
    s.fire("a", TimerKind::Budget);
    assert!(s.state.steps["a"].over_budget);
    assert!(s.events.iter().any(|(k, m)| *k == EventKind::OverBudget && m == "over its 2m budget"));
    assert_eq!(s.status("a"), "running");
}

#[test]
fn abort_stops_everything_and_later_results_change_nothing() {
    let mut s = Sim::new(&rb("- {id: a, action: noop}\n- {id: b, action: noop, needs: [a]}\n"), &[]);
    s.feed(Input::Abort { by: alice(), reason: "wrong cluster".into() }).unwrap();
    assert_eq!(s.state.status, RunStatus::Aborted);
    s.ok("a");
    assert_eq!(s.performed(), ["a#1"]);
    let e = s.feed(Input::Abort { by: alice(), reason: "again".into() }).unwrap_err();
    assert_eq!(e.0, "run run00001abc is already aborted");
}

#[test]
fn templates_resolve_params_outputs_and_incident_times() {
    let yaml = "id: t\ntitle: T\nparams:\n  cluster: { required: true }\n  at: { type: time, default: incident-5m }\nsteps:\n\
        - {id: a, action: atlas.take_snapshot, with: {project: p, cluster: \"{{ params.cluster }}\"}}\n\
        - {id: b, action: notify, needs: [a], with: {webhook: w, text: \"{{ steps.a.snapshot_id }} at {{ params.at }} for {{ run.short_id }}\"}}\n\
        - {id: c, action: noop, needs: [b], when: \"{{ params.cluster }} == other\"}\n";
    let rb = check(yaml).unwrap();
    let new = |params: &[(&str, &str)]| NewRun {
        id: "abcdef123456".into(),
        mode: ripcord_engine::run::Mode::Drill,
        params: params.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect(),
        incident_at: Some(T0),
    };
    let e = start(&rb, new(&[]), T0).unwrap_err();
    assert!(e.0.starts_with("missing required param \"cluster\" (declared at line 4:3)"), "{}", e.0);
    let e = start(&rb, new(&[("clustr", "x")]), T0).unwrap_err();
    assert_eq!(e.0, "runbook t has no param \"clustr\" (did you mean \"cluster\"?)");

    let mut s = Sim {
        rb: rb.clone(),
        state: start(&rb, new(&[("cluster", "chat")]), T0).unwrap().state,
        now: T0,
        effects: vec![],
        events: vec![],
    };
    let t = start(&rb, new(&[("cluster", "chat")]), T0).unwrap();
    let Effect::Perform { args, .. } = &t.effects[0] else { panic!() };
    assert_eq!(args.get("cluster"), Some(&Value::str("chat")));
    s.feed(Input::Succeeded {
        step: "a".into(),
        attempt: 1,
        outputs: [("snapshot_id".to_string(), Value::str("snap-9"))].into(),
    })
    .unwrap();
    let Effect::Perform { args, .. } =
        s.effects.iter().find(|e| matches!(e, Effect::Perform { key, .. } if key.step == "b")).unwrap()
    else {
        panic!()
    };
    assert_eq!(args.get("text"), Some(&Value::str("snap-9 at 2027-01-15T07:55:00Z for abcdef12")));
    s.ok("b");
    assert_eq!(s.status("c"), "skipped");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn checklist_needs_every_item() {
    let mut s = Sim::new(
        &rb("- id: v\n  action: checklist\n  with: {items: [{text: login works}, {text: messages flow}]}\n"),
        &[],
    );
    let confirm = |item| Input::Confirm { step: "v".into(), item, by: alice(), note: String::new() };
    s.feed(confirm(2)).unwrap();
    assert_eq!(s.status("v"), "waiting");
    assert_eq!(s.feed(confirm(3)).unwrap_err().0, "step \"v\" has items 1 to 2; there is no item 3");
    s.feed(confirm(1)).unwrap();
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

// ---------------------------------------------------------------- property

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Spec {
        needs: Vec<usize>,
        attempts: u32,
        on_failure: u8,
    }

    fn specs() -> impl Strategy<Value = Vec<Spec>> {
        (1usize..10).prop_flat_map(|n| {
            proptest::collection::vec((any::<u16>(), 1u32..=3, 0u8..3), n).prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(|(i, (mask, attempts, on_failure))| Spec {
                        needs: (0..i).filter(|j| mask & (1 << (j % 16)) != 0).collect(),
                        attempts,
                        on_failure,
                    })
                    .collect()
            })
        })
    }

    fn yaml(specs: &[Spec]) -> String {
        let mut out = "id: p\ntitle: P\nsteps:\n".to_string();
        for (i, s) in specs.iter().enumerate() {
            let needs: Vec<String> = s.needs.iter().map(|j| format!("s{j}")).collect();
            let on_failure = ["stop", "continue", "stop"][s.on_failure as usize];
            out.push_str(&format!(
                "- {{id: s{i}, action: noop, needs: [{}], retry: {{attempts: {}, backoff: 1s}}, timeout: 1m, on_failure: {on_failure}}}\n",
                needs.join(", "),
                s.attempts
            ));
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn runs_respect_needs_never_repeat_keys_stay_within_retries_and_end(specs in specs(), seed in any::<u64>()) {
            let rb = check(&yaml(&specs)).unwrap();
            let new = NewRun { id: "prop".into(), mode: ripcord_engine::run::Mode::Recovery, params: BTreeMap::new(), incident_at: None };
            let mut now = T0;
            let t = start(&rb, new, now).unwrap();
            let mut state = t.state;
            let mut pending: Vec<Effect> = t.effects;
            let mut performed: BTreeSet<(String, u32)> = BTreeSet::new();
            let mut rng = seed | 1;
            let mut next = move |n: usize| { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; (rng % n as u64) as usize };
            let check_new = |effects: &[Effect], state: &RunState, performed: &mut BTreeSet<(String, u32)>| {
                for e in effects {
                    if let Effect::Perform { key, .. } = e {
                        let def = rb.step(&key.step).unwrap();
                        for (n, _) in &def.needs {
                            assert_eq!(state.steps[n].status, StepStatus::Succeeded, "{} started before {n} succeeded", key.step);
                        }
                        assert!(performed.insert((key.step.clone(), key.attempt)), "{key} performed twice");
                        assert!(key.attempt <= def.retry.attempts, "{key} beyond {} attempts", def.retry.attempts);
                    }
                }
            };
            check_new(&pending, &state, &mut performed);
            let limit = specs.len() * 20 + 20;
            let mut rounds = 0;
            while !state.status.is_finished() {
                rounds += 1;
                prop_assert!(rounds < limit, "run did not end: {:?}", state.status);
                prop_assert!(!pending.is_empty(), "run is stuck with nothing pending");
                let e = pending.remove(next(pending.len()));
                let input = match e {
                    Effect::Perform { key, .. } => {
                        if next(3) == 0 {
                            Input::Failed { step: key.step, attempt: key.attempt, error: "x".into() }
                        } else {
                            Input::Succeeded { step: key.step, attempt: key.attempt, outputs: BTreeMap::new() }
                        }
                    }
                    Effect::Timer { key, kind, at } => {
                        now = now.max(at);
                        Input::Timer { step: key.step, attempt: key.attempt, kind }
                    }
                    Effect::RunTimer { timer, at, .. } => {
                        now = now.max(at);
                        Input::RunTimer { timer }
                    }
                    Effect::Notify { name, .. } => Input::Notified { name, error: None, reached: vec![] },
                };
                let t = apply(&rb, &state, &input, now).unwrap();
                check_new(&t.effects, &t.state, &mut performed);
                state = t.state;
                pending.extend(t.effects);
                // A finished run asks for nothing more.
                if state.status.is_finished() {
                    let t = apply(&rb, &state, &input, now).unwrap();
                    prop_assert!(t.effects.is_empty());
                }
            }
        }
    }
}

/// The credentials a run will name: references in any argument, and the
/// `credentials` of `atlas.connection_string` where params decide it.
#[test]
fn credentials_needed_names_each_once_with_its_first_step() {
    let text = rb(
        "  - id: login\n    action: http.check\n    with: { url: u, headers: { A: \"{{ credentials.probe.password }}\" } }\n  - id: cs\n    action: atlas.connection_string\n    with: { project: p, cluster: c, credentials: \"{{ params.p }}\" }\n  - id: again\n    action: http.check\n    with: { url: \"https://{{ credentials.probe.user }}@h/\" }\n  - id: none\n    action: atlas.connection_string\n    with: { project: p, cluster: c, credentials: \"\" }\n",
    );
    let rb = check(&text).expect("runbook checks");
    let params = BTreeMap::from([("p".to_string(), Value::str("chatdb"))]);
    assert_eq!(
        ripcord_engine::run::credentials_needed(&rb, &params),
        vec![("probe".to_string(), "login".to_string()), ("chatdb".to_string(), "cs".to_string())]
    );
}

/// A target that names a param is filled in when the run starts; a value
/// that makes no selector refuses the run before anything happens.
#[test]
fn a_target_named_by_a_param_is_resolved_when_the_run_starts() {
    let text = "id: t\ntitle: T\nparams:\n  hosts: { default: \"role=redis\" }\nsteps:\n  - {id: a, action: redis.ping, target: \"{{ params.hosts }}\", with: {instance: c}}\n";
    let sim = Sim::new(text, &[("hosts", "host=cache-2")]);
    let target = sim.effects.iter().find_map(|e| match e {
        Effect::Perform { target, .. } => target.clone(),
        _ => None,
    });
    let target = target.expect("the step asks an agent");
    assert_eq!((target.selector.as_str(), target.all), ("host=cache-2", false));
    assert!(sim.events.iter().any(|(_, m)| m == "redis.ping on host=cache-2"), "{:?}", sim.events);

    let defaults = Sim::new(text, &[]);
    assert!(defaults.events.iter().any(|(_, m)| m == "redis.ping on role=redis"), "{:?}", defaults.events);

    let rb = check(text).unwrap();
    let new = NewRun {
        id: "run00002abc".into(),
        mode: ripcord_engine::run::Mode::Recovery,
        params: BTreeMap::from([("hosts".to_string(), Value::str("host=cache 2"))]),
        incident_at: None,
    };
    let empty = NewRun { params: BTreeMap::from([("hosts".to_string(), Value::str(" "))]), ..new.clone() };
    let Err(Rejected(e)) = start(&rb, empty, T0) else { panic!("an empty selector must refuse the run") };
    assert!(e.contains("an empty selector, which would match every agent"), "{e}");
    let Err(Rejected(e)) = start(&rb, new, T0) else { panic!("a bad selector must refuse the run") };
    assert_eq!(
        e,
        "step a: target \"{{ params.hosts }}\" gives bad selector \"host=cache 2\": \"host=cache 2\": label value must be 1-63 characters of letters, digits, '.', '-', '_', '/'"
    );
}

/// Every event of a run, with its facts, for tests that read them.
fn events_of(yaml: &str, inputs: &[(i64, Input)]) -> Vec<ripcord_engine::run::Event> {
    let rb = check(yaml).unwrap_or_else(|d| panic!("{d:#?}"));
    let new = NewRun {
        id: "run00001abc".into(),
        mode: ripcord_engine::run::Mode::Recovery,
        params: BTreeMap::new(),
        incident_at: Some(T0 - 60_000),
    };
    let t = start(&rb, new, T0).unwrap();
    let (mut state, mut events) = (t.state, t.events);
    for (at, input) in inputs {
        let t = apply(&rb, &state, input, T0 + at).unwrap();
        state = t.state;
        events.extend(t.events);
    }
    events
}

#[test]
fn events_carry_what_they_record_as_facts() {
    let yaml =
        rb("- {id: a, action: noop, retry: {attempts: 2, backoff: 5s}}\n- {id: gate, action: approve, needs: [a]}\n");
    let failed = Input::Failed { step: "a".into(), attempt: 1, error: "boom".into() };
    let later = Input::Timer { step: "a".into(), attempt: 1, kind: TimerKind::Backoff };
    let ok = Input::Succeeded { step: "a".into(), attempt: 2, outputs: BTreeMap::new() };
    let approve = Input::Approve { step: "gate".into(), by: alice(), note: "fine".into() };
    let events = events_of(&yaml, &[(1_000, failed), (6_000, later), (7_000, ok), (9_000, approve)]);
    let facts = |kind: EventKind| events.iter().find(|e| e.kind == kind).map(|e| e.facts.clone()).unwrap();

    let retrying = facts(EventKind::StepRetrying);
    assert_eq!(
        (retrying.attempt, retrying.error.as_deref(), retrying.until),
        (Some(1), Some("boom"), Some(T0 + 6_000))
    );
    let started: Vec<_> = events.iter().filter(|e| e.kind == EventKind::StepStarted).map(|e| e.facts.attempt).collect();
    assert_eq!(started, [Some(1), Some(2)]);
    let succeeded = facts(EventKind::StepSucceeded);
    assert_eq!((succeeded.attempt, succeeded.took_ms), (Some(2), Some(7_000)), "from the first attempt's start");
    let approved = facts(EventKind::Approved);
    assert_eq!((approved.by, approved.note.as_deref()), (Some(alice()), Some("fine")));
    let recovered = facts(EventKind::Recovered);
    assert_eq!((recovered.since_incident_ms, recovered.rto_ms), (Some(69_000), Some(30 * 60_000)));
}

#[test]
fn a_retry_gives_steps_skipped_for_a_failed_need_another_chance_but_not_those_a_condition_skipped() {
    let mut s = Sim::new(
        &rb(concat!(
            "- {id: a, action: noop, on_failure: continue}\n",
            "- {id: b, action: noop, needs: [a]}\n",
            "- {id: off, action: noop, when: \"{{ params.p }} == y\"}\n",
            "- {id: c, action: noop}\n",
        )),
        &[],
    );
    s.fail("a");
    let need = StepStatus::Skipped { reason: "needs a, which did not succeed".into(), need: Some("a".into()) };
    assert_eq!(s.state.steps["b"].status, need);
    let condition = StepStatus::Skipped { reason: "condition is false".into(), need: None };
    assert_eq!(s.state.steps["off"].status, condition);
    s.fail("c");
    assert_eq!(s.state.status, RunStatus::Failed);
    s.feed(Input::Retry { by: alice(), step: None }).unwrap();
    s.ok("a");
    assert_eq!(s.status("b"), "running", "b gets its chance");
    assert_eq!(s.status("off"), "skipped", "a false condition stays false");
}

#[test]
fn a_param_value_that_does_not_fit_its_type_refuses_the_run_and_says_why() {
    let rb =
        check("id: p\ntitle: p\nparams:\n  n: {type: int}\n  b: {type: bool}\nsteps:\n  - {id: a, action: noop}\n")
            .unwrap();
    let table =
        [(("n", "x"), "param n: \"x\" is not an integer"), (("b", "maybe"), "param b: \"maybe\" is not true or false")];
    for ((name, value), expect) in table {
        let params = BTreeMap::from([(name.to_string(), Value::str(value))]);
        let new = NewRun { id: "r".into(), mode: ripcord_engine::run::Mode::Recovery, params, incident_at: None };
        assert_eq!(start(&rb, new, T0).unwrap_err().0, expect);
    }
    let params = BTreeMap::from([("n".to_string(), Value::str(" 42 ")), ("b".to_string(), Value::str("yes"))]);
    let new = NewRun { id: "r".into(), mode: ripcord_engine::run::Mode::Recovery, params, incident_at: None };
    let state = start(&rb, new, T0).unwrap().state;
    assert_eq!((state.params["n"].clone(), state.params["b"].clone()), (Value::Int(42), Value::Bool(true)));
}
