//! [`FederatedTokens`]: Graph tokens by workload identity federation, with
//! one cache per process shared by every request.
//!
//! - **Refresh ahead**: a token is renewed some minutes before it expires
//!   (with jitter, so a fleet does not renew in step); while the renewal
//!   runs, other requests keep using the still-valid token, and if the
//!   renewal fails they keep using it until it is about to expire.
//! - **Single flight**: however many requests find the cache cold, one
//!   host-token fetch and one Entra exchange run; the others wait for it.
//! - **Brief failure memory**: a failed exchange is remembered for a few
//!   seconds, so a storm of requests does not hammer Entra ID or the host's
//!   identity endpoint.
//! - **Invalidation after a 401**: Graph's 401 evicts the token it refused
//!   (only if it is still the cached one: concurrent 401s for the same token
//!   evict it once, and a request that was refused an older token simply
//!   retries with the current one), and the proxy retries once. After such
//!   an eviction, the next one waits until Graph has accepted a token again
//!   or, while Graph keeps refusing, until a backoff has passed
//!   ([`CachePolicy::unauthorized_evict_interval`], doubling up to
//!   [`CachePolicy::unauthorized_evict_max`]); meanwhile a refused request
//!   is answered without a retry. So a Graph that refuses every token costs
//!   one extra exchange per backoff interval, not one per request.
//! - Graph's 403 for missing consent evicts the token at most once a minute.
//!
//! The token itself lives in a [`RefreshCell`], the same cell that keeps
//! the caller-authentication issuer's signing keys.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::entra::EntraExchange;
use super::{BoxFuture, HostIdentity, TokenError, TokenProvider, TokenStatus};
use crate::refresh::{CellPolicy, Fetched, RefreshCell};
pub use crate::refresh::{Clock, SystemClock};
use veil_engine::Secret;

/// When to renew, how long to remember failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Renew this long before expiry…
    pub refresh_before: Duration,
    /// …plus a random part of this much (spreads renewals of a fleet).
    pub jitter: Duration,
    /// Never hand out a token with less than this left (requests take time,
    /// clocks drift).
    pub min_remaining: Duration,
    /// How long a failed fetch or exchange is remembered.
    pub failure_ttl: Duration,
    /// The least time between two evictions after a Graph 403.
    pub forbidden_evict_interval: Duration,
    /// After a 401-driven eviction whose new token Graph has not accepted
    /// yet, the least time before the next one…
    pub unauthorized_evict_interval: Duration,
    /// …doubling while Graph keeps refusing, up to this.
    pub unauthorized_evict_max: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            refresh_before: Duration::from_secs(5 * 60),
            jitter: Duration::from_secs(60),
            min_remaining: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(5),
            forbidden_evict_interval: Duration::from_secs(60),
            unauthorized_evict_interval: Duration::from_secs(30),
            unauthorized_evict_max: Duration::from_secs(10 * 60),
        }
    }
}

impl CachePolicy {
    fn cell(&self) -> CellPolicy {
        CellPolicy {
            refresh_before: self.refresh_before,
            jitter: self.jitter,
            min_remaining: Some(self.min_remaining),
            failure_ttl: self.failure_ttl,
            stale_failure_ttl: self.failure_ttl,
        }
    }
}

/// What the cache keeps besides the token.
#[derive(Default)]
struct Evictions {
    /// The full message of the last failure and when (for the health check);
    /// cleared by a success.
    last_error: Option<(String, SystemTime)>,
    last_forbidden_evict: Option<Instant>,
    /// The last 401-driven eviction and the backoff that follows it, while
    /// Graph has not accepted a token since.
    unauthorized: Option<(Instant, Duration)>,
}

/// Graph tokens from a host identity exchanged at Entra ID, cached.
pub struct FederatedTokens {
    host: Arc<dyn HostIdentity>,
    entra: EntraExchange,
    policy: CachePolicy,
    /// The token: refresh ahead, single flight, failure memory.
    cell: RefreshCell<Secret, TokenError>,
    state: Mutex<Evictions>,
    /// Set by a 401-driven eviction, cleared when Graph accepts a token
    /// (lets [`TokenProvider::token_accepted`] skip the lock).
    awaiting_acceptance: std::sync::atomic::AtomicBool,
    /// Exchanges so far: succeeded, failed (for metrics).
    refreshes: [std::sync::atomic::AtomicU64; 2],
}

