#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomig-libvirt-hook run exactly as libvirt runs a qemu hook (env -i
with LC_ALL, PATH and HOME, cwd /, argv DOMAIN OP SUBOP -, the domain's
XML on stdin) against vfiomigd's testbed: accepting, creating an mdev
under the VM's UUID, refusing with one line and no change, rewriting a PCI
function's address, ignoring a domain without hostdevs, activating the
daemon, and removing what it made for a VM that never came."""

import os
import shutil
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from gi.repository import GLib

from vfiomigtest import (BUILDDIR, SIM_TESTBED, VFIOMIGD, DaemonTestCase, PrivateBus, TestbedTestCase, device_path,
                         hold, main, name_has_owner, sim_mdevs, sim_uuid, wait_until)

HOOK = os.path.join(BUILDDIR, 'client', 'vfiomig-libvirt-hook')
DEVICE = 'org.vfiomig1.Device'


SIM, OTHER, NEW, NEW2, GHOST, NEW3, LEFT, KEPT = (sim_uuid(n) for n in (1, 2, 9, 8, 7, 6, 5, 4))
P1, P2, P3 = '0000:3b:00.1', '0000:3b:00.2', '0000:5e:00.1'
P4 = '0000:6a:00.0'         # behind a 39-bit IOMMU
WIDE = 'width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no'
NARROW = 'width=39 ranges=0x0-0xfedfffff,0xfef00000-0x7fffffffff pgsizes=0x40201000 dirty=no'

TESTBED_CONF = SIM_TESTBED + '''
[Type simgpu/other]
MaxInstances=8
MigrationFlags=stop-copy,p2p,pre-copy
StateSize=64K
''' + sim_mdevs([SIM]) + sim_mdevs([OTHER], 'other') + ''.join(f'''
[Device {addr}]
Kind=pci
Driver=vfio-pci
Vendor=0x8086
Device={dev}
SubsystemVendor=0x8086
SubsystemDevice=0x0000
MigrationFlags=stop-copy
Iommu={iommu}
''' for addr, dev, iommu in ((P1, '0x1572', ''), (P2, '0x1572', ''), (P3, '0x10fb', ''), (P4, '0x1889', NARROW)))

def mdev(u):
    return f"<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{u}'/></source></hostdev>"


def pci(addr):
    d, b, sf = addr.split(':')
    s, f = sf.split('.')
    return (f"<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x{d}' bus='0x{b}' "
            f"slot='0x{s}' function='0x{f}'/></source><address type='pci' domain='0x0000' bus='0x06' "
            f"slot='0x00' function='0x0'/></hostdev>")


def domain_xml(name, hostdevs, metadata=()):
    meta = ''
    if metadata:
        entries = ''.join(f"<vfiomig:device key='{k}' type='{t}' version='{v}' basis='{b}' flags='1'"
                          f"{' iommu=' + repr(rest[0]) if rest else ''}/>" for k, t, v, b, *rest in metadata)
        meta = f"<metadata><vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:1'>{entries}</vfiomig:devices></metadata>"
    return (f"<domain type='kvm'><name>{name}</name><uuid>11111111-2222-3333-4444-555555555555</uuid>{meta}"
            f"<memory>65536</memory><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            f"{''.join(hostdevs)}</devices></domain>")


def hook(domain, op, subop, xml, bus_address=None):
    """As libvirt runs it (and the private bus's address, which the
    system bus's default would be)."""
    env = {'LC_ALL': 'C', 'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': '/root',
           'DBUS_SYSTEM_BUS_ADDRESS': bus_address or os.environ['DBUS_SYSTEM_BUS_ADDRESS']}
    return subprocess.run([HOOK, domain, op, subop, '-'], input=xml, capture_output=True, text=True, env=env,
                          cwd='/', timeout=60, check=False)


class HookTest(TestbedTestCase):
    TESTBED = TESTBED_CONF

    @classmethod
    def more_args(cls):
        cfg = os.path.join(cls.tmp, 'vfiomigd.conf')
        with open(cfg, 'w', encoding='utf-8') as f:
            f.write('[Libvirt]\nPreparedTimeoutSec=2\n')
        return [f'--config={cfg}']

    def identity(self, name):
        t, v = self.call('GetIdentity', '(s)', (name,))
        basis = self.get_property(device_path(name), DEVICE, 'MigrationBasis')
        return (name, t, v, basis)

    def as_meta(self, key, like):
        """key's entry, with the identity of the device like."""
        return (key,) + self.identity(like)[1:]

    def assert_refused(self, p, domain, device):
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout, '')
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith(f'vfiomig: {domain}: {device}: '), lines[0])
        return lines[0]

    def test_accept_existing_compatible(self):
        before = self.devices()
        p = hook('vm-a', 'migrate', 'begin', domain_xml('vm-a', [mdev(SIM)], [self.identity(SIM)]))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertEqual(self.devices(), before)

    def test_create_with_the_same_uuid_and_release(self):
        xml = domain_xml('vm-b', [mdev(NEW)], [self.as_meta(NEW, SIM)])
        p = hook('vm-b', 'migrate', 'begin', xml)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertEqual(self.get_property(device_path(NEW), DEVICE, 'MdevType'), 'sim')
        # prepare begin: it exists; idempotent
        p = hook('vm-b', 'prepare', 'begin', xml)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        p = hook('vm-b', 'release', 'end', xml)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertNotIn(NEW, self.devices())

    def test_refuse_incompatible_and_change_nothing(self):
        before = self.devices()
        line = self.assert_refused(
            hook('vm-c', 'migrate', 'begin', domain_xml('vm-c', [mdev(NEW2), mdev(OTHER)],
                                                         [self.as_meta(NEW2, SIM), self.as_meta(OTHER, SIM)])),
            'vm-c', OTHER)
        self.assertIn('incompatible', line)
        # the mdev made for the first hostdev went again
        self.assertEqual(self.devices(), before)

    def test_stopped_end_releases(self):
        """A VM that stops here (rather than being released) takes the
        mdev made for it along too."""
        xml = domain_xml('vm-s', [mdev(NEW3)], [self.as_meta(NEW3, SIM)])
        p = hook('vm-s', 'restore', 'begin', xml)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertIn(NEW3, self.devices())
        # another domain's end leaves it alone
        p = hook('vm-other', 'stopped', 'end', domain_xml('vm-other', [mdev(NEW3)]))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertIn(NEW3, self.devices())
        p = hook('vm-s', 'stopped', 'end', xml)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        self.assertNotIn(NEW3, self.devices())

    def test_refuse_when_no_type_can_take_it(self):
        """The VM carries an identity no mdev type here can take (that of
        a PCI function): nothing is created, and the line says so."""
        before = self.devices()
        line = self.assert_refused(
            hook('vm-t', 'migrate', 'begin', domain_xml('vm-t', [mdev(NEW2)], [self.as_meta(NEW2, P3)])),
            'vm-t', NEW2)
        self.assertIn('no mdev type here can take the state of', line)
        self.assertEqual(self.devices(), before)

    def test_refuse_missing_without_identity(self):
        line = self.assert_refused(hook('vm-d', 'restore', 'begin', domain_xml('vm-d', [mdev(NEW2)])), 'vm-d', NEW2)
        self.assertIn('no vfiomig identity', line)
        self.assertNotIn(NEW2, self.devices())

    def test_pci_rewrite(self):
        holder = hold(self, self.get_property(device_path(P1), DEVICE, 'VfioDevNode'))
        xml = domain_xml('vm-e', [pci(P1)], [self.identity(P1)])
        p = hook('vm-e', 'migrate', 'begin', xml)
        self.assertEqual((p.returncode, p.stderr), (0, ''))
        got, want = ET.fromstring(p.stdout), ET.fromstring(xml)
        addr = got.find('./devices/hostdev/source/address').attrib
        self.assertEqual((addr['bus'], addr['slot'], addr['function']), ('0x3b', '0x00', '0x2'))
        # only that changed: put the old address back and compare
        got.find('./devices/hostdev/source/address').attrib.update(
            want.find('./devices/hostdev/source/address').attrib)
        self.assertEqual(ET.tostring(got, encoding='unicode'), ET.tostring(want, encoding='unicode'))
        # without the VM's identity nothing else can be chosen
        line = self.assert_refused(hook('vm-e', 'migrate', 'begin', domain_xml('vm-e', [pci(P1)])), 'vm-e', P1)
        self.assertIn(f'held here by pid {holder.pid}', line)

    def test_iommu_of_the_vm_travels_with_it(self):
        """The VM's device was behind a 48-bit IOMMU: this host's function
        behind a 39-bit one is refused, naming both; a VM from a 39-bit
        host is taken."""
        before = self.devices()
        line = self.assert_refused(
            hook('vm-g', 'migrate', 'begin', domain_xml('vm-g', [pci(P4)], [self.identity(P4) + (WIDE,)])),
            'vm-g', P4)
        self.assertIn('target IOMMU maps 39 bits, source 48', line)
        self.assertEqual(self.devices(), before)
        p = hook('vm-g', 'migrate', 'begin', domain_xml('vm-g', [pci(P4)], [self.identity(P4) + (NARROW,)]))
        self.assertEqual((p.returncode, p.stderr), (0, ''))

    def test_no_hostdev_no_dbus(self):
        p = hook('vm-f', 'migrate', 'begin', domain_xml('vm-f', []), bus_address='unix:path=/nonexistent')
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        # an operation the hook does not handle costs nothing either
        p = hook('vm-f', 'started', 'begin', domain_xml('vm-f', [mdev(SIM)]), bus_address='unix:path=/nonexistent')
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))

    def test_cleanup_of_a_vm_that_never_came(self):
        p = hook('ghost', 'migrate', 'begin', domain_xml('ghost', [mdev(GHOST)], [self.as_meta(GHOST, SIM)]))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(GHOST, self.devices())
        # recorded in the state directory, where a restart finds it
        record = os.path.join(self.tmp, 'state', 'prepared.conf')
        with open(record, encoding='utf-8') as f:
            self.assertIn(f'[Mdev {GHOST}]\nDomain=ghost\n', f.read())
        wait_until(lambda: GHOST not in self.devices(), 20, 'the unused mdev to go')
        self.assertIn(f'Removed mdev {GHOST}, made for an incoming domain that never came', self.daemon.output())
        with open(record, encoding='utf-8') as f:
            self.assertNotIn(GHOST, f.read())

    def test_hostile_xml(self):
        """PrepareDomain refuses what is no domain's XML before anything
        else, names the fault, and changes nothing."""
        before = self.devices()
        one = domain_xml('vm-x', [mdev(NEW)], [self.as_meta(NEW, SIM)])
        for xml, fault in [
                ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                 '<domain><name>&b;</name></domain>', 'DOCTYPE'),
                ('<domain>' + 'x' * (5 << 20) + '</domain>', 'more than'),
                (one.replace(NEW, '../../../etc'), 'not a UUID'),
                (domain_xml('vm-x', [pci('0000:3b:00.1').replace("bus='0x3b'", "bus='0x1ff'")]), 'bus'),
                ('<domain><name>x</name></domain>', 'uuid'),
                ('', '')]:
            with self.subTest(fault=fault, size=len(xml)):
                msg = self.assert_dbus_error('org.vfiomig1.Error.InvalidArgument', self.call, 'PrepareDomain',
                                             '(sa{sv})', (xml, {}))
                self.assertIn(fault, msg)
        self.assert_dbus_error('org.vfiomig1.Error.InvalidArgument', self.call, 'PrepareDomain', '(sa{sv})',
                               (one, {'mdevs-only': GLib.Variant('s', 'yes')}))
        self.assert_dbus_error('org.vfiomig1.Error.InvalidArgument', self.call, 'ReleaseDomain', '(sa{sv})',
                               ('', {}))
        self.assertEqual(self.devices(), before)

    def test_bad_input(self):
        p = hook('vm-g', 'migrate', 'begin', '<domain><name>x</nam')
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.splitlines()), 1)
        self.assertTrue(p.stderr.startswith('vfiomig: vm-g: '))
        self.assertEqual(p.stdout, '')
        p = subprocess.run([HOOK], capture_output=True, text=True, check=False)
        self.assertEqual(p.returncode, 1)


