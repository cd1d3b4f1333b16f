//! `runbook.run`: a step that runs a built-in runbook as a child run. Check
//! proves the child exists and gets the params it declares; the engine
//! hands the step to the coordinator as an ordinary `Perform`.

use ripcord_engine::check::check;
use ripcord_engine::run::{Effect, RunStatus};
use ripcord_engine::value::Value;
use std::collections::BTreeMap;

mod common;
use common::Sim;

const HEAD: &str =
    "id: composite\ntitle: T\nparams:\n  hook: { required: true, secret: true }\n  name: { default: r }\nsteps:\n";

fn errors(steps: &str) -> Vec<String> {
    match check(&format!("{HEAD}{steps}")) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn check_errors_with_positions() {
    let table: &[(&str, &str)] = &[
        (
            "  - id: a\n    action: runbook.run\n    with: { runbook: redis-aaf, params: { webhook: x } }\n",
            "9:22: runbook \"redis-aaf\": no such built-in runbook (did you mean \"redis-aof\"?) (built in: ",
        ),
        (
            "  - id: a\n    action: runbook.run\n    with:\n      runbook: redis-aof\n      params: { webhook: x, instanse: cache }\n",
            "11:29: runbook redis-aof has no param \"instanse\" (did you mean \"instance\"?) (it has: agents, instance, webhook, rehearsal_checklists)",
        ),
        (
            "  - id: a\n    action: runbook.run\n    with:\n      runbook: redis-aof\n      params: { instance: cache }\n",
            "11:15: runbook redis-aof needs param(s) webhook (required, no default): add them to params",
        ),
        (
            "  - id: a\n    action: runbook.run\n    with: { runbook: api-down }\n",
            "9:22: runbook api-down needs param(s) health_url (required, no default)",
        ),
        (
            "  - id: a\n    action: runbook.run\n    with: { runbok: api-down }\n",
            "9:13: unknown field `runbok` (did you mean `runbook`?)",
        ),
    ];
    let mut missed = Vec::new();
    for (steps, expect) in table {
        let errs = errors(steps);
        if !errs.iter().any(|e| e.starts_with(expect)) {
            missed.push(format!("expected {expect:?} in {errs:#?}"));
        }
    }
    assert!(missed.is_empty(), "{missed:#?}");
}

#[test]
fn a_runbook_cannot_run_itself() {
    let text = "id: redis-aof\ntitle: T\nsteps:\n  - {id: a, action: runbook.run, with: {runbook: redis-aof, params: {webhook: x}}}\n";
    let errs: Vec<String> = check(text).unwrap_err().iter().map(|d| d.to_string()).collect();
    assert_eq!(errs, ["4:50: runbook \"redis-aof\": runs redis-aof again, which would never end"]);
}

#[test]
fn a_templated_runbook_is_left_to_the_run() {
    let text = format!(
        "{HEAD}  - {{id: a, action: runbook.run, with: {{runbook: \"{{{{ params.name }}}}\", params: {{any: x}}}}}}\n"
    );
    check(&text).unwrap_or_else(|d| panic!("{d:#?}"));
}

#[test]
fn a_sub_run_is_performed_like_any_coordinator_action() {
    let text = format!(
        "{HEAD}  - id: redis\n    action: runbook.run\n    with:\n      runbook: redis-aof\n      params: {{ webhook: \"{{{{ params.hook }}}}\", instance: \"{{{{ params.name }}}}\" }}\n    timeout: 20m\n  - id: tell\n    needs: [redis]\n    action: notify\n    with: {{ webhook: x, text: \"redis back in {{{{ steps.redis.recovered_in_s }}}}s of {{{{ steps.redis.rto_s }}}}s ({{{{ steps.redis.status }}}}, run {{{{ steps.redis.run_id }}}})\" }}\n"
    );
    let mut s = Sim::drill(&text, &[("hook", "https://hooks/x")]);
    let perform = s.effects.iter().find(|e| matches!(e, Effect::Perform { .. })).cloned();
    let Some(Effect::Perform { key, action, args, target, timeout_ms }) = perform else { panic!("{:?}", s.effects) };
    assert_eq!((key.step.as_str(), key.attempt, action.as_str()), ("redis", 1, "runbook.run"));
    assert_eq!((target, timeout_ms), (None, Some(20 * 60_000)));
    let params =
        BTreeMap::from([("webhook".into(), Value::str("https://hooks/x")), ("instance".into(), Value::str("r"))]);
    let expect = BTreeMap::from([("runbook".into(), Value::str("redis-aof")), ("params".into(), Value::Map(params))]);
    assert_eq!(args, Value::Map(expect));
    let outputs = [("run_id", Value::str("child1")), ("status", Value::str("succeeded"))]
        .into_iter()
        .chain([("recovered_in_s", Value::Int(240)), ("rto_s", Value::Int(300))])
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    s.feed(ripcord_engine::run::Input::Succeeded { step: "redis".into(), attempt: 1, outputs }).unwrap();
    assert!(s.performed().contains(&"tell#1".to_string()));
    s.ok("tell");
    assert_eq!(s.state.status, RunStatus::Succeeded);
}
