#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""D-Bus activation from dbus/org.vfiomig1.service, idle exit, SIGTERM."""

import os
import signal
import subprocess
import time

from gi.repository import GLib

from vfiomigtest import (BUILDDIR, MANAGER, OBJECT_PATH, VFIOMIGCTL, VFIOMIGD, Daemon, PrivateBus, busctl, main,
                         name_has_owner, wait_until)
import unittest

SERVICE_FILE = os.path.join(BUILDDIR, 'tests', 'integration', 'services', 'org.vfiomig1.service')


def owner_pid(conn):
    reply = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                           'GetConnectionUnixProcessID', GLib.Variant('(s)', ('org.vfiomig1',)), None, 0, -1, None)
    return reply.unpack()[0]


class ActivationTest(unittest.TestCase):

    def setUp(self):
        self.bus = PrivateBus(servicedir=os.path.dirname(SERVICE_FILE))
        self.conn = self.bus.connect()

    def tearDown(self):
        self.conn.close_sync(None)
        self.bus.stop()

    def test_activated_by_first_call_and_exits_when_idle(self):
        with open(SERVICE_FILE, encoding='utf-8') as f:
            self.assertIn(f'Exec={VFIOMIGD} ', f.read())
        self.assertFalse(name_has_owner(self.conn))

        p = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListDevices')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith('a(sssssssss) '))
        pid = owner_pid(self.conn)
        self.assertTrue(os.path.exists(f'/proc/{pid}'))
        # the bus passed its environment on: this test's runtime directory,
        # not the machine's /run/vfiomig
        with open(f'/proc/{pid}/environ', 'rb') as f:
            environ = dict(v.split(b'=', 1) for v in f.read().split(b'\0') if b'=' in v)
        self.assertEqual(environ.get(b'RUNTIME_DIRECTORY'), self.bus.daemon_env['RUNTIME_DIRECTORY'].encode())
        self.assertEqual(environ.get(b'STATE_DIRECTORY'), self.bus.daemon_env['STATE_DIRECTORY'].encode())
        self.assertTrue(os.path.isdir(self.bus.daemon_env['RUNTIME_DIRECTORY']))

        # --idle-timeout=1: gone on its own, name released and process exited
        wait_until(lambda: not name_has_owner(self.conn), 15, 'idle exit')
        wait_until(lambda: not os.path.exists(f'/proc/{pid}') or
                   open(f'/proc/{pid}/stat').read().split()[2] == 'Z', 15, 'process exit')

        # and the next call starts it again
        p = busctl('get-property', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'Backend')
        self.assertEqual(p.stdout.strip(), 's "testbed"', p.stderr)

    def test_activity_postpones_idle_exit(self):
        busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListDevices', check=True)
        pid = owner_pid(self.conn)
        # keep calling for longer than the timeout: the same process answers
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'ListTypes', check=True)
            time.sleep(0.2)
        self.assertEqual(owner_pid(self.conn), pid)

    def test_monitor_survives_idle_exit(self):
        """monitor starts the daemon again when it leaves and reports what
        the new instance no longer has (the testbed forgets created mdevs)."""
        monitor = subprocess.Popen([VFIOMIGCTL, 'monitor'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        try:
            self.assertIn('Monitoring', monitor.stderr.readline())
            first = owner_pid(self.conn)
            uuid = busctl('call', 'org.vfiomig1', OBJECT_PATH, MANAGER, 'CreateMdev', 'sssa{sv}',
                          'mtty', 'mtty-1', '', '0', check=True).stdout.split('"')[1]
            self.assertEqual(monitor.stdout.readline().split(), ['added', uuid])
            # idle exit after 1 s; the monitor brings it back and resyncs
            self.assertEqual(monitor.stdout.readline().split(), ['removed', uuid])
            wait_until(lambda: name_has_owner(self.conn), 10, 'vfiomigd restarted by monitor')
            self.assertNotEqual(owner_pid(self.conn), first)
        finally:
            monitor.kill()
            monitor.wait()

    def test_config_file(self):
        conf = os.path.join(self.bus.dir, 'vfiomigd.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write('[Daemon]\nTestbed=default\nIdleTimeoutSec=1\nLogLevel=debug\n')
        d = Daemon(self.bus, ['--config=' + conf])
        self.assertEqual(d.proc.wait(15), 0)      # IdleTimeoutSec=1 made it leave
        self.assertIn('testbed backend', d.output())
        d.stop()

        for text, error in [('[Deamon]\nTestbed=default\n', 'vfiomigd.conf:1: [Deamon]: unknown section'),
                            ('[Daemon]\nLogLevel=loud\n', "vfiomigd.conf:2: [Daemon] LogLevel: 'loud'"),
                            ('[Daemon]\nIdleTimeoutSec=-1\n', 'vfiomigd.conf:2: [Daemon] IdleTimeoutSec'),
                            ('[Daemon]\nTestbd=default\n', 'vfiomigd.conf:2: [Daemon] Testbd: unknown key')]:
            with open(conf, 'w', encoding='utf-8') as f:
                f.write(text)
            p = subprocess.run([VFIOMIGD, '--config=' + conf], capture_output=True, text=True, timeout=10,
                               env={**os.environ, **self.bus.daemon_env})
            self.assertNotEqual(p.returncode, 0, text)
            self.assertIn(error, p.stderr)

    def test_sigterm_exits_cleanly(self):
        d = Daemon(self.bus, ['--testbed=default'])
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(10), 0)
        d.stop()


if __name__ == '__main__':
    main()
