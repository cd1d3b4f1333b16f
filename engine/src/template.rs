//! `{{ … }}` templates in step arguments and conditions.
//!
//! References: `params.NAME`, `steps.STEP.OUTPUT`, `run.id`, `run.short_id`,
//! `run.incident_at`, `run.mode`, and `credentials.NAME.FIELD`. A string that
//! is exactly one reference takes the referenced value with its type
//! (`expect_status: "{{ params.code }}"` stays a number); otherwise
//! references are substituted as text.
//!
//! A credential reference is never resolved here: the engine does not know
//! secrets. It renders as its own canonical token ([`credential_token`]),
//! which travels through run state, effects and outputs as it is, and only
//! the coordinator's performer puts the value in, just before an integration
//! uses it. So a password is never in a run's state, events or views.

use crate::value::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Param(String),
    Output {
        step: String,
        output: String,
    },
    Run(RunField),
    /// A secret the coordinator holds, by name: resolved only when performed.
    Credential {
        name: String,
        field: CredentialField,
    },
}

/// What of a coordinator credential a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CredentialField {
    /// The user name.
    User,
    /// The password as it is (for JSON bodies, headers, secrets).
    Password,
    /// The password percent-encoded, for the user info of a URI.
    PasswordUrlEncoded,
}

impl CredentialField {
    pub const ALL: [CredentialField; 3] =
        [CredentialField::User, CredentialField::Password, CredentialField::PasswordUrlEncoded];

    pub fn name(self) -> &'static str {
        match self {
            CredentialField::User => "user",
            CredentialField::Password => "password",
            CredentialField::PasswordUrlEncoded => "password_url_encoded",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The text a credential reference renders as, and what the coordinator
/// replaces: `{{ credentials.NAME.FIELD }}`.
pub fn credential_token(name: &str, field: CredentialField) -> String {
    format!("{{{{ credentials.{name}.{} }}}}", field.name())
}

/// Every credential token in `s`, in order: (byte range, name, field).
/// Text between `{{` and `}}` that is not a credential reference is left
/// alone (outputs may hold any text).
pub fn credential_tokens(s: &str) -> Vec<(std::ops::Range<usize>, String, CredentialField)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = s[from..].find("{{").map(|i| from + i) {
        let Some(end) = s[start + 2..].find("}}").map(|i| start + 2 + i) else { break };
        if let Ok(Ref::Credential { name, field }) = parse_ref(s[start + 2..end].trim()) {
            out.push((start..end + 2, name, field));
            from = end + 2;
        } else {
            from = start + 2;
        }
    }
    out
}

/// Whether `name` can name a credential (letters, digits, `_`, `-`).
pub fn credential_name_ok(name: &str) -> bool {
    ident_ok(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunField {
    Id,
    ShortId,
    IncidentAt,
    Mode,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Param(p) => write!(f, "params.{p}"),
            Ref::Output { step, output } => write!(f, "steps.{step}.{output}"),
            Ref::Run(RunField::Id) => f.write_str("run.id"),
            Ref::Run(RunField::ShortId) => f.write_str("run.short_id"),
            Ref::Run(RunField::IncidentAt) => f.write_str("run.incident_at"),
            Ref::Run(RunField::Mode) => f.write_str("run.mode"),
            Ref::Credential { name, field } => write!(f, "credentials.{name}.{}", field.name()),
        }
    }
}

/// What is wrong with a template, or which reference has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `{{` without `}}`.
    #[error("unclosed \"{{{{\"")]
    Unclosed,
    /// The text between `{{` and `}}` (trimmed) is not a reference.
    #[error(
        "\"{{{{ {0} }}}}\" is not a reference (expected params.NAME, steps.STEP.OUTPUT, run.id, run.short_id, \
         run.incident_at, run.mode or credentials.NAME.user|password|password_url_encoded)"
    )]
    NotReference(String),
    /// A credential reference to a field a credential does not have.
    #[error("\"{{{{ {expr} }}}}\": a credential has user, password and password_url_encoded, not \"{field}\"")]
    CredentialField { expr: String, field: String },
    /// A reference the scope has no value for (yet).
    #[error("{0} has no value")]
    NoValue(Ref),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Text(String),
    /// A reference and its byte offset in the string (for error positions).
    Ref(Ref, usize),
}

