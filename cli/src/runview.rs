//! Rendering a run view (the coordinator's JSON, see `coordinator/src/view.rs`)
//! for people: a header with the RTO clock, the steps, the event log.

use crate::output::table;
use ripcord_engine::clock::rfc3339;
use ripcord_engine::duration::format as dur;
use serde_json::Value as J;
use std::fmt::Write;
use std::time::Duration;

fn ms(v: &J) -> Option<i64> {
    v.as_i64()
}

fn d(ms: i64) -> String {
    dur(Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)) / 1000 * 1000)
}

fn s(v: &J) -> &str {
    v.as_str().unwrap_or("")
}

/// The RTO clock: "12m of 30m RTO" while running, "recovered in 14m (RTO 30m)".
pub fn rto_clock(v: &J) -> String {
    let incident = ms(&v["incident_at_ms"]).unwrap_or(0);
    let now = ms(&v["now_ms"]).unwrap_or(incident);
    let rto = ms(&v["rto_ms"]);
    let rto_text = |elapsed: i64| match rto {
        Some(r) if elapsed > r => format!(" — over the {} RTO by {}", d(r), d(elapsed - r)),
        Some(r) => format!(" of the {} RTO", d(r)),
        None => String::new(),
    };
    match (ms(&v["recovered_at_ms"]), s(&v["status"])) {
        (Some(rec), _) => {
            let e = rec - incident;
            format!("recovered {} after the incident{}", d(e), rto_text(e))
        }
        (None, "running") => {
            let e = now - incident;
            format!("{} since the incident{}", d(e), rto_text(e))
        }
        (None, status) => {
            let end = ms(&v["finished_at_ms"]).unwrap_or(now);
            format!("{status} {} after the incident, not recovered", d(end - incident))
        }
    }
}

/// The RPO achieved: "5m12s of data lost (newest record kept 03:07:00Z,
/// step newest) — within the 15m RPO", or what is still unknown.
pub fn rpo_line(v: &J) -> Option<String> {
    let target = ms(&v["rpo_ms"]);
    let a = &v["rpo_achieved"];
    let Some(lost) = ms(&a["lost_ms"]) else {
        let when = if s(&v["status"]) == "running" { "yet" } else { "by this run" };
        return target.map(|t| format!("target {}; not measured {when}", d(t)));
    };
    let verdict = match target {
        Some(t) if lost > t => format!(" — over the {} RPO by {}", d(t), d(lost - t)),
        Some(t) => format!(" — within the {} RPO", d(t)),
        None => String::new(),
    };
    let kept = rfc3339(ms(&a["kept_until_ms"]).unwrap_or(0));
    let lost = if lost == 0 { "no data lost".to_string() } else { format!("{} of data lost", d(lost)) };
    Some(format!("{lost} ({} {kept}, step {}){verdict}", s(&a["basis"]), s(&a["step"])))
}

pub fn header(v: &J) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run {}  {}  ({})", s(&v["run_id"]), s(&v["runbook_id"]), s(&v["title"]));
    let _ = writeln!(out, "status:    {} ({} run, started by {})", s(&v["status"]), s(&v["mode"]), s(&v["started_by"]));
    let _ = writeln!(out, "incident:  {}", rfc3339(ms(&v["incident_at_ms"]).unwrap_or(0)));
    let _ = writeln!(out, "clock:     {}", rto_clock(v));
    if let Some(rpo) = rpo_line(v) {
        let _ = writeln!(out, "rpo:       {rpo}");
    }
    if let Some(f) = v["failing"].as_str() {
        let _ = writeln!(out, "failure:   {f}");
    }
    out
}

