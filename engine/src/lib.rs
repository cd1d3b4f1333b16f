//! ripcord's pure core.
//!
//! Everything here is deterministic and does no I/O: no network, no disk, no
//! clock, no randomness. The coordinator and the CLI both build on it (the CLI
//! for offline `runbook check` and `plan`). Cargo enforces the purity: the
//! crate depends on std, serde and thiserror only.
//!
//! Today it holds the vocabulary the daemons share: who a caller is
//! ([`auth`]), how agents are selected by labels ([`selector`]) and how
//! durations are written ([`duration`]).

pub mod actions;
pub mod auth;
pub mod builtin;
pub mod check;
pub mod clock;
pub mod duration;
pub mod environment;
pub mod escalation;
pub mod hint;
pub mod measure;
pub mod milestone;
pub mod model;
pub mod notify;
pub mod plan;
pub mod position;
pub mod readiness;
pub mod registry;
pub mod run;
pub mod runbook;
pub mod selector;
pub mod template;
pub mod value;
pub mod yaml;

pub use auth::{Identity, Role};
pub use selector::Selector;
