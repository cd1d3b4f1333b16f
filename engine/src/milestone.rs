//! The rehearsal day's milestones (`shared/playbook/SCENARIOS.md`: 09:00
//! kick-off, 09:15 snapshot, 09:30 restore, 10:00 verification, 10:30 done):
//! when a run reached each one. `kick_off` is the run's start and `done` its
//! recovery, unless a step claims it; a step claims the others with
//! `milestone: snapshot` (… `restore`, `verification`, `done`), and its
//! success records the time, once.

use crate::clock::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A milestone, in the order the day reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Milestone {
    /// The run started (recorded automatically).
    KickOff,
    /// A backup snapshot was taken.
    Snapshot,
    /// The data was restored (or repaired).
    Restore,
    /// The data and the service were verified.
    Verification,
    /// Recovered: at the run's recovery unless a step claims it.
    Done,
}

impl Milestone {
    pub const ALL: [Milestone; 5] =
        [Milestone::KickOff, Milestone::Snapshot, Milestone::Restore, Milestone::Verification, Milestone::Done];

    /// The ones a step may claim (`kick_off` is the run's start).
    pub const CLAIMABLE: [Milestone; 4] =
        [Milestone::Snapshot, Milestone::Restore, Milestone::Verification, Milestone::Done];

    pub fn name(self) -> &'static str {
        match self {
            Milestone::KickOff => "kick_off",
            Milestone::Snapshot => "snapshot",
            Milestone::Restore => "restore",
            Milestone::Verification => "verification",
            Milestone::Done => "done",
        }
    }

    /// A step's `milestone:` value, or why it is not one (with a "did you
    /// mean").
    pub fn parse_claim(s: &str) -> Result<Milestone, UnknownMilestone> {
        Self::CLAIMABLE.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownMilestone(s.to_string()))
    }
}

/// A `milestone:` value that names no milestone a step may claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMilestone(pub String);

impl std::error::Error for UnknownMilestone {}

impl fmt::Display for UnknownMilestone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let names = Milestone::CLAIMABLE.map(Milestone::name);
        let why = if s == Milestone::KickOff.name() {
            " (kick_off is recorded when the run starts)".to_string()
        } else {
            crate::hint::closest(s, names).map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default()
        };
        write!(f, "unknown milestone \"{s}\"{why}; expected one of {}", names.join(", "))
    }
}

impl fmt::Display for Milestone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When each milestone was reached, as a run keeps them.
pub type Reached = BTreeMap<Milestone, Millis>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_parse_or_say_what_was_meant() {
        let table: [(&str, Result<Milestone, &str>); 5] = [
            ("restore", Ok(Milestone::Restore)),
            ("done", Ok(Milestone::Done)),
            (
                "verifcation",
                Err(
                    "unknown milestone \"verifcation\" (did you mean \"verification\"?); expected one of snapshot, restore, verification, done",
                ),
            ),
            (
                "kick_off",
                Err(
                    "unknown milestone \"kick_off\" (kick_off is recorded when the run starts); expected one of snapshot, restore, verification, done",
                ),
            ),
            ("lunch", Err("unknown milestone \"lunch\"; expected one of snapshot, restore, verification, done")),
        ];
        for (input, expect) in table {
            assert_eq!(
                Milestone::parse_claim(input).map_err(|e| e.to_string()),
                expect.map_err(str::to_string),
                "{input}"
            );
        }
    }

    #[test]
    fn names_are_the_serde_words_in_day_order() {
        for m in Milestone::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
        assert!(Milestone::ALL.windows(2).all(|w| w[0] < w[1]));
    }
}
