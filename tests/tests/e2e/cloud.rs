//! mongo-pitr end to end: a real coordinator and CLI against the fake Atlas,
//! moto's Secrets Manager, the fake Kubernetes API, two nx-27017 servers
//! (the damaged `prod` and what the restore produces, `restored`) and a
//! stand-in chat API that reads its MongoDB URI on every request, so the
//! switch is seen where it matters: in what the app reads.
//!
//! The fake Atlas makes up connection strings (`*.mongodb.net`) and cannot be
//! told one per cluster, so the coordinator talks to it through
//! [`AtlasProxy`], which rewrites the connection strings of the clusters the
//! run creates (`restore-…`) to the `restored` server's URI.

use ripcord_tests::atlas_fake::{self, FakeAtlas, PROJECT, SOURCE};
use ripcord_tests::chat_api::{ChatApi, UriSource};
use ripcord_tests::http::TestServer;
use ripcord_tests::kube_fake::{self, FakeKube};
use ripcord_tests::services::{Moto, NxMongo};
use ripcord_tests::{Cluster, CoordinatorExtras, OPERATOR, step, step_states, text};
use serde_json::{Value as J, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "mdb_sa_id_65f0000000000000000e2e01";
const CLIENT_SECRET: &str = "mdb_sa_sk_e2e-atlas-secret-never-shown";
const PROD_USER: &str = "chat-app";
const PROD_PASSWORD: &str = "Pr0d-db-pa55word-never-shown";
const SECRET_ID: &str = "chat-app/database";
const NS: &str = "chat";
const DEPLOYMENT: &str = "api";
const ROOM: &str = "general";

// ---------------------------------------------------------------------------
// A rewriting proxy in front of the fake Atlas
// ---------------------------------------------------------------------------

/// Forwards every request to the fake Atlas and, in JSON answers describing a
/// cluster whose name starts with `restore-` and that has connection
/// strings, replaces them with `{"standard": uri}`.
struct AtlasProxy {
    addr: String,
}

impl AtlasProxy {
    fn start(upstream: &str, uri: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (upstream, uri) = (upstream.to_string(), uri.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (upstream, uri) = (upstream.clone(), uri.clone());
                std::thread::spawn(move || {
                    let _ = proxy(stream, &upstream, &uri);
                });
            }
        });
        Self { addr }
    }

    fn base_url(&self) -> String {
        format!("http://{}/api/atlas/v2", self.addr)
    }

    fn token_url(&self) -> String {
        format!("http://{}/api/oauth/token", self.addr)
    }
}

/// An HTTP/1.1 message: start line, headers, body.
type Message = (String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 message (start line, headers, Content-Length body);
/// None at end of stream.
fn read_message(r: &mut impl BufRead) -> std::io::Result<Option<Message>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some((start.trim_end().to_string(), headers, body)))
}

