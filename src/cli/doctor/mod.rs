//! `veil doctor`: runs the real chain with the deployed configuration and
//! prints a checklist — each line passed or failed, with the fix.
//!
//! 1. configuration parsed, rules loaded;
//! 2. secrets found and strong;
//! 3. host identity token obtained (its iss / sub / aud shown);
//! 4. Entra exchange;
//! 5. the Graph token's roles against the connector's permissions;
//! 6. one Graph read per endpoint family, on the mailbox `--mailbox` names
//!    (else the first user listed, which is often out of the mailbox scope
//!    or unlicensed), including the Teams protected APIs.
//!
//! A failed step skips the steps that depend on it. Exit code 1 when any
//! line failed; `--json` prints the same checklist for machines. On Lambda
//! the function runs the same checks for a doctor event (`src/lambda_doctor.rs`).

mod permissions;
mod probes;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use veil_engine::Secret;
use veil_proxy::unverified_jwt_claims as jwt_claims;

use crate::runtime::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The connector (default: VEIL_CONNECTOR).
    #[arg(long)]
    pub connector: Option<String>,
    /// A rule file instead of the connector's shipped rules.
    #[arg(long)]
    pub rules: Option<std::path::PathBuf>,
    /// The Graph base URL (default: VEIL_UPSTREAM or https://graph.microsoft.com).
    #[arg(long)]
    pub upstream: Option<String>,
    /// The mailbox (user principal name or object id) the per-user reads probe: a licensed
    /// user inside the mailbox scope. Default: the first user the directory lists.
    #[arg(long)]
    pub mailbox: Option<String>,
    /// Print the checklist as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run because an earlier step failed.
    Skipped,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub step: &'static str,
    pub status: Status,
    pub summary: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Default)]
struct Checklist(Vec<Check>);

impl Checklist {
    fn pass(&mut self, step: &'static str, summary: impl Into<String>, details: Vec<String>) {
        self.push(step, Status::Pass, summary, details, None);
    }
    fn fail(&mut self, step: &'static str, summary: impl Into<String>, fix: Option<String>) {
        self.push(step, Status::Fail, summary, Vec::new(), fix);
    }
    fn skip(&mut self, step: &'static str, why: &str) {
        self.push(
            step,
            Status::Skipped,
            format!("not run: {why}"),
            Vec::new(),
            None,
        );
    }
    fn push(
        &mut self,
        step: &'static str,
        status: Status,
        summary: impl Into<String>,
        details: Vec<String>,
        fix: Option<String>,
    ) {
        self.0.push(Check {
            step,
            status,
            summary: summary.into(),
            details,
            fix,
        });
    }
    fn ok(&self) -> bool {
        self.0.iter().all(|c| c.status == Status::Pass)
    }
    fn to_json(&self) -> Value {
        serde_json::json!({ "ok": self.ok(), "checks": self.0 })
    }
}

/// Runs every check and returns the checklist as `--json` prints it
/// (`{"ok": bool, "checks": [...]}`): the Lambda doctor event's answer.
pub async fn checklist_json(args: &Args) -> Value {
    checks(args).await.to_json()
}

