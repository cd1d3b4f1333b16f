//! A drill's occurrences: the instants its rule gives in its time zone, and
//! the run id of each.

use crate::load::{Drill, Schedule};
use chrono::SecondsFormat;
use ripcord_engine::clock::Millis;
use sha2::{Digest, Sha256};

/// One occurrence of a drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// The instant, unix milliseconds (UTC).
    pub at: Millis,
    /// The same instant as local time in the drill's zone, RFC 3339 with
    /// the offset in force then: `2026-12-02T09:00:00+09:00`.
    pub local: String,
}

impl Schedule {
    /// Every occurrence strictly after `after`, in order, lazily.
    pub fn after(&self, after: Millis) -> impl Iterator<Item = Occurrence> + '_ {
        (&self.set)
            .into_iter()
            .map(|t| Occurrence { at: t.timestamp_millis(), local: t.to_rfc3339_opts(SecondsFormat::Secs, false) })
            .skip_while(move |o| o.at <= after)
    }

    /// The first occurrence from the start on.
    pub(crate) fn first(&self) -> Option<Occurrence> {
        self.after(Millis::MIN).next()
    }
}

impl Drill {
    /// The next `count` occurrences strictly after `after`; fewer if the rule
    /// ends (COUNT, UNTIL).
    pub fn occurrences_after(&self, after: Millis, count: usize) -> Vec<Occurrence> {
        self.schedule.after(after).take(count).collect()
    }

    /// The earliest occurrence that may still start at `now`: the first one
    /// no more than `grace` before `now`. When its `at` is not after `now`,
    /// it is due (late, if before `now`); otherwise it is the next one to
    /// wait for. `None` when the rule has ended.
    pub fn next_due(&self, now: Millis) -> Option<Occurrence> {
        let grace = Millis::try_from(self.grace.as_millis()).unwrap_or(Millis::MAX);
        self.schedule.after(now.saturating_sub(grace).saturating_sub(1)).next()
    }
}

/// The run id of `occurrence` of `drill`: 16 hex digits (like the ids of
/// runs started by hand) from a SHA-256 of the drill's name and the
/// occurrence's instant. The same occurrence always gets the same id, so a
/// scheduler that starts it again — after a restart, or racing another —
/// finds the run already there.
pub fn occurrence_id(drill: &Drill, occurrence: &Occurrence) -> String {
    let mut h = Sha256::new();
    h.update(b"ripcord drill occurrence\0");
    h.update(drill.name.as_bytes());
    h.update(b"\0");
    h.update(occurrence.at.to_be_bytes());
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
