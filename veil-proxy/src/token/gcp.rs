//! The `gcp` host identity: an ID token of the service account Veil runs
//! as (Cloud Run, GCE, GKE with Workload Identity), from the metadata
//! server:
//!
//! ```text
//! GET http://{GCE_METADATA_HOST}/computeMetadata/v1/instance/service-accounts/default/identity
//!     ?audience=api://AzureADTokenExchange&format=full
//! Metadata-Flavor: Google
//! ```
//!
//! Google signs it as `https://accounts.google.com`; its `sub` is the
//! service account's unique (numeric) id. That issuer, subject and
//! audience go into the app registration's federated credential.

use std::sync::Arc;
use std::time::Duration;

use super::entra::{error_chain, looks_like_jwt};
use super::{BoxFuture, HostIdentity, ProviderConfigError, TokenError};
use crate::env::{Lookup, ProcessEnv};
use veil_engine::Secret;

/// The metadata server's `host[:port]` (the standard Google variable).
pub const ENV_METADATA_HOST: &str = "GCE_METADATA_HOST";
/// The audience of the ID token (default `api://AzureADTokenExchange`).
pub const ENV_GCP_AUDIENCE: &str = "VEIL_GCP_AUDIENCE";
/// The metadata server's default host.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// The audience Entra ID expects by default in federated credentials.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The path of the identity endpoint.
pub const IDENTITY_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

const TIMEOUT: Duration = Duration::from_secs(5);

/// The metadata-server host identity.
#[derive(Debug, Clone)]
pub struct GcpMetadata {
    http: reqwest::Client,
    host: String,
    audience: String,
}

impl GcpMetadata {
    /// `host` is `host[:port]` without scheme.
    pub fn new(host: &str, audience: &str) -> Result<Self, ProviderConfigError> {
        let host = host.trim().to_string();
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !valid {
            return Err(ProviderConfigError::MetadataHost {
                got: host
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>(),
            });
        }
        let audience = audience.trim().to_string();
        if audience.is_empty() {
            return Err(ProviderConfigError::EmptyAudience);
        }
        // The metadata server is link-local: never through a proxy.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ProviderConfigError::MetadataClient)?;
        Ok(GcpMetadata {
            http,
            host,
            audience,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}{IDENTITY_PATH}", self.host)
    }

    async fn fetch_token(&self) -> Result<Secret, TokenError> {
        let resp = self
            .http
            .get(self.url())
            .query(&[("audience", self.audience.as_str()), ("format", "full")])
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| TokenError {
                message: format!(
                    "metadata server unreachable: not running on GCP (Cloud Run, GCE, GKE)? ({} at {}: {}); outside GCP choose another VEIL_TOKEN_PROVIDER",
                    if e.is_timeout() { "no answer in time" } else { "cannot connect" },
                    self.host,
                    error_chain(&e)
                ),
                retryable: true,
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| TokenError {
            message: format!(
                "the metadata server's answer broke off: {}",
                error_chain(&e)
            ),
            retryable: true,
        })?;
        match status.as_u16() {
            200 => {}
            404 => {
                return Err(TokenError {
                    message: format!(
                        "the metadata server at {} has no default service account identity (404): attach a service account to the Cloud Run service / VM, or on GKE enable Workload Identity for the pod",
                        self.host
                    ),
                    retryable: false,
                })
            }
            s => {
                return Err(TokenError {
                    message: format!(
                        "the metadata server at {} refused the identity request with HTTP {s}",
                        self.host
                    ),
                    retryable: s == 429 || s >= 500,
                })
            }
        }
        let text = std::str::from_utf8(&body).map(str::trim).unwrap_or("");
        if !looks_like_jwt(text) {
            return Err(TokenError {
                message: format!(
                    "the metadata server at {} did not answer with an ID token (JWT)",
                    self.host
                ),
                retryable: true,
            });
        }
        Ok(Secret::from(text))
    }
}

impl HostIdentity for GcpMetadata {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        Box::pin(self.fetch_token())
    }
}

/// From `GCE_METADATA_HOST` and `VEIL_GCP_AUDIENCE`. The metadata server is
/// called with its own proxy-free client, so `_http` is not used; the
/// parameter keeps the shape every provider's `from_env` has.
pub fn from_env(_http: reqwest::Client) -> Result<Arc<dyn HostIdentity>, ProviderConfigError> {
    Ok(Arc::new(from_lookup(&ProcessEnv)?))
}

/// [`from_env`] from any [`Lookup`].
pub fn from_lookup(env: Lookup<'_>) -> Result<GcpMetadata, ProviderConfigError> {
    let host = env
        .get(ENV_METADATA_HOST)
        .unwrap_or_else(|| DEFAULT_METADATA_HOST.into());
    let audience = env
        .get(ENV_GCP_AUDIENCE)
        .unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    GcpMetadata::new(&host, &audience)
}

#[cfg(test)]
mod tests {
    use super::*;
    use veil_test_support::server::{Reply as Canned, TestServer};

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";

    #[tokio::test]
    async fn asks_for_a_full_id_token_with_the_metadata_flavor_header() {
        let server = TestServer::respond_with(|_, req| {
            if req.header("metadata-flavor") == Some("Google") {
                Canned::text(200, JWT)
            } else {
                Canned::text(403, "Missing Metadata-Flavor:Google header.")
            }
        })
        .await;
        let gcp = GcpMetadata::new(&server.addr.to_string(), DEFAULT_AUDIENCE).unwrap();
        let t = gcp.fetch().await.unwrap();
        assert_eq!(t.expose(), JWT.as_bytes());
        let req = server.requests().pop().unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.target,
            format!("{IDENTITY_PATH}?audience=api%3A%2F%2FAzureADTokenExchange&format=full")
        );
    }

    #[tokio::test]
    async fn explains_what_is_wrong() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = GcpMetadata::new(&format!("127.0.0.1:{port}"), DEFAULT_AUDIENCE)
            .unwrap()
            .fetch()
            .await
            .unwrap_err();
        assert!(
            e.message.starts_with(
                "metadata server unreachable: not running on GCP (Cloud Run, GCE, GKE)?"
            ),
            "{}",
            e.message
        );
        let server = TestServer::script(vec![
            Canned::text(404, "not found"),
            Canned::text(200, "<html>captive portal</html>"),
        ])
        .await;
        let gcp = GcpMetadata::new(&server.addr.to_string(), DEFAULT_AUDIENCE).unwrap();
        let e = gcp.fetch().await.unwrap_err();
        assert!(e.message.contains("service account"), "{}", e.message);
        assert!(!e.retryable);
        let e = gcp.fetch().await.unwrap_err();
        assert!(
            e.message.contains("did not answer with an ID token"),
            "{}",
            e.message
        );
        assert!(GcpMetadata::new("http://evil/x", DEFAULT_AUDIENCE).is_err());
    }
}
