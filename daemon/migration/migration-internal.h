/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "migration/migration.h"
#include "registry.h"

/* What the job's modules (migration.c, admission.c, recovery.c) share:
 * the table of jobs and what they use. Nothing outside them sees it. */
struct Jobs {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        CompatMap *map;                 /* the identities' */
        char *runtime_dir;              /* the journal of in-flight jobs, the last id */
        char *state_dir;                /* saved states */

        GHashTable *running;            /* id -> Migration */
        GHashTable *ended;              /* id -> Migration, kept for clients that ask late */
        GQueue *ended_order;            /* the same, oldest first */
        sd_event_source *retire_timer;
        uint32_t last_id;               /* kept in the runtime directory across restarts */

        const MigrationEvents *events;
        void *events_userdata;
};

/* A job the journal knows of: later ids must not repeat it. */
void jobs_note_id(Jobs *t, uint32_t id);
/* The next id, recorded in the runtime directory first. */
uint32_t jobs_next_id(Jobs *t);
/* A job that started, and one that ended (jobs.c keeps it a while, then
 * frees it). */
void jobs_add(Jobs *t, Migration *j);
void jobs_retire(Jobs *t, Migration *j);
uint64_t migration_get_ended_usec(Migration *j);
