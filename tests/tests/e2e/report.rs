//! `ripcord report`: the report of a real run, checked field by field
//! against the run's own log (`show --json`), in every format, with the
//! HTML opened in a real browser (headless Chromium) and no secret in any
//! of them.

use ripcord_engine::clock::rfc3339;
use ripcord_tests::http::TestServer;
use ripcord_tests::{Cluster, OPERATOR, step, text};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;

const SECRET: &str = "T0KEN-REPORT-SECRET-9";

fn runbook(server: &TestServer) -> String {
    format!(
        r#"id: rep
title: report end to end
rto: 5m
params:
  base: {{ default: "{base}" }}
  hook: {{ default: "{hook}", secret: true }}
notify:
  webhook: "{{{{ params.hook }}}}"
  on: [run_started, run_finished, over_budget]
steps:
  - id: probe
    action: http.check
    with: {{ url: "{{{{ params.base }}}}/flaky" }}
    retry: {{ attempts: 3, backoff: 200ms }}
    budget: 30s
  - id: slow
    needs: [probe]
    action: wait
    with: {{ duration: 1200ms }}
    budget: 300ms
  - id: gate
    needs: [slow]
    action: approve
    with: {{ message: "healthy?" }}
  - id: check
    needs: [gate]
    action: checklist
    with:
      items:
        - text: paged the owner
"#,
        base = server.url(""),
        hook = server.url(&format!("/hook/{SECRET}")),
    )
}

/// The events of `kind` (for `step`, if given) in a `show --json` view.
fn events<'a>(v: &'a Value, kind: &str, step: Option<&str>) -> Vec<&'a Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && step.is_none_or(|s| e["step"] == s))
        .collect()
}

fn time(ms: &Value) -> Value {
    Value::String(rfc3339(ms.as_i64().unwrap_or_else(|| panic!("not a time: {ms}"))))
}

/// The DOM headless Chromium builds from `file`. Fails (never skips) when
/// Chromium is missing or cannot start: `scripts/test` installs it.
fn chromium_dom(file: &Path, profile: &Path) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args(["--headless", "--disable-gpu", "--no-sandbox"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): install Debian's chromium package (scripts/test does)"));
    let (dom, stderr) = text(&out);
    assert!(
        out.status.success() && !dom.trim().is_empty(),
        "headless chromium did not render the report (exit {:?}); install Debian's chromium package (scripts/test does): {stderr}",
        out.status.code()
    );
    dom
}

