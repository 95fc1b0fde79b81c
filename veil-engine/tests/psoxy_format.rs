//! Psoxy's rule-file format, every construct of it, loaded as it is and
//! behaving as in Psoxy (fixture: `tests/fixtures/psoxy-all-constructs.yaml`).

mod common;

use common::*;
use serde_json::{json, Value};
use veil_engine::{split_url, PolicyRequest, RequestSide, RuleSet, Scheme};

fn rules() -> RuleSet {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/psoxy-all-constructs.yaml");
    RuleSet::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn check(rules: &RuleSet, target: &str, side: RequestSide) -> Result<usize, String> {
    let (path, query) = split_url(target);
    rules
        .match_request(
            PolicyRequest {
                method: "GET",
                path: &path,
                query: query.as_deref(),
            },
            side,
        )
        .map(|a| a.endpoint.index)
        .map_err(|r| r.to_string())
}

fn sanitize(rules: &RuleSet, target: &str, doc: Value) -> Value {
    let index = check(rules, target, RequestSide::Upstream).unwrap();
    let mut doc = doc;
    rules.endpoints[index]
        .sanitize(&mut doc, pseudonymizer(Scheme::Hmac))
        .unwrap();
    doc
}

#[test]
fn psoxy_files_load_with_every_construct() {
    let r = rules();
    assert_eq!(r.endpoints.len(), 3);
    assert!(!r.default_deny, "Psoxy's files keep Psoxy's meaning");
    assert_eq!(r.endpoints[1].allowed_headers, ["prefer"]);
}

#[test]
fn parameters_inside_a_segment_are_matched_and_checked() {
    let r = rules();
    let ok = "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=2026-11-01,toDateTime=2026-11-02T00:00:00Z)?$skip=10";
    assert_eq!(check(&r, ok, RequestSide::Client), Ok(0));
    for (bad, why) in [
        (
            "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=yesterday,toDateTime=2026-11-02)",
            "startDate",
        ),
        (
            "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=2026-11-01,toDateTime=soon)",
            "endDate",
        ),
        (
            "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=2026-11-01,toDateTime=2026-11-02)?$skip=x",
            "integer",
        ),
        (
            "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=2026-11-01,toDateTime=2026-11-02)?$top=1",
            "not allowed",
        ),
    ] {
        let err = check(&r, bad, RequestSide::Client).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn optional_segments_required_query_and_enums() {
    let r = rules();
    let user = "p~AbCdEfGhIjKlMnOpQrStUv";
    for ok in [
        format!("/v1.0/users/{user}/calendar/events?startDateTime=2026-11-01"),
        format!("/v1.0/users/{user}/calendar/events/AAMkAD?startDateTime=2026-11-01&$orderby=start/dateTime"),
    ] {
        assert_eq!(check(&r, &ok, RequestSide::Client), Ok(1), "{ok}");
    }
    for (bad, why) in [
        (format!("/v1.0/users/{user}/calendar/events"), "is required"),
        (
            format!("/v1.0/users/{user}/calendar/events?startDateTime=x&$orderby=subject"),
            "must be one of",
        ),
        (
            "/v1.0/users/48d31887-5fad-4d73-a9f5-3c356e68a038/calendar/events?startDateTime=x"
                .to_string(),
            "reversible pseudonym",
        ),
    ] {
        let err = check(&r, &bad, RequestSide::Client).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn shared_definitions_one_of_and_const_filter_responses() {
    let r = rules();
    let out = sanitize(
        &r,
        "/v1.0/chats/19:abc@thread.v2/messages?$top=2",
        json!({"value": [
            {"id": "1", "body": "secret", "eventDetail": {
                "@odata.type": "#microsoft.graph.chatRenamedEventMessageDetail",
                "chatId": "19:abc@thread.v2", "chatDisplayName": "Ann's birthday"}},
            {"id": "2", "eventDetail": {
                "@odata.type": "#microsoft.graph.callEndedEventMessageDetail",
                "callDuration": "PT1M", "chatId": "not for this kind"}},
            {"id": "3", "eventDetail": {
                "@odata.type": "#microsoft.graph.teamRenamedEventMessageDetail",
                "teamDisplayName": "Project Falcon"}}
        ]}),
    );
    assert_eq!(
        out,
        json!({"value": [
            {"id": "1", "eventDetail": {
                "@odata.type": "#microsoft.graph.chatRenamedEventMessageDetail",
                "chatId": "19:abc@thread.v2"}},
            {"id": "2", "eventDetail": {
                "@odata.type": "#microsoft.graph.callEndedEventMessageDetail",
                "callDuration": "PT1M"}},
            {"id": "3", "eventDetail": null}
        ]})
    );
    let out = sanitize(
        &r,
        "/v1.0/communications/callRecords/getDirectRoutingCalls(fromDateTime=2026-11-01,toDateTime=2026-11-02)",
        json!({"value": [{"id": "c1", "userPrincipalName": "ann@contoso.example",
            "callerNumber": "+1 425 555 0101", "duration": 60}]}),
    );
    let call = &out["value"][0];
    assert!(call.get("callerNumber").is_none(), "{out}");
    assert!(
        call["userPrincipalName"]
            .as_str()
            .unwrap()
            .starts_with("t~"),
        "{out}"
    );
}

#[test]
fn phrases_keep_the_text_as_found() {
    let r = rules();
    let user = "48d31887-5fad-4d73-a9f5-3c356e68a038";
    let out = sanitize(
        &r,
        &format!("/v1.0/users/{user}/calendar/events?startDateTime=x"),
        json!({"value": [
            {"id": "e1", "subject": "Weekly Review: budget with Ann", "body": {"content": "x"}},
            {"id": "e2", "subject": "1:1 Ann / Raj"},
            {"id": "e3", "subject": "   "},
            {"id": "e4", "subject": "REVIEW review WEEKLY"}
        ]}),
    );
    let subjects: Vec<&Value> = out["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["subject"])
        .collect();
    assert_eq!(
        subjects,
        [
            &json!("Weekly,Review"),
            &json!("1:1"),
            &json!("   "),
            &json!("WEEKLY,REVIEW")
        ]
    );
    assert!(out["value"][0].get("body").is_none());
}

#[test]
fn unsafe_schema_constructs_are_refused() {
    for (text, why) in [
        (
            "endpoints:\n  - pathTemplate: /x\n    responseSchema: {type: object, additionalProperties: true}\n",
            "additionalProperties",
        ),
        (
            "endpoints:\n  - pathTemplate: /x/{a}\n    pathParameterSchemas: {a: {type: integer, format: reversible-pseudonym}}\n",
            "reversible-pseudonym",
        ),
        ("endpoints:\n  - pathTemplate: /x/{a}{b}\n", "nothing between"),
    ] {
        let err = RuleSet::from_str("r.yaml", text).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
    }
}
