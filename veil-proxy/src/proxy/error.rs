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
    /// Veil could not get a Graph token (502).
    TokenUnavailable,
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
            | ErrorKind::UpstreamInvalid => StatusCode::BAD_GATEWAY,
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
            ErrorKind::TokenUnavailable => "upstream_token_unavailable",
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
            | ErrorKind::BadToken => "BLOCKED_BY_RULES",
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => "UNAUTHORIZED",
            ErrorKind::BlockedByRules => "BLOCKED_BY_RULES",
            ErrorKind::TokenUnavailable => "CONNECTION_SETUP",
            ErrorKind::UpstreamConnect
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamInvalid => "API_ERROR",
            ErrorKind::SanitizeFailed => "SANITIZATION_ERROR",
            ErrorKind::Config => "CONFIGURATION_FAILURE",
        }
    }

    /// Whether the same request may succeed later.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::TokenUnavailable | ErrorKind::UpstreamConnect | ErrorKind::UpstreamTimeout
        )
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
