/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon/backend/vdpa-netlink.c against replies the 6.12 kernel gave in
 * scenario-vdpa (data/vdpa/, see its README.md) and scenario-vdpasim
 * (data/vdpasim/), and against those replies cut short or corrupted. */
#include <errno.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "backend/vdpa-netlink.h"
#include "backend/vdpa-uapi.h"
#include "unit-test.h"

#define DATA_DIR UNIT_DATA_DIR "/vdpa"

/* virtio feature bits the scenario chose */
#define NET_F_MTU (UINT64_C(1) << 3)
#define NET_F_MRG_RXBUF (UINT64_C(1) << 15)
#define FEAT_A UINT64_C(0x300000020)
#define FEAT_B UINT64_C(0x300018028)
#define FEAT_C UINT64_C(0x300001040)

static VdpaNetlink *open_recording(void) {
        VdpaNetlink *nl = NULL;

        g_assert_cmpint(vdpa_netlink_open(DATA_DIR, &nl), ==, 0);
        return nl;
}

/* The recorded reply's bytes, through replay itself. */
static GBytes *recorded(VdpaRequest req, const char *name) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        GBytes *b = NULL;

        g_assert_cmpint(vdpa_netlink_request(nl, req, name, &b), ==, 0);
        g_assert_cmpuint(g_bytes_get_size(b), >, NLMSG_HDRLEN);
        return b;
}

static void test_recorded_mgmt(void) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        g_autoptr(GArray) list = NULL;
        const VdpaMgmtInfo *m;

        g_assert_cmpint(vdpa_netlink_list_mgmt(nl, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, 1);
        m = &g_array_index(list, VdpaMgmtInfo, 0);
        /* no bus: the name alone */
        g_assert_cmpstr(m->name, ==, "vduse");
        g_assert_cmphex(m->classes, ==, (1 << 1) | (1 << 2));
        /* vduse provisions nothing itself: it states 0 */
        g_assert_true(m->has_supported_features);
        g_assert_cmphex(m->supported_features, ==, 0);
        g_assert_cmpuint(m->max_vqs, ==, 0);
}

static void test_recorded_devices(void) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        g_autoptr(GArray) list = NULL;

        g_assert_cmpint(vdpa_netlink_list_devices(nl, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, 3);
        g_assert_cmpstr(g_array_index(list, VdpaDeviceInfo, 0).name, ==, "vA");
        g_assert_cmpstr(g_array_index(list, VdpaDeviceInfo, 1).name, ==, "vB");
        g_assert_cmpstr(g_array_index(list, VdpaDeviceInfo, 2).name, ==, "vC");
        g_assert_cmpuint(g_array_index(list, VdpaDeviceInfo, 2).device_id, ==, 2);
        /* a dump has no config */
        g_assert_false(g_array_index(list, VdpaDeviceInfo, 0).has_features);
}

static void test_recorded_net(void) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        g_auto(VdpaDeviceInfo) a = {}, b = {};

        g_assert_cmpint(vdpa_netlink_get_device(nl, "vA", &a), ==, 0);
        g_assert_cmpstr(a.name, ==, "vA");
        g_assert_cmpstr(a.mgmtdev, ==, "vduse");
        g_assert_cmpuint(a.device_id, ==, 1);
        g_assert_cmphex(a.vendor_id, ==, 0x1af4);
        g_assert_cmpuint(a.max_vqs, ==, 2);
        g_assert_cmpuint(a.max_vq_size, ==, 256);
        g_assert_true(a.has_features);
        g_assert_cmphex(a.features, ==, FEAT_A);
        g_assert_true(a.has_negotiated);
        g_assert_cmphex(a.negotiated, ==, FEAT_A);
        g_assert_false(a.has_mtu);
        g_assert_false(a.has_max_vq_pairs);
        g_assert_false(a.has_blk_size);

        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &b), ==, 0);
        g_assert_cmphex(b.features, ==, FEAT_B);
        g_assert_cmphex(b.features & FEAT_A, ==, FEAT_A);
        g_assert_true(b.has_negotiated);
        g_assert_cmphex(b.negotiated & (NET_F_MTU | NET_F_MRG_RXBUF), ==, NET_F_MTU | NET_F_MRG_RXBUF);
        g_assert_true(b.has_mtu);
        g_assert_cmpuint(b.mtu, ==, 9000);
}

