//! Where the pseudonymization salt and the encryption keys come from.
//!
//! Each of the two secrets comes from exactly one source (two = a
//! configuration error):
//!
//! | source | salt | encryption keys |
//! |---|---|---|
//! | the value itself | `VEIL_SALT` | `VEIL_ENCRYPTION_KEY` (kid `k1`) or `VEIL_ENCRYPTION_KEYS` (`kid:secret,…`) |
//! | a file (Cloud Run mounts Secret Manager secrets as files) | `VEIL_SALT_FILE` | `VEIL_ENCRYPTION_KEYS_FILE` |
//! | AWS SSM Parameter Store, a `SecureString` (name or ARN) | `VEIL_SALT_SSM_PARAMETER` | `VEIL_ENCRYPTION_KEYS_SSM_PARAMETER` |
//! | AWS Secrets Manager, the `SecretString` (name or ARN) | `VEIL_SALT_SECRET_ID` | `VEIL_ENCRYPTION_KEYS_SECRET_ID` |
//!
//! From a file, SSM or Secrets Manager one trailing line break is removed,
//! and the keys are either `kid:secret,kid:secret` (newest first) or one
//! bare secret without `:` (kid `k1`).
//!
//! The secrets are checked and the [`SecretsReport`] tells where each came
//! from, with a fingerprint, never the value (see [`veil_engine::secret`] for
//! why the fingerprint is no offline oracle). The checks:
//!
//! - present and not a published example value (compared case-insensitively,
//!   surrounding whitespace ignored: `SALT` and `salt ` are `salt`);
//! - strong enough for the scheme ([`veil_engine::check_secret_strength`]):
//!   `hmac` at least 32 bytes and about 128 bits of estimated entropy,
//!   `psoxy` at least 16 bytes and about 80 bits; in both, no long repeats,
//!   runs or word-like passphrases.
//!
//! A Psoxy deployment being migrated may have a weaker salt that must stay
//! (its pseudonyms depend on it). [`ENV_ALLOW_LEGACY_SHORT_SALT`] (or
//! `--allow-legacy-short-salt`, [`SecretOptions`]) admits it in the `psoxy`
//! scheme only; the report then says so ([`SecretsReport::legacy_short_salt`],
//! [`SecretsReport::warnings`]) for the health check and the startup log, and
//! the admitted secret's fingerprint is keyed with the other secret.

use std::fmt;

use serde_json::{json, Value};

use crate::aws::{self, AwsClient, AwsConfig, AwsErrorKind, Call, Lookup, Service};
use crate::config::{
    self, DEFAULT_KEY_ID, ENV_ALLOW_LEGACY_SHORT_SALT, ENV_ENCRYPTION_KEY, ENV_ENCRYPTION_KEYS,
    ENV_SALT,
};
use crate::env::{ConfigError, ConfigErrors, Problems};
use veil_engine::{check_secret_strength, PseudonymConfig, Scheme, Secret};

mod aws_sources;
mod plan;

use aws_sources::*;
#[cfg(test)]
pub use plan::load_pseudonym_config_with;
pub use plan::{load_pseudonym_config_opts, SecretsPlan};

/// A file holding the salt.
pub const ENV_SALT_FILE: &str = "VEIL_SALT_FILE";
/// An SSM Parameter Store `SecureString` parameter (name or ARN) holding the salt.
pub const ENV_SALT_SSM_PARAMETER: &str = "VEIL_SALT_SSM_PARAMETER";
/// A Secrets Manager secret (name or ARN) whose `SecretString` is the salt.
pub const ENV_SALT_SECRET_ID: &str = "VEIL_SALT_SECRET_ID";
/// A file holding the encryption keys.
pub const ENV_ENCRYPTION_KEYS_FILE: &str = "VEIL_ENCRYPTION_KEYS_FILE";
/// An SSM Parameter Store `SecureString` parameter (name or ARN) holding the encryption keys.
pub const ENV_ENCRYPTION_KEYS_SSM_PARAMETER: &str = "VEIL_ENCRYPTION_KEYS_SSM_PARAMETER";
/// A Secrets Manager secret (name or ARN) whose `SecretString` holds the encryption keys.
pub const ENV_ENCRYPTION_KEYS_SECRET_ID: &str = "VEIL_ENCRYPTION_KEYS_SECRET_ID";

