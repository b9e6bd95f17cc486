#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier: the kernel backend (daemon/backend/vfio.c) against Linux 6.12 and mtty,
# driven by tests/vm/vfio-tool: opening through the IOMMU group, the
# migration uAPI v2 (flags, states, sessions, data size, pre-copy info),
# a save/load round trip that carries UART registers from one mtty to
# another, the kernel's refusals, reset, EBUSY from a second owner, the
# cdev path's fall-back, and that every fd is O_CLOEXEC and released.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-vfio.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
work=$VM_RESULTS/vfio
mkdir -p "$work"
OUT='' ERR='' RC=0
A='' B='' C=''

# vt ARGS...: runs vfio-tool; $RC, $OUT (stdout lines joined by '|'), $ERR.
vt() {
	RC=0
	OUT=$("$tool" "$@" 2>"$work/stderr") || RC=$?
	OUT=${OUT//$'\n'/|}
	ERR=$(<"$work/stderr")
	vm_log "  vfio-tool $* -> $RC: $OUT${ERR:+ | stderr: $ERR}"
}
# ok EXPECTED-STDOUT ARGS...: exit 0 and exactly that output
ok() {
	local want=$1
	shift
	vt "$@"
	assert_eq 0 "$RC" "exit status" && assert_eq "$want" "$OUT" "output"
}
# fails ERROR-TEXT ARGS...: exit 1 and stderr contains the text
fails() {
	local text=$1
	shift
	vt "$@"
	assert_eq 1 "$RC" "exit status" && assert_contains "$ERR" "$text" "stderr"
}
# all_in TEXT NEEDLE...: each needle occurs in TEXT
all_in() {
	local text=$1 n
	shift
	for n; do assert_contains "$text" "$n" || return 1; done
}
group_of() { basename "$(readlink "/sys/bus/mdev/devices/$1/iommu_group")"; }

step "vfio-tool was built" test -x "$tool"
step "mtty-2 A (source)" mtty_create A mtty-2
step "mtty-2 B (target)" mtty_create B mtty-2
step "mtty-1 C (wrong type)" mtty_create C mtty-1
gA=$(group_of "$A")

# --- the uAPI on a fresh device
step "flags: stop-copy,p2p,pre-copy" ok "stop-copy,p2p,pre-copy" flags "$A"
step "state: running initially" ok running state "$A"
step "data size: 96 for mtty-2" ok 96 datasize "$A"
step "data size: 60 for mtty-1" ok 60 datasize "$C"
step "walk RUNNING -> RUNNING_P2P -> STOP -> RUNNING_P2P -> RUNNING" \
	ok "running-p2p|stop|running-p2p|running" set "$A" running-p2p stop running-p2p running
# Combination arcs: the kernel walks through RUNNING_P2P itself.
step "combination RUNNING -> STOP -> RUNNING" ok "stop|running" set "$A" STOP RUNNING
# A data fd exactly on the arcs that open a session; the pre-copy session
# goes on into STOP_COPY with the same fd.
step "RUNNING -> PRE_COPY opens a session, kept into STOP_COPY" \
	ok "pre-copy +fd|pre-copy-p2p|stop-copy|stop|running" set "$A" pre-copy pre-copy-p2p stop-copy stop running
step "RUNNING_P2P -> PRE_COPY_P2P opens a session" \
	ok "running-p2p|pre-copy-p2p +fd|running-p2p|running" set "$A" running-p2p pre-copy-p2p running-p2p running
step "STOP -> STOP_COPY opens a session" ok "stop|stop-copy +fd|stop|running" set "$A" stop stop-copy stop running
step "STOP -> RESUMING opens a session" ok "stop|resuming +fd" set "$A" stop resuming
step "RESUMING with no data: reset gives RUNNING" ok running reset "$A"

# --- failed SETs: the error, then GET tells where the device is
blocked() {
	fails "[EINVAL]" set "$A" stop stop-copy pre-copy &&
		assert_eq "stop|stop-copy +fd" "$OUT" "states reached" &&
		assert_contains "$ERR" "set pre-copy (device is now stop-copy)"
}
step "STOP_COPY -> PRE_COPY is refused with EINVAL" blocked
step "GET after the failed SET: still stop-copy" ok stop-copy state "$A"
step "STOP_COPY -> STOP -> RUNNING" ok "stop|running" set "$A" stop running
step "ERROR cannot be requested" fails "set error (device is now running)" set "$A" error

# --- registers move with the state: A -> file -> B
step "A: scratch register (BAR0+7) = 0x5a" ok "" regs "$A" set 7 0x5a
step "A: LCR (BAR0+3) = 0x1b" ok "" regs "$A" set 3 0x1b
step "A: second port scratch (BAR1+7) = 0xa5" ok "" regs "$A" --region 1 set 7 0xa5
step "A: scratch register reads back" ok 0x5a regs "$A" get 7
step "A: LCR reads back" ok 0x1b regs "$A" get 3
step "B: fresh scratch register is 0" ok 0x00 regs "$B" get 7
save_a() {
	vt save "$A" "$work/a.bin" && assert_eq 0 "$RC" "exit status" &&
		all_in "$OUT" "precopy-info initial 24 dirty 0" "precopy-bytes 24" \
			"precopy-info-after initial 0 dirty 0" "stopcopy-bytes 72" "total 96"
}
step "save A: PRE_COPY holds the 24-byte header, STOP_COPY the rest" save_a
step "saved stream is 96 bytes" assert_eq 96 "$(stat -c %s "$work/a.bin")"
step "A is stopped after the save" ok stop state "$A"
step "A back to running" ok running set "$A" running
save_c() {
	vt save "$C" "$work/c.bin" && assert_eq 0 "$RC" "exit status" &&
		all_in "$OUT" "precopy-bytes 24" "stopcopy-bytes 36" "total 60"
}
step "save C (mtty-1): 60 bytes" save_c
step "C back to running" ok running set "$C" running
step "load A's stream into B" ok "written 96|running" load "$B" "$work/a.bin"
step "B: scratch register came from A" ok 0x5a regs "$B" get 7
step "B: LCR came from A" ok 0x1b regs "$B" get 3
step "B: second port came from A" ok 0xa5 regs "$B" --region 1 get 7
step "B runs" ok running state "$B"

# --- an mtty-2 stream into an mtty-1: refused at write time
# In one write the length check comes first (96 > 60 bytes): ENOMEM.
# With the header on its own the header check refuses it: EFAULT.
step "mtty-2 stream into mtty-1 in one write: ENOMEM" \
	fails "writing the stream at offset 0 (device is now resuming): Cannot allocate memory [ENOMEM]" load "$C" "$work/a.bin"
step "reset brings C back to RUNNING" ok running reset "$C"
step "mtty-2 header into mtty-1: EFAULT" \
	fails "writing the stream at offset 0 (device is now resuming): Bad address [EFAULT]" load "$C" "$work/a.bin" --chunk 24
step "C is stuck in RESUMING" ok resuming state "$C"
step "reset brings C back to RUNNING again" ok running reset "$C"
step "C loads its own stream" ok "written 60|running" load "$C" "$work/c.bin"

# --- too few bytes: RESUMING -> STOP fails, the device stays RESUMING.
# Only a reset gets it out. Never SET a device that an earlier process left
# in RESUMING: closing the device fd drops mtty's resuming file, and
# RESUMING -> STOP then dereferences NULL in mtty_load_state (6.12 oopses).
step "30 of 96 bytes: RESUMING -> STOP fails with EINVAL" \
	fails "set stop after resuming (device is now resuming): Invalid argument [EINVAL]" load "$B" "$work/a.bin" --bytes 30
step "B is stuck in RESUMING" ok resuming state "$B"
step "reset from RESUMING gives RUNNING" ok running reset "$B"
step "B: registers survived the failed load" ok 0x5a regs "$B" get 7

# The driver's own header check is no protection: 96 bytes of
# garbage in one write fail with EFAULT, yet stay buffered, and RESUMING ->
# STOP loads them. Only the daemon's stream CRC keeps garbage out.
garbage() {
	{ printf 'not-an-mtty-stream-0123'; head -c 73 /dev/urandom; } >"$work/garbage.bin" &&
		ok "write failed at offset 0: Bad address [EFAULT]|running" load "$B" "$work/garbage.bin" --force &&
		ok "0x$(od -An -tx1 -j31 -N1 "$work/garbage.bin" | tr -d ' ')" regs "$B" get 7
}
step "garbage refused with EFAULT is loaded anyway by RESUMING -> STOP" garbage

# --- one owner at a time
"$tool" hold "$A" 60 >"$work/hold.out" 2>"$work/hold.err" &
holder=$!
step "vfio-tool hold A" wait_for "grep -q holding $work/hold.out" 10
busy() {
	fails "[EBUSY]" state "$A" &&
		assert_contains "$ERR" "$A: IOMMU group $gA is in use by another process"
}
step "second open of A: EBUSY naming device and group" busy
step "B is not affected" ok running state "$B"
step "holder exits on SIGTERM" vm_stop_pid "$holder" vfio-tool 10
step "A opens again once released" ok running state "$A"

# --- fds: all O_CLOEXEC, none left after close
fds() {
	vt fds "$A" && assert_eq 0 "$RC" "exit status" &&
		all_in "$OUT" " /dev/vfio/vfio cloexec" " /dev/vfio/$gA cloexec" " anon_inode:[vfio-device] cloexec" \
			"left after close: 0" &&
		{ [[ $OUT != *inherit* ]] || vm_assert_failed "an fd without O_CLOEXEC: $OUT"; }
}
step "handle holds container, group and device, all O_CLOEXEC; close releases them" fds

# --- the cdev path: no IOMMUFD in this kernel, so only its fall-backs run
step "fake /dev/iommu (a null device)" mknod /dev/iommu c 1 3
step "cdev node missing (ENOENT): falls back to the group" \
	ok running --node /dev/vfio/devices/vfio99 state "$A"
mkdir -p /dev/vfio/devices
step "cdev node that is no VFIO device" mknod /dev/vfio/devices/vfio98 c 1 3
cdev_enotty() {
	vt --debug --node /dev/vfio/devices/vfio98 state "$A" && assert_eq 0 "$RC" && assert_eq running "$OUT" &&
		assert_contains "$ERR" "binding /dev/vfio/devices/vfio98 to /dev/iommu" &&
		assert_contains "$ERR" "trying the IOMMU group"
}
step "BIND_IOMMUFD fails with ENOTTY: falls back to the group" cdev_enotty
# Major 240 is reserved for local use and unregistered: open gives ENXIO,
# which is no reason to try the group.
step "cdev node of no driver" mknod /dev/vfio/devices/vfio97 c 240 0
step "ENXIO from the cdev: no fall-back, the error names device and step" \
	fails "$A: opening /dev/vfio/devices/vfio97: No such device or address [ENXIO]" \
	--node /dev/vfio/devices/vfio97 state "$A"
rm -f /dev/iommu /dev/vfio/devices/vfio97 /dev/vfio/devices/vfio98
step "without /dev/iommu the cdev is not tried" ok running --node /dev/vfio/devices/vfio97 state "$A"

# --- errors name the device and the step
gone=$(cat /proc/sys/kernel/random/uuid)
step "unknown device" fails "/sys/bus/mdev/devices/$gone" state "$gone"
clean_up() { mdev_remove "$A" && mdev_remove "$B" && mdev_remove "$C"; }
step "clean up" clean_up
step "all instances back" assert_eq 24 "$(cat /sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/available_instances)"
