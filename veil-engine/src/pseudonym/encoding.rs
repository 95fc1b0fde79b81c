//! Output strings: the `t~`, `p~`, `h~` and `e~` prefixes, base64url
//! (no padding) of digests and token bodies, parsing a `p~` token back into
//! its body bytes, and the JSON form of a pseudonym.
//!
//! This module owns the textual format only; which bytes go in is decided by
//! the schemes ([`super::hmac_scheme`], [`super::psoxy_scheme`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::CryptoError;

/// Prefix of a (non-reversible) pseudonym.
pub(crate) const HASH_PREFIX: &str = "t~";
/// Prefix of a reversible token.
pub(crate) const REVERSIBLE_PREFIX: &str = "p~";
/// Prefix of a tokenized (hashed) email domain.
pub(crate) const DOMAIN_HASH_PREFIX: &str = "h~";
/// Prefix of an encrypted email domain.
pub(crate) const DOMAIN_ENCRYPTED_PREFIX: &str = "e~";
/// Length of the base64url (no padding) form of a 32-byte digest.
pub(crate) const DIGEST_B64_LEN: usize = 43;

/// Appends base64url (no padding) of `bytes` to `out`.
pub(crate) fn push_b64(out: &mut String, bytes: &[u8]) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// base64url (no padding) of `bytes`.
pub(crate) fn b64(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    push_b64(&mut s, bytes);
    s
}

/// Strict base64url (no padding, canonical trailing bits) decoding.
pub(crate) fn decode_b64(s: &str) -> Result<Vec<u8>, CryptoError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| CryptoError::InvalidToken)
}

/// The body bytes of a reversible token: strips `p~` (else
/// [`CryptoError::NotAToken`]), ignores an `@domain` suffix, decodes the
/// base64url rest (else [`CryptoError::InvalidToken`]).
pub(crate) fn reversible_body(token: &str) -> Result<Vec<u8>, CryptoError> {
    let rest = token
        .strip_prefix(REVERSIBLE_PREFIX)
        .ok_or(CryptoError::NotAToken)?;
    // base64url never contains '@', so the first '@' starts the domain.
    let body = match rest.find('@') {
        Some(at) => &rest[..at],
        None => rest,
    };
    if body.is_empty() {
        return Err(CryptoError::InvalidToken);
    }
    decode_b64(body)
}

/// The fields of the JSON encoding, in output order.
#[derive(Debug, Default)]
pub(crate) struct JsonFields<'a> {
    pub domain: Option<&'a str>,
    pub hash: &'a str,
    pub original: Option<&'a str>,
    pub reversible: Option<&'a str>,
}

/// Compact JSON `{"domain":…,"hash":…,"original":…,"reversible":…}` with
/// only the fields present, in exactly that order.
pub(crate) fn json(fields: &JsonFields<'_>) -> String {
    let mut map = serde_json::Map::new();
    let entries = [
        ("domain", fields.domain),
        ("hash", Some(fields.hash)),
        ("original", fields.original),
        ("reversible", fields.reversible),
    ];
    for (name, value) in entries {
        if let Some(v) = value {
            map.insert(name.to_owned(), serde_json::Value::String(v.to_owned()));
        }
    }
    // The order is insertion order (preserve_order) and, as it happens, also
    // alphabetical, so it holds either way.
    serde_json::Value::Object(map).to_string()
}

/// Whether a (decoded) value is a single well-formed `p~` token: the prefix
/// and at least 16 base64url characters, nothing else.
pub(crate) fn is_token(value: &str) -> bool {
    value.strip_prefix(REVERSIBLE_PREFIX).is_some_and(|body| {
        body.len() >= 16
            && body
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_round_trip_and_strictness() {
        let d = [0xffu8; 32];
        let s = b64(&d);
        assert_eq!(s.len(), DIGEST_B64_LEN);
        assert!(!s.contains(['+', '/', '=']));
        assert_eq!(decode_b64(&s).unwrap(), d);
        // Padding, standard alphabet and non-canonical trailing bits fail.
        assert_eq!(decode_b64("AA=="), Err(CryptoError::InvalidToken));
        assert_eq!(decode_b64("+/+/"), Err(CryptoError::InvalidToken));
        assert_eq!(decode_b64("AB"), Err(CryptoError::InvalidToken));
        assert_eq!(decode_b64("A"), Err(CryptoError::InvalidToken));
    }

    #[test]
    fn reversible_body_parsing() {
        assert_eq!(reversible_body("t~AAAA"), Err(CryptoError::NotAToken));
        assert_eq!(reversible_body(""), Err(CryptoError::NotAToken));
        assert_eq!(reversible_body("p~"), Err(CryptoError::InvalidToken));
        assert_eq!(reversible_body("p~@x.com"), Err(CryptoError::InvalidToken));
        assert_eq!(reversible_body("p~!!"), Err(CryptoError::InvalidToken));
        assert_eq!(reversible_body("p~AAAA").unwrap(), [0, 0, 0]);
        assert_eq!(reversible_body("p~AAAA@Example.com").unwrap(), [0, 0, 0]);
    }

    #[test]
    fn json_field_order_and_escaping() {
        let f = JsonFields {
            domain: Some("X.com"),
            hash: "h",
            original: Some("a\"b"),
            reversible: Some("p~r"),
        };
        assert_eq!(
            json(&f),
            r#"{"domain":"X.com","hash":"h","original":"a\"b","reversible":"p~r"}"#
        );
        let f = JsonFields {
            hash: "h",
            reversible: Some("p~r"),
            ..Default::default()
        };
        assert_eq!(json(&f), r#"{"hash":"h","reversible":"p~r"}"#);
    }
}
