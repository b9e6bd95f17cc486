#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Cross-host migration against a bare pipeline doing the same work, in
the same run.

Two vfiomigd on two private buses stand for two hosts, and a stand-in for
ssh runs the remote command with sh -c on the second bus (no encryption,
no network). The baseline is a bare program saving the same kind of
simulated device as a stream (CRC per record) into a pipe through the
same ssh stand-in, where another bare program checks every CRC and loads
it into a device (bench-baseline save - | ssh-standin bench-baseline
load -): what is left is what vfiomigctl migrate HOST:TARGET adds, the
identity question, D-Bus, the jobs and the remote vfiomigctl's start and
report. A local vfiomigctl migrate of the same devices is printed for
scale. Wall time of the whole command, and the downtime each prints;
min/median/max over RUNS runs each.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from vfiomigtest import BUILDDIR, VFIOMIGCTL, Daemon, PrivateBus  # noqa: E402

RUNS = int(os.environ.get('VFIOMIG_BENCH_RUNS', 7))
SIZE = int(os.environ.get('VFIOMIG_BENCH_CROSSHOST_SIZE', 64 << 20))


def uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


A, B = uuid(1), uuid(2)
CONF = f'''
[Parent simgpu]
Driver=simgpu
[Type simgpu/sim]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
StateSize={SIZE}
[Device {A}]
Kind=mdev
Parent=simgpu
Type=sim
[Device {B}]
Kind=mdev
Parent=simgpu
Type=sim
'''

STANDIN = '''#!/bin/sh
shift
DBUS_SYSTEM_BUS_ADDRESS={address} PATH={client}:$PATH exec sh -c "$*"
'''


class Host:
    def __init__(self, tmp, name):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        conf = os.path.join(d, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(CONF)
        self.bus = PrivateBus()
        self.env = {'DBUS_SYSTEM_BUS_ADDRESS': self.bus.address,
                    'RUNTIME_DIRECTORY': os.path.join(d, 'run'), 'STATE_DIRECTORY': os.path.join(d, 'state')}
        self.daemon = Daemon(self.bus, [f'--testbed={conf}', '--log-level=info'], self.env)

    def ctl(self, *args, ssh=None):
        env = {**os.environ, 'DBUS_SYSTEM_BUS_ADDRESS': self.bus.address}
        cmd = [VFIOMIGCTL, *([f'--ssh={ssh}'] if ssh else []), *args]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        elapsed = time.monotonic() - t0
        if p.returncode != 0:
            raise RuntimeError(f'{cmd} failed ({p.returncode}):\n{p.stderr}')
        m = re.search(r'downtime (\d+\.\d+) ms', p.stderr)
        return elapsed, float(m.group(1)) if m else 0.0

    def reset(self, *names):
        for n in names:
            subprocess.run(['busctl', '--system', 'call', 'org.vfiomig1', '/org/vfiomig1', 'org.vfiomig1.Testbed',
                            'Reset', 's', n], check=True, capture_output=True,
                           env={**os.environ, 'DBUS_SYSTEM_BUS_ADDRESS': self.bus.address})

    def close(self):
        self.daemon.stop()
        self.bus.stop()


def bare_pipeline(ssh):
    """Seconds of bench-baseline save - | ssh stand-in bench-baseline load -."""
    baseline = os.path.join(BUILDDIR, 'tests', 'bench', 'bench-baseline')
    t0 = time.monotonic()
    subprocess.run(f'{baseline} save - {SIZE} | {ssh} bench-host {baseline} load - {SIZE}', shell=True, check=True,
                   capture_output=True, timeout=600)
    return time.monotonic() - t0


def spread(values):
    return f'min {min(values):8.3f}  median {statistics.median(values):8.3f}  max {max(values):8.3f}'


def run():
    with tempfile.TemporaryDirectory(prefix='vfiomig-bench-crosshost-') as tmp:
        here = Host(tmp, 'here')
        there = Host(tmp, 'there')
        ssh = os.path.join(tmp, 'ssh-standin')
        with open(ssh, 'w', encoding='utf-8') as f:
            f.write(STANDIN.format(address=there.bus.address, client=os.path.dirname(VFIOMIGCTL)))
        os.chmod(ssh, 0o755)
        local, remote, bare, local_down, remote_down = [], [], [], [], []
        try:
            for i in range(RUNS):
                # alternate directions, so that each run starts from a running source
                src, tgt = (A, B) if i % 2 == 0 else (B, A)
                here.reset(src)
                t, d = here.ctl('migrate', src, tgt)
                local.append(t)
                local_down.append(d)
                here.reset(src)
                t, d = here.ctl('migrate', src, f'bench-host:{tgt}', ssh=ssh)
                remote.append(t)
                remote_down.append(d)
                bare.append(bare_pipeline(ssh))
        finally:
            here.close()
            there.close()
        mib = SIZE >> 20
        r = [b / t for t, b in zip(remote, bare)]
        print(f'migrate {mib} MiB, {RUNS} runs each, seconds of wall time')
        print(f'  remote (SaveFd | ssh stand-in | LoadFd): {spread(remote)}')
        print(f'  bare save - | ssh stand-in | bare load -: {spread(bare)}')
        print(f'  local  (Migrate, for scale):             {spread(local)}')
        print(f'RATIO crosshost/bare-pipeline throughput: median {statistics.median(r):.3f}  '
              f'(min {min(r):.3f}, max {max(r):.3f} over {RUNS} runs)   (identity, D-Bus, jobs, remote vfiomigctl)')
        print(f'  crosshost takes {statistics.median(remote) / statistics.median(local):.2f}x the time of a local '
              f'migrate (median), which neither frames nor checks a stream nor starts anything remote')
        print('downtime printed, ms')
        print(f'  local:  {spread(local_down)}')
        print(f'  remote: {spread(remote_down)}   (until the remote load reported, see vfiomigctl(1))')


if __name__ == '__main__':
    run()
