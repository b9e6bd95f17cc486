#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier, issue 5: the compatibility map on real mtty devices. mtty ships
# no migration_version, so identities are type-match; trial-resume
# probes make them verdicts of mtty's own driver. Runs in the guest:
#   tests/vm/run-vm.sh tests/vm/scenario-compat.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
types=/sys/class/mdev_bus/mtty/mdev_supported_types

mdevs() { ls /sys/bus/mdev/devices | sort | tr '\n' ' '; }
available() { echo "$(cat $types/mtty-1/available_instances) $(cat $types/mtty-2/available_instances)"; }

step "idle mtty-2 X and Y, mtty-1 Z" eval 'mtty_create X mtty-2 && mtty_create Y mtty-2 && mtty_create Z mtty-1'
step "system bus" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug

step "mtty identities are type-match" assert_eq "mtty-2 type-match" \
	"$("$ctl" --json identity "$X" | python3 -c 'import json,sys; i=json.load(sys.stdin); print(i["type"], i["basis"])')"
step "before probing: presumed" expect_exit 0 "(basis: type-match)" "$ctl" compat "$X" "$Y"

before=$(mdevs) avail=$(available)
step "probe mtty-2 -> mtty-2 (types)" expect_exit 0 "compatible (basis: probe)" "$ctl" probe mtty/mtty-2 mtty/mtty-2
step "probe mtty-2 -> mtty-1: mtty's own refusal" expect_exit 1 "incompatible (basis: probe)" \
	"$ctl" probe mtty/mtty-2 mtty/mtty-1
step "the refusal carries the driver's error" expect_exit 1 "Bad address" "$ctl" probe mtty/mtty-2 mtty/mtty-1
step "temporary instances are gone" assert_eq "$before" "$(mdevs)"
step "available_instances restored" assert_eq "$avail" "$(available)"
step "the daemon lists them as before" assert_eq "$avail" \
	"$("$ctl" types | awk '$1 == "mtty" && $2 == "mtty-1" { a = $(NF - 1) } $1 == "mtty" && $2 == "mtty-2" { b = $(NF - 1) } END { print a, b }')"

step "after probing: the verdict is mtty's" expect_exit 0 "compatible (basis: probe)" "$ctl" compat "$X" "$Y"
step "device to device, other type: refused by the driver" expect_exit 1 "incompatible (basis: probe)" \
	"$ctl" probe "$X" "$Z"
step "X and Z untouched by the probes" assert_eq "running running" \
	"$("$tool" state "$X" 2>&1) $("$tool" state "$Z" 2>&1)"

# a device someone holds is never touched: a temporary instance stands in
"$tool" hold "$X" 60 >/dev/null 2>&1 &
holder=$!
step "X is held by another process" wait_for "ls -l /proc/$holder/fd 2>/dev/null | grep -q /dev/vfio/" 10
before=$(mdevs)
step "probe of the held X goes through a temporary mtty-2" expect_exit 0 "compatible (basis: probe)" \
	"$ctl" probe "$X" "$Y"
step "the daemon said so" eval "grep -q '$X is in use: probing a temporary mtty-2 instance' \$VM_RESULTS/vfiomigd.log"
step "its temporary instance is gone" assert_eq "$before" "$(mdevs)"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

step "FindTargets for mtty-2: idle mtty-2 devices and the mtty-2 type" eval \
	"out=\$(\"$ctl\" targets --type mtty-2) && vm_log \"\$out\" &&
	 [[ \$out == *$X* && \$out == *$Y* && \$out == *mtty/mtty-2* ]] &&
	 [[ \$out != *$Z* && \$out != *mtty/mtty-1* ]]"
step "targets of X leave X out" eval "! \"$ctl\" targets $X | grep -q $X"

step "probe results are persisted for this kernel" eval "grep -q \"Kernel=\$(uname -r)\" $STATE_DIRECTORY/probes.conf"
step "restart vfiomigd" eval "stop_vfiomigd && start_vfiomigd"
step "the verdict survives the restart" expect_exit 0 "compatible (basis: probe)" "$ctl" compat "$X" "$Y"
