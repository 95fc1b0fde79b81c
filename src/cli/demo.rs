//! `veil demo`: Veil over real TCP in front of a sample tenant, playing the
//! calls an analytics client makes for each connector, then serving on
//! 127.0.0.1 so you can try `curl`. No cloud account, no secret to set:
//! demo keys are generated at start and labelled as demo keys.
//!
//! For a few calls it also shows what Veil did: the sample tenant's
//! original answer beside what the client got, value by value (removed,
//! pseudonymized, tokenized, reduced, kept), and for every call the
//! access-log line `veil serve` writes for it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde_json::Value;
use tokio::net::TcpListener;
use veil_engine::{
    load_builtin_rules, EmailPolicy, PseudonymConfig, Scheme, Secret, BUILTIN_CONNECTORS,
};
use veil_proxy::{
    CallerAuthMode, StaticToken, UpstreamConfig, WARN_DEVELOPMENT_TOKEN, WARN_NO_CALLER_AUTH,
};

use crate::runtime::{self, Parts};
use crate::sample_tenant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sample responses the tenant serves.
    #[arg(long, default_value = "example-api-responses")]
    samples: PathBuf,
    /// First port; the four connectors listen on this and the next three (0: any free ports).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Play the calls and exit instead of serving on.
    #[arg(long)]
    no_serve: bool,
    /// Serve only the sample tenant — a stand-in for Graph that wants the
    /// Graph token `demo-graph-token` — on `--port`, to try `veil serve
    /// --upstream http://127.0.0.1:PORT` against it.
    #[arg(long, conflicts_with = "no_serve")]
    tenant_only: bool,
}

const DEMO_TOKEN: &str = "demo-graph-token";

