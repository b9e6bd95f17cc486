#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigctl as scripts use it: options in either form and on either side
of the command, options a command does not take, jobs whose vfiomigd goes
away, waiting for a job that has already ended, and resume.

The job commands' basics (--no-wait, migrations, cancel, exit codes of
refusals) are in test_migration.py."""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import unittest

from vfiomigtest import (DEVICE, MIGRATION, SIM_PARENT, VFIOMIGCTL, SignalRecorder, TestbedTestCase, busctl, ctl,
                         device_path, main, on_terminal, sim_mdevs, sim_type, wait_until)
from vfiomigtest import sim_uuid as uuid


A = [uuid(i) for i in range(1, 9)]
B = [uuid(i) for i in range(11, 19)]
BIG = [uuid(51), uuid(52)]

TESTBED_CONF = (SIM_PARENT + sim_type('sim-4m', '4M', instances=32) + sim_type('sim-big', '80M', 'stop-copy,p2p', 4) +
                sim_mdevs(A + B, 'sim-4m') + sim_mdevs(BIG, 'sim-big'))

# vfiomigctl with no bus to reach: a command that accepts its options gets
# as far as connecting and fails with 6; a refused option fails with 2.
OFFLINE = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='unix:path=/nonexistent')
VALUES = {'--io-timeout': '5', '--max-precopy-rounds': '1', '--target-state': 'stop',
          '--source-state': 'running', '--pair': 'a=b', '--type': 'some-type', '--ssh': 'ssh',
          '--parent': 'mtty', '--kind': 'pci', '--domain': 'vm1'}
JSON_REFUSED = {'remove-mdev', 'resume', 'cancel', 'remove-state',   # they print nothing,
                'forget-probe'}                                     # or one line for people


def ctl_offline(*args):
    return subprocess.run([VFIOMIGCTL, *args], capture_output=True, text=True, env=OFFLINE, timeout=30)


def help_text():
    return subprocess.run([VFIOMIGCTL, '--help'], capture_output=True, text=True, check=True, timeout=30).stdout


def help_commands(text):
    block = text.split('\nCommands:\n')[1].split('\n\n')[0]
    return [m.group(1) for m in re.finditer(r'^  (\S+)', block, re.M)]


def help_options(text):
    """{option: the commands its 'Options of ...:' heading names}, None for
    the options before the first heading (those of every command)."""
    block = text.split('\nOptions:\n')[1].split('\n\n')[0]
    out, commands = {}, None
    for line in block.split('\n'):
        heading = re.fullmatch(r'Options of (.+):', line)
        if heading:
            commands = set(re.split(r', | and ', heading.group(1)))
        elif (m := re.match(r'\s+(?:-\w\s+)?(--[\w-]+)', line)):
            out[m.group(1)] = commands
    return out


class Lines:
    """A child's output, line by line, read by a thread so that a test
    waiting for a line cannot hang."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f'no line like {pattern!r} within {timeout}s: {self.seen}') from None
            if line is None:
                raise AssertionError(f'output ended without a line like {pattern!r}: {self.seen}')
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def text(self, timeout=10):
        """All of it, once the stream ends."""
        while (line := self.queue.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return ''.join(self.seen)


def reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class OptionTest(unittest.TestCase):
    """What each command takes, as --help says; no daemon needed."""

    @classmethod
    def setUpClass(cls):
        cls.help = help_text()
        cls.commands = help_commands(cls.help)
        cls.options = help_options(cls.help)

    def assert_accepted(self, args):
        p = ctl_offline(*args)
        self.assertEqual(p.returncode, 6, (args, p.stderr))
        self.assertIn('Failed to connect', p.stderr)

    def assert_refused(self, args, option, command):
        p = ctl_offline(*args)
        self.assertEqual(p.returncode, 2, (args, p.stderr))
        self.assertIn(option, p.stderr)
        self.assertIn(f"'{command}'", p.stderr)

    def forms(self, option, command):
        """The option before and after the command, its value in the same
        word and in the next."""
        if option not in VALUES:
            return [[option, command], [command, option]]
        value = VALUES[option]
        return [[f'{option}={value}', command], [option, value, command],
                [command, f'{option}={value}'], [command, option, value]]

    def test_help_lists_the_commands_of_each_option(self):
        self.assertIn('resume', self.commands)
        self.assertEqual(self.options['--help'], None)
        self.assertEqual(self.options['--no-ask-password'], None)
        job_options = [o for o, commands in self.options.items() if commands]
        self.assertIn('--pair', job_options)
        self.assertEqual(self.options['--source-state'], {'save'})

    def test_each_command_takes_exactly_the_options_help_names(self):
        for option, commands in self.options.items():
            if option in ('--help', '--version'):
                continue
            if option == '--json':
                commands = set(self.commands) - JSON_REFUSED
            if option == '--type':
                commands = commands | {'targets'}      # its usage line names it
            for command in self.commands:
                for args in self.forms(option, command):
                    with self.subTest(args=args):
                        if commands is None or command in commands:
                            self.assert_accepted(args)
                        else:
                            self.assert_refused(args, option, command)

    def test_json_is_refused_where_help_says(self):
        json_help = self.help[self.help.index('--json'):self.help.index('Options of')]
        for command in JSON_REFUSED:
            self.assertIn(command, json_help)

    def test_options_of_targets(self):
        for option in ('--type', '--include-busy', '--existing-only', '--include-unknown'):
            for command in self.commands:
                for args in self.forms(option, command):
                    with self.subTest(args=args):
                        # list filters by an mdev type with --type too
                        if command == 'targets' or (command == 'list' and option == '--type'):
                            self.assert_accepted(args)
                        else:
                            self.assert_refused(args, option, command)
        self.assert_accepted(['targets', '--type', 't', '--version', 'v'])
        # before the command, --version is ours; after targets, it wants a value
        self.assertEqual(ctl_offline('--version', 'targets').returncode, 0)
        self.assertEqual(ctl_offline('targets', '--type=t', '--version').returncode, 2)

    def test_arguments_after_double_dash_and_a_lone_dash(self):
        self.assert_accepted(['save', '--source-state', 'running', 'dev', '-'])
        self.assert_accepted(['migrate', '--', '--not-an-option', 'b'])
        p = ctl_offline('--pair')
        self.assertEqual(p.returncode, 2)
        self.assertIn('--pair', p.stderr)


class ClientTestCase(TestbedTestCase):
    """A daemon on a testbed of our own, with its runtime and state
    directories in the class's temporary directory."""

    TESTBED = TESTBED_CONF

    def setUp(self):
        for name in A + B + BIG:
            self.tb('ClearFaults', '(s)', name)
            if self.state(name) != 'running':
                self.tb('Reset', '(s)', name)
        self.addCleanup(self.end_jobs)

    def end_jobs(self):
        """A test that failed half-way leaves neither a dead daemon nor a
        stalled job to the next."""
        if not self.daemon.alive():
            self.restart_daemon()
        for job in self.call('ListMigrations')[0]:
            self.tb('ClearFaults', '(s)', job[2].split(',')[0])
            try:
                self.call('Cancel', path=job[5], interface=MIGRATION)
            except Exception:  # pylint: disable=broad-except
                pass            # it ended meanwhile, or can no longer be cancelled
        wait_until(lambda: not self.call('ListMigrations')[0], 30, 'jobs to end')

    def fault(self, name, spec):
        self.tb('InjectFault', '(ss)', name, spec)

    def ended(self):
        """A recorder of MigrationRemoved, subscribed from now on."""
        rec = SignalRecorder(self.conn, member='MigrationRemoved')
        self.addCleanup(rec.close)
        return rec

    def migration_state(self, name):
        """The device's MigrationState property, as busctl shows it."""
        p = busctl('get-property', 'org.vfiomig1', device_path(name), DEVICE, 'MigrationState', check=True)
        return json.loads(p.stdout.split(None, 1)[1])

    def follow(self, *args):
        """vfiomigctl ARGS in the background, its stderr as Lines."""
        proc = subprocess.Popen([VFIOMIGCTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(reap, proc)
        return proc, Lines(proc.stderr)


class OptionWordsTest(ClientTestCase):

    def test_values_as_separate_words_on_both_sides(self):
        (a, b), (c, d) = (A[0], B[0]), (A[1], B[1])
        before = {n: self.digest(n) for n in (a, c)}
        p = ctl('--pair', f'{c}={d}', 'migrate', a, b, '--target-state', 'stop', '--max-precopy-rounds', '1')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.state(b), self.state(d)), ('stop', 'stop'))
        self.assertEqual((self.digest(b), self.digest(d)), (before[a], before[c]))

    def test_save_and_load_with_separate_values(self):
        src, tgt = A[2], B[2]
        before = self.digest(src)
        p = ctl('save', '--source-state', 'running', src, 'words', '--io-timeout', '20')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.state(src), 'running')
        self.assertTrue(os.path.exists(os.path.join(self.tmp, 'state', 'states', 'words')))
        p = ctl('--target-state', 'stop', 'load', tgt, 'words')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.state(tgt), self.digest(tgt)), ('stop', before))

    def test_targets_options_in_both_forms(self):
        device = A[3]
        ident = json.loads(ctl('--json', 'identity', device, check=True).stdout)
        by_device = json.loads(ctl('--json', 'targets', device, check=True).stdout)
        self.assertTrue(by_device)
        args = ['--type', ident['type']] + (['--version', ident['version']] if ident['version'] else [])
        by_identity = json.loads(ctl('targets', *args, '--json', check=True).stdout)
        self.assertEqual(by_device, [t for t in by_identity if t['name'] != device])
        existing = json.loads(ctl('--existing-only', '--json', 'targets', device, check=True).stdout)
        self.assertEqual(existing, [t for t in by_device if t['kind'] == 'device'])

    def test_refused_option_changes_nothing(self):
        src, tgt = A[4], B[4]
        before = self.tb('GetTransitions', '(s)', src)[0]
        for args, option, command in [(['--source-state=running', 'migrate', src, tgt], '--source-state', 'migrate'),
                                      (['migrate', src, tgt, '--overwrite'], '--overwrite', 'migrate'),
                                      (['save', src, 'never', '--target-state', 'stop'], '--target-state', 'save'),
                                      (['load', tgt, 'never', '--no-precopy'], '--no-precopy', 'load'),
                                      (['--pair', f'{src}={tgt}', 'save', src, 'never'], '--pair', 'save')]:
            with self.subTest(args=args):
                p = ctl(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(f"Option {option} does not apply to '{command}'", p.stderr)
        self.assertEqual(self.tb('GetTransitions', '(s)', src)[0], before)
        self.assertFalse(self.call('ListMigrations')[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'state', 'states', 'never')))


