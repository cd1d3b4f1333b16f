//! Redis actions: `redis.ping`, `redis.dbsize`, `redis.info`,
//! `redis.config_set`, `redis.delete_pattern`, `redis.check_aof` and
//! `redis.restore_rdb`, on an instance the allowlist names.
//!
//! The two destructive ones follow the Redis 7 facts in
//! `shared/reference/redis7.md`:
//!
//! - `check_aof` copies the whole AOF directory into the backup dir before
//!   `redis-check-aof --fix` touches it, gives the tool the manifest (not the
//!   directory), answers its `Continue? [y/N]`, reports the bytes it
//!   discarded, never starts Redis on a directory without a manifest (it
//!   would start EMPTY), and sends an unrepairable base RDB to the RDB
//!   restore (the redis-rdb runbook).
//! - `restore_rdb` validates the backup with `redis-check-rdb`, backs up
//!   what is in the data dir, moves the AOF out of the way, starts Redis with
//!   `appendonly no` (set in the config file: with `appendonly yes` and no
//!   AOF Redis ignores `dump.rdb` and starts empty), checks the keys loaded,
//!   then turns the AOF back on, waits for the rewrite and persists the
//!   setting, so that the next restart loads the same keys.

use super::process::run;
use super::{Ctx, Outputs, arg_bool, arg_opt_str, arg_str, arg_u64, files, service};
use crate::policy::{Redis, Refused};
use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, ProtocolVersion,
    RedisConnectionInfo, ServerError, Value as Reply,
};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long `redis-check-aof` / `redis-check-rdb` may run (large files).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long the AOF rewrite after a restore may take.
const REWRITE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Keys per UNLINK.
const UNLINK_BATCH: usize = 500;
/// The old-style single AOF file (no directory, no manifest).
const OLD_STYLE_AOF: &str = "appendonly.aof";

pub async fn perform(action: &str, inst: &Redis, args: &Value, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    match action {
        "redis.ping" => ping(inst, ctx).await,
        "redis.dbsize" => dbsize(inst, ctx).await,
        "redis.info" => info(inst, arg_opt_str(args, "section"), ctx).await,
        "redis.config_set" => {
            let persist = arg_bool(args, "persist")?.unwrap_or(false);
            config_set(inst, arg_str(args, "parameter")?, arg_str(args, "value")?, persist, ctx).await
        }
        "redis.delete_pattern" => {
            let max_keys = arg_u64(args, "max_keys")?.ok_or("missing argument max_keys")?;
            let dry_run = arg_bool(args, "dry_run")?.unwrap_or(false);
            let count = arg_u64(args, "count")?.unwrap_or(1000);
            delete_pattern(inst, arg_str(args, "pattern")?, max_keys, dry_run, count, ctx).await
        }
        "redis.check_aof" => check_aof(inst, ctx).await,
        "redis.restore_rdb" => restore_rdb(inst, arg_opt_str(args, "backup"), ctx).await,
        other => Err(format!("{other} is not a redis action")),
    }
}

// ---------------------------------------------------------------- connection

/// How long connecting (with AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one instance, through the `redis` crate (RESP2).
pub(crate) struct Conn(MultiplexedConnection);

/// Why there is no connection. Never holds the password.
pub(crate) enum Unreachable {
    /// The instance refused the password from the password file.
    Password(String),
    Other(String),
}

impl Conn {
    /// Connects to an allowed instance and, if it has a password file,
    /// authenticates with the password in it.
    pub(crate) async fn open(inst: &Redis) -> Result<Self, Unreachable> {
        let other = |m: String| Unreachable::Other(m);
        let password = match &inst.password_file {
            Some(p) => Some(
                fs::read_to_string(p)
                    .map_err(|e| other(format!("cannot read password file {}: {e}", p.display())))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let (host, port) = inst
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
            .ok_or_else(|| other(format!("redis address \"{}\" is not host:port", inst.address)))?;
        let mut settings = RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP2);
        if let Some(p) = &password {
            settings = settings.set_password(p);
        }
        let info = ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(|e| other(format!("redis address \"{}\": {e}", inst.address)))?
            .set_redis_settings(settings);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(ANSWER_TIMEOUT));
        let client = Client::open(info).map_err(|e| other(format!("redis address \"{}\": {e}", inst.address)))?;
        // The crate's errors name neither the password nor the AUTH command's arguments.
        match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(c) => Ok(Conn(c)),
            Err(e) if e.kind() == ErrorKind::AuthenticationFailed => Err(Unreachable::Password(format!(
                "redis instance {} refused the password in {}",
                inst.name,
                inst.password_file.as_deref().map_or("(none)".into(), |p| p.display().to_string())
            ))),
            Err(e) if e.is_timeout() => Err(other(format!("connecting to redis at {} timed out", inst.address))),
            Err(e) => Err(other(format!("cannot connect to redis at {}: {e}", inst.address))),
        }
    }

    /// Sends one command and reads its reply. A Redis error reply is
    /// returned as `Reply::ServerError`, not as `Err`.
    pub(crate) async fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut cmd = Cmd::new();
        for a in args {
            cmd.arg(*a);
        }
        self.send(args.first().copied().unwrap_or_default(), &cmd).await
    }

    /// `call` for a command already built; `name` is for messages.
    async fn send(&mut self, name: &str, cmd: &Cmd) -> Result<Reply, String> {
        self.0.req_packed_command(cmd).await.map_err(|e| {
            if e.is_timeout() { format!("redis did not answer {name} in time") } else { format!("redis {name}: {e}") }
        })
    }

    /// `call`, with an error reply turned into `Err`.
    async fn ok(&mut self, args: &[&str]) -> Result<Reply, String> {
        match self.call(args).await? {
            Reply::ServerError(e) => Err(format!("redis {}: {}", args.first().copied().unwrap_or_default(), said(&e))),
            r => Ok(r),
        }
    }
}

