//! Proxy benchmark: what Veil costs in front of Graph.
//!
//! An in-process test Graph server (hyper 1, loopback) serves a realistic
//! ~100 KB page of 40 sent messages for one user. The release `veil` binary
//! (`target/release/veil`, built by `cargo bench` as the bench's binary
//! target) runs as child processes in front of it with the shipped
//! `outlook-mail` rules: one with the streaming sanitizer (the default) and
//! one with `--dom-sanitizer` (the DOM path, the reference: parse the page
//! into a tree, sanitize, serialize). Both must answer the same bytes.
//! With `VEIL_BENCH_BASELINE_BIN` set, a third instance runs that binary
//! (see *Baseline* below) in front of the same test Graph, and its answer
//! must pass the same checks (no mailbox owner's name, address or Graph
//! id, every address a `t~` token, 40 messages). Measured in one run:
//!
//! 1. start-up: process spawn → first `200` of `/healthz` → first `200` of
//!    the sent-items page (5 fresh processes, median);
//! 2. load (HTTP/1.1 keep-alive, pooled client; 1 s warm-up, then 10 s per
//!    case): at concurrency 16 (a) straight to the test server, (B) through
//!    the baseline binary, (b) through Veil by the DOM path, (c) through
//!    Veil streaming, (d) the same with `Accept-Encoding: gzip`; then one
//!    request at a time (what Veil adds without queueing): (e) direct,
//!    (f) DOM path, (g) streaming, (B1) baseline. Requests/s, p50 and p99
//!    latency, and the CPU time (user + system, `/proc/PID/stat`) the Veil
//!    process spent per answered request — on a shared machine that figure
//!    moves much less than requests/s. The target ratio is (c)/(B);
//! 3. memory: a fresh Veil per path answers 16 concurrent requests for a
//!    ≈7 MB page, twice; its peak RSS (VmHWM);
//! 4. summary: Veil's resident memory during and after the load, the size
//!    of the binary, each target and whether it is met.
//!
//! `VEIL_BENCH_ROUNDS=N` repeats the load cases N times, interleaved (every
//! other round in reverse order), and reports medians; `VEIL_BENCH_SECS`
//! sets the seconds per case; `VEIL_BENCH_QUICK=1` skips phases 1 and 3.
//! Targets are reported, never asserted. Everything listens on 127.0.0.1,
//! every loop has a deadline, and the child processes are killed at the end.
//!
//! Run: `cargo bench --bench proxy`, or with the baseline:
//! `VEIL_BENCH_BASELINE_BIN=/path/to/veil-fc63e7d cargo bench --bench proxy`.
//!
//! # Baseline
//!
//! The throughput target (streaming ≥ 4× "today's") was set against the
//! code of commit `fc63e7d` (the DOM sanitizer only; that day's run: direct
//! 38,648 req/s, through Veil 1,902 req/s on a 109 KB page). The DOM path
//! of today's binary is no stand-in for it: it enjoys every per-request
//! improvement made since. So the baseline is a release build of that
//! commit, measured in the same run as today's binary:
//!
//! ```text
//! git worktree add --detach ../veil-base fc63e7d
//! cd ../veil-base && cargo build --release --bin veil   # target/release/veil
//! ```
//!
//! `fc63e7d`'s `veil serve` takes the same flags and environment the bench
//! gives today's ([`SERVE_FLAGS`]; its rules are compiled in too), which the
//! bench checks against the baseline's `serve --help` before it starts.
//! Any other `veil` binary can be given the same way, to compare two builds.
//!
//! # Notes (a 2-core machine shared with other builds)
//!
//! Requests/s moved by ±30 % between rounds of one run, for both binaries
//! alike; the CPU time per request moved by a few per cent. So a change
//! was judged by the CPU time per request of the old and the new binary in
//! one run (the old one as the "baseline"), 3 rounds, medians.
//!
//! Against `fc63e7d` (5 rounds of 4 s, medians; 109,012-byte page, answer
//! 62,065 bytes today, 67,104 bytes by `fc63e7d`'s rules of the day; a quiet
//! machine):
//!
//! | | req/s, c=16 | p50 / p99 ms, c=16 | CPU ms/request | p50 ms, c=1 |
//! | --- | --- | --- | --- | --- |
//! | direct | 58,513 | 0.26 / 0.53 | – | 0.03 |
//! | `fc63e7d` (B) | 2,590 | 6.14 / 10.07 | 0.690 | 0.80 |
//! | DOM path (b) | 3,867 | 4.08 / 7.16 | 0.452 | 0.57 |
//! | streaming (c) | 11,138 | 1.39 / 2.62 | 0.124 | 0.25 |
//!
//! Streaming over `fc63e7d`: 4.30× the requests/s and 5.56× less CPU per
//! request in this run; 3.97× (10,645 vs 2,679 req/s) and 5.13× in the next
//! run of the same code, and 4.16× (10,813 vs 2,602) and 5.28× in a third.
//! Target 4×: met by the median of the three (4.16×), short by 1 % in one. Earlier the same day, before the last row of the table
//! below: 3.98× and 4.00× (CPU 4.97× and 5.10× less). The ratio moves by
//! up to 8 % from run to run, mostly with `fc63e7d`'s own figure (2,420 to
//! 2,680 req/s). Added p50 at c=1: 0.23 ms (target 0.5 ms: met;
//! `fc63e7d` 0.78 ms). The throughput ratio is bounded by more than Veil:
//! the load generator and the test Graph share the two cores (2 cores ÷
//! the direct case's 50,000 to 60,000 req/s is 0.03 to 0.04 ms per
//! request), and the kernel's loopback delivery of Veil's answers runs on
//! Veil's own time.
//!
//! This page is the same on every request, so from the second request on
//! every pseudonym comes from the pseudonym cache
//! (`veil-engine/src/pseudonym/cache.rs`). A crawl of a tenant repeats its
//! people's addresses page after page, but not every value (message ids
//! never repeat): a page whose values are all new costs what it did
//! before the cache (the row for the cache below: 0.263 ms) plus about
//! 80 ns per new value for the lookup (see the cache's docs).
//!
//! Where Veil's CPU goes under the c=16 load (`perf record` on the
//! streaming instance, self time, before the last two rows of the table
//! below): the kernel about 20 % (socket reads and writes with the
//! loopback's delivery to the receiver, wake-ups and task switches), the
//! scanner's strings 13 %, the member loop 12 %, the value dispatch 6 %,
//! memmove 4.3 % (output writes, the body's copy), the pseudonym cache's
//! slot reads 3.9 % and its SipHash keys 3.3 %, the paging links'
//! `tokenize` 2.5 % (two regexes with captures and an encryption per
//! request), schema verdicts 2 % (before their table), re-identifying the
//! request's token 1.9 %, the access log 1.5 %, mimalloc ≈ 2 %, hyper and
//! tokio the rest.
//!
//! Kept, each measured as CPU per request at c=16 against the binary just
//! before it, in one run (3 rounds of 4 s, medians):
//!
//! | change | before → after, ms |
//! | --- | --- |
//! | nesting limit checked by the sanitizer's scan, not a pass of its own; strings searched by `memchr2` with a vectorized control-character check; escapes found by `memchr`; the body's text sliced, not re-checked per string | 0.404 → 0.341 |
//! | mimalloc instead of glibc's malloc | 0.352 → 0.299 |
//! | members predicted by the last object read in the same place | 0.321 → 0.287 |
//! | one-character escapes checked as they are passed | 0.314 → 0.277 |
//! | a remembered pseudonym's JSON text kept; member lists boxed | 0.271 → 0.261 |
//! | a string's first bytes looked at eight at a time | 0.289 → 0.260 |
//! | pseudonyms remembered across requests (SipHash-keyed cache, no plaintext) | 0.263 → 0.203 |
//! | the cache's slots read without a lock (sequence locks of atomics); the body's UTF-8 checked by `simdutf8` | 0.201 → 0.198 (5 rounds; `perf`: the cache's `get` 3.6 % → 2.0 %) |
//! | a member name the object before had in the same place matched by its bytes (quote, name, quote), not scanned | 0.197 → 0.185 |
//! | past a string's first 16 bytes, 32 bytes tested at a time (a vectorized fold), the first special byte found a word at a time; `memchr2` started over after every escape | 0.192 → 0.184 |
//! | a cached pseudonym written straight into the output: no `String`, `Value`, memo entry or serializer | 0.171 → 0.155 |
//! | the cache decides when writing whether a pseudonym needs JSON escapes; the memo looked at before the cache; the output buffer sized to the body; the path automaton stepped once per array; member names compared inline, not by `memcmp` | each within noise here. Counted by `callgrind` instead (`veil sanitize --compact` of this page's messages, a fresh process): per 1,000 messages 111.9M → 102.3M (the escape flag) → 98.1M (memo first) instructions; then the whole run of 2,000 messages 522.4M → 521.5M (arrays) → 520.2M (inline names) |
//! | the access log's line written as its fields are read, not built as a `serde_json::Map`; a request target's segment or value without `~` or `%` not searched for tokens | 0.149 → 0.142 (5 rounds; `perf`: the log 2.7 % → 1.5 %, re-identifying 2.6 % → 1.9 %) |
//! | member tables kept per schema node *and* filter depth: a message's `from` (one depth) and its `toRecipients` elements (one deeper) had taken turns in one table, each finding the other's members | 0.142 → 0.139; the names decided the slow way on a 40-message page 271 → 40 |
//! | an endpoint's member tables kept for its next responses (bounded; names and decisions, no values); schema verdicts looked up in a table built when the schema is compiled; a 32-byte chunk's special bytes taken in turn from the words' bits; one pair of scratch buffers for a member's decision; a plain member name and its colon copied in one step | 0.134–0.141 → 0.124, across full runs of one day, not one A/B run (`fc63e7d` ÷ streaming CPU 4.97×–5.10× → 5.56×). By `callgrind` (a fresh `veil sanitize --compact` of 2,000 messages, whole process): 509.5M → 501.7M (verdicts) → 497.7M (bits) → 493.8M (scratch) → 483.3M (name and colon) instructions; the kept tables: 2 % fewer in a pass after the first (1.976M → 1.935M) |
//!
//! (The "before" of one row is not the "after" of the one above: each pair
//! is its own run, and runs differ by up to 10 %.) Tried and dropped, no
//! difference measured: comparing a predicted member name in place after
//! scanning it (the kept change above skips the scan); byte-wise checks of
//! ASCII e-mail local parts and domains; word-at-a-time scanning after
//! each escape inside long strings (HTML bodies escape every few bytes):
//! the same time on this page ×100 through `veil sanitize` (39 vs 38–40 ms,
//! best of 12), and again over the 32-byte test: 93.5M vs 92.8M
//! instructions for 1,000 messages; a direct path for a matched string the
//! memo has not seen (one lookup and one copy fewer): 0.202 vs 0.199 ms per
//! request; two or three Tokio workers instead of one per core: the same
//! CPU per request; `lto = "fat"` with one codegen unit: 0.141 ms per
//! request against 0.137 with the thin LTO kept (no gain; a 13.1 MB binary
//! instead of 16.7 MB, and twice the build time); looking at the byte at the position before the loop
//! over blanks: 0.1 % fewer instructions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The Graph object id of the mailbox owner.
const USER_ID: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";
/// The development Graph token Veil sends and the test server requires.
const UPSTREAM_TOKEN: &str = "dev-token";
const MESSAGES: usize = 40;
const CONCURRENCY: usize = 16;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(10);
const STARTUP_RUNS: usize = 5;
/// Longest wait for a child to answer before the bench gives up.
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
const POLL_SLEEP: Duration = Duration::from_millis(1);

