//! The runbook model and its loader.
//!
//! A runbook is YAML: `id`, `title`, `description`, `rto`, `rpo`, `params`,
//! `steps` and `cleanup` (steps that run after the main ones, in drills
//! only; loaded as steps marked [`Step::cleanup`]). A step may say which
//! rehearsal milestone its success reaches (`milestone: restore`). Loading
//! never stops at the first problem: every problem is collected as a
//! [`Diagnostic`] with its line and column, so `ripcord runbook check` can
//! show them all at once. `check.rs` adds the checks that need the whole
//! runbook (DAG, templates, cleanup, child runbooks).

use crate::duration;
use crate::hint;
use crate::milestone::Milestone;
use crate::registry::{self, Runs};
use crate::selector::{Selector, SelectorError};
use crate::template::{self, Condition};
use crate::value::Value;
use crate::yaml::{self, Kind, Node, Pos};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A problem in a runbook, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

/// Why a target, a param value or a time cannot be used (a run refuses to
/// start; `check` reports it). Problems in the YAML itself are
/// [`Diagnostic`]s.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A target written as the empty selector, which would match every agent.
    #[error("an empty selector, which would match every agent; name labels (role=redis)")]
    EmptySelector,
    /// A target written as something that is not a selector.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A templated target that the params do not fill in.
    #[error("target \"{selector}\": {reason}")]
    TargetTemplate { selector: String, reason: template::Error },
    /// A templated target that the params fill in as the empty selector.
    #[error("target \"{selector}\" gives an empty selector, which would match every agent; name labels (role=redis)")]
    TargetEmpty { selector: String },
    /// A templated target that the params fill in as something that is not
    /// a selector.
    #[error("target \"{selector}\" gives {reason}")]
    TargetSelector { selector: String, reason: SelectorError },
    /// A param value of another type than the param's.
    #[error("expected {} (lowercase in yaml), got {}", format!("{:?}", .expected).to_lowercase(), .got.to_string().to_lowercase())]
    ParamType { expected: ParamType, got: Value },
    /// A duration param (or the offset of a time) that is not a duration.
    #[error(transparent)]
    Duration(#[from] duration::DurationError),
    /// A time param that is neither RFC 3339 nor `incident±DURATION`.
    #[error("bad time \"{0}\" (examples: incident-5m, 2026-01-31T09:00:00Z)")]
    Time(String),
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self { pos, message: message.into() }
    }
}

impl From<yaml::Error> for Diagnostic {
    fn from(e: yaml::Error) -> Self {
        Diagnostic { pos: e.pos.unwrap_or_default(), message: e.message }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub id: String,
    pub title: String,
    pub description: String,
    pub rto: Option<Duration>,
    pub rpo: Option<Duration>,
    pub params: Vec<Param>,
    /// The main steps, then the cleanup steps (`Step::cleanup`); ids are
    /// unique across both.
    pub steps: Vec<Step>,
    /// Where the run's notices go (`notify:`), if anywhere.
    pub notify: Option<crate::notify::Notifications>,
    /// Ids of steps that did not load (only while checking a broken runbook).
    pub broken: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Duration,
    /// A point in time: RFC 3339, `incident`, or `incident-5m` (relative to
    /// the declared incident time).
    Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub pos: Pos,
    pub ty: ParamType,
    pub required: bool,
    pub default: Option<Value>,
    /// Never shown in output, events, logs or reports.
    pub secret: bool,
    pub description: String,
}

/// Which agents an agent step runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The label selector as written. It may name params
    /// (`"host={{ params.host }}"`); a run fills them in when it starts, and
    /// refuses to start if the result is not a selector.
    pub selector: String,
    /// All matching agents (true) or exactly one (false: the step fails if
    /// more than one matches).
    pub all: bool,
    pub pos: Pos,
}

impl Target {
    /// Whether the selector names params.
    pub fn is_templated(&self) -> bool {
        self.selector.contains("{{")
    }

    /// The selector with `params` filled in.
    /// The selector to show and to send: with `params` filled in, or as
    /// written where they do not make one (a run refuses to start then).
    pub fn resolved_text(&self, params: &BTreeMap<String, Value>) -> String {
        self.resolve(params).map_or_else(|_| self.selector.clone(), |s| s.to_string())
    }

