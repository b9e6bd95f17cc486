#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigctl on a terminal: colours only there, and not with NO_COLOR,
SYSTEMD_COLORS=0 or TERM=dumb; tables cut with an ellipsis to the
terminal's width, and whole when piped or as JSON. vfiomigctl runs on a
pseudo-terminal of the size each test sets, against the default testbed."""

import json
import os
import re
import subprocess

from vfiomigtest import VFIOMIGCTL, DaemonTestCase, main, on_terminal

ESCAPE = re.compile(r'\x1b\[[0-9;]*m')
# the longest description of the default testbed's types
DESCRIPTION = 'num_heads=1, frl_config=60, framebuffer=1024M, max_instance=8'
UUID = '5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a0001'
PCI = ['0000:3b:00.1', '0000:3b:00.2']


def environment(**changes):
    """The test's environment without the variables that decide colours
    and width, with changes (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ('NO_COLOR', 'SYSTEMD_COLORS', 'COLUMNS', 'TERM')}
    env.update({'TERM': 'xterm-256color', 'LC_ALL': 'C.UTF-8'})
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def terminal(args, width=200, stream='stdout', **env):
    """vfiomigctl ARGS with stream on a terminal width columns wide and
    the environment with env; (what it wrote there, what it wrote on the
    other stream, its exit status)."""
    return on_terminal(args, stream, width, environment(**env))


def piped(args, **env):
    return subprocess.run([VFIOMIGCTL, *args], capture_output=True, text=True, env=environment(**env), timeout=60)


class TerminalTest(DaemonTestCase):

    def assert_plain(self, text):
        self.assertNotIn('\x1b', text)

    def assert_fits(self, text, width):
        lines = ESCAPE.sub('', text).splitlines()
        self.assertGreater(len(lines), 2, text)
        for line in lines:
            self.assertLessEqual(len(line), width, text)

    def test_colours_on_a_terminal(self):
        out, _, code = terminal(['list'])
        self.assertEqual(code, 0)
        self.assertRegex(out, r'^\x1b\[1mNAME\x1b\[0m +\x1b\[1mKIND\x1b\[0m')
        self.assertIn(UUID, out)
        # what the escapes wrap is what a pipe gets
        self.assertEqual(ESCAPE.sub('', out), piped(['list']).stdout + '\n8 devices listed.\n')

    def test_verdicts_in_colour(self):
        out, _, code = terminal(['targets', PCI[0]])
        self.assertEqual(code, 0)
        self.assertRegex(out, r'\x1b\[32mcompatible\x1b\[0m')
        out, _, code = terminal(['compat', PCI[0], UUID])
        self.assertEqual(code, 1)
        self.assertIn(': \x1b[31mincompatible\x1b[0m (basis: ', out)

    def test_errors_in_colour_on_a_terminal_stderr(self):
        err, out, code = terminal(['show', 'no-such-device'], stream='stderr')
        self.assertEqual(code, 3)
        self.assertEqual(out, '')
        self.assertRegex(err, r'^\x1b\[1;31mFailed to look up device no-such-device: .*\x1b\[0m\n$')
        err, _, code = terminal(['list', 'extra'], stream='stderr')
        self.assertEqual(code, 2)
        self.assertEqual(err, '\x1b[1;31mlist takes no arguments\x1b[0m\n')
        # stdout a terminal, stderr not: the error is plain
        _, err, code = terminal(['show', 'no-such-device'])
        self.assertEqual(code, 3)
        self.assertTrue(err.startswith('Failed to look up device no-such-device: '), err)

    def test_no_colour_when_told_or_dumb(self):
        for env in ({'NO_COLOR': '1'}, {'NO_COLOR': ''}, {'TERM': 'dumb'}, {'TERM': None},
                    {'SYSTEMD_COLORS': '0'}, {'SYSTEMD_COLORS': 'false'}):
            with self.subTest(env=env):
                out, _, code = terminal(['targets', PCI[0]], **env)
                self.assertEqual(code, 0)
                self.assertIn('compatible', out)
                self.assert_plain(out)
                err, _, code = terminal(['show', 'no-such-device'], stream='stderr', **env)
                self.assertEqual(code, 3)
                self.assertIn('Failed to look up device', err)
                self.assert_plain(err)

    def test_no_colour_when_piped(self):
        for args in (['list'], ['types'], ['targets', PCI[0]], ['compat', PCI[0], UUID],
                     ['show', 'no-such-device']):
            with self.subTest(args=args):
                p = piped(args)
                self.assertIn(p.returncode, (0, 1, 3))
                self.assert_plain(p.stdout + p.stderr)

    def test_systemd_colors_turns_them_on_for_a_pipe(self):
        p = piped(['targets', PCI[0]], SYSTEMD_COLORS='1')
        self.assertIn('\x1b[32mcompatible\x1b[0m', p.stdout)
        # no ellipsis for a pipe all the same
        p = piped(['types'], SYSTEMD_COLORS='1', COLUMNS='40')
        self.assertIn(DESCRIPTION, p.stdout)

    def test_narrow_terminal_cuts_the_widest_columns(self):
        for width in (72, 100):
            with self.subTest(width=width):
                out, _, code = terminal(['types'], width)
                self.assertEqual(code, 0)
                self.assert_fits(out, width)
                self.assertIn('…', out)
                self.assertNotIn(DESCRIPTION, out)
                self.assertIn('num_heads=1', out)
                # what create-mdev takes stays whole
                self.assertRegex(out, r'\n0000:65:00\.0 +simgpu-A1 ')
        out, _, _ = terminal(['list'], 90)
        self.assert_fits(out, 90)
        self.assertIn('…', out)
        self.assertIn(UUID, out)
        for name in PCI:
            self.assertRegex(out, rf'\n{re.escape(name)} ')

    def test_columns_variable_wins_over_the_terminal(self):
        out, _, _ = terminal(['types'], 200, COLUMNS='80')
        self.assert_fits(out, 80)
        self.assertIn('…', out)
        out, _, _ = terminal(['types'], 200)
        self.assertNotIn('…', out)
        self.assertIn(DESCRIPTION, out)

    def test_ellipsis_in_ascii_without_utf8(self):
        out, _, _ = terminal(['types'], 72, LC_ALL='C')
        self.assert_fits(out, 72)
        self.assertNotIn('…', out)
        self.assertRegex(out, r'\n0000:65:00\.0 [^\n]* num_he[^\n]*\.\.\.\n')

    def test_whole_when_piped(self):
        p = piped(['types'], COLUMNS='40')
        self.assertIn(DESCRIPTION, p.stdout)
        self.assertNotIn('…', p.stdout)
        self.assertGreater(max(len(line) for line in p.stdout.splitlines()), 100)

    def test_json_is_never_cut(self):
        out, _, code = terminal(['--json', 'types'], 40)
        self.assertEqual(code, 0)
        self.assert_plain(out)
        descriptions = [t['description'] for t in json.loads(out)]
        self.assertIn(DESCRIPTION, descriptions)


if __name__ == '__main__':
    main()
