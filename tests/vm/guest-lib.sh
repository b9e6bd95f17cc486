# shellcheck shell=bash
# Helpers for VM tier scenarios; source it from a bash scenario running inside
# the guest (see README.md):   . "$VFIOMIG_SRCDIR/tests/vm/guest-lib.sh"
#
# Steps and assertions record failures and carry on, unless
# VFIOMIG_VM_FAIL_FAST=1. At exit the library stops what it started, prints a
# summary and turns the exit status into 1 if anything failed. A scenario that
# sets its own EXIT trap must call vm_finish from it.
#
# Caution: bash ignores `set -e` inside a function whose status is tested, so a
# function run by `step` must chain its commands with && or return early.

VM_RESULTS=${VFIOMIG_VM_RESULTS:-/tmp}
VM_BUS_SOCKET=/run/dbus/system_bus_socket
VFIOMIGD=${VFIOMIGD:-${VFIOMIG_BUILDDIR:-}/daemon/vfiomigd}
VM_DBUS_PID=
VFIOMIGD_PID=
STEP_RC=0
vm_passed=0
vm_failed=()
vm_in_step=

# Lines carry the guest uptime so that they line up with kernel messages.
vm_log() {
	local up
	read -r up _ </proc/uptime
	printf '[%8s] %s\n' "$up" "$*"
}

vm_record_failure() {
	vm_failed+=("$1")
	vm_log "FAIL: $1"
	if [[ ${VFIOMIG_VM_FAIL_FAST:-0} == 1 ]]; then
		vm_log "aborting (VFIOMIG_VM_FAIL_FAST=1)"
		exit 1
	fi
}

# step DESCRIPTION COMMAND [ARGS...]: runs the command in this shell (so it
# may set variables), logs PASS/FAIL. Returns 0 so that `set -e` scenarios go
# on; the command's status is in $STEP_RC.
step() {
	local name=$1
	shift
	vm_log "---- $name"
	STEP_RC=0
	vm_in_step=1
	"$@" || STEP_RC=$?
	vm_in_step=
	if ((STEP_RC == 0)); then
		vm_passed=$((vm_passed + 1))
		vm_log "PASS: $name"
	else
		vm_record_failure "$name (exit $STEP_RC)"
	fi
	return 0
}

# Inside a step an assertion only explains itself (the step records the
# failure); at top level it records the failure too.
vm_assert_failed() {
	if [[ -n $vm_in_step ]]; then
		vm_log "  assertion failed: $1"
	else
		vm_record_failure "$1"
	fi
	return 1
}

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
	[[ $2 == "$1" ]] || vm_assert_failed "${3:-value}: expected '$1', got '$2'"
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
	[[ $1 == *"$2"* ]] || vm_assert_failed "${3:-output} does not contain '$2': '$1'"
}

# wait_for 'SHELL COMMAND' TIMEOUT_SECONDS (fractions allowed): polls every
# 0.1 s until the command succeeds.
wait_for() {
	local deadline
	deadline=$((${EPOCHREALTIME/./} + $(awk -v t="${2:-10}" 'BEGIN { printf "%d", t * 1000000 }')))
	until eval "$1"; do
		if ((${EPOCHREALTIME/./} > deadline)); then
			vm_log "  timed out after ${2:-10} s waiting for: $1"
			return 1
		fi
		sleep 0.1
	done
}

# load_modules MODULE...: loads modules that /init does not (prepare.sh's
# ondemand_modules, e.g. vduse), with what they depend on, from the
# decompressed tree run-vm.sh names in VFIOMIG_VM_MODULES.
load_modules() {
	if [[ -z ${VFIOMIG_VM_MODULES:-} ]]; then
		vm_log "  load_modules: VFIOMIG_VM_MODULES is not set (run-vm.sh sets it)"
		return 1
	fi
	modprobe -d "$VFIOMIG_VM_MODULES" -a "$@"
}

vm_bus_call() {
	busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus "$@"
}

# name_has_owner NAME: whether NAME is owned on the system bus.
name_has_owner() {
	[[ $(vm_bus_call NameHasOwner s "$1" 2>/dev/null) == "b true" ]]
}

