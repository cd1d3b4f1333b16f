//! Read-only calls for readiness checks (`crate::readiness`): the project,
//! a cluster's backup settings, its backup schedule (point-in-time window
//! and copies to other regions), its newest snapshot, and its connection
//! string with a database user's password in it. None of them changes
//! anything in Atlas. They go through the same endpoint table, retries and
//! error mapping as the actions; a refused key or service account comes
//! back as [`Error::Credentials`].

use super::actions::{IfEmpty, check_cluster, check_project, parse_rfc3339, str_of};
use super::client::{Deadline, Endpoint};
use super::snapshots::latest_snapshot;
use super::{Atlas, Error};
use crate::credentials::{Credentials, Secret};
use ripcord_engine::actions as args;
use ripcord_engine::value::Value;
use serde_json::Value as J;
use std::time::{Duration, Instant};

/// How long one read may take, retries included.
const READ_DEADLINE: Duration = Duration::from_secs(60);

/// An Atlas project (group), as readiness reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
}

/// What readiness needs to know about a cluster's backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBackup {
    pub name: String,
    /// `stateName`: IDLE, CREATING, UPDATING, DELETING, REPAIRING.
    pub state: String,
    /// Cloud Backup: `backupEnabled` (the v2 cluster resource), else the
    /// older `providerBackupEnabled`.
    pub backup_enabled: bool,
    /// Continuous Cloud Backup (point-in-time restores): `pitEnabled`.
    pub pit_enabled: bool,
    /// The regions of its nodes (`regionName`), highest priority first.
    pub regions: Vec<String>,
}

/// A cluster's backup schedule (`GET …/backup/schedule`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSchedule {
    /// `restoreWindowDays`: how far back a point-in-time restore can go.
    pub restore_window_days: Option<f64>,
    /// `copySettings`: where snapshots (and oplogs) are copied.
    pub copy_settings: Vec<CopySetting>,
}

/// One `copySettings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySetting {
    /// `cloudProvider`: AWS, AZURE, GCP.
    pub cloud_provider: String,
    /// `regionName`, Atlas style (`AP_NORTHEAST_1`).
    pub region_name: String,
    /// `frequencies`: the snapshot kinds copied (HOURLY, DAILY, …, ON_DEMAND).
    pub frequencies: Vec<String>,
    /// `shouldCopyOplogs`: point-in-time restores in that region too.
    pub should_copy_oplogs: bool,
}

/// A completed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: String,
    /// `createdAt`, unix milliseconds.
    pub created_at_ms: i64,
}

impl Atlas {
    fn read_deadline() -> Deadline {
        Some(Instant::now() + READ_DEADLINE)
    }

    /// `text` without any secret this client knows (client secret, token,
    /// private key): for messages built from its errors.
    pub fn scrub(&self, text: String) -> String {
        self.client.auth.scrub(text)
    }

    /// The credentials this client uses, by name (`service account "…"`,
    /// `API key "…"`), never their secret.
    pub fn who(&self) -> String {
        self.client.auth.who()
    }

    /// `GET /groups/{groupId}`: the cheapest authenticated call.
    pub async fn project(&self, project: &str) -> Result<Project, Error> {
        check_project(project)?;
        let p = self.client.call(Endpoint::GetProject, &[project], &[], None, Self::read_deadline()).await?;
        Ok(Project { id: str_of(&p["id"]).if_empty(project), name: str_of(&p["name"]) })
    }

    /// A cluster's backup settings; None when Atlas has no such cluster.
    pub async fn cluster_backup(&self, project: &str, cluster: &str) -> Result<Option<ClusterBackup>, Error> {
        check_project(project)?;
        check_cluster("cluster", cluster)?;
        let Some(c) = self.client.get_cluster(project, cluster, Self::read_deadline()).await? else {
            return Ok(None);
        };
        Ok(Some(cluster_backup_of(&c, cluster)))
    }

    /// A cluster's backup schedule.
    pub async fn backup_schedule(&self, project: &str, cluster: &str) -> Result<BackupSchedule, Error> {
        check_project(project)?;
        check_cluster("cluster", cluster)?;
        let s =
            self.client.call(Endpoint::BackupSchedule, &[project, cluster], &[], None, Self::read_deadline()).await?;
        Ok(schedule_of(&s))
    }

