//! The proxy's one error type.
//!
//! Like a pingora error, a [`ProxyError`] records **where** the request
//! failed (the [`Phase`]), **what** went wrong (the [`ErrorKind`], which
//! fixes the HTTP status, Veil's error code and Psoxy's code for
//! `X-Psoxy-Error`), and whether retrying may help. Its message is safe to
//! show the caller: it never holds secrets, tokens, ids or personal data.
//!
//! It also keeps, for the log only, **why**: which check refused the
//! request ([`Refusal`]), how a call to Graph failed ([`UpstreamCause`]:
//! DNS, connect, TLS, timeout, reset, body) and the underlying error's
//! text (`detail`). None of these is ever sent to the caller
//! ([`ProxyError::body`] holds only the code and the message).

use std::fmt;

use http::StatusCode;

/// The phase of the pipeline a request was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Normalize,
    Health,
    Authenticate,
    Match,
    Reidentify,
    Token,
    Upstream,
    Respond,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Normalize => "normalize",
            Phase::Health => "health",
            Phase::Authenticate => "authenticate",
            Phase::Match => "match",
            Phase::Reidentify => "reidentify",
            Phase::Token => "token",
            Phase::Upstream => "upstream",
            Phase::Respond => "respond",
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request target or headers are malformed or hostile (400).
    BadRequest,
    /// The request is too large (414 for the target, 431 for headers).
    UriTooLong,
    HeadersTooLarge,
    /// No or invalid caller credentials (401).
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// The rules do not allow this request (403).
    BlockedByRules,
    /// A `p~` token did not decrypt (400).
    BadToken,
    /// Veil could not get a Graph token because of its configuration or
    /// Entra ID's refusal (502).
    TokenUnavailable,
    /// Veil could not get a Graph token for now: the token endpoint or the
    /// host identity is unreachable, failing or throttling, and no cached
    /// token is usable (503 with `Retry-After`).
    TokenTemporarilyUnavailable,
    /// The request body is larger than Veil accepts (413).
    PayloadTooLarge,
    /// The caller did not send its request (head or body) in time (408).
    RequestTimeout,
    /// Veil is at its limit of requests in flight, connections or memory
    /// for response bodies (503 with `Retry-After`).
    Overloaded,
    /// The caller's token could not be checked because the issuer's signing
    /// keys cannot be fetched: Veil's problem, not the caller's (503).
    CallerAuthUnavailable,
    /// Graph's answer is over Veil's size or nesting limits (502).
    UpstreamTooLarge,
    /// Graph could not be reached (502).
    UpstreamConnect,
    /// Graph did not answer in time (504).
    UpstreamTimeout,
    /// Graph's 2xx answer was not usable JSON (502).
    UpstreamInvalid,
    /// The sanitized answer is larger than the host can return (Lambda's
    /// 6 MB buffered response payload) (502).
    ResponseTooLarge,
    /// A rule could not be applied to Graph's answer (500): fail closed.
    SanitizeFailed,
    /// Veil is misconfigured (500).
    Config,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest | ErrorKind::BadToken => StatusCode::BAD_REQUEST,
            ErrorKind::UriTooLong => StatusCode::URI_TOO_LONG,
            ErrorKind::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden | ErrorKind::BlockedByRules => StatusCode::FORBIDDEN,
            ErrorKind::TokenUnavailable
            | ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamInvalid
            | ErrorKind::UpstreamTooLarge
            | ErrorKind::ResponseTooLarge => StatusCode::BAD_GATEWAY,
            ErrorKind::TokenTemporarilyUnavailable
            | ErrorKind::Overloaded
            | ErrorKind::CallerAuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::SanitizeFailed | ErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Veil's error code in the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::UriTooLong => "uri_too_long",
            ErrorKind::HeadersTooLarge => "headers_too_large",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::BlockedByRules => "blocked_by_rules",
            ErrorKind::BadToken => "invalid_reversible_token",
            ErrorKind::TokenUnavailable | ErrorKind::TokenTemporarilyUnavailable => {
                "upstream_token_unavailable"
            }
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::CallerAuthUnavailable => "caller_auth_unavailable",
            ErrorKind::UpstreamTooLarge => "upstream_response_too_large",
            ErrorKind::UpstreamConnect => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamInvalid => "upstream_invalid_response",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::SanitizeFailed => "sanitize_failed",
            ErrorKind::Config => "configuration_error",
        }
    }

    /// Psoxy's code, for the `X-Psoxy-Error` header.
    pub fn psoxy_code(self) -> &'static str {
        match self {
            ErrorKind::BadRequest
            | ErrorKind::UriTooLong
            | ErrorKind::HeadersTooLarge
            | ErrorKind::BadToken
            | ErrorKind::PayloadTooLarge
            | ErrorKind::RequestTimeout => "BLOCKED_BY_RULES",
            ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::CallerAuthUnavailable => "UNAUTHORIZED",
            ErrorKind::BlockedByRules => "BLOCKED_BY_RULES",
            ErrorKind::TokenUnavailable | ErrorKind::TokenTemporarilyUnavailable => {
                "CONNECTION_SETUP"
            }
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamInvalid
            | ErrorKind::UpstreamTooLarge
            | ErrorKind::ResponseTooLarge
            | ErrorKind::Overloaded => "API_ERROR",
            ErrorKind::SanitizeFailed => "SANITIZATION_ERROR",
            ErrorKind::Config => "CONFIGURATION_FAILURE",
        }
    }

    /// Whether the same request may succeed later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::TokenUnavailable
                | ErrorKind::TokenTemporarilyUnavailable
                | ErrorKind::UpstreamConnect
                | ErrorKind::UpstreamTimeout
                | ErrorKind::Overloaded
                | ErrorKind::CallerAuthUnavailable
        )
    }

    /// Seconds for `Retry-After`, for the kinds that answer 503: the
    /// caller should come back, and when.
    pub fn retry_after_secs(self) -> Option<u64> {
        match self {
            ErrorKind::Overloaded => Some(1),
            ErrorKind::TokenTemporarilyUnavailable | ErrorKind::CallerAuthUnavailable => Some(5),
            _ => None,
        }
    }
}