impl FederatedTokens {
    /// With the real clock and the default policy.
    pub fn new(host: Arc<dyn HostIdentity>, entra: EntraExchange) -> Self {
        FederatedTokens::with_clock(host, entra, Arc::new(SystemClock), CachePolicy::default())
    }

    pub fn with_clock(
        host: Arc<dyn HostIdentity>,
        entra: EntraExchange,
        clock: Arc<dyn Clock>,
        policy: CachePolicy,
    ) -> Self {
        FederatedTokens {
            host,
            entra,
            cell: RefreshCell::new(clock, policy.cell()),
            policy,
            state: Mutex::new(Evictions::default()),
            awaiting_acceptance: std::sync::atomic::AtomicBool::new(false),
            refreshes: Default::default(),
        }
    }

    pub fn host(&self) -> &Arc<dyn HostIdentity> {
        &self.host
    }

    pub fn entra(&self) -> &EntraExchange {
        &self.entra
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Evictions> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn clock(&self) -> &Arc<dyn Clock> {
        self.cell.clock()
    }

    async fn get(&self) -> Result<Secret, TokenError> {
        self.cell.get(|| self.exchange()).await
    }

    /// One host-token fetch and one exchange (run by the cell's single flight).
    async fn exchange(&self) -> Result<Fetched<Secret>, TokenError> {
        let result = match self.host.fetch().await {
            Err(e) => Err((
                TokenError {
                    message: format!(
                        "the `{}` host identity could not provide a token: {}",
                        self.host.kind(),
                        e.message
                    ),
                    retryable: e.retryable,
                },
                None,
            )),
            Ok(host_token) => self.entra.request_token(&host_token).await.map_err(|e| {
                let caller = TokenError {
                    message: e.summary().to_string(),
                    retryable: e.retryable,
                };
                (caller, Some(e.message))
            }),
        };
        self.refreshes[usize::from(result.is_err())]
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(t) => {
                self.lock().last_error = None;
                tracing::info!(
                    target: "veil::token",
                    provider = self.host.kind(),
                    expires_in_secs = t.expires_in.as_secs(),
                    "obtained a Graph token from Entra ID"
                );
                Ok(Fetched {
                    value: t.access_token,
                    lifetime: t.expires_in,
                })
            }
            Err((caller, detail)) => {
                let detail = detail.unwrap_or_else(|| caller.message.clone());
                tracing::error!(
                    target: "veil::token",
                    provider = self.host.kind(),
                    retryable = caller.retryable,
                    error = %detail,
                    "no Graph token"
                );
                self.lock().last_error = Some((detail, self.clock().wall()));
                Err(caller)
            }
        }
    }
}

