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
   stop-copy data transfer, median over 20 migrations.
(The stream's CRC overhead is bench-stream, in the same suite.)
"""

import os
import re
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
