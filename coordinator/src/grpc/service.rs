//! The two gRPC services: `Agents` (the agent stream) and `Control` (the
//! operator API). Each call authorizes first, then delegates to the fleet.

use super::auth::authorize;
use super::convert;
use crate::driver::{self, Runs, StartRequest};
use crate::fleet::{Fleet, Hello, Outgoing};
use crate::scheduler::SchedulerHandle;
use ripcord_engine::Selector;
use ripcord_engine::auth::Access;
use ripcord_engine::run::{Actor, Input, Mode};
use ripcord_proto::v1::{
    AbortRunRequest, AckRunRequest, AgentMessage, ApproveStepRequest, CoordinatorMessage, GetRunRequest,
    GetRunResponse, HealthRequest, HealthResponse, ListAgentsRequest, ListAgentsResponse, ListRunbooksRequest,
    ListRunbooksResponse, ListRunsRequest, ListRunsResponse, OperatorResponse, PingAgentsRequest, PingAgentsResponse,
    RetryRunRequest, RunSummary, RunbookInfo, StartRunRequest, StartRunResponse, agent_message, agents_server,
    control_server,
};
use ripcord_proto::v1::{
    DrillHistoryRequest, DrillHistoryResponse, ListDrillsRequest, ListDrillsResponse, RunDrillNowRequest,
};
use ripcord_proto::v1::{ListContactsRequest, ListContactsResponse};
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings the services need from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub heartbeat_interval: Duration,
    pub ping_timeout: Duration,
    /// Names of the credentials held (for Health; never the values).
    pub credentials: Vec<String>,
    /// The cloud integrations configured.
    pub integrations: Vec<String>,
    /// The drills file the scheduler runs, if any.
    pub drills_file: Option<std::path::PathBuf>,
}

#[derive(Clone)]
pub struct Service {
    fleet: Arc<Fleet>,
    runs: Runs,
    settings: Settings,
    drills: Option<SchedulerHandle>,
    contacts: Arc<crate::contacts::Roster>,
}

fn actor(id: &ripcord_engine::Identity) -> Actor {
    Actor { name: id.name.clone(), role: id.role.to_string() }
}

/// The one mapping from driver errors to statuses.
fn status(e: driver::Error) -> Status {
    match e {
        driver::Error::Invalid(m) => Status::invalid_argument(m),
        driver::Error::NotFound(m) => Status::not_found(m),
        driver::Error::Rejected(m) => Status::failed_precondition(m),
        driver::Error::Store(e) | driver::Error::Commit(e) => Status::internal(e.to_string()),
        e @ driver::Error::Refused(_) => Status::failed_precondition(e.to_string()),
        driver::Error::Exists(id) => Status::already_exists(format!("run {id} already exists")),
        driver::Error::Stopped => Status::unavailable("the run driver has stopped"),
    }
}

fn nz(v: Option<i64>) -> i64 {
    v.unwrap_or(0)
}

impl Service {
    pub fn new(fleet: Arc<Fleet>, runs: Runs, settings: Settings) -> Self {
        Self { fleet, runs, settings, drills: None, contacts: Default::default() }
    }

    /// The roster `ListContacts` answers from.
    pub fn with_contacts(mut self, contacts: Arc<crate::contacts::Roster>) -> Self {
        self.contacts = contacts;
        self
    }

    /// The scheduler the drill RPCs answer from.
    pub fn with_drills(mut self, drills: SchedulerHandle) -> Self {
        self.drills = Some(drills);
        self
    }

    fn runbook_of(rec: &crate::store::RunRecord) -> Result<ripcord_engine::runbook::Runbook, Status> {
        ripcord_engine::check::check(&rec.runbook_text)
            .map_err(|_| Status::internal(format!("run {}: stored runbook no longer loads", rec.state.id)))
    }

    async fn operate(
        &self,
        run: &str,
        input: Input,
        caller: &ripcord_engine::Identity,
    ) -> Result<Response<OperatorResponse>, Status> {
        let rec = self.runs.get(run).map_err(status)?;
        let id = rec.state.id;
        self.runs.operate(&id, input, actor(caller)).await.map_err(status)?;
        Ok(Response::new(OperatorResponse { run_id: id }))
    }

    /// Silence longer than this ends an agent session.
    fn idle_limit(&self) -> Duration {
        self.settings.heartbeat_interval * 3
    }
}

impl Service {
    /// Both services, as the server mounts them.
    pub fn into_servers(self) -> (agents_server::AgentsServer<Service>, control_server::ControlServer<Service>) {
        (agents_server::AgentsServer::new(self.clone()), control_server::ControlServer::new(self))
    }
}

#[tonic::async_trait]
impl agents_server::Agents for Service {
    type SessionStream = std::pin::Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send>>;

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
        let welcome = Outgoing::Welcome {
            coordinator_version: VERSION.to_string(),
            heartbeat_interval: self.settings.heartbeat_interval,
        };
        let _ = tx.send(welcome).await;

