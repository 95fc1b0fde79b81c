//! Secret values (pseudonymization salt, encryption keys) that never print,
//! how strong a secret is, and fingerprints that are no offline oracle.
//!
//! `Debug` and `Display` show only a placeholder; the bytes are zeroed on
//! drop.
//!
//! # Strength
//!
//! [`estimate`] gives a conservative estimate of how many bits an attacker
//! must guess, in the spirit of zxcvbn but without dictionaries: the string
//! is read left to right and each piece costs
//!
//! - a repeat of something earlier (4 characters or more, overlaps allowed,
//!   so `aaaa…` and `0123-0123` are caught): [`REPEAT_BITS`] for the whole
//!   piece (a pointer back, as in LZ77);
//! - a word-like run of letters (3 or more, lower case or capitalised or all
//!   upper case, with vowels in it: `salt`, `Horse`, `TEST`):
//!   [`WORD_BITS`], the size of a large dictionary;
//! - the same character again, or the next step of an ascending or
//!   descending run (`abc`, `987`): 1 bit;
//! - any other character: log2 of the alphabet the secret draws from (the
//!   union of the classes present: 26 lower, 26 upper, 10 digits, 33 ASCII
//!   symbols and space, 100 for anything else).
//!
//! [`Strength::problem`] refuses a secret below a minimum number of bits, or
//! one whose characters are mostly word-like (a passphrase of English words
//! is guessable by a dictionary attack however long it is). `openssl rand
//! -base64 32` gives about 280 bits, `openssl rand -hex 32` about 330.
//!
//! # Fingerprints
//!
//! An operator must be able to tell two secrets apart (startup log, health
//! check, `veil doctor`) without the fingerprint helping an attacker. A plain
//! hash of the secret is an offline oracle: whoever sees the fingerprint can
//! test guesses of the secret against it, which recovered a human-chosen
//! salt. Keying the hash with a key derived from the secret itself does not
//! help (the attacker derives it from each guess too), and a per-process
//! random key would make fingerprints of two instances incomparable. So:
//!
//! - A secret that passed the strength checks (at least 80 bits, 128 in the
//!   default scheme) gets `PBKDF2-HMAC-SHA256(secret, "veil/fingerprint/v2",
//!   FINGERPRINT_ROUNDS)`, 64 bits shown. Guessing a secret of 80 bits or
//!   more is out of reach with or without an oracle, and the slow KDF adds
//!   another 2^14 or so to every guess.
//! - A secret that did *not* pass them (a legacy short Psoxy salt admitted
//!   for a migration) gets a fingerprint keyed with *another* secret of the
//!   deployment ([`Secret::with_fingerprint_key`]: the loader uses the
//!   encryption key): `HMAC-SHA256(HKDF(other secret), label ‖ secret)`.
//!   Testing a guess of the weak secret then needs the other secret too. With
//!   no other secret there is nothing to key it with and the fingerprint is
//!   withheld ([`WITHHELD_FINGERPRINT`]).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// PBKDF2 rounds of an unkeyed fingerprint.
pub(crate) const FINGERPRINT_ROUNDS: u32 = 20_000;
/// The fingerprint shown for a weak secret that no other secret can key.
pub const WITHHELD_FINGERPRINT: &str = "withheld (weak secret, no key to protect its fingerprint)";
/// Bits charged for a repeat of earlier text.
pub(crate) const REPEAT_BITS: f64 = 10.0;
/// Bits charged for a word-like run of letters.
pub(crate) const WORD_BITS: f64 = 16.0;
/// Longest prefix [`estimate`] reads (the rest adds nothing).
const MAX_ANALYZED: usize = 512;
/// PBKDF2 salt and HKDF/HMAC label of fingerprints.
const FINGERPRINT_LABEL: &[u8] = b"veil/fingerprint/v2";

/// How a fingerprint is computed (see the module documentation).
#[derive(Clone)]
enum FingerprintMode {
    /// Slow, unkeyed (strong secrets).
    Slow,
    /// HMAC under a key derived from another secret (weak legacy secrets).
    Keyed(Zeroizing<[u8; 32]>),
    /// Weak, and nothing to key it with.
    Withheld,
}

