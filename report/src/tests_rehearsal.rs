//! Rehearsal reports of composite drills driven through the engine: what
//! was cleaned up, the rehearsal day's milestones against the playbook's
//! plan, the parts (`runbook.run` children) with their own RTOs, and the
//! chat summary.

use super::*;
use crate::tests::{SECRET, Sim, T0, actor};
use ripcord_engine::milestone::Milestone;
use ripcord_engine::run::{Input, StepStatus};
use ripcord_engine::value::Value;
use std::collections::BTreeMap;

const MIN: Millis = 60_000;

/// Snapshot, two parts (Redis then the API, each a child run), a check;
/// cleanup: an approval before deleting the restore cluster, putting the
/// secret back then restarting, and tidying up. Texts that need escaping
/// in the titles and the approval's message.
const RB: &str = r#"
id: outage
title: full outage <drill> & co
rto: 2h
params:
  hook: {type: string, default: "https://hooks.example/T0KEN-REPORT-77", secret: true}
steps:
  - id: snap
    action: noop
    milestone: snapshot
  - id: redis
    title: Redis recovery
    needs: [snap]
    action: runbook.run
    with: {runbook: redis-aof, params: {webhook: "{{ params.hook }}"}}
    milestone: restore
  - id: api
    title: API recovery
    needs: [redis]
    action: runbook.run
    with: {runbook: api-down, params: {health_url: "http://api/health"}}
  - id: verify
    needs: [api]
    action: noop
    milestone: verification
cleanup:
  - id: ok-delete
    title: Approve deleting the restore cluster
    action: approve
    with: {message: "delete <restore> & go?"}
  - id: delete
    title: Delete the restore cluster
    needs: [ok-delete]
    action: noop
  - id: put-back
    title: Put the secret back
    action: noop
  - id: restart
    title: Restart the deployment
    needs: [put-back]
    action: noop
  - id: tidy
    title: Day-after checklist <filed>
    action: noop
"#;

fn outputs(run_id: &str, runbook: Option<&str>, recovered_in_s: i64, rto_s: i64) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::from([
        ("run_id".to_string(), Value::str(run_id)),
        ("status".to_string(), Value::str("succeeded")),
        ("recovered_in_s".to_string(), Value::Int(recovered_in_s)),
        ("rto_s".to_string(), Value::Int(rto_s)),
    ]);
    if let Some(rb) = runbook {
        out.insert("runbook".into(), Value::str(rb));
    }
    out
}

/// The drill recovers at +65m; then cleanup: put-back fails (so restart
/// has nothing to do), tidy is done, the deletion waits for its approval.
fn drill() -> Sim {
    let mut sim = Sim::of(RB, Mode::Drill);
    sim.succeed("snap", T0 + 20 * MIN);
    sim.succeed_with("redis", outputs("c0ffee01", Some("redis-aof"), 240, 300), T0 + 28 * MIN);
    sim.succeed_with("api", outputs("c0ffee02", None, 400, 300), T0 + 50 * MIN);
    sim.succeed("verify", T0 + 65 * MIN);
    sim.fail("put-back", "AccessDenied on <secret> & co", T0 + 66 * MIN);
    sim.succeed("tidy", T0 + 70 * MIN);
    sim
}

/// A cleanup item's step, outcome, skip reason, error and what it waits for.
type Outcome<'a> = (&'a str, CleanupOutcome, Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn outcome_of(r: &Report) -> Vec<Outcome<'_>> {
    r.cleanup
        .iter()
        .map(|c| (c.step.as_str(), c.outcome, c.reason.as_deref(), c.error.as_deref(), c.waiting_for.as_deref()))
        .collect()
}

