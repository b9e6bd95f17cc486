/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The migration worker without a bus, a registry or a map: simulated
 * devices, a worker, hooks that record what the job would have heard. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "bus/bus-error.h"
#include "fsm.h"
#include "backend/testbed-device.h"
#include "vfio-uapi.h"
#include "vfiomig-names.h"
#include "migration/worker.h"
#include "util.h"

#define ALL_FLAGS (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)
#define SIZE (256 * 1024)

typedef struct Rig {
        Worker w;
        SimDevice *devices[4];
        unsigned n;
        /* what the hooks saw */
        GArray *records;                /* WorkerRecord */
        int commit_failure;             /* the journal's answer to COMMIT */
        Verdict verdict;                /* what judge() answers, unless: */
        const char *target_iommu;       /* non-NULL: judge() asks compat_judge() with this target facet */
        unsigned judged;
        char *asked;                    /* migrate: "SOURCE -> TARGET" of each question, in order */
        bool moved_before_judged;       /* a device had been asked anything, or the journal written */
        bool cancel_in_judge;           /* a cancel while the judge is asked, as the main loop's */
        char *published;
        int publish_failure;            /* the store's answer to publish() */
        bool cancel_in_publish;         /* a cancel while the stream is published */
        int publish_cancel_result;      /* what that cancel got */
        /* a cancel when the worker reports this phase (or, for PREPARING,
         * its first change) */
        MigrationPhase cancel_at;
        bool cancel_in_window;          /* ... on a change inside the downtime window */
        int cancel_result;              /* 1: not tried */
        MigrationPhase last_phase;      /* the last one before the end */
        unsigned deferred;              /* changes reported inside the downtime window */
        bool woken_after_window;        /* and one not deferred after the last of them */
} Rig;

static void on_changed(void *userdata, bool deferred) {
        Rig *r = userdata;
        MigrationPhase p;

        r->deferred += deferred;
        r->woken_after_window = r->deferred > 0 && !deferred;

        g_mutex_lock(&r->w.lock);
        p = r->w.phase;
        g_mutex_unlock(&r->w.lock);
        if (p < MIGRATION_DONE)
                r->last_phase = p;
        if (r->cancel_result == 1 && p == r->cancel_at && p != _MIGRATION_PHASE_MAX &&
            (deferred || !r->cancel_in_window))
                r->cancel_result = worker_cancel(&r->w, "the test");
}

static int on_journal(void *userdata, WorkerRecord what, char **ret_error) {
        Rig *r = userdata;

        g_array_append_val(r->records, what);
        if (what == WORKER_RECORD_COMMIT && r->commit_failure) {
                *ret_error = g_strdup("journal full");
                return r->commit_failure;
        }
        return 0;
}

static bool anything_moved(Rig *r) {
        bool moved = r->records->len > 0;

        for (unsigned i = 0; i < r->n; i++) {
                GArray *arcs = sim_device_history(r->devices[i]);

                moved |= arcs->len > 0;
                g_array_unref(arcs);
        }
        return moved;
}

static Verdict on_judge(void *userdata, const WorkerQuestion *q, char **ret_reason) {
        Rig *r = userdata;
        const StreamHeader *source = q->header;
        g_autoptr(Identity) src = NULL, tgt = NULL;
        Judgement j;

        r->judged++;
        r->moved_before_judged |= anything_moved(r);
        if (r->cancel_in_judge)
                g_assert_cmpint(worker_cancel(&r->w, "the test"), ==, 0);
        if (!source) {          /* migrate: a pair a busy driver left open */
                g_autofree char *was = r->asked;

                r->asked = g_strdup_printf("%s%s%s -> %s", was ?: "", was ? ", " : "", q->source, q->target);
                *ret_reason = g_strdup_printf("the test says so for %s", q->target);
                return r->verdict;
        }
        if (!r->target_iommu) {
                *ret_reason = g_strdup_printf("the test says so for %s", source->migration_type);
                return r->verdict;
        }
        /* what the daemon's map does with the header: the same identity
         * on both sides, but for the IOMMU facet */
        src = identity_new(source->migration_type, source->migration_version, BASIS_TYPE_MATCH);
        tgt = identity_new(source->migration_type, source->migration_version, BASIS_TYPE_MATCH);
        free_and_strdup(&src->iommu, source->iommu);
        free_and_strdup(&tgt->iommu, r->target_iommu);
        j = compat_judge(src, tgt, &NODE_OF_DEVICE("t0"), &(JudgeOps) {});
        *ret_reason = g_steal_pointer(&j.reason);
        return j.verdict;
}

static int on_publish(void *userdata, char **ret_error) {
        Rig *r = userdata;

        if (r->cancel_in_publish)
                r->publish_cancel_result = worker_cancel(&r->w, "the test");
        if (r->publish_failure) {
                *ret_error = g_strdup("the name was taken meanwhile");
                return r->publish_failure;
        }
        r->published = g_strdup("yes");
        return 0;
}

static const WorkerHooks hooks = {
        .changed = on_changed, .journal = on_journal, .judge = on_judge, .publish = on_publish,
};

static void rig_init(Rig *r, MigrationKind kind, const MigrationOptions *o) {
        MigrationOptions def;

        *r = (Rig) { .cancel_at = _MIGRATION_PHASE_MAX, .cancel_result = 1, .verdict = VERDICT_COMPATIBLE };
        if (!o) {
                migration_options_init(&def);
                o = &def;
        }
        g_assert_cmpint(worker_init(&r->w, kind, o, &hooks, r), ==, 0);
        r->records = g_array_new(false, false, sizeof(WorkerRecord));
        r->w.stream_label = g_strdup("the stream");
}

static SimDevice *rig_device(Rig *r, const char *name, uint32_t flags, uint64_t dirty_rate, const char *tag) {
        SimConfig c = { .flags = flags, .state_size = SIZE, .dirty_rate = dirty_rate, .tag = tag ?: "t" };

        return r->devices[r->n++] = sim_device_new(name, &c, NULL);
}

static void rig_add(Rig *r, SimDevice *d, const char *name, bool source) {
        DeviceHandle *h = NULL;
        uint32_t flags, state;

        g_assert_cmpint(sim_device_open(d, &h, NULL), ==, 0);
        g_assert_cmpint(h->ops->get_flags(h, &flags), ==, 0);
        g_assert_cmpint(h->ops->get_state(h, &state), ==, 0);
        (void) worker_add_device(&r->w, name, source, h, flags, state);
}

