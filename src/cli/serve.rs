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
use veil_proxy::metrics::{Metrics, RequestMetrics};
use veil_proxy::proxy::{
    retry_after, ErrorKind, Phase, Proxy, ProxyError, Refusal, RequestContext, MAX_REQUEST_BODY,
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
    /// Serve Prometheus metrics at /metrics on this separate address (off by default).
    #[arg(long, env = ENV_METRICS_LISTEN)]
    metrics_listen: Option<SocketAddr>,
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

/// Connections beyond the cap that may be waiting for their 503 at once;
/// past this they are closed without an answer.
const MAX_REFUSING: usize = 64;
/// How long a connection may take to finish after being asked to shut down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Open files kept for everything but client connections (upstream
/// connections, the token and JWKS clients, logs, the binary itself).
const RESERVED_FILES: u64 = 64;

/// The connection discipline of `veil serve` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 256,
        }
    }
}

impl ServeLimits {
    /// Flags, then environment, then defaults.
    pub fn from_args(a: &Args) -> anyhow::Result<Self> {
        let d = ServeLimits::default();
        let secs = |flag: Option<u64>, env: &str, default: Duration| -> anyhow::Result<Duration> {
            match flag {
                Some(0) => Err(anyhow!("timeouts must be at least one second")),
                Some(s) => Ok(Duration::from_secs(s)),
                None => Ok(Duration::from_secs(number(
                    env,
                    "seconds",
                    default.as_secs(),
                )?)),
            }
        };
        let count = |flag: Option<usize>, env: &str, default: usize| -> anyhow::Result<usize> {
            match flag {
                Some(0) => Err(anyhow!("connection and request caps must be at least 1")),
                Some(n) => Ok(n),
                None => Ok(number(env, "connections or requests", default as u64)? as usize),
            }
        };
        Ok(ServeLimits {
            header_read_timeout: secs(
                a.header_read_timeout_secs,
                ENV_HEADER_READ_TIMEOUT,
                d.header_read_timeout,
            )?,
            idle_timeout: secs(a.idle_timeout_secs, ENV_IDLE_TIMEOUT, d.idle_timeout)?,
            body_read_timeout: secs(
                a.body_read_timeout_secs,
                ENV_BODY_READ_TIMEOUT,
                d.body_read_timeout,
            )?,
            max_connections: count(a.max_connections, ENV_MAX_CONNECTIONS, d.max_connections)?,
            max_in_flight: count(a.max_in_flight, ENV_MAX_IN_FLIGHT, d.max_in_flight)?,
        })
    }

