#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# VM tier, issue 4: vfiomigd migrates real mtty devices on Linux 6.12.
# UART registers written through the VFIO region on a source must read
# back on the target; a corrupt stream must leave a target's registers
# alone (the kernel by itself would load it); an mtty-2 state must not go
# into an mtty-1. Runs in the guest: tests/vm/run-vm.sh tests/vm/scenario-migration.sh
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
