//! Notices and the run's own timers: what a runbook's `notify:` section
//! turns into effects. A notice is committed with the transition that
//! causes it and delivered once by the coordinator; escalation tiers and
//! "waiting too long" are run-level timers, data that survives restarts.

use super::machine::{Machine, human, ms, note_text};
use super::types::*;
use crate::clock::{Millis, rfc3339};
use crate::escalation::union;

/// How long a person may keep an approval or checklist waiting before the
/// policy's recipients hear of it, unless the policy says.
const DEFAULT_WAITING_MS: u64 = 10 * 60 * 1000;

impl Machine<'_> {
    /// Queues a notice named `name` (unique in the run) about `topic`: to
    /// the runbook's webhook if its `notify:` section sends the topic, and
    /// to the escalation policy's `notices_to` if the policy tells them.
    pub(super) fn announce(&mut self, name: String, topic: Topic, step: Option<&str>, text: String) {
        let to = if self.state.escalation.tells(topic) { self.state.escalation.notices_to.clone() } else { vec![] };
        self.send(name, topic, step, text, to, None);
    }

    /// Queues a notice to the runbook's webhook (if it sends `topic`) and to
    /// `to`, with a pager event for those paged.
    fn send(&mut self, name: String, topic: Topic, step: Option<&str>, text: String, to: Vec<String>, page: Option<Page>) {
        let webhook = match self.rb.notify.as_ref() {
            Some(n) if n.wants(topic) => self.state.notify_webhook.clone(),
            _ => None,
        };
        if webhook.is_none() && to.is_empty() {
            return;
        }
        let s = &self.state;
        let text = format!("[ripcord] {} run {} of {}: {text}", s.mode, s.short_id(), s.runbook_id);
        let notice = Notice { topic, step: step.map(str::to_string), webhook, to, page, text };
        self.effects.push(Effect::Notify { run: self.state.id.clone(), name, notice });
    }

    /// The notice that a run started, and its escalation timers (from the
    /// incident, so a tier already past fires at once).
    pub(super) fn announce_start(&mut self) {
        let incident = rfc3339(self.state.incident_at);
        self.announce("@started".into(), Topic::RunStarted, None, format!("started; incident at {incident}"));
        for (i, tier) in self.state.escalation.tiers.iter().enumerate() {
            let at = self.state.incident_at + Millis::try_from(tier.after_ms).unwrap_or(Millis::MAX / 2);
            let timer = RunTimer::Escalate { tier: i + 1 };
            self.effects.push(Effect::RunTimer { run: self.state.id.clone(), timer, at });
        }
    }

    /// The notice that the run ended, however it ended; those an
    /// escalation tier paged hear it too, and their pagers resolve the
    /// incident. A retried run can end again: the name carries the time.
    pub(super) fn announce_end(&mut self) {
        let status = self.state.status;
        let name = format!("@finished.{}", self.now);
        let rto = match self.state.recovered_at {
            Some(at) => format!("; recovered {} after the incident", human(at - self.state.incident_at)),
            None => String::new(),
        };
        let p = &self.state.escalation;
        let told = if p.tells(Topic::RunFinished) { p.notices_to.as_slice() } else { &[] };
        let to = union(told, &self.state.paged);
        let page = (!self.state.paged.is_empty()).then_some(Page::Resolve);
        self.send(name, Topic::RunFinished, None, format!("{status}{rto}"), to, page);
    }

    /// A step started waiting for a person: announce it if it waits too long.
    /// The runbook's `waiting_longer_than` if it announces waits, else the
    /// policy's.
    pub(super) fn watch_waiting(&mut self, step: &str, attempt: u32) {
        let after = match self.rb.notify.as_ref().filter(|n| n.wants(Topic::Waiting)) {
            Some(n) => ms(n.waiting_longer_than),
            None if self.state.escalation.tells(Topic::Waiting) => {
                let p = self.state.escalation.waiting_longer_than_ms.unwrap_or(DEFAULT_WAITING_MS);
                Millis::try_from(p).unwrap_or(Millis::MAX / 2)
            }
            None => return,
        };
        let at = self.now + after;
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
    /// Those already paged hear it, and their pagers acknowledge the
    /// incident.
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
        self.event_with(None, EventKind::RunAcknowledged, text.clone(), facts);
        let p = &self.state.escalation;
        let told = if p.tells(Topic::Acknowledged) { p.notices_to.as_slice() } else { &[] };
        let to = union(told, &self.state.paged);
        let page = (!self.state.paged.is_empty()).then_some(Page::Acknowledge);
        self.send("@acknowledged".into(), Topic::Acknowledged, None, text, to, page);
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
        let Some(t) = self.state.escalation.tiers.get(tier.wrapping_sub(1)).cloned() else { return };
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
        let page = (!t.to.is_empty()).then_some(Page::Trigger);
        self.state.paged = union(&self.state.paged, &t.to);
        self.send(RunTimer::Escalate { tier }.name(), Topic::Escalation, None, text, t.to, page);
    }

    /// A notice's delivery, for the run's log.
    pub(super) fn notified(&mut self, name: &str, error: Option<&str>, reached: &[String]) {
        let to = if reached.is_empty() { String::new() } else { format!(" to {}", reached.join(", ")) };
        let facts = Facts {
            notice: Some(name.to_string()),
            error: error.map(str::to_string),
            reached: reached.to_vec(),
            ..Facts::default()
        };
        match error {
            None => self.event_with(None, EventKind::Notified, format!("notice {name} sent{to}"), facts),
            Some(e) if reached.is_empty() => {
                self.event_with(None, EventKind::NotifyFailed, format!("notice {name} not sent: {e}"), facts)
            }
            Some(e) => {
                let text = format!("notice {name} sent{to}, not to all: {e}");
                self.event_with(None, EventKind::NotifyFailed, text, facts)
            }
        }
    }
}
