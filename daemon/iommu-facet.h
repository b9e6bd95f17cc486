/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* The IOMMU behind a device, as a guest given that device can observe
 * it: which IOVAs it may map, with which page sizes, and whether the
 * IOMMU tracks DMA writes (what a VMM needs to migrate with the device
 * running). One facet of a migration identity: a guest that was given a
 * 48-bit IOVA space cannot continue on a host whose IOMMU maps 39.
 *
 * The text form is the API (Device.Iommu, identities, stream headers,
 * domain metadata), one canonical spelling per facet:
 *
 *   ""       not known (no IOMMU seen, or nobody said)
 *   "none"   no IOMMU translation of its own: an mdev of a virtual parent
 *   "width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no"
 *
 * Fields in that order, each optional (absent: not known); ranges are
 * inclusive, sorted and disjoint, within the width. Pure: no I/O. */

#define IOMMU_FACET_MAX_RANGES 64
#define IOMMU_FACET_TEXT_MAX 2048

typedef enum IommuDirty {
        IOMMU_DIRTY_UNKNOWN,
        IOMMU_DIRTY_NO,
        IOMMU_DIRTY_YES,
} IommuDirty;

typedef struct IommuRange {
        uint64_t start, end;    /* inclusive */
} IommuRange;

typedef struct IommuFacet {
        bool known;             /* false: "" */
        bool none;              /* "none" */
        unsigned width;         /* bits; 0 unknown */
        unsigned n_ranges;      /* 0 unknown */
        IommuRange ranges[IOMMU_FACET_MAX_RANGES];
        uint64_t pgsizes;       /* bitmap of page sizes; 0 unknown */
        IommuDirty dirty;
} IommuFacet;

/* Parses the text form; -EINVAL with *ret_error naming the field. */
int iommu_facet_parse(const char *text, IommuFacet *ret, char **ret_error);
/* The canonical text form. */
char *iommu_facet_format(const IommuFacet *f);
/* Parses and formats again: the spelling identities compare. */
int iommu_facet_canonicalize(const char *text, char **ret, char **ret_error);

/* The valid IOVA ranges of an IOMMU with this width (bits), with the
 * group's reserved regions taken out. reserved_regions is the text of
 * /sys/kernel/iommu_groups/N/reserved_regions ("START END TYPE" lines);
 * "direct-relaxable" regions stay mappable, as VFIO leaves them. */
int iommu_facet_set_ranges(IommuFacet *f, unsigned width, const char *reserved_regions);

/* Width, page sizes and dirty tracking from an Intel VT-d unit's cap and
 * ecap registers (/sys/class/iommu/dmarN/intel-iommu/{cap,ecap}). */
void iommu_facet_from_vtd(IommuFacet *f, uint64_t cap, uint64_t ecap);

/* Width, IOVA ranges and page sizes from what VFIO_IOMMU_GET_INFO
 * returned for a Type1 container (struct vfio_iommu_type1_info and its
 * capability chain, len bytes); the dirty field is left as it was: the
 * container's dirty bitmap is software tracking any Type1 host offers,
 * not the IOMMU's. -EBADMSG for a buffer that does not parse. */
int iommu_facet_from_type1_info(IommuFacet *f, const void *info, size_t len);

typedef enum IommuVerdict {
        IOMMU_VERDICT_COMPATIBLE,
        IOMMU_VERDICT_INCOMPATIBLE,
        IOMMU_VERDICT_UNKNOWN,
} IommuVerdict;

/* Whether a guest that had src's IOMMU can continue behind tgt's: tgt
 * must map every IOVA src mapped, with every page size src had, and
 * track dirty pages if src did. A source that states nothing, or "none",
 * asks nothing of the target. *ret_reason names both numbers of every
 * field that fails ("target IOMMU maps 39 bits, source 48"), or of the
 * first field that cannot be judged. */
IommuVerdict iommu_facet_judge(const IommuFacet *src, const IommuFacet *tgt, char **ret_reason);
