//! Durable state in sled. Today: the fleet (one record per agent ever seen).
//!
//! Every value is JSON with a `format` number, because sled's on-disk format
//! and our record shapes both change over time and an old database must be
//! refused clearly rather than misread.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FLEET_TREE: &str = "fleet.v1";
const AGENT_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data directory {dir} is in use by another coordinator (sled lock held)")]
    Locked { dir: PathBuf },
    #[error("cannot open store in {dir}: {source}")]
    Open { dir: PathBuf, source: sled::Error },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record {key}: {reason}")]
    Corrupt { key: String, reason: String },
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

/// The coordinator's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    fleet: sled::Tree,
}

impl Store {
    /// Opens (creating if needed) the database under `dir/db`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Open { dir: dir.to_path_buf(), source: sled::Error::Io(e) })?;
        let db = sled::Config::new().path(dir.join("db")).open().map_err(|source| match &source {
            sled::Error::Io(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") => {
                Error::Locked { dir: dir.to_path_buf() }
            }
            _ => Error::Open { dir: dir.to_path_buf(), source },
        })?;
        Self::from_db(db)
    }

    /// An in-memory database for tests.
    pub fn temporary() -> Result<Self, Error> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, Error> {
        let fleet = db.open_tree(FLEET_TREE)?;
        Ok(Self { db, fleet })
    }

    pub fn put_agent(&self, record: &AgentRecord) -> Result<(), Error> {
        let value = serde_json::to_vec(record)
            .map_err(|e| Error::Corrupt { key: record.agent_id.clone(), reason: e.to_string() })?;
        self.fleet.insert(record.agent_id.as_bytes(), value)?;
        Ok(())
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
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
    pub fn flush(&self) -> Result<(), Error> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