class DaemonGoneTest(ClientTestCase):
    """vfiomigd stops or crashes while clients follow a job: they notice and
    exit with 6 at once, saying what they saw of the job."""

    def kill_during_job(self, sig):
        src, tgt = BIG
        self.fault(src, 'stall after=1048576')
        migrate, migrate_err = self.follow('migrate', src, tgt)
        job_id = int(migrate_err.wait_for(r'Migration (\d+) started').group(1))
        path = f'/org/vfiomig1/migration/{job_id}'
        wait_until(lambda: self.get_property(path, MIGRATION, 'BytesTransferred') > 0, 20, 'data to move')
        phase = self.get_property(path, MIGRATION, 'Phase')
        migrate_err.wait_for(rf'Migration {job_id}: {phase}$')
        waiter, waiter_err = self.follow('wait', str(job_id))
        waiter_err.wait_for(rf'Migration {job_id}: {phase}$')     # it follows the job now

        start = time.monotonic()
        self.daemon.proc.send_signal(sig)
        for proc, err in ((migrate, migrate_err), (waiter, waiter_err)):
            with self.subTest(client=proc.args[1]):
                try:
                    code = proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.fail(f'{proc.args} still runs 5 s after vfiomigd got signal {sig}')
                self.assertLess(time.monotonic() - start, 2.0)
                self.assertEqual(code, 6)
                self.assertRegex(err.text(), rf'vfiomigd left the bus during migration {job_id} '
                                 rf'\(last phase {phase}, [\d.]+\s\w+ moved\)')
        self.daemon.proc.wait(10)
        self.restart_daemon()
        # rolled back as it exited, or by the new instance after a crash
        self.assertEqual((self.state(src), self.state(tgt)), ('running', 'running'))

    def test_sigterm(self):
        self.kill_during_job(signal.SIGTERM)

    def test_sigkill(self):
        self.kill_during_job(signal.SIGKILL)


