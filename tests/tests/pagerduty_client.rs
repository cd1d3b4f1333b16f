//! The PagerDuty Events API v2 client
//! (`ripcord_coordinator::integrations::pagerduty`) against the fake of
//! `ripcord_tests::pagerduty_fake`: one dedup key is one incident through
//! trigger, acknowledge and resolve; a repeated trigger merges; a 400 is
//! not retried and carries PagerDuty's errors; 429 and 5xx are retried a
//! bounded number of times; the routing key and the URL stay out of every
//! error.

use ripcord_coordinator::integrations::pagerduty::{
    Error, Event, EventAction, MAX_SUMMARY_CHARS, PagerDuty, Payload, Retry, RoutingKey, Severity,
};
use ripcord_tests::pagerduty_fake::{AlertState, FakePagerDuty, new_routing_key};
use serde_json::json;
use std::time::Duration;

const RUN: &str = "run-7f3a9c";
const ATTEMPTS: u32 = 4;

/// Quick retries: the tests count attempts, not wait for them.
fn client(fake: &FakePagerDuty) -> PagerDuty {
    PagerDuty::new(&fake.base_url()).with_retry(Retry {
        attempts: ATTEMPTS,
        base: Duration::from_millis(1),
        max: Duration::from_millis(4),
    })
}

fn key(fake: &FakePagerDuty) -> RoutingKey {
    RoutingKey::new(fake.routing_key())
}

fn payload() -> Payload {
    Payload::new("Recovery of chat-prod started: restore from the latest snapshot", "ripcord", Severity::Critical)
}

fn statuses(fake: &FakePagerDuty) -> Vec<u16> {
    fake.events().iter().map(|e| e.status).collect()
}

#[tokio::test]
async fn trigger_acknowledge_resolve_under_one_dedup_key_is_one_incident() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));

    let accepted = pd.trigger(&rk, RUN, payload()).await.expect("trigger");
    assert_eq!(accepted.dedup_key, RUN);
    assert_eq!(fake.incident(RUN).map(|i| i.state), Some(AlertState::Triggered));

    assert_eq!(pd.acknowledge(&rk, RUN).await.expect("acknowledge").dedup_key, RUN);
    assert_eq!(fake.incident(RUN).map(|i| i.state), Some(AlertState::Acknowledged));

    assert_eq!(pd.resolve(&rk, RUN).await.expect("resolve").dedup_key, RUN);
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].state, AlertState::Resolved);
    assert_eq!(incidents[0].triggers, 1);
    let actions: Vec<_> = fake.events().iter().map(|e| e.event_action().map(str::to_string)).collect();
    assert_eq!(actions, [Some("trigger".into()), Some("acknowledge".into()), Some("resolve".into())]);
    assert_eq!(statuses(&fake), [202, 202, 202]);
}

#[tokio::test]
async fn repeated_trigger_while_open_merges_into_one_incident() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));

    for _ in 0..3 {
        assert_eq!(pd.trigger(&rk, RUN, payload()).await.expect("trigger").dedup_key, RUN);
    }

    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].triggers, 3);
    assert_eq!(incidents[0].state, AlertState::Triggered);
}

#[tokio::test]
async fn trigger_sends_the_documented_body() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    let mut p = payload();
    p.timestamp = Some(1_795_741_749_552);
    p.component = Some("chat-prod".into());
    p.group = Some("mongodb".into());
    p.class = Some("recovery".into());
    p.custom_details = Some(json!({"runbook": "mongo-restore", "step": "restore"}).as_object().cloned().unwrap());

    pd.trigger(&rk, RUN, p).await.expect("trigger");

    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        events[0].body,
        json!({
            "routing_key": fake.routing_key(),
            "event_action": "trigger",
            "dedup_key": RUN,
            "payload": {
                "summary": "Recovery of chat-prod started: restore from the latest snapshot",
                "source": "ripcord",
                "severity": "critical",
                "timestamp": "2026-11-27T01:09:09.552Z",
                "component": "chat-prod",
                "group": "mongodb",
                "class": "recovery",
                "custom_details": {"runbook": "mongo-restore", "step": "restore"}
            }
        })
    );
}

#[tokio::test]
async fn summary_over_1024_characters_is_cut_on_a_character_boundary_and_accepted() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    // Two-byte characters: a cut by bytes would split one.
    let mut p = payload();
    p.summary = "é".repeat(MAX_SUMMARY_CHARS + 100);

    pd.trigger(&rk, RUN, p).await.expect("trigger");

    let summary = fake.incident(RUN).expect("incident").summary;
    assert_eq!(summary, "é".repeat(MAX_SUMMARY_CHARS));
}

