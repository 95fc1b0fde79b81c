//! Translation of Java-dialect regexes (as Psoxy rule files are written) to
//! the `regex` crate's dialect.
//!
//! Translated: `\Q…\E` literal quoting, the empty group `(?)`, and named
//! groups `(?<name>…)`. Refused with an error naming the pattern (never a
//! silent change of meaning): look-ahead/look-behind, atomic groups,
//! possessive quantifiers, back-references, and `\p{java…}` classes.

use regex::Regex;

/// A Java regex that cannot be used; each variant names the pattern.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum RegexError {
    /// A construct Veil refuses rather than change its meaning.
    #[error("regex `{pattern}` uses {what}, which Veil cannot translate")]
    Unsupported { pattern: String, what: String },
    #[error("regex `{pattern}` ends with a lone backslash")]
    LoneBackslash { pattern: String },
    /// The `regex` crate's complaint (shown on one line).
    #[error("invalid regex `{pattern}`: {}", one_line(&.error.to_string()))]
    Invalid {
        pattern: String,
        error: regex::Error,
    },
}

/// Translates `pattern` and compiles it. `case_insensitive` adds `(?i)`;
/// `anchored` requires the match to cover the whole input.
pub(crate) fn compile(
    pattern: &str,
    case_insensitive: bool,
    anchored: bool,
) -> Result<Regex, RegexError> {
    let translated = translate(pattern)?;
    let mut full = String::with_capacity(translated.len() + 12);
    if case_insensitive {
        full.push_str("(?i)");
    }
    if anchored {
        full.push_str("^(?:");
        full.push_str(&translated);
        full.push_str(")$");
    } else {
        full.push_str(&translated);
    }
    Regex::new(&full).map_err(|error| RegexError::Invalid {
        pattern: pattern.to_string(),
        error,
    })
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Translates a Java regex into the `regex` crate's syntax.
pub(crate) fn translate(pattern: &str) -> Result<String, RegexError> {
    let unsupported = |what: &str| {
        Err(RegexError::Unsupported {
            pattern: pattern.to_string(),
            what: what.to_string(),
        })
    };
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                return Err(RegexError::LoneBackslash {
                    pattern: pattern.to_string(),
                });
            };
            match n {
                'Q' => {
                    // Literal until \E (or the end).
                    let start = i + 2;
                    let mut end = start;
                    while end < chars.len()
                        && !(chars[end] == '\\' && chars.get(end + 1) == Some(&'E'))
                    {
                        end += 1;
                    }
                    let literal: String = chars[start..end].iter().collect();
                    out.push_str(&regex::escape(&literal));
                    i = if end < chars.len() { end + 2 } else { end };
                    continue;
                }
                '1'..='9' if !in_class => return unsupported("a back-reference"),
                'k' if !in_class => return unsupported("a named back-reference"),
                'p' | 'P' if chars.get(i + 2) == Some(&'{') => {
                    let rest: String = chars[i + 3..].iter().take(4).collect();
                    if rest.starts_with("java") {
                        return unsupported("a `\\p{java…}` class");
                    }
                }
                'G' | 'Z' => return unsupported(&format!("`\\{n}`")),
                _ => {}
            }
            out.push(c);
            out.push(n);
            i += 2;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                // A leading `]` or `^]` is literal.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                i += 1;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let next = chars.get(i + 2).copied();
                let after = chars.get(i + 3).copied();
                match (next, after) {
                    (Some(')'), _) => {
                        out.push_str("(?:");
                        i += 2; // the ')' is emitted by the next iteration
                    }
                    (Some('='), _) | (Some('!'), _) => return unsupported("a look-ahead"),
                    (Some('<'), Some('=')) | (Some('<'), Some('!')) => {
                        return unsupported("a look-behind")
                    }
                    (Some('>'), _) => return unsupported("an atomic group"),
                    _ => {
                        out.push_str("(?");
                        i += 2;
                    }
                }
            }
            '+' if i > 0 && is_quantifier_end(&chars, i - 1) => {
                return unsupported("a possessive quantifier")
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Whether the char at `j` ends a quantifier (`*`, `+`, `?`, `}`), so that a
/// following `+` makes it possessive.
fn is_quantifier_end(chars: &[char], j: usize) -> bool {
    let c = chars[j];
    let escaped = j > 0 && chars[j - 1] == '\\' && !(j > 1 && chars[j - 2] == '\\');
    if escaped {
        return false;
    }
    match c {
        '*' | '+' | '?' => {
            // `(?+` is not a quantifier; `a?+` is.
            !(c == '?' && j > 0 && chars[j - 1] == '(')
        }
        // `{n,m}` is a quantifier; the `}` of `\p{L}` or `\x{41}` is not.
        '}' => match chars[..j].iter().rposition(|&c| c == '{') {
            Some(open) => {
                !(open >= 2
                    && matches!(chars[open - 1], 'p' | 'P' | 'x')
                    && chars[open - 2] == '\\')
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_blocks_become_escaped_literals() {
        let re = compile(r"^\Q/v1.0/users/\E[^/]+\Q/messages?$top=\E\d+$", true, true).unwrap();
        assert!(re.is_match("/v1.0/users/abc/messages?$top=10"));
        assert!(re.is_match("/V1.0/USERS/abc/MESSAGES?$TOP=10"));
        assert!(!re.is_match("/v1.0/users/abc/messagesX$top=10"));
    }

    #[test]
    fn unterminated_quote_runs_to_the_end() {
        assert_eq!(translate(r"a\Q.b").unwrap(), r"a\.b");
    }

    #[test]
    fn empty_group_and_named_groups() {
        assert_eq!(translate("a(?)b").unwrap(), "a(?:)b");
        let re = compile("(?<id>[0-9]+)", false, true).unwrap();
        assert_eq!(&re.captures("42").unwrap()["id"], "42");
    }

    #[test]
    fn untranslatable_constructs_are_errors_naming_the_pattern() {
        for p in [
            r"a(?=b)",
            r"a(?!b)",
            r"(?<=a)b",
            r"(?<!a)b",
            r"(?>ab)",
            r"a++",
            r"a*+",
            r"(a)\1",
            r"\p{javaLowerCase}",
        ] {
            let err = compile(p, false, false).unwrap_err().to_string();
            assert!(err.contains(p), "{err}");
        }
    }

    #[test]
    fn classes_are_left_alone() {
        assert_eq!(translate(r"[+(?]").unwrap(), r"[+(?]");
        assert_eq!(translate(r"[]a]").unwrap(), r"[\]a]");
        assert_eq!(translate(r"\++").unwrap(), r"\++");
        assert_eq!(translate(r"\p{L}+").unwrap(), r"\p{L}+");
        assert!(translate(r"a{2}+").is_err());
    }

    #[test]
    fn invalid_regex_names_the_pattern() {
        let err = compile("a(b", false, false).unwrap_err().to_string();
        assert!(err.contains("`a(b`"), "{err}");
    }
}
