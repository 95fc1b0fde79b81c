//! Request policy: which requests an endpoint allows. This module holds
//! the compiled request-side checks (path patterns, parameter schemas,
//! refusals); [`crate::rules::matching`] runs them for a request.
//!
//! A request is allowed when an endpoint's path pattern matches its path
//! (templates segment by segment; `pathRegex` against path + `?` + query,
//! case-insensitively, whole string), its method is allowed (GET and HEAD
//! when the rule says nothing), every query parameter is allowed (names
//! compared case-insensitively after percent-decoding; duplicates refused)
//! and every parameter value fits its schema. Refusals say which check
//! failed and, when no path matched, the closest endpoint.

use percent_encoding::percent_decode_str;
use regex::Regex;

/// A path pattern: a template or a regex.
#[derive(Debug)]
pub enum PathPattern {
    Template(Vec<TemplateSegment>),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub enum TemplateSegment {
    Literal(String),
    /// `{name}`: the whole segment. `optional` (`{name?}`, last segment
    /// only): the segment may also be absent.
    Param {
        name: String,
        optional: bool,
    },
    /// Parameters inside a segment, as Psoxy's templates write them:
    /// `getPstnCalls(fromDateTime={startDate},toDateTime={endDate})`.
    /// Matched as a whole, case-insensitively; each `{name}` takes one or
    /// more characters other than `/` (`{name?}`: zero or more).
    Mixed {
        regex: Regex,
        names: Vec<String>,
    },
}

impl PartialEq for TemplateSegment {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TemplateSegment::Literal(a), TemplateSegment::Literal(b)) => a == b,
            (
                TemplateSegment::Param {
                    name: a,
                    optional: x,
                },
                TemplateSegment::Param {
                    name: b,
                    optional: y,
                },
            ) => a == b && x == y,
            (TemplateSegment::Mixed { regex: a, .. }, TemplateSegment::Mixed { regex: b, .. }) => {
                a.as_str() == b.as_str()
            }
            _ => false,
        }
    }
}

fn is_param_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// A path template that cannot be used; each variant names the template.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    #[error("path template `{template}` must start with `/`")]
    NoLeadingSlash { template: String },
    #[error("path template `{template}` has an unbalanced brace in segment `{segment}`")]
    UnbalancedBrace { template: String, segment: String },
    #[error("path template `{template}` has an empty segment")]
    EmptySegment { template: String },
    /// `inner` is what stands between the braces.
    #[error("path template `{template}`: `{{{inner}}}` is not a parameter (names are letters, digits and `_`)")]
    NotAParameter { template: String, inner: String },
    #[error("path template `{template}` uses `{{{name}}}` twice")]
    Repeated { template: String, name: String },
    #[error("path template `{template}`: segment `{segment}` has two parameters with nothing between them")]
    Adjacent { template: String, segment: String },
    #[error("path template `{template}`: only the last segment can be optional (`{{{name}?}}`)")]
    OptionalNotLast { template: String, name: String },
    /// The segment's matcher could not be built.
    #[error("path template `{template}`: {error}")]
    Regex {
        template: String,
        error: regex::Error,
    },
}

