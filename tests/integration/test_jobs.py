#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A job's life beyond its happy path: what it holds cannot be removed
under it, its outcome outlives it, its id is never reused, a client's fd
is used with the rights the client gave, Resume brings a stopped device
back, and a daemon killed at any point leaves every device where the
documentation says."""

import fcntl
import os
import random
import signal
import time

from gi.repository import GLib

from test_migration import A, B, BIG, ERR, MigrationTestCase, StreamTestMixin
from vfiomigtest import MIGRATION, ctl, device_path, main, wait_until

DEVICE = 'org.vfiomig1.Device'


class HeldDeviceTest(MigrationTestCase):

    def test_remove_mdev_of_a_device_a_job_holds_is_busy(self):
        """RemoveMdev used to free the simulated device under the worker,
        which then crashed the daemon in its rollback."""
        src, tgt = A[0], B[0]
        self.fault(src, 'stall after=0')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        try:
            for name in (src, tgt):
                msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'RemoveMdev', '(sa{sv})', (name, {}))
                self.assertIn(f'{name} is held by migration {job["id"]}', msg)
            p = ctl('remove-mdev', src)
            self.assertEqual(p.returncode, 5, p.stderr)
            self.assertIn(f'migration {job["id"]}', p.stderr)
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.tb('ClearFaults', '(s)', src)
            final = self.wait_job(job)
        self.assertEqual(final['result'], 'cancelled')
        self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))
        self.assertIn(src, self.devices())
        self.assertFalse(self.get_property(device_path(src), DEVICE, 'Busy'))


class EndedJobTest(MigrationTestCase):

    def test_outcome_stays_after_the_end(self):
        src, tgt = A[1], B[1]
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        self.assertEqual(self.wait_job(job)['result'], 'done')
        # gone from the list of running jobs, not from the bus
        self.assertEqual(self.call('ListMigrations')[0], [])
        self.assertEqual(self.get_property(job['path'], MIGRATION, 'Phase'), 'done')
        self.assertEqual(self.get_property(job['path'], MIGRATION, 'Progress'), 1.0)
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Cancel', path=job['path'], interface=MIGRATION)
        self.assertIn('has ended (done)', msg)
        self.call('Resume', '(sa{sv})', (src, {}))

    def test_failed_outcome_stays_too(self):
        src, tgt = A[2], B[2]
        self.fault(tgt, 'transition to=resuming errno=EIO')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        self.assertEqual(self.wait_job(job)['result'], 'failed')
        self.assertEqual(self.get_property(job['path'], MIGRATION, 'Phase'), 'failed')
        self.assertEqual(self.get_property(job['path'], MIGRATION, 'ErrorName'), ERR + 'DeviceFailed')
        devices = dict((d[0], d[2]) for d in self.get_property(job['path'], MIGRATION, 'Devices'))
        self.assertEqual(set(devices), {src, tgt})

    def test_ids_are_not_reused_after_a_restart(self):
        job = self.start('Migrate', '(ssa{sv})', (A[3], B[3], {}))
        self.assertEqual(self.wait_job(job)['result'], 'done')
        self.call('Resume', '(sa{sv})', (A[3], {}))
        self.restart_daemon()
        new = self.start('Migrate', '(ssa{sv})', (A[3], B[3], {}))
        self.assertGreater(new['id'], job['id'])
        self.assertEqual(self.wait_job(new)['result'], 'done')
        self.call('Resume', '(sa{sv})', (A[3], {}))


class ResumeTest(MigrationTestCase):

    def test_resume_a_stopped_source(self):
        src, tgt = A[0], B[0]
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}), expect='done')
        self.assertEqual(self.state(src), 'stop')
        # a stopped source cannot be saved: it must run first
        msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Save', '(ssa{sv})', (src, 'x', {}))
        self.assertIn('stop', msg)
        self.call('Resume', '(sa{sv})', (src, {}))
        self.assertEqual(self.state(src), 'running')
        self.assertEqual(self.get_property(device_path(src), DEVICE, 'MigrationState'), 'running')
        # a running device is left alone: no transition at all
        arcs = len(self.arcs(src))
        self.call('Resume', '(sa{sv})', (src, {}))
        self.assertEqual(len(self.arcs(src)), arcs)

    def test_resume_refuses_a_device_a_job_holds(self):
        src, tgt = A[1], B[1]
        self.fault(src, 'stall after=0')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        try:
            wait_until(lambda: self.state(src) == 'pre-copy', 10, 'pre-copy')
            msg = self.assert_dbus_error(ERR + 'Busy', self.call, 'Resume', '(sa{sv})', (src, {}))
            self.assertIn(f'migration {job["id"]}', msg)
            self.assertEqual(self.state(src), 'pre-copy')
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.wait_job(job)
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.call, 'Resume', '(sa{sv})',
                               ('00000000-0000-4000-8000-000000000999', {}))


class ClientFdTest(StreamTestMixin, MigrationTestCase):
    """SaveFd and LoadFd use the caller's fd with the caller's rights: a
    FIFO was once reopened through /proc with root's, so one passed
    read-only (or O_PATH) received the device state."""

    def fifo(self):
        path = os.path.join(self.tmp, f'fifo-{time.monotonic_ns()}')
        os.mkfifo(path)
        self.addCleanup(os.unlink, path)
        return path

    def test_save_into_a_fifo_not_open_for_writing_is_refused(self):
        for mode in (os.O_RDONLY | os.O_NONBLOCK, os.O_PATH):
            with self.subTest(mode=mode):
                path = self.fifo()
                fd = os.open(path, mode)
                try:
                    msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.start_with_fd, 'SaveFd', A[0], fd)
                    self.assertIn('not open for writing', msg)
                    if mode != os.O_PATH:
                        self.assertEqual(os.read(fd, 1), b'')   # no writer ever came
                finally:
                    os.close(fd)
                self.assertEqual(self.state(A[0]), 'running')
                self.assertEqual(self.call('ListMigrations')[0], [])

    def test_load_from_a_write_only_fd_is_refused(self):
        r, w = os.pipe()
        try:
            msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.start_with_fd, 'LoadFd', B[0], w)
            self.assertIn('not open for reading', msg)
        finally:
            os.close(r)
            os.close(w)

    def test_the_callers_file_status_flags_stay_as_they_were(self):
        """A blocking pipe stays blocking for its other users: the daemon
        shares the file description and must not set O_NONBLOCK on it."""
        r, w = os.pipe()
        job = self.start_with_fd('SaveFd', A[1], w, {'source-state': GLib.Variant('s', 'running')})
        self.assertFalse(fcntl.fcntl(w, fcntl.F_GETFL) & os.O_NONBLOCK)
        os.close(w)
        data = b''
        while (chunk := os.read(r, 1 << 20)):
            data += chunk
        os.close(r)
        self.assertEqual(self.wait_job(job)['result'], 'done')
        self.assertTrue(data.startswith(b'VFIOMIG\x01'))
        self.assertEqual(self.load_bytes(B[1], data)['result'], 'done')
        self.assertEqual(self.digest(B[1]), self.digest(A[1]))


class CommittedRecoveryTest(MigrationTestCase):

    def kill_and_restart(self):
        self.daemon.proc.send_signal(signal.SIGKILL)
        self.daemon.proc.wait()
        self.restart_daemon()

    def test_kill_after_the_commit_point_finishes_the_job(self):
        """Killed while the target starts, after the commit point: the
        target keeps the migrated state and is started as asked; the
        source is not resumed. Recovery used to skip committed entries."""
        src, tgt = A[0], B[0]
        self.scramble(src)
        moved = self.digest(src)
        self.fault(tgt, 'transition from=stop to=running-p2p delay=3000 errno=0')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        # the target loads and starts in one request: it holds the state
        # once that request has taken it to STOP, on its way to RUNNING
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == 'finishing' and
                   self.state(tgt) == 'stop', 10, 'finishing, the target loaded')
        self.kill_and_restart()
        self.assertEqual((self.state(src), self.state(tgt)), ('stop', 'running'))
        self.assertEqual(self.digest(tgt), moved)
        self.assertIn(f'Migration {job["id"]} was interrupted by a daemon restart after its commit point',
                      self.daemon.output())
        self.assertEqual([n for n in os.listdir(os.path.join(self.tmp, 'run')) if n.endswith('.journal')], [])

    def test_kill_before_the_target_loaded_rolls_back(self):
        """The commit is one byte written just before the target is asked
        to load and start: killed while the target is still RESUMING, the
        restarted daemon finds a committed entry whose target holds
        nothing, and puts the source back to RUNNING with its state."""
        src, tgt = A[2], B[2]
        self.scramble(src)
        moved, target_before = self.digest(src), self.digest(tgt)
        self.fault(tgt, 'transition from=resuming to=stop delay=3000 errno=0')
        job = self.start('Migrate', '(ssa{sv})', (src, tgt, {}))
        wait_until(lambda: self.get_property(job['path'], MIGRATION, 'Phase') == 'finishing', 10, 'finishing')
        with open(os.path.join(self.tmp, 'run', f'migration-{job["id"]}.journal'), encoding='utf-8') as f:
            self.assertTrue(f.read().endswith('\nCommitted=1\n'))
        self.assertEqual((self.state(src), self.state(tgt)), ('stop-copy', 'resuming'))
        self.kill_and_restart()
        self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))
        self.assertEqual(self.digest(src), moved)
        self.assertEqual(self.digest(tgt), target_before)
        log = self.daemon.output()
        self.assertIn(f'Migration {job["id"]} was interrupted by a daemon restart after its commit point, '
                      'before its targets held the state: rolling it back', log)
        self.assertIn(f'Migration {job["id"]} was interrupted by a daemon restart: target {tgt} reset', log)
        self.assertEqual([n for n in os.listdir(os.path.join(self.tmp, 'run')) if n.endswith('.journal')], [])

    def test_recovery_follows_what_the_journal_asked(self):
        """Journal entries as a daemon killed right after its commit point
        leaves them (the window is too short to hit with a signal): the
        state stays where it moved, and only what was asked to run runs."""
        src, tgt = A[1], B[1]
        self.scramble(src)
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {'target-state': GLib.Variant('s', 'stop')}),
                            expect='done')
        moved = self.digest(src)
        run = os.path.join(self.tmp, 'run')
        for target_running, expect in (('false', 'stop'), ('true', 'running')):
            with self.subTest(target_running=target_running):
                with open(os.path.join(run, 'migration-4000.journal'), 'w', encoding='utf-8') as f:
                    f.write(f'[Migration]\nId=4000\nKind=migrate\nCommitted=true\nTargetRunning={target_running}\n'
                            f'SourceRunning=false\nSources={src};\nTargets={tgt};\n')
                self.restart_daemon()
                self.assertEqual((self.state(src), self.state(tgt)), ('stop', expect))
                self.assertEqual(self.digest(tgt), moved)
                self.assertFalse(os.path.exists(os.path.join(run, 'migration-4000.journal')))
        # the journal's highest id is not given out again
        job = self.start('Migrate', '(ssa{sv})', (A[2], B[2], {}))
        self.assertGreater(job['id'], 4000)
        self.wait_job(job)


class CrashConsistencyTest(MigrationTestCase):
    """SIGKILL at a random point of a migration or a save, many times in a
    row: after each restart every device is running or where the job's
    documented outcome leaves it, the journal is empty and no half-saved
    file is left."""

    KILLS = int(os.environ.get('VFIOMIG_CRASH_KILLS', '50'))

    def check_after_restart(self, kind, src, tgt):
        """Returns whether the job had passed its commit point."""
        run = os.path.join(self.tmp, 'run')
        states_dir = os.path.join(self.tmp, 'state', 'states')
        self.assertEqual([n for n in os.listdir(run) if n.endswith('.journal')], [])
        leftovers = [n for n in os.listdir(states_dir) if n.startswith('.')] if os.path.isdir(states_dir) else []
        self.assertEqual(leftovers, [])
        s, t = self.state(src), self.state(tgt)
        if kind == 'migrate':
            # rolled back, or committed: the state moved and the target runs
            self.assertIn((s, t), [('running', 'running'), ('stop', 'running')])
            if s == 'running':
                return False
            self.assertEqual(self.digest(tgt), self.digest(src))
            self.call('Resume', '(sa{sv})', (src, {}))
            return True
        # rolled back (a whole file at most), or committed (a whole file,
        # the source stopped as source-state asks by default)
        saved = os.path.join(states_dir, 'crash')
        self.assertEqual(t, 'running')
        self.assertIn(s, ('running', 'stop'))
        if s == 'stop':
            self.assertTrue(os.path.exists(saved))
        if os.path.exists(saved):
            self.start_and_wait('Load', '(ssa{sv})', (tgt, 'crash', {}), expect='done')
            self.assertEqual(self.digest(tgt), self.digest(src))
            os.unlink(saved)
        if s == 'stop':
            self.call('Resume', '(sa{sv})', (src, {}))
        return s == 'stop'

    def calibrate(self, src, tgt):
        """How long a whole job takes here, so kills spread over all of it."""
        t0 = time.monotonic()
        self.start_and_wait('Migrate', '(ssa{sv})', (src, tgt, {}), expect='done')
        self.start_and_wait('Save', '(ssa{sv})', (tgt, 'calibrate', {}), expect='done')
        took = (time.monotonic() - t0) / 2
        self.call('Resume', '(sa{sv})', (src, {}))
        self.call('Resume', '(sa{sv})', (tgt, {}))
        os.unlink(os.path.join(self.tmp, 'state', 'states', 'calibrate'))
        return took

    def test_sigkill_at_random_points(self):
        seed = int(os.environ.get('VFIOMIG_CRASH_SEED', str(time.time_ns() % 100000)))
        rng = random.Random(seed)
        src, tgt = BIG
        committed = 0
        took = self.calibrate(src, tgt)
        for i in range(self.KILLS):
            kind = rng.choice(['migrate', 'save'])
            self.scramble(src)
            if kind == 'migrate':
                self.call('Migrate', '(ssa{sv})', (src, tgt, {}))
            else:
                self.call('Save', '(ssa{sv})', (src, 'crash', {}))
            time.sleep(rng.uniform(0, 1.3 * took))
            self.daemon.proc.send_signal(signal.SIGKILL)
            self.daemon.proc.wait()
            self.restart_daemon()
            with self.subTest(kill=i, kind=kind, seed=seed):
                committed += self.check_after_restart(kind, src, tgt)
                self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))
        print(f'crash consistency: {self.KILLS} kills over jobs of {took:.2f} s (seed {seed}), '
              f'{committed} after the commit point, '
              f'{self.KILLS - committed} rolled back; every device running afterwards')


if __name__ == '__main__':
    main()
