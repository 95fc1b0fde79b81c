//! `veil rules lint`: static checks of the rule files, and where a Psoxy
//! file would behave differently in Veil.

use super::*;

pub(super) fn lint(c: &CorpusArgs) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let mut findings = Vec::new();
    for s in suites(c)? {
        let file = s.rules_file.display().to_string();
        for w in &s.rules.warnings {
            findings.push(format!("{file}: overlap: {w}"));
        }
        if !s.rules.default_deny {
            findings.push(format!(
                "{file}: `defaultDeny: true` is not set: an endpoint without a `responseSchema` passes every property Graph returns, including ones Microsoft adds later"
            ));
            findings.extend(
                psoxy_differences(&s.rules)
                    .into_iter()
                    .map(|f| format!("{file}: {f}")),
            );
        }
        let mut hits: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        // (endpoint, transform, path) → whether the path selected anything
        // in the schema-filtered sample (before any transform).
        let mut path_hits: BTreeMap<(usize, usize, usize), bool> = BTreeMap::new();
        let mut sampled = vec![false; s.rules.endpoints.len()];
        // The curated samples and the all-properties ones: a path that
        // selects nothing in either selects nothing Graph documents.
        let all_dir = s.dir.join("all-properties");
        let all_samples = all_properties_samples(&s)?;
        let original = s.dir.join("original");
        let runs = s
            .samples
            .iter()
            .map(|x| (&original, x))
            .chain(all_samples.iter().map(|x| (&all_dir, x)));
        for (dir, sample) in runs {
            let run = run_sample_in(&s, dir, sample, &p)
                .with_context(|| format!("{}: {}", s.connector, sample.file))?;
            sampled[run.endpoint] = true;
            for (t, m) in run.report.matches.iter().enumerate() {
                *hits.entry((run.endpoint, t)).or_default() += m;
            }
            let ep = &s.rules.endpoints[run.endpoint];
            let mut filtered = run.original.clone();
            if let Some(schema) = ep.sanitizer.schema() {
                schema.apply(&mut filtered);
            }
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                for (i, path) in rt.paths.iter().enumerate() {
                    let hit = veil_engine::compile_jsonpath(path)
                        .map(|c| c.matches_any(&filtered))
                        .unwrap_or(false);
                    *path_hits.entry((run.endpoint, t, i)).or_default() |= hit;
                }
            }
        }
        for ep in &s.rules.endpoints {
            if !sampled[ep.index] {
                findings.push(format!(
                    "{file}: endpoints[{}] `{}` has no sample",
                    ep.index, ep.label
                ));
                continue;
            }
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                if hits.get(&(ep.index, t)).copied().unwrap_or(0) == 0 {
                    findings.push(format!(
                        "{file}: endpoints[{}] `{}` transforms[{t}] ({}) matches nothing in any sample",
                        ep.index,
                        ep.label,
                        rt.transform.name()
                    ));
                    continue;
                }
                for (i, path) in rt.paths.iter().enumerate() {
                    if !path_hits.get(&(ep.index, t, i)).copied().unwrap_or(false) {
                        findings.push(format!(
                            "{file}: endpoints[{}] `{}` transforms[{t}] ({}) jsonPaths[{i}] `{path}` matches nothing in any sample",
                            ep.index,
                            ep.label,
                            rt.transform.name()
                        ));
                    }
                }
            }
            findings.extend(
                shadowed(ep)
                    .into_iter()
                    .map(|f| format!("{file}: endpoints[{}] `{}`: {f}", ep.index, ep.label)),
            );
        }
    }
    for f in &findings {
        println!("{f}");
    }
    println!("\n{} finding(s)", findings.len());
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Where a Psoxy rule file behaves differently under Veil, on purpose (see
/// "Migrating from Psoxy" in the README): said once per endpoint and kind.
fn psoxy_differences(rules: &RuleSet) -> Vec<String> {
    use veil_engine::Transform;
    let mut out = Vec::new();
    for ep in &rules.endpoints {
        if ep.sanitizer.schema().is_none() {
            out.push(format!(
                "endpoints[{}] `{}` has no `responseSchema`: every property not redacted leaves Veil",
                ep.index, ep.label
            ));
        }
        for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
            let note = match &rt.transform {
                Transform::Tokenize(tk) if tk.regex.is_some() => {
                    "tokenize with `regex`: a value the regex does not match becomes null under Veil (Psoxy passes it unchanged), and every match is tokenized (Psoxy: one whole-value match)"
                }
                Transform::Tokenize(_) => {
                    "a blank value becomes null under Veil (Psoxy passes it unchanged)"
                }
                _ => continue,
            };
            out.push(format!(
                "endpoints[{}] `{}` transforms[{t}] ({}): {note}",
                ep.index,
                ep.label,
                rt.transform.name()
            ));
        }
    }
    out
}

/// Transforms on a path that an earlier `redact` already removed.
fn shadowed(ep: &veil_engine::CompiledEndpoint) -> Vec<String> {
    let ts = ep.sanitizer.transforms();
    let mut out = String::new();
    for (i, earlier) in ts.iter().enumerate() {
        if earlier.transform.name() != "redact" {
            continue;
        }
        for later in &ts[i + 1..] {
            for q in &later.paths {
                for pth in &earlier.paths {
                    let (pn, qn) = (
                        veil_engine::normalize_jsonpath(pth),
                        veil_engine::normalize_jsonpath(q),
                    );
                    let covered =
                        qn == pn || (qn.starts_with(&pn) && qn[pn.len()..].starts_with(['.', '[']));
                    if covered {
                        let _ = writeln!(
                            out,
                            "`{q}` ({}) is already removed by redact `{pth}`",
                            later.transform.name()
                        );
                    }
                }
            }
        }
    }
    out.lines().map(str::to_string).collect()
}
