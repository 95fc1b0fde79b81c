//! The AWS Lambda host end to end, under cargo-lambda's Lambda emulator.
//!
//! `cargo lambda watch` builds the `veil` binary and runs it as the
//! function `veil` (with `AWS_LAMBDA_RUNTIME_API` set and no arguments, so
//! `src/main.rs` starts the Lambda host of `src/lambda.rs`); `cargo lambda
//! invoke` sends it Function URL events (payload format 2.0, `AWS_IAM`
//! auth, built from `tests/fixtures/lambda/function-url-get.json`). Graph is
//! a recording stub on 127.0.0.1.
//!
//! Needs `cargo lambda` on PATH: `scripts/install-test-tools.sh` installs
//! it into `.tools/` (`.tools/bin`) and `scripts/test.sh` puts that on PATH. By hand:
//!
//! ```text
//! bash scripts/install-test-tools.sh
//! PATH="$PWD/.tools/bin:$PATH" cargo test --test lambda -- --nocapture
//! ```

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Test secrets: at least 32 bytes, not the published example values.
const SALT: &str = "lambda-e2e-salt-Rk3Wq9Zp2Lx7Vn4Tb8Hc1Jm6Fd5Gs0Ya";
const KEY: &str = "lambda-e2e-key-Pf8Xe2Qw6Nr1Kz9Ut4Cv7Bm3Hy5Lj0Dg";
/// The Graph token Veil must send upstream (`VEIL_UPSTREAM_TOKEN`).
const UPSTREAM_TOKEN: &str = "dev-token";
/// The only caller allowed (`VEIL_ALLOWED_CALLER_ARNS`): a role.
const ALLOWED_ARN: &str = "arn:aws:iam::123456789012:role/vendor";
/// How Lambda reports a caller of that role: one of its sessions.
const CALLER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/vendor/vendor-session";
/// A principal AWS authenticated that Veil must refuse.
const OTHER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/someone-else/vendor-session";

/// Lambda's limit on a buffered (synchronous) response payload: the JSON
/// document the function hands the runtime API, base64 body included.
const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// How long the first invocation may take: `cargo lambda watch` compiles
/// the function with the binary's own feature set (the test build unifies
/// dev-dependency features, so some crates build again) — minutes on a busy
/// 2-core machine. A bound on a compile, not a performance assertion.
const READY_TIMEOUT: Duration = Duration::from_secs(420);
/// How long any later invocation may take.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// Groups in the large page: about 8.6 MB of Graph JSON, about 7 MB sanitized.
const LARGE_GROUPS: usize = 30_000;

/// The people of the users page: (Graph id, display name, mail).
const PEOPLE: [(&str, &str, &str); 2] = [
    (
        "4f1c2a9e-7b3d-4c8e-9a61-2d5f8b0e3c17",
        "Priya Raman",
        "priya.raman@contoso.example",
    ),
    (
        "a83e5d20-91c4-4b7f-8e2a-6c0d1f9b4e58",
        "Lucas Moreau",
        "lucas.moreau@contoso.example",
    ),
];
/// Graph's paging token on the users page (it embeds an object id).
const SKIPTOKEN: &str = "RFNwdAIAAQAAABk6cHJpeWEucmFtYW5AY29udG9zby5leGFtcGxl";

