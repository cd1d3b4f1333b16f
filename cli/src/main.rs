//! `ripcord`: the operator's CLI.
//!
//! Exit codes: 0 success; 1 the operation failed or was refused (including a
//! ping that did not reach every agent); 2 bad usage or configuration.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ripcord_cli::{client, output, settings};
use ripcord_engine::{Role, Selector};
use ripcord_pki::issue::{Request, Validity};
use ripcord_proto::v1::{HealthRequest, ListAgentsRequest, PingAgentsRequest};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("\"{s}\" is not an RFC 3339 time (e.g. 2026-01-31T09:00:00Z): {e}"))
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
    }
}

/// Resolves settings, then runs `f` on a runtime.
fn remote<F, Fut>(conn: &ConnArgs, f: F) -> Result<ExitCode, Failure>
where
    F: FnOnce(settings::Settings) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, Failure>>,
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

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn status(s: settings::Settings) -> Result<ExitCode, Failure> {
    let mut c = client::connect(&s).await?;
    let h = c.health(HealthRequest {}).await.map_err(|e| client::explain(&e))?.into_inner();
    println!("coordinator {} at {}", h.coordinator_version, s.coordinator);
    println!("you are {} ({})", h.caller_identity, h.caller_role);
    println!("{} agents connected", h.connected_agents);
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
