//! `veil serve`: the proxy over HTTP/1.1 and HTTP/2 (hyper 1), with TLS
//! through rustls when a certificate is given. Honours `PORT` (Cloud Run);
//! on SIGTERM or Ctrl-C it stops accepting and lets in-flight requests finish.
//!
//! # Connection discipline
//!
//! Nothing a client does before it is authenticated may hold resources for
//! long, and excess load gets a fast answer, never a hang ([`ServeLimits`],
//! each set by a `VEIL_*` variable or a flag):
//!
//! - **header-read timeout** (`VEIL_HEADER_READ_TIMEOUT_SECS`, 10 s): once
//!   the first byte of a request head has arrived, the whole head must
//!   arrive within this time (the first request of any connection, every
//!   request on HTTP/1.1), else the connection is closed: slow-loris clients
//!   go away. It also bounds the TLS handshake. (Veil keeps this clock
//!   itself, from the bytes it reads, so that a quiet keep-alive or
//!   pre-opened connection is governed by the idle timeout, not by this
//!   one.)
//! - **idle timeout** (`VEIL_IDLE_TIMEOUT_SECS`, 60 s): a connection with no
//!   request in flight for this long is shut down (HTTP/2 included), and
//!   one that never sends anything is closed after this long. Under
//!   pressure the connection cap closes idle connections sooner.
//! - **body-read deadline** (`VEIL_BODY_READ_TIMEOUT_SECS`, 10 s): the whole
//!   request body must arrive in this time (408 `request_timeout`, and the
//!   connection is closed); a body over 64 KiB gets 413 `request_too_large`.
//! - **connection cap** (`VEIL_MAX_CONNECTIONS`, 1024, lowered at start-up
//!   to fit the open-file limit, whose soft value is first raised to the
//!   hard one): at the cap, a new connection closes the longest-idle one
//!   (no request in flight); when every connection is busy, the newcomer
//!   gets 503 `overloaded` with `Retry-After` and is closed.
//! - **in-flight cap** (`VEIL_MAX_IN_FLIGHT`, 256): a request beyond it gets
//!   503 `overloaded` with `Retry-After` at once.
//! - a caller that goes away cancels its request: hyper drops the request's
//!   future, which drops the upstream call (and its connection) with it.
//!
//! The upstream deadline and the bounds on Graph's answers live in
//! [`veil_proxy::proxy::upstream`].
//!
//! # Metrics
//!
//! With `--metrics-listen ADDR` (`VEIL_METRICS_LISTEN`; off by default)
//! Veil serves Prometheus metrics at `GET /metrics` on that separate
//! address, plain HTTP, so the metrics port can stay inside the cluster
//! while the proxy port faces callers ([`veil_proxy::metrics`]).

mod conn;
mod limits;
mod metrics;

use conn::*;
pub use limits::ServeLimits;
use metrics::*;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use veil_proxy::{
    retry_after, ConfigError, ConfigErrors, ErrorKind, Lookup, Metrics, Phase, Problems,
    ProcessEnv, Proxy, ProxyError, Refusal, RequestContext, RequestMetrics, MAX_REQUEST_BODY,
};

use crate::runtime::{
    self, number, Host, Options, ENV_BODY_READ_TIMEOUT, ENV_HEADER_READ_TIMEOUT, ENV_IDLE_TIMEOUT,
    ENV_MAX_CONNECTIONS, ENV_MAX_IN_FLIGHT, ENV_PORT,
};

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
    /// Rule variant of the shipped rules: default, clear-ids, or (outlook-mail, outlook-cal) no-groups, clear-ids-no-groups.
    #[arg(long)]
    variant: Option<String>,
    /// Graph base URL (https://; plain http only to a loopback test server).
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
    /// Keep a psoxy-scheme salt (or key) that fails the strength checks: the
    /// salt of an existing Psoxy deployment being migrated. Flagged in the
    /// health details and the start-up log (VEIL_ALLOW_LEGACY_SHORT_SALT).
    #[arg(long)]
    allow_legacy_short_salt: bool,
    /// Most client connections at once (VEIL_MAX_CONNECTIONS, default 1024).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most requests in flight at once (VEIL_MAX_IN_FLIGHT, default 256).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Seconds to send a request head (VEIL_HEADER_READ_TIMEOUT_SECS, default 10).
    #[arg(long)]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may idle (VEIL_IDLE_TIMEOUT_SECS, default 60).
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// Seconds to send the request body (VEIL_BODY_READ_TIMEOUT_SECS, default 10).
    #[arg(long)]
    body_read_timeout_secs: Option<u64>,
    /// Serve Prometheus metrics at /metrics on this separate address (VEIL_METRICS_LISTEN; off by default).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Veil's public base URL (https://host[:port]): paging links point at it
    /// instead of graph.microsoft.com (VEIL_PUBLIC_BASE_URL; default: Graph's links).
    #[arg(long)]
    public_base_url: Option<String>,
    /// Sanitize by the DOM path instead of streaming (for comparisons).
    #[arg(long, hide = true)]
    dom_sanitizer: bool,
}

/// The address of the metrics listener (`--metrics-listen`).
pub const ENV_METRICS_LISTEN: &str = "VEIL_METRICS_LISTEN";

