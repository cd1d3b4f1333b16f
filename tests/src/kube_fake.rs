//! A fake Kubernetes API server for tests, faithful enough for both the kube
//! client of `ripcord_coordinator::integrations::kube` and the real kubectl
//! (`set env`, `rollout restart`, `rollout status`, `logs`, `get pods`).
//!
//! It serves plain HTTP on 127.0.0.1:0, checks a bearer token when given
//! one, and answers:
//! - discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/apps`,
//!   `/apis/apps/v1` (the legacy documents; kubectl falls back to them when
//!   the answer is not aggregated discovery);
//! - deployments: get, list and watch (`fieldSelector` on `metadata.name` /
//!   `metadata.namespace`, `labelSelector`, `resourceVersion`,
//!   `timeoutSeconds`, `sendInitialEvents`), and patch: strategic merge
//!   (merge keys of the pod template, `$setElementOrder/…`, `$patch`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/…`, null deletes) and JSON
//!   merge patch;
//! - pods: get, list and watch by `labelSelector`, and `log` with
//!   `container`, `tailLines`, `limitBytes`, `timestamps`.
//!
//! A spec change bumps `metadata.generation`; after `observe_delay` the
//! "controller" observes it and, when the pod template changed, rolls the
//! pods: one new pod at a time, ready `pod_delay` after it starts, an old
//! pod removed for each new ready one (maxSurge 1, maxUnavailable 0), the
//! status (`replicas`, `updatedReplicas`, `readyReplicas`,
//! `availableReplicas`, `observedGeneration`, `Available` and `Progressing`
//! conditions) following. A deployment told to [`FakeKube::stick`] gets new
//! pods that crash-loop and, after `progress_deadline`, the `Progressing`
//! condition with reason `ProgressDeadlineExceeded`.
//!
//! Errors are `Status` objects like the API server's. A small HTTP/1.1
//! server on std threads (keep-alive, chunked watch streams), like
//! [`crate::http`].

use crate::http::percent_decode;
use ripcord_coordinator::integrations::atlas::base64_encode;
use serde_json::{Map, Value as J, json};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The bearer token every request (except `/version`) must carry; None
    /// lets anyone in. kubectl sends a kubeconfig's token only over TLS.
    pub token: Option<String>,
    /// Serve HTTPS with a certificate from a CA of its own (written into
    /// the kubeconfig), instead of plain HTTP.
    pub tls: bool,
    /// How long the "controller" takes to observe a new generation.
    pub observe_delay: Duration,
    /// How long a new pod takes to become ready (one rollout step).
    pub pod_delay: Duration,
    /// How long a stuck rollout runs before `ProgressDeadlineExceeded`.
    pub progress_deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: Some(format!("fake-kube-token-{:016x}", fastrand::u64(..))),
            tls: false,
            observe_delay: Duration::from_millis(50),
            pod_delay: Duration::from_millis(150),
            progress_deadline: Duration::from_millis(800),
        }
    }
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub status: u16,
}

/// One accepted patch: its content type, field manager and body.
#[derive(Clone, Debug)]
pub struct SeenPatch {
    pub deployment: String,
    pub content_type: String,
    pub field_manager: Option<String>,
    pub body: J,
}

struct Pod {
    name: String,
    uid: String,
    hash: String,
    template: J,
    created: String,
    ready_at: Option<Instant>,
    ready: bool,
    rv: u64,
    created_rv: u64,
}

struct Cond {
    status: &'static str,
    reason: String,
    message: String,
    since: String,
}

struct Deployment {
    ns: String,
    /// apiVersion, kind, metadata and spec; the status is computed.
    doc: J,
    rv: u64,
    created_rv: u64,
    observed: i64,
    changed_at: Instant,
    hash: String,
    revision: u64,
    rollout_started: Option<Instant>,
    stuck: bool,
    deadline_exceeded: bool,
    pods: Vec<Pod>,
    status: J,
    conditions: BTreeMap<&'static str, Cond>,
    patches: usize,
    logs: Option<Vec<String>>,
}

impl Deployment {
    fn name(&self) -> String {
        self.doc["metadata"]["name"].as_str().unwrap_or_default().to_string()
    }

    fn replicas(&self) -> usize {
        self.doc["spec"]["replicas"].as_u64().unwrap_or(1) as usize
    }

