//! `k8s.*` actions: what the playbook does with kubectl, done with the kube
//! client.
//!
//! | action | kubectl |
//! |---|---|
//! | `k8s.set_env` | `kubectl set env deployment/D NAME=value` (a strategic-merge patch of the container's `env`, the same body kubectl sends) |
//! | `k8s.rollout_restart` | `kubectl rollout restart deployment/D` (the pod template annotation `kubectl.kubernetes.io/restartedAt`) |
//! | `k8s.rollout_wait` | `kubectl rollout status deployment/D --timeout=T` (the same rules, see [`rollout_state`]) |
//! | `k8s.pods_ready` | `kubectl get pods -l <the deployment's selector>` (Ready condition) |
//! | `k8s.logs` | `kubectl logs deployment/D --tail=N`, for each of the deployment's pods |
//!
//! Env values are often secrets (a Mongo URI with its password): they are
//! never logged, never in outputs, and scrubbed from every error message;
//! only the variable names are reported. The value still ends up in clear
//! text in the Deployment spec, as with kubectl; a Secret reference (or
//! `aws.update_secret`) is the better switch for credentials.
//!
//! Steps may run again (retries, a coordinator restart): `set_env` does not
//! patch when the values are already there, and `rollout_restart` marks the
//! template with the step that restarted it (`ripcord/restarted-by`), so
//! running the same step again does not start a second rollout.
//!
//! Reference: `shared/reference/kubernetes.md`.

use super::Outcome;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use ripcord_engine::actions as args;
use ripcord_engine::duration::{self, Human};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as J, json};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The annotation naming the run and step that restarted the deployment last.
pub const RESTARTED_BY: &str = "ripcord/restarted-by";
/// The pod annotation naming the container `kubectl logs` picks by default.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
/// The field manager of ripcord's patches.
pub const FIELD_MANAGER: &str = "ripcord";

/// `k8s.rollout_wait` without `timeout` (and `rollout_restart` with `wait`):
/// Kubernetes' default progress deadline.
const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);
/// `k8s.logs` without `tail`.
const DEFAULT_TAIL: u32 = 100;
/// `k8s.logs` reads at most this many pods.
const MAX_LOG_PODS: usize = 10;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The `[kube]` section of the coordinator configuration.
///
/// ```toml
/// [kube]
/// kubeconfig = "/etc/ripcord/kubeconfig"
/// context = "prod"
/// namespace = "chat"
/// ```
///
/// An empty `[kube]` section uses `KUBECONFIG`, else `~/.kube/config`, else
/// the in-cluster service account (a coordinator running in a pod).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeConfig {
    /// Path of the kubeconfig file to use. Default: the `KUBECONFIG`
    /// variable, else `~/.kube/config`, else the in-cluster configuration
    /// (the pod's service account).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its `current-context`.
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace of the steps that name none. Default "default".
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How often `k8s.rollout_wait` reads the deployment. Default "2s".
    #[serde(default = "default_poll_interval", with = "duration::serde_str")]
    pub poll_interval: Duration,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self { kubeconfig: None, context: None, namespace: default_namespace(), poll_interval: default_poll_interval() }
    }
}

impl KubeConfig {
    /// Resolves a relative `kubeconfig` path against `base` (the directory
    /// of the config file).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.kubeconfig
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What can go wrong. Messages never hold an env value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("no kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot build the kubernetes client: {0}")]
    Client(String),
    /// The API server answered with an error.
    #[error("kubernetes: {what}: {message} (HTTP {status}{reason})", reason = reason_suffix(reason))]
    Api { what: String, status: u16, reason: String, message: String },
    /// No answer (connection refused, TLS, timeout).
    #[error("kubernetes: {what}: no answer: {reason}")]
    Transport { what: String, reason: String },
    /// An answer ripcord cannot read.
    #[error("kubernetes: {what}: unexpected answer: {reason}")]
    Protocol { what: String, reason: String },
    /// Ripcord refuses (bad arguments, nothing to act on).
    #[error("kubernetes: {0}")]
    Refused(String),
    /// The rollout failed (progress deadline exceeded).
    #[error("kubernetes: {0}")]
    Rollout(String),
    /// The step's timeout ran out.
    #[error("kubernetes: {0}")]
    Timeout(String),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(", {reason}") }
}

