//! Notices are effects: committed with the transition that causes them and
//! delivered once, whatever happens to the coordinator in between.

use ripcord_tests::http::TestServer;
use ripcord_tests::{Cluster, OPERATOR, eventually, text};
use std::collections::BTreeMap;

const HOOK: &str = "/hook/T0KEN-NOTICE-42";

fn runbook(server: &TestServer) -> String {
    format!(
        r#"id: notices
title: notices
params:
  hook: {{ default: "{hook}", secret: true }}
notify:
  webhook: "{{{{ params.hook }}}}"
  on: [run_started, run_finished]
steps:
  - id: gate
    action: approve
"#,
        hook = server.url(HOOK)
    )
}

/// The notices of `run` the webhook received: idempotency key → arrivals.
fn notices_of(server: &TestServer, run: &str) -> BTreeMap<String, usize> {
    server.keys().into_iter().filter(|(k, _)| k.starts_with(&format!("{run}/@"))).collect()
}

/// How many `notified` events the run's log has for the notice `name`.
fn delivered(v: &serde_json::Value, name: &str) -> usize {
    v["events"].as_array().map_or(0, |es| es.iter().filter(|e| e["kind"] == "notified" && e["notice"] == name).count())
}

#[test]
fn a_notice_in_flight_when_the_coordinator_dies_is_delivered_once_under_one_key() {
    let server = TestServer::start();
    server.hold(HOOK);
    let mut cluster = Cluster::start(&[]);
    let file = cluster.path().join("notices.yaml");
    std::fs::write(&file, runbook(&server)).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);

    // The run-started notice was committed and is on the wire, unanswered.
    let started = format!("{run}/@started/0");
    eventually("the run-started notice to arrive", || {
        if notices_of(&server, &run).contains_key(&started) { Ok(()) } else { Err(format!("{:?}", server.keys())) }
    });
    cluster.restart_coordinator();
    server.release(HOOK);

    let v = cluster.wait_run(&run, "the started notice delivered", |v| delivered(v, "@started") == 1);
    assert_eq!(v["status"], "running");
    let out = cluster.cli(OPERATOR, &["approve", &run, "gate"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v = cluster.wait_run(&run, "the finished notice delivered", |v| {
        v["status"] == "succeeded"
            && v["events"].as_array().is_some_and(|es| {
                es.iter().any(|e| {
                    e["kind"] == "notified" && e["notice"].as_str().is_some_and(|n| n.starts_with("@finished."))
                })
            })
    });

    // Two notices, each under one key. The started one arrived twice: the
    // first delivery was cut off by the kill, the second is a repeat the
    // receiver recognises by its key. The run's log says "sent" once each.
    let notices = notices_of(&server, &run);
    let keys: Vec<&String> = notices.keys().collect();
    assert_eq!(keys.len(), 2, "{notices:?}");
    assert_eq!(notices[&started], 2, "{notices:?}");
    let finished = keys.iter().find(|k| k.contains("/@finished.")).expect("a finished notice");
    assert_eq!(notices[*finished], 1, "{notices:?}");
    assert_eq!(delivered(&v, "@started"), 1);
    // The notices (the end-of-run report summary, keyed RUN/report, aside).
    let bodies: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == HOOK && r.key.as_deref() != Some(format!("{run}/report").as_str()))
        .map(|r| r.body)
        .collect();
    assert!(bodies.iter().all(|b| b.contains(&format!("run {}", &run[..8]))), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("succeeded")), "{bodies:?}");

    // The webhook is a secret param: never in what the run shows.
    for args in [vec!["show", run.as_str()], vec!["show", run.as_str(), "--json"]] {
        let (stdout, stderr) = text(&cluster.cli(OPERATOR, &args));
        assert!(!stdout.contains("T0KEN") && !stderr.contains("T0KEN"), "{args:?} shows the webhook: {stdout}");
    }
}