impl PathPattern {
    /// Parses `/v1.0/users/{userId}/messages`, and Psoxy's forms:
    /// parameters inside a segment (`calls(from={start},to={end})`) and an
    /// optional last segment (`/events/{eventId?}`).
    pub fn template(t: &str) -> Result<PathPattern, TemplateError> {
        let template = || t.to_string();
        if !t.starts_with('/') {
            return Err(TemplateError::NoLeadingSlash {
                template: template(),
            });
        }
        let mut segs = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let pieces: Vec<&str> = t[1..].split('/').collect();
        let last = pieces.len() - 1;
        for (n, raw) in pieces.into_iter().enumerate() {
            let unbalanced = || TemplateError::UnbalancedBrace {
                template: template(),
                segment: raw.to_string(),
            };
            let opens = raw.matches('{').count();
            let closes = raw.matches('}').count();
            if opens != closes {
                return Err(unbalanced());
            }
            if opens == 0 {
                if raw.is_empty() && n != last {
                    return Err(TemplateError::EmptySegment {
                        template: template(),
                    });
                }
                segs.push(TemplateSegment::Literal(raw.to_string()));
                continue;
            }
            // Split the segment into literal text and `{name}` / `{name?}`.
            let mut parts: Vec<(bool, String, bool)> = Vec::new(); // (is_param, text, optional)
            let mut rest = raw;
            while let Some(i) = rest.find('{') {
                let j = rest[i..].find('}').map(|j| i + j).ok_or_else(unbalanced)?;
                if rest[..i].contains('}') {
                    return Err(unbalanced());
                }
                if i > 0 {
                    parts.push((false, rest[..i].to_string(), false));
                }
                let inner = &rest[i + 1..j];
                let (name, optional) = match inner.strip_suffix('?') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if !is_param_name(name) {
                    return Err(TemplateError::NotAParameter {
                        template: template(),
                        inner: inner.to_string(),
                    });
                }
                if seen.iter().any(|s| s == name) {
                    return Err(TemplateError::Repeated {
                        template: template(),
                        name: name.to_string(),
                    });
                }
                if parts.last().is_some_and(|p| p.0) {
                    return Err(TemplateError::Adjacent {
                        template: template(),
                        segment: raw.to_string(),
                    });
                }
                seen.push(name.to_string());
                parts.push((true, name.to_string(), optional));
                rest = &rest[j + 1..];
            }
            if rest.contains('}') {
                return Err(unbalanced());
            }
            if !rest.is_empty() {
                parts.push((false, rest.to_string(), false));
            }
            if let [(true, name, optional)] = parts.as_slice() {
                if *optional && n != last {
                    return Err(TemplateError::OptionalNotLast {
                        template: template(),
                        name: name.clone(),
                    });
                }
                segs.push(TemplateSegment::Param {
                    name: name.clone(),
                    optional: *optional,
                });
                continue;
            }
            let mut re = String::from("(?i)^");
            let mut names = Vec::new();
            for (is_param, text, optional) in &parts {
                if *is_param {
                    re.push_str(if *optional { "([^/]*)" } else { "([^/]+)" });
                    names.push(text.clone());
                } else {
                    re.push_str(&regex::escape(text));
                }
            }
            re.push('$');
            let regex = Regex::new(&re).map_err(|error| TemplateError::Regex {
                template: template(),
                error,
            })?;
            segs.push(TemplateSegment::Mixed { regex, names });
        }
        Ok(PathPattern::Template(segs))
    }

    /// The names of the template's parameters.
    pub fn params(&self) -> Vec<&str> {
        match self {
            PathPattern::Template(s) => s
                .iter()
                .flat_map(|x| match x {
                    TemplateSegment::Param { name, .. } => vec![name.as_str()],
                    TemplateSegment::Mixed { names, .. } => {
                        names.iter().map(String::as_str).collect()
                    }
                    TemplateSegment::Literal(_) => Vec::new(),
                })
                .collect(),
            PathPattern::Regex(_) => Vec::new(),
        }
    }

    /// Matches a raw (percent-encoded) path; returns the template parameters.
    pub fn matches(&self, path: &str, raw_query: Option<&str>) -> Option<Vec<(String, String)>> {
        match self {
            PathPattern::Regex(re) => {
                let full = match raw_query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_string(),
                };
                re.is_match(&full).then(Vec::new)
            }
            PathPattern::Template(segs) => {
                let rest = path.strip_prefix('/')?;
                let parts: Vec<&str> = rest.split('/').collect();
                let optional_last = matches!(
                    segs.last(),
                    Some(TemplateSegment::Param { optional: true, .. })
                );
                let segs = if parts.len() == segs.len() {
                    &segs[..]
                } else if optional_last && parts.len() + 1 == segs.len() {
                    &segs[..segs.len() - 1]
                } else {
                    return None;
                };
                let mut params = Vec::new();
                for (seg, part) in segs.iter().zip(parts) {
                    match seg {
                        TemplateSegment::Literal(l) => {
                            if !l.eq_ignore_ascii_case(part) {
                                return None;
                            }
                        }
                        TemplateSegment::Param { name, .. } => {
                            if part.is_empty() {
                                return None;
                            }
                            params.push((name.clone(), part.to_string()));
                        }
                        TemplateSegment::Mixed { regex, names } => {
                            let caps = regex.captures(part)?;
                            for (i, name) in names.iter().enumerate() {
                                let value = caps.get(i + 1).map_or("", |m| m.as_str());
                                params.push((name.clone(), value.to_string()));
                            }
                        }
                    }
                }
                Some(params)
            }
        }
    }

    /// An example path the template matches (params filled with `x0`).
    pub fn example(&self) -> Option<String> {
        match self {
            PathPattern::Template(segs) => Some(
                segs.iter()
                    .map(|s| match s {
                        TemplateSegment::Literal(l) => format!("/{l}"),
                        TemplateSegment::Param { .. } => "/x0".to_string(),
                        TemplateSegment::Mixed { regex, .. } => {
                            // The literal text with each parameter as `x0`.
                            let body = regex
                                .as_str()
                                .trim_start_matches("(?i)^")
                                .trim_end_matches('$')
                                .replace("([^/]+)", "x0")
                                .replace("([^/]*)", "x0");
                            format!("/{}", unescape(&body))
                        }
                    })
                    .collect(),
            ),
            PathPattern::Regex(_) => None,
        }
    }
}

