//! The Kubernetes client (`ripcord_coordinator::integrations::kube`) against
//! the fake API server of `ripcord_tests::kube_fake`: every k8s.* action,
//! rollouts that finish and rollouts that get stuck, idempotent steps, env
//! values kept out of every outcome; then the real kubectl against the same
//! fake (skipped when kubectl is not installed).

use ripcord_coordinator::integrations::Outcome;
use ripcord_coordinator::integrations::kube::{Kube, KubeConfig, RESTARTED_AT, RESTARTED_BY};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use ripcord_tests::kube_fake::{FakeKube, Options};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NS: &str = "chat";
const SECRET_URI: &str =
    "mongodb+srv://chat-app:Sup3r-s3cret-pw@chat-restore-1.ab12c.mongodb.net/chatdb?retryWrites=true";
const SECRET_PASSWORD: &str = "Sup3r-s3cret-pw";

struct Setup {
    fake: FakeKube,
    kube: Kube,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

async fn setup(opts: impl FnOnce(&mut Options)) -> Setup {
    ripcord_pki::tls::install_crypto_provider();
    let mut o = Options::default();
    opts(&mut o);
    let fake = FakeKube::start(o);
    fake.add_deployment(NS, "api", 3, &[("api", &[("PORT", "8080"), ("LOG_LEVEL", "info")])]);
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, NS);
    let config = KubeConfig { kubeconfig: Some(kubeconfig.clone()), ..KubeConfig::default() };
    let kube = Kube::new(&config).await.expect("kube client").with_poll_interval(Duration::from_millis(50));
    Setup { fake, kube, kubeconfig, dir }
}

fn key(step: &str, attempt: u32) -> Key {
    Key { run: "run-1".into(), step: step.into(), attempt }
}

fn args(v: serde_json::Value) -> Value {
    serde_json::from_value(v).expect("args")
}

fn succeeded(o: &Outcome) -> BTreeMap<String, Value> {
    match o {
        Outcome::Succeeded(out) => out.clone(),
        Outcome::Failed(e) => panic!("expected success, got: {e}"),
    }
}

fn failed(o: &Outcome) -> String {
    match o {
        Outcome::Succeeded(out) => panic!("expected failure, got: {out:?}"),
        Outcome::Failed(e) => e.clone(),
    }
}

/// Neither the URI nor its password anywhere in an outcome.
fn assert_no_secret(o: &Outcome) {
    let text = format!("{o:?}");
    assert!(!text.contains(SECRET_PASSWORD), "secret in outcome: {text}");
}

fn int(out: &BTreeMap<String, Value>, k: &str) -> i64 {
    match out.get(k) {
        Some(Value::Int(i)) => *i,
        other => panic!("{k}: expected an integer, got {other:?}"),
    }
}

fn wait_rolled_out(fake: &FakeKube, name: &str) {
    ripcord_tests::eventually(&format!("deployment {name} to roll out"), || {
        if fake.rolled_out(NS, name) { Ok(()) } else { Err(format!("{:?}", fake.deployment(NS, name))) }
    });
}

