//! The default `hmac` scheme: digests and reversible tokens.
//!
//! - Digest: HMAC-SHA256 keyed by the salt bytes over the identifier. The
//!   keyed state is prepared once and cloned per digest.
//! - Reversible token body (what follows `p~`, before base64url):
//!
//!   ```text
//!   0x01 (version) ‖ kid length (1..=16) ‖ kid (ASCII) ‖ SIV tag (16) ‖ ciphertext
//!   0x02 (version) ‖ kid length (1..=16) ‖ kid (ASCII) ‖ kind (1) ‖ SIV tag (16) ‖ ciphertext
//!   ```
//!
//!   AES-256-SIV (RFC 5297, CMAC) with no nonce, so it is deterministic; the
//!   header (everything before the tag) is authenticated as associated data.
//!   Version 1 is a token without a kind (what every token was before kinds
//!   existed, and still what a `tokenize` without `kind` makes, so existing
//!   tokens and goldens stay byte for byte). Version 2 binds a
//!   [`TokenKind`] code into the authenticated header: changing the kind
//!   byte breaks the tag, so a user token cannot be turned into a chat
//!   token.
//!   The 64-byte SIV key is HKDF-SHA256(ikm = the encryption key bytes, no
//!   salt, info = `veil/p~/v1`). New tokens use the first (newest) key; older
//!   keys still decrypt the tokens they made.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{CryptoError, TokenKind};
use crate::secret::Secret;

/// Minimum length in bytes of the salt and of each encryption key.
pub(crate) const MIN_SECRET_LEN: usize = 32;
/// Version byte of a token without a kind.
pub(crate) const TOKEN_VERSION: u8 = 1;
/// Version byte of a token with a kind byte after the key id.
pub(crate) const TOKEN_VERSION_KIND: u8 = 2;
/// HKDF info string for the SIV key.
pub(crate) const HKDF_INFO: &[u8] = b"veil/p~/v1";
/// Longest key id.
pub(crate) const MAX_KEY_ID_LEN: usize = 16;
/// Length of the SIV tag (synthetic IV) in a token.
const TAG_LEN: usize = 16;

/// Whether `id` is a valid key id: 1–16 characters of `[A-Za-z0-9_-]`.
pub(crate) fn is_valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct SivKey {
    id: String,
    key: Zeroizing<[u8; 64]>,
}

/// Keys of the `hmac` scheme (secrets already validated by the caller).
pub(crate) struct HmacScheme {
    mac: Hmac<Sha256>,
    keys: Vec<SivKey>,
}

impl HmacScheme {
    /// Prepares the keyed HMAC state and derives one SIV key per encryption
    /// key. Key ids must already be valid and unique.
    pub(crate) fn new(salt: &Secret, keys: &[(String, Secret)]) -> Result<Self, CryptoError> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(salt.expose()).map_err(|_| {
            CryptoError::WeakSecret("the pseudonymization salt cannot key HMAC".into())
        })?;
        let keys = keys
            .iter()
            .map(|(id, secret)| {
                let mut key = Zeroizing::new([0u8; 64]);
                Hkdf::<Sha256>::new(None, secret.expose())
                    .expand(HKDF_INFO, &mut key[..])
                    .map_err(|_| {
                        CryptoError::WeakSecret(format!("encryption key '{id}' cannot be derived"))
                    })?;
                Ok(SivKey {
                    id: id.clone(),
                    key,
                })
            })
            .collect::<Result<_, CryptoError>>()?;
        Ok(HmacScheme { mac, keys })
    }

    /// HMAC-SHA256(salt, data).
    pub(crate) fn digest(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// The token body for `plaintext`, made with the newest key.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_kind(plaintext, None)
    }

    /// The token body for `plaintext`, with `kind` bound in (version 2) or
    /// without one (version 1).
    pub(crate) fn encrypt_kind(
        &self,
        plaintext: &[u8],
        kind: Option<TokenKind>,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.keys.first().ok_or(CryptoError::NoEncryptionKey)?;
        let kid = key.id.as_bytes();
        let kid_len = u8::try_from(kid.len()).map_err(|_| CryptoError::InvalidToken)?;
        let header_len = 2 + kid.len() + usize::from(kind.is_some());
        let mut body = Vec::with_capacity(header_len + TAG_LEN + plaintext.len());
        body.push(if kind.is_some() {
            TOKEN_VERSION_KIND
        } else {
            TOKEN_VERSION
        });
        body.push(kid_len);
        body.extend_from_slice(kid);
        if let Some(k) = kind {
            body.push(k.code());
        }
        let sealed = siv(&key.key)?
            .encrypt([&body[..header_len]], plaintext)
            .map_err(|_| CryptoError::InvalidToken)?;
        body.extend_from_slice(&sealed);
        Ok(body)
    }

    /// Inverse of [`Self::encrypt`]: checks the header, finds the key by id,
    /// authenticates and decrypts.
    #[cfg(test)]
    pub fn decrypt(&self, body: &[u8]) -> Result<String, CryptoError> {
        self.decrypt_kind(body).map(|(v, _)| v)
    }

    /// Inverse of [`Self::encrypt_kind`]: the plaintext and the kind bound
    /// into the token (`None` for a version 1 token).
    pub(crate) fn decrypt_kind(
        &self,
        body: &[u8],
    ) -> Result<(String, Option<TokenKind>), CryptoError> {
        let (&version, rest) = body.split_first().ok_or(CryptoError::InvalidToken)?;
        let kind_len = match version {
            TOKEN_VERSION => 0,
            TOKEN_VERSION_KIND => 1,
            _ => return Err(CryptoError::InvalidToken),
        };
        let (&kid_len, rest) = rest.split_first().ok_or(CryptoError::InvalidToken)?;
        let kid_len = usize::from(kid_len);
        if kid_len == 0 || kid_len > MAX_KEY_ID_LEN || rest.len() < kid_len + kind_len + TAG_LEN {
            return Err(CryptoError::InvalidToken);
        }
        let (kid, rest) = rest.split_at(kid_len);
        let (kind, sealed) = rest.split_at(kind_len);
        let kind = match kind.first() {
            None => None,
            Some(&code) => Some(TokenKind::from_code(code).ok_or(CryptoError::InvalidToken)?),
        };
        let kid = std::str::from_utf8(kid)
            .ok()
            .filter(|k| is_valid_key_id(k))
            .ok_or(CryptoError::InvalidToken)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == kid)
            .ok_or_else(|| CryptoError::UnknownKeyId(kid.to_owned()))?;
        let plaintext = siv(&key.key)?
            .decrypt([&body[..2 + kid_len + kind_len]], sealed)
            .map_err(|_| CryptoError::InvalidToken)?;
        let value = String::from_utf8(plaintext).map_err(|_| CryptoError::InvalidToken)?;
        Ok((value, kind))
    }
}

