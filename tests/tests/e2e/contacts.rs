//! The coordinator's roster (`[contacts.NAME]`): `ripcord contacts` lists
//! every person and vendor with their channels, and no webhook URL's path
//! or token and no part of a routing key ever leaves the coordinator — not
//! in the CLI's output, not in its log. A bad section stops it before it
//! binds, naming the section and the field.

use ripcord_engine::Role;
use ripcord_tests::{Cluster, CoordinatorExtras, OPERATOR, Pki, VIEWER, eventually, text};
use std::fs;
use std::path::Path;

const ROUTING_KEY: &str = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKe7ab";
const SLACK_URL: &str = "https://hooks.slack.example/services/T0SECRET/B0SECRET/slacktokenNEVERshown";
const WEBHOOK_URL: &str = "http://127.0.0.1:9/hooks/webhook-token-never-shown?sig=s1gnatur3";

/// The parts of each secret that must never be seen.
const SECRETS: [&str; 9] = [
    ROUTING_KEY,
    "R0ut1ngKey",
    "Ke7ab",
    SLACK_URL,
    "T0SECRET",
    "slacktokenNEVERshown",
    WEBHOOK_URL,
    "webhook-token-never-shown",
    "s1gnatur3",
];

/// The roster's TOML, its secret files written in `dir`.
fn roster(dir: &Path) -> String {
    fs::write(dir.join("pd.key"), format!("{ROUTING_KEY}\n")).unwrap();
    fs::write(dir.join("slack.url"), format!("{SLACK_URL}\n")).unwrap();
    fs::write(dir.join("hook.url"), WEBHOOK_URL).unwrap();
    let d = dir.display();
    format!(
        r#"
[contacts.kim]
name = "Kim Minjun"
roles = ["on_call", "devops_lead"]
phone = "+82 10-1111-2222"
slack_handle = "@devops-lead"
slack_webhook_file = "{d}/slack.url"
webhook_file = "{d}/hook.url"
pagerduty_routing_key_file = "{d}/pd.key"

[contacts.lee]
name = "Lee Seoyeon"
roles = ["backend_lead"]
slack_handle = "@backend-lead"
webhook_file = "{d}/hook.url"

[contacts.park]
name = "Park Jiho"
roles = ["dba"]
phone = "+82 10-3333-4444"

[contacts.choi]
name = "Choi Yuna"
roles = ["cto"]
pagerduty_routing_key_file = "{d}/pd.key"

[contacts.atlas-support]
vendor = "mongodb-atlas"

[contacts.aws-support]
vendor = "aws"
"#
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows {s:?}:\n{text}");
    }
}

