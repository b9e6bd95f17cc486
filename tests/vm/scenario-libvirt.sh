#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier: vfiomigd next to a real libvirtd (Debian 12: libvirt 9.0, QEMU
# 7.2) on Linux 6.12. A nested TCG domain holds an mtty mdev: vfiomigd
# names the domain (Device.Domain, Busy, Holder with QEMU's real pid),
# refuses to migrate the device with org.vfiomig1.Error.Busy and leaves its
# state alone. A second mdev hot-plugged into the running domain is named
# on libvirt's device-added event and freed on its device-removed event.
# Once the domain is destroyed libvirt's events free the device and it
# migrates. Runs in the guest:
#   tests/vm/run-vm.sh tests/vm/scenario-libvirt.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"
# shellcheck source-path=SCRIPTDIR source=guest-libvirt.sh
. "${BASH_SOURCE[0]%/*}/guest-libvirt.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
dom=vfiomig-vm1
qemu=/usr/bin/qemu-system-x86_64
U='' OTHER='' H=''

# Missing pieces of the host (the guest runs the host's programs): a
# failure in CI, else a skip.
missing=()
for p in /usr/sbin/libvirtd /usr/bin/virsh "$qemu" /usr/bin/gdbus \
	/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so; do
	[[ -e $p ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	why="missing in the host root: ${missing[*]} (tests/deps.sh test installs them)"
	if [[ ${CI:-} == true ]]; then
		vm_record_failure "$why"
		exit 1
	fi
	echo "SKIP: scenario-libvirt cannot run here because $why"
	exit 77
fi

# sd_bus_path_encode(): a leading digit and every byte but [A-Za-z0-9]
# become _xx.
dev_path() {
	local s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		if [[ $c == [A-Za-z] || ($c == [0-9] && i -gt 0) ]]; then
			out+=$c
		else
			printf -v c '_%02x' "'$c"
			out+=$c
		fi
	done
	echo "/org/vfiomig1/device/$out"
}
# prop DEV NAME: a Device property as busctl prints it, e.g. 's "vm1"'
prop() {
	busctl --system get-property org.vfiomig1 "$(dev_path "$1")" org.vfiomig1.Device "$2" 2>&1
}
shown() { "$ctl" show "$1" | sed -n "s/^ *$2: //p"; }

# Nested TCG with a small translation cache, no disk, no USB, no balloon:
# it sits in SeaBIOS, running, with the mtty mdev assigned. Hot-unplug
# needs the guest's consent on every bus but one: with no OS to eject the
# device over ACPI (i440fx, and q35 since QEMU 6.1), virsh detach-device
# returns after libvirt's 5 s wait and the device stays. Native PCIe
# hotplug into a root port whose slot the guest never powered on unplugs
# at once, so: q35, ACPI hotplug off, a spare root port for the hot-plug.
write_domain() {
	cat >/run/$dom.xml <<-EOF
		<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
		  <name>$dom</name>
		  <memory unit='MiB'>32</memory>
		  <vcpu>1</vcpu>
		  <os><type arch='x86_64' machine='q35'>hvm</type></os>
		  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
		  <devices>
		    <emulator>$qemu</emulator>
		    <controller type='pci' index='0' model='pcie-root'/>
		    <controller type='pci' index='1' model='pcie-root-port'/>
		    <controller type='pci' index='2' model='pcie-root-port'/>
		    <controller type='usb' model='none'/>
		    <memballoon model='none'/>
		    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
		      <source><address uuid='$U'/></source>
		      <address type='pci' bus='1' slot='0'/>
		    </hostdev>
		  </devices>
		  <qemu:commandline>
		    <qemu:arg value='-global'/>
		    <qemu:arg value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/>
		  </qemu:commandline>
		</domain>
	EOF
}

write_hostdev() {
	cat >"/run/hostdev-$1.xml" <<-EOF
		<hostdev mode='subsystem' type='mdev' model='vfio-pci'>
		  <source><address uuid='$1'/></source>
		</hostdev>
	EOF
}

# The first define has libvirtd probe QEMU's capabilities.
start_domain() {
	local t0=$EPOCHREALTIME took
	virsh define "/run/$dom.xml" >/dev/null || return 1
	took=$(since "$t0") t0=$EPOCHREALTIME
	if virsh start "$dom"; then
		vm_log "  virsh define took $took s, virsh start $(since "$t0") s"
		return 0
	fi
	vm_log "  QEMU log:"
	tail -n 20 "/var/log/libvirt/qemu/$dom.log" 2>/dev/null
	return 1
}

vfio_group() { basename "$(readlink "/sys/bus/mdev/devices/$1/iommu_group")"; }

# qemu_holds MDEV: the pid libvirt recorded is a live qemu-system-x86_64
# with /dev/vfio/GROUP of MDEV open.
qemu_holds() {
	local pid group
	pid=$(qemu_pid) && group=$(vfio_group "$1") &&
		assert_eq "$qemu" "$(readlink "/proc/$pid/exe")" "QEMU pid $pid's executable" &&
		{ [[ $(readlink "/proc/$pid/fd/"*) == *"/dev/vfio/$group"* ]] ||
			vm_assert_failed "QEMU pid $pid has no /dev/vfio/$group open"; }
}

# busy_refusal FROM TO HELD: Migrate is refused with Error.Busy naming
# HELD's domain.
busy_refusal() {
	local out rc=0
	out=$(gdbus call --system --dest org.vfiomig1 --object-path /org/vfiomig1 \
		--method org.vfiomig1.Manager.Migrate "$1" "$2" '@a{sv} {}' 2>&1) || rc=$?
	vm_log "  gdbus call Migrate $1 $2 -> $rc: $out"
	assert_eq 1 "$rc" "exit status of gdbus call Migrate" &&
		assert_contains "$out" "org.vfiomig1.Error.Busy: $3 is held by domain $dom"
}

# H, a second mdev, hot-plugged into the running domain
new_h() { mtty_create H mtty-1 && write_hostdev "$H"; }
h_held() {
	qemu_holds "$H" && assert_eq "s \"$dom\" s \"$dom\"" "$(prop "$U" Domain) $(prop "$H" Domain)" "Domain of U and H"
}
# QEMU closed H's group, and the kernel lets it open
h_free() {
	local group
	group=$(vfio_group "$H") || return 1
	if [[ $(readlink "/proc/$pid/fd/"*) == *"/dev/vfio/$group"* ]]; then
		vm_assert_failed "QEMU pid $pid still has /dev/vfio/$group open"
		return 1
	fi
	"$tool" regs "$H" get 7 >/dev/null
}
remove_h() { mdev_remove "$H" && H=''; }

libvirt_finish() {
	local rc=$?
	libvirt_stop
	(exit "$rc")
	vm_finish
}
trap libvirt_finish EXIT

step "system bus" start_system_bus
step "libvirt's directories empty in the guest" libvirt_dirs
step "qemu.conf and libvirtd.conf in the guest overlay" write_config
step "libvirtd starts" start_libvirtd
# while libvirtd brings up its drivers
step "mtty-1 U (for the domain) and OTHER" eval 'mtty_create U mtty-1 && mtty_create OTHER mtty-1'
step "U: scratch = 0x5a (must survive)" "$tool" regs "$U" set 7 0x5a
step "U: LCR = 0x1b (must survive)" "$tool" regs "$U" set 3 0x1b
step "OTHER starts blank" assert_eq 0x00 "$("$tool" regs "$OTHER" get 7 2>&1)"
step "libvirtd answers on qemu:///system" libvirtd_answers
[[ $STEP_RC == 0 ]] || exit 1

step "vfiomigd on the kernel backend, default libvirt URI" start_vfiomigd --log-level=debug
step "vfiomigd connected to libvirt before the domain starts" \
	wait_for "grep -q 'libvirt: qemu:///system, 0 running domains' \$VM_RESULTS/vfiomigd.log" 10
step "U: no domain before the domain starts" assert_eq 's "" b false' "$(prop "$U" Domain) $(prop "$U" Busy)"

step "domain XML with U as an mdev hostdev" write_domain
step "virsh start $dom (nested TCG, QEMU 7.2)" start_domain
[[ $STEP_RC == 0 ]] || exit 1
step "$dom runs" assert_eq running "$(virsh domstate "$dom" 2>&1)"
step "its QEMU holds U's VFIO group" qemu_holds "$U"
pid=$(qemu_pid)
step "the kernel refuses a second open of U" expect_exit 1 "[EBUSY]" "$tool" state "$U"

t0=$EPOCHREALTIME
step "Device.Domain of U follows the start event" wait_for "[[ \$(prop $U Domain) == 's \"$dom\"' ]]" 10
vm_log "  Domain set $(since "$t0") s after virsh start returned"
step "U is Busy" assert_eq "b true" "$(prop "$U" Busy)"
step "OTHER has no domain" assert_eq 's "" b false' "$(prop "$OTHER" Domain) $(prop "$OTHER" Busy)"
step "vfiomigctl list: U's domain" assert_eq "$dom" "$("$ctl" list | awk -v u="$U" '$1 == u { print $NF }')"
step "vfiomigctl show U: Domain" assert_eq "$dom" "$(shown "$U" Domain)"
step "after GetDevice, Holder names the domain and QEMU's pid" \
	assert_eq "s \"domain $dom (qemu pid $pid)\"" "$(prop "$U" Holder)"
step "vfiomigctl show U: Holder" assert_eq "domain $dom (qemu pid $pid)" "$(shown "$U" Holder)"

step "vfiomigctl migrate U OTHER: Busy, naming the domain" \
	expect_exit 5 "$U is held by domain $dom" "$ctl" migrate "$U" "$OTHER"
step "busctl Migrate U OTHER: refused, naming the domain" expect_exit 1 "$U is held by domain $dom" \
	busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager Migrate 'ssa{sv}' "$U" "$OTHER" 0
step "the error is org.vfiomig1.Error.Busy" busy_refusal "$U" "$OTHER" "$U"
step "migrate OTHER into U: Busy too" expect_exit 5 "$U is held by domain $dom" "$ctl" migrate "$OTHER" "$U"
step "remove-mdev U: Busy" expect_exit 5 "$U is held by domain $dom" "$ctl" remove-mdev "$U"
step "save U: Busy" expect_exit 5 "$U is held by domain $dom" "$ctl" save "$U" u-state
step "$dom still runs, same QEMU" assert_eq "running $pid" "$(virsh domstate "$dom" 2>&1) $(qemu_pid)"
step "QEMU still holds U" qemu_holds "$U"
step "OTHER untouched" assert_eq "running 0x00" "$("$tool" state "$OTHER" 2>&1) $("$tool" regs "$OTHER" get 7 2>&1)"

# Hot-plug: only libvirt's device-added and device-removed events tell
# vfiomigd of H (no lifecycle event comes, and nothing re-lists domains).
step "mtty-1 H, to hot-plug into $dom" new_h
step "H: no domain yet" wait_for "[[ \$(prop $H Domain) == 's \"\"' ]]" 5
t0=$EPOCHREALTIME
step "virsh attach-device $dom H --live" virsh attach-device "$dom" "/run/hostdev-$H.xml" --live
step "Device.Domain of H follows the device-added event" wait_for "[[ \$(prop $H Domain) == 's \"$dom\"' ]]" 10
vm_log "  Domain set $(since "$t0") s after attach-device began"
step "its QEMU holds H, U still $dom's" h_held
step "migrate H OTHER: Error.Busy, naming the domain" busy_refusal "$H" "$OTHER" "$H"
step "vfiomigctl show H: Domain and Holder" assert_eq "$dom domain $dom (qemu pid $pid)" \
	"$(shown "$H" Domain) $(shown "$H" Holder)"
step "vfiomigd records H's identity with the domain" \
	wait_for "grep -q 'libvirt domain $dom: recorded the identities of 2 devices' \$VM_RESULTS/vfiomigd.log" 10
t0=$EPOCHREALTIME
step "virsh detach-device $dom H --live" virsh detach-device "$dom" "/run/hostdev-$H.xml" --live
step "Device.Domain of H clears on the device-removed event" wait_for "[[ \$(prop $H Domain) == 's \"\"' ]]" 10
vm_log "  Domain cleared $(since "$t0") s after detach-device began"
step "H is not Busy, U still $dom's" assert_eq "b false s \"$dom\"" "$(prop "$H" Busy) $(prop "$U" Domain)"
step "vfiomigd drops H from the identities it records" \
	wait_for "((\$(grep -c 'libvirt domain $dom: recorded the identities of 1 devices' \$VM_RESULTS/vfiomigd.log) == 2))" 10
step "QEMU let go of H: it opens" h_free
pending_rc=$STEP_RC
# vfiomigd logs each listing of all domains; events read one domain
step "domains listed once, when vfiomigd connected" \
	assert_eq 1 "$(grep -c 'libvirt: qemu:///system, .* running domains' "$VM_RESULTS/vfiomigd.log")"
# Removing an mdev that is open waits until it is closed: one the domain
# kept goes once the domain is gone, below.
((pending_rc != 0)) || step "remove H" remove_h

t0=$EPOCHREALTIME
step "virsh destroy $dom" virsh destroy "$dom"
step "Device.Domain of U clears on the stop event" wait_for "[[ \$(prop $U Domain) == 's \"\"' ]]" 10
vm_log "  Domain cleared $(since "$t0") s after virsh destroy began"
# before any GetDevice(): the holder found while the domain ran is gone too
step "U is not Busy, no Holder" assert_eq 'b false s ""' "$(prop "$U" Busy) $(prop "$U" Holder)"
[[ -z $H ]] || step "remove H, which the domain held to its end" remove_h
step "$dom is shut off, its QEMU gone" eval "[[ \$(virsh domstate $dom 2>&1) == 'shut off' ]] && ! test -e /proc/$pid/exe"
step "U's state survived the domain: running, registers kept" assert_eq "running 0x5a 0x1b" \
	"$("$tool" state "$U" 2>&1) $("$tool" regs "$U" get 7 2>&1) $("$tool" regs "$U" get 3 2>&1)"
step "vfiomigctl show U: no holder" assert_eq "- -" "$(shown "$U" Domain) $(shown "$U" Holder)"

step "vfiomigctl migrate U OTHER now works" "$ctl" migrate "$U" "$OTHER"
step "OTHER: registers came from U" assert_eq "0x5a 0x1b" \
	"$("$tool" regs "$OTHER" get 7 2>&1) $("$tool" regs "$OTHER" get 3 2>&1)"
step "U stopped, OTHER runs" assert_eq "stop running" "$("$tool" state "$U" 2>&1) $("$tool" state "$OTHER" 2>&1)"
step "undefine $dom" virsh undefine "$dom"
