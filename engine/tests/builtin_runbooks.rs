//! The built-in runbooks in `runbooks/` pass `runbook check`, keep the
//! promises the playbook makes (every step has a budget, bar manual gates and
//! deferred steps; the budgets on the critical path fit the RTO), and run to
//! the end on every branch of their `when:` conditions when every action
//! succeeds.

use ripcord_engine::check::check;
use ripcord_engine::milestone::Milestone;
use ripcord_engine::plan::plan;
use ripcord_engine::registry;
use ripcord_engine::run::{
    Actor, Effect, Input, Mode, NewRun, RunState, RunStatus, StepStatus, TimerKind, apply, check_of, start,
};
use ripcord_engine::runbook::{OnFailure, Runbook, Step};
use ripcord_engine::value::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

/// One runbook per playbook scenario (`shared/playbook/SCENARIOS.md`), the
/// Q3 full-outage composite, and the way back from a secret switch.
const BUILTIN: [&str; 10] = [
    "mongo-pitr",
    "mongo-region",
    "mongo-index",
    "redis-aof",
    "redis-rdb",
    "redis-oom",
    "api-down",
    "dr-region",
    "full-outage",
    "secret-rollback",
];

/// Runbooks whose critical path is known to be over their RTO, and why: a
/// rehearsal measures by how much. The test fails if one of them fits.
const OVER_RTO: [(&str, &str); 1] = [(
    "full-outage",
    "the playbook's order runs mongo-pitr (30m), redis-aof (5m) and api-down (10m) one after the other, against its 30m total target",
)];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runbooks")
}

