use super::*;

fn env(
    name: &str,
    agents: &str,
    project: &str,
    clusters: &[&str],
    secrets: &[&str],
    namespaces: &[&str],
) -> Environment {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Environment {
        name: name.into(),
        protected: false,
        agents: Some(agents.parse().unwrap()),
        atlas_project: Some(project.into()),
        clusters: list(clusters),
        secrets: list(secrets),
        namespaces: list(namespaces),
        params: BTreeMap::new(),
    }
}

fn environments() -> Vec<Environment> {
    vec![
        env("staging", "env=staging", "p-staging", &["chat-staging"], &["chat-app/staging/database"], &["staging"]),
        env("prod", "env=prod", "p-prod", &["chat-prod"], &["chat-app/database"], &["default", "prod"]),
    ]
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

const RUNBOOK: &str = r#"
id: t
title: t
params:
  project: {type: string, default: p-staging}
  cluster: {type: string, default: chat-staging}
  secret: {type: string, default: chat-app/staging/database}
  ns: {type: string, default: staging}
  agents: {type: string, default: "role=redis,env=staging"}
steps:
  - id: new-cluster
    action: atlas.create_cluster_like
    with: {project: "{{ params.project }}", like: "{{ params.cluster }}", name: "restore-{{ run.short_id }}"}
  - id: wait
    needs: [new-cluster]
    action: atlas.wait_cluster
    with: {project: "{{ params.project }}", cluster: "{{ steps.new-cluster.name }}"}
  - id: switch
    action: aws.update_secret
    with: {secret_id: "{{ params.secret }}", set: {k: v}}
  - id: restart
    action: k8s.rollout_restart
    with: {namespace: "{{ params.ns }}", deployment: api}
  - id: logs
    action: k8s.logs
    with: {deployment: api}
  - id: ping
    action: redis.ping
    target: "{{ params.agents }}"
    with: {instance: cache}
"#;

fn verdict(params: &[(&str, &str)], own: Option<&str>) -> Vec<String> {
    let rb = crate::check::check(RUNBOOK).unwrap();
    let mut p: BTreeMap<String, Value> =
        rb.params.iter().filter_map(|d| d.default.clone().map(|v| (d.name.clone(), v))).collect();
    for (k, v) in params {
        p.insert(k.to_string(), Value::str(*v));
    }
    let envs = environments();
    let (a, b, c) = (
        labels(&[("role", "redis"), ("env", "staging")]),
        labels(&[("role", "redis"), ("env", "prod")]),
        labels(&[("role", "redis")]),
    );
    let agents = [
        Agent { id: "redis-staging-1", labels: &a },
        Agent { id: "redis-prod-1", labels: &b },
        Agent { id: "redis-lab", labels: &c },
    ];
    let guard = Guard {
        environments: &envs,
        own: own.and_then(|o| envs.iter().find(|e| e.name == o)),
        agents: &agents,
        default_namespace: Some("default"),
    };
    refusals(&rb, &p, &guard).iter().map(ToString::to_string).collect()
}

#[test]
fn a_staging_drill_touches_nothing_protected_but_the_default_namespace() {
    // k8s.logs names no namespace: it gets the kube config's default, which prod holds.
    assert_eq!(
        verdict(&[], Some("staging")),
        ["step logs: Kubernetes namespace default belongs to protected environment prod"]
    );
}

#[test]
fn each_protected_resource_is_refused_with_its_step() {
    let table: [(&[(&str, &str)], &str); 5] = [
        (
            &[("secret", "chat-app/database")],
            "step switch: secret chat-app/database belongs to protected environment prod",
        ),
        (
            &[("secret", "arn:aws:secretsmanager:ap-northeast-2:1:secret:chat-app/database-AbCdEf")],
            "step switch: secret arn:aws:secretsmanager:ap-northeast-2:1:secret:chat-app/database-AbCdEf belongs to protected environment prod",
        ),
        (&[("ns", "prod")], "step restart: Kubernetes namespace prod belongs to protected environment prod"),
        (
            &[("project", "p-prod"), ("cluster", "chat-prod")],
            "step new-cluster: Atlas cluster chat-prod (project p-prod) belongs to protected environment prod",
        ),
        (
            &[("agents", "role=redis,env=prod")],
            "step ping: agent redis-prod-1 (env=prod,role=redis) belongs to protected environment prod",
        ),
    ];
    for (params, expected) in table {
        let got = verdict(params, Some("staging"));
        assert!(got.contains(&expected.to_string()), "{params:?}: {got:#?}");
        // Besides the one in the default namespace, nothing else.
        assert_eq!(got.len(), 2, "{params:?}: {got:#?}");
    }
}

#[test]
fn an_agent_outside_the_drills_environment_is_refused_and_one_inside_is_not() {
    let got = verdict(&[("agents", "role=redis")], Some("staging"));
    assert!(
        got.contains(
            &"step ping: agent redis-prod-1 (env=prod,role=redis) belongs to protected environment prod".to_string()
        ),
        "{got:#?}"
    );
    assert!(
        got.contains(&"step ping: agent redis-lab (role=redis) is not in environment staging".to_string()),
        "{got:#?}"
    );
    assert!(!got.iter().any(|r| r.contains("redis-staging-1")), "{got:#?}");
    // Without an environment of its own, only protected resources count.
    let got = verdict(&[("agents", "role=redis")], None);
    assert!(!got.iter().any(|r| r.contains("redis-lab")), "{got:#?}");
}

#[test]
fn a_cluster_of_the_same_name_in_another_project_is_not_prods() {
    let got = verdict(&[("cluster", "chat-prod")], Some("staging"));
    assert_eq!(got.len(), 1, "{got:#?}");
}

#[test]
fn prod_is_protected_whatever_it_says_and_others_when_they_say_so() {
    let mut e = environments();
    assert!(e[1].is_protected());
    assert!(!e[0].is_protected());
    e[0].protected = true;
    assert!(e[0].is_protected());
}

#[test]
fn a_sub_runs_steps_are_guarded_too() {
    let rb = crate::check::check(
        r#"
id: composite
title: composite
params:
  secret: {type: string, default: chat-app/database}
steps:
  - id: mongo
    action: runbook.run
    with:
      runbook: mongo-pitr
      params: {project_id: p-staging, cluster: chat-staging, health_url: "http://127.0.0.1:1/health", webhook: "http://127.0.0.1:1/hook", secret_id: "{{ params.secret }}", namespace: staging}
"#,
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let envs = environments();
    let guard = Guard { environments: &envs, own: Some(&envs[0]), agents: &[], default_namespace: None };
    let params = BTreeMap::from([("secret".to_string(), Value::str("chat-app/database"))]);
    let got: Vec<String> = refusals(&rb, &params, &guard).iter().map(ToString::to_string).collect();
    assert!(
        got.iter().any(|r| r.starts_with("step mongo > ")
            && r.contains("secret chat-app/database belongs to protected environment prod")),
        "{got:#?}"
    );
    let params = BTreeMap::from([("secret".to_string(), Value::str("chat-app/staging/database"))]);
    assert!(refusals(&rb, &params, &guard).is_empty());
}