#[tokio::test]
async fn set_env_patches_like_kubectl_and_is_idempotent() {
    let s = setup(|_| {}).await;
    let a = args(json!({"namespace": NS, "deployment": "api", "env": {"MONGO_URI": SECRET_URI}}));
    let o = s.kube.perform("k8s.set_env", &a, &key("switch-env", 1), Some(Duration::from_secs(30))).await;
    assert_no_secret(&o);
    let out = succeeded(&o);
    assert_eq!(int(&out, "generation"), 2);
    assert_eq!(out.get("changed"), Some(&Value::List(vec![Value::str("MONGO_URI")])));
    let env = s.fake.env(NS, "api", "api");
    assert_eq!(env.get("MONGO_URI").map(String::as_str), Some(SECRET_URI));
    assert_eq!(s.fake.env_names(NS, "api", "api"), ["PORT", "LOG_LEVEL", "MONGO_URI"]);
    let patches = s.fake.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].content_type, "application/strategic-merge-patch+json");
    assert_eq!(patches[0].field_manager.as_deref(), Some("ripcord"));
    assert!(patches[0].body["spec"]["template"]["spec"].get("$setElementOrder/containers").is_some());

    // The same step again (a retry, a coordinator restart): no second patch,
    // so no second rollout.
    let again = s.kube.perform("k8s.set_env", &a, &key("switch-env", 2), None).await;
    assert_no_secret(&again);
    let out = succeeded(&again);
    assert_eq!(int(&out, "generation"), 2);
    assert_eq!(out.get("changed"), Some(&Value::List(vec![])));
    assert_eq!(s.fake.patch_count(NS, "api"), 1);
    // set env changes the template: the pods roll.
    wait_rolled_out(&s.fake, "api");

    // A changed value patches again; the namespace defaults to the config's.
    let config = KubeConfig { kubeconfig: Some(s.kubeconfig.clone()), namespace: NS.into(), ..KubeConfig::default() };
    let kube = Kube::new(&config).await.expect("kube client");
    let o = kube
        .perform("k8s.set_env", &args(json!({"deployment": "api", "env": {"LOG_LEVEL": "debug"}})), &key("x", 1), None)
        .await;
    assert_eq!(int(&succeeded(&o), "generation"), 3);
    assert_eq!(s.fake.env(NS, "api", "api").get("LOG_LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(s.fake.env(NS, "api", "api").get("MONGO_URI").map(String::as_str), Some(SECRET_URI));
}

#[tokio::test]
async fn set_env_replaces_a_secret_reference() {
    let s = setup(|_| {}).await;
    s.fake.set_env_from_secret(NS, "api", "api", "MONGO_URI", "chat-db", "uri");
    assert_eq!(s.fake.env(NS, "api", "api").get("MONGO_URI").map(String::as_str), Some("<valueFrom>"));
    let a = args(json!({"namespace": NS, "deployment": "api", "env": {"MONGO_URI": SECRET_URI}}));
    let o = s.kube.perform("k8s.set_env", &a, &key("switch-env", 1), None).await;
    assert_no_secret(&o);
    succeeded(&o);
    let d = s.fake.deployment(NS, "api").expect("deployment");
    let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[2], json!({"name": "MONGO_URI", "value": SECRET_URI}), "{env}");
}

#[tokio::test]
async fn set_env_picks_the_container() {
    let s = setup(|_| {}).await;
    s.fake.add_deployment(NS, "web", 1, &[("proxy", &[]), ("web", &[("A", "1")])]);
    let o = s
        .kube
        .perform(
            "k8s.set_env",
            &args(json!({"namespace": NS, "deployment": "web", "container": "web", "env": {"MONGO_URI": SECRET_URI}})),
            &key("e", 1),
            None,
        )
        .await;
    succeeded(&o);
    assert_eq!(s.fake.env_names(NS, "web", "web"), ["A", "MONGO_URI"]);
    assert!(s.fake.env(NS, "web", "proxy").is_empty());

    // Without `container`, the first one (kubectl's default).
    let o = s
        .kube
        .perform(
            "k8s.set_env",
            &args(json!({"namespace": NS, "deployment": "web", "env": {"X": "1"}})),
            &key("f", 1),
            None,
        )
        .await;
    succeeded(&o);
    assert_eq!(s.fake.env_names(NS, "web", "proxy"), ["X"]);

    let o = s
        .kube
        .perform(
            "k8s.set_env",
            &args(json!({"namespace": NS, "deployment": "web", "container": "db", "env": {"MONGO_URI": SECRET_URI}})),
            &key("g", 1),
            None,
        )
        .await;
    assert_no_secret(&o);
    let e = failed(&o);
    assert!(e.contains("no container \"db\"") && e.contains("proxy, web"), "{e}");
}

