#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The kernel backend against umockdev sysfs trees: enumeration, hotplug
uevents, binding and unbinding, parent registration, and sysfs writes of
CreateMdev/RemoveMdev. Must run under umockdev-wrapper (see meson.build)."""

import json
import os
import subprocess

from vfiomigtest import (DEVICE, MANAGER, MDEV_TYPE, OBJECT_PATH, VFIOMIGCTL, DaemonTestCase, SignalRecorder,
                         ctl, device_path, main, wait_until)
from sysfs import SysfsTree

UUID1 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001'
UUID2 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1002'
UUID3 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1003'
VF = '0000:3b:00.1'
PF = '0000:3b:00.0'
NVME = '0000:3c:00.0'
ERR = 'org.vfiomig1.Error.'


class UdevTest(DaemonTestCase):
    daemon_args = []

    @classmethod
    def setUpClass(cls):
        if 'umockdev' not in os.environ.get('LD_PRELOAD', ''):
            raise RuntimeError('run this test under umockdev-wrapper')
        t = cls.tree = SysfsTree()
        cls.parent = t.add_mtty_parent({'mtty-1': 23, 'mtty-2': 11})
        t.add_mdev(cls.parent, UUID1, 'mtty-2', 12)
        t.add_mdev(cls.parent, UUID2, 'mtty-1', 13)
        cls.vf = t.add_pci(VF, 'vfio-pci', '0x15b3', '0x101e', '0x15b3', '0x0051', 61, physfn=PF, vfio=True)
        cls.pf = t.add_pci(PF, 'mlx5_core', '0x15b3', '0x101d', '0x15b3', '0x0051', 60)
        cls.nvme = t.add_pci(NVME, 'nvme', '0x144d', '0xa808', '0x144d', '0xa801', 70)
        # the VF behind a VT-d unit with 48-bit addresses (aw-bits=48 in QEMU)
        t.add_vtd('dmar0', 0xd2008c222f0686, 0xf0_0f5e)
        t.attach_iommu(cls.vf, 'dmar0', 61, [(0xfee00000, 0xfeefffff, 'msi'), (0x1000, 0x1fff, 'direct-relaxable')])
        cls.daemon_env = {'UMOCKDEV_DIR': t.root}
        super().setUpClass()

    def test_lists_exactly_what_is_there(self):
        self.assertEqual(self.get_property(OBJECT_PATH, MANAGER, 'Backend'), 'kernel')
        self.assertEqual(self.devices(), {
            UUID1: (UUID1, 'mdev', 'mtty', 'mtty-2', '', '', '', 'unknown'),
            UUID2: (UUID2, 'mdev', 'mtty', 'mtty-1', '', '', '', 'unknown'),
            VF: (VF, 'pci', 'vfio-pci', '', '', '', '', 'unknown'),
        })
        self.assertEqual(self.types(), {
            ('mtty', 'mtty-1'): ('mtty', 'mtty-1', 'Single port serial', 23),
            ('mtty', 'mtty-2'): ('mtty', 'mtty-2', 'Dual port serial', 11),
        })

    def props(self, name):
        return self.call('GetAll', '(s)', (DEVICE,), path=device_path(name),
                         interface='org.freedesktop.DBus.Properties')[0]

    def test_mdev_properties(self):
        p = self.props(UUID1)
        self.assertEqual((p['Kind'], p['Driver'], p['Parent'], p['MdevType']), ('mdev', 'mtty', 'mtty', 'mtty-2'))
        self.assertEqual(p['IommuGroup'], '12')
        self.assertEqual(p['SysfsPath'], f'{self.parent}/{UUID1}')
        self.assertRegex(p['VfioDevNode'], r'^/dev/vfio/devices/vfio\d+$')
        # the kernel backend does not open devices to learn these
        self.assertEqual((p['MigrationSupport'], p['MigrationFlags'], p['MigrationState']), ('unknown', [], ''))
        t = self.call('GetAll', '(s)', (MDEV_TYPE,), path='/org/vfiomig1/type/mtty_2fmtty_2d2',
                      interface='org.freedesktop.DBus.Properties')[0]
        self.assertEqual((t['Id'], t['Parent'], t['Name'], t['DeviceApi'], t['AvailableInstances']),
                         ('mtty-2', 'mtty', 'Dual port serial', 'vfio-pci', 11))
        self.assertEqual(t['Description'], '')      # optional in the kernel ABI, absent for mtty

    def test_iommu_facet_from_sysfs(self):
        """Width and page sizes from the unit's cap register, ranges from
        the group's reserved regions; an mdev of mtty has none."""
        self.assertEqual(self.props(VF)['Iommu'],
                         'width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no')
        self.assertEqual(self.props(UUID1)['Iommu'], 'none')
        self.assertEqual(self.get_property('/org/vfiomig1/type/mtty_2fmtty_2d2', MDEV_TYPE, 'Iommu'), 'none')
        ident = self.call('GetIdentityEx', '(s)', (VF,))[0]
        self.assertEqual(ident['iommu'], self.props(VF)['Iommu'])

    def test_ctl_show_on_kernel_devices(self):
        # no migration flags (the kernel backend does not open devices)
        out = ctl('show', UUID1, check=True).stdout
        self.assertRegex(out, r'MdevType: mtty-2\n')
        self.assertRegex(out, r'MigrationSupport: unknown\n')
        self.assertRegex(out, r'MigrationFlags: unknown\n')
        shown = json.loads(ctl('show', VF, '--json', check=True).stdout)
        self.assertEqual((shown['migration_support'], shown['migration_flags']), ('unknown', []))
        listed = {d['name']: d for d in json.loads(ctl('list', '--json', check=True).stdout)}
        self.assertEqual((listed[VF]['migration_support'], listed[VF]['migration_flags']), ('unknown', []))
        self.assertIn('unknown', [line.split()[5] for line in ctl('list', check=True).stdout.splitlines()
                                  if line.startswith(VF)])

    def test_migration_support_unknown_until_opened(self):
        """Enumeration and uevents never open a device (that resets a
        vfio-pci function): every device shows "unknown", and so does one
        bound later. Only an open learns it; here no device can be opened
        (umockdev has no VFIO), so an explicit refresh fails and teaches
        nothing."""
        for name in (UUID1, UUID2, VF):
            self.assertEqual(self.get_property(device_path(name), DEVICE, 'MigrationSupport'), 'unknown', name)
        msg = self.assert_dbus_error(ERR + 'DeviceFailed', self.call, 'RefreshDevice', '(sa{sv})', (VF, {}))
        self.assertIn(VF, msg)
        self.assertEqual(self.get_property(device_path(VF), DEVICE, 'MigrationSupport'), 'unknown')
        p = ctl('refresh', VF)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'Failed to refresh {VF}', p.stderr)

        self.tree.unbind(self.nvme)
        self.tree.uevent(self.nvme, 'unbind')
        self.tree.bind(self.nvme, 'vfio-pci', vfio=True)
        self.tree.uevent(self.nvme, 'bind')
        try:
            wait_until(lambda: NVME in self.devices(), 10, f'{NVME} bound to vfio-pci')
            self.assertEqual(self.devices()[NVME][7], 'unknown')
            self.assertEqual(self.get_property(device_path(NVME), DEVICE, 'MigrationFlags'), [])
        finally:
            self.tree.unbind(self.nvme)
            self.tree.uevent(self.nvme, 'unbind')
            wait_until(lambda: NVME not in self.devices(), 10, f'{NVME} unbound')
            self.tree.bind(self.nvme, 'nvme', vfio=False)
            self.tree.uevent(self.nvme, 'bind')

    def test_unbound_mdev_is_not_listed(self):
        """An mdev without its driver has no vfio-dev/: not a VFIO device,
        and a stale uevent for it must not bring it back."""
        dev = self.tree.add_mdev(self.parent, UUID3, 'mtty-1', 15)
        self.tree.uevent(dev, 'add')
        wait_until(lambda: UUID3 in self.devices(), 10, 'mdev added')
        vfio = self.tree.path(dev + '/vfio-dev')
        os.rename(vfio, vfio + '.unbound')
        self.tree.uevent(dev, 'unbind')
        wait_until(lambda: UUID3 not in self.devices(), 10, 'unbound mdev to go')
        self.tree.uevent(dev, 'change')
        self.call('ListDevices')
        self.assertNotIn(UUID3, self.devices())
        os.rename(vfio + '.unbound', vfio)
        self.tree.uevent(dev, 'bind')
        wait_until(lambda: UUID3 in self.devices(), 10, 'rebound mdev')
        self.tree.uevent(dev, 'remove')
        self.tree.remove_mdev(self.parent, UUID3)
        wait_until(lambda: UUID3 not in self.devices(), 10, 'removed mdev')

    def test_pci_properties(self):
        p = self.props(VF)
        self.assertEqual((p['Kind'], p['Driver'], p['Parent'], p['IommuGroup']), ('pci', 'vfio-pci', PF, '61'))
        self.assertRegex(p['VfioDevNode'], r'^/dev/vfio/devices/vfio\d+$')
        self.assertEqual(p['MdevType'], '')

    def test_hotplug_mdev(self):
        rec = SignalRecorder(self.conn)
        monitor = subprocess.Popen([VFIOMIGCTL, 'monitor'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        try:
            self.assertIn('Monitoring', monitor.stderr.readline())

            self.tree.add_mdev(self.parent, UUID3, 'mtty-1', 14)
            self.tree.set_available(self.parent, 'mtty-1', 22)
            self.tree.uevent(f'{self.parent}/{UUID3}', 'add')
            rec.wait_for(lambda s: s[1] == 'DeviceAdded' and s[3] == (UUID3, device_path(UUID3)))
            rec.wait_for(lambda s: s[1] == 'InterfacesAdded' and s[3][0] == device_path(UUID3)
                         and s[3][1][DEVICE]['MdevType'] == 'mtty-1')
            rec.wait_for(lambda s: s[1] == 'PropertiesChanged' and s[3][0] == MDEV_TYPE
                         and s[3][1].get('AvailableInstances') == 22)
            self.assertEqual(self.devices()[UUID3][1:4], ('mdev', 'mtty', 'mtty-1'))
            self.assertEqual(self.types()[('mtty', 'mtty-1')][3], 22)
            self.assertEqual(monitor.stdout.readline().split(), ['added', UUID3])

            # as when "echo 1 > remove" returned before the daemon woke up
            self.tree.set_available(self.parent, 'mtty-1', 23)
            self.tree.uevent(f'{self.parent}/{UUID3}', 'remove')
            self.tree.remove_mdev(self.parent, UUID3)
            rec.wait_for(lambda s: s[1] == 'DeviceRemoved' and s[3][0] == UUID3)
            rec.wait_for(lambda s: s[1] == 'PropertiesChanged' and s[3][0] == MDEV_TYPE
                         and s[3][1].get('AvailableInstances') == 23)
            self.assertNotIn(UUID3, self.devices())
            self.assertEqual(monitor.stdout.readline().split(), ['removed', UUID3])
        finally:
            monitor.kill()
            monitor.wait()
            rec.close()

    def test_list_types_reads_available_instances_live(self):
        """The kernel frees an instance when the last user lets go, with no
        uevent; ListTypes must not answer from a stale cache."""
        try:
            self.tree.set_available(self.parent, 'mtty-2', 7)
            self.assertEqual(self.types()[('mtty', 'mtty-2')][3], 7)
            self.assertEqual(self.get_property('/org/vfiomig1/type/mtty_2fmtty_2d2', MDEV_TYPE,
                                               'AvailableInstances'), 7)
        finally:
            self.tree.set_available(self.parent, 'mtty-2', 11)
            self.types()

    def test_bind_and_unbind_vfio(self):
        self.assertNotIn(NVME, self.devices())
        self.tree.unbind(self.nvme)
        self.tree.uevent(self.nvme, 'unbind')
        self.tree.bind(self.nvme, 'vfio-pci', vfio=True)
        self.tree.uevent(self.nvme, 'bind')
        wait_until(lambda: NVME in self.devices(), 10, f'{NVME} bound to vfio-pci')
        self.assertEqual(self.devices()[NVME][2], 'vfio-pci')

        self.tree.unbind(self.nvme)
        self.tree.uevent(self.nvme, 'unbind')
        wait_until(lambda: NVME not in self.devices(), 10, f'{NVME} unbound')
        self.tree.bind(self.nvme, 'nvme', vfio=False)
        self.tree.uevent(self.nvme, 'bind')
        self.call('ListDevices')        # a round trip after the uevent
        self.assertNotIn(NVME, self.devices())

    def test_parent_unregister_and_register(self):
        uevent = self.tree.read(self.parent + '/uevent')
        try:
            self.tree.write(self.parent + '/uevent', 'MDEV_STATE=unregistered\n')
            self.tree.uevent(self.parent, 'change')
            wait_until(lambda: not self.types(), 10, 'types to go with their parent')
            self.tree.write(self.parent + '/uevent', 'MDEV_STATE=registered\n')
            self.tree.uevent(self.parent, 'change')
            wait_until(lambda: len(self.types()) == 2, 10, 'types to come back')
        finally:
            self.tree.write(self.parent + '/uevent', uevent)

    def test_create_and_remove_write_sysfs(self):
        create = f'{self.parent}/mdev_supported_types/mtty-2/create'
        new = '0a0b0c0d-0000-4000-8000-000000000001'
        self.assertEqual(self.call('CreateMdev', '(sssa{sv})', ('mtty', 'mtty-2', new.upper(), {}))[0], new)
        self.assertEqual(self.tree.read(create), new)

        self.assertEqual(ctl('remove-mdev', UUID2).returncode, 0)
        self.assertEqual(self.tree.read(f'{self.parent}/{UUID2}/remove'), '1')
        # the kernel would delete the directory; here it stays, so does the device
        self.assertIn(UUID2, self.devices())

    def test_kernel_errors_name_the_cause(self):
        create = self.tree.path(f'{self.parent}/mdev_supported_types/mtty-1/create')
        os.unlink(create)
        os.mkdir(create)        # writing it now fails with EISDIR, as a driver's refusal would
        try:
            msg = self.assert_dbus_error(ERR + 'DeviceFailed', self.call, 'CreateMdev', '(sssa{sv})',
                                         ('mtty', 'mtty-1', '', {}))
            self.assertIn('mtty', msg)
            self.assertIn('directory', msg.lower())
        finally:
            os.rmdir(create)
            open(create, 'w', encoding='utf-8').close()


if __name__ == '__main__':
    main()
