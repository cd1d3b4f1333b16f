//! `ripcord runbook check` and `plan`, offline: everything here works from
//! the YAML alone, with the engine.

use crate::output::table;
use ripcord_engine::plan::Plan;
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Where a runbook comes from: a file, or a built-in id.
pub struct Source {
    pub name: String,
    pub text: String,
    pub builtin: bool,
}

/// Why a runbook argument gives no runbook.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but cannot be read.
    #[error("cannot read runbook {path}: {reason}")]
    Read { path: String, reason: std::io::Error },
    /// Neither a file nor the id of a built-in runbook.
    #[error(
        "no runbook file or built-in runbook \"{arg}\"{}; built-in: {}",
        closest.as_ref().map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default(),
        builtin.join(", ")
    )]
    NotFound {
        arg: String,
        /// The built-in id closest to `arg`, if one is close.
        closest: Option<String>,
        /// Every built-in id.
        builtin: Vec<String>,
    },
}

/// Reads FILE, or the built-in runbook of that id.
pub fn resolve(arg: &str) -> Result<Source, Error> {
    let path = std::path::Path::new(arg);
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|reason| Error::Read { path: arg.to_string(), reason })?;
        return Ok(Source { name: arg.to_string(), text, builtin: false });
    }
    if let Some(text) = ripcord_engine::builtin::get(arg) {
        return Ok(Source { name: arg.to_string(), text: text.to_string(), builtin: true });
    }
    let builtin: Vec<String> = ripcord_engine::builtin::ids().map(str::to_string).collect();
    let closest = ripcord_engine::hint::closest(arg, builtin.iter().map(String::as_str)).map(str::to_string);
    Err(Error::NotFound { arg: arg.to_string(), closest, builtin })
}

/// Checks `source`: the runbook, or every problem as `FILE:LINE:COL: message`.
pub fn check(source: &Source) -> Result<Runbook, Vec<String>> {
    let label = if source.builtin { format!("runbooks/{}.yaml", source.name) } else { source.name.clone() };
    ripcord_engine::check::check(&source.text).map_err(|d| d.iter().map(|d| format!("{label}:{d}")).collect())
}

fn budget(rb: &Runbook, id: &str) -> String {
    rb.step(id).and_then(|s| s.budget).map(ripcord_engine::duration::format).unwrap_or_else(|| "-".into())
}

/// The plan as text: layers of parallel steps, budgets, critical path.
/// `params` (when they were valid) fill in targets that name them.
pub fn render_plan(
    rb: &Runbook,
    plan: &Plan,
    params: Option<&BTreeMap<String, Value>>,
    notes_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", rb.id, rb.title);
    let mut rows = Vec::new();
    for (i, layer) in plan.layers.iter().enumerate() {
        for id in layer {
            let Some(step) = rb.step(id) else { continue };
            let mut notes = Vec::new();
            if plan.critical_path.contains(id) {
                notes.push("critical".to_string());
            }
            if step.cleanup {
                notes.push("cleanup: drills only, after the main steps, not in the RTO".to_string());
            }
            if let Some(m) = step.milestone {
                notes.push(format!("milestone {m}"));
            }
            if let Some(a) = step.after {
                notes.push(format!("after {}", ripcord_engine::duration::format(a)));
            }
            if let Some((when, _)) = &step.when {
                // Decided now when the params alone decide it.
                let decided = params.and_then(|p| when.eval(&ripcord_engine::template::Params(p)).ok());
                notes.push(
                    match decided {
                        Some(true) => "runs: its when holds",
                        Some(false) => "SKIPPED: its when is false",
                        None => "conditional",
                    }
                    .to_string(),
                );
            }
            if let Some(a) = notes_of(id) {
                notes.push(a);
            }
            let needs: Vec<&str> = step.needs.iter().map(|(n, _)| n.as_str()).collect();
            let action = match &step.target {
                Some(t) => {
                    format!("{} @ {}", step.action, params.map_or_else(|| t.selector.clone(), |p| t.resolved_text(p)))
                }
                None => step.action.clone(),
            };
            rows.push(vec![
                format!("{}", i + 1),
                id.clone(),
                action,
                budget(rb, id),
                if needs.is_empty() { "-".into() } else { needs.join(",") },
                notes.join("; "),
            ]);
        }
    }
    out.push_str(&table(&["STAGE", "STEP", "ACTION", "BUDGET", "NEEDS", "NOTES"], &rows));
    if !plan.handlers.is_empty() {
        let _ = writeln!(out, "on failure only: {}", plan.handlers.join(", "));
    }
    let _ = writeln!(out, "parallel: {}", describe_parallel(plan));
    let _ = writeln!(out, "critical path: {}", plan.critical_path.join(" → "));
    let _ = writeln!(out, "{}", plan.summary());
    out
}

