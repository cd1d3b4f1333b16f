//! `aws.update_secret`: merges keys into a JSON secret in AWS Secrets Manager.
//!
//! The playbook's method B switches the application to a new database by
//! rewriting `mongo_uri` in `chat-app/database`. This module reads the
//! secret's current value (a JSON object), sets the given keys, keeps every
//! other key, and writes the result as a new version. The version that was
//! current before is reported (`previous_version_id`) so a later step or a
//! `ripcord` command can put it back with [`Secrets::restore_previous`].
//!
//! Idempotency: the new version's `ClientRequestToken` (which becomes its
//! version id) is derived from the run and step of the idempotency key, so a
//! repeat of the step — after a coordinator restart, or a retry after a
//! timeout that hid a success — finds its own version instead of writing a
//! second one (which would also make "previous" point at our own value).
//!
//! The client exists only when the coordinator config has an `[aws]`
//! section: building it runs the AWS chain, which may ask the
//! instance-metadata service. Credentials come from that chain
//! (environment, profile, web identity, ECS, instance metadata), or are
//! given explicitly ([`Secrets::with_static_credentials`]); the region is the
//! configured one when set, else the chain's; the endpoint can be set for
//! tests or VPC endpoints. The IAM permissions needed on the secret are
//! `secretsmanager:DescribeSecret`, `GetSecretValue` and `PutSecretValue`
//! (and `kms:Decrypt`/`kms:GenerateDataKey` for a customer-managed key).
//!
//! Secret values never leave this module: not in outputs (version ids and
//! key names only), not in logs, not in error messages (which are scrubbed
//! of every value seen, as a second line of defence).

use super::Outcome;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use ripcord_engine::actions::AwsUpdateSecret;
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use serde::Deserialize;
use serde_json::{Map as JMap, Value as J};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use tracing::{info, warn};

/// The staging label of a secret's current version.
const CURRENT: &str = "AWSCURRENT";
/// The staging label Secrets Manager moves to the version replaced last.
const PREVIOUS: &str = "AWSPREVIOUS";

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The `[aws]` section of the coordinator configuration; without it no
/// client is built and aws.* steps fail. Every field is optional:
/// credentials always come from the AWS default chain
/// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web
/// identity, ECS or instance metadata), never from this file.
///
/// ```toml
/// [aws]
/// region = "ap-northeast-2"
/// # endpoint_url = "https://vpce-0123.secretsmanager.ap-northeast-2.vpce.amazonaws.com"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Secrets Manager endpoint, for a VPC endpoint or a test server
    /// (moto). Default: the region's public endpoint.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Region of the secrets. A step's `region:` argument overrides it.
    /// Default: the AWS chain (`AWS_REGION`, the profile, instance
    /// metadata), else "us-east-1".
    #[serde(default)]
    pub region: Option<String>,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What can go wrong. Messages name secrets and versions, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("aws: secret {0} not found")]
    NotFound(String),
    #[error("aws: version {version} of secret {secret} not found")]
    VersionNotFound { secret: String, version: String },
    #[error("aws: secret {0} does not hold a JSON object ({1}); aws.update_secret only merges keys into JSON secrets")]
    NotJson(String, &'static str),
    #[error(
        "aws: the credentials were refused for {op} on secret {secret} ({code}): check the coordinator's AWS \
         credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or its role) and that they may \
         DescribeSecret, GetSecretValue and PutSecretValue on it"
    )]
    Credentials { op: &'static str, secret: String, code: String },
    #[error(
        "aws: no usable credentials for {op} on secret {secret}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         AWS_PROFILE, or give the coordinator a role ({detail})"
    )]
    NoCredentials { op: &'static str, secret: String, detail: String },
    #[error(
        "aws: secret {secret} was changed after this step wrote version {ours} (now {current} is current); not overwriting: look at the secret's versions"
    )]
    ChangedSince { secret: String, ours: String, current: String },
    #[error("aws: {op} on secret {secret} failed: {detail}")]
    Aws { op: &'static str, secret: String, detail: String },
    #[error("aws.update_secret: bad arguments: {0}")]
    BadArgs(String),
}

