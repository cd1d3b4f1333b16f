//! Every action's arguments as a typed struct, and the outputs it promises.
//!
//! The registry (`crate::registry`) names each action's struct: a step's
//! `with:` is read into it (templates stand in for numbers and booleans), so
//! a wrong or misspelt argument is a `runbook check` error with its
//! position.
//!
//! The performers live elsewhere: in the coordinator for coordinator
//! actions, in the agent for agent actions.

use crate::registry;
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
    /// What the Redis runbooks (redis-aof, redis-rdb) would find on the host
    /// now, changing nothing: whether Redis answers and has the AOF on, the
    /// AOF's manifest, its size against the free space, and the RDB backups
    /// in `backup_dir` (none looked at without it) whose names match
    /// `backup_pattern` (default `dump-*.rdb`), as `file.newest` finds them.
    RedisReadiness {
        instance: String,
        #[serde(default)] backup_dir: Option<String>,
        #[serde(default)] backup_pattern: Option<String>,
    }
    RedisConfigSet { instance: String, parameter: String, value: String, #[serde(default)] persist: Option<bool> }
    RedisDeletePattern {
        instance: String, pattern: String, max_keys: u64,
        #[serde(default)] dry_run: Option<bool>,
        #[serde(default)] count: Option<u32>,
    }
    FileCopy { from: String, to: String }
    FileNewest { dir: String, pattern: String }
    /// Run a built-in runbook as a child run (same mode, incident time and
    /// environment as its parent, started once per step attempt: the key is
    /// the idempotency key) and wait for it; `params` are the child's.
    /// Outputs: `run_id`, `status` (the child's), `recovered_in_s` (from
    /// the child's incident to its recovery) and `rto_s` (its RTO target).
    RunbookRun { runbook: String, #[serde(default)] params: Map<String> }
}

/// `wait`: its duration must parse (unless a template fills it in).
pub(crate) fn check_wait(with: &Node) -> Result<(), yaml::Error> {
    let w: Wait = yaml::from_node(with, true)?;
    if !w.duration.contains("{{") {
        crate::duration::parse(&w.duration)
            .map_err(|e| yaml::Error::at(with.get("duration").map_or(with.pos, |n| n.pos), e.to_string()))?;
    }
    Ok(())
}

/// `checklist`: an item's automated check is a coordinator action with its
/// own arguments.
pub(crate) fn check_checklist(with: &Node) -> Result<(), yaml::Error> {
    let c: Checklist = yaml::from_node(with, true)?;
    let Some(crate::yaml::Kind::Seq(items)) = with.get("items").map(|n| &n.kind) else { return Ok(()) };
    for (item, node) in c.items.iter().zip(items) {
        let Some(check) = &item.check else { continue };
        let check_node = node.get("check").unwrap_or(node);
        let action = registry::get(&check.action).filter(|a| a.integration().is_some());
        let Some(action) = action else {
            return Err(yaml::Error::at(
                check_node.get("action").map_or(check_node.pos, |n| n.pos),
                format!("checklist checks run in the coordinator; \"{}\" is not a coordinator action", check.action),
            ));
        };
        let empty = Node { pos: check_node.pos, kind: crate::yaml::Kind::Map(vec![]) };
        action.check_args(check_node.get("with").unwrap_or(&empty))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(action: &str, with: &str) -> Result<(), String> {
        let action = registry::get(action).unwrap();
        action.check_args(&yaml::parse(with).unwrap()).map_err(|e| e.to_string())
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
