# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# A real libvirtd in the guest, for the scenarios that need one (sourced
# after guest-lib.sh; $dom names the scenario's domain): its state and
# configuration start empty, QEMU runs as root in libvirtd's namespaces
# with its log written by libvirtd itself (no systemd, no cgroups, no
# virtlogd in the guest).

LIBVIRTD_PID='' libvirtd_t0=$EPOCHREALTIME

virsh() { command virsh -q -c qemu:///system "$@"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
qemu_pid() { cat "/run/libvirt/qemu/$dom.pid" 2>/dev/null; }

# libvirt_dirs [HOOK]: whatever the host has under libvirt's directories
# (domains, hooks, caches of other runs) stays hidden; HOOK goes into
# qemu.d now, since libvirtd looks for hooks only when it starts.
libvirt_dirs() {
	local d
	for d in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
		mkdir -p "$d" && mount -t tmpfs -o mode=0755 tmpfs "$d" || return 1
	done
	mkdir -p /var/log/libvirt/qemu || return 1
	[[ -z ${1:-} ]] || { mkdir -p /etc/libvirt/hooks/qemu.d &&
		install -m 755 "$1" "/etc/libvirt/hooks/qemu.d/${1##*/}"; }
}

write_config() {
	cat >/etc/libvirt/qemu.conf <<-'EOF' &&
		user = "root"
		group = "root"
		dynamic_ownership = 0
		remember_owner = 0
		security_driver = "none"
		namespaces = [ ]
		cgroup_controllers = [ ]
		stdio_handler = "file"
	EOF
		cat >/etc/libvirt/libvirtd.conf <<-'EOF'
			auth_unix_rw = "none"
			auth_unix_ro = "none"
			log_outputs = "3:stderr"
		EOF
}

start_libvirtd() {
	echo "==== $(date +%T) libvirtd" >>"$VM_RESULTS/libvirtd.log"
	# cwd / as under systemd: hooks inherit it
	(cd / && exec /usr/sbin/libvirtd --pid-file=/run/libvirtd.pid \
		</dev/null >>"$VM_RESULTS/libvirtd.log" 2>&1) &
	LIBVIRTD_PID=$!
	libvirtd_t0=$EPOCHREALTIME
}

# libvirtd takes clients only once its drivers are up: until then virsh
# waits in connect.
libvirtd_answers() {
	if wait_for "test -S /run/libvirt/libvirt-sock || ! kill -0 $LIBVIRTD_PID 2>/dev/null" 60 &&
		kill -0 "$LIBVIRTD_PID" 2>/dev/null && timeout 120 virsh uri >/dev/null; then
		vm_log "  libvirtd answered $(since "$libvirtd_t0") s after it started"
		return 0
	fi
	vm_log "  libvirtd did not answer; its log:"
	tail -n 20 "$VM_RESULTS/libvirtd.log"
	return 1
}

# The domain and libvirtd go before the bus and the daemon (vm_finish).
libvirt_stop() {
	[[ -n $LIBVIRTD_PID ]] || return 0
	[[ $(virsh domstate "$dom" 2>/dev/null) == running ]] && virsh destroy "$dom" >/dev/null 2>&1
	vm_stop_pid "$LIBVIRTD_PID" libvirtd 20 || true
	cp "/var/log/libvirt/qemu/$dom.log" "$VM_RESULTS/qemu-$dom.log" 2>/dev/null
	return 0
}
