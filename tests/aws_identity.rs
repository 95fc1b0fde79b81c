//! The AWS host identities over real TCP:
//! - `aws-sts`: `sts:GetWebIdentityToken` against the strict local STS
//!   server of `support::sts` (moto 5.2.5 does not implement that call),
//!   which verifies the SigV4 signature and the model's wire format and
//!   issues an RS256 JWT;
//! - `aws-cognito`: `GetOpenIdTokenForDeveloperIdentity` against a real
//!   `moto_server` with an identity pool that has a developer provider.

mod support;

use jsonwebtoken::{Algorithm, Validation};
use support::moto::{self, Moto};
use support::sts::{self, StsServer};
use support::*;
use veil_proxy::{AwsCognito, AwsSts, HostIdentity};

fn sts_env(server: &StsServer, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
    let mut pairs: Vec<(String, String)> = vec![
        ("AWS_ACCESS_KEY_ID".into(), moto::ACCESS_KEY_ID.into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            moto::SECRET_ACCESS_KEY.into(),
        ),
        ("AWS_SESSION_TOKEN".into(), moto::SESSION_TOKEN.into()),
        ("AWS_REGION".into(), "eu-west-1".into()),
        ("AWS_ENDPOINT_URL_STS".into(), server.url()),
        // Must lose against the service-specific variable.
        ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(n, _)| n != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
}

fn sts_start() -> impl std::future::Future<Output = StsServer> {
    StsServer::start(moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, "eu-west-1")
}

#[tokio::test]
async fn aws_sts_gets_a_web_identity_token_for_entra() {
    let server = sts_start().await;
    let provider = AwsSts::from_lookup(client(), &sts_env(&server, &[])).expect("config");
    assert_eq!(provider.kind(), "aws-sts");
    let token = provider.fetch().await.expect("token");
    let jwt = std::str::from_utf8(token.expose()).unwrap();

    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["api://AzureADTokenExchange"]);
    v.set_issuer(&[sts::ISSUER]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &sts::decoding_key(), &v)
        .expect("a valid RS256 JWT")
        .claims;
    assert_eq!(claims["sub"], sts::ROLE_ARN);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.param("Action"), Some("GetWebIdentityToken"));
    assert_eq!(r.param("Version"), Some("2011-06-15"));
    assert_eq!(
        r.param("Audience.member.1"),
        Some("api://AzureADTokenExchange")
    );
    assert_eq!(r.param("SigningAlgorithm"), Some("RS256"));
    assert_eq!(r.param("DurationSeconds"), Some("300"));
    assert!(
        r.authorization.contains("/eu-west-1/sts/aws4_request"),
        "{}",
        r.authorization
    );
    assert_eq!(r.security_token.as_deref(), Some(moto::SESSION_TOKEN));
}

#[tokio::test]
async fn aws_sts_sends_the_configured_audience_and_duration() {
    let server = sts_start().await;
    let env = sts_env(
        &server,
        &[
            ("VEIL_AWS_STS_AUDIENCE", "api://veil-test"),
            ("VEIL_AWS_STS_DURATION_SECS", "900"),
        ],
    );
    let provider = AwsSts::from_lookup(client(), &env).expect("config");
    let token = provider.fetch().await.expect("token");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&["api://veil-test"]);
    v.set_issuer(&[sts::ISSUER]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        std::str::from_utf8(token.expose()).unwrap(),
        &sts::decoding_key(),
        &v,
    )
    .expect("valid")
    .claims;
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
}

