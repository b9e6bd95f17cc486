#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What vfiomigd keeps between calls, as users manage it: saved states
(ListStates, RemoveState; vfiomigctl states, remove-state) and the
verdicts of probes (ListProbes, ForgetProbe, ForgetAllProbes; vfiomigctl
probes, forget-probe), on the testbed."""

import configparser
import json
import os
import time

import dbus

from vfiomigtest import (MIGRATION, SIM_TESTBED, TestbedTestCase, ctl, main, sim_mdevs, sim_uuid, wait_until)

ERR = 'org.vfiomig1.Error.'
S1, S2, S3 = sim_uuid(1), sim_uuid(2), sim_uuid(3)
HOSTILE = ['../escape', '.hidden', 'a/b', '', '/etc/passwd', 'x' * 300, 'new\nline', '.escape.abcdef.partial/x',
           '..', '.', '.x.abc.partial']


class StatesTest(TestbedTestCase):
    TESTBED = SIM_TESTBED + sim_mdevs([S1, S2, S3])
    with_polkit = True

    def setUp(self):
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        for name in (S1, S2, S3):
            self.tb('ClearFaults', '(s)', name)
            if self.state(name) != 'running':
                self.call('Resume', '(sa{sv})', (name, {}))
        os.makedirs(self.dir, exist_ok=True)
        for n in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, n))

    @property
    def dir(self):
        return os.path.join(self.tmp, 'state', 'states')

    def save(self, device, name):
        final = self.wait_job(self.start('Save', '(ssa{sv})', (device, name, {})))
        self.assertEqual(final['result'], 'done', final)

    def states(self):
        return {s[0]: s for s in self.call('ListStates')[0]}

    def remove(self, name):
        return self.call('RemoveState', '(sa{sv})', (name, {}))

    def test_two_states_listed_as_on_disk(self):
        self.save(S1, 'one')
        self.save(S2, 'two')
        states = self.states()
        self.assertEqual(sorted(states), ['one', 'two'])
        for name, device in (('one', S1), ('two', S2)):
            st = os.stat(os.path.join(self.dir, name))
            type_, version = self.call('GetIdentity', '(s)', (device,))
            _, size, stype, sversion, sdevice, _, mtime, complete = states[name]
            self.assertEqual(size, st.st_size)
            self.assertGreater(size, 64 * 1024)          # the device's state is in it
            self.assertEqual((stype, sversion, sdevice), (type_, version, device))
            self.assertEqual(mtime, st.st_mtime_ns // 1000)
            self.assertTrue(complete)

        listing = json.loads(ctl('--json', 'states', check=True).stdout)
        self.assertEqual([(s['name'], s['size'], s['device'], s['complete']) for s in listing],
                         [('one', states['one'][1], S1, True), ('two', states['two'][1], S2, True)])
        rows = [line.split() for line in ctl('states', check=True).stdout.splitlines()]
        self.assertEqual(rows[0], ['NAME', 'SIZE', 'SOURCE', 'DATE', 'COMPLETE'])
        self.assertEqual([(r[0], int(r[1]), r[4]) for r in rows[1:]],
                         [('one', states['one'][1], 'yes'), ('two', states['two'][1], 'yes')])

    def test_partial_is_incomplete_and_other_files_are_not_states(self):
        partial = '.three.Ab12Cd.partial'
        with open(os.path.join(self.dir, partial), 'wb') as f:
            f.write(b'VFIOMIG')                         # half a header
        with open(os.path.join(self.dir, '.notes'), 'w', encoding='utf-8') as f:
            f.write('not a state')
        os.symlink('/etc/passwd', os.path.join(self.dir, 'link'))
        os.mkfifo(os.path.join(self.dir, 'fifo'))
        states = self.states()
        self.assertEqual(sorted(states), [partial])
        self.assertEqual(states[partial][1:], (7, '', '', '', '', states[partial][6], False))
        self.assertEqual(json.loads(ctl('--json', 'states', check=True).stdout)[0]['complete'], False)

        # a leftover nobody writes may go; what is no state stays
        self.remove(partial)
        self.assertFalse(os.path.exists(os.path.join(self.dir, partial)))
        for name in ('link', 'fifo'):
            self.assert_dbus_error(ERR + 'InvalidArgument', self.remove, name)
            self.assertTrue(os.path.lexists(os.path.join(self.dir, name)))
        self.assertEqual(os.readlink(os.path.join(self.dir, 'link')), '/etc/passwd')

    def test_remove(self):
        self.save(S1, 'one')
        self.save(S2, 'two')
        self.remove('one')
        self.assertEqual(sorted(os.listdir(self.dir)), ['two'])
        self.assertEqual(sorted(self.states()), ['two'])
        msg = self.assert_dbus_error(ERR + 'NoSuchDevice', self.remove, 'one')
        self.assertIn('one', msg)
        p = ctl('remove-state', 'two')
        self.assertEqual((p.returncode, p.stdout), (0, ''), p.stderr)
        self.assertEqual(os.listdir(self.dir), [])
        p = ctl('remove-state', 'two')
        self.assertEqual(p.returncode, 3)                # no such thing
        self.assertIn('No saved state named two', p.stderr)
        self.assertEqual(ctl('remove-state').returncode, 2)
        self.assertEqual(ctl('--json', 'remove-state', 'x').returncode, 2)

    def test_state_in_use_is_busy(self):
        self.save(S2, 'kept')
        self.tb('InjectFault', '(ss)', S1, 'stall after=0')
        job = self.start('Save', '(ssa{sv})', (S1, 'inflight', {}))
        try:
            wait_until(lambda: any(not s[7] for s in self.states().values()), 10, 'the temporary file')
            states = self.states()
            partial = [n for n, s in states.items() if not s[7]]
            self.assertEqual(len(partial), 1, states)
            self.assertTrue(partial[0].startswith('.inflight.') and partial[0].endswith('.partial'), partial)
            self.assertTrue(states['kept'][7])
            for name in ('inflight', partial[0]):
                msg = self.assert_dbus_error(ERR + 'Busy', self.remove, name)
                self.assertIn(f'migration {job["id"]}', msg)
            self.assertEqual(ctl('remove-state', 'inflight').returncode, 5)
            self.assertTrue(os.path.exists(os.path.join(self.dir, partial[0])))
            self.remove('kept')                          # another state is no one's
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.tb('ClearFaults', '(s)', S1)
            final = self.wait_job(job)
        self.assertEqual(final['result'], 'cancelled')
        self.assertEqual(self.states(), {})

    def test_state_being_loaded_is_busy(self):
        self.save(S1, 'one')
        # a stall holds only saving sessions: hold the load at the target's
        # way into RESUMING instead, before any data
        self.tb('InjectFault', '(ss)', S2, 'transition to=resuming delay=3000 errno=0')
        job = self.start('Load', '(ssa{sv})', (S2, 'one', {}))
        try:
            self.assert_dbus_error(ERR + 'Busy', self.remove, 'one')
        finally:
            self.call('Cancel', path=job['path'], interface=MIGRATION)
            self.tb('ClearFaults', '(s)', S2)
            self.wait_job(job)
        self.remove('one')                               # the job has ended
        self.assertEqual(self.states(), {})

    def test_hostile_names(self):
        self.save(S1, 'one')
        outside = os.path.join(self.tmp, 'state', 'escape')
        with open(outside, 'w', encoding='utf-8') as f:
            f.write('keep me')
        for name in HOSTILE:
            with self.subTest(name=name):
                msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.remove, name)
                self.assertIn('name', msg)
        self.assertEqual(ctl('remove-state', '../escape').returncode, 2)
        self.assertTrue(os.path.exists(outside))
        self.assertEqual(sorted(self.states()), ['one'])

    def test_nobody_cannot_list_or_remove(self):
        self.save(S1, 'one')
        p = ctl('remove-state', 'one', user='nobody')
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn('not authorized for org.vfiomig1.migrate', p.stderr)
        # refused before it looks: a name that is not there is refused alike
        self.assertEqual(ctl('remove-state', 'nothere', user='nobody').returncode, 4)
        self.assertEqual(ctl('states', user='nobody').returncode, 4)
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])          # the wrong action
        self.assertEqual(ctl('remove-state', 'one', user='nobody').returncode, 4)
        self.assertTrue(os.path.exists(os.path.join(self.dir, 'one')))
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.assertEqual(json.loads(ctl('--json', 'states', user='nobody', check=True).stdout)[0]['name'], 'one')
        p = ctl('remove-state', 'one', user='nobody')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'one')))


# Type-match identities (a vendor's version would outrank a probe): tm-a
# and tm-b, whose probes say compatible and incompatible.
A1, A2, B1 = sim_uuid(11), sim_uuid(12), sim_uuid(21)
PROBE_TESTBED = '''
[Parent simgpu]
Driver=simgpu

[Type simgpu/tm-a]
MaxInstances=4
MigrationFlags=stop-copy,p2p,pre-copy

[Type simgpu/tm-b]
MaxInstances=2
MigrationFlags=stop-copy,p2p,pre-copy
''' + sim_mdevs([A1, A2], 'tm-a') + sim_mdevs([B1], 'tm-b')
OTHER_KERNEL = ('\n[Probe 0.0.0-elsewhere tm-a -> tm-a]\nKernel=0.0.0-elsewhere\nDrivers=simgpu -> simgpu\n'
                'SourceType=tm-a\nSourceVersion=\nTargetType=tm-a\nTargetVersion=\nVerdict=incompatible\n'
                'Reason=another kernel\n')


class ProbesTest(TestbedTestCase):
    TESTBED = PROBE_TESTBED
    with_polkit = True

    def setUp(self):
        self.polkit_obj.SetAllowed(dbus.Array([], signature='s'))
        self.call('ForgetAllProbes', '(a{sv})', ({},))

    @property
    def conf_path(self):
        return os.path.join(self.tmp, 'state', 'probes.conf')

    def probes_conf(self, kernel=os.uname().release):
        """The file's verdicts: (source type, target type, kernel) -> verdict,
        the running kernel's unless kernel is None."""
        c = configparser.ConfigParser(interpolation=None, strict=False)
        c.optionxform = str
        c.read(self.conf_path)
        return {(s['SourceType'], s['TargetType'], s['Kernel']): s['Verdict'] for s in c.values()
                if 'Verdict' in s and kernel in (None, s['Kernel'])}

    def check(self, source, target):
        return self.call('CheckCompatibility', '(ss)', (source, target))

    def probe(self, source, target):
        return self.call('Probe', '(ssa{sv})', (source, target, {}))

    def probes(self):
        return {(p[0], p[2]): p for p in self.call('ListProbes')[0]}

    def forget(self, source, target):
        return self.call('ForgetProbe', '(ssa{sv})', (source, target, {}))

    def test_probe_listed_then_forgotten_for_good(self):
        type_a = self.call('GetIdentity', '(s)', (A1,))[0]
        self.assertEqual(self.check(A1, A2)[:2], ('compatible', 'type-match'))
        before = time.time()
        self.assertEqual(self.probe(A1, A2)[:2], ('compatible', 'probe'))
        self.assertEqual(self.check(A1, A2)[:2], ('compatible', 'probe'))
        probes = self.probes()
        self.assertEqual(list(probes), [(type_a, type_a)])
        st, sv, tt, tv, verdict, reason, drivers, kernel, when = probes[(type_a, type_a)]
        self.assertEqual((st, sv, tt, tv, verdict, drivers, kernel),
                         (type_a, '', type_a, '', 'compatible', 'simgpu -> simgpu', os.uname().release))
        self.assertIn('accepted', reason)
        self.assertLessEqual(abs(when / 1e6 - before), 30)
        self.assertIn((type_a, type_a, os.uname().release), self.probes_conf())

        self.assertEqual(self.forget(A1, A2), (type_a, '', type_a, ''))
        self.assertEqual(self.check(A1, A2)[:2], ('compatible', 'type-match'))
        self.assertEqual(self.probes(), {})
        self.assertEqual(self.probes_conf(), {})
        msg = self.assert_dbus_error(ERR + 'NoSuchDevice', self.forget, A1, A2)
        self.assertIn('No probe result', msg)

        self.restart_daemon()
        self.assertEqual(self.probes(), {})
        self.assertEqual(self.check(A1, A2)[:2], ('compatible', 'type-match'))

    def test_forget_an_incompatible_verdict_by_type(self):
        self.probe(A1, B1)
        self.assertEqual(self.check(A1, B1)[:2], ('incompatible', 'probe'))
        before = self.call('CheckCompatibility', '(ss)', (B1, A1))
        p = ctl('forget-probe', 'simgpu/tm-a', 'simgpu/tm-b')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('Forgot the probe result', p.stdout)
        self.assertNotEqual(self.check(A1, B1)[1], 'probe')
        self.assertEqual(self.check(B1, A1), before)              # the other direction was not probed

    def test_forget_all_keeps_other_kernels(self):
        with open(self.conf_path, 'a', encoding='utf-8') as f:
            f.write(OTHER_KERNEL)
        self.probe(A1, A2)
        self.probe(A1, B1)
        self.assertEqual(len(self.probes()), 2)
        p = ctl('forget-probe', '--all')
        self.assertEqual((p.returncode, p.stdout), (0, 'Forgot 2 probe results.\n'), p.stderr)
        self.assertEqual(self.probes(), {})
        self.assertEqual(self.check(A1, A2)[1], 'type-match')
        self.assertNotEqual(self.check(A1, B1)[1], 'probe')
        # what another kernel's drivers said is for that kernel to forget
        self.assertEqual(list(self.probes_conf(kernel=None)), [('tm-a', 'tm-a', '0.0.0-elsewhere')])
        self.restart_daemon()
        self.assertEqual(self.probes(), {})
        self.assertEqual(self.check(A1, A2)[1], 'type-match')

    def test_cli(self):
        self.probe(A1, B1)
        listing = json.loads(ctl('--json', 'probes', check=True).stdout)
        self.assertEqual([(p['verdict'], p['kernel'], p['drivers']) for p in listing],
                         [('incompatible', os.uname().release, 'simgpu -> simgpu')])
        self.assertGreater(listing[0]['time_usec'], 0)
        rows = [line.split(None, 6) for line in ctl('probes', check=True).stdout.splitlines()]
        self.assertEqual(rows[0], ['SOURCE', 'TARGET', 'VERDICT', 'DRIVERS', 'KERNEL', 'DATE', 'REASON'])
        self.assertEqual(rows[1][:5], [listing[0]['source_type'], listing[0]['target_type'], 'incompatible',
                                       'simgpu->simgpu', os.uname().release])
        self.assertEqual(rows[1][6], listing[0]['reason'])
        self.assertEqual(ctl('forget-probe', A1).returncode, 2)
        self.assertEqual(ctl('forget-probe', '--all', A1, B1).returncode, 2)
        self.assertEqual(ctl('forget-probe', 'a/b/c', B1).returncode, 2)
        self.assertEqual(ctl('forget-probe', sim_uuid(99), B1).returncode, 3)
        self.assertEqual(ctl('forget-probe', A1, A2).returncode, 3)       # never probed
        self.assertEqual(ctl('--json', 'forget-probe', A1, B1).returncode, 2)
        self.assertEqual(len(self.probes()), 1)
        self.assertEqual(ctl('forget-probe', A1, B1).returncode, 0)
        self.assertEqual(json.loads(ctl('--json', 'probes', check=True).stdout), [])

    def test_forgetting_needs_manage(self):
        self.probe(A1, A2)
        p = ctl('forget-probe', A1, A2, user='nobody')
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn('not authorized for org.vfiomig1.manage', p.stderr)
        self.assertEqual(ctl('forget-probe', '--all', user='nobody').returncode, 4)
        self.polkit_obj.SetAllowed(['org.vfiomig1.migrate'])
        self.assertEqual(ctl('forget-probe', A1, A2, user='nobody').returncode, 4)
        self.assertEqual(self.check(A1, A2)[1], 'probe')
        self.assertEqual(len(self.probes_conf()), 1)
        # reading needs nothing
        self.assertEqual(len(json.loads(ctl('--json', 'probes', user='nobody', check=True).stdout)), 1)
        self.polkit_obj.SetAllowed(['org.vfiomig1.manage'])
        self.assertEqual(ctl('forget-probe', A1, A2, user='nobody').returncode, 0)
        self.assertEqual(self.check(A1, A2)[1], 'type-match')


if __name__ == '__main__':
    main()