/// A secret byte string.
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    fingerprint: FingerprintMode,
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret {
            bytes: Zeroizing::new(bytes.into()),
            fingerprint: FingerprintMode::Slow,
        }
    }

    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Marks this secret as weak (admitted for a migration): its fingerprint
    /// becomes an HMAC keyed with `other`, another secret of the deployment,
    /// or is withheld when there is none.
    pub fn with_fingerprint_key(mut self, other: Option<&Secret>) -> Self {
        self.fingerprint = match other.filter(|o| !o.is_empty()) {
            Some(o) => {
                let mut key = Zeroizing::new([0u8; 32]);
                // 32 bytes is always a valid HKDF-SHA256 output length.
                let _ = Hkdf::<Sha256>::new(Some(FINGERPRINT_LABEL), o.expose())
                    .expand(b"fingerprint key", &mut key[..]);
                FingerprintMode::Keyed(key)
            }
            None => FingerprintMode::Withheld,
        };
        self
    }

    /// A short fingerprint (16 hex digits) that tells secrets apart and is no
    /// offline oracle (see the module documentation).
    pub fn fingerprint(&self) -> String {
        let mut out = [0u8; 8];
        match &self.fingerprint {
            FingerprintMode::Slow => {
                let mut full = Zeroizing::new([0u8; 32]);
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    self.expose(),
                    FINGERPRINT_LABEL,
                    FINGERPRINT_ROUNDS,
                    &mut full[..],
                );
                out.copy_from_slice(&full[..8]);
            }
            FingerprintMode::Keyed(key) => {
                let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key[..]) else {
                    return WITHHELD_FINGERPRINT.to_string();
                };
                mac.update(FINGERPRINT_LABEL);
                mac.update(&[0]);
                mac.update(self.expose());
                out.copy_from_slice(&mac.finalize().into_bytes()[..8]);
            }
            FingerprintMode::Withheld => return WITHHELD_FINGERPRINT.to_string(),
        }
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// [`estimate`] of this secret.
    pub fn strength(&self) -> Strength {
        estimate(self.expose())
    }

    /// Whether the secret is one of `published` (examples from documentation
    /// and tests), compared case-insensitively with surrounding whitespace
    /// ignored: `SALT` and `salt ` are `salt`.
    pub fn is_published(&self, published: &[&str]) -> bool {
        let mine = String::from_utf8_lossy(self.expose());
        let mine = mine.trim().to_lowercase();
        published.iter().any(|p| p.trim().to_lowercase() == mine)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes().to_vec())
    }
}

/// What [`estimate`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Strength {
    /// Estimated bits an attacker must guess.
    pub bits: f64,
    /// Characters read.
    pub chars: usize,
    /// Characters inside word-like runs of letters.
    pub word_chars: usize,
    /// Characters inside repeats of earlier text.
    pub repeated_chars: usize,
}

/// The largest share of word-like characters a secret may have.
pub(crate) const MAX_WORD_SHARE: f64 = 0.5;

impl Strength {
    /// Why a secret is too weak for `min_bits`, or `None`. The reason names
    /// no part of the secret.
    pub fn problem(&self, min_bits: f64) -> Option<String> {
        if self.chars > 0 && self.word_chars as f64 > self.chars as f64 * MAX_WORD_SHARE {
            return Some(format!(
                "it is mostly words ({} of {} characters): a passphrase falls to a dictionary \
                 attack however long it is",
                self.word_chars, self.chars
            ));
        }
        if self.bits < min_bits {
            let repeats = if self.repeated_chars > 0 {
                format!(", {} characters repeat earlier ones", self.repeated_chars)
            } else {
                String::new()
            };
            return Some(format!(
                "it is too predictable: about {:.0} bits of entropy estimated, at least {min_bits:.0} \
                 needed{repeats}",
                self.bits
            ));
        }
        None
    }
}

/// The alphabet classes of the module documentation.
fn class_of(c: char) -> usize {
    match c {
        'a'..='z' => 0,
        'A'..='Z' => 1,
        '0'..='9' => 2,
        c if c.is_ascii() => 3,
        _ => 4,
    }
}

const CLASS_SIZES: [f64; 5] = [26.0, 26.0, 10.0, 33.0, 100.0];

