//! A new run: its params checked and resolved, its first transition.

use super::machine::Machine;
use super::types::*;
use crate::clock::{Millis, rfc3339};
use crate::escalation::Policy;
use crate::runbook::{ParamType, Runbook, parse_time};
use crate::template::{self, Ref};
use crate::value::Value;
use std::collections::BTreeMap;

/// Checks and resolves parameters (defaults, types, `incident-5m` times) and
/// starts the run: the first transition. It escalates through the
/// runbook's own `notify:` tiers only; see [`start_escalating`].
pub fn start(rb: &Runbook, new: NewRun, now: Millis) -> Result<Transition, Rejected> {
    start_escalating(rb, new, Policy::default(), now)
}

/// [`start`], the run escalating through `policy` (the coordinator's
/// policy for this runbook and mode). The runbook's own `notify: escalate:`
/// tiers replace the policy's tiers; its other recipients stay.
pub fn start_escalating(rb: &Runbook, new: NewRun, mut policy: Policy, now: Millis) -> Result<Transition, Rejected> {
    if let Some(n) = rb.notify.as_ref().filter(|n| !n.escalate.is_empty()) {
        policy.tiers = n.escalate.clone();
    }
    let incident_at = new.incident_at.unwrap_or(now);
    let mut params = BTreeMap::new();
    for k in new.params.keys() {
        if rb.param(k).is_none() {
            let names: Vec<&str> = rb.params.iter().map(|p| p.name.as_str()).collect();
            let hint = crate::hint::closest(k, names.iter().copied())
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            return Err(Rejected(format!("runbook {} has no param \"{k}\"{hint}", rb.id)));
        }
    }
    for p in &rb.params {
        let given = new.params.get(&p.name).cloned();
        let mut v = match (given, &p.default) {
            (Some(v), _) => coerce(p.ty, v).map_err(|e| Rejected(format!("param {}: {e}", p.name)))?,
            (None, Some(d)) => d.clone(),
            (None, None) if p.required => {
                let what = if p.description.is_empty() { String::new() } else { format!(" — {}", p.description) };
                return Err(Rejected(format!(
                    "missing required param \"{}\"{what} (declared at line {}); pass --param {}=…",
                    p.name, p.pos, p.name
                )));
            }
            (None, None) => continue,
        };
        if p.ty == ParamType::Time
            && let Value::Str(s) = &v
        {
            let t = parse_time(s, incident_at).map_err(|e| Rejected(format!("param {}: {e}", p.name)))?;
            v = Value::Str(rfc3339(t));
        }
        params.insert(p.name.clone(), v);
    }
    for step in &rb.steps {
        if let Some(t) = step.target.as_ref().filter(|t| t.is_templated()) {
            t.resolve(&params).map_err(|e| Rejected(format!("step {}: {e}", step.id)))?;
        }
    }
    let notify_webhook = match &rb.notify {
        Some(n) => Some(
            template::render(&n.webhook, &template::Params(&params))
                .map_err(|e| Rejected(format!("notify webhook: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let state = RunState {
        id: new.id,
        runbook_id: rb.id.clone(),
        mode: new.mode,
        params,
        incident_at,
        created_at: now,
        status: RunStatus::Running,
        steps: rb.steps.iter().map(|s| (s.id.clone(), StepState::new())).collect(),
        failing: None,
        recovered_at: None,
        finished_at: None,
        notify_webhook,
        milestones: Default::default(),
        acknowledged: None,
        escalation: policy,
        paged: Vec::new(),
    };
    let mut t = Machine { rb, state, effects: Vec::new(), events: Vec::new(), now };
    t.event(
        None,
        EventKind::RunStarted,
        format!("{} run of {} started; incident at {}", new.mode, rb.id, rfc3339(incident_at)),
    );
    t.reach(crate::milestone::Milestone::KickOff, None);
    t.announce_start();
    t.schedule();
    Ok(t.finish())
}

/// The credentials a run of `rb` with these (resolved) params will name,
/// each with the first step that names it: every `{{ credentials.NAME.… }}`
/// in step arguments, and the `credentials` argument of
/// `atlas.connection_string` where params alone decide it. The coordinator
/// refuses a run that needs one it does not hold, before anything happens.
pub fn credentials_needed(rb: &Runbook, params: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |name: String, step: &str| {
        if !name.is_empty() && !out.iter().any(|(n, _)| *n == name) {
            out.push((name, step.to_string()));
        }
    };
    for step in &rb.steps {
        let mut texts = Vec::new();
        crate::check::collect_strings(&step.with, &mut texts);
        for (t, _) in &texts {
            for (r, _) in template::refs(t) {
                if let Ref::Credential { name, .. } = r {
                    add(name, &step.id);
                }
            }
        }
        if step.action == "atlas.connection_string"
            && let Some(Value::Str(arg)) = Value::from_node(&step.with).get("credentials")
            && let Ok(Value::Str(name)) = template::render(arg, &template::Params(params))
        {
            add(name.trim().to_string(), &step.id);
        }
    }
    out
}

/// Why a `--param` value does not fit its param.
#[derive(Debug, thiserror::Error)]
enum ParamError {
    #[error("\"{0}\" is not an integer")]
    NotInt(String),
    #[error("\"{0}\" is not true or false")]
    NotBool(String),
    #[error(transparent)]
    Value(#[from] crate::runbook::Error),
}

/// Parses a `--param` value into the param's type.
fn coerce(ty: ParamType, v: Value) -> Result<Value, ParamError> {
    let v = match (ty, v) {
        (ParamType::Int, Value::Str(s)) => Value::Int(s.trim().parse().map_err(|_| ParamError::NotInt(s.clone()))?),
        (ParamType::Bool, Value::Str(s)) => match s.trim() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => return Err(ParamError::NotBool(s)),
        },
        (_, v) => v,
    };
    crate::runbook::check_param_value(ty, &v)?;
    Ok(v)
}
