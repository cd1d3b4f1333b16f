//! Notices and run-level timers, as tables: a runbook's `notify:` section
//! turns run starts and ends, failures, overruns, long waits and
//! escalation tiers into `Effect::Notify`, and escalation and long waits
//! are timers that belong to the run.

use ripcord_engine::check::check;
use ripcord_engine::run::{Actor, Effect, EventKind, Input, RunStatus, RunTimer, TimerKind, Topic};
use ripcord_engine::runbook::Runbook;
use std::collections::BTreeMap;

mod common;
use common::{Sim, T0};
const MIN: i64 = 60_000;

fn runbook(on: &str, steps: &str) -> Runbook {
    let yaml = format!(
        "id: n\ntitle: n\nparams:\n  hook: {{ default: \"http://127.0.0.1:9/h\" }}\nnotify:\n  webhook: \"{{{{ params.hook }}}}\"\n  on: [{on}]\n  waiting_longer_than: 10m\n  escalate:\n    - {{ after: 15m, text: leads }}\n    - {{ after: 30m, text: cto and vendors }}\nsteps:\n{steps}"
    );
    check(&yaml).unwrap_or_else(|d| panic!("{d:#?}"))
}

/// What a notice test reads off a run.
impl Sim {
    /// The notices asked for so far: (name, topic, text).
    fn notices(&self) -> Vec<(String, Topic, String)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify { name, notice, .. } => Some((name.clone(), notice.topic, notice.text.clone())),
                _ => None,
            })
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.notices().into_iter().map(|(n, _, _)| n).collect()
    }

    fn run_timers(&self) -> Vec<(RunTimer, i64)> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::RunTimer { timer, at, .. } => Some((timer.clone(), *at)),
                _ => None,
            })
            .collect()
    }

    fn fire_run_timer(&mut self, timer: RunTimer) {
        let at = self.run_timers().into_iter().find(|(t, _)| *t == timer).expect("timer set").1;
        self.now = self.now.max(at);
        self.feed(Input::RunTimer { timer }).unwrap();
    }
}

const ALL: &str = "run_started, run_finished, step_failed, over_budget, waiting, escalation";
const GATE: &str = "  - {id: gate, action: approve}\n";

#[test]
fn escalation_tiers_are_run_timers_counted_from_the_incident() {
    let sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), Some(T0 - 20 * MIN));
    let tiers: Vec<(RunTimer, i64)> =
        sim.run_timers().into_iter().filter(|(t, _)| matches!(t, RunTimer::Escalate { .. })).collect();
    assert_eq!(
        tiers,
        vec![(RunTimer::Escalate { tier: 1 }, T0 - 5 * MIN), (RunTimer::Escalate { tier: 2 }, T0 + 10 * MIN),],
        "15m and 30m after the incident, not after the start"
    );
    assert_eq!(sim.names(), vec!["@started"]);
}

#[test]
fn a_tier_reached_before_recovery_escalates_once_with_its_text() {
    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), Some(T0 - 20 * MIN));
    sim.fire_run_timer(RunTimer::Escalate { tier: 1 });
    let (name, topic, text) = sim.notices().pop().unwrap();
    assert_eq!((name.as_str(), topic), ("@escalate.1", Topic::Escalation));
    assert!(text.contains("escalation tier 1: not recovered 20m after the incident: leads"), "{text}");
    assert!(sim.events.iter().any(|(k, _)| *k == EventKind::Escalated));
}

#[test]
fn a_tier_due_after_recovery_says_nothing() {
    let mut sim = Sim::start(
        runbook(ALL, "  - {id: a, action: noop}\n  - {id: later, needs: [a], action: noop, after: 24h}\n"),
        BTreeMap::new(),
        None,
    );
    sim.ok("a");
    assert!(sim.state.recovered_at.is_some(), "recovered; the deferred step is not part of the RTO");
    let before = sim.notices().len();
    sim.fire_run_timer(RunTimer::Escalate { tier: 1 });
    assert_eq!(sim.notices().len(), before);
    assert!(!sim.events.iter().any(|(k, _)| *k == EventKind::Escalated));
}

