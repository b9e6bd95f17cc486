/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>

#include "backend/flag-cache.h"
#include "vfio-uapi.h"

#define SC VFIO_MIGRATION_STOP_COPY
#define P2P VFIO_MIGRATION_P2P
#define PRE VFIO_MIGRATION_PRE_COPY

#define VF1 "0000:3b:00.1"
#define VF2 "0000:3b:00.2"
#define VF3 "0000:3b:00.3"
#define U1 "00000000-0000-4000-8000-000000000001"
#define U2 "00000000-0000-4000-8000-000000000002"

static Device *pci(const char *name, const char *driver, const char *subdevice) {
        Device *d = device_new(name, DEVICE_KIND_PCI);

#define SET(f, v) device_set_string(&d->f, v);
        SET(driver, driver);
        SET(vendor_id, "0x15b3");
        SET(device_id, "0x101e");
        SET(subsystem_vendor_id, "0x15b3");
        SET(subsystem_device_id, subdevice);
        SET(parent, "0000:3b:00.0");    /* the PF is no part of the key */
#undef SET
        return d;
}

static Device *mdev(const char *name, const char *parent, const char *type) {
        Device *d = device_new(name, DEVICE_KIND_MDEV);

        device_set_string(&d->driver, "mtty");
        device_set_string(&d->parent, parent);
        device_set_string(&d->mdev_type, type);
        return d;
}

static void assert_strv(char **got, const char *const *want) {
        g_assert_nonnull(got);
        g_assert_cmpuint(g_strv_length(got), ==, g_strv_length((char **) want));
        for (guint i = 0; want[i]; i++)
                g_assert_cmpstr(got[i], ==, want[i]);
}

static void test_keys(void) {
        g_autoptr(Device) a = pci(VF1, "mlx5_vfio_pci", "0x0051");
        g_autoptr(Device) m = mdev(U1, "mtty", "mtty-2");
        g_autofree char *ka = flag_cache_key(a), *km = flag_cache_key(m);

        g_assert_cmpstr(ka, ==, "pci/mlx5_vfio_pci/0x15b3/0x101e/0x15b3/0x0051");
        g_assert_cmpstr(km, ==, "mdev/mtty/mtty/mtty-2");
}

/* One learns, its siblings show it, and one added later gets it at once. */
static void test_siblings(void) {
        g_autoptr(FlagCache) c = flag_cache_new();
        g_autoptr(Device) a = pci(VF1, "mlx5_vfio_pci", "0x0051"), b = pci(VF2, "mlx5_vfio_pci", "0x0051");
        g_autoptr(Device) other = pci(VF3, "mlx5_vfio_pci", "0x0052");
        g_autoptr(Device) late = pci("0000:3b:00.4", "mlx5_vfio_pci", "0x0051");
        g_autofree char *key = flag_cache_key(a), *other_key = flag_cache_key(other);
        g_auto(GStrv) members = NULL;
        uint32_t flags = 1234;

        flag_cache_add(c, a);
        flag_cache_add(c, b);
        flag_cache_add(c, other);
        g_assert_cmpuint(flag_cache_size(c), ==, 2);
        g_assert_cmpint(a->migration_support, ==, MIGRATION_SUPPORT_UNKNOWN);
        g_assert_cmpint(flag_cache_lookup(c, key, &flags), ==, MIGRATION_SUPPORT_UNKNOWN);
        g_assert_cmpuint(flags, ==, 0);

        members = flag_cache_learn(c, VF2, MIGRATION_SUPPORT_SUPPORTED, SC | P2P | PRE);
        assert_strv(members, (const char *[]) { VF1, VF2, NULL });
        g_assert_cmpint(flag_cache_lookup(c, key, &flags), ==, MIGRATION_SUPPORT_SUPPORTED);
        g_assert_cmpuint(flags, ==, SC | P2P | PRE);
        g_assert_cmpint(flag_cache_lookup(c, other_key, NULL), ==, MIGRATION_SUPPORT_UNKNOWN);

        flag_cache_add(c, late);
        g_assert_cmpint(late->migration_support, ==, MIGRATION_SUPPORT_SUPPORTED);
        g_assert_cmpuint(late->migration_flags, ==, SC | P2P | PRE);

        /* a non-member learns nothing for anyone */
        g_assert_null(flag_cache_learn(c, "0000:99:00.0", MIGRATION_SUPPORT_NONE, 0));
        g_assert_cmpint(flag_cache_lookup(c, key, NULL), ==, MIGRATION_SUPPORT_SUPPORTED);
}

