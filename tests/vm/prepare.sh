#!/bin/bash
# Prepares what the VM tier boots, cached outside the repository: a Debian
# 6.12 kernel, its guest modules decompressed, mtty.ko and the vDPA
# simulator (vringh.ko, vdpa_sim.ko, vdpa_sim_net.ko: Debian builds none of
# them) built from the matching kernel source, and a busybox initramfs. A warm run downloads and builds
# nothing. Logs go to stderr; stdout carries VM_* shell assignments for
# run-vm.sh (also saved as $cache/<version>/vm.env).
#
# Env: VFIOMIG_VM_CACHE (default /var/cache/vfiomig-vm), VFIOMIG_VM_KERNEL (pin
# a Debian version such as 6.12.117-1~deb12u1), VFIOMIG_VM_EXTRA_MODULES
# (space-separated, loaded in the guest too).
#
# The initramfs also carries the modules only one machine loads (see
# machine_modules), so that one image serves every machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VFIOMIG_VM_CACHE:-/var/cache/vfiomig-vm}
host_pkgs=(qemu-system-x86 busybox-static dwarves gcc gcc-12 make libelf-dev
	xz-utils bc flex bison cpio kmod dbus-daemon systemd iproute2)
guest_modules=(vfio vfio_iommu_type1 mdev 9p 9pnet_virtio overlay)
# Loaded after those (and mtty) only on the machine named: the guest's
# /init reads vfiomig.machine= from the kernel command line.
declare -A machine_modules=([q35-iommu]="vfio-pci")
# Loaded by the scenarios that want them (guest-lib's load_modules), from a
# module tree of their own in the cache, decompressed once; the guest reads
# it through the shared root (VFIOMIG_VM_MODULES). Only the vDPA scenarios
# need these, so no other boot pays for them. vhost_iotlb is for the
# simulator built below, which joins the same tree.
ondemand_modules=(vdpa vduse virtio_vdpa virtio_net virtio_blk vhost_iotlb)
# The only files taken from linux-source (paths in its tarball): one pass
# over the 150 MB tarball extracts them all. The headers package has every
# header they include; vdpa_sim.h is the one private header.
source_files=(samples/vfio-mdev/mtty.c drivers/vhost/vringh.c drivers/vdpa/vdpa_sim/vdpa_sim.c
	drivers/vdpa/vdpa_sim/vdpa_sim.h drivers/vdpa/vdpa_sim/vdpa_sim_net.c)
# Built out of tree from those, in one directory so that vdpa_sim finds
# vringh's symbols and vdpa_sim_net vdpa_sim's (one Module.symvers).
vdpasim_objs=(vringh vdpa_sim vdpa_sim_net)

