//! mongo-pitr end to end: a real coordinator and CLI against the fake Atlas,
//! moto's Secrets Manager, the fake Kubernetes API, two nx-27017 servers
//! (the damaged `prod` and what the restore produces, `restored`) and a
//! stand-in chat API that reads its MongoDB URI on every request, so the
//! switch is seen where it matters: in what the app reads.
//!
//! The fake Atlas is told to give the clusters the run creates (`restore-…`)
//! the `restored` server's URI as their connection string. Both servers
//! have access control (SCRAM-SHA-256 user `chat-app`), and the coordinator
//! holds that user's password as `[credentials.chatdb]`, the runbooks'
//! default `db_credentials`: the connection string a run builds must carry
//! the real password to wherever it is used, and nowhere else.

use ripcord_tests::atlas_fake::{self, PROJECT, SOURCE};
use ripcord_tests::services::{Moto, NxMongo};
use ripcord_tests::{OPERATOR, step, step_states, text};
use serde_json::{Value as J, json};
use std::net::TcpListener;
use std::time::Duration;

use super::cloud_setup::*;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn mongo_pitr_switches_the_app_to_the_restored_cluster() {
    let s = setup(Switch::Secret, |_| {});
    // Before: the app reads the damaged prod.
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.prod).as_str())), "{h}");
    assert_eq!(s.api.request("GET", &format!("/messages?room={ROOM}"), None).1["count"], 2);

    let run = s.start(Switch::Secret);
    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(step(&v, "switch-env")["status"], "skipped", "{}", step_states(&v));
    assert_eq!(failed_steps(&v), Vec::<String>::new(), "{}", step_states(&v));

    // The run shows the connection string with a token for the password
    // (`password`: this one reads the same percent-encoded).
    let cs = step(&v, "connection-string")["outputs"]["connection_string"].as_str().unwrap_or_default().to_string();
    let token = "{{ credentials.chatdb.password }}";
    assert_eq!(cs, format!("mongodb://{PROD_USER}:{token}@{}/?directConnection=true", port_of(&s.restored)));
    // With the real one, ripcord's counts and the app logged in to the restored cluster.
    assert!(s.restored.logins().iter().filter(|u| *u == PROD_USER).count() >= 2, "{:?}", s.restored.logins());

    // The secret points at the restored cluster, with the password; the other key is kept.
    let secret = s.secret();
    assert_eq!(secret["mongo_uri"], restored_uri(&s.restored), "{secret}");
    assert_eq!(secret["other"], "keep", "{secret}");

    // The app now reads the restored data.
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.restored).as_str())), "{h}");
    assert_eq!(h["ok"], true);
    assert!(h["ts"].as_str().is_some_and(|t| !t.is_empty()), "{h}");
    assert_eq!(s.api.request("GET", &format!("/messages?room={ROOM}"), None).1["count"], 7);
    assert_eq!(s.api.request("POST", "/login", Some(&json!({"user": "alice"}))).0, 200);
    assert_eq!(s.api.request("POST", "/login", Some(&json!({"user": "mallory"}))).0, 401);
    // ripcord's own health check reached the app while it read `restored`.
    assert!(
        s.api.served().iter().any(|r| r.path == "/health" && r.status == 200 && r.db == Some(port_of(&s.restored))),
        "the run's health check never saw the restored cluster"
    );

    // Exactly one restore job, into the cluster the run created.
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    let jobs = s.atlas.restore_jobs(SOURCE);
    let target = step(&v, "create-cluster")["outputs"]["name"].as_str().unwrap_or_default().to_string();
    assert!(target.starts_with("restore-"), "{}", step(&v, "create-cluster"));
    assert_eq!(jobs[0]["targetClusterName"], target.as_str());
    assert_eq!(jobs[0]["deliveryType"], "pointInTime");

    // The counts and the measured RPO are in the step outputs.
    let counts = &step(&v, "verify-counts")["outputs"]["counts"];
    assert_eq!((counts["users"].as_i64(), counts["messages"].as_i64()), (Some(2), Some(7)), "{counts}");
    let rpo = &step(&v, "measure-rpo")["outputs"];
    assert!(rpo["newest_at"].as_str().is_some_and(|t| !t.is_empty()), "{rpo}");
    let age = rpo["rpo_seconds"].as_i64().unwrap_or(-1);
    assert!((6 * 60 - 5..6 * 60 + 120).contains(&age), "newest message is 6 minutes old, rpo_seconds {age}");
    // The run's RPO is measured from that newest record, against the incident.
    let achieved = &v["rpo_achieved"];
    assert_eq!((achieved["step"].as_str(), achieved["basis"].as_str()), (Some("measure-rpo"), Some("measured")));
    let newest = ripcord_engine::clock::parse_rfc3339(rpo["newest_at"].as_str().unwrap_or_default()).expect("a time");
    let incident = v["incident_at_ms"].as_i64().expect("incident");
    assert_eq!(achieved["lost_ms"].as_i64(), Some(incident - newest), "{achieved}");
    let show = text(&s.cluster.cli(OPERATOR, &["show", &run])).0;
    let line = show.lines().find(|l| l.starts_with("rpo:")).unwrap_or_default();
    assert!(line.contains("of data lost (newest record kept") && line.contains("over the 5m RPO by 1m"), "{show}");

    // The restart rolled the API; no escalation.
    assert!(s.kube.template_annotations(NS, DEPLOYMENT).contains_key("kubectl.kubernetes.io/restartedAt"));
    assert!(s.pages().is_empty(), "{:?}", s.pages());
    // The run's report summary went to its webhook, once, under its key,
    // with the RTO and no secret.
    let summary = s.report_summary(&run);
    assert!(summary.contains("Incident report") && summary.contains("RTO:"), "{summary}");
    for secret in [CLIENT_SECRET, PROD_PASSWORD, Moto::SECRET_KEY] {
        assert!(!summary.contains(secret), "{secret} in the summary");
    }
    s.assert_no_leaks(&run);
}

