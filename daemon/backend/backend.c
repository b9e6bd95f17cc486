/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <unistd.h>

#include "backend/backend.h"
#include "backend/holders.h"

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

int backend_open_device(Backend *b, const Device *d, DeviceHandle **ret, char **ret_error) {
        g_autofree char *name = g_strdup(d->name), *holder = NULL;
        int r = b->ops->open_device(b, d, ret, ret_error);

        if (r >= 0) {
                registry_set_device_held_by(b->registry, name, NULL);
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
