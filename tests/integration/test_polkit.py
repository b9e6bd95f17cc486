#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Authorization: unprivileged callers need org.vfiomig1.manage from polkit
(python-dbusmock's polkitd template); root passes; checks are async."""

import json
import os
import shutil
import subprocess
import tempfile

import dbus
from gi.repository import Gio, GLib

from vfiomigtest import (DEVICE, MANAGER, OBJECT_PATH, TESTBED, VFIOMIGCTL, DaemonTestCase, NOBODY, busctl, ctl,
                         device_path, main, run, wait_until)

UUID = '11111111-2222-3333-4444-555555555555'


class PolkitTest(DaemonTestCase):
    with_polkit = True

    def setUp(self):
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.polkit_obj.SimulateHang(False)

    def tearDown(self):
        super().tearDown()
        if UUID in self.devices():
            self.call('RemoveMdev', '(sa{sv})', (UUID, {}))

    def create_as_nobody(self):
        return busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'CreateMdev', 'sssa{sv}',
                      'mtty', 'mtty-1', UUID, '0', user='nobody')

    def test_nobody_may_read(self):
        p = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListDevices', user='nobody')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ctl('list', user='nobody').returncode, 0)

    def test_nobody_denied_until_allowed(self):
        self.assertNotEqual(self.create_as_nobody().returncode, 0)
        self.assertNotIn(UUID, self.devices())
        # Denied by polkit, not by the bus policy (our policy file lets anyone
        # call). busctl hides AccessDenied texts; vfiomigctl shows them.
        p = ctl('create-mdev', 'mtty', 'mtty-1', UUID, user='nobody')
        self.assertEqual(p.returncode, 4)
        self.assertIn('not authorized for org.vfiomig1.manage', p.stderr)

        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])      # the wrong action does not help
        self.assertNotEqual(self.create_as_nobody().returncode, 0)

        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        p = self.create_as_nobody()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(UUID, self.devices())

        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.assertEqual(ctl('remove-mdev', UUID, user='nobody').returncode, 4)
        self.assertIn(UUID, self.devices())
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        self.assertEqual(ctl('remove-mdev', UUID, user='nobody').returncode, 0)
        self.assertNotIn(UUID, self.devices())

    def test_root_needs_no_polkit(self):
        self.polkit_obj.SimulateHang(True)     # would block forever if asked
        self.assertEqual(ctl('create-mdev', 'mtty', 'mtty-1', UUID).returncode, 0)
        self.assertEqual(ctl('remove-mdev', UUID).returncode, 0)
        self.assertFalse(self.polkit_obj.HaveHangingCalls())

    def test_prepare_and_release_domain_need_manage(self):
        """PrepareDomain() creates mdevs for an incoming VM, ReleaseDomain()
        removes them: both are org.vfiomig1.manage."""
        # the identity of an mdev of the type, as the VM's metadata has it
        self.call('CreateMdev', '(sssa{sv})', ('mtty', 'mtty-1', UUID, {}))
        t, v = self.call('GetIdentity', '(s)', (UUID,))
        basis = self.call('Get', '(ss)', (DEVICE, 'MigrationBasis'), path=device_path(UUID),
                          interface='org.freedesktop.DBus.Properties')[0]
        self.call('RemoveMdev', '(sa{sv})', (UUID, {}))
        xml = (f"<domain><name>incoming</name><uuid>{UUID}</uuid><metadata><vfiomig:devices "
               f"xmlns:vfiomig='urn:vfiomig:domain:1'><vfiomig:device key='{UUID}' type='{t}' version='{v}' "
               f"basis='{basis}'/></vfiomig:devices></metadata><devices><hostdev mode='subsystem' type='mdev' "
               f"model='vfio-pci'><source><address uuid='{UUID}'/></source></hostdev></devices></domain>")

        def as_nobody(method, *args):
            return busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, method, 'sa{sv}', *args, '0', user='nobody')

        self.assertNotEqual(as_nobody('PrepareDomain', xml).returncode, 0)
        self.assertNotIn(UUID, self.devices())
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        p = as_nobody('PrepareDomain', xml)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, 's ""'), p.stderr)
        self.assertIn(UUID, self.devices())

        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.assertNotEqual(as_nobody('ReleaseDomain', 'incoming').returncode, 0)
        self.assertIn(UUID, self.devices())
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        p = as_nobody('ReleaseDomain', 'incoming')
        self.assertEqual((p.returncode, p.stdout.strip()), (0, 'u 1'), p.stderr)
        self.assertNotIn(UUID, self.devices())

    def test_check_is_asynchronous(self):
        """While polkit sits on a check, the daemon keeps serving others."""
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        self.polkit_obj.SimulateHang(True)
        pending = subprocess.Popen([*NOBODY, VFIOMIGCTL, 'create-mdev', 'mtty', 'mtty-1', UUID],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: self.polkit_obj.HaveHangingCalls(), 10, 'the polkit check')
            self.assertIn('0000:3b:00.1', self.devices())      # served while the check hangs
            self.assertIsNone(pending.poll())
            self.assertNotIn(UUID, self.devices())
            self.polkit_obj.ReleaseHangingCalls()
            out, err = pending.communicate(timeout=10)
            self.assertEqual(pending.returncode, 0, err)
            self.assertEqual(out.strip(), UUID)
            self.assertIn(UUID, self.devices())
        finally:
            if pending.poll() is None:
                pending.kill()


def uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


D = [uuid(i) for i in range(1, 7)]
UNKNOWN = uuid(99)
NEW_MDEV = uuid(98)
MIGRATE = 'org.vfiomig1.migrate'
MANAGE = 'org.vfiomig1.manage'
DENIED = 'org.freedesktop.DBus.Error.AccessDenied'
INVALID = 'org.vfiomig1.Error.InvalidArgument'

DETAILS_TESTBED = '''
[Parent simgpu]
Driver=simgpu

[Type simgpu/sim]
MaxInstances=16
MigrationFlags=stop-copy,p2p,pre-copy
StateSize=64K
''' + ''.join(f'''
[Device {name}]
Kind=mdev
Parent=simgpu
Type=sim
''' for name in D)

# One call, its error printed as JSON. Options are given as [type, value];
# ["fd"] passes an anonymous file of the caller's for an "h". With
# root-after-connect the caller connects as nobody, then takes effective
# UID 0 back: /proc then says root, the bus does not.
CALLER = r'''
import json, os, sys
import gi
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib
mode, interface, method, signature, args = sys.argv[1:5] + [json.loads(sys.argv[5])]
if mode == 'root-after-connect':
    os.setresuid(65534, 65534, 0)
conn = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
if mode == 'root-after-connect':
    os.setresuid(-1, 0, -1)
fds = Gio.UnixFDList.new()
values = []
for a in args:
    if a == ['fd']:
        a = fds.append(os.open('/tmp', os.O_TMPFILE | os.O_RDWR, 0o600))
    elif isinstance(a, dict):
        a = {k: GLib.Variant(t, v) for k, (t, v) in a.items()}
    values.append(a)
try:
    conn.call_with_unix_fd_list_sync('org.vfiomig1', '/org/vfiomig1', interface, method,
                                     GLib.Variant(signature, tuple(values)), None, Gio.DBusCallFlags.NONE,
                                     10000, fds, None)
    print(json.dumps({'error': None}))
except GLib.Error as e:
    name = Gio.DBusError.get_remote_error(e)
    Gio.DBusError.strip_remote_error(e)
    print(json.dumps({'error': name, 'message': e.message}))
'''


