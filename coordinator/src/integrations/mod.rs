//! Performing actions. [`Performer`] is the seam between the driver and the
//! outside world: the driver hands it an effect, it answers with an outcome.
//! [`Actions`] is the real one: HTTP checks and notifications here, agent
//! actions through the fleet, the cloud integrations as they arrive.

pub mod agents;
pub mod atlas;
pub mod http;
pub mod kube;
pub mod mongo;
pub mod secrets;

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
}

/// The real performer.
pub struct Actions {
    http: http::Http,
    fleet: Arc<Fleet>,
    atlas: Option<atlas::Atlas>,
    secrets: secrets::Secrets,
    mongo: mongo::Mongo,
    kube: Option<kube::Kube>,
}

impl Actions {
    pub fn new(fleet: Arc<Fleet>, secrets: secrets::Secrets) -> Self {
        Self { http: http::Http::new(), fleet, atlas: None, secrets, mongo: mongo::Mongo::new(), kube: None }
    }

    /// Enables k8s.* actions.
    pub fn with_kube(mut self, kube: kube::Kube) -> Self {
        self.kube = Some(kube);
        self
    }

    /// Enables atlas.* actions.
    pub fn with_atlas(mut self, atlas: atlas::Atlas) -> Self {
        self.atlas = Some(atlas);
        self
    }
}

impl Performer for Actions {
    fn perform(&self, r: Request) -> BoxFuture<Outcome> {
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
