#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The exposure level `systemd-analyze security` gives vfiomigd.service,
# offline (no running systemd needed), must stay at or below $2: every
# point above that is a sandboxing option given up (see the unit's comment).
set -euo pipefail
unit=$1
max=${2:-2.0}

out=$(systemd-analyze security --offline=true --no-pager "$unit")
# the items that still count, for whoever reads a failure
grep '✗' <<<"$out" || true
line=$(grep 'Overall exposure level' <<<"$out" | tail -n 1)
echo "$line"
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")
if [[ -z $level ]]; then
        echo "cannot read the exposure level" >&2
        exit 1
fi
if awk -v l="$level" -v m="$max" 'BEGIN { exit !(l > m) }'; then
        echo "exposure $level is above $max" >&2
        exit 1
fi
echo "exposure $level <= $max: OK"
