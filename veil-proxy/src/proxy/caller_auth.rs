//! Caller authentication (phase 3 of the pipeline).
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
//! The JWKS is fetched lazily, from the configured URL or from the issuer's
//! discovery document, and cached for the response's `Cache-Control:
//! max-age` (clamped to 5 minutes – 24 hours, 1 hour when absent).
//! Concurrent verifications share one fetch. A token with an unknown `kid`
//! triggers one refetch (at most one such refetch every 30 seconds), which
//! is how key rotation is picked up. When a fetch fails, the cached key set
//! (even an expired one) stays in use.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::header::{ACCEPT, CACHE_CONTROL};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::error::{ErrorKind, Phase, ProxyError};

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest accepted leeway: more would make `exp` meaningless.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Bounds and default for how long a fetched key set is trusted.
const MIN_KEY_SET_LIFETIME: Duration = Duration::from_secs(5 * 60);
const MAX_KEY_SET_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const DEFAULT_KEY_SET_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// At most one refetch for an unknown `kid` per this interval; also how
/// long an expired key set is used again after a failed refresh.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch with nothing cached, requests fail fast this long.
const COLD_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Timeout of one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery document or JWKS accepted.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// Largest bearer token accepted (Google ID tokens are about 1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Keys beyond this many in one JWKS are ignored.
const MAX_KEYS: usize = 100;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerAuthConfig {
    /// The exact `iss` required, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Where the issuer's JWKS is; when absent, the `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// Callers allowed by `sub`.
    pub allowed_subjects: Vec<String>,
    /// Callers allowed by `email` (only if the token says `email_verified: true`).
    pub allowed_emails: Vec<String>,
    /// Clock-skew allowance in seconds (default 60, at most 300).
    pub leeway_secs: u64,
    /// Accepted signing algorithms (default RS256 and ES256). HS* is never
    /// accepted; `none` cannot even be named.
    pub algorithms: Vec<Algorithm>,
}

impl Default for CallerAuthConfig {
    fn default() -> Self {
        CallerAuthConfig {
            issuer: String::new(),
            audiences: Vec::new(),
            jwks_url: None,
            allowed_subjects: Vec::new(),
            allowed_emails: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        }
    }
}

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
    http: reqwest::Client,
    /// The configured JWKS URL, or the discovery document's URL.
    source: KeySource,
    /// The current key set; read without waiting, replaced under `fetch`.
    cache: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching: concurrent verifications share one fetch.
    fetch: Mutex<FetchState>,
    /// Incremented after every fetch attempt, so that a task that waited
    /// for `fetch` knows another task just tried.
    attempts: AtomicU64,
}

enum KeySource {
    Jwks(Url),
    Discovery(Url),
}

#[derive(Default)]
struct FetchState {
    /// The JWKS URL found through discovery.
    discovered_jwks: Option<Url>,
    /// When the last refetch for an unknown key was made.
    last_refetch: Option<Instant>,
    /// With nothing cached, no fetch is tried before this.
    cold_retry_at: Option<Instant>,
}

struct KeySet {
    keys: Arc<[StoredKey]>,
    fetched_at: Instant,
    expires_at: Instant,
}

struct StoredKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// The parts of the token's JOSE header that matter here.
struct TokenHeader {
    alg: Algorithm,
    kid: Option<String>,
}

enum Selection {
    Found(usize),
    /// No key has the token's `kid` (or, without `kid`, none fits).
    Missing,
    /// A key has the `kid`, but its type or `alg` does not fit.
    Mismatch,
    /// No `kid`, and several keys fit.
    Ambiguous,
}

impl CallerAuth {
    /// Checks the configuration; makes no request (keys are fetched on first use).
    pub fn new(config: CallerAuthConfig, http: reqwest::Client) -> Result<Self, String> {
        let source = validate_config(&config)?;
        Ok(CallerAuth {
            inner: Arc::new(Inner {
                config,
                http,
                source,
                cache: RwLock::new(None),
                fetch: Mutex::new(FetchState::default()),
                attempts: AtomicU64::new(0),
            }),
        })
    }

    /// Verifies the request's `Authorization` header value (`None`: the
    /// header is absent) and returns who the caller is.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Caller, ProxyError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let token = bearer_token(authorization)?;
        let header = token_header(token)?;
        if !config.algorithms.contains(&header.alg) {
            return Err(unauthenticated("signing algorithm not accepted"));
        }
        let (set, index) = self.signing_key(&header, started).await?;
        let key = set
            .keys
            .get(index)
            .ok_or_else(|| unauthenticated("unknown signing key id"))?;
        let claims = self.inner.check_token(token, header.alg, &key.key)?;
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
    /// is not in it.
    async fn signing_key(
        &self,
        header: &TokenHeader,
        started: Instant,
    ) -> Result<(Arc<KeySet>, usize), ProxyError> {
        let kid = header.kid.as_deref();
        let set = self.inner.key_set(None).await?;
        match select_key(&set, kid, header.alg) {
            Selection::Found(index) => return Ok((set, index)),
            Selection::Missing => {}
            other => return Err(selection_error(other, kid)),
        }
        let set = self.inner.key_set(Some(started)).await?;
        match select_key(&set, kid, header.alg) {
            Selection::Found(index) => Ok((set, index)),
            other => Err(selection_error(other, kid)),
        }
    }

