//! `veil rules test`: every sample against its golden, paging links that
//! round-trip, and the leak checks (planted values and the generic
//! detectors) over what leaves.

use super::*;

pub(super) fn test(c: &CorpusArgs, update: bool) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let sensitive: Planted =
        match std::fs::read_to_string(c.samples_dir.join("sensitive-values.yaml")) {
            Ok(t) => serde_yaml_ng::from_str(&t).context("sensitive-values.yaml")?,
            Err(_) => Planted::default(),
        };
    let (mut passed, mut failed, mut updated) = (0usize, 0usize, 0usize);
    for s in suites(c)? {
        // Every endpoint must be proven against at least one sample.
        for ep in &s.rules.endpoints {
            if !has_sample(&s, ep.index) {
                failed += 1;
                println!(
                    "FAILED  {} [{}] endpoint `{}` has no sample",
                    s.connector, s.variant, ep.label
                );
            }
        }
        for sample in &s.refused {
            let name = format!("{} [{}] {}", s.connector, s.variant, sample.file);
            let (path, query) = split_url(&sample.url);
            let request = PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            };
            if s.rules
                .match_request(request, RequestSide::Upstream)
                .is_err()
            {
                passed += 1;
                println!("ok      {name} (refused, as it must be)");
            } else {
                failed += 1;
                println!("FAILED  {name}\n        the variant allows a groups request");
            }
        }
        for sample in &s.samples {
            let name = format!("{} [{}] {}", s.connector, s.variant, sample.file);
            match check_sample(&s, sample, &p, &sensitive, update) {
                Ok(None) => {
                    passed += 1;
                    println!("ok      {name}");
                }
                Ok(Some(change)) => {
                    passed += 1;
                    updated += 1;
                    println!("ok      {name}\n{}", indent(&change));
                }
                Err(e) => {
                    failed += 1;
                    println!("FAILED  {name}\n{}", indent(&format!("{e:#}")));
                }
            }
        }
    }
    if update {
        println!(
            "\n{updated} golden file(s) written with changes (shown above); review them before committing"
        );
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("        {l}\n")).collect()
}

fn check_sample(
    s: &Suite,
    sample: &Sample,
    p: &Pseudonymizer,
    sensitive: &Planted,
    update: bool,
) -> anyhow::Result<Option<String>> {
    let run = run_sample(s, sample, p)?;
    let out = pretty(&run.sanitized);
    let golden = s.golden_dir.join(&sample.file);
    let mut problems = Vec::new();
    let mut change = None;
    if update {
        let before = std::fs::read_to_string(&golden).ok();
        if before.as_deref() != Some(out.as_str()) {
            std::fs::create_dir_all(&s.golden_dir)?;
            std::fs::write(&golden, &out)
                .with_context(|| format!("cannot write {}", golden.display()))?;
            change = Some(golden_change(&golden, before.as_deref(), &out));
        }
    } else {
        match std::fs::read_to_string(&golden) {
            Ok(expected) if expected == out => {}
            Ok(expected) => {
                let diff = similar::TextDiff::from_lines(&expected, &out);
                let mut text = format!("differs from {} (- golden, + now):\n", golden.display());
                text.push_str(&diff.unified_diff().context_radius(2).to_string());
                problems.push(text);
            }
            Err(_) => problems.push(format!(
                "no golden file {} (run `veil rules test --update`)",
                golden.display()
            )),
        }
    }
    problems.extend(paging_problems(s, &run, p));
    // The tenant's planted values and anything the generic detectors find
    // (addresses in clear, phone numbers, IP and MAC addresses, credentials
    // in URLs), wherever it comes from.
    problems.extend(
        sensitive
            .leaks_in_json(&run.sanitized, &out)
            .iter()
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        Ok(change)
    } else {
        // The golden was written all the same: show what changed in it.
        problems.extend(change);
        bail!(problems.join("\n"))
    }
}

/// Most changed lines shown per golden file after `--update`.
const CHANGED_LINES_SHOWN: usize = 12;
/// Longer lines are cut around their first difference.
const LINE_WIDTH: usize = 140;

