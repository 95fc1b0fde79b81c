//! Psoxy drop-in: the requests that analytics clients written against
//! Psoxy send, exactly as they send them, through `veil serve` with the
//! shipped rules over TCP. Each must be answered (200), reach Graph byte for
//! byte as the client wrote it (apart from `p~` tokens, which Veil turns back
//! into Graph ids), and come back without any of the personal values planted
//! in the samples: names, phones, texts, addresses in clear, people's Graph
//! ids.

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::*;

const PRIYA: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";
const GROUP: &str = "d4a71c5e-9b28-4f03-8e6d-2c5b8f1a7e39";
/// The weekly series whose occurrences `instances` lists.
const SERIES: &str = "AAMkADBmM2E3YzllLTJkNGItNGU2MS05YTg1LWM3YjNlMWQwZjY0MgBGAAAAAAB5cm_fWNWYIPw6G9k_B7WcBwD8e-naQZkeik41m-ellHLrNwuOCiemAACmRGtizmsJAZBBK7SXlLftxLv1CKHMAAA=";
const USERS_STARTSWITH: &str = "/v1.0/users?$filter=startswith(userPrincipalName,'a')";

/// What Graph receives for a client's `target`: exactly its bytes (`'` in
/// a query included: Veil's upstream request is not re-encoded).
fn as_forwarded(target: &str) -> String {
    target.to_string()
}

/// Sends `target` as written, expects 200, checks that Graph received
/// `upstream` byte for byte (see `as_forwarded`), and that the answer
/// leaks nothing.
async fn pass(
    graph: &GraphServer,
    veil: &Veil,
    target: &str,
    headers: &[&str],
    upstream: &str,
) -> Value {
    pass_with(graph, veil, target, headers, upstream, true).await
}

/// `pass`, for a variant that keeps Graph ids in clear when `tokenized` is
/// false.
async fn pass_with(
    graph: &GraphServer,
    veil: &Veil,
    target: &str,
    headers: &[&str],
    upstream: &str,
    tokenized: bool,
) -> Value {
    let before = graph.count();
    let resp = send_raw(&veil.addr(), &get_request(target, headers)).await;
    let text = resp.text();
    assert_eq!(resp.status, 200, "{target} was refused: {text}");
    assert_eq!(graph.count(), before + 1, "{target}: not forwarded once");
    assert_eq!(
        graph.last().target,
        as_forwarded(upstream),
        "{target}: Graph received another request"
    );
    assert_clean(target, &text, tokenized);
    resp.json().expect("a JSON answer")
}

/// No planted value, and (when ids are tokenized) no person's Graph id, in
/// an answer.
fn assert_clean(target: &str, text: &str, tokenized: bool) {
    let leaked = leaks(text);
    assert!(leaked.is_empty(), "{target} leaks {leaked:?}:\n{text}");
    let ids = if tokenized { user_guids() } else { Vec::new() };
    for id in ids {
        assert!(
            !text.to_lowercase().contains(&id),
            "{target} leaks the user id {id}:\n{text}"
        );
    }
}

fn token(tokens: &HashMap<String, String>, raw: &str) -> String {
    tokens
        .get(raw)
        .unwrap_or_else(|| panic!("no token for {raw}"))
        .clone()
}

