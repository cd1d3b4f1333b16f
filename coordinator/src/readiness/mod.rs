//! Readiness of the cloud side: whether what a runbook needs outside the
//! fleet is there right now, as the engine's typed checks
//! ([`ripcord_engine::readiness::Check`]: ok, warn or fail, with what was
//! measured, the limit and a fix). Nothing here changes anything: every
//! call is a read.
//!
//! [`cloud_checks`] derives what a runbook needs from its steps and the
//! run's params ([`needs`], pure), then checks it:
//!
//! - `atlas`: for each Atlas cluster a step names, backup on, point-in-time
//!   restore on with a window that covers the RPO, the newest snapshot
//!   within the RPO, and, when a step creates a cluster like it in another
//!   region, snapshot copies to that region;
//! - `integrations`: Atlas authentication (once per project), each AWS
//!   Secrets Manager secret readable, each Kubernetes Deployment there, and
//!   the MongoDB login with the credential the coordinator holds.
//!
//! An integration that is not configured gives a `warn` naming its config
//! section, never a failure of the run.

pub mod atlas;
pub mod integrations;

use crate::credentials::Credentials;
use crate::integrations::atlas::Atlas;
use crate::integrations::kube::Kube;
use crate::integrations::mongo::Mongo;
use crate::integrations::secrets::Secrets;
use ripcord_engine::readiness::{Check, Status};
use ripcord_engine::registry::{self, Integration};
use ripcord_engine::runbook::{Runbook, Step};
use ripcord_engine::template::{self, Params, Ref};
use ripcord_engine::value::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the checks reach the cloud with: the clients the coordinator built
/// (None where its config has no section for one) and now.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    /// From `[atlas]`.
    pub atlas: Option<&'a Atlas>,
    /// From `[aws]`.
    pub secrets: Option<&'a Secrets>,
    /// From `[kube]`.
    pub kube: Option<&'a Kube>,
    /// The `mongo.*` integration.
    pub mongo: Option<&'a Mongo>,
    /// The `[credentials.NAME]` the coordinator holds: the MongoDB login.
    pub credentials: Option<&'a Credentials>,
    /// Now, unix milliseconds (snapshot ages).
    pub now_ms: i64,
}

impl Deps<'_> {
    /// No integration at all, at `now_ms`.
    pub fn none(now_ms: i64) -> Self {
        Self { atlas: None, secrets: None, kube: None, mongo: None, credentials: None, now_ms }
    }
}

/// What a runbook needs of the cloud, as far as the params tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Atlas clusters that steps read, copy or restore from.
    pub clusters: Vec<ClusterNeed>,
    /// Secrets Manager secrets that steps read and write.
    pub secrets: Vec<SecretNeed>,
    /// Kubernetes Deployments that steps act on.
    pub deployments: Vec<DeploymentNeed>,
    /// MongoDB logins that steps use.
    pub logins: Vec<LoginNeed>,
    /// Steps whose cloud arguments need a param that has no value.
    pub unknown: Vec<Unknown>,
}

/// An Atlas cluster a runbook depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterNeed {
    pub project: String,
    pub cluster: String,
    /// A step restores it to a point in time (`source` with `at`).
    pub pit: bool,
    /// A step restores one of its snapshots (`source` with `target`, no `at`).
    pub snapshot: bool,
    /// Regions a step creates a cluster like it in (`like` with `region`),
    /// Atlas style (`AP_NORTHEAST_1`): its snapshots must be copied there.
    pub dr_regions: Vec<String>,
    /// The steps that name it.
    pub steps: Vec<String>,
}

/// A Secrets Manager secret a runbook reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNeed {
    pub id: String,
    pub region: Option<String>,
    pub steps: Vec<String>,
}

/// A Kubernetes Deployment a runbook acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentNeed {
    /// None: the `[kube]` namespace.
    pub namespace: Option<String>,
    pub name: String,
    pub steps: Vec<String>,
}

/// A MongoDB login a runbook's `mongo.*` steps use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginNeed {
    /// The connection string of an Atlas cluster with the user and password
    /// of `[credentials.NAME]` (what `atlas.connection_string` builds). The
    /// cluster is the one the connection string is read from, or, when that
    /// is made by the run (a restore target), a cluster of the same project
    /// that a step names: database users belong to the project.
    Atlas { project: String, cluster: String, credential: Option<String>, steps: Vec<String> },
    /// A connection string given in the params, credential tokens in it.
    Uri { uri: String, steps: Vec<String> },
}

