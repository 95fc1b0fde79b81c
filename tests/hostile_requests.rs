//! Hostile requests, sent as raw bytes over TCP so that no client library
//! normalizes them first. Each must be refused with a 4xx and must not
//! reach the (recording) Graph server; a few allowed controls prove that
//! the same server does receive valid requests.

mod support;

use support::*;
use veil_engine::{EmailPolicy, PseudonymConfig, Pseudonymizer, Scheme, Secret};

const PRIYA: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";

struct Case {
    name: String,
    request: Vec<u8>,
    status: u16,
    /// Veil's error code, when Veil (not the HTTP parser) refuses.
    code: Option<&'static str>,
}

fn case(name: &str, status: u16, code: Option<&'static str>, request: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        request,
        status,
        code,
    }
}

fn get(name: &str, status: u16, code: &'static str, target: &str) -> Case {
    case(name, status, Some(code), get_request(target, &[]))
}

fn get_with(name: &str, status: u16, code: &'static str, target: &str, extra: &[&str]) -> Case {
    case(name, status, Some(code), get_request(target, extra))
}

fn method(name: &str, method: &str, target: &str, body: &str) -> Case {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    case(name, 403, Some("blocked_by_rules"), request.into_bytes())
}

fn raw(name: &str, status: u16, code: Option<&'static str>, request: &str) -> Case {
    case(name, status, code, request.as_bytes().to_vec())
}

/// A token of Priya's id made with another key (same key id `k1`), and one
/// made under a key id Veil does not have.
fn foreign_tokens() -> (String, String) {
    let make = |kid: &str| {
        Pseudonymizer::new(PseudonymConfig {
            scheme: Scheme::Hmac,
            salt: Secret::from("another-salt-0123456789-0123456789-abcdef"),
            encryption_keys: vec![(
                kid.to_string(),
                Secret::from("another-key-0123456789-0123456789-abcdefgh"),
            )],
            email: EmailPolicy::default(),
        })
        .expect("pseudonymizer")
        .encrypt(PRIYA)
        .expect("encrypt")
    };
    (make("k1"), make("k9"))
}

/// Flips one character in the middle of a token.
fn flip(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    assert_ne!(flipped, token);
    flipped
}

