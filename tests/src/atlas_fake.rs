//! A fake MongoDB Atlas Admin API v2 for tests, following
//! `shared/reference/atlas-admin-api.md`: the same paths, one resource
//! version per path (406 for a missing or unknown one, 410 for an older,
//! sunset one), Atlas's error shape (`detail`, `error`, `errorCode`,
//! `parameters`, `reason`, and the `X-Error-Code` header), lists as
//! `{links, results, totalCount}` with `itemsPerPage`/`pageNum`.
//!
//! It enforces auth (a service account's Bearer tokens from its OAuth
//! endpoint, which expire; or HTTP Digest with realm "MMS Public API"),
//! moves clusters CREATING → IDLE and restore jobs to finished after
//! configurable delays, and can be told to answer 429 (with `Retry-After`)
//! or 500, to fail or expire the next restore job, or to lose the answer to
//! the next restore request after starting the job.
//!
//! It is seeded with one project, [`PROJECT`], holding [`SOURCE`]
//! (`chat-prod`: AWS M20, 3 nodes, US_EAST_1, MongoDB 7.0, continuous backup
//! on) with two completed snapshots, [`SNAPSHOT_DAILY`] (26 h old) and
//! [`SNAPSHOT_HOURLY`] (2 h old).
//!
//! Each cluster has a backup schedule (`GET …/backup/schedule`:
//! `restoreWindowDays`, `copySettings`) and `backupEnabled`/`pitEnabled`
//! flags that tests change to break readiness one thing at a time
//! ([`FakeAtlas::set_backup_enabled`], [`FakeAtlas::set_pit_enabled`],
//! [`FakeAtlas::set_restore_window_days`], [`FakeAtlas::add_copy_setting`],
//! [`FakeAtlas::add_snapshot`], [`FakeAtlas::clear_snapshots`]).
//!
//! A small HTTP/1.1 server on std threads, like [`crate::http`].

use ripcord_coordinator::integrations::atlas::md5_hex;
use serde_json::{Value as J, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PROJECT: &str = "5e2211c17a3e5a48f5497de3";
pub const SOURCE: &str = "chat-prod";
pub const SNAPSHOT_DAILY: &str = "65a0c0ffee00000000000001";
pub const SNAPSHOT_HOURLY: &str = "65a0c0ffee00000000000002";
pub const REALM: &str = "MMS Public API";
/// The name of [`PROJECT`].
pub const PROJECT_NAME: &str = "chat";

/// What the fake accepts.
#[derive(Clone, Debug)]
pub enum FakeAuth {
    ServiceAccount { client_id: String, client_secret: String },
    ApiKey { public_key: String, private_key: String },
}

#[derive(Clone, Debug)]
pub struct Options {
    pub auth: FakeAuth,
    /// `expires_in` of the access tokens it hands out.
    pub token_lifetime: Duration,
    /// How long a new cluster reads CREATING.
    pub cluster_create_delay: Duration,
    /// How long a restore job runs.
    pub restore_delay: Duration,
    /// How long an on-demand snapshot takes.
    pub snapshot_delay: Duration,
    /// How long a deleted cluster reads DELETING before it is gone.
    pub delete_delay: Duration,
    /// The source's point-in-time window.
    pub restore_window_days: u32,
}

impl Options {
    pub fn service_account(client_id: &str, client_secret: &str) -> Self {
        Self::with(FakeAuth::ServiceAccount { client_id: client_id.into(), client_secret: client_secret.into() })
    }

    pub fn api_key(public_key: &str, private_key: &str) -> Self {
        Self::with(FakeAuth::ApiKey { public_key: public_key.into(), private_key: private_key.into() })
    }

    fn with(auth: FakeAuth) -> Self {
        Self {
            auth,
            token_lifetime: Duration::from_secs(3600),
            cluster_create_delay: Duration::from_millis(300),
            restore_delay: Duration::from_millis(500),
            snapshot_delay: Duration::from_millis(300),
            delete_delay: Duration::from_millis(300),
            restore_window_days: 7,
        }
    }
}

/// One request as the fake saw it (never the credentials themselves).
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path under the API base (`/groups/…`), or the token path, without the query.
    pub path: String,
    pub query: String,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// "Bearer", "Digest", "Basic" or None.
    pub auth_scheme: Option<String>,
    pub body: String,
    pub status: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Finish,
    Fail,
    Expire,
}

struct Cluster {
    project: String,
    doc: J,
    ready_at: Option<Instant>,
    gone_at: Option<Instant>,
    /// The schedule's `restoreWindowDays`; None: [`Options::restore_window_days`].
    restore_window_days: Option<u32>,
    /// The schedule's `copySettings`.
    copy_settings: Vec<J>,
}

impl Cluster {
    fn new(doc: J, ready_at: Option<Instant>) -> Self {
        Cluster {
            project: PROJECT.into(),
            doc,
            ready_at,
            gone_at: None,
            restore_window_days: None,
            copy_settings: vec![],
        }
    }
}

struct Job {
    source: String,
    doc: J,
    done_at: Instant,
    fate: Fate,
    settled: bool,
}

struct Snapshot {
    cluster: String,
    doc: J,
    done_at: Option<Instant>,
}

