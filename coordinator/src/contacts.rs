//! `[contacts.NAME]` in the coordinator's config: the roster of people and
//! vendors the playbook escalates to, and the channels that reach each.
//!
//! ```toml
//! [contacts.kim]
//! name = "Kim Minjun"                      # shown to people
//! roles = ["on_call", "devops_lead"]       # on_call, devops_lead, backend_lead, dba, cto
//! phone = "+82 10-1234-5678"               # not secret
//! slack_handle = "@devops-lead"
//! slack_webhook_file = "secrets/kim-slack.url"        # a Slack-compatible webhook URL
//! webhook_file = "secrets/kim-hook.url"               # a generic JSON webhook URL
//! pagerduty_routing_key_file = "secrets/devops.pdkey" # Events API v2 integration key
//!
//! [contacts.atlas-support]
//! vendor = "mongodb-atlas"                 # mongodb-atlas, aws or hosting
//! # instructions, email and url default to the playbook's for the vendor
//! ```
//!
//! A contact is a person (it has `roles`) or a vendor (it has `vendor`),
//! never both. Every channel is optional. Webhook URLs and routing keys are
//! credentials: they are read from their files (relative to the config
//! file; keep them 0600) once, at start, before the coordinator binds, and
//! held in [`Secret`]. What leaves the coordinator about a channel is its
//! [`Channel::describe`]: the kind and, for a webhook, the URL's host; never
//! a path, a token or any part of a key.
//!
//! The escalation policy asks the [`Roster`] by role ("tier 2 →
//! devops_lead + backend_lead": [`Roster::for_roles`]) or by name, and gets
//! each contact with its channels.

use crate::credentials::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Length of a PagerDuty Events API v2 integration (routing) key.
pub const ROUTING_KEY_LEN: usize = 32;

/// The playbook's on-call roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactRole {
    /// The on-call DevOps engineer (escalation tier 1).
    OnCall,
    DevopsLead,
    BackendLead,
    Dba,
    Cto,
}

impl ContactRole {
    pub const ALL: [ContactRole; 5] =
        [ContactRole::OnCall, ContactRole::DevopsLead, ContactRole::BackendLead, ContactRole::Dba, ContactRole::Cto];

    /// The name in the config (`devops_lead`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContactRole::OnCall => "on_call",
            ContactRole::DevopsLead => "devops_lead",
            ContactRole::BackendLead => "backend_lead",
            ContactRole::Dba => "dba",
            ContactRole::Cto => "cto",
        }
    }
}

impl fmt::Display for ContactRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name the roster does not know: a role, a vendor or a contact; its
/// message names the closest known one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    Role(String),
    Vendor(String),
    Contact { name: String, known: Vec<String> },
}

impl std::error::Error for Unknown {}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn hint<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
            ripcord_engine::hint::closest(name, known.iter().copied())
        }
        match self {
            Unknown::Role(s) => match hint(s, &ContactRole::ALL.map(ContactRole::as_str)) {
                Some(h) => write!(f, "unknown role \"{s}\" (did you mean \"{h}\"?)"),
                None => write!(
                    f,
                    "unknown role \"{s}\" (roles are {})",
                    ContactRole::ALL.map(ContactRole::as_str).join(", ")
                ),
            },
            Unknown::Vendor(s) => match hint(s, &Vendor::ALL.map(Vendor::as_str)) {
                Some(h) => write!(f, "unknown vendor \"{s}\" (did you mean \"{h}\"?)"),
                None => {
                    write!(f, "unknown vendor \"{s}\" (vendors are {})", Vendor::ALL.map(Vendor::as_str).join(", "))
                }
            },
            Unknown::Contact { name, known } => {
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                match hint(name, &known) {
                    Some(h) => write!(f, "no contact \"{name}\" (did you mean \"{h}\"?)"),
                    None => write!(f, "no contact \"{name}\" (add a [contacts.{name}] section)"),
                }
            }
        }
    }
}

impl FromStr for ContactRole {
    type Err = Unknown;

    /// A role by its config name; an unknown one names the closest.
    fn from_str(s: &str) -> Result<Self, Unknown> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| Unknown::Role(s.to_string()))
    }
}

