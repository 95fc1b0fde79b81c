//! Where the secrets are, checked before anything goes to the network
//! ([`SecretsPlan`]), and then fetched and checked.

use super::*;

/// Where the secrets are and how they are checked, read from the
/// environment without fetching them: every problem of these settings
/// (no or two sources, scheme, email policy, the legacy flag, the AWS
/// client an AWS source needs) is found before anything goes to the
/// network. [`SecretsPlan::load`] then fetches and checks the secrets.
#[derive(Debug)]
pub struct SecretsPlan {
    salt: Source,
    keys: Option<Source>,
    client: Option<AwsClient>,
    options: SecretOptions,
}

impl SecretsPlan {
    /// Reads the settings through `env`; `options` are the command line's.
    pub fn from_lookup(
        http: &reqwest::Client,
        env: Lookup<'_>,
        options: SecretOptions,
    ) -> Result<SecretsPlan, ConfigErrors> {
        let mut problems = Problems::new();
        let salt = match source(Which::Salt, env) {
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                problems.add(ConfigError::new(ENV_SALT, missing_salt()));
                None
            }
            Err(e) => {
                problems.add(ConfigError::new(ENV_SALT, e));
                None
            }
        };
        let keys = problems.check_message(ENV_ENCRYPTION_KEYS, source(Which::EncryptionKeys, env));
        let settings = problems.absorb(config::pseudonym_settings(None, env));
        let options = problems.check_message(ENV_ALLOW_LEGACY_SHORT_SALT, options.with_env(env));
        if let (Some((scheme, _)), Some(options)) = (settings, options) {
            if options.allow_legacy_short_salt && scheme != Scheme::Psoxy {
                problems.add(ConfigError::new(
                    ENV_ALLOW_LEGACY_SHORT_SALT,
                    legacy_only_for_psoxy(scheme),
                ));
            }
        }
        let is_aws = |s: &Source| matches!(s, Source::Ssm(_) | Source::SecretsManager(_));
        let first_aws = [
            (Which::Salt, salt.as_ref()),
            (
                Which::EncryptionKeys,
                keys.as_ref().and_then(Option::as_ref),
            ),
        ]
        .into_iter()
        .find_map(|(which, s)| s.filter(|s| is_aws(s)).map(|s| (which, s)));
        let client = match first_aws {
            Some((which, source)) => match AwsConfig::from_lookup(env) {
                Ok(config) => Some(AwsClient::new(http.clone(), config)),
                Err(e) => {
                    problems.add(ConfigError::new(
                        setting_of(which, source),
                        format!("{} ({source}): {e}", which.name()),
                    ));
                    None
                }
            },
            None => None,
        };
        problems.finish(|| SecretsPlan {
            salt: salt.expect("checked"),
            keys: keys.expect("checked"),
            client,
            options: options.expect("checked"),
        })
    }

    /// Whether a secret is in AWS (so that [`SecretsPlan::load`] goes to
    /// the network).
    pub fn needs_aws(&self) -> bool {
        self.client.is_some()
    }

    /// [`SecretsPlan::load`] when no secret is in AWS: the environment and
    /// files only, no network. `None` when a secret is in AWS.
    pub fn load_local(
        &self,
        env: Lookup<'_>,
        well_known: &[&str],
    ) -> Option<Result<(PseudonymConfig, SecretsReport), String>> {
        if self.needs_aws() {
            return None;
        }
        let read = |which: Which, source: &Source| {
            read_local(which, source, env)
                .unwrap_or_else(|| Err(format!("{} ({source}): no AWS client", which.name())))
                .map(|v| (source.clone(), v))
        };
        let result = (|| {
            let salt = read(Which::Salt, &self.salt)?;
            let keys = match &self.keys {
                Some(s) => Some(read(Which::EncryptionKeys, s)?),
                None => None,
            };
            assemble(None, env, salt, keys, &refused(well_known), self.options)
        })();
        Some(result)
    }

    /// Fetches the secrets (from AWS when they are there) and checks them,
    /// refusing [`WELL_KNOWN_SECRETS`] and `well_known`.
    pub async fn load(
        self,
        env: Lookup<'_>,
        well_known: &[&str],
    ) -> Result<(PseudonymConfig, SecretsReport), String> {
        let salt = fetch(Which::Salt, self.salt, env, self.client.as_ref()).await?;
        let keys = match self.keys {
            Some(s) => Some(fetch(Which::EncryptionKeys, s, env, self.client.as_ref()).await?),
            None => None,
        };
        assemble(None, env, salt, keys, &refused(well_known), self.options)
    }
}

/// Reads one secret from wherever its source is.
async fn fetch(
    which: Which,
    source: Source,
    env: Lookup<'_>,
    client: Option<&AwsClient>,
) -> Result<(Source, String), String> {
    if let Some(r) = read_local(which, &source, env) {
        return r.map(|v| (source, v));
    }
    let client = client.ok_or_else(|| format!("{} ({source}): no AWS client", which.name()))?;
    read_aws(which, &source, client).await.map(|v| (source, v))
}

/// Loads the secrets from wherever `env` points, checks them (refusing
/// `well_known`) and says where each came from.
#[cfg(test)]
pub async fn load_pseudonym_config_with(
    http: &reqwest::Client,
    env: Lookup<'_>,
    well_known: &[&str],
) -> Result<(PseudonymConfig, SecretsReport), String> {
    load_pseudonym_config_opts(http, env, well_known, SecretOptions::default()).await
}

/// Loads the secrets from wherever `env` points, checks them (refusing
/// `well_known`) and says where each came from, with options from the
/// command line.
pub async fn load_pseudonym_config_opts(
    http: &reqwest::Client,
    env: Lookup<'_>,
    well_known: &[&str],
    options: SecretOptions,
) -> Result<(PseudonymConfig, SecretsReport), String> {
    SecretsPlan::from_lookup(http, env, options)?
        .load(env, well_known)
        .await
}
