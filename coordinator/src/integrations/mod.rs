//! Performing actions. [`Performer`] is the seam between the driver and the
//! outside world: the driver hands it an effect, it answers with an outcome.
//! [`Actions`] is the real one: HTTP checks and notifications here, agent
//! actions through the fleet, the cloud integrations.
//!
//! `Actions` is also where credentials meet integrations: it puts the values
//! of `{{ credentials.… }}` tokens into a step's arguments just before the
//! integration runs, and turns them back into tokens in whatever comes back
//! (see `crate::credentials`). Only the actions that use credentials to
//! reach a service get their values (`catalogue::takes_credentials`);
//! agents and messages to people only ever see the token.

pub mod agents;
pub mod atlas;
pub mod http;
pub mod kube;
pub mod mongo;
pub mod secrets;

use crate::credentials::{self, Credentials};
use crate::fleet::Fleet;
use ripcord_engine::run::{Key, TargetSpec};
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
}

/// The real performer.
pub struct Actions {
    http: http::Http,
    fleet: Arc<Fleet>,
    atlas: Option<atlas::Atlas>,
    secrets: secrets::Secrets,
    mongo: mongo::Mongo,
    kube: Option<kube::Kube>,
    credentials: Credentials,
}

impl Actions {
    pub fn new(fleet: Arc<Fleet>, secrets: secrets::Secrets) -> Self {
        Self {
            http: http::Http::new(),
            fleet,
            atlas: None,
            secrets,
            mongo: mongo::Mongo::new(),
            kube: None,
            credentials: Credentials::default(),
        }
    }

    /// The credentials runbooks may name (also handed to
    /// `atlas.connection_string`).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.atlas = self.atlas.map(|a| a.with_credentials(credentials.clone()));
        self.credentials = credentials;
        self
    }

    /// Enables k8s.* actions.
    pub fn with_kube(mut self, kube: kube::Kube) -> Self {
        self.kube = Some(kube);
        self
    }

    /// Enables atlas.* actions.
    pub fn with_atlas(mut self, atlas: atlas::Atlas) -> Self {
        self.atlas = Some(atlas.with_credentials(self.credentials.clone()));
        self
    }
}

impl Performer for Actions {
    fn perform(&self, r: Request) -> BoxFuture<Outcome> {
        // An agent step given an output that carries a credential (say a
        // connection string) would get the token text and fail obscurely.
        if r.target.is_some() {
            let names = credentials::referenced(&r.args);
            if !names.is_empty() {
                let msg = format!(
                    "{} runs on an agent, and its arguments carry credentials ({}); credentials are never sent to \
                     agents: give this step arguments without them",
                    r.action,
                    names.join(", ")
                );
                return Box::pin(async move { Outcome::Failed(msg) });
            }
        }
        // Only the integrations that use a credential get its value; the
        // rest (notify, …) see the token, never the password.
        let uses = r.target.is_none() && ripcord_engine::catalogue::takes_credentials(&r.action);
        let args = if uses {
            match self.credentials.expand(&r.args) {
                Ok(args) => args,
                Err(e) => {
                    let msg = e.to_string();
                    return Box::pin(async move { Outcome::Failed(msg) });
                }
            }
        } else {
            r.args.clone()
        };
        let work = self.dispatch(Request { args, ..r });
        let credentials = self.credentials.clone();
        Box::pin(async move {
            match work.await {
                Outcome::Succeeded(out) => {
                    Outcome::Succeeded(out.into_iter().map(|(k, v)| (k, credentials.conceal(v))).collect())
                }
                Outcome::Failed(e) => Outcome::Failed(credentials.conceal_str(&e)),
            }
        })
    }

    fn has_credential(&self, name: &str) -> bool {
        self.credentials.contains(name)
    }

    fn conceal(&self, text: &str) -> String {
        self.credentials.conceal_str(text)
    }
}

impl Actions {
    /// The action itself, with credentials already in its arguments.
    fn dispatch(&self, r: Request) -> BoxFuture<Outcome> {
        match r.action.as_str() {
            "noop" => Box::pin(async { Outcome::Succeeded(BTreeMap::new()) }),
            "http.check" if r.target.is_none() => {
                let http = self.http.clone();
                Box::pin(async move { http.check(&r.key, &r.args).await })
            }
            _ if r.target.is_some() => Box::pin(agents::perform(Arc::clone(&self.fleet), r)),
            a if a.starts_with("atlas.") => match &self.atlas {
                Some(atlas) => {
                    let atlas = atlas.clone();
                    Box::pin(async move {
                        let timeout = r.timeout_ms.map(std::time::Duration::from_millis);
                        atlas.perform_with_timeout(&r.action, &r.args, &r.key, timeout).await
                    })
                }
                None => Box::pin(async {
                    Outcome::Failed("atlas.* actions need an [atlas] section in the coordinator config".into())
                }),
            },
            a if a.starts_with("k8s.") => match &self.kube {
                Some(kube) => {
                    let kube = kube.clone();
                    Box::pin(async move {
                        let timeout = r.timeout_ms.map(std::time::Duration::from_millis);
                        kube.perform(&r.action, &r.args, &r.key, timeout).await
                    })
                }
                None => Box::pin(async {
                    Outcome::Failed("k8s.* actions need a [kube] section in the coordinator config".into())
                }),
            },
            a if a.starts_with("aws.") => {
                let secrets = self.secrets.clone();
                Box::pin(async move { secrets.perform(&r.action, &r.args, &r.key).await })
            }
            a if a.starts_with("mongo.") => {
                let mongo = self.mongo.clone();
                Box::pin(async move {
                    let timeout = r.timeout_ms.map(std::time::Duration::from_millis);
                    mongo.perform_with_timeout(&r.action, &r.args, &r.key, timeout).await
                })
            }
            "notify" => {
                let http = self.http.clone();
                Box::pin(async move { http.notify(&r.key, &r.args).await })
            }
            other => {
                let msg = format!("action {other} is not available in this version of ripcord");
                Box::pin(async move { Outcome::Failed(msg) })
            }
        }
    }
}
