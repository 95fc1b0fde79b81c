//! Where the Graph token comes from: the token provider named by
//! `VEIL_TOKEN_PROVIDER` and, for workload identity federation, the host
//! identity and the Entra exchange.

use super::*;

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

pub(super) fn provider_help() -> String {
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
fn provider_kind(env: Lookup<'_>) -> Result<&'static str, ConfigError> {
    match env.get(ENV_TOKEN_PROVIDER) {
        Some(name) => TOKEN_PROVIDERS
            .iter()
            .copied()
            .find(|p| p.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                ConfigError::new(
                    ENV_TOKEN_PROVIDER,
                    format!(
                        "{ENV_TOKEN_PROVIDER}=`{}` is not a token provider: {}",
                        name.chars().take(40).collect::<String>(),
                        provider_help()
                    ),
                )
            }),
        None if env.get(ENV_UPSTREAM_TOKEN).is_some() => Ok("static"),
        None => Err(ConfigError::new(
            ENV_TOKEN_PROVIDER,
            format!("no Graph token provider is configured: {}", provider_help()),
        )),
    }
}

/// The federation from the process environment; `None` when the `static`
/// development token is configured.
pub fn federation(http: &reqwest::Client) -> anyhow::Result<Option<Federation>> {
    Ok(federation_from(http, &ProcessEnv)?)
}

/// [`federation`] with the variables read through `env`: the provider's
/// problems and the Entra exchange's, all of them.
pub(super) fn federation_from(
    http: &reqwest::Client,
    env: Lookup<'_>,
) -> Result<Option<Federation>, ConfigErrors> {
    let kind = provider_kind(env)?;
    let host: Result<Arc<dyn HostIdentity>, ProviderConfigError> = match kind {
        "static" => return Ok(None),
        "aws-sts" => AwsSts::from_lookup(http.clone(), env).map(|h| Arc::new(h) as _),
        "aws-cognito" => AwsCognito::from_lookup(http.clone(), env).map(|h| Arc::new(h) as _),
        "gcp" => gcp_identity_from_lookup(env).map(|h| Arc::new(h) as _),
        _ => file_identity_from_lookup(env).map(|h| Arc::new(h) as _),
    };
    let exchange = EntraConfig::from_lookup(env).map(|c| EntraExchange::new(c, http.clone()));
    // Each line of a provider's message is one problem, named with the provider.
    let named = |e: String| {
        e.lines()
            .map(|l| format!("{ENV_TOKEN_PROVIDER}={kind}: {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut problems = Problems::new();
    let host = problems.check_message(ENV_TOKEN_PROVIDER, host.map_err(|e| named(e.to_string())));
    let exchange = problems.check_message(
        ENV_TOKEN_PROVIDER,
        exchange.map_err(|e| named(e.to_string())),
    );
    problems.finish(|| {
        let exchange = exchange.expect("checked");
        Some(Federation {
            kind,
            host: host.expect("checked"),
            tenant: exchange.config().tenant_id.clone(),
            client_id: exchange.config().client_id.clone(),
            exchange,
        })
    })
}

/// The client the token provider calls Entra and the host identity with.
pub(super) fn token_http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(15))
        .build()
        .context("HTTP client")
}

/// The Graph token provider from the process environment: one per process
/// (its cache is shared by every request).
pub fn token_provider() -> anyhow::Result<Arc<dyn TokenProvider>> {
    Ok(tokens_from(&token_http()?, &ProcessEnv)?)
}

/// [`token_provider`] with the variables read through `env`.
pub(super) fn tokens_from(
    http: &reqwest::Client,
    env: Lookup<'_>,
) -> Result<Arc<dyn TokenProvider>, ConfigErrors> {
    match federation_from(http, env)? {
        Some(f) => Ok(Arc::new(FederatedTokens::new(f.host, f.exchange))),
        None => match env.get(ENV_UPSTREAM_TOKEN) {
            Some(t) => Ok(Arc::new(StaticToken::new(Secret::from(t.as_str())))),
            None => Err(ConfigError::missing(
                ENV_UPSTREAM_TOKEN,
                format!("the Graph token {ENV_TOKEN_PROVIDER}=static sends (development only)"),
            )
            .into()),
        },
    }
}
