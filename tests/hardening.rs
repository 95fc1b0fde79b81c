//! Hardening of `veil serve` against hostile and excess load, over real TCP
//! against the real binary (loopback only, bounded loops):
//!
//! - slow-loris clients are closed by the header-read timeout, silent ones
//!   by the idle timeout, and idle keep-alive connections live until then;
//! - a client that announces a body and never sends it gets 408;
//! - 1,100 idle connections do not keep a legitimate request out;
//! - with every connection or request slot busy, newcomers get a fast 503
//!   with `Retry-After`;
//! - a gzip bomb and a nesting bomb from Graph give 502 and nothing of them;
//! - a Graph that refuses every token causes one extra token exchange, not
//!   one per request;
//! - the health check says only `{"status"}` to anonymous callers, details
//!   to authenticated ones, and obeys the IP allowlist;
//! - plain-http upstreams other than loopback are refused at start-up.

mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::entra::{self, TestEntra};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTOR: &str = "outlook-mail";

fn users() -> String {
    sample(CONNECTOR, "users.json").target().to_string()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what arrived and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (buf, closed)
}

/// A normal request through Veil succeeds: the process is healthy.
async fn assert_serves(veil: &Veil) {
    let resp = client()
        .get(veil.url(&users()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("a normal request");
    assert_eq!(resp.status(), 200, "{}", veil.stderr());
}

#[tokio::test]
async fn slow_loris_and_silent_clients_are_closed() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_HEADER_READ_TIMEOUT_SECS", "2")
        .env("VEIL_IDLE_TIMEOUT_SECS", "3")
        .start()
        .await;
    // A client that trickles its request head, one header line every 300 ms.
    let mut loris = TcpStream::connect(veil.addr()).await.unwrap();
    loris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed_by_server = false;
    for i in 0..100 {
        // 30 s at most; the timeout is 2 s.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if loris
            .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed_by_server = true;
            break;
        }
        let mut probe = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1), loris.read(&mut probe)).await
        {
            // 0: closed; anything else is the server's goodbye (408 or 400).
            let _ = n;
            closed_by_server = true;
            break;
        }
    }
    assert!(
        closed_by_server,
        "a slow-loris client was still connected after {:?}",
        started.elapsed()
    );
    // A client that connects and says nothing: closed by the idle timeout.
    let mut silent = TcpStream::connect(veil.addr()).await.unwrap();
    let (data, closed) = read_until_closed(&mut silent, Duration::from_secs(30)).await;
    assert!(closed, "a silent connection stayed open");
    assert!(
        data.is_empty() || data.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&data)
    );
    assert_serves(&veil).await;
}

/// Sends one keep-alive GET on `stream` and reads its answer.
async fn keep_alive_get(stream: &mut TcpStream, target: &str) -> u16 {
    let req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return text[9..12].parse::<u16>().unwrap();
                }
            }
        }
    });
    read.await.expect("an answer in time")
}

#[tokio::test]
async fn idle_keep_alive_connections_last_until_the_idle_timeout() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_HEADER_READ_TIMEOUT_SECS", "1")
        .env("VEIL_IDLE_TIMEOUT_SECS", "4")
        .start()
        .await;
    let mut stream = TcpStream::connect(veil.addr()).await.unwrap();
    assert_eq!(keep_alive_get(&mut stream, &users()).await, 200);
    // Idle for longer than the header-read timeout: still open.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(keep_alive_get(&mut stream, &users()).await, 200);
    // Idle past the idle timeout: closed.
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(closed, "an idle keep-alive connection stayed open");
    assert_serves(&veil).await;
}

