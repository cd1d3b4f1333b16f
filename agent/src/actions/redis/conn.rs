//! Connecting to an allowed instance through the `redis` crate (RESP2), with
//! AUTH from its password file, and sending commands with timeouts. No
//! message ever holds the password.

use super::error::{Error, shown};
use crate::policy::Redis;
use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, ProtocolVersion,
    RedisConnectionInfo, RedisError, ServerError, Value as Reply,
};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// How long connecting (with AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one instance, through the `redis` crate (RESP2).
pub(crate) struct Conn(MultiplexedConnection);

/// Why there is no connection. Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The instance refused the password from the password file.
    #[error("redis instance {instance} refused the password in {}", shown(.file))]
    Password { instance: String, file: Option<PathBuf> },
    #[error("cannot read password file {}: {source}", path.display())]
    PasswordFile { path: PathBuf, source: io::Error },
    #[error("redis address \"{0}\" is not host:port")]
    NotHostPort(String),
    #[error("redis address \"{address}\": {source}")]
    Address { address: String, source: RedisError },
    #[error("connecting to redis at {0} timed out")]
    Timeout(String),
    #[error("cannot connect to redis at {address}: {source}")]
    Connect { address: String, source: RedisError },
}

impl Conn {
    /// Connects to an allowed instance and, if it has a password file,
    /// authenticates with the password in it.
    pub(crate) async fn open(inst: &Redis) -> Result<Self, Unreachable> {
        let password = match &inst.password_file {
            Some(p) => Some(
                fs::read_to_string(p)
                    .map_err(|source| Unreachable::PasswordFile { path: p.clone(), source })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let (host, port) = inst
            .address
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
            .ok_or_else(|| Unreachable::NotHostPort(inst.address.clone()))?;
        let mut settings = RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP2);
        if let Some(p) = &password {
            settings = settings.set_password(p);
        }
        let address = |source| Unreachable::Address { address: inst.address.clone(), source };
        let info = ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(address)?
            .set_redis_settings(settings);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(ANSWER_TIMEOUT));
        let client = Client::open(info).map_err(address)?;
        // The crate's errors name neither the password nor the AUTH command's arguments.
        match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(c) => Ok(Conn(c)),
            Err(e) if e.kind() == ErrorKind::AuthenticationFailed => {
                Err(Unreachable::Password { instance: inst.name.clone(), file: inst.password_file.clone() })
            }
            Err(e) if e.is_timeout() => Err(Unreachable::Timeout(inst.address.clone())),
            Err(source) => Err(Unreachable::Connect { address: inst.address.clone(), source }),
        }
    }

    /// Sends one command and reads its reply. A Redis error reply is
    /// returned as `Reply::ServerError`, not as `Err`.
    pub(crate) async fn call(&mut self, args: &[&str]) -> Result<Reply, Error> {
        let mut cmd = Cmd::new();
        for a in args {
            cmd.arg(*a);
        }
        self.send(args.first().copied().unwrap_or_default(), &cmd).await
    }

    /// `call` for a command already built; `name` is for messages.
    pub(super) async fn send(&mut self, name: &str, cmd: &Cmd) -> Result<Reply, Error> {
        self.0.req_packed_command(cmd).await.map_err(|source| {
            let command = name.to_string();
            if source.is_timeout() { Error::Timeout { command } } else { Error::Command { command, source } }
        })
    }

    /// `call`, with an error reply turned into `Err`.
    pub(super) async fn ok(&mut self, args: &[&str]) -> Result<Reply, Error> {
        match self.call(args).await? {
            Reply::ServerError(e) => {
                Err(Error::ErrorReply { command: args.first().copied().unwrap_or_default().into(), said: said(&e) })
            }
            r => Ok(r),
        }
    }
}

/// An error reply as Redis wrote it (`ERR …`, `NOAUTH …`).
pub(super) fn said(e: &ServerError) -> String {
    match e.details() {
        Some(d) => format!("{} {d}", e.code()),
        None => e.code().to_string(),
    }
}

/// A reply as text (simple and bulk strings, integers).
pub(super) fn reply_text(r: &Reply) -> Option<String> {
    ::redis::from_redis_value_ref::<String>(r).ok()
}

/// Connects to an allowed instance; a connection that fails is explained.
pub(super) async fn connect(inst: &Redis) -> Result<Conn, Error> {
    Conn::open(inst).await.map_err(|reason| match reason {
        Unreachable::Password { instance, file } => Error::Password { instance, file },
        reason => Error::Unreachable { instance: inst.name.clone(), service: inst.service.clone(), reason },
    })
}

/// Whether the instance answers PING with PONG.
pub async fn pings(inst: &Redis) -> bool {
    match Conn::open(inst).await {
        Ok(mut c) => matches!(c.call(&["PING"]).await, Ok(Reply::SimpleString(s)) if s == "PONG"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::perform;
    use super::super::testkit::{TestRedis, err_of};
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_password_file_is_used_and_a_refusal_never_shows_a_password() {
        const RIGHT: &str = "pw-right-5f2c9e";
        const WRONG: &str = "pw-wrong-81d0a4";
        let r = TestRedis::with_password(RIGHT);
        r.up().await; // waits for PING, with the password
        r.write_keys("k", 0..3).await;
        assert_eq!(r.act("redis.dbsize", json!({})).await.unwrap()["keys"], 3);

        let file = r.inst().password_file.clone().unwrap();
        fs::write(&file, format!("{WRONG}\n")).unwrap();
        let e = err_of(r.act("redis.ping", json!({})).await);
        assert!(
            e.contains("redis instance cache refused the password in") && e.contains(&file.display().to_string()),
            "{e}"
        );
        assert!(!pings(r.inst()).await);

        // Without a password Redis says it wants one.
        let mut inst = r.inst().clone();
        inst.password_file = None;
        let e2 = err_of(perform("redis.ping", &inst, &json!({}), &r.ctx()).await);
        assert!(e2.contains("NOAUTH"), "{e2}");

        let out = r.out.text();
        for shown in [&e, &e2, &out] {
            assert!(!shown.contains(RIGHT) && !shown.contains(WRONG), "a password is shown: {shown}");
        }
    }
}
