//! Every transform, through rule files, as the sanitizer applies them.

mod common;

use common::*;
use serde_json::json;
use veil_engine::{PseudonymizeOptions, Scheme};

#[test]
fn redact_removes_keys_and_empties_arrays() {
    let r = rules("      - !<redact>\n        jsonPaths: ['$..name', '$..to[*]']\n");
    let (out, rep) = run(
        &r,
        json!({"a":{"name":"Ann","k":1},"to":[{"x":1},{"x":2}],"name":"top"}),
    )
    .unwrap();
    assert_eq!(out, json!({"a":{"k":1},"to":[]}));
    assert_eq!(rep.changes, [4]);
}

#[test]
fn redact_with_filter_removes_only_matching_elements() {
    let r = rules("      - !<redact>\n        jsonPaths: [\"$..value[?(@.type == 'secret')]\"]\n");
    let (out, _) = run(&r, json!({"value":[{"type":"secret"},{"type":"ok"}]})).unwrap();
    assert_eq!(out, json!({"value":[{"type":"ok"}]}));
}

#[test]
fn redact_regex_matches_and_non_strings() {
    let r = rules("      - !<redactRegexMatches>\n        jsonPaths: ['$..joinUrl', '$..n']\n        redactions: ['[?&]pwd=[^&]*']\n");
    let (out, _) = run(
        &r,
        json!({"joinUrl":"https://zoom.us/j/123?pwd=SeCrEt&from=addon","n":5}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"joinUrl":"https://zoom.us/j/123&from=addon","n":null})
    );
}

#[test]
fn redact_except_phrases() {
    let r = rules("      - !<redactExceptPhrases>\n        jsonPaths: ['$..subject']\n        allowedPhrases: ['1:1', 'weekly', 'sync', 'out of office']\n");
    let (out, _) = run(&r, json!({"a":[{"subject":"Weekly sync - Platform"},{"subject":"Q3 budget"},{"subject":null}]})).unwrap();
    assert_eq!(
        out,
        json!({"a":[{"subject":"Weekly,sync"},{"subject":""},{"subject":null}]})
    );
}

#[test]
fn redact_except_substrings_keeps_longest() {
    let r = rules("      - !<redactExceptSubstringsMatchingRegexes>\n        jsonPaths: ['$..content']\n        exceptions: ['https://[a-z0-9.]*zoom\\.us/j/[0-9]+', 'https://teams\\.microsoft\\.com/l/meetup-join/[^\"\\s<]+']\n");
    let (out, _) = run(&r, json!({"body":{"content":"<p>Dear Priya</p> <a href=\"https://us02web.zoom.us/j/8123\">join</a>"}})).unwrap();
    assert_eq!(
        out,
        json!({"body":{"content":"https://us02web.zoom.us/j/8123"}})
    );
}

#[test]
fn filter_token_by_regex() {
    let r = rules("      - !<filterTokenByRegex>\n        jsonPaths: ['$..t']\n        filters: ['#[a-z]+']\n");
    let (out, _) = run(&r, json!({"t":"hello #team and #sync","u":{"t":"nothing"}})).unwrap();
    assert_eq!(out, json!({"t":"#team #sync","u":{"t":null}}));
}

#[test]
fn pseudonymize_strings_numbers_blank_and_null() {
    let r = rules("      - !<pseudonymize>\n        jsonPaths: ['$..id']\n");
    let (out, _) = run(
        &r,
        json!({"a":{"id":"abc"},"b":{"id":42},"c":{"id":"  "},"d":{"id":null}}),
    )
    .unwrap();
    let p = pseudonymizer(Scheme::Hmac);
    assert_eq!(
        out["a"]["id"],
        json!(p
            .pseudonymize("abc", PseudonymizeOptions::default())
            .unwrap())
    );
    assert_eq!(
        out["b"]["id"],
        json!(p
            .pseudonymize("42", PseudonymizeOptions::default())
            .unwrap())
    );
    assert!(out["a"]["id"].as_str().unwrap().starts_with("t~"));
    assert_eq!(out["c"]["id"], json!(null));
    assert_eq!(out["d"]["id"], json!(null));
}

