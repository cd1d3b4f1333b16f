//! ripcord's end-to-end tests: real coordinator, agent and CLI processes,
//! certificates made per test. One test binary; see `ripcord_tests` for the
//! harness.

mod ack;
mod auth;
mod cloud;
mod cloud_setup;
mod compose;
mod config;
mod contacts;
mod crash;
mod credentials;
mod drill_runs;
mod drills;
mod escalation;
mod fleet;
mod full_outage;
mod notices;
mod readiness;
mod redis;
mod report;
mod runs;
mod services;
mod store;