#[tokio::test]
async fn env_values_stay_out_of_every_outcome() {
    let s = setup(|_| {}).await;
    let a = args(json!({"namespace": NS, "deployment": "api", "env": {"MONGO_URI": SECRET_URI}}));
    let mut outcomes = Vec::new();
    // A webhook that refuses the patch and quotes it back.
    s.fake.reject_patches(422, true);
    let o = s.kube.perform("k8s.set_env", &a, &key("s", 1), None).await;
    let e = failed(&o);
    assert!(e.contains("denied the request") && e.contains("••••"), "{e}");
    outcomes.push(o);
    s.fake.reject_patches(403, false);
    let o = s.kube.perform("k8s.set_env", &a, &key("s", 2), None).await;
    let e = failed(&o);
    assert!(e.contains("HTTP 403") && e.contains("RBAC") && e.contains("patch"), "{e}");
    outcomes.push(o);
    s.fake.accept_patches();
    // A missing deployment, a bad variable name, bad arguments.
    let missing = args(json!({"namespace": NS, "deployment": "nope", "env": {"MONGO_URI": SECRET_URI}}));
    let o = s.kube.perform("k8s.set_env", &missing, &key("s", 3), None).await;
    assert!(failed(&o).contains("deployment chat/nope not found"), "{o:?}");
    outcomes.push(o);
    let bad_name = args(json!({"namespace": NS, "deployment": "api", "env": {"1MONGO": SECRET_URI}}));
    outcomes.push(s.kube.perform("k8s.set_env", &bad_name, &key("s", 4), None).await);
    let bad_args =
        args(json!({"namespace": NS, "deployment": "api", "env": {"MONGO_URI": SECRET_URI}, "x": SECRET_URI}));
    let o = s.kube.perform("k8s.set_env", &bad_args, &key("s", 5), None).await;
    assert!(failed(&o).contains("bad arguments"), "{o:?}");
    outcomes.push(o);
    let wrong_type = args(json!({"namespace": NS, "deployment": "api", "env": SECRET_URI}));
    outcomes.push(s.kube.perform("k8s.set_env", &wrong_type, &key("s", 6), None).await);
    // And success.
    outcomes.push(s.kube.perform("k8s.set_env", &a, &key("s", 7), None).await);
    succeeded(outcomes.last().expect("outcome"));
    for o in &outcomes {
        assert_no_secret(o);
    }
}

#[tokio::test]
async fn rollout_restart_is_idempotent_per_step() {
    let s = setup(|_| {}).await;
    let a = args(json!({"namespace": NS, "deployment": "api"}));
    let o = s.kube.perform("k8s.rollout_restart", &a, &key("restart", 1), None).await;
    let at = succeeded(&o)["restarted_at"].as_str().expect("restarted_at").to_string();
    assert!(ripcord_engine::clock::parse_rfc3339(&at).is_some(), "{at}");
    let ann = s.fake.template_annotations(NS, "api");
    assert_eq!(ann.get(RESTARTED_AT), Some(&at));
    assert_eq!(ann.get(RESTARTED_BY).map(String::as_str), Some("run-1/restart"));
    assert_eq!(s.fake.generation(NS, "api"), 2);
    assert_eq!(s.fake.patch_count(NS, "api"), 1);

    // The same step again, even a second later: the same timestamp, no patch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = s.kube.perform("k8s.rollout_restart", &a, &key("restart", 2), None).await;
    assert_eq!(succeeded(&again)["restarted_at"].as_str(), Some(at.as_str()));
    assert_eq!(s.fake.patch_count(NS, "api"), 1);
    assert_eq!(s.fake.generation(NS, "api"), 2);

    // Another step restarts again, and with wait: true returns rolled out.
    let wait = args(json!({"namespace": NS, "deployment": "api", "wait": true}));
    let o = s.kube.perform("k8s.rollout_restart", &wait, &key("restart-2", 1), Some(Duration::from_secs(30))).await;
    let at2 = succeeded(&o)["restarted_at"].as_str().expect("restarted_at").to_string();
    assert_ne!(at2, at);
    assert!(s.fake.rolled_out(NS, "api"), "wait: true returned before the rollout finished");
    assert_eq!(s.fake.generation(NS, "api"), 3);
}

