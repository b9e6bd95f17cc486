# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real libvirtd on the build machine, for tests of libvirt hooks.

Libvirtd runs virtlogd and libvirtd (Debian 12: libvirt 9.0, QEMU 7.2) as
child processes of the test, without systemd, with their pid files in a
temporary directory, and a small QEMU TCG domain on them. It installs
nothing: tests/deps.sh installs libvirt-daemon, libvirt-daemon-driver-qemu,
libvirt-clients and qemu-system-x86 (not libvirt-daemon-system, which brings
systemd units, polkit rules and AppArmor profiles). What that package's
postinst would otherwise have made, libvirtd cannot do without: the user
libvirt-qemu and the groups libvirt-qemu and kvm are created when missing
and stay (like a package's users); /var/log/libvirt and every directory
and cgroup libvirtd creates are removed again when they were not there
before.

Hooks: a test hands in any executable; it is copied into
/etc/libvirt/hooks/qemu.d/ before libvirtd starts, because libvirtd 9.0
looks for hooks only at start (with an empty or absent qemu.d it never
calls one, even after a script is added). Once one was there at start,
set_hook() may replace it at any time. /etc/libvirt/hooks is put back
exactly as it was (checked). RecordingHook is such an executable: it
records each call (argv, cwd, environment, uid and stdin) and can fail on
chosen operations.

Libvirtd refuses (Unavailable) rather than touch anything when a libvirtd or
virtlogd already runs, or when other qemu hooks are installed (they would
run in the test, and it in them). Only one harness runs at a time on the
machine (a lock in /run/lock).

Teardown (stop(), also at exit) holds SIGTERM and SIGINT until it is done.
A run killed outright leaves a journal, /run/vfiomig-libvirtd-test.json,
from which the next start() kills its QEMU and puts the files back."""

import atexit
import errno
import fcntl
import glob
import grp
import hashlib
import json
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

URI = 'qemu:///system'
HOOKS_DIR = '/etc/libvirt/hooks'
QEMU_HOOKS_DIR = os.path.join(HOOKS_DIR, 'qemu.d')
LOCK_PATH = '/run/lock/vfiomig-libvirtd-test.lock'
# What a run changed, until its teardown is complete: a run killed outright
# (meson kills the process group 0.5 s after its SIGTERM on a timeout; QEMU,
# in its own session, survives that) is undone by the next start().
JOURNAL_PATH = '/run/vfiomig-libvirtd-test.json'

# libvirtd's own socket, as libvirtd 9.0 prints it in --help; clients (virsh,
# the URI's default) name it /var/run/libvirt/libvirt-sock. On Debian 12
# /var/run is a symlink to /run, so both are one file; socket_path() checks.
SOCKET_PATHS = ('/run/libvirt/libvirt-sock', '/var/run/libvirt/libvirt-sock')
VIRTLOGD_SOCKET = '/run/libvirt/virtlogd-sock'

# Directories libvirtd (and the harness) may create; each one that was not
# there before start() is removed by stop().
STATE_DIRS = ('/run/libvirt', '/var/lib/libvirt', '/var/cache/libvirt', '/var/log/libvirt')
CONFIG_DIR = '/etc/libvirt'
# Without systemd (machined) libvirtd makes its /machine partition itself, in
# every cgroup v1 hierarchy or in the v2 root; emptied again when the
# domains stop.
CGROUP_GLOBS = ('/sys/fs/cgroup/machine', '/sys/fs/cgroup/*/machine')

# What systemd gives a system service without User= (systemd.exec(5): only
# PATH, and LANG from the locale): libvirtd's environment decides what its
# hooks see, since it passes LC_ALL=C and a fixed list of its own variables.
SERVICE_ENV = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               'LANG': 'C.UTF-8'}

PROGRAMS = {'libvirtd': '/usr/sbin/libvirtd', 'virtlogd': '/usr/sbin/virtlogd',
            'virsh': '/usr/bin/virsh', 'qemu-system-x86_64': '/usr/bin/qemu-system-x86_64'}
QEMU_DRIVER = '/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so'

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>{emulator}</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Unavailable(Exception):
    """This machine cannot run the harness; the message says why."""


def unavailable_reason():
    """Why the harness cannot run here at all (a sentence), or None.
    Cheap: nothing is started or changed."""
    if os.geteuid() != 0:
        return f'a real libvirtd needs root (running as uid {os.geteuid()})'
    missing = [p for p in PROGRAMS.values() if not os.access(p, os.X_OK)]
    if not os.path.exists(QEMU_DRIVER):
        missing.append(QEMU_DRIVER)
    if missing:
        return (f'{", ".join(missing)} missing (tests/deps.sh test installs libvirt-daemon, '
                'libvirt-daemon-driver-qemu, libvirt-clients, qemu-system-x86)')
    # a running libvirtd is checked by start(), under the lock: it may be
    # another harness's, about to stop
    return None


def running_libvirt():
    """A sentence naming a libvirtd or virtlogd that is not ours, or None.
    Zombies do not count: they run nothing."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{pid}/stat', encoding='utf-8', errors='replace') as f:
                stat_line = f.read()
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
        except OSError:
            continue
        comm = stat_line[stat_line.index('(') + 1:stat_line.rindex(')')]
        state = stat_line[stat_line.rindex(')') + 2:].split()[0]
        if comm in ('libvirtd', 'virtlogd') and state != 'Z':
            return f'a {comm} already runs (pid {pid}: {cmdline}); refusing to touch it'
    return None


def tree_state(path):
    """Everything about a directory tree that restoring it must keep: None
    when it does not exist, else each entry's type, mode, owner, mtime and
    content (or link target), by relative path ('.' is the directory
    itself)."""
    if not os.path.lexists(path):
        return None

    def entry(full):
        st = os.lstat(full)
        content = None
        if stat.S_ISLNK(st.st_mode):
            content = os.readlink(full)
        elif stat.S_ISREG(st.st_mode):
            with open(full, 'rb') as f:
                content = hashlib.sha256(f.read()).hexdigest()
        return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns, content)

    state = {'.': entry(path)}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            state[os.path.relpath(full, path)] = entry(full)
    return state


