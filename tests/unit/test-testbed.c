/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include <glib.h>

#include "conffile.h"
#include "testbed.h"
#include "vfio-uapi.h"

static Source *load(const char *text, Registry *r, GError **error) {
        g_autoptr(ConfFile) c = conf_file_parse(text, "t.conf", error);

        return c ? testbed_new(c, r, NULL, error) : NULL;
}

static void test_default(void) {
        g_autoptr(Registry) r = registry_new();
        g_autoptr(GError) error = NULL;
        g_autoptr(Source) s = load(testbed_default_conf, r, &error);
        g_autoptr(GPtrArray) types = NULL, devices = NULL;
        unsigned pci = 0;

        g_assert_no_error(error);
        g_assert_nonnull(s);
        g_assert_cmpstr(s->ops->backend, ==, "testbed");
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
        g_autoptr(Source) s = load(small, r, &error);
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
        { "[Device 0000:01:00.0]\nKind=gpu\n", "t.conf:2: [Device 0000:01:00.0] Kind: 'gpu' is not mdev or pci" },
        { "[Device 0000:01:00.0]\nDriver=x\n", "t.conf:1: [Device 0000:01:00.0]: missing required key Kind" },
        { "[Parent p]\nDriver=x\n[Device 00000000-0000-0000-0000-000000000001]\nKind=mdev\nParent=p\nType=t\n",
          "t.conf:6: [Device 00000000-0000-0000-0000-000000000001] Type: no [Type p/t] section" },
        { "[Parent p]\nDriver=x\n[Type p/t]\nMaxInstances=1\n"
          "[Device 00000000-0000-0000-0000-000000000001]\nKind=mdev\nParent=p\nType=t\n"
          "[Device 00000000-0000-0000-0000-000000000002]\nKind=mdev\nParent=p\nType=t\n",
          "more instances of p/t than its MaxInstances=1" },
        { "[Device 0000:01:00.0]\nKind=pci\nVendor=0x10000\n", "t.conf:3: [Device 0000:01:00.0] Vendor" },
        { "[Parent p]\nDriver=\xff\n", "t.conf: not valid UTF-8" },
};

static void test_malformed(void) {
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(Registry) r = registry_new();
                g_autoptr(GError) error = NULL;
                g_autoptr(Source) s = load(bad[i].text, r, &error);

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

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/testbed/default", test_default);
        g_test_add_func("/testbed/small-and-ops", test_small_and_ops);
        g_test_add_func("/testbed/malformed", test_malformed);
        return g_test_run();
}
