//! Real cloud-side services for tests, from the Python venv that
//! `scripts/test` prepares (`target/test-venv`, or `RIPCORD_TEST_VENV`):
//!
//! - [`Moto`]: `moto_server`, AWS Secrets Manager (and the rest of AWS) on a
//!   loopback port;
//! - [`NxMongo`]: `nx-27017`, a MongoDB wire-protocol server on SQLite;
//!   [`NxMongo::start_with_users`] adds SCRAM-SHA-256 users (`nx_scram.py`).
//!
//! Each starts in a temp dir of its own on a free loopback port, is ready
//! when it answers (polled with a bound, no fixed sleeps) and is killed when
//! dropped. Both can run a Python snippet from the same venv (boto3 and
//! pymongo come with them) to seed data or look behind ripcord's back with
//! an independent client.

use crate::{Proc, eventually};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const INSTALL_HINT: &str = "run scripts/test (it installs moto[server] and nx-27017 into target/test-venv)";

/// The test venv: `RIPCORD_TEST_VENV`, else `<workspace>/target/test-venv`.
pub fn venv() -> PathBuf {
    match std::env::var_os("RIPCORD_TEST_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("test-venv"),
    }
}

/// A program of the venv; panics with how to install it when missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(p.exists(), "{} is missing: {INSTALL_HINT}", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Runs `script` with the venv's Python and `env`; returns stdout, panics
/// with stderr on failure.
fn python(script: &str, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg("-c").arg(script);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the venv's python");
    let (stdout, stderr) = crate::text(&out);
    assert!(out.status.success(), "python failed ({}):\n{script}\n--- stderr ---\n{stderr}", out.status);
    stdout
}

/// Waits until `ready` holds, failing early with the log if the process died.
fn wait_ready(proc_: &mut Proc, what: &str, ready: impl Fn() -> Result<(), String>) {
    eventually(what, || {
        if let Some(status) = proc_.exited() {
            panic!("{} exited with {status} before it was ready:\n{}", proc_.name, proc_.log_text());
        }
        ready()
    });
}

// ---------------------------------------------------------------------------
// moto_server
// ---------------------------------------------------------------------------

/// `moto_server` on a loopback port. Any credentials work; use
/// [`Moto::ACCESS_KEY`]/[`Moto::SECRET_KEY`] and [`Moto::REGION`].
pub struct Moto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub proc_: Proc,
}

impl Moto {
    pub const ACCESS_KEY: &'static str = "testing-access-key";
    pub const SECRET_KEY: &'static str = "testing-secret-key";
    pub const REGION: &'static str = "us-east-1";

    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server that checks request signatures against its own IAM users
    /// (`INITIAL_NO_AUTH_ACTION_COUNT=0`): every key is unknown to it, so
    /// every call is refused as a client with bad credentials would be.
    pub fn start_checking_auth() -> Self {
        Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with(env: &[(&str, &str)]) -> Self {
        let bin = venv_bin("moto_server");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]).current_dir(dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc_ = Proc::spawn("moto_server", cmd, dir.path().join("moto.log"));
        wait_ready(&mut proc_, "moto_server to answer GET /moto-api/", || match http_status(port, "/moto-api/") {
            Ok(200) => Ok(()),
            Ok(s) => Err(format!("HTTP {s}")),
            Err(e) => Err(e),
        });
        Self { port, dir, proc_ }
    }

    /// The endpoint URL to give the SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs a Python snippet with `sm`, a boto3 Secrets Manager client on
    /// this server, already defined. Returns stdout.
    pub fn python(&self, script: &str) -> String {
        let prelude = "import boto3, json, os\n\
             sm = boto3.client('secretsmanager', endpoint_url=os.environ['MOTO_ENDPOINT'], region_name=os.environ['AWS_DEFAULT_REGION'])\n";
        python(
            &format!("{prelude}{script}"),
            &[
                ("MOTO_ENDPOINT", self.endpoint()),
                ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.into()),
                ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
                ("AWS_DEFAULT_REGION", Self::REGION.into()),
            ],
        )
    }

    /// Creates a secret holding `value` (a string); returns its version id.
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        let out = self.python(&format!(
            "r = sm.create_secret(Name={name}, SecretString={value})\nprint(r['VersionId'])",
            name = py_str(name),
            value = py_str(value)
        ));
        out.trim().to_string()
    }

    /// The current value of a secret.
    pub fn secret_value(&self, name: &str) -> String {
        let out =
            self.python(&format!("print(json.dumps(sm.get_secret_value(SecretId={})['SecretString']))", py_str(name)));
        serde_json::from_str(out.trim()).expect("secret value")
    }

    /// Version id → staging labels, every version including unlabelled ones.
    pub fn versions(&self, name: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let out = self.python(&format!(
            "r = sm.list_secret_version_ids(SecretId={}, IncludeDeprecated=True)\n\
             print(json.dumps({{v['VersionId']: v.get('VersionStages', []) for v in r['Versions']}}))",
            py_str(name)
        ));
        serde_json::from_str(out.trim()).expect("versions JSON")
    }
}

/// A Python string literal (JSON's is one).
fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// The status of `GET path` on 127.0.0.1:port.
fn http_status(port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("bad answer: {line:?}"))
}

// ---------------------------------------------------------------------------
// nx-27017
// ---------------------------------------------------------------------------

