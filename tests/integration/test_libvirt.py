#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigd and libvirt's test driver: which running domain holds which
testbed device, kept current by the domains' events, and the refusals
that follow. The test driver's domains live in vfiomigd's own connection
(test:///PATH.xml); Testbed.DriveDomain() starts and stops them there."""

import json
import os
import subprocess
import unittest

from gi.repository import GLib

from vfiomigtest import (SIM_TESTBED, VFIOMIGD, DaemonTestCase, PrivateBus, SignalRecorder, TestbedTestCase, ctl,
                         device_path, hold, main, sim_mdevs, sim_uuid, wait_until)

ERR = 'org.vfiomig1.Error.'
DEVICE = 'org.vfiomig1.Device'


U1, U2, U3, U4, U5 = (sim_uuid(n) for n in range(1, 6))
PCI = '0000:3b:00.1'

TESTBED_CONF = SIM_TESTBED + sim_mdevs((U1, U2, U3)) + f'''
[Device {PCI}]
Kind=pci
Driver=vfio-pci
Vendor=0x8086
Device=0x1572
SubsystemVendor=0x8086
SubsystemDevice=0x0000
MigrationFlags=stop-copy
'''


def hostdev_mdev(u):
    return f"<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{u.upper()}'/></source></hostdev>"


def domain(name, n, hostdevs, running=True):
    state = '' if running else "<test:runstate>5</test:runstate>"
    return f'''
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{name}</name>
    <uuid>11111111-2222-3333-4444-{n:012d}</uuid>
    <memory>65536</memory>
    <os><type>hvm</type></os>
    <devices>{''.join(hostdevs)}</devices>
    {state}
  </domain>'''


# vm1 runs with U1, the PCI function and U4 (which does not exist yet);
# vm2 is defined but off, with U2; vm3 has nothing of ours; vm4 runs with
# U5, which does not exist either.
NODE = '<node>' + domain('vm1', 1, [
    hostdev_mdev(U1), hostdev_mdev(U4),
    "<hostdev mode='subsystem' type='pci' managed='no'><source>"
    "<address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source></hostdev>"]) + \
    domain('vm2', 2, [hostdev_mdev(U2)], running=False) + domain('vm3', 3, []) + \
    domain('vm4', 4, [hostdev_mdev(U5)]) + '</node>'


class LibvirtTest(TestbedTestCase):
    TESTBED = TESTBED_CONF

    @classmethod
    def more_args(cls):
        node = os.path.join(cls.tmp, 'node.xml')
        with open(node, 'w', encoding='utf-8') as f:
            f.write(NODE)
        return [f'--libvirt-uri=test://{node}']

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the index is built from the loop after start
        wait_until(lambda: cls.prop_of(U1, 'Domain') == 'vm1', 10, 'the domain index')

    @classmethod
    def prop_of(cls, name, prop):
        return cls.conn.call_sync('org.vfiomig1', device_path(name), 'org.freedesktop.DBus.Properties', 'Get',
                                  GLib.Variant('(ss)', (DEVICE, prop)), None, 0, 5000, None).unpack()[0]

    def prop(self, name, prop):
        return self.get_property(device_path(name), DEVICE, prop)

    def drive(self, dom, action):
        self.tb('DriveDomain', '(ss)', dom, action)

    def test_running_domain_holds_its_devices(self):
        self.assertEqual(self.prop(U1, 'Domain'), 'vm1')
        self.assertEqual(self.prop(PCI, 'Domain'), 'vm1')
        self.assertEqual(self.prop(U2, 'Domain'), '', 'vm2 is not running')
        self.assertEqual(self.prop(U3, 'Domain'), '')
        self.assertTrue(self.prop(U1, 'Busy'))
        self.assertEqual(self.prop(U1, 'Holder'), 'domain vm1')
        self.assertFalse(self.prop(U3, 'Busy'))

    def test_held_device_refused_and_unchanged(self):
        # a state that could be loaded, but not into a domain's device
        self.assertEqual(self.wait_job(self.start('Save', '(ssa{sv})', (U3, 'held-state', {})))['result'], 'done')
        before = self.tb('GetDigest', '(s)', U1)
        for method, sig, args in [('Migrate', '(ssa{sv})', (U1, U3, {})),
                                  ('Migrate', '(ssa{sv})', (U3, U1, {})),
                                  ('Save', '(ssa{sv})', (U1, 'never-written', {})),
                                  ('Load', '(ssa{sv})', (U1, 'held-state', {})),
                                  ('RemoveMdev', '(sa{sv})', (U1, {})),
                                  ('Resume', '(sa{sv})', (U1, {})),
                                  ('Probe', '(ssa{sv})', (U1, U3, {})),
                                  ('RefreshDevice', '(sa{sv})', (U1, {}))]:
            with self.subTest(method=method, args=args[:2]):
                msg = self.assert_dbus_error(ERR + 'Busy', self.call, method, sig, args)
                self.assertIn(f'{U1} is held by domain vm1', msg)
        self.assertIn(U1, self.devices())
        self.assertEqual(self.tb('GetDigest', '(s)', U1), before)
        self.assertFalse(self.prop(U3, 'Busy'))

    def test_domains_process_named(self):
        """Whoever has a domain's device open is taken for its QEMU, and a
        refusal names both, RemoveMdev's as the others'."""
        p = hold(self, self.prop(U1, 'VfioDevNode'))
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'RemoveMdev', '(sa{sv})', (U1, {}))
        self.assertIn(f'{U1} is held by domain vm1 (qemu pid {p.pid})', msg)
        self.assertEqual(self.prop(U1, 'Holder'), f'domain vm1 (qemu pid {p.pid})')
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Migrate', '(ssa{sv})', (U1, U3, {}))
        self.assertIn(f'{U1} is held by domain vm1 (qemu pid {p.pid})', msg)
        p.kill()
        p.wait()
        self.call('GetDevice', '(s)', (U1,))
        self.assertEqual(self.prop(U1, 'Holder'), 'domain vm1')
        self.assertIn(U1, self.devices())

    def test_events_follow_domains(self):
        props = SignalRecorder(self.conn, member='PropertiesChanged', path=device_path(U2))
        self.addCleanup(props.close)
        self.drive('vm2', 'start')
        wait_until(lambda: self.prop(U2, 'Domain') == 'vm2', 10, 'U2 to be vm2\'s')
        props.wait_for(lambda s: 'Domain' in s[3][1] and s[3][1]['Domain'] == 'vm2')
        self.assertTrue(self.prop(U2, 'Busy'))
        self.drive('vm2', 'destroy')
        wait_until(lambda: self.prop(U2, 'Domain') == '', 10, 'U2 to be free again')
        self.assertFalse(self.prop(U2, 'Busy'))
        # free again: a migration of it is no longer refused for vm2
        job = self.start('Migrate', '(ssa{sv})', (U2, U3, {}))
        self.assertEqual(self.wait_job(job)['result'], 'done')

    def test_new_device_of_running_domain(self):
        """An mdev created after the index was built gets its domain."""
        self.call('CreateMdev', '(sssa{sv})', ('simgpu', 'sim', U4, {}))
        wait_until(lambda: self.prop(U4, 'Domain') == 'vm1', 10, 'U4 to be vm1\'s')
        self.assertTrue(self.prop(U4, 'Busy'))
        # and, once its identity is known, it travels with the domain too
        wait_until(lambda: {d[0]: d for d in self.call('GetDomain', '(s)', ('vm1',))[1]}[U4][6], 10,
                   'U4 in vm1\'s metadata')

    def test_client_shows_domains(self):
        rows = {line.split()[0]: line.split() for line in ctl('list', check=True).stdout.splitlines()[1:]
                if line.strip()}
        self.assertEqual(rows[U1][-1], 'vm1')
        self.assertEqual(rows[U3][-1], '-')
        by_name = {d['name']: d for d in json.loads(ctl('list', '--json', check=True).stdout)}
        self.assertEqual(by_name[PCI]['domain'], 'vm1')
        self.assertEqual(by_name[U3]['domain'], '')
        show = ctl('show', U1, check=True).stdout
        self.assertRegex(show, r'(?m)^\s*Domain: vm1$')
        self.assertRegex(show, r'(?m)^\s*Holder: domain vm1$')
        shown = json.loads(ctl('show', U1, '--json', check=True).stdout)
        self.assertEqual((shown['domain'], shown['holder']), ('vm1', 'domain vm1'))
        shown = json.loads(ctl('show', U3, '--json', check=True).stdout)
        self.assertEqual((shown['domain'], shown['holder']), ('', ''))

    def test_identities_recorded_with_the_domain(self):
        """Live metadata: each hostdev that is a device here, with its
        identity, written by vfiomigd when it found the running domain."""
        def hostdevs():
            running, devs = self.call('GetDomain', '(s)', ('vm1',))
            self.assertTrue(running)
            return {d[0]: d for d in devs}

        wait_until(lambda: hostdevs()[U1][6] and hostdevs()[PCI][6], 10, 'vm1\'s metadata')
        devs = hostdevs()
        for name in (U1, PCI):
            want = tuple(self.prop(name, p) for p in ('MigrationType', 'MigrationVersion', 'MigrationBasis'))
            self.assertEqual(devs[name][2:5], want)
            self.assertTrue(want[0])
        self.assertEqual(devs[U1][1], 'mdev')
        self.assertEqual(devs[PCI][1], 'pci')
        # written once: our own write comes back as a metadata event, and
        # metadata that is right is not written again
        if U4 not in self.devices():
            self.assertEqual(self.daemon.output().count('libvirt domain vm1: recorded the identities'), 1)
        running, devs = self.call('GetDomain', '(s)', ('vm2',))
        self.assertFalse(running)
        self.assertFalse(devs[0][6], 'nothing is written into a domain that does not run')

        out = json.loads(ctl('domain', 'vm1', '--json', check=True).stdout)
        self.assertTrue(out['running'])
        by_dev = {h['device']: h for h in out['hostdevs']}
        self.assertTrue(by_dev[U1]['recorded'])
        self.assertEqual(by_dev[U1]['holder'], 'domain vm1')
        self.assertIn('simgpu/sim', by_dev[U1]['targets'])
        self.assertNotIn(U1, by_dev[U1]['targets'])
        text = ctl('domain', 'vm1', check=True).stdout
        self.assertIn('Domain vm1 (running)', text)
        self.assertRegex(text, rf'(?m)^{U1}\s+mdev\s.*\sdomain\s+domain vm1\s')

    def test_release_keeps_what_another_domain_holds(self):
        """An mdev made for an incoming domain that a running domain holds
        stays when the incoming one is released, and goes once free."""
        t, v = self.call('GetIdentity', '(s)', (U1,))
        meta = (f"<metadata><vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:1'><vfiomig:device key='{U5}' "
                f"type='{t}' version='{v}' basis='{self.prop(U1, 'MigrationBasis')}'/></vfiomig:devices></metadata>")
        xml = domain('incoming', 9, [hostdev_mdev(U5)]).replace('<memory>', meta + '<memory>')
        self.assertEqual(self.call('PrepareDomain', '(sa{sv})', (xml, {})), ('',))
        wait_until(lambda: U5 in self.devices() and self.prop(U5, 'Domain') == 'vm4', 10, 'U5 to be vm4\'s')
        self.assertEqual(self.call('ReleaseDomain', '(sa{sv})', ('incoming', {})), (0,))
        self.assertIn(U5, self.devices())
        self.drive('vm4', 'destroy')
        wait_until(lambda: self.prop(U5, 'Domain') == '', 10, 'U5 to be free')
        self.assertEqual(self.call('ReleaseDomain', '(sa{sv})', ('incoming', {})), (1,))
        self.assertNotIn(U5, self.devices())

    def test_get_domain_bad_input(self):
        msg = self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'GetDomain', '(s)', ('nope',))
        self.assertIn('No domain nope', msg)
        self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'GetDomain', '(s)', ('',))
        p = ctl('domain', 'nope')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('No domain nope', p.stderr)

    def test_drive_domain_bad_input(self):
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.tb, 'DriveDomain', '(ss)', 'nope', 'start')
        self.assert_dbus_error(ERR + 'InvalidArgument', self.tb, 'DriveDomain', '(ss)', 'vm3', 'reboot')


