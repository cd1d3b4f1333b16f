//! The report as one self-contained HTML file: inline style, an inline SVG
//! Gantt chart of the steps against their budgets, no script and no
//! external asset. Every text from the run is escaped.

use crate::cleanup::{self, CleanupOutcome};
use crate::milestones::{self, MilestoneStatus};
use crate::{Objective, Report, gantt, human};
use std::fmt::Write as _;

/// `s` safe in HTML text and in a quoted attribute.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.met{color:#176f2c}.late{color:#b00020;font-weight:bold}.cleanup{color:#546e7a}.missed{color:#b00020;font-weight:bold}.over{color:#b00020;font-weight:bold}\
code{background:#f3f3f3;padding:0 .2rem}svg text{font-size:12px;font-family:monospace}";

fn class(o: &Objective) -> &'static str {
    match o.met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "unknown",
    }
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "—".to_string(), escape)
}

pub fn html(r: &Report) -> String {
    let mut h = String::new();
    let e = escape;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        e(&r.title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", e(&r.title));
    let _ = writeln!(
        h,
        "<p>Run <code id=\"run-id\">{}</code> of runbook <code>{}</code> ({}), a {} run, <strong>{}</strong>; started by {}.</p>",
        e(&r.run_id),
        e(&r.runbook_id),
        e(&r.source),
        r.mode,
        r.status,
        e(&r.started_by.to_string())
    );
    if let Some(f) = &r.failing {
        let _ = writeln!(h, "<p class=\"missed\">Failing: {}</p>", e(f));
    }
    let _ = writeln!(
        h,
        "<table>\n<tr><th>Incident at</th><td>{}</td></tr>\n<tr><th>Run started</th><td>{}</td></tr>\n<tr><th>Recovered</th><td>{}</td></tr>\n<tr><th>Finished</th><td>{}</td></tr>\n</table>",
        e(&r.incident_at),
        e(&r.started_at),
        opt(&r.recovered_at),
        opt(&r.finished_at)
    );

    h.push_str("<h2>Objectives</h2>\n<ul>\n");
    let _ = writeln!(h, "<li id=\"rto\" class=\"{}\">{}</li>", class(&r.rto), e(&r.rto.summary));
    let _ = writeln!(h, "<li id=\"rpo\" class=\"{}\">{}</li>", class(&r.rpo), e(&r.rpo.summary));
    h.push_str("</ul>\n");
    parts(r, &mut h);
    rehearsal_day(r, &mut h);

    h.push_str("<h2>Timeline</h2>\n");
    h.push_str(&svg(r));
    cleaned_up(r, &mut h);
    steps(r, &mut h);
    answers_and_notices(r, &mut h);
    follow_up(r, &mut h);
    h.push_str("</body>\n</html>\n");
    h
}

/// "Steps": each step against its budget, with its attempts and failures.
fn steps(r: &Report, h: &mut String) {
    let e = escape;
    h.push_str("<h2>Steps</h2>\n<table>\n<tr><th>Step</th><th>Action</th><th>Status</th><th>Started</th><th>Took</th><th>Budget</th><th>Over budget</th><th>Attempts</th><th>Failures</th></tr>\n");
    for s in &r.steps {
        let status = s.status_line();
        let failures: Vec<String> =
            s.failures.iter().map(|f| format!("#{} at {}: {}", f.attempt, e(&f.at), e(&f.error))).collect();
        let _ = writeln!(
            h,
            "<tr data-step=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e(&s.id),
            e(&s.id),
            e(&s.action),
            e(&status),
            opt(&s.started_at),
            s.duration_ms.map_or_else(|| "—".into(), human),
            s.budget_ms.map_or_else(|| "—".into(), human),
            if s.over_budget { "<span class=\"over\">yes</span>" } else { "no" },
            s.attempts,
            failures.join("<br>")
        );
    }
    h.push_str("</table>\n");
}

/// "Approvals and checklist answers" and "Notices sent".
fn answers_and_notices(r: &Report, h: &mut String) {
    let e = escape;
    h.push_str("<h2>Approvals and checklist answers</h2>\n");
    list(
        h,
        r.answers.iter().map(|a| {
            let what = match (a.item, &a.text) {
                (Some(i), Some(t)) => format!("checklist item {i} “{}”", e(t)),
                _ => "approval".to_string(),
            };
            let note = if a.note.is_empty() { String::new() } else { format!(": “{}”", e(&a.note)) };
            format!("<code>{}</code> — {what} by {} at {}{note}", e(&a.step), e(&a.by.to_string()), e(&a.at))
        }),
    );

    h.push_str("<h2>Notices sent</h2>\n");
    list(
        h,
        r.notices.iter().map(|n| {
            let how = if n.delivered {
                "sent".to_string()
            } else {
                format!("<span class=\"missed\">NOT sent: {}</span>", e(n.error.as_deref().unwrap_or_default()))
            };
            let step = n.step.as_ref().map(|s| format!(", step {}", e(s))).unwrap_or_default();
            format!("{} <code>{}</code> ({}{step}): {how}", e(&n.at), e(&n.name), e(&n.topic))
        }),
    );
}

/// "Action items" and "Playbook changes needed".
fn follow_up(r: &Report, h: &mut String) {
    let e = escape;
    h.push_str("<h2>Action items</h2>\n");
    if r.action_items.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<ol id=\"action-items\">\n");
        for a in &r.action_items {
            let _ = writeln!(h, "<li data-id=\"{}\"><strong>{}</strong> — {}</li>", e(&a.id), e(&a.title), e(&a.body));
        }
        h.push_str("</ol>\n");
    }

    h.push_str("<h2>Playbook changes needed</h2>\n");
    if r.playbook_changes.is_empty() {
        h.push_str("<p>None: every step ran within its budget and nobody left a note.</p>\n");
    } else {
        list(h, r.playbook_changes.iter().map(|c| e(c)));
    }
}