    fn json(&self) -> J {
        let mut d = self.doc.clone();
        d["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        d["status"] = self.status.clone();
        d
    }
}

struct Reject {
    status: u16,
    echo_body: bool,
}

struct State {
    opts: Options,
    rv: u64,
    ids: u64,
    deployments: Vec<Deployment>,
    requests: Vec<Seen>,
    patches: Vec<SeenPatch>,
    reject: Option<Reject>,
}

/// A running fake API server; stops when dropped.
pub struct FakeKube {
    pub addr: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    /// The CA certificate (PEM) of an HTTPS fake.
    ca_pem: Option<String>,
}

impl FakeKube {
    /// Starts on 127.0.0.1:0 with no deployments.
    pub fn start(opts: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (ca_pem, tls) = if opts.tls { tls_config() } else { (None, None) };
        let state = Arc::new(Mutex::new(State {
            opts,
            rv: 1000,
            ids: 0,
            deployments: vec![],
            requests: vec![],
            patches: vec![],
            reject: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (s, st, tls) = (Arc::clone(&s), Arc::clone(&st), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, tls, &s, &st);
                });
            }
        });
        Self { addr, state, stop, ca_pem }
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with TLS.
    pub fn url(&self) -> String {
        match self.ca_pem {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The CA certificate (PEM) of an HTTPS fake.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    pub fn token(&self) -> Option<String> {
        self.state.lock().unwrap().opts.token.clone()
    }

    /// Writes a kubeconfig pointing at this server (context "fake",
    /// namespace `namespace`, the bearer token as its user, the CA as
    /// `certificate-authority-data`).
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) {
        let user = match self.token() {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        let ca = match &self.ca_pem {
            Some(pem) => format!("    certificate-authority-data: {}\n", base64_encode(pem.as_bytes())),
            None => String::new(),
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n{ca}    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    namespace: {namespace}\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n{user}",
            url = self.url()
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock().unwrap();
        st.tick();
        f(&mut st)
    }

    /// Adds a rolled-out deployment `name` (selector `app=name`) whose
    /// containers are `(name, env)` pairs, image `example/NAME:1`.
    pub fn add_deployment(&self, ns: &str, name: &str, replicas: u32, containers: &[(&str, &[(&str, &str)])]) {
        let containers: Vec<J> = containers
            .iter()
            .map(|(c, env)| {
                let env: Vec<J> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
                let mut c = json!({
                    "name": c, "image": format!("example/{c}:1"), "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                });
                if !env.is_empty() {
                    c["env"] = J::Array(env);
                }
                c
            })
            .collect();
        let spec = json!({
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers, "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "securityContext": {}},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        });
        self.with(|st| st.add_deployment(ns, name, spec));
    }

    /// Makes `var` of `container` read a Secret's key (`valueFrom`), as a
    /// spec change (a new generation and a rollout).
    pub fn set_env_from_secret(&self, ns: &str, name: &str, container: &str, var: &str, secret: &str, key: &str) {
        self.with(|st| {
            let Some(i) = st.find(ns, name) else { return };
            let entry = json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}});
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": container, "env": [
                {"name": var, "value": null, "valueFrom": entry["valueFrom"]}]}]}}}});
            let d = &mut st.deployments[i];
            strategic_merge(&mut d.doc, &patch);
            let g = d.doc["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            d.doc["metadata"]["generation"] = json!(g);
            d.changed_at = Instant::now();
            st.rv += 1;
            st.deployments[i].rv = st.rv;
        });
    }

    /// The deployment as the API serves it.
    pub fn deployment(&self, ns: &str, name: &str) -> Option<J> {
        self.with(|st| st.find(ns, name).map(|i| st.deployments[i].json()))
    }

    /// A container's env: name → value (`<valueFrom>` for references).
    pub fn env(&self, ns: &str, name: &str, container: &str) -> BTreeMap<String, String> {
        let Some(d) = self.deployment(ns, name) else { return BTreeMap::new() };
        let containers = d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let Some(c) = containers.iter().find(|c| c["name"] == container) else { return BTreeMap::new() };
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let v = e["value"].as_str().map_or_else(|| "<valueFrom>".to_string(), str::to_string);
                (e["name"].as_str().unwrap_or_default().to_string(), v)
            })
            .collect()
    }

    /// The env names of a container, in order.
    pub fn env_names(&self, ns: &str, name: &str, container: &str) -> Vec<String> {
        let Some(d) = self.deployment(ns, name) else { return vec![] };
        let containers = d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let Some(c) = containers.iter().find(|c| c["name"] == container) else { return vec![] };
        c["env"].as_array().into_iter().flatten().filter_map(|e| e["name"].as_str().map(str::to_string)).collect()
    }

    /// The pod template's annotations.
    pub fn template_annotations(&self, ns: &str, name: &str) -> BTreeMap<String, String> {
        let Some(d) = self.deployment(ns, name) else { return BTreeMap::new() };
        d["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    }

    pub fn generation(&self, ns: &str, name: &str) -> i64 {
        self.deployment(ns, name).and_then(|d| d["metadata"]["generation"].as_i64()).unwrap_or(0)
    }

    /// The deployment's pods as the API serves them.
    pub fn pods(&self, ns: &str, name: &str) -> Vec<J> {
        self.with(|st| {
            st.find(ns, name).map(|i| st.deployments[i].pods.iter().map(|p| pod_json(&st.deployments[i], p)).collect())
        })
        .unwrap_or_default()
    }

    /// How many patches the deployment took.
    pub fn patch_count(&self, ns: &str, name: &str) -> usize {
        self.with(|st| st.find(ns, name).map_or(0, |i| st.deployments[i].patches))
    }

    /// Every accepted patch, in order.
    pub fn patches(&self) -> Vec<SeenPatch> {
        self.state.lock().unwrap().patches.clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Whether the current generation is observed and every pod runs the
    /// current template and is ready.
    pub fn rolled_out(&self, ns: &str, name: &str) -> bool {
        self.with(|st| {
            st.find(ns, name).is_some_and(|i| {
                let d = &st.deployments[i];
                d.observed >= d.doc["metadata"]["generation"].as_i64().unwrap_or(0)
                    && d.rollout_started.is_none()
                    && d.pods.len() == d.replicas()
                    && d.pods.iter().all(|p| p.ready && p.hash == d.hash)
            })
        })
    }

    /// From now on, new pods of this deployment crash-loop and its rollouts
    /// end in `ProgressDeadlineExceeded` (or not, with `false`).
    pub fn stick(&self, ns: &str, name: &str, stuck: bool) {
        self.with(|st| {
            if let Some(i) = st.find(ns, name) {
                st.deployments[i].stuck = stuck;
            }
        });
    }

    /// The log every pod of the deployment answers (instead of a generated one).
    pub fn set_logs(&self, ns: &str, name: &str, lines: &[&str]) {
        self.with(|st| {
            if let Some(i) = st.find(ns, name) {
                st.deployments[i].logs = Some(lines.iter().map(|l| l.to_string()).collect());
            }
        });
    }

    /// Patches are refused with `status` (like an admission webhook); with
    /// `echo_body` the message repeats the patch (as careless webhooks do).
    pub fn reject_patches(&self, status: u16, echo_body: bool) {
        self.state.lock().unwrap().reject = Some(Reject { status, echo_body });
    }

    pub fn accept_patches(&self) {
        self.state.lock().unwrap().reject = None;
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

// ---------------------------------------------------------------------------
// The simulated cluster
// ---------------------------------------------------------------------------

/// Now, to the second like the API server.
fn now_rfc3339() -> String {
    ripcord_engine::clock::rfc3339(ripcord_pki::clock::now_ms().div_euclid(1000) * 1000)
}

/// FNV-1a, as the pod-template-hash stand-in.
fn template_hash(template: &J) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10).map(|i| char::from(ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize])).collect()
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn uid(&mut self) -> String {
        self.ids += 1;
        format!("{:08x}-0000-4000-8000-{:012x}", fastrand::u32(..), self.ids)
    }

    fn find(&self, ns: &str, name: &str) -> Option<usize> {
        self.deployments.iter().position(|d| d.ns == ns && d.doc["metadata"]["name"] == name)
    }

    fn add_deployment(&mut self, ns: &str, name: &str, spec: J) {
        let rv = self.next_rv();
        let uid = self.uid();
        let hash = template_hash(&spec["template"]);
        let doc = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": ns, "uid": uid, "generation": 1,
                "creationTimestamp": now_rfc3339(), "labels": {"app": name},
                "annotations": {"deployment.kubernetes.io/revision": "1"},
            },
            "spec": spec,
        });
        let mut d = Deployment {
            ns: ns.to_string(),
            doc,
            rv,
            created_rv: rv,
            observed: 1,
            changed_at: Instant::now(),
            hash,
            revision: 1,
            rollout_started: None,
            stuck: false,
            deadline_exceeded: false,
            pods: vec![],
            status: json!({}),
            conditions: BTreeMap::new(),
            patches: 0,
            logs: None,
        };
        for _ in 0..d.replicas() {
            let mut p = self.new_pod(&d, None);
            p.ready = true;
            d.pods.push(p);
        }
        self.deployments.push(d);
        self.tick();
    }

    fn new_pod(&mut self, d: &Deployment, ready_at: Option<Instant>) -> Pod {
        let suffix: String =
            (0..5).map(|_| char::from(b"bcdfghjklmnpqrstvwxz2456789"[fastrand::usize(..27)])).collect();
        let rv = self.next_rv();
        Pod {
            name: format!("{}-{}-{suffix}", d.name(), d.hash),
            uid: self.uid(),
            hash: d.hash.clone(),
            template: d.doc["spec"]["template"].clone(),
            created: now_rfc3339(),
            ready_at,
            ready: false,
            rv,
            created_rv: rv,
        }
    }

    /// Moves every deployment's rollout along to now.
    fn tick(&mut self) {
        let now = Instant::now();
        let opts = self.opts.clone();
        for i in 0..self.deployments.len() {
            let mut d = std::mem::replace(&mut self.deployments[i], placeholder());
            self.step(&mut d, now, &opts);
            self.deployments[i] = d;
        }
    }

    fn step(&mut self, d: &mut Deployment, now: Instant, opts: &Options) {
        let generation = d.doc["metadata"]["generation"].as_i64().unwrap_or(1);
        if d.observed < generation && now >= d.changed_at + opts.observe_delay {
            d.observed = generation;
            let hash = template_hash(&d.doc["spec"]["template"]);
            if hash != d.hash {
                d.hash = hash;
                d.revision += 1;
                d.doc["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(d.revision.to_string());
                d.rollout_started = Some(now);
                d.deadline_exceeded = false;
            }
        }
        let observed = d.observed >= generation;
        // Pods become ready.
        for p in &mut d.pods {
            if !p.ready && p.ready_at.is_some_and(|t| now >= t) {
                p.ready = true;
                p.rv = self.rv + 1;
                self.rv += 1;
            }
        }
        if observed {
            let want = d.replicas();
            let new_count = d.pods.iter().filter(|p| p.hash == d.hash).count();
            let pending = d.pods.iter().any(|p| p.hash == d.hash && !p.ready);
            if new_count < want && !pending {
                let ready_at = if d.stuck { None } else { Some(now + opts.pod_delay) };
                let p = self.new_pod(d, ready_at);
                d.pods.push(p);
            }
            // Old pods go as new ones are ready (maxUnavailable 0).
            let ready_new = d.pods.iter().filter(|p| p.hash == d.hash && p.ready).count();
            let keep_old = want.saturating_sub(ready_new);
            let mut old: Vec<usize> = (0..d.pods.len()).filter(|&j| d.pods[j].hash != d.hash).collect();
            // Not ready ones first.
            old.sort_by_key(|&j| d.pods[j].ready);
            let remove_old: Vec<usize> = old.iter().copied().take(old.len().saturating_sub(keep_old)).collect();
            // Scale down extra new pods, not ready ones first.
            let mut new: Vec<usize> = (0..d.pods.len()).filter(|&j| d.pods[j].hash == d.hash).collect();
            new.sort_by_key(|&j| d.pods[j].ready);
            let remove_new: Vec<usize> = new.iter().copied().take(new.len().saturating_sub(want)).collect();
            let mut gone: Vec<usize> = remove_old.into_iter().chain(remove_new).collect();
            gone.sort_unstable();
            for j in gone.into_iter().rev() {
                d.pods.remove(j);
                self.rv += 1;
            }
            let done = d.pods.len() == want && d.pods.iter().all(|p| p.hash == d.hash && p.ready);
            if done {
                d.rollout_started = None;
                d.deadline_exceeded = false;
            } else if let Some(started) = d.rollout_started
                && d.stuck
                && now >= started + opts.progress_deadline
            {
                d.deadline_exceeded = true;
            }
        }
        let status = self.status_of(d);
        if status != d.status {
            d.status = status;
            d.rv = self.next_rv();
        }
    }

    fn status_of(&self, d: &mut Deployment) -> J {
        let want = d.replicas();
        let replicas = d.pods.len();
        let updated = d.pods.iter().filter(|p| p.hash == d.hash).count();
        let ready = d.pods.iter().filter(|p| p.ready).count();
        let rs = format!("{}-{}", d.name(), d.hash);
        let available = if ready >= want {
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.".to_string())
        } else {
            ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".to_string())
        };
        let progressing = if d.deadline_exceeded {
            ("False", "ProgressDeadlineExceeded", format!("ReplicaSet \"{rs}\" has timed out progressing."))
        } else if d.rollout_started.is_some() {
            ("True", "ReplicaSetUpdated", format!("ReplicaSet \"{rs}\" is progressing."))
        } else {
            ("True", "NewReplicaSetAvailable", format!("ReplicaSet \"{rs}\" has successfully progressed."))
        };
        let mut conditions = Vec::new();
        for (kind, (status, reason, message)) in [("Available", available), ("Progressing", progressing)] {
            let c = d.conditions.entry(kind).or_insert_with(|| Cond {
                status,
                reason: String::new(),
                message: String::new(),
                since: now_rfc3339(),
            });
            if c.status != status || c.reason != reason || c.message != message {
                *c = Cond { status, reason: reason.to_string(), message, since: now_rfc3339() };
            }
            conditions.push(json!({
                "type": kind, "status": c.status, "reason": c.reason, "message": c.message,
                "lastUpdateTime": c.since, "lastTransitionTime": c.since,
            }));
        }
        let mut s = json!({
            "observedGeneration": d.observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        });
        if replicas > ready {
            s["unavailableReplicas"] = json!(replicas - ready);
        }
        // The API omits zero counts.
        if let Some(o) = s.as_object_mut() {
            o.retain(|_, v| v.as_u64() != Some(0));
        }
        s
    }
}

