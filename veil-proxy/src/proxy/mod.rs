//! The proxy: one host-agnostic request pipeline.
//!
//! [`Proxy::handle`] takes a buffered `http::Request` and returns a
//! buffered `http::Response`; the hosts (the hyper server of `veil serve`
//! and the AWS Lambda runtime) only adapt their requests to it. A request
//! passes these phases, in order, each in its own function below:
//!
//! 1. **normalize** the request target and headers ([`normalize`]); a
//!    target named by Psoxy's `X-Psoxy-TargetPath` / `X-Psoxy-TargetQuery`
//!    headers replaces the request line's and passes the same checks;
//! 2. the caller **IP allowlist** ([`crate::auth::check_ip`]; it applies to
//!    the health check too);
//! 3. **health** check, answered here ([`health`]): `{"status"}` only,
//!    unless the caller authenticates (then the details);
//! 4. **authenticate** the caller ([`crate::auth`]: OIDC, Lambda caller ARN);
//! 5. **match** an endpoint of the rules ([`veil_engine::RuleSet::match_request`]);
//! 6. **re-identify** `p~` tokens ([`veil_engine::reidentify_for`]);
//! 7. call **upstream** with a Graph token ([`upstream`], [`crate::token`]),
//!    the whole phase (token, call, one retry after a 401, body) under one
//!    deadline ([`upstream::UpstreamConfig::total_timeout`]);
//! 8. **answer**: sanitize, reduce errors, allowlist headers ([`respond`]);
//! 9. **log** one structured line, and hand the request's figures to the
//!    host in the response's extensions ([`crate::metrics::RequestMetrics`];
//!    both in `access.rs`).
//!
//! Every failure is a [`ProxyError`] naming its phase; the caller gets its
//! status and JSON body, never unsanitized data, and `Retry-After` with
//! every 503. Until the caller is authenticated, Veil's own headers
//! (version, rules hash) are left off: an anonymous caller learns nothing
//! about the deployment.

mod access;
pub mod health;
pub mod normalize;
pub mod respond;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use ipnet::IpNet;

pub use crate::auth::{CallerAuthMode, CallerIdentity};
pub(crate) use crate::error;
pub use crate::error::{ErrorKind, Phase, ProxyError, Refusal, UpstreamCause};
use access::{refusal_of, Outcome};
use health::HealthInfo;
use normalize::{Limits, Target};
use upstream::{GraphClient, Upstream};

use crate::token::TokenProvider;
use veil_engine::{
    reidentify_for, CompiledEndpoint, PolicyRequest, Pseudonymizer, RequestCheck, RequestSide,
    RuleSet,
};

/// How the health check's warning about a development Graph token begins.
pub const WARN_DEVELOPMENT_TOKEN: &str = "DEVELOPMENT ONLY: the Graph token";
/// How the health check's warning about absent caller authentication begins.
pub const WARN_NO_CALLER_AUTH: &str = "caller authentication is OFF";

/// The log's and the metrics' endpoint for health checks (`/healthz` or
/// Psoxy's health-check header on any path).
pub const HEALTH_ENDPOINT: &str = "health";

/// Largest request body the hosts accept (413 above it): requests through
/// Veil carry none, so this only bounds abuse.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// The request id header, accepted from the caller and always answered.
pub const HEADER_REQUEST_ID: &str = "x-request-id";

/// The caller's `X-Request-Id`, if it is 1–128 characters of
/// `A-Z a-z 0-9 . _ : -` (anything else is ignored, and the host's id is
/// used).
fn caller_request_id(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(HEADER_REQUEST_ID)?.to_str().ok()?;
    (!v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)))
    .then(|| v.to_string())
}

/// What the host knows about a request, put in its extensions.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The peer address (for the caller IP allowlist).
    pub remote_ip: Option<IpAddr>,
    /// On Lambda: the IAM caller ARN from the Function URL request context.
    pub aws_caller_arn: Option<String>,
    /// The host built the URI itself (HTTP/2 `:authority`, Lambda events):
    /// only its path and query are the request target.
    pub host_built_uri: bool,
    /// A request id for logs (from the host, or generated).
    pub request_id: Option<String>,
}

/// Everything the pipeline needs, built once per process.
pub struct ProxyConfig {
    pub connector: String,
    pub caller_auth: CallerAuthMode,
    pub ip_allowlist: Vec<IpNet>,
    pub limits: Limits,
    pub health: HealthInfo,
    /// The sanitizer path and where paging links point.
    pub body: veil_engine::BodyOptions,
}

