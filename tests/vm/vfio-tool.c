/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfio-tool: drives one VFIO device through the daemon's kernel backend
 * (daemon/backend/vfio.c, vfio_device_open and its DeviceOps) for the VM tier.
 *
 *   vfio-tool [OPTIONS] COMMAND DEVICE [ARGS...]
 *
 *   flags DEV                 migration flags, e.g. "stop-copy,p2p,pre-copy"
 *   state DEV                 migration state, e.g. "running"
 *   set DEV STATE...          SET each state in turn (one open); prints the
 *                             state GET reports after each, "+fd" when the
 *                             SET returned a data fd ("+fd(inherit)" if it
 *                             lacks O_CLOEXEC)
 *   datasize DEV              estimated STOP_COPY bytes
 *   save DEV FILE             RUNNING -> PRE_COPY -> STOP_COPY -> STOP,
 *                             the raw device stream into FILE
 *   load DEV FILE             STOP -> RESUMING, write FILE, -> STOP -> RUNNING
 *   reset DEV                 VFIO_DEVICE_RESET, prints the state after
 *   regs DEV get OFF          one byte of a region (default BAR0)
 *   regs DEV set OFF VALUE
 *   fds DEV                   the fds an open handle holds, then how many
 *                             are left after closing it
 *   hold DEV SECONDS          keep the device open (prints "holding DEV")
 *
 * Two commands take an IOMMU group number instead of a device and use the
 * raw legacy uAPI (a Type1v2 container), not the backend:
 *
 *   hold-group GROUP SECONDS  container, group and the device fd of the
 *                             group's one device; prints "holding group
 *                             GROUP", waits for SIGTERM, SIGINT, SIGUSR1 or
 *                             the timeout, then checks that every fd still
 *                             works (group viable with its container set,
 *                             DEVICE_GET_INFO, IOMMU_GET_INFO) and prints
 *                             "fds ok"
 *   iommu-info GROUP          what VFIO_IOMMU_GET_INFO says for the group:
 *                             "width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff
 *                             pgsizes=0x40201000" (width: bits of the highest
 *                             IOVA), then "migration-cap pgsizes=0x1000
 *                             max-bitmap=268435456" and "dma-avail 65535"
 *                             if the kernel reports those capabilities
 *
 * Options: --node PATH (device node instead of the one sysfs implies),
 * --chunk N (load: bytes per write), --bytes N (load: write only the
 * first N bytes), --force (load: SET STOP even after a failed write),
 * --region N (regs: region index), --debug.
 *
 * Exit status: 0 success, 1 the operation failed (message on stderr
 * naming errno, e.g. "[EBUSY]"), 2 usage. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib.h>

#include "fsm.h"
#include "log.h"
#include "names.h"
#include "util.h"
#include "vfio-uapi.h"
#include "backend/vfio.h"

static char *arg_node = NULL;
static gint64 arg_chunk = 0;
static gint64 arg_bytes = -1;
static gint arg_region = VFIO_PCI_BAR0_REGION_INDEX;
static gboolean arg_debug = FALSE;
static gboolean arg_force = FALSE;

static const char *state_to_string(uint32_t s) {
        return fsm_state_to_string(s) ?: "invalid";
}

/* "stop-copy", "STOP_COPY" and "3" all name STOP_COPY. */
static int state_from_string(const char *s, uint32_t *ret) {
        g_autofree char *n = g_ascii_strdown(s, -1);
        guint64 v;
        int k;

        g_strdelimit(n, "_", '-');
        k = fsm_state_from_string(n);
        if (k >= 0) {
                *ret = (uint32_t) k;
                return 0;
        }
        if (g_ascii_string_to_unsigned(s, 10, 0, UINT32_MAX, &v, NULL)) {
                *ret = (uint32_t) v;
                return 0;
        }
        return -EINVAL;
}

