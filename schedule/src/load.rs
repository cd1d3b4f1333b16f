//! `drills.yaml`: the model and its loader. Every problem is collected with
//! its line and column (one file, all of them at once), with "did you mean"
//! for unknown fields, runbooks and time zones.

use chrono::{NaiveDateTime, TimeZone};
use ripcord_engine::hint::closest;
use ripcord_engine::runbook::Diagnostic;
use ripcord_engine::value::Value;
use ripcord_engine::yaml::{self, Kind, Node, Pos};
use ripcord_engine::{builtin, duration};
use rrule::{RRule, RRuleSet, Unvalidated};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long before an occurrence its owners are reminded, unless the drill says.
pub const DEFAULT_REMIND_BEFORE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How late a missed occurrence may still start, unless the drill says.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 3600);
/// Where a rule's recurrence is counted from (its DTSTART, local time in the
/// drill's zone), unless the schedule says `start`.
pub const DEFAULT_START: &str = "2026-01-01T00:00:00";

/// A `drills.yaml` file.
#[derive(Debug, Clone)]
pub struct Drills {
    pub drills: Vec<Drill>,
}

impl Drills {
    /// The drill called `name`.
    pub fn get(&self, name: &str) -> Option<&Drill> {
        self.drills.iter().find(|d| d.name == name)
    }
}

/// One drill: a runbook run on a schedule, in an environment, for its owners.
#[derive(Debug, Clone)]
pub struct Drill {
    /// Unique in the file; part of every occurrence's run id.
    pub name: String,
    /// Where the drill is declared (its `name`).
    pub pos: Pos,
    pub runbook: RunbookRef,
    /// The environment the run may touch (`staging`).
    pub environment: String,
    pub params: BTreeMap<String, Value>,
    /// Teams or contacts told of reminders and missed occurrences.
    pub owners: Vec<String>,
    pub schedule: Schedule,
    pub remind_before: Duration,
    /// How late a missed occurrence may still start.
    pub grace: Duration,
}

/// The runbook a drill runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookRef {
    /// A built-in runbook's id (checked here).
    Builtin(String),
    /// A file, relative to the drills file; whoever reads files checks it
    /// ([`RunbookRef::File::pos`] says where to point).
    File { path: String, pos: Pos },
}

/// When a drill happens: an RFC 5545 rule in an IANA time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The rule as written (`FREQ=YEARLY;BYMONTH=3;BYDAY=1WE;BYHOUR=9;…`).
    pub rrule: String,
    pub timezone: chrono_tz::Tz,
    /// The rule's DTSTART, local time in `timezone`, as written.
    pub start: String,
    pub(crate) set: RRuleSet,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "drills")]
    _drills: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    name: String,
    runbook: String,
    environment: String,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    owners: Vec<String>,
    schedule: RawSchedule,
    #[serde(default)]
    remind_before: Option<String>,
    #[serde(default)]
    grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    rrule: String,
    timezone: String,
    #[serde(default)]
    start: Option<String>,
}

/// Reads a `drills.yaml`: the drills, or every problem with its position.
pub fn load(text: &str) -> Result<Drills, Vec<Diagnostic>> {
    let root = yaml::parse(text).map_err(|e| vec![Diagnostic::from(e)])?;
    let items = match (&root.kind, root.get("drills").map(|n| &n.kind)) {
        (Kind::Map(_), Some(Kind::Seq(items))) => items,
        (Kind::Map(_), Some(_)) => {
            let pos = root.get("drills").map_or(root.pos, |n| n.pos);
            return Err(vec![Diagnostic::new(pos, "drills is a list of drills")]);
        }
        _ => return Err(vec![Diagnostic::new(root.pos, "a drills file is a mapping with a list under drills:")]),
    };
    let mut diags = Vec::new();
    if let Err(e) = yaml::from_node::<RawFile>(&root, false) {
        diags.push(e.into());
    }
    let mut seen: Vec<(&str, Pos)> = Vec::new();
    for node in items {
        let Some(name) = node.get("name") else { continue };
        let Some(text) = name.as_str() else { continue };
        match seen.iter().find(|(n, _)| *n == text) {
            Some((_, first)) => diags.push(Diagnostic::new(
                name.pos,
                format!("drill \"{text}\" is declared twice (first at {first}); names must be unique"),
            )),
            None => seen.push((text, name.pos)),
        }
    }
    let drills: Vec<Drill> = items.iter().filter_map(|node| load_drill(node, &mut diags)).collect();
    if diags.is_empty() {
        Ok(Drills { drills })
    } else {
        diags.sort_by_key(|d| d.pos);
        Err(diags)
    }
}

/// The position of `field` in mapping `node`, else of the mapping.
fn pos_of(node: &Node, field: &str) -> Pos {
    node.get(field).map_or(node.pos, |n| n.pos)
}

