//! The `mongo.*` actions (`ripcord_coordinator::integrations::mongo`)
//! against a real `nx-27017` (MongoDB wire protocol on SQLite), seeded and
//! cross-checked with pymongo: counts against a minimum and a baseline, an
//! index rebuilt and found again, the newest document's time, and errors
//! that never carry the URI's password.
//!
//! nx-27017's listIndexes reports SQLite's index names and loses `-1`
//! directions, so index names and directions read back from it are not
//! asserted here; the comparison itself is unit-tested in the module with
//! listIndexes documents shaped like a real MongoDB's.

use ripcord_coordinator::integrations::Outcome;
use ripcord_coordinator::integrations::mongo::Mongo;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use ripcord_tests::services::NxMongo;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const DB: &str = "chatdb";
const PASSWORD: &str = "Sup3r-S3cret-Pw";

fn mongo() -> Mongo {
    ripcord_pki::tls::install_crypto_provider();
    Mongo::new().with_server_selection_timeout(Duration::from_secs(3))
}

fn key(step: &str) -> Key {
    Key { run: "run-1".into(), step: step.into(), attempt: 1 }
}

fn args(v: serde_json::Value) -> Value {
    serde_json::from_value(v).expect("args")
}

fn succeeded(o: Outcome) -> BTreeMap<String, Value> {
    match o {
        Outcome::Succeeded(out) => out,
        Outcome::Failed(e) => panic!("expected success, got: {e}"),
    }
}

