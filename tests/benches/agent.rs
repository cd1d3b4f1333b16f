//! Agent benchmark: prints numbers, asserts nothing about speed.
//!
//! - the release agent binary's size and an idle agent's RSS (VmRSS of an
//!   agent connected to a coordinator, after 2 s of heartbeats; goal: under
//!   10 MB);
//! - `redis.ping` through coordinator and agent against a real Redis: a run
//!   of 200 chained `redis.ping` steps, per-step time (p50/p99, ms
//!   resolution of the run's own timestamps) and total / steps;
//! - 3 actions on 50 agents at once: 50 agent processes, a run of three
//!   steps each targeting all 50 (`all: true`), the run's duration.
//!
//! Needs redis-server (scripts/test or scripts/bench install it).

use ripcord_tests::redis::RedisHost;
use ripcord_tests::{AgentSpec, Cluster};
use std::time::Instant;

/// What an idle agent (connected, heartbeating) may hold in memory.
const IDLE_RSS_GOAL_MB: f64 = 10.0;

/// VmRSS of a running process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn spec(id: &str, label: &str, redis: &RedisHost) -> AgentSpec {
    AgentSpec::new(id).label("role", label).actions(&["redis.ping"]).allow(&redis.allow_toml())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = ripcord_tests::bin("ripcord-agent");
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("agent binary: {:.1} MB ({})", size as f64 / 1e6, bin.display());

    let mut cluster = Cluster::start(&[]);
    let redis = RedisHost::start(cluster.path(), "cache");
    cluster.start_agent(&spec("solo", "solo", &redis));
    cluster.wait_connected("solo");
    // Idle: connected, heartbeating, nothing to do.
    let t = Instant::now();
    while t.elapsed().as_secs() < 2 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let idle = rss_kib(cluster.agents[0].pid()) as f64 / 1024.0;
    println!(
        "idle agent RSS: {idle:.1} MB (goal: under {IDLE_RSS_GOAL_MB} MB{})",
        if idle < IDLE_RSS_GOAL_MB { "" } else { ": OVER" }
    );

    let steps = 200;
    let mut yaml = "id: pings\ntitle: pings\nsteps:\n".to_string();
    for i in 0..steps {
        let needs = if i == 0 { String::new() } else { format!(", needs: [p{}]", i - 1) };
        yaml.push_str(&format!(
            "  - {{id: p{i}, action: redis.ping, target: \"role=solo\", with: {{instance: cache}}{needs}}}\n"
        ));
    }
    let file = cluster.path().join("pings.yaml");
    std::fs::write(&file, yaml).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded");
    let mut per: Vec<i64> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["finished_at_ms"].as_i64().unwrap() - s["started_at_ms"].as_i64().unwrap())
        .collect();
    per.sort();
    let total = v["finished_at_ms"].as_i64().unwrap() - v["created_at_ms"].as_i64().unwrap();
    println!(
        "redis.ping through coordinator and agent ({steps} chained steps): p50 {} ms  p99 {} ms  (total {} ms, {:.2} ms per step incl. durable commits)",
        per[per.len() / 2],
        per[per.len() * 99 / 100],
        total,
        total as f64 / steps as f64
    );

    let agents = 50;
    for i in 0..agents {
        cluster.start_agent(&spec(&format!("many-{i:02}"), "many", &redis));
    }
    for i in 0..agents {
        cluster.wait_connected(&format!("many-{i:02}"));
    }
    let mut yaml = "id: fan\ntitle: fan\nsteps:\n".to_string();
    for i in 0..3 {
        let needs = if i == 0 { String::new() } else { format!(", needs: [a{}]", i - 1) };
        yaml.push_str(&format!(
            "  - {{id: a{i}, action: redis.ping, target: {{selector: \"role=many\", all: true}}, with: {{instance: cache}}{needs}}}\n"
        ));
    }
    let file = cluster.path().join("fan.yaml");
    std::fs::write(&file, yaml).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", ripcord_tests::step_states(&v));
    let total = v["finished_at_ms"].as_i64().unwrap() - v["created_at_ms"].as_i64().unwrap();
    println!("3 actions on {agents} agents at once (3 steps, each on all {agents}): {total} ms");
    let rss: Vec<u64> = cluster.agents.iter().skip(1).map(|a| rss_kib(a.pid())).collect();
    println!("agent RSS after the fan-out: max {:.1} MB", *rss.iter().max().unwrap_or(&0) as f64 / 1024.0);
}
