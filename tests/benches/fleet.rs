//! Fleet benchmark: prints numbers, asserts nothing about speed.
//!
//! 1. Ping round trip through the coordinator to one agent process:
//!    p50/p99 over 1,000 pings, as seen by the client and as measured by the
//!    coordinator (command sent → answer received).
//! 2. One coordinator with 1,000 connected agents (one process holding 1,000
//!    separate mTLS streams, each with its own certificate): coordinator RSS,
//!    and the time for one ping to reach all 1,000 and come back.
//!
//! Run: `scripts/bench` (builds the release binaries first).
//! `RIPCORD_BENCH_AGENTS` and `RIPCORD_BENCH_PINGS` change the sizes.

use ripcord_engine::Role;
use ripcord_pki::tls::TlsFiles;
use ripcord_proto::v1::{HealthRequest, PingAgentsRequest, control_client::ControlClient, ping_result};
use ripcord_tests::{AgentSpec, Cluster, OPERATOR};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn client(cluster: &Cluster) -> ControlClient<Channel> {
    let settings = ripcord_cli::settings::Settings {
        coordinator: cluster.url(),
        tls: TlsFiles { ca: cluster.pki.ca(), cert: cluster.pki.cert(OPERATOR), key: cluster.pki.key(OPERATOR) },
        server_name: Some("localhost".into()),
    };
    ripcord_cli::client::connect(&settings).await.expect("connect")
}

async fn ping_round_trip(pings: usize) {
    let cluster = Cluster::start(&[AgentSpec::new("bench-1")]);
    let mut c = client(&cluster).await;
    let req = || PingAgentsRequest { agent_id: "bench-1".into(), selector: String::new(), timeout_ms: 5000 };
    for _ in 0..50 {
        c.ping_agents(req()).await.expect("warm-up ping");
    }
    let mut client_rtt = Vec::with_capacity(pings);
    let mut coord_rtt = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        let r = c.ping_agents(req()).await.expect("ping").into_inner();
        client_rtt.push(t.elapsed());
        let res = &r.results[0];
        assert_eq!(res.status, ping_result::Status::Ok as i32, "{res:?}");
        coord_rtt.push(Duration::from_micros(res.rtt_us));
    }
    client_rtt.sort();
    coord_rtt.sort();
    println!("ping round trip, one agent, {pings} pings:");
    println!(
        "  coordinator → agent → coordinator: p50 {}  p99 {}",
        ms(percentile(&coord_rtt, 0.5)),
        ms(percentile(&coord_rtt, 0.99))
    );
    println!(
        "  client → coordinator → agent → client: p50 {}  p99 {}",
        ms(percentile(&client_rtt, 0.5)),
        ms(percentile(&client_rtt, 0.99))
    );
}

async fn fan_out(agents: usize) {
    let cluster = Cluster::start(&[]);
    let idle_rss = rss_kib(cluster.coordinator.pid());
    let t = Instant::now();
    let mut handles = Vec::with_capacity(agents);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for i in 0..agents {
        let id = format!("sim-{i:04}");
        cluster.pki.issue(&id, Role::Agent);
        let config = ripcord_agent::config::Config {
            id: id.clone(),
            coordinator: cluster.url(),
            server_name: Some("localhost".into()),
            tls: TlsFiles { ca: cluster.pki.ca(), cert: cluster.pki.cert(&id), key: cluster.pki.key(&id) },
            labels: [("role".to_string(), "sim".to_string())].into(),
            allow: ripcord_agent::policy::Allowlist::default(),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(5),
            state_dir: cluster.path().join("agent-state").join(&id),
        };
        let mut stop = stop_rx.clone();
        handles.push(tokio::spawn(async move {
            let _ = ripcord_agent::run(config, async move {
                let _ = stop.changed().await;
            })
            .await;
        }));
    }
    let mut c = client(&cluster).await;
    loop {
        let h = c.health(HealthRequest {}).await.expect("health").into_inner();
        if h.connected_agents as usize >= agents {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "only {} of {agents} agents connected", h.connected_agents);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_time = t.elapsed();
    let loaded_rss = rss_kib(cluster.coordinator.pid());

    let mut rounds = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = c
            .ping_agents(PingAgentsRequest { agent_id: String::new(), selector: "role=sim".into(), timeout_ms: 10_000 })
            .await
            .expect("fan-out ping")
            .into_inner();
        rounds.push(t.elapsed());
        let ok = r.results.iter().filter(|r| r.status == ping_result::Status::Ok as i32).count();
        assert_eq!(ok, agents, "every agent must answer");
    }
    rounds.sort();
    let after_rss = rss_kib(cluster.coordinator.pid());
    println!("fan-out, {agents} agents connected as separate mTLS streams:");
    println!("  all connected after {:.2} s (certificates issued in the same loop)", connect_time.as_secs_f64());
    println!(
        "  one ping to all {agents} and back: p50 {}  max {} (10 rounds)",
        ms(rounds[rounds.len() / 2]),
        ms(rounds[rounds.len() - 1])
    );
    println!(
        "  coordinator RSS: idle {:.1} MB, {agents} agents {:.1} MB, after pings {:.1} MB",
        idle_rss as f64 / 1024.0,
        loaded_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0
    );
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    ripcord_pki::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        ping_round_trip(env_usize("RIPCORD_BENCH_PINGS", 1000)).await;
        fan_out(env_usize("RIPCORD_BENCH_AGENTS", 1000)).await;
    });
}
