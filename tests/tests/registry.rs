//! The registry against the real coordinator integrations: every action
//! the registry says an integration performs is implemented by it. Each
//! is called through the real router with no arguments, so it must fail as
//! an argument error of that action (or succeed, for `noop`) — never as an
//! unknown action, a missing route or a missing config section. No request
//! leaves the process: the arguments are refused before any is made, and
//! every endpoint is a closed loopback port.

use ripcord_coordinator::fleet::Fleet;
use ripcord_coordinator::integrations::atlas::{Atlas, AtlasAuth, AtlasConfig};
use ripcord_coordinator::integrations::kube::{Kube, KubeConfig};
use ripcord_coordinator::integrations::secrets::{Secrets, SecretsConfig};
use ripcord_coordinator::integrations::{Actions, Outcome, Performer, Request};
use ripcord_coordinator::store::Store;
use ripcord_engine::registry;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use std::sync::Arc;
use std::time::Duration;

const CLOSED: &str = "127.0.0.1:9";

async fn actions(dir: &std::path::Path) -> Actions {
    let key = dir.join("atlas-key");
    std::fs::write(&key, "private").unwrap();
    let atlas = Atlas::new(&AtlasConfig {
        base_url: format!("http://{CLOSED}"),
        token_url: format!("http://{CLOSED}/token"),
        auth: AtlasAuth::ApiKey { public_key: "public".into(), private_key_file: key },
        poll_interval: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(200),
    })
    .unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://{CLOSED}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: ns}}\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    let kube = Kube::new(&KubeConfig { kubeconfig: Some(kubeconfig), ..KubeConfig::default() }).await.unwrap();
    let aws = SecretsConfig { endpoint_url: Some(format!("http://{CLOSED}")), region: Some("us-east-1".into()) };
    let secrets = Secrets::with_static_credentials(&aws, "AKIDEXAMPLE", "not-a-secret").await;
    let fleet = Arc::new(Fleet::load(Store::memory(), 4).unwrap());
    Actions::new(fleet).with_atlas(atlas).with_kube(kube).with_secrets(secrets)
}

#[tokio::test]
async fn every_action_the_registry_gives_an_integration_is_implemented_there() {
    ripcord_pki::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let actions = actions(dir.path()).await;
    for a in registry::ACTIONS.iter().filter(|a| a.integration().is_some()) {
        let request = Request {
            key: Key { run: "r".into(), step: "s".into(), attempt: 1 },
            action: a.name.into(),
            args: Value::Map(Default::default()),
            target: None,
            timeout_ms: Some(5_000),
        };
        match actions.perform(request).await {
            Outcome::Succeeded(_) => assert_eq!(a.name, "noop", "{} succeeded with no arguments", a.name),
            Outcome::Failed(e) => {
                for unimplemented in ["unknown action", "not available", "need an [", "timed out"] {
                    assert!(!e.contains(unimplemented), "{}: {e}", a.name);
                }
            }
        }
    }
}
