#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""vfiomigctl's bash completion (client/vfiomigctl.bash-completion), driven
the way bash drives it: COMP_WORDS and COMP_CWORD set, the completion
function called, COMPREPLY read; against the default testbed, and against
vfiomigctl --help for what each verb takes."""

import os
import re
import subprocess

from vfiomigtest import VFIOMIGCTL, DaemonTestCase, main
from test_client import help_commands, help_options, help_text

SCRIPT = os.path.join(os.environ['VFIOMIG_SRCDIR'], 'client', 'vfiomigctl.bash-completion')
MTTY1, MTTY2, MTTY3 = (f'5b7d1e0a-2c4f-4d8e-9a31-7c0e6f2a000{i}' for i in (1, 2, 3))
GPU = '9e3f44c1-6a0b-4f7d-8c25-1d2e3f4a0001'
VFS = ['0000:3b:00.1', '0000:3b:00.2']
DEVICES = sorted(VFS + [MTTY1, MTTY2, MTTY3, GPU, 'vdpa0', 'vdpa1'])


# bash's default COMP_WORDBREAKS, less the blanks
BREAKS = '"\'@><=;|&(:'


def complete(line):
    """What bash would make of the last word of line (a trailing space
    starts a new, empty word). As bash does, COMP_WORDS splits the line at
    the characters of COMP_WORDBREAKS too, so "--kind=" and "0000:3b:00."
    are several words, COMP_LINE and COMP_POINT hold the line, and a reply
    replaces only what follows the last of those characters in the word."""
    word = line.split(' ')[-1]
    comp_words = []
    for w in line.split(' '):
        comp_words += re.findall(f'[^{re.escape(BREAKS)}]+|[{re.escape(BREAKS)}]+', w) or ['']
    head = word[:max(word.rfind(c) for c in BREAKS) + 1]
    script = ('source "$1"; shift; COMP_LINE=$1; COMP_POINT=${#1}; shift; COMP_WORDS=("$@"); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _vfiomigctl; printf "%s\\n" "${COMPREPLY[@]}"')
    env = dict(os.environ, PATH=os.path.dirname(VFIOMIGCTL) + ':' + os.environ['PATH'])
    p = subprocess.run(['bash', '-c', script, 'bash', SCRIPT, line, *comp_words], capture_output=True, text=True,
                       env=env, timeout=30, check=True)
    return sorted(head + w for w in p.stdout.split('\n') if w)


class CompletionTest(DaemonTestCase):
    """On the built-in testbed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.help = help_text()

    def test_verbs(self):
        self.assertEqual(complete('vfiomigctl '), sorted(help_commands(self.help)))
        self.assertEqual(complete('vfiomigctl mi'), ['migrate', 'migrations'])
        self.assertEqual(complete('vfiomigctl --no-ask-password sh'), ['show'])

    def test_each_verbs_options_are_what_help_says(self):
        options = help_options(self.help)
        for verb in help_commands(self.help):
            want = {o for o, verbs in options.items() if verbs is None or verb in verbs}
            if verb in ('remove-mdev', 'resume', 'cancel', 'remove-state', 'forget-probe'):
                want.discard('--json')      # they print nothing (test_client.JSON_REFUSED)
            # targets names its own in its usage lines
            block = self.help.split('\nCommands:\n')[1].split('\n\n')[0] + '\n  end'
            usage = re.search(rf'^  {re.escape(verb)}\b.*?(?=^  \S)', block, re.M | re.S)
            want |= set(re.findall(r'--[\w-]+', usage.group(0) if usage else ''))
            got = {o.rstrip('=') for o in complete(f'vfiomigctl {verb} --')}
            self.assertEqual(got, want, verb)

    def test_device_names_from_the_daemon(self):
        self.assertEqual(complete('vfiomigctl show '), DEVICES)
        self.assertEqual(complete('vfiomigctl show 0000:'), VFS)
        self.assertEqual(complete('vfiomigctl migrate --no-precopy 5b7d'), [MTTY1, MTTY2, MTTY3])
        self.assertEqual(complete(f'vfiomigctl migrate {MTTY1} vdpa'), ['vdpa0', 'vdpa1'])
        # an option's value is no argument: the second device is still one
        self.assertEqual(complete(f'vfiomigctl migrate --max-precopy-rounds 3 {MTTY1} 9e'), [GPU])
        self.assertEqual(complete('vfiomigctl remove-mdev '), sorted([MTTY1, MTTY2, MTTY3, GPU]))

    def test_parents_and_types(self):
        self.assertEqual(complete('vfiomigctl create-mdev '), ['0000:65:00.0', 'mtty', 'vdpasim_net'])
        self.assertEqual(complete('vfiomigctl create-mdev mtty '), ['mtty-1', 'mtty-2'])
        self.assertEqual(complete(f'vfiomigctl probe {MTTY1} mtty/'), ['mtty/mtty-1', 'mtty/mtty-2'])

    def test_option_values(self):
        self.assertEqual(complete('vfiomigctl load --target-state '), ['running', 'stop'])
        self.assertEqual(complete('vfiomigctl save --source-state=r'), ['--source-state=running'])
        self.assertEqual(complete('vfiomigctl list --kind='), ['--kind=mdev', '--kind=pci', '--kind=vdpa'])

    def test_words_that_bash_splits(self):
        # ":" and "=" are in COMP_WORDBREAKS: a reply must replace only
        # what follows them, and the verb is still the verb after --json=
        self.assertEqual(complete('vfiomigctl show 0000:3b:00.'), VFS)
        self.assertEqual(complete(f'vfiomigctl compat {VFS[0]} 0000:3b:'), VFS)
        self.assertEqual(complete('vfiomigctl --json=short li'), ['list'])
        self.assertEqual(complete('vfiomigctl --json=short list --ki'), ['--kind='])
        self.assertEqual(complete('vfiomigctl -h sh'), ['show'])

    def test_migrations(self):
        job = int(subprocess.run([VFIOMIGCTL, '--no-wait', '--source-state=running', 'save', VFS[0], 'c'],
                                 capture_output=True, text=True, check=True).stdout)
        subprocess.run([VFIOMIGCTL, 'wait', str(job)], capture_output=True, check=False)
        # ended jobs are not offered; nothing runs now
        self.assertEqual(complete('vfiomigctl cancel '), [])
        # the state that save left, by name
        self.assertEqual(complete('vfiomigctl load 0000:3b:00.2 '), ['c'])
        self.assertEqual(complete('vfiomigctl remove-state '), ['c'])

    def test_nothing_when_the_daemon_is_unreachable(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS='unix:path=/nonexistent')
        script = ('source "$1"; COMP_WORDS=(vfiomigctl show ""); COMP_CWORD=2; _vfiomigctl; '
                  'echo "${#COMPREPLY[@]}"')
        p = subprocess.run(['bash', '-c', script, 'bash', SCRIPT], capture_output=True, text=True, env=env,
                           timeout=30)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, '0\n', ''))


if __name__ == '__main__':
    main()