/* Decimal, 0x hex or 0 octal, as the shell scripts write them. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || !g_ascii_isdigit(*s))
                return false;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || *end || v > max)
                return false;
        *ret = v;
        return true;
}

/* "Device or resource busy [EBUSY]": scenarios match the errno name. */
static const char *errstr(int r) {
        static char buf[256];
        const char *name = strerrorname_np(abs(r));

        snprintf(buf, sizeof(buf), "%s [%s]", g_strerror(abs(r)), name ? name : "?");
        return buf;
}

static int fail(int r, const char *format, ...) G_GNUC_PRINTF(2, 3);
static int fail(int r, const char *format, ...) {
        va_list ap;

        fputs("vfio-tool: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        if (r != 0)
                fprintf(stderr, ": %s", errstr(r));
        fputc('\n', stderr);
        return 1;
}

/* Where the device is after a failure, for the message. */
static const char *state_now(DeviceHandle *h) {
        uint32_t s;

        return h->ops->get_state(h, &s) < 0 ? "unknown" : state_to_string(s);
}

/* The Device the daemon's registry would have: sysfs says which group
 * and whether the kernel made a cdev (vfio-dev/vfioN/dev). */
static int device_from_sysfs(const char *arg, Device **ret) {
        g_autofree char *name = name_normalize_device(arg);
        g_autofree char *vfio_dir = NULL;
        g_autoptr(Device) d = NULL;
        g_autoptr(GDir) dir = NULL;
        const char *n;
        char *group = NULL, *node = NULL;

        if (!name) {
                fail(-EINVAL, "%s is not a device name", arg);
                return -EINVAL;
        }

        d = device_new(name, name_is_uuid(name) ? DEVICE_KIND_MDEV : DEVICE_KIND_PCI);
        device_set_own(&d->sysfs_path, g_strconcat(d->kind == DEVICE_KIND_MDEV ? "/sys/bus/mdev/devices/"
                                                                                : "/sys/bus/pci/devices/",
                                                   name, NULL));
        if (access(d->sysfs_path, F_OK) < 0) {
                fail(-errno, "%s", d->sysfs_path);
                return -ENODEV;
        }
        if (sysfs_link_basename(d->sysfs_path, "iommu_group", &group) >= 0)
                device_set_own(&d->iommu_group, group);

        vfio_dir = g_build_filename(d->sysfs_path, "vfio-dev", NULL);
        dir = g_dir_open(vfio_dir, 0, NULL);
        while (dir && !node && (n = g_dir_read_name(dir))) {
                g_autofree char *sub = g_build_filename(vfio_dir, n, NULL);

                if (g_str_has_prefix(n, "vfio") && sysfs_exists(sub, "dev"))
                        node = g_strconcat("/dev/vfio/devices/", n, NULL);
        }
        if (arg_node)
                free_and_strdup(&node, arg_node);
        else if (!node)
                node = g_strconcat("/dev/vfio/", d->iommu_group, NULL);
        device_set_own(&d->vfio_dev, node);

        if (arg_debug)
                fprintf(stderr, "vfio-tool: %s: group %s, node %s\n", d->name, d->iommu_group, d->vfio_dev);
        *ret = g_steal_pointer(&d);
        return 0;
}

static int open_device(const char *arg, DeviceHandle **ret) {
        g_autoptr(Device) d = NULL;
        g_autofree char *error = NULL;
        int r;

        r = device_from_sysfs(arg, &d);
        if (r < 0)
                return r;
        r = vfio_device_open(d, ret, &error);
        if (r < 0) {
                /* The message already says what failed: add only the errno name. */
                const char *en = strerrorname_np(-r);

                if (error)
                        fprintf(stderr, "vfio-tool: %s [%s]\n", error, en ? en : "?");
                else
                        fail(r, "%s: vfio_device_open", d->name);
                return r;
        }
        return 0;
}

/* The device fd a handle holds: the API hides it, and only the register
 * test needs it. The legacy path's device fd is the anonymous inode
 * "[vfio-device]", the cdev path's is the node itself. */
static int find_device_fd(const char *node) {
        g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
        const char *n;

        while (dir && (n = g_dir_read_name(dir))) {
                g_autofree char *link = g_strconcat("/proc/self/fd/", n, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);

                if (target && (strcmp(target, "anon_inode:[vfio-device]") == 0 ||
                               (node && g_str_has_prefix(node, "/dev/vfio/devices/") && strcmp(target, node) == 0)))
                        return atoi(n);
        }
        return -ENOENT;
}

static int cmd_flags(DeviceHandle *h, char **args) {
        g_autofree char *s = NULL;
        uint32_t flags;
        int r;

        r = h->ops->get_flags(h, &flags);
        if (r == -ENOTTY)
                return fail(r, "%s: not migratable", h->name);
        if (r < 0)
                return fail(r, "%s: get_flags", h->name);
        s = migration_flags_to_string(flags, ",");
        printf("%s\n", s);
        return 0;
}

static int cmd_state(DeviceHandle *h, char **args) {
        uint32_t s;
        int r;

        r = h->ops->get_state(h, &s);
        if (r < 0)
                return fail(r, "%s: get_state", h->name);
        printf("%s\n", state_to_string(s));
        return 0;
}

/* Sessions stay open until the tool exits, as a migration would keep
 * them: PRE_COPY -> STOP_COPY must not need a new fd. */
static int cmd_set(DeviceHandle *h, char **args) {
        g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
        int ret = 0;

        if (!args[0]) {
                fail(0, "set: which state?");
                return 2;
        }
        for (char **a = args; *a; a++) {
                uint32_t want, now;
                int r, fd;

                if (state_from_string(*a, &want) < 0) {
                        fail(-EINVAL, "unknown state %s", *a);
                        ret = 2;
                        break;
                }
                r = h->ops->set_state(h, want, &fd);
                if (r < 0) {
                        ret = fail(r, "%s: set %s (device is now %s)", h->name, state_to_string(want), state_now(h));
                        break;
                }
                if (fd >= 0)
                        g_array_append_val(fds, fd);
                r = h->ops->get_state(h, &now);
                if (r < 0) {
                        ret = fail(r, "%s: get_state", h->name);
                        break;
                }
                /* The kernel's data fds must come O_CLOEXEC like ours. */
                printf("%s%s\n", state_to_string(now),
                       fd < 0 ? "" : (fcntl(fd, F_GETFD) & FD_CLOEXEC) ? " +fd" : " +fd(inherit)");
        }
        for (guint i = 0; i < fds->len; i++)
                close(g_array_index(fds, int, i));
        return ret;
}

static int cmd_datasize(DeviceHandle *h, char **args) {
        uint64_t n;
        int r;

        r = h->ops->data_size(h, &n);
        if (r < 0)
                return fail(r, "%s: data_size", h->name);
        printf("%" PRIu64 "\n", n);
        return 0;
}

static int cmd_reset(DeviceHandle *h, char **args) {
        int r;

        r = h->ops->reset(h);
        if (r < 0)
                return fail(r, "%s: reset", h->name);
        printf("%s\n", state_now(h));
        return 0;
}

/* Reads until EOF, or in PRE_COPY until the data runs out for now
 * (ENOMSG, or 0 from drivers such as mtty). */
static int read_stream(int fd, GByteArray *out, bool precopy, size_t *ret_n) {
        uint8_t buf[64 * 1024];
        size_t total = 0;

        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && precopy && errno == ENOMSG)
                        break;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                g_byte_array_append(out, buf, n);
                total += n;
        }
        *ret_n = total;
        return 0;
}