    #[cfg(test)]
    fn expire_cache(&self) {
        let mut cache = self
            .inner
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(set) = cache.take() {
            let now = Instant::now();
            *cache = Some(Arc::new(KeySet {
                keys: set.keys.clone(),
                fetched_at: set.fetched_at,
                expires_at: now,
            }));
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
    fn cached(&self) -> Option<Arc<KeySet>> {
        match self.cache.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, set: Arc<KeySet>) {
        match self.cache.write() {
            Ok(mut guard) => *guard = Some(set),
            Err(poisoned) => *poisoned.into_inner() = Some(set),
        }
    }

    /// The key set to use. `refresh_since: None` gives the cached set while
    /// it is fresh, fetching it otherwise; `Some(started)` asks for a set
    /// fetched after `started` (the caller did not find its key), which
    /// costs a refetch unless one happened meanwhile or the last refetch
    /// was too recent.
    async fn key_set(&self, refresh_since: Option<Instant>) -> Result<Arc<KeySet>, ProxyError> {
        if let Some(set) = self.cached() {
            if is_usable(&set, refresh_since, Instant::now()) {
                return Ok(set);
            }
        }
        let attempts_seen = self.attempts.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        let current = self.cached();
        let now = Instant::now();
        if let Some(set) = &current {
            if is_usable(set, refresh_since, now) {
                return Ok(set.clone());
            }
        }
        if self.attempts.load(Ordering::Acquire) != attempts_seen {
            // Another task tried while this one waited: share its outcome.
            return current.ok_or_else(keys_unavailable);
        }
        match refresh_since {
            None => {
                if current.is_none() && state.cold_retry_at.is_some_and(|at| now < at) {
                    return Err(keys_unavailable());
                }
            }
            Some(_) => {
                if state
                    .last_refetch
                    .is_some_and(|at| now.duration_since(at) < REFETCH_INTERVAL)
                {
                    return current.ok_or_else(keys_unavailable);
                }
                state.last_refetch = Some(now);
            }
        }
        let fetched = self.fetch_key_set(&mut state).await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        let now = Instant::now();
        match fetched {
            Ok(set) => {
                tracing::debug!(
                    issuer = %self.config.issuer,
                    keys = set.keys.len(),
                    "caller auth: fetched the issuer's signing keys"
                );
                state.cold_retry_at = None;
                let set = Arc::new(set);
                self.store(set.clone());
                Ok(set)
            }
            Err(reason) => {
                match current {
                    Some(set) => {
                        tracing::warn!(
                            issuer = %self.config.issuer,
                            reason = %reason,
                            "caller auth: could not refresh the issuer's signing keys; keeping the cached ones"
                        );
                        // Keep using what we have; try again after a while.
                        let retry_at = now.checked_add(REFETCH_INTERVAL).unwrap_or(now);
                        let set = Arc::new(KeySet {
                            keys: set.keys.clone(),
                            fetched_at: set.fetched_at,
                            expires_at: set.expires_at.max(retry_at),
                        });
                        self.store(set.clone());
                        Ok(set)
                    }
                    None => {
                        tracing::warn!(
                            issuer = %self.config.issuer,
                            reason = %reason,
                            "caller auth: could not fetch the issuer's signing keys"
                        );
                        state.cold_retry_at = now.checked_add(COLD_RETRY_INTERVAL);
                        Err(ProxyError::new(
                        Phase::Authenticate,
                        ErrorKind::CallerAuthUnavailable,
                        format!("the issuer's signing keys are unavailable ({reason}); retry shortly"),
                    ))
                    }
                }
            }
        }
    }

    /// Fetches (discovering its URL first if need be) and parses the JWKS.
    async fn fetch_key_set(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let jwks_url = match &self.source {
            KeySource::Jwks(url) => url.clone(),
            KeySource::Discovery(discovery_url) => match &state.discovered_jwks {
                Some(url) => url.clone(),
                None => {
                    let url = self.discover(discovery_url).await?;
                    state.discovered_jwks = Some(url.clone());
                    url
                }
            },
        };
        let (body, cache_control) = self.get(&jwks_url).await.map_err(|e| format!("JWKS {e}"))?;
        let keys = parse_jwks(&body)?;
        let fetched_at = Instant::now();
        let lifetime = key_set_lifetime(cache_control.as_deref());
        let expires_at = fetched_at.checked_add(lifetime).unwrap_or(fetched_at);
        Ok(KeySet {
            keys: keys.into(),
            fetched_at,
            expires_at,
        })
    }

    /// Reads the JWKS URL from the issuer's discovery document.
    async fn discover(&self, discovery_url: &Url) -> Result<Url, String> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let (body, _) = self
            .get(discovery_url)
            .await
            .map_err(|e| format!("discovery {e}"))?;
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|_| "discovery document is not valid".to_string())?;
        if document.issuer != self.config.issuer {
            return Err("discovery document names another issuer".into());
        }
        fetch_url(&document.jwks_uri).map_err(|e| format!("discovery document's jwks_uri: {e}"))
    }

    /// GETs a JSON document: its body and `Cache-Control` header.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, Option<String>), String> {
        let mut response = self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "request timed out"
                } else {
                    "request failed"
                }
                .to_string()
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("request answered HTTP {}", status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
        {
            return Err("response too large".into());
        }
        let cache_control = response
            .headers()
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    "response timed out"
                } else {
                    "response failed"
                }
                .to_string()
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err("response too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, cache_control))
    }

    /// Checks the signature and the registered claims; returns the claims.
    fn check_token(
        &self,
        token: &str,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<Map<String, Value>, ProxyError> {
        let config = &self.config;
        let mut validation = Validation::new(alg);
        validation.leeway = config.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&config.audiences);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, key, &validation)
            .map_err(|e| jwt_error(e.kind()))?;
        let Value::Object(claims) = data.claims else {
            return Err(unauthenticated("token claims are malformed"));
        };
        // `iss` must be exactly the issuer, not a list that contains it.
        if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
            return Err(unauthenticated("issuer not accepted"));
        }
        match claims.get("iat") {
            None | Some(Value::Null) => {}
            Some(Value::Number(iat)) => {
                let latest = unix_now().saturating_add(config.leeway_secs) as f64;
                if iat.as_f64().is_none_or(|iat| iat > latest) {
                    return Err(unauthenticated("token issued in the future"));
                }
            }
            Some(_) => return Err(unauthenticated("claim `iat` is malformed")),
        }
        Ok(claims)
    }

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

fn keys_unavailable() -> ProxyError {
    ProxyError::new(
        Phase::Authenticate,
        ErrorKind::CallerAuthUnavailable,
        "the issuer's signing keys are unavailable; retry shortly",
    )
}

fn is_usable(set: &KeySet, refresh_since: Option<Instant>, now: Instant) -> bool {
    match refresh_since {
        None => now < set.expires_at,
        Some(started) => set.fetched_at >= started,
    }
}

fn selection_error(selection: Selection, kid: Option<&str>) -> ProxyError {
    unauthenticated(match (selection, kid) {
        (Selection::Mismatch, _) => "signing key does not match the token's algorithm",
        (Selection::Ambiguous, _) => "token has no key id and several signing keys match",
        (_, Some(_)) => "unknown signing key id",
        (_, None) => "token has no key id and no signing key matches its algorithm",
    })
}

