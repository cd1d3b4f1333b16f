//! `ripcord drills check` and `next`, offline: the drills file alone, with
//! `ripcord_schedule`.

use crate::output::table;
use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_schedule::{Drills, RunbookRef};
use std::path::Path;

/// Reads and checks the drills file at `path`: the drills, or every problem
/// as `FILE:LINE:COL: message`. A runbook given as a file is looked for
/// next to the drills file, and checked like `ripcord runbook check`.
pub fn check(path: &str) -> Result<Drills, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read drills file {path}: {e}")])?;
    let drills =
        ripcord_schedule::load(&text).map_err(|d| d.iter().map(|d| format!("{path}:{d}")).collect::<Vec<_>>())?;
    let dir = Path::new(path).parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    for d in &drills.drills {
        let RunbookRef::File { path: rb, pos } = &d.runbook else { continue };
        let file = dir.join(rb);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                if let Err(problems) = ripcord_engine::check::check(&text) {
                    errors.extend(problems.iter().map(|p| format!("{}:{p}", file.display())));
                    errors.push(format!("{path}:{pos}: runbook {rb} has problems (above)"));
                }
            }
            Err(e) => errors.push(format!("{path}:{pos}: cannot read runbook {}: {e}", file.display())),
        }
    }
    if errors.is_empty() { Ok(drills) } else { Err(errors) }
}

/// One line per drill for `drills check`.
pub fn summary(drills: &Drills) -> String {
    let names: Vec<&str> = drills.drills.iter().map(|d| d.name.as_str()).collect();
    format!("{} drills: {}", names.len(), names.join(", "))
}

/// Each drill's next `count` occurrences after `now`, in its zone and in UTC.
pub fn render_next(drills: &Drills, now: Millis, count: usize) -> String {
    let mut rows = Vec::new();
    for d in &drills.drills {
        let runbook = match &d.runbook {
            RunbookRef::Builtin(id) => id.clone(),
            RunbookRef::File { path, .. } => path.clone(),
        };
        for o in d.occurrences_after(now, count) {
            rows.push(vec![
                d.name.clone(),
                runbook.clone(),
                d.environment.clone(),
                format!("{} {}", o.local, d.schedule.timezone.name()),
                rfc3339(o.at),
                d.owners.join(", "),
            ]);
        }
    }
    table(&["DRILL", "RUNBOOK", "ENV", "LOCAL", "UTC", "OWNERS"], &rows)
}

/// `ripcord drills list`: each drill the coordinator schedules, with its
/// next occurrence in its own zone and when its owners are reminded.
pub fn render_list(drills: &[ripcord_proto::v1::DrillInfo]) -> String {
    let rows: Vec<Vec<String>> = drills
        .iter()
        .map(|d| {
            let (next, remind) = if d.next_unix_ms == 0 {
                ("(no more occurrences)".to_string(), String::new())
            } else {
                (format!("{} {}", d.next_local, d.timezone), rfc3339(d.remind_unix_ms))
            };
            vec![
                d.name.clone(),
                d.runbook.clone(),
                d.environment.clone(),
                next,
                d.next_run_id.clone(),
                remind,
                d.owners.join(", "),
            ]
        })
        .collect();
    table(&["DRILL", "RUNBOOK", "ENV", "NEXT (LOCAL)", "RUN ID", "REMINDER (UTC)", "OWNERS"], &rows)
}

/// A quarter, `2026-Q1`, of an instant.
fn quarter(at: Millis) -> String {
    let date = rfc3339(at);
    let (year, month) = (&date[..4], date[5..7].parse::<u32>().unwrap_or(1));
    format!("{year}-Q{}", (month - 1) / 3 + 1)
}

fn minutes(ms: i64) -> String {
    ripcord_engine::duration::format(std::time::Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)))
}