/* One fault, or several separated by ';'. */
static void rig_fault(SimDevice *d, const char *specs) {
        g_auto(GStrv) each = g_strsplit(specs, ";", 0);

        for (char **spec = each; *spec; spec++) {
                g_autofree char *why = NULL;
                SimFault f;

                g_assert_cmpint(sim_fault_parse(*spec, &f, &why), ==, 0);
                sim_device_add_fault(d, &f);
        }
}

static void rig_clear(Rig *r) {
        worker_clear(&r->w);
        for (unsigned i = 0; i < r->n; i++)
                sim_device_free(r->devices[i]);
        g_array_unref(r->records);
        g_free(r->published);
        g_free(r->asked);
}

/* A migrate job of n pairs: sources s0.., targets t0..; a fault, if
 * any, armed on device i before it is opened (I/O faults apply to
 * handles opened later). */
static void rig_migrate_fault(Rig *r, unsigned n, uint32_t flags, uint64_t dirty_rate, const MigrationOptions *o,
                              const char *fault, unsigned faulty) {
        SimDevice *d;

        rig_init(r, MIGRATION_MIGRATE, o);
        r->w.pairs = n;
        for (unsigned i = 0; i < 2 * n; i++) {
                g_autofree char *name = g_strdup_printf("%c%u", i < n ? 's' : 't', i % n);

                d = rig_device(r, name, flags, i < n ? dirty_rate : 0, NULL);
                if (fault && i == faulty)
                        rig_fault(d, fault);
                rig_add(r, d, name, i < n);
        }
}

static void rig_migrate(Rig *r, unsigned n, uint32_t flags, uint64_t dirty_rate, const MigrationOptions *o) {
        rig_migrate_fault(r, n, flags, dirty_rate, o, NULL, 0);
}

/* The job's ErrorName as the bus names its class: through the one
 * errno <-> D-Bus error table, as bus-migration.c does. */
static const char *error_name_of(const MigrationSnapshot *s) {
        return s->error ? bus_error_name_for_errno(s->error_class) : NULL;
}

static MigrationSnapshot run(Rig *r, int expect) {
        MigrationSnapshot s;

        g_assert_cmpint(worker_run(&r->w) < 0 ? -1 : 0, ==, expect);
        worker_snapshot(&r->w, &s);
        g_assert_true(s.finished);
        for (unsigned i = 0; i < s.n_devices; i++)     /* every handle closed */
                g_assert_null(worker_dev(&r->w, i)->handle);
        return s;
}

static bool journal_has(Rig *r, WorkerRecord what) {
        for (guint i = 0; i < r->records->len; i++)
                if (g_array_index(r->records, WorkerRecord, i) == what)
                        return true;
        return false;
}

/* The commit mark as the journal last had it before END: what a daemon
 * restarted at that moment would go by. */
static bool journal_committed(Rig *r) {
        bool committed = false;

        for (guint i = 0; i < r->records->len; i++) {
                WorkerRecord what = g_array_index(r->records, WorkerRecord, i);

                if (what == WORKER_RECORD_COMMIT || what == WORKER_RECORD_ABORT)
                        committed = what == WORKER_RECORD_COMMIT;
        }
        return committed;
}

static void assert_journal(Rig *r, bool committed) {
        g_assert_cmpuint(r->records->len, >=, 2);
        g_assert_cmpint(g_array_index(r->records, WorkerRecord, 0), ==, WORKER_RECORD_BEGIN);
        g_assert_cmpint(g_array_index(r->records, WorkerRecord, r->records->len - 1), ==, WORKER_RECORD_END);
        g_assert_cmpint(journal_committed(r), ==, committed);
        /* an abort only ever takes a commit back */
        if (journal_has(r, WORKER_RECORD_ABORT))
                g_assert_true(journal_has(r, WORKER_RECORD_COMMIT));
}

/* ---- successes ---- */

static void check_migrated(unsigned pairs, uint32_t flags, bool precopy) {
        g_auto(MigrationSnapshot) s = {};
        char *before[2] = {};   /* g_autofree would free only the first */
        MigrationOptions o;
        Rig r;

        migration_options_init(&o);
        o.precopy = precopy;
        rig_migrate(&r, pairs, flags, 0, &o);
        for (unsigned i = 0; i < pairs; i++)
                before[i] = sim_device_digest(r.devices[i]);
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        g_assert_null(s.error);
        assert_journal(&r, true);
        g_assert_cmpuint(s.bytes, >=, (uint64_t) pairs * SIZE);
        g_assert_cmpuint(s.expected, ==, s.bytes);
        for (unsigned i = 0; i < pairs; i++) {
                g_autofree char *after = sim_device_digest(r.devices[pairs + i]);

                g_assert_cmpstr(after, ==, before[i]);
                g_assert_cmpuint(sim_device_state(r.devices[i]), ==, VFIO_STATE_STOP);
                g_assert_cmpuint(sim_device_state(r.devices[pairs + i]), ==, VFIO_STATE_RUNNING);
                g_assert_cmpstr(s.devices[i].outcome, ==, "stop");
                g_assert_cmpstr(s.devices[pairs + i].outcome, ==, "running");
        }
        for (unsigned i = 0; i < pairs; i++)
                g_free(before[i]);
        rig_clear(&r);
}

static void test_migrate_stopcopy(void) {
        check_migrated(1, VFIO_MIGRATION_STOP_COPY, false);
}

static void test_migrate_precopy(void) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        GArray *arcs;
        bool saw_precopy = false;
        Rig r;

        check_migrated(1, ALL_FLAGS, true);
        /* with a dirty rate, rounds happen until the limit or convergence */
        rig_migrate(&r, 1, ALL_FLAGS, 4 * 1024 * 1024, NULL);
        r.w.options.max_precopy_rounds = 3;
        s = run(&r, 0);
        before = sim_device_digest(r.devices[0]);
        after = sim_device_digest(r.devices[1]);
        g_assert_cmpstr(after, ==, before);
        g_assert_cmpuint(s.rounds, >=, 1);
        g_assert_cmpuint(s.rounds, <=, 3);
        arcs = sim_device_history(r.devices[0]);
        for (guint i = 0; i < arcs->len; i++)
                saw_precopy |= g_array_index(arcs, SimArc, i).to == VFIO_STATE_PRE_COPY;
        g_array_unref(arcs);
        g_assert_true(saw_precopy);
        rig_clear(&r);
}

