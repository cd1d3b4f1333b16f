//! A small HTTP/1.1 server for tests: records every request, treats the
//! `Idempotency-Key` header the way a careful receiver would (the first
//! request with a key is the side effect, repeats are recognised as
//! duplicates), can be told to fail the first N requests to a path or to
//! hold its answers until released, and answers paths under `/slow` after
//! 120 ms.
//!
//! Also the pieces every test server here shares: [`read_request`] (one
//! request off a keep-alive connection), [`serve_connections`] (a thread
//! per connection) and [`percent_decode`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub key: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct State {
    requests: Vec<Seen>,
    /// Idempotency key → how many times it arrived.
    keys: BTreeMap<String, usize>,
    /// Path → failures left to serve.
    fail: BTreeMap<String, usize>,
    /// Path → (status, body) to answer.
    answers: BTreeMap<String, (u16, String)>,
    /// Paths whose requests are recorded but not answered until released.
    held: std::collections::BTreeSet<String>,
}

#[derive(Clone)]
pub struct TestServer {
    pub addr: String,
    state: Arc<Mutex<State>>,
    released: Arc<Condvar>,
}

impl TestServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let released = Arc::new(Condvar::new());
        let (s, r) = (Arc::clone(&state), Arc::clone(&released));
        serve_connections(listener, move |stream| {
            let _ = serve(stream, &s, &r);
        });
        Self { addr, state, released }
    }

    /// Requests to `path` are recorded on arrival but answered only after
    /// [`TestServer::release`] (or the test's patience runs out): a side
    /// effect caught in flight.
    pub fn hold(&self, path: &str) {
        self.state.lock().unwrap().held.insert(path.to_string());
    }

    pub fn release(&self, path: &str) {
        self.state.lock().unwrap().held.remove(path);
        self.released.notify_all();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next `n` requests to `path` get a 500.
    pub fn fail_next(&self, path: &str, n: usize) {
        self.state.lock().unwrap().fail.insert(path.to_string(), n);
    }

    /// Requests to `path` get `status` and `body`.
    pub fn answer(&self, path: &str, status: u16, body: &str) {
        self.state.lock().unwrap().answers.insert(path.to_string(), (status, body.to_string()));
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Idempotency key → times received.
    pub fn keys(&self) -> BTreeMap<String, usize> {
        self.state.lock().unwrap().keys.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>, released: &Condvar) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(req) = read_request(&mut reader)? {
        let key = req.header("idempotency-key").map(str::to_string);
        let authorization = req.header("authorization").map(str::to_string);
        // Recorded and answered by path and query, as sent.
        let path = req.target;
        let (status, reply) = {
            let mut st = state.lock().unwrap();
            st.requests.push(Seen {
                method: req.method,
                path: path.clone(),
                key: key.clone(),
                authorization,
                body: String::from_utf8_lossy(&req.body).into_owned(),
            });
            if let Some(k) = &key {
                *st.keys.entry(k.clone()).or_default() += 1;
            }
            match st.fail.get_mut(&path) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    (500, "{\"ok\":false}".to_string())
                }
                _ => st.answers.get(&path).cloned().unwrap_or((200, "{\"ok\":true,\"ts\":\"now\"}".to_string())),
            }
        };
        let mut st = state.lock().unwrap();
        let until = std::time::Instant::now() + crate::patience();
        while st.held.contains(&path) && std::time::Instant::now() < until {
            st = released.wait_timeout(st, std::time::Duration::from_millis(100)).unwrap().0;
        }
        drop(st);
        if path.starts_with("/slow") {
            // A side effect that takes a while: restarts land in the middle.
            std::thread::sleep(std::time::Duration::from_millis(120));
        }
        let reason = if status < 400 { "OK" } else { "Error" };
        write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
        stream.flush()?;
    }
    Ok(())
}

/// One request as the test servers read it.
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The path, not decoded.
    pub path: String,
    pub raw_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The query parameters, percent-decoded.
    pub fn query(&self) -> BTreeMap<String, String> {
        self.raw_query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// Whether the client asked to close the connection after this one.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// Reads the next request off a keep-alive connection (a `Content-Length`
/// or chunked body); `None` when the client has gone.
pub fn read_request<S: Read>(reader: &mut BufReader<S>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk)?;
            chunk.truncate(n);
            body.extend(chunk);
        }
    } else if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body = vec![0u8; len];
        reader.read_exact(&mut body)?;
    }
    let (path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    Ok(Some(Request { method, target, path, raw_query, headers, body }))
}

/// `%XX` and `+` decoded.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = if b[i] == b'%' && i + 2 < b.len() { std::str::from_utf8(&b[i + 1..i + 3]).ok() } else { None };
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves every connection `listener` accepts on a thread of its own.
pub fn serve_connections(listener: TcpListener, serve: impl Fn(TcpStream) + Send + Sync + 'static) {
    let serve = Arc::new(serve);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let serve = Arc::clone(&serve);
            std::thread::spawn(move || serve(stream));
        }
    });
}