/// Values that are never acceptable as secrets (the binary adds the
/// published example values of its documentation and goldens).
pub const WELL_KNOWN_SECRETS: &[&str] = &["salt", "secret", "changeme"];

/// How to make a good secret.
const GENERATE_HINT: &str = "generate one with `openssl rand -base64 32`";

/// Where a secret came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The value of an environment variable.
    Env(&'static str),
    /// A file path.
    File(String),
    /// An SSM parameter name or ARN.
    Ssm(String),
    /// A Secrets Manager secret name or ARN.
    SecretsManager(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "env:{name}"),
            Source::File(p) => write!(f, "file:{p}"),
            Source::Ssm(p) => write!(f, "ssm:{p}"),
            Source::SecretsManager(s) => write!(f, "secretsmanager:{s}"),
        }
    }
}

/// Which secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Salt,
    EncryptionKeys,
}

#[derive(Clone, Copy)]
enum Kind {
    Env,
    File,
    Ssm,
    SecretsManager,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Salt => "the pseudonymization salt",
            Which::EncryptionKeys => "the encryption keys",
        }
    }

    /// "is" or "are", to agree with [`Which::name`].
    fn is(self) -> &'static str {
        match self {
            Which::Salt => "is",
            Which::EncryptionKeys => "are",
        }
    }

    fn variables(self) -> &'static [(&'static str, Kind)] {
        match self {
            Which::Salt => &[
                (ENV_SALT, Kind::Env),
                (ENV_SALT_FILE, Kind::File),
                (ENV_SALT_SSM_PARAMETER, Kind::Ssm),
                (ENV_SALT_SECRET_ID, Kind::SecretsManager),
            ],
            Which::EncryptionKeys => &[
                (ENV_ENCRYPTION_KEYS, Kind::Env),
                (ENV_ENCRYPTION_KEY, Kind::Env),
                (ENV_ENCRYPTION_KEYS_FILE, Kind::File),
                (ENV_ENCRYPTION_KEYS_SSM_PARAMETER, Kind::Ssm),
                (ENV_ENCRYPTION_KEYS_SECRET_ID, Kind::SecretsManager),
            ],
        }
    }
}