class WaitEndedTest(ClientTestCase):
    """vfiomigd keeps an ended job's object for a while: wait reports it."""

    def test_wait_after_the_job_has_ended(self):
        src, tgt = A[5], B[5]
        ended = self.ended()
        p = ctl('--no-wait', 'migrate', src, tgt)
        self.assertEqual(p.returncode, 0, p.stderr)
        job_id = int(p.stdout)
        ended.wait_for(lambda s: s[3][0] == job_id, 60)
        p = ctl('wait', str(job_id), timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stderr, rf'^Migration {job_id} done: ')
        result = json.loads(ctl('--json', 'wait', str(job_id), check=True).stdout)
        self.assertEqual((result['id'], result['result'], result['error_name']), (job_id, 'done', ''))
        self.assertEqual({d['name']: d['role'] for d in result['devices']}, {src: 'source', tgt: 'target'})
        path = f'/org/vfiomig1/migration/{job_id}'
        self.assertEqual(result['bytes'], self.get_property(path, MIGRATION, 'BytesTransferred'))
        self.assertGreater(result['bytes'], 0)

    def live_and_late(self, job_id, end):
        """Waits for the job as it runs and again once it has ended: both
        must report the same."""
        live, live_err = self.follow('wait', str(job_id))
        live_err.wait_for(rf'Migration {job_id}: \w+$')
        end()
        live_code = live.wait(60)
        live_report = [line for line in live_err.text().splitlines()
                       if not re.fullmatch(rf'Migration {job_id}: \w+', line)]
        late = ctl('wait', str(job_id), timeout=10)
        self.assertEqual(late.returncode, live_code, late.stderr)
        self.assertEqual(late.stderr.splitlines(), live_report)
        return live_code, json.loads(ctl('--json', 'wait', str(job_id)).stdout)

    def test_cancel_then_wait(self):
        src, tgt = A[6], B[6]
        self.fault(src, 'stall after=0')
        job_id = int(ctl('--no-wait', 'migrate', src, tgt, check=True).stdout)
        code, result = self.live_and_late(job_id, lambda: self.assertEqual(ctl('cancel', str(job_id)).returncode, 0))
        self.assertEqual(code, 1)
        self.assertEqual((result['result'], result['error_name']), ('cancelled', 'org.vfiomig1.Error.Cancelled'))
        # an ended job is no longer cancelled
        self.assertEqual(ctl('cancel', str(job_id)).returncode, 5)

    def test_wait_for_a_failed_job(self):
        src, tgt = A[7], B[7]
        self.fault(src, 'stall after=0')
        job_id = int(ctl('--no-wait', 'migrate', src, tgt, '--io-timeout', '2', check=True).stdout)
        code, result = self.live_and_late(job_id, lambda: None)
        self.assertEqual(code, 1)
        self.assertEqual(result['result'], 'failed')
        self.assertEqual(result['error_name'], 'org.vfiomig1.Error.DeviceFailed')


