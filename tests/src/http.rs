//! A small HTTP/1.1 server for tests: records every request, treats the
//! `Idempotency-Key` header the way a careful receiver would (the first
//! request with a key is the side effect, repeats are recognised as
//! duplicates), can be told to fail the first N requests to a path, and
//! answers paths under `/slow` after 120 ms.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

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
}

#[derive(Clone)]
pub struct TestServer {
    pub addr: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Self { addr, state }
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

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut len = 0usize;
        let mut key = None;
        let mut authorization = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = Some(v.trim().to_string()),
                    "authorization" => authorization = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let (status, reply) = {
            let mut st = state.lock().unwrap();
            st.requests.push(Seen {
                method,
                path: path.clone(),
                key: key.clone(),
                authorization,
                body: String::from_utf8_lossy(&body).into_owned(),
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
}
