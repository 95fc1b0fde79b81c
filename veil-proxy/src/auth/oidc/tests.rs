//! The OIDC verifier against a real HTTP issuer on 127.0.0.1.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex as StdMutex, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use super::jose::unix_now;
use super::key_source::key_set_lifetime;
use super::*;
use crate::refresh::ManualClock;
use veil_test_support::keys::{der, RSA1_PEM, RSA1_PUBLIC_PEM, RSA2_PEM};
use veil_test_support::server::{Reply as Canned, TestServer as HttpServer};

// A test-only P-256 key (PKCS#8), besides the shared RSA fixtures.
const EC1_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiTbeYUD1ptIC4fMI\n\
5eKePASSA6Ia8t3IxUfn1WO+0emhRANCAASReNG2J+i2aR3/h6iLTqkMqqFZnY3J\n\
xhbRPX8wHZU07YckZhg8bpvOoVcKFQvbjEPLAPh/X38gh6bbYlS5hPPl\n\
-----END PRIVATE KEY-----\n\
";

const AUDIENCE: &str = "https://veil.example/api";
const SUBJECT: &str = "112233445566778899000";
const EMAIL: &str = "collector@vendor-project.iam.gserviceaccount.com";

// ---- The issuer: its discovery document and JWKS ----

#[derive(Default)]
struct ServerState {
    jwks: StdMutex<String>,
    cache_control: StdMutex<Option<String>>,
    /// 0: answer 200.
    jwks_status: AtomicU16,
    delay_ms: AtomicU64,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

struct TestServer {
    base: String,
    state: Arc<ServerState>,
    _server: HttpServer,
}

impl TestServer {
    async fn start(jwks: String) -> TestServer {
        let state = Arc::new(ServerState::default());
        *state.jwks.lock().unwrap() = jwks;
        let base = Arc::new(OnceLock::<String>::new());
        let (served_state, served_base) = (state.clone(), base.clone());
        let server = HttpServer::respond_with(move |_, request| {
            answer(&served_state, served_base.get().unwrap(), &request.path)
        })
        .await;
        base.set(server.base()).unwrap();
        TestServer {
            base: server.base(),
            state,
            _server: server,
        }
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    fn set_jwks(&self, jwks: String) {
        *self.state.jwks.lock().unwrap() = jwks;
    }

    fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }
}

fn answer(state: &ServerState, base: &str, path: &str) -> Canned {
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    let canned = match path {
        "/.well-known/openid-configuration" => {
            state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
            Canned::json(
                200,
                json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}),
            )
        }
        "/jwks" => {
            state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let status = match state.jwks_status.load(Ordering::SeqCst) {
                0 => 200,
                status => status,
            };
            let canned = Canned::bytes(
                status,
                "application/json",
                state.jwks.lock().unwrap().clone(),
            );
            match state.cache_control.lock().unwrap().as_deref() {
                Some(cache_control) => canned.header("Cache-Control", cache_control),
                None => canned,
            }
        }
        _ => Canned::json(404, json!({})),
    };
    canned.delay(delay)
}

// ---- Keys, tokens and configurations ----

fn encoding_key(pem: &str, alg: Algorithm) -> EncodingKey {
    match alg.family() {
        jsonwebtoken::AlgorithmFamily::Ec => EncodingKey::from_ec_der(&der(pem)),
        _ => EncodingKey::from_rsa_der(&der(pem)),
    }
}

fn jwk(pem: &str, alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(pem, alg), alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_value(&jwk).unwrap()
}

fn jwks(keys: Vec<Value>) -> String {
    json!({ "keys": keys }).to_string()
}

fn default_jwks() -> String {
    jwks(vec![
        jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
        jwk(EC1_PEM, Algorithm::ES256, "ec-1"),
    ])
}

fn now() -> i64 {
    unix_now() as i64
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "email": EMAIL,
        "email_verified": true,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn sign(pem: &str, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, &encoding_key(pem, alg)).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(RSA1_PEM, Algorithm::RS256, Some("rsa-1"), claims)
}

fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn config(server: &TestServer) -> CallerAuthConfig {
    CallerAuthConfig {
        issuer: server.base.clone(),
        audiences: vec!["another-audience".into(), AUDIENCE.into()],
        jwks_url: Some(server.jwks_url()),
        allowed_subjects: vec![SUBJECT.into()],
        ..CallerAuthConfig::default()
    }
}

fn caller_auth(config: CallerAuthConfig) -> CallerAuth {
    CallerAuth::new(config, reqwest::Client::new()).unwrap()
}

async fn setup() -> (TestServer, CallerAuth) {
    let server = TestServer::start(default_jwks()).await;
    let auth = caller_auth(config(&server));
    (server, auth)
}

/// Asserts a rejection, and that its message does not echo the token.
/// [`rejects`] for a `Bearer` token.
async fn rejects_token(auth: &CallerAuth, token: &str, kind: ErrorKind, fragment: &str) {
    rejects(auth, Some(&bearer(token)), kind, fragment).await;
}

async fn rejects(auth: &CallerAuth, authorization: Option<&str>, kind: ErrorKind, fragment: &str) {
    let err = auth
        .verify(authorization)
        .await
        .expect_err("verification should fail");
    assert_eq!(err.phase, Phase::Authenticate, "{err}");
    assert_eq!(err.kind, kind, "{err}");
    assert!(
        err.message.contains(fragment),
        "expected {fragment:?} in {err}"
    );
    for part in authorization
        .unwrap_or("")
        .split(['.', ' '])
        .filter(|part| part.len() >= 8)
    {
        assert!(
            !err.message.contains(part),
            "message echoes the token: {err}"
        );
    }
}

fn expected_caller() -> Caller {
    Caller {
        subject: SUBJECT.into(),
        email: Some(EMAIL.into()),
    }
}

// ---- Valid tokens ----

#[tokio::test]
async fn valid_rs256_token_via_discovery_and_cache() {
    let server = TestServer::start(default_jwks()).await;
    let auth = caller_auth(CallerAuthConfig {
        jwks_url: None,
        ..config(&server)
    });
    let token = rs256(&claims(&server.base));
    assert_eq!(
        auth.verify(Some(&bearer(&token))).await.unwrap(),
        expected_caller()
    );
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
    // Cached: no more requests; the scheme is case-insensitive; `aud` may be a list.
    let token = rs256(&with(claims(&server.base), "aud", json!(["x", AUDIENCE])));
    assert_eq!(
        auth.verify(Some(&format!("bearer  {token}")))
            .await
            .unwrap(),
        expected_caller()
    );
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn valid_es256_token() {
    let (server, auth) = setup().await;
    let token = sign(
        EC1_PEM,
        Algorithm::ES256,
        Some("ec-1"),
        &claims(&server.base),
    );
    assert_eq!(
        auth.verify(Some(&bearer(&token))).await.unwrap(),
        expected_caller()
    );
    assert_eq!((server.discovery_fetches(), server.jwks_fetches()), (0, 1));
}

#[tokio::test]
async fn token_without_kid_uses_the_single_key_of_its_type() {
    let (server, auth) = setup().await;
    let token = sign(RSA1_PEM, Algorithm::RS256, None, &claims(&server.base));
    assert_eq!(
        auth.verify(Some(&bearer(&token))).await.unwrap(),
        expected_caller()
    );

    let two_rsa = jwks(vec![
        jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
        jwk(RSA2_PEM, Algorithm::RS256, "rsa-2"),
    ]);
    let server = TestServer::start(two_rsa).await;
    let auth = caller_auth(config(&server));
    let token = sign(RSA1_PEM, Algorithm::RS256, None, &claims(&server.base));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "several signing keys match",
    )
    .await;
}

