//! Restore actions: `atlas.pitr_restore`, `atlas.snapshot_restore` and
//! `atlas.wait_restore`. A restore wipes its target, so the target must be
//! another cluster, exist, be IDLE and run the backup's MongoDB major
//! version. A restore is started once: before every (re)try the action looks
//! for the job an earlier try or attempt started.

use super::actions::{
    IfEmpty, Outputs, check_cluster, check_id, check_project, format_rfc3339, outputs, parse_rfc3339, str_of, unix_now,
};
use super::client::{Deadline, Endpoint};
use super::clusters::{major_of, major_version};
use super::snapshots::{latest_snapshot, snapshot_complete};
use super::{Atlas, Error};
use ripcord_engine::actions as args;
use ripcord_engine::duration::Human;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde_json::{Value as J, json};
use std::future::Future;
use tracing::{debug, info, warn};

/// The names every restore takes: its project, and the clusters it reads
/// from and writes to.
fn check_restore(project: &str, source: &str, target: &str) -> Result<(), Error> {
    check_project(project)?;
    check_cluster("source", source)?;
    check_cluster("target", target)
}

impl Atlas {
    pub(super) async fn pitr_restore(
        &self,
        a: &args::AtlasPitrRestore,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_restore(&a.project, &a.source, &a.target)?;
        if a.source == a.target {
            return Err(onto_itself(&a.source));
        }
        let at = parse_rfc3339(&a.at).map_err(|e| Error::Refused(format!("at: {e}")))?;
        if at > unix_now() {
            return Err(Error::Refused(format!("at: {} is in the future", a.at)));
        }
        let want = Wanted { target_project: a.project.clone(), target: a.target.clone(), what: Point::Time(at) };
        let prepare = self.pitr_body(a, at, d);
        let job = self.start_restore(key, &a.project, &a.source, &want, prepare, d).await?;
        Ok(outputs([
            ("job_id", Value::str(str_of(&job["id"]))),
            ("target", Value::str(a.target.clone())),
            ("restore_point", Value::str(format_rfc3339(at))),
            ("snapshot_id", job["snapshotId"].as_str().map_or(Value::Null, Value::str)),
        ]))
    }

    /// The checks of a point-in-time restore to `at`, answering its request body.
    async fn pitr_body(&self, a: &args::AtlasPitrRestore, at: i64, d: Deadline) -> Result<J, Error> {
        let source = self.client.cluster(&a.project, &a.source, d).await?;
        if source["pitEnabled"] == J::Bool(false) {
            return Err(Error::Refused(format!(
                "cluster {} has continuous cloud backup off: no point-in-time restore is possible; \
                 use atlas.snapshot_restore",
                a.source
            )));
        }
        if let Ok(r) = self.client.call(Endpoint::BackupSchedule, &[&a.project, &a.source], &[], None, d).await
            && let Some(days) = r["restoreWindowDays"].as_f64()
            && (days * 86_400.0) as i64 + at < unix_now()
        {
            return Err(Error::Refused(format!(
                "at: {} is older than the {days}-day point-in-time window of {}",
                a.at, a.source
            )));
        }
        self.check_target(&a.project, &a.target, &major_of(&source), &a.source, d).await?;
        Ok(json!({
            "deliveryType": "pointInTime",
            "pointInTimeUTCSeconds": at,
            "targetClusterName": a.target,
            "targetGroupId": a.project,
        }))
    }

    pub(super) async fn snapshot_restore(
        &self,
        a: &args::AtlasSnapshotRestore,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_restore(&a.project, &a.source, &a.target)?;
        let target_project = a.target_project.clone().unwrap_or_else(|| a.project.clone());
        check_project(&target_project)?;
        if a.source == a.target && target_project == a.project {
            return Err(onto_itself(&a.source));
        }
        let named = match a.snapshot.as_deref().map(str::trim) {
            None | Some("") | Some("latest") => None,
            Some(id) => {
                check_id("snapshot", id)?;
                Some(id.to_string())
            }
        };
        let want = Wanted {
            target_project: target_project.clone(),
            target: a.target.clone(),
            what: Point::Snapshot(named.clone()),
        };
        let prepare = self.snapshot_body(a, &target_project, named.as_deref(), d);
        let job = self.start_restore(key, &a.project, &a.source, &want, prepare, d).await?;
        let snapshot_id = str_of(&job["snapshotId"]);
        let snapshots = self.client.list_all(Endpoint::ListSnapshots, &[&a.project, &a.source], d).await?;
        let restore_point = snapshots
            .iter()
            .find(|s| str_of(&s["id"]) == snapshot_id)
            .map(|s| str_of(&s["createdAt"]))
            .unwrap_or_default();
        Ok(outputs([
            ("job_id", Value::str(str_of(&job["id"]))),
            ("target", Value::str(a.target.clone())),
            ("snapshot_id", Value::str(snapshot_id)),
            ("restore_point", Value::str(restore_point)),
        ]))
    }