// Targets (reported, not asserted).
const TARGET_ADDED_P99_MS: f64 = 2.0;
const TARGET_THROUGHPUT_RATIO: f64 = 0.5;
const TARGET_FIRST_ANSWER_MS: f64 = 50.0;
const TARGET_RSS_MB: f64 = 50.0;
/// Streaming throughput over the baseline binary's (the code when the
/// target was set, see the module doc).
const TARGET_VS_BASELINE: f64 = 4.0;
/// The baseline binary to measure in the same run (a release build of
/// `fc63e7d`, or any other `veil` binary to compare with).
const ENV_BASELINE_BIN: &str = "VEIL_BENCH_BASELINE_BIN";
const TARGET_ADDED_P50_1_MS: f64 = 0.5;
/// The memory phase: this many messages (≈ 7 MB) per page, this many
/// requests at once.
const BIG_MESSAGES: usize = 2600;
const BIG_CONCURRENCY: usize = 16;
const TARGET_BIG_RSS_MB: f64 = 300.0;

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_veil"));
    let baseline = std::env::var_os(ENV_BASELINE_BIN).map(PathBuf::from);
    if let Some(b) = &baseline {
        check_baseline_flags(b);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(bin, baseline.as_deref()));
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn run(bin: &Path, baseline_bin: Option<&Path>) {
    let binary_bytes = std::fs::metadata(bin)
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
        .len();
    let quick = std::env::var_os("VEIL_BENCH_QUICK").is_some();
    let pages = Arc::new(Pages::new());
    let graph = start_graph(pages.clone()).await;
    let secrets = Secrets::generate();
    let direct_url =
        format!("http://{graph}/v1.0/users/{USER_ID}/mailFolders/SentItems/messages?$top=40");

    println!("Veil proxy benchmark");
    println!(
        "  binary            {} ({binary_bytes} bytes)",
        bin.display()
    );
    match baseline_bin {
        Some(b) => println!("  baseline binary   {}", b.display()),
        None => println!("  baseline binary   none ({ENV_BASELINE_BIN} unset)"),
    }
    println!(
        "  cores             {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  test Graph        http://{graph} — sent-items page {} bytes ({MESSAGES} messages)",
        pages.messages.len()
    );

    // The instances that take the load: streaming (the default) and the
    // DOM sanitizer (the reference path, `--dom-sanitizer`), same secrets;
    // and the baseline binary, when given.
    let veil = Veil::spawn(bin, graph, &secrets, &[]);
    let veil_dom = Veil::spawn(bin, graph, &secrets, &["--dom-sanitizer"]);
    let veil_base = baseline_bin.map(|b| Veil::spawn(b, graph, &secrets, &[]));
    let client = client(false);
    wait_healthy(&client, &veil).await;
    wait_healthy(&client, &veil_dom).await;
    if let Some(v) = &veil_base {
        wait_healthy(&client, v).await;
    }
    let pid = veil.pid();
    let p_id = pseudonymous_user_id(&client, &veil).await;
    let page_path =
        |p_id: &str| format!("/v1.0/users/{p_id}/mailFolders/SentItems/messages?$top=40");
    let veil_url = format!("{}{}", veil.base(), page_path(&p_id));
    let dom_url = format!("{}{}", veil_dom.base(), page_path(&p_id));
    let sanitized = get_ok(&client, &veil_url, None).await;
    check_sanitized(&sanitized);
    assert_eq!(
        sanitized,
        get_ok(&client, &dom_url, None).await,
        "the streaming and the DOM path answer differently"
    );
    // The baseline pseudonymizes with its own scheme: its own user token,
    // its own answer, checked the same way.
    let base_url = match &veil_base {
        Some(v) => {
            let base_p_id = pseudonymous_user_id(&client, v).await;
            let url = format!("{}{}", v.base(), page_path(&base_p_id));
            let answer = get_ok(&client, &url, None).await;
            check_sanitized(&answer);
            println!(
                "  baseline          {} bytes sanitized, user id {}…",
                answer.len(),
                &base_p_id[..12.min(base_p_id.len())]
            );
            Some(url)
        }
        None => None,
    };
    let gzipped_len = {
        let gz = client
            .get(&veil_url)
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .expect("gzip request");
        assert_eq!(
            gz.headers().get("content-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip"[..])
        );
        gz.bytes().await.expect("gzip body").len()
    };
    println!(
        "  through Veil      {} bytes sanitized ({} bytes gzip), user id {}…; DOM path: same bytes",
        sanitized.len(),
        gzipped_len,
        &p_id[..12.min(p_id.len())]
    );
    let idle = proc_status(pid);

    // 1. Start-up.
    let (mut healthz_ms, mut first_ms) = (Vec::new(), Vec::new());
    if quick {
        println!("\n[1/4] start-up: skipped (VEIL_BENCH_QUICK)");
    } else {
        println!("\n[1/4] start-up: {STARTUP_RUNS} fresh processes");
        for i in 0..STARTUP_RUNS {
            let (h, f) = startup_once(bin, graph, &secrets, &p_id).await;
            println!(
                "  run {}: /healthz 200 after {h:.1} ms, first sent-items page 200 after {f:.1} ms",
                i + 1
            );
            healthz_ms.push(h);
            first_ms.push(f);
        }
    }
    let healthz_median = median(&mut healthz_ms);
    let first_median = median(&mut first_ms);

    // 2. Load, in rounds; each round runs every case once (every other
    // round in reverse order), so machine noise hits all alike; medians
    // over the rounds are reported.
    let rounds = env_number("VEIL_BENCH_ROUNDS", 1);
    let secs = env_number("VEIL_BENCH_SECS", MEASURE.as_secs() as usize);
    let measure_for = Duration::from_secs(secs as u64);
    println!(
        "\n[2/4] load: concurrency {CONCURRENCY} and 1, HTTP/1.1 keep-alive, {} s warm-up + {secs} s each, {rounds} round(s)",
        WARMUP.as_secs(),
    );
    let auth = HeaderValue::from_str(&format!("Bearer {UPSTREAM_TOKEN}")).unwrap();
    let sampler = RssSampler::start(pid);
    let (s, d) = (Some(&veil), Some(&veil_dom));
    let mut cases: Vec<Case> = vec![
        Case::new(DIRECT, &direct_url, None, false, CONCURRENCY),
        Case::new(DOM, &dom_url, d, false, CONCURRENCY),
        Case::new(STREAMING, &veil_url, s, false, CONCURRENCY),
        Case::new(STREAMING_GZIP, &veil_url, s, true, CONCURRENCY),
        Case::new(DIRECT_1, &direct_url, None, false, 1),
        Case::new(DOM_1, &dom_url, d, false, 1),
        Case::new(STREAMING_1, &veil_url, s, false, 1),
    ];
    if let Some(url) = &base_url {
        let b = veil_base.as_ref();
        cases.insert(1, Case::new(BASELINE, url, b, false, CONCURRENCY));
        cases.push(Case::new(BASELINE_1, url, b, false, 1));
    }
    let mut runs: Vec<Vec<Stats>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        if rounds > 1 {
            println!("  round {}", round + 1);
        }
        let mut order: Vec<usize> = (0..cases.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &cases[i];
            let a = c.with_auth.then(|| auth.clone());
            runs[i]
                .push(measure(c.name, &c.url, a, c.gzip, c.concurrency, measure_for, c.pid).await);
        }
    }
    let peak_sampled = sampler.stop();
    let all: Vec<Stats> = runs.into_iter().map(median_stats).collect();
    let stats = |name: &str| all.iter().find(|s| s.name == name);
    let get = |name: &str| stats(name).expect("every case ran");
    let (direct, dom, through) = (get(DIRECT), get(DOM), get(STREAMING));
    let (direct_1, dom_1, through_1) = (get(DIRECT_1), get(DOM_1), get(STREAMING_1));
    let (base, base_1) = (stats(BASELINE), stats(BASELINE_1));
    let after = proc_status(pid);
    drop(veil);
    drop(veil_dom);
    drop(veil_base);

    // 3. Memory under large pages.
    let big = if quick {
        println!("\n[3/4] memory: skipped (VEIL_BENCH_QUICK)");
        None
    } else {
        Some(memory_phase(bin, &secrets, &p_id).await)
    };

    // 4. Summary.
    let added_p99 = through.p99_ms - direct.p99_ms;
    let ratio = through.rps / direct.rps;
    let vs_dom = through.rps / dom.rps;
    let added_p50_1 = through_1.p50_ms - direct_1.p50_ms;
    let hwm_mb = after.hwm_kb as f64 / 1024.0;
    println!("\n[4/4] summary (medians of {rounds} round(s))");
    println!(
        "  {:<30} {:>10} {:>10} {:>10} {:>8} {:>12} {:>14}",
        "load", "req/s", "p50 ms", "p99 ms", "errors", "MB/s body", "CPU ms/req"
    );
    for s in &all {
        println!(
            "  {:<30} {:>10.0} {:>10.2} {:>10.2} {:>8} {:>12.1} {:>14.3}",
            s.name,
            s.rps,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            s.body_bytes as f64 / s.elapsed.as_secs_f64() / 1e6,
            s.cpu_ms
        );
    }
    println!();
    println!(
        "  {:<46} {:>14} {:>14}  verdict",
        "measure", "measured", "target"
    );
    let row = |name: &str, measured: String, target: String, ok: bool| {
        println!(
            "  {name:<46} {measured:>14} {target:>14}  {}",
            if ok { "meets" } else { "misses" }
        );
    };
    let note = |name: &str, measured: String| println!("  {name:<46} {measured:>14}");
    match base {
        Some(base) => {
            let vs_base = through.rps / base.rps;
            row(
                "streaming / baseline throughput, (c) / (B)",
                format!("{vs_base:.2}×"),
                format!("≥ {TARGET_VS_BASELINE:.0}×"),
                vs_base >= TARGET_VS_BASELINE,
            );
            note(
                "DOM path / baseline throughput, (b) / (B)",
                format!("{:.2}×", dom.rps / base.rps),
            );
            note(
                "baseline / streaming CPU per request",
                format!("{:.2}×", base.cpu_ms / through.cpu_ms),
            );
        }
        None => note(
            "streaming / baseline throughput",
            format!("(set {ENV_BASELINE_BIN})"),
        ),
    }
    note(
        "streaming / DOM path throughput, (c) / (b)",
        format!("{vs_dom:.2}×"),
    );
    row(
        "added p50 latency at c=1, (g) − (e)",
        format!("{added_p50_1:.2} ms"),
        format!("≤ {TARGET_ADDED_P50_1_MS} ms"),
        added_p50_1 <= TARGET_ADDED_P50_1_MS,
    );
    note(
        "added p50 at c=1, DOM path, (f) − (e)",
        format!("{:.2} ms", dom_1.p50_ms - direct_1.p50_ms),
    );
    if let Some(base_1) = base_1 {
        note(
            "added p50 at c=1, baseline, (B1) − (e)",
            format!("{:.2} ms", base_1.p50_ms - direct_1.p50_ms),
        );
    }
    row(
        "added p99 latency, (c) − (a)",
        format!("{added_p99:.2} ms"),
        format!("≤ {TARGET_ADDED_P99_MS} ms"),
        added_p99 <= TARGET_ADDED_P99_MS,
    );
    row(
        "throughput ratio, (c) / (a)",
        format!("{:.0} %", ratio * 100.0),
        format!("≥ {:.0} %", TARGET_THROUGHPUT_RATIO * 100.0),
        ratio >= TARGET_THROUGHPUT_RATIO,
    );
    note(
        "throughput ratio, DOM path, (b) / (a)",
        format!("{:.0} %", dom.rps / direct.rps * 100.0),
    );
    if !quick {
        row(
            "first answered request (median of 5)",
            format!("{first_median:.1} ms"),
            format!("≤ {TARGET_FIRST_ANSWER_MS} ms"),
            first_median <= TARGET_FIRST_ANSWER_MS,
        );
    }
    row(
        "peak RSS (VmHWM) after the load",
        format!("{hwm_mb:.1} MB"),
        format!("≤ {TARGET_RSS_MB} MB"),
        hwm_mb <= TARGET_RSS_MB,
    );
    if let Some(big) = &big {
        for (name, hwm) in [("streaming", big.streaming_kb), ("DOM path", big.dom_kb)] {
            let mb = hwm as f64 / 1024.0;
            row(
                &format!(
                    "peak RSS, {BIG_CONCURRENCY} × {:.1} MB pages, {name}",
                    big.page_bytes as f64 / 1e6
                ),
                format!("{mb:.1} MB"),
                format!("≤ {TARGET_BIG_RSS_MB} MB"),
                mb <= TARGET_BIG_RSS_MB,
            );
        }
    }
    println!();
    if !quick {
        println!("  /healthz first 200 (median)            {healthz_median:>8.1} ms");
    }
    println!(
        "  RSS idle (after 3 requests)            {:>8.1} MB",
        idle.rss_kb as f64 / 1024.0
    );
    println!(
        "  RSS max sampled during the load        {:>8.1} MB",
        peak_sampled as f64 / 1024.0
    );
    println!(
        "  RSS after the load                     {:>8.1} MB",
        after.rss_kb as f64 / 1024.0
    );
    println!(
        "  release binary                         {:>8.1} MB ({binary_bytes} bytes)",
        binary_bytes as f64 / 1024.0 / 1024.0
    );
}

