//! The agent's allowlist: the only actions it performs, on the only
//! services, Redis instances, compose projects and directories its own
//! config names — whatever the coordinator asks. Paths are canonicalised
//! (symlinks resolved) and must stay inside an allowed directory.
//!
//! ```toml
//! [allow]
//! actions = ["service.restart", "redis.ping", "redis.check_aof"]
//!
//! [[allow.service]]
//! name = "redis"
//! backend = "systemd"            # systemd | sysv | compose | exec
//! unit = "redis-server"          # systemd unit / sysv script (default: name)
//! ready_redis = "cache"          # start waits until this instance answers PING
//!
//! [[allow.redis]]
//! name = "cache"
//! address = "127.0.0.1:6379"
//! data_dir = "/var/lib/redis"
//! service = "redis"
//! backup_dir = "/var/backups/redis"
//!
//! [[allow.paths]]
//! dir = "/var/backups/redis"
//! write = false
//! ```

use ripcord_engine::duration;
use ripcord_engine::{hint, registry};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// A request the allowlist does not permit. Never performed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by the agent's allowlist: {0}")]
pub struct Refused(pub String);

/// An `[allow]` section that cannot be used; the text names the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("actions: unknown action \"{action}\"{}", did_you_mean(.closest))]
    UnknownAction { action: String, closest: Option<String> },
    #[error("actions: unknown action \"{0}\" (it runs in the coordinator, not on agents)")]
    OnCoordinator(String),
    /// A service whose backend needs a field it does not have.
    #[error("{}", format!("service \"{service}\": backend {backend:?} needs {needs}").to_lowercase())]
    BackendNeeds { service: String, backend: Backend, needs: &'static str },
    #[error("service \"{service}\": ready_redis \"{redis}\" is not an allowed redis instance")]
    ReadyRedis { service: String, redis: String },
    #[error("redis \"{redis}\": service \"{service}\" is not an allowed service")]
    RedisService { redis: String, service: String },
    #[error("paths: {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },
}

fn did_you_mean(closest: &Option<String>) -> String {
    closest.as_ref().map(|c| format!(" (did you mean \"{c}\"?)")).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `systemctl start|stop|restart|is-active UNIT`.
    Systemd,
    /// `service UNIT start|stop|restart|status`, for hosts without systemd.
    Sysv,
    /// `docker compose` or `docker-compose` on `compose_file`.
    Compose,
    /// A process the agent starts from `argv` and tracks by `pid_file`.
    Exec,
}

/// A service the agent may control.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The name runbooks use (`service: redis`).
    pub name: String,
    pub backend: Backend,
    /// systemd unit or sysv script name (default: `name`).
    #[serde(default)]
    pub unit: Option<String>,
    /// exec: the command line.
    #[serde(default)]
    pub argv: Vec<String>,
    /// exec: where the pid is kept.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// exec: where the process's output goes (default: next to the pid file).
    #[serde(default)]
    pub log_file: Option<PathBuf>,
    /// compose: the compose file, project and service.
    #[serde(default)]
    pub compose_file: Option<PathBuf>,
    #[serde(default)]
    pub compose_project: Option<String>,
    #[serde(default)]
    pub compose_service: Option<String>,
    /// `start` waits until this Redis instance answers PING.
    #[serde(default)]
    pub ready_redis: Option<String>,
    /// How long `start` waits for the service to be up. Default "30s".
    #[serde(default = "default_start_timeout", with = "duration::serde_str")]
    pub start_timeout: Duration,
    /// exec: SIGTERM, then SIGKILL after this. Default "10s".
    #[serde(default = "default_grace", with = "duration::serde_str")]
    pub stop_grace: Duration,
}

fn default_start_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}

impl Service {
    pub fn unit(&self) -> &str {
        self.unit.as_deref().unwrap_or(&self.name)
    }
}

/// A Redis instance the agent may act on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    pub name: String,
    /// host:port
    pub address: String,
    /// A file holding the password (AUTH), if any.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Redis's `dir`.
    pub data_dir: PathBuf,
    /// `appenddirname`, relative to `data_dir`. Default "appendonlydir".
    #[serde(default = "default_aof_dir")]
    pub aof_dir: String,
    /// `dbfilename`. Default "dump.rdb".
    #[serde(default = "default_rdb")]
    pub rdb_file: String,
    /// The redis.conf to persist settings in (appendonly after a restore).
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// The service (in `allow.service`) that runs this instance.
    pub service: String,
    /// Where RDB backups are, and where AOF backups are written.
    pub backup_dir: PathBuf,
    /// `user[:group]` to own restored files (default: keep the current owner).
    #[serde(default)]
    pub owner: Option<String>,
    /// Parameters `redis.config_set` may change. Default maxmemory and maxmemory-policy.
    #[serde(default = "default_config_set")]
    pub config_set: Vec<String>,
    /// Most keys `redis.delete_pattern` may delete in one step. Default 100000.
    #[serde(default = "default_max_delete")]
    pub max_delete: u64,
}

