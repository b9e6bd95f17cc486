#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier, issue 4: vfiomigd migrates real mtty devices on Linux 6.12.
# UART registers written through the VFIO region on a source must read
# back on the target; a corrupt stream must leave a target's registers
# alone (the kernel by itself would load it); an mtty-2 state must not go
# into an mtty-1. Last, the downtime of a few migrations as the daemon
# accounts for it on this kernel path, phase by phase.
# Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-migration.sh
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=guest-lib.sh
. "${BASH_SOURCE[0]%/*}/guest-lib.sh"

tool=$VFIOMIG_BUILDDIR/tests/vm/vfio-tool
ctl=$VFIOMIG_BUILDDIR/client/vfiomigctl
# what systemd's StateDirectory=/RuntimeDirectory= would hand the service
export STATE_DIRECTORY=/var/lib/vfiomig RUNTIME_DIRECTORY=/run/vfiomig
states=$STATE_DIRECTORY/states

reg() { "$tool" regs "$1" "${@:2}" 2>&1; }     # reg DEV [--region N] get|set OFF [VAL]
state_of() { "$ctl" show "$1" | awk '$1 == "MigrationState:" { print $2 }'; }

step "mtty-2 A, B, C, E and mtty-1 D" eval 'mtty_create A mtty-2 && mtty_create B mtty-2 && mtty_create C mtty-2 &&
	mtty_create E mtty-2 && mtty_create D mtty-1'
# The registers the guest driver would have programmed, on both ports.
step "A: scratch = 0x5a" reg "$A" set 7 0x5a
step "A: LCR = 0x1b" reg "$A" set 3 0x1b
step "A: port 2 scratch = 0xa5" reg "$A" --region 1 set 7 0xa5
step "B, C start blank" assert_eq "0x00 0x00" "$(reg "$B" get 7) $(reg "$C" get 7)"
step "E: scratch = 0x33 (must survive)" reg "$E" set 7 0x33

step "system bus" start_system_bus
step "vfiomigd on the kernel backend" start_vfiomigd --log-level=debug

# 1. A -> B through the daemon: pre-copy (mtty has it), stop-copy, resume
step "vfiomigctl migrate A B" "$ctl" migrate "$A" "$B"
step "B: scratch came from A" assert_eq 0x5a "$(reg "$B" get 7)"
step "B: LCR came from A" assert_eq 0x1b "$(reg "$B" get 3)"
step "B: port 2 came from A" assert_eq 0xa5 "$(reg "$B" --region 1 get 7)"
step "A is stopped, B runs (daemon's view)" assert_eq "stop running" "$(state_of "$A") $(state_of "$B")"
step "the daemon learned A's migration flags" assert_eq "stop-copy p2p pre-copy" \
	"$("$ctl" show "$A" | awk '$1 == "MigrationFlags:" { $1 = ""; print substr($0, 2) }')"
step "A is stopped, B runs (kernel's view)" assert_eq "stop running" \
	"$("$tool" state "$A" 2>&1) $("$tool" state "$B" 2>&1)"
step "migration reported pre-copy" eval "\"$ctl\" --json migrate $B $C | grep -q '\"precopy_rounds\":1'"
step "C: state arrived via B" assert_eq "0x5a 0x1b" "$(reg "$C" get 7) $(reg "$C" get 3)"

# 2. save C to a file, load it into B (B was stopped by the second migrate)
step "save C as mtty-state" "$ctl" save "$C" mtty-state
step "saved file is framed (header + records)" eval "test \$(stat -c %s $states/mtty-state) -gt 96"
step "B: scratch = 0x00 before load" reg "$B" set 7 0x00
step "load mtty-state into B" "$ctl" load "$B" mtty-state
step "B: scratch restored from the file" assert_eq "0x5a 0x1b 0xa5" \
	"$(reg "$B" get 7) $(reg "$B" get 3) $(reg "$B" --region 1 get 7)"

# 3. one flipped bit in the payload: refused, E untouched (the kernel alone
#    would load it: mtty keeps even a write it refused buffered, see the
#    garbage test in scenario-vfio.sh)
size=$(stat -c %s "$states/mtty-state")
step "copy with one bit flipped in the last record" eval "cp $states/mtty-state $states/flipped &&
	printf '\\x$(printf %02x $(( $(od -An -tu1 -j$((size - 60)) -N1 $states/mtty-state) ^ 4 )))' |
	dd of=$states/flipped bs=1 seek=$((size - 60)) conv=notrunc status=none"
step "the copy differs in one byte" eval "[[ \$(cmp -l $states/mtty-state $states/flipped | wc -l) == 1 ]]"
step "load of the flipped stream is refused" expect_exit 1 "CRC mismatch" "$ctl" load "$E" flipped
step "E: registers unchanged" assert_eq 0x33 "$(reg "$E" get 7)"
step "E: still running" assert_eq running "$("$tool" state "$E" 2>&1)"
step "truncated stream refused" eval "head -c 100 $states/mtty-state > $states/short"
step "load of the truncated stream is refused" expect_exit 1 "truncated" "$ctl" load "$E" short
step "E: registers still unchanged" assert_eq 0x33 "$(reg "$E" get 7)"

