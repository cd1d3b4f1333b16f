//! The timeline of a report's steps, as bars against their budgets: the
//! geometry both renderings share, and the text chart of the Markdown.

use crate::{Report, StepReport, human};
use ripcord_engine::clock::Millis;

/// One step on the chart: its bar (from its start to its end, or to the
/// end of the chart while it runs) and its budget, from the run's start.
pub(crate) struct Bar<'a> {
    pub step: &'a StepReport,
    pub start: Millis,
    pub end: Millis,
    /// Where its budget runs out.
    pub budget_end: Option<Millis>,
}

/// The bars of the steps that started, and the span the chart covers
/// (never 0).
pub(crate) fn bars(r: &Report) -> (Vec<Bar<'_>>, Millis) {
    let bars: Vec<Bar<'_>> = r
        .steps
        .iter()
        .filter_map(|s| {
            let start = s.offset_ms?;
            let end = s.duration_ms.map_or(r.duration_ms.max(start), |d| start + d);
            Some(Bar { step: s, start, end, budget_end: s.budget_ms.map(|b| start + b) })
        })
        .collect();
    let span = bars.iter().map(|b| b.end.max(b.budget_end.unwrap_or(0))).fold(r.duration_ms, Millis::max).max(1);
    (bars, span)
}

/// How a cleanup step's bar is marked.
pub(crate) const CLEANUP: &str = " (cleanup, not in the RTO)";

/// Columns of the text chart.
const WIDTH: i64 = 40;

/// A fixed-width text chart: `█` the step ran, `░` budget left unused,
/// `▒` time past the budget, one line per step that started.
pub(crate) fn text(r: &Report) -> String {
    let (bars, span) = bars(r);
    let label = bars.iter().map(|b| b.step.id.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for b in &bars {
        let col = |t: Millis| (t * WIDTH) / span;
        let (from, to) = (col(b.start), col(b.end).max(col(b.start) + 1));
        let budget_to = b.budget_end.map(col);
        let line: String = (0..WIDTH)
            .map(|c| match (c >= from && c < to, budget_to) {
                (true, Some(bt)) if c >= bt.max(from + 1) => '▒',
                (true, _) => '█',
                (false, Some(bt)) if c >= from && c < bt => '░',
                _ => ' ',
            })
            .collect();
        let took = b.step.duration_ms.map_or_else(|| "running".to_string(), human);
        let budget = b.step.budget_ms.map(|x| format!(" of {} budget", human(x))).unwrap_or_default();
        let over = if b.step.over_budget { " OVER BUDGET" } else { "" };
        let cleanup = if b.step.cleanup { CLEANUP } else { "" };
        out.push_str(&format!("{:<label$} |{line}| +{} {took}{budget}{over}{cleanup}\n", b.step.id, human(b.start)));
    }
    out.push_str(&format!("{:<label$}  0{:>w$}\n", "", human(span), w = usize::try_from(WIDTH).unwrap_or(40)));
    out
}
