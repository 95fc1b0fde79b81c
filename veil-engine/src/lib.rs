//! Veil's rules engine: pure computation over rule files, requests and JSON.
//!
//! No async runtime, no HTTP client and no cloud SDK live here, so the rule
//! author's tools (`veil sanitize`, `veil rules`) build against this crate
//! alone and every decision about what leaves Veil can be tested without I/O.
//!
//! Where things live:
//! - [`rules`]: the rule-file model, its loader (YAML/JSON, Psoxy format) and compilation.
//! - [`jsonpath`]: JSONPath selection, compiled so one traversal serves a whole rule set.
//! - [`transform`]: what each transform (`redact`, `pseudonymize`, …) does to one value.
//! - [`schema_filter`]: the `responseSchema` allowlist filter ([`schema_spec`]: the schema as written).
//! - [`sanitize`]: applies an endpoint's rules to a JSON document.
//! - [`stream`]: the same on response bytes, in one pass without a document tree.
//! - [`pseudonym`]: pseudonym and reversible-token cryptography (`t~`, `p~`).
//! - [`policy`]: which requests an endpoint allows (method, path, query, headers).
//! - [`reidentify`]: decrypting `p~` tokens in requests.
//! - [`secret`]: secret values that never print.
//! - [`detect`]: detectors for personal data left in reduced text.
//! - [`error`]: rule-file and sanitizer errors.
#![forbid(unsafe_code)]

pub mod detect;
pub mod error;
pub mod jsonpath;
pub mod policy;
pub mod pseudonym;
pub mod reidentify;
pub mod rules;
pub mod sanitize;
pub mod schema_filter;
pub mod schema_spec;
pub mod secret;
pub mod stream;
pub mod transform;
