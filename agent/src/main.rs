//! `ripcord-agent --config FILE`.

use clap::Parser;
use ripcord_agent::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// ripcord's host agent: dials out to the coordinator and performs the
/// actions its local allowlist names.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, env = "RIPCORD_AGENT_CONFIG")]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIPCORD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    ripcord_pki::tls::install_crypto_provider();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ripcord-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if let Ok(info) = ripcord_pki::tls::own_certificate(&config.tls, ripcord_engine::Role::Agent) {
        if let Some(w) = ripcord_pki::tls::validity_warning(&info) {
            tracing::warn!(cert = %config.tls.cert.display(), "{w}");
        }
        if info.identity.name != config.id {
            tracing::warn!(id = %config.id, certificate = %info.identity.name,
                "config id differs from the certificate's name; the coordinator will refuse this agent");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ripcord-agent: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ripcord_agent::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ripcord-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
