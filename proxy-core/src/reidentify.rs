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

/// Characters encoded in a rebuilt query name or value.
const QUERY: &AsciiSet = &SEGMENT.add(b'&').add(b'=').add(b'+').add(b'\'');

static TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"p~[A-Za-z0-9_-]{16,}").expect("static regex"));

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

/// Decrypts every `p~` token in `value`; returns the new text and count.
pub fn decrypt_tokens(value: &str, p: &Pseudonymizer) -> Result<(String, usize), CryptoError> {
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    let mut n = 0;
    for m in TOKEN.find_iter(value) {
        out.push_str(&value[last..m.start()]);
        out.push_str(&p.decrypt(m.as_str())?);
        last = m.end();
        n += 1;
    }
    out.push_str(&value[last..]);
    Ok((out, n))
}

/// Re-identifies a raw path and query. Segments are decoded, decrypted when
/// they hold a token, and re-encoded; untouched segments stay as they were.
pub fn reidentify(
    path: &str,
    query: Option<&str>,
    p: &Pseudonymizer,
) -> Result<Reidentified, ReidentifyError> {
    let mut tokens = 0;
    let mut segs = Vec::new();
    for (i, raw) in path.split('/').enumerate() {
        let decoded = percent_decode_str(raw).decode_utf8_lossy();
        if decoded.contains("p~") {
            let (plain, n) = decrypt_tokens(&decoded, p).map_err(|error| ReidentifyError {
                place: format!("path segment {i}"),
                error,
            })?;
            if n > 0 {
                tokens += n;
                segs.push(utf8_percent_encode(&plain, SEGMENT).to_string());
                continue;
            }
        }
        segs.push(raw.to_string());
    }
    let query = match query {
        None => None,
        Some(q) => {
            let mut parts = Vec::new();
            for piece in q.split('&') {
                let (name, value) = piece
                    .split_once('=')
                    .map_or((piece, None), |(a, b)| (a, Some(b)));
                let Some(value) = value else {
                    parts.push(piece.to_string());
                    continue;
                };
                let decoded = percent_decode_str(&value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned();
                if !decoded.contains("p~") {
                    parts.push(piece.to_string());
                    continue;
                }
                let pname = percent_decode_str(name).decode_utf8_lossy().into_owned();
                let (plain, n) = decrypt_tokens(&decoded, p).map_err(|error| ReidentifyError {
                    place: format!("query parameter {pname}"),
                    error,
                })?;
                if n == 0 {
                    parts.push(piece.to_string());
                } else {
                    tokens += n;
                    parts.push(format!("{name}={}", utf8_percent_encode(&plain, QUERY)));
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
