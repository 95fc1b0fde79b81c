//! The Entra ID side of workload identity federation: a host token (a JWT
//! the host cloud signed) is exchanged for a Graph access token with the
//! OAuth 2.0 client-credentials grant and a client assertion:
//!
//! ```text
//! POST {authority}/{tenant}/oauth2/v2.0/token
//! client_id=…&scope=https://graph.microsoft.com/.default&grant_type=client_credentials
//! &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
//! &client_assertion=<host JWT>
//! ```
//!
//! Entra's refusals (`AADSTSnnnn`) become messages that say what to fix and
//! show the `iss` / `sub` / `aud` of the host token Veil presented (read
//! without verification, for the message only); no message ever contains a
//! token.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use regex::Regex;
use serde_json::Value;

use super::TokenError;
use crate::env::{Lookup, ProcessEnv};
use veil_engine::Secret;

/// The Directory (tenant) ID of the Microsoft 365 tenant (a GUID, or its
/// `*.onmicrosoft.com` domain).
pub const ENV_TENANT_ID: &str = "VEIL_TENANT_ID";
/// The Application (client) ID of Veil's app registration (a GUID; not its Object ID).
pub const ENV_CLIENT_ID: &str = "VEIL_CLIENT_ID";
/// The Entra ID authority (default `https://login.microsoftonline.com`;
/// national clouds: `https://login.microsoftonline.us`,
/// `https://login.partner.microsoftonline.cn`).
pub const ENV_ENTRA_AUTHORITY: &str = "VEIL_ENTRA_AUTHORITY";
/// The scope asked for (default `https://graph.microsoft.com/.default`;
/// national clouds use their Graph host).
pub const ENV_GRAPH_SCOPE: &str = "VEIL_GRAPH_SCOPE";

/// The default authority (the global Azure cloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The default scope: every application permission granted to the app on Graph.
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest Entra answer Veil reads.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .expect("static regex")
});
static TENANT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$").expect("static regex"));
static AADSTS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"AADSTS(\d+)").expect("static regex"));
/// Anything shaped like a JWT, removed from text Veil repeats.
static JWT_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*").expect("static regex")
});

/// Where and as whom Veil exchanges host tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    /// Without trailing slash.
    pub authority: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
}

impl EntraConfig {
    /// Checks and normalizes the values; errors name the variable to fix
    /// (every problem, one a line).
    pub fn new(
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        scope: &str,
    ) -> Result<Self, EntraConfigError> {
        EntraConfig::checked(authority, Some(tenant_id), Some(client_id), scope)
    }

    /// [`EntraConfig::new`], with a missing id reported beside the other
    /// problems.
    fn checked(
        authority: &str,
        tenant_id: Option<&str>,
        client_id: Option<&str>,
        scope: &str,
    ) -> Result<Self, EntraConfigError> {
        let mut problems = Vec::new();
        let authority = authority.trim().trim_end_matches('/').to_string();
        if let Err(e) = check_authority(&authority) {
            problems.push(e);
        }
        let missing: Vec<&str> = [(ENV_TENANT_ID, tenant_id), (ENV_CLIENT_ID, client_id)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| n)
            .collect();
        if !missing.is_empty() {
            problems.push(EntraProblem::MissingIds(missing.join(" and ")));
        }
        let tenant_id = tenant_id.unwrap_or_default().trim().to_string();
        if !missing.contains(&ENV_TENANT_ID)
            && (!TENANT.is_match(&tenant_id) || tenant_id.contains(".."))
        {
            problems.push(EntraProblem::TenantId(printable(&tenant_id)));
        }
        let client_id = client_id.unwrap_or_default().trim().to_string();
        if !missing.contains(&ENV_CLIENT_ID) && !GUID.is_match(&client_id) {
            problems.push(EntraProblem::ClientId(printable(&client_id)));
        }
        let scope = scope.trim().to_string();
        if scope.is_empty() || scope.chars().any(char::is_whitespace) {
            problems.push(EntraProblem::Scope);
        }
        if !problems.is_empty() {
            return Err(EntraConfigError(problems));
        }
        Ok(EntraConfig {
            authority,
            tenant_id,
            client_id,
            scope,
        })
    }