/// A step whose cloud arguments need a param without a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unknown {
    pub step: String,
    pub action: String,
    pub param: String,
}

/// The cloud checks of runbook `rb` with the run's `params` (defaults
/// filled in, an environment's params added by the caller), against `rpo`
/// (else the runbook's own). Every check is labelled with `rb`'s id.
pub async fn cloud_checks(
    rb: &Runbook,
    params: &BTreeMap<String, Value>,
    rpo: Option<Duration>,
    deps: &Deps<'_>,
) -> Vec<Check> {
    let needs = needs(rb, params);
    let rpo = rpo.or(rb.rpo);
    let mut out = Vec::new();

    // Authentication first: a project whose calls are refused is not
    // asked about its clusters.
    let mut usable: BTreeSet<String> = BTreeSet::new();
    for project in needs.projects() {
        let (check, ok) = integrations::atlas_auth(deps.atlas, &project).await;
        out.push(check);
        if ok {
            usable.insert(project);
        }
    }
    let clusters = async {
        let mut v = Vec::new();
        for need in &needs.clusters {
            if usable.contains(&need.project) {
                v.extend(atlas::cluster_checks(deps.atlas, need, rpo, deps.now_ms).await);
            } else {
                v.push(atlas::not_checked(deps.atlas.is_some(), need));
            }
        }
        v
    };
    let secrets = async {
        let mut v = Vec::new();
        for need in &needs.secrets {
            v.push(integrations::secret(deps.secrets, need).await);
        }
        v
    };
    let deployments = async {
        let mut v = Vec::new();
        for need in &needs.deployments {
            v.push(integrations::deployment(deps.kube, need).await);
        }
        v
    };
    let logins = async {
        let mut v = Vec::new();
        for need in &needs.logins {
            match need {
                LoginNeed::Atlas { project, .. } if deps.atlas.is_some() && !usable.contains(project) => {
                    v.push(integrations::login_not_checked(need));
                }
                _ => v.push(integrations::login(deps, need).await),
            }
        }
        v
    };
    let (c, s, d, l) = tokio::join!(clusters, secrets, deployments, logins);
    out.extend(c);
    out.extend(s);
    out.extend(d);
    out.extend(l);
    for u in &needs.unknown {
        out.push(check(
            format!("step {}: {}", u.step, u.action),
            Status::Warn,
            format!("needs param {}, which has no value", u.param),
            "its cloud resources known from the params",
            format!(
                "give param {} a value (or a default, or in the environment) to check what {} needs",
                u.param, u.step
            ),
        ));
    }
    for c in &mut out {
        c.runbook = Some(rb.id.clone());
    }
    out
}

/// A check without its runbook (filled in by [`cloud_checks`]).
pub(crate) fn check(
    subject: impl Into<String>,
    status: Status,
    measured: impl Into<String>,
    limit: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        runbook: None,
        subject: subject.into(),
        status,
        measured: measured.into(),
        limit: limit.into(),
        fix: if status == Status::Ok { String::new() } else { fix.into() },
    }
}

impl Needs {
    /// The Atlas projects of the clusters and logins, in order.
    pub fn projects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let logins = self.logins.iter().filter_map(|l| match l {
            LoginNeed::Atlas { project, .. } => Some(project),
            LoginNeed::Uri { .. } => None,
        });
        for p in self.clusters.iter().map(|c| &c.project).chain(logins) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    fn cluster(&mut self, project: &str, cluster: &str, step: &str) -> &mut ClusterNeed {
        let i = match self.clusters.iter().position(|c| c.project == project && c.cluster == cluster) {
            Some(i) => i,
            None => {
                self.clusters.push(ClusterNeed {
                    project: project.to_string(),
                    cluster: cluster.to_string(),
                    ..Default::default()
                });
                self.clusters.len() - 1
            }
        };
        let c = &mut self.clusters[i];
        add_step(&mut c.steps, step);
        c
    }

    fn unknown(&mut self, step: &str, action: &str, param: String) {
        let u = Unknown { step: step.to_string(), action: action.to_string(), param };
        if !self.unknown.contains(&u) {
            self.unknown.push(u);
        }
    }
}

fn add_step(steps: &mut Vec<String>, step: &str) {
    if !steps.iter().any(|s| s == step) {
        steps.push(step.to_string());
    }
}

/// What runbook `rb` needs of the cloud with `params`: its steps (and
/// checklist items' checks, and the built-in runbooks its `runbook.run`
/// steps start) whose `when:` does not say no under the params alone, and
/// whose arguments render from the params alone. An argument made from a
/// step's output is left out; one that needs a param without a value is
/// reported in [`Needs::unknown`].
pub fn needs(rb: &Runbook, params: &BTreeMap<String, Value>) -> Needs {
    let mut n = Needs::default();
    collect(rb, params, "", 0, &mut n);
    n
}

