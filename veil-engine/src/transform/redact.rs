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
/// kept, in list order, joined by `,`.
#[derive(Debug)]
pub struct ExceptPhrases {
    pub phrases: Vec<(String, Regex)>,
}

impl ExceptPhrases {
    /// Builds the word-bounded, case-insensitive matcher of each phrase.
    pub fn new(phrases: &[String]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(phrases.len());
        for p in phrases {
            let trimmed = p.trim();
            if trimmed.is_empty() {
                return Err("allowedPhrases contains an empty phrase".into());
            }
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let left = if word(trimmed.chars().next()) {
                r"\b"
            } else {
                ""
            };
            let right = if word(trimmed.chars().last()) {
                r"\b"
            } else {
                ""
            };
            // Any run of white space in the phrase matches any run in the text.
            let body = trimmed
                .split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+");
            let re = Regex::new(&format!("(?i){left}{body}{right}")).map_err(|e| e.to_string())?;
            out.push((p.clone(), re));
        }
        Ok(ExceptPhrases { phrases: out })
    }

    pub fn apply(&self, s: &str) -> String {
        self.phrases
            .iter()
            .filter(|(_, re)| re.is_match(s))
            .map(|(p, _)| p.as_str())
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
    fn phrases_in_list_order_word_bounded() {
        let t = ExceptPhrases::new(&[
            "1:1".into(),
            "weekly".into(),
            "sync".into(),
            "out of office".into(),
        ])
        .unwrap();
        assert_eq!(t.apply("Sync: weekly planning"), "weekly,sync");
        assert_eq!(t.apply("1:1 Alex / Priya"), "1:1");
        assert_eq!(t.apply("asynchronous"), "");
        assert_eq!(t.apply("OUT  OF\tOFFICE - Priya"), "out of office");
        let brackets = ExceptPhrases::new(&["[External]".into()]).unwrap();
        assert_eq!(brackets.apply("[external] hello"), "[External]");
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