# 4. mtty-2 -> mtty-1: refused before anything moves; the source keeps running
step "migrate mtty-2 B -> mtty-1 D fails" expect_exit 1 "cannot go into" "$ctl" migrate "$B" "$D"
step "B still running with its registers" assert_eq "running 0x5a" "$("$tool" state "$B" 2>&1) $(reg "$B" get 7)"
step "D untouched" assert_eq running "$("$tool" state "$D" 2>&1)"
step "load mtty-2 state into mtty-1 fails" expect_exit 1 "cannot go into" "$ctl" load "$D" mtty-state

# 5. a device someone else holds: Busy, nothing changes
"$tool" hold "$E" 30 >/dev/null 2>&1 &
holder=$!
step "E is held by another process" wait_for "ls -l /proc/$holder/fd 2>/dev/null | grep -q /dev/vfio/" 10
# the kernel refuses the open; /proc names the holder
step "migrate into a held device: Busy, naming the holder" expect_exit 5 "$E is held by pid $holder (vfio-tool)" \
	"$ctl" migrate "$B" "$E"
step "B unaffected" assert_eq running "$("$tool" state "$B" 2>&1)"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

step "the daemon holds no VFIO device when idle" eval "! ls -l /proc/$VFIOMIGD_PID/fd | grep -q /dev/vfio/"

# 6. the downtime on the kernel path, as the daemon accounts for it: each
#    window split into the devices' SETs, the data and vfiomigd's own
#    part, per phase (stop, copy, commit, start); the same figures the
#    benchmark takes from the testbed. At info level, as a service runs:
#    a debug line per SET would sit inside the window.
DOWNTIME_RUNS=5
down_json=()
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# migrate_json SRC TGT: vfiomigctl --json migrate, its downtime_usec kept
migrate_json() {
	local out
	out=$("$ctl" --json migrate "$1" "$2") && vm_log "  $out" &&
		[[ $out =~ \"downtime_usec\":([0-9]+) ]] && down_json+=("${BASH_REMATCH[1]}")
}
phases_logged() {
	((${#down_lines[@]} == DOWNTIME_RUNS)) && ! printf '%s\n' "${down_lines[@]}" |
		grep -qv '; window: stop [0-9]* us (vfiomigd [0-9]* us), copy .*, commit .*, start '
}
step "vfiomigd again, at info level" eval 'stop_vfiomigd && start_vfiomigd --log-level=info'
step "mtty-2 F and G" eval 'mtty_create F mtty-2 && mtty_create G mtty-2'
step "F: scratch = 0x77" reg "$F" set 7 0x77
log_start=$(wc -l <"$VM_RESULTS/vfiomigd.log")
for ((i = 0; i < DOWNTIME_RUNS; i++)); do
	if ((i % 2 == 0)); then src=$F tgt=$G; else src=$G tgt=$F; fi
	step "migrate $((i + 1)) of $DOWNTIME_RUNS, with --json" migrate_json "$src" "$tgt"
done
step "the state went back and forth" assert_eq 0x77 "$(reg "$tgt" get 7)"
# (no process substitution: the guest has no /dev/fd)
mapfile -t down_lines <<<"$(tail -n +"$((log_start + 1))" "$VM_RESULTS/vfiomigd.log" |
	grep -o 'downtime [0-9]* us (devices .*')"
for l in "${down_lines[@]}"; do vm_log "  vfiomigd: $l"; done
step "the daemon logged each window with its phases" phases_logged
step "vfiomigctl --json carried each downtime" assert_eq "$DOWNTIME_RUNS" "${#down_json[@]}"
# Under TCG every ioctl is emulated: the absolute figures are the
# emulator's; the split shows where the window goes.
ours=() devices=() data=()
for l in "${down_lines[@]}"; do
	[[ $l =~ devices\ ([0-9]+)\ us,\ data\ ([0-9]+)\ us,\ vfiomigd\ ([0-9]+)\ us ]] || continue
	devices+=("${BASH_REMATCH[1]}") data+=("${BASH_REMATCH[2]}") ours+=("${BASH_REMATCH[3]}")
done
if ((${#ours[@]})); then
	vm_log "DOWNTIME on the kernel path (mtty, TCG), median of $DOWNTIME_RUNS, us:" \
		"window $(median "${down_json[@]}") (vfiomigctl --json)," \
		"devices $(median "${devices[@]}"), data $(median "${data[@]}"), vfiomigd $(median "${ours[@]}")"
	for phase in stop copy commit start; do
		walls=() own=()
		for l in "${down_lines[@]}"; do
			[[ $l =~ [\ ,]$phase\ ([0-9]+)\ us\ \(vfiomigd\ ([0-9]+)\ us\) ]] || continue
			walls+=("${BASH_REMATCH[1]}") own+=("${BASH_REMATCH[2]}")
		done
		if ((${#walls[@]})); then
			vm_log "  phase $phase: wall $(median "${walls[@]}"), vfiomigd $(median "${own[@]}")"
		fi
	done
fi
