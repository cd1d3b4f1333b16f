//! `ListContacts`: the roster as the CLI shows it. A channel goes out as
//! its kind and [`Channel::describe`] (a webhook's host, or that a routing
//! key is configured), never its secret.

use crate::contacts::{Channel, ChannelKind, Contact, Kind, Roster};
use ripcord_proto::v1::{self as pb, ChannelInfo, ContactInfo, ListContactsResponse};

fn kind(k: ChannelKind) -> pb::ChannelKind {
    match k {
        ChannelKind::Slack => pb::ChannelKind::Slack,
        ChannelKind::Webhook => pb::ChannelKind::Webhook,
        ChannelKind::PagerDuty => pb::ChannelKind::Pagerduty,
    }
}

fn channel(c: &Channel) -> ChannelInfo {
    ChannelInfo { kind: kind(c.kind()).into(), detail: c.describe() }
}

fn contact(c: &Contact) -> ContactInfo {
    let mut info = ContactInfo {
        name: c.id.clone(),
        display_name: c.name.clone(),
        phone: c.phone.clone().unwrap_or_default(),
        channels: c.channels.iter().map(channel).collect(),
        ..Default::default()
    };
    match &c.kind {
        Kind::Person { roles, slack_handle } => {
            info.roles = roles.iter().map(|r| r.to_string()).collect();
            info.slack_handle = slack_handle.clone().unwrap_or_default();
        }
        Kind::Vendor { vendor, instructions, url, email } => {
            info.vendor = vendor.to_string();
            info.instructions = instructions.clone();
            info.url = url.clone().unwrap_or_default();
            info.email = email.clone().unwrap_or_default();
        }
    }
    info
}

pub fn list(roster: &Roster) -> ListContactsResponse {
    ListContactsResponse { contacts: roster.iter().map(contact).collect() }
}
