//! The test-only RSA keys of `tests/fixtures/keys` (generated once with
//! `openssl genpkey`, converted to PKCS#1 as `EncodingKey::from_rsa_der`
//! wants) and their JWKs.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

pub const RSA1_PEM: &str = include_str!("../../tests/fixtures/keys/rsa1.pem");
pub const RSA1_PUBLIC_PEM: &str = include_str!("../../tests/fixtures/keys/rsa1.pub.pem");
pub const RSA2_PEM: &str = include_str!("../../tests/fixtures/keys/rsa2.pem");

/// The DER bytes inside a PEM armour.
pub fn der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).expect("PEM body")
}

/// The signing key of an RSA private key in PEM.
pub fn rsa_key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_der(&der(pem))
}

/// The public JWK (RS256, `use: sig`) of an RSA private key, with `kid`.
pub fn jwk(pem: &str, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&rsa_key(pem), Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_value(&jwk).expect("jwk as JSON")
}

/// A JWK set.
pub fn jwks(keys: Vec<Value>) -> Value {
    json!({ "keys": keys })
}
