/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "backend/devops.h"
#include "registry.h"

/* The kernel backend's DeviceOps: a VFIO device opened through its cdev
 * and iommufd where the kernel has them, else through its IOMMU group and
 * a container, driven with the migration uAPI v2 ioctls.
 *
 * Opening is for an operation a client asked for; the handle is closed
 * when it ends. A device (or its group) held by someone else gives
 * -EBUSY. *ret_error, if given, receives a message naming the device and
 * the step that failed. */
int vfio_device_open(const Device *d, DeviceHandle **ret, char **ret_error);
