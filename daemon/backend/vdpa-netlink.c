/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "backend/vdpa-netlink.h"
#include "backend/vdpa-uapi.h"

/* A dump's skb can be up to 32 KiB; a smaller buffer would truncate it. */
#define RECV_BUFFER_SIZE 32768
/* VDUSE_NAME_MAX; the kernel's device names are shorter still. */
#define DEVICE_NAME_MAX 256

struct VdpaNetlink {
        struct mnl_socket *sock;        /* NULL when replaying */
        char *replay_dir;
        uint16_t family;
        uint32_t portid;
        uint32_t seq;
};

void vdpa_mgmt_info_clear(VdpaMgmtInfo *m) {
        if (!m)
                return;
        g_free(m->name);
        *m = (VdpaMgmtInfo) {};
}

void vdpa_device_info_clear(VdpaDeviceInfo *d) {
        if (!d)
                return;
        g_free(d->name);
        g_free(d->mgmtdev);
        *d = (VdpaDeviceInfo) {};
}

bool vdpa_device_name_is_valid(const char *name) {
        return name && name[0] && strlen(name) < DEVICE_NAME_MAX && !strchr(name, '/') && !g_str_equal(name, ".") &&
               !g_str_equal(name, "..");
}

/* ---- parsing: a stream of netlink messages ---- */

/* One message of the family (not NLMSG_*): its generic-netlink command and
 * attributes, indexed by type. */
typedef int (*MessageFunc)(uint8_t cmd, const struct nlattr *const *tb, void *userdata);

/* Attributes newer than we know are skipped, as the kernel adds them. */
#define ATTR_TABLE_SIZE (VDPA_NL_ATTR_DEV_BLK_CFG_NUM_QUEUES + 1)

/* The attributes' lengths must add up to the message exactly: libmnl's own
 * iteration stops quietly at a truncated attribute, which would pass a cut
 * message off as a shorter one. */
static int parse_attributes(const struct nlmsghdr *nlh, const struct nlattr **tb) {
        /* not mnl_nlmsg_get_payload_tail(): it rounds nlmsg_len up, past
         * the end of a buffer whose last message has an odd length */
        const char *end = (const char *) nlh + nlh->nlmsg_len;
        const struct nlattr *attr = mnl_nlmsg_get_payload_offset(nlh, GENL_HDRLEN);

        while ((const char *) attr < end && mnl_attr_ok(attr, (int) (end - (const char *) attr))) {
                uint16_t type = mnl_attr_get_type(attr);

                if (type < ATTR_TABLE_SIZE)
                        tb[type] = attr;
                attr = mnl_attr_next(attr);
        }
        return (const char *) attr == end ? 0 : -EBADMSG;
}

/* NLMSG_ERROR: 0 is an acknowledgement, <0 the kernel's errno. */
static int parse_error(const struct nlmsghdr *nlh) {
        const struct nlmsgerr *err;

        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct nlmsgerr))
                return -EBADMSG;
        err = mnl_nlmsg_get_payload(nlh);
        return err->error <= 0 ? err->error : -EBADMSG;
}

/* NLMSG_DONE of a dump may carry the dump's own error (an int). */
static int parse_done(const struct nlmsghdr *nlh) {
        int error;

        if (mnl_nlmsg_get_payload_len(nlh) < sizeof(int))
                return 0;
        memcpy(&error, mnl_nlmsg_get_payload(nlh), sizeof(error));
        return error < 0 ? error : 0;
}

static int parse_family_message(const struct nlmsghdr *nlh, MessageFunc func, void *userdata) {
        const struct nlattr *tb[ATTR_TABLE_SIZE] = {};
        const struct genlmsghdr *genl;
        int r;

        if (mnl_nlmsg_get_payload_len(nlh) < GENL_HDRLEN)
                return -EBADMSG;
        genl = mnl_nlmsg_get_payload(nlh);
        r = parse_attributes(nlh, tb);
        if (r < 0)
                return r;
        return func(genl->cmd, tb, userdata);
}

/* mnl_nlmsg_ok() compares the length as an int: a length above 2 GiB
 * passes as negative, and mnl_nlmsg_next() then jumps far outside buf. */
static bool message_ok(const struct nlmsghdr *nlh, int remaining) {
        return remaining >= (int) sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) &&
               nlh->nlmsg_len <= (uint32_t) remaining;
}

