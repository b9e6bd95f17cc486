/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "compat-map.h"
#include "util.h"

typedef struct Class {
        char *key;
        Identity *identity;
        GPtrArray *nodes;       /* names; nodes->pdata[0] stands for the class */
} Class;

/* Sources from elsewhere are whatever a caller names: their verdicts and
 * the drivers' answers to their versions are forgotten past the maxima,
 * so that callers cannot grow the daemon without bound. */

struct CompatMap {
        JudgeOps ops;
        GHashTable *drivers;    /* "judge key\nversion" -> the driver's answer (int) */
        GHashTable *nodes;      /* node -> Class */
        GHashTable *classes;    /* key -> Class */
        GHashTable *verdicts;   /* "source key\ntarget key" -> Judgement */
        CompatMapStats stats;
        unsigned remote_verdicts;       /* at most; some may be gone */
};

static void class_free(Class *c) {
        g_free(c->key);
        identity_free(c->identity);
        g_ptr_array_unref(c->nodes);
        g_free(c);
}

static void judgement_free(Judgement *j) {
        judgement_clear(j);
        g_free(j);
}

/* A driver's answer depends on the version written and on what the
 * target is (type, version, basis), not on its flags or which of its
 * kind we ask: remember it at that level, and count what reaches a
 * driver. */
static char *judge_key(const Identity *id, const char *version) {
        return g_strdup_printf("%s\x1f%s\x1f%s\n%s", basis_to_string(id->basis), id->type, id->version, version);
}

static int counting_vendor(void *userdata, const char *target, const char *version) {
        CompatMap *m = userdata;
        Class *c = g_hash_table_lookup(m->nodes, target);
        g_autofree char *key = c ? judge_key(c->identity, version) : NULL;
        gpointer answer;
        int r;

        if (key && g_hash_table_lookup_extended(m->drivers, key, NULL, &answer))
                return GPOINTER_TO_INT(answer);
        m->stats.vendor_checks++;
        r = m->ops.vendor(m->ops.userdata, target, version);
        if (key && !vendor_answer_busy(r)) {
                if (g_hash_table_size(m->drivers) >= COMPAT_MAP_DRIVER_ANSWERS_MAX)
                        g_hash_table_remove_all(m->drivers);    /* a memo: it fills again */
                g_hash_table_insert(m->drivers, g_steal_pointer(&key), GINT_TO_POINTER(r));
        }
        return r;
}

static bool forward_probe(void *userdata, const Identity *s, const Identity *t, Judgement *ret) {
        CompatMap *m = userdata;

        return m->ops.probe && m->ops.probe(m->ops.userdata, s, t, ret);
}

CompatMap *compat_map_new(const JudgeOps *ops) {
        CompatMap *m = g_new0(CompatMap, 1);

        m->ops = *ops;
        m->drivers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->nodes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->classes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) class_free);
        m->verdicts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) judgement_free);
        return m;
}

void compat_map_free(CompatMap *m) {
        if (!m)
                return;
        g_hash_table_destroy(m->verdicts);
        g_hash_table_destroy(m->drivers);
        g_hash_table_destroy(m->nodes);
        g_hash_table_destroy(m->classes);
        g_free(m);
}

static char *pair_key(const char *source_key, const char *target_key) {
        return g_strconcat(source_key, "\n", target_key, NULL);
}

static const Judgement *judge(CompatMap *m, const Identity *source, const char *source_key, const Class *target) {
        g_autofree char *k = pair_key(source_key, target->key);
        JudgeOps ops = { counting_vendor, forward_probe, m };
        Judgement *j = g_hash_table_lookup(m->verdicts, k);

        if (j && !j->retry)
                return j;
        if (!j && !g_hash_table_contains(m->classes, source_key))
                m->remote_verdicts++;
        j = g_new(Judgement, 1);
        *j = compat_judge(source, target->identity, target->nodes->pdata[0], &ops);
        m->stats.verdicts++;
        g_hash_table_replace(m->verdicts, g_steal_pointer(&k), j);
        return j;
}

