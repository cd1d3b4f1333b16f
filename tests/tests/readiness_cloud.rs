//! The cloud side of readiness (`ripcord_coordinator::readiness::cloud_checks`)
//! for the built-in runbooks mongo-region and mongo-pitr, against the fake
//! Atlas, a real `moto_server` (Secrets Manager), the fake Kubernetes API
//! and a real `nx-27017` with SCRAM users (MongoDB): all ok on a healthy
//! setup, then each prerequisite broken on its own and named by the exact
//! check, with its fix; no key, password or connection string in any check.
//! Snapshot ages come from `createdAt` set in the fake relative to now.

use ripcord_coordinator::credentials::{Credentials, Secret};
use ripcord_coordinator::integrations::atlas::{Atlas, AtlasAuth, AtlasConfig, Retry};
use ripcord_coordinator::integrations::kube::{Kube, KubeConfig};
use ripcord_coordinator::integrations::mongo::Mongo;
use ripcord_coordinator::integrations::secrets::{Secrets, SecretsConfig};
use ripcord_coordinator::readiness::{Deps, cloud_checks};
use ripcord_engine::readiness::{Check, Status};
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use ripcord_tests::atlas_fake::{FakeAtlas, Options, PROJECT, SOURCE};
use ripcord_tests::kube_fake::{self, FakeKube};
use ripcord_tests::services::{Moto, NxMongo};
use std::collections::BTreeMap;
use std::time::Duration;

const PUBLIC_KEY: &str = "rdyqwert";
const PRIVATE_KEY: &str = "9a8b7c6d-readiness-private-key";
const WRONG_KEY: &str = "1f2e3d4c-wrong-private-key";
const CLIENT_ID: &str = "mdb_sa_id_65f00000000000000000beef";
const CLIENT_SECRET: &str = "mdb_sa_sk_readiness-s3cr3t";
const DR: &str = "AP_NORTHEAST_1";
const SECRET_ID: &str = "chat-app/database";
const NS: &str = "chat";
const DB_USER: &str = "chat-app";
const DB_PASSWORD: &str = "Db-Pa55w0rd-readiness";

fn builtin(id: &str) -> Runbook {
    ripcord_engine::check::check(ripcord_engine::builtin::get(id).expect("built-in")).expect("valid runbook")
}

/// The runbook's defaults and the params of this setup.
fn params(rb: &Runbook) -> BTreeMap<String, Value> {
    let mut p: BTreeMap<String, Value> =
        rb.params.iter().filter_map(|p| Some((p.name.clone(), p.default.clone()?))).collect();
    for (k, v) in [
        ("project_id", PROJECT),
        ("cluster", SOURCE),
        ("dr_region", "ap-northeast-1"),
        ("namespace", NS),
        ("deployment", "api"),
        ("secret_id", SECRET_ID),
        ("db_credentials", "chatdb"),
        ("health_url", "http://127.0.0.1:9/health"),
        ("webhook", "http://127.0.0.1:9/hook"),
        ("restore_to", "2024-05-01T12:00:00Z"),
    ] {
        if rb.params.iter().any(|q| q.name == k) {
            p.insert(k.to_string(), Value::str(v));
        }
    }
    p
}

fn quick() -> Retry {
    Retry { attempts: 2, base: Duration::from_millis(20), max: Duration::from_millis(50) }
}

/// A fake Atlas that takes an API key, healthy for mongo-region: a
/// snapshot two minutes old and copies to the DR region.
fn healthy_atlas() -> FakeAtlas {
    let fake = FakeAtlas::start(Options::api_key(PUBLIC_KEY, PRIVATE_KEY));
    fake.add_snapshot(SOURCE, Duration::from_secs(120));
    fake.add_copy_setting(SOURCE, DR, &["HOURLY", "DAILY"], true);
    fake
}

/// An Atlas client of `fake` with the API key's private key `private`.
fn atlas_client(fake: &FakeAtlas, private: &str, dir: &tempfile::TempDir) -> Atlas {
    ripcord_pki::tls::install_crypto_provider();
    let file = dir.path().join("atlas-private-key");
    std::fs::write(&file, format!("{private}\n")).expect("key file");
    let config = AtlasConfig {
        base_url: fake.base_url(),
        token_url: fake.token_url(),
        auth: AtlasAuth::ApiKey { public_key: PUBLIC_KEY.into(), private_key_file: file },
        poll_interval: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(200),
    };
    Atlas::new(&config).expect("atlas client").with_retry(quick())
}