impl Error {
    /// Worth trying again within the same wait: no answer, or a server error.
    fn transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    fn from_kube(what: impl Into<String>, e: kube::Error) -> Self {
        let what = what.into();
        match e {
            kube::Error::Api(s) => {
                let mut message = s.message.clone();
                match s.code {
                    401 => message.push_str(
                        "; the kubeconfig's credentials were refused: check the user of the context ripcord uses",
                    ),
                    403 => message.push_str(
                        "; where RBAC denies it, the coordinator's kubernetes user needs deployments: get, list, \
                         patch; pods: list; pods/log: get",
                    ),
                    _ => {}
                }
                Error::Api { what, status: s.code, reason: s.reason.clone(), message }
            }
            kube::Error::HyperError(e) => Error::Transport { what, reason: chain(&e) },
            kube::Error::Service(e) => Error::Transport { what, reason: chain(e.as_ref()) },
            kube::Error::SerdeError(e) => Error::Protocol { what, reason: e.to_string() },
            kube::Error::FromUtf8(e) => Error::Protocol { what, reason: e.to_string() },
            other => Error::Transport { what, reason: chain(&other) },
        }
    }
}

/// An error and its sources, "a: b: c".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// A Kubernetes client and the `k8s.*` actions. Cheap to clone.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
    poll: Duration,
    cluster: String,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("cluster", &self.cluster)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

type Deadline = Option<Instant>;
type Outputs = BTreeMap<String, Value>;

