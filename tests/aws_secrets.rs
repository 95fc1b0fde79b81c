//! The salt and the encryption keys from SSM Parameter Store, Secrets
//! Manager (a real `moto_server`) and files, loaded by the real `veil serve`
//! binary; and every way a secret can be unusable, each refusing to start
//! with a precise message that never contains the value.

mod support;

use serde_json::Value;
use support::moto::{Moto, REGION};
use support::*;
use veil_engine::Secret;

const KEY2: &str = "e2e-key2-Bq7Wm3Rt9Yx2Lp6Nc4Vz8Hd1Kf5Gs0Ja";

/// `veil serve` for entra-id without the default env secrets, pointed at moto.
fn config(moto: Option<&Moto>, env: &[(&str, &str)]) -> VeilConfig {
    let mut c = VeilConfig::new("entra-id", "http://127.0.0.1:9");
    c.env
        .retain(|(n, _)| n != "VEIL_SALT" && n != "VEIL_ENCRYPTION_KEY");
    if let Some(m) = moto {
        for (k, v) in m.env() {
            c = c.env(k, &v);
        }
    }
    for (k, v) in env {
        c = c.env(k, v);
    }
    c
}

async fn health(veil: &Veil) -> Value {
    client()
        .get(veil.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("healthz JSON")
}

#[tokio::test]
async fn salt_and_keys_from_ssm_secure_strings() {
    let moto = Moto::start().await;
    moto.put_parameter("/veil/e2e/salt", SALT, "SecureString")
        .await;
    moto.put_parameter(
        "/veil/e2e/keys",
        &format!("k2:{KEY2},k1:{KEY}\n"),
        "SecureString",
    )
    .await;
    let veil = config(
        Some(&moto),
        &[
            ("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/salt"),
            ("VEIL_ENCRYPTION_KEYS_SSM_PARAMETER", "/veil/e2e/keys"),
        ],
    )
    .start()
    .await;
    let h = health(&veil).await;
    assert_eq!(
        h["pseudonyms"]["saltFingerprint"],
        Secret::from(SALT).fingerprint()
    );
    assert_eq!(
        h["pseudonyms"]["encryptionKeyIds"],
        serde_json::json!(["k2", "k1"])
    );
    let log = veil.stderr();
    assert!(log.contains("ssm:/veil/e2e/salt"), "{log}");
    assert!(log.contains("ssm:/veil/e2e/keys"), "{log}");
    assert!(
        !log.contains(SALT) && !log.contains(KEY) && !log.contains(KEY2),
        "{log}"
    );
}

#[tokio::test]
async fn salt_and_keys_from_secrets_manager_by_name_and_by_arn() {
    let moto = Moto::start().await;
    moto.create_secret("veil/e2e/salt", SALT).await;
    let keys_arn = moto.create_secret("veil/e2e/keys", KEY).await;
    assert!(
        keys_arn.starts_with(&format!("arn:aws:secretsmanager:{REGION}:")),
        "{keys_arn}"
    );
    let veil = config(
        Some(&moto),
        &[
            ("VEIL_SALT_SECRET_ID", "veil/e2e/salt"),
            ("VEIL_ENCRYPTION_KEYS_SECRET_ID", &keys_arn),
        ],
    )
    .start()
    .await;
    let h = health(&veil).await;
    assert_eq!(
        h["pseudonyms"]["saltFingerprint"],
        Secret::from(SALT).fingerprint()
    );
    // One bare secret is key `k1`.
    assert_eq!(
        h["pseudonyms"]["encryptionKeyIds"],
        serde_json::json!(["k1"])
    );
    let log = veil.stderr();
    assert!(log.contains("secretsmanager:veil/e2e/salt"), "{log}");
    assert!(log.contains(&format!("secretsmanager:{keys_arn}")), "{log}");
    assert!(
        log.contains(&Secret::from(KEY).fingerprint()),
        "the key's fingerprint is logged: {log}"
    );
}

#[tokio::test]
async fn salt_and_keys_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let salt = dir.path().join("salt");
    let keys = dir.path().join("keys");
    std::fs::write(&salt, format!("{SALT}\n")).unwrap();
    std::fs::write(&keys, format!("new:{KEY2},old:{KEY}\n")).unwrap();
    let veil = config(
        None,
        &[
            ("VEIL_SALT_FILE", salt.to_str().unwrap()),
            ("VEIL_ENCRYPTION_KEYS_FILE", keys.to_str().unwrap()),
        ],
    )
    .start()
    .await;
    let h = health(&veil).await;
    // The trailing newline is not part of the salt.
    assert_eq!(
        h["pseudonyms"]["saltFingerprint"],
        Secret::from(SALT).fingerprint()
    );
    assert_eq!(
        h["pseudonyms"]["encryptionKeyIds"],
        serde_json::json!(["new", "old"])
    );
}

#[tokio::test]
async fn a_legacy_psoxy_salt_is_admitted_only_when_named_and_is_flagged() {
    let moto = Moto::start().await;
    moto.create_secret("veil/e2e/legacy", "Contoso2019!").await;
    let veil = config(
        Some(&moto),
        &[
            ("VEIL_SCHEME", "psoxy"),
            ("VEIL_SALT_SECRET_ID", "veil/e2e/legacy"),
            ("VEIL_ENCRYPTION_KEY", KEY),
            ("VEIL_ALLOW_LEGACY_SHORT_SALT", "true"),
        ],
    )
    .start()
    .await;
    let h = health(&veil).await;
    // The fingerprint of the weak salt is keyed with the encryption key:
    // guesses of the salt cannot be tested against it offline.
    let unkeyed = Secret::from("Contoso2019!").fingerprint();
    let keyed = Secret::from("Contoso2019!")
        .with_fingerprint_key(Some(&Secret::from(KEY)))
        .fingerprint();
    assert_eq!(h["pseudonyms"]["saltFingerprint"], keyed.as_str());
    assert_ne!(keyed, unkeyed);
    let log = veil.stderr();
    assert!(log.contains("a legacy Psoxy secret"), "{log}");
    assert!(log.contains("VEIL_ALLOW_LEGACY_SHORT_SALT"), "{log}");
    assert!(
        !log.contains("Contoso2019") && !log.contains(&unkeyed),
        "{log}"
    );
}