class HookIdleTest(unittest.TestCase):
    """vfiomigd as the hook's call activates it, idle after a second: an
    mdev made for a VM that never came keeps it until the mdev is removed,
    then it exits."""

    def setUp(self):
        tmp = tempfile.mkdtemp(prefix='vfiomig-HookIdleTest-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        for name, text in (('testbed.conf', TESTBED_CONF), ('vfiomigd.conf', '[Libvirt]\nPreparedTimeoutSec=4\n')):
            with open(os.path.join(tmp, name), 'w', encoding='utf-8') as f:
                f.write(text)
        services = os.path.join(tmp, 'services')
        os.mkdir(services)
        with open(os.path.join(services, 'org.vfiomig1.service'), 'w', encoding='utf-8') as f:
            f.write(f'[D-BUS Service]\nName=org.vfiomig1\nExec={VFIOMIGD} --testbed={tmp}/testbed.conf '
                    f'--config={tmp}/vfiomigd.conf --idle-timeout=1 --libvirt-uri= --log-level=debug\n')
        self.bus = PrivateBus(servicedir=services)
        self.addCleanup(self.bus.stop)
        self.conn = self.bus.connect()
        self.addCleanup(self.conn.close_sync, None)

    def call(self, method, signature, args, path='/org/vfiomig1', interface='org.vfiomig1.Manager'):
        return self.conn.call_sync('org.vfiomig1', path, interface, method, GLib.Variant(signature, args), None,
                                   0, 10000, None).unpack()

    def test_stays_until_the_unused_mdev_is_gone(self):
        t, v = self.call('GetIdentity', '(s)', (SIM,))
        basis = self.call('Get', '(ss)', (DEVICE, 'MigrationBasis'), path=device_path(SIM),
                          interface='org.freedesktop.DBus.Properties')[0]
        p = hook('ghost', 'migrate', 'begin', domain_xml('ghost', [mdev(GHOST)], [(GHOST, t, v, basis)]))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        wait_until(lambda: not name_has_owner(self.conn), 60, 'vfiomigd to leave')
        with open(os.path.join(self.bus.dir, 'bus.log'), encoding='utf-8', errors='replace') as f:
            out = f.read()
        created = out.find(f'Created mdev {GHOST} ')
        self.assertGreaterEqual(created, 0, out)
        removed = out.find(f'Removed mdev {GHOST}, made for an incoming domain that never came', created)
        self.assertGreaterEqual(removed, 0, 'the daemon left before removing the mdev:\n' + out)
        # the release of the name comes before the name is gone (its
        # "Idle, exiting." may be written after this test has looked)
        self.assertGreater(out.find('releasing org.vfiomig1', created), removed, out)


class HookRecordTest(TestbedTestCase):
    """What an earlier vfiomigd made for incoming VMs, as its record in the
    state directory says: one mdev no domain ever used goes after the
    timeout, one that a domain used stays until that domain is released."""
    TESTBED = TESTBED_CONF + sim_mdevs([LEFT, KEPT])

    @classmethod
    def more_args(cls):
        cfg = os.path.join(cls.tmp, 'vfiomigd.conf')
        with open(cfg, 'w', encoding='utf-8') as f:
            f.write('[Libvirt]\nPreparedTimeoutSec=1\n')
        os.makedirs(os.path.join(cls.tmp, 'state'))
        with open(os.path.join(cls.tmp, 'state', 'prepared.conf'), 'w', encoding='utf-8') as f:
            f.write(f'[Mdev {LEFT}]\nDomain=vm-gone\nCreatedUsec=1\nUsed=false\n\n'
                    f'[Mdev {KEPT}]\nDomain=vm-kept\nCreatedUsec=1\nUsed=true\n')
        return [f'--config={cfg}']

    def test_record_read_at_start(self):
        wait_until(lambda: LEFT not in self.devices(), 30, 'the unused mdev to go')
        self.assertIn(f'Removed mdev {LEFT}, made for an incoming domain that never came', self.daemon.output())
        self.assertIn(KEPT, self.devices())
        self.assertEqual(self.call('ReleaseDomain', '(sa{sv})', ('vm-gone', {})), (0,))
        self.assertEqual(self.call('ReleaseDomain', '(sa{sv})', ('vm-kept', {})), (1,))
        self.assertNotIn(KEPT, self.devices())
        with open(os.path.join(self.tmp, 'state', 'prepared.conf'), encoding='utf-8') as f:
            record = f.read()
        self.assertNotIn(LEFT, record)
        self.assertNotIn(KEPT, record)


class HookInstallTest(unittest.TestCase):
    """meson install puts the hook where libvirt (6.5 and later) runs qemu
    hooks from, whatever the prefix."""

    def test_installed_into_qemu_d(self):
        dest = tempfile.mkdtemp(prefix='vfiomig-HookInstallTest-')
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        p = subprocess.run(['meson', 'install', '-C', BUILDDIR, '--no-rebuild', '--quiet', '--destdir', dest],
                           capture_output=True, text=True, timeout=120, check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        installed = os.path.join(dest, 'etc', 'libvirt', 'hooks', 'qemu.d', 'vfiomig-libvirt-hook')
        self.assertTrue(os.access(installed, os.X_OK), installed)
        p = subprocess.run([installed], capture_output=True, text=True, timeout=10, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("is libvirt's qemu hook", p.stderr)


class HookActivationTest(DaemonTestCase):
    """The hook starts vfiomigd when it is not running."""

    @classmethod
    def setUpClass(cls):
        from test_activation import SERVICE_FILE  # pylint: disable=import-outside-toplevel
        cls.bus = PrivateBus(servicedir=os.path.dirname(SERVICE_FILE))
        cls.addClassCleanup(cls.bus.stop)
        cls.conn = cls.bus.connect()

    @classmethod
    def tearDownClass(cls):
        cls.conn.close_sync(None)

    def tearDown(self):
        pass

    def test_activates(self):
        self.assertFalse(name_has_owner(self.conn))
        p = hook('vm-h', 'migrate', 'begin', domain_xml('vm-h', [pci(P1)]))
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        wait_until(lambda: name_has_owner(self.conn), 5, 'vfiomigd activated')


if __name__ == '__main__':
    main()