# start_system_bus [EXTRA_CONFIG_FILE...]: a system bus on the standard socket
# with the project's policy, a default policy like Debian's system.conf
# (anyone may connect, nobody may own names or call methods unless a policy
# says so) and root allowed everything. Logs to $VM_RESULTS/dbus-daemon.log.
start_system_bus() {
	local conf=/tmp/vfiomig-system-bus.conf f
	local policy=${VFIOMIG_SRCDIR:-}/dbus/org.vfiomig1.conf
	mkdir -p /run/dbus
	{
		cat <<-'EOF'
			<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
			 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
			<busconfig>
			  <type>system</type>
			  <listen>unix:path=/run/dbus/system_bus_socket</listen>
			  <auth>EXTERNAL</auth>
			  <policy context="default">
			    <allow user="*"/>
			    <deny own="*"/>
			    <deny send_type="method_call"/>
			    <allow send_type="signal"/>
			    <allow send_requested_reply="true" send_type="method_return"/>
			    <allow send_requested_reply="true" send_type="error"/>
			    <allow receive_type="method_call"/>
			    <allow receive_type="method_return"/>
			    <allow receive_type="error"/>
			    <allow receive_type="signal"/>
			    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
			    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
			    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
			    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
			  </policy>
			  <policy user="root">
			    <allow own="*"/>
			    <allow send_destination="*"/>
			    <allow receive_sender="*"/>
			  </policy>
		EOF
		if [[ -r $policy ]]; then
			echo "  <include>$policy</include>"
		else
			vm_log "start_system_bus: warning: $policy not found, bus runs without it" >&2
		fi
		for f; do echo "  <include>$f</include>"; done
		echo "</busconfig>"
	} >"$conf"
	# dbus-daemon prints its address once it accepts connections: far cheaper
	# to poll for than running busctl (~0.2 s per exec under TCG).
	rm -f /run/dbus/vm-address
	dbus-daemon --config-file="$conf" --nofork --nopidfile --nosyslog --print-address=3 \
		</dev/null >>"$VM_RESULTS/dbus-daemon.log" 2>&1 3>/run/dbus/vm-address &
	VM_DBUS_PID=$!
	export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$VM_BUS_SOCKET
	wait_for "test -s /run/dbus/vm-address || ! kill -0 $VM_DBUS_PID 2>/dev/null" 10
	if ! vm_bus_call GetId >/dev/null; then
		vm_log "start_system_bus: dbus-daemon did not come up; $VM_RESULTS/dbus-daemon.log says:"
		tail -n 20 "$VM_RESULTS/dbus-daemon.log" >&2
		return 1
	fi
}

