//! The issuer's signing keys, fetched lazily (from the configured JWKS URL
//! or through the issuer's discovery document) and kept in a
//! [`RefreshCell`]:
//!
//! - a key set is trusted for its `Cache-Control: max-age` (clamped to
//!   5 minutes – 24 hours, 1 hour when absent), then renewed;
//! - concurrent verifications share one fetch;
//! - a token with an unknown `kid` triggers one refetch (at most one such
//!   refetch every 30 seconds), which is how key rotation is picked up;
//! - when a fetch fails, the cached key set (even an expired one) stays in
//!   use, and the fetch is retried after 30 seconds; with nothing cached,
//!   requests fail fast for 5 seconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, CACHE_CONTROL};
use reqwest::Url;
use serde::Deserialize;

use super::config::{fetch_url, KeyLocation};
use super::jwks::{parse_jwks, KeySet};
use crate::error::{ErrorKind, Phase, ProxyError};
use crate::refresh::{CellPolicy, Clock, Fetched, RefreshCell};

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

const POLICY: CellPolicy = CellPolicy {
    refresh_before: Duration::ZERO,
    jitter: Duration::ZERO,
    min_remaining: None,
    failure_ttl: COLD_RETRY_INTERVAL,
    stale_failure_ttl: REFETCH_INTERVAL,
};

/// The issuer's key set, cached.
pub(super) struct KeySource {
    issuer: String,
    http: reqwest::Client,
    location: KeyLocation,
    /// The JWKS URL found through discovery.
    discovered: Mutex<Option<Url>>,
    /// The key set, or why it could not be fetched.
    cell: RefreshCell<Arc<KeySet>, String>,
}

impl KeySource {
    pub(super) fn new(
        issuer: String,
        http: reqwest::Client,
        location: KeyLocation,
        clock: Arc<dyn Clock>,
    ) -> Self {
        KeySource {
            issuer,
            http,
            location,
            discovered: Mutex::new(None),
            cell: RefreshCell::new(clock, POLICY),
        }
    }

    /// How many fetches were attempted so far (for [`KeySource::refetch`]).
    pub(super) fn attempts(&self) -> u64 {
        self.cell.attempts()
    }

    /// The key set: the cached one while it is fresh, fetched otherwise.
    pub(super) async fn key_set(&self) -> Result<Arc<KeySet>, ProxyError> {
        self.cell
            .get(|| self.fetch())
            .await
            .map_err(|reason| keys_unavailable(&reason))
    }

    /// A key set fetched after the caller saw `attempts` (its key was not in
    /// the one it had): a refetch, unless one happened meanwhile or the last
    /// one was less than 30 seconds ago.
    pub(super) async fn refetch(&self, attempts: u64) -> Result<Arc<KeySet>, ProxyError> {
        self.cell
            .refresh_unless_attempted(attempts, REFETCH_INTERVAL, || self.fetch())
            .await
            .map_err(|reason| keys_unavailable(&reason))
    }

    /// How long the cached key set is trusted (tests).
    #[cfg(test)]
    pub(super) fn cached_lifetime(&self) -> Option<Duration> {
        self.cell
            .entry()
            .map(|entry| entry.expires_at.duration_since(entry.fetched_at))
    }

    /// Fetches and parses the key set; logs the outcome.
    async fn fetch(&self) -> Result<Fetched<Arc<KeySet>>, String> {
        match self.fetch_key_set().await {
            Ok((keys, lifetime)) => {
                tracing::debug!(
                    issuer = %self.issuer,
                    keys = keys.keys.len(),
                    "caller auth: fetched the issuer's signing keys"
                );
                Ok(Fetched {
                    value: Arc::new(keys),
                    lifetime,
                })
            }
            Err(reason) => {
                if self.cell.entry().is_some() {
                    tracing::warn!(
                        issuer = %self.issuer,
                        reason = %reason,
                        "caller auth: could not refresh the issuer's signing keys; keeping the cached ones"
                    );
                } else {
                    tracing::warn!(
                        issuer = %self.issuer,
                        reason = %reason,
                        "caller auth: could not fetch the issuer's signing keys"
                    );
                }
                Err(reason)
            }
        }
    }

    /// Fetches (discovering its URL first if need be) and parses the JWKS.
    async fn fetch_key_set(&self) -> Result<(KeySet, Duration), String> {
        let jwks_url = match &self.location {
            KeyLocation::Jwks(url) => url.clone(),
            KeyLocation::Discovery(discovery_url) => {
                let known = self
                    .discovered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match known {
                    Some(url) => url,
                    None => {
                        let url = self.discover(discovery_url).await?;
                        *self.discovered.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(url.clone());
                        url
                    }
                }
            }
        };
        let (body, cache_control) = self.get(&jwks_url).await.map_err(|e| format!("JWKS {e}"))?;
        let keys = parse_jwks(&body)?;
        Ok((KeySet { keys }, key_set_lifetime(cache_control.as_deref())))
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
        if document.issuer != self.issuer {
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
}

/// Why no key set is at hand. The reason names the failed step (never a
/// token or a key).
fn keys_unavailable(reason: &str) -> ProxyError {
    ProxyError::new(
        Phase::Authenticate,
        ErrorKind::CallerAuthUnavailable,
        format!("the issuer's signing keys are unavailable ({reason}); retry shortly"),
    )
}

/// How long a key set is trusted, from its `Cache-Control` header.
pub(super) fn key_set_lifetime(cache_control: Option<&str>) -> Duration {
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