static void print_precopy_info(DeviceHandle *h, int fd, const char *what) {
        uint64_t initial, dirty;
        int r;

        r = h->ops->precopy_info(h, fd, &initial, &dirty);
        if (r < 0)
                printf("%s error %s\n", what, errstr(r));
        else
                printf("%s initial %" PRIu64 " dirty %" PRIu64 "\n", what, initial, dirty);
}

static int cmd_save(DeviceHandle *h, char **args) {
        g_autoptr(GByteArray) data = g_byte_array_new();
        g_autoptr(GError) error = NULL;
        uint32_t flags;
        size_t n;
        int r, fd = -1, fd2 = -1, ret = 1;

        if (!args[0]) {
                fail(0, "save: which file?");
                return 2;
        }
        r = h->ops->get_flags(h, &flags);
        if (r < 0)
                return fail(r, "%s: get_flags", h->name);

        if (flags & VFIO_MIGRATION_PRE_COPY) {
                r = h->ops->set_state(h, VFIO_STATE_PRE_COPY, &fd);
                if (r < 0 || fd < 0) {
                        fail(r, "%s: set pre-copy%s (device is now %s)", h->name, r < 0 ? "" : " gave no data fd",
                             state_now(h));
                        goto out;
                }
                print_precopy_info(h, fd, "precopy-info");
                r = read_stream(fd, data, true, &n);
                if (r < 0) {
                        fail(r, "%s: reading pre-copy data", h->name);
                        goto out;
                }
                printf("precopy-bytes %zu\n", n);
                print_precopy_info(h, fd, "precopy-info-after");
        }

        /* From PRE_COPY the session goes on with the same fd; from RUNNING
         * the kernel walks through STOP and opens one. */
        r = h->ops->set_state(h, VFIO_STATE_STOP_COPY, &fd2);
        if (r < 0) {
                fail(r, "%s: set stop-copy (device is now %s)", h->name, state_now(h));
                goto out;
        }
        if (fd2 >= 0) {
                if (fd >= 0)
                        printf("stop-copy opened a new data fd\n");
                if (fd >= 0)
                        close(fd);
                fd = fd2;
        }
        if (fd < 0) {
                fail(0, "%s: no data fd for stop-copy", h->name);
                goto out;
        }
        r = read_stream(fd, data, false, &n);
        if (r < 0) {
                fail(r, "%s: reading stop-copy data", h->name);
                goto out;
        }
        printf("stopcopy-bytes %zu\n", n);

        r = h->ops->set_state(h, VFIO_STATE_STOP, NULL);
        if (r < 0) {
                fail(r, "%s: set stop (device is now %s)", h->name, state_now(h));
                goto out;
        }
        if (!g_file_set_contents(args[0], (const char *) data->data, data->len, &error)) {
                fail(0, "%s", error->message);
                goto out;
        }
        printf("total %u\n", data->len);
        ret = 0;
out:
        if (fd >= 0)
                close(fd);
        return ret;
}

