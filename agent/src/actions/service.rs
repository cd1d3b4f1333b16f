//! Service control through the configured backend: systemd, sysv, compose
//! or exec (a process the agent starts itself from a fixed argv and tracks
//! by pid file). `start` and `restart` wait until the service is really up
//! (for Redis: PING answers) within its start timeout.

use super::process::{self, Finished, run};
use super::{Ctx, Outputs};
use crate::policy::{Backend, Service};
use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a service could not be controlled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Process(#[from] process::Error),
    /// A setting the backend needs is missing (`compose_file`, `pid_file`…).
    #[error("{0} not set")]
    NotSet(&'static str),
    #[error("argv is empty")]
    EmptyArgv,
    #[error("unknown service verb {0}")]
    UnknownVerb(String),
    /// The backend's command exited non-zero; `doing` is "stopping" or "starting".
    #[error("{doing} {service} failed (exit {code:?}): {tail}")]
    Failed { doing: &'static str, service: String, code: Option<i32>, tail: String },
    #[error("{service} exited right after it was started{}", see(.log))]
    ExitedAtStart { service: String, log: Option<PathBuf> },
    #[error("{service} did not come up within {timeout:?}")]
    NotUp { service: String, timeout: Duration },
    #[error("cannot open log {}: {source}", path.display())]
    OpenLog { path: PathBuf, source: io::Error },
    /// Sharing the log between stdout and stderr.
    #[error("{0}")]
    ShareLog(io::Error),
    #[error("cannot start {service}: {source}")]
    Spawn { service: String, source: io::Error },
    #[error("cannot write pid file {}: {source}", path.display())]
    WritePid { path: PathBuf, source: io::Error },
    #[error("{service} (pid {pid}) is still running")]
    StillRunning { service: String, pid: u32 },
    #[error("compose logs failed (exit {code:?}): {tail}")]
    Logs { code: Option<i32>, tail: String },
}

fn see(log: &Option<PathBuf>) -> String {
    log.as_ref().map(|l| format!("; see {}", l.display())).unwrap_or_default()
}

/// `Ok` if `f` exited 0, else [`Error::Failed`] for `doing` `svc`.
fn check(f: Finished, doing: &'static str, svc: &Service) -> Result<(), Error> {
    if f.ok() { Ok(()) } else { Err(Error::Failed { doing, service: svc.name.clone(), code: f.code, tail: f.tail() }) }
}

/// `docker compose` if the plugin is there, else `docker-compose`.
async fn compose_argv() -> Vec<&'static str> {
    let plugin = tokio::process::Command::new("docker")
        .args(["compose", "version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if plugin { vec!["docker", "compose"] } else { vec!["docker-compose"] }
}

async fn compose(ctx: &Ctx<'_>, svc: &Service, verb: &[&str]) -> Result<Finished, Error> {
    let file = svc.compose_file.as_ref().ok_or(Error::NotSet("compose_file"))?.to_string_lossy().into_owned();
    let project = svc.compose_project.clone().unwrap_or_else(|| svc.name.clone());
    let service = svc.compose_service.clone().ok_or(Error::NotSet("compose_service"))?;
    let mut argv = compose_argv().await;
    argv.extend(["-p", &project, "-f", &file]);
    argv.extend(verb);
    argv.push(&service);
    Ok(run(&argv, None, ctx.out, CMD_TIMEOUT).await?)
}

/// stop | start | restart | status.
pub async fn control(ctx: &Ctx<'_>, svc: &Service, verb: &str) -> Result<Outputs, Error> {
    match verb {
        "status" => {
            let up = is_up(ctx, svc).await;
            let mut o = Outputs::new();
            o.insert("state".into(), Value::String(if up { "running" } else { "stopped" }.into()));
            return Ok(o);
        }
        "stop" => stop(ctx, svc).await?,
        "start" => start(ctx, svc).await?,
        "restart" => {
            stop(ctx, svc).await?;
            start(ctx, svc).await?;
        }
        other => return Err(Error::UnknownVerb(other.to_string())),
    }
    let mut o = Outputs::new();
    o.insert("state".into(), Value::String(if verb == "stop" { "stopped" } else { "running" }.into()));
    Ok(o)
}

pub async fn stop(ctx: &Ctx<'_>, svc: &Service) -> Result<(), Error> {
    ctx.out.line(&format!("stopping {} ({:?})", svc.name, svc.backend).to_lowercase());
    let unit = svc.unit();
    let done = match svc.backend {
        Backend::Systemd => run(&["systemctl", "stop", unit], None, ctx.out, CMD_TIMEOUT).await?,
        Backend::Sysv => run(&["service", unit, "stop"], None, ctx.out, CMD_TIMEOUT).await?,
        Backend::Compose => compose(ctx, svc, &["stop"]).await?,
        Backend::Exec => return exec_stop(ctx, svc).await,
    };
    check(done, "stopping", svc)
}

pub async fn start(ctx: &Ctx<'_>, svc: &Service) -> Result<(), Error> {
    ctx.out.line(&format!("starting {} ({:?})", svc.name, svc.backend).to_lowercase());
    let unit = svc.unit();
    match svc.backend {
        Backend::Systemd => {
            check(run(&["systemctl", "start", unit], None, ctx.out, CMD_TIMEOUT).await?, "starting", svc)?
        }
        Backend::Sysv => check(run(&["service", unit, "start"], None, ctx.out, CMD_TIMEOUT).await?, "starting", svc)?,
        Backend::Compose => check(compose(ctx, svc, &["up", "-d", "--no-deps"]).await?, "starting", svc)?,
        Backend::Exec => exec_start(ctx, svc).await?,
    }
    wait_up(ctx, svc).await
}

/// Waits until the service is up (Redis PING, or the backend's own view).
async fn wait_up(ctx: &Ctx<'_>, svc: &Service) -> Result<(), Error> {
    let deadline = Instant::now() + svc.start_timeout;
    loop {
        if is_up(ctx, svc).await {
            ctx.out.line(&format!("{} is up", svc.name));
            return Ok(());
        }
        if svc.backend == Backend::Exec && exec_pid(svc).is_none() {
            let log = svc.log_file.clone().or_else(|| svc.pid_file.as_ref().map(|p| p.with_extension("log")));
            return Err(Error::ExitedAtStart { service: svc.name.clone(), log });
        }
        if Instant::now() > deadline {
            return Err(Error::NotUp { service: svc.name.clone(), timeout: svc.start_timeout });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_up(ctx: &Ctx<'_>, svc: &Service) -> bool {
    if let Some(r) = &svc.ready_redis
        && let Ok(inst) = ctx.allow.redis(r)
    {
        let backend_up = match svc.backend {
            Backend::Exec => exec_pid(svc).is_some(),
            _ => true,
        };
        return backend_up && super::redis::pings(inst).await;
    }
    let quiet = super::Output::quiet();
    let unit = svc.unit();
    match svc.backend {
        Backend::Systemd => {
            run(&["systemctl", "is-active", "--quiet", unit], None, &quiet, CMD_TIMEOUT).await.is_ok_and(|f| f.ok())
        }
        Backend::Sysv => run(&["service", unit, "status"], None, &quiet, CMD_TIMEOUT).await.is_ok_and(|f| f.ok()),
        Backend::Compose => {
            let q = Ctx { allow: ctx.allow, out: &quiet };
            compose(&q, svc, &["ps", "-q"]).await.is_ok_and(|f| f.ok() && !f.stdout.trim().is_empty())
        }
        Backend::Exec => exec_pid(svc).is_some(),
    }
}

/// The pid in the pid file, if that process is alive (and not a zombie).
fn exec_pid(svc: &Service) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(svc.pid_file.as_ref()?).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    (state != "Z").then_some(pid)
}

async fn exec_start(ctx: &Ctx<'_>, svc: &Service) -> Result<(), Error> {
    if let Some(pid) = exec_pid(svc) {
        ctx.out.line(&format!("{} already running (pid {pid})", svc.name));
        return Ok(());
    }
    let pid_file = svc.pid_file.as_ref().ok_or(Error::NotSet("pid_file"))?;
    let log = svc.log_file.clone().unwrap_or_else(|| pid_file.with_extension("log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|source| Error::OpenLog { path: log.clone(), source })?;
    let err_file = log_file.try_clone().map_err(Error::ShareLog)?;
    let (prog, args) = svc.argv.split_first().ok_or(Error::EmptyArgv)?;
    let child = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .spawn()
        .map_err(|source| Error::Spawn { service: svc.name.clone(), source })?;
    let pid = child.id();
    write_pid(pid_file, pid)?;
    // Reap it when it exits, so that it does not linger as a zombie.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    ctx.out.line(&format!("started {} (pid {pid})", svc.name));
    Ok(())
}

fn write_pid(path: &Path, pid: u32) -> Result<(), Error> {
    std::fs::write(path, format!("{pid}\n")).map_err(|source| Error::WritePid { path: path.to_path_buf(), source })
}

async fn exec_stop(ctx: &Ctx<'_>, svc: &Service) -> Result<(), Error> {
    let Some(pid) = exec_pid(svc) else {
        ctx.out.line(&format!("{} is not running", svc.name));
        return Ok(());
    };
    let signal = |sig: &'static str| {
        std::process::Command::new("kill").args([sig, &pid.to_string()]).status().map(|s| s.success()).unwrap_or(false)
    };
    signal("-TERM");
    let deadline = Instant::now() + svc.stop_grace;
    while exec_pid(svc).is_some() {
        if Instant::now() > deadline {
            ctx.out.line(&format!("{} did not stop within {:?}; sending SIGKILL", svc.name, svc.stop_grace));
            signal("-KILL");
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if exec_pid(svc).is_some() {
        return Err(Error::StillRunning { service: svc.name.clone(), pid });
    }
    ctx.out.line(&format!("stopped {} (pid {pid})", svc.name));
    Ok(())
}

/// `compose.logs`: the last `tail` lines.
pub async fn compose_logs(ctx: &Ctx<'_>, svc: &Service, tail: u64) -> Result<Outputs, Error> {
    let tail = tail.to_string();
    let f = compose(ctx, svc, &["logs", "--no-color", "--tail", &tail]).await?;
    if !f.ok() {
        return Err(Error::Logs { code: f.code, tail: f.tail() });
    }
    let lines: Vec<Value> = f.stdout.lines().chain(f.stderr.lines()).map(|l| Value::String(l.to_string())).collect();
    let mut o = Outputs::new();
    o.insert("lines".into(), Value::Array(lines));
    Ok(o)
}