/// Undoes `regex::escape` (for examples only).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The type of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Number,
    Boolean,
}

/// A compiled parameter schema.
#[derive(Debug)]
pub struct ParamSchema {
    pub kind: ParamKind,
    pub pattern: Option<Regex>,
    pub allowed: Option<Vec<String>>,
    /// The client must send a `p~` token, which Veil decrypts.
    pub reversible: bool,
    /// The value must also fit one of these (`anyOf`, Psoxy's `or`).
    pub any_of: Vec<ParamSchema>,
    /// Query parameters: the request must carry it.
    pub required: bool,
    /// With `reversible`: the kind of token required (`kind:` in the rule
    /// file); the decrypted value is checked in [`crate::reidentify`], and so
    /// is `pattern`.
    pub token_kind: Option<crate::pseudonym::TokenKind>,
}

/// Why a parameter's value does not fit its schema; the text follows the
/// parameter's name (`path parameter `id` must be of type integer`) and
/// never quotes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueRefusal {
    #[error("must be a reversible pseudonym (`p~…`)")]
    NotAToken,
    #[error("must be of type {}", format!("{:?}", .0).to_lowercase())]
    Type(ParamKind),
    /// The pattern the rule file allows, without the anchoring Veil adds.
    #[error("does not match the allowed pattern `{0}`")]
    Pattern(String),
    #[error("must be one of: {}", .0.join(", "))]
    NotListed(Vec<String>),
    #[error("fits none of the allowed schemas (`anyOf`)")]
    NoAlternative,
    /// A reversible path parameter sent empty.
    #[error("must not be empty")]
    Empty,
}

impl ParamSchema {
    /// Checks a (percent-decoded) value the client sent.
    pub fn check(&self, value: &str) -> Result<(), ValueRefusal> {
        if self.reversible && !crate::pseudonym::encoding::is_token(value) {
            return Err(ValueRefusal::NotAToken);
        }
        match self.kind {
            ParamKind::String => {}
            ParamKind::Integer if value.parse::<i64>().is_ok() => {}
            ParamKind::Number if value.parse::<f64>().is_ok_and(f64::is_finite) => {}
            ParamKind::Boolean if value == "true" || value == "false" => {}
            k => return Err(ValueRefusal::Type(k)),
        }
        // A reversible parameter's pattern is for the decrypted value.
        if let Some(re) = self.pattern.as_ref().filter(|_| !self.reversible) {
            if !re.is_match(value) {
                return Err(pattern_refusal(re));
            }
        }
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|a| a == value) {
                return Err(ValueRefusal::NotListed(allowed.clone()));
            }
        }
        if !self.any_of.is_empty() && !self.any_of.iter().any(|s| s.check(value).is_ok()) {
            return Err(ValueRefusal::NoAlternative);
        }
        Ok(())
    }
}

/// The refusal of a value that does not match `re`: it shows the pattern
/// the rule file allows (without the anchoring Veil adds), so the caller
/// can see what is accepted, e.g. `$filter` values of a given form.
fn pattern_refusal(re: &Regex) -> ValueRefusal {
    let full = re.as_str();
    let shown = full
        .strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(full);
    ValueRefusal::Pattern(shown.to_string())
}

