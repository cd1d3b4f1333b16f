use super::*;
use crate::contacts::{Contact, Kind};

fn person(id: &str, roles: &[ContactRole]) -> Contact {
    Contact {
        id: id.into(),
        name: id.into(),
        kind: Kind::Person { roles: roles.to_vec(), slack_handle: None },
        phone: None,
        channels: vec![],
    }
}

fn vendor(id: &str, v: Vendor) -> Contact {
    Contact {
        id: id.into(),
        name: v.default_name().into(),
        kind: Kind::Vendor { vendor: v, instructions: "open a case".into(), url: None, email: None },
        phone: None,
        channels: vec![],
    }
}

fn full_roster() -> Roster {
    Roster::from_contacts([
        person("kim", &[ContactRole::OnCall, ContactRole::DevopsLead]),
        person("lee", &[ContactRole::BackendLead]),
        person("park", &[ContactRole::Cto]),
        vendor("atlas-support", Vendor::MongodbAtlas),
        vendor("aws-support", Vendor::Aws),
    ])
}

fn section(toml_text: &str) -> EscalationSection {
    toml::from_str(toml_text).unwrap()
}

#[test]
fn without_a_section_the_playbook_tiers_apply_once_there_are_contacts() {
    assert!(Escalation::load(None, &Roster::default()).unwrap().policy_for("redis-aof", Mode::Recovery).is_empty());
    let e = Escalation::load(None, &full_roster()).unwrap();
    let p = e.policy_for("redis-aof", Mode::Recovery);
    let tiers: Vec<(u64, Vec<&str>)> =
        p.tiers.iter().map(|t| (t.after_ms / 60_000, t.to.iter().map(String::as_str).collect())).collect();
    assert_eq!(
        tiers,
        vec![
            (0, vec!["on_call"]),
            (15, vec!["devops_lead", "backend_lead"]),
            (30, vec!["cto", "mongodb-atlas", "aws"]),
        ]
    );
    assert_eq!(p.notices_to, vec!["on_call"]);
    assert!(p.tells(Topic::StepFailed) && !p.on.contains(&Topic::Escalation));
}

#[test]
fn the_playbook_leaves_out_recipients_nobody_holds() {
    let roster = Roster::from_contacts([person("kim", &[ContactRole::OnCall])]);
    let p = Escalation::load(None, &roster).unwrap().policy_for("api-down", Mode::Recovery);
    assert_eq!(p.tiers[0].to, vec!["on_call"]);
    assert!(p.tiers[1].to.is_empty() && p.tiers[2].to.is_empty());
}

#[test]
fn drills_page_nobody_unless_the_config_says_and_runbooks_have_their_own_tiers() {
    let text = r#"
        [[tiers]]
        after = "2s"
        to = ["on_call"]
        text = "one"
        [[tiers]]
        after = "4s"
        to = ["lee", "aws"]
        text = "two"
        [runbooks.redis-oom]
        tiers = [{ after = "1m", to = ["cto"], text = "oom" }]
    "#;
    let e = Escalation::load(Some(&section(text)), &full_roster()).unwrap();
    let p = e.policy_for("redis-aof", Mode::Recovery);
    assert_eq!(p.tiers.iter().map(|t| t.after_ms).collect::<Vec<_>>(), vec![2_000, 4_000]);
    assert_eq!(p.tiers[1].to, vec!["lee", "aws"]);
    assert!(e.policy_for("redis-aof", Mode::Drill).tiers.is_empty(), "drills do not page");
    assert_eq!(e.policy_for("redis-aof", Mode::Drill).notices_to, vec!["on_call"], "their notices still go out");
    let oom = e.policy_for("redis-oom", Mode::Recovery);
    assert_eq!((oom.tiers.len(), oom.tiers[0].to.clone()), (1, vec!["cto".to_string()]));
    let drills = Escalation::load(Some(&section("drills = true\n")), &full_roster()).unwrap();
    assert_eq!(drills.policy_for("redis-aof", Mode::Drill).tiers.len(), 3, "the playbook's, in drills too");
}

#[test]
fn a_policy_naming_nobody_or_out_of_order_is_refused_with_where() {
    let table: [(&str, &str); 5] = [
        (
            "[[tiers]]\nafter = \"0m\"\nto = [\"on_cal\"]\ntext = \"x\"\n",
            "escalation.tiers[0]: to: \"on_cal\" is no role, vendor or contact (did you mean \"on_call\"?)",
        ),
        (
            "[[tiers]]\nafter = \"0m\"\nto = [\"dba\"]\ntext = \"x\"\n",
            "escalation.tiers[0]: to: nobody in [contacts] holds role dba",
        ),
        (
            "[[tiers]]\nafter = \"5m\"\nto = [\"kim\"]\ntext = \"x\"\n[[tiers]]\nafter = \"1m\"\nto = [\"kim\"]\ntext = \"y\"\n",
            "escalation.tiers[1]: after: 1m is not after the previous tier's 300000 ms",
        ),
        ("notices_to = [\"hosting\"]\n", "escalation.notices_to: no [contacts] section has vendor = \"hosting\""),
        (
            "[runbooks.api-down]\ntiers = [{ after = \"soon\", to = [\"kim\"], text = \"x\" }]\n",
            "escalation.runbooks.api-down.tiers[0]: after:",
        ),
    ];
    for (text, expected) in table {
        let err = Escalation::load(Some(&section(text)), &full_roster()).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{text}: got {err}");
    }
}
