//! Turns a command from the coordinator into its result. Only commands the
//! allowlist permits are performed; everything else is answered with an
//! error that names what was refused.

use crate::connection::VERSION;
use crate::policy::Allowlist;
use ripcord_proto::v1::{Command, CommandError, CommandResult, Pong, command, command_result};

pub async fn command(_allow: &Allowlist, cmd: Command) -> CommandResult {
    let outcome = match cmd.kind {
        Some(command::Kind::Ping(_)) => command_result::Outcome::Pong(Pong { agent_version: VERSION.to_string() }),
        None => command_result::Outcome::Error(CommandError { message: "empty command".into() }),
    };
    CommandResult { command_id: cmd.command_id, outcome: Some(outcome) }
}
