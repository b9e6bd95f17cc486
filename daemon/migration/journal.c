/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "migration/journal.h"
#include "log.h"
#include "util.h"

#define JOURNAL_PREFIX "migration-"
#define JOURNAL_SUFFIX ".journal"

void journal_entry_free(JournalEntry *e) {
        if (!e)
                return;
        g_free(e->kind);
        g_strfreev(e->sources);
        g_strfreev(e->targets);
        g_free(e);
}

static char *entry_path(const char *dir, uint32_t id) {
        g_autofree char *name = g_strdup_printf(JOURNAL_PREFIX "%u" JOURNAL_SUFFIX, id);

        return g_build_filename(dir, name, NULL);
}

int journal_write(const char *dir, const JournalEntry *e) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autofree char *path = entry_path(dir, e->id), *data = NULL;
        const char *const none[] = { NULL };
        gsize len;
        int r;

        g_key_file_set_uint64(k, "Migration", "Id", e->id);
        g_key_file_set_string(k, "Migration", "Kind", e->kind);
        g_key_file_set_boolean(k, "Migration", "Committed", e->committed);
        g_key_file_set_boolean(k, "Migration", "TargetRunning", e->target_running);
        g_key_file_set_boolean(k, "Migration", "SourceRunning", e->source_running);
        g_key_file_set_string_list(k, "Migration", "Sources", (const char *const *) (e->sources ? e->sources : (char **) none),
                                   e->sources ? g_strv_length(e->sources) : 0);
        g_key_file_set_string_list(k, "Migration", "Targets", (const char *const *) (e->targets ? e->targets : (char **) none),
                                   e->targets ? g_strv_length(e->targets) : 0);
        data = g_key_file_to_data(k, &len, NULL);
        /* The journal outlives a crash of the daemon, not of the machine
         * (whose reboot resets the devices anyway): no fsync, which would
         * sit inside the migration's downtime. */
        r = write_file_atomic(path, data, len);
        if (r < 0)
                return log_error_errno(r, "Cannot write journal %s: %m", path);
        return 0;
}

int journal_remove(const char *dir, uint32_t id) {
        g_autofree char *path = entry_path(dir, id);

        if (unlink(path) < 0 && errno != ENOENT)
                return log_warning_errno(errno, "Cannot remove journal %s: %m", path);
        return 0;
}

static bool get_boolean(GKeyFile *k, const char *key, bool fallback) {
        g_autoptr(GError) error = NULL;
        bool b = g_key_file_get_boolean(k, "Migration", key, &error);

        return error ? fallback : b;
}

static JournalEntry *load_entry(const char *path) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autoptr(JournalEntry) e = g_new0(JournalEntry, 1);
        g_autoptr(GError) error = NULL;

        if (!g_key_file_load_from_file(k, path, G_KEY_FILE_NONE, &error)) {
                log_warning("Ignoring unreadable journal %s: %s", path, error->message);
                return NULL;
        }
        e->id = (uint32_t) g_key_file_get_uint64(k, "Migration", "Id", NULL);
        e->kind = g_key_file_get_string(k, "Migration", "Kind", NULL);
        e->committed = g_key_file_get_boolean(k, "Migration", "Committed", NULL);
        e->target_running = get_boolean(k, "TargetRunning", true);
        e->source_running = get_boolean(k, "SourceRunning", false);
        e->sources = g_key_file_get_string_list(k, "Migration", "Sources", NULL, NULL);
        e->targets = g_key_file_get_string_list(k, "Migration", "Targets", NULL, NULL);
        if (!e->kind || !e->sources || !e->targets) {
                log_warning("Ignoring incomplete journal %s", path);
                return NULL;
        }
        return g_steal_pointer(&e);
}

static int compare_id(gconstpointer a, gconstpointer b) {
        uint32_t x = (*(JournalEntry *const *) a)->id, y = (*(JournalEntry *const *) b)->id;

        return x < y ? -1 : x > y;
}

GPtrArray *journal_load(const char *dir) {
        GPtrArray *entries = g_ptr_array_new_with_free_func((GDestroyNotify) journal_entry_free);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *path = NULL;
                JournalEntry *e;

                if (!g_str_has_prefix(n, JOURNAL_PREFIX) || !g_str_has_suffix(n, JOURNAL_SUFFIX))
                        continue;
                path = g_build_filename(dir, n, NULL);
                e = load_entry(path);
                if (e)
                        g_ptr_array_add(entries, e);
                else
                        (void) unlink(path);
        }
        g_ptr_array_sort(entries, compare_id);
        return entries;
}
