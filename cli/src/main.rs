//! `ripcord`: the operator's CLI.
//!
//! Exit codes: 0 success; 1 the operation failed or was refused (including a
//! ping that did not reach every agent); 2 bad usage or configuration.

mod books;
mod contacts;
mod readiness;
mod report;

use anyhow::Context;
use books::{DrillsCmd, RunbookCmd, Start};
use clap::{Args, Parser, Subcommand};
use ripcord_cli::runbook as rbk;
use ripcord_cli::runview;
use ripcord_cli::{client, output, plan, settings};
use ripcord_engine::model::RunView;
use ripcord_engine::run::RunStatus;
use ripcord_engine::{Role, Selector};
use ripcord_pki::clock::now_ms;
use ripcord_pki::issue::{Request, Validity};
use ripcord_proto::v1::{
    AbortRunRequest, AckRunRequest, ApproveStepRequest, GetRunRequest, HealthRequest, ListAgentsRequest,
    ListRunsRequest, PingAgentsRequest, RetryRunRequest, StartRunRequest,
};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "ripcord", version, about = "ripcord: run the disaster-recovery playbook")]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the coordinator (flags, then environment, then the config file).
#[derive(Args)]
struct ConnArgs {
    /// Coordinator URL, e.g. https://coordinator.internal:7443.
    #[arg(long, global = true, env = "RIPCORD_COORDINATOR")]
    coordinator: Option<String>,
    /// The ripcord CA certificate.
    #[arg(long, global = true, env = "RIPCORD_CA")]
    ca: Option<PathBuf>,
    /// Your certificate (operator or viewer).
    #[arg(long, global = true, env = "RIPCORD_CERT")]
    cert: Option<PathBuf>,
    /// Your private key.
    #[arg(long, global = true, env = "RIPCORD_KEY")]
    key: Option<PathBuf>,
    /// Name expected in the coordinator's certificate, if not the URL's host.
    #[arg(long, global = true, env = "RIPCORD_SERVER_NAME")]
    server_name: Option<String>,
    /// Config file [default: ~/.config/ripcord/config.toml].
    #[arg(long, global = true, env = "RIPCORD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a CA and issue certificates.
    #[command(subcommand)]
    Certs(CertsCmd),
    /// List the fleet, or ping agents.
    Agents(AgentsArgs),
    /// Check the coordinator answers, and who it thinks you are.
    Status,
    /// Check and plan runbooks (offline).
    #[command(subcommand)]
    Runbook(RunbookCmd),
    /// Drill schedules: check a drills.yaml and see what comes next
    /// (offline), or ask the coordinator what it schedules, run one now, and
    /// see their history.
    #[command(subcommand)]
    Drills(DrillsCmd),
    /// Start a run of a runbook (a built-in id or a file); prints the run id.
    Run {
        /// Built-in runbook id (see `ripcord runbook list`) or a YAML file.
        runbook: String,
        /// A parameter, KEY=VALUE (repeatable).
        #[arg(long = "param", short = 'p', value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// When the incident began (RFC 3339); the RTO clock and times like
        /// incident-5m count from it. Default: now.
        #[arg(long)]
        incident_at: Option<String>,
        /// A rehearsal, not a real recovery.
        #[arg(long)]
        drill: bool,
        /// The environment it runs in ([environments.NAME] in the
        /// coordinator's config): its param defaults apply, and a drill may
        /// touch only what it holds and nothing of a protected one.
        #[arg(long = "env")]
        environment: Option<String>,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        json: bool,
    },
    /// A run's steps, timeline and event log.
    Show {
        /// Run id or a unique prefix.
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// A run's report: the incident report of a recovery, the rehearsal
    /// report of a drill.
    Report {
        /// Run id or a unique prefix.
        run: String,
        /// md, html (one self-contained file) or json.
        #[arg(long, default_value = "md")]
        format: ripcord_report::Format,
        /// Write it to FILE (atomically) instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Follow a run live until it ends (exit 0 if it succeeded).
    Watch {
        run: String,
        /// How often to refresh.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Approve a waiting approval step, or confirm a checklist item.
    Approve {
        run: String,
        step: String,
        #[arg(long, default_value = "")]
        note: String,
        /// The checklist item to confirm (1-based).
        #[arg(long)]
        item: Option<u32>,
    },
    /// Abort a run: nothing new starts; what is in flight is not undone.
    Abort {
        run: String,
        #[arg(long)]
        reason: String,
    },
    /// Acknowledge a running run: you are on it, so its later escalation
    /// tiers are not sent (notices about steps still are).
    Ack {
        run: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Resume a failed run from its failed step(s); what succeeded is not re-run.
    Retry { run: String, step: Option<String> },
    /// The coordinator's roster: people (roles, phone, Slack) and vendors
    /// (instructions), with their channels but never the channels' secrets.
    Contacts {
        #[arg(long)]
        json: bool,
    },
    /// Whether each runbook could do its job right now: every built-in
    /// runbook passes check, each agent step's target matches connected
    /// agents allowing its action. Exit code 1 if any check fails.
    Readiness {
        #[arg(long)]
        json: bool,
        /// Only this built-in runbook.
        #[arg(long)]
        runbook: Option<String>,
    },
}

#[derive(Subcommand)]
enum CertsCmd {
    /// Create a new CA in DIR (ca.crt, ca.key).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Common name of the CA.
        #[arg(long, default_value = "ripcord CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace an existing CA (every certificate it issued stops working).
        #[arg(long)]
        force: bool,
    },
    /// Issue a key and certificate signed by the CA in DIR (NAME.crt, NAME.key).
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// coordinator, agent, operator or viewer.
        #[arg(long)]
        role: Role,
        /// The identity: an agent's id, a person's name.
        #[arg(long)]
        name: String,
        /// Extra DNS names or IP addresses (coordinator: the names clients dial;
        /// default localhost, 127.0.0.1, ::1).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Validity in days from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Start of validity (RFC 3339), instead of now.
        #[arg(long, value_parser = parse_time)]
        not_before: Option<time::OffsetDateTime>,
        /// End of validity (RFC 3339), instead of --days.
        #[arg(long, value_parser = parse_time)]
        not_after: Option<time::OffsetDateTime>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Show the identity, role and validity of a certificate file.
    Show { file: PathBuf },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AgentsArgs {
    #[command(subcommand)]
    command: Option<AgentsCmd>,
    /// Only agents whose labels match, e.g. role=redis,env=prod.
    #[arg(long)]
    selector: Option<Selector>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AgentsCmd {
    /// Send a no-op to agents through the coordinator and show each round trip.
    Ping {
        /// One agent id (or use --selector).
        #[arg(conflicts_with = "selector", required_unless_present = "selector")]
        agent: Option<String>,
        #[arg(long)]
        selector: Option<Selector>,
        /// How long to wait for each agent.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        timeout: Duration,
        #[arg(long)]
        json: bool,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("\"{s}\" is not KEY=VALUE")),
    }
}

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    ripcord_engine::clock::parse_rfc3339(s)
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .ok_or_else(|| format!("\"{s}\" is not an RFC 3339 time (e.g. 2026-01-31T09:00:00Z)"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ripcord_engine::duration::parse(s).map_err(|e| e.to_string())
}

/// An error with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: 1, error: e.into() }
    }
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure { code: 2, error: e.into() }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ripcord_pki::tls::install_crypto_provider();
    match run(cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("ripcord: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Certs(cmd) => certs(cmd),
        Command::Agents(args) => remote(&cli.conn, |s| agents(s, args)),
        Command::Status => remote(&cli.conn, status),
        Command::Runbook(cmd) => books::runbook(&cli.conn, cmd),
        Command::Drills(cmd) => books::drills(&cli.conn, cmd),
        Command::Run { runbook, params, incident_at, drill, environment } => {
            let source = rbk::resolve(&runbook).map_err(usage)?;
            if !source.builtin {
                // Refuse a broken file here, with positions, before asking anyone.
                if let Err(errors) = rbk::check(&source) {
                    return Err(usage(anyhow::anyhow!("{}", errors.join("\n"))));
                }
            }
            let start = Start { source, params, incident_at, drill, environment };
            remote(&cli.conn, |s| async move {
                let mut c = client::connect(&s).await?;
                let r = c.start_run(start.request(false)).await.map_err(|e| client::explain(&e))?.into_inner();
                println!("{}", r.run_id);
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Runs { json } => remote(&cli.conn, |s| list_runs(s, json)),
        Command::Contacts { json } => remote(&cli.conn, |s| contacts::contacts(s, json)),
        Command::Readiness { json, runbook } => remote(&cli.conn, |s| readiness::readiness(s, json, runbook)),
        Command::Show { run, json } => remote(&cli.conn, |s| show_run(s, run, json)),
        Command::Report { run, format, output } => remote(&cli.conn, |s| report::report(s, run, format, output)),
        Command::Watch { run, interval } => remote(&cli.conn, |s| watch_run(s, run, interval)),
        Command::Approve { run, step, note, item } => remote(&cli.conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let req = ApproveStepRequest { run_id: run, step: step.clone(), note, item: item.unwrap_or(0) };
            let r = c.approve_step(req).await.map_err(|e| client::explain(&e))?.into_inner();
            match item {
                Some(i) => println!("confirmed item {i} of {step} in run {}", r.run_id),
                None => println!("approved {step} in run {}", r.run_id),
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Abort { run, reason } => remote(&cli.conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let r = c.abort_run(AbortRunRequest { run_id: run, reason }).await.map_err(|e| client::explain(&e))?;
            println!("aborted run {}", r.into_inner().run_id);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Ack { run, note } => remote(&cli.conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let r = c.ack_run(AckRunRequest { run_id: run, note }).await.map_err(|e| client::explain(&e))?;
            println!("acknowledged run {}", r.into_inner().run_id);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Retry { run, step } => remote(&cli.conn, |s| async move {
            let mut c = client::connect(&s).await?;
            let req = RetryRunRequest { run_id: run, step: step.unwrap_or_default() };
            let r = c.retry_run(req).await.map_err(|e| client::explain(&e))?;
            println!("retrying run {}", r.into_inner().run_id);
            Ok(ExitCode::SUCCESS)
        }),
    }
}

async fn get_view(
    c: &mut ripcord_proto::v1::control_client::ControlClient<tonic::transport::Channel>,
    run: &str,
) -> Result<RunView, Failure> {
    let r = c.get_run(GetRunRequest { run_id: run.to_string() }).await.map_err(|e| client::explain(&e))?;
    Ok(serde_json::from_str(&r.into_inner().run_view_json)?)
}

async fn list_runs(s: settings::Settings, json: bool) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let runs = c.list_runs(ListRunsRequest {}).await.map_err(|e| client::explain(&e))?.into_inner().runs;
    if json {
        let v: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "run_id": r.run_id, "runbook_id": r.runbook_id, "mode": r.mode, "status": r.status,
                    "progress": r.progress, "started_by": r.started_by,
                    "created_at_unix_ms": r.created_at_unix_ms, "incident_at_unix_ms": r.incident_at_unix_ms,
                    "recovered_at_unix_ms": r.recovered_at_unix_ms, "finished_at_unix_ms": r.finished_at_unix_ms,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.runbook_id.clone(),
                r.mode.clone(),
                r.status.clone(),
                r.progress.clone(),
                output::ago(r.created_at_unix_ms, now),
                r.started_by.clone(),
            ]
        })
        .collect();
    print!("{}", output::table(&["RUN", "RUNBOOK", "MODE", "STATUS", "STEPS", "STARTED", "BY"], &rows));
    Ok(ExitCode::SUCCESS)
}

async fn show_run(s: settings::Settings, run: String, json: bool) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let v = get_view(&mut c, &run).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", runview::show(&v));
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch_run(s: settings::Settings, run: String, interval: Duration) -> Result<ExitCode, Failure> {
    use std::io::IsTerminal;
    let mut c = client::connect(&s).await?;
    let tty = std::io::stdout().is_terminal();
    let mut printed = 0usize;
    loop {
        let v = get_view(&mut c, &run).await?;
        let finished = v.status.is_finished();
        if tty {
            // Redraw: header, steps, the last events.
            let tail: String =
                v.events[v.events.len().saturating_sub(8)..].iter().map(|e| runview::event_line(e) + "\n").collect();
            print!("\x1b[2J\x1b[H{}\n{}\nlatest events:\n{tail}", runview::header(&v), runview::steps(&v));
        } else {
            // A log: each event once, then the steps at the end.
            for e in &v.events[printed.min(v.events.len())..] {
                println!("{}", runview::event_line(e));
            }
            printed = v.events.len();
            if finished {
                print!("\n{}\n{}", runview::header(&v), runview::steps(&v));
            }
        }
        if finished {
            return Ok(if v.status == RunStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        tokio::time::sleep(interval).await;
    }
}

/// Resolves settings, then runs `f` on a runtime.
fn remote<T, F, Fut>(conn: &ConnArgs, f: F) -> Result<T, Failure>
where
    F: FnOnce(settings::Settings) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let explicit = conn.config.is_some();
    let path = conn.config.clone().or_else(|| {
        settings::default_path(
            std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    });
    let file = match &path {
        Some(p) => settings::read_file(p, explicit).map_err(usage)?,
        None => settings::File::default(),
    };
    let given = settings::Given {
        coordinator: conn.coordinator.clone(),
        ca: conn.ca.clone(),
        cert: conn.cert.clone(),
        key: conn.key.clone(),
        server_name: conn.server_name.clone(),
    };
    let s = settings::resolve(given, file, path.as_deref()).map_err(usage)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start runtime")?;
    rt.block_on(f(s))
}

async fn status(s: settings::Settings) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let h = c.health(HealthRequest {}).await.map_err(|e| client::explain(&e))?.into_inner();
    println!("coordinator {} at {}", h.coordinator_version, s.coordinator);
    println!("you are {} ({})", h.caller_identity, h.caller_role);
    println!("{} agents connected", h.connected_agents);
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    println!("integrations: {}", list(&h.integrations));
    println!("credentials: {}", list(&h.credentials));
    Ok(ExitCode::SUCCESS)
}

async fn agents(s: settings::Settings, args: AgentsArgs) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    match args.command {
        None => {
            let selector = args.selector.map(|s| s.to_string()).unwrap_or_default();
            let resp = c.list_agents(ListAgentsRequest { selector }).await.map_err(|e| client::explain(&e))?;
            let agents = resp.into_inner().agents;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&output::agents_json(&agents))?);
            } else {
                print!("{}", output::agents_table(&agents, now_ms()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(AgentsCmd::Ping { agent, selector, timeout, json }) => {
            let req = PingAgentsRequest {
                agent_id: agent.unwrap_or_default(),
                selector: selector.map(|s| s.to_string()).unwrap_or_default(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            };
            let results = c.ping_agents(req).await.map_err(|e| client::explain(&e))?.into_inner().results;
            if json {
                println!("{}", serde_json::to_string_pretty(&output::ping_json(&results))?);
            } else {
                print!("{}", output::ping_table(&results));
            }
            let all_ok = !results.is_empty() && results.iter().all(|r| output::ping_status(r) == "ok");
            Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn certs(cmd: CertsCmd) -> Result<ExitCode, Failure> {
    match cmd {
        CertsCmd::Init { dir, name, days, force } => {
            let files = ripcord_pki::files::init(&dir, &name, Validity::days_from_now(days), force)?;
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        CertsCmd::Issue { dir, role, name, sans, days, not_before, not_after, force } => {
            let mut validity = Validity::days_from_now(days);
            if let Some(t) = not_before {
                validity.not_before = t;
                if not_after.is_none() {
                    validity.not_after = t + time::Duration::days(i64::from(days));
                }
            }
            if let Some(t) = not_after {
                validity.not_after = t;
            }
            let req = Request { name, role, sans, validity };
            let files = ripcord_pki::files::issue(&dir, &req, force).map_err(|e| match e {
                ripcord_pki::Error::Invalid(_) => usage(e),
                other => other.into(),
            })?;
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        CertsCmd::Show { file } => {
            let pem = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let info = ripcord_pki::inspect::from_pem(&pem).with_context(|| file.display().to_string())?;
            println!("identity:   {}", info.identity.name);
            println!("role:       {}", info.identity.role);
            println!("issuer:     {}", info.issuer_cn);
            println!("not before: {}", info.not_before);
            println!("not after:  {}", info.not_after);
            if !info.sans.is_empty() {
                println!("names:      {}", info.sans.join(", "));
            }
            if let Some(w) = ripcord_pki::tls::validity_warning(&info) {
                println!("warning:    {w}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
