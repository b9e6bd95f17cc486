#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The README's examples, as a reader would run them.

Every vfiomigctl and busctl line of the README's code blocks runs, in the
order the README gives, against vfiomigd with the embedded testbed whose
devices the examples name. Each must exit with status 0, unless its
trailing comment says "exit status N". The README says that Migrate, Save
and Load over busctl return while their job runs on, and that its devices
are busy until it has ended: like a person typing the next line, the test
waits for running jobs to end before it runs a line.

The install section's meson line must put vfiomigd where the README and
vfiomigd(8) say it is, and the service's other files where vfiomigd(8),
FILES, says."""

import json
import os
import re
import shlex
import subprocess
import tempfile
import unittest

from vfiomigtest import SRCDIR, VFIOMIGCTL, DaemonTestCase, main, wait_until

README = os.path.join(SRCDIR, 'README.md')
DAEMON_PAGE = os.path.join(SRCDIR, 'man', 'vfiomigd.8.scd')
EXIT_STATUS = re.compile(r'\bexit status (\d+)')


def code_lines(text):
    """The lines of the indented and fenced code blocks, in order."""
    out, fenced, prev_blank, in_block = [], False, True, False
    for line in text.splitlines():
        if line.startswith('```'):
            fenced = not fenced
            continue
        if fenced:
            out.append(line)
        elif line.startswith('    ') and (prev_blank or in_block):
            out.append(line[4:])
            in_block = True
        elif line.strip():
            in_block = False
        prev_blank = not line.strip()
    return out


def examples(text):
    """(command, comment) of each line that calls vfiomigctl or busctl."""
    out = []
    for line in code_lines(text):
        if re.match(r'(vfiomigctl|busctl)\s', line):
            code, _, comment = line.partition(' #')
            out.append((code.rstrip(), comment.strip()))
    return out


def expected_status(comment):
    m = EXIT_STATUS.search(comment)
    return int(m.group(1)) if m else 0


class ReadmeCommandsTest(DaemonTestCase):

    def jobs(self):
        return self.call('ListMigrations')[0]

    def test_examples_run_in_order(self):
        with open(README, encoding='utf-8') as f:
            lines = examples(f.read())
        verbs = {shlex.split(cmd)[1] for cmd, _ in lines if cmd.startswith('vfiomigctl')}
        methods = {shlex.split(cmd)[5] for cmd, _ in lines if cmd.startswith('busctl call')}
        # a README that lost its examples must not pass by running none
        self.assertLessEqual({'migrate', 'resume', 'save', 'load'}, verbs)
        self.assertLessEqual({'Migrate', 'Resume'}, methods)

        for cmd, comment in lines:
            with self.subTest(line=cmd):
                # another host cannot be reached from here: such lines
                # belong in the prose
                self.assertNotIn('ssh', shlex.split(cmd))
                wait_until(lambda: not self.jobs(), 60, 'the previous line\'s job to end')
                # every vfiomigctl of a pipeline is the one just built
                shell = re.sub(r'(^|\|\s*)vfiomigctl\b', lambda m: m.group(1) + shlex.quote(VFIOMIGCTL), cmd)
                p = subprocess.run(['bash', '-o', 'pipefail', '-c', shell], capture_output=True, timeout=120)
                self.assertEqual(p.returncode, expected_status(comment),
                                 f'{cmd}\n{p.stdout.decode(errors="replace")}{p.stderr.decode(errors="replace")}')

        # and they leave every device as they found it: running
        wait_until(lambda: not self.jobs(), 60, 'the last job to end')
        states = {d[0]: self.state(d[0]) for d in self.call('ListDevices')[0] if d[1] != 'vdpa'}
        self.assertEqual(states, dict.fromkeys(states, 'running'))


class ReadmeInstallTest(unittest.TestCase):

    def test_vfiomigd_is_installed_where_the_docs_say(self):
        with open(README, encoding='utf-8') as f:
            text = f.read()
        setup = [line for line in code_lines(text) if line.startswith('meson setup build ')]
        self.assertEqual(len(setup), 1, setup)
        tmp = tempfile.TemporaryDirectory(prefix='vfiomig-readme-')
        self.addCleanup(tmp.cleanup)
        builddir = os.path.join(tmp.name, 'build')
        args = shlex.split(setup[0])[3:]
        p = subprocess.run(['meson', 'setup', builddir, SRCDIR, *args], capture_output=True, text=True,
                           timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        installed = json.loads(subprocess.run(['meson', 'introspect', '--installed', builddir], check=True,
                                              capture_output=True, text=True).stdout)
        daemon = [dest for src, dest in installed.items() if src.endswith('/daemon/vfiomigd')]
        self.assertEqual(len(daemon), 1, installed)

        self.assertTrue(f'`{daemon[0]}`' in text, f'README.md does not name {daemon[0]}')
        with open(DAEMON_PAGE, encoding='utf-8') as f:
            page = f.read()
        synopsis = page.split('# SYNOPSIS', 1)[1].split('\n# ', 1)[0]
        self.assertIn(f'*{daemon[0]}*', synopsis)

        # FILES names every file of the service where this install puts it:
        # the daemon, its D-Bus files, its unit and its polkit actions
        files = page.split('\n# FILES\n', 1)[1].split('\n# ', 1)[0]
        documented = {re.sub(r'\\(.)', r'\1', p) for p in re.findall(r'_(/(?:\\_|[^_\s])+)_', files)}
        service = [dest for dest in installed.values()
                   if not dest.startswith(('/usr/share/man/', '/usr/bin/', '/etc/libvirt/',
                                           '/usr/share/bash-completion/'))]
        self.assertTrue(service, installed)
        self.assertFalse(set(service) - documented, 'installed, and not where vfiomigd(8), FILES, says')
        # the client's own: vfiomigctl(1), FILES
        with open(os.path.join(SRCDIR, 'man', 'vfiomigctl.1.scd'), encoding='utf-8') as f:
            ctl_files = f.read().split('\n# FILES\n', 1)[1].split('\n# ', 1)[0]
        completion = [dest for dest in installed.values() if dest.startswith('/usr/share/bash-completion/')]
        self.assertEqual(len(completion), 1, installed)
        self.assertIn(f'_{completion[0]}_', ctl_files)


if __name__ == '__main__':
    main()
