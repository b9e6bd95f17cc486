#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The IOMMU facet of migration identities (vfiomigd(8), COMPATIBILITY, "The
IOMMU facet"; the Iommu property in org.vfiomig1(5)) on the testbed: two
hosts' worth of PCI functions of one type behind a 48-bit and a 39-bit
IOMMU, judged by the map, by Migrate, by a load of a saved stream, by
CheckIdentityEx/FindTargetsEx for a source elsewhere, and relaxed by a
rule. The kernel backend's derivation from sysfs is in test_udev.py; the
real kernel's in tests/vm/scenario-pci.sh."""

import json
import os

from gi.repository import GLib

from vfiomigtest import (DEVICE, MDEV_TYPE, TestbedTestCase, busctl, ctl, device_path, main)

ERR = 'org.vfiomig1.Error.'
WIDE = 'width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no'
NARROW = 'width=39 ranges=0x0-0xfedfffff,0xfef00000-0x7fffffffff pgsizes=0x40201000 dirty=no'
W1, W2, N1 = '0000:01:00.0', '0000:02:00.0', '0000:03:00.0'     # 48, 48, 39 bits
R48, R39 = '0000:04:00.0', '0000:05:00.0'                       # relaxed by a rule
MTTY = 'mtty/mtty-2'


def pci(name, driver, iommu):
    return f'''
[Device {name}]
Kind=pci
Driver={driver}
Vendor=0x1234
Device=0x11e8
MigrationFlags=stop-copy,p2p
StateSize=64K
Iommu={iommu}
'''


TESTBED = '''
[Parent mtty]
Driver=mtty
Iommu=none

[Type mtty/mtty-2]
MigrationFlags=stop-copy,p2p,pre-copy
StateSize=96
MaxInstances=4
''' + pci(W1, 'edu', WIDE) + pci(W2, 'edu', WIDE) + pci(N1, 'edu', NARROW) + \
    pci(R48, 'relaxed', WIDE) + pci(R39, 'relaxed', NARROW)

RULES = '''
# the operator knows these guests never map above 39 bits
[Rule relaxed]
Driver=relaxed
IgnoreFacets=iommu
'''


