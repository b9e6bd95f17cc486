#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration benchmarks: the real daemon on a private bus, each number next
to a baseline measured in the same run (these machines are noisy; nothing
here asserts a time).

1. Local migrate throughput of a 1 GiB testbed state, against the same two
   simulated devices joined by a bare splice() loop (bench-baseline relay):
   what the daemon costs on top of the devices' own streams.
2. Save to a file, against a bare program that reads the same device,
   CRCs and writes each record the same way and fdatasync()s that file
   (bench-baseline save); and against writing the same bytes from memory
   plus fdatasync (bench-baseline write: the storage alone).
3. Load from that file, against a bare program that reads it, checks
   every CRC and feeds the same kind of device (bench-baseline load); and
   against the same into /dev/null (bench-baseline read: reading and
   checking alone).
4. Downtime the daemon adds beyond the devices' own transitions and the
   stop-copy data transfer, median/min/max over 40 migrations with the
   runtime directory on a tmpfs, next to a bare program that drives the
   same simulated devices through the same sequence (bench-downtime-bare),
   and where the window goes, phase by phase.
Timed figures are min/median/max over RUNS runs; a RATIO is taken per run,
daemon and baseline back to back, and printed as median (min, max).
(The stream's CRC overhead is bench-stream, in the same suite.)
"""

import contextlib
import os
import re
import resource
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
RUNS = int(os.environ.get('VFIOMIG_BENCH_RUNS', 5))
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


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def baseline(*args):
    """Seconds bench-baseline took for what args say, by its clock and in
    CPU time."""
    cpu = children_cpu()
    with tempfile.TemporaryFile('w+') as out:
        p = subprocess.Popen([os.path.join(BUILDDIR, 'tests', 'bench', 'bench-baseline'), *map(str, args)],
                             stdout=out)
        # waiting as for a job (SignalRecorder.wait_for): this process
        # wakes every 10 ms either way
        while p.poll() is None:
            time.sleep(0.01)
        if p.returncode != 0:
            raise RuntimeError(f'bench-baseline {args} failed')
        out.seek(0)
        return float(out.read().split()[0]), children_cpu() - cpu


def daemon_cpu(b):
    with open(f'/proc/{b.daemon.proc.pid}/stat', encoding='ascii') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def job(b, *args):
    """Seconds of a job, from the call to its end, and the CPU time vfiomigd
    spent meanwhile."""
    cpu = daemon_cpu(b)
    wall = b.job(*args)
    return wall, daemon_cpu(b) - cpu


def spread(runs):
    values = [r[0] for r in runs]
    return (f'min {min(values):7.3f}  median {statistics.median(values):7.3f}  max {max(values):7.3f} s  '
            f'(median {mib_s(statistics.median(values)):5.0f} MiB/s)')


def ratio(name, daemon, base, goal=''):
    """Throughput of the daemon over the baseline's, run by run; daemon
    and base are lists of (seconds, CPU seconds)."""
    r = [t[0] / d[0] for d, t in zip(daemon, base)]
    c = [t[1] / max(d[1], 1e-3) for d, t in zip(daemon, base)]
    print(f'RATIO {name}: median {statistics.median(r):.3f}  (min {min(r):.3f}, max {max(r):.3f} over {len(r)} runs)'
          f'{"   " + goal if goal else ""}')
    print(f'  the same by CPU time (less swayed by a busy machine): median {statistics.median(c):.3f}  '
          f'(min {min(c):.3f}, max {max(c):.3f})')


def pair(i, daemon, bare):
    """Runs both, the order alternating with i, so that what else the
    machine does (writeback of the last run's file, say) falls on both."""
    if i % 2:
        b = bare()
        return daemon(), b
    d = daemon()
    return d, bare()


def bench_migrate(b):
    daemon, bare = [], []
    for i in range(RUNS):
        src, tgt = (BIG[0], BIG[1]) if i % 2 == 0 else (BIG[1], BIG[0])
        b.reset(src)
        d, s = pair(i, lambda: job(b, 'Migrate', '(ssa{sv})', (src, tgt, {'precopy': GLib.Variant('b', False)})),
                    lambda: baseline('relay', SIZE))
        daemon.append(d)
        bare.append(s)
    print(f'migrate {SIZE >> 20} MiB, {RUNS} runs:')
    print(f'  vfiomigd Migrate:                   {spread(daemon)}')
    print(f'  same devices, bare splice loop:     {spread(bare)}')
    ratio('migrate/bare-relay throughput', daemon, bare, '(goal >= 0.9)')


def removed(path):
    """Deletes path and waits for the file system to give its blocks back
    (mounted with discard, it would make the next fsync pay for them)."""
    if os.path.exists(path):
        os.unlink(path)
    os.sync()


def uncached(path):
    """Drops path's pages from the page cache. A GiB just written and
    still cached makes the next GiB's writer pay for it (twice the system
    time here), so whichever of a pair ran second would lose: every timed
    save starts with no other state file in the cache."""
    if os.path.exists(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cached(path):
    """Reads path through, so every timed load reads it from the page
    cache, as a load right after its save does."""
    with open(path, 'rb', buffering=0) as f:
        while f.read(1 << 20):
            pass


def bench_save_load(b):
    saves, loads, bare_saves, writes, bare_loads, reads = [], [], [], [], [], []
    path = os.path.join(b.tmp, 'state', 'states', 'bench')
    bare = os.path.join(b.tmp, 'bare-save')     # the same file system as the saved state

    def daemon_save():
        return job(b, 'Save', '(ssa{sv})', (BIG[0], 'bench', {'precopy': GLib.Variant('b', False)}))

    def bare_save():
        uncached(path)
        r = baseline('save', bare, SIZE)
        removed(bare)
        return r

    def daemon_load():
        cached(path)
        return job(b, 'Load', '(ssa{sv})', (BIG[1], 'bench', {}))

    def bare_load():
        cached(path)
        return baseline('load', path, SIZE)

    for i in range(RUNS):
        removed(path)
        b.reset(BIG[0], BIG[1])
        s, t = pair(i, daemon_save, bare_save)
        saves.append(s)
        bare_saves.append(t)
        uncached(path)
        writes.append(baseline('write', bare, os.path.getsize(path)))
        removed(bare)
        s, t = pair(i, daemon_load, bare_load)
        loads.append(s)
        bare_loads.append(t)
        cached(path)
        reads.append(baseline('read', path))
    size = os.path.getsize(path)
    print(f'save {size >> 20} MiB to a file, {RUNS} runs:')
    print(f'  vfiomigd Save:                      {spread(saves)}')
    print(f'  bare: device, CRC, write, fdatasync {spread(bare_saves)}')
    print(f'  bare: write + fdatasync only        {spread(writes)}')
    ratio('save/bare-save throughput', saves, bare_saves, '(the same device, CRCs, writes and sync)')
    ratio('save/write+fdatasync throughput', saves, writes, '(the storage alone)')
    print(f'load {size >> 20} MiB from that file, {RUNS} runs:')
    print(f'  vfiomigd Load:                      {spread(loads)}')
    print(f'  bare: read, CRC, into the device    {spread(bare_loads)}')
    print(f'  bare: read, CRC, into /dev/null     {spread(reads)}')
    ratio('load/bare-load throughput', loads, bare_loads, '(the same file, CRCs and device)')
    ratio('load/read+CRC throughput', loads, reads, '(reading and checking alone; the device is the rest)')


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


def usec_spread(values):
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
        print(f'  vfiomigd  {what:<22}{usec_spread([r[k] for r in daemon])}')
    for k, what in enumerate(rows + ['  added (the floor)']):
        print(f'  bare      {what:<22}{usec_spread([r[k] for r in bare])}')
    print('  vfiomigd\'s window by phase, wall time and the part vfiomigd adds:')
    for phase in ['stop', 'copy', 'commit', 'start']:
        walls = [r[4][phase][0] for r in daemon if phase in r[4]]
        own = [r[4][phase][1] for r in daemon if phase in r[4]]
        if walls:
            print(f'    {phase:<8}{"wall":<14}{usec_spread(walls)}')
            print(f'    {"":<8}{"vfiomigd":<14}{usec_spread(own)}')
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
