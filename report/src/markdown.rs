//! The report as Markdown: what a chat message or a wiki page carries.

use crate::{Objective, Report, gantt, human};

/// Text for a table cell: no line breaks, no column separators.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn verdict(o: &Objective) -> &'static str {
    match o.met {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "•",
    }
}

pub fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".into());
    m.push_str(&format!("# {}\n\n", r.title));
    m.push_str(&format!(
        "Run `{}` of runbook `{}` ({}), a {} run, **{}**; started by {}.\n\n",
        r.run_id, r.runbook_id, r.source, r.mode, r.status, r.started_by
    ));
    if let Some(f) = &r.failing {
        m.push_str(&format!("Failing: {f}\n\n"));
    }
    m.push_str("| | |\n|---|---|\n");
    m.push_str(&format!("| Incident at | {} |\n", r.incident_at));
    m.push_str(&format!("| Run started | {} |\n", r.started_at));
    m.push_str(&format!("| Recovered | {} |\n", or_dash(&r.recovered_at)));
    m.push_str(&format!("| Finished | {} |\n\n", or_dash(&r.finished_at)));

    m.push_str("## Objectives\n\n");
    m.push_str(&format!("- {} {}\n- {} {}\n\n", verdict(&r.rto), r.rto.summary, verdict(&r.rpo), r.rpo.summary));

    m.push_str("## Timeline\n\n```text\n");
    m.push_str(&gantt::text(r));
    m.push_str("```\n\n");

    m.push_str("## Steps\n\n");
    m.push_str("| Step | Action | Status | Started | Took | Budget | Over budget | Attempts | Failures |\n");
    m.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.steps {
        let status = match (&s.skip_reason, s.handler) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, true) => format!("{} (handler)", s.status),
            (None, false) => s.status.clone(),
        };
        let failures: Vec<String> = s.failures.iter().map(|f| format!("#{}: {}", f.attempt, f.error)).collect();
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&s.id),
            cell(&s.action),
            cell(&status),
            or_dash(&s.started_at),
            s.duration_ms.map_or_else(|| "—".into(), human),
            s.budget_ms.map_or_else(|| "—".into(), human),
            if s.over_budget { "**yes**" } else { "no" },
            s.attempts,
            cell(&failures.join("; ")),
        ));
    }
    m.push('\n');

    m.push_str("## Approvals and checklist answers\n\n");
    if r.answers.is_empty() {
        m.push_str("None.\n");
    }
    for a in &r.answers {
        let what = match (a.item, &a.text) {
            (Some(i), Some(t)) => format!("checklist item {i} \"{}\"", cell(t)),
            _ => "approval".to_string(),
        };
        let note = if a.note.is_empty() { String::new() } else { format!(": \"{}\"", cell(&a.note)) };
        m.push_str(&format!("- `{}` — {what} by {} at {}{note}\n", a.step, a.by, a.at));
    }
    m.push('\n');

    m.push_str("## Notices sent\n\n");
    if r.notices.is_empty() {
        m.push_str("None.\n");
    }
    for n in &r.notices {
        let how = if n.delivered {
            "sent".to_string()
        } else {
            format!("NOT sent: {}", cell(n.error.as_deref().unwrap_or_default()))
        };
        let step = n.step.as_ref().map(|s| format!(", step {s}")).unwrap_or_default();
        m.push_str(&format!("- {} `{}` ({}{step}): {how}\n", n.at, n.name, n.topic));
    }
    m.push('\n');

    m.push_str("## Action items\n\n");
    if r.action_items.is_empty() {
        m.push_str("None.\n");
    }
    for (i, a) in r.action_items.iter().enumerate() {
        m.push_str(&format!("{}. **{}** — {}\n", i + 1, cell(&a.title), cell(&a.body)));
    }
    m.push('\n');

    m.push_str("## Playbook changes needed\n\n");
    if r.playbook_changes.is_empty() {
        m.push_str("None: every step ran within its budget and nobody left a note.\n");
    }
    for c in &r.playbook_changes {
        m.push_str(&format!("- {}\n", cell(c)));
    }
    m
}
