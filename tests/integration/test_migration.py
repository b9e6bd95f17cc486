#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Migrations on the testbed: the real daemon moves the state of simulated
devices through real pipes, with faults injected in every phase.

Every failure case asserts what the issue asks: the job failed with the
right error, the source runs again, the target was reset and its state
(digest) is unchanged, and the daemon still serves."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import dbus
from gi.repository import Gio, GLib

from vfiomigtest import (MANAGER, MIGRATION, NOBODY, OBJECT_PATH, SIM_PARENT, TESTBED, VFIOMIGCTL, SignalRecorder,
                         TestbedTestCase, ctl, device_path, main, sim_mdevs, sim_type, wait_until)
from vfiomigtest import sim_uuid as uuid

ERR = 'org.vfiomig1.Error.'

# Eight 4 MiB devices with every feature, two without P2P, one of another
# type, one that shares the identity but whose "driver" refuses foreign
# data, and one big enough that a load outlasts its 64 MiB prefetch.
A = [uuid(i) for i in range(1, 5)]
B = [uuid(i) for i in range(11, 15)]
NOP2P = [uuid(21), uuid(22)]
OTHER = uuid(31)
PICKY = uuid(41)
BIG = [uuid(51), uuid(52)]

TESTBED_CONF = (SIM_PARENT + sim_type('sim-4m', '4M') + sim_type('sim-nop2p', '64K', 'stop-copy,pre-copy', 4) +
                sim_type('sim-other', '4M', instances=4) + sim_type('sim-big', '80M', 'stop-copy,p2p', 4) +
                sim_mdevs(A + B, 'sim-4m') + sim_mdevs(NOP2P, 'sim-nop2p') + sim_mdevs([OTHER], 'sim-other') +
                sim_mdevs([PICKY], 'sim-4m', 'VendorTag=mdev:sim-4m-firmware-2\n') + sim_mdevs(BIG, 'sim-big'))


def crc32c(data):
    """CRC-32C (Castagnoli), as the stream format uses it."""
    crc = 0xffffffff
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def stream_identity(data):
    """The migration type and version of a stream's header (see
    org.vfiomig1(5), STREAM FORMAT)."""
    header_len = int.from_bytes(data[10:12], 'little')
    assert crc32c(data[:header_len - 4]) == int.from_bytes(data[header_len - 4:header_len], 'little')
    strings, p = [], 24
    for _ in range(3):
        n = int.from_bytes(data[p:p + 2], 'little')
        strings.append(data[p + 2:p + 2 + n])
        p += 2 + n
    return strings[0], strings[1]


def with_identity(data, type_, version):
    """The stream with these identity strings and a header CRC to match."""
    header_len = int.from_bytes(data[10:12], 'little')
    p = 24
    for _ in range(2):
        p += 2 + int.from_bytes(data[p:p + 2], 'little')
    device = data[p:header_len - 4]                 # its length and bytes
    body = b''.join(len(s).to_bytes(2, 'little') + s for s in (type_, version)) + device
    new_len = 24 + len(body) + 4
    header = data[:10] + new_len.to_bytes(2, 'little') + data[12:24] + body
    return header + crc32c(header).to_bytes(4, 'little') + data[header_len:]

class MigrationTestCase(TestbedTestCase):
    """A daemon on a testbed of our own, with its runtime and state
    directories in the class's temporary directory."""

    TESTBED = TESTBED_CONF

    def setUp(self):
        # every device running and healthy, as a VMM's reset leaves it
        for name in A + B + NOP2P + [OTHER, PICKY] + BIG:
            self.tb('ClearFaults', '(s)', name)
            self.tb('SetDirtyRate', '(st)', name, 0)
            if self.state(name) != 'running':
                self.tb('Reset', '(s)', name)
        self.last_seq = max((a[0] for n in A + B for a in self.tb('GetTransitions', '(s)', n)[0]), default=0)

    def scramble(self, name):
        """Changes a device's state, so a migration into an equal one cannot
        pass unnoticed."""
        before = self.digest(name)
        self.tb('SetDirtyRate', '(st)', name, 1 << 30)
        wait_until(lambda: self.digest(name) != before, 5, f'{name} to change')
        self.tb('SetDirtyRate', '(st)', name, 0)

    def arcs(self, name):
        """This test's transitions of a device: (seq, from, to)."""
        return [a for a in self.tb('GetTransitions', '(s)', name)[0] if a[0] > self.last_seq]

    # helpers

    def fault(self, name, spec):
        self.tb('InjectFault', '(ss)', name, spec)

    def start_and_wait(self, method, signature, args, expect=None, timeout=60):
        final = self.wait_job(self.start(method, signature, args), timeout)
        if expect:
            self.assertEqual(final['result'], expect, final)
        return final

    def assert_rolled_back(self, final, source, target, target_digest, error):
        self.assertEqual(final['result'], 'failed', final)
        self.assertEqual(final['ErrorName'], ERR + error, final)
        self.assertEqual(self.state(source), 'running')
        self.assertEqual(self.state(target), 'running')
        self.assertEqual(self.digest(target), target_digest)
        outcomes = self.outcomes(final)
        self.assertTrue(outcomes[source] == 'running' or outcomes[source].startswith(('restored', 'reset to')),
                        outcomes)
        self.assertIn(outcomes[target], ('reset', 'untouched'), outcomes)
        # and the daemon still serves
        self.assertIn(source, self.devices())


