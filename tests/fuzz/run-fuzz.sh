#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The fuzz tier: builds the libFuzzer targets with clang, ASan and UBSan
# in $VFIOMIG_BUILDDIR/fuzz, then runs each from its seed corpus for a
# bounded time, two at a time, leak detection on. Any crash, leak, UBSan
# report, timeout or out-of-memory fails the tier; the input that did it
# is kept in $VFIOMIG_BUILDDIR/fuzz/artifacts and printed in hex.
#
#   VFIOMIG_FUZZ_SECONDS   time per target (default 60)
#   VFIOMIG_FUZZ_JOBS      targets at once (default 2)
#   run-fuzz.sh [TARGET...]  only these (stream, rules, testbed, fault,
#                            conffile, names, domain-xml, vdpa)
#
# Exit 77 (meson: SKIP) only outside CI, when clang or its libFuzzer
# runtime is missing.
set -euo pipefail

src=${VFIOMIG_SRCDIR:?}
build=${VFIOMIG_BUILDDIR:?}/fuzz
seconds=${VFIOMIG_FUZZ_SECONDS:-60}
jobs=${VFIOMIG_FUZZ_JOBS:-2}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stream rules testbed fault conffile names domain-xml vdpa)

missing() {
        if [ "${CI:-}" = true ]; then
                echo "FAIL: $* (CI=true: the fuzz tier may not skip; tests/deps.sh test installs it)" >&2
                exit 1
        fi
        echo "*** SKIPPING THE FUZZ TIER: $* (tests/deps.sh test installs it) ***" >&2
        exit 77
}

command -v clang >/dev/null || missing "clang is not installed"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' > "$probe/t.c"
clang -fsanitize=fuzzer,address,undefined "$probe/t.c" -o "$probe/t" 2>"$probe/err" ||
        missing "clang cannot link -fsanitize=fuzzer (libclang-rt-14-dev): $(head -1 "$probe/err")"

# The whole core library carries ASan, UBSan (no recovery: a report is a
# crash) and coverage; only the fuzz targets are built.
reconfigure=()
[ -f "$build/build.ninja" ] && reconfigure=(--reconfigure)
CC=clang meson setup "${reconfigure[@]}" "$build" "$src" \
        -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=undefined -Dc_link_args=-fno-sanitize-recover=undefined \
        -Dman=disabled -Dvm-tests=disabled >"$build.setup.log" 2>&1 ||
        { cat "$build.setup.log"; exit 1; }
ninja -C "$build" "${targets[@]/#/tests/fuzz/fuzz-}"

artifacts=$build/artifacts
rm -rf "$artifacts" "$build/work"
mkdir -p "$artifacts" "$build/work"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# GLib's slice allocator would hide leaks and overruns from ASan
export G_SLICE=always-malloc

# New inputs go to a scratch corpus (the first directory); the committed
# seeds are only read.
fuzz_one() {
        local t=$1 log=$build/work/$t.log
        mkdir -p "$build/work/$t"
        "$build/tests/fuzz/fuzz-$t" "$build/work/$t" "$src/tests/fuzz/corpus/$t" \
                -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
                -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
                -error_exitcode=1 -timeout_exitcode=1 >"$log" 2>&1
}

declare -A pid
failed=()
report() {
        local t=$1 rc=$2 log=$build/work/$1.log
        local done execs
        done=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*//' || true)
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        if [ "$rc" -eq 0 ]; then
                echo "fuzz-$t: ok, ${execs:-?} runs in ${seconds}s; ${done:-no DONE line}"
                return
        fi
        failed+=("$t")
        echo "fuzz-$t: FAILED (exit $rc); log:"
        tail -n 80 "$log"
        for a in "$artifacts/$t-"*; do
                [ -e "$a" ] || continue
                echo "--- $a (reproduce: $build/tests/fuzz/fuzz-$t $a):"
                od -A d -t x1 -v "$a" | head -n 64
        done
}

running=()
for t in "${targets[@]}"; do
        [ -d "$src/tests/fuzz/corpus/$t" ] || { echo "no seed corpus tests/fuzz/corpus/$t" >&2; exit 1; }
        fuzz_one "$t" &
        pid[$t]=$!
        running+=("$t")
        if [ ${#running[@]} -ge "$jobs" ]; then
                rc=0; wait "${pid[${running[0]}]}" || rc=$?
                report "${running[0]}" "$rc"
                running=("${running[@]:1}")
        fi
done
for t in "${running[@]}"; do
        rc=0; wait "${pid[$t]}" || rc=$?
        report "$t" "$rc"
done

if [ ${#failed[@]} -gt 0 ]; then
        echo "FAIL: fuzz targets with findings: ${failed[*]}"
        exit 1
fi
echo "all ${#targets[@]} fuzz targets clean"