#[test]
fn secret_rollback_puts_the_app_back_on_the_version_the_switch_replaced() {
    let s = setup(Switch::Secret, |_| {});
    let before = s.moto.secret_value(SECRET_ID);
    let run = s.start(Switch::Secret);
    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.restored).as_str()));
    let previous = step(&v, "switch-secret")["outputs"]["previous_version_id"].as_str().unwrap_or_default().to_string();
    assert!(!previous.is_empty(), "{}", step(&v, "switch-secret"));

    let health = s.api.url("/health");
    let back = s.cluster.start_run(
        "secret-rollback",
        &[("version_id", &previous), ("namespace", NS), ("deployment", DEPLOYMENT), ("health_url", &health)],
    );
    let v = s.wait(&back, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    // The secret holds what it held before the switch, as a new version.
    assert_eq!(s.moto.secret_value(SECRET_ID), before);
    let replaced =
        step(&v, "restore-secret")["outputs"]["replaced_version_id"].as_str().unwrap_or_default().to_string();
    assert!(s.moto.versions(SECRET_ID).contains_key(&replaced), "the switched version is kept in the history");
    // The app reads prod again.
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.prod).as_str())), "{h}");
    s.assert_no_leaks(&back);
}

#[test]
fn mongo_pitr_with_switch_k8s_sets_mongo_uri_on_the_deployment_and_rolls_it() {
    let s = setup(Switch::K8s, |_| {});
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.prod).as_str())), "{h}");
    let generation = s.kube.generation(NS, DEPLOYMENT);

    let run = s.start(Switch::K8s);
    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(step(&v, "switch-secret")["status"], "skipped", "{}", step_states(&v));
    assert_eq!(step(&v, "restart")["status"], "skipped", "set env already rolls the pods: {}", step_states(&v));
    assert_eq!(step(&v, "switch-env")["status"], "succeeded", "{}", step_states(&v));

    // The deployment's env changed, the rest of it did not, and it rolled.
    let env = s.kube.env(NS, DEPLOYMENT, DEPLOYMENT);
    assert_eq!(env.get("MONGO_URI"), Some(&restored_uri(&s.restored)), "{env:?}");
    assert_eq!(env.get("PORT").map(String::as_str), Some("8080"), "{env:?}");
    assert!(s.kube.generation(NS, DEPLOYMENT) > generation, "no new generation");
    assert!(s.kube.rolled_out(NS, DEPLOYMENT), "the rollout did not finish");
    // The secret was left alone.
    assert_eq!(s.secret()["mongo_uri"], prod_uri(&s.prod));

    // The app now reads the restored data.
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.restored).as_str())), "{h}");
    assert_eq!(s.api.request("GET", &format!("/messages?room={ROOM}"), None).1["count"], 7);
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    assert!(s.pages().is_empty(), "{:?}", s.pages());
    s.assert_no_leaks(&run);
}

