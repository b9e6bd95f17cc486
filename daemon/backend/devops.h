/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

/* An opened device as the migration worker drives it: the VFIO migration
 * uAPI v2 reduced to a small ops table. vfio.c implements it with ioctls
 * on a real device fd, testbed-device.c with a simulated device whose
 * data fds are real pipes. Everything above this table is the same code
 * for both.
 *
 * A handle has one owner (the worker thread of one job) and is not
 * thread-safe. All functions return 0 or -errno. */

typedef struct DeviceHandle DeviceHandle;

typedef struct DeviceOps {
        /* VFIO_MIGRATION_* bits; -ENOTTY: the device cannot migrate. */
        int (*get_flags)(DeviceHandle *h, uint32_t *ret);
        int (*get_state)(DeviceHandle *h, uint32_t *ret);
        /* Requests one state (VFIO_STATE_*). On an arc that opens a data
         * session (RUNNING->PRE_COPY, RUNNING_P2P->PRE_COPY_P2P,
         * STOP->STOP_COPY, STOP->RESUMING) *ret_data_fd is the new
         * session's fd, owned by the caller; otherwise -1. After a failure
         * the device may be anywhere on the path: call get_state. */
        int (*set_state)(DeviceHandle *h, uint32_t state, int *ret_data_fd);
        /* Estimated bytes a STOP_COPY session will produce (any state). */
        int (*data_size)(DeviceHandle *h, uint64_t *ret);
        /* Only in PRE_COPY states, on the session's data fd. */
        int (*precopy_info)(DeviceHandle *h, int data_fd, uint64_t *ret_initial, uint64_t *ret_dirty);
        /* Back to RUNNING from anywhere, ERROR included. */
        int (*reset)(DeviceHandle *h);
        void (*close)(DeviceHandle *h);

        /* Optional data I/O on a session's fd; NULL means plain read() and
         * write(), which is all the kernel needs. The testbed uses them to
         * inject I/O faults on its real pipes. Semantics of read(2)/write(2)
         * with -errno returns. */
        ssize_t (*read_data)(DeviceHandle *h, int fd, void *buf, size_t len);
        ssize_t (*write_data)(DeviceHandle *h, int fd, const void *buf, size_t len);
        /* Optional: whether a resuming device has refused what it was
         * given so far (-errno), once it has looked at all of it. For
         * devices that check asynchronously; the kernel's write() fails
         * at once, so vfio.c leaves it NULL. */
        int (*resume_status)(DeviceHandle *h);
} DeviceOps;

struct DeviceHandle {
        const DeviceOps *ops;
        char *name;             /* the device's kernel name, for messages */
        /* What the kernel said of the IOMMU behind the device while it was
         * opened (VFIO_IOMMU_GET_INFO on its container: iommu-facet.h's
         * text, without the dirty field), or NULL. */
        char *iommu;
};

static inline void device_handle_close(DeviceHandle *h) {
        if (h)
                h->ops->close(h);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DeviceHandle, device_handle_close);
