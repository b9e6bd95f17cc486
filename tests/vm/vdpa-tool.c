/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vdpa-tool: real vDPA devices for the VM tier, and what the daemon's
 * netlink module (daemon/backend/vdpa-netlink.c) makes of them.
 *
 *   vdpa-tool [--replay DIR] COMMAND [ARGS...]
 *
 *   vduse NAME net|blk FEATURES_HEX [mtu=N] [vqp=N] [bs=N] [queues=N]
 *                   creates a VDUSE device (/dev/vduse/control) offering
 *                   FEATURES_HEX with a virtio config to match, prints
 *                   "ready" once it can be added with `vdpa dev add name
 *                   NAME mgmtdev vduse`, then answers the kernel's requests
 *                   (every one OK) until SIGTERM or SIGINT, and destroys
 *                   it (delete the vDPA device first: the kernel refuses
 *                   while it exists)
 *   new NAME MGMTDEV [FEATURES_HEX]
 *                   VDPA_CMD_DEV_NEW: a device of management device
 *                   MGMTDEV (e.g. vdpasim_net) offering FEATURES_HEX, or
 *                   what MGMTDEV supports when not given (iproute2 6.1's
 *                   `vdpa dev add` cannot set features)
 *   del NAME        VDPA_CMD_DEV_DEL
 *   show NAME       the device as the module parsed it, one key=value a
 *                   line: name, mgmtdev, device_id, class, vendor_id,
 *                   max_vqs, max_vq_size, features, and negotiated, mtu,
 *                   max_vq_pairs, blk_size, num_queues when stated
 *   mgmt            every management device: name, classes,
 *                   supported_features, max_vqs; a blank line between
 *   devices         every device's name, one a line
 *   record DIR      the kernel's raw replies in the replay format:
 *                   mgmtdev.hex, devices.hex, and dev-NAME.hex and
 *                   config-NAME.hex for each device
 *
 * --replay DIR: answers from a recording instead of the kernel.
 * Exit status: 0 success, 1 failure (message on stderr naming errno, e.g.
 * "[ENODEV]"), 2 usage. */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <linux/vduse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "backend/vdpa-netlink.h"

static char *arg_replay = NULL;

/* "No such device [ENODEV]": scenarios match the errno name. */
static int fail(const char *what, int r) {
        const char *name = strerrorname_np(abs(r));

        fprintf(stderr, "vdpa-tool: %s: %s [%s]\n", what, g_strerror(abs(r)), name ? name : "?");
        return 1;
}

static int open_netlink(VdpaNetlink **ret) {
        int r = vdpa_netlink_open(arg_replay, ret);

        return r < 0 ? fail("opening the vdpa netlink family", r) : 0;
}

/* ---- show, mgmt, devices ---- */

static const char *class_name(uint32_t device_id) {
        switch (device_id) {
        case VIRTIO_ID_NET:
                return "net";
        case VIRTIO_ID_BLOCK:
                return "blk";
        default:
                return "other";
        }
}

static void print_device(const VdpaDeviceInfo *d) {
        printf("name=%s\nmgmtdev=%s\ndevice_id=%" PRIu32 "\nclass=%s\nvendor_id=0x%" PRIx32 "\n", d->name,
               d->mgmtdev, d->device_id, class_name(d->device_id), d->vendor_id);
        printf("max_vqs=%" PRIu32 "\nmax_vq_size=%u\n", d->max_vqs, d->max_vq_size);
        if (d->has_features)
                printf("features=0x%" PRIx64 "\n", d->features);
        if (d->has_negotiated)
                printf("negotiated=0x%" PRIx64 "\n", d->negotiated);
        if (d->has_mtu)
                printf("mtu=%u\n", d->mtu);
        if (d->has_max_vq_pairs)
                printf("max_vq_pairs=%u\n", d->max_vq_pairs);
        if (d->has_blk_size)
                printf("blk_size=%" PRIu32 "\n", d->blk_size);
        if (d->has_num_queues)
                printf("num_queues=%u\n", d->num_queues);
}

static int cmd_show(const char *name) {
        g_autoptr(VdpaNetlink) nl = NULL;
        g_auto(VdpaDeviceInfo) d = {};
        int r;

        if (open_netlink(&nl))
                return 1;
        r = vdpa_netlink_get_device(nl, name, &d);
        if (r < 0)
                return fail(name, r);
        print_device(&d);
        return 0;
}

