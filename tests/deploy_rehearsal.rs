//! The AWS runbook of `deploy/README.md`, rehearsed against emulators.
//!
//! Every `sh` block of the README's "AWS (Lambda)" part runs, in order, in
//! one `bash` (so the variables carry over, as for an administrator), with
//! the pinned AWS CLI (`scripts/test-tools.txt`) pointed at `moto_server`.
//! The blocks are read from the README at test time, so the documentation
//! cannot drift from what is tested. A block preceded by
//! `<!-- rehearsal: skip, REASON -->` is an alternative path (Cognito) and
//! is not run; the test counts those.
//!
//! What is not an AWS call, or not emulated by moto, is replaced by a
//! recorded stand-in (a script first on `PATH`), and the test fails when
//! the runbook runs a command it does not know (`command not found` or an
//! unexpected stand-in call):
//!
//! - `cargo lambda build` writes a placeholder executable (moto stores the
//!   code without running it; the function itself runs under `cargo lambda`
//!   below, built from the same sources);
//! - `terraform` and `az` (the Entra part) answer with fixed outputs;
//! - `aws iam enable-/get-outbound-web-identity-federation…` (not in moto)
//!   answer with the test STS issuer;
//! - `aws cloudformation deploy` creates the same stack from the same
//!   template and parameters with `create-stack` (moto's change sets leave
//!   a stack without outputs);
//! - `aws lambda invoke` with the doctor event (moto cannot run a function)
//!   runs `veil doctor --json` with exactly the function's environment as
//!   the stack configured it, against moto's SSM and the test STS
//!   (`tests/support/sts.rs`); Entra ID is not emulated here (that is
//!   `tests/doctor.rs`'s job), so the doctor must pass up to the host token.
//!
//! moto 5.2.5 has no CloudFormation support for `AWS::Lambda::Url`, so the
//! template the runbook deploys is the shipped one with that one resource
//! (and its output) removed; the test checks that exactly that was removed
//! and what the removed resource says.
//!
//! Then: the stack's resources, role and key policies, Lambda permissions,
//! environment and outputs; the parameters `create-secrets.sh` wrote (and
//! that it resumes and refuses as documented); that every AWS action the
//! runbook needs is in `deploy/aws/deployer-policy.json`; and finally the
//! function itself, under `cargo lambda watch` with the environment the
//! stack gave it, reaching "ready" with its secrets from moto's SSM.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{json, Value};
use support::moto::{self, Moto};
use support::sts::{self, StsServer};

const CONNECTOR: &str = "outlook-mail";
const STACK: &str = "veil-outlook-mail";
/// What the `terraform output` stand-in answers (the Entra part is not emulated).
const CLIENT_ID: &str = "1b3c5d7e-9f01-4a23-b456-789abcdef012";
const SP_OBJECT_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";
/// The README's example values, checked where they land.
const TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
const VENDOR_ROLE_ARN: &str = "arn:aws:iam::444455556666:role/vendor-collector";
const BUCKET: &str = "acme-veil-code";

const AWS_MISSING: &str = "the AWS CLI (`aws`) is not on PATH: run `bash scripts/install-test-tools.sh` \
     and put .tools/bin on PATH (scripts/test.sh does both); it is pinned in scripts/test-tools.txt";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The absolute path of a command on PATH; fails loudly when missing.
fn which(cmd: &str, help: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{help}"))
}