    /// From `VEIL_TENANT_ID`, `VEIL_CLIENT_ID`, `VEIL_ENTRA_AUTHORITY`,
    /// `VEIL_GRAPH_SCOPE` in the process environment.
    pub fn from_env() -> Result<Self, EntraConfigError> {
        EntraConfig::from_lookup(&ProcessEnv)
    }

    /// [`EntraConfig::from_env`] from any [`Lookup`].
    pub fn from_lookup(env: Lookup<'_>) -> Result<Self, EntraConfigError> {
        EntraConfig::checked(
            &env.get(ENV_ENTRA_AUTHORITY)
                .unwrap_or_else(|| DEFAULT_AUTHORITY.into()),
            env.get(ENV_TENANT_ID).as_deref(),
            env.get(ENV_CLIENT_ID).as_deref(),
            &env.get(ENV_GRAPH_SCOPE)
                .unwrap_or_else(|| DEFAULT_SCOPE.into()),
        )
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id)
    }
}

/// Every problem of the Entra exchange's settings, one a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct EntraConfigError(pub Vec<EntraProblem>);

/// One problem of the Entra exchange's settings; the message names the
/// variable and the value expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntraProblem {
    #[error("{ENV_ENTRA_AUTHORITY} must start with https:// (plain http only for a local test server), got `{0}`")]
    AuthorityNotHttps(String),
    #[error("{ENV_ENTRA_AUTHORITY} must be a URL such as `{DEFAULT_AUTHORITY}`, got `{0}`")]
    AuthorityNotAUrl(String),
    #[error("{ENV_ENTRA_AUTHORITY} must be a plain URL such as `{DEFAULT_AUTHORITY}` (no query, fragment or user info), got `{0}`")]
    AuthorityNotPlain(String),
    #[error("workload identity federation needs {0}: {ENV_TENANT_ID} is the Directory (tenant) ID of the Microsoft 365 tenant, {ENV_CLIENT_ID} the Application (client) ID of Veil's app registration")]
    MissingIds(String),
    #[error("{ENV_TENANT_ID} must be the Directory (tenant) ID of the Microsoft 365 tenant (a GUID, from Entra ID → Overview), got `{0}`")]
    TenantId(String),
    #[error("{ENV_CLIENT_ID} must be the Application (client) ID of Veil's app registration (a GUID, from App registrations → Overview), got `{0}`")]
    ClientId(String),
    #[error("{ENV_GRAPH_SCOPE} must be one scope such as `{DEFAULT_SCOPE}`")]
    Scope,
}

fn check_authority(authority: &str) -> Result<(), EntraProblem> {
    let rest = if let Some(rest) = authority.strip_prefix("https://") {
        rest
    } else if let Some(rest) = authority.strip_prefix("http://") {
        let host = rest.split('/').next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !crate::net::is_loopback_host(host) {
            return Err(EntraProblem::AuthorityNotHttps(printable(authority)));
        }
        rest
    } else {
        return Err(EntraProblem::AuthorityNotAUrl(printable(authority)));
    };
    if rest.is_empty() || rest.contains(['?', '#', '@']) || rest.chars().any(char::is_whitespace) {
        return Err(EntraProblem::AuthorityNotPlain(printable(authority)));
    }
    Ok(())
}

/// At most 100 printable characters of a configuration value, for messages.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
}

/// The `iss`, `sub` and `aud` of a host token, read WITHOUT verifying it:
/// only to tell an administrator what Veil presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresentedIdentity {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
}

