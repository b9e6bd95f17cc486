/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "conffile.h"
#include "backend/testbed.h"
#include "util.h"
#include "vfio-uapi.h"

static Backend *load(const char *text, Registry *r, GError **error) {
        g_autoptr(ConfFile) c = conf_file_parse(text, "t.conf", error);

        return c ? testbed_new(c, r, NULL, error) : NULL;
}

static void test_default(void) {
        g_autoptr(Registry) r = registry_new();
        g_autoptr(GError) error = NULL;
        g_autoptr(Backend) s = load(testbed_default_conf, r, &error);
        g_autoptr(GPtrArray) types = NULL, devices = NULL;
        unsigned pci = 0;

        g_assert_no_error(error);
        g_assert_nonnull(s);
        g_assert_cmpstr(backend_name(s), ==, "testbed");
        g_assert_true(backend_is_testbed(s));
        types = registry_list_types(r);
        devices = registry_list_devices(r);
        g_assert_cmpuint(types->len, >=, 4);
        g_assert_cmpuint(devices->len, >=, 6);
        for (guint i = 0; i < devices->len; i++)
                pci += ((Device *) devices->pdata[i])->kind == DEVICE_KIND_PCI;
        g_assert_cmpuint(pci, >=, 2);
        g_assert_nonnull(registry_get_parent(r, "mtty"));
        g_assert_nonnull(registry_get_parent(r, "0000:65:00.0"));
        /* MaxInstances minus the instances the file declares */
        g_assert_cmpuint(registry_find_type(r, "mtty", "mtty-2")->available_instances, ==, 12 - 2);
        g_assert_cmpuint(registry_find_type(r, "mtty", "mtty-1")->available_instances, ==, 24 - 1);
}

static const char small[] =
        "# a comment\n"
        "[Parent p0]\n"
        "Driver=mtty\n"
        "\n"
        "[Type p0/t-1]\n"
        "MaxInstances=2\n"
        "MigrationFlags=stop-copy;p2p\n"
        "StateSize=4K\n"
        "\n"
        "[Device 00000000-0000-0000-0000-00000000000A]\n"
        "Kind=mdev\n"
        "Parent=p0\n"
        "Type=t-1\n"
        "\n"
        "[Device 0000:01:00.1]\n"
        "Kind=pci\n"
        "Vendor=0x8086\n"
        "Device=4242\n"
        "IommuGroup=7\n";

