//! The credential and integration checks: Atlas authentication (one cheap
//! authenticated read per project), each Secrets Manager secret readable,
//! each Kubernetes Deployment there, and each MongoDB login. Every one is
//! a read; none prints a key, password, secret value or connection string.

use super::{DeploymentNeed, Deps, LoginNeed, SecretNeed, check};
use crate::credentials::Credentials;
use crate::integrations::Outcome;
use crate::integrations::atlas::{Atlas, Error as AtlasError};
use crate::integrations::kube::Kube;
use crate::integrations::mongo::{hosts_of, scrub_uri};
use crate::integrations::secrets::{self, Secrets};
use mongodb::bson::doc;
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use ripcord_engine::readiness::{Check, Status};
use ripcord_engine::run::Key;
use ripcord_engine::value::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a Kubernetes read or a MongoDB login may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// `atlas project P: authentication`.
pub fn atlas_auth_subject(project: &str) -> String {
    format!("atlas project {project}: authentication")
}

/// Atlas authenticates the coordinator and lets it read project
/// `project`; the flag says whether the project's clusters can be asked.
pub async fn atlas_auth(atlas: Option<&Atlas>, project: &str) -> (Check, bool) {
    let subject = atlas_auth_subject(project);
    let limit = "an authenticated read of the project";
    let Some(atlas) = atlas else {
        let c = check(
            subject,
            Status::Warn,
            "not checked: the coordinator config has no [atlas] section",
            limit,
            "add an [atlas] section with [atlas.auth] (a service account or an API key) to the coordinator config",
        );
        return (c, false);
    };
    match atlas.project(project).await {
        Ok(p) => {
            let name = if p.name.is_empty() { String::new() } else { format!(" ({})", p.name) };
            (check(subject, Status::Ok, format!("{} reads project {project}{name}", atlas.who()), limit, ""), true)
        }
        Err(AtlasError::Credentials { status, hint }) => (
            check(
                subject,
                Status::Fail,
                format!("Atlas authentication failed (HTTP {status})"),
                limit,
                atlas.scrub(super::atlas::auth_fix(&hint)),
            ),
            false,
        ),
        Err(e) => {
            let not_found = matches!(&e, AtlasError::Api { status: 404, .. });
            let fix = if not_found {
                format!("check the runbook's project id: Atlas has no project {project} for {}", atlas.who())
            } else {
                "check that the coordinator reaches Atlas ([atlas] base_url), then run readiness again".to_string()
            };
            (check(subject, Status::Fail, atlas.scrub(e.to_string()), limit, fix), false)
        }
    }
}

/// `aws secret ID` (with ` in REGION` when a step names a region).
pub fn secret_subject(need: &SecretNeed) -> String {
    match &need.region {
        Some(r) => format!("aws secret {} in {r}", need.id),
        None => format!("aws secret {}", need.id),
    }
}

/// The secret exists and the coordinator may read it; its value is a JSON
/// object (what `aws.update_secret` merges keys into). The value is never
/// kept.
pub async fn secret(secrets: Option<&Secrets>, need: &SecretNeed) -> Check {
    let subject = secret_subject(need);
    let limit = "readable, a JSON object";
    let Some(s) = secrets else {
        return check(
            subject,
            Status::Warn,
            "not checked: the coordinator config has no [aws] section",
            limit,
            "add an [aws] section (region; credentials come from the AWS chain) to the coordinator config",
        );
    };
    let id = &need.id;
    let grant = format!(
        "give the coordinator's AWS identity secretsmanager:DescribeSecret, GetSecretValue and PutSecretValue on {id} \
         (and kms:Decrypt for a customer-managed key)"
    );
    match s.check_readable(id, need.region.as_deref()).await {
        Ok(r) if r.json_object => {
            check(subject, Status::Ok, format!("readable, version {}", r.current_version), limit, "")
        }
        Ok(_) => check(
            subject,
            Status::Fail,
            "readable, but its value is not a JSON object",
            limit,
            format!("store {id} as a JSON object (like {{\"mongo_uri\": \"…\"}}): the runbook sets keys in it"),
        ),
        Err(secrets::Error::NotFound(_)) => check(
            subject,
            Status::Fail,
            format!("missing secret {id}"),
            limit,
            format!(
                "create secret {id} in {} (a JSON object), or give the runbook's secret_id param the right name",
                need.region.clone().or_else(|| s.region()).unwrap_or_else(|| "the coordinator's region".into())
            ),
        ),
        Err(secrets::Error::Credentials { op, code, .. }) => {
            check(subject, Status::Fail, format!("AWS refused the credentials for {op} on {id} ({code})"), limit, grant)
        }
        Err(secrets::Error::NoCredentials { op, detail, .. }) => check(
            subject,
            Status::Fail,
            format!("no usable AWS credentials for {op} on {id} ({detail})"),
            limit,
            format!(
                "give the coordinator AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a \
                 role), then {grant}"
            ),
        ),
        Err(e) => check(
            subject,
            Status::Fail,
            e.to_string(),
            limit,
            "check the [aws] section (region, endpoint_url) and that the coordinator reaches Secrets Manager",
        ),
    }
}

