//! `atlas.take_snapshot`, and which snapshots a restore may use.

use super::actions::{IfEmpty, Outputs, check_cluster, check_project, outputs, parse_rfc3339, str_of};
use super::client::{Deadline, Endpoint};
use super::{Atlas, Error};
use ripcord_engine::actions as args;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde_json::{Value as J, json};
use tracing::info;

/// Retention of snapshots taken by `atlas.take_snapshot`.
const SNAPSHOT_RETENTION_DAYS: u32 = 7;

impl Atlas {
    /// Takes a snapshot (or finds the one an earlier attempt of the step
    /// took) and waits until it is complete, i.e. usable for a restore.
    pub(super) async fn take_snapshot(
        &self,
        a: &args::AtlasTakeSnapshot,
        key: &Key,
        d: Deadline,
    ) -> Result<Outputs, Error> {
        check_project(&a.project)?;
        check_cluster("cluster", &a.cluster)?;
        let parts = [a.project.as_str(), a.cluster.as_str()];
        let id = self.find_or_take_snapshot(a, key, d).await?;
        if id.is_empty() {
            return Err(Error::Protocol { what: "take snapshot".into(), reason: "the snapshot has no id".into() });
        }
        let mut poll = self.poll(d);
        loop {
            let snapshots = self.client.list_all(Endpoint::ListSnapshots, &parts, d).await?;
            let s = snapshots.iter().find(|s| str_of(&s["id"]) == id);
            let status = s.map(|s| str_of(&s["status"])).unwrap_or_default();
            if s.is_some_and(snapshot_complete) {
                return Ok(outputs([("snapshot_id", Value::str(id))]));
            }
            if status == "failed" {
                return Err(Error::Refused(format!("snapshot {id} of {} failed", a.cluster)));
            }
            if !poll.sleep().await {
                return Err(Error::Timeout(format!(
                    "snapshot {id} of {} is still {} after {}",
                    a.cluster,
                    status.if_empty("pending"),
                    poll.waited()
                )));
            }
        }
    }

    /// The id of the snapshot an earlier try or attempt of this step took
    /// (its description carries a marker), or of a new one; looks again
    /// before every retry.
    async fn find_or_take_snapshot(
        &self,
        a: &args::AtlasTakeSnapshot,
        key: &Key,
        d: Deadline,
    ) -> Result<String, Error> {
        let marker = format!("[ripcord {}/{}]", key.run, key.step);
        let text = a.description.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("taken by ripcord");
        let body = json!({ "description": format!("{text} {marker}"), "retentionInDays": SNAPSHOT_RETENTION_DAYS });
        let parts = [a.project.as_str(), a.cluster.as_str()];
        let mut failures = 0u32;
        loop {
            let snapshots = self.client.list_all(Endpoint::ListSnapshots, &parts, d).await?;
            if let Some(s) = snapshots.iter().find(|s| str_of(&s["description"]).contains(&marker)) {
                info!(key = %key, snapshot = %str_of(&s["id"]), "reusing the snapshot an earlier attempt took");
                return Ok(str_of(&s["id"]));
            }
            match self.client.call(Endpoint::TakeSnapshot, &parts, &[], Some(&body), d).await {
                Ok(s) => {
                    info!(key = %key, cluster = %a.cluster, snapshot = %str_of(&s["id"]), "atlas snapshot started");
                    return Ok(str_of(&s["id"]));
                }
                Err(e) if e.retryable() => {
                    let Some(delay) = self.client.retry.wait(failures, None, d) else { return Err(e) };
                    failures += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A snapshot is usable for a restore once it is complete.
pub(super) fn snapshot_complete(s: &J) -> bool {
    let status = str_of(&s["status"]);
    !str_of(&s["createdAt"]).is_empty() && (status.is_empty() || status == "completed")
}

/// The newest complete snapshot.
pub(super) fn latest_snapshot(snapshots: &[J]) -> Option<J> {
    snapshots
        .iter()
        .filter(|s| snapshot_complete(s))
        .max_by_key(|s| parse_rfc3339(&str_of(&s["createdAt"])).unwrap_or(i64::MIN))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_complete_snapshot_is_chosen() {
        let snaps = [
            json!({"id": "a", "createdAt": "2024-05-01T12:00:00Z", "status": "completed"}),
            json!({"id": "b", "createdAt": "2024-05-02T12:00:00Z"}),
            json!({"id": "c", "createdAt": "2024-05-03T12:00:00Z", "status": "inProgress"}),
            json!({"id": "d", "status": "queued"}),
        ];
        assert_eq!(latest_snapshot(&snaps).map(|s| str_of(&s["id"])).as_deref(), Some("b"));
        assert!(!snapshot_complete(&snaps[2]) && !snapshot_complete(&snaps[3]));
        assert_eq!(latest_snapshot(&snaps[2..]), None);
    }
}
