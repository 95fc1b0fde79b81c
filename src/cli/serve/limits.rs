//! The connection limits of `veil serve` ([`ServeLimits`]) and the open-file
//! limit they must fit in.

use super::*;

/// Open files kept for everything but client connections (upstream
/// connections, the token and JWKS clients, logs, the binary itself).
pub(super) const RESERVED_FILES: u64 = 64;

/// The connection discipline of `veil serve` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 256,
        }
    }
}

impl ServeLimits {
    /// Flags, then environment, then defaults; every problem at once.
    pub fn from_args(a: &Args, env: Lookup<'_>) -> Result<Self, ConfigErrors> {
        let d = ServeLimits::default();
        let mut problems = Problems::new();
        let mut secs = |flag: Option<u64>, flag_name: &str, var: &str, default: Duration| match flag
        {
            Some(0) => {
                problems.add(ConfigError::invalid(
                    flag_name,
                    "timeouts must be at least one second",
                ));
                default
            }
            Some(s) => Duration::from_secs(s),
            None => problems
                .check(number(env, var, "seconds", default.as_secs()))
                .map_or(default, Duration::from_secs),
        };
        let header_read_timeout = secs(
            a.header_read_timeout_secs,
            "--header-read-timeout-secs",
            ENV_HEADER_READ_TIMEOUT,
            d.header_read_timeout,
        );
        let idle_timeout = secs(
            a.idle_timeout_secs,
            "--idle-timeout-secs",
            ENV_IDLE_TIMEOUT,
            d.idle_timeout,
        );
        let body_read_timeout = secs(
            a.body_read_timeout_secs,
            "--body-read-timeout-secs",
            ENV_BODY_READ_TIMEOUT,
            d.body_read_timeout,
        );
        let mut count = |flag: Option<usize>, flag_name: &str, var: &str, default: usize| match flag
        {
            Some(0) => {
                problems.add(ConfigError::invalid(
                    flag_name,
                    "connection and request caps must be at least 1",
                ));
                default
            }
            Some(n) => n,
            None => problems
                .check(number(env, var, "connections or requests", default as u64))
                .map_or(default, |n| n as usize),
        };
        let max_connections = count(
            a.max_connections,
            "--max-connections",
            ENV_MAX_CONNECTIONS,
            d.max_connections,
        );
        let max_in_flight = count(
            a.max_in_flight,
            "--max-in-flight",
            ENV_MAX_IN_FLIGHT,
            d.max_in_flight,
        );
        problems.finish(|| ServeLimits {
            header_read_timeout,
            idle_timeout,
            body_read_timeout,
            max_connections,
            max_in_flight,
        })
    }

    /// Raises the soft open-file limit to the hard one, then lowers
    /// `max_connections` if the limit still cannot hold them (each takes a
    /// descriptor, and each request in flight may hold an upstream one).
    pub fn fit_open_files(mut self) -> Self {
        let Some(limit) = raise_open_file_limit() else {
            return self;
        };
        let needed = self.max_connections as u64 + self.max_in_flight as u64 + RESERVED_FILES;
        if needed > limit {
            let fit = limit
                .saturating_sub(self.max_in_flight as u64 + RESERVED_FILES)
                .max(16);
            tracing::warn!(
                target: "veil::serve",
                open_file_limit = limit,
                requested = self.max_connections,
                max_connections = fit,
                "the open-file limit cannot hold {ENV_MAX_CONNECTIONS} connections: lowered (raise `ulimit -n` / LimitNOFILE to keep it)"
            );
            self.max_connections = fit as usize;
        }
        self
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit; `None`
/// when unlimited or unknown.
#[cfg(unix)]
pub(super) fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let current = getrlimit(Resource::Nofile);
    if current.current.is_some() && current.current != current.maximum {
        let raised = Rlimit {
            current: current.maximum,
            maximum: current.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            // Some platforms cap the soft limit below the hard one.
            let _ = setrlimit(Resource::Nofile, current);
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(unix))]
pub(super) fn raise_open_file_limit() -> Option<u64> {
    None
}