fn placeholder() -> Deployment {
    Deployment {
        ns: String::new(),
        doc: J::Null,
        rv: 0,
        created_rv: 0,
        observed: 0,
        changed_at: Instant::now(),
        hash: String::new(),
        revision: 0,
        rollout_started: None,
        stuck: false,
        deadline_exceeded: false,
        pods: vec![],
        status: J::Null,
        conditions: BTreeMap::new(),
        patches: 0,
        logs: None,
    }
}

fn pod_json(d: &Deployment, p: &Pod) -> J {
    let mut labels = p.template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("pod-template-hash".into(), json!(p.hash));
    let mut meta = json!({
        "name": p.name, "generateName": format!("{}-{}-", d.name(), p.hash), "namespace": d.ns, "uid": p.uid,
        "resourceVersion": p.rv.to_string(), "creationTimestamp": p.created, "labels": labels,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{}-{}", d.name(), p.hash),
            "uid": "00000000-0000-4000-8000-000000000000", "controller": true, "blockOwnerDeletion": true}],
    });
    if let Some(a) = p.template["metadata"]["annotations"].as_object() {
        meta["annotations"] = J::Object(a.clone());
    }
    let mut spec = p.template["spec"].clone();
    spec["nodeName"] = json!("fake-node-1");
    spec["serviceAccountName"] = json!("default");
    let crashing = !p.ready && p.ready_at.is_none();
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<J> = containers
        .iter()
        .map(|c| {
            let state = if p.ready {
                json!({"running": {"startedAt": p.created}})
            } else if crashing {
                json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 40s restarting failed container={} pod={}", c["name"].as_str().unwrap_or(""), p.name)}})
            } else {
                json!({"waiting": {"reason": "ContainerCreating"}})
            };
            json!({
                "name": c["name"], "image": c["image"], "imageID": "", "ready": p.ready,
                "restartCount": if crashing { 3 } else { 0 }, "started": p.ready, "state": state,
            })
        })
        .collect();
    let flag = |b: bool| if b { "True" } else { "False" };
    let cond = |t: &str, ok: bool| {
        let mut c = json!({"type": t, "status": flag(ok), "lastProbeTime": null, "lastTransitionTime": p.created});
        if !ok {
            c["reason"] = json!("ContainersNotReady");
        }
        c
    };
    let conditions = vec![
        cond("Initialized", true),
        cond("Ready", p.ready),
        cond("ContainersReady", p.ready),
        cond("PodScheduled", true),
    ];
    let phase = if p.ready || crashing { "Running" } else { "Pending" };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase, "conditions": conditions, "hostIP": "10.0.0.1", "podIP": "10.1.0.7",
            "startTime": p.created, "qosClass": "BestEffort", "containerStatuses": statuses,
        },
    })
}

