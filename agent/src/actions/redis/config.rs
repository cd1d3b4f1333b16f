//! `redis.config_set` (CONFIG SET on an allowlisted parameter, persisted
//! with CONFIG REWRITE if asked), and the redis.conf file itself: reading and
//! setting a directive, writing it back in place.

use super::backup::sync_dir;
use super::conn::{Conn, connect, reply_text, said};
use super::error::{Error, io};
use crate::actions::{Ctx, Outputs};
use crate::policy::{Redis, Refused};
use ::redis::Value as Reply;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub(super) async fn get(c: &mut Conn, parameter: &str) -> Result<Option<String>, Error> {
    match c.ok(&["CONFIG", "GET", parameter]).await? {
        Reply::Array(items) => Ok(items.get(1).and_then(reply_text)),
        other => Err(Error::unexpected(format!("CONFIG GET {parameter}"), format!("{other:?}"))),
    }
}

pub(super) async fn set(
    inst: &Redis,
    parameter: &str,
    value: &str,
    persist: bool,
    ctx: &Ctx<'_>,
) -> Result<Outputs, Error> {
    if !inst.config_set.iter().any(|p| p.eq_ignore_ascii_case(parameter)) {
        let allowed = if inst.config_set.is_empty() { "none".to_string() } else { inst.config_set.join(", ") };
        return Err(Refused(format!(
            "parameter \"{parameter}\" may not be changed on redis instance {} (allowed: {allowed})",
            inst.name
        ))
        .into());
    }
    let mut c = connect(inst).await?;
    let previous = get(&mut c, parameter).await?.ok_or_else(|| Error::UnknownParameter(parameter.to_string()))?;
    if let Reply::ServerError(e) = c.call(&["CONFIG", "SET", parameter, value]).await? {
        let (parameter, value, said) = (parameter.to_string(), value.to_string(), said(&e));
        return Err(Error::ConfigSet { parameter, value, said, previous });
    }
    let now = get(&mut c, parameter).await?.unwrap_or_else(|| value.to_string());
    ctx.out.line(&format!("{}: {parameter} {previous} -> {now}", inst.name));
    if persist {
        if let Reply::ServerError(e) = c.call(&["CONFIG", "REWRITE"]).await? {
            return Err(Error::ConfigRewrite { parameter: parameter.to_string(), now, previous, said: said(&e) });
        }
        ctx.out.line("written to the config file (CONFIG REWRITE)");
    } else {
        ctx.out.line("not persisted: lost at the next restart");
    }
    let mut o = Outputs::new();
    o.insert("previous".into(), Value::String(previous));
    o.insert("value".into(), Value::String(now));
    o.insert("persisted".into(), Value::Bool(persist));
    Ok(o)
}

/// Writes `text` to `path` through a temporary file, keeping mode and owner.
pub(super) fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    let meta = fs::metadata(path).map_err(io("read", path))?;
    let dir = path.parent().ok_or(Error::ConfigNoDirectory)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.ripcord-tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io("write", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(Error::Os)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777)).map_err(Error::Os)?;
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
        fs::rename(&tmp, path).map_err(io("replace", path))?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The value of the last active `name` directive in a redis.conf text.
pub(super) fn directive(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let key = words.next()?;
            (!key.starts_with('#') && key.eq_ignore_ascii_case(name))
                .then(|| words.next().unwrap_or("").trim_matches(['"', '\'']).to_ascii_lowercase())
        })
        .next_back()
}

/// `text` with every active `name` directive replaced by `name value`
/// (appended if there was none).
pub(super) fn set_directive(text: &str, name: &str, value: &str) -> String {
    let mut found = false;
    let mut out = String::with_capacity(text.len() + 32);
    for l in text.lines() {
        let key = l.split_whitespace().next().unwrap_or("");
        if !key.starts_with('#') && key.eq_ignore_ascii_case(name) {
            found = true;
            out.push_str(&format!("{name} {value}"));
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("{name} {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestRedis, err_of};
    use super::*;
    use serde_json::json;

    #[test]
    fn directives() {
        let conf = "# appendonly yes\nport 1\nAPPENDONLY \"yes\"\nappendfsync always\n";
        assert_eq!(directive(conf, "appendonly").as_deref(), Some("yes"));
        let off = set_directive(conf, "appendonly", "no");
        assert_eq!(off, "# appendonly yes\nport 1\nappendonly no\nappendfsync always\n");
        assert_eq!(set_directive("port 1", "appendonly", "no"), "port 1\nappendonly no\n");
        assert_eq!(directive("port 1\n", "appendonly"), None);
    }

    #[tokio::test]
    async fn config_set_changes_only_allowlisted_parameters_and_persists_when_asked() {
        let r = TestRedis::start("").await;
        // config_set: only the allowlisted parameters.
        let e = err_of(r.act("redis.config_set", json!({"parameter": "dir", "value": "/tmp"})).await);
        assert!(
            e.contains("refused by the agent's allowlist") && e.contains("allowed: maxmemory, maxmemory-policy"),
            "{e}"
        );
        let dir = r.cmd(&["CONFIG", "GET", "dir"]).await;
        assert_eq!(
            dir,
            Reply::Array(vec![
                Reply::BulkString(b"dir".to_vec()),
                Reply::BulkString(r.data.display().to_string().into_bytes())
            ])
        );
        let o = r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "100mb"})).await.unwrap();
        assert_eq!(
            (o["previous"].as_str(), o["value"].as_str(), o["persisted"].as_bool()),
            (Some("0"), Some("104857600"), Some(false))
        );
        assert!(!fs::read_to_string(&r.conf).unwrap().contains("maxmemory"), "not persisted");
        let o = r
            .act("redis.config_set", json!({"parameter": "maxmemory-policy", "value": "allkeys-lru", "persist": true}))
            .await
            .unwrap();
        assert_eq!(o["previous"], "noeviction");
        let conf = fs::read_to_string(&r.conf).unwrap();
        assert!(conf.lines().any(|l| l == "maxmemory-policy allkeys-lru"), "{conf}");
        let e = err_of(r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "lots"})).await);
        assert!(e.contains("redis refused CONFIG SET maxmemory lots") && e.contains("still 104857600"), "{e}");
        r.act("redis.config_set", json!({"parameter": "maxmemory", "value": "0"})).await.unwrap();
    }
}
