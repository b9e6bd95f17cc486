#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The man pages against the code, so that neither drifts alone.

No daemon and no bus: this reads the scdoc sources in man/, the --help
output of the built binaries, dbus/org.vfiomig1.xml and a few C sources, and
fails on anything documented that does not exist or existing that is not
documented: options, commands, config and testbed keys, D-Bus members,
errors (with their errno), polkit actions and vfiomigctl's exit codes.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest
import xml.etree.ElementTree as ET

BUILDDIR = os.environ.get('VFIOMIG_BUILDDIR', os.path.abspath('build'))
SRCDIR = os.environ.get('VFIOMIG_SRCDIR', os.path.abspath('.'))
VFIOMIGD = os.path.join(BUILDDIR, 'daemon', 'vfiomigd')
VFIOMIGCTL = os.path.join(BUILDDIR, 'client', 'vfiomigctl')

PAGES = ['vfiomigd.8.scd', 'vfiomigctl.1.scd', 'org.vfiomig1.5.scd', 'vfiomig-libvirt-hook.8.scd']
DAEMON_PAGE, CTL_PAGE, API_PAGE, HOOK_PAGE = PAGES
CONST = ('org.freedesktop.DBus.Property.EmitsChangedSignal', 'const')


def read(*path):
    with open(os.path.join(SRCDIR, *path), encoding='utf-8') as f:
        return f.read()


def page(name):
    return read('man', name)


def help_text(binary):
    p = subprocess.run([binary, '--help'], capture_output=True, text=True, timeout=30, check=True)
    return p.stdout


def strip_markup(s):
    """scdoc source text to plain text: drop unescaped * and _, unescape."""
    return re.sub(r'\\(.)', r'\1', re.sub(r'(?<!\\)[*_]', '', s)).strip()


def without_code(text):
    return re.sub(r'^```.*?^```$', '', text, flags=re.S | re.M)


def code_blocks(text):
    return re.findall(r'^```\n(.*?)^```$', text, flags=re.S | re.M)


def sections(text, level=1):
    """{heading: body} for the headings of the given level ('#' * level)."""
    marker = '#' * level + ' '
    out, name, body = {}, None, []
    for line in without_code_markers(text):
        if line.startswith(marker) and not line.startswith(marker + '#'):
            if name is not None:
                out[name] = '\n'.join(body)
            name, body = line[len(marker):].strip(), []
        elif name is not None:
            body.append(line)
    if name is not None:
        out[name] = '\n'.join(body)
    return out


def without_code_markers(text):
    """Lines of text, with the lines inside code blocks blanked of any
    leading '#' so that a shell prompt or comment is not a heading."""
    inside = False
    for line in text.split('\n'):
        if line.startswith('```'):
            inside = not inside
            yield line
        elif inside:
            yield ' ' + line
        else:
            yield line


def terms(body):
    """The terms of scdoc definition lists: an unindented line followed by
    a tab-indented one, markup stripped."""
    lines = without_code(body).split('\n')
    return [strip_markup(line) for line, following in zip(lines, lines[1:])
            if line.strip() and not line[0].isspace() and following.startswith('\t')]


def option_tokens(spec):
    """'-h, --help' -> ('--help', {'-h', '--help'}); '--config=FILE' ->
    ('--config', {'--config=FILE'})."""
    tokens = set(re.split(r'[\s,]+', spec.strip()))
    longs = [t for t in tokens if t.startswith('--')]
    if len(longs) != 1:
        raise AssertionError(f'cannot read option spec {spec!r}')
    return re.split(r'\[?=', longs[0])[0], tokens


def help_options(text):
    """The options of a --help text: lines like '  -h --help   Show ...' or
    '     --testbed=FILE|default'."""
    out = {}
    for line in text.split('\n'):
        m = re.match(r'^\s+((?:-\w\s+)?--[\w-]+(?:\[?=\S+)?)', line)
        if m:
            name, tokens = option_tokens(m.group(1))
            out[name] = tokens
    return out


def doc_options(body):
    out = {}
    for term in terms(body):
        if term.startswith('-'):
            name, tokens = option_tokens(term)
            out[name] = tokens
    return out


