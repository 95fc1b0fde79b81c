//! Compiling one transform of a rule file: its method's options checked
//! and turned into a [`RuleTransform`] with its compiled JSONPaths.

use regex::Regex;

use super::FieldError;
use crate::jsonpath::{self, CompiledPath};
use crate::pseudonym::{Encoding, PseudonymizeOptions};
use crate::rules::java_regex;
use crate::rules::transform_spec::TransformSpec;
use crate::sanitize::RuleTransform;
use crate::transform::pseudonymize::EmailDomains;
use crate::transform::{self, Transform};

/// Options each method accepts (besides `jsonPaths` and `applyOnlyWhen`).
fn allowed_options(method: &str) -> &'static [&'static str] {
    match method {
        "redactRegexMatches" => &["redactions"],
        "redactExceptPhrases" => &["allowedPhrases"],
        "redactExceptSubstringsMatchingRegexes" => &["exceptions"],
        "filterTokenByRegex" => &["filters", "delimiter"],
        "pseudonymize" => &[
            "encoding",
            "includeOriginal",
            "includeReversible",
            "onlyIfRegex",
            "emailDomains",
        ],
        "pseudonymizeRegexMatches" => &["regex"],
        "tokenize" => &["regex", "kind"],
        _ => &[],
    }
}

pub(super) fn compile_transform(
    t: &TransformSpec,
) -> Result<(RuleTransform, Vec<CompiledPath>), FieldError> {
    let o = &t.options;
    let set: Vec<(&str, bool)> = vec![
        ("redactions", o.redactions.is_some()),
        ("allowedPhrases", o.allowed_phrases.is_some()),
        ("exceptions", o.exceptions.is_some()),
        ("filters", o.filters.is_some()),
        ("delimiter", o.delimiter.is_some()),
        ("encoding", o.encoding.is_some()),
        ("includeOriginal", o.include_original.is_some()),
        ("includeReversible", o.include_reversible.is_some()),
        ("onlyIfRegex", o.only_if_regex.is_some()),
        ("regex", o.regex.is_some()),
        ("kind", o.kind.is_some()),
        ("emailDomains", o.email_domains.is_some()),
    ];
    let allowed = allowed_options(&t.method);
    for (name, present) in set {
        if present && !allowed.contains(&name) {
            let valid = if allowed.is_empty() {
                "none besides jsonPaths and applyOnlyWhen".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(FieldError::new(
                name,
                format!(
                    "`{name}` is not an option of `{}` (its options: {valid})",
                    t.method
                ),
            ));
        }
    }
    if o.json_paths.is_empty() {
        return Err(FieldError::new(
            "jsonPaths",
            "`jsonPaths` is empty: the transform would do nothing",
        ));
    }
    let mut paths = Vec::new();
    for (i, p) in o.json_paths.iter().enumerate() {
        paths
            .push(jsonpath::compile(p).map_err(|e| FieldError::new(format!("jsonPaths[{i}]"), e))?);
    }
    let apply_only_when = match &o.apply_only_when {
        Some(p) => Some(jsonpath::compile(p).map_err(|e| FieldError::new("applyOnlyWhen", e))?),
        None => None,
    };
    let regexes = |list: &Option<Vec<String>>,
                   field: &str,
                   anchored: bool|
     -> Result<Vec<Regex>, FieldError> {
        let list = list.as_deref().unwrap_or_default();
        if list.is_empty() {
            return Err(FieldError::new(
                field.to_string(),
                format!("`{field}` must list at least one regex"),
            ));
        }
        list.iter()
            .enumerate()
            .map(|(i, r)| {
                java_regex::compile(r, false, anchored)
                    .map_err(|e| FieldError::new(format!("{field}[{i}]"), e))
            })
            .collect()
    };
    let one_regex = |r: &str, field: &str| {
        java_regex::compile(r, false, false).map_err(|e| FieldError::new(field, e))
    };
    let transform = match t.method.as_str() {
        "redact" => Transform::Redact,
        "redactRegexMatches" => Transform::RedactRegexMatches(transform::redact::RegexMatches {
            redactions: regexes(&o.redactions, "redactions", false)?,
        }),
        "redactExceptPhrases" => {
            let phrases = o.allowed_phrases.clone().unwrap_or_default();
            if phrases.is_empty() {
                return Err(FieldError::new(
                    "allowedPhrases",
                    "`allowedPhrases` is empty",
                ));
            }
            Transform::RedactExceptPhrases(
                transform::redact::ExceptPhrases::new(&phrases)
                    .map_err(|e| FieldError::new("allowedPhrases", e))?,
            )
        }
        "redactExceptSubstringsMatchingRegexes" => {
            Transform::RedactExceptSubstringsMatchingRegexes(transform::redact::ExceptSubstrings {
                exceptions: regexes(&o.exceptions, "exceptions", false)?,
            })
        }
        "filterTokenByRegex" => Transform::FilterTokenByRegex(transform::redact::FilterTokens {
            filters: regexes(&o.filters, "filters", true)?,
            delimiter: one_regex(o.delimiter.as_deref().unwrap_or(r"\s+"), "delimiter")?,
        }),
        "pseudonymize" => {
            let encoding = match o.encoding.as_deref() {
                None | Some("URL_SAFE_TOKEN") => Encoding::UrlSafeToken,
                Some("URL_SAFE_HASH_ONLY") => Encoding::UrlSafeHashOnly,
                Some("JSON") => Encoding::Json,
                Some(x) => {
                    return Err(FieldError::new(
                        "encoding",
                        format!(
                            "unknown encoding `{x}` (URL_SAFE_TOKEN, URL_SAFE_HASH_ONLY, JSON)"
                        ),
                    ))
                }
            };
            let include_original = o.include_original.unwrap_or(false);
            if include_original && encoding != Encoding::Json {
                return Err(FieldError::new(
                    "includeOriginal",
                    "`includeOriginal: true` needs `encoding: JSON` (a URL-safe token cannot carry the original)",
                ));
            }
            let include_reversible = o.include_reversible.unwrap_or(false);
            if include_reversible && encoding == Encoding::UrlSafeHashOnly {
                return Err(FieldError::new(
                    "includeReversible",
                    "`includeReversible: true` does not work with URL_SAFE_HASH_ONLY",
                ));
            }
            Transform::Pseudonymize(transform::pseudonymize::Pseudonymize {
                options: PseudonymizeOptions {
                    encoding,
                    include_original,
                    include_reversible,
                },
                only_if: o
                    .only_if_regex
                    .as_deref()
                    .map(|r| one_regex(r, "onlyIfRegex"))
                    .transpose()?,
                domains: o
                    .email_domains
                    .as_ref()
                    .map(|d| email_domains(d, encoding))
                    .transpose()?,
            })
        }
        "pseudonymizeRegexMatches" => {
            Transform::PseudonymizeRegexMatches(transform::pseudonymize::RegexMatches {
                regex: with_group(o.regex.as_deref(), "pseudonymizeRegexMatches")?,
            })
        }
        "pseudonymizeEmailHeader" => Transform::PseudonymizeEmailHeader,
        "tokenize" => Transform::Tokenize(transform::tokenize::Tokenize {
            regex: match o.regex.as_deref() {
                Some(r) => Some(with_group(Some(r), "tokenize")?),
                None => None,
            },
            kind: o
                .kind
                .as_deref()
                .map(|k| {
                    k.parse()
                        .map_err(|e: crate::pseudonym::UnknownTokenKind| FieldError::new("kind", e))
                })
                .transpose()?,
        }),
        other => return Err(FieldError::new("", format!("unknown transform `{other}`"))),
    };
    Ok((
        RuleTransform {
            transform,
            apply_only_when,
            paths: o.json_paths.clone(),
        },
        paths,
    ))
}

fn with_group(r: Option<&str>, method: &str) -> Result<Regex, FieldError> {
    let r = r.ok_or_else(|| FieldError::new("regex", format!("`{method}` needs `regex`")))?;
    let re = java_regex::compile(r, false, false).map_err(|e| FieldError::new("regex", e))?;
    if re.captures_len() < 2 {
        return Err(FieldError::new(
            "regex",
            format!("regex `{r}` needs a capture group: group 1 is what gets replaced"),
        ));
    }
    Ok(re)
}

/// Compiles `emailDomains` of `pseudonymize`; errors name the field and
/// say what is wrong.
fn email_domains(
    spec: &crate::rules::transform_spec::EmailDomainsSpec,
    encoding: crate::pseudonym::Encoding,
) -> Result<EmailDomains, FieldError> {
    use crate::pseudonym::email::DomainList;
    use transform::pseudonymize::OtherDomain;
    if encoding != crate::pseudonym::Encoding::UrlSafeToken {
        return Err(FieldError::new(
            "emailDomains",
            "`emailDomains` needs the URL_SAFE_TOKEN encoding (the other encodings write no domain after the hash)",
        ));
    }
    let list = |field: &str, entries: &[String]| {
        DomainList::new(entries).map_err(|e| FieldError::new(format!("emailDomains.{field}"), e))
    };
    let internal = list("internal", &spec.internal)?;
    if internal.is_empty() {
        return Err(FieldError::new(
            "emailDomains.internal",
            "`internal` must list the tenant's own domains",
        ));
    }
    if spec.internal.iter().any(|d| d.trim() == "*") {
        return Err(FieldError::new(
            "emailDomains.internal",
            "`*` cannot be internal: no address would be external",
        ));
    }
    let other = match spec.other_external.as_deref() {
        None | Some("tokenize") => OtherDomain::Tokenize,
        Some("redact") => OtherDomain::Redact,
        Some(x) => {
            return Err(FieldError::new(
                "emailDomains.otherExternal",
                format!("unknown `otherExternal` `{x}` (tokenize, redact)"),
            ))
        }
    };
    Ok(EmailDomains {
        internal,
        keep: list("keepExternal", &spec.keep_external)?,
        other,
    })
}
