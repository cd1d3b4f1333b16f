//! The cloud end-to-end setup shared by `cloud.rs` and the drill tests: a
//! real coordinator and CLI against the fake Atlas, moto's Secrets Manager,
//! the fake Kubernetes API, two nx-27017 servers and a stand-in chat API.
//! See `cloud.rs` for what each part stands for.

use ripcord_tests::atlas_fake::{self, FakeAtlas, PROJECT, SOURCE};
use ripcord_tests::chat_api::{ChatApi, UriSource};
use ripcord_tests::http::TestServer;
use ripcord_tests::kube_fake::{self, FakeKube};
use ripcord_tests::services::{Moto, NxMongo};
use ripcord_tests::{Cluster, CoordinatorExtras, OPERATOR, step, step_states, text};
use serde_json::{Value as J, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const CLIENT_ID: &str = "mdb_sa_id_65f0000000000000000e2e01";
pub(crate) const CLIENT_SECRET: &str = "mdb_sa_sk_e2e-atlas-secret-never-shown";
pub(crate) const PROD_USER: &str = "chat-app";
pub(crate) const PROD_PASSWORD: &str = "Pr0d-db-pa55word-never-shown";
pub(crate) const SECRET_ID: &str = "chat-app/database";
pub(crate) const NS: &str = "chat";
pub(crate) const DEPLOYMENT: &str = "api";
pub(crate) const ROOM: &str = "general";

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Switch {
    Secret,
    K8s,
}

pub(crate) struct Setup {
    pub(crate) cluster: Cluster,
    pub(crate) atlas: FakeAtlas,
    pub(crate) moto: Moto,
    pub(crate) prod: NxMongo,
    pub(crate) restored: NxMongo,
    pub(crate) kube: Arc<FakeKube>,
    pub(crate) hook: TestServer,
    pub(crate) api: ChatApi,
    /// The Atlas secret file and kubeconfig the coordinator reads.
    pub(crate) _dir: tempfile::TempDir,
}

/// `n` messages in [`ROOM`], the newest `newest_min_ago` minutes old, and
/// users alice and bob.
pub(crate) fn seed(m: &NxMongo, messages: u32, newest_min_ago: u32) {
    m.python(&format!(
        "db = client.chatdb\n\
         db.users.insert_many([{{'user': 'alice'}}, {{'user': 'bob'}}])\n\
         now = datetime.datetime.now(datetime.timezone.utc)\n\
         db.messages.insert_many([{{'roomId': '{ROOM}', 'text': 'm%d' % i, \
         'createdAt': now - datetime.timedelta(minutes={newest_min_ago} + i)}} for i in range({messages})])\n"
    ));
}

pub(crate) fn prod_uri(prod: &NxMongo) -> String {
    prod.uri_with_credentials(PROD_USER, PROD_PASSWORD)
}

/// What `atlas.connection_string` with `credentials: chatdb` makes of the
/// restored cluster's URI (the password needs no percent-encoding).
pub(crate) fn restored_uri(restored: &NxMongo) -> String {
    restored.uri_with_credentials(PROD_USER, PROD_PASSWORD)
}

pub(crate) fn setup(switch: Switch, atlas_opts: impl FnOnce(&mut atlas_fake::Options)) -> Setup {
    setup_with(switch, atlas_opts, "")
}

/// [`setup`] with more coordinator config (TOML appended to its config).
pub(crate) fn setup_with(switch: Switch, atlas_opts: impl FnOnce(&mut atlas_fake::Options), extra_toml: &str) -> Setup {
    let mut o = atlas_fake::Options::service_account(CLIENT_ID, CLIENT_SECRET);
    o.cluster_create_delay = Duration::from_millis(300);
    o.restore_delay = Duration::from_millis(500);
    atlas_opts(&mut o);
    let atlas = FakeAtlas::start(o);

    let prod = NxMongo::start_with_users(&[(PROD_USER, PROD_PASSWORD)]);
    let restored = NxMongo::start_with_users(&[(PROD_USER, PROD_PASSWORD)]);
    // The damage: most of prod's messages are gone; the restore has them.
    seed(&prod, 2, 1);
    seed(&restored, 7, 6);
    atlas.set_connection_string("restore-", &restored.uri());

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
    let db_password_file = dir.path().join("chatdb-password");
    std::fs::write(&db_password_file, format!("{PROD_PASSWORD}\n")).expect("password file");
    let kubeconfig = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, NS);
    let toml = format!(
        "\n[atlas]\nbase_url = \"{base}\"\ntoken_url = \"{token}\"\npoll_interval = \"50ms\"\nmax_poll_interval = \"200ms\"\n\n\
         [atlas.auth]\nclient_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{secret}\"\n\n\
         [aws]\nendpoint_url = \"{aws}\"\nregion = \"{region}\"\n\n\
         [kube]\nkubeconfig = \"{kubeconfig}\"\nnamespace = \"{NS}\"\npoll_interval = \"100ms\"\n\n\
         [credentials.chatdb]\nuser = \"{PROD_USER}\"\npassword_file = \"{db_password}\"\n{extra_toml}",
        base = atlas.base_url(),
        token = atlas.token_url(),
        secret = secret_file.display(),
        aws = moto.endpoint(),
        region = Moto::REGION,
        kubeconfig = kubeconfig.display(),
        db_password = db_password_file.display(),
    );
    let extras = CoordinatorExtras {
        toml,
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), Moto::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), Moto::SECRET_KEY.into()),
        ],
    };
    let cluster = Cluster::start_with(&[], extras);
    Setup { cluster, atlas, moto, prod, restored, kube, hook, api, _dir: dir }
}

