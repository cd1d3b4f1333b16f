//! Wire ⇄ domain conversions. (Driver errors map to statuses in
//! `service.rs`, in one function.)

use crate::fleet::{DispatchError, Farewell, PingOutcome};
use crate::store::AgentRecord;
use ripcord_engine::model::RunView;
use ripcord_proto::v1::{
    AgentInfo, CoordinatorMessage, GetRunResponse, Goodbye, GoodbyeReason, PingResult, command_result,
    coordinator_message, ping_result,
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
    let (status, rtt_us, message) = match o.result {
        Ok((command_result::Outcome::Pong(p), rtt)) => {
            (S::Ok, u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX), format!("agent version {}", p.agent_version))
        }
        Ok((command_result::Outcome::Done(_), rtt)) => {
            (S::Error, u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX), "unexpected answer to a ping".to_string())
        }
        Ok((command_result::Outcome::Error(e), rtt)) => {
            (S::Error, u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX), e.message)
        }
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
