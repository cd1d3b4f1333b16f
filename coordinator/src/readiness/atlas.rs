//! The Atlas checks of one cluster a runbook depends on: backup on,
//! point-in-time restore on and its window against the RPO, the newest
//! snapshot's age against the RPO, and snapshot copies in each region the
//! runbook rebuilds it in. All reads (`integrations::atlas::reads`).

use super::{ClusterNeed, check};
use crate::integrations::atlas::{Atlas, ClusterBackup, Error};
use ripcord_engine::duration::Human;
use ripcord_engine::readiness::{Check, Status};
use std::time::Duration;

/// `atlas cluster P/C: WHAT`.
pub fn subject(need: &ClusterNeed, what: &str) -> String {
    format!("atlas cluster {}/{}: {what}", need.project, need.cluster)
}

/// `atlas cluster P/C: snapshot copies to REGION`.
pub fn copies_subject(need: &ClusterNeed, region: &str) -> String {
    subject(need, &format!("snapshot copies to {region}"))
}

/// Where Atlas keeps these settings, for fixes.
const EDIT_POLICY: &str = "(Atlas: Backup → Edit policy)";

/// The one check of a cluster that could not be asked about: no `[atlas]`
/// section, or its project's calls are refused.
pub fn not_checked(configured: bool, need: &ClusterNeed) -> Check {
    let (measured, fix) = if configured {
        (
            "not checked: Atlas refused or failed the project's calls".to_string(),
            format!("fix the check \"atlas project {}: authentication\" first", need.project),
        )
    } else {
        (
            "not checked: the coordinator config has no [atlas] section".to_string(),
            "add an [atlas] section (with [atlas.auth]) to the coordinator config to check backups".to_string(),
        )
    };
    check(
        format!("atlas cluster {}/{}", need.project, need.cluster),
        Status::Warn,
        measured,
        "backups, point-in-time restore and snapshots checked",
        fix,
    )
}

/// How a failed read shows in a check: (measured, fix). A refused key or
/// service account is named as such; no secret is ever in the text.
pub fn read_failure(atlas: &Atlas, e: &Error) -> (String, String) {
    match e {
        Error::Credentials { status, hint } => {
            (format!("Atlas authentication failed (HTTP {status})"), atlas.scrub(auth_fix(hint)))
        }
        other => (
            atlas.scrub(other.to_string()),
            "check that the coordinator reaches Atlas ([atlas] base_url) and that the project id and cluster \
             name are right, then run readiness again"
                .to_string(),
        ),
    }
}

/// The fix of a refused key or service account, with the client's hint
/// (which names the key or client id and the secret's file, never the
/// secret).
pub fn auth_fix(hint: &str) -> String {
    let hint = hint.strip_prefix("check ").unwrap_or(hint);
    format!("check the API key / service account in [atlas]: {hint}")
}

/// The checks of one cluster.
pub async fn cluster_checks(
    atlas: Option<&Atlas>,
    need: &ClusterNeed,
    rpo: Option<Duration>,
    now_ms: i64,
) -> Vec<Check> {
    let Some(atlas) = atlas else { return vec![not_checked(false, need)] };
    let (p, c) = (need.project.as_str(), need.cluster.as_str());
    let cluster = match atlas.cluster_backup(p, c).await {
        Ok(Some(cluster)) => cluster,
        Ok(None) => {
            return vec![check(
                format!("atlas cluster {p}/{c}"),
                Status::Fail,
                format!("no cluster {c} in project {p}"),
                "the cluster exists",
                format!("check the runbook's params: project {p} has no cluster {c} (steps {})", need.steps.join(", ")),
            )];
        }
        Err(e) => {
            let (measured, fix) = read_failure(atlas, &e);
            return vec![check(format!("atlas cluster {p}/{c}"), Status::Fail, measured, "readable", fix)];
        }
    };
    let mut out = vec![backup(need, &cluster), pit(need, &cluster)];
    let schedule =
        if cluster.pit_enabled || !need.dr_regions.is_empty() { Some(atlas.backup_schedule(p, c).await) } else { None };
    if cluster.pit_enabled
        && let Some(s) = &schedule
    {
        out.push(match s {
            Ok(s) => window(need, s.restore_window_days, rpo),
            Err(e) => {
                let (measured, fix) = read_failure(atlas, e);
                check(subject(need, "restore window"), Status::Fail, measured, "readable", fix)
            }
        });
    }
    out.push(match atlas.newest_snapshot(p, c).await {
        Ok(newest) => snapshot_age(need, newest.map(|s| (s.id, s.created_at_ms)), rpo, now_ms),
        Err(e) => {
            let (measured, fix) = read_failure(atlas, &e);
            check(subject(need, "newest snapshot"), Status::Fail, measured, "readable", fix)
        }
    });
    if let Some(schedule) = &schedule {
        for region in &need.dr_regions {
            out.push(match schedule {
                Ok(s) => copies(need, region, &s.copy_settings),
                Err(e) => {
                    let (measured, fix) = read_failure(atlas, e);
                    check(copies_subject(need, region), Status::Fail, measured, "readable", fix)
                }
            });
        }
    }
    out
}

