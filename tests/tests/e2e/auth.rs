//! Every way a caller is refused, and that the refusal says why — to the
//! caller and in the coordinator's log.

use ripcord_engine::Role;
use ripcord_pki::issue::Validity;
use ripcord_proto::v1::{
    AgentMessage, HealthRequest, Hello, agent_message, agents_client::AgentsClient, control_client::ControlClient,
};
use ripcord_tests::{AgentSpec, Cluster, OPERATOR, Pki, VIEWER, eventually, text};
use std::path::Path;
use time::macros::datetime;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

fn runtime() -> tokio::runtime::Runtime {
    ripcord_pki::tls::install_crypto_provider();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A channel that trusts the test CA and presents `identity`, if any.
async fn channel(cluster: &Cluster, identity: Option<(&Path, &Path)>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(cluster.pki.ca()).unwrap()))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    Channel::from_shared(cluster.url()).unwrap().tls_config(tls).unwrap().connect().await.unwrap()
}

/// Asserts the CLI as `identity` fails with exit 1 and `expect` in stderr.
fn refused(cluster: &Cluster, identity: &str, args: &[&str], expect: &str) {
    let out = cluster.cli(identity, args);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{identity} {args:?} must be refused: {stdout} {stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in stderr of {identity} {args:?}: {stderr}");
}

fn logged(cluster: &Cluster, expect: &str) {
    eventually(&format!("coordinator log to say {expect:?}"), || {
        let log = cluster.coordinator.log_text();
        if log.contains(expect) { Ok(()) } else { Err(log.lines().rev().take(5).collect::<Vec<_>>().join("\n")) }
    });
}

#[test]
fn no_client_certificate_is_refused_with_a_clear_status() {
    let cluster = Cluster::start(&[]);
    let status = runtime().block_on(async {
        ControlClient::new(channel(&cluster, None).await).health(HealthRequest {}).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "no client certificate presented");
    logged(&cluster, "call refused: not authenticated");
}

#[test]
fn certificates_from_another_ca_expired_or_not_yet_valid_are_refused() {
    let cluster = Cluster::start(&[]);
    let now = time::OffsetDateTime::now_utc();
    cluster.pki.issue_with(
        "old",
        Role::Operator,
        Validity { not_before: datetime!(2020-01-01 0:00 UTC), not_after: datetime!(2021-01-01 0:00 UTC) },
    );
    cluster.pki.issue_with(
        "future",
        Role::Operator,
        Validity { not_before: now + time::Duration::days(30), not_after: now + time::Duration::days(60) },
    );
    // Same names, another CA: the coordinator must not mistake it for its own.
    let other = Pki::new(&cluster.path().join("other-pki"));
    other.issue(OPERATOR, Role::Operator);
    for f in ["alice.crt", "alice.key"] {
        std::fs::copy(other.dir.join(f), cluster.pki.dir.join(format!("mallory-{f}"))).unwrap();
    }
    std::fs::rename(cluster.pki.dir.join("mallory-alice.crt"), cluster.pki.cert("mallory")).unwrap();
    std::fs::rename(cluster.pki.dir.join("mallory-alice.key"), cluster.pki.key("mallory")).unwrap();

    refused(&cluster, "old", &["agents"], "certificate expired at 2021-01-01T00:00:00Z");
    refused(&cluster, "future", &["agents"], "certificate is not valid until");
    refused(&cluster, "mallory", &["agents"], "not issued by this coordinator's CA");
    // The coordinator's own certificate is for serving, not for calling.
    refused(&cluster, "coordinator", &["agents"], "extended key usage");
    logged(&cluster, "certificate expired at 2021-01-01T00:00:00Z");
    logged(&cluster, "not issued by this coordinator's CA");

    // And the real operator still gets in.
    assert!(cluster.cli(OPERATOR, &["agents"]).status.success());
}

#[test]
fn roles_limit_what_each_caller_may_do() {
    let cluster = Cluster::start(&[AgentSpec::new("cache-1")]);
    // A viewer reads but cannot act.
    let out = cluster.cli(VIEWER, &["agents", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    refused(
        &cluster,
        VIEWER,
        &["agents", "ping", "cache-1"],
        "refused: viewer \"val\" may not call Control/PingAgents: it needs role operator",
    );
    // An agent may only use its stream.
    refused(&cluster, "cache-1", &["agents"], "refused: agent \"cache-1\" may not call Control/ListAgents");
    logged(&cluster, "call refused: role not allowed");

    // An operator may not pose as an agent.
    let status = runtime().block_on(async {
        let ch = channel(&cluster, Some((&cluster.pki.cert(OPERATOR), &cluster.pki.key(OPERATOR)))).await;
        let hello = AgentMessage {
            body: Some(agent_message::Body::Hello(Hello { agent_id: OPERATOR.into(), ..Default::default() })),
        };
        AgentsClient::new(ch).session(tokio_stream::iter(vec![hello])).await.unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("may not call Agents/Session"), "{}", status.message());
}

#[test]
fn agent_claiming_another_agents_id_is_refused() {
    let mut cluster = Cluster::start(&[AgentSpec::new("cache-1")]);
    cluster.start_agent(&AgentSpec::new("cache-2").cert("cache-1"));
    let log = eventually("the impostor to be refused", || {
        let log = cluster.agents[1].log_text();
        if log.contains("coordinator refused this agent") { Ok(log) } else { Err(log) }
    });
    assert!(
        log.contains("agent id \\\"cache-2\\\" does not match the certificate identity \\\"cache-1\\\"")
            || log.contains("agent id \"cache-2\" does not match the certificate identity \"cache-1\""),
        "{log}"
    );
    logged(&cluster, "agent refused: declared id differs from certificate identity");
    let ids: Vec<_> = cluster.agents_json().unwrap().into_iter().map(|a| a["agent_id"].clone()).collect();
    assert_eq!(ids, vec!["cache-1"]);
    // The real cache-1 was not disturbed.
    assert!(cluster.cli(OPERATOR, &["agents", "ping", "cache-1"]).status.success());
}
