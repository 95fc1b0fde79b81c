//! Matching a request against the rules: the first endpoint whose path
//! matches decides, then its method, path parameters, query parameters and
//! `$select`/`$expand` (bound to the `responseSchema` under `defaultDeny`).
//! The compiled request-side types it checks against live in
//! [`crate::policy`].

use percent_encoding::percent_decode_str;

use super::{CompiledEndpoint, RuleSet};
use crate::policy::{parse_query, Check, Refusal, Request, Side, ValueRefusal};
use crate::schema_filter::SchemaFilter;

/// A request an endpoint allows.
#[derive(Debug)]
pub struct Allowed<'r> {
    pub endpoint: &'r CompiledEndpoint,
    /// Template parameters, raw (percent-encoded) as in the path.
    pub path_params: Vec<(String, String)>,
    /// Query parameters, percent-decoded, in request order.
    pub query: Vec<(String, String)>,
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
        if let Some(why) = reserved_segment(raw) {
            return Err(refuse(
                Check::PathParam(name.clone()),
                format!("path parameter `{name}` {why}"),
            ));
        }
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
                Err(ValueRefusal::Empty)
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
        Some(q) => parse_query(q).map_err(|e| refuse(Check::Query, e.to_string()))?,
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
    for (name, schema) in &ep.query_param_schemas {
        if schema.required && !query.iter().any(|(n, _)| n.to_lowercase() == *name) {
            return Err(refuse(
                Check::QueryParam(name.clone()),
                format!("query parameter `{name}` is required"),
            ));
        }
    }
    if ep.default_deny {
        if let Some(schema) = ep.sanitizer.schema() {
            for (name, value) in &query {
                let lower = name.to_ascii_lowercase();
                let checked = match lower.as_str() {
                    "$select" => check_select(schema, schema.record(), value),
                    "$expand" => check_expand(schema, schema.record(), value, 0),
                    _ => Ok(()),
                };
                checked.map_err(|why| {
                    refuse(
                        Check::QueryParam(name.clone()),
                        format!("query parameter `{name}`: {why}"),
                    )
                })?;
            }
        }
    }
    Ok(Allowed {
        endpoint: ep,
        path_params,
        query,
    })
}

/// Path segments that are never an id: OData system segments (`$count`,
/// `$value`, `$ref`, …), functions and casts (`delta`, `delta()`,
/// `microsoft.graph.…`) and dot segments. A template parameter stands for
/// one id; one of these in its place would change what Graph is asked
/// (`/events/delta` returns a delta link naming the user).
fn reserved_segment(raw: &str) -> Option<&'static str> {
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let v = decoded.trim();
    let lower = v.to_ascii_lowercase();
    if v.starts_with('$') {
        Some("is an OData system segment, not an id")
    } else if v == "." || v == ".." {
        Some("is a dot segment, not an id")
    } else if lower == "delta" || lower.starts_with("microsoft.graph.") || v.contains(['(', ')']) {
        Some("is an OData function or cast, not an id")
    } else {
        None
    }
}

/// Why a `$select` or `$expand` does not fit the endpoint's `responseSchema`
/// (under `defaultDeny`); the text follows the parameter's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ODataRefusal {
    #[error("`$select` has an empty property name")]
    EmptySelect,
    /// `returns`: the properties the endpoint does return.
    #[error("`{option}` names `{name}`, which this endpoint does not return (it returns: {})", .returns.join(", "))]
    NotReturned {
        option: &'static str,
        name: String,
        returns: Vec<String>,
    },
    #[error("`$expand` is nested too deeply")]
    TooDeep,
    #[error("`$expand` item `{0}` is malformed")]
    Malformed(String),
    #[error("`$expand` must name the properties to expand")]
    Unnamed,
    #[error("`$expand` option `{0}` is not allowed (allowed: $select, $expand, $top)")]
    Option(String),
    #[error("`$expand` has unbalanced parentheses")]
    Unbalanced,
}

