//! Phase 7, the answer: sanitize Graph's 2xx JSON, reduce Graph's errors to
//! what is safe, allowlist response headers, gzip for callers that accept it.

use std::io::Write;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use regex::Regex;
use serde_json::Value;

use super::access::Outcome;
use super::error::{ErrorKind, Phase, ProxyError};
use super::upstream::UpstreamResponse;
use super::Proxy;
use veil_engine::{BodyOptions, CompiledEndpoint, Pseudonymizer, SanitizeReport};

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
/// `opts`: the streaming or the DOM path, and where paging links point.
pub fn sanitize_body(
    endpoint: &CompiledEndpoint,
    body: &[u8],
    p: &Pseudonymizer,
    opts: &BodyOptions,
) -> Result<(Bytes, SanitizeReport), ProxyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Bytes::new(), SanitizeReport::default()));
    }
    // One pass over Graph's bytes (veil_engine::sanitize_body_with): what the allowlist
    // drops is skipped, what is kept is copied or transformed straight to
    // the output; the whole sanitized body is returned or nothing.
    let (out, report) = veil_engine::sanitize_body_with(
        &endpoint.sanitizer,
        body,
        p,
        &endpoint.label,
        opts,
    )
    .map_err(|e| match e {
        veil_engine::BodyError::InvalidJson { line, column, .. } => ProxyError::new(
            Phase::Respond,
            ErrorKind::UpstreamInvalid,
            format!("Graph's response is not valid JSON (line {line}, column {column}); nothing of it is returned"),
        ),
        veil_engine::BodyError::Transform(e) => ProxyError::new(
            Phase::Respond,
            ErrorKind::SanitizeFailed,
            format!("the response could not be sanitized, nothing of it is returned: {e}"),
        ),
        veil_engine::BodyError::TooDeep { max } => super::upstream::too_deep(max),
    })?;
    Ok((Bytes::from(out), report))
}

/// Graph's error codes Veil knows, each with the fixed message callers get
/// instead of Graph's text. Graph's messages quote the request (paths,
/// ids, addresses, names) — and since Veil re-identifies `p~` tokens before
/// forwarding, an echoed id would pair a token with the id behind it. So
/// nothing of Graph's text leaves: only the code and this message.
const GRAPH_ERRORS: &[(&str, &str)] = &[
    ("BadRequest", "Graph refused the request as malformed."),
    ("Request_BadRequest", "Graph refused the request as malformed."),
    ("invalidRequest", "Graph refused the request as malformed."),
    ("ErrorInvalidRequest", "Graph refused the request as malformed."),
    ("Request_UnsupportedQuery", "Graph does not support this query."),
    ("ErrorInvalidIdMalformed", "An id in the request is malformed."),
    ("ErrorInvalidUser", "The user in the request is not valid."),
    ("InvalidAuthenticationToken", "Graph refused Veil's access token (missing, invalid or expired)."),
    ("Authorization_IdentityNotFound", "The application's identity was not found in the tenant."),
    ("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    ("ErrorAccessDenied", "Access to the requested resource is denied."),
    ("AccessDenied", "Access to the requested resource is denied."),
    ("accessDenied", "Access to the requested resource is denied."),
    ("Forbidden", "Access to the requested resource is denied."),
    ("ErrorItemNotFound", "The requested item was not found."),
    ("Request_ResourceNotFound", "The requested resource was not found."),
    ("ResourceNotFound", "The requested resource was not found."),
    ("itemNotFound", "The requested item was not found."),
    ("NotFound", "The requested resource was not found."),
    ("MailboxNotEnabledForRESTAPI", "The mailbox is not enabled for the REST API (on-premises, inactive, soft-deleted or unlicensed)."),
    ("ErrorMailboxNotEnabledForRESTAPI", "The mailbox is not enabled for the REST API (on-premises, inactive, soft-deleted or unlicensed)."),
    ("ErrorSyncFolderNotFound", "The delta state is no longer valid; start a new sync."),
    ("syncStateNotFound", "The delta state is no longer valid; start a new sync."),
    ("TooManyRequests", "Too many requests; retry after the interval in Retry-After."),
    ("ApplicationThrottled", "Too many requests; retry after the interval in Retry-After."),
    ("activityLimitReached", "Too many requests; retry after the interval in Retry-After."),
    ("ServiceNotAvailable", "Graph is temporarily unavailable; retry later."),
    ("serviceNotAvailable", "Graph is temporarily unavailable; retry later."),
    ("ErrorInternalServerError", "Graph had an internal error."),
    ("InternalServerError", "Graph had an internal error."),
    ("generalException", "Graph had an unspecified error."),
    ("UnknownError", "Graph returned an error."),
];

static REQUEST_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .expect("static regex")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z?$")
        .expect("static regex")
});