static int cmd_mgmt(void) {
        g_autoptr(VdpaNetlink) nl = NULL;
        g_autoptr(GArray) list = NULL;
        int r;

        if (open_netlink(&nl))
                return 1;
        r = vdpa_netlink_list_mgmt(nl, &list);
        if (r < 0)
                return fail("listing management devices", r);
        for (guint i = 0; i < list->len; i++) {
                const VdpaMgmtInfo *m = &g_array_index(list, VdpaMgmtInfo, i);

                printf("%sname=%s\nclasses=0x%" PRIx64 "\n", i ? "\n" : "", m->name, m->classes);
                if (m->has_supported_features)
                        printf("supported_features=0x%" PRIx64 "\n", m->supported_features);
                printf("max_vqs=%" PRIu32 "\n", m->max_vqs);
        }
        return 0;
}

static int cmd_devices(void) {
        g_autoptr(VdpaNetlink) nl = NULL;
        g_autoptr(GArray) list = NULL;
        int r;

        if (open_netlink(&nl))
                return 1;
        r = vdpa_netlink_list_devices(nl, &list);
        if (r < 0)
                return fail("listing devices", r);
        for (guint i = 0; i < list->len; i++)
                printf("%s\n", g_array_index(list, VdpaDeviceInfo, i).name);
        return 0;
}

/* ---- new, del ---- */

static int cmd_new(const char *name, const char *mgmtdev, const char *features) {
        g_autoptr(VdpaNetlink) nl = NULL;
        guint64 v = 0;
        int r;

        if (features && !g_ascii_string_to_unsigned(g_str_has_prefix(features, "0x") ? features + 2 : features, 16,
                                                     0, UINT64_MAX, &v, NULL))
                return 2;
        if (!vdpa_device_name_is_valid(name))
                return 2;
        if (open_netlink(&nl))
                return 1;
        r = vdpa_netlink_new_device(nl, name, mgmtdev, features != NULL, v);
        return r < 0 ? fail(name, r) : 0;
}

static int cmd_del(const char *name) {
        g_autoptr(VdpaNetlink) nl = NULL;
        int r;

        if (open_netlink(&nl))
                return 1;
        r = vdpa_netlink_del_device(nl, name);
        return r < 0 ? fail(name, r) : 0;
}

/* ---- record ---- */

/* 32 bytes a line, a netlink message's worth of context in the comment. */
static char *hex_encode(GBytes *bytes, const char *comment) {
        GString *s = g_string_new(NULL);
        size_t len;
        const uint8_t *p = g_bytes_get_data(bytes, &len);

        g_string_append_printf(s, "# %s\n", comment);
        for (size_t i = 0; i < len; i++)
                g_string_append_printf(s, "%02x%s", p[i], (i % 32 == 31 || i + 1 == len) ? "\n" : "");
        return g_string_free(s, FALSE);
}

static int record_one(VdpaNetlink *nl, const char *dir, VdpaRequest req, const char *name, GBytes **ret) {
        g_autofree char *file = vdpa_request_file_name(req, name);
        g_autofree char *path = g_build_filename(dir, file, NULL);
        g_autofree char *comment = g_strdup_printf("%s: the kernel's reply, recorded by vdpa-tool record", file);
        g_autofree char *text = NULL;
        g_autoptr(GBytes) bytes = NULL;
        g_autoptr(GError) error = NULL;
        int r;

        r = vdpa_netlink_request(nl, req, name, &bytes);
        if (r < 0)
                return fail(file, r);
        text = hex_encode(bytes, comment);
        if (!g_file_set_contents(path, text, -1, &error)) {
                fprintf(stderr, "vdpa-tool: %s\n", error->message);
                return 1;
        }
        if (ret)
                *ret = g_steal_pointer(&bytes);
        return 0;
}

static int cmd_record(const char *dir) {
        g_autoptr(VdpaNetlink) nl = NULL;
        g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(VdpaDeviceInfo));
        g_autoptr(GBytes) dump = NULL;
        const void *buf;
        size_t len;
        int r;

        g_array_set_clear_func(list, (GDestroyNotify) vdpa_device_info_clear);
        if (g_mkdir_with_parents(dir, 0755) < 0)
                return fail(dir, -errno);
        if (open_netlink(&nl))
                return 1;
        if (record_one(nl, dir, VDPA_REQUEST_MGMT_DUMP, NULL, NULL) ||
            record_one(nl, dir, VDPA_REQUEST_DEV_DUMP, NULL, &dump))
                return 1;
        buf = g_bytes_get_data(dump, &len);
        r = vdpa_netlink_parse_devices(buf, len, list);
        if (r < 0)
                return fail("parsing the device dump", r);
        for (guint i = 0; i < list->len; i++) {
                const char *name = g_array_index(list, VdpaDeviceInfo, i).name;

                if (record_one(nl, dir, VDPA_REQUEST_DEV, name, NULL) ||
                    record_one(nl, dir, VDPA_REQUEST_CONFIG, name, NULL))
                        return 1;
                printf("recorded %s\n", name);
        }
        return 0;
}

/* ---- vduse ---- */