impl PresentedIdentity {
    /// Reads the claims of a compact JWT (no verification). Unreadable
    /// tokens give an identity with every claim unknown.
    pub fn of(jwt: &str) -> Self {
        let Some(claims) = unverified_claims(jwt) else {
            return PresentedIdentity::default();
        };
        let text = |v: &Value| match v {
            Value::String(s) => Some(clean_claim(s)),
            Value::Array(a) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(clean_claim)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => None,
        };
        PresentedIdentity {
            iss: claims.get("iss").and_then(text),
            sub: claims.get("sub").and_then(text),
            aud: claims.get("aud").and_then(text),
        }
    }
}

impl fmt::Display for PresentedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        write!(
            f,
            "issuer `{}`, subject `{}`, audience `{}`",
            show(&self.iss),
            show(&self.sub),
            show(&self.aud)
        )
    }
}

fn clean_claim(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(300).collect();
    JWT_LIKE.replace_all(&s, "<jwt>").into_owned()
}

/// The payload of a compact JWT as JSON, without verification.
pub fn unverified_claims(jwt: &str) -> Option<Value> {
    let mut parts = jwt.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// Whether `s` has the shape of a compact JWS (three base64url parts).
pub fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// What kind of refusal Entra answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntraErrorClass {
    /// AADSTS700016: no such application in the tenant.
    UnknownClient,
    /// AADSTS70021 / 700211 / 700212 / 700213: no federated credential matches.
    NoFederatedCredential,
    /// AADSTS90002: no such tenant.
    TenantNotFound,
    /// Any other AADSTS code or HTTP error.
    Other,
    /// Entra could not be reached, or answered 429 / 5xx.
    Unavailable,
    /// Entra's 200 answer was unusable.
    InvalidResponse,
}

/// Why an exchange failed. [`fmt::Display`] is the full, actionable
/// message for operators (logs, health check); [`EntraError::summary`] is
/// the short one for callers. Neither contains a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    pub class: EntraErrorClass,
    /// The AADSTS code, when Entra gave one.
    pub code: Option<u32>,
    /// Entra's HTTP status, when it answered.
    pub status: Option<u16>,
    pub message: String,
    pub summary: String,
    pub retryable: bool,
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EntraError {}

impl EntraError {
    /// The short, caller-safe message (no host identity details).
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

impl From<EntraError> for TokenError {
    fn from(e: EntraError) -> Self {
        TokenError {
            message: e.message,
            retryable: e.retryable,
        }
    }
}

/// A Graph access token and its lifetime.
#[derive(Debug, Clone)]
pub struct GraphToken {
    pub access_token: Secret,
    /// `expires_in` of Entra's answer.
    pub expires_in: Duration,
}

/// The token endpoint client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EntraExchange {
    http: reqwest::Client,
    config: EntraConfig,
}

impl EntraExchange {
    pub fn new(config: EntraConfig, http: reqwest::Client) -> Self {
        EntraExchange { http, config }
    }

    /// From the environment (see [`EntraConfig::from_env`]).
    pub fn from_env(http: reqwest::Client) -> Result<Self, EntraConfigError> {
        Ok(EntraExchange::new(EntraConfig::from_env()?, http))
    }

    pub fn config(&self) -> &EntraConfig {
        &self.config
    }

    /// Exchanges a host token for a Graph access token.
    pub async fn exchange(&self, host_token: &Secret) -> Result<Secret, EntraError> {
        self.request_token(host_token).await.map(|t| t.access_token)
    }