#[tokio::test]
async fn rollout_wait_waits_for_kubectls_conditions() {
    let s = setup(|o| o.pod_delay = Duration::from_millis(250)).await;
    let restart = args(json!({"namespace": NS, "deployment": "api"}));
    succeeded(&s.kube.perform("k8s.rollout_restart", &restart, &key("restart", 1), None).await);
    assert!(!s.fake.rolled_out(NS, "api"));
    let started = Instant::now();
    let a = args(json!({"namespace": NS, "deployment": "api", "timeout": "30s"}));
    let o = s.kube.perform("k8s.rollout_wait", &a, &key("wait", 1), Some(Duration::from_secs(60))).await;
    let out = succeeded(&o);
    assert_eq!(int(&out, "ready_replicas"), 3);
    assert!(s.fake.rolled_out(NS, "api"), "rollout_wait returned before the rollout finished");
    // Three new pods, one at a time, each ready after 250 ms.
    assert!(started.elapsed() >= Duration::from_millis(600), "{:?}", started.elapsed());
    let pods = s.fake.pods(NS, "api");
    assert_eq!(pods.len(), 3);
    let gen2_hash = pods[0]["metadata"]["labels"]["pod-template-hash"].clone();
    assert!(pods.iter().all(|p| p["metadata"]["labels"]["pod-template-hash"] == gen2_hash));

    // Already rolled out: answers at once.
    let o = s.kube.perform("k8s.rollout_wait", &a, &key("wait", 2), None).await;
    assert_eq!(int(&succeeded(&o), "ready_replicas"), 3);
}

