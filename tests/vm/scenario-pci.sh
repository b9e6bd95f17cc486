#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vm-machine: q35-iommu
# VM tier: physical PCI functions on vfio-pci behind an emulated Intel
# IOMMU (edu, e1000e, virtio-net-pci). vfiomigd's kernel backend lists
# them with their own IOMMU groups without opening them (a group held
# before the daemon starts stays usable), follows unbind and bind at run
# time, refuses to migrate, save or probe a function without VFIO
# migration (NotMigratable) or one another process holds (Busy, naming
# it), and leaves the functions bound and usable afterwards.
# vfio-tool iommu-info records what VFIO_IOMMU_GET_INFO says (its width
# follows VFIOMIG_VM_AW_BITS); the daemon's sysfs-derived Device.Iommu
# must match it.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-pci.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
# what systemd's StateDirectory=/RuntimeDirectory= would hand the service
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
work=$VM_RESULTS/pci
mkdir -p "$work"
aw=${VFIOMIG_VM_AW_BITS:-48}
MGR=(org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager)
EDU='' E1K='' VNET=''
declare -A group=() path=()

mgr() { busctl --system call "${MGR[@]}" "$@"; }
# listed: the names ListDevices returns, space-separated and sorted
listed() {
	local out
	out=$(mgr ListDevices) || return 1
	grep -o '"[0-9a-f]\{4\}:[0-9a-f]\{2\}:[0-9a-f]\{2\}\.[0-7]"\|"[0-9a-f-]\{36\}"' <<<"$out" | tr -d '"' | sort | tr '\n' ' '
}
is_listed() { [[ " $(listed) " == *" $1 "* ]]; }
not_listed() { [[ " $(listed) " != *" $1 "* ]]; }
# show DEV: vfiomigctl show into the associative array SHOW (property -> text)
declare -A SHOW=()
show() {
	local k v out
	SHOW=()
	out=$("$ctl" show "$1") || return 1
	while read -r k v; do SHOW[${k%:}]=$v; done <<<"$out"
}

# --- the functions, each on vfio-pci in a group of its own
find_functions() {
	EDU=$(pci_find 1234:11e8) && E1K=$(pci_find 8086:10d3) &&
		{ VNET=$(pci_find 1af4:1041 2>/dev/null) || VNET=$(pci_find 1af4:1000); } &&
		vm_log "  edu $EDU, e1000e $E1K, virtio-net $VNET"
}
step "find edu (1234:11e8), e1000e (8086:10d3), virtio-net (1af4:1041 or 1af4:1000)" find_functions
FUNCS=("$EDU" "$E1K" "$VNET")
for f in "${FUNCS[@]}"; do
	step "$f was bound to '$(pci_driver "$f")', now to vfio-pci" pci_bind_vfio "$f"
	group[$f]=$(pci_group "$f")
done
own_groups() {
	local f g seen=" "
	for f in "${FUNCS[@]}"; do
		g=${group[$f]}
		[[ -n $g && $seen != *" $g "* ]] || { vm_assert_failed "$f: group '$g' empty or shared"; return 1; }
		seen+="$g "
		assert_eq "$f" "$(ls "/sys/kernel/iommu_groups/$g/devices")" "devices of group $g" || return 1
		[[ -c /dev/vfio/$g ]] || vm_assert_failed "no /dev/vfio/$g for $f" || return 1
	done
	vm_log "  groups: edu ${group[$EDU]}, e1000e ${group[$E1K]}, virtio-net ${group[$VNET]}"
}
step "each function has an IOMMU group of its own and /dev/vfio/N" own_groups

# --- what VFIO_IOMMU_GET_INFO says, before anything else touches the groups
declare -A iommu=()
iommu_info() {
	local f out
	for f in "${FUNCS[@]}"; do
		out=$("$tool" iommu-info "${group[$f]}" 2>&1) || { vm_log "  vfio-tool iommu-info: $out"; return 1; }
		printf '%s\n' "$out" >"$work/iommu-info.$f"
		vm_log "  $f (group ${group[$f]}): ${out//$'\n'/ | }"
		iommu[$f]=${out%%$'\n'*}
	done
}
step "vfio-tool iommu-info of each group (recorded in pci/iommu-info.*)" iommu_info
step "IOVA width is $aw bits (VFIOMIG_VM_AW_BITS)" assert_contains "${iommu[$EDU]:-}" "width=$aw "
step "the MSI window is no IOVA" assert_contains "${iommu[$EDU]:-}" "ranges=0x0-0xfedfffff,0xfef00000-"
step "type1 reports its migration (dirty tracking) capability" \
	assert_contains "$(<"$work/iommu-info.$EDU")" "migration-cap pgsizes=0x1000"

