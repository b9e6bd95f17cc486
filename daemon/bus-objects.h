/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "manager.h"

/* The vtables of the org.vfiomig1 interfaces, and their registration. */

extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_device_vtable[];
extern const sd_bus_vtable bus_type_vtable[];

int bus_manager_register(Manager *m);
int bus_device_register(Manager *m);
int bus_type_register(Manager *m);

/* Turns registry changes into InterfacesAdded/Removed, PropertiesChanged
 * and the Manager's DeviceAdded/DeviceRemoved signals. */
void bus_registry_notify(Registry *r, RegistryEvent event, const void *object, void *userdata);

/* Writes the introspection XML of all org.vfiomig1 interfaces. */
int bus_introspect_to_file(const char *path);

int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
