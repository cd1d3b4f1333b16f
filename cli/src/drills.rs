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