fn not_returned(
    option: &'static str,
    schema: &SchemaFilter,
    node: crate::schema_filter::SchemaNode,
    name: &str,
) -> ODataRefusal {
    ODataRefusal::NotReturned {
        option,
        name: name.to_string(),
        returns: schema
            .property_names(node)
            .into_iter()
            .map(|n| n.to_string())
            .collect(),
    }
}

/// `$select=a,b`: each name must be a property the endpoint's
/// `responseSchema` keeps.
fn check_select(
    schema: &SchemaFilter,
    node: crate::schema_filter::SchemaNode,
    value: &str,
) -> Result<(), ODataRefusal> {
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(ODataRefusal::EmptySelect);
        }
        if schema.property(node, name).is_none() {
            return Err(not_returned("$select", schema, node, name));
        }
    }
    Ok(())
}

/// `$expand=a,b($select=x;$expand=c)`: each expanded name must be a
/// property the `responseSchema` keeps, and its nested `$select` and
/// `$expand` must fit that property's own allowlist. Other nested options
/// are refused.
fn check_expand(
    schema: &SchemaFilter,
    node: crate::schema_filter::SchemaNode,
    value: &str,
    depth: usize,
) -> Result<(), ODataRefusal> {
    if depth > 4 {
        return Err(ODataRefusal::TooDeep);
    }
    for item in split_top(value, ',')? {
        let item = item.trim();
        let (name, options) = match item.find('(') {
            Some(i) if item.ends_with(')') => (&item[..i], Some(&item[i + 1..item.len() - 1])),
            Some(_) => return Err(ODataRefusal::Malformed(item.to_string())),
            None => (item, None),
        };
        let name = name.trim();
        if name.is_empty() || name == "*" {
            return Err(ODataRefusal::Unnamed);
        }
        let child = schema
            .property(node, name)
            .ok_or_else(|| not_returned("$expand", schema, node, name))?;
        for opt in options
            .map(|o| split_top(o, ';'))
            .transpose()?
            .unwrap_or_default()
        {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "$select" => check_select(schema, child, v)?,
                "$expand" => check_expand(schema, child, v, depth + 1)?,
                "$top" if v.trim().parse::<u32>().is_ok() => {}
                other => return Err(ODataRefusal::Option(other.to_string())),
            }
        }
    }
    Ok(())
}

