/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "manager.h"

/* The vtables of the org.vfiomig1 interfaces, and their registration. */

extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_device_vtable[];
extern const sd_bus_vtable bus_type_vtable[];
extern const sd_bus_vtable bus_migration_vtable[];
extern const sd_bus_vtable bus_testbed_vtable[];

int bus_manager_register(Manager *m);
int bus_device_register(Manager *m);
int bus_type_register(Manager *m);
int bus_migration_register(Manager *m);
int bus_testbed_register(Manager *m);

/* Manager methods that start migrations (bus-migration.c). */
int bus_method_migrate(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_save(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_load(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_save_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_load_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_resume(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_list_migrations(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* Manager methods of the compatibility map (bus-compat.c). */
int bus_method_get_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_compatibility(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_find_targets(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_probe(sd_bus_message *msg, void *userdata, sd_bus_error *error);

struct Migration;
/* The MigrationEvents (migration.h) the manager installs: */
/* PropertiesChanged and ProgressUpdate of a job; final: its last word. */
void bus_migration_emit_changed(Manager *m, struct Migration *j, bool final);
/* MigrationRemoved(id, path, result): the job ended; its object stays
 * for a while with the outcome. */
void bus_migration_emit_removed(Manager *m, struct Migration *j);
/* InterfacesRemoved: the ended job's object goes away. */
void bus_migration_emit_forgotten(Manager *m, struct Migration *j);

/* Turns registry changes into InterfacesAdded/Removed, PropertiesChanged
 * and the Manager's DeviceAdded/DeviceRemoved signals. */
void bus_registry_notify(Registry *r, RegistryEvent event, const void *object, void *userdata);

/* Writes the introspection XML of all org.vfiomig1 interfaces. */
int bus_introspect_to_file(const char *path);

int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