async fn secrets_client(moto: &Moto) -> Secrets {
    ripcord_pki::tls::install_crypto_provider();
    let config = SecretsConfig { endpoint_url: Some(moto.endpoint()), region: Some(Moto::REGION.into()) };
    Secrets::with_static_credentials(&config, Moto::ACCESS_KEY, Moto::SECRET_KEY).await
}

async fn kube_client(fake: &FakeKube, dir: &tempfile::TempDir) -> Kube {
    ripcord_pki::tls::install_crypto_provider();
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path, NS);
    Kube::new(&KubeConfig { kubeconfig: Some(path), ..KubeConfig::default() }).await.expect("kube client")
}

fn credentials(password: &str) -> Credentials {
    Credentials::from_entries([("chatdb".to_string(), (Some(DB_USER.to_string()), Secret::new(password)))])
        .expect("credentials")
}

/// The check with exactly this subject.
fn find<'a>(checks: &'a [Check], subject: &str) -> &'a Check {
    checks.iter().find(|c| c.subject == subject).unwrap_or_else(|| {
        let all: Vec<String> = checks.iter().map(|c| format!("{} [{}]", c.subject, c.status.as_str())).collect();
        panic!("no check {subject:?} among:\n  {}", all.join("\n  "))
    })
}

/// `subject` has `status`, and its fix contains `fix` (ok checks have none).
fn expect(checks: &[Check], subject: &str, status: Status, fix: &str) -> Check {
    let c = find(checks, subject).clone();
    assert_eq!(c.status, status, "{c:#?}");
    if status == Status::Ok {
        assert!(c.fix.is_empty(), "{c:#?}");
    } else {
        assert!(c.fix.contains(fix), "fix of {subject} should contain {fix:?}: {c:#?}");
    }
    c
}

/// No check says any of `secrets`.
fn assert_secret_free(checks: &[Check], secrets: &[&str]) {
    let text = format!("{checks:?}");
    for s in secrets {
        assert!(!text.contains(s), "{s:?} in the checks: {text}");
    }
}

fn cluster(what: &str) -> String {
    format!("atlas cluster {PROJECT}/{SOURCE}: {what}")
}

fn auth_subject() -> String {
    format!("atlas project {PROJECT}: authentication")
}

