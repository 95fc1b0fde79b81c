//! `veil sanitize`, run as the binary rule authors and tooling call.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const SALT: &str = "cli-test-salt-Xq8Lw2Pz7Rb3Vm1Kc5Nd9Hs4Tg6Yj0Fe";
const KEY: &str = "cli-test-key-Jm4Tq9Wx2Ls7Bd5Hv1Rk8Np3Yc6Gz0Ua";

fn veil(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
    cmd.args(args)
        .env_remove("VEIL_SALT")
        .env_remove("VEIL_ENCRYPTION_KEY")
        .env_remove("VEIL_SCHEME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn veil");
    // Veil may exit (a bad rule file, a missing secret) before it reads its
    // input: a closed pipe is then not the test's failure.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    child.wait_with_output().expect("wait")
}

const SECRETS: [(&str, &str); 2] = [("VEIL_SALT", SALT), ("VEIL_ENCRYPTION_KEY", KEY)];
const SAMPLE: &str = "example-api-responses/outlook-mail/original/sent-messages.json";
const SAMPLE_URL: &str = "https://graph.microsoft.com/v1.0/users/5d1f8c3a-92b4-4e6f-a7c1-3b8e0d4f2a61/mailFolders/SentItems/messages?$top=10";

#[test]
fn sanitizes_a_bundled_sample_and_explains() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            SAMPLE_URL,
            "--explain",
            SAMPLE,
        ],
        "",
        &SECRETS,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("stdout is JSON");
    assert!(v["value"].as_array().is_some_and(|a| !a.is_empty()));
    assert!(!text.contains("Priya"), "a name left Veil");
    assert!(text.contains("t~"));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("responseSchema:")
            && err.contains("#0 pseudonymize")
            && err.contains("values changed"),
        "{err}"
    );
}

#[test]
fn reads_stdin_and_a_bare_path() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/entra-id.yaml",
            "--url",
            "/v1.0/users?$top=1",
        ],
        r#"{"value":[{"id":"x","displayName":"Ann Example","mail":"ann@contoso.example"}]}"#,
        &SECRETS,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("Ann") && !text.contains("ann@"), "{text}");
}

#[test]
fn refused_url_names_the_closest_endpoint_and_the_check() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            "/v1.0/users/abc/mailFolders/Inbox/messages",
        ],
        "{}",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("no endpoint")
            && err.contains("closest endpoint: /v1.0/users/{userId}/mailFolders"),
        "{err}"
    );

    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            "/v1.0/users?$search=x",
        ],
        "{}",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("query parameter `$search` is not allowed"),
        "{err}"
    );

    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            "/v1.0/users",
            "--method",
            "DELETE",
        ],
        "{}",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("method DELETE is not allowed"));
}

#[test]
fn invalid_json_input_gives_line_and_column_and_no_output() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/entra-id.yaml",
            "--url",
            "/v1.0/users",
        ],
        "{\n  \"value\": [1,\n}",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("<stdin>:3:1") && err.contains("not valid JSON"),
        "{err}"
    );
}

#[test]
fn missing_salt_says_how_to_make_one() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/entra-id.yaml",
            "--url",
            "/v1.0/users",
        ],
        "{}",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VEIL_SALT is not set"));
}

