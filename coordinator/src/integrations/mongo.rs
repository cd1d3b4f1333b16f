//! `mongo.*` actions: checks and repairs on a MongoDB database.
//!
//! - `mongo.count`: documents per collection, compared with a minimum or a
//!   baseline (counts taken before the incident);
//! - `mongo.indexes_check`: the live indexes against a declared spec, by name
//!   and by key (field order and direction); reports rather than fails;
//! - `mongo.rebuild_index`: drop an index by name and create it again with
//!   the same key and name;
//! - `mongo.newest`: the newest document's time in a collection, which after
//!   a restore is the measured recovery point.
//!
//! Each call connects with the URI it is given (usually the output of
//! `atlas.connection_string`, credentials included) with a short
//! server-selection timeout, and disconnects. The URI's credentials never
//! appear in outputs, logs or errors: a server is only ever named by its
//! hosts, and every message is scrubbed of the URI, its user info and its
//! password.

use super::Outcome;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, IndexModel};
use ripcord_engine::actions::{MongoCount, MongoIndexesCheck, MongoNewest, MongoRebuildIndex};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{info, warn};

/// Server error codes this module recognises.
const NAMESPACE_NOT_FOUND: i32 = 26;
const INDEX_NOT_FOUND: i32 = 27;

/// The `mongo.*` actions. Holds no connection: every call connects with
/// the URI in its arguments.
#[derive(Debug, Clone)]
pub struct Mongo {
    server_selection_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for Mongo {
    fn default() -> Self {
        Self::new()
    }
}

type Outputs = BTreeMap<String, Value>;

impl Mongo {
    /// Server selection gives up after 10 s unless the URI says otherwise
    /// (`serverSelectionTimeoutMS`).
    pub fn new() -> Self {
        Self { server_selection_timeout: Duration::from_secs(10), connect_timeout: Duration::from_secs(10) }
    }

    /// Replaces the default server-selection timeout (tests use short ones).
    pub fn with_server_selection_timeout(mut self, t: Duration) -> Self {
        self.server_selection_timeout = t;
        self.connect_timeout = self.connect_timeout.min(t);
        self
    }

    /// Performs a `mongo.*` action. The step's timeout is kept by the
    /// router (`integrations::Actions`), the one place every call is timed.
    pub async fn perform(&self, action: &str, args: &Value, key: &Key) -> Outcome {
        let uri = args.get("uri").and_then(Value::as_str).unwrap_or_default().to_string();
        match self.dispatch(action, args, key).await {
            Ok(out) => Outcome::Succeeded(out),
            Err(e) => {
                let msg = scrub_uri(e, &uri);
                warn!(key = %key, action, server = %hosts_of(&uri), error = %msg, "mongo action failed");
                Outcome::Failed(msg)
            }
        }
    }

    async fn dispatch(&self, action: &str, args: &Value, key: &Key) -> Result<Outputs, String> {
        match action {
            "mongo.count" => self.count(&parse(action, args)?, key).await,
            "mongo.indexes_check" => self.indexes_check(&parse(action, args)?, key).await,
            "mongo.rebuild_index" => self.rebuild_index(&parse(action, args)?, key).await,
            "mongo.newest" => self.newest(&parse(action, args)?, key).await,
            other => Err(format!("unknown action {other}")),
        }
    }

    async fn connect(&self, uri: &str) -> Result<Client, String> {
        let target = hosts_of(uri);
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| format!("mongo: bad connection string for {target}: {}", describe(&e)))?;
        if opts.server_selection_timeout.is_none() {
            opts.server_selection_timeout = Some(self.server_selection_timeout);
        }
        if opts.connect_timeout.is_none() {
            opts.connect_timeout = Some(self.connect_timeout);
        }
        if opts.app_name.is_none() {
            opts.app_name = Some("ripcord".into());
        }
        Client::with_options(opts).map_err(|e| format!("mongo: cannot connect to {target}: {}", describe(&e)))
    }

