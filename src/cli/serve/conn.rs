//! One connection of `veil serve`: its state (idle, reading a head, busy),
//! the watched I/O that tells them apart, the cap on connections, refusals
//! answered before the pipeline, and the hand-over of each request to the
//! proxy.

use super::*;

/// Milliseconds since the process first asked (a cheap shared clock).
pub(super) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What the server knows about one connection.
#[derive(Default)]
pub(super) struct ConnState {
    /// Requests being handled now.
    pub(super) in_flight: AtomicUsize,
    /// Requests started on this connection.
    pub(super) requests: AtomicU64,
    /// When a request last started or ended ([`now_ms`]).
    pub(super) last_active: AtomicU64,
    /// When bytes of a request head not yet complete first arrived
    /// ([`now_ms`], 0: none pending).
    pub(super) head_since: AtomicU64,
    /// The connection speaks HTTP/2 (its streams are not timed by head).
    pub(super) http2: std::sync::atomic::AtomicBool,
    /// Close at once (the connection was chosen to make room).
    pub(super) evict: Notify,
}

impl ConnState {
    pub(super) fn touch(&self) {
        self.last_active.store(now_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived: with no request running, they begin a request head.
    pub(super) fn bytes_read(&self) {
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
pub(super) struct Watched<I> {
    pub(super) io: I,
    pub(super) state: Arc<ConnState>,
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
pub(super) struct Running(Arc<ConnState>);

impl Running {
    pub(super) fn start(state: Arc<ConnState>, version: http::Version) -> Self {
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
pub(super) struct Connections {
    pub(super) next: AtomicU64,
    pub(super) live: Mutex<HashMap<u64, Arc<ConnState>>>,
    pub(super) closed: Notify,
}

impl Connections {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Registers a connection; it is removed when the guard drops.
    pub(super) fn open(self: &Arc<Self>) -> (Arc<ConnState>, Registered) {
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
    pub(super) fn evict_idlest(&self) -> bool {
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

pub(super) struct Registered {
    pub(super) id: u64,
    pub(super) conns: Arc<Connections>,
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
pub(super) struct Shared {
    pub(super) proxy: Proxy,
    /// Where requests are counted (`--metrics-listen`).
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) limits: ServeLimits,
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) in_flight: Arc<Semaphore>,
    pub(super) shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Serves one connection under the header, idle and eviction rules.
pub(super) async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
) where
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
pub(super) async fn refuse(
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
        Ok::<_, std::convert::Infallible>(veil_proxy::error_response(&e, headers).map(Full::new))
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
pub(super) fn refusal(e: &ProxyError, close: bool) -> hyper::Response<Bytes> {
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
    let mut resp = veil_proxy::error_response(e, headers);
    if let Some(r) = e.refusal() {
        resp.extensions_mut().insert(r);
    }
    resp
}

pub(super) async fn handle(
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

pub(super) async fn handle_request(
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