struct State {
    opts: Options,
    clusters: Vec<Cluster>,
    jobs: Vec<Job>,
    snapshots: Vec<Snapshot>,
    /// Token → expiry.
    tokens: BTreeMap<String, Instant>,
    nonces: BTreeSet<String>,
    log: Vec<Seen>,
    throttle: usize,
    retry_after_secs: u64,
    fail: usize,
    next_fate: Option<Fate>,
    lose_next_restore_answer: bool,
    force_major: Option<String>,
    restore_jobs_created: usize,
    tokens_issued: usize,
    rejected_credentials: usize,
    expired_token_uses: usize,
    ids: u64,
    /// (name prefix, URI): clusters whose name starts with the prefix get
    /// `{"standard": URI}` as their connection strings once IDLE.
    connection_strings: Vec<(String, String)>,
}

struct Req {
    method: String,
    target: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: J,
}

impl Resp {
    fn ok(status: u16, body: J) -> Self {
        Self { status, headers: vec![], body }
    }

    /// Atlas's error shape.
    fn error(status: u16, code: &str, detail: impl Into<String>) -> Self {
        let reason = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            406 => "Not Acceptable",
            409 => "Conflict",
            410 => "Gone",
            415 => "Unsupported Media Type",
            429 => "Too Many Requests",
            _ => "Internal Server Error",
        };
        Self {
            status,
            headers: vec![("X-Error-Code".into(), code.into())],
            body: json!({"detail": detail.into(), "error": status, "errorCode": code, "parameters": [], "reason": reason}),
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// A running fake Atlas. Clones share the server.
#[derive(Clone)]
pub struct FakeAtlas {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl FakeAtlas {
    /// Starts on 127.0.0.1:0, seeded with [`PROJECT`] and [`SOURCE`].
    pub fn start(opts: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut st = State {
            opts,
            clusters: vec![],
            jobs: vec![],
            snapshots: vec![],
            tokens: BTreeMap::new(),
            nonces: BTreeSet::new(),
            log: vec![],
            throttle: 0,
            retry_after_secs: 1,
            fail: 0,
            next_fate: None,
            lose_next_restore_answer: false,
            force_major: None,
            restore_jobs_created: 0,
            tokens_issued: 0,
            rejected_credentials: 0,
            expired_token_uses: 0,
            ids: 0,
            connection_strings: vec![],
        };
        st.seed();
        let state = Arc::new(Mutex::new(st));
        let s = Arc::clone(&state);
        crate::http::serve_connections(listener, move |stream| {
            let _ = serve(stream, &s);
        });
        Self { addr, state }
    }

    /// The Admin API base URL (`[atlas] base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api/atlas/v2", self.addr)
    }

    /// The OAuth token endpoint (`[atlas] token_url`).
    pub fn token_url(&self) -> String {
        format!("http://{}/api/oauth/token", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.lock().unwrap();
        st.tick();
        f(&mut st)
    }

    /// The next `n` authenticated API requests get 429 with `Retry-After: secs`.
    pub fn throttle_next(&self, n: usize, retry_after_secs: u64) {
        self.with(|s| {
            s.throttle = n;
            s.retry_after_secs = retry_after_secs;
        });
    }

    /// The next `n` authenticated API requests get 500.
    pub fn fail_next(&self, n: usize) {
        self.with(|s| s.fail = n);
    }

    /// The next restore job ends with `failed: true`.
    pub fn fail_next_restore(&self) {
        self.with(|s| s.next_fate = Some(Fate::Fail));
    }

    /// The next restore job ends with `expired: true`.
    pub fn expire_next_restore(&self) {
        self.with(|s| s.next_fate = Some(Fate::Expire));
    }

    /// The next restore request starts its job but is answered 500, as if
    /// the answer was lost.
    pub fn lose_next_restore_answer(&self) {
        self.with(|s| s.lose_next_restore_answer = true);
    }

    /// New clusters run this major version whatever they ask for (as Atlas
    /// does when a version can no longer be created).
    pub fn create_with_major(&self, major: Option<&str>) {
        self.with(|s| s.force_major = major.map(str::to_string));
    }

    /// Clusters whose name starts with `name_prefix` get `{"standard": uri}`
    /// as their connection strings when they become IDLE (instead of made-up
    /// `*.mongodb.net` ones); matching clusters already IDLE get it now. The
    /// latest matching prefix wins.
    pub fn set_connection_string(&self, name_prefix: &str, uri: &str) {
        self.with(|s| {
            s.connection_strings.insert(0, (name_prefix.to_string(), uri.to_string()));
            for c in &mut s.clusters {
                let matches = c.doc["name"].as_str().is_some_and(|n| n.starts_with(name_prefix));
                if matches && c.doc["stateName"] == "IDLE" {
                    c.doc["connectionStrings"] = json!({"standard": uri});
                }
            }
        });
    }

    /// Adds a cluster to [`PROJECT`] in `state` (IDLE clusters get connection strings).
    pub fn add_cluster(&self, name: &str, major: &str, region: &str, size: &str, nodes: u64, state: &str) {
        self.with(|s| {
            let doc = s.cluster_doc(name, major, region, size, nodes, state);
            s.clusters.push(Cluster::new(doc, None));
        });
    }

    /// Sets `backupEnabled` (Cloud Backup) of cluster `name`.
    pub fn set_backup_enabled(&self, name: &str, on: bool) {
        self.with(|s| s.cluster_mut(name).doc["backupEnabled"] = json!(on));
    }

    /// Sets `pitEnabled` (Continuous Cloud Backup) of cluster `name`.
    pub fn set_pit_enabled(&self, name: &str, on: bool) {
        self.with(|s| s.cluster_mut(name).doc["pitEnabled"] = json!(on));
    }

    /// Sets the `restoreWindowDays` of cluster `name`'s backup schedule
    /// (point-in-time restores are refused before it, too).
    pub fn set_restore_window_days(&self, name: &str, days: u32) {
        self.with(|s| s.cluster_mut(name).restore_window_days = Some(days));
    }

    /// Adds a `copySettings` entry to cluster `name`'s backup schedule:
    /// snapshots of `frequencies` (HOURLY, DAILY, …) copied to AWS region
    /// `region` (Atlas style, `AP_NORTHEAST_1`), with oplogs when `oplogs`.
    pub fn add_copy_setting(&self, name: &str, region: &str, frequencies: &[&str], oplogs: bool) {
        self.with(|s| {
            let c = s.cluster_mut(name);
            let zone = c.doc["replicationSpecs"][0]["zoneId"].clone();
            c.copy_settings.push(json!({
                "cloudProvider": "AWS", "regionName": region, "frequencies": frequencies,
                "shouldCopyOplogs": oplogs, "zoneId": zone,
            }));
        });
    }

    /// Removes every snapshot of cluster `name`.
    pub fn clear_snapshots(&self, name: &str) {
        self.with(|s| s.snapshots.retain(|x| x.cluster != name));
    }

    /// Adds a completed scheduled snapshot of cluster `name` taken `age`
    /// ago (its `createdAt`, to the second); returns its id.
    pub fn add_snapshot(&self, name: &str, age: Duration) -> String {
        self.with(|s| {
            let id = s.new_id();
            let created = unix_now() - i64::try_from(age.as_secs()).unwrap_or(i64::MAX / 2);
            s.snapshots.push(Snapshot {
                cluster: name.into(),
                doc: json!({
                    "id": id, "createdAt": rfc3339(created), "description": "hourly snapshot",
                    "status": "completed", "snapshotType": "scheduled", "frequencyType": "hourly",
                    "type": "replicaSet", "mongodVersion": "7.0.12", "replicaSetName": "atlas-abc123-shard-0",
                    "expiresAt": rfc3339(created + 7 * 86_400), "storageSizeBytes": 104_857_600,
                }),
                done_at: None,
            });
            id
        })
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.with(|s| s.log.clone())
    }

    /// Requests seen with this method and path (under the API base, no query).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.with(|s| s.log.iter().filter(|r| r.method == method && r.path == path).count())
    }

    /// Requests answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.with(|s| s.log.iter().filter(|r| r.status == status).count())
    }

    pub fn restore_jobs_created(&self) -> usize {
        self.with(|s| s.restore_jobs_created)
    }

    pub fn tokens_issued(&self) -> usize {
        self.with(|s| s.tokens_issued)
    }

    /// 401s answered to a request that carried credentials (wrong, expired or unknown).
    pub fn rejected_credentials(&self) -> usize {
        self.with(|s| s.rejected_credentials)
    }

    /// Requests that came with a token past its expiry.
    pub fn expired_token_uses(&self) -> usize {
        self.with(|s| s.expired_token_uses)
    }

    pub fn cluster(&self, name: &str) -> Option<J> {
        self.with(|s| s.find_cluster(PROJECT, name).map(|c| c.doc.clone()))
    }

    pub fn clusters(&self) -> Vec<J> {
        self.with(|s| s.clusters.iter().map(|c| c.doc.clone()).collect())
    }

    /// Restore jobs of `source` (in [`PROJECT`]).
    pub fn restore_jobs(&self, source: &str) -> Vec<J> {
        self.with(|s| s.jobs.iter().filter(|j| j.source == source).map(|j| j.doc.clone()).collect())
    }

    pub fn snapshots(&self, cluster: &str) -> Vec<J> {
        self.with(|s| s.snapshots.iter().filter(|x| x.cluster == cluster).map(|x| x.doc.clone()).collect())
    }

    /// The JSON body of the last request with this method and path.
    pub fn last_body(&self, method: &str, path: &str) -> Option<J> {
        self.with(|s| {
            s.log
                .iter()
                .rev()
                .find(|r| r.method == method && r.path == path)
                .and_then(|r| serde_json::from_str(&r.body).ok())
        })
    }
}

/// Now, to the second like Atlas.
fn now_rfc3339() -> String {
    rfc3339(unix_now())
}

/// Unix seconds as Atlas writes times.
fn rfc3339(secs: i64) -> String {
    ripcord_engine::clock::rfc3339(secs.saturating_mul(1000))
}

fn unix_now() -> i64 {
    ripcord_pki::clock::now_ms().div_euclid(1000)
}

/// Unix seconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    ripcord_engine::clock::parse_rfc3339(s).map(|ms| ms.div_euclid(1000))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl State {
    fn seed(&mut self) {
        let doc = self.cluster_doc(SOURCE, "7.0", "US_EAST_1", "M20", 3, "IDLE");
        self.clusters.push(Cluster::new(doc, None));
        for (id, age_h, kind) in [(SNAPSHOT_DAILY, 26, "daily"), (SNAPSHOT_HOURLY, 2, "hourly")] {
            let created = unix_now() - age_h * 3600;
            self.snapshots.push(Snapshot {
                cluster: SOURCE.into(),
                doc: json!({
                    "id": id, "createdAt": rfc3339(created), "description": format!("{kind} snapshot"),
                    "status": "completed", "snapshotType": "scheduled", "frequencyType": kind,
                    "type": "replicaSet", "mongodVersion": "7.0.12", "replicaSetName": "atlas-abc123-shard-0",
                    "expiresAt": rfc3339(created + 7 * 86_400), "storageSizeBytes": 104_857_600,
                }),
                done_at: None,
            });
        }
    }

