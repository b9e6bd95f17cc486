/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "util.h"
#include "vdpa-facet.h"

#define VDPA_FACET_TEXT_MAX 512

/* Class names as the vdpa tool and the virtio spec spell them. */
static const char *const class_names[] = {
        [1] = "net", [2] = "blk", [3] = "console", [4] = "rng", [5] = "balloon", [8] = "scsi", [9] = "9p",
        [16] = "gpu", [18] = "input", [19] = "vsock", [20] = "crypto", [26] = "fs", [41] = "gpio",
};

/* Bits 24 to 41 belong to the transport and the ring, whatever the class. */
static const char *const common_features[64] = {
        [24] = "VIRTIO_F_NOTIFY_ON_EMPTY", [27] = "VIRTIO_F_ANY_LAYOUT", [28] = "VIRTIO_RING_F_INDIRECT_DESC",
        [29] = "VIRTIO_RING_F_EVENT_IDX", [30] = "VIRTIO_F_BAD_FEATURE", [32] = "VIRTIO_F_VERSION_1",
        [33] = "VIRTIO_F_ACCESS_PLATFORM", [34] = "VIRTIO_F_RING_PACKED", [35] = "VIRTIO_F_IN_ORDER",
        [36] = "VIRTIO_F_ORDER_PLATFORM", [37] = "VIRTIO_F_SR_IOV", [38] = "VIRTIO_F_NOTIFICATION_DATA",
        [39] = "VIRTIO_F_NOTIF_CONFIG_DATA", [40] = "VIRTIO_F_RING_RESET", [41] = "VIRTIO_F_ADMIN_VQ",
};

static const char *const net_features[64] = {
        [0] = "VIRTIO_NET_F_CSUM", [1] = "VIRTIO_NET_F_GUEST_CSUM", [2] = "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS",
        [3] = "VIRTIO_NET_F_MTU", [5] = "VIRTIO_NET_F_MAC", [6] = "VIRTIO_NET_F_GSO",
        [7] = "VIRTIO_NET_F_GUEST_TSO4", [8] = "VIRTIO_NET_F_GUEST_TSO6", [9] = "VIRTIO_NET_F_GUEST_ECN",
        [10] = "VIRTIO_NET_F_GUEST_UFO", [11] = "VIRTIO_NET_F_HOST_TSO4", [12] = "VIRTIO_NET_F_HOST_TSO6",
        [13] = "VIRTIO_NET_F_HOST_ECN", [14] = "VIRTIO_NET_F_HOST_UFO", [15] = "VIRTIO_NET_F_MRG_RXBUF",
        [16] = "VIRTIO_NET_F_STATUS", [17] = "VIRTIO_NET_F_CTRL_VQ", [18] = "VIRTIO_NET_F_CTRL_RX",
        [19] = "VIRTIO_NET_F_CTRL_VLAN", [20] = "VIRTIO_NET_F_CTRL_RX_EXTRA", [21] = "VIRTIO_NET_F_GUEST_ANNOUNCE",
        [22] = "VIRTIO_NET_F_MQ", [23] = "VIRTIO_NET_F_CTRL_MAC_ADDR", [52] = "VIRTIO_NET_F_VQ_NOTF_COAL",
        [53] = "VIRTIO_NET_F_NOTF_COAL", [54] = "VIRTIO_NET_F_GUEST_USO4", [55] = "VIRTIO_NET_F_GUEST_USO6",
        [56] = "VIRTIO_NET_F_HOST_USO", [57] = "VIRTIO_NET_F_HASH_REPORT", [59] = "VIRTIO_NET_F_GUEST_HDRLEN",
        [60] = "VIRTIO_NET_F_RSS", [61] = "VIRTIO_NET_F_RSC_EXT", [62] = "VIRTIO_NET_F_STANDBY",
        [63] = "VIRTIO_NET_F_SPEED_DUPLEX",
};

static const char *const blk_features[64] = {
        [0] = "VIRTIO_BLK_F_BARRIER", [1] = "VIRTIO_BLK_F_SIZE_MAX", [2] = "VIRTIO_BLK_F_SEG_MAX",
        [4] = "VIRTIO_BLK_F_GEOMETRY", [5] = "VIRTIO_BLK_F_RO", [6] = "VIRTIO_BLK_F_BLK_SIZE",
        [7] = "VIRTIO_BLK_F_SCSI", [9] = "VIRTIO_BLK_F_FLUSH", [10] = "VIRTIO_BLK_F_TOPOLOGY",
        [11] = "VIRTIO_BLK_F_CONFIG_WCE", [12] = "VIRTIO_BLK_F_MQ", [13] = "VIRTIO_BLK_F_DISCARD",
        [14] = "VIRTIO_BLK_F_WRITE_ZEROES", [15] = "VIRTIO_BLK_F_LIFETIME", [16] = "VIRTIO_BLK_F_SECURE_ERASE",
        [17] = "VIRTIO_BLK_F_ZONED",
};

