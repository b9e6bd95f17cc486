#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier: the vDPA simulator (vdpa_sim_net, built out of tree by
# prepare.sh: Debian's 6.12 has none). Unlike VDUSE's, its management
# device vdpasim_net states the features it supports, so vfiomigd's vDPA
# type vdpasim_net/vdpa-net is judged on known features here: a source
# within them may go there, one with a feature it lacks may not, even with
# --include-unknown. Then two devices made over netlink with features of
# their own (S1 a subset of S2; iproute2 6.1's `vdpa dev add` cannot set
# features, vdpa-tool new can) must appear in vfiomigd by hotplug, S1 -> S2
# compatible and S2 -> S1 not, naming what S1 lacks, and S1 must leave the
# map when deleted. The kernel's replies are recorded (vdpasim/rec in the
# results, and in VFIOMIG_VM_SHARE when set) for tests/unit/data/vdpasim/.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-vdpasim.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vdpa-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
work=$VM_RESULTS/vdpasim
mkdir -p "$work"
sysvdpa=/sys/bus/vdpa
type_path=/org/vfiomig1/type/vdpasim_5fnet_2fvdpa_2dnet

# virtio feature bits (virtio spec; linux/virtio_net.h)
NET_F_MTU=$((1 << 3)) NET_F_MAC=$((1 << 5)) NET_F_MRG_RXBUF=$((1 << 15)) NET_F_STATUS=$((1 << 16))
F_VERSION_1=$((1 << 32)) F_ACCESS_PLATFORM=$((1 << 33))
FEAT_S1=$((F_VERSION_1 | F_ACCESS_PLATFORM | NET_F_MAC))
FEAT_S2=$((FEAT_S1 | NET_F_MTU | NET_F_STATUS))
hex() { printf '0x%x' "$1"; }

cleanup() {
	local rc=$? n
	for n in S1 S2; do
		[[ -e $sysvdpa/devices/$n ]] && "$tool" del "$n"
	done
	(exit "$rc")
	vm_finish
}
trap cleanup EXIT

# SUPPORTED: what vdpasim_net says it supports, as the netlink module
# parsed it (a number)
SUPPORTED=
mgmt() {
	local out block
	vm_log "  loaded: $(lsmod | awk '$1 ~ /^(vdpa|vringh|vhost_iotlb)/ { print $1 }' | sort | paste -sd' ')"
	out=$("$tool" mgmt) || return 1
	vm_log "  ${out//$'\n'/$'\n  '}"
	block=$(awk -v RS= '/(^|\n)name=vdpasim_net\n/' <<<"$out")
	# bit 1: virtio net; no other class
	assert_contains "$block" "classes=0x2" "vdpasim_net classes" || return 1
	SUPPORTED=$(sed -n 's/^supported_features=//p' <<<"$block")
	if [[ -z $SUPPORTED ]] || ((SUPPORTED == 0)); then
		vm_assert_failed "vdpasim_net states no supported features: '$block'"
		return 1
	fi
	# what the sources below rely on: the simulator has S2's features
	# and not MRG_RXBUF
	assert_eq 0 "$((FEAT_S2 & ~SUPPORTED))" "S2's features beyond vdpasim_net's" &&
		assert_eq 0 "$((SUPPORTED & NET_F_MRG_RXBUF))" "MRG_RXBUF in vdpasim_net's"
}
step "load vdpa_sim_net (out of tree, with vringh and vdpa_sim)" load_modules vdpa_sim_net
step "vdpa-tool mgmt: vdpasim_net, class net, its supported features" mgmt

step "system bus with the project's policy" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug --libvirt-uri=

type_vdpa() {
	busctl --system get-property org.vfiomig1 "$type_path" org.vfiomig1.MdevType Vdpa |
		sed -e 's/^s "//' -e 's/"$//'
}
dev_vdpa() {
	busctl --system get-property org.vfiomig1 "/org/vfiomig1/device/$1" org.vfiomig1.Device Vdpa |
		sed -e 's/^s "//' -e 's/"$//'
}

daemon_type() {
	local out
	out=$("$ctl" types) || return 1
	vm_log "  ${out//$'\n'/$'\n  '}"
	assert_eq "vdpasim_net vdpa-net" "$(awk '$1 == "vdpasim_net" { print $1, $2 }' <<<"$out")" "types" &&
		assert_eq "class=net offered=$(hex "$SUPPORTED") config=any" "$(type_vdpa)" "MdevType Vdpa"
}
step "vfiomigd: type vdpasim_net/vdpa-net offers vdpasim_net's features" daemon_type