/// Loads and checks `runbooks/<id>.yaml`, or fails with every diagnostic as
/// `runbooks/<id>.yaml:LINE:COL: message`.
fn load(id: &str) -> Runbook {
    let path = dir().join(format!("{id}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    match check(&text) {
        Ok(rb) => rb,
        Err(diags) => {
            let lines: Vec<String> =
                diags.iter().map(|d| format!("runbooks/{id}.yaml:{}: {}", d.pos, d.message)).collect();
            for l in &lines {
                eprintln!("{l}");
            }
            panic!("runbooks/{id}.yaml does not pass check:\n{}", lines.join("\n"));
        }
    }
}

fn is_manual_or_deferred(step: &Step) -> bool {
    matches!(step.action.as_str(), "approve" | "checklist") || step.after.is_some()
}

fn fmt(d: Duration) -> String {
    ripcord_engine::duration::format(d)
}

#[test]
fn exactly_the_builtin_runbooks_are_in_the_directory() {
    let mut found: Vec<String> = std::fs::read_dir(dir())
        .expect("runbooks/ exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| p.file_name().expect("file name").to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expect: Vec<String> = BUILTIN.iter().map(|id| format!("{id}.yaml")).collect();
    expect.sort();
    assert_eq!(found, expect, "runbooks/ must hold exactly the built-in runbooks");
}

#[test]
fn every_builtin_runbook_passes_check() {
    for id in BUILTIN {
        let rb = load(id);
        assert_eq!(rb.id, id, "runbooks/{id}.yaml: id must equal the file stem");
        assert!(!rb.title.is_empty(), "runbooks/{id}.yaml: title is empty");
        assert!(rb.rto.is_some() && rb.rpo.is_some(), "runbooks/{id}.yaml: rto and rpo are the playbook's targets");
    }
}

#[test]
fn every_step_has_a_budget_unless_manual_or_deferred() {
    for id in BUILTIN {
        let rb = load(id);
        for step in &rb.steps {
            assert!(
                step.budget.is_some() || is_manual_or_deferred(step),
                "runbooks/{id}.yaml:{}: step \"{}\" has no budget (only approve, checklist and deferred steps may omit it)",
                step.pos,
                step.id
            );
            if let (Some(b), Some(t)) = (step.budget, step.timeout) {
                assert!(
                    t >= b,
                    "runbooks/{id}.yaml:{}: step \"{}\" times out ({}) before its budget ({}) is spent",
                    step.pos,
                    step.id,
                    fmt(t),
                    fmt(b)
                );
            }
        }
    }
}

#[test]
fn critical_path_fits_the_rto() {
    for id in BUILTIN {
        let rb = load(id);
        let p = plan(&rb);
        println!("{id}: {}: {}", p.summary(), p.critical_path.join(" → "));
        let fits = p.rto.is_some_and(|rto| p.critical_total <= rto);
        match OVER_RTO.iter().find(|(over, _)| *over == id) {
            Some((_, why)) => {
                assert!(!fits, "runbooks/{id}.yaml now fits its RTO ({}): drop it from OVER_RTO ({why})", p.summary())
            }
            None => assert!(fits, "runbooks/{id}.yaml: {}", p.summary()),
        }
        for c in &p.cleanup {
            assert!(!p.critical_path.contains(c), "runbooks/{id}.yaml: cleanup step {c} is on the critical path");
        }
    }
}

#[test]
fn secrets_are_secret_params_and_handlers_are_unconditional() {
    for id in BUILTIN {
        let rb = load(id);
        // A webhook URL or a credential is a secret param without a default,
        // never a literal in the file.
        for p in &rb.params {
            let name = p.name.to_lowercase();
            if ["webhook", "password", "token", "api_key"].iter().any(|w| name.contains(w)) {
                assert!(p.secret, "runbooks/{id}.yaml:{}: param \"{}\" must be secret: true", p.pos, p.name);
                assert!(p.default.is_none(), "runbooks/{id}.yaml:{}: secret param \"{}\" has a default", p.pos, p.name);
            }
        }
        for step in &rb.steps {
            if step.action == "notify" {
                let webhook = step.with.get("webhook").and_then(|n| n.as_str()).unwrap_or_default().trim();
                let param = webhook.strip_prefix("{{").and_then(|w| w.strip_suffix("}}")).map(str::trim);
                let param = param.and_then(|p| p.strip_prefix("params.")).and_then(|p| rb.param(p));
                assert!(
                    param.is_some_and(|p| p.secret),
                    "runbooks/{id}.yaml:{}: step \"{}\": the webhook must be exactly one secret param",
                    step.pos,
                    step.id
                );
            }
            if let OnFailure::Run(handlers) = &step.on_failure {
                for h in handlers {
                    let handler = rb.step(h).expect("check() verified the handler exists");
                    assert!(handler.when.is_none(), "runbooks/{id}.yaml: handler \"{h}\" should run unconditionally");
                }
            }
        }
    }
}

/// Escalation is the coordinator's policy (`[escalation]`, the playbook's
/// tiers by default): it tells the on-call of a failed step and the leads,
/// CTO and vendors as time passes, for every run. No built-in runbook
/// escalates by hand with a notify step of its own.
#[test]
fn escalation_is_the_policy_not_a_step() {
    for id in BUILTIN {
        let rb = load(id);
        for step in &rb.steps {
            let text = step.with.get("text").and_then(|n| n.as_str()).unwrap_or_default();
            assert!(
                step.id != "escalate" && !(step.action == "notify" && text.contains("Escalate")),
                "runbooks/{id}.yaml:{}: step \"{}\" escalates by hand: the escalation policy does that",
                step.pos,
                step.id
            );
        }
    }
}

#[test]
fn deferred_steps_wait_for_an_approval() {
    for id in BUILTIN {
        let rb = load(id);
        let ancestors = ripcord_engine::check::ancestors(&rb);
        for step in rb.steps.iter().filter(|s| s.after.is_some()) {
            let gated = ancestors[step.id.as_str()].iter().any(|a| rb.step(a).is_some_and(|s| s.action == "approve"));
            assert!(
                gated,
                "runbooks/{id}.yaml:{}: deferred step \"{}\" must need an approve step (a person confirms recovery first)",
                step.pos, step.id
            );
        }
    }
}

/// Drives a run of `rb` in which every action succeeds (with placeholder
/// outputs, `ok: true`) except those of the steps in `fail`, every approval
/// is given and every checklist item confirmed. Returns the final state and
/// the steps whose actions were performed.
fn simulate(rb: &Runbook, params: &[(&str, Value)], fail: &[&str]) -> (RunState, Vec<String>) {
    simulate_in(Mode::Drill, rb, params, fail)
}

/// [`simulate`] in `mode`.
fn simulate_in(mode: Mode, rb: &Runbook, params: &[(&str, Value)], fail: &[&str]) -> (RunState, Vec<String>) {
    let mut given: BTreeMap<String, Value> = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    for p in &rb.params {
        if p.required && p.default.is_none() && !given.contains_key(&p.name) {
            given.insert(p.name.clone(), Value::str(format!("test-{}", p.name)));
        }
    }
    let new = NewRun { id: "run0000builtin".into(), mode, params: given, incident_at: None };
    let mut now = 1_800_000_000_000;
    let t = start(rb, new, now).unwrap_or_else(|e| panic!("{}: cannot start: {e}", rb.id));
    let mut state = t.state;
    let mut queue: VecDeque<Effect> = t.effects.into();
    let mut performed = Vec::new();
    let actor = Actor { name: "test".into(), role: "operator".into() };
    for _ in 0..1000 {
        let input = if let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Perform { key, action, args, target, .. } => {
                    let step = check_of(&key.step).map_or(key.step.as_str(), |(step, _)| step);
                    let def = rb.step(step).expect("performed step (or checklist) exists");
                    assert!(
                        !format!("{args:?}").contains("{{"),
                        "{}: step {} was given unresolved templates: {args:?}",
                        rb.id,
                        key.step
                    );
                    let def_target = def.target.is_some() && step == key.step;
                    assert_eq!(target.is_some(), def_target, "{}: step {} target", rb.id, key.step);
                    performed.push(key.step.clone());
                    if fail.contains(&key.step.as_str()) {
                        Input::Failed { step: key.step, attempt: key.attempt, error: "simulated failure".into() }
                    } else {
                        let outputs = registry::get(&action)
                            .map_or(&[][..], |a| a.outputs)
                            .iter()
                            .map(|o| {
                                let v = if *o == "ok" { Value::Bool(true) } else { Value::str(format!("<{o}>")) };
                                (o.to_string(), v)
                            })
                            .collect();
                        Input::Succeeded { step: key.step, attempt: key.attempt, outputs }
                    }
                }
                Effect::Timer { key, kind: kind @ (TimerKind::Wait | TimerKind::After | TimerKind::Backoff), at } => {
                    now = now.max(at);
                    Input::Timer { step: key.step, attempt: key.attempt, kind }
                }
                Effect::Timer { .. } | Effect::RunTimer { .. } => continue,
                Effect::Notify { name, .. } => Input::Notified { name, error: None, reached: vec![] },
            }
        } else {
            let Some((id, st)) = state.steps.iter().find(|(_, s)| s.status == StepStatus::Waiting) else { break };
            let step = id.clone();
            if rb.step(&step).is_some_and(|s| s.action == "approve") {
                Input::Approve { step, by: actor.clone(), note: String::new() }
            } else {
                let item = st.checklist.iter().position(Option::is_none).expect("an unconfirmed item") + 1;
                Input::Confirm { step, item, by: actor.clone(), note: String::new() }
            }
        };
        now += 1_000;
        let t = apply(rb, &state, &input, now).unwrap_or_else(|e| panic!("{}: {input:?} rejected: {e}", rb.id));
        state = t.state;
        queue.extend(t.effects);
    }
    (state, performed)
}