/// How deep `runbook.run` children are followed.
const MAX_DEPTH: usize = 4;

fn collect(rb: &Runbook, params: &BTreeMap<String, Value>, prefix: &str, depth: usize, n: &mut Needs) {
    let steps: Vec<&Step> = rb.steps.iter().filter(|s| when_holds(s, params)).collect();
    // Clusters, secrets, deployments and children first: a login made
    // from a step's output may fall back to a cluster another step names.
    let mut mongo_steps = Vec::new();
    for step in &steps {
        let name = format!("{prefix}{}", step.id);
        let args = Value::from_node(&step.with);
        visit(&step.action, &args, &name, params, depth, n, &mut mongo_steps);
        if let Some(Value::List(items)) = args.get("items") {
            for item in items {
                let Some(check) = item.get("check") else { continue };
                let Some(action) = check.get("action").and_then(Value::as_str) else { continue };
                let with = check.get("with").cloned().unwrap_or(Value::Map(BTreeMap::new()));
                visit(action, &with, &name, params, depth, n, &mut mongo_steps);
            }
        }
    }
    for (name, action, args) in mongo_steps {
        mongo(rb, &name, &action, &args, params, n);
    }
}

/// One action of a step (or of a checklist item's check).
fn visit(
    action_name: &str,
    args: &Value,
    step: &str,
    params: &BTreeMap<String, Value>,
    depth: usize,
    n: &mut Needs,
    mongo_steps: &mut Vec<(String, String, Value)>,
) {
    let Some(action) = registry::get(action_name) else { return };
    let arg = |key: &str| Rendered::of(args, key, params);
    match action.integration() {
        Some(Integration::Atlas) => {
            let Some(project) = known(arg("project"), step, action_name, n) else { return };
            for key in ["cluster", "source", "like"] {
                let Some(cluster) = known(arg(key), step, action_name, n) else { continue };
                let need = n.cluster(&project, &cluster, step);
                if key == "source" && args.get("target").is_some() {
                    if args.get("at").is_some() {
                        need.pit = true;
                    } else {
                        need.snapshot = true;
                    }
                }
                if key == "like"
                    && let Some(region) = known(arg("region"), step, action_name, n)
                {
                    let region = atlas_region(&region);
                    let need = n.cluster(&project, &cluster, step);
                    if !need.dr_regions.contains(&region) {
                        need.dr_regions.push(region);
                    }
                }
            }
        }
        Some(Integration::Aws) => {
            let Some(id) = known(arg("secret_id"), step, action_name, n) else { return };
            let region = known(arg("region"), step, action_name, n);
            match n.secrets.iter_mut().find(|s| s.id == id && s.region == region) {
                Some(s) => add_step(&mut s.steps, step),
                None => n.secrets.push(SecretNeed { id, region, steps: vec![step.to_string()] }),
            }
        }
        Some(Integration::Kube) => {
            let Some(name) = known(arg("deployment"), step, action_name, n) else { return };
            let namespace = match arg("namespace") {
                Rendered::Absent => None,
                r => match known(r, step, action_name, n) {
                    Some(ns) => Some(ns),
                    None => return,
                },
            };
            match n.deployments.iter_mut().find(|d| d.name == name && d.namespace == namespace) {
                Some(d) => add_step(&mut d.steps, step),
                None => n.deployments.push(DeploymentNeed { namespace, name, steps: vec![step.to_string()] }),
            }
        }
        Some(Integration::Mongo) => mongo_steps.push((step.to_string(), action_name.to_string(), args.clone())),
        Some(Integration::Runs) if depth < MAX_DEPTH => {
            let Some(id) = known(arg("runbook"), step, action_name, n) else { return };
            let Some(child) = ripcord_engine::builtin::get(&id).and_then(|t| ripcord_engine::check::check(t).ok())
            else {
                return;
            };
            let mut child_params = BTreeMap::new();
            if let Some(Value::Map(given)) = args.get("params") {
                for (k, v) in given {
                    match template::render_value(v, &Params(params)) {
                        Ok(v) => {
                            child_params.insert(k.clone(), v);
                        }
                        Err(template::Error::NoValue(Ref::Param(p))) => n.unknown(step, action_name, p),
                        Err(_) => {}
                    }
                }
            }
            for p in &child.params {
                if let (false, Some(d)) = (child_params.contains_key(&p.name), &p.default) {
                    child_params.insert(p.name.clone(), d.clone());
                }
            }
            collect(&child, &child_params, &format!("{step}/"), depth + 1, n);
        }
        _ => {}
    }
}

