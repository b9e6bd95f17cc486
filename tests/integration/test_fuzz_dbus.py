#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A D-Bus argument fuzzer against the real daemon and its testbed.

For a bounded time, worker threads call every method of the Manager and
Testbed interfaces (as introspection lists them) and Cancel on jobs, with
arguments that are random, hostile or of the wrong type: empty and 64 KiB
strings, names that try to leave a directory, options of other types and
unknown keys, file descriptors of every odd kind, concurrent calls on one
device, and Cancel of root's jobs by user nobody. Then it checks that the
daemon still serves and exits cleanly, that every device runs again once
the jobs have settled, and that nothing was written outside the daemon's
state directory.

VFIOMIG_FUZZ_SEED picks the random seed (printed), VFIOMIG_FUZZ_SECONDS
the duration. The fuzzer never asks for a "stop" target-state or
source-state, so a device may be left stopped only as the source of a
migration that succeeded.
"""

import collections
import os
import random
import select
import shutil
import socket
import tempfile
import threading
import time
import uuid

from gi.repository import Gio, GLib
from vfiomigtest import (BUS_NAME, MANAGER, MIGRATION, OBJECT_PATH, TESTBED, DaemonTestCase, main, run,
                         wait_until)

SEED = int(os.environ.get('VFIOMIG_FUZZ_SEED', '20261202'))
SECONDS = float(os.environ.get('VFIOMIG_FUZZ_SECONDS', '35'))
WORKERS = 4
ERR = 'org.vfiomig1.Error.'
# what a daemon that died or hangs looks like to a caller
DEAD = ('org.freedesktop.DBus.Error.NoReply', 'org.freedesktop.DBus.Error.Timeout',
        'org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.NameHasNoOwner',
        'org.freedesktop.DBus.Error.Disconnected')

# Options each method takes, by type (man org.vfiomig1, Migration options).
JOB = {'precopy': 'b', 'max-precopy-rounds': 'u', 'precopy-threshold': 't', 'io-timeout': 'u'}
OPTIONS = {
    'Migrate': {**JOB, 'target-state': 's', 'devices': 'as', 'allow-no-p2p': 'b', 'allow-unknown': 'b'},
    'Save': {**JOB, 'source-state': 's', 'overwrite': 'b'},
    'SaveFd': {**JOB, 'source-state': 's', 'overwrite': 'b'},
    'Load': {'io-timeout': 'u', 'target-state': 's', 'allow-unknown': 'b'},
    'LoadFd': {'io-timeout': 'u', 'target-state': 's', 'allow-unknown': 'b', 'prefetch': 'b'},
    'FindTargets': {'existing-only': 'b', 'include-unknown': 'b'},
    'CreateMdev': {}, 'RemoveMdev': {}, 'Probe': {}, 'RefreshDevice': {},
}
# Faults that make jobs fail and roll back, but leave no device broken for
# good: no reset faults, no stalls and no long delays.
FAULTS = ['transition from=stop-copy to=stop errno=EIO count=1', 'transition to=running errno=EIO count=1',
          'transition from=running to=stop-copy errno=EIO land=error count=1', 'read-error after=100 count=1',
          'write-error after=10 count=1', 'short-io chunk=3', 'precopy-info errno=EIO count=2',
          'transition to=resuming delay=50 errno=0 count=1']


def wrong_value(rng, want):
    """A variant of any type but want, or a hostile one of it."""
    choices = [GLib.Variant('s', rng.choice(['', 'yes', 'x' * 65536])), GLib.Variant('i', -1),
               GLib.Variant('u', 0xffffffff), GLib.Variant('t', 2 ** 64 - 1), GLib.Variant('b', True),
               GLib.Variant('d', float('nan')), GLib.Variant('as', ['a', '=', '']),
               GLib.Variant('v', GLib.Variant('s', 'nested')), GLib.Variant('a{sv}', {}),
               GLib.Variant('(ss)', ('a', 'b')), GLib.Variant('ay', bytes(rng.randrange(256) for _ in range(8))),
               GLib.Variant('o', '/org/vfiomig1')]
    return rng.choice([v for v in choices if v.get_type_string() != want])


class Fuzzer:
    """One worker's random source and view of the daemon; the shared
    record of results is the test's."""

    def __init__(self, test, rng, names):
        self.t = test
        self.rng = rng
        self.names = names

    # strings

    def hostile(self):
        m = self.t.marker
        return self.rng.choice([
            '', ' ', 'x' * 65536, '../../etc/passwd', 'a/b', '.x', '.', '..', '/', '\n', '\t', 'ü' * 300,
            '\u202e', '%s%n%s', '-', '*', '=', '==', 'x' * 255, 'x' * 256, '0000:3b:00.1/..', '0000:3b:00.1 ',
            '0000:3b:00.1\n', 'mtty/../mtty', 'type:mtty/mtty-1', '/tmp/' + m, '../' * 16 + 'tmp/' + m,
            '../' + m, m + '/x', str(uuid.UUID(int=0)), '0000:3b:00.1=0000:3b:00.2', 'stop', 'running'])

    def device(self):
        n, r = self.names, self.rng.random()
        if r < 0.75:
            return self.rng.choice(n['devices'] + [d.upper() for d in n['devices'][:1]])
        return self.rng.choice(n['types'] + n['parents']) if r < 0.85 else self.hostile()

    def string(self, method, arg):
        r = self.rng.random()
        if arg == 'fault':
            return self.rng.choice(FAULTS) if r < 0.5 else self.hostile()
        if arg == 'file':
            return f'fuzz-{self.rng.randrange(6)}' if r < 0.6 else self.hostile()
        if arg == 'uuid':
            return '' if r < 0.3 else str(uuid.uuid4()) if r < 0.5 else self.device()
        if arg == 'parent':
            return self.rng.choice(self.names['parents']) if r < 0.6 else self.hostile()
        if arg == 'type' and method == 'CreateMdev':
            return self.rng.choice(self.names['type_ids']) if r < 0.6 else self.hostile()
        if arg == 'version':
            return self.rng.choice(['', '1.0', '28.39.1010', 'x' * 4097]) if r < 0.6 else self.hostile()
        return self.device()

    # options

    def value(self, key, want):
        rng = self.rng
        if want == 'b':
            return GLib.Variant('b', rng.random() < 0.5)
        if key == 'io-timeout':
            return GLib.Variant('u', rng.choice([1, 2, 3]))
        if want == 'u':
            return GLib.Variant('u', rng.choice([0, 1, 2]))
        if want == 't':
            return GLib.Variant('t', rng.choice([0, 4096, 2 ** 64 - 1]))
        if key in ('target-state', 'source-state'):
            return GLib.Variant('s', 'running')         # never "stop": see the module's doc
        if key == 'devices':
            return GLib.Variant('as', [f'{self.device()}={self.device()}' for _ in range(rng.randrange(3))])
        raise AssertionError(key)

    def options(self, method):
        """The options and whether the daemon must refuse them."""
        allowed = OPTIONS.get(method)
        if allowed is None:
            return {}, False
        opts, bad = {}, False
        for key, want in allowed.items():
            if self.rng.random() < (0.1 if key == 'devices' else 0.3):
                opts[key] = self.value(key, want)
        # a save that leaves its source stopped is the one thing we do not want
        if method in ('Save', 'SaveFd'):
            opts['source-state'] = GLib.Variant('s', 'running')
        r = self.rng.random()
        if r < 0.15:
            opts[self.rng.choice(['bogus', '', 'x' * 1000, 'precopy ', 'Precopy', 'overwrite!'])] = GLib.Variant('b', True)
            bad = True
        elif r < 0.3 and allowed:
            key = self.rng.choice(list(allowed))
            opts[key] = wrong_value(self.rng, allowed[key])
            bad = True
        elif r < 0.4 and allowed:
            key = self.rng.choice([k for k in allowed if allowed[k] in 'us'] or list(allowed))
            if key == 'io-timeout':
                opts[key] = GLib.Variant('u', self.rng.choice([0, 86401, 0xffffffff]))
                bad = True
            elif allowed[key] == 's' and key != 'devices':
                opts[key] = GLib.Variant('s', self.rng.choice(['bogus', '', 'RUNNING!', 'stop ', 'x' * 65536]))
                bad = True
        return opts, bad

    # file descriptors

    def fd(self, method):
        """An fd to send (ours is closed after the call) and what is done
        with our end of it afterwards."""
        kind = self.rng.choice(['dir', 'opath', 'devnull', 'socket', 'pipe-r', 'pipe-w', 'file', 'file'])
        after = None
        if kind == 'dir':
            fd = os.open(self.t.fdtree, os.O_RDONLY | os.O_DIRECTORY)
        elif kind == 'opath':
            fd = os.open(self.t.fdtree, os.O_PATH)
        elif kind == 'devnull':
            fd = os.open('/dev/null', self.rng.choice([os.O_RDONLY, os.O_WRONLY]))
        elif kind == 'socket':
            ours, fd_sock = socket.socketpair()
            fd = fd_sock.detach()
            after = self.peer(ours.detach())
        elif kind == 'pipe-r':
            fd, w = os.pipe()
            after = self.peer(w, writer=True)
        elif kind == 'pipe-w':
            r, fd = os.pipe()
            after = self.peer(r)
        else:
            f = tempfile.TemporaryFile(dir=self.t.fdtree)       # unnamed: nothing to list
            if self.rng.random() < 0.5:
                f.write(self.rng.choice([b'', b'VFIOMIG\x01', os.urandom(self.rng.randrange(1, 4096))]))
                f.seek(0)
            fd = os.dup(f.fileno())
            f.close()
        return kind, fd, after

    def peer(self, fd, writer=False):
        """What we do with our end: close it at once, feed it junk, or
        drain what the daemon writes, in a thread, for at most 30 s."""
        how = self.rng.choice(['close', 'io'])

        def io():
            try:
                if writer:
                    os.write(fd, os.urandom(self.rng.randrange(0, 8192)))
                    return
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if select.select([fd], [], [], 1)[0] and not os.read(fd, 1 << 16):
                        return
            except OSError:
                pass
            finally:
                os.close(fd)

        if how == 'close':
            return lambda: os.close(fd)
        return lambda: threading.Thread(target=io, daemon=True).start()

    # calls

    def args(self, method, in_args):
        """A GLib.Variant tuple for the in-args, the fd list, what to do
        afterwards, and whether the daemon must answer InvalidArgument."""
        values, sig, fds, afters, bad = [], '', [], [], False
        for a in in_args:
            t = a.signature
            if t == 's':
                v = self.string(method, a.name)
            elif t == 'a{sv}':
                v, bad_opts = self.options(method)
                bad = bad or bad_opts
            elif t == 'h':
                kind, fd, after = self.fd(method)
                v = len(fds)
                fds.append(fd)
                if after:
                    afters.append(after)
                if kind in ('dir', 'opath', 'devnull'):
                    bad = bad or 'fail'
            elif t == 't':
                v = self.rng.choice([0, 1, 1 << 20, 1 << 40, 2 ** 64 - 1])
            elif t == 'u':
                v = self.rng.choice([0, 1, 2 ** 32 - 1])
            else:
                return None
            values.append(v)
            sig += t
        return GLib.Variant(f'({sig})', tuple(values)), fds, afters, bad

    def call(self, iface, method, in_args):
        built = self.args(method, in_args)
        if built is None:
            return
        params, fds, afters, must_refuse = built
        # now and then arguments of the wrong signature altogether
        if self.rng.random() < 0.05:
            wrong = [p for p in (None, GLib.Variant('(s)', ('x',)), GLib.Variant('(u)', (1,)),
                                 GLib.Variant('(sss)', ('a', 'b', 'c')))
                     if (p.get_type_string() if p else '()') != params.get_type_string()]
            params = self.rng.choice(wrong)
            must_refuse = 'args'
        fd_list = Gio.UnixFDList.new_from_array(fds) if fds else None     # takes our fds
        try:
            reply = self.t.conn.call_with_unix_fd_list_sync(BUS_NAME, OBJECT_PATH, iface, method, params, None,
                                                            Gio.DBusCallFlags.NONE, 60000, fd_list, None)
            result = 'ok'
        except GLib.Error as e:
            reply, result = None, Gio.DBusError.get_remote_error(e) or f'local: {e.message}'
        finally:
            for a in afters:
                a()
        self.t.record(method, params, result, must_refuse)
        if reply and method in OPTIONS and reply[0].get_type_string() == '(uo)':
            self.t.add_job(*reply[0].unpack())

    def cancel(self):
        jobs = self.t.job_paths()
        if not jobs:
            return
        path = self.rng.choice(jobs)
        if self.rng.random() < 0.5:
            # nobody may never cancel root's job
            p = run(['busctl', '--system', 'call', BUS_NAME, path, MIGRATION, 'Cancel'], user='nobody', timeout=30)
            self.t.record('Cancel(nobody)', path, 'ok' if p.returncode == 0 else p.stderr.strip()[:80],
                          'nobody')
            return
        try:
            self.t.conn.call_sync(BUS_NAME, path, MIGRATION, 'Cancel', None, None, Gio.DBusCallFlags.NONE,
                                  60000, None)
            result = 'ok'
        except GLib.Error as e:
            result = Gio.DBusError.get_remote_error(e) or f'local: {e.message}'
        self.t.record('Cancel', path, result, False)

    def burst(self, methods):
        """Several calls on one device at once."""
        dev = self.rng.choice(self.names['devices'])
        picks = [m for m in methods if m[1] in ('Migrate', 'Save', 'Probe', 'Reset', 'InjectFault', 'SaveFd',
                                                'GetDigest', 'Resume', 'RemoveMdev')]
        barrier = threading.Barrier(4)
        workers = []
        for i in range(4):
            f = Fuzzer(self.t, random.Random(self.rng.random()), dict(self.names, devices=[dev]))

            def go(f=f, m=self.rng.choice(picks)):
                barrier.wait()
                f.call(*m)
            workers.append(threading.Thread(target=go))
        for w in workers:
            w.start()
        for w in workers:
            w.join()


