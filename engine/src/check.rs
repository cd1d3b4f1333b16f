//! Whole-runbook checks: the `needs` graph (missing steps, cycles), failure
//! handlers, the cleanup phase (main steps never wait for it), every
//! template reference (a reference to a missing param, step or output is an
//! error here, not a surprise at 3 a.m.) and the runbooks a `runbook.run`
//! step starts (built in, with params they declare).

use crate::hint;
use crate::registry;
use crate::runbook::{self, Diagnostic, OnFailure, Runbook, Step, Target, load_partial};
use crate::template::{self, Ref};
use crate::yaml::{Kind, Node, Pos};
use std::collections::{BTreeMap, BTreeSet};

/// Loads and checks a runbook: every problem, sorted by position.
pub fn check(text: &str) -> Result<Runbook, Vec<Diagnostic>> {
    let (rb, mut diags) = load_partial(text)?;
    diags.extend(check_loaded(&rb));
    diags.sort_by_key(|d| d.pos);
    diags.dedup();
    if diags.is_empty() { Ok(rb) } else { Err(diags) }
}

/// The checks that need the whole runbook.
pub fn check_loaded(rb: &Runbook) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let ids: Vec<&str> = rb.steps.iter().map(|s| s.id.as_str()).chain(rb.broken.iter().map(String::as_str)).collect();
    let handlers: BTreeSet<&str> = rb.handlers().into_iter().collect();

    for step in &rb.steps {
        for (need, pos) in &step.needs {
            if need == &step.id {
                diags.push(Diagnostic::new(*pos, format!("step \"{}\" needs itself", step.id)));
            } else if !ids.contains(&need.as_str()) {
                diags.push(Diagnostic::new(*pos, format!("needs \"{need}\": no such step{}", suggest(need, &ids))));
            } else if handlers.contains(need.as_str()) {
                diags.push(Diagnostic::new(
                    *pos,
                    format!("needs \"{need}\": it is a failure handler (named in on_failure) and only runs on failure"),
                ));
            } else if !step.cleanup && rb.step(need).is_some_and(|n| n.cleanup) {
                diags.push(Diagnostic::new(
                    *pos,
                    format!("needs \"{need}\": it is a cleanup step, which runs after the main steps (in drills only)"),
                ));
            }
        }
        if let OnFailure::Run(targets) = &step.on_failure {
            if step.cleanup {
                diags.push(Diagnostic::new(
                    step.on_failure_pos,
                    format!(
                        "cleanup step \"{}\": on_failure is stop or continue (handlers belong to the main steps)",
                        step.id
                    ),
                ));
            }
            for t in targets {
                if !ids.contains(&t.as_str()) {
                    diags.push(Diagnostic::new(
                        step.on_failure_pos,
                        format!("on_failure runs \"{t}\": no such step{}", suggest(t, &ids)),
                    ));
                } else if rb.step(t).is_some_and(|h| h.cleanup) {
                    diags.push(Diagnostic::new(
                        step.on_failure_pos,
                        format!("on_failure runs \"{t}\": it is a cleanup step and cannot be a failure handler"),
                    ));
                }
            }
        }
        check_subrun(rb, step, &mut diags);
        if handlers.contains(step.id.as_str()) && !step.needs.is_empty() {
            diags.push(Diagnostic::new(
                step.needs[0].1,
                format!("step \"{}\" is a failure handler (named in on_failure); it cannot have needs", step.id),
            ));
        }
    }
    if let Some(cycle) = find_cycle(rb) {
        let first = rb.step(&cycle[0]).map_or(Pos::default(), |s| s.pos);
        diags.push(Diagnostic::new(first, format!("steps form a cycle: {}", cycle.join(" → "))));
    }

    let ancestors = ancestors(rb);
    for step in &rb.steps {
        let mut strings = Vec::new();
        collect_strings(&step.with, &mut strings);
        let with = strings.len();
        if let Some((cond, pos)) = &step.when {
            for part in cond.parts() {
                strings.push((part.to_string(), *pos));
            }
        }
        for (i, (s, pos)) in strings.into_iter().enumerate() {
            check_template(rb, step, &s, pos, ancestors.get(step.id.as_str()), &mut diags);
            check_credentials(step, &s, pos, i >= with, &mut diags);
        }
        if let Some(t) = step.target.as_ref().filter(|t| t.is_templated()) {
            check_target(rb, t, &mut diags);
        }
    }
    diags.sort_by_key(|d| d.pos);
    diags.dedup();
    diags
}