/// Splits at `sep` outside parentheses; unbalanced parentheses are an error.
fn split_top(s: &str, sep: char) -> Result<Vec<&str>, ODataRefusal> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or(ODataRefusal::Unbalanced)?,
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(ODataRefusal::Unbalanced);
    }
    out.push(&s[start..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::split_url;

    const DENY_RULES: &str = r#"
defaultDeny: true
endpoints:
  - pathTemplate: /v1.0/users/{userId}
    allowedQueryParams: [$select, $expand]
    responseSchema:
      type: object
      properties:
        id: {type: string}
        mail: {type: string}
        manager: {$ref: '#/definitions/Manager'}
      definitions:
        Manager:
          type: object
          properties:
            id: {type: string}
  - pathTemplate: /v1.0/users
    responseSchema:
      type: object
      properties:
        value:
          type: array
          items:
            type: object
            properties:
              id: {type: string}
  - pathTemplate: /v1.0/users/{userId}/events/{eventId}
    allowedQueryParams: []
    responseSchema: {type: object, properties: {id: {type: string}}}
"#;

    fn try_get(rules: &RuleSet, target: &str) -> Result<(), String> {
        let (path, query) = split_url(target);
        rules
            .match_request(
                Request {
                    method: "GET",
                    path: &path,
                    query: query.as_deref(),
                },
                Side::Upstream,
            )
            .map(|_| ())
            .map_err(|r| r.to_string())
    }

    #[test]
    fn default_deny_binds_select_and_expand_to_the_allowlist() {
        let rules = RuleSet::from_str("deny.yaml", DENY_RULES).unwrap();
        assert!(rules.default_deny);
        for ok in [
            "/v1.0/users/u1?$select=id,mail",
            "/v1.0/users/u1?$select=ID, Mail",
            "/v1.0/users/u1?%24select=id",
            "/v1.0/users/u1?$expand=manager",
            "/v1.0/users/u1?$expand=manager($select=id)",
            "/v1.0/users/u1?$select=id&$expand=manager($select=id;$top=1)",
        ] {
            assert_eq!(try_get(&rules, ok), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            (
                "/v1.0/users/u1?$select=mailboxSettings",
                "`mailboxSettings`",
            ),
            ("/v1.0/users/u1?$select=id,,mail", "empty property"),
            ("/v1.0/users/u1?$expand=memberOf", "`memberOf`"),
            ("/v1.0/users/u1?$expand=*", "must name"),
            ("/v1.0/users/u1?$expand=manager($select=mail)", "`mail`"),
            ("/v1.0/users/u1?$expand=manager($filter=x)", "$filter"),
            ("/v1.0/users/u1?$expand=manager(", "unbalanced"),
            ("/v1.0/users/u1?$expand=manager(x)y", "malformed"),
            ("/v1.0/users/u1?$expand=manager($select=id))", "unbalanced"),
        ] {
            let err = try_get(&rules, bad).unwrap_err();
            assert!(err.contains(needle), "{bad}: {err}");
        }
        // The whole text, as callers see it.
        assert_eq!(
            try_get(&rules, "/v1.0/users/u1?$select=id,x").unwrap_err(),
            "query parameter `$select`: `$select` names `x`, which this endpoint does not return (it returns: id, mail, manager) (closest endpoint: /v1.0/users/{userId})"
        );
        assert_eq!(
            try_get(&rules, "/v1.0/users/u1?$expand=manager($count=true)").unwrap_err(),
            "query parameter `$expand`: `$expand` option `$count` is not allowed (allowed: $select, $expand, $top) (closest endpoint: /v1.0/users/{userId})"
        );
        // No `allowedQueryParams`: none allowed.
        let err = try_get(&rules, "/v1.0/users?$top=5").unwrap_err();
        assert!(err.contains("not allowed"), "{err}");
    }

    #[test]
    fn default_deny_requires_a_response_schema() {
        let err = RuleSet::from_str(
            "deny.yaml",
            "defaultDeny: true\nendpoints:\n  - pathTemplate: /v1.0/users\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("requires a `responseSchema`"),
            "{err}"
        );
        // Without the profile (Psoxy's meaning) the same endpoint loads and
        // allows any query parameter.
        let rules =
            RuleSet::from_str("psoxy.yaml", "endpoints:\n  - pathTemplate: /v1.0/users\n").unwrap();
        assert_eq!(
            try_get(&rules, "/v1.0/users?$top=5&$select=anything"),
            Ok(())
        );
    }

    #[test]
    fn id_slots_refuse_odata_segments() {
        let rules = RuleSet::from_str("deny.yaml", DENY_RULES).unwrap();
        assert_eq!(try_get(&rules, "/v1.0/users/u1/events/AAMkAD%3D"), Ok(()));
        for bad in [
            "/v1.0/users/u1/events/delta",
            "/v1.0/users/u1/events/Delta",
            "/v1.0/users/u1/events/delta()",
            "/v1.0/users/u1/events/$count",
            "/v1.0/users/u1/events/%24value",
            "/v1.0/users/u1/events/$ref",
            "/v1.0/users/u1/events/microsoft.graph.delta",
            "/v1.0/users/%2E%2E/events/x",
            "/v1.0/users/./events/x",
        ] {
            let err = try_get(&rules, bad).unwrap_err();
            assert!(err.contains("not an id"), "{bad}: {err}");
        }
    }
}
