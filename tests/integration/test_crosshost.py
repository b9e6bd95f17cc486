#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigctl migrate and save into a device on another host.

Two vfiomigd on two private buses stand for two hosts. A stand-in for ssh
takes "HOST COMMAND...", as ssh does, and runs the command line with
sh -c, as the remote user's shell would, with the "remote" bus as its
system bus. test_crosshost_sshd.py runs some of the same through a real
sshd, in a network namespace of its own."""

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

from vfiomigtest import (MIGRATION, SIM_PARENT, VFIOMIGCTL, Daemon, PrivateBus, TestbedTestCase, main, sim_mdevs, sim_type,
                         wait_until)
from vfiomigtest import sim_uuid as uuid

CLIENT_DIR = os.path.dirname(VFIOMIGCTL)
ERR = 'org.vfiomig1.Error.'


SRC = [uuid(i) for i in range(1, 9)]          # here
TGT = [uuid(i) for i in range(11, 19)]        # there
OTHER = uuid(21)                              # there, of another type
BIG_SRC, BIG_TGT = uuid(31), uuid(32)         # more than a load verifies before it touches the target

TYPES = SIM_PARENT + sim_type('sim-4m', '4M') + sim_type('sim-other', '4M', instances=4) + \
    sim_type('sim-big', '80M', instances=4)
LOCAL_TESTBED = TYPES + sim_mdevs(SRC, 'sim-4m') + sim_mdevs([BIG_SRC], 'sim-big')
REMOTE_TESTBED = TYPES + sim_mdevs(TGT, 'sim-4m') + sim_mdevs([OTHER], 'sim-other') + sim_mdevs([BIG_TGT], 'sim-big')

# ssh as far as vfiomigctl sees it: "HOST COMMAND...", the command joined
# and run by a shell there. Each call appends its host and command line
# to the log. STANDIN_DIE_ON=WORD: a command with WORD in it reads a
# little of its input and then fails as a dropped connection does.
# STANDIN_NOISE=N: N bytes on standard error first, as a chatty login
# (banners, a shell's start-up files) prints them.
STANDIN = '''#!/bin/sh
host="$1"; shift
printf '%s\\t%s\\n' "$host" "$*" >> {log}
case "$*" in
*"$STANDIN_DIE_ON"*)
        if [ -n "$STANDIN_DIE_ON" ]; then
                head -c 65536 > /dev/null
                echo "Connection to $host closed by remote host." >&2
                exit 255
        fi;;
esac
if [ -n "$STANDIN_NOISE" ]; then
        head -c "$STANDIN_NOISE" /dev/zero | tr '\\0' . >&2
        echo >&2
fi
DBUS_SYSTEM_BUS_ADDRESS={address} PATH={client}:$PATH exec sh -c "$*"
'''

# ssh as the command there sees it: its standard input a pipe of sshd's,
# which sshd closes when the command ends, however it ends; ssh then exits
# with the command's status, or 255 when a signal ended it. The stand-in
# above hands its own standard input on, which outlives the command.
RELAY = '''#!/usr/bin/python3
import os, subprocess, sys, threading

host, command = sys.argv[1], ' '.join(sys.argv[2:])
with open('@LOG@', 'a', encoding='utf-8') as f:
    f.write(host + '\\t' + command + '\\n')
env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='@ADDRESS@', PATH='@CLIENT@:' + os.environ['PATH'])
child = subprocess.Popen(['sh', '-c', 'exec ' + command], stdin=subprocess.PIPE, env=env)


def relay():
    try:
        while data := os.read(0, 65536):
            child.stdin.write(data)
            child.stdin.flush()
        child.stdin.close()
    except OSError:
        pass


threading.Thread(target=relay, daemon=True).start()
status = child.wait()
os._exit(255 if status < 0 else status)
'''

UNREACHABLE = '''#!/bin/sh
echo "ssh: connect to host $1 port 22: Connection refused" >&2
exit 255
'''


def pids_of(*words):
    """The processes whose command line holds each of words as a word of
    its own (as a shell there split it, not as ssh was given it)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                argv = f.read().decode(errors='replace').split('\0')
        except OSError:
            continue        # gone meanwhile
        if all(w in argv for w in words):
            pids.append(int(pid))
    return pids


