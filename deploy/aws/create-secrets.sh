#!/usr/bin/env bash
# Creates Veil's two secrets as SSM SecureString parameters, encrypted with
# the customer managed key of the CloudFormation stack (deploy/aws/template.yaml).
# CloudFormation cannot create SecureString parameters, hence this script.
#
#   deploy/aws/create-secrets.sh --stack STACK [--region REGION]
#       Creates the salt and the first encryption key, each only if it does
#       not exist yet: a new salt changes every pseudonym, and a lost
#       encryption key makes every p~ token already handed out unreadable.
#       So a run that stopped half-way (salt created, keys not) can simply
#       be run again: it creates what is missing and touches nothing else.
#
#   deploy/aws/create-secrets.sh --stack STACK --rotate-keys [--region REGION]
#       Prepends a new encryption key (id kYYYYMMDDHHMMSS) and keeps the old
#       ones, so tokens issued before still open. Needs kms:Decrypt on the
#       key through SSM (the stack's AdditionalDecryptPrincipalArns).
#
# The parameter names and the key come from the stack's outputs
# (SaltParameterName, EncryptionKeysParameterName, KmsKeyArn); override them
# with --salt-parameter, --keys-parameter, --kms-key-id.
#
# Values are generated with `openssl rand -base64 32` (32 random bytes; Veil
# needs at least 32 bytes of secret) and passed to the AWS CLI through a
# file in a private temporary directory, never on a command line (where
# `ps` would show them) and never printed.
#
# Parameters are written with tier Intelligent-Tiering: Standard parameters
# hold 4 KB, which the key list reaches after about 67 rotations (each key
# adds about 61 bytes); SSM then moves the parameter to the Advanced tier
# (8 KB, about 134 keys) by itself. Past 8 KB the rotation stops with an
# error instead of dropping keys.
#
# Needs: aws CLI, openssl; IAM: the deployer policy deploy/aws/deployer-policy.json
# (cloudformation:DescribeStacks on the stack, ssm:DescribeParameters,
# ssm:PutParameter and ssm:GetParameter on the two parameters, kms:Encrypt on
# the key through SSM; rotation also kms:Decrypt, see AdditionalDecryptPrincipalArns).
set -euo pipefail

die() {
    printf 'create-secrets: ERROR: %s\n' "$*" >&2
    exit 1
}
say() { printf 'create-secrets: %s\n' "$*"; }

stack="" region="" salt_param="" keys_param="" kms_key="" rotate=false
while [ $# -gt 0 ]; do
    case "$1" in
    --stack) stack="${2:?--stack needs a value}"; shift 2 ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    --salt-parameter) salt_param="${2:?}"; shift 2 ;;
    --keys-parameter) keys_param="${2:?}"; shift 2 ;;
    --kms-key-id) kms_key="${2:?}"; shift 2 ;;
    --rotate-keys) rotate=true; shift ;;
    -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done

command -v aws >/dev/null 2>&1 || die "the aws CLI (v2) is not on PATH"
command -v openssl >/dev/null 2>&1 || die "openssl is not on PATH"
aws_() {
    if [ -n "$region" ]; then aws --region "$region" "$@"; else aws "$@"; fi
}

output() {
    aws_ cloudformation describe-stacks --stack-name "$stack" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
if [ -n "$stack" ]; then
    [ -n "$salt_param" ] || salt_param="$(output SaltParameterName)"
    [ -n "$keys_param" ] || keys_param="$(output EncryptionKeysParameterName)"
    [ -n "$kms_key" ] || kms_key="$(output KmsKeyArn)"
fi
for v in salt_param keys_param kms_key; do
    case "${!v}" in '' | None) die "no value for $v: give --stack STACK (a deployed Veil stack) or --salt-parameter, --keys-parameter and --kms-key-id" ;; esac
done

umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

exists() {
    aws_ ssm describe-parameters --parameter-filters "Key=Name,Option=Equals,Values=$1" \
        --query 'length(Parameters)' --output text
}
# put NAME FILE [--overwrite]
put() {
    local name="$1" file="$2"
    shift 2
    aws_ ssm put-parameter --name "$name" --type SecureString --key-id "$kms_key" \
        --tier Intelligent-Tiering --value "file://$file" "$@" >/dev/null
}
new_secret() { openssl rand -base64 32 | tr -d '\n'; }
new_kid() { printf 'k%s' "$(date -u +%Y%m%d%H%M%S)"; }
kid="$(new_kid)"

# SSM's limit for an Advanced parameter value.
max_bytes=8192

if ! $rotate; then
    salt_exists="$(exists "$salt_param")"
    keys_exists="$(exists "$keys_param")"
    if [ "$salt_exists" != "0" ] && [ "$keys_exists" != "0" ]; then
        die "$salt_param and $keys_param exist already; nothing to create. To add a key use --rotate-keys (never replace the salt: every pseudonym would change)."
    fi
    if [ "$salt_exists" = "0" ]; then
        new_secret >"$tmp/salt"
        put "$salt_param" "$tmp/salt"
        say "created $salt_param (SecureString, key $kms_key)"
    else
        say "$salt_param exists; kept (a new salt would change every pseudonym)"
    fi
    if [ "$keys_exists" = "0" ]; then
        printf '%s:%s' "$kid" "$(new_secret)" >"$tmp/keys"
        put "$keys_param" "$tmp/keys"
        say "created $keys_param with key id $kid (SecureString, key $kms_key)"
    else
        say "$keys_param exists; kept (use --rotate-keys to add a key)"
    fi
else
    [ "$(exists "$keys_param")" = "1" ] || die "$keys_param does not exist; run without --rotate-keys first"
    aws_ ssm get-parameter --name "$keys_param" --with-decryption \
        --query Parameter.Value --output text >"$tmp/old"
    # Key ids are per second: never reuse one (a second run in the same second waits).
    if grep -q "^$kid:\|,$kid:" "$tmp/old"; then
        sleep 1
        kid="$(new_kid)"
        grep -q "^$kid:\|,$kid:" "$tmp/old" && die "a key with id $kid exists already; try again in a second"
    fi
    printf '%s:%s,%s' "$kid" "$(new_secret)" "$(tr -d '\n' <"$tmp/old")" >"$tmp/keys"
    size="$(wc -c <"$tmp/keys")"
    [ "$size" -le "$max_bytes" ] ||
        die "the key list would be $size bytes, above SSM's $max_bytes-byte limit; no key was added. About 134 keys fit: rotating once a month lasts over ten years (deploy/README.md, key rotation)."
    put "$keys_param" "$tmp/keys" --overwrite
    say "prepended key id $kid to $keys_param ($size bytes); older keys kept so issued p~ tokens still open"
    say "running functions read the parameter at start: update each connector stack's function (or wait for new containers) to encrypt with $kid"
fi
