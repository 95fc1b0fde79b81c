//! Building the proxy from configuration: flags, then environment
//! variables (every one a named constant below), then defaults. Shared by
//! `veil serve`, the Lambda host and `veil demo`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use ipnet::IpNet;
use veil_engine::{
    load_builtin_rules, BodyOptions, PseudonymConfig, Pseudonymizer, PublicBase, RuleSet,
    SanitizerPath, Secret, BUILTIN_CONNECTORS,
};
use veil_proxy::{
    aws_cognito_identity_from_env, aws_sts_identity_from_env, env_var, file_identity_from_env,
    gcp_identity_from_env, load_pseudonym_config_opts, CallerAuth, CallerAuthConfig,
    CallerAuthMode, EntraExchange, FederatedTokens, HealthInfo, HostIdentity, Proxy, ProxyConfig,
    RequestLimits, SecretOptions, SecretsReport, StaticToken, TokenProvider, Upstream,
    UpstreamConfig, ENV_AWS_STS_AUDIENCE, ENV_AZURE_FEDERATED_TOKEN_FILE, ENV_CLIENT_ID,
    ENV_COGNITO_DEVELOPER_PROVIDER, ENV_COGNITO_IDENTITY_POOL_ID, ENV_COGNITO_LOGIN,
    ENV_ENCRYPTION_KEY, ENV_ENTRA_AUTHORITY, ENV_FEDERATED_TOKEN_FILE, ENV_GCP_AUDIENCE,
    ENV_GCP_METADATA_HOST, ENV_GRAPH_SCOPE, ENV_TENANT_ID, ENV_UPSTREAM_TOKEN,
};

/// The connector to serve (`entra-id`, `outlook-mail`, `outlook-cal`, `msft-teams`, `outlook-contacts`).
pub const ENV_CONNECTOR: &str = "VEIL_CONNECTOR";
/// A rule file to use instead of the shipped one.
pub const ENV_RULES: &str = "VEIL_RULES";
/// `default` (Graph ids as `p~` tokens), `clear-ids`, or (outlook-mail,
/// outlook-mail-received and outlook-cal) `no-groups` / `clear-ids-no-groups`.
pub const ENV_RULES_VARIANT: &str = "VEIL_RULES_VARIANT";
/// Graph's base URL (default `https://graph.microsoft.com`).
pub const ENV_UPSTREAM: &str = "VEIL_UPSTREAM";
/// Seconds for the whole upstream phase of a request: Graph token, the
/// call, one retry after a 401, reading the body (default 25; keep below
/// the host's timeout).
pub const ENV_UPSTREAM_TIMEOUT: &str = "VEIL_UPSTREAM_TIMEOUT_SECS";
/// Largest Graph response accepted, in MiB once inflated (default 32).
pub const ENV_UPSTREAM_MAX_BODY_MB: &str = "VEIL_UPSTREAM_MAX_BODY_MB";
/// Memory for all Graph response bodies in flight together, in MiB
/// (default 256); past it requests get 503 `overloaded`.
pub const ENV_BODY_BUDGET_MB: &str = "VEIL_BODY_BUDGET_MB";
/// `veil serve`: seconds a client has to complete a request head once its
/// first byte arrived (default 10). Also bounds the TLS handshake.
pub const ENV_HEADER_READ_TIMEOUT: &str = "VEIL_HEADER_READ_TIMEOUT_SECS";
/// `veil serve`: seconds a connection may sit without a request in flight
/// (or, new, without sending anything) before it is closed (default 60).
pub const ENV_IDLE_TIMEOUT: &str = "VEIL_IDLE_TIMEOUT_SECS";
/// `veil serve`: seconds for the whole request body to arrive (default 10).
pub const ENV_BODY_READ_TIMEOUT: &str = "VEIL_BODY_READ_TIMEOUT_SECS";
/// `veil serve`: most client connections open at once (default 1024).
pub const ENV_MAX_CONNECTIONS: &str = "VEIL_MAX_CONNECTIONS";
/// `veil serve`: most requests being handled at once (default 256).
pub const ENV_MAX_IN_FLIGHT: &str = "VEIL_MAX_IN_FLIGHT";
/// Caller authentication: the OIDC issuer (e.g. `https://accounts.google.com`).
pub const ENV_CALLER_ISSUER: &str = "VEIL_CALLER_ISSUER";
/// Comma-separated accepted audiences.
pub const ENV_CALLER_AUDIENCES: &str = "VEIL_CALLER_AUDIENCES";
/// Comma-separated allowed `sub` values.
pub const ENV_CALLER_SUBJECTS: &str = "VEIL_CALLER_SUBJECTS";
/// Comma-separated allowed `email` values.
pub const ENV_CALLER_EMAILS: &str = "VEIL_CALLER_EMAILS";
/// The JWKS URL, when not discovered from the issuer.
pub const ENV_CALLER_JWKS_URL: &str = "VEIL_CALLER_JWKS_URL";
/// Comma-separated CIDR ranges callers must come from.
pub const ENV_CALLER_IP_ALLOWLIST: &str = "VEIL_CALLER_IP_ALLOWLIST";
/// On Lambda: comma-separated caller ARNs allowed (checked in the request context).
pub const ENV_ALLOWED_CALLER_ARNS: &str = "VEIL_ALLOWED_CALLER_ARNS";
/// `true` to serve without caller authentication (development only).
pub const ENV_ALLOW_UNAUTHENTICATED: &str = "VEIL_ALLOW_UNAUTHENTICATED";
/// Set by the Lambda runtime; its presence selects the Lambda host.
pub const ENV_LAMBDA_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// The public base URL of this Veil (`https://host[:port]`): when set,
/// sanitized `@odata.nextLink`/`@odata.deltaLink` point at it instead of
/// graph.microsoft.com. Unset: Graph's links, as Psoxy clients expect.
pub const ENV_PUBLIC_BASE_URL: &str = "VEIL_PUBLIC_BASE_URL";
/// The port Cloud Run asks the container to listen on.
pub const ENV_PORT: &str = "PORT";

