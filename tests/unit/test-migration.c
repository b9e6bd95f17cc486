/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The job (migration.c and its admission) on a testbed and a map of the
 * test's own, whose driver was busy when the map judged a pair: starting
 * the job asks no driver anything (the bus replies as soon as
 * migration_launch() returns), the job's worker has the driver asked
 * afterwards, on the main loop, and the answer decides the job. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "backend/testbed.h"
#include "bus/bus-error.h"
#include "conffile.h"
#include "migration/migration.h"
#include "util.h"
#include "vfio-uapi.h"
#include "vfiomig-names.h"
#include "unit-test.h"

#define SRC "00000000-0000-4000-8000-000000000001"
#define TGT "00000000-0000-4000-8000-000000000002"

static const char testbed[] =
        "[Parent p0]\n"
        "Driver=mtty\n"
        "[Type p0/t-1]\n"
        "MaxInstances=4\n"
        "MigrationFlags=stop-copy\n"
        "StateSize=64K\n"
        "[Device " SRC "]\n"
        "Kind=mdev\n"
        "Parent=p0\n"
        "Type=t-1\n"
        "[Device " TGT "]\n"
        "Kind=mdev\n"
        "Parent=p0\n"
        "Type=t-1\n";

typedef struct Rig {
        sd_event *event;
        Registry *registry;
        Backend *backend;
        CompatMap *map;
        char *runtime_dir;
        MigrationEnv env;               /* a job keeps a pointer to it */
        GThread *main_thread;
        /* the target's driver, asked whether it takes the source's version */
        bool busy;
        int answer;
        unsigned writes;
        bool off_main_thread;
        bool ended;
} Rig;

/* Every other question is answered yes; only the one that matters is
 * counted, as a FUSE driver counts the writes into its attribute. */
static int driver(void *userdata, const Node *target, const char *version) {
        Rig *r = userdata;

        if (!g_str_equal(target->name, TGT) || !g_str_equal(version, "2"))
                return 0;
        r->writes++;
        r->off_main_thread |= g_thread_self() != r->main_thread;
        return r->busy ? -EBUSY : r->answer;
}

static void rig_init(Rig *r) {
        g_autoptr(GError) error = NULL;
        g_autoptr(ConfFile) c = conf_file_parse(testbed, "t.conf", &error);
        JudgeOps ops = { driver, NULL, r };

        *r = (Rig) { .busy = true, .main_thread = g_thread_self() };
        g_assert_no_error(error);
        g_assert_cmpint(sd_event_new(&r->event), >=, 0);
        r->registry = registry_new();
        r->backend = testbed_new(c, r->registry, NULL, &error);
        g_assert_no_error(error);
        r->runtime_dir = g_dir_make_tmp("vfiomig-test-migration-XXXXXX", &error);
        g_assert_no_error(error);
        r->map = compat_map_new(&ops);
        /* the source's firmware is newer: the target's driver decides */
        compat_map_set(r->map, &NODE_OF_DEVICE(SRC), identity_new("sim", "2", BASIS_VENDOR));
        compat_map_set(r->map, &NODE_OF_DEVICE(TGT), identity_new("sim", "1", BASIS_VENDOR));
        r->env = (MigrationEnv) { r->event, r->registry, r->backend, r->map, r->runtime_dir };
        /* the map asked it once, and it was busy */
        g_assert_cmpuint(r->writes, ==, 1);
        g_assert_true(compat_map_kept_verdict(r->map, &NODE_OF_DEVICE(SRC), &NODE_OF_DEVICE(TGT))->retry);
}

static void rig_clear(Rig *r) {
        compat_map_free(r->map);
        backend_free(r->backend);
        registry_free(r->registry);
        sd_event_unref(r->event);
        g_assert_cmpint(g_rmdir(r->runtime_dir), ==, 0);       /* the journal entry is gone */
        g_free(r->runtime_dir);
}

static void on_changed(void *userdata, Migration *j, bool final) {
}

static void on_ended(void *userdata, Migration *j) {
        ((Rig *) userdata)->ended = true;
}

static const MigrationOwner owner = { .changed = on_changed, .ended = on_ended };

static int start(Rig *r, bool allow_unknown, Migration **ret, char **ret_error) {
        MigrationRequest req = {
                .kind = MIGRATION_MIGRATE, .sources = (char *[]) { (char *) SRC, NULL },
                .targets = (char *[]) { (char *) TGT, NULL }, .stream_fd = -1,
        };
        int k;

        migration_options_init(&req.options);
        req.options.allow_unknown = allow_unknown;
        k = migration_prepare(&r->env, &req, ":1.42", ret, ret_error);
        if (k >= 0)
                migration_launch(*ret, 1, &owner, r);
        return k;
}

