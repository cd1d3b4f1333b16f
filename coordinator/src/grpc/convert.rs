//! Wire ⇄ domain conversions. (Driver errors map to statuses in
//! `service.rs`, in one function.)

use crate::fleet::{Answer, DispatchError, Farewell, Order, Outgoing, PingOutcome};
use crate::store::AgentRecord;
use ripcord_engine::model::RunView;
use ripcord_proto::v1::{
    ActionCommand, AgentInfo, Command, CoordinatorMessage, GetRunResponse, Goodbye, GoodbyeReason, HeartbeatAck,
    PingResult, Welcome, command, command_result, coordinator_message, ping_result,
};

pub fn agent_info(r: AgentRecord) -> AgentInfo {
    AgentInfo {
        agent_id: r.agent_id,
        labels: r.labels.into_iter().collect(),
        version: r.version,
        actions: r.actions,
        connected: r.connected,
        last_seen_unix_ms: r.last_seen_unix_ms,
        first_seen_unix_ms: r.first_seen_unix_ms,
        address: r.address,
    }
}

/// A message of the fleet's to an agent, on the wire.
pub fn outgoing(m: Outgoing) -> CoordinatorMessage {
    use coordinator_message::Body;
    let body = match m {
        Outgoing::Welcome { coordinator_version, heartbeat_interval } => Body::Welcome(Welcome {
            coordinator_version,
            heartbeat_interval_ms: u64::try_from(heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
        }),
        Outgoing::HeartbeatAck { seq } => Body::HeartbeatAck(HeartbeatAck { seq }),
        Outgoing::Command { id, order } => Body::Command(Command { command_id: id, kind: Some(order_kind(order)) }),
        Outgoing::Goodbye(farewell) => return goodbye(farewell.as_ref()),
    };
    CoordinatorMessage { body: Some(body) }
}

fn order_kind(order: Order) -> command::Kind {
    match order {
        Order::Ping => command::Kind::Ping(Default::default()),
        Order::Action { action, args, timeout_ms } => command::Kind::Action(ActionCommand {
            action,
            // A map of strings, numbers, lists and maps: always JSON.
            args_json: serde_json::to_string(&args).unwrap_or_default(),
            timeout_ms,
        }),
    }
}

/// An agent's answer, off the wire. Outputs that are not a JSON object make
/// an unreadable answer, never empty outputs.
pub fn answer(outcome: command_result::Outcome) -> Answer {
    match outcome {
        command_result::Outcome::Pong(p) => Answer::Pong { agent_version: p.agent_version },
        command_result::Outcome::Error(e) => Answer::Failed { message: e.message },
        command_result::Outcome::Done(d) if d.outputs_json.is_empty() => {
            Answer::Done { outputs: Default::default(), output: d.output }
        }
        command_result::Outcome::Done(d) => match serde_json::from_str(&d.outputs_json) {
            Ok(outputs) => Answer::Done { outputs, output: d.output },
            Err(e) => Answer::Unreadable { reason: format!("outputs that are not a JSON object ({e})") },
        },
    }
}

/// The `Goodbye` that ends a session: why, for people and (typed) for the
/// agent. `None`: the session was closed without a reason.
pub fn goodbye(farewell: Option<&Farewell>) -> CoordinatorMessage {
    let kind = match farewell {
        Some(Farewell::Replaced { .. }) => GoodbyeReason::Replaced,
        Some(Farewell::ShuttingDown) => GoodbyeReason::ShuttingDown,
        None => GoodbyeReason::Unspecified,
    };
    let reason = farewell.map_or_else(|| "session closed".to_string(), ToString::to_string);
    CoordinatorMessage { body: Some(coordinator_message::Body::Goodbye(Goodbye { reason, kind: kind as i32 })) }
}

pub fn ping_result(o: PingOutcome) -> PingResult {
    use ping_result::Status as S;
    let us = |rtt: std::time::Duration| u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
    let (status, rtt_us, message) = match o.result {
        Ok((Answer::Pong { agent_version }, rtt)) => (S::Ok, us(rtt), format!("agent version {agent_version}")),
        Ok((Answer::Done { .. } | Answer::Unreadable { .. }, rtt)) => {
            (S::Error, us(rtt), "unexpected answer to a ping".to_string())
        }
        Ok((Answer::Failed { message }, rtt)) => (S::Error, us(rtt), message),
        Err(e @ DispatchError::Disconnected) => (S::Disconnected, 0, e.to_string()),
        Err(e @ DispatchError::Timeout(_)) => (S::Timeout, 0, e.to_string()),
        Err(e @ DispatchError::Lost) => (S::Disconnected, 0, e.to_string()),
    };
    PingResult { agent_id: o.agent_id, status: status as i32, rtt_us, message }
}

/// A run view on the wire: the engine's model as its serde JSON, the one
/// form the CLI and reports read (see `GetRunResponse` in the proto).
pub fn run_view(view: &RunView) -> Result<GetRunResponse, serde_json::Error> {
    Ok(GetRunResponse { run_view_json: serde_json::to_string(view)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_engine::value::Value;
    use ripcord_proto::v1::ActionDone;

    #[test]
    fn answers_come_off_the_wire_typed_and_unreadable_outputs_say_so() {
        let done = |json: &str| {
            answer(command_result::Outcome::Done(ActionDone { outputs_json: json.into(), output: "log".into() }))
        };
        let outputs = [("keys".to_string(), Value::Int(100))].into_iter().collect();
        assert_eq!(done(r#"{"keys": 100}"#), Answer::Done { outputs, output: "log".into() });
        assert_eq!(done(""), Answer::Done { outputs: Default::default(), output: "log".into() });
        for bad in ["{not json", "[1]"] {
            let Answer::Unreadable { reason } = done(bad) else { panic!("{bad}: read as outputs") };
            assert!(reason.starts_with("outputs that are not a JSON object ("), "{reason}");
        }
    }

    #[test]
    fn an_order_goes_on_the_wire_with_its_arguments_as_json() {
        let args = Value::Map([("instance".to_string(), Value::str("cache"))].into_iter().collect());
        let order = Order::Action { action: "redis.ping".into(), args, timeout_ms: 5 };
        let m = outgoing(Outgoing::Command { id: "c1".into(), order });
        let Some(coordinator_message::Body::Command(Command { command_id, kind: Some(command::Kind::Action(a)) })) =
            m.body
        else {
            panic!("not an action command");
        };
        assert_eq!((command_id.as_str(), a.action.as_str(), a.timeout_ms), ("c1", "redis.ping", 5));
        assert_eq!(a.args_json, r#"{"instance":"cache"}"#);
    }

    #[test]
    fn a_goodbye_carries_its_reason_typed_and_in_words() {
        let table = [
            (
                Some(Farewell::Replaced { by: "10.0.0.2:1".into() }),
                GoodbyeReason::Replaced,
                "replaced by a newer connection from 10.0.0.2:1",
            ),
            (Some(Farewell::ShuttingDown), GoodbyeReason::ShuttingDown, "coordinator shutting down"),
            (None, GoodbyeReason::Unspecified, "session closed"),
        ];
        for (farewell, kind, reason) in table {
            let Some(coordinator_message::Body::Goodbye(g)) = goodbye(farewell.as_ref()).body else {
                panic!("{farewell:?}: not a goodbye");
            };
            assert_eq!((g.kind(), g.reason.as_str()), (kind, reason));
        }
    }
}
