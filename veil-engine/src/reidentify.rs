//! Re-identification of reversible tokens in a request: `p~` tokens in path
//! segments and query values are decrypted before the request goes
//! upstream. A token that does not decrypt refuses the whole request —
//! nothing is forwarded.

use std::sync::LazyLock;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use regex::Regex;

use crate::pseudonym::{CryptoError, Pseudonymizer};

/// Characters encoded in a rebuilt path segment (RFC 3986 `pchar` keeps
/// `:` and `@`, which Graph ids such as chat ids contain).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters encoded when a decrypted value goes into a query value:
/// only what would end the value or break the URL. Everything else is
/// inserted verbatim, because the plaintext of a query token is usually
/// raw URL text itself (a tokenized `$skiptoken`, whose `+`, `/` and `%2B`
/// Graph must get back byte for byte).
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'&')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Anything that looks like a token in raw (percent-encoded) request text:
/// `p~` — or `p%7E`, the same thing encoded — and whatever token
/// characters follow, however few. A match that does not decrypt refuses
/// the request, so a malformed or truncated token is never forwarded.
static RAW_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"p(?:~|%7[Ee])[A-Za-z0-9_-]*").expect("static regex"));

/// A whole value that is one well-formed token.
static WHOLE_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^p~[A-Za-z0-9_-]{16,}$").expect("static regex"));

/// Whether a (decoded) value is a single well-formed `p~` token.
pub fn is_token(value: &str) -> bool {
    WHOLE_TOKEN.is_match(value)
}

/// Why a request could not be re-identified.
#[derive(Debug, PartialEq, Eq)]
pub struct ReidentifyError {
    /// Where the bad token was: `path segment 3`, `query parameter $filter`.
    pub place: String,
    pub error: CryptoError,
}

impl std::fmt::Display for ReidentifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the reversible token in the {} cannot be used: {}",
            self.place, self.error
        )
    }
}

impl std::error::Error for ReidentifyError {}

/// The request target after re-identification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reidentified {
    pub path: String,
    pub query: Option<String>,
    /// How many tokens were decrypted.
    pub tokens: usize,
}

/// Decrypts every token in the raw text `raw`, percent-encoding each
/// plaintext with `set`; the text around the tokens stays byte for byte.
/// Returns the new text and how many tokens it held.
fn decrypt_raw(
    raw: &str,
    set: &'static AsciiSet,
    p: &Pseudonymizer,
) -> Result<(String, usize), CryptoError> {
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut n = 0;
    for m in RAW_TOKEN.find_iter(raw) {
        // The match is `p~…` or `p%7E…` (three bytes for the `~`).
        let rest = &m.as_str()[1..];
        let body = rest.strip_prefix('~').unwrap_or_else(|| &rest[3..]);
        let plain = p.decrypt(&format!("p~{body}"))?;
        out.push_str(&raw[last..m.start()]);
        out.extend(utf8_percent_encode(&plain, set));
        last = m.end();
        n += 1;
    }
    out.push_str(&raw[last..]);
    Ok((out, n))
}

/// Re-identifies a raw path and query: every token in a path segment or a
/// query value is decrypted and put back percent-encoded; all other bytes
/// of the target stay exactly as the client sent them.
pub fn reidentify(
    path: &str,
    query: Option<&str>,
    p: &Pseudonymizer,
) -> Result<Reidentified, ReidentifyError> {
    let mut tokens = 0;
    let mut segs = Vec::new();
    for (i, raw) in path.split('/').enumerate() {
        let (seg, n) = decrypt_raw(raw, SEGMENT, p).map_err(|error| ReidentifyError {
            place: format!("path segment {i}"),
            error,
        })?;
        tokens += n;
        segs.push(seg);
    }
    let query = match query {
        None => None,
        Some(q) => {
            let mut parts = Vec::new();
            for piece in q.split('&') {
                let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                let (value, n) = decrypt_raw(value, QUERY, p).map_err(|error| ReidentifyError {
                    place: format!(
                        "query parameter {}",
                        percent_decode_str(name).decode_utf8_lossy()
                    ),
                    error,
                })?;
                tokens += n;
                if n == 0 {
                    parts.push(piece.to_string());
                } else {
                    parts.push(format!("{name}={value}"));
                }
            }
            Some(parts.join("&"))
        }
    };
    Ok(Reidentified {
        path: segs.join("/"),
        query,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::{EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme};
    use crate::secret::Secret;

    fn pseudonymizer() -> Pseudonymizer {
        Pseudonymizer::new(PseudonymConfig {
            scheme: Scheme::Hmac,
            salt: Secret::from("0123456789abcdef0123456789abcdef"),
            encryption_keys: vec![("k1".into(), Secret::from("k".repeat(32).as_str()))],
            email: EmailPolicy::default(),
        })
        .unwrap()
    }

    #[test]
    fn tokens_in_path_and_query_are_decrypted_and_the_rest_kept_verbatim() {
        let p = pseudonymizer();
        let user = p.encrypt("priya.raman@contoso.example").unwrap();
        let skip = p.encrypt("RFNwdAIAAQAAAB4xOm+c55/AZ8%2B=").unwrap();
        let r = reidentify(
            &format!("/v1.0/users/{user}/messages"),
            Some(&format!("$top=10&$skiptoken={skip}&$filter=a+eq+%27b%27")),
            &p,
        )
        .unwrap();
        assert_eq!(r.path, "/v1.0/users/priya.raman@contoso.example/messages");
        assert_eq!(
            r.query.as_deref(),
            Some("$top=10&$skiptoken=RFNwdAIAAQAAAB4xOm+c55/AZ8%2B=&$filter=a+eq+%27b%27")
        );
        assert_eq!(r.tokens, 2);
    }

    #[test]
    fn an_encoded_tilde_is_still_a_token() {
        let p = pseudonymizer();
        let user = p.encrypt("a/b c").unwrap();
        let encoded = user.replacen('~', "%7e", 1);
        let r = reidentify(&format!("/v1.0/users/{encoded}"), None, &p).unwrap();
        assert_eq!(r.path, "/v1.0/users/a%2Fb%20c");
    }

    #[test]
    fn short_or_forged_tokens_refuse_the_request() {
        let p = pseudonymizer();
        for bad in [
            "p~",
            "p~x",
            "p~AAAAAAAA",
            "p~priya.raman@contoso.example",
            "p%7EAAAA",
        ] {
            let err = reidentify(&format!("/v1.0/users/{bad}"), None, &p).unwrap_err();
            assert_eq!(err.place, "path segment 3", "{bad}");
            let err =
                reidentify("/v1.0/users", Some(&format!("$filter=id eq '{bad}'")), &p).unwrap_err();
            assert_eq!(err.place, "query parameter $filter", "{bad}");
        }
    }

    #[test]
    fn whole_token_check() {
        let p = pseudonymizer();
        assert!(is_token(&p.encrypt("x").unwrap()));
        for bad in [
            "p~",
            "p~x",
            "p~AAAAAAAA",
            "xp~AAAAAAAAAAAAAAAAAAAA",
            "p~AAAAAAAAAAAAAAAAAAAA/x",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
