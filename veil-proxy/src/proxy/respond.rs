//! Phase 7, the answer: sanitize Graph's 2xx JSON, reduce Graph's errors to
//! what is safe, allowlist response headers, gzip for callers that accept it.

use std::io::Write;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use regex::Regex;
use serde_json::Value;

use super::error::{ErrorKind, Phase, ProxyError};
use veil_engine::pseudonym::{PseudonymizeOptions, Pseudonymizer};
use veil_engine::rules::CompiledEndpoint;
use veil_engine::sanitize::Report;

/// Response headers of Graph's that pass to the caller.
pub const PASSED_HEADERS: &[&str] = &[
    "retry-after",
    "request-id",
    "client-request-id",
    "x-ms-throttle-limit-percentage",
    "x-ms-throttle-scope",
    "x-ms-throttle-information",
    "x-ms-resource-unit",
];

/// Veil's own response headers.
pub const HEADER_RULES_SHA: &str = "x-veil-rules-sha256";
pub const HEADER_VERSION: &str = "x-veil-version";
pub const HEADER_PSOXY_ERROR: &str = "x-psoxy-error";

/// Sanitizes a 2xx body. An empty body (HEAD, 204) passes as empty.
pub fn sanitize_body(
    endpoint: &CompiledEndpoint,
    body: &[u8],
    p: &Pseudonymizer,
) -> Result<(Bytes, Report), ProxyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Bytes::new(), Report::default()));
    }
    let mut doc: Value = serde_json::from_slice(body).map_err(|e| {
        ProxyError::new(
            Phase::Respond,
            ErrorKind::UpstreamInvalid,
            format!("Graph's response is not valid JSON (line {}, column {}); nothing of it is returned", e.line(), e.column()),
        )
    })?;
    let report = endpoint.sanitize(&mut doc, p).map_err(|e| {
        ProxyError::new(
            Phase::Respond,
            ErrorKind::SanitizeFailed,
            format!("the response could not be sanitized, nothing of it is returned: {e}"),
        )
    })?;
    let out = serde_json::to_vec(&doc).map_err(|_| {
        ProxyError::new(
            Phase::Respond,
            ErrorKind::SanitizeFailed,
            "the sanitized response could not be written",
        )
    })?;
    Ok((Bytes::from(out), report))
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+").expect("static regex")
});
static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("static regex")
});

/// Reduces a Graph error body to `{"error":{"code","message"}}` with every
/// address pseudonymized and every GUID replaced by its `p~` token (or
/// removed when no encryption key is configured).
pub fn reduce_error_body(body: &[u8], p: &Pseudonymizer) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .filter(|c| {
            c.len() <= 100
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        })
        .unwrap_or("UnknownError")
        .to_string();
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message: String = message.chars().take(1000).collect();
    let message = EMAIL.replace_all(&message, |c: &regex::Captures<'_>| {
        p.pseudonymize(&c[0], PseudonymizeOptions::default())
            .unwrap_or_else(|_| "<address>".into())
    });
    let message = GUID.replace_all(&message, |c: &regex::Captures<'_>| {
        p.encrypt(&c[0]).unwrap_or_else(|_| "<id>".into())
    });
    serde_json::json!({"error": {"code": code, "message": message}})
}

/// Graph's 403 error codes that mean Veil's token carries no (or not the
/// needed) application permissions.
pub const CONSENT_ERROR_CODES: &[&str] = &[
    "Authorization_RequestDenied",
    "Authorization_IdentityNotFound",
];

/// What Veil says about those 403s (logs and the caller's error message).
pub const CONSENT_HINT: &str = "Veil: the app registration may lack admin consent for the Graph application permissions this connector needs, or consent was granted after Veil's cached Graph token was issued; Veil dropped its cached token (at most once a minute), so retry shortly; if this persists, grant admin consent in Entra ID → App registrations → API permissions (`veil doctor` lists the permissions)";

/// The consent-related error code of a Graph 403 body, if it is one.
pub fn missing_consent_code(body: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error")?.get("code")?.as_str()?;
    CONSENT_ERROR_CODES.iter().copied().find(|c| *c == code)
}

/// Appends Veil's hint to a reduced error body's message.
pub fn append_hint(reduced: &mut Value, hint: &str) {
    if let Some(Value::String(m)) = reduced.get_mut("error").and_then(|e| e.get_mut("message")) {
        if !m.is_empty() {
            m.push(' ');
        }
        m.push_str(hint);
    }
}

/// Copies the allowlisted upstream headers.
pub fn passed_headers(upstream: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    PASSED_HEADERS
        .iter()
        .filter_map(|name| {
            upstream
                .get(*name)
                .map(|v| (HeaderName::from_static(name), v.clone()))
        })
        .collect()
}

/// Whether the caller accepts gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
}

/// Gzips `body` (fast level).
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

/// Builds a JSON response.
pub fn json_response(
    status: StatusCode,
    body: Bytes,
    extra: Vec<(HeaderName, HeaderValue)>,
    gzip_ok: bool,
) -> Response<Bytes> {
    let mut builder = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (n, v) in extra {
        builder = builder.header(n, v);
    }
    let body = if gzip_ok && body.len() > 1024 {
        match gzip(&body) {
            Some(z) => {
                builder = builder
                    .header(http::header::CONTENT_ENCODING, "gzip")
                    .header(http::header::VARY, "Accept-Encoding");
                Bytes::from(z)
            }
            None => body,
        }
    } else {
        body
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Bytes::new()))
}

/// The error response for a refused or failed request.
pub fn error_response(e: &ProxyError, extra: Vec<(HeaderName, HeaderValue)>) -> Response<Bytes> {
    let mut headers = extra;
    headers.push((
        HeaderName::from_static(HEADER_PSOXY_ERROR),
        HeaderValue::from_static(e.kind.psoxy_code()),
    ));
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    json_response(e.status(), Bytes::from(body), headers, false)
}
