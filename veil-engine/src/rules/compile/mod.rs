//! Compiling a [`RuleFile`] into a [`RuleSet`]: every path, regex, template,
//! schema and transform is checked and compiled once, at load.

use std::path::Path;

use sha2::{Digest, Sha256};

mod transforms;

use transforms::compile_transform;

use super::java_regex;
use super::load;
use super::model::{ConnectorMeta, EndpointSpec, ParameterSchema, RuleFile};
use crate::error::RuleError;
use crate::jsonpath::{CompiledPath, PathSet};
use crate::policy::{ParamKind, ParamSchema, PathPattern};
use crate::sanitize::EndpointSanitizer;
use crate::schema_filter::SchemaFilter;
use crate::transform::Transform;

/// A loaded, compiled rule file.
#[derive(Debug)]
pub struct RuleSet {
    /// Where the rules came from (file name or `builtin:NAME`).
    pub source: String,
    /// Hex SHA-256 of the rule file's bytes.
    pub sha256: String,
    pub connector: Option<ConnectorMeta>,
    /// `defaultDeny: true` (Veil's shipped rules): see [`RuleFile::default_deny`].
    pub default_deny: bool,
    pub endpoints: Vec<CompiledEndpoint>,
    /// Problems that do not stop loading (e.g. overlapping endpoints).
    pub warnings: Vec<String>,
}

/// One compiled endpoint.
#[derive(Debug)]
pub struct CompiledEndpoint {
    pub index: usize,
    /// The template or regex as written; used in logs (never the raw path).
    pub label: String,
    pub path: PathPattern,
    /// Upper-case methods.
    pub methods: Vec<String>,
    /// Lower-cased, percent-decoded names; `None` = any.
    pub allowed_query: Option<Vec<String>>,
    pub query_param_schemas: Vec<(String, ParamSchema)>,
    pub path_param_schemas: Vec<(String, ParamSchema)>,
    /// Lower-case header names forwarded upstream.
    pub allowed_headers: Vec<String>,
    /// The rule file's `defaultDeny` profile: `$select`/`$expand` are bound
    /// to the `responseSchema` (see [`crate::policy`]).
    pub default_deny: bool,
    pub sanitizer: EndpointSanitizer,
}

impl CompiledEndpoint {
    /// Sanitizes a response document of this endpoint in place.
    pub fn sanitize(
        &self,
        doc: &mut serde_json::Value,
        p: &crate::pseudonym::Pseudonymizer,
    ) -> Result<crate::sanitize::Report, crate::error::SanitizeError> {
        self.sanitizer.sanitize(doc, p, &self.label)
    }

    /// Sanitizes a response body of this endpoint into compact JSON, in one
    /// streaming pass where the rules allow it (see [`crate::stream`]).
    pub fn sanitize_bytes(
        &self,
        body: &[u8],
        p: &crate::pseudonym::Pseudonymizer,
    ) -> Result<(Vec<u8>, crate::sanitize::Report), crate::stream::BodyError> {
        self.sanitizer.sanitize_bytes(body, p, &self.label)
    }
}

impl RuleSet {
    /// Loads and compiles a rule file from disk.
    pub fn from_file(path: &Path) -> Result<RuleSet, RuleError> {
        let (text, model) = load::read_file(path)?;
        compile(&path.display().to_string(), &text, model)
    }

    /// Loads and compiles rule-file text.
    pub fn from_str(name: &str, text: &str) -> Result<RuleSet, RuleError> {
        let model = load::parse(name, text)?;
        compile(name, text, model)
    }
}