# targets FACET [OPTION...]: TARGET, the vdpasim_net line of vfiomigctl
# targets for a source of that facet, as "kind target verdict basis"
TARGET=
targets() {
	local facet=$1 out
	shift
	out=$("$ctl" targets --type=vdpa "--vdpa=$facet" "$@" 2>&1)
	vm_log "  targets $facet $*: ${out//$'\n'/$'\n    '}"
	TARGET=$(awk '$2 == "vdpasim_net/vdpa-net" { print $1, $2, $3, $4 }' <<<"$out")
}
type_targets() {
	local within beyond
	within="class=net offered=$(hex "$FEAT_S2")"
	beyond="class=net offered=$(hex $((FEAT_S1 | NET_F_MRG_RXBUF)))"
	targets "$within" &&
		assert_eq "vdpa-type vdpasim_net/vdpa-net compatible features" "$TARGET" \
			"targets of a source within the supported features" &&
		targets "$beyond" && assert_eq "" "$TARGET" "targets of a source with MRG_RXBUF" &&
		targets "$beyond" --include-unknown &&
		assert_eq "" "$TARGET" "targets of a source with MRG_RXBUF, unknown included (it is incompatible, not unknown)"
}
step "targets: the type takes a source within its features, not one beyond" type_targets

# S1 and S2 are made after vfiomigd started: they come by hotplug.
create() {
	"$tool" new S1 vdpasim_net "$(hex "$FEAT_S1")" && "$tool" new S2 vdpasim_net "$(hex "$FEAT_S2")" || return 1
	# more than vdpasim_net supports: the kernel refuses it
	expect_exit 1 "[EINVAL]" "$tool" new S3 vdpasim_net "$(hex $((FEAT_S1 | NET_F_MRG_RXBUF)))" &&
		assert_eq "$(hex "$FEAT_S1")" "$("$tool" show S1 | sed -n 's/^features=//p')" "S1 features" &&
		assert_eq "$(hex "$FEAT_S2")" "$("$tool" show S2 | sed -n 's/^features=//p')" "S2 features" &&
		assert_eq "S1 S2" "$("$tool" devices | paste -sd' ')" "devices"
}
step "vdpa-tool new S1, S2 on vdpasim_net with their own features" create

daemon_lists() {
	local out
	wait_for "$ctl list | grep -q '^S2 ' && $ctl list | grep -q '^S1 '" 5 || return 1
	out=$("$ctl" list) && vm_log "  ${out//$'\n'/$'\n  '}"
	assert_eq "S1 vdpa vdpasim_net vdpa-net" "$(awk '$1 == "S1" { print $1, $2, $4, $5 }' <<<"$out")" "S1 in list" &&
		assert_eq "class=net offered=$(hex "$FEAT_S1")" "$(dev_vdpa S1)" "S1 Vdpa" &&
		# vdpasim_net states its MTU (1500) once the device offers MTU
		assert_eq "class=net offered=$(hex "$FEAT_S2") mtu=1500" "$(dev_vdpa S2)" "S2 Vdpa"
}
step "vfiomigd lists S1 and S2 (hotplug) with their features" daemon_lists

map() {
	local out rc=0
	out=$("$ctl" compat S1 S2 2>&1) || rc=$?
	vm_log "  compat S1 S2 -> $rc: $out"
	assert_eq 0 "$rc" "compat S1 S2 exit status" &&
		assert_contains "$out" "S1 -> S2: compatible (basis: features)" "S1 -> S2" || return 1
	rc=0
	out=$("$ctl" compat S2 S1 2>&1) || rc=$?
	vm_log "  compat S2 S1 -> $rc: $out"
	assert_eq 1 "$rc" "compat S2 S1 exit status" &&
		assert_contains "$out" "S2 -> S1: incompatible (basis: features): target lacks" "S2 -> S1" &&
		assert_contains "$out" "VIRTIO_NET_F_MTU" "S2 -> S1" && assert_contains "$out" "VIRTIO_NET_F_STATUS" "S2 -> S1" &&
		assert_eq "" "$(grep -o VIRTIO_NET_F_MAC <<<"$out")" "S2 -> S1 names MAC, which both have"
}
step "compat: S1 -> S2 compatible, S2 -> S1 names what S1 lacks" map

record() {
	"$tool" record "$work/rec" >"$work/record.out" &&
		assert_eq "recorded S1 recorded S2" "$(paste -sd' ' "$work/record.out")" "record" || return 1
	if [[ -n ${VFIOMIG_VM_SHARE:-} ]]; then
		mkdir -p "$VFIOMIG_VM_SHARE/vdpasim" && cp "$work"/rec/*.hex "$VFIOMIG_VM_SHARE/vdpasim/" || return 1
	fi
	assert_eq "$("$tool" mgmt)" "$("$tool" --replay "$work/rec" mgmt)" "mgmt replayed" &&
		assert_eq "$("$tool" show S2)" "$("$tool" --replay "$work/rec" show S2)" "S2 replayed"
}
step "vdpa-tool record, and the recording replays as the kernel answered" record

remove_s1() {
	"$tool" del S1 || return 1
	expect_exit 1 "[ENODEV]" "$tool" show S1 &&
		wait_for "! $ctl list | grep -q '^S1 '" 5 &&
		expect_exit 3 "No device S1" "$ctl" compat S2 S1 &&
		assert_contains "$("$ctl" list)" "S2 " "S2 still listed"
}
step "vdpa-tool del S1: it leaves vfiomigd's list" remove_s1

step "vdpa-tool del S2" "$tool" del S2