impl Kube {
    /// Loads the configuration (see [`KubeConfig`]) and builds the client.
    /// The rustls crypto provider must be installed first
    /// (`ripcord_pki::tls::install_crypto_provider`).
    pub async fn new(config: &KubeConfig) -> Result<Self, Error> {
        let options = KubeConfigOptions { context: config.context.clone(), ..Default::default() };
        let kc = match (&config.kubeconfig, &config.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Kubeconfig { path: path.clone(), reason: chain(&e) })?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Error::Kubeconfig { path: path.clone(), reason: chain(&e) })?
            }
            (None, Some(context)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| Error::Config(format!("kubeconfig context {context:?}: {}", chain(&e))))?,
            (None, None) => kube::Config::infer().await.map_err(|e| Error::Config(chain(&e)))?,
        };
        Self::from_config(kc, &config.namespace, config.poll_interval)
    }

    /// A client for the API server at `url` (no TLS settings, an optional
    /// bearer token): for tests against a fake API server.
    pub async fn from_url(url: &str, token: Option<&str>, namespace: &str) -> Result<Self, Error> {
        let mut user = json!({});
        if let Some(t) = token {
            user = json!({ "token": t });
        }
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "c", "cluster": { "server": url } }],
            "users": [{ "name": "u", "user": user }],
            "contexts": [{ "name": "c", "context": { "cluster": "c", "user": "u", "namespace": namespace } }],
            "current-context": "c",
        });
        let bad = |reason: String| Error::Config(format!("api server url {url:?}: {reason}"));
        let file: Kubeconfig = serde_json::from_value(doc).map_err(|e| bad(e.to_string()))?;
        let kc = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
            .await
            .map_err(|e| bad(chain(&e)))?;
        Self::from_config(kc, namespace, default_poll_interval())
    }

    fn from_config(mut kc: kube::Config, namespace: &str, poll: Duration) -> Result<Self, Error> {
        // A hung call must not hold a step forever; the step's own timeout
        // also applies.
        kc.read_timeout = Some(Duration::from_secs(60));
        kc.reset_reader_on_write = true;
        let cluster = kc.cluster_url.to_string();
        let client = kube::Client::try_from(kc).map_err(|e| Error::Client(chain(&e)))?;
        check_name("namespace", namespace)?;
        Ok(Self { client, namespace: namespace.to_string(), poll, cluster })
    }

    /// Replaces how often rollout waits poll (tests use short waits).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The namespace of steps that name none.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Performs `action`, giving up after `timeout` (the step's `timeout`,
    /// `Request::timeout_ms`).
    pub async fn perform(&self, action: &str, args: &Value, key: &Key, timeout: Option<Duration>) -> Outcome {
        // Waits stop at the deadline and say what they waited for; a call
        // that hangs anyway is cut off by the router (`integrations::Actions`).
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.dispatch(action, args, key, deadline).await {
            Ok(out) => Outcome::Succeeded(out),
            Err(e) => {
                let msg = scrub(e.to_string(), &secrets_of(action, args));
                warn!(key = %key, action, error = %msg, "k8s action failed");
                Outcome::Failed(msg)
            }
        }
    }

    async fn dispatch(&self, action: &str, args: &Value, key: &Key, d: Deadline) -> Result<Outputs, Error> {
        match action {
            "k8s.set_env" => self.set_env(&parse(action, args)?, key, d).await,
            "k8s.rollout_restart" => self.rollout_restart(&parse(action, args)?, key, d).await,
            "k8s.rollout_wait" => {
                let a: args::K8sRolloutWait = parse(action, args)?;
                let limit = wait_limit(action, a.timeout.as_deref())?;
                let ns = self.ns(&a.namespace)?;
                check_name("deployment", &a.deployment)?;
                let ready = self.wait_rollout(ns, &a.deployment, limit, d).await?;
                Ok(outputs([("ready_replicas", Value::Int(ready))]))
            }
            "k8s.pods_ready" => self.pods_ready(&parse(action, args)?, d).await,
            "k8s.logs" => self.logs(&parse(action, args)?, d).await,
            other => Err(Error::Refused(format!("unknown action {other}"))),
        }
    }

    fn ns<'a>(&'a self, given: &'a Option<String>) -> Result<&'a str, Error> {
        match given.as_deref() {
            Some(ns) if !ns.is_empty() => {
                check_name("namespace", ns)?;
                Ok(ns)
            }
            _ => Ok(&self.namespace),
        }
    }

    fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn deployment(&self, ns: &str, name: &str) -> Result<Deployment, Error> {
        self.deployments(ns).get(name).await.map_err(|e| match e {
            kube::Error::Api(s) if s.is_not_found() => {
                Error::Refused(format!("deployment {ns}/{name} not found on {}", self.cluster))
            }
            e => Error::from_kube(format!("get deployment {ns}/{name}"), e),
        })
    }

    async fn patch(&self, ns: &str, name: &str, body: &J) -> Result<Deployment, Error> {
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        self.deployments(ns)
            .patch(name, &params, &Patch::Strategic(body))
            .await
            .map_err(|e| Error::from_kube(format!("patch deployment {ns}/{name}"), e))
    }

    // -- k8s.set_env ------------------------------------------------------------

    async fn set_env(&self, a: &args::K8sSetEnv, key: &Key, _d: Deadline) -> Result<Outputs, Error> {
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        if a.env.is_empty() {
            return Err(Error::Refused("k8s.set_env: env is empty".into()));
        }
        for name in a.env.keys() {
            check_env_name(name)?;
        }
        let dep = self.deployment(ns, &a.deployment).await?;
        let containers = template_containers(&dep);
        let container = pick_container(&containers, a.container.as_deref(), template_default_container(&dep))
            .map_err(|e| Error::Refused(format!("deployment {ns}/{}: {e}", a.deployment)))?;
        let Some(patch) = env_patch(&containers, container, &a.env) else {
            let names: Vec<&str> = a.env.keys().map(String::as_str).collect();
            info!(key = %key, deployment = %format!("{ns}/{}", a.deployment), container, names = ?names,
                "env already set, nothing to patch");
            return Ok(set_env_outputs(dep.metadata.generation.unwrap_or(0), &[]));
        };
        let changed = patch.changed.clone();
        let patched = self.patch(ns, &a.deployment, &patch.body).await?;
        // Check what the server made of the patch (a mutating webhook, or a
        // server that merged it differently, could have changed it).
        let after = template_containers(&patched);
        let missing: Vec<&str> = a
            .env
            .iter()
            .filter(|(k, v)| {
                let c = after.iter().find(|c| c.name == container);
                env_value(c, k) != Some(v.as_str())
            })
            .map(|(k, _)| k.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Protocol {
                what: format!("patch deployment {ns}/{}", a.deployment),
                reason: format!("container {container} does not hold the new value of {}", missing.join(", ")),
            });
        }
        let generation = patched.metadata.generation.unwrap_or(0);
        info!(key = %key, deployment = %format!("{ns}/{}", a.deployment), container, changed = ?changed, generation,
            "env set");
        Ok(set_env_outputs(generation, &changed))
    }

    // -- k8s.rollout_restart ----------------------------------------------------

    async fn rollout_restart(&self, a: &args::K8sRolloutRestart, key: &Key, d: Deadline) -> Result<Outputs, Error> {
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        let dep = self.deployment(ns, &a.deployment).await?;
        if dep.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            return Err(Error::Refused(format!(
                "deployment {ns}/{} is paused: resume it first (kubectl rollout resume)",
                a.deployment
            )));
        }
        let marker = format!("{}/{}", key.run, key.step);
        let annotations = dep
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        let previous = annotations.get(RESTARTED_AT).cloned();
        let restarted_at = match (&previous, annotations.get(RESTARTED_BY)) {
            (Some(at), Some(by)) if *by == marker => {
                info!(key = %key, deployment = %format!("{ns}/{}", a.deployment), restarted_at = %at,
                    "already restarted by this step");
                at.clone()
            }
            _ => {
                let mut secs = ripcord_pki::clock::now_ms().div_euclid(1000);
                // The same second as the last restart would change nothing
                // and start no rollout.
                if previous.as_deref() == Some(rfc3339(secs).as_str()) {
                    secs += 1;
                }
                let at = rfc3339(secs);
                let body = json!({"spec": {"template": {"metadata": {"annotations": {
                    RESTARTED_AT: at, RESTARTED_BY: marker,
                }}}}});
                let patched = self.patch(ns, &a.deployment, &body).await?;
                info!(key = %key, deployment = %format!("{ns}/{}", a.deployment), restarted_at = %at,
                    generation = patched.metadata.generation.unwrap_or(0), "rollout restarted");
                at
            }
        };
        if a.wait == Some(true) {
            self.wait_rollout(ns, &a.deployment, DEFAULT_ROLLOUT_TIMEOUT, d).await?;
        }
        Ok(outputs([("restarted_at", Value::str(restarted_at))]))
    }

    // -- k8s.rollout_wait -------------------------------------------------------

    /// Reads the deployment until [`rollout_state`] says done (its ready
    /// replicas) or failed, for at most `limit` (and never past `d`).
    async fn wait_rollout(&self, ns: &str, name: &str, limit: Duration, d: Deadline) -> Result<i64, Error> {
        let started = Instant::now();
        let own = started + limit;
        let deadline = d.map_or(own, |d| d.min(own));
        let within = match d {
            Some(d) if d < own => {
                format!("the step's timeout ({} left)", Human(millis(d.saturating_duration_since(started))))
            }
            _ => Human(limit).to_string(),
        };
        let mut last = String::from("no answer yet");
        loop {
            match self.deployment(ns, name).await {
                Ok(dep) => match rollout_state(&dep) {
                    Rollout::Done { ready } => {
                        debug!(deployment = %format!("{ns}/{name}"), ready, "rollout complete");
                        return Ok(ready);
                    }
                    Rollout::Failed(msg) => return Err(Error::Rollout(format!("deployment {ns}/{name}: {msg}"))),
                    Rollout::Waiting(msg) => {
                        if msg != last {
                            debug!(deployment = %format!("{ns}/{name}"), status = %msg, "rollout in progress");
                        }
                        last = msg;
                    }
                },
                Err(e) if e.transient() => {
                    warn!(deployment = %format!("{ns}/{name}"), error = %e, "cannot read the deployment, trying again");
                    last = e.to_string();
                }
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!(
                    "deployment {ns}/{name} did not finish its rollout within {within}: {last}"
                )));
            }
            tokio::time::sleep(self.poll.min(left)).await;
        }
    }

    // -- k8s.pods_ready ---------------------------------------------------------

    async fn pods_ready(&self, a: &args::K8sPodsReady, _d: Deadline) -> Result<Outputs, Error> {
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        let pods = self.deployment_pods(ns, &a.deployment).await?;
        let live: Vec<&Pod> = pods.iter().filter(|p| is_live(p)).collect();
        let ready = live.iter().filter(|p| is_ready(p)).count();
        let total = live.len();
        let min = a.min_ready.unwrap_or(1) as usize;
        if ready < min {
            let why: Vec<String> = live.iter().filter(|p| !is_ready(p)).map(|p| not_ready_reason(p)).collect();
            let mut msg =
                format!("deployment {ns}/{}: {ready} of {total} pods ready, want at least {min}", a.deployment);
            if !why.is_empty() {
                msg.push_str(&format!(" ({})", why.join("; ")));
            }
            return Err(Error::Refused(msg));
        }
        Ok(outputs([("ready", Value::Int(ready as i64)), ("total", Value::Int(total as i64))]))
    }

    /// The pods matching the deployment's selector.
    async fn deployment_pods(&self, ns: &str, name: &str) -> Result<Vec<Pod>, Error> {
        let dep = self.deployment(ns, name).await?;
        let selector = dep
            .spec
            .as_ref()
            .map(|s| label_selector(&s.selector))
            .transpose()
            .map_err(|e| Error::Refused(format!("deployment {ns}/{name}: {e}")))?
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(Error::Refused(format!("deployment {ns}/{name} has an empty selector")));
        }
        let list = self
            .pods(ns)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| Error::from_kube(format!("list pods in {ns} with {selector}"), e))?;
        Ok(list.items)
    }

    // -- k8s.logs ---------------------------------------------------------------

    async fn logs(&self, a: &args::K8sLogs, _d: Deadline) -> Result<Outputs, Error> {
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        let tail = a.tail.unwrap_or(DEFAULT_TAIL);
        let mut pods = self.deployment_pods(ns, &a.deployment).await?;
        if pods.is_empty() {
            return Err(Error::Refused(format!("deployment {ns}/{} has no pods", a.deployment)));
        }
        // Like kubectl's choice of a pod: running before pending, ready
        // after not ready (the broken ones first), newest first.
        pods.sort_by_key(|p| {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_millisecond()).unwrap_or(0);
            (!running, is_ready(p), std::cmp::Reverse(created), p.metadata.name.clone())
        });
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        for pod in pods.iter().take(MAX_LOG_PODS) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
            let default = pod.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CONTAINER)).map(String::as_str);
            let container = match pick_container(&containers, a.container.as_deref(), default) {
                Ok(c) => c.to_string(),
                Err(e) => {
                    errors.push(format!("pod {name}: {e}"));
                    continue;
                }
            };
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(i64::from(tail)),
                ..Default::default()
            };
            match self.pods(ns).logs(&name, &params).await {
                Ok(text) => {
                    let prefix = format!("[pod/{name}/{container}] ");
                    lines.extend(text.lines().map(|l| Value::str(format!("{prefix}{l}"))));
                }
                Err(e) => errors.push(Error::from_kube(format!("logs of pod {ns}/{name}"), e).to_string()),
            }
        }
        if lines.is_empty() && !errors.is_empty() {
            return Err(Error::Refused(format!(
                "no logs from deployment {ns}/{}: {}",
                a.deployment,
                errors.join("; ")
            )));
        }
        for e in &errors {
            warn!(deployment = %format!("{ns}/{}", a.deployment), error = %e, "some logs could not be read");
        }
        Ok(outputs([("lines", Value::List(lines))]))
    }
}

