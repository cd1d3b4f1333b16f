//! A run escalating through the coordinator's policy: tiers to roles that
//! page, the ack and the end reaching those paged, the policy's recipients
//! hearing the other notices, and a runbook's own tiers coming first.

use ripcord_engine::check::check;
use ripcord_engine::escalation::{Policy, Tier};
use ripcord_engine::run::{Actor, Effect, Input, Mode, NewRun, Notice, Page, RunTimer, Topic, start_escalating};
use std::collections::BTreeMap;

mod common;
use common::{Sim, T0};
const MIN: u64 = 60_000;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn playbook() -> Policy {
    Policy {
        tiers: vec![
            Tier { after_ms: 0, to: s(&["on_call"]), text: "on-call".into() },
            Tier { after_ms: 15 * MIN, to: s(&["devops_lead", "backend_lead"]), text: "leads".into() },
            Tier { after_ms: 30 * MIN, to: s(&["cto", "aws"]), text: "cto".into() },
        ],
        notices_to: s(&["on_call"]),
        on: Topic::ALL.into_iter().filter(|t| *t != Topic::Escalation).collect(),
        waiting_longer_than_ms: Some(5 * MIN),
    }
}

fn sim(yaml: &str, policy: Policy) -> Sim {
    let rb = check(yaml).unwrap_or_else(|d| panic!("{d:#?}"));
    let new = NewRun { id: "run00001abc".into(), mode: Mode::Recovery, params: BTreeMap::new(), incident_at: None };
    let t = start_escalating(&rb, new, policy, T0).unwrap();
    let mut sim = Sim { state: t.state.clone(), rb, now: T0, effects: vec![], events: vec![] };
    sim.absorb(t);
    sim
}

const GATE: &str = "id: q\ntitle: q\nsteps:\n  - {id: gate, action: approve}\n";

fn notice(sim: &Sim, name: &str) -> Notice {
    sim.effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify { name: n, notice, .. } if n == name => Some(notice.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no notice {name} in {:?}", sim.effects))
}

fn fire(sim: &mut Sim, tier: usize) {
    let timer = RunTimer::Escalate { tier };
    let at = sim
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::RunTimer { timer: t, at, .. } if *t == timer => Some(*at),
            _ => None,
        })
        .expect("tier timer set");
    sim.now = sim.now.max(at);
    sim.feed(Input::RunTimer { timer }).unwrap();
}

fn approve(sim: &mut Sim) {
    let by = Actor { name: "al".into(), role: "operator".into() };
    sim.feed(Input::Approve { step: "gate".into(), by, note: String::new() }).unwrap();
}

#[test]
fn a_runbook_without_notify_escalates_through_the_policy_and_pages_each_tier() {
    let mut sim = sim(GATE, playbook());
    let started = notice(&sim, "@started");
    assert_eq!((started.to.clone(), started.page, started.webhook.clone()), (s(&["on_call"]), None, None));
    fire(&mut sim, 1);
    let t1 = notice(&sim, "@escalate.1");
    assert_eq!((t1.topic, t1.to.clone(), t1.page), (Topic::Escalation, s(&["on_call"]), Some(Page::Trigger)));
    fire(&mut sim, 2);
    let t2 = notice(&sim, "@escalate.2");
    assert_eq!((t2.to.clone(), t2.page), (s(&["devops_lead", "backend_lead"]), Some(Page::Trigger)));
    assert!(t2.text.contains("escalation tier 2: not recovered 15m") && t2.text.ends_with("leads"), "{}", t2.text);
    assert_eq!(sim.state.paged, s(&["on_call", "devops_lead", "backend_lead"]));
}

#[test]
fn an_ack_acknowledges_the_pages_and_the_end_resolves_them() {
    let mut sim = sim(GATE, playbook());
    fire(&mut sim, 1);
    fire(&mut sim, 2);
    sim.feed(Input::Ack { by: Actor { name: "al".into(), role: "operator".into() }, note: "on it".into() }).unwrap();
    let ack = notice(&sim, "@acknowledged");
    assert_eq!(
        (ack.topic, ack.to.clone(), ack.page),
        (Topic::Acknowledged, s(&["on_call", "devops_lead", "backend_lead"]), Some(Page::Acknowledge))
    );
    fire(&mut sim, 3);
    assert!(!sim.effects.iter().any(|e| matches!(e, Effect::Notify { name, .. } if name == "@escalate.3")));
    assert_eq!(sim.state.paged.len(), 3, "tier 3 paged nobody");
    approve(&mut sim);
    let end = sim
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify { name, notice, .. } if name.starts_with("@finished.") => Some(notice.clone()),
            _ => None,
        })
        .expect("the end is announced");
    assert_eq!((end.to, end.page), (s(&["on_call", "devops_lead", "backend_lead"]), Some(Page::Resolve)));
}

#[test]
fn a_run_that_paged_nobody_ends_without_a_pager_event_and_waits_are_announced_after_the_policys_time() {
    let mut sim = sim(GATE, Policy { tiers: vec![], ..playbook() });
    let waiting = sim
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::RunTimer { timer: RunTimer::Waiting { .. }, at, .. } => Some(*at),
            _ => None,
        })
        .expect("a long wait is watched for the policy's recipients");
    assert_eq!(waiting, T0 + 5 * 60_000);
    approve(&mut sim);
    let end = sim
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify { name, notice, .. } if name.starts_with("@finished.") => Some(notice.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((end.to, end.page), (s(&["on_call"]), None));
}

#[test]
fn a_runbooks_own_tiers_replace_the_policys() {
    let yaml = "id: q\ntitle: q\nparams:\n  hook: { default: \"http://127.0.0.1:9/h\" }\nnotify:\n  webhook: \"{{ params.hook }}\"\n  on: [escalation]\n  escalate:\n    - { after: 5m, to: [dba], text: dba }\nsteps:\n  - {id: gate, action: approve}\n";
    let mut sim = sim(yaml, playbook());
    assert_eq!(sim.state.escalation.tiers.len(), 1);
    fire(&mut sim, 1);
    let t1 = notice(&sim, "@escalate.1");
    assert_eq!((t1.to, t1.page, t1.webhook.as_deref()), (s(&["dba"]), Some(Page::Trigger), Some("http://127.0.0.1:9/h")));
    let started = notice(&sim, "@started");
    assert_eq!((started.to, started.webhook), (s(&["on_call"]), None), "the runbook's webhook takes escalation only");
}
