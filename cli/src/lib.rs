//! The operator's CLI, `ripcord`, as a library so that tests drive the same
//! code: where the settings come from ([`settings`]), how the coordinator is
//! called ([`client`]) and how answers are shown ([`output`]).

pub mod client;
pub mod output;
pub mod runbook;
pub mod runview;
pub mod settings;