fn write_message(w: &mut impl Write, start: &str, headers: &[(String, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("{start}\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn proxy(client: TcpStream, upstream: &str, uri: &str) -> std::io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let server = TcpStream::connect(upstream)?;
    let mut from_server = BufReader::new(server.try_clone()?);
    let mut to_server = server;
    while let Some((start, headers, body)) = read_message(&mut from_client)? {
        write_message(&mut to_server, &start, &headers, &body)?;
        let Some((status, headers, mut body)) = read_message(&mut from_server)? else { return Ok(()) };
        if let Ok(mut doc) = serde_json::from_slice::<J>(&body)
            && doc["name"].as_str().is_some_and(|n| n.starts_with("restore-"))
            && doc["connectionStrings"].as_object().is_some_and(|o| !o.is_empty())
        {
            doc["connectionStrings"] = json!({"standard": uri});
            body = doc.to_string().into_bytes();
        }
        write_message(&mut to_client, &status, &headers, &body)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Switch {
    Secret,
    K8s,
}

struct Setup {
    cluster: Cluster,
    atlas: FakeAtlas,
    _proxy: AtlasProxy,
    moto: Moto,
    prod: NxMongo,
    restored: NxMongo,
    kube: Arc<FakeKube>,
    hook: TestServer,
    api: ChatApi,
    /// The Atlas secret file and kubeconfig the coordinator reads.
    _dir: tempfile::TempDir,
}

/// `n` messages in [`ROOM`], the newest `newest_min_ago` minutes old, and
/// users alice and bob.
fn seed(m: &NxMongo, messages: u32, newest_min_ago: u32) {
    m.python(&format!(
        "db = client.chatdb\n\
         db.users.insert_many([{{'user': 'alice'}}, {{'user': 'bob'}}])\n\
         now = datetime.datetime.now(datetime.timezone.utc)\n\
         db.messages.insert_many([{{'roomId': '{ROOM}', 'text': 'm%d' % i, \
         'createdAt': now - datetime.timedelta(minutes={newest_min_ago} + i)}} for i in range({messages})])\n"
    ));
}

fn prod_uri(prod: &NxMongo) -> String {
    prod.uri_with_credentials(PROD_USER, PROD_PASSWORD)
}

fn setup(switch: Switch, atlas_opts: impl FnOnce(&mut atlas_fake::Options)) -> Setup {
    let mut o = atlas_fake::Options::service_account(CLIENT_ID, CLIENT_SECRET);
    o.cluster_create_delay = Duration::from_millis(300);
    o.restore_delay = Duration::from_millis(500);
    atlas_opts(&mut o);
    let atlas = FakeAtlas::start(o);

    let prod = NxMongo::start();
    let restored = NxMongo::start();
    // The damage: most of prod's messages are gone; the restore has them.
    seed(&prod, 2, 1);
    seed(&restored, 7, 6);
    let proxy = AtlasProxy::start(&atlas.addr, &restored.uri());

    let moto = Moto::start();
    moto.create_secret(SECRET_ID, &json!({"mongo_uri": prod_uri(&prod), "other": "keep"}).to_string());

    let kube = Arc::new(FakeKube::start(kube_fake::Options { tls: true, ..kube_fake::Options::default() }));
    let env: Vec<(&str, String)> = match switch {
        Switch::K8s => vec![("PORT", "8080".into()), ("MONGO_URI", prod_uri(&prod))],
        Switch::Secret => vec![("PORT", "8080".into())],
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    kube.add_deployment(NS, DEPLOYMENT, 2, &[(DEPLOYMENT, &env)]);

    let source = match switch {
        Switch::Secret => UriSource::Secret { endpoint: moto.endpoint(), secret_id: SECRET_ID.into() },
        Switch::K8s => UriSource::Kube {
            kube: Arc::clone(&kube),
            namespace: NS.into(),
            deployment: DEPLOYMENT.into(),
            container: DEPLOYMENT.into(),
        },
    };
    let api = ChatApi::start(source);
    let hook = TestServer::start();

    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("atlas-client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).expect("secret file");
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, NS);
    let toml = format!(
        "\n[atlas]\nbase_url = \"{base}\"\ntoken_url = \"{token}\"\npoll_interval = \"50ms\"\nmax_poll_interval = \"200ms\"\n\n\
         [atlas.auth]\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{secret}\"\n\n\
         [aws]\nendpoint_url = \"{aws}\"\nregion = \"{region}\"\n\n\
         [kube]\nkubeconfig = \"{kubeconfig}\"\nnamespace = \"{NS}\"\npoll_interval = \"100ms\"\n",
        base = proxy.base_url(),
        token = proxy.token_url(),
        secret = secret_file.display(),
        aws = moto.endpoint(),
        region = Moto::REGION,
        kubeconfig = kubeconfig.display(),
    );
    let extras = CoordinatorExtras {
        toml,
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), Moto::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), Moto::SECRET_KEY.into()),
        ],
    };
    let cluster = Cluster::start_with(&[], extras);
    Setup { cluster, atlas, _proxy: proxy, moto, prod, restored, kube, hook, api, _dir: dir }
}

impl Setup {
    fn start(&self, switch: Switch) -> String {
        let health = self.api.url("/health");
        let webhook = self.hook.url("/hooks/oncall");
        let switch = match switch {
            Switch::Secret => "secret",
            Switch::K8s => "k8s",
        };
        self.cluster.start_run(
            "mongo-pitr",
            &[
                ("project_id", PROJECT),
                ("cluster", SOURCE),
                // The coordinator has no database credentials to name.
                ("db_credentials", ""),
                ("switch", switch),
                ("namespace", NS),
                ("deployment", DEPLOYMENT),
                ("health_url", &health),
                ("webhook", &webhook),
            ],
        )
    }

    /// Waits (up to `secs`) until `pred` holds for the run's view.
    fn wait(&self, run: &str, what: &str, secs: u64, pred: impl Fn(&J) -> bool) -> J {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.cluster.view(run);
            if let Ok(v) = &v
                && pred(v)
            {
                return v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for run {run}: {what}; last: {}",
                v.map(|v| format!("status {}, steps {}", v["status"], step_states(&v))).unwrap_or_else(|e| e)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Confirms every item of the checklist `id` once it waits.
    fn confirm_checklist(&self, run: &str, id: &str) {
        let v = self.wait(run, &format!("{id} waiting"), 90, |v| {
            v["status"] != "running" || step(v, id)["status"] == "waiting"
        });
        assert_eq!(step(&v, id)["status"], "waiting", "{}", step_states(&v));
        let items = step(&v, id)["checklist"].as_array().map_or(0, Vec::len);
        assert!(items > 0, "no checklist items: {}", step(&v, id));
        for item in 1..=items {
            let out = self.cluster.cli(OPERATOR, &["approve", run, id, "--item", &item.to_string()]);
            assert!(out.status.success(), "{:?}", text(&out));
        }
    }

    fn secret(&self) -> J {
        serde_json::from_str(&self.moto.secret_value(SECRET_ID)).expect("secret JSON")
    }

    /// No secret in `ripcord show`, `ripcord show --json` or the coordinator's log.
    fn assert_no_leaks(&self, run: &str) {
        let json_out = self.cluster.cli(OPERATOR, &["show", run, "--json"]);
        let plain_out = self.cluster.cli(OPERATOR, &["show", run]);
        assert!(json_out.status.success() && plain_out.status.success());
        let log = self.cluster.coordinator.log_text();
        for (what, text) in [
            ("show --json", String::from_utf8_lossy(&json_out.stdout).into_owned()),
            ("show", String::from_utf8_lossy(&plain_out.stdout).into_owned()),
            ("the coordinator log", log),
        ] {
            for secret in [CLIENT_SECRET, Moto::SECRET_KEY, PROD_PASSWORD] {
                assert!(!text.contains(secret), "{secret} leaked into {what}");
            }
        }
    }
}

fn port_of(m: &NxMongo) -> String {
    format!("127.0.0.1:{}", m.port)
}

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
    assert_ne!(step(&v, "escalate")["status"], "succeeded", "{}", step_states(&v));

    // The secret points at the restored cluster; the other key is kept.
    let secret = s.secret();
    assert_eq!(secret["mongo_uri"], s.restored.uri(), "{secret}");
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

    // The restart rolled the API; no escalation.
    assert!(s.kube.template_annotations(NS, DEPLOYMENT).contains_key("kubectl.kubernetes.io/restartedAt"));
    assert!(s.hook.requests().is_empty(), "{:?}", s.hook.requests());
    s.assert_no_leaks(&run);
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
    assert_eq!(env.get("MONGO_URI"), Some(&s.restored.uri()), "{env:?}");
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
    assert!(s.hook.requests().is_empty(), "{:?}", s.hook.requests());
    s.assert_no_leaks(&run);
}

#[test]
fn mongo_pitr_escalates_when_atlas_fails_the_restore_job() {
    let s = setup(Switch::Secret, |_| {});
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

    // The escalation reached on-call.
    let v = s.wait(&run, "escalation sent", 30, |v| step(v, "escalate")["status"] == "succeeded");
    let hooks = s.hook.requests();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!((hooks[0].method.as_str(), hooks[0].path.as_str()), ("POST", "/hooks/oncall"));
    assert!(hooks[0].body.contains("mongo-pitr could not restore chat-prod"), "{}", hooks[0].body);
    // The webhook is a secret param: not in the view.
    assert!(!v.to_string().contains("/hooks/oncall"), "the webhook URL is shown");

    // Nothing was switched: the app still reads prod.
    assert_eq!(s.secret()["mongo_uri"], prod_uri(&s.prod));
    assert_eq!(s.api.health().1["db"].as_str(), Some(port_of(&s.prod).as_str()));
    assert_eq!(s.atlas.restore_jobs_created(), 1);
    s.assert_no_leaks(&run);
}
