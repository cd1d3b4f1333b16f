//! The one registry of actions: for every action ripcord knows, its name,
//! where it runs, its arguments (a typed struct in [`crate::actions`]), its
//! outputs, whether it may be given credentials, what it does to the world
//! and the config section it needs.
//!
//! Everything else reads this table: `runbook check` (names, arguments,
//! outputs, targets, where credentials may stand), `plan` (config sections),
//! the coordinator's routing and its "configured integrations" answer, and
//! the agent (which actions it may be allowed, which skip the journal).
//! Adding an action is one entry here plus its implementation on the side
//! the entry names; table tests on both sides prove that every entry has
//! one.

use crate::actions as a;
use crate::yaml::{self, Node};
use serde::Deserialize;

/// Where an action is performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// By the engine itself (`wait`, `approve`, `checklist`): never
    /// reaches a performer.
    Engine,
    /// By the coordinator, through one of its integrations.
    Coordinator(Integration),
    /// By the agents a step's `target` selects.
    Agent,
}

/// The coordinator integrations an action can need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Integration {
    /// Built into the coordinator (`noop`).
    Builtin,
    /// Plain HTTP: probes and webhooks.
    Http,
    Atlas,
    Mongo,
    Aws,
    Kube,
    /// Runs of other runbooks (`runbook.run`): the coordinator starts the
    /// child run and waits for it.
    Runs,
}

impl Integration {
    pub const ALL: [Integration; 7] = [
        Integration::Builtin,
        Integration::Http,
        Integration::Atlas,
        Integration::Mongo,
        Integration::Aws,
        Integration::Kube,
        Integration::Runs,
    ];

    /// The coordinator config section that enables it; `None` for those
    /// that are always there.
    pub fn section(self) -> Option<&'static str> {
        match self {
            Integration::Atlas => Some("atlas"),
            Integration::Aws => Some("aws"),
            Integration::Kube => Some("kube"),
            Integration::Builtin | Integration::Http | Integration::Mongo | Integration::Runs => None,
        }
    }

    /// The action-name prefix people know it by (`atlas.*`).
    pub fn name(self) -> &'static str {
        match self {
            Integration::Builtin => "builtin",
            Integration::Http => "http",
            Integration::Atlas => "atlas",
            Integration::Mongo => "mongo",
            Integration::Aws => "aws",
            Integration::Kube => "k8s",
            Integration::Runs => "runbook",
        }
    }
}

/// What an action does to the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    /// Only reads: safe to repeat, safe in any drill.
    ReadOnly,
    /// Changes something that can be changed back (a service restarted, a
    /// setting, a new cluster, a message sent).
    Changes,
    /// Overwrites or deletes data (a restore, a repair, a deletion, a
    /// secret switched): backs up first where it can.
    Destructive,
}

/// One action.
pub struct Action {
    pub name: &'static str,
    pub runs: Runs,
    /// Whether, run by the coordinator, it is given the values of the
    /// credentials its arguments name (the integrations that use one to
    /// reach a service). Everything else only sees tokens.
    pub credentials: bool,
    pub impact: Impact,
    /// What a step of it produces, for `{{ steps.ID.OUTPUT }}`.
    pub outputs: &'static [&'static str],
    /// Reads a step's `with:` as the action's argument struct.
    check: fn(&Node) -> Result<(), yaml::Error>,
}

impl Action {
    /// Reads `with` as this action's arguments: a wrong or misspelt
    /// argument is an error with its position.
    pub fn check_args(&self, with: &Node) -> Result<(), yaml::Error> {
        (self.check)(with)
    }

    /// The integration that performs it, for coordinator actions.
    pub fn integration(&self) -> Option<Integration> {
        match self.runs {
            Runs::Coordinator(i) => Some(i),
            Runs::Engine | Runs::Agent => None,
        }
    }

