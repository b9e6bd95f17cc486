/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "iommu-facet.h"
#include "log.h"
#include "vfio-uapi.h"
#include "backend/vfio.h"

/* The kernel backend of DeviceOps.
 *
 * Two ways into a device:
 *
 *  - cdev: /dev/vfio/devices/vfioN bound to an iommufd
 *    (VFIO_DEVICE_BIND_IOMMUFD). No IOAS is attached, on purpose. Binding
 *    already claims DMA ownership and leaves a physical device in the
 *    blocking domain, so it cannot DMA anywhere; an emulated device (mdev)
 *    gets an iommufd access object with nothing behind it, which is all a
 *    device that does no DMA (mtty) needs. The migration features, the
 *    data fds and VFIO_DEVICE_RESET are driver operations that do not go
 *    through the device's IOAS: the migration drivers in 6.12 (mlx5,
 *    hisi_acc, pds, virtio, qat) move state through the parent PF, not
 *    through the VF's DMA. We never hold guest memory, so an IOAS would
 *    have nothing to map anyway; a device that could only migrate with
 *    guest memory mapped must be migrated by its VMM, which owns that.
 *
 *  - legacy: a Type1v2 container and the device's IOMMU group. The
 *    container stays empty (no DMA mappings) for the same reason.
 *
 * The handle keeps every fd it opened until close(): the group (or the
 * bound cdev) is what makes the device ours and gives everybody else
 * -EBUSY while we work on it. */

typedef struct VfioHandle {
        DeviceHandle base;      /* first: DeviceHandle * and VfioHandle * convert */
        int device_fd;
        int group_fd;           /* legacy path */
        int container_fd;       /* legacy path */
        int iommufd;            /* cdev path */
} VfioHandle;

#define VFIO_CONTAINER_PATH "/dev/vfio/vfio"
#define IOMMUFD_PATH "/dev/iommu"
#define VFIO_CDEV_PREFIX "/dev/vfio/devices/vfio"

/* The largest payload we exchange: struct vfio_device_feature_mig_state
 * and the u64 features are 8 bytes. */
#define FEATURE_PAYLOAD_MAX 8

struct feature_arg {
        __u32 argsz;
        __u32 flags;
        __u8 data[FEATURE_PAYLOAD_MAX] __attribute__((aligned(8)));
};
_Static_assert(offsetof(struct feature_arg, data) == offsetof(struct vfio_device_feature, data),
               "feature payload must follow the header");
_Static_assert(sizeof(struct vfio_device_feature_mig_state) <= FEATURE_PAYLOAD_MAX, "payload");

static void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}
#define _cleanup_close_ __attribute__((cleanup(closep)))

static int steal_fd(int *fd) {
        int r = *fd;

        *fd = -1;
        return r;
}

static VfioHandle *vfio_handle(DeviceHandle *h) {
        return (VfioHandle *) h;
}

/* One VFIO_DEVICE_FEATURE call. argsz is exactly header + payload; the
 * kernel writes the reply (GET, and SET of MIG_DEVICE_STATE, which
 * returns the data fd) back into the same bytes. */
static int device_feature(int fd, uint32_t feature, uint32_t direction, void *payload, size_t size) {
        struct feature_arg arg = {
                .argsz = offsetof(struct feature_arg, data) + size,
                .flags = feature | direction,
        };

        g_assert(size <= sizeof(arg.data));
        memcpy(arg.data, payload, size);
        if (ioctl(fd, VFIO_DEVICE_FEATURE, &arg) < 0)
                return -errno;
        memcpy(payload, arg.data, size);
        return 0;
}

static int vfio_get_flags(DeviceHandle *dh, uint32_t *ret) {
        struct vfio_device_feature_migration mig = {};
        int r;

        /* -ENOTTY: the driver has no migration ops, i.e. not migratable. */
        r = device_feature(vfio_handle(dh)->device_fd, VFIO_DEVICE_FEATURE_MIGRATION,
                           VFIO_DEVICE_FEATURE_GET, &mig, sizeof(mig));
        if (r < 0)
                return log_debug_errno(r, "%s: GET migration flags failed: %m", dh->name);
        *ret = (uint32_t) mig.flags;
        return 0;
}

