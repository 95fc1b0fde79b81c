//! The `responseSchema` of a rule file, as written: a JSON-Schema-shaped
//! allowlist. Part of the rule-file model ([`crate::rules::model`]
//! re-exports it) and the input of [`crate::schema_filter`], which depends
//! on nothing else of the rules.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

/// A JSON-Schema-shaped allowlist filter (`responseSchema`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SchemaSpec {
    #[serde(default, rename = "$schema")]
    pub schema: Option<String>,
    #[serde(default, rename = "$ref")]
    pub reference: Option<String>,
    /// `object`, `array`, `string`, `integer`, `number`, `boolean`, `null`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub properties: Option<IndexMap<String, SchemaSpec>>,
    #[serde(default)]
    pub items: Option<Box<SchemaSpec>>,
    #[serde(default)]
    pub any_of: Option<Vec<SchemaSpec>>,
    /// Like `anyOf` (Psoxy's files write `oneOf`): the first alternative
    /// that fits, its `const` members included, applies.
    #[serde(default)]
    pub one_of: Option<Vec<SchemaSpec>>,
    /// The value must be this string (Psoxy also writes `constant`); an
    /// alternative of `anyOf`/`oneOf` whose `const` members differ does
    /// not fit.
    #[serde(default, rename = "const", alias = "constant")]
    pub constant: Option<String>,
    #[serde(default)]
    pub definitions: Option<BTreeMap<String, SchemaSpec>>,
    #[serde(default)]
    pub required: Option<Vec<String>>,
    #[serde(default)]
    pub title: Option<String>,
    /// Only `false` (what the filter does anyway) is accepted.
    #[serde(default)]
    pub additional_properties: Option<bool>,
}