def help_block(text, title):
    """The lines of a --help text after 'title:' up to the next blank line."""
    lines = text.split('\n')
    start = lines.index(title + ':') + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return '\n'.join(lines[start:end])


class DocTestCase(unittest.TestCase):
    maxDiff = None

    def assertSameSet(self, code, docs, what):
        code, docs = set(code), set(docs)
        self.assertFalse(code - docs, f'{what}: in the code but not documented')
        self.assertFalse(docs - code, f'{what}: documented but not in the code')


class ScdocSyntaxTest(DocTestCase):

    def test_pages_build(self):
        scdoc = shutil.which('scdoc')
        if not scdoc:
            self.skipTest('scdoc not installed')
        for name in PAGES:
            with self.subTest(page=name), open(os.path.join(SRCDIR, 'man', name), 'rb') as f:
                p = subprocess.run([scdoc], stdin=f, capture_output=True, timeout=30)
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                self.assertEqual(p.stderr, b'')

    def test_pages_have_the_sections_they_promise(self):
        for name, wanted in [(DAEMON_PAGE, ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'CONFIGURATION',
                                            'TESTBED FILES', 'IDLE EXIT', 'SIGNALS', 'FILES', 'SEE ALSO']),
                             (CTL_PAGE, ['NAME', 'SYNOPSIS', 'COMMANDS', 'OPTIONS', 'EXIT STATUS',
                                         'EXAMPLES', 'SEE ALSO']),
                             (API_PAGE, ['NAME', 'INTRODUCTION', 'THE MANAGER OBJECT', 'DEVICE OBJECTS',
                                         'MDEV TYPE OBJECTS', 'ERRORS', 'SECURITY', 'EXAMPLES',
                                         'SEE ALSO']),
                             (HOOK_PAGE, ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'EXIT STATUS', 'EXAMPLES',
                                          'SEE ALSO'])]:
            with self.subTest(page=name):
                have = sections(page(name))
                self.assertFalse([s for s in wanted if s not in have], f'{name}: missing sections')