/// The `sh` blocks of the README's AWS part, in order; and how many were
/// skipped as alternatives.
fn runbook_blocks() -> (Vec<String>, usize) {
    let readme = fs::read_to_string(repo().join("deploy/README.md")).expect("deploy/README.md");
    let start = readme
        .find("\n## AWS (Lambda)")
        .expect("an `## AWS (Lambda)` section");
    let end = readme[start..]
        .find("\n## Google Cloud")
        .map(|e| start + e)
        .expect("a `## Google Cloud` section after the AWS one");
    let mut blocks = Vec::new();
    let mut skipped = 0;
    let mut skip_next = false;
    let mut current: Option<String> = None;
    for line in readme[start..end].lines() {
        match current.as_mut() {
            None if line.starts_with("<!-- rehearsal: skip") => skip_next = true,
            None if line == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => {
                let block = current.take().unwrap_or_default();
                if skip_next {
                    skipped += 1;
                } else {
                    blocks.push(block);
                }
                skip_next = false;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    assert!(
        current.is_none(),
        "an unterminated ``` block in the AWS part"
    );
    (blocks, skipped)
}

/// The shipped template without `AWS::Lambda::Url` (unsupported by moto's
/// CloudFormation); asserts that only that resource and its output go.
fn template_for_moto() -> String {
    let shipped = fs::read_to_string(repo().join("deploy/aws/template.yaml")).expect("template");
    let resource =
        Regex::new(r"\n  FunctionUrl:\n    Type: AWS::Lambda::Url\n((?:      .*\n|    .*\n)*)")
            .unwrap();
    let caps = resource
        .captures(&shipped)
        .expect("the FunctionUrl resource");
    let props = &caps[1];
    assert!(
        props.contains("AuthType: AWS_IAM"),
        "the Function URL: {props}"
    );
    assert!(
        props.contains("TargetFunctionArn: !GetAtt Function.Arn"),
        "{props}"
    );
    let t = resource.replace(&shipped, "\n").into_owned();
    let output = Regex::new(
        r"\n  FunctionUrl:\n    Description: .*\n    Value: !GetAtt FunctionUrl.FunctionUrl\n",
    )
    .unwrap();
    assert!(output.is_match(&t), "the FunctionUrl output");
    let t = output.replace(&t, "\n").into_owned();
    assert!(!t.contains("FunctionUrl.") && !t.contains("AWS::Lambda::Url"));
    t
}

fn write_exe(path: &Path, body: &str) {
    fs::write(path, body).expect("write stand-in");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The stand-ins, first on PATH. Each logs `stub <what>` to $REHEARSAL_LOG.
fn write_stand_ins(bin: &Path, veil: &Path) {
    write_exe(
        &bin.join("aws"),
        r#"#!/usr/bin/env bash
set -euo pipefail
printf 'aws %s\n' "$*" >>"$REHEARSAL_LOG"
case "${1:-} ${2:-}" in
"iam enable-outbound-web-identity-federation")
    printf 'stub aws iam enable-outbound-web-identity-federation\n' >>"$REHEARSAL_LOG"
    exit 0 ;;
"iam get-outbound-web-identity-federation-info")
    printf 'stub aws iam get-outbound-web-identity-federation-info\n' >>"$REHEARSAL_LOG"
    printf '%s\n' "$REHEARSAL_ISSUER"
    exit 0 ;;
"cloudformation deploy")
    # moto's change sets leave the stack without outputs: the same stack,
    # template and parameters, created directly.
    printf 'stub aws cloudformation deploy\n' >>"$REHEARSAL_LOG"
    shift 2
    stack="" template="" caps=() params=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --stack-name) stack="$2"; shift 2 ;;
        --template-file) template="$2"; shift 2 ;;
        --capabilities) caps+=("$2"); shift 2 ;;
        --parameter-overrides)
            shift
            while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do
                case "$1" in *,*) echo "rehearsal: a comma in parameter $1" >&2; exit 97 ;; esac
                params+=("ParameterKey=${1%%=*},ParameterValue=${1#*=}")
                shift
            done ;;
        *) echo "rehearsal: unexpected option $1 of aws cloudformation deploy" >&2; exit 97 ;;
        esac
    done
    "$REHEARSAL_REAL_AWS" cloudformation create-stack --stack-name "$stack" \
        --template-body "file://$template" --capabilities "${caps[@]}" --parameters "${params[@]}" >/dev/null
    "$REHEARSAL_REAL_AWS" cloudformation wait stack-create-complete --stack-name "$stack"
    exit 0 ;;
"lambda invoke")
    printf 'stub aws lambda invoke\n' >>"$REHEARSAL_LOG"
    exec "$REHEARSAL_BIN/doctor-invoke" "$@" ;;
esac
exec "$REHEARSAL_REAL_AWS" "$@"
"#,
    );
    // `aws lambda invoke --function-name F --payload fileb://EVENT OUT`:
    // `veil doctor --json` with the function's environment.
    write_exe(
        &bin.join("doctor-invoke"),
        r#"#!/usr/bin/env bash
set -euo pipefail
shift 2
fn="" payload="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --function-name) fn="$2"; shift 2 ;;
    --payload) payload="$2"; shift 2 ;;
    --*) echo "rehearsal: unexpected option $1 of aws lambda invoke" >&2; exit 97 ;;
    *) out="$1"; shift ;;
    esac
done
case "$payload" in fileb://*) payload="${payload#fileb://}" ;; *) echo "rehearsal: the payload must be fileb://FILE" >&2; exit 97 ;; esac
jq -e '.veil == "doctor"' "$payload" >/dev/null || { echo "rehearsal: not a doctor event" >&2; exit 97; }
mailbox="$(jq -r '.mailbox // empty' "$payload")"
vars=()
while IFS= read -r kv; do vars+=("$kv"); done < <(
    "$REHEARSAL_REAL_AWS" lambda get-function-configuration --function-name "$fn" \
        --query Environment.Variables --output json | jq -r 'to_entries[] | "\(.key)=\(.value)"')
