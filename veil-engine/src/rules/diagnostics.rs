//! "Did you mean": suggestions for misspelled keys, transforms and
//! methods in rule files, shared by the loader and the transform parser.

use std::sync::LazyLock;

use regex::Regex;

static UNKNOWN_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"unknown (?:field|variant) `([^`]*)`, expected (?:one of )?(.*)$")
        .expect("static regex")
});

/// Adds "did you mean `x`?" to serde's unknown-field messages.
pub(crate) fn with_suggestion(msg: &str) -> String {
    let Some(c) = UNKNOWN_FIELD.captures(msg) else {
        return msg.to_string();
    };
    let expected: Vec<&str> = c[2]
        .split([',', ' '])
        .map(|s| s.trim_matches('`'))
        .filter(|s| !s.is_empty() && *s != "or")
        .collect();
    match closest(&c[1], expected.iter().copied()) {
        Some(best) => format!("{msg} (did you mean `{best}`?)"),
        None => msg.to_string(),
    }
}

/// The candidate closest to `word`, if it is plausibly a misspelling.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lw = word.to_ascii_lowercase();
    candidates
        .map(|c| (strsim::damerau_levenshtein(&lw, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