/// Whose request is being matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The analytics client's request, as it reaches Veil (`p~` tokens).
    Client,
    /// The request as Graph sees it (real ids), e.g. a URL given to
    /// `veil sanitize`: reversible-pseudonym parameters accept raw values.
    Upstream,
}

/// A request to match.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The raw (percent-encoded) path, e.g. `/v1.0/users`.
    pub path: &'a str,
    /// The raw query without `?`.
    pub query: Option<&'a str>,
}

/// Which check refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Path,
    Method,
    QueryParam(String),
    PathParam(String),
    Query,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub check: Check,
    /// The endpoint that came closest (its template or regex).
    pub closest: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(c) = &self.closest {
            write!(f, " (closest endpoint: {c})")?;
        }
        Ok(())
    }
}

/// Splits a full URL (`https://graph.microsoft.com/v1.0/users?$top=5`) or
/// a bare path (`/v1.0/users?$top=5`) into path and raw query. The fragment
/// is dropped.
pub fn split_url(url: &str) -> (String, Option<String>) {
    let url = url.trim();
    let url = url.split_once('#').map(|(a, _)| a).unwrap_or(url);
    let after_authority = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            match rest.find(['/', '?']) {
                Some(j) => &rest[j..],
                None => "/",
            }
        }
        None => url,
    };
    let (path, query) = match after_authority.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (after_authority, None),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    (path, query)
}

/// A query string with a name or value that is not UTF-8 once decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a query parameter is not valid UTF-8 after percent-decoding")]
pub(crate) struct QueryNotUtf8;

