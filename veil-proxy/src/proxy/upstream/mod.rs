//! Calling Microsoft Graph: one pooled HTTP client (rustls, HTTP/2), built
//! once per process and reused across requests and Lambda invocations,
//! with connect / read / total timeouts below the host's own.
//!
//! Graph's answer is read with bounded memory:
//!
//! - Veil asks for gzip and inflates it itself, **while** the body arrives
//!   (never the whole compressed body first), so a small compressed body
//!   cannot become a large one unnoticed: reading stops as soon as the
//!   inflated size passes [`UpstreamConfig::max_body_bytes`]. The JSON
//!   nesting may not pass [`UpstreamConfig::max_depth`]: a 2xx body's is
//!   checked by the sanitizer as it reads the body (no pass of its own; the
//!   proxy gives the sanitizer this limit), any other body's by a scanner
//!   fed with the inflated bytes. Either gives 502
//!   `upstream_response_too_large` and nothing of the body.
//! - Every body in flight holds a share of one process-wide
//!   [`BodyBudget`], taken as its bytes arrive and given back when the
//!   request ends. When the budget is spent the request fails fast with 503
//!   `overloaded` (and `Retry-After`) instead of growing the process.
//! - A truncated or corrupt gzip stream, a connection reset mid-body and an
//!   unsupported `Content-Encoding` give 502 `upstream_invalid_response`.
//!
//! The base URL must be `https://`; plain `http://` is accepted only for a
//! loopback address (a local test server), so the Graph token never
//! travels in clear.
//!
//! The request target reaches Graph byte for byte as normalization and
//! re-identification left it: the client is hyper's (through hyper-rustls),
//! given an `http::Uri`, which keeps the bytes it is given. (A client that
//! parses URLs the WHATWG way would re-encode them: `'` in a query becomes
//! `%27`.)
//! An egress proxy named by the environment (`HTTPS_PROXY`, `ALL_PROXY`,
//! with `NO_PROXY`, as curl reads them) is used through an HTTP `CONNECT`
//! tunnel, so TLS still runs end to end with Graph.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod body;
mod budget;
mod cause;
mod connect;

pub(super) use body::too_deep;
use body::*;
pub use budget::{BodyBudget, Reservation};
use cause::*;
use connect::*;

use super::error::{ErrorKind, Phase, ProxyError, UpstreamCause};

/// Where and how Veil calls Graph.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL, default `https://graph.microsoft.com` (no trailing slash).
    pub base_url: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// The whole upstream phase of one request (Graph token, the call, the
    /// one retry after a 401, reading the body); keep it below the host's
    /// limit (Lambda function timeout, Cloud Run request timeout).
    pub total_timeout: Duration,
    /// Largest upstream body Veil accepts, after inflating gzip.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting (objects and arrays) Veil accepts from Graph.
    pub max_depth: usize,
    /// The process-wide budget for bodies in flight (shared by clones).
    pub budget: BodyBudget,
}

/// The default Graph base URL.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com";
/// Default largest inflated upstream body: 32 MiB (Graph pages of 999
/// messages with bodies stay well below; a gzip bomb does not).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default deepest JSON nesting (Graph's documents nest about ten deep).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Default budget for all bodies in flight: 256 MiB of inflated JSON
/// (the parsed document costs several times that while it is sanitized).
pub const DEFAULT_BODY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            base_url: DEFAULT_BASE_URL.into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(25),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            budget: BodyBudget::new(DEFAULT_BODY_BUDGET_BYTES),
        }
    }
}

/// Graph's answer.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Inflated: never gzip.
    pub body: Bytes,
    /// The body's share of the budget, held while the response lives.
    pub reservation: Option<Reservation>,
}

/// The Graph call of phase 7, as the pipeline sees it: [`Upstream`] in
/// production; a test double in the pipeline's own tests, so its 401 retry,
/// consent eviction and redirect handling are tested in-process as well as
/// over TCP.
pub trait GraphClient: Send + Sync {
    /// The deadline of the whole upstream phase (token, call, one retry).
    fn total_timeout(&self) -> Duration;

    /// One call with a Graph token; the body read with bounded memory.
    fn send<'a>(
        &'a self,
        method: &'a Method,
        path_and_query: &'a str,
        headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &'a str,
    ) -> crate::token::BoxFuture<'a, Result<UpstreamResponse, ProxyError>>;
}