static int vfio_get_state(DeviceHandle *dh, uint32_t *ret) {
        struct vfio_device_feature_mig_state mig = { .data_fd = -1 };
        int r;

        r = device_feature(vfio_handle(dh)->device_fd, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                           VFIO_DEVICE_FEATURE_GET, &mig, sizeof(mig));
        if (r < 0)
                return log_debug_errno(r, "%s: GET migration state failed: %m", dh->name);
        *ret = mig.device_state;
        return 0;
}

static int vfio_set_state(DeviceHandle *dh, uint32_t state, int *ret_data_fd) {
        struct vfio_device_feature_mig_state mig = {
                .device_state = state,
                .data_fd = -1,
        };
        int r;

        if (ret_data_fd)
                *ret_data_fd = -1;

        r = device_feature(vfio_handle(dh)->device_fd, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
                           VFIO_DEVICE_FEATURE_SET, &mig, sizeof(mig));
        /* On failure the reply carries the requested state and data_fd -1,
         * which says nothing about where the device is: the caller asks
         * with get_state. */
        if (r < 0)
                return log_debug_errno(r, "%s: SET migration state %" PRIu32 " failed: %m", dh->name, state);

        /* The kernel installs the fd O_CLOEXEC. It comes only on an arc
         * that opens a session; a caller not expecting one must not leak it. */
        if (mig.data_fd >= 0) {
                if (ret_data_fd)
                        *ret_data_fd = mig.data_fd;
                else
                        close(mig.data_fd);
        }
        log_debug("%s: SET migration state %" PRIu32 ": ok%s", dh->name, state, mig.data_fd >= 0 ? ", data fd" : "");
        return 0;
}

static int vfio_data_size(DeviceHandle *dh, uint64_t *ret) {
        struct vfio_device_feature_mig_data_size size = {};
        int r;

        r = device_feature(vfio_handle(dh)->device_fd, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
                           VFIO_DEVICE_FEATURE_GET, &size, sizeof(size));
        if (r < 0)
                return log_debug_errno(r, "%s: GET migration data size failed: %m", dh->name);
        *ret = size.stop_copy_length;
        return 0;
}

static int vfio_precopy_info(DeviceHandle *dh, int data_fd, uint64_t *ret_initial, uint64_t *ret_dirty) {
        struct vfio_precopy_info info = { .argsz = sizeof(info) };

        /* An ioctl on the session's data fd, not on the device. */
        if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info) < 0)
                return log_debug_errno(errno, "%s: VFIO_MIG_GET_PRECOPY_INFO failed: %m", dh->name);
        *ret_initial = info.initial_bytes;
        *ret_dirty = info.dirty_bytes;
        return 0;
}

static int vfio_reset(DeviceHandle *dh) {
        if (ioctl(vfio_handle(dh)->device_fd, VFIO_DEVICE_RESET) < 0)
                return log_debug_errno(errno, "%s: VFIO_DEVICE_RESET failed: %m", dh->name);
        return 0;
}

/* Device first: on the cdev path its release unbinds from the iommufd,
 * on the legacy path it drops its hold on group and container. */
static void vfio_handle_close_fds(VfioHandle *h) {
        closep(&h->device_fd);
        closep(&h->group_fd);
        closep(&h->container_fd);
        closep(&h->iommufd);
}

static void vfio_close(DeviceHandle *dh) {
        VfioHandle *h = vfio_handle(dh);

        if (!h)
                return;
        vfio_handle_close_fds(h);
        g_free(h->base.name);
        g_free(h->base.iommu);
        g_free(h);
}

static const DeviceOps vfio_ops = {
        .get_flags = vfio_get_flags,
        .get_state = vfio_get_state,
        .set_state = vfio_set_state,
        .data_size = vfio_data_size,
        .precopy_info = vfio_precopy_info,
        .reset = vfio_reset,
        .close = vfio_close,
};

/* Sets *ret_error to the message (vfio_device_open puts the device's name
 * in front) and returns -abs(error). */
