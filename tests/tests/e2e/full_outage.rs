//! Q3, the full outage, end to end: the composite runbook against the fakes and a real Redis.
//!
//! `full-outage` runs mongo-pitr, redis-aof and api-down as child runs
//! (`runbook.run`), one after the other, then checks /health. The cloud
//! setup (`cloud_setup.rs`: fake Atlas, moto's Secrets Manager, fake
//! Kubernetes, two nx-27017 servers, the stand-in chat API) gives the
//! MongoDB and API parts their world; a real redis-server with a truncated
//! AOF under an agent labelled `role=redis` (`tests/src/redis.rs`) is the
//! Redis part. The operator answers each child's questions on the child's
//! own run id, found with `ripcord runs --json`.

use super::cloud_setup::*;
use ripcord_engine::clock::rfc3339;
use ripcord_tests::atlas_fake::{PROJECT, SOURCE};
use ripcord_tests::redis::RedisHost;
use ripcord_tests::{AgentSpec, OPERATOR, eventually, step, step_states, text};
use serde_json::Value as J;
use std::process::Command;

/// The parent's `runbook.run` steps: step id, child runbook, child RTO (s).
const PARTS: [(&str, &str, i64); 3] =
    [("mongo", "mongo-pitr", 30 * 60), ("redis", "redis-aof", 5 * 60), ("api", "api-down", 10 * 60)];

const APP_LOG: &str = "api-log-line: MongoServerSelectionError: connection timed out";
const HOOK_PATH: &str = "/hooks/oncall";

/// What the Redis host's agent allows: every service, Redis and file action.
fn redis_actions() -> Vec<&'static str> {
    let hosted = ["service.", "redis.", "file."];
    ripcord_engine::registry::agent_actions()
        .map(|a| a.name)
        .filter(|n| hosted.iter().any(|p| n.starts_with(p)))
        .collect()
}

// Fields drop in order: Redis (killed by its pid file) before the cloud
// setup whose cluster temp dir holds that file.
struct Outage {
    redis: RedisHost,
    s: Setup,
}

/// The cloud setup plus the Redis host's agent (`role=redis`), with the
/// Redis AOF damaged: 50 keys in the base RDB, 51 in the incr file, whose
/// last command (`k:100`) is cut mid-way; Redis is stopped.
fn outage() -> Outage {
    let mut s = setup_with(Switch::Secret, |_| {}, "");
    let redis = RedisHost::start(s.cluster.path(), "cache");
    s.cluster.start_agent(
        &AgentSpec::new("cache-1")
            .label("role", "redis")
            .label("host", "cache-1")
            .actions(&redis_actions())
            .allow(&redis.allow_toml()),
    );
    s.cluster.wait_connected("cache-1");
    redis.write_keys("k", 0..50);
    redis.rewrite_aof();
    redis.write_keys("k", 50..101);
    redis.stop();
    let incr = redis.incr_file();
    let bytes = std::fs::read(&incr).expect("incr file");
    std::fs::write(&incr, &bytes[..bytes.len() - 7]).expect("truncate the incr file");
    s.kube.set_logs(NS, DEPLOYMENT, &["starting api", APP_LOG]);
    Outage { redis, s }
}