    // -- mongo.count ------------------------------------------------------------

    async fn count(&self, a: &MongoCount, key: &Key) -> Result<Outputs, String> {
        let target = hosts_of(&a.uri);
        let mut names: Vec<String> = Vec::new();
        for c in a.collections.iter().chain(a.baseline.iter().flat_map(|b| b.keys())) {
            if !names.contains(c) {
                names.push(c.clone());
            }
        }
        if names.is_empty() {
            return Err("mongo.count: no collections named".into());
        }
        let client = self.connect(&a.uri).await?;
        let db = client.database(&a.db);
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for name in &names {
            let n = db
                .collection::<Document>(name)
                .count_documents(doc! {})
                .await
                .map_err(|e| format!("mongo: counting {}.{name} on {target}: {}", a.db, describe(&e)))?;
            counts.insert(name.clone(), i64::try_from(n).unwrap_or(i64::MAX));
        }
        let problems = count_problems(&names, &counts, a.min, a.baseline.as_ref());
        let listing = names.iter().map(|n| format!("{n}={}", counts[n])).collect::<Vec<_>>().join(", ");
        if !problems.is_empty() {
            return Err(format!("mongo.count on {}: {} (counts: {listing})", a.db, problems.join("; ")));
        }
        info!(key = %key, server = %target, db = %a.db, counts = %listing, "mongo.count");
        let total = counts.values().sum::<i64>();
        Ok(BTreeMap::from([
            ("counts".to_string(), Value::Map(counts.into_iter().map(|(k, v)| (k, Value::Int(v))).collect())),
            ("total".to_string(), Value::Int(total)),
        ]))
    }

    // -- mongo.indexes_check ----------------------------------------------------

    async fn indexes_check(&self, a: &MongoIndexesCheck, key: &Key) -> Result<Outputs, String> {
        let target = hosts_of(&a.uri);
        let declared = a
            .indexes
            .iter()
            .map(|s| Ok(Declared { name: s.name.clone(), key: index_key(&s.name, &s.key)? }))
            .collect::<Result<Vec<_>, String>>()?;
        let client = self.connect(&a.uri).await?;
        let live = list_indexes(&client, &a.db, &a.collection)
            .await
            .map_err(|e| format!("mongo: listing the indexes of {}.{} on {target}: {e}", a.db, a.collection))?;
        let report = compare_indexes(&declared, &live);
        info!(key = %key, server = %target, db = %a.db, collection = %a.collection, ok = report.ok,
            missing = ?report.missing, "mongo.indexes_check");
        let strs = |v: Vec<String>| Value::List(v.into_iter().map(Value::Str).collect());
        Ok(BTreeMap::from([
            ("ok".to_string(), Value::Bool(report.ok)),
            ("missing".to_string(), strs(report.missing)),
            ("problems".to_string(), strs(report.problems)),
            ("live".to_string(), strs(report.live)),
        ]))
    }

    // -- mongo.rebuild_index ----------------------------------------------------

    async fn rebuild_index(&self, a: &MongoRebuildIndex, key: &Key) -> Result<Outputs, String> {
        let target = hosts_of(&a.uri);
        if a.name.is_empty() {
            return Err("mongo.rebuild_index: name is empty".into());
        }
        let fields = index_key(&a.name, &a.key)?;
        let keys = key_document(&fields);
        let client = self.connect(&a.uri).await?;
        let coll = client.database(&a.db).collection::<Document>(&a.collection);
        let dropped = match coll.drop_index(&a.name).await {
            Ok(()) => true,
            Err(e) if matches!(command_code(&e), Some(INDEX_NOT_FOUND | NAMESPACE_NOT_FOUND)) => false,
            Err(e) => {
                return Err(format!(
                    "mongo: dropping index {} on {}.{} at {target}: {}",
                    a.name,
                    a.db,
                    a.collection,
                    describe(&e)
                ));
            }
        };
        let model =
            IndexModel::builder().keys(keys).options(IndexOptions::builder().name(a.name.clone()).build()).build();
        let created = coll.create_index(model).await.map_err(|e| {
            format!(
                "mongo: creating index {} {} on {}.{} at {target}{}: {}",
                a.name,
                format_key(&fields),
                a.db,
                a.collection,
                if dropped { " (the old one is dropped)" } else { "" },
                describe(&e)
            )
        })?;
        info!(key = %key, server = %target, db = %a.db, collection = %a.collection, index = %created.index_name,
            spec = %format_key(&fields), dropped, "mongo.rebuild_index");
        Ok(BTreeMap::from([
            ("name".to_string(), Value::Str(created.index_name)),
            ("dropped".to_string(), Value::Bool(dropped)),
        ]))
    }

