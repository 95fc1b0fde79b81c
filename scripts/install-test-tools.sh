#!/usr/bin/env bash
# Installs the tools Veil's tests and checks need beyond the Rust toolchain
# into .tools/ (gitignored), pinned, each Python tool in its own venv so their
# dependencies never clash. The commands land in .tools/bin, which
# scripts/test.sh puts first on PATH.
#
# The pinned list is scripts/test-tools.txt: one line per tool,
#   <venv name> <pip requirement> <command> [<command>…]
#
# Idempotent: a tool whose venv already holds the pinned requirement is left
# alone. To run a single test by hand:
#
#   bash scripts/install-test-tools.sh
#   PATH="$PWD/.tools/bin:$PATH" cargo test --test lambda -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.tools
LIST=scripts/test-tools.txt

say() { printf 'install-test-tools: %s\n' "$*"; }
die() {
    printf 'install-test-tools: ERROR: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 ||
    die "python3 is not on PATH; it is needed to install the test tools from PyPI (Debian: apt-get install python3 python3-venv)"
mkdir -p "$TOOLS/bin"

while read -r name requirement commands; do
    case "$name" in '' | '#'*) continue ;; esac
    venv="$TOOLS/venvs/$name"
    stamp="$venv/.veil-requirement"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirement" ] && "$venv/bin/python" -c '' >/dev/null 2>&1; then
        say "$requirement already installed"
    else
        say "installing $requirement into $venv"
        python3 -m venv --clear "$venv" ||
            die "could not create the Python venv $venv (Debian: apt-get install python3-venv)"
        "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "$requirement" ||
            die "pip could not install $requirement into $venv (is PyPI reachable?)"
        printf '%s' "$requirement" >"$stamp"
    fi
    for cmd in $commands; do
        [ -x "$venv/bin/$cmd" ] || die "$requirement did not install the command $cmd"
        ln -sf "../venvs/$name/bin/$cmd" "$TOOLS/bin/$cmd"
    done
done <"$LIST"

# The checks the tests rely on: each command resolves to the pinned install.
PATH="$PWD/$TOOLS/bin:$PATH" cargo lambda --version >/dev/null ||
    die "\`cargo lambda --version\` fails with $TOOLS/bin on PATH"
say "tools ready in $TOOLS/bin: $(ls "$TOOLS/bin" | tr '\n' ' ')"
