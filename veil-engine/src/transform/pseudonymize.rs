//! `pseudonymize`, `pseudonymizeRegexMatches` and `pseudonymizeEmailHeader`:
//! values replaced by keyed hashes (`t~…`), see [`crate::pseudonym`].

use regex::Regex;
use serde_json::Value;

use super::{scalar_text, set, Failure, Outcome};
use crate::pseudonym::email::{self, DomainList};
use crate::pseudonym::{encoding, PseudonymizeOptions, Pseudonymizer};

/// `pseudonymize`.
#[derive(Debug)]
pub struct Pseudonymize {
    pub options: PseudonymizeOptions,
    /// `onlyIfRegex`: values that do not match are left as they are.
    pub only_if: Option<Regex>,
    /// `emailDomains`: addresses outside the internal domains get their own
    /// domain treatment.
    pub domains: Option<EmailDomains>,
}

/// `emailDomains` of `pseudonymize`: internal and external addresses.
///
/// An address in an `internal` domain (or below it) is pseudonymized as
/// without the option: the local part hashed, the domain per the
/// deployment's domain policy. Any other address is external: its local
/// part is hashed the same way (the same person keeps the same hash), and
/// its domain is written in clear, lower-cased, when `keep` lists it (or
/// holds `*`); otherwise it is replaced as `other` says. Values that are no
/// address are pseudonymized as without the option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailDomains {
    pub internal: DomainList,
    pub keep: DomainList,
    pub other: OtherDomain,
}

/// What replaces an external domain that `keep` does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherDomain {
    /// `@h~<keyed hash of the domain>`: addresses of one domain still group
    /// together, without naming it.
    Tokenize,
    /// No domain at all.
    Redact,
}

