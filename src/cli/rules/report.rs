//! `veil rules report` (what leaves, per sample, and each transform's
//! match counts) and `veil rules review` (the privacy review page).

use super::*;

/// `$.value[3].from` → `$.value[*].from`.
pub(super) fn report(c: &CorpusArgs) -> anyhow::Result<ExitCode> {
    let p = golden_pseudonymizer()?;
    let mut dead_total = 0;
    for s in suites(c)? {
        println!(
            "# {} [{}] — {}",
            s.connector,
            s.variant,
            s.rules_file.display()
        );
        let mut matches: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for sample in &s.samples {
            let run = run_sample(&s, sample, &p)?;
            for (t, m) in run.report.matches.iter().enumerate() {
                *matches.entry((run.endpoint, t)).or_default() += m;
            }
            // Every value that leaves, by JSON path, with what happened to it.
            let mut leaving: BTreeMap<String, (BTreeMap<&'static str, usize>, Vec<String>)> =
                BTreeMap::new();
            for o in crate::cli::review::outcomes(&run.original, &run.sanitized) {
                if o.what == crate::cli::review::What::Removed {
                    continue;
                }
                let entry = leaving
                    .entry(crate::cli::review::general(&o.path))
                    .or_default();
                *entry.0.entry(o.what.name()).or_default() += 1;
                if let Some(after) = &o.after {
                    let shown = match after {
                        Value::String(v) => format!("{:?}", truncate(v, 60)),
                        other => other.to_string(),
                    };
                    if entry.1.len() < 3 && !entry.1.contains(&shown) {
                        entry.1.push(shown);
                    }
                }
            }
            println!("\n## {} ({})", sample.file, sample.url);
            if let Some(d) = &sample.description {
                println!("   {d}");
            }
            if leaving.is_empty() {
                println!("   nothing leaves");
            }
            for (path, (whats, examples)) in leaving {
                let whats: Vec<String> = whats.iter().map(|(w, n)| format!("{w} ×{n}")).collect();
                println!(
                    "   {path}: {} — e.g. {}",
                    whats.join(", "),
                    examples.join(", ")
                );
            }
        }
        println!("\n## transform matches over all samples");
        for ep in &s.rules.endpoints {
            for (t, rt) in ep.sanitizer.transforms().iter().enumerate() {
                let n = matches.get(&(ep.index, t)).copied().unwrap_or(0);
                let flag = if n == 0 && has_sample(&s, ep.index) {
                    dead_total += 1;
                    "  <- DEAD: matches nothing in any sample"
                } else {
                    ""
                };
                println!("   {} #{t} {}: {n}{flag}", ep.label, rt.transform.name());
            }
        }
        println!();
    }
    if dead_total > 0 {
        println!("{dead_total} dead transform(s)");
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub(super) fn review(c: &CorpusArgs, out: &Path) -> anyhow::Result<ExitCode> {
    use crate::cli::review::{page, ReviewedSample, ReviewedSuite};
    let p = golden_pseudonymizer()?;
    let suites = suites(c)?;
    let mut runs: Vec<Vec<(&Sample, Run)>> = Vec::new();
    for s in &suites {
        let mut list = Vec::new();
        for sample in &s.samples {
            let run = run_sample(s, sample, &p)
                .with_context(|| format!("{}: {}", s.connector, sample.file))?;
            list.push((sample, run));
        }
        runs.push(list);
    }
    let reviewed: Vec<ReviewedSuite<'_>> = suites
        .iter()
        .zip(&runs)
        .map(|(s, list)| ReviewedSuite {
            title: format!(
                "{} [{}] — {}",
                s.connector,
                s.variant,
                s.rules_file.display()
            ),
            endpoints: s
                .rules
                .endpoints
                .iter()
                .map(|ep| {
                    let samples = list
                        .iter()
                        .filter(|(_, r)| r.endpoint == ep.index)
                        .map(|(sample, r)| ReviewedSample {
                            file: &sample.file,
                            url: &sample.url,
                            original: &r.original,
                            sanitized: &r.sanitized,
                        })
                        .collect();
                    (ep, samples)
                })
                .collect(),
        })
        .collect();
    let rules_source = match &c.rules {
        Some(file) => format!("the rule file {}", file.display()),
        None => format!("the rule files in {}", c.rules_dir.display()),
    };
    let html = page(
        &reviewed,
        &format!(
            "{rules_source} and the samples in {} (golden test secrets)",
            c.samples_dir.display()
        ),
    );
    std::fs::write(out, html).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