fn claim_text(claims: &Value, name: &str) -> String {
    match claims.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_string(),
        None => "(none)".into(),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("async runtime")?;
    let list = rt.block_on(checks(&args));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list.to_json())?);
    } else {
        print_text(&list);
    }
    Ok(if list.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(list: &Checklist) {
    for c in &list.0 {
        let mark = match c.status {
            Status::Pass => "[ ok ]",
            Status::Fail => "[FAIL]",
            Status::Skipped => "[skip]",
        };
        println!("{mark} {}: {}", c.step, c.summary);
        for d in &c.details {
            println!("       {d}");
        }
        if let Some(fix) = &c.fix {
            println!("       fix: {fix}");
        }
    }
    let failed = list.0.iter().filter(|c| c.status == Status::Fail).count();
    if failed == 0 {
        println!("\nall checks passed");
    } else {
        println!("\n{failed} check(s) failed");
    }
}

fn text(s: &Secret) -> String {
    String::from_utf8_lossy(s.expose()).into_owned()
}

/// Steps 3 and 4: the host token and its exchange for a Graph token.
async fn graph_token(http: &reqwest::Client, list: &mut Checklist) -> Option<Secret> {
    let fed = match runtime::federation(http) {
        Ok(Some(fed)) => fed,
        Ok(None) => {
            list.fail(
                "host identity",
                "the static development token (VEIL_UPSTREAM_TOKEN) is configured: no workload identity federation",
                Some("Set VEIL_TOKEN_PROVIDER to aws-sts, aws-cognito, gcp or file, with VEIL_TENANT_ID and VEIL_CLIENT_ID.".into()),
            );
            list.skip("entra exchange", "no host identity configured");
            // The static token still lets the remaining steps say something.
            let provider = runtime::token_provider().ok()?;
            return provider.token().await.ok();
        }
        Err(e) => {
            list.fail("host identity", format!("{e:#}"), None);
            list.skip("entra exchange", "no host identity configured");
            return None;
        }
    };
    let host_token = match fed.host.fetch().await {
        Ok(t) => t,
        Err(e) => {
            list.fail("host identity", format!("{}: {e}", fed.kind), None);
            list.skip("entra exchange", "no host token");
            return None;
        }
    };
    let claims = jwt_claims(&text(&host_token)).unwrap_or(Value::Null);
    list.pass(
        "host identity",
        format!("{} issued a host token", fed.kind),
        ["iss", "sub", "aud"]
            .iter()
            .map(|c| format!("{c}: {}", claim_text(&claims, c)))
            .collect(),
    );
    match fed.exchange.exchange(&host_token).await {
        Ok(t) => {
            list.pass(
                "entra exchange",
                format!(
                    "Entra ID issued a Graph token (tenant {}, client id {})",
                    fed.tenant, fed.client_id
                ),
                Vec::new(),
            );
            Some(t)
        }
        Err(e) => {
            list.fail("entra exchange", e.to_string(), None);
            None
        }
    }
}

async fn checks(args: &Args) -> Checklist {
    let mut list = Checklist::default();
    let opts = Options {
        connector: args.connector.clone(),
        rules: args.rules.clone(),
        upstream: args.upstream.clone(),
        ..Options::default()
    };

    // 1. configuration and rules
    let (connector, rules) = match runtime::load_rules(&opts) {
        Ok(r) => r,
        Err(e) => {
            list.fail("rules", format!("{e:#}"), Some("Set VEIL_CONNECTOR (or --connector) to one of the shipped connectors, or VEIL_RULES to a rule file that `veil rules lint` accepts.".into()));
            for step in [
                "secrets",
                "host identity",
                "entra exchange",
                "permissions",
                "graph",
            ] {
                list.skip(step, "no rules");
            }
            return list;
        }
    };
    let required: Vec<String> = rules
        .connector
        .as_ref()
        .map(|c| {
            c.graph_permissions
                .iter()
                .map(|p| p.permission.clone())
                .collect()
        })
        .unwrap_or_default();
    list.pass(
        "rules",
        format!(
            "connector {connector}, {} endpoints, rules sha256 {}",
            rules.endpoints.len(),
            &rules.sha256
        ),
        vec![format!("source: {}", rules.source)],
    );

    // 2. secrets
    let http = match reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(20))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            list.fail("secrets", format!("HTTP client: {e}"), None);
            return list;
        }
    };
    match runtime::load_secrets(&http).await {
        Ok(report) => list.pass("secrets", "salt and encryption keys found and strong", report),
        Err(e) => list.fail(
            "secrets",
            format!("{e:#}"),
            Some("Generate secrets with `openssl rand -base64 32` and store them where the variables above point.".into()),
        ),
    }

    // 3 + 4. host identity and Entra exchange
    let Some(token) = graph_token(&http, &mut list).await else {
        list.skip("permissions", "no Graph token");
        list.skip("graph", "no Graph token");
        return list;
    };

    // 5. roles
    let claims = jwt_claims(&text(&token)).unwrap_or(Value::Null);
    let granted: Vec<String> = claims
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut roles = permissions::compare(&required, &granted);
    // Exchange Online permissions granted by RBAC for Applications are not
    // in the token (Exchange authorizes them itself): the mailbox probes
    // below tell whether they are granted.
    let (via_exchange, missing): (Vec<String>, Vec<String>) = roles
        .missing
        .drain(..)
        .partition(|m| super::setup::EXCHANGE_ROLES.iter().any(|(p, _)| p == m));
    roles.missing = missing;
    let mut details = vec![format!("required: {}", required.join(", "))];
    details.push(format!(
        "granted:  {}",
        if granted.is_empty() {
            "(none)".to_string()
        } else {
            granted.join(", ")
        }
    ));
    if !via_exchange.is_empty() {
        details.push(format!(
            "not in the token: {} — expected when granted through Exchange RBAC for Applications; the mailbox probes check them",
            via_exchange.join(", ")
        ));
    }
    for (broad, narrow) in &roles.broader {
        details.push(format!("{broad} is granted where {narrow} suffices"));
    }
    if roles.ok() {
        list.pass(
            "permissions",
            "the app has exactly the connector's permissions",
            details,
        );
    } else {
        let mut problems = Vec::new();
        if !roles.missing.is_empty() {
            problems.push(format!(
                "missing (requests will fail): {}",
                roles.missing.join(", ")
            ));
        }
        if !roles.write.is_empty() {
            problems.push(format!(
                "write permissions (never needed): {}",
                roles.write.join(", ")
            ));
        }
        if !roles.excess.is_empty() {
            problems.push(format!(
                "over-privileged, not needed: {}",
                roles.excess.join(", ")
            ));
        }
        let mut fix = String::new();
        if !roles.missing.is_empty() {
            fix.push_str("Add the missing application permissions to the app registration and have the administrator grant admin consent (`veil setup` prints the URL). ");
        }
        if !roles.write.is_empty() || !roles.excess.is_empty() {
            fix.push_str("Remove the other permissions from the app registration (API permissions → Remove permission) and revoke their consent.");
        }
        list.push(
            "permissions",
            Status::Fail,
            problems.join("; "),
            details,
            Some(fix.trim().to_string()),
        );
    }

    // 6. probes
    let base = opts
        .upstream
        .clone()
        .or_else(|| veil_proxy::env_var(runtime::ENV_UPSTREAM))
        .unwrap_or_else(|| "https://graph.microsoft.com".into());
    let base = base.trim_end_matches('/').to_string();
    // Ids the probes fill in: `{user}` from --mailbox, else from the user list.
    let mut ids: std::collections::BTreeMap<&'static str, String> = Default::default();
    if let Some(m) = args.mailbox.as_deref().map(str::trim) {
        if !probes::valid_mailbox(m) {
            list.fail(
                "graph",
                "--mailbox is not a user principal name or object id",
                Some("Give the UPN (name@domain) or the object id of a licensed user inside the mailbox scope.".into()),
            );
            return list;
        }
        ids.insert("user", m.to_string());
    }
    for probe in probes::for_connector(&connector, SystemTime::now()) {
        let mut target = probe.target.clone();
        let mut missing = None;
        for name in probe.needs() {
            match ids.get(name) {
                Some(v) => target = target.replace(&format!("{{{name}}}"), v),
                None => missing = Some(name),
            }
        }
        if let Some(name) = missing {
            list.skip("graph", &format!("{}: no {name} listed", probe.name));
            continue;
        }
        let resp = http
            .get(format!("{base}{target}"))
            .bearer_auth(text(&token))
            .send()
            .await;
        let (status, body) = match resp {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.bytes().await.unwrap_or_default())
            }
            Err(e) => {
                list.fail(
                    "graph",
                    format!("{}: Graph unreachable at {base}: {e}", probe.name),
                    Some("Check outbound HTTPS from the host to graph.microsoft.com.".into()),
                );
                continue;
            }
        };
        if let Some(name) = probe.provides {
            if !ids.contains_key(name) && (200..300).contains(&status) {
                let first = serde_json::from_slice(&body)
                    .ok()
                    .as_ref()
                    .and_then(probes::first_id)
                    .filter(|id| probes::valid_id(id));
                if let Some(id) = first {
                    ids.insert(name, id);
                }
            }
        }
        let code = probes::graph_error_code(&body);
        let protected = status == 403 && probes::is_protected_api_refusal(&body);
        let (ok, summary, advice) = probes::judge(&probe, status, code.as_deref(), protected);
        let summary = format!("{}: {summary}", probe.name);
        if ok {
            list.pass("graph", summary, Vec::new());
        } else {
            list.fail("graph", summary, advice);
        }
    }
    list
}
