//! Request policy: which requests an endpoint allows.
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

use crate::rules::{CompiledEndpoint, RuleSet};

/// A path pattern: a template or a regex.
#[derive(Debug)]
pub enum PathPattern {
    Template(Vec<TemplateSegment>),
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    Literal(String),
    Param(String),
}

impl PathPattern {
    /// Parses `/v1.0/users/{userId}/messages`.
    pub fn template(t: &str) -> Result<PathPattern, String> {
        if !t.starts_with('/') {
            return Err(format!("path template `{t}` must start with `/`"));
        }
        let mut segs = Vec::new();
        let mut seen = Vec::new();
        let pieces: Vec<&str> = t[1..].split('/').collect();
        let last = pieces.len() - 1;
        for (n, raw) in pieces.into_iter().enumerate() {
            let opens = raw.matches('{').count();
            let closes = raw.matches('}').count();
            if opens != closes {
                return Err(format!(
                    "path template `{t}` has an unbalanced brace in segment `{raw}`"
                ));
            }
            if opens == 0 {
                if raw.is_empty() && n != last {
                    return Err(format!("path template `{t}` has an empty segment"));
                }
                segs.push(TemplateSegment::Literal(raw.to_string()));
                continue;
            }
            let name = raw
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .filter(|n| opens == 1 && !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
                .ok_or_else(|| {
                    format!("path template `{t}`: segment `{raw}` must be a literal or exactly one `{{name}}`")
                })?;
            if seen.contains(&name) {
                return Err(format!("path template `{t}` uses `{{{name}}}` twice"));
            }
            seen.push(name);
            segs.push(TemplateSegment::Param(name.to_string()));
        }
        Ok(PathPattern::Template(segs))
    }

    /// The names of the template's parameters.
    pub fn params(&self) -> Vec<&str> {
        match self {
            PathPattern::Template(s) => s
                .iter()
                .filter_map(|x| match x {
                    TemplateSegment::Param(n) => Some(n.as_str()),
                    _ => None,
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
                if parts.len() != segs.len() {
                    return None;
                }
                let mut params = Vec::new();
                for (seg, part) in segs.iter().zip(parts) {
                    match seg {
                        TemplateSegment::Literal(l) => {
                            if !l.eq_ignore_ascii_case(part) {
                                return None;
                            }
                        }
                        TemplateSegment::Param(n) => {
                            if part.is_empty() {
                                return None;
                            }
                            params.push((n.clone(), part.to_string()));
                        }
                    }
                }
                Some(params)
            }
        }
    }

    /// An example path the template matches (params filled with `x`).
    pub fn example(&self) -> Option<String> {
        match self {
            PathPattern::Template(segs) => Some(
                segs.iter()
                    .map(|s| match s {
                        TemplateSegment::Literal(l) => format!("/{l}"),
                        TemplateSegment::Param(_) => "/x0".to_string(),
                    })
                    .collect(),
            ),
            PathPattern::Regex(_) => None,
        }
    }
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
    /// With `reversible`: the kind of token required (`kind:` in the rule
    /// file); the decrypted value is checked in [`crate::reidentify`], and so
    /// is `pattern`.
    pub token_kind: Option<crate::pseudonym::TokenKind>,
}

impl ParamSchema {
    /// Checks a (percent-decoded) value the client sent.
    pub fn check(&self, value: &str) -> Result<(), String> {
        if self.reversible && !crate::reidentify::is_token(value) {
            return Err("must be a reversible pseudonym (`p~…`)".into());
        }
        match self.kind {
            ParamKind::String => {}
            ParamKind::Integer if value.parse::<i64>().is_ok() => {}
            ParamKind::Number if value.parse::<f64>().is_ok_and(f64::is_finite) => {}
            ParamKind::Boolean if value == "true" || value == "false" => {}
            k => return Err(format!("must be of type {k:?}").to_lowercase()),
        }
        // A reversible parameter's pattern is for the decrypted value.
        if let Some(re) = self.pattern.as_ref().filter(|_| !self.reversible) {
            if !re.is_match(value) {
                return Err("does not match the allowed pattern".into());
            }
        }
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|a| a == value) {
                return Err(format!("must be one of: {}", allowed.join(", ")));
            }
        }
        Ok(())
    }
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

/// A request an endpoint allows.
#[derive(Debug)]
pub struct Allowed<'r> {
    pub endpoint: &'r CompiledEndpoint,
    /// Template parameters, raw (percent-encoded) as in the path.
    pub path_params: Vec<(String, String)>,
    /// Query parameters, percent-decoded, in request order.
    pub query: Vec<(String, String)>,
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

/// Splits and percent-decodes a raw query string.
pub fn parse_query(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = piece.split_once('=').unwrap_or((piece, ""));
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    "a query parameter is not valid UTF-8 after percent-decoding".to_string()
                })
        };
        out.push((dec(n)?, dec(v)?));
    }
    Ok(out)
}

