//! Agent actions: pick the agents a step targets, send each the action with
//! a command id derived from the step's idempotency key (so a repeat after a
//! coordinator restart is answered from the agent's journal), and gather
//! the outcomes.

use super::{Outcome, Request};
use crate::fleet::Fleet;
use ripcord_engine::Selector;
use ripcord_engine::value::Value;
use ripcord_proto::v1::{ActionCommand, command, command_result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait for an agent (including while it is disconnected) when
/// the step sets no timeout.
const DEFAULT_WAIT: Duration = Duration::from_secs(15 * 60);

pub async fn perform(fleet: Arc<Fleet>, r: Request) -> Outcome {
    let Some(target) = &r.target else { return Outcome::Failed("agent action without a target".into()) };
    let selector: Selector = match target.selector.parse() {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let matching = fleet.list(&selector);
    let (able, unable): (Vec<_>, Vec<_>) = matching.iter().partition(|a| a.actions.iter().any(|x| x == &r.action));
    if able.is_empty() {
        let why = if unable.is_empty() {
            format!("no agent matches {}", target.selector)
        } else {
            let names: Vec<&str> = unable.iter().map(|a| a.agent_id.as_str()).collect();
            format!("no agent matching {} allows {} (matching: {})", target.selector, r.action, names.join(", "))
        };
        return Outcome::Failed(why);
    }
    if !target.all && able.len() > 1 {
        let names: Vec<&str> = able.iter().map(|a| a.agent_id.as_str()).collect();
        return Outcome::Failed(format!(
            "{} agents match {} and allow {} ({}); the step wants exactly one — narrow the selector or set all: true",
            able.len(),
            target.selector,
            r.action,
            names.join(", ")
        ));
    }
    let args_json = serde_json::to_string(&r.args).unwrap_or_default();
    let wait = r.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    let mut tasks = tokio::task::JoinSet::new();
    for agent in able {
        let fleet = Arc::clone(&fleet);
        let id = agent.agent_id.clone();
        let command_id = format!("{}@{id}", r.key);
        let kind = command::Kind::Action(ActionCommand {
            action: r.action.clone(),
            args_json: args_json.clone(),
            timeout_ms: r.timeout_ms.unwrap_or(0),
        });
        tasks.spawn(async move {
            let result = fleet.run_action(&id, &command_id, kind, wait).await;
            (id, result)
        });
    }
    let mut results: BTreeMap<String, Result<BTreeMap<String, Value>, String>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((id, result)) = done else { continue };
        let r = match result {
            Ok(command_result::Outcome::Done(d)) => {
                let mut outputs: BTreeMap<String, Value> = serde_json::from_str(&d.outputs_json).unwrap_or_default();
                if !d.output.is_empty() {
                    outputs.insert("output".into(), Value::Str(d.output));
                }
                Ok(outputs)
            }
            Ok(command_result::Outcome::Error(e)) => Err(e.message),
            Ok(command_result::Outcome::Pong(_)) => Err("unexpected answer".into()),
            Err(e) => Err(e),
        };
        results.insert(id, r);
    }
    let failures: Vec<String> =
        results.iter().filter_map(|(id, r)| r.as_ref().err().map(|e| format!("{id}: {e}"))).collect();
    if !failures.is_empty() {
        return Outcome::Failed(failures.join("; "));
    }
    let mut ok: BTreeMap<String, BTreeMap<String, Value>> =
        results.into_iter().filter_map(|(id, r)| r.ok().map(|o| (id, o))).collect();
    if ok.len() == 1 && !target.all {
        let (id, mut outputs) = ok.pop_first().unwrap_or_default();
        outputs.insert("agent".into(), Value::Str(id));
        return Outcome::Succeeded(outputs);
    }
    let mut outputs = BTreeMap::new();
    outputs.insert("agents".into(), Value::Map(ok.into_iter().map(|(k, v)| (k, Value::Map(v))).collect()));
    Outcome::Succeeded(outputs)
}
