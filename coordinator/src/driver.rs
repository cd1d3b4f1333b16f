//! The driver: the one loop that feeds the engine, commits, then acts.
//!
//! Every change to a run goes through here as a message. The loop takes one
//! message and whatever else is already queued, applies each to its run with
//! the pure engine, writes all new states, events and effects to sled in one
//! transaction and flushes it, and only then performs the effects and
//! answers the callers. On start it resumes every unfinished run and
//! performs again, with the same idempotency key, every effect that was
//! committed but never acknowledged (for a finished run: only its notices,
//! such as the one saying it finished).
//!
//! A commit that fails (an I/O error, a full disk) stops the driver with
//! the error; `crate::run` then stops the coordinator, which exits non-zero
//! so that its supervisor restarts it and the runs resume from what was
//! committed.

use crate::integrations::{Outcome, Performer, Request};
use crate::store::{self, Commit, LoggedEvent, RunRecord, Store, effect_id};
use ripcord_engine::clock::Millis;
use ripcord_engine::environment::{self, Environment, Refusal};
use ripcord_engine::run::{self, Actor, Effect, EventKind, Input, NewRun, RunState, Transition};
use crate::escalation::Escalation;
use ripcord_engine::runbook::Runbook;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// Errors callers of [`Runs`] see.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot commit run changes: {0}")]
    Commit(#[source] store::Error),
    /// A start that names its run id found that run already there: the
    /// scheduler's and sub-runs' way of starting something exactly once.
    #[error("run {0} already exists")]
    Exists(String),
    /// A drill that would touch what it may not (a protected environment's
    /// resource, an agent outside its own): nothing was started.
    #[error("{}", refused_text(.0))]
    Refused(Vec<Refusal>),
    #[error("the run driver has stopped")]
    Stopped,
}

/// How a run is started.
pub struct StartRequest {
    /// The run id to use, for starts that must happen exactly once (a
    /// scheduled occurrence, a sub-run): a second start with the same id is
    /// refused with [`Error::Exists`] and changes nothing. `None`: a fresh
    /// random id.
    pub id: Option<String>,
    /// `builtin:ID` or the file name the runbook came from.
    pub source: String,
    pub text: String,
    pub params: std::collections::BTreeMap<String, ripcord_engine::value::Value>,
    pub incident_at: Option<Millis>,
    pub mode: run::Mode,
    pub by: Actor,
    /// The environment it runs in (`[environments.NAME]`): its param
    /// defaults fill in what the request does not give, and a drill may
    /// touch only its agents.
    pub environment: Option<String>,
    /// The run whose `runbook.run` step starts this one.
    pub parent: Option<String>,
}

/// The environments the coordinator declares, and what a drill is checked
/// against besides them.
#[derive(Debug, Default)]
pub struct Environments {
    pub list: Vec<Environment>,
    /// The namespace `k8s.*` steps get when they name none (`[kube]`).
    pub default_namespace: Option<String>,
}

impl Environments {
    pub fn get(&self, name: &str) -> Result<&Environment, Error> {
        self.list.iter().find(|e| e.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.list.iter().map(|e| e.name.as_str()).collect();
            let hint = ripcord_engine::hint::closest(name, names.iter().copied())
                .map(|c| format!(" (did you mean \"{c}\"?)"))
                .unwrap_or_default();
            let declared = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            Error::Invalid(format!(
                "no environment \"{name}\"{hint}; the coordinator's config declares: {declared} ([environments.NAME])"
            ))
        })
    }
}

fn refused_text(refusals: &[Refusal]) -> String {
    let lines: Vec<String> = refusals.iter().map(|r| format!("  {r}")).collect();
    format!("a drill may not touch these, so it was not started (nothing was touched):\n{}", lines.join("\n"))
}

enum Msg {
    Start { req: StartRequest, reply: oneshot::Sender<Result<String, Error>> },
    Check { req: StartRequest, reply: oneshot::Sender<Result<(), Error>> },
    Operate { run_id: String, input: Input, by: Actor, reply: oneshot::Sender<Result<(), Error>> },
    Done { effect: String, run_id: String, input: Input },
}

