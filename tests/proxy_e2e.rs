//! End-to-end tests of `veil serve`: the real binary, over real TCP, in
//! front of a recording test Graph server (`tests/support`).

mod support;

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const PRIYA: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";
const CALLER_SECRET: &str = "Bearer caller-own-secret-token-do-not-forward";

fn sent_items_path(user: &str) -> String {
    format!("/v1.0/users/{user}/mailFolders/SentItems/messages")
}

/// Every string in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// Asserts that a 200 answer of Veil is sanitized: no sensitive value, no
/// user object id in clear, `p~` tokens present, only allowlisted headers.
async fn assert_sanitized(resp: reqwest::Response, what: &str) -> Value {
    assert_eq!(resp.status(), 200, "{what}");
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "application/json", "{what}");
    assert!(headers.contains_key("x-veil-rules-sha256"), "{what}");
    assert_eq!(
        headers.get("request-id").map(|v| v.to_str().unwrap()),
        Some("7f0c6a4e-1d2b-4c3a-9e8f-000000000042"),
        "{what}: Graph's request-id passes"
    );
    for dropped in ["set-cookie", "x-ms-ags-diagnostic", "content-encoding"] {
        assert!(!headers.contains_key(dropped), "{what}: {dropped} passed");
    }
    let text = resp.text().await.unwrap();
    let leaks = leaks(&text);
    assert!(leaks.is_empty(), "{what}: leaks {leaks:?}");
    for guid in user_guids() {
        assert!(!text.contains(&guid), "{what}: user id {guid} in clear");
    }
    let body: Value = serde_json::from_str(&text).expect("JSON");
    let mut all = Vec::new();
    strings(&body, &mut all);
    assert!(
        all.iter().any(|s| s.contains("p~")),
        "{what}: no p~ token in the answer"
    );
    body
}

fn assert_upstream_calls_are_clean(graph: &GraphServer, what: &str) {
    let requests = graph.requests();
    assert!(!requests.is_empty(), "{what}: nothing reached Graph");
    for r in &requests {
        assert_eq!(r.method, "GET", "{what}");
        assert_eq!(
            r.header("authorization"),
            Some("Bearer dev-token"),
            "{what}: {r:?}"
        );
        assert_eq!(
            r.headers
                .iter()
                .filter(|(n, _)| n == "authorization")
                .count(),
            1,
            "{what}"
        );
        for (name, value) in &r.headers {
            assert!(
                !value.contains("caller-own-secret"),
                "{what}: the caller's credential reached Graph in {name}"
            );
            assert!(
                !name.starts_with("x-forwarded") && name != "cookie",
                "{what}: {name} forwarded"
            );
        }
        assert!(
            !r.target.contains("p~"),
            "{what}: a p~ token reached Graph: {}",
            r.target
        );
        assert!(r.target.starts_with('/'), "{what}: {}", r.target);
    }
}

