//! `atlas.*` actions: a client for the MongoDB Atlas Admin API v2.
//!
//! - `config`: the `[atlas]` section ([`AtlasConfig`]).
//! - `client`: the HTTP client. Everything ripcord asks Atlas is in
//!   [`Endpoint`], one table with the resource version each call speaks
//!   (`Accept: application/vnd.atlas.<date>+json`), because Atlas removes a
//!   version a year after a newer one appears. Calls are retried with
//!   backoff and jitter on 429, 5xx and network errors; waits poll with
//!   backoff and stop at the step's deadline.
//! - `auth` and `digest`: a service account (OAuth client credentials; the
//!   token is cached and refreshed before it expires) or a programmatic API
//!   key (HTTP Digest). Secrets are read from files, kept in [`Secret`]
//!   (whose `Debug` hides them) and scrubbed from every message.
//! - `actions`: from an action name to its implementation, and the argument
//!   checks; the actions are in `clusters`, `restores` and `snapshots`. A
//!   call that creates something is never blindly sent twice: the action
//!   first looks for what an earlier try or attempt created.
//! - `reads`: read-only calls for readiness checks (project, a cluster's
//!   backup settings and schedule, its newest snapshot, a connection string
//!   with a database user's login).
//! - `error`: [`Error`], one enum for the whole client.
//!
//! Reference: `shared/reference/atlas-admin-api.md`.

mod actions;
mod auth;
mod client;
mod clusters;
mod config;
mod digest;
mod error;
mod reads;
mod restores;
mod snapshots;

pub use auth::base64_encode;
pub use client::{Endpoint, Retry};
pub use config::{AtlasAuth, AtlasConfig, MixedAuth};
pub use digest::{auth_params, md5_hex};
pub use error::Error;
pub use reads::{BackupSchedule, ClusterBackup, CopySetting, Project, SnapshotInfo};

pub use crate::credentials::Secret;

use super::Outcome;
use crate::credentials::Credentials;
use client::Client;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use std::fmt;
use std::time::{Duration, Instant};
use tracing::warn;

/// An Atlas Admin API client and the `atlas.*` actions. Cheap to clone: the
/// token cache and digest state are shared.
#[derive(Clone)]
pub struct Atlas {
    client: Client,
    poll: Duration,
    max_poll: Duration,
    credentials: Credentials,
}

impl fmt::Debug for Atlas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Atlas")
            .field("base", &self.client.base)
            .field("auth", &self.client.auth.who())
            .finish_non_exhaustive()
    }
}

impl Atlas {
    /// Reads the secret file and builds the client. The rustls crypto
    /// provider must be installed first (`ripcord_pki::tls::install_crypto_provider`).
    pub fn new(config: &AtlasConfig) -> Result<Self, Error> {
        Ok(Self {
            client: Client::new(config)?,
            poll: config.poll_interval,
            max_poll: config.max_poll_interval,
            credentials: Credentials::default(),
        })
    }

    /// Replaces the retry policy (tests use short waits).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.client.retry = retry;
        self
    }

    /// Where `atlas.connection_string` finds the database credentials it is
    /// given the name of.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Performs `action` with no time limit.
    pub async fn perform(&self, action: &str, args: &Value, key: &Key) -> Outcome {
        self.perform_with_timeout(action, args, key, None).await
    }

    /// Performs `action`, giving up after `timeout` (the step's `timeout`,
    /// `Request::timeout_ms`).
    pub async fn perform_with_timeout(
        &self,
        action: &str,
        args: &Value,
        key: &Key,
        timeout: Option<Duration>,
    ) -> Outcome {
        // Waits stop polling at the deadline and report what they waited
        // for; a request that hangs anyway is cut off by the router
        // (`integrations::Actions`), the one place every call is timed.
        let deadline = timeout.map(|t| Instant::now() + t);
        match self.dispatch(action, args, key, deadline).await {
            Ok(out) => Outcome::Succeeded(out),
            Err(e) => {
                let msg = self.client.auth.scrub(e.to_string());
                warn!(key = %key, action, error = %msg, "atlas action failed");
                Outcome::Failed(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The performer's futures must be `Send` (the driver spawns them).
    #[allow(dead_code)]
    fn perform_is_send(a: &Atlas, v: &Value, k: &Key) {
        fn send<T: Send>(_: T) {}
        send(a.perform("atlas.wait_cluster", v, k));
    }
}
