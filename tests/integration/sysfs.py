# SPDX-License-Identifier: LGPL-2.1-or-later
"""Builds sysfs trees shaped like the kernel's, inside a umockdev testbed.

umockdev's own add_device() invents paths for subsystems it does not
know (mdev, mdev_bus), so the layout here is written out by hand from
what Linux 6.x shows: mtty's parent under /sys/devices/virtual/mtty, the
/sys/class/mdev_bus compat links, mdevs on /sys/bus/mdev with mdev_type,
iommu_group, driver links and vfio-dev/vfioN, PCI functions with their
vendor/device attributes, physfn, and vfio-dev/ only when bound to VFIO.
"""

import os
import shutil

import gi
gi.require_version('UMockdev', '1.0')
from gi.repository import UMockdev  # noqa: E402


class SysfsTree:

    def __init__(self):
        self.testbed = UMockdev.Testbed.new()
        self.root = self.testbed.get_root_dir()
        self.vfio_minor = 0

    def path(self, p):
        return self.root + p

    def write(self, p, content=''):
        os.makedirs(os.path.dirname(self.path(p)), exist_ok=True)
        with open(self.path(p), 'w', encoding='utf-8') as f:
            f.write(content)

    def read(self, p):
        with open(self.path(p), encoding='utf-8') as f:
            return f.read()

    def link(self, p, target):
        """A symlink at p to the absolute sysfs path target, made relative
        as the kernel's are."""
        os.makedirs(os.path.dirname(self.path(p)), exist_ok=True)
        if os.path.lexists(self.path(p)):
            os.unlink(self.path(p))
        os.symlink(os.path.relpath(target, os.path.dirname(p)), self.path(p))

    def unlink(self, p):
        if os.path.lexists(self.path(p)):
            os.unlink(self.path(p))

    def uevent(self, devpath, action):
        self.testbed.uevent(devpath, action)

    # mdev parents and devices

    def add_mtty_parent(self, available=None):
        dev = '/sys/devices/virtual/mtty/mtty'
        self.write(dev + '/uevent', '')
        self.link(dev + '/subsystem', '/sys/class/mtty')
        self.link('/sys/class/mtty/mtty', dev)
        self.link('/sys/class/mdev_bus/mtty', dev)
        names = {'mtty-1': 'Single port serial', 'mtty-2': 'Dual port serial'}
        for type_id, name in names.items():
            self.add_type(dev, type_id, name, (available or {}).get(type_id, 0))
        return dev

    def add_type(self, parent_dev, type_id, name, available):
        t = f'{parent_dev}/mdev_supported_types/{type_id}'
        self.write(t + '/name', name + '\n')
        self.write(t + '/device_api', 'vfio-pci\n')
        self.write(t + '/available_instances', f'{available}\n')
        self.write(t + '/create', '')
        os.makedirs(self.path(t + '/devices'), exist_ok=True)
        return t

    def set_available(self, parent_dev, type_id, n):
        self.write(f'{parent_dev}/mdev_supported_types/{type_id}/available_instances', f'{n}\n')

    def add_vfio_dev(self, dev, cdev=True):
        name = f'vfio{self.vfio_minor}'
        self.vfio_minor += 1
        self.write(f'{dev}/vfio-dev/{name}/uevent',
                   f'MAJOR=511\nMINOR={self.vfio_minor - 1}\nDEVNAME=vfio/devices/{name}\n' if cdev else '')
        if cdev:
            self.write(f'{dev}/vfio-dev/{name}/dev', f'511:{self.vfio_minor - 1}\n')
        return name

    def add_iommu_group(self, dev, group):
        self.link(f'{dev}/iommu_group', f'/sys/kernel/iommu_groups/{group}')
        self.link(f'/sys/kernel/iommu_groups/{group}/devices/{os.path.basename(dev)}', dev)

    def add_mdev(self, parent_dev, uuid, type_id, group, driver='mtty'):
        dev = f'{parent_dev}/{uuid}'
        self.write(dev + '/uevent', f'DRIVER={driver}\nMDEV_TYPE={type_id}\n')
        self.write(dev + '/remove', '')
        self.link(dev + '/subsystem', '/sys/bus/mdev')
        self.link(dev + '/driver', f'/sys/bus/mdev/drivers/{driver}')
        self.link(dev + '/mdev_type', f'{parent_dev}/mdev_supported_types/{type_id}')
        self.link(f'{parent_dev}/mdev_supported_types/{type_id}/devices/{uuid}', dev)
        self.link(f'/sys/bus/mdev/devices/{uuid}', dev)
        self.add_iommu_group(dev, group)
        self.add_vfio_dev(dev)
        return dev

    def remove_mdev(self, parent_dev, uuid):
        dev = f'{parent_dev}/{uuid}'
        for link in [f'/sys/bus/mdev/devices/{uuid}']:
            self.unlink(link)
        for t in os.listdir(self.path(f'{parent_dev}/mdev_supported_types')):
            self.unlink(f'{parent_dev}/mdev_supported_types/{t}/devices/{uuid}')
        shutil.rmtree(self.path(dev))

    # vDPA devices (what netlink says of them comes from recordings)

    def add_vdpa(self, name, driver=None, under=None):
        """A VDUSE-made vDPA device, as 6.12 shows one: under its VDUSE
        device, on bus vdpa. under: another parent directory (vdpa_sim's
        devices have none: under='/sys/devices')."""
        dev = f'{under}/{name}' if under else f'/sys/devices/virtual/vduse/{name}/{name}'
        self.write(dev + '/uevent', f'DRIVER={driver}\n' if driver else '')
        self.link(dev + '/subsystem', '/sys/bus/vdpa')
        self.link(f'/sys/bus/vdpa/devices/{name}', dev)
        if driver:
            self.link(dev + '/driver', f'/sys/bus/vdpa/drivers/{driver}')
        return dev

    def remove_vdpa(self, name):
        self.unlink(f'/sys/bus/vdpa/devices/{name}')
        shutil.rmtree(self.path(f'/sys/devices/virtual/vduse/{name}'))

    # IOMMUs

    def add_vtd(self, unit, cap, ecap):
        """An Intel IOMMU unit, as /sys/class/iommu shows one."""
        dev = f'/sys/devices/virtual/iommu/{unit}'
        self.write(f'{dev}/intel-iommu/cap', f'{cap:x}\n')
        self.write(f'{dev}/intel-iommu/ecap', f'{ecap:x}\n')
        self.link(f'/sys/class/iommu/{unit}', dev)
        return dev

    def attach_iommu(self, dev, unit, group, reserved):
        """dev is translated by unit; its group reserves these regions
        ((start, end, type) each)."""
        self.link(f'{dev}/iommu', f'/sys/devices/virtual/iommu/{unit}')
        self.write(f'/sys/kernel/iommu_groups/{group}/reserved_regions',
                   ''.join(f'0x{s:016x} 0x{e:016x} {t}\n' for s, e, t in reserved))

    # PCI functions

    def add_pci(self, address, driver, vendor, device, subvendor, subdevice, group, physfn=None, vfio=False):
        dev = f'/sys/devices/pci0000:3a/0000:3a:00.0/{address}'
        self.write(dev + '/uevent', f'DRIVER={driver}\nPCI_ID={vendor[2:].upper()}:{device[2:].upper()}\n'
                                    f'PCI_SLOT_NAME={address}\n')
        for attr, value in [('vendor', vendor), ('device', device), ('subsystem_vendor', subvendor),
                            ('subsystem_device', subdevice)]:
            self.write(f'{dev}/{attr}', value + '\n')
        self.link(dev + '/subsystem', '/sys/bus/pci')
        self.link(f'/sys/bus/pci/devices/{address}', dev)
        self.bind(dev, driver, vfio)
        self.add_iommu_group(dev, group)
        if physfn:
            self.link(dev + '/physfn', f'/sys/devices/pci0000:3a/0000:3a:00.0/{physfn}')
        return dev

    def bind(self, dev, driver, vfio):
        self.link(dev + '/driver', f'/sys/bus/pci/drivers/{driver}')
        content = self.read(dev + '/uevent').splitlines()
        content = [l for l in content if not l.startswith('DRIVER=')] + [f'DRIVER={driver}']
        self.write(dev + '/uevent', '\n'.join(content) + '\n')
        if vfio:
            self.add_vfio_dev(dev)

    def unbind(self, dev):
        self.unlink(dev + '/driver')
        if os.path.isdir(self.path(dev + '/vfio-dev')):
            shutil.rmtree(self.path(dev + '/vfio-dev'))
        content = [l for l in self.read(dev + '/uevent').splitlines() if not l.startswith('DRIVER=')]
        self.write(dev + '/uevent', '\n'.join(content) + '\n')