    fn new_id(&mut self) -> String {
        self.ids += 1;
        format!("66b{:021x}", self.ids)
    }

    fn cluster_doc(&mut self, name: &str, major: &str, region: &str, size: &str, nodes: u64, state: &str) -> J {
        let id = self.new_id();
        let mut doc = json!({
            "id": id, "name": name, "groupId": PROJECT, "clusterType": "REPLICASET",
            "mongoDBMajorVersion": major, "mongoDBVersion": format!("{major}.12"),
            "backupEnabled": true, "pitEnabled": true, "paused": false, "terminationProtectionEnabled": false,
            "stateName": state, "createDate": now_rfc3339(), "versionReleaseSystem": "LTS",
            "connectionStrings": {},
            "replicationSpecs": [{
                "id": self.new_id(), "zoneId": self.new_id(), "zoneName": "Zone 1",
                "regionConfigs": [{
                    "providerName": "AWS", "regionName": region, "priority": 7,
                    "electableSpecs": {"instanceSize": size, "nodeCount": nodes, "diskSizeGB": 40.0},
                    "readOnlySpecs": {"instanceSize": size, "nodeCount": 0},
                    "analyticsSpecs": {"instanceSize": size, "nodeCount": 0},
                    "autoScaling": {"compute": {"enabled": false}, "diskGB": {"enabled": true}},
                }],
            }],
        });
        if state == "IDLE" {
            doc["connectionStrings"] = self.connection_strings_for(name, &id);
        }
        doc
    }