class MigrateTest(MigrationTestCase):

    def test_migrate_without_precopy(self):
        src, tgt = A[0], B[0]
        self.scramble(src)
        before = self.digest(src)
        self.assertNotEqual(before, self.digest(tgt))
        rec = SignalRecorder(self.conn, member='MigrationNew')
        final = self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {'precopy': GLib.Variant('b', False)}),
                                    expect='done')
        rec.wait_for(lambda s: True)
        rec.close()
        self.assertEqual(self.digest(tgt), before)
        self.assertEqual((self.state(src), self.state(tgt)), ('stop', 'running'))
        self.assertEqual(final['PrecopyRounds'], 0)
        self.assertGreater(final['DowntimeUsec'], 0)
        self.assertEqual(final['Progress'], 1.0)
        self.assertGreaterEqual(final['BytesTransferred'], 4 * 1024 * 1024)
        self.assertEqual({d[0]: (d[1], d[2]) for d in final['Devices']},
                         {src: ('source', 'stop'), tgt: ('target', 'running')})
        # the registry follows the devices
        self.assertEqual(self.devices()[src][5], 'stop')

    def test_migrate_with_precopy_rounds(self):
        src, tgt = A[1], B[1]
        self.call('SetDirtyRate', '(st)', (src, 40 * 1024 * 1024), interface=TESTBED)
        rec = SignalRecorder(self.conn, member='ProgressUpdate')
        final = self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {
            'precopy-threshold': GLib.Variant('t', 64 * 1024),
            'max-precopy-rounds': GLib.Variant('u', 5)}), expect='done')
        rec.close()
        self.assertGreaterEqual(final['PrecopyRounds'], 1)
        self.assertLessEqual(final['PrecopyRounds'], 5)
        self.assertEqual(self.digest(tgt), self.digest(src))        # the source is stopped now
        # a dirtying device sends more than its size
        self.assertGreater(final['BytesTransferred'], 4 * 1024 * 1024)
        self.assertTrue(rec.signals, 'no ProgressUpdate')
        arcs = [(a[1], a[2]) for a in self.arcs(src)]
        self.assertIn(('running', 'pre-copy'), arcs)
        self.assertIn(('pre-copy-p2p', 'stop-copy'), arcs)

    def test_target_state_stop(self):
        src, tgt = A[2], B[2]
        before = self.digest(src)
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {'target-state': GLib.Variant('s', 'stop')}),
                            expect='done')
        self.assertEqual((self.state(src), self.state(tgt)), ('stop', 'stop'))
        self.assertEqual(self.digest(tgt), before)

    def test_ctl_migrate(self):
        src, tgt = A[3], B[3]
        before = self.digest(src)
        p = ctl('--json', 'migrate', src, tgt)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out['result'], 'done')
        self.assertEqual(self.digest(tgt), before)
        # and back, watching the plain progress lines
        p = ctl('migrate', tgt, src)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('stopcopy', p.stderr)
        self.assertRegex(p.stderr, r'Migration \d+ done')

    def test_group_of_three_reaches_p2p_before_stopping(self):
        pairs = list(zip(A[:3], B[:3]))
        before = {s: self.digest(s) for s, _ in pairs}
        devices = GLib.Variant('as', [f'{s}={t}' for s, t in pairs[1:]])
        final = self.start_and_wait('Migrate', '(ssa{sv})', (pairs[0][0], pairs[0][1], {'devices': devices}),
                                    expect='done')
        self.assertEqual(len(final['Devices']), 6)
        for s, t in pairs:
            self.assertEqual(self.digest(t), before[s])
            self.assertEqual((self.state(s), self.state(t)), ('stop', 'running'))
        quiesced = [seq for s, _ in pairs for seq, f, to in self.arcs(s) if to in ('pre-copy-p2p', 'running-p2p')]
        stopped = [seq for s, _ in pairs for seq, f, to in self.arcs(s) if to in ('stop-copy', 'stop')]
        self.assertEqual(len(quiesced), 3)
        self.assertLess(max(quiesced), min(stopped), 'a source stopped before all were in P2P')

    def test_group_without_p2p_needs_consent(self):
        msg = self.assert_dbus_error(ERR + 'NotMigratable', self.call, 'Migrate', '(ssa{sv})',
                                     (NOP2P[0], NOP2P[1], {'devices': GLib.Variant('as', [f'{A[0]}={B[0]}'])}))
        self.assertIn('P2P', msg)
        self.assertEqual(self.state(NOP2P[0]), 'running')
        self.assertFalse(self.call('ListMigrations')[0])

    def test_refused_before_anything_changes(self):
        cases = [
            ((A[0], OTHER, {}), 'Incompatible', 'sim-other'),
            ((A[0], A[0], {}), 'InvalidArgument', 'more than once'),
            ((A[0], uuid(99), {}), 'NoSuchDevice', uuid(99)),
            ((A[0], B[0], {'devices': GLib.Variant('as', ['nonsense'])}), 'InvalidArgument', 'SOURCE=TARGET'),
            ((A[0], B[0], {'target-state': GLib.Variant('s', 'paused')}), 'InvalidArgument', 'paused'),
            ((A[0], B[0], {'precopy': GLib.Variant('s', 'yes')}), 'InvalidArgument', 'type'),
            ((A[0], B[0], {'io-timeout': GLib.Variant('u', 0)}), 'InvalidArgument', 'io-timeout'),
        ]
        digests = {n: self.digest(n) for n in (A[0], B[0], OTHER)}
        for args, error, text in cases:
            with self.subTest(args=args):
                msg = self.assert_dbus_error(ERR + error, self.call, 'Migrate', '(ssa{sv})', args)
                self.assertIn(text, msg)
        for n, d in digests.items():
            self.assertEqual((self.digest(n), self.state(n)), (d, 'running'))

    def test_cancel_after_the_point_of_no_return_is_refused(self):
        src, tgt = A[0], B[0]
        before = self.digest(src)
        # the target takes its time to start: the job sits in finishing
        self.fault(tgt, 'transition from=stop to=running-p2p delay=800 errno=0')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == 'finishing', 10, 'finishing')
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Cancel', path=job['path'], interface=MIGRATION)
        self.assertIn('can no longer be cancelled', msg)
        final = self.wait_job(job)
        self.assertEqual((final['result'], final['Error']), ('done', ''))
        self.assertEqual(self.digest(tgt), before)

    def test_registry_follows_the_devices(self):
        src, tgt = A[1], B[1]
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}), expect='done')
        self.assertEqual((self.devices()[src][5], self.devices()[tgt][5]), ('stop', 'running'))
        self.tb('Reset', '(s)', src)
        self.assertEqual(self.devices()[src][5], 'running')

    def test_busy_device(self):
        self.fault(A[0], 'stall after=0')
        job = self.start('Migrate', '(ssa{sv})', (A[0], B[0], {}))
        try:
            msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Migrate', '(ssa{sv})', (A[0], B[1], {}))
            self.assertIn(A[0], msg)
            self.assertTrue(self.get_property(device_path(A[0]), 'org.vfiomig1.Device', 'Busy'))
            self.assertEqual([j[0] for j in self.call('ListMigrations')[0]], [job['id']])
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.tb('ClearFaults', '(s)', A[0])
            final = self.wait_job(job)
        self.assertEqual(final['result'], 'cancelled')
        self.assertEqual((self.state(A[0]), self.state(B[0])), ('running', 'running'))
        self.assertFalse(self.call('ListMigrations')[0])


