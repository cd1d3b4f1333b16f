//! The pod actions: `k8s.pods_ready` and `k8s.logs`, on the pods a
//! deployment's selector matches ([`label_selector`]), reading the
//! container kubectl would pick ([`pick_container`]).

use super::actions::{Deadline, Outputs, check_name, outputs};
use super::{ContainerError, DEFAULT_CONTAINER, Error, Kube, SelectorError};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams};
use ripcord_engine::actions as args;
use ripcord_engine::value::Value;
use tracing::warn;

/// `k8s.logs` without `tail`.
const DEFAULT_TAIL: u32 = 100;
/// `k8s.logs` reads at most this many pods.
const MAX_LOG_PODS: usize = 10;

impl Kube {
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// At least `min_ready` (default 1) of the deployment's live pods are
    /// ready.
    pub(super) async fn pods_ready(&self, a: &args::K8sPodsReady, _d: Deadline) -> Result<Outputs, Error> {
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

    /// `kubectl logs deployment/D --tail=N`, for each of its pods (at most
    /// `MAX_LOG_PODS`); fails only when no pod's logs could be read.
    pub(super) async fn logs(&self, a: &args::K8sLogs, _d: Deadline) -> Result<Outputs, Error> {
        let ns = self.ns(&a.namespace)?;
        check_name("deployment", &a.deployment)?;
        let tail = a.tail.unwrap_or(DEFAULT_TAIL);
        let mut pods = self.deployment_pods(ns, &a.deployment).await?;
        if pods.is_empty() {
            return Err(Error::Refused(format!("deployment {ns}/{} has no pods", a.deployment)));
        }
        pods.sort_by_key(log_order);
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        for pod in pods.iter().take(MAX_LOG_PODS) {
            match self.pod_logs(ns, pod, a.container.as_deref(), tail).await {
                Ok(more) => lines.extend(more),
                Err(e) => errors.push(e),
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

    /// The last `tail` lines of one pod's container, each prefixed with
    /// `[pod/NAME/CONTAINER] `; else why not, as a sentence for the step's
    /// error.
    async fn pod_logs(&self, ns: &str, pod: &Pod, wanted: Option<&str>, tail: u32) -> Result<Vec<Value>, String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        let default = pod.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CONTAINER)).map(String::as_str);
        let container = pick_container(&containers, wanted, default).map_err(|e| format!("pod {name}: {e}"))?;
        let params = LogParams {
            container: Some(container.to_string()),
            tail_lines: Some(i64::from(tail)),
            ..Default::default()
        };
        let text = self
            .pods(ns)
            .logs(&name, &params)
            .await
            .map_err(|e| Error::from_kube(format!("logs of pod {ns}/{name}"), e).to_string())?;
        let prefix = format!("[pod/{name}/{container}] ");
        Ok(text.lines().map(|l| Value::str(format!("{prefix}{l}"))).collect())
    }
}

/// Like kubectl's choice of a pod: running before pending, ready after not
/// ready (the broken ones first), newest first.
fn log_order(p: &Pod) -> (bool, bool, std::cmp::Reverse<i64>, Option<String>) {
    let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_millisecond()).unwrap_or(0);
    (!running, is_ready(p), std::cmp::Reverse(created), p.metadata.name.clone())
}

/// The container to act on: the one named, else the one the
/// `kubectl.kubernetes.io/default-container` annotation names, else the
/// first.
pub fn pick_container<'a>(
    containers: &'a [Container],
    wanted: Option<&str>,
    default: Option<&str>,
) -> Result<&'a str, ContainerError> {
    if let Some(w) = wanted.filter(|w| !w.is_empty()) {
        return containers.iter().find(|c| c.name == w).map(|c| c.name.as_str()).ok_or_else(|| {
            ContainerError::NotFound {
                wanted: w.to_string(),
                containers: containers.iter().map(|c| c.name.clone()).collect(),
            }
        });
    }
    if let Some(d) = default
        && let Some(c) = containers.iter().find(|c| c.name == d)
    {
        return Ok(&c.name);
    }
    containers.first().map(|c| c.name.as_str()).ok_or(ContainerError::Empty)
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn container(name: &str) -> Container {
        Container { name: name.into(), ..Default::default() }
    }

    #[test]
    fn containers_are_picked_like_kubectl() {
        let cs = vec![container("proxy"), container("api")];
        assert_eq!(pick_container(&cs, None, None), Ok("proxy"));
        assert_eq!(pick_container(&cs, None, Some("api")), Ok("api"));
        assert_eq!(pick_container(&cs, Some("api"), Some("proxy")), Ok("api"));
        let e = pick_container(&cs, Some("web"), None).unwrap_err();
        assert_eq!(
            e,
            ContainerError::NotFound { wanted: "web".into(), containers: vec!["proxy".into(), "api".into()] }
        );
        assert_eq!(e.to_string(), "no container \"web\" (containers: proxy, api)");
        let e = pick_container(&[], None, None).unwrap_err();
        assert_eq!(e, ContainerError::Empty);
        assert_eq!(e.to_string(), "no containers");
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
}
