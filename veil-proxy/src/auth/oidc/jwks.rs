//! The issuer's JSON Web Key Set: which keys are usable, and which one
//! verifies a given token.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use super::unauthenticated;
use crate::error::ProxyError;

/// Keys beyond this many in one JWKS are ignored.
const MAX_KEYS: usize = 100;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// The usable keys of one fetched JWKS.
pub(super) struct KeySet {
    pub keys: Vec<StoredKey>,
}

pub(super) struct StoredKey {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`, when it names one.
    alg: Option<Algorithm>,
    pub key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

pub(super) enum Selection {
    Found(usize),
    /// No key has the token's `kid` (or, without `kid`, none fits).
    Missing,
    /// A key has the `kid`, but its type or `alg` does not fit.
    Mismatch,
    /// No `kid`, and several keys fit.
    Ambiguous,
}

pub(super) fn required_kind(alg: Algorithm) -> Option<KeyKind> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(KeyKind::Rsa),
        Algorithm::ES256 => Some(KeyKind::EcP256),
        Algorithm::ES384 => Some(KeyKind::EcP384),
        Algorithm::EdDSA => Some(KeyKind::Ed25519),
        _ => None,
    }
}

fn key_fits(key: &StoredKey, alg: Algorithm) -> bool {
    required_kind(alg) == Some(key.kind) && key.alg.is_none_or(|key_alg| key_alg == alg)
}

pub(super) fn select_key(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Selection {
    match kid {
        Some(kid) => {
            let mut named = set
                .keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Selection::Missing;
            }
            match named.find(|(_, key)| key_fits(key, alg)) {
                Some((index, _)) => Selection::Found(index),
                None => Selection::Mismatch,
            }
        }
        None => {
            let mut fitting = set
                .keys
                .iter()
                .enumerate()
                .filter(|(_, key)| key_fits(key, alg));
            match (fitting.next(), fitting.next()) {
                (Some((index, _)), None) => Selection::Found(index),
                (None, _) => Selection::Missing,
                (Some(_), Some(_)) => Selection::Ambiguous,
            }
        }
    }
}

pub(super) fn selection_error(selection: Selection, kid: Option<&str>) -> ProxyError {
    unauthenticated(match (selection, kid) {
        (Selection::Mismatch, _) => "signing key does not match the token's algorithm",
        (Selection::Ambiguous, _) => "token has no key id and several signing keys match",
        (_, Some(_)) => "unknown signing key id",
        (_, None) => "token has no key id and no signing key matches its algorithm",
    })
}

/// Parses a JWKS, keeping the usable public signature keys and skipping
/// the rest (symmetric keys, encryption keys, unknown types or curves,
/// weak RSA keys).
pub(super) fn parse_jwks(body: &[u8]) -> Result<Vec<StoredKey>, String> {
    #[derive(Deserialize)]
    struct RawJwks {
        keys: Vec<Value>,
    }
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|_| "JWKS is not a valid JWK set".to_string())?;
    let keys: Vec<StoredKey> = raw
        .keys
        .into_iter()
        .take(MAX_KEYS)
        .filter_map(stored_key)
        .collect();
    if keys.is_empty() {
        return Err("JWKS has no usable signing keys".into());
    }
    Ok(keys)
}

fn stored_key(value: Value) -> Option<StoredKey> {
    // The JWK's `alg`, read from the JSON itself: a key for anything but a
    // supported signature algorithm (e.g. `RSA-OAEP`) is skipped.
    let alg = match value.get("alg") {
        None | Some(Value::Null) => None,
        Some(alg) => {
            let alg = Algorithm::from_str(alg.as_str()?).ok()?;
            required_kind(alg)?;
            Some(alg)
        }
    };
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(params.n.trim_end_matches('='))
                .ok()?;
            let significant = modulus
                .iter()
                .position(|b| *b != 0)
                .map_or(0, |first| modulus.len() - first);
            if significant < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyKind::EcP256,
            EllipticCurve::P384 => KeyKind::EcP384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        _ => return None,
    };
    if alg.is_some_and(|alg| required_kind(alg) != Some(kind)) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(StoredKey {
        kid: jwk.common.key_id.clone(),
        kind,
        alg,
        key,
    })
}
