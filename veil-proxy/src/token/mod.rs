//! Graph access tokens: one trait, one module per way of getting a token.
//!
//! The proxy asks a [`TokenProvider`] for a bearer token before each
//! upstream call. When Graph answers 401 it calls
//! [`TokenProvider::invalidate_rejected`] with the token Graph refused and
//! retries once only if that says so; a caching provider evicts a refused
//! token at most once until Graph accepts a token again (or a backoff
//! passes), so a Graph that refuses every token cannot turn each request
//! into a token exchange. [`TokenProvider::token_accepted`] tells the
//! provider that Graph took the current token.

pub mod aws_cognito;
pub mod aws_sts;
pub mod cache;
pub mod entra;
pub mod file;
pub mod gcp;

use std::future::Future;
use std::pin::Pin;

use veil_engine::Secret;

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

/// Why a host identity cannot be built from its settings. The message
/// names the variable to set or fix.
#[derive(Debug, thiserror::Error)]
pub enum ProviderConfigError {
    #[error(
        "the `file` token provider needs {} (or {}): the path of a projected service account token",
        file::ENV_FEDERATED_TOKEN_FILE,
        file::ENV_AZURE_FEDERATED_TOKEN_FILE
    )]
    NoTokenFile,
    #[error(
        "{} must be `host` or `host:port` (no scheme or path), got `{got}`",
        gcp::ENV_METADATA_HOST
    )]
    MetadataHost { got: String },
    #[error("{} must not be empty", gcp::ENV_GCP_AUDIENCE)]
    EmptyAudience,
    #[error("cannot build the metadata HTTP client: {0}")]
    MetadataClient(reqwest::Error),
    /// The provider's own settings (`VEIL_AWS_STS_*`, `VEIL_COGNITO_*`).
    #[error("{0}")]
    Settings(crate::env::ConfigErrors),
    /// The AWS client's settings (credentials, region, endpoint), with
    /// the provider's name.
    #[error("{provider}: {cause}")]
    Aws {
        provider: &'static str,
        cause: crate::aws::AwsError,
    },
    #[error("aws-sts: {0}; GetWebIdentityToken exists only on the regional STS endpoints")]
    StsRegion(crate::aws::AwsError),
    /// Several problems, one a line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ProviderConfigError>),
}

impl From<crate::aws::AwsError> for TokenError {
    fn from(e: crate::aws::AwsError) -> TokenError {
        TokenError {
            retryable: e.retryable,
            message: e.message,
        }
    }
}

/// A source of Graph bearer tokens.
pub trait TokenProvider: Send + Sync {
    /// Short name for the health check and logs: `static`, `aws-sts`, …
    fn kind(&self) -> &'static str;
    /// A valid bearer token (without the `Bearer ` prefix).
    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>>;
    /// Forget a cached token that Graph rejected.
    fn invalidate(&self) {}
    /// Graph answered 401 to `rejected`. Returns whether one retry may get
    /// another token (the provider evicted it, or holds a newer one). The
    /// default evicts and says yes; caching providers rate-limit this.
    fn invalidate_rejected(&self, rejected: &Secret) -> bool {
        let _ = rejected;
        self.invalidate();
        true
    }
    /// Graph accepted the current token (any answer but 401).
    fn token_accepted(&self) {}
    /// Whether this provider is for development only (the health check says so).
    fn development_only(&self) -> bool {
        false
    }
    /// Graph answered 403 `Authorization_RequestDenied` /
    /// `Authorization_IdentityNotFound`: a token cached from before admin
    /// consent carries no roles. Evicts the cached token, at most once per
    /// interval so a missing consent cannot turn every request into an
    /// exchange. Returns whether a token was evicted.
    fn invalidate_after_forbidden(&self) -> bool {
        false
    }
    /// What the health check shows about the cached token (never the token).
    fn status(&self) -> TokenStatus {
        TokenStatus::default()
    }
    /// Exchanges for a new Graph token so far (none for fixed tokens).
    fn refreshes(&self) -> TokenRefreshes {
        TokenRefreshes::default()
    }
}

/// How many times a provider fetched a new Graph token, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenRefreshes {
    pub succeeded: u64,
    pub failed: u64,
}

/// The state of a provider's cache, for the health check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStatus {
    /// Whether the provider caches tokens at all (`false` for `static`).
    pub caches: bool,
    /// Whether a usable token is cached now.
    pub cached: bool,
    /// When the cached token expires.
    pub expires_at: Option<std::time::SystemTime>,
    /// The last failure, while it is newer than the last success: the
    /// actionable message (no token).
    pub last_error: Option<String>,
    /// When that failure happened.
    pub last_error_at: Option<std::time::SystemTime>,
}

impl TokenStatus {
    /// The health check's `graphToken` object.
    pub fn to_json(&self, kind: &str, development_only: bool) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("provider".into(), kind.into());
        o.insert("developmentOnly".into(), development_only.into());
        if development_only {
            o.insert(
                "warning".into(),
                format!("DEVELOPMENT ONLY: a fixed token from {ENV_UPSTREAM_TOKEN}; use workload identity federation (VEIL_TOKEN_PROVIDER) in production").into(),
            );
        }
        if self.caches {
            o.insert("cached".into(), self.cached.into());
            let now = std::time::SystemTime::now();
            if let Some(at) = self.expires_at {
                o.insert("expiresAt".into(), rfc3339(at).into());
                let left = at.duration_since(now).map(|d| d.as_secs()).unwrap_or(0);
                o.insert("expiresInSeconds".into(), left.into());
            }
            if let Some(e) = &self.last_error {
                o.insert("lastError".into(), e.clone().into());
            }
            if let Some(at) = self.last_error_at {
                o.insert("lastErrorAt".into(), rfc3339(at).into());
            }
        }
        serde_json::Value::Object(o)
    }
}

/// `2026-11-06T10:00:00Z` (UTC, whole seconds).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_793_959_200);
        assert_eq!(rfc3339(t), "2026-11-06T10:00:00Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_399);
        assert_eq!(rfc3339(leap), "2000-02-28T23:59:59Z");
    }
}
