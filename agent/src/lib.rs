//! ripcord's host agent. It dials out to the coordinator over mTLS gRPC (it
//! opens no listening port), declares its id, labels and the actions its
//! local allowlist permits, and performs only those.
//!
//! - [`config`]: the TOML file, validated once.
//! - [`connection`]: the stream, heartbeats, reconnects with backoff.
//! - [`handle`]: one command → one result.
//! - [`policy`]: the allowlist.

pub mod actions;
pub mod config;
pub mod connection;
pub mod handle;
pub mod journal;
pub mod policy;

pub use connection::run;
