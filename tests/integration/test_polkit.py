#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Authorization: unprivileged callers need org.vfiomig1.manage from polkit
(python-dbusmock's polkitd template); root passes; checks are async."""

import subprocess

import dbus

from vfiomigtest import (MANAGER, OBJECT_PATH, VFIOMIGCTL, DaemonTestCase, NOBODY, busctl, ctl, main,
                         wait_until)

UUID = '11111111-2222-3333-4444-555555555555'


class PolkitTest(DaemonTestCase):
    with_polkit = True

    def setUp(self):
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.polkit_obj.SimulateHang(False)

    def tearDown(self):
        super().tearDown()
        if UUID in self.devices():
            self.call('RemoveMdev', '(sa{sv})', (UUID, {}))

    def create_as_nobody(self):
        return busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'CreateMdev', 'sssa{sv}',
                      'mtty', 'mtty-1', UUID, '0', user='nobody')

    def test_nobody_may_read(self):
        p = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListDevices', user='nobody')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ctl('list', user='nobody').returncode, 0)

    def test_nobody_denied_until_allowed(self):
        self.assertNotEqual(self.create_as_nobody().returncode, 0)
        self.assertNotIn(UUID, self.devices())
        # Denied by polkit, not by the bus policy (our policy file lets anyone
        # call). busctl hides AccessDenied texts; vfiomigctl shows them.
        p = ctl('create-mdev', 'mtty', 'mtty-1', UUID, user='nobody')
        self.assertEqual(p.returncode, 4)
        self.assertIn('not authorized for org.vfiomig1.manage', p.stderr)

        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])      # the wrong action does not help
        self.assertNotEqual(self.create_as_nobody().returncode, 0)

        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        p = self.create_as_nobody()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(UUID, self.devices())

        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.assertEqual(ctl('remove-mdev', UUID, user='nobody').returncode, 4)
        self.assertIn(UUID, self.devices())
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        self.assertEqual(ctl('remove-mdev', UUID, user='nobody').returncode, 0)
        self.assertNotIn(UUID, self.devices())

    def test_root_needs_no_polkit(self):
        self.polkit_obj.SimulateHang(True)     # would block forever if asked
        self.assertEqual(ctl('create-mdev', 'mtty', 'mtty-1', UUID).returncode, 0)
        self.assertEqual(ctl('remove-mdev', UUID).returncode, 0)
        self.assertFalse(self.polkit_obj.HaveHangingCalls())

    def test_check_is_asynchronous(self):
        """While polkit sits on a check, the daemon keeps serving others."""
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        self.polkit_obj.SimulateHang(True)
        pending = subprocess.Popen([*NOBODY, VFIOMIGCTL, 'create-mdev', 'mtty', 'mtty-1', UUID],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: self.polkit_obj.HaveHangingCalls(), 10, 'the polkit check')
            self.assertIn('0000:3b:00.1', self.devices())      # served while the check hangs
            self.assertIsNone(pending.poll())
            self.assertNotIn(UUID, self.devices())
            self.polkit_obj.ReleaseHangingCalls()
            out, err = pending.communicate(timeout=10)
            self.assertEqual(pending.returncode, 0, err)
            self.assertEqual(out.strip(), UUID)
            self.assertIn(UUID, self.devices())
        finally:
            if pending.poll() is None:
                pending.kill()


if __name__ == '__main__':
    main()