/* Walks every message of buf; the stream must end exactly at a message's
 * end, and a dump's with NLMSG_DONE (a dump cut between two messages
 * would pass for a shorter one otherwise). Returns the number of family
 * messages seen, or -errno. */
static int parse_stream(const void *buf, size_t len, bool dump, MessageFunc func, void *userdata) {
        const struct nlmsghdr *nlh = buf;
        int remaining, n = 0, r;

        if (!buf || len > INT_MAX)
                return -EBADMSG;
        remaining = (int) len;
        while (message_ok(nlh, remaining)) {
                switch (nlh->nlmsg_type) {
                case NLMSG_NOOP:
                        break;
                case NLMSG_ERROR:
                        r = parse_error(nlh);
                        if (r < 0)
                                return r;
                        break;
                case NLMSG_DONE:
                        r = parse_done(nlh);
                        return r < 0 ? r : n;
                default:
                        if (nlh->nlmsg_type < NLMSG_MIN_TYPE)
                                return -EBADMSG;
                        r = parse_family_message(nlh, func, userdata);
                        if (r < 0)
                                return r;
                        n++;
                }
                nlh = mnl_nlmsg_next(nlh, &remaining);
        }
        return remaining == 0 && !dump ? n : -EBADMSG;
}

/* Strings must be NUL-terminated within the attribute, numbers exactly
 * their size: anything else is a malformed message, not a default. */
static int get_string(const struct nlattr *attr, const char **ret) {
        if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
                return -EBADMSG;
        *ret = mnl_attr_get_str(attr);
        return 0;
}

static int get_u64(const struct nlattr *attr, bool *has, uint64_t *ret) {
        if (!attr)
                return 0;
        if (mnl_attr_validate(attr, MNL_TYPE_U64) < 0)
                return -EBADMSG;
        *ret = mnl_attr_get_u64(attr);
        if (has)
                *has = true;
        return 0;
}

static int get_u32(const struct nlattr *attr, bool *has, uint32_t *ret) {
        if (!attr)
                return 0;
        if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
                return -EBADMSG;
        *ret = mnl_attr_get_u32(attr);
        if (has)
                *has = true;
        return 0;
}

static int get_u16(const struct nlattr *attr, bool *has, uint16_t *ret) {
        if (!attr)
                return 0;
        if (mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
                return -EBADMSG;
        *ret = mnl_attr_get_u16(attr);
        if (has)
                *has = true;
        return 0;
}

/* The management device's handle: "bus/dev" when the kernel names a bus
 * (a PCI parent: "pci/0000:00:05.0"), the device name alone otherwise
 * ("vduse"), as `vdpa mgmtdev show` writes it. */
static int get_mgmtdev_name(const struct nlattr *const *tb, char **ret) {
        const char *bus = NULL, *dev;

        if (!tb[VDPA_NL_ATTR_MGMTDEV_DEV_NAME] || get_string(tb[VDPA_NL_ATTR_MGMTDEV_DEV_NAME], &dev) < 0)
                return -EBADMSG;
        if (tb[VDPA_NL_ATTR_MGMTDEV_BUS_NAME] && get_string(tb[VDPA_NL_ATTR_MGMTDEV_BUS_NAME], &bus) < 0)
                return -EBADMSG;
        *ret = bus && bus[0] ? g_strconcat(bus, "/", dev, NULL) : g_strdup(dev);
        return 0;
}

static int get_device_name(const struct nlattr *const *tb, char **ret) {
        const char *name;

        if (!tb[VDPA_NL_ATTR_DEV_NAME] || get_string(tb[VDPA_NL_ATTR_DEV_NAME], &name) < 0)
                return -EBADMSG;
        g_free(*ret);
        *ret = g_strdup(name);
        return 0;
}

static int mgmt_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        g_auto(VdpaMgmtInfo) m = {};
        GArray *into = userdata;
        bool has_classes = false;

        if (cmd != VDPA_NL_CMD_MGMTDEV_NEW)
                return -EBADMSG;
        if (get_mgmtdev_name(tb, &m.name) < 0 ||
            get_u64(tb[VDPA_NL_ATTR_MGMTDEV_SUPPORTED_CLASSES], &has_classes, &m.classes) < 0 ||
            get_u64(tb[VDPA_NL_ATTR_DEV_SUPPORTED_FEATURES], &m.has_supported_features, &m.supported_features) < 0 ||
            get_u32(tb[VDPA_NL_ATTR_DEV_MGMTDEV_MAX_VQS], NULL, &m.max_vqs) < 0)
                return -EBADMSG;
        /* every kernel since vDPA's netlink (5.12) states the classes */
        if (!has_classes)
                return -EBADMSG;
        g_array_append_val(into, m);
        m = (VdpaMgmtInfo) {};
        return 0;
}

