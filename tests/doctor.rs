//! `veil doctor` against the test components: the strict test Entra ID and
//! its GCP metadata server (`tests/support/entra.rs`) and the recording test
//! Graph server. One green run, then one red run per failure class, each
//! checked for the advice an administrator needs.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::entra::{self, FederatedCredential, TestEntra};
use support::*;

const CONNECTOR: &str = "outlook-mail";
const PERMISSIONS: [&str; 4] = [
    "Mail.ReadBasic.All",
    "MailboxSettings.Read",
    "User.Read.All",
    "GroupMember.Read.All",
];
const USER: &str = "5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61";

struct Setup {
    entra: TestEntra,
    graph: GraphServer,
}

async fn setup() -> Setup {
    let entra = TestEntra::start().await;
    entra.set_roles(&PERMISSIONS);
    let graph = GraphServer::start(CONNECTOR).await;
    graph.authorize_with(entra.graph_authorizer());
    graph.script(
        "/v1.0/users",
        Reply::json(200, &json!({"value": [{"id": USER}]})),
    );
    graph.script(
        &format!("/v1.0/users/{USER}/mailFolders/SentItems/messages"),
        Reply::json(200, &json!({"value": [{"id": "AAMkAD"}]})),
    );
    Setup { entra, graph }
}

struct Run {
    ok: bool,
    json: Value,
    text: String,
}