    /// Exchanges a host token for a Graph access token and its lifetime.
    pub async fn request_token(&self, host_token: &Secret) -> Result<GraphToken, EntraError> {
        let assertion = String::from_utf8_lossy(host_token.expose());
        let presented = PresentedIdentity::of(&assertion);
        let cfg = &self.config;
        let form = [
            ("client_id", cfg.client_id.as_str()),
            ("scope", cfg.scope.as_str()),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_ref()),
        ];
        let sent = self
            .http
            .post(cfg.token_url())
            .header(http::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(EXCHANGE_TIMEOUT)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.unreachable(&e)),
        };
        let status = resp.status();
        let body = match read_limited(resp).await {
            Ok(b) => b,
            Err(e) => return Err(self.unreachable(&e)),
        };
        if status.is_success() {
            return parse_success(&body).map_err(|why| EntraError {
                class: EntraErrorClass::InvalidResponse,
                code: None,
                status: Some(status.as_u16()),
                message: format!(
                    "Entra ID ({}) answered the token exchange with an unusable response: {why}",
                    cfg.authority
                ),
                summary: "Entra ID answered the token exchange with an unusable response".into(),
                retryable: true,
            });
        }
        Err(self.refusal(status.as_u16(), &body, &presented))
    }

    fn unreachable(&self, e: &reqwest::Error) -> EntraError {
        let what = if e.is_timeout() {
            "did not answer in time"
        } else if e.is_connect() {
            "cannot be reached"
        } else {
            "failed"
        };
        EntraError {
            class: EntraErrorClass::Unavailable,
            code: None,
            status: None,
            message: format!(
                "the token exchange with Entra ID at {} {what} ({}); check outbound HTTPS access to it from this host",
                self.config.token_url(),
                error_chain(e)
            ),
            summary: format!("Entra ID {what}"),
            retryable: true,
        }
    }

    /// Maps Entra's error answer to an actionable message.
    fn refusal(&self, status: u16, body: &[u8], presented: &PresentedIdentity) -> EntraError {
        let cfg = &self.config;
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let error = field("error").map(|e| printable(&e));
        let description = field("error_description").unwrap_or_default();
        let first_line = description
            .lines()
            .next()
            .map(|l| clean_claim(l.trim()))
            .unwrap_or_default();
        let first_line: String = first_line.chars().take(400).collect();
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("error_codes"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .or_else(|| {
                AADSTS
                    .captures(&description)
                    .and_then(|c| c[1].parse::<u32>().ok())
            });
        let ids = match (field("trace_id"), field("correlation_id")) {
            (Some(t), Some(c)) => format!(
                " (Entra trace id {}, correlation id {})",
                printable(&t),
                printable(&c)
            ),
            _ => String::new(),
        };
        let retryable = status == 429 || status >= 500;
        let (class, message, summary) = match code {
            Some(700016) => (
                EntraErrorClass::UnknownClient,
                format!(
                    "Entra ID refused the token exchange (AADSTS700016): tenant `{}` has no application with client id `{}`. Set {ENV_CLIENT_ID} to the app registration's Application (client) ID — not its Object ID — and check that {ENV_TENANT_ID} is the tenant the app is registered in. Veil presented a host token with {presented}. Entra said: {first_line}{ids}",
                    cfg.tenant_id, cfg.client_id
                ),
                format!("Entra ID refused the token exchange (AADSTS700016: unknown application {ENV_CLIENT_ID}); Veil's log and health check say what to fix"),
            ),
            Some(c @ (70021 | 700211 | 700212 | 700213)) => (
                EntraErrorClass::NoFederatedCredential,
                format!(
                    "Entra ID refused the token exchange (AADSTS{c}): no federated identity credential of application `{}` matches the host token Veil presented: {presented}. In Entra ID → App registrations → (the app) → Certificates & secrets → Federated credentials, add a credential with exactly this issuer, subject and audience (matching is case-sensitive). Entra said: {first_line}{ids}",
                    cfg.client_id
                ),
                format!("Entra ID refused the token exchange (AADSTS{c}: no federated credential matches Veil's host identity); Veil's log and health check say what to fix"),
            ),
            Some(90002) => (
                EntraErrorClass::TenantNotFound,
                format!(
                    "Entra ID refused the token exchange (AADSTS90002): tenant `{}` was not found at {}. Set {ENV_TENANT_ID} to the Directory (tenant) ID of the Microsoft 365 tenant; for a national cloud set {ENV_ENTRA_AUTHORITY} too. Veil presented a host token with {presented}. Entra said: {first_line}{ids}",
                    cfg.tenant_id, cfg.authority
                ),
                format!("Entra ID refused the token exchange (AADSTS90002: tenant not found, check {ENV_TENANT_ID}); Veil's log and health check say what to fix"),
            ),
            Some(c) => (
                if retryable { EntraErrorClass::Unavailable } else { EntraErrorClass::Other },
                format!(
                    "Entra ID refused the token exchange (HTTP {status}, AADSTS{c}): {first_line}. Veil presented a host token with {presented} for application `{}` in tenant `{}`{ids}",
                    cfg.client_id, cfg.tenant_id
                ),
                format!("Entra ID refused the token exchange (AADSTS{c}); Veil's log and health check have the details"),
            ),
            None => (
                if retryable { EntraErrorClass::Unavailable } else { EntraErrorClass::Other },
                format!(
                    "Entra ID answered the token exchange with HTTP {status}{}{}. Veil presented a host token with {presented} for application `{}` in tenant `{}` at {}{ids}",
                    error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
                    if first_line.is_empty() { String::new() } else { format!(": {first_line}") },
                    cfg.client_id, cfg.tenant_id, cfg.authority
                ),
                format!("Entra ID answered the token exchange with HTTP {status}"),
            ),
        };
        EntraError {
            class,
            code,
            status: Some(status),
            message,
            summary,
            retryable,
        }
    }
}

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// A reqwest error and its sources, without the request URL's query (none
/// is sent) and without bodies.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    JWT_LIKE.replace_all(&out, "<jwt>").into_owned()
}