/// The one configured source of a secret; `None` when none is set; an
/// error when several are.
pub fn source(which: Which, env: Lookup<'_>) -> Result<Option<Source>, String> {
    let set: Vec<(&'static str, Kind, String)> = which
        .variables()
        .iter()
        .filter_map(|(name, kind)| env.get(name).map(|v| (*name, *kind, v)))
        .collect();
    match set.as_slice() {
        [] => Ok(None),
        [(name, kind, value)] => Ok(Some(match kind {
            Kind::Env => Source::Env(name),
            Kind::File => Source::File(value.trim().to_string()),
            Kind::Ssm => Source::Ssm(value.trim().to_string()),
            Kind::SecretsManager => Source::SecretsManager(value.trim().to_string()),
        })),
        several => {
            let names: Vec<&str> = several.iter().map(|(n, _, _)| *n).collect();
            Err(format!(
                "{} {} configured more than once ({} are all set): set exactly one of {}",
                which.name(),
                which.is(),
                names.join(", "),
                which
                    .variables()
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// Where one secret came from and its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretOrigin {
    pub source: Source,
    /// [`Secret::fingerprint`] of the value.
    pub fingerprint: String,
}

/// Options of the secrets loader that the command line may set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SecretOptions {
    /// `--allow-legacy-short-salt`: admit a psoxy-scheme salt (and key) that
    /// fails the strength checks, for the migration of an existing Psoxy
    /// deployment. [`ENV_ALLOW_LEGACY_SHORT_SALT`] does the same.
    pub allow_legacy_short_salt: bool,
}

impl SecretOptions {
    /// These options, with [`ENV_ALLOW_LEGACY_SHORT_SALT`] read through `env`.
    pub fn with_env(self, env: Lookup<'_>) -> Result<SecretOptions, String> {
        let from_env = config::parse_flag(
            ENV_ALLOW_LEGACY_SHORT_SALT,
            env.get(ENV_ALLOW_LEGACY_SHORT_SALT),
        )
        .map_err(|e| e.to_string())?;
        Ok(SecretOptions {
            allow_legacy_short_salt: self.allow_legacy_short_salt || from_env,
        })
    }
}

/// Where the secrets came from, for the startup log and `veil doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsReport {
    pub salt: SecretOrigin,
    /// The source and, per key id (newest first), the fingerprint; `None`
    /// when no encryption key is configured.
    pub encryption_keys: Option<(Source, Vec<(String, String)>)>,
    /// A psoxy-scheme secret below the strength policy was admitted because
    /// [`SecretOptions::allow_legacy_short_salt`] (or
    /// [`ENV_ALLOW_LEGACY_SHORT_SALT`]) names a migration from Psoxy. The
    /// health check and the startup log must show it ([`Self::warnings`]).
    pub legacy_short_salt: bool,
}

impl SecretsReport {
    /// What an operator must be told about the secrets (for the health
    /// check's warnings and the startup log); empty when all is well.
    pub fn warnings(&self) -> Vec<String> {
        if self.legacy_short_salt {
            vec![format!(
                "a legacy Psoxy secret below the strength policy is in use (--allow-legacy-short-salt or {ENV_ALLOW_LEGACY_SHORT_SALT}): \
                 pseudonyms can be reversed by guessing it; plan a move to the hmac scheme with a \
                 generated salt ({GENERATE_HINT})"
            )]
        } else {
            Vec::new()
        }
    }

    /// One human-readable line per secret.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "salt: {} (fingerprint {})",
            self.salt.source, self.salt.fingerprint
        )];
        out.push(match &self.encryption_keys {
            Some((source, keys)) => format!(
                "encryption keys: {source}: {}",
                keys.iter()
                    .map(|(kid, fp)| format!("{kid} (fingerprint {fp})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "encryption keys: none (reversible p~ tokens are unavailable)".into(),
        });
        out.extend(self.warnings().into_iter().map(|w| format!("warning: {w}")));
        out
    }
}

/// Removes one trailing line break (`\n` or `\r\n`).
fn trim_line_break(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// Reads a secret from the environment or a file; `None` for AWS sources.
fn read_local(which: Which, source: &Source, env: Lookup<'_>) -> Option<Result<String, String>> {
    match source {
        Source::Env(name) => Some(
            env.get(name)
                .ok_or_else(|| format!("{} ({source}) is not set", which.name())),
        ),
        Source::File(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("{} ({source}): cannot read the file: {e}", which.name()))
                .and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| {
                        format!("{} ({source}): the file is not UTF-8 text", which.name())
                    })
                })
                .map(trim_line_break),
        ),
        Source::Ssm(_) | Source::SecretsManager(_) => None,
    }
}

/// Parses key content: `kid:secret,…` or one bare secret (kid `k1`).
fn parse_keys(source: &Source, content: &str) -> Result<Vec<(String, Secret)>, String> {
    let list = match source {
        Source::Env(name) if *name == ENV_ENCRYPTION_KEY => false,
        Source::Env(_) => true,
        _ => content.contains(':'),
    };
    if list {
        config::parse_key_list_from(&source.to_string(), content).map_err(|e| e.to_string())
    } else {
        Ok(vec![(DEFAULT_KEY_ID.to_string(), Secret::from(content))])
    }
}