def ensure_users():
    """The user and groups Debian's libvirt 9.0 runs QEMU with (qemu.conf
    defaults user libvirt-qemu, group libvirt-qemu; libvirtd's QEMU driver
    fails to start without them), made as libvirt-daemon-system's postinst
    makes them. Returns what had to be created."""
    created = []
    for group in ('kvm', 'libvirt-qemu'):
        try:
            grp.getgrnam(group)
        except KeyError:
            subprocess.run(['groupadd', '--system', group], check=True)
            created.append('group ' + group)
    try:
        pwd.getpwnam('libvirt-qemu')
    except KeyError:
        subprocess.run(['useradd', '--system', '--gid', 'kvm', '--groups', 'libvirt-qemu',
                        '--home-dir', '/var/lib/libvirt', '--no-create-home',
                        '--shell', '/usr/sbin/nologin', '--comment', 'Libvirt Qemu', 'libvirt-qemu'],
                       check=True)
        created.append('user libvirt-qemu')
    if 'libvirt-qemu' not in grp.getgrnam('libvirt-qemu').gr_mem and \
            pwd.getpwnam('libvirt-qemu').pw_gid != grp.getgrnam('libvirt-qemu').gr_gid:
        subprocess.run(['usermod', '--append', '--groups', 'libvirt-qemu', 'libvirt-qemu'], check=True)
        created.append('libvirt-qemu in group libvirt-qemu')
    return created


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read()
    except OSError:
        return b''


def _qemu_pids(domain):
    """The running QEMU processes of a libvirt domain, by their -name."""
    mark = f'guest={domain},'.encode()
    return [int(pid) for pid in filter(str.isdigit, os.listdir('/proc'))
            if _cmdline(pid).startswith(PROGRAMS['qemu-system-x86_64'].encode()) and mark in _cmdline(pid)
            and _alive(pid)]


def _alive(pid):
    """Whether pid runs (a zombie does not: QEMU is reparented to PID 1,
    which in a container may never reap it)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='utf-8', errors='replace') as f:
            line = f.read()
    except OSError:
        return False
    return line[line.rindex(')') + 2:].split()[0] != 'Z'


class RecordingHook:
    """An executable hook (a shell script in directory) that prints
    nothing and records every call in directory/calls/: argv (NUL
    separated, argv[0] included), cwd, the environment exactly as execve()
    gave it (from /proc, before the shell adds PWD), uid and stdin.

    fail_on: (operation, sub-operation) pairs, e.g. [('migrate', 'begin')],
    on which it exits with fail_status after printing fail_message (one line)
    on stderr; it records those calls too."""

    def __init__(self, directory, fail_on=(), fail_message='', fail_status=1):
        self.directory = directory
        self.calls_dir = os.path.join(directory, 'calls')
        os.makedirs(self.calls_dir, exist_ok=True)
        self.path = os.path.join(directory, 'hook')
        cases = ''.join(f'{shlex.quote(op + " " + sub)}) printf "%s\\n" {shlex.quote(fail_message)} >&2; '
                        f'exit {int(fail_status)};;\n        '
                        for op, sub in fail_on)
        script = f"""#!/bin/sh
