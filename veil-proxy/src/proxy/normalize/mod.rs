//! Phase 1 of the pipeline: normalize the request target and check the headers.
//!
//! Veil forwards a request to Microsoft Graph only if the rules allow its
//! path and query. Rules are matched against text, so the text they see must
//! be exactly what Graph acts on. This module therefore does not *repair*
//! odd targets (no dot-segment removal, no re-encoding, no case folding): it
//! **refuses** every target that a server, a framework or a later decoding
//! step could read differently from the way the rules read it. What it
//! accepts is returned, byte for byte as received, as a [`Target`], and that
//! is the only target the rest of the pipeline ever uses.
//!
//! # Policy for the request target
//!
//! Only origin-form (`/path?query`) is accepted. Refused with 400
//! ([`ErrorKind::BadRequest`]), with a message that names what was refused
//! but never echoes the target:
//!
//! - absolute-form (`http://host/path`, any URI with a scheme), authority-form
//!   (`host:443`, any URI with an authority) and asterisk-form (`*`);
//! - a path that does not start with `/`;
//! - a fragment (`#…`), raw, where Veil can see one: in a target handed to
//!   [`normalize_raw_target`] as raw text. Both hosts (`veil serve` over
//!   HTTP/1.1 and HTTP/2, and Lambda) get the target as an `http::Uri`,
//!   whose parser **drops** a fragment before Veil sees the request (see
//!   below): such a request is not refused, it is served without its
//!   fragment, and the fragment never travels upstream;
//! - in the path: dot segments (`.`, `..`), raw or percent-encoded in any
//!   case and any mix (`%2e`, `%2E%2e`, `.%2e`), also with a `;param` or
//!   `:` suffix (`..;x`, `..:`), surrounding whitespace (`..%20`) or Unicode
//!   dots that compatibility normalization turns into `.` (`%EF%BC%8E`);
//!   empty segments (`//`, a trailing `/`, or a segment that is only
//!   whitespace or `;params`), except the root path `/` itself;
//!   percent-encoded `/` (`%2F`); double percent-encoding (the decoded path
//!   still contains `%` and two hex digits, e.g. `%252e`, `%25%32%65`);
//!   Unicode look-alikes of `/` and `\` (`%EF%BC%8F`, `%EF%BC%BC`, `%EF%B9%A8`);
//! - in the path and the query: `\`, raw or encoded (`%5C`); NUL, CR, LF
//!   and every other control character, raw or encoded (`%00`–`%1F`, `%7F`,
//!   and C1 controls / U+2028 / U+2029 after decoding); malformed percent
//!   escapes (`%`, `%4`, `%zz`, IIS-style `%u002e`); bytes that are not
//!   valid UTF-8 after percent-decoding (including overlong forms such as
//!   `%C0%AE`); raw non-ASCII bytes; and any other raw character that RFC 3986
//!   does not allow there (space, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`,
//!   `|`, `}`);
//! - in the query only: double percent-encoding of `.`, `/`, `\` or a control
//!   character (`%252e`, `%252F`, `%255c`, `%2500`, `%250d`, `%250a`, …).
//!   Other `%25` sequences are allowed (a Teams join URL inside a `$filter`
//!   value legitimately carries `%253a`), and so is `%2F` (`$filter` values
//!   and join URLs contain encoded slashes).
//!
//! A target (path + `?` + query) longer than [`Limits::max_target`] is
//! refused with 414 ([`ErrorKind::UriTooLong`]) before anything else is
//! looked at. An empty query (`/path?`) is returned as `None`.
//!
//! # Policy for headers
//!
//! More than [`Limits::max_headers`] header fields, one value longer than
//! [`Limits::max_header_value`], or more than [`Limits::max_headers_total`]
//! bytes in all (each field counted as on the HTTP/1.1 wire:
//! `name: value\r\n`) is refused with 431 ([`ErrorKind::HeadersTooLarge`]).
//! A value holding a control character (anything below `0x20`, HTAB
//! included, or `0x7F`) and the method-override headers
//! `X-HTTP-Method-Override`, `X-HTTP-Method` and `X-Method-Override`
//! (method overrides are never honoured) are refused with 400.
//!
//! # What hyper and `http` refuse before Veil sees a request
//!
//! - hyper's HTTP/1 parser (`httparse`) accepts in the request target only
//!   bytes `0x21`–`0x7E` and `0x80`–`0xFF` forming valid UTF-8: a raw space,
//!   CR, LF, NUL, HTAB, any other control byte, DEL or invalid UTF-8 ends
//!   the request with 400; a target over 65,534 bytes gets 414.
//! - `http::Uri` then also refuses `<`, `>` and (in the path) `` ` `` or (in
//!   the query) `"`, and **silently drops a fragment**: `/a#x` arrives as
//!   `/a`. So [`normalize_target`] can never see a `#`; the fragment never
//!   travels upstream either. The same holds for HTTP/2: hyper builds the
//!   `Uri` from `:path` with the same parser, so the path and query that
//!   `veil serve` hands to [`normalize_raw_target`] have already lost the
//!   fragment; Lambda's events are turned into an `http::Uri` the same way.
//! - header values: `httparse` refuses every control byte except HTAB, and
//!   `http::HeaderValue::from_bytes` refuses the same, so HTAB is the only
//!   control character that can reach [`check_headers`] in practice.
//!
//! Everything else that `http::Uri` lets through (raw `\`, `"`, `{`, `}`,
//! `|`, `^`, `[`, `]`, raw non-ASCII, every percent-escape) is judged here.
//!
//! Note: for HTTP/2 requests hyper fills the `Uri`'s scheme and authority
//! from the `:scheme` and `:authority` pseudo-headers, so [`normalize_target`]
//! (which refuses any URI with a scheme or authority, as the request line of
//! an HTTP/1.1 origin-form request never has one) would refuse them; an
//! HTTP/2 front end passes `uri.path_and_query()` to
//! [`normalize_raw_target`] instead.

