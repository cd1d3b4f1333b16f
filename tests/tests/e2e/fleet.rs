//! Agents register, are listed, answer pings, reconnect, persist.

use ripcord_tests::{AgentSpec, Cluster, OPERATOR, eventually, text};

#[test]
fn agent_registers_with_its_labels_and_answers_ping() {
    let cluster = Cluster::start(&[AgentSpec::new("cache-1").label("role", "redis").label("env", "prod")]);

    let a = cluster.agent_json("cache-1").unwrap();
    assert_eq!(a["connected"], true);
    assert_eq!(a["labels"]["role"], "redis");
    assert_eq!(a["labels"]["env"], "prod");
    assert_eq!(a["actions"], serde_json::json!(["redis.ping"]));
    assert!(a["address"].as_str().unwrap().starts_with("127.0.0.1:"), "{a}");

    let out = cluster.cli(OPERATOR, &["agents", "--selector", "role=redis,env=prod"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("cache-1") && stdout.contains("connected"), "{stdout}");
    let out = cluster.cli(OPERATOR, &["agents", "--selector", "env=staging", "--json"]);
    assert_eq!(text(&out).0.trim(), "[]");

    let out = cluster.cli(OPERATOR, &["agents", "ping", "cache-1", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["agent_id"], "cache-1");
    assert_eq!(v[0]["status"], "ok");
    assert!(v[0]["rtt_us"].as_u64().unwrap() > 0);

    let out = cluster.cli(OPERATOR, &["agents", "ping", "--selector", "role=redis"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("cache-1") && stdout.contains(" ok "), "{stdout}");
}

#[test]
fn coordinator_killed_and_restarted_agent_reconnects_and_fleet_persists() {
    let mut cluster = Cluster::start(&[
        AgentSpec::new("cache-1").label("role", "redis"),
        AgentSpec::new("app-1").label("role", "app").label("host", "app-1"),
    ]);
    // app-1 goes away before the crash: after the restart only the store
    // can know about it.
    cluster.agents[1].kill();
    eventually("app-1 to be marked disconnected", || {
        let a = cluster.agent_json("app-1")?;
        if a["connected"] == false { Ok(()) } else { Err(a.to_string()) }
    });

    cluster.restart_coordinator();

    let app = cluster.agent_json("app-1").expect("app-1 persisted across kill -9");
    assert_eq!(app["connected"], false);
    assert_eq!(app["labels"]["host"], "app-1");
    cluster.wait_connected("cache-1");
    let out = cluster.cli(OPERATOR, &["agents", "ping", "cache-1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(cluster.agents[0].log_text().contains("connected to coordinator"));
}

#[test]
fn ping_reports_disconnected_and_silent_agents_without_waiting_forever() {
    let mut cluster = Cluster::start(&[
        AgentSpec::new("cache-1").label("role", "redis"),
        AgentSpec::new("cache-2").label("role", "redis"),
        AgentSpec::new("cache-3").label("role", "redis"),
    ]);
    cluster.agents[1].kill();
    eventually("cache-2 disconnected", || {
        let a = cluster.agent_json("cache-2")?;
        if a["connected"] == false { Ok(()) } else { Err(a.to_string()) }
    });
    // cache-3 is frozen: connected as far as TCP goes, but it never answers.
    cluster.agents[2].signal("STOP");

    let out = cluster.cli(OPERATOR, &["agents", "ping", "--selector", "role=redis", "--timeout", "300ms", "--json"]);
    cluster.agents[2].signal("CONT");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "a ping that misses an agent exits 1: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let status = |id: &str| v.as_array().unwrap().iter().find(|r| r["agent_id"] == id).unwrap()["status"].clone();
    assert_eq!(status("cache-1"), "ok");
    assert_eq!(status("cache-2"), "disconnected");
    assert_eq!(status("cache-3"), "timeout");

    let out = cluster.cli(OPERATOR, &["agents", "ping", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no agent \"nosuch\" in the fleet"), "{:?}", text(&out));
}

#[test]
fn second_connection_with_same_id_replaces_the_first_cleanly() {
    let mut cluster = Cluster::start(&[AgentSpec::new("cache-1").label("role", "redis")]);
    cluster.start_agent(&AgentSpec::new("cache-1").label("role", "redis").label("generation", "2"));
    // Told in words, and it acts on the typed reason: it waits before taking the id back.
    eventually("the first connection to be told it was replaced", || {
        let log = cluster.agents[0].log_text();
        let told = log.contains("replaced by a newer connection") && log.contains("another agent is using this id");
        if told { Ok(()) } else { Err(log) }
    });
    // The first agent would take the id back after its backoff; stop it so
    // the fleet settles on the second.
    cluster.agents[0].kill();
    eventually("the second agent to hold the id", || {
        let a = cluster.agent_json("cache-1")?;
        if a["connected"] == true && a["labels"]["generation"] == "2" { Ok(()) } else { Err(a.to_string()) }
    });
    assert_eq!(cluster.agents_json().unwrap().len(), 1, "one fleet entry per id");
    let out = cluster.cli(OPERATOR, &["agents", "ping", "cache-1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(cluster.coordinator.log_text().contains("agent connection replaced by a newer one"));
}
