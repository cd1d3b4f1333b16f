//! Credentials the coordinator holds for runbooks, by name.
//!
//! A runbook never holds a password. It names one: `{{ credentials.NAME.user }}`,
//! `{{ credentials.NAME.password }}` or `{{ credentials.NAME.password_url_encoded }}`
//! in a step's arguments, or `credentials: NAME` for `atlas.connection_string`.
//! The engine renders such a reference as its own token (see
//! `ripcord_engine::template::credential_token`), so run state, effects,
//! events and views carry the token, never the value.
//!
//! [`Credentials::expand`] puts the values in just before an integration
//! runs, and [`Credentials::conceal`] turns them back into tokens in
//! whatever the integration answers (outputs and errors) before the driver
//! sees it. A connection string that `atlas.connection_string` built with
//! the password therefore reaches the run as
//! `mongodb+srv://chat-app:{{ credentials.chatdb.password_url_encoded }}@host`,
//! and a later step that is given that output gets the real URI again.
//!
//! Passwords live in files (`[credentials.NAME] password_file`), are read
//! once at start and are kept in [`Secret`], whose `Debug` hides them.

use ripcord_engine::template::{self, CredentialField};
use ripcord_engine::value::Value;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shortest password the coordinator accepts. Concealing finds a password
/// by its text, so it must not be text that occurs by chance.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A secret string: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(••••)")
    }
}

/// One `[credentials.NAME]` section of the coordinator config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The user name (a database user for `atlas.connection_string`).
    /// Not secret; optional for credentials that are only a password or token.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the password (or token) on its first line; surrounding
    /// whitespace is trimmed. Keep it 0600. Relative to the config file.
    pub password_file: PathBuf,
}

impl CredentialConfig {
    pub fn resolve_paths(&mut self, base: &Path) {
        if self.password_file.is_relative() {
            self.password_file = base.join(&self.password_file);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("credentials.{name}: cannot read password_file {}: {source}", path.display())]
    Read { name: String, path: PathBuf, source: std::io::Error },
    #[error("credentials.{name}: password_file {} is empty", path.display())]
    Empty { name: String, path: PathBuf },
    #[error(
        "credentials.{name}: the password in {} is shorter than {MIN_PASSWORD_LEN} characters; ripcord hides \
         passwords in outputs by their text, so it needs one that cannot be mistaken for other text",
        path.display()
    )]
    TooShort { name: String, path: PathBuf },
    #[error("credentials.{name}: a name has only letters, digits, '_' and '-'")]
    BadName { name: String },
    #[error("no credentials named \"{name}\" are configured in the coordinator (add a [credentials.{name}] section)")]
    Unknown { name: String },
    #[error("credentials \"{name}\" have no user (add user = \"…\" to [credentials.{name}])")]
    NoUser { name: String },
}

/// A user and password, for `atlas.connection_string`.
#[derive(Clone)]
pub struct DbCredentials {
    pub user: String,
    pub password: Secret,
}

#[derive(Clone)]
struct Entry {
    user: Option<String>,
    password: Secret,
}

/// Every credential the coordinator holds. Cheap to clone.
#[derive(Clone, Default)]
pub struct Credentials(Arc<Held>);

#[derive(Default)]
struct Held {
    entries: BTreeMap<String, Entry>,
    /// Every written form of every password with the token that replaces
    /// it, in the order [`Credentials::conceal_str`] replaces them: longest
    /// password first, so that one that contains another is replaced whole.
    /// Worked out once: concealing runs on every outcome.
    forms: Vec<(Secret, String)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.entries.keys()).finish()
    }
}

