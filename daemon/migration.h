/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "compat.h"
#include "devops.h"
#include "manager.h"
#include "stream.h"
#include "transfer.h"

/* Migration jobs: move device state from sources to targets (migrate),
 * into a stream (save) or out of one (load).
 *
 * A job's worker thread owns its device handles and fds and does all
 * device and stream I/O; it reports through a mutex-guarded status and
 * an eventfd that wakes the main loop, which alone talks D-Bus and
 * updates the registry. On any failure or cancel the worker rolls back
 * before it reports the end: sources back to RUNNING (reset if a SET
 * does not get them there), touched targets reset. A journal file marks
 * the job in flight until then. */

typedef enum MigrationKind {
        MIGRATION_MIGRATE,
        MIGRATION_SAVE,
        MIGRATION_LOAD,
        _MIGRATION_KIND_MAX,
} MigrationKind;

typedef enum MigrationPhase {
        MIGRATION_PREPARING,
        MIGRATION_PRECOPY,
        MIGRATION_STOPCOPY,
        MIGRATION_RESUMING,
        MIGRATION_FINISHING,
        MIGRATION_DONE,
        MIGRATION_FAILED,
        MIGRATION_CANCELLED,
        _MIGRATION_PHASE_MAX,
} MigrationPhase;

const char *migration_kind_to_string(MigrationKind k);
const char *migration_phase_to_string(MigrationPhase p);

typedef struct MigrationOptions {
        bool precopy;                   /* when every device supports it */
        uint32_t max_precopy_rounds;
        uint64_t precopy_threshold;     /* dirty bytes left for stop-copy */
        bool target_running;            /* else targets stay STOP */
        bool source_running;            /* save: source back to RUNNING */
        bool allow_no_p2p;              /* group members without P2P */
        bool allow_unknown;             /* go ahead when compatibility is unknown */
        uint64_t io_timeout_usec;
} MigrationOptions;

void migration_options_init(MigrationOptions *o);

typedef struct MigrationDevice {
        Device *info;                   /* the registry's entry when the job began */
        bool source;
        DeviceHandle *handle;
        uint32_t flags;
        /* the worker's */
        XferEnd data;                   /* data.fd < 0: no session */
        bool touched;                   /* a target whose state we changed */
        /* reported, under the job's lock */
        uint32_t state;
        char *outcome;
} MigrationDevice;

typedef struct Migration {
        Manager *manager;
        uint32_t id;
        char *path;
        MigrationKind kind;
        char *source_label, *target_label;
        char *owner;                    /* unique bus name of the caller */
        MigrationOptions options;
        GPtrArray *devices;             /* sources first, then targets, pair i = (i, i + pairs) */
        unsigned pairs;
        XferEnd stream;                 /* save, load: the file, pipe or socket */
        char *temp_path, *final_path;   /* save into the state directory */
        StreamHeader identity;          /* save: of the source; load: what the target accepts */
        bool overwrite;                 /* save: may replace final_path */

        GThread *thread;
        uint64_t ended_usec;            /* CLOCK_MONOTONIC; 0 while running */
        int cancel_fd, notify_fd;
        sd_event_source *notify_source;
        uint64_t last_signal_usec;
        uint64_t down_start_usec;
        /* where the downtime went: inside device calls, moving stop-copy
         * data; the rest is ours */
        uint64_t down_device_usec, down_transfer_usec;

        GMutex lock;                    /* guards what the worker reports: */
        MigrationPhase phase;
        uint64_t bytes, expected;
        uint32_t rounds;
        uint64_t downtime_usec;
        char *error_name, *error;
        bool cancel_requested, committed, finished;
        /* the worker asks the main loop (which owns the map) for a verdict */
        GCond answered;
        char *ask_type, *ask_version;   /* non-NULL: a question is waiting */
        Verdict answer;
        char *answer_reason;
} Migration;

typedef struct MigrationRequest {
        MigrationKind kind;
        char **sources, **targets;      /* device names, normalized */
        int stream_fd;                  /* save, load: borrowed */
        const char *stream_label;
        const char *final_path;         /* save by name: renamed into place when complete */
        bool overwrite;
        MigrationOptions options;
} MigrationRequest;

/* Checks the request against the registry, opens the devices (Busy if
 * someone holds one) and starts the worker. Errors are D-Bus errors
 * naming the device and the cause. */
int migration_start(Manager *m, const MigrationRequest *req, const char *owner, Migration **ret,
                    sd_bus_error *error);
/* -EBUSY once the job is past the point of no return (the targets hold
 * the state, or the stream is complete). */
int migration_cancel(Migration *j, const char *who);
void migration_free(Migration *j);

/* Thread-safe copies for property getters. */
MigrationPhase migration_get_phase(Migration *j);
void migration_get_progress(Migration *j, uint64_t *bytes, uint64_t *expected, uint32_t *rounds,
                            uint64_t *downtime_usec);
double migration_progress(Migration *j);
char *migration_get_error(Migration *j, char **ret_name);

/* A running job (ListMigrations) or one that ended lately: its outcome
 * stays queryable for RETAIN_USEC, or while among the last RETAIN_JOBS. */
#define MIGRATION_RETAIN_USEC (10 * 60 * USEC_PER_SEC)
#define MIGRATION_RETAIN_JOBS 64
Migration *migration_lookup(Manager *m, uint32_t id);

/* Brings a device that nothing holds back to RUNNING (a stopped source
 * of an earlier migration, say), as a rollback would: SET, else reset.
 * *ret_outcome says what was done; -EBUSY if a job or another process
 * holds it, with *ret_error naming the holder. */
int migration_resume_device(Manager *m, const Device *d, char **ret_outcome, char **ret_error);

/* Finds devices left behind by a killed daemon and puts them back. */
void migration_recover_journal(Manager *m);