        let fleet = Arc::clone(&self.fleet);
        let idle = self.idle_limit();
        tokio::spawn(async move {
            let reason = loop {
                tokio::select! {
                    why = &mut attached.stop => {
                        let farewell = why.ok();
                        let _ = tx.send(Outgoing::Goodbye(farewell.clone())).await;
                        break farewell.map_or_else(|| "session closed".to_string(), |f| f.to_string());
                    }
                    msg = tokio::time::timeout(idle, inbound.message()) => match msg {
                        Err(_) => break format!("no message for {idle:?}"),
                        Ok(Ok(None)) => break "stream closed by agent".to_string(),
                        Ok(Err(status)) => break format!("stream error: {}", status.message()),
                        Ok(Ok(Some(AgentMessage { body }))) => match body {
                            Some(agent_message::Body::Heartbeat(hb)) => {
                                fleet.touch(&agent_id, conn_id);
                                let _ = tx.send(Outgoing::HeartbeatAck { seq: hb.seq }).await;
                            }
                            Some(agent_message::Body::Result(result)) => {
                                fleet.touch(&agent_id, conn_id);
                                let answer = result.outcome.map(convert::answer);
                                fleet.deliver(&agent_id, conn_id, &result.command_id, answer);
                            }
                            Some(agent_message::Body::Output(out)) => {
                                fleet.output(&agent_id, &out.command_id, &out.chunk);
                            }
                            Some(agent_message::Body::Hello(_)) => debug!(agent = %agent_id, "repeated hello ignored"),
                            None => debug!(agent = %agent_id, "empty message ignored"),
                        },
                    },
                }
            };
            fleet.detach(&agent_id, conn_id, &reason);
        });
        let outgoing = ReceiverStream::new(attached.outgoing).map(|m| Ok(convert::outgoing(m)));
        Ok(Response::new(Box::pin(outgoing)))
    }
}

