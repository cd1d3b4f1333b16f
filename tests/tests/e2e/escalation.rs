//! The escalation policy end to end, time compressed by config (tiers of
//! seconds): each tier reaches its roles' Slack and JSON webhooks (a
//! recording server) and pages PagerDuty (a fake of Events API v2) once,
//! across a coordinator kill; a tier that came due while the coordinator
//! was down fires when it is back; an ack acknowledges the incident and
//! stops the later tiers; the run's end resolves it. No routing key,
//! webhook URL or token appears in the log, the store, the reports or
//! `show`.

use ripcord_tests::http::TestServer;
use ripcord_tests::pagerduty_fake::FakePagerDuty;
use ripcord_tests::{Cluster, CoordinatorExtras, OPERATOR, eventually, text};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Tier 2's time after the incident: long enough that the kill below
/// comes before it.
const TIER2: Duration = Duration::from_secs(6);

const RUNBOOK: &str = "id: gated\ntitle: a recovery waiting for a person\nsteps:\n  - id: gate\n    action: approve\n";

struct Setup {
    sink: TestServer,
    pd: FakePagerDuty,
    routing_key: String,
    extras: CoordinatorExtras,
}

/// Kim is on call (Slack, JSON webhook, PagerDuty), Lee the DevOps lead
/// (Slack, PagerDuty), Choi the CTO (Slack). Tiers at 0 s, 6 s and 12 s.
fn setup(dir: &Path) -> Setup {
    let sink = TestServer::start();
    let pd = FakePagerDuty::start();
    let routing_key = pd.routing_key();
    fs::write(dir.join("pd.key"), format!("{routing_key}\n")).unwrap();
    for who in ["kim", "lee", "choi"] {
        fs::write(dir.join(format!("{who}-slack.url")), sink.url(&format!("/slack/{who}/T0KEN-{who}"))).unwrap();
    }
    fs::write(dir.join("kim-hook.url"), sink.url("/hook/kim?sig=S1GNATURE")).unwrap();
    let d = dir.display();
    let toml = format!(
        r#"
[contacts.kim]
name = "Kim"
roles = ["on_call"]
slack_webhook_file = "{d}/kim-slack.url"
webhook_file = "{d}/kim-hook.url"
pagerduty_routing_key_file = "{d}/pd.key"

[contacts.lee]
name = "Lee"
roles = ["devops_lead"]
slack_webhook_file = "{d}/lee-slack.url"
pagerduty_routing_key_file = "{d}/pd.key"

[contacts.choi]
name = "Choi"
roles = ["cto"]
slack_webhook_file = "{d}/choi-slack.url"

[escalation]
notices_to = ["on_call"]
on = ["run_started", "run_finished", "acknowledged"]
pagerduty_url = "{pd}"

[[escalation.tiers]]
after = "0s"
to = ["on_call"]
text = "on-call"

[[escalation.tiers]]
after = "{t2}s"
to = ["devops_lead"]
text = "the DevOps lead"

[[escalation.tiers]]
after = "12s"
to = ["cto"]
text = "the CTO"
"#,
        pd = pd.base_url(),
        t2 = TIER2.as_secs(),
    );
    Setup { sink, pd, routing_key, extras: CoordinatorExtras { toml, env: vec![] } }
}

/// How many requests each path of the sink got for notice `name` of `run`.
fn arrivals(sink: &TestServer, run: &str, name: &str) -> Vec<String> {
    let mut paths: Vec<String> = sink
        .requests()
        .into_iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(&format!("{run}/{name}/"))))
        .map(|r| r.path.split('?').next().unwrap_or_default().split('/').take(3).collect::<Vec<_>>().join("/"))
        .collect();
    paths.sort();
    paths
}

/// The PagerDuty events for `run`, as their actions.
fn pages(pd: &FakePagerDuty, run: &str) -> Vec<String> {
    pd.events()
        .iter()
        .filter(|e| e.dedup_key() == Some(run) && e.status == 202)
        .filter_map(|e| e.event_action().map(str::to_string))
        .collect()
}

fn events<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["events"].as_array().map_or(vec![], |es| es.iter().filter(|e| e["kind"] == kind).collect())
}