fn describe_parallel(plan: &Plan) -> String {
    let groups: Vec<String> = plan.layers.iter().filter(|l| l.len() > 1).map(|l| l.join(" ∥ ")).collect();
    if groups.is_empty() { "none (a single chain)".into() } else { groups.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RB: &str = r#"
id: t
title: t
params:
  platform: {default: k8s}
steps:
  - {id: k8s, action: http.check, with: {url: "http://x/health"}, when: "{{ params.platform }} == k8s"}
  - {id: compose, action: noop, when: "{{ params.platform }} == compose"}
  - {id: later, needs: [k8s], action: noop, when: "{{ steps.k8s.status }} == 200 || {{ params.platform }} == compose"}
"#;

    #[test]
    fn unknown_runbooks_are_named_with_the_closest_built_in() {
        let refused = |arg: &str| match resolve(arg) {
            Err(e) => e,
            Ok(_) => panic!("{arg} gave a runbook"),
        };
        let id = ripcord_engine::builtin::ids().next().unwrap();
        assert!(resolve(id).unwrap().builtin);
        let typo = format!("{id}x");
        let e = refused(&typo);
        assert!(matches!(&e, Error::NotFound { closest: Some(c), .. } if c == id), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "no runbook file or built-in runbook \"{typo}\" (did you mean \"{id}\"?); built-in: {id}"
            )),
            "{e}"
        );
        let e = refused("zzzzzzzzzzzzzzzz");
        assert!(matches!(&e, Error::NotFound { closest: None, .. }), "{e}");
        assert!(
            e.to_string().starts_with("no runbook file or built-in runbook \"zzzzzzzzzzzzzzzz\"; built-in: "),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let e = refused(path);
        assert!(matches!(&e, Error::Read { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("cannot read runbook {path}: ")), "{e}");
    }

    fn notes_of(out: &str, step: &str) -> String {
        let line = out.lines().find(|l| l.split_whitespace().nth(1) == Some(step)).unwrap_or_default();
        line.split_whitespace().skip(4).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_plan_says_which_branch_the_params_pick() {
        let rb = ripcord_engine::check::check(RB).unwrap_or_else(|e| panic!("{e:?}"));
        let plan = ripcord_engine::plan::plan(&rb);
        let none = |_: &str| None;
        let params = BTreeMap::from([("platform".to_string(), Value::str("compose"))]);
        let out = render_plan(&rb, &plan, Some(&params), &none);
        assert!(notes_of(&out, "k8s").contains("SKIPPED: its when is false"), "{out}");
        assert!(notes_of(&out, "compose").contains("runs: its when holds"), "{out}");
        // The params decide it, whatever the step's output would be.
        assert!(notes_of(&out, "later").contains("runs: its when holds"), "{out}");
        let params = BTreeMap::from([("platform".to_string(), Value::str("k8s"))]);
        let out = render_plan(&rb, &plan, Some(&params), &none);
        assert!(notes_of(&out, "later").contains("conditional"), "a step's output decides: {out}");
        let out = render_plan(&rb, &plan, None, &none);
        assert!(notes_of(&out, "compose").contains("conditional"), "params refused: {out}");
    }

    #[test]
    fn the_plan_marks_cleanup_steps_and_milestones() {
        let rb = ripcord_engine::builtin::get("mongo-pitr").map(ripcord_engine::check::check).unwrap().unwrap();
        let plan = ripcord_engine::plan::plan(&rb);
        let out = render_plan(&rb, &plan, None, &|_: &str| None);
        assert!(notes_of(&out, "delete-cluster").contains("cleanup: drills only"), "{out}");
        assert!(!notes_of(&out, "restore").contains("cleanup"), "{out}");
        assert!(notes_of(&out, "wait-restore").contains("milestone restore"), "{out}");
    }
}
