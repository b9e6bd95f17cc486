#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The compatibility map at scale: 10,000 devices in 50 identity classes,
vendor basis, judged by the testbed's simulated drivers (every call that
reaches a driver is counted by the map). Prints, never asserts time:

- map build time and the vendor checks it took, against the naive
  all-pairs search (10,000 x 9,999 writes) the seeds' protocol implies;
- FindTargets latency over D-Bus, next to a bare D-Bus round trip
  measured in the same run.

What a hotplugged device costs, at 1,000 to 40,000 devices, is
bench-hotplug.py.
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from gi.repository import GLib  # noqa: E402
from vfiomigtest import Daemon, PrivateBus  # noqa: E402

DEVICES = int(os.environ.get('VFIOMIG_BENCH_DEVICES', 10000))
CLASSES = 50
PER_CLASS = DEVICES // CLASSES
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


def timed(fn, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
            find = timed(lambda: raw_call(conn, 'FindTargets', '(ssa{sv})', ('bench-gpu', 'ver-07', {})), 30)
            n = len(call(conn, 'FindTargets', '(ssa{sv})', ('bench-gpu', 'ver-07', {}))[0])
            ping = timed(lambda: raw_call(conn, 'Ping', interface='org.freedesktop.DBus.Peer'), 30)
            print(f'FINDTARGETS over D-Bus: median {find * 1000:.2f} ms for {n} candidates | bare D-Bus round trip '
                  f'(Peer.Ping): {ping * 1000:.3f} ms  RATIO {find / ping:.1f}x')
        finally:
            conn.close_sync(None)
            daemon.stop()
            bus.stop()


if __name__ == '__main__':
    run()
