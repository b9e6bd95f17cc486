/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* A vDPA device as a guest's virtio driver sees it: its class, the
 * feature bits it offers, the subset a driver negotiated, and the config
 * fields a guest keeps using (for net the MTU and the number of virtqueue
 * pairs; the MAC is an address, not an identity). One facet of a
 * migration identity: a guest that negotiated VIRTIO_NET_F_MRG_RXBUF
 * cannot continue on a device that does not offer it.
 *
 * The text form is the API (Device.Vdpa, identities, domain metadata),
 * one canonical spelling per facet:
 *
 *   ""  not a vDPA device, or nothing known
 *   "class=net offered=0x300018020 negotiated=0x300008020 mtu=9000 vqp=1 legacy=no"
 *   "class=net offered=0x3f00ffff config=any"  (a management device: the
 *                                               config is chosen at creation)
 *
 * Fields in that order; class is required, the rest optional (absent:
 * not known). Classes are virtio device names ("net", "blk", ...) or
 * "virtio-N" for others; features are hex bit masks. legacy says whether
 * the device serves a driver that does not negotiate VIRTIO_F_VERSION_1.
 * Pure: no I/O. */

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_MQ 12

typedef enum VdpaLegacy {
        VDPA_LEGACY_UNKNOWN,
        VDPA_LEGACY_NO,
        VDPA_LEGACY_YES,
} VdpaLegacy;

typedef struct VdpaFacet {
        bool known;             /* false: "" */
        uint32_t device_id;     /* virtio device id; 0 unknown */
        bool has_offered, has_negotiated;
        uint64_t offered, negotiated;
        bool config_any;        /* a management device: config chosen at creation */
        uint32_t mtu, vqp;      /* net; 0 not stated */
        uint32_t blk_size, queues;      /* blk; 0 not stated */
        VdpaLegacy legacy;
} VdpaFacet;

/* "net", "blk", ... or "virtio-N". */
char *vdpa_class_to_string(uint32_t device_id);
/* 0 for a string that names no class. */
uint32_t vdpa_class_from_string(const char *s);

/* A feature bit's virtio name for this class ("VIRTIO_NET_F_MRG_RXBUF",
 * "VIRTIO_F_VERSION_1"), or NULL when the spec names none. */
const char *vdpa_feature_name(uint32_t device_id, unsigned bit);
/* "VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF, feature bit 50". */
char *vdpa_features_to_names(uint32_t device_id, uint64_t features);

int vdpa_facet_parse(const char *text, VdpaFacet *ret, char **ret_error);
char *vdpa_facet_format(const VdpaFacet *f);
int vdpa_facet_canonicalize(const char *text, char **ret, char **ret_error);

/* What a guest on src has come to rely on: the negotiated features, or
 * before any negotiation every feature src offers. false if neither is
 * known. */
bool vdpa_facet_required(const VdpaFacet *src, uint64_t *ret);

typedef enum VdpaVerdict {
        VDPA_VERDICT_COMPATIBLE,
        VDPA_VERDICT_INCOMPATIBLE,
        VDPA_VERDICT_UNKNOWN,
} VdpaVerdict;

/* Whether a guest driving src can continue on tgt: same class; tgt
 * offers every required feature; serves a legacy driver if src's is
 * one; and keeps the config the guest uses (MTU and virtqueue pairs no
 * smaller, the same block size). *ret_reason names every missing feature
 * by its virtio name and both numbers of every config field that fails,
 * or what could not be judged. */
VdpaVerdict vdpa_facet_judge(const VdpaFacet *src, const VdpaFacet *tgt, char **ret_reason);
