#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd-analyze verify on vfiomigd.service, configured with ExecStart in
# the build tree (verify insists the binary exists), and its exposure score.
set -euo pipefail
unit=$1

systemd-analyze verify --man=no "$unit"
echo "systemd-analyze verify: OK"
systemd-analyze security --offline=true --no-pager "$unit" | tail -n 1