impl Credentials {
    /// Reads every password file. Fails on the first that cannot be used.
    pub fn load(config: &BTreeMap<String, CredentialConfig>) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (name, c) in config {
            let text = std::fs::read_to_string(&c.password_file).map_err(|source| Error::Read {
                name: name.clone(),
                path: c.password_file.clone(),
                source,
            })?;
            let password = text.trim();
            let path = || c.password_file.clone();
            if password.is_empty() {
                return Err(Error::Empty { name: name.clone(), path: path() });
            }
            if password.chars().count() < MIN_PASSWORD_LEN {
                return Err(Error::TooShort { name: name.clone(), path: path() });
            }
            map.insert(name.clone(), (c.user.clone(), Secret::new(password)));
        }
        Self::from_entries(map)
    }

    /// Credentials from values (tests, and [`Credentials::load`]).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, (Option<String>, Secret))>) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (name, (user, password)) in entries {
            if !template::credential_name_ok(&name) {
                return Err(Error::BadName { name });
            }
            map.insert(name, Entry { user, password });
        }
        let mut by_length: Vec<(&String, &Entry)> = map.iter().collect();
        by_length.sort_by_key(|(_, e)| std::cmp::Reverse(e.password.expose().len()));
        let forms = by_length
            .into_iter()
            .flat_map(|(name, e)| {
                written_forms(e.password.expose())
                    .into_iter()
                    .map(|(form, field)| (Secret::new(form), template::credential_token(name, field)))
            })
            .collect();
        Ok(Self(Arc::new(Held { entries: map, forms })))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.entries.keys().map(String::as_str)
    }

    /// The user and password named `name`, for a connection string.
    pub fn db(&self, name: &str) -> Result<DbCredentials, Error> {
        let e = self.0.entries.get(name).ok_or_else(|| Error::Unknown { name: name.into() })?;
        let user = e.user.clone().ok_or_else(|| Error::NoUser { name: name.into() })?;
        Ok(DbCredentials { user, password: e.password.clone() })
    }

    /// `v` with every credential token replaced by its value.
    pub fn expand(&self, v: &Value) -> Result<Value, Error> {
        Ok(match v {
            Value::Str(s) => Value::Str(self.expand_str(s)?),
            Value::List(l) => Value::List(l.iter().map(|x| self.expand(x)).collect::<Result<_, _>>()?),
            Value::Map(m) => {
                Value::Map(m.iter().map(|(k, x)| Ok((k.clone(), self.expand(x)?))).collect::<Result<_, Error>>()?)
            }
            other => other.clone(),
        })
    }

    fn expand_str(&self, s: &str) -> Result<String, Error> {
        let tokens = template::credential_tokens(s);
        if tokens.is_empty() {
            return Ok(s.to_string());
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for (range, name, field) in tokens {
            let e = self.0.entries.get(&name).ok_or_else(|| Error::Unknown { name: name.clone() })?;
            out.push_str(&s[at..range.start]);
            match field {
                CredentialField::User => out.push_str(e.user.as_deref().ok_or(Error::NoUser { name })?),
                CredentialField::Password => out.push_str(e.password.expose()),
                CredentialField::PasswordUrlEncoded => out.push_str(&percent_encode(e.password.expose())),
            }
            at = range.end;
        }
        out.push_str(&s[at..]);
        Ok(out)
    }

    /// `v` with every password replaced by its token. Text that already
    /// looks like a credential token is broken up first (`{ {`), so that
    /// text from outside can never be expanded into a password later.
    pub fn conceal(&self, v: Value) -> Value {
        match v {
            Value::Str(s) => Value::Str(self.conceal_str(&s)),
            Value::List(l) => Value::List(l.into_iter().map(|x| self.conceal(x)).collect()),
            Value::Map(m) => Value::Map(m.into_iter().map(|(k, x)| (self.conceal_str(&k), self.conceal(x))).collect()),
            other => other,
        }
    }

    pub fn conceal_str(&self, s: &str) -> String {
        let mut out = defuse(s);
        for (form, token) in &self.0.forms {
            if out.contains(form.expose()) {
                out = out.replace(form.expose(), token);
            }
        }
        out
    }
}

/// The ways a password can be written in text that reaches a run: percent-
/// encoded (upper- or lower-case hex) in a URI, escaped in a JSON string
/// (an HTTP answer's body), and as it is. Each with the token that stands
/// for it; the raw form comes last, as the others may contain it.
fn written_forms(raw: &str) -> Vec<(String, CredentialField)> {
    let encoded = percent_encode(raw);
    let lower = lower_hex(&encoded);
    let json = serde_json::to_string(raw).map(|q| q[1..q.len() - 1].to_string()).unwrap_or_else(|_| raw.to_string());
    let mut forms: Vec<(String, CredentialField)> = Vec::new();
    for (form, field) in [
        (encoded, CredentialField::PasswordUrlEncoded),
        (lower, CredentialField::PasswordUrlEncoded),
        (json, CredentialField::Password),
    ] {
        if form != raw && !forms.iter().any(|(f, _)| *f == form) {
            forms.push((form, field));
        }
    }
    forms.push((raw.to_string(), CredentialField::Password));
    forms
}

