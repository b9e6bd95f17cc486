#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier, issue 3: vfiomigd's kernel backend against Linux 6.12 and mtty.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-registry.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
sysfs_types=/sys/class/mdev_bus/mtty/mdev_supported_types
A=$(cat /proc/sys/kernel/random/uuid)
B=$(cat /proc/sys/kernel/random/uuid)
C=$(cat /proc/sys/kernel/random/uuid)
D=$(cat /proc/sys/kernel/random/uuid)

# AVAILABLE column of "vfiomigctl types" for an mtty type (before DESCRIPTION, "-" for mtty)
listed_available() { "$ctl" types | awk -v t="$1" '$1 == "mtty" && $2 == t { print $(NF - 1) }'; }
kernel_available() { cat "$sysfs_types/$1/available_instances"; }
listed() { "$ctl" list | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' '; }
field() { "$ctl" show "$1" | awk -v k="$2:" '$1 == k { print $2 }'; }
no_vfio_fds() {
	local fds
	fds=$(ls -l "/proc/$VFIOMIGD_PID/fd" 2>&1 | grep /dev/vfio || true)
	[[ -z $fds ]] || { vm_log "vfiomigd holds: $fds"; return 1; }
}

step "system bus with the project's policy" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug
step "Backend is kernel" assert_eq 's "kernel"' \
	"$(busctl --system get-property org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager Backend)"

step "ListTypes: mtty-1 has 24 instances" assert_eq 24 "$(listed_available mtty-1)" mtty-1
step "ListTypes: mtty-2 has 12 instances" assert_eq 12 "$(listed_available mtty-2)" mtty-2
step "busctl ListTypes names both types" assert_contains \
	"$(busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager ListTypes)" \
	'"mtty" "mtty-1" "Single port serial" 24'
step "no devices yet" assert_eq "" "$(listed)"

"$ctl" monitor >"$VM_RESULTS/monitor.out" 2>"$VM_RESULTS/monitor.err" &
monitor=$!
step "monitor subscribed" wait_for "grep -q Monitoring $VM_RESULTS/monitor.err" 10

step "CreateMdev mtty-2 via vfiomigctl" assert_eq "$A" "$("$ctl" create-mdev mtty mtty-2 "$A")"
step "CreateMdev mtty-2 via busctl" assert_eq "s \"$B\"" \
	"$(busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager CreateMdev 'sssa{sv}' mtty mtty-2 "$B" 0)"
step "CreateMdev mtty-1" assert_eq "$C" "$("$ctl" create-mdev mtty mtty-1 "$C")"
step "the kernel has all three" eval "test -d /sys/bus/mdev/devices/$A && test -d /sys/bus/mdev/devices/$B &&
	test -d /sys/bus/mdev/devices/$C"
step "ListDevices shows all three" assert_eq "$(printf '%s\n' "$A" "$B" "$C" | sort | tr '\n' ' ')" "$(listed)"
for u in "$A" "$B" "$C"; do
	group=$(basename "$(readlink "/sys/bus/mdev/devices/$u/iommu_group")")
	step "$u: parent mtty" assert_eq mtty "$(field "$u" Parent)"
	step "$u: iommu group $group" assert_eq "$group" "$(field "$u" IommuGroup)"
	step "$u: device node" eval "node=\$(field $u VfioDevNode) && [[ \$node == /dev/vfio/$group ]] && test -c \$node"
	step "$u: driver mtty" assert_eq mtty "$(field "$u" Driver)"
done
step "$A has type mtty-2" assert_eq mtty-2 "$(field "$A" MdevType)"
step "$C has type mtty-1" assert_eq mtty-1 "$(field "$C" MdevType)"
# 24 ports in all: two mtty-2 and one mtty-1 use 5
step "mtty-1 available drops to 19" assert_eq "19 19" "$(kernel_available mtty-1) $(listed_available mtty-1)"
step "mtty-2 available drops to 9" assert_eq "9 9" "$(kernel_available mtty-2) $(listed_available mtty-2)"
step "enumeration opened no device" no_vfio_fds

# An mdev the kernel creates behind the daemon's back arrives by uevent.
step "mdev created through sysfs directly" mdev_create mtty mtty-1 "$D"
step "daemon learns of it from the uevent" wait_for "[[ \$(listed) == *$D* ]]" 10
step "mdev removed through sysfs directly" mdev_remove "$D"
step "daemon learns of the removal" wait_for "[[ \$(listed) != *$D* ]]" 10

step "monitor saw every add" eval "for u in $A $B $C $D; do grep -q \"^added  *\$u\" $VM_RESULTS/monitor.out || exit 1; done"
step "monitor saw the uevent removal" eval "grep -q \"^removed  *$D\" $VM_RESULTS/monitor.out"

step "RemoveMdev $C" "$ctl" remove-mdev "$C"
step "kernel removed it" eval "! test -e /sys/bus/mdev/devices/$C"
step "registry removed it" assert_eq "$(printf '%s\n' "$A" "$B" | sort | tr '\n' ' ')" "$(listed)"
# A and B (two ports each) remain: 20 of 24 ports free
step "mtty-1 available back to 20" assert_eq "20 20" "$(kernel_available mtty-1) $(listed_available mtty-1)"
step "monitor saw the removal" wait_for "grep -q \"^removed  *$C\" $VM_RESULTS/monitor.out" 5

# Bad requests against the real kernel: clear errors, nothing changes.
before=$(ls /sys/bus/mdev/devices | sort | tr '\n' ' ')
step "unknown type" expect_exit 3 "mdev parent mtty has no type mtty-7" "$ctl" create-mdev mtty mtty-7
step "duplicate UUID: the kernel's EEXIST" expect_exit 5 "already exists" "$ctl" create-mdev mtty mtty-1 "$A"
step "duplicate UUID via busctl" expect_exit 1 "already exists" busctl --system call org.vfiomig1 /org/vfiomig1 \
	org.vfiomig1.Manager CreateMdev 'sssa{sv}' mtty mtty-2 "$A" 0
step "malformed UUID" expect_exit 2 "not a valid UUID" "$ctl" create-mdev mtty mtty-1 not-a-uuid
step "unknown parent" expect_exit 3 "No mdev parent device nope" "$ctl" create-mdev nope mtty-1
step "remove unknown device" expect_exit 3 "No device" "$ctl" remove-mdev "$D"
step "kernel unchanged by bad requests" assert_eq "$before" "$(ls /sys/bus/mdev/devices | sort | tr '\n' ' ')"
step "daemon still serving" assert_eq "$(printf '%s\n' "$A" "$B" | sort | tr '\n' ' ')" "$(listed)"
step "still no device opened" no_vfio_fds

# A restarted daemon enumerates what the kernel has.
kill "$monitor" 2>/dev/null
step "stop vfiomigd" stop_vfiomigd
step "start vfiomigd again" start_vfiomigd
step "enumeration finds the existing mdevs" assert_eq "$(printf '%s\n' "$A" "$B" | sort | tr '\n' ' ')" "$(listed)"
step "and the kernel's availability" assert_eq "10 10" "$(kernel_available mtty-2) $(listed_available mtty-2)"
step "enumeration opened no device" no_vfio_fds
step "clean up" eval "$ctl remove-mdev $A && $ctl remove-mdev $B"
step "all instances back" assert_eq "24 12" "$(listed_available mtty-1) $(listed_available mtty-2)"
