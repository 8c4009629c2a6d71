#!/usr/bin/env bash
# Fuzzes the wire protocol for a bounded time (docs/fuzzing.md). Not run by CI.
#
#   scripts/fuzz.sh                          # every target, 60 s each
#   scripts/fuzz.sh 300 frame_decoder        # one target, 5 minutes
#   FUZZ_SECONDS=600 scripts/fuzz.sh         # every target, 10 minutes each
#
# Environment:
#   FUZZ_SECONDS    seconds per target when no first argument is given (default 60)
#   FUZZ_RSS_MB     libFuzzer's -rss_limit_mb (default 2048)
#   FUZZ_TOOLCHAIN  rustup toolchain for cargo-fuzz (default nightly); if it is not installed,
#                   the default toolchain is used with RUSTC_BOOTSTRAP=1
#   FUZZ_SANITIZER  cargo fuzz --sanitizer (default address; `none` runs about twice as fast)
#
# The targets run one after the other, one process each (the machine is shared). Each one
# reads the committed seeds in fuzz/corpus/<target>/ and writes what it learns to
# fuzz/corpus-grown/<target>/ (ignored by git). The script exits 1 if any target found a
# crash, and prints the artifact to reproduce it with.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(frame_decoder request_parse reply_parse round_trip)

seconds="${FUZZ_SECONDS:-60}"
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=("${ALL_TARGETS[@]}")
fi
rss_mb="${FUZZ_RSS_MB:-2048}"
sanitizer="${FUZZ_SANITIZER:-address}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz passes -Z flags to rustc, which needs a nightly compiler. RUSTC_BOOTSTRAP=1 lets
# a stable one accept them.
cargo_fuzz=(cargo)
if rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    cargo_fuzz=(cargo "+$toolchain")
else
    echo "== toolchain $toolchain not installed: using the default one with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
fi
cargo_fuzz+=(fuzz)

echo "== building the fuzz targets (${cargo_fuzz[*]}, sanitizer $sanitizer)"
"${cargo_fuzz[@]}" build --sanitizer "$sanitizer" --debug-assertions

mkdir -p fuzz/target/logs
failed=()
for target in "${targets[@]}"; do
    grown="fuzz/corpus-grown/$target"
    artifacts="fuzz/artifacts/$target"
    log="fuzz/target/logs/$target.log"
    mkdir -p "$grown" "$artifacts"
    before="$(ls "$artifacts")"
    echo "== $target: ${seconds} s (log: $log)"
    # The first corpus directory is where libFuzzer writes new inputs; the seeds stay as
    # they are.
    status=0
    "${cargo_fuzz[@]}" run --sanitizer "$sanitizer" --debug-assertions "$target" \
        "$grown" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "$log" || true
    new="$(comm -13 <(echo "$before") <(ls "$artifacts") | sed "s|^|$artifacts/|")"
    if [[ $status -ne 0 || -n "$new" ]]; then
        echo "!! $target failed (exit $status); the end of its log:"
        tail -n 40 "$log"
        if [[ -n "$new" ]]; then
            echo "!! reproduce with: ${cargo_fuzz[*]} run $target <artifact>, artifacts:"
            echo "$new"
        fi
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== FAILED: ${failed[*]}"
    exit 1
fi
echo "== no crash in: ${targets[*]}"
