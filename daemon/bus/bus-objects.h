/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/identities.h"
#include "libvirt/domains.h"
#include "libvirt/prepare.h"
#include "migration/jobs.h"
#include "bus/polkit.h"
#include "migration/probe.h"
#include "registry.h"

/* What the D-Bus objects serve and use. The manager fills it in and
 * keeps it, and all it points to, for as long as the bus lives; every
 * vtable's userdata is this. */
typedef struct BusContext {
        sd_bus *bus;
        sd_event *event;
        PolkitRegistry *polkit;
        Registry *registry;
        Backend *backend;
        Jobs *jobs;
        Probes *probes;
        ProbeCache *probe_cache;        /* the probe results behind Probes' verdicts */
        IdentitySync *identities;
        Domains *domains;
        Preparer *preparer;
        const char *state_dir;          /* saved states */
} BusContext;

/* The vtables of the org.vfiomig1 interfaces, and their registration. */

extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_device_vtable[];
extern const sd_bus_vtable bus_type_vtable[];
extern const sd_bus_vtable bus_migration_vtable[];
extern const sd_bus_vtable bus_testbed_vtable[];

int bus_manager_register(BusContext *c);
int bus_device_register(BusContext *c);
int bus_type_register(BusContext *c);
/* Also installs how jobs report to the bus: PropertiesChanged and
 * ProgressUpdate of a job, MigrationRemoved(id, path, result) when it
 * ends (its object stays for a while with the outcome), and
 * InterfacesRemoved when the ended job is forgotten. */
int bus_migration_register(BusContext *c);
int bus_testbed_register(BusContext *c);

/* Manager methods that start migrations (bus-migration.c). */
int bus_method_migrate(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_save(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_load(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_save_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_load_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_resume(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_list_migrations(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* ... and of the saved-state store. */
int bus_method_list_states(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_remove_state(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* Manager methods of the compatibility map (bus-compat.c). */
int bus_method_get_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_get_identity_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_compatibility(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_identity(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_check_identity_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_find_targets(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_find_targets_ex(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_probe(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_list_probes(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_forget_probe(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_forget_all_probes(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* Manager methods about libvirt domains (bus-domain.c). */
int bus_method_get_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_prepare_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_release_domain(sd_bus_message *msg, void *userdata, sd_bus_error *error);



/* Turns registry changes into InterfacesAdded/Removed, PropertiesChanged
 * and the Manager's DeviceAdded/DeviceRemoved signals. */
void bus_registry_notify(Registry *r, RegistryEvent event, const void *object, void *userdata);

/* Writes the introspection XML of all org.vfiomig1 interfaces. */
int bus_introspect_to_file(const char *path);

int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