class ResumeTest(ClientTestCase):

    def test_resume_the_stopped_source_and_target(self):
        src, tgt = A[0], B[0]
        before = self.digest(src)
        p = ctl('migrate', src, tgt, '--target-state=stop')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.migration_state(src), self.migration_state(tgt)), ('stop', 'stop'))

        p = ctl('save', src, 'from-a-stopped-device')
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn('is in state stop', p.stderr)
        self.assertIn(f"'vfiomigctl resume {src}'", p.stderr)

        p = ctl('resume', src)
        self.assertEqual((p.returncode, p.stdout), (0, ''), p.stderr)
        self.assertEqual((self.migration_state(src), self.state(src)), ('running', 'running'))
        # a device that runs: nothing to do, and no error
        arcs = self.tb('GetTransitions', '(s)', src)[0]
        self.assertEqual(ctl('resume', src).returncode, 0)
        self.assertEqual(self.tb('GetTransitions', '(s)', src)[0], arcs)
        # the target keeps the state it received
        self.assertEqual(ctl('resume', tgt).returncode, 0)
        self.assertEqual((self.migration_state(tgt), self.digest(tgt)), ('running', before))

    def test_resume_hint_names_the_stopped_sources(self):
        """The hint comes from the devices' objects: each stopped source of
        the call, a group's too, as vfiomigd spells it; none for a source
        that runs."""
        stopped, running = A[2], A[3]
        p = ctl('migrate', stopped, B[2], '--target-state=stop')
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ctl('migrate', running, B[3], f'--pair={stopped.upper()}={B[4]}')
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn(f'{stopped} is in state stop', p.stderr)
        self.assertIn(f"'vfiomigctl resume {stopped}'", p.stderr)
        self.assertNotIn(f"'vfiomigctl resume {running}'", p.stderr)
        self.assertEqual(self.migration_state(running), 'running')

    def test_resume_refusals(self):
        src, tgt = A[1], B[1]
        self.assertEqual(ctl('resume', uuid(999)).returncode, 3)
        self.assertEqual(ctl('resume').returncode, 2)
        self.fault(src, 'stall after=0')
        ended = self.ended()
        job_id = int(ctl('--no-wait', 'migrate', src, tgt, check=True).stdout)
        p = ctl('resume', src)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn(src, p.stderr)
        self.assertEqual(ctl('cancel', str(job_id)).returncode, 0)
        ended.wait_for(lambda s: s[3][0] == job_id, 30)


