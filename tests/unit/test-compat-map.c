/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "compat/compat-map.h"
#include "vfio-uapi.h"
#include "unit-test.h"

#define F_SC  VFIO_MIGRATION_STOP_COPY
#define F_P2P VFIO_MIGRATION_P2P
#define F_PRE VFIO_MIGRATION_PRE_COPY

/* the tests name devices; types are nodes of their own kind */
#define D(name) (&NODE_OF_DEVICE(name))

/* ---- the judge: counts its work ---- */

typedef struct Counter {
        CompatMap *m;
        uint64_t vendor_calls;
        uint64_t probe_calls;
        /* a probe result for (probe_src -> probe_tgt), "TYPE/VERSION", while probe_on */
        bool probe_on;
        Verdict probe_verdict;
        const char *probe_src, *probe_tgt;
} Counter;

/* The target's driver accepts exactly its own version. It is asked about a
 * node of the map, never about one gone. */
static int vendor_cb(void *userdata, const Node *target_node, const char *version) {
        Counter *c = userdata;
        const Identity *t = compat_map_identity(c->m, target_node);

        c->vendor_calls++;
        if (!t) {
                fail("the vendor judge was asked about node %s, which is not in the map", target_node->name);
                return -ENODEV;
        }
        if (t->basis != BASIS_VENDOR)
                fail("the vendor judge was asked about node %s, whose basis is %s", target_node->name,
                     basis_to_string(t->basis));
        return g_str_equal(version, t->version) ? 0 : -EINVAL;
}

static bool probe_cb(void *userdata, const Identity *source, const Identity *target, Judgement *ret) {
        Counter *c = userdata;
        g_autofree char *s = g_strdup_printf("%s/%s", source->type, source->version);
        g_autofree char *t = g_strdup_printf("%s/%s", target->type, target->version);

        c->probe_calls++;
        if (!c->probe_on || !g_str_equal(s, c->probe_src) || !g_str_equal(t, c->probe_tgt))
                return false;
        *ret = (Judgement) { .verdict = c->probe_verdict, .basis = BASIS_PROBE,
                             .reason = g_strdup_printf("probed %s -> %s", s, t) };
        return true;
}

static CompatMap *map_new(Counter *c) {
        JudgeOps ops = { vendor_cb, probe_cb, c };

        c->m = compat_map_new(&ops);
        return c->m;
}

/* ---- helpers ---- */

static Identity *ident(const char *type, const char *version, Basis basis, uint32_t flags) {
        Identity *id = identity_new(type, version, basis);

        id->flags = flags;
        return id;
}

static Identity *vid(const char *version) {
        return ident("T", version, BASIS_VENDOR, F_SC);
}

static CompatMapStats stats(CompatMap *m) {
        CompatMapStats s;

        compat_map_stats(m, &s);
        return s;
}

static void check_stats(CompatMap *m, const Counter *c, const char *when, unsigned nodes, unsigned classes,
                        uint64_t verdicts) {
        CompatMapStats s = stats(m);

        g_test_message("%s: %u nodes, %u classes, %" PRIu64 " verdicts, %" PRIu64 " vendor checks", when, s.nodes,
                       s.classes, s.verdicts, s.vendor_checks);
        if (s.nodes != nodes || s.classes != classes || s.verdicts != verdicts)
                fail("%s: %u nodes, %u classes, %" PRIu64 " verdicts; want %u, %u, %" PRIu64, when, s.nodes,
                     s.classes, s.verdicts, nodes, classes, verdicts);
        if (s.vendor_checks != c->vendor_calls)
                fail("%s: stats say %" PRIu64 " vendor checks, the judge counted %" PRIu64, when, s.vendor_checks,
                     c->vendor_calls);
        if (s.vendor_checks > s.verdicts)
                fail("%s: %" PRIu64 " vendor checks for %" PRIu64 " verdicts", when, s.vendor_checks, s.verdicts);
}

static char *dev(unsigned i) {
        return g_strdup_printf("dev-%03u", i);
}

/* n nodes dev-000..., node i in class i % classes (vendor basis, version "vK") */
static void add_nodes(CompatMap *m, unsigned first, unsigned n, unsigned classes) {
        for (unsigned i = first; i < first + n; i++) {
                g_autofree char *name = dev(i), *version = g_strdup_printf("v%u", i % classes);

                compat_map_set(m, D(name), vid(version));
        }
}

static void check_verdict(CompatMap *m, const char *source, const char *target, Verdict want, Basis want_basis) {
        const Judgement *j = compat_map_verdict(m, D(source), D(target));

        if (!j)
                fail("%s -> %s: no verdict", source, target);
        else if (j->verdict != want || j->basis != want_basis)
                fail("%s -> %s: %s (%s: %s), want %s (%s)", source, target, verdict_to_string(j->verdict),
                     basis_to_string(j->basis), j->reason, verdict_to_string(want), basis_to_string(want_basis));
}

/* ---- tests ---- */

static void test_empty(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        g_autoptr(Identity) src = vid("v0");
        g_autoptr(GArray) targets = NULL;

        check_stats(m, &c, "empty", 0, 0, 0);
        compat_map_remove(m, D("nothing"));
        g_assert_null(compat_map_identity(m, D("nothing")));
        g_assert_null(compat_map_verdict(m, D("a"), D("b")));
        g_assert_null(compat_map_verdict_for(m, src, D("b")));
        targets = compat_map_targets(m, src);
        g_assert_cmpuint(targets->len, ==, 0);
        check_stats(m, &c, "empty, after queries", 0, 0, 0);
}

