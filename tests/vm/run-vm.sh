#!/bin/bash
# Runs SCENARIO_SCRIPT [ARGS...] as root inside a throwaway QEMU guest running
# Debian's 6.12 kernel with vfio, mdev and mtty loaded (see README.md).
# Exit status: the scenario's; 1 when the guest hangs or leaves no result;
# 77 (skip) when this machine cannot run the tier and CI is not "true".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
die() {
	echo "run-vm: ERROR: $*" >&2
	exit 1
}
cannot_run() {
	if [[ ${CI:-} == true ]]; then
		die "VM tier cannot run here because $1 (CI=true, so this is a failure)"
	fi
	echo "SKIP: VM tier cannot run here because $1" >&2
	exit 77
}

(($# >= 1)) || {
	echo "usage: $0 SCENARIO_SCRIPT [ARGS...]" >&2
	exit 2
}
scenario=$(realpath -e "$1") || die "scenario $1 not found"
shift
t_start=$(now)

[[ $(id -u) == 0 ]] || cannot_run "it needs root (apt-get, 9p export of /), running as uid $(id -u)"
had_qemu=$(command -v qemu-system-x86_64 || true)
if ! vm_env=$("$here/prepare.sh"); then
	[[ -n $had_qemu ]] || command -v qemu-system-x86_64 >/dev/null ||
		cannot_run "qemu-system-x86_64 is missing and could not be installed"
	die "prepare.sh failed"
fi
eval "$vm_env"
command -v qemu-system-x86_64 >/dev/null || cannot_run "qemu-system-x86_64 is not on PATH"
# A scenario whose header says "# vm-needs: qemu-backports" gets QEMU from
# bookworm-backports, for the guest's libvirt (VFIOMIG_VM_QEMU_BACKPORTS:
# its wrapper, at the same path in the guest).
if grep -q '^# vm-needs:.*\bqemu-backports\b' "$scenario"; then
	vm_env=$("$here/prepare-qemu.sh") || cannot_run "QEMU from bookworm-backports could not be prepared (prepare-qemu.sh failed)"
	eval "$vm_env"
	export VFIOMIG_VM_QEMU_BACKPORTS=$VM_QEMU_BACKPORTS
fi
t_prepared=$(now)

# The machine: the scenario's "# vm-machine: NAME" header, unless
# VFIOMIG_VM_MACHINE overrides it. "default" is QEMU's i440fx PC without
# an IOMMU; "q35-iommu" adds an emulated Intel IOMMU and PCI functions
# for vfio-pci (edu, e1000e, virtio-net-pci).
machine=${VFIOMIG_VM_MACHINE:-$(sed -n 's/^# vm-machine:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$scenario" | head -n1)}
machine=${machine:-default}
machine_args=()
machine_cmdline=
case $machine in
default) ;;
q35-iommu)
	aw=${VFIOMIG_VM_AW_BITS:-48}
	[[ $aw == 39 || $aw == 48 ]] || die "VFIOMIG_VM_AW_BITS must be 39 or 48, not '$aw'"
	# The IOMMU comes first: a PCI device created before it would bypass it.
	# The NICs need a peer (QEMU warns otherwise): user-mode networking
	# with restrict=on reaches nothing outside the guest. The guest loads
	# no driver for them anyway, and no boot ROM (iPXE costs seconds).
	machine_args=(-machine "q35,kernel-irqchip=split"
		-device "intel-iommu,intremap=on,caching-mode=on,aw-bits=$aw"
		-device edu
		-netdev "user,id=vmnet0,restrict=on" -device "e1000e,netdev=vmnet0,romfile="
		-netdev "user,id=vmnet1,restrict=on" -device "virtio-net-pci,netdev=vmnet1,romfile=")
	# With interrupt remapping the kernel panics when its early check of
	# the IO-APIC timer fails, which a busy host makes TCG do now and then.
	machine_cmdline=" intel_iommu=on no_timer_check vfiomig.machine=$machine"
	machine="$machine, aw-bits $aw"
	;;
*) die "unknown machine '$machine' (vm-machine header or VFIOMIG_VM_MACHINE): default or q35-iommu" ;;
esac

