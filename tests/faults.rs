//! Fault injection, over real TCP against the real binary: Graph resets
//! mid-body, stalls past the deadline, sends truncated gzip, throttles
//! (429 with and without `Retry-After`), fails in bursts (503); the token
//! endpoint goes down; the caller's JWKS goes down; the caller goes away.
//!
//! Every case: a clear error to the caller (status, JSON error shape),
//! nothing unsanitized, and the process healthy afterwards (a following
//! normal request succeeds).

mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::entra::{self, TestEntra};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CONNECTOR: &str = "outlook-mail";

fn users() -> String {
    sample(CONNECTOR, "users.json").target().to_string()
}

async fn get(veil: &Veil, target: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client()
        .get(veil.url(target))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("body"))
}

/// The answer is Veil's error shape with `code`, and nothing sensitive.
fn assert_clear_error(text: &str, code: &str) -> Value {
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_error_shape(&body, code);
    assert!(leaks(text).is_empty(), "{text}");
    body
}

/// A normal request succeeds: the process is healthy.
async fn assert_serves(veil: &Veil, graph: &GraphServer) {
    let _ = graph;
    let (status, _, text) = get(veil, &users()).await;
    assert_eq!(status, 200, "{text}\n{}", veil.stderr());
    assert!(leaks(&text).is_empty());
}

#[tokio::test]
async fn graph_resetting_mid_body_gives_502() {
    let fault = FaultServer::start(Fault::ResetMidBody).await;
    let veil = VeilConfig::new(CONNECTOR, &fault.url()).start().await;
    let (status, _, text) = get(&veil, "/v1.0/users?$top=1").await;
    assert_eq!(status, 502, "{text}");
    assert_clear_error(&text, "upstream_invalid_response");
    assert!(!text.contains("\"id\""), "{text}");
    assert_eq!(fault.requests(), 1);
    // Announced length, then the connection ends early (the Graph test server).
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url()).start().await;
    let s = sample(CONNECTOR, "users.json");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", s.body.clone()).short_by(500),
    );
    let (status, _, text) = get(&veil, s.target()).await;
    assert_eq!(status, 502, "{text}");
    assert_clear_error(&text, "upstream_invalid_response");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", s.body.clone()),
    );
    assert_serves(&veil, &graph).await;
}

#[tokio::test]
async fn graph_stalling_past_the_deadline_gives_504() {
    // Head sent, body stalls: the whole-phase deadline ends it.
    let fault = FaultServer::start(Fault::StallBody).await;
    let veil = VeilConfig::new(CONNECTOR, &fault.url())
        .env("VEIL_UPSTREAM_TIMEOUT_SECS", "2")
        .start()
        .await;
    let started = Instant::now();
    let (status, _, text) = get(&veil, "/v1.0/users?$top=1").await;
    assert_eq!(status, 504, "{text}");
    assert_clear_error(&text, "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Veil let go of the stalled connection.
    let until = Instant::now() + Duration::from_secs(10);
    while fault.peer_closed() < 1 {
        assert!(
            Instant::now() < until,
            "the stalled upstream connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let graph = GraphServer::start(CONNECTOR).await;
    graph.script(
        "/v1.0/groups",
        Reply::json(200, &json!({"value": []})).delay(Duration::from_secs(6)),
    );
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .env("VEIL_UPSTREAM_TIMEOUT_SECS", "2")
        .start()
        .await;
    let (status, _, text) = get(&veil, "/v1.0/groups?$top=1").await;
    assert_eq!(status, 504, "{text}");
    assert_clear_error(&text, "upstream_timeout");
    assert_serves(&veil, &graph).await;
}

#[tokio::test]
async fn truncated_gzip_gives_502_and_nothing_of_it() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url()).start().await;
    let s = sample(CONNECTOR, "users.json");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&s.body).unwrap();
    let gz = enc.finish().unwrap();
    for cut in [gz.len() - 8, gz.len() / 2] {
        graph.script(
            "/v1.0/users",
            Reply::new(200, "application/json", gz[..cut].to_vec())
                .header("content-encoding", "gzip"),
        );
        let (status, _, text) = get(&veil, s.target()).await;
        assert_eq!(status, 502, "{cut}: {text}");
        assert_clear_error(&text, "upstream_invalid_response");
    }
    // An encoding Veil did not ask for.
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", s.body.clone()).header("content-encoding", "br"),
    );
    let (status, _, text) = get(&veil, s.target()).await;
    assert_eq!(status, 502, "{text}");
    assert_clear_error(&text, "upstream_invalid_response");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", s.body.clone()),
    );
    assert_serves(&veil, &graph).await;
}