    /// Never the empty selector, which would match every agent.
    pub fn resolve(&self, params: &BTreeMap<String, Value>) -> Result<Selector, Error> {
        if !self.is_templated() {
            return parse_target(&self.selector);
        }
        let selector = || self.selector.clone();
        let text = template::render(&self.selector, &template::Params(params))
            .map_err(|reason| Error::TargetTemplate { selector: selector(), reason })?
            .to_string();
        parse_target(&text).map_err(|e| match e {
            Error::Selector(reason) => Error::TargetSelector { selector: selector(), reason },
            _ => Error::TargetEmpty { selector: selector() },
        })
    }
}

/// The selector in `text`: [`Error::EmptySelector`] or [`Error::Selector`].
fn parse_target(text: &str) -> Result<Selector, Error> {
    if text.trim().is_empty() {
        return Err(Error::EmptySelector);
    }
    Ok(text.parse::<Selector>()?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before each retry.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 1, backoff: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The run fails (default).
    #[default]
    Stop,
    /// The failure is tolerated; steps that need this one are skipped.
    Continue,
    /// These handler steps run, then the run fails.
    Run(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub pos: Pos,
    pub title: String,
    pub action: String,
    pub action_pos: Pos,
    /// The `with:` arguments as written (templates unresolved).
    pub with: Node,
    pub needs: Vec<(String, Pos)>,
    pub when: Option<(Condition, Pos)>,
    pub target: Option<Target>,
    pub budget: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retry: Retry,
    pub on_failure: OnFailure,
    pub on_failure_pos: Pos,
    pub after: Option<Duration>,
    /// From the runbook's `cleanup:` list: runs in drills only, once the
    /// main steps are over, and never counts against the RTO.
    pub cleanup: bool,
    /// The rehearsal milestone this step's success reaches (`milestone:`).
    pub milestone: Option<Milestone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    rto: Option<String>,
    #[serde(default)]
    rpo: Option<String>,
    #[serde(default, rename = "params")]
    _params: Option<BTreeMap<String, IgnoredAny>>,
    #[serde(rename = "steps")]
    _steps: Vec<IgnoredAny>,
    #[serde(default, rename = "cleanup")]
    _cleanup: Option<Vec<IgnoredAny>>,
    #[serde(default, rename = "notify")]
    _notify: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(default, rename = "type")]
    ty: Option<ParamType>,
    #[serde(default)]
    required: bool,
    #[serde(default, rename = "default")]
    _default: Option<IgnoredAny>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    #[serde(default)]
    title: String,
    action: String,
    #[serde(default, rename = "with")]
    _with: Option<IgnoredAny>,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    target: Option<RawTarget>,
    #[serde(default)]
    budget: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    on_failure: Option<RawOnFailure>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    milestone: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a target is a label selector (\"role=redis,env=prod\") or { selector: \"…\", all: true }"
)]
enum RawTarget {
    Selector(String),
    Full(RawTargetFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetFull {
    selector: String,
    #[serde(default)]
    all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    #[serde(default)]
    backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "on_failure is stop, continue, or a list of handler steps ([notify-oncall])")]
enum RawOnFailure {
    Word(String),
    Steps(Vec<String>),
    Run { run: Vec<String> },
}

const STEP_ID_HINT: &str = "step ids are letters, digits, '-' and '_'";

/// Parses and loads a runbook. `Err` holds every problem found; `check`
/// then adds whole-runbook checks.
pub fn load(text: &str) -> Result<Runbook, Vec<Diagnostic>> {
    let (rb, diags) = load_partial(text)?;
    if diags.is_empty() { Ok(rb) } else { Err(diags) }
}

/// What could be loaded, with the problems found. Steps that failed to load
/// are left out, but their ids are in `Runbook::broken`.
pub(crate) fn load_partial(text: &str) -> Result<(Runbook, Vec<Diagnostic>), Vec<Diagnostic>> {
    let root = yaml::parse(text).map_err(|e| vec![Diagnostic::from(e)])?;
    let mut diags = Vec::new();
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(vec![Diagnostic::new(root.pos, "a runbook is a mapping with id, title, params and steps")]);
    }
    let raw: RawRunbook = match yaml::from_node(&root, false) {
        Ok(r) => r,
        Err(e) => return Err(vec![e.into()]),
    };
    let dur = |field: &str, v: &Option<String>, diags: &mut Vec<Diagnostic>| -> Option<Duration> {
        let s = v.as_ref()?;
        let pos = root.get(field).map_or(root.pos, |n| n.pos);
        duration::parse(s).map_err(|e| diags.push(Diagnostic::new(pos, e.to_string()))).ok()
    };
    let rto = dur("rto", &raw.rto, &mut diags);
    let rpo = dur("rpo", &raw.rpo, &mut diags);
    if crate::auth::check_name(&raw.id).is_err() {
        let pos = root.get("id").map_or(root.pos, |n| n.pos);
        diags.push(Diagnostic::new(pos, format!("runbook id \"{}\": use letters, digits, '-', '_' and '.'", raw.id)));
    }

    let mut params = Vec::new();
    if let Some(Node { kind: Kind::Map(pairs), .. }) = root.get("params") {
        for (k, v) in pairs {
            let name = k.as_str().unwrap_or_default().to_string();
            match load_param(&name, k.pos, v) {
                Ok(p) => params.push(p),
                Err(mut d) => diags.append(&mut d),
            }
        }
    }

    let notify = root.get("notify").and_then(|n| crate::notify::load(n, &params, &mut diags));

    let mut steps: Vec<Step> = Vec::new();
    let mut broken = Vec::new();
    for (field, cleanup) in [("steps", false), ("cleanup", true)] {
        if let Some(Node { kind: Kind::Seq(items), .. }) = root.get(field) {
            load_steps(items, cleanup, &mut steps, &mut broken, &mut diags);
        }
    }
    if !steps.iter().any(|s| !s.cleanup) && diags.is_empty() {
        let pos = root.get("steps").map_or(root.pos, |n| n.pos);
        diags.push(Diagnostic::new(pos, "a runbook needs at least one step"));
    }
    diags.sort_by_key(|d| d.pos);
    Ok((
        Runbook { id: raw.id, title: raw.title, description: raw.description, rto, rpo, params, steps, notify, broken },
        diags,
    ))
}

/// Loads `items` (of `steps:` or, with `cleanup`, of `cleanup:`) into
/// `steps`; ids are unique across both lists.
fn load_steps(
    items: &[Node],
    cleanup: bool,
    steps: &mut Vec<Step>,
    broken: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
) {
    for item in items {
        match load_step(item) {
            Ok((mut s, mut d)) => {
                // Minor problems (a bad budget…) are reported, but the
                // step still takes part in the whole-runbook checks.
                diags.append(&mut d);
                s.cleanup = cleanup;
                if let Some(prev) = steps.iter().find(|p| p.id == s.id) {
                    diags.push(Diagnostic::new(
                        s.pos,
                        format!("duplicate step id \"{}\" (first at {})", s.id, prev.pos),
                    ));
                } else {
                    steps.push(s);
                }
            }
            Err(mut d) => {
                if let Some(id) = item.get("id").and_then(Node::as_str) {
                    broken.push(id.to_string());
                }
                diags.append(&mut d);
            }
        }
    }
}

fn load_param(name: &str, pos: Pos, node: &Node) -> Result<Param, Vec<Diagnostic>> {
    let raw: RawParam = yaml::from_node(node, false).map_err(|e| vec![e.into()])?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
        return Err(vec![Diagnostic::new(pos, format!("param name \"{name}\": use letters, digits and '_'"))]);
    }
    let default_node = node.get("default");
    let default = default_node.map(Value::from_node);
    let ty = raw.ty.unwrap_or(match &default {
        Some(Value::Int(_)) => ParamType::Int,
        Some(Value::Bool(_)) => ParamType::Bool,
        _ => ParamType::String,
    });
    if let (Some(d), Some(n)) = (&default, default_node) {
        check_param_value(ty, d).map_err(|e| vec![Diagnostic::new(n.pos, format!("default of {name}: {e}"))])?;
    }
    Ok(Param {
        name: name.to_string(),
        pos,
        ty,
        required: raw.required,
        default,
        secret: raw.secret,
        description: raw.description,
    })
}

