//! `redis.restore_rdb`: check the backup with `redis-check-rdb`, keep what
//! is in the data dir, move the AOF out of the way, start Redis with
//! `appendonly no`, check the keys loaded, then turn the AOF back on, wait
//! for its rewrite and persist the setting.

use super::TOOL_TIMEOUT;
use super::aof::{OLD_STYLE_AOF, find_manifest};
use super::backup::{blocking, copy_dir_synced, copy_file_synced, new_backup_dir, sync_dir};
use super::config::{self, directive, set_directive, write_atomic};
use super::conn::{Conn, connect, said};
use super::error::{self, io};
use super::read::{dbsize_of, field, info_fields};
use crate::actions::process::run;
use crate::actions::{Ctx, Outputs, files, service};
use crate::policy::{Redis, Refused, Service};
use ::redis::Value as Reply;
use serde_json::Value;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long the AOF rewrite after a restore may take.
const REWRITE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why `restore_rdb` stopped, and what it left behind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Refused before anything is changed.
    #[error("the backup directory {}: {source}", dir.display())]
    BackupDir { dir: PathBuf, source: std::io::Error },
    #[error("no *.rdb backup in {}; nothing was changed", .0.display())]
    NoRdb(PathBuf),
    #[error("backup {}: {source}", path.display())]
    Backup { path: PathBuf, source: std::io::Error },
    #[error("backup {} is not a regular file", .0.display())]
    NotFile(PathBuf),
    #[error("owner: no user \"{0}\" on this host")]
    NoUser(String),
    #[error("owner: no group \"{0}\"")]
    NoGroup(String),
    #[error("owner \"{0}\": give the group as user:group")]
    GroupNeeded(String),
    #[error(
        "redis instance {instance} has no config_file in the agent's allowlist: the restore must start Redis with \
         appendonly no (with appendonly yes and no AOF, Redis ignores {rdb_file} and starts EMPTY), which the agent \
         does through the config file; set config_file for this instance. Nothing was changed"
    )]
    NoConfigFile { instance: String, rdb_file: String },
    #[error("cannot read the config file {}: {source}; nothing was changed", path.display())]
    ReadConfig { path: PathBuf, source: std::io::Error },
    #[error(
        "service {service} is started with --appendonly yes on its command line, which overrides the config file: \
         Redis would ignore the restored {rdb_file} and start EMPTY. Remove it from argv (appendonly belongs in {}); \
         nothing was changed",
        conf.display()
    )]
    AppendonlyArgv { service: String, rdb_file: String, conf: PathBuf },
    #[error(
        "redis-check-rdb says the backup {file} is damaged (exit {code:?}: {tail}); nothing was changed: pick another \
         backup"
    )]
    Damaged { file: String, code: Option<i32>, tail: String },
    #[error(
        "the backup {file} holds no live keys ({read} read, {expired} expired); restoring it would leave Redis \
         empty; nothing was changed: pick another backup"
    )]
    NoLiveKeys { file: String, read: u64, expired: u64 },
    #[error(
        "the running {instance} loads {} but the agent's config says {}: fix data_dir/rdb_file in the allowlist; \
         nothing was changed",
        live.display(),
        configured.display()
    )]
    OtherFiles { instance: String, live: PathBuf, configured: PathBuf },

    // Redis is stopped.
    #[error("backing up the data dir failed: {source}; {service} is stopped")]
    KeepFailed { source: Box<error::Error>, service: String },
    #[error("{source}; {service} is stopped; what was there is kept in {}", kept.display())]
    Stopped { source: Box<error::Error>, service: String, kept: PathBuf },
    #[error("cannot set appendonly no in {}: {source}", path.display())]
    SetAppendonlyNo { path: PathBuf, source: Box<error::Error> },
    #[error("{service} did not come up with the restored {rdb_file}: {source}{left_off}; see the Redis log")]
    NotUp { service: String, rdb_file: String, source: service::Error, left_off: AofOff },

    // Redis started with the backup.
    #[error(
        "Redis started with appendonly yes although {} says no (an include file or a command-line option?): it \
         ignored the restored {rdb_file} and started empty; {stop}; find what turns appendonly on, then restore again",
        conf.display()
    )]
    AofStillOn { conf: PathBuf, rdb_file: String, stop: StopWithoutSaving },
    #[error(
        "the backup loaded nothing: Redis has 0 keys after the restore (redis-check-rdb read {}); {stop}; check \
         that data_dir and rdb_file match the server's dir and dbfilename{left_off}",
        read.map_or("?".into(), |r| r.to_string())
    )]
    LoadedNothing { read: Option<u64>, stop: StopWithoutSaving, left_off: AofOff },
    #[error("Redis has the data but CONFIG SET appendonly yes failed: {said}{left_off}")]
    AofOnFailed { said: String, left_off: AofOff },
    #[error("the AOF rewrite failed (aof_last_bgrewrite_status:err){left_off}")]
    RewriteFailed { left_off: AofOff },
    #[error("the AOF rewrite did not finish within {timeout:?}{left_off}")]
    RewriteTimeout { timeout: Duration, left_off: AofOff },
    #[error("the AOF rewrite finished but {} has no manifest{left_off}", dir.display())]
    RewriteNoManifest { dir: PathBuf, left_off: AofOff },
    #[error("cannot write appendonly yes back to {}: {source}{left_off}", path.display())]
    WriteBack { path: PathBuf, source: Box<error::Error>, left_off: AofOff },
    #[error("{} does not say appendonly yes after writing it back{left_off}", path.display())]
    NotWrittenBack { path: PathBuf, left_off: AofOff },
}

