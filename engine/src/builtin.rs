//! The built-in runbooks, one per playbook scenario, embedded at build time
//! from `runbooks/*.yaml`.

include!(concat!(env!("OUT_DIR"), "/builtin_runbooks.rs"));

/// The YAML of built-in runbook `id`.
pub fn get(id: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(i, _)| *i == id).map(|(_, text)| *text)
}

/// Ids of the built-in runbooks.
pub fn ids() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(id, _)| *id)
}