/// Cloud Backup is on.
pub fn backup(need: &ClusterNeed, c: &ClusterBackup) -> Check {
    let (status, measured) =
        if c.backup_enabled { (Status::Ok, "on") } else { (Status::Fail, "off (backupEnabled false)") };
    check(
        subject(need, "backup"),
        status,
        measured,
        "on",
        format!(
            "turn on Cloud Backup for cluster {} in project {} (Atlas: the cluster → Edit configuration → \
             Additional settings → Turn on Cloud Backup)",
            need.cluster, need.project
        ),
    )
}

/// Continuous Cloud Backup (point-in-time restores) is on: a failure when
/// the runbook restores the cluster to a point in time, else a warning
/// (its recovery point is then the newest snapshot).
pub fn pit(need: &ClusterNeed, c: &ClusterBackup) -> Check {
    let (status, measured) = match (c.pit_enabled, need.pit) {
        (true, _) => (Status::Ok, "on".to_string()),
        (false, true) => (Status::Fail, "off (pitEnabled false): a point-in-time restore is impossible".to_string()),
        (false, false) => {
            (Status::Warn, "off (pitEnabled false): only snapshots can be restored, at their age".to_string())
        }
    };
    check(
        subject(need, "point-in-time restore"),
        status,
        measured,
        "on",
        format!(
            "turn on Continuous Cloud Backup for cluster {} in project {} {EDIT_POLICY}",
            need.cluster, need.project
        ),
    )
}

/// The point-in-time window reaches back at least the RPO.
pub fn window(need: &ClusterNeed, days: Option<f64>, rpo: Option<Duration>) -> Check {
    let subject = subject(need, "restore window");
    let fix = |want: &str| {
        format!(
            "set the restore window of cluster {} in project {} to at least {want} {EDIT_POLICY}",
            need.cluster, need.project
        )
    };
    let Some(days) = days.filter(|d| d.is_finite() && *d >= 0.0) else {
        return check(subject, Status::Warn, "Atlas gave no restoreWindowDays", "known", fix("the RPO"));
    };
    let window = Duration::from_secs_f64(days * 86_400.0);
    let measured = if days == 1.0 { "1 day".to_string() } else { format!("{days} days") };
    let Some(rpo) = rpo else {
        return check(subject, Status::Ok, measured, "the runbook declares no RPO", "");
    };
    let limit = format!("at least the RPO, {}", Human(rpo));
    if window >= rpo {
        check(subject, Status::Ok, measured, limit, "")
    } else {
        let status = if need.pit { Status::Fail } else { Status::Warn };
        let want = format!("{} days", rpo.as_secs().div_ceil(86_400).max(1));
        check(subject, status, format!("{measured}, shorter than the RPO"), limit, fix(&want))
    }
}

/// The newest completed snapshot, `(id, createdAt in unix ms)`, is within
/// the RPO: older is a failure when the runbook restores a snapshot of the
/// cluster, else a warning; none at all is a failure.
pub fn snapshot_age(need: &ClusterNeed, newest: Option<(String, i64)>, rpo: Option<Duration>, now_ms: i64) -> Check {
    let subject = subject(need, "newest snapshot");
    let limit = match rpo {
        Some(r) => format!("younger than the RPO, {}", Human(r)),
        None => "one exists (the runbook declares no RPO)".to_string(),
    };
    let Some((id, created)) = newest else {
        return check(
            subject,
            Status::Fail,
            "no completed snapshot",
            limit,
            format!(
                "check the backup policy of cluster {} in project {} {EDIT_POLICY}, or take a snapshot now \
                 (Atlas: Backup → Take Snapshot Now)",
                need.cluster, need.project
            ),
        );
    };
    let age = Duration::from_secs(u64::try_from(now_ms.saturating_sub(created)).unwrap_or(0) / 1000);
    let measured = format!("{id} taken {} ago", age_text(age));
    match rpo {
        Some(rpo) if age > rpo => {
            let status = if need.snapshot { Status::Fail } else { Status::Warn };
            check(
                subject,
                status,
                measured,
                limit,
                format!(
                    "take snapshots of cluster {} in project {} at least every {} (an hourly policy item) \
                     {EDIT_POLICY}, or accept a larger RPO in the runbook",
                    need.cluster,
                    need.project,
                    Human(rpo)
                ),
            )
        }
        _ => check(subject, Status::Ok, measured, limit, ""),
    }
}