class DaemonPageTest(DocTestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = page(DAEMON_PAGE)
        cls.sections = sections(cls.page)

    def test_options_match_help(self):
        code = help_options(help_text(VFIOMIGD))
        docs = doc_options(self.sections['OPTIONS'])
        self.assertSameSet(code, docs, 'vfiomigd options')
        for name in code:
            self.assertEqual(code[name], docs[name], f'vfiomigd {name}: --help and the page disagree')

    def test_config_keys(self):
        # [Daemon]'s keys and [Libvirt]'s
        lists = re.findall(r'static const char \*const (?:libvirt_)?keys\[\] = \{([^}]*)\}', read('daemon', 'main.c'))
        self.assertEqual(len(lists), 2)
        code = [k for m in lists for k in re.findall(r'"(\w+)"', m)]
        docs = [t.rstrip('=') for t in terms(self.sections['CONFIGURATION']) if t.endswith('=')]
        self.assertSameSet(code, docs, 'configuration keys')

    def test_testbed_keys(self):
        source = read('daemon', 'backend', 'testbed.c')
        subsections = sections(self.sections['TESTBED FILES'], level=2)
        for kind in ['parent', 'type', 'device']:
            with self.subTest(section=kind):
                m = re.search(r'static const char \*const ' + kind + r'_keys\[\] = \{([^}]*)\}', source)
                code = re.findall(r'"(\w+)"', m.group(1))
                heading = [h for h in subsections if h.lower().startswith('[' + kind + ' ')]
                self.assertEqual(len(heading), 1, f'no "## [{kind.title()} ...]" subsection')
                docs = [k.strip().rstrip('=') for t in terms(subsections[heading[0]]) for k in t.split(',')]
                self.assertSameSet(code, docs, f'[{kind.title()}] keys')

    def test_polkit_actions(self):
        actions = re.findall(r'<action id="([^"]+)"', read('policy', 'org.vfiomig1.policy'))
        self.assertTrue(actions)
        for name in (DAEMON_PAGE, API_PAGE):
            for action in actions:
                self.assertIn(action, page(name), f'{name} does not mention {action}')


class CtlPageTest(DocTestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = page(CTL_PAGE)
        cls.sections = sections(cls.page)
        cls.help = help_text(VFIOMIGCTL)

    def test_commands_match_help(self):
        code = {}
        for line in help_block(self.help, 'Commands').split('\n'):
            m = re.match(r'^  (\S.*?)(?:\s{2,}|$)', line)
            if m:
                code[m.group(1).split()[0]] = ' '.join(m.group(1).split())
        self.assertTrue(code)
        docs = {t.split()[0]: ' '.join(t.split()) for t in terms(self.sections['COMMANDS'])}
        self.assertSameSet(code, docs, 'vfiomigctl commands')
        for verb in code:
            self.assertEqual(code[verb], docs[verb], f'vfiomigctl {verb}: --help and the page disagree')

    def test_commands_match_dispatch_table(self):
        code = re.findall(r'\{\s*"([\w-]+)",\s*cmd_\w+\s*\}', read('client', 'vfiomigctl.c'))
        docs = [t.split()[0] for t in terms(self.sections['COMMANDS'])]
        self.assertSameSet(code, docs, 'vfiomigctl commands (dispatch table)')

    def test_options_match_help(self):
        code = help_options(help_block(self.help, 'Options'))
        docs = doc_options(self.sections['OPTIONS'])
        self.assertSameSet(code, docs, 'vfiomigctl options')
        for name in code:
            self.assertEqual(code[name], docs[name], f'vfiomigctl {name}: --help and the page disagree')

    def test_exit_codes(self):
        enum = re.search(r'enum \{(.*?)\};', read('client', 'ctl.h'), re.S).group(1)
        code = [int(v) for v in re.findall(r'EXIT_\w+\s*=\s*(\d+)', enum)]
        self.assertTrue(code)
        docs = [int(v) for v in re.findall(r'^\|[\s\[\]<>=-]*\*?(\d+)\*?\s*$', self.sections['EXIT STATUS'], re.M)]
        self.assertEqual(len(docs), len(set(docs)), 'exit status listed twice')
        self.assertSameSet(code, docs, 'vfiomigctl exit codes')
        # and the one-line summary of --help
        summary = self.help[self.help.index('Exit status:'):]
        self.assertSameSet(code, [int(v) for v in re.findall(r'\b(\d+) ', summary)], 'exit codes in --help')


def xml_interfaces():
    """{interface: {'methods': {name: [(dir, type, arg)]}, 'signals': {name: [(type, arg)]},
    'properties': {name: (type, const)}}} of dbus/org.vfiomig1.xml."""
    root = ET.fromstring(read('dbus', 'org.vfiomig1.xml'))
    out = {}
    for iface in root.findall('interface'):
        out[iface.get('name')] = {
            'methods': {m.get('name'): [(a.get('direction', 'in'), a.get('type'), a.get('name'))
                                        for a in m.findall('arg')] for m in iface.findall('method')},
            'signals': {s.get('name'): [(a.get('type'), a.get('name')) for a in s.findall('arg')]
                        for s in iface.findall('signal')},
            'properties': {p.get('name'): (p.get('type'),
                                           any((a.get('name'), a.get('value')) == CONST
                                               for a in p.findall('annotation')))
                           for p in iface.findall('property')},
        }
    return out


def doc_interfaces(text):
    """The same structure from the 'interface X { ... };' listings in the
    code blocks of the page, in the notation of systemd's D-Bus pages."""
    out = {}
    for block in code_blocks(text):
        for m in re.finditer(r'^(\s*)interface (org\.vfiomig1\.\w+) \{\n(.*?)^\1\};', block, re.S | re.M):
            name, body = m.group(2), m.group(3)
            if name in out:
                raise AssertionError(f'interface {name} listed twice')
            out[name] = parse_listing(body)
    return out


def parse_listing(body):
    members = {'methods': {}, 'signals': {}, 'properties': {}}
    kind, pending, const = None, '', False
    for line in body.split('\n'):
        line = line.strip()
        if line in ('methods:', 'signals:', 'properties:'):
            kind = line[:-1]
            continue
        if not line:
            continue
        if line.startswith('@'):
            const = const or line == '@%s("%s")' % CONST
            continue
        pending += ' ' + line
        if not pending.rstrip().endswith(';'):
            continue
        decl, pending = ' '.join(pending.split()), ''
        if kind == 'properties':
            m = re.fullmatch(r'readonly (\S+) (\w+) = .*;', decl)
            if not m:
                raise AssertionError(f'cannot read property {decl!r}')
            members['properties'][m.group(2)] = (m.group(1), const)
        else:
            m = re.fullmatch(r'(\w+)\((.*)\);', decl)
            if not m or kind is None:
                raise AssertionError(f'cannot read {kind} {decl!r}')
            args = [a.split() for a in m.group(2).split(',') if a.strip()]
            if kind == 'methods':
                members['methods'][m.group(1)] = [tuple(a) for a in args]
            else:
                members['signals'][m.group(1)] = [tuple(a) for a in args]
        const = False
    return members


class ApiPageTest(DocTestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = page(API_PAGE)
        cls.sections = sections(cls.page)
        cls.xml = xml_interfaces()
        cls.docs = doc_interfaces(cls.page)

    def test_interfaces(self):
        self.assertSameSet(self.xml, self.docs, 'org.vfiomig1 interfaces')

    def test_members_and_signatures(self):
        for iface, xml in self.xml.items():
            docs = self.docs.get(iface, {'methods': {}, 'signals': {}, 'properties': {}})
            for kind in ('methods', 'signals', 'properties'):
                with self.subTest(interface=iface, kind=kind):
                    self.assertSameSet(xml[kind], docs[kind], f'{iface} {kind}')
                    for name in xml[kind]:
                        self.assertEqual(xml[kind][name], docs[kind].get(name),
                                         f'{iface}.{name}: the listing differs from org.vfiomig1.xml '
                                         '(arguments, types, or the const annotation)')

    def test_members_are_described(self):
        """Each member is explained in prose, not only listed: a paragraph
        of the section that lists its interface starts with its name in
        bold ("*GetDevice()* returns", "*Name*, *Description* and
        *DeviceApi* are")."""
        lead = re.compile(r'^((?:\*\w+(?:\(\))?\*(?:,\s*|\s+and\s+))*\*\w+(?:\(\))?\*)')
        for iface, xml in self.xml.items():
            owner = [s for s, body in self.sections.items() if f'interface {iface} {{' in body]
            self.assertEqual(len(owner), 1, f'{iface}: no section with its listing')
            described = set()
            for paragraph in re.split(r'\n\s*\n', without_code(self.sections[owner[0]])):
                m = lead.match(paragraph.strip())
                if m:
                    described.update(re.findall(r'\*(\w+)(?:\(\))?\*', m.group(1)))
            for kind in ('methods', 'signals', 'properties'):
                for name in xml[kind]:
                    with self.subTest(member=f'{iface}.{name}'):
                        self.assertIn(name, described, f'{iface}.{name}: no paragraph of "{owner[0]}" '
                                      f'starts with *{name}*')

    def test_errors(self):
        header = read('daemon', 'vfiomig-names.h')
        code = dict(re.findall(r'#define\s+(VFIOMIG_ERROR_\w+)\s+"(org\.vfiomig1\.Error\.\w+)"', header))
        self.assertTrue(code)
        errnos = {code[m]: e for m, e in
                  re.findall(r'SD_BUS_ERROR_MAP\((VFIOMIG_ERROR_\w+),\s*(E\w+)\)', read('daemon', 'bus', 'bus-error.c'))}
        self.assertSameSet(code.values(), errnos, 'errors in vfiomig-names.h and bus-error.c')

        documented = re.findall(r'org\.vfiomig1\.Error\.(\w+)\*?\s*\(\*?(E[A-Z]+)\*?\)', self.sections['ERRORS'])
        docs = {'org.vfiomig1.Error.' + n: e for n, e in documented}
        self.assertSameSet(code.values(), docs, 'org.vfiomig1.Error.* in ERRORS (with their errno)')
        for name, errno in errnos.items():
            self.assertEqual(docs.get(name), errno, f'{name}: the page gives another errno than bus-error.c')

        # No page may name an error that does not exist.
        for name in PAGES:
            mentioned = {'org.vfiomig1.Error.' + n for n in re.findall(r'org\.vfiomig1\.Error\.([A-Za-z]+)',
                                                                      page(name))}
            self.assertFalse(mentioned - set(code.values()), f'{name} names errors that do not exist')


if __name__ == '__main__':
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
