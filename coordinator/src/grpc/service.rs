//! The two gRPC services: `Agents` (the agent stream) and `Control` (the
//! operator API). Each call authorizes first, then delegates to the fleet.

use super::auth::authorize;
use super::convert;
use crate::fleet::{Fleet, Hello};
use ripcord_engine::Selector;
use ripcord_engine::auth::Access;
use ripcord_proto::v1::{
    AgentMessage, CoordinatorMessage, HealthRequest, HealthResponse, HeartbeatAck, ListAgentsRequest,
    ListAgentsResponse, PingAgentsRequest, PingAgentsResponse, Welcome, agent_message, agents_server, control_server,
    coordinator_message,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings the services need from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub heartbeat_interval: Duration,
    pub ping_timeout: Duration,
}

#[derive(Clone)]
pub struct Service {
    fleet: Arc<Fleet>,
    settings: Settings,
}

impl Service {
    pub fn new(fleet: Arc<Fleet>, settings: Settings) -> Self {
        Self { fleet, settings }
    }

    /// Silence longer than this ends an agent session.
    fn idle_limit(&self) -> Duration {
        self.settings.heartbeat_interval * 3
    }
}

#[tonic::async_trait]
impl agents_server::Agents for Service {
    type SessionStream = ReceiverStream<Result<CoordinatorMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let identity = authorize(&request, Access::AgentStream, "Agents/Session")?;
        let address = request.remote_addr().map_or_else(String::new, |a| a.to_string());
        let mut inbound = request.into_inner();

        // The agent speaks first: Hello, within one idle period.
        let first = tokio::time::timeout(self.idle_limit(), inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello from agent"))??;
        let Some(AgentMessage { body: Some(agent_message::Body::Hello(hello)) }) = first else {
            return Err(Status::invalid_argument("the first message on an agent stream must be hello"));
        };
        if hello.agent_id != identity.name {
            warn!(%address, declared = %hello.agent_id, certificate = %identity.name,
                "agent refused: declared id differs from certificate identity");
            return Err(Status::permission_denied(format!(
                "agent id \"{}\" does not match the certificate identity \"{}\"",
                hello.agent_id, identity.name
            )));
        }

        let agent_id = hello.agent_id.clone();
        let mut attached = self.fleet.attach(
            Hello {
                agent_id: hello.agent_id,
                labels: hello.labels.into_iter().collect(),
                version: hello.version,
                actions: hello.actions,
                address,
            },
            256,
        );
        let conn_id = attached.conn_id;
        let tx = self.fleet.sender(&agent_id, conn_id).ok_or_else(|| Status::aborted("session replaced at once"))?;
        let welcome = CoordinatorMessage {
            body: Some(coordinator_message::Body::Welcome(Welcome {
                coordinator_version: VERSION.to_string(),
                heartbeat_interval_ms: u64::try_from(self.settings.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            })),
        };
        let _ = tx.send(Ok(welcome)).await;

        let fleet = Arc::clone(&self.fleet);
        let idle = self.idle_limit();
        tokio::spawn(async move {
            let reason = loop {
                tokio::select! {
                    why = &mut attached.stop => {
                        let why = why.unwrap_or_else(|_| "session closed".to_string());
                        Fleet::goodbye(&tx, why.clone()).await;
                        break why;
                    }
                    msg = tokio::time::timeout(idle, inbound.message()) => match msg {
                        Err(_) => break format!("no message for {idle:?}"),
                        Ok(Ok(None)) => break "stream closed by agent".to_string(),
                        Ok(Err(status)) => break format!("stream error: {}", status.message()),
                        Ok(Ok(Some(AgentMessage { body }))) => match body {
                            Some(agent_message::Body::Heartbeat(hb)) => {
                                fleet.touch(&agent_id, conn_id);
                                let ack = coordinator_message::Body::HeartbeatAck(HeartbeatAck { seq: hb.seq });
                                let _ = tx.send(Ok(CoordinatorMessage { body: Some(ack) })).await;
                            }
                            Some(agent_message::Body::Result(result)) => {
                                fleet.touch(&agent_id, conn_id);
                                fleet.deliver(&agent_id, conn_id, result);
                            }
                            Some(agent_message::Body::Hello(_)) => debug!(agent = %agent_id, "repeated hello ignored"),
                            None => debug!(agent = %agent_id, "empty message ignored"),
                        },
                    },
                }
            };
            fleet.detach(&agent_id, conn_id, &reason);
        });
        Ok(Response::new(ReceiverStream::new(attached.outgoing)))
    }
}

fn parse_selector(s: &str) -> Result<Selector, Status> {
    s.parse::<Selector>().map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl control_server::Control for Service {
    async fn health(&self, request: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        let caller = authorize(&request, Access::Read, "Control/Health")?;
        Ok(Response::new(HealthResponse {
            coordinator_version: VERSION.to_string(),
            caller_identity: caller.name,
            caller_role: caller.role.to_string(),
            connected_agents: u32::try_from(self.fleet.connected_count()).unwrap_or(u32::MAX),
        }))
    }

    async fn list_agents(&self, request: Request<ListAgentsRequest>) -> Result<Response<ListAgentsResponse>, Status> {
        authorize(&request, Access::Read, "Control/ListAgents")?;
        let selector = parse_selector(&request.get_ref().selector)?;
        let agents = self.fleet.list(&selector).into_iter().map(convert::agent_info).collect();
        Ok(Response::new(ListAgentsResponse { agents }))
    }

    async fn ping_agents(&self, request: Request<PingAgentsRequest>) -> Result<Response<PingAgentsResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/PingAgents")?;
        let req = request.into_inner();
        let targets: Vec<String> = match (req.agent_id.is_empty(), req.selector.is_empty()) {
            (false, true) => {
                if self.fleet.get(&req.agent_id).is_none() {
                    return Err(Status::not_found(format!("no agent \"{}\" in the fleet", req.agent_id)));
                }
                vec![req.agent_id]
            }
            (true, false) => {
                let selector = parse_selector(&req.selector)?;
                self.fleet.list(&selector).into_iter().map(|r| r.agent_id).collect()
            }
            _ => return Err(Status::invalid_argument("give exactly one of an agent id or a selector")),
        };
        let timeout = match req.timeout_ms {
            0 => self.settings.ping_timeout,
            ms => Duration::from_millis(ms),
        };
        info!(caller = %caller.name, agents = targets.len(), "ping");
        let results = self.fleet.ping(targets, timeout).await.into_iter().map(convert::ping_result).collect();
        Ok(Response::new(PingAgentsResponse { results }))
    }
}
