#!/usr/bin/env bash
# Makes sure Prism (`@stoplight/prism-cli`) is installed, for the contract tests
# (tests/tests/prism_*.rs): they start `prism mock` on a spec, call every operation of a
# generated client against it and fail when Prism finds a request the spec forbids.
#
# Usage: scripts/prism.sh
#   Installs Prism into target/prism (git-ignored, never global) when it is missing, then
#   prints the binary's path and version. Quick when Prism is already there. The tests
#   look for the binary in $POLVO_PRISM, then in target/prism/node_modules/.bin/prism.
set -euo pipefail
cd "$(dirname "$0")/.."

# The major version is pinned: the tests read Prism's log lines, whose wording may
# change between majors.
version=5
prefix="$PWD/target/prism"
prism="$prefix/node_modules/.bin/prism"

if [ ! -x "$prism" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing; install Node.js 18 or later with npm, for example" >&2
    echo "  sudo apt-get install -y nodejs npm   (or from https://nodejs.org)" >&2
    echo "then run scripts/prism.sh again" >&2
    exit 1
  fi
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$version"
fi

echo "$prism"
"$prism" --version