/// Only Atlas: the other integrations warn, unconfigured.
async fn atlas_only(fake: &FakeAtlas, id: &str, rpo: Option<Duration>) -> Vec<Check> {
    let dir = tempfile::tempdir().expect("temp dir");
    let atlas = atlas_client(fake, PRIVATE_KEY, &dir);
    let rb = builtin(id);
    let deps = Deps { atlas: Some(&atlas), ..Deps::none(ripcord_pki::clock::now_ms()) };
    cloud_checks(&rb, &params(&rb), rpo, &deps).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_is_all_ok() {
    let fake = healthy_atlas();
    let moto = Moto::start();
    moto.create_secret(SECRET_ID, r#"{"mongo_uri": "mongodb://old.example:27017/chatdb", "other": "x"}"#);
    let kube_fake = FakeKube::start(kube_fake::Options::default());
    kube_fake.add_deployment(NS, "api", 2, &[("api", &[("PORT", "8080")])]);
    let nx = NxMongo::start_with_users(&[(DB_USER, DB_PASSWORD)]);
    fake.set_connection_string(SOURCE, &nx.uri());

    let dir = tempfile::tempdir().expect("temp dir");
    let atlas = atlas_client(&fake, PRIVATE_KEY, &dir);
    let secrets = secrets_client(&moto).await;
    let kube = kube_client(&kube_fake, &dir).await;
    let mongo = Mongo::new();
    let creds = credentials(DB_PASSWORD);
    let deps = Deps {
        atlas: Some(&atlas),
        secrets: Some(&secrets),
        kube: Some(&kube),
        mongo: Some(&mongo),
        credentials: Some(&creds),
        now_ms: ripcord_pki::clock::now_ms(),
    };
    let rb = builtin("mongo-region");
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;

    let subjects: Vec<&str> = checks.iter().map(|c| c.subject.as_str()).collect();
    let want = [
        auth_subject(),
        cluster("backup"),
        cluster("point-in-time restore"),
        cluster("restore window"),
        cluster("newest snapshot"),
        cluster(&format!("snapshot copies to {DR}")),
        format!("aws secret {SECRET_ID}"),
        format!("k8s deployment {NS}/api"),
        format!("mongo login chatdb on {PROJECT}/{SOURCE}"),
    ];
    assert_eq!(subjects, want, "{checks:#?}");
    for c in &checks {
        assert_eq!(c.status, Status::Ok, "{c:#?}");
        assert_eq!(c.runbook.as_deref(), Some("mongo-region"));
        assert!(c.fix.is_empty() && !c.measured.is_empty() && !c.limit.is_empty(), "{c:#?}");
    }
    assert!(find(&checks, &cluster("newest snapshot")).measured.contains("taken 2m ago"), "{checks:#?}");
    assert!(find(&checks, &format!("mongo login chatdb on {PROJECT}/{SOURCE}")).measured.contains("as chatdb"));
    assert_eq!(nx.logins(), [DB_USER], "one SCRAM login");
    assert_secret_free(&checks, &[PRIVATE_KEY, DB_PASSWORD, "mongo_uri\": \"mongodb://old"]);
    // Nothing was changed: reads only.
    assert!(fake.requests().iter().all(|r| r.method == "GET"), "{:?}", fake.requests());
    assert_eq!(kube_fake.patches().len(), 0);
    assert_eq!(moto.versions(SECRET_ID).len(), 1);
}

#[tokio::test]
async fn point_in_time_restore_off_fails_a_pitr_runbook_and_warns_a_snapshot_one() {
    let fake = healthy_atlas();
    fake.set_pit_enabled(SOURCE, false);
    let pitr = atlas_only(&fake, "mongo-pitr", None).await;
    let c = expect(
        &pitr,
        &cluster("point-in-time restore"),
        Status::Fail,
        &format!(
            "turn on Continuous Cloud Backup for cluster {SOURCE} in project {PROJECT} (Atlas: Backup → Edit policy)"
        ),
    );
    assert!(c.measured.contains("pitEnabled false"), "{c:#?}");
    expect(&pitr, &cluster("backup"), Status::Ok, "");
    assert!(pitr.iter().all(|c| c.subject != cluster("restore window")), "no window without PIT: {pitr:#?}");
    let region = atlas_only(&fake, "mongo-region", None).await;
    expect(&region, &cluster("point-in-time restore"), Status::Warn, "turn on Continuous Cloud Backup");
}

#[tokio::test]
async fn backup_off_fails() {
    let fake = healthy_atlas();
    fake.set_backup_enabled(SOURCE, false);
    let checks = atlas_only(&fake, "mongo-region", None).await;
    expect(&checks, &cluster("backup"), Status::Fail, &format!("turn on Cloud Backup for cluster {SOURCE}"));
}

#[tokio::test]
async fn a_restore_window_shorter_than_the_rpo_fails() {
    let fake = healthy_atlas();
    fake.set_restore_window_days(SOURCE, 2);
    let checks = atlas_only(&fake, "mongo-pitr", Some(Duration::from_secs(3 * 86_400))).await;
    let c = expect(
        &checks,
        &cluster("restore window"),
        Status::Fail,
        &format!("set the restore window of cluster {SOURCE} in project {PROJECT} to at least 3 days"),
    );
    assert_eq!(c.measured, "2 days, shorter than the RPO");
    assert_eq!(c.limit, "at least the RPO, 3d");
    let fine = atlas_only(&fake, "mongo-pitr", Some(Duration::from_secs(86_400))).await;
    expect(&fine, &cluster("restore window"), Status::Ok, "");
}

#[tokio::test]
async fn a_snapshot_older_than_the_rpo_fails_a_snapshot_runbook() {
    let fake = healthy_atlas();
    fake.clear_snapshots(SOURCE);
    let id = fake.add_snapshot(SOURCE, Duration::from_secs(2 * 3600 + 30));
    // mongo-region's RPO is 5m; it restores the latest snapshot.
    let checks = atlas_only(&fake, "mongo-region", None).await;
    let c = expect(
        &checks,
        &cluster("newest snapshot"),
        Status::Fail,
        &format!("take snapshots of cluster {SOURCE} in project {PROJECT} at least every 5m"),
    );
    assert_eq!(c.measured, format!("{id} taken 2h ago"));
    assert_eq!(c.limit, "younger than the RPO, 5m");
    // A point-in-time runbook is only warned: its recovery point is not the snapshot.
    let pitr = atlas_only(&fake, "mongo-pitr", None).await;
    expect(&pitr, &cluster("newest snapshot"), Status::Warn, "at least every 5m");
}

#[tokio::test]
async fn no_snapshot_at_all_fails() {
    let fake = healthy_atlas();
    fake.clear_snapshots(SOURCE);
    let checks = atlas_only(&fake, "mongo-pitr", None).await;
    let c = expect(&checks, &cluster("newest snapshot"), Status::Fail, "Take Snapshot Now");
    assert_eq!(c.measured, "no completed snapshot");
}

#[tokio::test]
async fn no_copy_to_the_dr_region_fails() {
    let fake = FakeAtlas::start(Options::api_key(PUBLIC_KEY, PRIVATE_KEY));
    fake.add_snapshot(SOURCE, Duration::from_secs(60));
    let checks = atlas_only(&fake, "mongo-region", None).await;
    let subject = cluster(&format!("snapshot copies to {DR}"));
    let c =
        expect(&checks, &subject, Status::Fail, &format!("add a copy setting for {DR} to the cluster's backup policy"));
    assert_eq!(c.measured, "no copy settings");
    fake.add_copy_setting(SOURCE, "EU_WEST_1", &["HOURLY"], false);
    let checks = atlas_only(&fake, "mongo-region", None).await;
    let c = expect(&checks, &subject, Status::Fail, &format!("add a copy setting for {DR}"));
    assert_eq!(c.measured, "copies go to EU_WEST_1 only");
    // mongo-pitr creates no cluster in another region: no copy check.
    let pitr = atlas_only(&fake, "mongo-pitr", None).await;
    assert!(pitr.iter().all(|c| !c.subject.contains("snapshot copies")), "{pitr:#?}");
}

#[tokio::test]
async fn a_bad_atlas_key_is_named_and_never_shown() {
    let fake = healthy_atlas();
    let dir = tempfile::tempdir().expect("temp dir");
    let atlas = atlas_client(&fake, WRONG_KEY, &dir);
    let rb = builtin("mongo-region");
    let creds = credentials(DB_PASSWORD);
    let mongo = Mongo::new();
    let deps = Deps {
        atlas: Some(&atlas),
        mongo: Some(&mongo),
        credentials: Some(&creds),
        ..Deps::none(ripcord_pki::clock::now_ms())
    };
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &auth_subject(), Status::Fail, "check the API key / service account in [atlas]");
    assert_eq!(c.measured, "Atlas authentication failed (HTTP 401)");
    // Its clusters are not asked about, and say why.
    let cl = expect(&checks, &format!("atlas cluster {PROJECT}/{SOURCE}"), Status::Warn, "authentication");
    assert!(cl.measured.starts_with("not checked"), "{cl:#?}");
    assert!(checks.iter().all(|c| !c.subject.starts_with(&format!("atlas cluster {PROJECT}/{SOURCE}:"))));
    // The login needs the connection string from Atlas: not checked either.
    let login = expect(
        &checks,
        &format!("mongo login chatdb on {PROJECT}/{SOURCE}"),
        Status::Warn,
        &format!("fix the check \"{}\" first", auth_subject()),
    );
    assert!(login.measured.starts_with("not checked"), "{login:#?}");
    assert_eq!(
        c.fix,
        format!(
            "check the API key / service account in [atlas]: the API key \"{PUBLIC_KEY}\" and the private key in {} \
             (Atlas: UNAUTHORIZED: You are not authorized for this resource.)",
            dir.path().join("atlas-private-key").display()
        )
    );
    assert_secret_free(&checks, &[WRONG_KEY, PRIVATE_KEY, DB_PASSWORD]);

    // A service account with a wrong secret: the token endpoint refuses it.
    let sa = FakeAtlas::start(Options::service_account(CLIENT_ID, CLIENT_SECRET));
    let file = dir.path().join("client-secret");
    std::fs::write(&file, "mdb_sa_sk_wrong-secret-value\n").expect("secret file");
    let config = AtlasConfig {
        base_url: sa.base_url(),
        token_url: sa.token_url(),
        auth: AtlasAuth::ServiceAccount { client_id: CLIENT_ID.into(), client_secret_file: file },
        poll_interval: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(200),
    };
    let atlas = Atlas::new(&config).expect("client").with_retry(quick());
    let deps = Deps { atlas: Some(&atlas), ..Deps::none(ripcord_pki::clock::now_ms()) };
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &auth_subject(), Status::Fail, CLIENT_ID);
    assert!(c.measured.starts_with("Atlas authentication failed (HTTP "), "{c:#?}");
    assert_secret_free(&checks, &["mdb_sa_sk_wrong-secret-value", CLIENT_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_deployment_fails() {
    let kube_fake = FakeKube::start(kube_fake::Options::default());
    kube_fake.add_deployment(NS, "web", 1, &[("web", &[])]);
    let dir = tempfile::tempdir().expect("temp dir");
    let kube = kube_client(&kube_fake, &dir).await;
    let rb = builtin("mongo-region");
    let deps = Deps { kube: Some(&kube), ..Deps::none(ripcord_pki::clock::now_ms()) };
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &format!("k8s deployment {NS}/api"), Status::Fail, &format!("create Deployment {NS}/api"));
    assert_eq!(c.measured, format!("missing Deployment {NS}/api"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unreadable_secret_fails() {
    let moto = Moto::start();
    let secrets = secrets_client(&moto).await;
    let rb = builtin("mongo-region");
    let deps = Deps { secrets: Some(&secrets), ..Deps::none(ripcord_pki::clock::now_ms()) };
    let subject = format!("aws secret {SECRET_ID}");
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &subject, Status::Fail, &format!("create secret {SECRET_ID} in us-east-1"));
    assert_eq!(c.measured, format!("missing secret {SECRET_ID}"));

    moto.create_secret(SECRET_ID, "not json at all");
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &subject, Status::Fail, "as a JSON object");
    assert_eq!(c.measured, "readable, but its value is not a JSON object");
    assert_secret_free(&checks, &["not json at all"]);

    let refusing = Moto::start_checking_auth();
    let secrets = secrets_client(&refusing).await;
    let deps = Deps { secrets: Some(&secrets), ..Deps::none(ripcord_pki::clock::now_ms()) };
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &subject, Status::Fail, "secretsmanager:DescribeSecret, GetSecretValue and PutSecretValue");
    assert!(
        c.measured.starts_with(&format!("AWS refused the credentials for DescribeSecret on {SECRET_ID} (")),
        "{c:#?}"
    );
    assert_secret_free(&checks, &[Moto::SECRET_KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_mongo_login_fails_without_showing_the_password() {
    let fake = healthy_atlas();
    let nx = NxMongo::start_with_users(&[(DB_USER, DB_PASSWORD)]);
    fake.set_connection_string(SOURCE, &nx.uri());
    let dir = tempfile::tempdir().expect("temp dir");
    let atlas = atlas_client(&fake, PRIVATE_KEY, &dir);
    let mongo = Mongo::new();
    let wrong = "Wr0ng-Pa55w0rd-readiness";
    let creds = credentials(wrong);
    let rb = builtin("mongo-region");
    let deps = Deps {
        atlas: Some(&atlas),
        mongo: Some(&mongo),
        credentials: Some(&creds),
        ..Deps::none(ripcord_pki::clock::now_ms())
    };
    let subject = format!("mongo login chatdb on {PROJECT}/{SOURCE}");
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &subject, Status::Fail, "check [credentials.chatdb] in the coordinator config");
    assert!(c.measured.starts_with("MongoDB refused the login at mongodb://127.0.0.1:"), "{c:#?}");
    assert_secret_free(&checks, &[wrong, &format!("{DB_USER}:")]);
    assert!(nx.logins().is_empty());

    // A credential the coordinator does not hold.
    let none = Credentials::default();
    let deps = Deps { credentials: Some(&none), ..deps };
    let checks = cloud_checks(&rb, &params(&rb), None, &deps).await;
    let c = expect(&checks, &subject, Status::Fail, "add [credentials.chatdb] with user and password_file");
    assert_eq!(c.measured, "the coordinator holds no database credential chatdb (with a user)");
}

#[tokio::test]
async fn unconfigured_integrations_warn_naming_their_section() {
    let rb = builtin("mongo-region");
    let checks = cloud_checks(&rb, &params(&rb), None, &Deps::none(ripcord_pki::clock::now_ms())).await;
    expect(&checks, &auth_subject(), Status::Warn, "add an [atlas] section");
    let c = expect(&checks, &format!("atlas cluster {PROJECT}/{SOURCE}"), Status::Warn, "[atlas]");
    assert!(c.measured.contains("no [atlas] section"), "{c:#?}");
    let c = expect(&checks, &format!("aws secret {SECRET_ID}"), Status::Warn, "add an [aws] section");
    assert!(c.measured.contains("no [aws] section"));
    let c = expect(&checks, &format!("k8s deployment {NS}/api"), Status::Warn, "add a [kube] section");
    assert!(c.measured.contains("no [kube] section"));
    expect(&checks, &format!("mongo login chatdb on {PROJECT}/{SOURCE}"), Status::Warn, "mongo.*");
    assert!(checks.iter().all(|c| c.status == Status::Warn), "{checks:#?}");
}