    /// Moves time-driven state along.
    fn tick(&mut self) {
        let now = Instant::now();
        for c in &mut self.clusters {
            if c.ready_at.is_some_and(|t| t <= now) {
                c.ready_at = None;
                c.doc["stateName"] = json!("IDLE");
                let (name, id) = (c.doc["name"].as_str().unwrap_or(""), c.doc["id"].as_str().unwrap_or(""));
                let strings = connection_strings_for(&self.connection_strings, name, id);
                c.doc["connectionStrings"] = strings;
            }
        }
        self.clusters.retain(|c| c.gone_at.is_none_or(|t| t > now));
        for s in &mut self.snapshots {
            if s.done_at.is_some_and(|t| t <= now) {
                s.done_at = None;
                s.doc["status"] = json!("completed");
                s.doc["createdAt"] = json!(now_rfc3339());
            }
        }
        for j in &mut self.jobs {
            if !j.settled && j.done_at <= now {
                j.settled = true;
                match j.fate {
                    Fate::Finish => j.doc["finishedAt"] = json!(now_rfc3339()),
                    Fate::Fail => {
                        j.doc["failed"] = json!(true);
                        j.doc["finishedAt"] = json!(now_rfc3339());
                    }
                    Fate::Expire => {
                        j.doc["expired"] = json!(true);
                        j.doc["expiresAt"] = json!(now_rfc3339());
                    }
                }
            }
        }
    }

    fn connection_strings_for(&self, name: &str, id: &str) -> J {
        connection_strings_for(&self.connection_strings, name, id)
    }

