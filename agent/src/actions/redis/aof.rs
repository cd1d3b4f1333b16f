//! `redis.check_aof`: copy the AOF aside, `redis-check-aof --fix` on the
//! manifest (or on an old-style single file), report what it discarded and
//! start Redis again; never on a directory without a manifest.

use super::TOOL_TIMEOUT;
use super::backup::{blocking, copy_dir_synced, copy_file_synced, new_backup_dir, sync_dir};
use super::conn::{Conn, connect};
use super::error::{self, io};
use super::read::dbsize_of;
use crate::actions::process::{Finished, run};
use crate::actions::{Ctx, Outputs, service};
use crate::policy::{Redis, Service};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// The old-style single AOF file (no directory, no manifest).
pub(super) const OLD_STYLE_AOF: &str = "appendonly.aof";

/// Why `check_aof` stopped, and what it left behind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("several manifests in {}: {}; which one is live?", dir.display(), names.join(", "))]
    SeveralManifests { dir: PathBuf, names: Vec<String> },
    /// `state` says what was done so far ("nothing was changed"…).
    #[error(
        "the AOF directory {} has no manifest: Redis would start EMPTY from it without an error; {state}. Do not \
         start Redis on it: restore an RDB backup with the redis-rdb runbook (redis.restore_rdb on {instance}) or \
         rebuild the manifest by hand",
        dir.display()
    )]
    NoManifest { dir: PathBuf, instance: String, state: String },
    #[error(
        "no AOF found for {instance}: neither {} nor {} exists; {state}. If the AOF and the RDB are lost, restore an \
         RDB backup with the redis-rdb runbook",
        dir.display(),
        single.display()
    )]
    NoAof { instance: String, dir: PathBuf, single: PathBuf, state: String },
    #[error(
        "the backup directory {} does not exist: the AOF must be copied there before it is repaired",
        .0.display()
    )]
    NoBackupDir(PathBuf),
    #[error("copying the AOF aside failed, so it was not repaired: {source}; {then}")]
    CopyFailed { source: Box<error::Error>, then: AfterFailedCopy },
    #[error(
        "the base RDB of the AOF is damaged and redis-check-aof cannot repair it (exit {code:?}: {tail}). The base is \
         unrecoverable: {service} was NOT started. Run the redis-rdb runbook to restore an RDB backup \
         (redis.restore_rdb); the damaged AOF is kept at {}",
        kept.display()
    )]
    BaseDamaged { code: Option<i32>, tail: String, service: String, kept: PathBuf },
    #[error(
        "redis-check-aof --fix {checked} did not repair the AOF (exit {code:?}: {tail}); {service} was NOT started. \
         Look at the output above; if it cannot be repaired, run the redis-rdb runbook to restore an RDB backup; the \
         AOF as it was is kept at {}",
        kept.display()
    )]
    NotRepaired { checked: String, code: Option<i32>, tail: String, service: String, kept: PathBuf },
    #[error(
        "the AOF was repaired ({discarded} bytes discarded) but {service} did not come up: {source}; the AOF as it \
         was is kept at {}; see the Redis log",
        kept.display()
    )]
    NotUp { discarded: u64, service: String, source: service::Error, kept: PathBuf },
}

/// What became of the service after the AOF could not be copied aside.
#[derive(Debug)]
pub enum AfterFailedCopy {
    /// It was serving before, and was started again unchanged.
    StartedAgain(String),
    StartFailed {
        service: String,
        error: service::Error,
    },
    /// It was not serving before, and stays stopped.
    Stopped(String),
}

impl std::fmt::Display for AfterFailedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StartedAgain(s) => write!(f, "{s} was started again unchanged"),
            Self::StartFailed { service, error } => write!(f, "starting {service} again failed too: {error}"),
            Self::Stopped(s) => write!(f, "{s} is stopped"),
        }
    }
}

/// The manifest in an AOF directory: the only `*.manifest`, or
/// `appendonly.aof.manifest` among several.
pub(super) fn find_manifest(aof_dir: &Path) -> Result<Option<PathBuf>, error::Error> {
    let mut found: Vec<PathBuf> = fs::read_dir(aof_dir)
        .map_err(io("list", aof_dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "manifest"))
        .collect();
    found.sort();
    Ok(match found.len() {
        0 => None,
        1 => found.pop(),
        _ => match found.iter().find(|p| p.file_name().is_some_and(|n| n == "appendonly.aof.manifest")) {
            Some(p) => Some(p.clone()),
            None => {
                let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
                return Err(Error::SeveralManifests { dir: aof_dir.to_path_buf(), names }.into());
            }
        },
    })
}