/// Checks one secret: present, not published, strong enough for the
/// scheme. `Ok(true)` when it passed only because a legacy psoxy secret is
/// admitted.
fn check(
    what: &str,
    source: &Source,
    secret: &Secret,
    scheme: Scheme,
    well_known: &[&str],
    options: SecretOptions,
) -> Result<bool, String> {
    if secret.is_empty() {
        return Err(format!("{what} ({source}) is empty; {GENERATE_HINT}"));
    }
    if secret.is_published(well_known) {
        return Err(format!(
            "{what} ({source}): the value is a published example, not a secret; {GENERATE_HINT}"
        ));
    }
    let Some(problem) = check_secret_strength(scheme, secret) else {
        return Ok(false);
    };
    // "it is too short …" reads "<what> (<source>) is too short …".
    let problem = problem.strip_prefix("it ").unwrap_or(&problem);
    match scheme {
        Scheme::Psoxy if options.allow_legacy_short_salt => Ok(true),
        Scheme::Psoxy => Err(format!(
            "{what} ({source}) {problem}; {GENERATE_HINT}. If it is the secret of \
             an existing Psoxy deployment being migrated, set {ENV_ALLOW_LEGACY_SHORT_SALT}=true \
             (or --allow-legacy-short-salt) to keep it"
        )),
        Scheme::Hmac => Err(format!("{what} ({source}) {problem}; {GENERATE_HINT}")),
    }
}

fn missing_salt() -> String {
    format!(
        "{ENV_SALT} is not set: it holds the pseudonymization secret ({GENERATE_HINT}); or set \
         {ENV_SALT_FILE}, {ENV_SALT_SSM_PARAMETER} or {ENV_SALT_SECRET_ID} to where it is stored"
    )
}

fn legacy_only_for_psoxy(scheme: Scheme) -> String {
    format!(
        "{ENV_ALLOW_LEGACY_SHORT_SALT} (--allow-legacy-short-salt) is only for the psoxy \
         scheme, to keep the salt of a Psoxy deployment being migrated; the {} scheme needs \
         a generated salt ({GENERATE_HINT})",
        format!("{scheme:?}").to_lowercase()
    )
}

/// The variable that names `source`.
fn setting_of(which: Which, source: &Source) -> &'static str {
    match (which, source) {
        (_, Source::Env(name)) => name,
        (Which::Salt, Source::File(_)) => ENV_SALT_FILE,
        (Which::Salt, Source::Ssm(_)) => ENV_SALT_SSM_PARAMETER,
        (Which::Salt, Source::SecretsManager(_)) => ENV_SALT_SECRET_ID,
        (Which::EncryptionKeys, Source::File(_)) => ENV_ENCRYPTION_KEYS_FILE,
        (Which::EncryptionKeys, Source::Ssm(_)) => ENV_ENCRYPTION_KEYS_SSM_PARAMETER,
        (Which::EncryptionKeys, Source::SecretsManager(_)) => ENV_ENCRYPTION_KEYS_SECRET_ID,
    }
}

/// [`WELL_KNOWN_SECRETS`] and `extra`.
fn refused<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut well: Vec<&str> = WELL_KNOWN_SECRETS.to_vec();
    well.extend_from_slice(extra);
    well
}

/// Builds the configuration from the raw secrets: the one place that
/// turns sources into a [`PseudonymConfig`].
fn assemble(
    scheme: Option<Scheme>,
    env: Lookup<'_>,
    salt: (Source, String),
    keys: Option<(Source, String)>,
    well_known: &[&str],
    options: SecretOptions,
) -> Result<(PseudonymConfig, SecretsReport), String> {
    let (scheme, email) = config::pseudonym_settings(scheme, env)?;
    let options = options.with_env(env)?;
    if options.allow_legacy_short_salt && scheme != Scheme::Psoxy {
        return Err(legacy_only_for_psoxy(scheme));
    }
    let (salt_source, salt_value) = salt;
    let mut salt = Secret::from(salt_value.as_str());
    let weak_salt = check(
        Which::Salt.name(),
        &salt_source,
        &salt,
        scheme,
        well_known,
        options,
    )?;
    let mut weak_keys = false;
    let (encryption_keys, keys_report) = match keys {
        None => (Vec::new(), None),
        Some((source, content)) => {
            let keys = parse_keys(&source, &content)?;
            if keys.is_empty() {
                return Err(format!(
                    "{} ({source}): no key is given: give `kid:secret,…` or one secret",
                    Which::EncryptionKeys.name()
                ));
            }
            let mut weak = Vec::with_capacity(keys.len());
            for (kid, key) in &keys {
                weak.push(check(
                    &format!("encryption key `{kid}`"),
                    &source,
                    key,
                    scheme,
                    well_known,
                    options,
                )?);
            }
            weak_keys = weak.iter().any(|w| *w);
            // A weak (legacy) key's fingerprint is keyed with the salt.
            let keys: Vec<(String, Secret)> = keys
                .into_iter()
                .zip(weak)
                .map(|((kid, key), weak)| {
                    let key = if weak {
                        key.with_fingerprint_key(Some(&salt))
                    } else {
                        key
                    };
                    (kid, key)
                })
                .collect();
            (keys, Some(source))
        }
    };
    if weak_salt {
        // Keyed with the (first) encryption key; withheld without one.
        salt = salt.with_fingerprint_key(encryption_keys.first().map(|(_, k)| k));
    }
    let keys_report = keys_report.map(|source| {
        let fingerprints = encryption_keys
            .iter()
            .map(|(kid, k)| (kid.clone(), k.fingerprint()))
            .collect();
        (source, fingerprints)
    });
    let report = SecretsReport {
        salt: SecretOrigin {
            fingerprint: salt.fingerprint(),
            source: salt_source,
        },
        encryption_keys: keys_report,
        legacy_short_salt: weak_salt || weak_keys,
    };
    for w in report.warnings() {
        tracing::warn!(target: "veil::secrets", "{w}");
    }
    Ok((
        PseudonymConfig {
            scheme,
            salt,
            encryption_keys,
            email,
        },
        report,
    ))
}

