//! The harness for ripcord's integration tests and benchmarks: real
//! processes, certificates made per test, a temp dir each, port 0, a log
//! file per process, readiness by polling, processes killed on drop.
//!
//! ```no_run
//! let cluster = ripcord_tests::Cluster::start(&[ripcord_tests::AgentSpec::new("cache-1").label("role", "redis")]);
//! let out = cluster.cli("alice", &["agents", "--json"]);
//! ```

pub mod atlas_fake;
pub mod chat_api;
pub mod http;
pub mod kube_fake;
pub mod pagerduty_fake;
pub mod redis;
pub mod services;

use ripcord_engine::Role;
use ripcord_pki::issue::{Request, Validity};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long [`eventually`] waits, from `RIPCORD_TEST_TIMEOUT_SECS` (default 30).
pub fn patience() -> Duration {
    let secs = std::env::var("RIPCORD_TEST_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    Duration::from_secs(secs)
}

/// Polls `f` until it returns `Some`, or panics after [`patience`] with
/// `what` and the last value seen.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + patience();
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last: {last}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory holding the workspace's binaries (`target/debug` for tests,
/// `target/release` for benches), found from the running test executable.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RIPCORD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
    for b in ["ripcord", "ripcord-coordinator", "ripcord-agent"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build the binaries first (`cargo build --workspace`, or scripts/test does it)",
            dir.join(b).display()
        );
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A CA and the certificates issued from it, in one directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        ripcord_pki::files::init(dir, "ripcord test CA", Validity::days_from_now(2), false).expect("init CA");
        Self { dir: dir.to_path_buf() }
    }

    /// Issues NAME.crt/NAME.key for `role`, valid now.
    pub fn issue(&self, name: &str, role: Role) {
        self.issue_with(name, role, Validity::days_from_now(1));
    }

    pub fn issue_with(&self, name: &str, role: Role, validity: Validity) {
        let req = Request { name: name.into(), role, sans: vec![], validity };
        ripcord_pki::files::issue(&self.dir, &req, true).expect("issue certificate");
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Self {
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err)).stdin(Stdio::null());
        cmd.env("RIPCORD_LOG", "info,ripcord_coordinator=debug,ripcord_agent=debug");
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name: name.to_string(), child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (STOP, CONT, TERM) with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Whether the process has exited, with its status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- last lines of {} ({}) -----", self.name, self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// An agent to start: id, labels, allowed actions, optional certificate name
/// (defaults to the id).
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub id: String,
    pub cert_name: String,
    pub labels: Vec<(String, String)>,
    pub actions: Vec<String>,
    /// More of the agent's `[allow]` (services, Redis instances, paths), TOML.
    pub allow_toml: String,
    /// Extra environment for the agent process.
    pub env: Vec<(String, String)>,
}

impl AgentSpec {
    pub fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            cert_name: id.into(),
            labels: vec![],
            actions: vec!["redis.ping".into()],
            allow_toml: String::new(),
            env: vec![],
        }
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    /// Allow these actions (replacing the default).
    pub fn actions(mut self, actions: &[&str]) -> Self {
        self.actions = actions.iter().map(|a| a.to_string()).collect();
        self
    }
    /// Add `[allow]` entries (TOML).
    pub fn allow(mut self, toml: &str) -> Self {
        self.allow_toml.push_str(toml);
        self
    }
    /// Set an environment variable for the agent process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Use another identity's certificate (to test impersonation).
    pub fn cert(mut self, name: &str) -> Self {
        self.cert_name = name.into();
        self
    }
}

/// A coordinator with its certificates, agents and operators, in a temp dir.
/// More for the coordinator: config sections (TOML appended to its config)
/// and environment (e.g. AWS credentials for the SDK's chain). The
/// coordinator inherits no `AWS_*` variable and has instance metadata off
/// (`AWS_EC2_METADATA_DISABLED=true`); `env` is applied after that.
#[derive(Clone, Debug, Default)]
pub struct CoordinatorExtras {
    pub toml: String,
    pub env: Vec<(String, String)>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub extras: CoordinatorExtras,
    pub coordinator: Proc,
    pub addr: String,
    pub agents: Vec<Proc>,
}

pub const OPERATOR: &str = "alice";
pub const VIEWER: &str = "val";