/// The handle to the driver: start runs, operate on them, read them.
#[derive(Clone)]
pub struct Runs {
    tx: mpsc::Sender<Msg>,
    store: Store,
    /// The id of each run as it finishes (committed).
    finished: tokio::sync::broadcast::Sender<String>,
    /// The id of each run whose change was committed.
    changed: tokio::sync::broadcast::Sender<String>,
}

impl Runs {
    pub async fn start(&self, req: StartRequest) -> Result<String, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Start { req, reply }).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Everything [`Runs::start`] would check (the runbook, params,
    /// credentials, a drill's environment), without starting anything:
    /// `runbook plan --drill --env` gives the verdict a start would.
    pub async fn check(&self, req: StartRequest) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Check { req, reply }).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Approve, confirm, abort or retry.
    pub async fn operate(&self, run_id: &str, input: Input, by: Actor) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Operate { run_id: run_id.to_string(), input, by, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// A run by id or unique id prefix.
    pub fn get(&self, id: &str) -> Result<RunRecord, Error> {
        if let Some(r) = self.store.run(id)? {
            return Ok(r);
        }
        let matches: Vec<RunRecord> = self.store.runs()?.into_iter().filter(|r| r.state.id.starts_with(id)).collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(Error::NotFound(format!("no run \"{id}\""))),
            n => Err(Error::Invalid(format!("\"{id}\" matches {n} runs; give more of the id"))),
        }
    }

    /// The id of each run as it finishes, from now on.
    pub fn subscribe_finished(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.finished.subscribe()
    }

    /// The run `id` once it has finished (at once if it has).
    pub async fn finished(&self, id: &str) -> Result<RunRecord, Error> {
        self.until(id, |r| r.state.status.is_finished()).await
    }

    /// The run `id` once `pred` holds for it as committed (at once if it
    /// does): woken by every commit of that run.
    pub async fn until(&self, id: &str, pred: impl Fn(&RunRecord) -> bool) -> Result<RunRecord, Error> {
        let mut rx = self.changed.subscribe();
        // Bounded by the commits that happen meanwhile; each wake rechecks the store.
        loop {
            let record = self.store.run(id)?.ok_or_else(|| Error::NotFound(format!("no run \"{id}\"")))?;
            if pred(&record) {
                return Ok(record);
            }
            loop {
                match rx.recv().await {
                    Ok(changed) if changed == id => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Err(Error::Stopped),
                }
            }
        }
    }

    pub fn list(&self) -> Result<Vec<RunRecord>, Error> {
        Ok(self.store.runs()?)
    }

    pub fn events(&self, run_id: &str) -> Result<Vec<LoggedEvent>, Error> {
        Ok(self.store.events(run_id)?)
    }
}

/// A run the driver holds in memory.
struct Live {
    rb: Arc<Runbook>,
    record: RunRecord,
}

pub struct Driver {
    store: Store,
    performer: Arc<dyn Performer>,
    rx: mpsc::Receiver<Msg>,
    tx: mpsc::WeakSender<Msg>,
    live: HashMap<String, Live>,
    clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    environments: Arc<Environments>,
    escalation: Arc<Escalation>,
    finished: tokio::sync::broadcast::Sender<String>,
    changed: tokio::sync::broadcast::Sender<String>,
}

/// What one batch will commit and then do.
#[derive(Default)]
struct Batch {
    records: HashMap<String, RunRecord>,
    events: Vec<(String, LoggedEvent)>,
    effects: Vec<Effect>,
    acked: Vec<String>,
    replies: Vec<Box<dyn FnOnce(bool) + Send>>,
}

