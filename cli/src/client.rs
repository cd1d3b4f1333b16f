//! Calls to the coordinator, with failures turned into messages a person
//! can act on.

use crate::settings::Settings;
use ripcord_proto::v1::control_client::ControlClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach coordinator at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{0}")]
    Call(String),
}

/// Connects to the coordinator named in `settings`.
pub async fn connect(settings: &Settings) -> Result<ControlClient<Channel>, Error> {
    let tls = ripcord_pki::tls::client_config(&settings.tls, settings.server_name.as_deref())
        .map_err(|e| Error::Setup(e.to_string()))?;
    let endpoint = Endpoint::from_shared(settings.coordinator.clone())
        .map_err(|e| Error::Setup(format!("bad coordinator address \"{}\": {e}", settings.coordinator)))?
        .tls_config(tls)
        .map_err(|e| Error::Setup(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| Error::Connect {
        url: settings.coordinator.clone(),
        reason: ripcord_pki::tls::explain_transport_error(&e),
    })?;
    Ok(ControlClient::new(channel))
}

/// Explains a failed call. TLS refusals surface as transport errors on the
/// first call (TLS 1.3 finishes the client's side of the handshake before
/// the server has judged its certificate).
pub fn explain(status: &tonic::Status) -> Error {
    use tonic::Code;
    match status.code() {
        Code::PermissionDenied => Error::Call(format!("refused: {}", status.message())),
        Code::Unauthenticated => Error::Call(format!("not authenticated: {}", status.message())),
        Code::Unavailable | Code::Unknown | Code::Internal if std::error::Error::source(status).is_some() => {
            Error::Call(ripcord_pki::tls::explain_transport_error(status))
        }
        code => Error::Call(format!("{}: {}", code.description(), status.message())),
    }
}
