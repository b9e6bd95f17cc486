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
        /* The data is all in: the targets were asked to load it (those
         * that left RESUMING hold the state, the sources stay stopped),
         * or the stream is complete. */
        bool committed;
        /* what the job was to leave behind, so that recovery can finish a
         * committed job as it would have */
        bool target_running, source_running;
        char **sources;         /* device names */
        char **targets;
} JournalEntry;

void journal_entry_free(JournalEntry *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JournalEntry, journal_entry_free);

/* An entry being written by its job: the file stays open and mapped, so
 * that its commit mark, the last line, is one byte written (a store into
 * the mapping; pwrite() where the file cannot be mapped). */
typedef struct JournalFile JournalFile;

/* Writes the entry's file whole (dir exists: the manager made it),
 * committed as e says, and keeps it open. */
int journal_begin(const char *dir, const JournalEntry *e, JournalFile **ret);
/* Sets the commit mark: one byte, no system call where it is mapped. */
int journal_mark(JournalFile *f, bool committed);
/* Closes f (NULL: none was opened) and removes the entry. */
int journal_end(const char *dir, uint32_t id, JournalFile *f);
int journal_remove(const char *dir, uint32_t id);
/* Every readable entry, by id; unreadable files are logged and removed. */
GPtrArray *journal_load(const char *dir);
