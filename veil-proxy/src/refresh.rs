//! [`RefreshCell`]: one cached value that is fetched by a single flight,
//! renewed ahead of its expiry, and read against an injectable [`Clock`].
//! Graph tokens ([`crate::token::cache`]) and the caller-authentication
//! issuer's signing keys ([`crate::auth`]) are both kept in one.
//!
//! - **Single flight**: however many tasks find the cell empty, one fetch
//!   runs; the others wait for it and share its outcome.
//! - **Refresh ahead**: a value is renewed [`CellPolicy::refresh_before`]
//!   (plus jitter) before it expires; while the renewal runs, other tasks
//!   keep using the current value, and if it fails they keep using it.
//! - **Brief failure memory**: a failed fetch is remembered for a few
//!   seconds, so a storm of requests does not hammer the source.
//! - **Stale if error** ([`CellPolicy::min_remaining`] `None`): a value
//!   past its lifetime stays in use for as long as refreshing it fails.
//! - **Forced refresh** ([`RefreshCell::refresh_unless_attempted`]): a
//!   caller that found the value wanting asks for a new one, at most once
//!   per interval, sharing any fetch made since it looked.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// A source of time, so tests can move it.
pub trait Clock: Send + Sync {
    /// Monotonic time, for expiry.
    fn now(&self) -> Instant;
    /// Wall-clock time, for the health check.
    fn wall(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (tests).
#[cfg(test)]
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset: Mutex<Duration>,
}

#[cfg(test)]
impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            start: Instant::now(),
            wall_start: SystemTime::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

#[cfg(test)]
impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.offset()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + self.offset()
    }
}

/// When a [`RefreshCell`] renews its value and how long it remembers a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellPolicy {
    /// Renew this long before expiry…
    pub refresh_before: Duration,
    /// …plus a random part of this much (spreads renewals of a fleet).
    pub jitter: Duration,
    /// Never hand out a value with less than this left (at most a quarter
    /// of its lifetime). `None`: an expired value stays in use while
    /// refreshing it fails.
    pub min_remaining: Option<Duration>,
    /// How long a failed fetch is remembered when no value is usable.
    pub failure_ttl: Duration,
    /// How long a failed renewal is remembered while the older value is
    /// still handed out.
    pub stale_failure_ttl: Duration,
}

/// What a fetch produced: the value and how long it is valid.
#[derive(Debug, Clone)]
pub(crate) struct Fetched<T> {
    pub value: T,
    pub lifetime: Duration,
}

/// The cached value and its times.
#[derive(Debug, Clone)]
pub(crate) struct Entry<T> {
    pub value: T,
    /// When it was fetched (only the tests read it: the cached lifetime).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fetched_at: Instant,
    /// Renewed from here on.
    pub refresh_at: Instant,
    /// Handed out until here (`None`: for as long as renewals fail).
    pub usable_until: Option<Instant>,
    pub expires_at: Instant,
}

impl<T> Entry<T> {
    /// Whether the value may be handed out at `now`.
    pub(crate) fn usable(&self, now: Instant) -> bool {
        self.usable_until.is_none_or(|until| now < until)
    }
}

struct State<T, E> {
    entry: Option<Entry<T>>,
    /// The last failure and until when it stands in for new attempts.
    failure: Option<(E, Instant)>,
}

#[derive(Default)]
struct Flight {
    /// When the last forced refresh was made.
    last_forced: Option<Instant>,
}

enum Peek<T, E> {
    /// Use it; nothing to do.
    Fresh(T),
    /// Usable, but due for renewal.
    Due(T),
    /// Nothing usable, and a failure is remembered.
    Failed(E),
    /// Nothing usable: fetch.
    Missing,
}

/// One cached value, fetched by a single flight. See the module doc.
pub(crate) struct RefreshCell<T, E> {
    clock: Arc<dyn Clock>,
    policy: CellPolicy,
    state: Mutex<State<T, E>>,
    /// Held by the one fetch in flight.
    flight: tokio::sync::Mutex<Flight>,
    /// Incremented after every fetch attempt.
    attempts: AtomicU64,
}

impl<T: Clone, E: Clone> RefreshCell<T, E> {
    pub(crate) fn new(clock: Arc<dyn Clock>, policy: CellPolicy) -> Self {
        RefreshCell {
            clock,
            policy,
            state: Mutex::new(State {
                entry: None,
                failure: None,
            }),
            flight: tokio::sync::Mutex::new(Flight::default()),
            attempts: AtomicU64::new(0),
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn lock(&self) -> MutexGuard<'_, State<T, E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peek(&self, now: Instant) -> Peek<T, E> {
        let st = self.lock();
        let failing = st
            .failure
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(e, _)| e.clone());
        match (&st.entry, failing) {
            (Some(c), _) if now < c.refresh_at && c.usable(now) => Peek::Fresh(c.value.clone()),
            // A renewal failed a moment ago: keep serving the old value.
            (Some(c), Some(_)) if c.usable(now) => Peek::Fresh(c.value.clone()),
            (Some(c), None) if c.usable(now) => Peek::Due(c.value.clone()),
            (_, Some(e)) => Peek::Failed(e),
            _ => Peek::Missing,
        }
    }

