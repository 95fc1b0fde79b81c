//! Pseudonyms (`t~…`) and reversible tokens (`p~…`).
//!
//! Two schemes produce the same output format:
//! - [`Scheme::Hmac`] (default): HMAC-SHA256 keyed by the salt; reversible
//!   tokens are AES-SIV with a key id inside the token, for key rotation.
//! - [`Scheme::Psoxy`]: SHA-256(identifier ‖ salt) and Psoxy's AES-CBC
//!   reversible format, so pseudonyms made by Psoxy stay the same.
//!
//! Reversible tokens may carry a [`TokenKind`] (`user`, `chat`, …) bound
//! into the token, so a request parameter that takes one kind refuses the
//! others ([`Pseudonymizer::decrypt_expecting`]); tokens without a kind are
//! exactly the tokens made before kinds existed.
//!
//! Secrets: [`Pseudonymizer::new`] checks lengths (so Psoxy's published check
//! vectors build); [`check_strength`] is the stricter policy for secrets a
//! deployment configures (length, estimated entropy, no passphrases).
//!
//! Module map: [`email`] (detection, canonicalization), [`hmac_scheme`],
//! [`psoxy_scheme`], [`kind`] (token kinds), [`encoding`] (output strings:
//! `t~`, `p~`, `h~`, `e~`, JSON), [`cache`] (pseudonyms remembered across
//! documents, keyed so that no plaintext is kept).

pub(crate) mod cache;
pub(crate) mod email;
pub(crate) mod encoding;
pub(crate) mod hmac_scheme;
pub(crate) mod kind;
pub(crate) mod psoxy_scheme;

pub use kind::{TokenKind, UnknownTokenKind};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Which pseudonym scheme is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Hmac,
    Psoxy,
}

/// A name that is no [`Scheme`] (kept lower-cased, as the text shows it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pseudonym scheme '{0}': expected 'hmac' or 'psoxy'")]
pub struct UnknownScheme(pub String);

impl std::str::FromStr for Scheme {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, UnknownScheme> {
        match s.to_ascii_lowercase().as_str() {
            "hmac" => Ok(Scheme::Hmac),
            "psoxy" => Ok(Scheme::Psoxy),
            other => Err(UnknownScheme(other.to_string())),
        }
    }
}

/// What happens to the domain of an email address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DomainPolicy {
    /// Keep `@domain` (default): lower-cased in the `hmac` scheme, as it is
    /// in the `psoxy` scheme.
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

impl PseudonymizeOptions {
    /// One byte naming the options an output depends on (all but
    /// `include_original`, whose outputs are not cached).
    fn cache_tag(self) -> u8 {
        let encoding = match self.encoding {
            Encoding::UrlSafeToken => 0,
            Encoding::UrlSafeHashOnly => 1,
            Encoding::Json => 2,
        };
        encoding | u8::from(self.include_reversible) << 2
    }
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
    /// A token of another kind (or of none) where a kind is required.
    #[error("{}", wrong_kind_message(*expected, *found))]
    WrongKind {
        expected: TokenKind,
        found: Option<TokenKind>,
    },
    /// The decrypted value does not fit the place it would go; the reason
    /// never quotes the value.
    #[error("the decrypted value is not acceptable here: {0}")]
    UnacceptableValue(String),
}

fn wrong_kind_message(expected: TokenKind, found: Option<TokenKind>) -> String {
    match found {
        Some(f) => format!("this place takes a {expected} token, and this is a {f} token"),
        None => format!(
            "this place takes a {expected} token, and this token has no kind (made before \
             kinds, or by a rule without `kind`): fetch a fresh token"
        ),
    }
}

/// A ready-to-use pseudonymizer; cheap to share (`Arc`) across threads.
pub struct Pseudonymizer {
    scheme: Scheme,
    email: EmailPolicy,
    keys: Keys,
    /// [`Self::pseudonymize`]'s outputs, remembered across documents.
    cache: cache::Cache,
}

enum Keys {
    Hmac(hmac_scheme::HmacScheme),
    Psoxy(psoxy_scheme::PsoxyScheme),
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<keys redacted>)")
    }
}

/// Fewest bytes of a `psoxy`-scheme secret, unless a legacy short salt is
/// admitted for a migration (see [`check_strength`]).
pub(crate) const PSOXY_MIN_SECRET_LEN: usize = 16;
/// Fewest estimated bits ([`crate::secret::estimate`]) of an `hmac`-scheme secret.
pub(crate) const HMAC_MIN_BITS: f64 = 128.0;
/// Fewest estimated bits of a `psoxy`-scheme secret (unless legacy).
pub(crate) const PSOXY_MIN_BITS: f64 = 80.0;

/// The strength policy for secrets an operator configures: in the `hmac`
/// scheme at least [`hmac_scheme::MIN_SECRET_LEN`] bytes and
/// [`HMAC_MIN_BITS`] estimated bits; in the `psoxy` scheme at least
/// [`PSOXY_MIN_SECRET_LEN`] bytes and [`PSOXY_MIN_BITS`]; in both, not mostly
/// words (see [`crate::secret`]). Returns why `secret` falls short (naming no
/// part of it), or `None`.
///
/// [`Pseudonymizer::new`] checks lengths only (so Psoxy's published check
/// vectors still build); this stricter policy is applied where secrets enter
/// from a deployment (the secrets loader of `veil-proxy`).
pub fn check_strength(scheme: Scheme, secret: &Secret) -> Option<String> {
    let (min_len, min_bits) = match scheme {
        Scheme::Hmac => (hmac_scheme::MIN_SECRET_LEN, HMAC_MIN_BITS),
        Scheme::Psoxy => (PSOXY_MIN_SECRET_LEN, PSOXY_MIN_BITS),
    };
    if secret.is_empty() {
        return Some("it is empty".into());
    }
    if secret.len() < min_len {
        return Some(format!(
            "it is too short for the {} scheme: it needs at least {min_len} bytes",
            match scheme {
                Scheme::Hmac => "hmac",
                Scheme::Psoxy => "psoxy",
            }
        ));
    }
    secret.strength().problem(min_bits)
}

/// How to make a secret that passes the `hmac` scheme's checks.
const GENERATE_HINT: &str = "generate one with `openssl rand -base64 32` (the string is used as \
     raw bytes, exactly as given)";

/// Never empty; at least `min_len` bytes.
fn check_secret(what: &str, secret: &Secret, min_len: usize) -> Result<(), CryptoError> {
    if secret.is_empty() {
        return Err(CryptoError::WeakSecret(format!(
            "{what} is empty; {GENERATE_HINT}"
        )));
    }
    if secret.len() < min_len {
        return Err(CryptoError::WeakSecret(format!(
            "{what} is too short for the hmac scheme: it needs at least {min_len} bytes; \
             {GENERATE_HINT}"
        )));
    }
    Ok(())
}

