//! The agent's one connection: dial out to the coordinator, say hello, keep
//! heartbeats flowing, answer commands, and when anything breaks, reconnect
//! with capped exponential backoff and jitter. The agent never listens.

use crate::config::Config;
use crate::handle;
use ripcord_proto::v1::{
    AgentMessage, CommandOutput, CoordinatorMessage, Goodbye, GoodbyeReason, Heartbeat, Hello, agent_message,
    agents_client::AgentsClient, coordinator_message,
};
use std::future::Future;
use std::pin::pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, error, info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pki(#[from] ripcord_pki::Error),
    #[error(transparent)]
    Journal(#[from] crate::journal::Error),
    #[error("bad coordinator address \"{url}\": {reason}")]
    Address { url: String, reason: String },
}

/// How a session ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The agent is shutting down.
    Shutdown,
    /// The connection failed or was closed; `established` tells whether the
    /// coordinator had welcomed us (then the backoff starts over).
    Lost { reason: String, established: bool, replaced: bool },
}

/// The delay before reconnect attempt `attempt` (0-based): `min · 2^attempt`,
/// capped at `max`, then scaled by `jitter` ∈ [0, 1] into its upper half so
/// that a fleet restarted together does not reconnect in lockstep.
pub fn backoff(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = min.saturating_mul(2u32.saturating_pow(attempt.min(30))).min(max);
    exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The wait before reconnecting: an agent that was replaced waits `max`
/// (another process holds its id), any other backs off from `attempt`.
fn retry_delay(replaced: bool, attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    if replaced { max } else { backoff(attempt, min, max, jitter) }
}

/// How a `Goodbye` ends the session: by its typed reason, never its text.
fn said_goodbye(g: &Goodbye) -> Ended {
    Ended::Lost {
        reason: format!("coordinator ended the session: {}", g.reason),
        established: true,
        replaced: g.kind() == GoodbyeReason::Replaced,
    }
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let endpoint = endpoint(&config)?;
    let journal = std::sync::Arc::new(crate::journal::Journal::open(&config.state_dir)?);
    let mut shutdown = pin!(shutdown);
    let mut attempt: u32 = 0;
    info!(agent = %config.id, coordinator = %config.coordinator, actions = ?config.allow.actions(), "agent starting");
    loop {
        let ended = tokio::select! {
            ended = session(&config, &endpoint, &journal) => ended,
            () = &mut shutdown => Ended::Shutdown,
        };
        let delay = match ended {
            Ended::Shutdown => {
                info!("agent stopped");
                return Ok(());
            }
            Ended::Lost { reason, established, replaced } => {
                if established {
                    attempt = 0;
                }
                if replaced {
                    error!(agent = %config.id, "{reason}: another agent is using this id; waiting before taking it back");
                }
                let delay = retry_delay(replaced, attempt, config.reconnect_min, config.reconnect_max, fastrand::f64());
                warn!(agent = %config.id, retry_in = ?delay, "{reason}");
                delay
            }
        };
        attempt = attempt.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => {
                info!("agent stopped");
                return Ok(());
            }
        }
    }
}

fn endpoint(config: &Config) -> Result<Endpoint, Error> {
    let bad = |reason: String| Error::Address { url: config.coordinator.clone(), reason };
    let tls = ripcord_pki::tls::client_config(&config.tls, config.server_name.as_deref())?;
    Ok(Channel::from_shared(config.coordinator.clone())
        .map_err(|e| bad(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10)))
}

