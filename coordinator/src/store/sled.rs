//! The sled storage: one tree per kind of record, JSON values.

use super::occurrences::{WATCH_FORMAT, decode_occurrence, decode_watch, sort_newest_first};
use super::{
    AGENT_FORMAT, AgentRecord, Commit, Error, LoggedEvent, OccurrenceRecord, RunRecord, Storage, WatchRecord,
    decode_run, effect_id,
};
use ripcord_engine::clock::Millis;
use ripcord_engine::run::Effect;
use std::path::Path;

const FLEET_TREE: &str = "fleet.v1";
const RUNS_TREE: &str = "runs.v1";
const EVENTS_TREE: &str = "run-events.v1";
const EFFECTS_TREE: &str = "run-effects.v1";
const OCCURRENCES_TREE: &str = "drill-occurrences.v1";
const WATCH_TREE: &str = "drill-watch.v1";

mod erased {
    /// Serialise anything to JSON bytes, errors as text.
    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

fn event_key(run_id: &str, seq: u64) -> Vec<u8> {
    let mut k = format!("{run_id}/").into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The coordinator's sled database.
#[derive(Clone)]
pub struct SledStorage {
    db: sled::Db,
    fleet: sled::Tree,
    runs: sled::Tree,
    events: sled::Tree,
    effects: sled::Tree,
    occurrences: sled::Tree,
    watch: sled::Tree,
}

impl SledStorage {
    /// Opens (creating if needed) the database under `dir/db`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Open { dir: dir.to_path_buf(), source: sled::Error::Io(e) })?;
        // A previous coordinator (or a previous handle in this process) may
        // still be letting go of the lock: give it a moment before refusing.
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new().path(dir.join("db")).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
                {
                    attempts += 1;
                    if attempts >= 30 {
                        return Err(Error::Locked { dir: dir.to_path_buf() });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(source) => return Err(Error::Open { dir: dir.to_path_buf(), source }),
            }
        };
        Self::from_db(db)
    }

    /// An in-memory database for tests.
    pub fn temporary() -> Result<Self, Error> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, Error> {
        let fleet = db.open_tree(FLEET_TREE)?;
        let runs = db.open_tree(RUNS_TREE)?;
        let events = db.open_tree(EVENTS_TREE)?;
        let effects = db.open_tree(EFFECTS_TREE)?;
        let occurrences = db.open_tree(OCCURRENCES_TREE)?;
        let watch = db.open_tree(WATCH_TREE)?;
        Ok(Self { db, fleet, runs, events, effects, occurrences, watch })
    }
}

impl Storage for SledStorage {
    /// Writes a run's new state, its new events and effects, and removes the
    /// acknowledged effects — all or nothing — then flushes to disk. Nothing
    /// the commit asks for is performed before this returns.
    fn commit(&self, commits: &[Commit<'_>]) -> Result<(), Error> {
        use sled::Transactional;
        struct Encoded {
            run_id: String,
            record: Vec<u8>,
            events: Vec<(Vec<u8>, Vec<u8>)>,
            effects: Vec<(String, Vec<u8>)>,
            acked: Vec<String>,
        }
        let json = |key: &str, v: &dyn erased::Json| {
            v.to_json().map_err(|e| Error::Corrupt { key: key.to_string(), reason: e.to_string() })
        };
        let encoded: Vec<Encoded> = commits
            .iter()
            .map(|c| {
                let run_id = c.record.state.id.clone();
                Ok(Encoded {
                    record: json(&run_id, c.record)?,
                    events: c
                        .events
                        .iter()
                        .map(|e| Ok((event_key(&run_id, e.seq), json(&run_id, e)?)))
                        .collect::<Result<_, Error>>()?,
                    effects: c
                        .new_effects
                        .iter()
                        .map(|e| Ok((effect_id(e), json(&run_id, e)?)))
                        .collect::<Result<_, Error>>()?,
                    acked: c.acked.to_vec(),
                    run_id,
                })
            })
            .collect::<Result<_, Error>>()?;
        (&self.runs, &self.events, &self.effects)
            .transaction(|(runs, evs, effs)| {
                for c in &encoded {
                    runs.insert(c.run_id.as_bytes(), c.record.clone())?;
                    for (k, v) in &c.events {
                        evs.insert(k.clone(), v.clone())?;
                    }
                    for id in &c.acked {
                        effs.remove(id.as_bytes())?;
                    }
                    for (k, v) in &c.effects {
                        effs.insert(k.as_bytes(), v.clone())?;
                    }
                }
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| Error::Transaction(format!("{e:?}")))?;
        self.db.flush()?;
        Ok(())
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        self.runs.get(id.as_bytes())?.map(|v| decode_run(id, &v)).transpose()
    }

    /// Every run, newest first.
    fn runs(&self) -> Result<Vec<RunRecord>, Error> {
        let mut out: Vec<RunRecord> = self
            .runs
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_run(&String::from_utf8_lossy(&k), &v)
            })
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|r| std::cmp::Reverse(r.state.created_at));
        Ok(out)
    }