impl Pseudonymizer {
    /// Validates the secrets (never empty; `hmac` requires ≥ 32 bytes) and
    /// derives keys once.
    ///
    /// In the `hmac` scheme key ids must be 1–16 characters of
    /// `[A-Za-z0-9_-]` and unique. A domain policy of
    /// [`DomainPolicy::Encrypt`] needs an encryption key
    /// ([`CryptoError::NoEncryptionKey`] otherwise). In the `psoxy` scheme
    /// only the first key is used (its id is not checked), and deriving it
    /// takes PBKDF2's 65 536 rounds.
    pub fn new(config: PseudonymConfig) -> Result<Self, CryptoError> {
        let PseudonymConfig {
            scheme,
            salt,
            encryption_keys,
            email,
        } = config;
        let min_len = match scheme {
            Scheme::Hmac => hmac_scheme::MIN_SECRET_LEN,
            Scheme::Psoxy => 1,
        };
        check_secret("the pseudonymization salt", &salt, min_len)?;
        for (i, (id, key)) in encryption_keys.iter().enumerate() {
            let valid_id = hmac_scheme::is_valid_key_id(id);
            if scheme == Scheme::Hmac {
                if !valid_id {
                    return Err(CryptoError::WeakSecret(format!(
                        "encryption key #{} has an invalid id: key ids are 1 to {} characters \
                         of A-Z, a-z, 0-9, '_' and '-'",
                        i + 1,
                        hmac_scheme::MAX_KEY_ID_LEN
                    )));
                }
                if encryption_keys[..i].iter().any(|(other, _)| other == id) {
                    return Err(CryptoError::WeakSecret(format!(
                        "encryption key id '{id}' is configured more than once"
                    )));
                }
            }
            let what = if valid_id {
                format!("encryption key '{id}'")
            } else {
                format!("encryption key #{}", i + 1)
            };
            check_secret(&what, key, min_len)?;
        }
        if email.domain == DomainPolicy::Encrypt && encryption_keys.is_empty() {
            return Err(CryptoError::NoEncryptionKey);
        }
        let keys = match scheme {
            Scheme::Hmac => Keys::Hmac(hmac_scheme::HmacScheme::new(&salt, &encryption_keys)?),
            Scheme::Psoxy => Keys::Psoxy(psoxy_scheme::PsoxyScheme::new(
                &salt,
                encryption_keys.first().map(|(_, k)| k),
            )),
        };
        let mut cache_key = Zeroizing::new([0u8; 16]);
        Hkdf::<Sha256>::new(None, salt.expose())
            .expand(cache::CACHE_KEY_INFO, &mut cache_key[..])
            .map_err(|_| {
                CryptoError::WeakSecret("the pseudonymization salt cannot key the cache".into())
            })?;
        Ok(Pseudonymizer {
            scheme,
            email,
            keys,
            cache: cache::Cache::new(*cache_key, cache::ENTRIES),
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The email policy in force.
    pub fn email_policy(&self) -> EmailPolicy {
        self.email
    }

    /// The 32-byte digest of a value after canonicalization (emails are
    /// canonicalized per the email policy; other values hashed as they are).
    pub fn digest(&self, value: &str) -> [u8; 32] {
        match email::parse_address(value) {
            Some(addr) => self.digest_email(&addr),
            None => self.raw_digest(value.as_bytes()),
        }
    }

    /// The scheme's digest of exactly these bytes (no canonicalization).
    pub fn raw_digest(&self, data: &[u8]) -> [u8; 32] {
        match &self.keys {
            Keys::Hmac(k) => k.digest(data),
            Keys::Psoxy(k) => k.digest(data),
        }
    }

    /// The digest of an email domain, lowercased (the `h~` domain token).
    pub fn hash_domain(&self, domain: &str) -> [u8; 32] {
        self.raw_digest(domain.to_lowercase().as_bytes())
    }

    fn digest_email(&self, addr: &email::Address<'_>) -> [u8; 32] {
        self.raw_digest(email::canonical(addr, self.email.ignore_dots).as_bytes())
    }

    /// Full pseudonym string for `value` per the options (`t~…@domain`,
    /// bare hash, `p~…`, or the JSON string form). `value` must be non-blank:
    /// callers map blank strings to null before calling.
    ///
    /// Outputs are remembered across calls ([`cache`]), except those that
    /// hold the value itself (`include_original`).
    pub fn pseudonymize(
        &self,
        value: &str,
        opts: PseudonymizeOptions,
    ) -> Result<String, CryptoError> {
        if opts.include_original {
            return self.compute_pseudonym(value, opts);
        }
        let key = self.cache.key(opts.cache_tag(), value);
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let out = self.compute_pseudonym(value, opts)?;
        self.cache.put(key, &out);
        Ok(out)
    }

    /// Appends the pseudonym of `value` to `out` as a JSON string when the
    /// cache holds it and it needs no escapes (see [`cache::Cache::get_json`]);
    /// returns whether it did. The streaming sanitizer's way to a
    /// pseudonym seen before, without building a string for it.
    pub(crate) fn write_cached_json(
        &self,
        value: &str,
        opts: PseudonymizeOptions,
        out: &mut Vec<u8>,
    ) -> bool {
        !opts.include_original
            && self
                .cache
                .get_json(self.cache.key(opts.cache_tag(), value), out)
    }

    /// [`Self::pseudonymize`] without the cache.
    fn compute_pseudonym(
        &self,
        value: &str,
        opts: PseudonymizeOptions,
    ) -> Result<String, CryptoError> {
        let addr = email::parse_address(value);
        let digest = match &addr {
            Some(a) => self.digest_email(a),
            None => self.raw_digest(value.as_bytes()),
        };
        match opts.encoding {
            Encoding::UrlSafeHashOnly => Ok(encoding::b64(&digest)),
            Encoding::UrlSafeToken => {
                let domain = match &addr {
                    Some(a) => self.domain_part(a.domain)?,
                    None => None,
                };
                let mut out = String::with_capacity(
                    3 + encoding::DIGEST_B64_LEN + domain.as_ref().map_or(0, |d| d.len()),
                );
                if opts.include_reversible {
                    out.push_str(encoding::REVERSIBLE_PREFIX);
                    encoding::push_b64(&mut out, &self.reversible_body(value, &digest)?);
                } else {
                    out.push_str(encoding::HASH_PREFIX);
                    encoding::push_b64(&mut out, &digest);
                }
                if let Some(d) = domain {
                    out.push('@');
                    out.push_str(&d);
                }
                Ok(out)
            }
            Encoding::Json => {
                let domain = match &addr {
                    Some(a) => self.domain_part(a.domain)?,
                    None => None,
                };
                let hash = encoding::b64(&digest);
                let reversible = if opts.include_reversible {
                    let mut t = String::from(encoding::REVERSIBLE_PREFIX);
                    encoding::push_b64(&mut t, &self.reversible_body(value, &digest)?);
                    Some(t)
                } else {
                    None
                };
                Ok(encoding::json(&encoding::JsonFields {
                    domain: domain.as_deref(),
                    hash: &hash,
                    original: opts.include_original.then_some(value),
                    reversible: reversible.as_deref(),
                }))
            }
        }
    }

    /// What follows `@` for an email's domain under the domain policy; `None`
    /// when the domain is redacted.
    fn domain_part<'a>(
        &self,
        domain: &'a str,
    ) -> Result<Option<std::borrow::Cow<'a, str>>, CryptoError> {
        use std::borrow::Cow;
        Ok(match self.email.domain {
            // Domains are case-insensitive: in the hmac scheme one person
            // has one pseudonym string everywhere (`Contoso.example` and
            // `contoso.example` alike). The psoxy scheme keeps Psoxy's output.
            DomainPolicy::Preserve
                if self.scheme == Scheme::Hmac && domain.chars().any(char::is_uppercase) =>
            {
                Some(Cow::Owned(domain.to_lowercase()))
            }
            DomainPolicy::Preserve => Some(Cow::Borrowed(domain)),
            DomainPolicy::Redact => None,
            DomainPolicy::Tokenize => {
                let mut s = String::from(encoding::DOMAIN_HASH_PREFIX);
                encoding::push_b64(&mut s, &self.hash_domain(domain));
                Some(Cow::Owned(s))
            }
            DomainPolicy::Encrypt => {
                let mut s = String::from(encoding::DOMAIN_ENCRYPTED_PREFIX);
                encoding::push_b64(&mut s, &self.encrypt_body(&domain.to_lowercase())?);
                Some(Cow::Owned(s))
            }
        })
    }

    /// The reversible body used by `pseudonymize`: in the `psoxy` scheme its
    /// hash is the pseudonym's digest (canonical for emails), as in Psoxy.
    fn reversible_body(&self, value: &str, digest: &[u8; 32]) -> Result<Vec<u8>, CryptoError> {
        match &self.keys {
            Keys::Hmac(k) => k.encrypt(value.as_bytes()),
            Keys::Psoxy(k) => k.encrypt_with_hash(value, digest),
        }
    }

    fn encrypt_body(&self, value: &str) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_body_kind(value, None)
    }

