//! The reading actions: `redis.ping`, `redis.dbsize` and `redis.info`.

use super::conn::{Conn, connect, reply_text, said};
use super::error::Error;
use crate::actions::{Ctx, Outputs};
use crate::policy::Redis;
use ::redis::Value as Reply;
use serde_json::{Map, Value};
use std::time::Instant;

pub(super) async fn ping(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, Error> {
    let started = Instant::now();
    let mut c = connect(inst).await?;
    match c.call(&["PING"]).await? {
        Reply::SimpleString(s) if s == "PONG" => {
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            ctx.out.line(&format!("{} ({}) answered PONG in {ms} ms", inst.name, inst.address));
            let mut o = Outputs::new();
            o.insert("pong".into(), Value::Bool(true));
            o.insert("latency_ms".into(), Value::from(ms));
            Ok(o)
        }
        Reply::ServerError(e) => Err(Error::PingError { instance: inst.name.clone(), said: said(&e) }),
        other => Err(Error::NotPong { instance: inst.name.clone(), reply: format!("{other:?}") }),
    }
}

pub(super) async fn dbsize_of(c: &mut Conn) -> Result<u64, Error> {
    match c.ok(&["DBSIZE"]).await? {
        Reply::Int(n) => u64::try_from(n).map_err(|_| Error::unexpected("DBSIZE", n)),
        other => Err(Error::unexpected("DBSIZE", format!("{other:?}"))),
    }
}

pub(super) async fn dbsize(inst: &Redis, ctx: &Ctx<'_>) -> Result<Outputs, Error> {
    let keys = dbsize_of(&mut connect(inst).await?).await?;
    ctx.out.line(&format!("{}: {keys} keys", inst.name));
    let mut o = Outputs::new();
    o.insert("keys".into(), Value::from(keys));
    Ok(o)
}

/// `INFO [sections…]` as `key:value` pairs, in order.
pub(super) async fn info_fields(c: &mut Conn, sections: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let mut argv = vec!["INFO"];
    argv.extend_from_slice(sections);
    let text = reply_text(&c.ok(&argv).await?).ok_or_else(|| Error::unexpected("INFO", "no text"))?;
    Ok(parse_info(&text))
}

/// The `key:value` lines of an INFO reply (section headers and blank lines skipped).
fn parse_info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A number for plain decimal values (`123`, `-4`, `0.75`), else the string.
fn info_value(v: &str) -> Value {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (frac.is_empty() || frac.bytes().all(|b| b.is_ascii_digit()))
        && !(digits.contains('.') && frac.is_empty());
    if plain {
        if let Ok(i) = v.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = v.parse::<u64>() {
            return Value::from(u);
        }
        if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(v.to_string())
}

const INFO_OUTPUTS: [&str; 5] =
    ["used_memory", "used_memory_human", "maxmemory", "maxmemory_policy", "instantaneous_ops_per_sec"];

pub(super) async fn info(inst: &Redis, section: Option<&str>, ctx: &Ctx<'_>) -> Result<Outputs, Error> {
    let section = section.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = section
        && !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::InfoSection(s.to_string()));
    }
    let mut c = connect(inst).await?;
    let fields = info_fields(&mut c, section.as_slice()).await?;
    if fields.is_empty() {
        return Err(Error::InfoEmpty(section.unwrap_or("").to_string()));
    }
    // The named outputs come from memory and stats, whatever section was asked.
    let extra = if INFO_OUTPUTS.iter().any(|k| field(&fields, k).is_none()) {
        info_fields(&mut c, &["memory", "stats"]).await?
    } else {
        Vec::new()
    };
    let mut o = Outputs::new();
    for k in INFO_OUTPUTS {
        let v = field(&fields, k).or_else(|| field(&extra, k)).map_or(Value::Null, info_value);
        o.insert(k.into(), v);
    }
    let mut all = Map::new();
    for (k, v) in &fields {
        all.insert(k.clone(), info_value(v));
    }
    ctx.out.line(&format!(
        "{}: INFO {}: {} fields; used_memory {} ({}), maxmemory {}, policy {}, {} ops/sec",
        inst.name,
        section.unwrap_or("(default)"),
        all.len(),
        o["used_memory"],
        o["used_memory_human"].as_str().unwrap_or("?"),
        o["maxmemory"],
        o["maxmemory_policy"].as_str().unwrap_or("?"),
        o["instantaneous_ops_per_sec"],
    ));
    o.insert("fields".into(), Value::Object(all));
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestRedis, err_of};
    use super::*;
    use serde_json::json;

    #[test]
    fn parsing_info() {
        let info =
            "# Memory\r\nused_memory:1024\r\nused_memory_human:1.00K\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0\r\n";
        let f = parse_info(info);
        assert_eq!(field(&f, "used_memory"), Some("1024"));
        assert_eq!(field(&f, "db0"), Some("keys=3,expires=0"));
        assert_eq!(f.len(), 3);
        assert_eq!(info_value("1024"), json!(1024));
        assert_eq!(info_value("-3"), json!(-3));
        assert_eq!(info_value("0.75"), json!(0.75));
        for s in ["1.00K", "7.0.15", "1e5", "", "-", "3.", "noeviction"] {
            assert_eq!(info_value(s), json!(s), "{s}");
        }
    }

    #[tokio::test]
    async fn ping_dbsize_and_info() {
        let r = TestRedis::start("").await;
        r.write_keys("temp", 0..30).await;
        r.write_keys("keep", 0..10).await;

        let o = r.act("redis.ping", json!({})).await.unwrap();
        assert_eq!(o["pong"], true);
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 40);

        let mem = r.act("redis.info", json!({"section": "memory"})).await.unwrap();
        assert!(mem["used_memory"].as_u64().unwrap() > 0, "{mem:?}");
        assert!(mem["used_memory_human"].is_string());
        assert_eq!(mem["maxmemory"], 0);
        assert_eq!(mem["maxmemory_policy"], "noeviction");
        assert!(mem["instantaneous_ops_per_sec"].is_u64(), "filled from INFO stats: {mem:?}");
        assert_eq!(mem["fields"]["used_memory"], mem["used_memory"]);
        assert!(mem["fields"].get("total_commands_processed").is_none(), "fields are the asked section's");
        let stats = r.act("redis.info", json!({"section": "stats"})).await.unwrap();
        assert!(stats["fields"]["total_commands_processed"].as_u64().unwrap() > 0);
        assert!(stats["used_memory"].as_u64().unwrap() > 0, "filled from INFO memory");
        let all = r.act("redis.info", json!({})).await.unwrap();
        assert_eq!(all["fields"]["redis_version"], "7.0.15");
        assert_eq!(all["fields"]["db0"], "keys=40,expires=0,avg_ttl=0");
        assert!(err_of(r.act("redis.info", json!({"section": "memory\r\nFLUSHALL"})).await).contains("not an INFO"));
    }
}
