#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier: real vDPA devices. vdpa-tool makes VDUSE devices (two net
# devices, B offering a superset of A's features with an MTU of 9000, and
# a blk device C), `vdpa dev add` turns them into vDPA devices, and
# virtio_vdpa with virtio_net negotiates on A and B (C stays without a
# driver). What daemon/backend/vdpa-netlink.c parses of the kernel's
# netlink replies (vdpa-tool show/mgmt/devices) must be what was created,
# and the negotiated features what the virtio device in sysfs says. A
# device removed at run time is unknown (ENODEV). The kernel's raw replies
# are recorded (vdpa/rec in the results, and in VFIOMIG_VM_SHARE when
# set) for tests/unit/data/vdpa/, and replaying them must give what the
# kernel gave.
# Then the project's vfiomigd (kernel backend) must list them with those
# facets, follow the negotiation, judge A -> B compatible and B -> A
# incompatible naming the missing features, and drop A from the map when it
# is removed.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-vdpa.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vdpa-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
work=$VM_RESULTS/vdpa
mkdir -p "$work"
sysvdpa=/sys/bus/vdpa
declare -A responder=()

# virtio feature bits (virtio spec; linux/virtio_net.h, virtio_blk.h)
NET_F_MTU=$((1 << 3)) NET_F_MAC=$((1 << 5)) NET_F_MRG_RXBUF=$((1 << 15)) NET_F_STATUS=$((1 << 16))
BLK_F_BLK_SIZE=$((1 << 6)) BLK_F_MQ=$((1 << 12))
F_VERSION_1=$((1 << 32)) F_ACCESS_PLATFORM=$((1 << 33))
# VDUSE refuses a device without ACCESS_PLATFORM, and a net device without
# VERSION_1 or with CTRL_VQ
FEAT_A=$((F_VERSION_1 | F_ACCESS_PLATFORM | NET_F_MAC))
FEAT_B=$((FEAT_A | NET_F_MRG_RXBUF | NET_F_MTU | NET_F_STATUS))
FEAT_C=$((F_VERSION_1 | F_ACCESS_PLATFORM | BLK_F_BLK_SIZE | BLK_F_MQ))
hex() { printf '0x%x' "$1"; }

# vDPA devices first (the kernel refuses to destroy a VDUSE device that
# still has one), then their responders, which destroy the VDUSE devices.
cleanup() {
	local rc=$? n
	for n in "${!responder[@]}"; do
		[[ -e $sysvdpa/devices/$n ]] && vdpa dev del "$n"
		kill -TERM "${responder[$n]}" 2>/dev/null
	done
	(exit "$rc")
	vm_finish
}
trap cleanup EXIT

# show NAME: vdpa-tool show's key=value lines into SHOW[]
declare -A SHOW=()
show() {
	local out k v
	SHOW=()
	out=$("$tool" show "$1" 2>"$work/show.err") || return 1
	while IFS='=' read -r k v; do SHOW[$k]=$v; done <<<"$out"
}

# vduse NAME CLASS FEATURES [OPTIONS...]: starts a responder, waits for
# its "ready"
vduse() {
	local name=$1
	"$tool" vduse "$@" >"$work/vduse-$name.out" 2>"$work/vduse-$name.err" &
	responder[$name]=$!
	wait_for "grep -q ready $work/vduse-$name.out || ! kill -0 ${responder[$name]} 2>/dev/null" 10
	if ! grep -q ready "$work/vduse-$name.out"; then
		vm_log "  $(<"$work/vduse-$name.err")"
		return 1
	fi
}