// The load cases, by name (the summary finds them so).
const DIRECT: &str = "(a) direct";
const BASELINE: &str = "(B) Veil, baseline binary";
const DOM: &str = "(b) Veil, DOM path";
const STREAMING: &str = "(c) Veil, streaming";
const STREAMING_GZIP: &str = "(d) Veil, streaming, gzip";
const DIRECT_1: &str = "(e) direct, c=1";
const DOM_1: &str = "(f) Veil, DOM path, c=1";
const STREAMING_1: &str = "(g) Veil, streaming, c=1";
const BASELINE_1: &str = "(B1) Veil, baseline, c=1";

/// One load case: where, how, how many at once.
struct Case {
    name: &'static str,
    url: String,
    with_auth: bool,
    gzip: bool,
    concurrency: usize,
    /// The Veil process that answers (none: the test Graph directly).
    pid: Option<u32>,
}

impl Case {
    fn new(
        name: &'static str,
        url: &str,
        veil: Option<&Veil>,
        gzip: bool,
        concurrency: usize,
    ) -> Self {
        Case {
            name,
            url: url.to_string(),
            // Straight to the test Graph, the request carries its token.
            with_auth: veil.is_none(),
            gzip,
            concurrency,
            pid: veil.map(Veil::pid),
        }
    }
}

