//! `veil rules review --out review.html`: the page a data-protection officer
//! reads and signs. One self-contained HTML file (inline CSS, no script, no
//! network fetch) with, per rule set and endpoint:
//!
//! - the kept-field table: every JSON path that leaves Veil in the samples,
//!   with what happened to it (kept, pseudonymized, tokenized, reduced,
//!   nulled) and whether the `responseSchema` allowlist declares it;
//! - per sample, the original and the sanitized response side by side, and
//!   every value that was removed or changed, by JSON path, with the step
//!   that did it;
//! - the generic detectors' findings (e-mail addresses, phone numbers,
//!   network addresses, URL credentials) over everything that leaves.
//!
//! The same per-value outcome feeds `veil rules report`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;
use veil_engine::CompiledEndpoint;

/// What happened to one value of the original response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum What {
    Kept,
    Pseudonymized,
    Tokenized,
    Reduced,
    Nulled,
    Removed,
}

impl What {
    pub(super) fn name(self) -> &'static str {
        match self {
            What::Kept => "kept",
            What::Pseudonymized => "pseudonymized",
            What::Tokenized => "tokenized",
            What::Reduced => "reduced",
            What::Nulled => "nulled",
            What::Removed => "removed",
        }
    }
}

/// One value of the original response and what left Veil in its place.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Concrete JSON path, e.g. `$.value[0].from.emailAddress.address`.
    pub path: String,
    /// Member names along the path (array levels left out).
    pub keys: Vec<String>,
    pub before: Value,
    pub after: Option<Value>,
    pub what: What,
}

/// Every scalar of `original`, with what the sanitized document holds in
/// its place. Objects are compared by member; arrays by position.
pub(super) fn outcomes(original: &Value, sanitized: &Value) -> Vec<Outcome> {
    let mut out = Vec::new();
    walk(original, Some(sanitized), "$".into(), Vec::new(), &mut out);
    out
}

fn walk(
    before: &Value,
    after: Option<&Value>,
    path: String,
    keys: Vec<String>,
    out: &mut Vec<Outcome>,
) {
    match (before, after) {
        (Value::Object(m), Some(Value::Object(n))) => {
            for (k, v) in m {
                let mut ks = keys.clone();
                ks.push(k.clone());
                walk(v, n.get(k), format!("{path}.{k}"), ks, out);
            }
        }
        (Value::Array(a), Some(Value::Array(b))) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, b.get(i), format!("{path}[{i}]"), keys.clone(), out);
            }
        }
        (Value::Object(m), None) => {
            for (k, v) in m {
                let mut ks = keys.clone();
                ks.push(k.clone());
                walk(v, None, format!("{path}.{k}"), ks, out);
            }
        }
        (Value::Array(a), None) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, None, format!("{path}[{i}]"), keys.clone(), out);
            }
        }
        (Value::Object(_) | Value::Array(_), after) => {
            // The container left as something else (null, or not at all):
            // every value inside it is gone.
            let what = match after {
                Some(Value::Null) => What::Nulled,
                _ => What::Removed,
            };
            let mut inner = Vec::new();
            walk(before, None, path, keys, &mut inner);
            out.extend(inner.into_iter().map(|mut o| {
                o.what = what;
                o.after = None;
                o
            }));
        }
        (scalar, after) => {
            let what = match after {
                None => What::Removed,
                Some(a) if a == scalar => What::Kept,
                Some(Value::Null) => What::Nulled,
                Some(Value::String(s)) if s.starts_with("t~") => What::Pseudonymized,
                Some(Value::String(s)) if s.starts_with("p~") || s.contains("p~") => {
                    What::Tokenized
                }
                Some(Value::String(s)) if s.contains("t~") => What::Pseudonymized,
                Some(_) => What::Reduced,
            };
            if before.is_null() && after.is_none() {
                // A null that was dropped carried nothing.
                return;
            }
            out.push(Outcome {
                path,
                keys,
                before: scalar.clone(),
                after: after.cloned(),
                what,
            });
        }
    }
}

