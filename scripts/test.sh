#!/usr/bin/env bash
# Runs every check Veil has: formatting, lints, all tests, and the rule
# tests of every shipped connector. This is the README's test command and
# what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "test tools (pinned tools into .tools/: cargo-lambda, moto, linters)"
bash scripts/install-test-tools.sh
export PATH="$PWD/.tools/bin:$PATH"

step "headless Chromium for the review-page test"
bash scripts/install-browser.sh

step "cargo test (unit, property and end-to-end tests)"
cargo test --workspace --locked

step "deployment checks (cfn-lint, checkov, terraform fmt, Dockerfile, Lambda artifact)"
bash scripts/check-deploy.sh

step "veil rules test (every connector sample against its golden output)"
cargo run --quiet --locked -- rules test

step "all checks passed"
