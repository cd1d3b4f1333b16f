//! A real `redis-server` for the Redis action tests: its own temp dir,
//! config file (appendonly yes, appendfsync always, no save points) and
//! loopback port, run under the agent's exec backend through an allowlist
//! parsed from TOML. Killed (by its pid) when dropped.

use super::conn::Conn;
use crate::actions::{Ctx, Output, Outputs, service};
use crate::policy::{AllowSection, Allowlist, Redis, Service};
use ::redis::Value as Reply;
use serde_json::Value;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a test Redis host's agent allows: every service and Redis action.
pub fn actions() -> impl Iterator<Item = &'static str> {
    ripcord_engine::registry::agent_actions()
        .map(|a| a.name)
        .filter(|n| n.starts_with("service.") || n.starts_with("redis."))
}

/// Polls `f` until it answers `Some`, for at most 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error of an action expected to fail.
pub fn err_of<E: std::fmt::Display>(r: Result<Outputs, E>) -> String {
    match r {
        Ok(o) => panic!("expected an error, got {o:?}"),
        Err(e) => e.to_string(),
    }
}

/// `prefix:i` for i in `range`, sorted.
pub fn names(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    let mut v: Vec<String> = range.map(|i| format!("{prefix}:{i}")).collect();
    v.sort();
    v
}

