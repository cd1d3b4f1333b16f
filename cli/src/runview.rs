//! Rendering a run view (the engine's typed model, `ripcord_engine::model`,
//! as the coordinator sends it) for people: a header with the RTO clock, the
//! steps, the event log.

use crate::output::table;
use ripcord_engine::clock::{Millis, rfc3339};
use ripcord_engine::duration::format as dur;
use ripcord_engine::model::{LoggedEvent, RunView};
use ripcord_engine::run::{RunStatus, StepStatus};
use std::fmt::Write;
use std::time::Duration;

fn d(ms: Millis) -> String {
    dur(Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)) / 1000 * 1000)
}

/// The RTO clock: "12m of 30m RTO" while running, "recovered in 14m (RTO 30m)".
pub fn rto_clock(v: &RunView) -> String {
    let e = v.elapsed_ms;
    let rto = match v.rto_ms {
        Some(r) if e > r => format!(" — over the {} RTO by {}", d(r), d(e - r)),
        Some(r) => format!(" of the {} RTO", d(r)),
        None => String::new(),
    };
    match (v.recovered_at_ms, v.status) {
        (Some(_), _) => format!("recovered {} after the incident{rto}", d(e)),
        (None, RunStatus::Running) => format!("{} since the incident{rto}", d(e)),
        (None, status) => format!("{status} {} after the incident, not recovered", d(e)),
    }
}

/// The RPO achieved: "5m12s of data lost (newest record kept 03:07:00Z,
/// step newest) — within the 15m RPO", or what is still unknown.
pub fn rpo_line(v: &RunView) -> Option<String> {
    let target = v.rpo_ms;
    let Some(a) = &v.rpo_achieved else {
        let when = if v.status == RunStatus::Running { "yet" } else { "by this run" };
        return target.map(|t| format!("target {}; not measured {when}", d(t)));
    };
    let verdict = match target {
        Some(t) if a.lost_ms > t => format!(" — over the {} RPO by {}", d(t), d(a.lost_ms - t)),
        Some(t) => format!(" — within the {} RPO", d(t)),
        None => String::new(),
    };
    let lost = if a.lost_ms == 0 { "no data lost".to_string() } else { format!("{} of data lost", d(a.lost_ms)) };
    Some(format!("{lost} ({} {}, step {}){verdict}", a.basis.describe(), rfc3339(a.kept_until), a.step))
}

pub fn header(v: &RunView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}  ({})", v.run_id, v.runbook_id, v.title);
    let _ = writeln!(out, "status:    {} ({} run, started by {})", v.status, v.mode, v.started_by);
    let _ = writeln!(out, "incident:  {}", rfc3339(v.incident_at_ms));
    let _ = writeln!(out, "clock:     {}", rto_clock(v));
    if let Some(rpo) = rpo_line(v) {
        let _ = writeln!(out, "rpo:       {rpo}");
    }
    if let Some(f) = &v.failing {
        let _ = writeln!(out, "failure:   {f}");
    }
    if let Some(a) = &v.acknowledged {
        let note = if a.note.is_empty() { String::new() } else { format!(": {}", a.note) };
        let _ = writeln!(out, "acked:     by {} at {}{note}", a.by, rfc3339(a.at));
    }
    if !v.milestones.is_empty() {
        let reached: Vec<String> =
            v.milestones.iter().map(|m| format!("{} +{}", m.name, d(m.since_start_ms))).collect();
        let _ = writeln!(out, "milestones: {}", reached.join(", "));
    }
    out
}

