//! Configuration read from the environment. Every variable Veil reads is a
//! named constant here, so an operator can find them all in one place.

use crate::pseudonym::{DomainPolicy, EmailPolicy, PseudonymConfig, Scheme};
use crate::secret::Secret;

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
/// The key id used for `VEIL_ENCRYPTION_KEY`.
pub const DEFAULT_KEY_ID: &str = "k1";

/// Reads a variable; empty counts as unset.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parses `kid:secret,kid:secret` (newest first).
pub fn parse_key_list(list: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut out = Vec::new();
    for (i, item) in list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (kid, secret) = item.split_once(':').ok_or_else(|| {
            format!(
                "{ENV_ENCRYPTION_KEYS}: item {} is not `keyid:secret`",
                i + 1
            )
        })?;
        out.push((kid.trim().to_string(), Secret::from(secret.trim())));
    }
    Ok(out)
}

/// Parses a domain policy name.
pub fn parse_domain_policy(s: &str) -> Result<DomainPolicy, String> {
    match s.to_ascii_lowercase().as_str() {
        "preserve" => Ok(DomainPolicy::Preserve),
        "redact" => Ok(DomainPolicy::Redact),
        "tokenize" => Ok(DomainPolicy::Tokenize),
        "encrypt" => Ok(DomainPolicy::Encrypt),
        o => Err(format!(
            "{ENV_EMAIL_DOMAIN}: unknown policy `{o}` (preserve, redact, tokenize, encrypt)"
        )),
    }
}

/// Builds the pseudonym configuration from the environment.
/// `scheme` overrides `VEIL_SCHEME` when given.
pub fn pseudonym_config_from_env(scheme: Option<Scheme>) -> Result<PseudonymConfig, String> {
    let scheme = match scheme {
        Some(s) => s,
        None => var(ENV_SCHEME)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_default(),
    };
    let salt = var(ENV_SALT).ok_or_else(|| {
        format!("{ENV_SALT} is not set: it holds the pseudonymization secret (generate one with `openssl rand -base64 32`)")
    })?;
    let encryption_keys = match (var(ENV_ENCRYPTION_KEYS), var(ENV_ENCRYPTION_KEY)) {
        (Some(list), _) => parse_key_list(&list)?,
        (None, Some(k)) => vec![(DEFAULT_KEY_ID.to_string(), Secret::from(k.as_str()))],
        (None, None) => Vec::new(),
    };
    let email = EmailPolicy {
        ignore_dots: var(ENV_EMAIL_IGNORE_DOTS).is_some_and(|v| v == "true" || v == "1"),
        domain: var(ENV_EMAIL_DOMAIN)
            .map(|s| parse_domain_policy(&s))
            .transpose()?
            .unwrap_or_default(),
    };
    Ok(PseudonymConfig {
        scheme,
        salt: Secret::from(salt.as_str()),
        encryption_keys,
        email,
    })
}