/// Which check refused a request: the log line's `refusal` and the
/// refusals metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// The request target or headers are malformed or hostile.
    RequestTarget,
    /// The target, the headers or the body are over Veil's limits.
    RequestSize,
    /// The caller did not send its request in time.
    RequestTimeout,
    /// Veil is at its limit of connections, requests or memory.
    Overloaded,
    /// The caller's address is not in the IP allowlist.
    IpAllowlist,
    /// Caller authentication (the error message says why).
    CallerAuth,
    /// No endpoint of the rules matches the path.
    NoEndpoint,
    /// The endpoint does not allow the method.
    Method,
    /// A path parameter is refused by its schema.
    PathParam,
    /// A query parameter is not allowed, repeated, or refused by its schema.
    QueryParam,
    /// `$select` names a property outside the endpoint's `responseSchema`.
    SelectProperty,
    /// `$expand` names a property outside the endpoint's `responseSchema`.
    ExpandProperty,
    /// The request carries a body (Veil forwards none).
    RequestBody,
    /// A `p~` token did not decrypt.
    Reidentify,
}

impl Refusal {
    pub const ALL: [Refusal; 14] = [
        Refusal::RequestTarget,
        Refusal::RequestSize,
        Refusal::RequestTimeout,
        Refusal::Overloaded,
        Refusal::IpAllowlist,
        Refusal::CallerAuth,
        Refusal::NoEndpoint,
        Refusal::Method,
        Refusal::PathParam,
        Refusal::QueryParam,
        Refusal::SelectProperty,
        Refusal::ExpandProperty,
        Refusal::RequestBody,
        Refusal::Reidentify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::RequestTarget => "request_target",
            Refusal::RequestSize => "request_size",
            Refusal::RequestTimeout => "request_timeout",
            Refusal::Overloaded => "overloaded",
            Refusal::IpAllowlist => "ip_allowlist",
            Refusal::CallerAuth => "caller_auth",
            Refusal::NoEndpoint => "no_endpoint",
            Refusal::Method => "method",
            Refusal::PathParam => "path_param",
            Refusal::QueryParam => "query_param",
            Refusal::SelectProperty => "select_property",
            Refusal::ExpandProperty => "expand_property",
            Refusal::RequestBody => "request_body",
            Refusal::Reidentify => "reidentify",
        }
    }
}

/// How a call to Graph failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamCause {
    /// Graph's host name did not resolve.
    Dns,
    /// The TCP connection was refused or could not be made.
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// A connect, read or total deadline passed.
    Timeout,
    /// The connection was reset or closed before the answer was complete.
    Reset,
    /// The answer's body is unusable: over Veil's limits, a corrupt gzip
    /// stream, an encoding Veil does not accept.
    Body,
}

