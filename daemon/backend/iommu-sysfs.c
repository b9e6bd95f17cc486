/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <unistd.h>

#include <glib.h>

#include "backend/iommu-sysfs.h"
#include "iommu-facet.h"
#include "log.h"
#include "util.h"

#define IOMMU_GROUPS "/sys/kernel/iommu_groups"

static int read_hex(const char *dir, const char *attr, uint64_t *ret) {
        g_autofree char *s = NULL;
        int r = sysfs_read(dir, attr, &s);

        if (r < 0)
                return r;
        return g_ascii_string_to_unsigned(s, 16, 0, UINT64_MAX, ret, NULL) ? 0 : -EBADMSG;
}

static int read_vtd(const char *unit, IommuFacet *f) {
        g_autofree char *regs = g_build_filename(unit, "intel-iommu", NULL);
        uint64_t cap, ecap;
        int r;

        r = read_hex(regs, "cap", &cap);
        if (r >= 0)
                r = read_hex(regs, "ecap", &ecap);
        if (r < 0)
                return r;
        iommu_facet_from_vtd(f, cap, ecap);
        return 0;
}

int iommu_sysfs_facet(const char *syspath, char **ret) {
        g_autofree char *unit = g_build_filename(syspath, "iommu", NULL), *group = NULL, *group_dir = NULL,
                        *reserved = NULL;
        IommuFacet f = {};
        int r;

        if (access(unit, F_OK) < 0)
                return -ENOENT;
        /* AMD, ARM SMMU, virtio-iommu: not read yet, so not known */
        if (read_vtd(unit, &f) < 0) {
                *ret = g_strdup("");
                return 0;
        }
        if (sysfs_link_basename(syspath, "iommu_group", &group) >= 0) {
                group_dir = g_build_filename(IOMMU_GROUPS, group, NULL);
                (void) sysfs_read(group_dir, "reserved_regions", &reserved);
        }
        /* Without the group's reserved regions the ranges stay unknown:
         * guessing "all of it" would promise what the host may not map. */
        r = reserved ? iommu_facet_set_ranges(&f, f.width, reserved) : 0;
        if (r < 0)
                log_warning_errno(r, "%s: cannot read the IOMMU group's reserved regions: %m", syspath);
        *ret = iommu_facet_format(&f);
        return 0;
}

char *iommu_sysfs_mdev_facet(const char *parent_syspath) {
        char *text = NULL;

        if (iommu_sysfs_facet(parent_syspath, &text) == -ENOENT)
                return g_strdup("none");
        return text;
}
