//! Env values are often secrets (a Mongo URI with its password): they are
//! kept out of every message, in every form an error may quote them.

use ripcord_engine::value::Value;

/// The env values of a `k8s.set_env` step, to scrub from messages.
pub(super) fn secrets_of(action: &str, args: &Value) -> Vec<String> {
    if action != "k8s.set_env" {
        return Vec::new();
    }
    let Some(Value::Map(env)) = args.get("env") else { return Vec::new() };
    let mut out = Vec::new();
    for v in env.values() {
        let v = v.to_string();
        if let Ok(quoted) = serde_json::to_string(&v) {
            out.push(quoted.trim_matches('"').to_string());
        }
        // The password of a URI alone (scheme://user:password@host).
        if let Some((_, rest)) = v.split_once("://")
            && let Some((userinfo, _)) = rest.split_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_string());
        }
        out.push(v);
    }
    out.retain(|s| s.len() >= 4);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Replaces every secret in `s` with "••••".
pub(super) fn scrub(mut s: String, secrets: &[String]) -> String {
    for secret in secrets {
        s = s.replace(secret.as_str(), "••••");
    }
    s
}

/// serde quotes values in double quotes ("invalid type: string \"…\"") and
/// names fields in backticks: drop what is quoted.
pub(super) fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            out.push('…');
            while let Some(q) = chars.next() {
                match q {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            out.push('"');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn secrets_are_scrubbed_in_every_form() {
        let mut env = BTreeMap::new();
        env.insert("MONGO_URI".to_string(), Value::str("mongodb+srv://app:s3cr3t-pw@c.example.net/chat?x=\"y\""));
        let mut args = BTreeMap::new();
        args.insert("env".to_string(), Value::Map(env));
        let secrets = secrets_of("k8s.set_env", &Value::Map(args));
        let msg = "bad: mongodb+srv://app:s3cr3t-pw@c.example.net/chat?x=\\\"y\\\" and s3cr3t-pw alone".to_string();
        let out = scrub(msg, &secrets);
        assert!(!out.contains("s3cr3t"), "{out}");
        assert_eq!(
            redact_quoted(r#"invalid type: string "a\"b", expected a map at `env`"#),
            r#"invalid type: string "…", expected a map at `env`"#
        );
    }
}
