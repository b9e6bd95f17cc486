#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigctl migrate to another host through a real sshd.

Debian's sshd listens on 127.0.0.1:22 in a network namespace of this
test's own, with a host key, a configuration and a client key of its own
(public keys only, no PAM); ssh reaches it with the client key and a
known_hosts file that holds the host key, and checks it. As in
test_crosshost.py two vfiomigd on two private buses stand for the two
hosts: the sshd hands its sessions the remote one's bus and the build's
vfiomigctl (SetEnv), and the remote user's shell runs what ssh sends.

Needs root and openssh-server and openssh-client (tests/deps.sh test).
Where it cannot run, it exits 77 (meson: SKIP) with the reason on
stderr; with CI=true that is a failure."""

import atexit
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

from test_crosshost import BIG_SRC, BIG_TGT, CLIENT_DIR, OTHER, SRC, TGT, CrossHostTestCase
from vfiomigtest import VFIOMIGCTL, cannot_run, main, wait_until

SSHD = '/usr/sbin/sshd'
PRIVSEP_DIR = '/run/sshd'       # Debian's sshd refuses to start without it
HOST = 'root@127.0.0.1'

SSHD_CONFIG = '''\
ListenAddress 127.0.0.1
Port 22
HostKey {dir}/host_key
PidFile none
UsePAM no
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile {dir}/authorized_keys
# sshd checks every directory above authorized_keys up to / unless it
# passes the user's home: /tmp is writable by all, which would refuse it
StrictModes no
PermitUserEnvironment no
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
# the other host: its system bus, and its vfiomigctl on the PATH
SetEnv DBUS_SYSTEM_BUS_ADDRESS={address} PATH={client}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin{more}
LogLevel VERBOSE
'''


class Unavailable(Exception):
    """This machine cannot run a private sshd; the message says why."""


def bring_up_loopback():
    """A new network namespace's lo is down: SIOCSIFFLAGS with IFF_UP."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack('16sH22x', b'lo', 0)
        flags = struct.unpack('16sH22x', fcntl.ioctl(s, siocgifflags, ifreq))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack('16sH22x', b'lo', flags | iff_up))


# the namespace this process made for itself, once it has
own_namespace = []


def enter_network_namespace():
    """This process (no thread runs yet) and its children in a network
    namespace of their own: port 22 is ours, and nothing listens beyond
    the test."""
    clone_newnet = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(clone_newnet) != 0:
        raise Unavailable(f'unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}')
    bring_up_loopback()
    own_namespace.append(os.readlink('/proc/self/ns/net'))


def unavailable_reason():
    if os.geteuid() != 0:
        return 'it is not running as root (sshd, and a network namespace of its own)'
    for program in (SSHD, shutil.which('ssh'), shutil.which('ssh-keygen')):
        if not program or not os.access(program, os.X_OK):
            return 'openssh-server or openssh-client is not installed (tests/deps.sh test installs them)'
    try:
        enter_network_namespace()
    except (Unavailable, OSError) as e:
        return str(e)
    return None


def sshd_processes():
    """The listener and the sessions it forked: every sshd in this
    process's network namespace is ours."""
    ours = own_namespace[0]
    pids = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/comm', encoding='utf-8') as f:
                if f.read().strip() == 'sshd' and os.readlink(f'/proc/{pid}/ns/net') == ours:
                    pids.append(int(pid))
        except OSError:
            continue        # gone meanwhile
    return pids


def sanitizer_env():
    """The sanitizer tier's options (tests/sanitize/run.sh), so that the
    vfiomigctl there reports where the one here does."""
    names = ('ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS')
    return ''.join(f' "{n}={os.environ[n]}"' for n in names if n in os.environ)