/// An error reply as Redis wrote it (`ERR …`, `NOAUTH …`).
fn said(e: &ServerError) -> String {
    match e.details() {
        Some(d) => format!("{} {d}", e.code()),
        None => e.code().to_string(),
    }
}

/// A reply as text (simple and bulk strings, integers).
fn reply_text(r: &Reply) -> Option<String> {
    ::redis::from_redis_value_ref::<String>(r).ok()
}

/// Connects to an allowed instance; a connection that fails is explained.
async fn connect(inst: &Redis) -> Result<Conn, String> {
    Conn::open(inst).await.map_err(|e| match e {
        Unreachable::Password(m) => format!("{m}; check its password_file"),
        Unreachable::Other(m) => format!(
            "redis instance {} does not answer: {m}; check that its service ({}) is running",
            inst.name, inst.service
        ),
    })
}

/// Whether the instance answers PING with PONG.
pub async fn pings(inst: &Redis) -> bool {
    match Conn::open(inst).await {
        Ok(mut c) => matches!(c.call(&["PING"]).await, Ok(Reply::SimpleString(s)) if s == "PONG"),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------- reading

async fn ping(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    let started = Instant::now();
    let mut c = connect(inst).await?;
    match c.call(&["PING"]).await? {
        Reply::SimpleString(s) if s == "PONG" => {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            ctx.out.line(&format!("{} ({}) answered PONG in {ms} ms", inst.name, inst.address));
            let mut o = Outputs::new();
            o.insert("pong".into(), Value::Bool(true));
            o.insert("latency_ms".into(), Value::from(ms));
            Ok(o)
        }
        Reply::ServerError(e) => Err(format!("redis instance {} answered PING with an error: {}", inst.name, said(&e))),
        other => Err(format!("redis instance {} answered PING with {other:?}, not PONG", inst.name)),
    }
}

async fn dbsize_of(c: &mut Conn) -> Result<u64, String> {
    match c.ok(&["DBSIZE"]).await? {
        Reply::Int(n) => u64::try_from(n).map_err(|_| format!("redis DBSIZE answered {n}")),
        other => Err(format!("redis DBSIZE answered {other:?}")),
    }
}

async fn dbsize(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    let keys = dbsize_of(&mut connect(inst).await?).await?;
    ctx.out.line(&format!("{}: {keys} keys", inst.name));
    let mut o = Outputs::new();
    o.insert("keys".into(), Value::from(keys));
    Ok(o)
}

/// `INFO [sections…]` as `key:value` pairs, in order.
async fn info_fields(c: &mut Conn, sections: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut argv = vec!["INFO"];
    argv.extend_from_slice(sections);
    let text = reply_text(&c.ok(&argv).await?).ok_or("redis INFO answered no text")?;
    Ok(parse_info(&text))
}

/// The `key:value` lines of an INFO reply (section headers and blank lines skipped).
fn parse_info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A number for plain decimal values (`123`, `-4`, `0.75`), else the string.
fn info_value(v: &str) -> Value {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (frac.is_empty() || frac.bytes().all(|b| b.is_ascii_digit()))
        && !(digits.contains('.') && frac.is_empty());
    if plain {
        if let Ok(i) = v.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = v.parse::<u64>() {
            return Value::from(u);
        }
        if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(v.to_string())
}

const INFO_OUTPUTS: [&str; 5] =
    ["used_memory", "used_memory_human", "maxmemory", "maxmemory_policy", "instantaneous_ops_per_sec"];

async fn info(inst: &Redis, section: Option<&str>, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    let section = section.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = section
        && !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("section \"{s}\" is not an INFO section name (e.g. memory, stats, persistence)"));
    }
    let mut c = connect(inst).await?;
    let fields = info_fields(&mut c, section.as_slice()).await?;
    if fields.is_empty() {
        return Err(format!("redis INFO {} returned no fields: is it a section name?", section.unwrap_or("")));
    }
    // The named outputs come from memory and stats, whatever section was asked.
    let extra = if INFO_OUTPUTS.iter().any(|k| field(&fields, k).is_none()) {
        info_fields(&mut c, &["memory", "stats"]).await?
    } else {
        Vec::new()
    };
    let mut o = Outputs::new();
    for k in INFO_OUTPUTS {
        let v = field(&fields, k).or_else(|| field(&extra, k)).map_or(Value::Null, info_value);
        o.insert(k.into(), v);
    }
    let mut all = Map::new();
    for (k, v) in &fields {
        all.insert(k.clone(), info_value(v));
    }
    ctx.out.line(&format!(
        "{}: INFO {}: {} fields; used_memory {} ({}), maxmemory {}, policy {}, {} ops/sec",
        inst.name,
        section.unwrap_or("(default)"),
        all.len(),
        o["used_memory"],
        o["used_memory_human"].as_str().unwrap_or("?"),
        o["maxmemory"],
        o["maxmemory_policy"].as_str().unwrap_or("?"),
        o["instantaneous_ops_per_sec"],
    ));
    o.insert("fields".into(), Value::Object(all));
    Ok(o)
}

// ---------------------------------------------------------------- config_set

async fn config_get(c: &mut Conn, parameter: &str) -> Result<Option<String>, String> {
    match c.ok(&["CONFIG", "GET", parameter]).await? {
        Reply::Array(items) => Ok(items.get(1).and_then(reply_text)),
        other => Err(format!("redis CONFIG GET {parameter} answered {other:?}")),
    }
}

async fn config_set(
    inst: &Redis,
    parameter: &str,
    value: &str,
    persist: bool,
    ctx: &Ctx<'_>,
) -> Result<Outputs, String> {
    if !inst.config_set.iter().any(|p| p.eq_ignore_ascii_case(parameter)) {
        let allowed = if inst.config_set.is_empty() { "none".to_string() } else { inst.config_set.join(", ") };
        return Err(Refused(format!(
            "parameter \"{parameter}\" may not be changed on redis instance {} (allowed: {allowed})",
            inst.name
        ))
        .to_string());
    }
    let mut c = connect(inst).await?;
    let previous = config_get(&mut c, parameter)
        .await?
        .ok_or_else(|| format!("redis does not know the parameter \"{parameter}\""))?;
    if let Reply::ServerError(e) = c.call(&["CONFIG", "SET", parameter, value]).await? {
        let e = said(&e);
        return Err(format!("redis refused CONFIG SET {parameter} {value}: {e}; {parameter} is still {previous}"));
    }
    let now = config_get(&mut c, parameter).await?.unwrap_or_else(|| value.to_string());
    ctx.out.line(&format!("{}: {parameter} {previous} -> {now}", inst.name));
    if persist {
        if let Reply::ServerError(e) = c.call(&["CONFIG", "REWRITE"]).await? {
            let e = said(&e);
            return Err(format!(
                "{parameter} is now {now} (was {previous}) but CONFIG REWRITE failed: {e}; the change is lost at \
                 the next restart unless it is written to the config file"
            ));
        }
        ctx.out.line("written to the config file (CONFIG REWRITE)");
    } else {
        ctx.out.line("not persisted: lost at the next restart");
    }
    let mut o = Outputs::new();
    o.insert("previous".into(), Value::String(previous));
    o.insert("value".into(), Value::String(now));
    o.insert("persisted".into(), Value::Bool(persist));
    Ok(o)
}

// ---------------------------------------------------------------- delete_pattern

fn key_hash(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

async fn delete_pattern(
    inst: &Redis,
    pattern: &str,
    max_keys: u64,
    dry_run: bool,
    count: u64,
    ctx: &Ctx<'_>,
) -> Result<Outputs, String> {
    if pattern.is_empty() {
        return Err("pattern is empty".into());
    }
    if count == 0 {
        return Err("count must be at least 1".into());
    }
    let limit = max_keys.min(inst.max_delete);
    let mut c = connect(inst).await?;
    let count_arg = count.to_string();
    // Every distinct match is counted (SCAN may return a key twice); the
    // keys themselves are kept only while they are within the limit.
    let mut seen: HashSet<u64> = HashSet::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = c.ok(&["SCAN", &cursor, "MATCH", pattern, "COUNT", &count_arg]).await?;
        let Reply::Array(mut parts) = reply else {
            return Err(format!("redis SCAN answered {reply:?}"));
        };
        let (Some(Reply::Array(batch)), Some(next)) = (parts.pop(), parts.pop().as_ref().and_then(reply_text)) else {
            return Err("redis SCAN answered an unexpected reply".into());
        };
        for k in batch {
            if let Reply::BulkString(k) = k
                && seen.insert(key_hash(&k))
                && (keys.len() as u64) < limit
            {
                keys.push(k);
            }
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    let matched = seen.len() as u64;
    ctx.out.line(&format!("{}: {matched} keys match {pattern}", inst.name));
    let mut o = Outputs::new();
    o.insert("matched".into(), Value::from(matched));
    o.insert("limit".into(), Value::from(limit));
    if dry_run {
        if matched > limit {
            ctx.out.line(&format!("dry run: more than the limit of {limit}; a real run would refuse"));
        } else {
            ctx.out.line("dry run: nothing deleted");
        }
        o.insert("deleted".into(), Value::from(0u64));
        o.insert("dry_run".into(), Value::Bool(true));
        return Ok(o);
    }
    if matched > limit {
        let why = if max_keys <= inst.max_delete {
            format!("max_keys {max_keys}")
        } else {
            format!("this agent allows at most {} per step", inst.max_delete)
        };
        return Err(format!(
            "{matched} keys match {pattern} on {}, more than the limit of {limit} ({why}); nothing was deleted: \
             narrow the pattern or raise max_keys",
            inst.name
        ));
    }
    let mut deleted = 0u64;
    // Keys as Redis returned them: names need not be UTF-8.
    for batch in keys.chunks(UNLINK_BATCH) {
        let mut cmd = ::redis::cmd("UNLINK");
        for k in batch {
            cmd.arg(k.as_slice());
        }
        match c.send("UNLINK", &cmd).await? {
            Reply::Int(n) => deleted += u64::try_from(n).unwrap_or(0),
            Reply::ServerError(e) => {
                return Err(format!("redis UNLINK: {} after {deleted} keys were deleted", said(&e)));
            }
            other => return Err(format!("redis UNLINK answered {other:?} after {deleted} keys were deleted")),
        }
    }
    ctx.out.line(&format!("{}: deleted {deleted} of {matched} keys matching {pattern}", inst.name));
    o.insert("deleted".into(), Value::from(deleted));
    o.insert("dry_run".into(), Value::Bool(false));
    Ok(o)
}

// ---------------------------------------------------------------- files

/// `20261127T014900Z`, for backup directory names.
fn stamp() -> String {
    let whole_seconds = ripcord_pki::clock::now_ms().div_euclid(1000) * 1000;
    ripcord_engine::clock::rfc3339(whole_seconds).replace([':', '-'], "")
}

/// Creates `<dir>/<prefix>-<stamp>` (with `-2`, `-3`… if taken).
fn new_backup_dir(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    if !dir.is_dir() {
        return Err(format!("the backup directory {} does not exist; create it first", dir.display()));
    }
    let base = format!("{prefix}-{}", stamp());
    for n in 1..1000 {
        let p = if n == 1 { dir.join(&base) } else { dir.join(format!("{base}-{n}")) };
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", p.display())),
        }
    }
    Err(format!("cannot create a backup directory in {}", dir.display()))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies one file: contents fsynced, mode, owner (when allowed) and
/// modification time kept, checksum compared.
fn copy_file_synced(from: &Path, to: &Path) -> Result<u64, String> {
    let meta = fs::metadata(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut src = fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut dst = fs::File::create_new(to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        bytes += n as u64;
    }
    let _ = dst.set_modified(meta.modified().unwrap_or_else(|_| SystemTime::now()));
    dst.sync_all().map_err(|e| format!("cannot sync {}: {e}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
    let (want, got) = (files::sha256(from)?, files::sha256(to)?);
    if want != got {
        return Err(format!("checksum mismatch after copying {} to {}", from.display(), to.display()));
    }
    Ok(bytes)
}

/// Copies a directory's files (recursively) into a new directory `to`.
fn copy_dir_synced(from: &Path, to: &Path) -> Result<(usize, u64), String> {
    fs::create_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let (mut n, mut bytes) = (0usize, 0u64);
    let entries = fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let kind = e.file_type().map_err(|e| e.to_string())?;
        let target = to.join(e.file_name());
        if kind.is_dir() {
            let (m, b) = copy_dir_synced(&e.path(), &target)?;
            n += m;
            bytes += b;
        } else if kind.is_file() {
            bytes += copy_file_synced(&e.path(), &target)?;
            n += 1;
        } else {
            return Err(format!("{} is neither a file nor a directory; not copying it", e.path().display()));
        }
    }
    if let Ok(m) = fs::metadata(from) {
        let _ = fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777));
        let _ = std::os::unix::fs::chown(to, Some(m.uid()), Some(m.gid()));
    }
    sync_dir(to);
    Ok((n, bytes))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| format!("file copy task failed: {e}"))?
}

/// Writes `text` to `path` through a temporary file, keeping mode and owner.
fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let dir = path.parent().ok_or("the config file has no directory")?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.ripcord-tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        f.sync_all().map_err(|e| e.to_string())?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(|e| e.to_string())?;
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------- redis.conf

/// The value of the last active `name` directive in a redis.conf text.
fn directive(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?;
            (!key.starts_with('#') && key.eq_ignore_ascii_case(name))
                .then(|| words.next().unwrap_or("").trim_matches(['"', '\'']).to_ascii_lowercase())
        })
        .next_back()
}

