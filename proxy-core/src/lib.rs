//! Veil's core library.
//!
//! Where things live:
//! - [`rules`]: the rule-file model, its loader (YAML/JSON, Psoxy format) and compilation.
//! - [`jsonpath`]: JSONPath selection, compiled so one traversal serves a whole rule set.
//! - [`transform`]: what each transform (`redact`, `pseudonymize`, …) does to one value.
//! - [`schema_filter`]: the `responseSchema` allowlist filter.
//! - [`sanitize`]: the engine that applies an endpoint's rules to a JSON document.
//! - [`pseudonym`]: pseudonym and reversible-token cryptography (`t~`, `p~`).
//! - [`policy`]: which requests an endpoint allows (method, path, query, headers).
//! - [`proxy`]: the request pipeline (normalize → health → authenticate →
//!   match → re-identify → upstream → answer → log), host-agnostic.
//! - [`token`]: Graph access tokens (the provider trait and its kinds).
//! - [`reidentify`]: decrypting `p~` tokens in requests.
//! - [`secret`]: secret values that never print.
//! - [`secrets`]: where the salt and encryption keys come from (env, file, SSM, Secrets Manager).
//! - [`aws`]: a minimal SigV4 client for the AWS APIs Veil calls.
#![forbid(unsafe_code)]

pub mod aws;
pub mod config;
pub mod error;
pub mod jsonpath;
pub mod policy;
pub mod proxy;
pub mod pseudonym;
pub mod reidentify;
pub mod rules;
pub mod sanitize;
pub mod schema_filter;
pub mod secret;
pub mod secrets;
pub mod token;
pub mod transform;
