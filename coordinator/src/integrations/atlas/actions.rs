//! From an action name to its implementation, and what every action
//! shares: argument parsing and checks, outputs, reading Atlas's JSON, time.
//!
//! The actions themselves are in `clusters`, `restores` and `snapshots`. An
//! action that creates something (cluster, restore job, snapshot) is never
//! blindly sent twice: before every (re)try it looks for what an earlier try
//! or an earlier attempt of the same step created, so a coordinator restart
//! never starts a second restore.

use super::client::{Deadline, Poll};
use super::{Atlas, Error};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::de::DeserializeOwned;
use serde_json::Value as J;
use std::collections::BTreeMap;

/// An action's outputs.
pub(super) type Outputs = BTreeMap<String, Value>;

impl Atlas {
    /// Runs `action` with its arguments.
    pub(super) async fn dispatch(&self, action: &str, args: &Value, key: &Key, d: Deadline) -> Result<Outputs, Error> {
        match action {
            "atlas.create_cluster_like" => self.create_cluster_like(&parse(action, args)?, key, d).await,
            "atlas.wait_cluster" => self.wait_cluster(&parse(action, args)?, d).await,
            "atlas.pitr_restore" => self.pitr_restore(&parse(action, args)?, key, d).await,
            "atlas.snapshot_restore" => self.snapshot_restore(&parse(action, args)?, key, d).await,
            "atlas.wait_restore" => self.wait_restore(&parse(action, args)?, d).await,
            "atlas.connection_string" => self.connection_string(&parse(action, args)?, d).await,
            "atlas.take_snapshot" => self.take_snapshot(&parse(action, args)?, key, d).await,
            "atlas.delete_cluster" => self.delete_cluster(&parse(action, args)?, key, d).await,
            other => Err(Error::Refused(format!("unknown action {other}"))),
        }
    }

    /// Polling with this client's intervals, until `d`.
    pub(super) fn poll(&self, d: Deadline) -> Poll {
        Poll::new(self.poll, self.max_poll, d)
    }
}

fn parse<T: DeserializeOwned>(action: &str, args: &Value) -> Result<T, Error> {
    let v = serde_json::to_value(args).map_err(|e| Error::Refused(format!("{action}: bad arguments: {e}")))?;
    serde_json::from_value(v).map_err(|e| Error::Refused(format!("{action}: bad arguments: {e}")))
}

pub(super) fn outputs<const N: usize>(items: [(&str, Value); N]) -> Outputs {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A JSON string, or "".
pub(super) fn str_of(v: &J) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A fallback for an empty string.
pub(super) trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self }
    }
}

impl IfEmpty for &str {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() { other.to_string() } else { self.to_string() }
    }
}

/// Project (group) ids are 24 hex digits.
pub(super) fn check_project(p: &str) -> Result<(), Error> {
    check_id("project", p)
}

/// Atlas ids are 24 hex digits; checked, they need no escaping in a path.
pub(super) fn check_id(what: &str, id: &str) -> Result<(), Error> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Refused(format!("{what} must be an Atlas id (24 hex digits), not {id:?}")))
    }
}

/// Cluster names: letters, digits and hyphens, starting with a letter or digit.
pub(super) fn check_cluster(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok { Ok(()) } else { Err(Error::Refused(format!("{what}: {name:?} is not a valid Atlas cluster name"))) }
}

/// Now in whole seconds, Atlas's unit.
pub(super) fn unix_now() -> i64 {
    ripcord_pki::clock::now_ms().div_euclid(1000)
}

/// A time argument that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum TimeError {
    #[error("{0:?} is not an RFC 3339 time (like 2024-05-01T12:00:00Z)")]
    NotRfc3339(String),
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00.250+02:00`); fractions of a second are dropped.
/// The engine's parser, in Atlas's unit and with the message a step shows.
pub(super) fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    ripcord_engine::clock::parse_rfc3339(s)
        .map(|ms| ms.div_euclid(1000))
        .ok_or_else(|| TimeError::NotRfc3339(s.to_string()))
}

/// `2024-05-01T12:00:00Z`.
pub(super) fn format_rfc3339(secs: i64) -> String {
    ripcord_engine::clock::rfc3339(secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_rejects_junk() {
        let table = [
            ("1970-01-01T00:00:00Z", 0),
            ("2024-05-01T12:00:00Z", 1_714_564_800),
            ("2024-05-01T14:00:00.999+02:00", 1_714_564_800),
            ("2024-02-29T00:00:00z", 1_709_164_800),
            ("1969-12-31T23:59:59Z", -1),
        ];
        for (s, want) in table {
            assert_eq!(parse_rfc3339(s), Ok(want), "{s}");
        }
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        for bad in
            ["", "2024-05-01", "2024-05-01T12:00:00", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "incident-5m"]
        {
            assert_eq!(parse_rfc3339(bad), Err(TimeError::NotRfc3339(bad.to_string())), "{bad} should be refused");
        }
        assert_eq!(
            parse_rfc3339("now").unwrap_err().to_string(),
            "\"now\" is not an RFC 3339 time (like 2024-05-01T12:00:00Z)"
        );
    }

    #[test]
    fn ids_and_cluster_names_are_checked() {
        assert!(check_project("0123456789abcdef01234567").is_ok());
        for bad in ["", "0123456789abcdef0123456", "0123456789abcdef0123456g", "../0123456789abcdef012345"] {
            assert!(check_project(bad).is_err(), "{bad:?}");
        }
        assert!(check_cluster("name", "chat-prod-2").is_ok());
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_cluster("name", bad).is_err(), "{bad:?}");
        }
    }
}