async fn get(url: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("authorization", CALLER_SECRET)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn happy_path(connector: &'static str) {
    let (graph, veil) = start_pair(connector).await;
    match connector {
        "entra-id" => {
            for file in ["users.json", "groups.json", "group-members.json"] {
                let s = sample(connector, file);
                let body = assert_sanitized(get(&veil.url(s.target())).await, file).await;
                assert_eq!(
                    body["value"].as_array().map(Vec::len),
                    s.json()["value"].as_array().map(Vec::len),
                    "{file}: every item is kept"
                );
                assert_eq!(graph.last().target, s.target(), "{file}");
            }
            let users = assert_sanitized(
                get(&veil.url(sample(connector, "users.json").target())).await,
                "users",
            )
            .await;
            for u in users["value"].as_array().unwrap() {
                assert!(u["id"].as_str().unwrap().starts_with("p~"), "{u}");
            }
        }
        "outlook-mail" | "outlook-cal" => {
            let tokens = user_tokens(&veil, connector).await;
            let file = if connector == "outlook-mail" {
                "sent-messages.json"
            } else {
                "calendar-events.json"
            };
            let s = sample(connector, file);
            let target = s.target().replace(PRIYA, &tokens[PRIYA]);
            assert_ne!(target, s.target());
            let body = assert_sanitized(get(&veil.url(&target)).await, file).await;
            assert_eq!(
                body["value"].as_array().map(Vec::len),
                s.json()["value"].as_array().map(Vec::len)
            );
            assert_eq!(graph.last().target, s.target(), "{file}: re-identified");
        }
        "msft-teams" => {
            for file in ["teams.json", "channel-messages.json", "call-records.json"] {
                let s = sample(connector, file);
                let resp = get(&veil.url(s.target())).await;
                if file == "teams.json" {
                    // Teams carry no people: no token to look for.
                    assert_eq!(resp.status(), 200);
                    let text = resp.text().await.unwrap();
                    assert!(leaks(&text).is_empty(), "{file}: {:?}", leaks(&text));
                } else {
                    let body = assert_sanitized(resp, file).await;
                    assert!(body["value"].as_array().is_some_and(|v| !v.is_empty()));
                }
                assert_eq!(graph.last().target, s.target(), "{file}");
            }
        }
        other => unreachable!("{other}"),
    }
    assert_upstream_calls_are_clean(&graph, connector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_every_connector() {
    let tasks: Vec<_> = CONNECTORS
        .iter()
        .map(|c| tokio::spawn(happy_path(c)))
        .collect();
    for t in tasks {
        t.await.expect("connector happy path");
    }
}

#[tokio::test]
async fn paging_follows_the_sanitized_next_link() {
    // outlook-mail: the directory's $skiptoken, and the user id in a
    // message page's link.
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let users = sample("outlook-mail", "users.json");
    let page: Value = get(&veil.url(users.target())).await.json().await.unwrap();
    let next = page["@odata.nextLink"].as_str().expect("nextLink");
    let original_next = users.json()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.starts_with(GRAPH), "{next}");
    assert!(
        next.contains("$skiptoken=p~"),
        "skiptoken tokenized: {next}"
    );
    assert_ne!(next, original_next);
    let resp = get(&through_veil(&veil, next)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(
        graph.last().target,
        original_next.strip_prefix(GRAPH).unwrap(),
        "Graph receives its own link back"
    );

    let sent = sample("outlook-mail", "sent-messages.json");
    let target = sent.target().replace(PRIYA, &tokens[PRIYA]);
    let page: Value = get(&veil.url(&target)).await.json().await.unwrap();
    let next = page["@odata.nextLink"].as_str().expect("nextLink");
    assert!(!next.contains(PRIYA), "{next}");
    assert!(
        next.contains(&format!("/users/{}/", tokens[PRIYA])),
        "{next}"
    );
    let resp = get(&through_veil(&veil, next)).await;
    assert_eq!(resp.status(), 200);
    let original_next = sent.json()["@odata.nextLink"].as_str().unwrap().to_string();
    assert_eq!(
        graph.last().target,
        original_next.strip_prefix(GRAPH).unwrap()
    );
    assert_upstream_calls_are_clean(&graph, "paging");

    // entra-id: page 1 → page 2 (a sample of its own) → page 3.
    let (graph, veil) = start_pair("entra-id").await;
    let p1 = sample("entra-id", "users.json");
    let p2 = sample("entra-id", "users-page2.json");
    let page1: Value = get(&veil.url(p1.target())).await.json().await.unwrap();
    let next = page1["@odata.nextLink"].as_str().unwrap();
    let resp = get(&through_veil(&veil, next)).await;
    assert_eq!(graph.last().target, p2.target());
    let page2 = assert_sanitized(resp, "users page 2").await;
    assert_eq!(
        page2["value"].as_array().map(Vec::len),
        p2.json()["value"].as_array().map(Vec::len)
    );
    let next = page2["@odata.nextLink"].as_str().unwrap();
    let resp = get(&through_veil(&veil, next)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        graph.last().target,
        p2.json()["@odata.nextLink"]
            .as_str()
            .unwrap()
            .strip_prefix(GRAPH)
            .unwrap()
    );

    assert_upstream_calls_are_clean(&graph, "entra-id paging");
}

#[tokio::test]
async fn reversible_token_round_trip() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let token = &tokens[PRIYA];
    assert!(token.starts_with("p~") && !token.contains(PRIYA));

    let resp = get(&veil.url(&format!("{}?$top=10", sent_items_path(token)))).await;
    assert_eq!(resp.status(), 200);
    let last = graph.last();
    assert_eq!(last.path(), sent_items_path(PRIYA), "raw GUID upstream");
    assert_eq!(last.target, format!("{}?$top=10", sent_items_path(PRIYA)));

    // The same person, read by id, comes back under the same token.
    let resp = get(&veil.url(&format!("/v1.0/users/{token}"))).await;
    assert_eq!(graph.last().target, format!("/v1.0/users/{PRIYA}"));
    let one = assert_sanitized(resp, "one user").await;
    assert!(one["id"].as_str().unwrap().starts_with("p~"));
    assert_upstream_calls_are_clean(&graph, "round trip");
}

#[tokio::test]
async fn throttling_passes_through_without_retry() {
    let (graph, veil) = start_pair("outlook-mail").await;
    graph.script(
        "/v1.0/users",
        Reply::json(
            429,
            &json!({"error": {"code": "TooManyRequests", "message": "Too many requests. Retry later."}}),
        )
        .header("retry-after", "7")
        .header("x-ms-throttle-limit-percentage", "1.0")
        .header("x-ms-throttle-scope", "Tenant_Application/ReadWrite/app")
        .header("x-ms-throttle-information", "ResourceUnitLimitExceeded"),
    );
    let before = graph.count();
    let resp = get(&veil.url("/v1.0/users?$top=5")).await;
    assert_eq!(resp.status(), 429);
    let h = resp.headers().clone();
    assert_eq!(h["retry-after"], "7");
    assert_eq!(h["x-ms-throttle-limit-percentage"], "1.0");
    assert_eq!(h["x-ms-throttle-scope"], "Tenant_Application/ReadWrite/app");
    assert_eq!(h["x-ms-throttle-information"], "ResourceUnitLimitExceeded");
    assert_eq!(h["x-psoxy-error"], "API_ERROR");
    let body: Value = resp.json().await.unwrap();
    assert_error_shape(&body, "TooManyRequests");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.count() - before, 1, "Veil must not retry a 429");
}

#[tokio::test]
async fn graph_server_errors_are_reduced() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    graph.script(
        &sent_items_path(PRIYA),
        Reply::json(
            500,
            &json!({"error": {
                "code": "ErrorInternalServerError",
                "message": format!("Mailbox of priya.raman@contoso.example ({PRIYA}) is not available"),
                "innerError": {"date": "2026-11-06T10:00:00", "request-id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "client-request-id": "abc"},
                "details": [{"target": "Priya Raman"}]
            }}),
        ),
    );
    graph.script(
        "/v1.0/groups",
        Reply::new(
            503,
            "text/plain",
            "Service Unavailable: backend grace.oneil@contoso.example",
        )
        .header("retry-after", "30"),
    );

    let resp = get(&veil.url(&sent_items_path(&tokens[PRIYA]))).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["x-psoxy-error"], "API_ERROR");
    let text = resp.text().await.unwrap();
    assert!(!text.contains("priya.raman"), "{text}");
    assert!(!text.contains("Priya"), "{text}");
    assert!(!text.contains(PRIYA), "the user's id in {text}");
    assert!(!text.contains(&tokens[PRIYA]), "the user's token in {text}");
    assert!(
        !text.contains("client-request-id") && !text.contains("details"),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error_shape(&body, "ErrorInternalServerError");
    // Graph's text is replaced by Veil's fixed message for the code; only
    // Graph's request id and date remain, to match a support case.
    assert_eq!(body["error"]["message"], "Graph had an internal error.");
    assert_eq!(
        body["error"]["innerError"],
        json!({"request-id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", "date": "2026-11-06T10:00:00"})
    );

    let resp = get(&veil.url("/v1.0/groups?$top=4")).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "30");
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("grace") && !text.contains("Service Unavailable"),
        "{text}"
    );
    assert_error_shape(&serde_json::from_str(&text).unwrap(), "UnknownError");
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let graph = GraphServer::start("outlook-mail").await;
    let veil = VeilConfig::new("outlook-mail", &graph.url())
        .env("VEIL_UPSTREAM_TIMEOUT_SECS", "2")
        .start()
        .await;
    graph.script(
        "/v1.0/users",
        Reply::json(200, &json!({"value": []})).delay(Duration::from_secs(6)),
    );
    let started = Instant::now();
    let resp = get(&veil.url("/v1.0/users")).await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["x-psoxy-error"], "API_ERROR");
    assert_error_shape(&resp.json().await.unwrap(), "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(graph.count(), 1);
}

