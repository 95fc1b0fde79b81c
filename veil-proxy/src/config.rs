//! The pseudonym settings read from the environment: their variables
//! (the secrets' sources are in [`crate::secrets`], the token providers'
//! in [`crate::token`], the AWS client's in [`crate::aws`], the hosts' in
//! the binary) and how their values are parsed.

use veil_engine::pseudonym::{DomainPolicy, EmailPolicy, Scheme};
use veil_engine::secret::Secret;

use crate::env::Lookup;

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

/// Reads a variable of the process environment (see [`crate::env`]).
pub use crate::env::var;

/// Parses `kid:secret,kid:secret` (newest first) from `VEIL_ENCRYPTION_KEYS`.
pub fn parse_key_list(list: &str) -> Result<Vec<(String, Secret)>, String> {
    parse_key_list_from(ENV_ENCRYPTION_KEYS, list)
}

/// Parses `kid:secret,kid:secret` (newest first); errors name `origin`
/// (a variable or a [`crate::secrets::Source`]) and never the secret.
pub fn parse_key_list_from(origin: &str, list: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut out = Vec::new();
    for (i, item) in list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (kid, secret) = item
            .split_once(':')
            .ok_or_else(|| format!("{origin}: item {} is not `keyid:secret`", i + 1))?;
        out.push((kid.trim().to_string(), Secret::from(secret.trim())));
    }
    Ok(out)
}

/// Whether a boolean variable is set to `true`, `1` or `yes`; any other
/// non-empty value is an error that names the variable.
pub fn parse_flag(name: &str, value: Option<String>) -> Result<bool, String> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(_) => Err(format!("{name}: expected `true` or `false`")),
    }
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

/// The scheme and email policy from the environment (read through `env`);
/// `scheme` overrides `VEIL_SCHEME` when given.
pub fn pseudonym_settings(
    scheme: Option<Scheme>,
    env: Lookup<'_>,
) -> Result<(Scheme, EmailPolicy), String> {
    let scheme = match scheme {
        Some(s) => s,
        None => env
            .get(ENV_SCHEME)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or_default(),
    };
    let email = EmailPolicy {
        ignore_dots: env
            .get(ENV_EMAIL_IGNORE_DOTS)
            .is_some_and(|v| v == "true" || v == "1"),
        domain: env
            .get(ENV_EMAIL_DOMAIN)
            .map(|s| parse_domain_policy(&s))
            .transpose()?
            .unwrap_or_default(),
    };
    Ok((scheme, email))
}