/// A runbook, the params that pick a branch, and the steps its conditions skip.
type Branch = (&'static str, Vec<(&'static str, Value)>, &'static [&'static str]);

/// Every branch of every runbook runs to the end: the `when:` conditions
/// pick the intended steps, and every argument resolves.
#[test]
fn every_branch_runs_to_the_end() {
    let s = Value::str;
    let table: &[Branch] = &[
        ("mongo-pitr", vec![], &["switch-env"]),
        ("mongo-pitr", vec![("switch", s("k8s"))], &["switch-secret", "restart", "restore-secret", "restart-back"]),
        ("mongo-pitr", vec![("rehearsal_checklists", Value::Bool(false))], &["switch-env", "prepare", "day-after"]),
        ("mongo-region", vec![], &["switch-env"]),
        ("mongo-region", vec![("switch", s("k8s"))], &["switch-secret", "restart"]),
        ("dr-region", vec![], &["switch-env"]),
        ("dr-region", vec![("switch", s("k8s"))], &["switch-secret", "restart", "restore-secret", "restart-back"]),
        ("mongo-index", vec![], &["rebuild", "still-broken"]),
        ("mongo-index", vec![("force", Value::Bool(true))], &["still-broken"]),
        ("redis-aof", vec![], &[]),
        ("redis-aof", vec![("rehearsal_checklists", Value::Bool(false))], &["prepare", "day-after"]),
        ("full-outage", vec![], &[]),
        ("redis-rdb", vec![], &[]),
        ("redis-oom", vec![], &["dry-run", "approve-delete", "delete"]),
        ("redis-oom", vec![("fix", s("delete_temp"))], &["raise-limit"]),
        ("api-down", vec![], &["logs-compose", "restart-compose"]),
        ("api-down", vec![("platform", s("compose"))], &["logs-k8s", "restart-k8s", "rollout-wait", "pods-ready"]),
        ("secret-rollback", vec![("version_id", s("v-1"))], &[]),
    ];
    let mut covered = BTreeSet::new();
    for (id, params, skipped) in table {
        covered.insert(*id);
        let rb = load(id);
        let (state, performed) = simulate(&rb, params, &[]);
        let what = format!("{id} with {params:?}");
        assert_eq!(state.status, RunStatus::Succeeded, "{what}: run ended {:?}", state.status);
        assert!(state.recovered_at.is_some(), "{what}: recovery was never recorded");
        let handlers = rb.handlers();
        for step in &rb.steps {
            let st = &state.steps[&step.id].status;
            if handlers.contains(&step.id.as_str()) {
                assert_eq!(*st, StepStatus::Pending, "{what}: handler {} ran without a failure", step.id);
            } else if skipped.contains(&step.id.as_str()) {
                assert!(matches!(st, StepStatus::Skipped { .. }), "{what}: {} should be skipped, is {st:?}", step.id);
            } else {
                assert_eq!(*st, StepStatus::Succeeded, "{what}: step {}", step.id);
            }
        }
        assert!(!performed.is_empty(), "{what}: nothing was performed");
    }
    assert_eq!(covered, BUILTIN.into_iter().collect(), "every built-in runbook has a row");
}