    fn encrypt_body_kind(
        &self,
        value: &str,
        kind: Option<TokenKind>,
    ) -> Result<Vec<u8>, CryptoError> {
        match &self.keys {
            Keys::Hmac(k) => k.encrypt_kind(value.as_bytes(), kind),
            // The psoxy scheme makes Psoxy's tokens, bit for bit, whatever
            // the rule's kind: a migrating client's stored tokens and its
            // joins on them keep working. Its slots are held by the
            // decrypted value's shape instead (see `decrypt_expecting`).
            Keys::Psoxy(k) => k.encrypt_kind(value, None),
        }
    }

    /// Deterministic reversible token `p~…` of the exact value (no
    /// canonicalization, no domain handling).
    pub fn encrypt(&self, value: &str) -> Result<String, CryptoError> {
        self.encrypt_kind(value, None)
    }

    /// [`Self::encrypt`] with `kind` bound into the token (see [`kind`]);
    /// `None` makes exactly the token [`Self::encrypt`] makes.
    pub fn encrypt_kind(
        &self,
        value: &str,
        kind: Option<TokenKind>,
    ) -> Result<String, CryptoError> {
        let body = self.encrypt_body_kind(value, kind)?;
        let mut out = String::with_capacity(2 + (body.len() * 4).div_ceil(3));
        out.push_str(encoding::REVERSIBLE_PREFIX);
        encoding::push_b64(&mut out, &body);
        Ok(out)
    }

    /// Inverse of [`Self::encrypt`]; also accepts tokens followed by
    /// `@domain` (the domain part is ignored). Rejects modified or forged tokens.
    pub fn decrypt(&self, token: &str) -> Result<String, CryptoError> {
        self.decrypt_kind(token).map(|(value, _)| value)
    }

    /// [`Self::decrypt`], also returning the kind bound into the token
    /// (`None` for a token without one).
    pub fn decrypt_kind(&self, token: &str) -> Result<(String, Option<TokenKind>), CryptoError> {
        let body = encoding::reversible_body(token)?;
        match &self.keys {
            Keys::Hmac(k) => k.decrypt_kind(&body),
            Keys::Psoxy(k) => k.decrypt_kind(&body),
        }
    }

