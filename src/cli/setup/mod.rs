//! `veil setup`: the Microsoft 365 administrator's runbook for one
//! connector — what to consent to and why, how to scope mailbox access, the
//! federated credential for the host, and who needs which Entra role.
//!
//! ```text
//! veil setup --connector NAME --tenant ID --client-id ID [--service-principal-id ID]
//!            [--host aws|aws-cognito|gcp] [--issuer URL --subject S [--audience A]]
//!            [--format text|markdown]
//! ```
//!
//! The steps come in the order they must be done: mailbox scoping and the
//! Teams policies before admin consent, because a consent without them
//! grants tenant-wide access at once (and removing a permission from the app
//! later does not revoke its consent). Nothing is changed anywhere: the
//! command only prints. The permissions
//! come from the connector's shipped rule file (`connector.graphPermissions`),
//! the same list the Entra Terraform grants and `veil doctor` checks.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::LazyLock;

use anyhow::{anyhow, bail};
use regex::Regex;
use veil_engine::{load_builtin_rules, GraphPermission, BUILTIN_CONNECTORS};

mod plan;
pub use plan::Plan;
use plan::*;

/// The audience Entra ID expects in federated host tokens (AWS STS and GCP).
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The issuer of Google-signed ID tokens (Cloud Run's metadata server).
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// The issuer of Cognito identity pool OpenID tokens.
pub const COGNITO_ISSUER: &str = "https://cognito-identity.amazonaws.com";

/// Exchange Online permissions that RBAC for Applications can scope, and
/// the Exchange management role granting each.
pub(crate) const EXCHANGE_ROLES: &[(&str, &str)] = &[
    ("Mail.ReadBasic.All", "Application Mail.ReadBasic"),
    ("Mail.Read", "Application Mail.Read"),
    ("MailboxSettings.Read", "Application MailboxSettings.Read"),
    ("Calendars.Read", "Application Calendars.Read"),
    ("Contacts.Read", "Application Contacts.Read"),
];

/// The Teams application access policy `veil setup` creates and `veil doctor` names.
pub const TEAMS_MEETING_POLICY: &str = "Veil-OnlineMeetings";

/// Microsoft Teams "protected APIs": with application permissions they
/// answer 403 until Microsoft approves the tenant's request.
pub const TEAMS_PROTECTED_PERMISSIONS: &[&str] = &["ChannelMessage.Read.All", "Chat.Read.All"];
/// Microsoft's page on the Teams protected APIs.
pub const TEAMS_PROTECTED_APIS_DOC: &str = "https://learn.microsoft.com/graph/teams-protected-apis";
/// Microsoft's request form for the Teams protected APIs.
pub const TEAMS_PROTECTED_APIS_FORM: &str = "https://aka.ms/teamsgraph/requestaccess";

/// The well-known application id of Microsoft Graph.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
        .expect("static regex")
});
static ROLE_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$").expect("static regex")
});
static COGNITO_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^[a-z]{2}(-[a-z]+)+-[0-9]:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    )
    .expect("static regex")
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKind {
    /// AWS Lambda with `VEIL_TOKEN_PROVIDER=aws-sts` (IAM outbound identity federation).
    Aws,
    /// AWS Lambda with `VEIL_TOKEN_PROVIDER=aws-cognito` (Cognito identity pool).
    AwsCognito,
    /// Google Cloud Run with `VEIL_TOKEN_PROVIDER=gcp`.
    Gcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connector: entra-id, outlook-mail, outlook-cal, msft-teams, outlook-contacts or
    /// outlook-mail-received.
    #[arg(long)]
    pub connector: String,
    /// The Directory (tenant) ID of the Microsoft 365 tenant (a GUID).
    #[arg(long)]
    pub tenant: String,
    /// The Application (client) ID of Veil's app registration (a GUID; not its Object ID).
    #[arg(long = "client-id")]
    pub client_id: String,
    /// The Object ID of Veil's service principal (Enterprise application; deploy/entra output
    /// `service_principal_object_ids`), which Exchange RBAC for Applications takes. Placeholder when absent.
    #[arg(long = "service-principal-id")]
    pub service_principal_id: Option<String>,
    /// Where Veil runs; selects the federated credential to print.
    #[arg(long, value_enum)]
    pub host: Option<HostKind>,
    /// The federated credential's issuer (aws: the account's outbound-federation issuer URL).
    #[arg(long)]
    pub issuer: Option<String>,
    /// The federated credential's subject (aws: role ARN; aws-cognito: identity id; gcp: the service account's numeric unique id).
    #[arg(long)]
    pub subject: Option<String>,
    /// The federated credential's audience (aws-cognito: the identity pool id; default api://AzureADTokenExchange).
    #[arg(long)]
    pub audience: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(&a)?;
    print!("{}", plan.render(a.format));
    Ok(ExitCode::SUCCESS)
}