/// Splits `s` into text and references. Errors name the bad expression and
/// its byte offset.
pub fn parse(s: &str) -> Result<Vec<Segment>, (usize, Error)> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Segment::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err((offset + start, Error::Unclosed));
        };
        let expr = after[..end].trim();
        let r = parse_ref(expr).map_err(|e| (offset + start, e))?;
        out.push(Segment::Ref(r, offset + start));
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_string()));
    }
    Ok(out)
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_ref(expr: &str) -> Result<Ref, Error> {
    let parts: Vec<&str> = expr.split('.').collect();
    match parts.as_slice() {
        ["params", name] if ident_ok(name) => Ok(Ref::Param(name.to_string())),
        ["steps", step, output] if ident_ok(step) && ident_ok(output) => {
            Ok(Ref::Output { step: step.to_string(), output: output.to_string() })
        }
        ["run", "id"] => Ok(Ref::Run(RunField::Id)),
        ["run", "short_id"] => Ok(Ref::Run(RunField::ShortId)),
        ["run", "incident_at"] => Ok(Ref::Run(RunField::IncidentAt)),
        ["run", "mode"] => Ok(Ref::Run(RunField::Mode)),
        ["credentials", name, field] if ident_ok(name) => match CredentialField::parse(field) {
            Some(field) => Ok(Ref::Credential { name: name.to_string(), field }),
            None => Err(Error::CredentialField { expr: expr.to_string(), field: field.to_string() }),
        },
        _ => Err(Error::NotReference(expr.to_string())),
    }
}

/// Every reference in `s` (empty if `s` is not a valid template; `check`
/// reports that separately).
pub fn refs(s: &str) -> Vec<(Ref, usize)> {
    parse(s)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|seg| match seg {
            Segment::Ref(r, o) => Some((r, o)),
            Segment::Text(_) => None,
        })
        .collect()
}

/// Where references get their values.
pub trait Scope {
    fn lookup(&self, r: &Ref) -> Option<Value>;
}

/// Params alone: what is known before a run has done anything.
pub struct Params<'a>(pub &'a std::collections::BTreeMap<String, Value>);

impl Scope for Params<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Param(p) => self.0.get(p).cloned(),
            _ => None,
        }
    }
}

/// Resolves the templates in `s`.
pub fn render(s: &str, scope: &dyn Scope) -> Result<Value, Error> {
    let segments = parse(s).map_err(|(_, e)| e)?;
    let value = |r: &Ref| scope.lookup(r).ok_or_else(|| Error::NoValue(r.clone()));
    if let [Segment::Ref(r, _)] = segments.as_slice() {
        return value(r);
    }
    let mut out = String::new();
    for seg in &segments {
        match seg {
            Segment::Text(t) => out.push_str(t),
            // Inside text, a missing value reads as "unknown", not as nothing.
            Segment::Ref(r, _) => match value(r)? {
                Value::Null => out.push_str("unknown"),
                v => out.push_str(&v.to_string()),
            },
        }
    }
    Ok(Value::Str(out))
}

/// Resolves every string in `v`, recursively.
pub fn render_value(v: &Value, scope: &dyn Scope) -> Result<Value, Error> {
    Ok(match v {
        Value::Str(s) if s.contains("{{") => render(s, scope)?,
        Value::List(l) => Value::List(l.iter().map(|x| render_value(x, scope)).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            Value::Map(m.iter().map(|(k, x)| Ok((k.clone(), render_value(x, scope)?))).collect::<Result<_, Error>>()?)
        }
        other => other.clone(),
    })
}

/// A `when:` condition: `"<a> == <b>"`, `"<a> != <b>"`, or a single value
/// that must be truthy; both sides are templated. Comparisons join with
/// `&&` and `||` (`&&` binds tighter; no parentheses). A side without a
/// value (the output of a step that was skipped) is unknown rather than an
/// error when the others decide: `unknown || true` is true and
/// `unknown && false` is false; only an undecided condition is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Truthy(String),
    Eq(String, String),
    NotEq(String, String),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

impl Condition {
    pub fn parse(s: &str) -> Condition {
        let any: Vec<&str> = s.split("||").collect();
        if any.len() > 1 {
            return Condition::Any(any.into_iter().map(Condition::parse_all).collect());
        }
        Condition::parse_all(s)
    }