/// Reduces a Graph error body to `{"error":{"code","message"}}`: Graph's
/// `error.code` when it is a plain identifier (else `UnknownError`), the
/// fixed message Veil has for that code (never Graph's text), and from
/// `innerError` only a GUID-shaped `request-id` and an ISO `date`, so a
/// support case can be matched with Microsoft. Nothing of the request's
/// path or query — original or re-identified — is echoed.
pub fn reduce_error_body(body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .filter(|c| {
            !c.is_empty()
                && c.len() <= 64
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        })
        .unwrap_or("UnknownError");
    let message = match GRAPH_ERRORS.iter().find(|(c, _)| *c == code) {
        Some((_, m)) => (*m).to_string(),
        None => format!("Graph returned the error code `{code}`."),
    };
    let mut out = serde_json::json!({"error": {"code": code, "message": message}});
    let inner = err.and_then(|e| e.get("innerError"));
    let mut kept = serde_json::Map::new();
    for (key, shape) in [("request-id", &*REQUEST_ID), ("date", &*DATE)] {
        if let Some(v) = inner
            .and_then(|i| i.get(key))
            .and_then(Value::as_str)
            .filter(|v| shape.is_match(v))
        {
            kept.insert(key.into(), Value::String(v.into()));
        }
    }
    if !kept.is_empty() {
        out["error"]["innerError"] = Value::Object(kept);
    }
    out
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

impl Proxy {
    /// Phase 8: a 2xx body through the sanitizer, anything else reduced to
    /// Graph's error code and a fixed message; Veil's headers and the few of
    /// Graph's that pass.
    pub(super) fn answer(
        &self,
        req: &Request<Bytes>,
        endpoint: &CompiledEndpoint,
        upstream: UpstreamResponse,
        out: &mut Outcome,
    ) -> Result<Response<Bytes>, ProxyError> {
        // A 403 for missing consent: drop the cached token (no retry here).
        let consent_error = (upstream.status == StatusCode::FORBIDDEN)
            .then(|| missing_consent_code(&upstream.body))
            .flatten();
        if let Some(code) = consent_error {
            let evicted = self.inner.tokens.invalidate_after_forbidden();
            tracing::warn!(
                target: "veil::token",
                graph_error = code,
                token_provider = self.inner.tokens.kind(),
                evicted_cached_token = evicted,
                "{}",
                CONSENT_HINT
            );
        }
        let mut headers = self.veil_headers();
        headers.extend(passed_headers(&upstream.headers));
        let gzip_ok = accepts_gzip(req.headers());
        if upstream.status.is_success() {
            let (body, report) = sanitize_body(
                endpoint,
                &upstream.body,
                &self.inner.pseudonymizer,
                &self.inner.config.body,
            )?;
            out.report = Some(report);
            out.transform_kinds = endpoint.sanitizer.transform_names();
            let body = if req.method() == Method::HEAD {
                Bytes::new()
            } else {
                body
            };
            Ok(json_response(upstream.status, body, headers, gzip_ok))
        } else {
            let mut reduced = reduce_error_body(&upstream.body);
            if consent_error.is_some() {
                append_hint(&mut reduced, CONSENT_HINT);
            }
            headers.push((
                HeaderName::from_static(HEADER_PSOXY_ERROR),
                HeaderValue::from_static("API_ERROR"),
            ));
            let body = Bytes::from(serde_json::to_vec(&reduced).unwrap_or_default());
            let status = if upstream.status.is_redirection() {
                StatusCode::BAD_GATEWAY
            } else {
                upstream.status
            };
            Ok(json_response(status, body, headers, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_only_code_fixed_message_and_request_id() {
        let body = serde_json::json!({"error": {
            "code": "Request_ResourceNotFound",
            "message": "Resource '48d31887-5fad-4d73-a9f5-3c356e68a038' does not exist or one of its queried reference-property objects are not present. Contact ann.lee@contoso.example, +1 425 555 0101",
            "innerError": {
                "date": "2026-11-06T10:00:00",
                "request-id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                "client-request-id": "Ann Lee's laptop",
                "extra": "Ann Lee"
            },
            "details": [{"target": "Ann Lee"}]
        }});
        let out = reduce_error_body(&serde_json::to_vec(&body).unwrap());
        assert_eq!(
            out,
            serde_json::json!({"error": {
                "code": "Request_ResourceNotFound",
                "message": "The requested resource was not found.",
                "innerError": {
                    "request-id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
                    "date": "2026-11-06T10:00:00"
                }
            }})
        );
    }

    #[test]
    fn odd_error_bodies_are_reduced_to_fixed_text() {
        for (body, code) in [
            (&b"Service Unavailable: backend grace@contoso.example"[..], "UnknownError"),
            (br#"{"error": {"code": "Ann Lee", "message": "x"}}"#, "UnknownError"),
            (br#"{"error": {"code": "SomeNewCode", "message": "Ann Lee"}}"#, "SomeNewCode"),
            (br#"{"error": {"message": "Ann Lee"}}"#, "UnknownError"),
            (br#"{"error": {"code": "ErrorItemNotFound", "innerError": {"request-id": "Ann", "date": "Ann"}}}"#, "ErrorItemNotFound"),
        ] {
            let out = reduce_error_body(body);
            let text = out.to_string();
            assert_eq!(out["error"]["code"], code, "{text}");
            assert!(!text.contains("Ann") && !text.contains("grace"), "{text}");
            assert!(out["error"].get("innerError").is_none(), "{text}");
        }
    }
}
