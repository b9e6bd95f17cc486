# SPDX-License-Identifier: LGPL-2.1-or-later
'''polkitd mock that decides on the details, as a polkit rule would

python-dbusmock's polkitd template allows by action only. This one allows
an action only when every device that the details name, under any of the
keys "device", "devices", "sources" and "targets" (comma-separated lists),
is among those AllowDevices() gave for the action, and at least one is
named: a rule that looks at whatever device keys there are. Everything is
refused by default. It records every check, for GetChecks(), and can hang
checks like the polkitd template.
'''

import dbus

from dbusmock import MOCK_IFACE

BUS_NAME = 'org.freedesktop.PolicyKit1'
MAIN_OBJ = '/org/freedesktop/PolicyKit1/Authority'
MAIN_IFACE = 'org.freedesktop.PolicyKit1.Authority'
SYSTEM_BUS = True

DEVICE_KEYS = ('device', 'devices', 'sources', 'targets')


def load(mock, _parameters):
    mock.AddProperties(MAIN_IFACE,
                       dbus.Dictionary({
                           'BackendName': 'local',
                           'BackendVersion': '0.8.15',
                           'BackendFeatures': dbus.UInt32(1, variant_level=1),
                       }, signature='sv'))
    mock.allowed_devices = {}
    mock.checks = []
    mock.simulate_hang = False
    mock.hanging_calls = []


@dbus.service.method(MAIN_IFACE,
                     in_signature='(sa{sv})sa{ss}us',
                     out_signature='(bba{ss})',
                     async_callbacks=('ok_cb', '_err_cb'))
def CheckAuthorization(self, _subject, action_id, details, _flags, _cancellation_id, ok_cb, _err_cb):
    named = set()
    for key in DEVICE_KEYS:
        if key in details:
            named.update(str(details[key]).split(','))
    allowed = self.allowed_devices.get(str(action_id))
    ret = (allowed is not None and bool(named) and named <= allowed, False, {})
    self.checks.append((str(action_id), {str(k): str(v) for k, v in details.items()}))
    if self.simulate_hang:
        self.hanging_calls.append((ok_cb, ret))
    else:
        ok_cb(ret)


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})ss')
def RegisterAuthenticationAgent(_self, _subject, _locale, _object_path):
    pass


@dbus.service.method(MOCK_IFACE, in_signature='sas', out_signature='')
def AllowDevices(self, action, devices):
    '''Allows action for calls that name only these devices'''
    self.allowed_devices[str(action)] = {str(d) for d in devices}


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='')
def Reset(self):
    '''Refuses everything again and forgets the checks'''
    self.allowed_devices = {}
    self.checks = []


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='a(sa{ss})')
def GetChecks(self):
    '''The action and details of every check so far, oldest first'''
    return dbus.Array(self.checks, signature='(sa{ss})')


@dbus.service.method(MOCK_IFACE, in_signature='b', out_signature='')
def SimulateHang(self, hang):
    '''Makes CheckAuthorization() wait for ReleaseHangingCalls()'''
    self.simulate_hang = hang


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='')
def ReleaseHangingCalls(self):
    '''Answers the checks that wait'''
    for (cb, ret) in self.hanging_calls:
        cb(ret)
    self.hanging_calls = []


@dbus.service.method(MOCK_IFACE, in_signature='', out_signature='b')
def HaveHangingCalls(self):
    '''Whether checks wait'''
    return bool(self.hanging_calls)