#[test]
fn cleanup_outcomes_are_listed_and_do_not_count_against_the_rto() {
    let v = drill().view(T0 + 80 * MIN);
    let r = Report::of(&v);
    assert_eq!(r.status, RunStatus::Running, "the deletion still waits for its approval");
    assert_eq!(
        outcome_of(&r),
        [
            ("ok-delete", CleanupOutcome::Waiting, None, None, Some("approval by an operator: delete <restore> & go?")),
            ("delete", CleanupOutcome::Pending, None, None, Some("needs ok-delete")),
            ("put-back", CleanupOutcome::Failed, None, Some("AccessDenied on <secret> & co"), None),
            ("restart", CleanupOutcome::Skipped, Some("nothing to clean up: put-back did not succeed"), None, None),
            ("tidy", CleanupOutcome::Done, None, None, None),
        ]
    );
    let tidy = &r.cleanup[4];
    assert_eq!((tidy.title.as_str(), tidy.action.as_str()), ("Day-after checklist <filed>", "noop"));
    assert_eq!(
        (tidy.started_at.clone(), tidy.finished_at.clone()),
        (Some(rfc3339(T0 + 65 * MIN)), Some(rfc3339(T0 + 70 * MIN)))
    );
    assert_eq!(tidy.duration_ms, Some(5 * MIN));
    assert_eq!(tidy.summary, "tidy (Day-after checklist <filed>): done in 5m");
    assert_eq!(r.cleanup[1].summary, "delete (Delete the restore cluster): not done yet (needs ok-delete)");

    // The RTO stops at recovery (+65m), whatever cleanup does after it.
    let recovered = v.events.iter().find(|e| e.event.kind == EventKind::Recovered).unwrap();
    assert_eq!(r.rto.achieved_ms, Some(65 * MIN));
    assert_eq!(r.rto.achieved_ms, recovered.event.facts.since_incident_ms);
    assert_eq!((r.rto.target_ms, r.rto.met), (Some(120 * MIN), Some(true)));
    let cleanup_steps: Vec<&str> = r.steps.iter().filter(|s| s.cleanup).map(|s| s.id.as_str()).collect();
    assert_eq!(cleanup_steps, ["ok-delete", "delete", "put-back", "restart", "tidy"]);

    // A failed or pending cleanup is an action item of its own, not a failed step's.
    let items: Vec<(&str, ActionKind, &str)> =
        r.action_items.iter().map(|a| (a.id.as_str(), a.kind, a.title.as_str())).collect();
    assert_eq!(
        items,
        [
            (
                "cleanup:ok-delete",
                ActionKind::Cleanup,
                "cleanup not done yet: Approve deleting the restore cluster (ok-delete)"
            ),
            ("cleanup:delete", ActionKind::Cleanup, "cleanup not done yet: Delete the restore cluster (delete)"),
            ("cleanup:put-back", ActionKind::Cleanup, "cleanup failed: Put the secret back (put-back)"),
        ]
    );
    assert_eq!(r.action_items[2].labels, ["ripcord", "outage", "cleanup"]);
    assert!(r.action_items[2].body.contains("failed: AccessDenied on <secret> & co"), "{}", r.action_items[2].body);
    assert_eq!(r.playbook_changes.len(), 3);
    assert!(r.playbook_changes[1].starts_with("Cleanup step delete: it had not run"), "{:?}", r.playbook_changes);
    assert!(
        r.playbook_changes[2].starts_with("Cleanup step put-back: it failed (AccessDenied on <secret> & co)"),
        "{:?}",
        r.playbook_changes
    );
}

#[test]
fn a_cleanup_left_when_the_run_ended_says_so() {
    let mut sim = drill();
    sim.input(Input::Abort { by: actor("alice"), reason: "out of time".into() }, T0 + 90 * MIN, Some(actor("alice")));
    let r = Report::of(&sim.view(T0 + 91 * MIN));
    assert_eq!(r.status, RunStatus::Aborted);
    let open: Vec<(&str, &str)> =
        r.cleanup.iter().filter(|c| c.outcome.outstanding()).map(|c| (c.step.as_str(), c.summary.as_str())).collect();
    assert_eq!(open[1], ("delete", "delete (Delete the restore cluster): NOT done: the run ended before it ran"));
    assert!(r.action_items.iter().any(|a| a.id == "cleanup:delete"), "{:?}", r.action_items);
}