# The virtio device's features in sysfs, a string of 0/1 with bit 0
# first, as a number.
sysfs_features() {
	local bits v=0 i f
	f=$(echo "$sysvdpa/devices/$1"/virtio*/features)
	read -r bits <"$f" || return 1
	for ((i = 0; i < ${#bits}; i++)); do
		[[ ${bits:i:1} == 1 ]] && v=$((v | (1 << i)))
	done
	echo "$v"
}

modules() {
	load_modules vduse virtio_vdpa virtio_net &&
		# no driver binds by itself: A and B are bound by hand, C stays free
		echo 0 >"$sysvdpa/drivers_autoprobe"
}
step "load vdpa, vduse, virtio_vdpa, virtio_net" modules

step "VDUSE net device A" vduse vA net "$(hex "$FEAT_A")"
step "VDUSE net device B (superset, mtu 9000)" vduse vB net "$(hex "$FEAT_B")" mtu=9000
step "VDUSE blk device C (2 queues, 4 KiB blocks)" vduse vC blk "$(hex "$FEAT_C")" queues=2 bs=4096
add_all() {
	vdpa dev add name vA mgmtdev vduse && vdpa dev add name vB mgmtdev vduse && vdpa dev add name vC mgmtdev vduse
}
step "vdpa dev add A, B, C" add_all

mgmt() {
	local out
	out=$("$tool" mgmt) || return 1
	vm_log "  $(paste -sd' ' <<<"$out")"
	# vduse makes net (1) and blk (2) devices, on no bus
	assert_contains "$out" "name=vduse" "mgmt" && assert_contains "$out" "classes=0x6" "mgmt"
}
step "the management device: vduse, classes net and blk" mgmt

check_offered() {
	show vA && assert_eq "$(hex "$FEAT_A")" "${SHOW[features]:-}" "A features" &&
		assert_eq net "${SHOW[class]:-}" "A class" && assert_eq vduse "${SHOW[mgmtdev]:-}" "A mgmtdev" &&
		assert_eq 2 "${SHOW[max_vqs]:-}" "A max_vqs" && assert_eq 256 "${SHOW[max_vq_size]:-}" "A max_vq_size" &&
		assert_eq "" "${SHOW[negotiated]:-}" "A negotiated before a driver" &&
		assert_eq "" "${SHOW[mtu]:-}" "A mtu (no VIRTIO_NET_F_MTU)" &&
		show vB && assert_eq "$(hex "$FEAT_B")" "${SHOW[features]:-}" "B features" &&
		assert_eq 9000 "${SHOW[mtu]:-}" "B mtu" &&
		show vC && assert_eq "$(hex "$FEAT_C")" "${SHOW[features]:-}" "C features" &&
		assert_eq blk "${SHOW[class]:-}" "C class" && assert_eq 4096 "${SHOW[blk_size]:-}" "C blk_size" &&
		assert_eq 2 "${SHOW[num_queues]:-}" "C num_queues" && assert_eq 2 "${SHOW[max_vqs]:-}" "C max_vqs"
}
step "vdpa-tool show: the offered features and config as created" check_offered

# ---- vfiomigd on the same devices
step "system bus with the project's policy" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug --libvirt-uri=

vdpa_prop() {
	busctl --system get-property org.vfiomig1 "/org/vfiomig1/device/$1" org.vfiomig1.Device Vdpa |
		sed -e 's/^s "//' -e 's/"$//'
}
# compat SRC TGT: vfiomigctl compat's line
compat() { "$ctl" compat "$1" "$2" 2>&1; }

daemon_lists() {
	local out
	out=$("$ctl" list) || return 1
	vm_log "  ${out//$'\n'/$'\n  '}"
	assert_eq "vA vdpa - vduse vdpa-net" "$(awk '$1 == "vA" { print $1, $2, $3, $4, $5 }' <<<"$out")" "vA in list" &&
		assert_eq "vC vdpa - vduse vdpa-blk" "$(awk '$1 == "vC" { print $1, $2, $3, $4, $5 }' <<<"$out")" "vC in list" &&
		assert_eq "class=net offered=$(hex "$FEAT_A")" "$(vdpa_prop vA)" "vA Vdpa" &&
		assert_eq "class=net offered=$(hex "$FEAT_B") mtu=9000" "$(vdpa_prop vB)" "vB Vdpa" &&
		assert_eq "class=blk offered=$(hex "$FEAT_C") blk-size=4096 queues=2" "$(vdpa_prop vC)" "vC Vdpa" &&
		out=$("$ctl" types) && assert_contains "$out" "vduse   vdpa-blk" "types" &&
		assert_contains "$out" "vduse   vdpa-net" "types"
}
step "vfiomigd lists A, B, C with the kernel's features, and vduse's classes" daemon_lists

map_offered() {
	assert_contains "$(compat vA vB)" "vA -> vB: compatible (basis: features)" "A -> B" &&
		assert_contains "$(compat vB vA)" "vB -> vA: incompatible (basis: features): target lacks VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS (the source offers them)" "B -> A" &&
		assert_contains "$(compat vA vC)" "target is a vDPA blk device, source net" "A -> C"
}
step "the map before negotiation: A -> B yes, B -> A names what A lacks" map_offered

bind() {
	local n
	for n in vA vB; do
		echo "$n" >"$sysvdpa/drivers/virtio_vdpa/bind" || return 1
	done
	# virtio_net sets FEATURES_OK during its probe, through our responder
	wait_for "$tool show vA | grep -q negotiated= && $tool show vB | grep -q negotiated=" 20 &&
		assert_eq virtio_vdpa "$(basename "$(readlink "$sysvdpa/devices/vA/driver")")" "A driver" &&
		assert_eq virtio_vdpa "$(basename "$(readlink "$sysvdpa/devices/vB/driver")")" "B driver" &&
		assert_eq "" "$(readlink "$sysvdpa/devices/vC/driver")" "C driver"
}
step "bind A and B to virtio_vdpa, virtio_net negotiates" bind

check_negotiated() {
	local n feat neg sys
	for n in vA vB; do
		show "$n" || return 1
		feat=${SHOW[features]} neg=${SHOW[negotiated]:-}
		sys=$(sysfs_features "$n") || return 1
		vm_log "  $n offered $feat negotiated $neg (sysfs $(hex "$sys"))"
		assert_eq "$(hex "$sys")" "$neg" "$n negotiated vs sysfs virtio features" &&
			assert_eq 0 "$((neg & ~feat))" "$n negotiated outside the offer" &&
			assert_eq "$F_VERSION_1" "$((neg & F_VERSION_1))" "$n VERSION_1 negotiated" || return 1
	done
	# the superset's extras were taken by virtio_net, and A had none
	assert_eq "$((NET_F_MRG_RXBUF | NET_F_MTU))" "$((neg & (NET_F_MRG_RXBUF | NET_F_MTU)))" "B MRG_RXBUF and MTU" &&
		show vA && assert_eq 0 "$((SHOW[negotiated] & NET_F_MRG_RXBUF))" "A MRG_RXBUF" &&
		show vC && assert_eq "" "${SHOW[negotiated]:-}" "C negotiated without a driver"
}
step "negotiated features: as sysfs says, within the offer" check_negotiated

daemon_negotiated() {
	# the virtio devices' bind uevents tell vfiomigd to ask again
	wait_for "[[ \$(vdpa_prop vB) == *negotiated=* ]]" 10 &&
		assert_eq "class=net offered=$(hex "$FEAT_B") negotiated=$(hex "$(sysfs_features vB)") mtu=9000" \
			"$(vdpa_prop vB)" "vB Vdpa after negotiation" &&
		assert_contains "$(compat vB vA)" "(the source negotiated them)" "B -> A after negotiation" &&
		assert_contains "$(compat vA vB)" "compatible" "A -> B after negotiation"
}
step "vfiomigd follows the negotiation" daemon_negotiated

record() {
	local n
	"$tool" record "$work/rec" >"$work/record.out" &&
		assert_eq "recorded vA recorded vB recorded vC" "$(paste -sd' ' "$work/record.out")" "record" || return 1
	if [[ -n ${VFIOMIG_VM_SHARE:-} ]]; then
		mkdir -p "$VFIOMIG_VM_SHARE/vdpa" && cp "$work"/rec/*.hex "$VFIOMIG_VM_SHARE/vdpa/" || return 1
	fi
	# the recording answers as the kernel did
	for n in vA vB vC; do
		assert_eq "$("$tool" show "$n")" "$("$tool" --replay "$work/rec" show "$n")" "$n replayed" || return 1
	done
	assert_eq "$("$tool" mgmt)" "$("$tool" --replay "$work/rec" mgmt)" "mgmt replayed"
}
step "vdpa-tool record, and the recording replays as the kernel answered" record

remove_a() {
	local out
	vdpa dev del vA || return 1
	out=$("$tool" show vA 2>&1) && { vm_log "  show vA after del: $out" && return 1; }
	assert_contains "$out" "[ENODEV]" "show vA after vdpa dev del" &&
		assert_eq "vB vC" "$("$tool" devices | paste -sd' ')" "devices after del" &&
		kill -TERM "${responder[vA]}" && wait "${responder[vA]}" &&
		assert_contains "$(<"$work/vduse-vA.out")" destroyed "A's responder" && unset 'responder[vA]' &&
		assert_eq "" "$(ls /dev/vduse/vA 2>/dev/null)" "/dev/vduse/vA after destroy" &&
		show vB && assert_eq "$(hex "$FEAT_B")" "${SHOW[features]:-}" "B still there"
}
step "vdpa dev del A at run time: show says ENODEV, VDUSE device destroyed" remove_a

daemon_forgets_a() {
	local out
	wait_for "! $ctl list | grep -q '^vA '" 5 || return 1
	expect_exit 3 "No device vA" "$ctl" compat vB vA &&
		out=$("$ctl" targets vC --include-unknown) && vm_log "  ${out//$'\n'/$'\n  '}" &&
		assert_eq "" "$(awk '$2 == "vA"' <<<"$out")" "vA among targets"
}
step "vfiomigd: A left the map" daemon_forgets_a

teardown() {
	local n
	for n in vB vC; do
		vdpa dev del "$n" && kill -TERM "${responder[$n]}" && wait "${responder[$n]}" &&
			assert_contains "$(<"$work/vduse-$n.out")" destroyed "$n's responder" && unset "responder[$n]" ||
			return 1
	done
	assert_eq "" "$("$tool" devices)" "devices at the end"
}
step "remove B and C, their VDUSE devices destroyed" teardown