/// The result of [`Secrets::restore_previous`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The version that is current now.
    pub version_id: String,
    /// The version whose value was put back.
    pub restored_from: String,
    /// The version that was current before the restore.
    pub replaced_version_id: String,
    /// True when the current value already was the old one: nothing written.
    pub unchanged: bool,
}

/// The result of an update, before it becomes outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    pub version_id: String,
    pub previous_version_id: String,
    /// Names of the keys whose value changed (or that were added).
    pub keys_changed: Vec<String>,
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// A Secrets Manager client and the `aws.*` actions. Cheap to clone.
#[derive(Clone)]
pub struct Secrets {
    sdk: aws_config::SdkConfig,
    client: Client,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("region", &self.sdk.region().map(|r| r.as_ref().to_string()))
            .field("endpoint_url", &self.sdk.endpoint_url())
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Builds the client with the default credential chain. The rustls
    /// crypto provider must be installed first
    /// (`ripcord_pki::tls::install_crypto_provider`). Nothing is called yet:
    /// missing credentials show when an action runs.
    pub async fn new(config: &SecretsConfig) -> Self {
        Self::build(config, None).await
    }

    /// Like [`Secrets::new`] with fixed credentials instead of the chain
    /// (tests, and setups that hand keys to ripcord another way).
    pub async fn with_static_credentials(config: &SecretsConfig, access_key_id: &str, secret_access_key: &str) -> Self {
        let creds = Credentials::new(access_key_id, secret_access_key, None, None, "ripcord-static");
        Self::build(config, Some(SharedCredentialsProvider::new(creds))).await
    }

    /// Like [`Secrets::new`] with credentials from `provider` instead of
    /// the chain.
    pub async fn with_credentials_provider(
        config: &SecretsConfig,
        provider: impl ProvideCredentials + 'static,
    ) -> Self {
        Self::build(config, Some(SharedCredentialsProvider::new(provider))).await
    }