#[test]
fn a_step_over_its_budget_is_an_effect_the_runbook_turns_into_a_notice() {
    let steps = "  - {id: slow, action: noop, budget: 2m}\n";
    for (on, expect) in [(ALL, vec!["@started", "@over-budget.slow"]), ("run_started", vec!["@started"])] {
        let mut sim = Sim::start(runbook(on, steps), BTreeMap::new(), None);
        sim.now += 2 * MIN;
        sim.feed(Input::Timer { step: "slow".into(), attempt: 1, kind: TimerKind::Budget }).unwrap();
        assert_eq!(sim.names(), expect, "on: [{on}]");
        assert!(sim.events.iter().any(|(k, m)| *k == EventKind::OverBudget && m == "over its 2m budget"));
    }
}

#[test]
fn a_person_waited_for_too_long_is_announced_only_while_still_waiting() {
    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), None);
    let waiting = RunTimer::Waiting { step: "gate".into(), attempt: 1 };
    assert!(sim.run_timers().contains(&(waiting.clone(), T0 + 10 * MIN)));
    sim.fire_run_timer(waiting.clone());
    assert_eq!(sim.names(), vec!["@started", "@waiting.gate.1"]);
    assert!(sim.notices()[1].2.contains("step gate has waited for a person for 10m"), "{:?}", sim.notices());

    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), None);
    let by = Actor { name: "al".into(), role: "operator".into() };
    sim.feed(Input::Approve { step: "gate".into(), by, note: String::new() }).unwrap();
    sim.fire_run_timer(waiting);
    assert!(!sim.names().iter().any(|n| n.starts_with("@waiting")), "{:?}", sim.names());
}

#[test]
fn failures_and_the_end_of_the_run_are_announced() {
    let mut sim = Sim::start(runbook(ALL, "  - {id: a, action: noop}\n"), BTreeMap::new(), None);
    let attempt = sim.state.steps["a"].attempt;
    sim.feed(Input::Failed { step: "a".into(), attempt, error: "boom".into() }).unwrap();
    assert_eq!(sim.state.status, RunStatus::Failed);
    let notices = sim.notices();
    let topics: Vec<Topic> = notices.iter().map(|(_, t, _)| *t).collect();
    assert_eq!(topics, vec![Topic::RunStarted, Topic::StepFailed, Topic::RunFinished]);
    assert_eq!(notices[1].0, "@failed.a.1");
    assert!(notices[2].0.starts_with("@finished."), "{notices:?}");
    assert!(notices[2].2.ends_with(": failed"), "{notices:?}");
}

#[test]
fn a_delivery_is_logged_even_after_the_run_ended() {
    let mut sim = Sim::start(runbook(ALL, "  - {id: a, action: noop}\n"), BTreeMap::new(), None);
    sim.ok("a");
    assert_eq!(sim.state.status, RunStatus::Succeeded);
    let finished = sim.names().into_iter().find(|n| n.starts_with("@finished.")).unwrap();
    sim.feed(Input::Notified { name: finished.clone(), error: None, reached: vec![] }).unwrap();
    sim.feed(Input::Notified { name: "@started".into(), error: Some("webhook answered 500".into()), reached: vec![] }).unwrap();
    let tail: Vec<&(EventKind, String)> = sim.events.iter().rev().take(2).collect();
    assert_eq!(tail[1], &(EventKind::Notified, format!("notice {finished} sent")));
    assert_eq!(tail[0], &(EventKind::NotifyFailed, "notice @started not sent: webhook answered 500".to_string()));
}

#[test]
fn a_runbook_without_notify_sends_nothing_and_sets_no_run_timers() {
    let rb = check("id: q\ntitle: q\nsteps:\n  - {id: g, action: approve}\n").unwrap();
    let sim = Sim::start(rb, BTreeMap::new(), None);
    assert!(sim.notices().is_empty() && sim.run_timers().is_empty(), "{:?}", sim.effects);
}

fn al() -> Actor {
    Actor { name: "al".into(), role: "operator".into() }
}

fn ack(sim: &mut Sim, note: &str) -> Result<(), ripcord_engine::run::Rejected> {
    sim.feed(Input::Ack { by: al(), note: note.into() })
}

