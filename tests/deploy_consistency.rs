//! The deployment artifacts agree with Veil itself:
//!
//! - each connector's Graph permissions are identical in its rule files
//!   (`connector.graphPermissions`), in `deploy/entra/permissions.auto.tfvars.json`
//!   and in what `veil setup --format markdown` tells the administrator;
//! - every `VEIL_*` variable the deployment files name is one Veil defines
//!   (a `const … = "VEIL_…"` in the sources, read at test time so variables
//!   added later need no change here), and the hosts set the ones Veil needs;
//! - the AWS execution role holds exactly the actions Veil uses, the Function
//!   URL only admits IAM-authenticated callers, and Cloud Run is never public;
//! - the Cloud Run environment `deploy/gcp/main.tf` sets, filled with sample
//!   variables, starts `veil serve`, and the variables behind the values it
//!   requires are required (or, for `client_id`, gate the service).
//!
//! The AWS runbook itself runs in `tests/deploy_rehearsal.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_yaml_ng::Value;

const CONNECTORS: [&str; 6] = [
    "entra-id",
    "outlook-mail",
    "outlook-cal",
    "msft-teams",
    "outlook-contacts",
    "outlook-mail-received",
];
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "1b3c5d7e-9f01-4a23-b456-789abcdef012";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == ".terraform") {
                    continue;
                }
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rule_permissions(file: &str) -> Vec<String> {
    let v: Value = serde_yaml_ng::from_str(&read(file)).unwrap();
    v["connector"]["graphPermissions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{file}: no connector.graphPermissions"))
        .iter()
        .map(|p| p["permission"].as_str().unwrap().to_string())
        .collect()
}