mod headers;

pub use headers::{check_headers, target_from_headers};

use super::error::{ErrorKind, Phase, ProxyError};

/// Limits (defaults: target 8 KiB, one header value 8 KiB, all headers 32 KiB, 100 headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest path + `?` + query, in bytes (414 beyond).
    pub max_target: usize,
    /// Longest single header value, in bytes (431 beyond).
    pub max_header_value: usize,
    /// Most bytes in all header fields, each counted as `name: value\r\n` (431 beyond).
    pub max_headers_total: usize,
    /// Most header fields, repeated names counted once per value (431 beyond).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_target: 8 * 1024,
            max_header_value: 8 * 1024,
            max_headers_total: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// The only request target the rest of the pipeline ever uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Raw, percent-encoded as received; starts with `/`.
    pub path: String,
    /// Raw, without `?`; `None` when there is no query or it is empty.
    pub query: Option<String>,
}

impl Target {
    /// `path` or `path?query`, exactly as it is sent upstream.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

/// Checks the request target of a request as `http` parsed it
/// (`http::Request::uri()`).
///
/// A URI with a scheme (absolute-form) or an authority (authority-form) is
/// refused; otherwise its path and query are checked by
/// [`normalize_raw_target`]. `http` has already dropped any fragment.
pub fn normalize_target(uri: &http::Uri, limits: &Limits) -> Result<Target, ProxyError> {
    if uri.scheme().is_some() {
        return Err(bad(
            "absolute-form request target refused: only origin-form ('/path?query') is accepted",
        ));
    }
    if uri.authority().is_some() {
        return Err(bad(
            "authority-form request target refused: only origin-form ('/path?query') is accepted",
        ));
    }
    match uri.path_and_query() {
        Some(pq) => normalize_raw_target(pq.as_str().as_bytes(), limits),
        None => Err(bad("request target has no path")),
    }
}

/// Checks a raw request target, as it came on the request line (or, for
/// HTTP/2, the `:path` pseudo-header), fragment included if there was one.
pub fn normalize_raw_target(raw: &[u8], limits: &Limits) -> Result<Target, ProxyError> {
    if raw.len() > limits.max_target {
        return Err(ProxyError::new(
            Phase::Normalize,
            ErrorKind::UriTooLong,
            format!(
                "request target is longer than the limit of {} bytes",
                limits.max_target
            ),
        ));
    }
    match raw.first() {
        None => return Err(bad("empty request target")),
        Some(b'/') => {}
        Some(_) => return Err(classify_non_origin_form(raw)),
    }
    if raw.contains(&b'#') {
        return Err(bad("fragment ('#') in request target refused"));
    }
    let (path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(i) => {
            let (path, rest) = raw.split_at(i);
            (path, rest.get(1..))
        }
        None => (raw, None),
    };

    check_path(path)?;
    if let Some(query) = query {
        check_query(query)?;
    }

    let path = ascii_string(path)?;
    let query = match query {
        Some(q) if !q.is_empty() => Some(ascii_string(q)?),
        _ => None,
    };
    Ok(Target { path, query })
}

fn bad(message: impl Into<String>) -> ProxyError {
    ProxyError::new(Phase::Normalize, ErrorKind::BadRequest, message)
}

fn too_large(message: impl Into<String>) -> ProxyError {
    ProxyError::new(Phase::Normalize, ErrorKind::HeadersTooLarge, message)
}

/// Why a target that does not start with `/` is refused.
fn classify_non_origin_form(raw: &[u8]) -> ProxyError {
    if raw == b"*" {
        return bad("asterisk-form request target ('*') refused");
    }
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":"
    let scheme_len = raw
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(raw.len());
    let starts_alpha = raw.first().is_some_and(|b| b.is_ascii_alphabetic());
    let after_scheme = raw.get(scheme_len..).unwrap_or_default();
    if starts_alpha && scheme_len > 0 && after_scheme.starts_with(b"://") {
        bad("absolute-form request target refused: only origin-form ('/path?query') is accepted")
    } else if raw.contains(&b':') {
        bad("authority-form request target refused: only origin-form ('/path?query') is accepted")
    } else {
        bad("request target does not start with '/'")
    }
}

/// The target's two parts, named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Path,
    Query,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Path => "path",
            Part::Query => "query",
        }
    }
}