fn random_secret() -> anyhow::Result<Secret> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow!("no randomness for the demo keys: {e}"))?;
    Ok(Secret::new(format!(
        "demo-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(a))
}

async fn bind(port: u16, offset: u16) -> anyhow::Result<TcpListener> {
    if port != 0 {
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port + offset)).await {
            return Ok(l);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

async fn demo(a: Args) -> anyhow::Result<ExitCode> {
    if a.tenant_only {
        let tenant = std::sync::Arc::new(sample_tenant::Tenant::load(&a.samples, DEMO_TOKEN)?);
        // Exactly this port: a `veil serve --upstream` names it.
        let listener = TcpListener::bind(("127.0.0.1", a.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on 127.0.0.1:{} (choose another with --port)",
                    a.port
                )
            })?;
        println!(
            "Sample tenant (fictional Contoso, serving {}) on http://{} — Graph token `{DEMO_TOKEN}`",
            a.samples.display(),
            listener.local_addr()?
        );
        sample_tenant::serve(listener, tenant).await;
        return Ok(ExitCode::SUCCESS);
    }
    let tenant = sample_tenant::start(&a.samples, DEMO_TOKEN).await?;
    let log = AccessLog::install();
    let salt = random_secret()?;
    let key = random_secret()?;
    println!(
        "Veil demo — DEMO KEYS generated for this run only (salt fingerprint {}).",
        salt.fingerprint()
    );
    println!(
        "Sample tenant (fictional Contoso, serving {}) on http://{tenant}",
        a.samples.display()
    );

    let mut bases = Vec::new();
    for (i, connector) in BUILTIN_CONNECTORS.iter().enumerate() {
        let rules = load_builtin_rules(connector, "default").map_err(|e| anyhow!("{e}"))?;
        let proxy = runtime::build(Parts {
            connector: connector.to_string(),
            rules,
            pseudonym: PseudonymConfig {
                scheme: Scheme::Hmac,
                salt: salt.clone(),
                encryption_keys: vec![("demo".into(), key.clone())],
                email: EmailPolicy::default(),
            },
            tokens: std::sync::Arc::new(StaticToken::new(Secret::from(DEMO_TOKEN))),
            upstream: UpstreamConfig {
                base_url: format!("http://{tenant}"),
                ..UpstreamConfig::default()
            },
            caller_auth: CallerAuthMode::Unauthenticated,
            // What `/healthz` says is true of the demo: its own token and no
            // caller authentication (it takes no flag for either).
            warnings: vec![
                format!("{WARN_DEVELOPMENT_TOKEN} is the demo's fixed `{DEMO_TOKEN}`, which only its sample tenant accepts"),
                format!("{WARN_NO_CALLER_AUTH}: `veil demo` serves without it, on 127.0.0.1 only"),
            ],
        })?;
        let listener = bind(a.port, i as u16).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = super::serve::serve(listener, proxy, None, std::future::pending()).await;
        });
        bases.push((connector.to_string(), format!("http://{addr}")));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let client = &Demo {
        http,
        tenant: format!("http://{tenant}"),
        log,
    };
    let base = |c: &str| {
        bases
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };

    // outlook-mail: list users → one user's sent mail by its p~ id → next page.
    let mail = base("outlook-mail");
    let users_path = "/v1.0/users?$select=id,mail&$top=8";
    let users = call(
        client,
        &mail,
        users_path,
        "list users (names removed, ids become p~ tokens)",
    )
    .await?;
    let user = users["value"][0]["id"]
        .as_str()
        .context("no user id in the sample")?
        .to_string();
    // What Graph (here: the sample tenant) answered, beside what left Veil.
    let original_users = client.original(users_path).await?;
    compare(&original_users, &users);
    let raw_user = original_users["value"][0]["id"]
        .as_str()
        .context("no user id in the sample")?
        .to_string();
    let sent_path = "/mailFolders/SentItems/messages?$top=10";
    let sent = call(
        client,
        &mail,
        &format!("/v1.0/users/{user}{sent_path}"),
        "that user's sent mail, asked for by its p~ token (Veil decrypts it for Graph)",
    )
    .await?;
    compare(
        &client
            .original(&format!("/v1.0/users/{raw_user}{sent_path}"))
            .await?,
        &sent,
    );
    if let Some(next) = sent["@odata.nextLink"].as_str() {
        let path = next.trim_start_matches("https://graph.microsoft.com");
        call(
            client,
            &mail,
            path,
            "the next page, following @odata.nextLink as the client got it",
        )
        .await?;
    }
    refused(
        client,
        &mail,
        &format!("/v1.0/users/{user}/mailFolders/Inbox/messages"),
        "the inbox is not allowed",
    )
    .await?;
    refused(
        client,
        &mail,
        "/v1.0/users/5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61/mailFolders/SentItems/messages",
        "a raw Graph id instead of a p~ token",
    )
    .await?;

    // outlook-cal: a week of the calendar.
    let cal = base("outlook-cal");
    call(
        client,
        &cal,
        &format!("/v1.0/users/{user}/calendar/calendarView?startDateTime=2026-11-02T00:00:00Z&endDateTime=2026-11-09T00:00:00Z&$top=6"),
        "calendar view (subjects reduced to meeting types, bodies to meeting links without passwords)",
    )
    .await?;

    // msft-teams: a user's chats.
    let teams = base("msft-teams");
    call(
        client,
        &teams,
        &format!("/v1.0/users/{user}/chats?$top=5"),
        "Teams chats (topics removed, chat ids tokenized)",
    )
    .await?;

    // entra-id: groups.
    call(
        client,
        &base("entra-id"),
        "/v1.0/groups?$top=5",
        "groups (names removed, addresses pseudonymized)",
    )
    .await?;

    // outlook-contacts: its own user tokens (tokens of the `user` kind), then
    // that user's contacts.
    let contacts = base("outlook-contacts");
    let contact_users = call(
        client,
        &contacts,
        "/v1.0/users?$select=id,mail&$top=8",
        "list users for the contacts connector (its user tokens carry the `user` kind)",
    )
    .await?;
    let owner = contact_users["value"][0]["id"]
        .as_str()
        .context("no user id in the sample")?
        .to_string();
    // outlook-mail-received: the same user's inbox (a connector of its own:
    // outlook-mail refuses the inbox, as above).
    call(
        client,
        &base("outlook-mail-received"),
        &format!("/v1.0/users/{owner}/mailFolders/Inbox/messages?$top=5"),
        "received mail (subjects, bodies and names removed; senders pseudonymized with their domain kept)",
    )
    .await?;
    call(
        client,
        &contacts,
        &format!("/v1.0/users/{owner}/contacts?$top=6"),
        "Outlook contacts (names, phones, postal addresses and notes removed; addresses pseudonymized with the company's domain kept)",
    )
    .await?;

    client.log.to_stderr();
    if a.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    println!("\nVeil keeps serving (Ctrl-C to stop):");
    for (c, b) in &bases {
        println!("  {c:<13} {b}   e.g. curl -s '{b}/healthz'");
    }
    println!("  try:  curl -s '{mail}/v1.0/users?$top=3'");
    println!("        curl -s '{mail}/v1.0/users/{user}/mailFolders/SentItems/messages?$top=2'");
    let _ = tokio::signal::ctrl_c().await;
    Ok(ExitCode::SUCCESS)
}

/// What the demo calls with: an HTTP client, the sample tenant (for the
/// originals) and the access log.
struct Demo {
    http: reqwest::Client,
    tenant: String,
    log: AccessLog,
}

impl Demo {
    /// The sample tenant's own answer to `path` (raw Graph ids): what Graph
    /// gives Veil before anything is removed.
    async fn original(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.tenant))
            .bearer_auth(DEMO_TOKEN)
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(anyhow!("the sample tenant answered {status} for {path}"));
        }
        Ok(resp.json().await?)
    }

    /// Prints the access-log line of the call just made.
    async fn print_log_line(&self) -> anyhow::Result<()> {
        let line = self
            .log
            .next_line(Duration::from_secs(5))
            .await
            .ok_or_else(|| anyhow!("Veil wrote no access-log line for the call"))?;
        println!("   log: {line}");
        Ok(())
    }
}

