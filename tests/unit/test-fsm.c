/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "fsm.h"
#include "vfio-uapi.h"

/* The reference here is built from different material than fsm.c's
 * next-hop table:
 *   1. the arcs the kernel requires drivers to implement, per feature set
 *      (the comment above vfio_mig_get_next_state());
 *   2. the literal list of multi-step paths the kernel documents for a
 *      device with every feature, plus the two blocked transitions;
 *   3. the uAPI rule "shortest path, saving states not interior", checked
 *      by a breadth-first search over (1).
 * For fewer features the expected path is (2) with the states the device
 * lacks left out; (1) and (3) then have to agree with it independently. */

#define ERR  VFIO_STATE_ERROR
#define STP  VFIO_STATE_STOP
#define RUN  VFIO_STATE_RUNNING
#define SCP  VFIO_STATE_STOP_COPY
#define RES  VFIO_STATE_RESUMING
#define RP2  VFIO_STATE_RUNNING_P2P
#define PRE  VFIO_STATE_PRE_COPY
#define PP2  VFIO_STATE_PRE_COPY_P2P
#define END  VFIO_STATE_MAX             /* terminates literal paths */

#define F_SC  VFIO_MIGRATION_STOP_COPY
#define F_P2P VFIO_MIGRATION_P2P
#define F_PRE VFIO_MIGRATION_PRE_COPY
#define F_ALL (F_SC | F_P2P | F_PRE)

static const uint32_t flag_sets[] = { 0, F_SC, F_SC | F_P2P, F_SC | F_PRE, F_ALL };

/* ---- naming, for failure messages that say which case broke ---- */

static const char *sname(uint32_t s) {
        static const char *const n[] = {
                "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING",
                "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
        };
        return s < G_N_ELEMENTS(n) ? n[s] : "OUT-OF-RANGE";
}

static const char *fname(uint32_t flags) {
        switch (flags) {
        case 0:                 return "0";
        case F_SC:              return "STOP_COPY";
        case F_SC | F_P2P:      return "STOP_COPY|P2P";
        case F_SC | F_PRE:      return "STOP_COPY|PRE_COPY";
        case F_ALL:             return "STOP_COPY|P2P|PRE_COPY";
        default:                return "other";
        }
}

static char *path_str(uint32_t cur, const uint32_t *p, size_t n) {
        GString *s = g_string_new(sname(cur));

        for (size_t i = 0; i < n; i++)
                g_string_append_printf(s, " -> %s", sname(p[i]));
        return g_string_free(s, FALSE);
}

/* Record the failure with the case named and keep going, so one run lists
 * every broken (flags, cur, want) rather than the first. */
