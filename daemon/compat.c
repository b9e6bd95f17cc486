/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "compat.h"

char *compat_migration_type(const Device *d) {
        if (d->kind == DEVICE_KIND_MDEV)
                return g_strdup(d->mdev_type);
        return g_strdup_printf("vfio-pci:%s:%s:%s:%s:%s", d->driver, d->vendor_id, d->device_id,
                               d->subsystem_vendor_id, d->subsystem_device_id);
}

char *compat_check_stream(const char *migration_type, const Device *target) {
        g_autofree char *tt = compat_migration_type(target);

        if (g_str_equal(migration_type, tt))
                return NULL;
        return g_strdup_printf("state of a %s device cannot go into %s, a %s device", migration_type,
                               target->name, tt);
}

char *compat_check(const Device *source, const Device *target) {
        g_autofree char *st = compat_migration_type(source);

        return compat_check_stream(st, target);
}
