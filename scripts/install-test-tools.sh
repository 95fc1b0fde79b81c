#!/usr/bin/env bash
# Installs the tools Veil's tests need beyond the Rust toolchain, into
# .tools/ (gitignored), pinned:
#
#   cargo-lambda  the AWS Lambda emulator tests/lambda.rs runs Veil under
#                 (PyPI's `cargo-lambda` wheel ships the binary), in the
#                 Python venv .tools/venv.
#
# Idempotent: does nothing when the pinned versions are already there.
# scripts/test.sh runs it and puts .tools/venv/bin on PATH; to run the
# Lambda test by hand:
#
#   bash scripts/install-test-tools.sh
#   PATH="$PWD/.tools/venv/bin:$PATH" cargo test --test lambda -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
VENV=.tools/venv

say() { printf 'install-test-tools: %s\n' "$*"; }
die() {
    printf 'install-test-tools: ERROR: %s\n' "$*" >&2
    exit 1
}

# The version a cargo-lambda binary reports (`cargo-lambda 1.9.2 (…)`), or nothing.
cargo_lambda_version() {
    "$1" lambda --version 2>/dev/null | awk '{print $2}' || true
}

installed="$(if [ -x "$VENV/bin/cargo-lambda" ]; then cargo_lambda_version "$VENV/bin/cargo-lambda"; fi)"
if [ "$installed" = "$CARGO_LAMBDA_VERSION" ]; then
    say "cargo-lambda $CARGO_LAMBDA_VERSION already installed in $VENV"
else
    command -v python3 >/dev/null 2>&1 ||
        die "python3 is not on PATH; it is needed to install cargo-lambda from PyPI (Debian: apt-get install python3 python3-venv)"
    # A venv whose interpreter no longer runs (Python upgraded or moved) is rebuilt.
    if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        say "creating the Python venv $VENV"
        python3 -m venv --clear "$VENV" ||
            die "could not create the Python venv $VENV (Debian: apt-get install python3-venv)"
    fi
    say "installing cargo-lambda==$CARGO_LAMBDA_VERSION from PyPI into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" ||
        die "pip could not install cargo-lambda==$CARGO_LAMBDA_VERSION into $VENV (is PyPI reachable?)"
    installed="$(cargo_lambda_version "$VENV/bin/cargo-lambda")"
    [ "$installed" = "$CARGO_LAMBDA_VERSION" ] ||
        die "after installing, $VENV/bin/cargo-lambda reports version '${installed:-none}', not $CARGO_LAMBDA_VERSION"
fi

# The check the tests rely on: `cargo lambda` resolves to the pinned binary.
version_line="$(PATH="$PWD/$VENV/bin:$PATH" cargo lambda --version)" ||
    die "\`cargo lambda --version\` fails with $VENV/bin on PATH"
say "installed: $version_line at $VENV/bin/cargo-lambda (put $VENV/bin on PATH to use it)"