    /// Raises the soft open-file limit to the hard one, then lowers
    /// `max_connections` if the limit still cannot hold them (each takes a
    /// descriptor, and each request in flight may hold an upstream one).
    pub fn fit_open_files(mut self) -> Self {
        let Some(limit) = raise_open_file_limit() else {
            return self;
        };
        let needed = self.max_connections as u64 + self.max_in_flight as u64 + RESERVED_FILES;
        if needed > limit {
            let fit = limit
                .saturating_sub(self.max_in_flight as u64 + RESERVED_FILES)
                .max(16);
            tracing::warn!(
                target: "veil::serve",
                open_file_limit = limit,
                requested = self.max_connections,
                max_connections = fit,
                "the open-file limit cannot hold {ENV_MAX_CONNECTIONS} connections: lowered (raise `ulimit -n` / LimitNOFILE to keep it)"
            );
            self.max_connections = fit as usize;
        }
        self
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit; `None`
/// when unlimited or unknown.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    if current.current.is_some() && current.current != current.maximum {
        let raised = Rlimit {
            current: current.maximum,
            maximum: current.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            // Some platforms cap the soft limit below the hard one.
            let _ = setrlimit(Resource::Nofile, current);
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

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
    let limits = ServeLimits::from_args(&a)?.fit_open_files();
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
        let metrics = match a.metrics_listen {
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

/// Milliseconds since the process first asked (a cheap shared clock).
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the server knows about one connection.
#[derive(Default)]
struct ConnState {
    /// Requests being handled now.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// When a request last started or ended ([`now_ms`]).
    last_active: AtomicU64,
    /// When bytes of a request head not yet complete first arrived
    /// ([`now_ms`], 0: none pending).
    head_since: AtomicU64,
    /// The connection speaks HTTP/2 (its streams are not timed by head).
    http2: std::sync::atomic::AtomicBool,
    /// Close at once (the connection was chosen to make room).
    evict: Notify,
}

impl ConnState {
    fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived: with no request running, they begin a request head.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(
                0,
                now_ms().max(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
}

/// The connection's byte stream, noting when bytes arrive.
struct Watched<I> {
    io: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Marks a request as running on its connection until dropped (also when
/// the request is cancelled because the caller went away).
struct Running(Arc<ConnState>);

impl Running {
    fn start(state: Arc<ConnState>, version: http::Version) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.requests.fetch_add(1, Ordering::AcqRel);
        state.head_since.store(0, Ordering::Release);
        if version == http::Version::HTTP_2 {
            state.http2.store(true, Ordering::Relaxed);
        }
        state.touch();
        Running(state)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections.
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Arc<ConnState>>>,
    closed: Notify,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a connection; it is removed when the guard drops.
    fn open(self: &Arc<Self>) -> (Arc<ConnState>, Registered) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::default());
        state.touch();
        self.lock().insert(id, state.clone());
        (
            state,
            Registered {
                id,
                conns: self.clone(),
            },
        )
    }

    /// Asks the connection idle the longest (no request in flight) to
    /// close; `false` when every connection is busy.
    fn evict_idlest(&self) -> bool {
        let live = self.lock();
        let idlest = live
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed));
        match idlest {
            Some(c) => {
                // Not chosen again before it is gone.
                c.last_active.store(u64::MAX, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

struct Registered {
    id: u64,
    conns: Arc<Connections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self.conns.lock();
        live.remove(&self.id);
        if live.is_empty() {
            self.conns.closed.notify_waiters();
        }
    }
}

/// Everything a connection task shares.
struct Shared {
    proxy: Proxy,
    /// Where requests are counted (`--metrics-listen`).
    metrics: Option<Arc<Metrics>>,
    limits: ServeLimits,
    builder: auto::Builder<TokioExecutor>,
    in_flight: Arc<Semaphore>,
    shutdown: tokio::sync::watch::Receiver<bool>,
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

/// Serves one connection under the header, idle and eviction rules.
async fn serve_connection<I>(io: I, peer: SocketAddr, state: Arc<ConnState>, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let (state, shared) = (state.clone(), shared.clone());
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let running = Running::start(state.clone(), req.version());
            let shared = shared.clone();
            async move {
                let resp = handle(&shared, req, peer).await;
                drop(running);
                Ok::<_, std::convert::Infallible>(resp)
            }
        })
    };
    let limits = shared.limits;
    let io = Watched {
        io,
        state: state.clone(),
    };
    let conn = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let opened = Instant::now();
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.clone();
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = state.evict.notified() => {
                tracing::debug!(target: "veil::serve", %peer, "closed to make room for a new connection");
                return;
            }
            changed = shutdown.changed(), if closing.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
            _ = ticks.tick() => {
                if closing.is_some_and(|at| at.elapsed() > SHUTDOWN_GRACE) {
                    tracing::debug!(target: "veil::serve", %peer, "closed: did not finish shutting down in time");
                    return;
                }
                // Nothing but silence (or a TLS handshake) since it opened.
                if state.requests.load(Ordering::Acquire) == 0
                    && opened.elapsed() > limits.idle_timeout
                {
                    tracing::debug!(target: "veil::serve", %peer, "closed: no request within the idle timeout");
                    return;
                }
                // An HTTP/1.1 request head started arriving too long ago.
                let head_since = state.head_since.load(Ordering::Acquire);
                if head_since != 0
                    && !state.http2.load(Ordering::Relaxed)
                    && Duration::from_millis(now_ms().saturating_sub(head_since))
                        > limits.header_read_timeout
                {
                    tracing::debug!(target: "veil::serve", %peer, "closed: request head not complete within the header-read timeout");
                    return;
                }
                let idle_ms = now_ms().saturating_sub(state.last_active.load(Ordering::Relaxed));
                if closing.is_none()
                    && state.in_flight.load(Ordering::Acquire) == 0
                    && Duration::from_millis(idle_ms) > limits.idle_timeout
                {
                    tracing::debug!(target: "veil::serve", %peer, "closing: idle");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
        }
    }
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: &Shared,
) {
    let limit = shared
        .limits
        .header_read_timeout
        .min(Duration::from_secs(5));
    if let Some(metrics) = &shared.metrics {
        metrics.record(&RequestMetrics {
            connector: shared.proxy.health().connector.clone(),
            status: 503,
            refusal: Some(Refusal::Overloaded),
            ..RequestMetrics::default()
        });
    }
    let service = hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
        let e = ProxyError::new(
            Phase::Normalize,
            ErrorKind::Overloaded,
            "Veil is at its connection limit; retry shortly",
        );
        let mut headers: Vec<(HeaderName, HeaderValue)> = retry_after(e.kind).into_iter().collect();
        headers.push((http::header::CONNECTION, HeaderValue::from_static("close")));
        Ok::<_, std::convert::Infallible>(
            veil_proxy::proxy::respond::error_response(&e, headers).map(Full::new),
        )
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(false);
    let _ = tokio::time::timeout(limit, async {
        match tls {
            None => {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
            Some(acceptor) => {
                if let Ok(s) = acceptor.accept(stream).await {
                    let _ = builder.serve_connection(TokioIo::new(s), service).await;
                }
            }
        }
    })
    .await;
}

/// An error answer of the server itself (before the pipeline runs),
/// marked with the refusal for the metrics.
fn refusal(e: &ProxyError, close: bool) -> hyper::Response<Bytes> {
    let mut headers: Vec<(HeaderName, HeaderValue)> = retry_after(e.kind).into_iter().collect();
    if close {
        headers.push((http::header::CONNECTION, HeaderValue::from_static("close")));
    }
    // Not at info when overloaded: a flood of these must not add to the load.
    if e.kind == ErrorKind::Overloaded {
        tracing::debug!(target: "veil::serve", error_code = e.kind.code(), "refused: overloaded");
    } else {
        tracing::info!(target: "veil::serve", error_code = e.kind.code(),
            refusal = e.refusal().map(Refusal::as_str).unwrap_or("-"),
            error_message = %e.message, "refused before the pipeline");
    }
    let mut resp = veil_proxy::proxy::respond::error_response(e, headers);
    if let Some(r) = e.refusal() {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Starts the metrics listener: `GET /metrics` answers the Prometheus
/// text, anything else 404. Plain HTTP/1.1, one request per connection.
fn start_metrics(listener: TcpListener, proxy: &Proxy) -> anyhow::Result<Arc<Metrics>> {
    let source = proxy.clone();
    let metrics = Arc::new(Metrics::new(move || source.token_refreshes()));
    let addr = listener.local_addr()?;
    tracing::info!(target: "veil::serve", %addr, path = "/metrics", "metrics listening");
    let served = metrics.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "veil::serve", error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let metrics = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let found = req.uri().path() == "/metrics"
                            && matches!(*req.method(), http::Method::GET | http::Method::HEAD);
                        let resp = if found {
                            hyper::Response::builder()
                                .header(
                                    http::header::CONTENT_TYPE,
                                    veil_proxy::metrics::CONTENT_TYPE,
                                )
                                .body(Full::new(Bytes::from(metrics.encode())))
                        } else {
                            hyper::Response::builder()
                                .status(http::StatusCode::NOT_FOUND)
                                .body(Full::new(Bytes::from_static(
                                    b"not found: metrics are at /metrics\n",
                                )))
                        };
                        Ok::<_, std::convert::Infallible>(resp.unwrap_or_default())
                    }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .keep_alive(false)
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    builder.serve_connection(TokioIo::new(stream), service),
                )
                .await;
            });
        }
    });
    Ok(metrics)
}

async fn handle(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let resp = handle_request(shared, req, peer).await;
    if let Some(metrics) = &shared.metrics {
        match resp.extensions().get::<RequestMetrics>() {
            Some(figures) => metrics.record(figures),
            None => metrics.record(&RequestMetrics {
                connector: shared.proxy.health().connector.clone(),
                status: resp.status().as_u16(),
                latency: started.elapsed(),
                refusal: resp.extensions().get::<Refusal>().copied(),
                ..RequestMetrics::default()
            }),
        }
    }
    resp.map(Full::new)
}

async fn handle_request(
    shared: &Shared,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Bytes> {
    let http1 = req.version() < http::Version::HTTP_2;
    let Ok(_permit) = shared.in_flight.clone().try_acquire_owned() else {
        let e = ProxyError::new(
            Phase::Normalize,
            ErrorKind::Overloaded,
            "Veil is handling as many requests as it is allowed to; retry shortly",
        );
        return refusal(&e, false);
    };
    let announced = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = || {
        ProxyError::new(
            Phase::Normalize,
            ErrorKind::PayloadTooLarge,
            format!(
                "the request body is larger than Veil accepts ({} KiB); Graph requests through Veil carry no body",
                MAX_REQUEST_BODY / 1024
            ),
        )
    };
    if announced.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return refusal(&too_large(), http1);
    }
    let (parts, body) = req.into_parts();
    let deadline = shared.limits.body_read_timeout;
    let body = match tokio::time::timeout(deadline, Limited::new(body, MAX_REQUEST_BODY).collect())
        .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refusal(&too_large(), http1);
        }
        Ok(Err(_)) => {
            let e = ProxyError::new(
                Phase::Normalize,
                ErrorKind::BadRequest,
                "the request body could not be read",
            );
            return refusal(&e, http1);
        }
        Err(_) => {
            let e = ProxyError::new(
                Phase::Normalize,
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            );
            return refusal(&e, http1);
        }
    };
    let mut req = hyper::Request::from_parts(parts, body);
    req.extensions_mut().insert(RequestContext {
        remote_ip: Some(peer.ip()),
        aws_caller_arn: None,
        host_built_uri: false,
        request_id: Some(crate::logging::request_id()),
    });
    shared.proxy.handle(req).await
}
