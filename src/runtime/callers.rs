//! Who may call: the caller-authentication mode for a host (OIDC bearer
//! tokens, the Lambda IAM caller, or none for development) and the IP
//! allowlist, each setting checked with every problem reported.

use super::*;

/// Whether `VEIL_ALLOW_UNAUTHENTICATED` is `true` (or `1`); `false`, `0`
/// and unset are no; anything else is a problem.
fn allow_unauthenticated(env: Lookup<'_>) -> Result<bool, ConfigError> {
    match env.get(ENV_ALLOW_UNAUTHENTICATED) {
        None => Ok(false),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ConfigError::invalid(
                ENV_ALLOW_UNAUTHENTICATED,
                format!(
                    "`{}` is neither `true` nor `false` (`true` serves without caller authentication, for development only)",
                    v.chars().take(40).collect::<String>()
                ),
            )),
        },
    }
}

/// The caller-authentication mode for a host, with every problem of its
/// settings. The keys are fetched later, on the first request.
pub(super) fn caller_auth(
    host: Host,
    allow_unauthenticated_flag: bool,
    env: Lookup<'_>,
    http: reqwest::Client,
) -> Result<CallerAuthMode, ConfigErrors> {
    let mut problems = Problems::new();
    let allow_unauth = problems.check(allow_unauthenticated(env));
    let Some(issuer) = env.get(ENV_CALLER_ISSUER) else {
        let mode = match host {
            Host::Lambda => Some(CallerAuthMode::AwsIam {
                allowed_arns: list(env.get(ENV_ALLOWED_CALLER_ARNS)),
            }),
            Host::Server if allow_unauthenticated_flag || allow_unauth == Some(true) => {
                Some(CallerAuthMode::Unauthenticated)
            }
            Host::Server => {
                problems.add(ConfigError::new(
                    ENV_CALLER_ISSUER,
                    format!("no caller authentication is configured: set {ENV_CALLER_ISSUER}, {ENV_CALLER_AUDIENCES} and {ENV_CALLER_SUBJECTS} (or {ENV_CALLER_EMAILS}), or pass --allow-unauthenticated for development"),
                ));
                None
            }
        };
        return problems.finish(|| mode.expect("checked"));
    };
    let cfg = CallerAuthConfig {
        issuer,
        audiences: list(env.get(ENV_CALLER_AUDIENCES)),
        jwks_url: env.get(ENV_CALLER_JWKS_URL),
        allowed_subjects: list(env.get(ENV_CALLER_SUBJECTS)),
        allowed_emails: list(env.get(ENV_CALLER_EMAILS)),
        ..CallerAuthConfig::default()
    };
    for (field, problem) in cfg.problems() {
        let name = match field {
            "audiences" => ENV_CALLER_AUDIENCES,
            "allowed_subjects" => ENV_CALLER_SUBJECTS,
            "jwks_url" => ENV_CALLER_JWKS_URL,
            _ => ENV_CALLER_ISSUER,
        };
        problems.add(ConfigError::invalid(name, problem));
    }
    problems.finish(|| ())?;
    let auth = CallerAuth::new(cfg, http).map_err(|e| {
        ConfigError::invalid(ENV_CALLER_ISSUER, format!("caller authentication: {e}"))
    })?;
    Ok(CallerAuthMode::Oidc(auth))
}

/// `VEIL_CALLER_IP_ALLOWLIST`, every bad entry named.
pub(super) fn ip_allowlist(env: Lookup<'_>) -> Result<Vec<IpNet>, ConfigErrors> {
    let mut problems = Problems::new();
    let nets: Vec<IpNet> = list(env.get(ENV_CALLER_IP_ALLOWLIST))
        .iter()
        .filter_map(|s| {
            problems.check(s.parse::<IpNet>().map_err(|_| {
                ConfigError::invalid(
                    ENV_CALLER_IP_ALLOWLIST,
                    format!(
                        "`{}` is not a CIDR range (such as 10.0.0.0/8 or 2001:db8::/32)",
                        s.chars().take(60).collect::<String>()
                    ),
                )
            }))
        })
        .collect();
    problems.finish(|| nets)
}
