//! `aws.update_secret` and `restore_previous`
//! (`ripcord_coordinator::integrations::secrets`) against a real
//! `moto_server`, with boto3 as the independent witness: the merge keeps
//! other keys, the previous version is recorded and can be put back, a
//! repeated step writes no second version, bad secrets fail clearly, and
//! secret values never show in what ripcord reports.

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use ripcord_coordinator::integrations::Outcome;
use ripcord_coordinator::integrations::secrets::{Secrets, SecretsConfig};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use ripcord_tests::services::Moto;
use serde_json::json;
use std::collections::BTreeMap;

const SECRET: &str = "chat-app/database";
const OLD_URI: &str = "mongodb+srv://app:0ld-Pa55w0rd@chat-prod.ab12c.mongodb.net/chatdb";
const NEW_URI: &str = "mongodb+srv://app:N3w-Pa55w0rd@restore-1.ab12c.mongodb.net/chatdb";
const OTHER: &str = "other-value-that-stays";

async fn client(moto: &Moto) -> Secrets {
    ripcord_pki::tls::install_crypto_provider();
    let config = SecretsConfig { endpoint_url: Some(moto.endpoint()), region: Some(Moto::REGION.into()) };
    Secrets::with_static_credentials(&config, Moto::ACCESS_KEY, Moto::SECRET_KEY).await
}

fn key(run: &str, step: &str, attempt: u32) -> Key {
    Key { run: run.into(), step: step.into(), attempt }
}

fn update(secret: &str, set: &[(&str, &str)]) -> Value {
    let set: serde_json::Map<String, serde_json::Value> = set.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    serde_json::from_value(json!({ "secret_id": secret, "set": set })).expect("args")
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

fn str_of<'a>(out: &'a BTreeMap<String, Value>, k: &str) -> &'a str {
    out.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("no string output {k} in {out:?}"))
}

fn list_of(out: &BTreeMap<String, Value>, k: &str) -> Vec<String> {
    match out.get(k) {
        Some(Value::List(l)) => l.iter().map(|v| v.as_str().expect("string").to_string()).collect(),
        other => panic!("output {k} is not a list: {other:?}"),
    }
}

/// No secret value, whole or in part, in `text`.
fn assert_no_values(text: &str) {
    for v in [OLD_URI, NEW_URI, OTHER, "0ld-Pa55w0rd", "N3w-Pa55w0rd"] {
        assert!(!text.contains(v), "{v:?} shows in: {text}");
    }
}

