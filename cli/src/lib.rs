//! The operator's CLI, `ripcord`, as a library so that tests drive the same
//! code: where the settings come from ([`settings`]), how the coordinator is
//! called ([`client`]), how answers are shown ([`output`]) and what a plan
//! learns from the coordinator ([`plan`]).

pub mod client;
pub mod drills;
pub mod output;
pub mod plan;
pub mod runbook;
pub mod runview;
pub mod settings;