// ---------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------

/// Where a rollout stands, by `kubectl rollout status`'s rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica runs the current template and is available.
    Done { ready: i64 },
    /// Still going, with kubectl's message.
    Waiting(String),
    /// The Progressing condition says ProgressDeadlineExceeded.
    Failed(String),
}

/// kubectl's `DeploymentStatusViewer`: the controller has seen the current
/// generation (`observedGeneration >= generation`); then it fails on
/// `Progressing` with reason `ProgressDeadlineExceeded`, and waits while
/// `updatedReplicas < replicas` (spec), `status.replicas > updatedReplicas`
/// (old pods left) or `availableReplicas < updatedReplicas`.
pub fn rollout_state(dep: &Deployment) -> Rollout {
    let name = dep.metadata.name.as_deref().unwrap_or("?");
    let generation = dep.metadata.generation.unwrap_or(0);
    let status = dep.status.clone().unwrap_or_default();
    if generation > status.observed_generation.unwrap_or(0) {
        return Rollout::Waiting("waiting for deployment spec update to be observed".into());
    }
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
    if let Some(c) = progressing
        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        let mut msg = format!("deployment {name:?} exceeded its progress deadline");
        if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
            msg.push_str(&format!(" ({m})"));
        }
        return Rollout::Failed(msg);
    }
    let want = dep.spec.as_ref().and_then(|s| s.replicas);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if let Some(want) = want
        && updated < want
    {
        return Rollout::Waiting(format!(
            "waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return Rollout::Waiting(format!(
            "waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Waiting(format!(
            "waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available"
        ));
    }
    Rollout::Done { ready: i64::from(status.ready_replicas.unwrap_or(available)) }
}

