#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The polkit actions the daemon checks exist in policy/, and the bus
policy grants what the API needs: root owns the name, anyone may call."""

import os
import re
import sys
import xml.etree.ElementTree as ET

src = sys.argv[1]
names = open(os.path.join(src, 'daemon', 'vfiomig-names.h'), encoding='utf-8').read()
used = set(re.findall(r'#define VFIOMIG_POLKIT_\w+\s+"([^"]+)"', names))
policy = ET.parse(os.path.join(src, 'policy', 'org.vfiomig1.policy'))
declared = {a.get('id') for a in policy.iter('action')}
assert used == declared, f'polkit actions used {sorted(used)} != declared {sorted(declared)}'
for action in policy.iter('action'):
    assert action.findtext('description') and action.findtext('message'), action.get('id')
    assert action.find('defaults/allow_active').text.startswith('auth_admin'), action.get('id')

bus = ET.parse(os.path.join(src, 'dbus', 'org.vfiomig1.conf'))
root_rules = [p for p in bus.iter('policy') if p.get('user') == 'root']
default_rules = [p for p in bus.iter('policy') if p.get('context') == 'default']
assert any(a.get('own') == 'org.vfiomig1' for p in root_rules for a in p.iter('allow'))
assert not any(a.get('own') for p in default_rules for a in p.iter('allow')), 'only root may own the name'
assert any(a.get('send_destination') == 'org.vfiomig1' for p in default_rules for a in p.iter('allow'))
print(f'polkit actions {sorted(declared)} and bus policy: OK')