typedef struct VduseOptions {
        const char *name;
        uint32_t device_id;
        uint64_t features;
        uint16_t mtu, vq_pairs, queues;
        uint32_t blk_size;
} VduseOptions;

static bool parse_u64(const char *s, unsigned base, uint64_t max, uint64_t *ret) {
        guint64 v;

        if (!g_ascii_string_to_unsigned(s, base, 0, max, &v, NULL))
                return false;
        *ret = v;
        return true;
}

/* key=N options; each only where the class has the field. */
static bool parse_option(const char *arg, VduseOptions *o) {
        g_auto(GStrv) kv = g_strsplit(arg, "=", 2);
        uint64_t v;

        if (!kv[0] || !kv[1] || !parse_u64(kv[1], 10, UINT16_MAX, &v) || v == 0)
                return false;
        if (g_str_equal(kv[0], "mtu") && o->device_id == VIRTIO_ID_NET)
                o->mtu = (uint16_t) v;
        else if (g_str_equal(kv[0], "vqp") && o->device_id == VIRTIO_ID_NET)
                o->vq_pairs = (uint16_t) v;
        else if (g_str_equal(kv[0], "bs") && o->device_id == VIRTIO_ID_BLOCK)
                o->blk_size = (uint32_t) v;
        else if (g_str_equal(kv[0], "queues") && o->device_id == VIRTIO_ID_BLOCK)
                o->queues = (uint16_t) v;
        else
                return false;
        return true;
}

/* The virtio config space the device shows (little endian, as virtio 1.0
 * has it); vq_num: how many virtqueues the class needs for it. */
static void *net_config(const VduseOptions *o, uint32_t *size, uint32_t *vq_num) {
        struct virtio_net_config *c = g_new0(struct virtio_net_config, 1);
        static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x7d, 0x00, 0x01 };

        memcpy(c->mac, mac, sizeof(mac));
        c->mac[5] = (uint8_t) g_str_hash(o->name);
        c->status = htole16(VIRTIO_NET_S_LINK_UP);
        c->max_virtqueue_pairs = htole16(o->vq_pairs);
        c->mtu = htole16(o->mtu);
        *size = sizeof(*c);
        /* one rx and one tx queue a pair; no control queue (VDUSE refuses
         * CTRL_VQ) */
        *vq_num = 2u * o->vq_pairs;
        return c;
}

static void *blk_config(const VduseOptions *o, uint32_t *size, uint32_t *vq_num) {
        struct virtio_blk_config *c = g_new0(struct virtio_blk_config, 1);

        c->capacity = htole64(0);
        c->blk_size = htole32(o->blk_size);
        c->num_queues = htole16(o->queues);
        *size = sizeof(*c);
        *vq_num = o->queues;
        return c;
}

static int create_device(int control, const VduseOptions *o, uint32_t *ret_vq_num) {
        g_autofree void *config = NULL;
        g_autofree struct vduse_dev_config *dc = NULL;
        uint32_t size;

        config = o->device_id == VIRTIO_ID_NET ? net_config(o, &size, ret_vq_num) : blk_config(o, &size, ret_vq_num);
        dc = g_malloc0(sizeof(*dc) + size);
        g_strlcpy(dc->name, o->name, sizeof(dc->name));
        dc->vendor_id = 0x1af4;
        dc->device_id = o->device_id;
        dc->features = o->features;
        dc->vq_num = *ret_vq_num;
        dc->vq_align = 4096;
        dc->config_size = size;
        memcpy(dc->config, config, size);
        if (ioctl(control, VDUSE_CREATE_DEV, dc) < 0)
                return -errno;
        return 0;
}

/* devtmpfs makes /dev/vduse/NAME a moment after the ioctl returns. */
static int open_device_node(const char *name) {
        g_autofree char *path = g_strdup_printf("/dev/vduse/%s", name);

        for (int i = 0; i < 100; i++) {
                int fd = open(path, O_RDWR | O_CLOEXEC);

                if (fd >= 0 || errno != ENOENT)
                        return fd >= 0 ? fd : -errno;
                g_usleep(20000);
        }
        return -ENOENT;
}

/* The device is ready for `vdpa dev add` once every queue has a size. */
static int setup_queues(int fd, uint32_t vq_num) {
        for (uint32_t i = 0; i < vq_num; i++) {
                struct vduse_vq_config vq = { .index = i, .max_size = 256 };

                if (ioctl(fd, VDUSE_VQ_SETUP, &vq) < 0)
                        return -errno;
        }
        return 0;
}

/* Every request gets OK; a queue's state is its start (all zero): the
 * device never moves data, it only has to let a driver negotiate without
 * the kernel's 30 s wait for an answer. */
