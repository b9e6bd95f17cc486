/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "compat/compat.h"
#include "backend/devops.h"
#include "migration/stream.h"
#include "migration/transfer.h"

/* The work of a migration job, on the job's thread: moves device state
 * from sources to targets (migrate), into a stream (save) or out of one
 * (load), and on any failure or cancel rolls back before it reports the
 * end: sources back to RUNNING (reset if no walk gets them there),
 * touched targets reset.
 *
 * It knows devices only through DeviceOps, and its job through hooks:
 * no registry, no map, no bus. What it reports (phase, counters, error,
 * each device's state and outcome) is guarded by its lock; the hooks tell
 * the job that something changed. */

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

/* Why a job failed: what its ErrorName says, named by the bus. Each
 * class is the errno that the one errno <-> D-Bus error table
 * (bus/bus-error.c) names, so no name is chosen here; a class is not the
 * errno of the step that failed (a device's EINVAL or ENOENT is
 * MIGRATION_ERROR_DEVICE all the same). */
typedef enum MigrationError {
        MIGRATION_ERROR_NONE = 0,
        MIGRATION_ERROR_DEVICE = EIO,                   /* a device, the stream's I/O, the journal, memory */
        MIGRATION_ERROR_STREAM_CORRUPT = EBADMSG,       /* the stream is not what its writer wrote */
        MIGRATION_ERROR_INCOMPATIBLE = EPROTONOSUPPORT, /* the target cannot take this state */
        MIGRATION_ERROR_COMPATIBILITY_UNKNOWN = ENOANO, /* nothing says it can, and allow-unknown was not given */
        MIGRATION_ERROR_CANCELLED = ECANCELED,
        MIGRATION_ERROR_ALREADY_EXISTS = EEXIST,        /* a save's name was taken meanwhile */
} MigrationError;

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
        bool prefetch;                  /* load: verify up to 64 MiB of the stream before the target sees it */
        uint64_t io_timeout_usec;
} MigrationOptions;

void migration_options_init(MigrationOptions *o);

typedef struct WorkerDevice {
        char *name;
        bool source;
        DeviceHandle *handle;           /* closed when the worker ends */
        uint32_t flags;
        /* a source whose target's driver was busy when the job was admitted
         * (on allow-unknown): the worker asks again before anything moves */
        bool ask_again;
        /* the worker's */
        XferEnd data;                   /* data.fd < 0: no session */
        bool touched;                   /* a target whose state we changed */
        /* reported, under the worker's lock */
        uint32_t state;
        char *outcome;
} WorkerDevice;

/* Where the job is in its journal entry. */
typedef enum WorkerRecord {
        WORKER_RECORD_BEGIN,            /* before any device changes state */
        WORKER_RECORD_COMMIT,           /* the data is all in: the targets load it, or the stream holds it */
        WORKER_RECORD_ABORT,            /* a job past its commit rolls back after all */
        WORKER_RECORD_END,              /* finished or rolled back */
} WorkerRecord;

/* The phases of the downtime window, from the first source that stops
 * until the last target runs. */
typedef enum DownPhase {
        DOWN_STOP,                      /* the sources stop */
        DOWN_COPY,                      /* their last data moves */
        DOWN_COMMIT,                    /* the journal's commit */
        DOWN_START,                     /* the targets load it and start */
        _DOWN_PHASE_MAX,
} DownPhase;

/* Where the downtime went: wall time per phase, and in each the time
 * inside device calls and moving stop-copy data (to its end: the
 * target's session closed); the rest is ours. */
typedef struct Downtime {
        uint64_t begin_usec, mark_usec; /* CLOCK_MONOTONIC: the window's start, the phase's */
        DownPhase phase;
        bool open, closed;
        unsigned entered;               /* bit per phase */
        uint64_t wall[_DOWN_PHASE_MAX], device[_DOWN_PHASE_MAX], data[_DOWN_PHASE_MAX];
} Downtime;

/* "downtime T us (devices D us, data X us, vfiomigd V us); window: stop
 * ... us (vfiomigd ... us), copy ...", for the log. */
char *downtime_describe(const Downtime *d);

/* The compatibility question a worker asks its job: may the state of a
 * stream (load: header, its source's identity) or of a device of the job
 * (migrate: source) go into target, a device of the job? */
typedef struct WorkerQuestion {
        const StreamHeader *header;
        const char *source;
        const char *target;
} WorkerQuestion;

