/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "migration/jobs.h"

/* The job table as jobs.c and recovery.c (which puts back what a killed
 * daemon's jobs left) share it. */
struct Jobs {
        MigrationEnv env;               /* what every job uses */
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
