//! The drill scheduler: starts each occurrence of each drill in
//! `drills.yaml` exactly once, reminds the owners before it, and tells them
//! when one was missed or refused.
//!
//! One tokio task ([`Scheduler::run`]) sleeps until the next thing is due —
//! an occurrence, a reminder, a retry — and does nothing in between (each
//! sleep is capped at [`MAX_SLEEP`] so a jump of the wall clock is noticed).
//! On every wake it looks at the drills whose time came (`work.rs`):
//!
//! - An occurrence that came due is recorded `Launching` and started with
//!   its [`ripcord_schedule::occurrence_id`] as the run id; the launcher
//!   answers [`LaunchError::Exists`] for an id that already has a run, which
//!   counts as started. So a scheduler killed around the due moment, or two
//!   racing over one store, still start it once.
//! - One found late (the coordinator was down) starts late within the
//!   drill's grace, and is recorded `Missed` (the owners told) after it. Only
//!   occurrences since the drill was first watched count
//!   ([`crate::store::Storage::watching_since`]), and only the newest
//!   [`LOOKBACK`] of them.
//! - `remind_before` an occurrence (late, if the scheduler was down then,
//!   while the occurrence is still ahead) the owners get the playbook's
//!   preparation checklist, once.
//!
//! Every decision is written with [`crate::store::Storage::swap_occurrence`]
//! before it is acted on, and every message is written pending before it is
//! sent and marked sent after, with an idempotency key; a pending one is
//! sent again after a restart.
//!
//! The store must be the driver's: a `Launching` record found after the
//! grace is settled by whether the driver has the run.

mod handle;
mod notice;
mod work;

#[cfg(test)]
mod tests;

pub use handle::{DrillNext, NextOccurrence, SchedulerHandle};
pub use notice::{CHECKLIST, NoticeKind, OwnerNotice};

use crate::integrations::BoxFuture;
use crate::store::Store;
use ripcord_engine::clock::Millis;
use ripcord_schedule::{Drill, Drills};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The longest the scheduler sleeps without looking at the clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// How many of a drill's past occurrences (the newest) a wake looks at.
pub const LOOKBACK: usize = 32;
/// How many of a drill's coming occurrences may be in their reminder window
/// at once (a daily drill reminded a week ahead has seven).
pub const LOOKAHEAD: usize = 16;

/// The actor of scheduled starts.
pub const ACTOR: &str = "scheduler";

/// Starts a drill's run. The lead's implementation resolves the
/// environment's params, checks protections and starts through the driver.
pub trait Launcher: Send + Sync {
    /// Starts `drill`'s run with exactly this run id, mode drill, started
    /// by `by` ([`ACTOR`] for the schedule, the operator for run-now). A
    /// second start with an id that already has a run is
    /// [`LaunchError::Exists`] and changes nothing.
    fn launch(&self, drill: &Drill, run_id: &str, by: &str) -> BoxFuture<Result<(), LaunchError>>;
}

/// Why a launch did not start a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A run with this id exists already: it was started before.
    #[error("a run with this id exists already")]
    Exists,
    /// It must not start (a protected resource, params that do not fit…);
    /// trying again will not help.
    #[error("refused: {0}")]
    Refused(String),
    /// It could not start now (the driver stopping, a store error); worth
    /// another try.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Tells a drill's owners something.
pub trait Tell: Send + Sync {
    /// Delivers `notice` to its owners. `notice.key` is an idempotency key:
    /// the same notice may come again after a crash.
    fn tell(&self, notice: &OwnerNotice) -> BoxFuture<Result<(), TellError>>;
}

/// Why the owners could not be told (the scheduler tries again later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TellError {
    /// Their channel did not take the message.
    #[error(transparent)]
    Webhook(#[from] crate::integrations::http::WebhookError),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("no drill called {name:?}{}", .hint.as_ref().map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default())]
    UnknownDrill { name: String, hint: Option<String> },
    #[error("drill {drill}: {source}")]
    Launch { drill: String, source: LaunchError },
}

/// The clock the scheduler reads (unix ms).
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// What the task and its handles share.
struct Shared {
    drills: Drills,
    store: Store,
    launcher: Arc<dyn Launcher>,
    tell: Arc<dyn Tell>,
    clock: Clock,
}

/// The scheduler task's state; see the module documentation.
pub struct Scheduler {
    shared: Arc<Shared>,
    /// Per drill, what the task knows between wakes.
    drills: HashMap<String, work::Cursor>,
    /// Launches that found the launcher unavailable, by run id.
    launch_retry: HashMap<String, work::Retry>,
    /// Messages the channel did not take, by key.
    tell_retry: HashMap<String, work::Retry>,
}

impl Scheduler {
    pub fn new(
        drills: Drills,
        store: Store,
        launcher: Arc<dyn Launcher>,
        tell: Arc<dyn Tell>,
        clock: Arc<dyn Fn() -> Millis + Send + Sync>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared { drills, store, launcher, tell, clock }),
            drills: HashMap::new(),
            launch_retry: HashMap::new(),
            tell_retry: HashMap::new(),
        }
    }

    /// A handle for `list`, `run_now` and `history` (gRPC), valid while and
    /// after the task runs.
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle::new(self.shared.clone())
    }

    /// Runs until `shutdown` completes. Returns an error only when the
    /// store fails: like a failed driver commit, the process should stop
    /// and its supervisor restart it.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        loop {
            let wake = self.wake().await?;
            let now = (self.shared.clock)();
            let wait = u64::try_from(wake.saturating_sub(now)).unwrap_or(0).max(1);
            let wait = Duration::from_millis(wait).min(MAX_SLEEP);
            tracing::debug!(wait_ms = wait.as_millis() as u64, "scheduler sleeps");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }
}
