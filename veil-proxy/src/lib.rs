//! Veil's proxy: everything that talks to the network, built on
//! [`veil_engine`], which decides what is allowed and what leaves.
//!
//! Every module is private; callers name what the crate root re-exports
//! below (grouped by area), never a module path. Where things live:
//! - `proxy`: the request pipeline (normalize → health → authenticate →
//!   match → re-identify → upstream → answer → log), host-agnostic.
//! - `auth`: caller authentication (IP allowlist, OIDC bearer tokens,
//!   the Lambda IAM caller).
//! - `error`: [`ProxyError`], every phase's failure (status, code, phase).
//! - `token`: Graph access tokens (the provider trait and its kinds).
//! - `secrets`: where the salt and encryption keys come from (env, file, SSM, Secrets Manager).
//! - `config`: pseudonym settings read from the environment.
//! - `env`: where configuration is read from (the process environment, or
//!   a map in tests); a leaf every module may use.
//! - `aws`: a minimal SigV4 client for the AWS APIs Veil calls.
//! - `metrics`: per-request figures as Prometheus text or CloudWatch
//!   Embedded Metric Format lines.
//! - `refresh`: the refresh-ahead, single-flight cache cell (and its
//!   clock) that keeps Graph tokens and the issuer's signing keys.
//! - `net`: the loopback-host check for the Graph, Entra and key-set URLs.
#![forbid(unsafe_code)]

mod auth;
mod aws;
mod config;
mod env;
mod error;
mod metrics;
mod net;
mod proxy;
mod refresh;
mod secrets;
mod token;

// ---- The request pipeline and its configuration ----
pub use proxy::health::HealthInfo;
pub use proxy::upstream::{
    check_base_url as check_upstream_base_url, BodyBudget, Upstream, UpstreamConfig,
    UpstreamConfigError, DEFAULT_BODY_BUDGET_BYTES, DEFAULT_MAX_BODY_BYTES,
};
pub use proxy::{
    CallerAuthMode, Proxy, ProxyConfig, RequestContext, MAX_REQUEST_BODY, WARN_DEVELOPMENT_TOKEN,
    WARN_NO_CALLER_AUTH,
};

// ---- Request normalization: the hardening limits on what callers send ----
pub use proxy::normalize::{
    check_headers as check_request_headers, normalize_raw_target, normalize_target,
    Limits as RequestLimits,
};

// ---- Failures and the responses that answer them ----
pub use error::{ErrorKind, Phase, ProxyError, Refusal, UpstreamCause};
pub use proxy::respond::error_response;
pub use proxy::retry_after;

// ---- Caller authentication ----
pub use auth::{CallerAuth, CallerAuthConfig, OidcConfigError};

// ---- Graph tokens: providers, host identities and the Entra exchange ----
pub use refresh::{Clock, SystemClock};
pub use token::aws_cognito::{
    from_env as aws_cognito_identity_from_env, AwsCognito,
    ENV_DEVELOPER_PROVIDER as ENV_COGNITO_DEVELOPER_PROVIDER,
    ENV_IDENTITY_POOL_ID as ENV_COGNITO_IDENTITY_POOL_ID, ENV_LOGIN as ENV_COGNITO_LOGIN,
};
pub use token::aws_sts::{
    from_env as aws_sts_identity_from_env, AwsSts, ENV_AUDIENCE as ENV_AWS_STS_AUDIENCE,
    ENV_DURATION_SECS as ENV_AWS_STS_DURATION_SECS,
};
pub use token::cache::FederatedTokens;
pub use token::entra::{
    unverified_claims as unverified_jwt_claims, EntraConfig, EntraConfigError, EntraExchange,
    EntraProblem, ENV_CLIENT_ID, ENV_ENTRA_AUTHORITY, ENV_GRAPH_SCOPE, ENV_TENANT_ID,
};
pub use token::file::{
    from_env as file_identity_from_env, from_lookup as file_identity_from_lookup,
    ENV_AZURE_FEDERATED_TOKEN_FILE, ENV_FEDERATED_TOKEN_FILE,
};
pub use token::gcp::{
    from_env as gcp_identity_from_env, from_lookup as gcp_identity_from_lookup, ENV_GCP_AUDIENCE,
    ENV_METADATA_HOST as ENV_GCP_METADATA_HOST,
};
pub use token::{
    HostIdentity, ProviderConfigError, StaticToken, TokenProvider, ENV_UPSTREAM_TOKEN,
};

// ---- Pseudonym secrets and settings ----
pub use config::{SettingError, ENV_ENCRYPTION_KEY, ENV_SALT, ENV_SCHEME};
pub use secrets::{
    load_local_with as load_local_pseudonym_config, load_pseudonym_config_opts, SecretOptions,
    SecretsPlan, SecretsReport,
};

// ---- Configuration sources ----
pub use env::{
    var as env_var, ConfigError, ConfigErrors, Env, Lookup, MapEnv, Problems, ProcessEnv,
};

// ---- Metrics ----
pub use metrics::{emf_line, Metrics, RequestMetrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};

// ---- AWS APIs (SigV4) ----
pub use aws::{AwsClient, AwsConfig, Call as AwsCall, Service as AwsService};
