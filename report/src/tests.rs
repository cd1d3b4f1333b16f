//! Reports of a run driven through the engine: every figure is checked
//! against the events the run logged.

use super::*;
use ripcord_engine::check::check;
use ripcord_engine::model::{self, ChecklistItem};
use ripcord_engine::run::{Effect, Event, Input, NewRun, RunState, TimerKind, Transition, apply, start};
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use std::collections::BTreeMap;

pub(crate) const T0: Millis = 1_800_000_000_000;
pub(crate) const SECRET: &str = "T0KEN-REPORT-77";

const RB: &str = r#"
id: rep
title: report test
rto: 30m
params:
  hook: {type: string, default: "https://hooks.example/T0KEN-REPORT-77", secret: true}
notify:
  webhook: "{{ params.hook }}"
  on: [run_started, run_finished, over_budget, step_failed]
steps:
  - id: probe
    action: http.check
    with: {url: "http://x/health"}
    budget: 10s
    retry: {attempts: 3, backoff: 1s}
  - id: slow
    needs: [probe]
    action: http.check
    with: {url: "http://x/slow"}
    budget: 5s
  - id: gate
    needs: [slow]
    action: approve
    with: {message: "healthy?"}
  - id: check
    needs: [gate]
    action: checklist
    with:
      items:
        - text: paged the owner
        - text: told <support> & sales
  - id: flaky
    needs: [check]
    action: http.check
    with: {url: "http://x/flaky"}
    on_failure: continue
"#;

pub(crate) fn actor(name: &str) -> Actor {
    Actor { name: name.into(), role: "operator".into() }
}

/// A run driven through the engine: its state, its log and every effect
/// asked for; each notice is delivered at once.
pub(crate) struct Sim {
    rb: Runbook,
    pub(crate) state: RunState,
    events: Vec<LoggedEvent>,
    effects: Vec<Effect>,
}

impl Sim {
    fn new(mode: Mode) -> Sim {
        Sim::of(RB, mode)
    }

    /// A run of runbook `text` started at [`T0`], its incident then too.
    pub(crate) fn of(text: &str, mode: Mode) -> Sim {
        Sim::with_params(text, mode, BTreeMap::new())
    }

    /// A run of runbook `text` with `params`.
    pub(crate) fn with_params(text: &str, mode: Mode, params: BTreeMap<String, Value>) -> Sim {
        let rb = check(text).unwrap_or_else(|d| panic!("{d:?}"));
        let new = NewRun { id: "0123456789abcdef".into(), mode, params, incident_at: Some(T0) };
        let t = start(&rb, new, T0).unwrap();
        let mut sim = Sim { rb, state: t.state.clone(), events: vec![], effects: vec![] };
        sim.take(t, T0, Some(actor("alice")));
        sim
    }

    fn take(&mut self, t: Transition, at: Millis, actor: Option<Actor>) {
        self.state = t.state;
        for e in t.events {
            let seq = self.events.len() as u64;
            self.events.push(LoggedEvent { seq, event: e, actor: actor.clone() });
        }
        let notices: Vec<String> = t
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        self.effects.extend(t.effects);
        for name in notices {
            self.input(Input::Notified { name, error: None, reached: vec![] }, at, None);
        }
    }

    pub(crate) fn input(&mut self, input: Input, at: Millis, actor: Option<Actor>) {
        let t = apply(&self.rb, &self.state, &input, at).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        self.take(t, at, actor);
    }

    fn attempt(&self, step: &str) -> u32 {
        self.state.steps[step].attempt
    }

    pub(crate) fn succeed(&mut self, step: &str, at: Millis) {
        self.succeed_with(step, BTreeMap::new(), at);
    }

    pub(crate) fn succeed_with(&mut self, step: &str, outputs: BTreeMap<String, Value>, at: Millis) {
        let attempt = self.attempt(step);
        self.input(Input::Succeeded { step: step.into(), attempt, outputs }, at, None);
    }

    pub(crate) fn fail(&mut self, step: &str, error: &str, at: Millis) {
        let attempt = self.attempt(step);
        self.input(Input::Failed { step: step.into(), attempt, error: error.into() }, at, None);
    }