# vm_stop_pid PID NAME [TIMEOUT]: SIGTERM, SIGKILL after TIMEOUT (default 10)
# seconds; returns the process's exit status.
vm_stop_pid() {
	local pid=$1 name=$2 rc=0
	# bash reaps its background children at once (keeping their status for
	# `wait`), so kill -0 fails as soon as the process is gone.
	if kill -TERM "$pid" 2>/dev/null && ! wait_for "! kill -0 $pid 2>/dev/null" "${3:-10}"; then
		vm_log "$name ignored SIGTERM for ${3:-10} s, killing it"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

stop_system_bus() {
	[[ -n $VM_DBUS_PID ]] || return 0
	vm_stop_pid "$VM_DBUS_PID" dbus-daemon
	VM_DBUS_PID=
}

# start_vfiomigd [ARGS...]: runs $VFIOMIGD (default the build tree's daemon)
# in the background, output to $VM_RESULTS/vfiomigd.log, and waits until it
# owns org.vfiomig1. Its pid is $VFIOMIGD_PID.
start_vfiomigd() {
	[[ -x $VFIOMIGD ]] || {
		vm_log "start_vfiomigd: $VFIOMIGD is not an executable (VFIOMIG_BUILDDIR or VFIOMIGD)"
		return 1
	}
	echo "==== $(date +%T) $VFIOMIGD --idle-timeout=0 $*" >>"$VM_RESULTS/vfiomigd.log"
	"$VFIOMIGD" --idle-timeout=0 "$@" </dev/null >>"$VM_RESULTS/vfiomigd.log" 2>&1 &
	VFIOMIGD_PID=$!
	wait_for "name_has_owner org.vfiomig1 || ! kill -0 $VFIOMIGD_PID 2>/dev/null" "${VFIOMIGD_START_TIMEOUT:-20}"
	if ! name_has_owner org.vfiomig1; then
		local rc=0
		kill -0 "$VFIOMIGD_PID" 2>/dev/null && kill -KILL "$VFIOMIGD_PID"
		wait "$VFIOMIGD_PID" || rc=$?
		VFIOMIGD_PID=
		vm_log "start_vfiomigd: daemon did not take org.vfiomig1 (exit status $rc); log tail:"
		tail -n 20 "$VM_RESULTS/vfiomigd.log" >&2
		return 1
	fi
}

# stop_vfiomigd [TIMEOUT]: SIGTERM and wait; returns the daemon's exit status.
stop_vfiomigd() {
	[[ -n $VFIOMIGD_PID ]] || return 0
	local rc=0
	vm_stop_pid "$VFIOMIGD_PID" vfiomigd "${1:-10}" || rc=$?
	VFIOMIGD_PID=
	return "$rc"
}

# mdev_create PARENT TYPE_ID [UUID]: prints the new mdev's UUID.
mdev_create() {
	local uuid=${3:-$(cat /proc/sys/kernel/random/uuid)}
	echo "$uuid" >"/sys/class/mdev_bus/$1/mdev_supported_types/$2/create" && echo "$uuid"
}

# mtty_create VAR TYPE_ID: a new mtty instance, its UUID in VAR.
mtty_create() {
	local uuid
	uuid=$(mdev_create mtty "$2") && printf -v "$1" %s "$uuid"
}

# expect_exit EXIT-CODE TEXT CMD...: CMD exits so and says TEXT (stdout
# or stderr).
expect_exit() {
	local want=$1 text=$2 out rc=0
	shift 2
	out=$("$@" 2>&1) || rc=$?
	vm_log "  $* -> $rc: $out"
	assert_eq "$want" "$rc" "exit status of $*" && assert_contains "$out" "$text" "output of $*"
}

# mdev_remove UUID
mdev_remove() {
	echo 1 >"/sys/bus/mdev/devices/$1/remove"
}

# ---- PCI functions (machine q35-iommu). sysfs is read with the read
# builtin: every fork costs under TCG.

# pci_find VENDOR:DEVICE: prints the address of the first PCI function
# with these IDs (hex, with or without 0x, e.g. 1234:11e8); fails if none.
pci_find() {
	local want=${1,,} d v i
	want=${want//0x/}
	for d in /sys/bus/pci/devices/*; do
		{ read -r v <"$d/vendor" && read -r i <"$d/device"; } || continue
		if [[ ${v#0x}:${i#0x} == "$want" ]]; then
			echo "${d##*/}"
			return 0
		fi
	done
	vm_log "pci_find: no PCI function $1"
	return 1
}

# pci_driver ADDR: prints the driver bound to a PCI function, or nothing.
pci_driver() {
	local link
	link=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) || return 0
	echo "${link##*/}"
}

# pci_bind_vfio ADDR: binds a PCI function to vfio-pci (driver_override,
# unbinding it from its driver first, then drivers_probe). Succeeds once
# vfio-pci holds it and its vfio-dev/ exists.
pci_bind_vfio() {
	local dev=/sys/bus/pci/devices/$1 drv
	[[ -e $dev ]] || {
		vm_log "pci_bind_vfio: no PCI function $1"
		return 1
	}
	drv=$(pci_driver "$1")
	[[ $drv == vfio-pci ]] && return 0
	echo vfio-pci >"$dev/driver_override" || return 1
	if [[ -n $drv ]]; then
		echo "$1" >"$dev/driver/unbind" || return 1
	fi
	echo "$1" >/sys/bus/pci/drivers_probe
	drv=$(pci_driver "$1")
	[[ $drv == vfio-pci && -d $dev/vfio-dev ]] || {
		vm_log "pci_bind_vfio: $1 is bound to '${drv:-nothing}' after drivers_probe"
		return 1
	}
}

# pci_unbind ADDR: unbinds a PCI function from vfio-pci and clears its
# driver_override; it stays bound to nothing.
pci_unbind() {
	local dev=/sys/bus/pci/devices/$1
	if [[ $(pci_driver "$1") == vfio-pci ]]; then
		echo "$1" >/sys/bus/pci/drivers/vfio-pci/unbind || return 1
	fi
	echo >"$dev/driver_override"
}

# pci_group ADDR: prints the IOMMU group of a PCI function.
pci_group() {
	local link
	link=$(readlink "/sys/bus/pci/devices/$1/iommu_group") || return 1
	echo "${link##*/}"
}

vm_finish() {
	local rc=$?
	trap - EXIT
	stop_vfiomigd 10 || true
	stop_system_bus || true
	vm_log "SUMMARY: $vm_passed passed, ${#vm_failed[@]} failed"
	if ((${#vm_failed[@]})); then
		printf '  failed: %s\n' "${vm_failed[@]}"
		((rc != 0)) || rc=1
	fi
	exit "$rc"
}
trap vm_finish EXIT
