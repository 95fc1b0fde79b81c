//! `pseudonymize`, `pseudonymizeRegexMatches` and `pseudonymizeEmailHeader`:
//! values replaced by keyed hashes (`t~…`), see [`crate::pseudonym`].

use regex::Regex;
use serde_json::Value;

use super::{scalar_text, set, Failure, Outcome};
use crate::pseudonym::{PseudonymizeOptions, Pseudonymizer};

/// `pseudonymize`.
#[derive(Debug)]
pub struct Pseudonymize {
    pub options: PseudonymizeOptions,
    /// `onlyIfRegex`: values that do not match are left as they are.
    pub only_if: Option<Regex>,
}

impl Pseudonymize {
    pub fn apply(&self, value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
        let Some(text) = scalar_text(value, "pseudonymize")? else {
            return Ok(Outcome::Unchanged);
        };
        if text.trim().is_empty() {
            return Ok(set(value, Value::Null));
        }
        if let Some(re) = &self.only_if {
            if !re.is_match(&text) {
                return Ok(Outcome::Unchanged);
            }
        }
        let out = p
            .pseudonymize(&text, self.options)
            .map_err(|e| Failure(e.to_string()))?;
        Ok(set(value, Value::String(out)))
    }
}

/// `pseudonymizeRegexMatches`: capture group 1 of the first match is
/// pseudonymized in place; no match → null.
#[derive(Debug)]
pub struct RegexMatches {
    pub regex: Regex,
}

impl RegexMatches {
    pub fn apply(&self, value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
        let Some(text) = scalar_text(value, "pseudonymizeRegexMatches")? else {
            return Ok(Outcome::Unchanged);
        };
        let new = match self.regex.captures(&text).and_then(|c| c.get(1)) {
            Some(g) if !g.as_str().trim().is_empty() => {
                let pseudonym = p
                    .pseudonymize(g.as_str(), PseudonymizeOptions::default())
                    .map_err(|e| Failure(e.to_string()))?;
                Value::String(format!(
                    "{}{}{}",
                    &text[..g.start()],
                    pseudonym,
                    &text[g.end()..]
                ))
            }
            _ => Value::Null,
        };
        Ok(set(value, new))
    }
}

/// `pseudonymizeEmailHeader`: an RFC 5322 address list; each address is
/// pseudonymized, display names dropped, joined by `, `. No address → null.
pub fn email_header(value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
    let Some(text) = scalar_text(value, "pseudonymizeEmailHeader")? else {
        return Ok(Outcome::Unchanged);
    };
    let mut out = Vec::new();
    for addr in crate::pseudonym::email::parse_address_list(&text) {
        out.push(
            p.pseudonymize(&addr, PseudonymizeOptions::default())
                .map_err(|e| Failure(e.to_string()))?,
        );
    }
    let new = if out.is_empty() {
        Value::Null
    } else {
        Value::String(out.join(", "))
    };
    Ok(set(value, new))
}