while IFS= read -r kv; do vars+=("$kv"); done <"$REHEARSAL_HOST_ENV"
args=(doctor --json)
[ -n "$mailbox" ] && args+=(--mailbox "$mailbox")
env -i PATH=/usr/bin:/bin "${vars[@]}" "$REHEARSAL_VEIL" "${args[@]}" >"$out" || true
printf '{"StatusCode": 200, "ExecutedVersion": "$LATEST"}\n'
"#,
    );
    write_exe(
        &bin.join("cargo"),
        r#"#!/usr/bin/env bash
set -euo pipefail
printf 'stub cargo %s\n' "$*" >>"$REHEARSAL_LOG"
[ "${1:-} ${2:-}" = "lambda build" ] || { echo "rehearsal: unexpected cargo $*" >&2; exit 97; }
mkdir -p target/lambda/veil
cp /bin/true target/lambda/veil/bootstrap
"#,
    );
    write_exe(
        &bin.join("terraform"),
        r#"#!/usr/bin/env bash
set -euo pipefail
printf 'stub terraform %s\n' "$*" >>"$REHEARSAL_LOG"
case "$*" in
"-chdir=deploy/entra init" | "-chdir=deploy/entra apply "*) ;;
"-chdir=deploy/entra output -json client_ids")
    printf '{"%s":"%s"}\n' "$REHEARSAL_CONNECTOR" "$REHEARSAL_CLIENT_ID" ;;
"-chdir=deploy/entra output -json service_principal_object_ids")
    printf '{"%s":"%s"}\n' "$REHEARSAL_CONNECTOR" "$REHEARSAL_SP_OBJECT_ID" ;;
*) echo "rehearsal: unexpected terraform $*" >&2; exit 97 ;;
esac
"#,
    );
    write_exe(
        &bin.join("az"),
        "#!/usr/bin/env bash\nprintf 'stub az %s\\n' \"$*\" >>\"$REHEARSAL_LOG\"\n",
    );
    std::os::unix::fs::symlink(veil, bin.join("veil")).expect("veil on PATH");
}

struct Rehearsal {
    moto: Moto,
    _sts: StsServer,
    work: PathBuf,
    log: PathBuf,
    real_aws: PathBuf,
    host_env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Rehearsal {
    /// The AWS CLI against moto, outside the runbook.
    fn aws(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.real_aws);
        cmd.args(args).current_dir(&self.work);
        clean_env(&mut cmd);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        cmd.env("AWS_DEFAULT_REGION", moto::REGION);
        cmd.output().expect("run aws")
    }

    fn aws_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.aws(&all);
        assert!(
            out.status.success(),
            "aws {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "aws {}: not JSON ({e}): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn create_secrets(&self) -> Output {
        let mut cmd = Command::new(self.work.join("deploy/aws/create-secrets.sh"));
        cmd.args(["--stack", STACK]).current_dir(&self.work);
        clean_env(&mut cmd);
        cmd.env("PATH", path_with(&[self.real_aws.parent().unwrap()]));
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        cmd.env("AWS_DEFAULT_REGION", moto::REGION);
        cmd.output().expect("run create-secrets.sh")
    }

    fn parameter(&self, name: &str) -> Value {
        self.aws_json(&["ssm", "get-parameter", "--name", name, "--with-decryption"])["Parameter"]
            .clone()
    }
}

/// No AWS, Veil or proxy settings of the test process reach what runs.
fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let proxy = k.eq_ignore_ascii_case("http_proxy")
            || k.eq_ignore_ascii_case("https_proxy")
            || k.eq_ignore_ascii_case("all_proxy");
        if k.starts_with("AWS_") || k.starts_with("VEIL_") || proxy {
            cmd.env_remove(k.as_ref());
        }
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost");
}

fn path_with(first: &[&Path]) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = first.iter().map(|p| p.to_path_buf()).collect();
    dirs.extend(std::env::split_paths(&rest));
    std::env::join_paths(dirs).expect("PATH")
}

