//! Soak: `veil serve` under steady load for a minute, to show that it
//! neither leaks memory or descriptors nor starts failing.
//!
//! The `veil` binary of this build runs as a child process (shipped
//! `outlook-mail` rules) in front of the loopback test Graph server of
//! `tests/support`, which serves realistic sent-items pages of mixed sizes
//! (one mailbox per size, from one message, ~4 KB, up to ~7 MB). 64
//! concurrent clients (HTTP/1.1 keep-alive; half of them ask for gzip)
//! request those pages through Veil, with `p~` user ids, for 60 s.
//! Reported: requests, errors by status and code, throughput, p50/p99
//! latency, Veil's resident memory at the start, its peak and at the end,
//! and its open descriptors before and after. Nothing is asserted beyond
//! the run completing; figures are for the reader.
//!
//! Everything listens on 127.0.0.1; the load stops at its deadline and the
//! child is killed at the end.
//!
//! Run: `cargo bench --bench soak` (`VEIL_SOAK_SECS=20` for a shorter run,
//! `VEIL_SOAK_CONCURRENCY` to change the 64, `VEIL_SOAK_LOG` for Veil's
//! log filter, default `warn`).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const CONNECTOR: &str = "outlook-mail";
/// Messages per page, one mailbox each: ~4 KB up to ~7 MB.
const PAGE_MESSAGES: [usize; 8] = [1, 10, 50, 120, 300, 700, 1_400, 2_250];
const DEFAULT_SECS: u64 = 60;
const DEFAULT_CONCURRENCY: usize = 64;
/// The environment variables of the bench.
const ENV_SECS: &str = "VEIL_SOAK_SECS";
const ENV_CONCURRENCY: &str = "VEIL_SOAK_CONCURRENCY";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
    rt.shutdown_timeout(Duration::from_secs(1));
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A sent-items page of `n` messages, built from the sample page.
fn page(n: usize) -> Vec<u8> {
    let template = sample(CONNECTOR, "sent-messages.json").json();
    let messages = template["value"].as_array().expect("value").clone();
    let mut value = Vec::with_capacity(n);
    for i in 0..n {
        let mut m = messages[i % messages.len()].clone();
        m["id"] = json!(format!("AAMkAD-soak-message-{i:06}"));
        if let Some(Value::String(s)) = m.get_mut("subject") {
            s.push_str(&format!(" #{i}"));
        }
        value.push(m);
    }
    let mut doc = template.clone();
    doc["value"] = Value::Array(value);
    serde_json::to_vec(&doc).expect("page")
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    bytes: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latencies_us: Mutex<Vec<u32>>,
}

impl Tally {
    fn error(&self, what: String) {
        *self.errors.lock().unwrap().entry(what).or_default() += 1;
    }
}