impl Run {
    fn check(&self, step: &str) -> Vec<&Value> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["step"] == step)
            .collect()
    }

    fn status(&self, step: &str) -> Vec<String> {
        self.check(step)
            .iter()
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Setup {
    fn doctor(&self, env: &[(&str, &str)]) -> Run {
        self.doctor_with(CONNECTOR, &[], env)
    }

    fn doctor_with(&self, connector: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let run = |json: bool| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
            cmd.args(["doctor", "--connector", connector, "--upstream"])
                .arg(self.graph.url())
                .args(args);
            if json {
                cmd.arg("--json");
            }
            for name in VEIL_ENV {
                cmd.env_remove(name);
            }
            cmd.env("VEIL_SALT", SALT)
                .env("VEIL_ENCRYPTION_KEY", KEY)
                .env("VEIL_TOKEN_PROVIDER", "gcp")
                .env("VEIL_TENANT_ID", entra::TENANT_ID)
                .env("VEIL_CLIENT_ID", entra::CLIENT_ID)
                .env("VEIL_ENTRA_AUTHORITY", self.entra.authority())
                .env("GCE_METADATA_HOST", self.entra.metadata_host());
            for (n, v) in env {
                if v.is_empty() {
                    cmd.env_remove(n);
                } else {
                    cmd.env(n, v);
                }
            }
            cmd.output().expect("run veil doctor")
        };
        let out = run(true);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json is not JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let text_out = run(false);
        assert_eq!(out.status.success(), text_out.status.success());
        assert_eq!(json["ok"], out.status.success(), "exit code and `ok` agree");
        let text = String::from_utf8_lossy(&text_out.stdout).into_owned();
        // Never a token in what the doctor prints.
        for t in self.entra.host_tokens() {
            let sig = t.rsplit('.').next().unwrap();
            assert!(!text.contains(sig) && !json.to_string().contains(sig));
        }
        assert!(
            !text.contains("eyJ"),
            "something JWT-shaped printed:\n{text}"
        );
        assert!(!text.contains(SALT) && !text.contains(KEY));
        Run {
            ok: out.status.success(),
            json,
            text,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn green_run() {
    let s = setup().await;
    let run = s.doctor(&[]);
    assert!(run.ok, "{}", run.text);
    for step in [
        "rules",
        "secrets",
        "host identity",
        "entra exchange",
        "permissions",
    ] {
        assert_eq!(run.status(step), ["pass"], "{step}:\n{}", run.text);
    }
    assert_eq!(run.status("graph"), ["pass", "pass"], "{}", run.text);
    let host = run.check("host identity")[0]["details"].to_string();
    assert!(
        host.contains(&format!("iss: {}", s.entra.issuer())),
        "{host}"
    );
    assert!(
        host.contains(&format!("sub: {}", entra::GCP_SUBJECT)),
        "{host}"
    );
    assert!(host.contains("aud: api://AzureADTokenExchange"), "{host}");
    assert!(run.text.contains("all checks passed"));
    // Two runs (--json and text), two probes each, with the exchanged
    // token (the test Graph refuses any other).
    let targets: Vec<String> = s
        .graph
        .requests()
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert!(targets[0].starts_with("/v1.0/users?"));
    assert!(targets[1].starts_with(&format!(
        "/v1.0/users/{USER}/mailFolders/SentItems/messages?"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_secrets_are_red() {
    let s = setup().await;
    let run = s.doctor(&[("VEIL_SALT", "short")]);
    assert!(!run.ok);
    assert_eq!(run.status("secrets"), ["fail"], "{}", run.text);
    assert!(run.text.contains("VEIL_SALT"), "{}", run.text);
    assert!(run.text.contains("openssl rand"), "{}", run.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_identity_outside_gcp() {
    let s = setup().await;
    let run = s.doctor(&[("GCE_METADATA_HOST", &format!("127.0.0.1:{}", free_port()))]);
    assert!(!run.ok);
    assert_eq!(run.status("host identity"), ["fail"]);
    assert_eq!(run.status("entra exchange"), ["skipped"]);
    assert!(run.text.contains("not running on GCP"), "{}", run.text);
    assert_eq!(s.entra.exchanges(), 0);
    assert_eq!(s.graph.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_refusals_name_the_fix() {
    let s = setup().await;
    // The Object ID given instead of the Application (client) ID.
    let run = s.doctor(&[("VEIL_CLIENT_ID", "0f0e0d0c-0b0a-4909-8807-060504030201")]);
    assert_eq!(run.status("entra exchange"), ["fail"], "{}", run.text);
    assert!(run.text.contains("AADSTS700016"), "{}", run.text);
    assert!(run.text.contains("Object ID"), "{}", run.text);

    // No federated credential matches the presented subject.
    let mut cred = s.entra.credential();
    cred.subject = "999999999999999999999".into();
    s.entra.set_credential(FederatedCredential { ..cred });
    let run = s.doctor(&[]);
    assert_eq!(run.status("entra exchange"), ["fail"], "{}", run.text);
    assert!(run.text.contains("AADSTS700213"), "{}", run.text);
    assert!(
        run.text.contains(entra::GCP_SUBJECT),
        "the presented subject is shown:\n{}",
        run.text
    );
    assert_eq!(run.status("permissions"), ["skipped"]);
    assert_eq!(s.graph.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_is_red() {
    let s = setup().await;
    let run = s.doctor(&[("VEIL_TENANT_ID", "11111111-2222-4333-8444-555555555555")]);
    assert_eq!(run.status("entra exchange"), ["fail"], "{}", run.text);
    assert!(run.text.contains("AADSTS90002"), "{}", run.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_excess_permissions_are_red() {
    let s = setup().await;
    s.entra.set_roles(&[
        "User.Read.All",
        "Mail.Read",
        "Mail.ReadWrite",
        "MailboxSettings.Read",
    ]);
    let run = s.doctor(&[]);
    assert!(!run.ok);
    assert_eq!(run.status("permissions"), ["fail"], "{}", run.text);
    let summary = run.check("permissions")[0]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains("missing (requests will fail): GroupMember.Read.All"),
        "{summary}"
    );
    assert!(
        summary.contains("write permissions (never needed): Mail.ReadWrite"),
        "{summary}"
    );
    assert!(
        summary.contains("over-privileged, not needed: Mail.Read"),
        "{summary}"
    );
    assert!(
        run.text
            .contains("Mail.Read is granted where Mail.ReadBasic.All suffices"),
        "{}",
        run.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_consent_is_explained() {
    let s = setup().await;
    s.entra.set_consent(false);
    let run = s.doctor(&[]);
    assert_eq!(run.status("permissions"), ["fail"], "{}", run.text);
    assert!(run.text.contains("granted:  (none)"), "{}", run.text);
    let graph = run.check("graph");
    assert_eq!(graph[0]["status"], "fail", "{}", run.text);
    assert!(run.text.contains("admin consent"), "{}", run.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_out_mailbox_gets_the_exchange_runbook() {
    let s = setup().await;
    s.graph.script(
        &format!("/v1.0/users/{USER}/mailFolders/SentItems/messages"),
        Reply::json(
            403,
            &json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied. Check credentials and try again."}}),
        ),
    );
    let run = s.doctor(&[]);
    assert!(!run.ok);
    assert_eq!(run.status("graph"), ["pass", "fail"], "{}", run.text);
    for needle in [
        "ErrorAccessDenied",
        "Test-ServicePrincipalAuthorization",
        "Test-ApplicationAccessPolicy",
        "30 minutes",
    ] {
        assert!(run.text.contains(needle), "{needle}:\n{}", run.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_token_is_red() {
    let s = setup().await;
    let run = s.doctor(&[
        ("VEIL_TOKEN_PROVIDER", ""),
        ("VEIL_UPSTREAM_TOKEN", "dev-token"),
    ]);
    assert!(!run.ok);
    assert_eq!(run.status("host identity"), ["fail"], "{}", run.text);
    assert!(run.text.contains("development token"), "{}", run.text);
}

/// With RBAC for Applications the Exchange permissions are granted in
/// Exchange, not consented in Entra: absent from the token's roles, which
/// is expected; the mailbox probe decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_rbac_permissions_are_left_to_the_mailbox_probe() {
    let s = setup().await;
    s.entra
        .set_roles(&["User.Read.All", "GroupMember.Read.All"]);
    let run = s.doctor(&[]);
    assert!(run.ok, "{}", run.text);
    assert_eq!(run.status("permissions"), ["pass"], "{}", run.text);
    assert!(
        run.text
            .contains("not in the token: Mail.ReadBasic.All, MailboxSettings.Read"),
        "{}",
        run.text
    );
    assert_eq!(run.status("graph"), ["pass", "pass"], "{}", run.text);
}

/// `--mailbox` names the mailbox the per-user reads probe, instead of the
/// directory's first user (often out of scope or unlicensed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailbox_given_is_probed() {
    let s = setup().await;
    // The first user listed has no mailbox; the chosen one is in scope.
    s.graph.script(
        &format!("/v1.0/users/{USER}/mailFolders/SentItems/messages"),
        Reply::json(404, &json!({"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is either inactive, soft-deleted, or is hosted on-premise."}})),
    );
    let run = s.doctor(&[]);
    assert_eq!(run.status("graph"), ["pass", "fail"], "{}", run.text);
    assert!(run.text.contains("--mailbox"), "{}", run.text);

    const MAILBOX: &str = "analyst.one@contoso.example";
    s.graph.script(
        &format!("/v1.0/users/{MAILBOX}/mailFolders/SentItems/messages"),
        Reply::json(200, &json!({"value": [{"id": "AAMkAD"}]})),
    );
    let run = s.doctor_with(CONNECTOR, &["--mailbox", MAILBOX], &[]);
    assert!(run.ok, "{}", run.text);
    assert_eq!(run.status("graph"), ["pass", "pass"], "{}", run.text);
    let last = s.graph.requests().last().unwrap().target.clone();
    assert!(
        last.starts_with(&format!(
            "/v1.0/users/{MAILBOX}/mailFolders/SentItems/messages?"
        )),
        "{last}"
    );

    let run = s.doctor_with(CONNECTOR, &["--mailbox", "../groups"], &[]);
    assert!(!run.ok);
    assert!(run.text.contains("--mailbox is not"), "{}", run.text);
}

/// Teams channel and chat messages are protected APIs: a 403 for them
/// before Microsoft's approval is told apart from a missing permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_protected_api_refusal_is_named() {
    const TEAM: &str = "0b7c4f1e-2a3d-4e5f-8a9b-1c2d3e4f5a6b";
    const CHANNEL: &str = "19:a1b2c3d4e5f6@thread.tacv2";
    const CHAT: &str = "19:meeting_abc123@thread.v2";
    let entra = TestEntra::start().await;
    entra.set_roles(&[
        "User.Read.All",
        "Team.ReadBasic.All",
        "Channel.ReadBasic.All",
        "Chat.Read.All",
        "ChannelMessage.Read.All",
        "CallRecords.Read.All",
        "OnlineMeetings.Read.All",
        "OnlineMeetingArtifact.Read.All",
    ]);
    let graph = GraphServer::start("msft-teams").await;
    graph.authorize_with(entra.graph_authorizer());
    let list = |id: &str| Reply::json(200, &json!({"value": [{"id": id}]}));
    graph.script("/v1.0/users", list(USER));
    graph.script("/v1.0/teams", list(TEAM));
    graph.script(&format!("/v1.0/teams/{TEAM}/allChannels"), list(CHANNEL));
    let protected = json!({"error": {"code": "Forbidden", "message": "Invoked API requires Protected API access in application-only context when not using Resource Specific Consent. Visit https://docs.microsoft.com/en-us/graph/teams-protected-apis for more details."}});
    graph.script(
        &format!("/v1.0/teams/{TEAM}/channels/{CHANNEL}/messages"),
        Reply::json(403, &protected),
    );
    graph.script(&format!("/v1.0/users/{USER}/chats"), list(CHAT));
    graph.script(
        &format!("/v1.0/chats/{CHAT}/messages"),
        Reply::json(403, &json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}})),
    );
    let s = Setup { entra, graph };
    let run = s.doctor_with("msft-teams", &[], &[]);
    assert!(!run.ok);
    assert_eq!(run.status("permissions"), ["pass"], "{}", run.text);
    assert_eq!(
        run.status("graph"),
        ["pass", "pass", "pass", "fail", "pass", "fail"],
        "{}",
        run.text
    );
    let graph_checks = run.check("graph");
    let channel = graph_checks[3];
    assert!(
        channel["summary"]
            .as_str()
            .unwrap()
            .contains("Teams protected API not approved"),
        "{channel}"
    );
    assert!(channel["fix"]
        .as_str()
        .unwrap()
        .contains("aka.ms/teamsgraph/requestaccess"));
    let chat = graph_checks[5];
    assert!(
        chat["fix"].as_str().unwrap().contains("admin consent"),
        "{chat}"
    );
    assert!(
        !chat["summary"].as_str().unwrap().contains("not approved"),
        "{chat}"
    );
    // Graph's message is never echoed.
    assert!(!run.text.contains("Invoked API requires"), "{}", run.text);
}