/// The fixed, public secrets the golden files of `veil rules test` are
/// made with. Test only: `veil serve` refuses them.
pub const GOLDEN_SALT: &str = "veil-example-salt-NOT-FOR-PRODUCTION-0001";
pub const GOLDEN_KEY: &str = "veil-example-key-NOT-FOR-PRODUCTION-00001";

/// Secrets that are published (tests, examples) and so never acceptable
/// outside tests.
pub const WELL_KNOWN_SECRETS: &[&str] = &[GOLDEN_SALT, GOLDEN_KEY, "salt", "secret", "changeme"];

/// Which host runs the proxy (decides the default caller authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    Server,
    Lambda,
}

/// What the command line says; anything unset falls back to the environment.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub connector: Option<String>,
    pub rules: Option<PathBuf>,
    pub variant: Option<String>,
    pub upstream: Option<String>,
    pub allow_unauthenticated: bool,
    /// `--allow-legacy-short-salt` (or `VEIL_ALLOW_LEGACY_SHORT_SALT`): keep
    /// the weak salt of a Psoxy deployment being migrated (psoxy scheme).
    pub allow_legacy_short_salt: bool,
    /// `--public-base-url` (else [`ENV_PUBLIC_BASE_URL`]).
    pub public_base_url: Option<String>,
    /// Sanitize by the DOM path (the reference) instead of streaming.
    pub dom_sanitizer: bool,
}

/// Splits a comma-separated list.
pub fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Loads the rules: a file when given, else the shipped rules of the connector.
pub fn load_rules(opts: &Options) -> anyhow::Result<(String, RuleSet)> {
    let variant = opts
        .variant
        .clone()
        .or_else(|| env_var(ENV_RULES_VARIANT))
        .unwrap_or_else(|| "default".into());
    let connector = opts.connector.clone().or_else(|| env_var(ENV_CONNECTOR));
    let rules_path = opts
        .rules
        .clone()
        .or_else(|| env_var(ENV_RULES).map(PathBuf::from));
    let rules = match (&rules_path, &connector) {
        (Some(p), _) => RuleSet::from_file(p).map_err(|e| anyhow!("{e}"))?,
        (None, Some(c)) => load_builtin_rules(c, &variant).map_err(|e| anyhow!("{e}"))?,
        (None, None) => bail!(
            "no connector: give --connector NAME (or {ENV_CONNECTOR}); connectors: {}",
            BUILTIN_CONNECTORS.join(", ")
        ),
    };
    let connector = connector
        .or_else(|| rules.connector.as_ref().map(|c| c.name.clone()))
        .unwrap_or_else(|| "custom".into());
    Ok((connector, rules))
}