/// The `p~` token a Veil instance gives the mailbox owner.
async fn pseudonymous_user_id(client: &reqwest::Client, veil: &Veil) -> String {
    let users: Value =
        serde_json::from_slice(&get_ok(client, &format!("{}/v1.0/users", veil.base()), None).await)
            .expect("users page is JSON");
    let p_id = users["value"][0]["id"]
        .as_str()
        .expect("a user id in Veil's answer")
        .to_string();
    assert!(p_id.starts_with("p~"), "user id is not a p~ token: {p_id}");
    p_id
}

/// Peak memory (VmHWM) of a fresh Veil answering `BIG_CONCURRENCY`
/// concurrent requests for a large page, twice over, by each path.
struct BigPages {
    page_bytes: usize,
    streaming_kb: u64,
    dom_kb: u64,
}

async fn memory_phase(bin: &Path, secrets: &Secrets, p_id: &str) -> BigPages {
    let pages = Arc::new(Pages::with_messages(BIG_MESSAGES));
    let page_bytes = pages.messages.len();
    let graph = start_graph(pages).await;
    println!(
        "\n[3/4] memory: {BIG_CONCURRENCY} concurrent requests for a {:.1} MB page ({BIG_MESSAGES} messages), twice, fresh process per path",
        page_bytes as f64 / 1e6
    );
    let mut hwm = [0u64; 2];
    for (i, extra) in [&[][..], &["--dom-sanitizer"][..]].into_iter().enumerate() {
        let veil = Veil::spawn(bin, graph, secrets, extra);
        let client = client(false);
        wait_healthy(&client, &veil).await;
        let url = format!(
            "{}/v1.0/users/{p_id}/mailFolders/SentItems/messages?$top=40",
            veil.base()
        );
        let before = proc_status(veil.pid());
        let started = Instant::now();
        for _ in 0..2 {
            let tasks: Vec<_> = (0..BIG_CONCURRENCY)
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move { get_ok(&client, &url, None).await.len() })
                })
                .collect();
            for t in tasks {
                t.await.expect("big page request");
            }
        }
        let after = proc_status(veil.pid());
        hwm[i] = after.hwm_kb;
        println!(
            "  {:<10} idle {:>6.1} MB, VmHWM {:>6.1} MB, {} requests in {:.2} s",
            if i == 0 { "streaming" } else { "DOM path" },
            before.rss_kb as f64 / 1024.0,
            after.hwm_kb as f64 / 1024.0,
            2 * BIG_CONCURRENCY,
            started.elapsed().as_secs_f64()
        );
    }
    BigPages {
        page_bytes,
        streaming_kb: hwm[0],
        dom_kb: hwm[1],
    }
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name}=`{v}` is not a positive number")),
        Err(_) => default,
    }
}