/// What `redis-check-aof --fix` is given.
enum AofTarget {
    /// Redis 7: the manifest in the AOF directory.
    Manifest { dir: PathBuf, manifest: PathBuf },
    /// An old-style single `appendonly.aof` in the data dir.
    Single(PathBuf),
}

impl AofTarget {
    /// What is copied aside: the AOF directory, or the single file.
    fn copied(&self) -> &Path {
        match self {
            AofTarget::Manifest { dir, .. } => dir,
            AofTarget::Single(f) => f,
        }
    }

    /// What `redis-check-aof` is given: the manifest, or the single file.
    fn checked(&self) -> &Path {
        match self {
            AofTarget::Manifest { manifest, .. } => manifest,
            AofTarget::Single(f) => f,
        }
    }
}

fn aof_target(inst: &Redis, state: &str) -> Result<AofTarget, error::Error> {
    let dir = inst.aof_path();
    if dir.is_dir() {
        return match find_manifest(&dir)? {
            Some(manifest) => Ok(AofTarget::Manifest { dir, manifest }),
            None => Err(Error::NoManifest { dir, instance: inst.name.clone(), state: state.to_string() }.into()),
        };
    }
    let single = inst.data_dir.join(OLD_STYLE_AOF);
    if single.is_file() {
        return Ok(AofTarget::Single(single));
    }
    Err(Error::NoAof { instance: inst.name.clone(), dir, single, state: state.to_string() }.into())
}

/// The total of `diff=N` over the `AOF analyzed:` lines.
fn bytes_discarded(report: &str) -> u64 {
    report
        .lines()
        .filter(|l| l.contains("AOF analyzed:"))
        .filter_map(|l| l.rsplit_once("diff=").and_then(|(_, n)| n.trim().parse::<u64>().ok()))
        .sum()
}

async fn keys_if_up(inst: &Redis) -> Option<u64> {
    let mut c = Conn::open(inst).await.ok()?;
    dbsize_of(&mut c).await.ok()
}