fn cases(token: &str) -> Vec<Case> {
    let sent = format!("/v1.0/users/{token}/mailFolders/SentItems");
    let user = format!("/v1.0/users/{token}");
    let (other_key, other_kid) = foreign_tokens();
    let long_value = "a".repeat(9000);
    let long_header = format!("X-Padding: {long_value}");
    let many_headers: Vec<String> = (0..120).map(|i| format!("X-H{i}: v")).collect();
    let many_headers: Vec<&str> = many_headers.iter().map(String::as_str).collect();
    let big = "b".repeat(7000);
    let big_headers: Vec<String> = (0..6).map(|i| format!("X-Big{i}: {big}")).collect();
    let big_headers: Vec<&str> = big_headers.iter().map(String::as_str).collect();
    let bad = "bad_request";
    let blocked = "blocked_by_rules";
    let bad_token = "invalid_reversible_token";

    vec![
        // ---- traversal ----
        get("dot-dot", 400, bad, &format!("{sent}/../Inbox/messages")),
        get("encoded dot-dot", 400, bad, &format!("{sent}/%2e%2e/Inbox/messages")),
        get("mixed-case encoded dot-dot", 400, bad, &format!("{sent}/%2E%2e/Inbox/messages")),
        get("half-encoded dot-dot", 400, bad, &format!("{sent}/.%2e/Inbox/messages")),
        get("double-encoded dot-dot", 400, bad, &format!("{sent}/%252e%252e/Inbox/messages")),
        get("dot-dot with ;param", 400, bad, &format!("{sent}/..;x/Inbox/messages")),
        get("single dot segment", 400, bad, &format!("{user}/./mailFolders/SentItems/messages")),
        get("full-width dots", 400, bad, &format!("{sent}/%EF%BC%8E%EF%BC%8E/Inbox/messages")),
        get("overlong UTF-8 dots", 400, bad, &format!("{sent}/%C0%AE%C0%AE/Inbox/messages")),
        get("dot-dot to another user", 400, bad, &format!("{user}/../{PRIYA}/mailFolders/SentItems/messages")),
        // ---- encoded slashes and backslashes ----
        get("encoded slash", 400, bad, &format!("{sent}%2F..%2FInbox/messages")),
        get("lower-case encoded slash", 400, bad, &format!("{user}/mailFolders%2fInbox%2fmessages")),
        get("raw backslash", 400, bad, &format!("{sent}\\..\\Inbox/messages")),
        get("encoded backslash", 400, bad, &format!("{sent}%5c..%5cInbox/messages")),
        get("double-encoded backslash", 400, bad, &format!("{sent}/%255c/messages")),
        get("backslash in the query", 400, bad, "/v1.0/users?$top=1\\"),
        get("empty segment", 400, bad, "/v1.0//users"),
        get("leading double slash", 400, bad, "//v1.0/users"),
        get("trailing slash", 400, bad, "/v1.0/users/"),
        get("encoded NUL", 400, bad, &format!("{sent}%00/messages")),
        // ---- other request-target forms ----
        raw("absolute-form to another host", 400, Some(bad),
            "GET http://evil.example/v1.0/users HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"),
        raw("absolute-form to Graph", 400, Some(bad),
            "GET https://graph.microsoft.com/v1.0/users?$top=1 HTTP/1.1\r\nHost: graph.microsoft.com\r\nConnection: close\r\n\r\n"),
        raw("authority-form GET", 400, Some(bad),
            "GET evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n"),
        raw("CONNECT", 400, Some(bad),
            "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nConnection: close\r\n\r\n"),
        raw("asterisk-form", 400, Some(bad),
            "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        raw("HTTP/1.0 absolute-form", 400, Some(bad),
            "GET http://evil.example/v1.0/users HTTP/1.0\r\n\r\n"),
        // ---- Host and X-Forwarded-* tricks on refused requests ----
        get_with("Host: evil.example with traversal", 400, bad,
            &format!("{sent}/../Inbox/messages"), &["Host: evil.example"]),
        raw("X-Forwarded-* with absolute-form", 400, Some(bad),
            "GET http://evil.example/v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n"),
        get_with("X-Original-URL to the inbox", 403, blocked,
            &format!("{user}/mailFolders/Inbox/messages"),
            &["X-Original-URL: /v1.0/users", "X-Rewrite-URL: /v1.0/users", "X-Forwarded-Host: evil.example"]),
        // ---- methods ----
        get_with("X-HTTP-Method-Override: DELETE", 400, bad, "/v1.0/users", &["X-HTTP-Method-Override: DELETE"]),
        get_with("X-HTTP-Method: PATCH", 400, bad, "/v1.0/users", &["X-HTTP-Method: PATCH"]),
        get_with("X-Method-Override: POST", 400, bad, "/v1.0/users", &["X-Method-Override: POST"]),
        method("POST", "POST", "/v1.0/users", ""),
        method("POST with a body", "POST", "/v1.0/users", r#"{"displayName":"x"}"#),
        method("DELETE", "DELETE", &user, ""),
        method("PATCH", "PATCH", &user, r#"{"jobTitle":"x"}"#),
        method("PUT", "PUT", &format!("{sent}/messages"), "{}"),
        method("OPTIONS", "OPTIONS", "/v1.0/users", ""),
        method("GET with a body", "GET", "/v1.0/users", r#"{"x":1}"#),
        // ---- query parameters ----
        get("$search", 403, blocked, "/v1.0/users?$search=%22displayName:Priya%22"),
        get("encoded $search", 403, blocked, "/v1.0/users?%24search=Priya"),
        get("upper-case $SEARCH", 403, blocked, "/v1.0/users?$SEARCH=Priya"),
        get("duplicate $top", 403, blocked, "/v1.0/users?$top=1&$top=2"),
        get("duplicate $top in other case", 403, blocked, "/v1.0/users?$Top=1&$top=2"),
        get("duplicate, one encoded", 403, blocked, "/v1.0/users?$top=1&%24top=999"),
        get("CR/LF in the query", 400, bad, "/v1.0/users?$top=1%0d%0aHost:%20evil.example"),
        get("NUL in the query", 400, bad, "/v1.0/users?$top=%00"),
        get("double-encoded dot in the query", 400, bad, "/v1.0/users?$select=id%252e%252e"),
        get("name-probing $filter", 403, blocked, "/v1.0/users?$filter=startswith(displayName,'Pri')"),
        get("$top not an integer", 403, blocked, "/v1.0/users?$top=abc"),
        get("$expand not allowed on the list", 403, blocked, "/v1.0/users?$expand=manager"),
        get("subject $filter on messages", 403, blocked,
            &format!("{sent}/messages?$filter=subject%20eq%20'Q3'")),
        // ---- sizes ----
        case("one header over 8 KiB", 431, Some("headers_too_large"), get_request("/v1.0/users", &[&long_header])),
        case("120 headers", 431, None, get_request("/v1.0/users", &many_headers)),
        case("headers over 32 KiB in all", 431, Some("headers_too_large"), get_request("/v1.0/users", &big_headers)),
        get("URL over 8 KiB", 414, "uri_too_long", &format!("/v1.0/users?$select={}", "id,".repeat(3000))),
        get_with("TAB in a header value", 400, bad, "/v1.0/users", &["X-Note: a\tb"]),
        // ---- folders and versions ----
        get("the inbox", 403, blocked, &format!("{user}/mailFolders/Inbox/messages")),
        get("the inbox in key syntax", 403, blocked, &format!("{user}/mailFolders('Inbox')/messages")),
        get("all messages", 403, blocked, &format!("{user}/messages")),
        get("drafts", 403, blocked, &format!("{user}/mailFolders/Drafts/messages")),
        get("/beta", 403, blocked, "/beta/users"),
        get("/beta sent items", 403, blocked, &format!("/beta/users/{token}/mailFolders/SentItems/messages")),
        get("/me", 403, blocked, "/v1.0/me/mailFolders/SentItems/messages"),
        // ---- ids where a p~ token is required ----
        get("raw GUID", 403, blocked, &format!("/v1.0/users/{PRIYA}/mailFolders/SentItems/messages")),
        get("email", 403, blocked, "/v1.0/users/priya.raman@contoso.example/mailFolders/SentItems/messages"),
        get("encoded email", 403, blocked, "/v1.0/users/priya.raman%40contoso.example/mailFolders/SentItems/messages"),
        get("raw GUID on the user", 403, blocked, &format!("/v1.0/users/{PRIYA}")),
        get("forged token", 400, bad_token,
            &format!("/v1.0/users/p~{}/mailFolders/SentItems/messages", "A".repeat(60))),
        get("bit-flipped token", 400, bad_token,
            &format!("/v1.0/users/{}/mailFolders/SentItems/messages", flip(token))),
        get("bit-flipped token on the user", 400, bad_token, &format!("/v1.0/users/{}", flip(token))),
        get("token under another key", 400, bad_token,
            &format!("/v1.0/users/{other_key}/mailFolders/SentItems/messages")),
        get("token under an unknown key id", 400, bad_token,
            &format!("/v1.0/users/{other_kid}/mailFolders/SentItems/messages")),
        get("bit-flipped token in $skiptoken", 400, bad_token,
            &format!("/v1.0/users?$skiptoken={}", flip(token))),
        // ---- what the HTTP parser refuses ----
        raw("space in the target", 400, None,
            "GET /v1.0/users x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        // hyper reads a chunked body (RFC 9112 §6.3); Veil refuses the body.
        raw("Content-Length and Transfer-Encoding", 403, Some(blocked),
            "GET /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        raw("made-up method", 403, Some(blocked),
            "FETCH /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        raw("two different Content-Lengths", 400, None,
            "GET /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"),
        case("invalid UTF-8 in the target", 400, None,
            b"GET /v1.0/users/\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec()),
    ]
}

#[tokio::test]
async fn hostile_requests_are_refused_and_never_reach_graph() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let token = tokens[PRIYA].clone();
    let cases = cases(&token);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let before = graph.count();
        let resp = send_raw(&veil.addr(), &c.request).await;
        let after = graph.count();
        if after != before {
            failures.push(format!(
                "{}: Graph received {:?}",
                c.name,
                &graph.requests()[before..]
            ));
        }
        if resp.status != c.status {
            failures.push(format!(
                "{}: status {} (expected {}): {}",
                c.name,
                resp.status,
                c.status,
                resp.text()
            ));
            continue;
        }
        assert!((400..500).contains(&resp.status));
        if let Some(code) = c.code {
            match resp.json() {
                Some(body) => {
                    if body["error"]["code"] != code {
                        failures.push(format!("{}: body {body}, expected {code}", c.name));
                    }
                    assert_error_shape(&body, code);
                    let psoxy = resp.header("x-psoxy-error").unwrap_or("");
                    assert!(
                        ["BLOCKED_BY_RULES", "UNAUTHORIZED"].contains(&psoxy),
                        "{}: X-Psoxy-Error {psoxy:?}",
                        c.name
                    );
                }
                None => failures.push(format!("{}: not JSON: {:?}", c.name, resp.text())),
            }
        }
        // Nothing of the request is echoed (ids, tokens, addresses).
        let text = resp.text();
        for piece in [PRIYA, token.as_str(), "priya.raman", "evil.example"] {
            if text.contains(piece) {
                failures.push(format!("{}: the answer echoes {piece}: {text}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Veil is still up and serving after all that.
    let resp = send_raw(&veil.addr(), &get_request("/v1.0/users?$top=1", &[])).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn allowed_controls_do_reach_graph() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let token = &tokens[PRIYA];

    let before = graph.count();
    let resp = send_raw(&veil.addr(), &get_request("/v1.0/users?$top=1", &[])).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(graph.count(), before + 1);
    assert_eq!(graph.last().target, "/v1.0/users?$top=1");

    let target = format!("/v1.0/users/{token}/mailFolders/SentItems/messages?$top=10");
    let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(graph.count(), before + 2);
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{PRIYA}/mailFolders/SentItems/messages?$top=10")
    );

    // The key syntax of the same folder, and HEAD.
    let target = format!("/v1.0/users/{token}/mailFolders('SentItems')/messages");
    let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let head = "HEAD /v1.0/users?$top=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let resp = send_raw(&veil.addr(), head.as_bytes()).await;
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty());
    let last = graph.last();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("HEAD", "/v1.0/users?$top=2")
    );
    assert_eq!(graph.count(), before + 4);
}

#[tokio::test]
async fn host_and_forwarding_headers_never_redirect_the_upstream_call() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tricks = [
        "Host: evil.example",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Proto: http",
        "X-Forwarded-For: 203.0.113.7",
        "X-Forwarded-Port: 8443",
        "Forwarded: for=203.0.113.7;host=evil.example;proto=http",
        "X-Original-URL: /v1.0/users/me/mailFolders/Inbox/messages",
        "X-Rewrite-URL: /beta/users",
        "X-Host: evil.example",
    ];
    for trick in tricks {
        let before = graph.count();
        let request = format!(
            "GET /v1.0/users?$top=3 HTTP/1.1\r\n{}{trick}\r\nConnection: close\r\n\r\n",
            if trick.starts_with("Host:") {
                ""
            } else {
                "Host: 127.0.0.1\r\n"
            }
        );
        let resp = send_raw(&veil.addr(), request.as_bytes()).await;
        assert_eq!(resp.status, 200, "{trick}: {}", resp.text());
        assert_eq!(graph.count(), before + 1, "{trick}");
        let r = graph.last();
        assert_eq!(r.target, "/v1.0/users?$top=3", "{trick}");
        assert_eq!(
            r.header("host"),
            Some(graph.addr.to_string().as_str()),
            "{trick}: Graph was called under another host name"
        );
        for (name, value) in &r.headers {
            assert!(
                !value.contains("evil.example") && !value.contains("203.0.113.7"),
                "{trick}: {name}: {value} reached Graph"
            );
            assert!(
                !name.starts_with("x-forwarded")
                    && !["forwarded", "x-original-url", "x-rewrite-url", "x-host"]
                        .contains(&name.as_str()),
                "{trick}: {name} reached Graph"
            );
        }
    }
}

/// `p~` followed by too few token characters, or by characters no token
/// has, is not a reversible pseudonym: refused, never forwarded as is.
#[tokio::test]
async fn short_fake_tokens_are_refused() {
    let (graph, veil) = start_pair("outlook-mail").await;
    for fake in ["p~x", "p~priya.raman@contoso.example", "p~AAAAAAAA"] {
        let before = graph.count();
        let target = format!("/v1.0/users/{fake}/mailFolders/SentItems/messages");
        let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
        assert_eq!(
            graph.count(),
            before,
            "{fake}: Graph received {:?}",
            graph.last().target
        );
        // Refused by the rules' `reversible-pseudonym` check, before any
        // decryption is tried.
        assert_eq!(resp.status, 403, "{fake}: {}", resp.text());
        assert!(
            resp.text().contains("must be a reversible pseudonym"),
            "{fake}"
        );
    }
}

/// HTTP methods are case-sensitive (RFC 9110 §9.1): `get` is not `GET`,
/// and is refused rather than forwarded as the caller spelled it.
#[tokio::test]
async fn lower_case_methods_are_refused() {
    let (graph, veil) = start_pair("outlook-mail").await;
    for m in ["get", "Get", "hEaD"] {
        let before = graph.count();
        let request =
            format!("{m} /v1.0/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let resp = send_raw(&veil.addr(), request.as_bytes()).await;
        assert_eq!(
            graph.count(),
            before,
            "{m}: Graph received {:?}",
            graph.last()
        );
        assert_eq!(resp.status, 403, "{m}: {}", resp.text());
    }
}