/* A new class is judged against every class, both ways, itself included. */
static void judge_class(CompatMap *m, Class *c) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                Class *o = v;

                judge(m, c->identity, c->key, o);
                if (o != c)
                        judge(m, o->identity, o->key, c);
        }
}

static void forget_verdicts_of(CompatMap *m, const char *key) {
        GHashTableIter i;
        gpointer k;

        g_hash_table_iter_init(&i, m->verdicts);
        while (g_hash_table_iter_next(&i, &k, NULL)) {
                const char *nl = strchr(k, '\n');

                if ((size_t) (nl - (const char *) k) == strlen(key) && strncmp(k, key, nl - (const char *) k) == 0)
                        g_hash_table_iter_remove(&i);
                else if (g_str_equal(nl + 1, key))
                        g_hash_table_iter_remove(&i);
        }
}

static void unlink_node(CompatMap *m, const char *node) {
        Class *c = g_hash_table_lookup(m->nodes, node);

        if (!c)
                return;
        g_hash_table_remove(m->nodes, node);
        for (guint i = 0; i < c->nodes->len; i++)
                if (g_str_equal(c->nodes->pdata[i], node)) {
                        g_ptr_array_remove_index(c->nodes, i);
                        break;
                }
        if (c->nodes->len == 0) {
                forget_verdicts_of(m, c->key);
                g_hash_table_remove(m->classes, c->key);
        }
}

void compat_map_set(CompatMap *m, const char *node, Identity *id) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        g_autofree char *key = identity_class_key(id);
        Class *c = g_hash_table_lookup(m->nodes, node);

        if (c && g_str_equal(c->key, key)) {
                identity_free(id);
                m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
                return;
        }
        unlink_node(m, node);
        c = g_hash_table_lookup(m->classes, key);
        if (c)
                identity_free(id);
        else {
                c = g_new0(Class, 1);
                c->key = g_steal_pointer(&key);
                c->identity = id;
                c->nodes = g_ptr_array_new_with_free_func(g_free);
                g_ptr_array_add(c->nodes, g_strdup(node));
                g_hash_table_insert(m->classes, c->key, c);
                g_hash_table_insert(m->nodes, g_strdup(node), c);
                judge_class(m, c);
                m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
                return;
        }
        g_ptr_array_add(c->nodes, g_strdup(node));
        g_hash_table_insert(m->nodes, g_strdup(node), c);
        m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
}

void compat_map_remove(CompatMap *m, const char *node) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);

        unlink_node(m, node);
        m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
}

const Identity *compat_map_identity(CompatMap *m, const char *node) {
        Class *c = g_hash_table_lookup(m->nodes, node);

        return c ? c->identity : NULL;
}

const Judgement *compat_map_verdict(CompatMap *m, const char *source, const char *target) {
        Class *s = g_hash_table_lookup(m->nodes, source), *t = g_hash_table_lookup(m->nodes, target);

        return s && t ? judge(m, s->identity, s->key, t) : NULL;
}

/* Called before a query, never during one: callers hold pointers to
 * verdicts until they are done. */
static void forget_remote_verdicts(CompatMap *m) {
        GHashTableIter i;
        gpointer k;

        if (m->remote_verdicts < COMPAT_MAP_REMOTE_VERDICTS_MAX)
                return;
        g_hash_table_iter_init(&i, m->verdicts);
        while (g_hash_table_iter_next(&i, &k, NULL)) {
                g_autofree char *source_key = g_strndup(k, strchr(k, '\n') - (const char *) k);

                if (!g_hash_table_contains(m->classes, source_key))
                        g_hash_table_iter_remove(&i);
        }
        m->remote_verdicts = 0;
}

const Judgement *compat_map_verdict_for(CompatMap *m, const Identity *source, const char *target) {
        Class *t = g_hash_table_lookup(m->nodes, target);
        g_autofree char *key = identity_class_key(source);

        forget_remote_verdicts(m);
        return t ? judge(m, source, key, t) : NULL;
}

/* compatible, unknown, incompatible */
static int verdict_rank(Verdict v) {
        return v == VERDICT_COMPATIBLE ? 0 : v == VERDICT_UNKNOWN ? 1 : 2;
}