pub(super) async fn check(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, error::Error> {
    let svc = ctx.allow.service(&inst.service)?;
    if !inst.backup_dir.is_dir() {
        return Err(Error::NoBackupDir(inst.backup_dir.clone()).into());
    }
    // Refused before anything is stopped.
    aof_target(inst, "nothing was changed")?;
    let keys_before = keys_if_up(inst).await;
    match keys_before {
        Some(k) => ctx.out.line(&format!("{} answers: {k} keys before the repair", inst.name)),
        None => ctx.out.line(&format!("{} does not answer", inst.name)),
    }
    service::stop(ctx, svc).await?;
    // Again, now that Redis no longer writes to it.
    let target = aof_target(inst, &format!("{} is stopped and was not started again", svc.name))?;

    // The copy comes first: --fix discards what follows the damage.
    let (backup, n, bytes) = match copy_aside(inst, target.copied()).await {
        Ok(c) => c,
        Err(e) => return Err(after_failed_copy(ctx, svc, e, keys_before.is_some()).await.into()),
    };
    ctx.out.line(&format!("copied the AOF ({n} files, {bytes} bytes) to {}", backup.display()));

    let checked = target.checked().to_string_lossy().into_owned();
    let discarded = repair(ctx, svc, &checked, &backup).await?;
    service::start(ctx, svc).await.map_err(|source| Error::NotUp {
        discarded,
        service: svc.name.clone(),
        source,
        kept: backup.clone(),
    })?;
    let keys_after = dbsize_of(&mut connect(inst).await?).await?;
    ctx.out.line(&format!(
        "{}: {keys_after} keys after the repair (before: {})",
        inst.name,
        keys_before.map_or("unknown".to_string(), |k| k.to_string())
    ));
    let mut o = Outputs::new();
    o.insert("bytes_discarded".into(), Value::from(discarded));
    o.insert("keys_before".into(), keys_before.map_or(Value::Null, Value::from));
    o.insert("keys_after".into(), Value::from(keys_after));
    o.insert("backup_path".into(), Value::String(backup.display().to_string()));
    o.insert("checked".into(), Value::String(checked));
    o.insert("aof_bytes".into(), Value::from(bytes));
    Ok(o)
}

/// Copies the AOF (directory or single file) into a new directory in the
/// backup dir: that directory, files and bytes copied.
async fn copy_aside(inst: &Redis, from: &Path) -> Result<(PathBuf, usize, u64), error::Error> {
    let (backup_dir, name, from) = (inst.backup_dir.clone(), inst.name.clone(), from.to_path_buf());
    blocking(move || {
        let dest = new_backup_dir(&backup_dir, &format!("aof-{name}"))?;
        let r = if from.is_dir() {
            fs::remove_dir(&dest).map_err(error::Error::Os)?;
            copy_dir_synced(&from, &dest)
        } else {
            copy_file_synced(&from, &dest.join(from.file_name().unwrap_or_default())).map(|b| (1, b))
        };
        sync_dir(&backup_dir);
        r.map(|(n, b)| (dest, n, b))
    })
    .await
}

/// The AOF could not be copied aside, so nothing was changed: a service
/// that was serving before is started again.
async fn after_failed_copy(ctx: &Ctx<'_>, svc: &Service, e: error::Error, was_up: bool) -> Error {
    let then = if was_up {
        match service::start(ctx, svc).await {
            Ok(()) => AfterFailedCopy::StartedAgain(svc.name.clone()),
            Err(error) => AfterFailedCopy::StartFailed { service: svc.name.clone(), error },
        }
    } else {
        AfterFailedCopy::Stopped(svc.name.clone())
    };
    Error::CopyFailed { source: Box::new(e), then }
}

/// Runs `redis-check-aof --fix` on `checked` (answering its question);
/// the bytes it discarded.
async fn repair(ctx: &Ctx<'_>, svc: &Service, checked: &str, kept: &Path) -> Result<u64, error::Error> {
    let done = run(&["redis-check-aof", "--fix", checked], Some("y\n"), ctx.out, TOOL_TIMEOUT).await?;
    let report = format!("{}\n{}", done.stdout, done.stderr);
    let discarded = bytes_discarded(&report);
    if !done.ok() {
        return Err(not_repaired(&done, &report, svc, checked, kept).into());
    }
    if discarded > 0 {
        ctx.out.line(&format!(
            "redis-check-aof discarded {discarded} bytes (everything after the damage); the AOF as it was is kept at {}",
            kept.display()
        ));
    } else {
        ctx.out.line("the AOF was valid: nothing discarded");
    }
    Ok(discarded)
}

/// Why `redis-check-aof` failed: a damaged base RDB, or something else.
fn not_repaired(done: &Finished, report: &str, svc: &Service, checked: &str, kept: &Path) -> Error {
    let base_bad = report.contains("RDB preamble of AOF file is not sane")
        || report.contains("RDB ERROR DETECTED")
        || report.contains("Internal error in RDB");
    let (code, tail, service, kept) = (done.code, done.tail(), svc.name.clone(), kept.to_path_buf());
    if base_bad {
        Error::BaseDamaged { code, tail, service, kept }
    } else {
        Error::NotRepaired { checked: checked.to_string(), code, tail, service, kept }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::pings;
    use super::super::testkit::{TestRedis, err_of, file_names, names};
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bytes_discarded_are_read_from_the_report() {
        let report = "AOF analyzed: filename=a.base.rdb, size=526, ok_up_to=526, ok_up_to_line=1, diff=0\n\
                      AOF analyzed: filename=a.incr.aof, size=1603, ok_up_to=1575, ok_up_to_line=362, diff=28\n";
        assert_eq!(bytes_discarded(report), 28);
        assert_eq!(bytes_discarded("All AOF files and manifest are valid\n"), 0);
    }

    /// 50 keys in the AOF's base RDB, 51 in its incr file; Redis stopped.
    async fn base_and_incr() -> TestRedis {
        let r = TestRedis::start("").await;
        r.write_keys("k", 0..50).await;
        r.rewrite_aof().await;
        r.write_keys("k", 50..101).await;
        r.down().await;
        r
    }

    #[tokio::test]
    async fn check_aof_repairs_an_incr_file_cut_mid_command() {
        let r = base_and_incr().await;
        let incr = r.aof_file("i");
        let bytes = fs::read(&incr).unwrap();
        let damaged = &bytes[..bytes.len() - 7];
        fs::write(&incr, damaged).unwrap();

        let o = r.act("redis.check_aof", json!({})).await.unwrap();
        assert!(o["bytes_discarded"].as_u64().unwrap() > 0, "{o:?}");
        assert_eq!(o["keys_before"], Value::Null, "Redis was down");
        assert_eq!(o["keys_after"], 100);
        assert!(o["checked"].as_str().unwrap().ends_with("appendonlydir/appendonly.aof.manifest"));
        // The AOF as it was (damaged) is in the backup dir.
        let backup = PathBuf::from(o["backup_path"].as_str().unwrap());
        assert_eq!(r.backup_dirs("aof-cache-"), vec![backup.clone()]);
        assert_eq!(fs::read(backup.join(incr.file_name().unwrap())).unwrap(), damaged);
        assert_eq!(file_names(&backup), file_names(&r.aof_dir()));
        assert!(r.out.text().contains("Continue? [y/N]"), "the tool's output is streamed");
        // k:100 was the cut command.
        assert_eq!(r.keys("k:*").await, names("k", 0..100));
    }

    #[tokio::test]
    async fn check_aof_on_a_valid_aof_and_then_with_garbage_appended_keeps_every_key() {
        let r = base_and_incr().await;
        r.up().await;
        let o = r.act("redis.check_aof", json!({})).await.unwrap();
        assert_eq!(
            (o["bytes_discarded"].as_u64(), o["keys_before"].as_u64(), o["keys_after"].as_u64()),
            (Some(0), Some(101), Some(101))
        );

        r.down().await;
        let incr = r.aof_file("i");
        let mut bytes = fs::read(&incr).unwrap();
        bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\ngarbage garbage garbage");
        fs::write(&incr, &bytes).unwrap();
        let o = r.act("redis.check_aof", json!({})).await.unwrap();
        assert!(o["bytes_discarded"].as_u64().unwrap() > 0);
        assert_eq!(o["keys_after"], 101);
        assert_eq!(r.keys("k:*").await, names("k", 0..101));
        assert_eq!(r.backup_dirs("aof-cache-").len(), 2, "one copy per repair");
    }

    #[tokio::test]
    async fn check_aof_with_a_corrupt_base_starts_nothing_and_points_at_the_rdb_restore() {
        let r = base_and_incr().await;
        let base = r.aof_file("b");
        let mut bytes = fs::read(&base).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0xff;
        }
        fs::write(&base, &bytes).unwrap();

        let e = err_of(r.act("redis.check_aof", json!({})).await);
        assert!(e.contains("unrecoverable") && e.contains("redis-rdb") && e.contains("NOT started"), "{e}");
        let copies = r.backup_dirs("aof-cache-");
        assert_eq!(copies.len(), 1);
        assert!(e.contains(&copies[0].display().to_string()), "the message says where the copy is: {e}");
        assert_eq!(fs::read(copies[0].join(base.file_name().unwrap())).unwrap(), bytes);
        assert!(!r.running(), "Redis was not started");
        assert!(!pings(r.inst()).await);
    }

    #[tokio::test]
    async fn check_aof_refuses_a_directory_without_manifest() {
        let r = TestRedis::start("").await;
        r.write_keys("k", 0..5).await;
        fs::remove_file(r.manifest()).unwrap();
        let e = err_of(r.act("redis.check_aof", json!({})).await);
        assert!(e.contains("no manifest") && e.contains("EMPTY") && e.contains("redis-rdb"), "{e}");
        assert!(e.contains("nothing was changed"), "{e}");
        assert!(r.running(), "refused before stopping anything");
        assert_eq!(r.keys("k:*").await, names("k", 0..5));
        r.down().await;
        let e = err_of(r.act("redis.check_aof", json!({})).await);
        assert!(e.contains("EMPTY"), "{e}");
        assert!(!r.running(), "never started on it");
        assert!(r.backup_dirs("").is_empty());
    }

    #[tokio::test]
    async fn check_aof_repairs_an_old_style_single_file() {
        let r = TestRedis::new("");
        let mut aof = String::new();
        for i in 0..5 {
            let (k, v) = (format!("old:{i}"), format!("v{i}"));
            aof.push_str(&format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()));
        }
        aof.push_str("*3\r\n$3\r\nSET\r\n$5\r\nol");
        fs::write(r.data.join("appendonly.aof"), &aof).unwrap();

        let o = r.act("redis.check_aof", json!({})).await.unwrap();
        assert!(o["checked"].as_str().unwrap().ends_with("data/appendonly.aof"));
        assert!(o["bytes_discarded"].as_u64().unwrap() > 0);
        assert_eq!(o["keys_after"], 5);
        let backup = PathBuf::from(o["backup_path"].as_str().unwrap());
        assert_eq!(fs::read_to_string(backup.join("appendonly.aof")).unwrap(), aof);
        assert_eq!(r.keys("*").await, names("old", 0..5));
    }
}