fn setup_markdown(connector: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_veil"))
        .args([
            "setup",
            "--connector",
            connector,
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "veil setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The permission rows of the "Microsoft Graph application permissions" section.
fn setup_permissions(md: &str) -> Vec<String> {
    let row = Regex::new(r"^\| `([A-Za-z.]+)` \| ").unwrap();
    let mut in_section = false;
    let mut out = Vec::new();
    for line in md.lines() {
        if line.starts_with("## ") {
            in_section = line.contains("Microsoft Graph application permissions");
        } else if in_section {
            if let Some(c) = row.captures(line) {
                out.push(c[1].to_string());
            }
        }
    }
    out
}

#[test]
fn permissions_agree_across_rules_entra_terraform_and_veil_setup() {
    let tfvars: serde_json::Value =
        serde_json::from_str(&read("deploy/entra/permissions.auto.tfvars.json")).unwrap();
    let tf = tfvars["graph_permissions"].as_object().unwrap();
    let tf_connectors: BTreeSet<&str> = tf.keys().map(String::as_str).collect();
    assert_eq!(
        tf_connectors,
        CONNECTORS.into_iter().collect(),
        "connectors in permissions.auto.tfvars.json"
    );
    for c in CONNECTORS {
        let rules = rule_permissions(&format!("rules/{c}.yaml"));
        let clear = rule_permissions(&format!("rules/{c}.clear-ids.yaml"));
        assert_eq!(rules, clear, "{c}: the two rule variants differ");
        let entra: Vec<String> = tf[c]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            entra, rules,
            "{c}: deploy/entra/permissions.auto.tfvars.json differs from rules/{c}.yaml"
        );
        let md = setup_markdown(c);
        assert_eq!(
            setup_permissions(&md),
            rules,
            "{c}: veil setup differs from rules/{c}.yaml"
        );
        for p in &rules {
            assert!(
                p.contains(".Read") && !p.to_ascii_lowercase().contains("write"),
                "{c}: {p} is not read-only"
            );
        }
        assert!(
            md.contains(&format!(
                "https://login.microsoftonline.com/{TENANT}/adminconsent?client_id={CLIENT}"
            )),
            "{c}: consent URL"
        );
    }
}

/// `VEIL_*` names defined as string constants anywhere in Veil's sources.
fn defined_variables() -> BTreeSet<String> {
    let def = Regex::new(r#"const\s+[A-Z0-9_]+\s*:\s*&str\s*=\s*"(VEIL_[A-Z0-9_]+)""#).unwrap();
    let mut out = BTreeSet::new();
    for dir in ["src", "veil-engine/src", "veil-proxy/src"] {
        for f in files(&root().join(dir)) {
            if f.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&f).unwrap();
                out.extend(def.captures_iter(&text).map(|c| c[1].to_string()));
            }
        }
    }
    out
}

/// `VEIL_*` names in the deployment files, with the files naming them.
fn deploy_variables() -> BTreeMap<String, BTreeSet<String>> {
    let name = Regex::new(r"\bVEIL_[A-Z0-9_]*[A-Z0-9]\b").unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files(&root().join("deploy")) {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        for m in name.find_iter(&text) {
            out.entry(m.as_str().to_string())
                .or_default()
                .insert(rel.clone());
        }
    }
    out
}

#[test]
fn every_variable_named_in_deploy_is_defined_by_veil() {
    let defined = defined_variables();
    assert!(
        defined.contains("VEIL_CONNECTOR") && defined.contains("VEIL_SALT"),
        "the source scan found too little: {defined:?}"
    );
    let used = deploy_variables();
    assert!(
        used.len() >= 10,
        "the deploy scan found too little: {used:?}"
    );
    let unknown: Vec<String> = used
        .iter()
        .filter(|(v, _)| !defined.contains(*v))
        .map(|(v, files)| {
            format!(
                "{v} (in {})",
                files.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "variables the deployment sets or documents that Veil does not define:\n  {}",
        unknown.join("\n  ")
    );
}

/// The keys of the Lambda function's environment in the template.
fn template() -> Value {
    serde_yaml_ng::from_str(&read("deploy/aws/template.yaml")).unwrap()
}

/// A YAML value with CloudFormation's short-form tags removed.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

#[test]
fn hosts_set_the_variables_veil_needs() {
    let t = template();
    let env = t["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap();
    let keys: BTreeSet<&str> = env.keys().map(|k| k.as_str().unwrap()).collect();
    for v in [
        "VEIL_CONNECTOR",
        "VEIL_RULES_VARIANT",
        "VEIL_SALT_SSM_PARAMETER",
        "VEIL_ENCRYPTION_KEYS_SSM_PARAMETER",
        "VEIL_TOKEN_PROVIDER",
        "VEIL_TENANT_ID",
        "VEIL_CLIENT_ID",
        "VEIL_AWS_STS_AUDIENCE",
        "VEIL_AWS_STS_SIGNING_ALGORITHM",
        "VEIL_AWS_STS_DURATION_SECS",
        "VEIL_COGNITO_IDENTITY_POOL_ID",
        "VEIL_COGNITO_DEVELOPER_PROVIDER",
        "VEIL_COGNITO_LOGIN",
        "VEIL_ALLOWED_CALLER_ARNS",
        "VEIL_LAMBDA_INVOKE_MODE",
        "VEIL_UPSTREAM_TIMEOUT_SECS",
    ] {
        assert!(keys.contains(v), "the Lambda function does not set {v}");
    }
    for secret in [
        "VEIL_SALT",
        "VEIL_ENCRYPTION_KEYS",
        "VEIL_ENCRYPTION_KEY",
        "VEIL_UPSTREAM_TOKEN",
        "VEIL_ALLOW_UNAUTHENTICATED",
    ] {
        assert!(
            !keys.contains(secret),
            "the Lambda function must not set {secret}"
        );
    }
    let gcp = read("deploy/gcp/main.tf");
    let env_name = Regex::new(r#"name\s*=\s*"(VEIL_[A-Z0-9_]+)""#).unwrap();
    let gcp_keys: BTreeSet<String> = env_name
        .captures_iter(&gcp)
        .map(|c| c[1].to_string())
        .collect();
    for v in [
        "VEIL_CONNECTOR",
        "VEIL_RULES_VARIANT",
        "VEIL_SALT_FILE",
        "VEIL_ENCRYPTION_KEYS_FILE",
        "VEIL_TOKEN_PROVIDER",
        "VEIL_GCP_AUDIENCE",
        "VEIL_TENANT_ID",
        "VEIL_CLIENT_ID",
        "VEIL_CALLER_ISSUER",
        "VEIL_CALLER_AUDIENCES",
        "VEIL_CALLER_EMAILS",
    ] {
        assert!(
            gcp_keys.contains(v),
            "the Cloud Run service does not set {v}"
        );
    }
    for secret in [
        "VEIL_SALT",
        "VEIL_ENCRYPTION_KEYS",
        "VEIL_UPSTREAM_TOKEN",
        "VEIL_ALLOW_UNAUTHENTICATED",
    ] {
        assert!(
            !gcp_keys.contains(secret),
            "the Cloud Run service must not set {secret}"
        );
    }
    assert!(gcp.contains(r#"value = "https://accounts.google.com""#));
    assert!(gcp.contains(r#"value = "gcp""#));
}

#[test]
fn aws_role_and_function_url_are_least_privilege() {
    let t = template();
    let statements = t["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_sequence()
        .unwrap();
    let mut actions = BTreeSet::new();
    for s in statements {
        // Conditional statements are `!If [cond, statement, !Ref AWS::NoValue]`.
        let s = match untag(s) {
            Value::Sequence(seq) => untag(&seq[1]),
            s => s,
        };
        assert_eq!(s["Effect"].as_str(), Some("Allow"));
        let a = untag(&s["Action"]);
        let list: Vec<&str> = match a {
            Value::String(x) => vec![x.as_str()],
            Value::Sequence(xs) => xs.iter().map(|x| x.as_str().unwrap()).collect(),
            other => panic!("unexpected Action {other:?}"),
        };
        for a in list {
            assert!(!a.contains('*'), "wildcard action {a}");
            actions.insert(a.to_string());
        }
        let sid = s["Sid"].as_str().unwrap();
        let resource = untag(&s["Resource"]);
        if resource.as_str() == Some("*") {
            // Only GetWebIdentityToken has no resource type; it is pinned by conditions.
            assert_eq!(sid, "HostTokenForEntra", "statement {sid} has Resource *");
            let cond = serde_yaml_ng::to_string(&s["Condition"]).unwrap();
            for key in [
                "sts:IdentityTokenAudience",
                "sts:DurationSeconds",
                "sts:SigningAlgorithm",
            ] {
                assert!(
                    cond.contains(key),
                    "GetWebIdentityToken is not conditioned on {key}"
                );
            }
        }
        if sid == "DecryptSecretsThroughSsm" {
            let cond = serde_yaml_ng::to_string(&s["Condition"]).unwrap();
            assert!(
                cond.contains("kms:ViaService"),
                "kms:Decrypt without kms:ViaService"
            );
        }
    }
    let expected: BTreeSet<String> = [
        "ssm:GetParameter",
        "kms:Decrypt",
        "sts:GetWebIdentityToken",
        "cognito-identity:GetOpenIdTokenForDeveloperIdentity",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, expected, "the execution role's actions");

    let resources = t["Resources"].as_mapping().unwrap();
    let mut url_permissions = 0;
    for (name, r) in resources {
        let ty = r["Type"].as_str().unwrap();
        let props = &r["Properties"];
        match ty {
            "AWS::Lambda::Url" => {
                assert_eq!(props["AuthType"].as_str(), Some("AWS_IAM"), "{name:?}")
            }
            "AWS::Lambda::Permission" => {
                url_permissions += 1;
                let principal = serde_yaml_ng::to_string(&props["Principal"]).unwrap();
                assert!(
                    principal.contains("CallerPrincipalArn"),
                    "{name:?}: principal {principal} is not the caller parameter"
                );
                match props["Action"].as_str() {
                    Some("lambda:InvokeFunctionUrl") => {
                        assert_eq!(
                            props["FunctionUrlAuthType"].as_str(),
                            Some("AWS_IAM"),
                            "{name:?}"
                        )
                    }
                    Some("lambda:InvokeFunction") => {
                        assert_eq!(
                            props["InvokedViaFunctionUrl"].as_bool(),
                            Some(true),
                            "{name:?}"
                        )
                    }
                    other => panic!("{name:?}: unexpected action {other:?}"),
                }
            }
            _ => {}
        }
    }
    assert_eq!(url_permissions, 4, "two permissions per caller principal");
    let function = &t["Resources"]["Function"]["Properties"];
    assert_eq!(function["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(function["Handler"].as_str(), Some("bootstrap"));
    let key = &t["Resources"]["SecretsKey"]["Properties"];
    assert_eq!(key["EnableKeyRotation"].as_bool(), Some(true));
}

#[test]
fn cloud_run_is_invoked_only_by_the_vendor_and_runs_as_non_root() {
    for f in files(&root().join("deploy/gcp")) {
        let text = fs::read_to_string(&f).unwrap();
        // Code only: comments may say that there is no public access.
        let code = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim_start().starts_with("//"));
        for line in code {
            for public in ["allUsers", "allAuthenticatedUsers"] {
                assert!(
                    !line.contains(public),
                    "{} grants {public}: {line}",
                    f.display()
                );
            }
        }
    }
    let main = read("deploy/gcp/main.tf");
    let invokers =
        Regex::new(r#"role\s*=\s*"roles/run\.invoker"\s*\n\s*member\s*=\s*"([^"]+)""#).unwrap();
    let members: Vec<String> = invokers
        .captures_iter(&main)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(
        members,
        vec!["serviceAccount:${var.vendor_service_account}".to_string()]
    );
    assert!(main.contains("min_instance_count = 0"));
    let docker = read("deploy/gcp/Dockerfile");
    let last_from = docker.lines().rfind(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        last_from.contains("distroless"),
        "runtime image: {last_from}"
    );
    let last_user = docker.lines().rfind(|l| l.starts_with("USER ")).unwrap();
    assert!(
        !last_user.contains("root:") || last_user.contains("nonroot"),
        "{last_user}"
    );
    assert!(docker.lines().any(|l| l == "EXPOSE 8080"));
}

/// The `variable "NAME" { … }` blocks of a Terraform file, by name.
fn tf_variables(text: &str) -> BTreeMap<String, String> {
    let block = Regex::new(r#"(?ms)^variable "([a-z_]+)" \{\n(.*?)^\}"#).unwrap();
    block
        .captures_iter(text)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

/// The Cloud Run container's `env { name = …  value = … }` pairs, in order.
fn cloud_run_env(main: &str) -> Vec<(String, String)> {
    let env =
        Regex::new(r#"env \{\n\s*name\s*=\s*"(VEIL_[A-Z0-9_]+)"\n\s*value\s*=\s*(.+)\n\s*\}"#)
            .unwrap();
    env.captures_iter(main)
        .map(|c| (c[1].to_string(), c[2].trim().to_string()))
        .collect()
}

/// The value of a Terraform expression of the env blocks, with `vars`
/// for the variables and the locals `veil serve` depends on. Panics on any
/// expression it does not know, so a new kind of value is looked at here.
fn tf_value(expr: &str, vars: &BTreeMap<&str, &str>, main: &str) -> String {
    let var = Regex::new(r"^(?:tostring\()?var\.([a-z_]+)\)?$").unwrap();
    if let Some(c) = var.captures(expr) {
        return vars
            .get(&c[1])
            .unwrap_or_else(|| panic!("no sample value for var.{}", &c[1]))
            .to_string();
    }
    if let Some(s) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        assert!(!s.contains("${"), "interpolation in {expr}");
        return s.to_string();
    }
    // The locals, whose definitions are checked to be what this evaluates.
    let local = |name: &str, definition: &str| {
        assert!(
            main.contains(definition),
            "local.{name} changed: expected `{definition}` in deploy/gcp/main.tf"
        );
    };
    match expr {
        "local.service_url" => {
            local(
                "service_url",
                r#"service_url = "https://${local.name}-${data.google_project.this.number}.${var.region}.run.app""#,
            );
            format!(
                "https://veil-{}-123456789012.{}.run.app",
                vars["connector"], vars["region"]
            )
        }
        "local.caller_subjects" => {
            local(
                "caller_subjects",
                "caller_subjects = var.vendor_service_account_unique_id",
            );
            vars["vendor_service_account_unique_id"].to_string()
        }
        "local.caller_emails" => {
            local(
                "caller_emails",
                r#"caller_emails   = var.vendor_service_account_unique_id == "" ? var.vendor_service_account : """#,
            );
            if vars["vendor_service_account_unique_id"].is_empty() {
                vars["vendor_service_account"].to_string()
            } else {
                String::new()
            }
        }
        other => panic!("deploy_consistency does not know the expression `{other}`"),
    }
}

/// `veil serve` with an environment; whether /healthz answered, and its output.
fn serve_starts(env: &[(String, String)]) -> (bool, String) {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veil"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("VEIL_") || k.starts_with("GCE_") || k.starts_with("AWS_") {
            cmd.env_remove(k.as_ref());
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("veil serve");
    let until = Instant::now() + Duration::from_secs(30);
    let mut up = false;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            up = answer.starts_with("HTTP/1.1 200");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        up,
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The Cloud Run Terraform gives `veil serve` every value it requires: the
/// environment of `deploy/gcp/main.tf`, filled with sample variables,
/// starts it; every variable behind a value Veil requires is required by
/// Terraform (no default) or, for `client_id`, gates the service; and the
/// secret file paths are where the secret volumes are mounted.
#[test]
fn cloud_run_environment_starts_veil_serve() {
    let main = read("deploy/gcp/main.tf");
    let variables = tf_variables(&read("deploy/gcp/variables.tf"));
    assert!(variables.len() >= 10, "{:?}", variables.keys());

    // Variables whose values `veil serve` cannot start without.
    for v in [
        "connector",
        "tenant_id",
        "vendor_service_account",
        "region",
        "project_id",
    ] {
        assert!(
            !variables[v].contains("default"),
            "variable {v} feeds a value `veil serve` requires: it must have no default"
        );
    }
    let client_id = &variables["client_id"];
    assert!(client_id.contains("default     = \"\""), "{client_id}");
    assert!(
        main.contains(r#"deploy_service = var.client_id != """#)
            && main
                .matches("count    = local.deploy_service ? 1 : 0")
                .count()
                == 2,
        "the Cloud Run service and its invoker must exist only with a client_id"
    );
    assert!(
        client_id
            .to_ascii_lowercase()
            .contains("required for the cloud run service"),
        "client_id's description says it is required: {client_id}"
    );

    // The secret files are where the volumes put them.
    let env = cloud_run_env(&main);
    let env_map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (var, mount, item) in [
        ("VEIL_SALT_FILE", "/secrets/salt", "salt"),
        (
            "VEIL_ENCRYPTION_KEYS_FILE",
            "/secrets/encryption-keys",
            "encryption-keys",
        ),
    ] {
        assert_eq!(env_map[var], format!("\"{mount}/{item}\""), "{var}");
        assert!(
            main.contains(&format!("mount_path = \"{mount}\"")),
            "{mount}"
        );
        assert!(main.contains(&format!("path    = \"{item}\"")), "{item}");
    }

    let dir = tempfile::tempdir().unwrap();
    let salt = dir.path().join("salt");
    let keys = dir.path().join("keys");
    fs::write(&salt, "gcp-consistency-salt-Qx7Lm2Vr9Kp4Wz8Nc3Hb6Fd1").unwrap();
    fs::write(
        &keys,
        "k20261127000000:gcp-consistency-key-Ty5Rn8Gm2Xq6Vb9Lc4Jd7Hs0",
    )
    .unwrap();
    let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
    vars.insert("connector", "outlook-mail");
    vars.insert("region", "europe-west1");
    vars.insert("rules_variant", "default");
    vars.insert("tenant_id", TENANT);
    vars.insert("client_id", CLIENT);
    vars.insert(
        "vendor_service_account",
        "collector@vendor-project.iam.gserviceaccount.com",
    );
    vars.insert("vendor_service_account_unique_id", "112233445566778899001");
    vars.insert("upstream_timeout_seconds", "25");
    let build = |vars: &BTreeMap<&str, &str>| -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = env
            .iter()
            .map(|(k, expr)| (k.clone(), tf_value(expr, vars, &main)))
            .collect();
        for (k, v) in out.iter_mut() {
            if k == "VEIL_SALT_FILE" {
                *v = salt.display().to_string();
            }
            if k == "VEIL_ENCRYPTION_KEYS_FILE" {
                *v = keys.display().to_string();
            }
        }
        out
    };
    let env_ok = build(&vars);
    let (up, log) = serve_starts(&env_ok);
    assert!(
        up,
        "veil serve did not start with the Cloud Run environment {env_ok:?}:\n{log}"
    );

    // Admitted by email instead of sub: starts too.
    let mut by_email = vars.clone();
    by_email.insert("vendor_service_account_unique_id", "");
    let (up, log) = serve_starts(&build(&by_email));
    assert!(up, "by email:\n{log}");

    // Without the client id Veil exits at start: why the service waits for it.
    let mut no_client = vars.clone();
    no_client.insert("client_id", "");
    let (up, log) = serve_starts(&build(&no_client));
    assert!(!up && log.contains("VEIL_CLIENT_ID"), "{log}");
}
