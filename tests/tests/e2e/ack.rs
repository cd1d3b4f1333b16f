//! `ripcord ack`: an acknowledged run's later escalation tiers are not
//! sent, the tier's timer still fires and the run's log says so, and
//! `show` says who acknowledged it.

use ripcord_tests::http::TestServer;
use ripcord_tests::{Cluster, OPERATOR, VIEWER, eventually, text};

const HOOK: &str = "/hook/ack";

/// Tiers 1s and 8s after the incident (the run's start); the gate keeps
/// the run waiting, so nothing but the ack stops the tiers.
fn runbook(server: &TestServer) -> String {
    format!(
        r#"id: acked
title: acked
notify:
  webhook: "{hook}"
  on: [escalation]
  escalate:
    - {{ after: 1s, text: leads }}
    - {{ after: 8s, text: everyone }}
steps:
  - id: gate
    action: approve
"#,
        hook = server.url(HOOK)
    )
}

/// The events of kind `kind` in a run view.
fn events<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["events"].as_array().map_or(vec![], |es| es.iter().filter(|e| e["kind"] == kind).collect())
}

#[test]
fn an_ack_between_two_tiers_stops_the_second_and_show_says_who_acked() {
    let server = TestServer::start();
    let cluster = Cluster::start(&[]);
    let file = cluster.path().join("acked.yaml");
    std::fs::write(&file, runbook(&server)).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let tier = |n: usize| format!("{run}/@escalate.{n}/0");

    eventually("tier 1 to arrive", || {
        if server.keys().contains_key(&tier(1)) { Ok(()) } else { Err(format!("{:?}", server.keys())) }
    });
    // Acknowledging is acting on the run: a viewer may not.
    let out = cluster.cli(VIEWER, &["ack", &run]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("may not call Control/AckRun"), "{stderr}");

    let out = cluster.cli(OPERATOR, &["ack", &run, "--note", "on it"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), format!("acknowledged run {run}"));

    // Tier 2's time has passed once its timer's event is in the log.
    let v = cluster.wait_run(&run, "tier 2 recorded as not sent", |v| !events(v, "escalation_suppressed").is_empty());
    let suppressed = events(&v, "escalation_suppressed");
    assert_eq!(suppressed.len(), 1, "{suppressed:?}");
    assert_eq!(suppressed[0]["tier"], 2);
    assert_eq!(suppressed[0]["by"]["name"], OPERATOR);
    assert!(!server.keys().contains_key(&tier(2)), "tier 2 was sent: {:?}", server.keys());
    assert_eq!(server.keys().get(&tier(1)), Some(&1), "{:?}", server.keys());
    assert_eq!(events(&v, "escalated").len(), 1, "only tier 1 escalated");
    let acked = events(&v, "run_acknowledged");
    assert_eq!((acked.len(), acked[0]["note"].as_str()), (1, Some("on it")));
    assert_eq!(v["acknowledged"]["by"]["name"], OPERATOR);
    assert_eq!(v["acknowledged"]["note"], "on it");
    assert_eq!(v["status"], "running");

    let (stdout, _) = text(&cluster.cli(OPERATOR, &["show", &run]));
    let line = stdout.lines().find(|l| l.starts_with("acked:")).unwrap_or_else(|| panic!("no acked line:\n{stdout}"));
    assert!(line.contains(&format!("by {OPERATOR} (operator) at ")) && line.ends_with(": on it"), "{line}");

    // Once is enough: a second ack is refused and says by whom.
    let out = cluster.cli(OPERATOR, &["ack", &run]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("run {run} is already acknowledged by {OPERATOR} (operator) at ")), "{stderr}");
}