class MessagesTest(ClientTestCase):
    """What vfiomigctl prints is for a person at a shell: sizes grep the
    same under every locale, and hints name its own flags."""

    def test_sizes_in_plain_ascii_under_every_locale(self):
        src = A[2]
        for locale in ('C', 'C.UTF-8'):
            env = dict(os.environ, LC_ALL=locale)
            name = f'sizes-{locale}'
            p = subprocess.run([VFIOMIGCTL, '--source-state=running', 'save', src, name], env=env,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stderr, r'Migration \d+ done: 4\.0 MiB,', locale)
            self.assertNotIn('\u00a0', p.stderr, locale)

    def test_hints_name_flags(self):
        src = A[3]
        p = ctl('--source-state=running', 'save', src, 'hint')
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ctl('--source-state=running', 'save', src, 'hint')
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn('exists already (--overwrite)', p.stderr)
        self.assertNotIn('option overwrite', p.stderr)

    def test_streams_that_go_nowhere_are_refused(self):
        src = A[4]
        p = subprocess.run([VFIOMIGCTL, 'save', src, '-'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f'vfiomigctl save {src} NAME', p.stderr)
        p = subprocess.run([VFIOMIGCTL, 'load', src, '-'], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f'vfiomigctl load {src} - < FILE', p.stderr)
        p = ctl('load', src, '/tmp/some.state')
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f'vfiomigctl load {src} - < /tmp/some.state', p.stderr)
        # a saved state is verified whole, always
        p = ctl('load', '--no-prefetch', src, 'some-state')
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(f'--no-prefetch applies to a stream on standard input (load {src} -)', p.stderr)
        # nothing was started: the device runs, untouched
        self.assertEqual(self.state(src), 'running')
        self.assertEqual(self.call('ListMigrations')[0], [])
        for args, stream in ((['save', src, '-'], 'stdout'), (['load', src, '-'], 'stdin')):
            terminal, other, _ = on_terminal(args, stream)
            self.assertIn('terminal', terminal + other, args)

    def test_quiet(self):
        src = A[5]
        p = ctl('-q', '--source-state=running', 'save', src, 'quiet')
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '', ''))
        p = ctl('--quiet', '--source-state=running', 'save', src, 'quiet')
        self.assertEqual(p.returncode, 5)
        self.assertIn('exists already', p.stderr)

    def test_progress_shows_phase_round_and_bytes(self):
        src, tgt = A[6], B[6]
        self.tb('SetDirtyRate', '(st)', src, 64 * 1024 * 1024)
        self.addCleanup(self.tb, 'SetDirtyRate', '(st)', src, 0)
        out, _, _ = on_terminal(['--max-precopy-rounds=3', 'migrate', src, tgt], 'stderr')
        self.assertRegex(out, r'pre-copy round \d+: [\d.]+ [KMG]?i?B this round, [\d.]+ [KMG]?i?B in all')
        self.assertRegex(out, r'Migration \d+ done: ')


if __name__ == '__main__':
    main()
