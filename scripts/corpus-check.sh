#!/usr/bin/env bash
# Generates a client for every document in ../shared/specs-corpus and runs `cargo check`
# on each, printing one row per document: operations, warnings, generation time and the
# check result. Exits non-zero when a generation fails or a crate does not check.
#
# The crates go into one scratch workspace sharing one target directory, so the runtime
# and serde are compiled once. Usage, from the repository root:
#
#   scripts/corpus-check.sh [filter]      # e.g. `scripts/corpus-check.sh stripe`
#
# Environment: CORPUS (default ../shared/specs-corpus), CARGO_TARGET_DIR (default
# target/corpus), CORPUS_WORK (scratch workspace, default target/corpus-crates), JOBS
# (cargo -j, default 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
corpus=${CORPUS:-$root/../shared/specs-corpus}
work=${CORPUS_WORK:-$root/target/corpus-crates}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/corpus}
jobs=${JOBS:-2}
filter=${1:-}

cargo build -q --release -j "$jobs" -p polvo-gen --manifest-path "$root/Cargo.toml"
gen=$CARGO_TARGET_DIR/release/polvo-gen

rm -rf "$work"
mkdir -p "$work"
documents=$(cd "$corpus" && find . -mindepth 2 -maxdepth 2 \( -name '*.yaml' -o -name '*.json' \) | sed 's|^\./||' | sort)

names=()
declare -A ops warnings seconds status
failed=0
for doc in $documents; do
    [[ -n "$filter" && "$doc" != *"$filter"* ]] && continue
    name="c_$(echo "$doc" | sed 's/[^a-zA-Z0-9]/_/g' | tr 'A-Z' 'a-z')"
    log="$work/$name.log"
    start=$(date +%s.%N)
    if "$gen" generate --spec "$corpus/$doc" --name "$name" --out "$work/$name" \
        --runtime-path "$root/runtime" --no-rustfmt 2>"$log"; then
        status[$doc]=generated
    else
        status[$doc]="generation failed: $(tail -1 "$log")"
        failed=1
    fi
    end=$(date +%s.%N)
    seconds[$doc]=$(echo "$end - $start" | bc)
    summary=$(grep '^generated ' "$log" || true)
    ops[$doc]=$(echo "$summary" | sed -n 's/.*: \([0-9]*\) operations.*/\1/p')
    warnings[$doc]=$(echo "$summary" | sed -n 's/.* \([0-9]*\) warnings.*/\1/p')
    names+=("$doc")
done

members=$(for doc in "${names[@]}"; do
    name="c_$(echo "$doc" | sed 's/[^a-zA-Z0-9]/_/g' | tr 'A-Z' 'a-z')"
    [[ -d "$work/$name" ]] && printf '"%s", ' "$name"
done)
printf '[workspace]\nresolver = "3"\nmembers = [%s]\n' "$members" >"$work/Cargo.toml"

printf '%-45s %6s %8s %8s %8s  %s\n' document ops warnings gen_s check_s check
for doc in "${names[@]}"; do
    name="c_$(echo "$doc" | sed 's/[^a-zA-Z0-9]/_/g' | tr 'A-Z' 'a-z')"
    result=${status[$doc]}
    check_s=-
    if [[ "$result" == generated ]]; then
        package=$(echo "$name" | tr '_' '-')
        start=$(date +%s.%N)
        if cargo check -q -j "$jobs" --manifest-path "$work/Cargo.toml" -p "$package" \
            >"$work/$name.check.log" 2>&1; then
            result=ok
        else
            result="FAILED ($(grep -c '^error' "$work/$name.check.log") errors, see $work/$name.check.log)"
            failed=1
        fi
        end=$(date +%s.%N)
        check_s=$(printf '%.1f' "$(echo "$end - $start" | bc)")
    fi
    printf '%-45s %6s %8s %8.2f %8s  %s\n' "$doc" "${ops[$doc]:--}" "${warnings[$doc]:--}" \
        "${seconds[$doc]}" "$check_s" "$result"
done
exit $failed
