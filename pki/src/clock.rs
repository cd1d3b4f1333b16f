//! The one place ripcord's processes read the wall clock as data: the
//! coordinator stamps runs and fleet records with it, the CLI measures ages
//! and RTOs, the agent names backups. The engine never reads a clock (it is
//! given `now`); its `clock` module turns these milliseconds into RFC 3339
//! text and back.
//!
//! It lives here because every process already depends on this crate, and
//! this crate already reads the clock to issue and check certificates.

use ripcord_engine::clock::Millis;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now as the certificate code wants it (from [`now_ms`]).
pub(crate) fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms()) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Now, in milliseconds since the Unix epoch (0 for a clock set before 1970).
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
}
