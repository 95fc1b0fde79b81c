//! `tokenize`: values replaced by reversible, authenticated `p~` tokens
//! (see [`crate::pseudonym`]), so the client can send them back in a later
//! request and Veil can re-identify them. With a `kind`, the kind is bound
//! into every token ([`crate::pseudonym::TokenKind`]), and a request
//! parameter that requires another kind refuses it.

use regex::Regex;
use serde_json::Value;

use super::{scalar_text, set, Failure, Outcome};
use crate::pseudonym::{Pseudonymizer, TokenKind};

/// `tokenize`.
#[derive(Debug)]
pub struct Tokenize {
    /// When present, capture group 1 of each match is replaced by its token
    /// (e.g. the user id inside `@odata.nextLink`). A value the regex does
    /// not match at all becomes null (fail closed); a match in which group 1
    /// took no part (an optional group) leaves that part as it is.
    pub regex: Option<Regex>,
    /// The kind bound into the tokens; none when `None` (tokens as before
    /// kinds existed).
    pub kind: Option<TokenKind>,
}

impl Tokenize {
    pub fn apply(&self, value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
        let Some(text) = scalar_text(value, "tokenize")? else {
            return Ok(Outcome::Unchanged);
        };
        if text.trim().is_empty() {
            return Ok(set(value, Value::Null));
        }
        let err = |e: crate::pseudonym::CryptoError| Failure(e.to_string());
        let new = match &self.regex {
            None => p.encrypt_kind(&text, self.kind).map_err(err)?,
            Some(re) => {
                let mut out = String::with_capacity(text.len() + 64);
                let mut last = 0;
                let mut any = false;
                for caps in re.captures_iter(&text) {
                    any = true;
                    let Some(g) = caps.get(1) else { continue };
                    if g.as_str().is_empty() {
                        continue;
                    }
                    out.push_str(&text[last..g.start()]);
                    out.push_str(&p.encrypt_kind(g.as_str(), self.kind).map_err(err)?);
                    last = g.end();
                }
                if !any {
                    return Ok(set(value, Value::Null));
                }
                out.push_str(&text[last..]);
                out
            }
        };
        Ok(set(value, Value::String(new)))
    }
}