/// For config that names roles (an escalation tier's `roles = [...]`): an
/// unknown one is an error with the closest name.
impl<'de> Deserialize<'de> for ContactRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The external support the playbook names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vendor {
    MongodbAtlas,
    Aws,
    /// The hosting provider: its instructions are the config's to give.
    Hosting,
}

impl Vendor {
    pub const ALL: [Vendor; 3] = [Vendor::MongodbAtlas, Vendor::Aws, Vendor::Hosting];

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::MongodbAtlas => "mongodb-atlas",
            Vendor::Aws => "aws",
            Vendor::Hosting => "hosting",
        }
    }

    /// The display name when the section gives none.
    pub fn default_name(self) -> &'static str {
        match self {
            Vendor::MongodbAtlas => "MongoDB Atlas support",
            Vendor::Aws => "AWS Support",
            Vendor::Hosting => "Hosting provider",
        }
    }

    /// The playbook's instructions (긴급 연락처 → 외부 지원), if it gives any.
    pub fn default_instructions(self) -> Option<&'static str> {
        match self {
            Vendor::MongodbAtlas => Some("Open a case with support@mongodb.com, priority High"),
            Vendor::Aws => Some("AWS Console → Support → Create case, priority High"),
            Vendor::Hosting => None,
        }
    }

    pub fn default_email(self) -> Option<&'static str> {
        match self {
            Vendor::MongodbAtlas => Some("support@mongodb.com"),
            Vendor::Aws | Vendor::Hosting => None,
        }
    }

    pub fn default_url(self) -> Option<&'static str> {
        match self {
            Vendor::Aws => Some("https://console.aws.amazon.com/support/home"),
            Vendor::MongodbAtlas | Vendor::Hosting => None,
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Vendor {
    type Err = Unknown;

    fn from_str(s: &str) -> Result<Self, Unknown> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| Unknown::Vendor(s.to_string()))
    }
}

/// One `[contacts.NAME]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSection {
    /// Display name. Required for a person; a vendor defaults to its
    /// support's name ("MongoDB Atlas support").
    #[serde(default)]
    pub name: Option<String>,
    /// A person's on-call roles: on_call, devops_lead, backend_lead, dba,
    /// cto. A person has at least one; a vendor has none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// A vendor's support instead of a person: "mongodb-atlas", "aws" or
    /// "hosting".
    #[serde(default)]
    pub vendor: Option<String>,
    /// Phone number, for people to call (not secret).
    #[serde(default)]
    pub phone: Option<String>,
    /// A person's Slack handle, e.g. "@devops-lead" (not secret).
    #[serde(default)]
    pub slack_handle: Option<String>,
    /// A vendor's instructions: how to open a case and at what priority.
    /// Defaults to the playbook's for mongodb-atlas and aws; required for
    /// hosting.
    #[serde(default)]
    pub instructions: Option<String>,
    /// A vendor's support page.
    #[serde(default)]
    pub url: Option<String>,
    /// A vendor's support address (mongodb-atlas: support@mongodb.com).
    #[serde(default)]
    pub email: Option<String>,
    /// File holding a Slack-compatible incoming-webhook URL (http or https)
    /// on its first line. A credential: keep it 0600.
    #[serde(default)]
    pub slack_webhook_file: Option<PathBuf>,
    /// File holding a generic JSON webhook URL (http or https), posted one
    /// JSON object per notice. A credential: keep it 0600.
    #[serde(default)]
    pub webhook_file: Option<PathBuf>,
    /// File holding the PagerDuty Events API v2 integration (routing) key,
    /// 32 characters. A credential: keep it 0600.
    #[serde(default)]
    pub pagerduty_routing_key_file: Option<PathBuf>,
}

impl ContactSection {
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.slack_webhook_file, &mut self.webhook_file, &mut self.pagerduty_routing_key_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// A contact section that cannot be used: section, field and why. Never
/// holds a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contacts.{contact}: {field}: {message}")]
pub struct Error {
    pub contact: String,
    pub field: &'static str,
    pub message: String,
}

/// A webhook URL: a secret, with the host that may be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: Secret,
    host: String,
}