pub fn steps(v: &RunView) -> String {
    let rows: Vec<Vec<String>> = v
        .steps
        .iter()
        .filter(|st| !(st.handler && st.attempt == 0))
        .map(|st| {
            let end = st.finished_at_ms.unwrap_or(v.now_ms);
            let elapsed = st.started_at_ms.map(|t| d(end - t)).unwrap_or_else(|| "-".into());
            let time = match st.budget_ms {
                Some(b) => format!("{elapsed} / {}{}", d(b), if st.over_budget { " OVER" } else { "" }),
                None => elapsed,
            };
            let attempt = match (st.attempt, st.max_attempts) {
                (a, m) if m > 1 => format!("{a}/{m}"),
                (0, _) => "-".into(),
                (a, _) => a.to_string(),
            };
            let skip_reason = match &st.status {
                StepStatus::Skipped { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            let until = match st.status {
                StepStatus::Deferred { until } | StepStatus::Backoff { until } => Some(until),
                _ => None,
            };
            let detail = st
                .waiting_for
                .clone()
                .or_else(|| st.error.clone())
                .or(skip_reason)
                .or_else(|| until.map(|u| format!("until {}", rfc3339(u))))
                .or_else(|| st.approval.as_ref().map(|a| format!("approved by {}", a.by)))
                .unwrap_or_default();
            let action = match &st.target {
                Some(t) => format!("{} @ {}{}", st.action, t.selector, if t.all { " (all)" } else { "" }),
                None => st.action.clone(),
            };
            let id = if st.cleanup { format!("{} (cleanup)", st.id) } else { st.id.clone() };
            vec![id, st.status.name().to_string(), attempt, time, action, detail]
        })
        .collect();
    table(&["STEP", "STATE", "TRY", "TIME / BUDGET", "ACTION", "DETAIL"], &rows)
}

pub fn event_line(e: &LoggedEvent) -> String {
    let at = rfc3339(e.event.at);
    let step = e.event.step.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
    let actor = e.actor.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
    format!("{at}{step} {}{actor}", e.event.message)
}

pub fn events(v: &RunView) -> String {
    let mut out = String::new();
    for e in &v.events {
        let _ = writeln!(out, "{}", event_line(e));
    }
    out
}

pub fn show(v: &RunView) -> String {
    format!("{}\n{}\nevents:\n{}", header(v), steps(v), events(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_engine::measure::{Basis, Rpo};
    use ripcord_engine::model::{FORMAT, StepView};
    use ripcord_engine::run::{Actor, Confirmation, Mode, NewRun, TargetSpec, start};
    use std::collections::BTreeMap;

    const MIN: Millis = 60_000;

    fn alice() -> Actor {
        Actor { name: "alice".into(), role: "operator".into() }
    }

    fn run(status: RunStatus, elapsed_ms: Millis) -> RunView {
        RunView {
            format: FORMAT,
            run_id: "0123456789abcdef".into(),
            runbook_id: "redis-aof".into(),
            title: "Repair the AOF".into(),
            description: String::new(),
            source: "builtin:redis-aof".into(),
            mode: Mode::Recovery,
            status,
            started_by: alice(),
            now_ms: elapsed_ms,
            created_at_ms: 0,
            incident_at_ms: 0,
            recovered_at_ms: None,
            finished_at_ms: None,
            rto_ms: Some(30 * MIN),
            elapsed_ms,
            rpo_ms: None,
            rpo_achieved: None,
            failing: None,
            params: BTreeMap::new(),
            steps: vec![],
            events: vec![],
            milestones: vec![],
            acknowledged: None,
        }
    }

    fn step(id: &str, action: &str, status: StepStatus) -> StepView {
        StepView::new(id, action, status)
    }

    #[test]
    fn rto_clock_table() {
        assert_eq!(rto_clock(&run(RunStatus::Running, 12 * MIN)), "12m since the incident of the 30m RTO");
        assert_eq!(rto_clock(&run(RunStatus::Running, 35 * MIN)), "35m since the incident — over the 30m RTO by 5m");
        let recovered = RunView { recovered_at_ms: Some(14 * MIN), ..run(RunStatus::Succeeded, 14 * MIN) };
        assert_eq!(rto_clock(&recovered), "recovered 14m after the incident of the 30m RTO");
        assert_eq!(rto_clock(&run(RunStatus::Aborted, 3 * MIN)), "aborted 3m after the incident, not recovered");
        let no_rto = RunView { rto_ms: None, ..run(RunStatus::Running, MIN) };
        assert_eq!(rto_clock(&no_rto), "1m since the incident");
    }

    #[test]
    fn rpo_line_table() {
        let v = |rpo_ms: Option<Millis>, lost: Option<Millis>| RunView {
            rpo_ms,
            rpo_achieved: lost.map(|lost_ms| Rpo {
                lost_ms,
                kept_until: 0,
                basis: Basis::Measured,
                step: "newest".into(),
            }),
            ..run(RunStatus::Succeeded, 20 * MIN)
        };
        assert_eq!(rpo_line(&v(None, None)), None, "no target and nothing measured: no line");
        // An AOF repair, say: nothing reads back what was kept.
        assert_eq!(rpo_line(&v(Some(5 * MIN), None)).unwrap(), "target 5m; not measured by this run");
        let running = RunView { rpo_ms: Some(5 * MIN), ..run(RunStatus::Running, MIN) };
        assert_eq!(rpo_line(&running).unwrap(), "target 5m; not measured yet");
        assert_eq!(
            rpo_line(&v(Some(15 * MIN), Some(312_000))).unwrap(),
            "5m12s of data lost (newest record kept 1970-01-01T00:00:00Z, step newest) — within the 15m RPO"
        );
        assert_eq!(
            rpo_line(&v(Some(5 * MIN), Some(7 * MIN))).unwrap(),
            "7m of data lost (newest record kept 1970-01-01T00:00:00Z, step newest) — over the 5m RPO by 2m"
        );
        assert!(rpo_line(&v(None, Some(0))).unwrap().starts_with("no data lost ("));
    }

    #[test]
    fn show_renders_every_step_state_and_the_log() {
        let mut v = run(RunStatus::Failed, 10 * MIN);
        v.failing = Some("step fix failed".into());
        let mut fix = step("fix", "redis.check_aof", StepStatus::Failed);
        fix.target = Some(TargetSpec { selector: "role=redis".into(), all: true });
        fix.error = Some("exit 1".into());
        (fix.attempt, fix.max_attempts) = (3, 3);
        (fix.started_at_ms, fix.finished_at_ms, fix.budget_ms, fix.over_budget) =
            (Some(0), Some(2 * MIN), Some(MIN), true);
        let mut gate = step("gate", "approve", StepStatus::Succeeded);
        gate.approval = Some(Confirmation { by: alice(), note: "ok".into(), at: 0 });
        let later = step("later", "wait", StepStatus::Deferred { until: 90_000 });
        let skipped = step("maybe", "wait", StepStatus::Skipped { reason: "when is false".into(), need: None });
        let mut pending = step("next", "wait", StepStatus::Pending);
        (pending.attempt, pending.waiting_for) = (0, Some("needs fix".into()));
        let mut handler = step("page", "notify", StepStatus::Pending);
        (handler.attempt, handler.handler) = (0, true);
        v.steps = vec![fix, gate, later, skipped, pending, handler];
        // Real log lines from a run's start, one of them an operator's.
        let rb =
            ripcord_engine::check::check("id: t\ntitle: t\nsteps:\n  - {id: w, action: wait, with: {duration: 1s}}\n")
                .unwrap_or_else(|d| panic!("{d:?}"));
        let new = NewRun { id: "r".into(), mode: Mode::Drill, params: BTreeMap::new(), incident_at: None };
        let logged = start(&rb, new, 0).unwrap().events;
        v.events = vec![LoggedEvent { seq: 0, event: logged[0].clone(), actor: Some(alice()) }];

        let out = show(&v);
        let line = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("no {id} in\n{out}"));
        assert!(out.starts_with("run 0123456789abcdef  redis-aof  (Repair the AOF)\n"), "{out}");
        assert!(out.contains("status:    failed (recovery run, started by alice (operator))"), "{out}");
        assert!(out.contains("failure:   step fix failed"), "{out}");
        for (id, words) in [
            ("fix", &["failed", "3/3", "2m / 1m OVER", "redis.check_aof @ role=redis (all)", "exit 1"][..]),
            ("gate", &["succeeded", "approved by alice (operator)"]),
            ("later", &["deferred", "until 1970-01-01T00:01:30Z"]),
            ("maybe", &["skipped", "when is false"]),
            ("next", &["pending", "needs fix"]),
        ] {
            for w in words {
                assert!(line(id).contains(w), "{id}: no {w:?} in {:?}", line(id));
            }
        }
        assert!(!out.lines().any(|l| l.starts_with("page")), "an untriggered handler is not shown:\n{out}");
        let events = out.split("events:\n").nth(1).unwrap();
        assert!(events.starts_with("1970-01-01T00:00:00Z "), "{events}");
        assert!(events.trim_end().ends_with(" (alice (operator))"), "{events}");
    }

    #[test]
    fn show_marks_cleanup_steps_and_lists_the_milestones_reached() {
        use ripcord_engine::milestone::Milestone;
        use ripcord_engine::model::MilestoneView;
        let mut v = run(RunStatus::Running, 20 * MIN);
        let mut delete = step("delete-cluster", "atlas.delete_cluster", StepStatus::Pending);
        delete.cleanup = true;
        v.steps = vec![step("restore", "atlas.pitr_restore", StepStatus::Succeeded), delete];
        v.milestones = vec![
            MilestoneView { name: Milestone::KickOff, at_ms: 0, since_start_ms: 0 },
            MilestoneView { name: Milestone::Restore, at_ms: 12 * MIN, since_start_ms: 12 * MIN },
        ];
        let out = show(&v);
        assert!(out.lines().any(|l| l.starts_with("delete-cluster (cleanup) ")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("restore ") && !l.contains("(cleanup)")), "{out}");
        assert!(out.contains("milestones: kick_off +0s, restore +12m\n"), "{out}");
    }

    #[test]
    fn show_prints_who_acknowledged_the_run_in_the_header() {
        let mut v = run(RunStatus::Running, 20 * MIN);
        assert!(!header(&v).contains("acked:"), "{}", header(&v));
        v.acknowledged = Some(Confirmation { by: alice(), note: "on it".into(), at: 5 * MIN });
        assert!(
            header(&v).contains("acked:     by alice (operator) at 1970-01-01T00:05:00Z: on it\n"),
            "{}",
            header(&v)
        );
        v.acknowledged = Some(Confirmation { by: alice(), note: String::new(), at: 5 * MIN });
        assert!(header(&v).contains("acked:     by alice (operator) at 1970-01-01T00:05:00Z\n"), "{}", header(&v));
    }
}