    // -- mongo.newest -----------------------------------------------------------

    async fn newest(&self, a: &MongoNewest, key: &Key) -> Result<Outputs, String> {
        let target = hosts_of(&a.uri);
        let field = a.field.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| "createdAt".into());
        let client = self.connect(&a.uri).await?;
        let coll = client.database(&a.db).collection::<Document>(&a.collection);
        let found = coll
            .find_one(doc! { field.as_str(): { "$exists": true } })
            .sort(doc! { field.as_str(): -1 })
            .await
            .map_err(|e| {
                format!("mongo: reading the newest {field} of {}.{} on {target}: {}", a.db, a.collection, describe(&e))
            })?;
        let Some(document) = found else {
            return Err(format!("mongo.newest: {}.{} has no document with {field}", a.db, a.collection));
        };
        let value = lookup(&document, &field).cloned().unwrap_or(Bson::Null);
        let ms = time_of(&value).ok_or_else(|| {
            format!(
                "mongo.newest: {field} of the newest document in {}.{} is {}, not a date",
                a.db,
                a.collection,
                bson_kind(&value)
            )
        })?;
        let newest_at = ripcord_engine::clock::rfc3339(ms);
        if ripcord_engine::clock::parse_rfc3339(&newest_at) != Some(ms) {
            return Err(format!("mongo.newest: {field} is out of range (years 0000 to 9999): {ms} ms"));
        }
        let age = age_seconds(ms, ripcord_pki::clock::now_ms());
        info!(key = %key, server = %target, db = %a.db, collection = %a.collection, newest_at = %newest_at,
            age_seconds = age, "mongo.newest");
        Ok(BTreeMap::from([
            ("newest_at".to_string(), Value::Str(newest_at)),
            // Relative to now: the caller knows the incident time, not us.
            ("rpo_seconds".to_string(), Value::Int(age)),
            ("age_seconds".to_string(), Value::Int(age)),
        ]))
    }
}

/// `listIndexes` as the server sends it: `{v, key, name, …}` documents.
async fn list_indexes(client: &Client, db: &str, coll: &str) -> Result<Vec<Document>, String> {
    let reply = match client.database(db).run_command(doc! { "listIndexes": coll }).await {
        Ok(r) => r,
        // No collection, no indexes: everything declared is missing.
        Err(e) if command_code(&e) == Some(NAMESPACE_NOT_FOUND) => return Ok(vec![]),
        Err(e) => return Err(describe(&e)),
    };
    // At most 64 indexes per collection: they fit in the first batch.
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .map_err(|_| "the listIndexes reply has no cursor.firstBatch".to_string())?;
    Ok(batch.iter().filter_map(|b| b.as_document().cloned()).collect())
}

// ---------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------

/// A declared index: its name and its key, fields in order with 1 or -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub key: Vec<(String, i64)>,
}

/// What `mongo.indexes_check` found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexReport {
    /// Every declared index is there, by name, with its key.
    pub ok: bool,
    /// Names of the declared indexes that are missing or have another key.
    pub missing: Vec<String>,
    /// One sentence per missing or wrong index.
    pub problems: Vec<String>,
    /// The live indexes as `name {field: dir, …}`.
    pub live: Vec<String>,
}