def script(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return path


class CrossHostTestCase(TestbedTestCase):
    """The class's daemon is this host's; another on a bus of its own is
    the remote host's."""

    TESTBED = LOCAL_TESTBED

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        local_address = os.environ['DBUS_SYSTEM_BUS_ADDRESS']
        cls.remote_tmp = tempfile.mkdtemp(prefix='vfiomig-remote-')
        cls.addClassCleanup(shutil.rmtree, cls.remote_tmp, True)
        conf = os.path.join(cls.remote_tmp, 'testbed.conf')
        with open(conf, 'w', encoding='utf-8') as f:
            f.write(REMOTE_TESTBED)
        try:
            cls.remote_bus = PrivateBus()
        finally:
            # PrivateBus points our clients at itself: ours stay here
            os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = local_address
        cls.addClassCleanup(cls.remote_bus.stop)
        cls.remote_daemon = Daemon(cls.remote_bus, [f'--testbed={conf}'],
                                   {'DBUS_SYSTEM_BUS_ADDRESS': cls.remote_bus.address,
                                    'RUNTIME_DIRECTORY': os.path.join(cls.remote_tmp, 'run'),
                                    'STATE_DIRECTORY': os.path.join(cls.remote_tmp, 'state')})
        cls.addClassCleanup(cls.remote_daemon.stop)
        cls.remote_conn = cls.remote_bus.connect()
        cls.addClassCleanup(cls.remote_conn.close_sync, None)
        cls.ssh_log = os.path.join(cls.remote_tmp, 'ssh.log')
        cls.ssh = script(os.path.join(cls.remote_tmp, 'ssh-standin'),
                         STANDIN.format(log=cls.ssh_log, address=cls.remote_bus.address, client=CLIENT_DIR))
        cls.unreachable = script(os.path.join(cls.remote_tmp, 'ssh-unreachable'), UNREACHABLE)
        cls.relay = script(os.path.join(cls.remote_tmp, 'ssh-relay'),
                           RELAY.replace('@LOG@', cls.ssh_log).replace('@ADDRESS@', cls.remote_bus.address)
                           .replace('@CLIENT@', CLIENT_DIR))

    def setUp(self):
        for name in SRC + [BIG_SRC]:
            self.prepare(self, name)
        for name in TGT + [OTHER, BIG_TGT]:
            self.prepare(self.remote, name)
        open(self.ssh_log, 'w', encoding='utf-8').close()

    @staticmethod
    def prepare(side, name):
        side.tb('ClearFaults', '(s)', name)
        side.tb('SetDirtyRate', '(st)', name, 0)
        if side.state(name) != 'running':
            side.tb('Reset', '(s)', name)

    def tearDown(self):
        super().tearDown()
        if not self.remote_daemon.alive():
            self.fail('the remote vfiomigd died:\n' + self.remote_daemon.output())

    @property
    def remote(self):
        """The testbed calls, on the remote host's daemon."""
        test = self

        class Remote:
            @staticmethod
            def tb(method, signature=None, *args):
                conn, test.conn = test.conn, test.remote_conn
                try:
                    return test.tb(method, signature, *args)
                finally:
                    test.conn = conn

            @classmethod
            def digest(cls, name):
                return cls.tb('GetDigest', '(s)', name)[0]

            @classmethod
            def state(cls, name):
                return cls.tb('GetDeviceState', '(s)', name)[0]

        return Remote

    def scramble(self, name):
        """A state no other device holds by chance."""
        before = self.digest(name)
        self.tb('SetDirtyRate', '(st)', name, 1 << 30)
        wait_until(lambda: self.digest(name) != before, 5, f'{name} to change')
        self.tb('SetDirtyRate', '(st)', name, 0)

    def ctl(self, *args, ssh=None, env=None, timeout=120):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([VFIOMIGCTL, f'--ssh={ssh or self.ssh}', *args], capture_output=True, text=True,
                              env=full_env, timeout=timeout)

    def ssh_calls(self):
        with open(self.ssh_log, encoding='utf-8') as f:
            return [line.rstrip('\n').split('\t') for line in f]

    def migrations(self, conn):
        return conn.call_sync('org.vfiomig1', '/org/vfiomig1', 'org.vfiomig1.Manager', 'ListMigrations', None,
                              None, 0, 10000, None).unpack()[0]

    def kill_remote_load_when_stalled(self, tgt, stall_after):
        """Once the job here has sent all that its stalled source gave
        (and waits for more, writing nothing) and the load there runs,
        kills the vfiomigctl that follows that load."""
        def stalled():
            jobs, loads = self.migrations(self.conn), self.migrations(self.remote_conn)
            # the load there writes the target as the stream comes, while the source here runs
            return jobs and loads and loads[0][4] == 'resuming' and \
                self.get_property(jobs[0][5], MIGRATION, 'BytesTransferred') >= stall_after
        wait_until(stalled, 60, 'the stream to stall')
        loads = pids_of('vfiomigctl', 'load', tgt)
        self.assertEqual(len(loads), 1, loads)
        os.kill(loads[0], signal.SIGKILL)


class MigrateTest(CrossHostTestCase):

    def test_migrate_moves_the_state(self):
        src, tgt = SRC[0], TGT[0]
        self.scramble(src)
        before = self.digest(src)
        self.assertNotEqual(self.remote.digest(tgt), before)
        p = self.ctl('migrate', src, f'root@far:{tgt}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.remote.digest(tgt), before)
        # as a migration here leaves them
        self.assertEqual((self.state(src), self.remote.state(tgt)), ('stop', 'running'))
        self.assertRegex(p.stderr, rf'Migration \d+ to root@far:{tgt} done: 4\.0.MiB, downtime \d+\.\d{{3}} ms, '
                                   r'\d+ pre-copy rounds?\.')
        self.assertIn('Migration', p.stderr.split('\n')[0])       # the phases of the job here
        # first the question, then the stream, both to the host as given
        calls = self.ssh_calls()
        self.assertEqual([c[0] for c in calls], ['root@far', 'root@far'])
        self.assertIn('check-identity', calls[0][1])
        self.assertIn(f"'--no-prefetch' 'load' '--' '{tgt}' '-'", calls[1][1])

    def test_json_outcome_and_precopy_while_the_source_runs(self):
        src, tgt = SRC[1], TGT[1]
        # a source that keeps dirtying pages: the rounds run while it does
        self.tb('SetDirtyRate', '(st)', src, 8 * 1024 * 1024)
        p = self.ctl('--json', '--max-precopy-rounds=3', 'migrate', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out['result'], out['failed_end'], out['host']), ('done', '', 'far'))
        self.assertGreaterEqual(out['precopy_rounds'], 1, out)
        self.assertGreater(out['downtime_usec'], 0)
        self.assertEqual({d['role']: d['outcome'] for d in out['devices']}, {'source': 'stop', 'target': 'running'})
        self.assertEqual(out['remote']['result'], 'done')
        self.assertEqual(self.remote.digest(tgt), self.digest(src))      # the source is stopped now

    def test_what_the_remote_prints_is_read_as_it_comes(self):
        """A login that prints much before the command there runs: read
        only after the job here ends, it would fill the pipe and stop
        ssh before the load there reads a byte, and the job here with it."""
        src, tgt = SRC[0], TGT[0]
        self.scramble(src)
        before = self.digest(src)
        p = self.ctl('migrate', src, f'far:{tgt}', env={'STANDIN_NOISE': str(1 << 20)}, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual((self.state(src), self.remote.state(tgt), self.remote.digest(tgt)),
                         ('stop', 'running', before))

    def test_target_state_goes_to_the_remote_load(self):
        src, tgt = SRC[2], TGT[2]
        before = self.digest(src)
        p = self.ctl('--target-state=stop', '--no-precopy', 'migrate', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('stop', before))

    def test_ssh_command_from_the_environment(self):
        src, tgt = SRC[3], TGT[3]
        p = subprocess.run([VFIOMIGCTL, 'migrate', src, f'far:{tgt}'], capture_output=True, text=True,
                           env={**os.environ, 'VFIOMIG_SSH': f'{self.ssh} '}, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.ssh_calls()), 2)
        # --ssh is for remote targets only
        p = self.ctl('migrate', SRC[4], TGT[4])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('--ssh applies only to a target on another host', p.stderr)

    def test_save_to_another_host_leaves_the_source_stopped(self):
        src, tgt = SRC[5], TGT[5]
        self.scramble(src)
        before = self.digest(src)
        p = self.ctl('save', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.state(src), self.remote.state(tgt), self.remote.digest(tgt)),
                         ('stop', 'running', before))
        # a copy, with the source running on
        self.tb('Reset', '(s)', src)
        p = self.ctl('--source-state=running', 'save', src, f'far:{TGT[6]}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((self.state(src), self.remote.digest(TGT[6])), ('running', self.digest(src)))

    def test_a_saved_state_name_with_a_colon_stays_local(self):
        p = subprocess.run([VFIOMIGCTL, 'save', '--source-state=running', SRC[7], 'snap:1'], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.ssh_calls(), [])
        self.assertTrue(os.path.exists(os.path.join(self.tmp, 'state', 'states', 'snap:1')))


class RefusalTest(CrossHostTestCase):

    def assert_nothing_changed(self, src, tgt, before):
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before[1]))

    def test_incompatible_remote_target_is_refused_before_the_source_stops(self):
        src = SRC[0]
        before = (self.digest(src), self.remote.digest(OTHER))
        arcs = self.tb('GetTransitions', '(s)', src)[0]
        p = self.ctl('migrate', src, f'far:{OTHER}')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f'Refusing to move {src} to far:{OTHER}: far finds it incompatible', p.stderr)
        self.assertIn('different migration types: sim-4m and sim-other', p.stderr)     # the reason there
        self.assert_nothing_changed(src, OTHER, before)
        self.assertEqual(self.tb('GetTransitions', '(s)', src)[0], arcs)     # never opened here
        # only the question went there
        self.assertEqual([('check-identity' in c[1]) for c in self.ssh_calls()], [True])

    def test_no_such_remote_target(self):
        src = SRC[1]
        p = self.ctl('migrate', src, f'far:{uuid(99)}')
        self.assertEqual(p.returncode, 3, p.stderr)          # NoSuchDevice, as vfiomigctl there says
        self.assertIn(f'Failed to ask far whether {uuid(99)} takes the state of {src}', p.stderr)
        self.assertNotIn('CRITICAL', p.stderr)     # vfiomigctl there printed nothing on stdout
        self.assertEqual(self.state(src), 'running')

    def test_empty_identity_is_refused(self):
        p = subprocess.run([VFIOMIGCTL, 'check-identity', SRC[0]], input='', capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((p.returncode, p.stderr), (2, 'The identity on standard input is no JSON object\n'))

    def test_unreachable_host_is_refused_before_the_source_stops(self):
        src, tgt = SRC[2], TGT[2]
        before = (self.digest(src), self.remote.digest(tgt))
        p = self.ctl('migrate', src, f'nowhere:{tgt}', ssh=self.unreachable)
        self.assertEqual(p.returncode, 6, p.stderr)
        self.assertIn('ssh to nowhere failed (exit status 255): ssh: connect to host nowhere port 22: '
                      'Connection refused', p.stderr)
        self.assert_nothing_changed(src, tgt, before)

    def test_a_mistyped_pci_address_is_no_host(self):
        # "0000:3b:00.9" has no function 9; it is no device "3b:00.9" on a host "0000"
        p = subprocess.run([VFIOMIGCTL, 'migrate', SRC[5], '0000:3b:00.9'], capture_output=True, text=True,
                           env={**os.environ, 'VFIOMIG_SSH': self.ssh}, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("'0000:3b:00.9' is not a device name", p.stderr)
        self.assertEqual(self.ssh_calls(), [])
        self.assertEqual(self.state(SRC[5]), 'running')

    def test_options_that_do_not_cross(self):
        for opts in (['--no-wait'], [f'--pair={SRC[3]}={SRC[4]}']):
            p = self.ctl(*opts, 'migrate', SRC[3], f'far:{TGT[3]}')
            self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(self.ssh_calls(), [])


class FailureTest(CrossHostTestCase):

    def test_remote_device_fails_mid_stream(self):
        """The target there fails while the stream still flows: the save
        here fails on the broken pipe and rolls back, the load there resets
        the target, and the message blames the remote end."""
        src, tgt = BIG_SRC, BIG_TGT
        before = (self.digest(src), self.remote.digest(tgt))
        self.remote.tb('InjectFault', '(ss)', tgt, 'write-error after=1048576 errno=EIO')
        p = self.ctl('--json', 'migrate', src, f'far:{tgt}', timeout=300)
        self.assertEqual(p.returncode, 1, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual((out['result'], out['failed_end'], out['error_name']), ('failed', 'remote', ERR + 'DeviceFailed'),
                         out)
        outcomes = {d['role']: d['outcome'] for d in out['devices']}
        self.assertTrue(outcomes['source'].startswith(('restored to running', 'reset to running')), outcomes)
        self.assertEqual(outcomes['target'], 'reset')
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        self.assertEqual(self.remote.state(tgt), 'running')
        # the reset discarded what it had received
        self.assertEqual(self.remote.digest(tgt), before[1])

    def test_remote_target_fails_to_start(self):
        """The stream arrived whole, the save here succeeded and stopped
        the source, then the target there did not start: the source runs
        again, and the target there was reset."""
        src, tgt = SRC[0], TGT[0]
        self.scramble(src)
        before = (self.digest(src), self.remote.digest(tgt))
        self.remote.tb('InjectFault', '(ss)', tgt, 'transition from=resuming to=stop errno=EINVAL')
        p = self.ctl('migrate', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, rf'Migration \d+ to far:{tgt} failed on far: .*resuming -> stop failed')
        self.assertIn(f'source {src}: resumed to running (was stop)', p.stderr)
        self.assertIn(f'target far:{tgt}: reset', p.stderr)
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before[1]))

    def test_local_source_fails(self):
        src, tgt = SRC[1], TGT[1]
        before = self.remote.digest(tgt)
        self.tb('InjectFault', '(ss)', src, 'read-error after=65536 errno=EIO')
        p = self.ctl('--json', 'migrate', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 1, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out['failed_end'], 'local', out)
        self.assertEqual(out['remote']['error_name'], ERR + 'StreamCorrupt')
        self.assertEqual(self.state(src), 'running')
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before))

    def test_ssh_dies_mid_stream(self):
        src, tgt = SRC[2], TGT[2]
        before = (self.digest(src), self.remote.digest(tgt))
        p = self.ctl('migrate', src, f'far:{tgt}', env={'STANDIN_DIE_ON': "'load'"})
        self.assertEqual(p.returncode, 6, p.stderr)
        self.assertRegex(p.stderr, rf'Migration \d+ to far:{tgt} failed: ssh to far failed \(exit status 255\): '
                                   r'Connection to far closed by remote host\.')
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        # the load there never ran
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before[1]))
        self.assertEqual(self.migrations(self.conn), [])

    def test_remote_command_killed_mid_stream(self):
        """vfiomigctl there is killed while the source here is stuck in
        the middle of its state (a driver that stalls): the job here
        writes nothing that could fail, so it is cancelled as soon as ssh
        ends, not when its I/O timeout runs out, and the source runs."""
        src, tgt = SRC[4], TGT[4]
        self.scramble(src)
        before = (self.digest(src), self.remote.digest(tgt))
        self.tb('InjectFault', '(ss)', src, 'stall after=1048576')
        p = subprocess.Popen([VFIOMIGCTL, f'--ssh={self.relay}', '--io-timeout=600', 'migrate', src, f'far:{tgt}'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.kill_remote_load_when_stalled(tgt, 1048576)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 6, err)
        self.assertRegex(err, rf'Migration \d+ to far:{tgt} failed: ssh to far failed \(exit status 255\)\n')
        self.assertRegex(err, rf'source {src}: (restored|reset) to running')
        self.assertIn('(on this host: cancelled, as far had ended)', err)
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        # the load there read the end of its input, not the whole stream
        wait_until(lambda: not self.migrations(self.remote_conn), 30, 'the load there to end')
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before[1]))

    def test_remote_save_fails_and_the_source_runs_again(self):
        src, tgt = SRC[3], TGT[3]
        self.remote.tb('InjectFault', '(ss)', tgt, 'transition from=resuming to=stop errno=EINVAL')
        p = self.ctl('save', src, f'far:{tgt}')
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(self.state(src), 'running')


class LocalDaemonKilledTest(CrossHostTestCase):
    """vfiomigd here is killed in the middle of a move to another host."""

    def test_the_report_says_so_and_a_restart_sets_the_source_running(self):
        src, tgt = SRC[0], TGT[0]
        self.tb('InjectFault', '(ss)', src, 'stall after=1048576')
        p = subprocess.Popen([VFIOMIGCTL, f'--ssh={self.ssh}', '--io-timeout=600', 'migrate', src, f'far:{tgt}'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        wait_until(lambda: self.migrations(self.conn) and self.migrations(self.remote_conn), 30,
                   'the save here and the load there')
        self.daemon.proc.kill()
        self.daemon.proc.wait()
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 6, err)
        self.assertIn(f'Migration 1 to far:{tgt} failed on this host: vfiomigd left the bus\n', err)
        # not an empty outcome: what will become of it
        self.assertIn(f'source {src}: unknown (vfiomigd here left the bus; it sets the source running again', err)
        self.restart_daemon()
        self.assertEqual(self.state(src), 'running')
        wait_until(lambda: not self.migrations(self.remote_conn), 30, 'the load there to end')
        self.assertEqual(self.remote.state(tgt), 'running')


if __name__ == '__main__':
    main()
