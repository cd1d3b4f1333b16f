//! Redis actions: `redis.ping`, `redis.dbsize`, `redis.info`,
//! `redis.config_set`, `redis.delete_pattern`, `redis.check_aof`,
//! `redis.restore_rdb` and `redis.readiness`, on an instance the allowlist
//! names.
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
//!
//! - `conn`: connecting (AUTH with the password file), commands with timeouts.
//! - `read`: `ping`, `dbsize`, `info`.
//! - `config`: `config_set` and persisting it; the redis.conf file.
//! - `keys`: `delete_pattern`.
//! - `error`: what can go wrong, one [`Error`] for the module (with
//!   [`aof::Error`] and [`rdb::Error`] for the two destructive actions).
//! - `backup`: the copies made before anything is repaired or replaced.
//! - `aof`: `check_aof`.
//! - `rdb`: `restore_rdb`.
//! - `manifest`: the Redis 7 AOF manifest, read as Redis reads it.
//! - `readiness`: `readiness`, what the two runbooks would find, read only.

pub mod aof;
mod backup;
mod config;
mod conn;
mod error;
mod keys;
mod manifest;
pub mod rdb;
mod read;
mod readiness;
#[cfg(test)]
pub mod testkit;

use super::{Ctx, Outputs, arg_bool, arg_opt_str, arg_str, arg_u64, args};
use crate::policy::Redis;
pub use conn::{Unreachable, pings};
pub use error::{Error, Limit};
use serde_json::Value;
use std::time::Duration;

/// How long `redis-check-aof` / `redis-check-rdb` may run (large files).
const TOOL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub async fn perform(action: &str, inst: &Redis, args: &Value, ctx: &Ctx<'_>) -> Result<Outputs, Error> {
    match action {
        "redis.ping" => read::ping(inst, ctx).await,
        "redis.dbsize" => read::dbsize(inst, ctx).await,
        "redis.info" => read::info(inst, arg_opt_str(args, "section"), ctx).await,
        "redis.config_set" => {
            let persist = arg_bool(args, "persist")?.unwrap_or(false);
            config::set(inst, arg_str(args, "parameter")?, arg_str(args, "value")?, persist, ctx).await
        }
        "redis.delete_pattern" => {
            let max_keys = arg_u64(args, "max_keys")?.ok_or_else(|| args::Error::Missing("max_keys".into()))?;
            let dry_run = arg_bool(args, "dry_run")?.unwrap_or(false);
            let count = arg_u64(args, "count")?.unwrap_or(1000);
            keys::delete_pattern(inst, arg_str(args, "pattern")?, max_keys, dry_run, count, ctx).await
        }
        "redis.check_aof" => aof::check(inst, ctx).await,
        "redis.restore_rdb" => rdb::restore(inst, arg_opt_str(args, "backup"), ctx).await,
        "redis.readiness" => {
            let pattern = arg_opt_str(args, "backup_pattern").unwrap_or(readiness::DEFAULT_BACKUP_PATTERN);
            readiness::readiness(inst, arg_opt_str(args, "backup_dir"), pattern, ctx).await
        }
        other => Err(Error::NotRedis(other.to_string())),
    }
}