/// The run with the median throughput, under its case's name.
/// (Its CPU per request is the median over the runs on its own.)
fn median_stats(mut v: Vec<Stats>) -> Stats {
    let mut cpu: Vec<f64> = v.iter().map(|s| s.cpu_ms).collect();
    v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = v.len() / 2;
    let mut s = v.swap_remove(mid);
    s.cpu_ms = median(&mut cpu);
    s
}

// ---------------------------------------------------------------------------
// The test Graph server.

struct Pages {
    users: Bytes,
    messages: Bytes,
}

impl Pages {
    fn new() -> Self {
        Self::with_messages(MESSAGES)
    }

    fn with_messages(n: usize) -> Self {
        Pages {
            users: Bytes::from(serde_json::to_vec(&users_page()).unwrap()),
            messages: Bytes::from(serde_json::to_vec(&messages_page(n)).unwrap()),
        }
    }
}

async fn start_graph(pages: Arc<Pages>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let pages = pages.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let answer = graph(&pages, &req);
                    async move { Ok::<_, Infallible>(answer) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

static GRAPH_REQUESTS: AtomicU64 = AtomicU64::new(0);

fn graph(pages: &Pages, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let n = GRAPH_REQUESTS.fetch_add(1, Ordering::Relaxed);
    let bearer = format!("Bearer {UPSTREAM_TOKEN}");
    let (status, body) = if req
        .headers()
        .get(AUTHORIZATION)
        .is_none_or(|v| v.as_bytes() != bearer.as_bytes())
    {
        (
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty."}}"#),
        )
    } else if req.method() != Method::GET {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(
                br#"{"error":{"code":"BadRequest","message":"Unsupported method."}}"#,
            ),
        )
    } else if req.uri().path() == "/v1.0/users" {
        (StatusCode::OK, pages.users.clone())
    } else if req.uri().path() == format!("/v1.0/users/{USER_ID}/mailFolders/SentItems/messages") {
        (StatusCode::OK, pages.messages.clone())
    } else {
        (
            StatusCode::NOT_FOUND,
            Bytes::from_static(
                br#"{"error":{"code":"ResourceNotFound","message":"Resource not found."}}"#,
            ),
        )
    };
    Response::builder()
        .status(status)
        .header(
            CONTENT_TYPE,
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        )
        .header("request-id", format!("6b1c0f2e-0000-4000-8000-{n:012x}"))
        .body(Full::new(body))
        .unwrap()
}

fn users_page() -> Value {
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "value": [{
            "id": USER_ID,
            "displayName": "Priya Raman",
            "givenName": "Priya",
            "surname": "Raman",
            "mail": "priya.raman@contoso.example",
            "userPrincipalName": "priya.raman@contoso.example",
            "otherMails": [],
            "proxyAddresses": ["SMTP:priya.raman@contoso.example", "smtp:priya.raman@contoso.onmicrosoft.example"],
            "jobTitle": "Staff Software Engineer",
            "department": "Platform Engineering",
            "businessPhones": ["+1 425 555 0101"],
            "officeLocation": "Building 4, 2nd floor"
        }]
    })
}

