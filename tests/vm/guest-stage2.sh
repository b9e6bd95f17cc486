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
	case $1 in
	0) verdict=PASS ;;
	77) verdict=SKIP ;;
	*) verdict=FAIL ;;
	esac
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
# The guest's view of the host's VFIOMIG_VM_SHARE, if run-vm.sh shared one.
if $BB grep -q ' /mnt/share 9p ' /proc/mounts; then
	export VFIOMIG_VM_SHARE=/mnt/share
else
	unset VFIOMIG_VM_SHARE
fi
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
set -- "$VM_SCENARIO" "$@"
[ -x "$VM_SCENARIO" ] || set -- bash "$@"

# Output goes to the console and to scenario.log through tee. Processes the
# scenario leaves behind would hold the pipe open and keep tee (and us)
# waiting, so they are killed once it ends; tee ignores that SIGTERM.
out=/run/vfiomig-vm/out
$BB mkfifo "$out"
(
	trap '' TERM
	exec $BB tee "$R/scenario.log" <"$out"
) &
teepid=$!
"$@" </dev/null >"$out" 2>&1
rc=$?

# Sets $left to the user-space processes besides us and tee (kernel threads
# and zombies have no /proc/PID/exe).
leftovers() {
	left=
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = 1 ] || [ "$p" = "$teepid" ] || [ ! -e "/proc/$p/exe" ] || left="$left $p"
	done
}
kill -TERM -1 2>/dev/null
i=0
leftovers
while [ -n "$left" ] && [ $i -lt 20 ]; do
	$BB sleep 0.1
	i=$((i + 1))
	leftovers
done
if [ -n "$left" ]; then
	echo "vfiomig-vm: killing processes that ignored SIGTERM:$left"
	# shellcheck disable=SC2086  # a list of pids
	kill -KILL $left 2>/dev/null
fi
wait "$teepid"
$BB dmesg >"$R/dmesg.log"
finish "$rc" ""