    async fn build(config: &SecretsConfig, creds: Option<SharedCredentialsProvider>) -> Self {
        // default-features are off in the AWS crates: the HTTP client is
        // built here, on rustls with ring like the rest of ripcord.
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http).timeout_config(timeouts);
        // Without a region here the loader asks the default chain, with
        // the HTTP client above for instance metadata.
        if let Some(r) = &config.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.trim_end_matches('/'));
        }
        if let Some(c) = creds {
            loader = loader.credentials_provider(c);
        }
        let mut sdk = loader.load().await;
        if sdk.region().is_none() {
            sdk = sdk.into_builder().region(Region::from_static("us-east-1")).build();
        }
        let client = Client::new(&sdk);
        Self { sdk, client }
    }

    /// The region calls go to by default.
    pub fn region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.as_ref().to_string())
    }

    fn client_for(&self, region: Option<&str>) -> Client {
        match region {
            Some(r) if Some(r) != self.sdk.region().map(|x| x.as_ref()) => {
                let conf =
                    aws_sdk_secretsmanager::config::Builder::from(&self.sdk).region(Region::new(r.to_string())).build();
                Client::from_conf(conf)
            }
            _ => self.client.clone(),
        }
    }

    /// Performs an `aws.*` action.
    pub async fn perform(&self, action: &str, args: &Value, key: &Key) -> Outcome {
        match action {
            "aws.update_secret" => {
                let a: AwsUpdateSecret = match parse(args) {
                    Ok(a) => a,
                    Err(e) => return Outcome::Failed(e.to_string()),
                };
                let mut seen: Vec<String> = a.set.values().cloned().collect();
                match self.update_secret(&a, key, &mut seen).await {
                    Ok(u) => {
                        let mut out = BTreeMap::new();
                        out.insert("version_id".to_string(), Value::str(u.version_id));
                        out.insert("previous_version_id".to_string(), Value::str(u.previous_version_id));
                        out.insert(
                            "keys_changed".to_string(),
                            Value::List(u.keys_changed.into_iter().map(Value::Str).collect()),
                        );
                        Outcome::Succeeded(out)
                    }
                    Err(e) => {
                        let msg = scrub(e.to_string(), &seen);
                        warn!(key = %key, action, secret = %a.secret_id, error = %msg, "aws action failed");
                        Outcome::Failed(msg)
                    }
                }
            }
            "aws.restore_secret" => {
                let (Some(secret_id), Some(version_id)) =
                    (args.get("secret_id").and_then(Value::as_str), args.get("version_id").and_then(Value::as_str))
                else {
                    return Outcome::Failed("aws.restore_secret needs secret_id and version_id".into());
                };
                let region = args.get("region").and_then(Value::as_str);
                match self.restore_previous_in(secret_id, version_id, region).await {
                    Ok(r) => {
                        let mut out = BTreeMap::new();
                        out.insert("version_id".to_string(), Value::str(r.version_id));
                        out.insert("restored_from".to_string(), Value::str(r.restored_from));
                        out.insert("replaced_version_id".to_string(), Value::str(r.replaced_version_id));
                        out.insert("unchanged".to_string(), Value::Bool(r.unchanged));
                        Outcome::Succeeded(out)
                    }
                    Err(e) => {
                        warn!(key = %key, action, secret = %secret_id, error = %e, "aws action failed");
                        Outcome::Failed(e.to_string())
                    }
                }
            }
            other => Outcome::Failed(format!("unknown action {other}")),
        }
    }

    /// Merges `a.set` into the secret's JSON object as a new version.
    /// `seen` collects every secret value read, for scrubbing messages.
    async fn update_secret(&self, a: &AwsUpdateSecret, key: &Key, seen: &mut Vec<String>) -> Result<Updated, Error> {
        let id = a.secret_id.as_str();
        if id.is_empty() {
            return Err(Error::BadArgs("secret_id is empty".into()));
        }
        if a.set.is_empty() {
            return Err(Error::BadArgs("set names no keys".into()));
        }
        let client = self.client_for(a.region.as_deref());
        let token = request_token(id, key);
        let stages = version_stages(&client, id).await?;

        // A repeat of this step: our version exists already.
        if let Some(labels) = stages.get(&token) {
            let current = stage_holder(&stages, CURRENT).unwrap_or_default();
            if !labels.iter().any(|l| l == CURRENT) {
                return Err(Error::ChangedSince { secret: id.into(), ours: token, current });
            }
            let previous = stage_holder(&stages, PREVIOUS).unwrap_or_default();
            let mut keys_changed: Vec<String> = a.set.keys().cloned().collect();
            if !previous.is_empty() {
                let (_, old) = get_value(&client, id, Some(&previous), None).await?;
                seen.push(old.clone());
                if let Ok(J::Object(old)) = serde_json::from_str::<J>(&old) {
                    seen.extend(leaf_strings(&old));
                    keys_changed.retain(|k| old.get(k).and_then(J::as_str) != a.set.get(k).map(String::as_str));
                }
            }
            info!(key = %key, secret = %id, version = %token, previous = %previous,
                "aws.update_secret: this step's version is already current");
            return Ok(Updated { version_id: token, previous_version_id: previous, keys_changed });
        }

        let (current_id, text) = get_value(&client, id, None, Some(CURRENT)).await?;
        seen.push(text.clone());
        let mut object = match serde_json::from_str::<J>(&text) {
            Ok(J::Object(m)) => m,
            Ok(other) => return Err(Error::NotJson(id.into(), json_kind(&other))),
            Err(_) => return Err(Error::NotJson(id.into(), "not JSON")),
        };
        seen.extend(leaf_strings(&object));
        let keys_changed = merge(&mut object, &a.set);
        if keys_changed.is_empty() {
            info!(key = %key, secret = %id, version = %current_id, "aws.update_secret: every key already has its value");
            return Ok(Updated { version_id: current_id.clone(), previous_version_id: current_id, keys_changed });
        }
        let body = serde_json::to_string(&J::Object(object)).map_err(|e| Error::BadArgs(e.to_string()))?;
        let put = client
            .put_secret_value()
            .secret_id(id)
            .secret_string(body)
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| sdk_error("PutSecretValue", id, e))?;
        let version_id = put.version_id().unwrap_or(&token).to_string();
        info!(key = %key, secret = %id, version = %version_id, previous = %current_id, keys = ?keys_changed,
            "aws.update_secret: new version written");
        Ok(Updated { version_id, previous_version_id: current_id, keys_changed })
    }

    /// Puts back the value of version `version_id` of `secret_id` (in the
    /// default region) as a new current version. Idempotent: when the
    /// current value already is that value, nothing is written.
    pub async fn restore_previous(&self, secret_id: &str, version_id: &str) -> Result<Restored, Error> {
        self.restore_previous_in(secret_id, version_id, None).await
    }

    /// [`Secrets::restore_previous`] in another region.
    pub async fn restore_previous_in(
        &self,
        secret_id: &str,
        version_id: &str,
        region: Option<&str>,
    ) -> Result<Restored, Error> {
        let mut seen = Vec::new();
        let r = self.restore(secret_id, version_id, region, &mut seen).await;
        r.map_err(|e| match e {
            Error::Aws { op, secret, detail } => Error::Aws { op, secret, detail: scrub(detail, &seen) },
            other => other,
        })
    }

    async fn restore(
        &self,
        id: &str,
        version_id: &str,
        region: Option<&str>,
        seen: &mut Vec<String>,
    ) -> Result<Restored, Error> {
        if version_id.is_empty() {
            return Err(Error::BadArgs("no version id to restore".into()));
        }
        let client = self.client_for(region);
        let (_, old) = get_value(&client, id, Some(version_id), None).await?;
        seen.push(old.clone());
        let (current_id, current) = get_value(&client, id, None, Some(CURRENT)).await?;
        seen.push(current.clone());
        if current == old {
            info!(secret = %id, version = %current_id, from = %version_id, "secret already holds the restored value");
            return Ok(Restored {
                version_id: current_id.clone(),
                restored_from: version_id.into(),
                replaced_version_id: current_id,
                unchanged: true,
            });
        }
        // Same restore of the same current version: same token.
        let token = format!(
            "ripcord-{}",
            super::atlas::md5_hex(format!("restore\n{id}\n{version_id}\n{current_id}").as_bytes())
        );
        let put = client
            .put_secret_value()
            .secret_id(id)
            .secret_string(old)
            .client_request_token(&token)
            .send()
            .await
            .map_err(|e| sdk_error("PutSecretValue", id, e))?;
        let new_id = put.version_id().unwrap_or(&token).to_string();
        info!(secret = %id, version = %new_id, from = %version_id, replaced = %current_id, "secret restored");
        Ok(Restored {
            version_id: new_id,
            restored_from: version_id.into(),
            replaced_version_id: current_id,
            unchanged: false,
        })
    }
}

