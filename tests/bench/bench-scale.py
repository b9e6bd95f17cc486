#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigd with 10,000 simulated devices: listings, start-up and memory,
each beside a baseline measured in the same run. Prints, never asserts
time; fails only when an answer is wrong.

- LISTDEVICES: vfiomigd's CPU per call (utime+stime from /proc/PID/stat
  over many calls), the wall time of a call read by a C client that makes
  nothing of the reply, and a bus round trip (Peer.Ping).
- CLI: vfiomigctl list and list --json end to end (output read from a
  pipe) against busctl call of the same method.
- GETMANAGEDOBJECTS: the same figures as ListDevices, and their ratio.
- STARTUP: from exec until the first reply on org.vfiomig1, with 2,500,
  5,000 and 10,000 devices, against bench-bare-bus, which takes the name
  and answers; the cost per device. "warm" starts with the runtime
  directory the last run left (a restart on demand, and what every start
  on a real host is: the kernel made the device nodes); "cold" with an
  empty one, where the testbed first makes a file per device standing
  for its VFIO node: the simulation's work, so it has no goal.
- MEMORY: heap per device (mallinfo2 through Testbed.GetHeapStats, and
  the PSS of anonymous memory), RSS and PSS idle and after each kind of
  job on a small testbed, where what a job leaves shows most, beside a
  bare sd-bus+GLib program's.

Runtime directories and keyfiles live on /dev/shm, tmpfs as /run is.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from gi.repository import Gio, GLib  # noqa: E402
from vfiomigtest import BUILDDIR, VFIOMIGCTL, VFIOMIGD, Daemon, PrivateBus  # noqa: E402

DEVICES = int(os.environ.get('VFIOMIG_BENCH_DEVICES', 10000))
RUNS = int(os.environ.get('VFIOMIG_BENCH_RUNS', 5))
SECTIONS = os.environ.get('VFIOMIG_BENCH_SECTIONS', 'list,startup,memory').split(',')
BARE_BUS = os.path.join(BUILDDIR, 'tests', 'bench', 'bench-bare-bus')
BARE_GLIB = os.path.join(BUILDDIR, 'tests', 'bench', 'bench-bare-glib')
TMP = '/dev/shm' if os.path.isdir('/dev/shm') else None
CLASSES = 10
JOB_DEVICES = 6         # of type big, 4 MiB of state each: what the jobs move


def uuid(i):
    return f'{i:08x}-0000-4000-8000-000000000000'


def conf(n):
    """n devices: mdevs of CLASSES types with vendor versions, and the
    JOB_DEVICES of the big type among them."""
    lines = ['[Parent simgpu]', 'Driver=simgpu', 'Iommu=none', '']
    for c in range(CLASSES):
        lines += [f'[Type simgpu/cls-{c}]', f'MaxInstances={n // CLASSES + 10}',
                  'MigrationFlags=stop-copy,p2p,pre-copy', 'StateSize=4K', 'MigrationType=bench',
                  f'MigrationVersion=v{c}', '']
    lines += ['[Type simgpu/big]', f'MaxInstances={JOB_DEVICES}', 'MigrationFlags=stop-copy,p2p,pre-copy',
              'StateSize=4M', 'MigrationType=bench', 'MigrationVersion=big', '']
    for i in range(n):
        kind = 'big' if i < JOB_DEVICES else f'cls-{i % CLASSES}'
        lines += [f'[Device {uuid(i)}]', 'Kind=mdev', 'Parent=simgpu', f'Type={kind}', '']
    return '\n'.join(lines)


def stats(values):
    return f'min {min(values):.2f} median {statistics.median(values):.2f} max {max(values):.2f}'


