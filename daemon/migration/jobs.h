/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "migration/migration.h"
#include "registry.h"
#include "util.h"

/* The daemon's migration jobs: running ones, and ended ones whose
 * outcome stays queryable for MIGRATION_RETAIN_USEC, or while among the
 * last MIGRATION_RETAIN_JOBS. Ids stay unique across restarts of the
 * daemon: the last one given out is kept in the runtime directory. */

typedef struct Jobs Jobs;

/* Installed by whoever publishes jobs (the bus), called on the main
 * thread. */
typedef struct MigrationEvents {
        /* Phase, progress, a device's state or outcome changed; final:
         * the job's last word. */
        void (*changed)(void *userdata, Migration *j, bool final);
        /* The job ended: it leaves the list of running jobs; its object
         * stays for a while with the outcome. */
        void (*ended)(void *userdata, Migration *j);
        /* The ended job is forgotten, just before it is freed. */
        void (*forgotten)(void *userdata, Migration *j);
} MigrationEvents;

#define MIGRATION_RETAIN_USEC (10 * 60 * USEC_PER_SEC)
#define MIGRATION_RETAIN_JOBS 64

/* Devices come from the registry and are opened through the backend,
 * verdicts come from the map (which the identities keep). */
int jobs_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, const char *runtime_dir,
             const char *state_dir, Jobs **ret);
/* Running jobs are cancelled and roll back before it returns. */
void jobs_free(Jobs *t);
void jobs_set_events(Jobs *t, const MigrationEvents *events, void *userdata);
unsigned jobs_running(Jobs *t);

/* Checks and starts a job (migration_prepare() says what fails how) and
 * gives it the next id. */
int jobs_start(Jobs *t, const MigrationRequest *req, const char *owner, Migration **ret, char **ret_error);
/* A running job or one that ended lately. */
Migration *jobs_lookup(Jobs *t, uint32_t id);
/* A running job that writes or reads the saved state name, or NULL. */
Migration *jobs_find_state_user(Jobs *t, const char *name);
/* Running jobs, and with ended, the ended ones kept; by id. */
GPtrArray *jobs_list(Jobs *t, bool ended);