async fn call(client: &Demo, base: &str, path: &str, what: &str) -> anyhow::Result<Value> {
    println!("\n── {what}\n   GET {}", shorten(path));
    let resp = client.http.get(format!("{base}{path}")).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    println!("   {status}");
    if !status.is_success() {
        return Err(anyhow!("the demo call failed: {body}"));
    }
    println!("{}", excerpt(&body));
    client.print_log_line().await?;
    Ok(body)
}

async fn refused(client: &Demo, base: &str, path: &str, what: &str) -> anyhow::Result<()> {
    println!("\n── refused: {what}\n   GET {}", shorten(path));
    let resp = client.http.get(format!("{base}{path}")).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    println!(
        "   {status} {}",
        body["error"]["message"].as_str().unwrap_or("")
    );
    if status.is_success() {
        return Err(anyhow!("the demo expected a refusal for {path}"));
    }
    client.print_log_line().await?;
    Ok(())
}

/// Most values shown per comparison.
const COMPARED: usize = 14;

/// The first item of the original answer beside the first item the
/// client got, value by value: what Veil did to each. Lines start with
/// `   │ `; the original value comes before `→`, what left Veil after it.
fn compare(original: &Value, sanitized: &Value) {
    let first = |v: &Value| v.get("value").and_then(|v| v.get(0)).cloned();
    let (before, after) = match (first(original), first(sanitized)) {
        (Some(b), Some(a)) => (b, a),
        _ => (original.clone(), sanitized.clone()),
    };
    let outcomes = super::review::outcomes(&before, &after);
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in &outcomes {
        *counts.entry(o.what.name()).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    println!(
        "   the first item, original (from the sample tenant) → as the client got it: {}",
        summary.join(", ")
    );
    // Every kind of change first, then what was kept.
    let mut shown: Vec<&super::review::Outcome> = Vec::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for o in &outcomes {
        if kinds_seen.insert(o.what) {
            shown.push(o);
        }
    }
    for o in &outcomes {
        if shown.len() >= COMPARED {
            break;
        }
        if !shown.iter().any(|s| std::ptr::eq(*s, o)) {
            shown.push(o);
        }
    }
    shown.sort_by_key(|o| outcomes.iter().position(|x| std::ptr::eq(x, *o)));
    let value = |v: &Value| {
        let s = match v {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        shorten_to(&s, 48)
    };
    for o in &shown {
        let after = match (&o.after, o.what) {
            (_, super::review::What::Removed) => "(removed)".to_string(),
            (Some(a), _) => value(a),
            (None, _) => "null".to_string(),
        };
        println!(
            "   │ {:<13} {:<34} {} → {after}",
            o.what.name(),
            shorten_to(o.path.trim_start_matches("$."), 34),
            value(&o.before)
        );
    }
    if outcomes.len() > shown.len() {
        println!("   │ … {} more values", outcomes.len() - shown.len());
    }
}

fn shorten_to(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The access log of the demo's proxies, in `veil serve`'s JSON format
/// (see `src/logging.rs`): kept in memory while the demo plays its calls,
/// so each call's line can be shown under it, then written to stderr as
/// `veil serve` does. Only the access-log target is recorded.
#[derive(Clone)]
struct AccessLog(Arc<Mutex<Option<Vec<u8>>>>);

impl std::io::Write for AccessLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut guard = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("log buffer poisoned"))?;
        match guard.as_mut() {
            Some(kept) => kept.extend_from_slice(buf),
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessLog {
    type Writer = AccessLog;
    fn make_writer(&'a self) -> AccessLog {
        self.clone()
    }
}

impl AccessLog {
    fn install() -> AccessLog {
        let log = AccessLog(Arc::new(Mutex::new(Some(Vec::new()))));
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("veil::access=info"))
            .with_writer(log.clone())
            .try_init();
        log
    }

    /// The next complete line written, waiting at most `limit`.
    async fn next_line(&self, limit: Duration) -> Option<String> {
        let until = Instant::now() + limit;
        loop {
            {
                let mut guard = self.0.lock().ok()?;
                let buf = guard.as_mut()?;
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    return Some(String::from_utf8_lossy(&line).trim_end().to_string());
                }
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// From now on, log lines go to stderr.
    fn to_stderr(&self) {
        if let Ok(mut guard) = self.0.lock() {
            *guard = None;
        }
    }
}

fn shorten(s: &str) -> String {
    if s.len() > 140 {
        format!(
            "{}…",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 140)
                .last()
                .map_or(0, |(i, c)| i + c.len_utf8())]
        )
    } else {
        s.to_string()
    }
}

/// The first item of a page (or the object), pretty, at most 30 lines.
fn excerpt(body: &Value) -> String {
    let first = body.get("value").and_then(|v| v.get(0)).unwrap_or(body);
    let pretty = serde_json::to_string_pretty(first).unwrap_or_default();
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(30)
        .map(|l| format!("   {}", shorten(l)))
        .collect();
    if lines.len() > 30 {
        out.push(format!("   … ({} more lines)", lines.len() - 30));
    }
    if let Some(n) = body.get("value").and_then(Value::as_array).map(Vec::len) {
        out.insert(0, format!("   {n} items; the first:"));
    }
    out.join("\n")
}
