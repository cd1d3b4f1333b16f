//! The Atlas client (`ripcord_coordinator::integrations::atlas`) against the
//! fake Atlas of `ripcord_tests::atlas_fake`: both auth methods and token
//! refresh, every action, retries, errors and idempotency.

use ripcord_coordinator::credentials::Credentials;
use ripcord_coordinator::integrations::Outcome;
use ripcord_coordinator::integrations::atlas::{Atlas, AtlasAuth, AtlasConfig, Retry, Secret};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use ripcord_tests::atlas_fake::{FakeAtlas, Options, PROJECT, SNAPSHOT_DAILY, SNAPSHOT_HOURLY, SOURCE};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "mdb_sa_id_65f00000000000000000abcd";
const CLIENT_SECRET: &str = "mdb_sa_sk_s3cr3t-never-in-messages";
const PUBLIC_KEY: &str = "qwertyui";
const PRIVATE_KEY: &str = "0f1e2d3c-private-key-never-in-messages";

struct Setup {
    fake: FakeAtlas,
    atlas: Atlas,
    _dir: tempfile::TempDir,
}

fn client(fake: &FakeAtlas, auth: &str, secret: &str) -> (Atlas, tempfile::TempDir) {
    ripcord_pki::tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{secret}\n")).expect("secret file");
    let auth = match auth {
        "service_account" => AtlasAuth::ServiceAccount { client_id: CLIENT_ID.into(), client_secret_file: file },
        _ => AtlasAuth::ApiKey { public_key: PUBLIC_KEY.into(), private_key_file: file },
    };
    let config = AtlasConfig {
        base_url: fake.base_url(),
        token_url: fake.token_url(),
        auth,
        poll_interval: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(200),
    };
    let atlas = Atlas::new(&config).expect("atlas client").with_retry(Retry {
        attempts: 5,
        base: Duration::from_millis(50),
        max: Duration::from_millis(200),
    });
    (atlas, dir)
}

fn service_account(opts: impl FnOnce(&mut Options)) -> Setup {
    let mut o = Options::service_account(CLIENT_ID, CLIENT_SECRET);
    opts(&mut o);
    let fake = FakeAtlas::start(o);
    let (atlas, dir) = client(&fake, "service_account", CLIENT_SECRET);
    Setup { fake, atlas, _dir: dir }
}

fn api_key(opts: impl FnOnce(&mut Options)) -> Setup {
    let mut o = Options::api_key(PUBLIC_KEY, PRIVATE_KEY);
    opts(&mut o);
    let fake = FakeAtlas::start(o);
    let (atlas, dir) = client(&fake, "api_key", PRIVATE_KEY);
    Setup { fake, atlas, _dir: dir }
}

fn key(step: &str, attempt: u32) -> Key {
    Key { run: "run-1".into(), step: step.into(), attempt }
}

fn args(v: serde_json::Value) -> Value {
    serde_json::from_value(v).expect("args")
}

fn succeeded(o: Outcome) -> BTreeMap<String, Value> {
    match o {
        Outcome::Succeeded(out) => out,
        Outcome::Failed(e) => panic!("expected success, got: {e}"),
    }
}

fn failed(o: Outcome) -> String {
    match o {
        Outcome::Failed(e) => e,
        Outcome::Succeeded(out) => panic!("expected a failure, got {out:?}"),
    }
}

fn s(out: &BTreeMap<String, Value>, k: &str) -> String {
    out.get(k).map(|v| v.to_string()).unwrap_or_else(|| panic!("no output {k} in {out:?}"))
}

fn clusters_path() -> String {
    format!("/groups/{PROJECT}/clusters")
}

fn restore_jobs_path(source: &str) -> String {
    format!("/groups/{PROJECT}/clusters/{source}/backup/restoreJobs")
}

impl Setup {
    async fn run(&self, action: &str, step: &str, a: serde_json::Value) -> Outcome {
        self.atlas.perform(action, &args(a), &key(step, 1)).await
    }

    /// A restore target like the source, IDLE.
    async fn target(&self, name: &str) {
        let out = succeeded(
            self.run("atlas.create_cluster_like", "create", json!({"project": PROJECT, "like": SOURCE, "name": name}))
                .await,
        );
        assert_eq!(s(&out, "name"), name);
        succeeded(self.run("atlas.wait_cluster", "wait", json!({"project": PROJECT, "cluster": name})).await);
    }

