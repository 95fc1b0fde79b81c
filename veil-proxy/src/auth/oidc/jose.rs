//! The compact JWS: the `Authorization` header's shape, the JOSE header
//! (what must never be verified is refused before any key is looked at),
//! and the signature and registered claims.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::config::CallerAuthConfig;
use super::unauthenticated;
use crate::error::ProxyError;

/// Largest bearer token accepted (Google ID tokens are about 1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The parts of the token's JOSE header that matter here.
pub(super) struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Extracts the token from `Bearer <token>` and checks its shape.
pub(super) fn bearer_token(authorization: Option<&str>) -> Result<&str, ProxyError> {
    let value = authorization.ok_or_else(|| unauthenticated("missing Authorization header"))?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthenticated(
            "Authorization header must use the Bearer scheme",
        ));
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Err(unauthenticated("bearer token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthenticated("bearer token is too long"));
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if token.split('.').count() != 3 || !token.bytes().all(|b| b == b'.' || base64url(b)) {
        return Err(unauthenticated("bearer token is not a JWT"));
    }
    Ok(token)
}

/// Reads the JOSE header and refuses what must never be verified.
pub(super) fn token_header(token: &str) -> Result<TokenHeader, ProxyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthenticated("bearer token is not a JWT"));
    };
    let malformed = || unauthenticated("token header is malformed");
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let Ok(Value::Object(header)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(malformed());
    };
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Err(unauthenticated("token header lacks `alg`"));
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(unauthenticated(
            "unsigned tokens (alg none) are not accepted",
        ));
    }
    if alg
        .get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("hs"))
    {
        return Err(unauthenticated(
            "symmetric signing algorithms (HS*) are not accepted",
        ));
    }
    let alg =
        Algorithm::from_str(alg).map_err(|_| unauthenticated("signing algorithm not accepted"))?;
    if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
        return Err(unauthenticated(
            "symmetric signing algorithms (HS*) are not accepted",
        ));
    }
    if header.contains_key("crit") {
        return Err(unauthenticated(
            "token uses critical header extensions, which are not supported",
        ));
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(malformed()),
    };
    if payload.is_empty() {
        return Err(unauthenticated("token claims are malformed"));
    }
    if signature.is_empty() {
        return Err(unauthenticated("token signature is missing"));
    }
    Ok(TokenHeader { alg, kid })
}

/// Checks the signature and the registered claims; returns the claims.
pub(super) fn check_token(
    config: &CallerAuthConfig,
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
) -> Result<Map<String, Value>, ProxyError> {
    let mut validation = Validation::new(alg);
    validation.leeway = config.leeway_secs;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_audience(&config.audiences);
    validation.set_issuer(&[config.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| jwt_error(e.kind()))?;
    let Value::Object(claims) = data.claims else {
        return Err(unauthenticated("token claims are malformed"));
    };
    // `iss` must be exactly the issuer, not a list that contains it.
    if claims.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(unauthenticated("issuer not accepted"));
    }
    match claims.get("iat") {
        None | Some(Value::Null) => {}
        Some(Value::Number(iat)) => {
            let latest = unix_now().saturating_add(config.leeway_secs) as f64;
            if iat.as_f64().is_none_or(|iat| iat > latest) {
                return Err(unauthenticated("token issued in the future"));
            }
        }
        Some(_) => return Err(unauthenticated("claim `iat` is malformed")),
    }
    Ok(claims)
}

fn jwt_error(kind: &jsonwebtoken::errors::ErrorKind) -> ProxyError {
    use jsonwebtoken::errors::ErrorKind as Jwt;
    match kind {
        Jwt::InvalidSignature => unauthenticated("invalid token signature"),
        Jwt::ExpiredSignature => unauthenticated("token expired"),
        Jwt::ImmatureSignature => unauthenticated("token not yet valid"),
        Jwt::InvalidAudience => unauthenticated("audience not accepted"),
        Jwt::InvalidIssuer => unauthenticated("issuer not accepted"),
        Jwt::MissingRequiredClaim(claim) => unauthenticated(format!(
            "token lacks required claim `{}`",
            claim_name(claim)
        )),
        Jwt::InvalidClaimFormat(claim) => {
            unauthenticated(format!("claim `{}` is malformed", claim_name(claim)))
        }
        Jwt::InvalidAlgorithm | Jwt::MissingAlgorithm | Jwt::InvalidAlgorithmName => {
            unauthenticated("signing key does not match the token's algorithm")
        }
        Jwt::InvalidRsaKey(_)
        | Jwt::InvalidEcdsaKey
        | Jwt::InvalidEddsaKey
        | Jwt::InvalidKeyFormat => unauthenticated("signing key is unusable"),
        Jwt::Base64(_) | Jwt::Json(_) | Jwt::Utf8(_) | Jwt::InvalidToken => {
            unauthenticated("token is malformed")
        }
        _ => unauthenticated("token rejected"),
    }
}

/// Only the registered claim names jsonwebtoken reports; never anything
/// taken from the token.
fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        _ => "?",
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
