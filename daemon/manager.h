/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "polkit.h"
#include "registry.h"
#include "backend.h"

/* The daemon's one context: the loop, the bus, the model and where the
 * model comes from. Everything the D-Bus callbacks need hangs off it. */
typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        Registry *registry;
        Backend *backend;
        PolkitRegistry *polkit;

        GHashTable *migrations;         /* id -> Migration, running jobs */
        GHashTable *finished;           /* id -> Migration, kept for clients that ask late */
        GQueue *finished_order;         /* the same, oldest first */
        sd_event_source *retire_timer;
        uint32_t last_migration_id;     /* kept in the runtime directory across restarts */
        const struct MigrationEvents *migration_events; /* how jobs report to the bus */
        struct Rules *rules;
        struct CompatMap *compat;       /* the compatibility map */
        struct ProbeCache *probes;
        struct IdentitySync *identities;        /* keeps identities and the map in step with the registry */
        GList *running_probes;          /* Probe, until it has replied */
        char **rules_dirs;              /* NULL: the defaults */
        uint64_t compat_build_usec;

        char *runtime_dir;              /* journal of in-flight jobs, testbed device state */
        char *state_dir;                /* saved states */

        uint64_t idle_timeout_usec;     /* 0: never exit on idle */
        uint64_t last_activity_usec;
        sd_event_source *idle_timer;
} Manager;

typedef struct ManagerOptions {
        const char *testbed;            /* NULL: kernel; "default" or a file */
        uint64_t idle_timeout_usec;
        char **rules_dirs;              /* NULL: the defaults */
} ManagerOptions;

int manager_new(const ManagerOptions *o, Manager **ret);
void manager_free(Manager *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free);

/* Connects to the system bus, exports the objects, takes the name. */
int manager_start(Manager *m);
bool manager_is_idle(Manager *m);
