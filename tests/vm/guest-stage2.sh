#!/bin/sh
# Stage 2 of the VM tier guest: PID 1 after switch_root, run by the busybox
# copied to /run/vfiomig-vm. Runs the scenario described by the job file that
# run-vm.sh put into the results share, records its result there, powers off.
# prepare.sh copies this file into the initramfs; it never runs on the host.

BB=/run/vfiomig-vm/busybox
R=/mnt/results
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

json_str() { printf '"%s"' "$(printf '%s' "$1" | $BB sed 's/[\\"]/\\&/g')"; }

# finish RC DETAIL: record the result for run-vm.sh and power off.
finish() {
	verdict=FAIL
	[ "$1" = 0 ] && verdict=PASS
	printf '{"result": "%s", "rc": %s, "scenario": %s, "kernel": "%s", "detail": %s}\n' \
		"$verdict" "$1" "$(json_str "${VM_SCENARIO:-}")" "$($BB uname -r)" \
		"$(json_str "$2")" >"$R/result.json"
	echo "$1" >"$R/rc"
	echo "VFIOMIG-VM-RESULT: $verdict (rc=$1${2:+, $2})"
	$BB sync
	$BB poweroff -f
	# poweroff -f cannot fail in practice; if it does, panic=-1 plus QEMU's
	# -no-reboot turn the death of PID 1 into a QEMU exit.
	exit 1
}

# Paths under these directories are hidden in the guest by fresh tmpfs mounts;
# the host's own view of them stays reachable under /mnt/host.
unmask() {
	case $1 in
	/tmp | /tmp/* | /var/tmp | /var/tmp/* | /run | /run/* | /var/lib/vfiomig | /var/lib/vfiomig/* | /dev/shm | /dev/shm/*)
		echo "/mnt/host$1"
		;;
	*) echo "$1" ;;
	esac
}

[ -r "$R/.vm-job" ] || finish 125 "no job file in the results share"
# shellcheck disable=SC1091  # written by run-vm.sh
. "$R/.vm-job"
export VFIOMIG_VM=1 VFIOMIG_VM_RESULTS=$R
VM_SCENARIO=$(unmask "$VM_SCENARIO")
[ -n "${VFIOMIG_BUILDDIR:-}" ] && VFIOMIG_BUILDDIR=$(unmask "$VFIOMIG_BUILDDIR")
[ -n "${VFIOMIG_SRCDIR:-}" ] && VFIOMIG_SRCDIR=$(unmask "$VFIOMIG_SRCDIR")
[ -e "$VM_SCENARIO" ] || finish 125 "scenario $VM_SCENARIO not found in the guest"

$BB hostname vfiomig-vm
$BB ip link set lo up 2>/dev/null
# dbus-daemon and sd-bus want a machine id; containers often have none.
[ -s /etc/machine-id ] || $BB tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id

echo "vfiomig-vm: running $VM_SCENARIO $*"
cd / || finish 125 "cd /"
run=$VM_SCENARIO
[ -x "$run" ] || run="bash $VM_SCENARIO"
# The subshell's exit status is lost in the pipe, hence the rc file.
# shellcheck disable=SC2086  # $run is deliberately split
{
	$run "$@" </dev/null 2>&1
	echo $? >/run/vfiomig-vm/rc
} | $BB tee "$R/scenario.log"
rc=$(cat /run/vfiomig-vm/rc 2>/dev/null)
$BB dmesg >"$R/dmesg.log"
finish "${rc:-125}" ""