class ClientTest(MigrationTestCase):
    """vfiomigctl's job commands, as a script uses them."""

    def test_no_wait_migrations_wait_and_cancel(self):
        src, tgt = A[0], B[0]
        self.fault(src, 'stall after=0')
        p = ctl('--no-wait', 'migrate', src, tgt)
        self.assertEqual(p.returncode, 0, p.stderr)
        job_id = int(p.stdout)
        listing = json.loads(ctl('--json', 'migrations', check=True).stdout)
        self.assertEqual([(j['id'], j['kind'], j['source'], j['target']) for j in listing],
                         [(job_id, 'migrate', src, tgt)])
        self.assertIn(str(job_id), ctl('migrations', check=True).stdout)
        waiter = subprocess.Popen([VFIOMIGCTL, '--json', 'wait', str(job_id)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        self.assertIsNone(waiter.poll())
        self.assertEqual(ctl('cancel', str(job_id)).returncode, 0)
        out, err = waiter.communicate(timeout=20)
        self.assertEqual(waiter.returncode, 1, err)         # Cancelled: a failure for scripts
        result = json.loads(out)
        self.assertEqual((result['result'], result['error_name']), ('cancelled', ERR + 'Cancelled'))
        self.assertEqual({d['name']: d['role'] for d in result['devices']}, {src: 'source', tgt: 'target'})
        self.assertEqual(self.state(src), 'running')

    def test_unknown_jobs(self):
        self.assertEqual(ctl('wait', '4242').returncode, 3)
        self.assertEqual(ctl('cancel', '4242').returncode, 3)
        self.assertEqual(ctl('cancel', 'abc').returncode, 2)

    def test_exit_codes_of_refusals(self):
        self.assertEqual(ctl('migrate', A[0], OTHER).returncode, 1)          # Incompatible
        self.assertEqual(ctl('migrate', A[0], uuid(99)).returncode, 3)       # NoSuchDevice
        self.assertEqual(ctl('migrate', A[0]).returncode, 2)                 # usage
        self.assertEqual(ctl('--target-state=paused', 'migrate', A[0], B[0]).returncode, 2)
        p = ctl('migrate', NOP2P[0], NOP2P[1], f'--pair={A[0]}={B[0]}')
        self.assertEqual(p.returncode, 1)
        self.assertIn('allow-no-p2p', p.stderr)
        saved = subprocess.run([VFIOMIGCTL, 'save', A[0], '-'], capture_output=True, timeout=60)
        self.assertEqual(saved.returncode, 0, saved.stderr)
        self.assertTrue(saved.stdout.startswith(b'VFIOMIG\x01'))        # the stream, nothing else
        self.tb('Reset', '(s)', A[0])

    def test_failed_job_exit_code_and_report(self):
        self.fault(B[0], 'transition from=resuming to=stop errno=EINVAL')
        p = ctl('migrate', A[0], B[0])
        self.assertEqual(p.returncode, 1)
        self.assertIn('resuming -> stop failed', p.stderr)
        self.assertIn(f'source {A[0]}: restored to running', p.stderr)
        self.assertIn(f'target {B[0]}: reset', p.stderr)

    def test_progress_bar_on_a_terminal(self):
        src, tgt = A[1], B[1]
        # script(1) gives the client a terminal on stderr
        p = subprocess.run(['script', '-qec', f'{VFIOMIGCTL} migrate {src} {tgt}', '/dev/null'],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout)
        # redrawn in place; each phase (or pre-copy round) counts its own
        # bytes next to the job's, which reach all 4 MiB by the end (a short
        # pre-copy may come and go between two updates: test_client's
        # MessagesTest sees its rounds on a device that keeps dirtying)
        self.assertRegex(p.stdout, rb'\r(pre-copy round \d+|stop-?copy|preparing)[^\r]*: [\d.]+ (B|KiB|MiB) '
                                   rb'this (round|phase), [\d.]+ (B|KiB|MiB) in all')
        self.assertRegex(p.stdout, rb'\r[^\r]*this phase, 4\.0 MiB in all')
        self.assertRegex(p.stdout, rb'Migration \d+ done')


class FaultTest(MigrationTestCase):
    """Injected faults in every phase; each run rolls back completely."""

    def run_fault(self, source_faults=(), target_faults=(), options=None, error='DeviceFailed', text=None):
        src, tgt = A[0], B[0]
        target_digest = self.digest(tgt)
        for f in source_faults:
            self.fault(src, f)
        for f in target_faults:
            self.fault(tgt, f)
        final = self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, options or {}))
        self.tb('ClearFaults', '(s)', src)
        self.tb('ClearFaults', '(s)', tgt)
        self.assert_rolled_back(final, src, tgt, target_digest, error)
        if text:
            self.assertIn(text, final['Error'])
        return final

    # preparing
    def test_target_refuses_resuming(self):
        self.run_fault(target_faults=['transition to=resuming errno=EBUSY'], text='stop -> resuming')

    # pre-copy
    def test_source_refuses_precopy(self):
        self.run_fault(source_faults=['transition from=running to=pre-copy errno=EIO'], text='running -> pre-copy')

    def test_precopy_info_fails(self):
        self.run_fault(source_faults=['precopy-info errno=EIO'], text='PRECOPY_INFO')

    def test_read_error_in_precopy(self):
        self.run_fault(source_faults=['read-error after=100000'], text='reading the device state')

    def test_write_error_in_precopy(self):
        self.run_fault(target_faults=['write-error after=200000'], text='writing the device state')

    # stop-copy
    def test_source_refuses_stop_copy(self):
        self.run_fault(source_faults=['transition to=stop-copy errno=EIO'], text='-> stop-copy')

    def test_read_error_in_stop_copy(self):
        self.run_fault(source_faults=['read-error after=3000000'], options={'precopy': GLib.Variant('b', False)},
                       text='reading the device state')

    def test_source_lands_in_error(self):
        final = self.run_fault(source_faults=['transition to=stop-copy errno=EIO land=error'])
        self.assertIn('reset to running (was error)', self.outcomes(final)[A[0]])

    def test_recovery_set_fails_then_reset(self):
        # forward fails at stop-copy; the way back to running fails too
        final = self.run_fault(source_faults=['transition to=stop-copy errno=EIO',
                                              'transition from=pre-copy-p2p to=running-p2p errno=EIO'])
        self.assertIn('reset to running', self.outcomes(final)[A[0]])

    def test_stalled_source_times_out(self):
        self.run_fault(source_faults=['stall after=1000000'], options={'io-timeout': GLib.Variant('u', 1)},
                       text='no progress for 1 s')

    # resuming
    def test_target_rejects_the_data(self):
        self.run_fault(target_faults=['transition from=resuming to=stop errno=EINVAL'], text='resuming -> stop')

    def test_driver_refuses_foreign_vendor_data(self):
        src, tgt = A[0], PICKY
        target_digest = self.digest(tgt)
        final = self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}))
        self.assert_rolled_back(final, src, tgt, target_digest, 'DeviceFailed')
        self.assertTrue('refused the data' in final['Error'] or 'resuming -> stop' in final['Error'], final['Error'])

    # finishing
    def test_target_does_not_start(self):
        self.run_fault(target_faults=['transition from=stop to=running-p2p errno=EIO'], text='stop -> running-p2p')

    def test_target_reset_fails(self):
        src, tgt = A[0], B[0]
        self.fault(tgt, 'transition from=resuming to=stop errno=EINVAL')
        self.fault(tgt, 'reset errno=EIO count=1')
        final = self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}))
        self.assertEqual(final['result'], 'failed')
        self.assertEqual(self.state(src), 'running')
        outcome = self.outcomes(final)[tgt]
        self.assertTrue(outcome.startswith('reset failed'), outcome)
        self.assertEqual(self.state(tgt), 'resuming')      # reported, not hidden

    def test_short_io_still_succeeds(self):
        src, tgt = A[0], B[0]
        before = self.digest(src)
        self.fault(src, 'short-io chunk=4093')
        self.fault(tgt, 'short-io chunk=777')
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}), expect='done')
        self.assertEqual(self.digest(tgt), before)