const FIRST: [&str; 12] = [
    "Priya", "Alex", "Zoë", "José", "Wei", "Fatima", "Kenji", "Grace", "Mateus", "Ana", "Hannah",
    "Olivia",
];
const LAST: [&str; 12] = [
    "Raman",
    "Moreau",
    "Ångström",
    "García",
    "Zhang",
    "Haddad",
    "Watanabe",
    "Okafor",
    "Silva",
    "Kowalska",
    "Becker",
    "Nguyen",
];
const DOMAINS: [&str; 3] = ["contoso.example", "fabrikam.example", "northwind.example"];

fn mix(x: u64) -> u64 {
    // splitmix64: deterministic variety without a random-number crate.
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn person(k: u64) -> Value {
    let (f, l) = (FIRST[(k % 12) as usize], LAST[(k / 12 % 12) as usize]);
    let domain = DOMAINS[(k / 144 % 3) as usize];
    let local = format!("{}.{}", f.to_lowercase(), l.to_lowercase())
        .replace(['ë', 'é'], "e")
        .replace('Å', "a")
        .replace('ö', "o");
    json!({"emailAddress": {"name": format!("{f} {l}"), "address": format!("{local}@{domain}")}})
}

fn messages_page(n: usize) -> Value {
    let me =
        json!({"emailAddress": {"name": "Priya Raman", "address": "priya.raman@contoso.example"}});
    let messages: Vec<Value> = (0..n as u64)
        .map(|i| {
            let r = mix(i);
            let to: Vec<Value> = (0..1 + r % 4).map(|j| person(mix(r + j))).collect();
            let cc: Vec<Value> = (0..r / 7 % 3).map(|j| person(mix(r ^ (j + 99)))).collect();
            let id = format!(
                "AAMkADBmM2E3YzllLTJkNGItNGU2MS05YTg1LWM3YjNlMWQwZjY0MgBGAAAAAAB5cm_fWNWYIPw6G9k_B7WcBwB4QnyBliVodCWAE4cn_pwY-prBXxt0AACv5yIU{:016x}AAA=",
                r
            );
            let when = format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 1 + i % 28, 8 + r % 10, r / 10 % 60, r / 600 % 60);
            let greeting = FIRST[(r % 12) as usize];
            let paragraph = format!(
                "Attached are the revised figures for project {i}; hosting dropped to ${},{:03}. Please confirm the PO before Friday (invoice INV-{:05}).",
                r % 900 + 100,
                r % 1000,
                r % 100_000
            );
            let div = "<div class=\"elementToProof\" style=\"font-size: 12pt;\">";
            let body = format!(
                "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body dir=\"ltr\">\r\n{div}\r\nHi {greeting},</div>\r\n{div}\r\n{paragraph}</div>\r\n{div}\r\n<br></div>\r\n{div}\r\nThanks,<br>Priya</div>\r\n</body>\r\n</html>\r\n"
            );
            json!({
                "@odata.etag": format!("W/\"CQAAABYAAADmpjvzBjUiTTwqCmCvaPonNmcl{:08x}\"", r as u32),
                "id": id,
                "createdDateTime": when,
                "lastModifiedDateTime": when,
                "changeKey": format!("CQAAABYAAADmpjvzBjUiTTwqCmCvaPonNmcl{:08x}", r as u32),
                "categories": if r.is_multiple_of(3) { json!(["Customers"]) } else { json!([]) },
                "receivedDateTime": when,
                "sentDateTime": when,
                "hasAttachments": r.is_multiple_of(5),
                "internetMessageId": format!("<SA1PR11MB{:04X}{:016X}@SA1PR11MB8470.namprd11.prod.outlook.com>", i, r),
                "subject": format!("Q{} budget review – revised figures for project {i}", 1 + r % 4),
                "bodyPreview": format!("Hi {greeting},\r\n\r\n{paragraph}"),
                "importance": if r.is_multiple_of(11) { "high" } else { "normal" },
                "parentFolderId": "AAMkADBmM2E3YzllLTJkNGItNGU2MS05YTg1LWM3YjNlMWQwZjY0MgAuAAAAAAB5cm_fWNWYIPw6G9k_B7WcAQCCzf370A64ucQzgBLZZkvAZAoncoixAAA=",
                "conversationId": format!("AAQkADBmM2E3YzllLTJkNGItNGU2MS05YTg1LWM3YjNlMWQwZjY0MgAQAK95pN0vnv05{:016x}=", mix(r)),
                "conversationIndex": format!("AQHbOB98wflgebGv{:016x}==", r),
                "isDeliveryReceiptRequested": false,
                "isReadReceiptRequested": false,
                "isRead": true,
                "isDraft": false,
                "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", id.replace('=', "%3D")),
                "inferenceClassification": "focused",
                "body": {"contentType": "html", "content": body},
                "sender": me,
                "from": me,
                "toRecipients": to,
                "ccRecipients": cc,
                "bccRecipients": [],
                "replyTo": [],
                "flag": {"flagStatus": "notFlagged"}
            })
        })
        .collect();
    json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{USER_ID}')/mailFolders('SentItems')/messages"),
        "@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users/{USER_ID}/mailFolders/SentItems/messages?$top=40&$skip=40"),
        "value": messages
    })
}

