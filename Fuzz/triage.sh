#!/usr/bin/env bash
# Groups one target's findings (Fuzz/.work/TARGET/findings, from Fuzz/fuzz.sh run) by kind and stack, keeps the
# smallest input of each group, minimised by libFuzzer, in Fuzz/findings/TARGET/ and lists the groups in its
# README.md. For findings in modules whose fixes live elsewhere: commit the folder, fix in that module, and turn
# each input into a regression test there.
#   Fuzz/triage.sh TARGET [MINIMISE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
target=$1 seconds=${2:-20}
bin="$(${SWIFT:-swift} build -c release --show-bin-path)/fuzz-$target"
export ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no DML_FUZZ_TEXT_MODEL="${DML_FUZZ_TEXT_MODEL:-../models/text/all-MiniLM-L6-v2}"
limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
out="findings/$target"
mkdir -p "$out"
# One run of an input; its output.
run_once() { timeout 120 "$bin" "${limits[@]}" -runs=1 "$1" 2>&1 || true; }

# Kind: the Swift fatal error's message, or the sanitizer's or libFuzzer's summary.
kind_of() {
    local kind
    kind=$(grep -m1 -oE 'Fatal error: .*' <<<"$1" | head -c 160 || true)
    [ -n "$kind" ] || kind=$(grep -m1 -oE 'SUMMARY: [A-Za-z]+: [A-Za-z-]+( signal)?' <<<"$1" | sed -E 's/^SUMMARY: //' || true)
    echo "${kind:-no longer reproduces}"
}

declare -A smallest size count
gone=0
for input in .work/"$target"/findings/*; do
    [ -f "$input" ] || continue
    log=$(run_once "$input")
    kind=$(kind_of "$log")
    if [ "$kind" = "no longer reproduces" ]; then gone=$((gone + 1)); continue; fi
    # Stack: the first frame outside the sanitizer, libFuzzer, libc and allocation functions.
    frames=$(grep -E '^ +#[0-9]+ 0x[0-9a-f]+ in ' <<<"$log" | sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //; s/ \/.*$//; s/ \(.*$//' |
        grep -vE '^(__|fuzzer::|malloc|calloc|realloc|operator new|std::|abort|raise|gsignal|LLVMFuzzerTestOneInput|main$|_start)' |
        { swift demangle --simplified 2>/dev/null || cat; } | sed -E 's/^(.{0,100}).*/\1/' | head -1 || true)
    key="$kind | ${frames:-?}"
    bytes=$(wc -c <"$input")
    count[$key]=$(( ${count[$key]:-0} + 1 ))
    if [ -z "${size[$key]:-}" ] || [ "$bytes" -lt "${size[$key]}" ]; then size[$key]=$bytes; smallest[$key]=$input; fi
done
readme="$out/README.md"
{
    echo "# fuzz-$target findings"
    echo
    echo "One minimised input per kind and stack (Fuzz/triage.sh); \`Fuzz/.build/release/fuzz-$target FILE\` reproduces it."
    echo
} >"$readme"
n=0
for key in "${!smallest[@]}"; do
    n=$((n + 1))
    name=$(printf '%s-%02d' "$target" "$n")
    input=${smallest[$key]}
    timeout $((seconds + 30)) "$bin" "${limits[@]}" -minimize_crash=1 -max_total_time="$seconds" \
        -exact_artifact_path="$out/$name" "$input" >/dev/null 2>&1 || true
    # Minimising keeps any crash; keep the original when the minimised input fails differently.
    if [ ! -s "$out/$name" ] || [ "$(kind_of "$(run_once "$out/$name")")" != "${key%% | *}" ]; then cp "$input" "$out/$name"; fi
    echo "- \`$name\` ($(wc -c <"$out/$name") bytes, ${count[$key]} found): $key" >>"$readme"
done
echo "- $gone more did not reproduce on their own (run alone, after the fuzzer's earlier inputs)." >>"$readme"
echo "$n groups from $(ls .work/"$target"/findings | wc -l) findings ($gone not reproducible): $readme"
