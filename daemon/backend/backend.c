/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <unistd.h>

#include "backend/backend.h"
#include "backend/holders.h"
#include "iommu-facet.h"
#include "log.h"
#include "util.h"
#include "vfio-uapi.h"

void backend_init(Backend *b, const BackendOps *ops, Registry *r) {
        b->ops = ops;
        b->registry = r;
        b->flag_cache = flag_cache_new();
}

void backend_free(Backend *b) {
        if (!b)
                return;
        flag_cache_free(g_steal_pointer(&b->flag_cache));
        b->ops->free(b);
}

void backend_add_device(Backend *b, Device *d) {
        if (d->migration_support == MIGRATION_SUPPORT_UNKNOWN)
                flag_cache_add(b->flag_cache, d);
        else
                (void) flag_cache_remove(b->flag_cache, d->name);
        registry_add_device(b->registry, d);
}

void backend_rebind_device(Backend *b, Device *d) {
        (void) flag_cache_remove(b->flag_cache, d->name);
        /* or the registry would keep what it had for the same driver */
        registry_set_device_migration(b->registry, d->name, MIGRATION_SUPPORT_UNKNOWN, 0);
        backend_add_device(b, d);
}

bool backend_remove_device(Backend *b, const char *name) {
        (void) flag_cache_remove(b->flag_cache, name);
        return registry_remove_device(b->registry, name);
}

int backend_learn_migration(Backend *b, const char *name, DeviceHandle *h, MigrationSupport *ret_support,
                            uint32_t *ret_flags) {
        g_auto(GStrv) siblings = NULL;
        MigrationSupport support;
        uint32_t flags = 0;
        int r;

        r = h->ops->get_flags(h, &flags);
        if (r < 0 && r != -ENOTTY)
                return r;
        support = r >= 0 && (flags & VFIO_MIGRATION_STOP_COPY) ? MIGRATION_SUPPORT_SUPPORTED : MIGRATION_SUPPORT_NONE;
        siblings = flag_cache_learn(b->flag_cache, name, support, flags);
        registry_set_device_migration(b->registry, name, support, flags);
        for (char **s = siblings; s && *s; s++)
                registry_set_device_migration(b->registry, *s, support, flags);
        if (ret_support)
                *ret_support = support;
        if (ret_flags)
                *ret_flags = flags;
        return 0;
}

char *backend_find_holder(Backend *b, const char *name) {
        const Device *d = registry_get_device(b->registry, name);
        g_autofree char *group = NULL, *held_by = NULL;
        g_auto(Holder) h = {};

        if (!d)
                return g_strdup("");
        group = *d->iommu_group ? g_strconcat("/dev/vfio/", d->iommu_group, NULL) : g_strdup("");
        if (holders_find("/proc", (const char *[]) { group, d->vfio_dev, NULL }, getpid(), &h) >= 0)
                held_by = holder_describe(&h, d->domain);
        registry_set_device_held_by(b->registry, name, held_by);
        return device_describe_holder(registry_get_device(b->registry, name));
}

/* What the kernel said of the IOMMU while the device was open outranks
 * what sysfs let us derive at enumeration; the dirty field stays sysfs's
 * (the container does not say). An mdev's group has no IOMMU domain of
 * its own: its container says nothing about its parent's IOMMU. */
static void learn_iommu(Backend *b, const char *name, const char *kernel) {
        const Device *d = registry_get_device(b->registry, name);
        g_autofree char *merged = NULL;
        IommuFacet sysfs, k;

        if (!kernel || !d || d->kind != DEVICE_KIND_PCI || iommu_facet_parse(kernel, &k, NULL) < 0 ||
            iommu_facet_parse(d->iommu, &sysfs, NULL) < 0)
                return;
        k.dirty = sysfs.dirty;
        merged = iommu_facet_format(&k);
        if (g_str_equal(merged, d->iommu)) {
                log_debug("%s: the kernel's IOMMU agrees with sysfs: %s", name, merged);
                return;
        }
        log_notice("%s: the kernel's IOMMU (%s) is not what sysfs said (%s); taking the kernel's", name, merged,
                   *d->iommu ? d->iommu : "nothing");
        registry_set_device_iommu(b->registry, name, merged);
}

int backend_open_device(Backend *b, const Device *d, DeviceHandle **ret, char **ret_error) {
        g_autofree char *name = g_strdup(d->name), *holder = NULL;
        int r;

        if (d->kind == DEVICE_KIND_VDPA)
                return errno_message(ret_error, EOPNOTSUPP, "%s is a vDPA device: it has no VFIO device to open, "
                                     "and no VFIO migration", name);
        r = b->ops->open_device(b, d, ret, ret_error);

        if (r >= 0) {
                registry_set_device_held_by(b->registry, name, NULL);
                learn_iommu(b, name, (*ret)->iommu);
                return r;
        }
        if (r != -EBUSY)
                return r;
        holder = backend_find_holder(b, name);
        if (*holder && ret_error) {
                g_free(*ret_error);
                *ret_error = g_strdup_printf("%s is held by %s", name, holder);
        }
        return r;
}
