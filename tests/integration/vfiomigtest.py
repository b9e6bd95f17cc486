# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared harness for the integration tests.

Every test talks to the real vfiomigd binary on a private dbus-daemon of
type "system" whose policy is as strict as Debian's system.conf, plus the
project's own dbus/org.vfiomig1.conf: a call that works here works because
our policy file allows it.
"""

import fcntl
import json
import os
import pty
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

import gi
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

BUILDDIR = os.environ.get('VFIOMIG_BUILDDIR', os.path.abspath('build'))
SRCDIR = os.environ.get('VFIOMIG_SRCDIR', os.path.abspath('.'))
VFIOMIGD = os.path.join(BUILDDIR, 'daemon', 'vfiomigd')
VFIOMIGCTL = os.path.join(BUILDDIR, 'client', 'vfiomigctl')

BUS_NAME = 'org.vfiomig1'
OBJECT_PATH = '/org/vfiomig1'
MANAGER = 'org.vfiomig1.Manager'
DEVICE = 'org.vfiomig1.Device'
MDEV_TYPE = 'org.vfiomig1.MdevType'
MIGRATION = 'org.vfiomig1.Migration'
TESTBED = 'org.vfiomig1.Testbed'

NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups']

BUS_CONFIG = os.path.join(SRCDIR, 'tests', 'private-bus.conf.in')


class PrivateBus:
    """A dbus-daemon of type system in a temporary directory.

    The directory also holds the runtime and state directories of every
    vfiomigd on this bus, started by hand (Daemon) or by activation (the
    bus passes its environment on): /run/vfiomig and /var/lib/vfiomig are
    shared by every run and checkout on the machine, and a device left
    stopped there by one run would make the next one fail."""

    def __init__(self, servicedir=None):
        self.dir = tempfile.mkdtemp(prefix='vfiomig-bus-')
        os.chmod(self.dir, 0o755)      # unprivileged test callers connect too
        self.daemon_env = {'RUNTIME_DIRECTORY': os.path.join(self.dir, 'run'),
                           'STATE_DIRECTORY': os.path.join(self.dir, 'state')}
        self.socket = os.path.join(self.dir, 'system_bus_socket')
        config = os.path.join(self.dir, 'bus.conf')
        with open(BUS_CONFIG, encoding='utf-8') as f:
            text = f.read()
        text = text.replace('@SOCKET@', self.socket)
        text = text.replace('@POLICY@', os.path.join(SRCDIR, 'dbus', 'org.vfiomig1.conf'))
        text = text.replace('@SERVICEDIR@', f'<servicedir>{servicedir}</servicedir>' if servicedir else '')
        with open(config, 'w', encoding='utf-8') as f:
            f.write(text)
        self.log = open(os.path.join(self.dir, 'bus.log'), 'w+', encoding='utf-8')
        # The address is printed once the socket listens; the socket file
        # appears at bind(), a moment before, when a connect is refused.
        ready, w = os.pipe()
        self.proc = subprocess.Popen(['dbus-daemon', '--nofork', '--nopidfile', '--config-file', config,
                                      f'--print-address={w}'], pass_fds=(w,),
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.daemon_env})
        os.close(w)
        with os.fdopen(ready, encoding='utf-8') as f:
            if not f.readline():
                self.log.seek(0)
                raise RuntimeError('dbus-daemon did not start:\n' + self.log.read())
        self.address = 'unix:path=' + self.socket
        os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = self.address

    def connect(self):
        return Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def object_path(prefix, name):
    """sd_bus_path_encode(): a leading digit and every non-alphanumeric
    byte become _xx."""
    out = ''.join(c if c.isascii() and (c.isalpha() or (c.isdigit() and i > 0)) else '_%02x' % ord(c)
                  for i, c in enumerate(name))
    return f'{prefix}/{out or "_"}'


def device_path(name):
    return object_path('/org/vfiomig1/device', name)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f'timed out waiting for {what}')


def name_has_owner(conn, name=BUS_NAME):
    reply = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                           'NameHasOwner', GLib.Variant('(s)', (name,)), None,
                           Gio.DBusCallFlags.NONE, -1, None)
    return reply.unpack()[0]


class Daemon:
    """The real vfiomigd, its stderr captured for failure reports. Its
    runtime and state directories are the bus's unless env names others."""

    def __init__(self, bus, args, env=None):
        self.bus = bus
        self.logpath = os.path.join(bus.dir, f'vfiomigd-{time.monotonic_ns()}.log')
        self.log = open(self.logpath, 'w+', encoding='utf-8')
        full_env = {**os.environ, **bus.daemon_env, **(env or {})}
        # e.g. VFIOMIG_TEST_WRAPPER="valgrind --error-exitcode=99" to debug
        extra = os.environ.get('VFIOMIG_TEST_WRAPPER', '').split()
        # no libvirt unless a test brings its own: another test's libvirtd
        # may be running on this machine
        if not any(a.startswith('--libvirt-uri') for a in args):
            args = ['--libvirt-uri=', *args]
        self.proc = subprocess.Popen([*extra, VFIOMIGD, '--log-level=debug', *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        conn = bus.connect()
        try:
            wait_until(lambda: name_has_owner(conn) or self.proc.poll() is not None, 20, 'vfiomigd on the bus')
        except TimeoutError:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            conn.close_sync(None)
        if self.proc.poll() is not None:
            raise RuntimeError('vfiomigd exited at start:\n' + self.output())

    def output(self):
        with open(self.logpath, encoding='utf-8', errors='replace') as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def run(args, user=None, check=False, input=None, timeout=30):
    """Runs a client (busctl, vfiomigctl) and returns the CompletedProcess."""
    cmd = [*(NOBODY if user == 'nobody' else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, input=input, timeout=timeout)


def ctl(*args, **kw):
    return run([VFIOMIGCTL, *args], **kw)


def on_terminal(args, stream='stdout', width=None, env=None):
    """vfiomigctl ARGS with its standard stream stream on a pseudo-terminal
    (width columns wide, if given), stdin otherwise from /dev/null, and the
    output streams not on the terminal into one pipe. Returns what it wrote
    on the terminal (line ends as a pipe has them), what it wrote into the
    pipe, and its exit status."""
    master, slave = pty.openpty()
    if width:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, width, 0, 0))
    files = {'stdin': subprocess.DEVNULL, 'stdout': subprocess.PIPE,
             'stderr': subprocess.PIPE if stream == 'stdout' else subprocess.STDOUT}
    files[stream] = slave
    p = subprocess.Popen([VFIOMIGCTL, *args], env=env, **files)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:         # EIO: every writer has closed it
            break
        if not data:
            break
        chunks.append(data)
    pipe = p.stdout or p.stderr
    other = pipe.read().decode(errors='replace')
    pipe.close()
    p.wait(timeout=60)
    os.close(master)
    return b''.join(chunks).decode(errors='replace').replace('\r\n', '\n'), other, p.returncode


def busctl(*args, **kw):
    return run(['busctl', '--system', *args], **kw)


def busctl_json(*args):
    p = busctl('--json=short', *args, check=True)
    return json.loads(p.stdout)


class SignalRecorder:
    """Collects signals from org.vfiomig1 with a GLib main context."""

    def __init__(self, conn, interface=None, member=None, path=None):
        self.conn = conn
        self.signals = []
        self.id = conn.signal_subscribe(BUS_NAME, interface, member, path, None,
                                        Gio.DBusSignalFlags.NONE, self._on_signal, None)
        # A round trip makes sure the bus has our match rule.
        name_has_owner(conn)

    def _on_signal(self, conn, sender, path, interface, member, params, data):
        self.signals.append((interface, member, path, params.unpack()))

    def wait_for(self, predicate, timeout=10):
        ctx = GLib.MainContext.default()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while ctx.pending():
                ctx.iteration(False)
            found = [s for s in self.signals if predicate(s)]
            if found:
                return found
            time.sleep(0.01)
        raise AssertionError(f'signal not seen within {timeout}s; got {self.signals}')

    def close(self):
        self.conn.signal_unsubscribe(self.id)


class DaemonTestCase(unittest.TestCase):
    """One private bus and one daemon per test class."""

    daemon_args = ['--testbed=default']
    daemon_env = None
    with_polkit = False

    @classmethod
    def setUpClass(cls):
        # class cleanups run even when setUpClass fails half-way
        cls.bus = PrivateBus()
        cls.addClassCleanup(cls.bus.stop)
        cls.polkit = None
        if cls.with_polkit:
            cls.start_polkit()
        cls.daemon = Daemon(cls.bus, cls.daemon_args, cls.daemon_env)
        cls.conn = cls.bus.connect()

    @classmethod
    def restart_daemon(cls):
        """A new vfiomigd on the same bus, runtime and state directories;
        the old one is stopped if it still runs."""
        cls.daemon.stop()
        cls.daemon = Daemon(cls.bus, cls.daemon_args, cls.daemon_env)

    @classmethod
    def start_polkit(cls):
        import dbusmock  # pylint: disable=import-outside-toplevel
        cls.polkit_log = open(os.path.join(cls.bus.dir, 'polkit.log'), 'w', encoding='utf-8')
        cls.polkit, cls.polkit_obj = dbusmock.DBusTestCase.spawn_server_template(
            'polkitd', {}, stdout=cls.polkit_log, system_bus=True)
        cls.addClassCleanup(cls.stop_polkit)

    @classmethod
    def stop_polkit(cls):
        cls.polkit.terminate()
        cls.polkit.wait()
        cls.polkit_log.close()

    @classmethod
    def tearDownClass(cls):
        cls.conn.close_sync(None)
        rc = cls.daemon.stop()
        if rc not in (0, None):
            raise AssertionError(f'vfiomigd exited with {rc}')

    def tearDown(self):
        # Every test leaves a daemon that still serves.
        if not self.daemon.alive():
            self.fail('vfiomigd died:\n' + self.daemon.output())

    def call(self, method, signature=None, args=None, path=OBJECT_PATH, interface=MANAGER):
        params = GLib.Variant(signature, args) if signature else None
        reply = self.conn.call_sync(BUS_NAME, path, interface, method, params, None,
                                    Gio.DBusCallFlags.NONE, 10000, None)
        return reply.unpack()

    def assert_dbus_error(self, name, fn, *args, **kw):
        with self.assertRaises(GLib.Error) as cm:
            fn(*args, **kw)
        remote = Gio.DBusError.get_remote_error(cm.exception)
        self.assertEqual(remote, name, cm.exception.message)
        Gio.DBusError.strip_remote_error(cm.exception)
        return cm.exception.message

    def get_property(self, path, interface, name):
        return self.call('Get', '(ss)', (interface, name), path=path,
                         interface='org.freedesktop.DBus.Properties')[0]

    def devices(self):
        """ListDevices by name, each entry without its parent (the last
        field; parents() has them)."""
        return {d[0]: d[:8] for d in self.call('ListDevices')[0]}

    def parents(self):
        return {d[0]: d[8] for d in self.call('ListDevices')[0]}

    def types(self):
        """ListTypes by (parent, id): parent, id, name, available instances
        (device API and description left out)."""
        return {(t[0], t[1]): t[:4] for t in self.call('ListTypes')[0]}

    # the testbed backend's test interface

    def tb(self, method, signature=None, *args):
        return self.call(method, signature, args if signature else None, interface=TESTBED)

    def digest(self, name):
        return self.tb('GetDigest', '(s)', name)[0]

    def state(self, name):
        return self.tb('GetDeviceState', '(s)', name)[0]

    # jobs

    @staticmethod
    def outcomes(final):
        """What became of each device of a job: device name -> outcome."""
        return {d[0]: d[2] for d in final['Devices']}

    def start(self, method, signature, args):
        """Starts a job, subscribed to its end first."""
        rec = SignalRecorder(self.conn, member='MigrationRemoved')
        self.addCleanup(rec.close)
        props = SignalRecorder(self.conn, member='PropertiesChanged')
        self.addCleanup(props.close)
        job_id, path = self.call(method, signature, args)
        return {'id': job_id, 'path': path, 'removed': rec, 'props': props}

    def wait_job(self, job, timeout=60):
        """The result of MigrationRemoved, and the job's last properties."""
        sig = job['removed'].wait_for(lambda s: s[3][0] == job['id'], timeout)[0]
        final = {}
        for s in job['props'].signals:
            if s[2] == job['path'] and s[3][0] == MIGRATION:
                final.update(s[3][1])
        final['result'] = sig[3][2]
        return final


# A simulated host: one parent, simgpu, whose types tests pick from
# sim_type() and whose mdevs they add with sim_mdevs().
SIM_PARENT = '''
[Parent simgpu]
Driver=simgpu
'''

ALL_FLAGS = 'stop-copy,p2p,pre-copy'


def sim_type(type_id, state_size, flags=ALL_FLAGS, instances=16):
    """A [Type] of simgpu whose devices hold state_size bytes of state."""
    return f'''
[Type simgpu/{type_id}]
MaxInstances={instances}
MigrationFlags={flags}
StateSize={state_size}
'''


# small mdevs that migrate with every feature; tests add their devices
SIM_TESTBED = SIM_PARENT + sim_type('sim', '64K', instances=8)


def sim_uuid(n):
    return f'00000000-0000-4000-8000-{n:012d}'


def sim_mdevs(names, type_id='sim', extra=''):
    """[Device] sections for mdevs of simgpu's type_id, each with the
    extra lines (keys of its own), if any."""
    return ''.join(f'\n[Device {n}]\nKind=mdev\nParent=simgpu\nType={type_id}\n{extra}' for n in names)


class TestbedTestCase(DaemonTestCase):
    """A daemon on a testbed of the class's own (TESTBED), with its
    runtime and state directories in the class's temporary directory."""

    TESTBED = SIM_TESTBED

    @classmethod
    def more_args(cls):
        """Options beyond --testbed; cls.tmp exists when it is asked."""
        return []

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=f'vfiomig-{cls.__name__}-')
        conf = os.path.join(cls.tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(cls.TESTBED)
        cls.daemon_args = [f'--testbed={conf}', *cls.more_args()]
        cls.daemon_env = {'RUNTIME_DIRECTORY': os.path.join(cls.tmp, 'run'),
                          'STATE_DIRECTORY': os.path.join(cls.tmp, 'state')}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)


_HOLDER = '''
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(3600)
'''


def hold(testcase, node):
    """A process of its own holds a testbed device (its VfioDevNode,
    locked, as the kernel's EBUSY would have it) until the test ends or
    it is killed; returns it."""
    p = subprocess.Popen([sys.executable, '-c', _HOLDER, node], stdout=subprocess.PIPE, text=True)
    testcase.addCleanup(p.wait)
    testcase.addCleanup(p.kill)
    testcase.assertEqual(p.stdout.readline().strip(), 'held')
    return p


def main():
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))


def cannot_run(tests, reason):
    """For tests that need what a machine may lack (root, a package):
    exits 77, which meson counts as SKIP, with the reason; with CI=true,
    where nothing may skip, exits 1 instead."""
    if os.environ.get('CI') == 'true':
        print(f'FAIL: the {tests} tests cannot run here because {reason} (CI=true, so this is a failure)',
              file=sys.stderr)
        sys.exit(1)
    print(f'SKIP: the {tests} tests cannot run here because {reason}', file=sys.stderr)
    sys.exit(77)
