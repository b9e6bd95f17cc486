#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier: `virsh restore` of a domain whose mtty mdev is gone, through
# vfiomig-libvirt-hook in a real libvirtd (Debian 12: libvirt 9.0) with QEMU
# 10 from bookworm-backports (7.2 cannot save a VFIO device) on Linux 6.12.
# vfiomigd records the mdev's identity in the running domain's live
# metadata, which `virsh save` keeps in the image; on `restore begin` the
# hook has vfiomigd create the mdev again under the same UUID with a type
# that takes its state, QEMU loads the UART registers into it, and the
# mdev goes again with the domain. When no instantiable type can take the
# state, the restore fails with vfiomig's one line and nothing is created.
# Runs in the guest:   tests/vm/run-vm.sh tests/vm/scenario-restore.sh
# vm-needs: qemu-backports
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"
# shellcheck source-path=SCRIPTDIR source=guest-libvirt.sh
. "${BASH_SOURCE[0]%/*}/guest-libvirt.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
hook=$VFIOMIG_BUILDDIR/client/vfiomig-libvirt-hook
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
types=/sys/class/mdev_bus/mtty/mdev_supported_types
dom=vfiomig-restore
image=/var/tmp/$dom.save
# the wrapper prepare-qemu.sh made on the host (run-vm.sh passes it)
qemu=${VFIOMIG_VM_QEMU_BACKPORTS:-}
U=''
timings=()