/// What `--update` changed in one golden file: a compact line diff (no
/// context; long lines cut around where they differ, at most
/// [`CHANGED_LINES_SHOWN`] lines).
fn golden_change(golden: &Path, before: Option<&str>, after: &str) -> String {
    let Some(before) = before else {
        return format!(
            "new golden {} ({} lines)",
            golden.display(),
            after.lines().count()
        );
    };
    let diff = similar::TextDiff::from_lines(before, after);
    let mut lines: Vec<String> = Vec::new();
    let (mut minus, mut plus) = (0usize, 0usize);
    for op in diff.ops() {
        let old: Vec<&str> = diff
            .iter_changes(op)
            .filter(|c| c.tag() == similar::ChangeTag::Delete)
            .map(|c| c.value().trim())
            .collect();
        let new: Vec<&str> = diff
            .iter_changes(op)
            .filter(|c| c.tag() == similar::ChangeTag::Insert)
            .map(|c| c.value().trim())
            .collect();
        minus += old.len();
        plus += new.len();
        // The n-th removed and the n-th added line of a change are cut at
        // the same place: where they first differ.
        for (i, l) in old.iter().enumerate() {
            lines.push(format!("- {}", cut(l, new.get(i).copied())));
        }
        for (i, l) in new.iter().enumerate() {
            lines.push(format!("+ {}", cut(l, old.get(i).copied())));
        }
    }
    let shown = lines.len().min(CHANGED_LINES_SHOWN);
    let mut out = format!(
        "updated golden {} (-{minus} +{plus} lines):\n",
        golden.display()
    );
    for l in &lines[..shown] {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > shown {
        let _ = writeln!(out, "… {} more changed line(s)", lines.len() - shown);
    }
    out
}

/// `line`, cut to [`LINE_WIDTH`] characters around its first difference
/// from `other` (or its start).
fn cut(line: &str, other: Option<&str>) -> String {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= LINE_WIDTH {
        return line.to_string();
    }
    let first_diff = other
        .map(|o| {
            chars
                .iter()
                .zip(o.chars())
                .take_while(|(a, b)| **a == *b)
                .count()
        })
        .unwrap_or(0);
    let start = first_diff
        .saturating_sub(LINE_WIDTH / 4)
        .min(chars.len() - LINE_WIDTH);
    let end = start + LINE_WIDTH;
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        chars[start..end].iter().collect::<String>(),
        if end < chars.len() { "…" } else { "" }
    )
}

/// Every paging link in a sanitized page must be a request the rules allow
/// from the client, and must re-identify to the link Graph gave.
fn paging_problems(s: &Suite, run: &Run, p: &Pseudonymizer) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["@odata.nextLink", "@odata.deltaLink"] {
        let (Some(orig), Some(link)) = (run.original.get(key), run.sanitized.get(key)) else {
            if run.original.get(key).is_some() {
                out.push(format!(
                    "{key} was removed: a client could not read the next page"
                ));
            }
            continue;
        };
        let (Some(orig), Some(link)) = (orig.as_str(), link.as_str()) else {
            out.push(format!("{key} is not a string after sanitizing"));
            continue;
        };
        let (path, query) = split_url(link);
        let endpoint = match s.rules.match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            RequestSide::Client,
        ) {
            Ok(allowed) => allowed.endpoint,
            Err(r) => {
                out.push(format!(
                    "the client's follow-up request ({key}) would be refused: {r}"
                ));
                continue;
            }
        };
        match reidentify_for(endpoint, &path, query.as_deref(), p) {
            Ok(r) => {
                let (opath, oquery) = split_url(orig);
                let norm = |pth: &str, q: Option<&str>| {
                    let full = match q {
                        Some(q) => format!("{pth}?{q}"),
                        None => pth.to_string(),
                    };
                    percent_encoding::percent_decode_str(&full)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                if norm(&r.path, r.query.as_deref()) != norm(&opath, oquery.as_deref()) {
                    out.push(format!(
                        "{key} does not re-identify to Graph's link:\n  graph: {orig}\n  after: {}",
                        norm(&r.path, r.query.as_deref())
                    ));
                }
            }
            Err(e) => out.push(format!("{key}: {e}")),
        }
    }
    out
}