/// `k8s deployment NS/NAME`.
pub fn deployment_subject(namespace: &str, name: &str) -> String {
    format!("k8s deployment {namespace}/{name}")
}

/// The Kubernetes API answers and the Deployment exists (read through
/// `k8s.pods_ready` with no minimum: a GET of the deployment and a list of
/// its pods).
pub async fn deployment(kube: Option<&Kube>, need: &DeploymentNeed) -> Check {
    let limit = "the API answers and the Deployment exists";
    let Some(kube) = kube else {
        let ns = need.namespace.as_deref().unwrap_or("(the [kube] namespace)");
        return check(
            deployment_subject(ns, &need.name),
            Status::Warn,
            "not checked: the coordinator config has no [kube] section",
            limit,
            "add a [kube] section (kubeconfig, context, namespace) to the coordinator config",
        );
    };
    let ns = need.namespace.clone().unwrap_or_else(|| kube.namespace().to_string());
    let subject = deployment_subject(&ns, &need.name);
    let mut args = BTreeMap::new();
    args.insert("namespace".to_string(), Value::str(ns.clone()));
    args.insert("deployment".to_string(), Value::str(need.name.clone()));
    args.insert("min_ready".to_string(), Value::Int(0));
    let key = Key { run: "readiness".into(), step: subject.clone(), attempt: 1 };
    match kube.perform("k8s.pods_ready", &Value::Map(args), &key, Some(TIMEOUT)).await {
        Outcome::Succeeded(out) => {
            let n = |k: &str| out.get(k).and_then(|v| if let Value::Int(i) = v { Some(*i) } else { None }).unwrap_or(0);
            check(subject, Status::Ok, format!("found; {} of {} pods ready", n("ready"), n("total")), limit, "")
        }
        // The kube module's sentence for a 404 of the deployment.
        Outcome::Failed(msg) if msg.contains(&format!("deployment {ns}/{} not found", need.name)) => check(
            subject,
            Status::Fail,
            format!("missing Deployment {ns}/{}", need.name),
            limit,
            format!(
                "create Deployment {ns}/{} or give the runbook's namespace and deployment params the right names",
                need.name
            ),
        ),
        Outcome::Failed(msg) => check(
            subject,
            Status::Fail,
            msg,
            limit,
            format!(
                "check that the coordinator reaches the Kubernetes API with the [kube] kubeconfig or context, and \
                 that its user may get deployments and list pods in {ns}"
            ),
        ),
    }
}

/// `mongo login NAME on P/C`, `mongo login on P/C` (no credential), or
/// `mongo login on HOSTS` (a connection string from the params).
pub fn login_subject(need: &LoginNeed) -> String {
    match need {
        LoginNeed::Atlas { project, cluster, credential: Some(name), .. } => {
            format!("mongo login {name} on {project}/{cluster}")
        }
        LoginNeed::Atlas { project, cluster, credential: None, .. } => format!("mongo login on {project}/{cluster}"),
        LoginNeed::Uri { uri, .. } => format!("mongo login on {}", hosts_of(uri)),
    }
}

/// The login of a cluster whose project's Atlas calls are refused: its
/// connection string cannot be read.
pub fn login_not_checked(need: &LoginNeed) -> Check {
    let project = match need {
        LoginNeed::Atlas { project, .. } => project.as_str(),
        LoginNeed::Uri { .. } => "",
    };
    check(
        login_subject(need),
        Status::Warn,
        "not checked: Atlas refused or failed the project's calls, so the connection string is unknown",
        "connect and ping with the credential the coordinator holds",
        format!("fix the check \"{}\" first", atlas_auth_subject(project)),
    )
}