class Sshd:
    """sshd -D with everything it reads in dir. Stopped with its sessions
    by the class's cleanup, or at exit; when the test process is killed,
    the kernel kills the listener (setpriv --pdeathsig), and a session
    ends with the ssh that opened it."""

    def __init__(self, dir, remote_address):
        self.dir = dir
        self.proc = None
        self.made_privsep_dir = False
        for key in ('host_key', 'client_key'):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', key, '-f', os.path.join(dir, key)],
                           check=True, capture_output=True)
        shutil.copy(os.path.join(dir, 'client_key.pub'), os.path.join(dir, 'authorized_keys'))
        with open(os.path.join(dir, 'host_key.pub'), encoding='utf-8') as f:
            host_key = f.read().split()
        with open(os.path.join(dir, 'known_hosts'), 'w', encoding='utf-8') as f:
            f.write(f'127.0.0.1 {host_key[0]} {host_key[1]}\n')
        self.config = os.path.join(dir, 'sshd_config')
        with open(self.config, 'w', encoding='utf-8') as f:
            f.write(SSHD_CONFIG.format(dir=dir, address=remote_address, client=CLIENT_DIR, more=sanitizer_env()))
        self.logpath = os.path.join(dir, 'sshd.log')
        # the client as a user would call it, only with no configuration
        # of the user's or the machine's, and nothing to ask
        self.command = (f'ssh -F none -i {dir}/client_key -o IdentitiesOnly=yes -o IdentityAgent=none '
                        f'-o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={dir}/known_hosts '
                        f'-o GlobalKnownHostsFile=/dev/null')

    def start(self):
        if not os.path.isdir(PRIVSEP_DIR):
            os.mkdir(PRIVSEP_DIR, 0o755)
            self.made_privsep_dir = True
        check = subprocess.run([SSHD, '-t', '-f', self.config], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f'sshd -t refuses {self.config}: {check.stderr}')
        self.log = open(self.logpath, 'w+', encoding='utf-8')
        # sshd wants its absolute path, to run itself again per connection
        self.proc = subprocess.Popen(['setpriv', '--pdeathsig', 'KILL', SSHD, '-D', '-e', '-f', self.config],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        atexit.register(self.stop)
        wait_until(lambda: self.listening() or self.proc.poll() is not None, 20, 'sshd to listen')
        if self.proc.poll() is not None:
            raise RuntimeError('sshd exited at start:\n' + self.output())

    def listening(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            return s.connect_ex(('127.0.0.1', 22)) == 0

    def output(self):
        with open(self.logpath, encoding='utf-8', errors='replace') as f:
            return f.read()

    def sessions(self):
        """How many commands it has started for root with our key."""
        return self.output().count('Starting session: command for root from 127.0.0.1')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in sshd_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc:
            self.log.close()
        if self.made_privsep_dir:
            try:
                os.rmdir(PRIVSEP_DIR)
            except OSError:
                pass
            self.made_privsep_dir = False


class SshdTest(CrossHostTestCase):

    @classmethod
    def setUpClass(cls):
        # never the machine's port 22, nor its sshd to stop
        if not own_namespace or os.readlink('/proc/self/ns/net') != own_namespace[0]:
            raise unittest.SkipTest('run as a program: it makes a network namespace of its own first')
        super().setUpClass()
        cls.sshd_dir = tempfile.mkdtemp(prefix='vfiomig-sshd-')
        cls.addClassCleanup(shutil.rmtree, cls.sshd_dir, True)
        cls.sshd = Sshd(cls.sshd_dir, cls.remote_bus.address)
        cls.addClassCleanup(cls.sshd.stop)
        cls.sshd.start()

    def tearDown(self):
        super().tearDown()
        if self.sshd.proc.poll() is not None:
            self.fail('sshd died:\n' + self.sshd.output())

    def ssh_ctl(self, *args, timeout=120):
        p = self.ctl(*args, ssh=self.sshd.command, timeout=timeout)
        print(f'\nvfiomigctl {" ".join(args)}: exit status {p.returncode}\n{p.stderr}', end='', flush=True)
        return p

    def test_migrate_through_sshd(self):
        src, tgt = SRC[0], TGT[0]
        self.scramble(src)
        before = self.digest(src)
        self.assertNotEqual(self.remote.digest(tgt), before)
        sessions = self.sshd.sessions()
        p = self.ssh_ctl('migrate', src, f'{HOST}:{tgt}')
        self.assertEqual(p.returncode, 0, p.stderr + self.sshd.output())
        self.assertRegex(p.stderr, rf'Migration \d+ to {HOST}:{tgt} done: 4\.0.MiB, downtime \d+\.\d{{3}} ms, '
                                   r'\d+ pre-copy rounds?\.')
        self.assertEqual(self.remote.digest(tgt), before)
        self.assertEqual((self.state(src), self.remote.state(tgt)), ('stop', 'running'))
        # the question and the stream, each a session of this sshd's, with our key
        self.assertEqual(self.sshd.sessions() - sessions, 2, self.sshd.output())
        self.assertIn('Accepted publickey for root from 127.0.0.1', self.sshd.output())

    def test_incompatible_target_refused_through_sshd(self):
        src = SRC[1]
        before = (self.digest(src), self.remote.digest(OTHER))
        arcs = self.tb('GetTransitions', '(s)', src)[0]
        sessions = self.sshd.sessions()
        p = self.ssh_ctl('migrate', src, f'{HOST}:{OTHER}')
        self.assertEqual(p.returncode, 1, p.stderr + self.sshd.output())
        self.assertIn(f'Refusing to move {src} to {HOST}:{OTHER}: {HOST} finds it incompatible', p.stderr)
        self.assertIn('different migration types: sim-4m and sim-other', p.stderr)
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        self.assertEqual(self.tb('GetTransitions', '(s)', src)[0], arcs)    # the source never left RUNNING
        self.assertEqual((self.remote.state(OTHER), self.remote.digest(OTHER)), ('running', before[1]))
        self.assertEqual(self.sshd.sessions() - sessions, 1)                # only the question went there

    def test_remote_command_killed_through_sshd(self):
        """The load there killed while the source here stalls mid-state:
        sshd closes its input, the load there fails without touching the
        target, ssh ends with 255, and the job here is cancelled."""
        src, tgt = BIG_SRC, BIG_TGT
        before = (self.digest(src), self.remote.digest(tgt))
        self.tb('InjectFault', '(ss)', src, 'stall after=1048576')
        p = subprocess.Popen([VFIOMIGCTL, f'--ssh={self.sshd.command}', '--io-timeout=600', 'migrate', src,
                              f'{HOST}:{tgt}'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.kill_remote_load_when_stalled(tgt, 1048576)
        _, err = p.communicate(timeout=60)
        print(f'\nvfiomigctl migrate: exit status {p.returncode}\n{err}', end='', flush=True)
        self.assertEqual(p.returncode, 6, err)
        self.assertRegex(err, rf'Migration \d+ to {HOST}:{tgt} failed: ssh to {HOST} failed \(exit status 255\)')
        self.assertRegex(err, rf'source {src}: (restored|reset) to running')
        self.assertIn(f'(on this host: cancelled, as {HOST} had ended)', err)
        self.assertEqual((self.state(src), self.digest(src)), ('running', before[0]))
        wait_until(lambda: not self.migrations(self.remote_conn), 30, 'the load there to end')
        self.assertEqual((self.remote.state(tgt), self.remote.digest(tgt)), ('running', before[1]))


if __name__ == '__main__':
    reason = unavailable_reason()
    if reason:
        cannot_run('sshd', reason)
    # a runner's SIGTERM (meson's timeout) still runs the cleanups and atexit
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