/// `text` with every active `name` directive replaced by `name value`
/// (appended if there was none).
fn set_directive(text: &str, name: &str, value: &str) -> String {
    let mut found = false;
    let mut out = String::with_capacity(text.len() + 32);
    for l in text.lines() {
        let key = l.split_whitespace().next().unwrap_or("");
        if !key.starts_with('#') && key.eq_ignore_ascii_case(name) {
            found = true;
            out.push_str(&format!("{name} {value}"));
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("{name} {value}\n"));
    }
    out
}

// ---------------------------------------------------------------- check_aof

/// The manifest in an AOF directory: the only `*.manifest`, or
/// `appendonly.aof.manifest` among several.
fn find_manifest(aof_dir: &Path) -> Result<Option<PathBuf>, String> {
    let mut found: Vec<PathBuf> = fs::read_dir(aof_dir)
        .map_err(|e| format!("cannot list {}: {e}", aof_dir.display()))?
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
                return Err(format!(
                    "several manifests in {}: {}; which one is live?",
                    aof_dir.display(),
                    names.join(", ")
                ));
            }
        },
    })
}

fn manifest_missing(inst: &Redis, aof_dir: &Path, state: &str) -> String {
    format!(
        "the AOF directory {} has no manifest: Redis would start EMPTY from it without an error; {state}. \
         Do not start Redis on it: restore an RDB backup with the redis-rdb runbook (redis.restore_rdb on {}) \
         or rebuild the manifest by hand",
        aof_dir.display(),
        inst.name
    )
}