impl WebhookUrl {
    /// The URL to post to. Never log it.
    pub fn expose(&self) -> &str {
        self.url.expose()
    }
    /// The URL's host, which may be shown.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}/••••)", self.host)
    }
}

/// One way to reach a contact, with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A Slack-compatible incoming webhook (`{"text": …}`).
    Slack(WebhookUrl),
    /// A generic JSON webhook.
    Webhook(WebhookUrl),
    /// PagerDuty Events API v2, by integration (routing) key.
    PagerDuty { routing_key: Secret },
}

/// The kind of a channel, for what is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Slack,
    Webhook,
    PagerDuty,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
            ChannelKind::PagerDuty => "pagerduty",
        }
    }
}

impl Channel {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Channel::Slack(_) => ChannelKind::Slack,
            Channel::Webhook(_) => ChannelKind::Webhook,
            Channel::PagerDuty { .. } => ChannelKind::PagerDuty,
        }
    }

    /// What may be shown about it: the webhook's host, or that a routing
    /// key is configured. No path, token or part of a key.
    pub fn describe(&self) -> String {
        match self {
            Channel::Slack(u) => format!("webhook at {}", u.host()),
            Channel::Webhook(u) => format!("JSON webhook at {}", u.host()),
            Channel::PagerDuty { .. } => "Events API v2, routing key configured".into(),
        }
    }
}

/// Who a contact is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Person { roles: Vec<ContactRole>, slack_handle: Option<String> },
    Vendor { vendor: Vendor, instructions: String, url: Option<String>, email: Option<String> },
}

/// One contact of the roster, channels loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The section name (`[contacts.NAME]`).
    pub id: String,
    /// The display name.
    pub name: String,
    pub kind: Kind,
    pub phone: Option<String>,
    /// In the order slack, webhook, pagerduty (those configured).
    pub channels: Vec<Channel>,
}

impl Contact {
    /// A person's roles (none for a vendor).
    pub fn roles(&self) -> &[ContactRole] {
        match &self.kind {
            Kind::Person { roles, .. } => roles,
            Kind::Vendor { .. } => &[],
        }
    }

    pub fn vendor(&self) -> Option<Vendor> {
        match &self.kind {
            Kind::Vendor { vendor, .. } => Some(*vendor),
            Kind::Person { .. } => None,
        }
    }

    pub fn has_role(&self, role: ContactRole) -> bool {
        self.roles().contains(&role)
    }

    /// The channel of `kind`, if configured.
    pub fn channel(&self, kind: ChannelKind) -> Option<&Channel> {
        self.channels.iter().find(|c| c.kind() == kind)
    }
}

/// Every contact the coordinator holds, by section name. Its `Debug` shows
/// no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    contacts: BTreeMap<String, Contact>,
}

impl Roster {
    /// Checks every section and reads every channel file. Fails on the
    /// first section that cannot be used, naming it and the field.
    pub fn load(config: &BTreeMap<String, ContactSection>) -> Result<Self, Error> {
        let contacts = config.iter().map(|(id, s)| Ok((id.clone(), load_one(id, s)?))).collect::<Result<_, Error>>()?;
        Ok(Self { contacts })
    }

