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
use veil_engine::rules::builtin;
use veil_engine::rules::model::GraphPermission;

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

/// One part of a section, in order.
enum Block {
    Para(String),
    /// Column headers and `(name, explanation)` rows.
    Table(&'static str, &'static str, Vec<(String, String)>),
    /// A shell or PowerShell block: `(language, body)`.
    Code(&'static str, String),
}

/// A section of the runbook; numbered when rendered.
struct Section {
    title: String,
    blocks: Vec<Block>,
}

impl Section {
    fn new(title: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            blocks: Vec::new(),
        }
    }
    fn para(mut self, t: impl Into<String>) -> Self {
        self.blocks.push(Block::Para(t.into()));
        self
    }
    fn code(mut self, lang: &'static str, body: impl Into<String>) -> Self {
        self.blocks.push(Block::Code(lang, body.into()));
        self
    }
    fn table(mut self, h1: &'static str, h2: &'static str, rows: Vec<(String, String)>) -> Self {
        self.blocks.push(Block::Table(h1, h2, rows));
        self
    }
}

/// What `veil setup` prints.
pub struct Plan {
    connector: String,
    tenant: String,
    client_id: String,
    /// The service principal's Object ID, or a placeholder.
    sp_object_id: String,
    permissions: Vec<GraphPermission>,
    sections: Vec<Section>,
}

impl Plan {
    pub fn new(a: &Args) -> anyhow::Result<Plan> {
        if !builtin::CONNECTORS.contains(&a.connector.as_str()) {
            bail!(
                "--connector: unknown connector `{}`; connectors: {}",
                a.connector,
                builtin::CONNECTORS.join(", ")
            );
        }
        let tenant = check_guid(
            "--tenant",
            &a.tenant,
            "the Directory (tenant) ID on the Overview page of the Microsoft Entra admin center",
        )?;
        let client_id = check_guid(
            "--client-id",
            &a.client_id,
            "the Application (client) ID of Veil's app registration (Terraform output `client_ids`), not its Object ID",
        )?;
        if tenant == client_id {
            bail!("--client-id: it equals --tenant; the Application (client) ID is the app registration's id, not the tenant's");
        }
        let sp_object_id = match a.service_principal_id.as_deref() {
            Some(sp) => {
                let sp = check_guid(
                    "--service-principal-id",
                    sp,
                    "the Object ID of Veil's Enterprise application (Terraform output `service_principal_object_ids`)",
                )?;
                if sp == client_id {
                    bail!("--service-principal-id: it equals --client-id; Exchange needs the service principal's Object ID (Enterprise applications > the app > Object ID), not the Application (client) ID");
                }
                sp
            }
            None => "<service-principal-object-id>".to_string(),
        };
        let rules = builtin::load(&a.connector, "default").map_err(|e| anyhow!("{e}"))?;
        let permissions = rules
            .connector
            .map(|c| c.graph_permissions)
            .unwrap_or_default();
        if permissions.is_empty() {
            bail!(
                "the rules of `{}` declare no connector.graphPermissions",
                a.connector
            );
        }
        if let Some(p) = permissions.iter().find(|p| !is_read_only(&p.permission)) {
            bail!(
                "the rules of `{}` ask for `{}`, which is not read-only; Veil never needs to change the tenant",
                a.connector,
                p.permission
            );
        }
        let mut plan = Plan {
            connector: a.connector.clone(),
            tenant,
            client_id,
            sp_object_id,
            permissions,
            sections: Vec::new(),
        };
        // Order matters: scoping and policies first, consent after them.
        plan.sections.push(plan.roles_section());
        plan.sections.push(plan.permissions_section());
        if let Some(s) = plan.mailbox_scoping_section() {
            plan.sections.push(s);
        }
        if let Some(s) = plan.teams_section() {
            plan.sections.push(s);
        }
        if let Some(s) = plan.protected_apis_section() {
            plan.sections.push(s);
        }
        plan.sections.push(plan.consent_section());
        if let Some(s) = plan.revoke_exchange_consent_section() {
            plan.sections.push(s);
        }
        plan.sections.push(federated_section(a)?);
        plan.sections.push(plan.verify_section());
        Ok(plan)
    }

    /// The section titles, in order.
    #[cfg(test)]
    pub fn section_titles(&self) -> Vec<&str> {
        self.sections.iter().map(|s| s.title.as_str()).collect()
    }

    /// The permission names, in rule-file order.
    #[cfg(test)]
    pub fn permission_names(&self) -> Vec<&str> {
        self.permissions
            .iter()
            .map(|p| p.permission.as_str())
            .collect()
    }

