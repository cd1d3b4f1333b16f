//! ripcord's coordinator: holds the fleet and (soon) every run in sled, and
//! serves agents and operators over one mTLS gRPC listener.
//!
//! [`run`] assembles everything, so that the binary and the tests run the
//! same code. See `ARCHITECTURE.md` for the map.

pub mod config;
pub mod credentials;
pub mod driver;
pub mod fleet;
pub mod grpc;
pub mod integrations;
pub mod scheduler;
pub mod store;
pub mod view;

use config::Config;
use fleet::Fleet;
use ripcord_engine::Role;
use std::future::Future;
use std::sync::Arc;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pki(#[from] ripcord_pki::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot write address file {path}: {source}")]
    AddressFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("atlas: {0}")]
    Atlas(#[from] integrations::atlas::Error),
    #[error("kubernetes: {0}")]
    Kube(#[from] integrations::kube::Error),
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    /// The run driver stopped (a commit failed): the coordinator stops too,
    /// so that its supervisor restarts it and the runs resume.
    #[error("the run driver stopped: {0}; restart the coordinator to resume the runs from what was committed")]
    Driver(#[source] driver::Error),
    #[error("the run driver panicked: {0}")]
    DriverPanicked(String),
}

/// Runs the coordinator until `shutdown` resolves, or until its run driver
/// stops (an error then).
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let data_dir = config.data_dir.clone();
    run_with_store(config, move || store::Store::open(&data_dir), shutdown).await
}

/// [`run`] with the store from `open_store`, called once the config has
/// been checked (tests pass one that fails on purpose).
pub async fn run_with_store(
    config: Config,
    open_store: impl FnOnce() -> Result<store::Store, store::Error>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let own = ripcord_pki::tls::own_certificate(&config.tls, Role::Coordinator)?;
    if let Some(w) = ripcord_pki::tls::validity_warning(&own) {
        warn!(cert = %config.tls.cert.display(), "{w}");
    }
    let tls = ripcord_pki::tls::ServerTls::load(&config.tls)?;
    let credentials = credentials::Credentials::load(&config.credentials)?;
    let store = open_store()?;
    let fleet = Arc::new(Fleet::load(store.clone(), config.max_concurrent_commands)?);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen { addr: config.listen, source })?;
    let local = listener.local_addr().map_err(|source| Error::Listen { addr: config.listen, source })?;
    if let Some(path) = &config.address_file {
        ripcord_pki::files::write_atomic(path, local.to_string().as_bytes(), 0o644).map_err(|e| match e {
            ripcord_pki::Error::Write { path, source } => Error::AddressFile { path, source },
            other => Error::Pki(other),
        })?;
    }
    info!(address = %local, identity = %own.identity.name, data_dir = %config.data_dir.display(),
        agents = fleet.list(&Default::default()).len(), "coordinator listening");

    let credential_names: Vec<String> = credentials.names().map(str::to_string).collect();
    let mut actions = integrations::Actions::new(Arc::clone(&fleet)).with_credentials(credentials);
    // Only with an [aws] section: building the client runs the AWS chain,
    // which may ask the instance-metadata service.
    if let Some(aws) = &config.aws {
        let secrets = integrations::secrets::Secrets::new(aws).await;
        info!(region = secrets.region().as_deref().unwrap_or_default(), "aws client built");
        actions = actions.with_secrets(secrets);
    }
    if let Some(atlas) = &config.atlas {
        actions = actions.with_atlas(integrations::atlas::Atlas::new(atlas)?);
    }
    if let Some(kube) = &config.kube {
        actions = actions.with_kube(integrations::kube::Kube::new(kube).await?);
    }
    let configured = actions.configured();
    let performer = Arc::new(actions);
    let (driver, runs) = driver::Driver::new(store.clone(), performer, Arc::new(ripcord_pki::clock::now_ms));
    let mut driver_task = tokio::spawn(driver.run());
    let service = grpc::service::Service::new(
        Arc::clone(&fleet),
        runs,
        grpc::service::Settings {
            heartbeat_interval: config.heartbeat_interval,
            ping_timeout: config.ping_timeout,
            credentials: credential_names,
            integrations: configured,
        },
    );
    let incoming = grpc::tls::incoming(listener, Arc::clone(&tls.config), config.handshake_timeout);

    let checkpointing = Arc::clone(&fleet);
    let checkpoints = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            every.tick().await;
            checkpointing.checkpoint();
        }
    });

    // Agent streams never end by themselves: on shutdown, close them first so
    // the server can drain.
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let closing = Arc::clone(&fleet);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down");
        closing.close_all();
        let _ = drained_tx.send(());
    });
    let (agents, control) = service.into_servers();
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(config.heartbeat_interval * 2))
        .http2_keepalive_timeout(Some(config.heartbeat_interval * 2))
        .layer(grpc::auth::AuthnLayer::new(tls))
        .add_service(agents)
        .add_service(control)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = drained_rx.await;
        });
    // The driver never ends while the server holds its handle: if it does,
    // runs can no longer move, and answering UNAVAILABLE forever helps no
    // one. Stop, and let systemd or Kubernetes start a fresh process.
    tokio::select! {
        served = server => served?,
        stopped = &mut driver_task => {
            checkpoints.abort();
            fleet.close_all();
            return Err(match stopped {
                Ok(Err(e)) => Error::Driver(e),
                Ok(Ok(())) => Error::Driver(driver::Error::Stopped),
                Err(e) => Error::DriverPanicked(e.to_string()),
            });
        }
    }
    checkpoints.abort();
    driver_task.abort();
    fleet.checkpoint();
    fleet.flush();
    info!("coordinator stopped");
    Ok(())
}