/// Whether `v` fits a parameter of type `ty`.
pub fn check_param_value(ty: ParamType, v: &Value) -> Result<(), Error> {
    let ok = match (ty, v) {
        (ParamType::String, Value::Str(_)) => true,
        (ParamType::Int, Value::Int(_)) => true,
        (ParamType::Bool, Value::Bool(_)) => true,
        (ParamType::Duration, Value::Str(s)) => return Ok(duration::parse(s).map(|_| ())?),
        (ParamType::Time, Value::Str(s)) => return parse_time(s, 0).map(|_| ()),
        _ => false,
    };
    if ok { Ok(()) } else { Err(Error::ParamType { expected: ty, got: v.clone() }) }
}

/// A time parameter: RFC 3339, `incident`, or `incident±DURATION`,
/// relative to `incident_at`.
pub fn parse_time(s: &str, incident_at: crate::clock::Millis) -> Result<crate::clock::Millis, Error> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("incident") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(incident_at);
        }
        let (sign, d) = match rest.split_at(1) {
            ("-", d) => (-1, d),
            ("+", d) => (1, d),
            _ => return Err(Error::Time(s.to_string())),
        };
        let d = duration::parse(d)?;
        return Ok(incident_at + sign * i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    }
    crate::clock::parse_rfc3339(s).ok_or_else(|| Error::Time(s.to_string()))
}