#[test]
fn a_recovery_skips_cleanup_and_keeps_no_timetable() {
    let mut sim = Sim::of(RB, Mode::Recovery);
    sim.succeed("snap", T0 + MIN);
    let r = Report::of(&sim.view(T0 + 2 * MIN));
    assert_eq!(r.cleanup.len(), 5);
    assert!(
        r.cleanup
            .iter()
            .all(|c| c.outcome == CleanupOutcome::Skipped && c.reason.as_deref() == Some(cleanup::DRILLS_ONLY)),
        "{:?}",
        r.cleanup
    );
    assert!(r.milestones.is_empty() && r.action_items.is_empty());
    let md = markdown(&r);
    assert!(
        md.contains(
            "## What was cleaned up\n\nCleanup runs in drills only: this recovery skipped its cleanup steps (`ok-delete`, `delete`, `put-back`, `restart`, `tidy`).\n"
        ),
        "{md}"
    );
    assert!(!md.contains("## Rehearsal day"), "{md}");
    assert!(html(&r).contains("<p id=\"cleanup\">Cleanup runs in drills only"));
    assert!(summary(&r).contains("Cleanup: runs in drills only (5 steps skipped)\n"), "{}", summary(&r));
}

#[test]
fn milestones_stand_against_the_playbooks_day() {
    let v = drill().view(T0 + 80 * MIN);
    let reached: Vec<(Milestone, Millis)> = v.milestones.iter().map(|m| (m.name, m.since_start_ms)).collect();
    assert_eq!(
        reached,
        [
            (Milestone::KickOff, 0),
            (Milestone::Snapshot, 20 * MIN),
            (Milestone::Restore, 28 * MIN),
            (Milestone::Verification, 65 * MIN),
            (Milestone::Done, 65 * MIN),
        ]
    );
    let r = Report::of(&v);
    let rows: Vec<_> =
        r.milestones.iter().map(|m| (m.name, m.planned_offset_ms, m.offset_ms, m.status, m.late_by_ms)).collect();
    use MilestoneStatus::{Late, OnTime};
    assert_eq!(
        rows,
        [
            (Milestone::KickOff, 0, Some(0), OnTime, None),
            (Milestone::Snapshot, 15 * MIN, Some(20 * MIN), Late, Some(5 * MIN)),
            (Milestone::Restore, 30 * MIN, Some(28 * MIN), OnTime, None),
            (Milestone::Verification, 60 * MIN, Some(65 * MIN), Late, Some(5 * MIN)),
            (Milestone::Done, 90 * MIN, Some(65 * MIN), OnTime, None),
        ]
    );
    let snap = &r.milestones[1];
    assert_eq!((snap.planned_clock.as_str(), snap.reached_at.clone()), ("09:15", Some(rfc3339(T0 + 20 * MIN))));
    assert_eq!(snap.summary, "snapshot: +20m, LATE by 5m (plan: backup snapshot taken by 09:15, +15m)");
    let clocks: Vec<&str> = milestones::PLAN.iter().map(|p| p.clock).collect();
    assert_eq!(clocks, ["09:00", "09:15", "09:30", "10:00", "10:30"]);

    let md = markdown(&r);
    assert!(md.contains("## Rehearsal day\n"), "{md}");
    assert!(
        md.contains(&format!(
            "| snapshot | backup snapshot taken | 09:15 (+15m) | {} | +20m | ❌ **late** by 5m |",
            rfc3339(T0 + 20 * MIN)
        )),
        "{md}"
    );
    assert!(
        md.contains("| restore | scenario run: data restored | 09:30 (+30m) |") && md.contains("| +28m | ✅ on time |"),
        "{md}"
    );
    assert!(md.contains("The run has not ended yet (the plan: cleaned up by 11:00, +2h"), "{md}");
    let page = html(&r);
    assert!(page.contains("<tr data-milestone=\"verification\">") && page.contains("late by 5m"), "{page}");
}

#[test]
fn milestones_not_reached_are_shown_so() {
    let mut sim = Sim::of(RB, Mode::Drill);
    sim.succeed("snap", T0 + 10 * MIN);
    sim.fail("redis", "sub-run c0ffee01 (redis-aof) failed: step repair failed", T0 + 12 * MIN);
    let r = Report::of(&sim.view(T0 + 13 * MIN));
    let status: Vec<(Milestone, MilestoneStatus)> = r.milestones.iter().map(|m| (m.name, m.status)).collect();
    use MilestoneStatus::{NotReached, OnTime};
    assert_eq!(
        status,
        [
            (Milestone::KickOff, OnTime),
            (Milestone::Snapshot, OnTime),
            (Milestone::Restore, NotReached),
            (Milestone::Verification, NotReached),
            (Milestone::Done, NotReached),
        ]
    );
    assert_eq!((r.milestones[2].reached_at.clone(), r.milestones[2].offset_ms), (None, None));
    assert!(
        markdown(&r).contains("| restore | scenario run: data restored | 09:30 (+30m) | — | — | **not reached** |")
    );
    assert!(summary(&r).contains("Rehearsal day: 0 milestone(s) late, 3 not reached\n"), "{}", summary(&r));

    // The failed part: no child outputs, its error, no RTO of its own.
    let redis = &r.parts[0];
    assert_eq!((redis.status.as_str(), redis.run_id.as_deref(), redis.child_status.as_deref()), ("failed", None, None));
    assert_eq!(redis.error.as_deref(), Some("sub-run c0ffee01 (redis-aof) failed: step repair failed"));
    assert_eq!((redis.rto.achieved_ms, redis.rto.met), (None, None));
    assert_eq!(r.parts[1].status, "pending");
}