    /// The checks of a restore of the `named` (else the latest) snapshot,
    /// answering its request body.
    async fn snapshot_body(
        &self,
        a: &args::AtlasSnapshotRestore,
        target_project: &str,
        named: Option<&str>,
        d: Deadline,
    ) -> Result<J, Error> {
        let snapshots = self.client.list_all(Endpoint::ListSnapshots, &[&a.project, &a.source], d).await?;
        let chosen = match named {
            Some(id) => snapshots.iter().find(|s| str_of(&s["id"]) == id).cloned().ok_or_else(|| {
                Error::Refused(format!("cluster {} has no snapshot {id} in project {}", a.source, a.project))
            })?,
            None => latest_snapshot(&snapshots)
                .ok_or_else(|| Error::Refused(format!("cluster {} has no completed snapshot to restore", a.source)))?,
        };
        if !snapshot_complete(&chosen) {
            return Err(Error::Refused(format!(
                "snapshot {} of {} is not complete yet (status {})",
                str_of(&chosen["id"]),
                a.source,
                str_of(&chosen["status"]).if_empty("unknown")
            )));
        }
        let source = self.client.cluster(&a.project, &a.source, d).await?;
        let major = chosen["mongodVersion"].as_str().map(major_version).unwrap_or_else(|| major_of(&source));
        self.check_target(target_project, &a.target, &major, &a.source, d).await?;
        Ok(json!({
            "deliveryType": "automated",
            "snapshotId": str_of(&chosen["id"]),
            "targetClusterName": a.target,
            "targetGroupId": target_project,
        }))
    }

    /// The target of a restore must exist, be IDLE and run `major`.
    async fn check_target(
        &self,
        project: &str,
        target: &str,
        major: &str,
        source: &str,
        d: Deadline,
    ) -> Result<(), Error> {
        let t = self.client.get_cluster(project, target, d).await?.ok_or_else(|| {
            Error::Refused(format!(
                "the restore target {target} does not exist in project {project}: create it first \
                 (atlas.create_cluster_like)"
            ))
        })?;
        let state = str_of(&t["stateName"]);
        if state != "IDLE" {
            return Err(Error::Refused(format!(
                "the restore target {target} is {state}: wait for IDLE first (atlas.wait_cluster)"
            )));
        }
        let have = major_of(&t);
        if !major.is_empty() && !have.is_empty() && have != major {
            return Err(Error::Refused(format!(
                "the restore target {target} runs MongoDB {have} but the backup of {source} is {major}: \
                 a restore needs the same major version"
            )));
        }
        Ok(())
    }

