//! OpenID Connect caller authentication.
//!
//! The analytics vendor calls Veil with `Authorization: Bearer <JWT>`, an
//! OpenID Connect ID token — typically a Google-signed token of the
//! vendor's service account (issuer `https://accounts.google.com`). A
//! [`CallerAuth`] verifies it against one configured issuer:
//!
//! 1. the header must be `Bearer` followed by a compact JWS with exactly
//!    three parts; its `alg` must be one of the configured asymmetric
//!    algorithms (`none` and every `HS*` are refused outright, so a token
//!    "signed" with the issuer's public key as an HMAC secret never gets
//!    near a key), and `crit` extensions are refused;
//! 2. the signing key is the JWK with the token's `kid` in the issuer's
//!    JWKS (or, when the token has no `kid`, the one key of the right type);
//!    the key's `kty`/`crv` and, when present, its `alg` must match the
//!    token's algorithm;
//! 3. the signature, `iss` (exact), `aud` (one of the configured audiences),
//!    `exp` and `nbf` (with leeway) and `iat` (not in the future beyond the
//!    leeway) are checked;
//! 4. the caller must be allowed: its `sub` is in the subject allowlist, or
//!    its `email` is in the email allowlist and the token says
//!    `email_verified: true` (a token without the claim is not admitted by
//!    its e-mail: an issuer that does not vouch for the address could hand
//!    out any).
//!
//! A token that fails 1–3 gets `401` ([`ErrorKind::Unauthenticated`]); a
//! valid token of a caller that is not allowed gets `403`
//! ([`ErrorKind::Forbidden`]). When the issuer's signing keys cannot be had
//! at all (nothing cached, the fetch failed), the token cannot be judged:
//! that is Veil's problem, not the caller's, and answers `503`
//! ([`ErrorKind::CallerAuthUnavailable`], with `Retry-After`). Messages name
//! what failed but never echo the token or its claims.
//!
//! Where things are: [`config`] (the issuer's settings and their
//! validation), [`jose`] (the bearer token's shape, JOSE header, signature
//! and registered claims), [`jwks`] (which keys are usable, and which one
//! verifies a token) and [`key_source`] (fetching and caching the key set).

mod config;
mod jose;
mod jwks;
mod key_source;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

pub use config::{CallerAuthConfig, OidcConfigError};
use jose::TokenHeader;
use jwks::{select_key, selection_error, KeySet, Selection};
use key_source::KeySource;

use crate::error::{ErrorKind, Phase, ProxyError};
use crate::refresh::{Clock, SystemClock};

/// The authenticated caller, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    /// The token's `email`, when the token says it is verified.
    pub email: Option<String>,
}

/// Verifies callers' bearer tokens. Cheap to clone: clones share the
/// HTTP client and the JWKS cache.
#[derive(Clone)]
pub struct CallerAuth {
    inner: Arc<Inner>,
}

struct Inner {
    config: CallerAuthConfig,
    keys: KeySource,
}

impl CallerAuth {
    /// Checks the configuration; makes no request (keys are fetched on first use).
    pub fn new(config: CallerAuthConfig, http: reqwest::Client) -> Result<Self, OidcConfigError> {
        CallerAuth::with_clock(config, http, Arc::new(SystemClock))
    }

    /// [`CallerAuth::new`] with the clock that ages the cached key set.
    pub fn with_clock(
        config: CallerAuthConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OidcConfigError> {
        let location = config::validate(&config)?;
        let keys = KeySource::new(config.issuer.clone(), http, location, clock);
        Ok(CallerAuth {
            inner: Arc::new(Inner { config, keys }),
        })
    }

    /// Verifies the request's `Authorization` header value (`None`: the
    /// header is absent) and returns who the caller is.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, ProxyError> {
        let attempts = self.inner.keys.attempts();
        let config = &self.inner.config;
        let token = jose::bearer_token(authorization)?;
        let header = jose::token_header(token)?;
        if !config.algorithms.contains(&header.alg) {
            return Err(unauthenticated("signing algorithm not accepted"));
        }
        let (set, index) = self.signing_key(&header, attempts).await?;
        let key = set
            .keys
            .get(index)
            .ok_or_else(|| unauthenticated("unknown signing key id"))?;
        let claims = jose::check_token(config, token, header.alg, &key.key)?;
        self.inner.authorize(&claims)
    }

    /// The issuer whose tokens are accepted (for the log's caller identity).
    pub fn issuer(&self) -> &str {
        &self.inner.config.issuer
    }

    /// One line for the health check.
    pub fn describe(&self) -> String {
        let config = &self.inner.config;
        format!(
            "oidc issuer={} audiences={} subjects={} emails={}",
            config.issuer,
            config.audiences.join(","),
            config.allowed_subjects.len(),
            config.allowed_emails.len()
        )
    }

    /// Finds the key for the token, refetching the key set once if the key
    /// is not in it (and no fetch happened since `attempts`).
    async fn signing_key(
        &self,
        header: &TokenHeader,
        attempts: u64,
    ) -> Result<(Arc<KeySet>, usize), ProxyError> {
        let kid = header.kid.as_deref();
        let set = self.inner.keys.key_set().await?;
        match select_key(&set, kid, header.alg) {
            Selection::Found(index) => return Ok((set, index)),
            Selection::Missing => {}
            other => return Err(selection_error(other, kid)),
        }
        let set = self.inner.keys.refetch(attempts).await?;
        match select_key(&set, kid, header.alg) {
            Selection::Found(index) => Ok((set, index)),
            other => Err(selection_error(other, kid)),
        }
    }
}

impl fmt::Debug for CallerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerAuth")
            .field("describe", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Applies the subject and email allowlists to a valid token's claims.
    fn authorize(&self, claims: &Map<String, Value>) -> Result<Caller, ProxyError> {
        let config = &self.config;
        let Some(subject) = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            return Err(unauthenticated("token lacks required claim `sub`"));
        };
        let email_verified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => *verified,
            Some(Value::String(verified)) => verified.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| email_verified && !e.is_empty());
        let allowed = config.allowed_subjects.iter().any(|s| s == subject)
            || email.is_some_and(|email| {
                config
                    .allowed_emails
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(email))
            });
        if !allowed {
            return Err(ProxyError::new(
                Phase::Authenticate,
                ErrorKind::Forbidden,
                "caller is not allowed",
            ));
        }
        Ok(Caller {
            subject: subject.to_owned(),
            email: email.map(str::to_owned),
        })
    }
}

fn unauthenticated(message: impl Into<String>) -> ProxyError {
    ProxyError::new(Phase::Authenticate, ErrorKind::Unauthenticated, message)
}