static int device_fill(uint8_t cmd, const struct nlattr *const *tb, VdpaDeviceInfo *d) {
        bool has_id = false;

        if (cmd != VDPA_NL_CMD_DEV_NEW)
                return -EBADMSG;
        g_clear_pointer(&d->mgmtdev, g_free);
        if (get_device_name(tb, &d->name) < 0 || get_mgmtdev_name(tb, &d->mgmtdev) < 0 ||
            get_u32(tb[VDPA_NL_ATTR_DEV_ID], &has_id, &d->device_id) < 0 ||
            get_u32(tb[VDPA_NL_ATTR_DEV_VENDOR_ID], NULL, &d->vendor_id) < 0 ||
            get_u32(tb[VDPA_NL_ATTR_DEV_MAX_VQS], NULL, &d->max_vqs) < 0 ||
            get_u16(tb[VDPA_NL_ATTR_DEV_MAX_VQ_SIZE], NULL, &d->max_vq_size) < 0)
                return -EBADMSG;
        return has_id ? 0 : -EBADMSG;
}

static int device_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        return device_fill(cmd, tb, userdata);
}

static int devices_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        g_auto(VdpaDeviceInfo) d = {};
        GArray *into = userdata;
        int r;

        r = device_fill(cmd, tb, &d);
        if (r < 0)
                return r;
        g_array_append_val(into, d);
        d = (VdpaDeviceInfo) {};
        return 0;
}

/* DEV_CONFIG_GET on 6.12 (drivers/vdpa/vdpa.c, vdpa_dev_config_fill):
 * the features the device offers are in VDPA_ATTR_DEV_FEATURES (20), for
 * net and blk alike, always. That number was called
 * VDPA_ATTR_VDPA_DEV_SUPPORTED_FEATURES before 6.2; the other "supported"
 * attribute, VDPA_ATTR_DEV_SUPPORTED_FEATURES (16), belongs to the
 * management device (MGMTDEV_GET) and never appears here.
 * VDPA_ATTR_DEV_NEGOTIATED_FEATURES only appears once the status has
 * FEATURES_OK, i.e. a driver negotiated. The config fields appear only
 * with the feature that makes them valid (MTU with VIRTIO_NET_F_MTU,
 * max_vq_pairs with MQ or RSS, blk_size with VIRTIO_BLK_F_BLK_SIZE,
 * num_queues with VIRTIO_BLK_F_MQ). */
static int config_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        VdpaDeviceInfo *d = userdata;
        const char *name;

        if (cmd != VDPA_NL_CMD_DEV_CONFIG_GET)
                return -EBADMSG;
        if (!tb[VDPA_NL_ATTR_DEV_NAME] || get_string(tb[VDPA_NL_ATTR_DEV_NAME], &name) < 0)
                return -EBADMSG;
        /* the answer about another device would be taken for this one's */
        if (d->name && !g_str_equal(d->name, name))
                return -EBADMSG;
        if (!d->name)
                d->name = g_strdup(name);
        if (get_u32(tb[VDPA_NL_ATTR_DEV_ID], NULL, &d->device_id) < 0 ||
            get_u64(tb[VDPA_NL_ATTR_DEV_FEATURES], &d->has_features, &d->features) < 0 ||
            get_u64(tb[VDPA_NL_ATTR_DEV_NEGOTIATED_FEATURES], &d->has_negotiated, &d->negotiated) < 0 ||
            get_u16(tb[VDPA_NL_ATTR_DEV_NET_CFG_MTU], &d->has_mtu, &d->mtu) < 0 ||
            get_u16(tb[VDPA_NL_ATTR_DEV_NET_CFG_MAX_VQP], &d->has_max_vq_pairs, &d->max_vq_pairs) < 0 ||
            get_u32(tb[VDPA_NL_ATTR_DEV_BLK_CFG_BLK_SIZE], &d->has_blk_size, &d->blk_size) < 0 ||
            get_u16(tb[VDPA_NL_ATTR_DEV_BLK_CFG_NUM_QUEUES], &d->has_num_queues, &d->num_queues) < 0)
                return -EBADMSG;
        return 0;
}