/// Fails the bench if the sanitized page still carries what the rules remove.
fn check_sanitized(body: &[u8]) {
    let text = std::str::from_utf8(body).expect("UTF-8");
    for leak in ["priya.raman@", "budget review", "Priya Raman", USER_ID] {
        assert!(
            !text.contains(leak),
            "sanitized page still contains `{leak}`"
        );
    }
    let v: Value = serde_json::from_str(text).expect("sanitized page is JSON");
    assert_eq!(v["value"].as_array().map(Vec::len), Some(MESSAGES));
    fn addresses_pseudonymized(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().all(|(k, v)| {
                if k == "address" {
                    v.as_str().is_some_and(|a| a.starts_with("t~"))
                } else {
                    addresses_pseudonymized(v)
                }
            }),
            Value::Array(a) => a.iter().all(addresses_pseudonymized),
            _ => true,
        }
    }
    assert!(
        addresses_pseudonymized(&v),
        "an email address left Veil unpseudonymized"
    );
}

// ---------------------------------------------------------------------------
// The Veil child process.

struct Secrets {
    salt: String,
    key: String,
}

impl Secrets {
    fn generate() -> Self {
        let hex = || {
            let mut b = [0u8; 32];
            getrandom::getrandom(&mut b).expect("getrandom");
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        };
        Secrets {
            salt: hex(),
            key: hex(),
        }
    }
}

struct Veil {
    child: Child,
    addr: SocketAddr,
}