fn check_path(path: &[u8]) -> Result<(), ProxyError> {
    scan(path, Part::Path)?;
    if path == b"/" {
        return Ok(());
    }
    if path.starts_with(b"//") {
        return Err(bad(
            "path starts with '//' (an empty segment, read by some servers as a host)",
        ));
    }
    let rest = path.get(1..).unwrap_or_default();
    for segment in rest.split(|&b| b == b'/') {
        check_segment(segment)?;
    }
    Ok(())
}

fn check_segment(segment: &[u8]) -> Result<(), ProxyError> {
    if segment.is_empty() {
        return Err(bad("empty path segment ('//' or a trailing '/')"));
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(segment).collect();
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| bad("path is not valid UTF-8 after percent-decoding"))?;
    if text.chars().any(is_forbidden_char) {
        return Err(bad(
            "control character in path (after percent-decoding) refused",
        ));
    }
    if text.chars().any(is_slash_like) {
        return Err(bad("Unicode look-alike of '/' or '\\' in path refused"));
    }
    if first_escape(&decoded).is_some() {
        return Err(bad(
            "double percent-encoding in path refused ('%25' followed by two hex digits, or an escape that decodes to one)",
        ));
    }
    // What some server could read as the segment itself: before a `;param`,
    // without surrounding whitespace.
    let core = text.split(';').next().unwrap_or_default().trim();
    if core.is_empty() {
        return Err(bad(
            "empty path segment (only whitespace or ';' parameters) refused",
        ));
    }
    if core
        .split(':')
        .map(str::trim)
        .any(|piece| !piece.is_empty() && piece.chars().all(is_dot_like))
    {
        return Err(bad(
            "dot segment ('.' or '..', raw or percent-encoded) in path refused",
        ));
    }
    Ok(())
}

fn check_query(query: &[u8]) -> Result<(), ProxyError> {
    scan(query, Part::Query)?;
    let decoded: Vec<u8> = percent_encoding::percent_decode(query).collect();
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| bad("query is not valid UTF-8 after percent-decoding"))?;
    if text.chars().any(is_forbidden_char) {
        return Err(bad(
            "control character in query (after percent-decoding) refused",
        ));
    }
    // Double encoding of what is refused when encoded once.
    let mut rest = decoded.as_slice();
    while let Some((at, value)) = first_escape(rest) {
        if matches!(value, b'.' | b'/' | b'\\') || value.is_ascii_control() {
            return Err(bad(
                "double percent-encoding of '.', '/', '\\' or a control character in query refused (e.g. '%252e')",
            ));
        }
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    Ok(())
}

/// Checks every byte and percent-escape of the path or the query.
fn scan(bytes: &[u8], part: Part) -> Result<(), ProxyError> {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let value = match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => (high << 4) | low,
                _ => {
                    return Err(bad(format!(
                        "malformed percent escape in {} ('%' must be followed by two hex digits)",
                        part.as_str()
                    )))
                }
            };
            check_escaped_byte(value, part)?;
            i += 3;
        } else {
            check_raw_byte(b, part)?;
            i += 1;
        }
    }
    Ok(())
}

fn check_escaped_byte(value: u8, part: Part) -> Result<(), ProxyError> {
    let part = part.as_str();
    let what = match value {
        0x00 => "percent-encoded NUL ('%00')",
        b'\r' | b'\n' => "percent-encoded CR or LF ('%0D', '%0A')",
        0x01..=0x1f | 0x7f => "percent-encoded control character",
        b'\\' => "percent-encoded backslash ('%5C')",
        b'/' if part == "path" => "percent-encoded slash ('%2F')",
        _ => return Ok(()),
    };
    Err(bad(format!("{what} in {part} refused")))
}

