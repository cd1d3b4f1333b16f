//! `ripcord-coordinator --config FILE`: parse arguments, read the config,
//! start logging, run until SIGINT or SIGTERM.

use clap::Parser;
use ripcord_coordinator::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// ripcord's coordinator daemon.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, env = "RIPCORD_COORDINATOR_CONFIG")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    ripcord_pki::tls::install_crypto_provider();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ripcord-coordinator: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ripcord-coordinator: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ripcord_coordinator::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // One line, through the log (which goes to stderr).
        Err(e) => {
            tracing::error!("ripcord-coordinator: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RIPCORD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