static int compare_targets(gconstpointer a, gconstpointer b) {
        const CompatTarget *x = a, *y = b;

        if (x->judgement->verdict != y->judgement->verdict)
                return verdict_rank(x->judgement->verdict) - verdict_rank(y->judgement->verdict);
        if (x->judgement->basis != y->judgement->basis)
                return (int) x->judgement->basis - (int) y->judgement->basis;
        return strcmp(x->node, y->node);
}

static GArray *collect_targets(CompatMap *m, const Identity *source, int worst_rank) {
        GArray *out = g_array_new(FALSE, FALSE, sizeof(CompatTarget));
        g_autofree char *key = identity_class_key(source);
        GHashTableIter i;
        gpointer v;

        forget_remote_verdicts(m);
        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                Class *c = v;
                const Judgement *j = judge(m, source, key, c);

                if (verdict_rank(j->verdict) > worst_rank)
                        continue;
                for (guint n = 0; n < c->nodes->len; n++) {
                        CompatTarget t = { c->nodes->pdata[n], j };

                        g_array_append_val(out, t);
                }
        }
        g_array_sort(out, compare_targets);
        return out;
}

GArray *compat_map_targets(CompatMap *m, const Identity *source) {
        return collect_targets(m, source, 2);
}

GArray *compat_map_candidates(CompatMap *m, const Identity *source, bool with_unknown) {
        return collect_targets(m, source, with_unknown ? 1 : 0);
}

/* Whether a class key (basis\x1ftype\x1fversion\x1f...) is of this type
 * and version. */
static bool key_is(const char *key, const char *type, const char *version) {
        const char *a = strchr(key, '\x1f'), *b = a ? strchr(a + 1, '\x1f') : NULL;
        const char *c = b ? strchr(b + 1, '\x1f') : NULL;

        return c && (size_t) (b - a - 1) == strlen(type) && strncmp(a + 1, type, b - a - 1) == 0 &&
               (size_t) (c - b - 1) == strlen(version) && strncmp(b + 1, version, c - b - 1) == 0;
}

static bool identity_is(const Identity *id, const char *type, const char *version) {
        return g_str_equal(id->type, type) && g_str_equal(id->version, version);
}

void compat_map_invalidate(CompatMap *m, const char *source_type, const char *source_version,
                           const char *target_type, const char *target_version) {
        GHashTableIter i, j;
        gpointer sv, tv, vk;

        /* sources from elsewhere are no classes: their verdicts go, and are
         * judged again when asked for */
        g_hash_table_iter_init(&i, m->verdicts);
        while (g_hash_table_iter_next(&i, &vk, NULL)) {
                const char *nl = strchr(vk, '\n');
                g_autofree char *source_key = g_strndup(vk, nl - (const char *) vk);

                if (!g_hash_table_contains(m->classes, source_key) &&
                    key_is(source_key, source_type, source_version) && key_is(nl + 1, target_type, target_version))
                        g_hash_table_iter_remove(&i);
        }

        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &sv)) {
                Class *s = sv;

                if (!identity_is(s->identity, source_type, source_version))
                        continue;
                g_hash_table_iter_init(&j, m->classes);
                while (g_hash_table_iter_next(&j, NULL, &tv)) {
                        Class *t = tv;
                        g_autofree char *k = NULL;

                        if (!identity_is(t->identity, target_type, target_version))
                                continue;
                        k = pair_key(s->key, t->key);
                        g_hash_table_remove(m->verdicts, k);
                        judge(m, s->identity, s->key, t);
                }
        }
}

bool compat_map_knows(CompatMap *m, const char *type, const char *version) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (identity_is(((Class *) v)->identity, type, version))
                        return true;
        return false;
}

void compat_map_stats(CompatMap *m, CompatMapStats *ret) {
        *ret = m->stats;
        ret->nodes = g_hash_table_size(m->nodes);
        ret->classes = g_hash_table_size(m->classes);
        ret->kept_verdicts = g_hash_table_size(m->verdicts);
        ret->driver_answers = g_hash_table_size(m->drivers);
}
