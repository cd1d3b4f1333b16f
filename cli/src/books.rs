//! `ripcord runbook` and `ripcord drills`: checks and plans offline, and
//! what they ask the coordinator (the plan's fleet and verdict, the drills
//! it schedules, run-now, history); and [`Start`], a run as the operator
//! gave it.

use super::*;
use ripcord_proto::v1::{DrillHistoryRequest, ListDrillsRequest, RunDrillNowRequest};

#[derive(Subcommand)]
pub(crate) enum RunbookCmd {
    /// Check runbook files: every problem with FILE:LINE:COL.
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Show the plan: stages of parallel steps, budgets, the critical path
    /// against the RTO. With a reachable coordinator, also the agents each
    /// agent step would use.
    Plan {
        /// Built-in runbook id or a YAML file.
        runbook: String,
        #[arg(long = "param", short = 'p', value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Do not ask the coordinator about agents.
        #[arg(long)]
        offline: bool,
        /// Plan a drill: the coordinator says whether it would start, or
        /// which step would touch which protected resource.
        #[arg(long)]
        drill: bool,
        /// The environment the run would be in (its param defaults and, for
        /// a drill, its guard); asks the coordinator.
        #[arg(long = "env", conflicts_with = "offline")]
        environment: Option<String>,
    },
    /// The built-in runbooks.
    List,
}