/// `ripcord run full-outage --drill --incident-at INCIDENT -p …`, every param given.
fn start_full_outage(s: &Setup, incident: &str) -> String {
    let (health, webhook) = (s.api.url("/health"), s.hook.url(HOOK_PATH));
    let params = [
        ("project_id", PROJECT),
        ("cluster", SOURCE),
        ("restore_to", "incident-5m"),
        ("db", "chatdb"),
        ("db_credentials", "chatdb"),
        ("switch", "secret"),
        ("secret_id", SECRET_ID),
        ("namespace", NS),
        ("deployment", DEPLOYMENT),
        ("health_url", &health),
        ("redis_agents", "role=redis"),
        ("instance", "cache"),
        ("platform", "k8s"),
        ("app_agents", "role=app"),
        ("compose_project", "chat-app"),
        ("compose_service", "api"),
        ("webhook", &webhook),
    ];
    let mut args =
        vec!["run".to_string(), "full-outage".into(), "--drill".into(), "--incident-at".into(), incident.into()];
    for (k, v) in params {
        args.extend(["-p".to_string(), format!("{k}={v}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.cluster.cli(OPERATOR, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "ripcord run full-outage failed: {stderr}");
    stdout.trim().to_string()
}

/// `ripcord runs --json`.
fn runs(s: &Setup) -> Vec<J> {
    let out = s.cluster.cli(OPERATOR, &["runs", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v: J = serde_json::from_slice(&out.stdout).expect("runs JSON");
    v.as_array().cloned().unwrap_or_default()
}

/// The child run of `runbook` that `parent` started, as `ripcord runs --json` lists it.
fn child_of(s: &Setup, parent: &str, runbook: &str) -> String {
    let by = format!("run {parent} (coordinator)");
    eventually(&format!("a {runbook} child run of {parent}"), || {
        let all = runs(s);
        let mine: Vec<&J> =
            all.iter().filter(|r| r["runbook_id"] == runbook && r["started_by"] == by.as_str()).collect();
        match mine.as_slice() {
            [one] => Ok(one["run_id"].as_str().unwrap_or_default().to_string()),
            _ => Err(format!("{} such runs in {all:?}", mine.len())),
        }
    })
}

fn ms(v: &J, field: &str) -> i64 {
    v[field].as_i64().unwrap_or_else(|| panic!("{field} is not a time in run {}: {}", v["run_id"], v[field]))
}

fn step_ms(v: &J, id: &str, field: &str) -> i64 {
    step(v, id)[field].as_i64().unwrap_or_else(|| panic!("step {id} has no {field}: {}", step(v, id)))
}

/// The run's report file `DATA_DIR/reports/RUN.json`, once written.
fn report_json(s: &Setup, run: &str) -> J {
    let path = s.cluster.path().join("data").join("reports").join(format!("{run}.json"));
    let text =
        eventually(&format!("report {}", path.display()), || std::fs::read_to_string(&path).map_err(|e| e.to_string()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn q3_full_outage_drill_recovers_mongo_redis_and_the_api_in_order() {
    let o = outage();
    let (s, redis) = (&o.s, &o.redis);
    let generation = s.kube.generation(NS, DEPLOYMENT);
    // The incident was declared 90 s ago (whole seconds): the children must take this time, not "now".
    let incident_ms = (ripcord_pki::clock::now_ms() / 1000 - 90) * 1000;
    let parent = start_full_outage(s, &rfc3339(incident_ms));

    // The parent's preparation checklist, then MongoDB's child run: its
    // validation is answered on the child's id.
    s.confirm_checklist(&parent, "prepare");
    let mongo = child_of(s, &parent, "mongo-pitr");
    s.confirm_checklist(&mongo, "validate");

    // The parent's step is done once the child recovered, while the child's
    // cleanup still waits for a person to approve deleting the restore cluster.
    let p = s.wait(&parent, "mongo done", 90, |v| v["status"] != "running" || step(v, "mongo")["status"] != "running");
    assert_eq!(step(&p, "mongo")["status"], "succeeded", "{}", step_states(&p));
    let m = s.cluster.view(&mongo).expect("mongo child view");
    assert_eq!(m["status"], "running", "the mongo child is still cleaning up: {}", step_states(&m));
    assert!(m["finished_at_ms"].is_null(), "{}", m["finished_at_ms"]);
    assert_eq!(step(&m, "approve-delete")["approval"], J::Null, "{}", step(&m, "approve-delete"));

    // Redis, then the API: each child starts only when the one before recovered.
    let redis_run = child_of(s, &parent, "redis-aof");
    let r = s.wait(&redis_run, "redis-aof finished", 90, |v| v["status"] != "running");
    assert_eq!(r["status"], "succeeded", "{}", step_states(&r));
    let api_run = child_of(s, &parent, "api-down");
    let a = s.wait(&api_run, "api-down finished", 90, |v| v["status"] != "running");
    assert_eq!(a["status"], "succeeded", "{}", step_states(&a));

    // The parent's last check, then its day-after checklist (cleanup).
    s.confirm_checklist(&parent, "day-after");
    let p = s.wait(&parent, "full-outage finished", 90, |v| v["status"] != "running");
    assert_eq!(p["status"], "succeeded", "{}", step_states(&p));
    // Written when the parent ended: the mongo child still awaits the
    // approval of its cluster's deletion (below).
    let rep = report_json(s, &parent);

    // The mongo child cleans up: secret back, API restarted onto prod; then
    // a person approves the deletion (on the child's id) and it is deleted.
    let m = s.wait(&mongo, "restart-back done", 90, |v| {
        v["status"] != "running"
            || step(v, "restart-back")["status"] != "pending" && step(v, "restart-back")["status"] != "running"
    });
    assert_eq!(step(&m, "restore-secret")["status"], "succeeded", "{}", step_states(&m));
    assert_eq!(step(&m, "restart-back")["status"], "succeeded", "{}", step_states(&m));
    let secret = s.secret();
    assert_eq!(
        (secret["mongo_uri"].as_str(), secret["other"].as_str()),
        (Some(prod_uri(&s.prod).as_str()), Some("keep"))
    );
    let out = s.cluster.cli(OPERATOR, &["approve", &mongo, "approve-delete", "--note", "restart-back done"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let m = s.wait(&mongo, "mongo-pitr finished", 90, |v| v["status"] != "running");
    assert_eq!(m["status"], "succeeded", "{}", step_states(&m));

    // --- Exactly three children, each once, each of the parent's mode and incident.
    let all = runs(s);
    let mut ids: Vec<&str> = all.iter().filter_map(|r| r["run_id"].as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![parent.as_str(), mongo.as_str(), redis_run.as_str(), api_run.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "{all:?}");
    assert_eq!((p["mode"].as_str(), ms(&p, "incident_at_ms")), (Some("drill"), incident_ms));
    let children = [(&m, mongo.as_str()), (&r, redis_run.as_str()), (&a, api_run.as_str())];
    for ((id, runbook, rto_s), (c, run)) in PARTS.iter().zip(children) {
        assert_eq!(c["runbook_id"], *runbook, "{id}");
        assert_eq!(c["source"], format!("builtin:{runbook}"), "{id}");
        assert_eq!(c["mode"], "drill", "{id}: the child has the parent's mode");
        assert_eq!(ms(c, "incident_at_ms"), incident_ms, "{id}: the child has the parent's incident time");
        assert_eq!(
            (c["started_by"]["name"].as_str(), c["started_by"]["role"].as_str()),
            (Some(format!("run {parent}").as_str()), Some("coordinator")),
            "{id}"
        );
        assert_eq!(c["status"], "succeeded", "{id}");
        assert_eq!(c["rto_ms"].as_i64(), Some(rto_s * 1000), "{id}");

        // The parent's step outputs: the child and its own RTO.
        let st = step(&p, id);
        assert_eq!(st["action"], "runbook.run", "{id}");
        assert_eq!(st["status"], "succeeded", "{id}: {}", step_states(&p));
        let out = &st["outputs"];
        assert_eq!(out["run_id"], run, "{id}: {out}");
        assert_eq!(out["runbook"], *runbook, "{id}: {out}");
        let recovered_in_ms = ms(c, "recovered_at_ms") - ms(c, "incident_at_ms");
        assert_eq!(out["recovered_in_s"].as_i64(), Some(recovered_in_ms / 1000), "{id}: {out}");
        assert_eq!(out["rto_s"].as_i64(), Some(*rto_s), "{id}: {out}");
        // Done when the child recovered, not before.
        assert!(
            step_ms(&p, id, "finished_at_ms") >= ms(c, "recovered_at_ms"),
            "{id}: the step ended before its child recovered"
        );
        assert!(step_ms(&p, id, "started_at_ms") <= ms(c, "created_at_ms"), "{id}: the child started before its step");
    }
    // The two children that finished with their recovery said so (the mongo
    // child's `status` is the_parents_report_gives_each_part_the_status_its_child_ended_with's
    // subject); its step ended while it was still cleaning up.
    assert_eq!(step(&p, "redis")["outputs"]["status"], "succeeded");
    assert_eq!(step(&p, "api")["outputs"]["status"], "succeeded");
    assert!(
        step_ms(&p, "mongo", "finished_at_ms") < ms(&m, "finished_at_ms"),
        "the parent waited for the mongo child's cleanup"
    );

    // --- In order: each child was created after the one before recovered,
    // and the final health check after the last one recovered.
    assert!(ms(&r, "created_at_ms") >= ms(&m, "recovered_at_ms"), "redis started before mongo recovered");
    assert!(ms(&a, "created_at_ms") >= ms(&r, "recovered_at_ms"), "the API started before redis recovered");
    assert!(step_ms(&p, "redis", "started_at_ms") >= step_ms(&p, "mongo", "finished_at_ms"));
    assert!(step_ms(&p, "api", "started_at_ms") >= step_ms(&p, "redis", "finished_at_ms"));
    assert!(step_ms(&p, "health", "started_at_ms") >= ms(&a, "recovered_at_ms"));
    assert_eq!(step(&p, "health")["status"], "succeeded", "{}", step_states(&p));

    // --- The whole run's RTO covers every part.
    let total_ms = ms(&p, "recovered_at_ms") - incident_ms;
    assert_eq!(p["rto_ms"].as_i64(), Some(30 * 60 * 1000));
    for c in [&m, &r, &a] {
        assert!(ms(&p, "recovered_at_ms") >= ms(c, "recovered_at_ms"), "recovered before child {}", c["run_id"]);
        assert!(total_ms >= ms(c, "recovered_at_ms") - ms(c, "incident_at_ms"));
    }
    assert!(total_ms >= 90_000, "the clock runs from the declared incident: {total_ms} ms");
    assert!(ms(&p, "recovered_at_ms") <= step_ms(&p, "day-after", "started_at_ms"), "cleanup counted in the RTO");

    // --- The parent's own steps: preparation (5 items), health, day-after.
    let prepare = step(&p, "prepare");
    assert_eq!(prepare["status"], "succeeded");
    let items = prepare["checklist"].as_array().expect("checklist");
    assert_eq!(items.len(), 5, "{prepare}");
    // Items 4 and 5 have automated checks (Atlas, the health URL): they confirm them.
    let by: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["confirmed"]["by"]["name"].as_str().unwrap_or("-"), i["check"]["result"].as_str().unwrap_or("-")))
        .collect();
    let person = (OPERATOR, "-");
    assert_eq!(by, [person, person, person, ("ripcord", "passed"), ("ripcord", "passed")], "{prepare}");
    assert_eq!(
        (step(&p, "day-after")["status"].as_str(), step(&p, "day-after")["cleanup"].as_bool()),
        (Some("succeeded"), Some(true))
    );

    // --- MongoDB: restored into a new cluster, the app switched to it, then
    // put back by the child's cleanup, and the restore cluster deleted.
    assert_eq!(step(&m, "prepare")["status"], "skipped", "the parent has the preparation: {}", step_states(&m));
    assert_eq!(step(&m, "day-after")["status"], "skipped", "the parent has the day-after: {}", step_states(&m));
    for id in [
        "snapshot",
        "create-cluster",
        "wait-cluster",
        "restore",
        "wait-restore",
        "connection-string",
        "verify-counts",
        "switch-secret",
        "restart",
        "rollout-wait",
        "health",
        "validate",
        "restore-secret",
        "restart-back",
        "approve-delete",
        "delete-cluster",
    ] {
        assert_eq!(step(&m, id)["status"], "succeeded", "{id}: {}", step_states(&m));
    }
    let counts = &step(&m, "verify-counts")["outputs"]["counts"];
    assert_eq!((counts["users"].as_i64(), counts["messages"].as_i64()), (Some(2), Some(7)), "{counts}");
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    let target = step(&m, "create-cluster")["outputs"]["name"].as_str().unwrap_or_default().to_string();
    assert!(target.starts_with("restore-"), "{}", step(&m, "create-cluster"));
    assert_eq!(s.atlas.restore_jobs(SOURCE)[0]["targetClusterName"], target.as_str());
    // The app really read the restored cluster during the drill…
    assert!(
        s.api.served().iter().any(|r| r.path == "/health" && r.status == 200 && r.db == Some(port_of(&s.restored))),
        "the app never read the restored cluster"
    );
    // …and reads prod again now.
    let (status, h) = s.api.health();
    assert_eq!((status, h["db"].as_str()), (200, Some(port_of(&s.prod).as_str())), "{h}");
    assert_eq!(s.atlas.count("DELETE", &format!("/groups/{PROJECT}/clusters/{target}")), 1);
    eventually(&format!("the restore cluster {target} to be gone"), || match s.atlas.cluster(&target) {
        None => Ok(()),
        Some(c) => Err(c.to_string()),
    });
    assert_eq!(s.atlas.cluster(SOURCE).expect("the source is kept")["stateName"], "IDLE");
    assert!(step(&m, "approve-delete")["approval"]["by"]["name"] == OPERATOR, "{}", step(&m, "approve-delete"));

    // --- Redis: repaired on its host through the agent; every key but the cut one is back.
    assert_eq!(step(&r, "prepare")["status"], "skipped", "{}", step_states(&r));
    for id in ["fix", "report-loss", "ping", "dbsize"] {
        assert_eq!(step(&r, id)["status"], "succeeded", "{id}: {}", step_states(&r));
    }
    assert_eq!(step(&r, "fix")["target"]["selector"], "role=redis");
    let fix = &step(&r, "fix")["outputs"];
    assert!(fix["bytes_discarded"].as_i64().is_some_and(|b| b > 0), "{fix}");
    assert_eq!(fix["keys_after"], 100, "{fix}");
    let backup = std::path::Path::new(fix["backup_path"].as_str().unwrap_or_default());
    assert!(backup.starts_with(&redis.backups), "the damaged AOF is kept in the backup dir: {backup:?}");
    assert_eq!(step(&r, "dbsize")["outputs"]["keys"], 100);
    let mut expected: Vec<String> = (0..100).map(|i| format!("k:{i}")).collect();
    expected.sort();
    assert_eq!(redis.keys("k:*"), expected, "k:100 was the cut command");
    assert_eq!(redis.cli(&["PING"]).trim(), "PONG");
    let check = Command::new("redis-check-aof")
        .arg(redis.aof_dir().join("appendonly.aof.manifest"))
        .output()
        .expect("redis-check-aof");
    assert!(check.status.success(), "the AOF is still damaged: {:?}", text(&check));
    // The on-call heard what the repair discarded, from the child run.
    let hooks = s.hook.requests();
    assert!(
        hooks.iter().any(|h| h.path == HOOK_PATH && h.body.contains("bytes discarded") && h.body.contains(&redis_run)),
        "{hooks:?}"
    );

    // --- The API: logs kept, restarted, pods ready, healthy.
    for id in ["logs-k8s", "diagnose", "restart-k8s", "rollout-wait", "pods-ready", "health"] {
        assert_eq!(step(&a, id)["status"], "succeeded", "{id}: {}", step_states(&a));
    }
    for id in ["logs-compose", "restart-compose"] {
        assert_eq!(step(&a, id)["status"], "skipped", "{id}: {}", step_states(&a));
    }
    assert!(
        step(&a, "logs-k8s")["outputs"].to_string().contains("MongoServerSelectionError"),
        "{}",
        step(&a, "logs-k8s")
    );
    assert!(s.kube.generation(NS, DEPLOYMENT) > generation, "no new generation");
    assert!(s.kube.rolled_out(NS, DEPLOYMENT), "the rollout did not finish");

    // --- The parent's report: a part per child, each with its own RTO.
    assert_eq!(
        (rep["run_id"].as_str(), rep["mode"].as_str(), rep["status"].as_str()),
        (Some(parent.as_str()), Some("drill"), Some("succeeded"))
    );
    assert_eq!(rep["rto"]["achieved_ms"].as_i64(), Some(total_ms), "{}", rep["rto"]);
    assert_eq!(rep["rto"]["target_ms"].as_i64(), Some(30 * 60 * 1000), "{}", rep["rto"]);
    let parts = rep["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 3, "{}", rep["parts"]);
    for (((id, runbook, rto_s), part), c) in PARTS.iter().zip(parts).zip([&m, &r, &a]) {
        let out = &step(&p, id)["outputs"];
        assert_eq!(part["step"], *id, "{part}");
        assert_eq!(part["status"], "succeeded", "{part}");
        assert_eq!(part["run_id"], c["run_id"], "{part}");
        assert_eq!(part["runbook"], *runbook, "{part}");
        // When the parent ended: mongo was cleaning up, the others had ended.
        let ended = if *id == "mongo" { "running" } else { "succeeded" };
        assert_eq!(part["child_status"], ended, "{part}");
        assert_eq!(out["status"], if *id == "mongo" { "recovered" } else { "succeeded" }, "{out}");
        let achieved = out["recovered_in_s"].as_i64().expect("recovered_in_s") * 1000;
        assert_eq!(part["rto"]["target_ms"].as_i64(), Some(rto_s * 1000), "{part}");
        assert_eq!(part["rto"]["achieved_ms"].as_i64(), Some(achieved), "{part}");
        assert_eq!(part["rto"]["met"].as_bool(), Some(achieved <= rto_s * 1000), "{part}");
        assert!(total_ms >= achieved, "{id}: the whole run's RTO is shorter than a part's");
    }

    // --- No secret anywhere: not the passwords, not the webhook URL (a secret param).
    for run in [&parent, &mongo, &redis_run, &api_run] {
        s.assert_no_leaks(run);
    }
    for (what, v) in [("parent", &p), ("mongo", &m), ("redis", &r), ("api", &a), ("report", &rep)] {
        assert!(!v.to_string().contains(HOOK_PATH), "the webhook URL is in the {what} view");
    }
}

#[test]
fn a_redis_repair_that_fails_fails_the_parent_at_its_step_and_the_api_part_never_starts() {
    let o = outage();
    let (s, redis) = (&o.s, &o.redis);
    // The base RDB of the AOF is damaged too: redis-check-aof cannot repair that.
    let base = std::fs::read_dir(redis.aof_dir())
        .expect("AOF dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .expect("base RDB");
    let mut bytes = std::fs::read(&base).expect("base RDB");
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    std::fs::write(&base, bytes).expect("damage the base RDB");

    let incident_ms = (ripcord_pki::clock::now_ms() / 1000 - 30) * 1000;
    let parent = start_full_outage(s, &rfc3339(incident_ms));
    s.confirm_checklist(&parent, "prepare");
    let mongo = child_of(s, &parent, "mongo-pitr");
    s.confirm_checklist(&mongo, "validate");
    let redis_run = child_of(s, &parent, "redis-aof");
    let r = s.wait(&redis_run, "redis-aof finished", 90, |v| v["status"] != "running");
    assert_eq!(r["status"], "failed", "{}", step_states(&r));
    assert!(r["recovered_at_ms"].is_null(), "{}", r["recovered_at_ms"]);
    let fix_error = step(&r, "fix")["error"].as_str().unwrap_or_default().to_string();
    assert!(fix_error.contains("redis-rdb"), "the failure names the RDB restore: {fix_error}");
    assert_eq!(step(&r, "use-rdb")["status"], "succeeded", "{}", step_states(&r));
    assert!(
        s.hook
            .requests()
            .iter()
            .any(|h| h.path == HOOK_PATH && h.body.contains("redis-rdb") && h.body.contains(&redis_run)),
        "{:?}",
        s.hook.requests()
    );

    // The parent's redis step fails, naming the child; the API part never
    // starts; the drill's own cleanup (day-after) still runs.
    s.confirm_checklist(&parent, "day-after");
    let p = s.wait(&parent, "full-outage finished", 90, |v| v["status"] != "running");
    assert_eq!(p["status"], "failed", "{}", step_states(&p));
    assert!(p["recovered_at_ms"].is_null(), "recorded as recovered: {}", p["recovered_at_ms"]);
    assert_eq!(step(&p, "mongo")["status"], "succeeded", "{}", step_states(&p));
    assert_eq!(step(&p, "mongo")["outputs"]["run_id"], mongo.as_str());
    let st = step(&p, "redis");
    assert_eq!(st["status"], "failed", "{}", step_states(&p));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(error.contains(&redis_run) && error.contains("redis-aof") && error.contains("failed"), "{error}");
    assert!(p["failing"].as_str().is_some_and(|f| f.contains("step redis failed")), "{}", p["failing"]);
    for later in ["api", "health"] {
        assert!(step(&p, later)["started_at_ms"].is_null(), "{later} started: {}", step(&p, later));
        assert_ne!(step(&p, later)["status"], "succeeded", "{later}: {}", step_states(&p));
    }
    let all = runs(s);
    assert!(!all.iter().any(|r| r["runbook_id"] == "api-down"), "an api-down run started: {all:?}");
    assert_eq!(all.len(), 3, "the parent and two children: {all:?}");
    assert_eq!(step(&p, "day-after")["status"], "succeeded", "{}", step_states(&p));

    // The report: the mongo part with its RTO, the redis part failed with the reason, the API part never ran.
    let rep = report_json(s, &parent);
    assert_eq!((rep["status"].as_str(), rep["rto"]["achieved_ms"].as_i64()), (Some("failed"), None), "{}", rep["rto"]);
    let parts = rep["parts"].as_array().expect("parts");
    let summary: Vec<(&str, &str, Option<&str>)> = parts
        .iter()
        .map(|p| (p["step"].as_str().unwrap_or("?"), p["status"].as_str().unwrap_or("?"), p["run_id"].as_str()))
        .collect();
    assert_eq!(summary.len(), 3, "{}", rep["parts"]);
    assert_eq!(summary[0], ("mongo", "succeeded", Some(mongo.as_str())));
    assert_eq!(summary[1], ("redis", "failed", None), "{}", parts[1]);
    assert_eq!((summary[2].0, summary[2].2), ("api", None), "{}", parts[2]);
    assert_ne!(summary[2].1, "succeeded", "{}", parts[2]);
    assert!(parts[1]["error"].as_str().is_some_and(|e| e.contains(&redis_run)), "{}", parts[1]);
    let m = s.cluster.view(&mongo).expect("mongo child view");
    let achieved = (ms(&m, "recovered_at_ms") - incident_ms) / 1000 * 1000;
    assert_eq!(parts[0]["rto"]["achieved_ms"].as_i64(), Some(achieved), "{}", parts[0]);
    for run in [&parent, &mongo, &redis_run] {
        s.assert_no_leaks(run);
    }
}

#[test]
fn a_coordinator_restart_while_a_child_waits_resumes_that_child_not_a_new_one() {
    let mut s = setup_with(Switch::Secret, |_| {}, "");
    let incident_ms = (ripcord_pki::clock::now_ms() / 1000 - 30) * 1000;
    let parent = start_full_outage(&s, &rfc3339(incident_ms));
    s.confirm_checklist(&parent, "prepare");
    let mongo = child_of(&s, &parent, "mongo-pitr");
    let m = s.wait(&mongo, "validate waiting", 90, |v| {
        v["status"] != "running" || step(v, "validate")["status"] == "waiting"
    });
    assert_eq!(step(&m, "validate")["status"], "waiting", "{}", step_states(&m));
    assert_eq!(step(&s.cluster.view(&parent).expect("parent view"), "mongo")["status"], "running");

    s.cluster.restart_coordinator();

    // The parent's step, performed again, waits for the same child.
    s.confirm_checklist(&mongo, "validate");
    let p = s.wait(&parent, "mongo done", 90, |v| v["status"] != "running" || step(v, "mongo")["status"] != "running");
    let st = step(&p, "mongo");
    assert_eq!(st["status"], "succeeded", "{}", step_states(&p));
    assert_eq!((st["attempt"].as_u64(), st["outputs"]["run_id"].as_str()), (Some(1), Some(mongo.as_str())), "{st}");
    let children: Vec<J> = runs(&s).into_iter().filter(|r| r["runbook_id"] == "mongo-pitr").collect();
    assert_eq!(children.len(), 1, "{children:?}");
    // One restore, one restore cluster: nothing was done twice.
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    assert_eq!(s.atlas.count("POST", &format!("/groups/{PROJECT}/clusters")), 1);
    let m = s.cluster.view(&mongo).expect("mongo child view");
    assert_eq!(
        st["outputs"]["recovered_in_s"].as_i64(),
        Some((ms(&m, "recovered_at_ms") - incident_ms) / 1000),
        "{st}"
    );
    s.assert_no_leaks(&parent);
    s.assert_no_leaks(&mongo);
}

/// The parent's outputs for a part are taken when the child recovered (a
/// drill child may still be cleaning up then: its `status` output says
/// `recovered`); the stored report of the parent gives each part the status
/// its child ended with.
#[test]
fn the_parents_report_gives_each_part_the_status_its_child_ended_with() {
    let o = outage();
    let s = &o.s;
    let parent = start_full_outage(s, &rfc3339((ripcord_pki::clock::now_ms() / 1000 - 30) * 1000));
    s.confirm_checklist(&parent, "prepare");
    let mongo = child_of(s, &parent, "mongo-pitr");
    s.confirm_checklist(&mongo, "validate");
    // The mongo child's cleanup is approved and done before the parent ends.
    let m = s.wait(&mongo, "restart-back done", 90, |v| {
        v["status"] != "running"
            || step(v, "restart-back")["status"] != "pending" && step(v, "restart-back")["status"] != "running"
    });
    assert_eq!(step(&m, "restart-back")["status"], "succeeded", "{}", step_states(&m));
    let out = s.cluster.cli(OPERATOR, &["approve", &mongo, "approve-delete"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let m = s.wait(&mongo, "mongo-pitr finished", 90, |v| v["status"] != "running");
    assert_eq!(m["status"], "succeeded", "{}", step_states(&m));
    for runbook in ["redis-aof", "api-down"] {
        let child = child_of(s, &parent, runbook);
        let c = s.wait(&child, "finished", 90, |v| v["status"] != "running");
        assert_eq!(c["status"], "succeeded", "{runbook}: {}", step_states(&c));
    }
    s.confirm_checklist(&parent, "day-after");
    let p = s.wait(&parent, "full-outage finished", 90, |v| v["status"] != "running");
    assert_eq!(p["status"], "succeeded", "{}", step_states(&p));
    assert!(ms(&m, "finished_at_ms") < ms(&p, "finished_at_ms"), "the mongo child ended before the parent");

    let rep = report_json(s, &parent);
    let statuses: Vec<(&str, Option<&str>)> = rep["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| (p["step"].as_str().unwrap_or("?"), p["child_status"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [("mongo", Some("succeeded")), ("redis", Some("succeeded")), ("api", Some("succeeded"))],
        "the report gives a part the status its child had when it recovered, not how it ended"
    );
}

/// `[environments.staging]` (param defaults, its agents, cluster, secret and
/// namespace) and `[environments.prod]` holding other ones.
fn environments_toml() -> String {
    format!(
        "\n[environments.staging]\nagents = \"env=staging\"\natlas_project = \"{PROJECT}\"\natlas_clusters = [\"chat-staging\"]\n\
         secrets = [\"{SECRET_ID}\"]\nnamespaces = [\"{NS}\"]\n\
         params = {{ project_id = \"{PROJECT}\", cluster = \"chat-staging\", secret_id = \"{SECRET_ID}\", namespace = \"{NS}\" }}\n\n\
         [environments.prod]\nagents = \"env=prod\"\natlas_project = \"{PROJECT}\"\natlas_clusters = [\"{SOURCE}\"]\n\
         secrets = [\"chat-app/prod/database\"]\nnamespaces = [\"prod\"]\n"
    )
}

#[test]
fn a_staging_full_outage_drill_whose_redis_part_would_reach_a_prod_agent_is_refused_at_start() {
    let mut s = setup_with(Switch::Secret, |_| {}, &environments_toml());
    for (id, env) in [("cache-staging", "staging"), ("cache-prod", "prod")] {
        s.cluster.start_agent(&AgentSpec::new(id).label("role", "redis").label("env", env));
    }
    s.cluster.wait_connected("cache-staging");
    s.cluster.wait_connected("cache-prod");
    let (health, webhook) = (s.api.url("/health"), s.hook.url(HOOK_PATH));
    let (health, webhook) = (format!("health_url={health}"), format!("webhook={webhook}"));
    let drill = |command: &[&str], extra: &[&str]| {
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["full-outage", "--drill", "--env", "staging", "-p", &health, "-p", &webhook]);
        for p in extra {
            args.extend(["-p", p]);
        }
        s.cluster.cli(OPERATOR, &args)
    };

    // redis-aof's default selector, role=redis, matches the prod Redis host
    // too: the guard follows the parent's runbook.run steps into the children.
    let out = drill(&["run"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "the drill started: {stdout}");
    assert!(stderr.contains("nothing was touched"), "{stderr}");
    for child_step in ["fix", "ping", "dbsize"] {
        let line = format!(
            "step redis > {child_step}: agent cache-prod (env=prod,role=redis) belongs to protected environment prod"
        );
        assert!(stderr.contains(&line), "no {line:?} in: {stderr}");
    }
    assert!(!stderr.contains("cache-staging"), "the staging agent was refused: {stderr}");
    assert!(!stderr.contains("step mongo") && !stderr.contains("step api"), "{stderr}");
    // Nothing started, nothing touched.
    assert!(runs(&s).is_empty(), "{:?}", runs(&s));
    assert_eq!(s.atlas.count("POST", &format!("/groups/{PROJECT}/clusters")), 0);
    assert!(s.atlas.snapshots(SOURCE).iter().all(|x| x["snapshotType"] != "onDemand"), "a snapshot was taken");
    assert_eq!(s.kube.patch_count(NS, DEPLOYMENT), 0);
    assert_eq!(s.secret()["mongo_uri"], prod_uri(&s.prod));

    // With the staging host named, the same drill would start.
    let out = drill(&["runbook", "plan"], &["redis_agents=env=staging,role=redis"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("a drill in environment staging would start"), "{stdout}");
    assert!(runs(&s).is_empty(), "plan started a run: {:?}", runs(&s));
}
