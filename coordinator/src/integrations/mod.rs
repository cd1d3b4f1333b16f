//! Performing actions. [`Performer`] is the seam between the driver and the
//! outside world: the driver hands it an effect, it answers with an outcome.
//! [`Actions`] is the real one: it routes each action where the registry
//! (`ripcord_engine::registry`) says it runs — agent actions through the
//! fleet, coordinator actions to the [`Integration`] that performs them —
//! and wraps every call the same way: the step's timeout, credentials in,
//! credentials concealed in what comes back.
//!
//! `Actions` is also where credentials meet integrations: it puts the values
//! of `{{ credentials.… }}` tokens into a step's arguments just before the
//! integration runs, and turns them back into tokens in whatever comes back
//! (see `crate::credentials`). Only the actions that use credentials to
//! reach a service get their values (`registry::Action::credentials`);
//! agents and messages to people only ever see the token.

pub mod agents;
pub mod atlas;
pub mod backoff;
pub mod http;
pub mod kube;
pub mod mongo;
pub mod pagerduty;
mod router;
pub mod secrets;
pub mod subruns;

pub use router::Actions;

use ripcord_engine::registry::Action;
use crate::notices::{Delivery, RUNBOOK_WEBHOOK};
use ripcord_engine::run::{Key, Notice, TargetSpec};
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What the driver asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub key: Key,
    pub action: String,
    pub args: Value,
    pub target: Option<TargetSpec>,
    pub timeout_ms: Option<u64>,
}

/// How it went. A failure is an outcome, not an error: the engine decides
/// about retries.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(BTreeMap<String, Value>),
    Failed(String),
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pub trait Performer: Send + Sync {
    fn perform(&self, request: Request) -> BoxFuture<Outcome>;

    /// Whether the credentials named `name` are held here (a run that
    /// needs one that is not is refused at start).
    fn has_credential(&self, _name: &str) -> bool {
        false
    }

    /// `text` with every credential value held here replaced by its token
    /// (for what operators type: approval notes, abort reasons).
    fn conceal(&self, text: &str) -> String {
        text.to_string()
    }

    /// Delivers notice `name` of run `run`. This default reaches the
    /// runbook's webhook only, through the `notify` action; the real
    /// performer also reaches the roster ([`crate::notices`]).
    fn notify(&self, run: &str, name: &str, notice: Notice) -> BoxFuture<Delivery> {
        let Some(webhook) = notice.webhook else {
            let error = (!notice.to.is_empty()).then(|| format!("no roster here to reach {}", notice.to.join(", ")));
            return Box::pin(async move { Delivery { reached: vec![], error } });
        };
        let mut args = BTreeMap::new();
        args.insert("webhook".to_string(), Value::Str(webhook));
        args.insert("text".to_string(), Value::Str(notice.text));
        // The notice's name is its idempotency key.
        let key = Key { run: run.to_string(), step: name.to_string(), attempt: 0 };
        let request =
            Request { key, action: "notify".into(), args: Value::Map(args), target: None, timeout_ms: Some(NOTIFY_TIMEOUT_MS) };
        let sent = self.perform(request);
        Box::pin(async move {
            match sent.await {
                Outcome::Succeeded(_) => Delivery { reached: vec![RUNBOOK_WEBHOOK.to_string()], error: None },
                Outcome::Failed(e) => Delivery { reached: vec![], error: Some(e) },
            }
        })
    }
}

/// How long one notice may take to deliver.
pub const NOTIFY_TIMEOUT_MS: u64 = 30_000;

/// One action for an integration, with credentials already in its
/// arguments.
#[derive(Debug, Clone)]
pub struct Call {
    pub key: Key,
    pub action: &'static Action,
    pub args: Value,
    /// The step's timeout: waits inside the action stop there and say what
    /// they waited for. The router cuts off whatever is still running a
    /// moment later.
    pub timeout: Option<Duration>,
}

/// A coordinator integration: everything it does goes through this one
/// signature. It answers with an outcome whose error text names no secret
/// it was given (each integration knows its own secrets: URIs, keys).
pub trait Integration: Send + Sync {
    fn perform(&self, call: Call) -> BoxFuture<Outcome>;
}