/// Runs the README's AWS blocks against moto and returns the rehearsal.
async fn rehearse() -> Rehearsal {
    let real_aws = which("aws", AWS_MISSING);
    for (cmd, why) in [
        (
            "jq",
            "jq is not on PATH (Debian: apt-get install jq); the runbook uses it",
        ),
        (
            "zip",
            "zip is not on PATH (Debian: apt-get install zip); the runbook uses it",
        ),
        (
            "openssl",
            "openssl is not on PATH; create-secrets.sh uses it",
        ),
    ] {
        which(cmd, why);
    }
    let moto = Moto::start().await;
    let sts = StsServer::start(moto::ACCESS_KEY_ID, moto::SECRET_ACCESS_KEY, moto::REGION).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("repo");
    let bin = tmp.path().join("bin");
    let log = tmp.path().join("rehearsal.log");
    fs::create_dir_all(work.join("deploy/aws")).unwrap();
    fs::create_dir_all(&bin).unwrap();
    for f in ["create-secrets.sh", "deployer-policy.json"] {
        fs::copy(
            repo().join("deploy/aws").join(f),
            work.join("deploy/aws").join(f),
        )
        .unwrap();
    }
    fs::write(work.join("deploy/aws/template.yaml"), template_for_moto()).unwrap();
    let veil = PathBuf::from(env!("CARGO_BIN_EXE_veil"));
    write_stand_ins(&bin, &veil);

    // Where the function's own calls go in the rehearsal: SSM to moto, STS
    // to the test STS, Entra nowhere (a closed port: not emulated here).
    let closed = support::free_port();
    let mut host_env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    host_env.push(("AWS_ENDPOINT_URL_STS".into(), sts.url()));
    host_env.push((
        "VEIL_ENTRA_AUTHORITY".into(),
        format!("http://127.0.0.1:{closed}"),
    ));
    let host_env_file = tmp.path().join("function-host.env");
    fs::write(
        &host_env_file,
        host_env
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>(),
    )
    .unwrap();

    let (blocks, skipped) = runbook_blocks();
    assert!(
        blocks.len() >= 9,
        "too few runbook blocks found: {blocks:#?}"
    );
    assert_eq!(skipped, 1, "only the Cognito alternative is skipped");
    let script = format!(
        "set -euo pipefail\n{}",
        blocks
            .iter()
            .enumerate()
            .map(|(i, b)| format!("printf 'block {i}\\n' >>\"$REHEARSAL_LOG\"\n{b}"))
            .collect::<String>()
    );
    fs::write(tmp.path().join("runbook.sh"), &script).unwrap();

    let mut cmd = Command::new("bash");
    cmd.arg(tmp.path().join("runbook.sh")).current_dir(&work);
    clean_env(&mut cmd);
    cmd.env("PATH", path_with(&[&bin]))
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", moto::SESSION_TOKEN)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("REHEARSAL_LOG", &log)
        .env("REHEARSAL_BIN", &bin)
        .env("REHEARSAL_REAL_AWS", &real_aws)
        .env("REHEARSAL_VEIL", &veil)
        .env("REHEARSAL_ISSUER", sts::ISSUER)
        .env("REHEARSAL_HOST_ENV", &host_env_file)
        .env("REHEARSAL_CONNECTOR", CONNECTOR)
        .env("REHEARSAL_CLIENT_ID", CLIENT_ID)
        .env("REHEARSAL_SP_OBJECT_ID", SP_OBJECT_ID);
    let out = cmd.output().expect("run the runbook");
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "the README's AWS runbook failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}\n--- calls ---\n{log_text}\n--- script ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(
        log_text.contains(&format!("block {}\n", blocks.len() - 1)),
        "not every block ran:\n{log_text}"
    );
    Rehearsal {
        moto,
        _sts: sts,
        work,
        log,
        real_aws,
        host_env,
        _tmp: tmp,
    }
}

/// A policy document as the CLI prints it: an object, or a string — JSON,
/// or, for inline policies moto's CloudFormation created, a Python literal
/// (single quotes, `None`), which holds no quote characters of its own here.
fn json_doc(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| {
            assert!(!s.contains('"'), "an unexpected policy document: {s}");
            let j = s
                .replace('\'', "\"")
                .replace("None", "null")
                .replace("True", "true")
                .replace("False", "false");
            serde_json::from_str(&j)
                .unwrap_or_else(|e| panic!("policy document is not JSON ({e}): {s}"))
        }),
        v => v.clone(),
    }
}

/// The IAM actions behind the runbook's AWS CLI calls (`aws SERVICE OP …`).
fn cli_actions(log: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in log.lines() {
        let Some(call) = line.strip_prefix("aws ") else {
            continue;
        };
        let mut words = call.split_whitespace();
        let (Some(service), Some(op)) = (words.next(), words.next()) else {
            continue;
        };
        let camel: String = op
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let actions: Vec<String> = match (service, op) {
            // The account administrator's step, not the deployer's.
            ("iam", "create-policy") => vec![],
            ("s3", "cp") => vec!["s3:PutObject".into()],
            ("s3api", "head-object") => vec!["s3:GetObject".into()],
            ("s3api", "put-public-access-block") => vec!["s3:PutBucketPublicAccessBlock".into()],
            ("s3api", _) => vec![format!("s3:{camel}")],
            ("cloudformation", "deploy") => [
                "CreateChangeSet",
                "DescribeChangeSet",
                "ExecuteChangeSet",
                "DescribeStacks",
                "DescribeStackEvents",
                "GetTemplateSummary",
            ]
            .iter()
            .map(|a| format!("cloudformation:{a}"))
            .collect(),
            ("lambda", "invoke") => vec!["lambda:InvokeFunction".into()],
            (s, _) => vec![format!("{s}:{camel}")],
        };
        out.extend(actions);
    }
    out
}

