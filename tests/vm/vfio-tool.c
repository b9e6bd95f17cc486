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
        char *group = NULL;

        if (!name) {
                fail(-EINVAL, "%s is not a device name", arg);
                return -EINVAL;
        }

        d = device_new(name, name_is_uuid(name) ? DEVICE_KIND_MDEV : DEVICE_KIND_PCI);
        g_free(d->sysfs_path);
        d->sysfs_path = g_strconcat(d->kind == DEVICE_KIND_MDEV ? "/sys/bus/mdev/devices/" : "/sys/bus/pci/devices/",
                                    name, NULL);
        if (access(d->sysfs_path, F_OK) < 0) {
                fail(-errno, "%s", d->sysfs_path);
                return -ENODEV;
        }
        if (sysfs_link_basename(d->sysfs_path, "iommu_group", &group) >= 0)
                g_free(d->iommu_group), d->iommu_group = group;

        g_free(d->vfio_dev);
        d->vfio_dev = NULL;
        vfio_dir = g_build_filename(d->sysfs_path, "vfio-dev", NULL);
        dir = g_dir_open(vfio_dir, 0, NULL);
        while (dir && !d->vfio_dev && (n = g_dir_read_name(dir))) {
                g_autofree char *sub = g_build_filename(vfio_dir, n, NULL);

                if (g_str_has_prefix(n, "vfio") && sysfs_exists(sub, "dev"))
                        d->vfio_dev = g_strconcat("/dev/vfio/devices/", n, NULL);
        }
        if (arg_node)
                free_and_strdup(&d->vfio_dev, arg_node);
        else if (!d->vfio_dev)
                d->vfio_dev = g_strconcat("/dev/vfio/", d->iommu_group, NULL);

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
        g_option_context_set_summary(ctx, "Commands: flags, state, set, datasize, save, load, reset, regs, fds, hold");
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