/* A group with P2P: every source reaches a P2P state before any stops. */
static void test_migrate_group_p2p(void) {
        g_auto(MigrationSnapshot) s = {};
        uint32_t last_p2p = 0, first_stop = G_MAXUINT32;
        Rig r;

        check_migrated(2, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, true);
        rig_migrate(&r, 2, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, 0, NULL);
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        for (unsigned i = 0; i < 2; i++) {
                GArray *arcs = sim_device_history(r.devices[i]);

                for (guint k = 0; k < arcs->len; k++) {
                        SimArc *a = &g_array_index(arcs, SimArc, k);

                        if (a->to == VFIO_STATE_RUNNING_P2P)
                                last_p2p = MAX(last_p2p, a->seq);
                        if (a->to == VFIO_STATE_STOP)
                                first_stop = MIN(first_stop, a->seq);
                }
                g_array_unref(arcs);
        }
        g_assert_cmpuint(last_p2p, >, 0);
        g_assert_cmpuint(last_p2p, <, first_stop);
        rig_clear(&r);
}

/* ---- a target whose driver was busy ---- */

/* A pair admitted on allow-unknown while its target's driver was busy:
 * the worker has it asked again before any device is asked anything or
 * the journal written, and a refusal ends the job with every device as
 * it was. */
static void check_asked_again(Verdict verdict, bool allow_unknown, bool cancel, MigrationPhase phase,
                              const char *error_name, const char *message) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *target_before = NULL, *after = NULL;
        Rig r;

        rig_migrate(&r, 1, ALL_FLAGS, 0, NULL);
        worker_dev(&r.w, 0)->ask_again = true;
        r.w.options.allow_unknown = allow_unknown;
        r.verdict = verdict;
        r.cancel_in_judge = cancel;
        before = sim_device_digest(r.devices[0]);
        target_before = sim_device_digest(r.devices[1]);
        s = run(&r, phase == MIGRATION_DONE ? 0 : -1);
        g_assert_cmpuint(r.judged, ==, 1);
        g_assert_cmpstr(r.asked, ==, "s0 -> t0");
        g_assert_false(r.moved_before_judged);
        g_assert_cmpint(s.phase, ==, phase);
        g_assert_cmpuint(sim_device_state(r.devices[1]), ==, VFIO_STATE_RUNNING);
        if (phase == MIGRATION_DONE) {
                g_assert_null(s.error);
                assert_journal(&r, true);
                after = sim_device_digest(r.devices[1]);
                g_assert_cmpstr(after, ==, before);
                rig_clear(&r);
                return;
        }
        g_assert_cmpstr(error_name_of(&s), ==, error_name);
        g_assert_nonnull(strstr(s.error, message));
        /* nothing moved, nothing was journalled but the end */
        g_assert_false(journal_has(&r, WORKER_RECORD_BEGIN));
        g_assert_cmpstr(s.devices[0].outcome, ==, "running");
        g_assert_cmpstr(s.devices[1].outcome, ==, "untouched");
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        for (unsigned i = 0; i < 2; i++) {
                GArray *arcs = sim_device_history(r.devices[i]);

                g_assert_cmpuint(arcs->len, ==, 0);
                g_array_unref(arcs);
        }
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);
        g_free(after);
        after = sim_device_digest(r.devices[1]);
        g_assert_cmpstr(after, ==, target_before);
        rig_clear(&r);
}

static void test_migrate_asked_again(void) {
        /* the driver is free now and takes the state */
        check_asked_again(VERDICT_COMPATIBLE, true, false, MIGRATION_DONE, NULL, NULL);
        /* still busy: allow-unknown was given */
        check_asked_again(VERDICT_UNKNOWN, true, false, MIGRATION_DONE, NULL, NULL);
        /* it refuses: both devices and the driver's cause are named */
        check_asked_again(VERDICT_INCOMPATIBLE, true, false, MIGRATION_FAILED, VFIOMIG_ERROR_INCOMPATIBLE,
                          "s0 cannot go into t0: the test says so for t0 (its driver, busy before, was asked again");
        check_asked_again(VERDICT_UNKNOWN, false, false, MIGRATION_FAILED, VFIOMIG_ERROR_COMPATIBILITY_UNKNOWN,
                          "s0 cannot go into t0: the test says so for t0 (option allow-unknown)");
        /* a cancel while the main loop is asked */
        check_asked_again(VERDICT_COMPATIBLE, true, true, MIGRATION_CANCELLED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
}

/* In a group only the pairs marked are asked about. */
static void test_migrate_asked_again_group(void) {
        g_auto(MigrationSnapshot) s = {};
        Rig r;

        rig_migrate(&r, 2, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, 0, NULL);
        worker_dev(&r.w, 1)->ask_again = true;
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        g_assert_cmpuint(r.judged, ==, 1);
        g_assert_cmpstr(r.asked, ==, "s1 -> t1");
        g_assert_false(r.moved_before_judged);
        rig_clear(&r);

        /* and a pair not marked is not asked about */
        rig_migrate(&r, 1, ALL_FLAGS, 0, NULL);
        migration_snapshot_clear(&s);
        s = run(&r, 0);
        g_assert_cmpuint(r.judged, ==, 0);
        rig_clear(&r);
}

/* ---- the downtime window ---- */

/* The SETs each device was asked for: its handle's ops table is a copy
 * of the simulator's whose set_state writes them down first. */
typedef struct SetLog {
        DeviceHandle *handle;
        const DeviceOps *real;
        DeviceOps counted;
        GArray *states;         /* uint32_t */
} SetLog;

static SetLog set_logs[4];

static int logged_set_state(DeviceHandle *h, uint32_t state, int *ret_data_fd) {
        for (unsigned i = 0; i < G_N_ELEMENTS(set_logs); i++)
                if (set_logs[i].handle == h) {
                        g_array_append_val(set_logs[i].states, state);
                        return set_logs[i].real->set_state(h, state, ret_data_fd);
                }
        g_assert_not_reached();
}

static void log_sets(Rig *r) {
        for (unsigned i = 0; i < r->w.devices->len; i++) {
                SetLog *l = &set_logs[i];
                DeviceHandle *h = worker_dev(&r->w, i)->handle;

                *l = (SetLog) { .handle = h, .real = h->ops, .counted = *h->ops,
                                .states = g_array_new(false, false, sizeof(uint32_t)) };
                l->counted.set_state = logged_set_state;
                h->ops = &l->counted;
        }
}

static void assert_sets(unsigned device, const uint32_t *want, unsigned n) {
        GArray *got = set_logs[device].states;

        g_assert_cmpuint(got->len, ==, n);
        for (unsigned i = 0; i < n; i++)
                g_assert_cmpstr(fsm_state_to_string(g_array_index(got, uint32_t, i)), ==, fsm_state_to_string(want[i]));
}

static void clear_set_logs(void) {
        for (unsigned i = 0; i < G_N_ELEMENTS(set_logs); i++) {
                if (set_logs[i].states)
                        g_array_unref(set_logs[i].states);
                set_logs[i] = (SetLog) {};
        }
}

/* The sequence number of a device's first arc into state (from any, or
 * from `from` unless it is -1); 0 if there is none. */
static uint32_t arc_seq(SimDevice *d, int from, uint32_t to) {
        GArray *arcs = sim_device_history(d);
        uint32_t seq = 0;

        for (guint i = 0; i < arcs->len && !seq; i++) {
                SimArc *a = &g_array_index(arcs, SimArc, i);

                if (a->to == to && (from < 0 || a->from == (uint32_t) from))
                        seq = a->seq;
        }
        g_array_unref(arcs);
        return seq;
}

/* One pair: the target goes RESUMING -> RUNNING in one SET, which the
 * kernel walks; the source leaves STOP_COPY only after the target runs;
 * what changed in the window reaches the job once, after it; the
 * downtime's phases account for all of it. */
static void test_window(void) {
        static const uint32_t source_sets[] = { VFIO_STATE_PRE_COPY, VFIO_STATE_STOP_COPY, VFIO_STATE_STOP };
        static const uint32_t target_sets[] = { VFIO_STATE_RESUMING, VFIO_STATE_RUNNING };
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL, *text = NULL;
        uint64_t wall = 0;
        Rig r;

        rig_migrate(&r, 1, ALL_FLAGS, 0, NULL);
        log_sets(&r);
        before = sim_device_digest(r.devices[0]);
        s = run(&r, 0);
        after = sim_device_digest(r.devices[1]);
        g_assert_cmpstr(after, ==, before);
        assert_sets(0, source_sets, G_N_ELEMENTS(source_sets));
        assert_sets(1, target_sets, G_N_ELEMENTS(target_sets));
        /* the kernel's path, taken by the device in that one request */
        g_assert_cmpuint(arc_seq(r.devices[1], VFIO_STATE_RESUMING, VFIO_STATE_STOP), <,
                         arc_seq(r.devices[1], VFIO_STATE_STOP, VFIO_STATE_RUNNING_P2P));
        g_assert_cmpuint(arc_seq(r.devices[1], VFIO_STATE_RUNNING_P2P, VFIO_STATE_RUNNING), <,
                         arc_seq(r.devices[0], VFIO_STATE_STOP_COPY, VFIO_STATE_STOP));
        g_assert_cmpuint(r.deferred, >, 0);
        g_assert_true(r.woken_after_window);

        g_assert_cmpuint(r.w.down.entered, ==, (1u << _DOWN_PHASE_MAX) - 1);
        for (unsigned p = 0; p < _DOWN_PHASE_MAX; p++) {
                wall += r.w.down.wall[p];
                g_assert_cmpuint(r.w.down.device[p] + r.w.down.data[p], <=, r.w.down.wall[p]);
        }
        g_assert_cmpuint(wall, ==, s.downtime_usec);
        g_assert_cmpuint(r.w.down.device[DOWN_STOP], >, 0);
        g_assert_cmpuint(r.w.down.device[DOWN_START], >, 0);
        g_assert_cmpuint(r.w.down.device[DOWN_COMMIT] + r.w.down.data[DOWN_COMMIT], ==, 0);
        text = downtime_describe(&r.w.down);
        g_assert_true(g_str_has_prefix(text, "downtime "));
        g_assert_nonnull(strstr(text, "; window: stop "));
        g_assert_nonnull(strstr(text, ", start "));
        rig_clear(&r);
        clear_set_logs();
}

/* A group: no target runs before every one has loaded its state. They
 * wait in RUNNING_P2P when the group is quiesced, else in STOP. */
static void check_group_targets(uint32_t flags, uint32_t wait_in) {
        const uint32_t target_sets[] = { VFIO_STATE_RESUMING, wait_in, VFIO_STATE_RUNNING };
        g_auto(MigrationSnapshot) s = {};
        MigrationOptions o;
        uint32_t last_wait = 0, first_run = G_MAXUINT32;
        Rig r;

        migration_options_init(&o);
        o.allow_no_p2p = true;
        rig_migrate(&r, 2, flags, 0, &o);
        log_sets(&r);
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        for (unsigned i = 2; i < 4; i++) {
                assert_sets(i, target_sets, G_N_ELEMENTS(target_sets));
                last_wait = MAX(last_wait, arc_seq(r.devices[i], -1, wait_in));
                first_run = MIN(first_run, arc_seq(r.devices[i], -1, VFIO_STATE_RUNNING));
                g_assert_cmpuint(sim_device_state(r.devices[i]), ==, VFIO_STATE_RUNNING);
        }
        g_assert_cmpuint(last_wait, >, 0);
        g_assert_cmpuint(last_wait, <, first_run);
        rig_clear(&r);
        clear_set_logs();
}

static void test_group_targets(void) {
        check_group_targets(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, VFIO_STATE_RUNNING_P2P);
        check_group_targets(VFIO_MIGRATION_STOP_COPY, VFIO_STATE_STOP);
}

/* Once the target runs with the state, the job is done: a source that
 * then fails to leave STOP_COPY stays stopped, and nothing rolls back. */
static void test_source_stop_after_target_runs(void) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        Rig r;

        rig_migrate_fault(&r, 1, VFIO_MIGRATION_STOP_COPY, 0, NULL,
                          "transition from=stop-copy to=stop errno=EIO land=error", 0);
        before = sim_device_digest(r.devices[0]);
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        assert_journal(&r, true);
        after = sim_device_digest(r.devices[1]);
        g_assert_cmpstr(after, ==, before);
        g_assert_cmpuint(sim_device_state(r.devices[1]), ==, VFIO_STATE_RUNNING);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_ERROR);
        g_assert_cmpstr(s.devices[0].outcome, ==, "error");
        g_assert_cmpstr(s.devices[1].outcome, ==, "running");
        g_assert_cmpuint(s.downtime_usec, >, 0);
        rig_clear(&r);
}

/* ---- save and load ---- */