#[test]
fn a_report_says_what_the_run_log_says_in_every_format_and_renders_in_a_browser() {
    let server = TestServer::start();
    server.fail_next("/flaky", 1);
    let cluster = Cluster::start(&[]);
    let file = cluster.path().join("rep.yaml");
    fs::write(&file, runbook(&server)).unwrap();
    let run = cluster.start_run(file.to_str().unwrap(), &[]);

    cluster.wait_run(&run, "gate waiting", |v| step(v, "gate")["status"] == "waiting");
    let note = "add the <i>dashboard</i> link & owner";
    let out = cluster.cli(OPERATOR, &["approve", &run, "gate", "--note", note]);
    assert!(out.status.success(), "{:?}", text(&out));
    cluster.wait_run(&run, "checklist waiting", |v| step(v, "check")["status"] == "waiting");
    let out = cluster.cli(OPERATOR, &["approve", &run, "check", "--item", "1", "--note", "paged"]);
    assert!(out.status.success(), "{:?}", text(&out));
    cluster.wait_run(&run, "the finished notice sent", |v| {
        v["status"] == "succeeded"
            && v["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "notified" && e["notice"].as_str().is_some_and(|n| n.starts_with("@finished")))
    });

    let show = cluster.cli(OPERATOR, &["show", &run, "--json"]);
    assert!(show.status.success(), "{:?}", text(&show));
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    let out = cluster.cli(OPERATOR, &["report", &run, "--format", "json"]);
    let (js, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let r: Value = serde_json::from_str(&js).unwrap_or_else(|e| panic!("{e}: {js}"));

    // The run, its objectives and its times.
    assert_eq!(r["run_id"], v["run_id"]);
    assert_eq!(r["kind"], "incident");
    assert_eq!(r["title"], "Incident report: report end to end");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["incident_at"], time(&v["incident_at_ms"]));
    assert_eq!(r["started_at"], time(&v["created_at_ms"]));
    assert_eq!(r["recovered_at"], time(&v["recovered_at_ms"]));
    assert_eq!(r["finished_at"], time(&v["finished_at_ms"]));
    let recovered = events(&v, "recovered", None);
    assert_eq!(recovered.len(), 1);
    assert_eq!(r["rto"]["achieved_ms"], recovered[0]["since_incident_ms"]);
    assert_eq!(r["rto"]["target_ms"], recovered[0]["rto_ms"]);
    assert_eq!((r["rto"]["target_ms"].as_i64(), r["rto"]["met"].as_bool()), (Some(300_000), Some(true)));
    assert_eq!((r["rpo"]["achieved_ms"].is_null(), r["rpo"]["target_ms"].is_null()), (true, true), "{}", r["rpo"]);

    // Each step: its times, attempts and failures are the log's.
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for s in steps {
        let id = s["id"].as_str().unwrap();
        let sv = step(&v, id);
        let ended = events(&v, "step_succeeded", Some(id));
        assert_eq!(ended.len(), 1, "{id}");
        assert_eq!(s["duration_ms"], ended[0]["took_ms"], "{id}");
        assert_eq!(s["finished_at"], time(&ended[0]["at"]), "{id}");
        assert_eq!(s["started_at"], time(&sv["started_at_ms"]), "{id}");
        assert_eq!(s["status"], "succeeded", "{id}");
        assert_eq!(s["attempts"], sv["attempt"], "{id}");
        assert_eq!(s["budget_ms"], sv["budget_ms"], "{id}");
        assert_eq!(s["over_budget"], sv["over_budget"], "{id}");
        let retrying = events(&v, "step_retrying", Some(id));
        let failures = s["failures"].as_array().unwrap();
        assert_eq!(failures.len(), retrying.len(), "{id}");
        for (f, e) in failures.iter().zip(&retrying) {
            assert_eq!((&f["attempt"], &f["error"], &f["at"]), (&e["attempt"], &e["error"], &time(&e["at"])), "{id}");
        }
    }
    let rs = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap();
    assert_eq!((rs("probe")["attempts"].as_u64(), rs("probe")["retries"].as_u64()), (Some(2), Some(1)));
    assert_eq!(rs("slow")["over_budget"], true);
    assert_eq!(events(&v, "over_budget", Some("slow"))[0]["budget_ms"], rs("slow")["budget_ms"]);
    assert!(rs("slow")["duration_ms"].as_i64().unwrap() >= 1_200);

    // Approvals and checklist answers: who and when.
    let approval = &step(&v, "gate")["approval"];
    let item = &step(&v, "check")["checklist"][0]["confirmed"];
    let answers = r["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        (&answers[0]["step"], &answers[0]["by"], &answers[0]["note"]),
        (&"gate".into(), &approval["by"], &approval["note"])
    );
    assert_eq!(answers[0]["at"], time(&approval["at"]));
    assert_eq!((&answers[1]["step"], answers[1]["item"].as_u64()), (&"check".into(), Some(1)));
    assert_eq!((&answers[1]["by"], &answers[1]["at"]), (&item["by"], &time(&item["at"])));

    // The notices sent are the `notified` events.
    let notified: Vec<(Value, Value)> =
        events(&v, "notified", None).iter().map(|e| (e["notice"].clone(), time(&e["at"]))).collect();
    let sent: Vec<(Value, Value)> =
        r["notices"].as_array().unwrap().iter().map(|n| (n["name"].clone(), n["at"].clone())).collect();
    assert_eq!(sent, notified);
    let topics: Vec<&str> = r["notices"].as_array().unwrap().iter().map(|n| n["topic"].as_str().unwrap()).collect();
    assert_eq!(topics, ["run_started", "over_budget", "run_finished"]);

    // Action items, as an array an issue tracker imports.
    let approved = events(&v, "approved", Some("gate"))[0];
    let confirmed = events(&v, "confirmed", Some("check"))[0];
    let items = r["action_items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["over-budget:slow".to_string(), format!("note:{}", approved["seq"]), format!("note:{}", confirmed["seq"])]
    );
    assert!(items.iter().all(|a| a["title"].is_string() && a["body"].is_string() && a["labels"].is_array()));
    assert_eq!(r["playbook_changes"].as_array().unwrap().len(), items.len());

    // Markdown, to stdout by default.
    let out = cluster.cli(OPERATOR, &["report", &run]);
    let (md, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(md.starts_with("# Incident report: report end to end\n"), "{md}");
    assert!(md.contains(&run) && md.contains(r["rto"]["summary"].as_str().unwrap()), "{md}");
    assert!(md.contains("| slow | wait | succeeded |") && md.contains("OVER BUDGET"), "{md}");
    assert!(md.contains("## Action items") && md.contains("## Playbook changes needed"), "{md}");
    assert!(md.contains(note), "{md}");

    // HTML, to a file, rendered by a real browser.
    let page = cluster.path().join("report.html");
    let out = cluster.cli(OPERATOR, &["report", &run[..8], "--format", "html", "-o", page.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.is_empty(), "a report written to a file is not printed");
    let html = fs::read_to_string(&page).unwrap();
    assert!(html.contains("add the &lt;i&gt;dashboard&lt;/i&gt; link &amp; owner") && !html.contains("<i>"), "{html}");
    let dom = chromium_dom(&page, &cluster.path().join("chromium"));
    assert!(dom.contains(&run), "the run id is not in the rendered page: {dom}");
    assert!(dom.contains(r["rto"]["summary"].as_str().unwrap()), "the RTO line is not in the rendered page: {dom}");
    assert!(dom.contains("<svg"), "no SVG in the rendered page: {dom}");
    assert_eq!(dom.matches("class=\"bar\"").count(), 4, "one bar per step: {dom}");

    // No secret in any of them.
    for (format, body) in [("json", &js), ("md", &md), ("html", &html), ("rendered html", &dom)] {
        assert!(!body.contains(SECRET), "a secret param leaked into the {format} report: {body}");
    }

    // A format that does not exist is a usage error.
    let out = cluster.cli(OPERATOR, &["report", &run, "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("unknown report format \"pdf\" (use md, html or json)"), "{:?}", text(&out));
}
