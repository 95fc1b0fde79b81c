//! Building the proxy from configuration: flags, then environment
//! variables (every one a named constant below, read through
//! `veil_proxy::env::Env`), then defaults. Shared by `veil serve`, the
//! Lambda host and `veil demo`.
//!
//! [`start`] reads every setting before it fails: each problem is a
//! `ConfigError` naming its flag or variable, and start-up stops once with
//! all of them ("3 configuration problems:" and one a line). Everything
//! that can be checked locally is, before anything goes to the network;
//! secrets kept in AWS are fetched only when the rest is right.

mod callers;
mod tokens;

use callers::{caller_auth, ip_allowlist};
pub use tokens::{federation, token_provider, ENV_TOKEN_PROVIDER};
use tokens::{token_http, tokens_from};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use ipnet::IpNet;
use veil_engine::{
    load_builtin_rules, BodyOptions, PseudonymConfig, Pseudonymizer, PublicBase, RuleSet,
    SanitizerPath, Secret, BUILTIN_CONNECTORS,
};
use veil_proxy::{
    check_upstream_base_url, file_identity_from_lookup, gcp_identity_from_lookup, AwsCognito,
    AwsSts, BodyBudget, CallerAuth, CallerAuthConfig, CallerAuthMode, ConfigError, ConfigErrors,
    EntraConfig, EntraExchange, FederatedTokens, HealthInfo, HostIdentity, Lookup, Problems,
    ProcessEnv, ProviderConfigError, Proxy, ProxyConfig, RequestLimits, SecretOptions, SecretsPlan,
    SecretsReport, StaticToken, TokenProvider, Upstream, UpstreamConfig, DEFAULT_BODY_BUDGET_BYTES,
    DEFAULT_MAX_BODY_BYTES, ENV_AWS_STS_AUDIENCE, ENV_AZURE_FEDERATED_TOKEN_FILE, ENV_CLIENT_ID,
    ENV_COGNITO_DEVELOPER_PROVIDER, ENV_COGNITO_IDENTITY_POOL_ID, ENV_COGNITO_LOGIN,
    ENV_ENCRYPTION_KEY, ENV_ENTRA_AUTHORITY, ENV_FEDERATED_TOKEN_FILE, ENV_GCP_AUDIENCE,
    ENV_GCP_METADATA_HOST, ENV_GRAPH_SCOPE, ENV_SALT, ENV_TENANT_ID, ENV_UPSTREAM_TOKEN,
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

/// The command line's value when given, else the variable's, with the
/// name of the setting it came from (for messages).
fn setting(
    flag: Option<String>,
    flag_name: &'static str,
    env: Lookup<'_>,
    var_name: &'static str,
) -> Option<(String, &'static str)> {
    flag.map(|v| (v, flag_name))
        .or_else(|| env.get(var_name).map(|v| (v, var_name)))
}

/// Loads the rules: a file when given, else the shipped rules of the connector.
pub fn load_rules(opts: &Options) -> anyhow::Result<(String, RuleSet)> {
    Ok(rules_from(opts, &ProcessEnv)?)
}

/// [`load_rules`] with the variables read through `env`; the error names
/// the flag or variable at fault.
fn rules_from(opts: &Options, env: Lookup<'_>) -> Result<(String, RuleSet), ConfigError> {
    let variant = setting(opts.variant.clone(), "--variant", env, ENV_RULES_VARIANT);
    let connector = setting(opts.connector.clone(), "--connector", env, ENV_CONNECTOR);
    let rules_path = match &opts.rules {
        Some(p) => Some((p.clone(), "--rules")),
        None => env.get(ENV_RULES).map(|p| (PathBuf::from(p), ENV_RULES)),
    };
    let rules = match (&rules_path, &connector) {
        (Some((p, name)), _) => RuleSet::from_file(p).map_err(|e| ConfigError::invalid(name, e))?,
        (None, Some((c, name))) => {
            let v = variant.as_ref().map_or("default", |(v, _)| v.as_str());
            load_builtin_rules(c, v).map_err(|e| {
                // An unknown connector is the connector's fault, else the variant's.
                let at_fault = match &variant {
                    Some((_, variant_name)) if BUILTIN_CONNECTORS.contains(&c.as_str()) => {
                        variant_name
                    }
                    _ => name,
                };
                ConfigError::invalid(at_fault, e)
            })?
        }
        (None, None) => {
            return Err(ConfigError::new(
                ENV_CONNECTOR,
                format!(
                    "no connector: give --connector NAME (or {ENV_CONNECTOR}); connectors: {}",
                    BUILTIN_CONNECTORS.join(", ")
                ),
            ))
        }
    };
    let connector = connector
        .map(|(c, _)| c)
        .or_else(|| rules.connector.as_ref().map(|c| c.name.clone()))
        .unwrap_or_else(|| "custom".into());
    Ok((connector, rules))
}

/// For `veil doctor`: one line per secret, its source and fingerprint.
/// The salt and the encryption keys come from wherever the environment
/// points (the value, a file, SSM Parameter Store, Secrets Manager: see
/// `veil_proxy::secrets`) and are checked (present, long enough, not one
/// of [`WELL_KNOWN_SECRETS`]).
pub async fn load_secrets(http: &reqwest::Client) -> anyhow::Result<Vec<String>> {
    let plan = SecretsPlan::from_lookup(http, &ProcessEnv, SecretOptions::default())?;
    let (_, report) = plan
        .load(&ProcessEnv, WELL_KNOWN_SECRETS)
        .await
        .map_err(|e| anyhow!(e))?;
    Ok(report.lines())
}

/// A positive whole number from the environment, or `default`; the error
/// names the variable and what it takes.
pub fn number(env: Lookup<'_>, name: &str, what: &str, default: u64) -> Result<u64, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::new(
                name,
                format!(
                    "{name}=`{}` must be a positive whole number of {what}",
                    v.chars().take(40).collect::<String>()
                ),
            )),
        },
    }
}

