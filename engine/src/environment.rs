//! Environments and the guard that keeps drills away from production.
//!
//! An environment (`[environments.NAME]` in the coordinator's config) names
//! what belongs to it: the agents (a label selector), the Atlas project and
//! clusters, the Secrets Manager secret ids and the Kubernetes namespaces.
//! `prod` is always protected, and any other may say so.
//!
//! [`refusals`] is the verdict: every place where a drill run would touch a
//! resource of a protected environment, or an agent outside its own
//! environment, with the step and the resource named. The coordinator gives
//! it at start (and refuses the run, touching nothing) and for
//! `runbook plan --drill --env` (the same function, so the same verdict).
//!
//! Which argument names which kind of resource is read from the action's
//! arguments by their names ([`resource_of`]): the argument structs in
//! [`crate::actions`] use one name per kind (`secret_id`, `namespace`,
//! `project` with `cluster`, `source`, `target` or `like`), so a new action
//! that names a resource is covered by using the same name.

use crate::registry;
use crate::runbook::Runbook;
use crate::selector::Selector;
use crate::template::{self, Ref, RunField, Scope};
use crate::value::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The name of the environment that is protected whether or not it says so.
pub const PRODUCTION: &str = "prod";

/// What one environment holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    pub name: String,
    /// Drills may not touch it (always true for `prod`).
    pub protected: bool,
    /// Its agents; `None` when it declares none.
    pub agents: Option<Selector>,
    /// Atlas project (group) id.
    pub atlas_project: Option<String>,
    /// Atlas clusters (in `atlas_project`, or in any project when it has none).
    pub clusters: Vec<String>,
    /// Secrets Manager secret ids (or names).
    pub secrets: Vec<String>,
    /// Kubernetes namespaces.
    pub namespaces: Vec<String>,
    /// Defaults for runbook params a run in it does not give.
    pub params: BTreeMap<String, Value>,
}

impl Environment {
    pub fn is_protected(&self) -> bool {
        self.protected || self.name == PRODUCTION
    }

    /// `params` with this environment's defaults for the params `rb`
    /// declares and `params` does not give.
    pub fn fill(&self, rb: &Runbook, mut params: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        for (k, v) in &self.params {
            if rb.param(k).is_some() && !params.contains_key(k) {
                params.insert(k.clone(), v.clone());
            }
        }
        params
    }

    /// Whether `resource` belongs to this environment.
    pub fn holds(&self, resource: &Resource) -> bool {
        match resource {
            Resource::Agent { labels, .. } => self.agents.as_ref().is_some_and(|s| s.matches_map(labels)),
            Resource::Cluster { project, name } => {
                self.clusters.contains(name) && self.atlas_project.as_ref().is_none_or(|p| p == project)
            }
            Resource::Secret(id) => self.secrets.iter().any(|s| s == id || secret_name(s) == secret_name(id)),
            Resource::Namespace(ns) => self.namespaces.contains(ns),
        }
    }
}

/// A secret's name from its id or ARN: `arn:aws:…:secret:NAME-AbCdEf` →
/// `NAME` (the six characters Secrets Manager appends dropped).
fn secret_name(id: &str) -> &str {
    match id.strip_prefix("arn:").and_then(|_| id.split_once(":secret:")) {
        Some((_, rest)) => rest.rsplit_once('-').filter(|(_, s)| s.len() == 6).map_or(rest, |(n, _)| n),
        None => id,
    }
}

/// Something a step can touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Agent { id: String, labels: BTreeMap<String, String> },
    Cluster { project: String, name: String },
    Secret(String),
    Namespace(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Agent { id, labels } => {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "agent {id} ({})", labels.join(","))
            }
            Resource::Cluster { project, name } => write!(f, "Atlas cluster {name} (project {project})"),
            Resource::Secret(id) => write!(f, "secret {id}"),
            Resource::Namespace(ns) => write!(f, "Kubernetes namespace {ns}"),
        }
    }
}

/// Why a drill may not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub step: String,
    pub resource: Resource,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// It belongs to this protected environment.
    Protected(String),
    /// An agent the drill's own environment does not hold.
    OutsideEnvironment(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::Protected(env) => {
                write!(f, "step {}: {} belongs to protected environment {env}", self.step, self.resource)
            }
            Reason::OutsideEnvironment(env) => {
                write!(f, "step {}: {} is not in environment {env}", self.step, self.resource)
            }
        }
    }
}

/// An agent as the fleet knows it.
pub struct Agent<'a> {
    pub id: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// What a drill run is checked against.
pub struct Guard<'a> {
    /// Every environment the coordinator declares.
    pub environments: &'a [Environment],
    /// The drill's own, if it names one.
    pub own: Option<&'a Environment>,
    /// Every agent the fleet has seen, connected or not.
    pub agents: &'a [Agent<'a>],
    /// The namespace `k8s.*` steps use when they name none.
    pub default_namespace: Option<&'a str>,
}

