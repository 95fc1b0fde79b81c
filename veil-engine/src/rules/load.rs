//! Reading a rule file (YAML or JSON) into the [`RuleFile`] model, with
//! precise errors: file, line, column, the place in the document and a
//! "did you mean" for misspelled keys ([`super::diagnostics`]).

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::diagnostics::with_suggestion;
use super::model::RuleFile;
use crate::error::RuleError;

/// The format of a rule file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

impl Format {
    /// JSON when the name ends in `.json` or the text starts with `{`; YAML otherwise.
    pub(crate) fn detect(name: &str, text: &str) -> Format {
        if name.ends_with(".json") || text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Reads and parses a rule file from disk.
pub(crate) fn read_file(path: &Path) -> Result<(String, RuleFile), RuleError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| RuleError::new(&name, "", format!("cannot read the rule file: {e}")))?;
    let model = parse(&name, &text)?;
    Ok((text, model))
}

/// Parses rule-file text; `name` is used in error messages.
pub(crate) fn parse(name: &str, text: &str) -> Result<RuleFile, RuleError> {
    match Format::detect(name, text) {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let (line, col) = (e.inner().line(), e.inner().column());
                let msg = strip_location(&e.inner().to_string());
                RuleError::new(name, context(&e.path().to_string()), with_suggestion(&msg))
                    .at(Some(line), Some(col))
            })
        }
        Format::Yaml => {
            let text = translate_verbatim_tags(text);
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let loc = e.inner().location();
                let path = e.path().to_string();
                let mut msg = strip_location(&e.inner().to_string());
                if let Some(rest) = msg.strip_prefix(&format!("{path}: ")) {
                    msg = rest.to_string();
                }
                RuleError::new(name, context(&path), with_suggestion(&msg)).at(
                    loc.as_ref().map(|l| l.line()),
                    loc.as_ref().map(|l| l.column()),
                )
            })
        }
    }
}

fn context(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_string()
    }
}

static VERBATIM_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(^|[\s\[{,])!<([A-Za-z][A-Za-z0-9_]*)>").expect("static regex")
});

/// Rewrites Psoxy's verbatim tags `!<redact>` as `!redact  ` — the same
/// length, so every line and column reported later is still right.
pub(crate) fn translate_verbatim_tags(text: &str) -> String {
    VERBATIM_TAG
        .replace_all(text, |c: &regex::Captures<'_>| {
            format!("{}!{}  ", &c[1], &c[2])
        })
        .into_owned()
}

static AT_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r" at line \d+ column \d+$").expect("static regex"));

fn strip_location(msg: &str) -> String {
    AT_LINE.replace(msg, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbatim_tags_keep_columns() {
        let src = "transforms:\n  - !<redact>\n    jsonPaths: [\"$..a\"]\n";
        let out = translate_verbatim_tags(src);
        assert_eq!(
            out,
            "transforms:\n  - !redact  \n    jsonPaths: [\"$..a\"]\n"
        );
        assert_eq!(out.len(), src.len());
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let src = "endpoints:\n  - pathTemplate: /v1.0/users\n    transforms:\n      - !<redact>\n        jsonPath: ['$..displayName']\n";
        let err = parse("rules.yaml", src).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.location.line, Some(5), "{text}");
        assert!(text.contains("endpoints[0].transforms[0]"), "{text}");
        assert!(text.contains("did you mean `jsonPaths`"), "{text}");
    }

    #[test]
    fn unknown_endpoint_key_suggests() {
        let src = "endpoints:\n  - pathTemplat: /v1.0/users\n";
        let err = parse("r.yaml", src).unwrap_err().to_string();
        assert!(err.starts_with("r.yaml:2:"), "{err}");
        assert!(err.contains("did you mean `pathTemplate`"), "{err}");
    }

    #[test]
    fn unknown_transform_suggests() {
        let src = "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<pseudonymise>\n        jsonPaths: ['$..a']\n";
        let err = parse("r.yaml", src).unwrap_err().to_string();
        assert!(err.contains("unknown transform `pseudonymise`"), "{err}");
        assert!(err.contains("did you mean `pseudonymize`"), "{err}");
    }

    #[test]
    fn three_spellings_of_a_transform() {
        let src = "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redact>\n        jsonPaths: ['$..a']\n      - !pseudonymize\n        jsonPaths: ['$..b']\n      - method: tokenize\n        jsonPaths: ['$..c']\n";
        let rf = parse("r.yaml", src).unwrap();
        let m: Vec<_> = rf.endpoints[0]
            .transforms
            .iter()
            .map(|t| t.method.as_str())
            .collect();
        assert_eq!(m, ["redact", "pseudonymize", "tokenize"]);
    }

    #[test]
    fn json_rule_file_with_method_field() {
        let src = r#"{"endpoints":[{"pathTemplate":"/x","transforms":[{"method":"redact","jsonPaths":["$..a"]}]}]}"#;
        let rf = parse("r.json", src).unwrap();
        assert_eq!(rf.endpoints[0].transforms[0].method, "redact");
        let bad = r#"{"endpoints":[{"pathTemplate":"/x","transforms":[{"method":"redact","jsonPathz":["$..a"]}]}]}"#;
        let err = parse("r.json", bad).unwrap_err().to_string();
        assert!(err.contains("did you mean `jsonPaths`"), "{err}");
        assert!(err.contains("r.json:1:"), "{err}");
    }
}