/// `{{ r }}` names param `name`, which the runbook does not declare.
fn no_param(rb: &Runbook, r: &Ref, name: &str, pos: Pos) -> Diagnostic {
    let names: Vec<&str> = rb.params.iter().map(|p| p.name.as_str()).collect();
    Diagnostic::new(pos, format!("{{{{ {r} }}}}: no param \"{name}\"{}", suggest(name, &names)))
}

fn suggest(name: &str, ids: &[&str]) -> String {
    hint::closest(name, ids.iter().copied()).map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default()
}

/// Every string in `n`, with its position.
pub(crate) fn collect_strings(n: &Node, out: &mut Vec<(String, Pos)>) {
    match &n.kind {
        Kind::Str(s) => out.push((s.clone(), n.pos)),
        Kind::Seq(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Kind::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_strings(v, out)),
        _ => {}
    }
}

fn check_template(
    rb: &Runbook,
    step: &Step,
    s: &str,
    pos: Pos,
    ancestors: Option<&BTreeSet<String>>,
    diags: &mut Vec<Diagnostic>,
) {
    if !s.contains("{{") {
        return;
    }
    let refs = match template::parse(s) {
        Ok(_) => template::refs(s),
        Err((_, e)) => {
            diags.push(Diagnostic::new(pos, e.to_string()));
            return;
        }
    };
    for (r, _) in refs {
        match &r {
            Ref::Param(p) if rb.param(p).is_none() => diags.push(no_param(rb, &r, p, pos)),
            Ref::Output { step: other, output } => {
                let Some(src) = rb.step(other) else {
                    if rb.broken.contains(other) {
                        continue;
                    }
                    let ids: Vec<&str> = rb.steps.iter().map(|s| s.id.as_str()).collect();
                    diags.push(Diagnostic::new(
                        pos,
                        format!("{{{{ {r} }}}}: no step \"{other}\"{}", suggest(other, &ids)),
                    ));
                    continue;
                };
                let outs = registry::get(&src.action).map_or(&[][..], |a| a.outputs);
                if src.cleanup && !step.cleanup {
                    diags.push(Diagnostic::new(
                        pos,
                        format!("{{{{ {r} }}}}: \"{other}\" is a cleanup step, which runs after the main steps"),
                    ));
                } else if !outs.contains(&output.as_str()) {
                    let list = if outs.is_empty() { "none".to_string() } else { outs.join(", ") };
                    diags.push(Diagnostic::new(
                        pos,
                        format!(
                            "{{{{ {r} }}}}: {} does not output \"{output}\"{} (it outputs: {list})",
                            src.action,
                            suggest(output, outs)
                        ),
                    ));
                } else if !ancestors.is_some_and(|a| a.contains(other)) {
                    diags.push(Diagnostic::new(
                        pos,
                        format!(
                            "{{{{ {r} }}}}: step \"{}\" may run before \"{other}\" has finished; add \"{other}\" to its needs",
                            step.id
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// The same rule `integrations::Actions` applies when it performs: an
/// action that takes credentials, run by the coordinator (no target).
fn takes_credentials(step: &Step) -> bool {
    step.target.is_none() && registry::takes_credentials(&step.action)
}

/// Where a `{{ credentials.… }}` reference may stand.
fn check_credentials(step: &Step, s: &str, pos: Pos, in_when: bool, diags: &mut Vec<Diagnostic>) {
    for (r, _) in template::refs(s) {
        if !matches!(r, Ref::Credential { .. }) {
            continue;
        }
        let why = if in_when {
            "a when: condition cannot test a credential".to_string()
        } else if takes_credentials(step) {
            continue;
        } else if step.target.is_some() || registry::get(&step.action).is_some_and(|a| a.on_agent()) {
            format!("{} runs on an agent, and credentials are never sent to agents", step.action)
        } else {
            format!("{} cannot be given a credential (only {} can)", step.action, registry::credential_takers())
        };
        diags.push(Diagnostic::new(pos, format!("{{{{ {r} }}}}: {why}")));
    }
}

/// A target that names params: only params, none of them secret (a target
/// is shown in events and plans), and the defaults must make a selector.
fn check_target(rb: &Runbook, t: &Target, diags: &mut Vec<Diagnostic>) {
    let refs = match template::parse(&t.selector) {
        Ok(_) => template::refs(&t.selector),
        Err((_, e)) => {
            diags.push(Diagnostic::new(t.pos, e.to_string()));
            return;
        }
    };
    let mut defaults = BTreeMap::new();
    let mut all_known = true;
    for (r, _) in refs {
        let Ref::Param(name) = &r else {
            diags.push(Diagnostic::new(
                t.pos,
                format!("{{{{ {r} }}}}: a target can name only params (it is chosen when the run starts)"),
            ));
            all_known = false;
            continue;
        };
        match rb.param(name) {
            None => {
                diags.push(no_param(rb, &r, name, t.pos));
                all_known = false;
            }
            Some(p) if p.secret => {
                diags.push(Diagnostic::new(
                    t.pos,
                    format!("{{{{ {r} }}}}: param \"{name}\" is secret, and a target is shown in events and plans"),
                ));
                all_known = false;
            }
            Some(p) => match &p.default {
                Some(d) => {
                    defaults.insert(name.clone(), d.clone());
                }
                None => all_known = false,
            },
        }
    }
    if all_known && let Err(e) = t.resolve(&defaults) {
        diags.push(Diagnostic::new(t.pos, format!("with the params' defaults, {e}")));
    }
}

/// A `runbook.run` step: the runbook it names (unless a template chooses
/// it) is built in, is not this one nor runs this one in turn, and is given
/// only params it declares and every required one without a default.
fn check_subrun(rb: &Runbook, step: &Step, diags: &mut Vec<Diagnostic>) {
    if step.action != "runbook.run" {
        return;
    }
    let Some(node) = step.with.get("runbook") else { return };
    let Some(name) = node.as_str().map(str::trim) else { return };
    if name.contains("{{") {
        return;
    }
    let Some(text) = crate::builtin::get(name) else {
        let ids: Vec<&str> = crate::builtin::ids().collect();
        let hint = suggest(name, &ids);
        diags.push(Diagnostic::new(
            node.pos,
            format!("runbook \"{name}\": no such built-in runbook{hint} (built in: {})", ids.join(", ")),
        ));
        return;
    };
    if name == rb.id || runs_transitively(name).contains(&rb.id) {
        diags.push(Diagnostic::new(
            node.pos,
            format!("runbook \"{name}\": runs {} again, which would never end", rb.id),
        ));
        return;
    }
    let Ok(child) = runbook::load(text) else {
        diags.push(Diagnostic::new(
            node.pos,
            format!("built-in runbook \"{name}\" does not load; run runbook check on it"),
        ));
        return;
    };
    let params = step.with.get("params");
    let given: Vec<(&str, Pos)> = match params.map(|p| &p.kind) {
        Some(Kind::Map(pairs)) => pairs.iter().filter_map(|(k, _)| Some((k.as_str()?, k.pos))).collect(),
        _ => vec![],
    };
    let declared: Vec<&str> = child.params.iter().map(|p| p.name.as_str()).collect();
    for (k, pos) in &given {
        if child.param(k).is_none() {
            diags.push(Diagnostic::new(
                *pos,
                format!(
                    "runbook {name} has no param \"{k}\"{} (it has: {})",
                    suggest(k, &declared),
                    declared.join(", ")
                ),
            ));
        }
    }
    let missing: Vec<&str> = child
        .params
        .iter()
        .filter(|p| p.required && p.default.is_none() && !given.iter().any(|(k, _)| *k == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        diags.push(Diagnostic::new(
            params.map_or(node.pos, |p| p.pos),
            format!("runbook {name} needs param(s) {} (required, no default): add them to params", missing.join(", ")),
        ));
    }
}

/// The built-in runbooks that built-in runbook `id` runs, directly or through
/// others (names chosen by templates are not followed).
fn runs_transitively(id: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(next) = stack.pop() {
        let Some(rb) = crate::builtin::get(&next).and_then(|t| runbook::load(t).ok()) else { continue };
        for s in rb.steps.iter().filter(|s| s.action == "runbook.run") {
            if let Some(child) = s.with.get("runbook").and_then(Node::as_str).map(str::trim)
                && seen.insert(child.to_string())
            {
                stack.push(child.to_string());
            }
        }
    }
    seen
}

/// Transitive `needs` of every step (ignoring unknown names).
pub fn ancestors(rb: &Runbook) -> BTreeMap<&str, BTreeSet<String>> {
    let mut out: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for step in &rb.steps {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = step.needs.iter().map(|(n, _)| n.as_str()).collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.to_string())
                && let Some(s) = rb.step(n)
            {
                stack.extend(s.needs.iter().map(|(x, _)| x.as_str()));
            }
        }
        out.insert(&step.id, seen);
    }
    out
}

/// A cycle in `needs`, as step ids with the first repeated at the end.
pub fn find_cycle(rb: &Runbook) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = rb.steps.iter().map(|s| (s.id.as_str(), Mark::New)).collect();
    fn visit<'a>(
        rb: &'a Runbook,
        id: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(id) {
            Some(Mark::Done) | None => return None,
            Some(Mark::Active) => {
                let start = path.iter().position(|p| *p == id).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(id.to_string());
                return Some(cycle);
            }
            Some(Mark::New) => {}
        }
        marks.insert(id, Mark::Active);
        path.push(id);
        if let Some(step) = rb.step(id) {
            for (n, _) in &step.needs {
                if let Some(c) = visit(rb, n, marks, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        marks.insert(id, Mark::Done);
        None
    }
    for s in &rb.steps {
        if let Some(c) = visit(rb, &s.id, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match check(text) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    const HEAD: &str = "id: t\ntitle: T\nparams:\n  cluster: { required: true }\nsteps:\n";

    /// Each error class with its exact position.
    #[test]
    fn error_classes_with_positions() {
        let table: &[(&str, &str)] = &[
            (
                "  - id: a\n    action: atlas.pitr_restor\n",
                "7:13: unknown action \"atlas.pitr_restor\" (did you mean \"atlas.pitr_restore\"?)",
            ),
            ("  - id: a\n    action: noop\n    neds: [b]\n", "8:5: unknown field `neds` (did you mean `needs`?)"),
            (
                "  - id: a\n    action: http.check\n    with: { url: x, expect_status: two }\n",
                "8:36: invalid type: string \"two\", expected u16",
            ),
            (
                "  - id: a\n    action: noop\n    needs: [b]\n  - id: b\n    action: noop\n    needs: [a]\n",
                "6:5: steps form a cycle: a → b → a",
            ),
            (
                "  - id: a\n    action: noop\n    needs: [bb]\n  - id: b\n    action: noop\n",
                "8:13: needs \"bb\": no such step (did you mean \"b\"?)",
            ),
            (
                "  - id: a\n    action: notify\n    with: { webhook: x, text: \"{{ params.clustr }}\" }\n",
                "8:31: {{ params.clustr }}: no param \"clustr\" (did you mean \"cluster\"?)",
            ),
            (
                "  - id: a\n    action: notify\n    with: { webhook: x, text: \"{{ steps.b.name }}\" }\n",
                "8:31: {{ steps.b.name }}: no step \"b\"",
            ),
            (
                "  - id: a\n    action: atlas.take_snapshot\n    with: { project: p, cluster: c }\n  - id: b\n    needs: [a]\n    action: notify\n    with: { webhook: x, text: \"{{ steps.a.snapshot }}\" }\n",
                "12:31: {{ steps.a.snapshot }}: atlas.take_snapshot does not output \"snapshot\" (did you mean \"snapshot_id\"?)",
            ),
            (
                "  - id: a\n    action: atlas.take_snapshot\n    with: { project: p, cluster: c }\n  - id: b\n    action: notify\n    with: { webhook: x, text: \"{{ steps.a.snapshot_id }}\" }\n",
                "11:31: {{ steps.a.snapshot_id }}: step \"b\" may run before \"a\" has finished; add \"a\" to its needs",
            ),
            ("  - id: a\n    action: noop\n    budget: 5 min\n", "8:13: bad duration \"5 min\""),
            (
                "  - id: a\n    action: redis.ping\n    with: { instance: cache }\n",
                "6:5: step \"a\": action redis.ping runs on an agent and needs a target",
            ),
            (
                "  - id: a\n    action: redis.ping\n    target: { role: redis }\n    with: { instance: cache }\n",
                "8:13: a target is a label selector (\"role=redis,env=prod\") or { selector: \"…\", all: true }",
            ),
            (
                "  - id: a\n    action: noop\n    on_failure: 3\n",
                "8:17: on_failure is stop, continue, or a list of handler steps",
            ),
            (
                "  - id: a\n    action: noop\n    on_failure: [cleanup]\n",
                "8:17: on_failure runs \"cleanup\": no such step",
            ),
            (
                "  - id: a\n    action: http.check\n    with: { url: \"https://u:{{ credentials.db.pass }}@h/\" }\n",
                "8:18: \"{{ credentials.db.pass }}\": a credential has user, password and password_url_encoded, not \"pass\"",
            ),
            (
                "  - id: a\n    action: notify\n    with: { webhook: x, text: \"pw {{ credentials.db.password }}\" }\n",
                "8:31: {{ credentials.db.password }}: notify cannot be given a credential",
            ),
            (
                "  - id: a\n    action: http.check\n    target: \"role=app\"\n    with: { url: \"{{ credentials.db.user }}\" }\n",
                "9:18: {{ credentials.db.user }}: http.check runs on an agent, and credentials are never sent to agents",
            ),
            (
                "  - id: a\n    action: noop\n    when: \"{{ credentials.db.user }} == x\"\n",
                "8:11: {{ credentials.db.user }}: a when: condition cannot test a credential",
            ),
        ];
        for (steps, expect) in table {
            let errs = errors(&format!("{HEAD}{steps}"));
            assert!(errs.iter().any(|e| e.starts_with(expect)), "expected {expect:?} in {errs:#?}");
        }
    }

    #[test]
    fn all_errors_are_reported_not_just_the_first() {
        let errs = errors(&format!(
            "{HEAD}  - id: a\n    action: nope\n  - id: b\n    action: noop\n    budget: soon\n  - id: c\n    action: noop\n    needs: [zz]\n"
        ));
        assert_eq!(errs.len(), 3, "{errs:#?}");
    }

    #[test]
    fn a_good_runbook_passes() {
        let text = format!(
            "{HEAD}  - id: snap\n    action: atlas.take_snapshot\n    with: {{ project: p, cluster: \"{{{{ params.cluster }}}}\" }}\n    budget: 2m\n  - id: tell\n    needs: [snap]\n    action: notify\n    with: {{ webhook: x, text: \"snapshot {{{{ steps.snap.snapshot_id }}}} of {{{{ run.short_id }}}}\" }}\n    on_failure: [cleanup]\n  - id: cleanup\n    action: noop\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn credentials_may_go_to_the_integrations_that_use_them() {
        let text = format!(
            "{HEAD}  - id: login\n    action: http.check\n    with:\n      url: https://api/login\n      method: POST\n      body: {{ user: \"{{{{ credentials.probe.user }}}}\", password: \"{{{{ credentials.probe.password }}}}\" }}\n  - id: count\n    action: mongo.count\n    with: {{ uri: \"mongodb://{{{{ credentials.db.user }}}}:{{{{ credentials.db.password_url_encoded }}}}@h/\", db: chatdb, collections: [users] }}\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn an_empty_target_is_refused_as_it_would_match_every_agent() {
        let text = "id: t\ntitle: T\nparams:\n  hosts: { default: \"\" }\nsteps:\n  - {id: a, action: redis.ping, target: \"\", with: {instance: c}}\n  - {id: b, action: redis.ping, target: { selector: \" \", all: true }, with: {instance: c}}\n  - {id: c, action: redis.ping, target: \"{{ params.hosts }}\", with: {instance: c}}\n";
        let e = errors(text);
        assert_eq!(e.len(), 3, "{e:#?}");
        for (line, d) in [6, 7, 8].iter().zip(&e) {
            assert!(
                d.starts_with(&format!("{line}:")) && d.contains("an empty selector, which would match every agent"),
                "{d}"
            );
        }
    }

    #[test]
    fn a_target_may_name_params_but_nothing_else() {
        let text = "id: t\ntitle: T\nparams:\n  hosts: { default: \"role=redis\" }\n  host: { required: true }\n  token: { secret: true, default: abc }\n  bad: { default: \"role=re dis\" }\nsteps:\n  - {id: a, action: redis.ping, target: \"{{ params.hosts }}\", with: {instance: c}}\n  - {id: b, action: redis.ping, target: { selector: \"role=redis,host={{ params.host }}\", all: true }, with: {instance: c}}\n  - {id: c, needs: [a], action: redis.ping, target: \"host={{ steps.a.pong }}\", with: {instance: c}}\n  - {id: d, action: redis.ping, target: \"host={{ params.token }}\", with: {instance: c}}\n  - {id: e, action: redis.ping, target: \"{{ params.bad }}\", with: {instance: c}}\n  - {id: f, action: redis.ping, target: \"host={{ params.hots }}\", with: {instance: c}}\n";
        assert_eq!(
            errors(text),
            vec![
                "11:53: {{ steps.a.pong }}: a target can name only params (it is chosen when the run starts)",
                "12:41: {{ params.token }}: param \"token\" is secret, and a target is shown in events and plans",
                "13:41: with the params' defaults, target \"{{ params.bad }}\" gives bad selector \"role=re dis\": \"role=re dis\": label value must be 1-63 characters of letters, digits, '.', '-', '_', '/'",
                "14:41: {{ params.hots }}: no param \"hots\" (did you mean \"hosts\"?)",
            ]
        );
    }
}