    /// A roster of contacts built elsewhere (tests).
    pub fn from_contacts(contacts: impl IntoIterator<Item = Contact>) -> Self {
        Self { contacts: contacts.into_iter().map(|c| (c.id.clone(), c)).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.contacts.len()
    }

    /// Every contact, by section name.
    pub fn iter(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values()
    }

    /// The contact `[contacts.NAME]`.
    pub fn get(&self, name: &str) -> Option<&Contact> {
        self.contacts.get(name)
    }

    /// The contact `[contacts.NAME]`, or an error naming the closest one.
    pub fn lookup(&self, name: &str) -> Result<&Contact, Unknown> {
        self.get(name)
            .ok_or_else(|| Unknown::Contact { name: name.to_string(), known: self.contacts.keys().cloned().collect() })
    }

    /// The people holding `role`, by section name.
    pub fn by_role(&self, role: ContactRole) -> impl Iterator<Item = &Contact> {
        self.contacts.values().filter(move |c| c.has_role(role))
    }

    /// The people holding any of `roles`, each once, by section name: an
    /// escalation tier's recipients.
    pub fn for_roles(&self, roles: &[ContactRole]) -> Vec<&Contact> {
        self.contacts.values().filter(|c| roles.iter().any(|r| c.has_role(*r))).collect()
    }

    /// The vendors' support contacts, by section name.
    pub fn vendors(&self) -> impl Iterator<Item = &Contact> {
        self.contacts.values().filter(|c| c.vendor().is_some())
    }
}

fn load_one(id: &str, s: &ContactSection) -> Result<Contact, Error> {
    let err = |field: &'static str, message: String| Error { contact: id.to_string(), field, message };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(err("section name", "a contact's section name has only letters, digits, '_' and '-'".into()));
    }
    let text = |field: &'static str, v: &Option<String>| -> Result<Option<String>, Error> {
        match v.as_deref().map(str::trim) {
            Some("") => Err(err(field, "is empty (leave it out instead)".into())),
            other => Ok(other.map(str::to_string)),
        }
    };
    let name = text("name", &s.name)?;
    let phone = text("phone", &s.phone)?;
    let kind = match (&s.vendor, s.roles.is_empty()) {
        (Some(_), false) => {
            return Err(err("vendor", "a contact is a person (roles) or a vendor (vendor), not both".into()));
        }
        (None, true) => {
            return Err(err(
                "roles",
                "a person needs at least one role (on_call, devops_lead, backend_lead, dba, cto); a vendor needs \
                 vendor = \"mongodb-atlas\", \"aws\" or \"hosting\""
                    .into(),
            ));
        }
        (None, false) => {
            for (field, set) in [("instructions", s.instructions.is_some()), ("url", s.url.is_some())]
                .into_iter()
                .chain([("email", s.email.is_some())])
            {
                if set {
                    return Err(err(field, "only a vendor has this (a person has phone and slack_handle)".into()));
                }
            }
            let mut roles = Vec::new();
            for r in &s.roles {
                let role: ContactRole = r.parse().map_err(|m: Unknown| err("roles", m.to_string()))?;
                if roles.contains(&role) {
                    return Err(err("roles", format!("\"{role}\" is given twice")));
                }
                roles.push(role);
            }
            Kind::Person { roles, slack_handle: text("slack_handle", &s.slack_handle)? }
        }
        (Some(v), true) => {
            let vendor: Vendor = v.parse().map_err(|m: Unknown| err("vendor", m.to_string()))?;
            if s.slack_handle.is_some() {
                return Err(err("slack_handle", "only a person has a Slack handle".into()));
            }
            let instructions = match text("instructions", &s.instructions)? {
                Some(i) => i,
                None => vendor.default_instructions().map(str::to_string).ok_or_else(|| {
                    err("instructions", format!("vendor \"{vendor}\" needs instructions: how to reach its support"))
                })?,
            };
            let url = text("url", &s.url)?.or_else(|| vendor.default_url().map(str::to_string));
            let email = text("email", &s.email)?.or_else(|| vendor.default_email().map(str::to_string));
            Kind::Vendor { vendor, instructions, url, email }
        }
    };
    let name = match (name, &kind) {
        (Some(n), _) => n,
        (None, Kind::Vendor { vendor, .. }) => vendor.default_name().to_string(),
        (None, Kind::Person { .. }) => return Err(err("name", "a person needs a display name".into())),
    };
    let mut channels = Vec::new();
    if let Some(path) = &s.slack_webhook_file {
        channels.push(Channel::Slack(webhook(path, "slack_webhook_file", &err)?));
    }
    if let Some(path) = &s.webhook_file {
        channels.push(Channel::Webhook(webhook(path, "webhook_file", &err)?));
    }
    if let Some(path) = &s.pagerduty_routing_key_file {
        let key = read_secret(path, "pagerduty_routing_key_file", &err)?;
        let len = key.chars().count();
        if len != ROUTING_KEY_LEN || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            // Its length is safe to say; its characters are not.
            return Err(err(
                "pagerduty_routing_key_file",
                format!(
                    "{}: not a PagerDuty Events API v2 integration key ({ROUTING_KEY_LEN} letters and digits; this \
                     one has {len} characters)",
                    path.display()
                ),
            ));
        }
        channels.push(Channel::PagerDuty { routing_key: Secret::new(key) });
    }
    Ok(Contact { id: id.to_string(), name, kind, phone, channels })
}

