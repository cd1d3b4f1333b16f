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
//! - `config`: the `[kube]` section ([`KubeConfig`]).
//! - `actions`: from an action name to its implementation, and the
//!   argument checks every action shares.
//! - `deployments`: `k8s.set_env`, `k8s.rollout_restart` and
//!   `k8s.rollout_wait`, with the pure parts: the env patch ([`env_patch`])
//!   and where a rollout stands ([`rollout_state`]).
//! - `pods`: `k8s.pods_ready` and `k8s.logs`, the deployment's pods by its
//!   selector ([`label_selector`]) and the container to read
//!   ([`pick_container`]).
//! - `scrub`: env values kept out of every message.
//! - `error`: [`Error`] and the mapping from kube-rs errors.
//!
//! Reference: `shared/reference/kubernetes.md`.

mod actions;
mod config;
mod deployments;
mod error;
mod pods;
mod scrub;

pub use config::KubeConfig;
pub use deployments::{EnvPatch, Rollout, env_patch, rollout_state};
pub use error::{ContainerError, Error, SelectorError};
pub use pods::{is_ready, label_selector, pick_container};

use super::Outcome;
use actions::check_name;
use error::chain;
use kube::config::{KubeConfigOptions, Kubeconfig};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use scrub::{scrub, secrets_of};
use serde_json::json;
use std::fmt;
use std::time::{Duration, Instant};
use tracing::warn;

/// The annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The annotation naming the run and step that restarted the deployment last.
pub const RESTARTED_BY: &str = "ripcord/restarted-by";
/// The pod annotation naming the container `kubectl logs` picks by default.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
/// The field manager of ripcord's patches.
pub const FIELD_MANAGER: &str = "ripcord";

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
        Self::from_config(kc, namespace, config::default_poll_interval())
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The performer's futures must be `Send` (the driver spawns them).
    #[allow(dead_code)]
    fn perform_is_send(k: &Kube, v: &Value, key: &Key) {
        fn send<T: Send>(_: T) {}
        send(k.perform("k8s.rollout_wait", v, key, None));
    }
}
