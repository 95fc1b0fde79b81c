#!/usr/bin/env bash
# Checks the deployment artifacts under deploy/ (see deploy/README.md):
#
#   1. cfn-lint on the CloudFormation template;
#   2. checkov on the template, the Terraform and the Dockerfile: no failed
#      check (each suppression is inline, with its justification);
#   3. terraform fmt (no init: it would need the registry);
#   4. the shell scripts parse, the deployer policy is a policy document;
#   5. every file the Dockerfile COPYs exists (and is not excluded by its
#      .dockerignore);
#   6. the Lambda artifact builds (cargo lambda build --release, for the
#      host architecture) and target/lambda/veil/bootstrap is an executable
#      ELF file whose highest GLIBC_ symbol version is at most Lambda's
#      (provided.al2023 has glibc 2.34): built with the host's toolchain
#      (--compiler cargo) it links against the host's glibc, and a newer one
#      would make the function fail at start on Lambda. Invoking it is
#      tests/lambda.rs's and tests/deploy_rehearsal.rs's job.
#
# Run by scripts/test.sh after the cargo tests, with .tools/bin on PATH
# (cfn-lint, checkov and cargo-lambda, pinned in scripts/test-tools.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'check-deploy: %s\n' "$*"; }
die() {
    printf 'check-deploy: ERROR: %s\n' "$*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH: $2"
}

need cfn-lint "run scripts/install-test-tools.sh and put .tools/bin on PATH"
need checkov "run scripts/install-test-tools.sh and put .tools/bin on PATH"
need cargo-lambda "run scripts/install-test-tools.sh and put .tools/bin on PATH"
need objdump "install binutils (Debian: apt-get install binutils); it reads the artifact's glibc symbol versions"
need terraform "install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install); it is needed for terraform fmt"

say "cfn-lint deploy/aws/template.yaml"
cfn-lint deploy/aws/template.yaml

say "checkov (cloudformation, terraform, dockerfile)"
# --skip-download: offline, no platform call; the checks ship with checkov.
checkov -d deploy --framework cloudformation,terraform,dockerfile --compact --quiet --skip-download

say "terraform fmt -check -recursive deploy"
terraform fmt -check -recursive deploy ||
    die "Terraform files are not formatted: run terraform fmt -recursive deploy"

say "deploy/aws/deployer-policy.json is an IAM policy document"
need jq "install jq (Debian: apt-get install jq)"
jq -e '.Version == "2012-10-17" and (.Statement | length > 0) and all(.Statement[]; .Effect == "Allow" and .Sid != null)' \
    deploy/aws/deployer-policy.json >/dev/null ||
    die "deploy/aws/deployer-policy.json is not a policy document of Allow statements with a Sid each"

say "shell scripts parse"
for f in deploy/aws/*.sh scripts/check-deploy.sh; do
    bash -n "$f" || die "$f does not parse"
    [ -x "$f" ] || die "$f is not executable"
done

say "every file the Dockerfile copies exists"
dockerfile=deploy/gcp/Dockerfile
ignore="$dockerfile.dockerignore"
[ -f "$ignore" ] || die "$ignore is missing (without it the whole repository, target/ included, is sent to the builder)"
copies=0
while read -r instr rest; do
    [ "$instr" = COPY ] || continue
    # COPY [--flags] SRC... DEST; --from copies from another stage.
    case "$rest" in --from=*) continue ;; esac
    read -r -a words <<<"$rest"
    n=${#words[@]}
    for ((i = 0; i < n - 1; i++)); do
        src="${words[$i]}"
        case "$src" in --*) continue ;; esac
        [ -e "$src" ] || die "$dockerfile copies $src, which does not exist"
        # The .dockerignore excludes everything, then re-includes with !PATH.
        grep -qxF "!${src%/}" "$ignore" || grep -qxF "!${src%/}/" "$ignore" ||
            die "$dockerfile copies $src, but $ignore does not re-include it (!${src%/})"
        copies=$((copies + 1))
    done
done <"$dockerfile"
[ "$copies" -gt 0 ] || die "found no COPY in $dockerfile"
say "$copies sources present"

say "cargo lambda build --release --bin veil (host architecture)"
# --compiler cargo: the host's own toolchain; zig (cargo lambda's default)
# is only needed to cross-compile, e.g. --arm64 (deploy/README.md).
cargo lambda build --release --bin veil --compiler cargo
bootstrap=target/lambda/veil/bootstrap
[ -x "$bootstrap" ] || die "$bootstrap was not produced or is not executable"
[ "$(head -c 4 "$bootstrap" | od -An -c | tr -d ' ')" = '177ELF' ] ||
    die "$bootstrap is not an ELF executable"
say "$bootstrap: $(wc -c <"$bootstrap") bytes"

# Lambda's provided.al2023 runtime: glibc 2.34.
lambda_glibc=2.34
newest="$(objdump -T "$bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)"
[ -n "$newest" ] || die "found no GLIBC_ symbol version in $bootstrap (is it dynamically linked against glibc?)"
[ "$(printf '%s\n%s\n' "$newest" "$lambda_glibc" | sort -V | tail -n 1)" = "$lambda_glibc" ] ||
    die "$bootstrap needs GLIBC_$newest, newer than Lambda provided.al2023's $lambda_glibc: build on a machine with glibc <= $lambda_glibc or with zig (cargo lambda build --release --x86-64 --bin veil, without --compiler cargo)"
say "$bootstrap needs at most GLIBC_$newest (Lambda provided.al2023: $lambda_glibc)"

say "deployment checks passed"
