#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migration compatibility (vfiomigd(8), COMPATIBILITY): identities from each
basis (vendor, rule, type-match), verdicts, FindTargets, hotplug without a
rebuild of the map, refusals of incompatible migrations and loads, probes,
and vfiomigctl's identity/compat/targets/probe.

Two kinds of classes, selected by name in meson.build:

- Kernel*: the kernel backend on a umockdev sysfs tree (run under
  umockdev-wrapper). The vendor driver is fusevendor.py, a FUSE file
  system mounted outside the tree: the devices' and types'
  migration_version/migration_type sysfs entries are symlinks into it,
  so the daemon's writes really fail (EPROTO) or succeed at the file
  system level, and are counted. The VFIO device nodes under /dev are
  symlinks into it too, so any attempt to open a device is counted.
- Testbed*: the testbed backend (simulated vendor attributes with
  MigrationVersion=/AcceptVersions=), where migrations and probes run and
  Testbed.GetMapStats shows the map's counters.
"""

import configparser
import errno
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import dbus
from gi.repository import Gio, GLib

from vfiomigtest import (DEVICE, MANAGER, MDEV_TYPE, MIGRATION, VFIOMIGCTL, DaemonTestCase, SignalRecorder,
                         busctl, ctl, device_path, main, object_path, wait_until)

ERR = 'org.vfiomig1.Error.'
FUSEVENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fusevendor.py')
PROTO = os.strerror(errno.EPROTO)         # "Protocol error": fusevendor's refusal
INVAL = os.strerror(errno.EINVAL)         # the testbed driver's refusal


def type_path(key):
    return object_path('/org/vfiomig1/type', key)


class CompatCase(DaemonTestCase):
    """Helpers shared by both backends."""

    def check(self, source, target):
        return self.call('CheckCompatibility', '(ss)', (source, target))

    def check_identity(self, type_, version, target):
        return self.call('CheckIdentity', '(sss)', (type_, version, target))

    def targets(self, type_, version, **options):
        opts = {k.replace('_', '-'): GLib.Variant('b', v) for k, v in options.items()}
        return self.call('FindTargets', '(ssa{sv})', (type_, version, opts))[0]

    def identity(self, device):
        return self.call('GetIdentity', '(s)', (device,))

    def basis(self, device):
        return self.get_property(device_path(device), DEVICE, 'MigrationBasis')

    def type_props(self, key):
        return self.call('GetAll', '(s)', (MDEV_TYPE,), path=type_path(key),
                         interface='org.freedesktop.DBus.Properties')[0]

    def assert_verdict(self, judgement, verdict, basis, *texts):
        self.assertEqual(judgement[:2], (verdict, basis), judgement)
        for t in texts:
            self.assertIn(t, judgement[2])

    def ctl_json(self, *args, code=0, **kw):
        p = ctl('--json', *args, **kw)
        self.assertEqual(p.returncode, code, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else None


# ---------------------------------------------------------------------------
# The kernel backend under umockdev, with a FUSE vendor driver

class FuseVendor:
    """fusevendor.py in its own process, mounted at a real directory
    outside the umockdev tree."""

    def __init__(self, table):
        self.dir = tempfile.mkdtemp(prefix='vfiomig-fuse-')
        self.mnt = os.path.join(self.dir, 'mnt')
        os.mkdir(self.mnt)
        self.table = table
        path = os.path.join(self.dir, 'table.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(table, f)
        self.logpath = os.path.join(self.dir, 'fusevendor.log')
        self.log = open(self.logpath, 'w', encoding='utf-8')
        # not under umockdev: the driver serves real files
        env = {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', 'UMOCKDEV_DIR')}
        self.proc = subprocess.Popen(['/usr/bin/python3', FUSEVENDOR, self.mnt, '-f', '-s', '-o', f'table={path}'],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(lambda: os.path.ismount(self.mnt) or self.proc.poll() is not None, 10, 'the FUSE mount')
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            self.stop()
            raise RuntimeError('fusevendor.py did not mount:\n' + self.output())

    def output(self):
        with open(self.logpath, encoding='utf-8', errors='replace') as f:
            return f.read()

    def attr(self, node, name='migration_version'):
        return os.path.join(self.mnt, node, name)

    def dev(self, name):
        return os.path.join(self.mnt, 'dev', name)

    def stats(self):
        with open(os.path.join(self.mnt, 'stats'), encoding='utf-8') as f:
            return json.load(f)

    def writes(self):
        return sum(self.stats()['writes'].values())

    def opens(self):
        return sum(self.stats()['opens'].values())

    def stop(self):
        if os.path.ismount(self.mnt):
            subprocess.run(['fusermount', '-u', self.mnt], check=False)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def vendor_sysfs_tree():
    from sysfs import SysfsTree     # pylint: disable=import-outside-toplevel  (needs umockdev)

    class VendorSysfsTree(SysfsTree):
        """SysfsTree plus vendor attributes served by FUSE, and device
        nodes that count opens."""

        def vendor_attrs(self, sysdir, fs, node):
            """migration_version (and migration_type) of sysdir become
            symlinks to the absolute paths of fs's files for node: umockdev
            redirects the /sys path, the kernel follows the link into FUSE."""
            names = ['migration_version'] + (['migration_type'] if 'type' in fs.table['nodes'][node] else [])
            for n in names:
                self.unlink(f'{sysdir}/{n}')
                os.symlink(fs.attr(node, n), self.path(f'{sysdir}/{n}'))

        def fuse_dev(self, path, fs, name):
            os.makedirs(os.path.dirname(self.path(path)), exist_ok=True)
            os.symlink(fs.dev(name), self.path(path))

    return VendorSysfsTree()


MTTY = 'mtty'
UUID_A = '83b8f4f2-509f-382f-3c1e-e6bfe0fa2001'       # mtty-2 (vendor, from its type)
UUID_B = '83b8f4f2-509f-382f-3c1e-e6bfe0fa2002'       # mtty-1 (rule on the type)
UUID_B2 = '83b8f4f2-509f-382f-3c1e-e6bfe0fa2003'
UUID_C = '83b8f4f2-509f-382f-3c1e-e6bfe0fa2004'       # hotplugged mtty-2
VF1, VF2, VF3, VF4, VFB = '0000:3b:00.1', '0000:3b:00.2', '0000:3b:00.3', '0000:3b:00.4', '0000:3b:00.5'
R1, R2, R3, R4 = '0000:5e:00.1', '0000:5e:00.2', '0000:5e:00.3', '0000:5e:00.4'
T1, T2, T3, V4, T5 = '0000:6f:00.1', '0000:6f:00.2', '0000:6f:00.3', '0000:6f:00.4', '0000:6f:00.5'
ICE_TYPE = 'vfio-pci:vfio-pci:0x8086:0x1889:0x8086:0x0000'

FUSE_TABLE = {
    'nodes': {
        # the newer type takes state of the older one, not the other way round
        'mtty-2': {'version': 'MTTY-2.1', 'type': 'mtty-dual', 'accept': ['MTTY-2.0', 'MTTY-2.1']},
        'mtty-3': {'version': 'MTTY-2.1', 'type': 'mtty-dual', 'accept': ['MTTY-2.1']},
        'vf1': {'version': 'CX7-28.39', 'type': 'cx7-vf', 'accept': ['CX7-28.37', 'CX7-28.39']},
        'vf2': {'version': 'CX7-28.37', 'type': 'cx7-vf', 'accept': ['CX7-28.37']},
        'vf3': {'version': 'CX7-28.39', 'type': 'cx7-vf', 'accept': ['CX7-28.37', 'CX7-28.39']},
        'vf4': {'version': 'CX7-29.1', 'type': 'cx7-vf', 'accept': ['CX7-29.1']},
        # a driver that cannot answer now
        'vfbusy': {'version': 'CX7-28.36', 'type': 'cx7-vf', 'accept': [], 'errno': 'EBUSY'},
        # not a valid attribute: ignored
        'bad5': {'version': 'ICE\t1', 'accept': ['ICE\t1']},
        # a version without a migration_type: the type-match type applies
        'ice4': {'version': 'ICE-1', 'accept': ['ICE-1']},
    },
    'dev': ['iommu', 'vfio'] + [f'vfio{i}' for i in range(32)] + [f'group{g}' for g in range(10, 100)],
}

RULES = '''
[Rule a10-fw95-2]
Vendor=0x10de
Device=0x2236
SubsystemDevice=0x1482
Version=95.02.5
Compare=same-major
Type=nvidia-a10

[Rule a10-fw95-4]
Vendor=10DE
Device=0x2236
SubsystemDevice=0x1483
Version=95.04.1
Compare=same-major
Type=nvidia-a10

[Rule a10-fw96]
Vendor=0x10de
Device=0x2236
SubsystemDevice=0x1484
Version=96.00.0
Compare=same-major
Type=nvidia-a10

[Rule a10-fw95-2-7-exact]
Vendor=0x10de
Device=0x2236
SubsystemDevice=0x1485
Version=95.02.7
Compare=exact
Type=nvidia-a10

[Rule mtty-single]
MdevType=mtty-1
Version=1.4
Type=mtty-single
'''

# A second rules directory: a file of the same name replaces the first
# directory's (as /etc/vfiomig/rules.d overrides /usr/share), and a broken
# file is skipped without taking the others down.
OVERRIDDEN_RULES = '''
[Rule would-win]
Vendor=0x10de
Device=0x2236
Version=1.0
Type=nvidia-a10
'''
OVERRIDING_RULES = '''
# nothing: the vendor's rule file is switched off
'''
BROKEN_RULES = '''
[Rule broken]
Vendor=0x10de
Version=1.0
Compare=sometimes
'''

MAP_LINE = re.compile(r'Compatibility map: (\d+) nodes in (\d+) classes, (\d+) verdicts \((\d+) asked of drivers\)')


class KernelCase(CompatCase):
    """A kernel-backend daemon on a umockdev tree whose vendor attributes
    and VFIO device nodes are fusevendor.py's files."""

    @classmethod
    def setUpClass(cls):
        if 'umockdev' not in os.environ.get('LD_PRELOAD', ''):
            raise RuntimeError('run this test under umockdev-wrapper (see meson.build)')
        cls.fs = FuseVendor(FUSE_TABLE)
        try:
            cls.build_tree()
            cls.rules_dir = tempfile.mkdtemp(prefix='vfiomig-rules-')
            for d, name, text in [('vendor', '50-test.rules', RULES), ('vendor', '40-override.rules', OVERRIDDEN_RULES),
                                  ('vendor', '30-broken.rules', BROKEN_RULES),
                                  ('local', '40-override.rules', OVERRIDING_RULES)]:
                os.makedirs(os.path.join(cls.rules_dir, d), exist_ok=True)
                with open(os.path.join(cls.rules_dir, d, name), 'w', encoding='utf-8') as f:
                    f.write(text)
            cls.daemon_args = [f'--rules-dir={cls.rules_dir}/vendor', f'--rules-dir={cls.rules_dir}/local']
            cls.daemon_env = {'UMOCKDEV_DIR': cls.tree.root}
            super().setUpClass()
        except BaseException:
            cls.fs.stop()
            raise

    @classmethod
    def build_tree(cls):
        t = cls.tree = vendor_sysfs_tree()
        fs = cls.fs
        cls.parent = p = t.add_mtty_parent({'mtty-1': 5, 'mtty-2': 3})
        t.add_type(p, 'mtty-3', 'Quad port serial', 0)
        t.vendor_attrs(f'{p}/mdev_supported_types/mtty-2', fs, 'mtty-2')
        t.vendor_attrs(f'{p}/mdev_supported_types/mtty-3', fs, 'mtty-3')
        t.add_mdev(p, UUID_A, 'mtty-2', 12)
        t.add_mdev(p, UUID_B, 'mtty-1', 13)
        t.add_mdev(p, UUID_B2, 'mtty-1', 14)
        cls.pci = {}
        for addr, ids, node, group in [
                (VF1, ('0x15b3', '0x101e', '0x15b3', '0x0051'), 'vf1', 21),
                (VF2, ('0x15b3', '0x101e', '0x15b3', '0x0051'), 'vf2', 22),
                (VFB, ('0x15b3', '0x101e', '0x15b3', '0x0051'), 'vfbusy', 25),
                (R1, ('0x10de', '0x2236', '0x10de', '0x1482'), None, 31),
                (R2, ('0x10de', '0x2236', '0x10de', '0x1483'), None, 32),
                (R3, ('0x10de', '0x2236', '0x10de', '0x1484'), None, 33),
                (R4, ('0x10de', '0x2236', '0x10de', '0x1485'), None, 34),
                (T1, ('0x8086', '0x1889', '0x8086', '0x0000'), None, 41),
                (T2, ('0x8086', '0x1889', '0x8086', '0x0000'), None, 42),
                (T3, ('0x8086', '0x188a', '0x8086', '0x0000'), None, 43),
                (V4, ('0x8086', '0x1889', '0x8086', '0x0000'), 'ice4', 44),
                (T5, ('0x8086', '0x1889', '0x8086', '0x0000'), 'bad5', 45)]:
            cls.pci[addr] = cls.add_vendor_pci(addr, ids, node, group)
        # every VFIO node a device open could touch counts the open
        t.fuse_dev('/dev/iommu', fs, 'iommu')
        t.fuse_dev('/dev/vfio/vfio', fs, 'vfio')
        for i in range(32):
            t.fuse_dev(f'/dev/vfio/devices/vfio{i}', fs, f'vfio{i}')
        for g in range(10, 100):
            t.fuse_dev(f'/dev/vfio/{g}', fs, f'group{g}')

    @classmethod
    def add_vendor_pci(cls, addr, ids, node, group):
        driver = 'mlx5_vfio_pci' if ids[0] == '0x15b3' else 'vfio-pci'
        dev = cls.tree.add_pci(addr, driver, *ids, group, vfio=True)
        if node:
            cls.tree.vendor_attrs(dev, cls.fs, node)
        return dev

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fs.stop()
            shutil.rmtree(cls.rules_dir, ignore_errors=True)

    def hotplug_mdev(self, uuid, type_id, group):
        self.tree.add_mdev(self.parent, uuid, type_id, group)
        self.tree.uevent(f'{self.parent}/{uuid}', 'add')
        wait_until(lambda: uuid in self.devices(), 10, f'{uuid} to appear')

    def unplug_mdev(self, uuid):
        self.tree.uevent(f'{self.parent}/{uuid}', 'remove')
        self.tree.remove_mdev(self.parent, uuid)
        wait_until(lambda: uuid not in self.devices(), 10, f'{uuid} to go')

    def hotplug_pci(self, addr, node, group):
        dev = self.add_vendor_pci(addr, ('0x15b3', '0x101e', '0x15b3', '0x0051'), node, group)
        self.tree.uevent(dev, 'add')
        wait_until(lambda: addr in self.devices(), 10, f'{addr} to appear')
        return dev

    def unplug_pci(self, addr, dev):
        self.tree.uevent(dev, 'remove')
        shutil.rmtree(self.tree.path(dev))
        self.tree.unlink(f'/sys/bus/pci/devices/{addr}')
        wait_until(lambda: addr not in self.devices(), 10, f'{addr} to go')


