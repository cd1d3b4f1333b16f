//! The deployment actions: `k8s.set_env`, `k8s.rollout_restart` and
//! `k8s.rollout_wait`, with the pure parts they stand on: the env patch
//! kubectl sends ([`env_patch`]) and where a rollout stands by
//! `kubectl rollout status`'s rules ([`rollout_state`]).

use super::actions::{Deadline, Outputs, check_env_name, check_name, outputs};
use super::{DEFAULT_CONTAINER, Error, FIELD_MANAGER, Kube, RESTARTED_AT, RESTARTED_BY, pick_container};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use kube::api::{Api, Patch, PatchParams};
use ripcord_engine::actions as args;
use ripcord_engine::duration::{self, Human};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde_json::{Value as J, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// `k8s.rollout_wait` without `timeout` (and `rollout_restart` with `wait`):
/// Kubernetes' default progress deadline.
const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

impl Kube {
    pub(super) fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The deployment `ns/name`; a missing one is refused with the cluster's URL.
    pub(super) async fn deployment(&self, ns: &str, name: &str) -> Result<Deployment, Error> {
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

    /// `kubectl set env`: patches only what differs, then checks that the
    /// container holds every new value.
    pub(super) async fn set_env(&self, a: &args::K8sSetEnv, key: &Key, _d: Deadline) -> Result<Outputs, Error> {
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
        let missing = not_applied(&patched, container, &a.env);
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

    /// `kubectl rollout restart`, once per step: a template already marked
    /// by this step is not restarted again.
    pub(super) async fn rollout_restart(
        &self,
        a: &args::K8sRolloutRestart,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
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
        let annotations = template_annotations(&dep);
        let previous = annotations.get(RESTARTED_AT).cloned();
        let restarted_at = match (&previous, annotations.get(RESTARTED_BY)) {
            (Some(at), Some(by)) if *by == marker => {
                info!(key = %key, deployment = %format!("{ns}/{}", a.deployment), restarted_at = %at,
                    "already restarted by this step");
                at.clone()
            }
            _ => self.restart(ns, &a.deployment, &marker, previous.as_deref(), key).await?,
        };
        if a.wait == Some(true) {
            self.wait_rollout(ns, &a.deployment, DEFAULT_ROLLOUT_TIMEOUT, d).await?;
        }
        Ok(outputs([("restarted_at", Value::str(restarted_at))]))
    }

    /// Marks the pod template with a new `restartedAt` (and the step that
    /// set it), which starts a rollout; returns the time it set.
    async fn restart(
        &self,
        ns: &str,
        name: &str,
        marker: &str,
        previous: Option<&str>,
        key: &Key,
    ) -> Result<String, Error> {
        let mut secs = ripcord_pki::clock::now_ms().div_euclid(1000);
        // The same second as the last restart would change nothing
        // and start no rollout.
        if previous == Some(rfc3339(secs).as_str()) {
            secs += 1;
        }
        let at = rfc3339(secs);
        let body = json!({"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT: at, RESTARTED_BY: marker,
        }}}}});
        let patched = self.patch(ns, name, &body).await?;
        info!(key = %key, deployment = %format!("{ns}/{name}"), restarted_at = %at,
            generation = patched.metadata.generation.unwrap_or(0), "rollout restarted");
        Ok(at)
    }

    /// `kubectl rollout status --timeout=T`.
    pub(super) async fn rollout_wait(&self, a: &args::K8sRolloutWait, d: Deadline) -> Result<Outputs, Error> {
        let limit = wait_limit("k8s.rollout_wait", a.timeout.as_deref())?;
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        let ready = self.wait_rollout(ns, &a.deployment, limit, d).await?;
        Ok(outputs([("ready_replicas", Value::Int(ready))]))
    }

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
}

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

fn template_annotations(dep: &Deployment) -> BTreeMap<String, String> {
    dep.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.annotations.clone()).unwrap_or_default()
}

/// The names in `env` whose value `container` of the patched deployment
/// does not hold.
fn not_applied<'a>(patched: &Deployment, container: &str, env: &'a BTreeMap<String, String>) -> Vec<&'a str> {
    let after = template_containers(patched);
    let c = after.iter().find(|c| c.name == container);
    env.iter().filter(|(k, v)| env_value(c, k) != Some(v.as_str())).map(|(k, _)| k.as_str()).collect()
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

fn wait_limit(action: &str, timeout: Option<&str>) -> Result<Duration, Error> {
    match timeout.filter(|t| !t.is_empty()) {
        Some(t) => duration::parse(t).map_err(|e| Error::Refused(format!("{action}: timeout {t:?}: {e}"))),
        None => Ok(DEFAULT_ROLLOUT_TIMEOUT),
    }
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
}