#[tokio::test]
async fn unreachable_upstream_gives_502() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let veil = VeilConfig::new("outlook-mail", &closed).start().await;
    let resp = get(&veil.url("/v1.0/users")).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-psoxy-error"], "API_ERROR");
    assert_error_shape(&resp.json().await.unwrap(), "upstream_unreachable");
}

#[tokio::test]
async fn unusable_2xx_bodies_give_502_and_nothing_of_them() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let group = "a1d8f4b2-6e37-4c95-9a0e-4b7d1c3f8e62";
    // Truncated JSON.
    graph.script(
        "/v1.0/users",
        Reply::new(
            200,
            "application/json",
            format!(r#"{{"value":[{{"id":"{PRIYA}","displayName":"Priya Raman","mail":"priya.raman@contoso.exa"#),
        ),
    );
    // HTML with a 2xx status (a captive portal, a proxy's page).
    graph.script(
        "/v1.0/groups",
        Reply::new(
            200,
            "text/html",
            "<html><body><h1>Welcome back, Priya Raman</h1>priya.raman@contoso.example</body></html>",
        ),
    );
    // The connection ends before the announced length.
    graph.script(
        &format!("/v1.0/groups/{group}/members"),
        Reply::new(
            200,
            "application/json",
            format!(r#"{{"value":[{{"id":"{PRIYA}","displayName":"Priya Raman"}}]"#),
        )
        .short_by(500),
    );
    for target in [
        "/v1.0/users".to_string(),
        "/v1.0/groups".to_string(),
        format!("/v1.0/groups/{group}/members"),
    ] {
        let resp = get(&veil.url(&target)).await;
        assert_eq!(resp.status(), 502, "{target}");
        assert_eq!(resp.headers()["x-psoxy-error"], "API_ERROR", "{target}");
        let text = resp.text().await.unwrap();
        for piece in ["Priya", "priya", PRIYA, "<html", "Welcome", "displayName"] {
            assert!(!text.contains(piece), "{target}: {piece} in {text}");
        }
        assert_error_shape(
            &serde_json::from_str(&text).unwrap(),
            "upstream_invalid_response",
        );
    }
}

#[tokio::test]
async fn gzip_from_upstream_is_decoded_and_sanitized() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let users = sample("outlook-mail", "users.json");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", users.body.clone()).gzip(),
    );
    let resp = get(&veil.url(users.target())).await;
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("content-encoding"));
    let text = resp.text().await.unwrap();
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 8);
    assert!(body["value"][0]["id"].as_str().unwrap().starts_with("p~"));
}

