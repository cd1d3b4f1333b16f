//! A real `redis-server` for end-to-end tests: its own temp dir, config
//! file and loopback port, run under the agent's `exec` backend (the agent
//! tracks it by pid file), killed when dropped.

use crate::eventually;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct RedisHost {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub backups: PathBuf,
    pub conf: PathBuf,
    pub pid_file: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Whether redis-server and redis-tools are installed (scripts/test installs them).
pub fn available() -> bool {
    ["redis-server", "redis-cli", "redis-check-aof", "redis-check-rdb"]
        .iter()
        .all(|b| Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}

impl RedisHost {
    /// Writes the config (appendonly yes, no save points) and starts Redis.
    pub fn start(root: &Path, name: &str) -> Self {
        assert!(available(), "redis-server and redis-tools are needed: run scripts/test (it installs them)");
        let dir = root.join(format!("redis-{name}"));
        let (data, backups) = (dir.join("data"), dir.join("backups"));
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&backups).unwrap();
        let port = free_port();
        let conf = dir.join("redis.conf");
        fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nappendonly yes\nappenddirname appendonlydir\nappendfsync always\nsave \"\"\ndaemonize no\nlogfile {}\n",
                data.display(),
                dir.join("redis.log").display()
            ),
        )
        .unwrap();
        let host = Self { name: name.into(), port, pid_file: dir.join("redis.pid"), dir, data, backups, conf };
        host.spawn();
        host
    }

    /// Starts redis-server the way the agent's exec backend does.
    pub fn spawn(&self) {
        let child = Command::new("redis-server")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        fs::write(&self.pid_file, format!("{}\n", child.id())).unwrap();
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        self.wait_ping();
    }

    pub fn wait_ping(&self) {
        eventually(&format!("redis {} to answer PING", self.name), || {
            let out = self.cli(&["PING"]);
            if out.trim() == "PONG" { Ok(()) } else { Err(out) }
        });
    }

    /// `redis-cli -p PORT ARGS…`, stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// SIGTERM (Redis saves nothing: no save points) and wait until gone.
    pub fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            eventually("redis to stop", || {
                if Path::new(&format!("/proc/{pid}")).exists()
                    && !fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
                {
                    Err("still running".into())
                } else {
                    Ok(())
                }
            });
        }
    }

    pub fn aof_dir(&self) -> PathBuf {
        self.data.join("appendonlydir")
    }

    /// The incr file named by the manifest.
    pub fn incr_file(&self) -> PathBuf {
        let manifest = fs::read_to_string(self.aof_dir().join("appendonly.aof.manifest")).unwrap();
        let name = manifest
            .lines()
            .find(|l| l.contains("type i"))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("incr file in manifest")
            .to_string();
        self.aof_dir().join(name)
    }

    /// Writes `n` keys `prefix:i` = `value-i`.
    pub fn write_keys(&self, prefix: &str, range: std::ops::Range<u32>) {
        for i in range {
            let out = self.cli(&["SET", &format!("{prefix}:{i}"), &format!("value-{i}")]);
            assert_eq!(out.trim(), "OK", "SET failed: {out}");
        }
    }

    /// Rewrites the AOF (everything so far goes into the base RDB) and waits.
    pub fn rewrite_aof(&self) {
        self.cli(&["BGREWRITEAOF"]);
        eventually("AOF rewrite to finish", || {
            let info = self.cli(&["INFO", "persistence"]);
            if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
                Ok(())
            } else {
                Err(info)
            }
        });
    }

    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut k: Vec<String> = self.cli(&["--scan", "--pattern", pattern]).lines().map(str::to_string).collect();
        k.sort();
        k
    }

    /// The agent's `[allow]` entries for this instance (exec backend).
    pub fn allow_toml(&self) -> String {
        format!(
            r#"
[[allow.service]]
name = "redis-{name}"
backend = "exec"
argv = ["redis-server", "{conf}"]
pid_file = "{pid}"
log_file = "{log}"
ready_redis = "{name}"
start_timeout = "20s"
stop_grace = "10s"

[[allow.redis]]
name = "{name}"
address = "127.0.0.1:{port}"
data_dir = "{data}"
config_file = "{conf}"
service = "redis-{name}"
backup_dir = "{backups}"

[[allow.paths]]
dir = "{backups}"
write = true
"#,
            name = self.name,
            conf = self.conf.display(),
            pid = self.pid_file.display(),
            log = self.dir.join("redis-exec.log").display(),
            port = self.port,
            data = self.data.display(),
            backups = self.backups.display(),
        )
    }
}

impl Drop for RedisHost {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}