/// A failing step with failure handlers runs them (their messages resolve
/// without outputs of steps that never ran) and fails the run; a step
/// without (`on_failure: stop`, the default) fails the run too; a
/// best-effort step (`on_failure: continue`) does not stop the recovery.
#[test]
fn failures_reach_their_handlers_and_best_effort_steps_are_tolerated() {
    for id in BUILTIN {
        let rb = load(id);
        for step in &rb.steps {
            let what = format!("{id}: failing {}", step.id);
            if rb.handlers().contains(&step.id.as_str()) || step.when.is_some() {
                continue;
            }
            match &step.on_failure {
                OnFailure::Run(handlers) => {
                    let (state, performed) = simulate(&rb, &[], &[step.id.as_str()]);
                    assert_eq!(state.status, RunStatus::Failed, "{what}");
                    for h in handlers {
                        assert!(performed.contains(h), "{what}: handler {h} did not run");
                        assert_eq!(state.steps[h].status, StepStatus::Succeeded, "{what}: handler {h}");
                    }
                }
                OnFailure::Continue => {
                    let (state, _) = simulate(&rb, &[], &[step.id.as_str()]);
                    assert_eq!(state.status, RunStatus::Succeeded, "{what}: a best-effort step stopped the run");
                    assert!(state.recovered_at.is_some(), "{what}: recovery was never recorded");
                }
                OnFailure::Stop => {
                    let (state, performed) = simulate(&rb, &[], &[step.id.as_str()]);
                    // Manual gates perform nothing, so nothing fails them here.
                    if performed.contains(&step.id) {
                        assert_eq!(state.status, RunStatus::Failed, "{what}: the failure did not stop the run");
                    }
                }
            }
        }
    }
}