/// The first line of `path`, trimmed; never empty.
fn read_secret(
    path: &Path,
    field: &'static str,
    err: &impl Fn(&'static str, String) -> Error,
) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))?;
    let value = text.lines().next().unwrap_or("").trim();
    if value.is_empty() {
        return Err(err(field, format!("{} is empty", path.display())));
    }
    Ok(value.to_string())
}

fn webhook(
    path: &Path,
    field: &'static str,
    err: &impl Fn(&'static str, String) -> Error,
) -> Result<WebhookUrl, Error> {
    let value = read_secret(path, field, err)?;
    // The parse error is not shown: it could quote the URL.
    let bad = || err(field, format!("{}: not an http(s) URL with a host", path.display()));
    let url = reqwest::Url::parse(&value).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(bad()),
    };
    Ok(WebhookUrl { url: Secret::new(value), host })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789ABCDEF";
    const SLACK: &str = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
    const HOOK: &str = "http://127.0.0.1:9/hooks/s3cr3t-token";

    fn section(toml_text: &str) -> BTreeMap<String, ContactSection> {
        #[derive(Deserialize)]
        struct F {
            contacts: BTreeMap<String, ContactSection>,
        }
        toml::from_str::<F>(toml_text).unwrap().contacts
    }

    fn files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), format!("{KEY}\n")).unwrap();
        std::fs::write(dir.path().join("slack"), format!("  {SLACK}\n")).unwrap();
        std::fs::write(dir.path().join("hook"), HOOK).unwrap();
        std::fs::write(dir.path().join("empty"), "\n  \n").unwrap();
        std::fs::write(dir.path().join("short"), "abc123\n").unwrap();
        std::fs::write(dir.path().join("ftp"), "ftp://files.example.com/x\n").unwrap();
        dir
    }

    fn load(dir: &Path, text: &str) -> Result<Roster, Error> {
        let mut config = section(text);
        for s in config.values_mut() {
            s.resolve_paths(dir);
        }
        Roster::load(&config)
    }

    const ROSTER: &str = r#"
[contacts.kim]
name = "Kim Minjun"
roles = ["on_call", "devops_lead"]
phone = "+82 10-1234-5678"
slack_handle = "@devops-lead"
slack_webhook_file = "slack"
webhook_file = "hook"
pagerduty_routing_key_file = "key"

[contacts.lee]
name = "Lee Seoyeon"
roles = ["backend_lead"]
slack_handle = "@backend-lead"
webhook_file = "hook"

[contacts.park]
name = "Park Jiho"
roles = ["dba"]

[contacts.choi]
name = "Choi CTO"
roles = ["cto"]
pagerduty_routing_key_file = "key"

[contacts.atlas]
vendor = "mongodb-atlas"