static int write_all(int fd, const uint8_t *p, size_t len, size_t chunk, size_t *ret_done) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = write(fd, p + done, MIN(chunk, len - done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        *ret_done = done;
                        return -errno;
                }
                done += n;
        }
        *ret_done = done;
        return 0;
}

static int cmd_load(DeviceHandle *h, char **args) {
        g_autoptr(GError) error = NULL;
        g_autofree char *data = NULL;
        uint32_t state;
        size_t len, done, limit;
        int r, fd = -1, ret = 1;

        if (!args[0]) {
                fail(0, "load: which file?");
                return 2;
        }
        if (!g_file_get_contents(args[0], &data, &len, &error))
                return fail(0, "%s", error->message);
        limit = arg_bytes >= 0 ? MIN((size_t) arg_bytes, len) : len;

        r = h->ops->get_state(h, &state);
        if (r < 0)
                return fail(r, "%s: get_state", h->name);
        if (state != VFIO_STATE_STOP) {
                r = h->ops->set_state(h, VFIO_STATE_STOP, NULL);
                if (r < 0)
                        return fail(r, "%s: set stop (device is now %s)", h->name, state_now(h));
        }
        r = h->ops->set_state(h, VFIO_STATE_RESUMING, &fd);
        if (r < 0 || fd < 0)
                return fail(r, "%s: set resuming%s (device is now %s)", h->name, r < 0 ? "" : " gave no data fd",
                            state_now(h));

        r = write_all(fd, (const uint8_t *) data, limit, arg_chunk > 0 ? (size_t) arg_chunk : limit, &done);
        if (r < 0 && arg_force)
                /* To see what the driver does with data it refused. */
                printf("write failed at offset %zu: %s\n", done, errstr(r));
        else if (r < 0) {
                fail(r, "%s: writing the stream at offset %zu (device is now %s)", h->name, done, state_now(h));
                goto out;
        } else
                printf("written %zu\n", done);

        r = h->ops->set_state(h, VFIO_STATE_STOP, NULL);
        if (r < 0) {
                fail(r, "%s: set stop after resuming (device is now %s)", h->name, state_now(h));
                goto out;
        }
        r = h->ops->set_state(h, VFIO_STATE_RUNNING, NULL);
        if (r < 0) {
                fail(r, "%s: set running (device is now %s)", h->name, state_now(h));
                goto out;
        }
        printf("%s\n", state_now(h));
        ret = 0;
out:
        close(fd);
        return ret;
}