#[tokio::test]
async fn gzip_to_the_caller_that_accepts_it() {
    let (_graph, veil) = start_pair("outlook-mail").await;
    let users = sample("outlook-mail", "users.json");
    let plain = get(&veil.url(users.target())).await;
    assert!(!plain.headers().contains_key("content-encoding"));
    let plain: Value = plain.json().await.unwrap();

    let resp = client()
        .get(veil.url(users.target()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert_eq!(resp.headers()["vary"], "Accept-Encoding");
    let raw = resp.bytes().await.unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(leaks(&text).is_empty());
    let unzipped: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unzipped, plain, "the same sanitized JSON");

    // q=0 refuses gzip.
    let resp = client()
        .get(veil.url(users.target()))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("content-encoding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_page_arrives_complete() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let filler =
        "Attached are the revised Q3 figures for the Kestrel deployment pipeline. ".repeat(16);
    let messages: Vec<Value> = (0..5000)
        .map(|i| {
            json!({
                "id": format!("AAMkAD-message-{i:06}"),
                "sentDateTime": "2026-11-05T16:48:12Z",
                "subject": format!("Q3 budget review #{i}"),
                "bodyPreview": filler,
                "importance": "normal",
                "from": {"emailAddress": {"name": "Priya Raman", "address": "priya.raman@contoso.example"}},
                "toRecipients": [
                    {"emailAddress": {"name": format!("Person {i}"), "address": format!("person{i}@fabrikam.example")}},
                    {"emailAddress": {"name": "Hannah Becker", "address": "hannah.becker@fabrikam.example"}}
                ]
            })
        })
        .collect();
    let page = serde_json::to_vec(&json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/messages",
        "value": messages
    }))
    .unwrap();
    assert!(page.len() >= 7 * 1024 * 1024, "{} bytes", page.len());
    graph.script(
        &sent_items_path(PRIYA),
        Reply::new(200, "application/json", page),
    );
    let resp = get(&veil.url(&sent_items_path(&tokens[PRIYA]))).await;
    assert_eq!(resp.status(), 200);
    let announced: usize = resp.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(text.len(), announced);
    for secret in [
        "Q3 budget",
        "Priya",
        "priya.raman@",
        "Kestrel",
        "person4999@",
        "Person 4999",
        "hannah.becker@",
    ] {
        assert!(!text.contains(secret), "{secret} left Veil");
    }
    let body: Value = serde_json::from_str(&text).expect("complete JSON");
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 5000);
    assert_eq!(value[4999]["id"], "AAMkAD-message-004999");
    assert!(value[4999]["toRecipients"][0]["emailAddress"]["address"]
        .as_str()
        .unwrap()
        .starts_with("t~"));
}