impl TokenProvider for FederatedTokens {
    fn kind(&self) -> &'static str {
        self.host.kind()
    }

    fn token(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        Box::pin(self.get())
    }

    fn invalidate(&self) {
        self.cell.evict();
    }

    fn invalidate_rejected(&self, rejected: &Secret) -> bool {
        use std::sync::atomic::Ordering;
        let now = self.clock().now();
        let mut st = self.lock();
        let is_rejected = |token: &Secret| token.expose() == rejected.expose();
        match self.cell.entry() {
            // Already replaced (or being replaced): retry with the current one.
            Some(c) if !is_rejected(&c.value) => return true,
            None => return true,
            Some(_) => {}
        }
        let backoff = match st.unauthorized {
            // The last eviction's token was refused too, and too recently.
            Some((at, wait)) if now.duration_since(at) < wait => {
                tracing::warn!(
                    target: "veil::token",
                    provider = self.host.kind(),
                    retry_in_secs = (wait - now.duration_since(at)).as_secs(),
                    "Graph refused a freshly exchanged token too; not exchanging again yet"
                );
                return false;
            }
            Some((_, wait)) => (wait * 2).min(self.policy.unauthorized_evict_max),
            None => self.policy.unauthorized_evict_interval,
        };
        if !self.cell.evict_if(is_rejected) {
            // Replaced meanwhile: retry with the current one.
            return true;
        }
        st.unauthorized = Some((now, backoff));
        self.awaiting_acceptance.store(true, Ordering::Release);
        true
    }

    fn token_accepted(&self) {
        use std::sync::atomic::Ordering;
        if self.awaiting_acceptance.swap(false, Ordering::AcqRel) {
            self.lock().unauthorized = None;
        }
    }

    fn invalidate_after_forbidden(&self) -> bool {
        let now = self.clock().now();
        let mut st = self.lock();
        let recently = st
            .last_forbidden_evict
            .is_some_and(|t| now.duration_since(t) < self.policy.forbidden_evict_interval);
        if recently || !self.cell.evict_if(|_| true) {
            return false;
        }
        st.last_forbidden_evict = Some(now);
        true
    }

    fn refreshes(&self) -> super::TokenRefreshes {
        use std::sync::atomic::Ordering;
        super::TokenRefreshes {
            succeeded: self.refreshes[0].load(Ordering::Relaxed),
            failed: self.refreshes[1].load(Ordering::Relaxed),
        }
    }

    fn status(&self) -> TokenStatus {
        let now = self.clock().now();
        let wall = self.clock().wall();
        let cached = self.cell.entry().filter(|c| c.usable(now));
        let st = self.lock();
        TokenStatus {
            caches: true,
            cached: cached.is_some(),
            expires_at: cached.map(|c| wall + c.expires_at.saturating_duration_since(now)),
            last_error: st.last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_at: st.last_error.as_ref().map(|(_, t)| *t),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::refresh::ManualClock;
    use crate::token::entra::EntraConfig;
    use veil_test_support::server::{Recorded, Reply as Canned, TestServer};

    /// A host identity that counts its fetches and can be made to fail.
    struct CountingHost {
        fetches: AtomicUsize,
        fail: AtomicBool,
    }

    impl HostIdentity for CountingHost {
        fn kind(&self) -> &'static str {
            "file"
        }
        fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
            Box::pin(async move {
                let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(TokenError {
                        message: "the token file is missing".into(),
                        retryable: false,
                    });
                }
                let claims = json!({"iss": "https://issuer.test", "sub": format!("workload-{n}"), "aud": "api://AzureADTokenExchange"});
                Ok(Secret::from(
                    format!(
                        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
                        URL_SAFE_NO_PAD.encode(claims.to_string())
                    )
                    .as_str(),
                ))
            })
        }
    }

    struct Setup {
        entra: TestServer,
        host: Arc<CountingHost>,
        clock: Arc<ManualClock>,
        tokens: Arc<FederatedTokens>,
    }

    /// An Entra endpoint answering `access-<n>` tokens valid for an hour,
    /// or `answer(n)` when given.
    async fn setup(
        policy: CachePolicy,
        answer: impl Fn(usize, &Recorded) -> Canned + Send + Sync + 'static,
    ) -> Setup {
        let entra = TestServer::respond_with(answer).await;
        let config = EntraConfig::new(
            &entra.base(),
            "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c",
            "2f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
            crate::token::entra::DEFAULT_SCOPE,
        )
        .unwrap();
        let host = Arc::new(CountingHost {
            fetches: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        });
        let clock = Arc::new(ManualClock::default());
        let tokens = Arc::new(FederatedTokens::with_clock(
            host.clone(),
            EntraExchange::new(
                config,
                reqwest::Client::builder().no_proxy().build().unwrap(),
            ),
            clock.clone(),
            policy,
        ));
        Setup {
            entra,
            host,
            clock,
            tokens,
        }
    }

    fn ok(n: usize) -> Canned {
        Canned::json(
            200,
            json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token": format!("access-{n}")}),
        )
    }

    fn no_jitter() -> CachePolicy {
        CachePolicy {
            jitter: Duration::ZERO,
            ..CachePolicy::default()
        }
    }

    async fn token(s: &Setup) -> Result<String, TokenError> {
        s.tokens
            .token()
            .await
            .map(|t| String::from_utf8(t.expose().to_vec()).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hundred_concurrent_callers_on_a_cold_cache_cause_one_exchange() {
        let s = setup(no_jitter(), |n, _| ok(n).delay(Duration::from_millis(200))).await;
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let t = s.tokens.clone();
                tokio::spawn(async move { t.token().await })
            })
            .collect();
        for c in calls {
            let t = c.await.unwrap().unwrap();
            assert_eq!(t.expose(), b"access-0");
        }
        assert_eq!(s.entra.count(), 1);
        assert_eq!(s.host.fetches.load(Ordering::SeqCst), 1);
        let st = s.tokens.status();
        assert!(st.cached && st.caches && st.last_error.is_none(), "{st:?}");
        assert_eq!(s.tokens.kind(), "file");
    }

    #[tokio::test]
    async fn tokens_are_renewed_ahead_of_expiry_and_never_served_expired() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        assert_eq!(token(&s).await.unwrap(), "access-0");
        // 54 minutes later: still fresh (renewal 5 minutes before 59:59).
        s.clock.advance(Duration::from_secs(54 * 60));
        assert_eq!(token(&s).await.unwrap(), "access-0");
        assert_eq!(s.entra.count(), 1);
        // 55 minutes: due, renewed once.
        s.clock.advance(Duration::from_secs(60));
        assert_eq!(token(&s).await.unwrap(), "access-1");
        assert_eq!(token(&s).await.unwrap(), "access-1");
        assert_eq!(s.entra.count(), 2);
        // Two hours on, the cached token is long expired: a new one.
        s.clock.advance(Duration::from_secs(2 * 3600));
        assert_eq!(token(&s).await.unwrap(), "access-2");
        assert_eq!(s.entra.count(), 3);
        let st = s.tokens.status();
        let left = st
            .expires_at
            .unwrap()
            .duration_since(s.clock.wall())
            .unwrap();
        assert_eq!(left, Duration::from_secs(3599));
    }

    #[tokio::test]
    async fn jitter_renews_between_five_and_six_minutes_ahead() {
        let s = setup(CachePolicy::default(), |n, _| ok(n)).await;
        token(&s).await.unwrap();
        s.clock.advance(Duration::from_secs(3599 - 6 * 60));
        token(&s).await.unwrap();
        assert_eq!(s.entra.count(), 1, "renewed more than 6 minutes ahead");
        s.clock.advance(Duration::from_secs(60));
        token(&s).await.unwrap();
        assert_eq!(s.entra.count(), 2, "not renewed 5 minutes ahead");
    }

    #[tokio::test]
    async fn a_failure_is_remembered_briefly_then_retried() {
        let s = setup(no_jitter(), |n, _| {
            if n < 2 {
                Canned::json(400, json!({
                    "error": "invalid_request",
                    "error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject 'workload-1'.\r\nTrace ID: t",
                    "error_codes": [700213], "trace_id": "t", "correlation_id": "c"
                }))
            } else {
                ok(n)
            }
        })
        .await;
        let e = token(&s).await.unwrap_err();
        assert!(e.message.contains("AADSTS700213"), "{}", e.message);
        assert!(
            !e.message.contains("workload-1"),
            "callers get the summary: {}",
            e.message
        );
        let st = s.tokens.status();
        assert!(!st.cached);
        let detail = st.last_error.expect("health shows the failure");
        assert!(detail.contains("subject `workload-1`"), "{detail}");
        // A storm within the window: no new attempt.
        for _ in 0..20 {
            assert_eq!(token(&s).await.unwrap_err(), e);
        }
        assert_eq!(s.entra.count(), 1);
        assert_eq!(s.host.fetches.load(Ordering::SeqCst), 1);
        // After the window: one new attempt (fails again), then success.
        s.clock.advance(Duration::from_secs(5));
        assert!(token(&s).await.is_err());
        assert_eq!(s.entra.count(), 2);
        s.clock.advance(Duration::from_secs(5));
        assert_eq!(token(&s).await.unwrap(), "access-2");
        assert!(s.tokens.status().last_error.is_none());
        // Every exchange counts once, by outcome (for the metrics).
        assert_eq!(
            s.tokens.refreshes(),
            crate::token::TokenRefreshes {
                succeeded: 1,
                failed: 2
            }
        );
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_serving_the_valid_token() {
        let s = setup(no_jitter(), |n, _| {
            if n == 0 {
                ok(0)
            } else {
                Canned::json(503, json!({"error":"temporarily_unavailable","error_description":"AADSTS50196: busy"}))
            }
        })
        .await;
        assert_eq!(token(&s).await.unwrap(), "access-0");
        s.clock.advance(Duration::from_secs(56 * 60));
        // Renewal fails: the old token is still served, and the failure is
        // remembered (no renewal attempt per request).
        for _ in 0..10 {
            assert_eq!(token(&s).await.unwrap(), "access-0");
        }
        assert_eq!(s.entra.count(), 2);
        assert!(s.tokens.status().last_error.is_some());
        s.clock.advance(Duration::from_secs(6));
        assert_eq!(token(&s).await.unwrap(), "access-0");
        assert_eq!(s.entra.count(), 3);
        // Within a minute of expiry, the old token is no longer handed out.
        s.clock.advance(Duration::from_secs(3 * 60));
        assert!(token(&s).await.is_err());
    }

    #[tokio::test]
    async fn host_identity_failures_are_remembered_and_reported() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        s.host.fail.store(true, Ordering::SeqCst);
        let e = token(&s).await.unwrap_err();
        assert!(e.message.contains("`file` host identity"), "{}", e.message);
        assert!(
            e.message.contains("the token file is missing"),
            "{}",
            e.message
        );
        assert!(token(&s).await.is_err());
        assert_eq!(s.host.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(s.entra.count(), 0);
        s.host.fail.store(false, Ordering::SeqCst);
        s.clock.advance(Duration::from_secs(5));
        assert_eq!(token(&s).await.unwrap(), "access-0");
    }

    #[tokio::test]
    async fn invalidate_after_a_401_costs_exactly_one_new_exchange() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        assert_eq!(token(&s).await.unwrap(), "access-0");
        s.tokens.invalidate();
        assert!(!s.tokens.status().cached);
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let t = s.tokens.clone();
                tokio::spawn(async move { t.token().await.map(|t| t.expose().to_vec()) })
            })
            .collect();
        for c in calls {
            assert_eq!(c.await.unwrap().unwrap(), b"access-1");
        }
        assert_eq!(s.entra.count(), 2);
        assert_eq!(s.host.fetches.load(Ordering::SeqCst), 2);
    }

    fn secret(s: &str) -> Secret {
        Secret::from(s)
    }

    #[tokio::test]
    async fn a_401_storm_costs_one_exchange_per_backoff_interval() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        assert_eq!(token(&s).await.unwrap(), "access-0");
        // Graph refuses access-0: evicted, one exchange.
        assert!(s.tokens.invalidate_rejected(&secret("access-0")));
        assert_eq!(token(&s).await.unwrap(), "access-1");
        // Graph refuses access-1 as well, and every request after it: no
        // eviction, no retry, no exchange until the backoff has passed.
        for _ in 0..20 {
            assert!(!s.tokens.invalidate_rejected(&secret("access-1")));
            assert_eq!(token(&s).await.unwrap(), "access-1");
        }
        assert_eq!(s.entra.count(), 2);
        // A request refused an older token retries with the current one.
        assert!(s.tokens.invalidate_rejected(&secret("access-0")));
        assert_eq!(s.entra.count(), 2);
        // After 30 s: one more eviction, then the backoff doubles.
        s.clock.advance(Duration::from_secs(30));
        assert!(s.tokens.invalidate_rejected(&secret("access-1")));
        assert_eq!(token(&s).await.unwrap(), "access-2");
        s.clock.advance(Duration::from_secs(30));
        assert!(!s.tokens.invalidate_rejected(&secret("access-2")));
        s.clock.advance(Duration::from_secs(30));
        assert!(s.tokens.invalidate_rejected(&secret("access-2")));
        assert_eq!(token(&s).await.unwrap(), "access-3");
        assert_eq!(s.entra.count(), 4);
        // Graph accepts access-3: the next 401 evicts at once again.
        s.tokens.token_accepted();
        assert!(s.tokens.invalidate_rejected(&secret("access-3")));
        assert_eq!(token(&s).await.unwrap(), "access-4");
        assert_eq!(s.entra.count(), 5);
    }

    #[tokio::test]
    async fn concurrent_401s_for_one_token_evict_it_once() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        assert_eq!(token(&s).await.unwrap(), "access-0");
        let retried = (0..20)
            .filter(|_| s.tokens.invalidate_rejected(&secret("access-0")))
            .count();
        // The first evicts; the others find it gone and retry with the
        // token the first one's retry fetches.
        assert_eq!(retried, 20);
        assert_eq!(token(&s).await.unwrap(), "access-1");
        assert_eq!(s.entra.count(), 2);
    }

    #[tokio::test]
    async fn a_403_evicts_at_most_once_a_minute() {
        let s = setup(no_jitter(), |n, _| ok(n)).await;
        assert!(!s.tokens.invalidate_after_forbidden(), "nothing cached");
        token(&s).await.unwrap();
        assert!(s.tokens.invalidate_after_forbidden());
        assert_eq!(token(&s).await.unwrap(), "access-1");
        assert!(
            !s.tokens.invalidate_after_forbidden(),
            "again within a minute"
        );
        assert_eq!(token(&s).await.unwrap(), "access-1");
        s.clock.advance(Duration::from_secs(61));
        assert!(s.tokens.invalidate_after_forbidden());
        assert_eq!(token(&s).await.unwrap(), "access-2");
    }
}
