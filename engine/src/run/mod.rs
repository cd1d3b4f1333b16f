//! The run state machine: `apply(runbook, state, input, now) -> Transition`.
//!
//! Pure: no clock (`now` is passed in), no ids (the run id is in the state),
//! no I/O. Every side effect is returned as data ([`Effect`]) with an
//! idempotency key (run, step, attempt); the coordinator's driver commits the
//! new state and the effects together before performing any of them.
//! Retries, deferred steps, budgets and timeouts are timers, i.e. data.
//!
//! A result for an attempt that is no longer current (a late answer after a
//! timeout, a repeated delivery after a restart) is ignored: a step's state
//! only moves forward for its current attempt.

mod checks;
mod machine;
mod notices;
mod phase;
mod start;
mod types;

pub use machine::{apply, human};
pub use start::{credentials_needed, start, start_escalating};
pub use types::*;
