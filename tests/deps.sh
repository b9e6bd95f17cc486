#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the Debian 12 packages vfiomig needs to build and test, and
# nothing when they are all present. Usage: tests/deps.sh [build|test]
set -euo pipefail

# libxml2-dev: libvirt-dev does not pull it in (its headers only: vfiomigd
# and the hook load libxml2 itself when they first read domain XML, so
# nothing links it and run lists the library). The unit tests' libvirt
# test driver (test:///) is part of libvirt0 itself.
build=(meson ninja-build pkg-config gcc libc6-dev
       libsystemd-dev libglib2.0-dev libudev-dev libmnl-dev libvirt-dev libxml2-dev libjson-glib-dev scdoc)
# a private system bus, busctl and systemd-analyze, umockdev sysfs trees,
# python-dbusmock's polkitd, setpriv for unprivileged callers, a FUSE
# vendor driver, script(1) for a terminal, pyflakes for the test code;
# clang and its libFuzzer runtime for the fuzz tier, valgrind for the demo;
# a real libvirtd with its QEMU driver, virsh and QEMU for the libvirt hook
# tests (not libvirt-daemon-system: no systemd units or policy are needed,
# tests/integration/libvirtd.py makes the user and groups it would make;
# the VM tier's scenario-libvirt.sh runs the same packages inside its guest,
# which sees the host's root) and gdbus, which prints a D-Bus error's name;
# openssh's server and client for the cross-host test over a real sshd,
# which runs its own sshd in a network namespace of its own (where systemd
# runs, the package also enables and starts the machine's sshd: the tests
# never use it)
run=(dbus dbus-daemon systemd util-linux libxml2)
test=(umockdev gir1.2-umockdev-1.0 python3 python3-gi python3-dbus python3-dbusmock
      python3-fuse fuse3 bsdutils python3-pyflakes clang libclang-rt-14-dev valgrind
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 libglib2.0-bin
      openssh-server openssh-client)

want=("${build[@]}" "${run[@]}")
[ "${1:-test}" = test ] && want+=("${test[@]}")

missing=()
for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        echo "Missing packages: ${missing[*]}; run this as root to install them." >&2
        exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
