#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration benchmarks: the real daemon on a private bus, each number next
to a baseline measured in the same run (these machines are noisy; nothing
here asserts a time).

1. Local migrate throughput of a 1 GiB testbed state, against the same two
   simulated devices joined by a bare splice() loop (bench-sim-copy): what
   the daemon costs on top of the device's own stream. Also printed: a
   plain 1 GiB pipe copy (cat), the ceiling no device stream reaches.
2. Save to a file and load from it, against cat of a file of that size.
3. Downtime the daemon adds beyond the devices' own transitions and the
   stop-copy data transfer, median/min/max over 40 migrations with the
   runtime directory on a tmpfs, next to a bare program that drives the
   same simulated devices through the same sequence (bench-downtime-bare),
   and where the window goes, phase by phase.
(The stream's CRC overhead is bench-stream, in the same suite.)
"""

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from gi.repository import GLib  # noqa: E402
from vfiomigtest import BUILDDIR, Daemon, PrivateBus, SignalRecorder  # noqa: E402

GIB = 1 << 30
SIZE = int(os.environ.get('VFIOMIG_BENCH_SIZE', GIB))
RUNS = 3
DOWNTIME_RUNS = 40


def uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


BIG = [uuid(1), uuid(2)]
SMALL = [uuid(11), uuid(12)]
CONF = f'''
[Parent simgpu]
Driver=simgpu
[Type simgpu/sim-1g]
MaxInstances=4
MigrationFlags=stop-copy,p2p
StateSize={SIZE}
[Type simgpu/sim-small]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
StateSize=4K
''' + ''.join(f'[Device {n}]\nKind=mdev\nParent=simgpu\nType={t}\n' for n, t in
              [(BIG[0], 'sim-1g'), (BIG[1], 'sim-1g'), (SMALL[0], 'sim-small'), (SMALL[1], 'sim-small')])


class Bench:

    def __init__(self, tmp):
        self.tmp = tmp
        conf = os.path.join(tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(CONF)
        self.bus = PrivateBus()
        self.env = {'RUNTIME_DIRECTORY': os.path.join(tmp, 'run'), 'STATE_DIRECTORY': os.path.join(tmp, 'state')}
        self.daemon = Daemon(self.bus, [f'--testbed={conf}', '--log-level=info'], self.env)
        self.conn = self.bus.connect()

    def close(self):
        self.conn.close_sync(None)
        self.daemon.stop()
        self.bus.stop()

    def call(self, method, signature, args, interface='org.vfiomig1.Manager', path='/org/vfiomig1'):
        return self.conn.call_sync('org.vfiomig1', path, interface, method, GLib.Variant(signature, args),
                                   None, 0, 600000, None).unpack()

    def job(self, method, signature, args):
        """Seconds from the call to MigrationRemoved."""
        rec = SignalRecorder(self.conn, member='MigrationRemoved')
        t0 = time.monotonic()
        job_id, _ = self.call(method, signature, args)
        sig = rec.wait_for(lambda s: s[3][0] == job_id, 600)[0]
        elapsed = time.monotonic() - t0
        rec.close()
        if sig[3][2] != 'done':
            raise RuntimeError(f'{method} {args} ended {sig[3][2]}:\n{self.daemon.output()[-2000:]}')
        return elapsed

    def reset(self, *names):
        for n in names:
            self.call('Reset', '(s)', (n,), interface='org.vfiomig1.Testbed')


def mib_s(seconds, size=SIZE):
    return size / seconds / (1 << 20)


def sim_copy():
    out = subprocess.run([os.path.join(BUILDDIR, 'tests', 'bench', 'bench-sim-copy'), str(SIZE)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0])


def cat_pipe():
    t0 = time.monotonic()
    subprocess.run(f'head -c {SIZE} /dev/zero | cat > /dev/null', shell=True, check=True)
    return time.monotonic() - t0


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, shell=True, check=True)
    return time.monotonic() - t0


DEVICE_CEILING = []     # the bare relay's time, for save and load too


def bench_migrate(b):
    daemon, direct, plain = [], [], []
    for i in range(RUNS):
        src, tgt = (BIG[0], BIG[1]) if i % 2 == 0 else (BIG[1], BIG[0])
        b.reset(src)
        daemon.append(b.job('Migrate', '(ssa{sv})', (src, tgt, {'precopy': GLib.Variant('b', False)})))
        direct.append(sim_copy())
        plain.append(cat_pipe())
    d, s, p = min(daemon), min(direct), min(plain)
    DEVICE_CEILING.append(s)
    print(f'migrate {SIZE >> 20} MiB via vfiomigd:   {d:7.3f} s  {mib_s(d):8.0f} MiB/s   (best of {RUNS})')
    print(f'same devices, bare splice loop: {s:7.3f} s  {mib_s(s):8.0f} MiB/s')
    print(f'plain pipe copy (cat):          {p:7.3f} s  {mib_s(p):8.0f} MiB/s')
    print(f'RATIO migrate/bare-relay throughput: {s / d:.3f}   (goal >= 0.9)')
    print(f'      migrate/plain-pipe throughput: {p / d:.3f}   (simulated devices generate and check every byte)')


def bench_save_load(b):
    saves, loads, cat_w, cat_r = [], [], [], []
    path = os.path.join(b.tmp, 'state', 'states', 'bench')
    for i in range(RUNS):
        if os.path.exists(path):
            os.unlink(path)
        b.reset(BIG[0], BIG[1])
        saves.append(b.job('Save', '(ssa{sv})', (BIG[0], 'bench', {'precopy': GLib.Variant('b', False)})))
        loads.append(b.job('Load', '(ssa{sv})', (BIG[1], 'bench', {})))
        copy = os.path.join(b.tmp, 'copy')
        cat_w.append(timed(f'cat {path} > {copy} && sync -f {copy}'))
        os.unlink(copy)
        cat_r.append(timed(f'cat {path} > /dev/null'))
    size = os.path.getsize(path)
    s, l, w, r = min(saves), min(loads), min(cat_w), min(cat_r)
    print(f'save {size >> 20} MiB to a file: {s:7.3f} s {mib_s(s, size):8.0f} MiB/s | '
          f'cat file > file: {w:7.3f} s  RATIO {w / s:.3f}')
    print(f'load {size >> 20} MiB from file: {l:7.3f} s {mib_s(l, size):8.0f} MiB/s | '
          f'cat file > /dev/null: {r:7.3f} s  RATIO {r / l:.3f}')
    print(f'  (a device takes state no faster than the bare relay feeds it: load/bare-relay RATIO '
          f'{DEVICE_CEILING[0] / l:.3f}, save/bare-relay {DEVICE_CEILING[0] / s:.3f})')


def fs_type(path):
    """The file system type of the mount that holds path."""
    path, best, kind = os.path.realpath(path), '', None
    with open('/proc/self/mountinfo', encoding='utf-8') as f:
        for line in f:
            fields = line.split()
            mount, fstype = fields[4], fields[fields.index('-') + 1]
            if (path == mount or path.startswith(mount.rstrip('/') + '/')) and len(mount) >= len(best):
                best, kind = mount, fstype
    return kind


@contextlib.contextmanager
def tmpfs_dir():
    """A directory on a tmpfs, as /run is: in /dev/shm, or on a tmpfs
    mounted for the purpose (root only). None if there is neither."""
    if fs_type('/dev/shm') == 'tmpfs' and os.access('/dev/shm', os.W_OK):
        d = tempfile.mkdtemp(prefix='vfiomig-downtime-', dir='/dev/shm')
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
    elif os.geteuid() == 0:
        d = tempfile.mkdtemp(prefix='vfiomig-downtime-')
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', d], check=True)
        try:
            yield d
        finally:
            subprocess.run(['umount', d], check=False)
            os.rmdir(d)
    else:
        yield None


DOWNTIME_CONF = '''
[Parent simgpu]
Driver=simgpu
[Type simgpu/sim-small]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
StateSize=4K
''' + ''.join(f'[Device {n}]\nKind=mdev\nParent=simgpu\nType=sim-small\n' for n in SMALL)

# 'downtime T us (devices D us, data X us, vfiomigd V us); window: stop W us (vfiomigd V us), copy ...'
DOWNTIME_LINE = re.compile(r'downtime (\d+) us \(devices (\d+) us, data (\d+) us, vfiomigd (\d+) us\)'
                           r'(?:; window: (.*))?$', re.M)
DOWNTIME_PHASE = re.compile(r'(\w+) (\d+) us \(vfiomigd (\d+) us\)')
DOWNTIME_GOAL_USEC = 100


def downtime_daemon_runs(base, runs):
    """The daemon's account of each migration's window, its runtime
    directory (and the simulated devices in it) new under base:
    [(window, devices, data, added, {phase: (wall, added)})]."""
    base = tempfile.mkdtemp(dir=base)
    bus = PrivateBus()
    conf = os.path.join(base, 'testbed.conf')
    with open(conf, 'w', encoding='utf-8') as f:
        f.write(DOWNTIME_CONF)
    env = {'RUNTIME_DIRECTORY': os.path.join(base, 'run'), 'STATE_DIRECTORY': os.path.join(base, 'state')}
    daemon = Daemon(bus, [f'--testbed={conf}', '--log-level=info'], env)
    conn = bus.connect()
    try:
        for i in range(runs + 1):                      # the first warms up
            src, tgt = (SMALL[0], SMALL[1]) if i % 2 == 0 else (SMALL[1], SMALL[0])
            rec = SignalRecorder(conn, member='MigrationRemoved')
            job_id, _ = conn.call_sync('org.vfiomig1', '/org/vfiomig1', 'org.vfiomig1.Manager', 'Migrate',
                                       GLib.Variant('(ssa{sv})', (src, tgt, {})), None, 0, 60000, None).unpack()
            sig = rec.wait_for(lambda s, j=job_id: s[3][0] == j, 60)[0]
            rec.close()
            if sig[3][2] != 'done':
                raise RuntimeError(f'migrate {src} {tgt} ended {sig[3][2]}:\n{daemon.output()[-2000:]}')
        daemon.log.flush()
        out = daemon.output()
    finally:
        conn.close_sync(None)
        daemon.stop()
        bus.stop()
    lines = DOWNTIME_LINE.findall(out)[1:]
    assert len(lines) == runs, out[-3000:]
    return [(*(int(x) for x in m[:4]), {p: (int(w), int(o)) for p, w, o in DOWNTIME_PHASE.findall(m[4])})
            for m in lines]


def downtime_bare_runs(base, runs):
    """The bare program's account, its devices persisted under base:
    [(window, devices, data, added)]."""
    d = tempfile.mkdtemp(dir=base)
    out = subprocess.run([os.path.join(BUILDDIR, 'tests', 'bench', 'bench-downtime-bare'), d, str(runs + 1), '4096'],
                         capture_output=True, text=True, check=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines()][1:]
    assert len(rows) == runs, out
    return rows


def spread(values):
    """median, min, max"""
    return f'{statistics.median(values):7.0f} {min(values):7d} {max(values):7d}'


def bench_downtime(b):
    """Downtime the daemon adds to a migration: the window from the first
    source that stops until the last target runs, less the devices' own
    calls and the stop-copy data, with the runtime directory on a tmpfs
    as /run is (b's daemon keeps its directories on disk, so this has a
    daemon of its own). Cross-checked against bench-downtime-bare, which
    drives the same simulated devices through the same sequence and
    nothing else; the two alternate in blocks so that both see the same
    machine."""
    daemon, bare = [], []
    with tmpfs_dir() as base, tempfile.TemporaryDirectory(prefix='vfiomig-downtime-') as fallback:
        if base is None:
            base = fallback
            print('downtime: no tmpfs here for the runtime directory; its file system counts too')
        kind = fs_type(base)
        block = 10
        for _ in range(DOWNTIME_RUNS // block):
            daemon += downtime_daemon_runs(base, block)
            bare += downtime_bare_runs(base, block)

    print(f'downtime window over {len(daemon)} migrations of a 4 KiB state (one pre-copy round), runtime '
          f'directory on {kind}, microseconds:')
    print(f'{"":34}median     min     max')
    rows = ['window', '  in device calls', '  moving stop-copy data']
    for k, what in enumerate(rows + ['  added by vfiomigd']):
        print(f'  vfiomigd  {what:<22}{spread([r[k] for r in daemon])}')
    for k, what in enumerate(rows + ['  added (the floor)']):
        print(f'  bare      {what:<22}{spread([r[k] for r in bare])}')
    print('  vfiomigd\'s window by phase, wall time and the part vfiomigd adds:')
    for phase in ['stop', 'copy', 'commit', 'start']:
        walls = [r[4][phase][0] for r in daemon if phase in r[4]]
        own = [r[4][phase][1] for r in daemon if phase in r[4]]
        if walls:
            print(f'    {phase:<8}{"wall":<14}{spread(walls)}')
            print(f'    {"":<8}{"vfiomigd":<14}{spread(own)}')
    ours = statistics.median(r[3] for r in daemon)
    floor = statistics.median(r[3] for r in bare)
    print(f'DOWNTIME added by vfiomigd: median {ours:.0f} us, min {min(r[3] for r in daemon)} us, '
          f'max {max(r[3] for r in daemon)} us; bare program (same devices, same sequence): median {floor:.0f} us')
    print(f'RATIO downtime-added/goal: {ours / DOWNTIME_GOAL_USEC:.3f}   (goal <= 1.0, i.e. at most '
          f'{DOWNTIME_GOAL_USEC} us median)')
    print(f'      vfiomigd-added minus bare-added: {ours - floor:.0f} us   (what the daemon adds beyond the '
          f'device calls a bare program makes)')


def run():
    with tempfile.TemporaryDirectory(prefix='vfiomig-bench-') as tmp:
        b = Bench(tmp)
        try:
            bench_migrate(b)
            bench_save_load(b)
            bench_downtime(b)
        finally:
            b.close()


if __name__ == '__main__':
    run()