static int cmd_regs(DeviceHandle *h, char **args) {
        struct vfio_region_info info = { .argsz = sizeof(info), .index = arg_region };
        uint64_t off, val = 0;
        bool set;
        uint8_t b;
        int fd;

        if (!args[0] || !args[1] || (strcmp(args[0], "get") != 0 && strcmp(args[0], "set") != 0)) {
                fail(0, "usage: regs DEV get|set OFFSET [VALUE]");
                return 2;
        }
        set = strcmp(args[0], "set") == 0;
        if (!parse_u64(args[1], UINT32_MAX, &off) || (set && !parse_u64(args[2], 255, &val))) {
                fail(0, "regs: bad offset or value");
                return 2;
        }

        fd = find_device_fd(arg_node);
        if (fd < 0)
                return fail(fd, "%s: cannot find the device fd", h->name);
        if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
                return fail(-errno, "%s: VFIO_DEVICE_GET_REGION_INFO(%d)", h->name, arg_region);
        if (off >= info.size)
                return fail(-ERANGE, "%s: offset %" PRIu64 " beyond region %d (%llu bytes)", h->name,
                            off, arg_region, (unsigned long long) info.size);
        if (!(info.flags & (set ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ)))
                return fail(-EPERM, "%s: region %d is not %s", h->name, arg_region, set ? "writable" : "readable");

        b = (uint8_t) val;
        if (set) {
                if (pwrite(fd, &b, 1, info.offset + off) != 1)
                        return fail(-errno, "%s: writing region %d offset %" PRIu64, h->name, arg_region, off);
                return 0;
        }
        if (pread(fd, &b, 1, info.offset + off) != 1)
                return fail(-errno, "%s: reading region %d offset %" PRIu64, h->name, arg_region, off);
        printf("0x%02x\n", b);
        return 0;
}

/* Descriptors open beyond stdio, as "fd TARGET cloexec|inherit" lines. */
static GPtrArray *list_fds(void) {
        g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
        GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
        const char *n;

        while (dir && (n = g_dir_read_name(dir))) {
                g_autofree char *link = g_strconcat("/proc/self/fd/", n, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);
                int fd = atoi(n), fl;

                if (fd <= 2 || !target || g_str_has_prefix(target, "/proc/"))
                        continue;
                fl = fcntl(fd, F_GETFD);
                if (fl < 0)     /* the directory's own fd, closed by now */
                        continue;
                g_ptr_array_add(out, g_strdup_printf("%d %s %s", fd, target, fl & FD_CLOEXEC ? "cloexec" : "inherit"));
        }
        return out;
}

static int cmd_fds(const char *dev) {
        g_autoptr(GPtrArray) before = list_fds(), during = NULL, after = NULL;
        DeviceHandle *h = NULL;
        int r;

        r = open_device(dev, &h);
        if (r < 0)
                return 1;
        during = list_fds();
        for (guint i = 0; i < during->len; i++)
                printf("%s\n", (char *) during->pdata[i]);
        device_handle_close(h);
        after = list_fds();
        printf("left after close: %d\n", (int) after->len - (int) before->len);
        return 0;
}

static volatile sig_atomic_t stop_holding = 0;

static void on_term(int sig) {
        stop_holding = 1;
}

