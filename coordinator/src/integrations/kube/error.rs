//! What can go wrong: [`Error`] for the whole client, with the mapping from
//! kube-rs errors, and the errors of the pure helpers ([`SelectorError`],
//! [`ContainerError`]).

use std::path::PathBuf;

/// What can go wrong. Messages never hold an env value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("no kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot build the kubernetes client: {0}")]
    Client(String),
    /// The API server answered with an error.
    #[error("kubernetes: {what}: {message} (HTTP {status}{reason})", reason = reason_suffix(reason))]
    Api { what: String, status: u16, reason: String, message: String },
    /// No answer (connection refused, TLS, timeout).
    #[error("kubernetes: {what}: no answer: {reason}")]
    Transport { what: String, reason: String },
    /// An answer ripcord cannot read.
    #[error("kubernetes: {what}: unexpected answer: {reason}")]
    Protocol { what: String, reason: String },
    /// Ripcord refuses (bad arguments, nothing to act on).
    #[error("kubernetes: {0}")]
    Refused(String),
    /// The rollout failed (progress deadline exceeded).
    #[error("kubernetes: {0}")]
    Rollout(String),
    /// The step's timeout ran out.
    #[error("kubernetes: {0}")]
    Timeout(String),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(", {reason}") }
}

impl Error {
    /// Worth trying again within the same wait: no answer, or a server error.
    pub(super) fn transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub(super) fn from_kube(what: impl Into<String>, e: kube::Error) -> Self {
        let what = what.into();
        match e {
            kube::Error::Api(s) => {
                let mut message = s.message.clone();
                match s.code {
                    401 => message.push_str(
                        "; the kubeconfig's credentials were refused: check the user of the context ripcord uses",
                    ),
                    403 => message.push_str(
                        "; where RBAC denies it, the coordinator's kubernetes user needs deployments: get, list, \
                         patch; pods: list; pods/log: get",
                    ),
                    _ => {}
                }
                Error::Api { what, status: s.code, reason: s.reason.clone(), message }
            }
            kube::Error::HyperError(e) => Error::Transport { what, reason: chain(&e) },
            kube::Error::Service(e) => Error::Transport { what, reason: chain(e.as_ref()) },
            kube::Error::SerdeError(e) => Error::Protocol { what, reason: e.to_string() },
            kube::Error::FromUtf8(e) => Error::Protocol { what, reason: e.to_string() },
            other => Error::Transport { what, reason: chain(&other) },
        }
    }
}

/// An error and its sources, "a: b: c".
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Why a deployment's selector cannot be written as a `labelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A match expression with an operator other than `In`, `NotIn`,
    /// `Exists` and `DoesNotExist`.
    #[error("unknown selector operator {0:?}")]
    UnknownOperator(String),
}

/// Why no container can be picked (see [`super::pick_container`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// The step names a container the pod (template) does not have.
    #[error("no container {wanted:?} (containers: {})", containers.join(", "))]
    NotFound { wanted: String, containers: Vec<String> },
    /// The pod (template) has no containers at all.
    #[error("no containers")]
    Empty,
}