    /// The newest completed snapshot of a cluster, if any.
    pub async fn newest_snapshot(&self, project: &str, cluster: &str) -> Result<Option<SnapshotInfo>, Error> {
        check_project(project)?;
        check_cluster("cluster", cluster)?;
        let all = self.client.list_all(Endpoint::ListSnapshots, &[project, cluster], Self::read_deadline()).await?;
        Ok(latest_snapshot(&all).and_then(|s| {
            let at = parse_rfc3339(&str_of(&s["createdAt"])).ok()?;
            Some(SnapshotInfo { id: str_of(&s["id"]), created_at_ms: at.saturating_mul(1000) })
        }))
    }

    /// The cluster's connection string with the user and password of
    /// `credential` (a `[credentials.NAME]` in `credentials`) in it, as
    /// `atlas.connection_string` builds it; without a login when
    /// `credential` is None. A secret: never print it.
    pub async fn connection_uri(
        &self,
        project: &str,
        cluster: &str,
        credential: Option<&str>,
        credentials: &Credentials,
    ) -> Result<Secret, Error> {
        let a = args::AtlasConnectionString {
            project: project.to_string(),
            cluster: cluster.to_string(),
            credentials: credential.map(str::to_string),
        };
        let with = self.clone().with_credentials(credentials.clone());
        let out = with.connection_string(&a, Self::read_deadline()).await?;
        match out.get("connection_string") {
            Some(Value::Str(s)) => Ok(Secret::new(s.clone())),
            _ => Err(Error::Protocol {
                what: format!("the connection string of {cluster}"),
                reason: "no connection string".into(),
            }),
        }
    }
}

impl Error {
    /// Atlas refused the key or service account (HTTP 401 or 403, or the
    /// token endpoint said no).
    pub fn is_credentials(&self) -> bool {
        matches!(self, Error::Credentials { .. })
    }
}

fn cluster_backup_of(c: &J, asked: &str) -> ClusterBackup {
    let flag = |k: &str| c.get(k).and_then(J::as_bool);
    let mut regions: Vec<(i64, String)> = c["replicationSpecs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["regionConfigs"].as_array().into_iter().flatten())
        .map(|r| (r["priority"].as_i64().unwrap_or(0), str_of(&r["regionName"])))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    regions.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut names: Vec<String> = Vec::new();
    for (_, r) in regions {
        if !names.contains(&r) {
            names.push(r);
        }
    }
    ClusterBackup {
        name: str_of(&c["name"]).if_empty(asked),
        state: str_of(&c["stateName"]),
        backup_enabled: flag("backupEnabled").or_else(|| flag("providerBackupEnabled")).unwrap_or(false),
        pit_enabled: flag("pitEnabled").unwrap_or(false),
        regions: names,
    }
}

fn schedule_of(s: &J) -> BackupSchedule {
    let copy_settings = s["copySettings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| CopySetting {
            cloud_provider: str_of(&c["cloudProvider"]),
            region_name: str_of(&c["regionName"]),
            frequencies: c["frequencies"].as_array().into_iter().flatten().map(str_of).collect(),
            should_copy_oplogs: c["shouldCopyOplogs"].as_bool().unwrap_or(false),
        })
        .collect();
    BackupSchedule { restore_window_days: s["restoreWindowDays"].as_f64(), copy_settings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backup_settings_and_schedules_are_read_from_atlas_json() {
        let c = json!({
            "name": "chat-prod", "stateName": "IDLE", "backupEnabled": true, "pitEnabled": false,
            "replicationSpecs": [{ "regionConfigs": [
                { "regionName": "US_WEST_2", "priority": 6 },
                { "regionName": "US_EAST_1", "priority": 7 },
            ]}],
        });
        let b = cluster_backup_of(&c, "x");
        assert!(b.backup_enabled && !b.pit_enabled);
        assert_eq!(b.regions, ["US_EAST_1", "US_WEST_2"]);
        let legacy = cluster_backup_of(&json!({"providerBackupEnabled": true}), "x");
        assert!(legacy.backup_enabled && !legacy.pit_enabled);
        assert_eq!(legacy.name, "x");

        let s = schedule_of(&json!({
            "restoreWindowDays": 7,
            "copySettings": [{ "cloudProvider": "AWS", "regionName": "AP_NORTHEAST_1",
                "frequencies": ["HOURLY", "DAILY"], "shouldCopyOplogs": true, "zoneId": "z" }],
        }));
        assert_eq!(s.restore_window_days, Some(7.0));
        assert_eq!(s.copy_settings[0].region_name, "AP_NORTHEAST_1");
        assert_eq!(s.copy_settings[0].frequencies, ["HOURLY", "DAILY"]);
        assert!(s.copy_settings[0].should_copy_oplogs);
        assert_eq!(schedule_of(&json!({})), BackupSchedule { restore_window_days: None, copy_settings: vec![] });
    }
}