/// A strategic-merge patch setting env vars on one container, as kubectl
/// builds it, and the names it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvPatch {
    pub body: J,
    pub changed: Vec<String>,
}

/// The patch that gives `container` the values in `env`, or None when it
/// has them already. An existing variable read from a Secret or field
/// (`valueFrom`) is replaced by the plain value, like `kubectl set env`.
pub fn env_patch(containers: &[Container], container: &str, env: &BTreeMap<String, String>) -> Option<EnvPatch> {
    let c = containers.iter().find(|c| c.name == container)?;
    let current = c.env.clone().unwrap_or_default();
    let mut entries = Vec::new();
    let mut changed = Vec::new();
    for (name, value) in env {
        let existing = current.iter().find(|e| e.name == *name);
        let same = existing.is_some_and(|e| e.value.as_deref() == Some(value.as_str()) && e.value_from.is_none());
        if same {
            continue;
        }
        let mut entry = json!({ "name": name, "value": value });
        if existing.is_some_and(|e| e.value_from.is_some()) {
            entry["valueFrom"] = J::Null;
        }
        entries.push(entry);
        changed.push(name.clone());
    }
    if entries.is_empty() {
        return None;
    }
    let mut order: Vec<J> = current.iter().map(|e| json!({ "name": e.name })).collect();
    for name in &changed {
        if !current.iter().any(|e| e.name == *name) {
            order.push(json!({ "name": name }));
        }
    }
    let container_order: Vec<J> = containers.iter().map(|c| json!({ "name": c.name })).collect();
    let body = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": container_order,
        "containers": [{ "$setElementOrder/env": order, "env": entries, "name": container }],
    }}}});
    Some(EnvPatch { body, changed })
}

