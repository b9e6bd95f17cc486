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
   stop-copy data transfer, median over 20 migrations.
Timed figures are min/median/max over RUNS runs; a RATIO is taken per run,
daemon and baseline back to back, and printed as median (min, max).
(The stream's CRC overhead is bench-stream, in the same suite.)
"""

import os
import re
import resource
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
DOWNTIME_RUNS = 20


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
    (mounted with discard, it would make the next fsync pay for them):
    every timed save and write starts from the same state."""
    if os.path.exists(path):
        os.unlink(path)
    os.sync()


def bench_save_load(b):
    saves, loads, bare_saves, writes, bare_loads, reads = [], [], [], [], [], []
    path = os.path.join(b.tmp, 'state', 'states', 'bench')
    bare = os.path.join(b.tmp, 'bare-save')     # the same file system as the saved state

    def bare_save():
        r = baseline('save', bare, SIZE)
        removed(bare)
        return r

    for i in range(RUNS):
        removed(path)
        b.reset(BIG[0], BIG[1])
        s, t = pair(i, lambda: job(b, 'Save', '(ssa{sv})', (BIG[0], 'bench', {'precopy': GLib.Variant('b', False)})),
                    bare_save)
        saves.append(s)
        bare_saves.append(t)
        writes.append(baseline('write', bare, os.path.getsize(path)))
        removed(bare)
        s, t = pair(i, lambda: job(b, 'Load', '(ssa{sv})', (BIG[1], 'bench', {})), lambda: baseline('load', path, SIZE))
        loads.append(s)
        bare_loads.append(t)
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


def bench_downtime(b):
    b.daemon.log.flush()
    start = len(b.daemon.output())
    for i in range(DOWNTIME_RUNS):
        src, tgt = (SMALL[0], SMALL[1]) if i % 2 == 0 else (SMALL[1], SMALL[0])
        b.job('Migrate', '(ssa{sv})', (src, tgt, {}))
    lines = re.findall(r'downtime (\d+) us \(devices (\d+) us, data (\d+) us, vfiomigd (\d+) us\)',
                       b.daemon.output()[start:])
    assert len(lines) == DOWNTIME_RUNS, lines
    total, devices, data, ours = (statistics.median(int(x[k]) for x in lines) for k in range(4))
    print(f'downtime over {DOWNTIME_RUNS} migrations of a 4 KiB state, median: total {total / 1000:.3f} ms = '
          f'devices {devices / 1000:.3f} ms + stop-copy data {data / 1000:.3f} ms + vfiomigd {ours / 1000:.3f} ms')
    print(f'DOWNTIME added by vfiomigd: median {ours / 1000:.3f} ms, max '
          f'{max(int(x[3]) for x in lines) / 1000:.3f} ms   (goal < 1 ms median)')


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