    /// The admin-consent URL (tenant-specific).
    pub fn consent_url(&self) -> String {
        format!(
            "https://login.microsoftonline.com/{}/adminconsent?client_id={}",
            self.tenant, self.client_id
        )
    }

    fn exchange_permissions(&self) -> Vec<(&str, &str)> {
        self.permissions
            .iter()
            .filter_map(|p| {
                EXCHANGE_ROLES
                    .iter()
                    .find(|(perm, _)| *perm == p.permission)
                    .map(|(perm, role)| (*perm, *role))
            })
            .collect()
    }

    fn roles_section(&self) -> Section {
        let s = Section::new("Who does what (least-privileged roles)");
        let mut rows = vec![
            ("Cloud Application Administrator (Entra ID)".to_string(),
             "Creates the app registration, its service principal and the federated credential (`deploy/entra`, Terraform). Cannot grant consent to application permissions.".to_string()),
            ("Privileged Role Administrator (Entra ID)".to_string(),
             "Grants admin consent to the Microsoft Graph application permissions below (the consent URL). Global Administrator also can, but is more than needed.".to_string()),
        ];
        if !self.exchange_permissions().is_empty() {
            rows.push((
                "Exchange Administrator (or the Organization Management role group)".to_string(),
                "Scopes mailbox access with RBAC for Applications or an Application Access Policy (Exchange Online PowerShell).".to_string(),
            ));
        }
        if self.connector == "msft-teams" {
            rows.push((
                "Teams Administrator".to_string(),
                "Creates and grants the Teams application access policy for online meetings (MicrosoftTeams PowerShell) and requests access to the Teams protected APIs.".to_string(),
            ));
        }
        s.table("role", "what the person does", rows)
    }

    fn consent_section(&self) -> Section {
        let before = if self.exchange_permissions().is_empty() && self.teams_section().is_none() {
            String::new()
        } else {
            "Only once the steps above are done: consent takes effect at once, and without the mailbox scope or the Teams policy it would open every mailbox or every user's meetings of the tenant in the meantime. ".to_string()
        };
        Section::new("Grant admin consent")
            .para(format!(
                "{before}Signed in as a Privileged Role Administrator of the tenant, open: {}",
                self.consent_url()
            ))
            .para(
                "The URL names the tenant id, not /common: Veil's app registration is single-tenant, and /common would let the browser session pick whichever tenant the administrator happens to sign in to (a guest account in another tenant, a personal account), so the consent could land in the wrong tenant or fail. With the tenant id, consent can only be granted in this tenant.",
            )
            .para(
                "The app has no reply address, so after you accept, Entra may show AADSTS500113; the consent is already recorded. Check it, or grant it instead, in the Entra admin center: Enterprise applications > the app > Security > Permissions > Grant admin consent.",
            )
    }

    fn permissions_section(&self) -> Section {
        let s = Section::new("Microsoft Graph application permissions (all read-only)").para(format!(
            "Connector `{}` needs exactly these application permissions and nothing else; each is read-only. If the consent screen shows any other permission, or any permission that can write, stop: the app registration is not the one Veil's Terraform created.",
            self.connector
        ));
        let rows = self
            .permissions
            .iter()
            .map(|p| (format!("`{}`", p.permission), p.why.clone()))
            .collect();
        s.table("permission", "why Veil needs it", rows)
    }