static int temp_stream(void) {
        char path[] = "/tmp/test-worker-XXXXXX";
        int fd = g_mkstemp(path);

        g_assert_cmpint(fd, >=, 0);
        unlink(path);
        return fd;
}

static void rig_save(Rig *r, SimDevice *d, int fd, uint32_t flags) {
        rig_init(r, MIGRATION_SAVE, NULL);
        r->w.pairs = 1;
        rig_add(r, d, "s0", true);
        g_assert_cmpint(xfer_end_from_client_fd(fd, true, &r->w.stream), ==, 0);
        r->w.identity.migration_type = g_strdup("sim");
        r->w.identity.migration_version = g_strdup("1");
        r->w.identity.device = g_strdup("s0");
        r->w.identity.migration_flags = flags;
}

static void rig_load(Rig *r, uint32_t flags, const char *tag, int fd) {
        rig_init(r, MIGRATION_LOAD, NULL);
        r->w.pairs = 1;
        rig_add(r, rig_device(r, "t0", flags, 0, tag), "t0", false);
        g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
        g_assert_cmpint(xfer_end_from_client_fd(fd, false, &r->w.stream), ==, 0);
}

static void save_one(SimDevice *src, int fd, uint32_t flags) {
        g_auto(MigrationSnapshot) s = {};
        Rig r;

        rig_save(&r, src, fd, flags);
        s = run(&r, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        g_assert_cmpstr(r.published, ==, "yes");
        assert_journal(&r, true);
        g_assert_cmpuint(sim_device_state(src), ==, VFIO_STATE_STOP);   /* source-state defaults to stop */
        g_assert_cmpstr(s.devices[0].outcome, ==, "stop");
        r.n = 0;        /* src is the caller's */
        rig_clear(&r);
}

static void test_save_and_load(void) {
        for (int precopy = 0; precopy <= 1; precopy++) {
                uint32_t flags = precopy ? ALL_FLAGS : VFIO_MIGRATION_STOP_COPY;
                SimConfig c = { .flags = flags, .state_size = SIZE, .tag = "t" };
                SimDevice *src = sim_device_new("s0", &c, NULL);
                g_auto(MigrationSnapshot) s = {};
                g_autofree char *before = sim_device_digest(src), *after = NULL;
                int fd = temp_stream();
                Rig r;

                save_one(src, fd, flags);
                rig_load(&r, flags, NULL, fd);
                s = run(&r, 0);
                g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
                g_assert_cmpuint(r.judged, ==, 1);
                assert_journal(&r, true);
                after = sim_device_digest(r.devices[0]);
                g_assert_cmpstr(after, ==, before);
                g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
                g_assert_cmpuint(s.bytes, ==, s.expected);
                rig_clear(&r);
                sim_device_free(src);
                close(fd);
        }
}

/* Load: what must stop it before the target is touched, and what after. */
static void check_load_refused(Verdict verdict, bool allow_unknown, const char *corrupt_at, const char *tag,
                               const char *error_name, const char *target_outcome) {
        SimConfig c = { .flags = ALL_FLAGS, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL;
        int fd = temp_stream();
        Rig r;

        save_one(src, fd, ALL_FLAGS);
        if (corrupt_at) {
                off_t at = (off_t) g_ascii_strtoll(corrupt_at, NULL, 10);
                uint8_t b;

                g_assert_cmpint(pread(fd, &b, 1, at), ==, 1);
                b ^= 0xff;
                g_assert_cmpint(pwrite(fd, &b, 1, at), ==, 1);
        }
        rig_load(&r, ALL_FLAGS, tag, fd);
        r.verdict = verdict;
        r.w.options.allow_unknown = allow_unknown;
        before = sim_device_digest(r.devices[0]);
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(error_name_of(&s), ==, error_name);
        assert_journal(&r, false);
        g_assert_cmpstr(s.devices[0].outcome, ==, target_outcome);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        if (g_str_equal(target_outcome, "untouched")) {
                g_autofree char *after = sim_device_digest(r.devices[0]);
                GArray *arcs = sim_device_history(r.devices[0]);

                g_assert_cmpstr(after, ==, before);
                g_assert_cmpuint(arcs->len, ==, 0);
                g_array_unref(arcs);
        }
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

#define IOMMU_48 "width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no"
#define IOMMU_39 "width=39 ranges=0x0-0xfedfffff,0xfef00000-0x7fffffffff pgsizes=0x40201000 dirty=no"

/* The stream's header carries the source's IOMMU facet, and a target
 * whose IOMMU is narrower is refused before it leaves RUNNING; a wider
 * one takes the state. */
static void test_load_judged_by_iommu_facet(void) {
        static const struct { const char *stream, *target; MigrationPhase phase; } cases[] = {
                { IOMMU_48, IOMMU_39, MIGRATION_FAILED },
                { IOMMU_39, IOMMU_48, MIGRATION_DONE },
                { "none", IOMMU_39, MIGRATION_DONE },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                SimConfig c = { .flags = ALL_FLAGS, .state_size = SIZE, .tag = "t" };
                SimDevice *src = sim_device_new("s0", &c, NULL);
                g_auto(MigrationSnapshot) s = {};
                g_autofree char *before = NULL, *after = NULL;
                int fd = temp_stream();
                GArray *arcs;
                Rig r;

                rig_save(&r, src, fd, ALL_FLAGS);
                r.w.identity.iommu = g_strdup(cases[i].stream);
                s = run(&r, 0);
                g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
                r.n = 0;
                rig_clear(&r);
                migration_snapshot_clear(&s);

                rig_load(&r, ALL_FLAGS, NULL, fd);
                r.target_iommu = cases[i].target;
                before = sim_device_digest(r.devices[0]);
                s = run(&r, cases[i].phase == MIGRATION_DONE ? 0 : -1);
                g_assert_cmpint(s.phase, ==, cases[i].phase);
                g_assert_cmpuint(r.judged, ==, 1);
                g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
                if (cases[i].phase == MIGRATION_FAILED) {
                        g_assert_cmpstr(error_name_of(&s), ==, VFIOMIG_ERROR_INCOMPATIBLE);
                        g_assert_nonnull(strstr(s.error, "target IOMMU maps 39 bits, source 48"));
                        g_assert_cmpstr(s.devices[0].outcome, ==, "untouched");
                        after = sim_device_digest(r.devices[0]);
                        g_assert_cmpstr(after, ==, before);
                        arcs = sim_device_history(r.devices[0]);
                        g_assert_cmpuint(arcs->len, ==, 0);
                        g_array_unref(arcs);
                }
                rig_clear(&r);
                sim_device_free(src);
                close(fd);
        }
}

static void test_load_refused(void) {
        check_load_refused(VERDICT_INCOMPATIBLE, true, NULL, NULL, VFIOMIG_ERROR_INCOMPATIBLE, "untouched");
        check_load_refused(VERDICT_UNKNOWN, false, NULL, NULL, VFIOMIG_ERROR_COMPATIBILITY_UNKNOWN, "untouched");
        /* a flipped byte in the data: the whole stream is checked first */
        check_load_refused(VERDICT_COMPATIBLE, false, "4000", NULL, VFIOMIG_ERROR_STREAM_CORRUPT, "untouched");
        /* the driver refuses data of another tag: the target is reset */
        check_load_refused(VERDICT_COMPATIBLE, false, NULL, "other", VFIOMIG_ERROR_DEVICE_FAILED, "reset");
}

/* Without prefetch the target takes each record once it is checked: a
 * byte flipped late in the stream fails the load after the target took
 * the records before it, and the target, reset, never left RESUMING for
 * STOP with any of it. */
static void test_load_unprefetched(void) {
        /* records of at most 1 MiB: a few of them */
        SimConfig c = { .flags = ALL_FLAGS, .state_size = 3 << 20, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        bool resumed = false, loaded = false;
        int fd = temp_stream();
        GArray *arcs;
        off_t at;
        uint8_t b;
        Rig r;

        save_one(src, fd, ALL_FLAGS);
        at = lseek(fd, 0, SEEK_END) * 3 / 4;
        g_assert_cmpint(lseek(fd, 0, SEEK_SET), ==, 0);
        g_assert_cmpint(pread(fd, &b, 1, at), ==, 1);
        b ^= 0xff;
        g_assert_cmpint(pwrite(fd, &b, 1, at), ==, 1);
        /* rig_load()'s, with a target of the source's size */
        rig_init(&r, MIGRATION_LOAD, NULL);
        r.w.pairs = 1;
        r.devices[r.n++] = sim_device_new("t0", &c, NULL);
        rig_add(&r, r.devices[0], "t0", false);
        g_assert_cmpint(xfer_end_from_client_fd(fd, false, &r.w.stream), ==, 0);
        r.w.options.prefetch = false;
        before = sim_device_digest(r.devices[0]);
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(error_name_of(&s), ==, VFIOMIG_ERROR_STREAM_CORRUPT);
        g_assert_cmpuint(s.bytes, >, 0);
        g_assert_cmpstr(s.devices[0].outcome, ==, "reset");
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);
        arcs = sim_device_history(r.devices[0]);
        for (guint i = 0; i < arcs->len; i++) {
                SimArc *a = &g_array_index(arcs, SimArc, i);

                resumed |= a->to == VFIO_STATE_RESUMING;
                loaded |= a->from == VFIO_STATE_RESUMING && a->to == VFIO_STATE_STOP;
        }
        g_array_unref(arcs);
        g_assert_true(resumed);
        g_assert_false(loaded);
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

/* ---- rollback ---- */

/* A migrate of one pair with a fault on one device: it fails in the
 * phase named, and rollback puts both back. */
static void check_rollback(const char *fault, bool on_source, uint32_t flags, MigrationPhase failed_in,
                           const char *source_outcome, const char *target_outcome) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        Rig r;

        rig_migrate_fault(&r, 1, flags, 0, NULL, fault, on_source ? 0 : 1);
        before = sim_device_digest(r.devices[0]);
        g_assert_cmpint(worker_run(&r.w), <, 0);
        /* the phase it failed in is the last one before FAILED: the
         * journal never saw a commit unless it was reached */
        worker_snapshot(&r.w, &s);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(error_name_of(&s), ==, VFIOMIG_ERROR_DEVICE_FAILED);
        g_assert_nonnull(strstr(s.error, on_source ? "s0" : "t0"));
        assert_journal(&r, false);
        /* past the commit only when the targets were asked to load: the
         * commit was taken back before the rollback */
        g_assert_cmpint(journal_has(&r, WORKER_RECORD_COMMIT), ==, failed_in == MIGRATION_FINISHING);
        g_assert_cmpint(journal_has(&r, WORKER_RECORD_ABORT), ==, failed_in == MIGRATION_FINISHING);
        g_assert_cmpint(r.last_phase, ==, failed_in);
        if (failed_in == MIGRATION_PREPARING)
                g_assert_nonnull(strstr(s.error, "t0: stop -> resuming failed"));
        g_assert_cmpstr(s.devices[0].outcome, ==, source_outcome);
        g_assert_cmpstr(s.devices[1].outcome, ==, target_outcome);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        g_assert_cmpuint(sim_device_state(r.devices[1]), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);     /* the source kept its state */
        rig_clear(&r);
}

static void test_rollback(void) {
        /* preparing: a target refuses RESUMING; the source was never touched;
         * the message names the arc of the kernel's path that failed */
        check_rollback("transition from=stop to=resuming errno=EIO", false, ALL_FLAGS, MIGRATION_PREPARING, "running",
                       "reset");
        /* pre-copy: the source cannot say how much is left */
        check_rollback("precopy-info errno=EIO", true, ALL_FLAGS, MIGRATION_PRECOPY,
                       "restored to running (was pre-copy)", "reset");
        /* stop-copy: reading the source's state fails half-way */
        check_rollback("read-error after=4096 errno=EIO", true, VFIO_MIGRATION_STOP_COPY, MIGRATION_STOPCOPY,
                       "restored to running (was stop-copy)", "reset");
        /* resuming: the target refuses the data at its end and lands in
         * ERROR; it loads and starts in one request, after the commit, and
         * the source has not left STOP_COPY yet */
        check_rollback("transition from=resuming to=stop errno=EINVAL land=error", false, VFIO_MIGRATION_STOP_COPY,
                       MIGRATION_FINISHING, "restored to running (was stop-copy)", "reset");
        /* the walk back fails: QEMU's rule, reset */
        check_rollback("read-error after=4096 errno=EIO;transition from=stop-copy to=stop errno=EIO land=error", true,
                       VFIO_MIGRATION_STOP_COPY, MIGRATION_STOPCOPY, "reset to running (was stop-copy)", "reset");
}

/* A failing save leaves the source running and publishes nothing. */
static void test_save_rollback(void) {
        SimConfig c = { .flags = ALL_FLAGS, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = sim_device_digest(src), *after = NULL;
        int fd = temp_stream();
        Rig r;

        rig_fault(src, "read-error after=1000 errno=EIO");   /* before the handle opens */
        rig_save(&r, src, fd, ALL_FLAGS);
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpint(r.last_phase, ==, MIGRATION_PRECOPY);
        g_assert_null(r.published);
        assert_journal(&r, false);
        g_assert_cmpstr(s.devices[0].outcome, ==, "restored to running (was pre-copy)");
        g_assert_cmpuint(sim_device_state(src), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(src);
        g_assert_cmpstr(after, ==, before);
        r.n = 0;
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

/* A save that fails in a phase: the source runs again with the state it
 * had, nothing is published and the journal never committed. */
typedef struct SaveFailure {
        const char *fault;              /* on the source, before it opens */
        uint32_t flags;
        int publish_failure;
        bool broken_stream;             /* a pipe nobody reads */
        MigrationPhase failed_in;
        const char *error_name, *outcome;
} SaveFailure;

static void check_save_failure(const SaveFailure *f) {
        SimConfig c = { .flags = f->flags, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = sim_device_digest(src), *after = NULL;
        int fds[2] = { -1, -1 }, fd;
        Rig r;

        if (f->broken_stream) {
                g_assert_cmpint(pipe2(fds, O_CLOEXEC), ==, 0);
                close(fds[0]);
                fd = fds[1];
        } else
                fd = temp_stream();
        if (f->fault)
                rig_fault(src, f->fault);
        rig_save(&r, src, fd, f->flags);
        r.publish_failure = f->publish_failure;
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(error_name_of(&s), ==, f->error_name);
        g_assert_cmpint(r.last_phase, ==, f->failed_in);
        g_assert_null(r.published);
        assert_journal(&r, false);
        g_assert_false(journal_has(&r, WORKER_RECORD_COMMIT));
        g_assert_cmpstr(s.devices[0].outcome, ==, f->outcome);
        g_assert_cmpuint(sim_device_state(src), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(src);
        g_assert_cmpstr(after, ==, before);
        r.n = 0;
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

static void test_save_failures(void) {
        /* preparing: the stream cannot take the header; the source was
         * never asked anything */
        check_save_failure(&(SaveFailure) { .flags = ALL_FLAGS, .broken_stream = true,
                                            .failed_in = MIGRATION_PREPARING,
                                            .error_name = VFIOMIG_ERROR_DEVICE_FAILED, .outcome = "running" });
        /* stop-copy: reading the source's state fails half-way */
        check_save_failure(&(SaveFailure) { .fault = "read-error after=4096 errno=EIO",
                                            .flags = VFIO_MIGRATION_STOP_COPY, .failed_in = MIGRATION_STOPCOPY,
                                            .error_name = VFIOMIG_ERROR_DEVICE_FAILED,
                                            .outcome = "restored to running (was stop-copy)" });
        /* the stream is whole, but its name was taken meanwhile */
        check_save_failure(&(SaveFailure) { .flags = VFIO_MIGRATION_STOP_COPY, .publish_failure = -EEXIST,
                                            .failed_in = MIGRATION_STOPCOPY,
                                            .error_name = VFIOMIG_ERROR_ALREADY_EXISTS,
                                            .outcome = "restored to running (was stop-copy)" });
}

/* A load whose journal cannot record the commit: the target, which took
 * the data, is reset and runs as it was. */
static void test_load_commit_failure(void) {
        SimConfig c = { .flags = ALL_FLAGS, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        int fd = temp_stream();
        Rig r;

        save_one(src, fd, ALL_FLAGS);
        rig_load(&r, ALL_FLAGS, NULL, fd);
        r.commit_failure = -ENOSPC;
        before = sim_device_digest(r.devices[0]);
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(s.error, ==, "journal full");
        g_assert_cmpint(r.last_phase, ==, MIGRATION_RESUMING);
        g_assert_cmpstr(s.devices[0].outcome, ==, "reset");
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

/* ---- cancel ---- */

static void check_cancel(MigrationPhase at, uint32_t flags) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        Rig r;

        rig_migrate(&r, 1, flags, 0, NULL);
        r.cancel_at = at;
        before = sim_device_digest(r.devices[0]);
        s = run(&r, -1);
        g_assert_cmpint(r.cancel_result, ==, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_CANCELLED);
        g_assert_cmpstr(error_name_of(&s), ==, VFIOMIG_ERROR_CANCELLED);
        g_assert_cmpstr(s.error, ==, "Cancelled by the test");
        assert_journal(&r, false);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        g_assert_cmpuint(sim_device_state(r.devices[1]), ==, VFIO_STATE_RUNNING);
        g_assert_cmpstr(s.devices[1].outcome, ==, "reset");
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);
        rig_clear(&r);
}

static void test_cancel(void) {
        check_cancel(MIGRATION_PREPARING, ALL_FLAGS);
        check_cancel(MIGRATION_PRECOPY, ALL_FLAGS);
        check_cancel(MIGRATION_STOPCOPY, VFIO_MIGRATION_STOP_COPY);
        check_cancel(MIGRATION_RESUMING, VFIO_MIGRATION_STOP_COPY);
}

/* A save cancelled in a phase: the source runs again with its state and
 * nothing is published. */
static void check_save_cancel(MigrationPhase at, bool in_window, uint32_t flags, const char *outcome) {
        SimConfig c = { .flags = flags, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = sim_device_digest(src), *after = NULL;
        int fd = temp_stream();
        Rig r;

        rig_save(&r, src, fd, flags);
        r.cancel_at = at;
        r.cancel_in_window = in_window;
        s = run(&r, -1);
        g_assert_cmpint(r.cancel_result, ==, 0);
        g_assert_cmpint(s.phase, ==, MIGRATION_CANCELLED);
        g_assert_cmpstr(s.error, ==, "Cancelled by the test");
        g_assert_null(r.published);
        assert_journal(&r, false);
        g_assert_false(journal_has(&r, WORKER_RECORD_COMMIT));
        g_assert_cmpstr(s.devices[0].outcome, ==, outcome);
        g_assert_cmpuint(sim_device_state(src), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(src);
        g_assert_cmpstr(after, ==, before);
        r.n = 0;
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

/* A load cancelled while its stream is judged or while the target takes
 * the data: the target runs as it was, untouched or reset. */
static void check_load_cancel(MigrationPhase at, bool in_judge, const char *outcome) {
        SimConfig c = { .flags = ALL_FLAGS, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *before = NULL, *after = NULL;
        int fd = temp_stream();
        Rig r;

        save_one(src, fd, ALL_FLAGS);
        rig_load(&r, ALL_FLAGS, NULL, fd);
        r.cancel_at = at;
        r.cancel_in_judge = in_judge;
        before = sim_device_digest(r.devices[0]);
        s = run(&r, -1);
        g_assert_cmpint(s.phase, ==, MIGRATION_CANCELLED);
        g_assert_cmpstr(s.error, ==, "Cancelled by the test");
        g_assert_cmpint(r.last_phase, ==, at);
        assert_journal(&r, false);
        g_assert_false(journal_has(&r, WORKER_RECORD_COMMIT));
        g_assert_cmpstr(s.devices[0].outcome, ==, outcome);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        after = sim_device_digest(r.devices[0]);
        g_assert_cmpstr(after, ==, before);
        if (g_str_equal(outcome, "untouched")) {
                GArray *arcs = sim_device_history(r.devices[0]);

                g_assert_cmpuint(arcs->len, ==, 0);
                g_array_unref(arcs);
        }
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

static void test_stream_cancel(void) {
        check_save_cancel(MIGRATION_PRECOPY, false, ALL_FLAGS, "restored to running (was pre-copy)");
        /* as stop-copy begins, before the source stops; and while its
         * last data goes into the stream */
        check_save_cancel(MIGRATION_STOPCOPY, false, VFIO_MIGRATION_STOP_COPY, "running");
        check_save_cancel(MIGRATION_STOPCOPY, true, VFIO_MIGRATION_STOP_COPY, "restored to running (was stop-copy)");
        check_load_cancel(MIGRATION_PREPARING, true, "untouched");
        check_load_cancel(MIGRATION_RESUMING, false, "reset");
}

/* ---- the commit point ---- */

/* Once the targets hold the state, a cancel is refused and the job
 * completes; a journal that cannot record the commit fails the job
 * before it (sources go back). */
static void test_commit_point(void) {
        g_auto(MigrationSnapshot) s = {}, f = {};
        Rig r;

        rig_migrate(&r, 1, VFIO_MIGRATION_STOP_COPY, 0, NULL);
        r.cancel_at = MIGRATION_FINISHING;
        s = run(&r, 0);
        g_assert_cmpint(r.cancel_result, ==, -EBUSY);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        g_assert_null(s.error);
        assert_journal(&r, true);
        g_assert_cmpint(worker_cancel(&r.w, "the test"), ==, -EBUSY);
        rig_clear(&r);

        rig_migrate(&r, 1, VFIO_MIGRATION_STOP_COPY, 0, NULL);
        r.commit_failure = -ENOSPC;
        f = run(&r, -1);
        g_assert_cmpint(f.phase, ==, MIGRATION_FAILED);
        g_assert_cmpstr(f.error, ==, "journal full");
        g_assert_cmpstr(f.devices[0].outcome, ==, "restored to running (was stop-copy)");
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        g_assert_cmpuint(sim_device_state(r.devices[1]), ==, VFIO_STATE_RUNNING);
        rig_clear(&r);
}

/* A save's point of no return is its complete stream: a cancel that
 * comes while it is published is refused, and the job completes with
 * what it published. Once finishing, neither a save nor a load can be
 * cancelled. */
static void test_stream_commit_point(void) {
        SimConfig c = { .flags = VFIO_MIGRATION_STOP_COPY, .state_size = SIZE, .tag = "t" };
        SimDevice *src = sim_device_new("s0", &c, NULL);
        g_auto(MigrationSnapshot) s = {}, l = {};
        int fd = temp_stream();
        Rig r;

        rig_save(&r, src, fd, VFIO_MIGRATION_STOP_COPY);
        r.cancel_in_publish = true;
        s = run(&r, 0);
        g_assert_cmpint(r.publish_cancel_result, ==, -EBUSY);
        g_assert_cmpint(s.phase, ==, MIGRATION_DONE);
        g_assert_null(s.error);
        g_assert_cmpstr(r.published, ==, "yes");
        assert_journal(&r, true);
        g_assert_cmpuint(sim_device_state(src), ==, VFIO_STATE_STOP);
        r.n = 0;
        rig_clear(&r);

        rig_load(&r, VFIO_MIGRATION_STOP_COPY, NULL, fd);
        r.cancel_at = MIGRATION_FINISHING;
        l = run(&r, 0);
        g_assert_cmpint(r.cancel_result, ==, -EBUSY);
        g_assert_cmpint(l.phase, ==, MIGRATION_DONE);
        assert_journal(&r, true);
        g_assert_cmpuint(sim_device_state(r.devices[0]), ==, VFIO_STATE_RUNNING);
        rig_clear(&r);
        sim_device_free(src);
        close(fd);
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);       /* as vfiomigd: a closed pipe is EPIPE */
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/worker/migrate/stopcopy", test_migrate_stopcopy);
        g_test_add_func("/worker/migrate/precopy", test_migrate_precopy);
        g_test_add_func("/worker/migrate/group-p2p", test_migrate_group_p2p);
        g_test_add_func("/worker/migrate/asked-again", test_migrate_asked_again);
        g_test_add_func("/worker/migrate/asked-again-group", test_migrate_asked_again_group);
        g_test_add_func("/worker/save-and-load", test_save_and_load);
        g_test_add_func("/worker/load-refused", test_load_refused);
        g_test_add_func("/worker/load-unprefetched", test_load_unprefetched);
        g_test_add_func("/worker/load-judged-by-iommu-facet", test_load_judged_by_iommu_facet);
        g_test_add_func("/worker/rollback", test_rollback);
        g_test_add_func("/worker/save-rollback", test_save_rollback);
        g_test_add_func("/worker/save-failures", test_save_failures);
        g_test_add_func("/worker/load-commit-failure", test_load_commit_failure);
        g_test_add_func("/worker/cancel", test_cancel);
        g_test_add_func("/worker/stream-cancel", test_stream_cancel);
        g_test_add_func("/worker/stream-commit-point", test_stream_commit_point);
        g_test_add_func("/worker/commit-point", test_commit_point);
        g_test_add_func("/worker/window", test_window);
        g_test_add_func("/worker/group-targets", test_group_targets);
        g_test_add_func("/worker/source-stop-after-target-runs", test_source_stop_after_target_runs);
        return g_test_run();
}