/* Dumps collect into a private array first, so that a malformed message
 * leaves the caller's array as it was. */
static int parse_into_array(const void *buf, size_t len, MessageFunc func, GDestroyNotify clear, size_t elt,
                            GArray *into) {
        g_autoptr(GArray) tmp = g_array_new(FALSE, TRUE, elt);
        int r;

        g_array_set_clear_func(tmp, clear);
        r = parse_stream(buf, len, true, func, tmp);
        if (r < 0)
                return r;
        g_array_append_vals(into, tmp->data, tmp->len);
        /* the elements' strings now belong to into */
        g_array_set_clear_func(tmp, NULL);
        return 0;
}

int vdpa_netlink_parse_mgmt(const void *buf, size_t len, GArray *into) {
        return parse_into_array(buf, len, mgmt_message, (GDestroyNotify) vdpa_mgmt_info_clear, sizeof(VdpaMgmtInfo),
                                into);
}

int vdpa_netlink_parse_devices(const void *buf, size_t len, GArray *into) {
        return parse_into_array(buf, len, devices_message, (GDestroyNotify) vdpa_device_info_clear,
                                sizeof(VdpaDeviceInfo), into);
}

/* A do request has exactly one answer: none (or a second one) is no
 * answer to this request. */
static int parse_one(const void *buf, size_t len, MessageFunc func, void *userdata) {
        int r = parse_stream(buf, len, false, func, userdata);

        if (r < 0)
                return r;
        return r == 1 ? 0 : -EBADMSG;
}

int vdpa_netlink_parse_device(const void *buf, size_t len, VdpaDeviceInfo *into) {
        return parse_one(buf, len, device_message, into);
}

int vdpa_netlink_parse_config(const void *buf, size_t len, VdpaDeviceInfo *into) {
        return parse_one(buf, len, config_message, into);
}

/* ---- replay ---- */

char *vdpa_request_file_name(VdpaRequest req, const char *name) {
        switch (req) {
        case VDPA_REQUEST_MGMT_DUMP:
                return g_strdup("mgmtdev.hex");
        case VDPA_REQUEST_DEV_DUMP:
                return g_strdup("devices.hex");
        case VDPA_REQUEST_DEV:
                return g_strdup_printf("dev-%s.hex", name);
        case VDPA_REQUEST_CONFIG:
                return g_strdup_printf("config-%s.hex", name);
        }
        return NULL;
}

/* Lowercase or uppercase hex digits; whitespace anywhere, '#' to the end
 * of the line is a comment. An odd number of digits or any other
 * character: -EBADMSG. */
static int hex_decode(const char *text, GBytes **ret) {
        g_autoptr(GByteArray) out = g_byte_array_new();
        int high = -1;

        for (const char *p = text; *p; p++) {
                int v;

                if (*p == '#') {
                        p += strcspn(p, "\n");
                        if (!*p)
                                break;
                        continue;
                }
                if (g_ascii_isspace(*p))
                        continue;
                v = g_ascii_xdigit_value(*p);
                if (v < 0)
                        return -EBADMSG;
                if (high < 0) {
                        high = v;
                } else {
                        uint8_t byte = (uint8_t) (high << 4 | v);

                        g_byte_array_append(out, &byte, 1);
                        high = -1;
                }
        }
        if (high >= 0)
                return -EBADMSG;
        *ret = g_byte_array_free_to_bytes(g_steal_pointer(&out));
        return 0;
}

/* A recording that lacks a device's file means the kernel did not know
 * the device then: -ENODEV, as the kernel itself answers. */
static int replay_request(VdpaNetlink *nl, VdpaRequest req, const char *name, GBytes **ret) {
        g_autofree char *file = vdpa_request_file_name(req, name);
        g_autofree char *path = g_build_filename(nl->replay_dir, file, NULL);
        g_autofree char *text = NULL;
        g_autoptr(GError) error = NULL;

        if (!g_file_get_contents(path, &text, NULL, &error)) {
                if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        return -EIO;
                return req == VDPA_REQUEST_DEV || req == VDPA_REQUEST_CONFIG ? -ENODEV : -ENOENT;
        }
        return hex_decode(text, ret);
}

/* ---- the kernel ---- */