class IommuTest(TestbedTestCase):
    TESTBED = TESTBED

    @classmethod
    def more_args(cls):
        rules = os.path.join(cls.tmp, 'rules')
        os.mkdir(rules)
        with open(os.path.join(rules, '50-relax.rules'), 'w', encoding='utf-8') as f:
            f.write(RULES)
        return [f'--rules-dir={rules}']

    def prop(self, name, prop):
        return self.get_property(device_path(name), DEVICE, prop)

    def compat(self, source, target):
        return self.call('CheckCompatibility', '(ss)', (source, target))

    def ident(self, name):
        return self.call('GetIdentityEx', '(s)', (name,))[0]

    def check_identity(self, identity, target):
        return self.call('CheckIdentityEx', '(a{ss}s)', (identity, target))

    def arcs(self, name):
        return self.tb('GetTransitions', '(s)', name)[0]

    def test_properties(self):
        self.assertEqual(self.prop(W1, 'Iommu'), WIDE)
        self.assertEqual(self.prop(N1, 'Iommu'), NARROW)
        self.assertEqual(self.get_property('/org/vfiomig1/type/mtty_2fmtty_2d2', MDEV_TYPE, 'Iommu'), 'none')
        uuid = self.call('CreateMdev', '(sssa{sv})', ('mtty', 'mtty-2', '', {}))[0]
        self.addCleanup(self.call, 'RemoveMdev', '(sa{sv})', (uuid, {}))
        self.assertEqual(self.prop(uuid, 'Iommu'), 'none')
        self.assertEqual(self.ident(W1), {'type': 'vfio-pci:edu:0x1234:0x11e8:0x0000:0x0000', 'version': '',
                                          'iommu': WIDE, 'vdpa': ''})

    def test_map_verdicts(self):
        verdict, basis, reason = self.compat(W1, N1)
        self.assertEqual((verdict, reason), ('incompatible', 'target IOMMU maps 39 bits, source 48'))
        self.assertEqual(self.compat(N1, W1)[0], 'compatible')
        self.assertEqual(self.compat(W1, W2)[0], 'compatible')
        # a rule of either side says the facet does not matter for them
        self.assertEqual(self.compat(R48, R39)[0], 'compatible')

    def test_migrate_refused_and_nothing_changes(self):
        before = (self.arcs(W1), self.arcs(N1), self.tb('GetDigest', '(s)', N1)[0])
        msg = self.assert_dbus_error(ERR + 'Incompatible', self.call, 'Migrate', '(ssa{sv})', (W1, N1, {}))
        self.assertIn('target IOMMU maps 39 bits, source 48', msg)
        self.assertIn(W1, msg)
        self.assertEqual((self.arcs(W1), self.arcs(N1), self.tb('GetDigest', '(s)', N1)[0]), before)

    def test_saved_stream_judged_by_its_header(self):
        """The stream carries the source's facet: a narrower target is
        refused before it leaves RUNNING, a wider one takes it."""
        for src, tgt, ok in [(W1, N1, False), (N1, W1, True)]:
            with self.subTest(source=src, target=tgt):
                name = f'iommu-{src}'.replace(':', '-')
                job = self.start('Save', '(ssa{sv})', (src, name, {'source-state': GLib.Variant('s', 'running')}))
                self.assertEqual(self.wait_job(job)['result'], 'done')
                arcs = self.arcs(tgt)
                final = self.wait_job(self.start('Load', '(ssa{sv})', (tgt, name, {})))
                if ok:
                    self.assertEqual(final['result'], 'done', final.get('Error'))
                    continue
                self.assertEqual(final['ErrorName'], ERR + 'Incompatible')
                self.assertIn('target IOMMU maps 39 bits, source 48', final['Error'])
                self.assertEqual(self.arcs(tgt), arcs)          # never left RUNNING

    def test_source_elsewhere(self):
        wide = self.ident(W1)
        verdict, _basis, reason = self.check_identity(wide, N1)
        self.assertEqual((verdict, reason), ('incompatible', 'target IOMMU maps 39 bits, source 48'))
        self.assertEqual(self.check_identity(self.ident(N1), W1)[0], 'compatible')
        # an identity that states no facet asks nothing of it, as before
        self.assertEqual(self.check_identity({'type': wide['type']}, N1)[0], 'compatible')
        self.assertEqual(self.call('CheckIdentity', '(sss)', (wide['type'], '', N1))[0], 'compatible')
        # a narrower target is no candidate for the wide source
        names = {t[1] for t in self.call('FindTargetsEx', '(a{ss}a{sv})', (wide, {}))[0]}
        self.assertEqual(names & {W1, W2, N1}, {W1, W2})
        names = {t[1] for t in self.call('FindTargetsEx', '(a{ss}a{sv})', (self.ident(N1), {}))[0]}
        self.assertEqual(names & {W1, W2, N1}, {W1, W2, N1})
        # the facet's spelling does not matter, its meaning does
        respelled = dict(wide, iommu='dirty=no pgsizes=0x40201000 width=48 '
                                     'ranges=0x0-0xFEDFFFFF,0xfef00000-0xffffffffffff')
        self.assertEqual(self.check_identity(respelled, N1)[0], 'incompatible')

    def test_bad_identities_are_refused(self):
        t = self.ident(W1)['type']
        for identity, fragment in [
                ({'type': t, 'colour': 'red'}, "identity key 'colour' is unknown"),
                ({'version': '1'}, 'identity without a type'),
                ({'type': t, 'iommu': 'width=99'}, "'width=99' is not a valid field"),
                ({'type': t, 'iommu': 'bogus=1'}, "unknown field 'bogus'"),
                ({'type': t, 'iommu': 'x' * 5000}, 'longer than 2048 bytes'),
                ({'type': '\n', 'iommu': WIDE}, 'is not a migration type')]:
            with self.subTest(identity=str(identity)[:60]):
                msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.check_identity, identity, N1)
                self.assertIn(fragment, msg)
                msg = self.assert_dbus_error(ERR + 'InvalidArgument', self.call, 'FindTargetsEx', '(a{ss}a{sv})',
                                             (identity, {}))
                self.assertIn(fragment, msg)
        self.assert_dbus_error(ERR + 'NoSuchDevice', self.check_identity, {'type': t}, '0000:77:00.0')
        # a dictionary on the wire may repeat a key: which one would count?
        p = busctl('call', 'org.vfiomig1', '/org/vfiomig1', 'org.vfiomig1.Manager', 'CheckIdentityEx', 'a{ss}s',
                   '2', 'type', t, 'type', t, N1)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("identity key 'type' is given twice", p.stderr)

    def test_ctl(self):
        out = ctl('identity', W1, check=True).stdout
        self.assertIn(f'  IOMMU: {WIDE}\n', out)
        self.assertEqual(json.loads(ctl('identity', N1, '--json', check=True).stdout)['iommu'], NARROW)
        self.assertRegex(ctl('show', W1, check=True).stdout, r'\n +Iommu: width=48 ')
        p = ctl('targets', W1, '--json', check=True)
        self.assertEqual({t['name'] for t in json.loads(p.stdout)} & {W2, N1}, {W2})
        p = ctl('targets', '--type', self.ident(W1)['type'], f'--iommu={NARROW}', '--json', check=True)
        self.assertEqual({t['name'] for t in json.loads(p.stdout)} & {W1, W2, N1}, {W1, W2, N1})
        p = ctl('targets', '--type', self.ident(W1)['type'], '--iommu=width=99')
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("'width=99' is not a valid field", p.stderr)
        p = ctl('targets', W1, '--iommu=none')
        self.assertEqual(p.returncode, 2)


if __name__ == '__main__':
    main()