pub struct TestRedis {
    _tmp: tempfile::TempDir,
    pub name: String,
    pub port: u16,
    pub root: PathBuf,
    pub data: PathBuf,
    pub backups: PathBuf,
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    pub allow: Allowlist,
    pub out: Output,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl TestRedis {
    /// Writes the config and the allowlist; does not start Redis.
    /// `extra` is added to the `[[redis]]` entry (e.g. `max_delete = 20`).
    pub fn new(extra: &str) -> Self {
        Self::build(extra, None)
    }

    /// `new` for a Redis that requires `password` (`requirepass`), which the
    /// allowlist gives in a password file.
    pub fn with_password(password: &str) -> Self {
        Self::build("", Some(password))
    }

    fn build(extra: &str, password: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        let (data, backups) = (root.join("data"), root.join("backups"));
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&backups).unwrap();
        let port = free_port();
        let conf = root.join("redis.conf");
        let mut conf_text = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nappendonly yes\nappenddirname appendonlydir\n\
             appendfsync always\nsave \"\"\ndaemonize no\nlogfile {}\n",
            data.display(),
            root.join("redis.log").display()
        );
        let mut extra = extra.to_string();
        if let Some(p) = password {
            let file = root.join("redis-password");
            fs::write(&file, format!("{p}\n")).unwrap();
            conf_text.push_str(&format!("requirepass \"{p}\"\n"));
            extra.push_str(&format!("\npassword_file = \"{}\"\n", file.display()));
        }
        fs::write(&conf, conf_text).unwrap();
        let pid_file = root.join("redis.pid");
        let actions: Vec<String> = actions().map(|a| format!("\"{a}\"")).collect();
        let toml_text = format!(
            r#"
actions = [{actions}]

[[service]]
name = "redis-cache"
backend = "exec"
argv = ["redis-server", "{conf}"]
pid_file = "{pid}"
log_file = "{log}"
ready_redis = "cache"
start_timeout = "20s"
stop_grace = "10s"

[[redis]]
name = "cache"
address = "127.0.0.1:{port}"
data_dir = "{data}"
config_file = "{conf}"
service = "redis-cache"
backup_dir = "{backups}"
{extra}
"#,
            actions = actions.join(", "),
            conf = conf.display(),
            pid = pid_file.display(),
            log = root.join("exec.log").display(),
            data = data.display(),
            backups = backups.display(),
        );
        let section: AllowSection = toml::from_str(&toml_text).expect("allow section");
        let allow = Allowlist::from_section(section).expect("allowlist");
        Self { _tmp: tmp, name: "cache".into(), port, root, data, backups, conf, pid_file, allow, out: Output::quiet() }
    }

    /// `new` and start it.
    pub async fn start(extra: &str) -> Self {
        let r = Self::new(extra);
        r.up().await;
        r
    }

    pub fn ctx(&self) -> Ctx<'_> {
        Ctx { allow: &self.allow, out: &self.out }
    }

    pub fn inst(&self) -> &Redis {
        self.allow.redis("cache").unwrap()
    }

    pub fn svc(&self) -> &Service {
        self.allow.service("redis-cache").unwrap()
    }

    /// Starts the service (waits for PING).
    pub async fn up(&self) {
        service::start(&self.ctx(), self.svc()).await.expect("redis starts");
    }

    /// Stops the service (waits until the process is gone).
    pub async fn down(&self) {
        service::stop(&self.ctx(), self.svc()).await.expect("redis stops");
    }

    /// Whether the redis-server this test started is alive.
    pub fn running(&self) -> bool {
        self.pid().is_some()
    }

    fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let is_redis = String::from_utf8_lossy(&cmd).contains("redis-server");
        (is_redis && !stat.rsplit(')').next()?.trim_start().starts_with('Z')).then_some(pid)
    }

    /// Performs `action` through the agent's dispatch (allowlist first),
    /// with `instance: cache` added to `args`.
    pub async fn act(&self, action: &str, mut args: Value) -> Result<Outputs, crate::actions::Error> {
        args.as_object_mut().expect("args object").insert("instance".into(), Value::String(self.name.clone()));
        crate::actions::perform(action, &args, &self.ctx()).await
    }

    pub async fn cmd(&self, args: &[&str]) -> Reply {
        let mut c = Conn::open(self.inst()).await.unwrap_or_else(|_| panic!("cannot connect to {}", self.name));
        c.call(args).await.expect("redis call")
    }

    pub async fn write_keys(&self, prefix: &str, range: std::ops::Range<u32>) {
        let mut c = Conn::open(self.inst()).await.unwrap_or_else(|_| panic!("cannot connect to {}", self.name));
        for i in range {
            let r = c.call(&["SET", &format!("{prefix}:{i}"), &format!("value-{i}")]).await.unwrap();
            assert_eq!(r, Reply::Okay);
        }
    }

    /// Keys matching `pattern`, sorted (SCAN).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut c = Conn::open(self.inst()).await.unwrap_or_else(|_| panic!("cannot connect to {}", self.name));
        let mut cursor = "0".to_string();
        let mut out = Vec::new();
        loop {
            let Reply::Array(mut parts) = c.call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "100"]).await.unwrap()
            else {
                panic!("SCAN reply");
            };
            if let Some(Reply::Array(keys)) = parts.pop() {
                out.extend(keys.iter().filter_map(|k| ::redis::from_redis_value_ref::<String>(k).ok()));
            }
            cursor = parts.pop().and_then(|c| ::redis::from_redis_value::<String>(c).ok()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// `INFO persistence` field.
    pub async fn persistence(&self, name: &str) -> Option<String> {
        let text = ::redis::from_redis_value::<String>(self.cmd(&["INFO", "persistence"]).await).ok()?;
        text.lines().find_map(|l| l.trim().strip_prefix(&format!("{name}:")).map(str::to_string))
    }

    /// BGREWRITEAOF, and waits until it is done: all keys so far go into the base RDB.
    pub async fn rewrite_aof(&self) {
        assert!(matches!(self.cmd(&["BGREWRITEAOF"]).await, Reply::SimpleString(_)));
        eventually("the AOF rewrite", || async {
            let idle = self.persistence("aof_rewrite_in_progress").await.as_deref() == Some("0")
                && self.persistence("aof_rewrite_scheduled").await.as_deref() == Some("0");
            idle.then_some(())
        })
        .await;
    }

    pub fn aof_dir(&self) -> PathBuf {
        self.data.join("appendonlydir")
    }

    pub fn manifest(&self) -> PathBuf {
        self.aof_dir().join("appendonly.aof.manifest")
    }

    /// The file of type `b` or `i` named by the manifest.
    pub fn aof_file(&self, kind: &str) -> PathBuf {
        let manifest = fs::read_to_string(self.manifest()).unwrap();
        let name = manifest
            .lines()
            .find(|l| l.ends_with(&format!("type {kind}")))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("file in the manifest");
        self.aof_dir().join(name)
    }

    /// Subdirectories of the backup dir whose names start with `prefix`.
    pub fn backup_dirs(&self, prefix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(&self.backups)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect();
        v.sort();
        v
    }
}

/// Files in `dir`, by name.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}
