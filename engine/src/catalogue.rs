//! The closed catalogue of action names and where each runs. Argument types
//! per action join this table as the actions are built.

/// Where an action is performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Coordinator,
    Agent,
    /// Either; chosen by whether the step has a `target`.
    Either,
}

/// Every action name ripcord knows, with where it runs.
pub const ACTIONS: &[(&str, Place)] = &[
    ("noop", Place::Coordinator),
    ("wait", Place::Coordinator),
    ("approve", Place::Coordinator),
    ("checklist", Place::Coordinator),
    ("notify", Place::Coordinator),
    ("http.check", Place::Either),
    ("atlas.create_cluster_like", Place::Coordinator),
    ("atlas.wait_cluster", Place::Coordinator),
    ("atlas.pitr_restore", Place::Coordinator),
    ("atlas.snapshot_restore", Place::Coordinator),
    ("atlas.wait_restore", Place::Coordinator),
    ("atlas.connection_string", Place::Coordinator),
    ("atlas.take_snapshot", Place::Coordinator),
    ("atlas.delete_cluster", Place::Coordinator),
    ("mongo.count", Place::Coordinator),
    ("mongo.indexes_check", Place::Coordinator),
    ("mongo.rebuild_index", Place::Coordinator),
    ("mongo.newest", Place::Coordinator),
    ("aws.update_secret", Place::Coordinator),
    ("aws.restore_secret", Place::Coordinator),
    ("k8s.set_env", Place::Coordinator),
    ("k8s.rollout_restart", Place::Coordinator),
    ("k8s.rollout_wait", Place::Coordinator),
    ("k8s.logs", Place::Coordinator),
    ("k8s.pods_ready", Place::Coordinator),
    ("service.stop", Place::Agent),
    ("service.start", Place::Agent),
    ("service.restart", Place::Agent),
    ("service.status", Place::Agent),
    ("compose.restart", Place::Agent),
    ("compose.stop", Place::Agent),
    ("compose.start", Place::Agent),
    ("compose.logs", Place::Agent),
    ("redis.check_aof", Place::Agent),
    ("redis.restore_rdb", Place::Agent),
    ("redis.ping", Place::Agent),
    ("redis.dbsize", Place::Agent),
    ("redis.info", Place::Agent),
    ("redis.config_set", Place::Agent),
    ("redis.delete_pattern", Place::Agent),
    ("file.copy", Place::Agent),
    ("file.newest", Place::Agent),
];

/// Names of the actions an agent can be allowed to perform.
pub fn agent_actions() -> impl Iterator<Item = &'static str> {
    ACTIONS.iter().filter(|(_, p)| matches!(p, Place::Agent | Place::Either)).map(|(n, _)| *n)
}

/// Whether `action`, run by the coordinator, may be given credentials: the
/// integrations that use one to reach a service. Messages to people
/// (`notify`, `approve`, `checklist`) would show it, and agents are never
/// sent one. Everything else sees a credential only as its token.
pub fn takes_credentials(action: &str) -> bool {
    matches!(action, "http.check" | "aws.update_secret" | "k8s.set_env") || action.starts_with("mongo.")
}

/// Where `name` runs, if it is an action.
pub fn place(name: &str) -> Option<Place> {
    ACTIONS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// The candidate closest to `input` by edit distance, if it is close enough
/// to be a likely typo: for "did you mean …" hints.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            // A prefix ("snapshot" for "snapshot_id") is as good as one typo.
            let prefix = input.len() >= 3 && (c.starts_with(input) || input.starts_with(c));
            (if prefix { 1 } else { edit_distance(input, c) }, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_action() {
        let table = [
            ("redis.chek_aof", Some("redis.check_aof")),
            ("atlas.pitr_restor", Some("atlas.pitr_restore")),
            ("service.stp", Some("service.stop")),
            ("launch.rockets", None),
        ];
        for (input, expect) in table {
            assert_eq!(closest(input, ACTIONS.iter().map(|(n, _)| *n)), expect, "{input}");
        }
    }

    #[test]
    fn agent_actions_exclude_coordinator_only_ones() {
        let names: Vec<_> = agent_actions().collect();
        assert!(names.contains(&"redis.check_aof"));
        assert!(names.contains(&"http.check"));
        assert!(!names.contains(&"atlas.pitr_restore"));
        assert_eq!(place("k8s.logs"), Some(Place::Coordinator));
    }
}