impl Cluster {
    /// Starts a coordinator (with operator `alice` and viewer `val`) and the
    /// given agents, and waits until every agent is connected.
    pub fn start(agents: &[AgentSpec]) -> Self {
        Self::start_with(agents, CoordinatorExtras::default())
    }

    /// [`Cluster::start`] with extra coordinator config and environment.
    pub fn start_with(agents: &[AgentSpec], extras: CoordinatorExtras) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(&dir.path().join("pki"));
        pki.issue("coordinator", Role::Coordinator);
        pki.issue(OPERATOR, Role::Operator);
        pki.issue(VIEWER, Role::Viewer);
        let (coordinator, addr) = start_coordinator_with(dir.path(), &pki, "127.0.0.1:0", &extras);
        let mut cluster = Self { dir, pki, extras, coordinator, addr, agents: vec![] };
        cluster.wait_ready();
        for spec in agents {
            cluster.start_agent(spec);
        }
        for spec in agents {
            cluster.wait_connected(&spec.id);
        }
        cluster
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Panics if any of `secrets` is in a file of the coordinator's data
    /// directory (sled). The run id `run` must be (it is stored in the
    /// clear), which shows the scan reads what sled wrote.
    pub fn assert_not_stored(&self, run: &str, secrets: &[&str]) {
        let contains = |bytes: &[u8], s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
        let data = self.path().join("data");
        let mut files = vec![data.clone()];
        let mut saw_run = false;
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(fs::read_dir(&p).expect("data dir").filter_map(|e| e.ok().map(|e| e.path())));
            } else if let Ok(bytes) = fs::read(&p) {
                saw_run |= contains(&bytes, run);
                for secret in secrets {
                    assert!(!contains(&bytes, secret), "{secret} is stored in {}", p.display());
                }
            }
        }
        assert!(saw_run, "run {run} not found in the sled files under {}", data.display());
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Writes an agent config and starts the agent (does not wait).
    pub fn start_agent(&mut self, spec: &AgentSpec) -> usize {
        if !self.pki.cert(&spec.cert_name).exists() {
            self.pki.issue(&spec.cert_name, Role::Agent);
        }
        let n = self.agents.len();
        let cfg = self.path().join(format!("agent-{n}-{}.toml", spec.id));
        let labels: String = spec.labels.iter().map(|(k, v)| format!("{k} = \"{v}\"\n")).collect();
        let actions: Vec<String> = spec.actions.iter().map(|a| format!("\"{a}\"")).collect();
        let text = format!(
            "id = \"{id}\"\ncoordinator = \"{url}\"\nserver_name = \"localhost\"\nstate_dir = \"{state}\"\n\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\n[labels]\n{labels}\n[reconnect]\nmin = \"50ms\"\nmax = \"1s\"\n\n[allow]\nactions = [{actions}]\n{extra}\n",
            id = spec.id,
            url = self.url(),
            ca = self.pki.ca().display(),
            cert = self.pki.cert(&spec.cert_name).display(),
            key = self.pki.key(&spec.cert_name).display(),
            actions = actions.join(", "),
            state = self.path().join(format!("agent-{n}-state")).display(),
            extra = spec.allow_toml,
        );
        fs::write(&cfg, text).expect("agent config");
        let mut cmd = Command::new(bin("ripcord-agent"));
        cmd.arg("--config").arg(&cfg);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let log = self.path().join(format!("agent-{n}-{}.log", spec.id));
        self.agents.push(Proc::spawn(&format!("agent {}", spec.id), cmd, log));
        n
    }

    /// Runs the CLI as `identity` (its certificate from the test CA), with
    /// a clean environment and a HOME of its own.
    pub fn cli(&self, identity: &str, args: &[&str]) -> Output {
        let mut cmd = self.bare_cli();
        cmd.arg("--coordinator")
            .arg(self.url())
            .arg("--server-name")
            .arg("localhost")
            .arg("--ca")
            .arg(self.pki.ca())
            .arg("--cert")
            .arg(self.pki.cert(identity))
            .arg("--key")
            .arg(self.pki.key(identity))
            .args(args);
        cmd.output().expect("run ripcord")
    }

    /// The CLI with no connection flags, HOME in the test dir, no RIPCORD_*.
    pub fn bare_cli(&self) -> Command {
        bare_cli(self.path())
    }

    /// Lists the fleet as JSON through the CLI.
    pub fn agents_json(&self) -> Result<Vec<serde_json::Value>, String> {
        let out = self.cli(OPERATOR, &["agents", "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        v.as_array().cloned().ok_or_else(|| "not an array".to_string())
    }

    pub fn agent_json(&self, id: &str) -> Result<serde_json::Value, String> {
        self.agents_json()?.into_iter().find(|a| a["agent_id"] == id).ok_or_else(|| format!("agent {id} not listed"))
    }

    pub fn wait_ready(&self) {
        eventually("coordinator to answer", || {
            let out = self.cli(OPERATOR, &["status"]);
            if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
        });
    }

    pub fn wait_connected(&self, id: &str) {
        eventually(&format!("agent {id} to be connected"), || {
            let a = self.agent_json(id)?;
            if a["connected"] == true { Ok(()) } else { Err(format!("{a}")) }
        });
    }

    /// Starts a run as the operator; returns its id.
    pub fn start_run(&self, runbook: &str, params: &[(&str, &str)]) -> String {
        let mut args = vec!["run".to_string(), runbook.to_string()];
        for (k, v) in params {
            args.push("--param".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cli(OPERATOR, &args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "ripcord run failed: {stderr}");
        stdout.trim().to_string()
    }

    /// `ripcord show RUN --json`.
    pub fn view(&self, run: &str) -> Result<serde_json::Value, String> {
        let out = self.cli(OPERATOR, &["show", run, "--json"]);
        if !out.status.success() {
            return Err(text(&out).1);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Waits until `pred` holds for the run's view; returns that view.
    pub fn wait_run(&self, run: &str, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        eventually(&format!("run {run}: {what}"), || {
            let v = self.view(run)?;
            if pred(&v) { Ok(v) } else { Err(format!("status {}, steps {}", v["status"], step_states(&v))) }
        })
    }

    /// SIGKILLs the coordinator and starts it again on the same address and
    /// data directory.
    pub fn restart_coordinator(&mut self) {
        self.kill_coordinator();
        self.start_coordinator_again();
    }

    /// SIGKILLs the coordinator; [`Cluster::start_coordinator_again`]
    /// brings it back.
    pub fn kill_coordinator(&mut self) {
        self.coordinator.kill();
    }

    /// Starts the coordinator again on the same address and data directory.
    pub fn start_coordinator_again(&mut self) {
        let (proc_, addr) = start_coordinator_with(self.path(), &self.pki, &self.addr, &self.extras);
        self.coordinator = proc_;
        assert_eq!(addr, self.addr);
        self.wait_ready();
    }
}

/// "id=state" for every step of a run view.
pub fn step_states(v: &serde_json::Value) -> String {
    v["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| format!("{}={}", s["id"].as_str().unwrap_or("?"), s["status"].as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The state of step `id` in a run view.
pub fn step<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["steps"].as_array().and_then(|a| a.iter().find(|s| s["id"] == id)).unwrap_or(&serde_json::Value::Null)
}

/// The CLI with HOME set to `home` and no inherited ripcord settings.
pub fn bare_cli(home: &Path) -> Command {
    let mut cmd = Command::new(bin("ripcord"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RIPCORD_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("XDG_CONFIG_HOME").env("HOME", home);
    cmd
}

/// Writes a coordinator config in `dir` and starts it; returns the process
/// and its bound address once it has written it.
pub fn start_coordinator(dir: &Path, pki: &Pki, listen: &str) -> (Proc, String) {
    start_coordinator_with(dir, pki, listen, &CoordinatorExtras::default())
}

/// Writes `dir/coordinator.toml` for a coordinator listening on `listen`
/// with its data under `dir/data`; returns its path.
pub fn write_coordinator_config(dir: &Path, pki: &Pki, listen: &str, extras: &CoordinatorExtras) -> PathBuf {
    let addr_file = dir.join("coordinator.addr");
    let cfg = dir.join("coordinator.toml");
    let text = format!(
        "listen = \"{listen}\"\ndata_dir = \"{data}\"\naddress_file = \"{addr}\"\nheartbeat_interval = \"500ms\"\nping_timeout = \"3s\"\n\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        data = dir.join("data").display(),
        addr = addr_file.display(),
        ca = pki.ca().display(),
        cert = pki.cert("coordinator").display(),
        key = pki.key("coordinator").display(),
    );
    fs::write(&cfg, format!("{text}{}", extras.toml)).expect("coordinator config");
    cfg
}

/// [`start_coordinator`] with extra config sections and environment.
pub fn start_coordinator_with(dir: &Path, pki: &Pki, listen: &str, extras: &CoordinatorExtras) -> (Proc, String) {
    let addr_file = dir.join("coordinator.addr");
    let _ = fs::remove_file(&addr_file);
    let cfg = write_coordinator_config(dir, pki, listen, extras);
    let cmd = coordinator_command(dir, &cfg, extras);
    let n = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("coordinator-")).count()
        })
        .unwrap_or(0);
    let mut p = Proc::spawn("coordinator", cmd, dir.join(format!("coordinator-{n}.log")));
    let addr = eventually("coordinator to write its address", || {
        if let Some(status) = p.exited() {
            return Ok(Err(format!("coordinator exited with {status}: {}", p.log_text())));
        }
        fs::read_to_string(&addr_file).map(Ok).map_err(|e| e.to_string())
    });
    match addr {
        Ok(a) => (p, a),
        Err(e) => panic!("{e}"),
    }
}

/// stdout and stderr of `out`, for assertions and messages.
pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Writes the coordinator config like [`write_coordinator_config`], with
/// `top` first: root keys such as `drills = "FILE"`, which TOML wants
/// before any table (`extras.toml` comes after `[tls]`).
pub fn write_coordinator_config_with_top(
    dir: &Path,
    pki: &Pki,
    listen: &str,
    top: &str,
    extras: &CoordinatorExtras,
) -> PathBuf {
    let cfg = write_coordinator_config(dir, pki, listen, extras);
    let text = fs::read_to_string(&cfg).expect("coordinator config");
    fs::write(&cfg, format!("{top}\n{text}")).expect("coordinator config");
    cfg
}

/// Starts `ripcord-coordinator --config CFG` in `dir` (environment as for
/// [`start_coordinator_with`]: no `AWS_*` of the machine, then
/// `extras.env`) and returns at once, without waiting for its address.
pub fn spawn_coordinator(dir: &Path, cfg: &Path, extras: &CoordinatorExtras) -> Proc {
    Proc::spawn("coordinator", coordinator_command(dir, cfg, extras), dir.join("coordinator-top.log"))
}

/// `ripcord-coordinator --config CFG`. Traffic stays on loopback: no AWS
/// settings or credentials of the machine, no instance-metadata lookups (a
/// test may ask for them back through `extras.env`).
fn coordinator_command(dir: &Path, cfg: &Path, extras: &CoordinatorExtras) -> Command {
    let mut cmd = Command::new(bin("ripcord-coordinator"));
    cmd.arg("--config").arg(cfg);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"));
    for (k, v) in &extras.env {
        cmd.env(k, v);
    }
    cmd
}

impl Cluster {
    /// [`Cluster::start_with`] (no agents) whose coordinator config starts
    /// with the root keys `top` (e.g. `drills = "FILE"`).
    pub fn start_with_top(top: &str, extras: CoordinatorExtras) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(&dir.path().join("pki"));
        pki.issue("coordinator", Role::Coordinator);
        pki.issue(OPERATOR, Role::Operator);
        pki.issue(VIEWER, Role::Viewer);
        let cfg = write_coordinator_config_with_top(dir.path(), &pki, "127.0.0.1:0", top, &extras);
        let addr_file = dir.path().join("coordinator.addr");
        let mut coordinator = spawn_coordinator(dir.path(), &cfg, &extras);
        let addr = eventually("coordinator to write its address", || {
            if let Some(status) = coordinator.exited() {
                return Ok(Err(format!("coordinator exited with {status}: {}", coordinator.log_text())));
            }
            fs::read_to_string(&addr_file).map(Ok).map_err(|e| e.to_string())
        });
        let addr = addr.unwrap_or_else(|e| panic!("{e}"));
        let cluster = Self { dir, pki, extras, coordinator, addr, agents: vec![] };
        cluster.wait_ready();
        cluster
    }
}