static int answer_request(int fd) {
        struct vduse_dev_request req;
        struct vduse_dev_response resp = {};
        ssize_t n;

        n = read(fd, &req, sizeof(req));
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n != sizeof(req))
                return -EBADMSG;
        resp.request_id = req.request_id;
        resp.result = VDUSE_REQ_RESULT_OK;
        if (req.type == VDUSE_GET_VQ_STATE)
                resp.vq_state.index = req.vq_state.index;
        if (write(fd, &resp, sizeof(resp)) != sizeof(resp))
                return -errno;
        return 0;
}

static int serve(int fd, int sigfd) {
        struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };

        for (;;) {
                int r;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[1].revents)
                        return 0;
                if (p[0].revents & POLLIN) {
                        r = answer_request(fd);
                        if (r < 0)
                                return r;
                } else if (p[0].revents) {
                        return -EIO;
                }
        }
}

static int blocked_signals_fd(void) {
        sigset_t mask;
        int fd;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        fd = signalfd(-1, &mask, SFD_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int destroy_device(int control, const char *name) {
        char buf[VDUSE_NAME_MAX] = {};

        g_strlcpy(buf, name, sizeof(buf));
        return ioctl(control, VDUSE_DESTROY_DEV, buf) < 0 ? -errno : 0;
}

static int run_device(int control, const VduseOptions *o) {
        uint32_t vq_num;
        int fd, sigfd, r;

        sigfd = blocked_signals_fd();
        if (sigfd < 0)
                return fail("signalfd", sigfd);
        r = create_device(control, o, &vq_num);
        if (r < 0)
                return fail("VDUSE_CREATE_DEV", r);
        fd = open_device_node(o->name);
        if (fd < 0) {
                (void) destroy_device(control, o->name);
                return fail("opening the VDUSE device", fd);
        }
        r = setup_queues(fd, vq_num);
        if (r >= 0) {
                printf("ready\n");
                fflush(stdout);
                r = serve(fd, sigfd);
        }
        close(fd);
        close(sigfd);
        if (r < 0) {
                (void) destroy_device(control, o->name);
                return fail("serving the VDUSE device", r);
        }
        /* the device fd must be closed first, or the kernel says EBUSY */
        r = destroy_device(control, o->name);
        if (r < 0)
                return fail("VDUSE_DESTROY_DEV", r);
        printf("destroyed\n");
        return 0;
}

static int cmd_vduse(int argc, char **argv) {
        VduseOptions o = { .name = argv[0], .vq_pairs = 1, .queues = 1, .blk_size = 512 };
        int control, r;

        if (g_str_equal(argv[1], "net"))
                o.device_id = VIRTIO_ID_NET;
        else if (g_str_equal(argv[1], "blk"))
                o.device_id = VIRTIO_ID_BLOCK;
        else
                return 2;
        if (!parse_u64(g_str_has_prefix(argv[2], "0x") ? argv[2] + 2 : argv[2], 16, UINT64_MAX, &o.features) ||
            !vdpa_device_name_is_valid(o.name))
                return 2;
        for (int i = 3; i < argc; i++)
                if (!parse_option(argv[i], &o))
                        return 2;
        control = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);
        if (control < 0)
                return fail("/dev/vduse/control", -errno);
        r = run_device(control, &o);
        close(control);
        return r;
}

int main(int argc, char **argv) {
        GOptionEntry entries[] = {
                { "replay", 0, 0, G_OPTION_ARG_FILENAME, &arg_replay, "Answer from a recording", "DIR" },
                {},
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [ARGS...]");
        g_autoptr(GError) error = NULL;
        const char *cmd;
        int r = 2;

        g_option_context_add_main_entries(ctx, entries, NULL);
        if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
                fprintf(stderr, "vdpa-tool: %s\n", error->message);
                return 2;
        }
        cmd = argc > 1 ? argv[1] : "";
        if (g_str_equal(cmd, "vduse") && argc >= 5)
                r = cmd_vduse(argc - 2, argv + 2);
        else if (g_str_equal(cmd, "new") && (argc == 4 || argc == 5))
                r = cmd_new(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
        else if (g_str_equal(cmd, "del") && argc == 3)
                r = cmd_del(argv[2]);
        else if (g_str_equal(cmd, "show") && argc == 3)
                r = cmd_show(argv[2]);
        else if (g_str_equal(cmd, "mgmt") && argc == 2)
                r = cmd_mgmt();
        else if (g_str_equal(cmd, "devices") && argc == 2)
                r = cmd_devices();
        else if (g_str_equal(cmd, "record") && argc == 3)
                r = cmd_record(argv[2]);
        if (r == 2)
                fprintf(stderr, "usage: vdpa-tool [--replay DIR] vduse|new|del|show|mgmt|devices|record ... (see the source)\n");
        g_free(arg_replay);
        return r;
}