static int cmd_hold(DeviceHandle *h, char **args) {
        struct sigaction sa = { .sa_handler = on_term };
        guint64 secs;

        if (!args[0] || !g_ascii_string_to_unsigned(args[0], 10, 0, 3600, &secs, NULL)) {
                fail(0, "usage: hold DEV SECONDS");
                return 2;
        }
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        printf("holding %s\n", h->name);
        fflush(stdout);
        for (guint64 i = 0; i < secs * 10 && !stop_holding; i++)
                g_usleep(100 * 1000);
        return 0;
}

/* ---- the raw legacy uAPI, for hold-group and iommu-info */

typedef struct GroupFds {
        int container;
        int group;
        int device;
        char *device_name;
} GroupFds;

static void group_fds_close(GroupFds *g) {
        if (g->device >= 0)
                close(g->device);
        if (g->group >= 0)
                close(g->group);
        if (g->container >= 0)
                close(g->container);
        g_free(g->device_name);
        *g = (GroupFds) { -1, -1, -1, NULL };
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(GroupFds, group_fds_close);

/* The one device in /sys/kernel/iommu_groups/GROUP/devices. */
static int group_device(const char *group, char **ret) {
        g_autofree char *path = g_strconcat("/sys/kernel/iommu_groups/", group, "/devices", NULL);
        g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
        g_autofree char *found = NULL;
        const char *n;

        if (!dir)
                return fail(-ENOENT, "IOMMU group %s: cannot list %s", group, path);
        while ((n = g_dir_read_name(dir))) {
                if (found)
                        return fail(0, "IOMMU group %s has more than one device (%s, %s)", group, found, n);
                found = g_strdup(n);
        }
        if (!found)
                return fail(0, "IOMMU group %s has no device", group);
        *ret = g_steal_pointer(&found);
        return 0;
}

/* Container and group, the group in the container with a Type1v2 IOMMU;
 * the device fd too if with_device. 0, or 1 after saying what failed. */
static int group_open(const char *group, bool with_device, GroupFds *g) {
        g_autofree char *path = NULL;
        struct vfio_group_status status = { .argsz = sizeof(status) };
        uint64_t nr;
        int r;

        *g = (GroupFds) { -1, -1, -1, NULL };
        if (!parse_u64(group, INT32_MAX, &nr) || (group[0] == '0' && group[1]))
                return fail(0, "%s is not an IOMMU group number", group);
        path = g_strconcat("/dev/vfio/", group, NULL);

        g->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
        if (g->container < 0)
                return fail(-errno, "opening /dev/vfio/vfio");
        r = ioctl(g->container, VFIO_GET_API_VERSION);
        if (r != VFIO_API_VERSION)
                return fail(r < 0 ? -errno : 0, "VFIO_GET_API_VERSION says %d", r);
        if (ioctl(g->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
                return fail(0, "the container has no Type1v2 IOMMU");

        g->group = open(path, O_RDWR | O_CLOEXEC);
        if (g->group < 0)
                return fail(-errno, "opening %s", path);
        if (ioctl(g->group, VFIO_GROUP_GET_STATUS, &status) < 0)
                return fail(-errno, "VFIO_GROUP_GET_STATUS on %s", path);
        if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
                return fail(0, "IOMMU group %s is not viable", group);
        if (ioctl(g->group, VFIO_GROUP_SET_CONTAINER, &g->container) < 0)
                return fail(-errno, "VFIO_GROUP_SET_CONTAINER for %s", path);
        if (ioctl(g->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
                return fail(-errno, "VFIO_SET_IOMMU(TYPE1v2) for %s", path);
        if (!with_device)
                return 0;

        if (group_device(group, &g->device_name) != 0)
                return 1;
        g->device = ioctl(g->group, VFIO_GROUP_GET_DEVICE_FD, g->device_name);
        if (g->device < 0)
                return fail(-errno, "VFIO_GROUP_GET_DEVICE_FD(%s) in group %s", g->device_name, group);
        return 0;
}

/* VFIO_IOMMU_GET_INFO with its capability chain, in a buffer as large as
 * the kernel asks for. */
static struct vfio_iommu_type1_info *iommu_info(int container) {
        g_autofree struct vfio_iommu_type1_info *info = g_malloc0(sizeof(*info));

        info->argsz = sizeof(*info);
        if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0) {
                fail(-errno, "VFIO_IOMMU_GET_INFO");
                return NULL;
        }
        if (info->argsz > sizeof(*info)) {
                uint32_t size = info->argsz;

                g_free(info);
                info = g_malloc0(size);
                info->argsz = size;
                if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0) {
                        fail(-errno, "VFIO_IOMMU_GET_INFO with %u bytes", size);
                        return NULL;
                }
        }
        return g_steal_pointer(&info);
}

/* The capability with this id, or NULL; bounds-checked against argsz. */
static const struct vfio_info_cap_header *iommu_cap(const struct vfio_iommu_type1_info *info, uint16_t id,
                                                    size_t min_size) {
        uint32_t off;
        unsigned hops = 0;

        if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || info->argsz < sizeof(*info))
                return NULL;
        for (off = info->cap_offset; off && hops < 64; hops++) {
                const struct vfio_info_cap_header *h;

                if (off < sizeof(*info) || off > info->argsz || info->argsz - off < sizeof(*h))
                        return NULL;
                h = (const void *) ((const uint8_t *) info + off);
                if (h->id == id)
                        return info->argsz - off >= min_size ? h : NULL;
                off = h->next;
        }
        return NULL;
}

static int cmd_iommu_info(const char *group) {
        g_auto(GroupFds) g = { -1, -1, -1, NULL };
        g_autofree struct vfio_iommu_type1_info *info = NULL;
        g_autoptr(GString) ranges = g_string_new(NULL);
        const struct vfio_iommu_type1_info_cap_iova_range *iova;
        const struct vfio_iommu_type1_info_cap_migration *mig;
        const struct vfio_iommu_type1_info_dma_avail *avail;
        uint64_t top = 0;
        bool have_top = false;

        if (group_open(group, false, &g) != 0)
                return 1;
        info = iommu_info(g.container);
        if (!info)
                return 1;

        iova = (const void *) iommu_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, sizeof(*iova));
        if (iova) {
                size_t room = info->argsz - ((const uint8_t *) iova - (const uint8_t *) info) - sizeof(*iova);

                if ((size_t) iova->nr_iovas * sizeof(iova->iova_ranges[0]) > room)
                        return fail(0, "IOVA range capability claims %u ranges, beyond the %u bytes returned",
                                    iova->nr_iovas, info->argsz);
                for (uint32_t i = 0; i < iova->nr_iovas; i++) {
                        uint64_t start = iova->iova_ranges[i].start, end = iova->iova_ranges[i].end;

                        g_string_append_printf(ranges, "%s0x%" PRIx64 "-0x%" PRIx64, i ? "," : "", start, end);
                        if (!have_top || end > top)
                                top = end, have_top = true;
                }
        }
        /* Bits needed for the highest IOVA: 2^48 - 1 needs 48. */
        if (have_top)
                printf("width=%d", top ? 64 - __builtin_clzll(top) : 0);
        else
                printf("width=unknown");
        printf(" ranges=%s pgsizes=0x%" PRIx64 "\n", ranges->len ? ranges->str : "none",
               (uint64_t) info->iova_pgsizes);

        mig = (const void *) iommu_cap(info, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, sizeof(*mig));
        if (mig)
                printf("migration-cap pgsizes=0x%" PRIx64 " max-bitmap=%" PRIu64 "\n",
                       (uint64_t) mig->pgsize_bitmap, (uint64_t) mig->max_dirty_bitmap_size);
        avail = (const void *) iommu_cap(info, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, sizeof(*avail));
        if (avail)
                printf("dma-avail %u\n", avail->avail);
        return 0;
}

static int cmd_hold_group(const char *group, char **args) {
        struct sigaction sa = { .sa_handler = on_term };
        g_auto(GroupFds) g = { -1, -1, -1, NULL };
        struct vfio_group_status status = { .argsz = sizeof(status) };
        struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
        struct vfio_iommu_type1_info iinfo = { .argsz = sizeof(iinfo) };
        const unsigned want = VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET;
        guint64 secs;

        if (!args[0] || !g_ascii_string_to_unsigned(args[0], 10, 0, 3600, &secs, NULL)) {
                fail(0, "usage: hold-group GROUP SECONDS");
                return 2;
        }
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        if (group_open(group, true, &g) != 0)
                return 1;
        printf("holding group %s (%s)\n", group, g.device_name);
        fflush(stdout);
        for (guint64 i = 0; i < secs * 10 && !stop_holding; i++)
                g_usleep(100 * 1000);

        /* Whatever happened meanwhile (a daemon enumerating, say), the fds
         * must still be ours and work. */
        if (ioctl(g.group, VFIO_GROUP_GET_STATUS, &status) < 0)
                return fail(-errno, "VFIO_GROUP_GET_STATUS on group %s after holding it", group);
        if ((status.flags & want) != want)
                return fail(0, "group %s flags 0x%x after holding it, expected viable and container set",
                            group, status.flags);
        if (ioctl(g.device, VFIO_DEVICE_GET_INFO, &dinfo) < 0)
                return fail(-errno, "VFIO_DEVICE_GET_INFO on %s after holding it", g.device_name);
        if (ioctl(g.container, VFIO_IOMMU_GET_INFO, &iinfo) < 0)
                return fail(-errno, "VFIO_IOMMU_GET_INFO after holding group %s", group);
        printf("fds ok (%u regions, %u irqs)\n", dinfo.num_regions, dinfo.num_irqs);
        return 0;
}

static const struct {
        const char *name;
        int (*run)(DeviceHandle *h, char **args);
} commands[] = {
        { "flags", cmd_flags },
        { "state", cmd_state },
        { "set", cmd_set },
        { "datasize", cmd_datasize },
        { "save", cmd_save },
        { "load", cmd_load },
        { "reset", cmd_reset },
        { "regs", cmd_regs },
        { "hold", cmd_hold },
};

int main(int argc, char **argv) {
        static const GOptionEntry options[] = {
                { "node", 0, 0, G_OPTION_ARG_FILENAME, &arg_node, "device node to open", "PATH" },
                { "chunk", 0, 0, G_OPTION_ARG_INT64, &arg_chunk, "load: bytes per write", "N" },
                { "bytes", 0, 0, G_OPTION_ARG_INT64, &arg_bytes, "load: write only the first N bytes", "N" },
                { "region", 0, 0, G_OPTION_ARG_INT, &arg_region, "regs: region index (default 0, BAR0)", "N" },
                { "force", 0, 0, G_OPTION_ARG_NONE, &arg_force, "load: go on to STOP after a failed write", NULL },
                { "debug", 0, 0, G_OPTION_ARG_NONE, &arg_debug, "debug logging", NULL },
                {},
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND DEVICE [ARGS...]");
        g_autoptr(GError) error = NULL;
        DeviceHandle *h = NULL;
        int r;

        g_option_context_add_main_entries(ctx, options, NULL);
        g_option_context_set_summary(ctx, "Commands: flags, state, set, datasize, save, load, reset, regs, fds, hold, "
                                          "hold-group, iommu-info");
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                fprintf(stderr, "vfio-tool: %s\n", error->message);
                return 2;
        }
        if (argc < 3) {
                fprintf(stderr, "usage: vfio-tool [OPTIONS] COMMAND DEVICE [ARGS...]\n");
                return 2;
        }
        log_open();
        if (arg_debug)
                log_set_max_level(LOG_DEBUG);

        if (strcmp(argv[1], "fds") == 0)
                return cmd_fds(argv[2]);
        if (strcmp(argv[1], "hold-group") == 0)
                return cmd_hold_group(argv[2], argv + 3);
        if (strcmp(argv[1], "iommu-info") == 0)
                return cmd_iommu_info(argv[2]);

        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                if (strcmp(argv[1], commands[i].name) != 0)
                        continue;
                if (open_device(argv[2], &h) < 0)
                        return 1;
                r = commands[i].run(h, argv + 3);
                device_handle_close(h);
                return r;
        }
        fprintf(stderr, "vfio-tool: unknown command %s\n", argv[1]);
        return 2;
}
