//! The redis runbooks end to end: coordinator → agent → a real
//! `redis-server` (under the agent's exec backend) with real damage. Each
//! test asserts which keys exist afterwards.

use ripcord_tests::http::TestServer;
use ripcord_tests::redis::RedisHost;
use ripcord_tests::{AgentSpec, Cluster, OPERATOR, step, text};
use std::fs;

/// What the Redis host's agent allows: every service, Redis and file action.
fn actions() -> Vec<&'static str> {
    let hosted = ["service.", "redis.", "file."];
    ripcord_engine::registry::agent_actions()
        .map(|a| a.name)
        .filter(|n| hosted.iter().any(|p| n.starts_with(p)))
        .collect()
}

// Fields drop in order: Redis (killed by its pid file) before the cluster's
// temp dir that holds that file.
struct Setup {
    redis: RedisHost,
    cluster: Cluster,
    server: TestServer,
}

fn setup() -> Setup {
    let server = TestServer::start();
    let mut cluster = Cluster::start(&[]);
    let redis = RedisHost::start(cluster.path(), "cache");
    cluster.start_agent(
        &AgentSpec::new("cache-1")
            .label("role", "redis")
            .label("host", "cache-1")
            .actions(&actions())
            .allow(&redis.allow_toml()),
    );
    cluster.wait_connected("cache-1");
    Setup { redis, cluster, server }
}

/// 50 keys in the base RDB of the AOF, 51 in the incr file; Redis stopped.
fn aof_with_base_and_incr(r: &RedisHost) {
    r.write_keys("k", 0..50);
    r.rewrite_aof();
    r.write_keys("k", 50..101);
    r.stop();
}

fn expected_keys(range: std::ops::Range<u32>) -> Vec<String> {
    let mut k: Vec<String> = range.map(|i| format!("k:{i}")).collect();
    k.sort();
    k
}

fn run_aof(s: &Setup) -> (String, serde_json::Value) {
    let run = s.cluster.start_run("redis-aof", &[("instance", "cache"), ("webhook", &s.server.url("/hook/aof"))]);
    let v = s.cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    (run, v)
}

#[test]
fn aof_incr_truncated_mid_command_is_repaired_losing_only_the_cut_command() {
    let s = setup();
    aof_with_base_and_incr(&s.redis);
    let incr = s.redis.incr_file();
    let damaged = fs::read(&incr).unwrap();
    fs::write(&incr, &damaged[..damaged.len() - 7]).unwrap();

    let (_, v) = run_aof(&s);
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    let fix = &step(&v, "fix")["outputs"];
    assert!(fix["bytes_discarded"].as_i64().unwrap() > 0, "{fix}");
    assert_eq!(fix["keys_after"], 100);
    let backup = std::path::Path::new(fix["backup_path"].as_str().unwrap());
    assert!(backup.starts_with(&s.redis.backups), "the damaged AOF is kept in the backup dir: {backup:?}");
    assert!(backup.join(incr.file_name().unwrap()).exists());
    assert_eq!(step(&v, "dbsize")["outputs"]["keys"], 100);
    assert_eq!(s.redis.keys("k:*"), expected_keys(0..100), "k:100 was the cut command");
    // The on-call was told what was discarded.
    assert!(s.server.requests().iter().any(|r| r.path == "/hook/aof" && r.body.contains("bytes discarded")));
}

#[test]
fn aof_with_garbage_appended_keeps_every_key() {
    let mut s = setup();
    // A second Redis host: the run names the one that is down.
    s.cluster
        .start_agent(&AgentSpec::new("cache-2").label("role", "redis").label("host", "cache-2").actions(&actions()));
    s.cluster.wait_connected("cache-2");
    aof_with_base_and_incr(&s.redis);
    let incr = s.redis.incr_file();
    let mut bytes = fs::read(&incr).unwrap();
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\ngarbage garbage garbage");
    fs::write(&incr, bytes).unwrap();

    let hook = s.server.url("/hook/aof");
    let params = [("instance", "cache"), ("webhook", hook.as_str()), ("agents", "host=cache-1")];
    let run = s.cluster.start_run("redis-aof", &params);
    let v = s.cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    assert_eq!(step(&v, "fix")["target"]["selector"], "host=cache-1");
    assert_eq!(step(&v, "fix")["outputs"]["keys_after"], 101);
    assert_eq!(s.redis.keys("k:*"), expected_keys(0..101));
}

