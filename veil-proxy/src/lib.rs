//! Veil's proxy: everything that talks to the network, built on
//! [`veil_engine`], which decides what is allowed and what leaves.
//!
//! Where things live:
//! - [`proxy`]: the request pipeline (normalize → health → authenticate →
//!   match → re-identify → upstream → answer → log), host-agnostic.
//! - [`token`]: Graph access tokens (the provider trait and its kinds).
//! - [`secrets`]: where the salt and encryption keys come from (env, file, SSM, Secrets Manager).
//! - [`config`]: pseudonym settings read from the environment.
//! - [`aws`]: a minimal SigV4 client for the AWS APIs Veil calls.
//! - [`metrics`]: per-request figures as Prometheus text or CloudWatch
//!   Embedded Metric Format lines.
#![forbid(unsafe_code)]

pub mod aws;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod secrets;
pub mod token;
