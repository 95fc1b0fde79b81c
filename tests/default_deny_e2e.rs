//! Default-deny request and error handling through `veil serve` over TCP:
//! `$select`/`$expand` bound to the response allowlist, id slots that
//! refuse OData segments, no query parameter without an allowlist, and
//! Graph error bodies that echo nothing of the request. A recording test
//! Graph proves that nothing refused was forwarded.

mod support;

use serde_json::{json, Value};
use support::*;

/// A default-deny rule file over the outlook-mail sample directory.
const RULES: &str = r#"
defaultDeny: true
endpoints:
  - pathTemplate: /v1.0/users
    allowedQueryParams: [$top, $select]
    queryParamSchemas:
      $top: {type: integer}
    responseSchema:
      type: object
      properties:
        value: {type: array, items: {$ref: '#/definitions/User'}}
      definitions:
        User:
          type: object
          properties:
            id: {type: string}
            mail: {type: string}
            manager: {$ref: '#/definitions/User'}
    transforms:
      - !<pseudonymize>
        jsonPaths: ["$..mail"]
      - !<tokenize>
        jsonPaths: ["$.value[*].id", "$..manager.id"]
  - pathTemplate: /v1.0/users/{userId}
    pathParameterSchemas:
      userId: {format: reversible-pseudonym}
    allowedQueryParams: [$select, $expand]
    responseSchema:
      type: object
      properties:
        id: {type: string}
        mail: {type: string}
        manager: {type: object, properties: {id: {type: string}}}
    transforms:
      - !<pseudonymize>
        jsonPaths: ["$..mail"]
      - !<tokenize>
        jsonPaths: ["$.id", "$..manager.id"]
  - pathTemplate: /v1.0/users/{userId}/events/{eventId}
    pathParameterSchemas:
      userId: {format: reversible-pseudonym}
    responseSchema:
      type: object
      properties:
        id: {type: string}
"#;