/// A `mongo.*` step: the login its `uri` stands for.
fn mongo(rb: &Runbook, step: &str, action: &str, args: &Value, params: &BTreeMap<String, Value>, n: &mut Needs) {
    let login = match Rendered::of(args, "uri", params) {
        Rendered::Known(uri) => LoginNeed::Uri { uri, steps: vec![step.to_string()] },
        Rendered::Param(p) => return n.unknown(step, action, p),
        Rendered::Absent | Rendered::Other => return,
        Rendered::Output(from) => {
            // The step that makes the connection string, in this runbook.
            let Some(source) = rb.steps.iter().find(|s| s.id == from) else { return };
            let Some(a) = registry::get(&source.action) else { return };
            if a.integration() != Some(Integration::Atlas) {
                return;
            }
            let sargs = Value::from_node(&source.with);
            let arg = |key: &str| Rendered::of(&sargs, key, params);
            let Some(project) = known(arg("project"), step, action, n) else { return };
            let cluster = match arg("cluster") {
                Rendered::Known(c) => c,
                Rendered::Param(p) => return n.unknown(step, action, p),
                _ => match n.clusters.iter().find(|c| c.project == project) {
                    Some(c) => c.cluster.clone(),
                    None => return,
                },
            };
            let credential = match arg("credentials") {
                Rendered::Known(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
                Rendered::Param(p) => return n.unknown(step, action, p),
                _ => None,
            };
            LoginNeed::Atlas { project, cluster, credential, steps: vec![step.to_string()] }
        }
    };
    let same = |a: &LoginNeed, b: &LoginNeed| match (a, b) {
        (
            LoginNeed::Atlas { project: p1, cluster: c1, credential: k1, .. },
            LoginNeed::Atlas { project: p2, cluster: c2, credential: k2, .. },
        ) => p1 == p2 && c1 == c2 && k1 == k2,
        (LoginNeed::Uri { uri: u1, .. }, LoginNeed::Uri { uri: u2, .. }) => u1 == u2,
        _ => false,
    };
    match n.logins.iter_mut().find(|l| same(l, &login)) {
        Some(LoginNeed::Atlas { steps, .. } | LoginNeed::Uri { steps, .. }) => add_step(steps, step),
        None => n.logins.push(login),
    }
}

/// Whether a step's `when:` lets it run, as far as the params tell (a
/// condition that needs more than the params counts as yes).
fn when_holds(step: &Step, params: &BTreeMap<String, Value>) -> bool {
    match &step.when {
        None => true,
        Some((cond, _)) => cond.eval(&Params(params)).unwrap_or(true),
    }
}

/// One argument rendered from the params alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rendered {
    /// A non-empty string.
    Known(String),
    /// Not given, or empty.
    Absent,
    /// Needs this param, which has no value.
    Param(String),
    /// Made from the output of this step.
    Output(String),
    /// Anything else (run fields, not a string).
    Other,
}

impl Rendered {
    fn of(args: &Value, key: &str, params: &BTreeMap<String, Value>) -> Self {
        let Some(v) = args.get(key) else { return Rendered::Absent };
        if let Value::Str(s) = v {
            // A step output anywhere in it: the run makes it.
            if let Some(step) = template::refs(s).into_iter().find_map(|(r, _)| match r {
                Ref::Output { step, .. } => Some(step),
                _ => None,
            }) {
                return Rendered::Output(step);
            }
        }
        match template::render_value(v, &Params(params)) {
            Ok(Value::Str(s)) if s.trim().is_empty() => Rendered::Absent,
            Ok(Value::Str(s)) => Rendered::Known(s),
            Ok(Value::Null) => Rendered::Absent,
            Ok(Value::Int(i)) => Rendered::Known(i.to_string()),
            Ok(_) => Rendered::Other,
            Err(template::Error::NoValue(Ref::Param(p))) => Rendered::Param(p),
            Err(template::Error::NoValue(Ref::Output { step, .. })) => Rendered::Output(step),
            Err(_) => Rendered::Other,
        }
    }
}

/// The string a rendered argument holds; a missing param is noted.
fn known(r: Rendered, step: &str, action: &str, n: &mut Needs) -> Option<String> {
    match r {
        Rendered::Known(s) => Some(s),
        Rendered::Param(p) => {
            n.unknown(step, action, p);
            None
        }
        _ => None,
    }
}

