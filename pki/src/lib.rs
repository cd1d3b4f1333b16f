//! ripcord's certificates.
//!
//! Every program authenticates with a certificate from one ripcord CA. The
//! certificate carries who the holder is and what it may do: the identity in
//! the subject's common name (`CN`), the role (`coordinator`, `agent`,
//! `operator`, `viewer`) in its organisational unit (`OU`). The coordinator
//! reads both back with [`inspect`] on every call.
//!
//! - [`clock`]: now, for every process that reads the clock.
//! - [`issue`]: create a CA and issue keys and certificates (rcgen).
//! - [`files`]: the on-disk layout used by `ripcord certs` (keys 0600,
//!   nothing overwritten unless forced, nothing half written).
//! - [`inspect`]: identity, role and validity of a certificate.
//! - [`tls`]: the rustls server config and tonic client config built from them.

pub mod clock;
pub mod files;
pub mod inspect;
pub mod issue;
pub mod tls;

use std::path::PathBuf;

/// Errors from issuing, reading or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists (pass --force to replace it)")]
    Exists { path: PathBuf },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("not a ripcord certificate: {0}")]
    NotRipcord(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("tls setup: {0}")]
    Tls(String),
}
