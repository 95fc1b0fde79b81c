//! Secretless Graph tokens end to end: the real `veil` binary over real TCP,
//! getting its Graph token by workload identity federation from a strict
//! test Entra ID (`tests/support/entra.rs`), with host tokens from a test
//! GCP metadata server or a projected token file, in front of a test Graph
//! server that accepts only the access tokens that Entra issued.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::entra::{self, FederatedCredential, TestEntra};
use support::*;

const CONNECTOR: &str = "entra-id";

struct Setup {
    entra: TestEntra,
    graph: GraphServer,
}

async fn setup() -> Setup {
    let entra = TestEntra::start().await;
    let graph = GraphServer::start(CONNECTOR).await;
    graph.authorize_with(entra.graph_authorizer());
    Setup { entra, graph }
}

impl Setup {
    /// Veil with the `provider`, the test Entra, and no static token.
    fn veil(&self, provider: &str) -> VeilConfig {
        VeilConfig::new(CONNECTOR, &self.graph.url())
            .unset("VEIL_UPSTREAM_TOKEN")
            .env("VEIL_TOKEN_PROVIDER", provider)
            .env("VEIL_TENANT_ID", entra::TENANT_ID)
            .env("VEIL_CLIENT_ID", entra::CLIENT_ID)
            .env("VEIL_ENTRA_AUTHORITY", &self.entra.authority())
            .env("GCE_METADATA_HOST", &self.entra.metadata_host())
            .env("RUST_LOG", "info")
    }
}

fn users_target() -> String {
    sample(CONNECTOR, "users.json").target().to_string()
}

async fn get(veil: &Veil, target: &str) -> (u16, Value) {
    let resp = client().get(veil.url(target)).send().await.expect("GET");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}));
    (status, body)
}

async fn health(veil: &Veil) -> Value {
    get(veil, "/healthz").await.1
}

/// No host token and no access token ever shows in what Veil writes.
fn assert_no_tokens(entra: &TestEntra, veil: &Veil, also: &[&str]) {
    let log = veil.stderr();
    let mut texts: Vec<&str> = vec![&log];
    texts.extend_from_slice(also);
    for t in entra.host_tokens() {
        // The signature part alone identifies the token.
        let sig = t.rsplit('.').next().unwrap();
        for text in &texts {
            assert!(!text.contains(sig), "a host token leaked:\n{text}");
        }
    }
    for text in &texts {
        assert!(
            !text.contains("eyJ"),
            "something JWT-shaped leaked:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_provider_end_to_end_one_exchange_for_many_requests() {
    let s = setup().await;
    let veil = s.veil("gcp").start().await;
    let before = health(&veil).await;
    assert_eq!(before["graphToken"]["provider"], "gcp", "{before}");
    assert_eq!(before["graphToken"]["cached"], false, "{before}");
    assert_eq!(before["graphToken"]["developmentOnly"], false, "{before}");

    // 20 concurrent requests on a cold cache: one metadata fetch, one exchange.
    let target = users_target();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let url = veil.url(&target);
            tokio::spawn(async move { client().get(url).send().await.unwrap().status() })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200, "{}", veil.stderr());
    }
    assert_eq!(s.entra.violations(), Vec::<String>::new());
    assert_eq!(s.entra.exchanges(), 1);
    assert_eq!(s.entra.metadata_fetches(), 1);
    assert_eq!(s.entra.metadata_refused(), 0);
    let assertion = &s.entra.assertions()[0];
    assert_eq!(assertion["sub"], entra::GCP_SUBJECT);
    assert_eq!(assertion["aud"], entra::AUDIENCE);
    assert_eq!(assertion["iss"], s.entra.issuer());
    let auth = s.graph.last().header("authorization").unwrap().to_string();
    assert!(auth.starts_with("Bearer eyJ"), "Graph got the Entra token");

    let after = health(&veil).await;
    let t = &after["graphToken"];
    assert_eq!(t["cached"], true, "{after}");
    let left = t["expiresInSeconds"].as_u64().unwrap();
    assert!((3500..=3599).contains(&left), "{after}");
    assert!(t["expiresAt"].as_str().unwrap().ends_with('Z'), "{after}");
    assert!(t.get("lastError").is_none(), "{after}");

    // Graph rejects the token (401): Veil drops it, exchanges once, retries once.
    s.entra.revoke_issued();
    let graph_before = s.graph.count();
    let (status, _) = get(&veil, &target).await;
    assert_eq!(status, 200);
    assert_eq!(s.entra.exchanges(), 2);
    assert_eq!(s.graph.count(), graph_before + 2, "one retry after the 401");
    let after_text = after.to_string();
    assert_no_tokens(&s.entra, &veil, &[&after_text]);
}