    fn mailbox_scoping_section(&self) -> Option<Section> {
        let exchange = self.exchange_permissions();
        if exchange.is_empty() {
            return None;
        }
        let c = &self.client_id;
        let sp = &self.sp_object_id;
        let name = format!("Veil {}", self.connector);
        let perms: Vec<String> = exchange.iter().map(|(p, _)| format!("`{p}`")).collect();
        let mut rbac = format!(
            "Connect-ExchangeOnline\n\
             # The service principal's Object ID is the Enterprise application's (Terraform output\n\
             # `service_principal_object_ids`), not the app registration's Object ID nor its AppId;\n\
             # New-ManagementRoleAssignment -App takes that Object ID.\n\
             New-ServicePrincipal -AppId {c} -ObjectId {sp} -DisplayName \"{name}\"\n\
             # Either a management scope over a mail-enabled group's members ...\n\
             New-ManagementScope -Name \"{name} mailboxes\" -RecipientRestrictionFilter \"MemberOfGroup -eq '<distinguished name of the group>'\"\n"
        );
        for (_, role) in &exchange {
            let _ = writeln!(
                rbac,
                "New-ManagementRoleAssignment -App {sp} -Role \"{role}\" -CustomResourceScope \"{name} mailboxes\""
            );
        }
        rbac.push_str("# ... or an administrative unit instead of the management scope:\n");
        for (_, role) in &exchange {
            let _ = writeln!(
                rbac,
                "# New-ManagementRoleAssignment -App {sp} -Role \"{role}\" -RecipientAdministrativeUnitScope <administrative-unit-id>"
            );
        }
        let _ = write!(
            rbac,
            "Test-ServicePrincipalAuthorization -Identity {c} -Resource <in-scope mailbox address>   # InScope: True\n\
             Test-ServicePrincipalAuthorization -Identity {c} -Resource <out-of-scope mailbox address>   # InScope: False"
        );
        let legacy = format!(
            "Connect-ExchangeOnline\n\
             New-ApplicationAccessPolicy -AppId {c} -PolicyScopeGroupId <mail-enabled security group address> -AccessRight RestrictAccess -Description \"{name}: only these mailboxes\"\n\
             Test-ApplicationAccessPolicy -Identity <in-scope mailbox address> -AppId {c}   # AccessCheckResult: Granted\n\
             Test-ApplicationAccessPolicy -Identity <out-of-scope mailbox address> -AppId {c}   # AccessCheckResult: Denied"
        );
        Some(
            Section::new("Limit which mailboxes Veil can read (before consent)")
                .para(format!(
                    "Do this before granting consent. Consented alone, {} apply to every mailbox of the tenant. Limit them to the people in the analysis with one of the two mechanisms below. Changes take effect after up to 30 minutes (cached by Exchange); Graph answers 403 ErrorAccessDenied for mailboxes out of scope.",
                    perms.join(", ")
                ))
                .para(format!(
                    "Recommended: RBAC for Applications. Its grants add to the Entra consent rather than restrict it, so the Exchange permissions ({}) must not also be consented in Entra: apply the Entra Terraform with `exchange_permissions_via_rbac = true` (the app then asks Entra only for the directory permissions), and grant the Exchange ones here. `veil doctor` then reports them absent from the token's roles, which is expected: Exchange authorizes them itself.",
                    perms.join(", ")
                ))
                .code("powershell", rbac)
                .para("Legacy alternative: an Application Access Policy restricts the Entra-consented permissions to the members of a mail-enabled security group (keep `exchange_permissions_via_rbac = false`).")
                .code("powershell", legacy),
        )
    }

    fn teams_section(&self) -> Option<Section> {
        if !self
            .permissions
            .iter()
            .any(|p| p.permission.starts_with("OnlineMeeting"))
        {
            return None;
        }
        let c = &self.client_id;
        let policy = TEAMS_MEETING_POLICY;
        Some(
            Section::new("Teams application access policy (online meetings)")
                .para("Graph serves online meetings and their attendance reports to an application only for users a Teams application access policy covers, in addition to the consent. Without it those reads fail with 403 while chats and call records work. Grant it to the group of people in the analysis — the same people the mailbox scope of the Outlook connectors covers — not to the whole tenant (`-Global`). Changes take effect after up to 30 minutes.")
                .code(
                    "powershell",
                    format!(
                        "Connect-MicrosoftTeams\n\
                         New-CsApplicationAccessPolicy -Identity {policy} -AppIds \"{c}\" -Description \"Veil msft-teams: read online meetings\"\n\
                         Grant-CsApplicationAccessPolicy -PolicyName {policy} -Group <object id of the analysis group> -Rank 1\n\
                         # or per user: Grant-CsApplicationAccessPolicy -PolicyName {policy} -Identity <user>"
                    ),
                ),
        )
    }

    fn protected_apis_section(&self) -> Option<Section> {
        let protected: Vec<String> = self
            .permissions
            .iter()
            .filter(|p| TEAMS_PROTECTED_PERMISSIONS.contains(&p.permission.as_str()))
            .map(|p| format!("`{}`", p.permission))
            .collect();
        if protected.is_empty() {
            return None;
        }
        Some(
            Section::new("Request access to the Teams protected APIs")
                .para(format!(
                    "Reading channel messages, their delta and chat messages with application permissions ({}) is a Microsoft Teams protected API: Graph answers 403 for them, even with consent, until Microsoft approves the tenant's request. Submit the request form {TEAMS_PROTECTED_APIS_FORM} for application (client) ID {} (see {TEAMS_PROTECTED_APIS_DOC}); approval can take several days, so send it early. `veil doctor` reports a protected-API refusal separately from a missing permission.",
                    protected.join(", "),
                    self.client_id
                )),
        )
    }

