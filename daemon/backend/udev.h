/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "backend/backend.h"

/* The kernel backend's device discovery: enumerates mdev parents and
 * types (/sys/class/mdev_bus), mdev devices (bus mdev), PCI functions
 * bound to a VFIO driver (those with vfio-dev/) and vDPA devices and
 * management devices (bus vdpa, described over netlink: vdpa-kernel.h),
 * then follows uevents. vdpa_replay: vdpa-kernel.h.
 * Reads sysfs only: it never opens a device, since a VMM opening the
 * device at the same moment would get EBUSY. */

int udev_backend_new(sd_event *event, Registry *r, const char *vdpa_replay, Backend **ret);
