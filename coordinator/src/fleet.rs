//! The fleet: every agent ever seen (persisted in the store) and the live
//! sessions of the connected ones, through which commands are dispatched.
//!
//! A session is one agent stream. At most one session per agent id is live:
//! a new connection with the same id replaces the old one, which is told why
//! (`Goodbye`) and closed. Cleanup of a replaced session never touches the
//! session that replaced it (sessions are told apart by `conn_id`).

use crate::store::{self, AgentRecord, Store};
use ripcord_engine::Selector;
use ripcord_engine::value::Value;
use ripcord_pki::clock::now_ms;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{info, warn};

/// What a session's outgoing stream carries, in domain terms
/// (`grpc::convert` puts it on the wire).
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Welcome {
        coordinator_version: String,
        heartbeat_interval: Duration,
    },
    HeartbeatAck {
        seq: u64,
    },
    Command {
        id: String,
        order: Order,
    },
    /// The session ends, and why (`None`: closed without a reason).
    Goodbye(Option<Farewell>),
}

/// What the coordinator asks an agent to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Ping,
    /// Perform `action` with `args`; the agent gives up after `timeout_ms`
    /// (0: no limit of its own).
    Action {
        action: String,
        args: Value,
        timeout_ms: u64,
    },
}

/// What an agent answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Pong {
        agent_version: String,
    },
    /// An action finished: its outputs and the output it printed (bounded).
    Done {
        outputs: BTreeMap<String, Value>,
        output: String,
    },
    /// The agent refused the command or could not perform it.
    Failed {
        message: String,
    },
    /// An answer that cannot be read (outputs that are not a JSON object).
    Unreadable {
        reason: String,
    },
}

/// What an agent declares when it connects.
#[derive(Debug, Clone)]
pub struct Hello {
    pub agent_id: String,
    pub labels: BTreeMap<String, String>,
    pub version: String,
    pub actions: Vec<String>,
    pub address: String,
}

/// A live connection handed back to the gRPC layer.
pub struct Attached {
    pub conn_id: u64,
    pub outgoing: mpsc::Receiver<Outgoing>,
    /// Fires when the session must end, with the reason the agent is told.
    pub stop: oneshot::Receiver<Farewell>,
}

/// Why the coordinator ends a live session (the agent is told, in `Goodbye`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Farewell {
    /// A newer connection with the same agent id, from `by`, took its place.
    Replaced { by: String },
    /// The coordinator is stopping.
    ShuttingDown,
}

impl std::fmt::Display for Farewell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Farewell::Replaced { by } => write!(f, "replaced by a newer connection from {by}"),
            Farewell::ShuttingDown => f.write_str("coordinator shutting down"),
        }
    }
}

struct Session {
    conn_id: u64,
    tx: mpsc::Sender<Outgoing>,
    pending: HashMap<String, oneshot::Sender<Answer>>,
    stop: Option<oneshot::Sender<Farewell>>,
}

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("not connected")]
    Disconnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection lost before the answer")]
    Lost,
}

/// Why an action sent with [`Fleet::run_action`] got no answer in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("no answer from agent {agent} within {}", ripcord_engine::duration::format(*.within))]
    NoAnswer { agent: String, within: Duration },
    #[error("agent {agent} {why} and did not come back within {}", ripcord_engine::duration::format(*.within))]
    Gone { agent: String, why: DispatchError, within: Duration },
}

/// One agent's answer to a ping.
#[derive(Debug, Clone)]
pub struct PingOutcome {
    pub agent_id: String,
    pub result: Result<(Answer, Duration), DispatchError>,
}