/// The config file the restore left at `appendonly no`, if it did: said at
/// the end of every failure after that, with what is left to do.
#[derive(Debug, Clone)]
pub struct AofOff(Option<PathBuf>);

impl fmt::Display for AofOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(conf) => write!(
                f,
                "; {} says appendonly no for now: once Redis has the data, CONFIG SET appendonly yes, wait for the AOF \
                 rewrite, then set appendonly yes in it",
                conf.display()
            ),
            None => Ok(()),
        }
    }
}

/// How stopping a Redis that started without the restored data went.
#[derive(Debug)]
pub enum StopWithoutSaving {
    Stopped { service: String, rdb_file: String },
    Failed { service: String, error: service::Error },
}

impl fmt::Display for StopWithoutSaving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped { service, rdb_file } => {
                write!(f, "{service} was stopped (save points off, so {rdb_file} was not overwritten)")
            }
            Self::Failed { service, error } => write!(f, "stopping {service} failed: {error}"),
        }
    }
}

/// The backup to restore: `backup` (a file name in backup_dir, or a path
/// inside it) or the newest `*.rdb` there. Canonical, inside backup_dir.
fn pick_backup(inst: &Redis, backup: Option<&str>) -> Result<PathBuf, error::Error> {
    let root =
        inst.backup_dir.canonicalize().map_err(|source| Error::BackupDir { dir: inst.backup_dir.clone(), source })?;
    let candidate = match backup.map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => {
            let p = Path::new(b);
            if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(Refused(format!("{b}: \"..\" is not allowed in paths")).into());
            }
            if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
        }
        None => files::newest_in(&root, "*.rdb")?.ok_or_else(|| Error::NoRdb(root.clone()))?.0,
    };
    let c = candidate.canonicalize().map_err(|source| Error::Backup { path: candidate.clone(), source })?;
    if !c.starts_with(&root) {
        return Err(Refused(format!(
            "{} is outside the backup directory {} of {}",
            candidate.display(),
            root.display(),
            inst.name
        ))
        .into());
    }
    if !c.is_file() {
        return Err(Error::NotFile(c).into());
    }
    Ok(c)
}

/// `user[:group]`, names or numbers, to uid and gid.
fn resolve_owner(spec: &str) -> Result<(u32, u32), error::Error> {
    fn lookup(db: &str, name: &str, field: usize) -> Option<(u32, Option<u32>)> {
        let text = fs::read_to_string(db).ok()?;
        text.lines().find_map(|l| {
            let parts: Vec<&str> = l.split(':').collect();
            (parts.first() == Some(&name)).then(|| {
                let id = parts.get(field).and_then(|v| v.parse().ok());
                let gid = parts.get(3).and_then(|v| v.parse().ok());
                id.map(|i| (i, gid))
            })?
        })
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u.trim(), Some(g.trim())),
        None => (spec.trim(), None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("/etc/passwd", user, 2).ok_or_else(|| Error::NoUser(user.to_string()))?,
    };
    let gid = match group.filter(|g| !g.is_empty()) {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("/etc/group", g, 2).map(|(id, _)| id).ok_or_else(|| Error::NoGroup(g.to_string()))?,
        },
        None => primary.ok_or_else(|| Error::GroupNeeded(spec.to_string()))?,
    };
    Ok((uid, gid))
}

