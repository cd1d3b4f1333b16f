//! Agent actions: pick the agents a step targets, send each the action with
//! a command id derived from the step's idempotency key (so a repeat after a
//! coordinator restart is answered from the agent's journal), and gather
//! the outcomes.

use super::{Outcome, Request};
use crate::fleet::{self, Fleet, Order};
use ripcord_engine::Selector;
use ripcord_engine::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
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
    let wait = r.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    let ids: Vec<String> = able.iter().map(|a| a.agent_id.clone()).collect();
    let results = gather(ids, |id| {
        let fleet = Arc::clone(&fleet);
        let command_id = format!("{}@{id}", r.key);
        let order =
            Order::Action { action: r.action.clone(), args: r.args.clone(), timeout_ms: r.timeout_ms.unwrap_or(0) };
        async move { fleet.run_action(&id, &command_id, order, wait).await }
    })
    .await;
    if let Some(msg) = failures(&results) {
        return Outcome::Failed(msg);
    }
    let mut ok: BTreeMap<String, BTreeMap<String, Value>> =
        results.into_iter().filter_map(|(id, r)| r.ok().map(|o| (id, o))).collect();
    debug_assert!(!ok.is_empty(), "one result per agent asked");
    if ok.len() == 1 && !target.all {
        let (id, mut outputs) = ok.pop_first().unwrap_or_default();
        outputs.insert("agent".into(), Value::Str(id));
        return Outcome::Succeeded(outputs);
    }
    let mut outputs = BTreeMap::new();
    outputs.insert("agents".into(), Value::Map(ok.into_iter().map(|(k, v)| (k, Value::Map(v))).collect()));
    Outcome::Succeeded(outputs)
}

/// What one agent answered: its outputs, or why there are none.
type Answer = Result<BTreeMap<String, Value>, String>;

/// Runs `ask` for every agent, one task each, and waits for all of them.
/// Every agent gets an entry: a task that panicked or was cancelled counts
/// as an agent that did not answer, with the reason.
async fn gather<F, Fut>(agents: Vec<String>, ask: F) -> BTreeMap<String, Answer>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<fleet::Answer, fleet::ActionError>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut by_task = HashMap::new();
    for id in agents {
        let work = ask(id.clone());
        let handle = tasks.spawn(work);
        by_task.insert(handle.id(), id);
    }
    let mut results = BTreeMap::new();
    while let Some(done) = tasks.join_next_with_id().await {
        let (task, answer) = match done {
            Ok((task, result)) => (task, answer(result)),
            Err(e) => {
                let why = if e.is_panic() { "its task panicked" } else { "its task was cancelled" };
                (e.id(), Err(format!("no answer ({why})")))
            }
        };
        if let Some(id) = by_task.remove(&task) {
            results.insert(id, answer);
        }
    }
    debug_assert!(by_task.is_empty(), "every task joined");
    results
}

/// An agent's result as outputs, or the reason it has none.
fn answer(result: Result<fleet::Answer, fleet::ActionError>) -> Answer {
    match result.map_err(|e| e.to_string())? {
        fleet::Answer::Done { mut outputs, output } => {
            if !output.is_empty() {
                outputs.insert("output".into(), Value::Str(output));
            }
            Ok(outputs)
        }
        fleet::Answer::Failed { message } => Err(message),
        fleet::Answer::Unreadable { reason } => Err(reason),
        fleet::Answer::Pong { .. } => Err("unexpected answer (a pong)".into()),
    }
}

/// The failure message naming every agent without outputs and why, if any.
fn failures(results: &BTreeMap<String, Answer>) -> Option<String> {
    let failed: Vec<String> =
        results.iter().filter_map(|(id, r)| r.as_ref().err().map(|e| format!("{id}: {e}"))).collect();
    if failed.is_empty() {
        return None;
    }
    Some(if results.len() > 1 {
        format!("{} of {} agents failed: {}", failed.len(), results.len(), failed.join("; "))
    } else {
        failed.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(outputs: &[(&str, &str)]) -> Result<fleet::Answer, fleet::ActionError> {
        let outputs = outputs.iter().map(|(k, v)| (k.to_string(), Value::str(*v))).collect();
        Ok(fleet::Answer::Done { outputs, output: String::new() })
    }

    #[tokio::test]
    async fn an_agent_whose_task_fails_is_named_not_dropped() {
        let agents = vec!["cache-1".to_string(), "cache-2".to_string(), "cache-3".to_string()];
        let results = gather(agents, |id| async move {
            match id.as_str() {
                "cache-2" => panic!("lost"),
                "cache-3" => Ok(fleet::Answer::Failed { message: "refused".into() }),
                _ => done(&[("pong", "PONG")]),
            }
        })
        .await;
        assert_eq!(results.len(), 3, "{results:?}");
        assert_eq!(results["cache-1"], Ok(BTreeMap::from([("pong".to_string(), Value::str("PONG"))])));
        assert_eq!(
            failures(&results).as_deref(),
            Some("2 of 3 agents failed: cache-2: no answer (its task panicked); cache-3: refused")
        );
    }

    #[test]
    fn an_unreadable_answer_fails_the_agent_that_gave_it() {
        let unreadable = Ok(fleet::Answer::Unreadable { reason: "outputs that are not a JSON object (x)".into() });
        let results =
            BTreeMap::from([("cache-1".to_string(), answer(done(&[]))), ("cache-2".to_string(), answer(unreadable))]);
        let msg = failures(&results).unwrap_or_default();
        assert_eq!(msg, "1 of 2 agents failed: cache-2: outputs that are not a JSON object (x)");
        assert_eq!(answer(done(&[])), Ok(BTreeMap::new()), "no outputs at all");
    }
}
