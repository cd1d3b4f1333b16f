//! [`Actions`], the real [`Performer`]: routes each action where the
//! registry says it runs and wraps every call the same way.

use super::{
    BoxFuture, Call, Integration, Outcome, Performer, Request, agents, atlas, http, kube, mongo, secrets, subruns,
};
use crate::credentials::{self, Credentials};
use crate::fleet::Fleet;
use crate::notices::{Delivery, Notices};
use ripcord_engine::run::Notice;
use ripcord_engine::registry::{self, Runs};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long past the step's timeout a call may still run: the integration's
/// own waits stop at the timeout and say what they waited for; this cuts
/// off a call that hangs anyway.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

/// The real performer.
pub struct Actions {
    fleet: Arc<Fleet>,
    integrations: BTreeMap<registry::Integration, Arc<dyn Integration>>,
    atlas: Option<atlas::Atlas>,
    credentials: Credentials,
    subruns: subruns::SubRuns,
    notices: Option<Notices>,
}

impl Actions {
    /// The integrations that need no config section (HTTP, MongoDB) and
    /// agent actions through `fleet`.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let mut integrations: BTreeMap<registry::Integration, Arc<dyn Integration>> = BTreeMap::new();
        integrations.insert(registry::Integration::Builtin, Arc::new(Builtin));
        integrations.insert(registry::Integration::Http, Arc::new(http::Http::new()));
        integrations.insert(registry::Integration::Mongo, Arc::new(mongo::Mongo::new()));
        let subruns = subruns::SubRuns::default();
        integrations.insert(registry::Integration::Runs, Arc::new(subruns.clone()));
        Self { fleet, integrations, atlas: None, credentials: Credentials::default(), subruns, notices: None }
    }

    /// Run notices also reach the roster's contacts.
    pub fn with_notices(mut self, notices: Notices) -> Self {
        self.notices = Some(notices);
        self
    }

    /// `runbook.run`'s integration, to be given the driver's handle once
    /// the driver exists.
    pub fn subruns(&self) -> subruns::SubRuns {
        self.subruns.clone()
    }

    /// The credentials runbooks may name (also handed to
    /// `atlas.connection_string`).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        if let Some(atlas) = self.atlas.take() {
            self = self.with_atlas(atlas);
        }
        self
    }

    /// Enables `k8s.*` actions.
    pub fn with_kube(self, kube: kube::Kube) -> Self {
        self.with(registry::Integration::Kube, Arc::new(kube))
    }

    /// Enables `aws.*` actions.
    pub fn with_secrets(self, secrets: secrets::Secrets) -> Self {
        self.with(registry::Integration::Aws, Arc::new(secrets))
    }

    /// Enables `atlas.*` actions.
    pub fn with_atlas(mut self, atlas: atlas::Atlas) -> Self {
        let atlas = atlas.with_credentials(self.credentials.clone());
        self.atlas = Some(atlas.clone());
        self.with(registry::Integration::Atlas, Arc::new(atlas))
    }

    /// Replaces the integration `which` (tests use fakes).
    pub fn with(mut self, which: registry::Integration, integration: Arc<dyn Integration>) -> Self {
        self.integrations.insert(which, integration);
        self
    }

    /// The config sections whose integrations are enabled, for health and
    /// `plan`.
    pub fn configured(&self) -> Vec<String> {
        self.integrations.keys().filter_map(|i| i.section()).map(str::to_string).collect()
    }

    /// The work of `r`, before the common wrapping.
    fn route(&self, r: Request) -> Result<BoxFuture<Outcome>, String> {
        let Some(action) = registry::get(&r.action) else {
            return Err(format!("action {} is not available in this version of ripcord", r.action));
        };
        let integration = match action.runs {
            Runs::Agent => return Ok(Box::pin(agents::perform(Arc::clone(&self.fleet), r))),
            Runs::Engine => return Err(format!("{} is performed by the run itself, not by an integration", r.action)),
            Runs::Coordinator(i) => i,
        };
        if r.target.is_some() {
            return Err(format!("{} runs in the coordinator, not on agents", r.action));
        }
        let Some(performer) = self.integrations.get(&integration) else {
            let section = integration.section().unwrap_or(integration.name());
            return Err(format!(
                "{}.* actions need an [{section}] section in the coordinator config",
                integration.name()
            ));
        };
        let args =
            if action.credentials { self.credentials.expand(&r.args).map_err(|e| e.to_string())? } else { r.args };
        let timeout = r.timeout_ms.map(Duration::from_millis);
        Ok(performer.perform(Call { key: r.key, action, args, timeout }))
    }
}

