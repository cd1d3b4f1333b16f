//! The cleanup phase and the rehearsal milestones, as tables: a runbook's
//! `cleanup:` steps run in drills only, after the main steps, whatever the
//! drill's outcome, never delaying recovery; milestones are recorded once.

use ripcord_engine::check::check;
use ripcord_engine::milestone::Milestone;
use ripcord_engine::run::{Actor, EventKind, Input, RunStatus, StepStatus};

mod common;
use common::{Sim, T0};

fn alice() -> Actor {
    Actor { name: "alice".into(), role: "operator".into() }
}

fn rb(steps: &str, cleanup: &str) -> String {
    format!("id: t\ntitle: T\nrto: 30m\nparams:\n  switch: {{ default: secret }}\nsteps:\n{steps}cleanup:\n{cleanup}")
}

/// create → switch (when switch != k8s) → verify; cleanup: approve → delete
/// (needs create), restore (needs switch) → restart, and a report.
fn drill_runbook() -> String {
    rb(
        "- {id: create, action: noop}\n\
         - {id: switch, action: noop, needs: [create], when: \"{{ params.switch }} != k8s\"}\n\
         - {id: verify, action: noop, needs: [switch]}\n",
        "- {id: ok-delete, action: approve}\n\
         - {id: delete, action: noop, needs: [ok-delete, create]}\n\
         - {id: restore, action: noop, needs: [switch]}\n\
         - {id: restart, action: noop, needs: [restore]}\n",
    )
}

fn skip_reason(s: &Sim, step: &str) -> String {
    match &s.state.steps[step].status {
        StepStatus::Skipped { reason, .. } => reason.clone(),
        other => panic!("{step} is {other:?}, not skipped"),
    }
}

fn approve(s: &mut Sim, step: &str) {
    s.feed(Input::Approve { step: step.into(), by: alice(), note: String::new() }).unwrap();
}

#[test]
fn in_a_recovery_cleanup_is_skipped_from_the_start() {
    let mut s = Sim::new(&drill_runbook(), &[]);
    for step in ["ok-delete", "delete", "restore", "restart"] {
        assert_eq!(skip_reason(&s, step), "cleanup runs in drills only", "{step}");
    }
    assert_eq!(s.performed(), ["create#1"]);
    s.ok("create");
    s.ok("switch");
    s.ok("verify");
    assert_eq!(s.state.status, RunStatus::Succeeded);
    assert_eq!(s.state.recovered_at, Some(T0));
    assert_eq!(s.performed(), ["create#1", "switch#1", "verify#1"]);
}

#[test]
fn in_a_drill_cleanup_waits_for_the_main_steps_and_never_delays_recovery() {
    let mut s = Sim::drill(&drill_runbook(), &[]);
    s.ok("create");
    s.ok("switch");
    assert_eq!(s.status("ok-delete"), "pending", "cleanup waits while main steps run");
    assert_eq!(s.status("restore"), "pending");
    s.now += 60_000;
    s.ok("verify");
    assert_eq!(s.state.recovered_at, Some(T0 + 60_000), "recovered when the main steps are done");
    assert_eq!(s.state.status, RunStatus::Running, "the run ends after its cleanup");
    assert_eq!(s.status("ok-delete"), "waiting");
    assert_eq!(s.performed(), ["create#1", "switch#1", "verify#1", "restore#1"], "the approval blocks only delete");
    s.ok("restore");
    s.ok("restart");
    assert_eq!(s.state.status, RunStatus::Running);
    s.now += 600_000;
    approve(&mut s, "ok-delete");
    s.ok("delete");
    assert_eq!(s.state.status, RunStatus::Succeeded);
    assert_eq!(s.state.recovered_at, Some(T0 + 60_000), "cleanup did not move recovery");
    assert_eq!(s.state.finished_at, Some(T0 + 660_000));
}

