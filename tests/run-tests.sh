#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what is missing, builds, and runs every test tier: unit, lint,
# integration (private bus, umockdev, dbusmock), vm (a real kernel in
# QEMU), sanitize (unit and integration again under ASan and UBSan) and
# fuzz (libFuzzer, see tests/fuzz/README.md). With CI=true compiler
# warnings are errors and no tier may skip.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/deps.sh test

werror=false
[ "${CI:-}" = true ] && werror=true
if [ -f build/build.ninja ]; then
        meson configure build -Dwerror=$werror -Dtests=enabled >/dev/null
else
        meson setup build -Dwerror=$werror -Dtests=enabled
fi
ninja -C build

# meson prints the closing summary and fails when any test fails
exec meson test -C build --print-errorlogs --num-processes 2 "$@"