/// Compares declared indexes with the documents `listIndexes` returned
/// (`{v: 2, key: {roomId: 1, createdAt: -1}, name: "roomId_createdAt"}`):
/// an index is there when one of that name has the same fields in the same
/// order with the same directions.
pub fn compare_indexes(declared: &[Declared], live: &[Document]) -> IndexReport {
    let live: Vec<(String, Vec<(String, Bson)>)> = live
        .iter()
        .map(|d| {
            let name = d.get_str("name").unwrap_or_default().to_string();
            let key = d.get_document("key").map(|k| k.iter().map(|(f, v)| (f.clone(), v.clone())).collect());
            (name, key.unwrap_or_default())
        })
        .collect();
    let mut report = IndexReport {
        live: live.iter().map(|(n, k)| format!("{n} {}", format_live_key(k))).collect(),
        ..IndexReport::default()
    };
    for want in declared {
        let same_key = |k: &[(String, Bson)]| {
            k.len() == want.key.len()
                && k.iter().zip(&want.key).all(|((f, v), (wf, wd))| f == wf && direction(v) == Some(*wd))
        };
        match live.iter().find(|(n, _)| *n == want.name) {
            Some((_, k)) if same_key(k) => continue,
            Some((_, k)) => report.problems.push(format!(
                "{} has key {}, expected {}",
                want.name,
                format_live_key(k),
                format_key(&want.key)
            )),
            None => match live.iter().find(|(_, k)| same_key(k)) {
                Some((other, _)) => report.problems.push(format!(
                    "{} is missing; an index with its key {} exists as {other}",
                    want.name,
                    format_key(&want.key)
                )),
                None => report.problems.push(format!("{} {} is missing", want.name, format_key(&want.key))),
            },
        }
        report.missing.push(want.name.clone());
    }
    report.ok = report.missing.is_empty();
    report
}

/// 1 or -1 from a key value of any numeric type; None for "text", "2dsphere"…
fn direction(v: &Bson) -> Option<i64> {
    let d = match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        Bson::Double(f) if f.fract() == 0.0 => *f as i64,
        _ => return None,
    };
    match d {
        1 | -1 => Some(d),
        _ => None,
    }
}

/// The declared key (`[{roomId: 1}, {createdAt: -1}]`) as ordered pairs.
pub fn index_key(name: &str, key: &[BTreeMap<String, i64>]) -> Result<Vec<(String, i64)>, String> {
    if key.is_empty() {
        return Err(format!("index {name}: the key names no fields"));
    }
    let mut out: Vec<(String, i64)> = Vec::new();
    for entry in key {
        let mut fields = entry.iter();
        let (Some((f, d)), None) = (fields.next(), fields.next()) else {
            return Err(format!(
                "index {name}: each key entry is one field, in order, like [{{roomId: 1}}, {{createdAt: -1}}]"
            ));
        };
        if *d != 1 && *d != -1 {
            return Err(format!("index {name}: direction of {f} must be 1 or -1, not {d}"));
        }
        if f.is_empty() || out.iter().any(|(g, _)| g == f) {
            return Err(format!("index {name}: field {f:?} is empty or repeated"));
        }
        out.push((f.clone(), *d));
    }
    Ok(out)
}

/// The key as a BSON document, fields in the declared order.
pub fn key_document(fields: &[(String, i64)]) -> Document {
    let mut d = Document::new();
    for (f, dir) in fields {
        d.insert(f.clone(), Bson::Int32(i32::try_from(*dir).unwrap_or(1)));
    }
    d
}