    /// Decrypts a token for a place that takes tokens of `expected` kind:
    /// any token where `expected` is `None`, else only a token of exactly
    /// that kind ([`CryptoError::WrongKind`] otherwise, also for a token
    /// without a kind).
    ///
    /// In the psoxy scheme, whose tokens are Psoxy's and carry no kind
    /// ([`Self::encrypt_kind`]), a token without a kind is accepted where a
    /// kind is expected; the caller then holds the slot by the decrypted
    /// value's shape (`reidentify` checks it for every kind: a GUID or an
    /// address for a user, `19:…@thread.v2` for a chat, …). A token that
    /// does carry another kind is refused in both schemes.
    pub fn decrypt_expecting(
        &self,
        token: &str,
        expected: Option<TokenKind>,
    ) -> Result<String, CryptoError> {
        let (value, found) = self.decrypt_kind(token)?;
        let kindless_psoxy = found.is_none() && matches!(self.keys, Keys::Psoxy(_));
        match expected {
            Some(e) if found != Some(e) && !kindless_psoxy => {
                Err(CryptoError::WrongKind { expected: e, found })
            }
            _ => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    const SALT32: &str = "0123456789abcdef0123456789abcdef";
    const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-key-a";
    const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-key-b";

    fn config(scheme: Scheme, salt: &str, keys: &[(&str, &str)]) -> PseudonymConfig {
        PseudonymConfig {
            scheme,
            salt: Secret::from(salt),
            encryption_keys: keys
                .iter()
                .map(|(id, k)| (id.to_string(), Secret::from(*k)))
                .collect(),
            email: EmailPolicy::default(),
        }
    }

    fn hmac_with(email: EmailPolicy) -> Pseudonymizer {
        let mut c = config(Scheme::Hmac, SALT32, &[("a", KEY_A)]);
        c.email = email;
        Pseudonymizer::new(c).unwrap()
    }

    fn domain_policy(domain: DomainPolicy) -> Pseudonymizer {
        hmac_with(EmailPolicy {
            ignore_dots: false,
            domain,
        })
    }

    static HMAC: LazyLock<Pseudonymizer> = LazyLock::new(|| hmac_with(EmailPolicy::default()));
    /// Psoxy's check-vector configuration (PBKDF2 is slow: built once).
    static PSOXY: LazyLock<Pseudonymizer> = LazyLock::new(|| {
        Pseudonymizer::new(config(Scheme::Psoxy, "salt", &[("k", "secret")])).unwrap()
    });
    /// Every option set the cache keys, and `include_original`, which it
    /// never caches.
    fn all_options() -> Vec<PseudonymizeOptions> {
        let mut all = Vec::new();
        for encoding in [
            Encoding::UrlSafeToken,
            Encoding::UrlSafeHashOnly,
            Encoding::Json,
        ] {
            for include_reversible in [false, true] {
                for include_original in [false, true] {
                    all.push(PseudonymizeOptions {
                        encoding,
                        include_original,
                        include_reversible,
                    });
                }
            }
        }
        all
    }

    const CACHE_PROBES: [&str; 6] = [
        "alice@contoso.example",
        "Alice <ALICE@Contoso.example>",
        "a.b+news@contoso.example",
        "\"q u\"@contoso.example",
        "not an address",
        "8f0e3c52-6a1d-4b8e-9c2f-1d7a5e4b3c21",
    ];

    #[test]
    fn cached_pseudonyms_are_the_computed_ones() {
        let fresh = hmac_with(EmailPolicy::default());
        for p in [&fresh, &*PSOXY] {
            for opts in all_options() {
                for v in CACHE_PROBES {
                    let computed = p.compute_pseudonym(v, opts).unwrap();
                    assert_eq!(p.pseudonymize(v, opts).unwrap(), computed, "{v} {opts:?}");
                    assert_eq!(p.pseudonymize(v, opts).unwrap(), computed, "{v} {opts:?}");
                }
            }
        }
        assert!(fresh.cache.len() > 0);
        // Outputs that hold the original value are never remembered.
        let original = hmac_with(EmailPolicy::default());
        for opts in all_options().into_iter().filter(|o| o.include_original) {
            for v in CACHE_PROBES {
                original.pseudonymize(v, opts).unwrap();
            }
        }
        assert_eq!(original.cache.len(), 0);
    }

    #[test]
    fn the_cache_is_per_secret() {
        let a = hmac_with(EmailPolicy::default());
        let b =
            Pseudonymizer::new(config(Scheme::Hmac, &SALT32.repeat(2), &[("a", KEY_A)])).unwrap();
        let opts = PseudonymizeOptions::default();
        let v = "alice@contoso.example";
        assert_ne!(
            a.pseudonymize(v, opts).unwrap(),
            b.pseudonymize(v, opts).unwrap()
        );
        assert_ne!(a.cache.key(0, v), b.cache.key(0, v));
    }

    static PSOXY_OTHER_KEY: LazyLock<Pseudonymizer> = LazyLock::new(|| {
        Pseudonymizer::new(config(Scheme::Psoxy, "salt", &[("k", "other")])).unwrap()
    });
    static PSOXY_OTHER_SALT: LazyLock<Pseudonymizer> = LazyLock::new(|| {
        Pseudonymizer::new(config(Scheme::Psoxy, "pepper", &[("k", "secret")])).unwrap()
    });

    const OPTS: PseudonymizeOptions = PseudonymizeOptions {
        encoding: Encoding::UrlSafeToken,
        include_original: false,
        include_reversible: false,
    };

    fn opts(
        encoding: Encoding,
        include_original: bool,
        include_reversible: bool,
    ) -> PseudonymizeOptions {
        PseudonymizeOptions {
            encoding,
            include_original,
            include_reversible,
        }
    }

    const PSOXY_P_VECTOR: &str = "p~SIoJOpeSgYF7YUPQ28IWZexVuHyN9A80SJXrbfawKpDRcddGnKI4QDKyjQI9KtjJZDb8FZ27UE_toS68FyWz7Y22fnQYLP91SHJGVwQiN3E";

    #[test]
    fn psoxy_check_vectors() {
        let p = &*PSOXY;
        assert_eq!(p.scheme(), Scheme::Psoxy);
        assert_eq!(
            p.pseudonymize("Alice@worklytics.onmicrosoft.com", OPTS)
                .unwrap(),
            "t~80OuLKaSEacbENaFngf3v1Ul1rcs-6BmJRZsfb9scss@worklytics.onmicrosoft.com"
        );
        assert_eq!(
            p.pseudonymize("87d349ed-44d7-43e1-9a83-5f2406dee5bd", OPTS)
                .unwrap(),
            "t~GIahqS6f7LWgiuhAm2FdsUTe3olu5_uafg6X_8R1Xds"
        );
        assert_eq!(
            p.encrypt("48d31887-5fad-4d73-a9f5-3c356e68a038").unwrap(),
            PSOXY_P_VECTOR
        );
        assert_eq!(
            p.decrypt(PSOXY_P_VECTOR).unwrap(),
            "48d31887-5fad-4d73-a9f5-3c356e68a038"
        );
        // pseudonymize with a reversible part: same token for a non-email.
        assert_eq!(
            p.pseudonymize(
                "48d31887-5fad-4d73-a9f5-3c356e68a038",
                opts(Encoding::UrlSafeToken, false, true)
            )
            .unwrap(),
            PSOXY_P_VECTOR
        );
    }

    #[test]
    fn psoxy_reversible_email_uses_canonical_hash_and_decrypts() {
        let p = &*PSOXY;
        let value = "Alice@Worklytics.onmicrosoft.com";
        let t = p
            .pseudonymize(value, opts(Encoding::UrlSafeToken, false, true))
            .unwrap();
        let (token, domain) = t.split_once('@').unwrap();
        assert_eq!(domain, "Worklytics.onmicrosoft.com");
        let body = encoding::decode_b64(&token[2..]).unwrap();
        assert_eq!(body[..32], p.digest(value));
        assert_eq!(p.decrypt(&t).unwrap(), value);
        // encrypt() hashes the exact value instead; both decrypt.
        let e = p.encrypt(value).unwrap();
        assert_ne!(e, token);
        assert_eq!(p.decrypt(&e).unwrap(), value);
    }

    #[test]
    fn psoxy_digest_is_sha256_value_then_salt() {
        use sha2::{Digest, Sha256};
        let expected: [u8; 32] = Sha256::digest(b"alice@x.comsalt").into();
        assert_eq!(PSOXY.digest("Alice+news@X.com"), expected);
        let raw: [u8; 32] = Sha256::digest(b" Bob salt").into();
        assert_eq!(PSOXY.digest(" Bob "), raw);
    }

    #[test]
    fn email_detection_and_canonicalization() {
        let p = &*HMAC;
        let d = |v: &str| p.digest(v);
        let alice = d("alice@example.com");
        assert_eq!(alice, p.raw_digest(b"alice@example.com"));
        assert_eq!(d("ALICE@Example.COM"), alice);
        assert_eq!(d("alice+newsletter@example.com"), alice);
        assert_eq!(d("Alice Smith <Alice+x@example.com>"), alice);
        assert_eq!(d("\"Smith, Alice\" <alice@example.com>"), alice);
        assert_ne!(d("a.lice@example.com"), alice);
        // Non-emails are hashed exactly as they are.
        for v in [
            "Alice",
            " alice ",
            "ALICE",
            "alice@",
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        ] {
            assert_eq!(d(v), p.raw_digest(v.as_bytes()), "{v:?}");
        }
        assert_ne!(d("Bob"), d("bob"));
        // The domain is lower-cased in the output (hmac scheme): one
        // person, one pseudonym string.
        let out = p
            .pseudonymize("Alice Smith <Alice+x@Example.COM>", OPTS)
            .unwrap();
        let plain = p.pseudonymize("alice@example.com", OPTS).unwrap();
        assert_eq!(out.split_once('@').unwrap().1, "example.com");
        assert_eq!(
            out.split_once('@').unwrap().0,
            plain.split_once('@').unwrap().0
        );
    }

    #[test]
    fn ignore_dots() {
        let dots = hmac_with(EmailPolicy {
            ignore_dots: true,
            domain: DomainPolicy::Preserve,
        });
        assert_eq!(
            dots.digest("a.l.ice@example.com"),
            dots.digest("alice@example.com")
        );
        assert_eq!(
            dots.digest("A.lice+x.y@example.com"),
            dots.raw_digest(b"alice@example.com")
        );
        // Dots in non-emails and in the domain stay.
        assert_ne!(dots.digest("a.b"), dots.digest("ab"));
        assert_ne!(dots.digest("a@mail.x.com"), dots.digest("a@mailx.com"));
        assert_ne!(
            HMAC.digest("a.lice@example.com"),
            HMAC.digest("alice@example.com")
        );
    }

    #[test]
    fn url_safe_token_and_hash_only() {
        let p = &*HMAC;
        let t = p.pseudonymize("bob", OPTS).unwrap();
        assert!(t.starts_with("t~"));
        assert_eq!(t.len(), 2 + 43);
        assert_eq!(&t[2..], encoding::b64(&p.digest("bob")));
        let e = p.pseudonymize("Bob@X.com", OPTS).unwrap();
        assert_eq!(
            e,
            format!("t~{}@x.com", encoding::b64(&p.digest("bob@x.com")))
        );

        let h = opts(Encoding::UrlSafeHashOnly, false, false);
        assert_eq!(p.pseudonymize("bob", h).unwrap(), &t[2..]);
        assert_eq!(p.pseudonymize("Bob@X.com", h).unwrap(), &e[2..45]);
        // Hash-only ignores the reversible flag.
        let hr = opts(Encoding::UrlSafeHashOnly, true, true);
        assert_eq!(p.pseudonymize("Bob@X.com", hr).unwrap().len(), 43);
    }

    #[test]
    fn url_safe_token_reversible() {
        let p = &*HMAC;
        let r = opts(Encoding::UrlSafeToken, false, true);
        let t = p.pseudonymize("bob", r).unwrap();
        assert!(t.starts_with("p~"));
        assert_eq!(t, p.encrypt("bob").unwrap());
        assert_eq!(p.decrypt(&t).unwrap(), "bob");
        let e = p.pseudonymize("Bob+x@Example.com", r).unwrap();
        assert_eq!(
            e,
            format!("{}@example.com", p.encrypt("Bob+x@Example.com").unwrap())
        );
        assert_eq!(p.decrypt(&e).unwrap(), "Bob+x@Example.com");
        // include_original is ignored for this encoding.
        assert_eq!(
            p.pseudonymize("bob", opts(Encoding::UrlSafeToken, true, false))
                .unwrap(),
            p.pseudonymize("bob", OPTS).unwrap()
        );
    }

    #[test]
    fn json_encoding_fields_and_order() {
        let p = &*HMAC;
        let hash = encoding::b64(&p.digest("bob@x.com"));
        let rev = p.encrypt("Bob@X.com").unwrap();
        let j = |o, r| {
            p.pseudonymize("Bob@X.com", opts(Encoding::Json, o, r))
                .unwrap()
        };
        assert_eq!(
            j(false, false),
            format!(r#"{{"domain":"x.com","hash":"{hash}"}}"#)
        );
        assert_eq!(
            j(true, false),
            format!(r#"{{"domain":"x.com","hash":"{hash}","original":"Bob@X.com"}}"#)
        );
        assert_eq!(
            j(false, true),
            format!(r#"{{"domain":"x.com","hash":"{hash}","reversible":"{rev}"}}"#)
        );
        assert_eq!(
            j(true, true),
            format!(
                r#"{{"domain":"x.com","hash":"{hash}","original":"Bob@X.com","reversible":"{rev}"}}"#
            )
        );
        // Non-emails have no domain; the original is JSON-escaped.
        let v = "say \"hi\"\n";
        let h = encoding::b64(&p.digest(v));
        let rv = p.encrypt(v).unwrap();
        assert_eq!(
            p.pseudonymize(v, opts(Encoding::Json, true, true)).unwrap(),
            format!(r#"{{"hash":"{h}","original":"say \"hi\"\n","reversible":"{rv}"}}"#)
        );
        assert_eq!(
            p.pseudonymize(v, opts(Encoding::Json, false, false))
                .unwrap(),
            format!(r#"{{"hash":"{h}"}}"#)
        );
        let parsed: serde_json::Value = serde_json::from_str(&j(true, true)).unwrap();
        assert_eq!(
            p.decrypt(parsed["reversible"].as_str().unwrap()).unwrap(),
            "Bob@X.com"
        );
    }

    #[test]
    fn domain_policies() {
        let v = "Alice@Example.COM";
        let local = encoding::b64(&HMAC.digest(v));

        let keep = domain_policy(DomainPolicy::Preserve);
        assert_eq!(
            keep.pseudonymize(v, OPTS).unwrap(),
            format!("t~{local}@example.com")
        );
        // The psoxy scheme keeps Psoxy's output: the domain as written.
        assert!(PSOXY
            .pseudonymize(v, OPTS)
            .unwrap()
            .ends_with("@Example.COM"));

        let redact = domain_policy(DomainPolicy::Redact);
        assert_eq!(redact.pseudonymize(v, OPTS).unwrap(), format!("t~{local}"));
        assert_eq!(
            redact
                .pseudonymize(v, opts(Encoding::Json, false, false))
                .unwrap(),
            format!(r#"{{"hash":"{local}"}}"#)
        );
        let rt = redact
            .pseudonymize(v, opts(Encoding::UrlSafeToken, false, true))
            .unwrap();
        assert!(!rt.contains('@'));
        assert_eq!(redact.decrypt(&rt).unwrap(), v);

        let tok = domain_policy(DomainPolicy::Tokenize);
        let dh = encoding::b64(&tok.hash_domain("example.com"));
        assert_eq!(
            tok.hash_domain("EXAMPLE.com"),
            tok.raw_digest(b"example.com")
        );
        assert_eq!(
            tok.pseudonymize(v, OPTS).unwrap(),
            format!("t~{local}@h~{dh}")
        );
        assert_eq!(
            tok.pseudonymize("bob@example.com", OPTS)
                .unwrap()
                .split_once('@')
                .unwrap()
                .1,
            format!("h~{dh}")
        );
        assert_eq!(
            tok.pseudonymize(v, opts(Encoding::Json, false, false))
                .unwrap(),
            format!(r#"{{"domain":"h~{dh}","hash":"{local}"}}"#)
        );

        let enc = domain_policy(DomainPolicy::Encrypt);
        let out = enc.pseudonymize(v, OPTS).unwrap();
        let (t, d) = out.split_once('@').unwrap();
        assert_eq!(t, format!("t~{local}"));
        let body = d.strip_prefix("e~").unwrap();
        assert_eq!(format!("p~{body}"), enc.encrypt("example.com").unwrap());
        assert_eq!(enc.decrypt(&format!("p~{body}")).unwrap(), "example.com");
        // Non-emails are unaffected by the domain policy.
        for p in [&keep, &redact, &tok, &enc] {
            assert_eq!(
                p.pseudonymize("bob", OPTS).unwrap(),
                HMAC.pseudonymize("bob", OPTS).unwrap()
            );
        }
    }

    #[test]
    fn psoxy_domain_encrypt_uses_psoxy_tokens() {
        let mut c = config(Scheme::Psoxy, "salt", &[("k", "secret")]);
        c.email.domain = DomainPolicy::Encrypt;
        let p = Pseudonymizer::new(c).unwrap();
        let out = p.pseudonymize("a@X.com", OPTS).unwrap();
        let body = out.split_once("@e~").unwrap().1;
        assert_eq!(format!("p~{body}"), PSOXY.encrypt("x.com").unwrap());
    }

    #[test]
    fn hmac_is_deterministic_and_differs_from_psoxy() {
        let a = &*HMAC;
        let b = hmac_with(EmailPolicy::default());
        for v in [
            "bob",
            "Alice@example.com",
            "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        ] {
            assert_eq!(
                a.pseudonymize(v, OPTS).unwrap(),
                b.pseudonymize(v, OPTS).unwrap()
            );
            assert_eq!(a.encrypt(v).unwrap(), b.encrypt(v).unwrap());
        }
        let c = Pseudonymizer::new(config(Scheme::Hmac, "salt", &[])).err();
        assert!(matches!(c, Some(CryptoError::WeakSecret(_))));
        let long = "salt-salt-salt-salt-salt-salt-salt";
        let h = Pseudonymizer::new(config(Scheme::Hmac, long, &[])).unwrap();
        let s = Pseudonymizer::new(config(Scheme::Psoxy, long, &[])).unwrap();
        assert_eq!(h.scheme(), Scheme::Hmac);
        assert_ne!(h.digest("bob"), s.digest("bob"));
        assert_ne!(h.digest("bob"), a.digest("bob"));
    }

    #[test]
    fn round_trips() {
        for p in [&*HMAC, &*PSOXY] {
            for v in [
                "x",
                "bob",
                "Alice+x@Example.com",
                "Ünïcødé ✓ 🚀",
                &"long".repeat(100),
                " ",
            ] {
                let t = p.encrypt(v).unwrap();
                assert!(t.starts_with("p~"));
                assert_eq!(p.decrypt(&t).unwrap(), v);
                assert_eq!(p.decrypt(&format!("{t}@Example.com")).unwrap(), v);
            }
        }
    }

    fn bodies_with_each_bit_flipped(token: &str) -> Vec<String> {
        let body = encoding::decode_b64(&token[2..]).unwrap();
        let mut out = Vec::new();
        for i in 0..body.len() * 8 {
            let mut b = body.clone();
            b[i / 8] ^= 1 << (i % 8);
            out.push(format!("p~{}", encoding::b64(&b)));
        }
        out
    }

    #[test]
    fn modified_tokens_are_rejected() {
        for p in [&*HMAC, &*PSOXY] {
            let t = p.encrypt("alice@example.com").unwrap();
            for bad in bodies_with_each_bit_flipped(&t) {
                assert!(p.decrypt(&bad).is_err(), "{bad}");
            }
            for n in 0..t.len() {
                assert!(p.decrypt(&t[..n]).is_err(), "truncated to {n}");
            }
            // Extended body, padding, garbage, wrong prefixes.
            for bad in [
                format!("{t}AAAA"),
                format!("{t}="),
                format!("{t}!"),
                "p~not base64!".to_owned(),
                "p~////".to_owned(),
                "p~".to_owned(),
                String::new(),
            ] {
                assert!(p.decrypt(&bad).is_err(), "{bad}");
            }
            assert_eq!(p.decrypt(""), Err(CryptoError::NotAToken));
            assert_eq!(
                p.decrypt(&t.replacen("p~", "t~", 1)),
                Err(CryptoError::NotAToken)
            );
            assert_eq!(p.decrypt(&t[2..]), Err(CryptoError::NotAToken));
            assert_eq!(p.decrypt("p~%%%"), Err(CryptoError::InvalidToken));
        }
    }

    #[test]
    fn tokens_from_other_keys_or_salts_are_rejected() {
        // hmac: another key under the same id, another id, another salt.
        let other_key = Pseudonymizer::new(config(Scheme::Hmac, SALT32, &[("a", KEY_B)])).unwrap();
        let t = other_key.encrypt("bob").unwrap();
        assert_eq!(HMAC.decrypt(&t), Err(CryptoError::InvalidToken));
        let other_salt =
            Pseudonymizer::new(config(Scheme::Hmac, &SALT32.repeat(2), &[("a", KEY_A)])).unwrap();
        // The salt does not enter the SIV key: tokens survive a salt change.
        assert_eq!(
            other_salt.decrypt(&HMAC.encrypt("bob").unwrap()).unwrap(),
            "bob"
        );

        // psoxy: another key, another salt (the salt is the PBKDF2 salt).
        for other in [&*PSOXY_OTHER_KEY, &*PSOXY_OTHER_SALT] {
            let t = other
                .encrypt("48d31887-5fad-4d73-a9f5-3c356e68a038")
                .unwrap();
            assert_eq!(PSOXY.decrypt(&t), Err(CryptoError::InvalidToken));
            assert_eq!(
                other.decrypt(PSOXY_P_VECTOR),
                Err(CryptoError::InvalidToken)
            );
        }
        // A psoxy token is no hmac token and vice versa.
        assert!(HMAC.decrypt(PSOXY_P_VECTOR).is_err());
        assert!(PSOXY.decrypt(&HMAC.encrypt("bob").unwrap()).is_err());
    }

    #[test]
    fn the_psoxy_scheme_makes_psoxys_tokens_and_holds_slots_by_shape() {
        let v = "48d31887-5fad-4d73-a9f5-3c356e68a038";
        let plain = PSOXY.encrypt(v).unwrap();
        for kind in TokenKind::ALL {
            assert_eq!(PSOXY.encrypt_kind(v, Some(kind)).unwrap(), plain);
            assert_eq!(PSOXY.decrypt_expecting(&plain, Some(kind)).unwrap(), v);
        }
        // Psoxy's own vector is accepted in a kinded slot.
        assert_eq!(
            PSOXY
                .decrypt_expecting(PSOXY_P_VECTOR, Some(TokenKind::User))
                .unwrap(),
            v
        );
        // A token that does carry a kind (psoxy keys can read them) is held
        // to it.
        let Keys::Psoxy(k) = &PSOXY.keys else {
            unreachable!()
        };
        let body = k.encrypt_kind(v, Some(TokenKind::User)).unwrap();
        let mut user = String::from(encoding::REVERSIBLE_PREFIX);
        encoding::push_b64(&mut user, &body);
        assert_eq!(
            PSOXY.decrypt_expecting(&user, Some(TokenKind::Chat)),
            Err(CryptoError::WrongKind {
                expected: TokenKind::Chat,
                found: Some(TokenKind::User)
            })
        );
        assert_eq!(
            PSOXY
                .decrypt_expecting(&user, Some(TokenKind::User))
                .unwrap(),
            v
        );
    }

    #[test]
    fn kinds_are_bound_into_tokens() {
        {
            let p = &*HMAC;
            let v = "48d31887-5fad-4d73-a9f5-3c356e68a038";
            let plain = p.encrypt(v).unwrap();
            assert_eq!(p.encrypt_kind(v, None).unwrap(), plain);
            let user = p.encrypt_kind(v, Some(TokenKind::User)).unwrap();
            let chat = p.encrypt_kind(v, Some(TokenKind::Chat)).unwrap();
            assert!(user != plain && user != chat && chat != plain);
            assert_eq!(p.decrypt_kind(&plain).unwrap(), (v.to_string(), None));
            assert_eq!(
                p.decrypt_kind(&user).unwrap(),
                (v.to_string(), Some(TokenKind::User))
            );
            // Any token decrypts where no kind is asked for.
            for t in [&plain, &user, &chat] {
                assert_eq!(p.decrypt(t).unwrap(), v);
                assert_eq!(p.decrypt_expecting(t, None).unwrap(), v);
            }
            assert_eq!(
                p.decrypt_expecting(&user, Some(TokenKind::User)).unwrap(),
                v
            );
            assert_eq!(
                p.decrypt_expecting(&user, Some(TokenKind::Chat)),
                Err(CryptoError::WrongKind {
                    expected: TokenKind::Chat,
                    found: Some(TokenKind::User)
                })
            );
            let e = p
                .decrypt_expecting(&plain, Some(TokenKind::Chat))
                .unwrap_err();
            assert_eq!(
                e,
                CryptoError::WrongKind {
                    expected: TokenKind::Chat,
                    found: None
                }
            );
            assert!(e.to_string().contains("has no kind"), "{e}");
            assert!(!e.to_string().contains(v));
            // Deterministic, and tampering is still caught.
            assert_eq!(p.encrypt_kind(v, Some(TokenKind::User)).unwrap(), user);
            for bad in bodies_with_each_bit_flipped(&user) {
                assert!(p.decrypt_kind(&bad).is_err(), "{bad}");
            }
        }
        // The Psoxy vector still decrypts, as a token without a kind.
        assert_eq!(
            PSOXY.decrypt_kind(PSOXY_P_VECTOR).unwrap(),
            ("48d31887-5fad-4d73-a9f5-3c356e68a038".to_string(), None)
        );
    }

    #[test]
    fn key_rotation() {
        let old = Pseudonymizer::new(config(Scheme::Hmac, SALT32, &[("old", KEY_A)])).unwrap();
        let rotated = Pseudonymizer::new(config(
            Scheme::Hmac,
            SALT32,
            &[("new", KEY_B), ("old", KEY_A)],
        ))
        .unwrap();
        let t_old = old.encrypt("bob").unwrap();
        let t_new = rotated.encrypt("bob").unwrap();
        assert_ne!(t_old, t_new);
        assert_eq!(rotated.decrypt(&t_old).unwrap(), "bob");
        assert_eq!(rotated.decrypt(&t_new).unwrap(), "bob");
        // The newest key (and its id) makes new tokens.
        let body = encoding::decode_b64(&t_new[2..]).unwrap();
        assert_eq!(&body[..5], b"\x01\x03new");
        // Pseudonyms do not depend on encryption keys.
        assert_eq!(old.digest("bob"), rotated.digest("bob"));
        // The old instance does not know 'new'.
        assert_eq!(
            old.decrypt(&t_new),
            Err(CryptoError::UnknownKeyId("new".into()))
        );
        assert!(CryptoError::UnknownKeyId("new".into())
            .to_string()
            .contains("'new'"));
    }

    #[test]
    fn no_encryption_key() {
        let p = Pseudonymizer::new(config(Scheme::Hmac, SALT32, &[])).unwrap();
        assert_eq!(p.encrypt("bob"), Err(CryptoError::NoEncryptionKey));
        assert_eq!(
            p.pseudonymize("bob", opts(Encoding::Json, false, true)),
            Err(CryptoError::NoEncryptionKey)
        );
        assert!(p.pseudonymize("bob", OPTS).is_ok());
        let mut c = config(Scheme::Hmac, SALT32, &[]);
        c.email.domain = DomainPolicy::Encrypt;
        assert_eq!(
            Pseudonymizer::new(c).err(),
            Some(CryptoError::NoEncryptionKey)
        );
        let p = Pseudonymizer::new(config(Scheme::Psoxy, "salt", &[])).unwrap();
        assert_eq!(p.encrypt("bob"), Err(CryptoError::NoEncryptionKey));
        assert_eq!(p.decrypt(PSOXY_P_VECTOR), Err(CryptoError::NoEncryptionKey));
    }

    fn weak(c: PseudonymConfig) -> String {
        match Pseudonymizer::new(c) {
            Err(CryptoError::WeakSecret(m)) => m,
            other => panic!("expected WeakSecret, got {other:?}"),
        }
    }

    #[test]
    fn weak_secrets() {
        let m = weak(config(Scheme::Hmac, "", &[]));
        assert!(
            m.contains("the pseudonymization salt") && m.contains("empty"),
            "{m}"
        );
        let m = weak(config(Scheme::Psoxy, "", &[]));
        assert!(m.contains("the pseudonymization salt"), "{m}");
        let short = "short-salt-secret";
        let m = weak(config(Scheme::Hmac, short, &[]));
        assert!(m.contains("the pseudonymization salt"), "{m}");
        assert!(
            m.contains("32 bytes") && m.contains("openssl rand -base64 32"),
            "{m}"
        );
        assert!(!m.contains(short));
        let m = weak(config(
            Scheme::Hmac,
            SALT32,
            &[("k1", KEY_A), ("k2", "tiny-key")],
        ));
        assert!(
            m.contains("encryption key 'k2'") && m.contains("openssl rand -base64 32"),
            "{m}"
        );
        assert!(!m.contains("tiny-key"));
        let m = weak(config(Scheme::Hmac, SALT32, &[("k1", "")]));
        assert!(
            m.contains("encryption key 'k1'") && m.contains("empty"),
            "{m}"
        );
        // Exactly 32 bytes is enough.
        assert!(Pseudonymizer::new(config(Scheme::Hmac, SALT32, &[("k", SALT32)])).is_ok());
        // psoxy: short is fine, empty is not.
        assert!(Pseudonymizer::new(config(Scheme::Psoxy, "s", &[])).is_ok());
        let m = weak(config(Scheme::Psoxy, "salt", &[("k", "")]));
        assert!(m.contains("encryption key 'k'"), "{m}");
        let m = weak(config(Scheme::Psoxy, "salt", &[("not valid id!", "")]));
        assert!(
            m.contains("encryption key #1") && !m.contains("not valid"),
            "{m}"
        );
    }

    #[test]
    fn key_id_validation() {
        for id in ["", "has space", "seventeen-chars-x", "clé", "a/b"] {
            let m = weak(config(Scheme::Hmac, SALT32, &[(id, KEY_A)]));
            assert!(m.contains("encryption key #1 has an invalid id"), "{m}");
            if !id.is_empty() {
                assert!(!m.contains(id), "{m}");
            }
        }
        let m = weak(config(Scheme::Hmac, SALT32, &[("k", KEY_A), ("k", KEY_B)]));
        assert!(m.contains("'k' is configured more than once"), "{m}");
        assert!(
            Pseudonymizer::new(config(Scheme::Hmac, SALT32, &[("Key_2024-01", KEY_A)])).is_ok()
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = config(Scheme::Hmac, SALT32, &[("kid1", KEY_A)]);
        let shown = format!("{c:?}");
        assert!(!shown.contains(SALT32) && !shown.contains(KEY_A), "{shown}");
        assert!(
            !shown.contains("0123456789") && !shown.contains("aaaa"),
            "{shown}"
        );
        let p = Pseudonymizer::new(c).unwrap();
        let shown = format!("{p:?}");
        assert_eq!(shown, "Pseudonymizer(<keys redacted>)");
        let shown = format!(
            "{:?} {:?}",
            *PSOXY,
            config(Scheme::Psoxy, "salt", &[("k", "secret")])
        );
        assert!(
            !shown.contains("secret\"") && !shown.contains("\"salt"),
            "{shown}"
        );
    }

    #[test]
    fn errors_name_no_value() {
        let v = "alice-secret-value";
        let errs = [
            HMAC.decrypt(&format!("p~{v}")).unwrap_err(),
            HMAC.decrypt(v).unwrap_err(),
            PSOXY.decrypt(&format!("p~{v}")).unwrap_err(),
        ];
        for e in errs {
            assert!(!e.to_string().contains("alice") && !format!("{e:?}").contains("alice"));
        }
    }

    #[test]
    fn is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pseudonymizer>();
        check::<std::sync::Arc<Pseudonymizer>>();
    }

    #[test]
    fn scheme_from_str() {
        assert_eq!("HMAC".parse::<Scheme>(), Ok(Scheme::Hmac));
        assert_eq!("psoxy".parse::<Scheme>(), Ok(Scheme::Psoxy));
        assert!("aes".parse::<Scheme>().is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn hmac_round_trip(v in any::<String>()) {
                let t = HMAC.encrypt(&v).unwrap();
                prop_assert_eq!(HMAC.decrypt(&t).unwrap(), v);
            }

            #[test]
            fn psoxy_round_trip(v in any::<String>()) {
                let t = PSOXY.encrypt(&v).unwrap();
                prop_assert_eq!(PSOXY.decrypt(&t).unwrap(), v);
            }

            #[test]
            fn hmac_pseudonymize_never_fails(v in any::<String>(), o in any::<bool>(), r in any::<bool>()) {
                for e in [Encoding::UrlSafeToken, Encoding::UrlSafeHashOnly, Encoding::Json] {
                    prop_assert!(HMAC.pseudonymize(&v, opts(e, o, r)).is_ok());
                }
            }

            #[test]
            fn arbitrary_input_never_panics(v in any::<String>(), body in any::<Vec<u8>>()) {
                let token = format!("p~{}", encoding::b64(&body));
                for p in [&*HMAC, &*PSOXY] {
                    let _ = p.decrypt(&v);
                    let _ = p.decrypt(&format!("p~{v}"));
                    prop_assert!(p.decrypt(&token).is_err());
                }
                let _ = email::parse_address_list(&v);
            }

            #[test]
            fn hmac_modified_body_byte_is_rejected(
                v in any::<String>(),
                idx in any::<prop::sample::Index>(),
                delta in 1u8..=255,
            ) {
                let t = HMAC.encrypt(&v).unwrap();
                let mut body = encoding::decode_b64(&t[2..]).unwrap();
                let i = idx.index(body.len());
                body[i] = body[i].wrapping_add(delta);
                let bad = format!("p~{}", encoding::b64(&body));
                prop_assert!(HMAC.decrypt(&bad).is_err());
            }

            #[test]
            fn hmac_modified_token_char_is_rejected(
                v in any::<String>(),
                idx in any::<prop::sample::Index>(),
                c in proptest::char::any(),
            ) {
                let t = HMAC.encrypt(&v).unwrap();
                let i = 2 + idx.index(t.len() - 2);
                prop_assume!(t.as_bytes()[i] as char != c && c != '@');
                let mut bad = String::from(&t[..i]);
                bad.push(c);
                bad.push_str(&t[i + 1..]);
                prop_assert!(HMAC.decrypt(&bad).is_err());
            }
        }
    }
}
