#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The compatibility map at scale: 10,000 devices in 50 identity classes,
vendor basis, judged by the testbed's simulated drivers (every call that
reaches a driver is counted by the map). Prints, never asserts time:

- map build time and the vendor checks it took, against the naive
  all-pairs search (10,000 x 9,999 writes) the seeds' protocol implies;
- FindTargets latency over D-Bus, next to a bare sd-bus server giving
  the same reply over the same kind of bus, in the same run.

What a hotplugged device costs, at 1,000 to 40,000 devices, is
bench-hotplug.py.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from gi.repository import GLib  # noqa: E402
from vfiomigtest import BUILDDIR, Daemon, PrivateBus  # noqa: E402

DEVICES = int(os.environ.get('VFIOMIG_BENCH_DEVICES', 10000))
CLASSES = 50
PER_CLASS = DEVICES // CLASSES
FIND_RUNS = 100
FAMILY = 5      # a newer version in a family takes the older ones' state


def conf():
    lines = ['[Parent simgpu]', 'Driver=simgpu', '']
    for c in range(CLASSES):
        older = [f'ver-{v:02d}' for v in range(c - c % FAMILY, c + 1)]
        lines += [f'[Type simgpu/cls-{c:02d}]', f'MaxInstances={PER_CLASS + 50}', 'MigrationFlags=stop-copy,p2p',
                  'StateSize=4K', 'MigrationType=bench-gpu', f'MigrationVersion=ver-{c:02d}',
                  f'AcceptVersions={";".join(older)}', '']
    for i in range(DEVICES):
        lines += [f'[Device {i:08x}-0000-4000-8000-000000000000]', 'Kind=mdev', 'Parent=simgpu',
                  f'Type=cls-{i % CLASSES:02d}', '']
    return '\n'.join(lines)


def raw_call(conn, method, signature=None, args=None, interface='org.vfiomig1.Manager', path='/org/vfiomig1'):
    return conn.call_sync('org.vfiomig1', path, interface, method,
                          GLib.Variant(signature, args) if signature else None, None, 0, 60000, None)


def call(*args, **kw):
    return raw_call(*args, **kw).unpack()


def stats(conn):
    return call(conn, 'GetMapStats', interface='org.vfiomig1.Testbed')[0]


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def spread(values):
    return (f'min {min(values) * 1000:.3f}  median {statistics.median(values) * 1000:.3f}  '
            f'max {max(values) * 1000:.3f} ms')


def cpu_seconds(pid):
    """CPU time of all of pid's threads, to the nanosecond (schedstat)."""
    total = 0
    for task in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{task}/schedstat', encoding='ascii') as f:
            total += int(f.read().split()[0])
    return total / 1e9


def find_targets(tmp, conn, daemon_pid):
    """FindTargets against a bare sd-bus server (bench-bus-reply) that owns
    org.vfiomig1 on a bus of its own and gives the same reply without
    looking anything up: the same dbus-daemon, marshalling and parsing,
    the calls interleaved."""
    args = ('bench-gpu', 'ver-07', {})
    rows = call(conn, 'FindTargets', '(ssa{sv})', args)[0]
    path = os.path.join(tmp, 'find-targets-reply')
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines('\t'.join(row) + '\n' for row in rows)
    bus = PrivateBus()      # the last bus made is the environment's: nothing else uses it from here on
    server = subprocess.Popen([os.path.join(BUILDDIR, 'tests', 'bench', 'bench-bus-reply'), path],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, 'DBUS_SYSTEM_BUS_ADDRESS': bus.address})
    bare_conn = None
    try:
        if server.stdout.readline().strip() != 'ready':
            raise RuntimeError('bench-bus-reply did not start')
        bare_conn = bus.connect()
        if call(bare_conn, 'FindTargets', '(ssa{sv})', args)[0] != rows:
            raise RuntimeError('bench-bus-reply gives another reply')
        find, bare, ping = [], [], []
        find_cpu, bare_cpu = cpu_seconds(daemon_pid), cpu_seconds(server.pid)
        for _ in range(FIND_RUNS):
            find.append(timed(lambda: raw_call(conn, 'FindTargets', '(ssa{sv})', args)))
            bare.append(timed(lambda: raw_call(bare_conn, 'FindTargets', '(ssa{sv})', args)))
        # the servers' CPU time over all calls (vfiomigd's includes what
        # little it does between calls)
        find_cpu, bare_cpu = cpu_seconds(daemon_pid) - find_cpu, cpu_seconds(server.pid) - bare_cpu
        for _ in range(FIND_RUNS):
            ping.append(timed(lambda: raw_call(conn, 'Ping', interface='org.freedesktop.DBus.Peer')))
    finally:
        if bare_conn:
            bare_conn.close_sync(None)
        server.kill()
        server.wait()
        bus.stop()
    r = [b / f for f, b in zip(find, bare)]
    print(f'FINDTARGETS over D-Bus, {len(rows)} candidates, {FIND_RUNS} calls each:')
    print(f'  vfiomigd:                            {spread(find)}')
    print(f'  bare sd-bus server, the same reply:  {spread(bare)}')
    print(f'  Peer.Ping to vfiomigd, empty reply:  {spread(ping)}')
    print(f'RATIO findtargets/bare-reply: median {statistics.median(r):.3f}  (min {min(r):.3f}, max {max(r):.3f} '
          f'over {FIND_RUNS} pairs)   (the lookup is the difference)')
    print(f'  the servers\' CPU time per call: vfiomigd {find_cpu / FIND_RUNS * 1000:.3f} ms, bare '
          f'{bare_cpu / FIND_RUNS * 1000:.3f} ms, ratio {bare_cpu / max(find_cpu, 1e-6):.3f} '
          f'(less swayed by a busy machine)')


def run():
    with tempfile.TemporaryDirectory(prefix='vfiomig-bench-compat-') as tmp:
        path = os.path.join(tmp, 'testbed.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(conf())
        bus = PrivateBus()
        t0 = time.monotonic()
        daemon = Daemon(bus, [f'--testbed={path}', '--log-level=info'],
                        {'RUNTIME_DIRECTORY': os.path.join(tmp, 'run'), 'STATE_DIRECTORY': os.path.join(tmp, 'state')})
        startup = time.monotonic() - t0
        conn = bus.connect()
        try:
            s = stats(conn)
            naive = DEVICES * (DEVICES - 1)
            print(f'{int(s["nodes"])} nodes ({DEVICES} devices, {CLASSES} mdev types) in {int(s["classes"])} classes; '
                  f'daemon up in {startup:.2f} s')
            print(f'MAP BUILD: {s["build-usec"] / 1000:.1f} ms, {s["verdicts"]} verdicts, '
                  f'{s["vendor-checks"]} vendor checks  (goal <= 2500) | naive all-pairs: {naive:,} vendor writes, '
                  f'{naive / max(s["vendor-checks"], 1):,.0f}x more')
            per_check = s['build-usec'] / max(s['vendor-checks'], 1)
            print(f'  at {per_check:.1f} us per judged pair here, the naive search would take '
                  f'{naive * per_check / 1e6 / 3600:.1f} hours')

            # the round trip only: turning 600 tuples into Python objects
            # takes longer than vfiomigd does to find them
            find_targets(tmp, conn, daemon.proc.pid)
        finally:
            conn.close_sync(None)
            daemon.stop()
            bus.stop()


if __name__ == '__main__':
    run()