    /// The coordinator config section it needs, if any.
    pub fn section(&self) -> Option<&'static str> {
        self.integration().and_then(Integration::section)
    }

    pub fn on_agent(&self) -> bool {
        self.runs == Runs::Agent
    }

    pub fn is_read_only(&self) -> bool {
        self.impact == Impact::ReadOnly
    }
}

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action").field("name", &self.name).field("runs", &self.runs).finish_non_exhaustive()
    }
}

fn read<T: for<'de> Deserialize<'de>>(with: &Node) -> Result<(), yaml::Error> {
    yaml::from_node::<T>(with, true).map(|_| ())
}

use Impact::{Changes, Destructive, ReadOnly};
use Integration::{Atlas, Aws, Builtin, Http, Kube, Mongo, Runs as Sub};

macro_rules! registry {
    ($( $name:literal => $runs:expr, $creds:literal, $impact:expr, $check:expr, [$($out:literal),* $(,)?]; )*) => {
        /// Every action ripcord knows.
        pub const ACTIONS: &[Action] = &[$(
            Action { name: $name, runs: $runs, credentials: $creds, impact: $impact, outputs: &[$($out),*], check: $check },
        )*];
    };
}

use Runs::Coordinator as C;

registry! {
    // name                      runs           creds  impact        arguments                                   outputs
    "noop"                    => C(Builtin),   false, ReadOnly,    read::<a::Noop>,                 [];
    "wait"                    => Runs::Engine, false, ReadOnly,    a::check_wait,                   [];
    "approve"                 => Runs::Engine, false, ReadOnly,    read::<a::Approve>,              ["approved_by", "note"];
    "checklist"               => Runs::Engine, false, ReadOnly,    a::check_checklist,              ["confirmed_by"];
    "notify"                  => C(Http),      false, Changes,     read::<a::Notify>,               ["status"];
    "http.check"              => C(Http),      true,  ReadOnly,    read::<a::HttpCheck>,            ["status", "latency_ms", "body", "attempts"];
    "atlas.create_cluster_like" => C(Atlas),   false, Changes,     read::<a::AtlasCreateClusterLike>, ["name", "state", "region", "mongo_version"];
    "atlas.wait_cluster"      => C(Atlas),     false, ReadOnly,    read::<a::AtlasWaitCluster>,     ["state"];
    "atlas.pitr_restore"      => C(Atlas),     false, Destructive, read::<a::AtlasPitrRestore>,     ["job_id", "target", "snapshot_id", "restore_point"];
    "atlas.snapshot_restore"  => C(Atlas),     false, Destructive, read::<a::AtlasSnapshotRestore>, ["job_id", "target", "snapshot_id", "restore_point"];
    "atlas.wait_restore"      => C(Atlas),     false, ReadOnly,    read::<a::AtlasWaitRestore>,     ["finished_at", "job_id"];
    "atlas.connection_string" => C(Atlas),     false, ReadOnly,    read::<a::AtlasConnectionString>, ["connection_string", "host"];
    "atlas.take_snapshot"     => C(Atlas),     false, Changes,     read::<a::AtlasTakeSnapshot>,    ["snapshot_id"];
    "atlas.delete_cluster"    => C(Atlas),     false, Destructive, read::<a::AtlasDeleteCluster>,   ["deleted"];
    "mongo.count"             => C(Mongo),     true,  ReadOnly,    read::<a::MongoCount>,           ["counts", "total"];
    "mongo.indexes_check"     => C(Mongo),     true,  ReadOnly,    read::<a::MongoIndexesCheck>,    ["ok", "missing", "problems", "live"];
    "mongo.rebuild_index"     => C(Mongo),     true,  Destructive, read::<a::MongoRebuildIndex>,    ["name", "dropped"];
    "mongo.newest"            => C(Mongo),     true,  ReadOnly,    read::<a::MongoNewest>,          ["newest_at", "rpo_seconds", "age_seconds"];
    "aws.update_secret"       => C(Aws),       true,  Destructive, read::<a::AwsUpdateSecret>,      ["version_id", "previous_version_id", "keys_changed"];
    "aws.restore_secret"      => C(Aws),       false, Destructive, read::<a::AwsRestoreSecret>,     ["version_id", "restored_from", "replaced_version_id", "unchanged"];
    "k8s.set_env"             => C(Kube),      true,  Changes,     read::<a::K8sSetEnv>,            ["generation", "changed"];
    "k8s.rollout_restart"     => C(Kube),      false, Changes,     read::<a::K8sRolloutRestart>,    ["restarted_at"];
    "k8s.rollout_wait"        => C(Kube),      false, ReadOnly,    read::<a::K8sRolloutWait>,       ["ready_replicas"];
    "k8s.logs"                => C(Kube),      false, ReadOnly,    read::<a::K8sLogs>,              ["lines"];
    "k8s.pods_ready"          => C(Kube),      false, ReadOnly,    read::<a::K8sPodsReady>,         ["ready", "total"];
    "service.stop"            => Runs::Agent,  false, Changes,     read::<a::Service>,              ["state"];
    "service.start"           => Runs::Agent,  false, Changes,     read::<a::Service>,              ["state"];
    "service.restart"         => Runs::Agent,  false, Changes,     read::<a::Service>,              ["state"];
    "service.status"          => Runs::Agent,  false, ReadOnly,    read::<a::Service>,              ["state"];
    "compose.restart"         => Runs::Agent,  false, Changes,     read::<a::Compose>,              [];
    "compose.stop"            => Runs::Agent,  false, Changes,     read::<a::Compose>,              [];
    "compose.start"           => Runs::Agent,  false, Changes,     read::<a::Compose>,              [];
    "compose.logs"            => Runs::Agent,  false, ReadOnly,    read::<a::ComposeLogs>,          ["lines"];
    "redis.check_aof"         => Runs::Agent,  false, Destructive, read::<a::RedisInstance>,        ["bytes_discarded", "keys_before", "keys_after", "backup_path"];
    "redis.restore_rdb"       => Runs::Agent,  false, Destructive, read::<a::RedisRestoreRdb>,      ["backup", "backup_age_seconds", "keys"];
    "redis.ping"              => Runs::Agent,  false, ReadOnly,    read::<a::RedisInstance>,        ["pong"];
    "redis.dbsize"            => Runs::Agent,  false, ReadOnly,    read::<a::RedisInstance>,        ["keys"];
    "redis.info"              => Runs::Agent,  false, ReadOnly,    read::<a::RedisInfo>,            ["used_memory", "used_memory_human", "maxmemory", "maxmemory_policy", "instantaneous_ops_per_sec", "fields"];
    "redis.readiness"         => Runs::Agent,  false, ReadOnly,    read::<a::RedisReadiness>,       [
        "redis_up",          // bool: the instance answers
        "aof_enabled",       // bool: appendonly, from Redis or (down) its config_file; absent if neither says
        "aof_dir",           // string: data_dir + appenddirname, the directory redis.check_aof repairs
        "manifest",          // string: ok, missing (no manifest file) or unreadable (does not parse)
        "manifest_problem",  // string: what is wrong with the manifest, with its line; empty when ok
        "missing_files",     // list of strings: base and incr files the manifest names that do not exist
        "aof_bytes",         // int: bytes in the AOF directory, what the repair's copy aside needs
        "free_bytes",        // int: bytes free to the agent's user on the AOF directory's file system
        "rdb_backups",       // int: files matching backup_pattern in backup_dir (absent without backup_dir)
        "newest_rdb",        // string: the newest of them, as file.newest picks it (absent if none)
        "newest_rdb_age_s",  // int: its age in seconds, from its mtime (absent if none)
    ];
    "redis.config_set"        => Runs::Agent,  false, Changes,     read::<a::RedisConfigSet>,       ["previous"];
    "redis.delete_pattern"    => Runs::Agent,  false, Destructive, read::<a::RedisDeletePattern>,   ["matched", "deleted"];
    "file.copy"               => Runs::Agent,  false, Destructive, read::<a::FileCopy>,             ["sha256", "bytes"];
    "file.newest"             => Runs::Agent,  false, ReadOnly,    read::<a::FileNewest>,           ["path", "age_seconds"];
    "runbook.run"             => C(Sub),       false, Changes,     read::<a::RunbookRun>,           ["run_id", "runbook", "status", "recovered_in_s", "rto_s"];
}