#[test]
fn tiers_fire_once_across_a_kill_a_tier_due_while_down_fires_on_start_ack_stops_the_rest_and_the_end_resolves() {
    let files = tempfile::tempdir().unwrap();
    let s = setup(files.path());
    let mut cluster = Cluster::start_with(&[], s.extras.clone());
    let file = cluster.path().join("gated.yaml");
    fs::write(&file, RUNBOOK).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);
    let started = Instant::now();

    // Tier 1 at once: Kim's Slack and JSON webhook, and a PagerDuty trigger.
    eventually("tier 1 to reach kim and page", || {
        let got = (arrivals(&s.sink, &run, "@escalate.1"), pages(&s.pd, &run));
        if got.0.len() == 2 && got.1.len() == 1 { Ok(()) } else { Err(format!("{got:?}")) }
    });
    assert_eq!(arrivals(&s.sink, &run, "@escalate.1"), vec!["/hook/kim", "/slack/kim"]);
    let hook = s.sink.requests().into_iter().find(|r| r.path.starts_with("/hook/kim") && r.body.contains("@escalate.1"));
    let body: serde_json::Value = serde_json::from_str(&hook.expect("the JSON webhook").body).unwrap();
    assert_eq!((body["run"].as_str(), body["topic"].as_str(), body["page"].as_str()), (Some(&*run), Some("escalation"), Some("trigger")));
    let incident = s.pd.incident(&run).expect("one incident, keyed by the run");
    assert!(incident.summary.contains("escalation tier 1") && incident.summary.contains("on-call"), "{}", incident.summary);
    cluster.wait_run(&run, "tier 1's delivery in the log", |v| {
        events(v, "notified").iter().any(|e| e["notice"] == "@escalate.1")
    });

    // Down before tier 2 is due, back after.
    cluster.kill_coordinator();
    let first_log = cluster.coordinator.log_text();
    assert!(started.elapsed() < TIER2, "the machine was too slow to kill the coordinator before tier 2");
    assert!(arrivals(&s.sink, &run, "@escalate.2").is_empty(), "tier 2 came before the kill");
    // The scenario, not a synchronisation: the coordinator stays down
    // while tier 2 comes due.
    std::thread::sleep((TIER2 + Duration::from_millis(500)).saturating_sub(started.elapsed()));
    cluster.start_coordinator_again();

    eventually("tier 2 to fire once the coordinator is back", || {
        let got = (arrivals(&s.sink, &run, "@escalate.2"), pages(&s.pd, &run));
        if got.0.len() == 1 && got.1.len() == 2 { Ok(()) } else { Err(format!("{got:?}")) }
    });
    assert_eq!(arrivals(&s.sink, &run, "@escalate.2"), vec!["/slack/lee"]);
    assert_eq!(arrivals(&s.sink, &run, "@escalate.1"), vec!["/hook/kim", "/slack/kim"], "tier 1 was not sent again");
    assert_eq!(s.pd.incident(&run).unwrap().triggers, 2, "tier 2 merged into the run's one incident");

    // The ack: PagerDuty acknowledges, Kim and Lee hear it, tier 3 is not sent.
    let out = cluster.cli(OPERATOR, &["ack", &run, "--note", "on it"]);
    assert!(out.status.success(), "{}", text(&out).1);
    eventually("the incident to be acknowledged", || {
        let p = pages(&s.pd, &run);
        if p == ["trigger", "trigger", "acknowledge"] { Ok(()) } else { Err(format!("{p:?}")) }
    });
    let v = cluster.wait_run(&run, "tier 3 recorded as not sent", |v| !events(v, "escalation_suppressed").is_empty());
    assert_eq!(events(&v, "escalation_suppressed")[0]["tier"], 3);
    assert!(arrivals(&s.sink, &run, "@escalate.3").is_empty(), "tier 3 reached someone");
    eventually("the ack to reach those paged", || {
        let got = arrivals(&s.sink, &run, "@acknowledged");
        if got == ["/hook/kim", "/slack/kim", "/slack/lee"] { Ok(()) } else { Err(format!("{got:?}")) }
    });

    // The end resolves the incident.
    let out = cluster.cli(OPERATOR, &["approve", &run, "gate"]);
    assert!(out.status.success(), "{}", text(&out).1);
    eventually("the incident to be resolved", || {
        let p = pages(&s.pd, &run);
        if p.last().map(String::as_str) == Some("resolve") { Ok(()) } else { Err(format!("{p:?}")) }
    });
    assert_eq!(pages(&s.pd, &run), ["trigger", "trigger", "acknowledge", "resolve"]);
    let v = cluster.wait_run(&run, "the end's notice delivered", |v| {
        events(v, "notified").iter().any(|e| e["notice"].as_str().is_some_and(|n| n.starts_with("@finished.")))
    });
    let finished = events(&v, "notified").into_iter().find(|e| e["notice"].as_str().unwrap().starts_with("@finished.")).unwrap();
    let reached: Vec<&str> = finished["reached"].as_array().unwrap().iter().filter_map(|r| r.as_str()).collect();
    // Kim and Lee share one PagerDuty service: one resolve.
    assert_eq!(reached, ["kim (pagerduty resolve)", "kim (slack)", "kim (webhook)", "lee (slack)"]);

    // No secret anywhere.
    let secrets = [s.routing_key.as_str(), "T0KEN-kim", "T0KEN-lee", "T0KEN-choi", "S1GNATURE"];
    let (show, _) = text(&cluster.cli(OPERATOR, &["show", &run]));
    let (json, _) = text(&cluster.cli(OPERATOR, &["show", &run, "--json"]));
    let (contacts, _) = text(&cluster.cli(OPERATOR, &["contacts"]));
    let log = first_log + &cluster.coordinator.log_text();
    for (what, t) in [("show", &show), ("show --json", &json), ("contacts", &contacts), ("the coordinator log", &log)] {
        for secret in secrets {
            assert!(!t.contains(secret), "{what} shows {secret}:\n{t}");
        }
    }
    cluster.assert_not_stored(&run, &secrets);
}