#[tokio::test]
async fn throttling_and_503_bursts_are_passed_on_reduced() {
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url()).start().await;
    let throttled = json!({"error": {
        "code": "TooManyRequests",
        "message": "Too many requests from identifier priya.raman@contoso.example under tenant 7c4b1a2e-0d3f-4e5a-9b6c-8d7e6f5a4b3c",
        "innerError": {"request-id": "abc"}
    }});
    graph.script(
        "/v1.0/users",
        Reply::json(429, &throttled).header("retry-after", "7"),
    );
    let (status, headers, text) = get(&veil, "/v1.0/users?$top=1").await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["x-psoxy-error"], "API_ERROR");
    let body = assert_clear_error(&text, "TooManyRequests");
    assert!(
        !text.contains("priya.raman") && !text.contains("innerError"),
        "{body}"
    );
    assert!(!text.contains("7c4b1a2e-0d3f"), "a raw GUID: {body}");
    graph.script("/v1.0/users", Reply::json(429, &throttled));
    let (status, headers, text) = get(&veil, "/v1.0/users?$top=1").await;
    assert_eq!(status, 429, "{text}");
    assert!(
        headers.get("retry-after").is_none(),
        "invented a Retry-After"
    );
    assert_clear_error(&text, "TooManyRequests");
    // A burst of 503s, concurrently.
    graph.script(
        "/v1.0/groups",
        Reply::new(
            503,
            "text/plain",
            "Service Unavailable: backend grace.oneil@contoso.example",
        )
        .header("retry-after", "3"),
    );
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let url = veil.url("/v1.0/groups?$top=1");
            tokio::spawn(async move {
                let r = client().get(url).send().await.unwrap();
                let retry = r.headers().get("retry-after").cloned();
                (r.status().as_u16(), retry, r.text().await.unwrap())
            })
        })
        .collect();
    for c in calls {
        let (status, retry, text) = c.await.unwrap();
        assert_eq!(status, 503, "{text}");
        assert_eq!(retry.unwrap(), "3");
        assert_clear_error(&text, "UnknownError");
        assert!(!text.contains("grace"), "{text}");
    }
    graph.script(
        "/v1.0/users",
        Reply::new(
            200,
            "application/json",
            sample(CONNECTOR, "users.json").body.clone(),
        ),
    );
    assert_serves(&veil, &graph).await;
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_upstream_call() {
    let fault = FaultServer::start(Fault::HoldUntilClosed).await;
    let veil = VeilConfig::new(CONNECTOR, &fault.url()).start().await;
    let mut caller = TcpStream::connect(veil.addr()).await.unwrap();
    caller
        .write_all(&get_request("/v1.0/users?$top=1", &[]))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while fault.requests() < 1 {
        assert!(Instant::now() < until, "the request did not reach upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(caller);
    // Veil drops the upstream call (and its connection) long before the
    // 25 s upstream deadline.
    let until = Instant::now() + Duration::from_secs(10);
    while fault.peer_closed() < 1 {
        assert!(
            Instant::now() < until,
            "Veil kept calling upstream after the caller left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Federated {
    entra: TestEntra,
    token_endpoint: Switch,
    graph: GraphServer,
}

async fn federated() -> Federated {
    let entra = TestEntra::start().await;
    let token_endpoint = Switch::start(
        &entra.authority(),
        Reply::json(
            503,
            &json!({"error": "temporarily_unavailable", "error_description": "AADSTS50196: The server is temporarily unavailable. Trace ID: 0a1b Correlation ID: 2c3d"}),
        ),
    )
    .await;
    let graph = GraphServer::start("entra-id").await;
    graph.authorize_with(entra.graph_authorizer());
    Federated {
        entra,
        token_endpoint,
        graph,
    }
}

impl Federated {
    async fn veil(&self) -> Veil {
        VeilConfig::new("entra-id", &self.graph.url())
            .unset("VEIL_UPSTREAM_TOKEN")
            .env("VEIL_TOKEN_PROVIDER", "gcp")
            .env("VEIL_TENANT_ID", entra::TENANT_ID)
            .env("VEIL_CLIENT_ID", entra::CLIENT_ID)
            .env("VEIL_ENTRA_AUTHORITY", &self.token_endpoint.url())
            .env("GCE_METADATA_HOST", &self.entra.metadata_host())
            .start()
            .await
    }
}

#[tokio::test]
async fn token_endpoint_down_the_cached_token_serves_until_expiry_then_503() {
    let f = federated().await;
    // Tokens valid 6 s: renewal due after 3 s, handed out until 4.5 s.
    f.entra.set_expires_in(6);
    let veil = f.veil().await;
    let target = sample("entra-id", "users.json").target().to_string();
    let (status, _, text) = get(&veil, &target).await;
    assert_eq!(status, 200, "{text}\n{}", veil.stderr());
    let obtained = Instant::now();
    assert_eq!(f.entra.exchanges(), 1);
    f.token_endpoint.set_up(false);
    // Still fresh.
    let (status, _, text) = get(&veil, &target).await;
    assert_eq!(status, 200, "{text}");
    // Due for renewal: the renewal fails, the cached token still serves.
    tokio::time::sleep(Duration::from_millis(3_300).saturating_sub(obtained.elapsed())).await;
    let (status, _, text) = get(&veil, &target).await;
    assert_eq!(status, 200, "{text}");
    assert!(f.token_endpoint.refused() >= 1, "no renewal was tried");
    // Past its use-by time: 503 with Retry-After, no Graph call.
    tokio::time::sleep(Duration::from_millis(6_500).saturating_sub(obtained.elapsed())).await;
    let graph_before = f.graph.count();
    let (status, headers, text) = get(&veil, &target).await;
    assert_eq!(status, 503, "{text}");
    assert!(headers.get("retry-after").is_some());
    let body = assert_clear_error(&text, "upstream_token_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains(entra::GCP_SUBJECT), "{message}");
    assert!(!message.contains("eyJ"), "{message}");
    assert_eq!(
        f.graph.count(),
        graph_before,
        "Graph called without a token"
    );
    // The endpoint comes back: after the failure memory (5 s), served again.
    f.token_endpoint.set_up(true);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, text) = get(&veil, &target).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(Instant::now() < until, "Veil did not recover");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn jwks_down_gives_503_not_401() {
    let entra = TestEntra::start().await;
    let jwks = Switch::start(&entra.issuer(), Reply::new(500, "text/plain", "down")).await;
    jwks.set_up(false);
    let graph = GraphServer::start(CONNECTOR).await;
    let veil = VeilConfig::new(CONNECTOR, &graph.url())
        .authenticated()
        .env("VEIL_CALLER_ISSUER", &entra.issuer())
        .env("VEIL_CALLER_AUDIENCES", "veil-test")
        .env("VEIL_CALLER_SUBJECTS", "vendor-1")
        .env("VEIL_CALLER_JWKS_URL", &format!("{}/jwks", jwks.url()))
        .start()
        .await;
    let token = entra.host_token("vendor-1", "veil-test", json!({}));
    let call = || {
        client()
            .get(veil.url(&users()))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(30))
            .send()
    };
    let resp = call().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(resp.headers()["x-psoxy-error"], "UNAUTHORIZED");
    let text = resp.text().await.unwrap();
    assert_clear_error(&text, "caller_auth_unavailable");
    assert!(!text.contains("eyJ"), "{text}");
    assert_eq!(graph.count(), 0);
    // A missing token is still the caller's fault: 401.
    let resp = client().get(veil.url(&users())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // The keys come back: served again (after the cold-retry pause).
    jwks.set_up(true);
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = call().await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 503);
        assert!(Instant::now() < until, "Veil did not recover");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