# A recording libvirt hook, written by tests/integration/libvirtd.py.
set -eu
PATH=/usr/bin:/bin
d={shlex.quote(self.calls_dir)}/$(date +%s%N)-$$
mkdir "$d.part"
printf '%s\\0' "$0" "$@" >"$d.part/argv"
readlink /proc/$$/cwd >"$d.part/cwd"
cat /proc/$$/environ >"$d.part/environ"
id -u >"$d.part/uid"
cat >"$d.part/stdin"
mv "$d.part" "$d"
case "${{2:-}} ${{3:-}}" in
        {cases}*) ;;
esac
exit 0
"""
        with open(self.path, 'w', encoding='utf-8') as f:
            f.write(script)
        os.chmod(self.path, 0o755)

    def calls(self, operation=None, sub_operation=None):
        """The recorded calls, oldest first, each a dict with argv (list of
        str), cwd, env (dict), uid (int) and stdin (bytes); only those for
        operation (argv[2]) and sub_operation (argv[3]) when given."""
        out = []
        for name in sorted(os.listdir(self.calls_dir), key=lambda n: int(n.split('-')[0]) if n[0].isdigit() else 0):
            if name.endswith('.part'):
                continue
            d = os.path.join(self.calls_dir, name)

            def read(field):
                with open(os.path.join(d, field), 'rb') as f:
                    return f.read()
            argv = [a.decode() for a in read('argv').split(b'\0')[:-1]]
            env = dict(e.decode().split('=', 1) for e in read('environ').split(b'\0') if e)
            call = {'argv': argv, 'cwd': read('cwd').decode().rstrip('\n'), 'env': env,
                    'uid': int(read('uid')), 'stdin': read('stdin')}
            if operation is not None and argv[2:3] != [operation]:
                continue
            if sub_operation is not None and argv[3:4] != [sub_operation]:
                continue
            out.append(call)
        return out


_running = set()
_NOT_SEEN = object()


_workdirs = []


def _stop_all():
    try:
        for h in list(_running):
            h.stop()
    finally:
        for d in _workdirs:
            if os.environ.get('VFIOMIG_LIBVIRTD_KEEP'):
                print(f'libvirtd harness: kept {d}', file=sys.stderr)
            else:
                shutil.rmtree(d, ignore_errors=True)


atexit.register(_stop_all)


class Libvirtd:
    """virtlogd and libvirtd as child processes, with hook installed in
    /etc/libvirt/hooks/qemu.d/ under hook_name while they run.

        virt = Libvirtd(workdir, hook=path)
        virt.start()            # raises Unavailable when it may not run here
        dom = virt.start_domain('vfiomig-test')
        virt.virsh('migrate', '--live', dom, virt.migrate_uri())
        virt.stop()             # idempotent; also at exit

    env is libvirtd's whole environment (default: what systemd would give
    it); it decides what hooks see."""

    def __init__(self, workdir, hook, hook_name='50-vfiomig-test', env=None,
                 start_timeout=float(os.environ.get('VFIOMIG_LIBVIRTD_TIMEOUT', '120')),
                 lock_timeout=60):
        self.workdir = workdir
        self.hook = hook
        self.hook_name = hook_name
        self.hook_path = os.path.join(QEMU_HOOKS_DIR, hook_name)
        self.env = dict(SERVICE_ENV if env is None else env)
        self.start_timeout = start_timeout
        self.lock_timeout = lock_timeout
        self.domains = {}               # name: QEMU pid (None until started)
        self.created_users = []
        self.virtlogd = self.libvirtd = None
        self.lock = None
        self.hooks_before = _NOT_SEEN   # until start() has looked
        self.absent_before = []
        self.started = False
        self.config_before = self.config_mtime = None
        self.cgroups_before = None
        self.timings = {}

    # start

    def start(self):
        reason = unavailable_reason()
        if reason:
            raise Unavailable(reason)
        self._take_lock()
        _running.add(self)
        self.started = True
        try:
            # checked again under the lock: another harness may just have stopped
            reason = running_libvirt()
            if reason:
                raise Unavailable(reason)
            if os.path.exists(JOURNAL_PATH):
                self._recover()
            hooks = tree_state(HOOKS_DIR)
            foreign = [p for p in (hooks or {}) if p == 'qemu' or p.startswith('qemu.d/')
                       or (p == 'qemu.d' and not stat.S_ISDIR(hooks[p][0]))]
            if foreign:
                raise Unavailable(f'qemu hooks already installed in {HOOKS_DIR} ({", ".join(sorted(foreign))}); '
                                  'they would run in the test: refusing to touch them')
            self.hooks_before = hooks
            self.created_users = ensure_users()
            if self.created_users:
                print(f'libvirtd harness: created {", ".join(self.created_users)} (they stay)',
                      file=sys.stderr, flush=True)
            self.absent_before = [d for d in (CONFIG_DIR, *STATE_DIRS) if not os.path.lexists(d)]
            if os.path.isdir(CONFIG_DIR):
                self.config_before = set(os.listdir(CONFIG_DIR))
                self.config_mtime = os.stat(CONFIG_DIR).st_mtime_ns
            self.cgroups_before = self._cgroups()
            self._write_journal()
            os.makedirs('/var/log/libvirt/qemu', exist_ok=True)
            self._install_hook()
            t0 = time.monotonic()
            self.virtlogd = self._spawn('virtlogd')
            self._wait(lambda: os.path.exists(VIRTLOGD_SOCKET), self.virtlogd, 'virtlogd to listen')
            self.timings['virtlogd'] = time.monotonic() - t0
            t0 = time.monotonic()
            self.libvirtd = self._spawn('libvirtd')
            self._wait(lambda: self.virsh('uri', timeout=30).returncode == 0, self.libvirtd,
                       f'libvirtd to answer on {URI}')
            self.timings['libvirtd'] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    def restart_libvirtd(self):
        """libvirtd stops and starts again, as on a package upgrade; its
        domains run on, and it finds them again."""
        self.libvirtd.send_signal(signal.SIGTERM)
        self.libvirtd.wait(20)
        self.libvirtd = self._spawn('libvirtd')
        self._wait(lambda: self.virsh('uri', timeout=30).returncode == 0, self.libvirtd,
                   f'libvirtd to answer again on {URI}')

    def _take_lock(self):
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        self.lock = open(LOCK_PATH, 'w', encoding='utf-8')
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                self.lock.close()
                self.lock = None
                raise Unavailable(f'another libvirtd test harness holds {LOCK_PATH}')
            time.sleep(0.2)

    def _install_hook(self):
        if not os.path.isdir(HOOKS_DIR):
            os.makedirs(HOOKS_DIR, mode=0o755)
        if not os.path.isdir(QEMU_HOOKS_DIR):
            os.mkdir(QEMU_HOOKS_DIR, 0o755)
        self.set_hook(self.hook)

    def set_hook(self, executable):
        """Puts executable in place of the installed hook (a copy: it must
        not depend on its own location). libvirtd reads qemu.d on each
        call, so this works while it runs."""
        tmp = os.path.join(QEMU_HOOKS_DIR, '.' + self.hook_name + '.new')
        shutil.copyfile(executable, tmp)
        os.chmod(tmp, 0o644)            # libvirtd skips it until it is in place
        os.replace(tmp, self.hook_path)
        os.chmod(self.hook_path, 0o755)
        self.hook = executable

    def _spawn(self, name):
        # Child processes in the test's process group: a test runner that
        # kills the group on a timeout takes them along. cwd / as under
        # systemd (and libvirtd -d): hooks inherit it.
        log = open(os.path.join(self.workdir, name + '.log'), 'ab')
        try:
            return subprocess.Popen([PROGRAMS[name], '--pid-file', os.path.join(self.workdir, name + '.pid')],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd='/', env=self.env)
        finally:
            log.close()

    def _wait(self, ready, proc, what):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f'{what}: it exited with status {proc.returncode}\n{self.logs()}')
            if ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f'timed out after {self.start_timeout:.0f} s waiting for {what}\n{self.logs()}')

    def logs(self):
        """The daemons' logs and the domains' QEMU logs, for failure reports."""
        out = []
        paths = [os.path.join(self.workdir, n + '.log') for n in ('virtlogd', 'libvirtd')]
        paths += [f'/var/log/libvirt/qemu/{d}.log' for d in self.domains]
        for path in paths:
            try:
                with open(path, encoding='utf-8', errors='replace') as f:
                    text = f.read()
            except OSError:
                continue
            out.append(f'--- {path} ---\n{text[-8000:]}')
        return '\n'.join(out)

    # clients

    def virsh(self, *args, timeout=60, input=None):
        """virsh -c qemu:///system ARGS: the CompletedProcess (text)."""
        return subprocess.run([PROGRAMS['virsh'], '-c', URI, *args], capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def check_virsh(self, *args, timeout=60):
        p = self.virsh(*args, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f'virsh {" ".join(args)} failed ({p.returncode}): {p.stderr.strip()}\n{self.logs()}')
        return p.stdout

    @staticmethod
    def socket_path():
        """libvirtd's read-write socket, as libvirtd itself names it
        (/run/libvirt/libvirt-sock), after checking that the clients' name
        for it (/var/run/...) is the same file."""
        found = [p for p in SOCKET_PATHS if os.path.exists(p)]
        if not found:
            raise RuntimeError(f'no libvirtd socket at {" or ".join(SOCKET_PATHS)}')
        if len(found) == 2 and not os.path.samefile(*found):
            raise RuntimeError(f'{found[0]} and {found[1]} are different files')
        return found[0]

    def migrate_uri(self):
        """A destination URI that passes virsh's same-host check but leads
        back to this libvirtd: its migrate begin hook runs, then libvirtd
        refuses with "Attempt to migrate guest to the same host"."""
        return f'qemu+unix:///system?socket={self.socket_path()}'

    # domains

    def start_domain(self, name, xml=None, memory_mib=64):
        """Defines and starts a domain (default: TCG, no disk, no network,
        no boot device: it sits in the firmware, running) and returns its
        name; stop() destroys and undefines it."""
        if xml is None:
            xml = DOMAIN_XML.format(name=name, memory_mib=memory_mib, emulator=PROGRAMS['qemu-system-x86_64'])
        path = os.path.join(self.workdir, name + '.xml')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(xml)
        self.check_virsh('define', path)
        self.domains[name] = None
        self._write_journal()
        self.check_virsh('start', name)
        self.domains[name] = self.qemu_pid(name)
        self._write_journal()
        return name

    def domain_state(self, name):
        return self.check_virsh('domstate', name).strip()

    def qemu_pid(self, name):
        """The QEMU process of a running domain, from libvirt's pid file."""
        with open(f'/run/libvirt/qemu/{name}.pid', encoding='utf-8') as f:
            return int(f.read().strip())

    # stop

    def stop(self):
        """Destroys and undefines the domains, stops libvirtd and virtlogd,
        removes the hook and every directory that was not there before,
        and checks /etc/libvirt/hooks is as it was. Idempotent. A SIGTERM or
        SIGINT (a test runner's timeout, ^C) waits until it is done: half a
        teardown would leave daemons running and hooks installed."""
        if not self.started:
            return
        signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        errors = []
        try:
            self.started = False
            _running.discard(self)
            for step in (self._stop_domains, self._stop_daemons, self._save_qemu_logs, self._restore_files):
                try:
                    step(errors)
                except Exception as e:  # pylint: disable=broad-except
                    errors.append(f'{step.__name__}: {e!r}')
            if not errors and os.path.exists(JOURNAL_PATH) and self.hooks_before is not _NOT_SEEN:
                os.unlink(JOURNAL_PATH)
            if self.lock is not None:
                self.lock.close()
                self.lock = None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if errors:
            raise RuntimeError('libvirtd harness teardown: ' + '; '.join(errors))

    def _stop_domains(self, errors):
        for name in reversed(list(self.domains)):
            if self.libvirtd is not None and self.libvirtd.poll() is None:
                for args in (('destroy', name), ('undefine', name)):
                    p = self.virsh(*args)
                    if p.returncode != 0 and 'not running' not in p.stderr:
                        errors.append(f'virsh {" ".join(args)}: {p.stderr.strip()}')
            else:
                # libvirtd died (or was signalled with us): undefine by hand
                config = f'{CONFIG_DIR}/qemu/{name}.xml'
                if os.path.exists(config):
                    os.unlink(config)
            # QEMU must not outlive the test (found by its -name: the pid may
            # not have been recorded, or be reused)
            for qemu in _qemu_pids(name):
                errors.append(f'QEMU {qemu} of {name} still ran; killed')
                os.kill(qemu, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _alive(qemu) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.domains = {}

    def _stop_daemons(self, errors):
        for proc in (self.libvirtd, self.virtlogd):
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                errors.append(f'{proc.args[0]} ignored SIGTERM for 20 s; killed')
                proc.kill()
                proc.wait()
        self.libvirtd = self.virtlogd = None

    def _save_qemu_logs(self, errors):
        src = '/var/log/libvirt/qemu'
        if os.path.isdir(src):
            for name in os.listdir(src):
                shutil.copyfile(os.path.join(src, name), os.path.join(self.workdir, 'qemu-' + name))

    def _write_journal(self):
        state = {'hook_path': self.hook_path, 'hooks_before': self.hooks_before,
                 'absent_before': self.absent_before,
                 'config_before': sorted(self.config_before) if self.config_before is not None else None,
                 'config_mtime': self.config_mtime, 'cgroups_before': sorted(self.cgroups_before),
                 'domains': self.domains}
        with open(JOURNAL_PATH + '.new', 'w', encoding='utf-8') as f:
            json.dump(state, f)
        os.replace(JOURNAL_PATH + '.new', JOURNAL_PATH)

    def _recover(self):
        """Finishes the teardown of a run that was killed, from its journal
        (no libvirtd runs: checked under the lock)."""
        with open(JOURNAL_PATH, encoding='utf-8') as f:
            state = json.load(f)
        old = Libvirtd(self.workdir, hook=None, hook_name=os.path.basename(state['hook_path']))
        old.hooks_before = state['hooks_before'] and {k: tuple(v) for k, v in state['hooks_before'].items()}
        old.absent_before = state['absent_before']
        old.config_before = set(state['config_before']) if state['config_before'] is not None else None
        old.config_mtime = state['config_mtime']
        old.cgroups_before = set(state['cgroups_before'])
        old.domains = state['domains']
        errors = []
        old._stop_domains(errors)
        old._restore_files(errors)
        print(f'libvirtd harness: undid what an interrupted run left ({JOURNAL_PATH})'
              + (': ' + '; '.join(errors) if errors else ''), file=sys.stderr, flush=True)
        os.unlink(JOURNAL_PATH)

    @staticmethod
    def _cgroups():
        return {d for g in CGROUP_GLOBS for d in glob.glob(g) if os.path.isdir(d)}

    def _restore_files(self, errors):
        before = self.hooks_before
        if before is _NOT_SEEN:         # refused before touching anything
            return
        if os.path.lexists(self.hook_path):
            os.unlink(self.hook_path)
        if before is None:
            shutil.rmtree(HOOKS_DIR, ignore_errors=True)
        else:
            if 'qemu.d' not in before and os.path.isdir(QEMU_HOOKS_DIR) and not os.listdir(QEMU_HOOKS_DIR):
                os.rmdir(QEMU_HOOKS_DIR)
            # adding and removing entries moved the directories' mtimes
            for rel in ('qemu.d', '.'):
                if rel in before and os.path.isdir(os.path.join(HOOKS_DIR, rel)):
                    mtime = before[rel][4]
                    os.utime(os.path.join(HOOKS_DIR, rel), ns=(mtime, mtime), follow_symlinks=False)
        after = tree_state(HOOKS_DIR)
        if after != before:
            errors.append(f'{HOOKS_DIR} differs from before the test: before {before}, after {after}')
        for d in self.absent_before:
            shutil.rmtree(d, ignore_errors=True)
        if self.config_before is not None:
            for name in set(os.listdir(CONFIG_DIR)) - self.config_before - {'hooks'}:
                path = os.path.join(CONFIG_DIR, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            os.utime(CONFIG_DIR, ns=(self.config_mtime, self.config_mtime))
        if self.cgroups_before is not None:
            # children first: a domain's cgroup stays when libvirtd was killed
            for top in sorted(self._cgroups() - self.cgroups_before):
                for d, _, _ in os.walk(top, topdown=False):
                    try:
                        os.rmdir(d)
                    except OSError as e:
                        errors.append(f'cannot remove the cgroup {d}: {e.strerror}')


def workdir(prefix='vfiomig-libvirtd-'):
    """A temporary directory for the harness's logs and pid files (and a
    test's hooks), removed at exit after the harness has stopped, unless
    VFIOMIG_LIBVIRTD_KEEP is set (to read the daemons' and QEMU's logs)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _workdirs.append(d)
    return d
