//! Drills end to end (issue 10): the environment guard that keeps a drill
//! away from `prod`, a staging drill of mongo-pitr that cleans up after
//! itself and leaves its report, and the scheduler through the CLI.
//!
//! The cloud parts are `cloud_setup.rs`'s: the fake Atlas, moto's Secrets
//! Manager, the fake Kubernetes API, two nx-27017 servers and the stand-in
//! chat API, with `[environments.NAME]` sections added to the coordinator's
//! config.

use ripcord_tests::atlas_fake::{PROJECT, SOURCE};
use ripcord_tests::http::TestServer;
use ripcord_tests::services::Moto;
use ripcord_tests::{AgentSpec, Cluster, CoordinatorExtras, OPERATOR, Pki, eventually, step, step_states, text};
use serde_json::{Value as J, json};
use std::path::{Path, PathBuf};
use std::process::Output;

use super::cloud_setup::*;

const STAGING_CLUSTER: &str = "chat-staging";
const STAGING_SECRET: &str = "chat-app/staging/database";
const STAGING_NS: &str = "staging";
/// The secret part of the staging webhook's URL.
const WEBHOOK_TOKEN: &str = "T0KEN-never-shown";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `ripcord ARGS… RUNBOOK --drill --env staging -p K=V…` as the operator.
fn drill_cli(cluster: &Cluster, command: &[&str], runbook: &str, params: &[(&str, &str)]) -> Output {
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend([runbook.to_string(), "--drill".into(), "--env".into(), "staging".into()]);
    for (k, v) in params {
        args.extend(["-p".to_string(), format!("{k}={v}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.cli(OPERATOR, &args)
}

/// The runs the coordinator lists (`ripcord runs --json`).
fn runs(cluster: &Cluster) -> Vec<J> {
    let out = cluster.cli(OPERATOR, &["runs", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let listed: J = serde_json::from_slice(&out.stdout).expect("runs JSON");
    listed.as_array().cloned().expect("an array")
}

/// The report files of `run` under the coordinator's data directory.
fn report_path(cluster: &Cluster, run: &str, ext: &str) -> PathBuf {
    cluster.path().join("data").join("reports").join(format!("{run}.{ext}"))
}

/// Waits until the coordinator has published `run`'s report (its
/// `RUN.posted` marker).
fn wait_report(cluster: &Cluster, run: &str) {
    let marker = report_path(cluster, run, "posted");
    eventually(&format!("report of {run} published"), || {
        if marker.exists() { Ok(()) } else { Err(format!("no {}", marker.display())) }
    });
}

/// Each report file of `run`, read, with its name.
fn report_files(cluster: &Cluster, run: &str) -> Vec<(String, String)> {
    ["md", "html", "json"]
        .iter()
        .map(|ext| {
            let p = report_path(cluster, run, ext);
            let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), t)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The guard
// ---------------------------------------------------------------------------

/// A drill that must be refused: what it touches, its runbook and params,
/// and the refusals expected (step and resource).
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<String>);

#[test]
fn a_drill_touching_prod_is_refused_at_start_and_nothing_is_touched() {
    let envs = format!(
        "\n[environments.staging]\nagents = \"env=staging\"\natlas_project = \"{PROJECT}\"\n\
         atlas_clusters = [\"{STAGING_CLUSTER}\"]\nsecrets = [\"{STAGING_SECRET}\"]\nnamespaces = [\"{STAGING_NS}\"]\n\n\
         [environments.prod]\nagents = \"env=prod\"\natlas_project = \"{PROJECT}\"\natlas_clusters = [\"{SOURCE}\"]\n\
         secrets = [\"{SECRET_ID}\"]\nnamespaces = [\"{NS}\"]\n"
    );
    let mut s = setup_with(Switch::Secret, |_| {}, &envs);
    // Staging's own resources, in the same fakes.
    s.atlas.add_cluster(STAGING_CLUSTER, "7.0", "US_EAST_1", "M10", 3, "IDLE");
    s.moto.create_secret(STAGING_SECRET, &json!({"mongo_uri": "mongodb://127.0.0.1:1/", "other": "keep"}).to_string());
    s.kube.add_deployment(STAGING_NS, DEPLOYMENT, 2, &[(DEPLOYMENT, &[("PORT", "8080")])]);
    // A prod Redis host's agent (it needs no Redis: nothing may reach it).
    let prod_agent = AgentSpec::new("cache-prod").label("env", "prod").label("role", "redis");
    s.cluster.start_agent(&prod_agent);
    s.cluster.wait_connected("cache-prod");

    let (health, webhook) = (s.api.url("/health"), s.hook.url("/hooks/oncall"));
    let staging: Vec<(&str, &str)> = vec![
        ("project_id", PROJECT),
        ("cluster", STAGING_CLUSTER),
        ("secret_id", STAGING_SECRET),
        ("namespace", STAGING_NS),
        ("deployment", DEPLOYMENT),
        ("health_url", &health),
        ("webhook", &webhook),
    ];
    let with = |k: &str, v: &'static str| -> Vec<(&str, &str)> {
        staging.iter().map(|(a, b)| if *a == k { (*a, v) } else { (*a, *b) }).collect()
    };
    // What a refused drill must leave as it found it.
    let state = || {
        (
            s.moto.secret_value(SECRET_ID),
            s.moto.versions(SECRET_ID),
            s.moto.secret_value(STAGING_SECRET),
            s.moto.versions(STAGING_SECRET),
            s.kube.deployment(NS, DEPLOYMENT),
            s.kube.deployment(STAGING_NS, DEPLOYMENT),
        )
    };
    let before = state();
    let redis_params = [("agents", "env=prod"), ("webhook", webhook.as_str())];

    let cases: [Case; 3] = [
        (
            "(a) the prod secret",
            "mongo-pitr",
            with("secret_id", SECRET_ID),
            ["switch-secret", "restore-secret"]
                .iter()
                .map(|st| format!("step {st}: secret {SECRET_ID} belongs to protected environment prod"))
                .collect(),
        ),
        (
            "(b) the prod namespace",
            "mongo-pitr",
            with("namespace", NS),
            ["restart", "rollout-wait", "restart-back"]
                .iter()
                .map(|st| format!("step {st}: Kubernetes namespace {NS} belongs to protected environment prod"))
                .collect(),
        ),
        (
            "(c) a prod agent",
            "redis-aof",
            redis_params.to_vec(),
            vec!["step fix: agent cache-prod (env=prod,role=redis) belongs to protected environment prod".into()],
        ),
    ];
    for (case, runbook, params, expected) in &cases {
        let out = drill_cli(&s.cluster, &["run"], runbook, params);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{case}: the drill started: {stdout}");
        for e in expected {
            assert!(stderr.contains(e.as_str()), "{case}: no {e:?} in: {stderr}");
        }
        // No run, in the list or anywhere.
        assert_eq!(runs(&s.cluster), Vec::<J>::new(), "{case}");

        // `runbook plan --drill --env staging` gives the same verdict.
        let out = drill_cli(&s.cluster, &["runbook", "plan"], runbook, params);
        let (stdout, plan_err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{case}: {stdout}{plan_err}");
        assert!(plan_err.contains("a drill in environment staging would be refused: "), "{case}: {plan_err}");
        for e in expected {
            assert!(plan_err.contains(e.as_str()), "{case}: plan: no {e:?} in: {plan_err}");
        }
    }

    // Nothing was touched: no Atlas request that creates, restores, snapshots
    // or deletes; both secrets and both deployments as they were; the prod
    // agent ran nothing.
    let writes: Vec<String> = s
        .atlas
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/groups"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
    assert_eq!(s.atlas.restore_jobs_created(), 0);
    for c in [SOURCE, STAGING_CLUSTER] {
        assert!(
            s.atlas.snapshots(c).iter().all(|x| x["snapshotType"] != "onDemand"),
            "a snapshot of {c} was taken: {:?}",
            s.atlas.snapshots(c)
        );
    }
    let after = state();
    assert!(before == after, "something changed:\nbefore {before:?}\nafter {after:?}");
    assert_eq!((s.kube.patch_count(NS, DEPLOYMENT), s.kube.patch_count(STAGING_NS, DEPLOYMENT)), (0, 0));
    assert!(s.hook.requests().is_empty(), "{:?}", s.hook.requests());
    let agent_log = s.cluster.agents[0].log_text();
    assert!(!agent_log.contains("redis.check_aof"), "the prod agent was sent a command: {agent_log}");

    // With staging's own values the same drill would start.
    let out = drill_cli(&s.cluster, &["runbook", "plan"], "mongo-pitr", &staging);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("a drill in environment staging would start"), "{stdout}");
    assert_eq!(runs(&s.cluster), Vec::<J>::new(), "a plan starts nothing");
}

// ---------------------------------------------------------------------------
// A staging drill of mongo-pitr, cleanup and report
// ---------------------------------------------------------------------------

/// The cloud setup with a staging environment that holds its resources
/// (prod holds others): every mongo-pitr param from the environment, the
/// webhook (with a token in its path) from a `secret_params` file.
fn staging_setup() -> (Setup, tempfile::TempDir) {
    let mut s = setup(Switch::Secret, |_| {});
    let files = tempfile::tempdir().expect("temp dir");
    let webhook = s.hook.url(&format!("/hooks/staging-{WEBHOOK_TOKEN}"));
    let webhook_file = files.path().join("staging-webhook.url");
    std::fs::write(&webhook_file, format!("{webhook}\n")).expect("webhook file");
    let health = s.api.url("/health");
    s.cluster.extras.toml.push_str(&format!(
        "\n[environments.staging]\nagents = \"env=staging\"\natlas_project = \"{PROJECT}\"\n\
         atlas_clusters = [\"{SOURCE}\"]\nsecrets = [\"{SECRET_ID}\"]\nnamespaces = [\"{NS}\"]\n\
         params = {{ project_id = \"{PROJECT}\", cluster = \"{SOURCE}\", secret_id = \"{SECRET_ID}\", \
         namespace = \"{NS}\", deployment = \"{DEPLOYMENT}\", health_url = \"{health}\" }}\n\
         secret_params = {{ webhook = \"{file}\" }}\n\n\
         [environments.prod]\nagents = \"env=prod\"\natlas_project = \"{PROJECT}\"\natlas_clusters = [\"chat-prod-eu\"]\n\
         secrets = [\"chat-app/prod/database\"]\nnamespaces = [\"prod\"]\n",
        file = webhook_file.display(),
    ));
    // The environment names the servers the setup started: read it anew.
    s.cluster.restart_coordinator();
    (s, files)
}

/// `ripcord run mongo-pitr --drill --env staging` (no params) driven to its
/// end: both rehearsal checklists and validation confirmed, the deletion
/// approved. Returns the run id and the restore cluster it created.
fn staging_drill(s: &Setup) -> (String, String) {
    let out = s.cluster.cli(OPERATOR, &["run", "mongo-pitr", "--drill", "--env", "staging"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let run = stdout.trim().to_string();
    s.confirm_checklist(&run, "prepare");
    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "approve-delete waiting", 90, |v| {
        v["status"] != "running" || step(v, "approve-delete")["status"] == "waiting"
    });
    assert_eq!(step(&v, "approve-delete")["status"], "waiting", "{}", step_states(&v));
    // The drill switched the app to the restored cluster before cleaning up.
    assert_eq!(step(&v, "switch-secret")["status"], "succeeded", "{}", step_states(&v));
    let target = step(&v, "create-cluster")["outputs"]["name"].as_str().unwrap_or_default().to_string();
    assert!(target.starts_with("restore-"), "{}", step(&v, "create-cluster"));
    assert!(s.atlas.cluster(&target).is_some(), "the restore cluster {target} does not exist before the deletion");
    let out = s.cluster.cli(OPERATOR, &["approve", &run, "approve-delete"]);
    assert!(out.status.success(), "{:?}", text(&out));
    s.confirm_checklist(&run, "day-after");
    (run, target)
}

#[test]
fn a_staging_drill_of_mongo_pitr_deletes_its_cluster_and_puts_the_secret_back() {
    let (s, _files) = staging_setup();
    let original = s.secret();
    assert_eq!(original["mongo_uri"], prod_uri(&s.prod));

    let (run, target) = staging_drill(&s);
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(v["mode"], "drill");
    for cleanup in ["restore-secret", "restart-back", "approve-delete", "delete-cluster", "day-after"] {
        assert_eq!(step(&v, cleanup)["status"], "succeeded", "{cleanup}: {}", step_states(&v));
    }

    // The restore cluster is gone from Atlas (the source is not).
    eventually(&format!("cluster {target} gone"), || match s.atlas.cluster(&target) {
        None => Ok(()),
        Some(c) => Err(format!("{}", c["stateName"])),
    });
    assert!(s.atlas.cluster(SOURCE).is_some());
    assert_eq!(s.atlas.count("DELETE", &format!("/groups/{PROJECT}/clusters/{target}")), 1);
    // The secret holds the original URI again (a new version with the old
    // value), and the app reads prod again.
    assert_eq!(s.secret(), original);
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.prod).as_str()));

    // The report: files under the data dir, with the cleanup section.
    wait_report(&s.cluster, &run);
    let md = std::fs::read_to_string(report_path(&s.cluster, &run, "md")).expect("markdown report");
    let section = md.split("## What was cleaned up").nth(1).unwrap_or_else(|| panic!("no cleanup section:\n{md}"));
    let line = section.lines().find(|l| l.contains("`delete-cluster`")).unwrap_or_default();
    assert!(line.starts_with("- ✅ `delete-cluster` `atlas.delete_cluster`"), "{section}");
    let json: J = serde_json::from_str(&std::fs::read_to_string(report_path(&s.cluster, &run, "json")).unwrap())
        .expect("JSON report");
    assert_eq!(json["run_id"], run.as_str(), "{json}");
    let html = std::fs::read_to_string(report_path(&s.cluster, &run, "html")).expect("HTML report");
    assert!(html.contains("delete-cluster"), "the HTML report has no cleanup step");

    // No secret in the report files (nor in show, the logs or the store).
    for (name, t) in report_files(&s.cluster, &run) {
        for secret in [CLIENT_SECRET, PROD_PASSWORD, Moto::SECRET_KEY, WEBHOOK_TOKEN] {
            assert!(!t.contains(secret), "{secret} leaked into {name}");
        }
    }
    s.assert_no_leaks(&run);
    // The webhook is a secret param: its token is in no view or log either
    // (the run's state keeps it to send with, as for any secret param).
    for args in [vec!["show", run.as_str()], vec!["show", run.as_str(), "--json"], vec!["report", run.as_str()]] {
        let (stdout, _) = text(&s.cluster.cli(OPERATOR, &args));
        assert!(stdout.contains(&run), "{args:?}: {stdout}");
        assert!(!stdout.contains(WEBHOOK_TOKEN), "the webhook URL leaked into {args:?}");
    }
    assert!(!s.cluster.coordinator.log_text().contains(WEBHOOK_TOKEN), "the webhook URL is in the log");
}

#[test]
fn a_staging_drill_of_mongo_pitr_posts_its_report_summary_to_the_environment_webhook() {
    let (s, _files) = staging_setup();
    let (run, _) = staging_drill(&s);
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    wait_report(&s.cluster, &run);
    let key = format!("{run}/report");
    let summary: Vec<_> = s.hook.requests().into_iter().filter(|r| r.key.as_deref() == Some(key.as_str())).collect();
    assert_eq!(summary.len(), 1, "{:?}", s.hook.requests());
    assert_eq!(
        (summary[0].method.as_str(), summary[0].path.as_str()),
        ("POST", format!("/hooks/staging-{WEBHOOK_TOKEN}").as_str())
    );
    assert!(summary[0].body.contains(&run), "{}", summary[0].body);
}

// ---------------------------------------------------------------------------
// The scheduler through the CLI
// ---------------------------------------------------------------------------

/// A drill runbook that finishes at once against a local server, and whose
/// `notify:` webhook gets the run's end and report summary.
const QUICK_RUNBOOK: &str = "id: quick-check\n\
title: the API answers (a quick rehearsal)\n\
rto: 5m\n\
params:\n  url:\n    type: string\n    required: true\n  webhook:\n    type: string\n    required: true\n    secret: true\n\
notify:\n  webhook: \"{{ params.webhook }}\"\n  on: [run_finished]\n\
steps:\n  - id: health\n    action: http.check\n    with: { url: \"{{ params.url }}\", expect_status: 200 }\n    budget: 1m\n    timeout: 30s\n";

/// One drill of [`QUICK_RUNBOOK`] named `name` in `environment`, on the
/// first Wednesday of March at 09:00 in Seoul; the drill's name on line 2.
fn quick_drills(name: &str, environment: &str, url: &str) -> String {
    format!(
        "drills:\n  - name: {name}\n    runbook: quick.yaml\n    environment: {environment}\n    params:\n      url: {url}\n    owners: [DevOps]\n    schedule:\n      rrule: FREQ=YEARLY;BYMONTH=3;BYDAY=1WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0\n      timezone: Asia/Seoul\n"
    )
}

/// Writes the drills file and its runbook in `dir`, and the staging
/// environment's webhook file; returns the coordinator config's root keys
/// and its sections.
fn scheduler_files(dir: &Path, drills: &str, webhook: &str) -> (String, String) {
    std::fs::write(dir.join("quick.yaml"), QUICK_RUNBOOK).expect("runbook");
    std::fs::write(dir.join("drills.yaml"), drills).expect("drills file");
    std::fs::write(dir.join("staging-webhook.url"), format!("{webhook}\n")).expect("webhook file");
    let top = format!("drills = \"{}\"", dir.join("drills.yaml").display());
    let sections = format!(
        "\n[environments.staging]\nagents = \"env=staging\"\nsecret_params = {{ webhook = \"{}\" }}\n",
        dir.join("staging-webhook.url").display()
    );
    (top, sections)
}

/// The table rows (after the header) of a CLI table whose first cell is `first`.
fn rows_of<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table.lines().filter(|l| l.split_whitespace().next() == Some(first)).collect()
}

#[test]
fn the_scheduler_lists_runs_now_and_records_history_through_the_cli() {
    let server = TestServer::start();
    let files = tempfile::tempdir().expect("temp dir");
    let (url, webhook) = (server.url("/health"), server.url("/hooks/drills"));
    let (top, sections) = scheduler_files(files.path(), &quick_drills("q1-quick", "staging", &url), &webhook);
    let cluster = Cluster::start_with_top(&top, CoordinatorExtras { toml: sections, env: vec![] });

    // list: the drill, its next occurrence in its own zone (as the offline
    // `drills next` computes it) and that occurrence's run id.
    let drills_file = files.path().join("drills.yaml");
    let out = cluster.bare_cli().args(["drills", "next", drills_file.to_str().unwrap()]).output().unwrap();
    let (next, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let next_row = rows_of(&next, "q1-quick");
    assert_eq!(next_row.len(), 1, "{next}");
    let local = next_row[0].split_whitespace().find(|c| c.ends_with("+09:00")).expect("a local time").to_string();
    assert!(local.ends_with("T09:00:00+09:00"), "{next}");

    let out = cluster.cli(OPERATOR, &["drills", "list"]);
    let (list, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(list.contains(&format!("drills file: {}", drills_file.display())), "{list}");
    let row = rows_of(&list, "q1-quick");
    assert_eq!(row.len(), 1, "{list}");
    let cells: Vec<&str> = row[0].split_whitespace().collect();
    assert_eq!(&cells[..6], ["q1-quick", "quick.yaml", "staging", local.as_str(), "Asia/Seoul", cells[5]], "{list}");
    let next_id = cells[5];
    assert!(next_id.len() == 16 && next_id.chars().all(|c| c.is_ascii_hexdigit()), "run id {next_id}: {list}");
    assert!(row[0].contains("DevOps"), "{list}");
    // Nothing ran yet.
    assert_eq!(runs(&cluster), Vec::<J>::new());

    // run-now: a drill in staging with the drill's params and the
    // environment's webhook, started by the operator.
    let out = cluster.cli(OPERATOR, &["drills", "run-now", "q1-quick"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let run = stdout.trim().to_string();
    assert!(run.len() == 16 && run.chars().all(|c| c.is_ascii_hexdigit()), "{stdout}");
    let v = cluster.wait_run(&run, "finished", |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(v["mode"], "drill");
    assert!(server.requests().iter().any(|r| r.method == "GET" && r.path == "/health"), "{:?}", server.requests());
    let listed = runs(&cluster);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["run_id"].as_str(), listed[0]["started_by"].as_str()),
        (Some(run.as_str()), Some("alice (operator)"))
    );
    assert_eq!(listed[0]["mode"], "drill");

    // The run's report summary went to the environment's webhook, keyed by the run.
    wait_report(&cluster, &run);
    let key = format!("{run}/report");
    let summary: Vec<_> = server.requests().into_iter().filter(|r| r.key.as_deref() == Some(key.as_str())).collect();
    assert_eq!(summary.len(), 1, "{:?}", server.requests());
    assert_eq!((summary[0].method.as_str(), summary[0].path.as_str()), ("POST", "/hooks/drills"));
    assert!(summary[0].body.contains(&run), "{}", summary[0].body);

    // history: the occurrence, started, with its run's status and RTO.
    let out = cluster.cli(OPERATOR, &["drills", "history"]);
    let (history, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(history.lines().next().is_some_and(|h| h.contains("RTO (ACHIEVED OF TARGET)")), "{history}");
    let rows = rows_of(&history, "q1-quick");
    let started: Vec<&&str> = rows.iter().filter(|r| r.contains(&run)).collect();
    assert_eq!(started.len(), 1, "{history}");
    let r = started[0];
    assert!(r.contains(" started ") && r.contains(" succeeded ") && r.trim_end().ends_with(OPERATOR), "{history}");
    assert!(r.contains(" of 5m"), "no RTO against the 5m target: {history}");
    assert!(history.contains("Trend (best RTO per quarter):"), "{history}");
    assert!(history.contains("No missed or refused occurrences."), "{history}");
    let out = cluster.cli(OPERATOR, &["drills", "history", "q1-quick"]);
    assert!(out.status.success() && text(&out).0.contains(&run), "{:?}", text(&out));

    // An unknown drill: refused, naming it, with a suggestion.
    let out = cluster.cli(OPERATOR, &["drills", "run-now", "q1-quik"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("no drill called \"q1-quik\" (did you mean \"q1-quick\"?)"), "{stderr}");
    assert_eq!(runs(&cluster).len(), 1);
}

#[test]
fn a_coordinator_whose_drills_name_an_undeclared_environment_refuses_to_start() {
    let server = TestServer::start();
    let files = tempfile::tempdir().expect("temp dir");
    let drills = quick_drills("q1-quick", "stagng", &server.url("/health"));
    let (top, sections) = scheduler_files(files.path(), &drills, &server.url("/hooks/drills"));
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new(&dir.path().join("pki"));
    pki.issue("coordinator", ripcord_engine::Role::Coordinator);
    let extras = CoordinatorExtras { toml: sections, env: vec![] };
    let cfg = ripcord_tests::write_coordinator_config_with_top(dir.path(), &pki, "127.0.0.1:0", &top, &extras);
    let mut coordinator = ripcord_tests::spawn_coordinator(dir.path(), &cfg, &extras);
    let status = eventually("the coordinator to exit", || coordinator.exited().ok_or_else(|| "still running".into()));
    assert!(!status.success(), "{status}");
    let log = coordinator.log_text();
    let file = files.path().join("drills.yaml");
    let expected =
        format!("{}:2:11: drill q1-quick: no environment \"stagng\" (did you mean \"staging\"?)", file.display());
    assert!(log.contains(&expected), "no {expected:?} in:\n{log}");
    assert!(!dir.path().join("coordinator.addr").exists(), "it wrote its address");
}