fn load_step(node: &Node) -> Result<(Step, Vec<Diagnostic>), Vec<Diagnostic>> {
    let raw: RawStep = yaml::from_node(node, false).map_err(|e| vec![e.into()])?;
    let mut diags = Vec::new();
    let pos_of = |f: &str| node.get(f).map_or(node.pos, |n| n.pos);
    if raw.id.is_empty() || !raw.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        diags.push(Diagnostic::new(pos_of("id"), format!("step id \"{}\": {STEP_ID_HINT}", raw.id)));
    }
    let action_pos = pos_of("action");
    let action = registry::get(&raw.action);
    if action.is_none() {
        let hint = hint::closest(&raw.action, registry::names())
            .map(|c| format!(" (did you mean \"{c}\"?)"))
            .unwrap_or_default();
        diags.push(Diagnostic::new(action_pos, format!("unknown action \"{}\"{hint}", raw.action)));
    }
    let with = node.get("with").cloned().unwrap_or(Node { pos: node.pos, kind: Kind::Map(Vec::new()) });
    if let Some(a) = action
        && let Err(e) = a.check_args(&with)
    {
        diags.push(e.into());
    }
    let mut dur = |f: &str, v: &Option<String>| -> Option<Duration> {
        let s = v.as_ref()?;
        duration::parse(s).map_err(|e| diags.push(Diagnostic::new(pos_of(f), e.to_string()))).ok()
    };
    let budget = dur("budget", &raw.budget);
    let timeout = dur("timeout", &raw.timeout);
    let after = dur("after", &raw.after);
    let retry = match &raw.retry {
        None => Retry::default(),
        Some(r) => {
            let backoff = r.backoff.as_ref().map_or(Ok(Retry::default().backoff), |b| duration::parse(b));
            let pos = node.get("retry").map_or(node.pos, |n| n.get("backoff").map_or(n.pos, |b| b.pos));
            let backoff = backoff.map_err(|e| diags.push(Diagnostic::new(pos, e.to_string()))).unwrap_or_default();
            if r.attempts == 0 {
                diags.push(Diagnostic::new(pos_of("retry"), "retry.attempts counts the first try: at least 1"));
            }
            Retry { attempts: r.attempts.max(1), backoff }
        }
    };
    let target = match raw.target {
        None => None,
        Some(t) => {
            let (sel, all) = match t {
                RawTarget::Selector(s) => (s, false),
                RawTarget::Full(f) => (f.selector, f.all),
            };
            let pos = node.get("target").map_or(node.pos, |t| t.get("selector").map_or(t.pos, |s| s.pos));
            // A selector that names params is checked with the templates
            // (check.rs) and again when a run starts.
            let parsed = if sel.contains("{{") { Ok(()) } else { parse_target(&sel).map(|_| ()) };
            match parsed {
                Ok(()) => Some(Target { selector: sel, all, pos }),
                Err(e) => {
                    diags.push(Diagnostic::new(pos, format!("target: {e}")));
                    None
                }
            }
        }
    };
    match (action.map(|a| a.runs), &target) {
        // A target given but not valid has its own diagnostic.
        (Some(Runs::Agent), None) if node.get("target").is_none() => diags.push(Diagnostic::new(
            node.pos,
            format!(
                "step \"{}\": action {} runs on an agent and needs a target (e.g. target: \"role=redis\")",
                raw.id, raw.action
            ),
        )),
        (Some(Runs::Coordinator(_) | Runs::Engine), Some(_)) => diags.push(Diagnostic::new(
            pos_of("target"),
            format!("action {} runs in the coordinator; remove target", raw.action),
        )),
        _ => {}
    }
    let on_failure = match raw.on_failure {
        None => OnFailure::Stop,
        Some(RawOnFailure::Word(w)) => match w.as_str() {
            "stop" => OnFailure::Stop,
            "continue" => OnFailure::Continue,
            other => {
                diags.push(Diagnostic::new(
                    pos_of("on_failure"),
                    format!("on_failure \"{other}\": expected stop, continue, or a list of steps to run"),
                ));
                OnFailure::Stop
            }
        },
        Some(RawOnFailure::Steps(s)) | Some(RawOnFailure::Run { run: s }) => OnFailure::Run(s),
    };
    let milestone = raw.milestone.as_deref().and_then(|m| {
        Milestone::parse_claim(m).map_err(|e| diags.push(Diagnostic::new(pos_of("milestone"), e.to_string()))).ok()
    });
    let needs_node = node.get("needs");
    let needs = raw
        .needs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = match needs_node.map(|n| &n.kind) {
                Some(Kind::Seq(items)) => items.get(i).map_or(node.pos, |x| x.pos),
                _ => node.pos,
            };
            (n.clone(), p)
        })
        .collect();
    let fatal = action.is_none()
        || raw.id.is_empty()
        || !raw.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fatal {
        return Err(diags);
    }
    let step = Step {
        id: raw.id,
        pos: node.pos,
        title: raw.title,
        action: raw.action,
        action_pos,
        with,
        needs,
        when: raw.when.map(|w| (Condition::parse(&w), pos_of("when"))),
        target,
        budget,
        timeout,
        retry,
        on_failure,
        on_failure_pos: pos_of("on_failure"),
        after,
        cleanup: false,
        milestone,
    };
    Ok((step, diags))
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether the runbook has a `cleanup:` phase.
    pub fn has_cleanup(&self) -> bool {
        self.steps.iter().any(|s| s.cleanup)
    }

    /// Steps named by some `on_failure`: they run only when triggered.
    pub fn handlers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .steps
            .iter()
            .filter_map(|s| match &s.on_failure {
                OnFailure::Run(v) => Some(v.iter().map(String::as_str)),
                _ => None,
            })
            .flatten()
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(selector: &str) -> Target {
        Target { selector: selector.to_string(), all: false, pos: Pos::default() }
    }

    #[test]
    fn targets_say_why_they_select_nothing() {
        let params = BTreeMap::from([("h".to_string(), Value::str(" ")), ("bad".to_string(), Value::str("a b"))]);
        assert_eq!(target("role=redis").resolve(&params).map(|s| s.to_string()), Ok("role=redis".to_string()));
        assert_eq!(target(" ").resolve(&params), Err(Error::EmptySelector));
        assert!(matches!(target("a b").resolve(&params), Err(Error::Selector(_))));
        let e = target("{{ params.h }}").resolve(&params).unwrap_err();
        assert_eq!(e, Error::TargetEmpty { selector: "{{ params.h }}".into() });
        assert_eq!(
            e.to_string(),
            "target \"{{ params.h }}\" gives an empty selector, which would match every agent; name labels (role=redis)"
        );
        let e = target("{{ params.bad }}").resolve(&params).unwrap_err();
        assert!(matches!(&e, Error::TargetSelector { selector, .. } if selector == "{{ params.bad }}"), "{e}");
        let e = target("{{ params.none }}").resolve(&params).unwrap_err();
        assert_eq!(
            e,
            Error::TargetTemplate {
                selector: "{{ params.none }}".into(),
                reason: template::Error::NoValue(template::Ref::Param("none".into()))
            }
        );
        assert_eq!(e.to_string(), "target \"{{ params.none }}\": params.none has no value");
    }

    #[test]
    fn param_values_and_times() {
        assert_eq!(check_param_value(ParamType::Int, &Value::Int(3)), Ok(()));
        let e = check_param_value(ParamType::Int, &Value::str("Three")).unwrap_err();
        assert_eq!(e, Error::ParamType { expected: ParamType::Int, got: Value::str("Three") });
        assert_eq!(e.to_string(), "expected int (lowercase in yaml), got three");
        assert!(matches!(check_param_value(ParamType::Duration, &Value::str("5x")), Err(Error::Duration(_))));
        assert_eq!(parse_time(" incident-1s ", 5_000), Ok(4_000));
        assert!(matches!(parse_time("incident-5x", 0), Err(Error::Duration(_))));
        let e = parse_time("incident*5m", 0).unwrap_err();
        assert_eq!(e, Error::Time("incident*5m".into()));
        assert_eq!(e.to_string(), "bad time \"incident*5m\" (examples: incident-5m, 2026-01-31T09:00:00Z)");
        assert_eq!(parse_time("yesterday", 0), Err(Error::Time("yesterday".into())));
    }
}