def cpu_seconds(pid):
    fields = open(f'/proc/{pid}/stat', encoding='ascii').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def cpu_ns(pid):
    """CPU time of every thread so far, in ns (schedstat: finer than the
    ticks of /proc/PID/stat, for a start-up of milliseconds)."""
    total = 0
    for tid in os.listdir(f'/proc/{pid}/task'):
        with open(f'/proc/{pid}/task/{tid}/schedstat', encoding='ascii') as f:
            total += int(f.read().split()[0])
    return total


def memory(pid):
    """RSS, PSS and anonymous PSS in KiB."""
    m = {}
    with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as f:
        for line in f:
            key, _, rest = line.partition(':')
            if key in ('Rss', 'Pss', 'Pss_Anon'):
                m[key] = int(rest.split()[0])
    return m


def mib(kib):
    return f'{kib / 1024:.2f} MiB'


class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='vfiomig-bench-scale-', dir=TMP)
        self.bus = PrivateBus()
        self.conn = self.bus.connect()

    def close(self):
        self.conn.close_sync(None)
        self.bus.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def keyfile(self, n):
        path = os.path.join(self.dir, f'testbed-{n}.conf')
        if not os.path.exists(path):
            with open(path, 'w', encoding='utf-8') as f:
                f.write(conf(n))
        return path

    def dirs(self, name):
        run, state = os.path.join(self.dir, name, 'run'), os.path.join(self.dir, name, 'state')
        return {'RUNTIME_DIRECTORY': run, 'STATE_DIRECTORY': state}

    def call(self, method, signature=None, args=None, interface='org.vfiomig1.Manager', path='/org/vfiomig1'):
        return self.conn.call_sync('org.vfiomig1', path, interface, method,
                                   GLib.Variant(signature, args) if signature else None, None,
                                   Gio.DBusCallFlags.NONE, 120000, None).unpack()

    def daemon(self, n, name):
        return Daemon(self.bus, [f'--testbed={self.keyfile(n)}', '--log-level=notice'], self.dirs(name))

    def bare_calls(self, n, interface, method, path='/org/vfiomig1'):
        """Round trips in ms of a C client that reads each reply off the
        socket and makes nothing of it."""
        p = subprocess.run([BARE_BUS, 'call', str(n), 'org.vfiomig1', path, interface, method],
                           capture_output=True, text=True, check=True, timeout=600)
        return [int(line) / 1000 for line in p.stdout.split()]

    # ---- start-up ----

    def time_to_ready(self, argv, env):
        """Wall ms from exec until org.vfiomig1, taken, answers a Ping, and
        the CPU ms the program used until then."""
        loop = GLib.MainLoop()
        taken = []

        def on_owner(*args):
            if args[5][2]:
                taken.append(True)
                loop.quit()

        sub = self.conn.signal_subscribe('org.freedesktop.DBus', 'org.freedesktop.DBus', 'NameOwnerChanged',
                                         '/org/freedesktop/DBus', 'org.vfiomig1', Gio.DBusSignalFlags.NONE,
                                         on_owner, None)
        self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'GetId',
                            None, None, Gio.DBusCallFlags.NONE, -1, None)
        timeout = GLib.timeout_add(60000, loop.quit)
        log = open(os.path.join(self.dir, 'startup.log'), 'w', encoding='utf-8')
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        loop.run()
        if taken:
            self.conn.call_sync('org.vfiomig1', '/', 'org.freedesktop.DBus.Peer', 'Ping', None, None,
                                Gio.DBusCallFlags.NONE, 60000, None)
        elapsed = time.perf_counter() - t0
        cpu = cpu_ns(proc.pid) / 1e6 if taken else 0
        GLib.source_remove(timeout)
        self.conn.signal_unsubscribe(sub)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
        if not taken:
            with open(log.name, encoding='utf-8', errors='replace') as f:
                raise RuntimeError(f'{argv[0]} never took org.vfiomig1:\n{f.read()}')
        # the next one takes the name after this one has let it go
        while self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                  'NameHasOwner', GLib.Variant('(s)', ('org.vfiomig1',)), None,
                                  Gio.DBusCallFlags.NONE, -1, None).unpack()[0]:
            time.sleep(0.01)
        return elapsed * 1000, cpu

    def startup(self):
        bare, bare_cpu = [], []
        times, cpu = {}, {}
        sizes = sorted({DEVICES // 4, DEVICES // 2, DEVICES})
        for n in sizes:
            self.keyfile(n)
        for run in range(RUNS):
            wall, used = self.time_to_ready([BARE_BUS, 'serve', 'org.vfiomig1'], {})
            bare.append(wall)
            bare_cpu.append(used)
            for n in sizes:
                argv = [VFIOMIGD, '--libvirt-uri=', f'--testbed={self.keyfile(n)}']
                for mode in ('cold', 'warm'):
                    dirs = self.dirs(f'{mode}-{n}-{run}' if mode == 'cold' else f'warm-{n}')
                    wall, used = self.time_to_ready(argv, {**self.bus.daemon_env, **dirs})
                    times.setdefault((mode, n), []).append(wall)
                    cpu.setdefault((mode, n), []).append(used)
                    if mode == 'cold':
                        shutil.rmtree(os.path.dirname(dirs['RUNTIME_DIRECTORY']), ignore_errors=True)
        print(f'STARTUP (exec to first reply on the name, ms over {RUNS} runs): bare sd-bus program wall '
              f'{stats(bare)}, CPU {stats(bare_cpu)}')
        base = statistics.median(bare)
        for mode in ('cold', 'warm'):
            for n in sizes:
                print(f'  {mode} {n:>6} devices: wall {stats(times[(mode, n)])}; CPU {stats(cpu[(mode, n)])}')
            med = {n: statistics.median(times[(mode, n)]) for n in sizes}
            lo, mid, hi = sizes[0], sizes[len(sizes) // 2], sizes[-1]
            per_device = (med[hi] - med[lo]) / (hi - lo) * 1000
            first, second = (med[mid] - med[lo]) / (mid - lo), (med[hi] - med[mid]) / (hi - mid)
            print(f'  {mode}: {per_device:.2f} us per device ({lo}..{hi}); per device {lo}..{mid} vs {mid}..{hi}: '
                  f'RATIO {second / first if first > 0 else float("inf"):.2f} (1.0 is linear)')
            used = statistics.median(cpu[(mode, hi)])
            # warm is a real host's start: its device nodes are the
            # kernel's and exist already; cold adds the simulation making
            # one file per device, work no daemon does on a real host
            goal = (' (goal <= 100)', ' (goal <= 12)') if mode == 'warm' else \
                ('', ' (no goal: includes the testbed making its device nodes)')
            print(f'STARTUP {mode} {hi} devices: median {med[hi]:.1f} ms{goal[0]} | bare sd-bus program '
                  f'{base:.1f} ms  RATIO {med[hi] / base:.1f}x{goal[1]}; CPU {used:.1f} ms RATIO '
                  f'{used / statistics.median(bare_cpu):.1f}x the bare program\'s')

    # ---- listings ----

    def check_listing(self):
        devices = self.call('ListDevices')[0]
        names = [d[0] for d in devices]
        if len(names) != DEVICES or names != sorted(names) or names[0] != uuid(0):
            raise AssertionError(f'ListDevices: {len(names)} devices, sorted {names == sorted(names)}')
        big, row = devices[0], devices[JOB_DEVICES]
        if big[1:] != ('mdev', 'simgpu', 'big', 'stop-copy,p2p,pre-copy', 'running', '', 'supported', 'simgpu') or \
                row[3] != f'cls-{JOB_DEVICES % CLASSES}':
            raise AssertionError(f'ListDevices rows: {big} {row}')
        objects = self.call('GetManagedObjects', interface='org.freedesktop.DBus.ObjectManager')[0]
        dev = [p for p in objects if p.startswith('/org/vfiomig1/device/')]
        if len(dev) != DEVICES:
            raise AssertionError(f'GetManagedObjects: {len(dev)} devices')
        return devices

    def daemon_cost(self, pid, n, interface, method):
        """Wall ms of each call, and the daemon's CPU ms per call: utime
        and stime from /proc/PID/stat (ticks of 10 ms, hence many calls),
        and the finer schedstat beside it."""
        c0, s0 = cpu_seconds(pid), cpu_ns(pid)
        walls = self.bare_calls(n, interface, method)
        return walls, (cpu_seconds(pid) - c0) / n * 1000, (cpu_ns(pid) - s0) / n / 1e6

    def end_to_end(self, argv):
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600)
        return (time.perf_counter() - t0) * 1000, p.stdout

    def listings(self):
        daemon = self.daemon(DEVICES, 'list')
        pid = daemon.proc.pid
        try:
            self.check_listing()
            ping = self.bare_calls(200, 'org.freedesktop.DBus.Peer', 'Ping')
            ld_wall, ld_cpu, ld_sched = self.daemon_cost(pid, 200, 'org.vfiomig1.Manager', 'ListDevices')
            gmo_wall, gmo_cpu, gmo_sched = self.daemon_cost(pid, 20, 'org.freedesktop.DBus.ObjectManager',
                                                            'GetManagedObjects')
            ping_ms = statistics.median(ping)
            ld = statistics.median(ld_wall)
            print(f'LISTDEVICES at {DEVICES} devices: daemon CPU {ld_cpu:.2f} ms per call (goal <= 4; schedstat '
                  f'{ld_sched:.2f}) | wall {stats(ld_wall)} ms | bus round trip (Ping) {ping_ms:.3f} ms  RATIO '
                  f'{ld / ping_ms:.0f}x')
            gmo = statistics.median(gmo_wall)
            print(f'GETMANAGEDOBJECTS at {DEVICES} devices: daemon CPU {gmo_cpu:.2f} ms per call (schedstat '
                  f'{gmo_sched:.2f}) | wall {stats(gmo_wall)} ms  RATIO {gmo / ld:.1f}x ListDevices (wall), '
                  f'{gmo_cpu / ld_cpu:.1f}x (CPU)')

            commands = {
                'busctl': ['busctl', '--system', 'call', 'org.vfiomig1', '/org/vfiomig1', 'org.vfiomig1.Manager',
                           'ListDevices'],
                'list': [VFIOMIGCTL, 'list'],
                'list --json': [VFIOMIGCTL, 'list', '--json'],
            }
            times = {k: [] for k in commands}
            for _ in range(max(RUNS, 7)):
                for k, argv in commands.items():
                    ms, out = self.end_to_end(argv)
                    times[k].append(ms)
                    if k == 'list' and len(out.splitlines()) != DEVICES + 1:
                        raise AssertionError(f'vfiomigctl list printed {len(out.splitlines())} lines')
                    if k == 'list --json' and len(json.loads(out)) != DEVICES:
                        raise AssertionError('vfiomigctl list --json: wrong count')
            base = statistics.median(times['busctl'])
            print(f'CLI at {DEVICES} devices, end to end (ms): busctl call ListDevices {stats(times["busctl"])}')
            for k in ('list', 'list --json'):
                print(f'  vfiomigctl {k}: {stats(times[k])}  RATIO {statistics.median(times[k]) / base:.2f}x busctl '
                      f'(goal <= 1.5)')
        finally:
            daemon.stop()

    # ---- memory ----

    def heap(self):
        return dict(self.call('GetHeapStats', interface='org.vfiomig1.Testbed')[0])

    def idle_memory(self, n, name):
        daemon = self.daemon(n, name)
        try:
            self.call('ListDevices')
            time.sleep(0.3)
            return self.heap(), memory(daemon.proc.pid)
        finally:
            daemon.stop()

    def bare_memory(self):
        env = {**os.environ, **self.bus.daemon_env}
        proc = subprocess.Popen([BARE_GLIB, 'serve', 'org.vfiomig1'], env=env)
        try:
            self.wait_for_name()
            return memory(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

    def wait_for_name(self):
        deadline = time.monotonic() + 20
        while not self.conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                      'NameHasOwner', GLib.Variant('(s)', ('org.vfiomig1',)), None,
                                      Gio.DBusCallFlags.NONE, -1, None).unpack()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError('bare program not on the bus')
            time.sleep(0.01)

    def jobs(self):
        """RSS and PSS after each kind of job, on a testbed of the job
        devices alone."""
        daemon = self.daemon(JOB_DEVICES, 'jobs')
        pid = daemon.proc.pid
        env = {**os.environ, 'DBUS_SYSTEM_BUS_ADDRESS': self.bus.address}

        def ctl(*args):
            p = subprocess.run([VFIOMIGCTL, '-q', *args], capture_output=True, text=True, env=env, timeout=300)
            if p.returncode != 0:
                raise AssertionError(f'vfiomigctl {" ".join(args)}: {p.stderr}')

        def settle():
            time.sleep(0.5)
            return memory(pid)

        try:
            self.call('ListDevices')
            idle = settle()
            print(f'  idle, {JOB_DEVICES} devices: RSS {mib(idle["Rss"])}, PSS {mib(idle["Pss"])}, '
                  f'anonymous PSS {mib(idle["Pss_Anon"])}')
            steps = [('migrate', ['migrate', uuid(0), uuid(1)]), ('save', ['save', uuid(2), 'bench-state']),
                     ('load', ['load', uuid(3), 'bench-state']), ('probe', ['probe', uuid(4), uuid(5)])]
            for name, args in steps:
                ctl(*args)
                after = settle()
                print(f'JOB MEMORY after {name} (4 MiB of state): RSS {mib(after["Rss"])} RATIO '
                      f'{after["Rss"] / idle["Rss"]:.2f} of idle (goal <= 1.10); PSS {mib(after["Pss"])} RATIO '
                      f'{after["Pss"] / idle["Pss"]:.2f}; anonymous PSS {mib(after["Pss_Anon"])}')
        finally:
            daemon.stop()

    def memory(self):
        bare = self.bare_memory()
        h0, m0 = self.idle_memory(0, 'mem-0')
        h1, m1 = self.idle_memory(DEVICES, 'mem-n')
        per_heap = (h1['in-use'] - h0['in-use']) / DEVICES
        per_anon = (m1['Pss_Anon'] - m0['Pss_Anon']) * 1024 / DEVICES
        print(f'MEMORY: bare sd-bus+GLib program RSS {mib(bare["Rss"])}, PSS {mib(bare["Pss"])}')
        for n, h, m in ((0, h0, m0), (DEVICES, h1, m1)):
            print(f'  vfiomigd, {n} devices, idle: RSS {mib(m["Rss"])}, PSS {mib(m["Pss"])}, anonymous PSS '
                  f'{mib(m["Pss_Anon"])}; heap in use {h["in-use"] / 1048576:.2f} MiB, free '
                  f'{h["free"] / 1048576:.2f} MiB')
        print(f'HEAP PER DEVICE at {DEVICES}: {per_heap:.0f} bytes in use (goal <= 1024); anonymous PSS '
              f'{per_anon:.0f} bytes per device (heap, what the allocator keeps, stacks)')
        print(f'  idle PSS RATIO {m0["Pss"] / bare["Pss"]:.2f}x the bare program at 0 devices, '
              f'{m1["Pss"] / bare["Pss"]:.2f}x at {DEVICES}')
        self.jobs()


def main():
    b = Bench()
    try:
        if 'list' in SECTIONS:
            b.listings()
        if 'startup' in SECTIONS:
            b.startup()
        if 'memory' in SECTIONS:
            b.memory()
    finally:
        b.close()


if __name__ == '__main__':
    main()