fn parse_selector(s: &str) -> Result<Selector, Status> {
    s.parse::<Selector>().map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl control_server::Control for Service {
    async fn list_drills(&self, request: Request<ListDrillsRequest>) -> Result<Response<ListDrillsResponse>, Status> {
        authorize(&request, Access::Read, "Control/ListDrills")?;
        super::drills::list(self.drills.as_ref(), self.settings.drills_file.as_deref()).map(Response::new)
    }

    async fn run_drill_now(&self, request: Request<RunDrillNowRequest>) -> Result<Response<StartRunResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/RunDrillNow")?;
        let name = request.into_inner().name;
        let run_id = super::drills::run_now(self.drills.as_ref(), &name, &caller.name).await?;
        Ok(Response::new(StartRunResponse { run_id }))
    }

    async fn drill_history(
        &self,
        request: Request<DrillHistoryRequest>,
    ) -> Result<Response<DrillHistoryResponse>, Status> {
        authorize(&request, Access::Read, "Control/DrillHistory")?;
        let name = request.into_inner().name;
        let occurrences = super::drills::history(self.drills.as_ref(), &self.runs, &name)?;
        Ok(Response::new(DrillHistoryResponse { occurrences }))
    }

    async fn list_contacts(
        &self,
        request: Request<ListContactsRequest>,
    ) -> Result<Response<ListContactsResponse>, Status> {
        authorize(&request, Access::Read, "Control/ListContacts")?;
        Ok(Response::new(super::contacts::list(&self.contacts)))
    }

    /// The readiness checks, computed from the fleet; changes nothing.
    async fn readiness(
        &self,
        request: Request<ripcord_proto::v1::ReadinessRequest>,
    ) -> Result<Response<ripcord_proto::v1::ReadinessResponse>, Status> {
        authorize(&request, Access::Read, "Control/Readiness")?;
        let records = self.fleet.list(&Selector::all());
        let checks = super::readiness::checks(&request.get_ref().runbook, records)?;
        Ok(Response::new(super::readiness::response(checks)))
    }

    async fn health(&self, request: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        let caller = authorize(&request, Access::Read, "Control/Health")?;
        Ok(Response::new(HealthResponse {
            coordinator_version: VERSION.to_string(),
            caller_identity: caller.name,
            caller_role: caller.role.to_string(),
            connected_agents: u32::try_from(self.fleet.connected_count()).unwrap_or(u32::MAX),
            credentials: self.settings.credentials.clone(),
            integrations: self.settings.integrations.clone(),
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

    async fn list_runbooks(
        &self,
        request: Request<ListRunbooksRequest>,
    ) -> Result<Response<ListRunbooksResponse>, Status> {
        authorize(&request, Access::Read, "Control/ListRunbooks")?;
        let runbooks = ripcord_engine::builtin::BUILTIN
            .iter()
            .filter_map(|(id, text)| {
                let rb = ripcord_engine::check::check(text).ok()?;
                Some(RunbookInfo {
                    id: id.to_string(),
                    title: rb.title,
                    rto: rb.rto.map(ripcord_engine::duration::format).unwrap_or_default(),
                    steps: u32::try_from(rb.steps.len()).unwrap_or(u32::MAX),
                })
            })
            .collect();
        Ok(Response::new(ListRunbooksResponse { runbooks }))
    }

    async fn start_run(&self, request: Request<StartRunRequest>) -> Result<Response<StartRunResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/StartRun")?;
        let req = request.into_inner();
        let (source, text) = if req.runbook_text.is_empty() {
            let text = ripcord_engine::builtin::get(&req.runbook).ok_or_else(|| {
                let ids: Vec<&str> = ripcord_engine::builtin::ids().collect();
                let hint = ripcord_engine::hint::closest(&req.runbook, ids.iter().copied())
                    .map(|c| format!(" (did you mean \"{c}\"?)"))
                    .unwrap_or_default();
                Status::not_found(format!(
                    "no built-in runbook \"{}\"{hint}; built-in: {}",
                    req.runbook,
                    ids.join(", ")
                ))
            })?;
            (format!("builtin:{}", req.runbook), text.to_string())
        } else {
            (req.runbook.clone(), req.runbook_text)
        };
        let incident_at = if req.incident_at.is_empty() {
            None
        } else {
            Some(ripcord_engine::clock::parse_rfc3339(&req.incident_at).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "incident time \"{}\" is not RFC 3339 (e.g. 2026-11-27T03:12:00Z)",
                    req.incident_at
                ))
            })?)
        };
        let params = req.params.into_iter().map(|(k, v)| (k, ripcord_engine::value::Value::Str(v))).collect();
        let mode = if req.drill { Mode::Drill } else { Mode::Recovery };
        let environment = Some(req.environment).filter(|e| !e.is_empty());
        let start = StartRequest {
            id: None,
            source,
            text,
            params,
            incident_at,
            mode,
            by: actor(&caller),
            environment,
            parent: None,
        };
        if req.check_only {
            self.runs.check(start).await.map_err(status)?;
            return Ok(Response::new(StartRunResponse { run_id: String::new() }));
        }
        let run_id = self.runs.start(start).await.map_err(status)?;
        Ok(Response::new(StartRunResponse { run_id }))
    }

    async fn list_runs(&self, request: Request<ListRunsRequest>) -> Result<Response<ListRunsResponse>, Status> {
        authorize(&request, Access::Read, "Control/ListRuns")?;
        let runs = self
            .runs
            .list()
            .map_err(status)?
            .into_iter()
            .map(|rec| {
                let progress = Self::runbook_of(&rec).map(|rb| crate::view::progress(&rb, &rec)).unwrap_or_default();
                let s = &rec.state;
                RunSummary {
                    run_id: s.id.clone(),
                    runbook_id: s.runbook_id.clone(),
                    mode: s.mode.to_string(),
                    status: s.status.to_string(),
                    created_at_unix_ms: s.created_at,
                    incident_at_unix_ms: s.incident_at,
                    recovered_at_unix_ms: nz(s.recovered_at),
                    finished_at_unix_ms: nz(s.finished_at),
                    started_by: rec.started_by.to_string(),
                    progress,
                }
            })
            .collect();
        Ok(Response::new(ListRunsResponse { runs }))
    }

    async fn get_run(&self, request: Request<GetRunRequest>) -> Result<Response<GetRunResponse>, Status> {
        authorize(&request, Access::Read, "Control/GetRun")?;
        let rec = self.runs.get(&request.get_ref().run_id).map_err(status)?;
        let rb = Self::runbook_of(&rec)?;
        let events = self.runs.events(&rec.state.id).map_err(status)?;
        let view = crate::view::run_view(&rb, &rec, &events, ripcord_pki::clock::now_ms());
        let reply =
            convert::run_view(&view).map_err(|e| Status::internal(format!("cannot encode the run view: {e}")))?;
        Ok(Response::new(reply))
    }

    async fn approve_step(&self, request: Request<ApproveStepRequest>) -> Result<Response<OperatorResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/ApproveStep")?;
        let req = request.into_inner();
        let by = actor(&caller);
        let input = if req.item == 0 {
            Input::Approve { step: req.step, by, note: req.note }
        } else {
            Input::Confirm { step: req.step, item: req.item as usize, by, note: req.note }
        };
        self.operate(&req.run_id, input, &caller).await
    }

    async fn abort_run(&self, request: Request<AbortRunRequest>) -> Result<Response<OperatorResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/AbortRun")?;
        let req = request.into_inner();
        if req.reason.trim().is_empty() {
            return Err(Status::invalid_argument("an abort needs a reason (--reason)"));
        }
        self.operate(&req.run_id, Input::Abort { by: actor(&caller), reason: req.reason }, &caller).await
    }

    async fn retry_run(&self, request: Request<RetryRunRequest>) -> Result<Response<OperatorResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/RetryRun")?;
        let req = request.into_inner();
        let step = if req.step.is_empty() { None } else { Some(req.step) };
        self.operate(&req.run_id, Input::Retry { by: actor(&caller), step }, &caller).await
    }

    /// Acknowledges a running run: its later escalation tiers are not sent
    /// (the note is concealed like any operator text, in the driver).
    async fn ack_run(&self, request: Request<AckRunRequest>) -> Result<Response<OperatorResponse>, Status> {
        let caller = authorize(&request, Access::Act, "Control/AckRun")?;
        let req = request.into_inner();
        self.operate(&req.run_id, Input::Ack { by: actor(&caller), note: req.note }, &caller).await
    }
}