impl GraphClient for Upstream {
    fn total_timeout(&self) -> Duration {
        self.config().total_timeout
    }

    fn send<'a>(
        &'a self,
        method: &'a Method,
        path_and_query: &'a str,
        headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &'a str,
    ) -> crate::token::BoxFuture<'a, Result<UpstreamResponse, ProxyError>> {
        Box::pin(Upstream::send(
            self,
            method,
            path_and_query,
            headers,
            bearer,
        ))
    }
}

/// The upstream client.
#[derive(Clone)]
pub struct Upstream {
    client: HttpsClient,
    config: UpstreamConfig,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the upstream client cannot be built: a base URL Veil refuses, the
/// TLS configuration, or the egress proxy. Each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("the upstream base URL `{0}` is not a URL: give one such as {DEFAULT_BASE_URL} (--upstream or VEIL_UPSTREAM)")]
    NotAUrl(String),
    #[error("the upstream base URL `{0}` must be a plain URL such as {DEFAULT_BASE_URL} (no user info, query or fragment)")]
    NotPlain(String),
    #[error("the upstream base URL `{0}` is plain http to a host that is not loopback: the Graph token would travel in clear; use https:// (plain http is accepted only for a local test server on 127.0.0.1, ::1 or localhost)")]
    PlainHttp(String),
    #[error("the upstream base URL must start with https:// (got `{0}`)")]
    NotHttps(String),
    #[error("the upstream base URL `{0}` is not a URL Veil can call")]
    NotCallable(String),
    #[error("cannot build the upstream TLS configuration: {0}")]
    Tls(tokio_rustls::rustls::Error),
    #[error("the egress proxy for Graph must be an http:// proxy (a CONNECT tunnel carries the TLS to Graph); got `{scheme}://…`")]
    EgressProxy { scheme: String },
}

impl UpstreamConfigError {
    /// Whether the egress proxy (`HTTPS_PROXY`, …) is at fault rather
    /// than the base URL.
    pub fn is_egress_proxy(&self) -> bool {
        matches!(self, UpstreamConfigError::EgressProxy { .. })
    }
}

/// Whether `base` is an acceptable Graph base URL: `https://` for any host,
/// `http://` only for a loopback address. The error names the fix.
pub fn check_base_url(base: &str) -> Result<(), UpstreamConfigError> {
    let url =
        reqwest::Url::parse(base).map_err(|_| UpstreamConfigError::NotAUrl(printable(base)))?;
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(UpstreamConfigError::NotPlain(printable(base)));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(crate::net::is_loopback_host) => Ok(()),
        "http" => Err(UpstreamConfigError::PlainHttp(printable(base))),
        _ => Err(UpstreamConfigError::NotHttps(printable(base))),
    }
}