/* The entry goes with its last member: a driver bound again is asked
 * again. */
static void test_forget_when_the_last_leaves(void) {
        g_autoptr(FlagCache) c = flag_cache_new();
        g_autoptr(Device) a = mdev(U1, "mtty", "mtty-1"), b = mdev(U2, "mtty", "mtty-1");
        g_autoptr(Device) back = NULL;
        g_autofree char *key = flag_cache_key(a);
        g_auto(GStrv) members = NULL;

        flag_cache_add(c, a);
        flag_cache_add(c, b);
        members = flag_cache_learn(c, U1, MIGRATION_SUPPORT_NONE, P2P);
        assert_strv(members, (const char *[]) { U1, U2, NULL });
        g_assert_cmpint(flag_cache_lookup(c, key, NULL), ==, MIGRATION_SUPPORT_NONE);

        g_assert_true(flag_cache_remove(c, U1));
        g_assert_false(flag_cache_remove(c, U1));
        g_assert_cmpint(flag_cache_lookup(c, key, NULL), ==, MIGRATION_SUPPORT_NONE);  /* U2 still there */
        g_assert_true(flag_cache_remove(c, U2));
        g_assert_cmpuint(flag_cache_size(c), ==, 0);
        g_assert_cmpint(flag_cache_lookup(c, key, NULL), ==, MIGRATION_SUPPORT_UNKNOWN);

        back = mdev(U1, "mtty", "mtty-1");
        flag_cache_add(c, back);
        g_assert_cmpint(back->migration_support, ==, MIGRATION_SUPPORT_UNKNOWN);
}

/* Flags count only when supported; a device whose support is given keeps
 * it; one that joins again under another key leaves the old entry. */
static void test_edges(void) {
        g_autoptr(FlagCache) c = flag_cache_new();
        g_autoptr(Device) a = pci(VF1, "vfio-pci", "0x0051"), given = pci(VF2, "vfio-pci", "0x0051");
        g_autoptr(Device) rebound = pci(VF1, "mlx5_vfio_pci", "0x0051");
        g_autofree char *key = flag_cache_key(a), *new_key = flag_cache_key(rebound);
        g_auto(GStrv) m1 = NULL, m2 = NULL;
        uint32_t flags;

        flag_cache_add(c, a);
        m1 = flag_cache_learn(c, VF1, MIGRATION_SUPPORT_NONE, P2P);
        g_assert_cmpint(flag_cache_lookup(c, key, &flags), ==, MIGRATION_SUPPORT_NONE);
        g_assert_cmpuint(flags, ==, 0);

        given->migration_support = MIGRATION_SUPPORT_SUPPORTED;
        given->migration_flags = SC;
        flag_cache_add(c, given);
        g_assert_cmpint(given->migration_support, ==, MIGRATION_SUPPORT_SUPPORTED);
        g_assert_cmpuint(given->migration_flags, ==, SC);

        /* the same name again, under the same key: still one member */
        flag_cache_add(c, a);
        m2 = flag_cache_learn(c, VF1, MIGRATION_SUPPORT_NONE, 0);
        assert_strv(m2, (const char *[]) { VF1, VF2, NULL });

        /* VF1 bound to another driver: its own entry, unknown */
        g_assert_true(flag_cache_remove(c, VF2));
        flag_cache_add(c, rebound);
        g_assert_cmpint(rebound->migration_support, ==, MIGRATION_SUPPORT_UNKNOWN);
        g_assert_cmpint(flag_cache_lookup(c, key, NULL), ==, MIGRATION_SUPPORT_UNKNOWN);     /* forgotten */
        g_assert_cmpuint(flag_cache_size(c), ==, 1);
        g_strfreev(m1);
        m1 = flag_cache_learn(c, VF1, MIGRATION_SUPPORT_SUPPORTED, SC);
        assert_strv(m1, (const char *[]) { VF1, NULL });
        g_assert_cmpint(flag_cache_lookup(c, new_key, NULL), ==, MIGRATION_SUPPORT_SUPPORTED);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/flag-cache/keys", test_keys);
        g_test_add_func("/flag-cache/siblings", test_siblings);
        g_test_add_func("/flag-cache/forget-when-the-last-leaves", test_forget_when_the_last_leaves);
        g_test_add_func("/flag-cache/edges", test_edges);
        return g_test_run();
}