/// "Parts": each child run of a composite run against its own RTO, then
/// the whole run's.
fn parts(r: &Report, h: &mut String) {
    if r.parts.is_empty() {
        return;
    }
    let e = escape;
    h.push_str("<h2>Parts</h2>\n<table id=\"parts\">\n<tr><th>Part</th><th>Child run</th><th>Runbook</th><th>Status</th><th>RTO achieved</th><th>RTO target</th></tr>\n");
    for p in &r.parts {
        let status = match (&p.child_status, &p.error) {
            (_, Some(err)) => format!("{}: {}", e(&p.status), e(err)),
            (Some(c), None) => e(c),
            (None, None) => e(&p.status),
        };
        let _ = writeln!(
            h,
            "<tr data-step=\"{}\" class=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{status}</td><td>{}</td><td>{}</td></tr>",
            e(&p.step),
            class(&p.rto),
            e(&p.step),
            opt(&p.run_id),
            opt(&p.runbook),
            p.rto.achieved_ms.map_or_else(|| "—".into(), human),
            p.rto.target_ms.map_or_else(|| "—".into(), human),
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(h, "<p class=\"{}\">Whole run: {}</p>", class(&r.rto), e(&r.rto.summary));
}

/// "Rehearsal day": the playbook's timetable and when each milestone was
/// reached.
fn rehearsal_day(r: &Report, h: &mut String) {
    if r.milestones.is_empty() {
        return;
    }
    h.push_str("<h2>Rehearsal day</h2>\n<table id=\"milestones\">\n<tr><th>Milestone</th><th>Plan</th><th>Due</th><th>Reached</th><th>Offset</th><th></th></tr>\n");
    for x in &r.milestones {
        let (class, verdict) = match x.status {
            MilestoneStatus::OnTime => ("met", "on time".to_string()),
            MilestoneStatus::Late => ("late", format!("late by {}", x.late_by_ms.map(human).unwrap_or_default())),
            MilestoneStatus::NotReached => ("late", "not reached".to_string()),
        };
        let _ = writeln!(
            h,
            "<tr data-milestone=\"{}\"><td>{}</td><td>{}</td><td>{} (+{})</td><td>{}</td><td>{}</td><td class=\"{class}\">{verdict}</td></tr>",
            x.name,
            x.name,
            escape(&x.planned),
            escape(&x.planned_clock),
            human(x.planned_offset_ms),
            opt(&x.reached_at),
            x.offset_ms.map_or_else(|| "—".into(), |o| format!("+{}", human(o))),
        );
    }
    h.push_str("</table>\n");
    if let Some(end) = milestones::day_end_line(r) {
        let _ = writeln!(h, "<p>{}</p>", escape(&end));
    }
}

/// "What was cleaned up": each cleanup step and its outcome, or the one
/// line of a recovery run.
fn cleaned_up(r: &Report, h: &mut String) {
    if r.cleanup.is_empty() {
        return;
    }
    h.push_str("<h2>What was cleaned up</h2>\n");
    if cleanup::drills_only(r.mode, &r.cleanup) {
        let ids: Vec<String> = r.cleanup.iter().map(|c| format!("<code>{}</code>", escape(&c.step))).collect();
        let _ = writeln!(
            h,
            "<p id=\"cleanup\">Cleanup runs in drills only: this recovery skipped its cleanup steps ({}).</p>",
            ids.join(", ")
        );
        return;
    }
    h.push_str("<p>Cleanup runs after recovery and does not count against the RTO.</p>\n<ul id=\"cleanup\">\n");
    for c in &r.cleanup {
        let class = match c.outcome {
            CleanupOutcome::Done => "met",
            CleanupOutcome::Skipped => "cleanup",
            _ => "missed",
        };
        let _ = writeln!(
            h,
            "<li data-step=\"{}\" data-outcome=\"{}\" class=\"{class}\"><code>{}</code> — {}</li>",
            escape(&c.step),
            c.outcome.word(),
            escape(&c.action),
            escape(&c.summary)
        );
    }
    h.push_str("</ul>\n");
}

fn list(h: &mut String, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        h.push_str("<p>None.</p>\n");
        return;
    }
    h.push_str("<ul>\n");
    for i in items {
        let _ = writeln!(h, "<li>{i}</li>");
    }
    h.push_str("</ul>\n");
}

/// Chart geometry, in SVG user units.
const LABEL: i64 = 180;
const PLOT: i64 = 640;
const ROW: i64 = 26;
const TOP: i64 = 10;

/// The Gantt chart: one row per step that started, its bar (red past its
/// budget) over a dashed box of its budget, and a time axis.
fn svg(r: &Report) -> String {
    let (bars, span) = gantt::bars(r);
    let x = |t: i64| LABEL + t * PLOT / span;
    let rows = i64::try_from(bars.len()).unwrap_or(0);
    let cleanup = bars.iter().any(|b| b.step.cleanup);
    let height = TOP + rows * ROW + if cleanup { 50 } else { 30 };
    let width = LABEL + PLOT + 20;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"gantt\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"steps against their budgets\">"
    );
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + i64::try_from(i).unwrap_or(0) * ROW;
        let id = escape(&b.step.id);
        let _ = writeln!(s, "<text x=\"4\" y=\"{}\">{id}</text>", y + 16);
        if let Some(be) = b.budget_end {
            let _ = writeln!(
                s,
                "<rect class=\"budget\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#eef3fb\" stroke=\"#6b8cc7\" stroke-dasharray=\"4 2\"/>",
                x(b.start),
                y + 2,
                (x(be) - x(b.start)).max(1),
                ROW - 4
            );
        }
        let fill = if b.step.over_budget {
            "#c62828"
        } else if b.step.status == "failed" {
            "#ef6c00"
        } else if b.step.cleanup {
            "#78909c"
        } else {
            "#2e7d32"
        };
        let (cleanup_attr, cleanup_note) =
            if b.step.cleanup { (" data-cleanup=\"true\" fill-opacity=\"0.8\"", gantt::CLEANUP) } else { ("", "") };
        let took = b.step.duration_ms.map_or_else(|| "running".to_string(), human);
        let budget = b.step.budget_ms.map(|x| format!(" of {} budget", human(x))).unwrap_or_default();
        let _ = writeln!(
            s,
            "<rect class=\"bar\" data-step=\"{id}\"{cleanup_attr} x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"><title>{id}: {}{}{}</title></rect>",
            x(b.start),
            y + 6,
            (x(b.end) - x(b.start)).max(2),
            ROW - 12,
            escape(&took),
            escape(&budget),
            escape(cleanup_note)
        );
    }
    let axis = TOP + rows * ROW + 4;
    let _ = writeln!(s, "<line x1=\"{LABEL}\" y1=\"{axis}\" x2=\"{}\" y2=\"{axis}\" stroke=\"#888\"/>", LABEL + PLOT);
    let _ = writeln!(s, "<text x=\"{LABEL}\" y=\"{}\">0s</text>", axis + 16);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", LABEL + PLOT, axis + 16, human(span));
    if cleanup {
        let _ = writeln!(
            s,
            "<text id=\"cleanup-legend\" x=\"{LABEL}\" y=\"{}\" fill=\"#546e7a\">grey bars: cleanup steps, after recovery, not counted in the RTO</text>",
            axis + 36
        );
    }
    s.push_str("</svg>\n");
    s
}
