//! ripcord's coordinator: holds the fleet and (soon) every run in sled, and
//! serves agents and operators over one mTLS gRPC listener.
//!
//! [`run`] assembles everything, so that the binary and the tests run the
//! same code. See `ARCHITECTURE.md` for the map.

pub mod config;
pub mod contacts;
pub mod credentials;
pub mod drills;
pub mod driver;
pub mod environments;
pub mod escalation;
pub mod fleet;
pub mod grpc;
pub mod integrations;
pub mod notices;
pub mod readiness;
pub mod reports;
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
    /// The drill scheduler's store failed: stop, like a failed driver commit.
    #[error("the drill scheduler stopped: {0}; restart the coordinator")]
    Scheduler(#[source] scheduler::Error),
    #[error(transparent)]
    Environment(#[from] environments::Error),
    #[error(transparent)]
    Drills(#[from] drills::Error),
    /// The drill scheduler's task ended although nothing asked it to.
    #[error("the drill scheduler ended; restart the coordinator")]
    SchedulerEnded,
    #[error(transparent)]
    Credentials(#[from] credentials::Error),
    /// A `[contacts.NAME]` section that cannot be used.
    #[error(transparent)]
    Contacts(#[from] contacts::Error),
    /// An `[escalation]` policy that cannot be used.
    #[error(transparent)]
    Escalation(#[from] escalation::Error),
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
    let roster = Arc::new(contacts::Roster::load(&config.contacts)?);
    let escalation = Arc::new(escalation::Escalation::load(config.escalation.as_ref(), &roster)?);
    let environments = Arc::new(driver::Environments {
        list: environments::load_all(&config.environments)?,
        default_namespace: config.kube.as_ref().map(|k| k.namespace.clone()),
    });
    let drills = match &config.drills {
        Some(path) => Some(drills::load(path, &environments, ripcord_pki::clock::now_ms())?),
        None => None,
    };
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
        agents = fleet.list(&Default::default()).len(), contacts = roster.len(), "coordinator listening");

    let credential_names: Vec<String> = credentials.names().map(str::to_string).collect();
    let pagerduty = escalation.pagerduty_url().map(integrations::pagerduty::PagerDuty::new).unwrap_or_default();
    let mut actions = integrations::Actions::new(Arc::clone(&fleet))
        .with_credentials(credentials)
        .with_notices(notices::Notices::new(Arc::clone(&roster), pagerduty));
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
    let subruns = actions.subruns();
    let performer = Arc::new(actions);
    let (driver, runs) = driver::Driver::new(store.clone(), performer, Arc::new(ripcord_pki::clock::now_ms));
    subruns.bind(runs.clone());
    let reports = reports::Reports::new(config.data_dir.join("reports"), store.clone(), Default::default());
    let reports_task = tokio::spawn(reports.serve(runs.clone()));
    let driver = driver.with_environments(Arc::clone(&environments)).with_escalation(escalation);
    let mut driver_task = tokio::spawn(driver.run());
    let scheduler = drills.map(|loaded| {
        info!(drills = loaded.drills.drills.len(), "drill scheduler running");
        let launcher = Arc::new(drills::DriverLauncher { runs: runs.clone(), runbooks: loaded.runbooks });
        let tell = Arc::new(drills::WebhookTell { environments: Arc::clone(&environments), http: Default::default() });
        scheduler::Scheduler::new(loaded.drills, store.clone(), launcher, tell, Arc::new(ripcord_pki::clock::now_ms))
    });
    let mut service = grpc::service::Service::new(
        Arc::clone(&fleet),
        runs,
        grpc::service::Settings {
            heartbeat_interval: config.heartbeat_interval,
            ping_timeout: config.ping_timeout,
            credentials: credential_names,
            integrations: configured,
            drills_file: config.drills.clone(),
        },
    )
    .with_contacts(Arc::clone(&roster));
    let mut scheduler_task = match scheduler {
        Some(s) => {
            service = service.with_drills(s.handle());
            tokio::spawn(s.run(std::future::pending()))
        }
        None => tokio::spawn(std::future::pending()),
    };
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
        stopped = &mut scheduler_task => {
            checkpoints.abort();
            fleet.close_all();
            return Err(match stopped {
                Ok(Err(e)) => Error::Scheduler(e),
                Ok(Ok(())) => Error::SchedulerEnded,
                Err(e) => Error::DriverPanicked(format!("drill scheduler: {e}")),
            });
        }
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
    reports_task.abort();
    scheduler_task.abort();
    driver_task.abort();
    fleet.checkpoint();
    fleet.flush();
    info!("coordinator stopped");
    Ok(())
}