class CancelTest(MigrationTestCase):

    def cancel_in(self, phase, source_faults, options=None):
        src, tgt = A[0], B[0]
        target_digest = self.digest(tgt)
        for f in source_faults:
            self.fault(src, f)
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, options or {}))
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == phase, 10, phase)
        self.call('Cancel', path=job['path'], interface=MIGRATION)
        final = self.wait_job(job)
        self.assertEqual(final['result'], 'cancelled')
        self.assertEqual(final['ErrorName'], ERR + 'Cancelled')
        self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))
        self.assertEqual(self.digest(tgt), target_digest)

    def test_cancel_in_precopy(self):
        self.cancel_in('precopy', ['stall after=0'])

    def test_cancel_in_stopcopy(self):
        self.cancel_in('stopcopy', ['stall after=0'], {'precopy': GLib.Variant('b', False)})

    def test_cancel_load_while_preparing_and_resuming(self):
        """A load cancelled before and after the target entered RESUMING:
        either way the target runs with its old state."""
        tgt = BIG[1]
        data = self.save_to_bytes(BIG[0])
        self.assertGreater(len(data), 80 * 1024 * 1024)
        before = self.digest(tgt)
        # 100 bytes: not even the header is complete; 70 MiB: past the 64 MiB
        # the daemon verifies before touching the device
        for phase, amount in [('preparing', 100), ('resuming', 70 * 1024 * 1024)]:
            with self.subTest(phase=phase):
                r, w = os.pipe()
                writer = threading.Thread(target=write_all, args=(w, data[:amount]))
                job = self.start_with_fd('LoadFd', tgt, r)
                os.close(r)
                writer.start()
                wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == phase, 20, phase)
                self.call('Cancel', path=job['path'], interface=MIGRATION)
                final = self.wait_job(job)
                writer.join()
                os.close(w)
                self.assertEqual(final['result'], 'cancelled')
                self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', before))


