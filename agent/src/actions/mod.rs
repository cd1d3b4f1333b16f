//! The agent's actions. Each takes its arguments as JSON, checks every
//! resource against the allowlist before touching anything, and answers
//! with JSON outputs or an error message (a failed action is an outcome,
//! not a crash). Long output streams to the coordinator while it runs.
//!
//! Processes are run from fixed argv built here — never a shell string.

pub mod files;
pub mod output;
pub mod process;
pub mod redis;
pub mod service;

use crate::policy::Allowlist;
pub use output::Output;
use serde_json::{Map, Value};

/// What an action returns: its outputs (a JSON object).
pub type Outputs = Map<String, Value>;

/// Everything an action may use.
pub struct Ctx<'a> {
    pub allow: &'a Allowlist,
    pub out: &'a Output,
}

/// A string argument.
pub fn arg_str<'a>(args: &'a Value, name: &str) -> Result<&'a str, String> {
    match args.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!("argument {name} must be a string, got {other}")),
        None => Err(format!("missing argument {name}")),
    }
}

/// An optional string argument.
pub fn arg_opt_str<'a>(args: &'a Value, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// An optional unsigned argument (numbers or numeric strings).
pub fn arg_u64(args: &Value, name: &str) -> Result<Option<u64>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().map(Some).ok_or_else(|| format!("argument {name} must be a positive integer"))
        }
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| format!("argument {name}: \"{s}\" is not a number"))
        }
        Some(other) => Err(format!("argument {name} must be a number, got {other}")),
    }
}

/// An optional boolean argument.
pub fn arg_bool(args: &Value, name: &str) -> Result<Option<bool>, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(format!("argument {name} must be true or false, got {other}")),
    }
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
        | "redis.restore_rdb" => Handler::Redis,
        "file.copy" => Handler::FileCopy,
        "file.newest" => Handler::FileNewest,
        _ => return None,
    })
}

/// Performs `action`. The allowlist is checked first, then by each action
/// for its resources.
pub async fn perform(action: &str, args: &Value, ctx: &Ctx<'_>) -> Result<Outputs, String> {
    ctx.allow.check_action(action).map_err(|e| e.to_string())?;
    let Some(h) = handler(action) else { return Err(format!("action {action} is not performed by agents")) };
    match h {
        Handler::Service => {
            let name = arg_str(args, "service")?;
            let svc = ctx.allow.service(name).map_err(|e| e.to_string())?;
            let verb = action.trim_start_matches("service.");
            service::control(ctx, svc, verb).await
        }
        Handler::Compose => {
            let svc =
                ctx.allow.compose(arg_str(args, "project")?, arg_str(args, "service")?).map_err(|e| e.to_string())?;
            let verb = action.trim_start_matches("compose.");
            if verb == "logs" {
                let tail = arg_u64(args, "tail")?.unwrap_or(100);
                service::compose_logs(ctx, svc, tail).await
            } else {
                service::control(ctx, svc, verb).await
            }
        }
        Handler::Redis => {
            let inst = ctx.allow.redis(arg_str(args, "instance")?).map_err(|e| e.to_string())?;
            redis::perform(action, inst, args, ctx).await
        }
        Handler::FileCopy => files::copy(ctx, arg_str(args, "from")?, arg_str(args, "to")?).await,
        Handler::FileNewest => files::newest(ctx, arg_str(args, "dir")?, arg_str(args, "pattern")?).await,
    }
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