static void run_until_ended(Rig *r) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 30 * USEC_PER_SEC;

        while (!r->ended && now_usec(CLOCK_MONOTONIC) < deadline)
                g_assert_cmpint(sd_event_run(r->event, 100 * 1000), >=, 0);
        g_assert_true(r->ended);
}

static SimDevice *sim(Rig *r, const char *name) {
        return testbed_get_sim(r->backend, name);
}

/* The driver answers once the job has started: before, not one write. */
static void check_asked_after_start(bool busy, int answer, MigrationPhase phase, const char *error_name,
                                    const char *message) {
        g_auto(MigrationSnapshot) s = {};
        g_autofree char *why = NULL, *before = NULL, *target_before = NULL, *after = NULL;
        Migration *j = NULL;
        Rig r;

        rig_init(&r);
        before = sim_device_digest(sim(&r, SRC));
        target_before = sim_device_digest(sim(&r, TGT));
        r.busy = busy;
        r.answer = answer;
        g_assert_cmpint(start(&r, true, &j, &why), ==, 0);
        /* here the bus sends the reply: the driver has not been asked */
        g_assert_cmpuint(r.writes, ==, 1);
        g_assert_true(registry_get_device(r.registry, SRC)->busy);

        run_until_ended(&r);
        /* asked once, after, from the main loop */
        g_assert_cmpuint(r.writes, ==, 2);
        g_assert_false(r.off_main_thread);
        migration_snapshot(j, &s);
        g_assert_cmpint(s.phase, ==, phase);
        g_assert_false(registry_get_device(r.registry, SRC)->busy);
        g_assert_false(registry_get_device(r.registry, TGT)->busy);
        if (phase == MIGRATION_DONE) {
                g_assert_null(s.error);
                after = sim_device_digest(sim(&r, TGT));
                g_assert_cmpstr(after, ==, before);
                g_assert_cmpuint(sim_device_state(sim(&r, TGT)), ==, VFIO_STATE_RUNNING);
        } else {
                g_assert_cmpstr(bus_error_name_for_errno(s.error_class), ==, error_name);
                g_assert_nonnull(strstr(s.error, SRC " cannot go into " TGT ": "));
                g_assert_nonnull(strstr(s.error, message));
                /* the source runs on with its state; the target was never touched */
                g_assert_cmpuint(sim_device_state(sim(&r, SRC)), ==, VFIO_STATE_RUNNING);
                after = sim_device_digest(sim(&r, SRC));
                g_assert_cmpstr(after, ==, before);
                g_free(after);
                after = sim_device_digest(sim(&r, TGT));
                g_assert_cmpstr(after, ==, target_before);
                g_assert_cmpstr(s.devices[0].outcome, ==, "running");
                g_assert_cmpstr(s.devices[1].outcome, ==, "untouched");
        }
        migration_free(j);
        rig_clear(&r);
}

static void test_asked_after_start(void) {
        /* the driver is free now and takes the state */
        check_asked_after_start(false, 0, MIGRATION_DONE, NULL, NULL);
        /* it refuses it */
        check_asked_after_start(false, -EPROTO, MIGRATION_FAILED, VFIOMIG_ERROR_INCOMPATIBLE,
                                "the target's driver refuses version 2");
        /* still busy: unknown, which allow-unknown lets through */
        check_asked_after_start(true, 0, MIGRATION_DONE, NULL, NULL);
}

/* Without allow-unknown the kept verdict refuses at once, unasked. */
static void test_refused_unasked(void) {
        g_autofree char *why = NULL;
        Migration *j = NULL;
        Rig r;

        rig_init(&r);
        r.busy = false;
        g_assert_cmpint(start(&r, false, &j, &why), ==, -ENOANO);
        g_assert_null(j);
        g_assert_nonnull(strstr(why, SRC " cannot go into " TGT ": the target's driver was busy"));
        g_assert_nonnull(strstr(why, "(option allow-unknown)"));
        g_assert_cmpuint(r.writes, ==, 1);
        g_assert_false(registry_get_device(r.registry, SRC)->busy);
        rig_clear(&r);
}

int main(int argc, char **argv) {
        unit_test_init(argc, argv);
        g_test_add_func("/migration/busy-driver/asked-after-start", test_asked_after_start);
        g_test_add_func("/migration/busy-driver/refused-unasked", test_refused_unasked);
        return g_test_run();
}