[contacts.aws]
vendor = "aws"
"#;

    #[test]
    fn a_roster_parses_people_vendors_and_channels() {
        let dir = files();
        let r = load(dir.path(), ROSTER).unwrap();
        assert_eq!(r.len(), 6);
        let kim = r.get("kim").unwrap();
        assert_eq!(kim.name, "Kim Minjun");
        assert_eq!(kim.roles(), [ContactRole::OnCall, ContactRole::DevopsLead]);
        assert_eq!(kim.phone.as_deref(), Some("+82 10-1234-5678"));
        let kinds: Vec<_> = kim.channels.iter().map(Channel::kind).collect();
        assert_eq!(kinds, [ChannelKind::Slack, ChannelKind::Webhook, ChannelKind::PagerDuty]);
        match kim.channel(ChannelKind::Slack) {
            Some(Channel::Slack(u)) => assert_eq!((u.expose(), u.host()), (SLACK, "hooks.slack.com")),
            other => panic!("{other:?}"),
        }
        match kim.channel(ChannelKind::PagerDuty) {
            Some(Channel::PagerDuty { routing_key }) => assert_eq!(routing_key.expose(), KEY),
            other => panic!("{other:?}"),
        }
        let atlas = r.get("atlas").unwrap();
        assert_eq!(atlas.name, "MongoDB Atlas support");
        match &atlas.kind {
            Kind::Vendor { vendor, instructions, email, .. } => {
                assert_eq!(*vendor, Vendor::MongodbAtlas);
                assert!(instructions.contains("support@mongodb.com") && instructions.contains("High"));
                assert_eq!(email.as_deref(), Some("support@mongodb.com"));
            }
            other => panic!("{other:?}"),
        }
        let aws = r.get("aws").unwrap();
        assert!(matches!(&aws.kind, Kind::Vendor { instructions, .. } if instructions.contains("AWS Console")));
        assert!(aws.channels.is_empty());
    }

    #[test]
    fn lookups_by_role_by_name_and_vendors() {
        let dir = files();
        let r = load(dir.path(), ROSTER).unwrap();
        fn ids(v: Vec<&Contact>) -> Vec<String> {
            v.into_iter().map(|c| c.id.clone()).collect()
        }
        assert_eq!(ids(r.by_role(ContactRole::OnCall).collect()), ["kim"]);
        assert_eq!(ids(r.by_role(ContactRole::Dba).collect()), ["park"]);
        // Tier 2: DevOps lead + backend lead.
        assert_eq!(ids(r.for_roles(&[ContactRole::DevopsLead, ContactRole::BackendLead])), ["kim", "lee"]);
        // Someone with two of the roles is listed once.
        assert_eq!(ids(r.for_roles(&[ContactRole::OnCall, ContactRole::DevopsLead])), ["kim"]);
        assert_eq!(ids(r.vendors().collect()), ["atlas", "aws"]);
        assert_eq!(r.lookup("lee").unwrap().name, "Lee Seoyeon");
        assert_eq!(r.lookup("le").unwrap_err().to_string(), "no contact \"le\" (did you mean \"lee\"?)");
        assert!(r.lookup("zzzzzzzz").unwrap_err().to_string().contains("add a [contacts.zzzzzzzz] section"));
        assert_eq!("devops_lead".parse::<ContactRole>(), Ok(ContactRole::DevopsLead));
        #[derive(Deserialize)]
        struct Tier {
            roles: Vec<ContactRole>,
        }
        let e = toml::from_str::<Tier>("roles = [\"cto\", \"backend_laed\"]").err().unwrap().to_string();
        assert!(e.contains("unknown role \"backend_laed\" (did you mean \"backend_lead\"?)"), "{e}");
        let t: Tier = toml::from_str("roles = [\"cto\", \"backend_lead\"]").unwrap();
        assert_eq!(t.roles, [ContactRole::Cto, ContactRole::BackendLead]);
    }

    #[test]
    fn debug_shows_no_secret() {
        let dir = files();
        let r = load(dir.path(), ROSTER).unwrap();
        let debug = format!("{r:?}");
        for secret in [KEY, SLACK, HOOK, "XXXXsecretXXXX", "s3cr3t-token", "/services/"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        let shown: Vec<String> = r.iter().flat_map(|c| c.channels.iter().map(Channel::describe)).collect();
        assert!(shown.contains(&"webhook at hooks.slack.com".to_string()), "{shown:?}");
        assert!(shown.contains(&"JSON webhook at 127.0.0.1:9".to_string()), "{shown:?}");
        for s in &shown {
            assert!(!s.contains("hooks/") && !s.contains("services") && !s.contains("abcdef"), "{s}");
        }
    }

    #[test]
    fn bad_sections_name_the_contact_field_and_reason() {
        let dir = files();
        let d = dir.path().display().to_string();
        let person = "[contacts.kim]\nname = \"Kim\"\nroles = [\"on_call\"]\n";
        let table: Vec<(String, String)> = vec![
            (
                "[contacts.kim]\nname = \"Kim\"\nroles = [\"devops_laed\"]\n".into(),
                "contacts.kim: roles: unknown role \"devops_laed\" (did you mean \"devops_lead\"?)".into(),
            ),
            (
                "[contacts.kim]\nname = \"Kim\"\nroles = [\"janitor\"]\n".into(),
                "contacts.kim: roles: unknown role \"janitor\" (roles are on_call, devops_lead, backend_lead, dba, cto)"
                    .into(),
            ),
            (
                "[contacts.kim]\nname = \"Kim\"\nroles = [\"dba\", \"dba\"]\n".into(),
                "contacts.kim: roles: \"dba\" is given twice".into(),
            ),
            ("[contacts.kim]\nname = \"Kim\"\n".into(), "contacts.kim: roles: a person needs at least one role".into()),
            ("[contacts.kim]\nroles = [\"dba\"]\n".into(), "contacts.kim: name: a person needs a display name".into()),
            (
                "[contacts.x]\nvendor = \"aws\"\nroles = [\"dba\"]\n".into(),
                "contacts.x: vendor: a contact is a person (roles) or a vendor (vendor), not both".into(),
            ),
            (
                "[contacts.x]\nvendor = \"mongodb-atlass\"\n".into(),
                "contacts.x: vendor: unknown vendor \"mongodb-atlass\" (did you mean \"mongodb-atlas\"?)".into(),
            ),
            (
                "[contacts.x]\nvendor = \"hosting\"\n".into(),
                "contacts.x: instructions: vendor \"hosting\" needs instructions".into(),
            ),
            (format!("{person}instructions = \"call\"\n"), "contacts.kim: instructions: only a vendor has this".into()),
            (
                format!("{person}pagerduty_routing_key_file = \"absent\"\n"),
                format!("contacts.kim: pagerduty_routing_key_file: cannot read {d}/absent:"),
            ),
            (
                format!("{person}pagerduty_routing_key_file = \"empty\"\n"),
                format!("contacts.kim: pagerduty_routing_key_file: {d}/empty is empty"),
            ),
            (
                format!("{person}pagerduty_routing_key_file = \"short\"\n"),
                format!(
                    "contacts.kim: pagerduty_routing_key_file: {d}/short: not a PagerDuty Events API v2 integration \
                     key (32 letters and digits; this one has 6 characters)"
                ),
            ),
            (
                format!("{person}slack_webhook_file = \"empty\"\n"),
                format!("contacts.kim: slack_webhook_file: {d}/empty is empty"),
            ),
            (
                format!("{person}webhook_file = \"ftp\"\n"),
                format!("contacts.kim: webhook_file: {d}/ftp: not an http(s) URL with a host"),
            ),
            (
                format!("{person}slack_webhook_file = \"short\"\n"),
                format!("contacts.kim: slack_webhook_file: {d}/short: not an http(s) URL with a host"),
            ),
            (format!("{person}phone = \" \"\n"), "contacts.kim: phone: is empty".into()),
        ];
        for (text, expect) in table {
            let e = load(dir.path(), &text).unwrap_err().to_string();
            assert!(e.starts_with(&expect), "expected {expect:?}, got {e:?}");
            assert!(!e.contains("abc123") && !e.contains("files.example.com"), "a secret is shown: {e}");
        }
    }

    #[test]
    fn the_shipped_example_roster_reads() {
        let example = include_str!("../../deploy/config/coordinator.toml");
        let start = example.find("# [contacts.kim]").expect("the example has contacts");
        // Uncomment the block (it ends at the first empty line).
        let text: String = example[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut config = section(&text);
        let dir = files();
        for s in config.values_mut() {
            for (p, file) in [
                (&mut s.slack_webhook_file, "slack"),
                (&mut s.webhook_file, "hook"),
                (&mut s.pagerduty_routing_key_file, "key"),
            ] {
                if let Some(p) = p {
                    *p = dir.path().join(file);
                }
            }
        }
        let r = Roster::load(&config).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(r.for_roles(&[ContactRole::DevopsLead, ContactRole::BackendLead]).len(), 2);
        let vendors: Vec<Option<Vendor>> = r.vendors().map(Contact::vendor).collect();
        assert_eq!(vendors, [Some(Vendor::MongodbAtlas), Some(Vendor::Aws), Some(Vendor::Hosting)]);
    }

    #[test]
    fn unknown_fields_are_refused_by_the_config_parser() {
        let e = toml::from_str::<ContactSection>("nmae = \"Kim\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `nmae`"), "{e}");
    }
}
