//! What the engine's table tests share: a run under test.
#![allow(dead_code)]

use ripcord_engine::check::check;
use ripcord_engine::run::{
    Effect, EventKind, Input, Mode, NewRun, Rejected, RunState, TimerKind, Transition, apply, start,
};
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use std::collections::BTreeMap;

pub const T0: i64 = 1_800_000_000_000;

/// A run under test: feeds inputs, remembers effects.
pub struct Sim {
    pub rb: Runbook,
    pub state: RunState,
    pub now: i64,
    pub effects: Vec<Effect>,
    pub events: Vec<(EventKind, String)>,
}

impl Sim {
    pub fn new(yaml: &str, params: &[(&str, &str)]) -> Self {
        let rb = check(yaml).unwrap_or_else(|d| panic!("{d:#?}"));
        let params = params.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect();
        Self::start(rb, params, None)
    }

    /// A drill of `yaml` (checked) with `params`.
    pub fn drill(yaml: &str, params: &[(&str, &str)]) -> Self {
        let rb = check(yaml).unwrap_or_else(|d| panic!("{d:#?}"));
        let params = params.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect();
        Self::start_in(Mode::Drill, rb, params, None)
    }

    /// A run of `rb` started at `T0`, its incident at `incident_at` (else `T0`).
    pub fn start(rb: Runbook, params: BTreeMap<String, Value>, incident_at: Option<i64>) -> Self {
        Self::start_in(Mode::Recovery, rb, params, incident_at)
    }

    /// A run in `mode` of `rb` started at `T0`.
    pub fn start_in(mode: Mode, rb: Runbook, params: BTreeMap<String, Value>, incident_at: Option<i64>) -> Self {
        let new = NewRun { id: "run00001abc".into(), mode, params, incident_at };
        let t = start(&rb, new, T0).unwrap();
        let mut sim = Sim { state: t.state.clone(), rb, now: T0, effects: vec![], events: vec![] };
        sim.absorb(t);
        sim
    }

    pub fn absorb(&mut self, t: Transition) {
        self.state = t.state;
        self.effects.extend(t.effects);
        self.events.extend(t.events.into_iter().map(|e| (e.kind, e.message)));
    }

    pub fn feed(&mut self, input: Input) -> Result<(), Rejected> {
        let t = apply(&self.rb, &self.state, &input, self.now)?;
        self.absorb(t);
        Ok(())
    }

    pub fn attempt(&self, step: &str) -> u32 {
        self.state.steps[step].attempt
    }

    pub fn ok(&mut self, step: &str) {
        let attempt = self.attempt(step);
        self.feed(Input::Succeeded { step: step.into(), attempt, outputs: BTreeMap::new() }).unwrap();
    }

    pub fn fail(&mut self, step: &str) {
        let attempt = self.attempt(step);
        self.feed(Input::Failed { step: step.into(), attempt, error: "boom".into() }).unwrap();
    }

    pub fn fire(&mut self, step: &str, kind: TimerKind) {
        let at = self
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Timer { key, kind: k, at } if key.step == step && *k == kind => Some(*at),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind:?} timer for {step}"));
        self.now = self.now.max(at);
        let attempt = self.attempt(step);
        self.feed(Input::Timer { step: step.into(), attempt, kind }).unwrap();
    }

    /// Steps with a Perform effect, in order (with attempt).
    pub fn performed(&self) -> Vec<String> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Perform { key, .. } => Some(format!("{}#{}", key.step, key.attempt)),
                _ => None,
            })
            .collect()
    }

    pub fn status(&self, step: &str) -> &'static str {
        self.state.steps[step].status.name()
    }
}