/// What `redis-check-aof --fix` is given.
enum AofTarget {
    /// Redis 7: the manifest in the AOF directory.
    Manifest { dir: PathBuf, manifest: PathBuf },
    /// An old-style single `appendonly.aof` in the data dir.
    Single(PathBuf),
}

fn aof_target(inst: &Redis, state: &str) -> Result<AofTarget, String> {
    let dir = inst.aof_path();
    if dir.is_dir() {
        return match find_manifest(&dir)? {
            Some(manifest) => Ok(AofTarget::Manifest { dir, manifest }),
            None => Err(manifest_missing(inst, &dir, state)),
        };
    }
    let single = inst.data_dir.join(OLD_STYLE_AOF);
    if single.is_file() {
        return Ok(AofTarget::Single(single));
    }
    Err(format!(
        "no AOF found for {}: neither {} nor {} exists; {state}. If the AOF and the RDB are lost, restore an RDB \
         backup with the redis-rdb runbook",
        inst.name,
        dir.display(),
        single.display()
    ))
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

async fn check_aof(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    let svc = ctx.allow.service(&inst.service).map_err(|e| e.to_string())?;
    if !inst.backup_dir.is_dir() {
        return Err(format!(
            "the backup directory {} does not exist: the AOF must be copied there before it is repaired",
            inst.backup_dir.display()
        ));
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
    let copied = {
        let (backup_dir, name) = (inst.backup_dir.clone(), inst.name.clone());
        let from = match &target {
            AofTarget::Manifest { dir, .. } => dir.clone(),
            AofTarget::Single(f) => f.clone(),
        };
        blocking(move || {
            let dest = new_backup_dir(&backup_dir, &format!("aof-{name}"))?;
            let r = if from.is_dir() {
                fs::remove_dir(&dest).map_err(|e| e.to_string())?;
                copy_dir_synced(&from, &dest)
            } else {
                copy_file_synced(&from, &dest.join(from.file_name().unwrap_or_default())).map(|b| (1, b))
            };
            sync_dir(&backup_dir);
            r.map(|(n, b)| (dest, n, b))
        })
        .await
    };
    let (backup, n, bytes) = match copied {
        Ok(c) => c,
        Err(e) => {
            let mut msg = format!("copying the AOF aside failed, so it was not repaired: {e}");
            if keys_before.is_some() {
                // It was serving before; nothing was changed, so it may serve again.
                match service::start(ctx, svc).await {
                    Ok(()) => msg.push_str(&format!("; {} was started again unchanged", svc.name)),
                    Err(se) => msg.push_str(&format!("; starting {} again failed too: {se}", svc.name)),
                }
            } else {
                msg.push_str(&format!("; {} is stopped", svc.name));
            }
            return Err(msg);
        }
    };
    ctx.out.line(&format!("copied the AOF ({n} files, {bytes} bytes) to {}", backup.display()));

    let checked = match &target {
        AofTarget::Manifest { manifest, .. } => manifest.clone(),
        AofTarget::Single(f) => f.clone(),
    };
    let checked_s = checked.to_string_lossy().into_owned();
    let done = run(&["redis-check-aof", "--fix", &checked_s], Some("y\n"), ctx.out, TOOL_TIMEOUT).await?;
    let report = format!("{}\n{}", done.stdout, done.stderr);
    let discarded = bytes_discarded(&report);
    if !done.ok() {
        let base_bad = report.contains("RDB preamble of AOF file is not sane")
            || report.contains("RDB ERROR DETECTED")
            || report.contains("Internal error in RDB");
        return Err(if base_bad {
            format!(
                "the base RDB of the AOF is damaged and redis-check-aof cannot repair it (exit {:?}: {}). \
                 The base is unrecoverable: {} was NOT started. Run the redis-rdb runbook to restore an RDB backup \
                 (redis.restore_rdb); the damaged AOF is kept at {}",
                done.code,
                done.tail(),
                svc.name,
                backup.display()
            )
        } else {
            format!(
                "redis-check-aof --fix {checked_s} did not repair the AOF (exit {:?}: {}); {} was NOT started. \
                 Look at the output above; if it cannot be repaired, run the redis-rdb runbook to restore an RDB \
                 backup; the AOF as it was is kept at {}",
                done.code,
                done.tail(),
                svc.name,
                backup.display()
            )
        });
    }
    if discarded > 0 {
        ctx.out.line(&format!(
            "redis-check-aof discarded {discarded} bytes (everything after the damage); the AOF as it was is kept at {}",
            backup.display()
        ));
    } else {
        ctx.out.line("the AOF was valid: nothing discarded");
    }

    service::start(ctx, svc).await.map_err(|e| {
        format!(
            "the AOF was repaired ({discarded} bytes discarded) but {} did not come up: {e}; the AOF as it was is \
             kept at {}; see the Redis log",
            svc.name,
            backup.display()
        )
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
    o.insert("checked".into(), Value::String(checked_s));
    o.insert("aof_bytes".into(), Value::from(bytes));
    Ok(o)
}

// ---------------------------------------------------------------- restore_rdb

/// The backup to restore: `backup` (a file name in backup_dir, or a path
/// inside it) or the newest `*.rdb` there. Canonical, inside backup_dir.
fn pick_backup(inst: &Redis, backup: Option<&str>) -> Result<PathBuf, String> {
    let root = inst
        .backup_dir
        .canonicalize()
        .map_err(|e| format!("the backup directory {}: {e}", inst.backup_dir.display()))?;
    let candidate = match backup.map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => {
            let p = Path::new(b);
            if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(Refused(format!("{b}: \"..\" is not allowed in paths")).to_string());
            }
            if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
        }
        None => {
            files::newest_in(&root, "*.rdb")?
                .ok_or_else(|| format!("no *.rdb backup in {}; nothing was changed", root.display()))?
                .0
        }
    };
    let c = candidate.canonicalize().map_err(|e| format!("backup {}: {e}", candidate.display()))?;
    if !c.starts_with(&root) {
        return Err(Refused(format!(
            "{} is outside the backup directory {} of {}",
            candidate.display(),
            root.display(),
            inst.name
        ))
        .to_string());
    }
    if !c.is_file() {
        return Err(format!("backup {} is not a regular file", c.display()));
    }
    Ok(c)
}

/// `user[:group]`, names or numbers, to uid and gid.
fn resolve_owner(spec: &str) -> Result<(u32, u32), String> {
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
        Err(_) => lookup("/etc/passwd", user, 2).ok_or_else(|| format!("owner: no user \"{user}\" on this host"))?,
    };
    let gid = match group.filter(|g| !g.is_empty()) {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("/etc/group", g, 2).map(|(id, _)| id).ok_or_else(|| format!("owner: no group \"{g}\""))?,
        },
        None => primary.ok_or_else(|| format!("owner \"{spec}\": give the group as user:group"))?,
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
async fn total_keys(c: &mut Conn) -> Result<u64, String> {
    let fields = info_fields(c, &["keyspace"]).await?;
    Ok(fields
        .iter()
        .filter(|(k, _)| k.starts_with("db"))
        .filter_map(|(_, v)| v.split(',').find_map(|p| p.strip_prefix("keys=")).and_then(|n| n.parse::<u64>().ok()))
        .sum())
}

/// Stops a Redis that started without the restored data, first turning off
/// its save points so that the shutdown does not overwrite the restored file.
async fn stop_without_saving(inst: &Redis, ctx: &Ctx<'_>, svc: &crate::policy::Service) -> String {
    if let Ok(mut c) = Conn::open(inst).await {
        let _ = c.call(&["CONFIG", "SET", "save", ""]).await;
    }
    match service::stop(ctx, svc).await {
        Ok(()) => format!("{} was stopped (save points off, so {} was not overwritten)", svc.name, inst.rdb_file),
        Err(e) => format!("stopping {} failed: {e}", svc.name),
    }
}

async fn restore_rdb(inst: &Redis, backup: Option<&str>, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    let svc = ctx.allow.service(&inst.service).map_err(|e| e.to_string())?;
    let file = pick_backup(inst, backup)?;
    let age = fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs());
    ctx.out.line(&format!("restoring {} ({age} s old) into {}", file.display(), inst.rdb_path().display()));
    let owner = inst.owner.as_deref().map(resolve_owner).transpose()?;

    // Redis must start with appendonly no; the agent controls it through the config file.
    let conf_path = inst.config_file.clone().ok_or_else(|| {
        format!(
            "redis instance {} has no config_file in the agent's allowlist: the restore must start Redis with \
             appendonly no (with appendonly yes and no AOF, Redis ignores {} and starts EMPTY), which the agent \
             does through the config file; set config_file for this instance. Nothing was changed",
            inst.name, inst.rdb_file
        )
    })?;
    let conf_text = fs::read_to_string(&conf_path)
        .map_err(|e| format!("cannot read the config file {}: {e}; nothing was changed", conf_path.display()))?;
    if let Some(i) = svc.argv.iter().position(|a| a.eq_ignore_ascii_case("--appendonly"))
        && svc.argv.get(i + 1).is_some_and(|v| v.eq_ignore_ascii_case("yes"))
    {
        return Err(format!(
            "service {} is started with --appendonly yes on its command line, which overrides the config file: \
             Redis would ignore the restored {} and start EMPTY. Remove it from argv (appendonly belongs in {}); \
             nothing was changed",
            svc.name,
            inst.rdb_file,
            conf_path.display()
        ));
    }
    let aof_wanted = directive(&conf_text, "appendonly").as_deref() == Some("yes");

    // The backup must be a valid RDB with keys.
    let file_s = file.to_string_lossy().into_owned();
    let checked = run(&["redis-check-rdb", &file_s], None, ctx.out, TOOL_TIMEOUT).await?;
    if !checked.ok() {
        return Err(format!(
            "redis-check-rdb says the backup {file_s} is damaged (exit {:?}: {}); nothing was changed: pick another \
             backup",
            checked.code,
            checked.tail()
        ));
    }
    let (read, expired) = rdb_counts(&format!("{}\n{}", checked.stdout, checked.stderr));
    if let Some(r) = read
        && r <= expired
    {
        return Err(format!(
            "the backup {file_s} holds no live keys ({r} read, {expired} expired); restoring it would leave Redis \
             empty; nothing was changed: pick another backup"
        ));
    }

    // If it runs, it must be using the files this restore writes.
    if let Ok(mut c) = Conn::open(inst).await {
        let dir = config_get(&mut c, "dir").await.ok().flatten();
        let dbfilename = config_get(&mut c, "dbfilename").await.ok().flatten();
        if let (Some(dir), Some(name)) = (dir, dbfilename) {
            let live = Path::new(&dir).join(&name);
            let canonical = |d: &Path| d.canonicalize().unwrap_or_else(|_| d.to_path_buf());
            if canonical(Path::new(&dir)) != canonical(&inst.data_dir) || name != inst.rdb_file {
                return Err(format!(
                    "the running {} loads {} but the agent's config says {}: fix data_dir/rdb_file in the allowlist; \
                     nothing was changed",
                    inst.name,
                    live.display(),
                    inst.rdb_path().display()
                ));
            }
        }
    }

    service::stop(ctx, svc).await?;

    // Back up what is in the data dir (and the config) before anything is replaced.
    let (rdb, aof_dir, single) = (inst.rdb_path(), inst.aof_path(), inst.data_dir.join(OLD_STYLE_AOF));
    let before = {
        let (backup_dir, name, conf) = (inst.backup_dir.clone(), inst.name.clone(), conf_path.clone());
        let (rdb, aof_dir, single) = (rdb.clone(), aof_dir.clone(), single.clone());
        blocking(move || {
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
        .await
    };
    let (before, copied) =
        before.map_err(|e| format!("backing up the data dir failed: {e}; {} is stopped", svc.name))?;
    if copied.is_empty() {
        ctx.out.line(&format!("nothing in {} to keep; made {}", inst.data_dir.display(), before.display()));
    } else {
        ctx.out.line(&format!("kept {} in {}", copied.join(", "), before.display()));
    }
    let stopped =
        |what: String| format!("{what}; {} is stopped; what was there is kept in {}", svc.name, before.display());

    // A stale AOF must not be loaded (and appendonly no ignores it anyway).
    if aof_dir.is_dir() {
        fs::remove_dir_all(&aof_dir).map_err(|e| stopped(format!("cannot remove {}: {e}", aof_dir.display())))?;
    }
    if single.is_file() {
        fs::remove_file(&single).map_err(|e| stopped(format!("cannot remove {}: {e}", single.display())))?;
    }
    sync_dir(&inst.data_dir);

    let (from, to) = (file.clone(), rdb.clone());
    let (sha, bytes, kept) = blocking(move || files::copy_verified(&from, &to, owner)).await.map_err(&stopped)?;
    if let Some(k) = kept {
        // Its copy is in the before-restore directory.
        let _ = fs::remove_file(k);
    }
    ctx.out.line(&format!("copied {file_s} to {} ({bytes} bytes, sha256 {sha})", rdb.display()));

    if aof_wanted {
        write_atomic(&conf_path, &set_directive(&conf_text, "appendonly", "no"))
            .map_err(|e| stopped(format!("cannot set appendonly no in {}: {e}", conf_path.display())))?;
        ctx.out.line(&format!("set appendonly no in {} for the start", conf_path.display()));
    }
    let left_off = if aof_wanted {
        format!(
            "; {} says appendonly no for now: once Redis has the data, CONFIG SET appendonly yes, wait for the AOF \
             rewrite, then set appendonly yes in it",
            conf_path.display()
        )
    } else {
        String::new()
    };
    service::start(ctx, svc).await.map_err(|e| {
        format!("{} did not come up with the restored {}: {e}{left_off}; see the Redis log", svc.name, inst.rdb_file)
    })?;

    let mut c = connect(inst).await?;
    let persistence = info_fields(&mut c, &["persistence"]).await?;
    if field(&persistence, "aof_enabled") == Some("1") {
        let stop = stop_without_saving(inst, ctx, svc).await;
        return Err(format!(
            "Redis started with appendonly yes although {} says no (an include file or a command-line option?): it \
             ignored the restored {} and started empty; {stop}; find what turns appendonly on, then restore again",
            conf_path.display(),
            inst.rdb_file
        ));
    }
    let loaded = total_keys(&mut c).await?;
    if loaded == 0 {
        let stop = stop_without_saving(inst, ctx, svc).await;
        return Err(format!(
            "the backup loaded nothing: Redis has 0 keys after the restore (redis-check-rdb read {}); {stop}; check \
             that data_dir and rdb_file match the server's dir and dbfilename{left_off}",
            read.map_or("?".into(), |r| r.to_string())
        ));
    }
    ctx.out.line(&format!("{}: {loaded} keys loaded from the backup", inst.name));
    if let Some(r) = read
        && loaded < r.saturating_sub(expired)
    {
        ctx.out.line(&format!("note: redis-check-rdb read {r} keys ({expired} already expired); {loaded} are loaded"));
    }

    if aof_wanted {
        if let Reply::ServerError(e) = c.call(&["CONFIG", "SET", "appendonly", "yes"]).await? {
            let e = said(&e);
            return Err(format!("Redis has the data but CONFIG SET appendonly yes failed: {e}{left_off}"));
        }
        ctx.out.line("CONFIG SET appendonly yes: waiting for the AOF rewrite");
        let deadline = Instant::now() + REWRITE_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let p = info_fields(&mut c, &["persistence"]).await?;
            if field(&p, "aof_last_bgrewrite_status") == Some("err") {
                return Err(format!("the AOF rewrite failed (aof_last_bgrewrite_status:err){left_off}"));
            }
            if field(&p, "aof_enabled") == Some("1")
                && field(&p, "aof_rewrite_in_progress") == Some("0")
                && field(&p, "aof_rewrite_scheduled") == Some("0")
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("the AOF rewrite did not finish within {REWRITE_TIMEOUT:?}{left_off}"));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
        if find_manifest(&aof_dir).ok().flatten().is_none() {
            return Err(format!("the AOF rewrite finished but {} has no manifest{left_off}", aof_dir.display()));
        }
        // Persist: the config file as it was (appendonly yes).
        write_atomic(&conf_path, &conf_text)
            .map_err(|e| format!("cannot write appendonly yes back to {}: {e}{left_off}", conf_path.display()))?;
        let now = fs::read_to_string(&conf_path).unwrap_or_default();
        if directive(&now, "appendonly").as_deref() != Some("yes") {
            return Err(format!("{} does not say appendonly yes after writing it back{left_off}", conf_path.display()));
        }
        ctx.out.line(&format!("AOF rewritten; appendonly yes persisted in {}", conf_path.display()));
    }

    let keys = dbsize_of(&mut c).await?;
    let mut o = Outputs::new();
    o.insert("backup".into(), Value::String(file_s));
    o.insert("backup_age_seconds".into(), Value::from(age));
    o.insert("keys".into(), Value::from(keys));
    o.insert("before_restore".into(), Value::String(before.display().to_string()));
    o.insert("appendonly".into(), Value::String(if aof_wanted { "yes" } else { "no" }.into()));
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::redis_testkit::{TestRedis, file_names, names};
    use serde_json::json;

    fn err_of(r: Result<Outputs, String>) -> String {
        match r {
            Ok(o) => panic!("expected an error, got {o:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parsing_helpers() {
        let info =
            "# Memory\r\nused_memory:1024\r\nused_memory_human:1.00K\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0\r\n";
        let f = parse_info(info);
        assert_eq!(field(&f, "used_memory"), Some("1024"));
        assert_eq!(field(&f, "db0"), Some("keys=3,expires=0"));
        assert_eq!(f.len(), 3);
        assert_eq!(info_value("1024"), json!(1024));
        assert_eq!(info_value("-3"), json!(-3));
        assert_eq!(info_value("0.75"), json!(0.75));
        for s in ["1.00K", "7.0.15", "1e5", "", "-", "3.", "noeviction"] {
            assert_eq!(info_value(s), json!(s), "{s}");
        }
        let report = "AOF analyzed: filename=a.base.rdb, size=526, ok_up_to=526, ok_up_to_line=1, diff=0\n\
                      AOF analyzed: filename=a.incr.aof, size=1603, ok_up_to=1575, ok_up_to_line=362, diff=28\n";
        assert_eq!(bytes_discarded(report), 28);
        assert_eq!(bytes_discarded("All AOF files and manifest are valid\n"), 0);
        let conf = "# appendonly yes\nport 1\nAPPENDONLY \"yes\"\nappendfsync always\n";
        assert_eq!(directive(conf, "appendonly").as_deref(), Some("yes"));
        let off = set_directive(conf, "appendonly", "no");
        assert_eq!(off, "# appendonly yes\nport 1\nappendonly no\nappendfsync always\n");
        assert_eq!(set_directive("port 1", "appendonly", "no"), "port 1\nappendonly no\n");
        assert_eq!(directive("port 1\n", "appendonly"), None);
        assert_eq!(rdb_counts("[info] 40 keys read\n[info] 0 expires\n[info] 2 already expired\n"), (Some(40), 2));
        assert_eq!(resolve_owner("0:0").unwrap(), (0, 0));
        assert_eq!(resolve_owner("root").unwrap(), (0, 0));
        assert_eq!(resolve_owner("root:root").unwrap(), (0, 0));
        assert!(resolve_owner("no-such-user-here").unwrap_err().contains("no user"));
    }

    #[tokio::test]
    async fn ping_dbsize_info_config_set_and_delete_by_pattern() {
        let r = TestRedis::start("max_delete = 20").await;
        r.write_keys("temp", 0..30).await;
        r.write_keys("keep", 0..10).await;

        let o = r.act("redis.ping", json!({})).await.unwrap();
        assert_eq!(o["pong"], true);
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 40);

        let mem = r.act("redis.info", json!({"section": "memory"})).await.unwrap();
        assert!(mem["used_memory"].as_u64().unwrap() > 0, "{mem:?}");
        assert!(mem["used_memory_human"].is_string());
        assert_eq!(mem["maxmemory"], 0);
        assert_eq!(mem["maxmemory_policy"], "noeviction");
        assert!(mem["instantaneous_ops_per_sec"].is_u64(), "filled from INFO stats: {mem:?}");
        assert_eq!(mem["fields"]["used_memory"], mem["used_memory"]);
        assert!(mem["fields"].get("total_commands_processed").is_none(), "fields are the asked section's");
        let stats = r.act("redis.info", json!({"section": "stats"})).await.unwrap();
        assert!(stats["fields"]["total_commands_processed"].as_u64().unwrap() > 0);
        assert!(stats["used_memory"].as_u64().unwrap() > 0, "filled from INFO memory");
        let all = r.act("redis.info", json!({})).await.unwrap();
        assert_eq!(all["fields"]["redis_version"], "7.0.15");
        assert_eq!(all["fields"]["db0"], "keys=40,expires=0,avg_ttl=0");
        assert!(err_of(r.act("redis.info", json!({"section": "memory\r\nFLUSHALL"})).await).contains("not an INFO"));

        // config_set: only the allowlisted parameters.
        let e = err_of(r.act("redis.config_set", json!({"parameter": "dir", "value": "/tmp"})).await);
        assert!(
            e.contains("refused by the agent's allowlist") && e.contains("allowed: maxmemory, maxmemory-policy"),
            "{e}"
        );
        let dir = r.cmd(&["CONFIG", "GET", "dir"]).await;
        assert_eq!(
            dir,
            Reply::Array(vec![
                Reply::BulkString(b"dir".to_vec()),
                Reply::BulkString(r.data.display().to_string().into_bytes())
            ])
        );
        let o = r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "100mb"})).await.unwrap();
        assert_eq!(
            (o["previous"].as_str(), o["value"].as_str(), o["persisted"].as_bool()),
            (Some("0"), Some("104857600"), Some(false))
        );
        assert!(!fs::read_to_string(&r.conf).unwrap().contains("maxmemory"), "not persisted");
        let o = r
            .act("redis.config_set", json!({"parameter": "maxmemory-policy", "value": "allkeys-lru", "persist": true}))
            .await
            .unwrap();
        assert_eq!(o["previous"], "noeviction");
        let conf = fs::read_to_string(&r.conf).unwrap();
        assert!(conf.lines().any(|l| l == "maxmemory-policy allkeys-lru"), "{conf}");
        let e = err_of(r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "lots"})).await);
        assert!(e.contains("redis refused CONFIG SET maxmemory lots") && e.contains("still 104857600"), "{e}");
        r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "0"})).await.unwrap();

        // delete_pattern: a dry run counts only.
        let o = r
            .act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 100, "dry_run": true}))
            .await
            .unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(30), Some(0)));
        assert_eq!(r.keys("temp:*").await.len(), 30);
        // Over max_keys, or over the agent's max_delete: refused, with the count.
        let e = err_of(r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 10})).await);
        assert!(
            e.contains("30 keys match temp:*") && e.contains("max_keys 10") && e.contains("nothing was deleted"),
            "{e}"
        );
        let e = err_of(r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": "1000"})).await);
        assert!(e.contains("30 keys match") && e.contains("at most 20"), "{e}");
        assert_eq!(r.keys("temp:*").await.len(), 30, "nothing deleted by the refusals");
        // A real delete, several SCAN rounds (COUNT 3): only the matching keys go.
        let o = r.act("redis.delete_pattern", json!({"pattern": "temp:1*", "max_keys": 20, "count": 3})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(11), Some(11)));
        let left: Vec<String> = names("temp", 0..30).into_iter().filter(|k| !k.starts_with("temp:1")).collect();
        assert_eq!(r.keys("temp:*").await, left);
        let o = r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 20})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(19), Some(19)));
        assert!(r.keys("temp:*").await.is_empty());
        assert_eq!(r.keys("*").await, names("keep", 0..10), "the other keys are all there");
        assert!(!r.out.text().contains("KEYS"), "never KEYS");
    }

    #[tokio::test]
    async fn delete_pattern_deletes_keys_whose_names_are_not_utf8() {
        let r = TestRedis::start("").await;
        let mut c = Conn::open(r.inst()).await.unwrap_or_else(|_| panic!("connect"));
        for key in [&b"bin:\xff\xfe"[..], b"bin:plain"] {
            let set = c.send("SET", ::redis::cmd("SET").arg(key).arg("v")).await.unwrap();
            assert_eq!(set, Reply::Okay);
        }
        let o = r.act("redis.delete_pattern", json!({"pattern": "bin:*", "max_keys": 10})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(2), Some(2)));
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 0);
    }

    #[tokio::test]
    async fn the_password_file_is_used_and_a_refusal_never_shows_a_password() {
        const RIGHT: &str = "pw-right-5f2c9e";
        const WRONG: &str = "pw-wrong-81d0a4";
        let r = TestRedis::with_password(RIGHT);
        r.up().await; // waits for PING, with the password
        r.write_keys("k", 0..3).await;
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 3);

        let file = r.inst().password_file.clone().unwrap();
        fs::write(&file, format!("{WRONG}\n")).unwrap();
        let e = err_of(r.act("redis.ping", json!({})).await);
        assert!(
            e.contains("redis instance cache refused the password in") && e.contains(&file.display().to_string()),
            "{e}"
        );
        assert!(!pings(r.inst()).await);

        // Without a password Redis says it wants one.
        let mut inst = r.inst().clone();
        inst.password_file = None;
        let e2 = err_of(perform("redis.ping", &inst, &json!({}), &r.ctx()).await);
        assert!(e2.contains("NOAUTH"), "{e2}");

        let out = r.out.text();
        for shown in [&e, &e2, &out] {
            assert!(!shown.contains(RIGHT) && !shown.contains(WRONG), "a password is shown: {shown}");
        }
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
