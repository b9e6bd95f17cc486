#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration support on the testbed: MigrationSupport ("unknown", "none",
"supported"), refusals of devices whose driver has no VFIO migration
(NotMigratable, before or after an open, the device left usable),
RefreshDevice() and what one open teaches the devices that share its
driver and IDs (or parent and type).

Devices with FlagsKnown=no play the kernel backend's: unknown until a
call opens them. The others know their flags from the testbed file."""

import json
import os

from gi.repository import GLib

from vfiomigtest import (DEVICE, SIM_TESTBED, SignalRecorder, TestbedTestCase, ctl, device_path, hold, main,
                         sim_mdevs, sim_uuid)

ERR = 'org.vfiomig1.Error.'
ALL = ['stop-copy', 'p2p', 'pre-copy']

A, B = sim_uuid(1), sim_uuid(2)                         # mdevs, known: supported
U1, U2, U3 = sim_uuid(11), sim_uuid(12), sim_uuid(13)   # mdevs of one type, unknown
NOMIG, PEER = '0000:00:03.0', '0000:00:03.1'            # vfio-pci without migration, known
LATE0, LATE1 = '0000:00:05.0', '0000:00:05.1'           # the same, unknown until opened
UNK = '0000:00:06.0'                                    # unknown, migrates
PROBED = '0000:00:07.0'                                 # unknown, no migration: for a probe
VF1, VF2 = '0000:3b:00.1', '0000:3b:00.2'               # siblings, unknown, migrate
VF3 = '0000:3b:00.3'                                    # another subsystem device: no sibling of theirs


def pci(name, driver, vendor, device, subdevice='0x0000', flags='', known=True):
    return f'''
[Device {name}]
Kind=pci
Driver={driver}
Vendor={vendor}
Device={device}
SubsystemVendor={vendor}
SubsystemDevice={subdevice}
{'MigrationFlags=' + flags if flags else ''}
{'' if known else 'FlagsKnown=no'}
'''


TESTBED = SIM_TESTBED + sim_mdevs((A, B)) + ''.join(f'''
[Device {u}]
Kind=mdev
Parent=simgpu
Type=sim
FlagsKnown=no
''' for u in (U1, U2, U3)) + ''.join([
    pci(NOMIG, 'vfio-pci', '0x1af4', '0x1041'),
    pci(PEER, 'vfio-pci', '0x1af4', '0x1041'),
    pci(LATE0, 'vfio-pci', '0x8086', '0x10ca', known=False),
    pci(LATE1, 'vfio-pci', '0x8086', '0x10ca', known=False),
    pci(UNK, 'vfio-pci', '0x8086', '0x1572', flags='stop-copy', known=False),
    pci(PROBED, 'vfio-pci', '0x8086', '0x1533', known=False),
    pci(VF1, 'mlx5_vfio_pci', '0x15b3', '0x101e', '0x0051', flags='stop-copy,p2p,pre-copy', known=False),
    pci(VF2, 'mlx5_vfio_pci', '0x15b3', '0x101e', '0x0051', flags='stop-copy,p2p,pre-copy', known=False),
    pci(VF3, 'mlx5_vfio_pci', '0x15b3', '0x101e', '0x0052', flags='stop-copy,p2p', known=False),
])


def not_migratable(name, driver='vfio-pci'):
    return f'{name} cannot be migrated: its driver ({driver}) has no VFIO migration'


class FlagsTest(TestbedTestCase):
    TESTBED = TESTBED

    def prop(self, name, prop):
        return self.get_property(device_path(name), DEVICE, prop)

    def support(self, name):
        return self.prop(name, 'MigrationSupport'), self.prop(name, 'MigrationFlags')

    def refused(self, error, *args):
        """The error's message, without GDBus's "GDBus.Error:NAME: " in front."""
        msg = self.assert_dbus_error(ERR + error, *args)
        prefix = f'GDBus.Error:{ERR}{error}: '
        return msg[len(prefix):] if msg.startswith(prefix) else msg

    def refresh(self, name):
        return tuple(self.call('RefreshDevice', '(sa{sv})', (name, {})))

    def assert_untouched(self, *names):
        """Not busy, running, no job: as the refused call found it."""
        for name in names:
            self.assertFalse(self.prop(name, 'Busy'), name)
            self.assertEqual(self.state(name), 'running', name)
        self.assertEqual(self.call('ListMigrations')[0], [])

    def test_migration_support_values(self):
        self.assertEqual(self.support(A), ('supported', ALL))
        self.assertEqual(self.support(NOMIG), ('none', []))
        self.assertEqual(self.support(UNK), ('unknown', []))
        listed = self.devices()
        self.assertEqual((listed[A][4], listed[A][7]), (','.join(ALL), 'supported'))
        self.assertEqual((listed[NOMIG][4], listed[NOMIG][7]), ('', 'none'))
        self.assertEqual((listed[UNK][4], listed[UNK][7]), ('', 'unknown'))

    def test_ctl_show_and_list(self):
        for name, text in [(A, 'stop-copy p2p pre-copy'), (NOMIG, 'none (the driver has no VFIO migration)'),
                           (UNK, 'unknown')]:
            with self.subTest(device=name):
                out = ctl('show', name, check=True).stdout
                self.assertIn(f'  MigrationFlags: {text}\n', out)
                shown = json.loads(ctl('show', name, '--json', check=True).stdout)
                self.assertEqual((shown['migration_support'], shown['migration_flags']), self.support(name))
        listed = {d['name']: d for d in json.loads(ctl('list', '--json', check=True).stdout)}
        for name in (A, NOMIG, UNK):
            self.assertEqual((listed[name]['migration_support'], listed[name]['migration_flags']),
                             self.support(name))
        rows = {line.split()[0]: line.split() for line in ctl('list', check=True).stdout.splitlines()[1:]
                if line.strip()}
        self.assertEqual((rows[A][5], rows[NOMIG][5], rows[UNK][5]), (','.join(ALL), 'none', 'unknown'))

    def test_not_migratable_is_refused_and_left_usable(self):
        before = {n: self.digest(n) for n in (NOMIG, PEER, A)}
        for method, sig, args, name in [('Migrate', '(ssa{sv})', (NOMIG, PEER, {}), NOMIG),
                                        ('Migrate', '(ssa{sv})', (A, NOMIG, {}), NOMIG),
                                        ('Save', '(ssa{sv})', (NOMIG, 'never-written', {}), NOMIG),
                                        ('Probe', '(ssa{sv})', (NOMIG, A, {}), NOMIG),
                                        ('Probe', '(ssa{sv})', (A, NOMIG, {}), NOMIG)]:
            with self.subTest(method=method, args=args[:2]):
                msg = self.refused('NotMigratable', self.call, method, sig, args)
                self.assertEqual(msg, not_migratable(name))
                self.assert_untouched(NOMIG, PEER, A)
        self.assertEqual({n: self.digest(n) for n in before}, before)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'state', 'states', 'never-written')))
        # nothing of ours holds it: it opens (and answers) as before
        self.assertEqual(self.refresh(NOMIG), ('none', []))
        self.assertEqual(self.support(NOMIG), ('none', []))

        p = ctl('migrate', NOMIG, PEER)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(not_migratable(NOMIG), p.stderr)
        p = ctl('probe', NOMIG, PEER)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(not_migratable(NOMIG), p.stderr)

    def test_learned_by_an_open_then_refused_without_one(self):
        self.assertEqual((self.support(LATE0), self.support(LATE1)), (('unknown', []), ('unknown', [])))
        # unknown: the migration gets as far as opening its source, learns
        # there is no migration, closes it and says so
        msg = self.refused('NotMigratable', self.call, 'Migrate', '(ssa{sv})', (LATE0, LATE1, {}))
        self.assertEqual(msg, not_migratable(LATE0))
        self.assert_untouched(LATE0, LATE1)
        # its sibling (same driver and IDs) learned it too
        self.assertEqual((self.support(LATE0), self.support(LATE1)), (('none', []), ('none', [])))

        # now known: refused without an open. Another process holds LATE1,
        # so an open would have said Busy.
        p = hold(self, self.prop(LATE1, 'VfioDevNode'))
        for method, sig, args in [('Migrate', '(ssa{sv})', (LATE1, LATE0, {})),
                                  ('Save', '(ssa{sv})', (LATE1, 'never-written', {})),
                                  ('Probe', '(ssa{sv})', (LATE1, LATE0, {}))]:
            with self.subTest(method=method):
                msg = self.refused('NotMigratable', self.call, method, sig, args)
                self.assertEqual(msg, not_migratable(LATE1))
        self.assertEqual(self.prop(LATE1, 'Holder'), '', 'nobody looked: nothing was opened')
        # an explicit refresh does open it, and finds the holder
        msg = self.refused('Busy', self.call, 'RefreshDevice', '(sa{sv})', (LATE1, {}))
        self.assertEqual(msg, f'{LATE1} is held by pid {p.pid} (python3)')

    def test_probe_learns_there_is_no_migration(self):
        """A probe opens an unknown device and is refused as a migration
        would be; the device is closed again and left as it was."""
        self.assertEqual(self.support(PROBED), ('unknown', []))
        msg = self.refused('NotMigratable', self.call, 'Probe', '(ssa{sv})', (PROBED, A, {}))
        self.assertEqual(msg, not_migratable(PROBED))
        self.assert_untouched(PROBED, A)
        self.assertEqual(self.support(PROBED), ('none', []))
        self.assertEqual(self.refresh(PROBED), ('none', []))

    def test_refresh_learns_for_siblings(self):
        self.assertEqual([self.support(n) for n in (VF1, VF2, VF3)], [('unknown', [])] * 3)
        props = SignalRecorder(self.conn, member='PropertiesChanged', path=device_path(VF2))
        self.addCleanup(props.close)
        self.assertEqual(self.refresh(VF1), ('supported', ALL))
        self.assertEqual(self.support(VF1), ('supported', ALL))
        self.assertEqual(self.support(VF2), ('supported', ALL), 'its sibling shows them at once')
        props.wait_for(lambda s: s[3][0] == DEVICE and s[3][1].get('MigrationSupport') == 'supported'
                       and s[3][1].get('MigrationFlags') == ALL)
        self.assertEqual(self.support(VF3), ('unknown', []), 'another subsystem device is no sibling')
        self.assert_untouched(VF1, VF2)

        out = ctl('refresh', VF3, check=True).stdout
        self.assertEqual(out, f'{VF3}: stop-copy p2p\n')
        self.assertEqual(json.loads(ctl('refresh', VF2, '--json', check=True).stdout),
                         {'device': VF2, 'migration_support': 'supported', 'migration_flags': ALL})
        # a device known from the start answers what it is known to be
        self.assertEqual(self.refresh(A), ('supported', ALL))
        self.assertEqual(ctl('refresh', NOMIG, check=True).stdout,
                         f'{NOMIG}: none (the driver has no VFIO migration)\n')

    def test_refresh_errors(self):
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'RefreshDevice', '(sa{sv})', (sim_uuid(99), {}))
        self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'RefreshDevice', '(sa{sv})', ('no/pe', {}))
        self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'RefreshDevice', '(sa{sv})',
                               (A, {'x': GLib.Variant('b', True)}))
        self.assertEqual(ctl('refresh', sim_uuid(99)).returncode, 3)
        self.assertEqual(ctl('refresh').returncode, 2)

    def test_refresh_of_a_device_held_by_a_job(self):
        self.tb('InjectFault', '(ss)', A, 'stall after=0')
        job = self.start('Migrate', '(ssa{sv})', (A, B, {}))
        try:
            for name in (A, B):
                msg = self.refused('Busy', self.call, 'RefreshDevice', '(sa{sv})', (name, {}))
                self.assertEqual(msg, f'{name} is held by migration {job["id"]}')
            self.assertEqual(ctl('refresh', A).returncode, 5)
        finally:
            self.call('Cancel', path=job['path'], interface='org.vfiomig1.Migration')
            self.tb('ClearFaults', '(s)', A)
            self.assertEqual(self.wait_job(job)['result'], 'cancelled')
        self.assertEqual(self.refresh(A), ('supported', ALL))

    def test_probe_learns_for_siblings(self):
        self.assertEqual([self.support(u) for u in (U1, U2, U3)], [('unknown', [])] * 3)
        verdict = self.call('Probe', '(ssa{sv})', (U1, U2, {}))
        self.assertEqual(verdict[0], 'compatible', verdict)
        for u in (U1, U2, U3):
            self.assertEqual(self.support(u), ('supported', ALL), u)
        self.assert_untouched(U1, U2, U3)


if __name__ == '__main__':
    main()