fn pod_log(d: &Deployment, p: &Pod, container: &str) -> Vec<String> {
    if let Some(lines) = &d.logs {
        return lines.clone();
    }
    let mut out = vec![
        format!("{} starting {container} (pod {}, revision {})", p.created, p.name, p.hash),
        format!("{} connected to the database", p.created),
    ];
    for i in 1..=20 {
        out.push(format!("{} GET /health 200 ({i})", p.created));
    }
    if !p.ready && p.ready_at.is_none() {
        out.push(format!("{} fatal: cannot reach the database", p.created));
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

struct Req {
    method: String,
    path: String,
    raw_query: String,
    query: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }
}

enum Resp {
    Json(u16, J),
    Text(u16, String),
    Watch(WatchReq),
}

struct WatchReq {
    kind: Kind,
    ns: Option<String>,
    labels: Option<Vec<Term>>,
    fields: Vec<(String, bool, String)>,
    since: Option<u64>,
    initial_events: bool,
    timeout: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    Pod,
}

fn status_json(code: u16, reason: &str, message: &str, details: Option<J>) -> J {
    let mut s = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn error(code: u16, reason: &str, message: impl Into<String>) -> Resp {
    Resp::Json(code, status_json(code, reason, &message.into(), None))
}

fn not_found(kind: &str, group: &str, name: &str) -> Resp {
    let full = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    Resp::Json(
        404,
        status_json(
            404,
            "NotFound",
            &format!("{full} \"{name}\" not found"),
            Some(json!({"name": name, "group": group, "kind": kind})),
        ),
    )
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    }
}

fn read_request<S: Read>(reader: &mut BufReader<S>) -> std::io::Result<Option<Req>> {
    Ok(crate::http::read_request(reader)?.map(|r| Req {
        query: r.query(),
        path: percent_decode(&r.path),
        method: r.method,
        raw_query: r.raw_query,
        headers: r.headers,
        body: r.body,
    }))
}

/// A CA of its own and a server certificate for localhost and 127.0.0.1.
fn tls_config() -> (Option<String>, Option<Arc<rustls::ServerConfig>>) {
    use ripcord_pki::issue::{Request, Validity, issue, new_ca};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    ripcord_pki::tls::install_crypto_provider();
    let ca = new_ca("fake kube CA", Validity::days_from_now(2)).expect("fake CA");
    let req = Request {
        name: "kube-apiserver".into(),
        role: ripcord_engine::Role::Coordinator,
        sans: vec!["localhost".into(), "127.0.0.1".into()],
        validity: Validity::days_from_now(1),
    };
    let server = issue(&ca, &req).expect("server certificate");
    let certs = vec![
        CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).expect("server cert"),
        CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("ca cert"),
    ];
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("server key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Some(ca.cert_pem), Some(Arc::new(config)))
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    match tls {
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            serve_conn(BufReader::new(rustls::StreamOwned::new(conn, stream)), state, stop)
        }
        None => serve_conn(BufReader::new(stream), state, stop),
    }
}

fn serve_conn<S: Read + Write>(
    mut reader: BufReader<S>,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    while let Some(req) = read_request(&mut reader)? {
        let stream = reader.get_mut();
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let close = req.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let resp = {
            let mut st = state.lock().unwrap();
            st.tick();
            let resp = st.handle(&req);
            let status = match &resp {
                Resp::Json(s, _) | Resp::Text(s, _) => *s,
                Resp::Watch(_) => 200,
            };
            st.requests.push(Seen {
                method: req.method.clone(),
                path: req.path.clone(),
                query: req.raw_query.clone(),
                content_type: req.header("content-type").map(str::to_string),
                user_agent: req.header("user-agent").map(str::to_string),
                status,
            });
            resp
        };
        match resp {
            Resp::Json(status, body) => write_full(stream, status, "application/json", body.to_string().as_bytes())?,
            Resp::Text(status, body) => write_full(stream, status, "text/plain", body.as_bytes())?,
            Resp::Watch(w) => watch(stream, state, stop, w)?,
        }
        if close {
            return Ok(());
        }
    }
    Ok(())
}