#[test]
fn an_ack_stops_the_later_tiers_and_the_earlier_ones_were_sent() {
    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), Some(T0 - 20 * MIN));
    sim.fire_run_timer(RunTimer::Escalate { tier: 1 });
    assert_eq!(sim.names(), vec!["@started", "@escalate.1"], "tier 1 came before the ack");

    sim.now = T0 + MIN;
    ack(&mut sim, "on it").unwrap();
    let a = sim.state.acknowledged.clone().expect("recorded in the run");
    assert_eq!((a.by, a.note.as_str(), a.at), (al(), "on it", T0 + MIN));
    assert_eq!(
        sim.events.last().unwrap(),
        &(
            EventKind::RunAcknowledged,
            "acknowledged by al (operator): on it; later escalation tiers are not sent".into()
        )
    );
    assert_eq!(sim.state.status, RunStatus::Running, "an ack changes nothing else");

    // Tier 2's timer still fires: it is recorded as not sent, with its tier.
    let tier2 = RunTimer::Escalate { tier: 2 };
    let at = sim.run_timers().into_iter().find(|(t, _)| *t == tier2).unwrap().1;
    let t = ripcord_engine::run::apply(&sim.rb, &sim.state, &Input::RunTimer { timer: tier2.clone() }, at).unwrap();
    assert!(!t.effects.iter().any(|e| matches!(e, Effect::Notify { .. })), "{:?}", t.effects);
    assert_eq!(t.events.len(), 1, "{:?}", t.events);
    let e = &t.events[0];
    assert_eq!(e.kind, EventKind::EscalationSuppressed);
    assert_eq!(e.message, "escalation tier 2 not sent: the run was acknowledged by al (operator)");
    assert_eq!((e.facts.tier, e.facts.by.clone()), (Some(2), Some(al())));

    sim.fire_run_timer(tier2);
    assert_eq!(sim.names(), vec!["@started", "@escalate.1"], "no tier 2 notice");
    assert!(!sim.events.iter().any(|(k, m)| *k == EventKind::Escalated && m.contains("tier 2")));
}

#[test]
fn after_an_ack_long_waits_and_step_failures_are_still_announced() {
    let steps = "  - {id: gate, action: approve}\n  - {id: a, action: noop}\n";
    let mut sim = Sim::start(runbook(ALL, steps), BTreeMap::new(), None);
    ack(&mut sim, "").unwrap();
    assert_eq!(
        sim.events.last().unwrap().1,
        "acknowledged by al (operator); later escalation tiers are not sent",
        "no note, no colon"
    );
    sim.fire_run_timer(RunTimer::Waiting { step: "gate".into(), attempt: 1 });
    sim.fail("a");
    let names = sim.names();
    assert!(names.contains(&"@waiting.gate.1".to_string()), "{names:?}");
    assert!(names.contains(&"@failed.a.1".to_string()), "{names:?}");
}

#[test]
fn a_second_ack_and_an_ack_of_a_finished_run_are_rejected() {
    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), None);
    sim.now = T0 + MIN;
    ack(&mut sim, "first").unwrap();
    let before = sim.state.clone();
    let id = sim.state.id.clone();
    let err = ack(&mut sim, "second").unwrap_err();
    assert_eq!(err.0, format!("run {id} is already acknowledged by al (operator) at 2027-01-15T08:01:00Z"));
    assert_eq!(sim.state, before, "nothing changes");

    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), None);
    sim.feed(Input::Approve { step: "gate".into(), by: al(), note: String::new() }).unwrap();
    assert_eq!(sim.state.status, RunStatus::Succeeded);
    let err = ack(&mut sim, "").unwrap_err();
    assert_eq!(err.0, format!("run {} is already succeeded", sim.state.id));
    assert!(sim.state.acknowledged.is_none());
}

#[test]
fn a_state_survives_its_json_with_and_without_an_ack() {
    use ripcord_engine::run::RunState;
    let mut sim = Sim::start(runbook(ALL, GATE), BTreeMap::new(), None);
    let plain = serde_json::to_value(&sim.state).unwrap();
    assert!(plain.get("acknowledged").is_none(), "absent when nobody acknowledged: {plain}");
    let back: RunState = serde_json::from_value(plain).unwrap();
    assert_eq!(back, sim.state, "a state stored before acks loads");

    ack(&mut sim, "on it").unwrap();
    let text = serde_json::to_string(&sim.state).unwrap();
    let back: RunState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sim.state);
    assert_eq!(back.acknowledged.unwrap().note, "on it");
}
