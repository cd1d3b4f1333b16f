//! A stand-in for the chat application's API, for end-to-end tests of the
//! runbooks that move the app to another database.
//!
//! An HTTP/1.1 server on 127.0.0.1:0 that, on every request, reads its
//! current MongoDB URI from a [`UriSource`] (a FakeKube deployment's
//! `MONGO_URI`, a Secrets Manager secret's `mongo_uri` on moto, or a fixed
//! value), so switching the connection string really changes where it reads:
//!
//! - `GET /health` → 200 `{"ok":true,"ts":"…","db":"host:port"}` when that
//!   MongoDB lists the collections of `chatdb` (it needs a login), else 503 `{"ok":false}`;
//! - `POST /login {"user":"…"}` → 200 if `chatdb.users` holds `{user: …}`,
//!   else 401;
//! - `GET /messages?room=r` → `{"room":"r","count":N,"db":"host:port"}`, the
//!   number of `chatdb.messages` with `roomId: r`.
//!
//! It logs in with the URI's user info, so against a server with users
//! (`NxMongo::start_with_users`) a URI with a wrong or missing password
//! makes every endpoint, `/health` included, answer 503.

use crate::kube_fake::FakeKube;
use mongodb::bson::{Document, doc};
use serde_json::{Value as J, json};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the API finds its MongoDB URI, read again on every request.
#[derive(Clone)]
pub enum UriSource {
    /// The env var `MONGO_URI` of `container` in a FakeKube deployment.
    Kube { kube: Arc<FakeKube>, namespace: String, deployment: String, container: String },
    /// JSON key `mongo_uri` of a Secrets Manager secret on moto at `endpoint`.
    Secret { endpoint: String, secret_id: String },
    /// A fixed URI.
    Fixed(String),
}

impl UriSource {
    /// The current URI, or why there is none.
    pub fn current(&self) -> Result<String, String> {
        match self {
            UriSource::Kube { kube, namespace, deployment, container } => kube
                .env(namespace, deployment, container)
                .get("MONGO_URI")
                .cloned()
                .ok_or_else(|| format!("no MONGO_URI on {namespace}/{deployment}/{container}")),
            UriSource::Secret { endpoint, secret_id } => {
                let value = moto_secret_string(endpoint, secret_id)?;
                let v: J = serde_json::from_str(&value).map_err(|e| format!("secret is not JSON: {e}"))?;
                v["mongo_uri"].as_str().map(str::to_string).ok_or_else(|| "secret has no mongo_uri".to_string())
            }
            UriSource::Fixed(uri) => Ok(uri.clone()),
        }
    }
}

/// One request the API answered.
#[derive(Clone, Debug)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// host:port of the MongoDB it used, if it got that far.
    pub db: Option<String>,
}

/// A running chat API. Clones share the server.
#[derive(Clone)]
pub struct ChatApi {
    pub addr: String,
    served: Arc<Mutex<Vec<Served>>>,
}

struct Shared {
    source: UriSource,
    rt: tokio::runtime::Runtime,
    served: Arc<Mutex<Vec<Served>>>,
}