/// `nx-27017` on a loopback port, one SQLite file per database in its
/// temp dir. Its `listIndexes` reports SQLite's index names and loses `-1`
/// directions: do not assert index names or directions read back from it.
pub struct NxMongo {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub proc_: Proc,
    /// The SCRAM user [`NxMongo::python`] logs in as, if it has users.
    login: Option<(String, String)>,
}

/// The launcher that adds SCRAM-SHA-256 to nx-27017.
const NX_SCRAM: &str = include_str!("nx_scram.py");

impl NxMongo {
    /// A server without authentication: any client may do anything.
    pub fn start() -> Self {
        Self::spawn(&[])
    }

    /// A server that, like a real MongoDB with access control, refuses
    /// every command but the handshake until the client has logged in with
    /// SCRAM-SHA-256 as one of `users` (name, password).
    pub fn start_with_users(users: &[(&str, &str)]) -> Self {
        assert!(!users.is_empty(), "start_with_users needs a user");
        Self::spawn(users)
    }

    fn spawn(users: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let port = free_port();
        let mut cmd = if users.is_empty() {
            Command::new(venv_bin("nx-27017"))
        } else {
            let launcher = dir.path().join("nx_scram.py");
            std::fs::write(&launcher, NX_SCRAM).expect("write nx_scram.py");
            let map: serde_json::Map<String, serde_json::Value> =
                users.iter().map(|(u, p)| (u.to_string(), serde_json::Value::from(*p))).collect();
            let mut cmd = Command::new(venv_bin("python"));
            cmd.arg(&launcher)
                .env("NX_SCRAM_USERS", serde_json::Value::Object(map).to_string())
                .env("NX_SCRAM_AUTH_LOG", dir.path().join("auth.log"));
            cmd
        };
        cmd.args(["--host", "127.0.0.1", "-p", &port.to_string()])
            .arg("--data-dir")
            .arg(&data)
            // Its defaults are shared files in /tmp.
            .arg("--log-file")
            .arg(dir.path().join("nx-27017.server.log"))
            .arg("--pid-file")
            .arg(dir.path().join("nx-27017.pid"))
            .current_dir(dir.path());
        let mut proc_ = Proc::spawn("nx-27017", cmd, dir.path().join("nx-27017.log"));
        wait_ready(&mut proc_, "nx-27017 to answer hello", || hello(port));
        let login = users.first().map(|(u, p)| (u.to_string(), p.to_string()));
        Self { port, dir, proc_, login }
    }

    /// The users that have logged in so far, one entry per successful
    /// SCRAM authentication, in order.
    pub fn logins(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `mongodb://127.0.0.1:PORT/?directConnection=true`.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// The URI with user info (checked only by a server with users).
    pub fn uri_with_credentials(&self, user: &str, password: &str) -> String {
        format!("mongodb://{user}:{password}@127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Runs a Python snippet with `client`, a pymongo client on this
    /// server, and `datetime` already defined. Returns stdout.
    pub fn python(&self, script: &str) -> String {
        let prelude = "import datetime, json, os\nfrom pymongo import MongoClient\n\
             client = MongoClient(os.environ['MONGO_URI'], serverSelectionTimeoutMS=5000)\n";
        let uri = match &self.login {
            Some((user, password)) => self.uri_with_credentials(user, password),
            None => self.uri(),
        };
        python(&format!("{prelude}{script}"), &[("MONGO_URI", uri)])
    }
}

/// Sends an OP_MSG `{hello: 1, $db: "admin"}` and checks the reply says ok.
fn hello(port: u16) -> Result<(), String> {
    let mut body = Vec::new();
    // BSON: int32 hello = 1, string $db = "admin".
    body.push(0x10);
    body.extend_from_slice(b"hello\0");
    body.extend_from_slice(&1i32.to_le_bytes());
    body.push(0x02);
    body.extend_from_slice(b"$db\0");
    body.extend_from_slice(&6i32.to_le_bytes());
    body.extend_from_slice(b"admin\0");
    body.push(0);
    let mut doc = ((body.len() + 4) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    let mut msg = Vec::new();
    let len = 16 + 4 + 1 + doc.len();
    msg.extend_from_slice(&(len as i32).to_le_bytes());
    msg.extend_from_slice(&1i32.to_le_bytes()); // requestID
    msg.extend_from_slice(&0i32.to_le_bytes()); // responseTo
    msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
    msg.extend_from_slice(&0u32.to_le_bytes()); // flagBits
    msg.push(0); // section kind 0: body
    msg.extend_from_slice(&doc);

    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    s.write_all(&msg).map_err(|e| e.to_string())?;
    let mut header = [0u8; 16];
    s.read_exact(&mut header).map_err(|e| e.to_string())?;
    let total = i32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let op = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if op != 2013 || !(21..16 * 1024 * 1024).contains(&total) {
        return Err(format!("unexpected reply: opcode {op}, length {total}"));
    }
    let mut rest = vec![0u8; total as usize - 16];
    s.read_exact(&mut rest).map_err(|e| e.to_string())?;
    // `ok` as a double 1.0 (0x01 "ok\0" 00..f03f) or an int32 1.
    let ok_double = [&[0x01u8][..], b"ok\0", &1.0f64.to_le_bytes()].concat();
    let ok_int = [&[0x10u8][..], b"ok\0", &1i32.to_le_bytes()].concat();
    if rest.windows(ok_double.len()).any(|w| w == ok_double) || rest.windows(ok_int.len()).any(|w| w == ok_int) {
        Ok(())
    } else {
        Err("hello did not answer ok: 1".into())
    }
}
