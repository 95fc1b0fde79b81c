//! The Graph client's connector: direct, or through an egress proxy's
//! `CONNECT` tunnel (`HTTPS_PROXY` / `ALL_PROXY` / `NO_PROXY`).

use super::*;

pub(super) type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<Route>,
    http_body_util::Empty<Bytes>,
>;

pub(super) type TcpConnector = hyper_util::client::legacy::connect::HttpConnector;
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How Veil reaches Graph's host: directly, or through an egress proxy by
/// a `CONNECT` tunnel (decided once: the host is always the same).
#[derive(Clone)]
pub(super) enum Route {
    Direct(TcpConnector),
    Tunnel(hyper_util::client::legacy::connect::proxy::Tunnel<TcpConnector>),
}

impl tower::Service<http::Uri> for Route {
    type Response = <TcpConnector as tower::Service<http::Uri>>::Response;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        match self {
            Route::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Route::Tunnel(t) => t.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, dst: http::Uri) -> Self::Future {
        match self {
            Route::Direct(c) => {
                let connecting = c.call(dst);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Route::Tunnel(t) => {
                let connecting = t.call(dst);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        }
    }
}

/// Direct, or a tunnel through the proxy that applies to Graph's host.
pub(super) fn route(
    http: TcpConnector,
    base: &http::Uri,
    proxies: &hyper_util::client::proxy::matcher::Matcher,
) -> Result<Route, UpstreamConfigError> {
    let Some(proxy) = proxies.intercept(base) else {
        return Ok(Route::Direct(http));
    };
    let proxy_uri = proxy.uri().clone();
    if proxy_uri.scheme_str() != Some("http") {
        return Err(UpstreamConfigError::EgressProxy {
            scheme: proxy_uri.scheme_str().unwrap_or("?").to_string(),
        });
    }
    tracing::info!(target: "veil::upstream",
        proxy = %format!("{}:{}", proxy_uri.host().unwrap_or("?"), proxy_uri.port_u16().unwrap_or(80)),
        "Graph is reached through an egress proxy (CONNECT tunnel)");
    let mut tunnel = hyper_util::client::legacy::connect::proxy::Tunnel::new(proxy_uri, http);
    if let Some(auth) = proxy.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    Ok(Route::Tunnel(tunnel))
}
