//! `redis.readiness`: what the Redis runbooks would find on this host now,
//! read without changing anything — whether the instance answers and has
//! the AOF on, the AOF directory `redis.check_aof` would repair (its
//! manifest, the files it names, its size against the free space), and the
//! RDB backups `file.newest` would pick from for redis-rdb. Facts only: the
//! coordinator's readiness checks judge them.

use super::aof::{self, OLD_STYLE_AOF, find_manifest};
use super::backup::blocking;
use super::config::{self, directive};
use super::conn::{Conn, Unreachable, connect};
use super::error::{Error, io};
use super::manifest;
use super::read::{field, info_fields};
use crate::actions::{Ctx, Outputs, files};
use crate::policy::Redis;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// `backup_pattern` when a step gives none: redis-rdb's default.
pub(super) const DEFAULT_BACKUP_PATTERN: &str = "dump-*.rdb";

/// What the manifest of the AOF directory is like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manifest {
    Ok,
    /// No manifest file (or no AOF directory).
    Missing,
    /// A manifest Redis would not load.
    Unreadable,
}

impl Manifest {
    fn as_str(self) -> &'static str {
        match self {
            Manifest::Ok => "ok",
            Manifest::Missing => "missing",
            Manifest::Unreadable => "unreadable",
        }
    }
}

/// The AOF's facts, read from the disk.
struct Aof {
    manifest: Manifest,
    /// Empty when the manifest is ok.
    problem: String,
    /// Base and incr files the manifest names that are not there.
    missing_files: Vec<String>,
    bytes: u64,
    free_bytes: u64,
}

/// The RDB backups' facts.
struct Backups {
    count: u64,
    /// The newest, and its age in seconds.
    newest: Option<(PathBuf, u64)>,
}

pub(super) async fn readiness(
    inst: &Redis,
    backup_dir: Option<&str>,
    backup_pattern: &str,
    ctx: &Ctx<'_>,
) -> Result<Outputs, Error> {
    // The same policy check as file.newest, before anything is read.
    let backup_dir = backup_dir.map(|d| ctx.allow.readable(d)).transpose()?;
    let (redis_up, aof_enabled) = match connect(inst).await {
        Ok(mut c) => (true, Some(appendonly(&mut c).await?)),
        Err(Error::Unreachable { reason: Unreachable::Connect { .. } | Unreachable::Timeout(_), .. }) => {
            (false, appendonly_configured(inst, ctx)?)
        }
        Err(e) => return Err(e),
    };
    let aof_inst = inst.clone();
    let aof = blocking(move || aof_facts(&aof_inst)).await?;
    let backups = match backup_dir {
        Some(dir) => {
            let pattern = backup_pattern.to_string();
            Some((blocking(move || rdb_backups(&dir, &pattern)).await?, backup_pattern))
        }
        None => None,
    };

    let aof_dir = inst.aof_path().display().to_string();
    let enabled = aof_enabled.map_or("unknown".to_string(), |on| if on { "on" } else { "off" }.to_string());
    let from = if redis_up { "Redis says" } else { "Redis is down; configured" };
    ctx.out.line(&format!("{}: appendonly {enabled} ({from})", inst.name));
    ctx.out.line(&format!(
        "AOF {aof_dir}: manifest {}{}; {} bytes, {} bytes free",
        aof.manifest.as_str(),
        if aof.problem.is_empty() { String::new() } else { format!(" ({})", aof.problem) },
        aof.bytes,
        aof.free_bytes
    ));
    if !aof.missing_files.is_empty() {
        ctx.out.line(&format!("files the manifest names that are missing: {}", aof.missing_files.join(", ")));
    }

    let mut o = Outputs::new();
    o.insert("redis_up".into(), Value::Bool(redis_up));
    if let Some(on) = aof_enabled {
        o.insert("aof_enabled".into(), Value::Bool(on));
    }
    o.insert("aof_dir".into(), Value::String(aof_dir));
    o.insert("manifest".into(), Value::String(aof.manifest.as_str().into()));
    o.insert("manifest_problem".into(), Value::String(aof.problem));
    o.insert("missing_files".into(), Value::from(aof.missing_files));
    o.insert("aof_bytes".into(), Value::from(aof.bytes));
    o.insert("free_bytes".into(), Value::from(aof.free_bytes));
    if let Some((b, pattern)) = backups {
        match &b.newest {
            Some((path, age)) => ctx.out.line(&format!(
                "{} backups match {pattern}; the newest is {} ({age}s old)",
                b.count,
                path.display()
            )),
            None => ctx.out.line(&format!("no backup matches {pattern}")),
        }
        o.insert("rdb_backups".into(), Value::from(b.count));
        if let Some((path, age)) = b.newest {
            o.insert("newest_rdb".into(), Value::String(path.display().to_string()));
            o.insert("newest_rdb_age_s".into(), Value::from(age));
        }
    }
    Ok(o)
}