impl Driver {
    /// Creates the driver and its handle. Call [`Driver::run`] to start it.
    pub fn new(
        store: Store,
        performer: Arc<dyn Performer>,
        clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    ) -> (Self, Runs) {
        let (tx, rx) = mpsc::channel(4096);
        let (finished, _) = tokio::sync::broadcast::channel(256);
        let (changed, _) = tokio::sync::broadcast::channel(1024);
        let runs = Runs { tx: tx.clone(), store: store.clone(), finished: finished.clone(), changed: changed.clone() };
        let (environments, escalation) = (Arc::default(), Arc::default());
        let live = HashMap::new();
        let weak = tx.downgrade();
        let driver =
            Driver { store, performer, rx, tx: weak, live, clock, environments, escalation, finished, changed };
        // The handles keep the channel open; the driver only holds a weak sender.
        drop(tx);
        (driver, runs)
    }

    /// The environments runs may name.
    pub fn with_environments(mut self, environments: Arc<Environments>) -> Self {
        self.environments = environments;
        self
    }

    /// The escalation policies new runs follow.
    pub fn with_escalation(mut self, escalation: Arc<Escalation>) -> Self {
        self.escalation = escalation;
        self
    }

    /// Resumes unfinished runs, then serves messages until every handle is gone.
    pub async fn run(mut self) -> Result<(), Error> {
        self.resume()?;
        while let Some(first) = self.rx.recv().await {
            let mut batch = Batch::default();
            self.handle(first, &mut batch);
            // Group commit: take what is already waiting, up to a bound.
            for _ in 0..256 {
                match self.rx.try_recv() {
                    Ok(m) => self.handle(m, &mut batch),
                    Err(_) => break,
                }
            }
            self.flush(batch)?;
        }
        Ok(())
    }

    fn now(&self) -> Millis {
        (self.clock)()
    }

    /// Loads every unfinished run and re-performs its unacknowledged effects.
    fn resume(&mut self) -> Result<(), Error> {
        let mut resumed = 0;
        for record in self.store.runs()? {
            let pending = self.store.pending_effects(&record.state.id)?;
            if record.state.status.is_finished() {
                // Its notices still go out; its timers and actions are moot.
                let (notices, moot): (Vec<_>, Vec<_>) =
                    pending.into_iter().partition(|(_, e)| matches!(e, Effect::Notify { .. }));
                if !moot.is_empty() {
                    let ids: Vec<String> = moot.into_iter().map(|(id, _)| id).collect();
                    self.store.commit(&[Commit { record: &record, events: &[], new_effects: &[], acked: &ids }])?;
                }
                for (id, effect) in notices {
                    self.perform(id, effect);
                }
                continue;
            }
            let rb = match ripcord_engine::check::check(&record.runbook_text) {
                Ok(rb) => Arc::new(rb),
                Err(d) => {
                    error!(run = %record.state.id, "stored runbook no longer loads: {}", d.first().map(|d| d.to_string()).unwrap_or_default());
                    continue;
                }
            };
            info!(run = %record.state.id, runbook = %record.state.runbook_id, effects = pending.len(), "resuming run");
            let id = record.state.id.clone();
            self.live.insert(id, Live { rb, record });
            for (id, effect) in pending {
                self.perform(id, effect);
            }
            resumed += 1;
        }
        if resumed > 0 {
            info!(runs = resumed, "resumed unfinished runs");
        }
        Ok(())
    }

