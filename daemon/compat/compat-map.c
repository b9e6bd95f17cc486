/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "compat/compat-map.h"
#include "util.h"

typedef struct Class {
        Identity *identity;     /* also its key in classes */
        GQueue members;         /* Member, oldest first: the head stands for the class */
} Class;

/* A node in its class. Linked into the class's queue and found by its
 * node, so that a node leaves its class without a walk through a class
 * of thousands. */
typedef struct Member {
        Node node;              /* the key in nodes */
        Class *class;
        GList link;
} Member;

/* A verdict's key: the two identities it judged (copies). */
typedef struct Pair {
        Identity *source, *target;
} Pair;

/* A driver's answer's key: what was written into which kind of target. */
typedef struct Asked {
        Basis basis;
        char *type, *version;   /* the target's */
        char *written;
} Asked;

/* Sources from elsewhere are whatever a caller names: their verdicts and
 * the drivers' answers to their versions are forgotten past the maxima,
 * so that callers cannot grow the daemon without bound. */

struct CompatMap {
        JudgeOps ops;
        GHashTable *drivers;    /* Asked -> the driver's answer (int) */
        GHashTable *nodes;      /* Node -> Member */
        GHashTable *classes;    /* Identity -> Class */
        GHashTable *verdicts;   /* Pair -> Judgement */
        CompatMapStats stats;
        unsigned remote_verdicts;       /* at most; some may be gone */
};

static void member_free(Member *m) {
        g_free((char *) m->node.name);
        g_free(m);
}

static Class *class_of(CompatMap *m, const Node *node) {
        Member *member = g_hash_table_lookup(m->nodes, node);

        return member ? member->class : NULL;
}

static const Node *class_head(const Class *c) {
        return &((Member *) c->members.head->data)->node;
}

static guint node_hash(gconstpointer p) {
        const Node *n = p;

        return g_str_hash(n->name) * 2 + n->kind;
}

static gboolean node_equal(gconstpointer p, gconstpointer q) {
        const Node *a = p, *b = q;

        return a->kind == b->kind && g_str_equal(a->name, b->name);
}

static guint pair_hash(gconstpointer p) {
        const Pair *k = p;

        return identity_hash(k->source) * 31 + identity_hash(k->target);
}

static gboolean pair_equal(gconstpointer p, gconstpointer q) {
        const Pair *a = p, *b = q;

        return identity_equal(a->source, b->source) && identity_equal(a->target, b->target);
}

static Pair *pair_dup(const Identity *source, const Identity *target) {
        Pair *k = g_new(Pair, 1);

        k->source = identity_copy(source);
        k->target = identity_copy(target);
        return k;
}

static void pair_free(Pair *k) {
        identity_free(k->source);
        identity_free(k->target);
        g_free(k);
}

static guint asked_hash(gconstpointer p) {
        const Asked *a = p;

        return ((g_str_hash(a->type) * 31 + g_str_hash(a->version)) * 31 + g_str_hash(a->written)) * 31 + a->basis;
}

static gboolean asked_equal(gconstpointer p, gconstpointer q) {
        const Asked *a = p, *b = q;

        return a->basis == b->basis && g_str_equal(a->type, b->type) && g_str_equal(a->version, b->version) &&
               g_str_equal(a->written, b->written);
}

static void asked_free(Asked *a) {
        g_free(a->type);
        g_free(a->version);
        g_free(a->written);
        g_free(a);
}

