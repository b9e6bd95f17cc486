#!/bin/bash
# Prepares QEMU from bookworm-backports (10.x) for scenarios that need a
# QEMU able to migrate VFIO devices (Debian 12's 7.2 cannot: libvirt
# refuses `virsh save` of a domain holding one). The packages come through
# a private apt list whose URI is read at run time from the machine's own
# Debian source, are unpacked with dpkg-deb -x into the VM tier's cache
# (never installed over the host's QEMU) and run through a wrapper that
# points QEMU at its own modules and firmware. The guest sees the wrapper at
# the same path through the shared host root. A warm run touches neither
# apt nor the network. Logs go to stderr; stdout carries
# VM_QEMU_BACKPORTS=WRAPPER for run-vm.sh.
#
# Env: VFIOMIG_VM_CACHE (default /var/cache/vfiomig-vm),
# VFIOMIG_VM_QEMU_REFRESH_DAYS (default 7: look for a newer QEMU after that).
set -euo pipefail

cache=${VFIOMIG_VM_CACHE:-/var/cache/vfiomig-vm}
qc=$cache/qemu-backports
suite=bookworm-backports
sources=/etc/apt/sources.list.d/debian.sources
refresh_days=${VFIOMIG_VM_QEMU_REFRESH_DAYS:-7}

log() { echo "prepare-qemu: $*" >&2; }
die() {
	echo "prepare-qemu: ERROR: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (apt-get download, the cache)"
mkdir -p "$qc/lists/partial" "$qc/apt-cache/archives/partial"
exec 9>"$qc/.lock"
flock 9

# The mirror this machine already uses, so no host name lives in the
# repository. deb822 first, then the one-line format.
mirror_uri() {
	local uri
	uri=$(awk 'tolower($1) == "uris:" { print $2; exit }' "$sources" 2>/dev/null)
	[[ -n $uri ]] || uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
		/etc/apt/sources.list 2>/dev/null | head -n1)
	[[ -n $uri ]] && echo "$uri"
}

apt_private() {
	apt-get -o Dir::Etc::SourceList="$qc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$qc/lists" -o Dir::Cache="$qc/apt-cache" -o APT::Sandbox::User=root "$@"
}

# What installing QEMU from backports over this host would bring in:
# "NAME=VERSION" per line, from a simulated install against the private
# list alone (so everything else must already be on the host, as prepare.sh
# makes sure for Debian's own qemu-system-x86 and its libraries).
pick_set() {
	apt_private -s --no-install-recommends install "qemu-system-x86/$suite" 2>&1 |
		awk '$1 == "Inst" { v = $0; sub(/^[^(]*\(/, "", v); sub(/ .*/, "", v); print $2 "=" v }'
}

update_lists() {
	local uri
	uri=$(mirror_uri) || die "no Debian mirror URI in $sources or /etc/apt/sources.list"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$qc/sources.list"
	log "apt-get update ($suite only, private list in $qc/lists)"
	apt_private update >&2
}

fresh() { [[ -s $qc/pick && -n $(find "$qc/pick" -mtime -"$refresh_days" 2>/dev/null) ]]; }
# .done holds the package set that was unpacked
unpacked() { [[ -s $qc/pick && $(sed -n '2,$p' "$qc/pick") == "$(cat "$qc/$(sed -n 1p "$qc/pick")/root/.done" 2>/dev/null)" ]]; }
prepared() { [[ -s $qc/pick && -s $qc/$(sed -n 1p "$qc/pick")/root/.done ]]; }

if fresh && prepared; then
	log "cache hit: $(sed -n 1p "$qc/pick") (looked at $suite less than $refresh_days days ago)"
