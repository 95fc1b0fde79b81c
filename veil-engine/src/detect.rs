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
//!
//! The same detectors check what leaves: [`find_in_json`] lists every value
//! they find in a sanitized document (`veil rules review` shows them), and
//! [`Planted::leaks`] is the one leak check of `veil rules test` and of the
//! end-to-end tests: the values planted in the samples, plus the detectors.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// Each detector is `(?:SAFE|(HIT))`: the regex engine takes the leftmost
/// match, so text that only looks like a hit — a pseudonymized address
/// `t~…@contoso.com`, a Teams thread id `19:…@thread.v2`, an ISO date-time
/// with seven fractional digits — is matched whole by SAFE and left alone;
/// only group 1 (HIT) is cut.
static DETECTORS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    let re = |s: &str| Regex::new(s).expect("static detector regex");
    vec![
        // A query or fragment parameter that carries a secret or a
        // personal value, with its value.
        (
            "url-credential",
            re(
                r"(?i)([?&;#](?:pwd|passcode|password|pass|p|tk|token|access_token|key|sig|secret|code|auth|organizerid|tenantid|oid|uid|email|user)=[^&\s#]*)",
            ),
        ),
        (
            "email",
            re(
                r"(?i)[tp]~[A-Za-z0-9_-]+@[A-Za-z0-9.-]+|[A-Za-z0-9_.%-]+@(?:thread\.(?:v2|tacv2|skype)|unq\.gbl\.spaces)\b|([A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
            ),
        ),
        ("mac", re(r"(\b[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}\b)")),
        // Three or more colons, or `::`: times (`10:30:00`) have two.
        (
            "ipv6",
            re(
                r"(?i)(\b(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}\b|\b[0-9a-f]{0,4}(?::[0-9a-f]{1,4})*::(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4})*)?)",
            ),
        ),
        ("ipv4", re(r"(\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b)")),
        // Seven or more digits with the separators phone numbers use; ISO
        // dates, date-times and times of day are not phone numbers.
        (
            "phone",
            re(
                r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?|(\+?\(?[0-9][0-9 ().\-/]{5,}[0-9])",
            ),
        ),
    ]
});

/// Whether a phone-shaped match is really a phone number candidate: seven
/// or more digits, and not a short date.
fn phone_like(m: &str) -> bool {
    let digits = m.chars().filter(char::is_ascii_digit).count();
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[0-9]{1,2}[./][0-9]{1,2}[./][0-9]{2,4}$").expect("static regex")
    });
    digits >= 7 && !DATE.is_match(m.trim())
}

/// Whether a match is a token of its own, not a piece of a longer id
/// (a GUID's `4968-8776`, a hex blob's digits).
fn stands_alone(text: &str, m: regex::Match<'_>) -> bool {
    let glued =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    !glued(text[..m.start()].chars().next_back()) && !glued(text[m.end()..].chars().next())
}

/// A value a detector found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// One of `url-credential`, `email`, `mac`, `ipv6`, `ipv4`, `phone`
    /// (the order the detectors run in).
    pub kind: &'static str,
    /// The value as it appears in the text.
    pub text: String,
}

/// Runs the detectors in order, each on the text the earlier ones left
/// (an address is cut before the phone detector sees its digits).
/// Returns the text with every hit cut out, and the hits.
fn scan(text: &str) -> (Option<String>, Vec<Finding>) {
    let mut out: Option<String> = None;
    let mut hits = Vec::new();
    for (kind, re) in DETECTORS.iter() {
        let current = out.as_deref().unwrap_or(text);
        let before = hits.len();
        let replaced = re.replace_all(current, |c: &regex::Captures<'_>| {
            let Some(hit) = c.get(1) else {
                return c[0].to_string();
            };
            if *kind == "phone" && !(phone_like(hit.as_str()) && stands_alone(current, hit)) {
                return c[0].to_string();
            }
            hits.push(Finding {
                kind,
                text: hit.as_str().to_string(),
            });
            String::new()
        });
        if hits.len() > before {
            out = Some(replaced.into_owned());
        }
    }
    (out, hits)
}

/// Cuts every detected value out of `text`. Returns the screened text and
/// how many values were cut, or `None` when nothing was found.
pub(crate) fn screen(text: &str) -> Option<(String, usize)> {
    let (out, hits) = scan(text);
    out.map(|s| (s, hits.len()))
}

/// Every value the detectors find in `text`, which is left as it is.
pub fn find(text: &str) -> Vec<Finding> {
    scan(text).1
}

