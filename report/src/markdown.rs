//! The report as Markdown: what a chat message or a wiki page carries.

use crate::cleanup::{self, CleanupOutcome};
use crate::milestones::{self, MilestoneStatus};
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
    parts(r, &mut m);
    rehearsal_day(r, &mut m);

    m.push_str("## Timeline\n\n```text\n");
    m.push_str(&gantt::text(r));
    m.push_str("```\n\n");
    cleaned_up(r, &mut m);
    steps(r, &mut m);
    answers_and_notices(r, &mut m);
    follow_up(r, &mut m);
    m
}

/// "Steps": each step against its budget, with its attempts and failures.
fn steps(r: &Report, m: &mut String) {
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".into());
    m.push_str("## Steps\n\n");
    m.push_str("| Step | Action | Status | Started | Took | Budget | Over budget | Attempts | Failures |\n");
    m.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.steps {
        let status = s.status_line();
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
}

/// "Approvals and checklist answers" and "Notices sent".
fn answers_and_notices(r: &Report, m: &mut String) {
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
}

/// "Action items" and "Playbook changes needed".
fn follow_up(r: &Report, m: &mut String) {
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
}

/// "Parts": each child run of a composite run against its own RTO, then
/// the whole run's.
fn parts(r: &Report, m: &mut String) {
    if r.parts.is_empty() {
        return;
    }
    m.push_str("## Parts\n\n| Part | Child run | Runbook | Status | RTO achieved | RTO target | Met |\n|---|---|---|---|---|---|---|\n");
    let or_dash = |s: &Option<String>| s.as_deref().map_or_else(|| "—".to_string(), cell);
    for p in &r.parts {
        let status = match (&p.child_status, &p.error) {
            (_, Some(e)) => format!("{}: {}", p.status, cell(e)),
            (Some(c), None) => cell(c),
            (None, None) => cell(&p.status),
        };
        m.push_str(&format!(
            "| {} | {} | {} | {status} | {} | {} | {} |\n",
            cell(&p.step),
            or_dash(&p.run_id),
            or_dash(&p.runbook),
            p.rto.achieved_ms.map_or_else(|| "—".into(), human),
            p.rto.target_ms.map_or_else(|| "—".into(), human),
            verdict(&p.rto),
        ));
    }
    m.push_str(&format!("\nWhole run: {} {}\n\n", verdict(&r.rto), r.rto.summary));
}

/// "Rehearsal day": the playbook's timetable and when each milestone was
/// reached.
fn rehearsal_day(r: &Report, m: &mut String) {
    if r.milestones.is_empty() {
        return;
    }
    m.push_str("## Rehearsal day\n\n| Milestone | Plan | Due | Reached | Offset | |\n|---|---|---|---|---|---|\n");
    for x in &r.milestones {
        let verdict = match x.status {
            MilestoneStatus::OnTime => "✅ on time".to_string(),
            MilestoneStatus::Late => format!("❌ **late** by {}", x.late_by_ms.map(human).unwrap_or_default()),
            MilestoneStatus::NotReached => "**not reached**".to_string(),
        };
        m.push_str(&format!(
            "| {} | {} | {} (+{}) | {} | {} | {verdict} |\n",
            x.name,
            x.planned,
            x.planned_clock,
            human(x.planned_offset_ms),
            x.reached_at.as_deref().unwrap_or("—"),
            x.offset_ms.map_or_else(|| "—".into(), |o| format!("+{}", human(o))),
        ));
    }
    if let Some(end) = milestones::day_end_line(r) {
        m.push_str(&format!("\n{end}\n"));
    }
    m.push('\n');
}

/// "What was cleaned up": each cleanup step and its outcome, or the one
/// line of a recovery run.
fn cleaned_up(r: &Report, m: &mut String) {
    if r.cleanup.is_empty() {
        return;
    }
    m.push_str("## What was cleaned up\n\n");
    if cleanup::drills_only(r.mode, &r.cleanup) {
        let ids: Vec<String> = r.cleanup.iter().map(|c| format!("`{}`", c.step)).collect();
        m.push_str(&format!(
            "Cleanup runs in drills only: this recovery skipped its cleanup steps ({}).\n\n",
            ids.join(", ")
        ));
        return;
    }
    m.push_str("Cleanup runs after recovery and does not count against the RTO.\n\n");
    for c in &r.cleanup {
        let mark = match c.outcome {
            CleanupOutcome::Done => "✅",
            CleanupOutcome::Skipped => "➖",
            _ => "❌",
        };
        m.push_str(&format!("- {mark} `{}` `{}` — {}\n", c.step, c.action, cell(&c.summary)));
    }
    m.push('\n');
}