    /// The value: the cached one while it is fresh, otherwise from `fetch`
    /// (run by one task at a time; a task that finds a renewal running
    /// keeps the still-usable value).
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched<T>, E>>,
    {
        match self.peek(self.clock.now()) {
            Peek::Fresh(v) => return Ok(v),
            Peek::Failed(e) => return Err(e),
            Peek::Due(v) => {
                // Renew ahead; whoever finds a renewal running keeps the old value.
                return match self.flight.try_lock() {
                    Ok(_guard) => match self.peek(self.clock.now()) {
                        Peek::Due(old) => Ok(self.fetch_now(fetch).await.unwrap_or(old)),
                        Peek::Fresh(v) => Ok(v),
                        _ => Ok(v),
                    },
                    Err(_) => Ok(v),
                };
            }
            Peek::Missing => {}
        }
        let _guard = self.flight.lock().await;
        // Someone else may have fetched (or failed) while we waited.
        match self.peek(self.clock.now()) {
            Peek::Fresh(v) => Ok(v),
            Peek::Failed(e) => Err(e),
            Peek::Due(old) => Ok(self.fetch_now(fetch).await.unwrap_or(old)),
            Peek::Missing => self.fetch_now(fetch).await,
        }
    }

    /// How many fetches were attempted so far (pass it to
    /// [`RefreshCell::refresh_unless_attempted`]).
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    /// A newer value than the one the caller saw when [`Self::attempts`]
    /// was `seen`: the outcome of a fetch attempted since then if there was
    /// one, otherwise a new fetch — unless a forced refresh ran less than
    /// `min_interval` ago, in which case the current value. When a fetch
    /// fails, the current value (even an expired one) is returned if there
    /// is one.
    pub(crate) async fn refresh_unless_attempted<F, Fut>(
        &self,
        seen: u64,
        min_interval: Duration,
        fetch: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched<T>, E>>,
    {
        if self.attempts() != seen {
            if let Some(latest) = self.latest() {
                return latest;
            }
        }
        let mut flight = self.flight.lock().await;
        if self.attempts() != seen {
            // Another task tried while this one waited: share its outcome.
            if let Some(latest) = self.latest() {
                return latest;
            }
        }
        let now = self.clock.now();
        if flight
            .last_forced
            .is_some_and(|at| now.duration_since(at) < min_interval)
        {
            if let Some(latest) = self.latest() {
                return latest;
            }
        }
        flight.last_forced = Some(now);
        match self.fetch_now(fetch).await {
            Ok(v) => Ok(v),
            Err(e) => match &self.lock().entry {
                Some(entry) => Ok(entry.value.clone()),
                None => Err(e),
            },
        }
    }

    /// The cached value whatever its age, else the last failure.
    fn latest(&self) -> Option<Result<T, E>> {
        let st = self.lock();
        match (&st.entry, &st.failure) {
            (Some(entry), _) => Some(Ok(entry.value.clone())),
            (None, Some((e, _))) => Some(Err(e.clone())),
            (None, None) => None,
        }
    }

    /// Runs `fetch` and records its outcome; the caller holds `flight`.
    async fn fetch_now<F, Fut>(&self, fetch: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched<T>, E>>,
    {
        let result = fetch().await;
        let now = self.clock.now();
        let mut st = self.lock();
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(Fetched { value, lifetime }) => {
                let policy = &self.policy;
                let ahead = (policy.refresh_before + jitter(policy.jitter)).min(lifetime / 2);
                let expires_at = now + lifetime;
                st.entry = Some(Entry {
                    value: value.clone(),
                    fetched_at: now,
                    refresh_at: expires_at - ahead,
                    usable_until: policy
                        .min_remaining
                        .map(|keep| expires_at - keep.min(lifetime / 4)),
                    expires_at,
                });
                st.failure = None;
                Ok(value)
            }
            Err(e) => {
                let stale = st.entry.as_ref().is_some_and(|entry| entry.usable(now));
                let ttl = if stale {
                    self.policy.stale_failure_ttl
                } else {
                    self.policy.failure_ttl
                };
                st.failure = Some((e.clone(), now + ttl));
                Err(e)
            }
        }
    }

    /// The cached entry, usable or not.
    pub(crate) fn entry(&self) -> Option<Entry<T>> {
        self.lock().entry.clone()
    }

    /// Forgets the cached value.
    pub(crate) fn evict(&self) {
        self.lock().entry = None;
    }

    /// Forgets the cached value if `matches` it; returns whether it did.
    pub(crate) fn evict_if(&self, matches: impl FnOnce(&T) -> bool) -> bool {
        let mut st = self.lock();
        if st.entry.as_ref().is_some_and(|entry| matches(&entry.value)) {
            st.entry = None;
            true
        } else {
            false
        }
    }
}

/// A random duration below `max` (zero when `max` is zero).
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let nanos = max.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    Duration::from_nanos(h.finish() % nanos)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn stale_if_error() -> CellPolicy {
        CellPolicy {
            refresh_before: Duration::ZERO,
            jitter: Duration::ZERO,
            min_remaining: None,
            failure_ttl: Duration::from_secs(5),
            stale_failure_ttl: Duration::from_secs(30),
        }
    }