/// Every value at `ids` (one level of `value[*]`) is a `p~` token.
fn all_tokens(body: &Value, field: &str) {
    let list = body["value"].as_array().expect("value");
    assert!(!list.is_empty(), "{body}");
    for item in list {
        let id = item[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {item}"));
        assert!(id.starts_with("p~"), "{field} not tokenized: {id}");
    }
}

#[tokio::test]
async fn directory_prefix_filter_with_consistency_level_on_every_directory_connector() {
    for connector in ["entra-id", "outlook-mail", "outlook-cal"] {
        let (graph, veil) = start_pair(connector).await;
        let body = pass(
            &graph,
            &veil,
            USERS_STARTSWITH,
            &["ConsistencyLevel: eventual"],
            USERS_STARTSWITH,
        )
        .await;
        assert_eq!(
            graph.last().header("consistencylevel"),
            Some("eventual"),
            "{connector}: ConsistencyLevel not forwarded"
        );
        all_tokens(&body, "id");
        assert_eq!(
            body["value"].as_array().unwrap().len(),
            2,
            "{connector}: {body}"
        );
        // The next page keeps the filter and hides the skip token.
        let next = body["@odata.nextLink"].as_str().expect("nextLink");
        assert!(next.contains("$skiptoken=p~"), "{next}");
    }
}

#[tokio::test]
async fn target_headers_name_the_request_and_pass_the_same_policy() {
    let (graph, veil) = start_pair("entra-id").await;
    // The request line is ignored; the headers name path and query.
    let body = pass(
        &graph,
        &veil,
        "/some/gateway/route?ignored=1",
        &[
            "X-Psoxy-TargetPath: /v1.0/users",
            "X-Psoxy-TargetQuery: $filter=startswith(userPrincipalName,'a')",
            "ConsistencyLevel: eventual",
        ],
        USERS_STARTSWITH,
    )
    .await;
    all_tokens(&body, "id");
    let seen = graph.last();
    assert!(
        seen.header("x-psoxy-targetpath").is_none() && seen.header("x-psoxy-targetquery").is_none(),
        "control headers forwarded"
    );
    // Only the path named: the request line's query is kept; an empty
    // query header drops it.
    pass(
        &graph,
        &veil,
        "/x?$top=1",
        &["X-Psoxy-TargetPath: /v1.0/users"],
        "/v1.0/users?$top=1",
    )
    .await;
    pass(
        &graph,
        &veil,
        "/v1.0/users?$top=1",
        &["X-Psoxy-TargetQuery: "],
        "/v1.0/users",
    )
    .await;
    // Refused exactly as the same target on the request line; nothing forwarded.
    let before = graph.count();
    for (headers, status) in [
        (&["X-Psoxy-TargetPath: /v1.0/users/../groups"][..], 400),
        (&["X-Psoxy-TargetPath: /v1.0/users?$top=1"][..], 400),
        (&["X-Psoxy-TargetPath: v1.0/users"][..], 400),
        (&["X-Psoxy-TargetQuery: ?$top=1"][..], 400),
        (&["X-Psoxy-TargetPath: /v1.0/me/messages"][..], 403),
        (&["X-Psoxy-TargetQuery: $select=mobilePhone"][..], 403),
    ] {
        let resp = send_raw(&veil.addr(), &get_request("/v1.0/users", headers)).await;
        assert_eq!(resp.status, status, "{headers:?}: {}", resp.text());
    }
    assert_eq!(graph.count(), before, "a refused target reached Graph");
}

#[tokio::test]
async fn sent_items_date_window_as_psoxy_clients_encode_it() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let priya = token(&tokens, PRIYA);
    let path = "/v1.0/users/{id}/mailFolders('SentItems')/messages?$filter=SentDateTime+gt+2019-12-30T00%3a00%3a00Z+and+SentDateTime+lt+2022-05-16T00%3a00%3a00Z&%24top=10&$skip=10";
    let body = pass(
        &graph,
        &veil,
        &path.replace("{id}", &priya),
        &[],
        &path.replace("{id}", PRIYA),
    )
    .await;
    let list = body["value"].as_array().expect("value");
    assert_eq!(list.len(), 3, "{body}");
    for m in list {
        assert!(
            m.get("subject").is_none() && m.get("bodyPreview").is_none(),
            "{m}"
        );
        assert!(
            m["sentDateTime"].as_str().unwrap().starts_with("2021-03-"),
            "{m}"
        );
    }
    let next = body["@odata.nextLink"].as_str().expect("nextLink");
    assert!(next.contains(&format!("/users/{priya}/")), "{next}");

    // The same window in other spellings Graph accepts: lower-case
    // property names, `%20`, upper-case escapes, `%24` on every name.
    for variant in [
        "/v1.0/users/{id}/mailFolders('SentItems')/messages?$filter=sentdatetime%20ge%202019-12-30T00%3A00%3A00Z&$top=10",
        "/v1.0/users/{id}/mailFolders/SentItems/messages?%24filter=SENTDATETIME+lt+2022-05-16T00:00:00Z&%24orderby=SentDateTime+DESC&%24top=10",
    ] {
        pass(
            &graph,
            &veil,
            &variant.replace("{id}", &priya),
            &[],
            &variant.replace("{id}", PRIYA),
        )
        .await;
    }
    // A filter on anything but a date is still refused, whatever its case.
    let before = graph.count();
    let target =
        format!("/v1.0/users/{priya}/mailFolders('SentItems')/messages?$filter=Subject+eq+'Offer'");
    let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(graph.count(), before, "a refused request reached Graph");
}

#[tokio::test]
async fn one_group_on_the_mail_and_calendar_connectors() {
    for connector in ["outlook-mail", "outlook-cal"] {
        let (graph, veil) = start_pair(connector).await;
        let target = format!("/v1.0/groups/{GROUP}");
        let body = pass(&graph, &veil, &target, &[], &target).await;
        assert_eq!(body["id"], GROUP, "{connector}: {body}");
        assert!(body.get("displayName").is_none() && body.get("description").is_none());
        assert!(
            body["mail"].as_str().unwrap().starts_with("t~"),
            "{connector}: {body}"
        );
    }
}