fn siv(key: &[u8; 64]) -> Result<Aes256Siv, CryptoError> {
    Aes256Siv::new_from_slice(key).map_err(|_| CryptoError::InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(keys: &[(&str, &str)]) -> HmacScheme {
        let keys: Vec<_> = keys
            .iter()
            .map(|(id, k)| (id.to_string(), Secret::from(*k)))
            .collect();
        HmacScheme::new(&Secret::from("s".repeat(32).as_str()), &keys).unwrap()
    }

    #[test]
    fn digest_is_hmac_sha256() {
        // RFC 4231 test case 2.
        let s = HmacScheme::new(&Secret::from("Jefe"), &[]).unwrap();
        let d = s.digest(b"what do ya want for nothing?");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_layout() {
        let s = scheme(&[("k2024", &"k".repeat(32))]);
        let body = s.encrypt(b"hello").unwrap();
        assert_eq!(body[0], TOKEN_VERSION);
        assert_eq!(body[1], 5);
        assert_eq!(&body[2..7], b"k2024");
        assert_eq!(body.len(), 7 + TAG_LEN + 5);
        assert_eq!(s.decrypt(&body).unwrap(), "hello");
        // The header is authenticated: a different version is rejected.
        let mut other = body.clone();
        other[0] = 2;
        assert_eq!(s.decrypt(&other), Err(CryptoError::InvalidToken));
    }

    #[test]
    fn kinded_body_layout_and_binding() {
        let s = scheme(&[("k2024", &"k".repeat(32))]);
        let plain = s.encrypt(b"hello").unwrap();
        let body = s.encrypt_kind(b"hello", Some(TokenKind::Chat)).unwrap();
        assert_eq!(body[0], TOKEN_VERSION_KIND);
        assert_eq!(&body[1..7], b"\x05k2024");
        assert_eq!(body[7], TokenKind::Chat.code());
        assert_eq!(body.len(), plain.len() + 1);
        assert_eq!(
            s.decrypt_kind(&body).unwrap(),
            ("hello".to_string(), Some(TokenKind::Chat))
        );
        assert_eq!(s.decrypt_kind(&plain).unwrap(), ("hello".to_string(), None));
        assert_eq!(s.encrypt_kind(b"hello", None).unwrap(), plain);
        // The kind is authenticated: relabelled, it no longer decrypts.
        for code in [0u8, 1, 3, 8, 9, 255] {
            let mut other = body.clone();
            other[7] = code;
            assert_eq!(
                s.decrypt_kind(&other),
                Err(CryptoError::InvalidToken),
                "{code}"
            );
        }
        // Nor does turning it into a version 1 token (or back).
        let mut v1 = body.clone();
        v1[0] = TOKEN_VERSION;
        v1.remove(7);
        assert_eq!(s.decrypt_kind(&v1), Err(CryptoError::InvalidToken));
        let mut v2 = plain.clone();
        v2[0] = TOKEN_VERSION_KIND;
        v2.insert(7, TokenKind::User.code());
        assert_eq!(s.decrypt_kind(&v2), Err(CryptoError::InvalidToken));
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let s = scheme(&[("a", &"k".repeat(32))]);
        let body = s.encrypt(b"").unwrap();
        assert_eq!(s.decrypt(&body).unwrap(), "");
    }

    #[test]
    fn key_ids() {
        assert!(is_valid_key_id("a"));
        assert!(is_valid_key_id("Key_2024-01"));
        assert!(is_valid_key_id(&"x".repeat(16)));
        assert!(!is_valid_key_id(""));
        assert!(!is_valid_key_id(&"x".repeat(17)));
        assert!(!is_valid_key_id("a b"));
        assert!(!is_valid_key_id("clé"));
        assert!(!is_valid_key_id("a.b"));
    }
}
