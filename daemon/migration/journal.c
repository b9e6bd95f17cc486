/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
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

struct JournalFile {
        int fd;
        off_t mark;             /* the byte after "Committed=" */
        /* The file, mapped shared: the commit is a store into its page in
         * the page cache, which outlives the daemon as a write() would,
         * without a system call in the downtime. NULL: pwrite(). */
        volatile char *map;
        size_t map_len;
};

/* The entry as a keyfile whose last line is the commit mark, "0" or
 * "1" (booleans GKeyFile reads), so that committing is one byte. */
static char *entry_text(const JournalEntry *e, size_t *ret_len, size_t *ret_mark) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autofree char *data = NULL;
        const char *const none[] = { NULL };
        GString *s;
        gsize len;

        g_key_file_set_uint64(k, "Migration", "Id", e->id);
        g_key_file_set_string(k, "Migration", "Kind", e->kind);
        g_key_file_set_boolean(k, "Migration", "TargetRunning", e->target_running);
        g_key_file_set_boolean(k, "Migration", "SourceRunning", e->source_running);
        g_key_file_set_string_list(k, "Migration", "Sources", (const char *const *) (e->sources ? e->sources : (char **) none),
                                   e->sources ? g_strv_length(e->sources) : 0);
        g_key_file_set_string_list(k, "Migration", "Targets", (const char *const *) (e->targets ? e->targets : (char **) none),
                                   e->targets ? g_strv_length(e->targets) : 0);
        data = g_key_file_to_data(k, &len, NULL);
        s = g_string_new_len(data, (gssize) len);
        if (s->len > 0 && s->str[s->len - 1] != '\n')
                g_string_append_c(s, '\n');
        g_string_append(s, "Committed=");
        *ret_mark = s->len;
        g_string_append(s, e->committed ? "1\n" : "0\n");
        *ret_len = s->len;
        return g_string_free(s, false);
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno != EINTR)
                        return -errno;
                if (n > 0)
                        p += n, len -= (size_t) n;
        }
        return 0;
}

int journal_begin(const char *dir, const JournalEntry *e, JournalFile **ret) {
        g_autofree char *path = entry_path(dir, e->id), *tmp = g_strconcat(path, ".XXXXXX", NULL), *text = NULL;
        size_t len, mark;
        void *map;
        int fd, r;

        text = entry_text(e, &len, &mark);
        /* The journal outlives a crash of the daemon, not of the machine
         * (whose reboot resets the devices anyway): no fsync, which would
         * sit inside the migration's downtime. Written whole under
         * another name first: a reader never sees half an entry. */
        fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
                return log_error_errno(errno, "Cannot write journal %s: %m", path);
        r = write_all(fd, text, len);
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                close(fd);
                return log_error_errno(r, "Cannot write journal %s: %m", path);
        }
        *ret = g_new(JournalFile, 1);
        **ret = (JournalFile) { .fd = fd, .mark = (off_t) mark };
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map != MAP_FAILED) {
                (*ret)->map = map;
                (*ret)->map_len = len;
                /* the page's write fault now, not at the commit */
                (*ret)->map[mark] = e->committed ? '1' : '0';
        }
        return 0;
}

int journal_mark(JournalFile *f, bool committed) {
        ssize_t n;

        if (f->map) {
                f->map[f->mark] = committed ? '1' : '0';
                return 0;
        }
        n = pwrite(f->fd, committed ? "1" : "0", 1, f->mark);

        if (n == 1)
                return 0;
        return log_error_errno(n < 0 ? errno : EIO, "Cannot %s the journal entry: %m",
                               committed ? "commit" : "uncommit");
}

int journal_end(const char *dir, uint32_t id, JournalFile *f) {
        if (f) {
                if (f->map)
                        (void) munmap((void *) f->map, f->map_len);
                close(f->fd);
                g_free(f);
        }
        return journal_remove(dir, id);
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
