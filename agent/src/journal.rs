//! The command journal: command id → outcome, on disk, so that a command
//! repeated after a reconnect or a coordinator restart is answered with its
//! recorded outcome instead of running again.
//!
//! The file is JSON lines, appended and fsynced: a `started` line before an
//! action runs, a `done` line with its outcome after. A command that was
//! started by an earlier agent process and never finished (the agent died
//! under it) is not run again: its outcome is unknown, and a person must
//! look at the host — repeating a half-done destructive action is worse.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::watch;

/// What an action command ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Done { outputs_json: String, output: String },
    Failed { error: String, output: String },
}

#[derive(Serialize, Deserialize)]
struct Line {
    id: String,
    #[serde(flatten)]
    state: State,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum State {
    Started,
    Done { outcome: Outcome },
}

/// What to do with a command id.
pub enum Lookup {
    /// New: run it (the journal has recorded that it started).
    Run(Ticket),
    /// Already finished: answer with this.
    Recorded(Outcome),
    /// Running now in this process: wait for it.
    Running(watch::Receiver<Option<Outcome>>),
    /// Started by an earlier agent process that died under it.
    Interrupted,
}

/// Proof that a command was recorded as started; finish it with [`Journal::finish`].
pub struct Ticket {
    id: String,
    tx: watch::Sender<Option<Outcome>>,
}

pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    states: HashMap<String, State>,
    running: HashMap<String, watch::Receiver<Option<Outcome>>>,
    lines: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("command journal {path}: {reason}")]
pub struct Error {
    pub path: PathBuf,
    pub reason: String,
}

/// Rewrite the file when it holds this many lines.
const COMPACT_AT: usize = 20_000;
/// Keep this many finished commands when compacting.
const KEEP: usize = 5_000;

impl Journal {
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("journal.jsonl");
        let err = |reason: String| Error { path: path.clone(), reason };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let mut states = HashMap::new();
        let mut lines = 0;
        if let Ok(f) = File::open(&path) {
            for line in BufReader::new(f).lines() {
                let line = line.map_err(|e| err(e.to_string()))?;
                // A torn last line (crash mid-write) is ignored.
                if let Ok(l) = serde_json::from_str::<Line>(&line) {
                    states.insert(l.id, l.state);
                    lines += 1;
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| err(e.to_string()))?;
        Ok(Self { path, inner: Mutex::new(Inner { file, states, running: HashMap::new(), lines }) })
    }

    fn append(&self, inner: &mut Inner, line: &Line) -> Result<(), Error> {
        let err = |reason: String| Error { path: self.path.clone(), reason };
        let mut text = serde_json::to_string(line).map_err(|e| err(e.to_string()))?;
        text.push('\n');
        inner.file.write_all(text.as_bytes()).map_err(|e| err(e.to_string()))?;
        inner.file.sync_data().map_err(|e| err(e.to_string()))?;
        inner.lines += 1;
        Ok(())
    }

    pub fn lookup(&self, id: &str) -> Result<Lookup, Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = inner.running.get(id) {
            return Ok(Lookup::Running(rx.clone()));
        }
        match inner.states.get(id) {
            Some(State::Done { outcome }) => return Ok(Lookup::Recorded(outcome.clone())),
            Some(State::Started) => return Ok(Lookup::Interrupted),
            None => {}
        }
        self.append(&mut inner, &Line { id: id.to_string(), state: State::Started })?;
        inner.states.insert(id.to_string(), State::Started);
        let (tx, rx) = watch::channel(None);
        inner.running.insert(id.to_string(), rx);
        Ok(Lookup::Run(Ticket { id: id.to_string(), tx }))
    }

    /// Records the outcome (fsynced) and wakes whoever waits for it.
    pub fn finish(&self, ticket: Ticket, outcome: Outcome) -> Result<(), Error> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let state = State::Done { outcome: outcome.clone() };
        let result = self.append(&mut inner, &Line { id: ticket.id.clone(), state: state.clone() });
        inner.states.insert(ticket.id.clone(), state);
        inner.running.remove(&ticket.id);
        let _ = ticket.tx.send(Some(outcome));
        if inner.lines > COMPACT_AT {
            self.compact(&mut inner);
        }
        result
    }

    /// Rewrites the file with the most recent finished commands and every
    /// unfinished one.
    fn compact(&self, inner: &mut Inner) {
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut done: Vec<(&String, &State)> = inner.states.iter().collect();
        // Ids are not ordered by time; keep unfinished ones and a bounded set.
        done.sort_by_key(|(id, _)| (*id).clone());
        let keep: Vec<(String, State)> = done
            .iter()
            .rev()
            .take(KEEP)
            .map(|(i, s)| ((*i).clone(), (*s).clone()))
            .chain(
                inner.states.iter().filter(|(_, s)| matches!(s, State::Started)).map(|(i, s)| (i.clone(), s.clone())),
            )
            .collect();
        let write = || -> std::io::Result<File> {
            let mut f = File::create(&tmp)?;
            for (id, state) in &keep {
                let line = serde_json::to_string(&Line { id: id.clone(), state: state.clone() }).unwrap_or_default();
                f.write_all(line.as_bytes())?;
                f.write_all(b"\n")?;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            OpenOptions::new().append(true).open(&self.path)
        };
        if let Ok(file) = write() {
            inner.file = file;
            inner.states = keep.into_iter().collect();
            inner.lines = inner.states.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_command_is_answered_from_the_journal_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let Lookup::Run(t) = j.lookup("run/a/1").unwrap() else { panic!("new command must run") };
        assert!(matches!(j.lookup("run/a/1").unwrap(), Lookup::Running(_)));
        let out = Outcome::Done { outputs_json: "{\"keys\":3}".into(), output: "ok".into() };
        j.finish(t, out.clone()).unwrap();
        assert_eq!(
            match j.lookup("run/a/1").unwrap() {
                Lookup::Recorded(o) => o,
                _ => panic!(),
            },
            out
        );
        // Started but never finished, then the agent "restarts".
        let Lookup::Run(_lost) = j.lookup("run/b/1").unwrap() else { panic!() };
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert!(matches!(j.lookup("run/a/1").unwrap(), Lookup::Recorded(o) if o == out));
        assert!(matches!(j.lookup("run/b/1").unwrap(), Lookup::Interrupted));
    }
}