/// The IAM actions CloudFormation performs with the deployer's credentials
/// to create the stack's resources.
fn resource_actions(types: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in types {
        let actions: &[&str] = match t.as_str() {
            "AWS::KMS::Key" => &[
                "kms:CreateKey",
                "kms:PutKeyPolicy",
                "kms:EnableKeyRotation",
                "kms:DescribeKey",
                "kms:TagResource",
            ],
            "AWS::KMS::Alias" => &["kms:CreateAlias"],
            "AWS::Logs::LogGroup" => &[
                "logs:CreateLogGroup",
                "logs:PutRetentionPolicy",
                "logs:AssociateKmsKey",
                "logs:DescribeLogGroups",
            ],
            "AWS::IAM::Role" => &[
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:GetRole",
                "iam:PassRole",
            ],
            "AWS::Lambda::Function" => &[
                "lambda:CreateFunction",
                "lambda:GetFunction",
                "lambda:PutFunctionConcurrency",
                "s3:GetObject",
                "s3:GetObjectVersion",
            ],
            "AWS::Lambda::Url" => &["lambda:CreateFunctionUrlConfig", "lambda:GetFunctionUrlConfig"],
            "AWS::Lambda::Permission" => &["lambda:AddPermission", "lambda:GetPolicy"],
            "AWS::Cognito::IdentityPool" => &["cognito-identity:CreateIdentityPool"],
            other => panic!("no deployer actions known for {other}: add them here and to deploy/aws/deployer-policy.json"),
        };
        out.extend(actions.iter().map(|a| a.to_string()));
    }
    out
}

