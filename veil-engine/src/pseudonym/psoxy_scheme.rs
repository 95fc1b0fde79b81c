//! The `psoxy` migration scheme: Psoxy's digests and reversible tokens, bit
//! for bit, so pseudonyms and `p~` tokens made by Psoxy stay valid.
//!
//! - Digest: SHA-256(identifier UTF-8 ‖ salt bytes).
//! - Reversible token body (what follows `p~`, before base64url):
//!
//!   ```text
//!   hash (32) ‖ AES-256-CBC-PKCS7(key, IV = hash[0..16], value UTF-8)
//!   ```
//!
//!   where `hash` is the digest of the value (for [`PsoxyScheme::encrypt`]:
//!   of the exact value; Psoxy's `pseudonymize` with a reversible part uses the
//!   digest of the canonical email instead, see
//!   [`PsoxyScheme::encrypt_with_hash`]) and `key` =
//!   PBKDF2-HMAC-SHA256(password = encryption key bytes, salt = salt bytes,
//!   65 536 rounds, 32 bytes), derived once.
//!
//! The format has no MAC: [`PsoxyScheme::decrypt`] accepts a token only if the
//! decrypted value hashes back (constant-time compare) to the token's hash,
//! either as it is or canonicalized as an email.
//!
//! Psoxy's tokens have no kind. A token with a [`TokenKind`] (Veil's
//! addition) keeps the layout but binds the kind into the hash:
//! `hash = SHA-256("veil-kind" 0x00 kind-name 0x00 ‖ value ‖ salt)`. It
//! decrypts only if the value hashes back *with that kind*, so it cannot
//! pass as a token of another kind (or of none); the NUL bytes keep the
//! prefix unambiguous.

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{email, CryptoError, TokenKind};
use crate::secret::Secret;

/// PBKDF2 rounds of Psoxy's key derivation.
pub(crate) const PBKDF2_ROUNDS: u32 = 65_536;
const HASH_LEN: usize = 32;
const BLOCK: usize = 16;

/// Salt and derived AES key of the `psoxy` scheme.
pub(crate) struct PsoxyScheme {
    salt: Secret,
    key: Option<Zeroizing<[u8; 32]>>,
}

/// Psoxy's AES key: PBKDF2-HMAC-SHA256(encryption key, salt, 65 536, 32 bytes).
pub(crate) fn derive_key(encryption_key: &[u8], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(encryption_key, salt, PBKDF2_ROUNDS, &mut key[..]);
    key
}

impl PsoxyScheme {
    /// `encryption_key`: the first configured key, if any (slow: PBKDF2).
    pub(crate) fn new(salt: &Secret, encryption_key: Option<&Secret>) -> Self {
        let key = encryption_key.map(|k| derive_key(k.expose(), salt.expose()));
        PsoxyScheme {
            salt: salt.clone(),
            key,
        }
    }

    /// SHA-256(data ‖ salt).
    pub(crate) fn digest(&self, data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(data);
        h.update(self.salt.expose());
        h.finalize().into()
    }

    /// Token body of the exact value: its own digest is the hash and IV.
    pub(crate) fn encrypt(&self, value: &str) -> Result<Vec<u8>, CryptoError> {
        self.encrypt_with_hash(value, &self.digest(value.as_bytes()))
    }

    /// The hash of a token of `kind` (see the module documentation).
    fn kind_digest(&self, kind: TokenKind, value: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"veil-kind\0");
        h.update(kind.name().as_bytes());
        h.update(b"\0");
        h.update(value);
        h.update(self.salt.expose());
        h.finalize().into()
    }

    /// Token body of the exact value with `kind` bound into its hash, or
    /// Psoxy's own token ([`Self::encrypt`]) without a kind.
    pub(crate) fn encrypt_kind(
        &self,
        value: &str,
        kind: Option<TokenKind>,
    ) -> Result<Vec<u8>, CryptoError> {
        match kind {
            None => self.encrypt(value),
            Some(k) => self.encrypt_with_hash(value, &self.kind_digest(k, value.as_bytes())),
        }
    }

    /// Token body with a given hash (Psoxy's `pseudonymize` passes the digest
    /// of the canonical identifier, which then also serves as the IV).
    pub(crate) fn encrypt_with_hash(
        &self,
        value: &str,
        hash: &[u8; 32],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.key.as_ref().ok_or(CryptoError::NoEncryptionKey)?;
        let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(&key[..], &hash[..BLOCK])
            .map_err(|_| CryptoError::InvalidToken)?
            .encrypt_padded_vec_mut::<Pkcs7>(value.as_bytes());
        let mut body = Vec::with_capacity(HASH_LEN + ciphertext.len());
        body.extend_from_slice(hash);
        body.extend_from_slice(&ciphertext);
        Ok(body)
    }

    /// Decrypts a token body and checks that the value hashes back to its
    /// hash: as it is, or as an email canonicalized with or without
    /// `ignore_dots` (Psoxy hashed the canonical email).
    #[cfg(test)]
    pub fn decrypt(&self, body: &[u8]) -> Result<String, CryptoError> {
        self.decrypt_kind(body).map(|(value, _)| value)
    }

    /// Decrypts a token body of any kind: the value and its kind (`None`
    /// for Psoxy's own tokens).
    pub(crate) fn decrypt_kind(
        &self,
        body: &[u8],
    ) -> Result<(String, Option<TokenKind>), CryptoError> {
        let key = self.key.as_ref().ok_or(CryptoError::NoEncryptionKey)?;
        if body.len() < HASH_LEN + BLOCK || !(body.len() - HASH_LEN).is_multiple_of(BLOCK) {
            return Err(CryptoError::InvalidToken);
        }
        let (hash, ciphertext) = body.split_at(HASH_LEN);
        let plaintext = cbc::Decryptor::<Aes256>::new_from_slices(&key[..], &hash[..BLOCK])
            .map_err(|_| CryptoError::InvalidToken)?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| CryptoError::InvalidToken)?;
        let value = String::from_utf8(plaintext).map_err(|_| CryptoError::InvalidToken)?;
        if self.hashes_to(&value, hash) {
            return Ok((value, None));
        }
        let kind = TokenKind::ALL
            .into_iter()
            .find(|k| bool::from(self.kind_digest(*k, value.as_bytes())[..].ct_eq(hash)));
        match kind {
            Some(k) => Ok((value, Some(k))),
            None => Err(CryptoError::InvalidToken),
        }
    }

    fn hashes_to(&self, value: &str, hash: &[u8]) -> bool {
        let matches = |data: &[u8]| bool::from(self.digest(data)[..].ct_eq(hash));
        if matches(value.as_bytes()) {
            return true;
        }
        match email::parse_address(value) {
            Some(addr) => [false, true]
                .into_iter()
                .any(|ignore_dots| matches(email::canonical(&addr, ignore_dots).as_bytes())),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_value_then_salt() {
        let s = PsoxyScheme::new(&Secret::from("salt"), None);
        let direct: [u8; 32] = Sha256::digest(b"valuesalt").into();
        assert_eq!(s.digest(b"value"), direct);
    }

    #[test]
    fn no_key_means_no_tokens() {
        let s = PsoxyScheme::new(&Secret::from("salt"), None);
        assert_eq!(s.encrypt("x"), Err(CryptoError::NoEncryptionKey));
        assert_eq!(s.decrypt(&[0; 48]), Err(CryptoError::NoEncryptionKey));
    }
}