#[tokio::test]
async fn leeway_applies_to_exp() {
    let (server, auth) = setup().await;
    let token = rs256(&with(claims(&server.base), "exp", json!(now() - 30)));
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
}

// ---- Claims ----

#[tokio::test]
async fn expired_token() {
    let (server, auth) = setup().await;
    let token = rs256(&with(claims(&server.base), "exp", json!(now() - 120)));
    rejects_token(&auth, &token, ErrorKind::Unauthenticated, "token expired").await;
}

#[tokio::test]
async fn token_without_exp() {
    let (server, auth) = setup().await;
    let token = rs256(&without(claims(&server.base), "exp"));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "required claim `exp`",
    )
    .await;
}

#[tokio::test]
async fn not_yet_valid_token() {
    let (server, auth) = setup().await;
    let token = rs256(&with(claims(&server.base), "nbf", json!(now() + 3600)));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "token not yet valid",
    )
    .await;
}

#[tokio::test]
async fn token_issued_in_the_future() {
    let (server, auth) = setup().await;
    let future = with(claims(&server.base), "iat", json!(now() + 3600));
    let token = rs256(&with(future, "exp", json!(now() + 7200)));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "issued in the future",
    )
    .await;
}

#[tokio::test]
async fn wrong_audience() {
    let (server, auth) = setup().await;
    let token = rs256(&with(
        claims(&server.base),
        "aud",
        json!("https://someone-else.example"),
    ));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "audience not accepted",
    )
    .await;
    let token = rs256(&without(claims(&server.base), "aud"));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "required claim `aud`",
    )
    .await;
}

#[tokio::test]
async fn wrong_issuer() {
    let (server, auth) = setup().await;
    let token = rs256(&with(
        claims(&server.base),
        "iss",
        json!("https://accounts.evil.example"),
    ));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "issuer not accepted",
    )
    .await;
    // `iss` must be the issuer itself, not a list containing it.
    let token = rs256(&with(
        claims(&server.base),
        "iss",
        json!([server.base, "x"]),
    ));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "issuer not accepted",
    )
    .await;
}

#[tokio::test]
async fn tampered_claims_fail_the_signature() {
    let (server, auth) = setup().await;
    let token = rs256(&claims(&server.base));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&with(claims(&server.base), "sub", json!("someone-else")));
    let token = format!("{}.{}.{}", parts[0], forged, parts[2]);
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "invalid token signature",
    )
    .await;
}

// ---- Algorithms and keys ----

#[tokio::test]
async fn alg_none_is_refused() {
    let (server, auth) = setup().await;
    for alg in ["none", "None", "NONE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        let token = format!("{header}.{}.", b64(&claims(&server.base)));
        rejects_token(&auth, &token, ErrorKind::Unauthenticated, "alg none").await;
    }
    assert_eq!(server.jwks_fetches(), 0);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (server, auth) = setup().await;
    let secret = EncodingKey::from_secret(RSA1_PUBLIC_PEM.as_bytes());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let token = encode(&header, &claims(&server.base), &secret).unwrap();
    rejects_token(&auth, &token, ErrorKind::Unauthenticated, "HS*").await;
    // The same with the public key's DER (another secret attackers try).
    let der = RSA1_PUBLIC_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let token = encode(
        &header,
        &claims(&server.base),
        &EncodingKey::from_secret(der.as_bytes()),
    )
    .unwrap();
    rejects_token(&auth, &token, ErrorKind::Unauthenticated, "HS*").await;
    // Configuring an HS algorithm is refused too.
    let err = CallerAuth::new(
        CallerAuthConfig {
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            ..config(&server)
        },
        reqwest::Client::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("HS256"), "{err}");
    assert_eq!(server.jwks_fetches(), 0);
}

