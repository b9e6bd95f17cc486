#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration support on the testbed: MigrationSupport ("unknown", "none",
"supported") and what one open teaches the devices that share its driver
and IDs (or parent and type).

Devices with FlagsKnown=no play the kernel backend's: unknown until a
call opens them. The others know their flags from the testbed file."""

from vfiomigtest import DEVICE, SIM_TESTBED, TestbedTestCase, device_path, main, sim_mdevs, sim_uuid

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

    def test_a_migration_learns_for_siblings(self):
        self.assertEqual((self.support(LATE0), self.support(LATE1)), (('unknown', []), ('unknown', [])))
        msg = self.refused('NotMigratable', self.call, 'Migrate', '(ssa{sv})', (LATE0, LATE1, {}))
        self.assertIn(LATE0, msg)
        self.assert_untouched(LATE0, LATE1)
        # its sibling (same driver and IDs) learned it too
        self.assertEqual((self.support(LATE0), self.support(LATE1)), (('none', []), ('none', [])))

    def test_probe_learns_for_siblings(self):
        self.assertEqual([self.support(u) for u in (U1, U2, U3)], [('unknown', [])] * 3)
        verdict = self.call('Probe', '(ssa{sv})', (U1, U2, {}))
        self.assertEqual(verdict[0], 'compatible', verdict)
        for u in (U1, U2, U3):
            self.assertEqual(self.support(u), ('supported', ALL), u)
        self.assert_untouched(U1, U2, U3)


if __name__ == '__main__':
    main()