/// Compiles a parsed rule file; `text` is hashed for the rules SHA.
pub(crate) fn compile(name: &str, text: &str, model: RuleFile) -> Result<RuleSet, RuleError> {
    let err = |ctx: String, msg: String| RuleError::new(name, ctx, msg);
    if model.allow_all_endpoints == Some(true) {
        return Err(err(
            "allowAllEndpoints".into(),
            "`allowAllEndpoints: true` is not supported: Veil forwards only the endpoints listed"
                .into(),
        ));
    }
    if model.endpoints.is_empty() {
        return Err(err(
            "endpoints".into(),
            "the rule file lists no endpoints".into(),
        ));
    }
    let default_deny = model.default_deny == Some(true);
    let mut endpoints = Vec::with_capacity(model.endpoints.len());
    for (i, spec) in model.endpoints.iter().enumerate() {
        let merged;
        let spec = match (&model.definitions, &spec.response_schema) {
            (Some(shared), Some(schema)) => {
                let mut schema = schema.clone();
                let defs = schema.definitions.get_or_insert_with(Default::default);
                for (name, d) in shared {
                    defs.entry(name.clone()).or_insert_with(|| d.clone());
                }
                merged = EndpointSpec {
                    response_schema: Some(schema),
                    ..spec.clone()
                };
                &merged
            }
            _ => spec,
        };
        endpoints.push(compile_endpoint(i, spec, default_deny).map_err(|e| {
            let ctx = if e.field.is_empty() {
                format!("endpoints[{i}]")
            } else {
                format!("endpoints[{i}].{}", e.field)
            };
            err(ctx, e.message)
        })?);
    }
    let warnings = overlaps(&endpoints);
    let sha256 = hex(&Sha256::digest(text.as_bytes()));
    Ok(RuleSet {
        source: name.to_string(),
        sha256,
        connector: model.connector,
        default_deny,
        endpoints,
        warnings,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is wrong with one field of an endpoint or transform: the field's
/// place below it (`jsonPaths[1]`; empty: the whole thing) and the message.
/// [`compile`] turns it into a [`RuleError`] naming the place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(super) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl ToString) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// A problem of the field `ctx`, from any error whose text is the message.
fn at<E: ToString>(ctx: &str) -> impl Fn(E) -> FieldError + '_ {
    move |e| FieldError::new(ctx, e)
}

fn compile_endpoint(
    index: usize,
    spec: &EndpointSpec,
    default_deny: bool,
) -> Result<CompiledEndpoint, FieldError> {
    let (path, label) = match (&spec.path_template, &spec.path_regex) {
        (Some(t), None) => (
            PathPattern::template(t).map_err(at("pathTemplate"))?,
            t.clone(),
        ),
        (None, Some(r)) => (
            PathPattern::Regex(java_regex::compile(r, true, true).map_err(at("pathRegex"))?),
            r.clone(),
        ),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "",
                "give either `pathTemplate` or `pathRegex`, not both",
            ))
        }
        (None, None) => {
            return Err(FieldError::new(
                "",
                "an endpoint needs `pathTemplate` or `pathRegex`",
            ))
        }
    };
    let methods: Vec<String> = match &spec.allowed_methods {
        None => vec!["GET".into(), "HEAD".into()],
        Some(m) if m.is_empty() => {
            return Err(FieldError::new("allowedMethods", "the list is empty"))
        }
        Some(m) => {
            let mut out = Vec::new();
            for x in m {
                let up = x.trim().to_ascii_uppercase();
                if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                    .contains(&up.as_str())
                {
                    return Err(FieldError::new(
                        "allowedMethods",
                        format!("unknown HTTP method `{x}`"),
                    ));
                }
                out.push(up);
            }
            out
        }
    };
    let mut path_param_schemas = Vec::new();
    if let Some(schemas) = &spec.path_parameter_schemas {
        let params = path.params();
        for (name, s) in schemas {
            if !params.contains(&name.as_str()) {
                return Err(FieldError::new(
                    "pathParameterSchemas",
                    format!(
                        "`{name}` is not a parameter of the path template (parameters: {})",
                        params.join(", ")
                    ),
                ));
            }
            path_param_schemas.push((
                name.clone(),
                param_schema(s).map_err(at(&format!("pathParameterSchemas.{name}")))?,
            ));
        }
    }
    let mut query_param_schemas = Vec::new();
    if let Some(schemas) = &spec.query_param_schemas {
        for (name, s) in schemas {
            query_param_schemas.push((
                name.to_lowercase(),
                param_schema(s).map_err(at(&format!("queryParamSchemas.{name}")))?,
            ));
        }
    }
    let allowed_query = match &spec.allowed_query_params {
        Some(q) => Some(q.iter().map(|n| n.to_lowercase()).collect()),
        // Default-deny: no list means no query parameter.
        None if default_deny => Some(Vec::new()),
        None => None,
    };
    if default_deny && spec.response_schema.is_none() {
        return Err(FieldError::new(
            "",
            "`defaultDeny: true` requires a `responseSchema` on every endpoint: declare the properties this endpoint may return (everything else is dropped)",
        ));
    }
    let allowed_headers = spec
        .allowed_request_headers
        .as_ref()
        .map(|h| h.iter().map(|n| n.trim().to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let schema = match &spec.response_schema {
        Some(s) => Some(SchemaFilter::compile(s).map_err(at("responseSchema"))?),
        None => None,
    };
    let mut transforms = Vec::with_capacity(spec.transforms.len());
    let mut paths: Vec<CompiledPath> = Vec::new();
    let mut owners = Vec::new();
    for (ti, t) in spec.transforms.iter().enumerate() {
        let ctx = format!("transforms[{ti}]");
        let (mut rt, tpaths) = compile_transform(t).map_err(|e| {
            FieldError::new(
                if e.field.is_empty() {
                    ctx.clone()
                } else {
                    format!("{ctx}.{}", e.field)
                },
                format!("({}) {}", t.method, e.message),
            )
        })?;
        for p in tpaths {
            paths.push(p);
            owners.push(ti);
        }
        if default_deny && rt.transform.reduces_text() {
            rt.transform = Transform::Screened(Box::new(rt.transform));
        }
        transforms.push(rt);
    }
    Ok(CompiledEndpoint {
        index,
        label,
        path,
        methods,
        allowed_query,
        query_param_schemas,
        path_param_schemas,
        allowed_headers,
        default_deny,
        sanitizer: EndpointSanitizer::new(schema, transforms, PathSet::new(paths), owners),
    })
}

/// A parameter schema (`pathParameterSchemas.x`, `queryParamSchemas.x`)
/// that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ParamSchemaError {
    #[error("unknown type `{0}` (string, integer, number, boolean)")]
    UnknownType(String),
    #[error("unknown format `{0}` (known: reversible-pseudonym)")]
    UnknownFormat(String),
    #[error("`format: reversible-pseudonym` cannot be combined with `enum`, `anyOf` or a `type` other than string: the client sends a `p~` token (a `pattern` applies to the decrypted value)")]
    ReversibleCombined,
    #[error("`kind` needs `format: reversible-pseudonym`")]
    KindWithoutReversible,
    #[error(transparent)]
    Kind(#[from] crate::pseudonym::UnknownTokenKind),
    #[error("`anyOf` is empty")]
    EmptyAnyOf,
    /// One of the `anyOf` alternatives; the text names it and says why.
    #[error("anyOf[{index}]: {problem}")]
    AnyOf {
        index: usize,
        problem: Box<ParamSchemaError>,
    },
    #[error(transparent)]
    Pattern(#[from] java_regex::RegexError),
}

fn param_schema(s: &ParameterSchema) -> Result<ParamSchema, ParamSchemaError> {
    let kind = match s.kind.as_deref() {
        None | Some("string") => ParamKind::String,
        Some("integer") => ParamKind::Integer,
        Some("number") => ParamKind::Number,
        Some("boolean") => ParamKind::Boolean,
        Some(o) => return Err(ParamSchemaError::UnknownType(o.to_string())),
    };
    let reversible = match s.format.as_deref() {
        None => false,
        Some("reversible-pseudonym") => true,
        Some(o) => return Err(ParamSchemaError::UnknownFormat(o.to_string())),
    };
    // Psoxy writes `type: string` next to the format; nothing else fits a
    // token. A `pattern` applies to the decrypted value.
    if reversible && (s.allowed.is_some() || s.any_of.is_some() || kind != ParamKind::String) {
        return Err(ParamSchemaError::ReversibleCombined);
    }
    let token_kind = match &s.token_kind {
        None => None,
        Some(_) if !reversible => return Err(ParamSchemaError::KindWithoutReversible),
        Some(k) => Some(k.parse::<crate::pseudonym::TokenKind>()?),
    };
    let any_of = match &s.any_of {
        Some(list) if list.is_empty() => return Err(ParamSchemaError::EmptyAnyOf),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, sub)| {
                param_schema(sub).map_err(|e| ParamSchemaError::AnyOf {
                    index: i,
                    problem: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let pattern = match &s.pattern {
        Some(p) => Some(java_regex::compile(p, false, true)?),
        None => None,
    };
    Ok(ParamSchema {
        kind,
        pattern,
        allowed: s.allowed.clone(),
        reversible,
        any_of,
        required: s.required == Some(true),
        token_kind,
    })
}

/// Pairs of endpoints that can match the same request.
fn overlaps(eps: &[CompiledEndpoint]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in eps.iter().enumerate() {
        for b in &eps[i + 1..] {
            let overlap = match (&a.path, &b.path) {
                (PathPattern::Template(x), PathPattern::Template(y)) => {
                    x.len() == y.len()
                        && x.iter().zip(y).all(|(s, t)| {
                            use crate::policy::TemplateSegment::*;
                            match (s, t) {
                                (Literal(l), Literal(m)) => l.eq_ignore_ascii_case(m),
                                (Literal(l), Mixed { regex, .. })
                                | (Mixed { regex, .. }, Literal(l)) => regex.is_match(l),
                                _ => true,
                            }
                        })
                }
                (PathPattern::Template(_), PathPattern::Regex(re)) => {
                    a.path.example().is_some_and(|e| re.is_match(&e))
                }
                (PathPattern::Regex(re), PathPattern::Template(_)) => {
                    b.path.example().is_some_and(|e| re.is_match(&e))
                }
                (PathPattern::Regex(_), PathPattern::Regex(_)) => a.label == b.label,
            };
            if overlap {
                out.push(format!(
                    "endpoints[{}] `{}` and endpoints[{}] `{}` can match the same path; the first one wins",
                    a.index, a.label, b.index, b.label
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(y: &str) -> Result<RuleSet, String> {
        RuleSet::from_str("t.yaml", y).map_err(|e| e.to_string())
    }

    #[test]
    fn load_errors_name_place_and_problem() {
        let cases = [
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redact>\n        jsonPaths: []\n", "endpoints[0].transforms[0].jsonPaths", "is empty"),
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redact>\n        jsonPaths: ['$..[']\n", "endpoints[0].transforms[0].jsonPaths[0]", "invalid JSONPath"),
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redactRegexMatches>\n        jsonPaths: ['$..a']\n        redactions: ['a(']\n", "endpoints[0].transforms[0].redactions[0]", "invalid regex"),
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..a']\n        includeOriginal: true\n", "endpoints[0].transforms[0].includeOriginal", "needs `encoding: JSON`"),
            ("endpoints:\n  - pathTemplate: /x/{id\n", "endpoints[0].pathTemplate", "unbalanced brace"),
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redact>\n        jsonPaths: ['$..a']\n        regex: 'x(.)'\n", "endpoints[0].transforms[0].regex", "not an option of `redact`"),
            ("endpoints:\n  - pathRegex: '^/x(?=y)$'\n", "endpoints[0].pathRegex", "look-ahead"),
            ("allowAllEndpoints: true\nendpoints:\n  - pathTemplate: /x\n", "allowAllEndpoints", "not supported"),
            ("endpoints:\n  - pathTemplate: /x/{id}\n    pathParameterSchemas:\n      userId: {format: reversible-pseudonym}\n", "pathParameterSchemas", "not a parameter"),
            ("endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<tokenize>\n        jsonPaths: ['$..a']\n        regex: 'abc'\n", "transforms[0].regex", "capture group"),
        ];
        for (src, place, what) in cases {
            let e = load(src).unwrap_err();
            assert!(e.starts_with("t.yaml"), "{e}");
            assert!(e.contains(place), "expected `{place}` in: {e}");
            assert!(e.contains(what), "expected `{what}` in: {e}");
        }
    }

    #[test]
    fn default_methods_are_get_and_head() {
        let rs = load("endpoints:\n  - pathTemplate: /v1.0/users\n").unwrap();
        assert_eq!(rs.endpoints[0].methods, ["GET", "HEAD"]);
        assert_eq!(rs.sha256.len(), 64);
    }

    #[test]
    fn overlapping_endpoints_warn_with_both_patterns() {
        let rs = load("endpoints:\n  - pathTemplate: /v1.0/users/{id}\n  - pathTemplate: /v1.0/users/delta\n  - pathRegex: '^/v1.0/groups/[^/]+$'\n  - pathTemplate: /v1.0/groups/{g}\n").unwrap();
        assert_eq!(rs.warnings.len(), 2, "{:?}", rs.warnings);
        assert!(
            rs.warnings[0].contains("/v1.0/users/{id}")
                && rs.warnings[0].contains("/v1.0/users/delta")
        );
    }

    #[test]
    fn psoxy_style_file_loads() {
        let src = r#"
allowAllEndpoints: false
endpoints:
  - pathRegex: "^\\Q/v1.0/users/\\E[^/]*\\Q/messages\\E(?)[?]?[^/]*$"
    transforms:
      - !<redact>
        jsonPaths:
          - "$..subject"
          - "$..body"
      - !<pseudonymize>
        jsonPaths:
          - "$..emailAddress.address"
        encoding: "URL_SAFE_TOKEN"
      - !<tokenize>
        jsonPaths:
          - "$.['@odata.nextLink', '@odata.prevLink']"
        regex: "^https://graph.microsoft.com/(.*)$"
"#;
        let rs = load(src).unwrap();
        assert_eq!(
            rs.endpoints[0].sanitizer.transform_names(),
            ["redact", "pseudonymize", "tokenize"]
        );
        assert!(rs.endpoints[0]
            .path
            .matches("/v1.0/users/abc/messages", Some("$top=1"))
            .is_some());
        assert!(rs.endpoints[0]
            .path
            .matches("/v1.0/users/abc/mailFolders/x/messages", None)
            .is_none());
    }
}