/// What a read of a secret tells without its value (readiness checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readable {
    /// The version labelled AWSCURRENT.
    pub current_version: String,
    /// Whether that version holds a JSON object, what `aws.update_secret`
    /// merges keys into.
    pub json_object: bool,
}

impl Secrets {
    /// Reads secret `secret_id` as `aws.update_secret` would before writing
    /// (DescribeSecret, then GetSecretValue of AWSCURRENT) and changes
    /// nothing. The value is dropped at once: only its shape is kept.
    pub async fn check_readable(&self, secret_id: &str, region: Option<&str>) -> Result<Readable, Error> {
        if secret_id.is_empty() {
            return Err(Error::BadArgs("secret_id is empty".into()));
        }
        let client = self.client_for(region);
        let stages = version_stages(&client, secret_id).await?;
        let labelled = stage_holder(&stages, CURRENT).unwrap_or_default();
        let (version, json_object) = match get_value(&client, secret_id, None, Some(CURRENT)).await {
            Ok((version, text)) => (version, matches!(serde_json::from_str::<J>(&text), Ok(J::Object(_)))),
            Err(Error::NotJson(..)) => (String::new(), false),
            Err(e) => return Err(e),
        };
        let current_version = if version.is_empty() { labelled } else { version };
        Ok(Readable { current_version, json_object })
    }
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

/// Version id → staging labels.
async fn version_stages(client: &Client, id: &str) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let d = client.describe_secret().secret_id(id).send().await.map_err(|e| sdk_error("DescribeSecret", id, e))?;
    Ok(d.version_ids_to_stages().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
}

fn stage_holder(stages: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
    stages.iter().find(|(_, l)| l.iter().any(|x| x == label)).map(|(v, _)| v.clone())
}

/// (version id, string value) of a version, by id or by stage.
async fn get_value(
    client: &Client,
    id: &str,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<(String, String), Error> {
    let mut req = client.get_secret_value().secret_id(id);
    if let Some(v) = version_id {
        req = req.version_id(v);
    }
    if let Some(s) = stage {
        req = req.version_stage(s);
    }
    let out = req.send().await.map_err(|e| match sdk_error("GetSecretValue", id, e) {
        Error::NotFound(s) if version_id.is_some() => {
            Error::VersionNotFound { secret: s, version: version_id.unwrap_or_default().into() }
        }
        other => other,
    })?;
    let vid = out.version_id().unwrap_or_default().to_string();
    match out.secret_string() {
        Some(s) => Ok((vid, s.to_string())),
        None => Err(Error::NotJson(id.into(), "a binary secret")),
    }
}

/// Maps an SDK error to a message without request or response bodies.
fn sdk_error<E>(op: &'static str, secret: &str, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let secret = secret.to_string();
    let status = e.raw_response().map(|r| r.status().as_u16());
    let mut code = e.code().unwrap_or_default().to_string();
    if code.is_empty()
        && let Some(s) = status
    {
        // An answer the SDK could not read (a proxy, a stand-in server).
        code = format!("HTTP {s}");
    }
    match code.as_str() {
        "ResourceNotFoundException" => return Error::NotFound(secret),
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "HTTP 401"
        | "HTTP 403" => return Error::Credentials { op, secret, code },
        _ => {}
    }
    let detail = match &e {
        SdkError::ServiceError(_) => {
            let msg = e.message().unwrap_or_default();
            if msg.is_empty() { code.clone() } else { format!("{code}: {msg}") }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) | SdkError::ResponseError(_) => {
            let text = DisplayErrorContext(&e).to_string();
            if loading_credentials_failed(&e) {
                return Error::NoCredentials { op, secret, detail: first_line(&text) };
            }
            first_line(&text)
        }
        _ => first_line(&DisplayErrorContext(&e).to_string()),
    };
    Error::Aws { op, secret, detail }
}

/// Whether the credential chain is what failed: a `CredentialsError`
/// somewhere in the error's sources.
fn loading_credentials_failed(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The first line of an SDK error chain, without the `Debug` dump the
/// SDK appends in parentheses, at most 300 characters.
fn first_line(s: &str) -> String {
    let mut l = s.lines().next().unwrap_or_default();
    if let Some(i) =
        l.match_indices(" (").find(|(i, _)| l[i + 2..].starts_with(|c: char| c.is_ascii_uppercase())).map(|(i, _)| i)
    {
        l = &l[..i];
    }
    l.chars().take(300).collect()
}

// ---------------------------------------------------------------------------
// Pure parts
// ---------------------------------------------------------------------------

fn parse(args: &Value) -> Result<AwsUpdateSecret, Error> {
    // serde's messages quote unexpected values, which may be secret: a
    // value that is not a string is refused by shape first.
    if let Some(Value::Map(set)) = args.get("set")
        && set.values().any(|v| !matches!(v, Value::Str(_)))
    {
        return Err(Error::BadArgs("set must map key names to strings".into()));
    }
    let v = serde_json::to_value(args).map_err(|e| Error::BadArgs(e.to_string()))?;
    serde_json::from_value(v).map_err(|e| Error::BadArgs(e.to_string()))
}

/// The version id of this step's update: 32–64 characters as Secrets
/// Manager wants, the same for every attempt of the step (a retry after a
/// timeout must find the version an earlier attempt wrote).
pub fn request_token(secret_id: &str, key: &Key) -> String {
    let h = super::atlas::md5_hex(format!("aws.update_secret\n{secret_id}\n{}\n{}", key.run, key.step).as_bytes());
    format!("ripcord-{h}")
}

/// Sets every key of `set` in `object`; returns the names whose value changed.
pub fn merge(object: &mut JMap<String, J>, set: &BTreeMap<String, String>) -> Vec<String> {
    let mut changed = Vec::new();
    for (k, v) in set {
        if object.get(k).and_then(J::as_str) != Some(v.as_str()) {
            object.insert(k.clone(), J::String(v.clone()));
            changed.push(k.clone());
        }
    }
    changed
}

fn json_kind(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "an array",
        J::Object(_) => "an object",
    }
}

/// Every string and number in a JSON object, for scrubbing.
fn leaf_strings(m: &JMap<String, J>) -> Vec<String> {
    fn walk(v: &J, out: &mut Vec<String>) {
        match v {
            J::String(s) => out.push(s.clone()),
            J::Number(n) => out.push(n.to_string()),
            J::Array(a) => a.iter().for_each(|x| walk(x, out)),
            J::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    m.values().for_each(|v| walk(v, &mut out));
    out
}

/// Replaces every value of `secrets` (4 characters or more) with "••••".
pub fn scrub(mut s: String, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|x| x.len() >= 4).collect();
    secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
    for secret in secrets {
        s = s.replace(secret.as_str(), "••••");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(run: &str, step: &str, attempt: u32) -> Key {
        Key { run: run.into(), step: step.into(), attempt }
    }

    #[test]
    fn tokens_are_stable_per_step_and_fit_secrets_manager() {
        let a = request_token("chat-app/database", &key("r1", "switch-secret", 1));
        assert_eq!(a, request_token("chat-app/database", &key("r1", "switch-secret", 3)), "same for every attempt");
        assert_ne!(a, request_token("chat-app/database", &key("r2", "switch-secret", 1)));
        assert_ne!(a, request_token("chat-app/other", &key("r1", "switch-secret", 1)));
        assert!((32..=64).contains(&a.len()), "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{a}");
    }

    #[test]
    fn merge_keeps_other_keys_and_reports_changed_names() {
        let mut o = json!({"mongo_uri": "old", "other": "keep", "n": 3}).as_object().cloned().unwrap();
        let set = BTreeMap::from([("mongo_uri".to_string(), "new".to_string()), ("other".into(), "keep".into())]);
        assert_eq!(merge(&mut o, &set), vec!["mongo_uri".to_string()]);
        assert_eq!(J::Object(o), json!({"mongo_uri": "new", "other": "keep", "n": 3}));
        let mut e = JMap::new();
        assert_eq!(merge(&mut e, &set), vec!["mongo_uri".to_string(), "other".to_string()]);
    }

    #[test]
    fn scrub_hides_values_longest_first() {
        let s = scrub(
            "a mongodb://u:pw1234@h and pw1234 and abc".into(),
            &["pw1234".into(), "mongodb://u:pw1234@h".into(), "abc".into()],
        );
        assert_eq!(s, "a •••• and •••• and abc");
    }

    #[test]
    fn bad_set_values_are_not_echoed() {
        let v: Value = serde_json::from_value(json!({"secret_id": "s", "set": {"k": ["hunter2"]}})).unwrap();
        let e = parse(&v).unwrap_err().to_string();
        assert!(!e.contains("hunter2") && e.contains("set must map key names to strings"), "{e}");
    }

    #[test]
    fn config_is_optional_and_strict() {
        let c: SecretsConfig = toml::from_str("").unwrap();
        assert_eq!(c, SecretsConfig::default());
        let c: SecretsConfig = toml::from_str("region = \"eu-west-1\"\nendpoint_url = \"http://x\"\n").unwrap();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert!(toml::from_str::<SecretsConfig>("access_key = \"x\"\n").is_err());
    }

    #[allow(dead_code)]
    fn perform_is_send(s: &Secrets, v: &Value, k: &Key) {
        fn send<T: Send>(_: T) {}
        send(s.perform("aws.update_secret", v, k));
        send(s.restore_previous("a", "b"));
    }
}
