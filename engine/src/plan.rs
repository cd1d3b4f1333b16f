//! The shape of a runbook before it runs: which steps run in parallel, the
//! critical path by budget, and how it compares with the RTO. Cleanup steps
//! (drills only) are stages of their own after the main ones, and never on
//! the critical path: they do not delay recovery.

use crate::runbook::Runbook;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Steps grouped by depth: every step in a layer can run in parallel
    /// once the layers before it are done. The cleanup steps' layers come
    /// after the main ones.
    pub layers: Vec<Vec<String>>,
    /// The cleanup steps (in `layers` after the main ones): drills only,
    /// after the main steps, outside the recovery time.
    pub cleanup: Vec<String>,
    /// The chain of steps with the largest total budget.
    pub critical_path: Vec<String>,
    pub critical_total: Duration,
    pub rto: Option<Duration>,
    /// Steps that run later (`after:`), outside the recovery time.
    pub deferred: Vec<String>,
    /// Failure handlers: run only when a step fails.
    pub handlers: Vec<String>,
}

impl Plan {
    /// `critical path 27m of 30m RTO`, or `… (over the 30m RTO by 5m)`.
    pub fn summary(&self) -> String {
        let total = crate::duration::format(self.critical_total);
        match self.rto {
            Some(rto) if self.critical_total > rto => format!(
                "critical path {total} of {} RTO (over by {})",
                crate::duration::format(rto),
                crate::duration::format(self.critical_total - rto)
            ),
            Some(rto) => format!("critical path {total} of {} RTO", crate::duration::format(rto)),
            None => format!("critical path {total} (no RTO declared)"),
        }
    }
}

/// Plans a checked runbook (no cycles).
pub fn plan(rb: &Runbook) -> Plan {
    let handlers: BTreeSet<&str> = rb.handlers().into_iter().collect();
    // Deferred steps and everything after them happen outside the recovery.
    let mut deferred: BTreeSet<&str> = rb.steps.iter().filter(|s| s.after.is_some()).map(|s| s.id.as_str()).collect();
    loop {
        let before = deferred.len();
        for s in &rb.steps {
            if s.needs.iter().any(|(n, _)| deferred.contains(n.as_str())) {
                deferred.insert(&s.id);
            }
        }
        if deferred.len() == before {
            break;
        }
    }
    let main: Vec<_> = rb.steps.iter().filter(|s| !handlers.contains(s.id.as_str()) && !s.cleanup).collect();

    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut finish: BTreeMap<&str, (Duration, Option<&str>)> = BTreeMap::new();
    // Steps are few; relax until stable (the graph is acyclic after check).
    for _ in 0..=main.len() {
        for s in &main {
            let d = s.needs.iter().filter_map(|(n, _)| depth.get(n.as_str())).map(|d| d + 1).max().unwrap_or(0);
            depth.insert(&s.id, d);
            let own = if deferred.contains(s.id.as_str()) { Duration::ZERO } else { s.budget.unwrap_or_default() };
            let best = s
                .needs
                .iter()
                .filter(|(n, _)| !deferred.contains(n.as_str()))
                .filter_map(|(n, _)| finish.get(n.as_str()).map(|(t, _)| (*t, n.as_str())))
                .max_by_key(|(t, _)| *t);
            let entry = match best {
                Some((t, n)) => (t + own, Some(n)),
                None => (own, None),
            };
            finish.insert(&s.id, entry);
        }
    }
    let mut layers: Vec<Vec<String>> = Vec::new();
    for s in &main {
        let d = depth[s.id.as_str()];
        if layers.len() <= d {
            layers.resize(d + 1, Vec::new());
        }
        layers[d].push(s.id.clone());
    }
    let main_layers = layers.len();
    let cleanup: Vec<_> = rb.steps.iter().filter(|s| s.cleanup).collect();
    let mut cleanup_depth: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..=cleanup.len() {
        for s in &cleanup {
            let d = s.needs.iter().filter_map(|(n, _)| cleanup_depth.get(n.as_str())).map(|d| d + 1).max().unwrap_or(0);
            cleanup_depth.insert(&s.id, d);
        }
    }
    for s in &cleanup {
        let d = main_layers + cleanup_depth[s.id.as_str()];
        if layers.len() <= d {
            layers.resize(d + 1, Vec::new());
        }
        layers[d].push(s.id.clone());
    }
    let end = finish
        .iter()
        .filter(|(id, _)| !deferred.contains(*id))
        .max_by_key(|(id, (t, _))| (*t, std::cmp::Reverse(**id)))
        .map(|(id, (t, _))| (*id, *t));
    let mut critical_path = Vec::new();
    let mut critical_total = Duration::ZERO;
    if let Some((mut id, total)) = end {
        critical_total = total;
        loop {
            critical_path.push(id.to_string());
            match finish.get(id).and_then(|(_, prev)| *prev) {
                Some(p) => id = p,
                None => break,
            }
        }
        critical_path.reverse();
    }
    Plan {
        layers,
        critical_path,
        critical_total,
        rto: rb.rto,
        cleanup: cleanup.iter().map(|s| s.id.clone()).collect(),
        deferred: deferred.iter().map(|s| s.to_string()).collect(),
        handlers: handlers.iter().map(|s| s.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_critical_path_and_rto() {
        let rb = crate::check::check(
            "id: t\ntitle: T\nrto: 30m\nsteps:\n\
             - {id: a, action: noop, budget: 5m}\n\
             - {id: b, action: noop, budget: 10m, needs: [a]}\n\
             - {id: c, action: noop, budget: 2m, needs: [a]}\n\
             - {id: d, action: noop, budget: 3m, needs: [b, c], on_failure: [h]}\n\
             - {id: later, action: noop, budget: 1m, needs: [d], after: 24h}\n\
             - {id: h, action: noop}\n",
        )
        .unwrap();
        let p = plan(&rb);
        assert_eq!(p.layers, vec![vec!["a"], vec!["b", "c"], vec!["d"], vec!["later"]]);
        assert_eq!(p.critical_path, vec!["a", "b", "d"]);
        assert_eq!(p.critical_total, Duration::from_secs(18 * 60));
        assert_eq!(p.summary(), "critical path 18m of 30m RTO");
        assert_eq!(p.deferred, vec!["later"]);
        assert_eq!(p.handlers, vec!["h"]);
        assert!(p.cleanup.is_empty());
    }

    #[test]
    fn cleanup_is_stages_of_its_own_and_off_the_critical_path() {
        let rb = crate::check::check(
            "id: t\ntitle: T\nrto: 10m\nsteps:\n\
             - {id: a, action: noop, budget: 5m}\n\
             - {id: b, action: noop, budget: 4m, needs: [a]}\n\
             cleanup:\n\
             - {id: ok, action: approve}\n\
             - {id: undo, action: noop, budget: 20m, needs: [ok, a]}\n\
             - {id: report, action: noop, budget: 30m}\n",
        )
        .unwrap();
        let p = plan(&rb);
        assert_eq!(p.layers, vec![vec!["a"], vec!["b"], vec!["ok", "report"], vec!["undo"]]);
        assert_eq!(p.cleanup, vec!["ok", "undo", "report"]);
        assert_eq!(p.critical_path, vec!["a", "b"]);
        assert_eq!(p.summary(), "critical path 9m of 10m RTO");
    }
}
