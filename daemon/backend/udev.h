/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "backend/backend.h"

/* The kernel backend's device discovery: enumerates mdev parents and
 * types (/sys/class/mdev_bus), mdev devices (bus mdev) and PCI functions
 * bound to a VFIO driver (those with vfio-dev/), then follows uevents.
 * Reads sysfs only: it never opens a device, since a VMM opening the
 * device at the same moment would get EBUSY. */

int udev_backend_new(sd_event *event, Registry *r, Backend **ret);