#[tokio::test]
async fn no_groups_variants_refuse_groups_and_keep_the_rest() {
    for (connector, variant) in [
        ("outlook-mail", "no-groups"),
        ("outlook-cal", "no-groups"),
        ("outlook-mail", "clear-ids-no-groups"),
        ("outlook-cal", "clear-ids-no-groups"),
    ] {
        let graph = GraphServer::start(connector).await;
        let veil = VeilConfig::new(connector, &graph.url())
            .env("VEIL_RULES_VARIANT", variant)
            .start()
            .await;
        for target in [
            format!("/v1.0/groups/{GROUP}"),
            "/v1.0/groups?$top=4".to_string(),
            format!("/v1.0/groups/{GROUP}/members"),
        ] {
            let before = graph.count();
            let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
            assert!(
                (400..500).contains(&resp.status),
                "{connector} [{variant}] {target}: {} {}",
                resp.status,
                resp.text()
            );
            assert_eq!(graph.count(), before, "{target} reached Graph");
        }
        let body = pass_with(
            &graph,
            &veil,
            USERS_STARTSWITH,
            &["ConsistencyLevel: eventual"],
            USERS_STARTSWITH,
            variant == "no-groups",
        )
        .await;
        let id = body["value"][0]["id"].as_str().unwrap();
        assert_eq!(
            id.starts_with("p~"),
            variant == "no-groups",
            "{variant}: {id}"
        );
    }
}

#[tokio::test]
async fn recurring_meeting_instances_in_a_window() {
    let (graph, veil) = start_pair("outlook-cal").await;
    let tokens = user_tokens(&veil, "outlook-cal").await;
    let priya = token(&tokens, PRIYA);
    let path = format!(
        "/v1.0/users/{{id}}/events/{SERIES}/instances?startDateTime=2026-11-01T00:00:00Z&endDateTime=2026-12-01T00:00:00Z"
    );
    let body = pass(
        &graph,
        &veil,
        &path.replace("{id}", &priya),
        &["Prefer: outlook.timezone=\"UTC\""],
        &path.replace("{id}", PRIYA),
    )
    .await;
    let list = body["value"].as_array().expect("value");
    assert_eq!(list.len(), 3, "{body}");
    for e in list {
        assert_eq!(e["seriesMasterId"], SERIES, "{e}");
        assert_eq!(e["subject"], "Weekly,sync", "{e}");
        assert!(e.get("bodyPreview").is_none(), "{e}");
    }
    let next = body["@odata.nextLink"].as_str().expect("nextLink");
    assert!(next.contains(&format!("/users/{priya}/")), "{next}");

    // Graph requires the window: without it Veil refuses before Graph.
    let before = graph.count();
    let target =
        format!("/v1.0/users/{priya}/events/{SERIES}/instances?startDateTime=2026-11-01T00:00:00Z");
    let resp = send_raw(&veil.addr(), &get_request(&target, &[])).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        resp.text().to_lowercase().contains("enddatetime"),
        "{}",
        resp.text()
    );
    assert_eq!(graph.count(), before, "a refused request reached Graph");
}

#[tokio::test]
async fn teams_users_call_records_and_expanded_chats() {
    let (graph, veil) = start_pair("msft-teams").await;
    let body = pass(&graph, &veil, "/v1.0/users", &[], "/v1.0/users").await;
    all_tokens(&body, "id");
    assert!(body["value"][0].get("displayName").is_none(), "{body}");

    let target = "/v1.0/communications/callRecords?$expand=sessions($expand=segments)";
    let body = pass(&graph, &veil, target, &[], target).await;
    let record = &body["value"][0];
    let segments = &record["sessions"][0]["segments"];
    assert!(segments.as_array().is_some_and(|s| !s.is_empty()), "{body}");
    let organizer = record["organizer"]["user"]["id"]
        .as_str()
        .expect("organizer");
    assert!(organizer.starts_with("p~"), "{organizer}");

    let tokens = user_tokens(&veil, "msft-teams").await;
    let priya = token(&tokens, PRIYA);
    let path = "/v1.0/users/{id}/chats?$expand=lastMessagePreview";
    let body = pass(
        &graph,
        &veil,
        &path.replace("{id}", &priya),
        &[],
        &path.replace("{id}", PRIYA),
    )
    .await;
    let preview = &body["value"][0]["lastMessagePreview"];
    assert!(preview.get("body").is_none(), "{preview}");
    assert!(
        preview["from"]["user"]["id"]
            .as_str()
            .unwrap()
            .starts_with("p~"),
        "{preview}"
    );
    assert!(
        preview["from"]["user"].get("displayName").is_none(),
        "{preview}"
    );

    let path = "/v1.0/users/{id}/chats?$expand=members";
    let body = pass(
        &graph,
        &veil,
        &path.replace("{id}", &priya),
        &[],
        &path.replace("{id}", PRIYA),
    )
    .await;
    let members = body["value"][0]["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{body}");
    for m in members {
        assert!(m["userId"].as_str().unwrap().starts_with("p~"), "{m}");
        // The membership id embeds the user id (base64): not kept.
        assert!(
            m.get("id").is_none() && m.get("displayName").is_none(),
            "{m}"
        );
    }
}