#[test]
fn each_part_has_its_child_run_and_its_own_rto() {
    let r = Report::of(&drill().view(T0 + 80 * MIN));
    let parts: Vec<_> = r
        .parts
        .iter()
        .map(|p| {
            let ids = (p.step.as_str(), p.run_id.as_deref(), p.runbook.as_deref(), p.child_status.as_deref());
            (ids, p.rto.achieved_ms, p.rto.target_ms, p.rto.met)
        })
        .collect();
    assert_eq!(
        parts,
        [
            (
                ("redis", Some("c0ffee01"), Some("redis-aof"), Some("succeeded")),
                Some(240_000),
                Some(300_000),
                Some(true)
            ),
            (("api", Some("c0ffee02"), None, Some("succeeded")), Some(400_000), Some(300_000), Some(false)),
        ]
    );
    assert_eq!(r.parts[0].title, "Redis recovery");
    assert_eq!(r.parts[1].rto.summary, "RTO: 6m40s against a target of 5m (MISSED)");
    let md = markdown(&r);
    assert!(md.contains("## Parts\n"), "{md}");
    assert!(md.contains("| redis | c0ffee01 | redis-aof | succeeded | 4m | 5m | ✅ |"), "{md}");
    assert!(md.contains("| api | c0ffee02 | — | succeeded | 6m40s | 5m | ❌ |"), "{md}");
    assert!(md.contains("\nWhole run: ✅ RTO: 1h5m against a target of 2h (met)\n"), "{md}");
    let page = html(&r);
    assert!(
        page.contains("<tr data-step=\"api\" class=\"missed\"><td>api</td><td><code>c0ffee02</code></td>"),
        "{page}"
    );
    let j: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
    assert_eq!(j["parts"][0]["rto"]["achieved_ms"], 240_000);
    assert_eq!(j["parts"][1]["run_id"], "c0ffee02");
}

#[test]
fn the_summary_is_a_few_lines_with_no_param() {
    let r = Report::of(&drill().view(T0 + 80 * MIN));
    let s = summary(&r);
    let expect = "**Rehearsal report: full outage <drill> & co**\n\
        Run `0123456789abcdef` (drill): **running** — cleanup step put-back failed: AccessDenied on <secret> & co\n\
        ✅ RTO: 1h5m against a target of 2h (met)\n\
        ❔ RPO: not measured (no step of this run tells it)\n\
        Steps: 0 over budget, 1 failed (of 9 steps)\n\
        Parts: ✅ redis 4m/5m, ❌ api 6m40s/5m\n\
        Rehearsal day: 2 milestone(s) late, 0 not reached\n\
        Cleaned up: tidy\n\
        ⚠️ Cleanup not done: ok-delete (waiting), delete (pending), put-back (failed)\n\
        Action items (3):\n\
        1. cleanup not done yet: Approve deleting the restore cluster (ok-delete)\n\
        2. cleanup not done yet: Delete the restore cluster (delete)\n\
        3. cleanup failed: Put the secret back (put-back)\n\
        Full report: `ripcord report 0123456789abcdef --format html -o report.html`\n";
    assert_eq!(s, expect);
    assert!(!s.contains(SECRET));
}

