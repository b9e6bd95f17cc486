/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

#include "log.h"
#include "compat/probe-cache.h"
#include "util.h"

typedef struct CachedProbe {
        Verdict verdict;
        char *reason;
        char *drivers;          /* "SOURCE -> TARGET" */
        uint64_t time_usec;     /* CLOCK_REALTIME; 0 from before it was recorded */
} CachedProbe;

struct ProbeCache {
        char *path;
        char *kernel;
        GHashTable *results;    /* ProbeKey -> CachedProbe */
};

static void cached_probe_free(CachedProbe *p) {
        g_free(p->reason);
        g_free(p->drivers);
        g_free(p);
}

/* A driver may take one firmware's data and refuse another's: the
 * versions are part of what was probed. */
typedef struct ProbeKey {
        const char *source_type, *source_version, *target_type, *target_version;
} ProbeKey;

static guint probe_key_hash(gconstpointer p) {
        const ProbeKey *k = p;

        return ((g_str_hash(k->source_type) * 31 + g_str_hash(k->source_version)) * 31 +
                g_str_hash(k->target_type)) * 31 + g_str_hash(k->target_version);
}

static gboolean probe_key_equal(gconstpointer p, gconstpointer q) {
        const ProbeKey *a = p, *b = q;

        return g_str_equal(a->source_type, b->source_type) && g_str_equal(a->source_version, b->source_version) &&
               g_str_equal(a->target_type, b->target_type) && g_str_equal(a->target_version, b->target_version);
}

static ProbeKey *probe_key_new(const char *source_type, const char *source_version, const char *target_type,
                               const char *target_version) {
        ProbeKey *k = g_new(ProbeKey, 1);

        *k = (ProbeKey) { g_strdup(source_type), g_strdup(source_version), g_strdup(target_type),
                          g_strdup(target_version) };
        return k;
}

static void probe_key_free(ProbeKey *k) {
        g_free((char *) k->source_type);
        g_free((char *) k->source_version);
        g_free((char *) k->target_type);
        g_free((char *) k->target_version);
        g_free(k);
}

static char *kernel_release(void) {
        struct utsname u;

        return uname(&u) < 0 ? g_strdup("unknown") : g_strdup(u.release);
}

static void cache_load(ProbeCache *c) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_auto(GStrv) groups = NULL;

        if (!g_key_file_load_from_file(k, c->path, G_KEY_FILE_NONE, NULL))
                return;
        groups = g_key_file_get_groups(k, NULL);
        for (char **g = groups; *g; g++) {
                g_autofree char *kernel = g_key_file_get_string(k, *g, "Kernel", NULL);
                g_autofree char *st = g_key_file_get_string(k, *g, "SourceType", NULL);
                g_autofree char *tt = g_key_file_get_string(k, *g, "TargetType", NULL);
                g_autofree char *sv = g_key_file_get_string(k, *g, "SourceVersion", NULL);
                g_autofree char *tv = g_key_file_get_string(k, *g, "TargetVersion", NULL);
                g_autofree char *v = g_key_file_get_string(k, *g, "Verdict", NULL);
                CachedProbe *p;

                if (g_strcmp0(kernel, c->kernel) != 0)
                        continue;       /* made with another kernel's drivers */
                if (!st || !tt || !sv || !tv || !v)
                        continue;
                p = g_new0(CachedProbe, 1);
                p->verdict = g_str_equal(v, "compatible") ? VERDICT_COMPATIBLE : VERDICT_INCOMPATIBLE;
                p->reason = g_key_file_get_string(k, *g, "Reason", NULL) ?: g_strdup("");
                p->drivers = g_key_file_get_string(k, *g, "Drivers", NULL) ?: g_strdup("");
                p->time_usec = g_key_file_get_uint64(k, *g, "Time", NULL);
                g_hash_table_replace(c->results, probe_key_new(st, sv, tt, tv), p);
        }
}

ProbeCache *probe_cache_new(const char *path) {
        ProbeCache *c = g_new0(ProbeCache, 1);

        c->path = g_strdup(path);
        c->kernel = kernel_release();
        c->results = g_hash_table_new_full(probe_key_hash, probe_key_equal, (GDestroyNotify) probe_key_free,
                                           (GDestroyNotify) cached_probe_free);
        cache_load(c);
        return c;
}

void probe_cache_free(ProbeCache *c) {
        if (!c)
                return;
        g_hash_table_destroy(c->results);
        g_free(c->kernel);
        g_free(c->path);
        g_free(c);
}

static int cache_write(ProbeCache *c, GKeyFile *k);

bool probe_cache_lookup(ProbeCache *c, const Identity *source, const Identity *target, Judgement *ret) {
        ProbeKey key = { source->type, source->version, target->type, target->version };
        CachedProbe *p = c ? g_hash_table_lookup(c->results, &key) : NULL;

        if (!p)
                return false;
        *ret = (Judgement) { .verdict = p->verdict, .basis = BASIS_PROBE, .reason = g_strdup(p->reason) };
        return true;
}