fn failed(o: Outcome) -> String {
    match o {
        Outcome::Failed(e) => e,
        Outcome::Succeeded(out) => panic!("expected failure, got: {out:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().map(|x| x.as_str().expect("string").to_string()).collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// users: 3; messages: 5 with createdAt (newest 2024-05-01T12:00:04Z) and
/// one without.
fn seed(nx: &NxMongo) {
    nx.python(
        "db = client['chatdb']\n\
         db.users.insert_many([{'name': n} for n in ['ann', 'bob', 'cy']])\n\
         db.messages.insert_many([{'roomId': 'r%d' % (i % 2), 'text': 'm%d' % i,\n\
             'createdAt': datetime.datetime(2024, 5, 1, 12, 0, i, tzinfo=datetime.timezone.utc)} for i in range(5)])\n\
         db.messages.insert_one({'roomId': 'r0', 'text': 'no date'})\n\
         db.drafts.insert_one({'text': 'undated'})\n",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn count_against_min_and_baseline() {
    let nx = NxMongo::start();
    seed(&nx);
    let m = mongo();
    let count = |extra: serde_json::Value| {
        let mut a = json!({ "uri": nx.uri(), "db": DB, "collections": ["users", "messages"] });
        a.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap());
        args(a)
    };

    let out = succeeded(m.perform("mongo.count", &count(json!({ "min": 1 })), &key("verify-counts")).await);
    let counts = BTreeMap::from([("messages".to_string(), Value::Int(6)), ("users".to_string(), Value::Int(3))]);
    assert_eq!(out["counts"], Value::Map(counts));
    assert_eq!(out["total"], Value::Int(9));

    let e = failed(m.perform("mongo.count", &count(json!({ "min": 5 })), &key("verify-counts")).await);
    assert!(e.contains("users has 3 documents, fewer than the minimum 5"), "{e}");
    assert!(!e.contains("messages has"), "{e}");
    assert!(e.contains("users=3, messages=6"), "{e}");

    let ok = count(json!({ "baseline": { "users": 3, "messages": 6, "rooms": 0 } }));
    let out = succeeded(m.perform("mongo.count", &ok, &key("verify-counts")).await);
    assert_eq!(out["counts"].get("rooms"), Some(&Value::Int(0)), "baseline collections are counted too");

    let dropped = count(json!({ "baseline": { "users": 2, "messages": 8 } }));
    let e = failed(m.perform("mongo.count", &dropped, &key("verify-counts")).await);
    assert!(e.contains("messages dropped from 8 to 6 documents (2 fewer)"), "{e}");
    assert!(!e.contains("users dropped"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_index_then_indexes_check_sees_it() {
    let nx = NxMongo::start();
    seed(&nx);
    let m = mongo();
    let spec = json!([{ "roomId": 1 }, { "createdAt": -1 }]);
    let check = |indexes: serde_json::Value| {
        args(json!({ "uri": nx.uri(), "db": DB, "collection": "messages", "indexes": indexes }))
    };
    let on_room_and_time =
        |live: &[String]| live.iter().filter(|l| l.contains("{roomId: ") && l.contains(", createdAt: ")).count();

    // Before: _id_ is reported faithfully; roomId_createdAt is missing.
    let before = succeeded(
        m.perform("mongo.indexes_check", &check(json!([{ "name": "roomId_createdAt", "key": spec }])), &key("check"))
            .await,
    );
    assert_eq!(before["ok"], Value::Bool(false));
    assert_eq!(strings(&before["missing"]), vec!["roomId_createdAt".to_string()]);
    assert_eq!(on_room_and_time(&strings(&before["live"])), 0, "{:?}", before["live"]);
    let id = succeeded(
        m.perform("mongo.indexes_check", &check(json!([{ "name": "_id_", "key": [{ "_id": 1 }] }])), &key("check"))
            .await,
    );
    assert_eq!(id["ok"], Value::Bool(true), "{id:?}");

    // Rebuild, twice (drop + create each time): one index on (roomId, createdAt).
    let rebuild =
        args(json!({ "uri": nx.uri(), "db": DB, "collection": "messages", "name": "roomId_createdAt", "key": spec }));
    for _ in 0..2 {
        let out = succeeded(m.perform("mongo.rebuild_index", &rebuild, &key("rebuild")).await);
        assert_eq!(out["name"], Value::str("roomId_createdAt"));
    }
    let after = succeeded(
        m.perform("mongo.indexes_check", &check(json!([{ "name": "roomId_createdAt", "key": spec }])), &key("recheck"))
            .await,
    );
    let live = strings(&after["live"]);
    assert_eq!(on_room_and_time(&live), 1, "{live:?}");
    // pymongo sees the same fields in the same order.
    let fields =
        nx.python("for i in client['chatdb'].messages.list_indexes():\n    print(','.join(i['key'].keys()))\n");
    assert!(fields.lines().any(|l| l == "roomId,createdAt"), "{fields}");

    // Keys that are not one field per entry are refused before any call.
    let bad =
        args(json!({ "uri": nx.uri(), "db": DB, "collection": "messages", "name": "x", "key": [{ "a": 1, "b": 1 }] }));
    assert!(failed(m.perform("mongo.rebuild_index", &bad, &key("rebuild")).await).contains("one field"));
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_document_time() {
    let nx = NxMongo::start();
    seed(&nx);
    let m = mongo();
    let newest = |collection: &str, field: Option<&str>| {
        let mut a = json!({ "uri": nx.uri(), "db": DB, "collection": collection });
        if let Some(f) = field {
            a["field"] = json!(f);
        }
        args(a)
    };

    let out = succeeded(m.perform("mongo.newest", &newest("messages", None), &key("measure-rpo")).await);
    assert_eq!(out["newest_at"], Value::str("2024-05-01T12:00:04Z"));
    let now = ripcord_pki::clock::now_ms() / 1000;
    let Value::Int(age) = out["age_seconds"] else { panic!("{out:?}") };
    assert!((now - 1_714_564_804 - age).abs() <= 5, "age {age}");
    assert_eq!(out["rpo_seconds"], out["age_seconds"]);

    let same = succeeded(m.perform("mongo.newest", &newest("messages", Some("createdAt")), &key("measure-rpo")).await);
    assert_eq!(same["newest_at"], out["newest_at"]);

    let e = failed(m.perform("mongo.newest", &newest("drafts", None), &key("measure-rpo")).await);
    assert!(e.contains("chatdb.drafts has no document with createdAt"), "{e}");
    let e = failed(m.perform("mongo.newest", &newest("messages", Some("text")), &key("measure-rpo")).await);
    assert!(e.contains("text of the newest document in chatdb.messages is a string, not a date"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_never_show_the_password() {
    let nx = NxMongo::start();
    let m = mongo();
    let uri = nx.uri_with_credentials("app", PASSWORD);
    let count = |uri: &str| args(json!({ "uri": uri, "db": DB, "collections": ["users"], "min": 1 }));

    // nx-27017 does not speak SCRAM: the driver's authentication fails.
    let e = failed(m.perform("mongo.count", &count(&uri), &key("verify-counts")).await);
    assert!(!e.contains(PASSWORD) && !e.contains("app:"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{}", nx.port)), "{e}");

    // Nobody listening: server selection gives up, naming the host only.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("mongodb://app:{PASSWORD}@127.0.0.1:{closed}/?directConnection=true");
    let e = failed(
        m.perform("mongo.newest", &args(json!({ "uri": dead, "db": DB, "collection": "messages" })), &key("x")).await,
    );
    assert!(!e.contains(PASSWORD) && !e.contains("app:"), "{e}");
    assert!(e.contains(&format!("mongodb://127.0.0.1:{closed}")), "{e}");

    // A URI the driver cannot parse.
    let bad = format!("mongodb://app:{PASSWORD}@127.0.0.1:{closed}/?directConnection=maybe");
    let e = failed(m.perform("mongo.count", &count(&bad), &key("x")).await);
    assert!(!e.contains(PASSWORD), "{e}");
    assert!(e.contains("bad connection string"), "{e}");
}

/// Against a server with access control (nx-27017 with SCRAM-SHA-256 users):
/// the password in the URI is what lets the action in.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_the_uri_log_in_and_a_wrong_password_is_refused() {
    let nx = NxMongo::start_with_users(&[("app", PASSWORD)]);
    seed(&nx);
    let m = mongo();
    let count = |uri: &str| args(json!({ "uri": uri, "db": DB, "collections": ["users"], "min": 1 }));
    let before = nx.logins().len();

    let out = succeeded(m.perform("mongo.count", &count(&nx.uri_with_credentials("app", PASSWORD)), &key("c")).await);
    assert_eq!(out["counts"].get("users"), Some(&Value::Int(3)), "{out:?}");
    assert!(nx.logins().len() > before, "the action did not log in: {:?}", nx.logins());

    let wrong = nx.uri_with_credentials("app", "Not-the-Pa55word");
    let e = failed(m.perform("mongo.count", &count(&wrong), &key("c")).await);
    assert!(e.to_lowercase().contains("authentication failed"), "{e}");
    assert!(!e.contains("Not-the-Pa55word"), "{e}");

    let e = failed(m.perform("mongo.count", &count(&nx.uri()), &key("c")).await);
    assert!(e.contains("requires authentication"), "{e}");
}