#[test]
fn lambda_function_url_end_to_end() {
    require_cargo_lambda();
    let t0 = Instant::now();
    let stub = GraphStub::start();
    let mut lambda = Lambda::start(&stub);

    // Readiness: the first invocation, retried until the emulator listens
    // and the function has been built and started.
    let health = lambda.invoke_until_ready(&event("GET", "/healthz", "", &[], Some(CALLER_ARN)));
    lambda.check(health.status() == 200, "GET /healthz is 200", &health);
    let doc = health.json();
    lambda.check(
        doc["connector"] == "entra-id" && doc["status"] == "ok",
        "the health check names the connector `entra-id` and says ok",
        &health,
    );
    lambda.check(
        doc["callerAuth"]
            .as_str()
            .is_some_and(|s| s.contains("aws-iam") && s.contains("1 allowed caller ARN")),
        "the health check reports AWS_IAM caller auth with the one allowed ARN (so --env-var reached the function)",
        &health,
    );
    lambda.check(
        !health.body_text().contains(SALT) && !health.body_text().contains(KEY),
        "the health check shows no secret",
        &health,
    );
    eprintln!(
        "[lambda] ready after {:.1} s (emulator start, build, first invocation)",
        t0.elapsed().as_secs_f64()
    );

    // The allowed caller lists users: sanitized, and Graph saw the token.
    let t = Instant::now();
    let resp = lambda.invoke(&event(
        "GET",
        "/v1.0/users",
        "$top=2",
        &[],
        Some(CALLER_ARN),
    ));
    lambda.check(resp.status() == 200, "GET /v1.0/users?$top=2 is 200", &resp);
    let seen = stub.take();
    lambda.check(
        seen.len() == 1
            && seen[0].method == "GET"
            && seen[0].target.starts_with("/v1.0/users?")
            && seen[0].target.contains("top=2"),
        &format!("Graph got exactly GET /v1.0/users?$top=2 (it got {seen:?})"),
        &resp,
    );
    lambda.check(
        seen[0].authorization.as_deref() == Some("Bearer dev-token"),
        "Graph got `Authorization: Bearer dev-token`",
        &resp,
    );
    let text = resp.body_text();
    for (id, name, mail) in PEOPLE {
        for clear in [id, mail, mail.split('@').next().unwrap_or(mail)]
            .into_iter()
            .chain(name.split(' '))
        {
            lambda.check(
                !text.contains(clear),
                &format!("`{clear}` is not in the sanitized page"),
                &resp,
            );
        }
    }
    lambda.check(
        !text.contains(SKIPTOKEN),
        "Graph's $skiptoken is not in clear",
        &resp,
    );
    let page = resp.json();
    let users = page["value"].as_array().cloned().unwrap_or_default();
    lambda.check(users.len() == 2, "the page has the two users", &resp);
    for user in &users {
        for field in ["displayName", "givenName", "surname", "jobTitle"] {
            lambda.check(
                user.get(field).is_none_or(Value::is_null),
                &format!("`{field}` is removed"),
                &resp,
            );
        }
        for field in ["mail", "userPrincipalName"] {
            lambda.check(
                user[field].as_str().is_some_and(|m| m.starts_with("t~")),
                &format!("`{field}` is a `t~` pseudonym"),
                &resp,
            );
        }
        lambda.check(
            user["id"].as_str().is_some_and(|i| i.starts_with("p~")),
            "`id` is a reversible `p~` token",
            &resp,
        );
        lambda.check(
            user["department"] == "Research",
            "non-personal fields pass",
            &resp,
        );
    }
    eprintln!(
        "[lambda] users page: 200, sanitized ({} ms)",
        t.elapsed().as_millis()
    );

    // A `p~` token from the page reaches Graph as the Graph id again.
    let token = users[0]["id"].as_str().unwrap_or_default().to_string();
    let resp = lambda.invoke(&event(
        "GET",
        &format!("/v1.0/users/{token}"),
        "",
        &[],
        Some(CALLER_ARN),
    ));
    let seen = stub.take();
    lambda.check(
        resp.status() == 200
            && seen.len() == 1
            && seen[0].target == format!("/v1.0/users/{}", PEOPLE[0].0),
        &format!(
            "GET /v1.0/users/<p~ token> is 200 and Graph got /v1.0/users/{} (it got {seen:?})",
            PEOPLE[0].0
        ),
        &resp,
    );
    lambda.check(
        resp.json()["id"] == token.as_str() && !resp.body_text().contains("Priya"),
        "the user comes back sanitized, with the same token",
        &resp,
    );

    // Another AWS principal: 403, and Graph is not called.
    let resp = lambda.invoke(&event("GET", "/v1.0/users", "$top=2", &[], Some(OTHER_ARN)));
    lambda.check(
        resp.status() == 403,
        "a caller ARN not in VEIL_ALLOWED_CALLER_ARNS gets 403",
        &resp,
    );
    lambda.check(
        resp.header("x-psoxy-error") == Some("UNAUTHORIZED"),
        "… with `x-psoxy-error: UNAUTHORIZED`",
        &resp,
    );
    lambda.check(stub.take().is_empty(), "… and Graph was not called", &resp);

    // No IAM identity in the request context (auth type NONE): 401.
    let resp = lambda.invoke(&event("GET", "/v1.0/users", "$top=2", &[], None));
    lambda.check(
        resp.status() == 401,
        "a request without an IAM caller gets 401",
        &resp,
    );
    lambda.check(stub.take().is_empty(), "… and Graph was not called", &resp);

    // A path the rules do not allow: 403 BLOCKED_BY_RULES, Graph not called.
    let resp = lambda.invoke(&event(
        "GET",
        "/v1.0/users/x/mailFolders/Inbox/messages",
        "",
        &[],
        Some(CALLER_ARN),
    ));
    lambda.check(
        resp.status() == 403,
        "a mailbox path is refused with 403",
        &resp,
    );
    lambda.check(
        resp.header("x-psoxy-error") == Some("BLOCKED_BY_RULES"),
        "… with `x-psoxy-error: BLOCKED_BY_RULES`",
        &resp,
    );
    lambda.check(stub.take().is_empty(), "… and Graph was not called", &resp);

    // A page over Lambda's 6 MB buffered limit, for a caller that accepts gzip:
    // it arrives gzipped, and decompresses to the complete page.
    let t = Instant::now();
    let resp = lambda.invoke(&event(
        "GET",
        "/v1.0/groups",
        "$top=999",
        &[("accept-encoding", "gzip, deflate, br")],
        Some(CALLER_ARN),
    ));
    let seen = stub.take();
    lambda.check(
        seen.len() == 1 && seen[0].target.starts_with("/v1.0/groups"),
        "Graph was asked for the large groups page",
        &resp,
    );
    lambda.check(
        resp.status() == 200,
        "the large page with gzip is 200",
        &resp,
    );
    lambda.check(
        resp.header("content-encoding") == Some("gzip"),
        "… with `content-encoding: gzip`",
        &resp,
    );
    let gz = resp.body_bytes();
    let json_bytes = gunzip(&gz, &lambda.dir);
    let page: Value = serde_json::from_slice(&json_bytes).unwrap_or_else(|e| {
        panic!(
            "the gzipped large page does not decompress to JSON ({e}); {} bytes\n{}",
            json_bytes.len(),
            lambda.log_tail()
        )
    });
    let groups = page["value"].as_array().map(Vec::len).unwrap_or(0);
    lambda.check(
        groups == LARGE_GROUPS
            && page["value"][LARGE_GROUPS - 1]["mailNickname"]
                .as_str()
                .is_some_and(|m| m.starts_with("t~")),
        &format!("the large page is complete and sanitized ({groups} of {LARGE_GROUPS} groups)"),
        &resp,
    );
    lambda.check(
        json_bytes.len() > LAMBDA_PAYLOAD_LIMIT,
        &format!(
            "the sanitized large page is over 6 MB uncompressed ({} bytes), so gzip is what made it fit",
            json_bytes.len()
        ),
        &resp,
    );
    lambda.check(
        resp.payload_len <= LAMBDA_PAYLOAD_LIMIT,
        &format!(
            "the Lambda response payload ({} bytes, base64 body) is within Lambda's 6 MB",
            resp.payload_len
        ),
        &resp,
    );
    eprintln!(
        "[lambda] large page with gzip: 200, {} bytes of JSON as {} bytes gzip, payload {} bytes ({} ms)",
        json_bytes.len(),
        gz.len(),
        resp.payload_len,
        t.elapsed().as_millis()
    );

    // The same page for a caller without gzip: the clear 502, never a
    // truncated body.
    let t = Instant::now();
    let resp = lambda.invoke(&event(
        "GET",
        "/v1.0/groups",
        "$top=999",
        &[],
        Some(CALLER_ARN),
    ));
    lambda.check(
        stub.take().len() == 1,
        "Graph was asked for the large page again",
        &resp,
    );
    lambda.check(
        resp.status() == 502,
        "the large page without gzip is 502",
        &resp,
    );
    lambda.check(
        resp.header("x-psoxy-error") == Some("API_ERROR"),
        "… with `x-psoxy-error: API_ERROR`",
        &resp,
    );
    let err = resp.json();
    let message = err["error"]["message"].as_str().unwrap_or_default();
    lambda.check(
        err["error"]["code"] == "response_too_large"
            && message.contains("6 MB")
            && message.contains("Accept-Encoding: gzip")
            && message.contains("RESPONSE_STREAM"),
        "… whose JSON error names the 6 MB limit and the remedies (gzip, $top, RESPONSE_STREAM)",
        &resp,
    );
    lambda.check(
        resp.body_bytes().len() < 2048 && !resp.body_text().contains("\"value\""),
        "… and carries nothing of the page",
        &resp,
    );
    eprintln!(
        "[lambda] large page without gzip: 502 `{message}` ({} ms)",
        t.elapsed().as_millis()
    );

    // Nothing personal in the function's logs either.
    let log = fs::read_to_string(&lambda.log).unwrap_or_default();
    for (_, name, mail) in PEOPLE {
        assert!(
            !log.contains(name) && !log.contains(mail),
            "`{name}` / `{mail}` in the function's log:\n{}",
            lambda.log_tail()
        );
    }
    eprintln!("[lambda] all passed in {:.1} s", t0.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// cargo lambda

/// Fails (never skips) when `cargo lambda` is missing.
fn require_cargo_lambda() {
    let out = Command::new("cargo").args(["lambda", "--version"]).output();
    match out {
        Ok(o) if o.status.success() => {
            eprintln!("[lambda] {}", String::from_utf8_lossy(&o.stdout).trim());
        }
        Ok(o) => panic!(
            "`cargo lambda` is not on PATH ({}): run `bash scripts/install-test-tools.sh` and put .tools/bin on PATH (scripts/test.sh does both)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run `cargo lambda --version` ({e}): run `bash scripts/install-test-tools.sh` and put .tools/bin on PATH (scripts/test.sh does both)"
        ),
    }
}

/// `cargo lambda watch`, running the `veil` bin as the function `veil`;
/// killed with its whole process group on drop.
struct Lambda {
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

/// One invocation's answer: the API Gateway v2 / Function URL response.
struct Invocation {
    response: Value,
    /// The size of the response payload as the function returns it (compact JSON).
    payload_len: usize,
}

impl Lambda {
    fn start(stub: &GraphStub) -> Lambda {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let log = dir.join("cargo-lambda-watch.log");
        let log_file = fs::File::create(&log).expect("log file");
        let port = free_port();
        let mut cmd = Command::new("cargo");
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["lambda", "watch"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            // Other edits to the work tree must not restart the function mid-test.
            .arg("--ignore-changes")
            .args(["--locked", "--bin", "veil"]);
        let env = [
            ("VEIL_CONNECTOR", "entra-id".to_string()),
            ("VEIL_SALT", SALT.to_string()),
            ("VEIL_ENCRYPTION_KEY", KEY.to_string()),
            ("VEIL_UPSTREAM_TOKEN", UPSTREAM_TOKEN.to_string()),
            ("VEIL_UPSTREAM", stub.url()),
            ("VEIL_ALLOWED_CALLER_ARNS", ALLOWED_ARN.to_string()),
            ("RUST_LOG", "info".to_string()),
        ];
        for (k, v) in &env {
            assert!(!v.contains(','), "--env-var splits on commas: {k}");
            cmd.args(["--env-var", &format!("{k}={v}")]);
        }
        // Nothing of the test process's environment may change what is
        // tested: no other Veil settings, no proxies, no Lambda variables.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let proxy = k.eq_ignore_ascii_case("http_proxy")
                || k.eq_ignore_ascii_case("https_proxy")
                || k.eq_ignore_ascii_case("all_proxy");
            if k.starts_with("VEIL_") || k.starts_with("AWS_") || proxy {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start `cargo lambda watch` ({e}): run `bash scripts/install-test-tools.sh`"
            )
        });
        eprintln!(
            "[lambda] cargo lambda watch on 127.0.0.1:{port}, Graph stub on {}",
            stub.url()
        );
        Lambda {
            child,
            port,
            dir,
            log,
            _tmp: tmp,
        }
    }

    /// The first invocation, retried until it answers or READY_TIMEOUT passes.
    fn invoke_until_ready(&mut self, event: &Value) -> Invocation {
        let started = Instant::now();
        let mut last_error;
        loop {
            let left = READY_TIMEOUT.saturating_sub(started.elapsed());
            match self.try_invoke(event, left.max(Duration::from_secs(1))) {
                Ok(inv) => return inv,
                Err(e) => last_error = e,
            }
            if let Some(status) = self.exited() {
                panic!(
                    "`cargo lambda watch` exited ({status}) before the function answered: {last_error}\n{}",
                    self.log_tail()
                );
            }
            if started.elapsed() >= READY_TIMEOUT {
                panic!(
                    "the function did not answer within {} s: {last_error}\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    fn invoke(&self, event: &Value) -> Invocation {
        self.try_invoke(event, INVOKE_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "invoking {} {}: {e}\n{}",
                event["requestContext"]["http"]["method"],
                event["rawPath"],
                self.log_tail()
            )
        })
    }

    /// `cargo lambda invoke veil --data-file EVENT --output-format json`.
    fn try_invoke(&self, event: &Value, timeout: Duration) -> Result<Invocation, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let data = self.dir.join(format!("event-{n}.json"));
        let out = self.dir.join(format!("invoke-{n}.out"));
        let err = self.dir.join(format!("invoke-{n}.err"));
        fs::write(&data, serde_json::to_vec_pretty(event).expect("event")).expect("event file");
        let mut child = Command::new("cargo")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["lambda", "invoke", "veil"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(&data)
            .args(["--output-format", "json"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("output file"))
            .stderr(fs::File::create(&err).expect("error file"))
            .spawn()
            .map_err(|e| format!("cannot run `cargo lambda invoke`: {e}"))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`cargo lambda invoke` did not return within {} s",
                    timeout.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        };
        let stderr = fs::read_to_string(&err).unwrap_or_default();
        if !status.success() {
            return Err(format!(
                "`cargo lambda invoke` failed ({status}): {}",
                stderr.trim()
            ));
        }
        let raw = fs::read(&out).map_err(|e| e.to_string())?;
        let response: Value = serde_json::from_slice(&raw).map_err(|e| {
            format!(
                "`cargo lambda invoke` printed no JSON response ({e}): {}{}",
                String::from_utf8_lossy(&raw[..raw.len().min(2000)]),
                stderr.trim()
            )
        })?;
        let payload_len = serde_json::to_vec(&response).map(|v| v.len()).unwrap_or(0);
        Ok(Invocation {
            response,
            payload_len,
        })
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The end of the emulator's and the function's output, for failures.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!("--- cargo lambda watch (last 60 lines) ---\n{tail}\n---")
    }

    /// Asserts `cond`, showing the response and the function's log when it fails.
    fn check(&self, cond: bool, what: &str, inv: &Invocation) {
        if !cond {
            let mut shown = inv.response.clone();
            if let Some(body) = shown.get_mut("body") {
                let text = inv.body_text();
                let cut: String = text.chars().take(3000).collect();
                *body = Value::String(if text.len() > cut.len() {
                    format!("{cut}… ({} bytes)", text.len())
                } else {
                    cut
                });
            }
            panic!(
                "FAILED: {what}\nresponse: {}\n{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default(),
                self.log_tail()
            );
        }
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        // The emulator, `cargo run` and the function share the process group
        // the emulator leads (`process_group(0)`): end all of it.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Invocation {
    fn status(&self) -> u64 {
        self.response["statusCode"].as_u64().unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        let headers = self.response["headers"].as_object()?;
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }

    /// The body as sent (base64-decoded when `isBase64Encoded`).
    fn body_bytes(&self) -> Vec<u8> {
        let body = self.response["body"].as_str().unwrap_or_default();
        if self.response["isBase64Encoded"] == true {
            base64_decode(body).expect("isBase64Encoded, but the body is not base64")
        } else {
            body.as_bytes().to_vec()
        }
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body_bytes()).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body_bytes()).unwrap_or(Value::Null)
    }
}

/// A Function URL event (payload format 2.0, `AWS_IAM` auth) from the
/// fixture: `arn` is the IAM caller, `None` for no IAM identity.
fn event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    arn: Option<&str>,
) -> Value {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut e: Value = serde_json::from_str(include_str!("fixtures/lambda/function-url-get.json"))
        .expect("tests/fixtures/lambda/function-url-get.json is JSON");
    e["rawPath"] = json!(path);
    e["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), json!(v))
        })
        .collect();
    match e.as_object_mut() {
        Some(o) if params.is_empty() => {
            o.remove("queryStringParameters");
        }
        Some(o) => {
            o.insert("queryStringParameters".into(), Value::Object(params));
        }
        None => unreachable!("the fixture is an object"),
    }
    for (k, v) in headers {
        e["headers"][*k] = json!(v);
    }
    let ctx = &mut e["requestContext"];
    ctx["http"]["method"] = json!(method);
    ctx["http"]["path"] = json!(path);
    ctx["requestId"] = json!(format!("lambda-e2e-{}", N.fetch_add(1, Ordering::Relaxed)));
    match arn {
        Some(arn) => ctx["authorizer"]["iam"]["userArn"] = json!(arn),
        None => {
            if let Some(o) = ctx.as_object_mut() {
                o.remove("authorizer");
            }
        }
    }
    e
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

// ---------------------------------------------------------------------------
// The Graph stub

/// What the stub saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
}