void probe_cache_store(ProbeCache *c, const ProbeSide *source, const ProbeSide *target, const Judgement *j) {
        g_autofree char *drivers = g_strdup_printf("%s -> %s", source->driver, target->driver);
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autofree char *group = NULL;
        CachedProbe *p = g_new0(CachedProbe, 1);
        int r;

        p->verdict = j->verdict;
        p->reason = g_strdup(j->reason ?: "");
        p->drivers = g_strdup(drivers);
        p->time_usec = g_get_real_time();
        g_hash_table_replace(c->results, probe_key_new(source->type, source->version, target->type, target->version),
                             p);

        (void) g_key_file_load_from_file(k, c->path, G_KEY_FILE_KEEP_COMMENTS, NULL);
        group = g_strdup_printf("Probe %s %s %s -> %s %s", c->kernel, source->type, source->version, target->type,
                                target->version);
        g_key_file_set_string(k, group, "Kernel", c->kernel);
        g_key_file_set_string(k, group, "Drivers", drivers);
        g_key_file_set_string(k, group, "SourceType", source->type);
        g_key_file_set_string(k, group, "SourceVersion", source->version);
        g_key_file_set_string(k, group, "TargetType", target->type);
        g_key_file_set_string(k, group, "TargetVersion", target->version);
        g_key_file_set_string(k, group, "Verdict", verdict_to_string(j->verdict));
        g_key_file_set_string(k, group, "Reason", p->reason);
        g_key_file_set_uint64(k, group, "Time", p->time_usec);
        r = cache_write(c, k);
        if (r < 0)
                log_warning_errno(r, "Cannot persist probe results in %s: %m", c->path);
}

/* Whole or not at all: a reader (the next start) never sees half a file. */
static int cache_write(ProbeCache *c, GKeyFile *k) {
        g_autofree char *dir = g_path_get_dirname(c->path), *data = NULL;
        gsize len;

        (void) g_mkdir_with_parents(dir, 0700);
        data = g_key_file_to_data(k, &len, NULL);
        return write_file_atomic(c->path, data, len);
}

static ProbeRecord *record_new(ProbeCache *c, const ProbeKey *k, const CachedProbe *p) {
        ProbeRecord *r = g_new(ProbeRecord, 1);

        *r = (ProbeRecord) {
                g_strdup(k->source_type), g_strdup(k->source_version), g_strdup(k->target_type),
                g_strdup(k->target_version), p->verdict, g_strdup(p->reason), g_strdup(p->drivers),
                g_strdup(c->kernel), p->time_usec,
        };
        return r;
}

void probe_record_free(ProbeRecord *r) {
        if (!r)
                return;
        g_free(r->source_type);
        g_free(r->source_version);
        g_free(r->target_type);
        g_free(r->target_version);
        g_free(r->reason);
        g_free(r->drivers);
        g_free(r->kernel);
        g_free(r);
}

static int compare_records(gconstpointer a, gconstpointer b) {
        const ProbeRecord *x = *(ProbeRecord **) a, *y = *(ProbeRecord **) b;
        int d;

        if ((d = strcmp(x->source_type, y->source_type)) || (d = strcmp(x->source_version, y->source_version)) ||
            (d = strcmp(x->target_type, y->target_type)))
                return d;
        return strcmp(x->target_version, y->target_version);
}

GPtrArray *probe_cache_list(ProbeCache *c) {
        GPtrArray *l = g_ptr_array_new_with_free_func((GDestroyNotify) probe_record_free);
        GHashTableIter i;
        gpointer k, v;

        g_hash_table_iter_init(&i, c->results);
        while (g_hash_table_iter_next(&i, &k, &v))
                g_ptr_array_add(l, record_new(c, k, v));
        g_ptr_array_sort(l, compare_records);
        return l;
}

static bool group_matches(GKeyFile *k, const char *group, const char *kernel, const ProbeKey *key) {
        const char *want[] = { "Kernel", kernel, "SourceType", key ? key->source_type : NULL,
                               "SourceVersion", key ? key->source_version : NULL,
                               "TargetType", key ? key->target_type : NULL,
                               "TargetVersion", key ? key->target_version : NULL };

        for (size_t i = 0; i < G_N_ELEMENTS(want); i += 2) {
                g_autofree char *v = NULL;

                if (!want[i + 1])
                        continue;
                v = g_key_file_get_string(k, group, want[i], NULL);
                if (g_strcmp0(v, want[i + 1]) != 0)
                        return false;
        }
        return true;
}

/* The file without the running kernel's groups for key (every one if
 * NULL); other kernels' results stay for when that kernel runs again. */
static int cache_write_without(ProbeCache *c, const ProbeKey *key, char **ret_error) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autoptr(GError) e = NULL;
        g_auto(GStrv) groups = NULL;
        int r;

        if (!g_key_file_load_from_file(k, c->path, G_KEY_FILE_KEEP_COMMENTS, &e) &&
            !g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                return errno_message(ret_error, EIO, "Cannot read %s: %s", c->path, e->message);
        groups = g_key_file_get_groups(k, NULL);
        for (char **g = groups; *g; g++)
                if (group_matches(k, *g, c->kernel, key))
                        (void) g_key_file_remove_group(k, *g, NULL);
        r = cache_write(c, k);
        if (r < 0)
                return errno_message(ret_error, r, "Cannot rewrite %s: %s", c->path, g_strerror(-r));
        return 0;
}

int probe_cache_forget(ProbeCache *c, const char *source_type, const char *source_version, const char *target_type,
                       const char *target_version, char **ret_error) {
        ProbeKey key = { source_type, source_version, target_type, target_version };
        int r;

        if (!g_hash_table_contains(c->results, &key))
                return errno_message(ret_error, ENOENT, "No probe result for %s %s -> %s %s",
                                     source_type, *source_version ? source_version : "(no version)",
                                     target_type, *target_version ? target_version : "(no version)");
        /* the file first: if it cannot be written, nothing changes */
        r = cache_write_without(c, &key, ret_error);
        if (r < 0)
                return r;
        g_hash_table_remove(c->results, &key);
        return 0;
}

int probe_cache_forget_all(ProbeCache *c, GPtrArray **ret_forgotten, char **ret_error) {
        g_autoptr(GPtrArray) l = probe_cache_list(c);
        int r;

        r = cache_write_without(c, NULL, ret_error);
        if (r < 0)
                return r;
        g_hash_table_remove_all(c->results);
        *ret_forgotten = g_steal_pointer(&l);
        return 0;
}