/// At most 100 printable characters of a configuration value, for messages.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamConfigError> {
        Upstream::with_proxies(
            config,
            hyper_util::client::proxy::matcher::Matcher::from_env(),
        )
    }

    /// With the egress proxies `proxies` names (tests; [`Upstream::new`]
    /// reads them from the environment).
    pub(crate) fn with_proxies(
        config: UpstreamConfig,
        proxies: hyper_util::client::proxy::matcher::Matcher,
    ) -> Result<Self, UpstreamConfigError> {
        let base = config.base_url.trim_end_matches('/').to_string();
        check_base_url(&base)?;
        let base_uri = base
            .parse::<http::Uri>()
            .map_err(|_| UpstreamConfigError::NotCallable(printable(&base)))?;
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(tokio_rustls::rustls::crypto::ring::default_provider())
            .map_err(UpstreamConfigError::Tls)?
            // Plain http only reaches a loopback test server (check_base_url).
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(route(http, &base_uri, &proxies)?);
        // No redirects are followed (a hyper client follows none), and no
        // gzip is inflated by the client: Veil does it, with limits.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .build(https);
        Ok(Upstream {
            client,
            config: UpstreamConfig {
                base_url: base,
                ..config
            },
        })
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Sends one request. `path_and_query` comes only from the normalizer
    /// and re-identification, never from Host or `X-Forwarded-*` headers,
    /// and reaches Graph as it is.
    pub async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &str,
    ) -> Result<UpstreamResponse, ProxyError> {
        let total = self.config.total_timeout;
        match tokio::time::timeout(
            total,
            self.exchange(method, path_and_query, headers, bearer),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(timed_out("the whole call", total)),
        }
    }

    async fn exchange(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &str,
    ) -> Result<UpstreamResponse, ProxyError> {
        let uri: http::Uri = format!("{}{}", self.config.base_url, path_and_query)
            .parse()
            .map_err(|_| {
                ProxyError::new(
                    Phase::Upstream,
                    ErrorKind::BadRequest,
                    "the request target cannot be sent to Graph",
                )
            })?;
        let authorization = HeaderValue::from_str(&format!("Bearer {bearer}")).map_err(|_| {
            ProxyError::new(
                Phase::Token,
                ErrorKind::TokenUnavailable,
                "the Graph token is not a valid header value",
            )
        })?;
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|_| {
                ProxyError::new(
                    Phase::Upstream,
                    ErrorKind::BadRequest,
                    "the request cannot be sent to Graph",
                )
            })?;
        let h = req.headers_mut();
        for (name, value) in headers {
            if name != http::header::ACCEPT_ENCODING {
                h.append(name, value);
            }
        }
        h.insert(http::header::AUTHORIZATION, authorization);
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("veil/", env!("CARGO_PKG_VERSION"))),
        );
        // Connecting is bounded by the connector; the answer's head must
        // then come within the read timeout.
        let head_within = self.config.connect_timeout + self.config.read_timeout;
        let resp = match tokio::time::timeout(head_within, self.client.request(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(transport_error(&e)),
            Err(_) => return Err(timed_out("the answer's head", head_within)),
        };
        let status = resp.status();
        let (parts, mut body) = resp.into_parts();
        let headers = parts.headers;
        let gzip = match headers
            .get(http::header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("identity") => false,
            Some("gzip") | Some("x-gzip") => true,
            Some(_) => {
                return Err(ProxyError::new(
                    Phase::Upstream,
                    ErrorKind::UpstreamInvalid,
                    "Graph answered with a content encoding Veil does not accept (only gzip); nothing of it is returned",
                )
                .upstream_cause(UpstreamCause::Body)
                .with_detail(format!(
                    "Content-Encoding: {}",
                    headers
                        .get(http::header::CONTENT_ENCODING)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("?")
                        .chars()
                        .take(64)
                        .collect::<String>()
                )))
            }
        };
        let announced = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > self.config.max_body_bytes as u64) {
            return Err(too_large(self.config.max_body_bytes));
        }
        // A 2xx body is sanitized, and the sanitizer checks its nesting as
        // it reads it (the proxy sets its limit to `max_depth`); any other
        // body's nesting is checked here.
        let mut reader = BodyReader::new(&self.config, gzip, announced, !status.is_success());
        let read_timeout = self.config.read_timeout;
        loop {
            use http_body_util::BodyExt as _;
            match tokio::time::timeout(read_timeout, body.frame()).await {
                Err(_) => return Err(timed_out("a read of the body", read_timeout)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(body_error(&e)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(chunk) = frame.into_data() {
                        reader.feed(&chunk)?;
                    }
                }
            }
        }
        let (body, reservation) = reader.finish()?;
        Ok(UpstreamResponse {
            status,
            headers,
            body: Bytes::from(body),
            reservation: Some(reservation),
        })
    }
}

