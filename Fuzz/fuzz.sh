#!/usr/bin/env bash
# Builds the libFuzzer harnesses (ASan + libFuzzer, own scratch folder Fuzz/.build) and runs each for SECONDS on
# its committed corpus Fuzz/corpus/<target>/; new inputs and findings go to the git-ignored Fuzz/.work/<target>/.
#   Fuzz/fuzz.sh build
#   Fuzz/fuzz.sh run SECONDS [TARGET...]     (default: every target)
#   Fuzz/fuzz.sh replay [TARGET...]          (every committed corpus and findings input once, no mutation)
#   Fuzz/fuzz.sh parity                      (tokenizer ids of every input found so far against Hugging Face)
# Runs use libFuzzer's fork mode, so a crash, out-of-memory input or timeout is saved and fuzzing goes on; the
# summary lists execs, exec/s and findings per target, and the script exits 1 when any target found something.
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(safetensors npy faiss tokenizer coco image gallery)
SWIFT=${SWIFT:-swift}

build() {
    # SwiftPM's two --sanitize flags reach clang (C/C++ targets) and the link, but swiftc keeps only the last
    # -sanitize= it is given, so the Swift side gets both in one flag.
    for t in "${TARGETS[@]}"; do
        "$SWIFT" build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address --product "fuzz-$t" \
            2>&1 | grep -v "Cannot export local symbol" || { echo "fuzz: building fuzz-$t failed" >&2; exit 1; }
    done
}

# Longest input per target: above its largest seed, small enough that mutations stay quick.
max_len() {
    case $1 in
        npy | tokenizer) echo 4096 ;;
        coco | image | faiss) echo 16384 ;;
        safetensors) echo 32768 ;;
        gallery) echo 65536 ;;
    esac
}

run() {
    local seconds=$1; shift
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    local bin status=0 summary=()
    bin="$("$SWIFT" build -c release --show-bin-path)"
    for t in "${targets[@]}"; do
        local work=".work/$t"
        mkdir -p "$work/corpus" "$work/findings"
        local before; before=$(find "$work/findings" -type f | wc -l)
        # rss/malloc limits: an input that makes a reader allocate 2 GB is a finding, not a legit case;
        # leaks are not checked (the Swift runtime's caches read as leaks).
        DML_FUZZ_TEXT_MODEL="${DML_FUZZ_TEXT_MODEL:-../models/text/all-MiniLM-L6-v2}" ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no \
            nice -n 10 "$bin/fuzz-$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
            -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
            -timeout=10 -detect_leaks=0 -artifact_prefix="$work/findings/" \
            "$work/corpus" "corpus/$t" >"$work/log" 2>&1 || true
        # Fork mode's status lines: "#EXECS: cov: C ft: F corp: N exec/s: R oom/timeout/crash: O/T/C time: Ss ...".
        local line; line=$(grep -E '^#[0-9]+: cov:' "$work/log" | tail -1 || true)
        local execs elapsed rate; execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$line")
        elapsed=$(sed -E 's/.* time: ([0-9]+)s.*/\1/' <<<"$line")
        rate=$(( ${execs:-0} / (${elapsed:-1} > 0 ? ${elapsed:-1} : 1) ))  # the line's own exec/s is the last job's
        local found=$(( $(find "$work/findings" -type f | wc -l) - before ))
        summary+=("$(printf '%-12s %12s execs %8s exec/s %4d new findings' "$t" "${execs:-0}" "${rate:-0}" "$found")")
        if [ "$found" -gt 0 ] || [ -z "$line" ]; then status=1; fi
    done
    printf '%s\n' "${summary[@]}"
    [ $status -eq 0 ] || echo "fuzz: findings (or a target that did not run) in Fuzz/.work/*/findings and Fuzz/.work/*/log" >&2
    return $status
}

# Deterministic replay (what CI runs): each target once over its committed corpus (-runs=0: load, run every input,
# no mutation), then each committed finding alone, under the fuzzing limits. Prints one line per failing input and
# exits 1 if any crashes, runs out of memory or times out.
replay() {
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
    local bin status=0 inputs=0
    bin="$("$SWIFT" build -c release --show-bin-path)"
    local env=(env DML_FUZZ_TEXT_MODEL="${DML_FUZZ_TEXT_MODEL:-../models/text/all-MiniLM-L6-v2}" ASAN_OPTIONS=detect_leaks=0
        SWIFT_BACKTRACE=enable=no)
    local limits=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -detect_leaks=0 -artifact_prefix=.work/replay/)
    mkdir -p .work/replay
    for t in "${targets[@]}"; do
        local log=".work/replay/$t.log"
        inputs=$(( inputs + $(find "corpus/$t" -type f | wc -l) ))
        "${env[@]}" "$bin/fuzz-$t" -runs=0 -max_len="$(max_len "$t")" "${limits[@]}" "corpus/$t" >"$log" 2>&1 ||
            { echo "fuzz replay: $t corpus fails: $(grep -m1 -E 'SUMMARY|Fatal error|ERROR: libFuzzer' "$log"), see Fuzz/$log" >&2; status=1; }
        local f
        for f in findings/"$t"/*; do
            [ -f "$f" ] && [ "${f##*.}" != md ] || continue
            inputs=$(( inputs + 1 ))
            "${env[@]}" "$bin/fuzz-$t" "${limits[@]}" "$f" >"$log.finding" 2>&1 ||
                { echo "fuzz replay: $t fails on Fuzz/$f: $(grep -m1 -E 'SUMMARY|Fatal error|ERROR: libFuzzer' "$log.finding")" >&2; status=1; }
        done
    done
    echo "fuzz replay: $inputs inputs over ${#targets[@]} targets, $([ $status -eq 0 ] && echo ok || echo FAILED)"
    return $status
}

# Runs every tokenizer input found so far (and the seeds) once, recording the Swift ids, and compares them with
# Hugging Face tokenizers: a differential check the in-process invariants cannot make.
parity() {
    local bin ids=.work/tokenizer/ids.tsv
    bin="$("$SWIFT" build -c release --show-bin-path)"
    mkdir -p .work/tokenizer/corpus
    rm -f "$ids"
    DML_FUZZ_TEXT_MODEL="${DML_FUZZ_TEXT_MODEL:-../models/text/all-MiniLM-L6-v2}" DML_FUZZ_IDS_OUT="$ids" \
        ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no \
        "$bin/fuzz-tokenizer" -runs=0 -max_len="$(max_len tokenizer)" .work/tokenizer/corpus corpus/tokenizer >/dev/null 2>&1
    ../.venv/bin/python tokenizer-parity.py "$ids"
}

case ${1:-} in
    build) build ;;
    run) shift; run "$@" ;;
    replay) shift; replay "$@" ;;
    parity) parity ;;
    *) echo "usage: Fuzz/fuzz.sh build | run SECONDS [TARGET...] | replay [TARGET...] | parity" >&2; exit 2 ;;
esac