static struct nlmsghdr *put_request(char *buf, uint16_t type, uint16_t flags, uint8_t cmd, uint8_t version,
                                    uint32_t seq) {
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        struct genlmsghdr *genl;

        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = seq;
        genl = mnl_nlmsg_put_extra_header(nlh, sizeof(*genl));
        genl->cmd = cmd;
        genl->version = version;
        return nlh;
}

/* Whether msg ends the answer to a request: an error (or ack) ends any,
 * DONE ends a dump, the first family message ends a do. */
static bool answer_complete(const struct nlmsghdr *nlh, bool dump) {
        if (nlh->nlmsg_type == NLMSG_ERROR || nlh->nlmsg_type == NLMSG_DONE)
                return true;
        return !dump && nlh->nlmsg_type >= NLMSG_MIN_TYPE;
}

/* Appends our answer's messages (by sequence number and our port: a stale
 * answer to an earlier, interrupted request is dropped) from one datagram. */
static int collect_datagram(const void *buf, int len, uint32_t portid, uint32_t seq, bool dump, GByteArray *out,
                            bool *done) {
        const struct nlmsghdr *nlh = buf;

        while (message_ok(nlh, len)) {
                if (nlh->nlmsg_seq == seq && nlh->nlmsg_pid == portid) {
                        g_byte_array_append(out, (const guint8 *) nlh, NLMSG_ALIGN(nlh->nlmsg_len));
                        if (answer_complete(nlh, dump))
                                *done = true;
                }
                nlh = mnl_nlmsg_next(nlh, &len);
        }
        return len == 0 ? 0 : -EBADMSG;
}

static int receive_answer(VdpaNetlink *nl, uint32_t seq, bool dump, GBytes **ret) {
        g_autofree char *buf = g_malloc(RECV_BUFFER_SIZE);
        g_autoptr(GByteArray) out = g_byte_array_new();
        bool done = false;

        while (!done) {
                ssize_t n = mnl_socket_recvfrom(nl->sock, buf, RECV_BUFFER_SIZE);
                int r;

                if (n < 0)
                        return errno == ENOSPC ? -EMSGSIZE : -errno;
                if (n == 0)
                        return -EBADMSG;
                r = collect_datagram(buf, (int) n, nl->portid, seq, dump, out, &done);
                if (r < 0)
                        return r;
        }
        *ret = g_byte_array_free_to_bytes(g_steal_pointer(&out));
        return 0;
}

static int transact(VdpaNetlink *nl, uint16_t type, uint8_t cmd, uint8_t version, bool dump, uint16_t name_attr,
                    const char *name, GBytes **ret) {
        _Alignas(struct nlmsghdr) char buf[MNL_NLMSG_HDRLEN + GENL_HDRLEN + MNL_ATTR_HDRLEN + 2 * DEVICE_NAME_MAX];
        struct nlmsghdr *nlh;
        uint32_t seq = ++nl->seq;

        nlh = put_request(buf, type, dump ? NLM_F_DUMP : 0, cmd, version, seq);
        if (name)
                mnl_attr_put_strz(nlh, name_attr, name);
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        return receive_answer(nl, seq, dump, ret);
}

/* The controller's attributes are not vDPA's, but the table is indexed by
 * number alone and CTRL_ATTR_FAMILY_ID (1) fits in it. */
static int family_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        uint16_t *family = userdata;
        bool has = false;

        if (cmd != CTRL_CMD_NEWFAMILY || get_u16(tb[CTRL_ATTR_FAMILY_ID], &has, family) < 0 || !has)
                return -EBADMSG;
        return 0;
}

/* CTRL_CMD_GETFAMILY "vdpa": the family id, -ENOENT when vdpa.ko is not
 * loaded. */
static int resolve_family(VdpaNetlink *nl) {
        g_autoptr(GBytes) answer = NULL;
        const void *buf;
        size_t len;
        int r;

        r = transact(nl, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, false, CTRL_ATTR_FAMILY_NAME, VDPA_NL_FAMILY_NAME,
                     &answer);
        if (r < 0)
                return r;
        buf = g_bytes_get_data(answer, &len);
        return parse_one(buf, len, family_message, &nl->family);
}

static int open_kernel(VdpaNetlink *nl) {
        nl->sock = mnl_socket_open(NETLINK_GENERIC);
        if (!nl->sock)
                return -errno;
        if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
                return -errno;
        nl->portid = mnl_socket_get_portid(nl->sock);
        nl->seq = (uint32_t) g_get_monotonic_time();
        return resolve_family(nl);
}

