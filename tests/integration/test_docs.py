#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The man pages against the code, so that neither drifts alone.

No daemon and no bus: this reads the scdoc sources in man/, the --help
output of the built binaries, dbus/org.vfiomig1.xml and a few C sources, and
fails on anything documented that does not exist or existing that is not
documented: options, commands, the keys of the configuration, rules and
testbed files (each in its section 5 page) and the testbed's faults, D-Bus
members, errors (with their errno), polkit actions and vfiomigctl's exit
codes. Every page has EXAMPLES and a SEE ALSO that names pages that exist,
and a reference to a section of one of our pages names a section it has.
"""

import json
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

PAGES = ['vfiomigd.8.scd', 'vfiomigctl.1.scd', 'org.vfiomig1.5.scd', 'vfiomig-libvirt-hook.8.scd',
         'vfiomigd.conf.5.scd', 'vfiomig.rules.5.scd', 'vfiomig-testbed.5.scd']
DAEMON_PAGE, CTL_PAGE, API_PAGE, HOOK_PAGE, CONF_PAGE, RULES_PAGE, TESTBED_PAGE = PAGES
# pages of other projects that ours may name, as "*name*(section)"
SYSTEM_PAGES = {'busctl(1)', 'dbus-daemon(1)', 'systemd.service(5)', 'systemd.exec(5)', 'systemd.unit(5)',
                'polkit(8)', 'virsh(1)', 'sd_bus_path_encode(3)', 'flock(2)', 'journalctl(1)', 'jq(1)',
                'ssh(1)', 'systemctl(1)', 'gdbus(1)', 'test(1)', 'sd_bus_error_add_map(3)',
                'sd_bus_error_get_errno(3)'}
PAGE_REF = re.compile(r'\*([\w.\\-]+)\*\((\d)\)')
CONST = ('org.freedesktop.DBus.Property.EmitsChangedSignal', 'const')


def read(*path):
    with open(os.path.join(SRCDIR, *path), encoding='utf-8') as f:
        return f.read()


def page(name):
    return read('man', name)


def built_with_testbed():
    with open(os.path.join(BUILDDIR, 'config.h'), encoding='utf-8') as f:
        return re.search(r'^#define HAVE_TESTBED 1$', f.read(), re.M) is not None


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
                                            'IDLE EXIT', 'SIGNALS', 'FILES', 'EXAMPLES', 'SEE ALSO']),
                             (CONF_PAGE, ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SYNTAX', 'OPTIONS', 'EXAMPLES',
                                          'FILES', 'SEE ALSO']),
                             (RULES_PAGE, ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'RULES', 'EXAMPLES', 'FILES',
                                           'SEE ALSO']),
                             (TESTBED_PAGE, ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SECTIONS', 'FAULTS',
                                             'SIMULATED DEVICES', 'EXAMPLES', 'FILES', 'SEE ALSO']),
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

    def test_pages_are_installed(self):
        built = re.search(r"man_pages = \[([^]]*)\]", read('man', 'meson.build')).group(1)
        self.assertSameSet(re.findall(r"'([^']+)'", built), [p[:-len('.scd')] for p in PAGES],
                           'man/meson.build against the pages tested here')
        self.assertSameSet([f for f in os.listdir(os.path.join(SRCDIR, 'man')) if f.endswith('.scd')], PAGES,
                           'man/*.scd against the pages tested here')

    def test_every_page_has_examples_and_see_also(self):
        for name in PAGES:
            with self.subTest(page=name):
                have = sections(page(name))
                self.assertIn('EXAMPLES', have, f'{name}: no EXAMPLES')
                self.assertTrue(code_blocks(have['EXAMPLES']), f'{name}: EXAMPLES without an example')
                self.assertIn('SEE ALSO', have, f'{name}: no SEE ALSO')
                self.assertEqual(list(have)[-1], 'SEE ALSO', f'{name}: SEE ALSO is not the last section')
                self.assertTrue(PAGE_REF.search(have['SEE ALSO']), f'{name}: SEE ALSO names no page')

    def test_pages_named_exist(self):
        """Every "*name*(N)" of every page, SEE ALSO included, is one of
        ours or a known page of another project; and a page's own header
        names it as its file does."""
        ours = {p[:-len('.scd')].rsplit('.', 1)[0] + '(' + p[:-len('.scd')].rsplit('.', 1)[1] + ')' for p in PAGES}
        for name in PAGES:
            with self.subTest(page=name):
                text = page(name)
                stem, section = name[:-len('.scd')].rsplit('.', 1)
                self.assertTrue(text.startswith(f'{stem}({section}) '), f'{name}: its header names another page')
                named = {strip_markup(n) + f'({s})' for n, s in PAGE_REF.findall(without_code(text))}
                self.assertFalse(named - ours - SYSTEM_PAGES, f'{name} names pages that do not exist')

    def test_section_references_exist(self):
        """"see *vfiomigd.conf*(5), *SYNTAX*": the section (or subsection)
        must be one of that page's headings."""
        ours = {p[:-len('.scd')].rsplit('.', 1)[0]: p for p in PAGES}
        headings = {}
        for name in PAGES:
            text = page(name)
            headings[name] = {' '.join(h.split()) for level in (1, 2) for h in sections(text, level)}
        ref = re.compile(r'\*([\w.\\-]+)\*\((\d)\),\s+\*([^*]+)\*(?!\()')
        for name in PAGES:
            for target, _, heading in ref.findall(without_code(page(name))):
                target = strip_markup(target)
                heading = ' '.join(strip_markup(heading).split())
                if target not in ours or heading.lower() == heading:
                    continue    # another project's page, or a term such as *identity*
                with self.subTest(page=name, reference=f'{target}, {heading}'):
                    self.assertIn(heading, headings[ours[target]],
                                  f'{name} refers to a section {target} does not have')


