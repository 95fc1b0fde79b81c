//! The setup plan: its sections (text, code, tables) and how it is
//! rendered as Markdown or JSON.

use super::*;

/// One part of a section, in order.
pub(super) enum Block {
    Para(String),
    /// Column headers and `(name, explanation)` rows.
    Table(&'static str, &'static str, Vec<(String, String)>),
    /// A shell or PowerShell block: `(language, body)`.
    Code(&'static str, String),
}

/// A section of the runbook; numbered when rendered.
pub(super) struct Section {
    pub(super) title: String,
    pub(super) blocks: Vec<Block>,
}

impl Section {
    pub(super) fn new(title: impl Into<String>) -> Self {
        Section {
            title: title.into(),
            blocks: Vec::new(),
        }
    }
    pub(super) fn para(mut self, t: impl Into<String>) -> Self {
        self.blocks.push(Block::Para(t.into()));
        self
    }
    pub(super) fn code(mut self, lang: &'static str, body: impl Into<String>) -> Self {
        self.blocks.push(Block::Code(lang, body.into()));
        self
    }
    pub(super) fn table(
        mut self,
        h1: &'static str,
        h2: &'static str,
        rows: Vec<(String, String)>,
    ) -> Self {
        self.blocks.push(Block::Table(h1, h2, rows));
        self
    }
}

/// What `veil setup` prints.
pub struct Plan {
    pub(super) connector: String,
    pub(super) tenant: String,
    pub(super) client_id: String,
    /// The service principal's Object ID, or a placeholder.
    pub(super) sp_object_id: String,
    pub(super) permissions: Vec<GraphPermission>,
    pub(super) sections: Vec<Section>,
}

impl Plan {
    pub fn new(a: &Args) -> anyhow::Result<Plan> {
        if !BUILTIN_CONNECTORS.contains(&a.connector.as_str()) {
            bail!(
                "--connector: unknown connector `{}`; connectors: {}",
                a.connector,
                BUILTIN_CONNECTORS.join(", ")
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
        let rules = load_builtin_rules(&a.connector, "default").map_err(|e| anyhow!("{e}"))?;
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

    pub(super) fn exchange_permissions(&self) -> Vec<(&str, &str)> {
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

    pub(super) fn roles_section(&self) -> Section {
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

    pub(super) fn consent_section(&self) -> Section {
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

    pub(super) fn permissions_section(&self) -> Section {
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

    pub(super) fn mailbox_scoping_section(&self) -> Option<Section> {
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

    pub(super) fn teams_section(&self) -> Option<Section> {
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

    pub(super) fn protected_apis_section(&self) -> Option<Section> {
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

    pub(super) fn revoke_exchange_consent_section(&self) -> Option<Section> {
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

    pub(super) fn verify_section(&self) -> Section {
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
pub(super) fn md_cell(s: &str) -> String {
    let s = s.replace('|', "\\|");
    if s.starts_with('<') && s.ends_with('>') {
        format!("`{s}`")
    } else {
        s
    }
}
