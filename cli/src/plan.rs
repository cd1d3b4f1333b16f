//! What `ripcord runbook plan` adds when it can reach the coordinator: for
//! each step, the agents that would run it, the config sections and the
//! credentials it needs, and whether the coordinator has them. Everything
//! here is worked out from what the coordinator answered (its health and its
//! fleet), so it is tested without one.

use ripcord_engine::registry;
use ripcord_engine::runbook::Runbook;
use ripcord_engine::value::Value;
use ripcord_proto::v1::AgentInfo;
use std::collections::{BTreeMap, BTreeSet};

/// What the plan learned from the coordinator.
pub struct Coordinator {
    /// For each agent step: the matching agents with their state, and a
    /// warning when none is usable.
    fleet: BTreeMap<String, (Vec<String>, String)>,
    credentials: BTreeSet<String>,
    integrations: BTreeSet<String>,
}

impl Coordinator {
    /// From the fleet and the names the coordinator's health lists.
    /// `params` are the run's (`None` when they were refused): they fill in
    /// targets that name them.
    pub fn new(
        rb: &Runbook,
        params: Option<&BTreeMap<String, Value>>,
        agents: &[AgentInfo],
        credentials: Vec<String>,
        integrations: Vec<String>,
    ) -> Self {
        let mut fleet = BTreeMap::new();
        for step in &rb.steps {
            let Some(t) = &step.target else { continue };
            let resolved =
                if t.is_templated() { params.map(|p| t.resolve(p)) } else { Some(t.resolve(&BTreeMap::new())) };
            let selector = match resolved {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    fleet.insert(step.id.clone(), (vec![], format!(" — {e}")));
                    continue;
                }
                None => {
                    fleet.insert(step.id.clone(), (vec![], " — not known until the params are valid".to_string()));
                    continue;
                }
            };
            let mut names = Vec::new();
            let mut usable = 0;
            for a in agents {
                let labels: BTreeMap<String, String> = a.labels.clone().into_iter().collect();
                if !selector.matches_map(&labels) {
                    continue;
                }
                let allows = a.actions.contains(&step.action);
                if a.connected && allows {
                    usable += 1;
                }
                let state = match (a.connected, allows) {
                    (true, true) => "ready",
                    (false, _) => "DISCONNECTED",
                    (true, false) => "DOES NOT ALLOW IT",
                };
                names.push(format!("{} ({state})", a.agent_id));
            }
            let note = match (usable, t.all) {
                (0, _) => " — NO USABLE AGENT".to_string(),
                (n, false) if n > 1 => format!(" — {n} match but the step wants exactly one"),
                _ => String::new(),
            };
            fleet.insert(step.id.clone(), (names, note));
        }
        Coordinator {
            fleet,
            credentials: credentials.into_iter().collect(),
            integrations: integrations.into_iter().collect(),
        }
    }

    /// The notes for step `id`; `needed` is `(credential, step)` pairs.
    pub fn step_notes(&self, rb: &Runbook, needed: &[(String, String)], id: &str) -> Option<String> {
        let step = rb.step(id)?;
        let mut notes = Vec::new();
        if step.target.is_some()
            && let Some((matching, note)) = self.fleet.get(id)
        {
            notes.push(format!(
                "agents: {}{note}",
                if matching.is_empty() { "none".into() } else { matching.join(", ") }
            ));
        }
        if step.target.is_none()
            && let Some(section) = registry::get(&step.action).and_then(|a| a.section())
            && !self.integrations.contains(section)
        {
            notes.push(format!("NO [{section}] SECTION IN THE COORDINATOR CONFIG"));
        }
        for (name, _) in needed.iter().filter(|(_, s)| s == id) {
            let held = if self.credentials.contains(name) { "held" } else { "NOT HELD BY THE COORDINATOR" };
            notes.push(format!("credentials {name}: {held}"));
        }
        if notes.is_empty() { None } else { Some(notes.join("; ")) }
    }

    /// The line naming every credential the run would use, if any.
    pub fn credentials_line(&self, needed: &[(String, String)]) -> Option<String> {
        let mut names: Vec<String> = Vec::new();
        for (n, _) in needed {
            let shown = if self.credentials.contains(n) { n.clone() } else { format!("{n} (NOT HELD)") };
            if !names.contains(&shown) {
                names.push(shown);
            }
        }
        if names.is_empty() { None } else { Some(format!("credentials named: {}", names.join(", "))) }
    }

    /// The credentials the run would need that the coordinator lacks, each once.
    pub fn missing<'a>(&self, needed: &'a [(String, String)]) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for (n, _) in needed {
            if !self.credentials.contains(n) && !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RB: &str = r#"
id: t
title: t
params:
  hosts: {default: "role=redis"}
steps:
  - {id: one, action: redis.ping, target: "{{ params.hosts }}", with: {instance: cache}}
  - {id: ping, action: redis.ping, target: "role=redis", with: {instance: cache}}
  - {id: all, action: redis.ping, target: {selector: "role=redis", all: true}, with: {instance: cache}}
  - {id: snap, action: atlas.take_snapshot, with: {project: p, cluster: c}}
  - id: probe
    action: http.check
    with:
      url: http://x/login
      body: "{{ credentials.chatdb.password }}"
"#;

    fn agent(id: &str, role: &str, connected: bool, actions: &[&str]) -> AgentInfo {
        AgentInfo {
            agent_id: id.into(),
            labels: [("role".to_string(), role.to_string())].into_iter().collect(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
            connected,
            ..Default::default()
        }
    }

    fn rb() -> Runbook {
        ripcord_engine::check::check(RB).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn agent_steps_name_each_matching_agent_and_whether_it_can_run_the_step() {
        let rb = rb();
        let agents = [
            agent("cache-1", "redis", true, &["redis.ping"]),
            agent("cache-2", "redis", false, &["redis.ping"]),
            agent("app-1", "app", true, &["redis.ping"]),
        ];
        let c = Coordinator::new(&rb, Some(&BTreeMap::new()), &agents, vec![], vec![]);
        let ping = c.step_notes(&rb, &[], "ping").unwrap();
        assert_eq!(ping, "agents: cache-1 (ready), cache-2 (DISCONNECTED)");

        let two = [agent("cache-1", "redis", true, &["redis.ping"]), agent("cache-3", "redis", true, &["redis.ping"])];
        let c = Coordinator::new(&rb, Some(&BTreeMap::new()), &two, vec![], vec![]);
        assert!(c.step_notes(&rb, &[], "ping").unwrap().ends_with("— 2 match but the step wants exactly one"));
        assert!(!c.step_notes(&rb, &[], "all").unwrap().contains("—"), "`all: true` takes every match");

        let refusing = [agent("cache-1", "redis", true, &["redis.info"])];
        let c = Coordinator::new(&rb, Some(&BTreeMap::new()), &refusing, vec![], vec![]);
        assert_eq!(c.step_notes(&rb, &[], "ping").unwrap(), "agents: cache-1 (DOES NOT ALLOW IT) — NO USABLE AGENT");
        let c = Coordinator::new(&rb, Some(&BTreeMap::new()), &[], vec![], vec![]);
        assert_eq!(c.step_notes(&rb, &[], "ping").unwrap(), "agents: none — NO USABLE AGENT");
    }

    #[test]
    fn a_target_named_by_a_param_matches_with_the_runs_params() {
        let rb = rb();
        let agents = [agent("cache-1", "redis", true, &["redis.ping"])];
        let mut given = agents.to_vec();
        given[0].labels.insert("host".into(), "cache-1".into());
        let params = BTreeMap::from([("hosts".to_string(), Value::str("host=cache-1"))]);
        let c = Coordinator::new(&rb, Some(&params), &given, vec![], vec![]);
        assert_eq!(c.step_notes(&rb, &[], "one").unwrap(), "agents: cache-1 (ready)");
        let params = BTreeMap::from([("hosts".to_string(), Value::str("host=cache-9"))]);
        let c = Coordinator::new(&rb, Some(&params), &given, vec![], vec![]);
        assert_eq!(c.step_notes(&rb, &[], "one").unwrap(), "agents: none — NO USABLE AGENT");
        let c = Coordinator::new(&rb, None, &agents, vec![], vec![]);
        assert_eq!(c.step_notes(&rb, &[], "one").unwrap(), "agents: none — not known until the params are valid");
        // A fixed target does not need the params.
        assert_eq!(c.step_notes(&rb, &[], "ping").unwrap(), "agents: cache-1 (ready)");
    }

    #[test]
    fn coordinator_steps_name_a_missing_section_and_credentials_not_held() {
        let rb = rb();
        let needed = vec![("chatdb".to_string(), "probe".to_string()), ("chatdb".to_string(), "other".to_string())];
        let bare = Coordinator::new(&rb, Some(&BTreeMap::new()), &[], vec![], vec![]);
        assert_eq!(bare.step_notes(&rb, &needed, "snap").unwrap(), "NO [atlas] SECTION IN THE COORDINATOR CONFIG");
        assert_eq!(bare.step_notes(&rb, &needed, "probe").unwrap(), "credentials chatdb: NOT HELD BY THE COORDINATOR");
        assert_eq!(bare.missing(&needed), vec!["chatdb"], "each name once");
        assert_eq!(bare.credentials_line(&needed).unwrap(), "credentials named: chatdb (NOT HELD)");

        let full = Coordinator::new(&rb, Some(&BTreeMap::new()), &[], vec!["chatdb".into()], vec!["atlas".into()]);
        assert_eq!(full.step_notes(&rb, &needed, "snap"), None);
        assert_eq!(full.step_notes(&rb, &needed, "probe").unwrap(), "credentials chatdb: held");
        assert!(full.missing(&needed).is_empty());
        assert_eq!(full.credentials_line(&needed).unwrap(), "credentials named: chatdb");
        assert_eq!(full.credentials_line(&[]), None);
    }
}