typedef struct WorkerHooks {
        /* Phase, counters or a device's state changed; may be NULL.
         * deferred: inside the downtime window, where nobody should be
         * woken to publish it; the worker calls again, not deferred, when
         * the window closes. */
        void (*changed)(void *userdata, bool deferred);
        /* -errno and a message fail the job (END's are only logged). */
        int (*journal)(void *userdata, WorkerRecord what, char **ret_error);
        /* Load: may a stream with this source identity (type, version,
         * IOMMU facet of the header) go into the target? Migrate: may a
         * source whose target's driver was busy go there after all? The
         * job answers on its main loop, which may ask the driver; this
         * blocks until then. A cancel ends the wait (UNKNOWN). */
        Verdict (*judge)(void *userdata, const WorkerQuestion *q, char **ret_reason);
        /* Save: the stream is complete and synced; put it where it
         * belongs (-EEXIST: the name was taken meanwhile). May be NULL. */
        int (*publish)(void *userdata, char **ret_error);
        /* Before the downtime window: returns once what changed has been
         * published and the main loop has nothing left to do for it, or
         * after a short while. May be NULL. */
        void (*settle)(void *userdata);
} WorkerHooks;

typedef struct Worker {
        uint32_t id;                    /* for the log */
        MigrationKind kind;
        MigrationOptions options;
        GPtrArray *devices;             /* WorkerDevice: sources first, then targets; pair i = (i, i + pairs) */
        unsigned pairs;
        XferEnd stream;                 /* save, load: the file, pipe or socket */
        char *stream_label;             /* what messages call the stream */
        StreamHeader identity;          /* save: of the source */
        int cancel_fd;                  /* an eventfd: every wait polls it */
        const WorkerHooks *hooks;
        void *userdata;

        /* the worker's own */
        uint64_t last_signal_usec;
        Downtime down;                  /* read by others once the worker has ended */
        /* in the downtime window, changes are kept for one wake-up after it */
        bool quiet, poke_pending;
        uint8_t *buf;                   /* for data that cannot be spliced, made before it is needed */
        size_t buf_size;
        bool committed;                 /* sealed, and the journal says so */

        GMutex lock;                    /* guards what the worker reports: */
        MigrationPhase phase;
        uint64_t bytes, expected;
        uint32_t rounds;
        uint64_t downtime_usec;
        MigrationError error_class;
        char *error;
        bool cancel_requested, finished;
        bool sealed;                    /* past the point of no return: cancels are refused */
} Worker;

/* An empty worker: no devices, no stream, a cancel eventfd (-errno). */
int worker_init(Worker *w, MigrationKind kind, const MigrationOptions *o, const WorkerHooks *hooks,
                void *userdata);
void worker_clear(Worker *w);
WorkerDevice *worker_dev(Worker *w, unsigned i);
/* Takes over handle. */
WorkerDevice *worker_add_device(Worker *w, const char *name, bool source, DeviceHandle *handle, uint32_t flags,
                                uint32_t state);

/* Does the whole job on the calling thread; the result is in the phase
 * (DONE, FAILED, CANCELLED) and error. Every handle and fd is closed
 * when it returns. */
int worker_run(Worker *w);

/* From any thread. -EBUSY once the job is past the point of no return
 * (the targets hold the state, or the stream is complete). */
int worker_cancel(Worker *w, const char *who);

typedef struct MigrationSnapshotDevice {
        char *name;
        bool source;
        uint32_t state;
        char *outcome;                  /* "" until the job ends */
} MigrationSnapshotDevice;

typedef struct MigrationSnapshot {
        MigrationPhase phase;
        uint64_t bytes, expected;
        uint32_t rounds;
        uint64_t downtime_usec;
        MigrationError error_class;     /* NONE while there is no error */
        char *error;                    /* NULL while there is none */
        MigrationSnapshotDevice *devices;
        unsigned n_devices;
        bool finished;                  /* the worker has returned */
} MigrationSnapshot;

/* A consistent copy of what the worker reports, from any thread. */
void worker_snapshot(Worker *w, MigrationSnapshot *ret);
void migration_snapshot_clear(MigrationSnapshot *s);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MigrationSnapshot, migration_snapshot_clear);
/* 0 to 1: done, or bytes over expected */
double migration_snapshot_progress(const MigrationSnapshot *s);