    /// Fires the step's latest timer of `kind`.
    fn fire(&mut self, step: &str, kind: TimerKind, at: Millis) {
        let attempt = self
            .effects
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::Timer { key, kind: k, .. } if key.step == step && *k == kind => Some(key.attempt),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind:?} timer for {step}"));
        self.input(Input::Timer { step: step.into(), attempt, kind }, at, None);
    }

    /// The view the coordinator would build (`coordinator/src/view.rs`),
    /// field by field; nothing redacted, so a leak would show.
    pub(crate) fn view(&self, now_ms: Millis) -> RunView {
        let s = &self.state;
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as Millis);
        let handlers = self.rb.handlers();
        let steps = self
            .rb
            .steps
            .iter()
            .map(|def| {
                let st = &s.steps[&def.id];
                let with = Value::from_node(&def.with);
                let checklist = match with.get("items") {
                    Some(Value::List(items)) => items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| ChecklistItem {
                            item: i as u32 + 1,
                            text: item.get("text").map(|t| t.to_string()).unwrap_or_default(),
                            confirmed: st.checklist.get(i).cloned().flatten(),
                            check: st.checks.get(i).cloned().flatten(),
                        })
                        .collect(),
                    _ => vec![],
                };
                StepView {
                    title: def.title.clone(),
                    attempt: st.attempt,
                    max_attempts: def.retry.attempts,
                    needs: def.needs.iter().map(|(n, _)| n.clone()).collect(),
                    budget_ms: ms(def.budget),
                    over_budget: st.over_budget,
                    started_at_ms: st.started_at,
                    finished_at_ms: st.finished_at,
                    error: st.error.clone(),
                    approval: st.approval.clone(),
                    checklist,
                    outputs: st.outputs.clone(),
                    handler: handlers.contains(&def.id.as_str()),
                    triggered: st.triggered,
                    cleanup: def.cleanup,
                    waiting_for: waiting_for(s, def, &with),
                    ..StepView::new(&def.id, &def.action, st.status.clone())
                }
            })
            .collect();
        RunView {
            format: model::FORMAT,
            run_id: s.id.clone(),
            runbook_id: s.runbook_id.clone(),
            title: self.rb.title.clone(),
            description: self.rb.description.clone(),
            source: "rep.yaml".into(),
            mode: s.mode,
            status: s.status,
            started_by: actor("alice"),
            now_ms,
            created_at_ms: s.created_at,
            incident_at_ms: s.incident_at,
            recovered_at_ms: s.recovered_at,
            finished_at_ms: s.finished_at,
            rto_ms: ms(self.rb.rto),
            elapsed_ms: s.recovered_at.or(s.finished_at).unwrap_or(now_ms) - s.incident_at,
            rpo_ms: ms(self.rb.rpo),
            rpo_achieved: ripcord_engine::measure::rpo(&self.rb, s),
            failing: s.failing.clone(),
            params: s.params.clone(),
            steps,
            events: self.events.clone(),
            milestones: model::milestones(s),
            acknowledged: s.acknowledged.clone(),
        }
    }
}

/// What a step waits for, as `coordinator/src/view.rs` words it.
fn waiting_for(s: &RunState, def: &ripcord_engine::runbook::Step, with: &Value) -> Option<String> {
    match (&s.steps[&def.id].status, def.action.as_str()) {
        (StepStatus::Waiting, "approve") => Some(format!(
            "approval by an operator{}",
            with.get("message").map(|m| format!(": {m}")).unwrap_or_default()
        )),
        (StepStatus::Pending, _) => {
            let open: Vec<&str> = def
                .needs
                .iter()
                .filter(|(n, _)| s.steps[n].status != StepStatus::Succeeded)
                .map(|(n, _)| n.as_str())
                .collect();
            (!open.is_empty()).then(|| format!("needs {}", open.join(", ")))
        }
        _ => None,
    }
}

/// The whole run: a retry, an overrun, an approval and a checklist with
/// notes, a failure that lets the run go on.
fn finished_run(mode: Mode) -> Sim {
    let mut sim = Sim::new(mode);
    sim.fail("probe", "connection refused", T0 + 2_000);
    sim.fire("probe", TimerKind::Backoff, T0 + 3_000);
    sim.succeed("probe", T0 + 4_000);
    sim.fire("slow", TimerKind::Budget, T0 + 9_000);
    sim.succeed("slow", T0 + 12_000);
    let note = "the playbook should name the <b>dashboard</b> & its owner".to_string();
    sim.input(Input::Approve { step: "gate".into(), by: actor("alice"), note }, T0 + 20_000, Some(actor("alice")));
    let confirm =
        |item, by: &str, note: &str| Input::Confirm { step: "check".into(), item, by: actor(by), note: note.into() };
    sim.input(confirm(1, "bob", ""), T0 + 21_000, Some(actor("bob")));
    sim.input(confirm(2, "alice", "done"), T0 + 22_000, Some(actor("alice")));
    sim.fail("flaky", "status 503, expected 200", T0 + 25_000);
    assert!(sim.state.status.is_finished(), "{:?}", sim.state.status);
    sim
}