static void test_recorded_blk(void) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        g_auto(VdpaDeviceInfo) c = {};

        g_assert_cmpint(vdpa_netlink_get_device(nl, "vC", &c), ==, 0);
        g_assert_cmpuint(c.device_id, ==, 2);
        g_assert_cmphex(c.features, ==, FEAT_C);
        /* no driver: the kernel leaves negotiated features out */
        g_assert_false(c.has_negotiated);
        g_assert_true(c.has_blk_size);
        g_assert_cmpuint(c.blk_size, ==, 4096);
        g_assert_true(c.has_num_queues);
        g_assert_cmpuint(c.num_queues, ==, 2);
        g_assert_cmpuint(c.max_vqs, ==, 2);
        g_assert_false(c.has_mtu);
}

/* vdpa_sim_net (data/vdpasim/): a management device that states what it
 * supports, unlike vduse, and devices made with features of their own. */
#define SIM_DIR UNIT_DATA_DIR "/vdpasim"
#define SIM_SUPPORTED UINT64_C(0x308830028)
#define FEAT_S1 UINT64_C(0x300000020)
#define FEAT_S2 UINT64_C(0x300010028)

static void test_recorded_vdpasim(void) {
        g_autoptr(VdpaNetlink) nl = NULL;
        g_autoptr(GArray) list = NULL, devices = NULL;
        g_auto(VdpaDeviceInfo) s1 = {}, s2 = {};
        const VdpaMgmtInfo *m;

        g_assert_cmpint(vdpa_netlink_open(SIM_DIR, &nl), ==, 0);
        g_assert_cmpint(vdpa_netlink_list_mgmt(nl, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, 1);
        m = &g_array_index(list, VdpaMgmtInfo, 0);
        g_assert_cmpstr(m->name, ==, "vdpasim_net");
        g_assert_cmphex(m->classes, ==, 1 << 1);
        g_assert_true(m->has_supported_features);
        g_assert_cmphex(m->supported_features, ==, SIM_SUPPORTED);
        g_assert_cmpuint(m->max_vqs, ==, 3);

        g_assert_cmpint(vdpa_netlink_list_devices(nl, &devices), ==, 0);
        g_assert_cmpuint(devices->len, ==, 2);
        g_assert_cmpstr(g_array_index(devices, VdpaDeviceInfo, 0).name, ==, "S1");
        g_assert_cmpstr(g_array_index(devices, VdpaDeviceInfo, 1).name, ==, "S2");

        /* each offers the features it was made with, not all the
         * management device supports */
        g_assert_cmpint(vdpa_netlink_get_device(nl, "S1", &s1), ==, 0);
        g_assert_cmpstr(s1.mgmtdev, ==, "vdpasim_net");
        g_assert_true(s1.has_features);
        g_assert_cmphex(s1.features, ==, FEAT_S1);
        g_assert_false(s1.has_negotiated);
        g_assert_false(s1.has_mtu);
        g_assert_cmpint(vdpa_netlink_get_device(nl, "S2", &s2), ==, 0);
        g_assert_cmphex(s2.features, ==, FEAT_S2);
        g_assert_cmphex(s2.features & ~SIM_SUPPORTED, ==, 0);
        g_assert_true(s2.has_mtu);
        g_assert_cmpuint(s2.mtu, ==, 1500);
}

/* A recording cannot make or delete devices; bad names are refused
 * before anything is sent. */
static void test_replay_new_del(void) {
        g_autoptr(VdpaNetlink) nl = NULL;

        g_assert_cmpint(vdpa_netlink_open(SIM_DIR, &nl), ==, 0);
        g_assert_cmpint(vdpa_netlink_new_device(nl, "S3", "vdpasim_net", true, FEAT_S1), ==, -EOPNOTSUPP);
        g_assert_cmpint(vdpa_netlink_del_device(nl, "S1"), ==, -EOPNOTSUPP);
        g_assert_cmpint(vdpa_netlink_new_device(nl, "a/b", "vdpasim_net", false, 0), ==, -EINVAL);
        g_assert_cmpint(vdpa_netlink_new_device(nl, "S3", "", false, 0), ==, -EINVAL);
        g_assert_cmpint(vdpa_netlink_del_device(nl, ".."), ==, -EINVAL);
}

static void test_replay_lookups(void) {
        g_autoptr(VdpaNetlink) nl = open_recording();
        g_autofree char *long_name = g_strnfill(300, 'a');
        const char *hostile[] = { "", ".", "..", "../mgmtdev", "a/b", "/etc/passwd", long_name, NULL };
        VdpaDeviceInfo d = { .device_id = 77 };
        GBytes *b = NULL;

        /* unknown: ENODEV, as the kernel answers, and *ret left cleared */
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vZ", &d), ==, -ENODEV);
        g_assert_null(d.name);
        g_assert_cmpuint(d.device_id, ==, 0);
        for (size_t i = 0; hostile[i]; i++) {
                g_assert_cmpint(vdpa_netlink_get_device(nl, hostile[i], &d), ==, -EINVAL);
                g_assert_cmpint(vdpa_netlink_request(nl, VDPA_REQUEST_CONFIG, hostile[i], &b), ==, -EINVAL);
        }
        g_assert_cmpint(vdpa_netlink_get_device(nl, NULL, &d), ==, -EINVAL);
        g_assert_null(b);
}

static void write_file(const char *dir, const char *name, const char *text) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static void rm_rf(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, n, NULL);

                g_assert_cmpint(g_unlink(p), ==, 0);
        }
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