#[tokio::test]
async fn algorithm_not_configured() {
    let (server, _) = setup().await;
    let auth = caller_auth(CallerAuthConfig {
        algorithms: vec![Algorithm::RS256],
        ..config(&server)
    });
    let token = sign(
        EC1_PEM,
        Algorithm::ES256,
        Some("ec-1"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "signing algorithm not accepted",
    )
    .await;
    let token = sign(
        RSA1_PEM,
        Algorithm::PS256,
        Some("rsa-1"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "signing algorithm not accepted",
    )
    .await;
    let header = b64(&json!({"alg": "RS1", "kid": "rsa-1"}));
    let token = format!("{header}.{}.c2ln", b64(&claims(&server.base)));
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "signing algorithm not accepted",
    )
    .await;
}

#[tokio::test]
async fn key_type_or_alg_mismatch_is_refused() {
    let pinned = jwk(RSA2_PEM, Algorithm::PS256, "rsa-pinned-to-ps256");
    let server =
        TestServer::start(jwks(vec![jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"), pinned])).await;
    let algorithms = vec![Algorithm::RS256, Algorithm::ES256, Algorithm::PS256];
    let auth = caller_auth(CallerAuthConfig {
        algorithms,
        ..config(&server)
    });
    // An ES256 token naming an RSA key.
    let token = sign(
        EC1_PEM,
        Algorithm::ES256,
        Some("rsa-1"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "does not match the token's algorithm",
    )
    .await;
    // An RS256 token naming a key whose JWK says PS256.
    let token = sign(
        RSA2_PEM,
        Algorithm::RS256,
        Some("rsa-pinned-to-ps256"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "does not match the token's algorithm",
    )
    .await;
    // PS256 with that key is fine.
    let token = sign(
        RSA2_PEM,
        Algorithm::PS256,
        Some("rsa-pinned-to-ps256"),
        &claims(&server.base),
    );
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    // A mismatch is not an unknown key: no refetch.
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn symmetric_and_encryption_keys_in_the_jwks_are_ignored() {
    let keys = vec![
        json!({"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0"}),
        json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "weird"}),
        jwk(RSA1_PEM, Algorithm::RS256, "rsa-1"),
    ];
    let server = TestServer::start(jwks(keys)).await;
    let auth = caller_auth(config(&server));
    let token = rs256(&claims(&server.base));
    assert_eq!(
        auth.verify(Some(&bearer(&token))).await.unwrap(),
        expected_caller()
    );
}

// ---- Key set fetching ----

#[tokio::test]
async fn unknown_kid_refetches_once_then_fails() {
    let (server, auth) = setup().await;
    assert!(auth
        .verify(Some(&bearer(&rs256(&claims(&server.base)))))
        .await
        .is_ok());
    assert_eq!(server.jwks_fetches(), 1);
    let token = sign(
        RSA1_PEM,
        Algorithm::RS256,
        Some("no-such-key"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "unknown signing key id",
    )
    .await;
    assert_eq!(server.jwks_fetches(), 2, "exactly one refetch");
    // Within 30 s, another unknown kid does not refetch.
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "unknown signing key id",
    )
    .await;
    assert_eq!(server.jwks_fetches(), 2);
    // Known keys keep working.
    assert!(auth
        .verify(Some(&bearer(&rs256(&claims(&server.base)))))
        .await
        .is_ok());
    assert_eq!(server.jwks_fetches(), 2);
}

#[tokio::test]
async fn unknown_kid_on_a_cold_cache_does_not_fetch_twice() {
    let (server, auth) = setup().await;
    let token = sign(
        RSA1_PEM,
        Algorithm::RS256,
        Some("no-such-key"),
        &claims(&server.base),
    );
    rejects_token(
        &auth,
        &token,
        ErrorKind::Unauthenticated,
        "unknown signing key id",
    )
    .await;
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_one_refetch() {
    let server = TestServer::start(jwks(vec![jwk(RSA1_PEM, Algorithm::RS256, "2024-key")])).await;
    let auth = caller_auth(config(&server));
    let old = sign(
        RSA1_PEM,
        Algorithm::RS256,
        Some("2024-key"),
        &claims(&server.base),
    );
    assert!(auth.verify(Some(&bearer(&old))).await.is_ok());
    assert_eq!(server.jwks_fetches(), 1);

    server.set_jwks(jwks(vec![jwk(RSA2_PEM, Algorithm::RS256, "2025-key")]));
    let new = sign(
        RSA2_PEM,
        Algorithm::RS256,
        Some("2025-key"),
        &claims(&server.base),
    );
    assert_eq!(
        auth.verify(Some(&bearer(&new))).await.unwrap(),
        expected_caller()
    );
    assert_eq!(server.jwks_fetches(), 2);
    assert!(auth.verify(Some(&bearer(&new))).await.is_ok());
    assert_eq!(server.jwks_fetches(), 2);
    // The retired key is gone.
    rejects_token(
        &auth,
        &old,
        ErrorKind::Unauthenticated,
        "unknown signing key id",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_on_a_cold_cache_share_one_fetch() {
    let server = TestServer::start(default_jwks()).await;
    server.state.delay_ms.store(200, Ordering::SeqCst);
    let auth = caller_auth(CallerAuthConfig {
        jwks_url: None,
        ..config(&server)
    });
    let header = bearer(&rs256(&claims(&server.base)));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (auth, header) = (auth.clone(), header.clone());
            tokio::spawn(async move { auth.verify(Some(&header)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), expected_caller());
    }
    assert_eq!(server.jwks_fetches(), 1);
    assert_eq!(server.discovery_fetches(), 1);
}

#[tokio::test]
async fn failed_refresh_keeps_the_cached_keys() {
    let server = TestServer::start(default_jwks()).await;
    let clock = Arc::new(ManualClock::default());
    let auth =
        CallerAuth::with_clock(config(&server), reqwest::Client::new(), clock.clone()).unwrap();
    // Past the key set's lifetime (one hour without Cache-Control).
    let expire_cache = || clock.advance(Duration::from_secs(3600));
    let token = rs256(&claims(&server.base));
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    server.state.jwks_status.store(503, Ordering::SeqCst);
    expire_cache();
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    assert_eq!(server.jwks_fetches(), 2);
    // The failure is not retried on every request.
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    assert_eq!(server.jwks_fetches(), 2);
    // Nor does a garbage answer replace the keys.
    server.state.jwks_status.store(0, Ordering::SeqCst);
    server.set_jwks("{\"keys\": []}".into());
    expire_cache();
    assert!(auth.verify(Some(&bearer(&token))).await.is_ok());
    assert_eq!(server.jwks_fetches(), 3);
}

#[tokio::test]
async fn failed_first_fetch_is_unavailable_and_not_hammered() {
    let (server, auth) = setup().await;
    server.state.jwks_status.store(500, Ordering::SeqCst);
    let token = rs256(&claims(&server.base));
    rejects_token(
        &auth,
        &token,
        ErrorKind::CallerAuthUnavailable,
        "signing keys are unavailable",
    )
    .await;
    rejects_token(
        &auth,
        &token,
        ErrorKind::CallerAuthUnavailable,
        "signing keys are unavailable",
    )
    .await;
    assert_eq!(
        ErrorKind::CallerAuthUnavailable.status(),
        http::StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn cache_lifetime_follows_cache_control() {
    let (server, auth) = setup().await;
    *server.state.cache_control.lock().unwrap() =
        Some("public, max-age=20000, must-revalidate".into());
    assert!(auth
        .verify(Some(&bearer(&rs256(&claims(&server.base)))))
        .await
        .is_ok());
    let lifetime = auth.inner.keys.cached_lifetime().unwrap();
    assert_eq!(lifetime, Duration::from_secs(20000));

    assert_eq!(key_set_lifetime(None), Duration::from_secs(3600));
    assert_eq!(
        key_set_lifetime(Some("max-age=60")),
        Duration::from_secs(300)
    );
    assert_eq!(
        key_set_lifetime(Some("max-age=999999")),
        Duration::from_secs(86400)
    );
    assert_eq!(
        key_set_lifetime(Some("Max-Age=\"7200\"")),
        Duration::from_secs(7200)
    );
    assert_eq!(key_set_lifetime(Some("no-store")), Duration::from_secs(300));
    assert_eq!(
        key_set_lifetime(Some("max-age=oops")),
        Duration::from_secs(3600)
    );
}

// ---- Allowlists ----

#[tokio::test]
async fn subject_not_allowed_is_forbidden() {
    let (server, _) = setup().await;
    let auth = caller_auth(CallerAuthConfig {
        allowed_subjects: vec!["someone-else".into()],
        ..config(&server)
    });
    let token = rs256(&claims(&server.base));
    rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
}

#[tokio::test]
async fn allowed_email() {
    let (server, _) = setup().await;
    let auth = caller_auth(CallerAuthConfig {
        allowed_subjects: vec![],
        allowed_emails: vec![EMAIL.to_uppercase()],
        ..config(&server)
    });
    let token = rs256(&claims(&server.base));
    assert_eq!(
        auth.verify(Some(&bearer(&token))).await.unwrap(),
        expected_caller()
    );
    // `email_verified` absent, false (or "false", or not a boolean) does not.
    let token = rs256(&without(claims(&server.base), "email_verified"));
    rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
    for unverified in [json!(false), json!("false"), json!(1), json!(null)] {
        let token = rs256(&with(claims(&server.base), "email_verified", unverified));
        rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
    }
    let token = rs256(&with(
        claims(&server.base),
        "email",
        json!("intruder@example.com"),
    ));
    rejects_token(&auth, &token, ErrorKind::Forbidden, "caller is not allowed").await;
}

// ---- The header ----

#[tokio::test]
async fn missing_header() {
    let (server, auth) = setup().await;
    rejects(
        &auth,
        None,
        ErrorKind::Unauthenticated,
        "missing Authorization header",
    )
    .await;
    assert_eq!(server.jwks_fetches(), 0);
}

#[tokio::test]
async fn malformed_headers() {
    let (server, auth) = setup().await;
    let token = rs256(&claims(&server.base));
    let cases = [
        (
            "Basic dXNlcjpwYXNzd29yZA==".to_string(),
            "must use the Bearer scheme",
        ),
        (token.clone(), "must use the Bearer scheme"),
        ("".to_string(), "must use the Bearer scheme"),
        ("Bearer".to_string(), "bearer token is empty"),
        ("Bearer    ".to_string(), "bearer token is empty"),
        ("Bearer garbage-garbage-garbage".to_string(), "not a JWT"),
        ("Bearer a.b".to_string(), "not a JWT"),
        ("Bearer a.b.c.d.e".to_string(), "not a JWT"),
        (format!("Bearer {token} extra"), "not a JWT"),
        (format!("Bearer {token}=="), "not a JWT"),
        ("Bearer ..".to_string(), "token header is malformed"),
        ("Bearer e30.e30.c2ln".to_string(), "lacks `alg`"),
        (
            "Bearer bm90LWpzb24.e30.c2ln".to_string(),
            "token header is malformed",
        ),
        (
            format!(
                "Bearer {}.e30.c2ln",
                b64(&json!({"alg": "RS256", "kid": 7}))
            ),
            "token header is malformed",
        ),
        (
            format!(
                "Bearer {}.e30.c2ln",
                b64(&json!({"alg": "RS256", "crit": ["b64"]}))
            ),
            "critical header",
        ),
        (
            format!(
                "Bearer {}.e30.",
                b64(&json!({"alg": "RS256", "kid": "rsa-1"}))
            ),
            "signature is missing",
        ),
        (format!("Bearer {}", "a".repeat(20_000)), "too long"),
    ];
    for (header, fragment) in cases {
        rejects(&auth, Some(&header), ErrorKind::Unauthenticated, fragment).await;
    }
    assert_eq!(server.jwks_fetches(), 0);
    // Garbage after a good header and a fetched key set.
    let parts: Vec<&str> = token.split('.').collect();
    let garbage = format!("Bearer {}.{}.AAAA", parts[0], parts[1]);
    rejects(
        &auth,
        Some(&garbage),
        ErrorKind::Unauthenticated,
        "invalid token signature",
    )
    .await;
    let garbage = format!("Bearer {}.bm90LWpzb24.{}", parts[0], parts[2]);
    rejects(
        &auth,
        Some(&garbage),
        ErrorKind::Unauthenticated,
        "invalid token signature",
    )
    .await;
}

// ---- Configuration ----

#[tokio::test]
async fn config_is_validated() {
    let (server, _) = setup().await;
    let base = config(&server);
    let bad = [
        (
            CallerAuthConfig {
                issuer: " ".into(),
                ..base.clone()
            },
            "issuer",
        ),
        (
            CallerAuthConfig {
                audiences: vec![],
                ..base.clone()
            },
            "audience",
        ),
        (
            CallerAuthConfig {
                audiences: vec!["".into()],
                ..base.clone()
            },
            "audience",
        ),
        (
            CallerAuthConfig {
                allowed_subjects: vec![],
                allowed_emails: vec![],
                ..base.clone()
            },
            "allowed",
        ),
        (
            CallerAuthConfig {
                algorithms: vec![],
                ..base.clone()
            },
            "algorithm",
        ),
        (
            CallerAuthConfig {
                algorithms: vec![Algorithm::HS512],
                ..base.clone()
            },
            "HS512",
        ),
        (
            CallerAuthConfig {
                leeway_secs: 3600,
                ..base.clone()
            },
            "leeway",
        ),
        (
            CallerAuthConfig {
                jwks_url: Some("http://keys.example/jwks".into()),
                ..base.clone()
            },
            "https",
        ),
        (
            CallerAuthConfig {
                jwks_url: Some("not a url".into()),
                ..base.clone()
            },
            "jwks_url",
        ),
        (
            CallerAuthConfig {
                issuer: "vendor".into(),
                jwks_url: None,
                ..base.clone()
            },
            "discovery",
        ),
    ];
    for (config, fragment) in bad {
        let err = CallerAuth::new(config, reqwest::Client::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(fragment), "expected {fragment:?} in {err:?}");
    }
    let google = CallerAuthConfig {
        issuer: "https://accounts.google.com".into(),
        audiences: vec![AUDIENCE.into()],
        allowed_emails: vec![EMAIL.into()],
        ..CallerAuthConfig::default()
    };
    assert!(CallerAuth::new(google.clone(), reqwest::Client::new()).is_ok());
    let with_jwks = CallerAuthConfig {
        jwks_url: Some("https://www.googleapis.com/oauth2/v3/certs".into()),
        ..google
    };
    assert!(CallerAuth::new(with_jwks, reqwest::Client::new()).is_ok());

    let parsed: CallerAuthConfig = serde_json::from_value(json!({
        "issuer": "https://accounts.google.com",
        "audiences": [AUDIENCE],
        "allowed_subjects": [SUBJECT],
    }))
    .unwrap();
    assert_eq!(parsed.leeway_secs, 60);
    assert_eq!(parsed.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
}

#[tokio::test]
async fn describe_for_the_health_check() {
    let (server, _) = setup().await;
    let auth = caller_auth(CallerAuthConfig {
        allowed_emails: vec![EMAIL.into(), "b@x".into()],
        ..config(&server)
    });
    assert_eq!(
        auth.describe(),
        format!(
            "oidc issuer={} audiences=another-audience,{AUDIENCE} subjects=1 emails=2",
            server.base
        )
    );
    assert!(format!("{auth:?}").contains("oidc issuer="));
}