char *vdpa_class_to_string(uint32_t device_id) {
        if (device_id < G_N_ELEMENTS(class_names) && class_names[device_id])
                return g_strdup(class_names[device_id]);
        return g_strdup_printf("virtio-%" PRIu32, device_id);
}

uint32_t vdpa_class_from_string(const char *s) {
        uint64_t v;

        for (uint32_t i = 0; i < G_N_ELEMENTS(class_names); i++)
                if (class_names[i] && g_str_equal(s, class_names[i]))
                        return i;
        if (g_str_has_prefix(s, "virtio-") && g_ascii_string_to_unsigned(s + 7, 10, 1, UINT32_MAX, &v, NULL))
                return v;
        return 0;
}

const char *vdpa_feature_name(uint32_t device_id, unsigned bit) {
        if (bit >= 64)
                return NULL;
        if (common_features[bit])
                return common_features[bit];
        if (device_id == VIRTIO_ID_NET)
                return net_features[bit];
        if (device_id == VIRTIO_ID_BLOCK)
                return blk_features[bit];
        return NULL;
}

char *vdpa_features_to_names(uint32_t device_id, uint64_t features) {
        GString *s = g_string_new(NULL);

        for (unsigned bit = 0; bit < 64; bit++) {
                const char *name = vdpa_feature_name(device_id, bit);

                if (!(features & (UINT64_C(1) << bit)))
                        continue;
                if (s->len)
                        g_string_append(s, ", ");
                if (name)
                        g_string_append(s, name);
                else
                        g_string_append_printf(s, "feature bit %u", bit);
        }
        return g_string_free(s, FALSE);
}

static bool parse_hex(const char *s, uint64_t *ret) {
        if (!g_str_has_prefix(s, "0x") || !s[2])
                return false;
        return g_ascii_string_to_unsigned(s + 2, 16, 0, UINT64_MAX, ret, NULL);
}

static bool parse_count(const char *s, uint32_t *field) {
        uint64_t v;

        if (*field || !g_ascii_string_to_unsigned(s, 10, 1, UINT32_MAX, &v, NULL))
                return false;
        *field = v;
        return true;
}

static bool parse_mask(const char *s, bool *has, uint64_t *field) {
        if (*has || !parse_hex(s, field))
                return false;
        return *has = true;
}

/* -ENOKEY for a field no version of the text form has, -EINVAL for a bad
 * or repeated one. */
static int parse_field(VdpaFacet *f, const char *key, const char *value) {
        bool ok;

        if (g_str_equal(key, "class"))
                ok = !f->device_id && (f->device_id = vdpa_class_from_string(value)) != 0;
        else if (g_str_equal(key, "offered"))
                ok = parse_mask(value, &f->has_offered, &f->offered);
        else if (g_str_equal(key, "negotiated"))
                ok = parse_mask(value, &f->has_negotiated, &f->negotiated);
        else if (g_str_equal(key, "config"))
                ok = !f->config_any && g_str_equal(value, "any") && (f->config_any = true);
        else if (g_str_equal(key, "mtu"))
                ok = parse_count(value, &f->mtu);
        else if (g_str_equal(key, "vqp"))
                ok = parse_count(value, &f->vqp);
        else if (g_str_equal(key, "blk-size"))
                ok = parse_count(value, &f->blk_size);
        else if (g_str_equal(key, "queues"))
                ok = parse_count(value, &f->queues);
        else if (g_str_equal(key, "legacy")) {
                ok = f->legacy == VDPA_LEGACY_UNKNOWN && (g_str_equal(value, "yes") || g_str_equal(value, "no"));
                if (ok)
                        f->legacy = g_str_equal(value, "yes") ? VDPA_LEGACY_YES : VDPA_LEGACY_NO;
        } else
                return -ENOKEY;
        return ok ? 0 : -EINVAL;
}