log() { echo "prepare: $*" >&2; }
die() {
	echo "prepare: ERROR: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (apt-get, dpkg-deb, mknod)"
mkdir -p "$cache"
# Parallel test runs share the cache; the warm path is short, so serialise.
exec 9>"$cache/.lock"
flock 9

apt_updated=
apt_update_once() {
	[[ -n $apt_updated ]] && return
	log "apt-get update"
	apt-get update >&2 || die "apt-get update failed"
	apt_updated=1
}

missing=()
for p in "${host_pkgs[@]}"; do
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing missing host packages: ${missing[*]}"
	apt_update_once
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
fi

# The binary packages a kernel version needs besides linux-source-6.12.
kernel_pkgs() {
	local abi=${1%%-*}+deb12
	echo "linux-image-$abi-amd64-unsigned linux-headers-$abi-amd64 linux-headers-$abi-common linux-kbuild-$abi"
}

# Newest linux-source-6.12 version for which all kernel packages exist at the
# very same version (old ones vanish from bookworm-security, new ones can
# appear for some packages before others). Each apt-cache call costs ~1 s
# here, hence one call for all candidates.
pick_version() {
	local srcv v p avail ok
	srcv=$(apt-cache madison linux-source-6.12 2>/dev/null |
		awk -F'|' '{ gsub(/ /, "", $2); print $2 }' | sort -u -V -r)
	[[ -n $srcv ]] || return 1
	# shellcheck disable=SC2046  # word splitting wanted: many package names
	avail=$(apt-cache madison $(for v in $srcv; do kernel_pkgs "$v"; done) 2>/dev/null |
		awk -F'|' '{ gsub(/ /, ""); print $1 "=" $2 }')
	for v in $srcv; do
		ok=1
		for p in $(kernel_pkgs "$v"); do
			grep -qxF "$p=$v" <<<"$avail" || { ok= && break; }
		done
		[[ -n $ok ]] && { echo "$v" && return 0; }
	done
	return 1
}

# The choice only changes when the apt lists do: remember it per lists state.
lists_key=$(stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -d' ' -f1)
if [[ -n ${VFIOMIG_VM_KERNEL:-} ]]; then
	ver=$VFIOMIG_VM_KERNEL
elif [[ -s $cache/pick && $(head -n1 "$cache/pick") == "$lists_key" ]]; then
	ver=$(sed -n 2p "$cache/pick")
	log "cache hit: apt lists unchanged, kernel version $ver"
else
	ver=$(pick_version) || { apt_update_once && ver=$(pick_version); } ||
		die "no version of linux-source-6.12 with matching linux-image/headers/kbuild packages in apt (is bookworm-security enabled?)"
	[[ -n $apt_updated ]] && lists_key=$(stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* | sha256sum | cut -d' ' -f1)
	printf '%s\n%s\n' "$lists_key" "$ver" >"$cache/pick"
fi
read -ra kpkgs <<<"$(kernel_pkgs "$ver")"
krel=${ver%%-*}+deb12-amd64
kdir=$cache/$ver
root=$kdir/root
hdr=$root/usr/src/linux-headers-$krel
log "kernel $krel (Debian $ver)"

# 1. Download and unpack (dpkg-deb -x: no maintainer scripts, no install).
# linux-source comes along on a cold cache, so that step 1b need not fetch
# it again.
srcdeb=$kdir/debs/linux-source-6.12_${ver}_all.deb
if [[ -e $root/.done ]]; then
	log "cache hit: kernel packages unpacked in $root"
else
	rm -rf "$root" "$kdir/debs" "$kdir/src" "$kdir/mtty" "$kdir/vdpasim"
	mkdir -p "$kdir/debs" "$root"
	log "downloading ${kpkgs[*]} linux-source-6.12 ($ver)"
	dl() { (cd "$kdir/debs" && apt-get download -o APT::Sandbox::User=root "${kpkgs[@]/%/=$ver}" "linux-source-6.12=$ver" >&2); }
	dl || { apt_update_once && dl; } || die "apt-get download failed"
	for p in "${kpkgs[@]}"; do
		dpkg-deb -x "$kdir/debs/${p}_${ver}_"*.deb "$root"
	done
	# The headers' Makefile includes the -common one by absolute path.
	sed -i "s|^include /usr/src/|include $root/usr/src/|" "$hdr/Makefile"
	# Debian generates modules.dep in a postinst hook, which we skip.
	depmod -b "$root" "$krel"
	touch "$root/.done"
fi

# 1b. The kernel source files, extracted together. A cache that an older
# prepare.sh made (mtty.c only) fetches linux-source once more, for the rest.
src=$kdir/src
if [[ -s $src/.files && $(<"$src/.files") == "${source_files[*]}" ]]; then
	log "cache hit: kernel source files in $src"
else
	if [[ ! -s $srcdeb ]]; then
		mkdir -p "$kdir/debs"
		log "downloading linux-source-6.12 ($ver) for ${source_files[*]}"
		dls() { (cd "$kdir/debs" && apt-get download -o APT::Sandbox::User=root "linux-source-6.12=$ver" >&2); }
		dls || { apt_update_once && dls; } || die "apt-get download linux-source-6.12=$ver failed"
	fi
	log "extracting ${source_files[*]} from linux-source-6.12"
	rm -rf "$src" "$src.new"
	mkdir -p "$src.new"
	dpkg-deb --fsys-tarfile "$srcdeb" |
		tar -xO ./usr/src/linux-source-6.12.tar.xz |
		tar -xJ -C "$src.new" --strip-components=1 "${source_files[@]/#/linux-source-6.12/}" ||
		die "extracting ${source_files[*]} from linux-source-6.12 $ver failed"
	for f in "${source_files[@]}"; do
		[[ -s $src.new/$f ]] || die "$f not found in linux-source-6.12 $ver"
	done
	echo "${source_files[*]}" >"$src.new/.files"
	mv "$src.new" "$src"
fi
rm -rf "$kdir/debs"

# Out of tree against the unpacked headers: build_modules DIR NAME...
# builds NAME.ko from DIR's sources. Without a usable pahole, it builds
# without module BTF rather than fail.
build_modules() {
	local dir=$1 n
	shift
	echo "obj-m := ${*/%/.o}" >"$dir/Kbuild"
	mk() { make -C "$hdr" M="$dir" "$@" modules >"$dir/build.log" 2>&1; }
	mk || { log "build failed, retrying without BTF" && mk CONFIG_DEBUG_INFO_BTF_MODULES=; } ||
		{ tail -n 30 "$dir/build.log" >&2 && die "building $* failed (log: $dir/build.log)"; }
	for n in "$@"; do
		strip --strip-debug "$dir/$n.ko"
	done
}

# 2. mtty.ko. The directory stays where older prepare.sh versions look
# for it, as checkouts of different ages share this cache.
mtty=$kdir/mtty/mtty.ko
if [[ -s $mtty ]]; then
	log "cache hit: $mtty"
else
	log "building mtty.ko"
	mkdir -p "$kdir/mtty"
	cp "$src/samples/vfio-mdev/mtty.c" "$kdir/mtty/"
	build_modules "$kdir/mtty" mtty
fi

# 2a. The vDPA simulator. Only the on-demand tree carries it: the boots
# that do not load it neither see nor pay for it.
vdpasim=$kdir/vdpasim
if [[ -e $vdpasim/.done ]]; then
	log "cache hit: ${vdpasim_objs[*]/%/.ko} in $vdpasim"
else
	log "building ${vdpasim_objs[*]/%/.ko}"
	t0=$SECONDS
	rm -rf "$vdpasim"
	mkdir -p "$vdpasim"
	cp "$src/drivers/vhost/vringh.c" "$src"/drivers/vdpa/vdpa_sim/vdpa_sim{.c,.h,_net.c} "$vdpasim/"
	build_modules "$vdpasim" "${vdpasim_objs[@]}"
	log "built ${vdpasim_objs[*]/%/.ko} in $((SECONDS - t0)) s"
	touch "$vdpasim/.done"
fi

# 2b. The on-demand module tree: each module with what it needs, as modprobe
# resolves it from the kernel's modules.dep, decompressed (a .ko.xz takes
# seconds to load under TCG), with a modules.dep of its own.
ondemand=$kdir/modules-$({
	echo "${ondemand_modules[*]}"
	(cd "$vdpasim" && sha256sum "${vdpasim_objs[@]/%/.ko}")
} | sha256sum | cut -c1-16)
if [[ -e $ondemand/.done ]]; then
	log "cache hit: $ondemand"
	touch "$ondemand"
else
	log "decompressing on-demand modules into $ondemand"
	rm -rf "$ondemand" "$ondemand.new"
	odir=$ondemand.new/lib/modules/$krel
	mkdir -p "$odir/kernel"
	for m in "${ondemand_modules[@]}"; do
		modprobe -d "$root" -S "$krel" --show-depends "$m" || die "module $m not found in $krel"
	done | awk '$1 == "insmod" { print $2 }' | sort -u | while read -r ko; do
		name=${ko##*/}
		xz -dc "$ko" >"$odir/kernel/${name%.xz}"
	done
	# depmod finds what the simulator needs (vdpa, vhost_iotlb, vringh)
	# by their symbols.
	mkdir -p "$odir/extra"
	for m in "${vdpasim_objs[@]}"; do
		cp "$vdpasim/$m.ko" "$odir/extra/"
	done
	cp "$root/lib/modules/$krel/modules.builtin" "$root/lib/modules/$krel/modules.builtin.modinfo" "$odir/"
	(cd "$odir" && printf '%s\n' kernel/*.ko extra/*.ko >modules.order)
	depmod -b "$ondemand.new" "$krel"
	log "on-demand modules: $(cd "$odir" && echo kernel/* extra/*)"
	touch "$ondemand.new/.done"
	mv "$ondemand.new" "$ondemand"
fi

# 3. Guest modules in load order, and the initramfs. Both are cheap, so they
# are rebuilt whenever any input changes. Each set of inputs has its own
# file: checkouts with different guest scripts share this cache (and may
# boot at the same time), and must neither rebuild each other's image over
# and over nor swap it under a boot that is about to start.
read -ra extra <<<"${VFIOMIG_VM_EXTRA_MODULES:-}"
IFS=, read -ra mtty_deps <<<"$(modinfo -F depends "$mtty")"
want=("${guest_modules[@]}" "${mtty_deps[@]}" "${extra[@]}")
key=$({
	echo "${want[*]}"
	sha256sum "$mtty" "$here/prepare.sh" "$here/guest-init.sh" "$here/guest-stage2.sh" /bin/busybox
} | sha256sum | cut -d' ' -f1)
initrd=$kdir/initramfs-${key:0:16}.cpio
if [[ -s $initrd ]]; then
	log "cache hit: $initrd"
	touch "$initrd"
else
	log "building $initrd"
	moddir=$root/lib/modules/$krel
	declare -A mpath=() mdeps=() seen=()
	while IFS=: read -r path deps; do
		n=${path##*/} && n=${n%%.ko*} && n=${n//-/_}
		mpath[$n]=$path
		mdeps[$n]=$deps
	done <"$moddir/modules.dep"
	order=()
	visit() {
		local n=${1##*/} d
		n=${n%%.ko*} && n=${n//-/_}
		[[ -n ${seen[$n]:-} ]] && return
		seen[$n]=1
		if [[ -z ${mpath[$n]:-} ]]; then
			tr - _ <"$moddir/modules.builtin" | grep -q "/$n\.ko" && return
			die "module $1 is neither in modules.dep nor built in"
		fi
		for d in ${mdeps[$n]}; do visit "$d"; done
		order+=("$n")
	}
	for m in "${want[@]}"; do visit "$m"; done
	nbase=${#order[@]}
	# A machine's own modules, minus what every machine loads anyway.
	declare -A morder=()
	for machine in "${!machine_modules[@]}"; do
		first=${#order[@]}
		for m in ${machine_modules[$machine]}; do visit "$m"; done
		morder[$machine]="${order[*]:first}"
	done

	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	chmod 755 "$tmp"
	mkdir -p "$tmp"/{bin,dev,proc,sys,lower,upper,newroot,lib/vm-modules}
	cp /bin/busybox "$tmp/bin/"
	for a in $(/bin/busybox --list); do
		[[ $a == busybox ]] || ln -s busybox "$tmp/bin/$a"
	done
	# The kernel opens /dev/console for /init before anything is mounted.
	mknod -m 600 "$tmp/dev/console" c 5 1
	install -m 755 "$here/guest-init.sh" "$tmp/init"
	install -m 755 "$here/guest-stage2.sh" "$tmp/stage2.sh"
	# Decompressed once, here: busybox insmod cannot read .ko.xz, and
	# loading one in the guest takes ~16 s under TCG.
	for n in "${order[@]}"; do
		xz -dc "$moddir/${mpath[$n]}" >"$tmp/lib/vm-modules/$n.ko"
	done
	printf '%s\n' "${order[@]:0:nbase}" mtty >"$tmp/lib/vm-modules/load.order"
	cp "$mtty" "$tmp/lib/vm-modules/mtty.ko"
	for machine in "${!morder[@]}"; do
		: >"$tmp/lib/vm-modules/load.$machine"
		for n in ${morder[$machine]}; do echo "$n" >>"$tmp/lib/vm-modules/load.$machine"; done
	done
	(cd "$tmp" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$initrd.new"
	mv "$initrd.new" "$initrd"
	log "guest modules (load order): $(paste -sd' ' "$tmp/lib/vm-modules/load.order")"
	for machine in "${!morder[@]}"; do
		log "guest modules of machine $machine: $(paste -sd' ' "$tmp/lib/vm-modules/load.$machine")"
	done
fi

# The four images used last stay (a few checkouts at once); older ones go.
# shellcheck disable=SC2012  # our own file names: no odd characters
ls -t "$kdir"/initramfs-*.cpio 2>/dev/null | tail -n +5 | while read -r old; do
	log "removing unused initramfs $old"
	rm -f "$old"
done

# Likewise for the on-demand module trees.
# shellcheck disable=SC2012  # our own directory names
ls -td "$kdir"/modules-*/ 2>/dev/null | tail -n +5 | while read -r old; do
	log "removing unused module tree ${old%/}"
	rm -rf "${old%/}"
done

# Other kernel versions are dead weight once a newer one is prepared.
for d in "$cache"/*/; do
	d=${d%/}
	[[ $d != "$kdir" && -d $d/root ]] || continue
	log "removing stale kernel cache $d"
	rm -rf "$d"
done

{
	printf 'VM_KERNEL_VERSION=%q\n' "$ver"
	printf 'VM_KERNEL_RELEASE=%q\n' "$krel"
	printf 'VM_KERNEL=%q\n' "$root/boot/vmlinuz-$krel"
	printf 'VM_INITRD=%q\n' "$initrd"
	printf 'VM_CACHE_DIR=%q\n' "$kdir"
	printf 'VM_MODULES=%q\n' "$ondemand"
} | tee "$kdir/vm.env"