#[test]
fn the_summary_lists_only_the_first_action_items() {
    let mut sim = drill();
    let note = "line one\nline two".to_string();
    sim.input(Input::Approve { step: "ok-delete".into(), by: actor("bob"), note }, T0 + 81 * MIN, Some(actor("bob")));
    sim.input(Input::Abort { by: actor("alice"), reason: "out of time".into() }, T0 + 82 * MIN, Some(actor("alice")));
    let r = Report::of(&sim.view(T0 + 83 * MIN));
    let ids: Vec<&str> = r.action_items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let s = summary(&r);
    assert!(s.contains("Run `0123456789abcdef` (drill): **aborted**"), "{s}");
    assert!(s.contains("Cleaned up: ok-delete, tidy\n"), "{s}");
    assert!(s.contains("3. note by bob (operator) on step ok-delete: line one\n… and 1 more\n"), "{s}");
    assert!(!s.contains("line two"), "{s}");
}

#[test]
fn every_rendering_escapes_marks_cleanup_and_stays_self_contained() {
    let v = drill().view(T0 + 80 * MIN);
    assert!(serde_json::to_string(&v).unwrap().contains(SECRET), "the test view is not redacted");
    let r = Report::of(&v);
    let (md, page, js) = (markdown(&r), html(&r), json(&r));
    for out in [&md, &page, &js, &summary(&r)] {
        assert!(!out.contains(SECRET), "the secret leaked: {out}");
    }

    // Markdown: the section, cleanup marked in the steps and the timeline.
    assert!(md.contains("## What was cleaned up\n\nCleanup runs after recovery and does not count against the RTO.\n"));
    assert!(
        md.contains("- ❌ `put-back` `noop` — put-back (Put the secret back): FAILED: AccessDenied on <secret> & co\n"),
        "{md}"
    );
    assert!(md.contains("- ✅ `tidy` `noop` — tidy (Day-after checklist <filed>): done in 5m\n"), "{md}");
    assert!(md.contains("| tidy | noop | succeeded (cleanup) |"), "{md}");
    assert!(md.lines().any(|l| l.starts_with("tidy ") && l.ends_with("(cleanup, not in the RTO)")), "{md}");

    // HTML: every text escaped, cleanup bars marked, nothing fetched.
    for raw in ["<drill>", "<secret>", "<filed>", "<restore>"] {
        assert!(!page.contains(raw), "{raw} not escaped: {page}");
    }
    assert!(page.contains("<title>Rehearsal report: full outage &lt;drill&gt; &amp; co</title>"), "{page}");
    assert!(page.contains("FAILED: AccessDenied on &lt;secret&gt; &amp; co"), "{page}");
    assert!(page.contains("Day-after checklist &lt;filed&gt;"), "{page}");
    assert!(page.contains("approval by an operator: delete &lt;restore&gt; &amp; go?"), "{page}");
    assert!(page.contains("<li data-step=\"delete\" data-outcome=\"pending\" class=\"missed\">"), "{page}");
    assert_eq!(page.matches("class=\"bar\"").count(), 7, "a bar per step that started: {page}");
    assert_eq!(page.matches("data-cleanup=\"true\"").count(), 3, "put-back, tidy and ok-delete: {page}");
    assert!(page.contains("id=\"cleanup-legend\""), "{page}");
    let urls = page.matches("http://").count() + page.matches("https://").count();
    assert_eq!(urls, page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(), "only the SVG namespace: {page}");
    for external in ["src=", "href=", "<script", "url(", "@import", "<link"] {
        assert!(!page.contains(external), "{external} in {page}");
    }

    // JSON: the new fields, and it reads back.
    let back: Report = serde_json::from_str(&js).unwrap();
    assert_eq!(back, r);
    let j: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(j["format"], 2);
    assert_eq!(j["cleanup"][1]["outcome"], "pending");
    assert_eq!(j["cleanup"][2]["error"], "AccessDenied on <secret> & co");
    assert_eq!(j["milestones"][1]["status"], "late");
    assert_eq!(j["milestones"][1]["late_by_ms"], 5 * MIN);
    assert_eq!(j["action_items"][0]["kind"], "cleanup");
    assert!(j.get("params").is_none());
}

#[test]
fn a_format_1_report_still_reads() {
    let r = Report::of(&drill().view(T0 + 80 * MIN));
    let mut j = serde_json::to_value(&r).unwrap();
    let o = j.as_object_mut().unwrap();
    for field in ["cleanup", "milestones", "parts"] {
        o.remove(field);
    }
    for s in j["steps"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("cleanup");
    }
    let back: Report = serde_json::from_value(j).unwrap();
    assert!(back.cleanup.is_empty() && back.milestones.is_empty() && back.parts.is_empty());
}