missing=()
[[ -n $qemu ]] || missing+=("VFIOMIG_VM_QEMU_BACKPORTS (run-vm.sh prepares QEMU from bookworm-backports)")
for p in /usr/sbin/libvirtd /usr/bin/virsh ${qemu:+"$qemu"} "$hook" \
	/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so; do
	[[ -e $p ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	why="missing: ${missing[*]}"
	if [[ ${CI:-} == true ]]; then
		vm_record_failure "$why"
		exit 1
	fi
	echo "SKIP: scenario-restore cannot run here because $why"
	exit 77
fi

# timed WHAT COMMAND...: runs it, notes how long it took
timed() {
	local what=$1 t0=$EPOCHREALTIME rc=0
	shift
	"$@" || rc=$?
	timings+=("$what $(since "$t0") s")
	vm_log "  $what took $(since "$t0") s"
	return "$rc"
}
shown() { "$ctl" show "$1" | sed -n "s/^ *$2: //p"; }
mdevs() { (cd /sys/bus/mdev/devices && printf '%s ' *); }
available() { echo "$(cat $types/mtty-1/available_instances) $(cat $types/mtty-2/available_instances)"; }

# Nested TCG, 32 MiB, no disk: it sits in SeaBIOS, which maps the mdev's
# BARs (I/O ports). QEMU 10 with libvirt 9.0 needs ACPI, and on 6.12 (no
# iommufd, no device dirty tracking in mtty) VFIO migration only with
# these two properties of the vfio-pci device.
write_domain() {
	cat >/run/$dom.xml <<-EOF
		<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
		  <name>$dom</name>
		  <memory unit='MiB'>32</memory>
		  <vcpu>1</vcpu>
		  <os><type arch='x86_64' machine='pc'>hvm</type></os>
		  <features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>
		  <devices>
		    <emulator>$qemu</emulator>
		    <controller type='usb' model='none'/>
		    <memballoon model='none'/>
		    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
		      <source><address uuid='$U'/></source>
		    </hostdev>
		  </devices>
		  <qemu:override>
		    <qemu:device alias='hostdev0'>
		      <qemu:frontend>
		        <qemu:property name='enable-migration' type='string' value='on'/>
		        <qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/>
		      </qemu:frontend>
		    </qemu:device>
		  </qemu:override>
		</domain>
	EOF
}

qemu_log_tail() {
	vm_log "  QEMU log:"
	tail -n 20 "/var/log/libvirt/qemu/$dom.log" 2>/dev/null
	return 1
}

define_and_start() {
	timed "virsh define (QEMU 10's capabilities probed)" virsh define "/run/$dom.xml" >/dev/null &&
		{ timed "virsh start" virsh start "$dom" || qemu_log_tail; }
}

# The registers as the domain sees them: QEMU's monitor reads the I/O
# ports of the mdev's BARs (BAR0: port 1, BAR1: port 2) through VFIO.
# HMP answers end in CRLF; every virsh costs about a second here.
hmp() { virsh qemu-monitor-command --hmp "$dom" "$1" | tr -d '\r'; }
inb() { hmp "i /b $(printf '0x%x' "$1")" | sed -n 's/.*= *//p'; }
domain_sees() {
	local bars bar0 bar1
	bars=$(hmp 'info pci' | awk '/^ *Bus / { b0 = b1 = "" } $1 == "BAR0:" && $2 == "I/O" { b0 = $4 }
		$1 == "BAR1:" && $2 == "I/O" { b1 = $4 } /id "hostdev0"/ { print b0, b1; exit }') &&
		read -r bar0 bar1 <<<"$bars" && [[ $bar0 == 0x* && $bar1 == 0x* ]] ||
		vm_assert_failed "no I/O BARs of hostdev0 in QEMU's info pci: '$bars'" || return 1
	vm_log "  hostdev0: BAR0 at $bar0, BAR1 at $bar1"
	assert_eq "$1 $2 $3" "$(inb $((bar0 + 7))) $(inb $((bar0 + 3))) $(inb $((bar1 + 7)))" \
		"SCR, LCR of port 1, SCR of port 2 seen by $dom"
}
set_registers() {
	"$tool" regs "$U" set 7 0x5a && "$tool" regs "$U" set 3 0x1b && "$tool" regs "$U" --region 1 set 7 0xa5
}
fill_mtty() {
	local i
	for ((i = 0; i < 11; i++)); do
		mdev_create mtty mtty-2 >/dev/null || return 1
	done
	mdev_create mtty mtty-1 >/dev/null
}

live_metadata() {
	local out
	out=$(virsh metadata --live "$dom" urn:vfiomig:domain:1) && vm_log "  $out" &&
		assert_contains "$out" "key=\"$U\" type=\"mtty-2\"" "live metadata"
}
# Another writer's element in our namespace (here, one listing nothing):
# libvirt's metadata event has vfiomigd put its own back, once.
overwritten_metadata() {
	virsh metadata --live "$dom" urn:vfiomig:domain:1 --key vfiomig --set '<devices/>' >/dev/null &&
		wait_for "(( \$(grep -c 'libvirt domain $dom: recorded the identities of 1 devices' \$VM_RESULTS/vfiomigd.log) == 2 ))" 10 &&
		live_metadata
}
saved_metadata() {
	local out
	out=$(virsh save-image-dumpxml "$1" | grep "$U") &&
		assert_contains "$out" "<vfiomig:device key=\"$U\" type=\"mtty-2\"" "saved XML"
}

# The hook refuses with one line, which virsh shows.
refused_restore() {
	local out rc=0
	out=$(virsh restore "$image" 2>&1) || rc=$?
	vm_log "  virsh restore -> $rc: $out"
	assert_eq 1 "$rc" "exit status of virsh restore" &&
		assert_contains "$out" "vfiomig: $dom: $U: no mdev type here can take the state of mtty-2"
}

libvirt_finish() {
	local rc=$?
	libvirt_stop
	((${#timings[@]} == 0)) || vm_log "timings: $(printf '%s; ' "${timings[@]}")"
	(exit "$rc")
	vm_finish
}
trap libvirt_finish EXIT

step "system bus" start_system_bus
step "libvirt's directories empty, vfiomig-libvirt-hook in qemu.d" libvirt_dirs "$hook"
step "qemu.conf and libvirtd.conf in the guest overlay" write_config
step "libvirtd starts" start_libvirtd
# while libvirtd brings up its drivers; mtty keeps registers across opens
step "mtty-2 U for the domain" mtty_create U mtty-2
step "U: scratch = 0x5a, LCR = 0x1b, port 2 scratch = 0xa5" set_registers
step "libvirtd answers on qemu:///system" libvirtd_answers
[[ $STEP_RC == 0 ]] || exit 1
step "vfiomigd on the kernel backend, default libvirt URI" start_vfiomigd --log-level=debug
step "vfiomigd connected to libvirt" \
	wait_for "grep -q 'libvirt: qemu:///system, 0 running domains' \$VM_RESULTS/vfiomigd.log" 10

step "domain XML: U as an mdev hostdev, QEMU 10 as emulator" write_domain
step "virsh start $dom" define_and_start
[[ $STEP_RC == 0 ]] || exit 1
step "its QEMU is QEMU 10" eval "[[ \$(readlink /proc/\$(qemu_pid)/exe) == \${qemu%/*}/root/usr/bin/qemu-system-x86_64 ]]"
step "vfiomigd records U's identity in the live metadata" timed "metadata written" \
	wait_for "grep -q 'libvirt domain $dom: recorded the identities of 1 devices' \$VM_RESULTS/vfiomigd.log" 20
step "virsh metadata --live: U is an mtty-2" live_metadata
step "vfiomigctl domain: U's identity comes from the domain" eval \
	"\"$ctl\" --json domain $dom | grep -q '\"recorded\" *: *true'"
step "metadata overwritten by another: vfiomigd writes it again" overwritten_metadata

step "virsh save $dom" timed "virsh save" virsh save "$dom" "$image"
step "$dom is shut off" assert_eq "shut off" "$(virsh domstate "$dom" 2>&1)"
step "the saved XML carries U's identity" saved_metadata "$image"
step "vfiomigd lets go of U" wait_for "[[ \$(shown $U Domain) == - ]]" 10
step "vfiomigctl remove-mdev U" "$ctl" remove-mdev "$U"
step "U is gone" eval "! test -e /sys/bus/mdev/devices/$U"

step "virsh restore: the hook makes U again" timed "virsh restore" virsh restore "$image"
[[ $STEP_RC == 0 ]] || qemu_log_tail
step "vfiomigd created U for the restore" \
	eval "grep -q 'Created mdev $U of type .*mtty-2 for incoming domain $dom' \$VM_RESULTS/vfiomigd.log"
step "U is an mtty-2 again" assert_eq mtty-2 "$(basename "$(readlink /sys/bus/mdev/devices/"$U"/mdev_type)")"
step "$dom runs" assert_eq running "$(virsh domstate "$dom" 2>&1)"
step "the restored $dom sees the registers set before the save" domain_sees 0x5a 0x1b 0xa5
# A destroy runs the stopped and release hooks, which call vfiomigd while
# libvirtd holds the domain: vfiomigd forgets a stopped domain without
# calling libvirtd back, so nothing waits for anything (it once took 52 s,
# every hook call timing out).
step "virsh destroy $dom" timed "virsh destroy" virsh destroy "$dom"
step "the destroy did not wait on the hooks" eval "[[ \${timings[-1]} =~ ^'virsh destroy '([0-9]+) && \${BASH_REMATCH[1]} -lt 10 ]]"
step "U went with the domain" wait_for "! test -e /sys/bus/mdev/devices/$U" 10
step "vfiomigd says why" eval "grep -q 'Removed mdev $U, made for an incoming domain that is gone' \$VM_RESULTS/vfiomigd.log"

# mtty's 24 ports are shared by its types: leave one, so that only an
# mtty-1 (incompatible with U's mtty-2 state) can be made.
step "fill mtty: 11 mtty-2 and 1 mtty-1" fill_mtty
step "only mtty-1 can be instantiated" assert_eq "1 0" "$(available)"
before=$(mdevs)
step "virsh restore is refused with vfiomig's line" timed "refused virsh restore" refused_restore
step "nothing was created" assert_eq "$before|1 0" "$(mdevs)|$(available)"
step "no U" eval "! test -e /sys/bus/mdev/devices/$U"
step "$dom did not start" assert_eq "shut off" "$(virsh domstate "$dom" 2>&1)"