#[test]
fn short_salt_is_refused_in_hmac_scheme() {
    let out = veil(
        &[
            "sanitize",
            "--rules",
            "rules/entra-id.yaml",
            "--url",
            "/v1.0/users",
        ],
        "{}",
        &[("VEIL_SALT", "short")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("32") && !err.contains("short\""), "{err}");
}

#[test]
fn psoxy_scheme_reproduces_psoxy_pseudonyms() {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..mail', '$..id']\n").unwrap();
    let out = veil(
        &[
            "sanitize",
            "--rules",
            rules.path().to_str().unwrap(),
            "--url",
            "/x",
            "--scheme",
            "psoxy",
            "--compact",
        ],
        r#"{"mail":"Alice@worklytics.onmicrosoft.com","id":"87d349ed-44d7-43e1-9a83-5f2406dee5bd"}"#,
        // Psoxy's published check vectors use the salt `salt`: only a
        // named migration admits a salt that short.
        &[
            ("VEIL_SALT", "salt"),
            ("VEIL_ALLOW_LEGACY_SHORT_SALT", "true"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        r#"{"mail":"t~80OuLKaSEacbENaFngf3v1Ul1rcs-6BmJRZsfb9scss@worklytics.onmicrosoft.com","id":"t~GIahqS6f7LWgiuhAm2FdsUTe3olu5_uafg6X_8R1Xds"}"#
    );
}

#[test]
fn a_rule_that_cannot_apply_fails_closed_with_nothing_on_stdout() {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..from']\n").unwrap();
    let out = veil(
        &[
            "sanitize",
            "--rules",
            rules.path().to_str().unwrap(),
            "--url",
            "/x",
        ],
        r#"{"from":{"address":"ann@contoso.example"}}"#,
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("$.from") && !err.contains("ann@"), "{err}");
}

#[test]
fn rule_file_errors_name_file_line_and_place() {
    let rules = tempfile::NamedTempFile::with_suffix(".yaml").unwrap();
    std::fs::write(rules.path(), "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<redact>\n        jsonPath: ['$..a']\n").unwrap();
    let out = veil(
        &[
            "sanitize",
            "--rules",
            rules.path().to_str().unwrap(),
            "--url",
            "/x",
        ],
        "{}",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(":5:")
            && err.contains("endpoints[0].transforms[0]")
            && err.contains("did you mean `jsonPaths`"),
        "{err}"
    );
}

#[test]
fn a_reader_that_stops_early_is_no_error() {
    // `veil sanitize … | head -c 10`: the pipe closes before Veil writes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args([
            "sanitize",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            SAMPLE_URL,
            SAMPLE,
        ])
        .envs(SECRETS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn veil");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
}

/// `--compact` on a file reads it in pieces, twice; on stdin it reads it
/// whole. Both write the same bytes, and fail alike.
#[test]
fn compact_reads_a_file_in_pieces_as_it_reads_stdin() {
    fn args(input: Option<&str>) -> Vec<&str> {
        let mut a = vec![
            "sanitize",
            "--compact",
            "--rules",
            "rules/outlook-mail.yaml",
            "--url",
            SAMPLE_URL,
        ];
        a.extend(input);
        a
    }
    let from_file = veil(&args(Some(SAMPLE)), "", &SECRETS);
    let sample = std::fs::read_to_string(SAMPLE).unwrap();
    let from_stdin = veil(&args(None), &sample, &SECRETS);
    assert!(
        from_file.status.success() && from_stdin.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert!(from_file.stdout.len() > 100);
    assert_eq!(from_file.stdout, from_stdin.stdout);
    // A pipe given by name cannot be read twice: it is read whole.
    let from_pipe = veil(&args(Some("/dev/stdin")), &sample, &SECRETS);
    assert!(
        from_pipe.status.success(),
        "{}",
        String::from_utf8_lossy(&from_pipe.stderr)
    );
    assert_eq!(from_pipe.stdout, from_stdin.stdout);
    // The same with a duplicate member name, which the DOM path answers
    // (the file is read a third time, whole).
    let dup = tempfile::NamedTempFile::new().unwrap();
    let doc = sample.replacen(
        "\"value\"",
        "\"@odata.count\": 1, \"@odata.count\": 2, \"value\"",
        1,
    );
    assert_ne!(doc, sample);
    std::fs::write(dup.path(), &doc).unwrap();
    let from_file = veil(&args(Some(dup.path().to_str().unwrap())), "", &SECRETS);
    let from_stdin = veil(&args(None), &doc, &SECRETS);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert_eq!(from_file.stdout, from_stdin.stdout);
}

#[test]
fn compact_on_a_file_fails_closed_with_the_line_and_column() {
    // More than the writing pass hands out at a time, then invalid JSON:
    // the first pass finds it, nothing is written.
    let big: Vec<String> = (0..5000).map(|i| format!("{{\"id\": \"m{i}\"}}")).collect();
    let body = format!("{{\"value\": [\n{},\n]}}\n", big.join(",\n"));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    let path = file.path().to_str().unwrap();
    let out = veil(
        &[
            "sanitize",
            "--compact",
            "--rules",
            "rules/entra-id.yaml",
            "--url",
            "/v1.0/users",
            path,
        ],
        "",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("{path}:5002:1")) && err.contains("not valid JSON"),
        "{err}"
    );
    // A transform that fails late in a large file: nothing written either.
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), "endpoints:\n  - pathTemplate: /x\n    transforms:\n      - !<pseudonymize>\n        jsonPaths: ['$..from']\n").unwrap();
    let big: Vec<String> = (0..5000)
        .map(|i| format!("{{\"from\": \"u{i}@contoso.example\"}}"))
        .collect();
    let body = format!(
        "{{\"value\": [{}, {{\"from\": {{\"address\": \"ann@contoso.example\"}}}}]}}",
        big.join(", ")
    );
    std::fs::write(file.path(), &body).unwrap();
    let out = veil(
        &[
            "sanitize",
            "--compact",
            "--rules",
            rules.path().to_str().unwrap(),
            "--url",
            "/x",
            path,
        ],
        "",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("$.value[5000].from") && !err.contains("ann@"),
        "{err}"
    );
    // A file that does not exist.
    let out = veil(
        &[
            "sanitize",
            "--compact",
            "--rules",
            rules.path().to_str().unwrap(),
            "--url",
            "/x",
            "/nonexistent/page.json",
        ],
        "",
        &SECRETS,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/page.json"));
}
