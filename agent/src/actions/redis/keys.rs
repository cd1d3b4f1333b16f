//! `redis.delete_pattern`: SCAN (never KEYS) for the keys matching a
//! pattern, refuse above the step's and the agent's limits, UNLINK in batches.

use super::conn::{Conn, connect, reply_text, said};
use super::error::{Error, Limit};
use crate::actions::{Ctx, Outputs};
use crate::policy::Redis;
use ::redis::Value as Reply;
use serde_json::Value;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Keys per UNLINK.
const UNLINK_BATCH: usize = 500;

fn key_hash(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

pub(super) async fn delete_pattern(
    inst: &Redis,
    pattern: &str,
    max_keys: u64,
    dry_run: bool,
    count: u64,
    ctx: &Ctx<'_>,
) -> Result<Outputs, Error> {
    if pattern.is_empty() {
        return Err(Error::EmptyPattern);
    }
    if count == 0 {
        return Err(Error::ZeroCount);
    }
    let limit = max_keys.min(inst.max_delete);
    let mut c = connect(inst).await?;
    let (matched, keys) = scan(&mut c, pattern, count, limit).await?;
    ctx.out.line(&format!("{}: {matched} keys match {pattern}", inst.name));
    let mut o = Outputs::new();
    o.insert("matched".into(), Value::from(matched));
    o.insert("limit".into(), Value::from(limit));
    if dry_run {
        if matched > limit {
            ctx.out.line(&format!("dry run: more than the limit of {limit}; a real run would refuse"));
        } else {
            ctx.out.line("dry run: nothing deleted");
        }
        o.insert("deleted".into(), Value::from(0u64));
        o.insert("dry_run".into(), Value::Bool(true));
        return Ok(o);
    }
    if matched > limit {
        let why = if max_keys <= inst.max_delete { Limit::MaxKeys(max_keys) } else { Limit::Agent(inst.max_delete) };
        let (pattern, instance) = (pattern.to_string(), inst.name.clone());
        return Err(Error::TooMany { matched, pattern, instance, limit, why });
    }
    let deleted = unlink(&mut c, &keys).await?;
    ctx.out.line(&format!("{}: deleted {deleted} of {matched} keys matching {pattern}", inst.name));
    o.insert("deleted".into(), Value::from(deleted));
    o.insert("dry_run".into(), Value::Bool(false));
    Ok(o)
}

/// SCANs for `pattern`: how many distinct keys match (SCAN may return a key
/// twice), and the first `limit` of them (kept only while within the limit).
async fn scan(c: &mut Conn, pattern: &str, count: u64, limit: u64) -> Result<(u64, Vec<Vec<u8>>), Error> {
    let count_arg = count.to_string();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = c.ok(&["SCAN", &cursor, "MATCH", pattern, "COUNT", &count_arg]).await?;
        let Reply::Array(mut parts) = reply else {
            return Err(Error::unexpected("SCAN", format!("{reply:?}")));
        };
        let (Some(Reply::Array(batch)), Some(next)) = (parts.pop(), parts.pop().as_ref().and_then(reply_text)) else {
            return Err(Error::unexpected("SCAN", "an unexpected reply"));
        };
        for k in batch {
            if let Reply::BulkString(k) = k
                && seen.insert(key_hash(&k))
                && (keys.len() as u64) < limit
            {
                keys.push(k);
            }
        }
        cursor = next;
        if cursor == "0" {
            return Ok((seen.len() as u64, keys));
        }
    }
}

/// UNLINKs `keys` in batches; how many were deleted.
async fn unlink(c: &mut Conn, keys: &[Vec<u8>]) -> Result<u64, Error> {
    let mut deleted = 0u64;
    // Keys as Redis returned them: names need not be UTF-8.
    for batch in keys.chunks(UNLINK_BATCH) {
        let mut cmd = ::redis::cmd("UNLINK");
        for k in batch {
            cmd.arg(k.as_slice());
        }
        match c.send("UNLINK", &cmd).await? {
            Reply::Int(n) => deleted += u64::try_from(n).unwrap_or(0),
            Reply::ServerError(e) => return Err(Error::Unlink { said: said(&e), deleted }),
            other => return Err(Error::UnlinkReply { reply: format!("{other:?}"), deleted }),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{TestRedis, err_of, names};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn delete_pattern_counts_refuses_over_the_limits_and_deletes_only_the_matching_keys() {
        let r = TestRedis::start("max_delete = 20").await;
        r.write_keys("temp", 0..30).await;
        r.write_keys("keep", 0..10).await;

        // delete_pattern: a dry run counts only.
        let o = r
            .act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 100, "dry_run": true}))
            .await
            .unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(30), Some(0)));
        assert_eq!(r.keys("temp:*").await.len(), 30);
        // Over max_keys, or over the agent's max_delete: refused, with the count.
        let e = err_of(r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 10})).await);
        assert!(
            e.contains("30 keys match temp:*") && e.contains("max_keys 10") && e.contains("nothing was deleted"),
            "{e}"
        );
        let e = err_of(r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": "1000"})).await);
        assert!(e.contains("30 keys match") && e.contains("at most 20"), "{e}");
        assert_eq!(r.keys("temp:*").await.len(), 30, "nothing deleted by the refusals");
        // A real delete, several SCAN rounds (COUNT 3): only the matching keys go.
        let o = r.act("redis.delete_pattern", json!({"pattern": "temp:1*", "max_keys": 20, "count": 3})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(11), Some(11)));
        let left: Vec<String> = names("temp", 0..30).into_iter().filter(|k| !k.starts_with("temp:1")).collect();
        assert_eq!(r.keys("temp:*").await, left);
        let o = r.act("redis.delete_pattern", json!({"pattern": "temp:*", "max_keys": 20})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(19), Some(19)));
        assert!(r.keys("temp:*").await.is_empty());
        assert_eq!(r.keys("*").await, names("keep", 0..10), "the other keys are all there");
        assert!(!r.out.text().contains("KEYS"), "never KEYS");
    }

    #[tokio::test]
    async fn delete_pattern_deletes_keys_whose_names_are_not_utf8() {
        let r = TestRedis::start("").await;
        let mut c = Conn::open(r.inst()).await.unwrap_or_else(|_| panic!("connect"));
        for key in [&b"bin:\xff\xfe"[..], b"bin:plain"] {
            let set = c.send("SET", ::redis::cmd("SET").arg(key).arg("v")).await.unwrap();
            assert_eq!(set, Reply::Okay);
        }
        let o = r.act("redis.delete_pattern", json!({"pattern": "bin:*", "max_keys": 10})).await.unwrap();
        assert_eq!((o["matched"].as_u64(), o["deleted"].as_u64()), (Some(2), Some(2)));
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 0);
    }
}