/// The coordinator's credential logs in to MongoDB: connect and ping.
pub async fn login(deps: &Deps<'_>, need: &LoginNeed) -> Check {
    let subject = login_subject(need);
    let limit = "connect and ping with the credential the coordinator holds";
    if deps.mongo.is_none() {
        return check(
            subject,
            Status::Warn,
            "not checked: the coordinator runs no mongo.* integration",
            limit,
            "run readiness on a coordinator with its mongo.* integration",
        );
    }
    let empty = Credentials::default();
    let credentials = deps.credentials.unwrap_or(&empty);
    let (uri, name, fix_login) = match need {
        LoginNeed::Atlas { project, cluster, credential, .. } => {
            let Some(atlas) = deps.atlas else {
                return check(
                    subject,
                    Status::Warn,
                    "not checked: the coordinator config has no [atlas] section to read the connection string from",
                    limit,
                    "add an [atlas] section with [atlas.auth] to the coordinator config",
                );
            };
            if let Some(name) = credential
                && credentials.db(name).is_err()
            {
                return check(
                    subject,
                    Status::Fail,
                    format!("the coordinator holds no database credential {name} (with a user)"),
                    limit,
                    format!("add [credentials.{name}] with user and password_file to the coordinator config"),
                );
            }
            let uri = match atlas.connection_uri(project, cluster, credential.as_deref(), credentials).await {
                Ok(u) => u,
                Err(e) => {
                    let (measured, fix) = super::atlas::read_failure(atlas, &e);
                    return check(subject, Status::Fail, measured, limit, fix);
                }
            };
            let fix = match credential {
                Some(name) => format!(
                    "check [credentials.{name}] in the coordinator config: its user and password_file must be a \
                     database user of project {project} (Atlas: Database Access)"
                ),
                None => "name a database credential in the runbook's db_credentials param".to_string(),
            };
            (uri.expose().to_string(), credential.clone(), fix)
        }
        LoginNeed::Uri { uri, .. } => match credentials.expand(&Value::str(uri.clone())) {
            Ok(Value::Str(u)) => {
                (u, None, "check the user and password in the connection string the params give".to_string())
            }
            Ok(_) | Err(_) => {
                let names = crate::credentials::referenced(&Value::str(uri.clone()));
                return check(
                    subject,
                    Status::Fail,
                    format!(
                        "the coordinator does not hold the credentials the connection string names ({})",
                        names.join(", ")
                    ),
                    limit,
                    "add the [credentials.NAME] sections it names to the coordinator config",
                );
            }
        },
    };
    let hosts = hosts_of(&uri);
    let scrub = |msg: String| {
        let mut msg = scrub_uri(msg, &uri);
        msg = credentials.conceal_str(&msg);
        msg
    };
    match ping(&uri).await {
        Ok(()) => {
            let who = name.map(|n| format!(" as {n}")).unwrap_or_default();
            check(subject, Status::Ok, format!("logged in{who} and pinged {hosts}"), limit, "")
        }
        Err(Ping::Login(msg)) => check(
            subject,
            Status::Fail,
            scrub(format!("MongoDB refused the login at {hosts}: {msg}")),
            limit,
            fix_login,
        ),
        Err(Ping::Other(msg)) => check(
            subject,
            Status::Fail,
            scrub(format!("cannot reach MongoDB at {hosts}: {msg}")),
            limit,
            "check that the coordinator reaches the cluster (Atlas: Network Access → IP Access List) and that it \
             is running",
        ),
    }
}

/// Why a ping failed.
enum Ping {
    /// The server refused the credentials.
    Login(String),
    Other(String),
}

/// Connects with `uri` and pings; messages are not yet scrubbed.
async fn ping(uri: &str) -> Result<(), Ping> {
    let mut opts = ClientOptions::parse(uri).await.map_err(|e| Ping::Other(describe(&e)))?;
    opts.server_selection_timeout.get_or_insert(TIMEOUT / 2);
    opts.connect_timeout.get_or_insert(TIMEOUT / 2);
    opts.app_name.get_or_insert_with(|| "ripcord-readiness".into());
    let client = mongodb::Client::with_options(opts).map_err(|e| Ping::Other(describe(&e)))?;
    let answer = client.database("admin").run_command(doc! { "ping": 1 }).await;
    client.shutdown().await;
    answer.map(|_| ()).map_err(|e| {
        let login = match &*e.kind {
            ErrorKind::Authentication { .. } => true,
            // AuthenticationFailed, Unauthorized
            ErrorKind::Command(c) => c.code == 18 || c.code == 13,
            _ => false,
        };
        if login { Ping::Login(describe(&e)) } else { Ping::Other(describe(&e)) }
    })
}

/// A driver error in a sentence.
fn describe(e: &mongodb::error::Error) -> String {
    match &*e.kind {
        ErrorKind::Command(c) => format!("{} ({}): {}", c.code_name, c.code, c.message),
        ErrorKind::Authentication { message, .. } => format!("authentication failed: {message}"),
        ErrorKind::ServerSelection { message, .. } => format!("no server answered in time: {message}"),
        kind => kind.to_string(),
    }
}