#[tokio::test]
async fn unusable_secrets_stop_veil_with_the_reason() {
    let moto = Moto::start().await;
    moto.put_parameter("/veil/e2e/short", "too-short-salt", "SecureString")
        .await;
    moto.put_parameter("/veil/e2e/plain", SALT, "String").await;
    moto.create_secret(
        "veil/e2e/published",
        "veil-example-salt-NOT-FOR-PRODUCTION-0001",
    )
    .await;
    moto.create_secret("veil/e2e/json", &format!("{{\"salt\":\"{SALT}\"}}"))
        .await;
    moto.put_parameter("/veil/e2e/predictable", &"abc1".repeat(12), "SecureString")
        .await;
    moto.create_secret(
        "veil/e2e/published-upper",
        " VEIL-EXAMPLE-SALT-NOT-FOR-PRODUCTION-0001 ",
    )
    .await;
    moto.create_secret("veil/e2e/psoxy-short", "Contoso2019!")
        .await;

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/predictable")],
    ));
    assert!(
        err.contains("the pseudonymization salt (ssm:/veil/e2e/predictable) is too predictable"),
        "{err}"
    );
    assert!(!err.contains("abc1abc1"), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SECRET_ID", "veil/e2e/published-upper")],
    ));
    assert!(
        err.contains("(secretsmanager:veil/e2e/published-upper): the value is a published example"),
        "{err}"
    );

    // A short psoxy salt needs the migration flag, and the error says so.
    let err = serve_refused(&config(
        Some(&moto),
        &[
            ("VEIL_SCHEME", "psoxy"),
            ("VEIL_SALT_SECRET_ID", "veil/e2e/psoxy-short"),
        ],
    ));
    assert!(
        err.contains("(secretsmanager:veil/e2e/psoxy-short) is too short for the psoxy scheme")
            && err.contains("VEIL_ALLOW_LEGACY_SHORT_SALT=true"),
        "{err}"
    );
    assert!(!err.contains("Contoso2019"), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/missing")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (ssm:/veil/e2e/missing): SSM parameter `/veil/e2e/missing` \
             was not found in region eu-west-1"
        ),
        "{err}"
    );

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SECRET_ID", "veil/e2e/missing")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (secretsmanager:veil/e2e/missing): Secrets Manager secret \
             `veil/e2e/missing` was not found in region eu-west-1"
        ),
        "{err}"
    );

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/short")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (ssm:/veil/e2e/short) is too short for the hmac scheme: \
             it needs at least 32 bytes"
        ),
        "{err}"
    );
    assert!(!err.contains("too-short-salt"), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SECRET_ID", "veil/e2e/published")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (secretsmanager:veil/e2e/published): the value is a \
             published example, not a secret"
        ),
        "{err}"
    );
    assert!(!err.contains("NOT-FOR-PRODUCTION"), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/plain")],
    ));
    assert!(
        err.contains("(ssm:/veil/e2e/plain): the parameter is a String, not a SecureString"),
        "{err}"
    );
    assert!(!err.contains(SALT), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[("VEIL_SALT_SECRET_ID", "veil/e2e/json")],
    ));
    assert!(
        err.contains("the secret holds JSON key/value pairs"),
        "{err}"
    );
    assert!(!err.contains(SALT), "{err}");

    let err = serve_refused(&config(
        Some(&moto),
        &[
            ("VEIL_SALT", SALT),
            ("VEIL_SALT_SECRET_ID", "veil/e2e/salt"),
        ],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt is configured more than once (VEIL_SALT, \
             VEIL_SALT_SECRET_ID are all set)"
        ),
        "{err}"
    );

    let err = serve_refused(&config(
        Some(&moto),
        &[
            ("VEIL_SALT", SALT),
            ("VEIL_ENCRYPTION_KEY", KEY),
            ("VEIL_ENCRYPTION_KEYS_FILE", "/nonexistent/keys"),
        ],
    ));
    assert!(
        err.contains(
            "the encryption keys are configured more than once (VEIL_ENCRYPTION_KEY, \
             VEIL_ENCRYPTION_KEYS_FILE are all set)"
        ),
        "{err}"
    );

    // No AWS credentials at all: say where they come from.
    let err = serve_refused(&config(
        None,
        &[("VEIL_SALT_SSM_PARAMETER", "/veil/e2e/salt")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (ssm:/veil/e2e/salt): no AWS credentials in the \
             environment (AWS_ACCESS_KEY_ID"
        ),
        "{err}"
    );
    assert!(
        err.contains("on Lambda the execution role provides them"),
        "{err}"
    );

    let err = serve_refused(&config(
        None,
        &[("VEIL_SALT_FILE", "/nonexistent/veil-salt")],
    ));
    assert!(
        err.contains(
            "the pseudonymization salt (file:/nonexistent/veil-salt): cannot read the file"
        ),
        "{err}"
    );
}
