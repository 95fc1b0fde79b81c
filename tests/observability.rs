//! What an operator sees, over real TCP: the access-log line's fields, the
//! Prometheus metrics of `veil serve --metrics-listen`, and the demo's
//! health check.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// The value of one sample line (`name{labels} value`), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(port: u16) -> String {
    let resp = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    resp.text().await.unwrap()
}

/// The access lines after the first `before`, once `n` of them are there.
async fn access_lines(veil: &Veil, before: usize, n: usize) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let log = veil.access_log();
        if log.len() >= before + n {
            return log[before..].to_vec();
        }
        assert!(Instant::now() < until, "{}", veil.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_requests_refusals_latency_and_transforms() {
    let graph = GraphServer::start("entra-id").await;
    let metrics_port = free_port();
    let veil = VeilConfig::new("entra-id", &graph.url())
        .env("VEIL_METRICS_LISTEN", &format!("127.0.0.1:{metrics_port}"))
        .start()
        .await;
    let before = scrape(metrics_port).await;
    let calls = [
        ("/v1.0/users?$top=2", 200),
        ("/v1.0/users?$top=2", 200),
        ("/v1.0/users/x/mailFolders/Inbox/messages", 403),
        ("/v1.0/users?$select=passwordProfile", 403),
        ("/metrics", 403),
    ];
    for (target, status) in calls {
        let resp = client().get(veil.url(target)).send().await.unwrap();
        assert_eq!(
            resp.status(),
            status,
            "{target}: {}",
            resp.text().await.unwrap()
        );
    }
    // Over the request-body limit: refused by the server, counted too.
    let big = "x".repeat(70 * 1024);
    let req = format!(
        "GET /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    assert_eq!(send_raw(&veil.addr(), req.as_bytes()).await.status, 413);

    let text = scrape(metrics_port).await;
    let delta = |series: &str| sample(&text, series) - sample(&before, series);
    assert_eq!(
        delta(r#"veil_requests_total{endpoint="/v1.0/users",status="200"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_requests_total{endpoint="-",status="403"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_requests_total{endpoint="/v1.0/users",status="403"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_requests_total{endpoint="-",status="413"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_refusals_total{reason="no_endpoint"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_refusals_total{reason="select_property"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_refusals_total{reason="request_size"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"veil_upstream_latency_seconds_count{endpoint="/v1.0/users"}"#),
        2.0,
        "{text}"
    );
    assert!(
        delta(r#"veil_upstream_latency_seconds_sum{endpoint="/v1.0/users"}"#) > 0.0,
        "{text}"
    );
    // Two pages of two users: ids pseudonymized, fields outside the
    // schema dropped.
    assert!(
        delta(r#"veil_values_transformed_total{transform="pseudonymize"}"#) >= 4.0,
        "{text}"
    );
    assert!(
        delta(r#"veil_values_transformed_total{transform="responseSchema"}"#) > 0.0,
        "{text}"
    );
    // A fixed token: never refreshed, and said so.
    assert!(
        text.lines()
            .any(|l| l == r#"veil_graph_token_refreshes_total{outcome="ok"} 0"#),
        "{text}"
    );
    // Health checks are their own endpoint.
    assert!(delta(r#"veil_requests_total{endpoint="health",status="200"}"#) == 0.0);
    assert!(
        sample(
            &text,
            r#"veil_requests_total{endpoint="health",status="200"}"#
        ) >= 1.0
    );
    // Nothing but /metrics there.
    let other = client()
        .get(format!("http://127.0.0.1:{metrics_port}/v1.0/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    // No id, path or query value in the metrics.
    for word in ["passwordProfile", "Inbox", "$top"] {
        assert!(!text.contains(word), "{word} in:\n{text}");
    }
}

#[tokio::test]
async fn the_access_line_says_why_a_request_failed() {
    let (graph, veil) = start_pair("entra-id").await;
    let before = veil.access_log().len();
    for (target, status) in [
        ("/v1.0/users?$top=2", 200),
        ("/v1.0/users/x/mailFolders/Inbox/messages", 403),
        ("/v1.0/users?$top=2&$top=3", 403),
    ] {
        let resp = client()
            .get(veil.url(target))
            .header("x-request-id", "ticket-17")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{target}");
    }
    let lines = access_lines(&veil, before, 3).await;
    let ok = &lines[0];
    assert_eq!(ok["request_id"], "ticket-17", "{ok}");
    assert_eq!(ok["refusal"], "-", "{ok}");
    assert_eq!(ok["upstream_error"], "-", "{ok}");
    assert!(
        ok["upstream_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{ok}"
    );
    let changes = ok["transform_changes"].as_array().expect("a JSON array");
    assert!(
        !changes.is_empty() && changes.iter().all(Value::is_u64),
        "{ok}"
    );
    assert!(changes.iter().any(|n| n.as_u64() > Some(0)), "{ok}");
    // --allow-unauthenticated: nobody is named.
    assert_eq!(ok["caller_subject"], "-", "{ok}");
    assert_eq!(lines[1]["refusal"], "no_endpoint", "{}", lines[1]);
    assert_eq!(lines[1]["error_code"], "blocked_by_rules");
    assert_eq!(lines[1]["transform_changes"], serde_json::json!([]));
    assert_eq!(lines[2]["refusal"], "query_param", "{}", lines[2]);
    assert!(
        lines[2]["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("more than once")),
        "{}",
        lines[2]
    );
    drop(graph);

    // Graph unreachable: the cause, and the error behind it, in the log only.
    let closed = free_port();
    let veil = VeilConfig::new("entra-id", &format!("http://127.0.0.1:{closed}"))
        .start()
        .await;
    let before = veil.access_log().len();
    let resp = client()
        .get(veil.url("/v1.0/users?$top=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("refused") && !body.contains("127.0.0.1"),
        "{body}"
    );
    let line = &access_lines(&veil, before, 1).await[0];
    assert_eq!(line["error_code"], "upstream_unreachable", "{line}");
    assert_eq!(line["upstream_error"], "connect", "{line}");
    assert_eq!(line["error_phase"], "upstream", "{line}");
    assert!(
        line["error_detail"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("refused")),
        "{line}"
    );
    assert_eq!(line["refusal"], "-", "{line}");
}

#[tokio::test]
async fn the_demo_health_check_tells_the_truth() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args(["demo", "--port", "0"])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("veil demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("/healthz") && tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo lists its health checks");
    let url = line
        .split('\'')
        .find(|s| s.starts_with("http://"))
        .expect("a URL")
        .to_string();
    let health: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = health.to_string();
    let warnings: Vec<&str> = health["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("demo-graph-token")),
        "{text}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("caller authentication is OFF") && w.contains("veil demo")),
        "{text}"
    );
    // The demo takes neither the variable nor the flag.
    assert!(!text.contains("VEIL_UPSTREAM_TOKEN"), "{text}");
    assert!(!text.contains("--allow-unauthenticated"), "{text}");
    assert_eq!(health["graphToken"]["developmentOnly"], true, "{text}");
}