    struct Source {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Source {
        fn new() -> Source {
            Source {
                calls: AtomicUsize::new(0),
                fail: Default::default(),
            }
        }
        async fn fetch(&self) -> Result<Fetched<usize>, String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(format!("failure {n}"));
            }
            Ok(Fetched {
                value: n,
                lifetime: HOUR,
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn cell(policy: CellPolicy) -> (Arc<ManualClock>, RefreshCell<usize, String>) {
        let clock = Arc::new(ManualClock::default());
        (clock.clone(), RefreshCell::new(clock, policy))
    }

    #[tokio::test]
    async fn an_expired_value_stays_in_use_while_its_renewal_fails() {
        let (clock, cell) = cell(stale_if_error());
        let source = Source::new();
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        clock.advance(HOUR);
        source.fail.store(true, Ordering::SeqCst);
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        assert_eq!(source.calls(), 2, "the failure is remembered for 30 s");
        clock.advance(Duration::from_secs(30));
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        assert_eq!(source.calls(), 3);
        source.fail.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(30));
        assert_eq!(cell.get(|| source.fetch()).await, Ok(3));
    }

    #[tokio::test]
    async fn a_cold_failure_is_remembered_for_the_failure_ttl() {
        let (clock, cell) = cell(stale_if_error());
        let source = Source::new();
        source.fail.store(true, Ordering::SeqCst);
        assert_eq!(cell.get(|| source.fetch()).await, Err("failure 0".into()));
        assert_eq!(cell.get(|| source.fetch()).await, Err("failure 0".into()));
        assert_eq!(source.calls(), 1);
        clock.advance(Duration::from_secs(5));
        assert_eq!(cell.get(|| source.fetch()).await, Err("failure 1".into()));
    }

    #[tokio::test]
    async fn a_forced_refresh_is_shared_and_rate_limited() {
        let (clock, cell) = cell(stale_if_error());
        let source = Source::new();
        let seen = cell.attempts();
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        // A fetch happened since `seen`: shared, no new one.
        let interval = Duration::from_secs(30);
        assert_eq!(
            cell.refresh_unless_attempted(seen, interval, || source.fetch())
                .await,
            Ok(0)
        );
        assert_eq!(source.calls(), 1);
        let seen = cell.attempts();
        assert_eq!(
            cell.refresh_unless_attempted(seen, interval, || source.fetch())
                .await,
            Ok(1)
        );
        // Within the interval: the current value, no fetch.
        let seen = cell.attempts();
        assert_eq!(
            cell.refresh_unless_attempted(seen, interval, || source.fetch())
                .await,
            Ok(1)
        );
        assert_eq!(source.calls(), 2);
        clock.advance(interval);
        // A failed forced refresh keeps the current value.
        source.fail.store(true, Ordering::SeqCst);
        assert_eq!(
            cell.refresh_unless_attempted(seen, interval, || source.fetch())
                .await,
            Ok(1)
        );
        assert_eq!(source.calls(), 3);
    }

    #[tokio::test]
    async fn min_remaining_stops_handing_out_a_value_before_it_expires() {
        let (clock, cell) = cell(CellPolicy {
            min_remaining: Some(Duration::from_secs(60)),
            ..stale_if_error()
        });
        let source = Source::new();
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        source.fail.store(true, Ordering::SeqCst);
        clock.advance(HOUR - Duration::from_secs(61));
        assert_eq!(cell.get(|| source.fetch()).await, Ok(0));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cell.get(|| source.fetch()).await, Err("failure 1".into()));
        let entry = cell.entry().unwrap();
        assert_eq!(entry.expires_at - entry.fetched_at, HOUR);
        assert!(cell.evict_if(|v| *v == 0));
        assert!(cell.entry().is_none());
    }
}