struct Inner {
    rules: RuleSet,
    pseudonymizer: Arc<Pseudonymizer>,
    tokens: Arc<dyn TokenProvider>,
    upstream: Arc<dyn GraphClient>,
    config: ProxyConfig,
    rules_sha: HeaderValue,
}

/// The pipeline. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

impl Proxy {
    pub fn new(
        rules: RuleSet,
        pseudonymizer: Arc<Pseudonymizer>,
        tokens: Arc<dyn TokenProvider>,
        upstream: Upstream,
        mut config: ProxyConfig,
    ) -> Self {
        // The sanitizer checks a 2xx body's nesting as it reads it, under
        // the upstream's limit (the upstream checks only other bodies).
        config.body.max_depth = Some(upstream.config().max_depth);
        Proxy::with_graph_client(rules, pseudonymizer, tokens, Arc::new(upstream), config)
    }

    /// [`Proxy::new`] with any [`GraphClient`] (the pipeline's tests use a
    /// scripted one).
    pub fn with_graph_client(
        rules: RuleSet,
        pseudonymizer: Arc<Pseudonymizer>,
        tokens: Arc<dyn TokenProvider>,
        upstream: Arc<dyn GraphClient>,
        mut config: ProxyConfig,
    ) -> Self {
        config
            .body
            .max_depth
            .get_or_insert(upstream::DEFAULT_MAX_DEPTH);
        let rules_sha =
            HeaderValue::from_str(&rules.sha256).unwrap_or(HeaderValue::from_static("unknown"));
        config.health.caller_auth = config.caller_auth.describe();
        config.health.token_provider = tokens.kind().to_string();
        // A host that says where the development token comes from, or why
        // callers are not authenticated, is believed; else `veil serve`'s
        // and Lambda's settings are named.
        let told =
            |warnings: &[String], prefix: &str| warnings.iter().any(|w| w.starts_with(prefix));
        if tokens.development_only() && !told(&config.health.warnings, WARN_DEVELOPMENT_TOKEN) {
            config.health.warnings.push(format!(
                "{WARN_DEVELOPMENT_TOKEN} comes from the `{}` provider (the fixed {}); production deployments get it by workload identity federation (VEIL_TOKEN_PROVIDER)",
                tokens.kind(),
                crate::token::ENV_UPSTREAM_TOKEN
            ));
        }
        if matches!(config.caller_auth, CallerAuthMode::Unauthenticated)
            && !told(&config.health.warnings, WARN_NO_CALLER_AUTH)
        {
            config
                .health
                .warnings
                .push(format!("{WARN_NO_CALLER_AUTH} (--allow-unauthenticated)"));
        }
        Proxy {
            inner: Arc::new(Inner {
                rules,
                pseudonymizer,
                tokens,
                upstream,
                config,
                rules_sha,
            }),
        }
    }

    pub fn health(&self) -> &HealthInfo {
        &self.inner.config.health
    }

    pub fn rules(&self) -> &RuleSet {
        &self.inner.rules
    }