/// `(keys read, already expired)` from redis-check-rdb's report.
fn rdb_counts(report: &str) -> (Option<u64>, u64) {
    let num = |suffix: &str| {
        report.lines().find_map(|l| l.trim().strip_prefix("[info] ")?.strip_suffix(suffix)?.trim().parse::<u64>().ok())
    };
    (num(" keys read"), num(" already expired").unwrap_or(0))
}

/// Total keys over all databases (INFO keyspace).
async fn total_keys(c: &mut Conn) -> Result<u64, error::Error> {
    let fields = info_fields(c, &["keyspace"]).await?;
    Ok(fields
        .iter()
        .filter(|(k, _)| k.starts_with("db"))
        .filter_map(|(_, v)| v.split(',').find_map(|p| p.strip_prefix("keys=")).and_then(|n| n.parse::<u64>().ok()))
        .sum())
}

/// Stops a Redis that started without the restored data, first turning off
/// its save points so that the shutdown does not overwrite the restored file.
async fn stop_without_saving(inst: &Redis, ctx: &Ctx<'_>, svc: &Service) -> StopWithoutSaving {
    if let Ok(mut c) = Conn::open(inst).await {
        let _ = c.call(&["CONFIG", "SET", "save", ""]).await;
    }
    match service::stop(ctx, svc).await {
        Ok(()) => StopWithoutSaving::Stopped { service: svc.name.clone(), rdb_file: inst.rdb_file.clone() },
        Err(error) => StopWithoutSaving::Failed { service: svc.name.clone(), error },
    }
}

/// The instance's redis.conf, through which the restore starts Redis with
/// `appendonly no`.
struct ConfigFile {
    path: PathBuf,
    /// As it was before the restore.
    text: String,
    /// Whether it says `appendonly yes`: the AOF is turned back on after.
    aof_wanted: bool,
}

impl ConfigFile {
    /// Reads it, refusing a restore that could not turn the AOF off.
    fn read(inst: &Redis, svc: &Service) -> Result<Self, error::Error> {
        let path = inst
            .config_file
            .clone()
            .ok_or_else(|| Error::NoConfigFile { instance: inst.name.clone(), rdb_file: inst.rdb_file.clone() })?;
        let text = fs::read_to_string(&path).map_err(|source| Error::ReadConfig { path: path.clone(), source })?;
        if let Some(i) = svc.argv.iter().position(|a| a.eq_ignore_ascii_case("--appendonly"))
            && svc.argv.get(i + 1).is_some_and(|v| v.eq_ignore_ascii_case("yes"))
        {
            return Err(Error::AppendonlyArgv {
                service: svc.name.clone(),
                rdb_file: inst.rdb_file.clone(),
                conf: path,
            }
            .into());
        }
        let aof_wanted = directive(&text, "appendonly").as_deref() == Some("yes");
        Ok(Self { path, text, aof_wanted })
    }
}

