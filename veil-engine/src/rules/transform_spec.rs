//! How a transform is written in a rule file.
//!
//! Three spellings, one model:
//! - `!<redact>` (verbatim YAML tag, as Psoxy writes it) — translated to
//!   `!redact` by [`super::load`] before parsing, keeping columns;
//! - `!redact` (short tag);
//! - a plain mapping with `method: redact` (also the JSON form).
//!
//! All options of all transforms live in one struct, [`TransformOptions`], so
//! that an unknown key is reported with the full list of valid keys;
//! [`super::compile`] then checks that each option is valid for its method.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::Deserialize;

/// Every transform method Veil knows, by its rule-file name.
pub(crate) const METHODS: &[&str] = &[
    "redact",
    "redactRegexMatches",
    "redactExceptPhrases",
    "redactExceptSubstringsMatchingRegexes",
    "filterTokenByRegex",
    "pseudonymize",
    "pseudonymizeRegexMatches",
    "pseudonymizeEmailHeader",
    "tokenize",
];

/// One transform as written.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    /// The method name (one of [`METHODS`], checked at compile time).
    pub method: String,
    pub options: TransformOptions,
}

/// The union of all transform options.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransformOptions {
    /// JSONPaths (Jayway dialect, as Psoxy writes them) of the values to transform.
    #[serde(default)]
    pub json_paths: Vec<String>,
    /// A JSONPath over the whole response; the transform runs only if it matches something.
    #[serde(default)]
    pub apply_only_when: Option<String>,
    /// `redactRegexMatches`: regexes whose matches are removed.
    #[serde(default)]
    pub redactions: Option<Vec<String>>,
    /// `redactExceptPhrases`: phrases kept when found (case-insensitive, word-bounded).
    #[serde(default)]
    pub allowed_phrases: Option<Vec<String>>,
    /// `redactExceptSubstringsMatchingRegexes`: the longest match is kept.
    #[serde(default)]
    pub exceptions: Option<Vec<String>>,
    /// `filterTokenByRegex`: tokens that fully match one of these are kept.
    #[serde(default)]
    pub filters: Option<Vec<String>>,
    /// `filterTokenByRegex`: the token delimiter regex (default `\s+`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `pseudonymize`: `URL_SAFE_TOKEN` (default), `URL_SAFE_HASH_ONLY` or `JSON`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// `pseudonymize` (JSON encoding): keep the original value beside the hash.
    #[serde(default)]
    pub include_original: Option<bool>,
    /// `pseudonymize`: add a reversible `p~` token.
    #[serde(default)]
    pub include_reversible: Option<bool>,
    /// `pseudonymize`: only values matching this regex are pseudonymized.
    #[serde(default)]
    pub only_if_regex: Option<String>,
    /// `pseudonymizeRegexMatches`, `tokenize`: capture group 1 is replaced.
    #[serde(default)]
    pub regex: Option<String>,
    /// `tokenize`: the kind of the tokens (`user`, `group`, `team`, `chat`,
    /// `channel`, `message`, `event`, `page`), bound into each token so it is
    /// accepted only by a parameter of the same `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `pseudonymize` (Veil only): treat addresses outside the tenant's own
    /// domains differently (see [`EmailDomainsSpec`]).
    #[serde(default)]
    pub email_domains: Option<EmailDomainsSpec>,
}

/// `emailDomains` of `pseudonymize`: addresses in `internal` domains are
/// pseudonymized as without the option; every other (external) address has
/// its local part pseudonymized the same way and its domain kept in clear
/// when `keepExternal` lists it, otherwise replaced as `otherExternal` says.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmailDomainsSpec {
    /// The tenant's own (verified) domains; each covers its subdomains.
    pub internal: Vec<String>,
    /// External domains kept in clear (each covers its subdomains); `"*"`
    /// keeps every external domain. Default: none.
    #[serde(default)]
    pub keep_external: Vec<String>,
    /// What replaces an external domain not kept: `tokenize` (default,
    /// `@h~<keyed hash>`) or `redact` (no domain).
    #[serde(default)]
    pub other_external: Option<String>,
}

impl<'de> Deserialize<'de> for TransformSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = TransformSpec;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a transform: a tagged mapping such as `!<redact> {jsonPaths: [...]}` or a mapping with `method: redact`")
    }

    // `!redact` / `!<redact>` — the YAML tag is the method.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let (method, variant): (String, _) = data.variant()?;
        let method = method.trim_start_matches('!').to_string();
        check_method::<A::Error>(&method)?;
        let options: TransformOptions = variant.newtype_variant()?;
        Ok(TransformSpec { method, options })
    }

    // `{method: redact, jsonPaths: [...]}`.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut method: Option<String> = None;
        let mut rest = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "method" {
                method = Some(map.next_value()?);
            } else {
                let v: serde_json::Value = map.next_value()?;
                rest.insert(key, v);
            }
        }
        let method = method.ok_or_else(|| {
            de::Error::custom(
                "a transform needs a method: write it as a tag (`!<redact>`) or as a `method:` field",
            )
        })?;
        check_method::<A::Error>(&method)?;
        let options: TransformOptions =
            serde_path_to_error::deserialize(serde_json::Value::Object(rest)).map_err(|e| {
                de::Error::custom(crate::rules::diagnostics::with_suggestion(
                    &e.inner().to_string(),
                ))
            })?;
        Ok(TransformSpec { method, options })
    }
}

fn check_method<E: de::Error>(method: &str) -> Result<(), E> {
    if METHODS.contains(&method) {
        return Ok(());
    }
    let hint = crate::rules::diagnostics::closest(method, METHODS.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    Err(E::custom(format!(
        "unknown transform `{method}`{hint}; known transforms: {}",
        METHODS.join(", ")
    )))
}

impl JsonSchema for TransformSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Transform".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // The tag spelling is invisible to JSON Schema (YAML tags are not
        // data), so the schema describes the mapping and allows `method`.
        let mut schema = TransformOptions::json_schema(generator);
        if let Some(obj) = schema.as_object_mut() {
            if let Some(props) = obj.get_mut("properties").and_then(|p| p.as_object_mut()) {
                props.insert(
                    "method".into(),
                    json_schema!({
                        "description": "The transform method (or write it as a YAML tag, e.g. `!<redact>`).",
                        "enum": METHODS,
                    })
                    .into(),
                );
            }
        }
        schema
    }
}