impl ChatApi {
    pub fn start(source: UriSource) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let served = Arc::new(Mutex::new(Vec::new()));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let shared = Arc::new(Shared { source, rt, served: Arc::clone(&served) });
        crate::http::serve_connections(listener, move |stream| {
            let _ = serve(stream, &shared);
        });
        Self { addr, served }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request answered so far.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().unwrap().clone()
    }

    /// `GET path` (or `POST path` with `body`): status and JSON answer.
    pub fn request(&self, method: &str, path: &str, body: Option<&J>) -> (u16, J) {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the chat API");
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let body = body.map(J::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read answer");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(J::Null))
    }

    /// `GET /health`.
    pub fn health(&self) -> (u16, J) {
        self.request("GET", "/health", None)
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(req) = crate::http::read_request(&mut reader)? {
        let (method, path, query, body) = (&req.method, req.path.as_str(), req.raw_query.as_str(), &req.body);
        let close = req.closes();
        let (status, reply, db) = shared.rt.block_on(answer(&shared.source, method, path, query, body));
        shared.served.lock().unwrap().push(Served { method: method.clone(), path: path.to_string(), status, db });
        let text = reply.to_string();
        let reason = if status < 400 { "OK" } else { "Error" };
        write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
        stream.flush()?;
        if close {
            return Ok(());
        }
    }
    Ok(())
}

/// Connects to `uri`; returns the client and host:port.
async fn connect(uri: &str) -> Result<(mongodb::Client, String), String> {
    let mut opts = mongodb::options::ClientOptions::parse(uri).await.map_err(|e| e.to_string())?;
    opts.server_selection_timeout = Some(Duration::from_secs(2));
    opts.connect_timeout = Some(Duration::from_secs(2));
    let host = opts.hosts.first().map(ToString::to_string).unwrap_or_default();
    let client = mongodb::Client::with_options(opts).map_err(|e| e.to_string())?;
    Ok((client, host))
}

async fn answer(source: &UriSource, method: &str, path: &str, query: &str, body: &[u8]) -> (u16, J, Option<String>) {
    let unavailable = |db: Option<String>| (503, json!({"ok": false}), db);
    let Ok(uri) = source.current() else { return unavailable(None) };
    let Ok((client, host)) = connect(&uri).await else { return unavailable(None) };
    let db = client.database("chatdb");
    let result = match (method, path) {
        // Not `ping`: MongoDB answers that without a login.
        ("GET", "/health") => match db.list_collection_names().await {
            Ok(_) => Ok((200, json!({"ok": true, "ts": now_rfc3339(), "db": host}))),
            Err(e) => Err(e),
        },
        ("POST", "/login") => {
            let user = serde_json::from_slice::<J>(body).ok().and_then(|v| v["user"].as_str().map(str::to_string));
            match user {
                None => Ok((400, json!({"ok": false, "error": "user is required"}))),
                Some(u) => match db.collection::<Document>("users").find_one(doc! {"user": &u}).await {
                    Ok(Some(_)) => Ok((200, json!({"ok": true, "user": u, "db": host}))),
                    Ok(None) => Ok((401, json!({"ok": false, "db": host}))),
                    Err(e) => Err(e),
                },
            }
        }
        ("GET", "/messages") => {
            let room = query
                .split('&')
                .find_map(|p| p.strip_prefix("room="))
                .map(|r| r.replace("%20", " "))
                .unwrap_or_default();
            match db.collection::<Document>("messages").count_documents(doc! {"roomId": &room}).await {
                Ok(n) => Ok((200, json!({"room": room, "count": n, "db": host}))),
                Err(e) => Err(e),
            }
        }
        _ => Ok((404, json!({"ok": false, "error": "not found"}))),
    };
    match result {
        Ok((status, reply)) => (status, reply, Some(host)),
        Err(_) => unavailable(Some(host)),
    }
}

fn now_rfc3339() -> String {
    ripcord_engine::clock::rfc3339(ripcord_pki::clock::now_ms())
}

/// `GetSecretValue` on moto through its JSON protocol (moto does not check
/// signatures by default; the Authorization header only names the region).
pub fn moto_secret_string(endpoint: &str, secret_id: &str) -> Result<String, String> {
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = json!({"SecretId": secret_id}).to_string();
    let mut s = TcpStream::connect(hostport).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: secretsmanager.GetSecretValue\r\nAuthorization: AWS4-HMAC-SHA256 Credential=chat-api/20240101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("GetSecretValue: {}", head.lines().next().unwrap_or("")));
    }
    let v: J = serde_json::from_str(body).map_err(|e| e.to_string())?;
    v["SecretString"].as_str().map(str::to_string).ok_or_else(|| "no SecretString".to_string())
}