impl RuleSet {
    /// Finds the endpoint that allows `req`, or says why none does.
    pub fn match_request(&self, req: Request<'_>, side: Side) -> Result<Allowed<'_>, Refusal> {
        // The first endpoint whose path matches decides: a request it
        // refuses is refused, never handed to a later, looser endpoint.
        for ep in &self.endpoints {
            if let Some(path_params) = ep.path.matches(req.path, req.query) {
                return check_endpoint(ep, req, side, path_params);
            }
        }
        Err(Refusal {
            check: Check::Path,
            closest: self.closest_endpoint(req.path),
            message: "no endpoint of the rules allows this path".into(),
        })
    }

    fn closest_endpoint(&self, path: &str) -> Option<String> {
        let norm = |s: &str| s.to_ascii_lowercase();
        self.endpoints
            .iter()
            .map(|ep| {
                let shape = ep.path.example().unwrap_or_else(|| ep.label.clone());
                let score = strsim::normalized_levenshtein(&norm(&generalize(path)), &norm(&shape));
                (score, &ep.label)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l.clone())
    }
}

/// Replaces segments that look like ids with `x0`, so a path compares well
/// with template examples.
fn generalize(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.len() > 16 || s.starts_with("p~") || s.contains('@') {
                "x0"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn check_endpoint<'r>(
    ep: &'r CompiledEndpoint,
    req: Request<'_>,
    side: Side,
    path_params: Vec<(String, String)>,
) -> Result<Allowed<'r>, Refusal> {
    let refuse = |check: Check, message: String| Refusal {
        check,
        closest: Some(ep.label.clone()),
        message,
    };
    // Methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`.
    if !ep.methods.iter().any(|m| m == req.method) {
        return Err(refuse(
            Check::Method,
            format!(
                "method {} is not allowed (allowed: {})",
                req.method,
                ep.methods.join(", ")
            ),
        ));
    }
    for (name, raw) in &path_params {
        let Some(schema) = ep
            .path_param_schemas
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
        else {
            continue;
        };
        let value = percent_decode_str(raw).decode_utf8().map_err(|_| {
            refuse(
                Check::PathParam(name.clone()),
                format!("path parameter `{name}` is not valid UTF-8"),
            )
        })?;
        let result = if side == Side::Upstream && schema.reversible {
            if value.is_empty() {
                Err("must not be empty".to_string())
            } else {
                Ok(())
            }
        } else {
            schema.check(&value)
        };
        result.map_err(|why| {
            refuse(
                Check::PathParam(name.clone()),
                format!("path parameter `{name}` {why}"),
            )
        })?;
    }
    let query = match req.query {
        Some(q) => parse_query(q).map_err(|m| refuse(Check::Query, m))?,
        None => Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &query {
        let lower = name.to_lowercase();
        if seen.contains(&lower) {
            return Err(refuse(
                Check::QueryParam(name.clone()),
                format!("query parameter `{name}` appears more than once"),
            ));
        }
        seen.push(lower.clone());
        if let Some(allowed) = &ep.allowed_query {
            if !allowed.contains(&lower) {
                return Err(refuse(
                    Check::QueryParam(name.clone()),
                    format!(
                        "query parameter `{name}` is not allowed (allowed: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        if let Some((_, schema)) = ep.query_param_schemas.iter().find(|(n, _)| *n == lower) {
            let result = if side == Side::Upstream && schema.reversible {
                Ok(())
            } else {
                schema.check(value)
            };
            result.map_err(|why| {
                refuse(
                    Check::QueryParam(name.clone()),
                    format!("query parameter `{name}` {why}"),
                )
            })?;
        }
    }
    Ok(Allowed {
        endpoint: ep,
        path_params,
        query,
    })
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
    fn bad_templates() {
        for t in [
            "v1.0/users",
            "/v1.0/users/{id",
            "/v1.0/users/{id}}",
            "/v1.0/{a}{b}",
            "/v1.0/x{a}",
            "/v1.0/{a}/{a}",
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

    #[test]
    fn param_schema_checks() {
        let s = ParamSchema {
            kind: ParamKind::Integer,
            pattern: None,
            allowed: None,
            reversible: false,
            token_kind: None,
        };
        assert!(s.check("10").is_ok());
        assert!(s.check("ten").is_err());
        let r = ParamSchema {
            kind: ParamKind::String,
            pattern: None,
            allowed: None,
            reversible: true,
            token_kind: None,
        };
        assert!(r.check("p~abcdefghijklmnop-_09").is_ok());
        assert!(r.check("p~abc").is_err(), "too short to be a token");
        assert!(r.check("p~abcdefghijklmnop/x").is_err());
        assert!(r.check("48d31887-5fad-4d73-a9f5-3c356e68a038").is_err());
    }
}
