//! Who is calling, and may they?
//!
//! Authentication happens once per request, for every service, in
//! [`AuthnLayer`]: the client's certificate chain is judged against the
//! ripcord CA (see `ripcord_pki::tls::ServerTls`) and its identity is put in
//! the request's extensions. A refused client gets `UNAUTHENTICATED` with
//! the reason, and the coordinator logs it.
//!
//! Authorization happens in each handler, first thing, with [`authorize`]:
//! the identity's role must allow the access the call needs
//! (`ripcord_engine::auth::Access`); otherwise `PERMISSION_DENIED`, logged.

use ripcord_engine::Identity;
use ripcord_engine::auth::Access;
use ripcord_pki::tls::ServerTls;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Status};
use tracing::warn;

/// Authenticates every request; see the module docs.
#[derive(Clone, Debug)]
pub struct AuthnLayer {
    tls: ServerTls,
}

impl AuthnLayer {
    pub fn new(tls: ServerTls) -> Self {
        Self { tls }
    }
}

impl<S> tower::Layer<S> for AuthnLayer {
    type Service = Authn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn { inner, tls: self.tls.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct Authn<S> {
    inner: S,
    tls: ServerTls,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Authn<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
        let peer = info.and_then(|i| i.get_ref().remote_addr());
        let certs = info.and_then(|i| i.peer_certs());
        match self.tls.authenticate(certs.as_deref().map(Vec::as_slice)) {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
                Box::pin(self.inner.call(req))
            }
            Err(reason) => {
                let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
                warn!(%peer, call = %req.uri().path(), %reason, "call refused: not authenticated");
                let response = Status::unauthenticated(reason.to_string()).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// The caller's identity, if its role allows `access` for `call`.
pub fn authorize<T>(request: &Request<T>, access: Access, call: &str) -> Result<Identity, Status> {
    let Some(identity) = request.extensions().get::<Identity>().cloned() else {
        // Only reachable if a service is mounted without AuthnLayer.
        warn!(call, "call refused: request was not authenticated");
        return Err(Status::unauthenticated("request was not authenticated"));
    };
    if !identity.role.may(access) {
        let peer = request.remote_addr().map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let allowed: Vec<&str> = access.allowed_roles().iter().map(|r| r.as_str()).collect();
        warn!(%peer, call, caller = %identity.name, role = %identity.role, "call refused: role not allowed");
        return Err(Status::permission_denied(format!(
            "{} \"{}\" may not call {call}: it needs role {}",
            identity.role,
            identity.name,
            allowed.join(" or ")
        )));
    }
    Ok(identity)
}