/// Loads the salt and the encryption keys from wherever the environment
/// points (the value, a file, SSM Parameter Store, Secrets Manager: see
/// `veil_proxy::secrets`), checks them (present, long enough, not one of
/// [`WELL_KNOWN_SECRETS`]) and says where each came from. `options` are
/// the command line's (`--allow-legacy-short-salt`); the environment's
/// `VEIL_ALLOW_LEGACY_SHORT_SALT` is read as well.
pub async fn load_pseudonym(
    http: &reqwest::Client,
    options: SecretOptions,
) -> anyhow::Result<(PseudonymConfig, SecretsReport)> {
    load_pseudonym_config_opts(http, &env_var, WELL_KNOWN_SECRETS, options)
        .await
        .map_err(|e| anyhow!(e))
}

/// For `veil doctor`: one line per secret, its source and fingerprint.
pub async fn load_secrets(http: &reqwest::Client) -> anyhow::Result<Vec<String>> {
    Ok(load_pseudonym(http, SecretOptions::default())
        .await?
        .1
        .lines())
}

/// The caller-authentication mode for a host.
pub fn caller_auth(
    host: Host,
    allow_unauthenticated: bool,
    http: reqwest::Client,
) -> anyhow::Result<CallerAuthMode> {
    let allow_unauth = allow_unauthenticated
        || env_var(ENV_ALLOW_UNAUTHENTICATED).is_some_and(|v| v == "true" || v == "1");
    if let Some(issuer) = env_var(ENV_CALLER_ISSUER) {
        let cfg = CallerAuthConfig {
            issuer,
            audiences: list(env_var(ENV_CALLER_AUDIENCES)),
            jwks_url: env_var(ENV_CALLER_JWKS_URL),
            allowed_subjects: list(env_var(ENV_CALLER_SUBJECTS)),
            allowed_emails: list(env_var(ENV_CALLER_EMAILS)),
            ..CallerAuthConfig::default()
        };
        let auth = CallerAuth::new(cfg, http).map_err(|e| anyhow!("caller authentication: {e}"))?;
        return Ok(CallerAuthMode::Oidc(auth));
    }
    match host {
        Host::Lambda => Ok(CallerAuthMode::AwsIam { allowed_arns: list(env_var(ENV_ALLOWED_CALLER_ARNS)) }),
        Host::Server if allow_unauth => Ok(CallerAuthMode::Unauthenticated),
        Host::Server => bail!(
            "no caller authentication is configured: set {ENV_CALLER_ISSUER}, {ENV_CALLER_AUDIENCES} and {ENV_CALLER_SUBJECTS} (or {ENV_CALLER_EMAILS}), or pass --allow-unauthenticated for development"
        ),
    }
}

/// Where the Graph token comes from: `static` (development only: the fixed
/// token of `VEIL_UPSTREAM_TOKEN`) or, by workload identity federation,
/// `aws-sts`, `aws-cognito`, `gcp`, `file`. Default: `static` when
/// `VEIL_UPSTREAM_TOKEN` is set, else an error.
pub const ENV_TOKEN_PROVIDER: &str = "VEIL_TOKEN_PROVIDER";

/// The token provider names, as `VEIL_TOKEN_PROVIDER` takes them.
pub const TOKEN_PROVIDERS: [&str; 5] = ["static", "aws-sts", "aws-cognito", "gcp", "file"];

/// The workload identity federation Veil is configured for: the host
/// identity and the Entra exchange (shared by `serve`, Lambda and `doctor`).
pub struct Federation {
    pub kind: &'static str,
    pub host: Arc<dyn HostIdentity>,
    pub exchange: EntraExchange,
    pub tenant: String,
    pub client_id: String,
}

fn provider_help() -> String {
    format!(
        "set {ENV_TOKEN_PROVIDER} to one of: \
         `aws-sts` (AWS Lambda/ECS/EC2: outbound identity federation of IAM; optional {}), \
         `aws-cognito` (AWS: a Cognito identity pool; {}, {} and {}), \
         `gcp` (Cloud Run, GCE, GKE: the metadata server; optional {}, {}), \
         `file` (Kubernetes projected token: {} or {}); \
         each also needs {} and {} (optional {}, {}); \
         or `static` with {ENV_UPSTREAM_TOKEN} for development only",
        ENV_AWS_STS_AUDIENCE,
        ENV_COGNITO_IDENTITY_POOL_ID,
        ENV_COGNITO_DEVELOPER_PROVIDER,
        ENV_COGNITO_LOGIN,
        ENV_GCP_AUDIENCE,
        ENV_GCP_METADATA_HOST,
        ENV_FEDERATED_TOKEN_FILE,
        ENV_AZURE_FEDERATED_TOKEN_FILE,
        ENV_TENANT_ID,
        ENV_CLIENT_ID,
        ENV_ENTRA_AUTHORITY,
        ENV_GRAPH_SCOPE,
    )
}