/// The action called `name`.
pub fn get(name: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Every action name.
pub fn names() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().map(|a| a.name)
}

/// The actions an agent can be allowed to perform.
pub fn agent_actions() -> impl Iterator<Item = &'static Action> {
    ACTIONS.iter().filter(|a| a.on_agent())
}

/// Whether `action`, run by the coordinator, may be given credentials.
pub fn takes_credentials(action: &str) -> bool {
    get(action).is_some_and(|a| a.credentials)
}

/// The actions that may be given credentials, for messages:
/// `http.check, mongo.*, …`.
pub fn credential_takers() -> String {
    let mut names: Vec<String> = Vec::new();
    for a in ACTIONS.iter().filter(|a| a.credentials) {
        let group = a.integration().map(Integration::name).unwrap_or_default();
        let all_of_group = ACTIONS.iter().filter(|b| b.integration() == a.integration()).all(|b| b.credentials);
        let shown = if all_of_group { format!("{group}.*") } else { a.name.to_string() };
        if !names.contains(&shown) {
            names.push(shown);
        }
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed_by_their_integration() {
        let mut seen = std::collections::BTreeSet::new();
        for a in ACTIONS {
            assert!(seen.insert(a.name), "{} is registered twice", a.name);
            if let Some(i) = a.integration().filter(|i| !matches!(i, Integration::Builtin | Integration::Http)) {
                assert!(a.name.starts_with(&format!("{}.", i.name())), "{} is not named after {i:?}", a.name);
            }
        }
    }

    #[test]
    fn only_coordinator_integrations_take_credentials() {
        for a in ACTIONS.iter().filter(|a| a.credentials) {
            assert!(a.integration().is_some(), "{} takes credentials but does not run in the coordinator", a.name);
            assert_ne!(a.integration(), Some(Integration::Builtin));
        }
        assert!(!takes_credentials("notify"), "messages to people never carry credential values");
        assert_eq!(credential_takers(), "http.check, mongo.*, aws.update_secret, k8s.set_env");
    }

    #[test]
    fn sections_come_from_the_integration() {
        let table = [
            ("atlas.pitr_restore", Some("atlas")),
            ("k8s.set_env", Some("kube")),
            ("aws.update_secret", Some("aws")),
            ("http.check", None),
            ("mongo.count", None),
            ("redis.ping", None),
            ("runbook.run", None),
        ];
        for (name, section) in table {
            assert_eq!(get(name).and_then(Action::section), section, "{name}");
        }
    }

    #[test]
    fn agent_actions_exclude_coordinator_ones() {
        let names: Vec<_> = agent_actions().map(|a| a.name).collect();
        assert!(names.contains(&"redis.check_aof"));
        assert!(!names.contains(&"http.check"), "no agent implements http.check");
        assert!(!names.contains(&"atlas.pitr_restore"));
    }

    #[test]
    fn a_sub_run_runs_in_the_coordinator_and_changes_things() {
        let a = get("runbook.run").unwrap();
        assert_eq!(a.runs, Runs::Coordinator(Integration::Runs));
        assert_eq!(a.integration().map(Integration::name), Some("runbook"));
        assert_eq!((a.impact, a.credentials, a.section()), (Impact::Changes, false, None));
        assert_eq!(a.outputs, ["run_id", "runbook", "status", "recovered_in_s", "rto_s"]);
        assert!(Integration::ALL.contains(&Integration::Runs));
    }
}