fn default_aof_dir() -> String {
    "appendonlydir".into()
}
fn default_rdb() -> String {
    "dump.rdb".into()
}
fn default_config_set() -> Vec<String> {
    vec!["maxmemory".into(), "maxmemory-policy".into()]
}
fn default_max_delete() -> u64 {
    100_000
}

impl Redis {
    pub fn aof_path(&self) -> PathBuf {
        self.data_dir.join(&self.aof_dir)
    }
    pub fn rdb_path(&self) -> PathBuf {
        self.data_dir.join(&self.rdb_file)
    }
}

/// A directory files may be read from (and written to, with `write`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dir {
    pub dir: PathBuf,
    #[serde(default)]
    pub write: bool,
}

/// The `[allow]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowSection {
    /// Action names this agent performs (see `ripcord_engine::registry`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Services it may stop, start, restart and inspect.
    #[serde(default)]
    pub service: Vec<Service>,
    /// Redis instances it may act on.
    #[serde(default)]
    pub redis: Vec<Redis>,
    /// Directories for `file.copy` and `file.newest`.
    #[serde(default)]
    pub paths: Vec<Dir>,
}

#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    actions: Vec<String>,
    services: Vec<Service>,
    redis: Vec<Redis>,
    /// Canonical allowed directories, with their write flag.
    dirs: Vec<(PathBuf, bool)>,
}

impl Allowlist {
    /// Actions only (no resources).
    pub fn new(actions: Vec<String>) -> Result<Self, Error> {
        Self::from_section(AllowSection { actions, ..AllowSection::default() })
    }