/// The container to act on: the one named, else the one the
/// `kubectl.kubernetes.io/default-container` annotation names, else the
/// first.
pub fn pick_container<'a>(
    containers: &'a [Container],
    wanted: Option<&str>,
    default: Option<&str>,
) -> Result<&'a str, String> {
    let names = || containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        return containers
            .iter()
            .find(|c| c.name == w)
            .map(|c| c.name.as_str())
            .ok_or_else(|| format!("no container {w:?} (containers: {})", names()));
    }
    if let Some(d) = default
        && let Some(c) = containers.iter().find(|c| c.name == d)
    {
        return Ok(&c.name);
    }
    containers.first().map(|c| c.name.as_str()).ok_or_else(|| "no containers".to_string())
}

/// Why a deployment's selector cannot be written as a `labelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A match expression with an operator other than `In`, `NotIn`,
    /// `Exists` and `DoesNotExist`.
    #[error("unknown selector operator {0:?}")]
    UnknownOperator(String),
}

/// `a=b,c in (d,e),!f`: the selector in the syntax of `labelSelector`.
pub fn label_selector(s: &LabelSelector) -> Result<String, SelectorError> {
    let mut parts: Vec<String> = s.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(SelectorError::UnknownOperator(other.to_string())),
        });
    }
    Ok(parts.join(","))
}

fn template_containers(dep: &Deployment) -> Vec<Container> {
    dep.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| s.containers.clone()).unwrap_or_default()
}

fn template_default_container(dep: &Deployment) -> Option<&str> {
    dep.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(DEFAULT_CONTAINER))
        .map(String::as_str)
}

fn env_value<'a>(c: Option<&'a Container>, name: &str) -> Option<&'a str> {
    c?.env.as_ref()?.iter().find(|e| e.name == name).filter(|e| e.value_from.is_none())?.value.as_deref()
}

fn set_env_outputs(generation: i64, changed: &[String]) -> Outputs {
    outputs([
        ("generation", Value::Int(generation)),
        ("changed", Value::List(changed.iter().map(|n| Value::str(n.clone())).collect())),
    ])
}

/// Not terminating and not finished.
fn is_live(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    p.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The pod's `Ready` condition is `True`.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// "api-7d9f-x2x: CrashLoopBackOff", for a pod that is not ready.
fn not_ready_reason(p: &Pod) -> String {
    let name = p.metadata.name.as_deref().unwrap_or("?");
    let status = p.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone()));
    let why = waiting.or_else(|| status.and_then(|s| s.phase.clone())).unwrap_or_else(|| "not ready".into());
    format!("{name}: {why}")
}

fn wait_limit(action: &str, timeout: Option<&str>) -> Result<Duration, Error> {
    match timeout.filter(|t| !t.is_empty()) {
        Some(t) => duration::parse(t).map_err(|e| Error::Refused(format!("{action}: timeout {t:?}: {e}"))),
        None => Ok(DEFAULT_ROLLOUT_TIMEOUT),
    }
}