class KernelVendorTest(KernelCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Early: the map's vendor checks at start really reached the driver
        # through the umockdev sysfs path, one FUSE write each.
        m = MAP_LINE.search(cls.daemon.output())
        stats = cls.fs.stats()
        if not m or int(m.group(4)) == 0 or int(m.group(4)) != sum(stats['writes'].values()):
            cls.tearDownClass()
            raise AssertionError(f'vendor checks at start did not reach FUSE one write each: log {m and m.group(0)}, '
                                 f'FUSE {stats}\n{cls.daemon.output()}')
        cls.start_line = m

    def test_a_write_reaches_the_driver(self):
        """A new remote version is asked of the target's driver once, by a
        write into its migration_version that FUSE sees and refuses."""
        before = self.fs.stats()
        self.assert_verdict(self.check_identity('cx7-vf', 'CX7-30.0', VF1), 'incompatible', 'vendor',
                            'CX7-30.0', PROTO)
        after = self.fs.stats()
        self.assertEqual(after['writes']['vf1'], before['writes']['vf1'] + 1)
        self.assertEqual(after['log'][-1], ['vf1', 'CX7-30.0', False])
        # cached per class: asked once
        self.check_identity('cx7-vf', 'CX7-30.0', VF1)
        self.assertEqual(self.fs.writes(), sum(after['writes'].values()))
        # and an accepted write
        self.assert_verdict(self.check_identity('cx7-vf', 'CX7-28.37', VF1), 'compatible', 'vendor', 'CX7-28.37')

    def test_vendor_identities(self):
        self.assertEqual(self.identity(VF1), ('cx7-vf', 'CX7-28.39'))
        self.assertEqual(self.identity(VF2), ('cx7-vf', 'CX7-28.37'))
        self.assertEqual((self.basis(VF1), self.basis(VF2)), ('vendor', 'vendor'))
        # an mdev without attributes of its own has its type's
        self.assertEqual(self.identity(UUID_A), ('mtty-dual', 'MTTY-2.1'))
        self.assertEqual(self.basis(UUID_A), 'vendor')
        t = self.type_props('mtty/mtty-2')
        self.assertEqual((t['MigrationType'], t['MigrationVersion'], t['MigrationBasis']),
                         ('mtty-dual', 'MTTY-2.1', 'vendor'))
        # a migration_version without a migration_type: the type-match type
        self.assertEqual(self.identity(V4), (ICE_TYPE, 'ICE-1'))
        self.assertEqual(self.basis(V4), 'vendor')
        p = self.call('GetAll', '(s)', (DEVICE,), path=device_path(VF1),
                      interface='org.freedesktop.DBus.Properties')[0]
        self.assertEqual((p['MigrationType'], p['MigrationVersion'], p['MigrationBasis']),
                         ('cx7-vf', 'CX7-28.39', 'vendor'))

    def test_vendor_verdicts(self):
        writes = self.fs.writes()
        self.assert_verdict(self.check(VF2, VF1), 'compatible', 'vendor', 'accepts version CX7-28.37')
        self.assert_verdict(self.check(VF1, VF2), 'incompatible', 'vendor', 'CX7-28.39', PROTO)
        self.assert_verdict(self.check(VF1, VF1), 'compatible', 'vendor')
        # the refusal was the driver's: FUSE saw that very write fail
        self.assertIn(['vf2', 'CX7-28.39', False], self.fs.stats()['log'])
        self.assertIn(['vf1', 'CX7-28.37', True], self.fs.stats()['log'])
        # verdicts come from the map: no device is asked again
        self.assertEqual(self.fs.writes(), writes)

        # an mdev's class is judged by its type's attribute
        self.assert_verdict(self.check_identity('mtty-dual', 'MTTY-2.0', UUID_A), 'compatible', 'vendor')
        self.assert_verdict(self.check_identity('mtty-dual', 'MTTY-1.9', UUID_A), 'incompatible', 'vendor', PROTO)
        log = self.fs.stats()['log']
        self.assertIn(['mtty-2', 'MTTY-2.0', True], log)
        self.assertIn(['mtty-2', 'MTTY-1.9', False], log)

    def test_firmware_update_moves_a_device_to_another_class(self):
        """A change uevent re-reads the attributes: the device's identity
        and verdicts follow, and go back."""
        dev = self.pci[VF2]
        self.assert_verdict(self.check(VF1, VF2), 'incompatible', 'vendor')
        self.tree.vendor_attrs(dev, self.fs, 'vf1')          # now reads CX7-28.39
        try:
            self.tree.uevent(dev, 'change')
            wait_until(lambda: self.identity(VF2) == ('cx7-vf', 'CX7-28.39'), 10, 'the new identity')
            self.assert_verdict(self.check(VF1, VF2), 'compatible', 'vendor')
            self.assertEqual(self.get_property(device_path(VF2), DEVICE, 'MigrationVersion'), 'CX7-28.39')
        finally:
            self.tree.vendor_attrs(dev, self.fs, 'vf2')
            self.tree.uevent(dev, 'change')
            wait_until(lambda: self.identity(VF2) == ('cx7-vf', 'CX7-28.37'), 10, 'the old identity')
        self.assert_verdict(self.check(VF1, VF2), 'incompatible', 'vendor', PROTO)
        self.assert_verdict(self.check(VF2, VF1), 'compatible', 'vendor')

    def test_rule_verdicts(self):
        writes = self.fs.writes()
        for dev, version in [(R1, '95.02.5'), (R2, '95.04.1'), (R3, '96.00.0'), (R4, '95.02.7')]:
            self.assertEqual(self.identity(dev), ('nvidia-a10', version))
            self.assertEqual(self.basis(dev), 'rule')
        self.assert_verdict(self.check(R1, R2), 'compatible', 'rule', '95.02.5', '95.04.1', 'same major')
        self.assert_verdict(self.check(R2, R1), 'compatible', 'rule')
        self.assert_verdict(self.check(R1, R3), 'incompatible', 'rule', 'does not match', '96.00.0')
        # the target's comparison decides: R4 wants its exact version
        self.assert_verdict(self.check(R1, R4), 'incompatible', 'rule', 'exact')
        self.assert_verdict(self.check(R4, R1), 'compatible', 'rule', 'same major')
        # an mdev type matched by a rule, and its instances
        t = self.type_props('mtty/mtty-1')
        self.assertEqual((t['MigrationType'], t['MigrationVersion'], t['MigrationBasis']),
                         ('mtty-single', '1.4', 'rule'))
        self.assertEqual((self.identity(UUID_B), self.basis(UUID_B)), (('mtty-single', '1.4'), 'rule'))
        self.assert_verdict(self.check(UUID_B, UUID_B2), 'compatible', 'rule', 'exact')
        # rules are not a driver's business
        self.assertEqual(self.fs.writes(), writes)

    def test_rules_files(self):
        """The local directory's 40-override.rules replaced the vendor's
        (whose rule would have matched first), and the broken file was
        skipped with its line named."""
        log = self.daemon.output()
        self.assertIn('5 rules from 2 files', log)
        self.assertRegex(log, r'Ignoring rules file \S*/vendor/30-broken.rules: \S*/30-broken.rules:5: '
                              r"\[Rule broken\] Compare: 'sometimes'")
        self.assertEqual(self.identity(R3), ('nvidia-a10', '96.00.0'))

    def test_type_match_verdicts(self):
        self.assertEqual((self.identity(T1), self.basis(T1)), ((ICE_TYPE, ''), 'type-match'))
        self.assertEqual(self.identity(T3), ('vfio-pci:vfio-pci:0x8086:0x188a:0x8086:0x0000', ''))
        self.assert_verdict(self.check(T1, T2), 'compatible', 'type-match', 'presumed', ICE_TYPE)
        self.assert_verdict(self.check(T1, T3), 'incompatible', 'type-match', 'different migration types')
        self.assert_verdict(self.check(T3, T1), 'incompatible', 'type-match')
        # a type without attributes or rule is type-matched by its id
        self.assertEqual(self.basis(UUID_A), 'vendor')
        self.assertEqual((self.identity(UUID_B)[0], self.basis(UUID_B)), ('mtty-single', 'rule'))

    def test_bases_that_cannot_be_compared_are_unknown(self):
        # same migration type, one side has a driver's version, the other none
        self.assert_verdict(self.check(T1, V4), 'unknown', 'vendor', 'the source has none')
        self.assert_verdict(self.check(V4, T1), 'unknown', 'type-match', 'nothing compares them')
        self.assert_verdict(self.check_identity(ICE_TYPE, '', V4), 'unknown', 'vendor')
        # different types stay incompatible whatever the bases
        self.assert_verdict(self.check(R1, VF1), 'incompatible', 'rule', 'different migration types')

    def test_find_targets(self):
        got = self.targets('mtty-dual', 'MTTY-2.1')
        self.assertIn(('mdev-type', 'mtty/mtty-2', 'compatible', 'vendor'), got)
        self.assertIn(('device', UUID_A, 'compatible', 'vendor'), got)
        # same class, but no instance left
        self.assertEqual(self.types()[(MTTY, 'mtty-3')][3], 0)
        self.assertNotIn('mtty/mtty-3', [g[1] for g in got])
        # nothing of another type or a refused version
        self.assertFalse({g[1] for g in got} & {VF1, UUID_B, 'mtty/mtty-1', T1})
        got = self.targets('mtty-dual', 'MTTY-2.1', existing_only=True)
        self.assertIn(('device', UUID_A, 'compatible', 'vendor'), got)
        self.assertEqual([g for g in got if g[0] == 'mdev-type'], [])

        # a version only the newer firmware takes; the older, both
        names = {g[1] for g in self.targets('cx7-vf', 'CX7-28.39')}
        self.assertIn(VF1, names)
        self.assertNotIn(VF2, names)
        got = self.targets('cx7-vf', 'CX7-28.37')
        self.assertIn(('device', VF1, 'compatible', 'vendor'), got)
        self.assertIn(('device', VF2, 'compatible', 'vendor'), got)

        # the source's own class members appear as devices
        got = self.targets(*self.identity(T1))
        self.assertIn(('device', T1, 'compatible', 'type-match'), got)
        self.assertIn(('device', T2, 'compatible', 'type-match'), got)
        self.assertNotIn(V4, [g[1] for g in got])          # unknown ...
        got = self.targets(*self.identity(T1), include_unknown=True)
        self.assertIn(('device', V4, 'unknown', 'vendor'), got)      # ... unless asked for
        # best basis first
        self.assertLess(got.index(('device', T1, 'compatible', 'type-match')),
                        got.index(('device', V4, 'unknown', 'vendor')))

    def test_find_targets_reads_available_instances_live(self):
        """BUG: FindTargets answers from the registry's cached
        available_instances. The kernel frees an instance without a
        uevent (test_udev's test_list_types_reads_available_instances_live),
        so a type that has room again is never offered until something
        else refreshes the cache (ListTypes does)."""
        try:
            self.tree.set_available(self.parent, 'mtty-3', 2)
            names = [g[1] for g in self.targets('mtty-dual', 'MTTY-2.1')]
            self.assertIn('mtty/mtty-3', names, 'FindTargets ignored instances the kernel freed')
            # after ListTypes (which refreshes) it is offered: only the cache was stale
            self.types()
            self.assertIn('mtty/mtty-3', [g[1] for g in self.targets('mtty-dual', 'MTTY-2.1')])
        finally:
            self.tree.set_available(self.parent, 'mtty-3', 0)
            self.types()        # refreshes the cache for the other tests

    def test_hotplugged_device_of_a_known_class_needs_no_judging(self):
        self.targets('mtty-dual', 'MTTY-2.1')          # remote class judged before we count
        self.targets('cx7-vf', 'CX7-28.39')
        before = self.fs.stats()
        self.hotplug_mdev(UUID_C, 'mtty-2', 15)
        vf3 = self.hotplug_pci(VF3, 'vf3', 23)
        try:
            self.assertIn(('device', UUID_C, 'compatible', 'vendor'), self.targets('mtty-dual', 'MTTY-2.1'))
            self.assertIn(('device', VF3, 'compatible', 'vendor'), self.targets('cx7-vf', 'CX7-28.39'))
            self.assertEqual((self.identity(VF3), self.basis(VF3)), (('cx7-vf', 'CX7-28.39'), 'vendor'))
            self.assert_verdict(self.check(VF2, VF3), 'compatible', 'vendor')
            self.assert_verdict(self.check(VF3, VF2), 'incompatible', 'vendor', PROTO)
            after = self.fs.stats()
            # its attributes were read, no driver was asked anything (but
            # the busy one, which is asked whenever its verdict is needed)
            self.assertGreater(after['reads']['vf3'], 0)
            del after['writes']['vfbusy'], before['writes']['vfbusy']
            self.assertEqual(after['writes'], before['writes'])
            self.assertEqual(len(MAP_LINE.findall(self.daemon.output())), 1)
        finally:
            self.unplug_mdev(UUID_C)
            self.unplug_pci(VF3, vf3)

        # the control: a device of a new class is judged, by writes
        vf4 = self.hotplug_pci(VF4, 'vf4', 24)
        try:
            after = self.fs.stats()
            self.assertGreater(after['writes']['vf4'], 0)
            self.assertIn(['vf4', 'CX7-28.39', False], after['log'])
            self.assert_verdict(self.check(VF1, VF4), 'incompatible', 'vendor', PROTO)
        finally:
            self.unplug_pci(VF4, vf4)

    def test_migrate_to_an_incompatible_target_is_refused_unopened(self):
        opens, writes = self.fs.opens(), self.fs.writes()
        msg = self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})', (VF1, VF2, {}))
        for text in (VF1, VF2, 'CX7-28.39', PROTO):
            self.assertIn(text, msg)
        msg = self.assert_dbus_error(ERR + 'CompatibilityUnknown', self.call, 'Migrate', '(ssa{sv})',
                                     (T1, V4, {'allow-unknown': GLib.Variant('b', False)}))
        self.assertIn('allow-unknown', msg)
        msg = self.assert_dbus_error(ERR + 'CompatibilityUnknown', self.call, 'Migrate', '(ssa{sv})',
                                     (T1, V4, {}))
        # neither device was opened, nor asked again, nor left busy
        self.assertEqual((self.fs.opens(), self.fs.writes()), (opens, writes))
        for d in (VF1, VF2, T1, V4):
            self.assertFalse(self.get_property(device_path(d), DEVICE, 'Busy'))
            self.assertEqual(self.devices()[d][4:], ('', '', '', 'unknown'))
        self.assertEqual(self.call('ListMigrations')[0], [])

        # the control: a compatible pair (or "unknown" with consent) gets as
        # far as opening, which the same counter sees
        for args in [(VF2, VF1, {}), (T1, V4, {'allow-unknown': GLib.Variant('b', True)})]:
            with self.subTest(args=args):
                before = self.fs.opens()
                with self.assertRaises(GLib.Error) as cm:
                    self.call('Migrate', '(ssa{sv})', args)
                self.assertNotIn('Incompatible', cm.exception.message)
                self.assertGreater(self.fs.opens(), before)

    def test_busy_driver_is_asked_again(self):
        """EBUSY from the driver's store() is no answer: unknown, and
        asked again next time rather than remembered."""
        busy = os.strerror(errno.EBUSY)
        writes = self.fs.stats()['writes']['vfbusy']
        self.assert_verdict(self.check(VF1, VFB), 'unknown', 'vendor', busy)
        self.assert_verdict(self.check(VF1, VFB), 'unknown', 'vendor', busy)
        self.assertEqual(self.fs.stats()['writes']['vfbusy'], writes + 2)
        self.assertIn(['vfbusy', 'CX7-28.39', False], self.fs.stats()['log'])
        self.assertNotIn(VFB, [g[1] for g in self.targets('cx7-vf', 'CX7-28.39')])
        self.assertIn(('device', VFB, 'unknown', 'vendor'), self.targets('cx7-vf', 'CX7-28.39', include_unknown=True))
        msg = self.assert_dbus_error(ERR + 'CompatibilityUnknown', self.call, 'Migrate', '(ssa{sv})', (VF1, VFB, {}))
        self.assertIn('allow-unknown', msg)
        # its own version goes elsewhere as usual
        self.assert_verdict(self.check(VFB, VF1), 'incompatible', 'vendor', 'CX7-28.36', PROTO)

    def test_migrate_asks_no_driver_before_it_replies(self):
        """Migrate judges from the verdicts the map keeps: a target whose
        driver last answered busy is not asked again inside the call. Without
        allow-unknown the kept verdict (unknown) refuses it; with it, the job
        would have its worker ask after the reply (test-migration covers that
        part: umockdev has no VFIO, so here the call stops at the open)."""
        busy = os.strerror(errno.EBUSY)
        self.assert_verdict(self.check(VF1, VFB), 'unknown', 'vendor', busy)
        before = self.fs.stats()
        msg = self.assert_dbus_error(ERR + 'CompatibilityUnknown', self.call, 'Migrate', '(ssa{sv})', (VF1, VFB, {}))
        for text in (VF1, VFB, busy, 'allow-unknown'):
            self.assertIn(text, msg)
        after = self.fs.stats()
        # the reply has come: no write reached any driver before it
        self.assertEqual(after['writes'], before['writes'])
        self.assertEqual(after['log'], before['log'])
        self.assertEqual(after['opens'], before['opens'])

        # with consent: past the compatibility check without a write, as
        # far as opening the devices (which fails: no VFIO under umockdev)
        with self.assertRaises(GLib.Error) as cm:
            self.call('Migrate', '(ssa{sv})', (VF1, VFB, {'allow-unknown': GLib.Variant('b', True)}))
        remote = Gio.DBusError.get_remote_error(cm.exception)
        self.assertNotIn(remote, (ERR + 'CompatibilityUnknown', ERR + 'Incompatible'), cm.exception.message)
        later = self.fs.stats()
        self.assertEqual(later['writes'], before['writes'])
        self.assertEqual(later['log'], before['log'])
        self.assertGreater(sum(later['opens'].values()), sum(before['opens'].values()))
        self.assertEqual(self.call('ListMigrations')[0], [])
        for d in (VF1, VFB):
            self.assertFalse(self.get_property(device_path(d), DEVICE, 'Busy'))

        # the question asked as such still reaches the driver
        self.assert_verdict(self.check(VF1, VFB), 'unknown', 'vendor', busy)
        self.assertEqual(self.fs.stats()['writes']['vfbusy'], before['writes']['vfbusy'] + 1)

    def test_invalid_vendor_attribute_is_ignored(self):
        self.assertEqual((self.identity(T5), self.basis(T5)), ((ICE_TYPE, ''), 'type-match'))
        self.assertIn(f'{T5}: its migration_version is not 1 to 4096 printable ASCII characters',
                      self.daemon.output())
        self.assert_verdict(self.check(T1, T5), 'compatible', 'type-match')

    def test_ctl(self):
        self.assertEqual(self.ctl_json('identity', VF1),
                         {'name': VF1, 'type': 'cx7-vf', 'version': 'CX7-28.39', 'iommu': '', 'vdpa': '', 'basis': 'vendor'})
        self.assertEqual(self.ctl_json('identity', T1),
                         {'name': T1, 'type': ICE_TYPE, 'version': '', 'iommu': '', 'vdpa': '', 'basis': 'type-match'})
        out = ctl('identity', R1, check=True).stdout
        self.assertRegex(out, r'Type: nvidia-a10\n')
        self.assertRegex(out, r'Basis: rule\n')
        self.assertRegex(ctl('identity', T1, check=True).stdout, r'Version: -\n')
        # as vfiomigd spells the name, whatever the user typed
        self.assertEqual(self.ctl_json('identity', VF1.upper()),
                         {'name': VF1, 'type': 'cx7-vf', 'version': 'CX7-28.39', 'iommu': '', 'vdpa': '', 'basis': 'vendor'})
        self.assertNotIn(VF2, [t['name'] for t in self.ctl_json('targets', VF2.upper())])

        j = self.ctl_json('compat', VF1, VF2, code=1)
        self.assertEqual((j['verdict'], j['basis']), ('incompatible', 'vendor'))
        self.assertIn(PROTO, j['reason'])
        self.assertEqual(self.ctl_json('compat', VF2, VF1)['verdict'], 'compatible')
        self.assertEqual(self.ctl_json('compat', T1, V4, code=1)['verdict'], 'unknown')
        p = ctl('compat', R1, R2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rf'{R1} -> {R2}: compatible \(basis: rule\): ')
        self.assertEqual(ctl('compat', VF1, '0000:99:00.0').returncode, 3)
        self.assertEqual(ctl('compat', VF1).returncode, 2)

        got = self.ctl_json('targets', VF2)
        self.assertIn({'kind': 'device', 'name': VF1, 'verdict': 'compatible', 'basis': 'vendor'}, got)
        self.assertNotIn(VF2, [t['name'] for t in got])          # not a target of itself
        got = self.ctl_json('targets', '--type=mtty-dual', '--version=MTTY-2.1')
        self.assertIn({'kind': 'mdev-type', 'name': 'mtty/mtty-2', 'verdict': 'compatible', 'basis': 'vendor'},
                      got)
        got = self.ctl_json('targets', '--type=mtty-dual', '--version=MTTY-2.1', '--existing-only')
        self.assertEqual({t['kind'] for t in got}, {'device'})
        got = self.ctl_json('targets', T1, '--include-unknown')
        self.assertIn({'kind': 'device', 'name': V4, 'verdict': 'unknown', 'basis': 'vendor'}, got)
        self.assertIn('mtty/mtty-2', ctl('targets', '--type=mtty-dual', '--version=MTTY-2.1', check=True).stdout)
        self.assertEqual(ctl('targets', '0000:99:00.0').returncode, 3)
        self.assertEqual(ctl('targets').returncode, 2)

    def test_remote_identity_of_a_rule_device(self):
        """What GetIdentity reports of a rule device, given as a remote
        identity (CheckIdentity, FindTargets, vfiomigctl targets DEVICE),
        is judged by the target's rule, not left unknown."""
        self.assert_verdict(self.check(R1, R2), 'compatible', 'rule')
        self.assert_verdict(self.check_identity(*self.identity(R1), R2), 'compatible', 'rule')
        self.assert_verdict(self.check_identity(*self.identity(R1), R3), 'incompatible', 'rule')
        self.assert_verdict(self.check_identity(*self.identity(R1), R4), 'incompatible', 'rule', 'exact')
        got = self.ctl_json('targets', R1)
        self.assertIn({'kind': 'device', 'name': R2, 'verdict': 'compatible', 'basis': 'rule'}, got)
        self.assertNotIn(R3, [t['name'] for t in got])