def write_all(fd, data):
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except BrokenPipeError:
        pass


class StreamTestMixin:
    """Save and load with file descriptors, through Gio's fd passing."""

    def start_with_fd(self, method, device, fd, options=None):
        rec = SignalRecorder(self.conn, member='MigrationRemoved')
        self.addCleanup(rec.close)
        props = SignalRecorder(self.conn, member='PropertiesChanged')
        self.addCleanup(props.close)
        fds = Gio.UnixFDList.new()
        index = fds.append(fd)
        reply, _ = self.conn.call_with_unix_fd_list_sync(
            'org.vfiomig1', OBJECT_PATH, MANAGER, method,
            GLib.Variant('(sha{sv})', (device, index, options or {})), None, Gio.DBusCallFlags.NONE, 10000, fds, None)
        job_id, path = reply.unpack()
        return {'id': job_id, 'path': path, 'removed': rec, 'props': props}

    def save_to_bytes(self, device):
        r, w = os.pipe()
        job = self.start_with_fd('SaveFd', device, w, {'source-state': GLib.Variant('s', 'running')})
        os.close(w)
        chunks = []
        while (chunk := os.read(r, 1 << 20)):
            chunks.append(chunk)
        os.close(r)
        self.assertEqual(self.wait_job(job)['result'], 'done')
        return b''.join(chunks)

    def load_bytes(self, device, data, options=None):
        r, w = os.pipe()
        job = self.start_with_fd('LoadFd', device, r, options)
        os.close(r)
        writer = threading.Thread(target=write_all, args=(w, data))
        writer.start()
        writer.join()
        os.close(w)
        return self.wait_job(job)