/* Replay files: comments and whitespace anywhere, anything else is
 * malformed; a recording without a dump has no vdpa family to speak of. */
static void test_replay_files(void) {
        g_autofree char *dir = g_dir_make_tmp("vdpa-replay-XXXXXX", NULL);
        g_autofree char *file = g_build_filename(dir, "file", NULL);
        g_autofree char *config = NULL, *text = NULL;
        g_autoptr(VdpaNetlink) nl = NULL;
        VdpaNetlink *bad = NULL;
        g_auto(VdpaDeviceInfo) d = {};
        g_autoptr(GArray) list = NULL;

        g_assert_cmpint(vdpa_netlink_open("/nonexistent-vdpa-dir", &bad), ==, -ENOENT);
        write_file(dir, "file", "");
        g_assert_cmpint(vdpa_netlink_open(file, &bad), ==, -ENOTDIR);
        g_assert_null(bad);
        g_assert_cmpint(vdpa_netlink_open(dir, &nl), ==, 0);
        g_assert_cmpint(vdpa_netlink_list_mgmt(nl, &list), ==, -ENOENT);
        g_assert_null(list);

        /* the real vB, spread over lines with comments and capitals */
        {
                g_autofree char *path = g_build_filename(DATA_DIR, "config-vB.hex", NULL);
                g_autofree char *dev = g_build_filename(DATA_DIR, "dev-vB.hex", NULL);
                g_autofree char *dev_text = NULL;

                g_assert_true(g_file_get_contents(path, &config, NULL, NULL));
                g_assert_true(g_file_get_contents(dev, &dev_text, NULL, NULL));
                write_file(dir, "dev-vB.hex", dev_text);
        }
        text = g_strdup_printf("# leading comment\n  %s\n# trailing, no newline", config);
        write_file(dir, "config-vB.hex", text);
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &d), ==, 0);
        g_assert_cmphex(d.features, ==, FEAT_B);
        vdpa_device_info_clear(&d);

        /* the device known, its config not: gone in between */
        {
                g_autofree char *path = g_build_filename(dir, "config-vB.hex", NULL);

                g_assert_cmpint(g_unlink(path), ==, 0);
        }
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &d), ==, -ENODEV);

        write_file(dir, "config-vB.hex", "580000002x");
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &d), ==, -EBADMSG);
        write_file(dir, "config-vB.hex", "5800000");
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &d), ==, -EBADMSG);
        write_file(dir, "config-vB.hex", "# nothing but a comment\n");
        g_assert_cmpint(vdpa_netlink_get_device(nl, "vB", &d), ==, -EBADMSG);
        rm_rf(dir);
}

/* Every prefix of a real reply is a cut message: -EBADMSG, never a
 * shorter answer and never a read past the end (the sanitizer run checks
 * that: each prefix is a heap copy of exactly its length). */
