//! The `[atlas]` section of the coordinator configuration.

use ripcord_engine::duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[atlas]` section of the coordinator configuration.
///
/// ```toml
/// [atlas]
/// poll_interval = "10s"
///
/// [atlas.auth]
/// client_id = "mdb_sa_id_0123456789abcdef01234567"
/// client_secret_file = "/etc/ripcord/atlas-client-secret"
/// ```
///
/// or, with a programmatic API key:
///
/// ```toml
/// [atlas.auth]
/// public_key = "abcdefgh"
/// private_key_file = "/etc/ripcord/atlas-private-key"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtlasConfig {
    /// Base URL of the Admin API v2. Default "https://cloud.mongodb.com/api/atlas/v2".
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// OAuth token endpoint used by service accounts. Default
    /// "https://cloud.mongodb.com/api/oauth/token".
    #[serde(default = "default_token_url")]
    pub token_url: String,
    /// How ripcord authenticates: a service account (`client_id` and
    /// `client_secret_file`, recommended) or a programmatic API key
    /// (`public_key` and `private_key_file`). Secrets are only ever read from
    /// files, never written inline.
    pub auth: AtlasAuth,
    /// First wait between two polls of a cluster, restore job or snapshot;
    /// doubles on every poll up to `max_poll_interval`, with jitter. Default "10s".
    #[serde(default = "default_poll_interval", with = "duration::serde_str")]
    pub poll_interval: Duration,
    /// Longest wait between two polls. Default "60s".
    #[serde(default = "default_max_poll_interval", with = "duration::serde_str")]
    pub max_poll_interval: Duration,
}

/// Atlas credentials: where they are, never what they are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawAuth")]
pub enum AtlasAuth {
    /// A service account: OAuth 2.0 client credentials, Bearer tokens.
    ServiceAccount { client_id: String, client_secret_file: PathBuf },
    /// A programmatic API key: HTTP Digest with the public key as user name.
    ApiKey { public_key: String, private_key_file: PathBuf },
}

/// `[atlas.auth]` names neither kind of credentials completely, or both.
#[derive(Debug, thiserror::Error)]
#[error(
    "atlas auth needs either client_id and client_secret_file (a service account) \
     or public_key and private_key_file (a programmatic API key), not a mix"
)]
pub struct MixedAuth;

/// `[atlas.auth]` as written; [`AtlasAuth`] is what it must mean.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    /// Service account client id (`mdb_sa_id_…`).
    #[serde(default)]
    client_id: Option<String>,
    /// File holding the service account's client secret.
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    /// Programmatic API key: the public key (the Digest user name).
    #[serde(default)]
    public_key: Option<String>,
    /// File holding the API key's private key (the Digest password).
    #[serde(default)]
    private_key_file: Option<PathBuf>,
}

impl TryFrom<RawAuth> for AtlasAuth {
    type Error = MixedAuth;

    fn try_from(r: RawAuth) -> Result<Self, MixedAuth> {
        match (r.client_id, r.client_secret_file, r.public_key, r.private_key_file) {
            (Some(client_id), Some(client_secret_file), None, None) => {
                Ok(AtlasAuth::ServiceAccount { client_id, client_secret_file })
            }
            (None, None, Some(public_key), Some(private_key_file)) => {
                Ok(AtlasAuth::ApiKey { public_key, private_key_file })
            }
            _ => Err(MixedAuth),
        }
    }
}

fn default_base_url() -> String {
    "https://cloud.mongodb.com/api/atlas/v2".into()
}
fn default_token_url() -> String {
    "https://cloud.mongodb.com/api/oauth/token".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_poll_interval() -> Duration {
    Duration::from_secs(60)
}

impl AtlasConfig {
    /// Resolves relative secret file paths against `base` (the directory of
    /// the config file).
    pub fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut self.auth {
            AtlasAuth::ServiceAccount { client_secret_file, .. } => resolve(client_secret_file),
            AtlasAuth::ApiKey { private_key_file, .. } => resolve(private_key_file),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_both_auth_methods_and_refuses_mixes() {
        let sa: AtlasConfig =
            toml::from_str("[auth]\nclient_id = \"mdb_sa_id_1\"\nclient_secret_file = \"s\"\n").unwrap();
        assert_eq!(sa.base_url, "https://cloud.mongodb.com/api/atlas/v2");
        assert_eq!(sa.poll_interval, Duration::from_secs(10));
        assert_eq!(sa.max_poll_interval, Duration::from_secs(60));
        assert!(matches!(sa.auth, AtlasAuth::ServiceAccount { .. }));
        let key: AtlasConfig =
            toml::from_str("poll_interval = \"2s\"\n[auth]\npublic_key = \"abc\"\nprivate_key_file = \"/k\"\n")
                .unwrap();
        assert_eq!(key.poll_interval, Duration::from_secs(2));
        assert!(matches!(key.auth, AtlasAuth::ApiKey { .. }));
        let mixed = toml::from_str::<AtlasConfig>("[auth]\nclient_id = \"x\"\nprivate_key_file = \"/k\"\n");
        assert!(mixed.unwrap_err().to_string().contains("not a mix"));
        let inline = toml::from_str::<AtlasConfig>("[auth]\nclient_id = \"x\"\nclient_secret = \"hunter2\"\n");
        assert!(inline.unwrap_err().to_string().contains("unknown field `client_secret`"));
    }

    #[test]
    fn relative_secret_files_resolve_against_the_config_directory() {
        let mut c: AtlasConfig = toml::from_str("[auth]\npublic_key = \"abc\"\nprivate_key_file = \"k\"\n").unwrap();
        c.resolve_paths(Path::new("/etc/ripcord"));
        assert_eq!(c.auth, AtlasAuth::ApiKey { public_key: "abc".into(), private_key_file: "/etc/ripcord/k".into() });
    }
}