class DaemonPageTest(DocTestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = page(DAEMON_PAGE)
        cls.sections = sections(cls.page)

    def test_options_match_help(self):
        code = help_options(help_text(VFIOMIGD))
        docs = doc_options(self.sections['OPTIONS'])
        # documented for every build, and said to be a testbed build's only
        entry = re.search(r'^\*--testbed=\*.*?(?=^\S|\Z)', self.sections['OPTIONS'], re.S | re.M).group(0)
        self.assertIn('-Dtestbed=false', entry)
        if not built_with_testbed():
            self.assertNotIn('--testbed', code, 'a build without the testbed offers --testbed')
            del docs['--testbed']
        self.assertSameSet(code, docs, 'vfiomigd options')
        for name in code:
            self.assertEqual(code[name], docs[name], f'vfiomigd {name}: --help and the page disagree')

    def test_polkit_actions(self):
        actions = re.findall(r'<action id="([^"]+)"', read('policy', 'org.vfiomig1.policy'))
        self.assertTrue(actions)
        for name in (DAEMON_PAGE, API_PAGE):
            for action in actions:
                self.assertIn(action, page(name), f'{name} does not mention {action}')


class DaemonInstallTest(DocTestCase):
    """Where the README's install puts vfiomigd is where the pages say it
    is, and where the D-Bus activation file and the unit start it."""

    def installed_path(self):
        setup = [line for line in read('README.md').split('\n') if line.strip().startswith('meson setup build ')]
        self.assertEqual(len(setup), 1, setup)
        prefix = re.search(r'--prefix[= ](\S+)', setup[0])
        self.assertIsNotNone(prefix, 'the README\'s install sets no prefix')
        self.assertNotIn('--libexecdir', setup[0])
        # meson's own default, as the README's meson line leaves it
        options = json.loads(subprocess.run(['meson', 'introspect', '--buildoptions',
                                             os.path.join(SRCDIR, 'meson.build')], check=True,
                                            capture_output=True, text=True, timeout=120).stdout)
        libexecdir = next(o['value'] for o in options if o['name'] == 'libexecdir')
        self.assertFalse(libexecdir.startswith('/'), libexecdir)
        return os.path.join(prefix.group(1), libexecdir, 'vfiomigd')

    def test_vfiomigd_path(self):
        path = self.installed_path()
        self.assertEqual(path, '/usr/libexec/vfiomigd')
        daemon = sections(page(DAEMON_PAGE))
        self.assertIn(f'*{path}*', daemon['SYNOPSIS'])
        self.assertIn(f'_{path}_', daemon['FILES'])
        self.assertIn(f'`{path}`', read('README.md'))
        # every example that runs the daemon runs that one
        for name in PAGES:
            for block in code_blocks(page(name)):
                for run in re.findall(r'^[#$] (\S*vfiomigd)(?:\s|$)', block, re.M):
                    self.assertEqual(run, path, f'{name}: an example runs {run}')
        # and the build starts it there
        self.assertIn("install_dir : get_option('libexecdir')", read('daemon', 'meson.build'))
        self.assertIn("libexecdir = prefix / get_option('libexecdir')", read('meson.build'))
        self.assertIn("'exec' : libexecdir / 'vfiomigd'", read('dbus', 'meson.build'))
        self.assertIn('ExecStart=@libexecdir@/vfiomigd\n', read('systemd', 'vfiomigd.service.in'))


class ConfPageTest(DocTestCase):

    def test_config_keys(self):
        source = read('daemon', 'main.c')
        subsections = sections(sections(page(CONF_PAGE))['OPTIONS'], level=2)
        self.assertSameSet(['[Daemon]', '[Libvirt]'], subsections, 'vfiomigd.conf sections')
        groups = re.search(r'static const char \*const groups\[\] = \{([^}]*)\}', source).group(1)
        self.assertSameSet(re.findall(r'"(\w+)"', groups), [h.strip('[]') for h in subsections],
                           'vfiomigd.conf sections (daemon/main.c)')
        for section, array in [('[Daemon]', 'keys'), ('[Libvirt]', 'libvirt_keys')]:
            with self.subTest(section=section):
                m = re.search(r'static const char \*const ' + array + r'\[\] = \{([^}]*)\}', source)
                code = re.findall(r'"(\w+)"', m.group(1))
                docs = [t.rstrip('=') for t in terms(subsections[section]) if t.endswith('=')]
                self.assertSameSet(code, docs, f'{section} keys')

    def test_daemon_page_points_here(self):
        """vfiomigd(8) names the keys of its configuration only to point
        here: each key it mentions exists."""
        docs = [t.rstrip('=') for t in terms(sections(page(CONF_PAGE))['OPTIONS']) if t.endswith('=')]
        conf = sections(page(DAEMON_PAGE))['CONFIGURATION']
        self.assertIn('*vfiomigd.conf*(5)', conf)
        self.assertSameSet(docs, re.findall(r'\*(\w+)=\*', conf), 'keys that vfiomigd(8) lists')


class RulesPageTest(DocTestCase):

    def test_rule_keys(self):
        source = read('daemon', 'compat', 'rules.c')
        code = re.findall(r'"(\w+)"', re.search(r'static const char \*const rule_keys\[\] = \{([^}]*)\}',
                                                 source).group(1))
        match = re.findall(r'\{\s*"(\w+)",\s*G_STRUCT_OFFSET', source)
        self.assertTrue(match)
        body = sections(page(RULES_PAGE))['RULES']
        docs = [k.strip().rstrip('=') for t in terms(body) for k in t.split(',')]
        self.assertSameSet(code, docs, '[Rule] keys')
        # the match keys, which the page lists in its first paragraph
        first = body.strip().split('\n\n')[0]
        self.assertSameSet(match, re.findall(r'\*(\w+)=\*', first), 'the match keys')
        self.assertIn('[Rule NAME]', strip_markup(first))

    def test_directories_match_help(self):
        """The directories the page names are those of a build with the
        README's prefix, which --help shows for this build's."""
        synopsis = strip_markup(sections(page(RULES_PAGE))['SYNOPSIS'])
        self.assertSameSet(['/usr/share/vfiomig/rules.d/*.rules', '/etc/vfiomig/rules.d/*.rules'],
                           synopsis.split(), 'rules directories')
        text = help_text(VFIOMIGD)
        self.assertRegex(text, r'\S*/share/vfiomig/rules\.d and \S*/etc/vfiomig/rules\.d')


class TestbedPageTest(DocTestCase):

    @classmethod
    def setUpClass(cls):
        cls.sections = sections(page(TESTBED_PAGE))
        cls.source = read('daemon', 'backend', 'testbed.c')

    def test_testbed_keys(self):
        subsections = sections(self.sections['SECTIONS'], level=2)
        for kind, array in [('parent', 'parent_keys'), ('type', 'type_keys'), ('vdpamgmt', 'vdpa_mgmt_keys'),
                            ('device', 'device_keys')]:
            with self.subTest(section=kind):
                m = re.search(r'static const char \*const ' + array + r'\[\] = \{([^}]*)\}', self.source)
                code = re.findall(r'"(\w+)"', m.group(1))
                heading = [h for h in subsections if h.lower().startswith('[' + kind + ' ')]
                self.assertEqual(len(heading), 1, f'no "## [{kind} ...]" subsection')
                docs = [k.strip().rstrip('=') for t in terms(subsections[heading[0]]) for k in t.split(',')]
                self.assertSameSet(code, docs, f'{heading[0]} keys')
        self.assertEqual(len(subsections), 4, list(subsections))

    def test_vdpa_device_keys(self):
        """A vDPA [Device] takes fewer keys; the page names them in prose."""
        m = re.search(r'static const char \*const vdpa_device_keys\[\] = \{([^}]*)\}', self.source)
        code = re.findall(r'"(\w+)"', m.group(1))
        device = [b for h, b in sections(self.sections['SECTIONS'], level=2).items() if h.startswith('[Device ')][0]
        prose = [p for p in device.split('\n\n') if 'A vDPA device' in p]
        self.assertEqual(len(prose), 1, 'no paragraph says "A vDPA device"')
        prose = prose[0][prose[0].index('A vDPA device'):]
        self.assertSameSet(code, re.findall(r'\*(\w+)=', prose), 'the keys of a vDPA [Device]')

    def test_faults(self):
        source = read('daemon', 'backend', 'testbed-device.c')
        names = re.search(r'fault_names\[_SIM_FAULT_MAX\] = \{(.*?)\};', source, re.S).group(1)
        code_types = re.findall(r'= "([\w-]+)"', names)
        numeric = re.search(r'\} numeric_keys\[\] = \{(.*?)\};', source, re.S).group(1)
        other = re.search(r'static int parse_fault_arg\(.*?\n\}', source, re.S).group(0)
        code_keys = re.findall(r'\{ "(\w+)",', numeric) + re.findall(r'g_str_equal\(key, "(\w+)"\)', other)
        docs = terms(self.sections['FAULTS'])
        self.assertSameSet(code_types, [t for t in docs if '=' not in t], 'fault types')
        self.assertSameSet(code_keys, [k.strip().rstrip('=') for t in docs if '=' in t for k in t.split(',')],
                           'fault keys')

    def test_builtin_testbed(self):
        """What THE BUILT-IN TESTBED names is in testbed-default.conf."""
        conf = read('daemon', 'backend', 'testbed-default.conf')
        described = strip_markup(self.sections['THE BUILT-IN TESTBED'])
        for section in re.findall(r'^\[(?:Parent|VdpaMgmt|Device) ([^]/]+)\]', conf, re.M):
            if not re.fullmatch(r'[0-9a-f]{8}-.*', section):
                self.assertIn(section, described)
        for parent_type in re.findall(r'^\[Type [^/]+/([^]]+)\]', conf, re.M):
            self.assertIn(parent_type, described)


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
