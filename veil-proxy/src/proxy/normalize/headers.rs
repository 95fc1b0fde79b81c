//! The request's headers in phase 1: Psoxy's target headers
//! (`X-Psoxy-TargetPath`, `X-Psoxy-TargetQuery`), which name the target in
//! place of the request line and pass the same checks, and the header
//! policy (sizes, control characters, method overrides) described in the
//! [parent module](super).

use super::{bad, normalize_raw_target, too_large, Limits, Target};
use crate::error::ProxyError;

/// Psoxy's control header naming the request path in place of the request
/// line's (for fronting layers that rewrite or constrain the URL).
pub const TARGET_PATH_HEADER: &str = "x-psoxy-targetpath";
/// Psoxy's control header naming the raw query (no leading `?`; empty: no
/// query) in place of the request line's.
pub const TARGET_QUERY_HEADER: &str = "x-psoxy-targetquery";
/// Longest value of either target header, in bytes (as Psoxy: 4 KiB).
pub const MAX_TARGET_HEADER: usize = 4096;

/// The target named by Psoxy's `X-Psoxy-TargetPath` / `X-Psoxy-TargetQuery`
/// headers, or `None` when the request has neither.
///
/// A present `X-Psoxy-TargetPath` replaces the request line's path, a
/// present `X-Psoxy-TargetQuery` its query (an empty value: no query); a
/// part without its header keeps the request line's. Each value must be
/// one header field of at most [`MAX_TARGET_HEADER`] bytes of printable
/// ASCII without whitespace or `#`; the path must start with `/` and hold
/// no `?`, the query must not start with `?` (400 otherwise, naming the
/// header). The combined target then passes exactly the checks of a
/// request-line target ([`normalize_raw_target`]): the headers are another
/// way to write the target, never a way around its policy.
pub fn target_from_headers(
    headers: &http::HeaderMap,
    request_line: &Target,
    limits: &Limits,
) -> Result<Option<Target>, ProxyError> {
    let path = target_header(headers, TARGET_PATH_HEADER, "X-Psoxy-TargetPath")?;
    let query = target_header(headers, TARGET_QUERY_HEADER, "X-Psoxy-TargetQuery")?;
    if path.is_none() && query.is_none() {
        return Ok(None);
    }
    if let Some(p) = path {
        if !p.starts_with('/') {
            return Err(bad("X-Psoxy-TargetPath must start with '/'"));
        }
        if p.contains('?') {
            return Err(bad(
                "X-Psoxy-TargetPath must not contain '?': send the query in X-Psoxy-TargetQuery",
            ));
        }
    }
    if query.is_some_and(|q| q.starts_with('?')) {
        return Err(bad(
            "X-Psoxy-TargetQuery is the query without its leading '?'",
        ));
    }
    let path = path.unwrap_or(&request_line.path);
    let query = match query {
        Some(q) => (!q.is_empty()).then_some(q),
        None => request_line.query.as_deref(),
    };
    let raw = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    normalize_raw_target(raw.as_bytes(), limits).map(Some)
}

/// One target header's value: absent, or one field of printable ASCII
/// without whitespace or `#`, at most [`MAX_TARGET_HEADER`] bytes.
fn target_header<'a>(
    headers: &'a http::HeaderMap,
    name: &'static str,
    display: &str,
) -> Result<Option<&'a str>, ProxyError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(bad(format!("{display} appears more than once")));
    }
    if value.len() > MAX_TARGET_HEADER {
        return Err(bad(format!(
            "{display} is longer than the limit of {MAX_TARGET_HEADER} bytes"
        )));
    }
    let bytes = value.as_bytes();
    if let Some(&b) = bytes
        .iter()
        .find(|&&b| !(0x21..=0x7e).contains(&b) || b == b'#')
    {
        let what = match b {
            b'#' => "a fragment ('#')",
            b' ' | b'\t' => "whitespace",
            0x00..=0x1f | 0x7f => "a control character",
            _ => "a byte that is not printable ASCII",
        };
        return Err(bad(format!("{display} contains {what}")));
    }
    // Printable ASCII, so valid UTF-8.
    Ok(std::str::from_utf8(bytes).ok())
}

/// Checks header count/sizes and refuses CR/LF/NUL/control chars in values; refuses
/// `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` headers (method
/// overrides are never honoured).
pub fn check_headers(headers: &http::HeaderMap, limits: &Limits) -> Result<(), ProxyError> {
    if headers.len() > limits.max_headers {
        return Err(too_large(format!(
            "more than {} request headers",
            limits.max_headers
        )));
    }
    let mut total: usize = 0;
    for (name, value) in headers {
        if value.len() > limits.max_header_value {
            return Err(too_large(format!(
                "a request header value is longer than the limit of {} bytes",
                limits.max_header_value
            )));
        }
        // `name: value\r\n`
        total = total
            .saturating_add(name.as_str().len())
            .saturating_add(value.len())
            .saturating_add(4);
        if total > limits.max_headers_total {
            return Err(too_large(format!(
                "request headers are larger than the limit of {} bytes in all",
                limits.max_headers_total
            )));
        }
    }
    for (name, value) in headers {
        if let Some(display) = METHOD_OVERRIDE_HEADERS
            .iter()
            .find(|h| name.as_str().eq_ignore_ascii_case(h))
        {
            return Err(bad(format!(
                "method override header '{display}' refused: method overrides are never honoured"
            )));
        }
        if value.as_bytes().iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(bad(
                "a request header value contains a control character (CR, LF, NUL, TAB or other)",
            ));
        }
    }
    Ok(())
}

/// Headers that would ask for another method than the request line's.
const METHOD_OVERRIDE_HEADERS: [&str; 3] = [
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];