#[test]
fn contacts_lists_everyone_with_channels_and_never_a_secret() {
    let files = tempfile::tempdir().unwrap();
    let extras = CoordinatorExtras { toml: roster(files.path()), env: vec![] };
    let cluster = Cluster::start_with(&[], extras);

    // Any authenticated role may read it: the viewer and the operator.
    for who in [VIEWER, OPERATOR] {
        let out = cluster.cli(who, &["contacts"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert_no_secret("contacts", &format!("{stdout}{stderr}"));
        for expected in [
            "kim  Kim Minjun (on_call, devops_lead)",
            "phone: +82 10-1111-2222",
            "slack: @devops-lead",
            "slack      webhook at hooks.slack.example",
            "webhook    JSON webhook at 127.0.0.1:9",
            "pagerduty  Events API v2, routing key configured",
            "lee  Lee Seoyeon (backend_lead)",
            "park  Park Jiho (dba)",
            "choi  Choi Yuna (cto)",
            "atlas-support  MongoDB Atlas support (vendor mongodb-atlas)",
            "instructions: Open a case with support@mongodb.com, priority High",
            "aws-support  AWS Support (vendor aws)",
            "instructions: AWS Console → Support → Create case, priority High",
        ] {
            assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
        }
    }

    let out = cluster.cli(VIEWER, &["contacts", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_no_secret("contacts --json", &stdout);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["atlas-support", "aws-support", "choi", "kim", "lee", "park"]);
    let kim = &v[3];
    assert_eq!(kim["roles"], serde_json::json!(["on_call", "devops_lead"]));
    assert_eq!(kim["slack_handle"], "@devops-lead");
    assert_eq!(
        kim["channels"],
        serde_json::json!([
            {"kind": "slack", "detail": "webhook at hooks.slack.example"},
            {"kind": "webhook", "detail": "JSON webhook at 127.0.0.1:9"},
            {"kind": "pagerduty", "detail": "Events API v2, routing key configured"},
        ])
    );
    assert_eq!(v[0]["vendor"], "mongodb-atlas");
    assert_eq!(v[0]["email"], "support@mongodb.com");
    assert_eq!(v[0]["roles"], serde_json::json!([]));
    assert_eq!(v[5]["channels"], serde_json::json!([]));

    // An agent's certificate is authenticated but may not read it.
    cluster.pki.issue("cache-1", Role::Agent);
    let out = cluster.cli("cache-1", &["contacts"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("may not call Control/ListContacts"), "{stderr}");

    assert_no_secret("the coordinator log", &cluster.coordinator.log_text());
}

#[test]
fn a_coordinator_with_a_bad_contacts_section_refuses_to_start() {
    let files = tempfile::tempdir().unwrap();
    let good = roster(files.path());
    fs::write(files.path().join("short.key"), "R0ut1ngKeyR0ut1ngKey\n").unwrap();
    fs::write(files.path().join("empty.url"), "\n").unwrap();
    let d = files.path().display();
    let table = [
        (
            good.replace("\"devops_lead\"]", "\"devops_laed\"]"),
            "contacts.kim: roles: unknown role \"devops_laed\" (did you mean \"devops_lead\"?)".to_string(),
        ),
        (
            good.replace(&format!("{d}/pd.key"), &format!("{d}/short.key")),
            format!(
                "contacts.choi: pagerduty_routing_key_file: {d}/short.key: not a PagerDuty Events API v2 \
                 integration key (32 letters and digits; this one has 20 characters)"
            ),
        ),
        (
            good.replace(&format!("{d}/slack.url"), &format!("{d}/empty.url")),
            format!("contacts.kim: slack_webhook_file: {d}/empty.url is empty"),
        ),
        (
            good.replace(&format!("{d}/hook.url"), &format!("{d}/absent.url")),
            format!("contacts.kim: webhook_file: cannot read {d}/absent.url"),
        ),
        (
            good.replace("vendor = \"aws\"", "vendor = \"aws\"\nroles = [\"cto\"]"),
            "contacts.aws-support: vendor: a contact is a person (roles) or a vendor (vendor), not both".to_string(),
        ),
        // A field the section does not have: the config parser's error, at
        // its line and column (exit 2, like every unparsable config).
        (
            good.replace("slack_handle = \"@backend-lead\"", "slack = \"@backend-lead\""),
            "coordinator.toml:24:1: unknown field `slack`".to_string(),
        ),
    ];
    for (toml, expected) in table {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("pki"));
        pki.issue("coordinator", Role::Coordinator);
        let extras = CoordinatorExtras { toml, env: vec![] };
        let cfg = ripcord_tests::write_coordinator_config(dir.path(), &pki, "127.0.0.1:0", &extras);
        let mut coordinator = ripcord_tests::spawn_coordinator(dir.path(), &cfg, &extras);
        let status =
            eventually("the coordinator to exit", || coordinator.exited().ok_or_else(|| "still running".into()));
        let log = coordinator.log_text();
        let code = if expected.contains("unknown field") { 2 } else { 1 };
        assert_eq!(status.code(), Some(code), "{log}");
        assert!(log.contains(&expected), "no {expected:?} in:\n{log}");
        // One line says why (besides the test certificate's expiry warning).
        assert_eq!(log.lines().filter(|l| l.contains("ripcord-coordinator: ")).count(), 1, "{log}");
        assert_no_secret("the coordinator log", &log);
        assert!(!log.contains("R0ut1ngKeyR0ut1ngKey"), "{log}");
        assert!(!dir.path().join("coordinator.addr").exists(), "it wrote its address");
    }
}