# ---------------------------------------------------------------------------
# The testbed backend

def uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


class TestbedCase(CompatCase):
    """A daemon on a testbed file of the class's, runtime and state
    directories in a temporary directory."""

    testbed = ''
    rules = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='vfiomig-compat-')
        conf = os.path.join(cls.tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(cls.testbed)
        cls.daemon_args = [f'--testbed={conf}']
        if cls.rules:
            os.mkdir(os.path.join(cls.tmp, 'rules'))
            with open(os.path.join(cls.tmp, 'rules', '50-test.rules'), 'w', encoding='utf-8') as f:
                f.write(cls.rules)
            cls.daemon_args.append(f'--rules-dir={os.path.join(cls.tmp, "rules")}')
        cls.daemon_env = {'RUNTIME_DIRECTORY': os.path.join(cls.tmp, 'run'),
                          'STATE_DIRECTORY': os.path.join(cls.tmp, 'state')}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def arcs(self, name):
        return self.tb('GetTransitions', '(s)', name)[0]

    def map_stats(self):
        return dict(self.tb('GetMapStats')[0])

    def run_job(self, method, signature, args):
        return self.wait_job(self.start(method, signature, args))


# Every device carries the same simulated vendor tag, so any state would
# load anywhere: only the compatibility map stands between incompatible
# devices. All types share the migration type simgpu-plain.
V1A, V1B, V2A, V2B = uuid(11), uuid(12), uuid(21), uuid(22)
P1, P2 = uuid(31), uuid(32)
RA1, RA2 = uuid(41), uuid(42)

MIGRATION_TESTBED = '''
[Parent simgpu]
Driver=simgpu

[Type simgpu/simgpu-plain]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy

[Type simgpu/gpu-v1]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
MigrationType=simgpu-plain
MigrationVersion=1.0

[Type simgpu/gpu-v2]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
MigrationType=simgpu-plain
MigrationVersion=2.0
AcceptVersions=1.0;2.0

[Type simgpu/gpu-r]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy
''' + ''.join(f'''
[Device {name}]
Kind=mdev
Parent=simgpu
Type={type_id}
VendorTag=simgpu
''' for name, type_id in [(V1A, 'gpu-v1'), (V1B, 'gpu-v1'), (V2A, 'gpu-v2'), (V2B, 'gpu-v2'),
                          (P1, 'simgpu-plain'), (P2, 'simgpu-plain'), (RA1, 'gpu-r'), (RA2, 'gpu-r')])

MIGRATION_RULES = '''
[Rule gpu-r]
MdevType=gpu-r
Version=3.1
Compare=same-major
Type=simgpu-plain
'''

ALL = [V1A, V1B, V2A, V2B, P1, P2, RA1, RA2]


class TestbedMigrationTest(TestbedCase):
    testbed = MIGRATION_TESTBED
    rules = MIGRATION_RULES

    def setUp(self):
        for name in ALL:
            if self.state(name) != 'running':
                self.tb('Reset', '(s)', name)
        # distinct states, so that a load shows
        for name in ALL:
            self.tb('SetDirtyRate', '(st)', name, 1 << 30)
        time.sleep(0.05)
        for name in ALL:
            self.tb('SetDirtyRate', '(st)', name, 0)

    def snapshot(self, *names):
        return {n: (self.digest(n), self.state(n), len(self.arcs(n))) for n in names}

    def test_identities_and_verdicts(self):
        self.assertEqual(self.get_property('/org/vfiomig1', MANAGER, 'Backend'), 'testbed')
        self.assertEqual((self.identity(V2A), self.basis(V2A)), (('simgpu-plain', '2.0'), 'vendor'))
        self.assertEqual((self.identity(P1), self.basis(P1)), (('simgpu-plain', ''), 'type-match'))
        self.assertEqual((self.identity(RA1), self.basis(RA1)), (('simgpu-plain', '3.1'), 'rule'))
        t = self.type_props('simgpu/gpu-v2')
        self.assertEqual((t['MigrationType'], t['MigrationVersion'], t['MigrationBasis']),
                         ('simgpu-plain', '2.0', 'vendor'))
        self.assert_verdict(self.check(V1A, V2A), 'compatible', 'vendor', 'accepts version 1.0')
        self.assert_verdict(self.check(V2A, V1A), 'incompatible', 'vendor', 'refuses version 2.0', INVAL)
        self.assert_verdict(self.check(P1, P2), 'compatible', 'type-match', 'presumed')
        self.assert_verdict(self.check(RA1, RA2), 'compatible', 'rule')
        self.assert_verdict(self.check(P1, V2A), 'unknown', 'vendor')
        self.assert_verdict(self.check(P1, RA1), 'unknown', 'type-match')
        self.assert_verdict(self.check(V1A, P1), 'unknown', 'type-match')

    def test_log_line_at_start(self):
        m = MAP_LINE.search(self.daemon.output())
        self.assertIsNotNone(m, self.daemon.output())
        # 8 devices and 4 types; the vendor classes were asked
        self.assertEqual(int(m.group(1)), 12)
        self.assertGreater(int(m.group(4)), 0)

    def test_check_identity_of_a_remote_source(self):
        self.assert_verdict(self.check_identity('simgpu-plain', '1.0', V2A), 'compatible', 'vendor')
        self.assert_verdict(self.check_identity('simgpu-plain', '3.0', V2A), 'incompatible', 'vendor', '3.0', INVAL)
        self.assert_verdict(self.check_identity('simgpu-plain', '2.0', V1A), 'incompatible', 'vendor')
        self.assert_verdict(self.check_identity('simgpu-plain', '', V2A), 'unknown', 'vendor')
        self.assert_verdict(self.check_identity('other', '1.0', V2A), 'incompatible', 'vendor',
                            'different migration types')
        self.assert_verdict(self.check_identity('simgpu-plain', '', P1), 'compatible', 'type-match')
        self.assert_dbus_error(ERR + 'InvalidArgument', self.check_identity, '', '1.0', V2A)
        self.assert_dbus_error(ERR + 'InvalidArgument', self.check_identity, 'x', 'a\nb', V2A)
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.check_identity, 'x', '1.0', uuid(99))

    def test_migrate_to_a_refusing_target_changes_nothing(self):
        before = self.snapshot(V2A, V1A, V1B, V2B)
        msg = self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})', (V2A, V1A, {}))
        for text in (V2A, V1A, 'refuses version 2.0', INVAL):
            self.assertIn(text, msg)
        # allow-unknown does not override "incompatible"
        self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})',
                               (V2A, V1A, {'allow-unknown': GLib.Variant('b', True)}))
        # one refusing pair in a group stops the whole group
        msg = self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})',
                                     (V1B, V2B, {'devices': GLib.Variant('as', [f'{V2A}={V1A}'])}))
        self.assertIn(f'{V2A} cannot go into {V1A}', msg)
        # digests, states, not one transition
        self.assertEqual(self.snapshot(V2A, V1A, V1B, V2B), before)
        self.assertEqual(self.call('ListMigrations')[0], [])
        # the other way round the driver takes it
        source = self.digest(V1A)
        self.assertEqual(self.run_job('Migrate', '(ssa{sv})', (V1A, V2B, {}))['result'], 'done')
        self.assertEqual(self.digest(V2B), source)

    def test_unknown_needs_allow_unknown(self):
        before = self.snapshot(P1, V2A)
        msg = self.assert_dbus_error(ERR + 'CompatibilityUnknown', self.call, 'Migrate', '(ssa{sv})', (P1, V2A, {}))
        self.assertIn('allow-unknown', msg)
        self.assertEqual(self.snapshot(P1, V2A), before)
        source = self.digest(P1)
        final = self.run_job('Migrate', '(ssa{sv})', (P1, V2A, {'allow-unknown': GLib.Variant('b', True)}))
        self.assertEqual(final['result'], 'done', final)
        self.assertEqual(self.digest(V2A), source)

    def test_ctl_allow_unknown(self):
        """vfiomigctl migrate and load pass --allow-unknown on; it never
        overrides an "incompatible" verdict."""
        before = self.snapshot(P1, V2A)
        p = ctl('migrate', P1, V2A)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('--allow-unknown', p.stderr)
        self.assertEqual(self.snapshot(P1, V2A), before)
        source = self.digest(P1)
        p = ctl('--allow-unknown', 'migrate', P1, V2A)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.digest(V2A), source)
        before = self.snapshot(V2A, V1A)
        self.assertEqual(ctl('migrate', '--allow-unknown', V2A, V1A).returncode, 1)    # incompatible
        self.assertEqual(self.snapshot(V2A, V1A), before)

        self.save(P2, 'plain-ctl')
        before = self.snapshot(V2B)
        p = ctl('load', V2B, 'plain-ctl')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('--allow-unknown', p.stderr)
        self.assertEqual(self.snapshot(V2B), before)
        saved = self.digest(P2)
        p = ctl('load', '--allow-unknown', V2B, 'plain-ctl')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.digest(V2B), saved)

    def save(self, source, name):
        final = self.run_job('Save', '(ssa{sv})', (source, name, {'source-state': GLib.Variant('s', 'running')}))
        self.assertEqual(final['result'], 'done', final)

    def test_load_of_a_refused_version(self):
        self.save(V2A, 'v2-state')
        before = self.snapshot(V1B)
        final = self.run_job('Load', '(ssa{sv})', (V1B, 'v2-state', {}))
        self.assertEqual((final['result'], final['ErrorName']), ('failed', ERR + 'Incompatible'), final)
        self.assertIn('refuses version 2.0', final['Error'])
        self.assertIn(V1B, final['Error'])
        self.assertEqual(self.outcomes(final)[V1B], 'untouched')
        self.assertEqual(self.snapshot(V1B), before)
        # allow-unknown does not override "incompatible" either
        final = self.run_job('Load', '(ssa{sv})', (V1B, 'v2-state', {'allow-unknown': GLib.Variant('b', True)}))
        self.assertEqual(final['ErrorName'], ERR + 'Incompatible')
        self.assertEqual(self.snapshot(V1B), before)
        # a target that takes 2.0 loads it
        saved = self.digest(V2A)
        self.assertEqual(self.run_job('Load', '(ssa{sv})', (V2B, 'v2-state', {}))['result'], 'done')
        self.assertEqual(self.digest(V2B), saved)

    def test_load_of_an_unknown_pair(self):
        self.save(P1, 'plain-state')
        before = self.snapshot(V2B)
        final = self.run_job('Load', '(ssa{sv})', (V2B, 'plain-state', {}))
        self.assertEqual(final['ErrorName'], ERR + 'CompatibilityUnknown', final)
        self.assertIn('allow-unknown', final['Error'])
        self.assertEqual(self.snapshot(V2B), before)
        final = self.run_job('Load', '(ssa{sv})', (V2B, 'plain-state', {'allow-unknown': GLib.Variant('b', True)}))
        self.assertEqual(final['result'], 'done', final)

    def test_load_between_rule_compatible_devices(self):
        """The stream carries the rule's version; the target's rule judges
        it, as CheckCompatibility does for the devices."""
        self.assert_verdict(self.check(RA1, RA2), 'compatible', 'rule')
        self.save(RA1, 'rule-state')
        final = self.run_job('Load', '(ssa{sv})', (RA2, 'rule-state', {}))
        self.assertEqual(final['result'], 'done', final)

    def test_hotplugged_device_of_a_known_class_needs_no_rebuild(self):
        self.targets('simgpu-plain', '1.0')          # the remote class is judged first
        before = self.map_stats()
        new = uuid(23)
        self.assertEqual(self.call('CreateMdev', '(sssa{sv})', ('simgpu', 'gpu-v2', new, {}))[0], new)
        try:
            self.assertEqual((self.identity(new), self.basis(new)), (('simgpu-plain', '2.0'), 'vendor'))
            got = self.targets('simgpu-plain', '1.0')
            self.assertIn(('device', new, 'compatible', 'vendor'), got)
            self.assert_verdict(self.check(V1A, new), 'compatible', 'vendor')
            after = self.map_stats()
            self.assertEqual(after['nodes'], before['nodes'] + 1)
            for k in ('classes', 'verdicts', 'vendor-checks', 'build-usec'):
                self.assertEqual(after[k], before[k], k)
        finally:
            self.call('RemoveMdev', '(sa{sv})', (new, {}))
        self.assertEqual(self.map_stats()['verdicts'], before['verdicts'])
        self.assertNotIn(new, [g[1] for g in self.targets('simgpu-plain', '1.0')])

    def test_hotplug_cost_is_reported(self):
        """What the last CreateMdev and RemoveMdev cost, and the identities
        derived after them (which the next call waits for)."""
        new = uuid(24)
        for method, signature, args in (('CreateMdev', '(sssa{sv})', ('simgpu', 'gpu-v2', new, {})),
                                        ('RemoveMdev', '(sa{sv})', (new, {}))):
            self.call(method, signature, args)
            stats = self.map_stats()
            self.assertGreater(stats['last-hotplug-usec'], 0, method)
            if method == 'CreateMdev':      # a device and its type derived
                self.assertGreater(stats['last-derive-usec'], 0, method)

    def test_find_targets(self):
        got = self.targets('simgpu-plain', '1.0')
        for d in (V1A, V1B, V2A, V2B):
            self.assertIn(('device', d, 'compatible', 'vendor'), got)
        self.assertIn(('mdev-type', 'simgpu/gpu-v1', 'compatible', 'vendor'), got)
        self.assertIn(('mdev-type', 'simgpu/gpu-v2', 'compatible', 'vendor'), got)
        self.assertNotIn(P1, [g[1] for g in got])
        names = [g[1] for g in self.targets('simgpu-plain', '2.0')]
        self.assertIn(V2A, names)
        self.assertNotIn(V1A, names)
        self.assertNotIn('simgpu/gpu-v1', names)
        got = self.targets('simgpu-plain', '1.0', existing_only=True)
        self.assertEqual({g[0] for g in got}, {'device'})

    def test_find_targets_skips_busy_devices(self):
        self.tb('InjectFault', '(ss)', V1A, 'stall after=0')
        job = self.start('Migrate', '(ssa{sv})', (V1A, V1B, {}))
        try:
            names = [g[1] for g in self.targets('simgpu-plain', '1.0')]
            self.assertNotIn(V1A, names)
            self.assertNotIn(V1B, names)
            self.assertIn(V1B, [g[1] for g in self.targets('simgpu-plain', '1.0', include_busy=True)])
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.wait_job(job)
            self.tb('ClearFaults', '(s)', V1A)

    def test_ctl(self):
        self.assertEqual(self.ctl_json('identity', V2A),
                         {'name': V2A, 'type': 'simgpu-plain', 'version': '2.0', 'iommu': '', 'vdpa': '', 'basis': 'vendor'})
        self.assertEqual(ctl('identity', uuid(99)).returncode, 3)
        self.assertEqual(ctl('identity').returncode, 2)
        j = self.ctl_json('compat', V1A, V2A)
        self.assertEqual((j['verdict'], j['basis']), ('compatible', 'vendor'))
        j = self.ctl_json('compat', V2A, V1A, code=1)
        self.assertEqual((j['verdict'], j['basis']), ('incompatible', 'vendor'))
        self.assertIn(INVAL, j['reason'])
        self.assertEqual(self.ctl_json('compat', P1, V2A, code=1)['verdict'], 'unknown')
        self.assertEqual(ctl('compat', P1, uuid(99)).returncode, 3)
        got = self.ctl_json('targets', V1A)
        self.assertNotIn(V1A, [t['name'] for t in got])
        self.assertIn({'kind': 'device', 'name': V1B, 'verdict': 'compatible', 'basis': 'vendor'}, got)
        self.assertIn({'kind': 'mdev-type', 'name': 'simgpu/gpu-v2', 'verdict': 'compatible', 'basis': 'vendor'},
                      got)
        self.assertEqual(self.ctl_json('targets', V1A, '--existing-only'),
                         [t for t in got if t['kind'] == 'device'])
        self.assertEqual(ctl('targets', V1A, '--type=x').returncode, 2)


