//! The agent's actions. Each takes its arguments as JSON, checks every
//! resource against the allowlist before touching anything, and answers
//! with JSON outputs or an error message (a failed action is an outcome,
//! not a crash). Long output streams to the coordinator while it runs.
//!
//! Processes are run from fixed argv built here — never a shell string.

pub mod args;
pub mod files;
pub mod output;
pub mod process;
pub mod redis;
pub mod service;

use crate::policy::{Allowlist, Refused};
pub use args::{arg_bool, arg_opt_str, arg_str, arg_u64};
pub use output::Output;
use serde_json::{Map, Value};

/// What an action returns: its outputs (a JSON object).
pub type Outputs = Map<String, Value>;

/// Why an action failed. Its text is the outcome the coordinator sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Argument(#[from] args::Error),
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("action {0} is not performed by agents")]
    NotOnAgents(String),
    #[error(transparent)]
    Service(#[from] service::Error),
    #[error(transparent)]
    Redis(#[from] redis::Error),
    #[error(transparent)]
    File(#[from] files::Error),
}

/// Everything an action may use.
pub struct Ctx<'a> {
    pub allow: &'a Allowlist,
    pub out: &'a Output,
}

/// The implementations, by kind. [`handler`] is the agent's side of the
/// action registry (`ripcord_engine::registry`): a table test proves it
/// names every action the registry says agents run, and no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Service,
    Compose,
    Redis,
    FileCopy,
    FileNewest,
}

fn handler(action: &str) -> Option<Handler> {
    Some(match action {
        "service.stop" | "service.start" | "service.restart" | "service.status" => Handler::Service,
        "compose.restart" | "compose.stop" | "compose.start" | "compose.logs" => Handler::Compose,
        "redis.ping"
        | "redis.dbsize"
        | "redis.info"
        | "redis.config_set"
        | "redis.delete_pattern"
        | "redis.check_aof"
        | "redis.restore_rdb"
        | "redis.readiness" => Handler::Redis,
        "file.copy" => Handler::FileCopy,
        "file.newest" => Handler::FileNewest,
        _ => return None,
    })
}

/// Performs `action`. The allowlist is checked first, then by each action
/// for its resources.
pub async fn perform(action: &str, args: &Value, ctx: &Ctx<'_>) -> Result<Outputs, Error> {
    ctx.allow.check_action(action)?;
    let Some(h) = handler(action) else { return Err(Error::NotOnAgents(action.to_string())) };
    Ok(match h {
        Handler::Service => {
            let svc = ctx.allow.service(arg_str(args, "service")?)?;
            let verb = action.trim_start_matches("service.");
            service::control(ctx, svc, verb).await?
        }
        Handler::Compose => {
            let svc = ctx.allow.compose(arg_str(args, "project")?, arg_str(args, "service")?)?;
            let verb = action.trim_start_matches("compose.");
            if verb == "logs" {
                let tail = arg_u64(args, "tail")?.unwrap_or(100);
                service::compose_logs(ctx, svc, tail).await?
            } else {
                service::control(ctx, svc, verb).await?
            }
        }
        Handler::Redis => {
            let inst = ctx.allow.redis(arg_str(args, "instance")?)?;
            redis::perform(action, inst, args, ctx).await?
        }
        Handler::FileCopy => files::copy(ctx, arg_str(args, "from")?, arg_str(args, "to")?).await?,
        Handler::FileNewest => files::newest(ctx, arg_str(args, "dir")?, arg_str(args, "pattern")?).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_engine::registry;

    #[test]
    fn the_agent_implements_exactly_the_actions_the_registry_gives_it() {
        for a in registry::ACTIONS {
            assert_eq!(
                handler(a.name).is_some(),
                a.on_agent(),
                "{}: the registry says it runs {:?}, the agent {} it",
                a.name,
                a.runs,
                if handler(a.name).is_some() { "implements" } else { "does not implement" }
            );
        }
    }
}
