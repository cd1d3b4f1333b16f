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
use std::time::{Duration, Instant};

use super::cloud_setup::*;

const STAGING_CLUSTER: &str = "chat-staging";
const STAGING_SECRET: &str = "chat-app/staging/database";
const STAGING_NS: &str = "staging";

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
    let before = (
        s.moto.secret_value(SECRET_ID),
        s.moto.versions(SECRET_ID),
        s.moto.secret_value(STAGING_SECRET),
        s.moto.versions(STAGING_SECRET),
        s.kube.deployment(NS, DEPLOYMENT),
        s.kube.deployment(STAGING_NS, DEPLOYMENT),
    );
    let redis_params = [("agents", "env=prod"), ("webhook", webhook.as_str())];

    let cases: [(&str, &str, Vec<(&str, &str)>, Vec<String>); 3] = [
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
    let after = (
        s.moto.secret_value(SECRET_ID),
        s.moto.versions(SECRET_ID),
        s.moto.secret_value(STAGING_SECRET),
        s.moto.versions(STAGING_SECRET),
        s.kube.deployment(NS, DEPLOYMENT),
        s.kube.deployment(STAGING_NS, DEPLOYMENT),
    );
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
