//! `ripcord readiness [--json] [--runbook ID]`: the coordinator's readiness
//! checks as a table (RUNBOOK, CHECK, STATUS, MEASURED, LIMIT, FIX) or as
//! the engine's `readiness::Check` in JSON. Exit code 1 when any check
//! fails; warnings alone leave it 0.

use crate::Failure;
use ripcord_cli::{client, output, settings};
use ripcord_engine::readiness::{Check, Status, worst};
use ripcord_proto::v1::{ReadinessCheck, ReadinessRequest};
use std::process::ExitCode;

pub async fn readiness(s: settings::Settings, json: bool, runbook: Option<String>) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let req = ReadinessRequest { runbook: runbook.unwrap_or_default() };
    let found = c.readiness(req).await.map_err(|e| client::explain(&e))?.into_inner().checks;
    let checks: Vec<Check> = found.into_iter().map(decode).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", table(&checks));
    }
    Ok(exit_code(&checks))
}

/// The wire's check as the engine's; a status this CLI does not know counts
/// as a failure.
pub fn decode(c: ReadinessCheck) -> Check {
    let status = match c.status.as_str() {
        "ok" => Status::Ok,
        "warn" => Status::Warn,
        _ => Status::Fail,
    };
    Check {
        runbook: (!c.runbook.is_empty()).then_some(c.runbook),
        subject: c.subject,
        status,
        measured: c.measured,
        limit: c.limit,
        fix: c.fix,
    }
}

pub fn table(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.runbook.clone().unwrap_or_else(|| "-".into()),
                c.subject.clone(),
                c.status.as_str().to_uppercase(),
                c.measured.clone(),
                c.limit.clone(),
                if c.fix.is_empty() { "-".into() } else { c.fix.clone() },
            ]
        })
        .collect();
    output::table(&["RUNBOOK", "CHECK", "STATUS", "MEASURED", "LIMIT", "FIX"], &rows)
}

/// 1 if any check fails, else 0.
pub fn exit_code(checks: &[Check]) -> ExitCode {
    if worst(checks) == Status::Fail { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(status: &str, fix: &str) -> ReadinessCheck {
        ReadinessCheck {
            runbook: "redis-aof".into(),
            subject: "step fix: target role=redis".into(),
            status: status.into(),
            measured: "no connected agent allows redis.ping".into(),
            limit: "exactly one connected agent allowing it".into(),
            fix: fix.into(),
        }
    }

    #[test]
    fn renders_a_table_and_the_exit_code_follows_the_worst_status() {
        let checks: Vec<Check> = vec![decode(wire("ok", "")), decode(wire("fail", "start an agent"))];
        let t = table(&checks);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        for h in ["RUNBOOK", "CHECK", "STATUS", "MEASURED", "LIMIT", "FIX"] {
            assert!(lines[0].contains(h), "{t}");
        }
        assert!(lines[1].starts_with("redis-aof") && lines[1].contains(" OK ") && lines[1].ends_with('-'), "{t}");
        assert!(lines[2].contains("FAIL") && lines[2].ends_with("start an agent"), "{t}");
        assert_eq!(exit_code(&checks), ExitCode::from(1));
        assert_eq!(exit_code(&[decode(wire("warn", "x")), decode(wire("ok", ""))]), ExitCode::SUCCESS);
        assert_eq!(decode(wire("strange", "")).status, Status::Fail);
        let mut none = wire("ok", "");
        none.runbook.clear();
        assert!(table(&[decode(none)]).lines().nth(1).unwrap().starts_with('-'));
    }
}