export VFIOMIG_SRCDIR=${VFIOMIG_SRCDIR:-$(realpath "$here/../..")}
export VFIOMIG_BUILDDIR=${VFIOMIG_BUILDDIR:-$VFIOMIG_SRCDIR/build}
# prepare.sh's on-demand module tree, for guest-lib's load_modules (the
# guest sees the cache at the same path through the shared root)
export VFIOMIG_VM_MODULES=$VM_MODULES
timeout_s=${VFIOMIG_VM_TIMEOUT:-300}
keep=${VFIOMIG_VM_KEEP:-}
if [[ -n ${VFIOMIG_VM_RESULTS:-} ]]; then
	results=$(realpath -m "$VFIOMIG_VM_RESULTS")
	mkdir -p "$results"
	keep=1
else
	results=$(mktemp -d "${TMPDIR:-/tmp}/vfiomig-vm.XXXXXX")
fi
# A writable directory that outlives the guest, for scenarios that boot
# more than once (/mnt/share in the guest).
share_args=()
if [[ -n ${VFIOMIG_VM_SHARE:-} ]]; then
	share=$(realpath -m "$VFIOMIG_VM_SHARE")
	mkdir -p "$share"
	share_args=(-virtfs "local,path=${share//,/,,},mount_tag=share,security_model=none")
	machine_cmdline+=" vfiomig.share=1"
fi
# Files of a previous run would pass for this one's.
(cd "$results" && rm -f rc result.json .vm-job console.log scenario.log dmesg.log dbus-daemon.log vfiomigd.log)
console=$results/console.log