static int open_replay(VdpaNetlink *nl, const char *dir) {
        struct stat st;

        if (stat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        nl->replay_dir = g_strdup(dir);
        return 0;
}

int vdpa_netlink_open(const char *replay_dir, VdpaNetlink **ret) {
        g_autoptr(VdpaNetlink) nl = g_new0(VdpaNetlink, 1);
        int r;

        r = replay_dir ? open_replay(nl, replay_dir) : open_kernel(nl);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&nl);
        return 0;
}

void vdpa_netlink_free(VdpaNetlink *nl) {
        if (!nl)
                return;
        if (nl->sock)
                mnl_socket_close(nl->sock);
        g_free(nl->replay_dir);
        g_free(nl);
}

int vdpa_netlink_request(VdpaNetlink *nl, VdpaRequest req, const char *name, GBytes **ret) {
        bool named = req == VDPA_REQUEST_DEV || req == VDPA_REQUEST_CONFIG;

        if (named && !vdpa_device_name_is_valid(name))
                return -EINVAL;
        if (nl->replay_dir)
                return replay_request(nl, req, named ? name : NULL, ret);
        switch (req) {
        case VDPA_REQUEST_MGMT_DUMP:
                return transact(nl, nl->family, VDPA_NL_CMD_MGMTDEV_GET, VDPA_NL_FAMILY_VERSION, true, 0, NULL, ret);
        case VDPA_REQUEST_DEV_DUMP:
                return transact(nl, nl->family, VDPA_NL_CMD_DEV_GET, VDPA_NL_FAMILY_VERSION, true, 0, NULL, ret);
        case VDPA_REQUEST_DEV:
                return transact(nl, nl->family, VDPA_NL_CMD_DEV_GET, VDPA_NL_FAMILY_VERSION, false,
                                VDPA_NL_ATTR_DEV_NAME, name, ret);
        case VDPA_REQUEST_CONFIG:
                return transact(nl, nl->family, VDPA_NL_CMD_DEV_CONFIG_GET, VDPA_NL_FAMILY_VERSION, false,
                                VDPA_NL_ATTR_DEV_NAME, name, ret);
        }
        return -EINVAL;
}

static int no_family_message(uint8_t cmd, const struct nlattr *const *tb, void *userdata) {
        return -EBADMSG;
}

/* A command that answers with an acknowledgement alone: NLM_F_ACK, so
 * that success has an answer too and an error is not taken for the next
 * request's. */
static int transact_ack(VdpaNetlink *nl, struct nlmsghdr *nlh) {
        g_autoptr(GBytes) answer = NULL;
        const void *buf;
        size_t len;
        int r;

        nlh->nlmsg_flags |= NLM_F_ACK;
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        r = receive_answer(nl, nlh->nlmsg_seq, false, &answer);
        if (r < 0)
                return r;
        buf = g_bytes_get_data(answer, &len);
        /* the ack, or the kernel's error; no family message */
        r = parse_stream(buf, len, false, no_family_message, NULL);
        return r < 0 ? r : r == 0 ? 0 : -EBADMSG;
}

/* "pci/0000:00:05.0" names a bus too; "vdpasim_net" does not. */
static void put_mgmtdev(struct nlmsghdr *nlh, const char *mgmtdev) {
        const char *slash = strchr(mgmtdev, '/');

        if (slash) {
                g_autofree char *bus = g_strndup(mgmtdev, slash - mgmtdev);

                mnl_attr_put_strz(nlh, VDPA_NL_ATTR_MGMTDEV_BUS_NAME, bus);
                mnl_attr_put_strz(nlh, VDPA_NL_ATTR_MGMTDEV_DEV_NAME, slash + 1);
        } else
                mnl_attr_put_strz(nlh, VDPA_NL_ATTR_MGMTDEV_DEV_NAME, mgmtdev);
}