/// Splits and percent-decodes a raw query string.
pub(crate) fn parse_query(raw: &str) -> Result<Vec<(String, String)>, QueryNotUtf8> {
    let mut out = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = piece.split_once('=').unwrap_or((piece, ""));
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| QueryNotUtf8)
        };
        out.push((dec(n)?, dec(v)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_match() {
        let p = PathPattern::template("/v1.0/users/{userId}/mailFolders('SentItems')/messages")
            .unwrap();
        assert_eq!(p.params(), ["userId"]);
        let m = p
            .matches("/v1.0/users/abc/mailfolders('sentitems')/messages", None)
            .unwrap();
        assert_eq!(m, [("userId".to_string(), "abc".to_string())]);
        assert!(p
            .matches("/v1.0/users//mailFolders('SentItems')/messages", None)
            .is_none());
        assert!(p
            .matches("/v1.0/users/a/b/mailFolders('SentItems')/messages", None)
            .is_none());
    }

    #[test]
    fn psoxy_templates_with_parameters_inside_a_segment() {
        let p = PathPattern::template(
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime={startDate},toDateTime={endDate})",
        )
        .unwrap();
        assert_eq!(p.params(), ["startDate", "endDate"]);
        let m = p
            .matches(
                "/v1.0/communications/callRecords/getpstncalls(fromDateTime=2026-11-01T00:00:00Z,toDateTime=2026-11-02)",
                None,
            )
            .unwrap();
        assert_eq!(
            m,
            [
                ("startDate".to_string(), "2026-11-01T00:00:00Z".to_string()),
                ("endDate".to_string(), "2026-11-02".to_string())
            ]
        );
        for bad in [
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime=,toDateTime=x)",
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime=a/b,toDateTime=x)",
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime=a,toDateTime=x)/more",
            "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=a,toDateTime=x)",
        ] {
            assert!(p.matches(bad, None).is_none(), "{bad}");
        }
        assert_eq!(
            p.example().unwrap(),
            "/v1.0/communications/callRecords/getPstnCalls(fromDateTime=x0,toDateTime=x0)"
        );
    }

    #[test]
    fn optional_last_segment() {
        let p = PathPattern::template("/v1.0/users/{userId}/events/{eventId?}").unwrap();
        assert_eq!(
            p.matches("/v1.0/users/u/events", None).unwrap(),
            [("userId".to_string(), "u".to_string())]
        );
        assert_eq!(p.matches("/v1.0/users/u/events/e", None).unwrap().len(), 2);
        assert!(p.matches("/v1.0/users/u/events/e/x", None).is_none());
        assert!(p.matches("/v1.0/users/u", None).is_none());
        let q = PathPattern::template("/v1.0/x/f(a={a?})").unwrap();
        assert_eq!(
            q.matches("/v1.0/x/f(a=)", None).unwrap(),
            [("a".to_string(), String::new())]
        );
    }

    #[test]
    fn bad_templates() {
        for t in [
            "v1.0/users",
            "/v1.0/users/{id",
            "/v1.0/users/{id}}",
            "/v1.0/{a}{b}",
            "/v1.0/{a}/{a}",
            "/v1.0/x({a},{a})",
            "/v1.0/{a?}/x",
            "/v1.0/{a-b}",
            "/v1.0/x}{a",
            "/v1.0//x",
            "/v1.0/{}",
        ] {
            assert!(PathPattern::template(t).is_err(), "{t}");
        }
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("https://graph.microsoft.com/v1.0/users?$top=5"),
            ("/v1.0/users".into(), Some("$top=5".into()))
        );
        assert_eq!(split_url("/v1.0/users"), ("/v1.0/users".into(), None));
        assert_eq!(split_url("v1.0/users#x"), ("/v1.0/users".into(), None));
        assert_eq!(
            split_url("https://graph.microsoft.com?x=1"),
            ("/".into(), Some("x=1".into()))
        );
    }

    #[test]
    fn query_parsing_decodes() {
        let q = parse_query("%24top=5&$filter=a%20eq%20'b'&x").unwrap();
        assert_eq!(
            q,
            [
                ("$top".into(), "5".into()),
                ("$filter".into(), "a eq 'b'".into()),
                ("x".into(), "".into())
            ]
        );
        assert!(parse_query("a=%ff").is_err());
    }

    /// A parameter schema of `kind` with nothing else set.
    fn schema(kind: ParamKind) -> ParamSchema {
        ParamSchema {
            kind,
            pattern: None,
            allowed: None,
            reversible: false,
            any_of: Vec::new(),
            required: false,
            token_kind: None,
        }
    }

    #[test]
    fn param_schema_checks() {
        let s = schema(ParamKind::Integer);
        assert!(s.check("10").is_ok());
        assert!(s.check("ten").is_err());
        let r = ParamSchema {
            reversible: true,
            ..schema(ParamKind::String)
        };
        assert!(r.check("p~abcdefghijklmnop-_09").is_ok());
        assert!(r.check("p~abc").is_err(), "too short to be a token");
        assert!(r.check("p~abcdefghijklmnop/x").is_err());
        assert!(r.check("48d31887-5fad-4d73-a9f5-3c356e68a038").is_err());
    }

    #[test]
    fn refusals_and_template_errors_keep_their_text() {
        let integer = schema(ParamKind::Integer);
        assert_eq!(
            integer.check("ten").unwrap_err().to_string(),
            "must be of type integer"
        );
        let listed = ParamSchema {
            kind: ParamKind::String,
            allowed: Some(vec!["a".into(), "b".into()]),
            ..integer
        };
        assert_eq!(
            listed.check("c").unwrap_err().to_string(),
            "must be one of: a, b"
        );
        assert_eq!(
            PathPattern::template("/x/{a}{b}").unwrap_err().to_string(),
            "path template `/x/{a}{b}`: segment `{a}{b}` has two parameters with nothing between them"
        );
        assert_eq!(
            PathPattern::template("/x/{a?}/y").unwrap_err().to_string(),
            "path template `/x/{a?}/y`: only the last segment can be optional (`{a?}`)"
        );
        assert_eq!(
            parse_query("a=%ff").unwrap_err().to_string(),
            "a query parameter is not valid UTF-8 after percent-decoding"
        );
    }

    #[test]
    fn a_refused_value_shows_the_allowed_pattern() {
        let f = ParamSchema {
            kind: ParamKind::String,
            // As the rule loader compiles `pattern:` (anchored).
            pattern: Some(Regex::new("^(?:(?i)^createdDateTime ge [0-9TZ:.+-]+$)$").unwrap()),
            allowed: None,
            reversible: false,
            any_of: Vec::new(),
            required: false,
            token_kind: None,
        };
        assert!(f.check("createdDateTime ge 2026-01-01T00:00:00Z").is_ok());
        let err = f
            .check("startswith(displayName,'A')")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "does not match the allowed pattern `(?i)^createdDateTime ge [0-9TZ:.+-]+$`"
        );
    }
}
