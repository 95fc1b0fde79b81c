//! Pseudonyms (`t~…`) and reversible tokens (`p~…`).
//!
//! Two schemes produce the same output format:
//! - [`Scheme::Hmac`] (default): HMAC-SHA256 keyed by the salt; reversible
//!   tokens are AES-SIV with a key id inside the token, for key rotation.
//! - [`Scheme::Psoxy`]: SHA-256(identifier ‖ salt) and Psoxy's AES-CBC
//!   reversible format, so pseudonyms made by Psoxy stay the same.
//!
//! Module map: [`email`] (detection, canonicalization), [`hmac_scheme`],
//! [`psoxy_scheme`], [`encoding`] (output strings: `t~`, `p~`, `h~`, `e~`, JSON).

pub mod email;
pub mod encoding;
pub mod hmac_scheme;
pub mod psoxy_scheme;

use crate::secret::Secret;

/// Which pseudonym scheme is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Hmac,
    Psoxy,
}

impl std::str::FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "hmac" => Ok(Scheme::Hmac),
            "psoxy" => Ok(Scheme::Psoxy),
            other => Err(format!(
                "unknown pseudonym scheme '{other}': expected 'hmac' or 'psoxy'"
            )),
        }
    }
}

/// What happens to the domain of an email address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DomainPolicy {
    /// Keep `@domain` in its original case (default).
    #[default]
    Preserve,
    /// Drop the domain entirely.
    Redact,
    /// `@h~<hash of domain>`.
    Tokenize,
    /// `@e~<reversible token of domain>`.
    Encrypt,
}

/// How an email address is canonicalized before hashing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EmailPolicy {
    /// Remove `.` from the local part before hashing (Gmail-style).
    pub ignore_dots: bool,
    pub domain: DomainPolicy,
}

/// Output encoding of a pseudonym (Psoxy's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `t~<hash>` (or `p~<token>` when reversible), plus `@domain` for emails.
    #[default]
    UrlSafeToken,
    /// The bare 43-character base64url digest.
    UrlSafeHashOnly,
    /// A string holding `{"domain":…,"hash":…,"original":…,"reversible":…}`.
    Json,
}

/// Per-transform options for [`Pseudonymizer::pseudonymize`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PseudonymizeOptions {
    pub encoding: Encoding,
    pub include_original: bool,
    pub include_reversible: bool,
}

/// Key material and policies for building a [`Pseudonymizer`].
#[derive(Clone, Debug)]
pub struct PseudonymConfig {
    pub scheme: Scheme,
    /// The pseudonymization secret ("salt").
    pub salt: Secret,
    /// Encryption keys for reversible tokens, with their ids; the **first** is
    /// the newest and is used for new tokens. May be empty when no reversible
    /// output is needed (then `encrypt` fails with [`CryptoError::NoEncryptionKey`]).
    pub encryption_keys: Vec<(String, Secret)>,
    pub email: EmailPolicy,
}

/// Errors of the pseudonym layer. Messages never contain secrets or the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("{0}")]
    WeakSecret(String),
    #[error("no encryption key is configured for reversible tokens (set VEIL_ENCRYPTION_KEY)")]
    NoEncryptionKey,
    #[error("not a reversible token (expected the prefix 'p~')")]
    NotAToken,
    #[error("the token is malformed or was modified")]
    InvalidToken,
    #[error("the token was made with key id '{0}', which is not configured")]
    UnknownKeyId(String),
}

/// A ready-to-use pseudonymizer; cheap to share (`Arc`) across threads.
pub struct Pseudonymizer {
    _private: (),
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<keys redacted>)")
    }
}

impl Pseudonymizer {
    /// Validates the secrets (never empty; `hmac` requires ≥ 32 bytes) and
    /// derives keys once.
    pub fn new(_config: PseudonymConfig) -> Result<Self, CryptoError> {
        unimplemented!()
    }

    pub fn scheme(&self) -> Scheme {
        unimplemented!()
    }

    /// The 32-byte digest of a value after canonicalization (emails are
    /// canonicalized per the email policy; other values hashed as they are).
    pub fn digest(&self, _value: &str) -> [u8; 32] {
        unimplemented!()
    }

    /// Full pseudonym string for `value` per the options (`t~…@domain`,
    /// bare hash, `p~…`, or the JSON string form). `value` must be non-blank:
    /// callers map blank strings to null before calling.
    pub fn pseudonymize(
        &self,
        _value: &str,
        _opts: PseudonymizeOptions,
    ) -> Result<String, CryptoError> {
        unimplemented!()
    }

    /// Deterministic reversible token `p~…` of the exact value (no
    /// canonicalization, no domain handling).
    pub fn encrypt(&self, _value: &str) -> Result<String, CryptoError> {
        unimplemented!()
    }

    /// Inverse of [`Self::encrypt`]; also accepts tokens followed by
    /// `@domain` (the domain part is ignored). Rejects modified or forged tokens.
    pub fn decrypt(&self, _token: &str) -> Result<String, CryptoError> {
        unimplemented!()
    }
}