#[tokio::test]
async fn rollout_wait_fails_on_a_stuck_rollout() {
    let s = setup(|o| o.progress_deadline = Duration::from_millis(600)).await;
    s.fake.stick(NS, "api", true);
    let restart = args(json!({"namespace": NS, "deployment": "api"}));
    succeeded(&s.kube.perform("k8s.rollout_restart", &restart, &key("restart", 1), None).await);
    let started = Instant::now();
    let a = args(json!({"namespace": NS, "deployment": "api", "timeout": "30s"}));
    let o = s.kube.perform("k8s.rollout_wait", &a, &key("wait", 1), None).await;
    let e = failed(&o);
    assert!(e.contains("exceeded its progress deadline"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10), "failed only after {:?}", started.elapsed());

    // The old pods still serve, the new one crash-loops: pods_ready says so.
    let ready = args(json!({"namespace": NS, "deployment": "api"}));
    let out = succeeded(&s.kube.perform("k8s.pods_ready", &ready, &key("ready", 1), None).await);
    assert_eq!((int(&out, "ready"), int(&out, "total")), (3, 4));
    let strict = args(json!({"namespace": NS, "deployment": "api", "min_ready": 4}));
    let e = failed(&s.kube.perform("k8s.pods_ready", &strict, &key("ready", 2), None).await);
    assert!(e.contains("3 of 4 pods ready") && e.contains("CrashLoopBackOff"), "{e}");

    // A wait shorter than the deadline times out with kubectl's message.
    let s = setup(|o| o.progress_deadline = Duration::from_secs(600)).await;
    s.fake.stick(NS, "api", true);
    succeeded(&s.kube.perform("k8s.rollout_restart", &restart, &key("restart", 1), None).await);
    let short = args(json!({"namespace": NS, "deployment": "api", "timeout": "1s"}));
    let e = failed(&s.kube.perform("k8s.rollout_wait", &short, &key("wait", 1), None).await);
    assert!(e.contains("did not finish its rollout within 1s") && e.contains("new replicas have been updated"), "{e}");
    // The step's own timeout is shorter still.
    let long = args(json!({"namespace": NS, "deployment": "api", "timeout": "10m"}));
    let started = Instant::now();
    let e = failed(&s.kube.perform("k8s.rollout_wait", &long, &key("wait", 2), Some(Duration::from_millis(700))).await);
    assert!(e.contains("did not finish its rollout within the step's timeout"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn pods_ready_counts_ready_pods_by_selector() {
    let s = setup(|_| {}).await;
    s.fake.add_deployment(NS, "worker", 2, &[("worker", &[])]);
    let a = args(json!({"namespace": NS, "deployment": "api", "min_ready": 3}));
    let out = succeeded(&s.kube.perform("k8s.pods_ready", &a, &key("ready", 1), None).await);
    assert_eq!((int(&out, "ready"), int(&out, "total")), (3, 3));
    let w = args(json!({"namespace": NS, "deployment": "worker"}));
    let out = succeeded(&s.kube.perform("k8s.pods_ready", &w, &key("ready", 2), None).await);
    assert_eq!((int(&out, "ready"), int(&out, "total")), (2, 2));
    let none = args(json!({"namespace": "other", "deployment": "api"}));
    let e = failed(&s.kube.perform("k8s.pods_ready", &none, &key("ready", 3), None).await);
    assert!(e.contains("deployment other/api not found"), "{e}");
}

#[tokio::test]
async fn logs_tail_each_pod() {
    let s = setup(|_| {}).await;
    let a = args(json!({"namespace": NS, "deployment": "api", "tail": 5}));
    let out = succeeded(&s.kube.perform("k8s.logs", &a, &key("logs", 1), None).await);
    let Some(Value::List(lines)) = out.get("lines") else { panic!("no lines: {out:?}") };
    assert_eq!(lines.len(), 15, "{lines:?}");
    let pods: Vec<String> =
        s.fake.pods(NS, "api").iter().map(|p| p["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect();
    for pod in &pods {
        let prefix = format!("[pod/{pod}/api] ");
        let mine: Vec<&Value> = lines.iter().filter(|l| l.as_str().is_some_and(|l| l.starts_with(&prefix))).collect();
        assert_eq!(mine.len(), 5, "{pod}: {lines:?}");
        assert!(mine[4].as_str().is_some_and(|l| l.ends_with("GET /health 200 (20)")), "{mine:?}");
    }

    s.fake.set_logs(NS, "api", &["boot", "panic: MONGO_URI unreachable"]);
    let out = succeeded(&s.kube.perform("k8s.logs", &a, &key("logs", 2), None).await);
    let Some(Value::List(lines)) = out.get("lines") else { panic!("no lines") };
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|l| l.as_str().is_some_and(|l| l.ends_with("boot") || l.ends_with("unreachable"))));
    // tail defaults to 100.
    let all = args(json!({"namespace": NS, "deployment": "api"}));
    let out = succeeded(&s.kube.perform("k8s.logs", &all, &key("logs", 3), None).await);
    assert!(matches!(out.get("lines"), Some(Value::List(l)) if l.len() == 6));
    let which = args(json!({"namespace": NS, "deployment": "api", "container": "sidecar"}));
    let e = failed(&s.kube.perform("k8s.logs", &which, &key("logs", 4), None).await);
    assert!(e.contains("no container \"sidecar\""), "{e}");
}

#[tokio::test]
async fn credentials_and_config_errors_are_clear() {
    let s = setup(|_| {}).await;
    // A wrong token.
    let wrong = Kube::from_url(&s.fake.url(), Some("not-the-token"), NS).await.expect("client");
    let a = args(json!({"deployment": "api"}));
    let e = failed(&wrong.perform("k8s.pods_ready", &a, &key("p", 1), None).await);
    assert!(e.contains("HTTP 401") && e.contains("credentials"), "{e}");
    // The right one through from_url.
    let right = Kube::from_url(&s.fake.url(), s.fake.token().as_deref(), NS).await.expect("client");
    succeeded(&right.perform("k8s.pods_ready", &a, &key("p", 2), None).await);
    // Nobody listening.
    let gone = Kube::from_url("http://127.0.0.1:1", None, NS).await.expect("client");
    let e = failed(&gone.perform("k8s.pods_ready", &a, &key("p", 3), Some(Duration::from_secs(10))).await);
    assert!(e.contains("no answer"), "{e}");
    // A missing kubeconfig, an unknown context.
    let missing = KubeConfig { kubeconfig: Some(s.dir.path().join("nope")), ..KubeConfig::default() };
    let e = Kube::new(&missing).await.expect_err("missing kubeconfig").to_string();
    assert!(e.contains("cannot load the kubeconfig") && e.contains("nope"), "{e}");
    let ctx =
        KubeConfig { kubeconfig: Some(s.kubeconfig.clone()), context: Some("prod".into()), ..KubeConfig::default() };
    let e = Kube::new(&ctx).await.expect_err("unknown context").to_string();
    assert!(e.contains("prod"), "{e}");
    // Bad names never reach the server.
    let bad = args(json!({"deployment": "API/../x"}));
    let e = failed(&s.kube.perform("k8s.rollout_restart", &bad, &key("p", 4), None).await);
    assert!(e.contains("not a valid kubernetes name"), "{e}");
}

#[tokio::test]
async fn https_with_the_ca_from_the_kubeconfig() {
    let s = setup(|o| o.tls = true).await;
    assert!(s.fake.url().starts_with("https://"));
    let a = args(json!({"namespace": NS, "deployment": "api", "env": {"MONGO_URI": SECRET_URI}}));
    let o = s.kube.perform("k8s.set_env", &a, &key("switch-env", 1), None).await;
    assert_no_secret(&o);
    assert_eq!(int(&succeeded(&o), "generation"), 2);
    let wait = args(json!({"namespace": NS, "deployment": "api", "timeout": "30s"}));
    let out = succeeded(&s.kube.perform("k8s.rollout_wait", &wait, &key("wait", 1), None).await);
    assert_eq!(int(&out, "ready_replicas"), 3);
    // Without the CA the server is not trusted.
    let untrusted = Kube::from_url(&s.fake.url(), s.fake.token().as_deref(), NS).await.expect("client");
    let ready = args(json!({"namespace": NS, "deployment": "api"}));
    let e = failed(&untrusted.perform("k8s.pods_ready", &ready, &key("p", 1), Some(Duration::from_secs(10))).await);
    assert!(e.contains("no answer") && e.to_lowercase().contains("certificate"), "{e}");
}

// ---------------------------------------------------------------------------
// The real kubectl against the fake
// ---------------------------------------------------------------------------

/// The kubectl binaries to try: `RIPCORD_TEST_KUBECTL` (a path, or several
/// separated by ':'), else `kubectl` on PATH.
fn kubectls() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("RIPCORD_TEST_KUBECTL") {
        return std::env::split_paths(&list).filter(|p| p.exists()).collect();
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("kubectl")).find(|k| k.is_file()))
        .unwrap_or_default();
    found.into_iter().collect()
}

fn kubectl(bin: &Path, home: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("kube-cache"))
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    let (stdout, stderr) = ripcord_tests::text(&out);
    (out.status.success(), stdout, stderr)
}

