//! The sales-activity connectors through `veil serve` over TCP, with the
//! shipped rules: `outlook-contacts` (contacts without names, phones or
//! postal addresses; addresses pseudonymized, domain kept) and
//! `outlook-mail-received` (the Inbox and every folder, headers reduced to a
//! few routing header names). A recording test Graph answers from the
//! connectors' samples and proves that what Veil refuses is never
//! forwarded, and that what it allows reaches Graph re-identified.

mod support;

use std::collections::HashMap;

use serde_json::Value;
use support::*;

const PRIYA: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";

fn original(connector: &str, file: &str) -> Value {
    let path = repo()
        .join("example-api-responses")
        .join(connector)
        .join("original")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Graph answers `path` (any query) with the sample `file` of `connector`.
fn answer_with(graph: &GraphServer, path: &str, connector: &str, file: &str) {
    graph.script(path, Reply::json(200, &original(connector, file)));
}

async fn get(veil: &Veil, target: &str) -> (u16, String) {
    let resp = client().get(veil.url(target)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Raw user id → `p~` token, listing users through Veil.
async fn tokens(veil: &Veil, graph: &GraphServer, connector: &str) -> HashMap<String, String> {
    answer_with(graph, "/v1.0/users", connector, "users.json");
    let (status, text) = get(veil, "/v1.0/users?$select=id,mail,userPrincipalName&$top=8").await;
    assert_eq!(status, 200, "{text}");
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    let body: Value = serde_json::from_str(&text).unwrap();
    original(connector, "users.json")["value"]
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

/// `target` is refused with `status` and never reaches Graph.
async fn refused(veil: &Veil, graph: &GraphServer, target: &str, status: u16, needle: &str) {
    let before = graph.count();
    let (got, text) = get(veil, target).await;
    assert_eq!(got, status, "{target}: {text}");
    assert!(text.contains(needle), "{target}: {text}");
    assert_eq!(graph.count(), before, "{target} reached Graph");
}

#[tokio::test]
async fn contacts_leave_without_names_and_refusals_are_not_forwarded() {
    let graph = GraphServer::start("outlook-contacts").await;
    let veil = VeilConfig::new("outlook-contacts", &graph.url())
        .start()
        .await;
    let tokens = tokens(&veil, &graph, "outlook-contacts").await;
    let priya = &tokens[PRIYA];
    answer_with(
        &graph,
        &format!("/v1.0/users/{PRIYA}/contacts"),
        "outlook-contacts",
        "contacts.json",
    );

    let (status, text) = get(&veil, &format!("/v1.0/users/{priya}/contacts?$top=6")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{PRIYA}/contacts?$top=6"),
        "re-identified and forwarded as asked"
    );
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    for gone in [
        "Hannah",
        "+44",
        "Canary Wharf",
        "1984-06-02",
        "Procurement",
        "Hanni",
    ] {
        assert!(!text.contains(gone), "`{gone}` left Veil: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let hannah = &body["value"][0];
    assert_eq!(hannah["companyName"], "Fabrikam, Inc.");
    let addresses: Vec<&str> = hannah["emailAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses.len(), 2);
    assert!(addresses[0].starts_with("t~") && addresses[0].ends_with("@fabrikam.example"));
    assert!(addresses[1].ends_with("@outlook.example"));
    assert!(hannah["categories"][0].as_str().unwrap().starts_with("t~"));

    // The paging link carries the user as a token, and Graph gets it back raw.
    let next = body["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains(priya.as_str()), "{next}");
    let (status, _) = get(&veil, &through_veil_path(next)).await;
    assert_eq!(status, 200);
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{PRIYA}/contacts?$top=6&$skip=6")
    );

    // An incremental sync by date, in Graph's spelling, is forwarded as sent.
    let sync = "$filter=lastModifiedDateTime%20ge%202026-11-01T00:00:00Z&$orderby=lastModifiedDateTime%20desc&$select=id,companyName,emailAddresses";
    let (status, text) = get(&veil, &format!("/v1.0/users/{priya}/contacts?{sync}")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{PRIYA}/contacts?{sync}")
    );

    // Refused, and not forwarded: a name or address in $filter (its answer
    // would reveal it), properties outside the allowlist, navigation,
    // a raw id, a photo.
    let contacts = format!("/v1.0/users/{priya}/contacts");
    refused(
        &veil,
        &graph,
        &format!("{contacts}?$filter=startswith(displayName,'Han')"),
        403,
        "$filter",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("{contacts}?$select=id,displayName"),
        403,
        "`displayName`",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("{contacts}?$expand=extensions"),
        403,
        "$expand",
    )
    .await;
    let before = graph.count();
    for target in [
        format!("/v1.0/users/{PRIYA}/contacts"),
        format!("{contacts}/AAMkADBmM2E3/photo/$value"),
        format!("/v1.0/users/{priya}/contacts/delta"),
    ] {
        let (status, text) = get(&veil, &target).await;
        assert!((400..500).contains(&status), "{target}: {status} {text}");
    }
    assert_eq!(graph.count(), before, "a refused request reached Graph");
}

#[tokio::test]
async fn received_mail_keeps_routing_header_names_only() {
    let graph = GraphServer::start("outlook-mail-received").await;
    let veil = VeilConfig::new("outlook-mail-received", &graph.url())
        .start()
        .await;
    let tokens = tokens(&veil, &graph, "outlook-mail-received").await;
    let priya = &tokens[PRIYA];

    answer_with(
        &graph,
        &format!("/v1.0/users/{PRIYA}/mailFolders/Inbox/messages"),
        "outlook-mail-received",
        "inbox-messages.json",
    );
    let (status, text) = get(
        &veil,
        &format!("/v1.0/users/{priya}/mailFolders/Inbox/messages?$top=5"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    let body: Value = serde_json::from_str(&text).unwrap();
    let first = &body["value"][0];
    assert!(first["from"]["emailAddress"]["address"]
        .as_str()
        .unwrap()
        .ends_with("@fabrikam.example"));
    assert_eq!(first["receivedDateTime"], "2026-11-06T08:14:00Z");
    assert!(first.get("subject").is_none() && first.get("body").is_none());
    assert_eq!(
        body["value"][3]["@odata.type"],
        "#microsoft.graph.eventMessageRequest"
    );
    assert!(body["value"][3].get("location").is_none());

    // Headers: asked for with $select, only a few names come back, no value.
    answer_with(
        &graph,
        &format!("/v1.0/users/{PRIYA}/mailFolders('Inbox')/messages"),
        "outlook-mail-received",
        "inbox-messages-headers.json",
    );
    let q = "$select=receivedDateTime,from,internetMessageHeaders,inferenceClassification&$top=3";
    let (status, text) = get(
        &veil,
        &format!("/v1.0/users/{priya}/mailFolders('Inbox')/messages?{q}"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    let body: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<Vec<&str>> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["internetMessageHeaders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    assert_eq!(h.as_object().unwrap().len(), 1, "{h}");
                    h["name"].as_str().unwrap()
                })
                .collect()
        })
        .collect();
    assert_eq!(
        names,
        [
            vec![],
            vec!["In-Reply-To", "References"],
            vec!["List-Id", "List-Unsubscribe", "Precedence"]
        ]
    );
    assert_eq!(body["value"][2]["inferenceClassification"], "other");

    // Every folder, a date window on receivedDateTime: forwarded as sent.
    answer_with(
        &graph,
        &format!("/v1.0/users/{PRIYA}/messages"),
        "outlook-mail-received",
        "messages-window.json",
    );
    let window = "$filter=receivedDateTime%20ge%202026-11-01T00:00:00Z%20and%20receivedDateTime%20lt%202026-11-08T00:00:00Z&$orderby=receivedDateTime%20desc&$top=3";
    let (status, text) = get(&veil, &format!("/v1.0/users/{priya}/messages?{window}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(leaks(&text).is_empty(), "{:?}", leaks(&text));
    assert_eq!(
        graph.last().target,
        format!("/v1.0/users/{PRIYA}/messages?{window}")
    );

    refused(
        &veil,
        &graph,
        &format!("/v1.0/users/{priya}/messages?$filter=contains(subject,'renewal')"),
        403,
        "$filter",
    )
    .await;
    refused(
        &veil,
        &graph,
        &format!("/v1.0/users/{priya}/messages?$select=id,subject"),
        403,
        "`subject`",
    )
    .await;
    let before = graph.count();
    for target in [
        format!("/v1.0/users/{priya}/mailFolders/Drafts/messages"),
        format!("/v1.0/users/{priya}/messages/AAMkADBmM2E3/attachments"),
        format!("/v1.0/users/{PRIYA}/messages"),
    ] {
        let (status, text) = get(&veil, &target).await;
        assert!((400..500).contains(&status), "{target}: {status} {text}");
    }
    assert_eq!(graph.count(), before, "a refused request reached Graph");
}

#[tokio::test]
async fn outlook_mail_still_refuses_the_inbox() {
    let graph = GraphServer::start("outlook-mail").await;
    let veil = VeilConfig::new("outlook-mail", &graph.url()).start().await;
    let tokens = user_tokens(&veil, "outlook-mail").await;
    let before = graph.count();
    for target in [
        format!("/v1.0/users/{}/mailFolders/Inbox/messages", tokens[PRIYA]),
        format!("/v1.0/users/{}/messages", tokens[PRIYA]),
    ] {
        let (status, text) = get(&veil, &target).await;
        assert!((400..500).contains(&status), "{target}: {status} {text}");
    }
    assert_eq!(graph.count(), before, "a refused request reached Graph");
}

/// A sanitized Graph paging link as a path and query for Veil.
fn through_veil_path(link: &str) -> String {
    link.strip_prefix("https://graph.microsoft.com")
        .unwrap_or_else(|| panic!("not a Graph link: {link}"))
        .to_string()
}