#define CHECK(cond, flags, cur, want, fmt, ...)                                     \
        do {                                                                        \
                if (!(cond)) {                                                      \
                        g_test_message("FAIL flags=%s cur=%s want=%s: " fmt,        \
                                       fname(flags), sname(cur), sname(want),       \
                                       ##__VA_ARGS__);                              \
                        g_test_fail();                                              \
                }                                                                   \
        } while (0)

/* ---- reference: which states exist ---- */

static bool ref_supported(uint32_t s, uint32_t flags) {
        bool sc = flags & F_SC, p2p = flags & F_P2P, pre = flags & F_PRE;

        switch (s) {
        case ERR:                       return true;
        case STP: case RUN: case SCP:
        case RES:                       return sc;
        case RP2:                       return sc && p2p;
        case PRE:                       return sc && pre;
        case PP2:                       return sc && p2p && pre;
        default:                        return false;
        }
}

static bool ref_requestable(uint32_t s, uint32_t flags) {
        return s != ERR && ref_supported(s, flags);
}

static bool ref_saving(uint32_t s) {
        return s == PRE || s == PP2 || s == SCP;
}

static bool ref_blocked(uint32_t cur, uint32_t want) {
        return cur == SCP && (want == PRE || want == PP2);
}

/* ---- reference 1: arcs a driver must implement, per feature set ---- */

typedef struct Arc { uint32_t from, to; } Arc;

static const Arc arcs_base[] = {
        { RES, STP }, { STP, RES }, { STP, SCP }, { SCP, STP },
};
static const Arc arcs_p2p[] = {
        { RUN, RP2 }, { RP2, RUN }, { RP2, STP }, { STP, RP2 },
};
static const Arc arcs_no_p2p[] = {
        { RUN, STP }, { STP, RUN },
};
static const Arc arcs_pre[] = {                 /* precopy without P2P */
        { RUN, PRE }, { PRE, RUN }, { PRE, SCP },
};
static const Arc arcs_pre_p2p[] = {             /* precopy with P2P */
        { PRE, RUN }, { PRE, PP2 }, { PP2, PRE }, { PP2, RP2 },
        { PP2, SCP }, { RUN, PRE }, { RP2, PP2 },
};

static bool arc_in(const Arc *a, size_t n, uint32_t from, uint32_t to) {
        for (size_t i = 0; i < n; i++)
                if (a[i].from == from && a[i].to == to)
                        return true;
        return false;
}

static bool ref_is_arc(uint32_t from, uint32_t to, uint32_t flags) {
        bool p2p = flags & F_P2P, pre = flags & F_PRE;

        if (!(flags & F_SC))
                return false;
        if (arc_in(arcs_base, G_N_ELEMENTS(arcs_base), from, to))
                return true;
        if (p2p ? arc_in(arcs_p2p, G_N_ELEMENTS(arcs_p2p), from, to)
                : arc_in(arcs_no_p2p, G_N_ELEMENTS(arcs_no_p2p), from, to))
                return true;
        if (!pre)
                return false;
        return p2p ? arc_in(arcs_pre_p2p, G_N_ELEMENTS(arcs_pre_p2p), from, to)
                   : arc_in(arcs_pre, G_N_ELEMENTS(arcs_pre), from, to);
}

/* ---- reference 2: the kernel's documented multi-step paths with every
 * feature, cur first. Every other (cur, want) pair is a single arc or
 * blocked; full_path() insists on that. ---- */

static const uint32_t combos[][6] = {
        { PRE, PP2, SCP, END },
        { PRE, RUN, RP2, END },
        { PRE, RUN, RP2, STP, END },
        { PRE, RUN, RP2, STP, RES, END },
        { PP2, RP2, RUN, END },
        { PP2, RP2, STP, END },
        { PP2, RP2, STP, RES, END },
        { RES, STP, RP2, END },
        { RES, STP, RP2, PP2, END },
        { RES, STP, RP2, RUN, END },
        { RES, STP, RP2, RUN, PRE, END },
        { RES, STP, SCP, END },
        { RUN, RP2, PP2, END },
        { RUN, RP2, STP, END },
        { RUN, RP2, STP, RES, END },
        { RUN, RP2, STP, SCP, END },
        { RP2, RUN, PRE, END },
        { RP2, STP, RES, END },
        { RP2, STP, SCP, END },
        { STP, RP2, PP2, END },
        { STP, RP2, RUN, END },
        { STP, RP2, RUN, PRE, END },
        { SCP, STP, RES, END },
        { SCP, STP, RP2, END },
        { SCP, STP, RP2, RUN, END },
};

static size_t combo_len(const uint32_t *c) {
        size_t n = 0;

        while (c[n] != END)
                n++;
        return n;
}

/* Path with every feature, cur excluded. Call only for requestable,
 * unblocked pairs. */
static size_t full_path(uint32_t cur, uint32_t want, uint32_t out[FSM_MAX_PATH]) {
        if (cur == want)
                return 0;
        for (size_t i = 0; i < G_N_ELEMENTS(combos); i++) {
                size_t n = combo_len(combos[i]);

                if (combos[i][0] == cur && combos[i][n - 1] == want) {
                        memcpy(out, combos[i] + 1, (n - 1) * sizeof(uint32_t));
                        return n - 1;
                }
        }
        if (!ref_is_arc(cur, want, F_ALL))
                g_error("test reference incomplete: %s -> %s is neither a documented "
                        "combination nor a direct arc", sname(cur), sname(want));
        out[0] = want;
        return 1;
}

/* The kernel skips the states a device lacks, so its path is the
 * all-features path with those states removed. -EINVAL where the kernel
 * refuses. */
static int ref_path(uint32_t cur, uint32_t want, uint32_t flags, uint32_t out[FSM_MAX_PATH], size_t *n) {
        uint32_t full[FSM_MAX_PATH];
        size_t m, k = 0;

        if (!ref_requestable(cur, flags) || !ref_requestable(want, flags) || ref_blocked(cur, want))
                return -EINVAL;
        m = full_path(cur, want, full);
        for (size_t i = 0; i < m; i++)
                if (ref_supported(full[i], flags))
                        out[k++] = full[i];
        *n = k;
        return 0;
}

/* ---- reference 3: shortest path length over the arcs of (1), with the
 * uAPI's restriction on interior states. Strict: no saving state and no
 * RESUMING inside the path. Relaxed: a path that starts in the saving
 * group may stay in it (the session goes on). -1 if unreachable. ---- */

static int bfs_len(uint32_t cur, uint32_t want, uint32_t flags, bool strict) {
        int dist[VFIO_STATE_MAX];
        uint32_t queue[VFIO_STATE_MAX];
        size_t head = 0, tail = 0;

        for (size_t i = 0; i < VFIO_STATE_MAX; i++)
                dist[i] = -1;
        dist[cur] = 0;
        queue[tail++] = cur;

        while (head < tail) {
                uint32_t u = queue[head++];

                if (u == want)
                        return dist[u];
                if (u != cur && u == RES)
                        continue;
                if (u != cur && ref_saving(u) && (strict || !ref_saving(cur)))
                        continue;
                for (uint32_t v = 0; v < VFIO_STATE_MAX; v++)
                        if (dist[v] < 0 && ref_is_arc(u, v, flags)) {
                                dist[v] = dist[u] + 1;
                                queue[tail++] = v;
                        }
        }
        return -1;
}

/* Where the kernel table is not the strict shortest path: with every
 * feature, PRE_COPY -> STOP_COPY goes through PRE_COPY_P2P (2 arcs) rather
 * than RUNNING, RUNNING_P2P, STOP (4 arcs). PRE_COPY_P2P is interior but
 * the saving session never closes: the table is right, the strict reading
 * of the rule is not. */
static bool strict_exception(uint32_t cur, uint32_t want, uint32_t flags) {
        return flags == F_ALL && cur == PRE && want == SCP;
}

/* ---- the exhaustive check ---- */

static void check_pair(uint32_t flags, uint32_t cur, uint32_t want) {
        uint32_t exp[FSM_MAX_PATH], got[FSM_MAX_PATH], step = 0xdead;
        size_t nexp = 0, ngot = 0xdead;
        int rexp, rgot, rstep;

        for (size_t i = 0; i < FSM_MAX_PATH; i++)
                got[i] = 0xdead;

        rexp = ref_path(cur, want, flags, exp, &nexp);
        rgot = fsm_path(cur, want, flags, got, &ngot);
        rstep = fsm_next_step(cur, want, flags, &step);

        CHECK(rgot == rexp, flags, cur, want, "fsm_path returned %d, expected %d", rgot, rexp);
        CHECK(rstep == rexp, flags, cur, want, "fsm_next_step returned %d, expected %d", rstep, rexp);

        if (rexp < 0) {
                /* a failed call must not scribble on its outputs */
                CHECK(ngot == 0xdead && got[0] == 0xdead, flags, cur, want, "fsm_path wrote outputs on error");
                CHECK(step == 0xdead, flags, cur, want, "fsm_next_step wrote *ret on error");
                return;
        }
        if (rgot < 0 || rstep < 0)
                return;

        g_autofree char *se = path_str(cur, exp, nexp);
        g_autofree char *sg = path_str(cur, got, MIN(ngot, (size_t) FSM_MAX_PATH));

        CHECK(ngot == nexp && memcmp(got, exp, nexp * sizeof(uint32_t)) == 0,
              flags, cur, want, "path %s, expected %s", sg, se);
        CHECK(step == (nexp > 0 ? exp[0] : want), flags, cur, want,
              "next step %s, expected path %s", sname(step), se);
        if (ngot > FSM_MAX_PATH)
                return;

        /* (1): the driver implements every arc the kernel asks of it */
        for (size_t i = 0; i < ngot; i++) {
                uint32_t from = i == 0 ? cur : got[i - 1];

                CHECK(ref_is_arc(from, got[i], flags), flags, cur, want,
                      "path %s uses %s -> %s, not a required driver arc",
                      sg, sname(from), sname(got[i]));
        }
        CHECK(ngot == 0 || got[ngot - 1] == want, flags, cur, want, "path %s does not end at want", sg);

        /* (3): shortest under the relaxed rule; under the strict one too,
         * but for the documented exception */
        int relaxed = bfs_len(cur, want, flags, false), strict = bfs_len(cur, want, flags, true);

        CHECK(relaxed == (int) ngot, flags, cur, want, "path %s has %zu arcs, shortest (relaxed) is %d",
              sg, ngot, relaxed);
        if (strict_exception(cur, want, flags))
                CHECK(strict > (int) ngot, flags, cur, want,
                      "documented exception no longer one: strict shortest %d, path %s", strict, sg);
        else
                CHECK(strict == (int) ngot, flags, cur, want, "path %s has %zu arcs, shortest (strict) is %d",
                      sg, ngot, strict);
}

static void test_exhaustive(void) {
        for (size_t f = 0; f < G_N_ELEMENTS(flag_sets); f++)
                for (uint32_t cur = 0; cur < VFIO_STATE_MAX; cur++)
                        for (uint32_t want = 0; want < VFIO_STATE_MAX; want++)
                                check_pair(flag_sets[f], cur, want);
}

/* The blocked pairs are a policy of the table, not a hole in the graph:
 * STOP_COPY -> STOP -> ... -> PRE_COPY* exists arc by arc. */
static void test_blocked(void) {
        static const uint32_t wants[] = { PRE, PP2 };
        uint32_t path[FSM_MAX_PATH], step;
        size_t n;

        for (size_t f = 0; f < G_N_ELEMENTS(flag_sets); f++)
                for (size_t i = 0; i < G_N_ELEMENTS(wants); i++) {
                        uint32_t flags = flag_sets[f], w = wants[i];

                        CHECK(fsm_path(SCP, w, flags, path, &n) == -EINVAL, flags, SCP, w, "not blocked");
                        CHECK(fsm_next_step(SCP, w, flags, &step) == -EINVAL, flags, SCP, w, "not blocked");
                        if (ref_supported(w, flags))
                                CHECK(bfs_len(SCP, w, flags, false) > 0, flags, SCP, w,
                                      "expected a path in the arc graph");
                }
}

/* The kernel's examples, written out arc by arc, not through the
 * reference machinery above. */
static void expect_path(uint32_t flags, const uint32_t *states) {
        uint32_t path[FSM_MAX_PATH];
        size_t n = combo_len(states), got = 0;
        uint32_t cur = states[0], want = states[n - 1];
        int r = fsm_path(cur, want, flags, path, &got);

        CHECK(r == 0, flags, cur, want, "fsm_path failed: %d", r);
        if (r < 0)
                return;
        g_autofree char *sg = path_str(cur, path, got);
        CHECK(got == n - 1, flags, cur, want, "path %s has %zu arcs, expected %zu", sg, got, n - 1);
        for (size_t i = 0; i + 1 < n && i < got; i++) {
                uint32_t step;

                CHECK(path[i] == states[i + 1], flags, cur, want, "step %zu of %s is not %s",
                      i + 1, sg, sname(states[i + 1]));
                /* the kernel re-evaluates at each step: so must we */
                CHECK(fsm_next_step(states[i], want, flags, &step) == 0 && step == states[i + 1],
                      flags, states[i], want, "next step is not %s", sname(states[i + 1]));
        }
}

static void test_combinations(void) {
        static const uint32_t all[][6] = {
                { PRE, PP2, SCP, END },
                { RUN, RP2, STP, SCP, END },
                { RES, STP, RP2, RUN, END },
                { SCP, STP, RP2, RUN, END },
                { STP, RP2, RUN, PRE, END },
                /* direct arcs stay direct */
                { RUN, PRE, END },
                { RP2, PP2, END },
                { STP, SCP, END },
                { STP, RES, END },
                { PP2, SCP, END },
        };
        static const uint32_t no_p2p[][6] = {      /* STOP_COPY|PRE_COPY */
                { PRE, SCP, END },
                { RUN, STP, SCP, END },
                { STP, RUN, PRE, END },
                { RES, STP, RUN, PRE, END },
                { PRE, RUN, STP, RES, END },
        };
        static const uint32_t no_pre[][6] = {      /* STOP_COPY|P2P */
                { RUN, RP2, STP, SCP, END },
                { SCP, STP, RP2, RUN, END },
                { RES, STP, RP2, END },
        };
        static const uint32_t base[][6] = {        /* STOP_COPY */
                { RUN, STP, SCP, END },
                { RES, STP, RUN, END },
                { STP, RUN, END },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
                expect_path(F_ALL, all[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(combos); i++)
                expect_path(F_ALL, combos[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(no_p2p); i++)
                expect_path(F_SC | F_PRE, no_p2p[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(no_pre); i++)
                expect_path(F_SC | F_P2P, no_pre[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(base); i++)
                expect_path(F_SC, base[i]);
}

/* The combination list is complete: with every feature, exactly the pairs
 * it names take more than one arc. */
static void test_combinations_complete(void) {
        size_t multi = 0;

        for (uint32_t cur = 0; cur < VFIO_STATE_MAX; cur++)
                for (uint32_t want = 0; want < VFIO_STATE_MAX; want++) {
                        uint32_t path[FSM_MAX_PATH];
                        size_t n;

                        if (fsm_path(cur, want, F_ALL, path, &n) == 0 && n > 1)
                                multi++;
                }
        g_assert_cmpuint(multi, ==, G_N_ELEMENTS(combos));
}

static void test_errors(void) {
        static const uint32_t bogus[] = { VFIO_STATE_MAX, 9, 255, UINT32_MAX };
        uint32_t path[FSM_MAX_PATH], step;
        size_t n;

        /* the optional states on devices without the feature */
        g_assert_cmpint(fsm_next_step(RUN, RP2, F_SC, &step), ==, -EINVAL);
        g_assert_cmpint(fsm_next_step(RP2, RUN, F_SC, &step), ==, -EINVAL);
        g_assert_cmpint(fsm_next_step(RUN, PRE, F_SC | F_P2P, &step), ==, -EINVAL);
        g_assert_cmpint(fsm_next_step(PP2, RUN, F_SC | F_PRE, &step), ==, -EINVAL);
        g_assert_cmpint(fsm_path(RUN, PP2, F_SC | F_PRE, path, &n), ==, -EINVAL);

        /* ERROR can be neither requested nor left by SET, even cur == want */
        for (size_t f = 0; f < G_N_ELEMENTS(flag_sets); f++)
                for (uint32_t s = 0; s < VFIO_STATE_MAX; s++) {
                        g_assert_cmpint(fsm_next_step(s, ERR, flag_sets[f], &step), ==, -EINVAL);
                        g_assert_cmpint(fsm_next_step(ERR, s, flag_sets[f], &step), ==, -EINVAL);
                        g_assert_cmpint(fsm_path(s, ERR, flag_sets[f], path, &n), ==, -EINVAL);
                        g_assert_cmpint(fsm_path(ERR, s, flag_sets[f], path, &n), ==, -EINVAL);
                }

        /* no STOP_COPY, no migration: even a no-op is refused */
        for (uint32_t s = 0; s < VFIO_STATE_MAX; s++) {
                g_assert_cmpint(fsm_next_step(s, s, 0, &step), ==, -EINVAL);
                g_assert_cmpint(fsm_path(s, s, 0, path, &n), ==, -EINVAL);
                g_assert_cmpint(fsm_next_step(s, RUN, F_P2P | F_PRE, &step), ==, -EINVAL);
        }

        /* out-of-range states from a newer kernel or garbage */
        for (size_t i = 0; i < G_N_ELEMENTS(bogus); i++) {
                g_assert_cmpint(fsm_next_step(bogus[i], RUN, F_ALL, &step), ==, -EINVAL);
                g_assert_cmpint(fsm_next_step(RUN, bogus[i], F_ALL, &step), ==, -EINVAL);
                g_assert_cmpint(fsm_path(bogus[i], RUN, F_ALL, path, &n), ==, -EINVAL);
                g_assert_cmpint(fsm_path(RUN, bogus[i], F_ALL, path, &n), ==, -EINVAL);
                g_assert_cmpint(fsm_path(bogus[i], bogus[i], F_ALL, path, &n), ==, -EINVAL);
                g_assert_false(fsm_state_supported(bogus[i], UINT32_MAX));
        }

        /* cur == want is an empty path, and the next step is want */
        g_assert_cmpint(fsm_path(RUN, RUN, F_SC, path, &n), ==, 0);
        g_assert_cmpuint(n, ==, 0);
        g_assert_cmpint(fsm_next_step(SCP, SCP, F_SC, &step), ==, 0);
        g_assert_cmpuint(step, ==, SCP);
}

static void test_supported(void) {
        for (size_t f = 0; f < G_N_ELEMENTS(flag_sets); f++)
                for (uint32_t s = 0; s < VFIO_STATE_MAX; s++) {
                        uint32_t flags = flag_sets[f];

                        CHECK(fsm_state_supported(s, flags) == ref_supported(s, flags), flags, s, s,
                              "fsm_state_supported() is %d", fsm_state_supported(s, flags));
                        /* bits the kernel may add later change nothing */
                        CHECK(fsm_state_supported(s, flags | 0xfff8u) == ref_supported(s, flags),
                              flags, s, s, "unknown flag bits change support");
                }
        g_assert_true(fsm_state_supported(ERR, 0));
        g_assert_false(fsm_state_supported(STP, 0));
        g_assert_false(fsm_state_supported(RP2, F_P2P));    /* P2P alone: no STOP_COPY */
}

static void test_strings(void) {
        static const struct { uint32_t state; const char *name; } names[] = {
                { ERR, "error" },       { STP, "stop" },
                { RUN, "running" },     { SCP, "stop-copy" },
                { RES, "resuming" },    { RP2, "running-p2p" },
                { PRE, "pre-copy" },    { PP2, "pre-copy-p2p" },
        };
        static const char *const junk[] = {
                "", "STOP", "Stop", " stop", "stop ", "stop\n", "stop_copy", "stopcopy",
                "running_p2p", "pre-copy-p2p2", "pre", "err", "0", "1", "-", "stop-copy-",
        };

        G_STATIC_ASSERT(G_N_ELEMENTS(names) == VFIO_STATE_MAX);
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
                g_assert_cmpstr(fsm_state_to_string(names[i].state), ==, names[i].name);
                g_assert_cmpint(fsm_state_from_string(names[i].name), ==, (int) names[i].state);
                g_assert_cmpint(fsm_state_from_string(fsm_state_to_string(names[i].state)), ==,
                                (int) names[i].state);
        }
        g_assert_null(fsm_state_to_string(VFIO_STATE_MAX));
        g_assert_null(fsm_state_to_string(UINT32_MAX));
        for (size_t i = 0; i < G_N_ELEMENTS(junk); i++)
                g_assert_cmpint(fsm_state_from_string(junk[i]), ==, -EINVAL);
        g_assert_cmpint(fsm_state_from_string(NULL), ==, -EINVAL);
}

static void test_sessions(void) {
        static const Arc opening[] = {
                { RUN, PRE }, { RP2, PP2 }, { STP, SCP }, { STP, RES },
        };

        for (uint32_t from = 0; from < VFIO_STATE_MAX; from++)
                for (uint32_t to = 0; to < VFIO_STATE_MAX; to++) {
                        bool exp = arc_in(opening, G_N_ELEMENTS(opening), from, to);

                        CHECK(fsm_arc_opens_session(from, to) == exp, 0, from, to,
                              "fsm_arc_opens_session() is %d", !exp);
                }
        g_assert_false(fsm_arc_opens_session(VFIO_STATE_MAX, PRE));
        g_assert_false(fsm_arc_opens_session(STP, UINT32_MAX));

        /* moving within the saving group keeps the fd */
        g_assert_false(fsm_arc_opens_session(PRE, PP2));
        g_assert_false(fsm_arc_opens_session(PP2, SCP));
        g_assert_false(fsm_arc_opens_session(PRE, SCP));
}

static void test_predicates(void) {
        static const bool running[VFIO_STATE_MAX] = { [RUN] = true, [RP2] = true, [PRE] = true, [PP2] = true };
        static const bool saving[VFIO_STATE_MAX] = { [PRE] = true, [PP2] = true, [SCP] = true };

        for (uint32_t s = 0; s < VFIO_STATE_MAX; s++) {
                CHECK(fsm_state_is_running(s) == running[s], 0, s, s, "is_running wrong");
                CHECK(fsm_state_is_saving(s) == saving[s], 0, s, s, "is_saving wrong");
        }
        g_assert_false(fsm_state_is_running(VFIO_STATE_MAX));
        g_assert_false(fsm_state_is_saving(VFIO_STATE_MAX));
        g_assert_false(fsm_state_is_running(UINT32_MAX));
        g_assert_false(fsm_state_is_saving(UINT32_MAX));
}

static const char *rname(FsmRecovery r) {
        switch (r) {
        case FSM_RECOVERY_NONE:  return "NONE";
        case FSM_RECOVERY_SET:   return "SET";
        case FSM_RECOVERY_RESET: return "RESET";
        default:                 return "?";
        }
}

/* The rule, written from the device's point of view: a device without
 * STOP_COPY is not migratable, so anything but the state we want needs a
 * reset; ERROR and states we do not know need a reset; otherwise SET. No
 * state is stuck short of a reset when want is RUNNING: every supported
 * state reaches it. */
static FsmRecovery ref_recovery_running(uint32_t actual, uint32_t flags) {
        if (actual == ERR || actual == RES || actual >= VFIO_STATE_MAX)
                return FSM_RECOVERY_RESET;
        if (actual == RUN)
                return FSM_RECOVERY_NONE;
        if (!(flags & F_SC) || !ref_supported(actual, flags))
                return FSM_RECOVERY_RESET;
        return FSM_RECOVERY_SET;
}

static void test_recovery(void) {
        static const uint32_t actuals[] = { ERR, STP, RUN, SCP, RES, RP2, PRE, PP2, VFIO_STATE_MAX, 42 };

        for (size_t f = 0; f < G_N_ELEMENTS(flag_sets); f++)
                for (size_t i = 0; i < G_N_ELEMENTS(actuals); i++) {
                        uint32_t flags = flag_sets[f], a = actuals[i], st = 0xdead;
                        FsmRecovery exp = ref_recovery_running(a, flags);
                        FsmRecovery got = fsm_recovery(a, RUN, flags, &st);

                        CHECK(got == exp, flags, a, RUN, "recovery %s, expected %s", rname(got), rname(exp));
                        if (got == FSM_RECOVERY_SET)
                                CHECK(st == RUN, flags, a, RUN, "SET %s, expected RUNNING", sname(st));
                        /* ret_state is optional */
                        CHECK(fsm_recovery(a, RUN, flags, NULL) == exp, flags, a, RUN, "differs without ret_state");
                }

        /* other targets, same rule */
        uint32_t st;
        g_assert_cmpint(fsm_recovery(STP, STP, F_SC, &st), ==, FSM_RECOVERY_NONE);
        g_assert_cmpint(fsm_recovery(RES, STP, F_SC, &st), ==, FSM_RECOVERY_RESET);     /* never load leftovers */
        g_assert_cmpuint(st, ==, STP);
        g_assert_cmpint(fsm_recovery(RES, RES, F_SC, &st), ==, FSM_RECOVERY_NONE);
        g_assert_cmpint(fsm_recovery(RUN, RP2, F_SC | F_P2P, &st), ==, FSM_RECOVERY_SET);
        g_assert_cmpuint(st, ==, RP2);
        g_assert_cmpint(fsm_recovery(SCP, PRE, F_ALL, &st), ==, FSM_RECOVERY_RESET);  /* blocked */
        g_assert_cmpint(fsm_recovery(RUN, RP2, F_SC, &st), ==, FSM_RECOVERY_RESET);   /* want unsupported */
        g_assert_cmpint(fsm_recovery(RUN, ERR, F_ALL, &st), ==, FSM_RECOVERY_RESET);  /* nonsense want */
        g_assert_cmpint(fsm_recovery(ERR, ERR, F_ALL, &st), ==, FSM_RECOVERY_RESET);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/fsm/exhaustive", test_exhaustive);
        g_test_add_func("/fsm/blocked", test_blocked);
        g_test_add_func("/fsm/combinations", test_combinations);
        g_test_add_func("/fsm/combinations-complete", test_combinations_complete);
        g_test_add_func("/fsm/errors", test_errors);
        g_test_add_func("/fsm/supported", test_supported);
        g_test_add_func("/fsm/strings", test_strings);
        g_test_add_func("/fsm/sessions", test_sessions);
        g_test_add_func("/fsm/predicates", test_predicates);
        g_test_add_func("/fsm/recovery", test_recovery);

        return g_test_run();
}