fn events_of<'a>(v: &'a RunView, kind: EventKind, step: &str) -> Vec<&'a Event> {
    v.events.iter().map(|e| &e.event).filter(|e| e.kind == kind && e.step.as_deref() == Some(step)).collect()
}

#[test]
fn the_figures_are_the_ones_the_events_record() {
    let v = finished_run(Mode::Recovery).view(T0 + 60_000);
    let r = Report::of(&v);

    assert_eq!((r.kind, r.title.as_str()), (Kind::Incident, "Incident report: report test"));
    assert_eq!((r.run_id.as_str(), r.status), ("0123456789abcdef", v.status));
    assert_eq!(r.incident_at, rfc3339(T0));
    let recovered = v.events.iter().find(|e| e.event.kind == EventKind::Recovered).expect("a recovered event");
    assert_eq!(r.rto.achieved_ms, recovered.event.facts.since_incident_ms);
    assert_eq!(r.rto.target_ms, recovered.event.facts.rto_ms);
    assert_eq!((r.rto.target_ms, r.rto.met), (Some(1_800_000), Some(true)));
    assert_eq!(r.recovered_at.as_deref(), Some(rfc3339(recovered.event.at).as_str()));
    assert!(r.rto.summary.starts_with("RTO: 25s against a target of 30m (met)"), "{}", r.rto.summary);
    assert_eq!((r.rpo.achieved_ms, r.rpo.met), (None, None));
    assert!(r.rpo.summary.contains("not measured"), "{}", r.rpo.summary);

    for s in &r.steps {
        let ended: Vec<&Event> = [EventKind::StepSucceeded, EventKind::StepFailed]
            .into_iter()
            .flat_map(|k| events_of(&v, k, &s.id))
            .collect();
        let took = ended.last().and_then(|e| e.facts.took_ms);
        assert_eq!(s.duration_ms, took, "{}", s.id);
        assert_eq!(s.finished_at, ended.last().map(|e| rfc3339(e.at)), "{}", s.id);
    }
    let step = |id: &str| r.steps.iter().find(|s| s.id == id).unwrap();
    let probe = step("probe");
    assert_eq!((probe.attempts, probe.retries, probe.duration_ms, probe.over_budget), (2, 1, Some(4_000), false));
    let retrying = events_of(&v, EventKind::StepRetrying, "probe");
    assert_eq!(
        probe.failures,
        [AttemptFailure { attempt: 1, at: rfc3339(retrying[0].at), error: "connection refused".into() }]
    );
    assert_eq!(probe.started_at.as_deref(), Some(rfc3339(T0).as_str()));
    let slow = step("slow");
    assert_eq!((slow.duration_ms, slow.budget_ms, slow.over_budget), (Some(8_000), Some(5_000), true));
    assert_eq!(events_of(&v, EventKind::OverBudget, "slow")[0].facts.budget_ms, slow.budget_ms);
    assert_eq!(slow.offset_ms, Some(4_000));
    let flaky = step("flaky");
    assert_eq!((flaky.status.as_str(), flaky.error.as_deref()), ("failed", Some("status 503, expected 200")));

    let answers: Vec<_> =
        r.answers.iter().map(|a| (a.step.as_str(), a.item, a.by.name.as_str(), a.at.clone())).collect();
    assert_eq!(
        answers,
        [
            ("gate", None, "alice", rfc3339(T0 + 20_000)),
            ("check", Some(1), "bob", rfc3339(T0 + 21_000)),
            ("check", Some(2), "alice", rfc3339(T0 + 22_000)),
        ]
    );

    let notified: Vec<_> = v
        .events
        .iter()
        .filter(|e| e.event.kind == EventKind::Notified)
        .map(|e| (e.event.facts.notice.clone().unwrap(), rfc3339(e.event.at)))
        .collect();
    let sent: Vec<_> = r.notices.iter().map(|n| (n.name.clone(), n.at.clone())).collect();
    assert_eq!(sent, notified);
    let topics: Vec<_> = r.notices.iter().map(|n| (n.topic.as_str(), n.step.as_deref())).collect();
    assert_eq!(
        topics,
        [("run_started", None), ("over_budget", Some("slow")), ("step_failed", Some("flaky")), ("run_finished", None)]
    );

    let items: Vec<_> = r.action_items.iter().map(|a| (a.id.as_str(), a.kind, a.step.as_deref())).collect();
    let approved = events_of(&v, EventKind::Approved, "gate")[0];
    let confirmed =
        v.events.iter().find(|e| e.event.kind == EventKind::Confirmed && e.event.facts.note.as_deref() == Some("done"));
    let (note1, note2) = (
        format!("note:{}", v.events.iter().position(|e| &e.event == approved).unwrap()),
        format!("note:{}", confirmed.unwrap().seq),
    );
    assert_eq!(
        items,
        [
            ("over-budget:slow", ActionKind::OverBudget, Some("slow")),
            ("failed:flaky", ActionKind::Failed, Some("flaky")),
            (note1.as_str(), ActionKind::Note, Some("gate")),
            (note2.as_str(), ActionKind::Note, Some("check")),
        ]
    );
    assert_eq!(r.playbook_changes.len(), r.action_items.len());
    assert!(r.playbook_changes[0].contains("took 8s against a budget of 5s"), "{:?}", r.playbook_changes);
}

