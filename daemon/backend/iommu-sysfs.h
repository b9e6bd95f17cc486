/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The IOMMU facet (iommu-facet.h) of a device, read from sysfs without
 * opening anything: the width, page sizes and dirty tracking from the
 * IOMMU unit its "iommu" link names (Intel VT-d's cap and ecap
 * registers), the valid IOVA ranges from that width and its group's
 * reserved_regions. The same numbers VFIO_IOMMU_GET_INFO gives on a
 * free group (the VM tier compares them), but enumeration must never
 * open a group: someone else may be about to. */

/* -ENOENT: no IOMMU translates for the device (no "iommu" link), which
 * for an mdev's parent means the mdev has none of its own. Otherwise 0
 * and the canonical text, "" for an IOMMU whose registers we cannot
 * read. */
int iommu_sysfs_facet(const char *syspath, char **ret);

/* An mdev's: its parent's, or "none" for a parent no IOMMU serves. */
char *iommu_sysfs_mdev_facet(const char *parent_syspath);
