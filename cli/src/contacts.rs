//! `ripcord contacts [--json]`: the coordinator's roster, people and
//! vendors, with each one's channels as the coordinator describes them (a
//! webhook's host, that a routing key is configured): never their secrets,
//! which the coordinator does not send.

use crate::Failure;
use ripcord_cli::{client, settings};
use ripcord_proto::v1::{ChannelInfo, ChannelKind, ContactInfo, ListContactsRequest};
use serde_json::{Value, json};
use std::fmt::Write;
use std::process::ExitCode;

pub async fn contacts(s: settings::Settings, json: bool) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let list = c.list_contacts(ListContactsRequest {}).await.map_err(|e| client::explain(&e))?.into_inner().contacts;
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(&list))?);
    } else {
        print!("{}", text(&list));
    }
    Ok(ExitCode::SUCCESS)
}

fn kind(c: &ChannelInfo) -> &'static str {
    match ChannelKind::try_from(c.kind).unwrap_or(ChannelKind::Unspecified) {
        ChannelKind::Slack => "slack",
        ChannelKind::Webhook => "webhook",
        ChannelKind::Pagerduty => "pagerduty",
        ChannelKind::Unspecified => "unknown",
    }
}

fn opt(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

/// One object per contact; absent fields are null.
pub fn to_json(list: &[ContactInfo]) -> Value {
    Value::Array(
        list.iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "display_name": c.display_name,
                    "roles": c.roles,
                    "vendor": opt(&c.vendor),
                    "phone": opt(&c.phone),
                    "slack_handle": opt(&c.slack_handle),
                    "instructions": opt(&c.instructions),
                    "url": opt(&c.url),
                    "email": opt(&c.email),
                    "channels": c.channels.iter().map(|ch| json!({"kind": kind(ch), "detail": ch.detail})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A block per contact: who, how to reach them, their channels.
pub fn text(list: &[ContactInfo]) -> String {
    if list.is_empty() {
        return "no contacts (the coordinator's config has no [contacts.NAME] sections)\n".into();
    }
    let mut out = String::new();
    for (i, c) in list.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let what = if c.vendor.is_empty() { c.roles.join(", ") } else { format!("vendor {}", c.vendor) };
        let _ = writeln!(out, "{}  {} ({what})", c.name, c.display_name);
        for (label, v) in [
            ("phone", &c.phone),
            ("slack", &c.slack_handle),
            ("instructions", &c.instructions),
            ("email", &c.email),
            ("url", &c.url),
        ] {
            if !v.is_empty() {
                let _ = writeln!(out, "  {label}: {v}");
            }
        }
        if c.channels.is_empty() {
            out.push_str("  channels: none\n");
        } else {
            out.push_str("  channels:\n");
            for ch in &c.channels {
                let _ = writeln!(out, "    {:<10} {}", kind(ch), ch.detail);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster() -> Vec<ContactInfo> {
        vec![
            ContactInfo {
                name: "kim".into(),
                display_name: "Kim Minjun".into(),
                roles: vec!["on_call".into(), "devops_lead".into()],
                phone: "+82 10".into(),
                slack_handle: "@devops-lead".into(),
                channels: vec![
                    ChannelInfo { kind: ChannelKind::Slack.into(), detail: "webhook at hooks.slack.com".into() },
                    ChannelInfo {
                        kind: ChannelKind::Pagerduty.into(),
                        detail: "Events API v2, routing key configured".into(),
                    },
                ],
                ..Default::default()
            },
            ContactInfo {
                name: "atlas".into(),
                display_name: "MongoDB Atlas support".into(),
                vendor: "mongodb-atlas".into(),
                instructions: "Open a case with support@mongodb.com, priority High".into(),
                email: "support@mongodb.com".into(),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn text_shows_people_vendors_and_channels() {
        let t = text(&roster());
        let expected = "kim  Kim Minjun (on_call, devops_lead)\n  phone: +82 10\n  slack: @devops-lead\n  channels:\n    slack      webhook at hooks.slack.com\n    pagerduty  Events API v2, routing key configured\n\natlas  MongoDB Atlas support (vendor mongodb-atlas)\n  instructions: Open a case with support@mongodb.com, priority High\n  email: support@mongodb.com\n  channels: none\n";
        assert_eq!(t, expected);
        assert!(text(&[]).starts_with("no contacts"));
    }

    #[test]
    fn json_has_every_field_and_null_for_absent_ones() {
        let v = to_json(&roster());
        assert_eq!(v[0]["roles"], json!(["on_call", "devops_lead"]));
        assert_eq!(v[0]["vendor"], Value::Null);
        assert_eq!(
            v[0]["channels"][1],
            json!({"kind": "pagerduty", "detail": "Events API v2, routing key configured"})
        );
        assert_eq!(v[1]["vendor"], "mongodb-atlas");
        assert_eq!(v[1]["slack_handle"], Value::Null);
        assert_eq!(v[1]["channels"], json!([]));
    }
}