fn check_raw_byte(b: u8, part: Part) -> Result<(), ProxyError> {
    let allowed = b.is_ascii_alphanumeric()
        || matches!(
            b,
            // unreserved, sub-delims, ':', '@', '/'
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
        || (b == b'?' && part == Part::Query);
    if allowed {
        return Ok(());
    }
    let part = part.as_str();
    let message = match b {
        0x00 => format!("NUL byte in {part} refused"),
        b'\r' | b'\n' => format!("raw CR or LF in {part} refused"),
        0x01..=0x1f | 0x7f => format!("control character in {part} refused"),
        b'\\' => format!("backslash in {part} refused"),
        0x80..=0xff => format!("raw non-ASCII byte in {part} refused (must be percent-encoded)"),
        _ => format!(
            "character '{}' in {part} refused (must be percent-encoded)",
            char::from(b)
        ),
    };
    Err(bad(message))
}

/// The first `%XX` escape in `bytes`: its index and the byte it encodes.
fn first_escape(bytes: &[u8]) -> Option<(usize, u8)> {
    bytes.iter().enumerate().find_map(|(i, &b)| {
        if b != b'%' {
            return None;
        }
        let high = hex(*bytes.get(i + 1)?)?;
        let low = hex(*bytes.get(i + 2)?)?;
        Some((i, (high << 4) | low))
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators.
fn is_forbidden_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `.` and the characters that compatibility normalization (NFKC) turns into dots.
fn is_dot_like(c: char) -> bool {
    matches!(
        c,
        '.' | '\u{FF0E}' | '\u{FE52}' | '\u{2024}' | '\u{2025}' | '\u{2026}'
    )
}

/// Characters that compatibility normalization (NFKC) turns into `/` or `\`.
fn is_slash_like(c: char) -> bool {
    matches!(c, '\u{FF0F}' | '\u{FF3C}' | '\u{FE68}')
}

/// The checked bytes are ASCII; this cannot fail, but never panics either.
fn ascii_string(bytes: &[u8]) -> Result<String, ProxyError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| bad("request target is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use headers::{MAX_TARGET_HEADER, TARGET_PATH_HEADER, TARGET_QUERY_HEADER};
    use http::{HeaderMap, HeaderName, HeaderValue, Uri};
    use proptest::prelude::*;

    fn raw(target: &str) -> Result<Target, ProxyError> {
        normalize_raw_target(target.as_bytes(), &Limits::default())
    }

    fn with_target_headers(path: Option<&str>, query: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(p) = path {
            h.insert(
                TARGET_PATH_HEADER,
                HeaderValue::from_bytes(p.as_bytes()).unwrap(),
            );
        }
        if let Some(q) = query {
            h.insert(
                TARGET_QUERY_HEADER,
                HeaderValue::from_bytes(q.as_bytes()).unwrap(),
            );
        }
        h
    }

    fn named(
        path: Option<&str>,
        query: Option<&str>,
        line: &str,
    ) -> Result<Option<Target>, ProxyError> {
        target_from_headers(
            &with_target_headers(path, query),
            &raw(line).unwrap(),
            &Limits::default(),
        )
    }

    #[test]
    fn target_headers_replace_the_request_lines_parts() {
        let t = |path: &str, query: Option<&str>| Target {
            path: path.into(),
            query: query.map(String::from),
        };
        assert_eq!(named(None, None, "/a?x=1").unwrap(), None);
        assert_eq!(
            named(Some("/v1.0/users"), None, "/ignored?$top=5").unwrap(),
            Some(t("/v1.0/users", Some("$top=5")))
        );
        assert_eq!(
            named(Some("/v1.0/users"), Some("$top=1"), "/x?$top=5").unwrap(),
            Some(t("/v1.0/users", Some("$top=1")))
        );
        assert_eq!(
            named(
                None,
                Some("$filter=startswith(displayName,'a')"),
                "/v1.0/users?$top=5"
            )
            .unwrap(),
            Some(t(
                "/v1.0/users",
                Some("$filter=startswith(displayName,'a')")
            ))
        );
        // An empty query header means: no query.
        assert_eq!(
            named(Some("/v1.0/users"), Some(""), "/x?$top=5").unwrap(),
            Some(t("/v1.0/users", None))
        );
    }

    #[test]
    fn target_headers_are_refused_when_malformed_or_hostile() {
        let refused = |path: Option<&str>, query: Option<&str>, why: &str| {
            let e = named(path, query, "/x").expect_err(why);
            assert_eq!(e.kind, ErrorKind::BadRequest, "{why}");
            assert_eq!(e.phase, Phase::Normalize, "{why}");
        };
        refused(Some("v1.0/users"), None, "no leading slash");
        refused(Some("/v1.0/users?$top=1"), None, "query in the path header");
        refused(None, Some("?$top=1"), "leading '?'");
        refused(Some("/v1.0/users#x"), None, "fragment");
        refused(None, Some("$top=1#x"), "fragment in the query");
        refused(Some("/v1.0/users/a b"), None, "space");
        refused(Some("/v1.0/users/a\tb"), None, "tab");
        refused(Some("/v1.0/users/\u{e9}"), None, "non-ASCII");
        refused(
            Some(&format!("/{}", "a".repeat(MAX_TARGET_HEADER))),
            None,
            "too long",
        );
        // The combined target passes the request line's policy.
        refused(Some("/v1.0/users/../groups"), None, "dot segment");
        refused(
            Some("/v1.0/users/%2e%2e/groups"),
            None,
            "encoded dot segment",
        );
        refused(Some("/v1.0//users"), None, "empty segment");
        refused(Some("/v1.0/users%2Fx"), None, "encoded slash");
        refused(None, Some("$filter=%252e%252e"), "double encoding");
        refused(Some("/a\\b"), None, "backslash");
        let mut twice = with_target_headers(Some("/a"), None);
        twice.append(TARGET_PATH_HEADER, HeaderValue::from_static("/b"));
        let e = target_from_headers(&twice, &raw("/x").unwrap(), &Limits::default()).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
    }

    /// Every hostile target, with the kind of refusal it must get.
    fn hostile() -> Vec<(String, ErrorKind)> {
        use ErrorKind::{BadRequest as B, UriTooLong as L};
        let mut cases: Vec<(String, ErrorKind)> = [
            // dot segments, raw and encoded in any case and mix
            "/v1.0/users/../groups",
            "/v1.0/users/%2e%2e/groups",
            "/v1.0/users/%2E%2e/x",
            "/v1.0/users/.%2e/x",
            "/v1.0/users/%2e./x",
            "/v1.0/./users",
            "/v1.0/users/%2E/x",
            "/v1.0/users/..",
            "/v1.0/users/.",
            "/..",
            "/v1.0/users/..;x/groups",
            "/v1.0/users/..%3bx/groups",
            "/v1.0/me/drive/root:/a/..:/children",
            "/v1.0/users/..%20/groups",
            "/v1.0/users/%20/groups",
            "/v1.0/users/;x/groups",
            "/v1.0/users/%EF%BC%8E%EF%BC%8E/groups",
            "/v1.0/users/%E2%80%A5/groups",
            "/v1.0/users/%u002e%u002e/groups",
            // double encoding
            "/v1.0/users/%252e%252e/x",
            "/v1.0/users%252fx",
            "/v1.0/users/%25%32%65%25%32%65/x",
            "/v1.0/users/%2525/x",
            "/v1.0/users?$filter=%252e%252e",
            "/v1.0/users?$filter=a%252Fb",
            "/v1.0/users?$filter=a%255Cb",
            "/v1.0/users?x=%2500",
            "/v1.0/users?x=%250d%250a",
            // encoded slash, backslash
            "/v1.0/users%2fx",
            "/v1.0/users%2Fx",
            "/v1.0/users\\x",
            "/v1.0/users%5cx",
            "/v1.0/users%5Cx",
            "/v1.0/users?x=\\",
            "/v1.0/users?x=%5c",
            "/v1.0/users/%EF%BC%8Fx",
            "/v1.0/users/%EF%BC%BCx",
            // NUL and other control characters, raw and encoded
            "/v1.0/users%00",
            "/v1.0/users?x=%00",
            "/v1.0/users%0d%0aHost:evil",
            "/v1.0/users%0D%0AHost:evil",
            "/v1.0/users?$top=1%0d%0aX:y",
            "/v1.0/users?$top=1%0d%0aX: y",
            "/v1.0/users/%09x",
            "/v1.0/users/%1f",
            "/v1.0/users/%7f",
            "/v1.0/users?x=%7F",
            "/v1.0/users/%C2%85",
            "/v1.0/users?x=%E2%80%A8",
            "/v1.0/users\r\nHost: evil",
            "/v1.0/users\0",
            "/v1.0/users?x=\t",
            "/v1.0/users\x7f",
            // forms other than origin-form
            "http://evil.example/v1.0/users",
            "https://graph.microsoft.com/v1.0/users",
            "//evil.example/v1.0/users",
            "evil.example:443",
            "*",
            "v1.0/users",
            "",
            // empty segments
            "/v1.0//users",
            "/v1.0/users/",
            "///",
            // malformed escapes
            "/v1.0/users/%",
            "/v1.0/users/%4",
            "/v1.0/users/%zz",
            "/v1.0/users/%g0",
            "/v1.0/users?x=%",
            "/v1.0/users?x=%4",
            "/v1.0/users?x=%zz",
            // not UTF-8 after decoding, raw non-ASCII
            "/v1.0/users/%c0%ae%c0%ae",
            "/v1.0/users/%c0%af",
            "/v1.0/users/%ff",
            "/v1.0/users/%ed%a0%80",
            "/v1.0/users?x=%c3",
            "/v1.0/users/é",
            "/v1.0/users?x=é",
            // fragment
            "/v1.0/users#x",
            "/v1.0/users?x=1#y",
            // characters RFC 3986 does not allow raw
            "/v1.0/users x",
            "/v1.0/users/\"x\"",
            "/v1.0/users/{x}",
            "/v1.0/users/a|b",
            "/v1.0/users/a^b",
            "/v1.0/users/[x]",
            "/v1.0/users/<x>",
            "/v1.0/users?x=`y`",
        ]
        .iter()
        .map(|t| (t.to_string(), B))
        .collect();
        let long = |n: usize| format!("/v1.0/users/{}", "a".repeat(n - "/v1.0/users/".len()));
        let max = Limits::default().max_target;
        cases.push((long(max + 1), L));
        cases.push((long(max * 8), L));
        cases.push((format!("/v1.0/users?x={}", "b".repeat(max)), L));
        // long and hostile: the length check comes first
        cases.push((format!("/v1.0/../{}", "c".repeat(max)), L));
        cases
    }

    #[test]
    fn hostile_targets_are_refused() {
        let cases = hostile();
        assert!(cases.len() >= 40, "{} cases", cases.len());
        for (target, kind) in &cases {
            let err = raw(target).expect_err(target);
            assert_eq!(err.kind, *kind, "{target:?}: {err}");
            assert_eq!(err.phase, Phase::Normalize, "{target:?}");
            if target.len() > 2 {
                assert!(!err.message.contains(target.as_str()), "{target:?}: {err}");
            }
        }
    }

    #[test]
    fn hostile_targets_that_http_accepts_are_refused_through_uri_too() {
        let mut through_uri = 0;
        for (target, kind) in hostile() {
            // `http` drops fragments; see `http_drops_fragments`.
            if target.contains('#') {
                continue;
            }
            if let Ok(uri) = Uri::try_from(target.as_str()) {
                through_uri += 1;
                let err = normalize_target(&uri, &Limits::default()).expect_err(&target);
                assert_eq!(err.kind, kind, "{target:?}: {err}");
            }
        }
        assert!(
            through_uri >= 40,
            "{through_uri} cases went through http::Uri"
        );
    }

    #[test]
    fn messages_say_what_was_refused() {
        let cases = [
            ("/v1.0/users/%2e%2e/x", "dot segment"),
            ("/v1.0/users%2fx", "slash"),
            ("/v1.0/users%5cx", "backslash"),
            ("/v1.0/users%00", "NUL"),
            ("/v1.0/users%0d%0aHost:evil", "CR or LF"),
            ("/v1.0/users/%252e", "double percent-encoding"),
            ("/v1.0/users?x=%252e", "double percent-encoding"),
            ("/v1.0/users/%zz", "malformed percent escape"),
            ("/v1.0/users/%c0%ae", "UTF-8"),
            ("/v1.0//users", "empty path segment"),
            ("/v1.0/users#x", "fragment"),
            ("http://evil.example/v1.0/users", "absolute-form"),
            ("evil.example:443", "authority-form"),
            ("*", "asterisk-form"),
            ("v1.0/users", "start with '/'"),
            ("/v1.0/users/{x}", "'{'"),
        ];
        for (target, expected) in cases {
            let err = raw(target).expect_err(target);
            assert!(err.message.contains(expected), "{target:?}: {err}");
        }
    }

    #[test]
    fn uri_forms_with_scheme_or_authority_are_refused() {
        for target in [
            "http://evil.example/v1.0/users",
            "https://graph.microsoft.com/v1.0/users?$top=1",
            "evil.example:443",
            "graph.microsoft.com:443",
        ] {
            let uri = Uri::try_from(target).unwrap();
            let err = normalize_target(&uri, &Limits::default()).expect_err(target);
            assert_eq!(err.kind, ErrorKind::BadRequest, "{target}");
            assert!(err.message.contains("-form"), "{target}: {err}");
        }
        let star = Uri::try_from("*").unwrap();
        let err = normalize_target(&star, &Limits::default()).unwrap_err();
        assert!(err.message.contains("asterisk-form"), "{err}");
    }

    #[test]
    fn accepted_targets_are_kept_exactly() {
        let accepted = [
            "/",
            "/v1.0/users",
            "/v1.0/users?$top=5",
            "/v1.0/users/p~AbC_-123",
            "/v1.0/users/x/mailFolders('SentItems')/messages",
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime=2026-11-01T00:00:00Z,toDateTime=2026-11-02T00:00:00Z)",
            "/v1.0/users/x/onlineMeetings?$filter=JoinWebUrl%20eq%20'https%3A%2F%2Fteams.microsoft.com%2Fl%2Fmeetup-join%2F19%253ameeting_abc%2540thread.v2%2F0'",
            "/v1.0/users?$filter=startswith(displayName,'a')&$select=id,mail&$top=10",
            "/v1.0/users/alice%40contoso.com/events?$orderby=start/dateTime%20desc",
            "/v1.0/users/a.b@contoso.com",
            "/v1.0/me/drive/root:/My%20Folder/file.txt:/content",
            "/v1.0/users/%C3%A9t%C3%A9",
            "/v1.0/users?x=100%25",
            "/v1.0/users?x=%25zz",
            "/v1.0/users?x=a?b/c",
            "/v1.0/users/...x/.x./x.",
            "/beta/users/x/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z",
        ];
        for target in accepted {
            let got = raw(target).unwrap_or_else(|e| panic!("{target:?}: {e}"));
            assert_eq!(got.path_and_query(), target);
            let uri = Uri::try_from(target).unwrap();
            let via_uri = normalize_target(&uri, &Limits::default())
                .unwrap_or_else(|e| panic!("{target:?}: {e}"));
            assert_eq!(via_uri, got);
        }
        let t = raw("/v1.0/users?$top=5").unwrap();
        assert_eq!(t.path, "/v1.0/users");
        assert_eq!(t.query.as_deref(), Some("$top=5"));
        let t = raw("/v1.0/users?").unwrap();
        assert_eq!(t.query, None);
    }

    #[test]
    fn the_target_limit_is_inclusive() {
        let limits = Limits::default();
        let at_limit = format!("/{}", "a".repeat(limits.max_target - 1));
        assert!(raw(&at_limit).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(raw(&over).unwrap_err().kind, ErrorKind::UriTooLong);
        let small = Limits {
            max_target: 10,
            ..Limits::default()
        };
        let uri = Uri::from_static("/v1.0/users?$top=5");
        let err = normalize_target(&uri, &small).unwrap_err();
        assert_eq!(err.kind, ErrorKind::UriTooLong);
        assert_eq!(err.status(), http::StatusCode::URI_TOO_LONG);
    }

    /// What `http::Uri` (and so hyper) refuses before Veil sees the request.
    #[test]
    fn http_refuses_these_before_veil() {
        for target in [
            "/v1.0/users x",
            "/v1.0/users\r\nHost: evil",
            "/v1.0/users\n",
            "/v1.0/users\0",
            "/v1.0/users\t",
            "/v1.0/users\x7f",
            "/v1.0/users/<x>",
            "/v1.0/users/`x`",
            "/v1.0/users?x=\"y\"",
            "/v1.0/users?x=<y>",
            "/v1.0/users?$top=1%0d%0aX: y",
        ] {
            assert!(Uri::try_from(target).is_err(), "{target:?}");
        }
        assert!(Uri::try_from(&b"/v1.0/users/\xff"[..]).is_err());
        // …and what it lets through, for Veil to refuse.
        for target in [
            "/v1.0/users\\x",
            "/v1.0/users?x=\\",
            "/v1.0/users/\"x\"",
            "/v1.0/users/{x}",
            "/v1.0/users/a|b",
            "/v1.0/users/[x]",
            "/v1.0/users/é",
        ] {
            let uri = Uri::try_from(target).unwrap();
            let err = normalize_target(&uri, &Limits::default()).expect_err(target);
            assert_eq!(err.kind, ErrorKind::BadRequest);
        }
    }

    #[test]
    fn http_drops_fragments() {
        let uri = Uri::try_from("/v1.0/users?x=1#../../admin").unwrap();
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/v1.0/users?x=1");
        let target = normalize_target(&uri, &Limits::default()).unwrap();
        assert_eq!(target.path_and_query(), "/v1.0/users?x=1");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::try_from(*value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn ordinary_headers_pass() {
        let map = headers(&[
            ("host", "veil.example"),
            ("authorization", "Bearer abc.def.ghi"),
            ("accept", "application/json"),
            ("consistencylevel", "eventual"),
            ("user-agent", "worklytics/1.0 (ünïcode ok)"),
        ]);
        assert_eq!(check_headers(&map, &Limits::default()), Ok(()));
        assert_eq!(check_headers(&HeaderMap::new(), &Limits::default()), Ok(()));
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits::default();
        let mut map = HeaderMap::new();
        for i in 0..limits.max_headers {
            map.append(
                HeaderName::try_from(format!("x-h{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert_eq!(check_headers(&map, &limits), Ok(()));
        map.append("x-h0", HeaderValue::from_static("again"));
        let err = check_headers(&map, &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
        assert_eq!(
            err.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn one_header_value_too_large() {
        let limits = Limits::default();
        let ok = "a".repeat(limits.max_header_value);
        assert_eq!(check_headers(&headers(&[("x-big", &ok)]), &limits), Ok(()));
        let big = "a".repeat(limits.max_header_value + 1);
        let err = check_headers(&headers(&[("x-big", &big)]), &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
        assert!(!err.message.contains(&big));
    }

    #[test]
    fn all_headers_too_large() {
        let limits = Limits::default();
        let value = "a".repeat(limits.max_header_value);
        let names = ["x-a", "x-b", "x-c", "x-d"];
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, value.as_str())).collect();
        let err = check_headers(&headers(&pairs), &limits).unwrap_err();
        assert_eq!(err.kind, ErrorKind::HeadersTooLarge);
        assert_eq!(check_headers(&headers(&pairs[..3]), &limits), Ok(()));
    }

    #[test]
    fn method_overrides_are_refused() {
        for name in [
            "X-HTTP-Method-Override",
            "x-http-method-override",
            "X-HTTP-Method",
            "X-Method-Override",
            "x-METHOD-override",
        ] {
            let map = headers(&[("accept", "*/*"), (name, "DELETE")]);
            let err = check_headers(&map, &Limits::default()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest, "{name}");
            assert!(err.message.contains("method override"), "{err}");
        }
    }

    #[test]
    fn control_characters_in_header_values_are_refused() {
        // `http` itself refuses CR, LF, NUL and DEL in a value…
        for bad in [&b"a\r\nb"[..], b"a\nb", b"a\0b", b"a\x7fb", b"a\x01b"] {
            assert!(HeaderValue::from_bytes(bad).is_err());
        }
        // …but lets HTAB through, which Veil refuses.
        let mut map = HeaderMap::new();
        map.insert("x-a", HeaderValue::from_bytes(b"a\tb").unwrap());
        let err = check_headers(&map, &Limits::default()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
    }

    /// The alphabet hostile targets are made of.
    fn hostile_piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "/",
            ".",
            "..",
            "%",
            "%2",
            "%2e",
            "%2E",
            "%2f",
            "%2F",
            "%25",
            "%5c",
            "%00",
            "%0d",
            "%0a",
            "%c0",
            "%ae",
            "%af",
            "%ef%bc%8e",
            "2",
            "e",
            "f",
            "5",
            "c",
            "a",
            "?",
            "#",
            "\\",
            ";",
            ":",
            "%20",
            " ",
            "x",
            "=",
            "&",
            "'",
            "(",
            ")",
            "é",
            "\r",
            "\n",
        ])
    }

    /// Whether some decoding of an accepted path could walk or split a segment.
    fn assert_safe(target: &Target) {
        assert!(target.path.starts_with('/'));
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(&target.path).collect();
        let decoded = String::from_utf8(decoded).expect("accepted path decodes to UTF-8");
        assert!(!decoded.contains('\\') && !decoded.contains('\0'));
        if target.path != "/" {
            for (raw, dec) in target.path[1..].split('/').zip(decoded[1..].split('/')) {
                assert!(!raw.is_empty());
                assert!(dec != "." && dec != "..", "{target:?}");
                assert!(first_escape(dec.as_bytes()).is_none(), "{target:?}");
            }
        }
        assert_eq!(
            target.path.split('/').count(),
            decoded.split('/').count(),
            "{target:?}"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = normalize_raw_target(&bytes, &Limits::default());
            if let Ok(uri) = Uri::try_from(bytes.as_slice()) {
                let _ = normalize_target(&uri, &Limits::default());
            }
        }

        #[test]
        fn random_strings_never_panic(s in ".{0,64}") {
            let _ = normalize_raw_target(s.as_bytes(), &Limits::default());
            let _ = normalize_raw_target(format!("/{s}").as_bytes(), &Limits::default());
        }

        #[test]
        fn hostile_mixes_are_refused_or_safe(
            pieces in prop::collection::vec(hostile_piece(), 0..16)
        ) {
            let target = format!("/{}", pieces.concat());
            if let Ok(t) = normalize_raw_target(target.as_bytes(), &Limits::default()) {
                let kept = t.path_and_query();
                prop_assert!(kept == target || format!("{kept}?") == target, "{:?}", target);
                assert_safe(&t);
                if let Some(q) = &t.query {
                    prop_assert!(!q.contains('#') && !q.contains('\\'));
                    let dq: Vec<u8> = percent_encoding::percent_decode_str(q).collect();
                    prop_assert!(!dq.iter().any(|b| b.is_ascii_control()));
                }
            }
            if let Ok(uri) = Uri::try_from(target.as_str()) {
                if let Ok(t) = normalize_target(&uri, &Limits::default()) {
                    assert_safe(&t);
                }
            }
        }
    }
}
