//! Veil's rules engine: pure computation over rule files, requests and JSON.
//!
//! No async runtime, no HTTP client and no cloud SDK live here, so the rule
//! author's tools (`veil sanitize`, `veil rules`) build against this crate
//! alone and every decision about what leaves Veil can be tested without I/O.
//!
//! Where things live:
//! - [`rules`]: the rule-file model, its loader (YAML/JSON, Psoxy format), compilation,
//!   and matching a request against the compiled rules.
//! - [`jsonpath`]: JSONPath selection, compiled so one traversal serves a whole rule set.
//! - [`transform`]: what each transform (`redact`, `pseudonymize`, …) does to one value.
//! - [`schema_filter`]: the `responseSchema` allowlist filter ([`schema_spec`]: the schema as written).
//! - [`sanitize`]: applies an endpoint's rules to a JSON document (the reference path).
//! - [`stream`]: the same on response bytes, in one pass without a document tree.
//! - [`pseudonym`]: pseudonym and reversible-token cryptography (`t~`, `p~`).
//! - [`policy`]: the compiled request-side checks (path patterns, parameter schemas, refusals).
//! - [`reidentify`]: decrypting `p~` tokens in requests.
//! - [`secret`]: secret values that never print.
//! - [`detect`]: detectors for personal data left in reduced text.
//! - [`error`]: rule-file and sanitizer errors.
#![forbid(unsafe_code)]

pub mod detect;
mod error;
pub mod jsonpath;
pub mod policy;
pub mod pseudonym;
pub mod reidentify;
pub mod rules;
pub mod sanitize;
mod schema_filter;
mod schema_spec;
pub mod secret;
pub mod stream;
pub mod transform;

// The curated surface of the private modules: what callers name.
pub use error::{RuleError, RuleLocation, SanitizeError};