/// Whether a string is a bare id (8 or more ASCII letters, digits, `-`,
/// `_`, `=`: a GUID, a Teams message id, a base64url key, a `p~` token's
/// body): not free text, so not screened. A phone number written as bare
/// digits is therefore not found in an id-shaped value.
pub(crate) fn is_bare_id(s: &str) -> bool {
    s.len() >= 8
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=".contains(c))
}

/// A detector finding in a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFinding {
    /// Concrete JSON path of the string, e.g. `$.value[0].location`.
    pub path: String,
    /// The whole string the value was found in.
    pub value: String,
    pub finding: Finding,
}

/// Runs the detectors over every string value of `doc` that is not a bare
/// id ([`is_bare_id`]); member names are not personal data in Graph
/// responses and are not screened.
pub fn find_in_json(doc: &Value) -> Vec<JsonFinding> {
    fn walk(v: &Value, path: &mut String, out: &mut Vec<JsonFinding>) {
        match v {
            Value::String(s) if !is_bare_id(s) => {
                for finding in find(s) {
                    out.push(JsonFinding {
                        path: path.clone(),
                        value: s.clone(),
                        finding,
                    });
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(c, path, out);
                    path.truncate(len);
                }
            }
            Value::Object(m) => {
                for (k, c) in m {
                    let len = path.len();
                    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        path.push('.');
                        path.push_str(k);
                    } else {
                        path.push_str(&format!("['{}']", k.replace('\'', "\\'")));
                    }
                    walk(c, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut "$".to_string(), &mut out);
    out
}

/// The values planted in the sample tenant that must never leave Veil
/// (`example-api-responses/sensitive-values.yaml`): people's names, free
/// text, phone numbers and e-mail addresses.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planted {
    #[serde(default)]
    pub people: Vec<String>,
    #[serde(default)]
    pub text: Vec<String>,
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default)]
    pub emails: Vec<String>,
}

/// Something that left Veil and should not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leak {
    /// A planted value (`kind`: name, text, phone, address), found
    /// case-insensitively anywhere in the text.
    Planted { kind: &'static str, value: String },
    /// A detector finding; `path` is the JSON path of the string it is in
    /// when the text is JSON.
    Detected {
        finding: Finding,
        path: Option<String>,
    },
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leak::Planted { kind, value } => {
                write!(f, "leak: {kind} `{value}` is in the sanitized output")
            }
            Leak::Detected {
                finding,
                path: Some(path),
            } => write!(
                f,
                "leak: {} `{}` at {path} (generic detector)",
                finding.kind, finding.text
            ),
            Leak::Detected {
                finding,
                path: None,
            } => write!(
                f,
                "leak: {} `{}` (generic detector)",
                finding.kind, finding.text
            ),
        }
    }
}

/// The opaque text of a pseudonym (`t~…`, `p~…`, `h~…`): random characters
/// that may spell a short planted value by chance.
static PSEUDONYM_TEXT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[pth]~[A-Za-z0-9_-]+").expect("static regex"));