else
	if update_lists && set=$(pick_set) && grep -q '^qemu-system-x86=' <<<"$set"; then
		ver=$(sed -n 's/^qemu-system-x86=//p' <<<"$set")
		dir=${ver#*:}
		# Modules that were in Debian 12's qemu-system-common moved to
		# these: without them QEMU finds the host's 7.2 ones (see below).
		# Unpacked only, so a library they need may be missing
		# (libvirglrenderer1): such a module then fails to load, harmlessly.
		set+=$'\n'"qemu-system-modules-opengl=$ver"$'\n'"qemu-system-modules-spice=$ver"
		printf '%s\n%s\n' "$dir" "$set" >"$qc/pick.new"
		mv "$qc/pick.new" "$qc/pick"
	elif prepared; then
		log "warning: cannot look at $suite now; using $(sed -n 1p "$qc/pick") prepared before"
		touch "$qc/pick"
	else
		[[ -z ${set:-} ]] || log "apt's simulated install said: $(apt_private -s --no-install-recommends \
			install "qemu-system-x86/$suite" 2>&1 | tail -n 5)"
		die "cannot find qemu-system-x86 in $suite (is the Debian mirror reachable?)"
	fi
fi

dir=$(sed -n 1p "$qc/pick")
root=$qc/$dir/root
wrapper=$qc/$dir/qemu-system-x86_64
if unpacked; then
	log "cache hit: QEMU unpacked in $root"
else
	mapfile -t pkgs < <(sed -n '2,$p' "$qc/pick")
	log "downloading ${pkgs[*]}"
	rm -rf "${qc:?}/$dir" "$qc/debs"
	mkdir -p "$root" "$qc/debs"
	(cd "$qc/debs" && apt_private download "${pkgs[@]}" >&2) ||
		{ update_lists && (cd "$qc/debs" && apt_private download "${pkgs[@]}" >&2); } ||
		die "apt-get download ${pkgs[*]} failed"
	for d in "$qc"/debs/*.deb; do
		dpkg-deb -x "$d" "$root"
	done
	rm -rf "$qc/debs" "$root/usr/share/doc" "$root/usr/share/man"
	[[ -x $root/usr/bin/qemu-system-x86_64 ]] || die "no usr/bin/qemu-system-x86_64 in the packages"
	printf '%s\n' "${pkgs[@]}" >"$root/.done"
fi

# QEMU looks for a module in QEMU_MODULE_DIR, then in the host's own
# /usr/lib/x86_64-linux-gnu/qemu, and loads the first file of that name.
# One of the host's 7.2 modules aborts QEMU 10 (module.c: "Only modules from
# the same build can be loaded", then an assertion), and libvirt's
# capabilities probe (qom-list-types) loads every module QEMU knows. So each
# module the host has and the tree lacks gets an empty stand-in, which
# fails to load without harm.
libdir=$root/usr/lib/x86_64-linux-gnu
for m in /usr/lib/x86_64-linux-gnu/qemu/*.so; do
	[[ -e $m && ! -e $libdir/qemu/${m##*/} ]] || continue
	log "empty stand-in for the host's ${m##*/}"
	: >"$libdir/qemu/${m##*/}"
done

# The firmware search path would find the host's older SeaBIOS too: -L
# puts the tree's first. libvirt runs the emulator with a cleared
# environment, so the wrapper sets what QEMU needs.
{
	echo '#!/bin/sh'
	echo "# QEMU $dir from $suite, unpacked by tests/vm/prepare-qemu.sh"
	echo "export QEMU_MODULE_DIR=$libdir/qemu"
	# only if the set brought libraries of its own
	compgen -G "$libdir/*.so*" >/dev/null && echo "export LD_LIBRARY_PATH=$libdir"
	printf 'exec %s' "$root/usr/bin/qemu-system-x86_64"
	for d in "$root/usr/share/qemu" "$root/usr/share/seabios"; do
		[[ -d $d ]] && printf ' -L %s' "$d"
	done
	echo ' "$@"'
} >"$wrapper.new"
chmod 755 "$wrapper.new"
# unchanged: keep it as it was (a guest may be running it)
if cmp -s "$wrapper.new" "$wrapper"; then rm "$wrapper.new"; else mv "$wrapper.new" "$wrapper"; fi
"$wrapper" -version >&2 || die "$wrapper -version failed"

# Older versions are dead weight once a newer one is prepared.
for d in "$qc"/*/; do
	d=${d%/}
	[[ $d != "$qc/$dir" && -d $d/root ]] || continue
	log "removing stale QEMU cache $d"
	rm -rf "$d"
done

printf 'VM_QEMU_BACKPORTS=%q\n' "$wrapper"
