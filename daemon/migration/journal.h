/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* In-flight migrations, one small file each in the runtime directory
 * (/run/vfiomig), written before a job first changes a device's state and
 * removed when it has finished or rolled back. A daemon that was killed
 * in between finds them on its next start and puts the devices back. */

typedef struct JournalEntry {
        uint32_t id;
        char *kind;             /* "migrate", "save", "load" */
        bool committed;         /* targets hold the state now: sources stay stopped */
        /* what the job was to leave behind, so that recovery can finish a
         * committed job as it would have */
        bool target_running, source_running;
        char **sources;         /* device names */
        char **targets;
} JournalEntry;

void journal_entry_free(JournalEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JournalEntry, journal_entry_free);

/* Atomically replaces the entry's file; dir exists (the manager made it). */
int journal_write(const char *dir, const JournalEntry *e);
int journal_remove(const char *dir, uint32_t id);
/* Every readable entry, by id; unreadable files are logged and removed. */
GPtrArray *journal_load(const char *dir);
