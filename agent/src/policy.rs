//! The agent's allowlist: the only actions it will perform, whatever the
//! coordinator asks. Resource limits (which services, Redis instances and
//! directories) join it with the actions that need them.

use ripcord_engine::catalogue;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    actions: Vec<String>,
}

impl Allowlist {
    /// Checks every name against the agent actions in the catalogue.
    pub fn new(mut actions: Vec<String>) -> Result<Self, String> {
        for a in &actions {
            if !catalogue::agent_actions().any(|k| k == a) {
                let hint = match catalogue::place(a) {
                    Some(_) => " (it runs in the coordinator, not on agents)".to_string(),
                    None => catalogue::closest(a, catalogue::agent_actions())
                        .map(|c| format!(" (did you mean \"{c}\"?)"))
                        .unwrap_or_default(),
                };
                return Err(format!("unknown action \"{a}\"{hint}"));
            }
        }
        actions.sort();
        actions.dedup();
        Ok(Self { actions })
    }

    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    pub fn permits(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_agent_actions() {
        let a = Allowlist::new(vec!["redis.ping".into(), "service.stop".into(), "redis.ping".into()]).unwrap();
        assert!(a.permits("redis.ping"));
        assert!(!a.permits("redis.check_aof"));
        assert_eq!(a.actions().len(), 2);
        let e = Allowlist::new(vec!["atlas.pitr_restore".into()]).unwrap_err();
        assert!(e.contains("coordinator"), "{e}");
    }
}