def metadata(entries):
    """vfiomig's metadata element as libvirt keeps it in a domain."""
    def device(e):
        return '<vfiomig:device ' + ' '.join(f"{k}='{v}'" for k, v in e.items() if v != '') + '/>'
    return ("<metadata><vfiomig:devices xmlns:vfiomig='urn:vfiomig:domain:1'>" +
            ''.join(device(e) for e in entries) + '</vfiomig:devices></metadata>')


class MetadataAtStartTest(TestbedTestCase):
    """Running domains found when vfiomigd starts get their devices'
    identities, unless what they carry is right already."""
    TESTBED = TESTBED_CONF

    @classmethod
    def more_args(cls):
        cls.node = os.path.join(cls.tmp, 'node.xml')
        cls.write_node({})
        return [f'--libvirt-uri=test://{cls.node}']

    @classmethod
    def write_node(cls, meta):
        """vmr holds U1 and vmw U2, with the metadata elements in meta."""
        with open(cls.node, 'w', encoding='utf-8') as f:
            f.write('<node>' + ''.join(domain(name, n, [hostdev_mdev(u)]).replace('<memory>', meta.get(name, '') +
                                                                                   '<memory>')
                                       for name, n, u in (('vmr', 1, U1), ('vmw', 2, U2))) + '</node>')

    def wait_indexed(self):
        wait_until(lambda: f'libvirt: test://{self.node}, 2 running domains' in self.daemon.output(), 10,
                   'the domain index')

    def entry(self, name):
        """U's identity as vfiomigd records it."""
        props = {p: self.get_property(device_path(name), DEVICE, p)
                 for p in ('MigrationType', 'MigrationVersion', 'MigrationBasis', 'MdevType', 'Parent', 'Iommu')}
        flags = {d[0]: d[5] for d in self.call('GetDomain', '(s)', ('vmr' if name == U1 else 'vmw',))[1]}[name]
        return {'key': name, 'type': props['MigrationType'], 'version': props['MigrationVersion'],
                'basis': props['MigrationBasis'], 'flags': flags, 'mdev-type': props['MdevType'],
                'parent': props['Parent'], 'iommu': props['Iommu']}

    def test_right_metadata_is_left_alone(self):
        self.wait_indexed()
        out = self.daemon.output()
        for name in ('vmr', 'vmw'):
            self.assertEqual(out.count(f'libvirt domain {name}: recorded the identities of 1 devices'), 1, out)
        right, wrong = self.entry(U1), self.entry(U2)
        self.assertTrue(right['type'] and right['mdev-type'] and right['parent'])
        wrong['version'] = 'not-' + wrong['version']
        self.write_node({'vmr': metadata([right]), 'vmw': metadata([wrong])})

        self.restart_daemon()
        self.wait_indexed()
        out = self.daemon.output()
        self.assertNotIn('libvirt domain vmr: recorded', out)
        self.assertEqual(out.count('libvirt domain vmw: recorded the identities of 1 devices'), 1, out)
        _, devs = self.call('GetDomain', '(s)', ('vmw',))
        self.assertEqual(devs[0][3], self.get_property(device_path(U2), DEVICE, 'MigrationVersion'))
        self.assertTrue(devs[0][6])


