//! From an action name to its implementation, and what every action
//! shares: argument parsing and checks, the namespace, outputs.
//!
//! The actions themselves are in `deployments` and `pods`.

use super::scrub::redact_quoted;
use super::{Error, Kube};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Instant;

/// When the step's timeout runs out, if it has one.
pub(super) type Deadline = Option<Instant>;
/// An action's outputs.
pub(super) type Outputs = BTreeMap<String, Value>;

impl Kube {
    /// Runs `action` with its arguments.
    pub(super) async fn dispatch(&self, action: &str, args: &Value, key: &Key, d: Deadline) -> Result<Outputs, Error> {
        match action {
            "k8s.set_env" => self.set_env(&parse(action, args)?, key, d).await,
            "k8s.rollout_restart" => self.rollout_restart(&parse(action, args)?, key, d).await,
            "k8s.rollout_wait" => self.rollout_wait(&parse(action, args)?, d).await,
            "k8s.pods_ready" => self.pods_ready(&parse(action, args)?, d).await,
            "k8s.logs" => self.logs(&parse(action, args)?, d).await,
            other => Err(Error::Refused(format!("unknown action {other}"))),
        }
    }

    /// The namespace a step names, else the client's.
    pub(super) fn ns<'a>(&'a self, given: &'a Option<String>) -> Result<&'a str, Error> {
        match given.as_deref() {
            Some(ns) if !ns.is_empty() => {
                check_name("namespace", ns)?;
                Ok(ns)
            }
            _ => Ok(&self.namespace),
        }
    }
}

fn parse<T: DeserializeOwned>(action: &str, args: &Value) -> Result<T, Error> {
    // Never show the arguments: they may hold env values.
    let v = serde_json::to_value(args).map_err(|_| Error::Refused(format!("{action}: bad arguments")))?;
    serde_json::from_value(v)
        .map_err(|e| Error::Refused(format!("{action}: bad arguments: {}", redact_quoted(&e.to_string()))))
}

pub(super) fn outputs<const N: usize>(items: [(&str, Value); N]) -> Outputs {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A DNS-1123 label (namespaces) or subdomain (deployments): lowercase
/// letters, digits, '-' and '.', at most 253 characters.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(Error::Refused(format!("{what} {name:?} is not a valid kubernetes name"))) }
}

/// What kubectl accepts as an env var name: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub(super) fn check_env_name(name: &str) -> Result<(), Error> {
    let ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(Error::Refused(format!("k8s.set_env: {name:?} is not a valid environment variable name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("deployment", "api").is_ok());
        assert!(check_name("deployment", "chat.api-2").is_ok());
        for bad in ["", "API", "-api", "api/x", "a b"] {
            assert!(check_name("deployment", bad).is_err(), "{bad}");
        }
        assert!(check_env_name("MONGO_URI").is_ok());
        assert!(check_env_name("1X").is_err());
        assert!(check_env_name("A=B").is_err());
    }
}