impl Veil {
    fn spawn(bin: &Path, upstream: SocketAddr, secrets: &Secrets, extra: &[&str]) -> Self {
        // Reserve a free port, release it, and hand it to Veil.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let child = Command::new(bin)
            .env_clear()
            .env("VEIL_SALT", &secrets.salt)
            .env("VEIL_ENCRYPTION_KEY", &secrets.key)
            .env("VEIL_UPSTREAM_TOKEN", UPSTREAM_TOKEN)
            .arg("serve")
            .args(serve_args(addr, upstream))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Veil { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The arguments of `veil serve` every instance gets. `fc63e7d` (the
/// baseline) takes the same flags and environment as today's binary, so
/// one list serves both; [`check_baseline_flags`] makes sure a baseline
/// binary knows each flag before it is measured.
fn serve_args(listen: SocketAddr, upstream: SocketAddr) -> Vec<String> {
    SERVE_FLAGS
        .iter()
        .flat_map(|(flag, value)| {
            let value = match *value {
                Some("LISTEN") => Some(listen.to_string()),
                Some("UPSTREAM") => Some(format!("http://{upstream}")),
                Some(v) => Some(v.to_string()),
                None => None,
            };
            std::iter::once(flag.to_string()).chain(value)
        })
        .collect()
}

/// `veil serve`'s flags as the bench passes them: the listen address, the
/// shipped `outlook-mail` rules (compiled into both binaries), the test
/// Graph on loopback (plain http is accepted there), no caller
/// authentication. Environment: `VEIL_SALT`, `VEIL_ENCRYPTION_KEY`,
/// `VEIL_UPSTREAM_TOKEN` (the static development token), the same in both.
const SERVE_FLAGS: &[(&str, Option<&str>)] = &[
    ("--listen", Some("LISTEN")),
    ("--connector", Some("outlook-mail")),
    ("--upstream", Some("UPSTREAM")),
    ("--allow-unauthenticated", None),
];

/// Fails the bench, before anything runs, when the baseline binary's
/// `serve --help` does not name every flag in [`SERVE_FLAGS`].
fn check_baseline_flags(bin: &Path) {
    let out = Command::new(bin)
        .args(["serve", "--help"])
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("{ENV_BASELINE_BIN}: cannot run {}: {e}", bin.display()));
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, _) in SERVE_FLAGS {
        assert!(
            help.contains(flag),
            "{ENV_BASELINE_BIN}: {} serve does not take {flag}; adapt SERVE_FLAGS for it",
            bin.display()
        );
    }
}

impl Drop for Veil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(gzip: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(10));
    let b = if gzip { b } else { b.no_gzip() };
    b.build().expect("HTTP client")
}

async fn wait_healthy(client: &reqwest::Client, veil: &Veil) {
    let started = Instant::now();
    let url = format!("{}/healthz", veil.base());
    while !matches!(client.get(&url).send().await, Ok(r) if r.status() == StatusCode::OK) {
        assert!(
            started.elapsed() < STARTUP_DEADLINE,
            "Veil did not become healthy"
        );
        tokio::time::sleep(POLL_SLEEP).await;
    }
}

async fn get_ok(client: &reqwest::Client, url: &str, auth: Option<&HeaderValue>) -> Bytes {
    let mut req = client.get(url);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {url}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// One fresh process: milliseconds from spawn to the first `200` of
/// `/healthz`, and to the first complete `200` of the sent-items page.
async fn startup_once(bin: &Path, graph: SocketAddr, secrets: &Secrets, p_id: &str) -> (f64, f64) {
    let client = client(false);
    let t0 = Instant::now();
    let veil = Veil::spawn(bin, graph, secrets, &[]);
    let health = format!("{}/healthz", veil.base());
    let page = format!(
        "{}/v1.0/users/{p_id}/mailFolders/SentItems/messages?$top=40",
        veil.base()
    );
    while !matches!(client.get(&health).send().await, Ok(r) if r.status() == StatusCode::OK) {
        assert!(
            t0.elapsed() < STARTUP_DEADLINE,
            "Veil did not become healthy"
        );
        tokio::time::sleep(POLL_SLEEP).await;
    }
    let healthy = t0.elapsed();
    loop {
        if let Ok(r) = client.get(&page).send().await {
            if r.status() == StatusCode::OK && r.bytes().await.is_ok() {
                break;
            }
        }
        assert!(
            t0.elapsed() < STARTUP_DEADLINE,
            "Veil did not answer the page"
        );
        tokio::time::sleep(POLL_SLEEP).await;
    }
    let answered = t0.elapsed();
    drop(veil);
    (ms(healthy), ms(answered))
}

// ---------------------------------------------------------------------------
// Load.

struct Stats {
    name: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    body_bytes: u64,
    elapsed: Duration,
    /// CPU time (user + system) the Veil process spent per answered
    /// request, in ms; NaN for the direct cases. Less sensitive than
    /// requests/s to other work on the machine.
    cpu_ms: f64,
}

/// Warm-up, then the measured run, with a fresh pooled client. `pid`: the
/// Veil process whose CPU time is counted.
async fn measure(
    name: &'static str,
    url: &str,
    auth: Option<HeaderValue>,
    gzip: bool,
    concurrency: usize,
    duration: Duration,
    pid: Option<u32>,
) -> Stats {
    let client = client(gzip);
    let mut headers = hyper::HeaderMap::new();
    if let Some(a) = auth {
        headers.insert(AUTHORIZATION, a);
    }
    let _ = load(&client, url, &headers, WARMUP, concurrency).await;
    let cpu_before = pid.map(cpu_ticks);
    let started = Instant::now();
    let (mut latencies, errors, body_bytes) =
        load(&client, url, &headers, duration, concurrency).await;
    let elapsed = started.elapsed();
    let cpu_ms = match (pid, cpu_before) {
        (Some(pid), Some(before)) => {
            (cpu_ticks(pid) - before) as f64 * 1000.0 / TICKS_PER_SEC / latencies.len() as f64
        }
        _ => f64::NAN,
    };
    latencies.sort_unstable();
    let s = Stats {
        name,
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        errors,
        body_bytes,
        elapsed,
        cpu_ms,
    };
    println!(
        "  {name:<26} {:>7} requests in {:.2} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, Veil CPU {:.3} ms/request",
        latencies.len(),
        elapsed.as_secs_f64(),
        s.rps,
        s.p50_ms,
        s.p99_ms,
        errors,
        cpu_ms
    );
    s
}

/// `CONCURRENCY` tasks, each sending its next request as soon as the
/// previous one is fully read, until `duration` is over. Returns the
/// latencies (µs) of the `200`s, the number of failures and body bytes.
async fn load(
    client: &reqwest::Client,
    url: &str,
    headers: &hyper::HeaderMap,
    duration: Duration,
    concurrency: usize,
) -> (Vec<u32>, u64, u64) {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, headers) = (client.clone(), url.to_string(), headers.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(16_384);
                let (mut errors, mut bytes) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = match client.get(&url).headers(headers.clone()).send().await {
                        Ok(r) if r.status() == StatusCode::OK => match r.bytes().await {
                            Ok(b) => {
                                bytes += b.len() as u64;
                                true
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    };
                    if ok {
                        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors, bytes)
            })
        })
        .collect();
    let mut all = Vec::new();
    let (mut errors, mut bytes) = (0, 0);
    for t in tasks {
        let (l, e, b) = t.await.expect("load task");
        all.extend(l);
        errors += e;
        bytes += b;
    }
    (all, errors, bytes)
}

fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------
// Memory.

#[derive(Default, Clone, Copy)]
struct ProcStatus {
    rss_kb: u64,
    hwm_kb: u64,
}

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU time of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): state is
    // field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)
}

fn proc_status(pid: u32) -> ProcStatus {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    ProcStatus {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    }
}

/// Samples VmRSS every 50 ms on its own thread.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(proc_status(pid).rss_kb);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
