//! What the drill scheduler remembers: one record per occurrence it dealt
//! with (by its run id), and per drill the moment a scheduler first watched
//! it. Both carry a `format` number like every stored value.

use super::Error;
use ripcord_engine::clock::Millis;
use serde::{Deserialize, Serialize};

pub(crate) const OCCURRENCE_FORMAT: u32 = 1;
pub(crate) const WATCH_FORMAT: u32 = 1;

/// What became of one drill occurrence, or of one "run now" start, keyed
/// by its run id. Written with [`super::Storage::swap_occurrence`], so two
/// schedulers over one store never both move it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OccurrenceRecord {
    pub format: u32,
    /// The run id: `ripcord_schedule::occurrence_id` for a scheduled
    /// occurrence, the run-now id otherwise.
    pub id: String,
    pub drill: String,
    /// When it was due (for a run-now: when it was asked for).
    pub due_at: Millis,
    /// The same instant in the drill's zone, RFC 3339 with its offset.
    pub due_local: String,
    pub origin: Origin,
    pub state: OccurrenceState,
    /// The owners' reminder before it; `None` until one was due.
    pub reminder: Option<Delivery>,
    /// The owners' notice of how it ended (missed, refused); `None` when
    /// there is nothing to tell.
    pub notice: Option<Delivery>,
}

impl OccurrenceRecord {
    pub fn new(id: String, drill: String, due_at: Millis, due_local: String, origin: Origin) -> Self {
        Self {
            format: OCCURRENCE_FORMAT,
            id,
            drill,
            due_at,
            due_local,
            origin,
            state: OccurrenceState::Upcoming,
            reminder: None,
            notice: None,
        }
    }
}

/// Who asked for the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The drill's schedule.
    Schedule,
    /// An operator, with "run now".
    RunNow { by: String },
}

/// Where an occurrence is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OccurrenceState {
    /// Not due yet (the record is there for its reminder).
    Upcoming,
    /// Due, and a scheduler is starting it (written before the launch, so
    /// a scheduler that dies meanwhile leaves a trace for the next one).
    Launching { since: Millis },
    /// Its run was started (or found already started).
    Started {
        run_id: String,
        /// When the scheduler recorded it.
        at: Millis,
        /// How long after `due_at` it started (0 if on time).
        late_ms: Millis,
    },
    /// Not started within its grace: nobody was there to start it.
    Missed { noticed_at: Millis },
    /// The start was refused (a protected resource, params that no longer fit…).
    Refused { at: Millis, reason: String },
}

impl OccurrenceState {
    /// Started, missed or refused: nothing more will happen to the run.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Started { .. } | Self::Missed { .. } | Self::Refused { .. })
    }
}

/// A message to the owners: written as pending before it is sent, marked
/// sent once the channel took it (a pending one is sent again, with the
/// same idempotency key, after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Delivery {
    Pending { since: Millis },
    Sent { at: Millis },
}

/// The moment a scheduler first watched a drill: occurrences before it are
/// none of the scheduler's business (a new coordinator does not declare a
/// year of them missed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    pub format: u32,
    pub drill: String,
    pub since: Millis,
}

/// A stored occurrence, checked for its format.
pub(crate) fn decode_occurrence(key: &str, v: &[u8]) -> Result<OccurrenceRecord, Error> {
    let rec: OccurrenceRecord =
        serde_json::from_slice(v).map_err(|e| Error::Corrupt { key: key.to_string(), reason: e.to_string() })?;
    if rec.format != OCCURRENCE_FORMAT {
        return Err(Error::Corrupt {
            key: key.to_string(),
            reason: format!("unknown occurrence format {}", rec.format),
        });
    }
    Ok(rec)
}

/// A stored watch record, checked for its format.
pub(crate) fn decode_watch(key: &str, v: &[u8]) -> Result<WatchRecord, Error> {
    let rec: WatchRecord =
        serde_json::from_slice(v).map_err(|e| Error::Corrupt { key: key.to_string(), reason: e.to_string() })?;
    if rec.format != WATCH_FORMAT {
        return Err(Error::Corrupt { key: key.to_string(), reason: format!("unknown watch format {}", rec.format) });
    }
    Ok(rec)
}

/// Newest due first, then by id (so the order is the same in every storage).
pub(crate) fn sort_newest_first(records: &mut [OccurrenceRecord]) {
    records.sort_by(|a, b| b.due_at.cmp(&a.due_at).then_with(|| a.id.cmp(&b.id)));
}