int vdpa_facet_parse(const char *text, VdpaFacet *ret, char **ret_error) {
        g_auto(GStrv) fields = NULL;
        VdpaFacet f = {};

        if (strlen(text) > VDPA_FACET_TEXT_MAX)
                return errno_message(ret_error, EINVAL, "vDPA facet longer than %d bytes", VDPA_FACET_TEXT_MAX);
        fields = g_strsplit(text, " ", -1);
        for (char **p = fields; *p; p++) {
                const char *eq = strchr(*p, '=');
                g_autofree char *key = eq ? g_strndup(*p, eq - *p) : NULL;
                int r = key ? parse_field(&f, key, eq + 1) : -EINVAL;

                if (r == -ENOKEY)
                        return errno_message(ret_error, EINVAL, "vDPA facet: unknown field '%s' (known: class, "
                                             "offered, negotiated, config, mtu, vqp, blk-size, queues, legacy)",
                                             key);
                if (r < 0)
                        return errno_message(ret_error, EINVAL, "vDPA facet: '%s' is not a valid field, or "
                                             "repeats one", *p);
                f.known = true;
        }
        if (f.known && !f.device_id)
                return errno_message(ret_error, EINVAL, "vDPA facet: class is missing");
        if (f.has_offered && f.has_negotiated && (f.negotiated & ~f.offered))
                return errno_message(ret_error, EINVAL, "vDPA facet: negotiated features the device does not "
                                     "offer (0x%" PRIx64 ")", f.negotiated & ~f.offered);
        *ret = f;
        return 0;
}

char *vdpa_facet_format(const VdpaFacet *f) {
        g_autofree char *class = NULL;
        GString *s;

        if (!f->known)
                return g_strdup("");
        class = vdpa_class_to_string(f->device_id);
        s = g_string_new(NULL);
        g_string_append_printf(s, "class=%s", class);
        if (f->has_offered)
                g_string_append_printf(s, " offered=0x%" PRIx64, f->offered);
        if (f->has_negotiated)
                g_string_append_printf(s, " negotiated=0x%" PRIx64, f->negotiated);
        if (f->config_any)
                g_string_append(s, " config=any");
        if (f->mtu)
                g_string_append_printf(s, " mtu=%" PRIu32, f->mtu);
        if (f->vqp)
                g_string_append_printf(s, " vqp=%" PRIu32, f->vqp);
        if (f->blk_size)
                g_string_append_printf(s, " blk-size=%" PRIu32, f->blk_size);
        if (f->queues)
                g_string_append_printf(s, " queues=%" PRIu32, f->queues);
        if (f->legacy != VDPA_LEGACY_UNKNOWN)
                g_string_append_printf(s, " legacy=%s", f->legacy == VDPA_LEGACY_YES ? "yes" : "no");
        return g_string_free(s, FALSE);
}

int vdpa_facet_canonicalize(const char *text, char **ret, char **ret_error) {
        VdpaFacet f;
        int r = vdpa_facet_parse(text, &f, ret_error);

        if (r < 0)
                return r;
        *ret = vdpa_facet_format(&f);
        return 0;
}

bool vdpa_facet_required(const VdpaFacet *src, uint64_t *ret) {
        if (src->has_negotiated)
                *ret = src->negotiated;
        else if (src->has_offered)
                *ret = src->offered;
        else
                return false;
        return true;
}

static bool has_bit(uint64_t features, unsigned bit) {
        return features & (UINT64_C(1) << bit);
}

/* A driver that did not negotiate VERSION_1 is legacy; before a driver
 * came, a device that does not offer it can only have legacy ones. */
static bool driver_is_legacy(const VdpaFacet *src, uint64_t required) {
        return (src->has_negotiated || src->has_offered) && !has_bit(required, VIRTIO_F_VERSION_1);
}

static VdpaLegacy serves_legacy(const VdpaFacet *tgt) {
        if (tgt->legacy != VDPA_LEGACY_UNKNOWN)
                return tgt->legacy;
        /* a device that cannot speak 1.0 serves only legacy drivers */
        if (tgt->has_offered && !has_bit(tgt->offered, VIRTIO_F_VERSION_1))
                return VDPA_LEGACY_YES;
        return VDPA_LEGACY_UNKNOWN;
}

typedef struct Findings {
        GPtrArray *fails, *unknowns;
} Findings;

static void note(GPtrArray *list, char *reason) {
        g_ptr_array_add(list, reason);
}

/* A config field the guest read at start-up: tgt must have at least as
 * much (or, exact, the same), unless tgt's config is chosen at creation. */