/// Which step of the endpoint did it: the allowlist for values it does not
/// declare, else the transforms of that kind.
pub(super) fn step(ep: &CompiledEndpoint, o: &Outcome) -> String {
    let declared = ep.sanitizer.schema().is_none_or(|s| {
        let keys: Vec<&str> = o.keys.iter().map(String::as_str).collect();
        s.declares(&keys)
    });
    if !declared {
        return "responseSchema (not in the allowlist)".into();
    }
    let names: BTreeSet<&str> = ep
        .sanitizer
        .transforms()
        .iter()
        .map(|t| t.transform.name())
        .filter(|n| match o.what {
            What::Removed => *n == "redact",
            What::Pseudonymized => n.starts_with("pseudonymize"),
            What::Tokenized => *n == "tokenize",
            What::Reduced | What::Nulled => {
                n.starts_with("redact") && *n != "redact" || *n == "filterTokenByRegex"
            }
            What::Kept => false,
        })
        .collect();
    match (o.what, names.is_empty()) {
        (What::Kept, _) => "—".into(),
        (What::Nulled, true) => "responseSchema (wrong type)".into(),
        (_, true) => "responseSchema".into(),
        (_, false) => names.into_iter().collect::<Vec<_>>().join(", "),
    }
}

/// `$.value[3].from` → `$.value[*].from`.
pub(super) fn general(path: &str) -> String {
    static IDX: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\[\d+\]").expect("static regex"));
    IDX.replace_all(path, "[*]").into_owned()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 90 {
        format!("{}…", s.chars().take(90).collect::<String>())
    } else {
        s
    }
}

/// One sample of one endpoint, sanitized.
pub(super) struct ReviewedSample<'a> {
    pub file: &'a str,
    pub url: &'a str,
    pub original: &'a Value,
    pub sanitized: &'a Value,
}

