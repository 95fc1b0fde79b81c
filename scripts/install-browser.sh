#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) for the tests
# that look at a page as a person would (tests/review_page.rs). Idempotent:
# nothing happens when `chromium` is already on PATH. Needs root (apt-get),
# as on CI; elsewhere install the package by hand and re-run.
set -euo pipefail

say() { printf 'install-browser: %s\n' "$*"; }

if command -v chromium >/dev/null 2>&1; then
    say "chromium already installed: $(chromium --version 2>/dev/null | head -n 1)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    printf 'install-browser: ERROR: chromium is missing and installing it needs root (apt-get install chromium)\n' >&2
    exit 1
fi
say "installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null 2>&1 || {
    printf 'install-browser: ERROR: apt-get installed chromium but it is not on PATH\n' >&2
    exit 1
}
say "installed $(chromium --version 2>/dev/null | head -n 1)"
