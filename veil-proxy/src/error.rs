//! The proxy's one error type.
//!
//! Like a pingora error, a [`ProxyError`] records **where** the request
//! failed (the [`Phase`]), **what** went wrong (the [`ErrorKind`], which
//! fixes the HTTP status, Veil's error code and Psoxy's code for
//! `X-Psoxy-Error`), and whether retrying may help. Its message is safe to
//! show the caller: it never holds secrets, tokens, ids or personal data.

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
            | ErrorKind::UpstreamTooLarge => StatusCode::BAD_GATEWAY,
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

/// A request that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    pub phase: Phase,
    pub kind: ErrorKind,
    /// Safe to show the caller.
    pub message: String,
}

impl ProxyError {
    pub fn new(phase: Phase, kind: ErrorKind, message: impl Into<String>) -> Self {
        ProxyError {
            phase,
            kind,
            message: message.into(),
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