static void class_free(Class *c) {
        identity_free(c->identity);
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
static int counting_vendor(void *userdata, const Node *target, const char *version) {
        CompatMap *m = userdata;
        Class *c = class_of(m, target);
        Asked key = c ? (Asked) { c->identity->basis, c->identity->type, c->identity->version, (char *) version }
                      : (Asked) {};
        gpointer answer;
        int r;

        if (c && g_hash_table_lookup_extended(m->drivers, &key, NULL, &answer))
                return GPOINTER_TO_INT(answer);
        m->stats.vendor_checks++;
        r = m->ops.vendor(m->ops.userdata, target, version);
        if (c && !vendor_answer_busy(r)) {
                Asked *a = g_new(Asked, 1);

                if (g_hash_table_size(m->drivers) >= COMPAT_MAP_DRIVER_ANSWERS_MAX)
                        g_hash_table_remove_all(m->drivers);    /* a memo: it fills again */
                *a = (Asked) { key.basis, g_strdup(key.type), g_strdup(key.version), g_strdup(version) };
                g_hash_table_insert(m->drivers, a, GINT_TO_POINTER(r));
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
        m->drivers = g_hash_table_new_full(asked_hash, asked_equal, (GDestroyNotify) asked_free, NULL);
        m->nodes = g_hash_table_new_full(node_hash, node_equal, NULL, (GDestroyNotify) member_free);
        m->classes = g_hash_table_new_full(identity_hash, identity_equal, NULL, (GDestroyNotify) class_free);
        m->verdicts = g_hash_table_new_full(pair_hash, pair_equal, (GDestroyNotify) pair_free,
                                            (GDestroyNotify) judgement_free);
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

static const Judgement *judge(CompatMap *m, const Identity *source, const Class *target) {
        Pair k = { (Identity *) source, target->identity };
        JudgeOps ops = { counting_vendor, forward_probe, m };
        Judgement *j = g_hash_table_lookup(m->verdicts, &k);

        if (j && !j->retry)
                return j;
        if (!j && !g_hash_table_contains(m->classes, source))
                m->remote_verdicts++;
        j = g_new(Judgement, 1);
        *j = compat_judge(source, target->identity, class_head(target), &ops);
        m->stats.verdicts++;
        g_hash_table_replace(m->verdicts, pair_dup(source, target->identity), j);
        return j;
}

/* A new class is judged against every class, both ways, itself included. */
static void judge_class(CompatMap *m, Class *c) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                Class *o = v;

                judge(m, c->identity, o);
                if (o != c)
                        judge(m, o->identity, c);
        }
}

static void forget_verdicts_of(CompatMap *m, const Identity *id) {
        GHashTableIter i;
        gpointer k;

        g_hash_table_iter_init(&i, m->verdicts);
        while (g_hash_table_iter_next(&i, &k, NULL)) {
                const Pair *p = k;

                if (identity_equal(p->source, id) || identity_equal(p->target, id))
                        g_hash_table_iter_remove(&i);
        }
}

static void unlink_node(CompatMap *m, const Node *node) {
        Member *member = g_hash_table_lookup(m->nodes, node);
        Class *c = member ? member->class : NULL;

        if (!c)
                return;
        g_queue_unlink(&c->members, &member->link);
        g_hash_table_remove(m->nodes, node);
        if (g_queue_is_empty(&c->members)) {
                forget_verdicts_of(m, c->identity);
                g_hash_table_remove(m->classes, c->identity);
        }
}

static void link_node(CompatMap *m, const Node *node, const Identity *id) {
        Class *c = g_hash_table_lookup(m->classes, id);
        Member *member = g_new0(Member, 1);
        bool new = !c;

        if (new) {
                c = g_new0(Class, 1);
                c->identity = identity_copy(id);
                g_queue_init(&c->members);
                g_hash_table_insert(m->classes, c->identity, c);
        }
        member->node = (Node) { node->kind, g_strdup(node->name) };
        member->class = c;
        member->link.data = member;
        g_queue_push_tail_link(&c->members, &member->link);
        g_hash_table_insert(m->nodes, &member->node, member);
        if (new)
                judge_class(m, c);
}

void compat_map_set_view(CompatMap *m, const Node *node, const Identity *id) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
        Class *c = class_of(m, node);

        if (!c || !identity_equal(c->identity, id)) {
                unlink_node(m, node);
                link_node(m, node, id);
        }
        m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
}

void compat_map_set(CompatMap *m, const Node *node, Identity *id) {
        compat_map_set_view(m, node, id);
        identity_free(id);
}

void compat_map_remove(CompatMap *m, const Node *node) {
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);

        unlink_node(m, node);
        m->stats.last_change_usec = now_usec(CLOCK_MONOTONIC) - t0;
}

const Identity *compat_map_identity(CompatMap *m, const Node *node) {
        Class *c = class_of(m, node);

        return c ? c->identity : NULL;
}

const Judgement *compat_map_verdict(CompatMap *m, const Node *source, const Node *target) {
        Class *s = class_of(m, source), *t = class_of(m, target);

        return s && t ? judge(m, s->identity, t) : NULL;
}

const Judgement *compat_map_kept_verdict(CompatMap *m, const Node *source, const Node *target) {
        Class *s = class_of(m, source), *t = class_of(m, target);

        /* every pair of classes was judged when the later of them came */
        return s && t ? g_hash_table_lookup(m->verdicts, &(Pair) { s->identity, t->identity }) : NULL;
}

/* Called before a query, never during one: callers hold pointers to
 * verdicts until they are done. */
static void forget_remote_verdicts(CompatMap *m) {
        GHashTableIter i;
        gpointer k;

        if (m->remote_verdicts < COMPAT_MAP_REMOTE_VERDICTS_MAX)
                return;
        g_hash_table_iter_init(&i, m->verdicts);
        while (g_hash_table_iter_next(&i, &k, NULL))
                if (!g_hash_table_contains(m->classes, ((Pair *) k)->source))
                        g_hash_table_iter_remove(&i);
        m->remote_verdicts = 0;
}

const Judgement *compat_map_verdict_for(CompatMap *m, const Identity *source, const Node *target) {
        Class *t = class_of(m, target);

        forget_remote_verdicts(m);
        return t ? judge(m, source, t) : NULL;
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
        if (x->node.kind != y->node.kind)
                return x->node.kind == NODE_DEVICE ? -1 : 1;
        return strcmp(x->node.name, y->node.name);
}

static GArray *collect_targets(CompatMap *m, const Identity *source, int worst_rank) {
        GArray *out = g_array_new(FALSE, FALSE, sizeof(CompatTarget));
        GHashTableIter i;
        gpointer v;

        forget_remote_verdicts(m);
        g_hash_table_iter_init(&i, m->classes);
        while (g_hash_table_iter_next(&i, NULL, &v)) {
                Class *c = v;
                const Judgement *j = judge(m, source, c);

                if (verdict_rank(j->verdict) > worst_rank)
                        continue;
                for (GList *l = c->members.head; l; l = l->next) {
                        CompatTarget t = { ((Member *) l->data)->node, j };

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
                const Pair *p = vk;

                if (!g_hash_table_contains(m->classes, p->source) &&
                    identity_is(p->source, source_type, source_version) &&
                    identity_is(p->target, target_type, target_version))
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
                        Pair k = { s->identity, t->identity };

                        if (!identity_is(t->identity, target_type, target_version))
                                continue;
                        g_hash_table_remove(m->verdicts, &k);
                        judge(m, s->identity, t);
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