#[tokio::test]
async fn an_unsent_body_gets_408_and_the_connection_is_closed() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_BODY_READ_TIMEOUT_SECS", "2")
        .start()
        .await;
    let mut stream = TcpStream::connect(veil.addr()).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{{\"partial\":",
                users()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (data, closed) = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    assert!(closed, "the connection stayed open");
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert_error_shape(&serde_json::from_str(body).unwrap(), "request_timeout");
    assert_eq!(graph.count(), 0, "nothing went upstream");

    // A body over the limit is 413, not 400.
    let big = "x".repeat(70 * 1024);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
        users(),
        big.len()
    );
    let resp = send_raw(&veil.addr(), req.as_bytes()).await;
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_error_shape(&resp.json().unwrap(), "request_too_large");
    // Chunked, without a length: counted while it arrives.
    let mut chunked = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        users()
    );
    for _ in 0..20 {
        chunked.push_str(&format!("1000\r\n{}\r\n", "y".repeat(0x1000)));
    }
    chunked.push_str("0\r\n\r\n");
    let resp = send_raw(&veil.addr(), chunked.as_bytes()).await;
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(graph.count(), 0);
    assert_serves(&veil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_do_not_keep_a_request_out() {
    // This process holds 1,100 client sockets itself: make sure its own
    // open-file limit allows them (Veil raises its own at start-up).
    let limit = ensure_open_files(2_400);
    assert!(
        limit >= 1_300,
        "the open-file limit ({limit}) is too low for this test"
    );
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url()).start().await;
    let mut idle = Vec::with_capacity(1_100);
    for _ in 0..1_100 {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(veil.addr())).await {
            Ok(Ok(s)) => idle.push(s),
            Ok(Err(e)) => panic!("connect failed after {} connections: {e}", idle.len()),
            Err(_) => panic!("connect hung after {} connections", idle.len()),
        }
    }
    // Let Veil accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = tokio::time::timeout(
        Duration::from_secs(2),
        client().get(veil.url(&users())).send(),
    )
    .await
    .expect("a legitimate request answered within 2 s despite 1,100 idle connections")
    .expect("request");
    assert_eq!(resp.status(), 200);
    let (fds, _) = process_usage(veil.pid());
    assert!(
        fds <= 1_024 + 64,
        "Veil holds {fds} descriptors with a cap of 1,024 connections"
    );
    drop(idle);
    let log = veil.stderr();
    assert!(!log.contains("Too many open files"), "{log}");
    assert_serves(&veil).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_connection_and_request_caps_answer_503_at_once() {
    let graph = GraphServer::start(CONNECTOR).await;
    graph.script(
        "/v1.0/groups",
        Reply::json(200, &json!({"value": []})).delay(Duration::from_secs(3)),
    );
    let slow = |veil: &Veil| {
        let addr = veil.addr();
        tokio::spawn(async move { send_raw(&addr, &get_request("/v1.0/groups?$top=1", &[])).await })
    };
    // The request cap: two slow requests fill it; a third gets 503 at once.
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_MAX_IN_FLIGHT", "2")
        .start()
        .await;
    let busy = vec![slow(&veil), slow(&veil)];
    graph.wait_for(2, Duration::from_secs(10)).await;
    let resp = send_raw(&veil.addr(), &get_request(&users(), &[])).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_error_shape(&resp.json().unwrap(), "overloaded");
    for b in busy {
        assert_eq!(b.await.unwrap().status, 200);
    }
    assert_serves(&veil).await;

    // The connection cap: two connections busy (one waiting on Graph, one
    // on its own body); a third connection gets 503 and is closed.
    let before = graph.count();
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_MAX_CONNECTIONS", "2")
        .start()
        .await;
    let busy = slow(&veil);
    graph.wait_for(before + 1, Duration::from_secs(10)).await;
    let mut waiting = TcpStream::connect(veil.addr()).await.unwrap();
    waiting
        .write_all(b"GET /v1.0/groups HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = send_raw(&veil.addr(), &get_request(&users(), &[])).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert!(resp.header("retry-after").is_some());
    assert_error_shape(&resp.json().unwrap(), "overloaded");
    drop(waiting);
    assert_eq!(busy.await.unwrap().status, 200);
    assert_serves(&veil).await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn gzip_and_nesting_bombs_give_502_and_nothing_of_them() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url()).start().await;
    // 60 MiB of JSON in about 60 KiB of gzip.
    let mut doc = Vec::with_capacity(60 * 1024 * 1024 + 32);
    doc.extend_from_slice(b"{\"value\":[{\"displayName\":\"");
    doc.resize(60 * 1024 * 1024, b'A');
    doc.extend_from_slice(b"\"}]}");
    let bomb = gzip(&doc);
    drop(doc);
    assert!(bomb.len() < 300 * 1024, "{}", bomb.len());
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", bomb).header("content-encoding", "gzip"),
    );
    let resp = client()
        .get(veil.url("/v1.0/users?$top=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("AAAA"), "part of the bomb was sent");
    assert!(text.len() < 1024, "{} bytes", text.len());
    assert_error_shape(
        &serde_json::from_str(&text).unwrap(),
        "upstream_response_too_large",
    );
    // Deep nesting, small once inflated.
    let deep = format!("{{\"value\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    graph.script(
        "/v1.0/groups",
        Reply::new(200, "application/json", gzip(deep.as_bytes()))
            .header("content-encoding", "gzip"),
    );
    let resp = client()
        .get(veil.url("/v1.0/groups?$top=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_error_shape(&body, "upstream_response_too_large");
    assert!(!body.to_string().contains("[["), "{body}");
    // A gzip answer within the limits is inflated and sanitized as usual.
    let s = sample(CONNECTOR, "users.json");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", gzip(&s.body)).header("content-encoding", "gzip"),
    );
    let resp = client().get(veil.url(s.target())).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", veil.stderr());
    let text = resp.text().await.unwrap();
    assert!(leaks(&text).is_empty(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_storm_costs_one_extra_token_exchange() {
    let entra = TestEntra::start().await;
    let graph = GraphServer::start("entra-id").await;
    // Graph refuses every token.
    graph.authorize_with(std::sync::Arc::new(|_| {
        Some(Reply::json(
            401,
            &json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid."}}),
        ))
    }));
    let veil = VeilConfig::new("entra-id", &graph.url())
        .unset("VEIL_UPSTREAM_TOKEN")
        .env("VEIL_TOKEN_PROVIDER", "gcp")
        .env("VEIL_TENANT_ID", entra::TENANT_ID)
        .env("VEIL_CLIENT_ID", entra::CLIENT_ID)
        .env("VEIL_ENTRA_AUTHORITY", &entra.authority())
        .env("GCE_METADATA_HOST", &entra.metadata_host())
        .start()
        .await;
    let target = sample("entra-id", "users.json").target().to_string();
    for i in 0..20 {
        let resp = client().get(veil.url(&target)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "request {i}");
        let body: Value = resp.json().await.unwrap();
        assert_error_shape(&body, "InvalidAuthenticationToken");
    }
    // The first token, and one after the first 401: not one per request.
    assert_eq!(entra.exchanges(), 2, "{}", veil.stderr());
    // Graph got the first request twice (one retry), then each once.
    assert_eq!(graph.count(), 21);
    // Concurrent requests change nothing.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let url = veil.url(&target);
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 401);
    }
    assert_eq!(entra.exchanges(), 2);
}

/// Veil with OIDC caller authentication against the test issuer.
async fn authenticated_veil(
    entra: &TestEntra,
    graph: &GraphServer,
    extra: &[(&str, &str)],
) -> Veil {
    let mut config = VeilConfig::new(CONNECTOR, &graph.url())
        .authenticated()
        .env("VEIL_CALLER_ISSUER", &entra.issuer())
        .env("VEIL_CALLER_AUDIENCES", "veil-test")
        .env("VEIL_CALLER_SUBJECTS", "vendor-1");
    for (k, v) in extra {
        config = config.env(k, v);
    }
    config.start().await
}

#[tokio::test]
async fn the_health_check_shows_details_only_to_authenticated_callers() {
    let entra = TestEntra::start().await;
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = authenticated_veil(&entra, &graph, &[]).await;
    let anonymous = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), 200);
        for h in ["x-veil-version", "x-veil-rules-sha256"] {
            assert!(resp.headers().get(h).is_none(), "{h} shown anonymously");
        }
        let text = resp.text().await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"status": "ok"}),
            "{text}"
        );
    };
    // No token, a bad token, a token of a caller not allowed, the Psoxy header.
    anonymous(client().get(veil.url("/healthz")).send().await.unwrap()).await;
    anonymous(
        client()
            .get(veil.url("/healthz"))
            .bearer_auth("not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let stranger = entra.host_token("someone-else", "veil-test", json!({}));
    anonymous(
        client()
            .get(veil.url("/healthz"))
            .bearer_auth(&stranger)
            .send()
            .await
            .unwrap(),
    )
    .await;
    anonymous(
        client()
            .get(veil.url("/v1.0/users"))
            .header("X-Psoxy-Health-Check", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // An error before authentication shows no version either.
    let resp = client().get(veil.url(&users())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("x-veil-version").is_none());
    // The allowed caller gets the details.
    let token = entra.host_token("vendor-1", "veil-test", json!({}));
    let resp = client()
        .get(veil.url("/healthz"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-veil-rules-sha256").is_some());
    let h: Value = resp.json().await.unwrap();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["connector"], CONNECTOR, "{h}");
    assert!(h["pseudonyms"]["saltFingerprint"].is_string(), "{h}");
    assert!(h["callerAuth"].as_str().unwrap().starts_with("oidc"), "{h}");
    let text = h.to_string();
    assert!(!text.contains(SALT) && !text.contains(KEY), "{text}");
    assert_eq!(graph.count(), 0, "a health check never calls Graph");
}

#[tokio::test]
async fn the_ip_allowlist_applies_to_the_health_check() {
    let entra = TestEntra::start().await;
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = authenticated_veil(
        &entra,
        &graph,
        &[("VEIL_CALLER_IP_ALLOWLIST", "192.0.2.0/24")],
    )
    .await;
    let token = entra.host_token("vendor-1", "veil-test", json!({}));
    for bearer in [None, Some(token.as_str())] {
        let mut req = client().get(veil.url("/healthz"));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_error_shape(&body, "forbidden");
        assert!(body.get("status").is_none());
    }
}

#[tokio::test]
async fn plain_http_upstream_to_a_remote_host_is_refused_at_start_up() {
    for upstream in [
        "http://graph.microsoft.com",
        "http://192.0.2.10:8080",
        "http://localhost.example.com",
    ] {
        let log = serve_refused(&VeilConfig::new(CONNECTOR, upstream));
        assert!(log.contains("in clear"), "{upstream}: {log}");
        assert!(log.contains("https://"), "{upstream}: {log}");
    }
    // A memory budget smaller than one response may be is refused too.
    let log = serve_refused(
        &VeilConfig::new(CONNECTOR, "http://127.0.0.1:9").env("VEIL_BODY_BUDGET_MB", "8"),
    );
    assert!(log.contains("VEIL_BODY_BUDGET_MB"), "{log}");
}

/// A psoxy-scheme salt below the strength policy (that of a Psoxy
/// deployment being migrated).
const LEGACY_SALT: &str = "Contoso2019!";

fn legacy_salt_config(graph: &GraphServer, scheme: &str) -> VeilConfig {
    VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_SCHEME", scheme)
        .env("VEIL_SALT", LEGACY_SALT)
}

#[tokio::test]
async fn allow_legacy_short_salt_flag_admits_a_named_psoxy_salt_on_serve() {
    let graph = GraphServer::start(CONNECTOR).await;
    // Without the flag (or the variable): refused, naming both ways.
    let refused = serve_refused(&legacy_salt_config(&graph, "psoxy"));
    assert!(
        refused.contains("--allow-legacy-short-salt")
            && refused.contains("VEIL_ALLOW_LEGACY_SHORT_SALT=true"),
        "{refused}"
    );
    // The flag is for the psoxy scheme only.
    let dir = tempfile::tempdir().unwrap();
    let run = |scheme: &str, name: &str| {
        let log = dir.path().join(name);
        let port = free_port();
        let child = legacy_salt_config(&graph, scheme)
            .command(port)
            .arg("--allow-legacy-short-salt")
            .stderr(std::process::Stdio::from(
                std::fs::File::create(&log).unwrap(),
            ))
            .spawn()
            .expect("spawn veil");
        (child, port, log)
    };
    let (mut hmac, _, hmac_log) = run("hmac", "hmac.log");
    let status = hmac.wait().unwrap();
    let text = std::fs::read_to_string(&hmac_log).unwrap();
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("only for the psoxy"), "{text}");
    // With the flag and the psoxy scheme: Veil serves, and says it runs on
    // a legacy secret.
    let (mut psoxy, port, psoxy_log) = run("psoxy", "psoxy.log");
    let url = format!("http://127.0.0.1:{port}{}", users());
    let mut answered = None;
    for _ in 0..300 {
        if let Some(s) = psoxy.try_wait().unwrap() {
            panic!(
                "veil exited ({s}): {}",
                std::fs::read_to_string(&psoxy_log).unwrap_or_default()
            );
        }
        if let Ok(resp) = client().get(&url).send().await {
            answered = Some(resp.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = psoxy.kill();
    let _ = psoxy.wait();
    let log = std::fs::read_to_string(&psoxy_log).unwrap();
    assert_eq!(answered, Some(200), "{log}");
    assert!(
        log.contains("a legacy Psoxy secret") && log.contains("--allow-legacy-short-salt"),
        "{log}"
    );
    assert!(!log.contains(LEGACY_SALT), "{log}");
}

#[test]
fn allow_legacy_short_salt_flag_admits_a_named_psoxy_salt_on_sanitize() {
    let sanitize = |flag: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_veil"));
        cmd.args([
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--scheme",
            "psoxy",
            "--url",
            "/v1.0/users/5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61/mailboxSettings",
            "example-api-responses/outlook-mail/original/mailbox-settings.json",
        ]);
        if flag {
            cmd.arg("--allow-legacy-short-salt");
        }
        for name in VEIL_ENV {
            cmd.env_remove(name);
        }
        cmd.env("VEIL_SALT", LEGACY_SALT)
            .env("VEIL_ENCRYPTION_KEY", KEY)
            .output()
            .expect("run veil sanitize")
    };
    let out = sanitize(false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("--allow-legacy-short-salt"), "{err}");
    let out = sanitize(true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("veil: warning: a legacy Psoxy secret"),
        "{err}"
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(body.get("timeZone").is_some(), "{body}");
}