fn write_full(stream: &mut impl Write, status: u16, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

fn write_chunk(stream: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out)?;
    stream.flush()
}

/// Streams watch events until the timeout, the client going away or the
/// server stopping: each object whose resourceVersion changed, as
/// ADDED/MODIFIED/DELETED, one JSON document per chunk.
fn watch(stream: &mut impl Write, state: &Mutex<State>, stop: &AtomicBool, w: WatchReq) -> std::io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n",
    )?;
    stream.flush()?;
    let snapshot = |st: &mut State| -> (BTreeMap<String, (u64, u64, J)>, u64) {
        st.tick();
        (st.objects(w.kind, w.ns.as_deref(), w.labels.as_deref(), &w.fields), st.rv)
    };
    let event = |kind: &str, obj: &J| format!("{}\n", json!({"type": kind, "object": obj}));
    let (mut seen, rv) = snapshot(&mut state.lock().unwrap());
    let mut out = String::new();
    for (rv_obj, created, obj) in seen.values() {
        match w.since {
            _ if w.initial_events => out.push_str(&event("ADDED", obj)),
            None => out.push_str(&event("ADDED", obj)),
            Some(since) if *rv_obj > since => {
                out.push_str(&event(if *created > since { "ADDED" } else { "MODIFIED" }, obj))
            }
            Some(_) => {}
        }
    }
    if w.initial_events {
        let (api_version, kind) = match w.kind {
            Kind::Deployment => ("apps/v1", "Deployment"),
            Kind::Pod => ("v1", "Pod"),
        };
        let bookmark = json!({"apiVersion": api_version, "kind": kind, "metadata": {
            "resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
        out.push_str(&event("BOOKMARK", &bookmark));
    }
    if !out.is_empty() {
        write_chunk(stream, out.as_bytes())?;
    }
    let end = Instant::now() + w.timeout;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let (now, _) = snapshot(&mut state.lock().unwrap());
        let mut out = String::new();
        for (name, (rv_obj, _, obj)) in &now {
            match seen.get(name) {
                None => out.push_str(&event("ADDED", obj)),
                Some((old, _, _)) if old != rv_obj => out.push_str(&event("MODIFIED", obj)),
                Some(_) => {}
            }
        }
        for (name, (_, _, obj)) in &seen {
            if !now.contains_key(name) {
                out.push_str(&event("DELETED", obj));
            }
        }
        seen = now;
        if !out.is_empty() {
            write_chunk(stream, out.as_bytes())?;
        }
    }
    stream.write_all(b"0\r\n\r\n")?;
    stream.flush()
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

impl State {
    fn handle(&mut self, req: &Req) -> Resp {
        let segs: Vec<&str> = req.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        if segs != ["version"]
            && let Some(token) = &self.opts.token
        {
            let sent = req.header("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
            if sent != Some(token.as_str()) {
                return error(401, "Unauthorized", "Unauthorized");
            }
        }
        let get = req.method == "GET";
        match segs.as_slice() {
            ["version"] if get => Resp::Json(200, version()),
            ["api"] if get => Resp::Json(
                200,
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
            ),
            ["apis"] if get => {
                Resp::Json(200, json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [apps_group()]}))
            }
            ["apis", "apps"] if get => {
                let mut g = apps_group();
                g["kind"] = json!("APIGroup");
                g["apiVersion"] = json!("v1");
                Resp::Json(200, g)
            }
            ["api", "v1"] if get => Resp::Json(200, core_resources()),
            ["apis", "apps", "v1"] if get => Resp::Json(200, apps_resources()),
            ["apis", "apps", "v1", "deployments"] if get => self.list(req, Kind::Deployment, None),
            ["apis", "apps", "v1", "namespaces", ns, "deployments"] if get => {
                self.list(req, Kind::Deployment, Some(ns))
            }
            ["apis", "apps", "v1", "namespaces", ns, "deployments", name] => match req.method.as_str() {
                "GET" => match self.find(ns, name) {
                    Some(i) if wants_table(req) => {
                        Resp::Json(200, table(Kind::Deployment, &[self.deployments[i].json()], self.rv))
                    }
                    Some(i) => Resp::Json(200, self.deployments[i].json()),
                    None => not_found("deployments", "apps", name),
                },
                "PATCH" => self.patch(req, ns, name),
                m => error(
                    405,
                    "MethodNotAllowed",
                    format!("the server does not allow this method on the requested resource ({m})"),
                ),
            },
            ["api", "v1", "pods"] if get => self.list(req, Kind::Pod, None),
            ["api", "v1", "namespaces", ns, "pods"] if get => self.list(req, Kind::Pod, Some(ns)),
            ["api", "v1", "namespaces", ns, "pods", name] if get => match self.find_pod(ns, name) {
                Some((i, j)) => {
                    let pod = pod_json(&self.deployments[i], &self.deployments[i].pods[j]);
                    if wants_table(req) {
                        Resp::Json(200, table(Kind::Pod, &[pod], self.rv))
                    } else {
                        Resp::Json(200, pod)
                    }
                }
                None => not_found("pods", "", name),
            },
            ["api", "v1", "namespaces", ns, "pods", name, "log"] if get => self.log(req, ns, name),
            _ => error(404, "NotFound", "the server could not find the requested resource"),
        }
    }

    fn find_pod(&self, ns: &str, name: &str) -> Option<(usize, usize)> {
        self.deployments
            .iter()
            .enumerate()
            .filter(|(_, d)| d.ns == ns)
            .find_map(|(i, d)| d.pods.iter().position(|p| p.name == name).map(|j| (i, j)))
    }

    /// name → (resourceVersion, creation resourceVersion, object) of the
    /// objects of `kind` matching the selectors.
    fn objects(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: Option<&[Term]>,
        fields: &[(String, bool, String)],
    ) -> BTreeMap<String, (u64, u64, J)> {
        let mut out = BTreeMap::new();
        for d in self.deployments.iter().filter(|d| ns.is_none_or(|n| d.ns == n)) {
            match kind {
                Kind::Deployment => {
                    let obj = d.json();
                    if matches(&obj, labels, fields) {
                        out.insert(format!("{}/{}", d.ns, d.name()), (d.rv, d.created_rv, obj));
                    }
                }
                Kind::Pod => {
                    for p in &d.pods {
                        let obj = pod_json(d, p);
                        if matches(&obj, labels, fields) {
                            out.insert(format!("{}/{}", d.ns, p.name), (p.rv, p.created_rv, obj));
                        }
                    }
                }
            }
        }
        out
    }

    fn list(&mut self, req: &Req, kind: Kind, ns: Option<&str>) -> Resp {
        let labels = match req.query.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => match parse_selector(s) {
                Ok(t) => Some(t),
                Err(e) => return error(400, "BadRequest", format!("unable to parse requirement: {e}")),
            },
            None => None,
        };
        let mut fields = Vec::new();
        if let Some(f) = req.query.get("fieldSelector").filter(|s| !s.is_empty()) {
            for term in f.split(',') {
                let (k, eq, v) = if let Some((k, v)) = term.split_once("!=") {
                    (k, false, v)
                } else if let Some((k, v)) = term.split_once("==") {
                    (k, true, v)
                } else if let Some((k, v)) = term.split_once('=') {
                    (k, true, v)
                } else {
                    return error(400, "BadRequest", format!("invalid selector: '{f}'; can't understand '{term}'"));
                };
                let supported = match kind {
                    Kind::Deployment => ["metadata.name", "metadata.namespace"].contains(&k),
                    Kind::Pod => ["metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"].contains(&k),
                };
                if !supported {
                    return error(400, "BadRequest", format!("field label not supported: {k}"));
                }
                fields.push((k.to_string(), eq, v.to_string()));
            }
        }
        if req.flag("watch") {
            let since = req.query.get("resourceVersion").and_then(|v| v.parse::<u64>().ok()).filter(|v| *v > 0);
            let timeout = req
                .query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map_or(Duration::from_secs(300), Duration::from_secs);
            return Resp::Watch(WatchReq {
                kind,
                ns: ns.map(str::to_string),
                labels,
                fields,
                since,
                initial_events: req.flag("sendInitialEvents"),
                timeout,
            });
        }
        let items: Vec<J> =
            self.objects(kind, ns, labels.as_deref(), &fields).into_values().map(|(_, _, o)| o).collect();
        if wants_table(req) {
            return Resp::Json(200, table(kind, &items, self.rv));
        }
        let (api_version, list_kind) = match kind {
            Kind::Deployment => ("apps/v1", "DeploymentList"),
            Kind::Pod => ("v1", "PodList"),
        };
        Resp::Json(
            200,
            json!({"kind": list_kind, "apiVersion": api_version, "metadata": {"resourceVersion": self.rv.to_string()},
                "items": items}),
        )
    }

    fn log(&self, req: &Req, ns: &str, name: &str) -> Resp {
        let Some((i, j)) = self.find_pod(ns, name) else { return not_found("pods", "", name) };
        let (d, p) = (&self.deployments[i], &self.deployments[i].pods[j]);
        let names: Vec<String> = p.template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let container = match req.query.get("container").filter(|c| !c.is_empty()) {
            Some(c) if names.contains(c) => c.clone(),
            Some(c) => {
                return error(400, "BadRequest", format!("container {c} is not valid for pod {name}"));
            }
            None if names.len() == 1 => names[0].clone(),
            None => {
                return error(
                    400,
                    "BadRequest",
                    format!("a container name must be specified for pod {name}, choose one of: [{}]", names.join(" ")),
                );
            }
        };
        if !p.ready && p.ready_at.is_some() {
            return error(
                400,
                "BadRequest",
                format!("container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"),
            );
        }
        if req.flag("previous") {
            return error(
                400,
                "BadRequest",
                format!("previous terminated container \"{container}\" in pod \"{name}\" not found"),
            );
        }
        let mut lines = pod_log(d, p, &container);
        if let Some(n) = req.query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        if req.flag("timestamps") {
            lines = lines.into_iter().map(|l| format!("{} {l}", p.created)).collect();
        }
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if let Some(limit) = req.query.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
            let mut cut = limit.min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Resp::Text(200, text)
    }

    fn patch(&mut self, req: &Req, ns: &str, name: &str) -> Resp {
        let Some(i) = self.find(ns, name) else { return not_found("deployments", "apps", name) };
        let content_type = req.header("content-type").unwrap_or_default().split(';').next().unwrap_or_default().trim();
        let strategic = match content_type {
            "application/strategic-merge-patch+json" => true,
            "application/merge-patch+json" => false,
            other => {
                return error(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other})"
                    ),
                );
            }
        };
        let patch: J = match serde_json::from_slice(&req.body) {
            Ok(p @ J::Object(_)) => p,
            Ok(_) | Err(_) => return error(400, "BadRequest", "error decoding patch: not a JSON object"),
        };
        if let Some(r) = &self.reject {
            let message = if r.echo_body {
                format!(
                    "admission webhook \"deny.example.com\" denied the request: {}",
                    String::from_utf8_lossy(&req.body)
                )
            } else {
                "admission webhook \"deny.example.com\" denied the request".to_string()
            };
            let reason = if r.status == 403 { "Forbidden" } else { "Invalid" };
            return error(r.status, reason, message);
        }
        let before = self.deployments[i].doc.clone();
        let mut after = before.clone();
        if let Some(want) = patch["metadata"]["resourceVersion"].as_str()
            && want != self.deployments[i].rv.to_string()
        {
            return error(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on deployments.apps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            );
        }
        let mut patch_body = patch.clone();
        if let Some(o) = patch_body.as_object_mut() {
            // Status is its own subresource; the main resource ignores it.
            o.remove("status");
        }
        if strategic {
            strategic_merge(&mut after, &patch_body);
        } else {
            merge_patch(&mut after, &patch_body);
        }
        // What a patch cannot change.
        for k in ["name", "namespace", "uid", "generation", "creationTimestamp", "resourceVersion"] {
            after["metadata"][k] = before["metadata"][k].clone();
        }
        after["apiVersion"] = before["apiVersion"].clone();
        after["kind"] = before["kind"].clone();
        if let Err(e) = validate(&after, name) {
            return Resp::Json(
                422,
                status_json(422, "Invalid", &e, Some(json!({"name": name, "group": "apps", "kind": "Deployment"}))),
            );
        }
        let d = &mut self.deployments[i];
        d.patches += 1;
        if after["spec"] != before["spec"] {
            let g = after["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            after["metadata"]["generation"] = json!(g);
            d.changed_at = Instant::now();
        }
        let changed = after != before;
        d.doc = after;
        if changed {
            d.rv = self.rv + 1;
            self.rv += 1;
        }
        self.patches.push(SeenPatch {
            deployment: format!("{ns}/{name}"),
            content_type: content_type.to_string(),
            field_manager: req.query.get("fieldManager").cloned(),
            body: patch,
        });
        self.tick();
        let i = self.find(ns, name).unwrap_or(i);
        Resp::Json(200, self.deployments[i].json())
    }
}