    fn revoke_exchange_consent_section(&self) -> Option<Section> {
        let exchange = self.exchange_permissions();
        if exchange.is_empty() {
            return None;
        }
        let sp = &self.sp_object_id;
        let values: Vec<String> = exchange.iter().map(|(p, _)| format!("'{p}'")).collect();
        Some(
            Section::new("If you move to RBAC for Applications later: revoke the Entra grants")
                .para("A tenant that consented the Exchange permissions in Entra (legacy Application Access Policy) and switches to RBAC for Applications must also revoke those Entra grants: RBAC grants add to them, and removing a permission from the app registration (`exchange_permissions_via_rbac = true`) does not revoke a consent already given. Until they are revoked, Veil can still read every mailbox the old grant covered.")
                .code(
                    "powershell",
                    format!(
                        "Connect-MgGraph -Scopes \"AppRoleAssignment.ReadWrite.All\",\"Application.Read.All\"\n\
                         $graph = Get-MgServicePrincipal -Filter \"appId eq '{GRAPH_APP_ID}'\"\n\
                         $ids = ($graph.AppRoles | Where-Object {{ $_.Value -in @({}) }}).Id\n\
                         Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId {sp} |\n\
                         \x20 Where-Object {{ $_.ResourceId -eq $graph.Id -and $_.AppRoleId -in $ids }} |\n\
                         \x20 ForEach-Object {{ Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId {sp} -AppRoleAssignmentId $_.Id }}",
                        values.join(",")
                    ),
                ),
        )
    }

    fn verify_section(&self) -> Section {
        Section::new("Afterwards")
            .para("On the host, `veil doctor --mailbox <UPN of a licensed user inside the scope>` runs the real chain (secrets, host token, Entra exchange, the token's roles, one Graph read per endpoint family on that mailbox) and prints a checklist; every line should pass. On AWS Lambda the function runs it itself: `aws lambda invoke` with the event `{\"veil\":\"doctor\",\"mailbox\":\"<UPN>\"}` (deploy/README.md). Without `--mailbox` the doctor takes the directory's first user, which is often out of scope or unlicensed.")
            .para("Remove consent at any time in Enterprise applications > the app > Properties > Delete, or revoke single permissions under Permissions.")
    }

    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        let title = format!(
            "Veil setup for connector `{}` (tenant {}, client id {})",
            self.connector, self.tenant, self.client_id
        );
        let md = format == Format::Markdown;
        if md {
            let _ = writeln!(out, "# {title}\n");
        } else {
            let _ = writeln!(out, "{title}\n{}\n", "=".repeat(title.chars().count()));
        }
        // The first section (who does what) is not a step; the others are numbered.
        for (i, s) in self.sections.iter().enumerate() {
            let heading = if i == 0 {
                s.title.clone()
            } else {
                format!("{i}. {}", s.title)
            };
            if md {
                let _ = writeln!(out, "## {heading}\n");
            } else {
                let _ = writeln!(out, "{heading}\n{}\n", "-".repeat(heading.chars().count()));
            }
            for b in &s.blocks {
                match (b, md) {
                    (Block::Para(p), _) => {
                        let _ = writeln!(out, "{p}\n");
                    }
                    (Block::Table(h1, h2, rows), true) => {
                        let _ = writeln!(out, "| {h1} | {h2} |\n|---|---|");
                        for (a, b) in rows {
                            let _ = writeln!(out, "| {} | {} |", md_cell(a), md_cell(b));
                        }
                        out.push('\n');
                    }
                    (Block::Table(_, _, rows), false) => {
                        for (a, b) in rows {
                            let _ = writeln!(out, "  - {}: {b}", a.trim_matches('`'));
                        }
                        out.push('\n');
                    }
                    (Block::Code(lang, body), true) => {
                        let _ = writeln!(out, "```{lang}\n{body}\n```\n");
                    }
                    (Block::Code(_, body), false) => {
                        for line in body.lines() {
                            let _ = writeln!(out, "    {line}");
                        }
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

/// A Markdown table cell: pipes escaped, `<placeholders>` as code so they are not read as HTML.
fn md_cell(s: &str) -> String {
    let s = s.replace('|', "\\|");
    if s.starts_with('<') && s.ends_with('>') {
        format!("`{s}`")
    } else {
        s
    }
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
        for c in builtin::CONNECTORS {
            let plan = Plan::new(&args(c)).unwrap();
            let rules = builtin::load(c, "default").unwrap();
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
        for c in builtin::CONNECTORS {
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