static int open_error(char **ret_error, int error, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int open_error(char **ret_error, int error, const char *format, ...) {
        va_list ap;

        g_free(*ret_error);
        va_start(ap, format);
        *ret_error = g_strdup_vprintf(format, ap);
        va_end(ap);
        return -abs(error);
}

/* The same with the error's description appended: "<step>: <strerror>". */
static int open_fail(char **ret_error, int error, const char *format, ...) G_GNUC_PRINTF(3, 4);
static int open_fail(char **ret_error, int error, const char *format, ...) {
        g_autofree char *step = NULL;
        va_list ap;

        va_start(ap, format);
        step = g_strdup_vprintf(format, ap);
        va_end(ap);
        return open_error(ret_error, error, "%s: %s", step, g_strerror(abs(error)));
}

static bool is_cdev_node(const char *path) {
        const char *n;

        if (!path || !g_str_has_prefix(path, VFIO_CDEV_PREFIX))
                return false;
        n = path + strlen(VFIO_CDEV_PREFIX);
        return *n && strspn(n, "0123456789") == strlen(n);
}

static bool is_group_number(const char *s) {
        return s && *s && strspn(s, "0123456789") == strlen(s);
}

/* Errors after which the legacy path may still work: no such node, no
 * iommufd in this kernel, or a driver that cannot be bound this way. */
static bool cdev_error_allows_fallback(int r) {
        return r == -ENOENT || r == -ENODEV || r == -ENOTTY || r == -EOPNOTSUPP;
}

static int open_cdev(VfioHandle *h, const Device *d, char **error) {
        _cleanup_close_ int device_fd = -1, iommufd = -1;
        struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };

        device_fd = open(d->vfio_dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (device_fd < 0)
                return open_fail(error, errno, "opening %s", d->vfio_dev);

        iommufd = open(IOMMUFD_PATH, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (iommufd < 0)
                return open_fail(error, errno, "opening " IOMMUFD_PATH);

        bind.iommufd = iommufd;
        if (ioctl(device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
                int e = errno;

                /* Open succeeds for anyone; ownership is decided here. The
                 * group is open on the legacy path elsewhere: -EBUSY
                 * (vfio_device_block_group). The device is bound through
                 * another cdev fd: -EINVAL (vfio_df_open refuses a second
                 * open without a group); our arguments are valid, so that
                 * is the only way to get it. */
                if (e == EBUSY)
                        return open_error(error, EBUSY, "IOMMU group %s is in use by another process",
                                          d->iommu_group);
                if (e == EINVAL)
                        return open_error(error, EBUSY, "%s is in use by another process (already bound to an iommufd)",
                                          d->vfio_dev);
                return open_fail(error, e, "binding %s to " IOMMUFD_PATH, d->vfio_dev);
        }
        log_debug("%s: bound %s to iommufd, device id %" PRIu32, d->name, d->vfio_dev, bind.out_devid);

        h->device_fd = steal_fd(&device_fd);
        h->iommufd = steal_fd(&iommufd);
        return 0;
}

static int open_container(const Device *d, int *ret, char **error) {
        _cleanup_close_ int fd = -1;
        int r;

        fd = open(VFIO_CONTAINER_PATH, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return open_fail(error, errno, "opening the VFIO container " VFIO_CONTAINER_PATH);

        r = ioctl(fd, VFIO_GET_API_VERSION);
        if (r < 0)
                return open_fail(error, errno, "VFIO_GET_API_VERSION");
        if (r != VFIO_API_VERSION)
                return open_error(error, EPROTONOSUPPORT, "unknown VFIO API version %d (expected %d)",
                                  r, VFIO_API_VERSION);

        r = ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
        if (r < 0)
                return open_fail(error, errno, "VFIO_CHECK_EXTENSION(TYPE1v2)");
        if (r == 0)
                return open_error(error, EOPNOTSUPP, "the VFIO container has no Type1v2 IOMMU "
                                  "(is vfio_iommu_type1 loaded?)");

        *ret = steal_fd(&fd);
        return 0;
}

static int open_group(const Device *d, int *ret, char **error) {
        _cleanup_close_ int fd = -1;
        g_autofree char *path = g_strconcat("/dev/vfio/", d->iommu_group, NULL);
        struct vfio_group_status status = { .argsz = sizeof(status) };

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int e = errno;

                /* The kernel allows one open of a group, and none while one
                 * of its devices is open through its cdev. */
                if (e == EBUSY)
                        return open_error(error, e, "IOMMU group %s is in use by another process", d->iommu_group);
                return open_fail(error, e, "opening IOMMU group %s", path);
        }

        if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0)
                return open_fail(error, errno, "VFIO_GROUP_GET_STATUS on %s", path);
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
                return open_error(error, EPERM, "IOMMU group %s is not viable: every device in it must be "
                                  "bound to a VFIO driver or to none", d->iommu_group);

        *ret = steal_fd(&fd);
        return 0;
}

/* The container's view of the IOMMU, asked once the group is in it: the
 * numbers sysfs gave at enumeration, now from the kernel itself. A
 * failure only costs the cross-check. */
static char *read_iommu_info(int container, const char *name) {
        struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
        g_autofree void *buf = NULL;
        IommuFacet f = {};

        if (ioctl(container, VFIO_IOMMU_GET_INFO, &probe) < 0 || probe.argsz < sizeof(probe) ||
            probe.argsz > 65536) {
                log_debug_errno(errno, "%s: VFIO_IOMMU_GET_INFO: %m", name);
                return NULL;
        }
        buf = g_malloc0(probe.argsz);
        ((struct vfio_iommu_type1_info *) buf)->argsz = probe.argsz;
        if (ioctl(container, VFIO_IOMMU_GET_INFO, buf) < 0 || iommu_facet_from_type1_info(&f, buf, probe.argsz) < 0) {
                log_debug("%s: VFIO_IOMMU_GET_INFO gave nothing usable", name);
                return NULL;
        }
        return iommu_facet_format(&f);
}

static int open_legacy(VfioHandle *h, const Device *d, char **error) {
        _cleanup_close_ int container = -1, group = -1;
        int r, fd;

        if (!is_group_number(d->iommu_group))
                return open_error(error, ENODEV, "the device has no IOMMU group");

        /* The group first: if someone else holds the device, say that,
         * not something about containers. */
        r = open_group(d, &group, error);
        if (r < 0)
                return r;
        r = open_container(d, &container, error);
        if (r < 0)
                return r;

        if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0)
                return open_fail(error, errno, "VFIO_GROUP_SET_CONTAINER for IOMMU group %s", d->iommu_group);
        if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                return open_fail(error, errno, "VFIO_SET_IOMMU(TYPE1v2) for IOMMU group %s", d->iommu_group);

        /* The kernel installs the device fd O_CLOEXEC. */
        fd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, d->name);
        if (fd < 0)
                return open_fail(error, errno, "VFIO_GROUP_GET_DEVICE_FD in IOMMU group %s", d->iommu_group);
        log_debug("%s: opened through IOMMU group %s", d->name, d->iommu_group);

        h->device_fd = fd;
        h->group_fd = steal_fd(&group);
        h->container_fd = steal_fd(&container);
        h->base.iommu = read_iommu_info(h->container_fd, d->name);
        return 0;
}