fn policy_allows(policy: &Value, action: &str) -> bool {
    policy["Statement"].as_array().unwrap().iter().any(|s| {
        s["Effect"] == "Allow"
            && match &s["Action"] {
                Value::String(a) => a == action,
                Value::Array(a) => a.iter().any(|x| x == action),
                _ => false,
            }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_runbook_deploys_a_working_stack() {
    let r = rehearse().await;
    let log = fs::read_to_string(&r.log).unwrap();

    // Exactly the documented stand-ins ran, nothing else unknown.
    let stubs: BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.strip_prefix("stub "))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let expected: BTreeSet<String> = [
        "aws cloudformation",
        "aws iam",
        "aws lambda",
        "cargo lambda",
        "terraform -chdir=deploy/entra",
        "az login",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(stubs, expected, "the stand-ins used:\n{log}");

    // The stack.
    let stack =
        &r.aws_json(&["cloudformation", "describe-stacks", "--stack-name", STACK])["Stacks"][0];
    assert_eq!(stack["StackStatus"], "CREATE_COMPLETE", "{stack:#}");
    let outputs: std::collections::BTreeMap<String, String> = stack["Outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["OutputKey"].as_str().unwrap().to_string(),
                o["OutputValue"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let role_arn = format!("arn:aws:iam::{}:role/{STACK}-role", moto::ACCOUNT);
    assert_eq!(outputs["RoleArn"], role_arn);
    assert_eq!(outputs["FunctionName"], STACK);
    assert_eq!(outputs["LogGroupName"], format!("/aws/lambda/{STACK}"));
    assert_eq!(outputs["SaltParameterName"], "/veil/salt");
    assert_eq!(
        outputs["EncryptionKeysParameterName"],
        "/veil/encryption-keys"
    );
    let key_arn = outputs["KmsKeyArn"].clone();
    assert!(
        key_arn.starts_with(&format!(
            "arn:aws:kms:{}:{}:key/",
            moto::REGION,
            moto::ACCOUNT
        )),
        "{key_arn}"
    );
    assert!(outputs.contains_key("OutboundFederationIssuerCommand"));
    assert!(!outputs.contains_key("CognitoIdentityPoolId"));

    let resources = r.aws_json(&[
        "cloudformation",
        "list-stack-resources",
        "--stack-name",
        STACK,
    ]);
    let mut types = BTreeSet::new();
    let mut logical = BTreeSet::new();
    for res in resources["StackResourceSummaries"].as_array().unwrap() {
        let id = res["LogicalResourceId"].as_str().unwrap_or_default();
        if id.is_empty() {
            continue; // moto lists the resources a false condition left out, nameless
        }
        assert_eq!(res["ResourceStatus"], "CREATE_COMPLETE", "{res}");
        logical.insert(id.to_string());
        types.insert(res["ResourceType"].as_str().unwrap().to_string());
    }
    let expected: BTreeSet<String> = [
        "SecretsKey",
        "SecretsKeyAlias",
        "LogGroup",
        "Role",
        "Function",
        "InvokeUrlPermission",
        "InvokeThroughUrlPermission",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        logical, expected,
        "the stack's resources (aws-sts, one caller)"
    );

    // The execution role: trusted by Lambda only, exactly Veil's actions.
    let role = &r.aws_json(&["iam", "get-role", "--role-name", &format!("{STACK}-role")])["Role"];
    let trust = json_doc(&role["AssumeRolePolicyDocument"]).to_string();
    assert!(
        trust.contains("lambda.amazonaws.com") && !trust.contains("\"AWS\""),
        "{trust}"
    );
    let policy = json_doc(
        &r.aws_json(&[
            "iam",
            "get-role-policy",
            "--role-name",
            &format!("{STACK}-role"),
            "--policy-name",
            "veil",
        ])["PolicyDocument"],
    );
    let policy = &policy;
    let mut actions = BTreeSet::new();
    for s in policy["Statement"].as_array().unwrap() {
        if s.is_null() {
            continue; // moto keeps `!Ref AWS::NoValue` list items as null
        }
        match &s["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(a) => actions.extend(a.iter().map(|x| x.as_str().unwrap().to_string())),
            other => panic!("Action {other}"),
        }
        match s["Sid"].as_str().unwrap() {
            "ReadSecrets" => assert_eq!(
                s["Resource"],
                json!([
                    format!(
                        "arn:aws:ssm:{}:{}:parameter/veil/salt",
                        moto::REGION,
                        moto::ACCOUNT
                    ),
                    format!(
                        "arn:aws:ssm:{}:{}:parameter/veil/encryption-keys",
                        moto::REGION,
                        moto::ACCOUNT
                    ),
                ])
            ),
            "DecryptSecretsThroughSsm" => {
                assert_eq!(s["Resource"], json!(key_arn));
                assert_eq!(
                    s["Condition"]["StringEquals"]["kms:ViaService"],
                    format!("ssm.{}.amazonaws.com", moto::REGION)
                );
            }
            "HostTokenForEntra" => {
                let c = &s["Condition"];
                assert_eq!(c["StringEquals"]["sts:SigningAlgorithm"], "RS256");
                assert_eq!(
                    c["ForAllValues:StringEquals"]["sts:IdentityTokenAudience"],
                    "api://AzureADTokenExchange"
                );
                assert_eq!(
                    c["NumericLessThanEquals"]["sts:DurationSeconds"].to_string(),
                    "300"
                );
            }
            "OwnLogGroupOnly" => assert_eq!(
                s["Resource"],
                format!(
                    "arn:aws:logs:{}:{}:log-group:/aws/lambda/{STACK}",
                    moto::REGION,
                    moto::ACCOUNT
                )
            ),
            other => panic!("unexpected statement {other}"),
        }
    }
    let expected: BTreeSet<String> = [
        "ssm:GetParameter",
        "kms:Decrypt",
        "sts:GetWebIdentityToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(actions, expected, "the execution role's actions");

    // The function: the code object uploaded, the environment Veil needs.
    let f = r.aws_json(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        STACK,
    ]);
    assert_eq!(f["Runtime"], "provided.al2023");
    assert_eq!(f["Handler"], "bootstrap");
    assert_eq!(f["Role"], json!(role_arn));
    assert_eq!(f["Timeout"], 60);
    assert_eq!(f["MemorySize"], 512);
    let env = &f["Environment"]["Variables"];
    for (k, v) in [
        ("VEIL_CONNECTOR", CONNECTOR),
        ("VEIL_TENANT_ID", TENANT_ID),
        ("VEIL_CLIENT_ID", CLIENT_ID),
        ("VEIL_TOKEN_PROVIDER", "aws-sts"),
        ("VEIL_SALT_SSM_PARAMETER", "/veil/salt"),
        (
            "VEIL_ENCRYPTION_KEYS_SSM_PARAMETER",
            "/veil/encryption-keys",
        ),
        ("VEIL_AWS_STS_AUDIENCE", "api://AzureADTokenExchange"),
        ("VEIL_AWS_STS_SIGNING_ALGORITHM", "RS256"),
    ] {
        assert_eq!(env[k], v, "{k} in {env:#}");
    }
    for secret in ["VEIL_SALT", "VEIL_ENCRYPTION_KEYS", "VEIL_UPSTREAM_TOKEN"] {
        assert!(env.get(secret).is_none(), "{secret} in the environment");
    }
    let code = r.aws_json(&["lambda", "get-function", "--function-name", STACK]);
    assert!(code["Code"].is_object(), "{code}");
    let objects = r.aws_json(&["s3api", "list-object-versions", "--bucket", BUCKET]);
    assert_eq!(objects["Versions"][0]["Key"], "veil-0.1.0.zip", "{objects}");
    let pab = r.aws_json(&["s3api", "get-public-access-block", "--bucket", BUCKET]);
    assert_eq!(
        pab["PublicAccessBlockConfiguration"],
        json!({"BlockPublicAcls": true, "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true})
    );

    // Only the vendor, only through the Function URL with IAM auth.
    let p = r.aws_json(&["lambda", "get-policy", "--function-name", STACK]);
    let doc: Value = serde_json::from_str(p["Policy"].as_str().unwrap()).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{doc:#}");
    for s in statements {
        assert!(s["Principal"].to_string().contains(VENDOR_ROLE_ARN), "{s}");
        match s["Action"].as_str().unwrap() {
            "lambda:InvokeFunctionUrl" => assert_eq!(s["FunctionUrlAuthType"], "AWS_IAM", "{s}"),
            "lambda:InvokeFunction" => assert_eq!(s["InvokedViaFunctionUrl"], true, "{s}"),
            other => panic!("unexpected {other}"),
        }
    }

    // The key: rotating, decryption for Veil's role only, no kms:Create*.
    let rotation = r.aws_json(&["kms", "get-key-rotation-status", "--key-id", &key_arn]);
    assert_eq!(rotation["KeyRotationEnabled"], true);
    let kp = r.aws_json(&[
        "kms",
        "get-key-policy",
        "--key-id",
        &key_arn,
        "--policy-name",
        "default",
    ]);
    let kp = json_doc(&kp["Policy"]);
    let kp_text = kp.to_string();
    assert!(
        !kp_text.contains("kms:Create*") && !kp_text.contains("kms:CreateGrant"),
        "{kp:#}"
    );
    let decrypt = kp["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "DecryptThroughSsmForVeil")
        .expect("DecryptThroughSsmForVeil");
    assert!(
        decrypt["Condition"].to_string().contains(&role_arn),
        "{decrypt}"
    );
    let groups = r.aws_json(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "/aws/lambda/veil-",
    ]);
    let group = &groups["logGroups"][0];
    assert_eq!(group["logGroupName"], format!("/aws/lambda/{STACK}"));
    assert_eq!(group["retentionInDays"], 90);
    // moto 5.2.5's CloudFormation drops a log group's KmsKeyId: the
    // template's own value is checked instead.
    assert!(
        group["kmsKeyId"] == json!(key_arn) || group.get("kmsKeyId").is_none(),
        "{group}"
    );
    assert!(fs::read_to_string(repo().join("deploy/aws/template.yaml"))
        .unwrap()
        .contains("KmsKeyId: !If [CreateKey, !GetAtt SecretsKey.Arn, !Ref AWS::NoValue]"));

    // The secrets: SecureString under the stack's key, strong, and rotated
    // once by the runbook (two keys, newest first).
    let salt = r.parameter("/veil/salt");
    assert_eq!(salt["Type"], "SecureString");
    let salt_value = salt["Value"].as_str().unwrap().to_string();
    assert_eq!(salt_value.len(), 44, "32 random bytes in base64");
    let keys = r.parameter("/veil/encryption-keys");
    let keys_value = keys["Value"].as_str().unwrap().to_string();
    let key_list =
        Regex::new(r"^k[0-9]{14}:[A-Za-z0-9+/]{43}=,k[0-9]{14}:[A-Za-z0-9+/]{43}=$").unwrap();
    assert!(
        key_list.is_match(&keys_value),
        "two keys after one rotation"
    );
    let ids: Vec<&str> = keys_value.split(',').map(|k| &k[..15]).collect();
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let meta = r.aws_json(&["ssm", "describe-parameters"]);
    for p in meta["Parameters"].as_array().unwrap() {
        assert_eq!(p["KeyId"], json!(key_arn), "{p}");
    }

    // create-secrets.sh refuses to replace, and resumes a half-done run.
    let again = r.create_secrets();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to create"));
    let out = r.aws(&["ssm", "delete-parameter", "--name", "/veil/encryption-keys"]);
    assert!(out.status.success());
    let resumed = r.create_secrets();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let said = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        said.contains("/veil/salt exists; kept") && said.contains("created /veil/encryption-keys"),
        "{said}"
    );
    assert_eq!(
        r.parameter("/veil/salt")["Value"],
        json!(salt_value),
        "the salt was kept"
    );
    for out in [&again, &resumed] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(&salt_value), "a secret was printed");
    }

    // veil setup ran for real: scoping with the service principal's object id, before consent.
    let setup = fs::read_to_string(r.work.join("setup.md")).expect("setup.md");
    let scoping = setup
        .find("New-ManagementRoleAssignment -App ".to_owned().as_str())
        .expect("scoping");
    assert!(setup.contains(&format!("New-ManagementRoleAssignment -App {SP_OBJECT_ID}")));
    let consent = setup
        .find(&format!(
            "https://login.microsoftonline.com/{TENANT_ID}/adminconsent?client_id={CLIENT_ID}"
        ))
        .expect("consent URL");
    assert!(scoping < consent, "scoping comes before consent");
    assert!(setup.contains(&format!("| subject | {role_arn} |")));
    assert!(setup.contains(&format!("| issuer | {} |", sts::ISSUER)));

    // The doctor event, run with the function's own environment.
    let doctor: Value =
        serde_json::from_slice(&fs::read(r.work.join("doctor.json")).expect("doctor.json"))
            .expect("doctor.json is the checklist");
    let status = |step: &str| -> Vec<String> {
        doctor["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["step"] == step)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(status("rules"), ["pass"], "{doctor:#}");
    assert_eq!(status("secrets"), ["pass"], "secrets from SSM: {doctor:#}");
    assert_eq!(status("host identity"), ["pass"], "{doctor:#}");
    let host = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "host identity")
        .unwrap()["details"]
        .to_string();
    assert!(host.contains(&format!("iss: {}", sts::ISSUER)), "{host}");
    assert!(host.contains("aud: api://AzureADTokenExchange"), "{host}");
    // Entra ID is not emulated here (tests/doctor.rs covers it).
    assert_eq!(status("entra exchange"), ["fail"], "{doctor:#}");
    assert!(!doctor.to_string().contains(&salt_value));

    // Every AWS action of the runbook is in the deployer policy.
    let deployer: Value = serde_json::from_str(
        &fs::read_to_string(repo().join("deploy/aws/deployer-policy.json")).unwrap(),
    )
    .unwrap();
    let mut needed = cli_actions(&log);
    needed.extend(resource_actions(&types));
    needed.extend(resource_actions(&["AWS::Lambda::Url".to_string()].into()));
    assert!(needed.contains("kms:PutKeyPolicy") && needed.contains("iam:PassRole"));
    let missing: Vec<&String> = needed
        .iter()
        .filter(|a| !policy_allows(&deployer, a))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/aws/deployer-policy.json lacks what the runbook needs: {missing:?}"
    );

    // The function itself, with the stack's environment, under cargo lambda.
    lambda_reaches_ready(&r, env);
}

/// `cargo lambda watch` runs the `veil` bin as the Lambda function with the
/// environment the stack configured (plus the emulators' endpoints); it
/// must read its secrets from moto's SSM, log "ready" and answer /healthz.
fn lambda_reaches_ready(r: &Rehearsal, stack_env: &Value) {
    let out = Command::new("cargo").args(["lambda", "--version"]).output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "`cargo lambda` is not on PATH: run `bash scripts/install-test-tools.sh` and put .tools/bin on PATH"
    );
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("watch.log");
    let log_file = fs::File::create(&log_path).unwrap();
    let port = support::free_port();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(repo())
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .args(["--ignore-changes", "--locked", "--bin", "veil"]);
    let mut env: Vec<(String, String)> = stack_env
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    env.extend(r.host_env.iter().cloned());
    env.push(("RUST_LOG".into(), "info".into()));
    for (k, v) in &env {
        assert!(!v.contains(','), "--env-var splits on commas: {k}");
        cmd.args(["--env-var", &format!("{k}={v}")]);
    }
    clean_env(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .process_group(0);
    let child = cmd.spawn().expect("cargo lambda watch");
    let watch = Watch(child);
    let event: Value = {
        let mut e: Value =
            serde_json::from_str(include_str!("fixtures/lambda/function-url-get.json")).unwrap();
        e["rawPath"] = json!("/healthz");
        e["rawQueryString"] = json!("");
        if let Some(o) = e.as_object_mut() {
            o.remove("queryStringParameters");
        }
        e["requestContext"]["http"]["method"] = json!("GET");
        e["requestContext"]["http"]["path"] = json!("/healthz");
        e["requestContext"]["authorizer"]["iam"]["userArn"] =
            json!("arn:aws:sts::444455556666:assumed-role/vendor-collector/session");
        e
    };
    let event_file = dir.path().join("event.json");
    fs::write(&event_file, event.to_string()).unwrap();
    let started = Instant::now();
    let answer = loop {
        let out = Command::new("cargo")
            .current_dir(repo())
            .args(["lambda", "invoke", "veil", "--invoke-address", "127.0.0.1"])
            .args([
                "--invoke-port",
                &port.to_string(),
                "--output-format",
                "json",
            ])
            .arg("--data-file")
            .arg(&event_file)
            .output()
            .expect("cargo lambda invoke");
        if out.status.success() {
            if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                break v;
            }
        }
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the function did not answer within 180 s: {}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(answer["statusCode"], 200, "{answer}\n{log}");
    let raw = answer["body"].as_str().unwrap_or_default();
    let raw = if answer["isBase64Encoded"] == true {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .expect("isBase64Encoded, but not base64")
    } else {
        raw.as_bytes().to_vec()
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    assert_eq!(body["status"], "ok", "{answer}");
    assert_eq!(body["connector"], CONNECTOR, "{answer}");
    let ready = BufReader::new(log.as_bytes())
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("ready") && l.contains(CONNECTOR));
    assert!(
        ready,
        "no `ready` line for {CONNECTOR} in the function's log:\n{log}"
    );
    assert!(!log.contains("configuration error"), "{log}");
    drop(watch);
}

/// Ends `cargo lambda watch` with its process group.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}