#[derive(Subcommand)]
pub(crate) enum DrillsCmd {
    /// Check drills files: every problem with FILE:LINE:COL.
    Check {
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Each drill's next occurrences, in its time zone and in UTC.
    Next {
        /// A drills file (e.g. deploy/drills.yaml).
        file: String,
        /// How many occurrences of each drill.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// The drills the coordinator schedules, each with its next occurrence.
    List,
    /// Start a drill now, outside its schedule (its environment and guard as
    /// for a scheduled one); prints the run id.
    RunNow {
        /// The drill's name.
        name: String,
    },
    /// Past drills: RTO achieved against the target, the trend over the
    /// quarters, missed and refused occurrences.
    History {
        /// Only this drill.
        name: Option<String>,
    },
}

pub(crate) fn drills(conn: &ConnArgs, cmd: DrillsCmd) -> Result<ExitCode, Failure> {
    match cmd {
        DrillsCmd::List => remote(conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let r = c.list_drills(ListDrillsRequest {}).await.map_err(|e| client::explain(&e))?.into_inner();
            println!("drills file: {}", r.drills_file);
            print!("{}", ripcord_cli::drills::render_list(&r.drills));
            Ok(ExitCode::SUCCESS)
        }),
        DrillsCmd::RunNow { name } => remote(conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let r = c.run_drill_now(RunDrillNowRequest { name }).await.map_err(|e| client::explain(&e))?;
            println!("{}", r.into_inner().run_id);
            Ok(ExitCode::SUCCESS)
        }),
        DrillsCmd::History { name } => remote(conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let req = DrillHistoryRequest { name: name.unwrap_or_default() };
            let r = c.drill_history(req).await.map_err(|e| client::explain(&e))?.into_inner();
            print!("{}", ripcord_cli::drills::render_history(&r.occurrences));
            Ok(ExitCode::SUCCESS)
        }),
        DrillsCmd::Check { files } => {
            let mut bad = 0;
            for f in &files {
                match ripcord_cli::drills::check(f) {
                    Ok(d) => println!("{f}: ok ({})", ripcord_cli::drills::summary(&d)),
                    Err(errors) => {
                        bad += 1;
                        for e in errors {
                            eprintln!("{e}");
                        }
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        DrillsCmd::Next { file, count } => {
            let d = ripcord_cli::drills::check(&file).map_err(|e| usage(anyhow::anyhow!("{}", e.join("\n"))))?;
            print!("{}", ripcord_cli::drills::render_next(&d, now_ms(), count));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn runbook(conn: &ConnArgs, cmd: RunbookCmd) -> Result<ExitCode, Failure> {
    match cmd {
        RunbookCmd::List => {
            let mut rows = Vec::new();
            for (id, text) in ripcord_engine::builtin::BUILTIN {
                if let Ok(rb) = ripcord_engine::check::check(text) {
                    let plan = ripcord_engine::plan::plan(&rb);
                    rows.push(vec![id.to_string(), rb.steps.len().to_string(), plan.summary(), rb.title.clone()]);
                }
            }
            print!("{}", output::table(&["RUNBOOK", "STEPS", "PLAN", "TITLE"], &rows));
            Ok(ExitCode::SUCCESS)
        }
        RunbookCmd::Check { files } => {
            let mut bad = 0;
            for f in &files {
                let checked = rbk::resolve(f).map_err(|e| vec![e.to_string()]).and_then(|src| rbk::check(&src));
                match checked {
                    Ok(rb) => {
                        println!("{f}: ok ({} steps, {})", rb.steps.len(), ripcord_engine::plan::plan(&rb).summary())
                    }
                    Err(errors) => {
                        bad += 1;
                        for e in errors {
                            eprintln!("{e}");
                        }
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        RunbookCmd::Plan { runbook, params, offline, drill, environment } => {
            let source = rbk::resolve(&runbook).map_err(usage)?;
            if drill || environment.is_some() {
                let start = Start { source, params, incident_at: None, drill, environment };
                return plan_verdict(conn, start);
            }
            let rb = rbk::check(&source).map_err(|errors| usage(anyhow::anyhow!("{}", errors.join("\n"))))?;
            // Parameters are checked exactly as a run would check them.
            let new = ripcord_engine::run::NewRun {
                id: "plan".into(),
                mode: ripcord_engine::run::Mode::Drill,
                params: params.into_iter().map(|(k, v)| (k, ripcord_engine::value::Value::Str(v))).collect(),
                incident_at: None,
            };
            let params_ok = ripcord_engine::run::start(&rb, new, now_ms());
            let plan = ripcord_engine::plan::plan(&rb);
            let run_params = params_ok.as_ref().ok().map(|t| &t.state.params);
            let coord = if offline { None } else { coordinator_for_plan(conn, &rb, run_params) };
            // Credentials each step names, from the params a run would have.
            let needed: Vec<(String, String)> = match &params_ok {
                Ok(t) => ripcord_engine::run::credentials_needed(&rb, &t.state.params),
                Err(_) => vec![],
            };
            let notes = |id: &str| coord.as_ref().and_then(|c| c.step_notes(&rb, &needed, id));
            print!("{}", rbk::render_plan(&rb, &plan, run_params, &notes));
            match &coord {
                None => println!(
                    "(agents, integrations and credentials not checked: {})",
                    if offline { "--offline" } else { "coordinator not reachable or not configured" }
                ),
                Some(c) => {
                    if let Some(line) = c.credentials_line(&needed) {
                        println!("{line}");
                    }
                }
            }
            let missing = coord.as_ref().map(|c| c.missing(&needed)).unwrap_or_default();
            match params_ok {
                Err(e) => Err(usage(anyhow::anyhow!("a run with these params would be refused: {}", e.0))),
                Ok(_) if !missing.is_empty() => Err(usage(anyhow::anyhow!(
                    "a run with these params would be refused: the coordinator holds no credentials named {}",
                    missing.join(", ")
                ))),
                Ok(_) => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// What the coordinator can tell a plan: its fleet, credentials and config
/// sections; `None` when it cannot be reached.
fn coordinator_for_plan(
    conn: &ConnArgs,
    rb: &ripcord_engine::runbook::Runbook,
    params: Option<&std::collections::BTreeMap<String, ripcord_engine::value::Value>>,
) -> Option<plan::Coordinator> {
    let result = remote(conn, |s| async move {
        let mut c = client::connect(&s).await?;
        let health = c.health(HealthRequest {}).await.map_err(|e| client::explain(&e))?.into_inner();
        let agents =
            c.list_agents(ListAgentsRequest { selector: String::new() }).await.map_err(|e| client::explain(&e))?;
        Ok(plan::Coordinator::new(rb, params, &agents.into_inner().agents, health.credentials, health.integrations))
    });
    result.ok()
}

/// A run to start, as the operator gave it.
pub(crate) struct Start {
    pub(crate) source: rbk::Source,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) incident_at: Option<String>,
    pub(crate) drill: bool,
    pub(crate) environment: Option<String>,
}

impl Start {
    pub(crate) fn request(&self, check_only: bool) -> StartRunRequest {
        StartRunRequest {
            runbook: self.source.name.clone(),
            runbook_text: if self.source.builtin { String::new() } else { self.source.text.clone() },
            params: self.params.iter().cloned().collect(),
            incident_at: self.incident_at.clone().unwrap_or_default(),
            drill: self.drill,
            environment: self.environment.clone().unwrap_or_default(),
            check_only,
        }
    }
}

/// `runbook plan --drill` or `--env`: the plan, and the coordinator's
/// verdict on such a start (the environment's params; for a drill, which
/// step would touch which protected resource), from the very check a start
/// makes.
fn plan_verdict(conn: &ConnArgs, start: Start) -> Result<ExitCode, Failure> {
    let rb = rbk::check(&start.source).map_err(|errors| usage(anyhow::anyhow!("{}", errors.join("\n"))))?;
    print!("{}", rbk::render_plan(&rb, &ripcord_engine::plan::plan(&rb), None, &|_| None));
    let what = match (&start.environment, start.drill) {
        (Some(env), true) => format!("a drill in environment {env}"),
        (Some(env), false) => format!("a recovery in environment {env}"),
        (None, _) => "a drill".to_string(),
    };
    remote(conn, |s| async move {
        let mut c = client::connect(&s).await?;
        match c.start_run(start.request(true)).await {
            Ok(_) => {
                println!("{what} would start: its params check, and nothing it would touch is protected");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(anyhow::anyhow!("{what} would be refused: {}", e.message()).into()),
        }
    })
}