impl Setup {
    pub(crate) fn start(&self, switch: Switch) -> String {
        self.start_with(switch, &[])
    }

    /// mongo-pitr with more params (or overridden ones: the last of a name wins).
    pub(crate) fn start_with(&self, switch: Switch, extra: &[(&str, &str)]) -> String {
        let health = self.api.url("/health");
        let webhook = self.hook.url("/hooks/oncall");
        let switch = match switch {
            Switch::Secret => "secret",
            Switch::K8s => "k8s",
        };
        let mut params = vec![
            ("project_id", PROJECT),
            ("cluster", SOURCE),
            ("switch", switch),
            ("namespace", NS),
            ("deployment", DEPLOYMENT),
            ("health_url", &health),
            ("webhook", &webhook),
        ];
        params.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        params.extend_from_slice(extra);
        self.cluster.start_run("mongo-pitr", &params)
    }

    /// Waits (up to `secs`) until `pred` holds for the run's view.
    pub(crate) fn wait(&self, run: &str, what: &str, secs: u64, pred: impl Fn(&J) -> bool) -> J {
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

    /// Confirms every item of the checklist `id` that its automated check
    /// did not: once it waits and no check is pending (a check that passes
    /// confirms its item, and the step succeeds once every item is).
    pub(crate) fn confirm_checklist(&self, run: &str, id: &str) {
        let checking = |v: &J| {
            step(v, id)["checklist"]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i["check"]["result"] == "pending"))
        };
        let v = self.wait(run, &format!("{id} waiting, its checks done"), 90, |v| {
            v["status"] != "running"
                || step(v, id)["status"] == "succeeded"
                || (step(v, id)["status"] == "waiting" && !checking(v))
        });
        assert!(
            ["waiting", "succeeded"].contains(&step(&v, id)["status"].as_str().unwrap_or_default()),
            "{}",
            step_states(&v)
        );
        let items = step(&v, id)["checklist"].as_array().cloned().unwrap_or_default();
        assert!(!items.is_empty(), "no checklist items: {}", step(&v, id));
        for (i, item) in items.iter().enumerate().filter(|(_, item)| item["confirmed"].is_null()) {
            let out = self.cluster.cli(OPERATOR, &["approve", run, id, "--item", &(i + 1).to_string()]);
            assert!(out.status.success(), "item {}: {:?}", item["text"], text(&out));
        }
    }

    /// Confirms the checklist `id` if the run reaches it (it may fail first).
    pub(crate) fn confirm_checklist_if_waiting(&self, run: &str, id: &str) {
        let v = self.wait(run, &format!("{id} waiting or the run over"), 90, |v| {
            v["status"] != "running" || step(v, id)["status"] == "waiting" || step(v, id)["status"] == "skipped"
        });
        if step(&v, id)["status"] == "waiting" {
            self.confirm_checklist(run, id);
        }
    }

    /// What the on-call was paged with: every webhook message but the
    /// end-of-run report summary (keyed `RUN/report`).
    pub(crate) fn pages(&self) -> Vec<ripcord_tests::http::Seen> {
        let summary = |key: &Option<String>| key.as_deref().is_some_and(|k| k.ends_with("/report"));
        self.hook.requests().into_iter().filter(|r| !summary(&r.key)).collect()
    }

    /// The body of `run`'s report summary, once it arrived (exactly one).
    pub(crate) fn report_summary(&self, run: &str) -> String {
        let key = format!("{run}/report");
        ripcord_tests::eventually(&format!("the report summary {key}"), || {
            let got: Vec<_> = self.hook.requests().into_iter().filter(|r| r.key.as_deref() == Some(&key)).collect();
            match got.as_slice() {
                [one] => Ok(one.body.clone()),
                [] => Err("none yet".to_string()),
                more => Err(format!("{} of them", more.len())),
            }
        })
    }

    /// Makes `who` the on-call (the roster's only contact), reached by a
    /// JSON webhook at `path` of the hook server; no `[escalation]`
    /// section, so the playbook's policy applies. Restarts the coordinator
    /// to read it.
    pub(crate) fn on_call(&mut self, who: &str, path: &str) {
        let file = self._dir.path().join(format!("{who}-hook.url"));
        std::fs::write(&file, format!("{}\n", self.hook.url(path))).expect("webhook file");
        self.cluster.extras.toml.push_str(&format!(
            "\n[contacts.{who}]\nname = \"{who}\"\nroles = [\"on_call\"]\nwebhook_file = \"{}\"\n",
            file.display()
        ));
        self.cluster.restart_coordinator();
    }

    pub(crate) fn secret(&self) -> J {
        serde_json::from_str(&self.moto.secret_value(SECRET_ID)).expect("secret JSON")
    }

    /// No secret in `ripcord show`, `ripcord show --json`, the coordinators'
    /// logs, or anywhere in the coordinator's sled files (run state, events
    /// and effects hold credential tokens, not passwords).
    pub(crate) fn assert_no_leaks(&self, run: &str) {
        let json_out = self.cluster.cli(OPERATOR, &["show", run, "--json"]);
        let plain_out = self.cluster.cli(OPERATOR, &["show", run]);
        assert!(json_out.status.success() && plain_out.status.success());
        // Every coordinator's log (a restart starts a new one).
        let mut log = self.cluster.coordinator.log_text();
        for e in std::fs::read_dir(self.cluster.path()).expect("cluster dir").filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("coordinator-") && name.ends_with(".log") {
                log.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        for (what, text) in [
            ("show --json", String::from_utf8_lossy(&json_out.stdout).into_owned()),
            ("show", String::from_utf8_lossy(&plain_out.stdout).into_owned()),
            ("the coordinator log", log),
        ] {
            for secret in [CLIENT_SECRET, Moto::SECRET_KEY, PROD_PASSWORD] {
                assert!(!text.contains(secret), "{secret} leaked into {what}");
            }
        }
        self.cluster.assert_not_stored(run, &[CLIENT_SECRET, PROD_PASSWORD]);
    }
}

/// The steps a run view's events say failed (`step_failed`), in order:
/// none means nobody had a failure to escalate.
pub(crate) fn failed_steps(v: &J) -> Vec<String> {
    let events = v["events"].as_array().map(Vec::as_slice).unwrap_or_default();
    events
        .iter()
        .filter(|e| e["kind"] == "step_failed")
        .map(|e| e["step"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub(crate) fn port_of(m: &NxMongo) -> String {
    format!("127.0.0.1:{}", m.port)
}