#[tokio::test]
async fn health_check() {
    let (graph, veil) = start_pair("outlook-mail").await;
    for (target, header) in [
        ("/healthz", None),
        ("/v1.0/users?$top=1", Some("X-Psoxy-Health-Check")),
        ("/anything/at/all", Some("x-psoxy-health-check")),
    ] {
        let mut req = client().get(veil.url(target));
        if let Some(h) = header {
            req = req.header(h, "true");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{target}");
        let sha = resp.headers()["x-veil-rules-sha256"]
            .to_str()
            .unwrap()
            .to_string();
        for (name, value) in resp.headers() {
            let v = value.to_str().unwrap_or("");
            assert!(!v.contains(SALT) && !v.contains(KEY), "{name}");
        }
        let text = resp.text().await.unwrap();
        assert!(!text.contains(SALT), "the salt is in the health check");
        assert!(!text.contains(KEY), "the key is in the health check");
        assert!(
            !text.contains(UPSTREAM_TOKEN),
            "the Graph token is in the health check"
        );
        let h: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(h["status"], "ok", "{h}");
        assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(h["connector"], "outlook-mail");
        // Psoxy's `rules` is the hash itself; Veil's own report nests it.
        let rules_sha = if header.is_some() {
            assert_eq!(h["rules"], h["rulesSha256"], "{h}");
            h["rulesSha256"].as_str().unwrap()
        } else {
            h["rules"]["sha256"].as_str().unwrap()
        };
        assert_eq!(rules_sha.len(), 64, "{rules_sha}");
        assert!(rules_sha.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(rules_sha, sha);
        let fingerprint = h["pseudonyms"]["saltFingerprint"].as_str().unwrap();
        assert!(!fingerprint.is_empty() && fingerprint != SALT);
        assert!(h["warnings"].to_string().contains("unauthenticated"), "{h}");
    }
    assert_eq!(graph.count(), 0, "a health check never calls Graph");
}

#[tokio::test]
async fn serve_refuses_to_start_without_caller_authentication() {
    let config = VeilConfig {
        allow_unauthenticated: false,
        ..VeilConfig::new("outlook-mail", "http://127.0.0.1:9")
    };
    let mut child = config
        .command(free_port())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn veil");
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("veil serve did not refuse to start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{status}");
    assert!(stderr.contains("VEIL_CALLER_ISSUER"), "{stderr}");
    assert!(!stderr.contains(SALT) && !stderr.contains(KEY), "{stderr}");
}

#[tokio::test]
async fn rule_refused_requests_get_403() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let before = graph.count();
    for target in [
        format!("/v1.0/users/{}/mailFolders/Inbox/messages", tokens[PRIYA]),
        "/v1.0/users?$search=%22displayName:Priya%22".to_string(),
        "/v1.0/me/messages".to_string(),
    ] {
        let resp = get(&veil.url(&target)).await;
        assert_eq!(resp.status(), 403, "{target}");
        assert_eq!(resp.headers()["x-psoxy-error"], "BLOCKED_BY_RULES");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("Priya"), "{text}");
        assert_error_shape(&serde_json::from_str(&text).unwrap(), "blocked_by_rules");
    }
    assert_eq!(
        graph.count(),
        before,
        "a refused request never reaches Graph"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (graph, mut veil) = start_pair("outlook-mail").await;
    let users = sample("outlook-mail", "users.json");
    graph.script(
        "/v1.0/users",
        Reply::new(200, "application/json", users.body.clone()).delay(Duration::from_millis(1500)),
    );
    let url = veil.url(users.target());
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    graph.wait_for(1, Duration::from_secs(10)).await;
    veil.terminate();
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 8);
    let status = veil.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn one_structured_log_line_per_request() {
    let (_graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let token = tokens[PRIYA].clone();
    let before = veil.access_log().len();
    let query = "$filter=sentDateTime%20ge%202026-10-17T08:30:00Z&$top=7";
    let requests = [
        (
            format!("{}?{query}", sent_items_path(&token)),
            200,
            "/v1.0/users/{userId}/mailFolders/SentItems/messages",
        ),
        (
            format!("/v1.0/users/{token}/mailFolders/Inbox/messages?$top=3"),
            403,
            "-",
        ),
        ("/v1.0/users?$top=1".to_string(), 200, "/v1.0/users"),
    ];
    for (target, status, _) in &requests {
        let resp = get(&veil.url(target)).await;
        assert_eq!(resp.status(), *status, "{target}");
    }
    let log = veil.access_log();
    assert_eq!(
        log.len() - before,
        requests.len(),
        "one access line per request:\n{}",
        veil.stderr()
    );
    for (line, (target, status, endpoint)) in log[before..].iter().zip(&requests) {
        assert_eq!(line["endpoint"], *endpoint, "{target}: {line}");
        assert_eq!(line["status"], *status, "{line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|l| l >= 0.0),
            "{line}"
        );
        assert_eq!(line["method"], "GET");
        assert_eq!(line["connector"], "outlook-mail");
    }
    assert_eq!(log[before]["upstream_status"], 200);
    assert_eq!(log[before + 1]["error_code"], "blocked_by_rules");
    // Why it was refused, and by which check; what the transforms did, as
    // a JSON array (one count per transform, in rule order).
    assert_eq!(log[before + 1]["refusal"], "no_endpoint");
    assert_eq!(log[before]["refusal"], "-");
    assert_eq!(log[before]["upstream_error"], "-");
    for line in &log[before..] {
        assert!(line["transform_changes"].is_array(), "{line}");
        assert!(
            line["request_id"].as_str().is_some_and(|id| id != "-"),
            "{line}"
        );
        // Unauthenticated: no caller is named.
        assert_eq!(line["caller_subject"], "-", "{line}");
        assert_eq!(line["caller_arn"], "-", "{line}");
    }
    assert!(
        log[before]["transform_changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|n| n.as_u64() > Some(0))),
        "{}",
        log[before]
    );
    let stderr = veil.stderr();
    for secret in [
        PRIYA,
        token.as_str(),
        &token[2..],
        "2026-10-17",
        "sentDateTime",
        "$top=7",
        SALT,
        KEY,
        CALLER_SECRET,
        "caller-own-secret",
    ] {
        assert!(
            !stderr.contains(secret),
            "{secret} is in the log:\n{stderr}"
        );
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
}

/// Graph's paging links are opaque: Veil must hand back exactly the link
/// Graph gave, byte for byte: a `$skiptoken` holding `/` and `+` (base64)
/// must not come back re-encoded as `%2F` and `%2B` (a server that decodes
/// queries as forms, `+` being a space, would read another skiptoken).
#[tokio::test]
async fn skiptoken_with_plus_and_slash_comes_back_verbatim() {
    let (graph, veil) = start_pair("entra-id").await;
    let members = sample("entra-id", "group-members.json");
    let original_next = members.json()["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(original_next.contains("c55/AZ8") && original_next.contains("xd+eI"));
    let page: Value = get(&veil.url(members.target())).await.json().await.unwrap();
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("$skiptoken=p~"), "{next}");
    let resp = get(&through_veil(&veil, next)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        graph.last().target,
        original_next.strip_prefix(GRAPH).unwrap()
    );
}

#[tokio::test]
async fn graph_rejecting_the_token_is_retried_once_then_reported() {
    // Graph (strict about its token) refuses Veil's: Veil retries once
    // with a fresh token, then passes Graph's 401 on, reduced.
    let graph = GraphServer::start("outlook-mail").await;
    let veil = VeilConfig::new("outlook-mail", &graph.url())
        .env("VEIL_UPSTREAM_TOKEN", "expired-graph-token")
        .start()
        .await;
    let resp = get(&veil.url("/v1.0/users?$top=1")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-psoxy-error"], "API_ERROR");
    let text = resp.text().await.unwrap();
    assert!(!text.contains("expired-graph-token"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    if let Some(inner) = body["error"].get("innerError") {
        let keys: Vec<&String> = inner.as_object().unwrap().keys().collect();
        assert!(
            keys.iter().all(|k| *k == "request-id" || *k == "date"),
            "{text}"
        );
    }
    assert_error_shape(
        &serde_json::from_str(&text).unwrap(),
        "InvalidAuthenticationToken",
    );
    let requests = graph.requests();
    assert_eq!(requests.len(), 2, "one retry after a 401");
    for r in requests {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer expired-graph-token")
        );
    }
}

/// The shipped rules promise that people's Graph object ids leave Veil as
/// `p~` tokens (variant `default`), including the less obvious places: the
/// organizer of a chat's meeting (`onlineMeetingInfo.organizer.id`) and the
/// organizer's `Oid` inside Teams join links of calendar events.
#[tokio::test]
async fn people_ids_never_leave_in_clear() {
    let (_cal_graph, cal) = start_pair("outlook-cal").await;
    let tokens = user_tokens(&cal, "outlook-cal").await;
    let (_teams_graph, teams) = start_pair("msft-teams").await;
    let user_path = format!("/users/{PRIYA}/");
    let user_token_path = format!("/users/{}/", tokens[PRIYA]);
    let mut found = Vec::new();
    for (veil, connector, file) in [
        (&cal, "outlook-cal", "events.json"),
        (&cal, "outlook-cal", "event.json"),
        (&cal, "outlook-cal", "calendar-view.json"),
        (&teams, "msft-teams", "chats.json"),
    ] {
        let s = sample(connector, file);
        let target = s.target().replace(&user_path, &user_token_path);
        let resp = get(&veil.url(&target)).await;
        assert_eq!(resp.status(), 200, "{connector}/{file}");
        let text = resp.text().await.unwrap();
        for guid in user_guids() {
            if text.contains(&guid) {
                found.push(format!("{connector}/{file}: {guid}"));
            }
        }
    }
    assert!(found.is_empty(), "user ids in clear:\n{}", found.join("\n"));
}

#[tokio::test]
async fn request_ids_come_back_and_name_the_log_line() {
    let (_graph, veil) = start_pair("outlook-mail").await;
    // The caller's own id, when it is a plain token.
    let resp = client()
        .get(veil.url("/v1.0/users?$top=3"))
        .header("x-request-id", "vendor-ticket-4711:a.b_c")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "vendor-ticket-4711:a.b_c");
    // Refusals carry one too; a hostile value is replaced by Veil's own.
    let resp = client()
        .get(veil.url("/v1.0/users/p~bad/mailFolders/Inbox/messages"))
        .header("x-request-id", "x\" injected=1 <script>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty() && !id.contains("injected"), "{id}");
    // Both ids name their log lines.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = veil.access_log();
        let ids: Vec<String> = log
            .iter()
            .filter_map(|l| l["request_id"].as_str().map(str::to_string))
            .collect();
        if ids.iter().any(|i| i == "vendor-ticket-4711:a.b_c") && ids.contains(&id) {
            break;
        }
        assert!(std::time::Instant::now() < until, "log ids: {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
