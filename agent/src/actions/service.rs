//! Service control through the configured backend: systemd, sysv, compose
//! or exec (a process the agent starts itself from a fixed argv and tracks
//! by pid file). `start` and `restart` wait until the service is really up
//! (for Redis: PING answers) within its start timeout.

use super::process::run;
use super::{Ctx, Outputs};
use crate::policy::{Backend, Service};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const CMD_TIMEOUT: Duration = Duration::from_secs(120);

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

async fn compose(ctx: &Ctx<'_>, svc: &Service, verb: &[&str]) -> Result<super::process::Finished, String> {
    let file = svc.compose_file.as_ref().ok_or("compose_file not set")?.to_string_lossy().into_owned();
    let project = svc.compose_project.clone().unwrap_or_else(|| svc.name.clone());
    let service = svc.compose_service.clone().ok_or("compose_service not set")?;
    let mut argv = compose_argv().await;
    argv.extend(["-p", &project, "-f", &file]);
    argv.extend(verb);
    argv.push(&service);
    run(&argv, None, ctx.out, CMD_TIMEOUT).await
}

/// stop | start | restart | status.
pub async fn control(ctx: &Ctx<'_>, svc: &Service, verb: &str) -> Result<Outputs, String> {
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
        other => return Err(format!("unknown service verb {other}")),
    }
    let mut o = Outputs::new();
    o.insert("state".into(), Value::String(if verb == "stop" { "stopped" } else { "running" }.into()));
    Ok(o)
}

pub async fn stop(ctx: &Ctx<'_>, svc: &Service) -> Result<(), String> {
    ctx.out.line(&format!("stopping {} ({:?})", svc.name, svc.backend).to_lowercase());
    let unit = svc.unit();
    let done = match svc.backend {
        Backend::Systemd => run(&["systemctl", "stop", unit], None, ctx.out, CMD_TIMEOUT).await?,
        Backend::Sysv => run(&["service", unit, "stop"], None, ctx.out, CMD_TIMEOUT).await?,
        Backend::Compose => compose(ctx, svc, &["stop"]).await?,
        Backend::Exec => return exec_stop(ctx, svc).await,
    };
    if done.ok() {
        Ok(())
    } else {
        Err(format!("stopping {} failed (exit {:?}): {}", svc.name, done.code, done.tail()))
    }
}

pub async fn start(ctx: &Ctx<'_>, svc: &Service) -> Result<(), String> {
    ctx.out.line(&format!("starting {} ({:?})", svc.name, svc.backend).to_lowercase());
    let unit = svc.unit();
    match svc.backend {
        Backend::Systemd => check(run(&["systemctl", "start", unit], None, ctx.out, CMD_TIMEOUT).await?, svc)?,
        Backend::Sysv => check(run(&["service", unit, "start"], None, ctx.out, CMD_TIMEOUT).await?, svc)?,
        Backend::Compose => check(compose(ctx, svc, &["up", "-d", "--no-deps"]).await?, svc)?,
        Backend::Exec => exec_start(ctx, svc).await?,
    }
    wait_up(ctx, svc).await
}

fn check(f: super::process::Finished, svc: &Service) -> Result<(), String> {
    if f.ok() { Ok(()) } else { Err(format!("starting {} failed (exit {:?}): {}", svc.name, f.code, f.tail())) }
}

/// Waits until the service is up (Redis PING, or the backend's own view).
async fn wait_up(ctx: &Ctx<'_>, svc: &Service) -> Result<(), String> {
    let deadline = Instant::now() + svc.start_timeout;
    loop {
        if is_up(ctx, svc).await {
            ctx.out.line(&format!("{} is up", svc.name));
            return Ok(());
        }
        if svc.backend == Backend::Exec && exec_pid(svc).is_none() {
            let log = svc.log_file.clone().or_else(|| svc.pid_file.as_ref().map(|p| p.with_extension("log")));
            let where_ = log.map(|l| format!("; see {}", l.display())).unwrap_or_default();
            return Err(format!("{} exited right after it was started{where_}", svc.name));
        }
        if Instant::now() > deadline {
            return Err(format!("{} did not come up within {:?}", svc.name, svc.start_timeout));
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

async fn exec_start(ctx: &Ctx<'_>, svc: &Service) -> Result<(), String> {
    if let Some(pid) = exec_pid(svc) {
        ctx.out.line(&format!("{} already running (pid {pid})", svc.name));
        return Ok(());
    }
    let pid_file = svc.pid_file.as_ref().ok_or("pid_file not set")?;
    let log = svc.log_file.clone().unwrap_or_else(|| pid_file.with_extension("log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open log {}: {e}", log.display()))?;
    let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
    let (prog, args) = svc.argv.split_first().ok_or("argv is empty")?;
    let child = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", svc.name))?;
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

fn write_pid(path: &Path, pid: u32) -> Result<(), String> {
    std::fs::write(path, format!("{pid}\n")).map_err(|e| format!("cannot write pid file {}: {e}", path.display()))
}

async fn exec_stop(ctx: &Ctx<'_>, svc: &Service) -> Result<(), String> {
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
        return Err(format!("{} (pid {pid}) is still running", svc.name));
    }
    ctx.out.line(&format!("stopped {} (pid {pid})", svc.name));
    Ok(())
}

/// `compose.logs`: the last `tail` lines.
pub async fn compose_logs(ctx: &Ctx<'_>, svc: &Service, tail: u64) -> Result<Outputs, String> {
    let tail = tail.to_string();
    let f = compose(ctx, svc, &["logs", "--no-color", "--tail", &tail]).await?;
    if !f.ok() {
        return Err(format!("compose logs failed (exit {:?}): {}", f.code, f.tail()));
    }
    let lines: Vec<Value> = f.stdout.lines().chain(f.stderr.lines()).map(|l| Value::String(l.to_string())).collect();
    let mut o = Outputs::new();
    o.insert("lines".into(), Value::Array(lines));
    Ok(o)
}
