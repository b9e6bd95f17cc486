#!/bin/bash
# VM tier smoke scenario (runs in the guest: tests/vm/run-vm.sh tests/vm/smoke.sh).
# Proves the infrastructure: mtty is loaded, an mdev can be created, shows up
# as a VFIO device and goes away again, and a system bus with the project's
# policy works. Starts vfiomigd too when it has been built.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

types=/sys/class/mdev_bus/mtty/mdev_supported_types

available() { cat "$types/$1/available_instances"; }

step "mtty parent registered" test -d /sys/class/mdev_bus/mtty
step "mtty-1 offers 24 instances" assert_eq 24 "$(available mtty-1)" available_instances
step "mtty-2 offers 12 instances" assert_eq 12 "$(available mtty-2)" available_instances
step "legacy VFIO container node" test -c /dev/vfio/vfio

uuid=$(cat /proc/sys/kernel/random/uuid)
dev=/sys/bus/mdev/devices/$uuid
step "create an mtty-2 mdev" mdev_create mtty mtty-2 "$uuid"
step "mdev on the mdev bus" test -d "$dev"
step "mdev has an iommu_group" test -L "$dev/iommu_group"
step "mdev is a VFIO device" compgen -G "$dev/vfio-dev/vfio*"
group=$(basename "$(readlink "$dev/iommu_group")")
step "group node /dev/vfio/$group" wait_for "test -c /dev/vfio/$group" 5
step "mtty-2 instances drop to 11" assert_eq 11 "$(available mtty-2)" available_instances
step "remove the mdev" mdev_remove "$uuid"
step "mdev gone" wait_for "! test -e $dev" 5
step "mtty-2 instances back to 12" assert_eq 12 "$(available mtty-2)" available_instances

step "start the system bus" start_system_bus
step "busctl reaches the bus" eval 'busctl --system list --no-pager | grep -q org.freedesktop.DBus'
# RequestName replies 1 (primary owner); the name is released when busctl exits.
step "root may own org.vfiomig1" assert_eq "u 1" \
	"$(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.vfiomig1 0 2>&1)"
if [[ -r $VFIOMIG_SRCDIR/dbus/org.vfiomig1.conf ]]; then
	step "user nobody cannot own org.vfiomig1" assert_contains \
		"$(setpriv --reuid=65534 --regid=65534 --clear-groups busctl --system call org.freedesktop.DBus \
			/org/freedesktop/DBus org.freedesktop.DBus RequestName su org.vfiomig1 0 2>&1)" "Access denied"
fi

if [[ -x $VFIOMIGD ]]; then
	step "vfiomigd takes org.vfiomig1" start_vfiomigd
	step "vfiomigd stops cleanly on SIGTERM" stop_vfiomigd
else
	vm_log "vfiomigd not built ($VFIOMIGD), not started"
fi