/// Sends `target` and checks that Veil forwarded it (whatever Graph then
/// answers): the rules did not refuse it, and Graph received `upstream`.
async fn forwarded(graph: &GraphServer, veil: &Veil, target: &str, upstream: &str) {
    let before = graph.count();
    let resp = send_raw(&veil.addr(), &get_request(target, &[])).await;
    assert_ne!(resp.status, 403, "{target} was refused: {}", resp.text());
    assert_eq!(graph.count(), before + 1, "{target}: not forwarded");
    assert_eq!(
        decode(&graph.last().target),
        decode(&as_forwarded(upstream)),
        "{target}: Graph received another request"
    );
    assert_clean(target, &resp.text(), true);
}

/// Every date-range `$filter` of every connector, written the way Psoxy
/// clients write them: capitalized property names, `+` for spaces,
/// lower-case escapes, `%24` for `$`.
#[tokio::test]
async fn every_date_range_filter_in_psoxy_spelling() {
    const WHEN: &str = "+ge+2026-11-01T00%3a00%3a00Z+and+";
    let (graph, veil) = start_pair("entra-id").await;
    for path in ["/v1.0/users", "/v1.0/groups"] {
        let target = format!(
            "{path}?%24filter=CreatedDateTime{WHEN}CreatedDateTime+lt+2026-12-01T00%3a00%3a00Z&%24top=5"
        );
        forwarded(&graph, &veil, &target, &target).await;
    }

    let (graph, veil) = start_pair("outlook-mail").await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let priya = token(&tokens, PRIYA);
    for folder in ["mailFolders/SentItems", "mailFolders('SentItems')"] {
        for name in [
            "SentDateTime",
            "ReceivedDateTime",
            "CreatedDateTime",
            "LastModifiedDateTime",
        ] {
            let path = format!(
                "/v1.0/users/{{id}}/{folder}/messages?%24filter={name}{WHEN}{name}+lt+2026-12-01T00%3a00%3a00Z&%24orderby={name}+desc"
            );
            forwarded(
                &graph,
                &veil,
                &path.replace("{id}", &priya),
                &path.replace("{id}", PRIYA),
            )
            .await;
        }
    }

    let (graph, veil) = start_pair("outlook-cal").await;
    let tokens = user_tokens(&veil, "outlook-cal").await;
    let priya = token(&tokens, PRIYA);
    let window = "startDateTime=2026-11-01T00%3a00%3a00Z&endDateTime=2026-12-01T00%3a00%3a00Z&";
    for (path, query) in [
        ("/v1.0/users/{id}/events", ""),
        ("/v1.0/users/{id}/calendar/calendarView", window),
        (
            "/v1.0/users/{id}/calendars/AAMkADBmM2E3YzllLTJkNGItNGU2MS05YTg1LWM3YjNlMWQwZjY0MgAuAAAAAAB5cm_fWNWYIPw6G9k_B7WcAQATJKJX-AILZATVXn5vuJhe6x2_xKo_AAA=/events",
            "",
        ),
        (&format!("/v1.0/users/{{id}}/events/{SERIES}/instances"), window),
    ] {
        for name in ["Start/DateTime", "End/DateTime", "CreatedDateTime", "LastModifiedDateTime"] {
            let target = format!(
                "{path}?{query}%24filter={name}+ge+'2026-11-01T00%3a00%3a00Z'&%24orderby={name}"
            );
            forwarded(
                &graph,
                &veil,
                &target.replace("{id}", &priya),
                &target.replace("{id}", PRIYA),
            )
            .await;
        }
    }

    let (graph, veil) = start_pair("msft-teams").await;
    let tokens = user_tokens(&veil, "msft-teams").await;
    let priya = token(&tokens, PRIYA);
    let chats = pass(
        &graph,
        &veil,
        &format!("/v1.0/users/{priya}/chats?$top=5"),
        &[],
        &format!("/v1.0/users/{PRIYA}/chats?$top=5"),
    )
    .await;
    let chat = chats["value"][0]["id"].as_str().expect("chat token");
    let raw_chat = "19:6b3e0f8a2c914d7fa5e1b9c4d2f07a38@thread.v2";
    let channel = "/v1.0/teams/8b2e6f1a-4c93-4d7e-a05b-1f9c3e7d2a84/channels/19:7d2c3f9a41b84e0c9f6a5e1d2b8c4a07@thread.tacv2";
    for (target, upstream) in [
        (
            format!("/v1.0/users/{priya}/chats?%24filter=LastUpdatedDateTime{WHEN}ChatType+eq+'group'&%24orderby=LastMessagePreview/CreatedDateTime+desc"),
            format!("/v1.0/users/{PRIYA}/chats?%24filter=LastUpdatedDateTime{WHEN}ChatType+eq+'group'&%24orderby=LastMessagePreview/CreatedDateTime+desc"),
        ),
        (
            format!("/v1.0/chats/{chat}/messages?%24filter=LastModifiedDateTime+gt+2026-11-01T00%3a00%3a00Z&%24orderby=LastModifiedDateTime+desc"),
            format!("/v1.0/chats/{raw_chat}/messages?%24filter=LastModifiedDateTime+gt+2026-11-01T00%3a00%3a00Z&%24orderby=LastModifiedDateTime+desc"),
        ),
        (
            format!("{channel}/messages/delta?%24filter=LastModifiedDateTime+gt+2026-11-05T00%3a00%3a00Z"),
            format!("{channel}/messages/delta?%24filter=LastModifiedDateTime+gt+2026-11-05T00%3a00%3a00Z"),
        ),
        (
            format!("/v1.0/communications/callRecords?%24filter=StartDateTime{WHEN}EndDateTime+lt+2026-12-01T00%3a00%3a00Z"),
            format!("/v1.0/communications/callRecords?%24filter=StartDateTime{WHEN}EndDateTime+lt+2026-12-01T00%3a00%3a00Z"),
        ),
    ] {
        forwarded(&graph, &veil, &target, &upstream).await;
    }
}