    /// Validates names and cross-references; canonicalises directories
    /// (they must exist).
    pub fn from_section(section: AllowSection) -> Result<Self, Error> {
        let mut actions = section.actions;
        for a in &actions {
            if !registry::agent_actions().any(|k| k.name == a) {
                return Err(match registry::get(a) {
                    Some(_) => Error::OnCoordinator(a.clone()),
                    None => Error::UnknownAction {
                        action: a.clone(),
                        closest: hint::closest(a, registry::agent_actions().map(|k| k.name)).map(str::to_string),
                    },
                });
            }
        }
        actions.sort();
        actions.dedup();
        for s in &section.service {
            let need = |needs: &'static str, ok: bool| {
                if ok {
                    Ok(())
                } else {
                    Err(Error::BackendNeeds { service: s.name.clone(), backend: s.backend, needs })
                }
            };
            match s.backend {
                Backend::Exec => {
                    need("argv", !s.argv.is_empty())?;
                    need("pid_file", s.pid_file.is_some())?;
                }
                Backend::Compose => {
                    need("compose_file and compose_service", s.compose_file.is_some() && s.compose_service.is_some())?
                }
                Backend::Systemd | Backend::Sysv => {}
            }
            if let Some(r) = &s.ready_redis
                && !section.redis.iter().any(|x| &x.name == r)
            {
                return Err(Error::ReadyRedis { service: s.name.clone(), redis: r.clone() });
            }
        }
        for r in &section.redis {
            if !section.service.iter().any(|s| s.name == r.service) {
                return Err(Error::RedisService { redis: r.name.clone(), service: r.service.clone() });
            }
        }
        let mut dirs = Vec::new();
        for d in &section.paths {
            let c = d.dir.canonicalize().map_err(|source| Error::Dir { dir: d.dir.clone(), source })?;
            dirs.push((c, d.write));
        }
        Ok(Self { actions, services: section.service, redis: section.redis, dirs })
    }

    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    pub fn permits(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }

    pub fn check_action(&self, action: &str) -> Result<(), Refused> {
        if self.permits(action) {
            Ok(())
        } else {
            Err(Refused(format!("action {action} is not allowed on this agent")))
        }
    }

    pub fn service(&self, name: &str) -> Result<&Service, Refused> {
        self.services.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
            Refused(format!("service \"{name}\" is not allowed (allowed: {})", list(&names)))
        })
    }

    pub fn redis(&self, name: &str) -> Result<&Redis, Refused> {
        self.redis.iter().find(|r| r.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.redis.iter().map(|s| s.name.as_str()).collect();
            Refused(format!("redis instance \"{name}\" is not allowed (allowed: {})", list(&names)))
        })
    }

    /// A compose service: `project` and `service` must be those of an
    /// allowed compose-backed service.
    pub fn compose(&self, project: &str, service: &str) -> Result<&Service, Refused> {
        self.services
            .iter()
            .find(|s| {
                s.backend == Backend::Compose
                    && s.compose_service.as_deref() == Some(service)
                    && s.compose_project.as_deref().unwrap_or(&s.name) == project
            })
            .ok_or_else(|| Refused(format!("compose service \"{service}\" of project \"{project}\" is not allowed")))
    }

    /// An existing file or directory to read, inside an allowed directory.
    pub fn readable(&self, path: &str) -> Result<PathBuf, Refused> {
        let p = no_dotdot(path)?;
        let c = p.canonicalize().map_err(|e| Refused(format!("{path}: {e}")))?;
        self.inside(&c, false).map(|_| c).map_err(|_| Refused(format!("{path} is outside the allowed directories")))
    }

    /// A file to write: its directory must exist and be a writable allowed
    /// directory (or below one); an existing symlink is refused.
    pub fn writable(&self, path: &str) -> Result<PathBuf, Refused> {
        let p = no_dotdot(path)?;
        let name = p.file_name().ok_or_else(|| Refused(format!("{path} has no file name")))?.to_owned();
        let parent = p.parent().filter(|x| !x.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let cp = parent.canonicalize().map_err(|e| Refused(format!("{}: {e}", parent.display())))?;
        let target = cp.join(name);
        if target.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Refused(format!("{path} is a symbolic link; refusing to write through it")));
        }
        self.inside(&cp, true)
            .map(|_| target)
            .map_err(|_| Refused(format!("{path} is outside the writable directories")))
    }

    fn inside(&self, canonical: &Path, write: bool) -> Result<(), ()> {
        if self.dirs.iter().any(|(d, w)| canonical.starts_with(d) && (!write || *w)) { Ok(()) } else { Err(()) }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

fn no_dotdot(path: &str) -> Result<PathBuf, Refused> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(Refused(format!("{path}: only absolute paths are accepted")));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(Refused(format!("{path}: \"..\" is not allowed in paths")));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_agent_actions() {
        let a = Allowlist::new(vec!["redis.ping".into(), "service.stop".into(), "redis.ping".into()]).unwrap();
        assert!(a.permits("redis.ping"));
        assert!(!a.permits("redis.check_aof"));
        assert_eq!(a.actions().len(), 2);
        let e = Allowlist::new(vec!["atlas.pitr_restore".into()]).unwrap_err().to_string();
        assert!(e.contains("coordinator"), "{e}");
    }

    #[test]
    fn paths_stay_inside_allowed_dirs() {
        let root = tempfile::tempdir().unwrap();
        let ok = root.path().join("backups");
        let ro = root.path().join("readonly");
        let outside = root.path().join("outside");
        for d in [&ok, &ro, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(ok.join("a.rdb"), "x").unwrap();
        std::fs::write(outside.join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), ok.join("link")).unwrap();
        std::os::unix::fs::symlink(&outside, ok.join("dirlink")).unwrap();
        let allow = Allowlist::from_section(AllowSection {
            paths: vec![Dir { dir: ok.clone(), write: true }, Dir { dir: ro.clone(), write: false }],
            ..Default::default()
        })
        .unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_string();
        assert!(allow.readable(&s(&ok.join("a.rdb"))).is_ok());
        let refused = [
            (allow.readable(&s(&outside.join("secret"))), "outside the allowed"),
            (allow.readable(&format!("{}/../outside/secret", s(&ok))), "\"..\" is not allowed"),
            (allow.readable(&s(&ok.join("link"))), "outside the allowed"),
            (allow.readable(&s(&ok.join("dirlink/secret"))), "outside the allowed"),
            (allow.readable("relative/a.rdb"), "only absolute paths"),
            (allow.writable(&s(&ro.join("new"))), "outside the writable"),
            (allow.writable(&s(&ok.join("link"))), "symbolic link"),
            (allow.writable(&s(&ok.join("dirlink/new"))), "outside the writable"),
        ];
        for (r, expect) in refused {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(expect), "expected {expect:?} in {e:?}");
        }
        assert_eq!(allow.writable(&s(&ok.join("new.rdb"))).unwrap(), ok.canonicalize().unwrap().join("new.rdb"));
    }

    #[test]
    fn resources_are_checked_by_name() {
        let section: AllowSection = toml::from_str(
            r#"
actions = ["service.restart", "redis.ping"]
[[service]]
name = "redis"
backend = "exec"
argv = ["redis-server"]
pid_file = "/tmp/x.pid"
ready_redis = "cache"
[[redis]]
name = "cache"
address = "127.0.0.1:6379"
data_dir = "/tmp"
service = "redis"
backup_dir = "/tmp"
"#,
        )
        .unwrap();
        let a = Allowlist::from_section(section).unwrap();
        assert_eq!(a.service("redis").unwrap().start_timeout, Duration::from_secs(30));
        assert_eq!(
            a.service("nginx").unwrap_err().to_string(),
            "refused by the agent's allowlist: service \"nginx\" is not allowed (allowed: redis)"
        );
        assert!(a.redis("other").is_err());
        assert!(a.check_action("redis.check_aof").is_err());
    }
}
