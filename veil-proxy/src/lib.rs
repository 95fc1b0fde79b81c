//! Veil's proxy: everything that talks to the network, built on
//! [`veil_engine`], which decides what is allowed and what leaves.
//!
//! Where things live:
//! - [`proxy`]: the request pipeline (normalize → health → authenticate →
//!   match → re-identify → upstream → answer → log), host-agnostic.
//! - [`auth`]: caller authentication (IP allowlist, OIDC bearer tokens,
//!   the Lambda IAM caller).
//! - [`error`]: [`error::ProxyError`], every phase's failure (status, code, phase).
//! - [`token`]: Graph access tokens (the provider trait and its kinds).
//! - [`secrets`]: where the salt and encryption keys come from (env, file, SSM, Secrets Manager).
//! - [`config`]: pseudonym settings read from the environment.
//! - [`env`]: where configuration is read from (the process environment, or
//!   a map in tests); a leaf every module may use.
//! - [`aws`]: a minimal SigV4 client for the AWS APIs Veil calls.
//! - [`metrics`]: per-request figures as Prometheus text or CloudWatch
//!   Embedded Metric Format lines.
//! - [`refresh`]: the refresh-ahead, single-flight cache cell (and its
//!   clock) that keeps Graph tokens and the issuer's signing keys.
#![forbid(unsafe_code)]

pub mod auth;
pub mod aws;
pub mod config;
pub mod env;
mod error;
pub mod metrics;
mod net;
pub mod proxy;
mod refresh;
pub mod secrets;
pub mod token;

// The curated surface of the private modules: what callers name.
pub use error::{ErrorKind, Phase, ProxyError, Refusal, UpstreamCause};
pub use refresh::{Clock, SystemClock};
