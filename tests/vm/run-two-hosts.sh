#!/bin/bash
# The two-host test: boots SCENARIO (scenario-pci-hosts.sh) on the
# q35-iommu machine three times with one shared directory, as two hosts
# whose IOMMUs differ in address width would see it:
#
#   1. 48-bit IOMMU, "save-mtty": records edu's identity, saves an mtty's state
#   2. 39-bit IOMMU, "load-mtty": the 48-bit identity must be incompatible
#      here; records its own; loads the mtty state
#   3. 48-bit IOMMU: the 39-bit identity must be compatible here
#
# Exit status: the first failing boot's, 77 if the VM tier cannot run here.
#
# Env: as run-vm.sh; VFIOMIG_VM_RESULTS (if set) gets one directory per
# boot, boot-1 ... boot-3, and the share. VFIOMIG_VM_SHARE is ignored: the
# test needs an empty directory and makes its own.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# == 1)) || {
	echo "usage: $0 SCENARIO_SCRIPT" >&2
	exit 2
}
scenario=$1
now() { date +%s.%N; }
t_start=$(now)

if [[ -n ${VFIOMIG_VM_RESULTS:-} ]]; then
	top=$(realpath -m "$VFIOMIG_VM_RESULTS")
	mkdir -p "$top"
	rm -rf "$top/share" "$top"/boot-[0-9]
	keep=1
else
	top=$(mktemp -d "${TMPDIR:-/tmp}/vfiomig-two-hosts.XXXXXX")
	keep=${VFIOMIG_VM_KEEP:-}
fi
export VFIOMIG_VM_SHARE=$top/share
mkdir -p "$VFIOMIG_VM_SHARE"
# shellcheck disable=SC2317  # reached through the trap
cleanup() { [[ -n $keep ]] || rm -rf "$top"; }
trap cleanup EXIT

boot() {
	local n=$1 aw=$2 rc=0
	shift 2
	echo "run-two-hosts: boot $n: ${aw}-bit IOMMU${1:+, $1}"
	if [[ -n $keep ]]; then
		VFIOMIG_VM_RESULTS=$top/boot-$n VFIOMIG_VM_AW_BITS=$aw "$here/run-vm.sh" "$scenario" "$@" || rc=$?
	else
		VFIOMIG_VM_AW_BITS=$aw "$here/run-vm.sh" "$scenario" "$@" || rc=$?
	fi
	if ((rc == 77)); then
		echo "run-two-hosts: boot $n skipped, so is the rest"
		exit 77
	fi
	if ((rc != 0)); then
		keep=1
		echo "run-two-hosts: FAIL: boot $n (${aw}-bit) exited with status $rc; share kept in $VFIOMIG_VM_SHARE"
		exit "$rc"
	fi
}

boot 1 48 save-mtty
boot 2 39 load-mtty
boot 3 48
shared=("$VFIOMIG_VM_SHARE"/*)
echo "run-two-hosts: in the share: ${shared[*]##*/}"
echo "run-two-hosts: all boots passed, total $(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