pub struct Fleet {
    store: Store,
    /// What is known of every agent; equal to the store for everything but
    /// `last_seen` of connected agents, which [`Fleet::checkpoint`] persists.
    records: Mutex<BTreeMap<String, AgentRecord>>,
    /// Serialises durable record changes (connect, disconnect) so that the
    /// store and `records` change together, and a change is on disk before
    /// anyone can read it.
    durable: Mutex<()>,
    sessions: Mutex<HashMap<String, Session>>,
    next_conn: AtomicU64,
    next_command: AtomicU64,
    /// Makes command ids unique across coordinator restarts.
    epoch: u64,
    limit: Arc<Semaphore>,
    /// Woken whenever an agent (re)connects.
    connected: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fleet {
    /// Loads the fleet from the store. Every agent starts disconnected: the
    /// connections of a previous coordinator process are gone.
    pub fn load(store: Store, max_concurrent_commands: usize) -> Result<Self, store::Error> {
        let mut records = BTreeMap::new();
        for mut rec in store.agents()? {
            if rec.connected {
                rec.connected = false;
                store.put_agent(&rec)?;
            }
            records.insert(rec.agent_id.clone(), rec);
        }
        Ok(Self {
            store,
            records: Mutex::new(records),
            durable: Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            next_command: AtomicU64::new(1),
            epoch: u64::try_from(now_ms()).unwrap_or(0),
            limit: Arc::new(Semaphore::new(max_concurrent_commands)),
            connected: tokio::sync::Notify::new(),
        })
    }

    /// Writes `rec` to the store and flushes it to disk, then publishes it to
    /// readers. Connects and disconnects are rare; each is worth an fsync.
    fn commit(&self, rec: AgentRecord) {
        let _guard = lock(&self.durable);
        if let Err(e) = self.store.put_agent(&rec).and_then(|()| self.store.flush()) {
            warn!(agent = %rec.agent_id, error = %e, "cannot persist fleet record");
        }
        lock(&self.records).insert(rec.agent_id.clone(), rec);
    }

    /// Registers a new session for `hello.agent_id`, replacing any live one.
    pub fn attach(&self, hello: Hello, queue: usize) -> Attached {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, outgoing) = mpsc::channel(queue);
        let (stop_tx, stop) = oneshot::channel();
        let session = Session { conn_id, tx, pending: HashMap::new(), stop: Some(stop_tx) };
        let old = lock(&self.sessions).insert(hello.agent_id.clone(), session);
        if let Some(mut old) = old {
            info!(agent = %hello.agent_id, old_conn = old.conn_id, new_conn = conn_id, address = %hello.address,
                "agent connection replaced by a newer one");
            if let Some(stop) = old.stop.take() {
                let _ = stop.send(Farewell::Replaced { by: hello.address.clone() });
            }
        }
        let now = now_ms();
        let mut rec = self.get(&hello.agent_id).unwrap_or_else(|| AgentRecord::new(hello.agent_id.clone()));
        if rec.first_seen_unix_ms == 0 {
            rec.first_seen_unix_ms = now;
        }
        rec.labels = hello.labels;
        rec.version = hello.version;
        rec.actions = hello.actions;
        rec.address = hello.address;
        rec.connected = true;
        rec.last_seen_unix_ms = now;
        self.commit(rec.clone());
        info!(agent = %rec.agent_id, conn = conn_id, address = %rec.address, version = %rec.version,
            labels = ?rec.labels, "agent connected");
        self.connected.notify_waiters();
        Attached { conn_id, outgoing, stop }
    }

    /// Whether `conn_id` is still the live session of `agent_id`.
    fn is_current(&self, agent_id: &str, conn_id: u64) -> bool {
        lock(&self.sessions).get(agent_id).is_some_and(|s| s.conn_id == conn_id)
    }

    /// Records that the agent was heard from (in memory; see [`Fleet::checkpoint`]).
    pub fn touch(&self, agent_id: &str, conn_id: u64) {
        if !self.is_current(agent_id, conn_id) {
            return;
        }
        if let Some(rec) = lock(&self.records).get_mut(agent_id) {
            rec.last_seen_unix_ms = now_ms();
        }
    }

    /// Persists `last_seen` of connected agents (called periodically; sled
    /// flushes it in the background).
    pub fn checkpoint(&self) {
        let _guard = lock(&self.durable);
        let connected: Vec<AgentRecord> = lock(&self.records).values().filter(|r| r.connected).cloned().collect();
        for rec in connected {
            if let Err(e) = self.store.put_agent(&rec) {
                warn!(agent = %rec.agent_id, error = %e, "cannot persist fleet record");
            }
        }
    }

    /// Hands an agent's answer to command `command_id` to whoever waits
    /// for it (`None`: a result without an answer in it).
    pub fn deliver(&self, agent_id: &str, conn_id: u64, command_id: &str, answer: Option<Answer>) {
        let waiter = {
            let mut sessions = lock(&self.sessions);
            match sessions.get_mut(agent_id) {
                Some(s) if s.conn_id == conn_id => s.pending.remove(command_id),
                _ => None,
            }
        };
        match (waiter, answer) {
            (Some(w), Some(answer)) => {
                let _ = w.send(answer);
            }
            (None, _) => warn!(agent = %agent_id, command = %command_id, "result for an unknown command"),
            (Some(_), None) => warn!(agent = %agent_id, command = %command_id, "result without an outcome"),
        }
    }