/// Why a successful-looking token answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum UnusableAnswer {
    #[error("the body is not JSON")]
    NotJson,
    #[error("no `access_token`")]
    NoAccessToken,
    #[error("token_type `{0}` is not Bearer")]
    NotBearer(String),
    #[error("the access token has characters a header cannot carry")]
    BadCharacters,
    #[error("no `expires_in`")]
    NoExpiresIn,
    #[error("`expires_in` is 0")]
    ZeroExpiresIn,
}

fn parse_success(body: &[u8]) -> Result<GraphToken, UnusableAnswer> {
    let v: Value = serde_json::from_slice(body).map_err(|_| UnusableAnswer::NotJson)?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(UnusableAnswer::NoAccessToken)?;
    if let Some(tt) = v.get("token_type").and_then(Value::as_str) {
        if !tt.eq_ignore_ascii_case("bearer") {
            return Err(UnusableAnswer::NotBearer(printable(tt)));
        }
    }
    if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(UnusableAnswer::BadCharacters);
    }
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or(UnusableAnswer::NoExpiresIn)?;
    if expires_in == 0 {
        return Err(UnusableAnswer::ZeroExpiresIn);
    }
    Ok(GraphToken {
        access_token: Secret::from(token),
        expires_in: Duration::from_secs(expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_test_support::server::{Reply as Canned, TestServer};

    #[test]
    fn config_from_lookup_names_every_missing_id() {
        use crate::env::MapEnv;
        let e = EntraConfig::from_lookup(&MapEnv::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs VEIL_TENANT_ID and VEIL_CLIENT_ID"), "{e}");
        // A missing id, a bad authority and a bad scope: all three, one a line.
        let e = EntraConfig::from_lookup(&MapEnv::new(&[
            (ENV_TENANT_ID, "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c"),
            (ENV_ENTRA_AUTHORITY, "login.example"),
            (ENV_GRAPH_SCOPE, "a b"),
        ]))
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert!(
            lines.len() == 3
                && lines[0].starts_with("VEIL_ENTRA_AUTHORITY must be a URL")
                && lines[1].starts_with("workload identity federation needs VEIL_CLIENT_ID:")
                && lines[2].starts_with("VEIL_GRAPH_SCOPE must be one scope"),
            "{e}"
        );
        let config = EntraConfig::from_lookup(&MapEnv::new(&[
            (ENV_TENANT_ID, "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c"),
            (ENV_CLIENT_ID, "2f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"),
        ]))
        .unwrap();
        assert_eq!(config.tenant_id, "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c");
        assert_eq!(config.scope, DEFAULT_SCOPE);
    }

    fn jwt(claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{p}.c2lnbmF0dXJl")
    }

    const TENANT_ID: &str = "7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c";
    const CLIENT_ID: &str = "2f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";

    fn exchange(base: &str) -> EntraExchange {
        EntraExchange::new(
            EntraConfig::new(base, TENANT_ID, CLIENT_ID, DEFAULT_SCOPE).unwrap(),
            reqwest::Client::builder().no_proxy().build().unwrap(),
        )
    }

    fn host_token() -> Secret {
        Secret::from(
            jwt(&serde_json::json!({
                "iss": "https://accounts.google.com",
                "sub": "117230000000000000001",
                "aud": ["api://AzureADTokenExchange"],
                "exp": 4_000_000_000u64,
            }))
            .as_str(),
        )
    }

    fn entra_error(code: u32, error: &str, text: &str) -> Canned {
        Canned::json(
            400,
            serde_json::json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0a1b\r\nCorrelation ID: 2c3d\r\nTimestamp: 2026-11-06 10:00:00Z"),
                "error_codes": [code],
                "timestamp": "2026-11-06 10:00:00Z",
                "trace_id": "0a1b",
                "correlation_id": "2c3d",
            }),
        )
    }

    #[tokio::test]
    async fn sends_exactly_the_client_credentials_form() {
        let server = TestServer::script(vec![Canned::json(
            200,
            serde_json::json!({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"graph-access-token"}),
        )])
        .await;
        let t = exchange(&server.base())
            .request_token(&host_token())
            .await
            .unwrap();
        assert_eq!(t.access_token.expose(), b"graph-access-token");
        assert_eq!(t.expires_in, Duration::from_secs(3599));
        let req = server.requests().pop().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, format!("/{TENANT_ID}/oauth2/v2.0/token"));
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let form: Vec<(String, String)> = url_decode_form(&req.body);
        let names: Vec<&str> = form.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "client_id",
                "scope",
                "grant_type",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert_eq!(form[0].1, CLIENT_ID);
        assert_eq!(form[1].1, DEFAULT_SCOPE);
        assert_eq!(form[2].1, "client_credentials");
        assert_eq!(form[3].1, ASSERTION_TYPE);
        assert_eq!(form[4].1.as_bytes(), host_token().expose());
    }

    fn url_decode_form(body: &[u8]) -> Vec<(String, String)> {
        let text = String::from_utf8_lossy(body).replace('+', " ");
        text.split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                let d = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (d(k), d(v))
            })
            .collect()
    }

    #[tokio::test]
    async fn maps_each_aadsts_class_to_an_actionable_message_without_the_token() {
        let cases = [
            (
                entra_error(700016, "unauthorized_client", "Application with identifier '2f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f' was not found in the directory 'Contoso'."),
                EntraErrorClass::UnknownClient,
                "Object ID",
            ),
            (
                entra_error(700213, "invalid_request", "No matching federated identity record found for presented assertion subject '117230000000000000001'."),
                EntraErrorClass::NoFederatedCredential,
                "Federated credentials",
            ),
            (
                entra_error(70021, "invalid_client", "No matching federated identity record found for presented assertion."),
                EntraErrorClass::NoFederatedCredential,
                "Federated credentials",
            ),
            (
                entra_error(700212, "invalid_request", "No matching federated identity record found for presented assertion audience 'api://AzureADTokenExchange'."),
                EntraErrorClass::NoFederatedCredential,
                "Federated credentials",
            ),
            (
                entra_error(90002, "invalid_request", "Tenant '7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c' not found."),
                EntraErrorClass::TenantNotFound,
                "VEIL_TENANT_ID",
            ),
            (
                entra_error(700024, "invalid_client", "Client assertion is not within its valid time range."),
                EntraErrorClass::Other,
                "AADSTS700024: Client assertion is not within its valid time range.",
            ),
        ];
        let n = cases.len();
        let server = TestServer::script(cases.iter().map(|c| c.0.clone()).collect()).await;
        let ex = exchange(&server.base());
        let token = host_token();
        let token_text = String::from_utf8_lossy(token.expose()).into_owned();
        for (_, class, hint) in cases {
            let e = ex.request_token(&token).await.unwrap_err();
            assert_eq!(e.class, class, "{e}");
            assert!(!e.retryable, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(hint), "{msg}");
            assert!(
                msg.contains("issuer `https://accounts.google.com`"),
                "{msg}"
            );
            assert!(msg.contains("subject `117230000000000000001`"), "{msg}");
            assert!(
                msg.contains("audience `api://AzureADTokenExchange`"),
                "{msg}"
            );
            assert!(msg.contains("trace id 0a1b"), "{msg}");
            assert!(!msg.contains(&token_text), "{msg}");
            assert!(!msg.contains("Trace ID:"), "only the first line: {msg}");
            assert!(
                !e.summary().contains("117230000000000000001"),
                "{}",
                e.summary()
            );
        }
        assert_eq!(server.requests().len(), n);
    }

    #[tokio::test]
    async fn network_failures_and_5xx_are_retryable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = exchange(&format!("http://127.0.0.1:{port}"))
            .request_token(&host_token())
            .await
            .unwrap_err();
        assert_eq!(e.class, EntraErrorClass::Unavailable);
        assert!(e.retryable);
        assert!(e.to_string().contains("cannot be reached"), "{e}");

        let server = TestServer::script(vec![
            Canned::json(503, serde_json::json!({"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation."})),
            Canned::json(200, serde_json::json!({"token_type":"Bearer","access_token":"x"})),
        ])
        .await;
        let ex = exchange(&server.base());
        let e = ex.request_token(&host_token()).await.unwrap_err();
        assert!(e.retryable, "{e}");
        assert_eq!(e.code, Some(50196));
        let e = ex.request_token(&host_token()).await.unwrap_err();
        assert_eq!(e.class, EntraErrorClass::InvalidResponse, "{e}");
        assert!(e.to_string().contains("expires_in"), "{e}");
    }

    #[test]
    fn configuration_is_checked() {
        let ok = EntraConfig::new(DEFAULT_AUTHORITY, TENANT_ID, CLIENT_ID, DEFAULT_SCOPE).unwrap();
        assert_eq!(
            ok.token_url(),
            format!("https://login.microsoftonline.com/{TENANT_ID}/oauth2/v2.0/token")
        );
        let e = EntraConfig::new(DEFAULT_AUTHORITY, TENANT_ID, "not-a-guid", DEFAULT_SCOPE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Application (client) ID"), "{e}");
        let e = EntraConfig::new(DEFAULT_AUTHORITY, "../evil", CLIENT_ID, DEFAULT_SCOPE)
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_TENANT_ID), "{e}");
        let e = EntraConfig::new("http://login.example", TENANT_ID, CLIENT_ID, DEFAULT_SCOPE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("https://"), "{e}");
        assert!(
            EntraConfig::new("http://127.0.0.1:9/", TENANT_ID, CLIENT_ID, DEFAULT_SCOPE).is_ok()
        );
        assert!(EntraConfig::new(
            "https://login.microsoftonline.us",
            "contoso.onmicrosoft.com",
            CLIENT_ID,
            "https://graph.microsoft.us/.default"
        )
        .is_ok());
    }

    #[test]
    fn presented_identity_reads_claims_without_verifying() {
        let id = PresentedIdentity::of(&jwt(&serde_json::json!({
            "iss": "https://sts.amazonaws.com", "sub": "arn:aws:iam::123456789012:role/veil", "aud": "api://AzureADTokenExchange"
        })));
        assert_eq!(id.iss.as_deref(), Some("https://sts.amazonaws.com"));
        assert_eq!(
            id.sub.as_deref(),
            Some("arn:aws:iam::123456789012:role/veil")
        );
        assert_eq!(
            PresentedIdentity::of("garbage"),
            PresentedIdentity::default()
        );
        assert!(looks_like_jwt(&jwt(&serde_json::json!({}))));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c d"));
    }
}