/// An age to the minute (to the second under a minute).
fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    let shown = if secs >= 60 { secs / 60 * 60 } else { secs };
    Human(Duration::from_secs(shown)).to_string()
}

/// The backup schedule copies snapshots to `region`.
pub fn copies(need: &ClusterNeed, region: &str, settings: &[crate::integrations::atlas::CopySetting]) -> Check {
    let subject = copies_subject(need, region);
    let limit = "a copy setting for the region that copies snapshots";
    let fix = format!(
        "add a copy setting for {region} to the cluster's backup policy (cluster {} in project {}; Atlas: Backup \
         → Edit policy → Additional Snapshot Distribution), before a disaster: a region that is down cannot \
         serve its own snapshots",
        need.cluster, need.project
    );
    let found = settings.iter().find(|s| super::atlas_region(&s.region_name) == region);
    match found {
        None => {
            let elsewhere: Vec<&str> = settings.iter().map(|s| s.region_name.as_str()).collect();
            let measured = if elsewhere.is_empty() {
                "no copy settings".to_string()
            } else {
                format!("copies go to {} only", elsewhere.join(", "))
            };
            check(subject, Status::Fail, measured, limit, fix)
        }
        Some(s) if s.frequencies.is_empty() => {
            check(subject, Status::Fail, format!("a copy setting for {region} copies no snapshots"), limit, fix)
        }
        Some(s) => {
            let oplogs = if s.should_copy_oplogs { ", with oplogs" } else { "" };
            check(subject, Status::Ok, format!("{} snapshots copied{oplogs}", s.frequencies.join(", ")), limit, "")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::atlas::CopySetting;

    fn need(pit: bool, snapshot: bool) -> ClusterNeed {
        ClusterNeed {
            project: "p".into(),
            cluster: "c".into(),
            pit,
            snapshot,
            dr_regions: vec!["AP_NORTHEAST_1".into()],
            steps: vec!["s".into()],
        }
    }

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn windows_snapshots_and_copies_table() {
        let rpo = Some(Duration::from_secs(300));
        assert_eq!(window(&need(true, false), Some(7.0), rpo).status, Status::Ok);
        let short = window(&need(true, false), Some(1.0), Some(48 * H));
        assert_eq!(short.status, Status::Fail);
        assert!(short.fix.contains("at least 2 days"), "{short:?}");
        assert_eq!(window(&need(false, true), Some(1.0), Some(48 * H)).status, Status::Warn);
        assert_eq!(window(&need(true, false), Some(1.0), None).status, Status::Ok);

        let now = 10 * 3_600_000;
        let two_h = Some(("s1".to_string(), now - 2 * 3_600_000));
        let c = snapshot_age(&need(false, true), two_h.clone(), rpo, now);
        assert_eq!((c.status, c.measured.as_str()), (Status::Fail, "s1 taken 2h ago"));
        assert_eq!(snapshot_age(&need(true, false), two_h.clone(), rpo, now).status, Status::Warn);
        assert_eq!(snapshot_age(&need(false, true), two_h, Some(3 * H), now).status, Status::Ok);
        assert_eq!(snapshot_age(&need(false, false), None, rpo, now).status, Status::Fail);

        let copy = |region: &str, freq: &[&str]| CopySetting {
            cloud_provider: "AWS".into(),
            region_name: region.into(),
            frequencies: freq.iter().map(|s| s.to_string()).collect(),
            should_copy_oplogs: true,
        };
        let n = need(false, true);
        assert_eq!(copies(&n, "AP_NORTHEAST_1", &[copy("AP_NORTHEAST_1", &["HOURLY"])]).status, Status::Ok);
        let none = copies(&n, "AP_NORTHEAST_1", &[copy("EU_WEST_1", &["HOURLY"])]);
        assert_eq!(none.status, Status::Fail);
        assert!(none.fix.starts_with("add a copy setting for AP_NORTHEAST_1 to the cluster's backup policy"));
        assert!(none.measured.contains("EU_WEST_1"));
        assert_eq!(copies(&n, "AP_NORTHEAST_1", &[copy("AP_NORTHEAST_1", &[])]).status, Status::Fail);
    }

    #[test]
    fn pit_off_fails_only_for_point_in_time_runbooks() {
        let off = ClusterBackup {
            name: "c".into(),
            state: "IDLE".into(),
            backup_enabled: true,
            pit_enabled: false,
            regions: vec![],
        };
        assert_eq!(pit(&need(true, false), &off).status, Status::Fail);
        assert_eq!(pit(&need(false, true), &off).status, Status::Warn);
        assert!(
            pit(&need(true, false), &off).fix.starts_with("turn on Continuous Cloud Backup for cluster c in project p")
        );
        assert_eq!(backup(&need(true, false), &off).status, Status::Ok);
    }
}