class ConfigUriTest(unittest.TestCase):
    """[Libvirt] URI= in vfiomigd.conf says where libvirt is; --libvirt-uri=
    wins over it. (The harness's Daemon passes --libvirt-uri= always.)"""

    def setUp(self):
        self.bus = PrivateBus()
        self.addCleanup(self.bus.stop)
        self.node = os.path.join(self.bus.dir, 'node.xml')
        with open(self.node, 'w', encoding='utf-8') as f:
            f.write(NODE)
        self.conf = os.path.join(self.bus.dir, 'vfiomigd.conf')
        with open(self.conf, 'w', encoding='utf-8') as f:
            f.write(f'[Libvirt]\nURI=test://{self.node}\n')

    def output_of(self, args, until):
        """vfiomigd's log once it says until."""
        log = os.path.join(self.bus.dir, f'vfiomigd-{len(args)}.log')
        with open(log, 'w', encoding='utf-8') as f:
            proc = subprocess.Popen([VFIOMIGD, '--testbed=default', f'--config={self.conf}', '--log-level=debug',
                                     *args], stdout=f, stderr=subprocess.STDOUT,
                                    env={**os.environ, **self.bus.daemon_env})
        try:
            def text():
                with open(log, encoding='utf-8', errors='replace') as f:
                    return f.read()
            wait_until(lambda: until in text() or proc.poll() is not None, 20, until)
            return text()
        finally:
            proc.terminate()
            proc.wait(10)

    def test_uri_from_the_file(self):
        out = self.output_of([], f'libvirt: test://{self.node}, 3 running domains')
        self.assertIn(f'libvirt: test://{self.node}, 3 running domains', out)

    def test_command_line_wins(self):
        out = self.output_of(['--libvirt-uri=qemu+unix:///system?socket=/nonexistent/sock'], 'not reachable')
        self.assertIn('libvirt: qemu+unix:///system?socket=/nonexistent/sock not reachable', out)
        self.assertNotIn('test://', out)


class NoLibvirtTest(DaemonTestCase):
    """An unreachable libvirt changes nothing."""
    daemon_args = ['--testbed=default', '--libvirt-uri=qemu+unix:///system?socket=/nonexistent/sock']

    def test_works_without(self):
        devices = self.devices()
        self.assertTrue(devices)
        for name in devices:
            self.assertEqual(self.get_property(device_path(name), DEVICE, 'Domain'), '')
        self.assert_dbus_error('org.freedesktop.DBus.Error.AccessDenied', self.tb, 'DriveDomain', '(ss)', 'x',
                               'start')
        self.assertIn('not reachable', self.daemon.output())


if __name__ == '__main__':
    main()