/// kubectl get asks for server-side printing: `Accept: application/json;as=Table;…`.
fn wants_table(req: &Req) -> bool {
    req.header("accept").is_some_and(|a| a.split(',').next().is_some_and(|first| first.contains("as=Table")))
}

/// "5s", "3m", "2h", "4d", as kubectl prints ages.
fn age(created: &str) -> String {
    let now = ripcord_pki::clock::now_ms();
    let then = ripcord_engine::clock::parse_rfc3339(created).unwrap_or(now);
    let secs = ((now - then) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The `meta.k8s.io/v1` Table the API server prints `kubectl get` with.
fn table(kind: Kind, items: &[J], rv: u64) -> J {
    let col = |name: &str, ty: &str, priority: u8| {
        let format = if name == "Name" { "name" } else { "" };
        json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
    };
    let (columns, rows): (Vec<J>, Vec<J>) = match kind {
        Kind::Pod => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
            ],
            items
                .iter()
                .map(|p| {
                    let statuses = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
                    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
                    let restarts: u64 = statuses.iter().filter_map(|c| c["restartCount"].as_u64()).sum();
                    let waiting = statuses.iter().find_map(|c| c["state"]["waiting"]["reason"].as_str());
                    let status = waiting.or(p["status"]["phase"].as_str()).unwrap_or("Unknown");
                    (
                        vec![
                            p["metadata"]["name"].clone(),
                            json!(format!("{ready}/{}", statuses.len())),
                            json!(status),
                            json!(restarts.to_string()),
                            json!(age(p["metadata"]["creationTimestamp"].as_str().unwrap_or_default())),
                            p["status"]["podIP"].clone(),
                            p["spec"]["nodeName"].clone(),
                        ],
                        p,
                    )
                })
                .map(|(cells, p)| json!({"cells": cells, "object": partial(p)}))
                .collect(),
        ),
        Kind::Deployment => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|d| {
                    let st = &d["status"];
                    let n = |k: &str| st[k].as_u64().unwrap_or(0);
                    let containers =
                        d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
                    let names: Vec<&str> = containers.iter().filter_map(|c| c["name"].as_str()).collect();
                    let images: Vec<&str> = containers.iter().filter_map(|c| c["image"].as_str()).collect();
                    let selector: Vec<String> = d["spec"]["selector"]["matchLabels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    let cells = vec![
                        d["metadata"]["name"].clone(),
                        json!(format!("{}/{}", n("readyReplicas"), d["spec"]["replicas"].as_u64().unwrap_or(1))),
                        json!(n("updatedReplicas")),
                        json!(n("availableReplicas")),
                        json!(age(d["metadata"]["creationTimestamp"].as_str().unwrap_or_default())),
                        json!(names.join(",")),
                        json!(images.join(",")),
                        json!(selector.join(",")),
                    ];
                    json!({"cells": cells, "object": partial(d)})
                })
                .collect(),
        ),
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns, "rows": rows})
}