# --- a group held before the daemon starts: enumeration must not disturb it
"$tool" hold-group "${group[$EDU]}" 120 >"$work/hold.out" 2>"$work/hold.err" &
holder=$!
step "vfio-tool hold-group holds edu's group" wait_for "grep -q 'holding group' $work/hold.out" 10

step "system bus with the project's policy" start_system_bus
gdbus monitor --system --dest org.vfiomig1 >"$work/gdbus-monitor.out" 2>&1 &
gmon=$!
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug
"$ctl" monitor >"$work/monitor.out" 2>"$work/monitor.err" &
monitor=$!
step "vfiomigctl monitor subscribed" wait_for "grep -q Monitoring $work/monitor.err" 10

step "ListDevices lists the three functions" assert_eq "$(printf '%s\n' "${FUNCS[@]}" | sort | tr '\n' ' ')" "$(listed)"
list_line() {
	local line
	line=$("$ctl" list | awk -v f="$1" '$1 == f') &&
		assert_eq "$1 pci vfio-pci" "$(awk '{ print $1, $2, $3 }' <<<"$line")" "vfiomigctl list line"
}
dev_props() {
	local f=$1 out p
	show "$f" || return 1
	assert_eq pci "${SHOW[Kind]:-}" "$f Kind" && assert_eq vfio-pci "${SHOW[Driver]:-}" "$f Driver" &&
		assert_eq "${group[$f]}" "${SHOW[IommuGroup]:-}" "$f IommuGroup" &&
		assert_eq "/dev/vfio/${group[$f]}" "${SHOW[VfioDevNode]:-}" "$f VfioDevNode" &&
		assert_eq unknown "${SHOW[MigrationFlags]:-}" "$f MigrationFlags (not known before an open)" &&
		assert_eq unknown "${SHOW[MigrationSupport]:-}" "$f MigrationSupport (never opened)" &&
		assert_eq "/sys/devices/pci0000:00/$f" "${SHOW[SysfsPath]:-}" "$f SysfsPath" || return 1
	out=$(mgr GetDevice s "$f") || return 1
	p=${out#o \"} && p=${p%\"}
	path[$f]=$p
	out=$(busctl --system get-property org.vfiomig1 "$p" org.vfiomig1.Device Kind Driver IommuGroup VfioDevNode MigrationFlags) &&
		assert_eq "s \"pci\"|s \"vfio-pci\"|s \"${group[$f]}\"|s \"/dev/vfio/${group[$f]}\"|as 0" "${out//$'\n'/|}" \
			"busctl get-property $p"
}
for f in "${FUNCS[@]}"; do
	step "$f: vfiomigctl list says pci, vfio-pci" list_line "$f"
	step "$f: show and GetDevice: kind pci, driver vfio-pci, group and node as sysfs, no migration flags" dev_props "$f"
done

# --- edu is held: the daemon says by whom and refuses to touch it
no_open_in_log() {
	local hits
	hits=$(grep -E 'opened through IOMMU group|bound .* to iommufd' "$VM_RESULTS/vfiomigd.log" || true)
	[[ -z $hits ]] || vm_assert_failed "the daemon opened a device: $hits"
}
no_vfio_fds() {
	local fds
	fds=$(find "/proc/$VFIOMIGD_PID/fd" \( -lname '/dev/vfio/*' -o -lname '*vfio-device*' \) -printf ' %l')
	[[ -z $fds ]] || vm_assert_failed "vfiomigd holds:$fds"
}
step "enumeration opened nothing (daemon log)" no_open_in_log
step "enumeration opened nothing (daemon's fds)" no_vfio_fds
step "the holder is still there" kill -0 "$holder"
held() {
	show "$EDU" && assert_eq yes "${SHOW[Busy]:-}" "Busy" &&
		assert_eq "pid $holder (vfio-tool)" "${SHOW[Holder]:-}" "Holder" &&
		assert_eq "b true" "$(busctl --system get-property org.vfiomig1 "${path[$EDU]}" org.vfiomig1.Device Busy)" \
			"Busy through busctl"
}
step "edu: Busy, Holder names pid $holder (vfio-tool)" held

# refused METHOD ERROR-NAME TEXT ARGS...: gdbus (which prints the error's
# name) calls a Manager method that must fail with that error.
declare -A answered=()
refused() {
	local method=$1 name=$2 text=$3 out rc=0
	shift 3
	out=$(gdbus call --system --dest org.vfiomig1 --object-path /org/vfiomig1 \
		--method "org.vfiomig1.Manager.$method" "$@" '@a{sv} {}' 2>&1) || rc=$?
	vm_log "  $method $* -> $rc: $out"
	answered[${name##*.} $method]=$out
	((rc != 0)) || { vm_assert_failed "$method $* succeeded"; return 1; }
	assert_contains "$out" "GDBus.Error:$name: " "error of $method" && assert_contains "$out" "$text" "message of $method"
}
step "Migrate edu -> e1000e: Busy, naming the holder" refused Migrate org.vfiomig1.Error.Busy \
	"pid $holder (vfio-tool)" "$EDU" "$E1K"
step "Save edu: Busy, naming the holder" refused Save org.vfiomig1.Error.Busy \
	"pid $holder (vfio-tool)" "$EDU" pci-edu
step "Probe edu -> e1000e: Busy, naming the holder" refused Probe org.vfiomig1.Error.Busy \
	"pid $holder (vfio-tool)" "$EDU" "$E1K"
step "the device list is unchanged" assert_eq "$(printf '%s\n' "${FUNCS[@]}" | sort | tr '\n' ' ')" "$(listed)"
release() {
	kill -USR1 "$holder" && wait "$holder" && assert_contains "$(<"$work/hold.out")" "fds ok" "hold-group output"
}
step "the holder's fds still work after all that (fds ok)" release
not_busy() { show "$1" && assert_eq no "${SHOW[Busy]:-}" "Busy of $1"; }
step "edu: no longer Busy" not_busy "$EDU"

# --- no VFIO migration in plain vfio-pci: refused, the function stays usable.
# The first call that needs the flags opens edu and learns them; the
# calls after it are refused without an open (which would reset it).
opens() { grep -c 'opened through IOMMU group' "$VM_RESULTS/vfiomigd.log"; }
support() { show "$1" && assert_eq "$2" "${SHOW[MigrationSupport]:-}" "$1 MigrationSupport"; }
step "Save edu: NotMigratable" refused Save org.vfiomig1.Error.NotMigratable "no VFIO migration" "$EDU" pci-edu
step "  ... the message names edu" assert_contains "${answered[NotMigratable Save]:-}" "$EDU"
step "edu: MigrationSupport learned, none" support "$EDU" none
step "that open asked the kernel about edu's IOMMU, which agrees with sysfs" \
	grep -q "$EDU: the kernel's IOMMU agrees with sysfs: width=48\\|$EDU: the kernel's IOMMU agrees with sysfs: width=39" \
	"$VM_RESULTS/vfiomigd.log"
step "e1000e (another driver and IDs): still unknown" support "$E1K" unknown
n_opens=$(opens)
step "Migrate edu -> e1000e: NotMigratable" refused Migrate org.vfiomig1.Error.NotMigratable \
	"no VFIO migration" "$EDU" "$E1K"
step "  ... the message names edu" assert_contains "${answered[NotMigratable Migrate]:-}" "$EDU"
step "Probe edu -> e1000e: NotMigratable" refused Probe org.vfiomig1.Error.NotMigratable \
	"no VFIO migration" "$EDU" "$E1K"
step "  ... the message names edu" assert_contains "${answered[NotMigratable Probe]:-}" "$EDU"
step "known: refused without opening edu again" assert_eq "$n_opens" "$(opens)" "opens in the daemon's log"
refresh_e1k() {
	local out
	out=$("$ctl" refresh "$E1K" 2>&1)
	vm_log "  vfiomigctl refresh $E1K: $out"
	support "$E1K" none
}
step "vfiomigctl refresh e1000e learns none" refresh_e1k
step "no state file was written" eval "! ls $STATE_DIRECTORY/states/pci-edu* 2>/dev/null"
usable() {
	local f out
	for f in "$EDU" "$E1K"; do
		assert_eq vfio-pci "$(pci_driver "$f")" "$f driver" || return 1
		out=$("$tool" hold-group "${group[$f]}" 0 2>&1) || { vm_log "  $out"; return 1; }
		assert_contains "$out" "fds ok" "hold-group ${group[$f]}" || return 1
	done
}
step "edu and e1000e are still on vfio-pci and open (hold-group 0)" usable
step "the daemon let go of them" no_vfio_fds
step "the device list is still the same" assert_eq "$(printf '%s\n' "${FUNCS[@]}" | sort | tr '\n' ' ')" "$(listed)"

# --- unbind and bind at run time. How fast the daemon follows is timed by
# vfiomigctl monitor's output (it flushes every line; polling ListDevices
# costs ~0.3 s a call under TCG); ListDevices must agree afterwards.
monitor_count() { grep -c "^$1  *$2\$" "$work/monitor.out"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
n=$(monitor_count removed "$VNET")
step "unbind virtio-net from vfio-pci" pci_unbind "$VNET"
t0=$EPOCHREALTIME
step "the daemon drops virtio-net within a second" wait_for "(( \$(monitor_count removed $VNET) > $n ))" 1
vm_log "  reported after $(since "$t0") s"
step "ListDevices no longer lists virtio-net" not_listed "$VNET"
step "no /dev/vfio/${group[$VNET]} any more" eval "! test -e /dev/vfio/${group[$VNET]}"
n=$(monitor_count added "$VNET")
step "bind virtio-net again" pci_bind_vfio "$VNET"
t0=$EPOCHREALTIME
step "the daemon lists virtio-net again within a second" wait_for "(( \$(monitor_count added $VNET) > $n ))" 1
vm_log "  reported after $(since "$t0") s"
step "ListDevices lists virtio-net again" is_listed "$VNET"
step "virtio-net: properties as before" dev_props "$VNET"
# what an open taught is forgotten with the last device of its driver and
# IDs: a driver bound again may be another one
rebind_edu() {
	local n
	n=$(monitor_count added "$EDU")
	pci_unbind "$EDU" && pci_bind_vfio "$EDU" && wait_for "(( \$(monitor_count added $EDU) > $n ))" 5
}
step "edu unbound and bound again" rebind_edu
step "edu: MigrationSupport unknown again" support "$EDU" unknown
signals() {
	local out
	out=$(grep -F "DeviceRemoved ('$VNET'" "$work/gdbus-monitor.out") &&
		vm_log "  $out" && out=$(grep -F "DeviceAdded ('$VNET'" "$work/gdbus-monitor.out") && vm_log "  $out"
}
step "gdbus monitor saw DeviceRemoved and DeviceAdded of virtio-net" wait_for signals 5

# --- the IOMMU facet
facet() {
	local f out want
	for f in "${FUNCS[@]}"; do
		out=$(busctl --system get-property org.vfiomig1 "${path[$f]}" org.vfiomig1.Device Iommu) || return 1
		out=${out#s \"} && out=${out%\"}
		vm_log "  $f Iommu: $out"
		want=${iommu[$f]:-}
		[[ $out == "$want dirty=no" || $out == "$want dirty=yes" ]] ||
			vm_assert_failed "$f: Iommu '$out' is not vfio-tool's '$want' plus dirty=no|yes" || return 1
	done
}
step "Device.Iommu (from sysfs) is what VFIO_IOMMU_GET_INFO says, plus dirty=" facet

kill "$monitor" "$gmon" 2>/dev/null
step "every function still on vfio-pci" assert_eq "vfio-pci vfio-pci vfio-pci" \
	"$(pci_driver "$EDU") $(pci_driver "$E1K") $(pci_driver "$VNET")"
for k in "${!answered[@]}"; do vm_log "answer where $k was expected: ${answered[$k]}"; done