#[test]
fn a_run_naming_credentials_the_coordinator_does_not_hold_is_refused_before_anything_happens() {
    let s = setup(Switch::Secret, |_| {});
    // `ripcord COMMAND… mongo-pitr -p …` naming the credentials `creds`.
    let (health, webhook) = (s.api.url("/health"), s.hook.url("/hooks/oncall"));
    let pitr = |command: &[&str], creds: &str| {
        let params = [
            format!("project_id={PROJECT}"),
            format!("cluster={SOURCE}"),
            format!("db_credentials={creds}"),
            format!("health_url={health}"),
            format!("webhook={webhook}"),
        ];
        let mut args: Vec<&str> = command.to_vec();
        args.push("mongo-pitr");
        for p in &params {
            args.extend(["-p", p.as_str()]);
        }
        s.cluster.cli(OPERATOR, &args)
    };
    let out = pitr(&["run"], "reportsdb");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "the run started: {stdout}");
    assert!(
        stderr.contains("names credentials the coordinator does not hold")
            && stderr.contains("\"reportsdb\" (step connection-string): add a [credentials.reportsdb] section"),
        "{stderr}"
    );
    // Nothing happened: no run, no cluster, no restore.
    let runs = s.cluster.cli(OPERATOR, &["runs", "--json"]);
    assert!(runs.status.success(), "{:?}", text(&runs));
    let listed: J = serde_json::from_slice(&runs.stdout).expect("runs JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    assert_eq!(s.atlas.count("POST", &format!("/groups/{PROJECT}/clusters")), 0);
    assert_eq!(s.atlas.restore_jobs_created(), 0);

    // status and plan say so beforehand.
    let (status, _) = text(&s.cluster.cli(OPERATOR, &["status"]));
    assert!(status.contains("integrations: atlas, aws, kube") && status.contains("credentials: chatdb"), "{status}");
    let plan = |creds: &str| pitr(&["runbook", "plan"], creds);
    let out = plan("chatdb");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("credentials chatdb: held") && stdout.contains("credentials named: chatdb"), "{stdout}");
    let out = plan("reportsdb");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("credentials reportsdb: NOT HELD BY THE COORDINATOR"), "{stdout}");
    assert!(stderr.contains("would be refused: the coordinator holds no credentials named reportsdb"), "{stderr}");
}