pub(super) async fn restore(inst: &Redis, backup: Option<&str>, ctx: &Ctx<'_>) -> Result<Outputs, error::Error> {
    let svc = ctx.allow.service(&inst.service)?;
    let file = pick_backup(inst, backup)?;
    let age = fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs());
    ctx.out.line(&format!("restoring {} ({age} s old) into {}", file.display(), inst.rdb_path().display()));
    let owner = inst.owner.as_deref().map(resolve_owner).transpose()?;
    // Redis must start with appendonly no; the agent controls it through the config file.
    let conf = ConfigFile::read(inst, svc)?;
    let file_s = file.to_string_lossy().into_owned();
    let (read, expired) = check_backup(ctx, &file_s).await?;
    check_running_files(inst).await?;

    service::stop(ctx, svc).await?;
    let before = keep_data_dir(ctx, inst, svc, &conf.path).await?;
    let stopped =
        |e: error::Error| Error::Stopped { source: Box::new(e), service: svc.name.clone(), kept: before.clone() };
    put_in_place(ctx, inst, &file, owner).await.map_err(stopped)?;
    if conf.aof_wanted {
        write_atomic(&conf.path, &set_directive(&conf.text, "appendonly", "no"))
            .map_err(|e| stopped(Error::SetAppendonlyNo { path: conf.path.clone(), source: Box::new(e) }.into()))?;
        ctx.out.line(&format!("set appendonly no in {} for the start", conf.path.display()));
    }
    let left_off = AofOff(conf.aof_wanted.then(|| conf.path.clone()));
    service::start(ctx, svc).await.map_err(|source| Error::NotUp {
        service: svc.name.clone(),
        rdb_file: inst.rdb_file.clone(),
        source,
        left_off: left_off.clone(),
    })?;

    let mut c = connect(inst).await?;
    check_loaded(ctx, inst, svc, &mut c, &conf, (read, expired), &left_off).await?;
    if conf.aof_wanted {
        aof_back_on(ctx, inst, &mut c, &conf, &left_off).await?;
    }
    let keys = dbsize_of(&mut c).await?;
    let mut o = Outputs::new();
    o.insert("backup".into(), Value::String(file_s));
    o.insert("backup_age_seconds".into(), Value::from(age));
    o.insert("keys".into(), Value::from(keys));
    o.insert("before_restore".into(), Value::String(before.display().to_string()));
    o.insert("appendonly".into(), Value::String(if conf.aof_wanted { "yes" } else { "no" }.into()));
    Ok(o)
}

/// The backup must be a valid RDB with keys: `(keys read, already expired)`.
async fn check_backup(ctx: &Ctx<'_>, file: &str) -> Result<(Option<u64>, u64), error::Error> {
    let checked = run(&["redis-check-rdb", file], None, ctx.out, TOOL_TIMEOUT).await?;
    if !checked.ok() {
        return Err(Error::Damaged { file: file.to_string(), code: checked.code, tail: checked.tail() }.into());
    }
    let (read, expired) = rdb_counts(&format!("{}\n{}", checked.stdout, checked.stderr));
    if let Some(r) = read
        && r <= expired
    {
        return Err(Error::NoLiveKeys { file: file.to_string(), read: r, expired }.into());
    }
    Ok((read, expired))
}

/// If it runs, it must be using the files this restore writes.
async fn check_running_files(inst: &Redis) -> Result<(), error::Error> {
    let Ok(mut c) = Conn::open(inst).await else { return Ok(()) };
    let dir = config::get(&mut c, "dir").await.ok().flatten();
    let dbfilename = config::get(&mut c, "dbfilename").await.ok().flatten();
    if let (Some(dir), Some(name)) = (dir, dbfilename) {
        let live = Path::new(&dir).join(&name);
        let canonical = |d: &Path| d.canonicalize().unwrap_or_else(|_| d.to_path_buf());
        if canonical(Path::new(&dir)) != canonical(&inst.data_dir) || name != inst.rdb_file {
            return Err(Error::OtherFiles { instance: inst.name.clone(), live, configured: inst.rdb_path() }.into());
        }
    }
    Ok(())
}

/// Backs up what is in the data dir (and the config) before anything is
/// replaced: the new directory in the backup dir.
async fn keep_data_dir(ctx: &Ctx<'_>, inst: &Redis, svc: &Service, conf: &Path) -> Result<PathBuf, error::Error> {
    let (backup_dir, name, conf) = (inst.backup_dir.clone(), inst.name.clone(), conf.to_path_buf());
    let (rdb, aof_dir, single) = (inst.rdb_path(), inst.aof_path(), inst.data_dir.join(OLD_STYLE_AOF));
    let kept = blocking(move || {
        let dest = new_backup_dir(&backup_dir, &format!("before-restore-{name}"))?;
        let mut copied = Vec::new();
        for f in [&rdb, &single, &conf] {
            if f.is_file() {
                copy_file_synced(f, &dest.join(f.file_name().unwrap_or_default()))?;
                copied.push(f.display().to_string());
            }
        }
        if aof_dir.is_dir() {
            copy_dir_synced(&aof_dir, &dest.join(aof_dir.file_name().unwrap_or_default()))?;
            copied.push(aof_dir.display().to_string());
        }
        sync_dir(&dest);
        Ok((dest, copied))
    })
    .await;
    let (before, copied) = kept.map_err(|e| Error::KeepFailed { source: Box::new(e), service: svc.name.clone() })?;
    if copied.is_empty() {
        ctx.out.line(&format!("nothing in {} to keep; made {}", inst.data_dir.display(), before.display()));
    } else {
        ctx.out.line(&format!("kept {} in {}", copied.join(", "), before.display()));
    }
    Ok(before)
}

