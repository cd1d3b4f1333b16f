//! Turns a command from the coordinator into its result. Actions go through
//! the journal (a repeated command id is answered, not re-run) and the
//! allowlist (everything not named is refused, and the refusal says what).

use crate::actions::{self, Ctx, Output};
use crate::connection::VERSION;
use crate::journal::{Journal, Lookup, Outcome};
use crate::policy::Allowlist;
use ripcord_proto::v1::{
    ActionCommand, ActionDone, Command, CommandError, CommandResult, Pong, command, command_result,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Handles one command; output chunks of a running action go to `live`.
pub async fn command(
    allow: &Allowlist,
    journal: &Journal,
    cmd: Command,
    live: mpsc::UnboundedSender<String>,
) -> CommandResult {
    let id = cmd.command_id;
    let outcome = match cmd.kind {
        Some(command::Kind::Ping(_)) => command_result::Outcome::Pong(Pong { agent_version: VERSION.to_string() }),
        Some(command::Kind::Action(a)) => to_proto(action(allow, journal, &id, a, live).await),
        None => command_result::Outcome::Error(CommandError { message: "empty command".into() }),
    };
    CommandResult { command_id: id, outcome: Some(outcome) }
}

fn to_proto(o: Outcome) -> command_result::Outcome {
    match o {
        Outcome::Done { outputs_json, output } => command_result::Outcome::Done(ActionDone { outputs_json, output }),
        Outcome::Failed { error, output } => {
            let message = if output.trim().is_empty() { error } else { format!("{error}\n--- output ---\n{output}") };
            command_result::Outcome::Error(CommandError { message })
        }
    }
}

async fn action(
    allow: &Allowlist,
    journal: &Journal,
    id: &str,
    a: ActionCommand,
    live: mpsc::UnboundedSender<String>,
) -> Outcome {
    // Refusals are answered without a journal entry: nothing ran.
    if let Err(e) = allow.check_action(&a.action) {
        warn!(command = %id, action = %a.action, "refused: {e}");
        return Outcome::Failed { error: e.to_string(), output: String::new() };
    }
    // Reading is safe to repeat and is not worth two fsyncs.
    if ripcord_engine::registry::get(&a.action).is_some_and(|a| a.is_read_only()) {
        return perform(allow, id, &a, live).await;
    }
    let ticket = match journal.lookup(id) {
        Ok(Lookup::Run(t)) => t,
        Ok(Lookup::Recorded(o)) => {
            info!(command = %id, "repeated command answered from the journal");
            return o;
        }
        Ok(Lookup::Running(mut rx)) => {
            info!(command = %id, "repeated command is still running; waiting for it");
            loop {
                if let Some(o) = rx.borrow().clone() {
                    return o;
                }
                if rx.changed().await.is_err() {
                    return Outcome::Failed { error: "the running command was lost".into(), output: String::new() };
                }
            }
        }
        Ok(Lookup::Interrupted) => {
            return Outcome::Failed {
                error: format!(
                    "command {id} was started by an earlier agent process that stopped before it finished; its outcome is unknown — check the host before retrying the step"
                ),
                output: String::new(),
            };
        }
        Err(e) => return Outcome::Failed { error: e.to_string(), output: String::new() },
    };
    let outcome = perform(allow, id, &a, live).await;
    if let Err(e) = journal.finish(ticket, outcome.clone()) {
        warn!(command = %id, "cannot record the outcome: {e}");
    }
    outcome
}

async fn perform(allow: &Allowlist, id: &str, a: &ActionCommand, live: mpsc::UnboundedSender<String>) -> Outcome {
    let args: serde_json::Value = match serde_json::from_str(&a.args_json) {
        Ok(v) => v,
        Err(e) => return Outcome::Failed { error: format!("bad arguments: {e}"), output: String::new() },
    };
    info!(command = %id, action = %a.action, "performing");
    let out = Output::new(Some(live));
    let ctx = Ctx { allow, out: &out };
    let work = actions::perform(&a.action, &args, &ctx);
    // The outcome holds the error's text.
    let result = if a.timeout_ms > 0 {
        match tokio::time::timeout(Duration::from_millis(a.timeout_ms), work).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{} did not finish within {}ms", a.action, a.timeout_ms)),
        }
    } else {
        work.await.map_err(|e| e.to_string())
    };
    match result {
        Ok(outputs) => {
            Outcome::Done { outputs_json: serde_json::Value::Object(outputs).to_string(), output: out.text() }
        }
        Err(error) => {
            warn!(command = %id, action = %a.action, "failed: {error}");
            Outcome::Failed { error, output: out.text() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AllowSection, Dir};

    #[tokio::test]
    async fn a_repeated_command_id_is_answered_from_the_journal_not_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir(&files).unwrap();
        std::fs::write(files.join("new.rdb"), "new").unwrap();
        std::fs::write(files.join("dump.rdb"), "old").unwrap();
        let allow = Allowlist::from_section(AllowSection {
            actions: vec!["file.copy".into()],
            paths: vec![Dir { dir: files.clone(), write: true }],
            ..Default::default()
        })
        .unwrap();
        let journal = Journal::open(&dir.path().join("state")).unwrap();
        let args = serde_json::json!({"from": files.join("new.rdb"), "to": files.join("dump.rdb")}).to_string();
        let cmd = || Command {
            command_id: "run1/copy/1@a".into(),
            kind: Some(command::Kind::Action(ActionCommand {
                action: "file.copy".into(),
                args_json: args.clone(),
                timeout_ms: 0,
            })),
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        let first = command(&allow, &journal, cmd(), tx.clone()).await;
        // The coordinator restarted and sends the same command again.
        let second = command(&allow, &journal, cmd(), tx.clone()).await;
        assert_eq!(first, second);
        assert!(matches!(first.outcome, Some(command_result::Outcome::Done(_))), "{first:?}");
        let kept: Vec<_> = std::fs::read_dir(&files)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".before-"))
            .collect();
        assert_eq!(kept.len(), 1, "the copy ran once: one backup of what it replaced");

        // A refused command leaves no journal entry and says why.
        let refused = Command {
            command_id: "run1/x/1@a".into(),
            kind: Some(command::Kind::Action(ActionCommand {
                action: "service.stop".into(),
                args_json: "{}".into(),
                timeout_ms: 0,
            })),
        };
        let r = command(&allow, &journal, refused, tx).await;
        let Some(command_result::Outcome::Error(e)) = r.outcome else { panic!("{r:?}") };
        assert_eq!(e.message, "refused by the agent's allowlist: action service.stop is not allowed on this agent");
    }
}
