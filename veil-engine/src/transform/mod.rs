//! What each transform does to one value.
//!
//! One module per family: [`redact`] (removal and the text-reducing
//! transforms), [`pseudonymize`] (hashes, email headers, regex matches) and
//! [`tokenize`] (reversible `p~` tokens). Each transform is compiled once
//! from its [`crate::rules::TransformSpec`] into a [`Transform`]; the
//! sanitizer calls [`Transform::apply`] on every value one of its JSONPaths
//! selects.

pub(crate) mod pseudonymize;
pub(crate) mod redact;
pub(crate) mod tokenize;

use serde_json::Value;

use crate::pseudonym::Pseudonymizer;

/// What applying a transform to a value did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Changed,
    /// Remove the value from its parent (object member or array element).
    Remove,
}

/// A transform that cannot do its job on this value; the response fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

/// A compiled transform.
#[derive(Debug)]
pub enum Transform {
    Redact,
    RedactRegexMatches(redact::RegexMatches),
    RedactExceptPhrases(redact::ExceptPhrases),
    RedactExceptSubstringsMatchingRegexes(redact::ExceptSubstrings),
    FilterTokenByRegex(redact::FilterTokens),
    Pseudonymize(pseudonymize::Pseudonymize),
    PseudonymizeRegexMatches(pseudonymize::RegexMatches),
    PseudonymizeEmailHeader,
    Tokenize(tokenize::Tokenize),
    /// A reducing transform whose output is screened by [`crate::detect`]
    /// (the `defaultDeny` profile): detected values are cut out.
    Screened(Box<Transform>),
}

impl Transform {
    /// The rule-file name of the method.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Redact => "redact",
            Transform::RedactRegexMatches(_) => "redactRegexMatches",
            Transform::RedactExceptPhrases(_) => "redactExceptPhrases",
            Transform::RedactExceptSubstringsMatchingRegexes(_) => {
                "redactExceptSubstringsMatchingRegexes"
            }
            Transform::FilterTokenByRegex(_) => "filterTokenByRegex",
            Transform::Pseudonymize(_) => "pseudonymize",
            Transform::PseudonymizeRegexMatches(_) => "pseudonymizeRegexMatches",
            Transform::PseudonymizeEmailHeader => "pseudonymizeEmailHeader",
            Transform::Tokenize(_) => "tokenize",
            Transform::Screened(inner) => inner.name(),
        }
    }

    /// Whether the output for a string depends only on that string (so the
    /// sanitizer may reuse it for repeated values within a document).
    pub fn is_deterministic_on_strings(&self) -> bool {
        matches!(
            self,
            Transform::Pseudonymize(_)
                | Transform::PseudonymizeRegexMatches(_)
                | Transform::PseudonymizeEmailHeader
                | Transform::Tokenize(_)
        ) || matches!(self, Transform::Screened(inner) if inner.is_deterministic_on_strings())
    }

    /// Whether the transform keeps part of a free-text value (and so its
    /// output is screened under the `defaultDeny` profile).
    pub fn reduces_text(&self) -> bool {
        matches!(
            self,
            Transform::RedactRegexMatches(_)
                | Transform::RedactExceptPhrases(_)
                | Transform::RedactExceptSubstringsMatchingRegexes(_)
                | Transform::FilterTokenByRegex(_)
        )
    }

    /// Writes the output for the string `text` to `out` as JSON when it can
    /// be had without computing it (a `pseudonymize` whose pseudonym the
    /// cache holds: see [`pseudonymize::Pseudonymize::write_cached`]);
    /// returns whether it differs from `text`, or `None` when nothing was
    /// written.
    pub(crate) fn write_cached(
        &self,
        text: &str,
        p: &Pseudonymizer,
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        match self {
            Transform::Pseudonymize(t) => t.write_cached(text, p, out),
            _ => None,
        }
    }

    /// Applies the transform to `value` in place.
    pub fn apply(&self, value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
        match self {
            Transform::Redact => Ok(Outcome::Remove),
            Transform::RedactRegexMatches(t) => Ok(on_text(value, |s| t.apply(s))),
            Transform::RedactExceptPhrases(t) => Ok(on_text(value, |s| Some(t.apply(s)))),
            Transform::RedactExceptSubstringsMatchingRegexes(t) => {
                Ok(on_text(value, |s| Some(t.apply(s))))
            }
            Transform::FilterTokenByRegex(t) => Ok(on_text(value, |s| t.apply(s))),
            Transform::Pseudonymize(t) => t.apply(value, p),
            Transform::PseudonymizeRegexMatches(t) => t.apply(value, p),
            Transform::PseudonymizeEmailHeader => pseudonymize::email_header(value, p),
            Transform::Tokenize(t) => t.apply(value, p),
            Transform::Screened(inner) => {
                let outcome = inner.apply(value, p)?;
                if let Value::String(text) = value {
                    if let Some((screened, _hits)) = crate::detect::screen(text) {
                        *text = screened;
                        return Ok(Outcome::Changed);
                    }
                }
                Ok(outcome)
            }
        }
    }
}

/// Applies a string → string-or-null function to a text value. Non-strings
/// become null (they cannot be reduced safely); null stays null.
fn on_text(value: &mut Value, f: impl FnOnce(&str) -> Option<String>) -> Outcome {
    let new = match value {
        Value::Null => return Outcome::Unchanged,
        Value::String(s) => f(s).map(Value::String).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    set(value, new)
}

/// Replaces `value` with `new`, reporting whether anything changed.
pub(crate) fn set(value: &mut Value, new: Value) -> Outcome {
    if *value == new {
        Outcome::Unchanged
    } else {
        *value = new;
        Outcome::Changed
    }
}

/// Text of a scalar that pseudonymize/tokenize accept: strings as they are,
/// numbers and booleans as their JSON text. `Ok(None)` for null;
/// objects and arrays are a failure (fail closed).
pub(crate) fn scalar_text(value: &Value, what: &str) -> Result<Option<String>, Failure> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) => Err(Failure(format!(
            "{what} met an array; select its elements (e.g. `[*]`) instead"
        ))),
        Value::Object(_) => Err(Failure(format!(
            "{what} met an object; select the fields to {what} instead"
        ))),
    }
}