fn timed_out(what: &str, after: Duration) -> ProxyError {
    ProxyError::new(
        Phase::Upstream,
        ErrorKind::UpstreamTimeout,
        "Graph did not answer in time",
    )
    .upstream_cause(UpstreamCause::Timeout)
    .with_detail(format!("{what} took over {} ms", after.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_body: usize, max_depth: usize, budget: usize) -> UpstreamConfig {
        UpstreamConfig {
            max_body_bytes: max_body,
            max_depth,
            budget: BodyBudget::new(budget),
            ..UpstreamConfig::default()
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read(cfg: &UpstreamConfig, gz: bool, body: &[u8]) -> Result<Vec<u8>, ProxyError> {
        let mut r = BodyReader::new(cfg, gz, None, true);
        for chunk in body.chunks(1000) {
            r.feed(chunk)?;
        }
        r.finish().map(|(b, _)| b)
    }

    #[test]
    fn base_urls_https_anywhere_http_only_to_loopback() {
        for ok in [
            "https://graph.microsoft.com",
            "https://graph.example:8443/base",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000",
            "http://localhost:1",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://graph.microsoft.com",
            "http://10.0.0.1:8080",
            "http://192.168.1.2",
            "http://localhost.example.com",
            "http://[::2]",
            "ftp://graph.microsoft.com",
            "graph.microsoft.com",
            "https://user:pw@graph.microsoft.com",
            "https://graph.microsoft.com/?x=1",
        ] {
            let e = check_base_url(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = check_base_url("http://graph.example")
            .unwrap_err()
            .to_string();
        assert!(e.contains("https://") && e.contains("in clear"), "{e}");
        assert!(Upstream::new(UpstreamConfig {
            base_url: "http://graph.example".into(),
            ..UpstreamConfig::default()
        })
        .is_err());
    }

    #[test]
    fn gzip_is_inflated_within_limits() {
        let doc = br#"{"value":[{"id":"a","x":"[[[[{{{{"}]}"#;
        let cfg = config(1 << 20, 4, 1 << 20);
        assert_eq!(read(&cfg, true, &gzip(doc)).unwrap(), doc.to_vec());
        assert_eq!(read(&cfg, false, doc).unwrap(), doc.to_vec());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_size_limit() {
        let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
        assert!(bomb.len() < 200 * 1024, "{}", bomb.len());
        let cfg = config(1 << 20, 64, 1 << 30);
        let e = read(&cfg, true, &bomb).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamTooLarge, "{e}");
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
        // The budget is given back.
        assert_eq!(cfg.budget.available_bytes(), cfg.budget.total_bytes());
    }

    #[test]
    fn deep_nesting_is_refused_while_reading() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let cfg = config(1 << 20, 64, 1 << 20);
        let e = read(&cfg, true, &gzip(deep.as_bytes())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamTooLarge);
        assert!(e.message.contains("nests deeper"), "{e}");
        // Brackets inside strings (escaped quotes too) do not count.
        let s = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(read(&cfg, false, s.as_bytes()).is_ok());
    }

    #[test]
    fn nesting_is_tracked_across_chunk_boundaries() {
        // Escapes, quotes and brackets split at every position: the depth
        // reached is the same as over the whole body.
        let body = br#"{"a":["x\\\"[{","\\",{"b":[[1]]}],"c":"]}\u005b"}"#;
        for max in 0..6 {
            let whole = DepthScanner::new(max).feed(body);
            for cut in 0..=body.len() {
                for cut2 in cut..=body.len() {
                    let mut d = DepthScanner::new(max);
                    let ok =
                        d.feed(&body[..cut]) && d.feed(&body[cut..cut2]) && d.feed(&body[cut2..]);
                    assert_eq!(ok, whole, "max {max}, cuts {cut} {cut2}");
                }
            }
            // The body nests 5 deep (`{`, `[`, `{`, `[`, `[`).
            assert_eq!(whole, max >= 5, "max {max}");
        }
    }

    #[test]
    fn truncated_gzip_is_invalid() {
        let gz = gzip(&vec![b'x'; 100_000]);
        let cfg = config(1 << 20, 64, 1 << 20);
        for cut in [gz.len() - 4, gz.len() / 2, 5] {
            let e = read(&cfg, true, &gz[..cut]).unwrap_err();
            assert_eq!(e.kind, ErrorKind::UpstreamInvalid, "{cut}: {e}");
        }
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let cfg = config(1 << 20, 64, 256 * 1024);
        let body = vec![b'1'; 200 * 1024];
        let mut first = BodyReader::new(&cfg, false, None, true);
        first.feed(&body).unwrap();
        let (_, held) = first.finish().unwrap();
        assert!(held.bytes() >= body.len());
        let e = read(&cfg, false, &body).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Overloaded, "{e}");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert!(read(&cfg, false, &body).is_ok());
        assert_eq!(cfg.budget.available_bytes(), cfg.budget.total_bytes());
    }

    /// A loopback server that runs `behave` on each connection.
    async fn server<F, Fut>(behave: F) -> String
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(behave(stream));
            }
        });
        addr.to_string()
    }

    async fn call(base: String) -> ProxyError {
        let upstream = Upstream::new(UpstreamConfig {
            base_url: base,
            connect_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_millis(300),
            ..UpstreamConfig::default()
        })
        .unwrap();
        upstream
            .send(
                &Method::GET,
                "/v1.0/users/0b1c2d3e",
                Vec::new(),
                "graph-token",
            )
            .await
            .expect_err("the call fails")
    }

    async fn read_some(stream: &mut tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
    }

    #[tokio::test]
    async fn failed_calls_say_why_in_the_log_only() {
        // Nothing listens: connect.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = call(format!("http://127.0.0.1:{port}")).await;
        assert_eq!(
            (e.kind, e.upstream_cause),
            (ErrorKind::UpstreamConnect, Some(UpstreamCause::Connect)),
            "{e:?}"
        );
        assert!(
            e.detail
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains("refused"),
            "{e:?}"
        );

        // The connection is closed before an answer: reset.
        let base = server(|mut s| async move {
            read_some(&mut s).await;
            drop(s);
        })
        .await;
        let e = call(format!("http://{base}")).await;
        assert_eq!(e.upstream_cause, Some(UpstreamCause::Reset), "{e:?}");

        // Plain HTTP where TLS is expected: tls.
        let base = server(|mut s| async move {
            use tokio::io::AsyncWriteExt as _;
            read_some(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        })
        .await;
        let e = call(format!("https://{base}")).await;
        assert_eq!(
            (e.kind, e.upstream_cause),
            (ErrorKind::UpstreamConnect, Some(UpstreamCause::Tls)),
            "{e:?}"
        );

        // No answer: timeout.
        let base = server(|mut s| async move {
            read_some(&mut s).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let e = call(format!("http://{base}")).await;
        assert_eq!(
            (e.kind, e.upstream_cause),
            (ErrorKind::UpstreamTimeout, Some(UpstreamCause::Timeout)),
            "{e:?}"
        );

        // The caller's message names none of it, nor the path.
        for text in [e.message.as_str(), &e.body().to_string()] {
            assert!(
                !text.contains("0b1c2d3e") && !text.contains("127.0.0.1"),
                "{text}"
            );
        }
        assert!(
            !e.detail.as_deref().unwrap_or("").contains("0b1c2d3e"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn graph_gets_the_target_as_is_directly_or_through_an_egress_proxy() {
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        // Graph: records each request head, answers `{}`.
        let heads = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = heads.clone();
        let graph = server(move |mut s| {
            let seen = seen.clone();
            async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                seen.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            }
        })
        .await;
        // An egress proxy: CONNECT, then bytes both ways.
        let connects = Arc::new(Mutex::new(Vec::<String>::new()));
        let asked = connects.clone();
        let proxy = server(move |mut s| {
            let asked = asked.clone();
            async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let target = head.split(' ').nth(1).unwrap_or("").to_string();
                asked.lock().unwrap().push(head);
                let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let _ = s
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            }
        })
        .await;
        let target = "/v1.0/users?$filter=startswith(displayName,'a')&$top=5";
        let config = UpstreamConfig {
            base_url: format!("http://{graph}"),
            ..UpstreamConfig::default()
        };
        let direct = Upstream::with_proxies(
            config.clone(),
            hyper_util::client::proxy::matcher::Matcher::builder().build(),
        )
        .unwrap();
        let tunneled = Upstream::with_proxies(
            config,
            hyper_util::client::proxy::matcher::Matcher::builder()
                .http(format!("http://{proxy}"))
                .build(),
        )
        .unwrap();
        for upstream in [&direct, &tunneled] {
            let resp = upstream
                .send(&Method::GET, target, Vec::new(), "graph-token")
                .await
                .unwrap();
            assert_eq!(resp.status, StatusCode::OK);
            assert_eq!(&resp.body[..], b"{}");
        }
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        for head in &heads {
            assert!(
                head.starts_with(&format!("GET {target} HTTP/1.1\r\n")),
                "{head}"
            );
        }
        let connects = connects.lock().unwrap().clone();
        assert_eq!(connects.len(), 1, "only the second went through the proxy");
        assert!(
            connects[0].starts_with(&format!("CONNECT {graph} HTTP/1.1")),
            "{}",
            connects[0]
        );
        // The CONNECT request itself carries no Graph token.
        assert!(!connects[0].contains("graph-token"));
    }
}