    /// Ends a session. If it was the live one, the agent is marked
    /// disconnected; a replaced session leaves its successor alone.
    pub fn detach(&self, agent_id: &str, conn_id: u64, reason: &str) {
        let removed = {
            let mut sessions = lock(&self.sessions);
            match sessions.get(agent_id) {
                Some(s) if s.conn_id == conn_id => sessions.remove(agent_id),
                _ => None,
            }
        };
        if removed.is_none() {
            return;
        }
        let Some(mut rec) = self.get(agent_id) else { return };
        rec.connected = false;
        {
            let _guard = lock(&self.durable);
            // A new session may have attached since; it owns the record now.
            if lock(&self.sessions).contains_key(agent_id) {
                return;
            }
            if let Err(e) = self.store.put_agent(&rec).and_then(|()| self.store.flush()) {
                warn!(agent = %agent_id, error = %e, "cannot persist fleet record");
            }
            lock(&self.records).insert(agent_id.to_string(), rec);
        }
        info!(agent = %agent_id, conn = conn_id, reason, "agent disconnected");
    }

    /// Asks every live session to end (coordinator shutdown).
    pub fn close_all(&self) {
        for s in lock(&self.sessions).values_mut() {
            if let Some(stop) = s.stop.take() {
                let _ = stop.send(Farewell::ShuttingDown);
            }
        }
    }

    /// Agents whose labels match, sorted by id.
    pub fn list(&self, selector: &Selector) -> Vec<AgentRecord> {
        lock(&self.records).values().filter(|r| selector.matches_map(&r.labels)).cloned().collect()
    }

    pub fn get(&self, agent_id: &str) -> Option<AgentRecord> {
        lock(&self.records).get(agent_id).cloned()
    }