#[test]
fn pseudonymize_an_object_fails_closed_naming_the_path_not_the_value() {
    let r = rules("      - !<pseudonymize>\n        jsonPaths: ['$..from']\n");
    let err = run(
        &r,
        json!({"value":[{"from":{"emailAddress":{"address":"ann@contoso.example"}}}]}),
    )
    .unwrap_err();
    assert!(err.contains("transform #0 (pseudonymize)"), "{err}");
    assert!(err.contains("$.value[0].from"), "{err}");
    assert!(err.contains("endpoint '/x'"), "{err}");
    assert!(!err.contains("ann@contoso"), "{err}");
}

#[test]
fn pseudonymize_only_if_regex() {
    let r =
        rules("      - !<pseudonymize>\n        jsonPaths: ['$..v']\n        onlyIfRegex: '@'\n");
    let (out, _) = run(&r, json!({"a":{"v":"x@y.example"},"b":{"v":"plain"}})).unwrap();
    assert!(out["a"]["v"].as_str().unwrap().starts_with("t~"));
    assert_eq!(out["b"]["v"], json!("plain"));
}

#[test]
fn pseudonymize_json_encoding_with_original() {
    let r = rules("      - !<pseudonymize>\n        jsonPaths: ['$..mail']\n        encoding: JSON\n        includeOriginal: true\n");
    let (out, _) = run(&r, json!({"mail":"Group@Contoso.example"})).unwrap();
    let inner: serde_json::Value = serde_json::from_str(out["mail"].as_str().unwrap()).unwrap();
    assert_eq!(inner["domain"], json!("contoso.example"));
    assert_eq!(inner["original"], json!("Group@Contoso.example"));
}

#[test]
fn pseudonymize_regex_matches_keeps_prefix() {
    let r = rules("      - !<pseudonymizeRegexMatches>\n        jsonPaths: ['$..proxyAddresses[*]']\n        regex: '^(?i:smtp):(.*)$'\n");
    let (out, _) = run(&r, json!({"proxyAddresses":["SMTP:Ann@contoso.example","smtp:ann@old.example","x500:/o=Contoso"]})).unwrap();
    let a = out["proxyAddresses"].as_array().unwrap();
    assert!(
        a[0].as_str().unwrap().starts_with("SMTP:t~")
            && a[0].as_str().unwrap().ends_with("@contoso.example")
    );
    assert!(a[1].as_str().unwrap().starts_with("smtp:t~"));
    assert_eq!(a[2], json!(null));
    // The same person's address gives the same pseudonym whatever its case.
    assert_eq!(
        &a[0].as_str().unwrap()[5..49],
        &pseudonymizer(Scheme::Hmac)
            .pseudonymize("ann@contoso.example", PseudonymizeOptions::default())
            .unwrap()[..44]
    );
}

#[test]
fn pseudonymize_email_header_drops_display_names() {
    let r = rules("      - !<pseudonymizeEmailHeader>\n        jsonPaths: ['$..value']\n");
    let (out, _) = run(
        &r,
        json!({"h":{"value":"\"Raman, Priya\" <Priya@Contoso.example>, bob@fabrikam.example"}}),
    )
    .unwrap();
    let v = out["h"]["value"].as_str().unwrap();
    assert!(
        !v.contains("Priya") && !v.contains("Raman") && !v.contains("bob"),
        "{v}"
    );
    assert_eq!(v.matches("t~").count(), 2, "{v}");
}

#[test]
fn tokenize_round_trips_and_replaces_group_in_links() {
    let r = rules("      - !<tokenize>\n        jsonPaths: ['$..id']\n      - !<tokenize>\n        jsonPaths: [\"$.['@odata.nextLink']\"]\n        regex: '^https://graph\\.microsoft\\.com/v1\\.0/users/([^/?]+)/'\n");
    let id = "48d31887-5fad-4d73-a9f5-3c356e68a038";
    let doc = json!({"value":[{"id": id}],"@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users/{id}/messages?$skip=10")});
    let (out, rep) = run(&r, doc).unwrap();
    let token = out["value"][0]["id"].as_str().unwrap().to_string();
    assert!(token.starts_with("p~"));
    assert_eq!(
        out["@odata.nextLink"],
        json!(format!(
            "https://graph.microsoft.com/v1.0/users/{token}/messages?$skip=10"
        ))
    );
    assert_eq!(pseudonymizer(Scheme::Hmac).decrypt(&token).unwrap(), id);
    assert_eq!(rep.changes, [1, 1]);
}

