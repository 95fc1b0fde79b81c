//! The OIDC issuer's configuration and its validation.

use jsonwebtoken::Algorithm;
use reqwest::Url;
use serde::Deserialize;

use super::jwks::required_kind;

/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub(super) const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Largest accepted leeway: more would make `exp` meaningless.
pub(super) const MAX_LEEWAY_SECS: u64 = 300;

/// How callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerAuthConfig {
    /// The exact `iss` required, e.g. `https://accounts.google.com`.
    pub issuer: String,
    /// `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Where the issuer's JWKS is; when absent, the `jwks_uri` of
    /// `{issuer}/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// Callers allowed by `sub`.
    pub allowed_subjects: Vec<String>,
    /// Callers allowed by `email` (only if the token says `email_verified: true`).
    pub allowed_emails: Vec<String>,
    /// Clock-skew allowance in seconds (default 60, at most 300).
    pub leeway_secs: u64,
    /// Accepted signing algorithms (default RS256 and ES256). HS* is never
    /// accepted; `none` cannot even be named.
    pub algorithms: Vec<Algorithm>,
}

impl Default for CallerAuthConfig {
    fn default() -> Self {
        CallerAuthConfig {
            issuer: String::new(),
            audiences: Vec::new(),
            jwks_url: None,
            allowed_subjects: Vec::new(),
            allowed_emails: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        }
    }
}

/// Where the issuer's keys are found.
pub(super) enum KeyLocation {
    /// The configured JWKS URL.
    Jwks(Url),
    /// The issuer's discovery document, which names the JWKS URL.
    Discovery(Url),
}

/// Why the caller-authentication settings cannot be used: the first
/// problem ([`CallerAuthConfig::problems`] lists them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcConfigError {
    /// A field at fault (`issuer`, `audiences`, …) and what is wrong.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("caller authentication: no place to fetch the keys from")]
    NoKeyLocation,
}

/// Why a URL keys would be fetched from is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum FetchUrlError {
    #[error("not a valid URL")]
    NotAUrl,
    #[error("must be an https URL")]
    NotHttps,
}

/// Parses a URL keys may be fetched from: HTTPS, or HTTP to a loopback host.
pub(super) fn fetch_url(url: &str) -> Result<Url, FetchUrlError> {
    let url = Url::parse(url).map_err(|_| FetchUrlError::NotAUrl)?;
    let loopback = url.host_str().is_some_and(crate::net::is_loopback_host);
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(FetchUrlError::NotHttps),
    }
}

/// Checks the configuration; returns where the keys are (the first
/// problem otherwise; [`CallerAuthConfig::problems`] lists them all).
pub(super) fn validate(config: &CallerAuthConfig) -> Result<KeyLocation, OidcConfigError> {
    let (location, problems) = check(config);
    match (location, problems.into_iter().next()) {
        (Some(location), None) => Ok(location),
        (_, Some((field, message))) => Err(OidcConfigError::Invalid { field, message }),
        (None, None) => Err(OidcConfigError::NoKeyLocation),
    }
}

impl CallerAuthConfig {
    /// Every problem of the configuration, each with the field at fault
    /// (`issuer`, `audiences`, `allowed_subjects`, `leeway_secs`,
    /// `algorithms`, `jwks_url`), so that a caller reading the fields from
    /// elsewhere can name its own settings. Empty when it is valid.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        check(self).1
    }
}

/// Where the keys are (when that could be worked out) and every problem.
fn check(config: &CallerAuthConfig) -> (Option<KeyLocation>, Vec<(&'static str, String)>) {
    const WHAT: &str = "caller authentication";
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String| problems.push((field, message));
    let issuer_ok = if config.issuer.trim().is_empty() {
        problem("issuer", format!("{WHAT}: issuer must not be empty"));
        false
    } else if config.issuer.trim() != config.issuer {
        problem(
            "issuer",
            format!("{WHAT}: issuer must not have surrounding whitespace"),
        );
        false
    } else {
        true
    };
    if config.audiences.is_empty() {
        problem(
            "audiences",
            format!("{WHAT}: at least one audience is required"),
        );
    } else if config.audiences.iter().any(|a| a.trim().is_empty()) {
        problem("audiences", format!("{WHAT}: audiences must not be empty"));
    }
    if config.allowed_subjects.is_empty() && config.allowed_emails.is_empty() {
        problem(
            "allowed_subjects",
            format!("{WHAT}: at least one allowed subject or email is required"),
        );
    } else if config
        .allowed_subjects
        .iter()
        .chain(&config.allowed_emails)
        .any(|a| a.trim().is_empty())
    {
        problem(
            "allowed_subjects",
            format!("{WHAT}: allowed subjects and emails must not be empty"),
        );
    }
    if config.leeway_secs > MAX_LEEWAY_SECS {
        problem(
            "leeway_secs",
            format!("{WHAT}: leeway must be at most {MAX_LEEWAY_SECS} seconds"),
        );
    }
    if config.algorithms.is_empty() {
        problem(
            "algorithms",
            format!("{WHAT}: at least one signing algorithm is required"),
        );
    }
    if let Some(alg) = config
        .algorithms
        .iter()
        .find(|alg| required_kind(**alg).is_none())
    {
        problem(
            "algorithms",
            format!(
                "{WHAT}: signing algorithm {alg:?} is not allowed (only asymmetric algorithms are)"
            ),
        );
    }
    let location = match &config.jwks_url {
        Some(url) => match fetch_url(url) {
            Ok(url) => Some(KeyLocation::Jwks(url)),
            Err(e) => {
                problem("jwks_url", format!("{WHAT}: jwks_url {e}"));
                None
            }
        },
        // An empty or padded issuer is reported above.
        None if !issuer_ok => None,
        None => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                config.issuer.trim_end_matches('/')
            );
            match fetch_url(&discovery) {
                Ok(url) => Some(KeyLocation::Discovery(url)),
                Err(e) => {
                    problem(
                        "issuer",
                        format!("{WHAT}: without jwks_url the issuer must be an https URL for discovery ({e})"),
                    );
                    None
                }
            }
        }
    };
    (location, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_listed_with_its_field() {
        let config = CallerAuthConfig {
            issuer: "http://issuer.example".into(),
            leeway_secs: MAX_LEEWAY_SECS + 1,
            ..CallerAuthConfig::default()
        };
        let fields: Vec<&str> = config.problems().iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["audiences", "allowed_subjects", "leeway_secs", "issuer"]
        );
        // The first one is what `validate` reports, as before.
        assert_eq!(
            validate(&config).err().map(|e| e.to_string()).as_deref(),
            Some("caller authentication: at least one audience is required")
        );
        let good = CallerAuthConfig {
            issuer: "https://issuer.example".into(),
            audiences: vec!["veil".into()],
            allowed_subjects: vec!["s".into()],
            ..CallerAuthConfig::default()
        };
        assert!(good.problems().is_empty());
        assert!(validate(&good).is_ok());
    }
}
