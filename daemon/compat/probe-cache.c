/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sys/utsname.h>

#include "log.h"
#include "compat/probe-cache.h"
#include "util.h"

typedef struct CachedProbe {
        Verdict verdict;
        char *reason;
} CachedProbe;

struct ProbeCache {
        char *path;
        char *kernel;
        GHashTable *results;    /* ProbeKey -> CachedProbe */
};

static void cached_probe_free(CachedProbe *p) {
        g_free(p->reason);
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
                p->reason = g_key_file_get_string(k, *g, "Reason", NULL);
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
        g_autofree char *group = NULL, *data = NULL;
        CachedProbe *p = g_new0(CachedProbe, 1);
        gsize len;
        int r;

        p->verdict = j->verdict;
        p->reason = g_strdup(j->reason);
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
        g_key_file_set_string(k, group, "Reason", j->reason);
        data = g_key_file_to_data(k, &len, NULL);
        {
                g_autofree char *dir = g_path_get_dirname(c->path);

                (void) g_mkdir_with_parents(dir, 0700);
        }
        r = write_file_atomic(c->path, data, len);
        if (r < 0)
                log_warning_errno(r, "Cannot persist probe results in %s: %m", c->path);
}
