/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "registry.h"
#include "util.h"
#include "migration/worker.h"

/* Migration jobs (migrate, save, load) as the daemon keeps them: the
 * checks before a job starts, its worker thread (worker.h does the
 * work), its id, and the outcome of an ended job, kept for a while.
 *
 * The worker reports through its lock and an eventfd that wakes the main
 * loop; the main loop mirrors device states into the registry, answers
 * the worker's compatibility question from the map, and tells whoever
 * installed MigrationEvents (the bus) about the job. Nothing here knows
 * D-Bus: errors are -errno with a message, the errno being the one whose
 * D-Bus error fits (the errno table of the bus code). */

typedef struct Migration Migration;
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

/* The jobs of the daemon and what they use: devices come from the
 * registry and are opened through the backend, verdicts from the map
 * (which the identities keep). Ids stay unique across restarts of the
 * daemon: the last one given out is kept in runtime_dir. */
int jobs_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, const char *runtime_dir,
             const char *state_dir, Jobs **ret);
/* Running jobs are cancelled and roll back before it returns. */
void jobs_free(Jobs *t);
void jobs_set_events(Jobs *t, const MigrationEvents *events, void *userdata);
unsigned jobs_running(Jobs *t);

typedef struct MigrationRequest {
        MigrationKind kind;
        char **sources, **targets;      /* device names, normalized */
        int stream_fd;                  /* save, load: borrowed */
        const char *stream_label;
        const char *final_path;         /* save by name: renamed into place when complete */
        bool overwrite;
        MigrationOptions options;
} MigrationRequest;

/* Checks the request against the registry and the map, opens the
 * devices and starts the worker. Errors name the device and the cause:
 * -ENODEV (no such device), -EBUSY (held, or in the wrong state),
 * -EOPNOTSUPP (cannot migrate, no P2P), -EPROTONOSUPPORT (incompatible),
 * -EINVAL, -EIO. */
int migration_start(Jobs *t, const MigrationRequest *req, const char *owner, Migration **ret, char **ret_error);
/* -EBUSY once the job is past the point of no return (the targets hold
 * the state, or the stream is complete), or has ended. */
int migration_cancel(Migration *j, const char *who);
void migration_free(Migration *j);

/* What never changes. */
uint32_t migration_get_id(Migration *j);
MigrationKind migration_get_kind(Migration *j);
const char *migration_get_path(Migration *j);
const char *migration_get_owner(Migration *j);
const char *migration_get_source_label(Migration *j);
const char *migration_get_target_label(Migration *j);
/* What jobs_set_events() was given: whoever publishes the job. */
void *migration_get_events_userdata(Migration *j);
/* The job has ended (its object stays for a while). */
bool migration_has_ended(Migration *j);

/* Thread-safe copies of what the worker reports. */
MigrationPhase migration_get_phase(Migration *j);
void migration_snapshot(Migration *j, MigrationSnapshot *ret);

/* A running job (ListMigrations) or one that ended lately: its outcome
 * stays queryable for RETAIN_USEC, or while among the last RETAIN_JOBS. */
#define MIGRATION_RETAIN_USEC (10 * 60 * USEC_PER_SEC)
#define MIGRATION_RETAIN_JOBS 64
Migration *migration_lookup(Jobs *t, uint32_t id);
/* Running jobs, and with ended, the ended ones kept; by id. */
GPtrArray *migration_list(Jobs *t, bool ended);
