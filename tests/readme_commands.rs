//! Every command block of the README runs as written, from the repository
//! root, on this machine, without a cloud account.
//!
//! Each ```sh block runs in `bash -euo pipefail` in its own process group
//! (killed afterwards, background jobs included). A comment line just
//! before a block changes how it runs:
//!
//! - `<!-- readme-test: until "TEXT" -->`: a command that serves until
//!   stopped: it passes once its output shows TEXT, then it is stopped;
//! - `<!-- readme-test: skip (REASON) -->`: not run (only the test command
//!   itself, which runs this test).
//!
//! The blocks build the release binary (`cargo run --release`), so the
//! first run takes minutes. A block must not change a tracked file.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A block may build the release binary first.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(1500);

#[derive(Debug)]
enum Mode {
    Run,
    Until(String),
    Skip(String),
}

#[derive(Debug)]
struct Block {
    line: usize,
    mode: Mode,
    script: String,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            let marker = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim())
                .unwrap_or("");
            let mode = match marker
                .strip_prefix("<!-- readme-test:")
                .and_then(|m| m.strip_suffix("-->"))
                .map(str::trim)
            {
                Some(m) if m.starts_with("until ") => {
                    Mode::Until(m["until ".len()..].trim().trim_matches('"').to_string())
                }
                Some(m) if m.starts_with("skip") => Mode::Skip(m.to_string()),
                Some(m) => panic!("README.md:{i}: unknown readme-test marker `{m}`"),
                None => Mode::Run,
            };
            out.push(Block {
                line: start,
                mode,
                script: lines[start..end].join("\n"),
            });
            i = end;
        }
        i += 1;
    }
    out
}

fn git_status(root: &std::path::Path) -> String {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(root)
        .output()
        .expect("git is needed to check that README commands change no tracked file");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// Runs one block; returns its output (stdout and stderr, interleaved).
fn run(root: &std::path::Path, block: &Block) -> Result<String, String> {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{}\nwait\n", block.script))
        .current_dir(root)
        // The README's paths (`./target/release/veil`) mean the default
        // target directory.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let started = Instant::now();
    let mut output = String::new();
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
                if let Mode::Until(text) = &block.mode {
                    if line.contains(text.as_str()) {
                        break Ok(());
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| e.to_string())?;
                break match (&block.mode, status.success()) {
                    (Mode::Until(text), _) => {
                        Err(format!("ended ({status}) before printing `{text}`"))
                    }
                    (_, true) => Ok(()),
                    (_, false) => Err(format!("exited with {status}")),
                };
            }
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            break Err(format!("still running after {} s", BLOCK_TIMEOUT.as_secs()));
        }
    };
    kill_group(pid);
    let _ = child.wait();
    result
        .map(|()| output.clone())
        .map_err(|e| format!("{e}\n--- output ---\n{output}"))
}

#[test]
fn every_readme_command_block_runs_as_written() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 5, "found only {} sh blocks", blocks.len());
    let before = git_status(&root);
    let mut ran = 0;
    for block in &blocks {
        if let Mode::Skip(why) = &block.mode {
            assert!(
                why.contains('('),
                "README.md:{}: say why a block is skipped",
                block.line
            );
            continue;
        }
        let output = run(&root, block).unwrap_or_else(|e| {
            panic!(
                "README.md:{}: the block fails: {e}\n{}",
                block.line, block.script
            )
        });
        if block.script.contains("curl") {
            assert!(
                output.contains("\"value\"") || output.contains("\"status\""),
                "README.md:{}: curl printed no Veil answer:\n{output}",
                block.line
            );
        }
        ran += 1;
    }
    assert!(ran >= 4, "ran {ran} blocks");
    assert_eq!(
        git_status(&root),
        before,
        "a README command changed tracked files"
    );
}

#[test]
fn the_block_parser_reads_markers() {
    let text = "a\n<!-- readme-test: until \"ready\" -->\n```sh\nserve\n```\n\n<!-- readme-test: skip (why) -->\n\n```sh\nx\n```\n```sh\necho 1\necho 2\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 3);
    assert!(matches!(&b[0].mode, Mode::Until(t) if t == "ready"));
    assert!(matches!(&b[1].mode, Mode::Skip(_)));
    assert!(matches!(b[2].mode, Mode::Run));
    assert_eq!(b[2].script, "echo 1\necho 2");
}
