//! A real `moto_server` (the AWS API emulator, installed pinned by
//! `scripts/install-test-tools.sh`) on 127.0.0.1 and a free port, killed on
//! drop; plus the AWS calls the tests use to set it up, made with Veil's
//! own SigV4 client (`veil_proxy::AwsClient`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use veil_proxy::{AwsCall, AwsClient, AwsConfig, AwsService};

/// The credentials and region the tests give Veil (moto accepts any).
pub const ACCESS_KEY_ID: &str = "AKIAVEILTESTMOTO0001";
pub const SECRET_ACCESS_KEY: &str = "veil-test-moto-secret-access-key-0001";
pub const SESSION_TOKEN: &str = "veil-test-moto-session-token";
pub const REGION: &str = "eu-west-1";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

const NOT_INSTALLED: &str = "moto_server is not on PATH: run `bash scripts/install-test-tools.sh` \
     and put .tools/bin on PATH (scripts/test.sh does both)";

/// A running `moto_server`.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Moto {
    /// Starts `moto_server` and waits until it answers.
    pub async fn start() -> Moto {
        let probe = super::client();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = dir.path().join("moto.log");
            let port = super::free_port();
            let child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&log)
                        .expect("log"),
                ))
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{NOT_INSTALLED}"),
                Err(e) => panic!("could not run moto_server: {e}"),
            };
            let mut moto = Moto {
                child: Some(child),
                port,
                log,
                _dir: dir,
            };
            if moto.wait_ready(&probe).await {
                return moto;
            }
        }
        panic!("could not start moto_server on a free port");
    }

    async fn wait_ready(&mut self, probe: &reqwest::Client) -> bool {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(status) = exited {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                if log.contains("Address already in use") {
                    return false;
                }
                panic!("moto_server exited early ({status}):\n{log}");
            }
            let answered = probe
                .get(format!("{}/moto-api/", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answered.is_ok() {
                return true;
            }
            assert!(
                Instant::now() < until,
                "moto_server did not answer within 60 s:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS environment that points Veil at this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT_URL", self.url()),
        ]
    }

    /// The same environment as a lookup for in-process providers.
    pub fn lookup(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
        let mut map: HashMap<String, String> = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, v) in extra {
            map.insert(k.to_string(), v.to_string());
        }
        move |name: &str| map.get(name).cloned().filter(|v| !v.is_empty())
    }

    /// Veil's AWS client, pointed at this moto.
    pub fn client(&self) -> AwsClient {
        let config = AwsConfig::from_lookup(&self.lookup(&[])).expect("aws config");
        AwsClient::new(super::client(), config)
    }

    async fn call(&self, service: AwsService, target: &str, body: Value) -> Value {
        let action = target.rsplit('.').next().unwrap_or(target);
        let call = AwsCall {
            service,
            region: REGION,
            action,
            resource: "*",
            what: "moto setup",
        };
        self.client()
            .json_call(&call, target, &body)
            .await
            .unwrap_or_else(|e| panic!("moto {target}: {e}"))
    }

    /// `ssm:PutParameter` (type `SecureString`, `String`, …).
    pub async fn put_parameter(&self, name: &str, value: &str, kind: &str) {
        self.call(
            AwsService::Ssm,
            "AmazonSSM.PutParameter",
            json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
        )
        .await;
    }

    /// `secretsmanager:CreateSecret`; the secret's ARN.
    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let answer = self
            .call(
                AwsService::SecretsManager,
                "secretsmanager.CreateSecret",
                json!({"Name": name, "SecretString": value}),
            )
            .await;
        answer["ARN"].as_str().expect("ARN").to_string()
    }

    /// `cognito-identity:CreateIdentityPool` with a developer provider; the pool id.
    pub async fn create_identity_pool(&self, name: &str, developer_provider: &str) -> String {
        let answer = self
            .call(
                AwsService::CognitoIdentity,
                "AWSCognitoIdentityService.CreateIdentityPool",
                json!({
                    "IdentityPoolName": name,
                    "AllowUnauthenticatedIdentities": false,
                    "DeveloperProviderName": developer_provider,
                }),
            )
            .await;
        answer["IdentityPoolId"]
            .as_str()
            .expect("IdentityPoolId")
            .to_string()
    }
}