/// One rule set: its endpoints and their samples.
pub(super) struct ReviewedSuite<'a> {
    pub title: String,
    pub endpoints: Vec<(&'a CompiledEndpoint, Vec<ReviewedSample<'a>>)>,
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d1d1f}\
h1{font-size:22px}h2{font-size:19px;border-bottom:2px solid #444;margin-top:40px}\
h3{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0;width:100%}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;font-size:12px;overflow-wrap:anywhere}\
table.changes{table-layout:fixed}\
th{background:#f0f0f0}code,pre{font:12px/1.35 ui-monospace,monospace}\
pre{background:#fafafa;border:1px solid #ddd;padding:8px;overflow:auto;max-height:420px;margin:0}\
.side{display:grid;grid-template-columns:1fr 1fr;gap:12px}\
.kept{background:#e8f5e9}.pseudonymized,.tokenized{background:#e3f2fd}\
.reduced{background:#fff8e1}.nulled,.removed{background:#fdecea}\
.ok{color:#1b5e20;font-weight:600}.bad{color:#b71c1c;font-weight:600}\
.legend span{padding:1px 6px;margin-right:6px;border-radius:3px}";

/// Renders the page.
pub(super) fn page(suites: &[ReviewedSuite<'_>], generated_from: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Veil privacy review</title><style>{STYLE}</style></head><body>\
         <h1>Veil privacy review</h1><p>What leaves Veil, per connector rule set, endpoint and \
         sample response, made from {}. Every value of each original response is listed with \
         what happened to it.</p><p class=\"legend\">\
         <span class=\"kept\">kept</span><span class=\"pseudonymized\">pseudonymized (t~)</span>\
         <span class=\"tokenized\">tokenized (p~)</span><span class=\"reduced\">reduced</span>\
         <span class=\"removed\">removed / nulled</span></p>",
        esc(generated_from)
    );
    for suite in suites {
        let _ = write!(h, "<h2 id=\"{0}\">{0}</h2>", esc(&suite.title));
        for (ep, samples) in &suite.endpoints {
            let _ = write!(h, "<section class=\"endpoint\"><h3>{}</h3>", esc(&ep.label));
            // Kept-field table over all samples of the endpoint.
            let mut fields: BTreeMap<String, BTreeSet<What>> = BTreeMap::new();
            let mut steps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for s in samples {
                for o in outcomes(s.original, s.sanitized) {
                    let g = general(&o.path);
                    steps.entry(g.clone()).or_default().insert(step(ep, &o));
                    fields.entry(g).or_default().insert(o.what);
                }
            }
            let leaving: Vec<_> = fields
                .iter()
                .filter(|(_, w)| w.iter().any(|w| !matches!(w, What::Removed)))
                .collect();
            let _ = write!(
                h,
                "<table class=\"kept-fields\"><tr><th>field that leaves</th><th>what happens</th><th>by</th></tr>"
            );
            for (path, whats) in &leaving {
                let names: Vec<&str> = whats.iter().map(|w| w.name()).collect();
                let first = whats.iter().next().map(|w| w.name()).unwrap_or("kept");
                let by: Vec<String> = steps.get(*path).into_iter().flatten().cloned().collect();
                let _ = write!(
                    h,
                    "<tr class=\"{first}\" data-what=\"{first}\"><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    esc(path),
                    names.join(", "),
                    esc(&by.join("; "))
                );
            }
            if leaving.is_empty() {
                let _ = write!(h, "<tr><td colspan=\"3\">nothing leaves</td></tr>");
            }
            h.push_str("</table>");
            if samples.is_empty() {
                h.push_str("<p class=\"bad\">no sample response for this endpoint</p>");
            }
            for s in samples {
                let list = outcomes(s.original, s.sanitized);
                let found: Vec<(String, String)> =
                    veil_engine::find_personal_data_in_json(s.sanitized)
                        .into_iter()
                        .map(|f| (f.path, format!("{}: {}", f.finding.kind, f.finding.text)))
                        .collect();
                let _ = write!(
                    h,
                    "<article class=\"sample\"><h4>{} <small><code>{}</code></small></h4>",
                    esc(s.file),
                    esc(s.url)
                );
                if found.is_empty() {
                    h.push_str("<p class=\"ok detectors\">detectors: no e-mail address, phone number, network address or URL credential leaves</p>");
                } else {
                    h.push_str("<p class=\"bad detectors\">detectors found:</p><ul>");
                    for (p, v) in &found {
                        let _ = write!(
                            h,
                            "<li><code>{}</code>: {}</li>",
                            esc(p),
                            esc(&short(&Value::String(v.clone())))
                        );
                    }
                    h.push_str("</ul>");
                }
                h.push_str("<table class=\"changes\"><tr><th>JSON path</th><th>original</th><th>sent</th><th>what</th><th>by</th></tr>");
                for o in list.iter().filter(|o| o.what != What::Kept) {
                    let _ = write!(
                        h,
                        "<tr class=\"{0}\" data-what=\"{0}\"><td><code>{1}</code></td><td>{2}</td><td>{3}</td><td>{0}</td><td>{4}</td></tr>",
                        o.what.name(),
                        esc(&o.path),
                        esc(&short(&o.before)),
                        esc(&o.after.as_ref().map(short).unwrap_or_else(|| "—".into())),
                        esc(&step(ep, o))
                    );
                }
                h.push_str("</table><div class=\"side\">");
                for (title, doc) in [
                    ("original (from Graph)", s.original),
                    ("sanitized (to the vendor)", s.sanitized),
                ] {
                    let _ = write!(
                        h,
                        "<div><strong>{title}</strong><pre>{}</pre></div>",
                        esc(&serde_json::to_string_pretty(doc).unwrap_or_default())
                    );
                }
                h.push_str("</div></article>");
            }
            h.push_str("</section>");
        }
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_say_what_happened_to_each_value() {
        let before = json!({"value": [{"id": "48d3", "mail": "ann@x.example", "name": "Ann",
            "subject": "Weekly sync with Ann", "phones": ["+1 555"], "n": "x", "keep": 3}]});
        let after = json!({"value": [{"id": "p~AbC", "mail": "t~Xy@x.example",
            "subject": "Weekly", "phones": [], "n": null, "keep": 3}]});
        let got: BTreeMap<String, What> = outcomes(&before, &after)
            .into_iter()
            .map(|o| (o.path, o.what))
            .collect();
        assert_eq!(got["$.value[0].id"], What::Tokenized);
        assert_eq!(got["$.value[0].mail"], What::Pseudonymized);
        assert_eq!(got["$.value[0].name"], What::Removed);
        assert_eq!(got["$.value[0].subject"], What::Reduced);
        assert_eq!(got["$.value[0].phones[0]"], What::Removed);
        assert_eq!(got["$.value[0].n"], What::Nulled);
        assert_eq!(got["$.value[0].keep"], What::Kept);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