async fn start() -> (
    GraphServer,
    Veil,
    std::collections::HashMap<String, String>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("outlook-mail.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let graph = GraphServer::start("outlook-mail").await;
    let veil = VeilConfig::new("outlook-mail", &graph.url())
        .env("VEIL_RULES", rules.to_str().unwrap())
        .start()
        .await;
    let tokens = tokens(&veil).await;
    (graph, veil, tokens, dir)
}

/// Raw object id → `p~` token, from the sample directory through Veil.
async fn tokens(veil: &Veil) -> std::collections::HashMap<String, String> {
    let resp = client()
        .get(veil.url("/v1.0/users?$top=8"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let original = sample("outlook-mail", "users.json").json();
    original["value"]
        .as_array()
        .unwrap()
        .iter()
        .zip(body["value"].as_array().unwrap())
        .map(|(raw, out)| {
            let token = out["id"].as_str().unwrap().to_string();
            assert!(token.starts_with("p~"), "{token}");
            (raw["id"].as_str().unwrap().to_string(), token)
        })
        .collect()
}

async fn refused(veil: &Veil, graph: &GraphServer, target: &str, needle: &str) {
    let before = graph.count();
    let resp = client().get(veil.url(target)).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 403, "{target}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{target}: {message}");
    assert_eq!(graph.count(), before, "{target} reached Graph");
}

#[tokio::test]
async fn select_and_expand_outside_the_allowlist_are_refused_and_not_forwarded() {
    let (graph, veil, tokens, _dir) = start().await;
    let (raw, token) = tokens.iter().next().unwrap();
    let user = format!("/v1.0/users/{token}");
    refused(
        &veil,
        &graph,
        &format!("{user}?$select=mailboxSettings"),
        "`mailboxSettings`",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("{user}?%24select=id,aboutMe"),
        "`aboutMe`",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("{user}?$expand=memberOf"),
        "`memberOf`",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("{user}?$expand=manager($select=mail)"),
        "`mail`",
    )
    .await;
    refused(
        &veil,
        &graph,
        "/v1.0/users?$select=id,signInActivity",
        "`signInActivity`",
    )
    .await;

    // Inside the allowlist: forwarded byte for byte, with the real id.
    graph.script(
        &format!("/v1.0/users/{raw}"),
        Reply::json(
            200,
            &json!({"id": raw, "mail": "ann@contoso.example",
            "manager": {"id": raw, "displayName": "Ann Lee"},
            "futureProperty": "Ann Lee's new Graph field"}),
        ),
    );
    let resp = client()
        .get(veil.url(&format!(
            "{user}?$select=id,mail&$expand=manager($select=id)"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("Ann Lee") && !text.contains("futureProperty"),
        "{text}"
    );
    assert!(!text.contains(raw.as_str()), "raw id in {text}");
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{raw}?$select=id,mail&$expand=manager($select=id)")
    );
}

#[tokio::test]
async fn id_slots_and_query_without_allowlist_are_refused() {
    let (graph, veil, tokens, _dir) = start().await;
    let token = tokens.values().next().unwrap();
    for segment in [
        "delta",
        "delta()",
        "$count",
        "%24value",
        "microsoft.graph.delta()",
    ] {
        refused(
            &veil,
            &graph,
            &format!("/v1.0/users/{token}/events/{segment}"),
            "not an id",
        )
        .await;
    }
    // No `allowedQueryParams` under defaultDeny: no query parameter.
    refused(
        &veil,
        &graph,
        &format!("/v1.0/users/{token}/events/AAMkAD?$select=id"),
        "not allowed",
    )
    .await;
}

#[tokio::test]
async fn graph_errors_echo_nothing_of_the_request() {
    let (graph, veil, tokens, _dir) = start().await;
    let (raw, token) = tokens.iter().next().unwrap();
    // Graph's 404 quotes the (re-identified) id and a name: neither leaves,
    // nor does the caller's token next to it (an id ↔ token oracle).
    graph.script(
        &format!("/v1.0/users/{raw}"),
        Reply::json(404, &json!({"error": {
            "code": "Request_ResourceNotFound",
            "message": format!("Resource '{raw}' does not exist. Owner: Ann Lee, +1 425 555 0101"),
            "innerError": {"date": "2026-11-06T10:00:00", "request-id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}
        }})),
    );
    let resp = client()
        .get(veil.url(&format!("/v1.0/users/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let text = resp.text().await.unwrap();
    for leaked in [raw.as_str(), token.as_str(), "Ann Lee", "555 0101"] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_error_shape(&body, "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["message"],
        "The requested resource was not found."
    );
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
    );
}

/// The `p~` tokens of `/v1.0/users` and of the first user's chats through
/// Veil with the shipped msft-teams rules: (user tokens, chat tokens).
async fn teams_tokens(veil: &Veil) -> (Vec<String>, Vec<String>) {
    let ids = |body: &Value| -> Vec<String> {
        body["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|v| v["id"].as_str().expect("id").to_string())
            .collect()
    };
    let resp = client().get(veil.url("/v1.0/users")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let users = ids(&resp.json().await.unwrap());
    let resp = client()
        .get(veil.url(&format!("/v1.0/users/{}/chats?$top=5", users[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let chats = ids(&resp.json().await.unwrap());
    assert!(!users.is_empty() && !chats.is_empty());
    for t in users.iter().chain(&chats) {
        assert!(t.starts_with("p~"), "{t}");
    }
    (users, chats)
}

/// A token that decrypts but may not stand where it was sent: 400
/// `invalid_reversible_token` (as for any unusable token), nothing forwarded.
async fn wrong_token(veil: &Veil, graph: &GraphServer, target: &str, needle: &str) {
    let before = graph.count();
    let resp = client().get(veil.url(target)).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{target}: {body}");
    assert_error_shape(&body, "invalid_reversible_token");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{target}: {message}");
    assert_eq!(graph.count(), before, "{target} reached Graph");
}

#[tokio::test]
async fn shipped_teams_rules_refuse_a_user_token_in_a_chat_slot() {
    // The shipped rules (no VEIL_RULES): every token carries its kind, and
    // each `p~` path parameter takes only its own kind.
    let (graph, veil) = start_pair("msft-teams").await;
    let (users, chats) = teams_tokens(&veil).await;
    let wrong_kind = |expected: &str, found: &str| {
        format!("this place takes a {expected} token, and this is a {found} token")
    };
    // Both decrypt, but a user's token is no chat id…
    wrong_token(
        &veil,
        &graph,
        &format!("/v1.0/chats/{}/messages?$top=8", users[0]),
        &wrong_kind("chat", "user"),
    )
    .await;
    // …and a chat's token is no user id.
    wrong_token(
        &veil,
        &graph,
        &format!("/v1.0/users/{}/chats?$top=5", chats[0]),
        &wrong_kind("user", "chat"),
    )
    .await;
    wrong_token(
        &veil,
        &graph,
        &format!(
            "/v1.0/users/{}/onlineMeetings/{}/attendanceReports",
            users[0], users[1]
        ),
        &wrong_kind("event", "user"),
    )
    .await;
    // The chat's own token reads its messages, with the real id upstream.
    let resp = client()
        .get(veil.url(&format!("/v1.0/chats/{}/messages?$top=8", chats[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", veil.stderr());
    let target = decode(&graph.last().target);
    assert!(
        target.starts_with("/v1.0/chats/19:") && target.contains("@thread.v2/messages"),
        "{target}"
    );
}

#[tokio::test]
async fn a_refused_filter_says_what_is_allowed() {
    let (graph, veil) = start_pair("msft-teams").await;
    refused(
        &veil,
        &graph,
        "/v1.0/users?$filter=startswith(displayName,'Ann')",
        "query parameter `$filter` does not match the allowed pattern `(?i)^(accountEnabled eq (true|false)|",
    )
    .await;
}