fn format_key(fields: &[(String, i64)]) -> String {
    let parts: Vec<String> = fields.iter().map(|(f, d)| format!("{f}: {d}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn format_live_key(fields: &[(String, Bson)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(f, v)| match direction(v) {
            Some(d) => format!("{f}: {d}"),
            None => format!("{f}: {v}"),
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Why counts fail: below `min`, or below the baseline.
pub fn count_problems(
    names: &[String],
    counts: &BTreeMap<String, i64>,
    min: Option<i64>,
    baseline: Option<&BTreeMap<String, i64>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in names {
        let n = counts.get(name).copied().unwrap_or(0);
        if let Some(m) = min
            && n < m
        {
            problems.push(format!("{name} has {n} documents, fewer than the minimum {m}"));
        }
        if let Some(b) = baseline.and_then(|b| b.get(name))
            && n < *b
        {
            problems.push(format!("{name} dropped from {b} to {n} documents ({} fewer)", b - n));
        }
    }
    problems
}

/// A dotted path (`meta.createdAt`) in a document.
fn lookup<'a>(d: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut cur = d.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_document()?.get(p)?;
    }
    Some(cur)
}

/// Milliseconds since the epoch of a date-like value: a BSON date, a
/// timestamp, an ObjectId (its creation second) or an RFC 3339 string.
pub fn time_of(v: &Bson) -> Option<i64> {
    match v {
        Bson::DateTime(d) => Some(d.timestamp_millis()),
        Bson::Timestamp(t) => Some(i64::from(t.time) * 1000),
        Bson::ObjectId(o) => Some(o.timestamp().timestamp_millis()),
        Bson::String(s) => ripcord_engine::clock::parse_rfc3339(s),
        _ => None,
    }
}

fn bson_kind(v: &Bson) -> &'static str {
    match v {
        Bson::Null => "null",
        Bson::String(_) => "a string",
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "a number",
        Bson::Boolean(_) => "a boolean",
        Bson::Document(_) => "a document",
        Bson::Array(_) => "an array",
        _ => "another BSON type",
    }
}

/// Whole seconds from `then` to `now` (milliseconds), never negative.
pub fn age_seconds(then_ms: i64, now_ms: i64) -> i64 {
    (now_ms.saturating_sub(then_ms) / 1000).max(0)
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// A driver error in a sentence (scrubbed later with the URI).
fn describe(e: &mongodb::error::Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        ErrorKind::Authentication { message, .. } => format!("authentication failed: {message}"),
        ErrorKind::ServerSelection { message, .. } => format!("no server answered in time: {message}"),
        // The kind alone: the error's own Display adds labels and sources.
        kind => kind.to_string(),
    }
}

fn parse<T: DeserializeOwned>(action: &str, args: &Value) -> Result<T, String> {
    let v = serde_json::to_value(args).map_err(|e| format!("{action}: bad arguments: {e}"))?;
    serde_json::from_value(v).map_err(|e| format!("{action}: bad arguments: {e}"))
}

// ---------------------------------------------------------------------------
// Keeping the URI's secrets out of messages
// ---------------------------------------------------------------------------