/* 100 nodes in 5 classes: one verdict per class pair, never per node. */
static void test_build(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);

        add_nodes(m, 0, 100, 5);
        check_stats(m, &c, "100 nodes in 5 classes", 100, 5, 25);
        g_assert_cmpuint(stats(m).vendor_checks, <=, 25);

        /* every node pair has its verdict, from the cache */
        for (unsigned i = 0; i < 100; i++)
                for (unsigned j = 0; j < 100; j++) {
                        g_autofree char *a = dev(i), *b = dev(j);

                        check_verdict(m, a, b, i % 5 == j % 5 ? VERDICT_COMPATIBLE : VERDICT_INCOMPATIBLE,
                                      BASIS_VENDOR);
                }
        check_stats(m, &c, "after 10,000 lookups", 100, 5, 25);
        g_assert_null(compat_map_verdict(m, D("dev-000"), D("no-such-node")));
        g_assert_null(compat_map_verdict(m, D("no-such-node"), D("dev-000")));
        g_assert_cmpstr(compat_map_identity(m, D("dev-007"))->version, ==, "v2");
}

static void test_add_existing_class(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);

        add_nodes(m, 0, 100, 5);
        compat_map_set(m, D("dev-100"), vid("v2"));
        check_stats(m, &c, "a node of a known class", 101, 5, 25);
        g_assert_cmpstr(compat_map_identity(m, D("dev-100"))->version, ==, "v2");
        check_verdict(m, "dev-100", "dev-002", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-002", "dev-100", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-100", "dev-100", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-100", "dev-003", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-004", "dev-100", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_stats(m, &c, "its verdicts looked up", 101, 5, 25);

        /* setting a node to an equal identity again changes nothing */
        compat_map_set(m, D("dev-100"), vid("v2"));
        compat_map_set(m, D("dev-000"), vid("v0"));
        check_stats(m, &c, "equal identities set again", 101, 5, 25);
}