/// The configured provider name (validated), or an error naming the choices.
fn provider_kind() -> anyhow::Result<&'static str> {
    match env_var(ENV_TOKEN_PROVIDER) {
        Some(name) => TOKEN_PROVIDERS
            .iter()
            .copied()
            .find(|p| p.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                anyhow!(
                    "{ENV_TOKEN_PROVIDER}=`{}` is not a token provider: {}",
                    name.chars().take(40).collect::<String>(),
                    provider_help()
                )
            }),
        None if env_var(ENV_UPSTREAM_TOKEN).is_some() => Ok("static"),
        None => bail!("no Graph token provider is configured: {}", provider_help()),
    }
}

/// The federation from the environment; `None` when the `static`
/// development token is configured.
pub fn federation(http: &reqwest::Client) -> anyhow::Result<Option<Federation>> {
    let kind = provider_kind()?;
    let host = match kind {
        "static" => return Ok(None),
        "aws-sts" => aws_sts_identity_from_env(http.clone()),
        "aws-cognito" => aws_cognito_identity_from_env(http.clone()),
        "gcp" => gcp_identity_from_env(http.clone()),
        _ => file_identity_from_env(http.clone()),
    }
    .map_err(|e| anyhow!("{ENV_TOKEN_PROVIDER}={kind}: {e}"))?;
    let exchange = EntraExchange::from_env(http.clone())
        .map_err(|e| anyhow!("{ENV_TOKEN_PROVIDER}={kind}: {e}"))?;
    Ok(Some(Federation {
        kind,
        host,
        tenant: exchange.config().tenant_id.clone(),
        client_id: exchange.config().client_id.clone(),
        exchange,
    }))
}

/// The Graph token provider from the environment: one per process (its
/// cache is shared by every request).
pub fn token_provider() -> anyhow::Result<Arc<dyn TokenProvider>> {
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(15))
        .build()
        .context("HTTP client")?;
    match federation(&http)? {
        Some(f) => Ok(Arc::new(FederatedTokens::new(f.host, f.exchange))),
        None => match env_var(ENV_UPSTREAM_TOKEN) {
            Some(t) => Ok(Arc::new(StaticToken::new(Secret::from(t.as_str())))),
            None => bail!(
                "{ENV_TOKEN_PROVIDER}=static needs {ENV_UPSTREAM_TOKEN} (a Graph token; development only)"
            ),
        },
    }
}

/// A positive whole number from the environment, or `default`; the error
/// names the variable and what it takes.
pub fn number(name: &str, what: &str, default: u64) -> anyhow::Result<u64> {
    match env_var(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!(
                "{name}=`{}` must be a positive whole number of {what}",
                v.chars().take(40).collect::<String>()
            ),
        },
    }
}

/// Upstream settings from options and environment.
pub fn upstream_config(opts: &Options) -> anyhow::Result<UpstreamConfig> {
    let mut cfg = UpstreamConfig::default();
    if let Some(u) = opts.upstream.clone().or_else(|| env_var(ENV_UPSTREAM)) {
        cfg.base_url = u;
    }
    if env_var(ENV_UPSTREAM_TIMEOUT).is_some() {
        let secs = number(ENV_UPSTREAM_TIMEOUT, "seconds", 25)?;
        cfg.total_timeout = Duration::from_secs(secs);
        cfg.read_timeout = cfg.read_timeout.min(cfg.total_timeout);
    }
    let mib = 1024 * 1024;
    let default_max = (veil_proxy::DEFAULT_MAX_BODY_BYTES / mib) as u64;
    cfg.max_body_bytes = number(ENV_UPSTREAM_MAX_BODY_MB, "MiB", default_max)? as usize * mib;
    let default_budget = (veil_proxy::DEFAULT_BODY_BUDGET_BYTES / mib) as u64;
    let budget = number(ENV_BODY_BUDGET_MB, "MiB", default_budget)? as usize * mib;
    if budget < cfg.max_body_bytes {
        bail!(
            "{ENV_BODY_BUDGET_MB} ({} MiB) is smaller than one response may be ({ENV_UPSTREAM_MAX_BODY_MB}, {} MiB): raise it or lower {ENV_UPSTREAM_MAX_BODY_MB}",
            budget / mib,
            cfg.max_body_bytes / mib
        );
    }
    cfg.budget = veil_proxy::BodyBudget::new(budget);
    Ok(cfg)
}