#[test]
fn mongo_pitr_escalates_when_atlas_fails_the_restore_job() {
    let mut s = setup(Switch::Secret, |_| {});
    // Kim is on call: the escalation policy tells her of a failed step.
    s.on_call("kim", "/hooks/kim");
    s.atlas.fail_next_restore();
    let run = s.start(Switch::Secret);
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "failed", "{}", step_states(&v));
    let wait = step(&v, "wait-restore");
    assert_eq!(wait["status"], "failed", "{}", step_states(&v));
    let error = wait["error"].as_str().unwrap_or_default();
    assert!(error.contains("Atlas marked it failed"), "{error}");
    let job = s.atlas.restore_jobs(SOURCE)[0]["id"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(&job), "the error names the job {job}: {error}");
    for later in ["connection-string", "verify-counts", "switch-secret", "restart", "health", "validate"] {
        assert_ne!(step(&v, later)["status"], "succeeded", "{later} ran: {}", step_states(&v));
    }

    // The failure stopped the run where it happened, and the escalation
    // policy (not a step of the runbook) told the on-call, once.
    assert_eq!(failed_steps(&v), vec!["wait-restore".to_string()], "{}", step_states(&v));
    let notice = "@failed.wait-restore.1";
    let v = s.wait(&run, "the failure's notice delivered", 30, |v| {
        v["events"].as_array().is_some_and(|es| es.iter().any(|e| e["kind"] == "notified" && e["notice"] == notice))
    });
    let told: Vec<_> = s
        .pages()
        .into_iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(&format!("{run}/{notice}/"))))
        .collect();
    assert_eq!(told.len(), 1, "{:?}", s.pages());
    assert_eq!((told[0].method.as_str(), told[0].path.as_str()), ("POST", "/hooks/kim"));
    let body: J = serde_json::from_str(&told[0].body).expect("the JSON webhook's body");
    assert_eq!((body["topic"].as_str(), body["step"].as_str()), (Some("step_failed"), Some("wait-restore")), "{body}");
    assert!(body["text"].as_str().is_some_and(|t| t.contains("Atlas marked it failed")), "{body}");
    // Nothing went to the run's own webhook but its report summary.
    assert!(s.pages().iter().all(|r| r.path != "/hooks/oncall"), "{:?}", s.pages());
    // The webhooks are secret: not in the view.
    assert!(!v.to_string().contains("/hooks/oncall"), "the webhook URL is shown");
    assert!(!v.to_string().contains("/hooks/kim"), "the on-call's webhook URL is shown");

    // Nothing was switched: the app still reads prod.
    assert_eq!(s.secret()["mongo_uri"], prod_uri(&s.prod));
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.prod).as_str()));
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    s.assert_no_leaks(&run);
}

#[test]
fn atlas_restart_mid_restore_does_not_start_a_second_restore() {
    let mut s = setup(Switch::Secret, |o| o.restore_delay = Duration::from_secs(8));
    let run = s.start(Switch::Secret);
    // The restore job exists and the run waits for it.
    s.wait(&run, "waiting for the restore", 60, |v| {
        v["status"] != "running" || step(v, "wait-restore")["status"] == "running"
    });
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    let v = s.cluster.view(&run).expect("view");
    assert_eq!(step(&v, "wait-restore")["status"], "running", "{}", step_states(&v));
    assert!(!s.atlas.restore_jobs(SOURCE)[0]["finishedAt"].is_string(), "the restore finished before the restart");

    s.cluster.restart_coordinator();

    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    // The restarted coordinator picked up the job it had started: one job, ever.
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    assert_eq!(s.atlas.restore_jobs(SOURCE).len(), 1);
    assert_eq!(s.atlas.count("POST", &format!("/groups/{PROJECT}/clusters/{SOURCE}/backup/restoreJobs")), 1);
    assert_eq!(s.secret()["mongo_uri"], restored_uri(&s.restored));
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.restored).as_str()));
    assert!(s.pages().is_empty(), "{:?}", s.pages());
    s.assert_no_leaks(&run);
}

const DR_REGION: &str = "AP_NORTHEAST_1";