#[test]
fn every_rendering_says_it_and_none_holds_the_secret() {
    let v = finished_run(Mode::Recovery).view(T0 + 60_000);
    assert!(serde_json::to_string(&v).unwrap().contains(SECRET), "the test view is not redacted");
    let r = Report::of(&v);
    let (md, page, js) = (markdown(&r), html(&r), json(&r));
    for out in [&md, &page, &js] {
        assert!(!out.contains(SECRET), "the secret leaked: {out}");
    }

    assert!(md.starts_with("# Incident report: report test\n"), "{md}");
    assert!(md.contains(&r.rto.summary) && md.contains("## Playbook changes needed"), "{md}");
    assert!(md.contains("| slow | http.check | succeeded |") && md.contains("OVER BUDGET"), "{md}");
    assert!(md.contains("checklist item 2 \"told <support> & sales\" by alice (operator)"), "{md}");

    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"), "{page}");
    assert_eq!(page.matches("class=\"bar\"").count(), 5, "one bar per step");
    assert_eq!(page.matches("class=\"budget\"").count(), 2, "a box per budget");
    assert!(page.contains("&lt;b&gt;dashboard&lt;/b&gt; &amp; its owner") && !page.contains("<b>dashboard"), "{page}");
    assert!(page.contains("told &lt;support&gt; &amp; sales"), "{page}");
    assert!(!page.contains("src=") && !page.contains("href=") && !page.contains("<script"), "self-contained");

    let back: Report = serde_json::from_str(&js).unwrap();
    assert_eq!(back, r);
    let j: serde_json::Value = serde_json::from_str(&js).unwrap();
    let first = &j["action_items"][0];
    assert_eq!(
        (first["title"].as_str(), first["kind"].as_str()),
        (Some("step slow went over its 5s budget"), Some("over_budget"))
    );
    assert_eq!(first["labels"], serde_json::json!(["ripcord", "rep", "over-budget"]));
}

#[test]
fn a_drill_gets_a_rehearsal_report_and_a_running_step_has_no_duration_yet() {
    let mut sim = Sim::new(Mode::Drill);
    sim.fail("probe", "connection refused", T0 + 2_000);
    sim.fire("probe", TimerKind::Backoff, T0 + 3_000);
    let r = Report::of(&sim.view(T0 + 5_000));
    assert_eq!((r.kind, r.title.as_str()), (Kind::Rehearsal, "Rehearsal report: report test"));
    assert_eq!((r.rto.achieved_ms, r.rto.met), (None, None));
    assert!(r.rto.summary.starts_with("RTO: not achieved yet against a target of 30m"), "{}", r.rto.summary);
    let probe = &r.steps[0];
    assert_eq!((probe.status.as_str(), probe.duration_ms, probe.attempts), ("running", None, 2));
    assert_eq!(r.duration_ms, 5_000);
    assert!(r.action_items.is_empty() && r.playbook_changes.is_empty());
    assert!(markdown(&r).contains("None: every step ran within its budget"));
    assert_eq!(html(&r).matches("class=\"bar\"").count(), 1, "only steps that started have a bar");
}

#[test]
fn formats_are_named_and_a_wrong_one_says_which_exist() {
    assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
    assert_eq!("html".parse::<Format>(), Ok(Format::Html));
    assert_eq!("json".parse::<Format>(), Ok(Format::Json));
    let e = "pdf".parse::<Format>().unwrap_err().to_string();
    assert_eq!(e, "unknown report format \"pdf\" (use md, html or json)");
}