    pub fn connected_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    fn new_command_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}-{}", self.epoch, self.next_command.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends one command to one agent and waits for its outcome.
    pub async fn dispatch(
        &self,
        agent_id: &str,
        order: Order,
        timeout: Duration,
    ) -> Result<(Answer, Duration), DispatchError> {
        let command_id = self.new_command_id("cmd");
        self.dispatch_as(agent_id, command_id, order, timeout).await
    }

    /// Sends an action with a stable command id and waits for its outcome —
    /// through disconnects: when the agent comes back, the same id is sent
    /// again and the agent's journal answers it (or it is still running and
    /// the agent waits for it). Gives up at `timeout`.
    pub async fn run_action(
        &self,
        agent_id: &str,
        command_id: &str,
        order: Order,
        timeout: Duration,
    ) -> Result<Answer, ActionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut announced = false;
        loop {
            let reconnected = self.connected.notified();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.dispatch_as(agent_id, command_id.to_string(), order.clone(), left).await {
                Ok((outcome, _)) => return Ok(outcome),
                Err(DispatchError::Timeout(_)) => {
                    return Err(ActionError::NoAnswer { agent: agent_id.to_string(), within: timeout });
                }
                Err(e @ (DispatchError::Disconnected | DispatchError::Lost)) => {
                    if !announced {
                        warn!(agent = %agent_id, command = %command_id, "agent {e}; waiting for it to come back");
                        announced = true;
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() || tokio::time::timeout(left, reconnected).await.is_err() {
                        return Err(ActionError::Gone { agent: agent_id.to_string(), why: e, within: timeout });
                    }
                }
            }
        }
    }

    /// Output an agent streams while a command runs (kept for debugging; the
    /// bounded copy comes with the result).
    pub fn output(&self, agent_id: &str, command_id: &str, chunk: &str) {
        for line in chunk.lines() {
            tracing::debug!(agent = %agent_id, command = %command_id, "| {line}");
        }
    }

    async fn dispatch_as(
        &self,
        agent_id: &str,
        command_id: String,
        order: Order,
        timeout: Duration,
    ) -> Result<(Answer, Duration), DispatchError> {
        let _permit = self.limit.acquire().await.map_err(|_| DispatchError::Disconnected)?;
        let (answer_tx, answer_rx) = oneshot::channel();
        let tx = {
            let mut sessions = lock(&self.sessions);
            let session = sessions.get_mut(agent_id).ok_or(DispatchError::Disconnected)?;
            session.pending.insert(command_id.clone(), answer_tx);
            session.tx.clone()
        };
        let msg = Outgoing::Command { id: command_id.clone(), order };
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            tx.send(msg).await.map_err(|_| DispatchError::Lost)?;
            answer_rx.await.map_err(|_| DispatchError::Lost)
        })
        .await;
        let result = match outcome {
            Ok(Ok(o)) => Ok((o, started.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DispatchError::Timeout(timeout)),
        };
        if result.is_err()
            && let Some(s) = lock(&self.sessions).get_mut(agent_id)
        {
            s.pending.remove(&command_id);
        }
        result
    }

    /// Pings each agent in `agent_ids` concurrently (bounded by the fleet's
    /// concurrency limit). Results come back sorted by agent id.
    pub async fn ping(self: &Arc<Self>, agent_ids: Vec<String>, timeout: Duration) -> Vec<PingOutcome> {
        let mut tasks = tokio::task::JoinSet::new();
        for agent_id in agent_ids {
            let fleet = Arc::clone(self);
            tasks.spawn(async move {
                let result = fleet.dispatch(&agent_id, Order::Ping, timeout).await;
                PingOutcome { agent_id, result }
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(o) => out.push(o),
                Err(e) => warn!(error = %e, "ping task failed"),
            }
        }
        out.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        out
    }

    /// A sender for the live session `conn_id`, for acks from the reader.
    pub fn sender(&self, agent_id: &str, conn_id: u64) -> Option<mpsc::Sender<Outgoing>> {
        lock(&self.sessions).get(agent_id).filter(|s| s.conn_id == conn_id).map(|s| s.tx.clone())
    }

    pub fn flush(&self) {
        if let Err(e) = self.store.flush() {
            warn!(error = %e, "cannot flush store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: &str, addr: &str) -> Hello {
        Hello {
            agent_id: id.into(),
            labels: [("role".to_string(), "redis".to_string())].into(),
            version: "t".into(),
            actions: vec!["noop".into()],
            address: addr.into(),
        }
    }

    #[tokio::test]
    async fn replacement_keeps_the_new_session_and_tells_the_old_why() {
        let fleet = Arc::new(Fleet::load(Store::temporary().unwrap(), 8).unwrap());
        let first = fleet.attach(hello("a", "10.0.0.1:1"), 8);
        let second = fleet.attach(hello("a", "10.0.0.2:1"), 8);
        assert_eq!(first.stop.await.unwrap(), Farewell::Replaced { by: "10.0.0.2:1".into() });
        // The old session's cleanup must not disconnect the new one.
        fleet.detach("a", first.conn_id, "stream ended");
        assert!(fleet.get("a").unwrap().connected);
        assert_eq!(fleet.connected_count(), 1);
        fleet.detach("a", second.conn_id, "stream ended");
        assert!(!fleet.get("a").unwrap().connected);
    }

    #[tokio::test]
    async fn dispatch_reports_disconnected_timeout_and_answer() {
        let fleet = Arc::new(Fleet::load(Store::temporary().unwrap(), 8).unwrap());
        let ping = || Order::Ping;
        let e = fleet.dispatch("nobody", ping(), Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e, DispatchError::Disconnected);

        let mut a = fleet.attach(hello("a", "x"), 8);
        // Nobody answers: a timeout, not a hang.
        let e = fleet.dispatch("a", ping(), Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e, DispatchError::Timeout(Duration::from_millis(50)));
        let _ = a.outgoing.recv().await;

        let f2 = Arc::clone(&fleet);
        let answerer = tokio::spawn(async move {
            let Some(Outgoing::Command { id, order: Order::Ping }) = a.outgoing.recv().await else {
                panic!("expected a ping");
            };
            f2.deliver("a", a.conn_id, &id, Some(Answer::Pong { agent_version: "t".into() }));
        });
        let (outcome, _rtt) = fleet.dispatch("a", ping(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(outcome, Answer::Pong { agent_version: "t".into() });
        answerer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_action_says_why_it_got_no_answer() {
        let fleet = Arc::new(Fleet::load(Store::memory(), 8).unwrap());
        let within = Duration::from_secs(30);
        let e = fleet.run_action("gone", "k@gone", Order::Ping, within).await.unwrap_err();
        assert_eq!(e, ActionError::Gone { agent: "gone".into(), why: DispatchError::Disconnected, within });
        assert_eq!(e.to_string(), "agent gone not connected and did not come back within 30s");

        let _a = fleet.attach(hello("mute", "x"), 8);
        let e = fleet.run_action("mute", "k@mute", Order::Ping, within).await.unwrap_err();
        assert_eq!(e, ActionError::NoAnswer { agent: "mute".into(), within });
        assert_eq!(e.to_string(), "no answer from agent mute within 30s");
    }

    #[test]
    fn loading_marks_everyone_disconnected() {
        let store = Store::temporary().unwrap();
        let mut rec = AgentRecord::new("a".into());
        rec.connected = true;
        store.put_agent(&rec).unwrap();
        let fleet = Fleet::load(store, 8).unwrap();
        assert!(!fleet.get("a").unwrap().connected);
    }
}