impl Planted {
    /// Every non-empty planted value with its kind.
    fn values(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let kinds: [(&'static str, &Vec<String>); 4] = [
            ("name", &self.people),
            ("text", &self.text),
            ("phone", &self.phones),
            ("address", &self.emails),
        ];
        kinds.into_iter().flat_map(|(kind, list)| {
            list.iter()
                .map(String::as_str)
                .filter(|v| !v.trim().is_empty())
                .map(move |v| (kind, v))
        })
    }

    /// The leak check over text that leaves Veil (a response body, a log
    /// line): every planted value found in it case-insensitively (outside
    /// pseudonyms' opaque text), then the detectors — over every string of
    /// the document when the text is JSON ([`find_in_json`]: member names
    /// and bare ids are not screened), else over the whole text.
    pub fn leaks(&self, text: &str) -> Vec<Leak> {
        match serde_json::from_str::<Value>(text) {
            Ok(doc) => self.leaks_in_json(&doc, text),
            Err(_) => {
                let mut found = self.planted_in(text);
                found.extend(find(text).into_iter().map(|finding| Leak::Detected {
                    finding,
                    path: None,
                }));
                found
            }
        }
    }

    /// [`Planted::leaks`] of a document already parsed; `text` is the
    /// document as it leaves.
    pub fn leaks_in_json(&self, doc: &Value, text: &str) -> Vec<Leak> {
        let mut found = self.planted_in(text);
        found.extend(find_in_json(doc).into_iter().map(|f| Leak::Detected {
            finding: f.finding,
            path: Some(f.path),
        }));
        found
    }

    fn planted_in(&self, text: &str) -> Vec<Leak> {
        let stripped = PSEUDONYM_TEXT.replace_all(text, "~").to_lowercase();
        self.values()
            .filter(|(_, v)| stripped.contains(&v.to_lowercase()))
            .map(|(kind, v)| Leak::Planted {
                kind,
                value: v.to_string(),
            })
            .collect()
    }
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
    fn find_names_each_value_and_its_kind() {
        let hits = find("Ann ann.lee@contoso.example, +1 425 555 0101, AP 00:1a:2b:3c:4d:5e");
        let got: Vec<(&str, &str)> = hits.iter().map(|f| (f.kind, f.text.as_str())).collect();
        assert_eq!(
            got,
            [
                ("email", "ann.lee@contoso.example"),
                ("mac", "00:1a:2b:3c:4d:5e"),
                ("phone", "+1 425 555 0101"),
            ]
        );
        assert!(find("t~ABugMhmTPeMUmoV0PPEGEXffaYfnEaQQLeOM62Peji4@contoso.example").is_empty());
    }

    #[test]
    fn find_in_json_walks_strings_and_skips_bare_ids() {
        let doc = serde_json::json!({
            "value": [
                {"id": "1730999999999", "location": "Room 12 (call 020 7946 0123)"},
                {"@odata.type": "x", "link": "https://zoom.us/j/1?pwd=secret"}
            ],
            "it's": "10.0.0.12"
        });
        let got: Vec<(String, &str, String)> = find_in_json(&doc)
            .into_iter()
            .map(|f| (f.path, f.finding.kind, f.finding.text))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "$.value[0].location".to_string(),
                    "phone",
                    "020 7946 0123".to_string()
                ),
                (
                    "$.value[1].link".to_string(),
                    "url-credential",
                    "?pwd=secret".to_string()
                ),
                ("$['it\\'s']".to_string(), "ipv4", "10.0.0.12".to_string()),
            ]
        );
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
            "t~ABugMhmTPeMUmoV0PPEGEXffaYfnEaQQLeOM62Peji4@contoso.example",
            "t~j2IQvMhoyuBCU7qN2YeZjU0BreT2XPIKEK3H_VZFfhM@contoso.example",
            "19:7d2c3f9a41b84e0c9f6a5e1d2b8c4a07@thread.tacv2",
            "19:6b3e0f8a2c914d7fa5e1b9c4d2f07a38@thread.v2",
            "19:a_b@unq.gbl.spaces",
            "2026-11-05T19:21:04.3379012Z",
            "2026-11-05T19:21:04+01:00",
            "f0e1d2c3-b4a5-4968-8776-a5b4c3d2e1f0",
            "09:30:00.0000000",
            "040000008200E00074C5B7101A82E00800000000618E35F22867BAB300000000000000",
        ] {
            assert_eq!(screen(text), None, "{text}");
        }
    }

    fn planted() -> Planted {
        Planted {
            people: vec!["Adele Vance".into(), "Ann".into()],
            text: vec!["Quarterly plan".into()],
            phones: vec![],
            emails: vec!["AdeleV@contoso.com".into(), " ".into()],
        }
    }

    #[test]
    fn leak_check_finds_planted_values_and_detector_hits_in_json() {
        let text = r#"{"value":[{"subject":"re: QUARTERLY PLAN","from":"adelev@contoso.com","note":"call +1 425 555 0109"}]}"#;
        let found: Vec<String> = planted()
            .leaks(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            found.contains(&"leak: text `Quarterly plan` is in the sanitized output".to_string()),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"leak: address `AdeleV@contoso.com` is in the sanitized output".to_string()
            ),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"leak: email `adelev@contoso.com` at $.value[0].from (generic detector)"
                    .to_string()
            ),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"leak: phone `+1 425 555 0109` at $.value[0].note (generic detector)".to_string()
            ),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn leak_check_ignores_pseudonyms_member_names_and_bare_ids() {
        // `Ann` spelled inside a token's opaque text is chance, not a leak;
        // a pseudonymized address keeps its domain; member names are not data.
        let text = r#"{"id":"t~xAnnq9_Z","mail":"t~kAnnz@contoso.com","a@b.example":"2024-05-01T10:30:00Z"}"#;
        assert_eq!(planted().leaks(text), vec![]);
    }

    #[test]
    fn leak_check_screens_text_that_is_not_json() {
        let found = planted().leaks("level=info caller=adele.vance@contoso.com host=10.0.0.12");
        let kinds: Vec<&str> = found
            .iter()
            .map(|l| match l {
                Leak::Detected {
                    finding,
                    path: None,
                } => finding.kind,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["email", "ipv4"]);
    }
}