/// Whether the running instance has the AOF on: `CONFIG GET appendonly`,
/// or INFO's `aof_enabled` where CONFIG is renamed away.
async fn appendonly(c: &mut Conn) -> Result<bool, Error> {
    if let Ok(Some(v)) = config::get(c, "appendonly").await {
        return Ok(v.eq_ignore_ascii_case("yes"));
    }
    let fields = info_fields(c, &["persistence"]).await?;
    match field(&fields, "aof_enabled") {
        Some(v) => Ok(v == "1"),
        None => Err(Error::unexpected("INFO persistence", "no aof_enabled field")),
    }
}

/// What a stopped instance would start with: `--appendonly` on its
/// service's command line, else its config file's `appendonly` (Redis's
/// default `no` when it has none); unknown without a config file.
fn appendonly_configured(inst: &Redis, ctx: &Ctx<'_>) -> Result<Option<bool>, Error> {
    let argv = ctx.allow.service(&inst.service).map(|s| s.argv.as_slice()).unwrap_or_default();
    if let Some(i) = argv.iter().position(|a| a.eq_ignore_ascii_case("--appendonly"))
        && let Some(v) = argv.get(i + 1)
    {
        return Ok(Some(v.eq_ignore_ascii_case("yes")));
    }
    let Some(path) = &inst.config_file else { return Ok(None) };
    let text = fs::read_to_string(path).map_err(io("read", path))?;
    Ok(Some(directive(&text, "appendonly").is_some_and(|v| v == "yes")))
}

fn aof_facts(inst: &Redis) -> Result<Aof, Error> {
    let dir = inst.aof_path();
    if !dir.is_dir() {
        // Nothing to repair in place; the space is that of the data dir.
        let free_bytes = free_bytes(&inst.data_dir)?;
        let single = inst.data_dir.join(OLD_STYLE_AOF);
        let (bytes, problem) = match fs::metadata(&single) {
            Ok(m) if m.is_file() => (
                m.len(),
                format!(
                    "no AOF directory {}; an old-style {} is there, which Redis 7 moves into a directory with a \
                     manifest when it starts",
                    dir.display(),
                    single.display()
                ),
            ),
            _ => (0, format!("no AOF directory {}", dir.display())),
        };
        return Ok(Aof { manifest: Manifest::Missing, problem, missing_files: Vec::new(), bytes, free_bytes });
    }
    let bytes = dir_bytes(&dir)?;
    let free_bytes = free_bytes(&dir)?;
    let (manifest, problem, missing_files) = match find_manifest(&dir) {
        Ok(None) => (
            Manifest::Missing,
            format!("no manifest in {}: Redis would start EMPTY from this directory", dir.display()),
            Vec::new(),
        ),
        Ok(Some(path)) => {
            let text = fs::read(&path).map_err(io("read", &path))?;
            match manifest::parse(&text) {
                Ok(entries) => {
                    let missing = entries
                        .iter()
                        .filter(|e| e.loaded() && !dir.join(&e.name).is_file())
                        .map(|e| e.name.to_string_lossy().into_owned())
                        .collect();
                    (Manifest::Ok, String::new(), missing)
                }
                Err(p) => (Manifest::Unreadable, format!("{}: {p}", path.display()), Vec::new()),
            }
        }
        Err(Error::Aof(e)) if matches!(*e, aof::Error::SeveralManifests { .. }) => {
            (Manifest::Unreadable, e.to_string(), Vec::new())
        }
        Err(e) => return Err(e),
    };
    Ok(Aof { manifest, problem, missing_files, bytes, free_bytes })
}

/// The bytes of the regular files under `dir`, as the copy aside counts them.
fn dir_bytes(dir: &Path) -> Result<u64, Error> {
    let mut bytes = 0;
    for e in fs::read_dir(dir).map_err(io("list", dir))? {
        let e = e.map_err(io("list", dir))?;
        let kind = e.file_type().map_err(io("read", &e.path()))?;
        if kind.is_dir() {
            bytes += dir_bytes(&e.path())?;
        } else if kind.is_file() {
            bytes += e.metadata().map_err(io("read", &e.path()))?.len();
        }
    }
    Ok(bytes)
}

