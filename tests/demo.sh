#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what is missing, builds, starts vfiomigd with the embedded
# testbed on a private system bus, and walks through a client session;
# with --shell, leaves you in a shell there instead.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=session
case ${1:-} in
"") ;;
--shell) mode=shell ;;
-h | --help)
        echo "usage: $0 [--shell]"
        echo "Runs vfiomigd with the built-in testbed on a private system bus, then a scripted"
        echo "client session; --shell starts a shell there instead, where vfiomigctl and"
        echo "busctl --system reach it. Everything is stopped and removed when it ends."
        exit 0
        ;;
*)
        echo "$0: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
esac

# Only what building and running need: the tests' tools (umockdev,
# dbusmock) are looked up only when the tests are built.
tests/deps.sh build
[ -f build/build.ninja ] || meson setup build -Dtests=disabled >/dev/null
ninja -C build >/dev/null

dir=$(mktemp -d /tmp/vfiomig-demo.XXXXXX)
cleanup() {
        [ -n "${monitor:-}" ] && kill "$monitor" 2>/dev/null
        [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
        [ -n "${bus:-}" ] && kill "$bus" 2>/dev/null
        rm -rf "$dir"
}
trap cleanup EXIT

sed -e "s|@SOCKET@|$dir/bus|" -e "s|@SERVICEDIR@||" -e "s|@POLICY@|$PWD/dbus/org.vfiomig1.conf|" \
        tests/private-bus.conf.in > "$dir/bus.conf"
# the address is printed once the socket listens (the file exists a moment
# before, when connects are still refused)
mkfifo "$dir/ready"
dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile --print-address=3 3>"$dir/ready" & bus=$!
read -r _ <"$dir/ready" || { echo "dbus-daemon did not start" >&2; exit 1; }
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/bus"

# VFIOMIG_DEMO_WRAPPER runs the daemon under e.g. valgrind (tests/fuzz/README.md)
RUNTIME_DIRECTORY=$dir/run STATE_DIRECTORY=$dir/state \
	${VFIOMIG_DEMO_WRAPPER:-} build/daemon/vfiomigd --testbed=default 2>"$dir/vfiomigd.log" & daemon=$!
# NameHasOwner rather than 'busctl status': the latter also reads the
# owner's cgroup, which fails in containers without /sys/fs/cgroup.
owned() {
        busctl --system call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus NameHasOwner s org.vfiomig1 2>/dev/null | grep -q true
}
until owned; do
        kill -0 $daemon 2>/dev/null || { cat "$dir/vfiomigd.log"; exit 1; }
        sleep 0.05
done

if [[ $mode == shell ]]; then
        # A shell of its own, so that leaving it (exit, ^D, end of input)
        # comes back here and the trap stops the daemon and the bus.
        cat >"$dir/bashrc" <<-EOF
		[ -f ~/.bashrc ] && . ~/.bashrc
		export PATH="$PWD/build/client:\$PATH" DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS"
		[ -f "$PWD/client/vfiomigctl.bash-completion" ] && . "$PWD/client/vfiomigctl.bash-completion"
		PS1="(vfiomig testbed) \$PS1"
	EOF
        echo "vfiomigd runs on a private system bus with the built-in testbed (log: $dir/vfiomigd.log)."
        echo "vfiomigctl and busctl --system reach it here; 'exit' stops it and removes everything."
        PATH="$PWD/build/client:$PATH" bash --rcfile "$dir/bashrc" -i || true
        exit 0
fi

ctl=build/client/vfiomigctl
# Commands in bold, as vfiomigctl colours: on a terminal, unless NO_COLOR
# is set or TERM is dumb.
bold='' plain=''
if [ -t 1 ] && [ -z "${NO_COLOR+set}" ] && [ "${TERM:-dumb}" != dumb ]; then
        bold=$'\033[1m' plain=$'\033[0m'
fi
# Every command is printed as a shell would read it, then run as printed.
show() {
        local out='' a
        for a in "$@"; do
                case $a in
                *[!A-Za-z0-9_./:=@%+,-]*|'') a="'${a//\'/\'\\\'\'}'" ;;
                esac
                out+="${out:+ }$a"
        done
        printf '\n%s$ %s%s\n' "$bold" "$out" "$plain"
}
step() { show "$@"; "$@"; }
# a pipeline, given as the one line that is printed and run
pipeline() { printf '\n%s$ %s%s\n' "$bold" "$1" "$plain"; eval "$1"; }

echo "vfiomigd is running on a private system bus with the embedded testbed (simulated devices)."
step "$ctl" list
step "$ctl" types
step "$ctl" show 0000:3b:00.1
step busctl --system get-property org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager Backend DeviceCount

"$ctl" monitor 2>/dev/null & monitor=$!
sleep 0.2
show "$ctl" create-mdev mtty mtty-2
uuid=$("$ctl" create-mdev mtty mtty-2)
echo "$uuid"
step "$ctl" --json show "$uuid"
step busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager ListTypes
step "$ctl" remove-mdev "$uuid"

echo
echo "The compatibility map answers 'where may this device's state go?' in one call:"
step "$ctl" targets 5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001
step "$ctl" compat 5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001 5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0003 || echo "(exit status $?)"
echo
echo "vDPA devices are judged on their virtio features (their VMM moves their state):"
step "$ctl" identity vdpa0
step "$ctl" compat vdpa0 vdpa1
step "$ctl" compat vdpa1 vdpa0 || echo "(exit status $?)"
step "$ctl" targets vdpa0
echo
echo "Migrations move a device's state; the testbed's digests show it arrived intact:"
a=5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001
b=5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0002
digest() { busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Testbed GetDigest s "$1"; }
echo "  source $a: $(digest $a)   target $b: $(digest $b)"
step "$ctl" migrate "$a" "$b"
echo "  target $b now: $(digest $b)"
echo "A migration leaves its source stopped (its state lives on in the target);"
echo "resume brings a stopped device that no job holds back to running:"
step "$ctl" resume "$a"
step "$ctl" save 0000:3b:00.1 snapshot
step ls -l "$dir/state/states"
step "$ctl" load 0000:3b:00.2 snapshot
step "$ctl" resume 0000:3b:00.1
pipeline "$ctl --source-state=running save 0000:3b:00.2 - | $ctl load 0000:3b:00.1 -"
echo
echo "A fault in the middle of a migration rolls everything back:"
step busctl --system call org.vfiomig1 /org/vfiomig1 org.vfiomig1.Testbed InjectFault ss "$a" \
	"transition from=resuming to=stop errno=EINVAL"
step "$ctl" migrate "$b" "$a" || echo "(exit status $?)"
echo
echo "Mistakes get clear errors and exit codes:"
step "$ctl" show 0000:3b:00.7 || echo "(exit status $?)"
step "$ctl" create-mdev mtty mtty-9 || echo "(exit status $?)"
echo
echo "Every VFIO device runs again:"
show "$ctl" list
listing=$("$ctl" list)
echo "$listing"
# by the header's STATE column, wherever it stands (vDPA devices have none)
if awk 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "STATE") c = i; if ($i == "KIND") k = i }; next }
        $k != "vdpa" && $c != "running" { bad = 1 } END { exit !bad }' <<<"$listing"; then
        echo "demo: a device was left stopped" >&2
        exit 1
fi
sleep 0.2
echo
echo "What 'vfiomigctl monitor' saw meanwhile is interleaved above (added/removed lines)."
echo "Daemon log:"
sed 's/^/  /' "$dir/vfiomigd.log"
