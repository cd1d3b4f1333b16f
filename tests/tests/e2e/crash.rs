//! Crash safety: the coordinator is SIGKILLed at many random moments while
//! runs call a local HTTP server; after each restart the runs go on, and in
//! the end every side effect happened under exactly one idempotency key —
//! no step was performed twice as a new attempt, none was lost.

use ripcord_tests::http::TestServer;
use ripcord_tests::{Cluster, OPERATOR, eventually, step_states, text};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn runbook(server: &TestServer) -> String {
    let mut steps = String::from("steps:\n  - {id: s0, action: noop}\n");
    // Three chains of four effects each, joined at the end.
    for chain in 0..3 {
        for i in 0..4 {
            let id = format!("c{chain}-{i}");
            let needs = if i == 0 { "s0".to_string() } else { format!("c{chain}-{}", i - 1) };
            let step = if i % 2 == 0 {
                format!(
                    "  - {{id: {id}, needs: [{needs}], action: http.check, with: {{url: \"{}\"}}}}\n",
                    server.url(&format!("/slow/{id}"))
                )
            } else {
                format!(
                    "  - {{id: {id}, needs: [{needs}], action: notify, with: {{webhook: \"{}\", text: \"{id} of {{{{ run.id }}}}\"}}}}\n",
                    server.url(&format!("/slow/hook/{id}"))
                )
            };
            steps.push_str(&step);
        }
    }
    steps.push_str(&format!(
        "  - {{id: end, needs: [c0-3, c1-3, c2-3], action: notify, with: {{webhook: \"{}\", text: done}}}}\n",
        server.url("/slow/hook/end")
    ));
    format!("id: crash\ntitle: crash test\nrto: 10m\n{steps}")
}

#[test]
fn sigkill_at_random_moments_never_repeats_or_loses_a_side_effect() {
    let server = TestServer::start();
    let mut cluster = Cluster::start(&[]);
    let file = cluster.path().join("crash.yaml");
    std::fs::write(&file, runbook(&server)).unwrap();
    let file = file.to_str().unwrap().to_string();
    let effects: Vec<String> =
        (0..3).flat_map(|c| (0..4).map(move |i| format!("c{c}-{i}"))).chain(["end".to_string()]).collect();

    let mut runs = vec![cluster.start_run(&file, &[])];
    let mut rng =
        fastrand::Rng::with_seed(std::env::var("RIPCORD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7));
    let kills = 24;
    for _ in 0..kills {
        // Keep a run going so that every kill lands during one.
        let busy = runs.iter().any(|r| cluster.view(r).map(|v| v["status"] == "running").unwrap_or(true));
        if !busy {
            runs.push(cluster.start_run(&file, &[]));
        }
        std::thread::sleep(Duration::from_millis(rng.u64(0..450)));
        cluster.restart_coordinator();
    }

    for run in &runs {
        let v = eventually(&format!("run {run} to finish"), || {
            let v = cluster.view(run)?;
            if v["status"] == "running" { Err(step_states(&v)) } else { Ok(v) }
        });
        assert_eq!(v["status"], "succeeded", "run {run}: {}", step_states(&v));
    }

    // Every effect of every run under exactly one key, attempt 1.
    let keys = server.keys();
    let mut duplicates = 0;
    for run in &runs {
        let seen: BTreeSet<&String> = keys.keys().filter(|k| k.starts_with(&format!("{run}/"))).collect();
        let expected: BTreeSet<String> = effects.iter().map(|s| format!("{run}/{s}/1")).collect();
        let seen_owned: BTreeSet<String> = seen.iter().map(|s| s.to_string()).collect();
        assert_eq!(seen_owned, expected, "run {run}: effects performed under unexpected keys");
        duplicates += seen.iter().map(|k| keys[*k] - 1).sum::<usize>();
    }
    // Repeats of a committed-but-unacknowledged effect carry the same key;
    // the receiver recognises them. Report how many there were.
    eprintln!(
        "{} runs, {kills} kills, {} effects, {duplicates} repeated deliveries (same key)",
        runs.len(),
        runs.len() * effects.len()
    );
    let per_path: BTreeMap<String, usize> = server.requests().iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.key.clone().unwrap_or_default()).or_default() += 1;
        m
    });
    assert!(per_path.keys().all(|k| !k.is_empty()), "every request carried an idempotency key");
    assert_every_restart_resumed_the_unfinished_runs(&cluster, kills);
    let out = cluster.cli(OPERATOR, &["runs", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// The `run=` field of every line of `log` holding `message`.
fn runs_logged(log: &str, message: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("run=")).map(str::to_string))
        .collect()
}

/// Each coordinator process logs to its own file (`coordinator-N.log`, N
/// from 0). The runs unfinished when process N-1 was killed are those a
/// process before N logged as started and none logged as finished; process
/// N must log "resuming run" for each of them and for no other. The one
/// excuse for an unfinished-looking run that is not resumed: it finished in
/// the very commit before the kill, too late to log "run finished" — then
/// no later process may mention it either (a run that really was left
/// behind would be resumed by a later restart or never finish).
fn assert_every_restart_resumed_the_unfinished_runs(cluster: &Cluster, kills: usize) {
    let logs: Vec<String> = (0..=kills)
        .map(|n| std::fs::read_to_string(cluster.path().join(format!("coordinator-{n}.log"))).unwrap_or_default())
        .collect();
    assert!(logs.iter().all(|l| !l.is_empty()), "one log per coordinator process");
    let mut started = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let mut resumptions = 0;
    for n in 1..logs.len() {
        started.extend(runs_logged(&logs[n - 1], "run started"));
        finished.extend(runs_logged(&logs[n - 1], "run finished"));
        let unfinished: BTreeSet<String> = started.difference(&finished).cloned().collect();
        let resumed = runs_logged(&logs[n], "resuming run");
        assert!(
            resumed.is_subset(&unfinished),
            "restart {n} resumed runs that were not unfinished: {:?}",
            resumed.difference(&unfinished).collect::<Vec<_>>()
        );
        for run in unfinished.difference(&resumed) {
            let later = logs[n..].iter().any(|l| runs_logged(l, "").contains(run));
            assert!(!later, "restart {n} did not resume run {run}, which was unfinished and went on later");
            // Finished in its last commit before the kill: count it so.
            finished.insert(run.clone());
        }
        resumptions += resumed.len();
    }
    assert!(resumptions > 0, "no restart landed during a run");
}