fn load_drill(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Drill> {
    let raw: RawDrill = match yaml::from_node(node, false) {
        Ok(r) => r,
        Err(e) => {
            diags.push(e.into());
            return None;
        }
    };
    let before = diags.len();
    let name_pos = pos_of(node, "name");
    if !is_name(&raw.name) {
        diags.push(Diagnostic::new(
            name_pos,
            format!("drill name \"{}\": use letters, digits, '-', '_' and '.'", raw.name),
        ));
    }
    if !is_name(&raw.environment) {
        diags.push(Diagnostic::new(
            pos_of(node, "environment"),
            format!("environment \"{}\": use letters, digits, '-', '_' and '.' (e.g. staging)", raw.environment),
        ));
    }
    let runbook = runbook_ref(&raw.runbook, pos_of(node, "runbook"), diags);
    if let Some(RunbookRef::Builtin(id)) = &runbook {
        check_params(id, node.get("params"), diags);
    }
    if raw.owners.is_empty() {
        diags.push(Diagnostic::new(pos_of(node, "owners"), "a drill needs at least one owner (a team or a contact)"));
    }
    for (i, o) in raw.owners.iter().enumerate() {
        if o.trim().is_empty() {
            let pos = match node.get("owners").map(|n| &n.kind) {
                Some(Kind::Seq(items)) => items.get(i).map_or(node.pos, |n| n.pos),
                _ => node.pos,
            };
            diags.push(Diagnostic::new(pos, "an owner is a team or contact name, not empty"));
        }
    }
    let dur = |field: &str, v: &Option<String>, default: Duration, diags: &mut Vec<Diagnostic>| match v {
        Some(text) => duration::parse(text)
            .map_err(|e| diags.push(Diagnostic::new(pos_of(node, field), e.to_string())))
            .unwrap_or(default),
        None => default,
    };
    let remind_before = dur("remind_before", &raw.remind_before, DEFAULT_REMIND_BEFORE, diags);
    let grace = dur("grace", &raw.grace, DEFAULT_GRACE, diags);
    let schedule_node = node.get("schedule").unwrap_or(node);
    let schedule = schedule(&raw.schedule, schedule_node, diags);
    if diags.len() > before {
        return None;
    }
    Some(Drill {
        name: raw.name,
        pos: name_pos,
        runbook: runbook?,
        environment: raw.environment,
        params: raw.params,
        owners: raw.owners,
        schedule: schedule?,
        remind_before,
        grace,
    })
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A path (it has a `/` or ends in `.yaml`/`.yml`) is a file; anything else
/// must be a built-in id.
fn runbook_ref(text: &str, pos: Pos, diags: &mut Vec<Diagnostic>) -> Option<RunbookRef> {
    if text.contains('/') || text.ends_with(".yaml") || text.ends_with(".yml") {
        return Some(RunbookRef::File { path: text.to_string(), pos });
    }
    if builtin::get(text).is_some() {
        return Some(RunbookRef::Builtin(text.to_string()));
    }
    let hint = closest(text, builtin::ids()).map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default();
    let ids: Vec<&str> = builtin::ids().collect();
    diags.push(Diagnostic::new(
        pos,
        format!("unknown runbook \"{text}\"{hint}; built-in: {}; or a file path ending in .yaml", ids.join(", ")),
    ));
    None
}

/// Every param a drill gives must be one its built-in runbook declares.
fn check_params(id: &str, params: Option<&Node>, diags: &mut Vec<Diagnostic>) {
    let (Some(text), Some(Node { kind: Kind::Map(pairs), .. })) = (builtin::get(id), params) else { return };
    let Ok(rb) = ripcord_engine::runbook::load(text) else { return };
    let names: Vec<&str> = rb.params.iter().map(|p| p.name.as_str()).collect();
    for (key, _) in pairs {
        let Some(k) = key.as_str() else { continue };
        if !names.contains(&k) {
            let hint =
                closest(k, names.iter().copied()).map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default();
            diags.push(Diagnostic::new(
                key.pos,
                format!("runbook {id} has no param \"{k}\"{hint}; it has: {}", names.join(", ")),
            ));
        }
    }
}

fn schedule(raw: &RawSchedule, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Schedule> {
    let tz = match raw.timezone.trim().parse::<chrono_tz::Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let hint = closest(&raw.timezone, chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()))
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            diags.push(Diagnostic::new(
                pos_of(node, "timezone"),
                format!("unknown time zone \"{}\"{hint}; use an IANA name such as Asia/Seoul or UTC", raw.timezone),
            ));
            None
        }
    };
    let start_text = raw.start.clone().unwrap_or_else(|| DEFAULT_START.to_string());
    let start_pos = pos_of(node, "start");
    let naive = match NaiveDateTime::parse_from_str(start_text.trim(), "%Y-%m-%dT%H:%M:%S") {
        Ok(n) => Some(n),
        Err(_) => {
            diags.push(Diagnostic::new(
                start_pos,
                format!("bad start \"{start_text}\": a local time in the drill's zone, e.g. 2026-01-01T00:00:00"),
            ));
            None
        }
    };
    let rrule_pos = pos_of(node, "rrule");
    let text = raw.rrule.trim();
    let text = text.strip_prefix("RRULE:").unwrap_or(text);
    let rule = match text.parse::<RRule<Unvalidated>>() {
        Ok(r) => Some(r),
        Err(e) => {
            diags.push(Diagnostic::new(rrule_pos, format!("bad rrule \"{}\": {e}", raw.rrule)));
            None
        }
    };
    let (tz, naive, rule) = (tz?, naive?, rule?);
    let Some(dtstart) = tz.from_local_datetime(&naive).earliest() else {
        diags.push(Diagnostic::new(start_pos, format!("start {start_text} does not exist in {}", tz.name())));
        return None;
    };
    let set = match rule.build(dtstart.with_timezone(&rrule::Tz::from(tz))) {
        Ok(set) => set,
        Err(e) => {
            diags.push(Diagnostic::new(rrule_pos, format!("bad rrule \"{}\": {e}", raw.rrule)));
            return None;
        }
    };
    let schedule = Schedule { rrule: raw.rrule.clone(), timezone: tz, start: start_text, set };
    if schedule.first().is_none() {
        diags.push(Diagnostic::new(rrule_pos, format!("rrule \"{}\" never occurs after its start", raw.rrule)));
        return None;
    }
    Some(schedule)
}
