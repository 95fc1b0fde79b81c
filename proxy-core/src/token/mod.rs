//! Graph access tokens: one trait, one module per way of getting a token.
//!
//! The proxy asks a [`TokenProvider`] for a bearer token before each
//! upstream call and calls [`TokenProvider::invalidate`] when Graph answers
//! 401, so the next call fetches a fresh one.

use std::future::Future;
use std::pin::Pin;

use crate::secret::Secret;

/// A boxed, sendable future (the trait must be object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why no token could be had. The message tells an administrator what to
/// do and never contains a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    pub message: String,
    /// Whether trying again later may help (network trouble, throttling).
    pub retryable: bool,
}

/// A source of Graph bearer tokens.
pub trait TokenProvider: Send + Sync {
    /// Short name for the health check and logs: `static`, `aws-sts`, …
    fn kind(&self) -> &'static str;
    /// A valid bearer token (without the `Bearer ` prefix).
    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>>;
    /// Forget a cached token that Graph rejected.
    fn invalidate(&self) {}
    /// Whether this provider is for development only (the health check says so).
    fn development_only(&self) -> bool {
        false
    }
}

/// A JWT signed by the host cloud (AWS STS, Cognito, the GCP metadata
/// server, a projected token file): the proof of who Veil runs as, which
/// Entra ID exchanges for a Graph token (workload identity federation).
pub trait HostIdentity: Send + Sync {
    /// The provider name, as configured: `aws-sts`, `aws-cognito`, `gcp`, `file`.
    fn kind(&self) -> &'static str;
    /// A fresh host token (a compact JWT). Errors say what to fix on the
    /// host side ("no AWS credentials", "not running on GCP?").
    fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>>;
}

/// A fixed token from `VEIL_UPSTREAM_TOKEN`: development and tests only.
#[derive(Debug)]
pub struct StaticToken(Secret);

/// The environment variable of the static token.
pub const ENV_UPSTREAM_TOKEN: &str = "VEIL_UPSTREAM_TOKEN";

impl StaticToken {
    pub fn new(token: Secret) -> Self {
        StaticToken(token)
    }
}

impl TokenProvider for StaticToken {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }

    fn development_only(&self) -> bool {
        true
    }
}