int vfio_device_open(const Device *d, DeviceHandle **ret, char **ret_error) {
        g_autofree char *error = NULL, *cdev_error = NULL, *msg = NULL;
        VfioHandle *h;
        int r = -ENOENT;

        g_return_val_if_fail(d && d->name && ret, -EINVAL);

        h = g_new0(VfioHandle, 1);
        h->base.ops = &vfio_ops;
        h->base.name = g_strdup(d->name);
        h->device_fd = h->group_fd = h->container_fd = h->iommufd = -1;

        if (is_cdev_node(d->vfio_dev) && access(IOMMUFD_PATH, F_OK) == 0) {
                r = open_cdev(h, d, &error);
                if (r >= 0)
                        goto done;
                if (!cdev_error_allows_fallback(r))
                        goto fail;
                log_debug("%s: %s, trying the IOMMU group", d->name, error);
                cdev_error = g_steal_pointer(&error);
                vfio_handle_close_fds(h);
        }

        r = open_legacy(h, d, &error);
        if (r < 0)
                goto fail;

done:
        *ret = &h->base;
        return 0;

fail:
        vfio_close(&h->base);
        *ret = NULL;
        /* When both ways failed the group's error is the one to act on;
         * the cdev's may explain it. */
        msg = cdev_error ? g_strdup_printf("%s: %s (and through its cdev: %s)", d->name, error, cdev_error)
                         : g_strdup_printf("%s: %s", d->name, error);
        log_debug("%s", msg);
        if (ret_error)
                *ret_error = g_steal_pointer(&msg);
        return r;
}
