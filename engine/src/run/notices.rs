//! Notices and the run's own timers: what a runbook's `notify:` section
//! turns into effects. A notice is committed with the transition that
//! causes it and delivered once by the coordinator; escalation tiers and
//! "waiting too long" are run-level timers, data that survives restarts.

use super::machine::{Machine, human, ms, note_text};
use super::types::*;
use crate::clock::rfc3339;

impl Machine<'_> {
    /// Queues a notice named `name` (unique in the run) if the runbook
    /// sends notices about `topic`.
    pub(super) fn announce(&mut self, name: String, topic: Topic, step: Option<&str>, text: String) {
        let Some(n) = self.rb.notify.as_ref().filter(|n| n.wants(topic)) else { return };
        let Some(webhook) = self.state.notify_webhook.clone() else { return };
        debug_assert!(n.wants(topic));
        let s = &self.state;
        let text = format!("[ripcord] {} run {} of {}: {text}", s.mode, s.short_id(), s.runbook_id);
        let notice = Notice { topic, step: step.map(str::to_string), webhook, text };
        self.effects.push(Effect::Notify { run: self.state.id.clone(), name, notice });
    }

    /// The notice that a run started, and its escalation timers (from the
    /// incident, so a tier already past fires at once).
    pub(super) fn announce_start(&mut self) {
        let incident = rfc3339(self.state.incident_at);
        self.announce("@started".into(), Topic::RunStarted, None, format!("started; incident at {incident}"));
        let Some(n) = self.rb.notify.as_ref() else { return };
        for (i, tier) in n.escalate.iter().enumerate() {
            let at = self.state.incident_at + ms(tier.after);
            let timer = RunTimer::Escalate { tier: i + 1 };
            self.effects.push(Effect::RunTimer { run: self.state.id.clone(), timer, at });
        }
    }

    /// The notice that the run ended, however it ended. A retried run can
    /// end again: the name carries the time.
    pub(super) fn announce_end(&mut self) {
        let status = self.state.status;
        let name = format!("@finished.{}", self.now);
        let rto = match self.state.recovered_at {
            Some(at) => format!("; recovered {} after the incident", human(at - self.state.incident_at)),
            None => String::new(),
        };
        self.announce(name, Topic::RunFinished, None, format!("{status}{rto}"));
    }

    /// A step started waiting for a person: announce it if it waits too long.
    pub(super) fn watch_waiting(&mut self, step: &str, attempt: u32) {
        let Some(n) = self.rb.notify.as_ref().filter(|n| n.wants(Topic::Waiting)) else { return };
        let at = self.now + ms(n.waiting_longer_than);
        let timer = RunTimer::Waiting { step: step.to_string(), attempt };
        self.effects.push(Effect::RunTimer { run: self.state.id.clone(), timer, at });
    }

    pub(super) fn run_timer(&mut self, timer: &RunTimer) {
        match timer {
            RunTimer::Escalate { tier } => self.escalate(*tier),
            RunTimer::Waiting { step, attempt } => {
                let waiting = self
                    .state
                    .steps
                    .get(step)
                    .is_some_and(|s| s.attempt == *attempt && s.status == StepStatus::Waiting);
                if !waiting {
                    return;
                }
                let waited = self.state.steps.get(step).and_then(|s| s.started_at).map_or(0, |t| self.now - t);
                let text = format!("has waited for a person for {}", human(waited));
                let facts = Facts { attempt: Some(*attempt), took_ms: Some(waited), ..Facts::default() };
                self.event_with(Some(step), EventKind::StillWaiting, text.clone(), facts);
                let what = match self.rb.step(step).map(|d| d.action.as_str()) {
                    Some("checklist") => "its checklist",
                    _ => "approval",
                };
                self.announce(
                    timer.name(),
                    Topic::Waiting,
                    Some(step),
                    format!("step {step} {text}: `ripcord approve {} {step}` gives it {what}", self.state.id),
                );
            }
        }
    }

    /// Someone took the run on: recorded, and escalation tiers that come
    /// due from now on are not sent (`escalate`). Only a running run, once.
    ///
    /// PagerDuty's `acknowledge` event for the run's incident will hook in
    /// here, as a `Notify`-like effect committed with this transition, once
    /// runs page through PagerDuty.
    pub(super) fn acknowledge(&mut self, by: &Actor, note: &str) -> Result<(), Rejected> {
        let s = &self.state;
        if s.status.is_finished() {
            return Err(Rejected(format!("run {} is already {}", s.id, s.status)));
        }
        if let Some(a) = &s.acknowledged {
            return Err(Rejected(format!("run {} is already acknowledged by {} at {}", s.id, a.by, rfc3339(a.at))));
        }
        self.state.acknowledged = Some(Confirmation { by: by.clone(), note: note.to_string(), at: self.now });
        let facts = Facts { by: Some(by.clone()), note: Some(note.to_string()), ..Facts::default() };
        let text = format!("acknowledged by {by}{}; later escalation tiers are not sent", note_text(note));
        self.event_with(None, EventKind::RunAcknowledged, text, facts);
        Ok(())
    }

    /// Tier `tier` is due: announced only if the run has not recovered, and
    /// recorded as not sent if someone acknowledged the run.
    fn escalate(&mut self, tier: usize) {
        // Recovered, or failed with only a drill's cleanup left: nobody is
        // to be called about the recovery any more.
        if self.state.recovered_at.is_some() || (self.state.failing.is_some() && self.main_over()) {
            return;
        }
        let Some(t) = self.rb.notify.as_ref().and_then(|n| n.escalate.get(tier.wrapping_sub(1))) else { return };
        if let Some(a) = &self.state.acknowledged {
            let text = format!("escalation tier {tier} not sent: the run was acknowledged by {}", a.by);
            let facts = Facts { tier: Some(tier), by: Some(a.by.clone()), ..Facts::default() };
            self.event_with(None, EventKind::EscalationSuppressed, text, facts);
            return;
        }
        let since = self.now - self.state.incident_at;
        let text = format!("escalation tier {tier}: not recovered {} after the incident: {}", human(since), t.text);
        let facts = Facts { tier: Some(tier), since_incident_ms: Some(since), ..Facts::default() };
        self.event_with(None, EventKind::Escalated, text.clone(), facts);
        self.announce(RunTimer::Escalate { tier }.name(), Topic::Escalation, None, text);
    }

    /// A notice's delivery, for the run's log.
    pub(super) fn notified(&mut self, name: &str, error: Option<&str>) {
        let facts = Facts { notice: Some(name.to_string()), error: error.map(str::to_string), ..Facts::default() };
        match error {
            None => self.event_with(None, EventKind::Notified, format!("notice {name} sent"), facts),
            Some(e) => self.event_with(None, EventKind::NotifyFailed, format!("notice {name} not sent: {e}"), facts),
        }
    }
}
