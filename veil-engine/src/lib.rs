//! Veil's rules engine: pure computation over rule files, requests and JSON.
//!
//! No async runtime, no HTTP client and no cloud SDK live here, so the rule
//! author's tools (`veil sanitize`, `veil rules`) build against this crate
//! alone and every decision about what leaves Veil can be tested without I/O.
//!
//! Every module is private; callers name what the crate root re-exports
//! below (grouped by area), never a module path. Where things live:
//! - `rules`: the rule-file model, its loader (YAML/JSON, Psoxy format), compilation,
//!   and matching a request against the compiled rules.
//! - `jsonpath`: JSONPath selection, compiled so one traversal serves a whole rule set.
//! - `transform`: what each transform (`redact`, `pseudonymize`, …) does to one value.
//! - `schema_filter`: the `responseSchema` allowlist filter (`schema_spec`: the schema as written).
//! - `sanitize`: applies an endpoint's rules to a JSON document (the reference path).
//! - `stream`: the same on response bytes, in one pass without a document tree.
//! - `pseudonym`: pseudonym and reversible-token cryptography (`t~`, `p~`).
//! - `policy`: the compiled request-side checks (path patterns, parameter schemas, refusals).
//! - `reidentify`: decrypting `p~` tokens in requests.
//! - `secret`: secret values that never print.
//! - `detect`: detectors for personal data left in reduced text.
//! - `error`: rule-file and sanitizer errors.
#![forbid(unsafe_code)]

mod detect;
mod error;
mod jsonpath;
mod members;
mod policy;
mod pseudonym;
mod reidentify;
mod rules;
mod sanitize;
mod schema_filter;
mod schema_spec;
mod secret;
mod stream;
mod transform;

// ---- Rule files: reading, compiling, the shipped connectors ----
pub use error::{RuleError, RuleLocation};
pub use rules::builtin::{load as load_builtin_rules, CONNECTORS as BUILTIN_CONNECTORS};
pub use rules::model::{GraphPermission, RuleFile};
pub use rules::{CompiledEndpoint, RuleSet};
pub use transform::Transform;

// ---- Request checks: matching a request against the rules ----
pub use policy::{
    split_url, Check as RequestCheck, Refusal as RequestRefusal, Request as PolicyRequest,
    Side as RequestSide,
};

// ---- Sanitizing responses: a JSON document, or the body's bytes ----
pub use error::SanitizeError;
pub use sanitize::Report as SanitizeReport;
// The two paths alone, for the tests that hold the streaming one to the DOM one.
#[doc(hidden)]
pub use stream::{
    dom as sanitize_body_dom, stream_only as sanitize_body_streaming,
    stream_read_only as sanitize_body_streaming_read,
};
pub use stream::{
    sanitize_read_to as sanitize_body_read_to, sanitize_to as sanitize_body_to,
    sanitize_with as sanitize_body_with, BodyError, BodyOptions, PublicBase, PublicBaseError,
    SanitizerPath, WriteError as BodyWriteError,
};

// ---- Pseudonyms, reversible tokens and re-identification ----
pub use pseudonym::{
    check_strength as check_secret_strength, DomainPolicy, EmailPolicy, PseudonymConfig,
    PseudonymizeOptions, Pseudonymizer, Scheme, TokenKind, UnknownScheme, UnknownTokenKind,
};
pub use reidentify::{reidentify, reidentify_for};

// ---- Secrets ----
pub use secret::{Secret, WITHHELD_FINGERPRINT};

// ---- Rule-author tools: JSONPath and the personal-data detectors ----
pub use detect::{
    find as find_personal_data, find_in_json as find_personal_data_in_json, Leak, Planted,
};
pub use jsonpath::{compile as compile_jsonpath, normalize as normalize_jsonpath, JsonPathError};
