//! `[environments.NAME]` in the coordinator's config: what each
//! environment holds, so that drills stay inside theirs and never touch a
//! protected one (`prod` always is).
//!
//! ```toml
//! [environments.staging]
//! agents = "env=staging"                 # the agents it holds (label selector)
//! atlas_project = "5f1a…"                # Atlas project id
//! atlas_clusters = ["chat-staging"]
//! secrets = ["chat-app/staging/database"]
//! namespaces = ["staging"]
//! params = { project_id = "5f1a…", cluster = "chat-staging" }
//! secret_params = { webhook = "staging-webhook.url" }   # files holding the value
//!
//! [environments.prod]
//! agents = "env=prod"
//! …
//! ```
//!
//! The engine's [`Environment`] is what the rest of the coordinator uses;
//! this module reads the config section into it, reading secret param
//! values from their files (relative to the config file) once, at start.

use ripcord_engine::environment::Environment;
use ripcord_engine::value::Value;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One `[environments.NAME]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSection {
    /// Drills may not touch it. `prod` is protected whatever this says.
    #[serde(default)]
    pub protected: bool,
    /// Label selector of the agents it holds, e.g. "env=staging". A drill
    /// in this environment may run agent steps only on these.
    #[serde(default)]
    pub agents: Option<String>,
    /// Atlas project (group) id of its clusters.
    #[serde(default)]
    pub atlas_project: Option<String>,
    /// Its Atlas clusters.
    #[serde(default)]
    pub atlas_clusters: Vec<String>,
    /// Its AWS Secrets Manager secret ids (names or ARNs).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Its Kubernetes namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Param defaults for runs in it (only params a runbook declares are
    /// used; what a run is given wins).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Param defaults whose values are secrets (a webhook URL): each names a
    /// file holding the value, read at start. Declare those params
    /// `secret: true` in the runbook so the value is redacted.
    #[serde(default)]
    pub secret_params: BTreeMap<String, PathBuf>,
}

impl EnvironmentSection {
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in self.secret_params.values_mut() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The environment, with its secret param files read.
    pub fn load(&self, name: &str) -> Result<Environment, Error> {
        let env = || name.to_string();
        let agents = match &self.agents {
            Some(s) => Some(s.parse().map_err(|source| Error::Agents { env: env(), source })?),
            None => None,
        };
        let mut params: BTreeMap<String, Value> =
            self.params.iter().map(|(k, v)| (k.clone(), Value::str(v.clone()))).collect();
        for (k, path) in &self.secret_params {
            if params.contains_key(k) {
                return Err(Error::Twice { env: env(), param: k.clone() });
            }
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                env: env(),
                param: k.clone(),
                path: path.clone(),
                source,
            })?;
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(Error::Empty { env: env(), param: k.clone(), path: path.clone() });
            }
            params.insert(k.clone(), Value::str(value));
        }
        Ok(Environment {
            name: name.to_string(),
            protected: self.protected,
            agents,
            atlas_project: self.atlas_project.clone(),
            clusters: self.atlas_clusters.clone(),
            secrets: self.secrets.clone(),
            namespaces: self.namespaces.clone(),
            params,
        })
    }
}

/// An environment section that cannot be used; the message names the
/// section and the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("[environments.{env}] agents: {source}")]
    Agents { env: String, source: ripcord_engine::selector::SelectorError },
    #[error("[environments.{env}] {param} is in both params and secret_params")]
    Twice { env: String, param: String },
    #[error("[environments.{env}] secret_params.{param}: cannot read {}: {source}", path.display())]
    Read { env: String, param: String, path: PathBuf, source: std::io::Error },
    #[error("[environments.{env}] secret_params.{param}: {} is empty", path.display())]
    Empty { env: String, param: String, path: PathBuf },
}

/// Every environment of a config, loaded.
pub fn load_all(sections: &BTreeMap<String, EnvironmentSection>) -> Result<Vec<Environment>, Error> {
    sections.iter().map(|(name, s)| s.load(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> EnvironmentSection {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn secret_params_are_read_from_their_files_and_plain_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook.url"), "http://127.0.0.1:9/hook\n").unwrap();
        let mut s = section(
            "agents = \"env=staging\"\nparams = { cluster = \"c\" }\nsecret_params = { webhook = \"hook.url\" }\n",
        );
        s.resolve_paths(dir.path());
        let e = s.load("staging").unwrap();
        assert_eq!(e.params.get("webhook"), Some(&Value::str("http://127.0.0.1:9/hook")));
        assert_eq!(e.params.get("cluster"), Some(&Value::str("c")));
        assert!(!e.is_protected());
    }

    #[test]
    fn bad_sections_name_the_environment_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let table = [
            ("agents = \"env==x\"\n", "[environments.staging] agents: bad selector"),
            (
                "secret_params = { webhook = \"missing\" }\n",
                "[environments.staging] secret_params.webhook: cannot read",
            ),
            (
                "params = { webhook = \"a\" }\nsecret_params = { webhook = \"missing\" }\n",
                "[environments.staging] webhook is in both params and secret_params",
            ),
        ];
        for (text, expected) in table {
            let mut s = section(text);
            s.resolve_paths(dir.path());
            let e = s.load("staging").unwrap_err().to_string();
            assert!(e.starts_with(expected), "{text:?}: {e}");
        }
        assert!(toml::from_str::<EnvironmentSection>("agent = \"x\"\n").is_err(), "unknown fields are errors");
    }

    #[test]
    fn the_shipped_example_environments_read_and_prod_is_protected() {
        let example = include_str!("../../deploy/config/coordinator.toml");
        let start = example.find("# [environments.staging]").expect("the example has environments");
        // Uncomment the example: "# x" → "x", "# # note" → "# note".
        let text: String =
            example[start..].lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
        #[derive(Deserialize)]
        struct Example {
            environments: BTreeMap<String, EnvironmentSection>,
        }
        let parsed: Example = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let dir = tempfile::tempdir().unwrap();
        let mut sections = parsed.environments;
        for s in sections.values_mut() {
            for p in s.secret_params.values_mut() {
                std::fs::write(dir.path().join("hook"), "http://127.0.0.1:9/hook").unwrap();
                *p = dir.path().join("hook");
            }
        }
        let envs = load_all(&sections).unwrap();
        let names: Vec<(&str, bool)> = envs.iter().map(|e| (e.name.as_str(), e.is_protected())).collect();
        assert_eq!(names, [("prod", true), ("staging", false)]);
        assert!(envs[1].params.contains_key("webhook"));
    }
}