/// Bytes free to this (unprivileged) user on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64, Error> {
    let s = rustix::fs::statvfs(path).map_err(|e| Error::Io {
        doing: "measure the free space of",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The files in `dir` matching `pattern`: how many, and the newest (the one
/// `file.newest` picks) with its age against the agent's clock.
fn rdb_backups(dir: &Path, pattern: &str) -> Result<Backups, Error> {
    let list = |source| files::Error::List { path: dir.to_path_buf(), source };
    let mut count = 0;
    for e in fs::read_dir(dir).map_err(list)? {
        let e = e.map_err(list)?;
        if e.metadata().is_ok_and(|m| m.is_file()) && files::glob(pattern, &e.file_name().to_string_lossy()) {
            count += 1;
        }
    }
    let newest = match files::newest_in(dir, pattern)? {
        Some((path, _)) => {
            let modified = fs::metadata(&path).and_then(|m| m.modified()).map_err(io("read", &path))?;
            let mtime_ms = modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let now_ms = u128::try_from(ripcord_pki::clock::now_ms()).unwrap_or(0);
            let age = u64::try_from(now_ms.saturating_sub(mtime_ms) / 1000).unwrap_or(u64::MAX);
            Some((path, age))
        }
        None => None,
    };
    Ok(Backups { count, newest })
}

#[cfg(test)]
mod tests {
    use super::super::config::set_directive;
    use super::super::perform;
    use super::super::testkit::{TestRedis, err_of, file_names, names};
    use super::*;
    use serde_json::json;
    use std::time::{Duration, SystemTime};

    /// A test Redis whose agent may also read `backups` (a `[[paths]]` entry
    /// after the instance's).
    async fn with_backups(backups: &Path) -> TestRedis {
        TestRedis::start(&format!("\n[[paths]]\ndir = \"{}\"\nwrite = false\n", backups.display())).await
    }

    /// Keys in the AOF's base RDB and in its incr file.
    async fn base_and_incr(r: &TestRedis) {
        r.write_keys("k", 0..20).await;
        r.rewrite_aof().await;
        r.write_keys("k", 20..30).await;
    }

    fn total_size(dir: &Path) -> u64 {
        file_names(dir).iter().map(|n| fs::metadata(dir.join(n)).unwrap().len()).sum()
    }

    /// A file in `dir` last modified `age` ago.
    fn backup_file(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "REDIS0011").unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        path.canonicalize().unwrap()
    }

    #[tokio::test]
    async fn an_aof_instance_with_a_good_manifest_is_reported_as_it_is_and_left_unchanged() {
        let r = TestRedis::start("").await;
        base_and_incr(&r).await;
        let manifest_before = fs::read(r.manifest()).unwrap();

        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!(o["redis_up"], true);
        assert_eq!(o["aof_enabled"], true);
        assert_eq!(o["aof_dir"], r.aof_dir().display().to_string());
        assert_eq!((o["manifest"].as_str(), o["manifest_problem"].as_str()), (Some("ok"), Some("")), "{o:?}");
        assert_eq!(o["missing_files"], json!([]));
        let bytes = o["aof_bytes"].as_u64().unwrap();
        assert_eq!(bytes, total_size(&r.aof_dir()));
        assert!(bytes > fs::metadata(r.aof_file("b")).unwrap().len(), "base and incr: {o:?}");
        assert!(o["free_bytes"].as_u64().unwrap() > 0, "{o:?}");
        for absent in ["rdb_backups", "newest_rdb", "newest_rdb_age_s"] {
            assert!(o.get(absent).is_none(), "{absent} without backup_dir: {o:?}");
        }
        // Read only.
        assert_eq!(fs::read(r.manifest()).unwrap(), manifest_before);
        assert_eq!(r.keys("k:*").await, names("k", 0..30));

        // Down: appendonly from the config file, the AOF as before.
        r.down().await;
        let down = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((down["redis_up"].as_bool(), down["aof_enabled"].as_bool()), (Some(false), Some(true)));
        assert_eq!((down["manifest"].as_str(), down["aof_bytes"].as_u64()), (Some("ok"), Some(bytes)));
        assert!(!r.running(), "readiness starts nothing");
    }

    #[tokio::test]
    async fn aof_enabled_comes_from_redis_and_when_it_is_down_from_its_config_file() {
        let r = TestRedis::start("").await;
        assert_eq!(r.cmd(&["CONFIG", "SET", "appendonly", "no"]).await, ::redis::Value::Okay);
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((o["redis_up"].as_bool(), o["aof_enabled"].as_bool()), (Some(true), Some(false)));

        r.down().await;
        // Not persisted: the config file still says yes.
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((o["redis_up"].as_bool(), o["aof_enabled"].as_bool()), (Some(false), Some(true)));
        let conf = fs::read_to_string(&r.conf).unwrap();
        fs::write(&r.conf, set_directive(&conf, "appendonly", "no")).unwrap();
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!(o["aof_enabled"], false);

        // No config file in the allowlist: unknown, so absent.
        let mut inst = r.inst().clone();
        inst.config_file = None;
        let args = json!({"instance": "cache"});
        let o = perform("redis.readiness", &inst, &args, &r.ctx()).await.unwrap();
        assert_eq!(o["redis_up"], false);
        assert!(o.get("aof_enabled").is_none(), "{o:?}");
        assert_eq!(o["manifest"], "ok", "the AOF facts are there all the same");
    }

    #[tokio::test]
    async fn a_missing_or_garbled_manifest_and_missing_files_are_named() {
        let r = TestRedis::start("").await;
        base_and_incr(&r).await;
        r.down().await;
        let good = fs::read(r.manifest()).unwrap();
        let incr = r.aof_file("i");

        fs::remove_file(r.manifest()).unwrap();
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!(o["manifest"], "missing");
        let problem = o["manifest_problem"].as_str().unwrap();
        assert!(problem.contains("no manifest") && problem.contains("EMPTY"), "{problem}");
        assert_eq!(o["aof_bytes"].as_u64(), Some(total_size(&r.aof_dir())));

        let mut garbled = good.clone();
        garbled.extend_from_slice(b"\x00\xffnot a manifest line\n");
        fs::write(r.manifest(), &garbled).unwrap();
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!(o["manifest"], "unreadable");
        let problem = o["manifest_problem"].as_str().unwrap();
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let want = format!("appendonly.aof.manifest: line {line} is not `file NAME seq N type b|h|i`");
        assert!(problem.contains(&want), "{problem}");
        assert_eq!(o["missing_files"], json!([]));

        fs::write(r.manifest(), &good).unwrap();
        fs::remove_file(&incr).unwrap();
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((o["manifest"].as_str(), o["manifest_problem"].as_str()), (Some("ok"), Some("")));
        assert_eq!(o["missing_files"], json!([incr.file_name().unwrap().to_string_lossy()]));

        // No AOF directory at all.
        fs::remove_dir_all(r.aof_dir()).unwrap();
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((o["manifest"].as_str(), o["aof_bytes"].as_u64()), (Some("missing"), Some(0)));
        assert!(o["manifest_problem"].as_str().unwrap().starts_with("no AOF directory"), "{o:?}");
        assert!(o["free_bytes"].as_u64().unwrap() > 0);
    }

    #[tokio::test]
    async fn rdb_backups_are_counted_and_the_newest_has_its_age() {
        let backups = tempfile::tempdir().unwrap();
        let dir = backups.path();
        let r = with_backups(dir).await;
        let args = |extra: Value| {
            let mut a = json!({"backup_dir": dir.display().to_string()});
            a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            a
        };

        // None yet: a count of 0, no newest.
        let o = r.act("redis.readiness", args(json!({}))).await.unwrap();
        assert_eq!(o["rdb_backups"], 0);
        assert!(o.get("newest_rdb").is_none() && o.get("newest_rdb_age_s").is_none(), "{o:?}");

        let hour = Duration::from_secs(3600);
        let newer = backup_file(dir, "dump-2.rdb", hour);
        backup_file(dir, "dump-1.rdb", 3 * hour);
        let other = backup_file(dir, "other.rdb", Duration::from_secs(60));
        fs::create_dir(dir.join("dump-dir.rdb")).unwrap();

        let o = r.act("redis.readiness", args(json!({}))).await.unwrap();
        assert_eq!(o["rdb_backups"], 2, "dump-*.rdb by default, files only: {o:?}");
        assert_eq!(o["newest_rdb"], newer.display().to_string());
        let age = o["newest_rdb_age_s"].as_u64().unwrap();
        assert!((3600..3600 + 60).contains(&age), "{age}");

        let o = r.act("redis.readiness", args(json!({"backup_pattern": "*.rdb"}))).await.unwrap();
        assert_eq!(o["rdb_backups"], 3);
        assert_eq!(o["newest_rdb"], other.display().to_string());
        assert!(o["newest_rdb_age_s"].as_u64().unwrap() < 3600);

        // The directory must be allowed, as for file.newest.
        let e = err_of(r.act("redis.readiness", json!({"backup_dir": r.backups.display().to_string()})).await);
        assert!(e.contains("refused by the agent's allowlist") && e.contains("outside the allowed directories"), "{e}");
    }

    #[tokio::test]
    async fn a_password_protected_instance_is_read_and_its_password_never_shown() {
        const PASSWORD: &str = "pw-ready-3b7e1d";
        let r = TestRedis::with_password(PASSWORD);
        r.up().await;
        let o = r.act("redis.readiness", json!({})).await.unwrap();
        assert_eq!((o["redis_up"].as_bool(), o["aof_enabled"].as_bool()), (Some(true), Some(true)));

        let file = r.inst().password_file.clone().unwrap();
        fs::write(&file, "wrong\n").unwrap();
        let e = err_of(r.act("redis.readiness", json!({})).await);
        assert!(e.contains("refused the password in"), "a refusal is not taken for Redis being down: {e}");
        for shown in [&e, &r.out.text()] {
            assert!(!shown.contains(PASSWORD), "{shown}");
        }
    }
}