# Probes: type-match identities (a vendor's version would outrank a probe),
# one pair of migration types per test so that results do not mix.
A1, A2 = uuid(101), uuid(102)
B1 = uuid(111)
C1, C2 = uuid(121), uuid(122)       # C2's driver refuses foreign headers
D1, D2 = uuid(131), uuid(132)
F1, F2 = uuid(141), uuid(142)
G1, G2 = uuid(171), uuid(172)       # G2 refuses foreign headers
H1, H2 = uuid(181), uuid(182)
N1 = uuid(151)                      # no PRE_COPY
X1 = uuid(161)                      # of type tm-x, but takes tm-a's data
W1, W1B, W2 = uuid(191), uuid(192), uuid(193)   # rules: type tm-w, versions 1, 1, 2

PROBE_TESTBED = '''
[Parent simgpu]
Driver=simgpu
''' + ''.join(f'''
[Type simgpu/{t}]
MaxInstances={n}
MigrationFlags={flags}
''' for t, n, flags in [('tm-a', 4, 'stop-copy,p2p,pre-copy'), ('tm-b', 2, 'stop-copy,p2p,pre-copy'),
                        ('tm-c', 2, 'stop-copy,p2p,pre-copy'), ('tm-d', 2, 'stop-copy,p2p,pre-copy'),
                        ('tm-f', 2, 'stop-copy,p2p,pre-copy'), ('tm-n', 2, 'stop-copy,p2p'),
                        ('tm-x', 2, 'stop-copy,p2p,pre-copy'), ('tm-g', 2, 'stop-copy,p2p,pre-copy'),
                        ('tm-h', 3, 'stop-copy,p2p,pre-copy'), ('tm-w1', 3, 'stop-copy,p2p,pre-copy'),
                        ('tm-w2', 2, 'stop-copy,p2p,pre-copy')]) + ''.join(f'''
[Device {name}]
Kind=mdev
Parent=simgpu
Type={type_id}
{extra}''' for name, type_id, extra in [
    (A1, 'tm-a', ''), (A2, 'tm-a', ''), (B1, 'tm-b', ''), (C1, 'tm-c', ''), (C2, 'tm-c', 'VendorTag=picky\n'),
    (D1, 'tm-d', ''), (D2, 'tm-d', ''), (F1, 'tm-f', ''), (F2, 'tm-f', ''), (N1, 'tm-n', ''),
    (X1, 'tm-x', 'VendorTag=mdev:tm-a\n'), (G1, 'tm-g', ''), (G2, 'tm-g', 'VendorTag=picky\n'),
    (H1, 'tm-h', ''), (H2, 'tm-h', ''), (W1, 'tm-w1', 'VendorTag=w\n'), (W1B, 'tm-w1', 'VendorTag=w\n'),
    (W2, 'tm-w2', 'VendorTag=w\n')])

