#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt's qemu hooks as a real libvirtd (Debian 12: libvirt 9.0) calls
them, on the build machine, without VFIO.

`virsh migrate --live DOM qemu+unix:///system?socket=...` passes virsh's
same-host check and reaches this libvirtd as the destination, which runs
its `migrate begin` hook with the incoming domain's XML before it notices
the source is itself. That is the call vfiomig's hook will answer (DESIGN.md
section 9); these tests pin down its calling convention with a recording
hook, and that a hook's refusal reaches the user and leaves the domain
running. Later the vfiomig hook program takes the recorder's place.

Needs root and libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients
and qemu-system-x86 (tests/deps.sh test). Where it cannot run, it exits 77
(meson: SKIP) with the reason on stderr; with CI=true that is a failure."""

import os
import signal
import sys
import time
import unittest
import xml.etree.ElementTree as ET

import libvirtd
from libvirtd import Libvirtd, RecordingHook, Unavailable
from vfiomigtest import cannot_run

HOOK = os.path.join(os.environ.get('VFIOMIG_BUILDDIR', 'build'), 'client', 'vfiomig-libvirt-hook')

DOMAIN = 'vfiomig-hooktest'
METADATA_NS = 'urn:vfiomig:test'
SAME_HOST = 'Attempt to migrate guest to the same host'
REFUSAL = 'vfiomig-test: this migration is refused on purpose'

# why the harness refused to start, when it did (outside CI: a skip)
unavailable = []


class LibvirtdHookTest(unittest.TestCase):
    """One libvirtd and one running domain for all tests; each test puts
    the hook it needs in place."""

    @classmethod
    def setUpClass(cls):
        cls.dir = libvirtd.workdir()    # removed at exit
        cls.recorder = RecordingHook(os.path.join(cls.dir, 'recorder'))
        cls.virt = Libvirtd(cls.dir, hook=cls.recorder.path)
        t0 = time.monotonic()
        try:
            cls.virt.start()
        except Unavailable as e:
            if os.environ.get('CI') == 'true':
                raise
            unavailable.append(str(e))
            raise unittest.SkipTest(str(e))
        cls.addClassCleanup(cls.virt.stop)
        cls.virt.start_domain(DOMAIN)
        print(f'\nlibvirtd answered after {cls.virt.timings["libvirtd"]:.1f} s, '
              f'domain running after {time.monotonic() - t0:.1f} s', flush=True)

    def setUp(self):
        self.assertEqual(self.virt.domain_state(DOMAIN), 'running')

    def migrate(self):
        t0 = time.monotonic()
        p = self.virt.virsh('migrate', '--live', DOMAIN, self.virt.migrate_uri())
        print(f'virsh migrate: {time.monotonic() - t0:.2f} s, exit status {p.returncode}: {p.stderr.strip()}',
              flush=True)
        return p

    def test_destination_hook_gets_the_migratable_xml(self):
        self.virt.set_hook(self.recorder.path)
        self.virt.check_virsh('metadata', '--live', DOMAIN, '--uri', METADATA_NS, '--key', 't',
                              '--set', '<t x="1"/>')
        before = len(self.recorder.calls())

        p = self.migrate()

        # the hook let it pass, and libvirtd then refused it as its own
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(SAME_HOST, p.stderr)
        self.assertEqual(p.stdout.strip(), '')
        calls = self.recorder.calls()[before:]
        self.assertEqual([c['argv'][1:] for c in calls], [[DOMAIN, 'migrate', 'begin', '-']],
                         'the migration calls the hook once, for migrate begin')
        call = calls[0]
        self.assertEqual(call['argv'][0], self.virt.hook_path)
        self.assertEqual(call['cwd'], '/')
        self.assertEqual(call['uid'], 0)
        # LC_ALL=C, and of libvirtd's own environment only PATH (HOME, USER,
        # LOGNAME, TMPDIR, LD_PRELOAD, LD_LIBRARY_PATH pass too when
        # libvirtd has them; under systemd it has not): LANG is dropped.
        self.assertIn('LANG', self.virt.env)
        self.assertEqual(call['env'], {'LC_ALL': 'C', 'PATH': self.virt.env['PATH']})

        domain = ET.fromstring(call['stdin'])
        self.assertEqual(domain.tag, 'domain')
        self.assertEqual(domain.findtext('name'), DOMAIN)
        self.assertNotIn('id', domain.attrib, 'the migratable XML, not the running domain\'s')
        mark = domain.find(f'metadata/{{{METADATA_NS}}}t')
        self.assertIsNotNone(mark, 'live metadata reaches the destination hook:\n' + call['stdin'].decode())
        self.assertEqual(mark.get('x'), '1')

    def test_refusing_hook_cancels_and_the_domain_runs_on(self):
        refuser = RecordingHook(os.path.join(self.dir, 'refuser'), fail_on=[('migrate', 'begin')],
                                fail_message=REFUSAL)
        self.virt.set_hook(refuser.path)
        self.addCleanup(self.virt.set_hook, self.recorder.path)
        qemu = self.virt.qemu_pid(DOMAIN)

        p = self.migrate()

        self.assertNotEqual(p.returncode, 0)
        self.assertIn(REFUSAL, p.stderr)
        self.assertIn('Hook script execution failed', p.stderr)
        self.assertNotIn(SAME_HOST, p.stderr)
        self.assertEqual(len(refuser.calls('migrate', 'begin')), 1)
        self.assertEqual(self.virt.domain_state(DOMAIN), 'running')
        self.assertEqual(self.virt.qemu_pid(DOMAIN), qemu)
        os.kill(qemu, 0)

    def test_vfiomigd_follows_libvirtd_across_a_restart(self):
        """vfiomigd indexes the running domains of a real libvirtd through
        its events on vfiomigd's own loop, and when libvirtd restarts it
        notices (the close callback), reconnects and indexes again."""
        from vfiomigtest import Daemon, PrivateBus  # pylint: disable=import-outside-toplevel
        bus = PrivateBus()
        self.addCleanup(bus.stop)
        uri = self.virt.migrate_uri()
        daemon = Daemon(bus, ['--testbed=default', f'--libvirt-uri={uri}'])
        self.addCleanup(daemon.stop)
        found = f'libvirt: {uri}, 1 running domains'

        def count(text):
            return daemon.output().count(text)

        deadline = time.monotonic() + 30
        while count(found) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(count(found), 1, daemon.output())
        self.virt.restart_libvirtd()
        deadline = time.monotonic() + 60
        while count(found) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertIn('connection to ' + uri + ' closed', daemon.output())
        self.assertEqual(count(found), 2, daemon.output())
        self.assertTrue(daemon.alive())
        self.assertEqual(self.virt.domain_state(DOMAIN), 'running')

    def test_vfiomig_hook_lets_a_domain_without_hostdevs_pass(self):
        """vfiomig's own hook in libvirtd's qemu.d: for a domain without VFIO
        devices it answers at once, prints nothing and lets the migration go
        on (to libvirt's own "same host" refusal here)."""
        trace = os.path.join(self.dir, 'trace')
        os.makedirs(trace, exist_ok=True)
        wrapper = os.path.join(self.dir, 'vfiomig-hook-traced')
        with open(wrapper, 'w', encoding='utf-8') as f:
            f.write(TRACE.format(dir=trace, hook=HOOK))
        os.chmod(wrapper, 0o755)
        self.virt.set_hook(wrapper)
        self.addCleanup(self.virt.set_hook, self.recorder.path)

        p = self.migrate()

        self.assertNotEqual(p.returncode, 0)
        self.assertIn(SAME_HOST, p.stderr)
        with open(os.path.join(trace, 'calls'), encoding='utf-8') as f:
            calls = f.read().splitlines()
        # called once, for migrate begin, exit 0, nothing on stdout
        self.assertEqual(calls, [f'{DOMAIN} migrate begin - 0 0'])


TRACE = """#!/bin/sh
# vfiomig-libvirt-hook as libvirtd runs it, with what it was given and
# what it answered kept in {dir}; no system bus, so a D-Bus call would fail
cat > {dir}/stdin.$$
DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent {hook} "$@" < {dir}/stdin.$$ > {dir}/stdout.$$ 2> {dir}/stderr.$$
rc=$?
echo "$* $rc $(wc -c < {dir}/stdout.$$)" >> {dir}/calls
cat {dir}/stdout.$$
cat {dir}/stderr.$$ >&2
exit $rc
"""


def main():
    reason = libvirtd.unavailable_reason()
    if reason:
        cannot_run('libvirtd', reason)
    # a runner's SIGTERM (meson's timeout) still stops libvirtd and the domain
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    prog = unittest.main(exit=False, testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
    if not prog.result.wasSuccessful():
        sys.exit(1)
    if unavailable:
        cannot_run('libvirtd', unavailable[0])
    sys.exit(0)


if __name__ == '__main__':
    main()