/// The parts of a connection string: (scheme, userinfo, hosts, rest).
fn split_uri(uri: &str) -> (&str, Option<&str>, &str) {
    let (scheme, rest) = match uri.find("://") {
        Some(i) => (&uri[..i], &uri[i + 3..]),
        None => ("", uri),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind('@') {
        Some(at) => (scheme, Some(&authority[..at]), &authority[at + 1..]),
        None => (scheme, None, authority),
    }
}

/// `mongodb+srv://user:pw@cluster0.x.mongodb.net/chatdb?…` → `mongodb+srv://cluster0.x.mongodb.net`:
/// how a server is named in messages.
pub fn hosts_of(uri: &str) -> String {
    let (scheme, _, hosts) = split_uri(uri);
    if scheme.is_empty() { hosts.to_string() } else { format!("{scheme}://{hosts}") }
}

/// Removes the URI, its user info and its password (raw and decoded) from
/// `msg`.
pub fn scrub_uri(mut msg: String, uri: &str) -> String {
    if uri.is_empty() {
        return msg;
    }
    let (_, userinfo, _) = split_uri(uri);
    msg = msg.replace(uri, &hosts_of(uri));
    if let Some(ui) = userinfo {
        let password = ui.split_once(':').map(|(_, p)| p).unwrap_or_default();
        let mut secrets = vec![ui.to_string(), password.to_string(), percent_decode(password), percent_decode(ui)];
        secrets.retain(|s| s.len() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            msg = msg.replace(&s, "••••");
        }
    }
    msg
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str, key: &[(&str, i64)]) -> Declared {
        Declared { name: name.into(), key: key.iter().map(|(f, d)| (f.to_string(), *d)).collect() }
    }

    /// What a real MongoDB answers to listIndexes on chatdb.messages.
    fn real_indexes() -> Vec<Document> {
        vec![
            doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
            doc! { "v": 2, "key": { "roomId": 1, "createdAt": -1 }, "name": "roomId_createdAt" },
            doc! { "v": 2, "key": { "userId": 1 }, "name": "userId_1", "unique": true },
            doc! { "v": 2, "key": { "_fts": "text", "_ftsx": 1 }, "name": "text_text", "weights": { "text": 1 } },
        ]
    }

    #[test]
    fn indexes_match_by_name_order_and_direction() {
        let want = [declared("roomId_createdAt", &[("roomId", 1), ("createdAt", -1)]), declared("_id_", &[("_id", 1)])];
        let r = compare_indexes(&want, &real_indexes());
        assert!(r.ok, "{r:?}");
        assert!(r.missing.is_empty() && r.problems.is_empty());
        assert!(r.live.contains(&"roomId_createdAt {roomId: 1, createdAt: -1}".to_string()), "{:?}", r.live);
        assert!(r.live.contains(&"text_text {_fts: \"text\", _ftsx: 1}".to_string()), "{:?}", r.live);
    }

    #[test]
    fn numeric_types_of_directions_do_not_matter() {
        let live = [doc! { "v": 2, "key": { "roomId": 1_i64, "createdAt": -1.0 }, "name": "roomId_createdAt" }];
        let r = compare_indexes(&[declared("roomId_createdAt", &[("roomId", 1), ("createdAt", -1)])], &live);
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn wrong_direction_wrong_order_and_missing_are_reported() {
        let want = [declared("roomId_createdAt", &[("roomId", 1), ("createdAt", -1)])];
        let table: [(Document, &str); 5] = [
            (
                doc! { "v": 2, "key": { "roomId": 1, "createdAt": 1 }, "name": "roomId_createdAt" },
                "has key {roomId: 1, createdAt: 1}",
            ),
            (
                doc! { "v": 2, "key": { "createdAt": -1, "roomId": 1 }, "name": "roomId_createdAt" },
                "has key {createdAt: -1, roomId: 1}",
            ),
            (doc! { "v": 2, "key": { "roomId": 1 }, "name": "roomId_createdAt" }, "has key {roomId: 1}"),
            (
                doc! { "v": 2, "key": { "roomId": 1, "createdAt": -1 }, "name": "roomId_1_createdAt_-1" },
                "exists as roomId_1_createdAt_-1",
            ),
            (
                doc! { "v": 2, "key": { "_id": 1 }, "name": "_id_" },
                "roomId_createdAt {roomId: 1, createdAt: -1} is missing",
            ),
        ];
        for (live, expect) in table {
            let r = compare_indexes(&want, std::slice::from_ref(&live));
            assert!(!r.ok, "{live}");
            assert_eq!(r.missing, vec!["roomId_createdAt".to_string()], "{live}");
            assert!(r.problems[0].contains(expect), "{live}: {:?}", r.problems);
        }
        let r = compare_indexes(&want, &[]);
        assert_eq!(r.missing, vec!["roomId_createdAt".to_string()]);
        assert!(compare_indexes(&[], &real_indexes()).ok);
    }

    #[test]
    fn declared_keys_keep_their_order_and_refuse_junk() {
        let k = vec![BTreeMap::from([("roomId".to_string(), 1)]), BTreeMap::from([("createdAt".to_string(), -1)])];
        let fields = index_key("i", &k).unwrap();
        assert_eq!(fields, vec![("roomId".to_string(), 1), ("createdAt".to_string(), -1)]);
        let d = key_document(&fields);
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["roomId", "createdAt"]);
        assert_eq!(d, doc! { "roomId": 1, "createdAt": -1 });
        let two = vec![BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 1)])];
        assert!(index_key("i", &two).unwrap_err().contains("one field"));
        assert!(index_key("i", &[BTreeMap::from([("a".to_string(), 2)])]).unwrap_err().contains("1 or -1"));
        assert!(index_key("i", &[]).is_err());
        let rep = vec![BTreeMap::from([("a".to_string(), 1)]), BTreeMap::from([("a".to_string(), -1)])];
        assert!(index_key("i", &rep).unwrap_err().contains("repeated"));
    }

    #[test]
    fn counts_fail_below_min_or_baseline() {
        let names = vec!["users".to_string(), "messages".to_string()];
        let counts = BTreeMap::from([("users".to_string(), 10), ("messages".to_string(), 3)]);
        assert!(count_problems(&names, &counts, Some(1), None).is_empty());
        let p = count_problems(&names, &counts, Some(5), None);
        assert_eq!(p, vec!["messages has 3 documents, fewer than the minimum 5".to_string()]);
        let base = BTreeMap::from([("users".to_string(), 10), ("messages".to_string(), 4)]);
        let p = count_problems(&names, &counts, None, Some(&base));
        assert_eq!(p, vec!["messages dropped from 4 to 3 documents (1 fewer)".to_string()]);
        let grown = BTreeMap::from([("users".to_string(), 9), ("messages".to_string(), 3)]);
        assert!(count_problems(&names, &counts, Some(0), Some(&grown)).is_empty());
    }

    #[test]
    fn times_of_dates_timestamps_object_ids_and_strings() {
        let ms = 1_714_564_800_123;
        assert_eq!(time_of(&Bson::DateTime(mongodb::bson::DateTime::from_millis(ms))), Some(ms));
        assert_eq!(time_of(&Bson::String("2024-05-01T12:00:00Z".into())), Some(1_714_564_800_000));
        assert_eq!(
            time_of(&Bson::Timestamp(mongodb::bson::Timestamp { time: 1_714_564_800, increment: 1 })),
            Some(1_714_564_800_000)
        );
        let oid = mongodb::bson::oid::ObjectId::parse_str("663230c00000000000000000").unwrap();
        assert_eq!(time_of(&Bson::ObjectId(oid)), Some(1_714_565_312_000));
        assert_eq!(time_of(&Bson::Int64(5)), None);
        assert_eq!(time_of(&Bson::String("yesterday".into())), None);
        assert_eq!(age_seconds(1_000, 62_999), 61);
        assert_eq!(age_seconds(10_000, 1_000), 0);
    }

    #[test]
    fn uris_lose_their_credentials() {
        let uri = "mongodb+srv://app:p%40ss-w0rd!@cluster0.ab12c.mongodb.net/chatdb?retryWrites=true&w=majority";
        assert_eq!(hosts_of(uri), "mongodb+srv://cluster0.ab12c.mongodb.net");
        assert_eq!(hosts_of("mongodb://h1:27017,h2:27017/?replicaSet=rs"), "mongodb://h1:27017,h2:27017");
        let msg = format!("failed for {uri}; password p%40ss-w0rd! or p@ss-w0rd!; user app:p@ss-w0rd!");
        let s = scrub_uri(msg, uri);
        assert!(!s.contains("ss-w0rd"), "{s}");
        assert!(s.contains("mongodb+srv://cluster0.ab12c.mongodb.net"), "{s}");
        assert_eq!(scrub_uri("x".into(), "mongodb://localhost"), "x");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[allow(dead_code)]
    fn perform_is_send(m: &Mongo, v: &Value, k: &Key) {
        fn send<T: Send>(_: T) {}
        send(m.perform("mongo.count", v, k));
    }
}