static void judge_config(Findings *f, const VdpaFacet *tgt, const char *what, uint32_t s, uint32_t t, bool exact) {
        if (!s || tgt->config_any)
                return;
        if (!t)
                note(f->unknowns, g_strdup_printf("the target's %s is not known (source %" PRIu32 ")", what, s));
        else if (exact ? t != s : t < s)
                note(f->fails, g_strdup_printf("target %s %" PRIu32 ", source %" PRIu32, what, t, s));
}

static void judge_features(Findings *f, const VdpaFacet *src, const VdpaFacet *tgt, uint64_t required) {
        g_autofree char *names = NULL;
        uint64_t missing;

        if (!tgt->has_offered) {
                /* a driver negotiates only what its device offered */
                if (tgt->has_negotiated && !(required & ~tgt->negotiated))
                        return;
                note(f->unknowns, g_strdup("the target's features are not known"));
                return;
        }
        missing = required & ~tgt->offered;
        if (!missing)
                return;
        names = vdpa_features_to_names(src->device_id, missing);
        note(f->fails, g_strdup_printf("target lacks %s (the source %s %s)", names,
                                       src->has_negotiated ? "negotiated" : "offers",
                                       __builtin_popcountll(missing) > 1 ? "them" : "it"));
}

static void judge_legacy(Findings *f, const VdpaFacet *src, const VdpaFacet *tgt, uint64_t required) {
        if (!driver_is_legacy(src, required))
                return;
        switch (serves_legacy(tgt)) {
        case VDPA_LEGACY_YES:
                break;
        case VDPA_LEGACY_NO:
                note(f->fails, g_strdup("the source's driver is legacy (no VIRTIO_F_VERSION_1) and the target "
                                        "serves only modern drivers"));
                break;
        case VDPA_LEGACY_UNKNOWN:
                note(f->unknowns, g_strdup("the source's driver is legacy (no VIRTIO_F_VERSION_1) and nothing "
                                           "says whether the target serves legacy drivers"));
                break;
        }
}

static void judge_class_config(Findings *f, const VdpaFacet *src, const VdpaFacet *tgt, uint64_t required) {
        if (src->device_id == VIRTIO_ID_NET) {
                if (has_bit(required, VIRTIO_NET_F_MTU))
                        judge_config(f, tgt, "MTU", src->mtu, tgt->mtu, false);
                if (has_bit(required, VIRTIO_NET_F_MQ))
                        judge_config(f, tgt, "virtqueue pairs", src->vqp, tgt->vqp, false);
        } else if (src->device_id == VIRTIO_ID_BLOCK) {
                if (has_bit(required, VIRTIO_BLK_F_BLK_SIZE))
                        judge_config(f, tgt, "block size", src->blk_size, tgt->blk_size, true);
                if (has_bit(required, VIRTIO_BLK_F_MQ))
                        judge_config(f, tgt, "queues", src->queues, tgt->queues, false);
        }
}

static char *join(GPtrArray *list) {
        g_ptr_array_add(list, NULL);
        return g_strjoinv("; ", (char **) list->pdata);
}

VdpaVerdict vdpa_facet_judge(const VdpaFacet *src, const VdpaFacet *tgt, char **ret_reason) {
        g_autoptr(GPtrArray) fails = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) unknowns = g_ptr_array_new_with_free_func(g_free);
        Findings f = { fails, unknowns };
        uint64_t required;

        if (!src->known || !tgt->known) {
                *ret_reason = g_strdup_printf("nothing is known of the %s's vDPA device",
                                              src->known ? "target" : "source");
                return VDPA_VERDICT_UNKNOWN;
        }
        if (src->device_id != tgt->device_id) {
                g_autofree char *s = vdpa_class_to_string(src->device_id), *t = vdpa_class_to_string(tgt->device_id);

                *ret_reason = g_strdup_printf("target is a vDPA %s device, source %s", t, s);
                return VDPA_VERDICT_INCOMPATIBLE;
        }
        if (!vdpa_facet_required(src, &required)) {
                *ret_reason = g_strdup("the source's features are not known");
                return VDPA_VERDICT_UNKNOWN;
        }
        judge_features(&f, src, tgt, required);
        judge_legacy(&f, src, tgt, required);
        judge_class_config(&f, src, tgt, required);
        if (fails->len) {
                *ret_reason = join(fails);
                return VDPA_VERDICT_INCOMPATIBLE;
        }
        if (unknowns->len) {
                *ret_reason = join(unknowns);
                return VDPA_VERDICT_UNKNOWN;
        }
        *ret_reason = g_strdup_printf("the target offers every feature the source %s",
                                      src->has_negotiated ? "negotiated" : "offers");
        return VDPA_VERDICT_COMPATIBLE;
}
