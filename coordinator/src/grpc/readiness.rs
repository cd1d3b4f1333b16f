//! `Readiness`: the engine's readiness checks (every built-in runbook passes
//! `check`; each agent step's target matches usable agents) computed from
//! the fleet as the coordinator knows it, and turned into protobuf.

use crate::store::AgentRecord;
use ripcord_engine::readiness::{self, Agent, Check};
use ripcord_engine::{builtin, check};
use ripcord_proto::v1::{ReadinessCheck, ReadinessResponse};
use tonic::Status;

fn agent(r: AgentRecord) -> Agent {
    Agent { id: r.agent_id, labels: r.labels, connected: r.connected, actions: r.actions }
}

/// The checks of built-in runbook `runbook` (every one when empty) against
/// the fleet's `records`.
pub fn checks(runbook: &str, records: Vec<AgentRecord>) -> Result<Vec<Check>, Status> {
    let ids: Vec<&str> = if runbook.is_empty() {
        builtin::ids().collect()
    } else if builtin::get(runbook).is_some() {
        vec![runbook]
    } else {
        let known: Vec<&str> = builtin::ids().collect();
        return Err(Status::not_found(format!("no built-in runbook \"{runbook}\" (there are: {})", known.join(", "))));
    };
    let agents: Vec<Agent> = records.into_iter().map(agent).collect();
    let mut out = Vec::new();
    for id in ids {
        let text = builtin::get(id).unwrap_or_default();
        out.push(readiness::runbook(id, text));
        if let Ok(rb) = check::check(text) {
            out.extend(readiness::fleet(&rb, &agents));
        }
    }
    Ok(out)
}

pub fn response(checks: Vec<Check>) -> ReadinessResponse {
    ReadinessResponse {
        checks: checks
            .into_iter()
            .map(|c| ReadinessCheck {
                runbook: c.runbook.unwrap_or_default(),
                subject: c.subject,
                status: c.status.as_str().to_string(),
                measured: c.measured,
                limit: c.limit,
                fix: c.fix,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_aof_without_agents_fails_and_unknown_runbooks_are_refused() {
        let found = checks("redis-aof", vec![]).unwrap();
        assert_eq!(found[0].subject, "runbook check");
        assert!(found.iter().any(|c| c.status == readiness::Status::Fail && c.subject.contains("role=redis")));
        let resp = response(found);
        assert!(resp.checks.iter().all(|c| c.runbook == "redis-aof"));
        assert_eq!(checks("nope", vec![]).unwrap_err().code(), tonic::Code::NotFound);
    }
}