CancelTest.__bases__ = (StreamTestMixin, MigrationTestCase)


class SaveLoadTest(StreamTestMixin, MigrationTestCase):

    def test_round_trip_through_a_file(self):
        src, tgt = A[0], B[0]
        before = self.digest(src)
        final = self.start_and_wait('Save', '(ssa{sv})', (src, 'snapshot-1', {}), expect='done')
        path = os.path.join(self.tmp, 'state', 'states', 'snapshot-1')
        self.assertTrue(os.path.exists(path))
        self.assertFalse(os.path.exists(path + '.partial'))
        self.assertEqual(self.state(src), 'stop')
        self.assertGreater(os.path.getsize(path), 4 * 1024 * 1024)
        self.assertEqual(final['BytesTransferred'], 4 * 1024 * 1024 + 1024 * 8 + 26 + len('mdev:sim-4m'))
        self.start_and_wait('Load', '(ssa{sv})', (tgt, 'snapshot-1', {}), expect='done')
        self.assertEqual((self.digest(tgt), self.state(tgt)), (before, 'running'))
        # a name is taken once
        self.assert_dbus_error(ERR + 'AlreadyExists', self.call, 'Save', '(ssa{sv})', (tgt, 'snapshot-1', {}))

    def test_round_trip_through_pipes_with_ctl(self):
        src, tgt = A[1], B[1]
        before = self.digest(src)
        p = subprocess.run(f'{VFIOMIGCTL} save {src} - | {VFIOMIGCTL} load {tgt} -', shell=True,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.digest(tgt), before)

    def test_round_trip_through_a_socket(self):
        src, tgt = A[2], B[2]
        before = self.digest(src)
        a, b = socket.socketpair()
        job = self.start_with_fd('SaveFd', src, a.fileno())
        a.close()
        data = b''
        while (chunk := b.recv(1 << 20)):
            data += chunk
        b.close()
        self.assertEqual(self.wait_job(job)['result'], 'done')
        a, b = socket.socketpair()
        job = self.start_with_fd('LoadFd', tgt, b.fileno())
        b.close()
        a.sendall(data)
        a.close()
        self.assertEqual(self.wait_job(job)['result'], 'done')
        self.assertEqual(self.digest(tgt), before)

    def corrupt_cases(self, data):
        flip = bytearray(data)
        flip[len(data) // 2] ^= 0x10            # inside a payload
        header_flip = bytearray(data)
        header_flip[30] ^= 0x01                 # inside the header
        return [
            ('payload bit flip', bytes(flip), 'StreamCorrupt'),
            ('header bit flip', bytes(header_flip), 'StreamCorrupt'),
            ('truncated mid-record', data[:len(data) // 2], 'StreamCorrupt'),
            ('truncated before END', data[:-40], 'StreamCorrupt'),
            ('trailing garbage', data + b'\0', 'StreamCorrupt'),
            ('format version 3', data[:8] + b'\x03' + data[9:], 'Incompatible'),
            ('not a stream', b'hello world\n' * 100, 'StreamCorrupt'),
            ('empty', b'', 'StreamCorrupt'),
        ]

    def test_corrupt_streams_load_nothing(self):
        data = self.save_to_bytes(A[3])
        tgt = B[3]
        before = self.digest(tgt)
        for name, bad, error in self.corrupt_cases(data):
            with self.subTest(case=name):
                final = self.load_bytes(tgt, bad)
                self.assertEqual(final['result'], 'failed', name)
                self.assertEqual(final['ErrorName'], ERR + error, final['Error'])
                self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', before), name)
                # verified whole before the device saw a byte: untouched
                self.assertEqual(self.outcomes(final)[tgt], 'untouched')
                self.assertFalse([a for a in self.arcs(tgt) if a[2] == 'resuming'], name)
        # and the intact stream still loads
        self.assertEqual(self.load_bytes(tgt, data)['result'], 'done')

    def test_unprefetched_load_takes_records_as_they_come(self):
        """prefetch false: the target enters RESUMING after the header and
        takes what has come, while the writer has not sent the rest."""
        src, tgt = A[0], B[0]
        data = self.save_to_bytes(src)
        r, w = os.pipe()
        job = self.start_with_fd('LoadFd', tgt, r, {'prefetch': GLib.Variant('b', False)})
        os.close(r)
        write_all(w, data[:1 << 20])        # a quarter, and the daemon reads as it comes
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == 'resuming' and
                   self.get_property(job['path'], MIGRATION, 'BytesTransferred') > 0, 20, 'data in the target')
        write_all(w, data[1 << 20:])
        os.close(w)
        self.assertEqual(self.wait_job(job)['result'], 'done')
        self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', self.digest(src)))

    def test_unprefetched_corrupt_streams_load_nothing(self):
        """prefetch false: damage behind the header fails the load after
        the target has taken part of the stream, and it is reset; it never
        leaves RESUMING for STOP, so nothing is loaded."""
        data = self.save_to_bytes(A[3])
        tgt = B[3]
        before = self.digest(tgt)
        behind_the_header = {'payload bit flip', 'truncated mid-record', 'truncated before END', 'trailing garbage'}
        for name, bad, error in self.corrupt_cases(data):
            with self.subTest(case=name):
                seen = len(self.tb('GetTransitions', '(s)', tgt)[0])
                final = self.load_bytes(tgt, bad, {'prefetch': GLib.Variant('b', False)})
                self.assertEqual(final['result'], 'failed', name)
                self.assertEqual(final['ErrorName'], ERR + error, final['Error'])
                self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', before), name)
                arcs = [a[1:] for a in self.tb('GetTransitions', '(s)', tgt)[0][seen:]]
                self.assertNotIn(('resuming', 'stop'), arcs, name)
                if name in behind_the_header:
                    self.assertIn(('stop', 'resuming'), arcs, name)
                    self.assertNotEqual(self.outcomes(final)[tgt], 'untouched', name)
                else:
                    self.assertEqual(self.outcomes(final)[tgt], 'untouched', name)
        self.assertEqual(self.load_bytes(tgt, data, {'prefetch': GLib.Variant('b', False)})['result'], 'done')

    def test_hostile_identity_in_a_sound_stream(self):
        """A stream whose CRCs are right but whose identity strings are no
        migration type or version (newlines, control or non-ASCII bytes)
        is refused as corrupt: such strings would be written into drivers'
        migration_version attributes."""
        data = self.save_to_bytes(A[0])
        tgt = B[0]
        fields = stream_identity(data)
        # the rebuilt header itself is sound: the same strings load
        self.assertEqual(self.load_bytes(tgt, with_identity(data, *fields))['result'], 'done')
        before = self.digest(tgt)
        for what, type_, version in [('type with a newline', b'mdev:sim\nx', b''),
                                     ('type with DEL', fields[0] + b'\x7f', b''),
                                     ('empty type', b'', b''),
                                     ('version with a newline', fields[0], b'1.0\n2.0'),
                                     ('non-ASCII version', fields[0], 'é'.encode())]:
            with self.subTest(case=what):
                final = self.load_bytes(tgt, with_identity(data, type_, version))
                self.assertEqual((final['result'], final['ErrorName']), ('failed', ERR + 'StreamCorrupt'), final)
                self.assertIn('printable ASCII', final['Error'])
                self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', before), what)
                self.assertEqual(self.outcomes(final)[tgt], 'untouched')

    def test_stream_of_another_type_is_incompatible(self):
        data = self.save_to_bytes(OTHER)
        tgt = B[0]
        before = self.digest(tgt)
        final = self.load_bytes(tgt, data)
        self.assertEqual(final['ErrorName'], ERR + 'Incompatible')
        self.assertIn('sim-other', final['Error'])
        self.assertEqual((self.state(tgt), self.digest(tgt)), ('running', before))

    def test_concurrent_saves_under_one_name(self):
        """Both pass the call's check; one publishes, the other fails
        AlreadyExists and puts its source back."""
        # neither may publish before both calls are in, even on a busy machine
        for n in (A[0], A[1]):
            self.fault(n, 'transition to=stop-copy delay=300 errno=0')
        jobs = [self.start('Save', '(ssa{sv})', (n, 'twin', {})) for n in (A[0], A[1])]
        results = sorted(self.wait_job(j)['result'] for j in jobs)
        self.assertEqual(results, ['done', 'failed'])
        self.assertEqual(sorted(self.state(n) for n in (A[0], A[1])), ['running', 'stop'])
        states = os.listdir(os.path.join(self.tmp, 'state', 'states'))
        self.assertNotIn(True, [n.endswith('.partial') for n in states], states)
        self.call('Resume', '(sa{sv})', (A[0], {}))
        self.call('Resume', '(sa{sv})', (A[1], {}))
        self.start_and_wait('Load', '(ssa{sv})', (B[0], 'twin', {}), expect='done')

    def test_failed_publish_is_a_failed_save(self):
        path = os.path.join(self.tmp, 'state', 'states', 'late')
        self.fault(A[2], 'transition to=stop-copy delay=600 errno=0')
        job = self.start('Save', '(ssa{sv})', (A[2], 'late', {}))
        os.makedirs(path)               # someone takes the name meanwhile
        try:
            final = self.wait_job(job)
        finally:
            os.rmdir(path)
        self.assertEqual((final['result'], final['ErrorName']), ('failed', ERR + 'AlreadyExists'))
        self.assertEqual(self.state(A[2]), 'running')

    def test_json_of_save_to_stdout_goes_to_stderr(self):
        p = subprocess.run([VFIOMIGCTL, '--json', '--source-state=running', 'save', A[3], '-'], capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b'VFIOMIG\x01'))
        self.assertEqual(json.loads(p.stderr)['result'], 'done')

    def test_write_error_on_the_stream(self):
        src = A[0]
        r, w = os.pipe()
        os.close(r)                     # nobody reads: EPIPE
        job = self.start_with_fd('SaveFd', src, w)
        os.close(w)
        final = self.wait_job(job)
        self.assertEqual(final['result'], 'failed')
        self.assertEqual(self.state(src), 'running')

    def test_hostile_file_names(self):
        for name in ['../escape', '.hidden', 'a/b', '', '/etc/passwd', 'x' * 300, 'new\nline']:
            with self.subTest(name=name):
                msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'Save', '(ssa{sv})',
                                             (A[0], name, {}))
                self.assertIn('plain file name', msg)
                self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'Load', '(ssa{sv})', (B[0], name, {}))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'escape')))
        self.assertEqual(self.state(A[0]), 'running')
        msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'Load', '(ssa{sv})', (B[0], 'nothere', {}))
        self.assertIn('nothere', msg)


