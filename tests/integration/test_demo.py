#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tests/demo.sh, the README's first command: the scripted session runs to
the end, and --shell leaves a shell where vfiomigctl and busctl --system
reach the testbed daemon, and removes everything when the shell ends."""

import os
import re
import subprocess
import unittest

from vfiomigtest import main

SRC = os.environ['VFIOMIG_SRCDIR']
DEMO = os.path.join(SRC, 'tests', 'demo.sh')


@unittest.skipUnless(os.path.realpath(os.environ['VFIOMIG_BUILDDIR']) == os.path.realpath(os.path.join(SRC, 'build')),
                     'demo.sh uses the build directory build/ of the source tree')
class DemoTest(unittest.TestCase):

    def run_demo(self, *args, stdin=''):
        p = subprocess.run(['bash', DEMO, *args], input=stdin, capture_output=True, text=True, timeout=300)
        # its own directory (others may run demos meanwhile), named in what it printed
        for d in set(re.findall(r'/tmp/vfiomig-demo\.\w+', p.stdout + p.stderr)):
            self.assertFalse(os.path.exists(d), f'{d} left behind')
        return p

    def test_scripted_session(self):
        p = self.run_demo()
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertIn('vdpa1 -> vdpa0: incompatible (basis: features)', p.stdout)
        self.assertIn('Every VFIO device runs again', p.stdout)
        self.assertRegex(p.stdout, r'/tmp/vfiomig-demo\.\w+/state/states')
        self.assertNotIn('\x1b', p.stdout)                # not a terminal: no bold, no colour

    def test_shell(self):
        p = self.run_demo('--shell', stdin='vfiomigctl show vdpa0 | head -2\n'
                          'busctl --system get-property org.vfiomig1 /org/vfiomig1 org.vfiomig1.Manager Backend\n'
                          'echo "pid $(busctl --system call org.freedesktop.DBus /org/freedesktop/DBus '
                          'org.freedesktop.DBus GetConnectionUnixProcessID s org.vfiomig1)"\n')
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        out = p.stdout + p.stderr
        self.assertIn('Name: vdpa0', out)
        self.assertIn('s "testbed"', out)
        self.assertRegex(out, r'log: /tmp/vfiomig-demo\.\w+/vfiomigd\.log')
        pid = int(out.split('pid u ')[1].split()[0])
        # the daemon went with the shell
        self.assertFalse(os.path.exists(f'/proc/{pid}'), 'vfiomigd still runs')

    def test_usage(self):
        self.assertEqual(self.run_demo('--help').returncode, 0)
        p = self.run_demo('--bogus')
        self.assertEqual(p.returncode, 2)
        self.assertIn('--bogus', p.stderr)


if __name__ == '__main__':
    main()