    /// Runs one request through every phase.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let started = Instant::now();
        let mut ctx = req
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_default();
        // A caller's own correlation id, when it is a plain token, names the
        // request in Veil's log and comes back in `X-Request-Id`, so a
        // vendor's support ticket can be matched to the log line.
        if let Some(id) = caller_request_id(req.headers()) {
            ctx.request_id = Some(id);
        }
        let method = req.method().clone();
        let mut outcome = Outcome::default();
        let response = match self.pipeline(&req, &ctx, &mut outcome).await {
            Ok(resp) => resp,
            Err(e) => {
                let mut headers = if outcome.authenticated {
                    self.veil_headers()
                } else {
                    Vec::new()
                };
                headers.extend(retry_after(e.kind));
                let resp = respond::error_response(&e, headers);
                outcome.error = Some(e);
                resp
            }
        };
        let mut response = response;
        if let Some(id) = ctx
            .request_id
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response
                .headers_mut()
                .insert(HeaderName::from_static(HEADER_REQUEST_ID), id);
        }
        self.log(&ctx, &method, &response, &outcome, started);
        let figures = self.figures(&response, outcome, started);
        response.extensions_mut().insert(figures);
        response
    }

    /// Graph token exchanges so far (see [`TokenProvider::refreshes`]).
    pub fn token_refreshes(&self) -> crate::token::TokenRefreshes {
        self.inner.tokens.refreshes()
    }

    fn veil_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        vec![
            (
                HeaderName::from_static(respond::HEADER_RULES_SHA),
                self.inner.rules_sha.clone(),
            ),
            (
                HeaderName::from_static(respond::HEADER_VERSION),
                HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
            ),
        ]
    }

    /// The phases, in order; each is a function of its own below (or in
    /// its module), and the first that fails answers.
    async fn pipeline(
        &self,
        req: &Request<Bytes>,
        ctx: &RequestContext,
        out: &mut Outcome,
    ) -> Result<Response<Bytes>, ProxyError> {
        // 1. normalize (the request line, or Psoxy's target headers)
        let target = self.normalize(req, ctx, out)?;
        // 2. IP allowlist
        self.check_ip(ctx)?;
        // 3. health
        if let Some(resp) = self.health_check(req, ctx, &target).await {
            out.endpoint = Some(HEALTH_ENDPOINT.into());
            return Ok(resp);
        }
        // 4. authenticate
        out.caller = self.authenticate(req, ctx).await?;
        out.authenticated = true;
        // 5. match
        let endpoint = self.match_endpoint(req, &target, out)?;
        // 6. re-identify
        let (path_and_query, forwarded) = self.reidentify(req, endpoint, &target)?;
        // 7. upstream (one retry with a fresh token after a 401)
        let upstream = self
            .forward(req.method(), &path_and_query, &forwarded, out)
            .await?;
        // 8. answer
        self.answer(req, endpoint, upstream, out)
    }

    /// Phase 5: the first endpoint whose path matches decides; refusals
    /// name the check (and, past the path check, the endpoint).
    fn match_endpoint(
        &self,
        req: &Request<Bytes>,
        target: &Target,
        out: &mut Outcome,
    ) -> Result<&CompiledEndpoint, ProxyError> {
        let allowed = self
            .inner
            .rules
            .match_request(
                PolicyRequest {
                    method: req.method().as_str(),
                    path: &target.path,
                    query: target.query.as_deref(),
                },
                RequestSide::Client,
            )
            .map_err(|r| {
                // Past the path check, the endpoint that refused is known.
                if r.check != RequestCheck::Path {
                    out.endpoint.clone_from(&r.closest);
                }
                ProxyError::new(Phase::Match, ErrorKind::BlockedByRules, r.to_string())
                    .refused_by(refusal_of(&r))
            })?;
        let endpoint = allowed.endpoint;
        out.endpoint = Some(endpoint.label.clone());
        if !req.body().is_empty() {
            return Err(ProxyError::new(
                Phase::Match,
                ErrorKind::BlockedByRules,
                "request bodies are not forwarded",
            )
            .refused_by(Refusal::RequestBody));
        }
        Ok(endpoint)
    }

    /// Phase 6: `p~` tokens back to Graph's ids, only in the parameters
    /// that ask for them; the target Graph gets and the caller's headers
    /// the endpoint lets through.
    fn reidentify(
        &self,
        req: &Request<Bytes>,
        endpoint: &CompiledEndpoint,
        target: &Target,
    ) -> Result<(String, Vec<(HeaderName, HeaderValue)>), ProxyError> {
        let upstream_target = reidentify_for(
            endpoint,
            &target.path,
            target.query.as_deref(),
            &self.inner.pseudonymizer,
        )
        .map_err(|e| {
            ProxyError::new(Phase::Reidentify, ErrorKind::BadToken, e.to_string())
                .refused_by(Refusal::Reidentify)
        })?;
        let path_and_query = match &upstream_target.query {
            Some(q) => format!("{}?{q}", upstream_target.path),
            None => upstream_target.path.clone(),
        };
        let forwarded = endpoint
            .allowed_headers
            .iter()
            .filter(|h| !is_hop_by_hop(h))
            .filter_map(|h| {
                let name = HeaderName::from_bytes(h.as_bytes()).ok()?;
                req.headers().get(&name).map(|v| (name, v.clone()))
            })
            .collect();
        Ok((path_and_query, forwarded))
    }

    /// Phase 7: the Graph call under one deadline, timed for the log; a
    /// 403 for missing consent drops the cached token (no retry).
    async fn forward(
        &self,
        method: &Method,
        path_and_query: &str,
        forwarded: &[(HeaderName, HeaderValue)],
        out: &mut Outcome,
    ) -> Result<upstream::UpstreamResponse, ProxyError> {
        let started = Instant::now();
        let upstream = self.upstream_phase(method, path_and_query, forwarded).await;
        out.upstream_latency = Some(started.elapsed());
        let upstream = upstream?;
        out.upstream_status = Some(upstream.status.as_u16());
        out.bytes_in = upstream.body.len();
        Ok(upstream)
    }

    /// Phase 1: the headers checked and one canonical target, from the
    /// request line or, when the caller names it so, Psoxy's target headers
    /// (which pass the same checks).
    fn normalize(
        &self,
        req: &Request<Bytes>,
        ctx: &RequestContext,
        out: &mut Outcome,
    ) -> Result<Target, ProxyError> {
        let limits = &self.inner.config.limits;
        normalize::check_headers(req.headers(), limits)?;
        let target = if ctx.host_built_uri || req.version() == http::Version::HTTP_2 {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            normalize::normalize_raw_target(pq.as_bytes(), limits)?
        } else {
            normalize::normalize_target(req.uri(), limits)?
        };
        match normalize::target_from_headers(req.headers(), &target, limits)? {
            Some(named) => {
                out.target_from_headers = true;
                Ok(named)
            }
            None => Ok(target),
        }
    }

    /// The caller IP allowlist (before everything else but normalization,
    /// the health check included).
    fn check_ip(&self, ctx: &RequestContext) -> Result<(), ProxyError> {
        crate::auth::check_ip(&self.inner.config.ip_allowlist, ctx.remote_ip)
    }

    /// Authenticates the caller ([`CallerAuthMode::authenticate`]).
    async fn authenticate(
        &self,
        req: &Request<Bytes>,
        ctx: &RequestContext,
    ) -> Result<Option<CallerIdentity>, ProxyError> {
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.inner
            .config
            .caller_auth
            .authenticate(authorization, ctx.aws_caller_arn.as_deref())
            .await
    }

    /// Phase 7 under one deadline: token, call, and one retry with a fresh
    /// token when Graph answers 401 and the token provider allows it (see
    /// [`crate::token::TokenProvider::invalidate_rejected`]).
    async fn upstream_phase(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<upstream::UpstreamResponse, ProxyError> {
        let deadline = self.inner.upstream.total_timeout();
        let tokens = &self.inner.tokens;
        let phase = async {
            let (mut resp, token) = self.call_upstream(method, path_and_query, headers).await?;
            if resp.status == StatusCode::UNAUTHORIZED && tokens.invalidate_rejected(&token) {
                drop(resp);
                resp = self.call_upstream(method, path_and_query, headers).await?.0;
            }
            if resp.status != StatusCode::UNAUTHORIZED && !resp.status.is_server_error() {
                tokens.token_accepted();
            }
            Ok(resp)
        };
        match tokio::time::timeout(deadline, phase).await {
            Ok(result) => result,
            Err(_) => Err(ProxyError::new(
                Phase::Upstream,
                ErrorKind::UpstreamTimeout,
                format!(
                    "Graph did not answer within {} s",
                    deadline.as_secs_f64().ceil() as u64
                ),
            )),
        }
    }

    async fn call_upstream(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<(upstream::UpstreamResponse, veil_engine::Secret), ProxyError> {
        let token = self.inner.tokens.token().await.map_err(|e| {
            let kind = if e.retryable {
                ErrorKind::TokenTemporarilyUnavailable
            } else {
                ErrorKind::TokenUnavailable
            };
            ProxyError::new(Phase::Token, kind, format!("no Graph token: {e}"))
        })?;
        let bearer = String::from_utf8_lossy(token.expose()).into_owned();
        let resp = self
            .inner
            .upstream
            .send(method, path_and_query, headers.to_vec(), &bearer)
            .await?;
        Ok((resp, token))
    }
}

/// `Retry-After` for the kinds that answer 503.
pub fn retry_after(kind: ErrorKind) -> Option<(HeaderName, HeaderValue)> {
    kind.retry_after_secs()
        .map(|s| (http::header::RETRY_AFTER, HeaderValue::from(s)))
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "authorization"
            | "host"
            | "cookie"
    ) || name.starts_with("x-forwarded")
}

impl tower::Service<Request<Bytes>> for Proxy {
    type Response = Response<Bytes>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Response<Bytes>, std::convert::Infallible>>
                + Send,
        >,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}
