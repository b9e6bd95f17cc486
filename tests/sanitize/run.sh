#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The sanitizer tier: builds everything with ASan and UBSan in
# $VFIOMIG_BUILDDIR/sanitize and runs the unit and integration suites
# there. It fails on any failed test and on any sanitizer report of any
# process, the daemon started by D-Bus activation or killed by a test
# included: every report goes to a file under sanitize/reports, and one
# file is enough. Leaks count: LeakSanitizer runs at every exit.
#
# Extra arguments go to that meson test (e.g. a test name).
# Exit 77 (meson: SKIP) only outside CI, when the compiler cannot build
# with the sanitizers.
set -euo pipefail

src=${VFIOMIG_SRCDIR:?}
build=${VFIOMIG_BUILDDIR:?}/sanitize
here=$src/tests/sanitize

# gcc, the compiler the project ships with, and its runtimes linked into
# each executable (-static-libasan). ASan's runtime must come before every
# other library, or uninstrumented code in a library that comes first can
# allocate before ASan is set up; a dynamically linked libasan checks that
# at start. umockdev-wrapper LD_PRELOADs libumockdev-preload.so into the
# whole test process tree of 'udev' and 'compat-vendor', so a dynamic
# libasan would stand second and abort. Preloading libasan ahead of
# umockdev's library would mean loading it into python, dbus-daemon and
# every other uninstrumented helper of those tests too (and LeakSanitizer
# judging python's exit). Linked in, the runtime is part of the executable,
# which always comes first in the lookup order and initialises before any
# library's constructor; its interceptors find umockdev's wrappers next
# (RTLD_NEXT), so sysfs and uevents are still redirected. Only our own
# binaries carry it, and no check is switched off.
sanitize_flags=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
link_flags=(-static-libasan -static-libubsan)

missing() {
        if [ "${CI:-}" = true ]; then
                echo "FAIL: $* (CI=true: the sanitizer tier may not skip)" >&2
                exit 1
        fi
        echo "*** SKIPPING THE SANITIZER TIER: $* ***" >&2
        exit 77
}

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main(void) { return 0; }' > "$probe/t.c"
cc "${sanitize_flags[@]}" "${link_flags[@]}" "$probe/t.c" -o "$probe/t" 2>"$probe/err" ||
        missing "cc cannot build with ASan and UBSan: $(head -1 "$probe/err")"

# --reconfigure keeps a build of an earlier run, with these options
reconfigure=()
[ -f "$build/build.ninja" ] && reconfigure=(--reconfigure)
CC=cc meson setup "${reconfigure[@]}" "$build" "$src" -Db_sanitize=address,undefined \
        -Dc_args="-fno-sanitize-recover=undefined -fno-omit-frame-pointer" -Dc_link_args="${link_flags[*]}" \
        -Dtests=enabled -Dman=disabled -Dvm-tests=disabled >"$build.setup.log" 2>&1 ||
        { cat "$build.setup.log"; exit 1; }
ninja -C "$build"

reports=$build/reports
rm -rf "$reports"
mkdir -p "$reports"
chmod 1777 "$reports"           # tests run clients as nobody
# halt_on_error: the first error ends the process (UBSan's too: compiled
# without recovery), so no test can go on past it. Reports go to
# reports/{asan,ubsan}.PID, which is how we see those of processes whose
# exit status no test looks at (but see wrap-test.sh for umockdev).
# Frame pointers make ASan's stacks reach our code; through GLib's
# frames only VFIOMIG_ASAN_OPTIONS=fast_unwind_on_malloc=0 (slow) does.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:log_path=$reports/asan${VFIOMIG_ASAN_OPTIONS:+:$VFIOMIG_ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
# GLib's slice allocator would hide leaks and overruns from ASan
export G_SLICE=always-malloc G_DEBUG=gc-friendly

rc=0
meson test -C "$build" --suite unit --suite integration --print-errorlogs --num-processes 2 \
        --wrapper "$here/wrap-test.sh" "$@" || rc=$?

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
        for f in "${found[@]}"; do
                echo "=== sanitizer report $f"
                cat "$f"
        done
        echo "FAIL: ${#found[@]} sanitizer report(s)"
        exit 1
fi
if [ $rc -ne 0 ]; then
        echo "FAIL: tests failed under ASan and UBSan (meson test exit $rc); logs in $build/meson-logs"
        exit 1
fi
echo "sanitizer tier clean: no report, no failed test"
