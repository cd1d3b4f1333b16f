//! The cleanup phase and the rehearsal milestones.
//!
//! Cleanup steps (a runbook's `cleanup:` list) run in drills only: in a
//! recovery they are skipped as soon as the run starts. In a drill they wait
//! until the main phase is over — every main step finished, or the run
//! failing with nothing main still active and no triggered handler pending —
//! and then run by their own `needs`, whether or not the drill failed. A
//! cleanup step runs only if every need succeeded: what did not succeed has
//! nothing to clean up. They never delay recovery (`recovered_at`), but the
//! run ends only once they are done.

use super::machine::Machine;
use super::types::*;
use crate::milestone::Milestone;
use crate::runbook::Step;

/// Whether a pending step may start.
pub(super) enum Gate {
    /// Not yet.
    Wait,
    /// Now.
    Go,
    /// Never: skipped, because of `need` if that is why.
    Skip { reason: String, need: Option<String> },
}

impl Machine<'_> {
    /// Whether the main phase is over: every main step (and triggered
    /// handler) finished, or, with the run failing, none still active and
    /// no triggered handler waiting to start.
    pub(super) fn main_over(&self) -> bool {
        let handlers = self.rb.handlers();
        let mut main = self.rb.steps.iter().filter(|d| !d.cleanup).filter_map(|d| {
            let st = self.state.steps.get(&d.id)?;
            let handler = handlers.contains(&d.id.as_str());
            (!handler || st.triggered).then_some((handler, st))
        });
        if self.state.failing.is_none() {
            return main.all(|(_, st)| st.status.is_terminal());
        }
        main.all(|(handler, st)| {
            let handler_pending = handler && st.status == StepStatus::Pending;
            !(st.status.is_active() || handler_pending)
        })
    }

    /// Whether a pending cleanup step may start. It ignores the main
    /// phase's failure; a need that did not succeed, for any reason, skips it.
    pub(super) fn cleanup_gate(&self, def: &Step, main_over: bool) -> Gate {
        if self.state.mode != Mode::Drill {
            return Gate::Skip { reason: "cleanup runs in drills only".into(), need: None };
        }
        if !main_over {
            return Gate::Wait;
        }
        let mut ready = true;
        for (n, _) in &def.needs {
            let need_is_cleanup = self.rb.step(n).is_some_and(|d| d.cleanup);
            match self.state.steps.get(n).map(|s| &s.status) {
                Some(StepStatus::Succeeded) => {}
                // The main phase is over: a main need that did not succeed
                // never will.
                Some(st) if !need_is_cleanup || st.is_terminal() => {
                    let reason = format!("nothing to clean up: {n} did not succeed");
                    return Gate::Skip { reason, need: Some(n.clone()) };
                }
                _ => ready = false,
            }
        }
        if ready { Gate::Go } else { Gate::Wait }
    }

    /// Records that the run reached `m` (the first time only), with an
    /// event on `step` if a step's success reached it.
    pub(super) fn reach(&mut self, m: Milestone, step: Option<&str>) {
        if self.state.milestones.contains_key(&m) {
            return;
        }
        self.state.milestones.insert(m, self.now);
        let since = self.now - self.state.created_at;
        let facts = Facts { milestone: Some(m), ..Facts::default() };
        let message = format!("milestone {m} reached {} after the start", super::machine::human(since));
        self.event_with(step, EventKind::MilestoneReached, message, facts);
    }
}