qpid=
# shellcheck disable=SC2317  # reached through the trap
cleanup() {
	# timeout(1) passes the TERM on to QEMU.
	[[ -n $qpid ]] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	[[ -n $keep ]] || rm -rf "$results"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The job file is sourced by the guest's busybox sh, so quote for POSIX sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
{
	echo "VM_SCENARIO=$(sq "$scenario")"
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
	for v in $(compgen -e | grep -E '^VFIOMIG_') CI ${VFIOMIG_VM_PASS_ENV:-}; do
		[[ $v == VFIOMIG_VM_RESULTS || -z ${!v+set} ]] && continue
		echo "export $v=$(sq "${!v}")"
	done
} >"$results/.vm-job"

# /dev/kvm may exist yet be unable to run a stock kernel (it aborts on an MSR
# here), so KVM is used only after a probe boot worked; the answer is cached.
accel=${VFIOMIG_VM_ACCEL:-auto}
if [[ $accel == auto ]]; then
	accel=tcg
	if [[ -r /dev/kvm && -w /dev/kvm ]]; then
		probe=$VM_CACHE_DIR/kvm-probe-$(uname -r)
		if [[ ! -e $probe ]]; then
			plog=$results/kvm-probe.log
			# A subshell, so that bash's "Aborted" job report goes to /dev/null too.
			(timeout -k 5 30 qemu-system-x86_64 -nodefaults -no-user-config -nographic -monitor none \
				-no-reboot -accel kvm -cpu host -m 256 -serial "file:$plog" -kernel "$VM_KERNEL" \
				-initrd "$VM_INITRD" -append "console=ttyS0 panic=-1 vfiomig.probe=1" \
				</dev/null) >/dev/null 2>&1 || true
			if grep -q VFIOMIG-VM-PROBE-OK "$plog" 2>/dev/null; then echo kvm; else echo tcg; fi >"$probe"
			rm -f "$plog"
		fi
		accel=$(cat "$probe")
	fi
fi
cpu=max
[[ $accel == kvm ]] && cpu=host
smp=$(($(nproc) < 2 ? $(nproc) : 2))
# Calibrating the second vCPU's delay loop takes >1 s under TCG; the host's
# value is as good as any (the guest's udelay uses the TSC anyway).
lpj=$(awk '/^bogomips/ { printf " lpj=%d", $3 * 500000 / 250; exit }' /proc/cpuinfo)

echo "run-vm: $(basename "$scenario") on $VM_KERNEL_RELEASE ($accel, machine $machine, ${VFIOMIG_VM_MEM:-1024} MiB, timeout ${timeout_s} s)"
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -nographic -monitor none -no-reboot
	"${machine_args[@]}"
	-accel "$accel" -cpu "$cpu" -smp "$smp" -m "${VFIOMIG_VM_MEM:-1024}"
	-serial "file:$console" -kernel "$VM_KERNEL" -initrd "$VM_INITRD"
	-append "console=ttyS0 panic=-1 loglevel=5$lpj$machine_cmdline ${VFIOMIG_VM_CMDLINE:-}"
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=${results//,/,,},mount_tag=results,security_model=none"
	"${share_args[@]}")
boot() {
	timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null &
	qpid=$!
	tpid=
	if [[ -n ${VFIOMIG_VM_VERBOSE:-} ]]; then
		tail -n +1 -F --pid="$qpid" "$console" 2>/dev/null &
		tpid=$!
	fi
	qrc=0
	wait "$qpid" || qrc=$?
	qpid=
	[[ -z $tpid ]] || wait "$tpid" || true
}
boot
# Multi-threaded TCG now and then runs a stale translation of kernel text
# that the guest is patching (an int3 the kernel already removed), and the
# guest panics while booting, before any of the project's code ran. Such
# a boot, and only such a boot, is tried once more, and says so.
if [[ ! -e $results/rc && ! -e $results/scenario.log ]] && grep -q 'Kernel panic' "$console" 2>/dev/null; then
	echo "run-vm: WARNING: the guest kernel panicked while booting, before the scenario started" \
		"(none of the project's code had run); booting once more. The first console said:"
	grep -E 'Oops|RIP:|Kernel panic' "$console" | head -n 6 | sed 's/^/run-vm:   /'
	mv "$console" "$results/console-first-boot.log"
	boot
fi
t_end=$(now)

rc=$(cat "$results/rc" 2>/dev/null || true)
verdict=
fail_rc=1
if ((qrc == 124 || qrc == 137)); then
	verdict="guest did not finish within $timeout_s s (VFIOMIG_VM_TIMEOUT)"
elif ((qrc != 0)); then
	verdict="qemu exited with status $qrc"
elif [[ ! $rc =~ ^[0-9]+$ ]]; then
	verdict="the guest left no result marker in $results/rc"
elif ((rc != 0 && rc != 77)); then
	verdict="scenario failed with status $rc"
	fail_rc=$rc
fi

if [[ -z $verdict ]]; then
	[[ -n ${VFIOMIG_VM_VERBOSE:-} ]] || cat "$results/scenario.log" 2>/dev/null
	[[ -z $keep ]] || echo "run-vm: results in $results"
else
	if [[ -z ${VFIOMIG_VM_VERBOSE:-} ]]; then
		echo "---- guest console (last 150 lines of $console) ----"
		tail -n 150 "$console" 2>/dev/null || echo "(no console output)"
	fi
	for f in "$results"/*.log; do
		case ${f##*/} in console.log | scenario.log | dmesg.log) continue ;; esac
		[[ -e $f ]] || continue
		echo "---- $(basename "$f") (last 50 lines) ----"
		tail -n 50 "$f"
	done
	echo "run-vm: FAIL: $(basename "$scenario"): $verdict"
	# Worth keeping for a look; cleanup only removes them on success.
	keep=1
	echo "run-vm: results kept in $results"
fi
echo "VM tier wall time: prepare $(secs "$t_start" "$t_prepared") s," \
	"boot+scenario $(secs "$t_prepared" "$t_end") s, total $(secs "$t_start" "$t_end") s"
[[ -z $verdict ]] || exit "$fail_rc"
exit "$rc"