/// A recording Microsoft Graph stub on 127.0.0.1 (HTTP/1.1, one request per
/// connection): `/v1.0/users…` answers a users page (or one user),
/// `/v1.0/groups` a page of about 8.6 MB. Every request needs
/// `Authorization: Bearer dev-token`.
struct GraphStub {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GraphStub {
    fn start() -> GraphStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Graph stub");
        let addr = listener.local_addr().expect("stub address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let large = Arc::new(large_groups_page());
        let recorder = seen.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (seen, large) = (recorder.clone(), large.clone());
                thread::spawn(move || {
                    let _ = serve(conn, &seen, &large);
                });
            }
        });
        GraphStub { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests seen since the last call.
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>, large: &[u8]) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
        method,
        target: target.clone(),
        authorization: authorization.clone(),
    });
    let path = target.split('?').next().unwrap_or("");
    let (status, body): (&str, Vec<u8>) = if authorization.as_deref() != Some("Bearer dev-token") {
        (
            "401 Unauthorized",
            br#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token is empty."}}"#.to_vec(),
        )
    } else if path == "/v1.0/users" {
        ("200 OK", users_page().to_string().into_bytes())
    } else if let Some(id) = path.strip_prefix("/v1.0/users/") {
        match PEOPLE.iter().position(|p| p.0 == id) {
            Some(i) => ("200 OK", user(i).to_string().into_bytes()),
            None => (
                "404 Not Found",
                br#"{"error":{"code":"Request_ResourceNotFound","message":"Resource does not exist."}}"#.to_vec(),
            ),
        }
    } else if path == "/v1.0/groups" {
        ("200 OK", large.to_vec())
    } else {
        (
            "404 Not Found",
            br#"{"error":{"code":"BadRequest","message":"Resource not found for the segment."}}"#
                .to_vec(),
        )
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: 0b6f1c3e-stub\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    w.write_all(&body)?;
    w.flush()
}