class DBusFuzzTest(DaemonTestCase):
    with_polkit = True      # nobody's calls are judged by (mock) polkit

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='vfiomig-fuzz-')
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        os.chmod(cls.tmp, 0o755)
        cls.state_dir = os.path.join(cls.tmp, 'state')
        cls.runtime_dir = os.path.join(cls.tmp, 'run')
        # bait: ../../etc/passwd from the state directory's states/ is this
        os.makedirs(os.path.join(cls.tmp, 'etc'))
        with open(os.path.join(cls.tmp, 'etc', 'passwd'), 'w', encoding='utf-8') as f:
            f.write('root:x:0:0::/root:/bin/sh\n')
        cls.fdtree = os.path.join(cls.tmp, 'fds')
        os.makedirs(cls.fdtree)
        cls.marker = f'vfiomig-fuzz-canary-{os.getpid()}'
        cls.daemon_env = {'RUNTIME_DIRECTORY': cls.runtime_dir, 'STATE_DIRECTORY': cls.state_dir}
        super().setUpClass()

    def setUp(self):
        self.lock = threading.Lock()
        self.results = collections.Counter()
        self.violations = []
        self.jobs = {}

    # shared record

    def record(self, method, args, result, must_refuse):
        text = repr(args.unpack() if isinstance(args, GLib.Variant) else args)
        if len(text) > 300:
            text = text[:300] + '...'
        bad = None
        if result in DEAD or result.startswith('local:'):
            bad = 'the daemon did not answer'
        elif must_refuse == 'args' and result == 'ok':
            bad = 'a call of the wrong signature succeeded'
        elif must_refuse == 'nobody' and result == 'ok':
            bad = "nobody cancelled root's job"
        elif must_refuse is True and result != ERR + 'InvalidArgument':
            bad = 'invalid options not refused with InvalidArgument'
        elif must_refuse == 'fail' and result == 'ok':
            bad = 'a directory, O_PATH or device fd was taken for a stream'
        with self.lock:
            self.results[(method, result)] += 1
            if bad:
                self.violations.append(f'{bad}: {method}{text} -> {result}')

    def add_job(self, job_id, path):
        with self.lock:
            self.jobs[job_id] = path

    def job_paths(self):
        with self.lock:
            return list(self.jobs.values())

    # views

    def names(self):
        devices = sorted(self.devices())
        types = self.types()
        return {'devices': devices, 'types': sorted(f'{p}/{i}' for p, i in types),
                'type_ids': sorted({i for _, i in types}), 'parents': sorted({p for p, _ in types})}

    def methods(self):
        xml = self.call('Introspect', interface='org.freedesktop.DBus.Introspectable')[0]
        node = Gio.DBusNodeInfo.new_for_xml(xml)
        found = [(iface.name, m.name, m.in_args) for iface in node.interfaces if iface.name in (MANAGER, TESTBED)
                 for m in iface.methods]
        self.assertIn((MANAGER, 'Migrate'), [(i, m) for i, m, _ in found])
        self.assertIn((TESTBED, 'InjectFault'), [(i, m) for i, m, _ in found])
        return found

    def listing(self):
        """Every file outside the daemon's directories, with its content."""
        out = {}
        for root, dirs, files in os.walk(self.tmp):
            if root == self.tmp:
                dirs[:] = [d for d in dirs if os.path.join(root, d) not in (self.state_dir, self.runtime_dir)]
            for name in dirs + files:
                p = os.path.join(root, name)
                st = os.lstat(p)
                data = open(p, 'rb').read() if os.path.isfile(p) and not os.path.islink(p) else b''
                out[p] = (st.st_mode, st.st_size, data)
        return out

    def canaries(self):
        return sorted(n for n in os.listdir('/tmp') if self.marker in n)

    def settle(self):
        """Cancels what still runs and waits until no job is left."""
        for job in self.call('ListMigrations')[0]:
            try:
                self.call('Cancel', path=job[5], interface=MIGRATION)
            except GLib.Error:
                pass        # ended meanwhile, or finishing
        wait_until(lambda: not self.call('ListMigrations')[0], 90, 'the jobs to settle')

    def last_outcomes(self):
        """Each device's outcome in the last job that touched it. The jobs
        are the daemon's (ended ones stay for 10 minutes), not only those
        whose reply reached a fuzzer thread: under a sanitizer a reply can
        time out after the job started. A job that failed before it touched
        a target ("untouched") says nothing about the device's state: a
        migration before it may have left it stopped, legitimately."""
        xml = self.call('Introspect', path='/org/vfiomig1/migration',
                        interface='org.freedesktop.DBus.Introspectable')[0]
        ids = sorted(int(n.path) for n in Gio.DBusNodeInfo.new_for_xml(xml).nodes)
        last = {}
        for job_id in ids:
            try:
                devices = self.get_property(f'/org/vfiomig1/migration/{job_id}', MIGRATION, 'Devices')
            except GLib.Error:
                continue    # gone again
            for name, _role, outcome in devices:
                if outcome != 'untouched':
                    last[name] = (job_id, outcome)
        return last

    def test_fuzz(self):
        print(f'D-Bus fuzzer: seed {SEED} (VFIOMIG_FUZZ_SEED), {SECONDS:g} s (VFIOMIG_FUZZ_SECONDS)', flush=True)
        methods = self.methods()
        names = self.names()
        self.assertTrue(names['devices'])
        before = self.listing()
        canaries = self.canaries()
        deadline = time.monotonic() + SECONDS

        def worker(i):
            rng = random.Random(SEED * 100 + i)
            f = Fuzzer(self, rng, names)
            while time.monotonic() < deadline:
                r = rng.random()
                if r < 0.08:
                    f.cancel()
                elif r < 0.12:
                    f.burst(methods)
                else:
                    f.call(*rng.choice(methods))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.settle()

        summary = collections.Counter()
        for (method, result), n in self.results.items():
            summary[method] += n
        print(f'{sum(summary.values())} calls, {len(self.jobs)} jobs started:', dict(sorted(summary.items())))
        for (method, result), n in sorted(self.results.items()):
            print(f'  {method:22} {n:5}  {result}')
        self.assertEqual(self.violations, [], '\n'.join(self.violations[:20]))

        # still serving
        self.call('Ping', interface='org.freedesktop.DBus.Peer')
        self.assertTrue(self.daemon.alive(), self.daemon.output()[-3000:])

        # Every device runs, unless the last job that had it was a
        # migration that succeeded and left it, its source, stopped.
        last = self.last_outcomes()
        stopped = {}
        # vDPA devices have no VFIO state: no job may have touched them
        for name, dev in self.devices().items():
            if dev[1] == 'vdpa':
                self.assertEqual(dev[5], '', name)
                continue
            state = dev[5]
            if state == 'running' and self.state(name) == 'running':
                continue
            if last.get(name, (None, ''))[1] == 'stop':
                self.tb('Reset', '(s)', name)      # as a VMM would before using it again
                continue
            stopped[name] = (state, self.state(name), last.get(name),
                             self.tb('GetTransitions', '(s)', name)[0][-4:])
        self.assertEqual(stopped, {}, 'devices left not running (state, simulated state, last job, last arcs)')
        for name, dev in self.devices().items():
            if dev[1] != 'vdpa':
                self.assertEqual((dev[5], self.state(name)), ('running', 'running'), name)

        # nothing written outside the state directory
        self.assertEqual(self.canaries(), canaries)
        after = self.listing()
        self.assertEqual(sorted(set(after) ^ set(before)), [])
        changed = [p for p in before if before[p] != after[p]]
        self.assertEqual(changed, [])
        for root, _dirs, files in os.walk(self.state_dir):
            for name in files:
                self.assertNotIn(self.marker, name)

        # and it exits cleanly, without a sanitizer's word
        rc = self.daemon.stop()
        out = self.daemon.output()
        self.assertEqual(rc, 0, out[-3000:])
        for word in ('AddressSanitizer', 'LeakSanitizer', 'runtime error:', 'UndefinedBehaviorSanitizer'):
            self.assertNotIn(word, out)

    @classmethod
    def tearDownClass(cls):
        cls.conn.close_sync(None)
        cls.daemon.stop()

    def tearDown(self):
        pass        # the test stops the daemon itself


if __name__ == '__main__':
    main()