/// Checks that `value` is a GUID; the error names the flag and where to find the right value.
pub fn check_guid(flag: &str, value: &str, what: &str) -> anyhow::Result<String> {
    let v = value.trim();
    if GUID.is_match(v) {
        return Ok(v.to_ascii_lowercase());
    }
    let hint = if v.is_empty() {
        "it is empty".to_string()
    } else if v.contains('.') {
        format!("`{v}` looks like a domain name; the GUID is required")
    } else if v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("`{v}` has no dashes; write it as 8-4-4-4-12 hex digits")
    } else {
        format!("`{v}` is not 8-4-4-4-12 hex digits")
    };
    bail!("{flag}: {hint}; expected a GUID such as 00000000-0000-0000-0000-000000000000 — {what}")
}

/// Whether a Graph permission only reads.
pub fn is_read_only(permission: &str) -> bool {
    let p = permission.to_ascii_lowercase();
    p.contains(".read")
        && !["write", ".send", ".manage", ".create", "fullcontrol"]
            .iter()
            .any(|w| p.contains(w))
}

/// The federated identity credential for the host.
fn federated_section(a: &Args) -> anyhow::Result<Section> {
    let title = "Federated identity credential (no client secret)";
    let Some(host) = a.host else {
        if a.issuer.is_some() || a.subject.is_some() || a.audience.is_some() {
            bail!("--issuer, --subject and --audience need --host aws, aws-cognito or gcp");
        }
        return Ok(Section::new(title).para("Pass --host aws, aws-cognito or gcp to print the federated credential's values. Veil authenticates to Entra ID with a token its host cloud signs; the app registration has no client secret or certificate."));
    };
    let subject = a
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let issuer = a.issuer.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(i) = issuer {
        if !i.starts_with("https://") || i.contains(char::is_whitespace) {
            bail!("--issuer: `{i}` is not an https URL");
        }
        if i.ends_with('/') {
            bail!("--issuer: `{i}` ends with `/`; Entra compares the issuer exactly with the token's `iss`, which has no trailing slash");
        }
    }
    let (provider, issuer, subject, audience, how) = match host {
        HostKind::Aws => {
            if let Some(s) = subject {
                if s.contains(":assumed-role/") || s.starts_with("arn:aws:sts:") {
                    bail!("--subject: `{s}` is an assumed-role session ARN; the subject is the role's ARN, arn:aws:iam::ACCOUNT:role/NAME (stack output RoleArn)");
                }
                if !ROLE_ARN.is_match(s) {
                    bail!("--subject: `{s}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME, stack output RoleArn)");
                }
            }
            if let Some(aud) = a.audience.as_deref() {
                if aud != TOKEN_EXCHANGE_AUDIENCE {
                    bail!("--audience: with --host aws the audience is {TOKEN_EXCHANGE_AUDIENCE} (VEIL_AWS_STS_AUDIENCE)");
                }
            }
            (
                "aws-sts",
                issuer.map(str::to_string).unwrap_or_else(|| "<the account's issuer URL: aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text>".into()),
                subject.map(str::to_string).unwrap_or_else(|| "<the Lambda execution role ARN: stack output RoleArn>".into()),
                TOKEN_EXCHANGE_AUDIENCE.to_string(),
                "AWS STS signs a JWT for the Lambda's execution role (sts:GetWebIdentityToken, IAM outbound identity federation, enabled once per account with `aws iam enable-outbound-web-identity-federation`). Its `iss` is the account's issuer URL and its `sub` the role ARN.",
            )
        }
        HostKind::AwsCognito => {
            if let Some(i) = issuer {
                if i != COGNITO_ISSUER {
                    bail!("--issuer: with --host aws-cognito the issuer is {COGNITO_ISSUER}");
                }
            }
            if let Some(s) = subject {
                if !COGNITO_ID.is_match(s) {
                    bail!("--subject: `{s}` is not a Cognito identity id (REGION:GUID, e.g. eu-west-1:11111111-2222-3333-4444-555555555555)");
                }
            }
            let aud = a.audience.as_deref().map(str::trim);
            if let Some(p) = aud {
                if !COGNITO_ID.is_match(p) {
                    bail!("--audience: `{p}` is not a Cognito identity pool id (REGION:GUID); with --host aws-cognito the audience is the pool id");
                }
            }
            (
                "aws-cognito",
                COGNITO_ISSUER.to_string(),
                subject.map(str::to_string).unwrap_or_else(|| "<the identity id: IdentityId from aws cognito-identity get-open-id-token-for-developer-identity>".into()),
                aud.map(str::to_string).unwrap_or_else(|| "<the identity pool id: stack output CognitoIdentityPoolId>".into()),
                "Cognito signs an OpenID token for Veil's developer identity (GetOpenIdTokenForDeveloperIdentity). Its `sub` is the identity id and its `aud` the identity pool id.",
            )
        }
        HostKind::Gcp => {
            if let Some(i) = issuer {
                if i != GOOGLE_ISSUER {
                    bail!("--issuer: with --host gcp the issuer is {GOOGLE_ISSUER}");
                }
            }
            if let Some(s) = subject {
                if s.contains('@') {
                    bail!("--subject: `{s}` is an email; the subject is the service account's numeric unique id (Terraform output service_account_unique_id)");
                }
                if !(s.len() >= 15 && s.len() <= 25 && s.chars().all(|c| c.is_ascii_digit())) {
                    bail!("--subject: `{s}` is not a service account's numeric unique id (about 21 digits)");
                }
            }
            if let Some(aud) = a.audience.as_deref() {
                if aud != TOKEN_EXCHANGE_AUDIENCE {
                    bail!("--audience: with --host gcp the audience is {TOKEN_EXCHANGE_AUDIENCE} (VEIL_GCP_AUDIENCE)");
                }
            }
            (
                "gcp",
                GOOGLE_ISSUER.to_string(),
                subject.map(str::to_string).unwrap_or_else(|| "<the service account's numeric unique id: Terraform output service_account_unique_id>".into()),
                TOKEN_EXCHANGE_AUDIENCE.to_string(),
                "Cloud Run's metadata server issues a Google-signed ID token for the service's own service account. Its `sub` is the account's numeric unique id (not its email).",
            )
        }
    };
    Ok(Section::new(title)
        .para(format!("{how} The app registration has no client secret or certificate. `deploy/entra` creates this credential; the values must match the token exactly (AADSTS700213 / AADSTS70021 otherwise)."))
        .table(
            "field",
            "value",
            vec![
                ("VEIL_TOKEN_PROVIDER".into(), provider.into()),
                ("issuer".into(), issuer),
                ("subject".into(), subject),
                ("audience".into(), audience),
            ],
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "1b3c5d7e-9f01-4a23-b456-789abcdef012";

    fn args(connector: &str) -> Args {
        Args {
            connector: connector.into(),
            tenant: TENANT.into(),
            client_id: CLIENT.into(),
            service_principal_id: None,
            host: None,
            issuer: None,
            subject: None,
            audience: None,
            format: Format::Markdown,
        }
    }

    fn err(a: &Args) -> String {
        match Plan::new(a) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn guids_are_checked_with_precise_errors() {
        let mut a = args("outlook-mail");
        a.tenant = "contoso.onmicrosoft.com".into();
        let e = err(&a);
        assert!(
            e.starts_with("--tenant:") && e.contains("domain name"),
            "{e}"
        );
        let mut a = args("outlook-mail");
        a.client_id = "1b3c5d7e9f014a23b456789abcdef012".into();
        let e = err(&a);
        assert!(
            e.starts_with("--client-id:") && e.contains("no dashes"),
            "{e}"
        );
        let mut a = args("outlook-mail");
        a.client_id = "".into();
        assert!(err(&a).contains("--client-id: it is empty"));
        let mut a = args("outlook-mail");
        a.client_id = TENANT.to_uppercase();
        assert!(err(&a).contains("equals --tenant"));
        let mut a = args("outlook-mail");
        a.connector = "sharepoint".into();
        assert!(err(&a).contains("unknown connector `sharepoint`"));
    }

    #[test]
    fn consent_url_is_tenant_specific() {
        let mut a = args("entra-id");
        a.tenant = TENANT.to_uppercase();
        let plan = Plan::new(&a).unwrap();
        assert_eq!(
            plan.consent_url(),
            format!("https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={CLIENT}")
        );
        assert!(!plan.render(Format::Text).contains("/common/adminconsent"));
    }

    #[test]
    fn permissions_come_from_the_rules_and_are_read_only() {
        for c in BUILTIN_CONNECTORS {
            let plan = Plan::new(&args(c)).unwrap();
            let rules = load_builtin_rules(c, "default").unwrap();
            let expected: Vec<String> = rules
                .connector
                .unwrap()
                .graph_permissions
                .into_iter()
                .map(|p| p.permission)
                .collect();
            assert_eq!(plan.permission_names(), expected, "{c}");
            let md = plan.render(Format::Markdown);
            for p in &plan.permissions {
                assert!(
                    md.contains(&format!("| `{}` | {} |", p.permission, p.why)),
                    "{c}: {}",
                    p.permission
                );
            }
            // Veil asks for no write permission (the administrator's own
            // Graph PowerShell scope in the revoke step is not Veil's).
            let table = md
                .split("\n## ")
                .find(|s| s.contains("Microsoft Graph application permissions"))
                .unwrap();
            assert!(!table.contains("ReadWrite"), "{c}");
            assert!(!md.contains("ReadWrite.All` |"), "{c}");
        }
        assert!(is_read_only("Mail.ReadBasic.All"));
        assert!(!is_read_only("Mail.ReadWrite"));
        assert!(!is_read_only("Mail.Send"));
        assert!(!is_read_only("Files.Read.Write"));
    }

    #[test]
    fn mailbox_scoping_only_for_outlook_with_matching_roles() {
        let mail = Plan::new(&args("outlook-mail"))
            .unwrap()
            .render(Format::Text);
        assert!(mail.contains("-Role \"Application Mail.ReadBasic\""));
        assert!(mail.contains("-Role \"Application MailboxSettings.Read\""));
        assert!(!mail.contains("Application Calendars.Read"));
        assert!(mail
            .contains("New-ApplicationAccessPolicy -AppId 1b3c5d7e-9f01-4a23-b456-789abcdef012"));
        assert!(mail.contains("-AccessRight RestrictAccess"));
        assert!(mail.contains("Test-ServicePrincipalAuthorization"));
        assert!(mail.contains("30 minutes"));
        let cal = Plan::new(&args("outlook-cal"))
            .unwrap()
            .render(Format::Text);
        assert!(cal.contains("-Role \"Application Calendars.Read\""));
        assert!(!cal.contains("Application Mail.ReadBasic"));
        let contacts = Plan::new(&args("outlook-contacts"))
            .unwrap()
            .render(Format::Text);
        assert!(contacts.contains(
            "-Role \"Application Contacts.Read\" -CustomResourceScope \"Veil outlook-contacts mailboxes\""
        ), "{contacts}");
        assert!(contacts.contains("-RecipientRestrictionFilter \"MemberOfGroup -eq"));
        assert!(!contacts.contains("Application Mail.ReadBasic"));
        assert!(!contacts.contains("Application Calendars.Read"));
        assert!(contacts.contains("Exchange Administrator"));
        let received = Plan::new(&args("outlook-mail-received"))
            .unwrap()
            .render(Format::Text);
        assert!(received.contains(
            "-Role \"Application Mail.ReadBasic\" -CustomResourceScope \"Veil outlook-mail-received mailboxes\""
        ), "{received}");
        assert!(received.contains("-Role \"Application MailboxSettings.Read\""));
        assert!(!received.contains("Application Mail.Read\""));
        for c in ["entra-id", "msft-teams"] {
            let t = Plan::new(&args(c)).unwrap().render(Format::Text);
            assert!(!t.contains("New-ManagementRoleAssignment"), "{c}");
            assert!(!t.contains("Exchange Administrator"), "{c}");
        }
        let teams = Plan::new(&args("msft-teams")).unwrap().render(Format::Text);
        assert!(teams.contains("New-CsApplicationAccessPolicy -Identity Veil-OnlineMeetings -AppIds \"1b3c5d7e-9f01-4a23-b456-789abcdef012\""));
        assert!(teams.contains(
            "Grant-CsApplicationAccessPolicy -PolicyName Veil-OnlineMeetings -Group <object id of the analysis group>"
        ));
        assert!(
            !teams.contains("-PolicyName Veil-OnlineMeetings -Global"),
            "{teams}"
        );
        assert!(teams.contains("Teams Administrator"));
        assert!(teams.contains("Privileged Role Administrator"));
        assert!(teams.contains("Cloud Application Administrator"));
    }

    #[test]
    fn scoping_and_policies_come_before_consent() {
        for c in BUILTIN_CONNECTORS {
            let plan = Plan::new(&args(c)).unwrap();
            let titles = plan.section_titles();
            let consent = titles
                .iter()
                .position(|t| *t == "Grant admin consent")
                .unwrap();
            for (i, t) in titles.iter().enumerate() {
                if t.starts_with("Limit which mailboxes")
                    || t.starts_with("Teams application access policy")
                    || t.starts_with("Request access to the Teams protected APIs")
                {
                    assert!(i < consent, "{c}: `{t}` after the consent: {titles:?}");
                }
                if t.starts_with("If you move to RBAC") {
                    assert!(i > consent, "{c}: {titles:?}");
                }
            }
        }
        let mail = Plan::new(&args("outlook-mail"))
            .unwrap()
            .render(Format::Text);
        assert!(
            mail.contains("Only once the steps above are done"),
            "{mail}"
        );
        assert!(mail.contains("Remove-MgServicePrincipalAppRoleAssignment"));
        assert!(mail.contains("@('Mail.ReadBasic.All','MailboxSettings.Read')"));
        let dir = Plan::new(&args("entra-id")).unwrap().render(Format::Text);
        assert!(!dir.contains("Only once the steps above are done"));
        assert!(!dir.contains("Remove-MgServicePrincipalAppRoleAssignment"));
    }

    #[test]
    fn teams_protected_apis_are_requested_before_consent() {
        let teams = Plan::new(&args("msft-teams")).unwrap().render(Format::Text);
        assert!(teams.contains(TEAMS_PROTECTED_APIS_FORM), "{teams}");
        assert!(
            teams.contains("`Chat.Read.All`, `ChannelMessage.Read.All`"),
            "{teams}"
        );
        assert!(teams.contains(&format!("application (client) ID {CLIENT}")));
        for c in ["entra-id", "outlook-mail", "outlook-cal"] {
            let t = Plan::new(&args(c)).unwrap().render(Format::Text);
            assert!(!t.contains("protected API"), "{c}");
        }
    }

    #[test]
    fn exchange_rbac_takes_the_service_principal_object_id() {
        const SP: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
        let mut a = args("outlook-cal");
        a.service_principal_id = Some(SP.to_uppercase());
        let t = Plan::new(&a).unwrap().render(Format::Text);
        assert!(t.contains(&format!(
            "New-ServicePrincipal -AppId {CLIENT} -ObjectId {SP}"
        )));
        assert!(t.contains(&format!(
            "New-ManagementRoleAssignment -App {SP} -Role \"Application Calendars.Read\""
        )));
        assert!(!t.contains(&format!("-App {CLIENT}")), "{t}");
        a.service_principal_id = Some(CLIENT.into());
        assert!(err(&a).contains("not the Application (client) ID"));
        let t = Plan::new(&args("outlook-mail"))
            .unwrap()
            .render(Format::Text);
        assert!(t.contains("New-ManagementRoleAssignment -App <service-principal-object-id>"));
        // Calendars.ReadBasic(.All) has no Exchange RBAC role.
        assert!(!EXCHANGE_ROLES
            .iter()
            .any(|(p, _)| p.starts_with("Calendars.ReadBasic")));
    }

    #[test]
    fn federated_credentials_per_host() {
        let mut a = args("entra-id");
        a.host = Some(HostKind::Gcp);
        a.subject = Some("112233445566778899001".into());
        let t = Plan::new(&a).unwrap().render(Format::Markdown);
        assert!(t.contains("| issuer | https://accounts.google.com |"));
        assert!(t.contains("| subject | 112233445566778899001 |"));
        assert!(t.contains("| audience | api://AzureADTokenExchange |"));
        a.subject = Some("veil@project.iam.gserviceaccount.com".into());
        assert!(err(&a).contains("numeric unique id"));

        let mut a = args("entra-id");
        a.host = Some(HostKind::Aws);
        a.issuer = Some("https://abc.tokens.sts.global.api.aws".into());
        a.subject = Some("arn:aws:iam::123456789012:role/veil-entra-id".into());
        let t = Plan::new(&a).unwrap().render(Format::Markdown);
        assert!(t.contains("| issuer | https://abc.tokens.sts.global.api.aws |"));
        assert!(t.contains("| subject | arn:aws:iam::123456789012:role/veil-entra-id |"));
        assert!(t.contains("| VEIL_TOKEN_PROVIDER | aws-sts |"));
        a.subject = Some("arn:aws:sts::123456789012:assumed-role/veil/x".into());
        assert!(err(&a).contains("assumed-role"));
        a.subject = Some("arn:aws:iam::123456789012:role/veil".into());
        a.issuer = Some("https://abc.tokens.sts.global.api.aws/".into());
        assert!(err(&a).contains("trailing slash"));

        let mut a = args("entra-id");
        a.host = Some(HostKind::AwsCognito);
        a.subject = Some("eu-west-1:11111111-2222-3333-4444-555555555555".into());
        a.audience = Some("eu-west-1:aaaaaaaa-2222-3333-4444-555555555555".into());
        let t = Plan::new(&a).unwrap().render(Format::Markdown);
        assert!(t.contains("| issuer | https://cognito-identity.amazonaws.com |"));
        assert!(t.contains("| audience | eu-west-1:aaaaaaaa-2222-3333-4444-555555555555 |"));
        a.audience = Some("api://AzureADTokenExchange".into());
        assert!(err(&a).contains("identity pool id"));

        let mut a = args("entra-id");
        a.subject = Some("x".into());
        assert!(err(&a).contains("need --host"));
    }
}