/// The shipped variants (clear-ids, no-groups, clear-ids-no-groups) are
/// exactly what `rules/make-variants.py` derives from the default files, so
/// they cannot drift from them.
#[test]
fn shipped_variants_are_generated_from_the_default_rules() {
    let out = std::process::Command::new("python3")
        .arg("rules/make-variants.py")
        .arg("--check")
        .current_dir(repo())
        .output()
        .expect("python3 must be on PATH (scripts/install-test-tools.sh needs it too)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn psoxy_health_check_answers_with_psoxy_fields_and_statuses() {
    let (graph, veil) = start_pair("outlook-mail").await;
    let ask = |veil: &Veil| {
        client()
            .get(veil.url("/"))
            .header("X-Psoxy-Health-Check", "true")
            .send()
    };
    let resp = ask(&veil).await.unwrap();
    assert_eq!(resp.status(), 200);
    let sha = resp.headers()["x-veil-rules-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let h: Value = resp.json().await.unwrap();
    assert_eq!(h["configuredSource"], "outlook-mail", "{h}");
    assert_eq!(h["configuredHost"], "127.0.0.1", "{h}");
    assert_eq!(h["nonDefaultSalt"], true, "{h}");
    assert_eq!(h["missingConfigProperties"], serde_json::json!([]), "{h}");
    assert_eq!(h["rules"], sha.as_str(), "Psoxy's `rules` is the hash: {h}");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"), "{h}");
    assert_eq!(h["callerIp"], "127.0.0.1", "{h}");
    assert!(h["pseudonymizeAppIds"].is_null(), "{h}");
    let warnings = h["warningMessages"].as_array().expect("warningMessages");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("--allow-unauthenticated")),
        "{h}"
    );
    assert!(!h.to_string().contains(SALT) && !h.to_string().contains(KEY));
    // Misconfigured (no encryption key): 412 and the missing setting named;
    // Veil's own /healthz keeps its 503.
    let bare = VeilConfig::new("outlook-mail", &graph.url())
        .unset("VEIL_ENCRYPTION_KEY")
        .start()
        .await;
    let resp = ask(&bare).await.unwrap();
    assert_eq!(resp.status(), 412);
    let h: Value = resp.json().await.unwrap();
    assert_eq!(
        h["missingConfigProperties"],
        serde_json::json!(["VEIL_ENCRYPTION_KEY"]),
        "{h}"
    );
    let resp = client().get(bare.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(graph.count(), 0, "a health check never calls Graph");
}