/// `--listen`, else `0.0.0.0:$PORT` (Cloud Run), else `127.0.0.1:8080`.
fn listen_address(flag: Option<SocketAddr>, env: Lookup<'_>) -> Result<SocketAddr, ConfigError> {
    match (flag, runtime::list(env.get(ENV_PORT)).first()) {
        (Some(l), _) => Ok(l),
        (None, Some(p)) => p
            .parse::<u16>()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
            .map_err(|_| {
                ConfigError::invalid(
                    ENV_PORT,
                    format!(
                        "`{}` is not a port number (1 to 65535)",
                        p.chars().take(20).collect::<String>()
                    ),
                )
            }),
        (None, None) => Ok(SocketAddr::from(([127, 0, 0, 1], 8080))),
    }
}

/// `--metrics-listen`, else [`ENV_METRICS_LISTEN`]; `None`: no metrics listener.
fn metrics_address(
    flag: Option<String>,
    env: Lookup<'_>,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some((value, name)) = flag
        .map(|v| (v, "--metrics-listen"))
        .or_else(|| env.get(ENV_METRICS_LISTEN).map(|v| (v, ENV_METRICS_LISTEN)))
    else {
        return Ok(None);
    };
    value.trim().parse::<SocketAddr>().map(Some).map_err(|_| {
        ConfigError::invalid(
            name,
            format!(
                "`{}` is not an address to listen on: give IP:PORT, such as 0.0.0.0:9090",
                value.chars().take(60).collect::<String>()
            ),
        )
    })
}

/// Connections beyond the cap that may be waiting for their 503 at once;
/// past this they are closed without an answer.
const MAX_REFUSING: usize = 64;
/// How long a connection may take to finish after being asked to shut down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    crate::logging::init();
    let opts = Options {
        connector: a.connector.clone(),
        rules: a.rules.clone(),
        variant: a.variant.clone(),
        upstream: a.upstream.clone(),
        allow_unauthenticated: a.allow_unauthenticated,
        allow_legacy_short_salt: a.allow_legacy_short_salt,
        public_base_url: a.public_base_url.clone(),
        dom_sanitizer: a.dom_sanitizer,
    };
    // Every configuration problem is reported at once, with the proxy's.
    let env = &ProcessEnv;
    let mut problems = Problems::new();
    let limits = problems.absorb(ServeLimits::from_args(&a, env));
    let listen = problems.check(listen_address(a.listen, env));
    let metrics_listen = problems.check(metrics_address(a.metrics_listen.clone(), env));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let proxy = runtime::start(Host::Server, &opts, env, problems).await?;
        // `start` fails when any of these had a problem.
        let (Some(limits), Some(listen), Some(metrics_listen)) = (limits, listen, metrics_listen)
        else {
            anyhow::bail!("configuration problems");
        };
        let limits = limits.fit_open_files();
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
            _ => None,
        };
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let metrics = match metrics_listen {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for metrics"))?;
                Some(start_metrics(l, &proxy)?)
            }
            None => None,
        };
        serve_with(listener, proxy, tls, limits, metrics, shutdown_signal()).await
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

/// Serves `proxy` on `listener` with the default [`ServeLimits`].
pub async fn serve(
    listener: TcpListener,
    proxy: Proxy,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, proxy, tls, ServeLimits::default(), None, shutdown).await
}

/// Serves `proxy` on `listener` until `shutdown` completes, then waits (up
/// to 30 s) for in-flight requests.
pub async fn serve_with(
    listener: TcpListener,
    proxy: Proxy,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ServeLimits,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(target: "veil::serve", %addr, tls = tls.is_some(), connector = %proxy.health().connector,
        caller_auth = %proxy.health().caller_auth, token_provider = %proxy.health().token_provider,
        max_connections = limits.max_connections, max_in_flight = limits.max_in_flight,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        body_read_timeout_secs = limits.body_read_timeout.as_secs(), "listening");
    for w in &proxy.health().warnings {
        tracing::warn!(target: "veil::serve", warning = %w, "configuration warning");
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header-read timeout is kept by `serve_connection` (hyper's own
    // would also cut idle keep-alive connections at the same bound).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        proxy,
        metrics,
        limits,
        builder,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        shutdown: stopped,
    });
    let conns = Arc::new(Connections::default());
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
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
        if conns.len() >= limits.max_connections && !conns.evict_idlest() {
            // Every connection is busy: a quick 503, then close.
            match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    let shared = shared.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        refuse(stream, tls, &shared).await;
                    });
                }
                Err(_) => drop(stream),
            }
            tracing::warn!(target: "veil::serve", max_connections = limits.max_connections,
                "connection refused: every connection is busy");
            continue;
        }
        let (state, registered) = conns.open();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _registered = registered;
            match tls {
                None => serve_connection(stream, peer, state, shared).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        shared.limits.header_read_timeout,
                        acceptor.accept(stream),
                    );
                    tokio::select! {
                        done = handshake => {
                            if let Ok(Ok(tls_stream)) = done {
                                serve_connection(tls_stream, peer, state, shared).await;
                            }
                        }
                        _ = state.evict.notified() => {}
                    }
                }
            }
        });
    }
    tracing::info!(target: "veil::serve", "shutting down: waiting for in-flight requests");
    let _ = stop.send(true);
    let drained = async {
        loop {
            let closed = conns.closed.notified();
            if conns.len() == 0 {
                break;
            }
            closed.await;
        }
    };
    tokio::select! {
        _ = drained => {},
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!(target: "veil::serve", "in-flight requests did not finish within 30 s");
        }
    }
    Ok(())
}