#[tokio::test]
async fn the_metadata_server_refuses_requests_without_the_flavor_header() {
    let s = setup().await;
    let resp = client()
        .get(format!(
            "http://{}/computeMetadata/v1/instance/service-accounts/default/identity?audience=x",
            s.entra.metadata_host()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(s.entra.metadata_refused(), 1);
    assert_eq!(s.entra.metadata_fetches(), 0);
}

#[tokio::test]
async fn file_provider_end_to_end_rereads_the_file_at_each_refresh() {
    let s = setup().await;
    let subject = "system:serviceaccount:veil:veil-outlook";
    s.entra.set_credential(FederatedCredential {
        issuer: s.entra.issuer(),
        subject: subject.into(),
        audience: entra::AUDIENCE.into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let write = |jti: &str| {
        let t = s
            .entra
            .host_token(subject, entra::AUDIENCE, json!({ "jti": jti }));
        // Written the way kubelet does: a new file renamed into place.
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, t).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write("one");
    let veil = s
        .veil("file")
        .env("VEIL_FEDERATED_TOKEN_FILE", path.to_str().unwrap())
        .start()
        .await;
    let target = users_target();
    assert_eq!(get(&veil, &target).await.0, 200, "{}", veil.stderr());
    // The file changes; the cached Graph token is still used.
    write("two");
    assert_eq!(get(&veil, &target).await.0, 200);
    assert_eq!(s.entra.exchanges(), 1);
    // Graph rejects it: the refresh reads the new file.
    s.entra.revoke_issued();
    assert_eq!(get(&veil, &target).await.0, 200);
    // Short-lived Graph tokens: renewed ahead of expiry, from the file again.
    s.entra.set_expires_in(2);
    s.entra.revoke_issued();
    write("three");
    assert_eq!(get(&veil, &target).await.0, 200);
    write("four");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(&veil, &target).await.0, 200);
    let jtis: Vec<Value> = s
        .entra
        .assertions()
        .iter()
        .map(|a| a["jti"].clone())
        .collect();
    assert_eq!(
        jtis,
        [json!("one"), json!("two"), json!("three"), json!("four")]
    );
    assert_eq!(s.entra.violations(), Vec::<String>::new());
    assert_eq!(s.entra.metadata_fetches(), 0);
    assert_no_tokens(&s.entra, &veil, &[]);
}

#[tokio::test]
async fn azure_federated_token_file_is_the_fallback() {
    let s = setup().await;
    let subject = "system:serviceaccount:veil:veil";
    s.entra.set_credential(FederatedCredential {
        issuer: s.entra.issuer(),
        subject: subject.into(),
        audience: entra::AUDIENCE.into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    std::fs::write(
        &path,
        s.entra.host_token(subject, entra::AUDIENCE, json!({})),
    )
    .unwrap();
    let veil = s
        .veil("file")
        .env("AZURE_FEDERATED_TOKEN_FILE", path.to_str().unwrap())
        .start()
        .await;
    assert_eq!(
        get(&veil, &users_target()).await.0,
        200,
        "{}",
        veil.stderr()
    );
    assert_eq!(s.entra.exchanges(), 1);
}

/// One misconfiguration: what Veil is started with, the AADSTS code
/// expected, and what the log and health check must say.
struct Case {
    name: &'static str,
    code: &'static str,
    fix: &'static [&'static str],
}

async fn assert_refusal(s: &Setup, veil: Veil, case: &Case, sub: &str, aud: &str) {
    let target = users_target();
    let (status, body) = get(&veil, &target).await;
    assert_eq!(status, 502, "{}: {body}", case.name);
    assert_error_shape(&body, "upstream_token_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(case.code), "{}: {message}", case.name);
    assert!(
        !message.contains(sub),
        "{}: the caller does not see the host identity: {message}",
        case.name
    );
    // A second request inside the failure window does not call Entra again.
    let exchanges = s.entra.exchanges();
    assert_eq!(get(&veil, &target).await.0, 502);
    assert_eq!(s.entra.exchanges(), exchanges, "{}", case.name);
    assert_eq!(s.graph.count(), 0, "{}: Graph was called", case.name);

    let h = health(&veil).await;
    let last = h["graphToken"]["lastError"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no lastError in {h}", case.name));
    assert!(h["graphToken"]["lastErrorAt"].is_string(), "{h}");
    let log = veil.stderr();
    for text in [last, log.as_str()] {
        assert!(text.contains(case.code), "{}: {text}", case.name);
        for fix in case.fix {
            assert!(
                text.contains(fix),
                "{}: `{fix}` missing in {text}",
                case.name
            );
        }
        assert!(
            text.contains(&format!("issuer `{}`", s.entra.issuer())),
            "{}: {text}",
            case.name
        );
        assert!(
            text.contains(&format!("subject `{sub}`")),
            "{}: {text}",
            case.name
        );
        assert!(
            text.contains(&format!("audience `{aud}`")),
            "{}: {text}",
            case.name
        );
    }
    let h_text = h.to_string();
    assert_no_tokens(&s.entra, &veil, &[&h_text, message]);
}

#[tokio::test]
async fn each_entra_refusal_names_the_fix_with_iss_sub_aud() {
    // The Object ID instead of the Application (client) ID.
    let s = setup().await;
    let veil = s
        .veil("gcp")
        .env("VEIL_CLIENT_ID", entra::OBJECT_ID)
        .start()
        .await;
    let case = Case {
        name: "object id as client id",
        code: "AADSTS700016",
        fix: &[
            "Application (client) ID",
            "not its Object ID",
            "VEIL_CLIENT_ID",
        ],
    };
    assert_refusal(&s, veil, &case, entra::GCP_SUBJECT, entra::AUDIENCE).await;

    // The federated credential names another subject.
    let s = setup().await;
    s.entra.set_credential(FederatedCredential {
        subject: "117230000000000000999".into(),
        ..s.entra.credential()
    });
    let veil = s.veil("gcp").start().await;
    let case = Case {
        name: "subject mismatch",
        code: "AADSTS700213",
        fix: &[
            "Federated credentials",
            "exactly this issuer, subject and audience",
        ],
    };
    assert_refusal(&s, veil, &case, entra::GCP_SUBJECT, entra::AUDIENCE).await;

    // Veil asks the metadata server for another audience.
    let s = setup().await;
    let veil = s
        .veil("gcp")
        .env("VEIL_GCP_AUDIENCE", "api://veil-other")
        .start()
        .await;
    let case = Case {
        name: "audience mismatch",
        code: "AADSTS700212",
        fix: &["Federated credentials"],
    };
    assert_refusal(&s, veil, &case, entra::GCP_SUBJECT, "api://veil-other").await;

    // The credential trusts another issuer.
    let s = setup().await;
    s.entra.set_credential(FederatedCredential {
        issuer: "https://accounts.google.com".into(),
        ..s.entra.credential()
    });
    let veil = s.veil("gcp").start().await;
    let case = Case {
        name: "issuer mismatch",
        code: "AADSTS700211",
        fix: &["Federated credentials"],
    };
    assert_refusal(&s, veil, &case, entra::GCP_SUBJECT, entra::AUDIENCE).await;

    // Another tenant.
    let s = setup().await;
    let veil = s
        .veil("gcp")
        .env("VEIL_TENANT_ID", "00000000-1111-4222-8333-444444444444")
        .start()
        .await;
    let case = Case {
        name: "unknown tenant",
        code: "AADSTS90002",
        fix: &["VEIL_TENANT_ID", "Directory (tenant) ID"],
    };
    assert_refusal(&s, veil, &case, entra::GCP_SUBJECT, entra::AUDIENCE).await;
}

#[tokio::test]
async fn outside_gcp_the_metadata_server_is_unreachable() {
    let s = setup().await;
    let veil = s
        .veil("gcp")
        .env("GCE_METADATA_HOST", &format!("127.0.0.1:{}", free_port()))
        .start()
        .await;
    let (status, body) = get(&veil, &users_target()).await;
    // Unreachable is temporary as far as Veil can tell: 503, retry later.
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("metadata server unreachable: not running on GCP (Cloud Run, GCE, GKE)?"),
        "{message}"
    );
    let h = health(&veil).await;
    assert!(
        h["graphToken"]["lastError"]
            .as_str()
            .unwrap()
            .contains("metadata server unreachable"),
        "{h}"
    );
    assert_eq!(s.entra.exchanges(), 0);
}

#[tokio::test]
async fn missing_admin_consent_evicts_the_cached_token_without_looping() {
    let s = setup().await;
    s.entra.set_consent(false);
    let veil = s.veil("gcp").start().await;
    let target = users_target();
    let (status, body) = get(&veil, &target).await;
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(
        body["error"]["code"], "Authorization_RequestDenied",
        "{body}"
    );
    assert!(message.contains("admin consent"), "{message}");
    assert!(
        message.contains("after Veil's cached Graph token was issued"),
        "{message}"
    );
    assert_eq!(s.graph.count(), 1, "no retry loop on a 403");
    assert!(veil.stderr().contains("admin consent"), "{}", veil.stderr());
    // The administrator grants consent: the next request gets a new token.
    s.entra.set_consent(true);
    assert_eq!(get(&veil, &target).await.0, 200, "{}", veil.stderr());
    assert_eq!(s.entra.exchanges(), 2);
    assert_eq!(s.graph.count(), 2);

    // Consent still missing: evictions are rate-limited, so requests do
    // not each cost an exchange.
    let s = setup().await;
    s.entra.set_consent(false);
    let veil = s.veil("gcp").start().await;
    for _ in 0..5 {
        assert_eq!(get(&veil, &target).await.0, 403);
    }
    assert_eq!(s.entra.exchanges(), 2, "one eviction a minute at most");
    assert_eq!(s.graph.count(), 5);
}

#[tokio::test]
async fn the_static_provider_is_flagged_development_only() {
    let (_graph, veil) = start_pair(CONNECTOR).await;
    let h = health(&veil).await;
    assert_eq!(h["tokenProvider"], "static");
    assert_eq!(h["graphToken"]["developmentOnly"], true, "{h}");
    assert!(
        h["graphToken"]["warning"]
            .as_str()
            .unwrap()
            .starts_with("DEVELOPMENT ONLY"),
        "{h}"
    );
    assert!(
        h["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("DEVELOPMENT ONLY")),
        "{h}"
    );
    assert!(h["graphToken"].get("cached").is_none(), "{h}");
}

/// Runs `veil serve` expecting it to refuse to start; returns its stderr.
fn refused_start(config: VeilConfig) -> String {
    let out = config
        .command(free_port())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run veil");
    assert!(!out.status.success(), "veil started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn missing_configuration_is_refused_at_start_with_the_choices() {
    let graph = GraphServer::start(CONNECTOR).await;
    let base = VeilConfig::new(CONNECTOR, &graph.url()).unset("VEIL_UPSTREAM_TOKEN");
    let err = refused_start(base.clone());
    for needed in [
        "VEIL_TOKEN_PROVIDER",
        "aws-sts",
        "aws-cognito",
        "gcp",
        "file",
        "VEIL_FEDERATED_TOKEN_FILE",
        "VEIL_TENANT_ID",
        "VEIL_CLIENT_ID",
        "VEIL_UPSTREAM_TOKEN",
    ] {
        assert!(err.contains(needed), "`{needed}` missing: {err}");
    }
    let err = refused_start(base.clone().env("VEIL_TOKEN_PROVIDER", "gcp"));
    assert!(err.contains("VEIL_TENANT_ID and VEIL_CLIENT_ID"), "{err}");
    let err = refused_start(
        base.clone()
            .env("VEIL_TOKEN_PROVIDER", "gcp")
            .env("VEIL_TENANT_ID", entra::TENANT_ID)
            .env("VEIL_CLIENT_ID", "my-app"),
    );
    assert!(err.contains("Application (client) ID"), "{err}");
    let err = refused_start(base.clone().env("VEIL_TOKEN_PROVIDER", "azure"));
    assert!(err.contains("`azure` is not a token provider"), "{err}");
    let err = refused_start(
        base.env("VEIL_TOKEN_PROVIDER", "file")
            .env("VEIL_TENANT_ID", entra::TENANT_ID)
            .env("VEIL_CLIENT_ID", entra::CLIENT_ID),
    );
    assert!(err.contains("VEIL_FEDERATED_TOKEN_FILE"), "{err}");
}
