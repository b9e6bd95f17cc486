#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# vm-machine: q35-iommu
# VM tier: one boot of the two-host test (run-two-hosts.sh boots it with
# VFIOMIG_VM_AW_BITS=48, 39, then 48 again, one shared directory in
# /mnt/share). Each boot binds edu to vfio-pci, starts vfiomigd and:
#
#   - checks the IOVA width VFIO_IOMMU_GET_INFO reports (VFIOMIG_VM_AW_BITS);
#   - judges every edu identity an earlier boot of another width left in
#     the share against its own edu (CheckIdentityEx): state from a wider
#     IOMMU cannot go into a narrower one, the other way it can;
#   - records its own edu identity (GetIdentityEx) as edu-wWIDTH.id;
#   - with argument save-mtty: saves an mtty-2 with known UART registers
#     into the share (and its identity); with load-mtty: loads that state
#     into a fresh mtty-2 (compatible across IOMMUs: an mdev's IOMMU facet
#     is "none") and checks the registers arrived.

# Runs in the guest: VFIOMIG_VM_SHARE=DIR tests/vm/run-vm.sh tests/vm/scenario-pci-hosts.sh [save-mtty|load-mtty]
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
share=${VFIOMIG_VM_SHARE:-}
aw=${VFIOMIG_VM_AW_BITS:-48}
mode=${1:-}
MGR=(org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager)
EDU='' G='' width='' facet=no A='' B='' from=''

mgr() { busctl --system call "${MGR[@]}" "$@"; }

# bus_strings TEXT: the "quoted" strings in busctl's output, one a line
# (identities hold no quotes or backslashes, which busctl would escape).
# No process substitution in these scenarios: the guest has no /dev/fd.
bus_strings() {
	local s=$1 re='"(([^"\\]|\\.)*)"'
	while [[ $s =~ $re ]]; do
		printf '%s\n' "${BASH_REMATCH[1]}"
		s=${s#*"${BASH_REMATCH[0]}"}
	done
}
# record_identity DEVICE FILE: GetIdentityEx as key=value lines
record_identity() {
	local out strs i
	out=$(mgr GetIdentityEx s "$1") || return 1
	vm_log "  GetIdentityEx $1: $out"
	mapfile -t strs <<<"$(bus_strings "$out")"
	for ((i = 0; i + 1 < ${#strs[@]}; i += 2)); do
		printf '%s=%s\n' "${strs[i]}" "${strs[i + 1]}"
	done >"$2" && [[ -s $2 ]]
}
# check_identity FILE TARGET: CheckIdentityEx of a recorded identity;
# sets VERDICT, BASIS, REASON.
VERDICT='' BASIS='' REASON=''
check_identity() {
	local line args=() n=0 out strs
	while IFS= read -r line; do
		args+=("${line%%=*}" "${line#*=}")
		n=$((n + 1))
	done <"$1"
	out=$(mgr CheckIdentityEx 'a{ss}s' "$n" "${args[@]}" "$2") || return 1
	vm_log "  CheckIdentityEx $(basename "$1") $2: $out"
	mapfile -t strs <<<"$(bus_strings "$out")"
	VERDICT=${strs[0]:-} BASIS=${strs[1]:-} REASON=${strs[2]:-}
}

step "the shared directory is there (VFIOMIG_VM_SHARE)" test -n "$share" -a -d "$share" -a -w "$share"
find_edu() { EDU=$(pci_find 1234:11e8); }
step "find edu (1234:11e8)" find_edu
step "bind edu to vfio-pci" pci_bind_vfio "$EDU"
G=$(pci_group "$EDU")
iommu_width() {
	local out
	out=$("$tool" iommu-info "$G" 2>&1) || { vm_log "  $out"; return 1; }
	vm_log "  ${out//$'\n'/ | }"
	width=${out#width=} && width=${width%% *}
	assert_eq "$aw" "$width" "IOVA width"
}
step "edu's IOVA width is $aw bits" iommu_width

step "system bus" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug
shown() { "$ctl" show "$1" >/dev/null; }
step "edu is listed" shown "$EDU"
has_identity_api() { busctl --system introspect "${MGR[@]}" 2>/dev/null | grep -q '^\.CheckIdentityEx '; }
step "the daemon has GetIdentityEx and CheckIdentityEx" has_identity_api && facet=yes

# --- identities of other boots, judged here; then our own for later boots
judge() {
	local file=$1 from
	from=${file##*/edu-w} && from=${from%.id}
	check_identity "$file" "$EDU" || return 1
	[[ -n $BASIS ]] || vm_assert_failed "no basis for the verdict" || return 1
	if ((from > width)); then
		assert_eq incompatible "$VERDICT" "verdict for $from-bit state on a $width-bit IOMMU" &&
			assert_contains "$REASON" "$from" "reason" && assert_contains "$REASON" "$width" "reason"
	else
		assert_eq compatible "$VERDICT" "verdict for $from-bit state on a $width-bit IOMMU"
	fi
}
if [[ $facet == yes && -n $width ]]; then
	for f in "$share"/edu-w*.id; do
		[[ -e $f && $f != "$share/edu-w$width.id" ]] || continue
		from=${f##*/edu-w} && from=${from%.id}
		step "edu identity of a ${from}-bit boot judged against this ${width}-bit edu" judge "$f"
	done
	step "record edu's identity as edu-w$width.id" record_identity "$EDU" "$share/edu-w$width.id"
fi

# --- an mtty's state across the two IOMMUs
reg() { "$tool" regs "$1" "${@:2}" 2>&1; }
save_mtty() {
	mtty_create A mtty-2 && reg "$A" set 7 0x5a && reg "$A" set 3 0x1b && reg "$A" --region 1 set 7 0xa5 &&
		"$ctl" save "$A" - >"$share/mtty.state" && echo mtty-2 >"$share/mtty.type" &&
		vm_log "  saved $(stat -c %s "$share/mtty.state") bytes of $A"
}
load_mtty() {
	local type
	type=$(<"$share/mtty.type") && mtty_create B "$type" && "$ctl" load "$B" - <"$share/mtty.state" &&
		assert_eq "0x5a 0x1b 0xa5" "$(reg "$B" get 7) $(reg "$B" get 3) $(reg "$B" --region 1 get 7)" \
			"UART registers of $B"
}
mtty_identity() {
	local iommu
	check_identity "$share/mtty.id" "$B" && assert_eq compatible "$VERDICT" "verdict for the mtty state" &&
		iommu=$(grep '^iommu=' "$share/mtty.id") && assert_eq "iommu=none" "$iommu" "the mtty identity's IOMMU facet"
}
case $mode in
save-mtty)
	step "save an mtty-2 with UART registers set into the share" save_mtty
	[[ $facet == no ]] || step "record the mtty's identity" record_identity "$A" "$share/mtty.id"
	;;
load-mtty)
	step "the state of the first boot is in the share" test -s "$share/mtty.state"
	step "load it into a fresh mtty of the same type: registers arrive" load_mtty
	[[ $facet == no || ! -e $share/mtty.id ]] ||
		step "the first boot's mtty identity is compatible here" mtty_identity
	;;
'') ;;
*) step "known argument (save-mtty, load-mtty or none)" false ;;
esac
