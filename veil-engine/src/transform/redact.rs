//! Removal and text reduction: `redact`, `redactRegexMatches`,
//! `redactExceptPhrases`, `redactExceptSubstringsMatchingRegexes`,
//! `filterTokenByRegex`.
//!
//! `redact` itself has no state: it removes the selected member or array
//! element (see [`super::Outcome::Remove`]).

use regex::Regex;

/// `redactRegexMatches`: every match of every regex is removed.
#[derive(Debug)]
pub struct RegexMatches {
    pub redactions: Vec<Regex>,
}

impl RegexMatches {
    pub fn apply(&self, s: &str) -> Option<String> {
        let mut out = std::borrow::Cow::Borrowed(s);
        for re in &self.redactions {
            if let std::borrow::Cow::Owned(o) = re.replace_all(&out, "") {
                out = std::borrow::Cow::Owned(o);
            }
        }
        Some(out.into_owned())
    }
}

/// `redactExceptPhrases`: only the listed phrases found in the text are
/// kept, as they appear in the text, in list order, joined by `,`.
///
/// Psoxy's semantics, exactly: each phrase becomes the case-insensitive
/// pattern `\b(<phrase, literally>)[\s:]*\b`; for each phrase in list
/// order, group 1 of its first match in the original value is kept; the
/// kept texts are joined with `,` (`""` when none matched). A blank value
/// stays as it is. "Weekly Review" with phrases `[weekly, review]` gives
/// `Weekly,Review`.
#[derive(Debug)]
pub struct ExceptPhrases {
    pub phrases: Vec<Regex>,
}

/// A list of `allowedPhrases` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PhraseError {
    #[error("allowedPhrases contains an empty phrase")]
    Empty,
    /// The phrase's matcher could not be built (e.g. too large).
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

impl ExceptPhrases {
    /// Builds each phrase's matcher.
    pub fn new(phrases: &[String]) -> Result<Self, PhraseError> {
        let mut out = Vec::with_capacity(phrases.len());
        for p in phrases {
            if p.trim().is_empty() {
                return Err(PhraseError::Empty);
            }
            let re = Regex::new(&format!(r"(?i)\b({})[\s:]*\b", regex::escape(p)))?;
            out.push(re);
        }
        Ok(ExceptPhrases { phrases: out })
    }

    pub fn apply(&self, s: &str) -> String {
        if s.trim().is_empty() {
            return s.to_string();
        }
        self.phrases
            .iter()
            .filter_map(|re| re.captures(s).and_then(|c| c.get(1)))
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `redactExceptSubstringsMatchingRegexes`: the longest match of any regex
/// is kept; nothing else.
#[derive(Debug)]
pub struct ExceptSubstrings {
    pub exceptions: Vec<Regex>,
}

impl ExceptSubstrings {
    pub fn apply(&self, s: &str) -> String {
        self.exceptions
            .iter()
            .flat_map(|re| re.find_iter(s))
            .max_by_key(|m| m.len())
            .map(|m| m.as_str().to_string())
            .unwrap_or_default()
    }
}

/// `filterTokenByRegex`: split on the delimiter; keep tokens that fully
/// match a filter; join with a space; none → null.
#[derive(Debug)]
pub struct FilterTokens {
    /// Anchored (`^(?:…)$`) filters.
    pub filters: Vec<Regex>,
    pub delimiter: Regex,
}

impl FilterTokens {
    pub fn apply(&self, s: &str) -> Option<String> {
        let kept: Vec<&str> = self
            .delimiter
            .split(s)
            .filter(|t| !t.is_empty() && self.filters.iter().any(|f| f.is_match(t)))
            .collect();
        (!kept.is_empty()).then(|| kept.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matches_are_removed() {
        let t = RegexMatches {
            redactions: vec![
                Regex::new(r"pwd=[^&\s]*&?").unwrap(),
                Regex::new("secret").unwrap(),
            ],
        };
        assert_eq!(
            t.apply("https://zoom.us/j/1?pwd=abc&x=1 secret").unwrap(),
            "https://zoom.us/j/1?x=1 "
        );
    }

    #[test]
    fn phrases_keep_the_text_as_found_in_list_order() {
        let t = ExceptPhrases::new(&[
            "1:1".into(),
            "weekly".into(),
            "review".into(),
            "sync".into(),
            "out of office".into(),
        ])
        .unwrap();
        // Psoxy's semantics: the matched text as it appears, first match
        // per phrase, phrases in list order.
        assert_eq!(t.apply("Sync: weekly planning"), "weekly,Sync");
        assert_eq!(t.apply("Weekly Review"), "Weekly,Review");
        assert_eq!(t.apply("REVIEW: weekly review, WEEKLY"), "weekly,REVIEW");
        assert_eq!(t.apply("1:1 Alex / Priya"), "1:1");
        assert_eq!(t.apply("Review:: notes"), "Review");
        assert_eq!(t.apply("asynchronous"), "");
        assert_eq!(t.apply("reviewer sync-up"), "sync");
        // Phrases are literal: two spaces are not one.
        assert_eq!(t.apply("OUT  OF OFFICE - Priya"), "");
        assert_eq!(t.apply("Out of Office - Priya"), "Out of Office");
        // A blank value stays as it is.
        assert_eq!(t.apply("   "), "   ");
        assert_eq!(t.apply(""), "");
        // `\b` before a phrase that starts with punctuation needs a word
        // character before it, as in Psoxy.
        let brackets = ExceptPhrases::new(&["[External]".into()]).unwrap();
        assert_eq!(brackets.apply("[external] hello"), "");
        assert_eq!(brackets.apply("x[external] hello"), "[external]");
        assert!(ExceptPhrases::new(&[" ".into()]).is_err());
    }

    #[test]
    fn longest_exception_wins() {
        let t = ExceptSubstrings {
            exceptions: vec![
                Regex::new(r"https://zoom\.us/j/\d+").unwrap(),
                Regex::new(r"https://teams\.microsoft\.com/l/meetup-join/\S+").unwrap(),
            ],
        };
        assert_eq!(
            t.apply(
                "Join https://zoom.us/j/123 or https://teams.microsoft.com/l/meetup-join/19%3a abc"
            ),
            "https://teams.microsoft.com/l/meetup-join/19%3a"
        );
        assert_eq!(t.apply("nothing"), "");
    }

    #[test]
    fn tokens_filtered() {
        let t = FilterTokens {
            filters: vec![Regex::new(r"^(?:https://\S+)$").unwrap()],
            delimiter: Regex::new(r"\s+").unwrap(),
        };
        assert_eq!(
            t.apply("see https://a.example/x and https://b.example")
                .unwrap(),
            "https://a.example/x https://b.example"
        );
        assert_eq!(t.apply("no links here"), None);
    }
}
