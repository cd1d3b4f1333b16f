//! Durable state: the fleet (one record per agent ever seen), the runs
//! (each an append-only event log, its current state, and the effects
//! committed but not yet acknowledged), and the drill scheduler's
//! occurrences (what became of each, and since when each drill is watched).
//!
//! [`Storage`] is the trait; [`sled::SledStorage`] is the real one and
//! [`memory::MemoryStorage`] the in-memory one for tests, and one
//! conformance suite (`conformance.rs`) runs against both. [`Store`] is the
//! cheap handle the rest of the coordinator holds.
//!
//! Every stored value carries a `format` number, because sled's on-disk
//! format and our record shapes both change over time and an old database
//! must be refused clearly rather than misread.

#[cfg(test)]
pub(crate) mod conformance;
pub mod memory;
mod occurrences;
pub mod sled;

pub use occurrences::{Delivery, OccurrenceRecord, OccurrenceState, Origin, WatchRecord};

use ripcord_engine::clock::Millis;
pub use ripcord_engine::model::LoggedEvent;
use ripcord_engine::run::{Actor, Effect, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const AGENT_FORMAT: u32 = 1;
pub(crate) const RUN_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data directory {dir} is in use by another coordinator (sled lock held)")]
    Locked { dir: PathBuf },
    #[error("cannot open store in {dir}: {source}")]
    Open { dir: PathBuf, source: ::sled::Error },
    #[error("store: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("store record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("store transaction: {0}")]
    Transaction(String),
    /// Only from test storages that fail on purpose.
    #[error("store: {0}")]
    Injected(String),
}

/// What the coordinator remembers about an agent, connected or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub format: u32,
    pub agent_id: String,
    pub labels: BTreeMap<String, String>,
    pub version: String,
    pub actions: Vec<String>,
    pub connected: bool,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub address: String,
}

impl AgentRecord {
    pub fn new(agent_id: String) -> Self {
        Self {
            format: AGENT_FORMAT,
            agent_id,
            labels: BTreeMap::new(),
            version: String::new(),
            actions: Vec::new(),
            connected: false,
            first_seen_unix_ms: 0,
            last_seen_unix_ms: 0,
            address: String::new(),
        }
    }
}

/// A run as stored: the runbook it runs (source text, re-checked on load),
/// its state, and the next event number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: u32,
    /// Where the runbook came from: `builtin:ID` or the file name given.
    pub runbook_source: String,
    pub runbook_text: String,
    pub state: RunState,
    pub started_by: Actor,
    pub next_event: u64,
    /// The environment it runs in (`[environments.NAME]`), if it named one.
    #[serde(default)]
    pub environment: Option<String>,
    /// The run that started it (a `runbook.run` step), if any.
    #[serde(default)]
    pub parent: Option<String>,
}

impl RunRecord {
    pub fn new(runbook_source: String, runbook_text: String, state: RunState, started_by: Actor) -> Self {
        Self {
            format: RUN_FORMAT,
            runbook_source,
            runbook_text,
            state,
            started_by,
            next_event: 0,
            environment: None,
            parent: None,
        }
    }
}

/// The storage name of an effect: unique per run, step, attempt and kind
/// (or per run and name for the run's own timers and notices). Step ids
/// are case-sensitive, and so are these.
pub fn effect_id(e: &Effect) -> String {
    match e {
        Effect::Perform { key, .. } => format!("{}/{}/{}/perform", key.run, key.step, key.attempt),
        Effect::Timer { key, kind, .. } => format!("{}/{}/{}/timer-{}", key.run, key.step, key.attempt, kind.name()),
        Effect::RunTimer { run, timer, .. } => format!("{run}/{}/timer", timer.name()),
        Effect::Notify { run, name, .. } => format!("{run}/{name}/notify"),
    }
}

/// One atomic change to a run.
pub struct Commit<'a> {
    pub record: &'a RunRecord,
    pub events: &'a [LoggedEvent],
    pub new_effects: &'a [Effect],
    /// Effects whose outcome this commit records.
    pub acked: &'a [String],
}

/// What a storage does. Every method is synchronous: sled is, and the
/// driver calls them from its one loop.
pub trait Storage: Send + Sync {
    /// Writes every run's new state, its new events and effects, and
    /// removes the acknowledged effects — all or nothing — and makes it
    /// durable before returning. Nothing the commit asks for is performed
    /// before this returns.
    fn commit(&self, commits: &[Commit<'_>]) -> Result<(), Error>;
    fn run(&self, id: &str) -> Result<Option<RunRecord>, Error>;
    /// Every run, newest first.
    fn runs(&self) -> Result<Vec<RunRecord>, Error>;
    /// A run's events, in order.
    fn events(&self, run_id: &str) -> Result<Vec<LoggedEvent>, Error>;
    /// Effects committed for `run_id` and not yet acknowledged, by id.
    fn pending_effects(&self, run_id: &str) -> Result<Vec<(String, Effect)>, Error>;
    fn put_agent(&self, record: &AgentRecord) -> Result<(), Error>;
    fn agents(&self) -> Result<Vec<AgentRecord>, Error>;
    /// Waits until everything written so far is durable.
    fn flush(&self) -> Result<(), Error>;
    /// Bytes stored for one run: its record, events and pending effects.
    fn bytes_of_run(&self, run_id: &str) -> u64;
    /// Bytes used on disk (for the benchmark); 0 in memory.
    fn size_on_disk(&self) -> u64 {
        0
    }
    /// The record of the occurrence (or run-now start) with this run id.
    fn occurrence(&self, id: &str) -> Result<Option<OccurrenceRecord>, Error>;
    /// Writes `new` in place of `current` (`None`: no record yet) if the
    /// stored record is still exactly `current`, durably before returning
    /// `true`. Returns `false` and changes nothing if someone else wrote it
    /// first: read it again and decide again.
    fn swap_occurrence(&self, current: Option<&OccurrenceRecord>, new: &OccurrenceRecord) -> Result<bool, Error>;
    /// Every occurrence record, newest due first.
    fn occurrences(&self) -> Result<Vec<OccurrenceRecord>, Error>;
    /// Since when `drill` is watched: the stored moment, or `now`, stored
    /// durably, if this is the first time anyone asks. Two callers racing
    /// get the same answer.
    fn watching_since(&self, drill: &str, now: Millis) -> Result<Millis, Error>;
}

/// The coordinator's store: a cheap handle on a [`Storage`].
#[derive(Clone)]
pub struct Store(Arc<dyn Storage>);

impl Store {
    /// Opens (creating if needed) the sled database under `dir/db`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        Ok(Self(Arc::new(sled::SledStorage::open(dir)?)))
    }

    /// A sled database in a temporary file, for tests.
    pub fn temporary() -> Result<Self, Error> {
        Ok(Self(Arc::new(sled::SledStorage::temporary()?)))
    }

    /// An in-memory store, for tests.
    pub fn memory() -> Self {
        Self(Arc::new(memory::MemoryStorage::default()))
    }

    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self(storage)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Storage;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A stored run, checked for its format.
pub(crate) fn decode_run(id: &str, v: &[u8]) -> Result<RunRecord, Error> {
    let rec: RunRecord =
        serde_json::from_slice(v).map_err(|e| Error::Corrupt { key: id.to_string(), reason: e.to_string() })?;
    if rec.format != RUN_FORMAT {
        return Err(Error::Corrupt { key: id.to_string(), reason: format!("unknown run format {}", rec.format) });
    }
    Ok(rec)
}