/// Every step of `rb` (cleanup included) that a drill with `params` would
/// let touch a protected resource, or an agent outside its environment.
/// Arguments that only a step's outputs fill in (a cluster the run creates)
/// are not known at start and so are not refused.
pub fn refusals(rb: &Runbook, params: &BTreeMap<String, Value>, guard: &Guard) -> Vec<Refusal> {
    refusals_within(rb, params, guard, 0)
}

/// How deep `runbook.run` children are followed.
const MAX_DEPTH: usize = 4;

fn refusals_within(rb: &Runbook, params: &BTreeMap<String, Value>, guard: &Guard, depth: usize) -> Vec<Refusal> {
    let scope = DrillScope(params);
    let mut out = Vec::new();
    for step in &rb.steps {
        if depth < MAX_DEPTH
            && let Some((child, child_params)) = child_run(step, &scope, guard)
        {
            for r in refusals_within(&child, &child_params, guard, depth + 1) {
                out.push(Refusal { step: format!("{} > {}", step.id, r.step), ..r });
            }
        }
        for resource in touches(step, &scope, guard) {
            if let Some(env) = guard.environments.iter().find(|e| e.is_protected() && e.holds(&resource)) {
                out.push(Refusal { step: step.id.clone(), resource, reason: Reason::Protected(env.name.clone()) });
            } else if let (Resource::Agent { .. }, Some(own)) = (&resource, guard.own)
                && own.agents.is_some()
                && !own.holds(&resource)
            {
                out.push(Refusal {
                    step: step.id.clone(),
                    resource,
                    reason: Reason::OutsideEnvironment(own.name.clone()),
                });
            }
        }
    }
    out
}

/// A `runbook.run` step's child runbook and the params it would start
/// with (its own defaults and the drill environment's), when known.
fn child_run(
    step: &crate::runbook::Step,
    scope: &DrillScope,
    guard: &Guard,
) -> Option<(Runbook, BTreeMap<String, Value>)> {
    if registry::get(&step.action)?.integration() != Some(registry::Integration::Runs) {
        return None;
    }
    let args = template::render_value(&Value::from_node(&step.with), scope).ok()?;
    let child = crate::check::check(crate::builtin::get(args.get("runbook")?.as_str()?)?).ok()?;
    let mut params = match args.get("params") {
        Some(Value::Map(m)) => m.clone(),
        _ => BTreeMap::new(),
    };
    if let Some(own) = guard.own {
        params = own.fill(&child, params);
    }
    let new = crate::run::NewRun { id: "guard".into(), mode: crate::run::Mode::Drill, params, incident_at: None };
    let t = crate::run::start(&child, new, 0).ok()?;
    Some((child, t.state.params))
}

/// The resources one step names, as far as params tell.
fn touches(step: &crate::runbook::Step, scope: &DrillScope, guard: &Guard) -> Vec<Resource> {
    let mut out = Vec::new();
    if let Some(target) = &step.target
        && let Ok(selector) = target.resolve(scope.0)
    {
        for a in guard.agents.iter().filter(|a| selector.matches_map(a.labels)) {
            out.push(Resource::Agent { id: a.id.to_string(), labels: a.labels.clone() });
        }
    }
    let Some(action) = registry::get(&step.action) else { return out };
    let args = Value::from_node(&step.with);
    let known = |key: &str| -> Option<String> {
        match template::render_value(args.get(key)?, scope).ok()? {
            Value::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    };
    out.extend(resource_of(action, &known, guard.default_namespace));
    // A checklist's automated checks are actions too.
    if let Some(Value::List(items)) = args.get("items") {
        for item in items {
            let Some(check) = item.get("check") else { continue };
            let Some(action) = check.get("action").and_then(Value::as_str).and_then(registry::get) else { continue };
            let with = check.get("with").cloned().unwrap_or(Value::Map(BTreeMap::new()));
            let known = |key: &str| -> Option<String> {
                match template::render_value(with.get(key)?, scope).ok()? {
                    Value::Str(s) if !s.is_empty() => Some(s),
                    _ => None,
                }
            };
            out.extend(resource_of(action, &known, guard.default_namespace));
        }
    }
    out
}

/// The resources an action's arguments name: the one table of which
/// argument names which kind of resource.
pub fn resource_of(
    action: &registry::Action,
    arg: &dyn Fn(&str) -> Option<String>,
    default_namespace: Option<&str>,
) -> Vec<Resource> {
    let mut out = Vec::new();
    if let Some(id) = arg("secret_id") {
        out.push(Resource::Secret(id));
    }
    if let Some(project) = arg("project") {
        for key in ["cluster", "source", "target", "like"] {
            if let Some(name) = arg(key) {
                out.push(Resource::Cluster { project: project.clone(), name });
            }
        }
    }
    if action.integration() == Some(registry::Integration::Kube) {
        match arg("namespace") {
            Some(ns) => out.push(Resource::Namespace(ns)),
            None => out.extend(default_namespace.map(|ns| Resource::Namespace(ns.to_string()))),
        }
    }
    out
}

/// Params, and the run fields known at start of a drill.
struct DrillScope<'a>(&'a BTreeMap<String, Value>);

impl Scope for DrillScope<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Param(p) => self.0.get(p).cloned(),
            Ref::Run(RunField::Mode) => Some(Value::str("drill")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
