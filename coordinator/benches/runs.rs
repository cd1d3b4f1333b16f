//! Run engine benchmark: prints numbers, asserts nothing about speed.
//!
//! A 200-step runbook of `noop` steps, once as a chain and once as 200
//! parallel steps, through the real driver with sled on disk (every commit
//! flushed): overhead per step (p50/p99 of the gap between one step's
//! result and the next step's dispatch, for the chain), events per second,
//! and sled bytes per run.
//!
//! Run: `cargo bench -p ripcord-coordinator --bench runs` (or scripts/bench).

use ripcord_coordinator::driver::{Driver, Runs, StartRequest};
use ripcord_coordinator::integrations::{BoxFuture, Outcome, Performer, Request};
use ripcord_coordinator::store::Store;
use ripcord_engine::run::{Actor, Mode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers every step at once and remembers when each was dispatched.
struct Instant0 {
    calls: Mutex<Vec<Instant>>,
}

impl Performer for Instant0 {
    fn perform(&self, _r: Request) -> BoxFuture<Outcome> {
        self.calls.lock().unwrap().push(Instant::now());
        Box::pin(async { Outcome::Succeeded(Default::default()) })
    }
}

fn runbook(steps: usize, chain: bool) -> String {
    let mut s = "id: bench\ntitle: bench\nsteps:\n".to_string();
    for i in 0..steps {
        if chain && i > 0 {
            s.push_str(&format!("  - {{id: s{i}, action: noop, needs: [s{}]}}\n", i - 1));
        } else {
            s.push_str(&format!("  - {{id: s{i}, action: noop}}\n"));
        }
    }
    s
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn one(name: &str, chain: bool, steps: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let perf = Arc::new(Instant0 { calls: Mutex::new(Vec::new()) });
    let (driver, runs): (Driver, Runs) = Driver::new(store.clone(), perf.clone(), Arc::new(ripcord_pki::clock::now_ms));
    tokio::spawn(driver.run());
    let t = Instant::now();
    let id = runs
        .start(StartRequest {
            id: None,
            source: "bench".into(),
            text: runbook(steps, chain),
            params: Default::default(),
            incident_at: None,
            mode: Mode::Drill,
            by: Actor { name: "bench".into(), role: "operator".into() },
            environment: None,
            parent: None,
        })
        .await
        .expect("start");
    loop {
        let rec = runs.get(&id).expect("run");
        if rec.state.status.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = t.elapsed();
    let events = runs.events(&id).expect("events").len();
    let calls = perf.calls.lock().unwrap().clone();
    println!("{name}: {steps} noop steps in {:.1} ms", total.as_secs_f64() * 1000.0);
    println!("  per step (total / steps): {:.3} ms", total.as_secs_f64() * 1000.0 / steps as f64);
    if chain {
        let mut gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        println!(
            "  step-to-step overhead with a durable commit: p50 {:.3} ms  p99 {:.3} ms",
            pct(&gaps, 0.5).as_secs_f64() * 1000.0,
            pct(&gaps, 0.99).as_secs_f64() * 1000.0
        );
    }
    println!("  events: {events} ({:.0} events/s)", events as f64 / total.as_secs_f64());
    println!(
        "  sled bytes for the run: {} ({} per step)",
        store.bytes_of_run(&id),
        store.bytes_of_run(&id) / steps as u64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        one("chain", true, 200).await;
        one("parallel", false, 200).await;
    });
}
