//! The coordinator's side of scheduled drills: reading and checking the
//! drills file before anything binds, the [`Launcher`] that starts a drill
//! through the driver (its environment's params, the protection guard, the
//! exact run id), and the [`Tell`] that posts owner notices to the
//! environment's webhook.

use crate::driver::{self, Environments, Runs, StartRequest};
use crate::integrations::BoxFuture;
use crate::integrations::http::Http;
use crate::scheduler::{LaunchError, Launcher, OwnerNotice, Tell, TellError};
use ripcord_engine::environment::{self, Guard};
use ripcord_engine::run::{self, Actor, Mode, NewRun};
use ripcord_engine::value::Value;
use ripcord_schedule::{Drill, Drills, RunbookRef};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The param a drill's environment gives its owners' webhook in.
pub const WEBHOOK_PARAM: &str = "webhook";

/// A drills file, read and checked, with the text of each drill's runbook.
pub struct Loaded {
    pub drills: Drills,
    /// Drill name → (source, runbook text).
    pub runbooks: HashMap<String, (String, String)>,
}

/// Reads `path` and checks every drill against the config: its runbook
/// checks, its environment is declared, its params (with the
/// environment's) start the runbook, and it names nothing protected. Every
/// problem is `FILE:LINE:COL: message`.
pub fn load(path: &Path, environments: &Environments, now: i64) -> Result<Loaded, Error> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let drills = ripcord_schedule::load(&text)
        .map_err(|d| Error::Problems(d.iter().map(|d| format!("{shown}:{d}")).collect()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut runbooks = HashMap::new();
    for d in &drills.drills {
        let at = format!("{shown}:{}", d.pos);
        let (source, text) = match &d.runbook {
            RunbookRef::Builtin(id) => match ripcord_engine::builtin::get(id) {
                Some(t) => (format!("builtin:{id}"), t.to_string()),
                None => {
                    errors.push(format!("{at}: drill {}: no built-in runbook {id}", d.name));
                    continue;
                }
            },
            RunbookRef::File { path: rb, pos } => match std::fs::read_to_string(dir.join(rb)) {
                Ok(t) => (rb.clone(), t),
                Err(e) => {
                    errors.push(format!("{shown}:{pos}: cannot read runbook {}: {e}", dir.join(rb).display()));
                    continue;
                }
            },
        };
        if let Err(problem) = check_drill(d, &text, environments, now) {
            errors.push(format!("{at}: drill {}: {problem}", d.name));
            continue;
        }
        runbooks.insert(d.name.clone(), (source, text));
    }
    if errors.is_empty() { Ok(Loaded { drills, runbooks }) } else { Err(Error::Problems(errors)) }
}

/// A drills file the coordinator cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read drills file {}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    /// Every problem, each as `FILE:LINE:COL: message`.
    #[error("{}", .0.join("\n"))]
    Problems(Vec<String>),
}

/// What can be known of a drill before the fleet is: its runbook checks,
/// its environment exists, its params fit, and it names nothing protected.
fn check_drill(d: &Drill, text: &str, environments: &Environments, now: i64) -> Result<(), String> {
    let rb = ripcord_engine::check::check(text).map_err(|p| {
        format!("its runbook does not check: {}", p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    })?;
    let env = environments.get(&d.environment).map_err(|e| e.to_string())?;
    let params = env.fill(&rb, d.params.clone());
    let new = NewRun { id: "check".into(), mode: Mode::Drill, params, incident_at: None };
    let t = run::start(&rb, new, now).map_err(|e| e.0)?;
    let guard = Guard {
        environments: &environments.list,
        own: Some(env),
        agents: &[],
        default_namespace: environments.default_namespace.as_deref(),
    };
    let refusals = environment::refusals(&rb, &t.state.params, &guard);
    if !refusals.is_empty() {
        let lines: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        return Err(format!("it would touch what a drill may not: {}", lines.join("; ")));
    }
    Ok(())
}

/// Starts drills through the driver.
pub struct DriverLauncher {
    pub runs: Runs,
    /// Drill name → (source, runbook text), from [`load`].
    pub runbooks: HashMap<String, (String, String)>,
}

impl Launcher for DriverLauncher {
    fn launch(&self, drill: &Drill, run_id: &str, by: &str) -> BoxFuture<Result<(), LaunchError>> {
        let Some((source, text)) = self.runbooks.get(&drill.name).cloned() else {
            let reason = format!("drill {} has no runbook loaded", drill.name);
            return Box::pin(async move { Err(LaunchError::Refused(reason)) });
        };
        let role = if by == crate::scheduler::ACTOR { "scheduler" } else { "operator" };
        let req = StartRequest {
            id: Some(run_id.to_string()),
            source,
            text,
            params: drill.params.clone(),
            incident_at: None,
            mode: Mode::Drill,
            by: Actor { name: by.to_string(), role: role.to_string() },
            environment: Some(drill.environment.clone()),
            parent: None,
        };
        let runs = self.runs.clone();
        Box::pin(async move {
            match runs.start(req).await {
                Ok(_) => Ok(()),
                Err(driver::Error::Exists(_)) => Err(LaunchError::Exists),
                Err(
                    e @ (driver::Error::Invalid(_)
                    | driver::Error::Refused(_)
                    | driver::Error::Rejected(_)
                    | driver::Error::NotFound(_)),
                ) => Err(LaunchError::Refused(e.to_string())),
                Err(e @ (driver::Error::Store(_) | driver::Error::Commit(_) | driver::Error::Stopped)) => {
                    Err(LaunchError::Unavailable(e.to_string()))
                }
            }
        })
    }
}

/// Tells owners through their drill environment's webhook (the
/// environment's `webhook` param, usually a `secret_params` file).
pub struct WebhookTell {
    pub environments: Arc<Environments>,
    pub http: Http,
}

impl Tell for WebhookTell {
    fn tell(&self, notice: &OwnerNotice) -> BoxFuture<Result<(), TellError>> {
        let url = self
            .environments
            .get(&notice.environment)
            .ok()
            .and_then(|e| e.params.get(WEBHOOK_PARAM))
            .and_then(Value::as_str)
            .map(str::to_string);
        let (http, key, text) = (self.http.clone(), notice.key.clone(), notice.text.clone());
        let environment = notice.environment.clone();
        Box::pin(async move {
            let Some(url) = url else {
                // Nowhere to send it: the log is the channel of last resort.
                tracing::warn!(%environment, key = %key, "no webhook for drill owners: {text}");
                return Ok(());
            };
            http.post_text(&url, &key, &text, None).await.map(|_| ()).map_err(TellError::from)
        })
    }
}
