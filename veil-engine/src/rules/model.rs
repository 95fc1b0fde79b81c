//! The rule-file model: what a rule file may say, as written.
//!
//! Field names follow Psoxy's rule files so they load unchanged; Veil's own
//! additions (the `connector` block, `description`) are optional. Compilation
//! into matchers and transforms happens in [`super::compile`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

pub(crate) use crate::schema_spec::SchemaSpec;

/// A rule file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "Veil rule file")]
pub struct RuleFile {
    /// Veil metadata about the connector these rules serve (optional).
    #[serde(default)]
    pub connector: Option<ConnectorMeta>,
    /// Psoxy's switch; Veil refuses `true` (it would let any endpoint through).
    #[serde(default)]
    pub allow_all_endpoints: Option<bool>,
    /// Veil's default-deny profile (Veil addition; Veil's shipped rules set
    /// it). Every endpoint must then declare a `responseSchema` allowlist;
    /// an endpoint without `allowedQueryParams` allows no query parameter;
    /// `$select` and `$expand` may only name properties of that allowlist;
    /// and text that a reducing transform leaves is screened for addresses,
    /// phone numbers, network addresses and URL credentials. Psoxy's rule
    /// files leave it unset and keep Psoxy's meaning.
    #[serde(default)]
    pub default_deny: Option<bool>,
    /// Schema definitions shared by every endpoint's `responseSchema`
    /// (Psoxy's files put them here); an endpoint's own `definitions` win.
    #[serde(default)]
    pub definitions: Option<BTreeMap<String, SchemaSpec>>,
    /// The endpoints Veil forwards; everything else is refused.
    pub endpoints: Vec<EndpointSpec>,
}

/// Veil's connector metadata.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectorMeta {
    /// Connector name, e.g. `outlook-mail`.
    pub name: String,
    /// Rule variant, e.g. `default` or `clear-ids`.
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Microsoft Graph application permissions this connector needs (least privilege).
    #[serde(default)]
    pub graph_permissions: Vec<GraphPermission>,
}

/// One Graph application permission and why Veil needs it.
#[derive(Debug, Clone, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GraphPermission {
    /// e.g. `Mail.ReadBasic.All`.
    pub permission: String,
    /// One line for the administrator granting consent.
    pub why: String,
}

/// One allowed endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointSpec {
    /// A path such as `/v1.0/users/{userId}/messages`; each `{name}` is one non-empty segment.
    #[serde(default)]
    pub path_template: Option<String>,
    /// A (Java-dialect) regex matched, case-insensitively, against the whole of path + `?` + query.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Free text for reviewers.
    #[serde(default)]
    pub description: Option<String>,
    /// Constraints on `{name}` segments of the template.
    #[serde(default)]
    pub path_parameter_schemas: Option<BTreeMap<String, ParameterSchema>>,
    /// HTTP methods; when absent, only GET and HEAD.
    #[serde(default)]
    pub allowed_methods: Option<Vec<String>>,
    /// Query parameter names (case-insensitive); when absent, any.
    #[serde(default)]
    pub allowed_query_params: Option<Vec<String>>,
    /// Constraints on query parameter values.
    #[serde(default)]
    pub query_param_schemas: Option<BTreeMap<String, ParameterSchema>>,
    /// Request headers forwarded upstream (others are dropped). Psoxy's
    /// name `allowedRequestHeadersToForward` is accepted too.
    #[serde(default, alias = "allowedRequestHeadersToForward")]
    pub allowed_request_headers: Option<Vec<String>>,
    /// An allowlist filter applied to the response before the transforms.
    #[serde(default)]
    pub response_schema: Option<SchemaSpec>,
    /// Transforms, applied in order.
    #[serde(default)]
    pub transforms: Vec<super::transform_spec::TransformSpec>,
}

/// Constraints on a path or query parameter value.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterSchema {
    /// `string` (default), `integer`, `number` or `boolean`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// A (Java-dialect) regex the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The value must be one of these.
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<String>>,
    /// `reversible-pseudonym`: the caller must send a `p~` token, which Veil decrypts.
    #[serde(default)]
    pub format: Option<String>,
    /// The value must also fit at least one of these schemas (Psoxy writes `or`).
    #[serde(default, alias = "or")]
    pub any_of: Option<Vec<ParameterSchema>>,
    /// Query parameters only: the request must carry this parameter.
    #[serde(default)]
    pub required: Option<bool>,
    /// With `format: reversible-pseudonym`: only tokens of this kind (`user`,
    /// `group`, `team`, `chat`, `channel`, `message`, `event`, `page`), made
    /// by a `tokenize` with the same `kind`.
    #[serde(default, rename = "kind")]
    pub token_kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}