#[tokio::test]
async fn invalid_event_is_not_retried_and_carries_the_fakes_errors() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));

    let err = pd.trigger(&rk, RUN, Payload::new("db down", " ", Severity::Error)).await.expect_err("a 400");

    assert_eq!(
        err,
        Error::Invalid {
            message: "Event object is invalid".into(),
            errors: vec!["'payload.source' is missing or blank".into()],
        }
    );
    assert_eq!(statuses(&fake), [400]);
    assert!(fake.incidents().is_empty());
}

#[tokio::test]
async fn rate_limited_twice_is_retried_and_then_succeeds() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    fake.fail_next(429, 2);

    assert_eq!(pd.trigger(&rk, RUN, payload()).await.expect("trigger").dedup_key, RUN);

    assert_eq!(statuses(&fake), [429, 429, 202]);
    assert_eq!(fake.incident(RUN).map(|i| (i.state, i.triggers)), Some((AlertState::Triggered, 1)));
}

#[tokio::test]
async fn server_error_twice_is_retried_and_then_succeeds() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    pd.trigger(&rk, RUN, payload()).await.expect("trigger");
    fake.fail_next(500, 2);

    assert_eq!(pd.resolve(&rk, RUN).await.expect("resolve").dedup_key, RUN);

    assert_eq!(statuses(&fake), [202, 500, 500, 202]);
    assert_eq!(fake.incident(RUN).map(|i| i.state), Some(AlertState::Resolved));
}

#[tokio::test]
async fn always_500_gives_a_server_error_after_the_configured_attempts() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    fake.fail_always(500);

    let err = pd.trigger(&rk, RUN, payload()).await.expect_err("no success");

    assert_eq!(err, Error::Server(500));
    assert_eq!(statuses(&fake), vec![500; ATTEMPTS as usize]);
}

#[tokio::test]
async fn always_429_gives_rate_limited_after_the_configured_attempts() {
    let fake = FakePagerDuty::start();
    let (pd, rk) = (client(&fake), key(&fake));
    fake.fail_always(429);

    let err = pd.acknowledge(&rk, RUN).await.expect_err("no success");

    assert_eq!(err, Error::RateLimited);
    assert_eq!(statuses(&fake), vec![429; ATTEMPTS as usize]);
}

#[tokio::test]
async fn routing_key_appears_in_no_error_display_or_debug() {
    let fake = FakePagerDuty::start();
    let pd = client(&fake);
    let good = key(&fake);
    // 32 characters the fake does not know: its 400 says so.
    let unknown_text = new_routing_key();
    let unknown = RoutingKey::new(unknown_text.clone());
    let mut errors = vec![pd.trigger(&unknown, RUN, payload()).await.expect_err("unknown key")];
    assert!(matches!(&errors[0], Error::Invalid { errors, .. } if !errors.is_empty()), "{:?}", errors[0]);
    fake.fail_always(429);
    errors.push(pd.trigger(&good, RUN, payload()).await.expect_err("429"));
    let fake5 = FakePagerDuty::start();
    fake5.fail_always(503);
    errors.push(client(&fake5).resolve(&good, RUN).await.expect_err("503"));
    errors.push(
        PagerDuty::new(&closed_port_url())
            .with_retry(quick(1))
            .trigger(&good, RUN, payload())
            .await
            .expect_err("closed"),
    );
    assert!(matches!(errors[1], Error::RateLimited) && matches!(errors[2], Error::Server(503)));
    assert!(matches!(errors[3], Error::Unreachable(_)));

    let secrets = [fake.routing_key(), unknown_text];
    for e in &errors {
        for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "routing key in {text}");
            }
        }
    }
    let event = Event {
        routing_key: good.clone(),
        event_action: EventAction::Trigger,
        dedup_key: Some(RUN.into()),
        payload: Some(payload()),
        links: vec![],
    };
    for text in [format!("{good:?}"), format!("{event:?}"), format!("{event:#?}"), format!("{pd:?}")] {
        assert!(!text.contains(&secrets[0]), "routing key in {text}");
    }
}

fn quick(attempts: u32) -> Retry {
    Retry { attempts, base: Duration::from_millis(1), max: Duration::from_millis(4) }
}

/// The URL of a port nothing listens on (bound, then let go).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn closed_port_gives_unreachable_without_the_url() {
    let url = closed_port_url();
    let addr = url.trim_start_matches("http://").to_string();
    let port = addr.rsplit(':').next().expect("port").to_string();
    let pd = PagerDuty::new(&url).with_retry(quick(2));

    let err = pd.trigger(&RoutingKey::new(new_routing_key()), RUN, payload()).await.expect_err("no listener");

    let Error::Unreachable(why) = &err else { panic!("expected Unreachable, got {err:?}") };
    for text in [err.to_string(), format!("{err:?}")] {
        for s in [url.as_str(), addr.as_str(), "/v2/enqueue", "127.0.0.1"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert!(!text.contains(&format!(":{port}")), "port in {text}");
    }
    assert!(why.contains("cannot connect"), "{why}");
}