int vdpa_netlink_new_device(VdpaNetlink *nl, const char *name, const char *mgmtdev, bool has_features,
                            uint64_t features) {
        _Alignas(struct nlmsghdr) char buf[MNL_NLMSG_HDRLEN + GENL_HDRLEN + 4 * MNL_ATTR_HDRLEN +
                                            3 * DEVICE_NAME_MAX + sizeof(uint64_t)];
        struct nlmsghdr *nlh;

        if (!vdpa_device_name_is_valid(name) || !mgmtdev || !mgmtdev[0] || strlen(mgmtdev) >= DEVICE_NAME_MAX)
                return -EINVAL;
        /* a recording cannot make devices */
        if (nl->replay_dir)
                return -EOPNOTSUPP;
        nlh = put_request(buf, nl->family, 0, VDPA_NL_CMD_DEV_NEW, VDPA_NL_FAMILY_VERSION, ++nl->seq);
        mnl_attr_put_strz(nlh, VDPA_NL_ATTR_DEV_NAME, name);
        put_mgmtdev(nlh, mgmtdev);
        /* without it the device offers all the management device supports */
        if (has_features)
                mnl_attr_put_u64(nlh, VDPA_NL_ATTR_DEV_FEATURES, features);
        return transact_ack(nl, nlh);
}

int vdpa_netlink_del_device(VdpaNetlink *nl, const char *name) {
        _Alignas(struct nlmsghdr) char buf[MNL_NLMSG_HDRLEN + GENL_HDRLEN + MNL_ATTR_HDRLEN + DEVICE_NAME_MAX];
        struct nlmsghdr *nlh;

        if (!vdpa_device_name_is_valid(name))
                return -EINVAL;
        if (nl->replay_dir)
                return -EOPNOTSUPP;
        nlh = put_request(buf, nl->family, 0, VDPA_NL_CMD_DEV_DEL, VDPA_NL_FAMILY_VERSION, ++nl->seq);
        mnl_attr_put_strz(nlh, VDPA_NL_ATTR_DEV_NAME, name);
        return transact_ack(nl, nlh);
}

int vdpa_netlink_list_mgmt(VdpaNetlink *nl, GArray **ret) {
        g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(VdpaMgmtInfo));
        g_autoptr(GBytes) answer = NULL;
        const void *buf;
        size_t len;
        int r;

        g_array_set_clear_func(list, (GDestroyNotify) vdpa_mgmt_info_clear);
        r = vdpa_netlink_request(nl, VDPA_REQUEST_MGMT_DUMP, NULL, &answer);
        if (r < 0)
                return r;
        buf = g_bytes_get_data(answer, &len);
        r = vdpa_netlink_parse_mgmt(buf, len, list);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&list);
        return 0;
}

int vdpa_netlink_list_devices(VdpaNetlink *nl, GArray **ret) {
        g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(VdpaDeviceInfo));
        g_autoptr(GBytes) answer = NULL;
        const void *buf;
        size_t len;
        int r;

        g_array_set_clear_func(list, (GDestroyNotify) vdpa_device_info_clear);
        r = vdpa_netlink_request(nl, VDPA_REQUEST_DEV_DUMP, NULL, &answer);
        if (r < 0)
                return r;
        buf = g_bytes_get_data(answer, &len);
        r = vdpa_netlink_parse_devices(buf, len, list);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&list);
        return 0;
}

static int request_and_parse(VdpaNetlink *nl, VdpaRequest req, const char *name,
                             int (*parse)(const void *, size_t, VdpaDeviceInfo *), VdpaDeviceInfo *d) {
        g_autoptr(GBytes) answer = NULL;
        const void *buf;
        size_t len;
        int r;

        r = vdpa_netlink_request(nl, req, name, &answer);
        if (r < 0)
                return r;
        buf = g_bytes_get_data(answer, &len);
        return parse(buf, len, d);
}

/* *ret is overwritten, not cleared first: pass it zeroed or cleared. On
 * failure it is left cleared. */
int vdpa_netlink_get_device(VdpaNetlink *nl, const char *name, VdpaDeviceInfo *ret) {
        g_auto(VdpaDeviceInfo) d = {};
        int r;

        *ret = (VdpaDeviceInfo) {};
        if (!vdpa_device_name_is_valid(name))
                return -EINVAL;
        r = request_and_parse(nl, VDPA_REQUEST_DEV, name, vdpa_netlink_parse_device, &d);
        if (r < 0)
                return r;
        /* a reply naming another device is no answer about this one */
        if (!g_str_equal(d.name, name))
                return -EBADMSG;
        r = request_and_parse(nl, VDPA_REQUEST_CONFIG, name, vdpa_netlink_parse_config, &d);
        if (r < 0)
                return r;
        *ret = d;
        d = (VdpaDeviceInfo) {};
        return 0;
}
