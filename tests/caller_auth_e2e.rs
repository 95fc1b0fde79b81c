//! Caller authentication end to end: `veil serve` with an OIDC issuer
//! (a local JWKS server with test RSA keys), called with signed, expired,
//! forged and otherwise wrong tokens. Every refusal must leave the
//! recording Graph server untouched.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;
use veil_test_support::jwt::{now, sign_rs256 as sign, with};
use veil_test_support::keys::{der, jwk, jwks, RSA1_PEM, RSA1_PUBLIC_PEM, RSA2_PEM};
use veil_test_support::server::{Reply, Routes, TestServer};

const AUDIENCE: &str = "veil-test";
const SUBJECT: &str = "vendor-sa";
const KID: &str = "rsa-1";

// ---- The issuer's JWKS ----

/// Serves `keys` at `/jwks` (cached for an hour).
async fn jwks_server(keys: Value) -> TestServer {
    TestServer::start(Routes::new().get("/jwks", move |_| {
        Reply::json(200, &keys).header("cache-control", "public, max-age=3600")
    }))
    .await
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

// ---- Veil with caller authentication ----

struct Setup {
    jwks: TestServer,
    issuer: String,
    graph: GraphServer,
    veil: Veil,
}

impl Setup {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

async fn setup() -> Setup {
    let jwks = jwks_server(jwks(vec![jwk(RSA1_PEM, KID)])).await;
    let graph = GraphServer::start("outlook-mail").await;
    let veil = VeilConfig::new("outlook-mail", &graph.url())
        .authenticated()
        .env("VEIL_CALLER_ISSUER", &jwks.base())
        .env("VEIL_CALLER_AUDIENCES", AUDIENCE)
        .env("VEIL_CALLER_SUBJECTS", SUBJECT)
        .env("VEIL_CALLER_JWKS_URL", &format!("{}/jwks", jwks.base()))
        .start()
        .await;
    let issuer = jwks.base();
    Setup {
        jwks,
        issuer,
        graph,
        veil,
    }
}

const TARGET: &str = "/v1.0/users?$top=2";

async fn call(veil: &Veil, authorization: Option<&str>) -> reqwest::Response {
    let mut req = client().get(veil.url(TARGET));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_never_forwarded() {
    let s = setup().await;
    let token = sign(RSA1_PEM, Some(KID), &claims(s.issuer()));
    for scheme in ["Bearer", "bearer"] {
        let before = s.graph.count();
        let resp = call(&s.veil, Some(&format!("{scheme} {token}"))).await;
        assert_eq!(resp.status(), 200, "{scheme}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["value"][0]["id"].as_str().unwrap().starts_with("p~"));
        assert_eq!(s.graph.count(), before + 1);
        let r = s.graph.last();
        assert_eq!(r.target, TARGET);
        assert_eq!(r.header("authorization"), Some("Bearer dev-token"));
        for (name, value) in &r.headers {
            assert!(
                !value.contains(&token),
                "the caller's token reached Graph in {name}"
            );
        }
    }
    assert_eq!(s.jwks.hits("/jwks"), 1, "the key set is cached");
    let stderr = s.veil.stderr();
    assert!(!stderr.contains(&token), "the token is in the log");
    // The log names the caller by issuer and subject.
    let line = s.veil.access_log().pop().expect("an access line");
    assert_eq!(line["caller_issuer"], s.issuer(), "{line}");
    assert_eq!(line["caller_subject"], SUBJECT, "{line}");
    // A refused caller: the check and why, and no one named.
    call(&s.veil, None).await;
    let line = s.veil.access_log().pop().expect("an access line");
    assert_eq!(line["refusal"], "caller_auth", "{line}");
    assert_eq!(
        line["error_message"], "missing Authorization header",
        "{line}"
    );
    assert_eq!(line["caller_subject"], "-", "{line}");
}

#[tokio::test]
async fn the_health_check_tells_anonymous_callers_only_the_status() {
    let s = setup().await;
    let resp = call(&s.veil, None).await;
    assert_eq!(resp.status(), 401);
    // Without a token: up or not, nothing about the tenant or the build.
    let resp = client().get(s.veil.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-veil-version").is_none());
    assert_eq!(resp.text().await.unwrap(), r#"{"status":"ok"}"#);
    // With a valid caller token: the details.
    let token = sign(RSA1_PEM, Some(KID), &claims(s.issuer()));
    let resp = client()
        .get(s.veil.url("/healthz"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.unwrap();
    let auth = h["callerAuth"].as_str().unwrap();
    assert!(auth.starts_with("oidc"), "{auth}");
    assert!(
        auth.contains(s.issuer()) && auth.contains(AUDIENCE),
        "{auth}"
    );
    assert!(
        !h["warnings"].to_string().contains("unauthenticated"),
        "{h}"
    );
    assert_eq!(s.graph.count(), 0);
}

#[tokio::test]
async fn refused_callers_never_reach_graph() {
    let s = setup().await;
    let iss = s.issuer().to_string();
    let valid = sign(RSA1_PEM, Some(KID), &claims(&iss));
    let parts: Vec<&str> = valid.split('.').collect();

    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.into());
        encode(
            &header,
            &claims(&iss),
            &EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes()),
        )
        .unwrap()
    };
    let hs256_with_public_der = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.into());
        encode(
            &header,
            &claims(&iss),
            &EncodingKey::from_secret(&der(RSA1_PUBLIC_PEM)),
        )
        .unwrap()
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(&iss))
    );
    let alg_none_with_kid = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "none", "kid": KID})),
        b64(&claims(&iss)),
        parts[2]
    );
    // A token of a caller that is not allowed, its claims swapped for an
    // allowed subject's under the original signature.
    let intruder = sign(
        RSA1_PEM,
        Some(KID),
        &with(claims(&iss), "sub", json!("intruder-sa")),
    );
    let intruder_parts: Vec<&str> = intruder.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        intruder_parts[0],
        b64(&claims(&iss)),
        intruder_parts[2]
    );
    let bearer = |t: &str| format!("Bearer {t}");

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing header", None, 401, "unauthenticated"),
        (
            "empty bearer",
            Some("Bearer ".into()),
            401,
            "unauthenticated",
        ),
        (
            "Basic scheme",
            Some("Basic dmVuZG9yLXNhOnNlY3JldA==".into()),
            401,
            "unauthenticated",
        ),
        (
            "token without scheme",
            Some(valid.clone()),
            401,
            "unauthenticated",
        ),
        (
            "not a JWT",
            Some(bearer("not-a-jwt")),
            401,
            "unauthenticated",
        ),
        (
            "expired",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(claims(&iss), "exp", json!(now() - 3600)),
            ))),
            401,
            "unauthenticated",
        ),
        (
            "not yet valid",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(claims(&iss), "nbf", json!(now() + 3600)),
            ))),
            401,
            "unauthenticated",
        ),
        (
            "issued in the future",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(
                    with(claims(&iss), "iat", json!(now() + 3600)),
                    "exp",
                    json!(now() + 7200),
                ),
            ))),
            401,
            "unauthenticated",
        ),
        (
            "wrong audience",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(claims(&iss), "aud", json!("someone-else")),
            ))),
            401,
            "unauthenticated",
        ),
        (
            "wrong issuer",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(claims(&iss), "iss", json!("https://accounts.evil.example")),
            ))),
            401,
            "unauthenticated",
        ),
        (
            "issuer with a trailing slash",
            Some(bearer(&sign(
                RSA1_PEM,
                Some(KID),
                &with(claims(&iss), "iss", json!(format!("{iss}/"))),
            ))),
            401,
            "unauthenticated",
        ),
        ("alg none", Some(bearer(&alg_none)), 401, "unauthenticated"),
        (
            "alg none with a kid and a signature",
            Some(bearer(&alg_none_with_kid)),
            401,
            "unauthenticated",
        ),
        (
            "HS256 with the public key PEM as secret",
            Some(bearer(&hs256_with_public_key)),
            401,
            "unauthenticated",
        ),
        (
            "HS256 with the public key DER as secret",
            Some(bearer(&hs256_with_public_der)),
            401,
            "unauthenticated",
        ),
        (
            "unknown kid",
            Some(bearer(&sign(RSA1_PEM, Some("rsa-unknown"), &claims(&iss)))),
            401,
            "unauthenticated",
        ),
        (
            "another key under the known kid",
            Some(bearer(&sign(RSA2_PEM, Some(KID), &claims(&iss)))),
            401,
            "unauthenticated",
        ),
        (
            "tampered claims",
            Some(bearer(&tampered)),
            401,
            "unauthenticated",
        ),
        (
            "subject not allowed",
            Some(bearer(&intruder)),
            403,
            "forbidden",
        ),
    ];
    assert!(cases.len() >= 10);
    let mut failures = Vec::new();
    for (name, authorization, status, code) in &cases {
        let before = s.graph.count();
        let resp = call(&s.veil, authorization.as_deref()).await;
        let got = resp.status().as_u16();
        let psoxy = resp
            .headers()
            .get("x-psoxy-error")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        if s.graph.count() != before {
            failures.push(format!("{name}: Graph received {:?}", s.graph.last()));
        }
        if got != *status {
            failures.push(format!("{name}: status {got} (expected {status}): {text}"));
            continue;
        }
        assert_eq!(psoxy.as_deref(), Some("UNAUTHORIZED"), "{name}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: {text}"));
        assert_error_shape(&body, code);
        // The answer never echoes the token.
        for part in authorization
            .as_deref()
            .unwrap_or("")
            .split(['.', ' '])
            .filter(|p| p.len() >= 8)
        {
            assert!(!text.contains(part), "{name}: the answer echoes the token");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A valid token still works afterwards.
    let resp = call(&s.veil, Some(&bearer(&valid))).await;
    assert_eq!(resp.status(), 200);
}