#[test]
fn corrupt_base_rdb_fails_clearly_and_points_at_the_rdb_restore() {
    let s = setup();
    aof_with_base_and_incr(&s.redis);
    let base = fs::read_dir(s.redis.aof_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .unwrap();
    let mut bytes = fs::read(&base).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    fs::write(&base, bytes).unwrap();

    let (run, v) = run_aof(&s);
    assert_eq!(v["status"], "failed");
    let err = step(&v, "fix")["error"].as_str().unwrap().to_string();
    assert!(err.contains("redis-rdb"), "the failure names the RDB restore: {err}");
    assert_eq!(step(&v, "use-rdb")["status"], "succeeded", "the on-call is pointed at redis-rdb");
    assert!(s.server.requests().iter().any(|r| r.path == "/hook/aof" && r.body.contains("redis-rdb")));
    let backups: Vec<_> = fs::read_dir(&s.redis.backups).unwrap().filter_map(Result::ok).collect();
    assert!(!backups.is_empty(), "the damaged AOF was copied aside before anything else");
    let out = s.cluster.cli(OPERATOR, &["show", &run]);
    assert!(text(&out).0.contains("redis-rdb"));
}

#[test]
fn rdb_restore_with_appendonly_on_in_the_config_keeps_the_restored_keys() {
    let s = setup();
    let r = &s.redis;
    // A backup: 40 keys saved to an RDB and copied to the backup dir.
    r.write_keys("k", 0..40);
    assert_eq!(r.cli(&["SAVE"]).trim(), "OK");
    fs::copy(r.data.join("dump.rdb"), r.backups.join("dump-20261127.rdb")).unwrap();
    // Later writes, then both the AOF and the RDB are lost.
    r.write_keys("late", 0..5);
    r.stop();
    fs::remove_dir_all(r.aof_dir()).unwrap();
    fs::remove_file(r.data.join("dump.rdb")).unwrap();

    let run = s.cluster.start_run(
        "redis-rdb",
        &[
            ("instance", "cache"),
            ("backup_dir", r.backups.to_str().unwrap()),
            ("health_url", &s.server.url("/health")),
            ("webhook", &s.server.url("/hook/rdb")),
            ("warmup", "100ms"),
        ],
    );
    let v = s
        .cluster
        .wait_run(&run, "checklist waiting", |v| v["status"] != "running" || step(v, "watch")["status"] == "waiting");
    assert_eq!(step(&v, "restore")["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    let restore = &step(&v, "restore")["outputs"];
    assert_eq!(restore["keys"], 40);
    assert!(restore["backup"].as_str().unwrap().ends_with("dump-20261127.rdb"));
    // The run's RPO comes from the backup's age when it was restored.
    let achieved = &v["rpo_achieved"];
    assert_eq!((achieved["step"].as_str(), achieved["basis"].as_str()), (Some("restore"), Some("backup")));
    let written = step(&v, "restore")["finished_at_ms"].as_i64().unwrap()
        - restore["backup_age_seconds"].as_i64().unwrap() * 1000;
    assert_eq!(achieved["kept_until_ms"].as_i64(), Some(written), "{achieved}");
    let incident = v["incident_at_ms"].as_i64().unwrap();
    assert_eq!(achieved["lost_ms"].as_i64(), Some((incident - written).max(0)), "{achieved}");
    for item in 1..=3 {
        let out = s.cluster.cli(OPERATOR, &["approve", &run, "watch", "--item", &item.to_string()]);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let v = s.cluster.wait_run(&run, "succeeded", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    assert_eq!(r.keys("k:*"), expected_keys(0..40));
    assert!(r.keys("late:*").is_empty(), "writes after the backup are gone (that is the RPO)");
    assert!(r.cli(&["CONFIG", "GET", "appendonly"]).contains("yes"), "the AOF is on again");
    assert!(fs::read_to_string(&r.conf).unwrap().lines().any(|l| l.trim() == "appendonly yes"), "and persisted");

    // A restart now loads the AOF: the keys survive.
    r.stop();
    r.spawn();
    assert_eq!(r.keys("k:*"), expected_keys(0..40));
}

#[test]
fn memory_full_is_fixed_by_raising_the_limit_after_approval() {
    let s = setup();
    let r = &s.redis;
    r.write_keys("keep", 0..20);
    assert_eq!(r.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]).trim(), "OK");
    let used: u64 = r
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert_eq!(r.cli(&["CONFIG", "SET", "maxmemory", &used.to_string()]).trim(), "OK");
    for i in 0..200 {
        let out = r.cli(&["SET", &format!("temp:{i}"), &"x".repeat(512)]);
        if out.contains("OOM") {
            break;
        }
    }
    assert!(r.cli(&["SET", "probe", "1"]).contains("OOM"), "writes fail before the fix");

    let run =
        s.cluster.start_run("redis-oom", &[("instance", "cache"), ("fix", "raise_limit"), ("maxmemory", "256mb")]);
    s.cluster.wait_run(&run, "approval", |v| step(v, "choose")["status"] == "waiting");
    assert!(s.cluster.cli(OPERATOR, &["approve", &run, "choose", "--note", "raise it"]).status.success());
    let v = s.cluster.wait_run(&run, "checklist", |v| {
        v["status"] != "running"
            || v["steps"].as_array().unwrap().iter().any(|s| s["action"] == "checklist" && s["status"] == "waiting")
    });
    for st in v["steps"].as_array().unwrap().iter().filter(|s| s["action"] == "checklist" && s["status"] == "waiting") {
        let items = st["checklist"].as_array().unwrap().len();
        for item in 1..=items {
            let out =
                s.cluster.cli(OPERATOR, &["approve", &run, st["id"].as_str().unwrap(), "--item", &item.to_string()]);
            assert!(out.status.success(), "{:?}", text(&out));
        }
    }
    let v = s.cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    assert_eq!(r.cli(&["SET", "probe", "1"]).trim(), "OK", "writes work again");
    assert!(r.cli(&["CONFIG", "GET", "maxmemory"]).contains(&(256u64 * 1024 * 1024).to_string()));
    assert_eq!(r.keys("keep:*").len(), 20, "nothing was deleted");
}

#[test]
fn the_allowlist_refuses_what_it_does_not_name() {
    let s = setup();
    let file = s.cluster.path().join("refusals.yaml");
    let outside = s.cluster.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.rdb"), "x").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.rdb"), s.redis.backups.join("link.rdb")).unwrap();
    let b = s.redis.backups.display();
    fs::write(
        &file,
        format!(
            r#"id: refusals
title: refusals
steps:
  - {{id: svc, action: service.restart, target: "role=redis", with: {{service: nginx}}, on_failure: continue}}
  - {{id: inst, action: redis.ping, target: "role=redis", with: {{instance: other}}, on_failure: continue}}
  - {{id: dotdot, action: file.copy, target: "role=redis", with: {{from: "{b}/../redis.conf", to: "{b}/x"}}, on_failure: continue}}
  - {{id: link, action: file.copy, target: "role=redis", with: {{from: "{b}/link.rdb", to: "{b}/y"}}, on_failure: continue}}
  - {{id: abs, action: file.newest, target: "role=redis", with: {{dir: "/etc", pattern: "*"}}, on_failure: continue}}
"#
        ),
    )
    .unwrap();
    let run = s.cluster.start_run(file.to_str().unwrap(), &[]);
    let v = s.cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    let err = |id: &str| step(&v, id)["error"].as_str().unwrap_or("").to_string();
    assert!(err("svc").contains("service \"nginx\" is not allowed"), "{}", err("svc"));
    assert!(err("inst").contains("redis instance \"other\" is not allowed"), "{}", err("inst"));
    assert!(err("dotdot").contains("\"..\" is not allowed"), "{}", err("dotdot"));
    assert!(err("link").contains("outside the allowed directories"), "{}", err("link"));
    assert!(err("abs").contains("outside the allowed directories"), "{}", err("abs"));
    assert!(!s.redis.backups.join("x").exists() && !s.redis.backups.join("y").exists(), "nothing was written");
    assert_eq!(s.redis.cli(&["PING"]).trim(), "PONG", "the refused restart did not touch Redis");
}
