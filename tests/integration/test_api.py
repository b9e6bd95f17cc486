#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""org.vfiomig1 on the embedded testbed: listings, objects, mdev
lifecycle, bad input, and the documented API against the real one."""

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

from vfiomigtest import (DEVICE, MANAGER, MDEV_TYPE, OBJECT_PATH, SRCDIR, VFIOMIGD,
                         DaemonTestCase, SignalRecorder, busctl, busctl_json, ctl, device_path, main)

ERR = 'org.vfiomig1.Error.'
TESTBED = 'org.vfiomig1.Testbed'
PCI_VF = '0000:3b:00.1'
MDEV_0001 = '5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001'
NEW_UUID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'


class ApiTest(DaemonTestCase):

    def test_manager_properties(self):
        self.assertEqual(self.get_property(OBJECT_PATH, MANAGER, 'Backend'), 'testbed')
        version = subprocess.run([VFIOMIGD, '--version'], capture_output=True, text=True, check=True).stdout
        self.assertEqual(version.split()[-1], self.get_property(OBJECT_PATH, MANAGER, 'Version'))
        self.assertEqual(self.get_property(OBJECT_PATH, MANAGER, 'DeviceCount'), len(self.devices()))

    def test_default_testbed_shape(self):
        devices = self.devices().values()
        kinds = [d[1] for d in devices]
        self.assertGreaterEqual(len(kinds), 6)
        self.assertGreaterEqual(kinds.count('pci'), 2)
        self.assertGreaterEqual(len(self.types()), 4)
        self.assertGreaterEqual(len({parent for parent, _ in self.types()}), 2)

    def test_busctl_and_ctl_agree_on_devices(self):
        via_busctl = busctl_json('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListDevices')['data'][0]
        p = ctl('list', '--json', check=True)
        via_ctl = json.loads(p.stdout)
        self.assertEqual(len(via_ctl), len(via_busctl))
        for row, obj in zip(via_busctl, via_ctl):
            flags = row[4].split(',') if row[4] else []
            self.assertEqual(row, [obj['name'], obj['kind'], obj['driver'], obj['mdev_type'],
                                   ','.join(obj['migration_flags']), obj['state'], obj['domain'],
                                   obj['migration_support'], obj['parent']])
            self.assertEqual(obj['migration_flags'], flags)

    def test_busctl_and_ctl_agree_on_types(self):
        via_busctl = busctl_json('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListTypes')['data'][0]
        via_ctl = json.loads(ctl('types', '--json', check=True).stdout)
        self.assertEqual(via_busctl, [[t['parent'], t['id'], t['name'], t['available_instances'], t['device_api'],
                                       t['description']] for t in via_ctl])

    def test_human_list_has_every_device(self):
        out = ctl('list', check=True).stdout.splitlines()
        self.assertEqual(out[0].split(), ['NAME', 'KIND', 'DRIVER', 'PARENT', 'TYPE', 'MIGRATION', 'STATE', 'DOMAIN'])
        self.assertEqual(sorted(line.split()[0] for line in out[1:]), sorted(self.devices()))

    def test_list_and_types_filters(self):
        def names(*args):
            return sorted(line.split()[0] for line in ctl('list', '--no-legend', *args, check=True).stdout.splitlines())
        parents = self.parents()
        self.assertEqual(names('--parent=mtty'), sorted(n for n, p in parents.items() if p == 'mtty'))
        self.assertEqual(names('--kind=pci'), sorted(n for n, d in self.devices().items() if d[1] == 'pci'))
        self.assertEqual(names('--type=mtty-2'), sorted(n for n, d in self.devices().items() if d[3] == 'mtty-2'))
        self.assertEqual(names('--kind=mdev', '--parent=mtty', '--type=mtty-1'),
                         sorted(n for n, d in self.devices().items() if d[3] == 'mtty-1'))
        self.assertEqual(names('--domain=nowhere'), [])
        self.assertEqual(ctl('list', '--kind=gpu').returncode, 2)
        # the parent column is the device's Parent property
        for line in ctl('list', '--no-legend', check=True).stdout.splitlines():
            name, parent = line.split()[0], line.split()[3]
            self.assertEqual(parent, parents[name] or '-', name)
        types = json.loads(ctl('types', '--json', '--parent=mtty', check=True).stdout)
        self.assertEqual(sorted(t['id'] for t in types), ['mtty-1', 'mtty-2'])
        self.assertEqual({t['device_api'] for t in types}, {'vfio-pci'})

    def test_get_device_and_properties(self):
        path = self.call('GetDevice', '(s)', (PCI_VF.upper(),))[0]
        self.assertEqual(path, device_path(PCI_VF))
        props = self.call('GetAll', '(s)', (DEVICE,), path=path, interface='org.freedesktop.DBus.Properties')[0]
        self.assertEqual(props['Name'], PCI_VF)
        self.assertEqual(props['Kind'], 'pci')
        self.assertEqual(props['Driver'], 'mlx5_vfio_pci')
        self.assertEqual(props['MigrationFlags'], ['stop-copy', 'p2p', 'pre-copy'])
        shown = json.loads(ctl('show', PCI_VF, '--json', check=True).stdout)
        # every property, named as list and types name their members
        self.assertEqual(shown, {re.sub(r'(?<!^)([A-Z])', r'_\1', k).lower(): v for k, v in props.items()})
        self.assertEqual(shown['vfio_dev_node'], props['VfioDevNode'])
        self.assertEqual(json.loads(ctl('show', PCI_VF, '--json=short', check=True).stdout), shown)
        self.assertEqual(ctl('show', PCI_VF, '--json=off', check=True).stdout, ctl('show', PCI_VF, check=True).stdout)
        listed = ctl('list', '--no-legend', check=True).stdout.splitlines()
        self.assertEqual(listed[0].split()[0], sorted(self.devices())[0])
        self.assertEqual(ctl('list', '--json=pretty', check=True).stdout.count('\n') > 10, True)

    def test_object_manager_lists_everything(self):
        objects = self.call('GetManagedObjects', path=OBJECT_PATH,
                            interface='org.freedesktop.DBus.ObjectManager')[0]
        names = sorted(ifaces[DEVICE]['Name'] for ifaces in objects.values() if DEVICE in ifaces)
        self.assertEqual(names, sorted(self.devices()))
        types = sorted((i[MDEV_TYPE]['Parent'], i[MDEV_TYPE]['Id']) for i in objects.values() if MDEV_TYPE in i)
        self.assertEqual(types, sorted(self.types()))

    def test_create_and_remove_mdev(self):
        before = self.types()[('mtty', 'mtty-2')][3]
        rec = SignalRecorder(self.conn)
        try:
            p = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'CreateMdev', 'sssa{sv}',
                       'mtty', 'mtty-2', NEW_UUID.upper(), '0', check=True)
            self.assertEqual(p.stdout.strip(), f's "{NEW_UUID}"')
            self.assertEqual(self.devices()[NEW_UUID][1:4], ('mdev', 'mtty', 'mtty-2'))
            self.assertEqual(self.types()[('mtty', 'mtty-2')][3], before - 1)
            listed = {d['name']: d for d in json.loads(ctl('list', '--json', check=True).stdout)}
            self.assertEqual(listed[NEW_UUID]['mdev_type'], 'mtty-2')
            rec.wait_for(lambda s: s[1] == 'DeviceAdded' and s[3][0] == NEW_UUID)
            rec.wait_for(lambda s: s[1] == 'InterfacesAdded' and s[3][0] == device_path(NEW_UUID))
            rec.wait_for(lambda s: s[1] == 'PropertiesChanged' and s[3][0] == MDEV_TYPE
                         and s[3][1].get('AvailableInstances') == before - 1)

            self.assertEqual(ctl('remove-mdev', NEW_UUID).returncode, 0)
            self.assertNotIn(NEW_UUID, self.devices())
            self.assertEqual(self.types()[('mtty', 'mtty-2')][3], before)
            rec.wait_for(lambda s: s[1] == 'DeviceRemoved' and s[3][0] == NEW_UUID)
            rec.wait_for(lambda s: s[1] == 'InterfacesRemoved' and s[3][0] == device_path(NEW_UUID))
        finally:
            rec.close()

    def test_ctl_create_mdev_picks_a_uuid(self):
        p = ctl('create-mdev', 'mtty', 'mtty-1', check=True)
        uuid = p.stdout.strip()
        self.assertIn(uuid, self.devices())
        self.assertEqual(ctl('remove-mdev', uuid).returncode, 0)
        self.assertNotIn(uuid, self.devices())

    def test_exhausting_a_type_is_busy(self):
        parent, type_id = '0000:65:00.0', 'simgpu-A2'
        available = self.types()[(parent, type_id)][3]
        created = [self.call('CreateMdev', '(sssa{sv})', (parent, type_id, '', {}))[0] for _ in range(available)]
        try:
            self.assertEqual(self.types()[(parent, type_id)][3], 0)
            msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'CreateMdev', '(sssa{sv})',
                                         (parent, type_id, '', {}))
            self.assertIn(type_id, msg)
            self.assertEqual(ctl('create-mdev', parent, type_id).returncode, 5)
        finally:
            for uuid in created:
                self.call('RemoveMdev', '(sa{sv})', (uuid, {}))
        self.assertEqual(self.types()[(parent, type_id)][3], available)


class BadInputTest(DaemonTestCase):
    """Every bad request gets a clear error and changes nothing."""

    def setUp(self):
        self.before = (self.devices(), self.types())

    def tearDown(self):
        super().tearDown()
        self.assertEqual((self.devices(), self.types()), self.before)

    def test_malformed_device_names(self):
        for name in ['', '-foo', '0000:3b:00', '83b8f4f2-509f-382f-3c1e', '../../etc/passwd',
                     '0000:3b:00.1\n', 'x' * 5000]:
            msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'GetDevice', '(s)', (name,))
            self.assertIn('is not a device name', msg)

    def test_unknown_device(self):
        msg = self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'GetDevice', '(s)', ('0000:3b:00.7',))
        self.assertIn('0000:3b:00.7', msg)
        p = ctl('show', '0000:3b:00.7')
        self.assertEqual(p.returncode, 3)
        self.assertIn('0000:3b:00.7', p.stderr)

    def test_create_mdev_bad_arguments(self):
        cases = [
            (('mtty', 'mtty-1', 'not-a-uuid'), 'InvalidArgument', 'not-a-uuid'),
            (('mtty', 'mtty-1', '83b8f4f2-509f-382f-3c1e-e6bfe0fa100z'), 'InvalidArgument', 'UUID'),
            (('nope', 'mtty-1', ''), 'NoSuchDevice', 'nope'),
            (('mtty', 'mtty-9', ''), 'NoSuchDevice', 'mtty-9'),
            (('../mtty', 'mtty-1', ''), 'InvalidArgument', '../mtty'),
            (('mtty', '../../remove', ''), 'InvalidArgument', '../../remove'),
            (('mtty', 'mtty-2', MDEV_0001), 'AlreadyExists', MDEV_0001),
        ]
        for args, error, text in cases:
            with self.subTest(args=args):
                msg = self.assert_dbus_error(ERR + error, self.call, 'CreateMdev', '(sssa{sv})', (*args, {}))
                self.assertIn(text, msg)

    def test_unknown_option_refused(self):
        msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'CreateMdev', '(sssa{sv})',
                                     ('mtty', 'mtty-1', '', {'color': GLib.Variant('s', 'red')}))
        self.assertIn('color', msg)

    def test_remove_mdev_bad_arguments(self):
        self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'RemoveMdev', '(sa{sv})', ('foo', {}))
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'RemoveMdev', '(sa{sv})',
                               ('00000000-0000-0000-0000-000000000000', {}))
        msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'RemoveMdev', '(sa{sv})', (PCI_VF, {}))
        self.assertIn('not an mdev', msg)

    def test_wrong_argument_types(self):
        for args in [('GetDevice', 'u', '5'), ('GetDevice',), ('CreateMdev', 'ss', 'mtty', 'mtty-1'),
                     ('RemoveMdev', 'sa{sv}s', '00000000-0000-0000-0000-000000000000', '0', 'extra')]:
            p = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, *args)
            self.assertNotEqual(p.returncode, 0, args)
            # refused by the daemon's sd-bus, not by busctl itself
            self.assertIn('invalid arguments', p.stderr.lower(), args)

    def test_ctl_usage_errors(self):
        for args in [[], ['frobnicate'], ['show'], ['show', 'a', 'b'], ['create-mdev', 'mtty'],
                     ['list', 'extra'], ['--bogus-option', 'list']]:
            p = ctl(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertTrue(p.stderr.strip(), args)
        self.assertEqual(ctl('show', 'f/oo').returncode, 2)
        # a name like that of a vDPA device is one nobody has here
        self.assertEqual(ctl('show', 'foo').returncode, 3)


class ClientHelpTest(DaemonTestCase):

    def test_help_lists_every_command(self):
        out = ctl('--help', check=True).stdout
        for command in ['list', 'types', 'show', 'create-mdev', 'remove-mdev', 'monitor', '--json']:
            self.assertIn(command, out)
        self.assertIn('vfiomigctl', ctl('--version', check=True).stdout)

    def test_daemon_help_is_true(self):
        out = subprocess.run([VFIOMIGD, '--help'], capture_output=True, text=True, check=True).stdout
        for option in ['--testbed', '--idle-timeout', '--bus-introspect', '--log-level', '--config']:
            self.assertIn(option, out)
            # and each is accepted
        bad = subprocess.run([VFIOMIGD, '--idle-timeout=soon'], capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn('--idle-timeout', bad.stderr)

    def test_broken_testbed_file_names_the_line(self):
        path = os.path.join(self.bus.dir, 'broken.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write('[Parent p]\nDriver=x\n\n[Device 1234]\nKind=mdev\n')
        # it creates its runtime directory before it reads the file
        p = subprocess.run([VFIOMIGD, f'--testbed={path}'], capture_output=True, text=True, timeout=10,
                           env={**os.environ, **self.bus.daemon_env})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('broken.conf:4', p.stderr)


def interfaces(xml_text):
    """{interface: {member kind and name: signature details}} of our interfaces."""
    out = {}
    for iface in ET.fromstring(xml_text).iter('interface'):
        name = iface.get('name')
        if not name.startswith('org.vfiomig1.'):
            continue
        members = {}
        for el in iface:
            if el.tag == 'method':
                members['method ' + el.get('name')] = [(a.get('type'), a.get('direction', 'in'), a.get('name'))
                                                        for a in el.iter('arg')]
            elif el.tag == 'signal':
                members['signal ' + el.get('name')] = [(a.get('type'), a.get('name')) for a in el.iter('arg')]
            elif el.tag == 'property':
                emits = [a.get('value') for a in el.iter('annotation')
                         if a.get('name') == 'org.freedesktop.DBus.Property.EmitsChangedSignal']
                members['property ' + el.get('name')] = (el.get('type'), el.get('access'), emits)
        out[name] = members
    return out


class IntrospectionTest(DaemonTestCase):

    def setUp(self):
        with open(os.path.join(SRCDIR, 'dbus', 'org.vfiomig1.xml'), encoding='utf-8') as f:
            self.documented = interfaces(f.read())

    def test_documented_api_matches_bus_introspect(self):
        out = os.path.join(self.bus.dir, 'introspect.xml')
        subprocess.run([VFIOMIGD, '--bus-introspect=' + out], check=True)
        with open(out, encoding='utf-8') as f:
            self.assertEqual(interfaces(f.read()), self.documented)

    def test_documented_api_matches_live_objects(self):
        live = {}
        # a migration object exists only while a job runs: start a slow one
        source, target = '0000:3b:00.1', '0000:3b:00.2'
        self.call('InjectFault', '(ss)', (source, 'stall after=0'), interface=TESTBED)
        job = self.start('Migrate', '(ssa{sv})', (source, target, {}))
        try:
            for path in [OBJECT_PATH, device_path(PCI_VF), '/org/vfiomig1/type/mtty_2fmtty_2d1', job['path']]:
                xml = self.call('Introspect', path=path, interface='org.freedesktop.DBus.Introspectable')[0]
                live.update(interfaces(xml))
        finally:
            self.call('Cancel', path=job['path'], interface='org.vfiomig1.Migration')
            self.call('ClearFaults', '(s)', (source,), interface=TESTBED)
            # the rollback is over only when the job is gone
            self.assertEqual(self.wait_job(job)['result'], 'cancelled')
        self.assertEqual([self.call('GetDeviceState', '(s)', (n,), interface=TESTBED)[0] for n in (source, target)],
                         ['running', 'running'])
        self.assertEqual(live, self.documented)
        self.assertEqual(set(live), {MANAGER, DEVICE, MDEV_TYPE, 'org.vfiomig1.Migration', TESTBED})


from gi.repository import GLib  # noqa: E402  (after the test classes, for GLib.Variant)

if __name__ == '__main__':
    main()
