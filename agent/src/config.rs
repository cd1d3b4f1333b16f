//! The agent's configuration file (TOML).
//!
//! ```toml
//! id = "cache-1"                          # must equal the certificate's name
//! coordinator = "https://coord.internal:7443"
//!
//! [tls]
//! ca = "/etc/ripcord/ca.crt"
//! cert = "/etc/ripcord/cache-1.crt"
//! key = "/etc/ripcord/cache-1.key"
//!
//! [labels]
//! role = "redis"
//! env = "prod"
//!
//! [allow]
//! actions = ["redis.ping", "redis.info"]
//! ```
//!
//! Unknown fields are errors; relative paths resolve against the config
//! file's directory.

use crate::policy::{AllowSection, Allowlist};
use ripcord_engine::auth::check_name;
use ripcord_engine::duration;
use ripcord_pki::tls::TlsFiles;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated agent configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: String,
    pub coordinator: String,
    pub server_name: Option<String>,
    pub tls: TlsFiles,
    pub labels: BTreeMap<String, String>,
    pub allow: Allowlist,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub state_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// This agent's id; the coordinator refuses it unless it equals the name
    /// in the agent's certificate.
    id: String,
    /// The coordinator's URL, e.g. "https://coordinator.internal:7443".
    coordinator: String,
    /// Name to expect in the coordinator's certificate, if it differs from
    /// the URL's host.
    #[serde(default)]
    server_name: Option<String>,
    /// Certificate files.
    tls: TlsSection,
    /// Labels that runbook steps select agents by (e.g. role, env, host).
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// What this agent may do. Anything not named here is refused.
    #[serde(default)]
    allow: AllowSection,
    /// Where the agent keeps its command journal. Default: "/var/lib/ripcord-agent".
    #[serde(default)]
    state_dir: Option<PathBuf>,
    /// Reconnection backoff.
    #[serde(default)]
    reconnect: ReconnectSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    /// The ripcord CA certificate; the coordinator's certificate must be signed by it.
    ca: PathBuf,
    /// This agent's certificate (role "agent").
    cert: PathBuf,
    /// This agent's private key.
    key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconnectSection {
    /// First retry delay after a lost connection. Default "200ms".
    #[serde(default, with = "opt_duration")]
    min: Option<Duration>,
    /// Longest delay between retries. Default "10s".
    #[serde(default, with = "opt_duration")]
    max: Option<Duration>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        super::duration::parse(&s).map(Some).map_err(serde::de::Error::custom)
    }
}

/// A configuration that cannot be used; the message names the file and,
/// where known, line and column.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Config {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let file: File = toml::from_str(text).map_err(|e| {
            Error(ripcord_engine::position::located(path, text, e.span().map(|s| s.start), e.message().trim_end()))
        })?;
        let at = |field: &str, msg: String| Error(format!("{}: {field}: {msg}", path.display()));
        check_name(&file.id).map_err(|e| at("id", e.to_string()))?;
        if !(file.coordinator.starts_with("https://")) {
            return Err(at("coordinator", format!("\"{}\" must be an https:// URL", file.coordinator)));
        }
        let allow = Allowlist::from_section(file.allow).map_err(|e| Error(format!("{}: allow.{e}", path.display())))?;
        for (k, v) in &file.labels {
            let sel = format!("{k}={v}");
            sel.parse::<ripcord_engine::Selector>().map_err(|e| at(&format!("labels.{k}"), e.to_string()))?;
        }
        let reconnect_min = file.reconnect.min.unwrap_or(Duration::from_millis(200));
        let reconnect_max = file.reconnect.max.unwrap_or(Duration::from_secs(10));
        if reconnect_min.is_zero() || reconnect_max < reconnect_min {
            return Err(at("reconnect", "need 0 < min <= max".to_string()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(Config {
            id: file.id,
            coordinator: file.coordinator,
            server_name: file.server_name,
            tls: TlsFiles { ca: resolve(file.tls.ca), cert: resolve(file.tls.cert), key: resolve(file.tls.key) },
            labels: file.labels,
            allow,
            reconnect_min,
            reconnect_max,
            state_dir: file.state_dir.map(resolve).unwrap_or_else(|| PathBuf::from("/var/lib/ripcord-agent")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "cache-1"
coordinator = "https://127.0.0.1:7443"

[tls]
ca = "ca.crt"
cert = "cache-1.crt"
key = "cache-1.key"

[labels]
role = "redis"

[allow]
actions = ["redis.ping"]
"#;

    #[test]
    fn good_config() {
        let c = Config::parse(GOOD, Path::new("/etc/ripcord/agent.toml")).unwrap();
        assert_eq!(c.id, "cache-1");
        assert_eq!(c.tls.key, Path::new("/etc/ripcord/cache-1.key"));
        assert_eq!(c.allow.actions(), ["redis.ping"]);
        assert_eq!(c.reconnect_max, Duration::from_secs(10));
    }

    #[test]
    fn errors_name_the_place() {
        let table: [(&str, &str); 5] = [
            (&GOOD.replace("[labels]", "[label]"), "a.toml:10:2: unknown field `label`"),
            (
                &GOOD.replace("redis.ping", "redis.pong"),
                "allow.actions: unknown action \"redis.pong\" (did you mean \"redis.ping\"?)",
            ),
            (
                &GOOD.replace("https://", "http://"),
                "a.toml: coordinator: \"http://127.0.0.1:7443\" must be an https:// URL",
            ),
            (&GOOD.replace("\"cache-1\"", "\"cache 1\""), "a.toml: id: name \"cache 1\""),
            (&GOOD.replace("redis\"\n", "re dis\"\n"), "labels.role"),
        ];
        for (text, expect) in table {
            let e = Config::parse(text, Path::new("a.toml")).unwrap_err().to_string();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
    }
}
