#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Cross-host migration against a local one, in the same run.

Two vfiomigd on two private buses stand for two hosts, and a stand-in for
ssh runs the remote command with sh -c on the second bus (no encryption,
no network): what is measured is what vfiomigctl migrate HOST:TARGET adds
on top of a local vfiomigctl migrate of the same devices, the identity
question, the stream framing and its CRCs, the pipe, and the remote
vfiomigctl's start and report. Wall time of the whole command, and the
downtime each prints; min/median/max over RUNS runs each.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))

from vfiomigtest import VFIOMIGCTL, Daemon, PrivateBus  # noqa: E402

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
        local, remote, local_down, remote_down = [], [], [], []
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
        finally:
            here.close()
            there.close()
        mib = SIZE >> 20
        print(f'migrate {mib} MiB, {RUNS} runs each, seconds of vfiomigctl wall time')
        print(f'  local  (Migrate):                 {spread(local)}')
        print(f'  remote (SaveFd | ssh stand-in | LoadFd): {spread(remote)}')
        print('downtime printed, ms')
        print(f'  local:  {spread(local_down)}')
        print(f'  remote: {spread(remote_down)}   (until the remote load reported, see vfiomigctl(1))')
        print(f'RATIO crosshost/local migrate time (median): '
              f'{statistics.median(remote) / statistics.median(local):.3f}   (remote stream framing, CRCs, pipe)')
        print(f'RATIO crosshost/local downtime (median): '
              f'{statistics.median(remote_down) / max(statistics.median(local_down), 1e-3):.3f}')


if __name__ == '__main__':
    run()
