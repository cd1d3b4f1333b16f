//! The coordinator's configuration file (TOML).
//!
//! ```toml
//! listen = "0.0.0.0:7443"
//! data_dir = "/var/lib/ripcord"
//!
//! [tls]
//! ca = "/etc/ripcord/ca.crt"
//! cert = "/etc/ripcord/coordinator.crt"
//! key = "/etc/ripcord/coordinator.key"
//! ```
//!
//! Unknown fields are errors. Relative paths are resolved against the
//! directory of the config file, so a config and its certificates can move
//! together. Read once at start by `main`; nothing below reads the
//! environment.

use ripcord_engine::duration;
use ripcord_pki::tls::TlsFiles;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated coordinator configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsFiles,
    pub heartbeat_interval: Duration,
    pub ping_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_concurrent_commands: usize,
    /// Where the bound address is written once listening (for scripts and
    /// tests that ask for port 0).
    pub address_file: Option<PathBuf>,
    /// MongoDB Atlas Admin API access, if atlas.* actions are used.
    pub atlas: Option<crate::integrations::atlas::AtlasConfig>,
    /// AWS Secrets Manager (endpoint, region), if aws.* actions are used;
    /// credentials come from the AWS chain. Without it no AWS client is built.
    pub aws: Option<crate::integrations::secrets::SecretsConfig>,
    /// Kubernetes access, if k8s.* actions are used.
    pub kube: Option<crate::integrations::kube::KubeConfig>,
    /// Credentials runbooks name (`[credentials.NAME]`), paths resolved.
    pub credentials: BTreeMap<String, crate::credentials::CredentialConfig>,
    /// Environments (`[environments.NAME]`), secret param paths resolved.
    pub environments: BTreeMap<String, crate::environments::EnvironmentSection>,
    /// The drill schedules (`drills.yaml`) the scheduler runs, if any.
    pub drills: Option<PathBuf>,
    /// The roster (`[contacts.NAME]`), channel file paths resolved; read
    /// and checked by `contacts::Roster::load` before the listener binds.
    pub contacts: BTreeMap<String, crate::contacts::ContactSection>,
    /// The escalation policy (`[escalation]`); absent: the playbook's
    /// tiers once there are contacts. Checked against the roster by
    /// `escalation::Escalation::load` before the listener binds.
    pub escalation: Option<crate::escalation::EscalationSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Address and port the gRPC (mTLS) listener binds, e.g. "0.0.0.0:7443".
    /// Port 0 picks a free port (see `address_file`).
    listen: SocketAddr,
    /// Directory for the sled database (fleet, runs). Created if missing.
    data_dir: PathBuf,
    /// Certificate files.
    tls: TlsSection,
    /// How often agents must send a heartbeat; an agent silent for three
    /// intervals is marked disconnected. Default "5s".
    #[serde(default, with = "opt_duration")]
    heartbeat_interval: Option<Duration>,
    /// How long `agents ping` waits for each agent by default. Default "5s".
    #[serde(default, with = "opt_duration")]
    ping_timeout: Option<Duration>,
    /// Longest a client may take to finish the TLS handshake. Default "10s".
    #[serde(default, with = "opt_duration")]
    handshake_timeout: Option<Duration>,
    /// Most commands in flight at once across the fleet. Default 1024.
    #[serde(default)]
    max_concurrent_commands: Option<usize>,
    /// If set, the actual listening address is written to this file once the
    /// listener is bound.
    #[serde(default)]
    address_file: Option<PathBuf>,
    /// MongoDB Atlas Admin API: base URL and credentials (secrets in files).
    /// Needed only by runbooks with atlas.* steps.
    #[serde(default)]
    atlas: Option<crate::integrations::atlas::AtlasConfig>,
    /// AWS Secrets Manager: optional endpoint and region. Credentials come
    /// from the usual AWS chain (environment, profile, instance role).
    /// Needed only by runbooks with aws.* steps; without it no AWS client is
    /// built, so the AWS chain (and its instance-metadata lookups) never runs.
    #[serde(default)]
    aws: Option<crate::integrations::secrets::SecretsConfig>,
    /// Kubernetes: kubeconfig (set it explicitly), context, default namespace.
    /// Needed only by runbooks with k8s.* steps.
    #[serde(default)]
    kube: Option<crate::integrations::kube::KubeConfig>,
    /// Credentials that runbooks name instead of holding them:
    /// `[credentials.chatdb] user = "chat-app", password_file = "…"`.
    /// `atlas.connection_string` puts them into the URI it returns
    /// (`credentials: chatdb`); a step argument can use
    /// `{{ credentials.NAME.user }}`, `.password` or `.password_url_encoded`.
    #[serde(default)]
    credentials: BTreeMap<String, crate::credentials::CredentialConfig>,
    /// Environments: what each holds (agents, Atlas project and clusters,
    /// secrets, namespaces) and its param defaults. Drills name one and may
    /// touch only what it holds; `prod` (and any `protected = true`) is
    /// never touched by a drill.
    #[serde(default)]
    environments: BTreeMap<String, crate::environments::EnvironmentSection>,
    /// The drill schedules file (`drills.yaml`, see `ripcord drills check`):
    /// the coordinator starts each occurrence itself. Without it, no
    /// scheduler runs.
    #[serde(default)]
    drills: Option<PathBuf>,
    /// The roster the playbook escalates to: people with their on-call roles
    /// (`roles = ["devops_lead"]`, name, phone, Slack handle) and vendors'
    /// support (`vendor = "mongodb-atlas"`, with instructions), each with
    /// optional channels whose secrets are in files (`slack_webhook_file`,
    /// `webhook_file`, `pagerduty_routing_key_file`). See `contacts.rs`.
    #[serde(default)]
    contacts: BTreeMap<String, crate::contacts::ContactSection>,
    /// Who is called when, counted from the declared incident: tiers of
    /// roles, vendors or contacts (default: the playbook's 0, 15 and 30
    /// minutes), who hears of runs starting and ending, per-runbook tiers,
    /// whether drills page, PagerDuty's URL. See `escalation.rs`.
    #[serde(default)]
    escalation: Option<crate::escalation::EscalationSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    /// The ripcord CA certificate; clients must present a certificate it signed.
    ca: PathBuf,
    /// The coordinator's certificate (role "coordinator").
    cert: PathBuf,
    /// The coordinator's private key.
    key: PathBuf,
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
/// where known, the line and column.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error(format!("cannot read config {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is used for messages and to resolve
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let file: File = toml::from_str(text).map_err(|e| {
            Error(ripcord_engine::position::located(path, text, e.span().map(|s| s.start), e.message().trim_end()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let heartbeat_interval = file.heartbeat_interval.unwrap_or(Duration::from_secs(5));
        if heartbeat_interval < Duration::from_millis(100) {
            return Err(Error(format!("{}: heartbeat_interval must be at least 100ms", path.display())));
        }
        let max_concurrent_commands = file.max_concurrent_commands.unwrap_or(1024);
        if max_concurrent_commands == 0 {
            return Err(Error(format!("{}: max_concurrent_commands must be at least 1", path.display())));
        }
        Ok(Config {
            listen: file.listen,
            data_dir: resolve(file.data_dir),
            tls: TlsFiles { ca: resolve(file.tls.ca), cert: resolve(file.tls.cert), key: resolve(file.tls.key) },
            heartbeat_interval,
            ping_timeout: file.ping_timeout.unwrap_or(Duration::from_secs(5)),
            handshake_timeout: file.handshake_timeout.unwrap_or(Duration::from_secs(10)),
            max_concurrent_commands,
            address_file: file.address_file.map(resolve),
            atlas: file.atlas.map(|mut a| {
                a.resolve_paths(base);
                a
            }),
            aws: file.aws,
            kube: file.kube.map(|mut k| {
                k.resolve_paths(base);
                k
            }),
            credentials: file
                .credentials
                .into_iter()
                .map(|(name, mut c)| {
                    c.resolve_paths(base);
                    (name, c)
                })
                .collect(),
            environments: file
                .environments
                .into_iter()
                .map(|(name, mut e)| {
                    e.resolve_paths(base);
                    (name, e)
                })
                .collect(),
            drills: file.drills.map(resolve),
            contacts: file
                .contacts
                .into_iter()
                .map(|(name, mut c)| {
                    c.resolve_paths(base);
                    (name, c)
                })
                .collect(),
            escalation: file.escalation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:0"
data_dir = "data"
heartbeat_interval = "2s"

[tls]
ca = "certs/ca.crt"
cert = "/abs/coordinator.crt"
key = "certs/coordinator.key"
"#;

    #[test]
    fn good_config_resolves_relative_paths() {
        let c = Config::parse(GOOD, Path::new("/etc/ripcord/coordinator.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/ripcord/data"));
        assert_eq!(c.tls.ca, Path::new("/etc/ripcord/certs/ca.crt"));
        assert_eq!(c.tls.cert, Path::new("/abs/coordinator.crt"));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(c.ping_timeout, Duration::from_secs(5));
        assert!(c.credentials.is_empty());
        assert!(c.contacts.is_empty());

        let with =
            format!("{GOOD}\n[contacts.kim]\nname = \"Kim\"\nroles = [\"dba\"]\nwebhook_file = \"secrets/kim.url\"\n");
        let c = Config::parse(&with, Path::new("/etc/ripcord/coordinator.toml")).unwrap();
        assert_eq!(c.contacts["kim"].webhook_file.as_deref(), Some(Path::new("/etc/ripcord/secrets/kim.url")));

        let with = format!("{GOOD}\n[credentials.chatdb]\nuser = \"chat-app\"\npassword_file = \"secrets/chatdb\"\n");
        let c = Config::parse(&with, Path::new("/etc/ripcord/coordinator.toml")).unwrap();
        assert_eq!(c.credentials["chatdb"].password_file, Path::new("/etc/ripcord/secrets/chatdb"));
        assert_eq!(c.credentials["chatdb"].user.as_deref(), Some("chat-app"));
    }

    #[test]
    fn aws_is_configured_only_by_its_section() {
        let c = Config::parse(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.aws, None, "no [aws]: no AWS client");
        let c = Config::parse(&format!("{GOOD}\n[aws]\n"), Path::new("c.toml")).unwrap();
        assert_eq!(c.aws, Some(Default::default()), "an empty [aws] uses the AWS chain");
        let c = Config::parse(&format!("{GOOD}\n[aws]\nregion = \"eu-west-1\"\n"), Path::new("c.toml")).unwrap();
        assert_eq!(c.aws.and_then(|a| a.region).as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let table: [(&str, &str); 6] = [
            (&GOOD.replace("data_dir", "datadir"), "c.toml:3:1: unknown field `datadir`"),
            (&GOOD.replace("\"2s\"", "\"2 parsecs\""), "c.toml:4:22: bad duration \"2 parsecs\""),
            (&GOOD.replace("127.0.0.1:0", "localhost"), "c.toml:2:10: invalid socket address"),
            (&GOOD.replace("key = \"certs/coordinator.key\"", ""), "missing field `key`"),
            ("listen = ", "c.toml:1:10:"),
            (
                &format!("{GOOD}\n[contacts.kim]\nname = \"Kim\"\nslack = \"@kim\"\n"),
                "c.toml:13:1: unknown field `slack`",
            ),
        ];
        for (text, expect) in table {
            let e = Config::parse(text, Path::new("c.toml")).unwrap_err().to_string();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
    }
}