/// `%2F` → `%2f`: the hex digits after each `%` in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex = 2;
            out.push(c);
        } else if hex > 0 {
            hex -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` with each credential token's `{{` turned into `{ {`.
fn defuse(s: &str) -> String {
    let tokens = template::credential_tokens(s);
    if tokens.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + tokens.len());
    let mut at = 0;
    for (range, _, _) in tokens {
        out.push_str(&s[at..range.start]);
        out.push_str("{ {");
        at = range.start + 2;
    }
    out.push_str(&s[at..]);
    out
}

/// Names of the credentials whose tokens stand in `v`, sorted, once each.
pub fn referenced(v: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Str(s) => out.extend(template::credential_tokens(s).into_iter().map(|(_, n, _)| n)),
            Value::List(l) => l.iter().for_each(|x| walk(x, out)),
            Value::Map(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.sort();
    out.dedup();
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters:
/// safe in a URI's user info.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "p@ss:w/rd-chat";

    fn creds() -> Credentials {
        Credentials::from_entries([
            ("chatdb".to_string(), (Some("chat app".to_string()), Secret::new(PW))),
            ("probe".to_string(), (None, Secret::new("probe-token-123"))),
        ])
        .unwrap()
    }

    fn s(v: &Value) -> String {
        v.as_str().unwrap_or_default().to_string()
    }

    #[test]
    fn expand_then_conceal_round_trips() {
        let c = creds();
        let uri = "mongodb://{{ credentials.chatdb.user }}:{{ credentials.chatdb.password_url_encoded }}@h:1/";
        let real = c.expand(&Value::str(uri)).unwrap();
        assert_eq!(s(&real), "mongodb://chat app:p%40ss%3Aw%2Frd-chat@h:1/");
        // The user is not secret; the password goes back to its token.
        assert_eq!(
            c.conceal(real),
            Value::str("mongodb://chat app:{{ credentials.chatdb.password_url_encoded }}@h:1/")
        );

        let body = Value::Map([("password".to_string(), Value::str("{{credentials.probe.password}}"))].into());
        let real = c.expand(&body).unwrap();
        assert_eq!(real.get("password").map(s).unwrap(), "probe-token-123");
        assert_eq!(
            c.conceal(Value::str(format!("login refused for {PW} and probe-token-123"))),
            Value::str("login refused for {{ credentials.chatdb.password }} and {{ credentials.probe.password }}")
        );
    }

    #[test]
    fn unknown_names_and_missing_users_are_errors() {
        let c = creds();
        let e = c.expand(&Value::str("{{ credentials.nope.password }}")).unwrap_err().to_string();
        assert!(e.contains("no credentials named \"nope\"") && e.contains("[credentials.nope]"), "{e}");
        let e = c.expand(&Value::str("{{ credentials.probe.user }}")).unwrap_err().to_string();
        assert!(e.contains("credentials \"probe\" have no user"), "{e}");
        assert!(c.db("probe").is_err());
        assert_eq!(c.db("chatdb").unwrap().user, "chat app");
    }

    #[test]
    fn tokens_from_outside_are_never_expanded() {
        let c = creds();
        // An integration answered with text that looks like a token: after
        // concealing it no longer is one.
        let out = c.conceal(Value::str("echo {{ credentials.chatdb.password }}"));
        assert!(referenced(&out).is_empty(), "{out:?}");
        let args =
            Value::List(vec![Value::str("{{ credentials.b.user }}"), Value::str("{{ credentials.a.password }}")]);
        assert_eq!(referenced(&args), ["a", "b"]);
        assert_eq!(s(&c.expand(&out).unwrap()), "echo { { credentials.chatdb.password }}");
    }

    #[test]
    fn load_reads_files_and_refuses_short_or_empty_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            CredentialConfig { user: Some("u".into()), password_file: p }
        };
        let good = BTreeMap::from([("db".to_string(), file("db", "  long-enough-pw\n"))]);
        let c = Credentials::load(&good).unwrap();
        assert_eq!(c.db("db").unwrap().password.expose(), "long-enough-pw");
        assert_eq!(format!("{c:?}"), "{\"db\"}");

        for (text, expect) in [("\n", "is empty"), ("short", "shorter than 8 characters")] {
            let bad = BTreeMap::from([("db".to_string(), file("bad", text))]);
            let e = Credentials::load(&bad).unwrap_err().to_string();
            assert!(e.starts_with("credentials.db: ") && e.contains(expect), "{e}");
            assert!(!e.contains("short\""), "{e}");
        }
        let missing = BTreeMap::from([(
            "db".to_string(),
            CredentialConfig { user: None, password_file: dir.path().join("absent") },
        )]);
        assert!(Credentials::load(&missing).unwrap_err().to_string().contains("cannot read password_file"));
        let e = Credentials::from_entries([("a b".to_string(), (None, Secret::new("xxxxxxxxx")))]).unwrap_err();
        assert!(e.to_string().contains("only letters"), "{e}");
    }

    #[test]
    fn a_password_is_concealed_however_it_was_written() {
        let pw = "q\"uo\\te/1:x";
        let c = Credentials::from_entries([("db".to_string(), (None, Secret::new(pw)))]).unwrap();
        let json_body = serde_json::json!({ "echo": pw }).to_string();
        assert!(json_body.contains(r#"q\"uo\\te/1:x"#), "{json_body}");
        let upper = format!("mongodb://u:{}@h/", percent_encode(pw));
        let lower = upper.replace("%2F", "%2f").replace("%3A", "%3a").replace("%5C", "%5c");
        assert_ne!(upper, lower);
        for text in [json_body.as_str(), &upper, &lower, pw] {
            let out = c.conceal_str(text);
            for form in written_forms(pw) {
                assert!(!out.contains(&form.0), "{form:?} left in {out}");
            }
            assert!(!out.contains("uo"), "{out}");
            assert!(out.contains("{{ credentials.db.password"), "{out}");
        }
        assert_eq!(lower_hex("a%2Fb%3AC"), "a%2fb%3aC");
    }
}