    fn events(&self, run_id: &str) -> Result<Vec<LoggedEvent>, Error> {
        let prefix = format!("{run_id}/");
        self.events
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (_, v) = kv?;
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt { key: run_id.to_string(), reason: e.to_string() })
            })
            .collect()
    }

    /// Effects committed for `run_id` and not yet acknowledged.
    fn pending_effects(&self, run_id: &str) -> Result<Vec<(String, Effect)>, Error> {
        let prefix = format!("{run_id}/");
        self.effects
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8_lossy(&k).into_owned();
                let e = serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt { key: id.clone(), reason: e.to_string() })?;
                Ok((id, e))
            })
            .collect()
    }

    /// Bytes stored for one run: its record, events and pending effects.
    fn bytes_of_run(&self, run_id: &str) -> u64 {
        let prefix = format!("{run_id}/");
        let sum = |t: &sled::Tree| -> u64 {
            t.scan_prefix(prefix.as_bytes()).filter_map(Result::ok).map(|(k, v)| (k.len() + v.len()) as u64).sum()
        };
        let record = self.runs.get(run_id.as_bytes()).ok().flatten().map_or(0, |v| (run_id.len() + v.len()) as u64);
        record + sum(&self.events) + sum(&self.effects)
    }

    /// Bytes sled uses on disk (for the benchmark).
    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn put_agent(&self, record: &AgentRecord) -> Result<(), Error> {
        let value = serde_json::to_vec(record)
            .map_err(|e| Error::Corrupt { key: record.agent_id.clone(), reason: e.to_string() })?;
        self.fleet.insert(record.agent_id.as_bytes(), value)?;
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        self.fleet
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let rec: AgentRecord = serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt { key: key.clone(), reason: e.to_string() })?;
                if rec.format != AGENT_FORMAT {
                    return Err(Error::Corrupt { key, reason: format!("unknown record format {}", rec.format) });
                }
                Ok(rec)
            })
            .collect()
    }

    /// Waits until everything written so far is on disk.
    fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }

    fn occurrence(&self, id: &str) -> Result<Option<OccurrenceRecord>, Error> {
        self.occurrences.get(id.as_bytes())?.map(|v| decode_occurrence(id, &v)).transpose()
    }

    /// Compares decoded records (not bytes), then swaps the very bytes it
    /// read, so a record written by another version of serde_json still
    /// compares equal; flushed before it answers `true`.
    fn swap_occurrence(&self, current: Option<&OccurrenceRecord>, new: &OccurrenceRecord) -> Result<bool, Error> {
        let key = new.id.as_bytes();
        let stored = self.occurrences.get(key)?;
        let same = match (&stored, current) {
            (None, None) => true,
            (Some(v), Some(cur)) => decode_occurrence(&new.id, v)? == *cur,
            _ => false,
        };
        if !same {
            return Ok(false);
        }
        let value =
            serde_json::to_vec(new).map_err(|e| Error::Corrupt { key: new.id.clone(), reason: e.to_string() })?;
        if self.occurrences.compare_and_swap(key, stored, Some(value))?.is_err() {
            return Ok(false);
        }
        self.db.flush()?;
        Ok(true)
    }

    fn occurrences(&self) -> Result<Vec<OccurrenceRecord>, Error> {
        let mut out: Vec<OccurrenceRecord> = self
            .occurrences
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_occurrence(&String::from_utf8_lossy(&k), &v)
            })
            .collect::<Result<_, _>>()?;
        sort_newest_first(&mut out);
        Ok(out)
    }

    fn watching_since(&self, drill: &str, now: Millis) -> Result<Millis, Error> {
        let key = drill.as_bytes();
        if let Some(v) = self.watch.get(key)? {
            return Ok(decode_watch(drill, &v)?.since);
        }
        let rec = WatchRecord { format: WATCH_FORMAT, drill: drill.to_string(), since: now };
        let value =
            serde_json::to_vec(&rec).map_err(|e| Error::Corrupt { key: drill.to_string(), reason: e.to_string() })?;
        match self.watch.compare_and_swap(key, None as Option<&[u8]>, Some(value))? {
            Ok(()) => {
                self.db.flush()?;
                Ok(now)
            }
            // Another scheduler wrote it first: its moment holds.
            Err(e) => match e.current {
                Some(v) => Ok(decode_watch(drill, &v)?.since),
                None => Err(Error::Corrupt { key: drill.to_string(), reason: "watch record vanished".into() }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn agents_survive_reopen_and_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = AgentRecord::new("cache-1".into());
        rec.labels.insert("role".into(), "redis".into());
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_agent(&rec).unwrap();
            store.flush().unwrap();
            let e = Store::open(dir.path()).err().expect("second open must fail");
            assert!(e.to_string().contains("in use"), "{e}");
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.agents().unwrap(), vec![rec]);
    }

    #[test]
    fn occurrences_and_watch_records_survive_reopen() {
        use crate::store::{OccurrenceState, Origin};
        let dir = tempfile::tempdir().unwrap();
        let mut rec = OccurrenceRecord::new(
            "0123456789abcdef".into(),
            "q1".into(),
            100,
            "2027-03-03T09:00:00+09:00".into(),
            Origin::Schedule,
        );
        rec.state = OccurrenceState::Launching { since: 100 };
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.swap_occurrence(None, &rec).unwrap());
            assert_eq!(store.watching_since("q1", 42).unwrap(), 42);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.occurrence(&rec.id).unwrap(), Some(rec.clone()));
        assert_eq!(store.occurrences().unwrap(), vec![rec]);
        assert_eq!(store.watching_since("q1", 99).unwrap(), 42);
    }
}
