//! One wake of the scheduler: for each drill whose time came, settle its
//! past occurrences (start, start late, or record missed) and remind the
//! owners of the coming ones. Each step reads the occurrence's record,
//! decides, and writes the decision with a compare-and-swap before acting
//! on it; a swap that loses means another scheduler moved first, so the
//! record is read again.

use super::notice::{self, NoticeKind};
use super::{ACTOR, Error, LOOKAHEAD, LOOKBACK, LaunchError, MAX_SLEEP, Scheduler};
use crate::store::{Delivery, OccurrenceRecord, OccurrenceState, Origin};
use ripcord_engine::clock::Millis;
use ripcord_schedule::{Drill, Occurrence, occurrence_id};
use std::collections::VecDeque;
use std::time::Duration;

/// How many past occurrences one wake walks through at most (a rule that
/// fires every minute, watched for a year, is worked off over several).
const MAX_SCAN: usize = 100_000;
/// Tries of one decision when other writers keep moving the record.
const SWAP_TRIES: usize = 8;
/// Backoff of a launch the launcher was unavailable for: first, cap.
const LAUNCH_BACKOFF: (Millis, Millis) = (5_000, 300_000);
/// Backoff of a message the channel did not take: first, cap; and how many
/// tries before giving up until the next restart.
const TELL_BACKOFF: (Millis, Millis) = (30_000, 3_600_000);
const TELL_TRIES: u32 = 24;

/// What the task knows of one drill between wakes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    /// Every occurrence at or before this instant is settled: final, and
    /// its owners told of it.
    settled: Millis,
    /// When the drill needs looking at again.
    next: Millis,
}

/// A try that failed and when to make the next.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retry {
    tries: u32,
    not_before: Millis,
}

impl Retry {
    fn after(previous: Option<Retry>, now: Millis, (first, cap): (Millis, Millis)) -> Retry {
        let tries = previous.map_or(0, |r| r.tries) + 1;
        let delay = first.saturating_mul(1 << (tries - 1).min(20)).min(cap);
        Retry { tries, not_before: now.saturating_add(delay) }
    }
}

/// Which message of an occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Reminder,
    /// How it ended: missed or refused.
    Outcome,
}