/// Everything a host needs to build the proxy.
pub struct Parts {
    pub connector: String,
    pub rules: RuleSet,
    pub pseudonym: PseudonymConfig,
    pub tokens: Arc<dyn TokenProvider>,
    pub upstream: UpstreamConfig,
    pub caller_auth: CallerAuthMode,
    /// Warnings for the health check besides the rules' own (e.g. a legacy
    /// Psoxy salt admitted for a migration).
    pub warnings: Vec<String>,
}

/// Builds the proxy from its parts (the demo supplies its own).
pub fn build(parts: Parts) -> anyhow::Result<Proxy> {
    build_with(parts, BodyOptions::default())
}

/// The sanitizer options from options and environment.
pub fn body_options(opts: &Options) -> anyhow::Result<BodyOptions> {
    let public_base = match opts.public_base_url.clone() {
        Some(u) => Some(PublicBase::parse(&u).map_err(|e| anyhow!("--public-base-url: {e}"))?),
        None => env_var(ENV_PUBLIC_BASE_URL)
            .map(|u| PublicBase::parse(&u).map_err(|e| anyhow!("{ENV_PUBLIC_BASE_URL}: {e}")))
            .transpose()?,
    };
    Ok(BodyOptions {
        public_base,
        path: if opts.dom_sanitizer {
            SanitizerPath::Dom
        } else {
            SanitizerPath::Streaming
        },
    })
}

/// [`build`] with the sanitizer options.
pub fn build_with(parts: Parts, body: BodyOptions) -> anyhow::Result<Proxy> {
    let key_ids = parts
        .pseudonym
        .encryption_keys
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    let scheme = format!("{:?}", parts.pseudonym.scheme).to_lowercase();
    let salt_fingerprint = parts.pseudonym.salt.fingerprint();
    let mut problems = Vec::new();
    let mut missing_settings = Vec::new();
    if parts.pseudonym.encryption_keys.is_empty() {
        missing_settings.push(ENV_ENCRYPTION_KEY.to_string());
        problems.push(format!(
            "no encryption key: reversible `p~` tokens cannot be made or read (set {})",
            ENV_ENCRYPTION_KEY
        ));
    }
    let pseudonymizer = Pseudonymizer::new(parts.pseudonym).map_err(|e| anyhow!("{e}"))?;
    let configured_host = reqwest::Url::parse(&parts.upstream.base_url)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_default();
    let upstream = Upstream::new(parts.upstream).map_err(|e| anyhow!(e))?;
    let ip_allowlist = list(env_var(ENV_CALLER_IP_ALLOWLIST))
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|_| anyhow!("{ENV_CALLER_IP_ALLOWLIST}: `{s}` is not a CIDR range"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let health = HealthInfo {
        connector: parts.connector.clone(),
        rules_source: parts.rules.source.clone(),
        rules_sha256: parts.rules.sha256.clone(),
        salt_fingerprint,
        key_ids,
        scheme,
        configured_host,
        missing_settings,
        problems,
        warnings: parts
            .rules
            .warnings
            .iter()
            .chain(&parts.warnings)
            .cloned()
            .collect(),
        ..HealthInfo::default()
    };
    let config = ProxyConfig {
        connector: parts.connector,
        caller_auth: parts.caller_auth,
        ip_allowlist,
        limits: RequestLimits::default(),
        health,
        body,
    };
    Ok(Proxy::new(
        parts.rules,
        Arc::new(pseudonymizer),
        parts.tokens,
        upstream,
        config,
    ))
}

/// Builds the proxy for `serve` or Lambda from options and environment.
pub async fn from_env(host: Host, opts: &Options) -> anyhow::Result<Proxy> {
    let (connector, rules) = load_rules(opts)?;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .context("HTTP client")?;
    let options = SecretOptions {
        allow_legacy_short_salt: opts.allow_legacy_short_salt,
    };
    let (pseudonym, report) = load_pseudonym(&http, options).await?;
    let lines = report.lines();
    tracing::info!(target: "veil::secrets", salt = %lines[0], encryption_keys = %lines[1], "secrets loaded");
    let warnings = report.warnings();
    let caller_auth = caller_auth(host, opts.allow_unauthenticated, http)?;
    let body = body_options(opts)?;
    build_with(
        Parts {
            connector,
            rules,
            pseudonym,
            tokens: token_provider()?,
            upstream: upstream_config(opts)?,
            caller_auth,
            warnings,
        },
        body,
    )
}
