#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a hostile or careless caller can do to vfiomigd: arguments it
cannot hold (names too long to save, rates the simulation would spin on),
arguments it must not echo in full, errors it must name in its own
namespace, a slow device that must not freeze the daemon, and files that
must be root's alone."""

import os
import re
import shutil
import stat
import tempfile
import time

from gi.repository import Gio, GLib

from vfiomigtest import DaemonTestCase, main

ERR = 'org.vfiomig1.Error.'
# the errors sd-bus or polkit give that are not ours, but standard
FOREIGN_OK = ('org.freedesktop.DBus.Error.AccessDenied',
              'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired',
              'org.freedesktop.DBus.Error.InvalidArgs')


def uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


DEVICES = [uuid(i) for i in range(1, 9)]

TESTBED_CONF = '''
[Parent simgpu]
Driver=simgpu

[Type simgpu/small]
MaxInstances=16
MigrationFlags=stop-copy,p2p
StateSize=64K
''' + ''.join(f'''
[Device {name}]
Kind=mdev
Parent=simgpu
Type=small
''' for name in DEVICES)


class HardeningTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='vfiomig-hard-')
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        conf = os.path.join(cls.tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(TESTBED_CONF)
        cls.run_dir = os.path.join(cls.tmp, 'run')
        cls.state_dir = os.path.join(cls.tmp, 'state')
        cls.daemon_args = [f'--testbed={conf}']
        cls.daemon_env = {'RUNTIME_DIRECTORY': cls.run_dir, 'STATE_DIRECTORY': cls.state_dir}
        super().setUpClass()

    def setUp(self):
        for name in DEVICES:
            self.tb('ClearFaults', '(s)', name)
            if self.state(name) != 'running':
                self.tb('Reset', '(s)', name)

    def error_of(self, method, signature, args, interface=None):
        """(error name, message) of a call that must fail."""
        kw = {'interface': interface} if interface else {}
        with self.assertRaises(GLib.Error) as cm:
            self.call(method, signature, args, **kw)
        name = Gio.DBusError.get_remote_error(cm.exception)
        # the message as sent, without GDBus's "GDBus.Error:NAME: " prefix
        return name, cm.exception.message.removeprefix(f'GDBus.Error:{name}: ')

    def assert_our_error(self, name, message):
        self.assertTrue(name.startswith(ERR) or name in FOREIGN_OK, f'{name}: {message}')

    def save(self, device, name, timeout=30):
        job = self.start('Save', '(ssa{sv})', (device, name, {}))
        return self.wait_job(job, timeout)

    # 1. the testbed bounds its inputs and never sleeps under a lock

    def test_dirty_rate_beyond_the_limit_is_refused(self):
        name, msg = self.error_of('SetDirtyRate', '(st)', (DEVICES[0], 2**64 - 1), interface='org.vfiomig1.Testbed')
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        limit = int(re.search(r'at most (\d+) bytes per second', msg).group(1))
        self.assertIn(str(2**64 - 1), msg)
        name, msg = self.error_of('SetDirtyRate', '(st)', (DEVICES[0], limit + 1), interface='org.vfiomig1.Testbed')
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        # the limit itself is taken, and looking at the device stays cheap
        self.tb('SetDirtyRate', '(st)', DEVICES[0], limit)
        try:
            time.sleep(0.2)
            t0 = time.monotonic()
            self.digest(DEVICES[0])
            self.assertLess(time.monotonic() - t0, 2)
        finally:
            self.tb('SetDirtyRate', '(st)', DEVICES[0], 0)

    def test_fault_delay_beyond_the_limit_is_refused(self):
        name, msg = self.error_of('InjectFault', '(ss)', (DEVICES[0], 'transition delay=3600000 errno=0'),
                                  interface='org.vfiomig1.Testbed')
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        self.assertIn('from 0 to 60000 (milliseconds)', msg)

    def test_device_answers_during_a_slow_transition(self):
        dev = DEVICES[1]
        # the source's driver takes 4 s to stop: the job waits, nobody else
        self.tb('InjectFault', '(ss)', dev, 'transition from=running delay=4000 errno=0 count=1')
        job = self.start('Save', '(ssa{sv})', (dev, 'slow', {}))
        start = time.monotonic()
        try:
            time.sleep(0.5)
            for method in ('GetDeviceState', 'GetDigest', 'GetTransitions'):
                t0 = time.monotonic()
                self.tb(method, '(s)', dev)
                self.assertLess(time.monotonic() - t0, 1.5, f'{method} waited for the transition')
            self.assertLess(time.monotonic() - start, 3.5, 'the delay ended before the test looked')
            self.assert_private_files()         # the job's journal among them
            self.assertTrue([n for n in os.listdir(self.run_dir) if n.endswith('.journal')],
                            os.listdir(self.run_dir))
        finally:
            final = self.wait_job(job)
        self.assertEqual(final['result'], 'done', final)
        self.assertGreaterEqual(time.monotonic() - start, 4)
        os.unlink(os.path.join(self.state_dir, 'states', 'slow'))

    # 3. a name is valid only if Save can write it

    def test_longest_valid_name_saves(self):
        name, msg = self.error_of('Save', '(ssa{sv})', (DEVICES[2], 'n' * 255, {}))
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        longest = int(re.search(r'at most (\d+) printable', msg).group(1))
        self.assertGreaterEqual(longest, 200)
        for n in range(longest + 1, 256):
            name, msg = self.error_of('Save', '(ssa{sv})', (DEVICES[2], 'n' * n, {}))
            self.assertEqual(name, ERR + 'InvalidArgument', f'{n} bytes: {msg}')
        self.assertEqual(self.state(DEVICES[2]), 'running')
        final = self.save(DEVICES[2], 's' * longest)
        self.assertEqual((final['result'], final['Error']), ('done', ''), final)
        path = os.path.join(self.state_dir, 'states', 's' * longest)
        self.assertTrue(os.path.isfile(path))
        os.unlink(path)

    # 4. every error has our name

    def test_errno_errors_have_our_names(self):
        states = os.path.join(self.state_dir, 'states')
        os.makedirs(states, mode=0o700, exist_ok=True)
        # a saved state that is a symbolic link, and one in a loop
        target = os.path.join(self.tmp, 'elsewhere')
        with open(target, 'wb') as f:
            f.write(b'VFIOMIG\x01')
        os.symlink(target, os.path.join(states, 'link'))
        os.symlink('loop', os.path.join(states, 'loop'))
        try:
            for args in [(DEVICES[3], 'link', {}), (DEVICES[3], 'loop', {}), (DEVICES[3], 'x' * 250, {})]:
                with self.subTest(load=args[1][:20]):
                    self.assert_our_error(*self.error_of('Load', '(ssa{sv})', args))
            self.assert_our_error(*self.error_of('Save', '(ssa{sv})', (DEVICES[3], 'x' * 250, {})))
        finally:
            for n in ('link', 'loop'):
                os.unlink(os.path.join(states, n))

        # the directory of saved states itself loops: ELOOP when Save
        # creates its file
        shutil.rmtree(states)
        os.symlink('states', states)
        try:
            name, msg = self.error_of('Save', '(ssa{sv})', (DEVICES[3], 'into-a-loop', {}))
            self.assertTrue(name.startswith(ERR), f'{name}: {msg}')
        finally:
            os.unlink(states)
        self.assertEqual(self.state(DEVICES[3]), 'running')

    # 5. error messages quote a short prefix of what the caller sent

    def test_long_arguments_are_not_echoed(self):
        big = 'q' * 65536
        name, msg = self.error_of('GetDevice', '(s)', (big,))
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        self.assertLess(len(msg.encode()), 200, msg[:300])
        self.assertTrue(msg.startswith("'qqqqqqqqqqqqqqqq"), msg)
        self.assertIn('(65536 bytes)', msg)
        calls = [
            ('GetDevice', '(s)', (big,), None),
            ('CreateMdev', '(sssa{sv})', (big, 'small', '', {}), None),
            ('CreateMdev', '(sssa{sv})', ('simgpu', 'small', big, {}), None),
            ('Migrate', '(ssa{sv})', (DEVICES[4], DEVICES[5], {big: GLib.Variant('b', True)}), None),
            ('Migrate', '(ssa{sv})', (DEVICES[4], DEVICES[5], {'target-state': GLib.Variant('s', big)}), None),
            ('Save', '(ssa{sv})', (DEVICES[4], big, {}), None),
            ('FindTargets', '(ssa{sv})', (big, '1', {}), None),
            ('Probe', '(ssa{sv})', (big, DEVICES[5], {}), None),
            ('Probe', '(ssa{sv})', (big + '/x', DEVICES[5], {}), None),
            ('InjectFault', '(ss)', (DEVICES[4], 'stall ' + big), 'org.vfiomig1.Testbed'),
        ]
        for method, signature, args, interface in calls:
            with self.subTest(method=method):
                name, msg = self.error_of(method, signature, args, interface)
                self.assertEqual(name, ERR + 'InvalidArgument', msg)
                self.assertLess(len(msg.encode()), 400, msg[:300])
                self.assertIn('q' * 32, msg)            # still shows what it was
                self.assertLessEqual(max(len(run) for run in re.findall('q+', msg)), 64, msg)
                self.assertRegex(msg, r'\((65536|6554\d|65538) bytes\)')
        # what is not printable comes back escaped
        name, msg = self.error_of('GetDevice', '(s)', ('\x1b]0;owned\x07\n',))
        self.assertEqual(name, ERR + 'InvalidArgument', msg)
        self.assertIn("'\\x1b]0;owned\\a\\n'", msg)
        self.assertNotIn('\x1b', msg)

    # 6. files are root's alone

    def assert_private_files(self):
        checked = 0
        for top in (self.run_dir, self.state_dir):
            for root, dirs, files in os.walk(top):
                for n in [root] + [os.path.join(root, f) for f in files]:
                    st = os.lstat(n)
                    if stat.S_ISLNK(st.st_mode):
                        continue
                    self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077, 0, f'{n}: mode {st.st_mode:o}')
                    checked += 1
        return checked

    def test_files_are_private(self):
        final = self.save(DEVICES[6], 'private')
        self.assertEqual(final['result'], 'done', final)
        self.tb('Reset', '(s)', DEVICES[6])
        self.assertTrue(os.path.isfile(os.path.join(self.state_dir, 'states', 'private')))
        self.assertTrue([n for n in os.listdir(self.run_dir) if n.endswith('.sim')], os.listdir(self.run_dir))
        self.assertGreaterEqual(self.assert_private_files(), 4)
        os.unlink(os.path.join(self.state_dir, 'states', 'private'))


if __name__ == '__main__':
    main()
