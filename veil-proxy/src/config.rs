//! The pseudonym settings read from the environment: their variables
//! (the secrets' sources are in [`crate::secrets`], the token providers'
//! in [`crate::token`], the AWS client's in [`crate::aws`], the hosts' in
//! the binary) and how their values are parsed.

use veil_engine::{DomainPolicy, EmailPolicy, Scheme, Secret};

use crate::env::{ConfigError, ConfigErrors, Lookup, Problems};

/// The pseudonymization secret ("salt").
pub const ENV_SALT: &str = "VEIL_SALT";
/// The encryption key for reversible `p~` tokens (key id `k1`).
pub const ENV_ENCRYPTION_KEY: &str = "VEIL_ENCRYPTION_KEY";
/// Several encryption keys, newest first: `kid:secret,kid:secret`.
pub const ENV_ENCRYPTION_KEYS: &str = "VEIL_ENCRYPTION_KEYS";
/// `hmac` (default) or `psoxy`.
pub const ENV_SCHEME: &str = "VEIL_SCHEME";
/// What happens to email domains: `preserve` (default), `redact`, `tokenize`, `encrypt`.
pub const ENV_EMAIL_DOMAIN: &str = "VEIL_EMAIL_DOMAIN_POLICY";
/// `true` to ignore dots in the local part of addresses when hashing.
pub const ENV_EMAIL_IGNORE_DOTS: &str = "VEIL_EMAIL_IGNORE_DOTS";
/// `true` to admit a short or low-entropy salt (and encryption key) in the
/// `psoxy` scheme: the secrets of an existing Psoxy deployment being
/// migrated, whose pseudonyms must stay the same. The command-line
/// equivalent is `--allow-legacy-short-salt`. Flagged in the health check
/// and the startup log.
pub const ENV_ALLOW_LEGACY_SHORT_SALT: &str = "VEIL_ALLOW_LEGACY_SHORT_SALT";
/// The key id used for `VEIL_ENCRYPTION_KEY`.
pub const DEFAULT_KEY_ID: &str = "k1";

/// A setting whose value cannot be read: the message names the variable
/// (or the source) and never the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{origin}: item {item} is not `keyid:secret`")]
    NotAKeyPair { origin: String, item: usize },
    #[error("{name}: expected `true` or `false`")]
    NotAFlag { name: String },
}

/// Parses `kid:secret,kid:secret` (newest first); errors name `origin`
/// (a variable or a [`crate::secrets::Source`]) and never the secret.
pub fn parse_key_list_from(
    origin: &str,
    list: &str,
) -> Result<Vec<(String, Secret)>, SettingError> {
    let mut out = Vec::new();
    for (i, item) in list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (kid, secret) = item
            .split_once(':')
            .ok_or_else(|| SettingError::NotAKeyPair {
                origin: origin.to_string(),
                item: i + 1,
            })?;
        out.push((kid.trim().to_string(), Secret::from(secret.trim())));
    }
    Ok(out)
}

/// Whether a boolean variable is set to `true`, `1` or `yes`; any other
/// non-empty value is an error that names the variable.
pub fn parse_flag(name: &str, value: Option<String>) -> Result<bool, SettingError> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(_) => Err(SettingError::NotAFlag {
            name: name.to_string(),
        }),
    }
}

fn domain_policy(s: &str) -> Result<DomainPolicy, ConfigError> {
    match s.to_ascii_lowercase().as_str() {
        "preserve" => Ok(DomainPolicy::Preserve),
        "redact" => Ok(DomainPolicy::Redact),
        "tokenize" => Ok(DomainPolicy::Tokenize),
        "encrypt" => Ok(DomainPolicy::Encrypt),
        o => Err(ConfigError::invalid(
            ENV_EMAIL_DOMAIN,
            format!("unknown policy `{o}` (preserve, redact, tokenize, encrypt)"),
        )),
    }
}

/// The scheme and email policy from the environment (read through `env`);
/// `scheme` overrides `VEIL_SCHEME` when given. Reports every problem.
pub fn pseudonym_settings(
    scheme: Option<Scheme>,
    env: Lookup<'_>,
) -> Result<(Scheme, EmailPolicy), ConfigErrors> {
    let mut problems = Problems::new();
    let scheme = match (scheme, env.get(ENV_SCHEME)) {
        (Some(s), _) => Some(s),
        (None, None) => Some(Scheme::default()),
        (None, Some(name)) => problems.check(
            name.parse()
                .map_err(|e: veil_engine::UnknownScheme| ConfigError::invalid(ENV_SCHEME, e)),
        ),
    };
    let domain = match env.get(ENV_EMAIL_DOMAIN) {
        None => Some(DomainPolicy::default()),
        Some(name) => problems.check(domain_policy(&name)),
    };
    let ignore_dots = env
        .get(ENV_EMAIL_IGNORE_DOTS)
        .is_some_and(|v| v == "true" || v == "1");
    problems.finish(|| {
        (
            scheme.unwrap_or_default(),
            EmailPolicy {
                ignore_dots,
                domain: domain.unwrap_or_default(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::lookup;

    #[test]
    fn pseudonym_settings_report_every_problem() {
        let (scheme, email) = pseudonym_settings(None, &lookup(&[])).unwrap();
        assert_eq!(
            (scheme, email.domain),
            (Scheme::default(), DomainPolicy::default())
        );
        let e = pseudonym_settings(
            None,
            &lookup(&[(ENV_SCHEME, "rot13"), (ENV_EMAIL_DOMAIN, "hide")]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "VEIL_SCHEME: unknown pseudonym scheme 'rot13': expected 'hmac' or 'psoxy'\n\
             VEIL_EMAIL_DOMAIN_POLICY: unknown policy `hide` (preserve, redact, tokenize, encrypt)"
        );
        // The command line's scheme wins over the variable.
        let (scheme, _) =
            pseudonym_settings(Some(Scheme::Psoxy), &lookup(&[(ENV_SCHEME, "rot13")])).unwrap();
        assert_eq!(scheme, Scheme::Psoxy);
    }
}