PROBE_RULES = '''
[Rule w1]
MdevType=tm-w1
Type=tm-w
Version=1

[Rule w2]
MdevType=tm-w2
Type=tm-w
Version=2
'''


class TestbedProbeTest(TestbedCase):
    testbed = PROBE_TESTBED
    rules = PROBE_RULES
    with_polkit = True

    def setUp(self):
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))

    def probe(self, source, target):
        return self.call('Probe', '(ssa{sv})', (source, target, {}))

    def probes_conf(self):
        c = configparser.ConfigParser(interpolation=None, strict=False)
        c.optionxform = str
        c.read(os.path.join(self.tmp, 'state', 'probes.conf'))
        return {(s['SourceType'], s['SourceVersion'], s['TargetType'], s['TargetVersion'], s['Kernel']): s['Verdict']
                for s in c.values() if 'Verdict' in s}

    def probe_types(self, source, target):
        """A probe of types: temporary instances come and go."""
        devices, types = self.devices(), self.types()
        rec = SignalRecorder(self.conn, member='DeviceRemoved')
        added = SignalRecorder(self.conn, member='DeviceAdded')
        try:
            result = self.probe(source, target)
            rec.wait_for(lambda s: len(rec.signals) >= 2)
            self.assertEqual(len(added.signals), 2, added.signals)
            temporaries = {s[3][0] for s in added.signals}
            self.assertEqual({s[3][0] for s in rec.signals}, temporaries)
        finally:
            rec.close()
            added.close()
        self.assertEqual(self.devices(), devices)
        self.assertEqual(self.types(), types)         # AvailableInstances restored
        return result

    def test_probe_types(self):
        self.assert_verdict(self.check(A1, A2), 'compatible', 'type-match')
        self.assert_verdict(self.probe_types('simgpu/tm-a', 'simgpu/tm-a'), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.check(A1, A2), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.probe_types('simgpu/tm-a', 'simgpu/tm-b'), 'incompatible', 'probe', 'refused')
        self.assertEqual(self.probes_conf()[('tm-a', '', 'tm-a', '', os.uname().release)], 'compatible')
        self.assertEqual(self.probes_conf()[('tm-a', '', 'tm-b', '', os.uname().release)], 'incompatible')
        self.assertEqual(self.get_property(type_path('simgpu/tm-b'), MDEV_TYPE, 'AvailableInstances'), 1)

    def test_probe_devices(self):
        digests = {n: self.digest(n) for n in (D1, D2, C1, C2)}
        self.assert_verdict(self.check(C1, C2), 'compatible', 'type-match')
        self.assert_verdict(self.probe(D1, D2), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.probe(C1, C2), 'incompatible', 'probe', 'refused')
        for n in (C1, C2, D1, D2):
            self.assertEqual(self.state(n), 'running', n)
            self.assertFalse(self.get_property(device_path(n), DEVICE, 'Busy'))
        # the sources gave their pre-copy data while running; the targets
        # really tried it in RESUMING, and were reset with their state kept
        self.assertEqual({n: self.digest(n) for n in (D1, D2, C1, C2)}, digests)
        for n in (D1, C1):
            self.assertIn('pre-copy', [a[2] for a in self.arcs(n)], n)
        for n in (D2, C2):
            self.assertIn('resuming', [a[2] for a in self.arcs(n)], n)
        self.assert_verdict(self.check(D1, D2), 'compatible', 'probe')
        self.assert_verdict(self.check(C1, C2), 'incompatible', 'probe', 'refused')
        # the map's verdict now keeps a migration out
        before = self.digest(C2)
        msg = self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})', (C1, C2, {}))
        self.assertIn('refused', msg)
        self.assertEqual(self.digest(C2), before)

    def test_probe_errors(self):
        devices = self.devices()
        msg = self.assert_dbus_error(ERR + 'NotMigratable', self.probe, N1, D1)
        self.assertIn('PRE_COPY', msg)
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.probe, uuid(999), D1)
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.probe, 'simgpu/nope', D1)
        self.assert_dbus_error(ERR + 'InvalidArgument', self.probe, 'a/b/c', D1)
        self.assertEqual(self.devices(), devices)
        self.assertEqual(self.state(D1), 'running')

    def test_probe_needs_manage(self):
        devices = self.devices()
        p = ctl('probe', 'simgpu/tm-f', 'simgpu/tm-f', user='nobody')
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn('not authorized for org.vfiomig1.manage', p.stderr)
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.assertEqual(ctl('probe', D1, D2, user='nobody').returncode, 4)
        self.assertEqual(self.devices(), devices)
        self.assertNotIn(('tm-f', '', 'tm-f', '', os.uname().release), self.probes_conf())
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        p = ctl('--json', 'probe', D1, D2, user='nobody')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)['basis'], 'probe')
        # reading needs nothing
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.assertEqual(ctl('compat', D1, D2, user='nobody').returncode, 0)

    def test_foreign_identities_need_migrate(self):
        """Judging an identity that no device or type here has may write its
        version into drivers' attributes, and is remembered for a while:
        that takes org.vfiomig1.migrate. A local node's identity does not."""
        def check_identity(type_, version, user):
            return busctl('call', 'org.vfiomig1', '/org/vfiomig1', MANAGER, 'CheckIdentity', 'sss', type_, version,
                          W2, user=user)

        p = ctl('targets', '--type=tm-zz', '--version=9', user='nobody')
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn('org.vfiomig1.migrate', p.stderr)
        p = check_identity('tm-w', '7', 'nobody')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('Access denied', p.stderr)        # busctl hides the text
        # what the nodes here have is free: W1's identity, a device's own
        self.assertEqual(ctl('targets', '--type=tm-w', '--version=1', user='nobody').returncode, 0)
        self.assertEqual(ctl('targets', W1, user='nobody').returncode, 0)
        p = check_identity('tm-w', '1', 'nobody')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('"rule"', p.stdout)
        # with the right, and as root, anything goes
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.assertEqual(ctl('targets', '--type=tm-zz', '--version=9', user='nobody').returncode, 0)
        self.assertEqual(check_identity('tm-w', '7', 'nobody').returncode, 0)
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.assertEqual(ctl('targets', '--type=tm-zz', '--version=8').returncode, 0)

    def test_stop_during_a_probe(self):
        """vfiomigd told to stop while a probe runs waits for its worker,
        leaves the source running and removes the temporary instance
        (which the kernel would keep)."""
        # a slow driver: the source takes 1.5 s to enter PRE_COPY
        self.tb('InjectFault', '(ss)', H1, 'transition from=running to=pre-copy errno=0 delay=1500')
        added = SignalRecorder(self.conn, member='DeviceAdded')
        self.addCleanup(added.close)
        client = subprocess.Popen([VFIOMIGCTL, 'probe', H1, 'simgpu/tm-h'], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        added.wait_for(lambda s: len(added.signals) >= 1)
        temporary = added.signals[0][3][0]
        self.assertEqual(self.daemon.stop(), 0, self.daemon.output())
        _, err = client.communicate(timeout=10)
        self.assertNotEqual(client.returncode, 0, err)
        log = self.daemon.output()
        self.assertIn(f'Device {temporary} removed', log)
        self.assertNotIn('Cannot remove temporary instance', log)

        # the source's state survives in the testbed's runtime directory
        self.restart_daemon()
        self.assertEqual(self.state(H1), 'running')

    def test_ctl_probe(self):
        j = self.ctl_json('probe', G1, G2, code=1)
        self.assertEqual((j['verdict'], j['basis']), ('incompatible', 'probe'))
        self.assertIn('refused', j['reason'])
        j = self.ctl_json('probe', 'simgpu/tm-h', H2)
        self.assertEqual((j['verdict'], j['basis']), ('compatible', 'probe'))
        p = ctl('probe', H1, H2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rf'{H1} -> {H2}: compatible \(basis: probe\): ')
        self.assertEqual(self.ctl_json('compat', H1, H2)['basis'], 'probe')
        self.assertEqual(ctl('probe', uuid(999), H2).returncode, 3)
        self.assertEqual(ctl('probe', H1).returncode, 2)
        self.assertEqual(ctl('probe', N1, H1).returncode, 1)      # NotMigratable

    def test_verdicts_survive_a_restart_for_this_kernel_only(self):
        self.assert_verdict(self.probe(D1, D2), 'compatible', 'probe')
        self.assert_verdict(self.probe(C1, C2), 'incompatible', 'probe')
        path = os.path.join(self.tmp, 'state', 'probes.conf')
        with open(path, 'a', encoding='utf-8') as f:
            f.write('\n[Probe 0.0.0-elsewhere tm-f -> tm-f]\nKernel=0.0.0-elsewhere\nDrivers=simgpu -> simgpu\n'
                    'SourceType=tm-f\nSourceVersion=\nTargetType=tm-f\nTargetVersion=\nVerdict=incompatible\n'
                    'Reason=another kernel\n')
        self.restart_daemon()
        self.assert_verdict(self.check(D1, D2), 'compatible', 'probe')
        self.assert_verdict(self.check(C1, C2), 'incompatible', 'probe', 'refused')
        # another kernel's drivers said nothing about these
        self.assert_verdict(self.check(F1, F2), 'compatible', 'type-match')

    def test_probe_results_are_per_version(self):
        """A driver may take one firmware's state and refuse another's: a
        probe of version 1 -> 2 says nothing of 2 -> 1, nor of 1 -> 1."""
        self.assert_verdict(self.check(W1, W2), 'incompatible', 'rule', 'does not match')
        self.assert_verdict(self.check(W2, W1), 'incompatible', 'rule')
        self.assert_verdict(self.check(W1, W1B), 'compatible', 'rule')
        self.assert_verdict(self.probe(W1, W2), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.check(W1, W2), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.check(W2, W1), 'incompatible', 'rule')
        self.assert_verdict(self.check(W1, W1B), 'compatible', 'rule')
        self.assertEqual(self.probes_conf()[('tm-w', '1', 'tm-w', '2', os.uname().release)], 'compatible')
        self.assertNotIn(('tm-w', '2', 'tm-w', '1', os.uname().release), self.probes_conf())
        # FindTargets of version 1 lists W2 by the probe
        targets = {t[1]: (t[2], t[3]) for t in self.targets('tm-w', '1')}
        self.assertEqual(targets.get(W2), ('compatible', 'probe'), targets)

    def test_probe_verdict_across_migration_types(self):
        """BUG: judge_versions() returns "incompatible: different migration
        types" before it consults the probe cache, so a probe in which the
        target's driver accepted the source's data (basis probe, stored in
        probes.conf) never shows in CheckCompatibility, and Migrate keeps
        refusing a pair the driver has taken."""
        self.assert_verdict(self.check(A1, X1), 'incompatible', 'type-match', 'different migration types')
        self.assert_verdict(self.probe(A1, X1), 'compatible', 'probe', 'accepted')
        self.assert_verdict(self.check(A1, X1), 'compatible', 'probe')


if __name__ == '__main__':
    main()