#[test]
fn mongo_region_restores_the_latest_snapshot_and_deletes_the_old_cluster_later() {
    let s = setup(Switch::Secret, |o| o.delete_delay = Duration::from_secs(600));
    // The DR cluster is `chat-prod-dr-<short id>`.
    s.atlas.set_connection_string(&format!("{SOURCE}-dr-"), &s.restored.uri());
    // A copy of mongo-region whose deferred delete comes 2s after the confirmation, not 24h.
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../runbooks/mongo-region.yaml"))
        .expect("mongo-region.yaml");
    assert_eq!(yaml.matches("after: 24h").count(), 1, "mongo-region.yaml changed");
    let file = s._dir.path().join("mongo-region-2s.yaml");
    std::fs::write(&file, yaml.replace("after: 24h", "after: 2s")).expect("runbook copy");

    let (health, webhook) = (s.api.url("/health"), s.hook.url("/hooks/oncall"));
    let run = s.cluster.start_run(
        file.to_str().expect("utf-8 path"),
        &[
            ("project_id", PROJECT),
            ("cluster", SOURCE),
            ("dr_region", DR_REGION),
            ("namespace", NS),
            ("deployment", DEPLOYMENT),
            ("health_url", &health),
            ("webhook", &webhook),
        ],
    );
    let v =
        s.wait(&run, "confirm waiting", 90, |v| v["status"] != "running" || step(v, "confirm")["status"] == "waiting");
    assert_eq!(step(&v, "confirm")["status"], "waiting", "{}", step_states(&v));
    // Nothing deleted before the confirmation; not recovered yet.
    assert_eq!(s.atlas.cluster(SOURCE).expect("source")["stateName"], "IDLE");
    assert!(v["recovered_at_ms"].is_null(), "{}", v["recovered_at_ms"]);

    // The restore: the latest snapshot into a new cluster in the DR region.
    let target = step(&v, "create-cluster")["outputs"]["name"].as_str().unwrap_or_default().to_string();
    assert!(target.starts_with(&format!("{SOURCE}-dr-")), "{}", step(&v, "create-cluster"));
    let created = s.atlas.cluster(&target).expect("the DR cluster");
    let rc = &created["replicationSpecs"][0]["regionConfigs"][0];
    assert_eq!(rc["regionName"], DR_REGION, "{created}");
    assert_eq!(
        (rc["electableSpecs"]["instanceSize"].as_str(), rc["electableSpecs"]["nodeCount"].as_u64()),
        (Some("M20"), Some(3))
    );
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    let job = &s.atlas.restore_jobs(SOURCE)[0];
    assert_eq!(job["snapshotId"], atlas_fake::SNAPSHOT_HOURLY, "not the latest snapshot: {job}");
    assert_eq!(job["targetClusterName"], target.as_str(), "{job}");

    // The app switched to the new cluster.
    assert_eq!(s.secret()["mongo_uri"], restored_uri(&s.restored));
    assert_eq!(s.secret()["other"], "keep");
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.restored).as_str())), "{h}");
    assert_eq!(s.api.request("GET", &format!("/messages?room={ROOM}"), None).1["count"], 7);
    assert!(s.kube.template_annotations(NS, DEPLOYMENT).contains_key("kubectl.kubernetes.io/restartedAt"));

    // A person confirms; the old cluster's delete is deferred, recovery is recorded.
    let out = s.cluster.cli(OPERATOR, &["approve", &run, "confirm", "--note", "login and messaging work"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v = s.wait(&run, "recovered", 30, |v| !v["recovered_at_ms"].is_null());
    let recovered = v["recovered_at_ms"].as_i64().expect("recovered_at_ms");
    assert!(step(&v, "confirm")["approval"]["by"]["name"] == OPERATOR, "{}", step(&v, "confirm"));
    if step(&v, "delete-old")["status"] == "deferred" {
        assert_eq!(s.atlas.cluster(SOURCE).expect("source")["stateName"], "IDLE");
    }

    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    let delete = step(&v, "delete-old");
    assert_eq!(delete["status"], "succeeded", "{}", step_states(&v));
    let started = delete["started_at_ms"].as_i64().expect("delete-old started_at_ms");
    assert!(started >= recovered + 1500, "delete-old started {started}, recovered {recovered}: not deferred 2s");
    assert_eq!(v["recovered_at_ms"].as_i64(), Some(recovered));
    let kinds: Vec<&str> = v["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    let pos = |k: &str| kinds.iter().position(|x| x.eq_ignore_ascii_case(k));
    assert!(pos("recovered").is_some(), "{kinds:?}");
    // The old cluster is being deleted (or gone); the DR cluster stays.
    assert!(s.atlas.cluster(SOURCE).is_none_or(|c| c["stateName"] == "DELETING"), "{:?}", s.atlas.cluster(SOURCE));
    assert_eq!(s.atlas.count("DELETE", &format!("/groups/{PROJECT}/clusters/{SOURCE}")), 1);
    assert_eq!(s.atlas.cluster(&target).expect("the DR cluster")["stateName"], "IDLE");
    assert!(s.pages().is_empty(), "{:?}", s.pages());
    s.assert_no_leaks(&run);
}

/// The key fields of `messages`' indexes, per index, as nx-27017 lists them
/// (its names and directions are not to be trusted; the fields are).
fn message_index_fields(m: &NxMongo) -> Vec<Vec<String>> {
    let out = m.python("print(json.dumps([list(ix['key'].keys()) for ix in client.chatdb.messages.list_indexes()]))\n");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn mongo_index_rebuilds_the_index() {
    let s = setup(Switch::Secret, |_| {});
    s.atlas.set_connection_string(SOURCE, &s.prod.uri());
    let wanted = vec!["roomId".to_string(), "createdAt".to_string()];
    // The index existed and is gone.
    s.prod.python(
        "client.chatdb.messages.create_index([('roomId', 1), ('createdAt', -1)], name='roomId_createdAt')\n\
         client.chatdb.messages.drop_index('roomId_createdAt')\n",
    );
    assert!(!message_index_fields(&s.prod).contains(&wanted), "{:?}", message_index_fields(&s.prod));

    let run = s.cluster.start_run("mongo-index", &[("project_id", PROJECT), ("cluster", SOURCE)]);
    // nx-27017 lists the rebuilt index as `idx_messages_roomId_createdAt
    // {roomId: 1, createdAt: 1}` whatever name and directions it was created
    // with, so the runbook's exact recheck cannot pass against it and the run
    // hands the index to a person (still-broken), who confirms it is there.
    let v = s.wait(&run, "still-broken waiting", 60, |v| {
        v["status"] != "running" || step(v, "still-broken")["status"] == "waiting"
    });
    assert_eq!(step(&v, "check")["outputs"]["ok"], false, "{}", step(&v, "check"));
    let missing = &step(&v, "check")["outputs"]["missing"];
    assert_eq!(missing, &json!(["roomId_createdAt"]), "{}", step(&v, "check"));
    assert_eq!(step(&v, "rebuild")["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(step(&v, "recheck")["status"], "succeeded", "{}", step_states(&v));
    let live = step(&v, "recheck")["outputs"]["live"].to_string();
    assert!(live.contains("roomId") && live.contains("createdAt"), "the recheck does not see the index: {live}");
    if step(&v, "recheck")["outputs"]["ok"] == false {
        s.confirm_checklist(&run, "still-broken");
    }
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));

    // The index is back on the server, on the same fields.
    let fields = message_index_fields(&s.prod);
    assert!(fields.contains(&wanted), "{fields:?}");
    // The data is untouched.
    let count = s.prod.python("print(client.chatdb.messages.count_documents({}))\n");
    assert_eq!(count.trim(), "2");
    s.assert_no_leaks(&run);
}

const APP_LOG: &str = "api-log-line: MongoServerSelectionError: connection timed out";

/// A copy of api-down (in `dir`) whose health checks give up after seconds, not minutes.
fn quick_api_down(dir: &std::path::Path) -> String {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../runbooks/api-down.yaml"))
        .expect("api-down.yaml");
    let quick = yaml
        .replace("within: 15s\n      interval: 5s", "within: 2s\n      interval: 500ms")
        .replace("within: 2m\n      interval: 5s", "within: 4s\n      interval: 500ms");
    assert_eq!(quick.matches("interval: 500ms").count(), 2, "api-down.yaml changed");
    let file = dir.join("api-down-quick.yaml");
    std::fs::write(&file, quick).expect("runbook copy");
    file.to_str().expect("utf-8 path").to_string()
}

#[test]
fn api_down_restarts_the_deployment_and_health_returns() {
    let s = setup(Switch::Secret, |_| {});
    s.kube.set_logs(NS, DEPLOYMENT, &["starting api", APP_LOG]);
    let generation = s.kube.generation(NS, DEPLOYMENT);
    let health = s.api.url("/health");
    let run = s.cluster.start_run(
        "api-down",
        &[("platform", "k8s"), ("namespace", NS), ("deployment", DEPLOYMENT), ("health_url", &health)],
    );
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    for id in ["logs-k8s", "diagnose", "restart-k8s", "rollout-wait", "pods-ready", "health"] {
        assert_eq!(step(&v, id)["status"], "succeeded", "{id}: {}", step_states(&v));
    }
    for id in ["logs-compose", "restart-compose"] {
        assert_eq!(step(&v, id)["status"], "skipped", "{id}: {}", step_states(&v));
    }
    // The logs were read from the pods and kept in the run.
    let logs = step(&v, "logs-k8s")["outputs"].to_string();
    assert!(logs.contains("MongoServerSelectionError"), "{}", step(&v, "logs-k8s"));
    assert!(s.kube.requests().iter().any(|r| r.method == "GET" && r.path.ends_with("/log")), "no pod log read");
    // The deployment was restarted and rolled out.
    assert!(s.kube.template_annotations(NS, DEPLOYMENT).contains_key("kubectl.kubernetes.io/restartedAt"));
    assert!(s.kube.generation(NS, DEPLOYMENT) > generation, "no new generation");
    assert!(s.kube.rolled_out(NS, DEPLOYMENT), "the rollout did not finish");
    // The health check reached the app, which answered ok.
    let health_step = step(&v, "health");
    assert!(health_step["finished_at_ms"].as_i64() >= step(&v, "pods-ready")["finished_at_ms"].as_i64());
    assert!(s.api.served().iter().any(|r| r.path == "/health" && r.status == 200), "no health check reached the app");
    assert_eq!(s.api.health().0, 200);
    s.assert_no_leaks(&run);
}

#[test]
fn health_never_passing_stops_the_run_at_the_health_step_with_the_last_response() {
    let s = setup(Switch::Secret, |_| {});
    // Nothing listens on this port.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let health = format!("http://{closed}/health");
    let runbook = quick_api_down(s._dir.path());
    let run = s.cluster.start_run(
        &runbook,
        &[("platform", "k8s"), ("namespace", NS), ("deployment", DEPLOYMENT), ("health_url", &health)],
    );
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "failed", "{}", step_states(&v));
    // The probe before the restart failed too, but only as evidence.
    assert_eq!(step(&v, "diagnose")["status"], "failed", "{}", step_states(&v));
    for id in ["logs-k8s", "restart-k8s", "rollout-wait", "pods-ready"] {
        assert_eq!(step(&v, id)["status"], "succeeded", "{id}: {}", step_states(&v));
    }
    let h = step(&v, "health");
    assert_eq!(h["status"], "failed", "{}", step_states(&v));
    let error = h["error"].as_str().unwrap_or_default();
    // The last response (here: none, the connection is refused) and how long it was tried.
    assert!(error.contains("Connection refused"), "the error does not say what the last attempt got: {error}");
    assert!(error.contains("probes)"), "{error}");
    assert!(v["failing"].as_str().is_some_and(|f| f.contains("step health failed")), "{}", v["failing"]);
    assert!(v["recovered_at_ms"].is_null(), "recorded as recovered: {}", v["recovered_at_ms"]);
    s.assert_no_leaks(&run);
}

#[test]
fn secrets_manager_refusal_fails_clearly_and_changes_nothing() {
    let s = setup(Switch::Secret, |_| {});
    let generation = s.kube.generation(NS, DEPLOYMENT);
    let annotations = s.kube.template_annotations(NS, DEPLOYMENT);
    // Secrets Manager refuses: the secret the run is told to update does not exist.
    let missing = "chat-app/no-such-secret";
    let run = s.start_with(Switch::Secret, &[("secret_id", missing)]);
    s.confirm_checklist_if_waiting(&run, "validate");
    let v = s.wait(&run, "finished", 90, |v| v["status"] != "running");
    assert_eq!(v["status"], "failed", "{}", step_states(&v));
    let sw = step(&v, "switch-secret");
    assert_eq!(sw["status"], "failed", "{}", step_states(&v));
    let error = sw["error"].as_str().unwrap_or_default();
    assert!(error.contains(missing), "the error does not name the secret: {error}");
    assert!(error.contains("not found"), "the error does not say why: {error}");
    assert!(v["failing"].as_str().is_some_and(|f| f.contains("step switch-secret failed")), "{}", v["failing"]);
    for later in ["restart", "rollout-wait", "health"] {
        assert_ne!(step(&v, later)["status"], "succeeded", "{later} ran: {}", step_states(&v));
    }
    // Nothing changed: the real secret, the deployment, what the app reads.
    let secret = s.secret();
    assert_eq!(
        (secret["mongo_uri"].as_str(), secret["other"].as_str()),
        (Some(prod_uri(&s.prod).as_str()), Some("keep"))
    );
    assert_eq!(s.kube.generation(NS, DEPLOYMENT), generation);
    assert_eq!(s.kube.template_annotations(NS, DEPLOYMENT), annotations);
    assert_eq!(s.kube.patch_count(NS, DEPLOYMENT), 0);
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.prod).as_str()));
    s.assert_no_leaks(&run);
}

