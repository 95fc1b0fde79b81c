//! Detectors for personal data that survives a text reduction.
//!
//! A reducing transform (`redactRegexMatches`, `redactExceptPhrases`,
//! `redactExceptSubstringsMatchingRegexes`, `filterTokenByRegex`) keeps
//! part of a free-text value — a meeting subject cut down to known
//! phrases, a location reduced to a link. Under the `defaultDeny` profile
//! what it keeps is screened once more, conservatively: anything shaped
//! like an e-mail address, a phone number, an IPv4 or IPv6 address, a MAC
//! address or Wi-Fi BSSID, or a credential in a URL query (`pwd=`, `p=`,
//! `tk=`, …) is cut out. Conservative means a false positive costs a few
//! characters of kept text; a false negative would cost a person's data.

use std::sync::LazyLock;

use regex::Regex;

/// The kinds of data the detectors find, in the order they run.
pub const KINDS: &[&str] = &["url-credential", "email", "mac", "ipv6", "ipv4", "phone"];

static DETECTORS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let re = |s: &str| Regex::new(s).expect("static detector regex");
    vec![
        // A query or fragment parameter that carries a secret or a
        // personal value, with its value.
        (
            "url-credential",
            re(
                r"(?i)[?&;#](?:pwd|passcode|password|pass|p|tk|token|access_token|key|sig|secret|code|auth|organizerid|tenantid|oid|uid|email|user)=[^&\s#]*",
            ),
        ),
        (
            "email",
            re(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
        ),
        ("mac", re(r"\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b")),
        // Three or more colons, or `::`: times (`10:30:00`) have two.
        (
            "ipv6",
            re(
                r"(?i)\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b|(?i)\b[0-9a-f]{0,4}(?::[0-9a-f]{1,4})*::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?",
            ),
        ),
        ("ipv4", re(r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b")),
        // Seven or more digits with the separators phone numbers use.
        ("phone", re(r"\+?\(?[0-9][0-9 ().\-/]{5,}[0-9]")),
    ]
});

/// Whether a phone-shaped match is really a phone number candidate: seven
/// or more digits, and not an ISO date or time.
fn phone_like(m: &str) -> bool {
    let digits = m.chars().filter(char::is_ascii_digit).count();
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$|^[0-9]{1,2}[./][0-9]{1,2}[./][0-9]{2,4}$")
            .expect("static regex")
    });
    digits >= 7 && !DATE.is_match(m.trim())
}

/// Cuts every detected value out of `text`. Returns the screened text and
/// how many values were cut, or `None` when nothing was found.
pub fn screen(text: &str) -> Option<(String, usize)> {
    let mut out: Option<String> = None;
    let mut hits = 0;
    for (kind, re) in DETECTORS.iter() {
        let current = out.as_deref().unwrap_or(text);
        let mut found = 0;
        let replaced = re.replace_all(current, |c: &regex::Captures<'_>| {
            let m = &c[0];
            if *kind == "phone" && !phone_like(m) {
                return m.to_string();
            }
            found += 1;
            String::new()
        });
        if found > 0 {
            hits += found;
            out = Some(replaced.into_owned());
        }
    }
    out.map(|s| (s, hits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_must() {
        for (text, kept) in [
            (
                "Call Ann at +1 425 555 0101 re budget",
                "Call Ann at  re budget",
            ),
            ("(425) 555-0101", ""),
            ("ann.lee@contoso.example weekly", " weekly"),
            (
                "https://teams.microsoft.com/meet/123456?p=AbCdEf",
                "https://teams.microsoft.com/meet/123456",
            ),
            ("https://zoom.us/j/123?pwd=x&tk=y", "https://zoom.us/j/123"),
            ("AP 00:1a:2b:3c:4d:5e", "AP "),
            ("bssid 00-1A-2B-3C-4D-5E", "bssid "),
            ("from 10.0.0.12", "from "),
            ("from fe80::1ff:fe23:4567:890a", "from "),
            ("2001:db8:85a3:0:0:8a2e:370:7334", ""),
        ] {
            let (out, hits) = screen(text).unwrap_or_else(|| panic!("nothing found in {text}"));
            assert_eq!(out, kept, "{text}");
            assert!(hits >= 1);
        }
    }

    #[test]
    fn leaves_phrases_dates_and_times() {
        for text in [
            "weekly,1:1,standup",
            "Focus Time",
            "2026-11-06",
            "10:30:00",
            "Q4 2026 review",
            "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0",
            "room 12",
        ] {
            assert_eq!(screen(text), None, "{text}");
        }
    }
}