    fn parse_all(s: &str) -> Condition {
        let all: Vec<&str> = s.split("&&").collect();
        if all.len() > 1 {
            return Condition::All(all.into_iter().map(Condition::parse_one).collect());
        }
        Condition::parse_one(s)
    }

    fn parse_one(s: &str) -> Condition {
        if let Some((a, b)) = s.split_once("!=") {
            Condition::NotEq(a.trim().to_string(), b.trim().to_string())
        } else if let Some((a, b)) = s.split_once("==") {
            Condition::Eq(a.trim().to_string(), b.trim().to_string())
        } else {
            Condition::Truthy(s.trim().to_string())
        }
    }

    /// Every templated side, in order.
    pub fn parts(&self) -> Vec<&str> {
        match self {
            Condition::Truthy(a) => vec![a],
            Condition::Eq(a, b) | Condition::NotEq(a, b) => vec![a, b],
            Condition::All(c) | Condition::Any(c) => c.iter().flat_map(Condition::parts).collect(),
        }
    }

    pub fn eval(&self, scope: &dyn Scope) -> Result<bool, Error> {
        let text = |s: &str| -> Result<String, Error> {
            Ok(render(s, scope)?.to_string().trim_matches(|c| c == '\'' || c == '"').to_string())
        };
        Ok(match self {
            Condition::Truthy(a) => render(a, scope)?.truthy(),
            Condition::Eq(a, b) => text(a)? == text(b)?,
            Condition::NotEq(a, b) => text(a)? != text(b)?,
            Condition::All(c) => decide(c, scope, false)?,
            Condition::Any(c) => decide(c, scope, true)?,
        })
    }
}

