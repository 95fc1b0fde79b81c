//! The `file` host identity: a token file that the platform keeps fresh —
//! a Kubernetes projected service-account token (AKS, EKS, GKE, any
//! cluster whose OIDC issuer Entra ID can reach), or any other workload
//! that writes a signed JWT to a file. The file is re-read at every fetch,
//! so rotations are picked up.

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use super::entra::looks_like_jwt;
use super::{BoxFuture, HostIdentity, ProviderConfigError, TokenError};
use crate::env::{Lookup, ProcessEnv};
use veil_engine::Secret;

/// The path of the token file.
pub const ENV_FEDERATED_TOKEN_FILE: &str = "VEIL_FEDERATED_TOKEN_FILE";
/// The path Azure Workload Identity's webhook sets; used when
/// `VEIL_FEDERATED_TOKEN_FILE` is not set.
pub const ENV_AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// The largest token file Veil reads.
const MAX_BYTES: u64 = 64 * 1024;

/// A token file.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
    /// The variable the path came from, for messages.
    source: &'static str,
}

impl TokenFile {
    pub fn new(path: impl Into<PathBuf>, source: &'static str) -> Self {
        TokenFile {
            path: path.into(),
            source,
        }
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Secret, TokenError> {
        let shown = self.path.display();
        let fail = |message: String, retryable: bool| TokenError { message, retryable };
        let meta = std::fs::metadata(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(
                format!(
                    "the federated token file {shown} (from {}) does not exist: is the projected service account token volume mounted?",
                    self.source
                ),
                true,
            ),
            std::io::ErrorKind::PermissionDenied => fail(
                format!(
                    "the federated token file {shown} (from {}) is not readable by Veil's user",
                    self.source
                ),
                false,
            ),
            _ => fail(
                format!("cannot read the federated token file {shown} (from {}): {e}", self.source),
                true,
            ),
        })?;
        if !meta.is_file() {
            return Err(fail(
                format!("{shown} (from {}) is not a file", self.source),
                false,
            ));
        }
        if meta.len() > MAX_BYTES {
            return Err(fail(
                format!(
                    "the federated token file {shown} (from {}) is larger than {MAX_BYTES} bytes: not a token",
                    self.source
                ),
                false,
            ));
        }
        let bytes = std::fs::read(&self.path).map_err(|e| {
            fail(
                format!(
                    "cannot read the federated token file {shown} (from {}): {e}",
                    self.source
                ),
                true,
            )
        })?;
        let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Err(fail(
                format!(
                    "the federated token file {shown} (from {}) is empty",
                    self.source
                ),
                true,
            ));
        }
        if !looks_like_jwt(text) {
            return Err(fail(
                format!(
                    "the federated token file {shown} (from {}) does not hold a JWT",
                    self.source
                ),
                false,
            ));
        }
        Ok(Secret::from(text))
    }
}

impl HostIdentity for TokenFile {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Secret, TokenError>> {
        let this = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || this.read())
                .await
                .unwrap_or_else(|_| {
                    Err(TokenError {
                        message: "reading the federated token file failed".into(),
                        retryable: true,
                    })
                })
        })
    }
}

/// From `VEIL_FEDERATED_TOKEN_FILE`, else `AZURE_FEDERATED_TOKEN_FILE`.
/// The file need not exist yet; each fetch reads it.
pub fn from_env(_http: reqwest::Client) -> Result<Arc<dyn HostIdentity>, ProviderConfigError> {
    Ok(Arc::new(from_lookup(&ProcessEnv)?))
}

/// [`from_env`] from any [`Lookup`].
pub fn from_lookup(env: Lookup<'_>) -> Result<TokenFile, ProviderConfigError> {
    let (path, source) = match env.get(ENV_FEDERATED_TOKEN_FILE) {
        Some(p) => (p, ENV_FEDERATED_TOKEN_FILE),
        None => match env.get(ENV_AZURE_FEDERATED_TOKEN_FILE) {
            Some(p) => (p, ENV_AZURE_FEDERATED_TOKEN_FILE),
            None => return Err(ProviderConfigError::NoTokenFile),
        },
    };
    Ok(TokenFile::new(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_comes_from_veil_then_azure_variables() {
        use crate::env::MapEnv;
        let both = MapEnv::new(&[
            (ENV_FEDERATED_TOKEN_FILE, "/veil/token"),
            (ENV_AZURE_FEDERATED_TOKEN_FILE, "/azure/token"),
        ]);
        let file = from_lookup(&both).unwrap();
        assert_eq!(
            (file.path(), file.source),
            (Path::new("/veil/token"), ENV_FEDERATED_TOKEN_FILE)
        );
        let azure = MapEnv::new(&[(ENV_AZURE_FEDERATED_TOKEN_FILE, "/azure/token")]);
        assert_eq!(
            from_lookup(&azure).unwrap().source,
            ENV_AZURE_FEDERATED_TOKEN_FILE
        );
        let e = from_lookup(&MapEnv::default()).unwrap_err().to_string();
        assert!(e.contains(ENV_FEDERATED_TOKEN_FILE), "{e}");
    }

    #[tokio::test]
    async fn reads_the_file_at_each_fetch() {
        let dir = std::env::temp_dir().join(format!("veil-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let file = TokenFile::new(&path, ENV_FEDERATED_TOKEN_FILE);
        let e = file.fetch().await.unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert!(
            e.message.contains(ENV_FEDERATED_TOKEN_FILE),
            "{}",
            e.message
        );
        std::fs::write(&path, "aaa.bbb.ccc\n").unwrap();
        assert_eq!(file.fetch().await.unwrap().expose(), b"aaa.bbb.ccc");
        std::fs::write(&path, "ddd.eee.fff").unwrap();
        assert_eq!(file.fetch().await.unwrap().expose(), b"ddd.eee.fff");
        std::fs::write(&path, "").unwrap();
        assert!(file.fetch().await.unwrap_err().message.contains("is empty"));
        std::fs::write(&path, "not a token").unwrap();
        let e = file.fetch().await.unwrap_err();
        assert!(e.message.contains("does not hold a JWT"), "{}", e.message);
        assert!(
            !e.message.contains("not a token"),
            "the content is never shown"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