/// Upstream settings from options and environment, every problem of them:
/// the Graph base URL, the deadline, the body limits and the egress proxy
/// (`HTTPS_PROXY`, read by the connector).
fn upstream_config(opts: &Options, env: Lookup<'_>) -> Result<UpstreamConfig, ConfigErrors> {
    let mut problems = Problems::new();
    let mut cfg = UpstreamConfig::default();
    let base = setting(opts.upstream.clone(), "--upstream", env, ENV_UPSTREAM);
    let base_ok = match &base {
        Some((u, name)) => {
            cfg.base_url = u.clone();
            problems
                .check(
                    check_upstream_base_url(u.trim_end_matches('/'))
                        .map_err(|e| ConfigError::invalid(name, e)),
                )
                .is_some()
        }
        None => true,
    };
    if let Some(secs) = problems.check(number(env, ENV_UPSTREAM_TIMEOUT, "seconds", 25)) {
        if env.get(ENV_UPSTREAM_TIMEOUT).is_some() {
            cfg.total_timeout = Duration::from_secs(secs);
            cfg.read_timeout = cfg.read_timeout.min(cfg.total_timeout);
        }
    }
    let mib = 1024 * 1024;
    let default_max = (DEFAULT_MAX_BODY_BYTES / mib) as u64;
    let max = problems.check(number(env, ENV_UPSTREAM_MAX_BODY_MB, "MiB", default_max));
    let default_budget = (DEFAULT_BODY_BUDGET_BYTES / mib) as u64;
    let budget = problems.check(number(env, ENV_BODY_BUDGET_MB, "MiB", default_budget));
    if let (Some(max), Some(budget)) = (max, budget) {
        cfg.max_body_bytes = max as usize * mib;
        if budget < max {
            problems.add(ConfigError::new(
                ENV_BODY_BUDGET_MB,
                format!(
                    "{ENV_BODY_BUDGET_MB} ({budget} MiB) is smaller than one response may be ({ENV_UPSTREAM_MAX_BODY_MB}, {max} MiB): raise it or lower {ENV_UPSTREAM_MAX_BODY_MB}"
                ),
            ));
        }
        cfg.budget = BodyBudget::new(budget as usize * mib);
    }
    // The client itself: what is left to refuse is the egress proxy.
    if base_ok {
        if let Err(e) = Upstream::new(cfg.clone()) {
            // The base URL passed its check: what is left is the proxy's.
            let name = match &base {
                Some((_, name)) if !e.is_egress_proxy() => name,
                _ => "HTTPS_PROXY",
            };
            problems.add(ConfigError::invalid(name, e));
        }
    }
    problems.finish(|| cfg)
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
fn body_options(opts: &Options, env: Lookup<'_>) -> Result<BodyOptions, ConfigError> {
    let public_base = match setting(
        opts.public_base_url.clone(),
        "--public-base-url",
        env,
        ENV_PUBLIC_BASE_URL,
    ) {
        Some((u, name)) => Some(PublicBase::parse(&u).map_err(|e| ConfigError::invalid(name, e))?),
        None => None,
    };
    Ok(BodyOptions {
        public_base,
        path: if opts.dom_sanitizer {
            SanitizerPath::Dom
        } else {
            SanitizerPath::Streaming
        },
        // Set by the proxy from its upstream's limit.
        max_depth: None,
    })
}

/// [`build`] with the sanitizer options; the IP allowlist is the process
/// environment's.
fn build_with(parts: Parts, body: BodyOptions) -> anyhow::Result<Proxy> {
    let ip_allowlist = ip_allowlist(&ProcessEnv).map_err(|e| anyhow!(e.report()))?;
    assemble(parts, body, ip_allowlist)
}

/// The proxy from its parts and settings.
fn assemble(parts: Parts, body: BodyOptions, ip_allowlist: Vec<IpNet>) -> anyhow::Result<Proxy> {
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
    let upstream = Upstream::new(parts.upstream)?;
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

/// Every setting of [`start`], read and checked without any network call.
struct Settings {
    connector: String,
    rules: RuleSet,
    secrets: Secrets,
    caller_auth: CallerAuthMode,
    tokens: Arc<dyn TokenProvider>,
    upstream: UpstreamConfig,
    body: BodyOptions,
    ip_allowlist: Vec<IpNet>,
}

/// The secrets: loaded already when they are in the environment or files,
/// else where to fetch them from.
enum Secrets {
    Loaded(Box<(PseudonymConfig, SecretsReport)>),
    InAws(Box<SecretsPlan>),
}

impl Settings {
    /// Reads every setting through `env`, collecting every problem (after
    /// `problems`, the host's own) before failing.
    fn read(
        host: Host,
        opts: &Options,
        env: Lookup<'_>,
        http: &reqwest::Client,
        mut problems: Problems,
    ) -> Result<Settings, ConfigErrors> {
        let rules = problems.check(rules_from(opts, env));
        let options = SecretOptions {
            allow_legacy_short_salt: opts.allow_legacy_short_salt,
        };
        let secrets = problems
            .absorb(SecretsPlan::from_lookup(http, env, options))
            .and_then(|plan| match plan.load_local(env, WELL_KNOWN_SECRETS) {
                None => Some(Secrets::InAws(Box::new(plan))),
                Some(loaded) => problems
                    .check_message(ENV_SALT, loaded)
                    .map(|l| Secrets::Loaded(Box::new(l))),
            });
        let caller_auth = problems.absorb(caller_auth(
            host,
            opts.allow_unauthenticated,
            env,
            http.clone(),
        ));
        let ip_allowlist = problems.absorb(ip_allowlist(env));
        let tokens = match token_http() {
            Ok(token_http) => problems.absorb(tokens_from(&token_http, env)),
            Err(e) => {
                problems.add(ConfigError::new(ENV_TOKEN_PROVIDER, format!("{e:#}")));
                None
            }
        };
        let upstream = problems.absorb(upstream_config(opts, env));
        let body = problems.check(body_options(opts, env));
        problems.finish(|| {
            let (connector, rules) = rules.expect("checked");
            Settings {
                connector,
                rules,
                secrets: secrets.expect("checked"),
                caller_auth: caller_auth.expect("checked"),
                tokens: tokens.expect("checked"),
                upstream: upstream.expect("checked"),
                body: body.expect("checked"),
                ip_allowlist: ip_allowlist.expect("checked"),
            }
        })
    }
}

/// Builds the proxy for `serve` or Lambda from options and the variables
/// read through `env` (the process environment: [`ProcessEnv`]). Every problem of
/// the configuration (after `problems`, those the host found in its own
/// settings) is reported at once, one a line, before anything goes to the
/// network; only then are secrets kept in AWS fetched.
pub async fn start(
    host: Host,
    opts: &Options,
    env: Lookup<'_>,
    problems: Problems,
) -> anyhow::Result<Proxy> {
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .context("HTTP client")?;
    let settings =
        Settings::read(host, opts, env, &http, problems).map_err(|e| anyhow!(e.report()))?;
    let (pseudonym, report) = match settings.secrets {
        Secrets::Loaded(loaded) => *loaded,
        Secrets::InAws(plan) => plan
            .load(env, WELL_KNOWN_SECRETS)
            .await
            .map_err(|e| anyhow!(e))?,
    };
    let lines = report.lines();
    tracing::info!(target: "veil::secrets", salt = %lines[0], encryption_keys = %lines[1], "secrets loaded");
    assemble(
        Parts {
            connector: settings.connector,
            rules: settings.rules,
            pseudonym,
            tokens: settings.tokens,
            upstream: settings.upstream,
            caller_auth: settings.caller_auth,
            warnings: report.warnings(),
        },
        settings.body,
        settings.ip_allowlist,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_proxy::{MapEnv, ENV_AWS_STS_DURATION_SECS, ENV_SCHEME};

    const SALT: &str = "runtime-salt-7Qm2vX9kLp4RtZ8nWc3HyB6dFj1sGa5e";

    /// The settings of `start`, read from `pairs` only.
    fn read(host: Host, opts: &Options, pairs: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
        Settings::read(
            host,
            opts,
            &MapEnv::new(pairs),
            &reqwest::Client::new(),
            Problems::new(),
        )
    }

    fn settings_of(e: &ConfigErrors) -> Vec<&str> {
        e.problems().iter().map(|p| p.setting.as_str()).collect()
    }

    #[tokio::test]
    async fn a_good_configuration_builds_the_proxy() {
        let env = MapEnv::new(&[
            (ENV_CONNECTOR, "entra-id"),
            (ENV_SALT, SALT),
            (ENV_UPSTREAM_TOKEN, "graph-token"),
            (ENV_ALLOW_UNAUTHENTICATED, "true"),
            (ENV_CALLER_IP_ALLOWLIST, "10.0.0.0/8, ::1/128"),
        ]);
        let proxy = start(Host::Server, &Options::default(), &env, Problems::new())
            .await
            .unwrap();
        assert_eq!(proxy.health().connector, "entra-id");
    }

    #[tokio::test]
    async fn every_problem_of_every_part_is_reported_at_once() {
        let pairs = [
            (ENV_CONNECTOR, "exchange"),
            (ENV_SALT, "short"),
            (ENV_SCHEME, "rot13"),
            (ENV_ALLOW_UNAUTHENTICATED, "maybe"),
            (ENV_CALLER_IP_ALLOWLIST, "10.0.0.0/8,everyone"),
            (ENV_TOKEN_PROVIDER, "aws-sts"),
            (ENV_AWS_STS_DURATION_SECS, "5m"),
            (ENV_UPSTREAM, "http://graph.example"),
            (ENV_UPSTREAM_TIMEOUT, "0"),
            (ENV_UPSTREAM_MAX_BODY_MB, "64"),
            (ENV_BODY_BUDGET_MB, "16"),
            (ENV_PUBLIC_BASE_URL, "ftp://veil.example"),
        ];
        let e = read(Host::Server, &Options::default(), &pairs)
            .err()
            .expect("refused");
        assert_eq!(
            settings_of(&e),
            [
                ENV_CONNECTOR,
                ENV_SCHEME,
                ENV_ALLOW_UNAUTHENTICATED,
                ENV_CALLER_ISSUER,
                ENV_CALLER_IP_ALLOWLIST,
                ENV_TOKEN_PROVIDER,
                ENV_TOKEN_PROVIDER,
                ENV_TOKEN_PROVIDER,
                ENV_UPSTREAM,
                ENV_UPSTREAM_TIMEOUT,
                ENV_BODY_BUDGET_MB,
                ENV_PUBLIC_BASE_URL,
            ],
            "{}",
            e.report()
        );
        let report = e.report();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "12 configuration problems:", "{report}");
        for (line, expected) in lines[1..].iter().zip([
            "  - VEIL_CONNECTOR: ",
            "  - VEIL_SCHEME: unknown pseudonym scheme 'rot13'",
            "  - VEIL_ALLOW_UNAUTHENTICATED: `maybe` is neither `true` nor `false`",
            "  - no caller authentication is configured: set VEIL_CALLER_ISSUER",
            "  - VEIL_CALLER_IP_ALLOWLIST: `everyone` is not a CIDR range",
            "  - VEIL_TOKEN_PROVIDER=aws-sts: VEIL_AWS_STS_DURATION_SECS: `5m`",
            "  - VEIL_TOKEN_PROVIDER=aws-sts: aws-sts: no AWS credentials",
            "  - VEIL_TOKEN_PROVIDER=aws-sts: workload identity federation needs VEIL_TENANT_ID and VEIL_CLIENT_ID",
            "  - VEIL_UPSTREAM: the upstream base URL `http://graph.example` is plain http",
            "  - VEIL_UPSTREAM_TIMEOUT_SECS=`0` must be a positive whole number of seconds",
            "  - VEIL_BODY_BUDGET_MB (16 MiB) is smaller than one response may be",
            "  - VEIL_PUBLIC_BASE_URL: ",
        ]) {
            assert!(line.starts_with(expected), "{line}\n{report}");
        }
        // The salt's problem waits for a valid scheme (its strength depends on it).
        assert!(!report.contains("pseudonymization salt"), "{report}");
        // Secret values never appear.
        assert!(!report.contains("short"), "{report}");
    }

    #[tokio::test]
    async fn local_secrets_are_checked_with_the_rest() {
        let e = read(
            Host::Server,
            &Options {
                upstream: Some("ftp://graph.example".into()),
                public_base_url: Some("veil.example".into()),
                ..Options::default()
            },
            &[
                (ENV_CONNECTOR, "entra-id"),
                (ENV_SALT, "short"),
                (ENV_UPSTREAM_TOKEN, "graph-token"),
                (ENV_ALLOW_UNAUTHENTICATED, "1"),
            ],
        )
        .err()
        .expect("refused");
        assert_eq!(
            settings_of(&e),
            [ENV_SALT, "--upstream", "--public-base-url"],
            "{}",
            e.report()
        );
        assert!(
            e.report().contains(
                "  - the pseudonymization salt (env:VEIL_SALT) is too short for the hmac scheme"
            ),
            "{}",
            e.report()
        );
    }

    #[tokio::test]
    async fn caller_authentication_names_each_variable() {
        let e = read(
            Host::Lambda,
            &Options::default(),
            &[
                (ENV_CONNECTOR, "entra-id"),
                (ENV_SALT, SALT),
                (ENV_UPSTREAM_TOKEN, "graph-token"),
                (ENV_CALLER_ISSUER, "http://issuer.example"),
                (ENV_CALLER_JWKS_URL, "ftp://keys.example"),
            ],
        )
        .err()
        .expect("refused");
        assert_eq!(
            settings_of(&e),
            [
                ENV_CALLER_AUDIENCES,
                ENV_CALLER_SUBJECTS,
                ENV_CALLER_JWKS_URL
            ],
            "{}",
            e.report()
        );
        assert!(
            e.report()
                .contains("  - VEIL_CALLER_AUDIENCES: caller authentication: at least one audience is required"),
            "{}",
            e.report()
        );
    }

    #[tokio::test]
    async fn the_network_is_not_reached_while_a_local_problem_remains() {
        // The salt is in SSM, behind an endpoint nothing listens on: had it
        // been fetched, the error would say it could not be reached.
        let fixed: Vec<(&str, &str)> = vec![
            (ENV_CONNECTOR, "entra-id"),
            ("VEIL_SALT_SSM_PARAMETER", "/veil/salt"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            (ENV_UPSTREAM_TOKEN, "graph-token"),
            (ENV_ALLOW_UNAUTHENTICATED, "true"),
        ];
        let mut broken = fixed.clone();
        broken.push((ENV_UPSTREAM_MAX_BODY_MB, "lots"));
        let env = MapEnv::new(&broken);
        let e = start(Host::Server, &Options::default(), &env, Problems::new())
            .await
            .err()
            .expect("refused");
        let e = format!("{e:#}");
        assert!(
            e.starts_with("1 configuration problem:\n  - VEIL_UPSTREAM_MAX_BODY_MB=`lots`"),
            "{e}"
        );
        assert!(!e.contains("/veil/salt"), "{e}");
        // With the local problem fixed, the fetch is tried (and fails).
        let e = start(
            Host::Server,
            &Options::default(),
            &MapEnv::new(&fixed),
            Problems::new(),
        )
        .await
        .err()
        .expect("refused");
        let e = format!("{e:#}");
        assert!(
            e.starts_with("the pseudonymization salt (ssm:/veil/salt): "),
            "{e}"
        );
    }

    #[test]
    fn rules_name_the_flag_or_variable_at_fault() {
        let env = MapEnv::new(&[(ENV_RULES_VARIANT, "no-groups")]);
        let opts = |connector: &str| Options {
            connector: Some(connector.into()),
            ..Options::default()
        };
        // entra-id ships no `no-groups` variant: the variant is at fault.
        let e = rules_from(&opts("entra-id"), &env).unwrap_err();
        assert_eq!(e.setting, ENV_RULES_VARIANT, "{e}");
        let e = rules_from(&opts("exchange"), &env).unwrap_err();
        assert_eq!(e.setting, "--connector", "{e}");
        assert!(e.to_string().starts_with("--connector: "), "{e}");
        let missing = Options {
            rules: Some("/nonexistent/rules.yaml".into()),
            ..Options::default()
        };
        let e = rules_from(&missing, &env).unwrap_err();
        assert_eq!(e.setting, "--rules", "{e}");
        let e = rules_from(&Options::default(), &MapEnv::default()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no connector: give --connector NAME"),
            "{e}"
        );
        let (connector, _) = rules_from(
            &Options::default(),
            &MapEnv::new(&[
                (ENV_CONNECTOR, "outlook-mail"),
                (ENV_RULES_VARIANT, "no-groups"),
            ]),
        )
        .unwrap();
        assert_eq!(connector, "outlook-mail");
    }

    #[test]
    fn problems_of_the_host_come_first() {
        let mut host = Problems::new();
        host.add(ConfigError::invalid(
            "VEIL_METRICS_LISTEN",
            "`x` is not an address",
        ));
        let e = Settings::read(
            Host::Server,
            &Options::default(),
            &MapEnv::new(&[(ENV_UPSTREAM_TIMEOUT, "x")]),
            &reqwest::Client::new(),
            host,
        )
        .err()
        .expect("refused");
        assert_eq!(settings_of(&e)[0], "VEIL_METRICS_LISTEN");
        assert!(settings_of(&e).contains(&ENV_UPSTREAM_TIMEOUT));
    }
}