/// `||` (`settles` true) or `&&` (false): the first side that evaluates to
/// `settles` decides; otherwise the first error, if any, is the answer.
fn decide(sides: &[Condition], scope: &dyn Scope, settles: bool) -> Result<bool, Error> {
    let mut unknown = None;
    for side in sides {
        match side.eval(scope) {
            Ok(v) if v == settles => return Ok(settles),
            Ok(_) => {}
            Err(e) => {
                unknown.get_or_insert(e);
            }
        }
    }
    match unknown {
        Some(e) => Err(e),
        None => Ok(!settles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct S(BTreeMap<String, Value>);
    impl Scope for S {
        fn lookup(&self, r: &Ref) -> Option<Value> {
            self.0.get(&r.to_string()).cloned()
        }
    }

    fn scope() -> S {
        S([
            ("params.code".to_string(), Value::Int(200)),
            ("params.cluster".to_string(), Value::str("chat-prod")),
            ("run.short_id".to_string(), Value::str("ab12")),
        ]
        .into())
    }

    #[test]
    fn parse_table() {
        assert_eq!(parse("plain").unwrap(), vec![Segment::Text("plain".into())]);
        assert_eq!(
            parse("restore-{{ run.short_id }}").unwrap(),
            vec![Segment::Text("restore-".into()), Segment::Ref(Ref::Run(RunField::ShortId), 8)]
        );
        assert_eq!(
            parse("{{steps.a-b.name}}").unwrap(),
            vec![Segment::Ref(Ref::Output { step: "a-b".into(), output: "name".into() }, 0)]
        );
        let (at, e) = parse("x {{ params }}").unwrap_err();
        assert_eq!((at, &e), (2, &Error::NotReference("params".into())));
        assert!(e.to_string().starts_with("\"{{ params }}\" is not a reference (expected params.NAME,"), "{e}");
        let e = parse("{{ run.id").unwrap_err().1;
        assert_eq!(e, Error::Unclosed);
        assert_eq!(e.to_string(), "unclosed \"{{\"");
    }

    #[test]
    fn render_keeps_types_for_whole_references() {
        let s = scope();
        assert_eq!(render("{{ params.code }}", &s).unwrap(), Value::Int(200));
        assert_eq!(render("restore-{{ run.short_id }}", &s).unwrap(), Value::str("restore-ab12"));
        let e = render("{{ params.nope }}", &s).unwrap_err();
        assert_eq!(e, Error::NoValue(Ref::Param("nope".into())));
        assert_eq!(e.to_string(), "params.nope has no value");
    }

    #[test]
    fn credential_references_render_as_their_token() {
        let r = Ref::Credential { name: "chatdb".into(), field: CredentialField::PasswordUrlEncoded };
        assert_eq!(parse("{{credentials.chatdb.password_url_encoded}}").unwrap(), vec![Segment::Ref(r.clone(), 0)]);
        let token = credential_token("chatdb", CredentialField::PasswordUrlEncoded);
        assert_eq!(token, "{{ credentials.chatdb.password_url_encoded }}");
        // A token parses back to the same reference, so it survives being
        // rendered again.
        assert_eq!(parse(&token).unwrap(), vec![Segment::Ref(r, 0)]);
        let e = parse("{{ credentials.chatdb }}").unwrap_err().1;
        assert_eq!(e, Error::NotReference("credentials.chatdb".into()));
        let e = parse("{{ credentials.chatdb.pw }}").unwrap_err().1;
        assert_eq!(e, Error::CredentialField { expr: "credentials.chatdb.pw".into(), field: "pw".into() });
        assert_eq!(
            e.to_string(),
            "\"{{ credentials.chatdb.pw }}\": a credential has user, password and password_url_encoded, not \"pw\""
        );
    }

    #[test]
    fn credential_tokens_are_found_in_any_text() {
        let s = "mongodb://{{ credentials.db.user }}:{{credentials.db.password_url_encoded}}@h/{{ not a ref }}{{ params.x }}";
        let found: Vec<(String, CredentialField)> =
            credential_tokens(s).into_iter().map(|(r, n, f)| (s[r].to_string() + "|" + &n, f)).collect();
        assert_eq!(
            found,
            vec![
                ("{{ credentials.db.user }}|db".to_string(), CredentialField::User),
                ("{{credentials.db.password_url_encoded}}|db".to_string(), CredentialField::PasswordUrlEncoded),
            ]
        );
        assert!(credential_tokens("{{ unclosed credentials.db.user").is_empty());
    }

    #[test]
    fn conditions() {
        let s = scope();
        assert!(Condition::parse("{{ params.cluster }} == chat-prod").eval(&s).unwrap());
        assert!(Condition::parse("{{ params.cluster }} != 'chat-staging'").eval(&s).unwrap());
        assert!(Condition::parse("{{ params.code }}").eval(&s).unwrap());
    }

    #[test]
    fn conditions_join_with_and_and_or() {
        let s = scope();
        let eval = |c: &str| Condition::parse(c).eval(&s);
        assert_eq!(eval("{{ params.code }} == 200 && {{ params.cluster }} == chat-prod"), Ok(true));
        assert_eq!(eval("{{ params.code }} == 200 && {{ params.cluster }} == other"), Ok(false));
        assert_eq!(eval("{{ params.code }} == 500 || {{ params.cluster }} == chat-prod"), Ok(true));
        assert_eq!(eval("{{ params.code }} == 500 || {{ params.cluster }} == other"), Ok(false));
        // && binds tighter: false && x || true is true; true || x && false is true.
        assert_eq!(eval("{{ params.code }} == 1 && {{ params.code }} == 1 || {{ params.code }} == 200"), Ok(true));
        assert_eq!(eval("{{ params.code }} == 200 || {{ params.code }} == 1 && {{ params.code }} == 1"), Ok(true));
        // A side without a value (steps.x has none here) is unknown: the
        // others decide where they can, on either side of it.
        assert_eq!(eval("{{ params.code }} == 200 || {{ steps.x.ok }}"), Ok(true));
        assert_eq!(eval("{{ steps.x.ok }} || {{ params.code }} == 200"), Ok(true));
        assert_eq!(eval("{{ params.code }} == 1 && {{ steps.x.ok }}"), Ok(false));
        assert_eq!(eval("{{ steps.x.ok }} == true && {{ params.code }} == 1"), Ok(false));
        let undecided = eval("{{ params.code }} == 1 || {{ steps.x.ok }}").unwrap_err();
        assert_eq!(undecided, Error::NoValue(Ref::Output { step: "x".into(), output: "ok".into() }));
        assert!(eval("{{ steps.x.ok }} && {{ params.code }} == 200").is_err());
        assert_eq!(
            Condition::parse("{{ a.b }} == x && {{ c.d }} || y != {{ e.f }}").parts(),
            vec!["{{ a.b }}", "x", "{{ c.d }}", "y", "{{ e.f }}"]
        );
    }
}