fn jwt_error(kind: &jsonwebtoken::errors::ErrorKind) -> ProxyError {
    use jsonwebtoken::errors::ErrorKind as Jwt;
    match kind {
        Jwt::InvalidSignature => unauthenticated("invalid token signature"),
        Jwt::ExpiredSignature => unauthenticated("token expired"),
        Jwt::ImmatureSignature => unauthenticated("token not yet valid"),
        Jwt::InvalidAudience => unauthenticated("audience not accepted"),
        Jwt::InvalidIssuer => unauthenticated("issuer not accepted"),
        Jwt::MissingRequiredClaim(claim) => unauthenticated(format!(
            "token lacks required claim `{}`",
            claim_name(claim)
        )),
        Jwt::InvalidClaimFormat(claim) => {
            unauthenticated(format!("claim `{}` is malformed", claim_name(claim)))
        }
        Jwt::InvalidAlgorithm | Jwt::MissingAlgorithm | Jwt::InvalidAlgorithmName => {
            unauthenticated("signing key does not match the token's algorithm")
        }
        Jwt::InvalidRsaKey(_)
        | Jwt::InvalidEcdsaKey
        | Jwt::InvalidEddsaKey
        | Jwt::InvalidKeyFormat => unauthenticated("signing key is unusable"),
        Jwt::Base64(_) | Jwt::Json(_) | Jwt::Utf8(_) | Jwt::InvalidToken => {
            unauthenticated("token is malformed")
        }
        _ => unauthenticated("token rejected"),
    }
}

/// Only the registered claim names jsonwebtoken reports; never anything
/// taken from the token.
fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "?",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Extracts the token from `Bearer <token>` and checks its shape.
fn bearer_token(authorization: Option<&str>) -> Result<&str, ProxyError> {
    let value = authorization.ok_or_else(|| unauthenticated("missing Authorization header"))?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthenticated(
            "Authorization header must use the Bearer scheme",
        ));
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(unauthenticated("bearer token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthenticated("bearer token is too long"));
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if token.split('.').count() != 3 || !token.bytes().all(|b| b == b'.' || base64url(b)) {
        return Err(unauthenticated("bearer token is not a JWT"));
    }
    Ok(token)
}

/// Reads the JOSE header and refuses what must never be verified.
fn token_header(token: &str) -> Result<TokenHeader, ProxyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthenticated("bearer token is not a JWT"));
    };
    let malformed = || unauthenticated("token header is malformed");
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(malformed());
    };
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(unauthenticated("token header lacks `alg`"));
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(unauthenticated(
            "unsigned tokens (alg none) are not accepted",
        ));
    }
    if alg
        .get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("hs"))
    {
        return Err(unauthenticated(
            "symmetric signing algorithms (HS*) are not accepted",
        ));
    }
    let alg =
        Algorithm::from_str(alg).map_err(|_| unauthenticated("signing algorithm not accepted"))?;
    if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(unauthenticated(
            "symmetric signing algorithms (HS*) are not accepted",
        ));
    }
    if header.contains_key("crit") {
        return Err(unauthenticated(
            "token uses critical header extensions, which are not supported",
        ));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed()),
    };
    if payload.is_empty() {
        return Err(unauthenticated("token claims are malformed"));
    }
    if signature.is_empty() {
        return Err(unauthenticated("token signature is missing"));
    }
    Ok(TokenHeader { alg, kid })
}

fn required_kind(alg: Algorithm) -> Option<KeyKind> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(KeyKind::Rsa),
        Algorithm::ES256 => Some(KeyKind::EcP256),
        Algorithm::ES384 => Some(KeyKind::EcP384),
        Algorithm::EdDSA => Some(KeyKind::Ed25519),
        _ => None,
    }
}

fn key_fits(key: &StoredKey, alg: Algorithm) -> bool {
    required_kind(alg) == Some(key.kind) && key.alg.is_none_or(|key_alg| key_alg == alg)
}

fn select_key(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Selection {
    match kid {
        Some(kid) => {
            let mut named = set
                .keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Selection::Missing;
            }
            match named.find(|(_, key)| key_fits(key, alg)) {
                Some((index, _)) => Selection::Found(index),
                None => Selection::Mismatch,
            }
        }
        None => {
            let mut fitting = set
                .keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key_fits(key, alg));
            match (fitting.next(), fitting.next()) {
                (Some((index, _)), None) => Selection::Found(index),
                (None, _) => Selection::Missing,
                (Some(_), Some(_)) => Selection::Ambiguous,
            }
        }
    }
}

/// Parses a JWKS, keeping the usable public signature keys and skipping
/// the rest (symmetric keys, encryption keys, unknown types or curves,
/// weak RSA keys).
fn parse_jwks(body: &[u8]) -> Result<Vec<StoredKey>, String> {
    #[derive(Deserialize)]
    struct RawJwks {
        keys: Vec<Value>,
    }
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|_| "JWKS is not a valid JWK set".to_string())?;
    let keys: Vec<StoredKey> = raw
        .keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(stored_key)
        .collect();
    if keys.is_empty() {
        return Err("JWKS has no usable signing keys".into());
    }
    Ok(keys)
}

fn stored_key(value: Value) -> Option<StoredKey> {
    // The JWK's `alg`, read from the JSON itself: a key for anything but a
    // supported signature algorithm (e.g. `RSA-OAEP`) is skipped.
    let alg = match value.get("alg") {
        None | Some(Value::Null) => None,
        Some(alg) => {
            let alg = Algorithm::from_str(alg.as_str()?).ok()?;
            required_kind(alg)?;
            Some(alg)
        }
    };
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(params.n.trim_end_matches('='))
                .ok()?;
            let significant = modulus
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |first| modulus.len() - first);
            if significant < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        _ => return None,
    };
    if alg.is_some_and(|alg| required_kind(alg) != Some(kind)) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(StoredKey {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        key,
    })
}

