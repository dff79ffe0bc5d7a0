#!/usr/bin/env bash
# Runs every check polvo's CI runs: formatting, clippy, docs, all tests, the generated-code
# freshness check, the corpus check and short benchmark runs that print their figures.
#
# Usage: scripts/test.sh [--quick]
#   --quick  skips the corpus check and the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1

step() { printf '\n==> %s\n' "$*"; }

# Every benchmark builds with the same packages and features (those of the whole
# workspace, as the tests do), so the release build of one is reused by the next.
bench() { cargo bench --workspace --features polvo-runtime/redis "$@"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy on polvo-runtime without its optional features"
# The workspace build turns on `redis` and `metrics` for every crate (the tests need
# them); this checks the build a client without them gets.
cargo clippy -p polvo-runtime --all-targets -- -D warnings

step "cargo doc (every crate, warnings denied: broken links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps \
  --features polvo-runtime/redis,polvo-runtime/metrics

step "redis-server for the shared-quota tests (installed when missing)"
scripts/redis.sh

step "Prism for the contract tests (installed into target/prism when missing)"
scripts/prism.sh

step "cargo test (workspace, doc tests included)"
# The multi-process shared-quota test runs on its own below, with its figures shown.
cargo test --workspace -- --skip four_processes_share_one_quota_exactly

step "four processes share one quota on Redis (figures printed)"
cargo test --workspace --test shared_quota -- --nocapture

step "generated clients are fresh (polvo-gen check)"
cargo run -q -p polvo-gen -- check

if [ "$quick" = 1 ]; then
  exit 0
fi

step "every corpus document generates and compiles"
corpus=${CORPUS:-../shared/specs-corpus}
if [ -d "$corpus" ]; then
  CORPUS="$(cd "$corpus" && pwd)" scripts/corpus-check.sh
else
  # The corpus lives beside the repository, not in it; a clone elsewhere has none.
  echo "SKIPPED: no corpus at $corpus (set CORPUS to a folder of OpenAPI documents)"
fi

step "benchmark: generation time and peak memory for Stripe's spec3.yaml"
bench --bench generate

step "benchmark: acquire overhead against governor (summary)"
POLVO_SUMMARY_ONLY=1 bench --bench acquire

step "benchmark: throttle accuracy against a strict local server"
POLVO_BENCH_REQUESTS="${POLVO_BENCH_REQUESTS:-5000}" \
  bench --bench throttle

step "benchmark: bulk updates against a strict local server, beside buffer_unordered"
bench --bench bulk

step "benchmark: shared-quota reservations on Redis against the in-memory store"
bench --bench store