async fn session(config: &Config, endpoint: &Endpoint, journal: &std::sync::Arc<crate::journal::Journal>) -> Ended {
    let lost = |reason: String| Ended::Lost { reason, established: false, replaced: false };
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return lost(format!("cannot connect: {}", ripcord_pki::tls::explain_transport_error(&e))),
    };
    let (tx, rx) = mpsc::channel::<AgentMessage>(256);
    let hello = Hello {
        agent_id: config.id.clone(),
        labels: config.labels.clone().into_iter().collect(),
        version: VERSION.to_string(),
        actions: config.allow.actions().to_vec(),
    };
    let _ = tx.send(AgentMessage { body: Some(agent_message::Body::Hello(hello)) }).await;
    let mut inbound = match AgentsClient::new(channel).session(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            let why = if status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown {
                match std::error::Error::source(&status) {
                    Some(src) => ripcord_pki::tls::explain_transport_error(src),
                    None => status.message().to_string(),
                }
            } else {
                status.message().to_string()
            };
            if status.code() == tonic::Code::PermissionDenied || status.code() == tonic::Code::Unauthenticated {
                error!(agent = %config.id, "coordinator refused this agent: {why}");
            }
            return lost(format!("coordinator refused the session: {why}"));
        }
    };

    // Wait for Welcome; it carries the heartbeat interval.
    let interval = match tokio::time::timeout(Duration::from_secs(30), inbound.message()).await {
        Ok(Ok(Some(CoordinatorMessage { body: Some(coordinator_message::Body::Welcome(w)) }))) => {
            info!(agent = %config.id, coordinator_version = %w.coordinator_version, "connected to coordinator");
            Duration::from_millis(w.heartbeat_interval_ms.max(100))
        }
        Ok(Ok(Some(_))) => return lost("coordinator did not start with welcome".into()),
        Ok(Ok(None)) => return lost("coordinator closed the stream".into()),
        Ok(Err(status)) => return lost(format!("coordinator refused the session: {}", status.message())),
        Err(_) => return lost("no welcome from coordinator within 30s".into()),
    };
    let established = |reason: String| Ended::Lost { reason, established: true, replaced: false };

    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle = interval * 3;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                seq += 1;
                let hb = AgentMessage { body: Some(agent_message::Body::Heartbeat(Heartbeat { seq })) };
                if tx.send(hb).await.is_err() {
                    return established("stream closed".into());
                }
            }
            msg = tokio::time::timeout(idle, inbound.message()) => match msg {
                Err(_) => return established(format!("no word from coordinator for {idle:?}")),
                Ok(Ok(None)) => return established("coordinator closed the stream".into()),
                Ok(Err(status)) => return established(format!("stream error: {}", status.message())),
                Ok(Ok(Some(CoordinatorMessage { body }))) => match body {
                    Some(coordinator_message::Body::Command(cmd)) => {
                        let tx = tx.clone();
                        let allow = config.allow.clone();
                        let journal = std::sync::Arc::clone(journal);
                        tokio::spawn(async move {
                            // Output streams to the coordinator as it comes.
                            let (live, mut chunks) = mpsc::unbounded_channel::<String>();
                            let forward_tx = tx.clone();
                            let command_id = cmd.command_id.clone();
                            let forward = tokio::spawn(async move {
                                while let Some(chunk) = chunks.recv().await {
                                    let msg = CommandOutput { command_id: command_id.clone(), chunk };
                                    let _ = forward_tx.send(AgentMessage { body: Some(agent_message::Body::Output(msg)) }).await;
                                }
                            });
                            let result = handle::command(&allow, &journal, cmd, live).await;
                            let _ = forward.await;
                            let _ = tx.send(AgentMessage { body: Some(agent_message::Body::Result(result)) }).await;
                        });
                    }
                    Some(coordinator_message::Body::HeartbeatAck(_)) => {}
                    Some(coordinator_message::Body::Goodbye(g)) => return said_goodbye(&g),
                    Some(coordinator_message::Body::Welcome(_)) | None => debug!("ignored message"),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_in_upper_half() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let table = [
            (0, 1.0, 100),
            (1, 1.0, 200),
            (3, 1.0, 800),
            (5, 1.0, 2000),
            (40, 1.0, 2000),
            (3, 0.0, 400),
            (40, 0.0, 1000),
        ];
        for (attempt, jitter, ms) in table {
            assert_eq!(
                backoff(attempt, min, max, jitter),
                Duration::from_millis(ms),
                "attempt {attempt} jitter {jitter}"
            );
        }
    }

    #[test]
    fn a_replaced_goodbye_waits_the_longest_whatever_its_words() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let table = [
            (GoodbyeReason::Replaced, "bye", true),
            (GoodbyeReason::ShuttingDown, "replaced by a newer connection from 10.0.0.2:1", false),
            (GoodbyeReason::Unspecified, "replaced", false),
        ];
        for (kind, words, replaced) in table {
            let ended = said_goodbye(&Goodbye { reason: words.into(), kind: kind as i32 });
            let expected =
                Ended::Lost { reason: format!("coordinator ended the session: {words}"), established: true, replaced };
            assert_eq!(ended, expected, "{kind:?}");
            let delay = retry_delay(replaced, 0, min, max, 0.0);
            assert_eq!(delay, if replaced { max } else { min / 2 }, "{kind:?}");
        }
    }
}
