/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <string.h>

#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "util.h"
#include "vfiomig-names.h"

/* Property getters receive the Device found by find_device(), plus the
 * vtable entry's offset: the generic string getter reads *(char **).
 * GetManagedObjects calls them for every device: they make nothing. */
int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const char *const *s = userdata;

        return bus_append_string(reply, *s ? *s : "");
}

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Device *d = userdata;

        return bus_append_string(reply, device_kind_to_string(d->kind));
}

static int property_get_migration_flags(sd_bus *bus, const char *path, const char *interface,
                                        const char *property, sd_bus_message *reply, void *userdata,
                                        sd_bus_error *error) {
        const Device *d = userdata;
        const char *text = migration_flags_text(d->migration_flags);
        int r = sd_bus_message_open_container(reply, 'a', "s");

        /* "stop-copy,p2p" from the table, cut at its commas */
        while (r >= 0 && *text) {
                size_t len = strcspn(text, ",");
                char *p;

                r = sd_bus_message_append_string_space(reply, len, &p);
                if (r >= 0)
                        memcpy(p, text, len);
                text += len + (text[len] == ',');
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_get_migration_support(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *reply, void *userdata,
                                          sd_bus_error *error) {
        const Device *d = userdata;

        return bus_append_string(reply, migration_support_to_string(d->migration_support));
}

static int property_get_busy(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const Device *d = userdata;

        return sd_bus_message_append(reply, "b", device_is_held(d));
}

static int property_get_holder(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_autofree char *holder = NULL;

        if (!device_is_held(userdata))
                return bus_append_string(reply, "");
        holder = device_describe_holder(userdata);
        return bus_append_string(reply, holder);
}

#define STRING_PROPERTY(name, field) \
        SD_BUS_PROPERTY(name, "s", bus_property_get_string, offsetof(Device, field), \
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

const sd_bus_vtable bus_device_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", bus_property_get_string, offsetof(Device, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        STRING_PROPERTY("SysfsPath", sysfs_path),
        STRING_PROPERTY("Driver", driver),
        STRING_PROPERTY("Parent", parent),
        STRING_PROPERTY("MdevType", mdev_type),
        STRING_PROPERTY("IommuGroup", iommu_group),
        STRING_PROPERTY("VfioDevNode", vfio_dev),
        STRING_PROPERTY("Iommu", iommu),
        STRING_PROPERTY("Vdpa", vdpa),
        SD_BUS_PROPERTY("MigrationSupport", "s", property_get_migration_support, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MigrationFlags", "as", property_get_migration_flags, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("MigrationType", migration_type),
        STRING_PROPERTY("MigrationVersion", migration_version),
        STRING_PROPERTY("MigrationBasis", migration_basis),
        STRING_PROPERTY("MigrationState", migration_state),
        SD_BUS_PROPERTY("Busy", "b", property_get_busy, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("Domain", domain),
        SD_BUS_PROPERTY("Holder", "s", property_get_holder, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END
};

static int find_device(sd_bus *bus, const char *path, const char *interface, void *userdata,
                       void **found, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *name = NULL;
        const Device *d;

        if (sd_bus_path_decode(path, VFIOMIG_DEVICE_PATH_PREFIX, &name) <= 0)
                return 0;
        d = registry_get_device(c->registry, name);
        if (!d)
                return 0;
        *found = (void *) d;
        return 1;
}

static int enumerate_devices(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) devices = registry_list_devices(c->registry);
        char **l = g_new0(char *, devices->len + 1);

        for (guint i = 0; i < devices->len; i++)
                l[i] = bus_device_path(((Device *) devices->pdata[i])->name);
        *nodes = l;
        return 0;
}

int bus_device_register(BusContext *c) {
        int r;

        r = sd_bus_add_fallback_vtable(c->bus, NULL, VFIOMIG_DEVICE_PATH_PREFIX, VFIOMIG_DEVICE_INTERFACE,
                                       bus_device_vtable, find_device, c);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(c->bus, NULL, VFIOMIG_DEVICE_PATH_PREFIX, enumerate_devices, c);
}