#[test]
fn real_kubectl_works_against_the_fake() {
    let bins = kubectls();
    if bins.is_empty() {
        println!("SKIPPED real_kubectl_works_against_the_fake: kubectl not installed");
        return;
    }
    for bin in bins {
        let agent = kubectl_session(&bin);
        println!("{} works: {agent}", bin.display());
    }
}

/// Runs the playbook's kubectl commands against a fake; returns kubectl's
/// User-Agent (its real version: some kubectl binaries are dispatchers).
fn kubectl_session(bin: &Path) -> String {
    // Over TLS with a bearer token: kubectl sends a token only over TLS.
    let fake = FakeKube::start(Options { pod_delay: Duration::from_millis(200), tls: true, ..Options::default() });
    fake.add_deployment(NS, "api", 2, &[("api", &[("PORT", "8080")])]);
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, NS);
    let home = dir.path();
    let run = |args: &[&str]| {
        let (ok, stdout, stderr) = kubectl(bin, home, &kubeconfig, args);
        assert!(ok, "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        (stdout, stderr)
    };

    // set env: the value lands, the other variables stay, the pods roll.
    let (out, _) = run(&["set", "env", "deployment/api", &format!("MONGO_URI={SECRET_URI}")]);
    assert!(out.contains("deployment.apps/api env updated"), "{out}");
    assert_eq!(fake.env(NS, "api", "api").get("MONGO_URI").map(String::as_str), Some(SECRET_URI));
    assert_eq!(fake.env_names(NS, "api", "api"), ["PORT", "MONGO_URI"]);
    let p = fake.patches().last().cloned().expect("a patch");
    assert_eq!(p.content_type, "application/strategic-merge-patch+json");
    assert_eq!(p.field_manager.as_deref(), Some("kubectl-set"));
    assert!(p.body["spec"]["template"]["spec"].get("$setElementOrder/containers").is_some(), "{}", p.body["spec"]);
    assert_eq!(fake.generation(NS, "api"), 2);
    // Once more with the same value: kubectl sends nothing new.
    run(&["set", "env", "deployment/api", &format!("MONGO_URI={SECRET_URI}")]);
    assert_eq!(fake.generation(NS, "api"), 2);

    // A variable read from a Secret becomes a plain value (kubectl sends
    // `valueFrom: null`), which the fake's strategic merge must take.
    fake.set_env_from_secret(NS, "api", "api", "LOG_LEVEL", "chat-config", "level");
    run(&["set", "env", "deployment/api", "LOG_LEVEL=debug"]);
    assert_eq!(fake.env(NS, "api", "api").get("LOG_LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(fake.env_names(NS, "api", "api"), ["PORT", "MONGO_URI", "LOG_LEVEL"]);
    assert_eq!(fake.generation(NS, "api"), 4);

    // rollout status waits for the set env rollout.
    let (out, _) = run(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert!(fake.rolled_out(NS, "api"));

    // rollout restart: the annotation, a new generation, a rollout.
    let (out, _) = run(&["rollout", "restart", "deployment/api"]);
    assert!(out.contains("deployment.apps/api restarted"), "{out}");
    let at = fake.template_annotations(NS, "api").get(RESTARTED_AT).cloned().expect("restartedAt");
    assert!(ripcord_engine::clock::parse_rfc3339(&at).is_some(), "{at}");
    assert_eq!(fake.generation(NS, "api"), 5);
    assert_eq!(fake.patches().last().and_then(|p| p.field_manager.clone()).as_deref(), Some("kubectl-rollout"));
    let (out, _) = run(&["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert!(out.contains("Waiting for deployment \"api\" rollout to finish"), "{out}");
    assert!(out.contains("deployment \"api\" successfully rolled out"), "{out}");
    assert!(fake.rolled_out(NS, "api"));

    // logs: one of the deployment's pods, the last 5 lines.
    let (out, _) = run(&["logs", "deployment/api", "--tail=5"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[4].ends_with("GET /health 200 (20)"), "{out}");

    // get pods by the selector: Running and 1/1 ready.
    let (out, _) = run(&["get", "pods", "-l", "app=api"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows.iter().all(|r| r.contains("1/1") && r.contains("Running")), "{out}");

    // A stuck rollout: rollout status fails on the progress deadline.
    fake.stick(NS, "api", true);
    // kubectl's timestamp has whole seconds: a restart within the same
    // second as the last one is an empty patch (kubectl 1.20 says so).
    ripcord_tests::eventually("the next second", || {
        let now = ripcord_engine::clock::rfc3339(ripcord_pki::clock::now_ms().div_euclid(1000) * 1000);
        if now != at { Ok(()) } else { Err(now) }
    });
    run(&["rollout", "restart", "deployment/api"]);
    let (ok, out, err) = kubectl(bin, home, &kubeconfig, &["rollout", "status", "deployment/api", "--timeout=30s"]);
    assert!(!ok, "rollout status should fail:\n{out}\n{err}");
    assert!(err.contains("exceeded its progress deadline"), "{out}\n{err}");

    // And ripcord's view of the same deployment agrees with kubectl's.
    let s = fake.deployment(NS, "api").expect("deployment");
    assert_eq!(s["status"]["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    let (out, _) = run(&["get", "pods", "-l", "app=api"]);
    assert!(out.contains("CrashLoopBackOff"), "{out}");

    fake.requests().iter().rev().find_map(|r| r.user_agent.clone()).unwrap_or_default()
}
