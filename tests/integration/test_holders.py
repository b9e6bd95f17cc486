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
PF = '0000:3c:00.1'         # a PCI function of another type than A, B, C


class HolderTest(TestbedTestCase):
    TESTBED = SIM_TESTBED + sim_mdevs((A, B, C)) + f'''
[Device {PF}]
Kind=pci
Vendor=0x1234
Device=0x11e8
MigrationFlags=stop-copy
'''

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
        # saving it, or loading a state into it, too
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Save', '(ssa{sv})', (B, 'never-written', {}))
        self.assertIn(f'{B} is held by pid {p.pid} (python3)', msg)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'state', 'states', 'never-written')))
        job = self.start('Save', '(ssa{sv})', (C, 'c-state', {'source-state': GLib.Variant('s', 'running')}))
        self.assertEqual(self.wait_job(job)['result'], 'done')
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Load', '(ssa{sv})', (B, 'c-state', {}))
        self.assertIn(f'{B} is held by pid {p.pid} (python3)', msg)
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

    def test_busy_before_incompatible(self):
        """A held device is Busy even where the target could not take its
        state anyway: who holds it is what its user needs to hear."""
        p = self.hold(PF)
        self.assertEqual(self.call('CheckCompatibility', '(ss)', (PF, C))[0], 'incompatible')
        for method, sig, args in [('Migrate', '(ssa{sv})', (PF, C, {})), ('Migrate', '(ssa{sv})', (C, PF, {})),
                                  ('Probe', '(ssa{sv})', (PF, C, {}))]:
            with self.subTest(method=method, args=args[:2]):
                msg = self.assert_dbus_error(ERR + 'Busy', self.call, method, sig, args)
                self.assertIn(f'{PF} is held by pid {p.pid} (python3)', msg)
        self.assertEqual(self.tb('GetDeviceState', '(s)', PF), ('running',))
        # without a holder, the same call says what is wrong with it
        p.kill()
        p.wait()
        self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})', (PF, C, {}))


if __name__ == '__main__':
    main()