/// A DNS-1123 label (namespaces) or subdomain (deployments): lowercase
/// letters, digits, '-' and '.', at most 253 characters.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(Error::Refused(format!("{what} {name:?} is not a valid kubernetes name"))) }
}

/// What kubectl accepts as an env var name: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn check_env_name(name: &str) -> Result<(), Error> {
    let ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Refused(format!("k8s.set_env: {name:?} is not a valid environment variable name")))
    }
}

/// The env values of a `k8s.set_env` step, to scrub from messages.
fn secrets_of(action: &str, args: &Value) -> Vec<String> {
    if action != "k8s.set_env" {
        return Vec::new();
    }
    let Some(Value::Map(env)) = args.get("env") else { return Vec::new() };
    let mut out = Vec::new();
    for v in env.values() {
        let v = v.to_string();
        if let Ok(quoted) = serde_json::to_string(&v) {
            out.push(quoted.trim_matches('"').to_string());
        }
        // The password of a URI alone (scheme://user:password@host).
        if let Some((_, rest)) = v.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_string());
        }
        out.push(v);
    }
    out.retain(|s| s.len() >= 4);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Replaces every secret in `s` with "••••".
fn scrub(mut s: String, secrets: &[String]) -> String {
    for secret in secrets {
        s = s.replace(secret.as_str(), "••••");
    }
    s
}

fn parse<T: DeserializeOwned>(action: &str, args: &Value) -> Result<T, Error> {
    // Never show the arguments: they may hold env values.
    let v = serde_json::to_value(args).map_err(|_| Error::Refused(format!("{action}: bad arguments")))?;
    serde_json::from_value(v)
        .map_err(|e| Error::Refused(format!("{action}: bad arguments: {}", redact_quoted(&e.to_string()))))
}

/// serde quotes values in double quotes ("invalid type: string \"…\"") and
/// names fields in backticks: drop what is quoted.
fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            out.push('…');
            while let Some(q) = chars.next() {
                match q {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            out.push('"');
        }
    }
    out
}

