#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hotplug at scale: what one real add and one real remove of a device
cost the daemon, with 1,000, 10,000 and 40,000 devices in one identity
class and in 50. Prints, never asserts time; fails if the devices do not
come and go, or if a device of a known class costs the map a verdict.

An event is CreateMdev (or RemoveMdev) on the testbed: the simulated
device is made (or forgotten), the registry and every listener hear it
(the bus's signals, the flag cache, the domain index, the identity
derived and placed in the compatibility map) and the type's available
instances change. Each event is followed by a Peer.Ping, which the
daemon answers only after the deferred identity work has run. Per event,
min / median / max in microseconds:

- daemon own: the daemon's own timing of the event, CPU time of its main
  thread (GetMapStats' last-hotplug-usec + last-derive-usec): the
  testbed, the registry and its listeners, then the identities derived;
- daemon CPU: the main thread's run time as the kernel accounts it
  (schedstat) over the call and its Ping, less the median of a Ping
  alone on the same daemon: everything, D-Bus parsing and polkit's
  question included, and for RemoveMdev the walk through /proc for
  another holder of the device (printed alone as "holder scan", from
  GetDevice, which does it too): that walk grows with the processes and
  open files on the machine, not with the devices;
- end to end: the client's wall time for the call and its Ping, less
  the median of a Ping alone.
(The map's own last-change-usec would say nothing here: after a removal
it is the no-op update of the type's node that follows.)

The daemons of all sizes of a layout run side by side and take their
events in turns (ROUNDS of them), so that a busy machine weighs on every
size alike. RATIO lines compare the median per-event cost at 40,000
devices with that at 1,000 (goal <= 1.5: the cost of one event does not
grow with the number of devices), the daemon's own timing first. Each testbed's
start-up time is printed too. The runtime directory (a node file per
simulated device) is on tmpfs where there is one, as /run is on a host.
VFIOMIG_BENCH_SIZES (e.g. "1000,10000") and VFIOMIG_BENCH_EVENTS change
the sizes and the number of adds (and as many removes) per size.
"""

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from gi.repository import GLib  # noqa: E402
from vfiomigtest import Daemon, PrivateBus  # noqa: E402

SIZES = [int(s) for s in os.environ.get('VFIOMIG_BENCH_SIZES', '1000,10000,40000').split(',')]
EVENTS = int(os.environ.get('VFIOMIG_BENCH_EVENTS', 200))
WARMUP = 20
ROUNDS = 10
LAYOUTS = [1, 50]       # identity classes: one mdev type each, with its own version


def uuid(n):
    return f'{n:08x}-0000-4000-8000-000000000000'


def conf(devices, classes):
    per_class = -(-devices // classes)
    lines = ['[Parent simgpu]', 'Driver=simgpu', 'Iommu=none', '']
    for c in range(classes):
        lines += [f'[Type simgpu/cls-{c:02d}]', f'MaxInstances={per_class + EVENTS + WARMUP}',
                  'MigrationFlags=stop-copy,p2p', 'StateSize=4K', 'MigrationType=bench-gpu',
                  f'MigrationVersion=ver-{c:02d}', '']
    for i in range(devices):
        lines += [f'[Device {uuid(i)}]', 'Kind=mdev', 'Parent=simgpu', f'Type=cls-{i % classes:02d}', '']
    return '\n'.join(lines)


class MainThread:
    """The daemon's main thread as the kernel accounts it."""

    def __init__(self, pid):
        self.schedstat = f'/proc/{pid}/task/{pid}/schedstat'
        self.stat = f'/proc/{pid}/task/{pid}/stat'

    def idle(self):
        # the field after the parenthesised command name
        with open(self.stat, encoding='ascii') as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'S'

    def run_ns(self):
        """Time on CPU so far, once the thread waits for the next message
        (it may still be finishing the last loop iteration)."""
        for _ in range(1000):
            if self.idle():
                break
            time.sleep(0.0001)
        with open(self.schedstat, encoding='ascii') as f:
            return int(f.read().split()[0])


class Session:

    def __init__(self, tmp, devices, classes):
        self.classes = classes
        path = os.path.join(tmp, f'testbed-{devices}-{classes}.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(conf(devices, classes))
        self.bus = PrivateBus()
        env = {'RUNTIME_DIRECTORY': os.path.join(tmp, f'run-{devices}-{classes}'),
               'STATE_DIRECTORY': os.path.join(tmp, f'state-{devices}-{classes}')}
        t0 = time.monotonic()
        self.daemon = Daemon(self.bus, [f'--testbed={path}', '--log-level=notice'], env)
        self.startup = time.monotonic() - t0
        self.conn = self.bus.connect()
        self.thread = MainThread(self.daemon.proc.pid)

    def close(self):
        self.conn.close_sync(None)
        rc = self.daemon.stop()
        self.bus.stop()
        if rc not in (0, None):
            raise AssertionError(f'vfiomigd exited with {rc}')

    def call(self, method, signature=None, args=None, interface='org.vfiomig1.Manager'):
        return self.conn.call_sync('org.vfiomig1', '/org/vfiomig1', interface, method,
                                   GLib.Variant(signature, args) if signature else None,
                                   None, 0, 60000, None).unpack()

    def ping(self):
        self.call('Ping', interface='org.freedesktop.DBus.Peer')

    def measure(self, fn):
        """Daemon CPU (us) and wall time (us) of fn and a Ping after it."""
        cpu0 = self.thread.run_ns()
        t0 = time.perf_counter_ns()
        fn()
        self.ping()
        wall = time.perf_counter_ns() - t0
        return (self.thread.run_ns() - cpu0) / 1000, wall / 1000

    def map_stats(self):
        return self.call('GetMapStats', interface='org.vfiomig1.Testbed')[0]

    def event(self, fn):
        """One event's costs (us): the daemon's own timing of it, its main
        thread's CPU and the client's wall time (each with the Ping)."""
        cpu, wall = self.measure(fn)
        st = self.map_stats()
        return {'own': st['last-hotplug-usec'] + st['last-derive-usec'], 'cpu': cpu, 'wall': wall}

    def events(self, first, n):
        """Adds n devices, then removes them."""
        out = {'add': [], 'remove': []}
        made = []
        for i in range(n):
            name = uuid(first + i)
            cls = f'cls-{i % self.classes:02d}'
            out['add'].append(self.event(lambda: self.call('CreateMdev', '(sssa{sv})', ('simgpu', cls, name, {}))))
            made.append(name)
        for name in made:
            out['remove'].append(self.event(lambda: self.call('RemoveMdev', '(sa{sv})', (name, {}))))
        return out

    def start(self):
        self.events(0x10000000, WARMUP)
        self.verdicts = self.map_stats()['verdicts']
        self.samples = {'ping': [], 'scan': [], 'add': [], 'remove': []}

    def batch(self, first, n):
        """n events of each kind, and the baselines beside them."""
        self.samples['ping'] += [self.measure(lambda: None) for _ in range(n)]
        # the /proc walk for whoever else holds a device: RemoveMdev
        # does it, and GetDevice does it and little else
        self.samples['scan'] += [self.measure(lambda: self.call('GetDevice', '(s)', (uuid(0),)))
                                 for _ in range(max(n // 4, 1))]
        for kind, events in self.events(first, n).items():
            self.samples[kind] += events

    def result(self, devices):
        judged = self.map_stats()['verdicts'] - self.verdicts
        if judged:
            raise AssertionError(f'{judged} verdicts judged for devices of known classes')
        count = self.call('Get', '(ss)', ('org.vfiomig1.Manager', 'DeviceCount'),
                          interface='org.freedesktop.DBus.Properties')[0]
        if count != devices:
            raise AssertionError(f'{count} devices after as many adds as removes, not {devices}')
        base_cpu = statistics.median(c for c, _ in self.samples['ping'])
        base_wall = statistics.median(w for _, w in self.samples['ping'])
        result = {'ping': (base_cpu, base_wall), 'scan': statistics.median(c for c, _ in self.samples['scan']) - base_cpu}
        for kind in ('add', 'remove'):
            events = self.samples[kind]
            result[kind] = {'own': [e['own'] for e in events], 'cpu': [e['cpu'] - base_cpu for e in events],
                            'wall': [e['wall'] - base_wall for e in events]}
        return result


def tmpfs_dir():
    """Where the runtime directory goes: on tmpfs, as /run is on a host, so
    that a disk filesystem's inode allocation for each simulated device's
    node file is not what gets measured."""
    with open('/proc/mounts', encoding='utf-8') as f:
        mounts = {line.split()[1]: line.split()[2] for line in f}
    for d in ('/run', '/dev/shm'):
        if mounts.get(d) == 'tmpfs' and os.access(d, os.W_OK):
            return d
    return None


def mmm(values):
    return f'{min(values):7.0f} /{statistics.median(values):7.0f} /{max(values):7.0f}'


def ratio(results, classes, kind, what):
    lo, hi = results[(classes, min(SIZES))], results[(classes, max(SIZES))]
    return statistics.median(hi[kind][what]) / max(statistics.median(lo[kind][what]), 1)


def run():
    where = tmpfs_dir()
    print(f'runtime directories on {where + " (tmpfs)" if where else "the default temporary directory (not tmpfs)"}; '
          f'{EVENTS} adds and {EVENTS} removes per size, in {ROUNDS} rounds across the sizes')
    with tempfile.TemporaryDirectory(prefix='vfiomig-bench-hotplug-', dir=where) as tmp:
        results = {}
        for classes in LAYOUTS:
            # every size at once, their events interleaved in rounds, so
            # that the load of a busy machine falls on all of them alike
            sessions = {}
            try:
                for devices in SIZES:
                    sessions[devices] = Session(tmp, devices, classes)
                    sessions[devices].start()
                for r in range(ROUNDS):
                    for s in sessions.values():
                        s.batch(0x20000000 + r * 0x10000, EVENTS // ROUNDS)
                for devices, s in sessions.items():
                    results[(classes, devices)] = s.result(devices)
            finally:
                for s in sessions.values():
                    s.close()
            for devices, s in sessions.items():
                r = results[(classes, devices)]
                print(f'{devices:6d} devices in {classes:2d} class{"es" if classes > 1 else "  "}: '
                      f'start-up {s.startup * 1000:5.0f} ms; Ping alone: daemon CPU {r["ping"][0]:.0f} us, '
                      f'round trip {r["ping"][1]:.0f} us; holder scan: daemon CPU {r["scan"]:.0f} us', flush=True)
                for kind in ('add', 'remove'):
                    e = r[kind]
                    print(f'  {kind:6s} per event, min / median / max us: daemon own {mmm(e["own"])} | '
                          f'daemon CPU {mmm(e["cpu"])} | end to end {mmm(e["wall"])}', flush=True)
        for classes in LAYOUTS:
            parts = [f'{kind} {ratio(results, classes, kind, "own"):.2f} (daemon CPU '
                     f'{ratio(results, classes, kind, "cpu"):.2f}, end to end {ratio(results, classes, kind, "wall"):.2f})'
                     for kind in ('add', 'remove')]
            print(f'RATIO per-event cost {max(SIZES):,}/{min(SIZES):,} devices in {classes} '
                  f'class{"es" if classes > 1 else ""}, daemon own timing (goal <= 1.5): {"; ".join(parts)}')


if __name__ == '__main__':
    run()