pub fn steps(v: &J) -> String {
    let now = ms(&v["now_ms"]).unwrap_or(0);
    let rows: Vec<Vec<String>> = v["steps"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|st| !(st["handler"] == true && st["attempt"] == 0))
        .map(|st| {
            let started = ms(&st["started_at_ms"]);
            let end = ms(&st["finished_at_ms"]).unwrap_or(now);
            let elapsed = started.map(|t| d(end - t)).unwrap_or_else(|| "-".into());
            let budget = ms(&st["budget_ms"]).map(d);
            let time = match budget {
                Some(b) => format!("{elapsed} / {b}{}", if st["over_budget"] == true { " OVER" } else { "" }),
                None => elapsed,
            };
            let attempt = match (st["attempt"].as_u64(), st["max_attempts"].as_u64()) {
                (Some(a), Some(m)) if m > 1 => format!("{a}/{m}"),
                (Some(0), _) => "-".into(),
                (Some(a), _) => a.to_string(),
                _ => "-".into(),
            };
            let detail = [&st["waiting_for"], &st["error"], &st["skip_reason"]]
                .iter()
                .find_map(|x| x.as_str().map(str::to_string))
                .or_else(|| ms(&st["until_ms"]).map(|u| format!("until {}", rfc3339(u))))
                .or_else(|| st["approval"]["by"].as_str().map(|b| format!("approved by {b}")))
                .unwrap_or_default();
            let action = match st["target"].as_str() {
                Some(t) => format!("{} @ {t}", s(&st["action"])),
                None => s(&st["action"]).to_string(),
            };
            vec![s(&st["id"]).to_string(), s(&st["status"]).to_string(), attempt, time, action, detail]
        })
        .collect();
    table(&["STEP", "STATE", "TRY", "TIME / BUDGET", "ACTION", "DETAIL"], &rows)
}

pub fn event_line(e: &J) -> String {
    let at = rfc3339(ms(&e["at_ms"]).unwrap_or(0));
    let step = e["step"].as_str().map(|s| format!(" [{s}]")).unwrap_or_default();
    let actor = e["actor"].as_str().map(|a| format!(" ({a})")).unwrap_or_default();
    format!("{at}{step} {}{actor}", s(&e["message"]))
}

pub fn events(v: &J) -> String {
    let mut out = String::new();
    for e in v["events"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
        let _ = writeln!(out, "{}", event_line(e));
    }
    out
}

pub fn show(v: &J) -> String {
    format!("{}\n{}\nevents:\n{}", header(v), steps(v), events(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rto_clock_table() {
        let base = |status: &str, recovered: J, now: i64| json!({"incident_at_ms": 0, "now_ms": now, "rto_ms": 1_800_000, "status": status, "recovered_at_ms": recovered, "finished_at_ms": null});
        assert_eq!(rto_clock(&base("running", J::Null, 720_000)), "12m since the incident of the 30m RTO");
        assert_eq!(rto_clock(&base("running", J::Null, 2_100_000)), "35m since the incident — over the 30m RTO by 5m");
        assert_eq!(
            rto_clock(&base("succeeded", json!(840_000), 900_000)),
            "recovered 14m after the incident of the 30m RTO"
        );
    }

    #[test]
    fn rpo_line_table() {
        let v = |rpo: J, achieved: J| json!({"rpo_ms": rpo, "rpo_achieved": achieved, "status": "succeeded"});
        let measured =
            |lost: i64| json!({"lost_ms": lost, "kept_until_ms": 0, "basis": "newest record kept", "step": "newest"});
        assert_eq!(rpo_line(&v(J::Null, J::Null)), None, "no target and nothing measured: no line");
        // An AOF repair, say: nothing reads back what was kept.
        assert_eq!(rpo_line(&v(json!(300_000), J::Null)).unwrap(), "target 5m; not measured by this run");
        let running = json!({"rpo_ms": 300_000, "rpo_achieved": null, "status": "running"});
        assert_eq!(rpo_line(&running).unwrap(), "target 5m; not measured yet");
        assert_eq!(
            rpo_line(&v(json!(900_000), measured(312_000))).unwrap(),
            "5m12s of data lost (newest record kept 1970-01-01T00:00:00Z, step newest) — within the 15m RPO"
        );
        assert_eq!(
            rpo_line(&v(json!(300_000), measured(420_000))).unwrap(),
            "7m of data lost (newest record kept 1970-01-01T00:00:00Z, step newest) — over the 5m RPO by 2m"
        );
        assert!(rpo_line(&v(J::Null, measured(0))).unwrap().starts_with("no data lost ("));
    }
}