class CrashRecoveryTest(MigrationTestCase):

    def test_sigkill_mid_migration_restores_running(self):
        src, tgt = A[0], B[0]
        target_digest = self.digest(tgt)
        self.fault(src, 'stall after=100000')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {'precopy': GLib.Variant('b', False)}))
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == 'stopcopy', 10, 'stop-copy')
        wait_until(lambda: self.state(src) == 'stop-copy' and self.state(tgt) == 'resuming', 10, 'mid-migration')
        journal = os.listdir(os.path.join(self.tmp, 'run'))
        self.assertIn(f'migration-{job["id"]}.journal', journal)

        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        self.restart_daemon()

        self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))
        self.assertEqual(self.digest(tgt), target_digest)
        log = self.daemon.output()
        self.assertIn(f'Migration {job["id"]} was interrupted by a daemon restart: source {src}', log)
        self.assertIn(f'target {tgt} reset', log)
        self.assertNotIn(f'migration-{job["id"]}.journal', os.listdir(os.path.join(self.tmp, 'run')))
        # new jobs do not reuse the interrupted job's id
        new = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        self.assertGreater(new['id'], job['id'])
        self.assertEqual(self.wait_job(new)['result'], 'done')
        self.assertEqual(self.digest(tgt), self.digest(src))


CANCEL_SCRIPT = """
import sys
from gi.repository import Gio, GLib
conn = Gio.DBusConnection.new_for_address_sync(sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
def call(path, iface, method, args=None):
    return conn.call_sync('org.vfiomig1', path, iface, method, args, None, 0, 10000, None).unpack()
if sys.argv[2] == 'own':
    jid, path = call('/org/vfiomig1', 'org.vfiomig1.Manager', 'Migrate',
                     GLib.Variant('(ssa{sv})', (sys.argv[3], sys.argv[4], {})))
    call(path, 'org.vfiomig1.Migration', 'Cancel')
    print('cancelled own', jid)
else:
    try:
        call(sys.argv[3], 'org.vfiomig1.Migration', 'Cancel')
        print('cancelled other')
    except GLib.Error as e:
        print('denied:', e.message)
"""