impl EmailDomains {
    /// The pseudonym of `text` for this policy, or `None` when the policy
    /// does not change it (not an address, or an internal one). `base` is the
    /// pseudonym made without the policy (`t~…` or `p~…`, then `@domain`
    /// unless the deployment redacts domains).
    fn rewrite(&self, text: &str, base: &str, p: &Pseudonymizer) -> Option<String> {
        let addr = email::parse_address(text)?;
        if self.internal.contains(addr.domain) {
            return None;
        }
        // The hash and token alphabets (base64url) hold no `@`.
        let head = base.split('@').next().unwrap_or(base);
        Some(if self.keep.contains(addr.domain) {
            format!("{head}@{}", addr.domain.to_lowercase())
        } else {
            match self.other {
                OtherDomain::Tokenize => {
                    let mut out = format!("{head}@{}", encoding::DOMAIN_HASH_PREFIX);
                    encoding::push_b64(&mut out, &p.hash_domain(addr.domain));
                    out
                }
                OtherDomain::Redact => head.to_string(),
            }
        })
    }
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
        let mut out = p
            .pseudonymize(&text, self.options)
            .map_err(|e| Failure(e.to_string()))?;
        if let Some(d) = &self.domains {
            if let Some(rewritten) = d.rewrite(&text, &out, p) {
                out = rewritten;
            }
        }
        Ok(set(value, Value::String(out)))
    }

    /// [`Self::apply`] to the string `text`, written to `out` as JSON, when
    /// its pseudonym is cached and needs nothing else (no `onlyIfRegex`, no
    /// `emailDomains`; not blank). Returns whether the output differs from
    /// `text`, or `None` when nothing was written (then [`Self::apply`]
    /// decides).
    pub(crate) fn write_cached(
        &self,
        text: &str,
        p: &Pseudonymizer,
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        if self.only_if.is_some() || self.domains.is_some() || text.trim().is_empty() {
            return None;
        }
        let start = out.len();
        if !p.write_cached_json(text, self.options, out) {
            return None;
        }
        Some(&out[start + 1..out.len() - 1] != text.as_bytes())
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
pub(crate) fn email_header(value: &mut Value, p: &Pseudonymizer) -> Result<Outcome, Failure> {
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::pseudonym::{DomainPolicy, EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme};
    use crate::rules::RuleSet;
    use crate::secret::Secret;

    fn pseudonymizer(domain: DomainPolicy) -> Pseudonymizer {
        Pseudonymizer::new(PseudonymConfig {
            scheme: Scheme::Hmac,
            salt: Secret::from("email-domains-test-salt-0123456789-0123456789"),
            encryption_keys: vec![(
                "k1".into(),
                Secret::from("email-domains-test-key-0123456789-0123456789"),
            )],
            email: EmailPolicy {
                ignore_dots: false,
                domain,
            },
        })
        .unwrap()
    }

    fn rules(options: &str) -> RuleSet {
        RuleSet::from_str(
            "domains.yaml",
            &format!(
                "endpoints:\n  - pathTemplate: /v1.0/x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..address']\n{options}"
            ),
        )
        .unwrap()
    }

    fn sanitize(rs: &RuleSet, p: &Pseudonymizer, addresses: &[&str]) -> Vec<Value> {
        let mut doc =
            json!({"value": addresses.iter().map(|a| json!({"address": a})).collect::<Vec<_>>()});
        rs.endpoints[0].sanitize(&mut doc, p).unwrap();
        doc["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["address"].clone())
            .collect()
    }

    const SPLIT: &str = "        emailDomains:\n          internal: [contoso.example]\n          keepExternal: [fabrikam.example]\n";

    #[test]
    fn internal_addresses_are_pseudonymized_as_without_the_option() {
        let p = pseudonymizer(DomainPolicy::Tokenize);
        let plain = sanitize(
            &rules(""),
            &p,
            &["Ann@Contoso.example", "bo@eu.contoso.example"],
        );
        let split = sanitize(
            &rules(SPLIT),
            &p,
            &["Ann@Contoso.example", "bo@eu.contoso.example"],
        );
        assert_eq!(plain, split);
        // The deployment's domain policy (here: tokenize) applies to them.
        assert!(split[0].as_str().unwrap().contains("@h~"), "{split:?}");
    }

    #[test]
    fn external_addresses_keep_listed_domains_and_hash_the_others() {
        let p = pseudonymizer(DomainPolicy::Tokenize);
        let out = sanitize(
            &rules(SPLIT),
            &p,
            &[
                "Hannah.Becker@Fabrikam.example",
                "olivia@sales.fabrikam.example",
                "ines@adatum.example",
                "other@adatum.example",
                "not an address",
            ],
        );
        let s: Vec<&str> = out.iter().map(|v| v.as_str().unwrap()).collect();
        let plain = sanitize(&rules(""), &p, &["Hannah.Becker@Fabrikam.example"]);
        let hash = plain[0].as_str().unwrap().split('@').next().unwrap();
        // The local part is the same hash as without the option.
        assert_eq!(s[0], format!("{hash}@fabrikam.example"));
        assert!(s[1].ends_with("@sales.fabrikam.example"), "{s:?}");
        // An unlisted external domain is a keyed hash, the same for the whole domain.
        assert!(s[2].starts_with("t~") && s[2].contains("@h~"), "{s:?}");
        assert!(!s[2].contains("adatum"));
        assert_eq!(s[2].split('@').nth(1), s[3].split('@').nth(1));
        assert_ne!(s[2], s[3]);
        // Not an address: hashed, no domain.
        assert!(s[4].starts_with("t~") && !s[4].contains('@'), "{s:?}");
    }

    #[test]
    fn redact_other_and_keep_everything() {
        let p = pseudonymizer(DomainPolicy::Preserve);
        let redact = rules(
            "        emailDomains:\n          internal: [contoso.example]\n          otherExternal: redact\n",
        );
        let out = sanitize(&redact, &p, &["ines@adatum.example", "ann@contoso.example"]);
        assert!(!out[0].as_str().unwrap().contains('@'), "{out:?}");
        assert!(out[1].as_str().unwrap().ends_with("@contoso.example"));
        let all = rules(
            "        emailDomains:\n          internal: [contoso.example]\n          keepExternal: ['*']\n",
        );
        let p = pseudonymizer(DomainPolicy::Redact);
        let out = sanitize(&all, &p, &["ines@Adatum.example", "ann@contoso.example"]);
        assert!(
            out[0].as_str().unwrap().ends_with("@adatum.example"),
            "{out:?}"
        );
        // Internal: the deployment redacts domains.
        assert!(!out[1].as_str().unwrap().contains('@'), "{out:?}");
    }

    #[test]
    fn reversible_tokens_keep_their_token_and_change_only_the_domain() {
        let p = pseudonymizer(DomainPolicy::Preserve);
        let rs = rules(&format!("        includeReversible: true\n{SPLIT}"));
        let out = sanitize(&rs, &p, &["ines@adatum.example"]);
        let s = out[0].as_str().unwrap();
        assert!(s.starts_with("p~") && s.contains("@h~"), "{s}");
        let token = s.split('@').next().unwrap();
        assert_eq!(p.decrypt(token).unwrap(), "ines@adatum.example");
    }

    #[test]
    fn bad_options_are_refused_at_load() {
        for (options, expected) in [
            ("        emailDomains:\n          internal: []\n", "must list the tenant's own domains"),
            ("        emailDomains:\n          internal: ['*']\n", "`*` cannot be internal"),
            ("        emailDomains:\n          internal: ['@contoso.example']\n", "is not a domain name"),
            ("        emailDomains:\n          internal: [contoso.example]\n          keepExternal: ['*.fabrikam.example']\n", "is not a domain name"),
            ("        emailDomains:\n          internal: [contoso.example]\n          otherExternal: drop\n", "unknown `otherExternal`"),
            ("        encoding: JSON\n        emailDomains:\n          internal: [contoso.example]\n", "needs the URL_SAFE_TOKEN encoding"),
            ("        emailDomains:\n          internal: [contoso.example]\n          threshold: 5\n", "unknown field"),
        ] {
            let text = format!(
                "endpoints:\n  - pathTemplate: /v1.0/x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..address']\n{options}"
            );
            let err = RuleSet::from_str("domains.yaml", &text).unwrap_err().to_string();
            assert!(err.contains(expected), "{options}: {err}");
        }
        let other_method = "endpoints:\n  - pathTemplate: /v1.0/x\n    transforms:\n      - !<pseudonymizeEmailHeader>\n        jsonPaths: ['$..address']\n        emailDomains:\n          internal: [contoso.example]\n";
        let err = RuleSet::from_str("domains.yaml", other_method)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`emailDomains` is not an option of `pseudonymizeEmailHeader`"),
            "{err}"
        );
    }
}
