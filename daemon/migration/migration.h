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

/* One migration job (migrate, save, load): the checks before it starts,
 * its worker thread (worker.h does the work) and its outcome. The job
 * table (jobs.h) owns jobs, gives them ids and keeps ended ones a while.
 *
 * The worker reports through its lock and an eventfd that wakes the main
 * loop; the main loop mirrors device states into the registry, answers
 * the worker's compatibility question from the map, and tells the
 * job's owner. Nothing here knows D-Bus: errors are -errno with a
 * message, the errno being the one whose D-Bus error fits (the errno
 * table of the bus code). */

typedef struct Migration Migration;

/* What a job uses; its owner keeps it as long as the job. */
typedef struct MigrationEnv {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        CompatMap *map;
        const char *runtime_dir;        /* the journal */
} MigrationEnv;

/* How a job tells its owner, on the main thread. */
typedef struct MigrationOwner {
        /* Phase, progress, a device's state or outcome changed; final:
         * the job's last word. */
        void (*changed)(void *userdata, Migration *j, bool final);
        /* The worker has ended and is joined. */
        void (*ended)(void *userdata, Migration *j);
} MigrationOwner;

typedef struct MigrationRequest {
        MigrationKind kind;
        char **sources, **targets;      /* device names, normalized */
        int stream_fd;                  /* save, load: borrowed */
        const char *stream_label;
        const char *final_path;         /* save by name: renamed into place when complete */
        const char *state_name;         /* save, load by name: the saved state's name */
        bool overwrite;
        MigrationOptions options;
} MigrationRequest;

/* Checks the request against the registry and the map and opens the
 * devices. Errors name the device and the cause: -ENODEV (no such
 * device), -EBUSY (held, or in the wrong state), -EOPNOTSUPP (cannot
 * migrate, no P2P), -EPROTONOSUPPORT (incompatible), -EINVAL, -EIO. */
int migration_prepare(const MigrationEnv *env, const MigrationRequest *req, const char *owner, Migration **ret,
                      char **ret_error);
/* Gives a prepared job its id, marks its devices busy and starts the
 * worker; cannot fail. */
void migration_launch(Migration *j, uint32_t id, const MigrationOwner *owner, void *userdata);
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
/* The saved state a save or load by name writes or reads; NULL for
 * anything else. */
const char *migration_get_state_name(Migration *j);
/* The job has ended (its object stays for a while), and when. */
bool migration_has_ended(Migration *j);
uint64_t migration_get_ended_usec(Migration *j);

/* Thread-safe copies of what the worker reports. */
MigrationPhase migration_get_phase(Migration *j);
void migration_snapshot(Migration *j, MigrationSnapshot *ret);
