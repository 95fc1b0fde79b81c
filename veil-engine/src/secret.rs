//! Secret values (pseudonymization salt, encryption keys) that never print.
//!
//! `Debug` and `Display` show only a fingerprint-free placeholder; the bytes are
//! zeroed on drop. Use [`Secret::fingerprint`] where an operator needs to tell
//! two secrets apart (health check, `doctor`).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A secret byte string.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A short, non-reversible fingerprint: the first 12 hex digits of
    /// SHA-256 over a domain-separated copy of the secret.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"veil-secret-fingerprint\0");
        h.update(self.expose());
        let d = h.finalize();
        d.iter().take(6).map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::from("hunter2-hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.fingerprint().len(), 12);
        assert_ne!(s.fingerprint(), Secret::from("other").fingerprint());
    }
}