impl Performer for Actions {
    fn notify(&self, run: &str, name: &str, notice: Notice) -> BoxFuture<Delivery> {
        let Some(notices) = self.notices.clone() else {
            return Box::pin(async move { Delivery { reached: vec![], error: Some("no roster".into()) } });
        };
        let (run, name) = (run.to_string(), name.to_string());
        let timeout = Duration::from_millis(super::NOTIFY_TIMEOUT_MS) + BACKSTOP_GRACE;
        Box::pin(async move {
            match tokio::time::timeout(timeout, notices.deliver(&run, &name, &notice)).await {
                Ok(d) => d,
                Err(_) => Delivery { reached: vec![], error: Some(format!("not delivered within {timeout:?}")) },
            }
        })
    }

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
        let action = r.action.clone();
        let timeout = r.timeout_ms.map(Duration::from_millis);
        let work = match self.route(r) {
            Ok(work) => work,
            Err(msg) => {
                let msg = self.credentials.conceal_str(&msg);
                return Box::pin(async move { Outcome::Failed(msg) });
            }
        };
        let credentials = self.credentials.clone();
        Box::pin(async move {
            let outcome = match timeout {
                Some(t) => tokio::time::timeout(t + BACKSTOP_GRACE, work).await.unwrap_or_else(|_| {
                    Outcome::Failed(format!("{action} timed out after {}", ripcord_engine::duration::format(t)))
                }),
                None => work.await,
            };
            match outcome {
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

/// `noop`.
struct Builtin;

impl Integration for Builtin {
    fn perform(&self, _call: Call) -> BoxFuture<Outcome> {
        Box::pin(async { Outcome::Succeeded(BTreeMap::new()) })
    }
}

impl Integration for http::Http {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let http = self.clone();
        Box::pin(async move {
            match call.action.name {
                "notify" => http.notify(&call.key, &call.args).await,
                _ => http.check(&call.key, &call.args).await,
            }
        })
    }
}

impl Integration for atlas::Atlas {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let atlas = self.clone();
        Box::pin(async move { atlas.perform_with_timeout(call.action.name, &call.args, &call.key, call.timeout).await })
    }
}

impl Integration for kube::Kube {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let kube = self.clone();
        Box::pin(async move { kube.perform(call.action.name, &call.args, &call.key, call.timeout).await })
    }
}

impl Integration for mongo::Mongo {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let mongo = self.clone();
        Box::pin(async move { mongo.perform(call.action.name, &call.args, &call.key).await })
    }
}

impl Integration for secrets::Secrets {
    fn perform(&self, call: Call) -> BoxFuture<Outcome> {
        let secrets = self.clone();
        Box::pin(async move { secrets.perform(call.action.name, &call.args, &call.key).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::Request;
    use ripcord_engine::run::Key;
    use ripcord_engine::value::Value;

    fn fleet() -> Arc<Fleet> {
        ripcord_pki::tls::install_crypto_provider();
        Arc::new(Fleet::load(crate::store::Store::temporary().unwrap(), 4).unwrap())
    }

    fn request(action: &str, timeout_ms: Option<u64>) -> Request {
        Request {
            key: Key { run: "r".into(), step: "s".into(), attempt: 1 },
            action: action.into(),
            args: Value::Map(BTreeMap::new()),
            target: None,
            timeout_ms,
        }
    }

    /// An integration that never answers.
    struct Hangs;
    impl Integration for Hangs {
        fn perform(&self, _call: Call) -> BoxFuture<Outcome> {
            Box::pin(std::future::pending())
        }
    }

    #[test]
    fn every_coordinator_action_routes_to_an_integration_the_router_knows() {
        // With every section configured (fakes), no coordinator action
        // falls through to "not available".
        let mut actions = Actions::new(fleet());
        for i in registry::Integration::ALL {
            actions = actions.with(i, Arc::new(Hangs));
        }
        for a in registry::ACTIONS.iter().filter(|a| a.integration().is_some()) {
            assert!(actions.route(request(a.name, None)).is_ok(), "{} has no route", a.name);
        }
        assert!(actions.route(request("launch.rockets", None)).is_err());
    }

    #[test]
    fn configured_names_the_sections_of_enabled_integrations_only() {
        let actions = Actions::new(fleet());
        assert!(actions.configured().is_empty(), "{:?}", actions.configured());
        let actions = actions.with(registry::Integration::Aws, Arc::new(Hangs));
        assert_eq!(actions.configured(), vec!["aws".to_string()]);
        let Err(msg) = Actions::new(fleet()).route(request("aws.update_secret", None)) else { panic!() };
        assert_eq!(msg, "aws.* actions need an [aws] section in the coordinator config");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_timeout_fails_whatever_the_integration() {
        for i in [registry::Integration::Aws, registry::Integration::Atlas, registry::Integration::Kube] {
            let action = registry::ACTIONS.iter().find(|a| a.integration() == Some(i)).unwrap();
            let actions = Actions::new(fleet()).with(i, Arc::new(Hangs));
            let outcome = actions.perform(request(action.name, Some(5_000))).await;
            assert_eq!(outcome, Outcome::Failed(format!("{} timed out after 5s", action.name)), "{i:?}");
        }
    }
}