fn user(i: usize) -> Value {
    let (id, name, mail) = PEOPLE[i];
    let (given, surname) = name.split_once(' ').unwrap_or((name, ""));
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": id,
        "displayName": name,
        "givenName": given,
        "surname": surname,
        "mail": mail,
        "userPrincipalName": mail,
        "jobTitle": "Principal Engineer",
        "businessPhones": ["+1 425 555 0100"],
        "department": "Research",
        "accountEnabled": true,
    })
}

fn users_page() -> Value {
    let value: Vec<Value> = (0..PEOPLE.len())
        .map(|i| {
            let mut u = user(i);
            if let Some(o) = u.as_object_mut() {
                o.remove("@odata.context");
            }
            u
        })
        .collect();
    json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
        "@odata.nextLink": format!("https://graph.microsoft.com/v1.0/users?$top=2&$skiptoken={SKIPTOKEN}"),
        "value": value,
    })
}

/// LARGE_GROUPS groups: about 8.6 MB of Graph JSON.
fn large_groups_page() -> Vec<u8> {
    let mut s = String::with_capacity(LARGE_GROUPS * 300);
    s.push_str(
        r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#groups","value":["#,
    );
    for i in 0..LARGE_GROUPS {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            concat!(
                r#"{{"id":"{i:08x}-5e1d-4c2b-9f3a-{i:012x}","createdDateTime":"2024-03-01T08:00:00Z","#,
                r#""renewedDateTime":"2024-03-01T08:00:00Z","displayName":"Project team {i}","#,
                r#""description":"Coordination of project {i}","groupTypes":["Unified"],"#,
                r#""mail":"project-team-{i}@contoso.example","mailEnabled":true,"#,
                r#""mailNickname":"project-team-{i}","securityEnabled":false,"#,
                r#""visibility":"Private","isAssignableToRole":false}}"#
            ),
            i = i
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

// ---------------------------------------------------------------------------
// Decoding (the test has no base64 or gzip crate)

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// Decompresses with the system's `gzip -dc`.
fn gunzip(data: &[u8], dir: &Path) -> Vec<u8> {
    let path = dir.join("body.gz");
    fs::write(&path, data).expect("write the gzip body");
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(&path)
        .output()
        .expect("run `gzip -dc`");
    assert!(
        out.status.success(),
        "the gzip body does not decompress ({} bytes): {}",
        data.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