static void check_prefixes(GBytes *b, int (*parse)(const void *, size_t, void *), void *(*make)(void),
                           void (*destroy)(void *)) {
        size_t len;
        const uint8_t *data = g_bytes_get_data(b, &len);

        for (size_t n = 0; n < len; n++) {
                g_autofree void *copy = g_memdup2(data, n);
                void *into = make();
                int r = parse(copy, n, into);

                if (r != -EBADMSG)
                        fail("prefix of %zu of %zu bytes: %d, not -EBADMSG", n, len, r);
                destroy(into);
        }
}

static void *make_device(void) {
        return g_new0(VdpaDeviceInfo, 1);
}

static void destroy_device(void *p) {
        vdpa_device_info_clear(p);
        g_free(p);
}

static void *make_mgmt_array(void) {
        GArray *a = g_array_new(FALSE, TRUE, sizeof(VdpaMgmtInfo));

        g_array_set_clear_func(a, (GDestroyNotify) vdpa_mgmt_info_clear);
        return a;
}

static void destroy_mgmt_array(void *p) {
        /* a failed parse leaves the caller's array alone */
        g_assert_cmpuint(((GArray *) p)->len, ==, 0);
        g_array_unref(p);
}

static int parse_config(const void *buf, size_t len, void *into) {
        return vdpa_netlink_parse_config(buf, len, into);
}

static int parse_device(const void *buf, size_t len, void *into) {
        return vdpa_netlink_parse_device(buf, len, into);
}

static int parse_mgmt(const void *buf, size_t len, void *into) {
        return vdpa_netlink_parse_mgmt(buf, len, into);
}

static void test_truncated(void) {
        g_autoptr(GBytes) config = recorded(VDPA_REQUEST_CONFIG, "vB");
        g_autoptr(GBytes) dev = recorded(VDPA_REQUEST_DEV, "vC");
        g_autoptr(GBytes) mgmt = recorded(VDPA_REQUEST_MGMT_DUMP, NULL);

        check_prefixes(config, parse_config, make_device, destroy_device);
        check_prefixes(dev, parse_device, make_device, destroy_device);
        /* the dump without its NLMSG_DONE included */
        check_prefixes(mgmt, parse_mgmt, make_mgmt_array, destroy_mgmt_array);
}

/* The offset of the first attribute of type in the first message. */
static size_t find_attr(uint8_t *buf, uint16_t type) {
        const struct nlmsghdr *nlh = (const struct nlmsghdr *) buf;
        const struct nlattr *attr;

        mnl_attr_for_each(attr, nlh, GENL_HDRLEN)
                if (mnl_attr_get_type(attr) == type)
                        return (size_t) ((const uint8_t *) attr - buf);
        g_assert_not_reached();
}

/* A writable copy of the recorded config reply of vB. */
static uint8_t *config_copy(size_t *len) {
        g_autoptr(GBytes) b = recorded(VDPA_REQUEST_CONFIG, "vB");
        const void *data = g_bytes_get_data(b, len);

        return g_memdup2(data, *len);
}

static int parse_config_copy(uint8_t *buf, size_t len) {
        g_auto(VdpaDeviceInfo) d = {};

        return vdpa_netlink_parse_config(buf, len, &d);
}

/* Two shapes the fuzz target found, which libmnl's helpers would have
 * read past the buffer on: a length above 2 GiB (mnl_nlmsg_ok() takes it
 * as negative), and a last message of odd length whose last string ends
 * with its NUL only in the padding the payload tail rounds up to. */