#[test]
fn a_need_skipped_by_its_condition_leaves_nothing_to_clean_up() {
    let mut s = Sim::drill(&drill_runbook(), &[("switch", "k8s")]);
    s.ok("create");
    assert!(matches!(s.state.steps["switch"].status, StepStatus::Skipped { need: None, .. }));
    s.ok("verify");
    assert_eq!(skip_reason(&s, "restore"), "nothing to clean up: switch did not succeed");
    assert_eq!(skip_reason(&s, "restart"), "nothing to clean up: restore did not succeed");
    approve(&mut s, "ok-delete");
    s.ok("delete");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn a_failed_drill_still_cleans_up_then_fails_for_its_own_reason() {
    let mut s = Sim::drill(&drill_runbook(), &[]);
    s.ok("create");
    s.fail("switch");
    assert_eq!(s.state.failing.as_deref(), Some("step switch failed: boom"));
    assert_eq!(skip_reason(&s, "restore"), "nothing to clean up: switch did not succeed");
    assert_eq!(skip_reason(&s, "restart"), "nothing to clean up: restore did not succeed");
    assert_eq!(s.status("verify"), "pending", "a main step never starts once the run is failing");
    assert_eq!(s.status("ok-delete"), "waiting", "cleanup ignores the main phase's failure");
    assert_eq!(s.state.status, RunStatus::Running, "the run waits for its cleanup");
    approve(&mut s, "ok-delete");
    s.ok("delete");
    assert_eq!(s.state.status, RunStatus::Failed);
    assert_eq!(s.state.recovered_at, None);
    let last = s.events.iter().rev().find(|(k, _)| *k == EventKind::RunFailed).unwrap();
    assert_eq!(last.1, "run failed: step switch failed: boom");
}

#[test]
fn a_main_step_that_never_ran_skips_its_cleanup() {
    let text = rb(
        "- {id: a, action: noop}\n- {id: b, action: noop, needs: [a]}\n",
        "- {id: undo-b, action: noop, needs: [b]}\n- {id: undo-a, action: noop, needs: [a]}\n",
    );
    let mut s = Sim::drill(&text, &[]);
    s.fail("a");
    assert_eq!(s.status("b"), "pending", "b never runs");
    assert_eq!(skip_reason(&s, "undo-a"), "nothing to clean up: a did not succeed");
    assert_eq!(skip_reason(&s, "undo-b"), "nothing to clean up: b did not succeed");
    assert_eq!(s.state.status, RunStatus::Failed);
}

#[test]
fn cleanup_waits_for_a_triggered_handler() {
    let text =
        rb("- {id: a, action: noop, on_failure: [tell]}\n- {id: tell, action: noop}\n", "- {id: tidy, action: noop}\n");
    let mut s = Sim::drill(&text, &[]);
    s.fail("a");
    assert_eq!(s.performed(), ["a#1", "tell#1"]);
    assert_eq!(s.status("tidy"), "pending", "the handler is still running");
    s.ok("tell");
    assert_eq!(s.performed(), ["a#1", "tell#1", "tidy#1"]);
    s.ok("tidy");
    assert_eq!(s.state.status, RunStatus::Failed);
}

#[test]
fn a_failed_cleanup_step_fails_the_run_and_retry_runs_it_again() {
    let text = rb(
        "- {id: a, action: noop}\n",
        "- {id: undo, action: noop, needs: [a], retry: {attempts: 2, backoff: 1s}}\n- {id: tidy, action: noop}\n",
    );
    let mut s = Sim::drill(&text, &[]);
    s.ok("a");
    assert_eq!(s.state.recovered_at, Some(T0));
    s.fail("undo");
    s.fire("undo", ripcord_engine::run::TimerKind::Backoff);
    s.fail("undo");
    assert_eq!(s.state.failing.as_deref(), Some("cleanup step undo failed: boom"));
    assert_eq!(s.state.status, RunStatus::Running, "tidy is still running");
    s.ok("tidy");
    assert_eq!(s.state.status, RunStatus::Failed);
    assert_eq!(s.state.recovered_at, Some(T0), "the recovery stands");
    s.feed(Input::Retry { by: alice(), step: Some("undo".into()) }).unwrap();
    assert_eq!(s.performed(), ["a#1", "undo#1", "tidy#1", "undo#2", "undo#3"]);
    s.ok("undo");
    assert_eq!(s.state.status, RunStatus::Succeeded);
    assert_eq!(s.state.recovered_at, Some(T0));
}

#[test]
fn a_tolerated_cleanup_failure_does_not_fail_the_drill() {
    let text = rb("- {id: a, action: noop}\n", "- {id: undo, action: noop, on_failure: continue}\n");
    let mut s = Sim::drill(&text, &[]);
    s.ok("a");
    s.fail("undo");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}

#[test]
fn abort_stops_everything_and_cleans_up_nothing() {
    let mut s = Sim::drill(&drill_runbook(), &[]);
    s.ok("create");
    s.feed(Input::Abort { by: alice(), reason: "stop".into() }).unwrap();
    assert_eq!(s.state.status, RunStatus::Aborted);
    s.ok("switch");
    assert_eq!(s.performed(), ["create#1", "switch#1"]);
    assert_eq!(s.status("ok-delete"), "pending");
}

fn milestones(s: &Sim) -> Vec<(Milestone, i64)> {
    s.state.milestones.iter().map(|(m, at)| (*m, at - T0)).collect()
}

#[test]
fn milestones_are_recorded_once_with_kick_off_and_done_automatic() {
    let text = rb(
        "- {id: snap, action: noop, milestone: snapshot}\n\
         - {id: restore, action: noop, needs: [snap], milestone: restore, retry: {attempts: 2, backoff: 1s}}\n\
         - {id: again, action: noop, needs: [restore], milestone: restore}\n\
         - {id: check, action: noop, needs: [again], milestone: verification}\n",
        "- {id: tidy, action: noop}\n",
    );
    let mut s = Sim::drill(&text, &[]);
    assert_eq!(milestones(&s), [(Milestone::KickOff, 0)]);
    s.now += 1_000;
    s.ok("snap");
    s.now += 1_000;
    s.fail("restore");
    assert_eq!(milestones(&s).len(), 2, "a failed attempt reaches nothing");
    s.fire("restore", ripcord_engine::run::TimerKind::Backoff);
    s.ok("restore");
    s.now += 1_000;
    s.ok("again");
    s.now += 1_000;
    s.ok("check");
    s.now += 1_000;
    s.ok("tidy");
    assert_eq!(
        milestones(&s),
        [
            (Milestone::KickOff, 0),
            (Milestone::Snapshot, 1_000),
            (Milestone::Restore, 3_000),
            (Milestone::Verification, 5_000),
            (Milestone::Done, 5_000),
        ],
        "restore is its first time; done is the recovery, not the end of cleanup"
    );
    let reached: Vec<&str> =
        s.events.iter().filter(|(k, _)| *k == EventKind::MilestoneReached).map(|(_, m)| m.as_str()).collect();
    assert_eq!(reached.len(), 5, "one event per milestone: {reached:?}");
    assert_eq!(reached[2], "milestone restore reached 3s after the start");
}

#[test]
fn a_step_may_claim_done() {
    let text = rb("- {id: a, action: noop}\n", "- {id: tidy, action: noop, milestone: done}\n");
    let mut s = Sim::drill(&text, &[]);
    s.ok("a");
    assert!(!s.state.milestones.contains_key(&Milestone::Done), "claimed by tidy, not the recovery");
    s.now += 5_000;
    s.ok("tidy");
    assert_eq!(s.state.milestones.get(&Milestone::Done), Some(&(T0 + 5_000)));
}

#[test]
fn the_milestone_event_carries_it_as_a_fact() {
    let text = rb("- {id: a, action: noop, milestone: restore}\n", "- {id: tidy, action: noop}\n");
    let s = Sim::drill(&text, &[]);
    let t = ripcord_engine::run::apply(
        &s.rb,
        &s.state,
        &Input::Succeeded { step: "a".into(), attempt: 1, outputs: Default::default() },
        T0,
    )
    .unwrap();
    let e = t.events.iter().find(|e| e.kind == EventKind::MilestoneReached).unwrap();
    assert_eq!((e.step.as_deref(), e.facts.milestone), (Some("a"), Some(Milestone::Restore)));
}

#[test]
fn states_stored_before_milestones_still_load() {
    let s = Sim::drill(&drill_runbook(), &[]);
    let mut j = serde_json::to_value(&s.state).unwrap();
    assert_eq!(j["milestones"]["kick_off"], T0);
    j.as_object_mut().unwrap().remove("milestones");
    let back: ripcord_engine::run::RunState = serde_json::from_value(j).unwrap();
    assert!(back.milestones.is_empty());
}

/// Each loader and check error of the cleanup phase and milestones, with
/// its position.
#[test]
fn cleanup_and_milestone_errors_with_positions() {
    let head = "id: t\ntitle: T\nsteps:\n";
    let table: &[(&str, &str)] = &[
        (
            "  - {id: a, action: noop, milestone: restor}\n",
            "4:38: unknown milestone \"restor\" (did you mean \"restore\"?); expected one of snapshot, restore, verification, done",
        ),
        (
            "  - {id: a, action: noop, milestone: kick_off}\n",
            "4:38: unknown milestone \"kick_off\" (kick_off is recorded when the run starts)",
        ),
        (
            "  - {id: a, action: noop, milestones: done}\n",
            "4:27: unknown field `milestones` (did you mean `milestone`?)",
        ),
        (
            "  - {id: a, action: noop, needs: [undo]}\ncleanup:\n  - {id: undo, action: noop}\n",
            "4:35: needs \"undo\": it is a cleanup step, which runs after the main steps (in drills only)",
        ),
        (
            "  - {id: a, action: noop}\ncleanup:\n  - {id: a, action: noop}\n",
            "6:5: duplicate step id \"a\" (first at 4:5)",
        ),
        (
            "  - {id: a, action: noop, on_failure: [undo]}\ncleanup:\n  - {id: undo, action: noop}\n",
            "4:39: on_failure runs \"undo\": it is a cleanup step and cannot be a failure handler",
        ),
        (
            "  - {id: a, action: noop}\n  - {id: h, action: noop}\ncleanup:\n  - {id: undo, action: noop, on_failure: [h]}\n",
            "7:42: cleanup step \"undo\": on_failure is stop or continue",
        ),
        (
            "  - {id: a, action: notify, with: {webhook: x, text: \"{{ steps.undo.deleted }}\"}}\ncleanup:\n  - {id: undo, action: atlas.delete_cluster, with: {project: p, cluster: c}}\n",
            "4:54: {{ steps.undo.deleted }}: \"undo\" is a cleanup step, which runs after the main steps",
        ),
        ("cleanup:\n  - {id: a, action: noop}\n", "3:8: a runbook needs at least one step"),
    ];
    let mut missed = Vec::new();
    for (body, expect) in table {
        let text = if body.starts_with("cleanup") {
            format!("id: t\ntitle: T\nsteps: []\n{body}")
        } else {
            format!("{head}{body}")
        };
        let errs: Vec<String> = match check(&text) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        };
        if !errs.iter().any(|e| e.starts_with(expect)) {
            missed.push(format!("expected {expect:?} in {errs:#?}"));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

#[test]
fn cleanup_may_read_main_outputs_and_wait_for_people() {
    let text = rb(
        "- {id: create, action: atlas.create_cluster_like, with: {project: p, like: c, name: n}}\n",
        "- {id: ok, action: approve, needs: [create], with: {message: \"delete {{ steps.create.name }}?\"}}\n\
         - {id: delete, action: atlas.delete_cluster, needs: [ok, create], with: {project: p, cluster: \"{{ steps.create.name }}\"}}\n\
         - {id: after, action: checklist, with: {items: [{text: report written}]}}\n",
    );
    let rb = check(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(rb.steps.iter().filter(|s| s.cleanup).count(), 3);
}

/// A failed drill that is still cleaning up escalates no more: the failure
/// has been told, and the recovery is over.
#[test]
fn a_failed_drill_cleaning_up_does_not_escalate() {
    let text = "id: n\ntitle: n\nparams:\n  hook: { default: \"http://127.0.0.1:9/h\" }\nnotify:\n  webhook: \"{{ params.hook }}\"\n  on: [escalation]\n  escalate:\n    - { after: 15m, text: leads }\nsteps:\n  - {id: a, action: noop}\ncleanup:\n  - {id: ok, action: approve}\n";
    let mut s = Sim::drill(text, &[]);
    s.fail("a");
    assert_eq!(s.status("ok"), "waiting");
    s.now = T0 + 16 * 60_000;
    s.feed(Input::RunTimer { timer: ripcord_engine::run::RunTimer::Escalate { tier: 1 } }).unwrap();
    assert!(!s.events.iter().any(|(k, _)| *k == EventKind::Escalated), "{:?}", s.events);
    approve(&mut s, "ok");
    assert_eq!(s.state.status, RunStatus::Failed);
}