class CancelPermissionTest(MigrationTestCase):
    with_polkit = True

    def run_as_nobody(self, *args):
        return subprocess.run([*NOBODY, '/usr/bin/python3', '-c', CANCEL_SCRIPT, self.bus.address, *args],
                              capture_output=True, text=True, timeout=30)

    def test_only_the_caller_or_polkit_may_cancel(self):
        src, tgt = A[0], B[0]
        # the caller cancels its own job without asking polkit for it
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.fault(src, 'stall after=0')
        p = self.run_as_nobody('own', src, tgt)
        self.assertIn('cancelled own', p.stdout, p.stderr)
        wait_until(lambda: not self.call('ListMigrations')[0], 10, 'job gone')
        self.assertEqual(self.state(src), 'running')

        # someone else's job: denied until polkit allows
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        p = self.run_as_nobody('other', job['path'])
        self.assertIn('denied', p.stdout, p.stderr)
        self.assertIn('not authorized for org.vfiomig1.migrate', p.stdout)
        self.assertEqual(self.get_property(job['path'], MIGRATION, 'Phase'), 'precopy')
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        p = self.run_as_nobody('other', job['path'])
        self.assertIn('cancelled other', p.stdout, p.stderr)
        self.assertEqual(self.wait_job(job)['result'], 'cancelled')
        self.assertEqual(self.state(src), 'running')


if __name__ == '__main__':
    main()