    fn find_cluster(&self, project: &str, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.project == project && c.doc["name"] == name)
    }

    fn find_cluster_mut(&mut self, project: &str, name: &str) -> Option<&mut Cluster> {
        self.clusters.iter_mut().find(|c| c.project == project && c.doc["name"] == name)
    }

    /// Cluster `name` of [`PROJECT`], for the test setters.
    fn cluster_mut(&mut self, name: &str) -> &mut Cluster {
        self.find_cluster_mut(PROJECT, name).unwrap_or_else(|| panic!("the fake has no cluster {name}"))
    }

    /// The point-in-time window of a cluster, in days.
    fn window_days(&self, c: &Cluster) -> u32 {
        c.restore_window_days.unwrap_or(self.opts.restore_window_days)
    }

    fn handle(&mut self, req: &Req) -> Resp {
        self.tick();
        if req.path == "/api/oauth/token" {
            return self.token(req);
        }
        let Some(path) = req.path.strip_prefix("/api/atlas/v2") else {
            return Resp::error(404, "RESOURCE_NOT_FOUND", format!("no resource at {}", req.path));
        };
        if let Some(denied) = self.authenticate(req) {
            return denied;
        }
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let Some((route, version)) = route(&req.method, &segs) else {
            return Resp::error(404, "RESOURCE_NOT_FOUND", format!("no {} {path}", req.method));
        };
        let want = format!("application/vnd.atlas.{version}+json");
        match req.header("accept").map(str::trim) {
            Some(a) if a == want => {}
            Some(a) if a.starts_with("application/vnd.atlas.") && a.ends_with("+json") && a < want.as_str() => {
                return Resp::error(
                    410,
                    "API_VERSION_SUNSET",
                    format!("the API version in {a} is past its sunset date for {} {path}", req.method),
                );
            }
            other => {
                return Resp::error(
                    406,
                    "INVALID_VERSION",
                    format!("{} {path} needs Accept: {want}, got {}", req.method, other.unwrap_or("nothing")),
                );
            }
        }
        if !req.body.is_empty() {
            let ct = req.header("content-type").unwrap_or("");
            if ct != want && !ct.starts_with("application/json") {
                return Resp::error(415, "UNSUPPORTED_MEDIA_TYPE", format!("Content-Type {ct} for {path}"));
            }
        }
        if self.throttle > 0 {
            self.throttle -= 1;
            return Resp::error(429, "RATE_LIMITED_TOKEN_BUCKET", "Too many requests; slow down.")
                .header("Retry-After", self.retry_after_secs.to_string());
        }
        if self.fail > 0 {
            self.fail -= 1;
            return Resp::error(500, "UNEXPECTED_ERROR", "Unexpected error.");
        }
        let project = segs.get(1).copied().unwrap_or("");
        if project != PROJECT {
            return Resp::error(404, "GROUP_NOT_FOUND", format!("No group with ID {project} exists."));
        }
        let body: J = if req.body.is_empty() {
            J::Null
        } else {
            match serde_json::from_slice(&req.body) {
                Ok(b) => b,
                Err(e) => return Resp::error(400, "INVALID_JSON", format!("the body is not JSON: {e}")),
            }
        };
        let cluster = segs.get(3).copied().unwrap_or("");
        match route {
            Route::CreateCluster => self.create_cluster(&body),
            Route::GetCluster => match self.find_cluster(PROJECT, cluster) {
                Some(c) => Resp::ok(200, c.doc.clone()),
                None => not_found(cluster),
            },
            Route::DeleteCluster => self.delete_cluster(cluster),
            Route::ListSnapshots | Route::ListRestoreJobs if self.find_cluster(PROJECT, cluster).is_none() => {
                not_found(cluster)
            }
            Route::ListSnapshots => {
                let items: Vec<J> =
                    self.snapshots.iter().filter(|s| s.cluster == cluster).map(|s| s.doc.clone()).collect();
                page(&items, &req.query)
            }
            Route::TakeSnapshot => self.take_snapshot(cluster, &body),
            Route::ListRestoreJobs => {
                let items: Vec<J> = self.jobs.iter().filter(|j| j.source == cluster).map(|j| j.doc.clone()).collect();
                page(&items, &req.query)
            }
            Route::StartRestore => self.start_restore(cluster, &body),
            Route::GetRestoreJob => {
                let id = segs.get(6).copied().unwrap_or("");
                match self.jobs.iter().find(|j| j.source == cluster && j.doc["id"] == id) {
                    Some(j) => Resp::ok(200, j.doc.clone()),
                    None => Resp::error(
                        404,
                        "RESTORE_JOB_NOT_FOUND",
                        format!("No restore job with ID {id} exists for cluster {cluster}."),
                    ),
                }
            }
            Route::CancelRestoreJob => Resp::error(
                400,
                "CANNOT_CANCEL_AUTOMATED_RESTORE",
                "Automated and point-in-time restore jobs cannot be cancelled.",
            ),
            Route::GetProject => {
                let clusters = self.clusters.iter().filter(|c| c.project == PROJECT).count();
                Resp::ok(
                    200,
                    json!({
                        "id": PROJECT, "name": PROJECT_NAME, "orgId": "5e2211c17a3e5a48f5497de0",
                        "clusterCount": clusters, "created": "2024-01-15T09:00:00Z", "links": [],
                    }),
                )
            }
            Route::BackupSchedule => match self.find_cluster(PROJECT, cluster) {
                Some(c) => Resp::ok(
                    200,
                    json!({
                        "clusterId": c.doc["id"], "clusterName": cluster,
                        "restoreWindowDays": self.window_days(c),
                        "copySettings": c.copy_settings, "referenceHourOfDay": 3, "referenceMinuteOfHour": 0,
                        "autoExportEnabled": false, "useOrgAndGroupNamesInExportPrefix": false,
                        "policies": [{"id": "5f0000000000000000000001", "policyItems": [{"id": "5f0000000000000000000002", "frequencyType": "hourly", "frequencyInterval": 6, "retentionUnit": "days", "retentionValue": 7}]}],
                    }),
                ),
                None => not_found(cluster),
            },
        }
    }

    fn token(&mut self, req: &Req) -> Resp {
        let FakeAuth::ServiceAccount { client_id, client_secret } = &self.opts.auth else {
            return oauth_error(401, "invalid_client", "service accounts are not enabled");
        };
        if req.method != "POST" {
            return oauth_error(405, "invalid_request", "POST only");
        }
        let expected = format!("{client_id}:{client_secret}");
        let given = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64_decode(b.trim()))
            .and_then(|b| String::from_utf8(b).ok());
        if given.as_deref() != Some(expected.as_str()) {
            self.rejected_credentials += 1;
            return oauth_error(401, "invalid_client", "Invalid client credentials");
        }
        let form = String::from_utf8_lossy(&req.body);
        let ct = req.header("content-type").unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded")
            || !form.split('&').any(|p| p == "grant_type=client_credentials")
        {
            return oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials");
        }
        let token = format!("{:016x}{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..), fastrand::u64(..));
        let lifetime = self.opts.token_lifetime;
        self.tokens.insert(token.clone(), Instant::now() + lifetime);
        self.tokens_issued += 1;
        Resp::ok(200, json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"}))
    }

    /// None if the request is authenticated, else the 401.
    fn authenticate(&mut self, req: &Req) -> Option<Resp> {
        let given = req.header("authorization").map(str::to_string);
        let unauthorized = Resp::error(401, "UNAUTHORIZED", "You are not authorized for this resource.");
        match self.opts.auth.clone() {
            FakeAuth::ServiceAccount { .. } => {
                let token = given.as_deref().and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
                match token.and_then(|t| self.tokens.get(t)) {
                    Some(exp) if *exp > Instant::now() => None,
                    Some(_) => {
                        self.expired_token_uses += 1;
                        self.rejected_credentials += 1;
                        Some(unauthorized)
                    }
                    None => {
                        if given.is_some() {
                            self.rejected_credentials += 1;
                        }
                        Some(unauthorized)
                    }
                }
            }
            FakeAuth::ApiKey { public_key, private_key } => {
                if let Some(h) = given.as_deref()
                    && self.digest_ok(h, &public_key, &private_key, req)
                {
                    return None;
                }
                if given.is_some() {
                    self.rejected_credentials += 1;
                }
                let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
                self.nonces.insert(nonce.clone());
                Some(unauthorized.header(
                    "WWW-Authenticate",
                    format!(
                        "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale=false"
                    ),
                ))
            }
        }
    }

    fn digest_ok(&self, header: &str, user: &str, password: &str, req: &Req) -> bool {
        let Some(rest) = header.strip_prefix("Digest ") else { return false };
        let p: BTreeMap<String, String> =
            ripcord_coordinator::integrations::atlas::auth_params(rest).into_iter().collect();
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        if get("username") != user || get("realm") != REALM || !self.nonces.contains(get("nonce")) {
            return false;
        }
        if get("uri") != req.target || get("qop") != "auth" {
            return false;
        }
        let ha1 = md5_hex(format!("{user}:{REALM}:{password}").as_bytes());
        let ha2 = md5_hex(format!("{}:{}", req.method, req.target).as_bytes());
        let want = md5_hex(format!("{ha1}:{}:{}:{}:auth:{ha2}", get("nonce"), get("nc"), get("cnonce")).as_bytes());
        get("response") == want
    }

    fn create_cluster(&mut self, body: &J) -> Resp {
        let name = body["name"].as_str().unwrap_or("");
        if !valid_name(name) {
            return Resp::error(400, "INVALID_CLUSTER_NAME", format!("Cluster name \"{name}\" is invalid."));
        }
        if self.find_cluster(PROJECT, name).is_some() {
            return Resp::error(
                400,
                "DUPLICATE_CLUSTER_NAME",
                format!("A cluster named {name} is already present in group {PROJECT}."),
            );
        }
        let specs = body["replicationSpecs"].as_array().cloned().unwrap_or_default();
        let regions: Vec<&J> = specs.iter().flat_map(|s| s["regionConfigs"].as_array().into_iter().flatten()).collect();
        if regions.is_empty() {
            return Resp::error(400, "INVALID_ATTRIBUTE", "Invalid attribute replicationSpecs specified.");
        }
        for r in &regions {
            let ok = r["providerName"].is_string()
                && r["regionName"].is_string()
                && r["electableSpecs"]["instanceSize"].is_string()
                && r["electableSpecs"]["nodeCount"].is_u64();
            if !ok {
                return Resp::error(400, "INVALID_ATTRIBUTE", "Invalid attribute regionConfigs specified.");
            }
        }
        let asked = body["mongoDBMajorVersion"].as_str().unwrap_or("8.0");
        if !["6.0", "7.0", "8.0"].contains(&asked) {
            return Resp::error(400, "INVALID_MONGODB_VERSION", format!("MongoDB version {asked} is not available."));
        }
        let major = self.force_major.clone().unwrap_or_else(|| asked.to_string());
        let mut doc = body.clone();
        let id = self.new_id();
        doc["id"] = json!(id);
        doc["groupId"] = json!(PROJECT);
        doc["mongoDBMajorVersion"] = json!(major);
        doc["mongoDBVersion"] = json!(format!("{major}.12"));
        doc["stateName"] = json!("CREATING");
        doc["connectionStrings"] = json!({});
        doc["createDate"] = json!(now_rfc3339());
        if doc["clusterType"].is_null() {
            doc["clusterType"] = json!("REPLICASET");
        }
        if let Some(specs) = doc["replicationSpecs"].as_array_mut() {
            for s in specs {
                s["id"] = json!(format!("66c{:021x}", fastrand::u64(..) >> 4));
                s["zoneId"] = json!(format!("66d{:021x}", fastrand::u64(..) >> 4));
            }
        }
        let ready_at = Some(Instant::now() + self.opts.cluster_create_delay);
        self.clusters.push(Cluster::new(doc.clone(), ready_at));
        Resp::ok(201, doc)
    }

    fn delete_cluster(&mut self, name: &str) -> Resp {
        let delay = self.opts.delete_delay;
        match self.find_cluster_mut(PROJECT, name) {
            None => not_found(name),
            Some(c) if c.gone_at.is_some() => Resp::error(
                400,
                "CLUSTER_ALREADY_REQUESTED_DELETION",
                format!("Cluster {name} has already been requested for deletion."),
            ),
            Some(c) => {
                c.doc["stateName"] = json!("DELETING");
                c.ready_at = None;
                c.gone_at = Some(Instant::now() + delay);
                Resp::ok(202, json!({}))
            }
        }
    }

    fn take_snapshot(&mut self, cluster: &str, body: &J) -> Resp {
        let Some(c) = self.find_cluster(PROJECT, cluster) else { return not_found(cluster) };
        if c.doc["backupEnabled"] != true {
            return Resp::error(400, "BACKUP_NOT_ENABLED", format!("Cluster {cluster} has backup disabled."));
        }
        let version = c.doc["mongoDBVersion"].clone();
        if body["retentionInDays"].as_u64().is_none_or(|d| d < 1) {
            return Resp::error(400, "INVALID_ATTRIBUTE", "Invalid attribute retentionInDays specified.");
        }
        let id = self.new_id();
        let doc = json!({
            "id": id, "description": body["description"], "status": "queued", "snapshotType": "onDemand",
            "type": "replicaSet", "mongodVersion": version, "retentionInDays": body["retentionInDays"],
        });
        let done_at = Some(Instant::now() + self.opts.snapshot_delay);
        self.snapshots.push(Snapshot { cluster: cluster.into(), doc: doc.clone(), done_at });
        Resp::ok(200, doc)
    }

    fn start_restore(&mut self, source: &str, body: &J) -> Resp {
        let Some(src) = self.find_cluster(PROJECT, source) else { return not_found(source) };
        let src_major = src.doc["mongoDBMajorVersion"].as_str().unwrap_or("").to_string();
        let pit_enabled = src.doc["pitEnabled"] == true;
        let window_days = self.window_days(src);
        let delivery = body["deliveryType"].as_str().unwrap_or("");
        let target = body["targetClusterName"].as_str().unwrap_or("");
        let target_group = body["targetGroupId"].as_str().unwrap_or("");
        if target.is_empty() || target_group.is_empty() {
            return Resp::error(400, "INVALID_ATTRIBUTE", "targetClusterName and targetGroupId are required.");
        }
        let snapshot_id = match delivery {
            "pointInTime" => {
                let pit = &body["pointInTimeUTCSeconds"];
                let (has_ts, has_inc) = (!body["oplogTs"].is_null(), !body["oplogInc"].is_null());
                let valid = if pit.is_null() { has_ts && has_inc } else { !has_ts && !has_inc };
                if !valid {
                    return Resp::error(
                        400,
                        "INVALID_ATTRIBUTE",
                        "Specify either pointInTimeUTCSeconds or oplogTs and oplogInc, never both.",
                    );
                }
                if !pit_enabled {
                    return Resp::error(400, "PIT_NOT_ENABLED", format!("Continuous backup is off for {source}."));
                }
                if let Some(t) = pit.as_i64() {
                    let window = i64::from(window_days) * 86_400;
                    if t > unix_now() || t < unix_now() - window {
                        return Resp::error(
                            400,
                            "INVALID_POINT_IN_TIME",
                            format!("pointInTimeUTCSeconds {t} is outside the restore window."),
                        );
                    }
                }
                // The newest completed snapshot before the point.
                let point = pit.as_i64().unwrap_or(i64::MAX);
                self.snapshots
                    .iter()
                    .filter(|s| s.cluster == source && s.done_at.is_none())
                    .filter_map(|s| s.doc["createdAt"].as_str().and_then(parse_rfc3339).map(|t| (t, s)))
                    .filter(|(t, _)| *t <= point)
                    .max_by_key(|(t, _)| *t)
                    .map(|(_, s)| s.doc["id"].clone())
                    .unwrap_or(J::Null)
            }
            "automated" => {
                let id = body["snapshotId"].as_str().unwrap_or("");
                let found =
                    self.snapshots.iter().any(|s| s.cluster == source && s.doc["id"] == id && s.done_at.is_none());
                if !found {
                    return Resp::error(
                        404,
                        "CLOUD_BACKUP_SNAPSHOT_NOT_FOUND",
                        format!("No snapshot with ID {id} exists for cluster {source}."),
                    );
                }
                json!(id)
            }
            other => {
                return Resp::error(400, "INVALID_ATTRIBUTE", format!("Invalid deliveryType {other:?}."));
            }
        };
        let Some(t) = self.find_cluster(target_group, target) else {
            return Resp::error(
                404,
                "CLUSTER_NOT_FOUND",
                format!("No cluster named {target} exists in group {target_group}."),
            );
        };
        if t.doc["stateName"] != "IDLE" {
            return Resp::error(400, "CLUSTER_NOT_IDLE", format!("Target cluster {target} is not IDLE."));
        }
        if t.doc["mongoDBMajorVersion"].as_str().unwrap_or("") != src_major {
            return Resp::error(
                400,
                "RESTORE_VERSION_MISMATCH",
                format!("Target cluster {target} must run MongoDB {src_major}."),
            );
        }
        let id = self.new_id();
        let mut doc = json!({
            "id": id, "deliveryType": delivery, "targetClusterName": target, "targetGroupId": target_group,
            "snapshotId": snapshot_id, "cancelled": false, "expired": false, "failed": false,
            "links": [{"href": format!("/api/atlas/v2/groups/{PROJECT}/clusters/{source}/backup/restoreJobs/{id}"), "rel": "self"}],
        });
        for f in ["pointInTimeUTCSeconds", "oplogTs", "oplogInc"] {
            if !body[f].is_null() {
                doc[f] = body[f].clone();
            }
        }
        let fate = self.next_fate.take().unwrap_or(Fate::Finish);
        self.jobs.push(Job {
            source: source.into(),
            doc: doc.clone(),
            done_at: Instant::now() + self.opts.restore_delay,
            fate,
            settled: false,
        });
        self.restore_jobs_created += 1;
        if std::mem::take(&mut self.lose_next_restore_answer) {
            return Resp::error(500, "UNEXPECTED_ERROR", "Unexpected error.");
        }
        Resp::ok(200, doc)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    CreateCluster,
    GetCluster,
    DeleteCluster,
    ListSnapshots,
    TakeSnapshot,
    ListRestoreJobs,
    StartRestore,
    GetRestoreJob,
    CancelRestoreJob,
    BackupSchedule,
    GetProject,
}

/// The reference's table: route and the one version each path speaks.
fn route(method: &str, segs: &[&str]) -> Option<(Route, &'static str)> {
    use Route::*;
    let r = match (method, segs) {
        ("POST", ["groups", _, "clusters"]) => (CreateCluster, "2024-10-23"),
        ("GET", ["groups", _, "clusters", _]) => (GetCluster, "2024-08-05"),
        ("DELETE", ["groups", _, "clusters", _]) => (DeleteCluster, "2023-02-01"),
        ("GET", ["groups", _, "clusters", _, "backup", "snapshots"]) => (ListSnapshots, "2023-01-01"),
        ("POST", ["groups", _, "clusters", _, "backup", "snapshots"]) => (TakeSnapshot, "2023-01-01"),
        ("GET", ["groups", _, "clusters", _, "backup", "restoreJobs"]) => (ListRestoreJobs, "2023-01-01"),
        ("POST", ["groups", _, "clusters", _, "backup", "restoreJobs"]) => (StartRestore, "2023-01-01"),
        ("GET", ["groups", _, "clusters", _, "backup", "restoreJobs", _]) => (GetRestoreJob, "2023-01-01"),
        ("DELETE", ["groups", _, "clusters", _, "backup", "restoreJobs", _]) => (CancelRestoreJob, "2023-01-01"),
        ("GET", ["groups", _, "clusters", _, "backup", "schedule"]) => (BackupSchedule, "2024-08-05"),
        ("GET", ["groups", _]) => (GetProject, "2023-01-01"),
        _ => return None,
    };
    Some(r)
}

fn not_found(cluster: &str) -> Resp {
    Resp::error(404, "CLUSTER_NOT_FOUND", format!("No cluster named {cluster} exists in group {PROJECT}."))
}

fn oauth_error(status: u16, code: &str, description: &str) -> Resp {
    Resp { status, headers: vec![], body: json!({"error": code, "error_description": description}) }
}

/// The connection strings of an IDLE cluster: a test's URI when its name
/// matches one of `overrides`' prefixes, else made-up Atlas ones.
fn connection_strings_for(overrides: &[(String, String)], name: &str, id: &str) -> J {
    match overrides.iter().find(|(prefix, _)| name.starts_with(prefix.as_str())) {
        Some((_, uri)) => json!({"standard": uri}),
        None => connection_strings(name, id),
    }
}

fn connection_strings(name: &str, id: &str) -> J {
    let short: String = id.chars().rev().take(5).collect();
    json!({
        "standardSrv": format!("mongodb+srv://{name}.{short}.mongodb.net"),
        "standard": format!(
            "mongodb://{name}-shard-00-00.{short}.mongodb.net:27017,{name}-shard-00-01.{short}.mongodb.net:27017,{name}-shard-00-02.{short}.mongodb.net:27017/?ssl=true&authSource=admin&replicaSet=atlas-{short}-shard-0"
        ),
    })
}

/// One page of a list, Atlas style.
fn page(items: &[J], query: &BTreeMap<String, String>) -> Resp {
    let per: usize = query.get("itemsPerPage").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 500);
    let num: usize = query.get("pageNum").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let results: Vec<J> = items.iter().skip((num - 1) * per).take(per).cloned().collect();
    Resp::ok(200, json!({"links": [], "results": results, "totalCount": items.len()}))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(r) = crate::http::read_request(&mut reader)? {
        let query = r.raw_query.clone();
        let req = Req {
            query: r.query(),
            method: r.method,
            target: r.target,
            path: r.path,
            headers: r.headers,
            body: r.body,
        };
        let resp = {
            let mut st = state.lock().unwrap();
            let resp = st.handle(&req);
            let header = |n: &str| req.header(n).map(str::to_string);
            st.log.push(Seen {
                method: req.method.clone(),
                path: req.path.strip_prefix("/api/atlas/v2").unwrap_or(&req.path).to_string(),
                query,
                accept: header("accept"),
                content_type: header("content-type"),
                auth_scheme: header("authorization").and_then(|a| a.split_whitespace().next().map(str::to_string)),
                body: String::from_utf8_lossy(&req.body).into_owned(),
                status: resp.status,
            });
            resp
        };
        let text = resp.body.to_string();
        let ct = match req.header("accept") {
            Some(a) if a.starts_with("application/vnd.atlas.") && resp.status < 300 => a.to_string(),
            _ => "application/json".to_string(),
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n",
            resp.status,
            if resp.status < 400 { "OK" } else { "Error" },
            text.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(text.as_bytes())?;
        stream.flush()?;
    }
    Ok(())
}