static void test_add_new_class(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        uint64_t verdicts = 25;

        add_nodes(m, 0, 100, 5);

        /* with 5 classes, a sixth costs 2 * 5 + 1 verdicts: both ways with each, and itself */
        compat_map_set(m, D("new-0"), vid("v9"));
        verdicts += 2 * 5 + 1;
        check_stats(m, &c, "a sixth class", 101, 6, verdicts);
        check_verdict(m, "new-0", "new-0", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "new-0", "dev-000", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-004", "new-0", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_stats(m, &c, "its verdicts looked up", 101, 6, verdicts);

        /* a second node of it: free */
        compat_map_set(m, D("new-1"), vid("v9"));
        check_stats(m, &c, "a second node of the sixth class", 102, 6, verdicts);
        check_verdict(m, "new-1", "new-0", VERDICT_COMPATIBLE, BASIS_VENDOR);

        /* a seventh class, type-match: 2 * 6 + 1 verdicts, none asked of a driver
         * (it has no version to give, and is no vendor target) */
        {
                uint64_t vendor = c.vendor_calls;

                compat_map_set(m, D("tm-0"), ident("T", "", BASIS_TYPE_MATCH, F_SC));
                verdicts += 2 * 6 + 1;
                check_stats(m, &c, "a type-match class", 103, 7, verdicts);
                g_assert_cmpuint(c.vendor_calls, ==, vendor);
                check_verdict(m, "tm-0", "tm-0", VERDICT_COMPATIBLE, BASIS_TYPE_MATCH);
                check_verdict(m, "tm-0", "dev-000", VERDICT_UNKNOWN, BASIS_VENDOR);
                check_verdict(m, "dev-000", "tm-0", VERDICT_UNKNOWN, BASIS_TYPE_MATCH);
        }
        /* an eighth, differing only in flags from an existing class */
        {
                compat_map_set(m, D("pre-0"), ident("T", "v1", BASIS_VENDOR, F_SC | F_PRE));
                verdicts += 2 * 7 + 1;
                check_stats(m, &c, "a class differing in flags", 104, 8, verdicts);
                check_verdict(m, "pre-0", "dev-001", VERDICT_COMPATIBLE, BASIS_VENDOR);
                g_assert_nonnull(strstr(compat_map_verdict(m, D("pre-0"), D("dev-001"))->reason, "without pre-copy"));
        }
}

static void test_remove_class(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);

        add_nodes(m, 0, 100, 5);

        /* the first node of class 1 stands for it in the vendor's check; remove it first */
        compat_map_remove(m, D("dev-001"));
        check_stats(m, &c, "dev-001 removed", 99, 5, 25);
        g_assert_null(compat_map_identity(m, D("dev-001")));
        g_assert_null(compat_map_verdict(m, D("dev-001"), D("dev-006")));
        check_verdict(m, "dev-006", "dev-011", VERDICT_COMPATIBLE, BASIS_VENDOR);

        /* class 0, node by node: the class goes with its last node, nothing is judged */
        for (unsigned i = 0; i < 100; i += 5) {
                g_autofree char *name = dev(i);
                g_autofree char *when = g_strdup_printf("%s removed", name);

                compat_map_remove(m, D(name));
                check_stats(m, &c, when, 99 - (i / 5 + 1), i == 95 ? 4 : 5, 25);
        }
        compat_map_remove(m, D("dev-000"));                /* again: no-op */
        compat_map_remove(m, D("no-such-node"));
        check_stats(m, &c, "class 0 gone", 79, 4, 25);

        /* the other verdicts stay, cached */
        for (unsigned i = 1; i < 100; i++)
                for (unsigned j = 1; j < 100; j++) {
                        g_autofree char *a = dev(i), *b = dev(j);

                        if (i % 5 == 0 || j % 5 == 0 || i == 1 || j == 1)
                                continue;
                        check_verdict(m, a, b, i % 5 == j % 5 ? VERDICT_COMPATIBLE : VERDICT_INCOMPATIBLE,
                                      BASIS_VENDOR);
                }
        check_stats(m, &c, "remaining verdicts looked up", 79, 4, 25);

        /* class 0 again: its old verdicts were forgotten, so it is judged anew
         * (2 * 4 + 1), against whichever node now stands for class 1 */
        compat_map_set(m, D("dev-000"), vid("v0"));
        check_stats(m, &c, "class 0 back", 80, 5, 25 + 2 * 4 + 1);
        check_verdict(m, "dev-000", "dev-006", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-006", "dev-000", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-000", "dev-000", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_stats(m, &c, "class 0 looked up", 80, 5, 25 + 2 * 4 + 1);
}

static void test_change_identity(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        uint64_t verdicts = 25;

        add_nodes(m, 0, 100, 5);

        /* into an existing class: free */
        compat_map_set(m, D("dev-001"), vid("v3"));
        check_stats(m, &c, "dev-001 to class 3", 100, 5, verdicts);
        g_assert_cmpstr(compat_map_identity(m, D("dev-001"))->version, ==, "v3");
        check_verdict(m, "dev-001", "dev-003", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-001", "dev-006", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_verdict(m, "dev-006", "dev-001", VERDICT_INCOMPATIBLE, BASIS_VENDOR);
        check_stats(m, &c, "dev-001 looked up", 100, 5, verdicts);

        /* into a new class: its pairs only */
        compat_map_set(m, D("dev-002"), vid("v7"));
        verdicts += 2 * 5 + 1;
        check_stats(m, &c, "dev-002 to a new class", 100, 6, verdicts);
        check_verdict(m, "dev-002", "dev-007", VERDICT_INCOMPATIBLE, BASIS_VENDOR);

        /* from a class of its own into a new one: the old class goes first */
        compat_map_set(m, D("dev-002"), vid("v8"));
        verdicts += 2 * 5 + 1;
        check_stats(m, &c, "dev-002 to another new class", 100, 6, verdicts);
        g_assert_cmpstr(compat_map_identity(m, D("dev-002"))->version, ==, "v8");

        /* an equal identity (another object): nothing */
        compat_map_set(m, D("dev-002"), vid("v8"));
        check_stats(m, &c, "dev-002 set equal", 100, 6, verdicts);

        /* back into its first class: free, and its own class goes */
        compat_map_set(m, D("dev-002"), vid("v2"));
        check_stats(m, &c, "dev-002 back", 100, 5, verdicts);
        check_verdict(m, "dev-002", "dev-007", VERDICT_COMPATIBLE, BASIS_VENDOR);

        /* another basis, same type and version: another class */
        compat_map_set(m, D("dev-003"), ident("T", "v3", BASIS_RULE, F_SC));
        verdicts += 2 * 5 + 1;
        check_stats(m, &c, "dev-003 to rule basis", 100, 6, verdicts);
        g_assert_cmpint(compat_map_identity(m, D("dev-003"))->basis, ==, BASIS_RULE);
        check_verdict(m, "dev-003", "dev-008", VERDICT_COMPATIBLE, BASIS_VENDOR);
        check_stats(m, &c, "dev-003 looked up", 100, 6, verdicts);
}

/* A source not in the map: judged per target class, once. */
static void test_verdict_for(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        g_autoptr(Identity) same = vid("v1");
        g_autoptr(Identity) remote = ident("T", "v1", BASIS_VENDOR, F_SC | F_PRE);
        const Judgement *j, *j2;

        add_nodes(m, 0, 100, 5);

        /* equal to a local class: its verdicts serve */
        j = compat_map_verdict_for(m, same, D("dev-006"));
        g_assert_nonnull(j);
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_true(j == compat_map_verdict(m, D("dev-001"), D("dev-006")));
        check_stats(m, &c, "a remote source equal to a local class", 100, 5, 25);

        /* another class: one verdict per target class, however often asked */
        j = compat_map_verdict_for(m, remote, D("dev-001"));
        check_stats(m, &c, "remote -> dev-001", 100, 5, 26);
        j2 = compat_map_verdict_for(m, remote, D("dev-001"));
        check_stats(m, &c, "remote -> dev-001 again", 100, 5, 26);
        g_assert_true(j == j2);
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_cmpint(j->basis, ==, BASIS_VENDOR);
        j2 = compat_map_verdict_for(m, remote, D("dev-006"));           /* same class as dev-001 */
        g_assert_true(j == j2);
        check_stats(m, &c, "remote -> dev-006", 100, 5, 26);
        j = compat_map_verdict_for(m, remote, D("dev-002"));
        g_assert_cmpint(j->verdict, ==, VERDICT_INCOMPATIBLE);
        check_stats(m, &c, "remote -> dev-002", 100, 5, 27);

        for (int round = 0; round < 2; round++)
                for (unsigned i = 0; i < 100; i++) {
                        g_autofree char *name = dev(i);

                        j = compat_map_verdict_for(m, remote, D(name));
                        if (!j || j->verdict != (i % 5 == 1 ? VERDICT_COMPATIBLE : VERDICT_INCOMPATIBLE))
                                fail("remote -> %s: %s", name, j ? verdict_to_string(j->verdict) : "NULL");
                }
        check_stats(m, &c, "remote -> every node, twice", 100, 5, 25 + 5);
        g_assert_null(compat_map_verdict_for(m, remote, D("no-such-node")));
        /* the remote source did not become a node */
        check_stats(m, &c, "remote -> unknown node", 100, 5, 25 + 5);
}

/* ---- targets ---- */

static int verdict_rank(Verdict v) {
        switch (v) {
        case VERDICT_COMPATIBLE:        return 0;
        case VERDICT_UNKNOWN:           return 1;
        case VERDICT_INCOMPATIBLE:      return 2;
        default:                        return 3;
        }
}

static int basis_rank(Basis b) {
        switch (b) {
        case BASIS_VENDOR:              return 0;
        case BASIS_PROBE:               return 1;
        case BASIS_RULE:                return 2;
        case BASIS_TYPE_MATCH:          return 3;
        default:                        return 4;
        }
}

static const struct {
        const char *node, *type, *version;
        Basis basis;
        uint32_t flags;
} target_nodes[] = {
        { "vend-b", "T", "1", BASIS_VENDOR, F_SC },
        { "vend-a", "T", "1", BASIS_VENDOR, F_SC },
        { "vend-x", "T", "2", BASIS_VENDOR, F_SC },
        { "rule-1b", "T", "1", BASIS_RULE, F_SC },
        { "rule-1a", "T", "1", BASIS_RULE, F_SC },
        { "rule-2", "T", "2", BASIS_RULE, F_SC },
        { "tm-1", "T", "", BASIS_TYPE_MATCH, F_SC },
        { "nostop", "T", "1", BASIS_VENDOR, F_P2P },
        { "prb-1", "P", "1", BASIS_RULE, F_SC },
        { "pvend", "P", "1", BASIS_VENDOR, F_SC },
        { "u-vend", "U", "1", BASIS_VENDOR, F_SC },
};

static char *describe(GArray *targets) {
        GString *s = g_string_new(NULL);

        for (guint i = 0; i < targets->len; i++) {
                const CompatTarget *t = &g_array_index(targets, CompatTarget, i);

                g_string_append_printf(s, "%s%s(%s/%s)", i ? " " : "", t->node.name,
                                       verdict_to_string(t->judgement->verdict), basis_to_string(t->judgement->basis));
        }
        return g_string_free(s, FALSE);
}

static void check_targets(CompatMap *m, const char *what, const Identity *source, const char *const *want) {
        g_autoptr(GArray) targets = compat_map_targets(m, source);
        g_autofree char *got = describe(targets);
        g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
        g_autofree char *want_s = g_strjoinv(" ", (char **) want);
        GString *names = g_string_new(NULL);
        g_autofree char *names_s = NULL;

        g_test_message("%s: %s", what, got);
        if (targets->len != G_N_ELEMENTS(target_nodes))
                fail("%s: %u targets, want every node (%zu): %s", what, targets->len, G_N_ELEMENTS(target_nodes),
                     got);
        for (guint i = 0; i < targets->len; i++) {
                const CompatTarget *t = &g_array_index(targets, CompatTarget, i);

                g_string_append_printf(names, "%s%s", i ? " " : "", t->node.name);
                if (!g_hash_table_add(seen, (gpointer) t->node.name))
                        fail("%s: %s listed twice: %s", what, t->node.name, got);
                if (t->judgement != compat_map_verdict_for(m, source, &t->node))
                        fail("%s: %s: the listed verdict is not the map's", what, t->node.name);
                if (i > 0) {
                        const CompatTarget *p = &g_array_index(targets, CompatTarget, i - 1);
                        int dv = verdict_rank(p->judgement->verdict) - verdict_rank(t->judgement->verdict);
                        int db = basis_rank(p->judgement->basis) - basis_rank(t->judgement->basis);

                        if (dv > 0 || (dv == 0 && db > 0) || (dv == 0 && db == 0 && strcmp(p->node.name, t->node.name) > 0))
                                fail("%s: %s listed before %s: %s", what, p->node.name, t->node.name, got);
                }
        }
        names_s = g_string_free(names, FALSE);
        if (!g_str_equal(names_s, want_s))
                fail("%s: order\n  got  %s\n  want %s\n  (%s)", what, names_s, want_s, got);
}

static void test_targets(void) {
        Counter c = { .probe_on = true, .probe_verdict = VERDICT_COMPATIBLE, .probe_src = "P/1",
                      .probe_tgt = "P/1" };
        g_autoptr(CompatMap) m = map_new(&c);

        for (size_t i = 0; i < G_N_ELEMENTS(target_nodes); i++)
                compat_map_set(m, D(target_nodes[i].node),
                               ident(target_nodes[i].type, target_nodes[i].version, target_nodes[i].basis,
                                     target_nodes[i].flags));

        /* a rule source: vendor before rule among the compatible; then unknown;
         * then incompatible, vendor before rule, each by name */
        {
                g_autoptr(Identity) src = ident("T", "1", BASIS_RULE, F_SC);
                const char *const want[] = {
                        "vend-a", "vend-b",                             /* compatible, vendor */
                        "rule-1a", "rule-1b",                           /* compatible, rule */
                        "tm-1",                                         /* unknown, type-match */
                        "vend-x",                                       /* incompatible, vendor */
                        "nostop", "prb-1", "pvend", "rule-2", "u-vend", /* incompatible, rule */
                        NULL
                };

                check_targets(m, "rule source", src, want);
        }
        /* a source with a probe result: vendor, then probe */
        {
                g_autoptr(Identity) src = ident("P", "1", BASIS_RULE, F_SC);
                const char *const want[] = {
                        "pvend",                                        /* compatible, vendor */
                        "prb-1",                                        /* compatible, probe */
                        "nostop", "rule-1a", "rule-1b", "rule-2",       /* incompatible, rule */
                        "u-vend", "vend-a", "vend-b", "vend-x",
                        "tm-1",                                         /* incompatible, type-match */
                        NULL
                };

                check_targets(m, "probed source", src, want);
        }
        /* a type-match source: compatible, then unknown vendor before unknown type-match */
        {
                g_autoptr(Identity) src = ident("T", "", BASIS_TYPE_MATCH, F_SC);
                const char *const want[] = {
                        "tm-1",                                         /* compatible, type-match */
                        "vend-a", "vend-b", "vend-x",                   /* unknown, vendor */
                        "rule-1a", "rule-1b", "rule-2",                 /* unknown, type-match */
                        "nostop", "prb-1", "pvend", "u-vend",           /* incompatible, type-match */
                        NULL
                };

                check_targets(m, "type-match source", src, want);
        }
}

/* compat_map_candidates(): what compat_map_targets() lists, without the
 * incompatible (and the unknown unless asked), in the same order. */
static void test_candidates(void) {
        Counter c = { .probe_on = true, .probe_verdict = VERDICT_COMPATIBLE, .probe_src = "P/1",
                      .probe_tgt = "P/1" };
        g_autoptr(CompatMap) m = map_new(&c);
        g_autoptr(Identity) rule_src = ident("T", "1", BASIS_RULE, F_SC);
        g_autoptr(Identity) tm_src = ident("T", "", BASIS_TYPE_MATCH, F_SC);
        g_autoptr(Identity) none_src = ident("Z", "1", BASIS_VENDOR, F_SC);
        const struct {
                const char *what;
                const Identity *src;
                bool with_unknown;
                const char *want;
        } cases[] = {
                { "rule source", rule_src, false, "vend-a vend-b rule-1a rule-1b" },
                { "rule source, with unknown", rule_src, true, "vend-a vend-b rule-1a rule-1b tm-1" },
                { "type-match source", tm_src, false, "tm-1" },
                { "type-match source, with unknown", tm_src, true, "tm-1 vend-a vend-b vend-x rule-1a rule-1b rule-2" },
                { "a type nobody has", none_src, true, "" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(target_nodes); i++)
                compat_map_set(m, D(target_nodes[i].node),
                               ident(target_nodes[i].type, target_nodes[i].version, target_nodes[i].basis,
                                     target_nodes[i].flags));

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(GArray) cand = compat_map_candidates(m, cases[i].src, cases[i].with_unknown);
                g_autoptr(GArray) all = compat_map_targets(m, cases[i].src);
                g_autofree char *got = describe(cand);
                GString *names = g_string_new(NULL);
                g_autofree char *names_s = NULL;
                guint k = 0;

                for (guint n = 0; n < cand->len; n++)
                        g_string_append_printf(names, "%s%s", n ? " " : "",
                                               g_array_index(cand, CompatTarget, n).node.name);
                names_s = g_string_free(names, FALSE);
                if (!g_str_equal(names_s, cases[i].want))
                        fail("%s: candidates\n  got  %s\n  want %s\n  (%s)", cases[i].what, names_s, cases[i].want,
                             got);
                /* the same entries, in the same order, as the full list filtered */
                for (guint n = 0; n < all->len; n++) {
                        const CompatTarget *t = &g_array_index(all, CompatTarget, n);

                        if (t->judgement->verdict == VERDICT_INCOMPATIBLE ||
                            (t->judgement->verdict == VERDICT_UNKNOWN && !cases[i].with_unknown))
                                continue;
                        if (k >= cand->len || !g_str_equal(g_array_index(cand, CompatTarget, k).node.name, t->node.name) ||
                            g_array_index(cand, CompatTarget, k).judgement != t->judgement)
                                fail("%s: candidate %u is not %s, as in compat_map_targets()", cases[i].what, k,
                                     t->node.name);
                        k++;
                }
                if (k != cand->len)
                        fail("%s: %u candidates, compat_map_targets() has %u", cases[i].what, cand->len, k);
        }
}

/* ---- invalidation ---- */

static void test_invalidate(void) {
        Counter c = { .probe_src = "T/1", .probe_tgt = "T/1", .probe_verdict = VERDICT_INCOMPATIBLE };
        g_autoptr(CompatMap) m = map_new(&c);
        const Judgement *uu, *tu, *ut, *r12, *tmtm, *r11, *j;
        CompatMapStats before;
        uint64_t verdicts = 6 * 6;

        compat_map_set(m, D("r1a"), ident("T", "1", BASIS_RULE, F_SC));
        compat_map_set(m, D("r1b"), ident("T", "1", BASIS_RULE, F_SC));
        compat_map_set(m, D("r1c"), ident("T", "1", BASIS_RULE, F_SC));
        compat_map_set(m, D("r2"), ident("T", "2", BASIS_RULE, F_SC));
        compat_map_set(m, D("tm"), ident("T", "", BASIS_TYPE_MATCH, F_SC));
        compat_map_set(m, D("v1"), ident("T", "1", BASIS_VENDOR, F_SC));
        compat_map_set(m, D("u1"), ident("U", "1", BASIS_RULE, F_SC));
        compat_map_set(m, D("utm"), ident("U", "", BASIS_TYPE_MATCH, F_SC));
        check_stats(m, &c, "built", 8, 6, verdicts);
        check_verdict(m, "r1a", "r1b", VERDICT_COMPATIBLE, BASIS_RULE);
        check_verdict(m, "r1a", "r2", VERDICT_INCOMPATIBLE, BASIS_RULE);
        check_verdict(m, "tm", "tm", VERDICT_COMPATIBLE, BASIS_TYPE_MATCH);
        uu = compat_map_verdict(m, D("u1"), D("utm"));
        tu = compat_map_verdict(m, D("r1a"), D("u1"));
        ut = compat_map_verdict(m, D("u1"), D("r1a"));
        r12 = compat_map_verdict(m, D("r1a"), D("r2"));
        tmtm = compat_map_verdict(m, D("tm"), D("tm"));

        /* a probe result for T 1 -> T 1 arrives: only the pairs of classes
         * with those identities (rule and vendor, 2 x 2) are judged again */
        c.probe_on = true;
        before = stats(m);
        compat_map_invalidate(m, "T", "1", "T", "1");
        verdicts += 2 * 2;
        check_stats(m, &c, "invalidate T 1 -> T 1", 8, 6, verdicts);
        /* the drivers' answers do not change with a probe result: they are
         * remembered per written version and target type, version and basis */
        g_assert_cmpuint(stats(m).vendor_checks, ==, before.vendor_checks);
        check_verdict(m, "r1a", "r1b", VERDICT_INCOMPATIBLE, BASIS_PROBE);
        check_verdict(m, "v1", "r1c", VERDICT_INCOMPATIBLE, BASIS_PROBE);
        check_verdict(m, "r1a", "v1", VERDICT_COMPATIBLE, BASIS_VENDOR);         /* the vendor still decides */
        /* another version's pairs were not touched: a driver may take one
         * firmware's data and refuse another's */
        g_assert_true(compat_map_verdict(m, D("r1a"), D("r2")) == r12);
        g_assert_true(compat_map_verdict(m, D("tm"), D("tm")) == tmtm);
        g_assert_true(compat_map_verdict(m, D("u1"), D("utm")) == uu);
        g_assert_true(compat_map_verdict(m, D("r1a"), D("u1")) == tu);
        g_assert_true(compat_map_verdict(m, D("u1"), D("r1a")) == ut);
        check_stats(m, &c, "looked up", 8, 6, verdicts);
        r11 = compat_map_verdict(m, D("r1a"), D("r1b"));

        /* T 1 -> T 2: sources rule and vendor, one target class */
        c.probe_tgt = "T/2";
        c.probe_verdict = VERDICT_COMPATIBLE;
        compat_map_invalidate(m, "T", "1", "T", "2");
        verdicts += 2 * 1;
        check_stats(m, &c, "invalidate T 1 -> T 2", 8, 6, verdicts);
        check_verdict(m, "r1a", "r2", VERDICT_COMPATIBLE, BASIS_PROBE);
        check_verdict(m, "v1", "r2", VERDICT_COMPATIBLE, BASIS_PROBE);
        g_assert_true(compat_map_verdict(m, D("r1a"), D("r1b")) == r11);
        check_verdict(m, "r2", "r1a", VERDICT_INCOMPATIBLE, BASIS_RULE);        /* the other direction stays */

        /* type-match identities have the empty version */
        c.probe_src = c.probe_tgt = "T/";
        compat_map_invalidate(m, "T", "", "T", "");
        verdicts += 1;
        check_stats(m, &c, "invalidate T -> T", 8, 6, verdicts);
        check_verdict(m, "tm", "tm", VERDICT_COMPATIBLE, BASIS_PROBE);

        /* other types and directions count their own pairs */
        compat_map_invalidate(m, "T", "1", "U", "1");
        verdicts += 2 * 1;
        compat_map_invalidate(m, "U", "", "T", "");
        verdicts += 1 * 1;
        check_stats(m, &c, "invalidate T 1 -> U 1, U -> T", 8, 6, verdicts);
        compat_map_invalidate(m, "X", "1", "T", "1");
        compat_map_invalidate(m, "T", "1", "X", "1");
        compat_map_invalidate(m, "T", "3", "T", "1");
        check_stats(m, &c, "invalidate unknown identities", 8, 6, verdicts);
        j = compat_map_verdict(m, D("r1a"), D("r1b"));
        g_assert_cmpint(j->basis, ==, BASIS_PROBE);

        /* the probe result is gone: back to the rules */
        c.probe_on = false;
        compat_map_invalidate(m, "T", "1", "T", "2");
        verdicts += 2;
        check_stats(m, &c, "probe result gone", 8, 6, verdicts);
        check_verdict(m, "r1a", "r2", VERDICT_INCOMPATIBLE, BASIS_RULE);
}

/* A probe result must reach sources not in the map too (CheckIdentity,
 * FindTargets and incoming streams judge another host's identity). */
static void test_invalidate_remote(void) {
        Counter c = { .probe_src = "T/", .probe_tgt = "T/", .probe_verdict = VERDICT_INCOMPATIBLE };
        g_autoptr(CompatMap) m = map_new(&c);
        /* as identities_remote() makes them: no flags */
        g_autoptr(Identity) remote = ident("T", "", BASIS_TYPE_MATCH, 0);
        g_autoptr(Identity) remote2 = ident("T", "2", BASIS_VENDOR, 0);
        const Judgement *j, *j2;

        compat_map_set(m, D("tm"), ident("T", "", BASIS_TYPE_MATCH, F_SC));
        j = compat_map_verdict_for(m, remote, D("tm"));
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_cmpint(j->basis, ==, BASIS_TYPE_MATCH);
        j2 = compat_map_verdict_for(m, remote2, D("tm"));
        g_assert_cmpint(j2->verdict, ==, VERDICT_UNKNOWN);

        c.probe_on = true;
        compat_map_invalidate(m, "T", "", "T", "");
        j = compat_map_verdict_for(m, remote, D("tm"));
        if (j->verdict != VERDICT_INCOMPATIBLE || j->basis != BASIS_PROBE)
                fail("remote T -> tm after a probe result T -> T and compat_map_invalidate(T, T): %s (%s: %s), "
                     "want incompatible (probe)", verdict_to_string(j->verdict), basis_to_string(j->basis),
                     j->reason);
        /* a remote source of another version keeps its verdict */
        g_assert_true(compat_map_verdict_for(m, remote2, D("tm")) == j2);
        {
                g_autoptr(GArray) targets = compat_map_targets(m, remote);
                const CompatTarget *t = &g_array_index(targets, CompatTarget, 0);

                if (t->judgement->verdict != VERDICT_INCOMPATIBLE || t->judgement->basis != BASIS_PROBE)
                        fail("compat_map_targets(remote T) after the probe: %s %s (%s)", t->node.name,
                             verdict_to_string(t->judgement->verdict), basis_to_string(t->judgement->basis));
        }
}

/* Sources from elsewhere are whatever callers name: what the map keeps
 * for them stays bounded, and the local verdicts stay. */
static void test_remote_sources_are_bounded(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        const Judgement *local;
        const unsigned classes = 3, rounds = 3 * COMPAT_MAP_REMOTE_VERDICTS_MAX;
        unsigned most = 0;

        compat_map_set(m, D("v1"), vid("1"));
        compat_map_set(m, D("v2"), vid("2"));
        compat_map_set(m, D("tm"), ident("T", "", BASIS_TYPE_MATCH, F_SC));
        local = compat_map_verdict(m, D("v1"), D("v2"));
        g_assert_true(compat_map_knows(m, "T", "1"));
        g_assert_true(compat_map_knows(m, "T", ""));
        g_assert_false(compat_map_knows(m, "T", "3"));
        g_assert_false(compat_map_knows(m, "U", "1"));

        for (unsigned i = 0; i < rounds; i++) {
                g_autofree char *version = g_strdup_printf("remote-%u", i);
                g_autoptr(Identity) remote = ident("T", version, BASIS_VENDOR, 0);
                CompatMapStats s;

                if (i % 2)
                        g_array_unref(compat_map_targets(m, remote));
                else
                        g_assert_nonnull(compat_map_verdict_for(m, remote, D("v1")));
                s = stats(m);
                most = MAX(most, s.kept_verdicts);
        }
        if (most > classes * classes + COMPAT_MAP_REMOTE_VERDICTS_MAX + classes)
                fail("kept up to %u verdicts for %u classes and %u remote sources", most, classes, rounds);
        g_assert_cmpuint(most, >=, COMPAT_MAP_REMOTE_VERDICTS_MAX);          /* they were kept for a while */
        /* 4 for the map's own versions; then each remote version written
         * once into v1 (a verdict) or into v1 and v2 (the targets) */
        g_assert_cmpuint(c.vendor_calls, ==, 4 + rounds / 2 + 2 * (rounds / 2));
        g_assert_true(compat_map_verdict(m, D("v1"), D("v2")) == local);
        g_assert_cmpuint(stats(m).driver_answers, <=, COMPAT_MAP_DRIVER_ANSWERS_MAX);
}

/* ---- scale ---- */

static void test_scale(void) {
        Counter c = {};
        g_autoptr(CompatMap) m = map_new(&c);
        int64_t t0 = g_get_monotonic_time(), built;
        CompatMapStats s;

        for (unsigned i = 0; i < 10000; i++) {
                g_autofree char *name = g_strdup_printf("0000:%02x:%02x.%u", i / 256, (i / 8) % 32, i % 8);
                g_autofree char *version = g_strdup_printf("fw-%u", i % 50);

                compat_map_set(m, D(name), vid(version));
        }
        built = g_get_monotonic_time() - t0;
        s = stats(m);
        g_test_message("10,000 nodes in 50 classes: built in %" G_GINT64_FORMAT " us, %" PRIu64 " verdicts, %" PRIu64
                       " vendor checks, last change %" PRIu64 " us", built, s.verdicts, s.vendor_checks,
                       s.last_change_usec);
        check_stats(m, &c, "10,000 nodes in 50 classes", 10000, 50, 2500);
        g_assert_cmpuint(s.vendor_checks, <=, 2500);

        /* one more node of a known class, then of a new one */
        compat_map_set(m, D("extra-0"), vid("fw-7"));
        check_stats(m, &c, "a node of a known class", 10001, 50, 2500);
        compat_map_set(m, D("extra-1"), vid("fw-new"));
        check_stats(m, &c, "a node of a new class", 10002, 51, 2500 + 2 * 50 + 1);
        g_test_message("last change: %" PRIu64 " us", stats(m).last_change_usec);
}

/* A driver that says EBUSY has not answered: asked again next time. */
static int busy_once(void *userdata, const Node *target, const char *version) {
        unsigned *calls = userdata;

        return (*calls)++ == 0 ? -EBUSY : 0;
}

static void test_busy_driver(void) {
        unsigned calls = 0;
        JudgeOps ops = { busy_once, NULL, &calls };
        g_autoptr(CompatMap) m = compat_map_new(&ops);
        const Judgement *j;

        /* building judges x -> x: the driver says EBUSY */
        compat_map_set(m, D("x"), identity_new("T", "v1", BASIS_VENDOR));
        g_assert_cmpuint(calls, ==, 1);
        /* not kept: the next question asks the driver again */
        j = compat_map_verdict(m, D("x"), D("x"));
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_cmpuint(calls, ==, 2);
        /* a real answer is kept */
        j = compat_map_verdict(m, D("x"), D("x"));
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_cmpuint(calls, ==, 2);
}

/* The kept verdict is what the map holds, a busy driver's included: a
 * method that must not ask a driver before it replies reads it. */
static void test_kept_verdict(void) {
        unsigned calls = 0;
        JudgeOps ops = { busy_once, NULL, &calls };
        g_autoptr(CompatMap) m = compat_map_new(&ops);
        const Judgement *j;

        compat_map_set(m, D("x"), identity_new("T", "v1", BASIS_VENDOR));
        g_assert_cmpuint(calls, ==, 1);
        g_assert_null(compat_map_kept_verdict(m, D("x"), D("nobody")));
        g_assert_null(compat_map_kept_verdict(m, D("nobody"), D("x")));
        j = compat_map_kept_verdict(m, D("x"), D("x"));
        g_assert_nonnull(j);
        g_assert_cmpint(j->verdict, ==, VERDICT_UNKNOWN);
        g_assert_true(j->retry);
        g_assert_nonnull(strstr(j->reason, "busy"));
        j = compat_map_kept_verdict(m, D("x"), D("x"));
        g_assert_true(j->retry);
        g_assert_cmpuint(calls, ==, 1);         /* nobody asked */
        g_assert_cmpuint(stats(m).vendor_checks, ==, 1);
        /* asking judges it again; what is kept then is the answer */
        j = compat_map_verdict(m, D("x"), D("x"));
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        j = compat_map_kept_verdict(m, D("x"), D("x"));
        g_assert_cmpint(j->verdict, ==, VERDICT_COMPATIBLE);
        g_assert_false(j->retry);
        g_assert_cmpuint(calls, ==, 2);
}

/* A device and an mdev type are nodes of different kinds, even under one
 * name: each keeps its own identity, and the driver is asked about the
 * kind of node the verdict is for. */
static Node asked;

static int remember_asked(void *userdata, const Node *target, const char *version) {
        asked = *target;
        return 0;
}

static void test_node_kinds(void) {
        JudgeOps ops = { remember_asked, NULL, NULL };
        g_autoptr(CompatMap) m = compat_map_new(&ops);
        g_autoptr(Identity) remote = identity_new("T", "v0", BASIS_VENDOR);
        g_autoptr(GArray) targets = NULL;
        const Node *type = &NODE_OF_TYPE("p/x");

        compat_map_set(m, D("p/x"), identity_new("T", "v1", BASIS_VENDOR));
        compat_map_set(m, type, identity_new("T", "v2", BASIS_VENDOR));
        g_assert_cmpstr(compat_map_identity(m, D("p/x"))->version, ==, "v1");
        g_assert_cmpstr(compat_map_identity(m, type)->version, ==, "v2");

        g_assert_nonnull(compat_map_verdict_for(m, remote, type));
        g_assert_cmpint(asked.kind, ==, NODE_MDEV_TYPE);
        g_assert_nonnull(compat_map_verdict_for(m, remote, D("p/x")));
        g_assert_cmpint(asked.kind, ==, NODE_DEVICE);

        /* devices before types when the verdicts are alike */
        targets = compat_map_targets(m, remote);
        g_assert_cmpuint(targets->len, ==, 2);
        g_assert_cmpint(g_array_index(targets, CompatTarget, 0).node.kind, ==, NODE_DEVICE);
        g_assert_cmpint(g_array_index(targets, CompatTarget, 1).node.kind, ==, NODE_MDEV_TYPE);

        compat_map_remove(m, D("p/x"));
        g_assert_null(compat_map_identity(m, D("p/x")));
        g_assert_cmpstr(compat_map_identity(m, type)->version, ==, "v2");
}

/* The oldest node left in a class stands for it in a driver's check;
 * nodes leave from anywhere in the class, and the others stay. */
static int record_asked(void *userdata, const Node *target, const char *version) {
        g_ptr_array_add(userdata, g_strdup_printf("%s<-%s", target->name, version));
        return -EINVAL;
}

/* Which node of class v1 the driver was asked about for a new class of
 * version, and that it was asked about no other. */
static void check_head(GPtrArray *log, const char *version, const char *head) {
        g_autofree char *want = g_strdup_printf("%s<-%s", head, version);
        g_autofree char *suffix = g_strdup_printf("<-%s", version);
        unsigned found = 0;

        for (guint i = 0; i < log->len; i++) {
                const char *entry = log->pdata[i];

                if (g_str_equal(entry, want))
                        found++;
                else if (g_str_has_suffix(entry, suffix) && !g_str_has_prefix(entry, "x"))
                        fail("a new class %s was judged against %s, not the head of its class, %s", version, entry,
                             head);
        }
        if (found != 1)
                fail("%s was asked about %u times for %s", head, found, version);
        g_ptr_array_set_size(log, 0);
}

static void test_class_head(void) {
        g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func(g_free);
        JudgeOps ops = { record_asked, NULL, log };
        g_autoptr(CompatMap) m = compat_map_new(&ops);
        g_autoptr(GArray) targets = NULL;
        g_autoptr(Identity) remote = identity_new("T", "v0", BASIS_VENDOR);
        const char *const all[] = { "a", "b", "c", "d", "e", "f" };
        const char *const left[] = { "a", "c", "e", "f" };

        for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
                compat_map_set(m, D(all[i]), identity_new("T", "v1", BASIS_VENDOR));
        compat_map_set(m, D("x2"), identity_new("T", "v2", BASIS_VENDOR));
        check_head(log, "v2", "a");

        compat_map_remove(m, D("b"));           /* from the middle */
        compat_map_remove(m, D("d"));
        compat_map_set(m, D("x3"), identity_new("T", "v3", BASIS_VENDOR));
        check_head(log, "v3", "a");
        targets = compat_map_targets(m, remote);
        g_assert_cmpuint(targets->len, ==, G_N_ELEMENTS(left) + 2);
        for (size_t i = 0; i < G_N_ELEMENTS(left); i++) {
                bool found = false;

                for (guint t = 0; t < targets->len; t++)
                        found = found || g_str_equal(g_array_index(targets, CompatTarget, t).node.name, left[i]);
                g_assert_true(found);
                g_assert_cmpstr(compat_map_identity(m, D(left[i]))->version, ==, "v1");
        }
        g_assert_null(compat_map_identity(m, D("b")));

        compat_map_remove(m, D("a"));           /* the head: the next oldest stands */
        compat_map_set(m, D("x4"), identity_new("T", "v4", BASIS_VENDOR));
        check_head(log, "v4", "c");
        /* a node that leaves for another class and comes back joins at the end */
        compat_map_set(m, D("c"), identity_new("T", "v2", BASIS_VENDOR));
        compat_map_set(m, D("c"), identity_new("T", "v1", BASIS_VENDOR));
        g_ptr_array_set_size(log, 0);
        compat_map_set(m, D("x5"), identity_new("T", "v5", BASIS_VENDOR));
        check_head(log, "v5", "e");
        compat_map_remove(m, D("e"));
        compat_map_remove(m, D("f"));
        compat_map_set(m, D("x6"), identity_new("T", "v6", BASIS_VENDOR));
        check_head(log, "v6", "c");
        compat_map_remove(m, D("c"));
        g_assert_cmpuint(stats(m).classes, ==, 5);      /* v1 went with its last node */
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);

        g_test_add_func("/compat-map/empty", test_empty);
        g_test_add_func("/compat-map/build", test_build);
        g_test_add_func("/compat-map/add-existing-class", test_add_existing_class);
        g_test_add_func("/compat-map/add-new-class", test_add_new_class);
        g_test_add_func("/compat-map/remove-class", test_remove_class);
        g_test_add_func("/compat-map/change-identity", test_change_identity);
        g_test_add_func("/compat-map/verdict-for", test_verdict_for);
        g_test_add_func("/compat-map/targets", test_targets);
        g_test_add_func("/compat-map/candidates", test_candidates);
        g_test_add_func("/compat-map/invalidate", test_invalidate);
        g_test_add_func("/compat-map/scale", test_scale);
        g_test_add_func("/compat-map/invalidate-remote", test_invalidate_remote);
        g_test_add_func("/compat-map/remote-sources-are-bounded", test_remote_sources_are_bounded);
        g_test_add_func("/compat-map/busy-driver", test_busy_driver);
        g_test_add_func("/compat-map/kept-verdict", test_kept_verdict);
        g_test_add_func("/compat-map/node-kinds", test_node_kinds);
        g_test_add_func("/compat-map/class-head", test_class_head);

        return g_test_run();
}