/// Atlas region names are `US_EAST_1`; `us-east-1` is accepted too.
pub fn atlas_region(r: &str) -> String {
    r.trim().to_ascii_uppercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rb: &Runbook, given: &[(&str, &str)]) -> BTreeMap<String, Value> {
        let mut p: BTreeMap<String, Value> =
            rb.params.iter().filter_map(|p| Some((p.name.clone(), p.default.clone()?))).collect();
        for (k, v) in given {
            p.insert(k.to_string(), Value::str(*v));
        }
        p
    }

    fn builtin(id: &str) -> Runbook {
        ripcord_engine::check::check(ripcord_engine::builtin::get(id).unwrap()).unwrap()
    }

    const P: &str = "5e2211c17a3e5a48f5497de3";

    #[test]
    fn mongo_region_needs_the_source_cluster_its_dr_copies_the_secret_the_deployment_and_the_login() {
        let rb = builtin("mongo-region");
        let p = params(&rb, &[("project_id", P), ("cluster", "chat-prod"), ("dr_region", "ap-northeast-1")]);
        let n = needs(&rb, &p);
        assert_eq!(n.clusters.len(), 1, "{n:?}");
        let c = &n.clusters[0];
        assert_eq!((c.project.as_str(), c.cluster.as_str()), (P, "chat-prod"));
        assert!(c.snapshot && !c.pit);
        assert_eq!(c.dr_regions, ["AP_NORTHEAST_1"]);
        assert!(c.steps.contains(&"create-cluster".to_string()) && c.steps.contains(&"restore".to_string()));
        assert_eq!(
            n.secrets,
            [SecretNeed { id: "chat-app/database".into(), region: None, steps: vec!["switch-secret".into()] }]
        );
        assert_eq!(n.deployments.len(), 1);
        assert_eq!((n.deployments[0].namespace.as_deref(), n.deployments[0].name.as_str()), (Some("default"), "api"));
        assert_eq!(
            n.logins,
            [LoginNeed::Atlas {
                project: P.into(),
                cluster: "chat-prod".into(),
                credential: Some("chatdb".into()),
                steps: vec!["verify-counts".into(), "measure-rpo".into()],
            }]
        );
        assert!(n.unknown.is_empty(), "{:?}", n.unknown);
        assert_eq!(n.projects(), [P]);
    }

    #[test]
    fn when_false_under_the_params_leaves_a_step_out() {
        let rb = builtin("mongo-region");
        let p = params(
            &rb,
            &[("project_id", P), ("cluster", "chat-prod"), ("dr_region", "AP_NORTHEAST_1"), ("switch", "k8s")],
        );
        let n = needs(&rb, &p);
        assert!(n.secrets.is_empty(), "switch=k8s: no secret step, {n:?}");
        assert_eq!(n.deployments[0].steps, ["switch-env", "rollout-wait"]);
    }

    #[test]
    fn missing_params_are_reported_and_outputs_left_out() {
        let rb = builtin("mongo-pitr");
        let n = needs(&rb, &params(&rb, &[]));
        assert!(n.clusters.is_empty());
        assert!(n.unknown.iter().any(|u| u.param == "project_id"), "{:?}", n.unknown);
        let n = needs(&rb, &params(&rb, &[("project_id", P), ("cluster", "chat-prod")]));
        assert_eq!(n.clusters.len(), 1, "the restore target comes from a step output: {n:?}");
        assert!(n.clusters[0].pit && n.clusters[0].dr_regions.is_empty());
    }

    #[test]
    fn runbook_run_children_are_followed() {
        let rb = builtin("full-outage");
        let n = needs(&rb, &params(&rb, &[("project_id", P), ("cluster", "chat-prod")]));
        assert!(n.clusters.iter().any(|c| c.cluster == "chat-prod" && c.pit), "{n:?}");
        assert!(n.clusters[0].steps.contains(&"mongo/restore".to_string()), "{:?}", n.clusters[0].steps);
    }

    /// A gRPC handler awaits it: its future must be `Send`.
    #[allow(dead_code)]
    fn cloud_checks_is_send(rb: &Runbook, p: &BTreeMap<String, Value>, deps: &Deps<'_>) {
        fn send<T: Send>(_: T) {}
        send(cloud_checks(rb, p, None, deps));
    }

    #[test]
    fn regions_are_atlas_style() {
        assert_eq!(atlas_region(" ap-northeast-1 "), "AP_NORTHEAST_1");
    }
}
