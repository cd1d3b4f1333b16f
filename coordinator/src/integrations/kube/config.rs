//! The `[kube]` section of the coordinator configuration.

use ripcord_engine::duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[kube]` section of the coordinator configuration.
///
/// ```toml
/// [kube]
/// kubeconfig = "/etc/ripcord/kubeconfig"
/// context = "prod"
/// namespace = "chat"
/// ```
///
/// An empty `[kube]` section uses `KUBECONFIG`, else `~/.kube/config`, else
/// the in-cluster service account (a coordinator running in a pod).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeConfig {
    /// Path of the kubeconfig file to use. Default: the `KUBECONFIG`
    /// variable, else `~/.kube/config`, else the in-cluster configuration
    /// (the pod's service account).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its `current-context`.
    #[serde(default)]
    pub context: Option<String>,
    /// Namespace of the steps that name none. Default "default".
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// How often `k8s.rollout_wait` reads the deployment. Default "2s".
    #[serde(default = "default_poll_interval", with = "duration::serde_str")]
    pub poll_interval: Duration,
}

fn default_namespace() -> String {
    "default".into()
}
pub(super) fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self { kubeconfig: None, context: None, namespace: default_namespace(), poll_interval: default_poll_interval() }
    }
}

impl KubeConfig {
    /// Resolves a relative `kubeconfig` path against `base` (the directory
    /// of the config file).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.kubeconfig
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_refuses_unknown_fields() {
        let c: KubeConfig = toml::from_str("").unwrap();
        assert_eq!(c, KubeConfig::default());
        assert_eq!(c.namespace, "default");
        let c: KubeConfig =
            toml::from_str("kubeconfig = \"kc\"\ncontext = \"prod\"\nnamespace = \"chat\"\npoll_interval = \"5s\"\n")
                .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        let mut c2 = c.clone();
        c2.resolve_paths(Path::new("/etc/ripcord"));
        assert_eq!(c2.kubeconfig.as_deref(), Some(Path::new("/etc/ripcord/kc")));
        let bad = toml::from_str::<KubeConfig>("token = \"x\"\n").unwrap_err().to_string();
        assert!(bad.contains("unknown field `token`"), "{bad}");
    }
}