/// Loads the secrets from the environment and files only (for commands
/// that run without AWS, such as `veil sanitize`); an AWS source is an
/// error that says so. Published example values are not refused here.
#[cfg(test)]
pub fn load_local(
    scheme: Option<Scheme>,
    env: Lookup<'_>,
) -> Result<(PseudonymConfig, SecretsReport), String> {
    load_local_with(scheme, env, SecretOptions::default())
}

/// [`load_local`] with options from the command line.
pub fn load_local_with(
    scheme: Option<Scheme>,
    env: Lookup<'_>,
    options: SecretOptions,
) -> Result<(PseudonymConfig, SecretsReport), String> {
    let local = |which: Which, source: Source| -> Result<(Source, String), String> {
        match read_local(which, &source, env) {
            Some(r) => r.map(|v| (source, v)),
            None => Err(format!(
                "{} {} in {source}, but this command reads secrets only from the environment or \
                 a file: set {} for it",
                which.name(),
                which.is(),
                match which {
                    Which::Salt => ENV_SALT,
                    Which::EncryptionKeys => ENV_ENCRYPTION_KEYS,
                }
            )),
        }
    };
    let salt = source(Which::Salt, env)?.ok_or_else(missing_salt)?;
    let keys = source(Which::EncryptionKeys, env)?;
    let salt = local(Which::Salt, salt)?;
    let keys = keys.map(|s| local(Which::EncryptionKeys, s)).transpose()?;
    assemble(scheme, env, salt, keys, &[], options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::lookup;

    const SALT: &str = "unit-salt-7Qm2vX9kLp4RtZ8nWc3HyB6dFj1sGa5e";
    const KEY: &str = "unit-key-Hs4Nq8Lw2Xe6Tz9Rb3Vm7Kp1Yc5Dg0Uf";

    #[test]
    fn two_sources_are_refused() {
        let e = source(
            Which::Salt,
            &lookup(&[(ENV_SALT, SALT), (ENV_SALT_SSM_PARAMETER, "/veil/salt")]),
        )
        .unwrap_err();
        assert!(
            e.starts_with("the pseudonymization salt is configured more than once (VEIL_SALT, VEIL_SALT_SSM_PARAMETER are all set)"),
            "{e}"
        );
        let e = source(
            Which::EncryptionKeys,
            &lookup(&[(ENV_ENCRYPTION_KEY, KEY), (ENV_ENCRYPTION_KEYS, "k1:x")]),
        )
        .unwrap_err();
        assert!(
            e.contains("VEIL_ENCRYPTION_KEYS, VEIL_ENCRYPTION_KEY"),
            "{e}"
        );
    }

    #[test]
    fn sources_are_named() {
        let s = source(Which::Salt, &lookup(&[(ENV_SALT_SECRET_ID, " veil/salt ")])).unwrap();
        assert_eq!(s, Some(Source::SecretsManager("veil/salt".into())));
        assert_eq!(s.unwrap().to_string(), "secretsmanager:veil/salt");
        assert_eq!(
            Source::Ssm("/veil/salt".into()).to_string(),
            "ssm:/veil/salt"
        );
        assert_eq!(source(Which::EncryptionKeys, &lookup(&[])).unwrap(), None);
    }

    #[test]
    fn env_values_load_as_before() {
        let (c, report) = load_local(
            None,
            &lookup(&[(ENV_SALT, SALT), (ENV_ENCRYPTION_KEY, KEY)]),
        )
        .unwrap();
        assert_eq!(c.salt.expose(), SALT.as_bytes());
        assert_eq!(c.encryption_keys.len(), 1);
        assert_eq!(c.encryption_keys[0].0, "k1");
        assert_eq!(report.salt.source, Source::Env(ENV_SALT));
        assert_eq!(report.salt.fingerprint, Secret::from(SALT).fingerprint());
        let lines = report.lines().join("\n");
        assert!(!lines.contains(SALT) && !lines.contains(KEY), "{lines}");
        assert!(
            lines.contains("salt: env:VEIL_SALT (fingerprint "),
            "{lines}"
        );
        let list = format!("k2:{KEY}x,k1:{KEY}");
        let (c, _) = load_local(
            None,
            &lookup(&[(ENV_SALT, SALT), (ENV_ENCRYPTION_KEYS, &list)]),
        )
        .unwrap();
        let kids: Vec<_> = c.encryption_keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kids, ["k2", "k1"]);
    }

    #[test]
    fn files_are_read_and_one_line_break_trimmed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let salt = dir.join("salt");
        std::fs::write(&salt, format!("{SALT}\r\n")).unwrap();
        let keys = dir.join("keys");
        std::fs::write(&keys, format!("{KEY}\n")).unwrap();
        let (c, report) = load_local(
            None,
            &lookup(&[
                (ENV_SALT_FILE, salt.to_str().unwrap()),
                (ENV_ENCRYPTION_KEYS_FILE, keys.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(c.salt.expose(), SALT.as_bytes());
        assert_eq!(c.encryption_keys[0].0, "k1");
        assert_eq!(c.encryption_keys[0].1.expose(), KEY.as_bytes());
        assert_eq!(
            report.salt.source.to_string(),
            format!("file:{}", salt.display())
        );
        let missing = dir.join("nope");
        let e =
            load_local(None, &lookup(&[(ENV_SALT_FILE, missing.to_str().unwrap())])).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the pseudonymization salt (file:{}): cannot read the file",
                missing.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn key_content_forms() {
        let f = Source::File("/k".into());
        let keys = parse_keys(&f, &format!("new:{KEY}, old:{KEY}y")).unwrap();
        assert_eq!(
            keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(),
            ["new", "old"]
        );
        let keys = parse_keys(&f, KEY).unwrap();
        assert_eq!(keys[0].0, "k1");
        let e = parse_keys(&f, &format!("a:{KEY},broken")).unwrap_err();
        assert!(
            e.starts_with("file:/k: item 2 is not `keyid:secret`"),
            "{e}"
        );
        // VEIL_ENCRYPTION_KEY is always one bare key, as before.
        let keys = parse_keys(&Source::Env(ENV_ENCRYPTION_KEY), "a:b").unwrap();
        assert_eq!(keys[0].0, "k1");
    }

    #[test]
    fn weak_secrets_name_the_secret_and_source() {
        let e = load_local(None, &lookup(&[])).unwrap_err();
        assert!(e.starts_with("VEIL_SALT is not set"), "{e}");
        assert!(e.contains("VEIL_SALT_SSM_PARAMETER"), "{e}");
        let e = load_local(None, &lookup(&[(ENV_SALT, "short")])).unwrap_err();
        assert_eq!(
            e,
            "the pseudonymization salt (env:VEIL_SALT) is too short for the hmac scheme: it needs \
             at least 32 bytes; generate one with `openssl rand -base64 32`"
        );
        let e = load_local(None, &lookup(&[(ENV_SALT, "   ")])).unwrap_err();
        assert!(e.contains("is too short"), "{e}");
        let e = load_local(
            None,
            &lookup(&[(ENV_SALT, SALT), (ENV_ENCRYPTION_KEYS, "k9:tiny")]),
        )
        .unwrap_err();
        assert!(
            e.starts_with("encryption key `k9` (env:VEIL_ENCRYPTION_KEYS) is too short"),
            "{e}"
        );
        let long_known = "Zq7-Lw2_Xe6.Tz9+Rb3!Vm7~Kp1=Yc5^Dg0";
        let (c, _) = load_local(None, &lookup(&[(ENV_SALT, long_known)])).unwrap();
        let e = check(
            "the pseudonymization salt",
            &Source::Env(ENV_SALT),
            &c.salt,
            Scheme::Hmac,
            &[&format!(" {} ", long_known.to_uppercase())],
            SecretOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.contains("(env:VEIL_SALT): the value is a published example"),
            "{e}"
        );
    }

    #[test]
    fn published_examples_match_loosely() {
        let http = reqwest::Client::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for salt in ["SALT", "salt ", " Changeme\n"] {
            let e = rt
                .block_on(load_pseudonym_config_with(
                    &http,
                    &lookup(&[(ENV_SALT, salt), (config::ENV_SCHEME, "psoxy")]),
                    &[],
                ))
                .unwrap_err();
            assert!(e.contains("published example"), "{salt:?}: {e}");
        }
    }

    #[test]
    fn low_entropy_secrets_are_refused() {
        for (salt, why) in [
            ("a".repeat(40), "too predictable"),
            ("0123456789abcdef0123456789abcdef".into(), "too predictable"),
            (
                "correct horse battery staple and a cloudy monday".into(),
                "mostly words",
            ),
            (
                "cli-test-salt-0123456789-0123456789-012345".into(),
                "too predictable",
            ),
        ] {
            let e = load_local(None, &lookup(&[(ENV_SALT, &salt)])).unwrap_err();
            assert!(
                e.starts_with("the pseudonymization salt (env:VEIL_SALT) is ") && e.contains(why),
                "{salt}: {e}"
            );
            assert!(!e.contains(&salt), "{e}");
        }
        let e = load_local(
            None,
            &lookup(&[(ENV_SALT, SALT), (ENV_ENCRYPTION_KEY, &"k".repeat(48))]),
        )
        .unwrap_err();
        assert!(
            e.starts_with("encryption key `k1` (env:VEIL_ENCRYPTION_KEY) is too predictable"),
            "{e}"
        );
    }

    #[test]
    fn psoxy_needs_16_strong_bytes_unless_a_legacy_salt_is_named() {
        let psoxy = |pairs: &[(&str, &str)]| {
            let mut all = vec![(config::ENV_SCHEME, "psoxy")];
            all.extend_from_slice(pairs);
            load_local(None, &lookup(&all))
        };
        // Psoxy's own example salt: refused, with the way out named.
        for weak in ["s", "salt", "Contoso2024!", "aaaaaaaaaaaaaaaaaaaa"] {
            let e = psoxy(&[(ENV_SALT, weak)]).unwrap_err();
            assert!(
                e.starts_with("the pseudonymization salt (env:VEIL_SALT) is ")
                    && e.contains("VEIL_ALLOW_LEGACY_SHORT_SALT=true")
                    && e.contains("--allow-legacy-short-salt"),
                "{weak}: {e}"
            );
        }
        // 16 random bytes are enough in the psoxy scheme.
        let (c, report) = psoxy(&[(ENV_SALT, "Xq8-Lw2Pz7Rb3Vm1")]).unwrap();
        assert_eq!(c.scheme, Scheme::Psoxy);
        assert!(!report.legacy_short_salt);
        assert!(report.warnings().is_empty());

        // The migration flag admits it, and says so.
        let legacy = [
            (ENV_SALT, "Contoso2024!"),
            (ENV_ENCRYPTION_KEY, "psoxy-key"),
            (ENV_ALLOW_LEGACY_SHORT_SALT, "true"),
        ];
        let (c, report) = psoxy(&legacy).unwrap();
        assert_eq!(c.salt.expose(), b"Contoso2024!");
        assert!(report.legacy_short_salt);
        let lines = report.lines().join("\n");
        assert!(lines.contains("warning: a legacy Psoxy secret"), "{lines}");
        assert!(!lines.contains("Contoso2024!") && !lines.contains("psoxy-key"));
        // Its fingerprint is keyed with the other secret: not the unkeyed one.
        assert_ne!(
            report.salt.fingerprint,
            Secret::from("Contoso2024!").fingerprint()
        );
        assert_eq!(report.salt.fingerprint, c.salt.fingerprint());
        let (_, other) = psoxy(&[
            (ENV_SALT, "Contoso2024!"),
            (ENV_ENCRYPTION_KEY, "another-psoxy-key"),
            (ENV_ALLOW_LEGACY_SHORT_SALT, "1"),
        ])
        .unwrap();
        assert_ne!(report.salt.fingerprint, other.salt.fingerprint);
        // Without an encryption key there is nothing to key it with.
        let (_, alone) = psoxy(&[
            (ENV_SALT, "Contoso2024!"),
            (ENV_ALLOW_LEGACY_SHORT_SALT, "yes"),
        ])
        .unwrap();
        assert_eq!(alone.salt.fingerprint, veil_engine::WITHHELD_FINGERPRINT);
        // The command-line option does the same as the variable.
        let mut all = vec![(config::ENV_SCHEME, "psoxy"), (ENV_SALT, "salt-2019")];
        let (_, r) = load_local_with(
            None,
            &lookup(&all),
            SecretOptions {
                allow_legacy_short_salt: true,
            },
        )
        .unwrap();
        assert!(r.legacy_short_salt);
        // Published examples stay refused, flag or not.
        all[1] = (ENV_SALT, "SALT");
        all.push((ENV_ALLOW_LEGACY_SHORT_SALT, "true"));
        let e = rt_load(&all).unwrap_err();
        assert!(e.contains("published example"), "{e}");
        // Only the psoxy scheme may keep a legacy salt; a bad value is named.
        let e = load_local(
            None,
            &lookup(&[(ENV_SALT, SALT), (ENV_ALLOW_LEGACY_SHORT_SALT, "true")]),
        )
        .unwrap_err();
        assert!(e.contains("is only for the psoxy scheme"), "{e}");
        let e = psoxy(&[(ENV_SALT, SALT), (ENV_ALLOW_LEGACY_SHORT_SALT, "maybe")]).unwrap_err();
        assert_eq!(
            e,
            "VEIL_ALLOW_LEGACY_SHORT_SALT: expected `true` or `false`"
        );
    }

    fn rt_load(pairs: &[(&str, &str)]) -> Result<(PseudonymConfig, SecretsReport), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(load_pseudonym_config_with(
            &reqwest::Client::new(),
            &lookup(pairs),
            &[],
        ))
    }

    #[test]
    fn aws_sources_are_refused_by_local_loading() {
        let e = load_local(None, &lookup(&[(ENV_SALT_SSM_PARAMETER, "/veil/salt")])).unwrap_err();
        assert!(
            e.starts_with("the pseudonymization salt is in ssm:/veil/salt, but this command reads secrets only from the environment or a file"),
            "{e}"
        );
    }

    #[test]
    fn arns_carry_their_region() {
        assert_eq!(
            arn_region(
                "arn:aws:ssm:eu-central-1:123456789012:parameter/veil/salt",
                "ssm"
            ),
            Some("eu-central-1".into())
        );
        assert_eq!(
            arn_region(
                "arn:aws:secretsmanager:us-east-2:1:secret:veil-AbCdEf",
                "secretsmanager"
            ),
            Some("us-east-2".into())
        );
        assert_eq!(arn_region("/veil/salt", "ssm"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket", "ssm"), None);
    }

    #[test]
    fn line_breaks() {
        assert_eq!(trim_line_break("a\n".into()), "a");
        assert_eq!(trim_line_break("a\r\n".into()), "a");
        assert_eq!(trim_line_break("a\n\n".into()), "a\n");
        assert_eq!(trim_line_break("a".into()), "a");
    }
}
