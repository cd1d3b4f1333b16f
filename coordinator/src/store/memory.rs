//! The in-memory storage: the same contract as sled, for driver tests, and
//! a storage that fails on purpose ([`Failing`]) to test what a failed
//! commit does.

use super::occurrences::sort_newest_first;
use super::{AgentRecord, Commit, Error, LoggedEvent, OccurrenceRecord, RunRecord, Storage, effect_id};
use ripcord_engine::clock::Millis;
use ripcord_engine::run::Effect;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
struct Tables {
    runs: BTreeMap<String, RunRecord>,
    events: BTreeMap<(String, u64), LoggedEvent>,
    effects: BTreeMap<String, Effect>,
    agents: BTreeMap<String, AgentRecord>,
    occurrences: BTreeMap<String, OccurrenceRecord>,
    watch: BTreeMap<String, Millis>,
}

/// Everything in maps behind one lock; a commit holds it throughout, so it
/// is all or nothing to every reader.
#[derive(Default)]
pub struct MemoryStorage {
    tables: Mutex<Tables>,
    commits: AtomicUsize,
}

impl MemoryStorage {
    /// How many commits succeeded (group commit is measured by it).
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn commit(&self, commits: &[Commit<'_>]) -> Result<(), Error> {
        let mut t = self.tables();
        for c in commits {
            let run = c.record.state.id.clone();
            t.runs.insert(run.clone(), c.record.clone());
            for e in c.events {
                t.events.insert((run.clone(), e.seq), e.clone());
            }
            for id in c.acked {
                t.effects.remove(id);
            }
            for e in c.new_effects {
                t.effects.insert(effect_id(e), e.clone());
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        Ok(self.tables().runs.get(id).cloned())
    }

    fn runs(&self) -> Result<Vec<RunRecord>, Error> {
        let mut out: Vec<RunRecord> = self.tables().runs.values().cloned().collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.state.created_at));
        Ok(out)
    }

    fn events(&self, run_id: &str) -> Result<Vec<LoggedEvent>, Error> {
        let t = self.tables();
        Ok(t.events.range((run_id.to_string(), 0)..=(run_id.to_string(), u64::MAX)).map(|(_, e)| e.clone()).collect())
    }

    fn pending_effects(&self, run_id: &str) -> Result<Vec<(String, Effect)>, Error> {
        let t = self.tables();
        Ok(t.effects.iter().filter(|(_, e)| e.run() == run_id).map(|(id, e)| (id.clone(), e.clone())).collect())
    }

    fn put_agent(&self, record: &AgentRecord) -> Result<(), Error> {
        self.tables().agents.insert(record.agent_id.clone(), record.clone());
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        Ok(self.tables().agents.values().cloned().collect())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }

    fn bytes_of_run(&self, run_id: &str) -> u64 {
        let json = |v: &dyn erased_len::Len| v.json_len();
        let t = self.tables();
        let record = t.runs.get(run_id).map_or(0, |r| json(r));
        let events: u64 = t.events.iter().filter(|((r, _), _)| r == run_id).map(|(_, e)| json(e)).sum();
        let effects: u64 = t.effects.values().filter(|e| e.run() == run_id).map(|e| json(e)).sum();
        record + events + effects
    }

    fn occurrence(&self, id: &str) -> Result<Option<OccurrenceRecord>, Error> {
        Ok(self.tables().occurrences.get(id).cloned())
    }

    fn swap_occurrence(&self, current: Option<&OccurrenceRecord>, new: &OccurrenceRecord) -> Result<bool, Error> {
        let mut t = self.tables();
        if t.occurrences.get(&new.id) != current {
            return Ok(false);
        }
        t.occurrences.insert(new.id.clone(), new.clone());
        Ok(true)
    }

    fn occurrences(&self) -> Result<Vec<OccurrenceRecord>, Error> {
        let mut out: Vec<OccurrenceRecord> = self.tables().occurrences.values().cloned().collect();
        sort_newest_first(&mut out);
        Ok(out)
    }

    fn watching_since(&self, drill: &str, now: Millis) -> Result<Millis, Error> {
        Ok(*self.tables().watch.entry(drill.to_string()).or_insert(now))
    }
}

mod erased_len {
    pub trait Len {
        fn json_len(&self) -> u64;
    }
    impl<T: serde::Serialize> Len for T {
        fn json_len(&self) -> u64 {
            serde_json::to_vec(self).map_or(0, |v| v.len() as u64)
        }
    }
}

/// A storage whose `fail_at`-th commit (1-based) and every one after fail,
/// like a disk that filled up.
pub struct Failing<S> {
    inner: S,
    fail_at: usize,
    attempts: AtomicUsize,
}

impl<S: Storage> Failing<S> {
    pub fn new(inner: S, fail_at: usize) -> Self {
        Self { inner, fail_at, attempts: AtomicUsize::new(0) }
    }
}

impl<S: Storage> Storage for Failing<S> {
    fn commit(&self, commits: &[Commit<'_>]) -> Result<(), Error> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.fail_at {
            return Err(Error::Injected(format!("commit {n} failed: no space left on device")));
        }
        self.inner.commit(commits)
    }
    fn run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        self.inner.run(id)
    }
    fn runs(&self) -> Result<Vec<RunRecord>, Error> {
        self.inner.runs()
    }
    fn events(&self, run_id: &str) -> Result<Vec<LoggedEvent>, Error> {
        self.inner.events(run_id)
    }
    fn pending_effects(&self, run_id: &str) -> Result<Vec<(String, Effect)>, Error> {
        self.inner.pending_effects(run_id)
    }
    fn put_agent(&self, record: &AgentRecord) -> Result<(), Error> {
        self.inner.put_agent(record)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>, Error> {
        self.inner.agents()
    }
    fn flush(&self) -> Result<(), Error> {
        self.inner.flush()
    }
    fn bytes_of_run(&self, run_id: &str) -> u64 {
        self.inner.bytes_of_run(run_id)
    }
    fn occurrence(&self, id: &str) -> Result<Option<OccurrenceRecord>, Error> {
        self.inner.occurrence(id)
    }
    fn swap_occurrence(&self, current: Option<&OccurrenceRecord>, new: &OccurrenceRecord) -> Result<bool, Error> {
        self.inner.swap_occurrence(current, new)
    }
    fn occurrences(&self) -> Result<Vec<OccurrenceRecord>, Error> {
        self.inner.occurrences()
    }
    fn watching_since(&self, drill: &str, now: Millis) -> Result<Millis, Error> {
        self.inner.watching_since(drill, now)
    }
}