static void test_lengths_libmnl_misreads(void) {
        g_autoptr(GBytes) dev = recorded(VDPA_REQUEST_DEV, "vC");
        size_t len, off;
        const uint8_t *data = g_bytes_get_data(dev, &len);
        g_autofree uint8_t *buf = g_memdup2(data, len);
        struct nlmsghdr *nlh = (struct nlmsghdr *) buf;
        g_auto(VdpaDeviceInfo) d = {};
        struct nlattr *name;

        nlh->nlmsg_len = 0x80000010u;
        g_assert_cmpint(vdpa_netlink_parse_device(buf, len, &d), ==, -EBADMSG);

        /* the device name last, the message one byte short of its NUL,
         * and the buffer as long as the message (the allocation is exact) */
        memcpy(buf, data, len);
        off = find_attr(buf, VDPA_NL_ATTR_DEV_NAME);
        name = (struct nlattr *) (buf + off);
        {
                size_t alen = MNL_ALIGN(name->nla_len), rest = nlh->nlmsg_len - off - alen;
                g_autofree uint8_t *moved = g_memdup2(name, alen);
                g_autofree uint8_t *cut = NULL;

                memmove(buf + off, buf + off + alen, rest);
                memcpy(buf + off + rest, moved, alen);
                /* "vC" and its NUL: 7 bytes, so the rounded-up tail covers the NUL */
                g_assert_cmpuint(((struct nlattr *) moved)->nla_len % 4, !=, 0);
                nlh->nlmsg_len = off + rest + ((struct nlattr *) moved)->nla_len - 1;
                cut = g_memdup2(buf, nlh->nlmsg_len);
                g_assert_cmpint(vdpa_netlink_parse_device(cut, nlh->nlmsg_len, &d), ==, -EBADMSG);
        }
}

static void test_bad_attributes(void) {
        size_t len, off;
        g_autofree uint8_t *buf = config_copy(&len);
        struct nlattr *attr;
        g_auto(VdpaDeviceInfo) other = { .name = g_strdup("vA") };

        g_assert_cmpint(parse_config_copy(buf, len), ==, 0);

        /* a u64 of 6 bytes: the next attribute starts where it did, so only
         * validation catches it */
        off = find_attr(buf, VDPA_NL_ATTR_DEV_FEATURES);
        attr = (struct nlattr *) (buf + off);
        g_assert_cmpuint(attr->nla_len, ==, 12);
        attr->nla_len = 10;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        /* one running past the message */
        attr->nla_len = 0x400;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        /* shorter than an attribute header */
        attr->nla_len = 2;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        attr->nla_len = 12;

        /* a u16 of 4 bytes (the MTU's attribute is padded to 8 anyway) */
        off = find_attr(buf, VDPA_NL_ATTR_DEV_NET_CFG_MTU);
        attr = (struct nlattr *) (buf + off);
        attr->nla_len = 8;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        attr->nla_len = 6;

        /* a name without its NUL ("vB\0" -> "vBx") */
        off = find_attr(buf, VDPA_NL_ATTR_DEV_NAME);
        g_assert_cmpuint(buf[off + NLA_HDRLEN + 2], ==, 0);
        buf[off + NLA_HDRLEN + 2] = 'x';
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        buf[off + NLA_HDRLEN + 2] = 0;

        /* the message longer than the buffer */
        ((struct nlmsghdr *) buf)->nlmsg_len += 8;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        ((struct nlmsghdr *) buf)->nlmsg_len -= 8;

        /* another command's reply, another device's reply */
        buf[NLMSG_HDRLEN] = VDPA_NL_CMD_DEV_NEW;
        g_assert_cmpint(parse_config_copy(buf, len), ==, -EBADMSG);
        buf[NLMSG_HDRLEN] = VDPA_NL_CMD_DEV_CONFIG_GET;
        g_assert_cmpint(vdpa_netlink_parse_config(buf, len, &other), ==, -EBADMSG);
        g_assert_cmpint(parse_config_copy(buf, len), ==, 0);
}

/* An NLMSG_ERROR as the kernel writes it: header, nlmsgerr (its error and
 * the request's header). */
static size_t put_error(uint8_t *buf, int error, uint32_t len) {
        struct nlmsghdr *nlh = (struct nlmsghdr *) buf;
        struct nlmsgerr *err = (struct nlmsgerr *) (buf + NLMSG_HDRLEN);

        memset(buf, 0, NLMSG_HDRLEN + sizeof(*err));
        nlh->nlmsg_len = len;
        nlh->nlmsg_type = NLMSG_ERROR;
        err->error = error;
        return len;
}