    /// No request was refused for its version or its credentials.
    fn assert_clean(&self) {
        for r in self.fake.requests() {
            assert!(r.status != 406 && r.status != 410 && r.status != 415, "{r:?}");
        }
        assert_eq!(self.fake.rejected_credentials(), 0, "{:?}", self.fake.requests());
    }
}

fn unix_now() -> i64 {
    ripcord_pki::clock::now_ms().div_euclid(1000)
}

/// `secs` as RFC 3339 at +02:00, to show the offset is applied.
fn rfc3339_plus_two(secs: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap().to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn service_account_token_is_refreshed_during_a_long_restore() {
    let t = service_account(|o| {
        o.token_lifetime = Duration::from_secs(2);
        o.restore_delay = Duration::from_millis(4500);
    });
    t.target("restore-long").await;
    let at = unix_now() - 600;
    let out = succeeded(
        t.run(
            "atlas.pitr_restore",
            "restore",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-long", "at": rfc3339_plus_two(at)}),
        )
        .await,
    );
    let before = t.fake.tokens_issued();
    let started = Instant::now();
    let waited = succeeded(
        t.run(
            "atlas.wait_restore",
            "wait-restore",
            json!({"project": PROJECT, "source": SOURCE, "job_id": s(&out, "job_id")}),
        )
        .await,
    );
    assert!(started.elapsed() >= Duration::from_secs(3), "the wait should span several tokens");
    assert!(!s(&waited, "finished_at").is_empty());
    // Tokens live 2 s and are refreshed in their second half: the wait
    // needed new ones, and never sent an expired one.
    assert!(t.fake.tokens_issued() >= before + 2, "tokens issued: {} then {}", before, t.fake.tokens_issued());
    assert_eq!(t.fake.expired_token_uses(), 0);
    t.assert_clean();
    let api: Vec<_> = t.fake.requests().into_iter().filter(|r| r.path.starts_with("/groups/")).collect();
    assert!(api.iter().all(|r| r.auth_scheme.as_deref() == Some("Bearer")));
}

#[tokio::test]
async fn api_key_digest_auth_works() {
    let t = api_key(|_| {});
    t.target("restore-digest").await;
    let out = succeeded(
        t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": "restore-digest"})).await,
    );
    assert!(s(&out, "connection_string").starts_with("mongodb+srv://restore-digest."));
    // One challenge, then the nonce is reused with a growing nc.
    assert_eq!(t.fake.count_status(401), 1, "{:?}", t.fake.requests());
    let api: Vec<_> = t.fake.requests().into_iter().filter(|r| r.status != 401).collect();
    assert!(api.len() > 3 && api.iter().all(|r| r.auth_scheme.as_deref() == Some("Digest")));
    t.assert_clean();
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_secret() {
    // Service account: the token endpoint refuses the secret.
    let fake = FakeAtlas::start(Options::service_account(CLIENT_ID, CLIENT_SECRET));
    let wrong = "mdb_sa_sk_wrong-secret-value";
    let (atlas, _dir) = client(&fake, "service_account", wrong);
    let e = failed(
        atlas.perform("atlas.wait_cluster", &args(json!({"project": PROJECT, "cluster": SOURCE})), &key("w", 1)).await,
    );
    assert!(e.starts_with("atlas rejected the credentials (HTTP 401): check the service account client id"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(CLIENT_SECRET), "{e}");
    assert_eq!(fake.tokens_issued(), 0);

    // API key: the digest answer is wrong.
    let fake = FakeAtlas::start(Options::api_key(PUBLIC_KEY, PRIVATE_KEY));
    let wrong = "not-the-private-key-1234";
    let (atlas, _dir) = client(&fake, "api_key", wrong);
    let e = failed(
        atlas.perform("atlas.wait_cluster", &args(json!({"project": PROJECT, "cluster": SOURCE})), &key("w", 1)).await,
    );
    assert!(e.starts_with("atlas rejected the credentials (HTTP 401): check the API key \"qwertyui\""), "{e}");
    assert!(!e.contains(wrong) && !e.contains(PRIVATE_KEY), "{e}");
    assert!(fake.rejected_credentials() >= 1);
}

#[tokio::test]
async fn create_cluster_like_copies_the_spec_and_is_idempotent() {
    let t = service_account(|_| {});
    let a = json!({"project": PROJECT, "like": SOURCE, "name": "restore-a"});
    let out = succeeded(t.run("atlas.create_cluster_like", "create", a.clone()).await);
    assert_eq!(s(&out, "name"), "restore-a");
    assert_eq!(s(&out, "state"), "CREATING");
    assert_eq!(s(&out, "region"), "US_EAST_1");
    assert_eq!(s(&out, "mongo_version"), "7.0");
    let body = t.fake.last_body("POST", &clusters_path()).expect("create body");
    assert_eq!(body["mongoDBMajorVersion"], "7.0");
    assert_eq!(body["backupEnabled"], true);
    assert_eq!(body["pitEnabled"], true);
    let rc = &body["replicationSpecs"][0]["regionConfigs"][0];
    assert_eq!(rc["providerName"], "AWS");
    assert_eq!(rc["regionName"], "US_EAST_1");
    assert_eq!(rc["electableSpecs"]["instanceSize"], "M20");
    assert_eq!(rc["electableSpecs"]["nodeCount"], 3);
    assert!(body.get("id").is_none() && body["replicationSpecs"][0].get("id").is_none(), "{body}");
    let post = t.fake.requests().into_iter().find(|r| r.method == "POST" && r.path == clusters_path()).unwrap();
    assert_eq!(post.accept.as_deref(), Some("application/vnd.atlas.2024-10-23+json"));
    assert_eq!(post.content_type.as_deref(), Some("application/vnd.atlas.2024-10-23+json"));

    // A second attempt (a coordinator restart) finds it instead of creating another.
    let again = succeeded(t.atlas.perform("atlas.create_cluster_like", &args(a), &key("create", 2)).await);
    assert_eq!(s(&again, "name"), "restore-a");
    assert_eq!(t.fake.count("POST", &clusters_path()), 1);

    // Another region and instance size.
    let out = succeeded(
        t.run(
            "atlas.create_cluster_like",
            "create-dr",
            json!({"project": PROJECT, "like": SOURCE, "name": "restore-dr", "region": "eu-west-1", "instance_size": "M30"}),
        )
        .await,
    );
    assert_eq!(s(&out, "region"), "EU_WEST_1");
    let dr = t.fake.cluster("restore-dr").unwrap();
    let rc = &dr["replicationSpecs"][0]["regionConfigs"][0];
    assert_eq!(rc["regionName"], "EU_WEST_1");
    assert_eq!(rc["electableSpecs"]["instanceSize"], "M30");
    assert_eq!(rc["electableSpecs"]["nodeCount"], 3);
    assert_eq!(dr["mongoDBMajorVersion"], "7.0");
    t.assert_clean();
}

#[tokio::test]
async fn create_cluster_like_refuses_a_major_version_mismatch() {
    let t = service_account(|_| {});
    // A cluster with that name exists but runs another major version.
    t.fake.add_cluster("restore-old", "8.0", "US_EAST_1", "M20", 3, "IDLE");
    let e = failed(
        t.run(
            "atlas.create_cluster_like",
            "create",
            json!({"project": PROJECT, "like": SOURCE, "name": "restore-old"}),
        )
        .await,
    );
    assert!(e.contains("already exists") && e.contains("MongoDB 8.0 instead of 7.0"), "{e}");
    assert_eq!(t.fake.count("POST", &clusters_path()), 0);

    // Atlas creates it with another major version than asked.
    t.fake.create_with_major(Some("8.0"));
    let e = failed(
        t.run(
            "atlas.create_cluster_like",
            "create",
            json!({"project": PROJECT, "like": SOURCE, "name": "restore-new"}),
        )
        .await,
    );
    assert!(e.contains("runs MongoDB 8.0 but chat-prod runs 7.0") && e.contains("same major version"), "{e}");

    // A restore onto a cluster of another major version is refused before Atlas sees it.
    t.fake.add_cluster("restore-v8", "8.0", "US_EAST_1", "M20", 3, "IDLE");
    let e = failed(
        t.run(
            "atlas.pitr_restore",
            "restore",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-v8", "at": rfc3339_plus_two(unix_now() - 60)}),
        )
        .await,
    );
    assert!(e.contains("runs MongoDB 8.0") && e.contains("same major version"), "{e}");
    assert_eq!(t.fake.restore_jobs_created(), 0);
}

#[tokio::test]
async fn wait_cluster_polls_until_idle_and_honours_the_timeout() {
    let t = service_account(|o| o.cluster_create_delay = Duration::from_millis(800));
    succeeded(
        t.run("atlas.create_cluster_like", "create", json!({"project": PROJECT, "like": SOURCE, "name": "restore-w"}))
            .await,
    );
    let get = format!("{}/restore-w", clusters_path());
    let e = failed(
        t.atlas
            .perform_with_timeout(
                "atlas.wait_cluster",
                &args(json!({"project": PROJECT, "cluster": "restore-w"})),
                &key("wait", 1),
                Some(Duration::from_millis(150)),
            )
            .await,
    );
    assert!(e.contains("restore-w is still CREATING after"), "{e}");
    let out = succeeded(t.run("atlas.wait_cluster", "wait", json!({"project": PROJECT, "cluster": "restore-w"})).await);
    assert_eq!(s(&out, "state"), "IDLE");
    assert!(t.fake.count("GET", &get) >= 3, "polled {} times", t.fake.count("GET", &get));
    assert_eq!(t.fake.cluster("restore-w").unwrap()["stateName"], "IDLE");
    t.assert_clean();
}

#[tokio::test]
async fn pitr_restore_sends_the_point_in_time_and_wait_restore_finishes() {
    let t = service_account(|_| {});
    t.target("restore-pit").await;
    let at = unix_now() - 3600;
    let out = succeeded(
        t.run(
            "atlas.pitr_restore",
            "restore",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-pit", "at": rfc3339_plus_two(at)}),
        )
        .await,
    );
    let body = t.fake.last_body("POST", &restore_jobs_path(SOURCE)).expect("restore body");
    assert_eq!(
        body,
        json!({"deliveryType": "pointInTime", "pointInTimeUTCSeconds": at, "targetClusterName": "restore-pit", "targetGroupId": PROJECT})
    );
    assert_eq!(s(&out, "target"), "restore-pit");
    let utc = time::OffsetDateTime::from_unix_timestamp(at).unwrap();
    assert_eq!(s(&out, "restore_point"), utc.format(&time::format_description::well_known::Rfc3339).unwrap());
    assert_eq!(s(&out, "snapshot_id"), SNAPSHOT_HOURLY, "the base snapshot Atlas reports");
    let job_id = s(&out, "job_id");
    let post = t.fake.requests().into_iter().find(|r| r.method == "POST" && r.path.ends_with("restoreJobs")).unwrap();
    assert_eq!(post.accept.as_deref(), Some("application/vnd.atlas.2023-01-01+json"));

    let done = succeeded(
        t.run("atlas.wait_restore", "wait-restore", json!({"project": PROJECT, "source": SOURCE, "job_id": job_id}))
            .await,
    );
    assert_eq!(s(&done, "job_id"), job_id);
    assert!(!s(&done, "finished_at").is_empty());
    assert_eq!(t.fake.restore_jobs(SOURCE)[0]["finishedAt"].as_str(), Some(s(&done, "finished_at").as_str()));
    t.assert_clean();
}

#[tokio::test]
async fn pitr_restore_refuses_unsafe_requests() {
    let t = service_account(|_| {});
    let table = [
        (json!({"source": SOURCE, "target": SOURCE, "at": "2024-05-01T12:00:00Z"}), "onto itself"),
        (json!({"source": SOURCE, "target": "restore-x", "at": "yesterday"}), "not an RFC 3339 time"),
        (json!({"source": SOURCE, "target": "restore-x", "at": "2999-01-01T00:00:00Z"}), "in the future"),
        (json!({"source": SOURCE, "target": "restore-x", "at": rfc3339_plus_two(unix_now() - 30 * 86_400)}), "window"),
        (json!({"source": SOURCE, "target": "restore-x", "at": rfc3339_plus_two(unix_now() - 60)}), "does not exist"),
    ];
    for (mut a, want) in table {
        a["project"] = json!(PROJECT);
        let e = failed(t.run("atlas.pitr_restore", "restore", a.clone()).await);
        assert!(e.contains(want), "{a}: expected {want:?} in {e:?}");
    }
    let e = failed(t.run("atlas.pitr_restore", "restore", json!({"project": "chat", "source": SOURCE})).await);
    assert!(e.contains("bad arguments") && e.contains("missing field"), "{e}");
    assert_eq!(t.fake.restore_jobs_created(), 0);
}

#[tokio::test]
async fn a_failed_restore_fails_the_wait() {
    let t = service_account(|_| {});
    t.target("restore-f").await;
    t.fake.fail_next_restore();
    let out = succeeded(
        t.run(
            "atlas.pitr_restore",
            "restore",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-f", "at": rfc3339_plus_two(unix_now() - 120)}),
        )
        .await,
    );
    let job_id = s(&out, "job_id");
    let e = failed(
        t.run("atlas.wait_restore", "wait-restore", json!({"project": PROJECT, "source": SOURCE, "job_id": job_id}))
            .await,
    );
    assert!(
        e.contains(&format!("restore job {job_id} from chat-prod to restore-f failed: Atlas marked it failed")),
        "{e}"
    );
}

#[tokio::test]
async fn an_expired_restore_fails_the_wait_and_a_new_attempt_starts_a_new_job() {
    let t = service_account(|_| {});
    t.target("restore-e").await;
    t.fake.expire_next_restore();
    let a = json!({"project": PROJECT, "source": SOURCE, "target": "restore-e", "snapshot": SNAPSHOT_DAILY});
    let out = succeeded(t.run("atlas.snapshot_restore", "restore", a.clone()).await);
    let job_id = s(&out, "job_id");
    let e = failed(
        t.run("atlas.wait_restore", "wait-restore", json!({"project": PROJECT, "source": SOURCE, "job_id": job_id}))
            .await,
    );
    assert!(e.contains(&format!("restore job {job_id}")) && e.contains("it expired"), "{e}");
    // An expired job is not reused: the step's next attempt starts again.
    let again = succeeded(t.atlas.perform("atlas.snapshot_restore", &args(a), &key("restore", 2)).await);
    assert_ne!(s(&again, "job_id"), job_id);
    assert_eq!(t.fake.restore_jobs_created(), 2);
}

#[tokio::test]
async fn snapshot_restore_takes_the_latest_or_the_named_snapshot() {
    let t = service_account(|_| {});
    t.target("restore-s1").await;
    t.target("restore-s2").await;
    let latest = succeeded(
        t.run(
            "atlas.snapshot_restore",
            "restore-latest",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-s1", "snapshot": "latest"}),
        )
        .await,
    );
    assert_eq!(s(&latest, "snapshot_id"), SNAPSHOT_HOURLY);
    assert!(!s(&latest, "restore_point").is_empty());
    let body = t.fake.last_body("POST", &restore_jobs_path(SOURCE)).unwrap();
    assert_eq!(
        body,
        json!({"deliveryType": "automated", "snapshotId": SNAPSHOT_HOURLY, "targetClusterName": "restore-s1", "targetGroupId": PROJECT})
    );
    let named = succeeded(
        t.run(
            "atlas.snapshot_restore",
            "restore-named",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-s2", "snapshot": SNAPSHOT_DAILY}),
        )
        .await,
    );
    assert_eq!(s(&named, "snapshot_id"), SNAPSHOT_DAILY);
    assert_eq!(s(&named, "target"), "restore-s2");
    let e = failed(
        t.run(
            "atlas.snapshot_restore",
            "restore-missing",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-s2", "snapshot": "65a0c0ffee0000000000ffff"}),
        )
        .await,
    );
    assert!(e.contains("has no snapshot 65a0c0ffee0000000000ffff"), "{e}");
    t.assert_clean();
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after() {
    let t = service_account(|_| {});
    t.fake.throttle_next(2, 1);
    let started = Instant::now();
    let out = succeeded(t.run("atlas.wait_cluster", "wait", json!({"project": PROJECT, "cluster": SOURCE})).await);
    assert_eq!(s(&out, "state"), "IDLE");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After: 1 twice, took {:?}", started.elapsed());
    assert_eq!(t.fake.count_status(429), 2);
    assert_eq!(t.fake.count("GET", &format!("{}/{SOURCE}", clusters_path())), 3);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let t = api_key(|_| {});
    t.fake.fail_next(2);
    let out = succeeded(t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": SOURCE})).await);
    assert!(s(&out, "connection_string").starts_with("mongodb+srv://chat-prod."));
    assert_eq!(t.fake.count_status(500), 2);

    // More failures than attempts: Atlas's error, as Atlas said it.
    t.fake.fail_next(10);
    let e = failed(t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": SOURCE})).await);
    assert_eq!(e, "atlas: UNEXPECTED_ERROR: Unexpected error. (HTTP 500)");
    t.fake.fail_next(0);

    // A 404 is not retried, and carries Atlas's code and detail.
    let e = failed(t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": "nope"})).await);
    assert_eq!(e, format!("atlas: CLUSTER_NOT_FOUND: No cluster named nope exists in group {PROJECT}. (HTTP 404)"));
}

#[tokio::test]
async fn pitr_restore_twice_starts_one_job() {
    let t = service_account(|_| {});
    t.target("restore-once").await;
    let a = json!({"project": PROJECT, "source": SOURCE, "target": "restore-once", "at": rfc3339_plus_two(unix_now() - 300)});
    let first = succeeded(t.atlas.perform("atlas.pitr_restore", &args(a.clone()), &key("restore", 1)).await);
    // The same step performed again (after a coordinator restart), and its next attempt.
    let second = succeeded(t.atlas.perform("atlas.pitr_restore", &args(a.clone()), &key("restore", 1)).await);
    let third = succeeded(t.atlas.perform("atlas.pitr_restore", &args(a), &key("restore", 2)).await);
    assert_eq!(t.fake.restore_jobs_created(), 1);
    assert_eq!(s(&first, "job_id"), s(&second, "job_id"));
    assert_eq!(s(&first, "job_id"), s(&third, "job_id"));
    assert_eq!(t.fake.count("POST", &restore_jobs_path(SOURCE)), 1);
}

#[tokio::test]
async fn a_lost_answer_to_a_restore_request_does_not_start_a_second_job() {
    let t = service_account(|_| {});
    t.target("restore-lost").await;
    t.fake.lose_next_restore_answer();
    let at = unix_now() - 300;
    let out = succeeded(
        t.run(
            "atlas.pitr_restore",
            "restore",
            json!({"project": PROJECT, "source": SOURCE, "target": "restore-lost", "at": rfc3339_plus_two(at)}),
        )
        .await,
    );
    assert_eq!(t.fake.restore_jobs_created(), 1);
    assert_eq!(t.fake.count("POST", &restore_jobs_path(SOURCE)), 1);
    assert_eq!(s(&out, "job_id"), t.fake.restore_jobs(SOURCE)[0]["id"].as_str().unwrap());
}

#[tokio::test]
async fn connection_string_with_and_without_credentials() {
    let t = service_account(|o| o.cluster_create_delay = Duration::from_secs(30));
    let out = succeeded(t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": SOURCE})).await);
    let cs = s(&out, "connection_string");
    assert!(cs.starts_with("mongodb+srv://chat-prod.") && cs.ends_with(".mongodb.net"), "{cs}");
    assert_eq!(s(&out, "host"), cs.trim_start_matches("mongodb+srv://"));

    let e = failed(
        t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": SOURCE, "credentials": "chatdb"}))
            .await,
    );
    assert!(e.contains("no credentials named \"chatdb\" are configured in the coordinator"), "{e}");

    let creds = Credentials::from_entries([("chatdb".into(), (Some("chat app".into()), Secret::new("p@ss:w/rd")))]);
    let atlas = t.atlas.clone().with_credentials(creds.expect("credentials"));
    let out = succeeded(
        atlas
            .perform(
                "atlas.connection_string",
                &args(json!({"project": PROJECT, "cluster": SOURCE, "credentials": "chatdb"})),
                &key("cs", 1),
            )
            .await,
    );
    let host = s(&out, "host");
    assert_eq!(s(&out, "connection_string"), format!("mongodb+srv://chat%20app:p%40ss%3Aw%2Frd@{host}"));

    // A cluster still being created has none yet.
    succeeded(
        t.run("atlas.create_cluster_like", "create", json!({"project": PROJECT, "like": SOURCE, "name": "restore-c"}))
            .await,
    );
    let e = failed(t.run("atlas.connection_string", "cs", json!({"project": PROJECT, "cluster": "restore-c"})).await);
    assert!(e.contains("no connection string yet (state CREATING)"), "{e}");
}

#[tokio::test]
async fn take_snapshot_waits_for_completion_and_is_idempotent() {
    let t = api_key(|_| {});
    let a = json!({"project": PROJECT, "cluster": SOURCE, "description": "before the index rebuild"});
    let out = succeeded(t.run("atlas.take_snapshot", "snap", a.clone()).await);
    let id = s(&out, "snapshot_id");
    let snaps = t.fake.snapshots(SOURCE);
    let snap = snaps.iter().find(|x| x["id"] == id.as_str()).expect("snapshot in the fake");
    assert_eq!(snap["status"], "completed");
    assert!(snap["description"].as_str().unwrap().starts_with("before the index rebuild"));
    let path = format!("{}/{SOURCE}/backup/snapshots", clusters_path());
    let body = t.fake.last_body("POST", &path).unwrap();
    assert_eq!(body["retentionInDays"], 7);
    // The step again (restart, or its next attempt): the same snapshot.
    let again = succeeded(t.atlas.perform("atlas.take_snapshot", &args(a), &key("snap", 2)).await);
    assert_eq!(s(&again, "snapshot_id"), id);
    assert_eq!(t.fake.count("POST", &path), 1);
    t.assert_clean();
}

#[tokio::test]
async fn delete_cluster_retains_backups_and_is_idempotent() {
    let t = service_account(|_| {});
    t.target("restore-d").await;
    let a = json!({"project": PROJECT, "cluster": "restore-d"});
    let out = succeeded(t.run("atlas.delete_cluster", "delete", a.clone()).await);
    assert_eq!(out.get("deleted"), Some(&Value::Bool(true)));
    let path = format!("{}/restore-d", clusters_path());
    let del = t.fake.requests().into_iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(del.path, path);
    assert_eq!(del.query, "retainBackups=true");
    assert_eq!(del.accept.as_deref(), Some("application/vnd.atlas.2023-02-01+json"));
    assert_eq!(t.fake.cluster("restore-d").unwrap()["stateName"], "DELETING");
    // Again while DELETING, and once gone: nothing more is sent.
    succeeded(t.run("atlas.delete_cluster", "delete", a.clone()).await);
    let gone = succeeded(
        t.run(
            "atlas.wait_cluster",
            "wait-gone",
            json!({"project": PROJECT, "cluster": "restore-d", "state": "DELETED"}),
        )
        .await,
    );
    assert_eq!(s(&gone, "state"), "DELETED");
    succeeded(t.run("atlas.delete_cluster", "delete", a).await);
    assert_eq!(t.fake.count("DELETE", &path), 1);
    assert!(t.fake.cluster("restore-d").is_none());
    t.assert_clean();
}

/// The fake itself: a missing or wrong version is 406, an older one 410,
/// no credentials 401, all in Atlas's error shape.
#[test]
fn fake_enforces_versions_and_auth() {
    use std::io::{Read, Write};
    let fake = FakeAtlas::start(Options::service_account(CLIENT_ID, CLIENT_SECRET));
    let raw = |req: String| -> (u16, String, serde_json::Value) {
        let mut c = std::net::TcpStream::connect(&fake.addr).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), serde_json::from_str(body).unwrap())
    };
    let basic =
        ripcord_coordinator::integrations::atlas::base64_encode(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
    let form = "grant_type=client_credentials";
    let (status, _, token) = raw(format!(
        "POST /api/oauth/token HTTP/1.1\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ));
    assert_eq!(status, 200, "{token}");
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let get = |accept: Option<&str>, auth: bool| {
        let mut req = format!("GET /api/atlas/v2/groups/{PROJECT}/clusters/{SOURCE} HTTP/1.1\r\n");
        if let Some(a) = accept {
            req.push_str(&format!("Accept: {a}\r\n"));
        }
        if auth {
            req.push_str(&format!("Authorization: Bearer {bearer}\r\n"));
        }
        req.push_str("\r\n");
        raw(req)
    };
    let (status, head, body) = get(None, true);
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["error"], 406);
    assert!(head.contains("X-Error-Code: "), "{head}");
    assert_eq!(get(Some("application/json"), true).0, 406);
    assert_eq!(get(Some("application/vnd.atlas.2023-02-01+json"), true).0, 410);
    let (status, _, body) = get(Some("application/vnd.atlas.2024-08-05+json"), false);
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _, body) = get(Some("application/vnd.atlas.2024-08-05+json"), true);
    assert_eq!(status, 200);
    assert_eq!(body["stateName"], "IDLE");
    let keys: Vec<&str> = ["detail", "error", "errorCode", "parameters", "reason"].into();
    let (_, _, err) = get(None, true);
    for k in keys {
        assert!(err.get(k).is_some(), "error body lacks {k}: {err}");
    }
}
