#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh's meson test --wrapper: runs one test as it is, except that the
# umockdev-based ones get no log_path. ASan sets log_path up at start
# (stat and mkdir of its directory) before any library's constructor has
# run, and under umockdev-wrapper those calls land in libumockdev-preload,
# whose pointers to the real functions are not set yet: the process
# crashes before main. Their reports go to stderr instead, which the tests
# check through the daemon's and the clients' exit status.
case "$1" in
*/umockdev-wrapper)
        ASAN_OPTIONS=$(echo "$ASAN_OPTIONS" | sed 's/:log_path=[^:]*//')
        UBSAN_OPTIONS=$(echo "$UBSAN_OPTIONS" | sed 's/:log_path=[^:]*//')
        export ASAN_OPTIONS UBSAN_OPTIONS
        ;;
esac
exec "$@"
