//! Tables for people, JSON for scripts.

use ripcord_proto::v1::{AgentInfo, PingResult, ping_result};
use serde_json::{Value, json};
use std::fmt::Write;

/// "12s ago", "3m ago", "never".
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".into();
    }
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn labels_text(a: &AgentInfo) -> String {
    let mut labels: Vec<_> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    labels.join(",")
}

pub fn agents_table(agents: &[AgentInfo], now_ms: i64) -> String {
    if agents.is_empty() {
        return "no agents\n".into();
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.agent_id.clone(),
                if a.connected { "connected".into() } else { "disconnected".into() },
                ago(a.last_seen_unix_ms, now_ms),
                a.version.clone(),
                a.address.clone(),
                a.actions.len().to_string(),
                labels_text(a),
            ]
        })
        .collect();
    table(&["AGENT", "STATE", "LAST SEEN", "VERSION", "ADDRESS", "ACTIONS", "LABELS"], &rows)
}

pub fn agents_json(agents: &[AgentInfo]) -> Value {
    Value::Array(
        agents
            .iter()
            .map(|a| {
                json!({
                    "agent_id": a.agent_id,
                    "connected": a.connected,
                    "labels": a.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect::<serde_json::Map<String, Value>>(),
                    "version": a.version,
                    "actions": a.actions,
                    "address": a.address,
                    "last_seen_unix_ms": a.last_seen_unix_ms,
                    "first_seen_unix_ms": a.first_seen_unix_ms,
                })
            })
            .collect(),
    )
}

pub fn ping_status(r: &PingResult) -> &'static str {
    match ping_result::Status::try_from(r.status).unwrap_or(ping_result::Status::Unspecified) {
        ping_result::Status::Ok => "ok",
        ping_result::Status::Disconnected => "disconnected",
        ping_result::Status::Timeout => "timeout",
        ping_result::Status::Error => "error",
        ping_result::Status::Unspecified => "unknown",
    }
}

pub fn ping_table(results: &[PingResult]) -> String {
    if results.is_empty() {
        return "no matching agents\n".into();
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let rtt = if ping_status(r) == "ok" { format!("{:.2}ms", r.rtt_us as f64 / 1000.0) } else { "-".into() };
            vec![r.agent_id.clone(), ping_status(r).into(), rtt, r.message.clone()]
        })
        .collect();
    table(&["AGENT", "RESULT", "RTT", "DETAIL"], &rows)
}

pub fn ping_json(results: &[PingResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "agent_id": r.agent_id,
                    "status": ping_status(r),
                    "rtt_us": r.rtt_us,
                    "message": r.message,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_table() {
        for (then, now, expect) in
            [(0, 5, "never"), (1000, 3000, "2s ago"), (1, 120_001, "2m ago"), (1, 7_200_001, "2h ago")]
        {
            assert_eq!(ago(then, now), expect);
        }
    }

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