/// Removes the AOF (a stale one must not be loaded, and appendonly no
/// ignores it anyway) and copies the backup into place.
async fn put_in_place(ctx: &Ctx<'_>, inst: &Redis, file: &Path, owner: Option<(u32, u32)>) -> Result<(), error::Error> {
    let (rdb, aof_dir, single) = (inst.rdb_path(), inst.aof_path(), inst.data_dir.join(OLD_STYLE_AOF));
    if aof_dir.is_dir() {
        fs::remove_dir_all(&aof_dir).map_err(io("remove", &aof_dir))?;
    }
    if single.is_file() {
        fs::remove_file(&single).map_err(io("remove", &single))?;
    }
    sync_dir(&inst.data_dir);
    let (from, to) = (file.to_path_buf(), rdb.clone());
    let (sha, bytes, kept) = blocking(move || Ok(files::copy_verified(&from, &to, owner)?)).await?;
    if let Some(k) = kept {
        // Its copy is in the before-restore directory.
        let _ = fs::remove_file(k);
    }
    ctx.out.line(&format!("copied {} to {} ({bytes} bytes, sha256 {sha})", file.display(), rdb.display()));
    Ok(())
}

/// Redis must have started from the backup: AOF off, keys loaded.
async fn check_loaded(
    ctx: &Ctx<'_>,
    inst: &Redis,
    svc: &Service,
    c: &mut Conn,
    conf: &ConfigFile,
    (read, expired): (Option<u64>, u64),
    left_off: &AofOff,
) -> Result<(), error::Error> {
    let persistence = info_fields(c, &["persistence"]).await?;
    if field(&persistence, "aof_enabled") == Some("1") {
        let stop = stop_without_saving(inst, ctx, svc).await;
        return Err(Error::AofStillOn { conf: conf.path.clone(), rdb_file: inst.rdb_file.clone(), stop }.into());
    }
    let loaded = total_keys(c).await?;
    if loaded == 0 {
        let stop = stop_without_saving(inst, ctx, svc).await;
        return Err(Error::LoadedNothing { read, stop, left_off: left_off.clone() }.into());
    }
    ctx.out.line(&format!("{}: {loaded} keys loaded from the backup", inst.name));
    if let Some(r) = read
        && loaded < r.saturating_sub(expired)
    {
        ctx.out.line(&format!("note: redis-check-rdb read {r} keys ({expired} already expired); {loaded} are loaded"));
    }
    Ok(())
}

/// Turns the AOF back on, waits for its rewrite, and writes the config file
/// back as it was (appendonly yes).
async fn aof_back_on(
    ctx: &Ctx<'_>,
    inst: &Redis,
    c: &mut Conn,
    conf: &ConfigFile,
    left_off: &AofOff,
) -> Result<(), error::Error> {
    if let Reply::ServerError(e) = c.call(&["CONFIG", "SET", "appendonly", "yes"]).await? {
        return Err(Error::AofOnFailed { said: said(&e), left_off: left_off.clone() }.into());
    }
    ctx.out.line("CONFIG SET appendonly yes: waiting for the AOF rewrite");
    wait_for_rewrite(c, left_off).await?;
    let aof_dir = inst.aof_path();
    if find_manifest(&aof_dir).ok().flatten().is_none() {
        return Err(Error::RewriteNoManifest { dir: aof_dir, left_off: left_off.clone() }.into());
    }
    // Persist: the config file as it was (appendonly yes).
    write_atomic(&conf.path, &conf.text).map_err(|e| Error::WriteBack {
        path: conf.path.clone(),
        source: Box::new(e),
        left_off: left_off.clone(),
    })?;
    let now = fs::read_to_string(&conf.path).unwrap_or_default();
    if directive(&now, "appendonly").as_deref() != Some("yes") {
        return Err(Error::NotWrittenBack { path: conf.path.clone(), left_off: left_off.clone() }.into());
    }
    ctx.out.line(&format!("AOF rewritten; appendonly yes persisted in {}", conf.path.display()));
    Ok(())
}

