/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The VFIO migration uAPI v2 as the daemon uses it.
 *
 * <linux/vfio.h> from Debian 12 (Linux 6.1) has the v2 core but not
 * PRE_COPY (6.2), PRECOPY_INFO, MIG_DATA_SIZE or the cdev/iommufd ioctls
 * (6.6). Values here are the kernel ABI; the guards keep us building
 * against newer headers that define them already. */

#include <linux/types.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif

/* enum vfio_device_mig_state in 6.1 stops at RUNNING_P2P */
#define VFIO_STATE_ERROR        0
#define VFIO_STATE_STOP         1
#define VFIO_STATE_RUNNING      2
#define VFIO_STATE_STOP_COPY    3
#define VFIO_STATE_RESUMING     4
#define VFIO_STATE_RUNNING_P2P  5
#define VFIO_STATE_PRE_COPY     6
#define VFIO_STATE_PRE_COPY_P2P 7
#define VFIO_STATE_MAX          8

#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
        __u32 argsz;
        __u32 flags;
        __aligned_u64 initial_bytes;
        __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
struct vfio_device_feature_mig_data_size {
        __aligned_u64 stop_copy_length;
};
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
        __u32 argsz;
        __u32 flags;
        __s32 iommufd;
        __u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif
