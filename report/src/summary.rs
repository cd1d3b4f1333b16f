//! The few lines to post to a chat webhook when a run ends: the report at
//! a glance, and how to get the whole of it. Like every rendering, it holds
//! no param (the report has none).

use crate::cleanup::CleanupOutcome;
use crate::milestones::MilestoneStatus;
use crate::{Objective, Report};

/// Action items the summary lists before "and N more".
const FIRST_ITEMS: usize = 3;

/// Longest text taken from the run (a title, a note) on one line.
const LINE: usize = 120;

fn tick(o: &Objective) -> &'static str {
    match o.met {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "❔",
    }
}

/// One line of text from the run: no line breaks, at most [`LINE`]
/// characters.
fn line(s: &str) -> String {
    let flat = s.replace(['\r', '\n'], " ");
    if flat.chars().count() > LINE { format!("{}…", flat.chars().take(LINE).collect::<String>()) } else { flat }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A short Markdown summary of `r` for a chat webhook: title, status, RTO
/// and RPO against target, over-budget and failed steps, parts, late
/// milestones, what was cleaned up and what is still pending, the first
/// action items, and the command for the full report.
pub fn summary(r: &Report) -> String {
    let mut m = format!("**{}**\n", line(&r.title));
    m.push_str(&format!("Run `{}` ({}): **{}**", r.run_id, r.mode, r.status));
    if let Some(f) = &r.failing {
        m.push_str(&format!(" — {}", line(f)));
    }
    m.push('\n');
    m.push_str(&format!("{} {}\n{} {}\n", tick(&r.rto), r.rto.summary, tick(&r.rpo), r.rpo.summary));
    let over = r.steps.iter().filter(|s| s.over_budget).count();
    let failed = r.steps.iter().filter(|s| s.status == "failed").count();
    m.push_str(&format!(
        "Steps: {} over budget, {} failed (of {})\n",
        over,
        failed,
        plural(r.steps.len(), "step", "steps")
    ));
    if !r.parts.is_empty() {
        let parts: Vec<String> = r
            .parts
            .iter()
            .map(|p| {
                let got = p.rto.achieved_ms.map_or_else(|| p.status.clone(), crate::human);
                let of = p.rto.target_ms.map(|t| format!("/{}", crate::human(t))).unwrap_or_default();
                format!("{} {} {got}{of}", tick(&p.rto), p.step)
            })
            .collect();
        m.push_str(&format!("Parts: {}\n", parts.join(", ")));
    }
    let late = r.milestones.iter().filter(|x| x.status == MilestoneStatus::Late).count();
    let missing = r.milestones.iter().filter(|x| x.status == MilestoneStatus::NotReached).count();
    if late + missing > 0 {
        m.push_str(&format!("Rehearsal day: {late} milestone(s) late, {missing} not reached\n"));
    }
    cleanup_lines(r, &mut m);
    if !r.action_items.is_empty() {
        m.push_str(&format!("Action items ({}):\n", r.action_items.len()));
        for (i, a) in r.action_items.iter().take(FIRST_ITEMS).enumerate() {
            m.push_str(&format!("{}. {}\n", i + 1, line(&a.title)));
        }
        if r.action_items.len() > FIRST_ITEMS {
            m.push_str(&format!("… and {} more\n", r.action_items.len() - FIRST_ITEMS));
        }
    }
    m.push_str(&format!("Full report: `ripcord report {} --format html -o report.html`\n", r.run_id));
    m
}

/// "Cleaned up: …" and "Cleanup pending: …"; one line for a recovery.
fn cleanup_lines(r: &Report, m: &mut String) {
    if r.cleanup.is_empty() {
        return;
    }
    if crate::cleanup::drills_only(r.mode, &r.cleanup) {
        m.push_str(&format!("Cleanup: runs in drills only ({} skipped)\n", plural(r.cleanup.len(), "step", "steps")));
        return;
    }
    let done: Vec<&str> =
        r.cleanup.iter().filter(|c| c.outcome == CleanupOutcome::Done).map(|c| c.step.as_str()).collect();
    if !done.is_empty() {
        m.push_str(&format!("Cleaned up: {}\n", done.join(", ")));
    }
    let open: Vec<String> = r
        .cleanup
        .iter()
        .filter(|c| c.outcome.outstanding())
        .map(|c| format!("{} ({})", c.step, c.outcome.word()))
        .collect();
    if !open.is_empty() {
        m.push_str(&format!("⚠️ Cleanup not done: {}\n", open.join(", ")));
    }
}