pub(super) fn ms(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl Scheduler {
    /// Looks at every drill whose time came; returns when to wake next.
    pub(super) async fn wake(&mut self) -> Result<Millis, Error> {
        let shared = self.shared.clone();
        let now = (shared.clock)();
        let mut wake = now.saturating_add(ms(MAX_SLEEP));
        for drill in &shared.drills.drills {
            let cursor = match self.drills.get(&drill.name) {
                Some(c) => *c,
                None => {
                    let since = shared.store.watching_since(&drill.name, now)?;
                    Cursor { settled: since.saturating_sub(1), next: now }
                }
            };
            let cursor = if cursor.next <= now { self.drill(drill, cursor.settled, now).await? } else { cursor };
            wake = wake.min(cursor.next);
            self.drills.insert(drill.name.clone(), cursor);
        }
        Ok(wake)
    }

    /// Settles `drill`'s occurrences after `settled` up to `now` and
    /// reminds of those ahead; returns its new cursor.
    async fn drill(&mut self, drill: &Drill, settled: Millis, now: Millis) -> Result<Cursor, Error> {
        let remind = ms(drill.remind_before);
        let mut next = now.saturating_add(ms(MAX_SLEEP));
        let mut past: VecDeque<Occurrence> = VecDeque::new();
        let mut older = 0usize;
        let mut ahead = Vec::new();
        let mut scanned = 0usize;
        for occ in drill.schedule.after(settled) {
            scanned += 1;
            if occ.at <= now {
                if past.len() == LOOKBACK {
                    past.pop_front();
                    older += 1;
                }
                past.push_back(occ);
                if scanned >= MAX_SCAN {
                    break;
                }
            } else {
                next = next.min(occ.at);
                if occ.at.saturating_sub(remind) > now {
                    next = next.min(occ.at.saturating_sub(remind));
                    break;
                }
                if ahead.len() == LOOKAHEAD {
                    break;
                }
                ahead.push(occ);
            }
        }
        if older > 0 {
            tracing::warn!(drill = %drill.name, older, "only the newest {LOOKBACK} past occurrences were looked at");
        }
        let mut new_settled = settled;
        let mut blocked = false;
        for occ in &past {
            match self.settle(drill, occ, now).await? {
                None if !blocked => new_settled = occ.at,
                None => {}
                Some(again) => {
                    blocked = true;
                    next = next.min(again);
                }
            }
        }
        if scanned >= MAX_SCAN && !blocked {
            // More past occurrences than one wake walks through: go on soon.
            next = next.min(now.saturating_add(1));
        }
        for occ in &ahead {
            if let Some(again) = self.remind(drill, occ, now).await? {
                next = next.min(again);
            }
        }
        Ok(Cursor { settled: new_settled, next })
    }

    /// Brings a past occurrence to its end: started (late, within grace),
    /// missed or refused, its owners told. `None` when it is there; else
    /// when to look again.
    async fn settle(&mut self, drill: &Drill, occ: &Occurrence, now: Millis) -> Result<Option<Millis>, Error> {
        let store = self.shared.store.clone();
        let id = occurrence_id(drill, occ);
        let late = now.saturating_sub(occ.at).max(0);
        let in_grace = late <= ms(drill.grace);
        for _ in 0..SWAP_TRIES {
            let current = store.occurrence(&id)?;
            let rec = current.clone().unwrap_or_else(|| {
                OccurrenceRecord::new(id.clone(), drill.name.clone(), occ.at, occ.local.clone(), Origin::Schedule)
            });
            if rec.state.is_final() {
                return self.deliver(drill, rec, Message::Outcome, now).await;
            }
            if !in_grace {
                // Too late to start. A launch that was under way may have
                // started the run before its scheduler died: the driver's
                // store says.
                let mut new = rec.clone();
                new.state = match rec.state {
                    OccurrenceState::Launching { since } if store.run(&id)?.is_some() => OccurrenceState::Started {
                        run_id: id.clone(),
                        at: now,
                        late_ms: since.saturating_sub(occ.at).max(0),
                    },
                    _ => OccurrenceState::Missed { noticed_at: now },
                };
                if matches!(new.state, OccurrenceState::Missed { .. }) {
                    new.notice = Some(Delivery::Pending { since: now });
                }
                if store.swap_occurrence(current.as_ref(), &new)? {
                    self.launch_retry.remove(&id);
                    match &new.state {
                        OccurrenceState::Missed { .. } => {
                            tracing::warn!(drill = %drill.name, run = %id, late_ms = late, "drill occurrence missed")
                        }
                        _ => tracing::info!(drill = %drill.name, run = %id, "drill occurrence found started"),
                    }
                    return self.deliver(drill, new, Message::Outcome, now).await;
                }
                continue;
            }
            if let Some(r) = self.launch_retry.get(&id)
                && r.not_before > now
            {
                return Ok(Some(r.not_before));
            }
            // Say it is being started before starting it.
            let launching = if matches!(rec.state, OccurrenceState::Launching { .. }) {
                rec
            } else {
                let mut new = rec;
                new.state = OccurrenceState::Launching { since: now };
                if !store.swap_occurrence(current.as_ref(), &new)? {
                    continue;
                }
                new
            };
            let result = self.shared.launcher.launch(drill, &id, ACTOR).await;
            let at = (self.shared.clock)();
            let mut new = launching.clone();
            match result {
                Ok(()) | Err(LaunchError::Exists) => {
                    new.state = OccurrenceState::Started { run_id: id.clone(), at, late_ms: late };
                    tracing::info!(
                        drill = %drill.name, run = %id, late_ms = late,
                        existed = result.is_err(), "drill occurrence started"
                    );
                }
                Err(LaunchError::Refused(reason)) => {
                    tracing::warn!(drill = %drill.name, run = %id, %reason, "drill occurrence refused");
                    new.state = OccurrenceState::Refused { at, reason };
                    new.notice = Some(Delivery::Pending { since: at });
                }
                Err(LaunchError::Unavailable(why)) => {
                    let retry = Retry::after(self.launch_retry.get(&id).copied(), now, LAUNCH_BACKOFF);
                    tracing::warn!(
                        drill = %drill.name, run = %id, %why, tries = retry.tries,
                        "drill occurrence could not start; trying again"
                    );
                    self.launch_retry.insert(id, retry);
                    return Ok(Some(retry.not_before));
                }
            }
            self.launch_retry.remove(&id);
            if store.swap_occurrence(Some(&launching), &new)? {
                return self.deliver(drill, new, Message::Outcome, now).await;
            }
            // Someone moved it meanwhile (another scheduler recorded it):
            // read it again; a launch again is answered `Exists`.
        }
        Ok(Some(now.saturating_add(1_000)))
    }

    /// Reminds the owners of a coming occurrence, once. `None` when done;
    /// else when to try again.
    async fn remind(&mut self, drill: &Drill, occ: &Occurrence, now: Millis) -> Result<Option<Millis>, Error> {
        let store = self.shared.store.clone();
        let id = occurrence_id(drill, occ);
        for _ in 0..SWAP_TRIES {
            let current = store.occurrence(&id)?;
            let rec = current.clone().unwrap_or_else(|| {
                OccurrenceRecord::new(id.clone(), drill.name.clone(), occ.at, occ.local.clone(), Origin::Schedule)
            });
            if rec.state != OccurrenceState::Upcoming {
                return Ok(None);
            }
            match rec.reminder {
                Some(Delivery::Sent { .. }) => return Ok(None),
                Some(Delivery::Pending { .. }) => return self.deliver(drill, rec, Message::Reminder, now).await,
                None => {
                    let mut new = rec;
                    new.reminder = Some(Delivery::Pending { since: now });
                    if store.swap_occurrence(current.as_ref(), &new)? {
                        return self.deliver(drill, new, Message::Reminder, now).await;
                    }
                }
            }
        }
        Ok(Some(now.saturating_add(1_000)))
    }

    /// Sends `rec`'s `message` if it is pending, then marks it sent. `None`
    /// when nothing is pending any more; else when to try again.
    async fn deliver(
        &mut self,
        drill: &Drill,
        rec: OccurrenceRecord,
        message: Message,
        now: Millis,
    ) -> Result<Option<Millis>, Error> {
        let slot = |r: &OccurrenceRecord| match message {
            Message::Reminder => r.reminder,
            Message::Outcome => r.notice,
        };
        if !matches!(slot(&rec), Some(Delivery::Pending { .. })) {
            return Ok(None);
        }
        let kind = match (message, &rec.state) {
            (Message::Reminder, _) => notice::reminder(),
            (Message::Outcome, OccurrenceState::Missed { .. }) => NoticeKind::Missed,
            (Message::Outcome, OccurrenceState::Refused { reason, .. }) => {
                NoticeKind::Refused { reason: reason.clone() }
            }
            // Nothing to tell of a started run (the run's own notices do).
            (Message::Outcome, _) => return Ok(None),
        };
        let notice = notice::notice(drill, &rec, kind);
        if let Some(r) = self.tell_retry.get(&notice.key)
            && r.not_before > now
        {
            return Ok(Some(r.not_before));
        }
        if let Err(why) = self.shared.tell.tell(&notice).await {
            let retry = Retry::after(self.tell_retry.get(&notice.key).copied(), now, TELL_BACKOFF);
            self.tell_retry.insert(notice.key.clone(), retry);
            if retry.tries >= TELL_TRIES {
                tracing::error!(
                    drill = %drill.name, key = %notice.key, %why, tries = retry.tries,
                    "owners could not be told; giving up until the coordinator restarts"
                );
                return Ok(Some(Millis::MAX));
            }
            tracing::warn!(drill = %drill.name, key = %notice.key, %why, "owners could not be told; trying again");
            return Ok(Some(retry.not_before));
        }
        self.tell_retry.remove(&notice.key);
        let store = self.shared.store.clone();
        let at = (self.shared.clock)();
        for _ in 0..SWAP_TRIES {
            let Some(current) = store.occurrence(&rec.id)? else { return Ok(None) };
            if !matches!(slot(&current), Some(Delivery::Pending { .. })) {
                return Ok(None);
            }
            let mut new = current.clone();
            match message {
                Message::Reminder => new.reminder = Some(Delivery::Sent { at }),
                Message::Outcome => new.notice = Some(Delivery::Sent { at }),
            }
            if store.swap_occurrence(Some(&current), &new)? {
                tracing::info!(drill = %drill.name, key = %notice.key, "owners told");
                return Ok(None);
            }
        }
        Ok(Some(now.saturating_add(1_000)))
    }
}
