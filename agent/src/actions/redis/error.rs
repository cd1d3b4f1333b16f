//! What can go wrong in a Redis action. The text of each variant is the
//! outcome the coordinator shows; none holds a password.

use super::conn::Unreachable;
use super::{aof, rdb};
use crate::actions::{args, files, process, service};
use crate::policy::Refused;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Argument(#[from] args::Error),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0} is not a redis action")]
    NotRedis(String),

    // Connecting and commands.
    /// The instance refused the password in its password file.
    #[error("redis instance {instance} refused the password in {}; check its password_file", shown(.file))]
    Password { instance: String, file: Option<PathBuf> },
    #[error("redis instance {instance} does not answer: {reason}; check that its service ({service}) is running")]
    Unreachable { instance: String, service: String, reason: Unreachable },
    #[error("redis did not answer {command} in time")]
    Timeout { command: String },
    /// The connection failed while sending or reading a command.
    #[error("redis {command}: {source}")]
    Command { command: String, source: ::redis::RedisError },
    /// Redis answered with an error reply (`ERR …`), as it wrote it.
    #[error("redis {command}: {said}")]
    ErrorReply { command: String, said: String },
    /// A reply of another shape than the command has.
    #[error("redis {command} answered {reply}")]
    Unexpected { command: String, reply: String },

    // Reading.
    #[error("redis instance {instance} answered PING with an error: {said}")]
    PingError { instance: String, said: String },
    #[error("redis instance {instance} answered PING with {reply}, not PONG")]
    NotPong { instance: String, reply: String },
    #[error("section \"{0}\" is not an INFO section name (e.g. memory, stats, persistence)")]
    InfoSection(String),
    #[error("redis INFO {0} returned no fields: is it a section name?")]
    InfoEmpty(String),

    // config_set.
    #[error("redis does not know the parameter \"{0}\"")]
    UnknownParameter(String),
    #[error("redis refused CONFIG SET {parameter} {value}: {said}; {parameter} is still {previous}")]
    ConfigSet { parameter: String, value: String, said: String, previous: String },
    #[error(
        "{parameter} is now {now} (was {previous}) but CONFIG REWRITE failed: {said}; the change is lost at the next \
         restart unless it is written to the config file"
    )]
    ConfigRewrite { parameter: String, now: String, previous: String, said: String },

    // delete_pattern.
    #[error("pattern is empty")]
    EmptyPattern,
    #[error("count must be at least 1")]
    ZeroCount,
    #[error(
        "{matched} keys match {pattern} on {instance}, more than the limit of {limit} ({why}); nothing was deleted: \
         narrow the pattern or raise max_keys"
    )]
    TooMany { matched: u64, pattern: String, instance: String, limit: u64, why: Limit },
    #[error("redis UNLINK: {said} after {deleted} keys were deleted")]
    Unlink { said: String, deleted: u64 },
    #[error("redis UNLINK answered {reply} after {deleted} keys were deleted")]
    UnlinkReply { reply: String, deleted: u64 },

    // Files.
    #[error(transparent)]
    File(#[from] files::Error),
    /// `doing` is what failed: "read", "write", "create", "list", "sync", "remove", "replace".
    #[error("cannot {doing} {}: {source}", path.display())]
    Io { doing: &'static str, path: PathBuf, source: io::Error },
    /// An I/O error whose path the surrounding message names.
    #[error("{0}")]
    Os(io::Error),
    #[error("the backup directory {} does not exist; create it first", .0.display())]
    NoBackupDir(PathBuf),
    #[error("cannot create a backup directory in {}", .0.display())]
    BackupNames(PathBuf),
    #[error("checksum mismatch after copying {} to {}", from.display(), to.display())]
    Checksum { from: PathBuf, to: PathBuf },
    #[error("{} is neither a file nor a directory; not copying it", .0.display())]
    Special(PathBuf),
    #[error("file copy task failed: {0}")]
    Task(tokio::task::JoinError),
    #[error("the config file has no directory")]
    ConfigNoDirectory,

    // Services and tools.
    #[error(transparent)]
    Service(#[from] service::Error),
    #[error(transparent)]
    Process(#[from] process::Error),

    // The two destructive actions.
    #[error(transparent)]
    Aof(Box<aof::Error>),
    #[error(transparent)]
    Restore(Box<rdb::Error>),
}

impl From<aof::Error> for Error {
    fn from(e: aof::Error) -> Self {
        Error::Aof(Box::new(e))
    }
}

impl From<rdb::Error> for Error {
    fn from(e: rdb::Error) -> Self {
        Error::Restore(Box::new(e))
    }
}

/// Why `delete_pattern` stops at its limit.
#[derive(Debug)]
pub enum Limit {
    /// The step's `max_keys`.
    MaxKeys(u64),
    /// The agent's `max_delete` for the instance.
    Agent(u64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::MaxKeys(n) => write!(f, "max_keys {n}"),
            Limit::Agent(n) => write!(f, "this agent allows at most {n} per step"),
        }
    }
}

/// A password file's path, for messages.
pub(super) fn shown(file: &Option<PathBuf>) -> String {
    file.as_deref().map_or("(none)".into(), |p| p.display().to_string())
}

/// Shorthand for [`Error::Io`].
pub(super) fn io<'a>(doing: &'static str, path: &'a std::path::Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { doing, path: path.to_path_buf(), source }
}

impl Error {
    /// [`Error::Unexpected`]: `command` answered `reply`.
    pub(super) fn unexpected(command: impl Into<String>, reply: impl ToString) -> Self {
        Error::Unexpected { command: command.into(), reply: reply.to_string() }
    }
}