/// `ripcord drills history`: every past occurrence (newest first) with its
/// RTO achieved against its target, then the trend over the quarters (the
/// best RTO each quarter, per drill, and the change from the one before),
/// then the missed and refused ones.
pub fn render_history(occurrences: &[ripcord_proto::v1::DrillOccurrence]) -> String {
    let mut rows = Vec::new();
    for o in occurrences {
        let rto = match (o.rto_achieved_ms, o.rto_target_ms) {
            (0, _) => "-".to_string(),
            (a, 0) => minutes(a),
            (a, t) => format!("{} of {}{}", minutes(a), minutes(t), if a > t { " OVER" } else { "" }),
        };
        let state = match o.state.as_str() {
            "started" if o.late_ms > 0 => format!("started {} late", minutes(o.late_ms)),
            "refused" => format!("refused: {}", o.reason.lines().next().unwrap_or_default()),
            s => s.to_string(),
        };
        rows.push(vec![
            o.drill.clone(),
            o.due_local.clone(),
            state,
            o.run_id.clone(),
            o.run_status.clone(),
            rto,
            o.started_by.clone(),
        ]);
    }
    let mut out = table(&["DRILL", "DUE (LOCAL)", "STATE", "RUN", "STATUS", "RTO (ACHIEVED OF TARGET)", "BY"], &rows);
    out.push_str(&render_trend(occurrences));
    let missed: Vec<&ripcord_proto::v1::DrillOccurrence> =
        occurrences.iter().filter(|o| matches!(o.state.as_str(), "missed" | "refused")).collect();
    if missed.is_empty() {
        out.push_str("\nNo missed or refused occurrences.\n");
    } else {
        out.push_str(&format!("\nMissed or refused: {}\n", missed.len()));
        for o in missed {
            out.push_str(&format!("  {} {} ({}): {}\n", o.drill, o.due_local, o.occurrence_id, o.state));
        }
    }
    out
}

/// Per drill, the best recovered RTO of each quarter, oldest first, with
/// the change from the quarter before.
fn render_trend(occurrences: &[ripcord_proto::v1::DrillOccurrence]) -> String {
    use std::collections::BTreeMap;
    let mut best: BTreeMap<(&str, String), (i64, i64)> = BTreeMap::new();
    for o in occurrences.iter().filter(|o| o.rto_achieved_ms > 0) {
        let e = best.entry((o.drill.as_str(), quarter(o.due_unix_ms))).or_insert((i64::MAX, o.rto_target_ms));
        e.0 = e.0.min(o.rto_achieved_ms);
    }
    if best.is_empty() {
        return "\nTrend: no recovered drill yet.\n".to_string();
    }
    let mut out = String::from("\nTrend (best RTO per quarter):\n");
    let mut previous: Option<(&str, i64)> = None;
    for ((drill, q), (rto, target)) in &best {
        let change = match previous {
            Some((d, p)) if d == *drill && *rto < p => format!(", {} faster", minutes(p - rto)),
            Some((d, p)) if d == *drill && *rto > p => format!(", {} slower", minutes(rto - p)),
            Some((d, _)) if d == *drill => ", same".to_string(),
            _ => String::new(),
        };
        let against = if *target > 0 {
            format!(" against {}{}", minutes(*target), if rto > target { " (over)" } else { "" })
        } else {
            String::new()
        };
        out.push_str(&format!("  {drill} {q}: {}{against}{change}\n", minutes(*rto)));
        previous = Some((drill, *rto));
    }
    out
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use ripcord_proto::v1::DrillOccurrence;

    const MARCH_2026: Millis = 1_772_668_800_000; // 2026-03-05T00:00:00Z
    const JUNE_2026: Millis = 1_780_617_600_000; // 2026-06-05T00:00:00Z

    fn started(drill: &str, due: Millis, rto_min: i64) -> DrillOccurrence {
        DrillOccurrence {
            drill: drill.into(),
            occurrence_id: format!("{drill}-{due}"),
            due_unix_ms: due,
            due_local: rfc3339(due),
            state: "started".into(),
            run_id: "r".into(),
            run_status: "succeeded".into(),
            rto_achieved_ms: rto_min * 60_000,
            rto_target_ms: 30 * 60_000,
            started_by: "schedule".into(),
            ..DrillOccurrence::default()
        }
    }

    #[test]
    fn quarters_of_instants() {
        assert_eq!(quarter(MARCH_2026), "2026-Q1");
        assert_eq!(quarter(JUNE_2026), "2026-Q2");
    }

    #[test]
    fn history_shows_rto_against_target_the_trend_and_the_missed() {
        let missed = DrillOccurrence {
            drill: "q2".into(),
            occurrence_id: "m1".into(),
            due_local: "2026-06-03T09:00:00+09:00".into(),
            state: "missed".into(),
            ..DrillOccurrence::default()
        };
        let text = render_history(&[started("q1", JUNE_2026, 25), missed, started("q1", MARCH_2026, 41)]);
        assert!(text.contains("25m of 30m"), "{text}");
        assert!(text.contains("41m of 30m OVER"), "{text}");
        assert!(
            text.contains("  q1 2026-Q1: 41m against 30m (over)\n  q1 2026-Q2: 25m against 30m, 16m faster\n"),
            "{text}"
        );
        assert!(text.contains("Missed or refused: 1\n  q2 2026-06-03T09:00:00+09:00 (m1): missed"), "{text}");
    }
}
