//! What can go wrong talking to Atlas, one enum for the whole client.

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the atlas {what} from {}: {source}", path.display())]
    SecretFile { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the atlas {what} file {} is empty", path.display())]
    EmptySecret { what: &'static str, path: PathBuf },
    #[error("bad atlas {what} {url:?}: {reason}")]
    BadUrl { what: &'static str, url: String, reason: String },
    #[error("cannot build the atlas http client: {0}")]
    Client(String),
    /// Atlas answered with an error.
    #[error("atlas: {code}: {detail} (HTTP {status})")]
    Api { status: u16, code: String, detail: String, retry_after: Option<Duration> },
    /// 401/403: the credentials are wrong, lack a role, or the IP is not allowed.
    #[error("atlas rejected the credentials (HTTP {status}): {hint}")]
    Credentials { status: u16, hint: String },
    /// No answer (connection, TLS, timeout).
    #[error("atlas: no answer to {what}: {reason}")]
    Transport { what: String, reason: String },
    /// An answer ripcord cannot read.
    #[error("atlas: unexpected answer to {what}: {reason}")]
    Protocol { what: String, reason: String },
    /// Ripcord refuses (bad arguments, unsafe request, failed job).
    #[error("atlas: {0}")]
    Refused(String),
    /// The step's timeout ran out.
    #[error("atlas: {0}")]
    Timeout(String),
}

impl Error {
    /// Worth trying again: rate limited, server error, no answer.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// Atlas's `errorCode`, when Atlas answered with an error.
    pub(super) fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when Atlas answered with an error.
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long Atlas asked to wait before the next try (`Retry-After`).
    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_server_errors_and_silence_are_retryable() {
        let api = |status| Error::Api { status, code: "X".into(), detail: String::new(), retry_after: None };
        assert!(api(429).retryable() && api(500).retryable() && api(503).retryable());
        assert!(!api(400).retryable() && !api(404).retryable() && !api(409).retryable());
        assert!(Error::Transport { what: "GET /".into(), reason: "cannot connect".into() }.retryable());
        assert!(!Error::Credentials { status: 401, hint: String::new() }.retryable());
        assert!(!Error::Refused("no".into()).retryable());
    }
}