/// An object as `PartialObjectMetadata`, what a Table row carries by default.
fn partial(obj: &J) -> J {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn version() -> J {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

fn apps_group() -> J {
    json!({"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}})
}

fn resource(name: &str, singular: &str, kind: &str, verbs: &[&str], short: &[&str]) -> J {
    let mut r = json!({"name": name, "singularName": singular, "namespaced": true, "kind": kind, "verbs": verbs});
    if !short.is_empty() {
        r["shortNames"] = json!(short);
        r["categories"] = json!(["all"]);
    }
    r
}

fn core_resources() -> J {
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        resource("pods", "pod", "Pod", &["get", "list", "watch", "patch"], &["po"]),
        resource("pods/log", "", "Pod", &["get"], &[]),
        resource("pods/status", "", "Pod", &["get"], &[]),
    ]})
}

fn apps_resources() -> J {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1", "resources": [
        resource("deployments", "deployment", "Deployment", &["get", "list", "watch", "patch"], &["deploy"]),
        resource("deployments/status", "", "Deployment", &["get"], &[]),
    ]})
}

/// What the API server would refuse in a patched deployment (the part a
/// set env or restart can get wrong).
fn validate(d: &J, name: &str) -> Result<(), String> {
    let invalid = |field: String, value: &str, why: &str| {
        format!("Deployment.apps \"{name}\" is invalid: {field}: Invalid value: \"{value}\": {why}")
    };
    let containers = d["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        return Err(format!("Deployment.apps \"{name}\" is invalid: spec.template.spec.containers: Required value"));
    }
    for (ci, c) in containers.iter().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) || c["image"].as_str().is_none_or(str::is_empty) {
            return Err(format!(
                "Deployment.apps \"{name}\" is invalid: spec.template.spec.containers[{ci}]: Required value: name and image"
            ));
        }
        for (ei, e) in c["env"].as_array().into_iter().flatten().enumerate() {
            let field = format!("spec.template.spec.containers[{ci}].env[{ei}]");
            if e["name"].as_str().is_none_or(str::is_empty) {
                return Err(format!("Deployment.apps \"{name}\" is invalid: {field}.name: Required value"));
            }
            let has_value = e["value"].as_str().is_some_and(|v| !v.is_empty());
            if has_value && !e["valueFrom"].is_null() {
                return Err(invalid(
                    format!("{field}.valueFrom"),
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
        }
    }
    let labels = d["spec"]["template"]["metadata"]["labels"].clone();
    for (k, v) in d["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten() {
        if labels[k] != *v {
            return Err(invalid(
                "spec.template.metadata.labels".into(),
                &labels.to_string(),
                "`selector` does not match template `labels`",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------

/// One requirement of a label selector.
#[derive(Clone, Debug)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

fn parse_selector(s: &str) -> Result<Vec<Term>, String> {
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for ch in s.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let list = |rest: &str| -> Result<Vec<String>, String> {
            let inner =
                rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or(format!("{p}: no list"))?;
            Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
        };
        let term = if let Some(k) = p.strip_prefix('!') {
            Term::Absent(k.trim().to_string())
        } else if let Some((k, v)) = p.split_once("!=") {
            Term::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once("==") {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = p.split_once('=') {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = p.split_once(" notin ") {
            Term::NotIn(k.trim().into(), list(rest)?)
        } else if let Some((k, rest)) = p.split_once(" in ") {
            Term::In(k.trim().into(), list(rest)?)
        } else if p.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
            Term::Exists(p.to_string())
        } else {
            return Err(format!("{p}: unknown operator"));
        };
        out.push(term);
    }
    Ok(out)
}

fn matches(obj: &J, labels: Option<&[Term]>, fields: &[(String, bool, String)]) -> bool {
    let l = &obj["metadata"]["labels"];
    let get = |k: &str| l[k].as_str().map(str::to_string);
    let label_ok = labels.into_iter().flatten().all(|t| match t {
        Term::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
        Term::Ne(k, v) => get(k).as_deref() != Some(v.as_str()),
        Term::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
        Term::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
        Term::Exists(k) => get(k).is_some(),
        Term::Absent(k) => get(k).is_none(),
    });
    let field_ok = fields.iter().all(|(k, eq, v)| {
        let actual = k.split('.').fold(obj, |o, part| &o[part]).as_str().unwrap_or_default();
        (actual == v) == *eq
    });
    label_ok && field_ok
}

// ---------------------------------------------------------------------------
// Patches
// ---------------------------------------------------------------------------

/// The merge key of a list in a pod template (Kubernetes'
/// `patchMergeKey`), by field name; None for lists that a patch replaces.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// A patch value with its directives and nulls removed, for inserting
/// where nothing was.
fn clean(v: &J) -> J {
    match v {
        J::Object(m) => J::Object(
            m.iter().filter(|(k, v)| !k.starts_with('$') && !v.is_null()).map(|(k, v)| (k.clone(), clean(v))).collect(),
        ),
        J::Array(a) => J::Array(
            a.iter()
                .filter(|e| {
                    !(e.is_object() && e.get("$patch").is_some() && e.as_object().is_some_and(|o| o.len() == 1))
                })
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Kubernetes' strategic merge patch, for the fields of a deployment.
pub fn strategic_merge(target: &mut J, patch: &J) {
    let J::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(J::as_str) {
        Some("replace") => {
            *target = clean(patch);
            return;
        }
        Some("delete") => {
            *target = J::Object(Map::new());
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = J::Object(Map::new());
    }
    if let Some(J::Array(keep)) = p.get("$retainKeys")
        && let Some(t) = target.as_object_mut()
    {
        let keep: Vec<&str> = keep.iter().filter_map(J::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    let mut orders = Vec::new();
    for (k, v) in p {
        if let Some(list) = k.strip_prefix("$setElementOrder/") {
            orders.push((list.to_string(), v.clone()));
            continue;
        }
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(J::Array(t)), J::Array(del)) = (target.get_mut(list), v) {
                t.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let t = target.as_object_mut().expect("object");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(J::Array(tl)), J::Array(pl)) => merge_list(tl, pl, merge_key(k)),
            (Some(tv @ J::Object(_)), J::Object(_)) => strategic_merge(tv, v),
            _ => {
                t.insert(k.clone(), clean(v));
            }
        }
    }
    for (list, order) in orders {
        let Some(key) = merge_key(&list) else { continue };
        let Some(J::Array(items)) = target.get_mut(&list) else { continue };
        let order: Vec<J> = order.as_array().into_iter().flatten().map(|o| o[key].clone()).collect();
        let position = |e: &J| order.iter().position(|o| *o == e[key]).unwrap_or(usize::MAX);
        items.sort_by_key(position);
    }
}

fn merge_list(target: &mut Vec<J>, patch: &[J], key: Option<&str>) {
    let replace = patch.iter().any(|e| e.get("$patch").and_then(J::as_str) == Some("replace"));
    let Some(key) = key.filter(|_| !replace) else {
        *target = patch.iter().filter(|e| e.get("$patch").is_none()).map(clean).collect();
        return;
    };
    for e in patch {
        let k = &e[key];
        let at = target.iter().position(|t| t[key] == *k);
        if e.get("$patch").and_then(J::as_str) == Some("delete") {
            if let Some(i) = at {
                target.remove(i);
            }
            continue;
        }
        match at {
            Some(i) => strategic_merge(&mut target[i], e),
            None => target.push(clean(e)),
        }
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut J, patch: &J) {
    let J::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = J::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(J::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_handles_what_kubectl_sends() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "api", "image": "a", "env": [{"name": "A", "value": "1"}, {"name": "S", "valueFrom": {"x": 1}}]},
            {"name": "proxy", "image": "p"},
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "api"}, {"name": "proxy"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "S"}, {"name": "B"}],
                "env": [{"name": "B", "value": "2"}, {"name": "S", "value": "3", "valueFrom": null}], "name": "api"}],
        }}}});
        strategic_merge(&mut d, &patch);
        let env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(
            *env,
            json!([{"name": "A", "value": "1"}, {"name": "S", "value": "3"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(d["spec"]["template"]["spec"]["containers"][1], json!({"name": "proxy", "image": "p"}));
        let mut m = json!({"a": {"b": 1, "c": [1, 2]}});
        merge_patch(&mut m, &json!({"a": {"b": null, "c": [3]}}));
        assert_eq!(m, json!({"a": {"c": [3]}}));
    }

    #[test]
    fn selectors_match_labels() {
        let obj = json!({"metadata": {"name": "x", "labels": {"app": "api", "tier": "web"}}});
        for (sel, want) in [
            ("app=api", true),
            ("app==api,tier in (web, edge)", true),
            ("app=api,tier notin (web)", false),
            ("app,!canary", true),
            ("app!=api", false),
        ] {
            let terms = parse_selector(sel).unwrap();
            assert_eq!(matches(&obj, Some(&terms), &[]), want, "{sel}");
        }
        assert!(matches(&obj, None, &[("metadata.name".into(), true, "x".into())]));
        assert!(!matches(&obj, None, &[("metadata.name".into(), true, "y".into())]));
    }
}
