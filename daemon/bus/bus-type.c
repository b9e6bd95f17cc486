/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>

#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "vfiomig-names.h"

static int property_get_available(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const MdevType *t = userdata;

        return sd_bus_message_append(reply, "u", t->available_instances);
}

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const MdevType *t = userdata;

        return sd_bus_message_append(reply, "s", device_kind_to_string(t->kind));
}

#define STRING_PROPERTY(name, field, flags) \
        SD_BUS_PROPERTY(name, "s", bus_property_get_string, offsetof(MdevType, field), flags)

const sd_bus_vtable bus_type_vtable[] = {
        SD_BUS_VTABLE_START(0),
        STRING_PROPERTY("Id", id, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        STRING_PROPERTY("Parent", parent, SD_BUS_VTABLE_PROPERTY_CONST),
        STRING_PROPERTY("Name", name, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("Description", description, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("DeviceApi", device_api, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("Iommu", iommu, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("Vdpa", vdpa, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("AvailableInstances", "u", property_get_available, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("MigrationType", migration_type, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("MigrationVersion", migration_version, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        STRING_PROPERTY("MigrationBasis", migration_basis, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_VTABLE_END
};

static int find_type(sd_bus *bus, const char *path, const char *interface, void *userdata,
                     void **found, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *key = NULL;
        const MdevType *t;

        if (sd_bus_path_decode(path, VFIOMIG_TYPE_PATH_PREFIX, &key) <= 0)
                return 0;
        t = registry_get_type(c->registry, key);
        if (!t)
                return 0;
        *found = (void *) t;
        return 1;
}

static int enumerate_types(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) types = registry_list_types(c->registry);
        char **l = g_new0(char *, types->len + 1);

        for (guint i = 0; i < types->len; i++)
                l[i] = bus_type_path(((MdevType *) types->pdata[i])->key);
        *nodes = l;
        return 0;
}

int bus_type_register(BusContext *c) {
        int r;

        r = sd_bus_add_fallback_vtable(c->bus, NULL, VFIOMIG_TYPE_PATH_PREFIX, VFIOMIG_TYPE_INTERFACE,
                                       bus_type_vtable, find_type, c);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(c->bus, NULL, VFIOMIG_TYPE_PATH_PREFIX, enumerate_types, c);
}
