//! `veil serve`: the proxy over HTTP/1.1 and HTTP/2 (hyper 1), with TLS
//! through rustls when a certificate is given. Honours `PORT` (Cloud Run);
//! on SIGTERM or Ctrl-C it stops accepting and lets in-flight requests finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use veil_proxy::proxy::{Proxy, RequestContext};

use crate::runtime::{self, Host, Options, ENV_PORT};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default 0.0.0.0:$PORT, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Connector whose shipped rules to serve.
    #[arg(long)]
    connector: Option<String>,
    /// A rule file instead of the shipped rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Rule variant of the shipped rules: default or clear-ids.
    #[arg(long)]
    variant: Option<String>,
    /// Graph base URL.
    #[arg(long)]
    upstream: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve without caller authentication (development only).
    #[arg(long)]
    allow_unauthenticated: bool,
}

/// Largest request body accepted (requests carry none; this bounds abuse).
const MAX_REQUEST_BODY: usize = 64 * 1024;

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let opts = Options {
        connector: a.connector.clone(),
        rules: a.rules.clone(),
        variant: a.variant.clone(),
        upstream: a.upstream.clone(),
        allow_unauthenticated: a.allow_unauthenticated,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let proxy = runtime::from_env(Host::Server, &opts).await?;
        let listen = match a.listen {
            Some(l) => l,
            None => match runtime::list(veil_proxy::config::var(ENV_PORT)).first() {
                Some(p) => format!("0.0.0.0:{p}").parse().context("PORT")?,
                None => "127.0.0.1:8080".parse()?,
            },
        };
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        serve(listener, proxy, tls, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a certificate chain and key into a TLS acceptor (HTTP/2 and HTTP/1.1 by ALPN).
pub fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("cannot read {}", cert.display()))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("cannot read {}", key.display()))?,
    ))
    .with_context(|| format!("{}: not a PEM private key", key.display()))?
    .ok_or_else(|| anyhow!("{}: no private key found", key.display()))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serves `proxy` on `listener` until `shutdown` completes, then waits (up
/// to 30 s) for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(target: "veil::serve", %addr, tls = tls.is_some(), connector = %proxy.health().connector,
        caller_auth = %proxy.health().caller_auth, token_provider = %proxy.health().token_provider, "listening");
    for w in &proxy.health().warnings {
        tracing::warn!(target: "veil::serve", warning = %w, "configuration warning");
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "veil::serve", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(proxy, req, peer).await) }
        });
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(tls_stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(tls_stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    tracing::info!(target: "veil::serve", "shutting down: waiting for in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!(target: "veil::serve", "in-flight requests did not finish within 30 s");
        }
    }
    Ok(())
}

async fn handle(
    proxy: Proxy,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = veil_proxy::proxy::ProxyError::new(
                veil_proxy::proxy::Phase::Normalize,
                veil_proxy::proxy::ErrorKind::BadRequest,
                "the request body is too large or could not be read",
            );
            return veil_proxy::proxy::respond::error_response(&e, Vec::new()).map(Full::new);
        }
    };
    let mut req = hyper::Request::from_parts(parts, body);
    req.extensions_mut().insert(RequestContext {
        remote_ip: Some(peer.ip()),
        aws_caller_arn: None,
        host_built_uri: false,
        request_id: Some(crate::logging::request_id()),
    });
    proxy.handle(req).await.map(Full::new)
}