/// Drives the run to its end, a minute per move: each running step
/// succeeds (`runbook.run` ones with `outputs(step)`), each approval is
/// given, each checklist item confirmed.
fn drive(sim: &mut Sim, outputs: impl Fn(&str) -> BTreeMap<String, Value>) -> Millis {
    let mut at = T0;
    for _ in 0..200 {
        if sim.state.status.is_finished() {
            return at;
        }
        at += MIN;
        let v = sim.view(at);
        let Some(step) = v.steps.iter().find(|s| matches!(s.status, StepStatus::Running | StepStatus::Waiting)) else {
            panic!("stuck: {:?}", v.steps.iter().map(|s| (&s.id, &s.status)).collect::<Vec<_>>());
        };
        let id = step.id.clone();
        match (&step.status, step.action.as_str()) {
            (StepStatus::Waiting, "approve") => {
                sim.input(Input::Approve { step: id, by: actor("alice"), note: String::new() }, at, None)
            }
            (StepStatus::Waiting, _) => {
                let item = step.checklist.iter().find(|i| i.confirmed.is_none()).map_or(1, |i| i.item as usize);
                sim.input(Input::Confirm { step: id, item, by: actor("alice"), note: String::new() }, at, None)
            }
            _ => sim.succeed_with(&id, outputs(&id), at),
        }
    }
    panic!("the run did not end")
}

#[test]
fn the_q3_full_outage_drill_has_a_part_per_child_run() {
    let text = ripcord_engine::builtin::get("full-outage").expect("the Q3 composite runbook is built in");
    let params = [("project_id", "p1"), ("cluster", "main"), ("health_url", "http://api/health"), ("webhook", SECRET)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::str(v)))
        .collect();
    let mut sim = Sim::with_params(text, Mode::Drill, params);
    let children = [("mongo", 1_500, 1_800), ("redis", 200, 300), ("api", 700, 600)];
    let end = drive(&mut sim, |step| {
        children
            .iter()
            .find(|(s, ..)| *s == step)
            .map(|(s, got, rto)| outputs(&format!("child-{s}"), None, *got, *rto))
            .unwrap_or_default()
    });
    let r = Report::of(&sim.view(end));
    assert_eq!(r.status, RunStatus::Succeeded);

    let parts: Vec<_> =
        r.parts.iter().map(|p| (p.step.as_str(), p.run_id.as_deref(), p.rto.achieved_ms, p.rto.met)).collect();
    assert_eq!(
        parts,
        [
            ("mongo", Some("child-mongo"), Some(1_500_000), Some(true)),
            ("redis", Some("child-redis"), Some(200_000), Some(true)),
            ("api", Some("child-api"), Some(700_000), Some(false)),
        ]
    );
    assert!(r.parts.iter().all(|p| p.runbook.is_none()), "runbook.run's outputs do not name the child runbook");
    assert_eq!(r.parts[0].title, "MongoDB — point-in-time restore (mongo-pitr)");

    let reached: Vec<(Milestone, MilestoneStatus)> = r.milestones.iter().map(|m| (m.name, m.status)).collect();
    use MilestoneStatus::{NotReached, OnTime};
    assert_eq!(
        reached,
        [
            (Milestone::KickOff, OnTime),
            (Milestone::Snapshot, NotReached),
            (Milestone::Restore, OnTime),
            (Milestone::Verification, OnTime),
            (Milestone::Done, OnTime),
        ],
        "the composite claims no snapshot of its own"
    );
    let cleanup: Vec<(&str, CleanupOutcome)> = r.cleanup.iter().map(|c| (c.step.as_str(), c.outcome)).collect();
    assert_eq!(cleanup, [("day-after", CleanupOutcome::Done)]);
    assert!(r.action_items.is_empty(), "{:?}", r.action_items);

    let s = summary(&r);
    assert!(s.contains("Parts: ✅ mongo 25m/30m, ✅ redis 3m20s/5m, ❌ api 11m40s/10m\n"), "{s}");
    assert!(s.contains("Cleaned up: day-after\n") && !s.contains("Cleanup not done"), "{s}");
    for out in [s, markdown(&r), html(&r), json(&r)] {
        assert!(!out.contains(SECRET), "the webhook leaked: {out}");
    }
}
