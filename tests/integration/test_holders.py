#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Devices another process holds open: the testbed plays the kernel (a
second open of a held device gets EBUSY) with a file per device that a
holder keeps locked, so the daemon's /proc lookup of the holder runs for
real."""

import os

from gi.repository import GLib

from vfiomigtest import SIM_TESTBED, TestbedTestCase, device_path, hold, main, sim_mdevs, sim_uuid

ERR = 'org.vfiomig1.Error.'
DEVICE = 'org.vfiomig1.Device'
A, B, C = (sim_uuid(n) for n in (1, 2, 3))


class HolderTest(TestbedTestCase):
    TESTBED = SIM_TESTBED + sim_mdevs((A, B, C))

    def prop(self, name, prop):
        return self.get_property(device_path(name), DEVICE, prop)

    def hold(self, name):
        node = self.prop(name, 'VfioDevNode')
        self.assertTrue(os.path.exists(node), node)
        return hold(self, node)

    def test_nobody(self):
        self.call('GetDevice', '(s)', (A,))
        self.assertEqual(self.prop(A, 'Holder'), '')
        self.assertFalse(self.prop(A, 'Busy'))

    def test_get_device_names_the_holder(self):
        p = self.hold(A)
        self.assertEqual(self.prop(A, 'Holder'), '', 'a listing or a property read never scans')
        self.call('GetDevice', '(s)', (A,))
        self.assertEqual(self.prop(A, 'Holder'), f'pid {p.pid} (python3)')
        self.assertTrue(self.prop(A, 'Busy'))
        p.kill()
        p.wait()
        self.call('GetDevice', '(s)', (A,))
        self.assertEqual(self.prop(A, 'Holder'), '')
        self.assertFalse(self.prop(A, 'Busy'))

    def test_refused_and_unchanged(self):
        p = self.hold(B)
        before = self.tb('GetDigest', '(s)', B)
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Migrate', '(ssa{sv})', (B, C, {}))
        self.assertIn(f'{B} is held by pid {p.pid} (python3)', msg)
        # the refused call found the holder: the property says it now
        self.assertEqual(self.prop(B, 'Holder'), f'pid {p.pid} (python3)')
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Migrate', '(ssa{sv})', (C, B, {}))
        self.assertIn(f'pid {p.pid}', msg)
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'RemoveMdev', '(sa{sv})', (B, {}))
        self.assertIn(f'{B} is held by pid {p.pid} (python3)', msg)
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Resume', '(sa{sv})', (B, {}))
        self.assertIn(f'pid {p.pid}', msg)
        self.assertIn(B, self.devices())
        self.assertEqual(self.tb('GetDigest', '(s)', B), before)
        self.assertEqual(self.tb('GetDeviceState', '(s)', B), ('running',))
        self.assertEqual(self.prop(C, 'Busy'), False, 'the other device of a refused job stays free')
        # once the holder is gone it is a target again, though nobody
        # looked since (what /proc said last is no verdict), and the same
        # call works
        p.kill()
        p.wait()
        t, v = self.call('GetIdentity', '(s)', (B,))
        targets = [n for _, n, _, _ in self.call('FindTargets', '(ssa{sv})', (t, v, {}))[0]]
        self.assertIn(B, targets)
        job_id, _ = self.call('Migrate', '(ssa{sv})', (B, C, {'precopy': GLib.Variant('b', False)}))
        self.assertGreater(job_id, 0)


if __name__ == '__main__':
    main()