static void test_small_and_ops(void) {
        g_autoptr(Registry) r = registry_new();
        g_autoptr(GError) error = NULL;
        g_autoptr(Backend) s = load(small, r, &error);
        const MdevType *t;
        const Device *d;

        g_assert_no_error(error);
        d = registry_get_device(r, "00000000-0000-0000-0000-00000000000a");     /* normalized */
        g_assert_nonnull(d);
        g_assert_cmpstr(d->driver, ==, "mtty");                                /* from the parent */
        g_assert_cmpuint(d->migration_flags, ==, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        g_assert_cmpstr(d->migration_state, ==, "running");
        d = registry_get_device(r, "0000:01:00.1");
        g_assert_cmpstr(d->vendor_id, ==, "0x8086");
        g_assert_cmpstr(d->device_id, ==, "0x1092");                           /* 4242 decimal */
        g_assert_cmpstr(d->driver, ==, "vfio-pci");
        g_assert_cmpstr(d->iommu_group, ==, "7");

        t = registry_find_type(r, "p0", "t-1");
        g_assert_cmpuint(t->available_instances, ==, 1);
        g_assert_cmpint(s->ops->create_mdev(s, t, "00000000-0000-0000-0000-00000000000a"), ==, -EEXIST);
        g_assert_cmpint(s->ops->create_mdev(s, t, "00000000-0000-0000-0000-00000000000b"), ==, 0);
        g_assert_cmpuint(t->available_instances, ==, 0);
        g_assert_cmpint(s->ops->create_mdev(s, t, "00000000-0000-0000-0000-00000000000c"), ==, -EUSERS);
        d = registry_get_device(r, "00000000-0000-0000-0000-00000000000b");
        g_assert_cmpuint(d->migration_flags, ==, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        g_assert_cmpint(s->ops->remove_mdev(s, d), ==, 0);
        g_assert_null(registry_get_device(r, "00000000-0000-0000-0000-00000000000b"));
        g_assert_cmpuint(t->available_instances, ==, 1);
        g_assert_cmpint(s->ops->remove_mdev(s, registry_get_device(r, "0000:01:00.1")), ==, -EINVAL);
}

/* Each malformed file must fail with a message naming the line. */
static const struct {
        const char *text;
        const char *message;
} bad[] = {
        { "[Parent p]\nDriver=x\nnonsense\n", "t.conf:3: expected [section]" },
        { "Driver=x\n", "t.conf:1: key outside" },
        { "[Parent p]\nDriver=x\n[Parent p]\n", "t.conf:3: duplicate section [Parent p] (first on line 1)" },
        { "[Parent p]\nDriver=x\nDriver=y\n", "t.conf:3: duplicate key Driver" },
        { "[Parent p\n", "t.conf:1: malformed section header" },
        { "[Parent p]\nDriver=x\n\n[Gadget g]\n", "t.conf:4: [Gadget g]: unknown section" },
        { "[Parent p]\nDrvier=x\n", "t.conf:2: [Parent p] Drvier: unknown key" },
        { "[Parent p]\n", "t.conf:1: [Parent p]: missing required key Driver" },
        { "[Type nope/t]\nMaxInstances=1\n", "t.conf:1: [Type nope/t]: no [Parent nope] section" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nMaxInstances=zero\n", "t.conf:4: [Type p/t] MaxInstances: 'zero'" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nMaxInstances=0\n", "t.conf:4: [Type p/t] MaxInstances" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nMigrationFlags=stop-copy,warp\n",
          "t.conf:4: [Type p/t] MigrationFlags: 'stop-copy,warp' is not a list" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nStateSize=12Q\n", "t.conf:4: [Type p/t] StateSize: '12Q' is not a size" },
        { "[Device 1234]\nKind=mdev\n", "t.conf:1: [Device 1234]: '1234' is neither an mdev UUID nor a PCI address" },
        { "[Device 0000:01:00.0]\nKind=mdev\n", "t.conf:1: [Device 0000:01:00.0]: an mdev must be named by a UUID" },
        { "[Device 0000:01:00.0]\nKind=gpu\n", "t.conf:2: [Device 0000:01:00.0] Kind: 'gpu' is not mdev, pci or vdpa" },
        { "[Device 0000:01:00.0]\nDriver=x\n", "t.conf:1: [Device 0000:01:00.0]: missing required key Kind" },
        { "[Parent p]\nDriver=x\n[Device 00000000-0000-0000-0000-000000000001]\nKind=mdev\nParent=p\nType=t\n",
          "t.conf:6: [Device 00000000-0000-0000-0000-000000000001] Type: no [Type p/t] section" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nMaxInstances=1\n"
          "[Device 00000000-0000-0000-0000-000000000001]\nKind=mdev\nParent=p\nType=t\n"
          "[Device 00000000-0000-0000-0000-000000000002]\nKind=mdev\nParent=p\nType=t\n",
          "more instances of p/t than its MaxInstances=1" },
        { "[Device 0000:01:00.0]\nKind=pci\nVendor=0x10000\n", "t.conf:3: [Device 0000:01:00.0] Vendor" },
        { "[Parent p]\nDriver=\xff\n", "t.conf: not valid UTF-8" },
        /* the simulation's bounds, named */
        { "[Parent p]\nDriver=x\n[Type p/t]\nStateSize=65G\n",
          "t.conf:4: [Type p/t] StateSize: 69793218560 exceeds the maximum of 64G" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nDirtyRate=16777215T\n",
          "t.conf:4: [Type p/t] DirtyRate: 18446742974197923840 exceeds the maximum of 64G" },
        { "[Device 0000:01:00.0]\nKind=pci\nStateSize=1T\n",
          "t.conf:3: [Device 0000:01:00.0] StateSize: 1099511627776 exceeds the maximum of 64G" },
        { "[Device 0000:01:00.0]\nKind=pci\nFlagsKnown=maybe\n",
          "t.conf:3: [Device 0000:01:00.0] FlagsKnown: 'maybe' is not yes or no" },
        { "[Device 0000:01:00.0]\nKind=pci\nFault=transition delay=3600000\n",
          "delay='3600000': expected a number from 0 to 60000 (milliseconds)" },
};

static void test_malformed(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(Registry) r = registry_new();
                g_autoptr(GError) error = NULL;
                g_autoptr(Backend) s = load(bad[i].text, r, &error);

                if (g_test_verbose())
                        g_printerr("case %zu: %s\n", i, error ? error->message : "(no error)");
                g_assert_null(s);
                g_assert_nonnull(error);
                if (!strstr(error->message, bad[i].message))
                        g_error("case %zu: '%s' does not contain '%s'", i, error->message, bad[i].message);
                /* nothing half-loaded */
                g_assert_cmpuint(registry_device_count(r), ==, 0);
        }
}

static SimDevice *small_sim(void) {
        return sim_device_new("0000:01:00.0", &(SimConfig) {
                .flags = VFIO_MIGRATION_STOP_COPY, .state_size = 64 * 1024, .tag = "t",
        }, NULL);
}

/* SetDirtyRate(2^64-1) once made the next look at the device count 2^52
 * dirty pages under its lock, with the main loop waiting for it. */
static void test_dirty_rate_bounds(void) {
        SimDevice *d = small_sim();
        g_autofree char *before = NULL, *after = NULL;
        uint64_t t0;

        g_assert_cmpint(sim_device_set_dirty_rate(d, UINT64_MAX), ==, -ERANGE);
        g_assert_cmpint(sim_device_set_dirty_rate(d, SIM_DIRTY_RATE_MAX + 1), ==, -ERANGE);
        g_assert_cmpint(sim_device_set_dirty_rate(d, SIM_DIRTY_RATE_MAX), ==, 0);
        before = sim_device_digest(d);
        g_usleep(50 * 1000);
        /* at the highest rate, a look costs one pass over the pages */
        t0 = now_usec(CLOCK_MONOTONIC);
        after = sim_device_digest(d);
        g_assert_cmpuint(now_usec(CLOCK_MONOTONIC) - t0, <, USEC_PER_SEC / 2);
        g_assert_cmpstr(before, !=, after);        /* it does run */
        g_assert_cmpint(sim_device_set_dirty_rate(d, 0), ==, 0);
        sim_device_free(d);
}

static void test_fault_bounds(void) {
        static const struct {
                const char *spec, *message;
        } cases[] = {
                { "transition delay=60001", "'transition delay=60001' is not a fault: delay='60001': expected a "
                                            "number from 0 to 60000 (milliseconds)" },
                { "transition count=4294967296", "count='4294967296': expected a number from 0 to 4294967295" },
                { "short-io chunk=0", "chunk='0': expected a number from 1 to" },
                { "stall after=-1", "after='-1': expected a number from 0 to 18446744073709551615 (bytes)" },
                { "transition errno=EWHAT", "errno='EWHAT': expected an errno name" },
                { "transition to=nowhere", "to='nowhere': expected a migration state" },
                { "transition speed=3", "unknown key 'speed'" },
        };
        g_autofree char *nines = g_strnfill(65536, '9');
        g_autofree char *huge = g_strconcat("stall after=", nines, NULL);
        g_autofree char *why = NULL;
        SimFault f;

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *msg = NULL;

                g_assert_cmpint(sim_fault_parse(cases[i].spec, &f, &msg), ==, -EINVAL);
                if (!strstr(msg, cases[i].message))
                        g_error("'%s': '%s' does not contain '%s'", cases[i].spec, msg, cases[i].message);
        }
        g_assert_cmpint(sim_fault_parse("transition delay=60000 errno=0", &f, NULL), ==, 0);
        g_assert_cmpuint(f.delay_ms, ==, 60000);
        /* a 64 KiB spec is quoted, not echoed */
        g_assert_cmpint(sim_fault_parse(huge, &f, &why), ==, -EINVAL);
        g_assert_cmpuint(strlen(why), <, 400);
        g_assert_nonnull(strstr(why, "(65548 bytes)"));
}

typedef struct Transition {
        DeviceHandle *h;
        uint32_t to;
        int r;
} Transition;

static gpointer set_state_thread(gpointer userdata) {
        Transition *t = userdata;
        int fd;

        t->r = t->h->ops->set_state(t->h, t->to, &fd);
        if (fd >= 0)
                close(fd);
        return NULL;
}

/* A slow driver (delay=) holds up the job that asked, not everyone who
 * looks at the device: GetDeviceState() waited out the delay once. */
static void test_delay_without_lock(void) {
        SimDevice *d = small_sim();
        SimFault f;
        DeviceHandle *h = NULL;
        g_autofree char *digest = NULL;
        Transition t = { .to = VFIO_STATE_STOP };
        GThread *thread;
        uint64_t start, t0, looked;

        g_assert_cmpint(sim_fault_parse("transition from=running to=stop delay=2000 errno=0", &f, NULL), ==, 0);
        sim_device_add_fault(d, &f);
        g_assert_cmpint(sim_device_open(d, &h, NULL), ==, 0);
        t.h = h;
        start = now_usec(CLOCK_MONOTONIC);
        thread = g_thread_new("transition", set_state_thread, &t);
        g_usleep(300 * 1000);                   /* well inside the delay */

        t0 = now_usec(CLOCK_MONOTONIC);
        g_assert_cmpuint(sim_device_state(d), ==, VFIO_STATE_RUNNING);
        digest = sim_device_digest(d);
        g_assert_cmpint(sim_device_set_dirty_rate(d, 0), ==, 0);
        g_array_unref(sim_device_history(d));
        looked = now_usec(CLOCK_MONOTONIC) - t0;
        g_assert_cmpuint(looked, <, USEC_PER_SEC);

        g_thread_join(thread);
        g_assert_cmpint(t.r, ==, 0);
        g_assert_cmpuint(now_usec(CLOCK_MONOTONIC) - start, >=, 2000 * 1000);  /* the delay happened */
        g_assert_cmpuint(sim_device_state(d), ==, VFIO_STATE_STOP);
        device_handle_close(h);
        sim_device_free(d);
}

/* A request the kernel walks in several steps: each step is where the
 * device is, for whoever looks (a daemon restarted mid-request) and for
 * the error of a step that fails. */
static void test_multi_step_request(void) {
        g_autofree char *dir = g_dir_make_tmp("test-testbed-XXXXXX", NULL);
        SimConfig c = { .flags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P, .state_size = 4096, .tag = "t" };
        SimDevice *d = sim_device_new("dev", &c, dir), *seen;
        Transition t = { .to = VFIO_STATE_STOP };
        DeviceHandle *h = NULL;
        GThread *thread;
        GArray *arcs;
        SimFault f;
        int fd = -1;

        g_assert_cmpint(sim_fault_parse("transition from=running-p2p to=stop delay=1000 errno=0", &f, NULL), ==, 0);
        sim_device_add_fault(d, &f);
        g_assert_cmpint(sim_device_open(d, &h, NULL), ==, 0);
        t.h = h;
        thread = g_thread_new("transition", set_state_thread, &t);
        g_usleep(300 * 1000);                   /* inside the last step's delay */
        seen = sim_device_new("dev", &c, dir);  /* what a restarted daemon would find */
        sim_device_restore(seen);
        g_assert_cmpuint(sim_device_state(seen), ==, VFIO_STATE_RUNNING_P2P);
        sim_device_free(seen);
        g_thread_join(thread);
        g_assert_cmpint(t.r, ==, 0);
        g_assert_cmpuint(sim_device_state(d), ==, VFIO_STATE_STOP);
        arcs = sim_device_history(d);          /* running -> running-p2p -> stop */
        g_assert_cmpuint(arcs->len, ==, 2);
        g_array_unref(arcs);

        /* a step that fails leaves the device on the path */
        g_assert_cmpint(sim_fault_parse("transition from=stop to=running-p2p errno=EIO", &f, NULL), ==, 0);
        sim_device_add_fault(d, &f);
        g_assert_cmpint(h->ops->set_state(h, VFIO_STATE_RUNNING, &fd), ==, -EIO);
        g_assert_cmpint(fd, ==, -1);
        g_assert_cmpuint(sim_device_state(d), ==, VFIO_STATE_STOP);
        seen = sim_device_new("dev", &c, dir);
        sim_device_restore(seen);
        g_assert_cmpuint(sim_device_state(seen), ==, VFIO_STATE_STOP);
        sim_device_free(seen);
        device_handle_close(h);
        sim_device_forget(d);
        sim_device_free(d);
        g_assert_cmpint(rmdir(dir), ==, 0);
}

#define M1 "00000000-0000-0000-0000-000000000001"
#define M2 "00000000-0000-0000-0000-000000000002"
#define M3 "00000000-0000-0000-0000-000000000003"

static const char support_conf[] =
        "[Parent p0]\nDriver=mtty\n"
        "[Type p0/t-1]\nMaxInstances=4\nMigrationFlags=stop-copy,p2p\n"
        "[Device " M1 "]\nKind=mdev\nParent=p0\nType=t-1\nFlagsKnown=no\n"
        "[Device " M2 "]\nKind=mdev\nParent=p0\nType=t-1\nFlagsKnown=No\n"
        "[Device " M3 "]\nKind=mdev\nParent=p0\nType=t-1\n"
        "[Device 0000:01:00.0]\nKind=pci\nMigrationFlags=p2p\n"
        "[Device 0000:01:00.1]\nKind=pci\nMigrationFlags=stop-copy\nFlagsKnown=false\n"
        "[Device 0000:01:00.2]\nKind=pci\nFlagsKnown=off\n";

static MigrationSupport learn(Backend *s, const char *name, uint32_t *ret_flags) {
        g_autoptr(DeviceHandle) h = NULL;
        MigrationSupport support = _MIGRATION_SUPPORT_MAX;

        g_assert_cmpint(backend_open_device(s, registry_get_device(s->registry, name), &h, NULL), ==, 0);
        g_assert_cmpint(backend_learn_migration(s, name, h, &support, ret_flags), ==, 0);
        return support;
}

/* The entry a uevent would make anew: support unknown. */
static Device *fresh(Registry *r, const char *name) {
        Device *d = device_copy(registry_get_device(r, name));

        d->migration_support = MIGRATION_SUPPORT_UNKNOWN;
        d->migration_flags = 0;
        return d;
}

static void assert_support(Registry *r, const char *name, MigrationSupport support, uint32_t flags) {
        const Device *d = registry_get_device(r, name);

        g_assert_nonnull(d);
        if (d->migration_support != support || d->migration_flags != flags)
                g_error("%s: %s 0x%x, expected %s 0x%x", name, migration_support_to_string(d->migration_support),
                        d->migration_flags, migration_support_to_string(support), flags);
}

/* Flags from the file are known from the start, and no STOP_COPY is no
 * migration; FlagsKnown=no plays the kernel: unknown until an open, which
 * teaches the devices of the same type (or driver and IDs) too. */
static void test_migration_support(void) {
        g_autoptr(Registry) r = registry_new();
        g_autoptr(GError) error = NULL;
        g_autoptr(Backend) s = load(support_conf, r, &error);
        uint32_t flags = 0;

        g_assert_no_error(error);
        assert_support(r, M3, MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        assert_support(r, "0000:01:00.0", MIGRATION_SUPPORT_NONE, 0);
        assert_support(r, M1, MIGRATION_SUPPORT_UNKNOWN, 0);
        assert_support(r, M2, MIGRATION_SUPPORT_UNKNOWN, 0);
        assert_support(r, "0000:01:00.1", MIGRATION_SUPPORT_UNKNOWN, 0);
        assert_support(r, "0000:01:00.2", MIGRATION_SUPPORT_UNKNOWN, 0);

        g_assert_cmpint(learn(s, M1, &flags), ==, MIGRATION_SUPPORT_SUPPORTED);
        g_assert_cmpuint(flags, ==, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        assert_support(r, M1, MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        assert_support(r, M2, MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        /* the PCI functions share their driver and IDs, and 01:00.1 teaches 01:00.2 */
        g_assert_cmpint(learn(s, "0000:01:00.1", NULL), ==, MIGRATION_SUPPORT_SUPPORTED);
        assert_support(r, "0000:01:00.2", MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY);
        /* a device known from the file is no member: it learns for itself alone */
        g_assert_cmpint(learn(s, "0000:01:00.0", &flags), ==, MIGRATION_SUPPORT_NONE);
        assert_support(r, "0000:01:00.0", MIGRATION_SUPPORT_NONE, 0);
        assert_support(r, "0000:01:00.2", MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY);
        g_assert_cmpuint(flag_cache_size(s->flag_cache), ==, 2);

        /* a driver bound again: while a sibling remains, what it knows holds */
        backend_rebind_device(s, fresh(r, M1));
        assert_support(r, M1, MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        backend_rebind_device(s, fresh(r, "0000:01:00.2"));
        backend_rebind_device(s, fresh(r, "0000:01:00.1"));
        assert_support(r, "0000:01:00.1", MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY);
        assert_support(r, "0000:01:00.2", MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY);
        /* ... the last one alone asks again */
        g_assert_cmpint(learn(s, "0000:01:00.1", NULL), ==, MIGRATION_SUPPORT_SUPPORTED);
        g_assert_true(backend_remove_device(s, "0000:01:00.2"));
        backend_rebind_device(s, fresh(r, "0000:01:00.1"));
        assert_support(r, "0000:01:00.1", MIGRATION_SUPPORT_UNKNOWN, 0);

        /* the last of a type gone, its entry goes; a new instance of it is
         * known from the file */
        g_assert_cmpint(s->ops->remove_mdev(s, registry_get_device(r, M1)), ==, 0);
        g_assert_cmpuint(flag_cache_size(s->flag_cache), ==, 2);
        g_assert_cmpint(s->ops->remove_mdev(s, registry_get_device(r, M2)), ==, 0);
        g_assert_cmpuint(flag_cache_size(s->flag_cache), ==, 1);
        g_assert_cmpint(s->ops->create_mdev(s, registry_find_type(r, "p0", "t-1"), M1), ==, 0);
        assert_support(r, M1, MIGRATION_SUPPORT_SUPPORTED, VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P);
        g_assert_cmpuint(flag_cache_size(s->flag_cache), ==, 1);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/testbed/default", test_default);
        g_test_add_func("/testbed/small-and-ops", test_small_and_ops);
        g_test_add_func("/testbed/malformed", test_malformed);
        g_test_add_func("/testbed/dirty-rate-bounds", test_dirty_rate_bounds);
        g_test_add_func("/testbed/fault-bounds", test_fault_bounds);
        g_test_add_func("/testbed/delay-without-lock", test_delay_without_lock);
        g_test_add_func("/testbed/multi-step-request", test_multi_step_request);
        g_test_add_func("/testbed/migration-support", test_migration_support);
        return g_test_run();
}
