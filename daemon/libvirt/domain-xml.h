/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "registry.h"

/* libvirt domain XML, pure: what vfiomigd reads from a domain (name,
 * UUID, the mdev and PCI hostdevs, its own metadata) and the edits it
 * makes (the metadata element, a PCI hostdev's source address). No I/O,
 * no libvirt calls; the input may be hostile (a hook's stdin).
 *
 * Parsing refuses a document over DOMAIN_XML_MAX bytes and any DOCTYPE
 * (libvirt writes none; it is where entities would be declared), never
 * substitutes entities, loads no DTD and touches no network or file.
 * Every function returns -errno and sets *error (required) to a message
 * on failure: -EFBIG too large, -EBADMSG not XML or not a domain as
 * described here, -EINVAL a bad argument, -ELIBACC libxml2 cannot be
 * loaded (xml-api.h; the message names it and says why). */

#define DOMAIN_XML_MAX (4U * 1024U * 1024U)

/* vfiomig's metadata element: the uri and key of virDomainSetMetadata()
 * (the key becomes the element's prefix in the domain XML). */
#define DOMAIN_XML_NS_URI "urn:vfiomig:domain:1"
#define DOMAIN_XML_NS_KEY "vfiomig"

typedef struct DomainHostdev {
        DeviceKind kind;        /* MDEV or PCI */
        char *key;              /* the mdev UUID or PCI address, as names.c normalizes it */
        char *model;            /* mdev: "vfio-pci", "vfio-ccw", ...; "" when absent or PCI */
} DomainHostdev;

/* One hostdev's migration identity as vfiomigd records it with the
 * domain (see compat.h for type, version and basis). */
typedef struct DomainDeviceMeta {
        char *key;              /* the hostdev's key */
        char *migration_type;
        char *migration_version;        /* "" for type-match */
        char *basis;            /* a word: "vendor", "rule", ... */
        uint32_t flags;         /* VFIO_MIGRATION_* */
        char *mdev_type;        /* type id, "" for PCI */
        char *parent;           /* mdev parent, "" when none */
        char *iommu;            /* IOMMU facet, canonical (iommu-facet.h); "" when not stated */
} DomainDeviceMeta;

DomainDeviceMeta *domain_device_meta_new(const char *key, const char *migration_type,
                                         const char *migration_version, const char *basis,
                                         uint32_t flags, const char *mdev_type, const char *parent);
void domain_device_meta_free(DomainDeviceMeta *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainDeviceMeta, domain_device_meta_free);
/* An empty list of DomainDeviceMeta that frees its entries. */
GPtrArray *domain_metadata_new(void);

typedef struct DomainInfo {
        char *name;
        char *uuid;             /* lower case */
        GPtrArray *hostdevs;    /* DomainHostdev, in document order */
        /* DomainDeviceMeta sorted by key; NULL when the domain has no
         * vfiomig element, or an unusable one (then metadata_error says
         * why: the hostdevs are still good, and the element is ours to
         * rewrite). */
        GPtrArray *metadata;
        char *metadata_error;
} DomainInfo;

void domain_info_free(DomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainInfo, domain_info_free);

/* A <domain> document: name and uuid are required, as is the source
 * address of every mdev and PCI hostdev (a domain holding a device we
 * cannot name must not look as if it held none). Hostdevs of other
 * types are skipped. */
int domain_xml_parse(const char *xml, size_t len, DomainInfo **ret, char **error);

/* The element to hand to virDomainSetMetadata(VIR_DOMAIN_METADATA_ELEMENT,
 * DOMAIN_XML_NS_KEY, DOMAIN_XML_NS_URI): entries sorted by key, with no
 * namespace of its own (libvirt 9.0 refuses one that declares the
 * prefix it is about to add). Entries must be valid and keys unique. */
int domain_xml_metadata_format(const GPtrArray *entries, char **ret, char **error);
/* The element as virDomainGetMetadata() returns it (or as formatted). */
int domain_xml_metadata_parse(const char *xml, size_t len, GPtrArray **ret, char **error);
/* Whether current (NULL: none) already says what wanted does, so that
 * the daemon writes metadata only when it changes. Order does not
 * matter. */
bool domain_metadata_equal(const GPtrArray *current, const GPtrArray *wanted);

/* xml with the source address of the PCI hostdev at old_addr changed to
 * new_addr, and nothing else: the whole document serialized again, its
 * XML declaration kept or left out as it was. -ENOENT: no such hostdev;
 * -EEXIST: new_addr is another hostdev's already. */
int domain_xml_set_pci_source(const char *xml, size_t len, const char *old_addr, const char *new_addr,
                              char **ret_xml, char **error);