impl UpstreamCause {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamCause::Dns => "dns",
            UpstreamCause::Connect => "connect",
            UpstreamCause::Tls => "tls",
            UpstreamCause::Timeout => "timeout",
            UpstreamCause::Reset => "reset",
            UpstreamCause::Body => "body",
        }
    }
}

/// A request that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub phase: Phase,
    pub kind: ErrorKind,
    /// Safe to show the caller.
    pub message: String,
    /// Which check refused the request, when the kind alone does not say
    /// (see [`ProxyError::refusal`]). Logged, never sent.
    pub refused_by: Option<Refusal>,
    /// How the call to Graph failed. Logged, never sent.
    pub upstream_cause: Option<UpstreamCause>,
    /// The underlying error (its whole chain). Logged, never sent: it may
    /// name hosts, addresses and library internals.
    pub detail: Option<String>,
}

impl ProxyError {
    pub fn new(phase: Phase, kind: ErrorKind, message: impl Into<String>) -> Self {
        ProxyError {
            phase,
            kind,
            message: message.into(),
            refused_by: None,
            upstream_cause: None,
            detail: None,
        }
    }

    /// Names the check that refused the request.
    pub fn refused_by(mut self, check: Refusal) -> Self {
        self.refused_by = Some(check);
        self
    }

    /// Records how the call to Graph failed.
    pub fn upstream_cause(mut self, cause: UpstreamCause) -> Self {
        self.upstream_cause = Some(cause);
        self
    }

    /// Keeps the underlying error for the log: the error and its sources,
    /// joined by `: `.
    pub fn caused_by(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            let more = s.to_string();
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = s.source();
        }
        self.detail = Some(text);
        self
    }

    /// Keeps a detail for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Which check refused the request: the one named, else the one the
    /// kind implies. `None` for failures that are not refusals (Graph,
    /// tokens, sanitizing, configuration).
    pub fn refusal(&self) -> Option<Refusal> {
        if self.refused_by.is_some() {
            return self.refused_by;
        }
        match self.kind {
            ErrorKind::BadRequest => Some(Refusal::RequestTarget),
            ErrorKind::UriTooLong | ErrorKind::HeadersTooLarge | ErrorKind::PayloadTooLarge => {
                Some(Refusal::RequestSize)
            }
            ErrorKind::RequestTimeout => Some(Refusal::RequestTimeout),
            ErrorKind::Overloaded => Some(Refusal::Overloaded),
            ErrorKind::Unauthenticated
            | ErrorKind::Forbidden
            | ErrorKind::CallerAuthUnavailable => Some(Refusal::CallerAuth),
            ErrorKind::BadToken => Some(Refusal::Reidentify),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// `{"error":{"code":…,"message":…}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.kind.code(), "message": self.message}})
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, in {}): {}",
            self.kind.code(),
            self.status().as_u16(),
            self.phase.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_logged_never_sent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by 10.0.0.7");
        let e = ProxyError::new(
            Phase::Upstream,
            ErrorKind::UpstreamConnect,
            "cannot connect to Graph",
        )
        .upstream_cause(UpstreamCause::Connect)
        .caused_by(&io);
        assert_eq!(e.detail.as_deref(), Some("refused by 10.0.0.7"));
        assert_eq!(e.upstream_cause, Some(UpstreamCause::Connect));
        let body = e.body().to_string();
        assert!(
            !body.contains("10.0.0.7") && !body.contains("connect\""),
            "{body}"
        );
        assert_eq!(e.refusal(), None);
    }

    #[test]
    fn refusals_follow_the_kind_unless_named() {
        let e = |k| ProxyError::new(Phase::Normalize, k, "x");
        assert_eq!(
            e(ErrorKind::PayloadTooLarge).refusal(),
            Some(Refusal::RequestSize)
        );
        assert_eq!(
            e(ErrorKind::Unauthenticated).refusal(),
            Some(Refusal::CallerAuth)
        );
        assert_eq!(e(ErrorKind::BlockedByRules).refusal(), None);
        assert_eq!(
            e(ErrorKind::Forbidden)
                .refused_by(Refusal::IpAllowlist)
                .refusal(),
            Some(Refusal::IpAllowlist)
        );
        assert_eq!(e(ErrorKind::SanitizeFailed).refusal(), None);
        let names: std::collections::BTreeSet<_> =
            Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Refusal::ALL.len());
    }

    #[test]
    fn the_response_size_limit_is_its_own_kind() {
        let k = ErrorKind::ResponseTooLarge;
        assert_eq!(k.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(k.code(), "response_too_large");
        assert_eq!(k.psoxy_code(), "API_ERROR");
        assert!(!k.retryable());
    }
}
