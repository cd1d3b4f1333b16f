//! Every action's arguments as a typed struct, and the outputs it promises.
//!
//! `check_args` reads a step's `with:` into the action's struct (templates
//! stand in for numbers and booleans), so a wrong or misspelt argument is a
//! `runbook check` error with its position. `outputs` lists what later steps
//! may reference as `{{ steps.ID.OUTPUT }}`.
//!
//! The performers live elsewhere: in the coordinator for coordinator
//! actions, in the agent for agent actions.

use crate::yaml::{self, Node};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

type Map<V> = BTreeMap<String, V>;

macro_rules! args {
    ($( $(#[$m:meta])* $name:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        pub struct $name { $( $(#[$fm])* pub $field: $ty ),* }
    )*};
}

args! {
    Noop {}
    /// Wait a fixed time.
    Wait { duration: String }
    /// A manual gate: somebody with the operator role approves.
    Approve { #[serde(default)] message: Option<String> }
    /// Items a person confirms; an item with `check` is confirmed by an action.
    Checklist { items: Vec<ChecklistItem> }
    ChecklistItem { text: String, #[serde(default)] check: Option<Check> }
    Check { action: String, #[serde(default, rename = "with")] with: Option<IgnoredAny> }
    /// POST a Slack-compatible message (`{"text": …}`) to a webhook.
    Notify { webhook: String, text: String, #[serde(default)] channel: Option<String> }
    /// An HTTP probe: status, JSON fields, latency; retried until healthy within `within`.
    HttpCheck {
        url: String,
        #[serde(default)] method: Option<String>,
        #[serde(default)] headers: Option<Map<String>>,
        #[serde(default)] body: Option<IgnoredAny>,
        #[serde(default)] expect_status: Option<u16>,
        #[serde(default)] expect_json: Option<IgnoredAny>,
        #[serde(default)] max_latency: Option<String>,
        #[serde(default)] within: Option<String>,
        #[serde(default)] interval: Option<String>,
    }
    AtlasCreateClusterLike {
        project: String, like: String, name: String,
        #[serde(default)] region: Option<String>,
        #[serde(default)] instance_size: Option<String>,
    }
    AtlasWaitCluster { project: String, cluster: String, #[serde(default)] state: Option<String> }
    AtlasPitrRestore { project: String, source: String, target: String, at: String }
    AtlasSnapshotRestore {
        project: String, source: String, target: String,
        #[serde(default)] snapshot: Option<String>,
        #[serde(default)] target_project: Option<String>,
    }
    AtlasWaitRestore { project: String, source: String, job_id: String }
    AtlasConnectionString { project: String, cluster: String, #[serde(default)] credentials: Option<String> }
    AtlasTakeSnapshot { project: String, cluster: String, #[serde(default)] description: Option<String> }
    AtlasDeleteCluster { project: String, cluster: String }
    MongoCount {
        uri: String, db: String, collections: Vec<String>,
        #[serde(default)] min: Option<i64>,
        #[serde(default)] baseline: Option<Map<i64>>,
    }
    MongoIndexesCheck { uri: String, db: String, collection: String, indexes: Vec<IndexSpec> }
    /// `key` is a list of one-field mappings, in index order: `[{roomId: 1}, {createdAt: -1}]`.
    IndexSpec { name: String, key: Vec<Map<i64>> }
    MongoRebuildIndex { uri: String, db: String, collection: String, name: String, key: Vec<Map<i64>> }
    MongoNewest { uri: String, db: String, collection: String, #[serde(default)] field: Option<String> }
    AwsUpdateSecret { secret_id: String, set: Map<String>, #[serde(default)] region: Option<String> }
    /// Put back an earlier version's value (e.g. `{{ steps.switch.previous_version_id }}`).
    AwsRestoreSecret { secret_id: String, version_id: String, #[serde(default)] region: Option<String> }
    K8sSetEnv {
        #[serde(default)] namespace: Option<String>, deployment: String,
        #[serde(default)] container: Option<String>, env: Map<String>,
    }
    K8sRolloutRestart { #[serde(default)] namespace: Option<String>, deployment: String, #[serde(default)] wait: Option<bool> }
    K8sRolloutWait { #[serde(default)] namespace: Option<String>, deployment: String, #[serde(default)] timeout: Option<String> }
    K8sLogs {
        #[serde(default)] namespace: Option<String>, deployment: String,
        #[serde(default)] container: Option<String>, #[serde(default)] tail: Option<u32>,
    }
    K8sPodsReady { #[serde(default)] namespace: Option<String>, deployment: String, #[serde(default)] min_ready: Option<u32> }
    Service { service: String }
    Compose { project: String, service: String }
    ComposeLogs { project: String, service: String, #[serde(default)] tail: Option<u32> }
    RedisInstance { instance: String }
    RedisRestoreRdb { instance: String, #[serde(default)] backup: Option<String> }
    RedisInfo { instance: String, #[serde(default)] section: Option<String> }
    RedisConfigSet { instance: String, parameter: String, value: String, #[serde(default)] persist: Option<bool> }
    RedisDeletePattern {
        instance: String, pattern: String, max_keys: u64,
        #[serde(default)] dry_run: Option<bool>,
        #[serde(default)] count: Option<u32>,
    }
    FileCopy { from: String, to: String }
    FileNewest { dir: String, pattern: String }
}

fn read<T: for<'de> Deserialize<'de>>(with: &Node) -> Result<(), yaml::Error> {
    yaml::from_node::<T>(with, true).map(|_| ())
}

/// Reads `with` as the arguments of `action`. Unknown actions are the
/// caller's concern (see `catalogue`).
pub fn check_args(action: &str, with: &Node) -> Result<(), yaml::Error> {
    match action {
        "noop" => read::<Noop>(with),
        "wait" => {
            let w: Wait = yaml::from_node(with, true)?;
            if !w.duration.contains("{{") {
                crate::duration::parse(&w.duration)
                    .map_err(|e| yaml::Error::at(with.get("duration").map_or(with.pos, |n| n.pos), e.to_string()))?;
            }
            Ok(())
        }
        "approve" => read::<Approve>(with),
        "checklist" => {
            let c: Checklist = yaml::from_node(with, true)?;
            if let Some(crate::yaml::Kind::Seq(items)) = with.get("items").map(|n| &n.kind) {
                for (item, node) in c.items.iter().zip(items) {
                    if let Some(check) = &item.check {
                        let check_node = node.get("check").unwrap_or(node);
                        if crate::catalogue::place(&check.action) != Some(crate::catalogue::Place::Coordinator)
                            && crate::catalogue::place(&check.action) != Some(crate::catalogue::Place::Either)
                        {
                            return Err(yaml::Error::at(
                                check_node.get("action").map_or(check_node.pos, |n| n.pos),
                                format!(
                                    "checklist checks run in the coordinator; \"{}\" is not a coordinator action",
                                    check.action
                                ),
                            ));
                        }
                        let empty = Node { pos: check_node.pos, kind: crate::yaml::Kind::Map(vec![]) };
                        check_args(&check.action, check_node.get("with").unwrap_or(&empty))?;
                    }
                }
            }
            Ok(())
        }
        "notify" => read::<Notify>(with),
        "http.check" => read::<HttpCheck>(with),
        "atlas.create_cluster_like" => read::<AtlasCreateClusterLike>(with),
        "atlas.wait_cluster" => read::<AtlasWaitCluster>(with),
        "atlas.pitr_restore" => read::<AtlasPitrRestore>(with),
        "atlas.snapshot_restore" => read::<AtlasSnapshotRestore>(with),
        "atlas.wait_restore" => read::<AtlasWaitRestore>(with),
        "atlas.connection_string" => read::<AtlasConnectionString>(with),
        "atlas.take_snapshot" => read::<AtlasTakeSnapshot>(with),
        "atlas.delete_cluster" => read::<AtlasDeleteCluster>(with),
        "mongo.count" => read::<MongoCount>(with),
        "mongo.indexes_check" => read::<MongoIndexesCheck>(with),
        "mongo.rebuild_index" => read::<MongoRebuildIndex>(with),
        "mongo.newest" => read::<MongoNewest>(with),
        "aws.update_secret" => read::<AwsUpdateSecret>(with),
        "aws.restore_secret" => read::<AwsRestoreSecret>(with),
        "k8s.set_env" => read::<K8sSetEnv>(with),
        "k8s.rollout_restart" => read::<K8sRolloutRestart>(with),
        "k8s.rollout_wait" => read::<K8sRolloutWait>(with),
        "k8s.logs" => read::<K8sLogs>(with),
        "k8s.pods_ready" => read::<K8sPodsReady>(with),
        "service.stop" | "service.start" | "service.restart" | "service.status" => read::<Service>(with),
        "compose.restart" | "compose.stop" | "compose.start" => read::<Compose>(with),
        "compose.logs" => read::<ComposeLogs>(with),
        "redis.check_aof" | "redis.ping" | "redis.dbsize" => read::<RedisInstance>(with),
        "redis.restore_rdb" => read::<RedisRestoreRdb>(with),
        "redis.info" => read::<RedisInfo>(with),
        "redis.config_set" => read::<RedisConfigSet>(with),
        "redis.delete_pattern" => read::<RedisDeletePattern>(with),
        "file.copy" => read::<FileCopy>(with),
        "file.newest" => read::<FileNewest>(with),
        _ => Ok(()),
    }
}

/// What a step of `action` produces, for `{{ steps.ID.OUTPUT }}`.
pub fn outputs(action: &str) -> &'static [&'static str] {
    match action {
        "approve" => &["approved_by", "note"],
        "checklist" => &["confirmed_by"],
        "notify" => &["status"],
        "http.check" => &["status", "latency_ms", "body", "attempts"],
        "atlas.create_cluster_like" => &["name", "state", "region", "mongo_version"],
        "atlas.wait_cluster" => &["state"],
        "atlas.pitr_restore" | "atlas.snapshot_restore" => &["job_id", "target", "snapshot_id", "restore_point"],
        "atlas.wait_restore" => &["finished_at", "job_id"],
        "atlas.connection_string" => &["connection_string", "host"],
        "atlas.take_snapshot" => &["snapshot_id"],
        "atlas.delete_cluster" => &["deleted"],
        "mongo.count" => &["counts", "total"],
        "mongo.indexes_check" => &["ok", "missing", "problems", "live"],
        "mongo.rebuild_index" => &["name", "dropped"],
        "mongo.newest" => &["newest_at", "rpo_seconds", "age_seconds"],
        "aws.update_secret" => &["version_id", "previous_version_id", "keys_changed"],
        "aws.restore_secret" => &["version_id", "restored_from", "replaced_version_id", "unchanged"],
        "k8s.set_env" => &["generation", "changed"],
        "k8s.rollout_restart" => &["restarted_at"],
        "k8s.rollout_wait" => &["ready_replicas"],
        "k8s.logs" => &["lines"],
        "k8s.pods_ready" => &["ready", "total"],
        "service.stop" | "service.start" | "service.restart" | "service.status" => &["state"],
        "compose.logs" => &["lines"],
        "redis.check_aof" => &["bytes_discarded", "keys_before", "keys_after", "backup_path"],
        "redis.restore_rdb" => &["backup", "backup_age_seconds", "keys"],
        "redis.ping" => &["pong"],
        "redis.dbsize" => &["keys"],
        "redis.info" => &[
            "used_memory",
            "used_memory_human",
            "maxmemory",
            "maxmemory_policy",
            "instantaneous_ops_per_sec",
            "fields",
        ],
        "redis.config_set" => &["previous"],
        "redis.delete_pattern" => &["matched", "deleted"],
        "file.copy" => &["sha256", "bytes"],
        "file.newest" => &["path", "age_seconds"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(action: &str, with: &str) -> Result<(), String> {
        check_args(action, &yaml::parse(with).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn argument_errors_name_field_and_position() {
        let table = [
            ("http.check", "url: http://x\nexpect_status: 200\n", Ok(())),
            ("http.check", "url: http://x\nexpect_status: \"{{ params.code }}\"\n", Ok(())),
            (
                "http.check",
                "url: http://x\nexpect_status: ok\n",
                Err("2:16: invalid type: string \"ok\", expected u16"),
            ),
            ("http.check", "uri: http://x\n", Err("1:1: unknown field `uri` (did you mean `url`?)")),
            ("wait", "duration: 5 minutes\n", Err("1:11: bad duration \"5 minutes\"")),
            ("redis.delete_pattern", "instance: cache\npattern: 'temp:*'\n", Err("1:1: missing field `max_keys`")),
            (
                "checklist",
                "items:\n  - text: a\n    check: {action: redis.ping}\n",
                Err("3:21: checklist checks run in the coordinator"),
            ),
        ];
        for (action, with, expect) in table {
            let got = check(action, with);
            match (expect, &got) {
                (Ok(()), Ok(())) => {}
                (Err(prefix), Err(e)) if e.starts_with(prefix) => {}
                _ => panic!("{action} {with:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }
}