static void test_errors(void) {
        _Alignas(struct nlmsghdr) uint8_t buf[256];
        g_auto(VdpaDeviceInfo) d = {};
        g_autoptr(GArray) list = make_mgmt_array();
        size_t full = NLMSG_HDRLEN + sizeof(struct nlmsgerr), len;
        struct nlmsghdr *nlh = (struct nlmsghdr *) buf;
        g_autoptr(GBytes) mgmt = recorded(VDPA_REQUEST_MGMT_DUMP, NULL);
        g_autofree uint8_t *dump = NULL;
        const void *data;
        int error;

        /* the kernel's errno is the answer */
        g_assert_cmpint(vdpa_netlink_parse_device(buf, put_error(buf, -ENODEV, full), &d), ==, -ENODEV);
        g_assert_cmpint(vdpa_netlink_parse_config(buf, put_error(buf, -EPERM, full), &d), ==, -EPERM);
        g_assert_cmpint(vdpa_netlink_parse_mgmt(buf, put_error(buf, -EOPNOTSUPP, full), list), ==, -EOPNOTSUPP);
        /* an error without room for its errno, and a positive one */
        g_assert_cmpint(vdpa_netlink_parse_device(buf, put_error(buf, -ENODEV, NLMSG_HDRLEN + 2), &d), ==,
                        -EBADMSG);
        g_assert_cmpint(vdpa_netlink_parse_device(buf, put_error(buf, 5, full), &d), ==, -EBADMSG);
        /* an acknowledgement alone is no answer */
        g_assert_cmpint(vdpa_netlink_parse_device(buf, put_error(buf, 0, full), &d), ==, -EBADMSG);

        /* a family message without its generic-netlink header */
        memset(buf, 0, sizeof(buf));
        nlh->nlmsg_len = NLMSG_HDRLEN;
        nlh->nlmsg_type = 0x23;
        g_assert_cmpint(vdpa_netlink_parse_device(buf, NLMSG_HDRLEN, &d), ==, -EBADMSG);
        /* a reserved control type */
        nlh->nlmsg_type = 0x5;
        g_assert_cmpint(vdpa_netlink_parse_device(buf, NLMSG_HDRLEN, &d), ==, -EBADMSG);

        /* a dump whose NLMSG_DONE carries the dump's errno */
        data = g_bytes_get_data(mgmt, &len);
        dump = g_memdup2(data, len);
        nlh = (struct nlmsghdr *) (dump + len - NLMSG_ALIGN(NLMSG_HDRLEN + sizeof(int)));
        g_assert_cmpuint(nlh->nlmsg_type, ==, NLMSG_DONE);
        error = -EMSGSIZE;
        memcpy(NLMSG_DATA(nlh), &error, sizeof(error));
        g_assert_cmpint(vdpa_netlink_parse_mgmt(dump, len, list), ==, -EMSGSIZE);
        g_assert_cmpuint(list->len, ==, 0);
        error = 0;
        memcpy(NLMSG_DATA(nlh), &error, sizeof(error));
        g_assert_cmpint(vdpa_netlink_parse_mgmt(dump, len, list), ==, 0);
        g_assert_cmpuint(list->len, ==, 1);
        g_assert_cmpstr(g_array_index(list, VdpaMgmtInfo, 0).name, ==, "vduse");
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/vdpa-netlink/recorded/mgmt", test_recorded_mgmt);
        g_test_add_func("/vdpa-netlink/recorded/devices", test_recorded_devices);
        g_test_add_func("/vdpa-netlink/recorded/net", test_recorded_net);
        g_test_add_func("/vdpa-netlink/recorded/blk", test_recorded_blk);
        g_test_add_func("/vdpa-netlink/recorded/vdpasim", test_recorded_vdpasim);
        g_test_add_func("/vdpa-netlink/replay/lookups", test_replay_lookups);
        g_test_add_func("/vdpa-netlink/replay/new-del", test_replay_new_del);
        g_test_add_func("/vdpa-netlink/replay/files", test_replay_files);
        g_test_add_func("/vdpa-netlink/malformed/truncated", test_truncated);
        g_test_add_func("/vdpa-netlink/malformed/attributes", test_bad_attributes);
        g_test_add_func("/vdpa-netlink/malformed/errors", test_errors);
        g_test_add_func("/vdpa-netlink/malformed/lengths-libmnl-misreads", test_lengths_libmnl_misreads);
        return g_test_run();
}