/// How long a key set is trusted, from its `Cache-Control` header.
fn key_set_lifetime(cache_control: Option<&str>) -> Duration {
    let mut max_age = None;
    let mut no_cache = false;
    for directive in cache_control.unwrap_or("").split(',') {
        let directive = directive.trim();
        match directive.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("max-age") => {
                max_age = value
                    .trim()
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
            _ if directive.eq_ignore_ascii_case("no-cache")
                || directive.eq_ignore_ascii_case("no-store") =>
            {
                no_cache = true;
            }
            _ => {}
        }
    }
    let lifetime = if no_cache {
        Duration::ZERO
    } else {
        max_age.unwrap_or(DEFAULT_KEY_SET_LIFETIME)
    };
    lifetime.clamp(MIN_KEY_SET_LIFETIME, MAX_KEY_SET_LIFETIME)
}

/// Parses a URL keys may be fetched from: HTTPS, or HTTP to a loopback host.
fn fetch_url(url: &str) -> Result<Url, String> {
    let url = Url::parse(url).map_err(|_| "not a valid URL".to_string())?;
    let loopback = match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be an https URL".into()),
    }
}

fn validate_config(config: &CallerAuthConfig) -> Result<KeySource, String> {
    const WHAT: &str = "caller authentication";
    if config.issuer.trim().is_empty() {
        return Err(format!("{WHAT}: issuer must not be empty"));
    }
    if config.issuer.trim() != config.issuer {
        return Err(format!(
            "{WHAT}: issuer must not have surrounding whitespace"
        ));
    }
    if config.audiences.is_empty() {
        return Err(format!("{WHAT}: at least one audience is required"));
    }
    if config.audiences.iter().any(|a| a.trim().is_empty()) {
        return Err(format!("{WHAT}: audiences must not be empty"));
    }
    if config.allowed_subjects.is_empty() && config.allowed_emails.is_empty() {
        return Err(format!(
            "{WHAT}: at least one allowed subject or email is required"
        ));
    }
    if config
        .allowed_subjects
        .iter()
        .chain(&config.allowed_emails)
        .any(|a| a.trim().is_empty())
    {
        return Err(format!(
            "{WHAT}: allowed subjects and emails must not be empty"
        ));
    }
    if config.leeway_secs > MAX_LEEWAY_SECS {
        return Err(format!(
            "{WHAT}: leeway must be at most {MAX_LEEWAY_SECS} seconds"
        ));
    }
    if config.algorithms.is_empty() {
        return Err(format!(
            "{WHAT}: at least one signing algorithm is required"
        ));
    }
    if let Some(alg) = config
        .algorithms
        .iter()
        .find(|alg| required_kind(**alg).is_none())
    {
        return Err(format!(
            "{WHAT}: signing algorithm {alg:?} is not allowed (only asymmetric algorithms are)"
        ));
    }
    match &config.jwks_url {
        Some(url) => fetch_url(url)
            .map(KeySource::Jwks)
            .map_err(|e| format!("{WHAT}: jwks_url {e}")),
        None => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                config.issuer.trim_end_matches('/')
            );
            fetch_url(&discovery).map(KeySource::Discovery).map_err(|e| {
                format!("{WHAT}: without jwks_url the issuer must be an https URL for discovery ({e})")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize};
    use std::sync::Mutex as StdMutex;

    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    // Test-only keys, generated once with `openssl genpkey` (RSA converted
    // to PKCS#1 with `openssl rsa -traditional`, as `EncodingKey::from_rsa_der`
    // wants), so the tests need no PEM support from jsonwebtoken.
    const RSA1_PEM: &str = include_str!("../../../tests/fixtures/keys/rsa1.pem");
    const RSA1_PUBLIC_PEM: &str = include_str!("../../../tests/fixtures/keys/rsa1.pub.pem");
    const RSA2_PEM: &str = include_str!("../../../tests/fixtures/keys/rsa2.pem");
    const EC1_PEM: &str = "\
    -----BEGIN PRIVATE KEY-----\n\
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiTbeYUD1ptIC4fMI\n\
    5eKePASSA6Ia8t3IxUfn1WO+0emhRANCAASReNG2J+i2aR3/h6iLTqkMqqFZnY3J\n\
    xhbRPX8wHZU07YckZhg8bpvOoVcKFQvbjEPLAPh/X38gh6bbYlS5hPPl\n\
    -----END PRIVATE KEY-----\n\
    ";

    const AUDIENCE: &str = "https://veil.example/api";
    const SUBJECT: &str = "112233445566778899000";
    const EMAIL: &str = "collector@vendor-project.iam.gserviceaccount.com";

    // ---- A tiny HTTP/1.1 server for the discovery document and the JWKS ----

    #[derive(Default)]
    struct ServerState {
        jwks: StdMutex<String>,
        cache_control: StdMutex<Option<String>>,
        /// 0: answer 200.
        jwks_status: AtomicU16,
        delay_ms: AtomicU64,
        jwks_fetches: AtomicUsize,
        discovery_fetches: AtomicUsize,
    }

    struct TestServer {
        base: String,
        state: Arc<ServerState>,
    }

    impl TestServer {
        async fn start(jwks: String) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let state = Arc::new(ServerState::default());
            *state.jwks.lock().unwrap() = jwks;
            let (served_state, served_base) = (state.clone(), base.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, served_state.clone(), served_base.clone()));
                }
            });
            TestServer { base, state }
        }

        fn jwks_url(&self) -> String {
            format!("{}/jwks", self.base)
        }

        fn set_jwks(&self, jwks: String) {
            *self.state.jwks.lock().unwrap() = jwks;
        }

        fn jwks_fetches(&self) -> usize {
            self.state.jwks_fetches.load(Ordering::SeqCst)
        }

        fn discovery_fetches(&self) -> usize {
            self.state.discovery_fetches.load(Ordering::SeqCst)
        }
    }

    async fn serve(mut stream: TcpStream, state: Arc<ServerState>, base: String) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
            if request.len() > 64 * 1024 {
                return;
            }
        }
        let request = String::from_utf8_lossy(&request).into_owned();
        let path = request.split_whitespace().nth(1).unwrap_or("");
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let (status, body, cache_control) = match path {
            "/.well-known/openid-configuration" => {
                state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
                let document = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
                (200, document.to_string(), None)
            }
            "/jwks" => {
                state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let status = match state.jwks_status.load(Ordering::SeqCst) {
                    0 => 200,
                    status => status,
                };
                let body = state.jwks.lock().unwrap().clone();
                (status, body, state.cache_control.lock().unwrap().clone())
            }
            _ => (404, "{}".to_string(), None),
        };
        let mut response = format!(
            "HTTP/1.1 {status} Test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(cache_control) = cache_control {
            response.push_str(&format!("Cache-Control: {cache_control}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    // ---- Keys, tokens and configurations ----

    fn der(pem: &str) -> Vec<u8> {
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn encoding_key(pem: &str, alg: Algorithm) -> EncodingKey {
        match alg.family() {
            jsonwebtoken::AlgorithmFamily::Ec => EncodingKey::from_ec_der(&der(pem)),
            _ => EncodingKey::from_rsa_der(&der(pem)),
        }
    }

    fn jwk(pem: &str, alg: Algorithm, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(&encoding_key(pem, alg), alg).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(&jwk).unwrap()
    }

    fn jwks(keys: Vec<Value>) -> String {
        json!({ "keys": keys }).to_string()
    }

    fn default_jwks() -> String {
        jwks(vec![
            jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
            jwk(EC1_PEM, Algorithm::ES256, "ec-1"),
        ])
    }

    fn now() -> i64 {
        unix_now() as i64
    }

    fn claims(issuer: &str) -> Value {
        json!({
            "iss": issuer,
            "aud": AUDIENCE,
            "sub": SUBJECT,
            "email": EMAIL,
            "email_verified": true,
            "iat": now(),
            "exp": now() + 600,
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn sign(pem: &str, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        encode(&header, claims, &encoding_key(pem, alg)).unwrap()
    }

    fn rs256(claims: &Value) -> String {
        sign(RSA1_PEM, Algorithm::RS256, Some("rsa-1"), claims)
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn config(server: &TestServer) -> CallerAuthConfig {
        CallerAuthConfig {
            issuer: server.base.clone(),
            audiences: vec!["another-audience".into(), AUDIENCE.into()],
            jwks_url: Some(server.jwks_url()),
            allowed_subjects: vec![SUBJECT.into()],
            ..CallerAuthConfig::default()
        }
    }

    fn caller_auth(config: CallerAuthConfig) -> CallerAuth {
        CallerAuth::new(config, reqwest::Client::new()).unwrap()
    }

    async fn setup() -> (TestServer, CallerAuth) {
        let server = TestServer::start(default_jwks()).await;
        let auth = caller_auth(config(&server));
        (server, auth)
    }

    /// Asserts a rejection, and that its message does not echo the token.
    /// [`rejects`] for a `Bearer` token.
    async fn rejects_token(auth: &CallerAuth, token: &str, kind: ErrorKind, fragment: &str) {
        rejects(auth, Some(&bearer(token)), kind, fragment).await;
    }

    async fn rejects(
        auth: &CallerAuth,
        authorization: Option<&str>,
        kind: ErrorKind,
        fragment: &str,
    ) {
        let err = auth
            .verify(authorization)
            .await
            .expect_err("verification should fail");
        assert_eq!(err.phase, Phase::Authenticate, "{err}");
        assert_eq!(err.kind, kind, "{err}");
        assert!(
            err.message.contains(fragment),
            "expected {fragment:?} in {err}"
        );
        for part in authorization
            .unwrap_or("")
            .split(['.', ' '])
            .filter(|part| part.len() >= 8)
        {
            assert!(
                !err.message.contains(part),
                "message echoes the token: {err}"
            );
        }
    }

    fn expected_caller() -> Caller {
        Caller {
            subject: SUBJECT.into(),
            email: Some(EMAIL.into()),
        }
    }

    // ---- Valid tokens ----

    #[tokio::test]
    async fn valid_rs256_token_via_discovery_and_cache() {
        let server = TestServer::start(default_jwks()).await;
        let auth = caller_auth(CallerAuthConfig {
            jwks_url: None,
            ..config(&server)
        });
        let token = rs256(&claims(&server.base));
        assert_eq!(
            auth.verify(Some(&bearer(&token))).await.unwrap(),
            expected_caller()
        );
        assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
        // Cached: no more requests; the scheme is case-insensitive; `aud` may be a list.
        let token = rs256(&with(claims(&server.base), "aud", json!(["x", AUDIENCE])));
        assert_eq!(
            auth.verify(Some(&format!("bearer  {token}")))
                .await
                .unwrap(),
            expected_caller()
        );
        assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
    }

    #[tokio::test]
    async fn valid_es256_token() {
        let (server, auth) = setup().await;
        let token = sign(
            EC1_PEM,
            Algorithm::ES256,
            Some("ec-1"),
            &claims(&server.base),
        );
        assert_eq!(
            auth.verify(Some(&bearer(&token))).await.unwrap(),
            expected_caller()
        );
        assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (0, 1));
    }

    #[tokio::test]
    async fn token_without_kid_uses_the_single_key_of_its_type() {
        let (server, auth) = setup().await;
        let token = sign(RSA1_PEM, Algorithm::RS256, None, &claims(&server.base));
        assert_eq!(
            auth.verify(Some(&bearer(&token))).await.unwrap(),
            expected_caller()
        );

        let two_rsa = jwks(vec![
            jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
            jwk(RSA2_PEM, Algorithm::RS256, "rsa-2"),
        ]);
        let server = TestServer::start(two_rsa).await;
        let auth = caller_auth(config(&server));
        let token = sign(RSA1_PEM, Algorithm::RS256, None, &claims(&server.base));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "several signing keys match",
        )
        .await;
    }

    #[tokio::test]
    async fn leeway_applies_to_exp() {
        let (server, auth) = setup().await;
        let token = rs256(&with(claims(&server.base), "exp", json!(now() - 30)));
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    }

    // ---- Claims ----

    #[tokio::test]
    async fn expired_token() {
        let (server, auth) = setup().await;
        let token = rs256(&with(claims(&server.base), "exp", json!(now() - 120)));
        rejects_token(&auth, &token, ErrorKind::Unauthenticated, "token expired").await;
    }

    #[tokio::test]
    async fn token_without_exp() {
        let (server, auth) = setup().await;
        let token = rs256(&without(claims(&server.base), "exp"));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "required claim `exp`",
        )
        .await;
    }

    #[tokio::test]
    async fn not_yet_valid_token() {
        let (server, auth) = setup().await;
        let token = rs256(&with(claims(&server.base), "nbf", json!(now() + 3600)));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "token not yet valid",
        )
        .await;
    }

    #[tokio::test]
    async fn token_issued_in_the_future() {
        let (server, auth) = setup().await;
        let future = with(claims(&server.base), "iat", json!(now() + 3600));
        let token = rs256(&with(future, "exp", json!(now() + 7200)));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "issued in the future",
        )
        .await;
    }

    #[tokio::test]
    async fn wrong_audience() {
        let (server, auth) = setup().await;
        let token = rs256(&with(
            claims(&server.base),
            "aud",
            json!("https://someone-else.example"),
        ));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "audience not accepted",
        )
        .await;
        let token = rs256(&without(claims(&server.base), "aud"));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "required claim `aud`",
        )
        .await;
    }

    #[tokio::test]
    async fn wrong_issuer() {
        let (server, auth) = setup().await;
        let token = rs256(&with(
            claims(&server.base),
            "iss",
            json!("https://accounts.evil.example"),
        ));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "issuer not accepted",
        )
        .await;
        // `iss` must be the issuer itself, not a list containing it.
        let token = rs256(&with(
            claims(&server.base),
            "iss",
            json!([server.base, "x"]),
        ));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "issuer not accepted",
        )
        .await;
    }

    #[tokio::test]
    async fn tampered_claims_fail_the_signature() {
        let (server, auth) = setup().await;
        let token = rs256(&claims(&server.base));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&with(claims(&server.base), "sub", json!("someone-else")));
        let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "invalid token signature",
        )
        .await;
    }

    // ---- Algorithms and keys ----

    #[tokio::test]
    async fn alg_none_is_refused() {
        let (server, auth) = setup().await;
        for alg in ["none", "None", "NONE"] {
            let header = b64(&json!({"alg": alg, "typ": "JWT"}));
            let token = format!("{header}.{}.", b64(&claims(&server.base)));
            rejects_token(&auth, &token, ErrorKind::Unauthenticated, "alg none").await;
        }
        assert_eq!(server.jwks_fetches(), 0);
    }

    #[tokio::test]
    async fn hs256_signed_with_the_rsa_public_key_is_refused() {
        let (server, auth) = setup().await;
        let secret = EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes());
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        let token = encode(&header, &claims(&server.base), &secret).unwrap();
        rejects_token(&auth, &token, ErrorKind::Unauthenticated, "HS*").await;
        // The same with the public key's DER (another secret attackers try).
        let der = RSA1_PUBLIC_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        let token = encode(
            &header,
            &claims(&server.base),
            &EncodingKey::from_secret(der.as_bytes()),
        )
        .unwrap();
        rejects_token(&auth, &token, ErrorKind::Unauthenticated, "HS*").await;
        // Configuring an HS algorithm is refused too.
        let err = CallerAuth::new(
            CallerAuthConfig {
                algorithms: vec![Algorithm::RS256, Algorithm::HS256],
                ..config(&server)
            },
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(err.contains("HS256"), "{err}");
        assert_eq!(server.jwks_fetches(), 0);
    }

    #[tokio::test]
    async fn algorithm_not_configured() {
        let (server, _) = setup().await;
        let auth = caller_auth(CallerAuthConfig {
            algorithms: vec![Algorithm::RS256],
            ..config(&server)
        });
        let token = sign(
            EC1_PEM,
            Algorithm::ES256,
            Some("ec-1"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "signing algorithm not accepted",
        )
        .await;
        let token = sign(
            RSA1_PEM,
            Algorithm::PS256,
            Some("rsa-1"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "signing algorithm not accepted",
        )
        .await;
        let header = b64(&json!({"alg": "RS1", "kid": "rsa-1"}));
        let token = format!("{header}.{}.c2ln", b64(&claims(&server.base)));
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "signing algorithm not accepted",
        )
        .await;
    }

    #[tokio::test]
    async fn key_type_or_alg_mismatch_is_refused() {
        let pinned = jwk(RSA2_PEM, Algorithm::PS256, "rsa-pinned-to-ps256");
        let server =
            TestServer::start(jwks(vec![jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"), pinned])).await;
        let algorithms = vec![Algorithm::RS256, Algorithm::ES256, Algorithm::PS256];
        let auth = caller_auth(CallerAuthConfig {
            algorithms,
            ..config(&server)
        });
        // An ES256 token naming an RSA key.
        let token = sign(
            EC1_PEM,
            Algorithm::ES256,
            Some("rsa-1"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "does not match the token's algorithm",
        )
        .await;
        // An RS256 token naming a key whose JWK says PS256.
        let token = sign(
            RSA2_PEM,
            Algorithm::RS256,
            Some("rsa-pinned-to-ps256"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "does not match the token's algorithm",
        )
        .await;
        // PS256 with that key is fine.
        let token = sign(
            RSA2_PEM,
            Algorithm::PS256,
            Some("rsa-pinned-to-ps256"),
            &claims(&server.base),
        );
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
        // A mismatch is not an unknown key: no refetch.
        assert_eq!(server.jwks_fetches(), 1);
    }

    #[tokio::test]
    async fn symmetric_and_encryption_keys_in_the_jwks_are_ignored() {
        let keys = vec![
            json!({"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!({"kty": "weird"}),
            jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
        ];
        let server = TestServer::start(jwks(keys)).await;
        let auth = caller_auth(config(&server));
        let token = rs256(&claims(&server.base));
        assert_eq!(
            auth.verify(Some(&bearer(&token))).await.unwrap(),
            expected_caller()
        );
    }

    // ---- Key set fetching ----

    #[tokio::test]
    async fn unknown_kid_refetches_once_then_fails() {
        let (server, auth) = setup().await;
        assert!(auth
            .verify(Some(&bearer(&rs256(&claims(&server.base)))))
            .await
            .is_ok());
        assert_eq!(server.jwks_fetches(), 1);
        let token = sign(
            RSA1_PEM,
            Algorithm::RS256,
            Some("no-such-key"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "unknown signing key id",
        )
        .await;
        assert_eq!(server.jwks_fetches(), 2, "exactly one refetch");
        // Within 30 s, another unknown kid does not refetch.
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "unknown signing key id",
        )
        .await;
        assert_eq!(server.jwks_fetches(), 2);
        // Known keys keep working.
        assert!(auth
            .verify(Some(&bearer(&rs256(&claims(&server.base)))))
            .await
            .is_ok());
        assert_eq!(server.jwks_fetches(), 2);
    }

    #[tokio::test]
    async fn unknown_kid_on_a_cold_cache_does_not_fetch_twice() {
        let (server, auth) = setup().await;
        let token = sign(
            RSA1_PEM,
            Algorithm::RS256,
            Some("no-such-key"),
            &claims(&server.base),
        );
        rejects_token(
            &auth,
            &token,
            ErrorKind::Unauthenticated,
            "unknown signing key id",
        )
        .await;
        assert_eq!(server.jwks_fetches(), 1);
    }

    #[tokio::test]
    async fn key_rotation_is_picked_up_by_one_refetch() {
        let server =
            TestServer::start(jwks(vec![jwk(RSA1_PEM, Algorithm::RS256, "2024-key")])).await;
        let auth = caller_auth(config(&server));
        let old = sign(
            RSA1_PEM,
            Algorithm::RS256,
            Some("2024-key"),
            &claims(&server.base),
        );
        assert!(auth.verify(Some(&bearer(&old))).await.is_ok());
        assert_eq!(server.jwks_fetches(), 1);

        server.set_jwks(jwks(vec![jwk(RSA2_PEM, Algorithm::RS256, "2025-key")]));
        let new = sign(
            RSA2_PEM,
            Algorithm::RS256,
            Some("2025-key"),
            &claims(&server.base),
        );
        assert_eq!(
            auth.verify(Some(&bearer(&new))).await.unwrap(),
            expected_caller()
        );
        assert_eq!(server.jwks_fetches(), 2);
        assert!(auth.verify(Some(&bearer(&new))).await.is_ok());
        assert_eq!(server.jwks_fetches(), 2);
        // The retired key is gone.
        rejects_token(
            &auth,
            &old,
            ErrorKind::Unauthenticated,
            "unknown signing key id",
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_verifications_on_a_cold_cache_share_one_fetch() {
        let server = TestServer::start(default_jwks()).await;
        server.state.delay_ms.store(200, Ordering::SeqCst);
        let auth = caller_auth(CallerAuthConfig {
            jwks_url: None,
            ..config(&server)
        });
        let header = bearer(&rs256(&claims(&server.base)));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (auth, header) = (auth.clone(), header.clone());
                tokio::spawn(async move { auth.verify(Some(&header)).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), expected_caller());
        }
        assert_eq!(server.jwks_fetches(), 1);
        assert_eq!(server.discovery_fetches(), 1);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_the_cached_keys() {
        let (server, auth) = setup().await;
        let token = rs256(&claims(&server.base));
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
        server.state.jwks_status.store(503, Ordering::SeqCst);
        auth.expire_cache();
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
        assert_eq!(server.jwks_fetches(), 2);
        // The failure is not retried on every request.
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
        assert_eq!(server.jwks_fetches(), 2);
        // Nor does a garbage answer replace the keys.
        server.state.jwks_status.store(0, Ordering::SeqCst);
        server.set_jwks("{\"keys\": []}".into());
        auth.expire_cache();
        assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
        assert_eq!(server.jwks_fetches(), 3);
    }

    #[tokio::test]
    async fn failed_first_fetch_is_unavailable_and_not_hammered() {
        let (server, auth) = setup().await;
        server.state.jwks_status.store(500, Ordering::SeqCst);
        let token = rs256(&claims(&server.base));
        rejects_token(
            &auth,
            &token,
            ErrorKind::CallerAuthUnavailable,
            "signing keys are unavailable",
        )
        .await;
        rejects_token(
            &auth,
            &token,
            ErrorKind::CallerAuthUnavailable,
            "signing keys are unavailable",
        )
        .await;
        assert_eq!(
            ErrorKind::CallerAuthUnavailable.status(),
            http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(server.jwks_fetches(), 1);
    }

    #[tokio::test]
    async fn cache_lifetime_follows_cache_control() {
        let (server, auth) = setup().await;
        *server.state.cache_control.lock().unwrap() =
            Some("public, max-age=20000, must-revalidate".into());
        assert!(auth
            .verify(Some(&bearer(&rs256(&claims(&server.base)))))
            .await
            .is_ok());
        let set = auth.inner.cached().unwrap();
        let lifetime = set.expires_at.duration_since(set.fetched_at);
        assert_eq!(lifetime, Duration::from_secs(20000));

        assert_eq!(key_set_lifetime(None), Duration::from_secs(3600));
        assert_eq!(
            key_set_lifetime(Some("max-age=60")),
            Duration::from_secs(300)
        );
        assert_eq!(
            key_set_lifetime(Some("max-age=999999")),
            Duration::from_secs(86400)
        );
        assert_eq!(
            key_set_lifetime(Some("Max-Age=\"7200\"")),
            Duration::from_secs(7200)
        );
        assert_eq!(key_set_lifetime(Some("no-store")), Duration::from_secs(300));
        assert_eq!(
            key_set_lifetime(Some("max-age=oops")),
            Duration::from_secs(3600)
        );
    }

    // ---- Allowlists ----

    #[tokio::test]
    async fn subject_not_allowed_is_forbidden() {
        let (server, _) = setup().await;
        let auth = caller_auth(CallerAuthConfig {
            allowed_subjects: vec!["someone-else".into()],
            ..config(&server)
        });
        let token = rs256(&claims(&server.base));
        rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
    }

    #[tokio::test]
    async fn allowed_email() {
        let (server, _) = setup().await;
        let auth = caller_auth(CallerAuthConfig {
            allowed_subjects: vec![],
            allowed_emails: vec![EMAIL.to_uppercase()],
            ..config(&server)
        });
        let token = rs256(&claims(&server.base));
        assert_eq!(
            auth.verify(Some(&bearer(&token))).await.unwrap(),
            expected_caller()
        );
        // `email_verified` absent, false (or "false", or not a boolean) does not.
        let token = rs256(&without(claims(&server.base), "email_verified"));
        rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
        for unverified in [json!(false), json!("false"), json!(1), json!(null)] {
            let token = rs256(&with(claims(&server.base), "email_verified", unverified));
            rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
        }
        let token = rs256(&with(
            claims(&server.base),
            "email",
            json!("intruder@example.com"),
        ));
        rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
    }

    // ---- The header ----

    #[tokio::test]
    async fn missing_header() {
        let (server, auth) = setup().await;
        rejects(
            &auth,
            None,
            ErrorKind::Unauthenticated,
            "missing Authorization header",
        )
        .await;
        assert_eq!(server.jwks_fetches(), 0);
    }

    #[tokio::test]
    async fn malformed_headers() {
        let (server, auth) = setup().await;
        let token = rs256(&claims(&server.base));
        let cases = [
            (
                "Basic dXNlcjpwYXNzd29yZA==".to_string(),
                "must use the Bearer scheme",
            ),
            (token.clone(), "must use the Bearer scheme"),
            ("".to_string(), "must use the Bearer scheme"),
            ("Bearer".to_string(), "bearer token is empty"),
            ("Bearer    ".to_string(), "bearer token is empty"),
            ("Bearer garbage-garbage-garbage".to_string(), "not a JWT"),
            ("Bearer a.b".to_string(), "not a JWT"),
            ("Bearer a.b.c.d.e".to_string(), "not a JWT"),
            (format!("Bearer {token} extra"), "not a JWT"),
            (format!("Bearer {token}=="), "not a JWT"),
            ("Bearer ..".to_string(), "token header is malformed"),
            ("Bearer e30.e30.c2ln".to_string(), "lacks `alg`"),
            (
                "Bearer bm90LWpzb24.e30.c2ln".to_string(),
                "token header is malformed",
            ),
            (
                format!(
                    "Bearer {}.e30.c2ln",
                    b64(&json!({"alg": "RS256", "kid": 7}))
                ),
                "token header is malformed",
            ),
            (
                format!(
                    "Bearer {}.e30.c2ln",
                    b64(&json!({"alg": "RS256", "crit": ["b64"]}))
                ),
                "critical header",
            ),
            (
                format!(
                    "Bearer {}.e30.",
                    b64(&json!({"alg": "RS256", "kid": "rsa-1"}))
                ),
                "signature is missing",
            ),
            (format!("Bearer {}", "a".repeat(20_000)), "too long"),
        ];
        for (header, fragment) in cases {
            rejects(&auth, Some(&header), ErrorKind::Unauthenticated, fragment).await;
        }
        assert_eq!(server.jwks_fetches(), 0);
        // Garbage after a good header and a fetched key set.
        let parts: Vec<&str> = token.split('.').collect();
        let garbage = format!("Bearer {}.{}.AAAA", parts[0], parts[1]);
        rejects(
            &auth,
            Some(&garbage),
            ErrorKind::Unauthenticated,
            "invalid token signature",
        )
        .await;
        let garbage = format!("Bearer {}.bm90LWpzb24.{}", parts[0], parts[2]);
        rejects(
            &auth,
            Some(&garbage),
            ErrorKind::Unauthenticated,
            "invalid token signature",
        )
        .await;
    }

    // ---- Configuration ----

    #[tokio::test]
    async fn config_is_validated() {
        let (server, _) = setup().await;
        let base = config(&server);
        let bad = [
            (
                CallerAuthConfig {
                    issuer: " ".into(),
                    ..base.clone()
                },
                "issuer",
            ),
            (
                CallerAuthConfig {
                    audiences: vec![],
                    ..base.clone()
                },
                "audience",
            ),
            (
                CallerAuthConfig {
                    audiences: vec!["".into()],
                    ..base.clone()
                },
                "audience",
            ),
            (
                CallerAuthConfig {
                    allowed_subjects: vec![],
                    allowed_emails: vec![],
                    ..base.clone()
                },
                "allowed",
            ),
            (
                CallerAuthConfig {
                    algorithms: vec![],
                    ..base.clone()
                },
                "algorithm",
            ),
            (
                CallerAuthConfig {
                    algorithms: vec![Algorithm::HS512],
                    ..base.clone()
                },
                "HS512",
            ),
            (
                CallerAuthConfig {
                    leeway_secs: 3600,
                    ..base.clone()
                },
                "leeway",
            ),
            (
                CallerAuthConfig {
                    jwks_url: Some("http://keys.example/jwks".into()),
                    ..base.clone()
                },
                "https",
            ),
            (
                CallerAuthConfig {
                    jwks_url: Some("not a url".into()),
                    ..base.clone()
                },
                "jwks_url",
            ),
            (
                CallerAuthConfig {
                    issuer: "vendor".into(),
                    jwks_url: None,
                    ..base.clone()
                },
                "discovery",
            ),
        ];
        for (config, fragment) in bad {
            let err = CallerAuth::new(config, reqwest::Client::new()).unwrap_err();
            assert!(err.contains(fragment), "expected {fragment:?} in {err:?}");
        }
        let google = CallerAuthConfig {
            issuer: "https://accounts.google.com".into(),
            audiences: vec![AUDIENCE.into()],
            allowed_emails: vec![EMAIL.into()],
            ..CallerAuthConfig::default()
        };
        assert!(CallerAuth::new(google.clone(), reqwest::Client::new()).is_ok());
        let with_jwks = CallerAuthConfig {
            jwks_url: Some("https://www.googleapis.com/oauth2/v3/certs".into()),
            ..google
        };
        assert!(CallerAuth::new(with_jwks, reqwest::Client::new()).is_ok());

        let parsed: CallerAuthConfig = serde_json::from_value(json!({
            "issuer": "https://accounts.google.com",
            "audiences": [AUDIENCE],
            "allowed_subjects": [SUBJECT],
        }))
        .unwrap();
        assert_eq!(parsed.leeway_secs, 60);
        assert_eq!(parsed.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
    }

    #[tokio::test]
    async fn describe_for_the_health_check() {
        let (server, _) = setup().await;
        let auth = caller_auth(CallerAuthConfig {
            allowed_emails: vec![EMAIL.into(), "b@x".into()],
            ..config(&server)
        });
        assert_eq!(
            auth.describe(),
            format!(
                "oidc issuer={} audiences=another-audience,{AUDIENCE} subjects=1 emails=2",
                server.base
            )
        );
        assert!(format!("{auth:?}").contains("oidc issuer="));
    }
}
