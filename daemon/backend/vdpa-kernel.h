/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "backend/vdpa-netlink.h"
#include "registry.h"

/* The kernel backend's vDPA devices and management devices: what the
 * vdpa netlink family says of them, as registry entries. The connection
 * is made when first needed and again after a failure, since vdpa.ko may
 * be loaded after vfiomigd starts. */

typedef struct VdpaKernel VdpaKernel;

/* replay_dir: answers recorded from the kernel instead of the kernel
 * (vdpa-netlink.h), NULL for the kernel. */
VdpaKernel *vdpa_kernel_new(const char *replay_dir);
void vdpa_kernel_free(VdpaKernel *k);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VdpaKernel, vdpa_kernel_free);

/* The vDPA device NAME (at syspath, with this driver bound or ""), or
 * NULL when the kernel knows no such device (it went away). When netlink
 * cannot be asked, the device is still there, with its facet unknown. */
Device *vdpa_kernel_device(VdpaKernel *k, const char *name, const char *syspath, const char *driver);

/* Makes the registry's management devices (parents with vDPA types) what
 * the kernel lists now. */
void vdpa_kernel_sync_mgmt(VdpaKernel *k, Registry *r);

/* The facet of what the kernel said of a device or a management device's
 * class; pure. The parent name of a management device "bus/dev" is dev. */
char *vdpa_kernel_device_facet(const VdpaDeviceInfo *info);
char *vdpa_kernel_mgmt_facet(const VdpaMgmtInfo *info, uint32_t device_id);
const char *vdpa_kernel_mgmt_parent(const char *mgmtdev);