async fn run() {
    let secs = env_number(ENV_SECS, DEFAULT_SECS);
    let concurrency = env_number(ENV_CONCURRENCY, DEFAULT_CONCURRENCY as u64) as usize;
    ensure_open_files(4_096);
    let graph = GraphServer::start(CONNECTOR).await;
    let owners: Vec<String> = sample(CONNECTOR, "users.json").json()["value"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect();
    assert!(owners.len() >= PAGE_MESSAGES.len(), "not enough users");
    let mut sizes = Vec::new();
    for (owner, n) in owners.iter().zip(PAGE_MESSAGES) {
        let body = page(n);
        sizes.push(body.len());
        graph.script(
            &format!("/v1.0/users/{owner}/mailFolders/SentItems/messages"),
            Reply::new(200, "application/json", body)
                .header("request-id", "7f0c6a4e-1d2b-4c3a-9e8f-000000000042"),
        );
    }
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env(
            "RUST_LOG",
            &std::env::var("VEIL_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .start()
        .await;
    let pid = veil.pid();
    let tokens = user_tokens(&veil, CONNECTOR).await;
    let targets: Arc<Vec<String>> = Arc::new(
        owners
            .iter()
            .take(PAGE_MESSAGES.len())
            .map(|o| {
                veil.url(&format!(
                    "/v1.0/users/{}/mailFolders/SentItems/messages?$top=999",
                    tokens[o]
                ))
            })
            .collect(),
    );
    // Every page once, to see that it passes, before measuring.
    let probe = client();
    for t in targets.iter() {
        let resp = probe.get(t).send().await.expect("probe");
        assert_eq!(
            resp.status(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }
    drop(probe);
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("Veil soak");
    println!(
        "  pages             {} (bytes: {})",
        sizes.len(),
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  concurrency       {concurrency}, {secs} s ({ENV_SECS} to change)");
    let (fds_before, rss_start) = process_usage(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_start));
    // RSS and descriptors at each tenth of the run: a leak climbs, a
    // warmed-up allocator plateaus.
    let series = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (stop, peak, series) = (stop.clone(), peak.clone(), series.clone());
        let step = Duration::from_secs(secs).max(Duration::from_secs(1)) / 10;
        tokio::spawn(async move {
            let t0 = Instant::now();
            let mut next = step;
            while !stop.load(Ordering::Relaxed) {
                let (fds, rss) = process_usage(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                if t0.elapsed() >= next {
                    series
                        .lock()
                        .unwrap()
                        .push((t0.elapsed().as_secs(), rss, fds));
                    next += step;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (targets, tally) = (targets.clone(), tally.clone());
            tokio::spawn(async move {
                let http = client();
                let gzip = w % 2 == 0;
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
                while Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let url = &targets[(x % targets.len() as u64) as usize];
                    let mut req = http.get(url).timeout(Duration::from_secs(60));
                    if gzip {
                        req = req.header("accept-encoding", "gzip");
                    }
                    let t0 = Instant::now();
                    match req.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            match resp.bytes().await {
                                Ok(body) if status == 200 => {
                                    tally.ok.fetch_add(1, Ordering::Relaxed);
                                    tally.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                                    let us = t0.elapsed().as_micros().min(u32::MAX as u128);
                                    tally.latencies_us.lock().unwrap().push(us as u32);
                                }
                                Ok(body) => {
                                    let code = serde_json::from_slice::<Value>(&body)
                                        .ok()
                                        .and_then(|v| v["error"]["code"].as_str().map(String::from))
                                        .unwrap_or_default();
                                    tally.error(format!("{status} {code}"));
                                }
                                Err(_) => tally.error("body broke off".into()),
                            }
                        }
                        Err(e) => tally.error(if e.is_timeout() {
                            "client timeout".into()
                        } else {
                            let mut why = e.to_string();
                            let mut source = std::error::Error::source(&e);
                            while let Some(s) = source {
                                why = format!("{why}: {s}");
                                source = s.source();
                            }
                            format!("connection error ({why})")
                        }),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let peak_rss = peak.load(Ordering::Relaxed);
    // Let the clients' connections close and Veil settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fds_after, rss_end) = process_usage(pid);
    let upstream_idle = sockets_to(pid, graph.addr.port());

    let ok = tally.ok.load(Ordering::Relaxed);
    let errors = tally.errors.lock().unwrap().clone();
    let failed: u64 = errors.values().sum();
    let mut lat = tally.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    println!(
        "  requests          {} ok, {failed} failed in {:.1} s ({:.1}/s, {:.1} MB/s out)",
        ok,
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        tally.bytes.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64() / 1e6
    );
    for (what, n) in &errors {
        println!("    error {what:<30} {n}");
    }
    println!(
        "  latency           p50 {:.1} ms, p99 {:.1} ms",
        pct(0.5),
        pct(0.99)
    );
    println!(
        "  Veil RSS          start {:.1} MB, peak {:.1} MB, end {:.1} MB",
        rss_start as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    println!(
        "  Veil descriptors  before {fds_before}, after {fds_after} ({upstream_idle} of them idle keep-alive connections to Graph, closed by the upstream pool's 90 s idle timeout)"
    );
    let series = series.lock().unwrap().clone();
    println!(
        "  during the run    {}",
        series
            .iter()
            .map(|(t, rss, fds)| format!("{t}s {:.0} MB/{fds} fds", *rss as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let log = veil.stderr();
    let warnings: Vec<&str> = log.lines().filter(|l| !l.contains("\"INFO\"")).collect();
    println!(
        "  Veil log          {} lines other than INFO",
        warnings.len()
    );
    for w in warnings.iter().take(8) {
        println!("    {w}");
    }
    drop(veil);
}

/// How many of `pid`'s descriptors are TCP connections to local `port`
/// (the upstream pool's idle connections to the Graph mock), read from
/// `/proc`: a socket descriptor's inode matched against `/proc/PID/net/tcp*`.
fn sockets_to(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    let port_hex = format!(":{port:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let cols: Vec<&str> = line.split_whitespace().collect();
                    // local, remote, ..., inode (10th column)
                    (cols.len() > 9 && cols[2].ends_with(&port_hex) && inodes.contains(cols[9]))
                        .then_some(())
                })
                .collect::<Vec<_>>()
        })
        .count()
}
