//! A minimal Redis client (RESP2 over TCP): enough for PING, DBSIZE, INFO,
//! CONFIG, SCAN, UNLINK. Keeps the agent free of a client library.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

pub struct Conn {
    io: BufReader<TcpStream>,
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    /// Connects and, with a password, authenticates.
    pub async fn open(address: &str, password: Option<&str>) -> Result<Self, String> {
        let tcp = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to redis at {address} timed out"))?
            .map_err(|e| format!("cannot connect to redis at {address}: {e}"))?;
        let mut c = Conn { io: BufReader::new(tcp) };
        if let Some(p) = password
            && let Reply::Error(e) = c.call(&["AUTH", p]).await?
        {
            return Err(format!("redis refused the password: {e}"));
        }
        Ok(c)
    }

    /// Sends one command and reads its reply. A Redis error reply is
    /// returned as `Reply::Error`, not as `Err`.
    pub async fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        let io = async {
            self.io.get_mut().write_all(&buf).await.map_err(|e| format!("redis write: {e}"))?;
            read_reply(&mut self.io).await
        };
        tokio::time::timeout(IO_TIMEOUT, io).await.map_err(|_| format!("redis did not answer {} in time", args[0]))?
    }

    /// `call`, with an error reply turned into `Err`.
    pub async fn ok(&mut self, args: &[&str]) -> Result<Reply, String> {
        match self.call(args).await? {
            Reply::Error(e) => Err(format!("redis {}: {e}", args[0])),
            r => Ok(r),
        }
    }
}

fn read_reply<'a>(
    io: &'a mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + 'a>> {
    Box::pin(async move {
        let mut line = String::new();
        let n = io.read_line(&mut line).await.map_err(|e| format!("redis read: {e}"))?;
        if n == 0 {
            return Err("redis closed the connection".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1.min(line.len()));
        let num = || rest.parse::<i64>().map_err(|_| format!("bad redis reply {line:?}"));
        Ok(match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(num()?),
            "$" => {
                let len = num()?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
                    io.read_exact(&mut b).await.map_err(|e| format!("redis read: {e}"))?;
                    b.truncate(b.len() - 2);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let len = num()?;
                if len < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::new();
                    for _ in 0..len {
                        items.push(read_reply(io).await?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(format!("bad redis reply {line:?}")),
        })
    })
}

/// Connects to an allowed instance, reading its password file if any.
pub async fn connect(inst: &crate::policy::Redis) -> Result<Conn, String> {
    let password = match &inst.password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read password file {}: {e}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Conn::open(&inst.address, password.as_deref()).await
}

/// Whether the instance answers PING with PONG.
pub async fn pings(inst: &crate::policy::Redis) -> bool {
    match connect(inst).await {
        Ok(mut c) => matches!(c.call(&["PING"]).await, Ok(Reply::Status(s)) if s == "PONG"),
        Err(_) => false,
    }
}