fn original() -> String {
    json!({ "mongo_uri": OLD_URI, "other": OTHER }).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn update_merges_records_previous_and_restores() {
    let moto = Moto::start();
    let secrets = client(&moto).await;
    let v0 = moto.create_secret(SECRET, &original());

    let k = key("run-1", "switch-secret", 1);
    let outcome = secrets.perform("aws.update_secret", &update(SECRET, &[("mongo_uri", NEW_URI)]), &k).await;
    assert_no_values(&format!("{outcome:?}"));
    let out = succeeded(outcome);
    let v1 = str_of(&out, "version_id").to_string();
    assert_ne!(v1, v0);
    assert_eq!(str_of(&out, "previous_version_id"), v0);
    assert_eq!(list_of(&out, "keys_changed"), vec!["mongo_uri".to_string()]);

    // boto3 sees the merge: the new URI, `other` kept.
    let now: serde_json::Value = serde_json::from_str(&moto.secret_value(SECRET)).expect("JSON secret");
    assert_eq!(now, json!({ "mongo_uri": NEW_URI, "other": OTHER }));
    let versions = moto.versions(SECRET);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions[&v1].contains(&"AWSCURRENT".to_string()), "{versions:?}");
    assert!(versions[&v0].contains(&"AWSPREVIOUS".to_string()), "{versions:?}");

    // The same step again (coordinator restart) and its retry: no second
    // version, and the previous version is still the one before the step.
    for attempt in [1, 2] {
        let again = succeeded(
            secrets
                .perform(
                    "aws.update_secret",
                    &update(SECRET, &[("mongo_uri", NEW_URI)]),
                    &key("run-1", "switch-secret", attempt),
                )
                .await,
        );
        assert_eq!(str_of(&again, "version_id"), v1, "attempt {attempt}");
        assert_eq!(str_of(&again, "previous_version_id"), v0, "attempt {attempt}");
        assert_eq!(list_of(&again, "keys_changed"), vec!["mongo_uri".to_string()]);
        assert_eq!(moto.versions(SECRET).len(), 2, "attempt {attempt} wrote a version");
    }

    // Putting the previous version back: the original value, byte for byte.
    let restored = secrets.restore_previous(SECRET, &v0).await.expect("restore");
    assert!(!restored.unchanged);
    assert_eq!(restored.restored_from, v0);
    assert_eq!(restored.replaced_version_id, v1);
    assert_eq!(moto.secret_value(SECRET), original());
    let versions = moto.versions(SECRET);
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(versions[&restored.version_id].contains(&"AWSCURRENT".to_string()));
    assert_no_values(&format!("{restored:?}"));

    // Restoring again changes nothing.
    let twice = secrets.restore_previous(SECRET, &v0).await.expect("restore again");
    assert!(twice.unchanged);
    assert_eq!(twice.version_id, restored.version_id);
    assert_eq!(moto.versions(SECRET).len(), 3);

    // A later run updates again; its previous is the restored version.
    let later = succeeded(
        secrets
            .perform("aws.update_secret", &update(SECRET, &[("mongo_uri", NEW_URI)]), &key("run-2", "switch-secret", 1))
            .await,
    );
    assert_eq!(str_of(&later, "previous_version_id"), restored.version_id);
    assert_ne!(str_of(&later, "version_id"), v1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_keys_write_nothing_and_new_keys_are_added() {
    let moto = Moto::start();
    let secrets = client(&moto).await;
    let v0 = moto.create_secret(SECRET, &original());

    let same = succeeded(
        secrets.perform("aws.update_secret", &update(SECRET, &[("mongo_uri", OLD_URI)]), &key("run-1", "s", 1)).await,
    );
    assert_eq!(str_of(&same, "version_id"), v0);
    assert_eq!(str_of(&same, "previous_version_id"), v0);
    assert!(list_of(&same, "keys_changed").is_empty());
    assert_eq!(moto.versions(SECRET).len(), 1);

    let added = succeeded(
        secrets
            .perform(
                "aws.update_secret",
                &update(SECRET, &[("mongo_uri", OLD_URI), ("replica", "rs0")]),
                &key("run-1", "t", 1),
            )
            .await,
    );
    assert_eq!(list_of(&added, "keys_changed"), vec!["replica".to_string()]);
    let now: serde_json::Value = serde_json::from_str(&moto.secret_value(SECRET)).unwrap();
    assert_eq!(now, json!({ "mongo_uri": OLD_URI, "other": OTHER, "replica": "rs0" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_secrets_fail_clearly_without_values() {
    let moto = Moto::start();
    let secrets = client(&moto).await;
    let set = [("mongo_uri", NEW_URI)];

    let missing = failed(secrets.perform("aws.update_secret", &update(SECRET, &set), &key("r", "s", 1)).await);
    assert_eq!(missing, "aws: secret chat-app/database not found");

    moto.create_secret("plain", "0ld-Pa55w0rd");
    let plain = failed(secrets.perform("aws.update_secret", &update("plain", &set), &key("r", "s", 1)).await);
    assert!(plain.contains("secret plain does not hold a JSON object (not JSON)"), "{plain}");
    assert_no_values(&plain);

    moto.create_secret("quoted", &json!(OLD_URI).to_string());
    let quoted = failed(secrets.perform("aws.update_secret", &update("quoted", &set), &key("r", "s", 1)).await);
    assert!(quoted.contains("does not hold a JSON object (a string)"), "{quoted}");
    assert_no_values(&quoted);

    moto.python("sm.create_secret(Name='binary', SecretBinary=b'0ld-Pa55w0rd')");
    let binary = failed(secrets.perform("aws.update_secret", &update("binary", &set), &key("r", "s", 1)).await);
    assert!(binary.contains("does not hold a JSON object (a binary secret)"), "{binary}");

    // Nothing was written to any of them.
    for name in ["plain", "quoted", "binary"] {
        assert_eq!(moto.versions(name).len(), 1, "{name}");
    }

    let unknown = secrets.restore_previous("plain", "ripcord-00000000000000000000000000000000").await.unwrap_err();
    assert!(
        unknown.to_string().contains("version ripcord-00000000000000000000000000000000 of secret plain not found"),
        "{unknown}"
    );

    let args: Value = serde_json::from_value(json!({ "secret_id": SECRET, "set": { "mongo_uri": 5 } })).unwrap();
    let bad = failed(secrets.perform("aws.update_secret", &args, &key("r", "s", 1)).await);
    assert!(bad.contains("bad arguments"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_after_someone_else_changed_the_secret_does_not_overwrite() {
    let moto = Moto::start();
    let secrets = client(&moto).await;
    moto.create_secret(SECRET, &original());
    let k = key("run-1", "switch-secret", 1);
    let args = update(SECRET, &[("mongo_uri", NEW_URI)]);
    let ours = succeeded(secrets.perform("aws.update_secret", &args, &k).await);

    // Someone rotates the secret by hand before the step is repeated.
    moto.python(&format!(
        "sm.put_secret_value(SecretId='{SECRET}', SecretString=json.dumps({{'mongo_uri': 'by-hand'}}))"
    ));
    let e = failed(secrets.perform("aws.update_secret", &args, &k).await);
    assert!(e.contains("was changed after this step wrote version"), "{e}");
    assert!(e.contains(str_of(&ours, "version_id")), "{e}");
    let now: serde_json::Value = serde_json::from_str(&moto.secret_value(SECRET)).unwrap();
    assert_eq!(now, json!({ "mongo_uri": "by-hand" }));
    assert_no_values(&e);
}

/// A credential chain that finds nothing (no keys, no profile, no
/// instance role): an update fails with what to set. The chain is a stand-in
/// that finds nothing, so the test asks no instance-metadata service.
#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no providers in chain provided credentials",
        )))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_fail_clearly() {
    let moto = Moto::start();
    ripcord_pki::tls::install_crypto_provider();
    let config = SecretsConfig { endpoint_url: Some(moto.endpoint()), region: Some(Moto::REGION.into()) };
    let secrets = Secrets::with_credentials_provider(&config, NoCredentials).await;
    moto.create_secret(SECRET, &original());
    let e = failed(
        secrets.perform("aws.update_secret", &update(SECRET, &[("mongo_uri", NEW_URI)]), &key("r", "s", 1)).await,
    );
    assert!(e.contains("no usable credentials"), "{e}");
    assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
    assert_eq!(moto.versions(SECRET).len(), 1);
}

/// Keys the service does not know: a credentials error, not a generic one.
#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_fail_clearly() {
    let moto = Moto::start_checking_auth();
    let secrets = client(&moto).await;
    let e = failed(
        secrets.perform("aws.update_secret", &update(SECRET, &[("mongo_uri", NEW_URI)]), &key("r", "s", 1)).await,
    );
    assert!(e.starts_with("aws: the credentials were refused for DescribeSecret on secret chat-app/database"), "{e}");
    assert!(!e.contains(Moto::SECRET_KEY), "{e}");
    assert_no_values(&e);
}

/// `aws.restore_secret`: the step that puts the previous version back (e.g.
/// `version_id: "{{ steps.switch-secret.previous_version_id }}"`).
#[tokio::test]
async fn restore_secret_action_puts_the_previous_version_back() {
    let moto = Moto::start();
    let secrets = client(&moto).await;
    let v0 = moto.create_secret(SECRET, &original());
    let out = succeeded(
        secrets
            .perform("aws.update_secret", &update(SECRET, &[("mongo_uri", NEW_URI)]), &key("run-9", "switch", 1))
            .await,
    );
    assert_eq!(str_of(&out, "previous_version_id"), v0);
    let mut args = std::collections::BTreeMap::new();
    args.insert("secret_id".to_string(), Value::str(SECRET));
    args.insert("version_id".to_string(), Value::str(&v0));
    let args = Value::Map(args);
    let outcome = secrets.perform("aws.restore_secret", &args, &key("run-9", "undo", 1)).await;
    assert_no_values(&format!("{outcome:?}"));
    let back = succeeded(outcome);
    assert_eq!(str_of(&back, "restored_from"), v0);
    assert_eq!(moto.secret_value(SECRET), original());
    // Again (a restart of the coordinator repeats the step): nothing written.
    let again = succeeded(secrets.perform("aws.restore_secret", &args, &key("run-9", "undo", 1)).await);
    assert_eq!(again.get("unchanged"), Some(&Value::Bool(true)));
    assert_eq!(moto.versions(SECRET).len(), 3);
}