#[test]
fn tokenize_without_match_gives_null() {
    let r = rules(
        "      - !<tokenize>\n        jsonPaths: ['$.link']\n        regex: '/users/([^/]+)/'\n",
    );
    let (out, _) = run(&r, json!({"link":"https://elsewhere.example/x"})).unwrap();
    assert_eq!(out, json!({"link":null}));
}

#[test]
fn apply_only_when_gates_a_transform() {
    let r = rules("      - !<redact>\n        jsonPaths: ['$..secret']\n        applyOnlyWhen: \"$..[?(@.kind == 'x')]\"\n");
    let (out, rep) = run(&r, json!({"a":{"kind":"y"},"secret":1})).unwrap();
    assert_eq!(out, json!({"a":{"kind":"y"},"secret":1}));
    assert_eq!(rep.active, [false]);
    let (out, _) = run(&r, json!({"a":{"kind":"x"},"secret":1})).unwrap();
    assert_eq!(out, json!({"a":{"kind":"x"}}));
}

#[test]
fn transforms_apply_in_rule_order_at_one_node() {
    // pseudonymize then redact the same key: gone; the other order would also end gone.
    let r = rules("      - !<pseudonymize>\n        jsonPaths: ['$..a']\n      - !<redactRegexMatches>\n        jsonPaths: ['$..a']\n        redactions: ['^t~']\n");
    let (out, rep) = run(&r, json!({"a":"x"})).unwrap();
    assert!(!out["a"].as_str().unwrap().starts_with("t~"));
    assert_eq!(rep.changes, [1, 1]);
}

#[test]
fn response_schema_filters_before_transforms() {
    let src = "endpoints:\n  - pathTemplate: /x\n    responseSchema:\n      type: object\n      properties:\n        value:\n          type: array\n          items:\n            type: object\n            properties:\n              id: {type: string}\n              mail: {type: string}\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..mail']\n";
    let r = veil_engine::RuleSet::from_str("s.yaml", src).unwrap();
    let (out, rep) = run(
        &r,
        json!({"value":[{"id":"1","mail":"a@b.example","displayName":"Ann"}],"@odata.context":"x"}),
    )
    .unwrap();
    assert_eq!(out["value"][0].as_object().unwrap().len(), 2);
    assert!(out["value"][0]["mail"].as_str().unwrap().starts_with("t~"));
    assert_eq!(rep.schema_changes, 2);
}

#[test]
fn default_deny_screens_what_reducing_transforms_keep() {
    let text = |default_deny: &str| {
        format!(
            "{default_deny}endpoints:\n  - pathTemplate: /x\n    responseSchema: {{type: object, properties: {{subject: {{type: string}}, joinUrl: {{type: string}}}}}}\n    transforms:\n      - !<redactExceptPhrases>\n        jsonPaths: ['$.subject']\n        allowedPhrases: ['weekly', 'ann@contoso.example', '+1 425 555 0101']\n      - !<redactRegexMatches>\n        jsonPaths: ['$.joinUrl']\n        redactions: ['[?&]pwd=[^&]*']\n"
        )
    };
    let doc = json!({
        "subject": "Weekly with ann@contoso.example, +1 425 555 0101",
        "joinUrl": "https://teams.microsoft.com/meet/1234?p=PaSsCoDe"
    });
    // Psoxy's meaning: the phrases are kept as found.
    let plain = veil_engine::RuleSet::from_str("r.yaml", &text("")).unwrap();
    let (out, _) = run(&plain, doc.clone()).unwrap();
    assert!(
        out["subject"]
            .as_str()
            .unwrap()
            .contains("ann@contoso.example"),
        "{out}"
    );
    assert!(
        out["joinUrl"].as_str().unwrap().contains("p=PaSsCoDe"),
        "{out}"
    );
    // defaultDeny: the detectors cut addresses, phone numbers and URL credentials.
    let deny = veil_engine::RuleSet::from_str("r.yaml", &text("defaultDeny: true\n")).unwrap();
    let (out, rep) = run(&deny, doc).unwrap();
    let s = out.to_string();
    assert!(
        !s.contains("ann@") && !s.contains("555") && !s.contains("PaSsCoDe"),
        "{s}"
    );
    assert_eq!(out["joinUrl"], "https://teams.microsoft.com/meet/1234");
    assert_eq!(rep.changes, [1, 1]);
}