/// Polls INFO persistence until the AOF is on and no rewrite is running or scheduled.
async fn wait_for_rewrite(c: &mut Conn, left_off: &AofOff) -> Result<(), error::Error> {
    let deadline = Instant::now() + REWRITE_TIMEOUT;
    let mut pause = Duration::from_millis(50);
    loop {
        let p = info_fields(c, &["persistence"]).await?;
        if field(&p, "aof_last_bgrewrite_status") == Some("err") {
            return Err(Error::RewriteFailed { left_off: left_off.clone() }.into());
        }
        if field(&p, "aof_enabled") == Some("1")
            && field(&p, "aof_rewrite_in_progress") == Some("0")
            && field(&p, "aof_rewrite_scheduled") == Some("0")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::RewriteTimeout { timeout: REWRITE_TIMEOUT, left_off: left_off.clone() }.into());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::super::perform;
    use super::super::testkit::{TestRedis, err_of, file_names, names};
    use super::*;
    use serde_json::json;

    #[test]
    fn parsing_the_report_and_the_owner() {
        assert_eq!(rdb_counts("[info] 40 keys read\n[info] 0 expires\n[info] 2 already expired\n"), (Some(40), 2));
        assert_eq!(resolve_owner("0:0").unwrap(), (0, 0));
        assert_eq!(resolve_owner("root").unwrap(), (0, 0));
        assert_eq!(resolve_owner("root:root").unwrap(), (0, 0));
        assert!(resolve_owner("no-such-user-here").unwrap_err().to_string().contains("no user"));
    }

    /// 40 keys saved to an RDB copied to the backup dir an hour ago, then 5
    /// later writes (in the AOF only).
    async fn with_backup() -> (TestRedis, PathBuf) {
        let r = TestRedis::start("").await;
        r.write_keys("k", 0..40).await;
        assert_eq!(r.cmd(&["SAVE"]).await, Reply::Okay);
        let backup = r.backups.join("dump-20261127.rdb");
        fs::copy(r.data.join("dump.rdb"), &backup).unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(&backup).unwrap().set_modified(hour_ago).unwrap();
        // An older (broken) one: the newest is picked.
        let older = r.backups.join("dump-20261001.rdb");
        fs::write(&older, "not an rdb").unwrap();
        fs::File::options()
            .write(true)
            .open(&older)
            .unwrap()
            .set_modified(hour_ago - Duration::from_secs(3600))
            .unwrap();
        r.write_keys("late", 0..5).await;
        (r, backup)
    }

    #[tokio::test]
    async fn restore_rdb_with_appendonly_yes_keeps_the_restored_keys_across_a_restart() {
        let (r, backup) = with_backup().await;
        let o = r.act("redis.restore_rdb", json!({})).await.unwrap();
        assert_eq!(o["backup"], backup.canonicalize().unwrap().display().to_string());
        let age = o["backup_age_seconds"].as_u64().unwrap();
        assert!((3600..3700).contains(&age), "{age}");
        assert_eq!(o["keys"], 40);
        assert_eq!(r.keys("k:*").await, names("k", 0..40));
        assert!(r.keys("late:*").await.is_empty(), "writes after the backup are gone (the RPO)");
        // The AOF is on again, rewritten, and persisted in the config file.
        assert_eq!(r.persistence("aof_enabled").await.as_deref(), Some("1"));
        assert!(r.manifest().is_file());
        let conf = fs::read_to_string(&r.conf).unwrap();
        assert!(conf.lines().any(|l| l == "appendonly yes") && !conf.contains("appendonly no"), "{conf}");
        // What was there before is kept.
        let before = PathBuf::from(o["before_restore"].as_str().unwrap());
        assert_eq!(r.backup_dirs("before-restore-cache-"), vec![before.clone()]);
        assert_eq!(file_names(&before), ["appendonlydir", "dump.rdb", "redis.conf"]);
        assert!(before.join("appendonlydir/appendonly.aof.manifest").is_file());
        assert!(!file_names(&r.data).iter().any(|n| n.contains("before")), "no leftovers in the data dir");
        let out = r.out.text();
        assert!(out.contains("40 keys read") && out.contains("set appendonly no"), "{out}");

        // A restart loads the rewritten AOF: the keys survive.
        r.down().await;
        r.up().await;
        assert_eq!(r.keys("*").await, names("k", 0..40));
        assert_eq!(r.persistence("aof_enabled").await.as_deref(), Some("1"));
    }

    #[tokio::test]
    async fn restore_rdb_refuses_bad_backups_and_paths_before_touching_redis() {
        let (r, backup) = with_backup().await;
        let refused = [
            (json!({"backup": "/etc/passwd"}), "outside the backup directory"),
            (json!({"backup": "../redis.conf"}), "\"..\" is not allowed"),
            (json!({"backup": "dump-20261001.rdb"}), "redis-check-rdb says the backup"),
            (json!({"backup": "missing.rdb"}), "missing.rdb"),
        ];
        for (args, expect) in refused {
            let e = err_of(r.act("redis.restore_rdb", args.clone()).await);
            assert!(e.contains(expect), "{args}: expected {expect:?} in {e:?}");
        }
        std::os::unix::fs::symlink("/etc/passwd", r.backups.join("link.rdb")).unwrap();
        let e = err_of(r.act("redis.restore_rdb", json!({"backup": "link.rdb"})).await);
        assert!(e.contains("outside the backup directory"), "{e}");
        // Without config_file the agent cannot start Redis with appendonly no.
        let mut inst = r.inst().clone();
        inst.config_file = None;
        let e = err_of(perform("redis.restore_rdb", &inst, &json!({"backup": "dump-20261127.rdb"}), &r.ctx()).await);
        assert!(e.contains("config_file") && e.contains("EMPTY"), "{e}");
        // An allowlist whose data_dir is not the running server's: the restore would write the wrong file.
        let mut inst = r.inst().clone();
        inst.data_dir = r.root.clone();
        let e = err_of(perform("redis.restore_rdb", &inst, &json!({}), &r.ctx()).await);
        assert!(e.contains("the running cache loads") && e.contains("nothing was changed"), "{e}");
        // Nothing was touched.
        assert!(r.running());
        assert_eq!(r.keys("*").await.len(), 45);
        assert!(r.backup_dirs("").is_empty());
        assert_eq!(fs::read_to_string(&r.conf).unwrap().lines().filter(|l| *l == "appendonly yes").count(), 1);
        // By file name, the good one restores.
        let o = r.act("redis.restore_rdb", json!({"backup": "dump-20261127.rdb"})).await.unwrap();
        assert_eq!(o["backup"], backup.canonicalize().unwrap().display().to_string());
        assert_eq!(r.keys("*").await, names("k", 0..40));
    }

    #[tokio::test]
    async fn restore_rdb_on_an_rdb_only_instance_leaves_appendonly_off() {
        let r = TestRedis::new("");
        let conf = fs::read_to_string(&r.conf).unwrap().replace("appendonly yes", "appendonly no");
        fs::write(&r.conf, &conf).unwrap();
        r.up().await;
        r.write_keys("k", 0..7).await;
        assert_eq!(r.cmd(&["SAVE"]).await, Reply::Okay);
        fs::copy(r.data.join("dump.rdb"), r.backups.join("dump-1.rdb")).unwrap();
        r.write_keys("late", 0..3).await;
        let o = r
            .act("redis.restore_rdb", json!({"backup": r.backups.join("dump-1.rdb").to_str().unwrap()}))
            .await
            .unwrap();
        assert_eq!((o["keys"].as_u64(), o["appendonly"].as_str()), (Some(7), Some("no")));
        assert_eq!(r.keys("*").await, names("k", 0..7));
        assert_eq!(r.persistence("aof_enabled").await.as_deref(), Some("0"));
        assert_eq!(fs::read_to_string(&r.conf).unwrap(), conf, "the config file is untouched");
        assert!(!r.aof_dir().exists());
    }
}