#[tokio::test]
async fn aws_sts_errors_say_what_to_fix() {
    // Signed for the wrong region: the server refuses the signature.
    let server = sts_start().await;
    let env = sts_env(&server, &[("AWS_REGION", "us-east-1")]);
    let e = AwsSts::from_lookup(client(), &env)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        e.message.starts_with(
            "aws-sts: AWS rejected the credentials in the environment (SignatureDoesNotMatch)"
        ),
        "{e}"
    );
    assert!(!e.message.contains(moto::SECRET_ACCESS_KEY), "{e}");

    // A wrong secret key: the signature does not verify.
    let env = sts_env(&server, &[("AWS_SECRET_ACCESS_KEY", "wrong-secret")]);
    let e = AwsSts::from_lookup(client(), &env)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(e.message.contains("(SignatureDoesNotMatch)"), "{e}");
    assert!(!e.message.contains("wrong-secret"), "{e}");

    server.fail_with(
        403,
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/veil/x is not authorized to perform: sts:GetWebIdentityToken",
    );
    let e = AwsSts::from_lookup(client(), &sts_env(&server, &[]))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        e.message.contains("allow the action `sts:GetWebIdentityToken` on the resource `*` in the policy of the role Veil runs as"),
        "{e}"
    );
    assert!(!e.retryable);

    server.fail_with(
        403,
        "OutboundWebIdentityFederationDisabledException",
        "Outbound web identity federation is disabled",
    );
    let e = AwsSts::from_lookup(client(), &sts_env(&server, &[]))
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(
        e.message
            .contains("enable-outbound-web-identity-federation"),
        "{e}"
    );

    // Nothing listens: retryable, names the endpoint variable.
    let env = sts_env(&server, &[("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")]);
    let e = AwsSts::from_lookup(client(), &env)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert!(e.retryable, "{e}");
    assert!(
        e.message.contains("could not reach http://127.0.0.1:9"),
        "{e}"
    );
    assert!(e.message.contains("AWS_ENDPOINT_URL_STS"), "{e}");
}

#[tokio::test]
async fn aws_sts_configuration_errors_name_the_variable() {
    let server = sts_start().await;
    for (name, value, want) in [
        (
            "VEIL_AWS_STS_SIGNING_ALGORITHM",
            "HS256",
            "VEIL_AWS_STS_SIGNING_ALGORITHM: `HS256` is not supported: use RS256 or ES384",
        ),
        (
            "VEIL_AWS_STS_DURATION_SECS",
            "7200",
            "VEIL_AWS_STS_DURATION_SECS: 7200 is out of range (60 to 3600 seconds)",
        ),
        (
            "AWS_ACCESS_KEY_ID",
            "",
            "aws-sts: no AWS credentials in the environment",
        ),
        ("AWS_REGION", "", "aws-sts: no AWS region: set AWS_REGION"),
    ] {
        let mut env = vec![(name, value)];
        if name == "AWS_ACCESS_KEY_ID" {
            env.push(("AWS_SECRET_ACCESS_KEY", ""));
        }
        let e = AwsSts::from_lookup(client(), &sts_env(&server, &env))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{name}: {e}");
    }
}

#[tokio::test]
async fn aws_cognito_gets_a_developer_identity_token_from_moto() {
    let moto = Moto::start().await;
    let pool = moto
        .create_identity_pool("veil_e2e", "login.veil.e2e")
        .await;
    assert!(pool.starts_with("eu-west-1:"), "{pool}");
    let env = moto.lookup(&[
        ("VEIL_COGNITO_IDENTITY_POOL_ID", &pool),
        ("VEIL_COGNITO_DEVELOPER_PROVIDER", "login.veil.e2e"),
        ("VEIL_COGNITO_LOGIN", "veil-outlook-mail"),
    ]);
    let provider = AwsCognito::from_lookup(client(), &env).expect("config");
    assert_eq!(provider.kind(), "aws-cognito");
    let token = provider.fetch().await.expect("token");
    // moto answers with a random identity id as the "token", not a JWT;
    // what is tested here is the signed call and the answer's shape.
    let text = std::str::from_utf8(token.expose()).unwrap();
    assert!(!text.is_empty());

    // The region comes from the pool id; a pool id of another region goes there.
    let env = moto.lookup(&[
        ("VEIL_COGNITO_IDENTITY_POOL_ID", "not-a-pool-id"),
        ("VEIL_COGNITO_DEVELOPER_PROVIDER", "login.veil.e2e"),
        ("VEIL_COGNITO_LOGIN", "veil-outlook-mail"),
    ]);
    let e = AwsCognito::from_lookup(client(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("VEIL_COGNITO_IDENTITY_POOL_ID: `not-a-pool-id` is not an identity pool id"),
        "{e}"
    );
}
