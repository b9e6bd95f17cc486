#!/bin/sh
# Stage 1 of the VM tier guest: /init of the initramfs, run by busybox sh as
# PID 1. It loads the modules, builds the root (host root shared read-only over
# 9p, made writable by an overlay on tmpfs) and hands over to stage 2.
# prepare.sh copies this file into the initramfs; it never runs on the host.

export PATH=/bin

die() {
	echo "VFIOMIG-VM-RESULT: FAIL (guest init: $*)"
	poweroff -f
	sleep 10
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

# run-vm.sh's KVM probe only needs to know that the kernel reaches userspace.
if grep -q 'vfiomig.probe=1' /proc/cmdline; then
	echo "VFIOMIG-VM-PROBE-OK"
	poweroff -f
	sleep 10
fi

# run-vm.sh names the machine (vfiomig.machine=) when it is not the default
# one, and asks for the shared directory (vfiomig.share=1) when there is one.
machine=
share=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case $arg in
	vfiomig.machine=*) machine=${arg#vfiomig.machine=} ;;
	vfiomig.share=1) share=1 ;;
	esac
done

# load.order lists dependencies before their users (computed from
# modules.dep by prepare.sh); busybox insmod does no dependency resolution.
# load.MACHINE: what only that machine loads, after the rest.
load_modules() {
	while read -r mod; do
		insmod "/lib/vm-modules/$mod.ko" || die "insmod $mod failed"
	done <"$1"
}
load_modules /lib/vm-modules/load.order
if [ -n "$machine" ] && [ -e "/lib/vm-modules/load.$machine" ]; then
	load_modules "/lib/vm-modules/load.$machine"
fi

# A virtio 9p tag can be mounted only once at a time, so the host root is
# mounted once here and bind-mounted wherever else it is needed.
# cache=loose is safe because the tree is read-only for the guest and the host
# is not expected to change it while a scenario runs.
p9opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "ro,cache=loose,$p9opts" hostroot /lower || die "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /upper || die "tmpfs for overlay"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
	die "cannot mount the overlay root"

mkdir -p /newroot/mnt/host /newroot/mnt/results
mount --bind /lower /newroot/mnt/host || die "bind /mnt/host"
# No caching on the results share: the host reads it right after poweroff.
mount -t 9p -o "rw,cache=none,$p9opts" results /newroot/mnt/results || die "cannot mount the results share (9p tag results)"
if [ -n "$share" ]; then
	mkdir -p /newroot/mnt/share
	mount -t 9p -o "rw,cache=none,$p9opts" share /newroot/mnt/share || die "cannot mount the shared directory (9p tag share)"
fi

for d in run tmp var/tmp var/lib/vfiomig dev/shm; do
	mode=0755
	case $d in tmp | var/tmp | dev/shm) mode=1777 ;; esac
	mkdir -p "/newroot/$d"
	mount -t tmpfs -o "mode=$mode,nosuid,nodev" tmpfs "/newroot/$d" || die "tmpfs on /$d"
done
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mkdir -p /newroot/dev/pts
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts

# Stage 2 and a static busybox live on the guest's own tmpfs so that they work
# whatever the host root contains.
mkdir -p /newroot/run/vfiomig-vm
cp /bin/busybox /stage2.sh /newroot/run/vfiomig-vm/
exec switch_root /newroot /run/vfiomig-vm/busybox sh /run/vfiomig-vm/stage2.sh