fn is_vowel(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// The length of the word-like run of letters starting at `i`, or 0. A run
/// is `[A-Z]?[a-z]+` or `[A-Z]+` (ASCII), at least 3 long, at least one in
/// four of its letters a vowel, and not followed by a lower-case letter
/// when it is all upper case (`HTTPServer` reads as `HTTP`, `Server`).
fn word_at(s: &[char], i: usize) -> usize {
    if i > 0 && s[i - 1].is_ascii_alphabetic() {
        // Only at the start of a run, or at a case change inside one.
        let starts_here = s[i].is_ascii_uppercase() && s[i - 1].is_ascii_lowercase();
        if !starts_here {
            return 0;
        }
    }
    let mut j = i;
    if j < s.len() && s[j].is_ascii_uppercase() {
        j += 1;
        if j < s.len() && s[j].is_ascii_uppercase() {
            while j < s.len() && s[j].is_ascii_uppercase() {
                j += 1;
            }
            // `HTTPServer`: the last capital starts the next word.
            if j < s.len() && s[j].is_ascii_lowercase() {
                j -= 1;
            }
        } else {
            while j < s.len() && s[j].is_ascii_lowercase() {
                j += 1;
            }
        }
    } else {
        while j < s.len() && s[j].is_ascii_lowercase() {
            j += 1;
        }
    }
    let run = &s[i..j];
    let vowels = run.iter().filter(|c| is_vowel(**c)).count();
    if run.len() >= 3 && vowels * 4 >= run.len() && vowels < run.len() {
        run.len()
    } else {
        0
    }
}

/// The longest earlier occurrence (at least 4 long, overlap allowed) of the
/// text starting at `i`.
fn repeat_at(s: &[char], i: usize) -> usize {
    let mut best = 0;
    for j in 0..i {
        let mut n = 0;
        while i + n < s.len() && s[j + n] == s[i + n] {
            n += 1;
        }
        best = best.max(n);
    }
    if best >= 4 {
        best
    } else {
        0
    }
}

/// Estimates the strength of a secret (see the module documentation).
/// Bytes that are not UTF-8 are read one byte a character, from an alphabet
/// of 256.
pub(crate) fn estimate(bytes: &[u8]) -> Strength {
    let (chars, alphabet_bits): (Vec<char>, Option<f64>) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.chars().take(MAX_ANALYZED).collect(), None),
        Err(_) => (
            bytes
                .iter()
                .take(MAX_ANALYZED)
                .map(|b| char::from(*b))
                .collect(),
            Some(8.0),
        ),
    };
    let alphabet_bits = alphabet_bits.unwrap_or_else(|| {
        let mut present = [false; 5];
        for c in &chars {
            present[class_of(*c)] = true;
        }
        let size: f64 = present
            .iter()
            .zip(CLASS_SIZES)
            .filter(|(p, _)| **p)
            .map(|(_, n)| n)
            .sum();
        size.max(2.0).log2()
    });
    let mut bits = 0.0;
    let mut word_chars = 0;
    let mut repeated_chars = 0;
    let mut i = 0;
    while i < chars.len() {
        let r = repeat_at(&chars, i);
        if r > 0 {
            bits += REPEAT_BITS;
            repeated_chars += r;
            i += r;
            continue;
        }
        let w = word_at(&chars, i);
        if w > 0 {
            bits += WORD_BITS.min(w as f64 * alphabet_bits);
            word_chars += w;
            i += w;
            continue;
        }
        let c = chars[i] as i64;
        let same = i >= 1 && chars[i - 1] as i64 == c;
        let step = i >= 2 && {
            let (a, b) = (chars[i - 2] as i64, chars[i - 1] as i64);
            (b - a).abs() == 1 && c - b == b - a
        };
        bits += if same || step { 1.0 } else { alphabet_bits };
        i += 1;
    }
    Strength {
        bits,
        chars: chars.len(),
        word_chars,
        repeated_chars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("hunter2-hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.fingerprint().len(), 16);
        assert_ne!(s.fingerprint(), Secret::from("other").fingerprint());
    }

    #[test]
    fn fingerprints_are_slow_or_keyed_by_another_secret() {
        let s = Secret::from("s3cr3t-value");
        // Unkeyed: PBKDF2 over the secret (deterministic, comparable across
        // instances), not a plain hash.
        let mut full = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(
            b"s3cr3t-value",
            FINGERPRINT_LABEL,
            FINGERPRINT_ROUNDS,
            &mut full,
        );
        let hex: String = full[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s.fingerprint(), hex);
        assert_eq!(s.fingerprint(), Secret::from("s3cr3t-value").fingerprint());
        // Keyed: depends on the other secret, so a guess of the weak one
        // cannot be tested without it.
        let a = Secret::from("k-one-Xq8Lw2Pz");
        let b = Secret::from("k-two-Hs4Nq8Rt");
        let ka = s.clone().with_fingerprint_key(Some(&a)).fingerprint();
        let kb = s.clone().with_fingerprint_key(Some(&b)).fingerprint();
        assert_ne!(ka, kb);
        assert_ne!(ka, s.fingerprint());
        assert_eq!(ka.len(), 16);
        assert_eq!(ka, s.clone().with_fingerprint_key(Some(&a)).fingerprint());
        assert_eq!(
            s.clone().with_fingerprint_key(None).fingerprint(),
            WITHHELD_FINGERPRINT
        );
        assert_eq!(
            s.with_fingerprint_key(Some(&Secret::from("")))
                .fingerprint(),
            WITHHELD_FINGERPRINT
        );
    }

    #[test]
    fn published_values_compare_loosely() {
        let list = ["salt", "Example-Secret"];
        for v in ["salt", "SALT", "salt ", "\tSalt\n", "example-secret"] {
            assert!(Secret::from(v).is_published(&list), "{v:?}");
        }
        for v in ["salty", "s alt", ""] {
            assert!(!Secret::from(v).is_published(&list), "{v:?}");
        }
    }

    fn bits(s: &str) -> f64 {
        estimate(s.as_bytes()).bits
    }

    #[test]
    fn random_secrets_are_strong() {
        // `openssl rand -base64 32` and `-hex 32` outputs.
        for s in [
            "q7Nw0XqfB3rP5m2cLk9Zt8Yv1Hs4Gd6Jx0Ae2Ui5Oo=",
            "1f9c2a7b3e5d8f0a6c4b2e9d7f1a3c5e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f80",
            "e2e-salt-7Qm2vX9kLp4RtZ8nWc3HyB6dFj1sGa5e",
            "lambda-e2e-key-Pf8Xe2Qw6Nr1Kz9Ut4Cv7Bm3Hy5Lj0Dg",
        ] {
            let st = estimate(s.as_bytes());
            assert!(st.problem(128.0).is_none(), "{s}: {st:?}");
        }
    }

    #[test]
    fn repeats_sequences_and_words_are_weak() {
        for s in [
            "a".repeat(32),
            "ab".repeat(20),
            "0123456789abcdef0123456789abcdef".into(),
            "salt-salt-salt-salt-salt-salt-salt".into(),
            "test-salt-0123456789-0123456789-0123456789".into(),
            "abcdefghijklmnopqrstuvwxyz0123456789".into(),
        ] {
            let st = estimate(s.as_bytes());
            assert!(st.problem(128.0).is_some(), "{s}: {st:?}");
            assert!(st.bits < 80.0, "{s}: {st:?}");
        }
        // English passphrases: refused by their share of words whatever
        // their length.
        for s in [
            "correct horse battery staple",
            "the-quick-brown-fox-jumps-over-the-lazy-dog-again-and-again",
            "CorrectHorseBatteryStapleMonday",
        ] {
            let st = estimate(s.as_bytes());
            let why = st.problem(128.0).unwrap_or_default();
            assert!(why.contains("mostly words"), "{s}: {st:?}");
        }
        assert_eq!(estimate(b"").bits, 0.0);
        assert!(bits("aaaa") < bits("aQ7!"));
    }

    #[test]
    fn the_reason_names_no_part_of_the_secret() {
        let s = "hunter-hunter-hunter-hunter-hunter";
        let why = estimate(s.as_bytes()).problem(128.0).unwrap();
        assert!(!why.contains("hunter"), "{why}");
    }

    #[test]
    fn non_utf8_bytes_count_as_bytes() {
        let random: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(97).wrapping_add(13) ^ 0xa5)
            .collect();
        let mut bytes = random.clone();
        bytes.push(0xff);
        let st = estimate(&bytes);
        assert_eq!(st.chars, 33);
        assert!(st.bits > 128.0, "{st:?}");
        assert!(estimate(&[0xff; 40]).bits < 30.0);
    }
}