#[test]
fn dr_region_snapshots_restores_in_the_dr_region_and_switches_the_app() {
    let s = setup(Switch::K8s, |_| {});
    s.atlas.set_connection_string(&format!("{SOURCE}-dr-"), &s.restored.uri());
    let snapshots_before = s.atlas.snapshots(SOURCE).len();
    let (health, webhook) = (s.api.url("/health"), s.hook.url("/hooks/oncall"));
    let run = s.cluster.start_run(
        "dr-region",
        &[
            ("project_id", PROJECT),
            ("cluster", SOURCE),
            ("dr_region", DR_REGION),
            ("switch", "k8s"),
            ("namespace", NS),
            ("deployment", DEPLOYMENT),
            ("health_url", &health),
            ("webhook", &webhook),
        ],
    );
    s.confirm_checklist(&run, "validate");
    let v = s.wait(&run, "finished", 60, |v| v["status"] != "running");
    assert_eq!(v["status"], "succeeded", "{}", step_states(&v));
    assert_eq!(step(&v, "switch-secret")["status"], "skipped", "{}", step_states(&v));
    assert_eq!(failed_steps(&v), Vec::<String>::new(), "{}", step_states(&v));
    assert!(!v["recovered_at_ms"].is_null());

    // A new on-demand snapshot was taken and that one (not an older one) restored.
    let snapshots = s.atlas.snapshots(SOURCE);
    assert_eq!(snapshots.len(), snapshots_before + 1, "{snapshots:?}");
    let taken = snapshots.iter().find(|x| x["snapshotType"] == "onDemand").expect("the on-demand snapshot");
    assert_eq!(step(&v, "snapshot")["outputs"]["snapshot_id"], taken["id"], "{}", step(&v, "snapshot"));
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    let job = &s.atlas.restore_jobs(SOURCE)[0];
    assert_eq!(job["snapshotId"], taken["id"], "{job}");
    // Into a cluster like the source, in the DR region.
    let target = step(&v, "create-cluster")["outputs"]["name"].as_str().unwrap_or_default().to_string();
    assert!(target.starts_with(&format!("{SOURCE}-dr-")), "{}", step(&v, "create-cluster"));
    assert_eq!(job["targetClusterName"], target.as_str(), "{job}");
    let created = s.atlas.cluster(&target).expect("the DR cluster");
    let rc = &created["replicationSpecs"][0]["regionConfigs"][0];
    assert_eq!(rc["regionName"], DR_REGION, "{created}");
    assert_eq!(rc["electableSpecs"]["instanceSize"], "M20", "{created}");
    assert_eq!(created["mongoDBMajorVersion"], "7.0", "{created}");

    // The app reads the DR cluster through MONGO_URI; the secret is untouched.
    let env = s.kube.env(NS, DEPLOYMENT, DEPLOYMENT);
    assert_eq!(env.get("MONGO_URI"), Some(&restored_uri(&s.restored)), "{env:?}");
    assert_eq!(s.secret()["mongo_uri"], prod_uri(&s.prod));
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.restored).as_str())), "{h}");
    assert_eq!(s.api.request("GET", &format!("/messages?room={ROOM}"), None).1["count"], 7);
    let counts = &step(&v, "verify-counts")["outputs"]["counts"];
    assert_eq!((counts["users"].as_i64(), counts["messages"].as_i64()), (Some(2), Some(7)), "{counts}");

    // The source is left running: clean-up is a decision, not a step.
    assert_eq!(s.atlas.cluster(SOURCE).expect("the source")["stateName"], "IDLE");
    assert_eq!(s.atlas.count("DELETE", &format!("/groups/{PROJECT}/clusters/{SOURCE}")), 0);
    assert!(s.pages().is_empty(), "{:?}", s.pages());
    s.assert_no_leaks(&run);
}