fn outputs<const N: usize>(items: [(&str, Value); N]) -> Outputs {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `d` to whole milliseconds, for messages.
fn millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2024-05-01T12:00:00Z`, to the second like kubectl's.
fn rfc3339(secs: i64) -> String {
    ripcord_engine::clock::rfc3339(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn dep(generation: i64, replicas: i32, status: DeploymentStatus) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("api".into());
        d.metadata.generation = Some(generation);
        d.spec = Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() });
        d.status = Some(status);
        d
    }

    fn status(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ready_replicas: Some(available),
            ..Default::default()
        }
    }

    #[test]
    fn rollout_state_follows_kubectl() {
        let table = [
            (dep(2, 3, status(1, 3, 3, 3)), "observed"),
            (dep(2, 3, status(2, 4, 1, 3)), "1 out of 3 new replicas"),
            (dep(2, 3, status(2, 4, 3, 3)), "1 old replicas are pending termination"),
            (dep(2, 3, status(2, 3, 3, 2)), "2 of 3 updated replicas are available"),
        ];
        for (d, want) in table {
            match rollout_state(&d) {
                Rollout::Waiting(m) => assert!(m.contains(want), "{m} should contain {want}"),
                other => panic!("expected waiting ({want}), got {other:?}"),
            }
        }
        assert_eq!(rollout_state(&dep(2, 3, status(2, 3, 3, 3))), Rollout::Done { ready: 3 });
        assert_eq!(rollout_state(&dep(2, 3, status(3, 3, 3, 3))), Rollout::Done { ready: 3 });
        let mut stuck = status(2, 4, 1, 3);
        stuck.conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"api-1\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        match rollout_state(&dep(2, 3, stuck.clone())) {
            Rollout::Failed(m) => assert!(m.contains("exceeded its progress deadline"), "{m}"),
            other => panic!("expected failed, got {other:?}"),
        }
        // Before the controller saw the new generation, an old condition does not count.
        assert!(matches!(rollout_state(&dep(3, 3, stuck)), Rollout::Waiting(_)));
    }

    fn container(name: &str, env: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            env: Some(
                env.iter()
                    .map(|(k, v)| EnvVar { name: (*k).into(), value: Some((*v).into()), value_from: None })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn env_patch_is_what_kubectl_sends() {
        let cs = vec![container("api", &[("PORT", "8080")]), container("proxy", &[])];
        let p = env_patch(&cs, "api", &env(&[("MONGO_URI", "mongodb://u:p@h/db")])).unwrap();
        assert_eq!(
            p.body,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "api"}, {"name": "proxy"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "PORT"}, {"name": "MONGO_URI"}],
                    "env": [{"name": "MONGO_URI", "value": "mongodb://u:p@h/db"}],
                    "name": "api",
                }],
            }}}})
        );
        assert_eq!(p.changed, vec!["MONGO_URI".to_string()]);
        assert!(env_patch(&cs, "api", &env(&[("PORT", "8080")])).is_none(), "nothing to change");
        let mut from_secret = container("api", &[]);
        from_secret.env = Some(vec![EnvVar {
            name: "MONGO_URI".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: "db".into(), key: "uri".into(), optional: None }),
                ..Default::default()
            }),
        }]);
        let p = env_patch(&[from_secret], "api", &env(&[("MONGO_URI", "x")])).unwrap();
        assert_eq!(p.body["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"], J::Null);
    }

    #[test]
    fn containers_are_picked_like_kubectl() {
        let cs = vec![container("proxy", &[]), container("api", &[])];
        assert_eq!(pick_container(&cs, None, None), Ok("proxy"));
        assert_eq!(pick_container(&cs, None, Some("api")), Ok("api"));
        assert_eq!(pick_container(&cs, Some("api"), Some("proxy")), Ok("api"));
        assert!(pick_container(&cs, Some("web"), None).unwrap_err().contains("proxy, api"));
        assert!(pick_container(&[], None, None).is_err());
    }

    #[test]
    fn selectors_are_written_in_label_selector_syntax() {
        let s = LabelSelector {
            match_labels: Some([("app".to_string(), "api".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "edge".into()]),
                },
                LabelSelectorRequirement { key: "canary".into(), operator: "DoesNotExist".into(), values: None },
            ]),
        };
        assert_eq!(label_selector(&s).unwrap(), "app=api,tier in (web,edge),!canary");
        let odd = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        let e = label_selector(&odd).unwrap_err();
        assert_eq!(e, SelectorError::UnknownOperator("Near".into()));
        assert_eq!(e.to_string(), "unknown selector operator \"Near\"");
    }

    #[test]
    fn secrets_are_scrubbed_in_every_form() {
        let mut env = BTreeMap::new();
        env.insert("MONGO_URI".to_string(), Value::str("mongodb+srv://app:s3cr3t-pw@c.example.net/chat?x=\"y\""));
        let mut args = BTreeMap::new();
        args.insert("env".to_string(), Value::Map(env));
        let secrets = secrets_of("k8s.set_env", &Value::Map(args));
        let msg = "bad: mongodb+srv://app:s3cr3t-pw@c.example.net/chat?x=\\\"y\\\" and s3cr3t-pw alone".to_string();
        let out = scrub(msg, &secrets);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(
            redact_quoted(r#"invalid type: string "a\"b", expected a map at `env`"#),
            r#"invalid type: string "…", expected a map at `env`"#
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("deployment", "api").is_ok());
        assert!(check_name("deployment", "chat.api-2").is_ok());
        for bad in ["", "API", "-api", "api/x", "a b"] {
            assert!(check_name("deployment", bad).is_err(), "{bad}");
        }
        assert!(check_env_name("MONGO_URI").is_ok());
        assert!(check_env_name("1X").is_err());
        assert!(check_env_name("A=B").is_err());
    }

    #[test]
    fn config_defaults_and_refuses_unknown_fields() {
        let c: KubeConfig = toml::from_str("").unwrap();
        assert_eq!(c, KubeConfig::default());
        assert_eq!(c.namespace, "default");
        let c: KubeConfig =
            toml::from_str("kubeconfig = \"kc\"\ncontext = \"prod\"\nnamespace = \"chat\"\npoll_interval = \"5s\"\n")
                .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        let mut c2 = c.clone();
        c2.resolve_paths(Path::new("/etc/ripcord"));
        assert_eq!(c2.kubeconfig.as_deref(), Some(Path::new("/etc/ripcord/kc")));
        let bad = toml::from_str::<KubeConfig>("token = \"x\"\n").unwrap_err().to_string();
        assert!(bad.contains("unknown field `token`"), "{bad}");
    }

    /// The performer's futures must be `Send` (the driver spawns them).
    #[allow(dead_code)]
    fn perform_is_send(k: &Kube, v: &Value, key: &Key) {
        fn send<T: Send>(_: T) {}
        send(k.perform("k8s.rollout_wait", v, key, None));
    }
}
