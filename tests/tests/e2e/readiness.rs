//! `ripcord readiness`: the fleet checks of a runbook against real agents,
//! one of them stopped.

use ripcord_tests::{AgentSpec, Cluster, OPERATOR, VIEWER, eventually, text};

const REDIS_ACTIONS: &[&str] = &["redis.check_aof", "redis.ping", "redis.dbsize"];

#[test]
fn readiness_names_the_step_the_agents_and_the_fix() {
    let mut cluster = Cluster::start(&[
        AgentSpec::new("cache-1").label("role", "redis").actions(REDIS_ACTIONS),
        AgentSpec::new("cache-2").label("role", "redis").actions(REDIS_ACTIONS),
    ]);

    // Two connected agents match a step that wants exactly one: a failure.
    let out = cluster.cli(OPERATOR, &["readiness", "--runbook", "redis-aof"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let line = stdout.lines().find(|l| l.contains("step fix: target role=redis")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains("FAIL") && line.contains("cache-1, cache-2") && line.contains("narrow"), "{line}");
    assert!(stdout.lines().next().unwrap().starts_with("RUNBOOK"), "{stdout}");
    assert!(stdout.contains("runbook check") && stdout.contains("passes"), "{stdout}");

    // cache-2 stops: cache-1 alone is usable, cache-2 is named as disconnected.
    cluster.agents[1].kill();
    eventually("cache-2 to be marked disconnected", || {
        let a = cluster.agent_json("cache-2")?;
        if a["connected"] == false { Ok(()) } else { Err(a.to_string()) }
    });
    let out = cluster.cli(VIEWER, &["readiness", "--runbook", "redis-aof"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "warnings alone exit 0: {stdout}{stderr}");
    let line = stdout.lines().find(|l| l.contains("step fix: target role=redis")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("WARN") && line.contains("1 usable: cache-1") && line.contains("disconnected: cache-2"),
        "{line}"
    );
    assert!(line.contains("reconnect or remove disconnected agents cache-2"), "{line}");

    let out = cluster.cli(OPERATOR, &["readiness", "--runbook", "redis-aof", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let fix = v.as_array().unwrap().iter().find(|c| c["subject"] == "step fix: target role=redis").unwrap();
    assert_eq!(fix["status"], "warn");
    assert_eq!(fix["runbook"], "redis-aof");

    // cache-1 stops too: no usable agent, and the fix says what to start.
    cluster.agents[0].kill();
    eventually("cache-1 to be marked disconnected", || {
        let a = cluster.agent_json("cache-1")?;
        if a["connected"] == false { Ok(()) } else { Err(a.to_string()) }
    });
    let out = cluster.cli(OPERATOR, &["readiness", "--runbook", "redis-aof"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("step fix: target role=redis")).unwrap();
    assert!(line.contains("FAIL") && line.contains("start or connect an agent labelled role=redis"), "{line}");

    let out = cluster.cli(OPERATOR, &["readiness", "--runbook", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("no built-in runbook"), "{:?}", text(&out));
}
