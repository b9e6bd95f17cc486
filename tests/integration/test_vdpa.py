#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vDPA devices in the compatibility map (vfiomigd(8), COMPATIBILITY, "The
vDPA facet"; the Vdpa property in org.vfiomig1(5)).

Testbed*: devices and management devices described in a testbed file,
judged by the map, CheckIdentityEx and FindTargetsEx, and refused by every
call that would move their state. Kernel*: the kernel backend against a
umockdev sysfs tree of VDUSE devices, with the netlink answers the 6.12
kernel gave for them (tests/unit/data/vdpa, recorded by the VM tier),
hotplug included. Kernel* must run under umockdev-wrapper (meson.build)."""

import json
import os

from gi.repository import GLib

from vfiomigtest import (DEVICE, MDEV_TYPE, DaemonTestCase, TestbedTestCase, ctl, device_path, main, wait_until)

ERR = 'org.vfiomig1.Error.'
NET_A = 'class=net offered=0x300000021 negotiated=0x300000021'
NET_B = 'class=net offered=0x300008029 mtu=9000'
BLK = 'class=blk offered=0x300000240 blk-size=512'
SIM_FEATURES = '0x3000182ab'

TESTBED = f'''
[VdpaMgmt vdpasim_net]
Classes=net
SupportedFeatures={SIM_FEATURES}

[VdpaMgmt vduse]
Classes=net;blk

[Device vdpa0]
Kind=vdpa
Parent=vdpasim_net
Driver=virtio_vdpa
Vdpa={NET_A}

[Device vdpa1]
Kind=vdpa
Parent=vdpasim_net
Vdpa={NET_B}

[Device blk0]
Kind=vdpa
Parent=vduse
Vdpa={BLK}

[Parent mtty]
Driver=mtty
Iommu=none

[Type mtty/mtty-2]
MigrationFlags=stop-copy,p2p
MaxInstances=2

[Device 5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001]
Kind=mdev
Parent=mtty
Type=mtty-2
'''
MDEV = '5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001'


class VdpaAsserts:
    def compat(self, source, target):
        return tuple(self.call('CheckCompatibility', '(ss)', (source, target)))

    def targets(self, identity, **options):
        opts = {k.replace('_', '-'): GLib.Variant('b', v) for k, v in options.items()}
        return [tuple(t) for t in self.call('FindTargetsEx', '(a{ss}a{sv})', (identity, opts))[0]]


class TestbedVdpaTest(TestbedTestCase, VdpaAsserts):
    TESTBED = TESTBED

    def test_listed_with_their_facets(self):
        devices = self.devices()
        self.assertEqual(devices['vdpa0'], ('vdpa0', 'vdpa', 'virtio_vdpa', 'vdpa-net', '', '', '', 'none'))
        self.assertEqual(devices['blk0'][1:4], ('vdpa', '', 'vdpa-blk'))
        p = self.call('GetAll', '(s)', (DEVICE,), path=device_path('vdpa1'),
                      interface='org.freedesktop.DBus.Properties')[0]
        self.assertEqual((p['Kind'], p['Parent'], p['Vdpa'], p['MigrationType'], p['MigrationBasis']),
                         ('vdpa', 'vdpasim_net', NET_B, 'vdpa', 'features'))
        self.assertEqual(p['VfioDevNode'], '')
        self.assertEqual(self.call('GetIdentityEx', '(s)', ('vdpa1',))[0],
                         {'type': 'vdpa', 'version': '', 'iommu': '', 'vdpa': NET_B})
        # the mdev has no vDPA facet
        self.assertEqual(self.call('GetIdentityEx', '(s)', (MDEV,))[0]['vdpa'], '')

    def test_management_devices_are_types(self):
        types = self.types()
        self.assertEqual(types[('vdpasim_net', 'vdpa-net')], ('vdpasim_net', 'vdpa-net', 'vDPA net', 2**32 - 1))
        self.assertIn(('vduse', 'vdpa-blk'), types)
        t = self.call('GetAll', '(s)', (MDEV_TYPE,), path='/org/vfiomig1/type/vdpasim_5fnet_2fvdpa_2dnet',
                      interface='org.freedesktop.DBus.Properties')[0]
        self.assertEqual((t['Kind'], t['Vdpa']), ('vdpa', f'class=net offered={SIM_FEATURES} config=any'))
        out = ctl('types', check=True).stdout
        self.assertRegex(out, r'vdpasim_net\s+vdpa-net\s+vDPA net\s+vdpa-net\s+unlimited')

    def test_superset_compatible_subset_not(self):
        self.assertEqual(self.compat('vdpa0', 'vdpa1'),
                         ('compatible', 'features', 'the target offers every feature the source negotiated'))
        verdict, basis, reason = self.compat('vdpa1', 'vdpa0')
        self.assertEqual((verdict, basis), ('incompatible', 'features'))
        self.assertEqual(reason, 'target lacks VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF (the source offers them)')
        self.assertEqual(self.compat('vdpa0', 'blk0'),
                         ('incompatible', 'features', 'target is a vDPA blk device, source net'))
        # a VFIO device and a vDPA one never meet
        self.assertEqual(self.compat('vdpa0', MDEV)[0], 'incompatible')
        self.assertEqual(self.compat(MDEV, 'vdpa0')[0], 'incompatible')

    def test_targets_include_management_devices(self):
        got = self.targets({'type': 'vdpa', 'vdpa': NET_A})
        self.assertEqual(got, [('device', 'vdpa0', 'compatible', 'features'),
                               ('device', 'vdpa1', 'compatible', 'features'),
                               ('vdpa-type', 'vdpasim_net/vdpa-net', 'compatible', 'features')])
        # vduse states no features: unknown, listed only when asked for
        got = self.targets({'type': 'vdpa', 'vdpa': NET_A}, include_unknown=True, existing_only=False)
        self.assertIn(('vdpa-type', 'vduse/vdpa-net', 'unknown', 'features'), got)
        # a feature nobody here offers leaves nothing
        self.assertEqual(self.targets({'type': 'vdpa', 'vdpa': 'class=net offered=0x10300000021'}), [])

    def test_check_identity_from_another_host(self):
        verdict, basis, reason = self.call('CheckIdentityEx', '(a{ss}s)', (
            {'type': 'vdpa', 'vdpa': 'class=net offered=0x300008029 negotiated=0x300008021'}, 'vdpa0'))
        self.assertEqual((verdict, basis), ('incompatible', 'features'))
        self.assertEqual(reason, 'target lacks VIRTIO_NET_F_MRG_RXBUF (the source negotiated it)')
        for identity, needle in [({'type': 'vdpa', 'vdpa': 'class=net mtu=0'}, "'mtu=0' is not a valid field"),
                                 ({'type': 'vdpa', 'vdpa': 'class=bogus'}, "'class=bogus'"),
                                 ({'type': 'other', 'vdpa': NET_A}, 'comes with migration type vdpa'),
                                 ({'type': 'vdpa', 'vdpa': 'x' * 1000}, 'longer than')]:
            msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'CheckIdentityEx', '(a{ss}s)',
                                         (identity, 'vdpa0'))
            self.assertIn(needle, msg)

    def test_moving_state_is_refused(self):
        # a saved state there is, so that Load gets as far as its target
        self.wait_job(self.start('Save', '(ssa{sv})', (MDEV, 'mdev-state', {})))
        before = self.devices()
        for method, sig, args in [('Migrate', '(ssa{sv})', ('vdpa0', 'vdpa1', {})),
                                  ('Save', '(ssa{sv})', ('vdpa0', 'x', {})),
                                  ('Load', '(ssa{sv})', ('vdpa1', 'mdev-state', {})),
                                  ('Probe', '(ssa{sv})', ('vdpa0', 'vdpa1', {})),
                                  ('Probe', '(ssa{sv})', ('vdpa0', 'vdpasim_net/vdpa-net', {}))]:
            msg = self.assert_dbus_error(ERR + 'NotMigratable', self.call, method, sig, args)
            self.assertIn('is a vDPA device', msg, method)
        msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'CreateMdev', '(sssa{sv})',
                                     ('vdpasim_net', 'vdpa-net', '', {}))
        self.assertIn('vdpasim_net is a vDPA management device', msg)
        self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'RemoveMdev', '(sa{sv})', ('vdpa0', {}))
        # nothing to open: no flags to learn, no state to set running
        for method in ('RefreshDevice', 'Resume'):
            sig = '(sa{sv})'
            msg = self.assert_dbus_error(ERR + 'NotMigratable', self.call, method, sig, ('vdpa0', {}))
            self.assertIn('vdpa0 is a vDPA device: it has no VFIO device to open', msg)
        self.assertEqual(self.devices(), before)

    def test_ctl(self):
        out = ctl('identity', 'vdpa1', check=True).stdout
        self.assertIn(f'   vDPA: {NET_B}\n', out)
        self.assertIn('  Basis: features\n', out)
        self.assertEqual(json.loads(ctl('identity', 'vdpa1', '--json', check=True).stdout)['vdpa'], NET_B)
        out = ctl('targets', '--type=vdpa', f'--vdpa={NET_A}', check=True).stdout
        self.assertRegex(out, r'vdpa-type\s+vdpasim_net/vdpa-net\s+compatible\s+features')
        p = ctl('compat', 'vdpa1', 'vdpa0')
        self.assertEqual(p.returncode, 1, p.stderr)     # like test(1): not "yes, it can go there"
        self.assertIn('VIRTIO_NET_F_MRG_RXBUF', p.stdout)
        p = ctl('migrate', 'vdpa0', 'vdpa1')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('vdpa0 cannot be migrated by vfiomigd: it is a vDPA device', p.stderr)


REPLAY = os.path.join(os.environ.get('VFIOMIG_SRCDIR', '.'), 'tests', 'unit', 'data', 'vdpa')
# what the 6.12 kernel said of the devices recorded (tests/unit/data/vdpa/README.md)
VA = 'class=net offered=0x300000020 negotiated=0x300000020'
VB = 'class=net offered=0x300018028 negotiated=0x300018028 mtu=9000'     # no MQ: no pairs stated
VC = 'class=blk offered=0x300001040 blk-size=4096 queues=2'


def sysfs_tree():
    """A umockdev sysfs tree; the kernel backend reads it only when the
    test runs under umockdev-wrapper."""
    if 'umockdev' not in os.environ.get('LD_PRELOAD', ''):
        raise RuntimeError('run this test under umockdev-wrapper')
    from sysfs import SysfsTree  # pylint: disable=import-outside-toplevel
    return SysfsTree()


class KernelVdpaTest(DaemonTestCase, VdpaAsserts):
    daemon_args = [f'--vdpa-replay={REPLAY}']

    @classmethod
    def setUpClass(cls):
        t = cls.tree = sysfs_tree()
        t.add_vdpa('vA', 'virtio_vdpa')
        t.add_vdpa('vB', 'virtio_vdpa')
        # in sysfs, but the kernel no longer knows it (no recording): gone
        t.add_vdpa('vGone')
        cls.daemon_env = {'UMOCKDEV_DIR': t.root}
        super().setUpClass()

    def test_enumerated_with_what_netlink_said(self):
        devices = self.devices()
        self.assertEqual(sorted(devices), ['vA', 'vB'])
        self.assertEqual(devices['vA'], ('vA', 'vdpa', 'virtio_vdpa', 'vdpa-net', '', '', '', 'none'))
        for name, facet in [('vA', VA), ('vB', VB)]:
            self.assertEqual(self.get_property(device_path(name), DEVICE, 'Vdpa'), facet)
            self.assertEqual(self.get_property(device_path(name), DEVICE, 'Parent'), 'vduse')
        # vduse makes net and blk devices, and states no features for them
        types = self.types()
        self.assertEqual(sorted(k for k in types if k[0] == 'vduse'), [('vduse', 'vdpa-blk'), ('vduse', 'vdpa-net')])
        self.assertEqual(self.get_property('/org/vfiomig1/type/vduse_2fvdpa_2dnet', MDEV_TYPE, 'Vdpa'),
                         'class=net config=any')

    def test_the_map_on_real_features(self):
        self.assertEqual(self.compat('vA', 'vB')[0], 'compatible')
        verdict, basis, reason = self.compat('vB', 'vA')
        self.assertEqual((verdict, basis), ('incompatible', 'features'))
        self.assertEqual(reason, 'target lacks VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS '
                                 '(the source negotiated them)')

    def test_hotplug(self):
        """A device added at run time joins the map, one removed leaves it."""
        self.tree.add_vdpa('vC')
        self.tree.uevent('/sys/devices/virtual/vduse/vC/vC', 'add')
        wait_until(lambda: 'vC' in self.devices(), 10, 'vC added')
        self.assertEqual(self.get_property(device_path('vC'), DEVICE, 'Vdpa'), VC)
        self.assertEqual(self.compat('vA', 'vC'), ('incompatible', 'features', 'target is a vDPA blk device, source net'))
        self.assertIn(('device', 'vB', 'compatible', 'features'), self.targets({'type': 'vdpa', 'vdpa': VA}))

        self.tree.uevent('/sys/devices/virtual/vduse/vC/vC', 'remove')
        self.tree.remove_vdpa('vC')
        wait_until(lambda: 'vC' not in self.devices(), 10, 'vC removed')
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'CheckCompatibility', '(ss)', ('vA', 'vC'))
        self.assertNotIn('vC', [t[1] for t in self.targets({'type': 'vdpa', 'vdpa': 'class=blk offered=0x0'},
                                                           include_unknown=True)])


REPLAY_SIM = os.path.join(os.environ.get('VFIOMIG_SRCDIR', '.'), 'tests', 'unit', 'data', 'vdpasim')
# what the 6.12 kernel said of vdpa_sim_net and its devices (tests/unit/data/vdpasim/README.md)
SIM_SUPPORTED = '0x308830028'
S1 = 'class=net offered=0x300000020'
S2 = 'class=net offered=0x300010028 mtu=1500'


class KernelVdpasimTest(DaemonTestCase, VdpaAsserts):
    """A management device that states its features: its type is judged on
    them, not as unknown."""
    daemon_args = [f'--vdpa-replay={REPLAY_SIM}']

    @classmethod
    def setUpClass(cls):
        t = cls.tree = sysfs_tree()
        # vdpa_sim makes its devices without a parent
        t.add_vdpa('S1', under='/sys/devices')
        t.add_vdpa('S2', under='/sys/devices')
        cls.daemon_env = {'UMOCKDEV_DIR': t.root}
        super().setUpClass()

    def test_type_offers_the_supported_features(self):
        self.assertEqual(self.get_property(device_path('S1'), DEVICE, 'Vdpa'), S1)
        self.assertEqual(self.get_property(device_path('S2'), DEVICE, 'Vdpa'), S2)
        self.assertEqual(self.get_property('/org/vfiomig1/type/vdpasim_5fnet_2fvdpa_2dnet', MDEV_TYPE, 'Vdpa'),
                         f'class=net offered={SIM_SUPPORTED} config=any')
        self.assertEqual(self.targets({'type': 'vdpa', 'vdpa': S2}, existing_only=False),
                         [('device', 'S2', 'compatible', 'features'),
                          ('vdpa-type', 'vdpasim_net/vdpa-net', 'compatible', 'features')])
        # MRG_RXBUF: neither device nor type has it, and the type is known
        # to lack it, so it is not merely unknown
        self.assertEqual(self.targets({'type': 'vdpa', 'vdpa': 'class=net offered=0x300008020'},
                                      existing_only=False, include_unknown=True), [])
        self.assertEqual(self.compat('S1', 'S2')[0], 'compatible')
        self.assertEqual(self.compat('S2', 'S1'), ('incompatible', 'features',
                                                   'target lacks VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS '
                                                   '(the source offers them)'))


if __name__ == '__main__':
    main()