/// In a recovery, what belongs to rehearsals is skipped (the preparation
/// checklist, the drill's snapshot, every cleanup step); in a drill, the
/// day's milestones are reached, and cleanup never moves the recovery.
#[test]
fn rehearsal_parts_run_in_drills_only_and_record_the_milestones() {
    use Milestone::*;
    let claimed: [(&str, &[Milestone]); 4] = [
        ("mongo-pitr", &[KickOff, Snapshot, Restore, Verification, Done]),
        ("dr-region", &[KickOff, Snapshot, Restore, Verification, Done]),
        ("redis-aof", &[KickOff, Restore, Verification, Done]),
        ("full-outage", &[KickOff, Restore, Verification, Done]),
    ];
    for id in BUILTIN {
        let rb = load(id);
        let (state, _) = simulate_in(Mode::Recovery, &rb, &[], &[]);
        assert_eq!(state.status, RunStatus::Succeeded, "{id} recovery");
        for step in &rb.steps {
            let drill_only =
                step.when.as_ref().is_some_and(|(c, _)| c.parts().iter().any(|p| p.contains("run.mode }} == drill")));
            let st = &state.steps[&step.id].status;
            if step.cleanup {
                let reason = StepStatus::Skipped { reason: "cleanup runs in drills only".into(), need: None };
                assert_eq!(*st, reason, "{id}: cleanup step {} in a recovery", step.id);
            } else if drill_only {
                assert!(matches!(st, StepStatus::Skipped { .. }), "{id}: drill-only {} ran in a recovery", step.id);
            }
        }
        let (drill, _) = simulate(&rb, &[], &[]);
        assert_eq!(drill.status, RunStatus::Succeeded, "{id} drill");
        let reached: Vec<Milestone> = drill.milestones.keys().copied().collect();
        let expect = claimed.iter().find(|(c, _)| *c == id).map_or(&[KickOff, Done][..], |(_, m)| m);
        assert_eq!(reached, expect, "{id}: milestones of a drill");
        if rb.has_cleanup() {
            let last_main = rb.steps.iter().filter(|s| !s.cleanup).filter_map(|s| drill.steps[&s.id].finished_at).max();
            assert_eq!(drill.recovered_at, last_main, "{id}: recovery is the main steps' end, not the cleanup's");
            assert!(drill.finished_at > drill.recovered_at, "{id}: the run ends after its cleanup");
        }
    }
}

/// The cleanup of a drill that switched the secret puts it back from the
/// version the switch replaced, and deleting what the drill created waits
/// for a person without holding up the secret.
#[test]
fn drill_cleanup_undoes_the_switch_and_deletes_after_approval() {
    for id in ["mongo-pitr", "dr-region"] {
        let rb = load(id);
        let step = |s: &str| rb.step(s).unwrap_or_else(|| panic!("{id}: no step {s}"));
        for s in ["restore-secret", "restart-back", "approve-delete", "delete-cluster", "day-after"] {
            assert!(step(s).cleanup, "{id}: {s} is a cleanup step");
        }
        let version = step("restore-secret").with.get("version_id").and_then(|n| n.as_str()).unwrap_or_default();
        assert_eq!(version, "{{ steps.switch-secret.previous_version_id }}", "{id}");
        let ancestors = ripcord_engine::check::ancestors(&rb);
        assert!(ancestors["delete-cluster"].contains("approve-delete"), "{id}: deletion waits for a person");
        assert!(!ancestors["restart-back"].contains("approve-delete"), "{id}: the approval holds up the secret");
        let cluster = step("delete-cluster").with.get("cluster").and_then(|n| n.as_str()).unwrap_or_default();
        assert_eq!(cluster, "{{ steps.create-cluster.name }}", "{id}: deletes only what the drill created");
    }
}