    /// Finds the restore job an earlier try or attempt started, or runs
    /// `prepare` (the checks, answering the request body) and starts one;
    /// looks again before every retry.
    async fn start_restore(
        &self,
        key: &Key,
        project: &str,
        source: &str,
        want: &Wanted,
        prepare: impl Future<Output = Result<J, Error>>,
        d: Deadline,
    ) -> Result<J, Error> {
        let mut prepare = Some(prepare);
        let mut body = None;
        let mut failures = 0u32;
        loop {
            let jobs = self.client.list_all(Endpoint::ListRestoreJobs, &[project, source], d).await?;
            if let Some(job) = jobs.iter().rev().find(|j| want.matches(j)) {
                info!(key = %key, job = %str_of(&job["id"]), source, target = %want.target,
                    "reusing the restore job an earlier attempt started");
                return Ok(job.clone());
            }
            if let Some(p) = prepare.take() {
                body = Some(p.await?);
            }
            match self.client.call(Endpoint::StartRestore, &[project, source], &[], body.as_ref(), d).await {
                Ok(job) => {
                    info!(key = %key, job = %str_of(&job["id"]), source, target = %want.target,
                        started_at = %format_rfc3339(unix_now()), "atlas restore job started");
                    return Ok(job);
                }
                Err(e) if e.retryable() => {
                    let Some(delay) = self.client.retry.wait(failures, None, d) else { return Err(e) };
                    warn!(key = %key, error = %e, retry_in = %Human(delay),
                        "starting the atlas restore failed, looking again before retrying");
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn wait_restore(&self, a: &args::AtlasWaitRestore, d: Deadline) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("source", &a.source)?;
        check_id("job_id", &a.job_id)?;
        let mut poll = self.poll(d);
        loop {
            let parts = [a.project.as_str(), a.source.as_str(), a.job_id.as_str()];
            let job = self.client.call(Endpoint::GetRestoreJob, &parts, &[], None, d).await?;
            let target = str_of(&job["targetClusterName"]);
            let what = format!("restore job {} from {} to {}", a.job_id, a.source, target.as_str().if_empty("?"));
            if let Some(why) = job_failure(&job) {
                return Err(Error::Refused(format!("{what} failed: {why}{}", job_detail(&job))));
            }
            if let Some(finished) = job["finishedAt"].as_str().filter(|s| !s.is_empty()) {
                info!(job = %a.job_id, source = %a.source, target = %target, finished_at = finished,
                    waited = %poll.waited(), "atlas restore job finished");
                return Ok(outputs([("finished_at", Value::str(finished)), ("job_id", Value::str(a.job_id.clone()))]));
            }
            debug!(job = %a.job_id, "waiting for atlas restore job");
            if !poll.sleep().await {
                return Err(Error::Timeout(format!("{what} has not finished after {}", poll.waited())));
            }
        }
    }
}

fn onto_itself(cluster: &str) -> Error {
    Error::Refused(format!(
        "refusing to restore {cluster} onto itself: a restore wipes its target; restore to a new cluster"
    ))
}

/// Why a restore job will not finish, if Atlas says it will not.
fn job_failure(job: &J) -> Option<String> {
    if job["failed"] == J::Bool(true) {
        return Some("Atlas marked it failed".into());
    }
    if job["cancelled"] == J::Bool(true) {
        return Some("it was cancelled".into());
    }
    if job["expired"] == J::Bool(true) {
        let at = str_of(&job["expiresAt"]);
        return Some(if at.is_empty() { "it expired".into() } else { format!("it expired at {at}") });
    }
    None
}

/// The job's delivery, snapshot, point in time and finish, for messages.
fn job_detail(job: &J) -> String {
    let mut parts = Vec::new();
    for f in ["deliveryType", "snapshotId", "pointInTimeUTCSeconds", "finishedAt"] {
        match &job[f] {
            J::Null => {}
            J::String(s) if s.is_empty() => {}
            v => parts.push(format!("{f} {}", v.as_str().map_or_else(|| v.to_string(), str::to_string))),
        }
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

/// What a restore restores.
enum Point {
    Time(i64),
    /// A named snapshot, or None for "the latest".
    Snapshot(Option<String>),
}

/// The restore a step asks for, to recognise the job an earlier attempt started.
struct Wanted {
    target_project: String,
    target: String,
    what: Point,
}

impl Wanted {
    /// Is `job` the one an earlier attempt started for this restore? Failed,
    /// cancelled and expired jobs are not: a new attempt starts a new job.
    fn matches(&self, job: &J) -> bool {
        if str_of(&job["targetClusterName"]) != self.target {
            return false;
        }
        if let Some(g) = job["targetGroupId"].as_str()
            && g != self.target_project
        {
            return false;
        }
        if ["failed", "cancelled", "expired"].iter().any(|f| job[*f] == J::Bool(true)) {
            return false;
        }
        let delivery = str_of(&job["deliveryType"]);
        match &self.what {
            Point::Time(t) => delivery == "pointInTime" && job["pointInTimeUTCSeconds"].as_i64() == Some(*t),
            Point::Snapshot(None) => delivery == "automated",
            Point::Snapshot(Some(id)) => delivery == "automated" && str_of(&job["snapshotId"]) == *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_jobs_match_by_target_and_point() {
        let want = Wanted { target_project: "p".into(), target: "t".into(), what: Point::Time(100) };
        let job = |extra: J| {
            let mut j = json!({"id": "j", "deliveryType": "pointInTime", "pointInTimeUTCSeconds": 100,
                "targetClusterName": "t", "targetGroupId": "p"});
            if let (J::Object(a), J::Object(b)) = (&mut j, extra) {
                a.extend(b);
            }
            j
        };
        assert!(want.matches(&job(json!({}))));
        assert!(want.matches(&job(json!({"finishedAt": "2024-01-01T00:00:00Z"}))));
        assert!(!want.matches(&job(json!({"pointInTimeUTCSeconds": 101}))));
        assert!(!want.matches(&job(json!({"targetClusterName": "u"}))));
        assert!(!want.matches(&job(json!({"failed": true}))));
        assert!(!want.matches(&job(json!({"expired": true}))));
        assert!(!want.matches(&job(json!({"deliveryType": "automated"}))));
    }

    #[test]
    fn failed_jobs_say_why() {
        assert_eq!(job_failure(&json!({"failed": false, "finishedAt": "x"})), None);
        assert_eq!(job_failure(&json!({"failed": true})).as_deref(), Some("Atlas marked it failed"));
        assert_eq!(job_failure(&json!({"cancelled": true})).as_deref(), Some("it was cancelled"));
        assert_eq!(
            job_failure(&json!({"expired": true, "expiresAt": "2024-01-01T00:00:00Z"})).as_deref(),
            Some("it expired at 2024-01-01T00:00:00Z")
        );
        assert_eq!(job_detail(&json!({"deliveryType": "automated", "snapshotId": ""})), " (deliveryType automated)");
    }
}