class PolkitDetailsTest(DaemonTestCase):
    """Authorization by device, with a polkit that decides on the details
    as a rule that allows some devices would (polkitd_details.py)."""

    with_polkit = True

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='vfiomig-polkit-')
        conf = os.path.join(cls.tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(DETAILS_TESTBED)
        cls.states = os.path.join(cls.tmp, 'state', 'states')
        cls.daemon_args = [f'--testbed={conf}']
        cls.daemon_env = {'RUNTIME_DIRECTORY': os.path.join(cls.tmp, 'run'),
                          'STATE_DIRECTORY': os.path.join(cls.tmp, 'state')}
        super().setUpClass()

    @classmethod
    def start_polkit(cls):
        import dbusmock  # pylint: disable=import-outside-toplevel
        cls.polkit_log = open(os.path.join(cls.bus.dir, 'polkit.log'), 'w', encoding='utf-8')
        template = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'polkitd_details.py')
        cls.polkit, cls.polkit_obj = dbusmock.DBusTestCase.spawn_server_template(
            template, {}, stdout=cls.polkit_log, system_bus=True)
        cls.addClassCleanup(cls.stop_polkit)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.polkit_obj.Reset()
        # no job of an earlier test holds a device, every device runs
        wait_until(lambda: not self.call('ListMigrations')[0], 30, 'the jobs to end')
        for name in D:
            if self.state(name) != 'running':
                self.tb('Reset', '(s)', name)

    def call_as(self, method, signature, *args, interface=MANAGER, mode='nobody'):
        p = run(['/usr/bin/python3', '-c', CALLER, mode, interface, method, signature, json.dumps(args)],
                user='nobody' if mode == 'nobody' else None)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def assert_denied(self, method, signature, *args, **kw):
        r = self.call_as(method, signature, *args, **kw)
        self.assertEqual(r['error'], DENIED, (method, args, r))

    def assert_no_job(self):
        self.assertEqual(self.call('ListMigrations')[0], [])

    def last_details(self):
        return dict(self.polkit_obj.GetChecks()[-1][1])

    def test_group_migration_needs_every_device(self):
        self.polkit_obj.AllowDevices(MIGRATE, D[:4])
        unknown_ok = {'allow-unknown': ['b', True]}
        # D[4] is allowed by no rule: as the source or the target of a
        # further pair, or as the first source
        for pair in (f'{D[4]}={D[3]}', f'{D[2]}={D[4]}'):
            self.assert_denied('Migrate', '(ssa{sv})', D[0], D[1], {'devices': ['as', [pair]], **unknown_ok})
            self.assert_no_job()
        self.assert_denied('Migrate', '(ssa{sv})', D[4], D[1], unknown_ok)
        self.assert_denied('Migrate', '(ssa{sv})', D[0], D[4], unknown_ok)
        self.assert_no_job()

        # the control: a group of allowed devices only is let through
        r = self.call_as('Migrate', '(ssa{sv})', D[0], D[1], {'devices': ['as', [f'{D[2]}={D[3]}']], **unknown_ok})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': ','.join([D[0], D[2], D[1], D[3]]),
                                               'sources': f'{D[0]},{D[2]}', 'targets': f'{D[1]},{D[3]}'})

    def test_save_and_load_need_their_device(self):
        self.polkit_obj.AllowDevices(MIGRATE, D[:2])
        self.assert_denied('Save', '(ssa{sv})', D[4], 'denied', {})
        self.assert_denied('SaveFd', '(sha{sv})', D[4], ['fd'], {})
        self.assert_denied('Load', '(ssa{sv})', D[4], 'denied', {})
        self.assert_denied('LoadFd', '(sha{sv})', D[4], ['fd'], {})
        self.assert_no_job()
        self.assertFalse(os.path.exists(os.path.join(self.states, 'denied')))

        r = self.call_as('Save', '(ssa{sv})', D[0], 'allowed', {'source-state': ['s', 'running']})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': D[0], 'sources': D[0], 'device': D[0], 'file': 'allowed'})
        wait_until(lambda: not self.call('ListMigrations')[0], 30, 'the save to end')
        r = self.call_as('Load', '(ssa{sv})', D[1], 'allowed', {'allow-unknown': ['b', True]})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': D[1], 'targets': D[1], 'device': D[1], 'file': 'allowed'})
        r = self.call_as('LoadFd', '(sha{sv})', D[0], ['fd'], {})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': D[0], 'targets': D[0], 'device': D[0]})

    def test_resume_needs_its_device(self):
        self.polkit_obj.AllowDevices(MIGRATE, D[:1])
        self.assert_denied('Resume', '(sa{sv})', D[4], {})
        r = self.call_as('Resume', '(sa{sv})', D[0], {})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': D[0], 'device': D[0]})

    def test_refresh_needs_its_device(self):
        """RefreshDevice() opens the device (a vfio-pci function is reset):
        org.vfiomig1.migrate for that device, as Resume()."""
        self.polkit_obj.AllowDevices(MIGRATE, D[:1])
        self.assert_denied('RefreshDevice', '(sa{sv})', D[4], {})
        r = self.call_as('RefreshDevice', '(sa{sv})', D[0], {})
        self.assertIsNone(r['error'], r)
        self.assertEqual(self.last_details(), {'devices': D[0], 'device': D[0]})
        self.polkit_obj.AllowDevices(MANAGE, D)     # the other action does not do
        self.assert_denied('RefreshDevice', '(sa{sv})', D[4], {})

    def test_refused_caller_learns_nothing(self):
        """Authorization comes before any look-up: a caller polkit refuses
        learns neither which saved states nor which devices exist."""
        os.makedirs(self.states, exist_ok=True)
        with open(os.path.join(self.states, 'exists'), 'wb') as f:
            f.write(b'not a stream')
        for name in ('exists', 'missing'):
            self.assert_denied('Save', '(ssa{sv})', D[0], name, {})
            self.assert_denied('Load', '(ssa{sv})', D[0], name, {})
        self.assert_denied('CreateMdev', '(sssa{sv})', 'nosuchparent', 'sim', '', {})
        self.assert_denied('CreateMdev', '(sssa{sv})', 'simgpu', 'nosuchtype', '', {})
        self.assert_denied('RemoveMdev', '(sa{sv})', UNKNOWN, {})
        self.assert_denied('RemoveMdev', '(sa{sv})', D[0], {})
        self.assert_denied('RefreshDevice', '(sa{sv})', UNKNOWN, {})
        self.assert_denied('InjectFault', '(ss)', UNKNOWN, 'stall after=0', interface=TESTBED)
        self.assert_denied('CheckIdentity', '(sss)', 'foreign-type', '1.0', UNKNOWN)
        self.assertIn(D[0], self.devices())

        # root, whom polkit is not asked about, gets the real answers
        self.assert_dbus_error('org.vfiomig1.Error.AlreadyExists', self.call, 'Save', '(ssa{sv})',
                               (D[0], 'exists', {}))
        self.assertIn('No saved state named missing',
                      self.assert_dbus_error(INVALID, self.call, 'Load', '(ssa{sv})', (D[0], 'missing', {})))
        for args in (('nosuchparent', 'sim', '', {}), ('simgpu', 'nosuchtype', '', {})):
            self.assert_dbus_error('org.vfiomig1.Error.NoSuchDevice', self.call, 'CreateMdev', '(sssa{sv})', args)
        self.assert_dbus_error('org.vfiomig1.Error.NoSuchDevice', self.call, 'RemoveMdev', '(sa{sv})',
                               (UNKNOWN, {}))

    def test_root_is_who_the_bus_says(self):
        """A process that connected as nobody and is root by /proc only is
        asked about like nobody."""
        r = self.call_as('CreateMdev', '(sssa{sv})', 'simgpu', 'sim', NEW_MDEV, {}, mode='root-after-connect')
        self.assertEqual(r['error'], DENIED, r)
        self.assertNotIn(NEW_MDEV, self.devices())
        self.assertEqual(self.polkit_obj.GetChecks()[-1][0], MANAGE)

    def test_load_of_a_fifo_does_not_block(self):
        os.makedirs(self.states, exist_ok=True)
        fifo = os.path.join(self.states, 'fifo')
        os.mkfifo(fifo)
        self.addCleanup(os.unlink, fifo)
        answers = []
        ctx = GLib.MainContext.default()
        self.conn.call('org.vfiomig1', OBJECT_PATH, MANAGER, 'Load', GLib.Variant('(ssa{sv})', (D[0], 'fifo', {})),
                       None, Gio.DBusCallFlags.NONE, 30000, None, lambda conn, res: answers.append(res))
        try:
            # served meanwhile: a daemon in open() answers nothing
            self.conn.call_sync('org.vfiomig1', OBJECT_PATH, 'org.freedesktop.DBus.Peer', 'Ping', None, None,
                                Gio.DBusCallFlags.NONE, 3000, None)
            wait_until(lambda: ctx.iteration(False) or answers, 5, 'the answer to Load')
            with self.assertRaises(GLib.Error) as cm:
                self.conn.call_finish(answers[0])
            self.assertEqual(Gio.DBusError.get_remote_error(cm.exception), INVALID)
            self.assertIn(f'{fifo} is not a regular file', cm.exception.message)
        finally:
            # a daemon blocked in open() goes on once a writer comes
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            wait_until(lambda: ctx.iteration(False) or answers, 10, 'the answer to Load')
        self.assert_no_job()

    def test_load_of_a_symbolic_link_is_refused(self):
        os.makedirs(self.states, exist_ok=True)
        target = os.path.join(self.tmp, 'outside')
        with open(target, 'wb') as f:
            f.write(b'not a stream')
        link = os.path.join(self.states, 'link')
        os.symlink(target, link)
        self.addCleanup(os.unlink, link)
        msg = self.assert_dbus_error(INVALID, self.call, 'Load', '(ssa{sv})', (D[0], 'link', {}))
        self.assertIn(link, msg)
        self.assert_no_job()

    def test_probe_of_a_device_into_itself(self):
        msg = self.assert_dbus_error(INVALID, self.call, 'Probe', '(ssa{sv})', (D[0], D[0], {}))
        self.assertIn(f'{D[0]} cannot be its own target', msg)
        p = ctl('probe', D[0], D[0])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('cannot be its own target', p.stderr)
        # two temporary instances of one type are two devices
        self.assertNotIn('own target', ctl('probe', 'simgpu/sim', 'simgpu/sim').stderr)


if __name__ == '__main__':
    main()