    fn handle(&mut self, msg: Msg, batch: &mut Batch) {
        match msg {
            Msg::Start { req, reply } => {
                let result = self.start(req, batch);
                match result {
                    Ok(id) => batch.replies.push(Box::new(move |ok| {
                        let _ = reply.send(if ok { Ok(id) } else { Err(Error::Stopped) });
                    })),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Msg::Check { req, reply } => {
                let _ = reply.send(self.prepare(req, None).map(|_| ()));
            }
            Msg::Operate { run_id, input, by, reply } => {
                match self.operate(&run_id, &self.conceal(input), &by, batch) {
                    Ok(()) => batch.replies.push(Box::new(move |ok| {
                        let _ = reply.send(if ok { Ok(()) } else { Err(Error::Stopped) });
                    })),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Msg::Done { effect, run_id, input } => {
                if let Err(e) = self.done(&effect, &run_id, &input, batch) {
                    warn!(run = %run_id, effect = %effect, error = %e, "cannot apply effect outcome");
                }
            }
        }
    }

    fn start(&mut self, req: StartRequest, batch: &mut Batch) -> Result<String, Error> {
        let id = match &req.id {
            Some(id) => {
                if self.live.contains_key(id) || self.store.run(id)?.is_some() {
                    return Err(Error::Exists(id.clone()));
                }
                id.clone()
            }
            None => loop {
                let id = format!("{:016x}", fastrand::u64(..));
                if !self.live.contains_key(&id) && self.store.run(&id)?.is_none() {
                    break id;
                }
            },
        };
        let (source, text, by, mode) = (req.source.clone(), req.text.clone(), req.by.clone(), req.mode);
        let (environment, parent) = (req.environment.clone(), req.parent.clone());
        let (rb, t) = self.prepare(req, Some(id.clone()))?;
        let mut record = RunRecord::new(source, text, t.state.clone(), by.clone());
        record.environment = environment;
        record.parent = parent;
        info!(run = %id, runbook = %rb.id, by = %by, mode = %mode, "run started");
        self.live.insert(id.clone(), Live { rb: Arc::new(rb), record });
        self.stage(&id, t, Some(&by), None, batch);
        Ok(id)
    }

    /// Checks a start and works out its first transition, changing
    /// nothing: the runbook, the params (with the environment's defaults),
    /// the credentials it names, and for a drill the environment guard.
    fn prepare(&self, req: StartRequest, id: Option<String>) -> Result<(Runbook, Transition), Error> {
        let rb = ripcord_engine::check::check(&req.text).map_err(|d| {
            Error::Invalid(format!(
                "runbook {} does not check:\n{}",
                req.source,
                d.iter().map(|d| format!("  {}:{d}", req.source)).collect::<Vec<_>>().join("\n")
            ))
        })?;
        let environment = req.environment.as_deref().map(|name| self.environments.get(name)).transpose()?;
        let params = match environment {
            Some(e) => e.fill(&rb, req.params),
            None => req.params,
        };
        let new = NewRun { id: id.unwrap_or_default(), mode: req.mode, params, incident_at: req.incident_at };
        let policy = self.escalation.policy_for(&rb.id, req.mode);
        let t = run::start_escalating(&rb, new, policy, self.now()).map_err(|e| Error::Invalid(e.0))?;
        let missing: Vec<String> = run::credentials_needed(&rb, &t.state.params)
            .into_iter()
            .filter(|(name, _)| !self.performer.has_credential(name))
            .map(|(name, step)| format!("  \"{name}\" (step {step}): add a [credentials.{name}] section"))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Invalid(format!(
                "runbook {} names credentials the coordinator does not hold:\n{}",
                rb.id,
                missing.join("\n")
            )));
        }
        if req.mode == run::Mode::Drill {
            let fleet = self.store.agents()?;
            let agents: Vec<environment::Agent> =
                fleet.iter().map(|a| environment::Agent { id: &a.agent_id, labels: &a.labels }).collect();
            let guard = environment::Guard {
                environments: &self.environments.list,
                own: environment,
                agents: &agents,
                default_namespace: self.environments.default_namespace.as_deref(),
            };
            let refusals = environment::refusals(&rb, &t.state.params, &guard);
            if !refusals.is_empty() {
                return Err(Error::Refused(refusals));
            }
        }
        Ok((rb, t))
    }

    /// What an operator typed, with any credential value the coordinator
    /// holds replaced by its token before it is stored.
    fn conceal(&self, input: Input) -> Input {
        let p = &self.performer;
        match input {
            Input::Approve { step, by, note } => Input::Approve { step, by, note: p.conceal(&note) },
            Input::Confirm { step, item, by, note } => Input::Confirm { step, item, by, note: p.conceal(&note) },
            Input::Abort { by, reason } => Input::Abort { by, reason: p.conceal(&reason) },
            Input::Ack { by, note } => Input::Ack { by, note: p.conceal(&note) },
            other => other,
        }
    }

    fn load(&mut self, run_id: &str) -> Result<&mut Live, Error> {
        if !self.live.contains_key(run_id) {
            let record = self.store.run(run_id)?.ok_or_else(|| Error::NotFound(format!("no run \"{run_id}\"")))?;
            let rb = ripcord_engine::check::check(&record.runbook_text)
                .map_err(|_| Error::Invalid(format!("run {run_id}: its stored runbook no longer loads")))?;
            self.live.insert(run_id.to_string(), Live { rb: Arc::new(rb), record });
        }
        self.live.get_mut(run_id).ok_or_else(|| Error::NotFound(format!("no run \"{run_id}\"")))
    }

    fn operate(&mut self, run_id: &str, input: &Input, by: &Actor, batch: &mut Batch) -> Result<(), Error> {
        let now = self.now();
        let live = self.load(run_id)?;
        let t = run::apply(&live.rb, &live.record.state, input, now).map_err(|e| Error::Rejected(e.0))?;
        info!(run = %run_id, by = %by, input = input_name(input), "operator action");
        self.stage(run_id, t, Some(by), None, batch);
        Ok(())
    }

    fn done(&mut self, effect: &str, run_id: &str, input: &Input, batch: &mut Batch) -> Result<(), Error> {
        let now = self.now();
        let live = self.load(run_id)?;
        let t = run::apply(&live.rb, &live.record.state, input, now).map_err(|e| Error::Rejected(e.0))?;
        self.stage(run_id, t, None, Some(effect.to_string()), batch);
        Ok(())
    }

    /// Records a transition in memory and in the batch.
    fn stage(&mut self, run_id: &str, t: Transition, actor: Option<&Actor>, acked: Option<String>, batch: &mut Batch) {
        let Some(live) = self.live.get_mut(run_id) else { return };
        let secrets = secret_values(&live.rb, &t.state);
        for e in t.events {
            let seq = live.record.next_event;
            live.record.next_event += 1;
            let mut e = e;
            e.message = redact(&e.message, &secrets);
            if let Some(error) = e.facts.error.take() {
                e.facts.error = Some(redact(&error, &secrets));
            }
            if let Some(note) = e.facts.note.take() {
                e.facts.note = Some(redact(&note, &secrets));
            }
            let step = e.step.as_deref().unwrap_or("-");
            match e.kind {
                EventKind::Ignored => debug!(run = %run_id, step, "{}", e.message),
                EventKind::OverBudget | EventKind::StepFailed | EventKind::StepRetrying | EventKind::RunFailed => {
                    warn!(run = %run_id, step, kind = ?e.kind, "{}", e.message)
                }
                _ => info!(run = %run_id, step, kind = ?e.kind, "{}", e.message),
            }
            batch.events.push((run_id.to_string(), LoggedEvent { seq, event: e, actor: actor.cloned() }));
        }
        live.record.state = t.state;
        batch.records.insert(run_id.to_string(), live.record.clone());
        batch.effects.extend(t.effects.into_iter().map(|e| match e {
            Effect::Notify { run, name, mut notice } => {
                notice.text = redact(&notice.text, &secrets);
                Effect::Notify { run, name, notice }
            }
            other => other,
        }));
        batch.acked.extend(acked);
    }

    /// Commits the batch, then performs its effects and answers its callers.
    fn flush(&mut self, batch: Batch) -> Result<(), Error> {
        if batch.records.is_empty() {
            for r in batch.replies {
                r(true);
            }
            return Ok(());
        }
        let mut commits = Vec::new();
        let mut events: HashMap<&str, Vec<LoggedEvent>> = HashMap::new();
        let mut effects: HashMap<&str, Vec<Effect>> = HashMap::new();
        let mut acked: HashMap<&str, Vec<String>> = HashMap::new();
        for (run, e) in &batch.events {
            events.entry(run.as_str()).or_default().push(e.clone());
        }
        for e in &batch.effects {
            if let Some((id, _)) = batch.records.get_key_value(e.run()) {
                effects.entry(id.as_str()).or_default().push(e.clone());
            }
        }
        for a in &batch.acked {
            let run = a.split('/').next().unwrap_or_default();
            if let Some((id, _)) = batch.records.get_key_value(run) {
                acked.entry(id.as_str()).or_default().push(a.clone());
            }
        }
        let empty_e: Vec<LoggedEvent> = Vec::new();
        let empty_f: Vec<Effect> = Vec::new();
        let empty_a: Vec<String> = Vec::new();
        for (id, record) in &batch.records {
            commits.push(Commit {
                record,
                events: events.get(id.as_str()).unwrap_or(&empty_e),
                new_effects: effects.get(id.as_str()).unwrap_or(&empty_f),
                acked: acked.get(id.as_str()).unwrap_or(&empty_a),
            });
        }
        if let Err(e) = self.store.commit(&commits) {
            // Nothing of this batch happened: its callers hear so, and the
            // error stops the coordinator (see `crate::run_with_store`),
            // which logs it once.
            for r in batch.replies {
                r(false);
            }
            return Err(Error::Commit(e));
        }
        for (id, record) in &batch.records {
            // Nobody listening is fine.
            let _ = self.changed.send(id.clone());
            if record.state.status.is_finished() {
                info!(run = %id, status = %record.state.status, "run finished");
                self.live.remove(id);
                // Nobody listening is fine.
                let _ = self.finished.send(id.clone());
            }
        }
        for e in batch.effects {
            self.perform(effect_id(&e), e);
        }
        for r in batch.replies {
            r(true);
        }
        Ok(())
    }

    /// Performs one committed effect (stored as `id`) in the background;
    /// its outcome comes back as a message.
    fn perform(&self, id: String, effect: Effect) {
        let Some(tx) = self.tx.upgrade() else { return };
        let run_id = effect.run().to_string();
        let done = move |input| async move {
            let _ = tx.send(Msg::Done { effect: id, run_id, input }).await;
        };
        match effect {
            Effect::Perform { key, action, args, target, timeout_ms } => {
                let performer = Arc::clone(&self.performer);
                debug!(key = %key, action = %action, "performing");
                tokio::spawn(async move {
                    let step = key.step.clone();
                    let attempt = key.attempt;
                    let outcome = performer.perform(Request { key, action, args, target, timeout_ms }).await;
                    let input = match outcome {
                        Outcome::Succeeded(outputs) => Input::Succeeded { step, attempt, outputs },
                        Outcome::Failed(error) => Input::Failed { step, attempt, error },
                    };
                    done(input).await;
                });
            }
            Effect::Timer { key, kind, at } => {
                let delay = self.until(at);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    done(Input::Timer { step: key.step, attempt: key.attempt, kind }).await;
                });
            }
            Effect::RunTimer { timer, at, .. } => {
                let delay = self.until(at);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    done(Input::RunTimer { timer }).await;
                });
            }
            Effect::Notify { run, name, notice } => {
                debug!(run = %run, notice = %name, "notifying");
                let sent = self.performer.notify(&run, &name, notice);
                tokio::spawn(async move {
                    let d = sent.await;
                    done(Input::Notified { name, error: d.error, reached: d.reached }).await;
                });
            }
        }
    }

    /// How long from now until `at`, by the driver's clock.
    fn until(&self, at: Millis) -> std::time::Duration {
        std::time::Duration::from_millis(u64::try_from(at - self.now()).unwrap_or(0))
    }
}

fn input_name(i: &Input) -> &'static str {
    match i {
        Input::Succeeded { .. } => "succeeded",
        Input::Failed { .. } => "failed",
        Input::Timer { .. } => "timer",
        Input::Approve { .. } => "approve",
        Input::Confirm { .. } => "confirm",
        Input::Abort { .. } => "abort",
        Input::Retry { .. } => "retry",
        Input::Ack { .. } => "ack",
        Input::RunTimer { .. } => "run timer",
        Input::Notified { .. } => "notified",
    }
}

/// Values of the run's secret params (for redaction).
pub fn secret_values(rb: &Runbook, state: &RunState) -> Vec<String> {
    rb.params
        .iter()
        .filter(|p| p.secret)
        .filter_map(|p| state.params.get(&p.name))
        .map(|v| v.to_string())
        .filter(|s| s.len() >= 4)
        .collect()
}

/// `text` with every secret value replaced.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "••••••");
        }
    }
    out
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
