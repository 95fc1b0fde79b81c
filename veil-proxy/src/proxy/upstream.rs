//! Calling Microsoft Graph: one pooled HTTP client (rustls, HTTP/2, gzip),
//! built once per process and reused across requests and Lambda
//! invocations, with connect / read / total timeouts below the host's own.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::error::{ErrorKind, Phase, ProxyError};

/// Where and how Veil calls Graph.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL, default `https://graph.microsoft.com` (no trailing slash).
    pub base_url: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// The whole upstream exchange; keep it below the host's limit
    /// (Lambda function timeout, Cloud Run request timeout).
    pub total_timeout: Duration,
    /// Largest upstream body Veil accepts.
    pub max_body_bytes: usize,
}

/// The default Graph base URL.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com";

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            base_url: DEFAULT_BASE_URL.into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(20),
            total_timeout: Duration::from_secs(25),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Graph's answer.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    config: UpstreamConfig,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Result<Self, String> {
        let base = config.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!(
                "upstream base URL must start with https:// (got `{base}`)"
            ));
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.total_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true)
            .user_agent(concat!("veil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
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

    /// Sends one request. `path_and_query` comes only from the normalizer
    /// and re-identification, never from Host or `X-Forwarded-*` headers.
    pub async fn send(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: Vec<(HeaderName, HeaderValue)>,
        bearer: &str,
    ) -> Result<UpstreamResponse, ProxyError> {
        let url = format!("{}{}", self.config.base_url, path_and_query);
        let mut req = self
            .client
            .request(method.clone(), &url)
            .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(http::header::ACCEPT, "application/json");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| transport_error(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if resp
            .content_length()
            .is_some_and(|n| n as usize > self.config.max_body_bytes)
        {
            return Err(ProxyError::new(
                Phase::Upstream,
                ErrorKind::UpstreamInvalid,
                "Graph's response is too large",
            ));
        }
        let mut body = Vec::new();
        let mut resp = resp;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.config.max_body_bytes {
                        return Err(ProxyError::new(
                            Phase::Upstream,
                            ErrorKind::UpstreamInvalid,
                            "Graph's response is too large",
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(transport_error(&e)),
            }
        }
        Ok(UpstreamResponse {
            status,
            headers,
            body: Bytes::from(body),
        })
    }
}

fn transport_error(e: &reqwest::Error) -> ProxyError {
    if e.is_timeout() {
        ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamTimeout,
            "Graph did not answer in time",
        )
    } else if e.is_connect() {
        ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamConnect,
            "cannot connect to Graph",
        )
    } else if e.is_body() || e.is_decode() {
        ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamInvalid,
            "Graph's response ended early or could not be decoded",
        )
    } else {
        ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamConnect,
            "the request to Graph failed",
        )
    }
}
