/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>

#include "registry.h"

typedef struct Events {
        GPtrArray *log;         /* "added:NAME", ... */
} Events;

static void record(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        static const char *const names[] = {
                [REGISTRY_DEVICE_ADDED] = "device-added", [REGISTRY_DEVICE_REMOVED] = "device-removed",
                [REGISTRY_DEVICE_CHANGED] = "device-changed", [REGISTRY_TYPE_ADDED] = "type-added",
                [REGISTRY_TYPE_REMOVED] = "type-removed", [REGISTRY_TYPE_CHANGED] = "type-changed",
                [REGISTRY_DEVICE_IDENTITY_CHANGED] = "device-identity",
                [REGISTRY_TYPE_IDENTITY_CHANGED] = "type-identity",
        };
        Events *e = userdata;
        /* Device and MdevType both begin with their key */
        const char *key = *(char *const *) object;

        g_ptr_array_add(e->log, g_strdup_printf("%s:%s", names[event], key));
}

static Device *mdev(const char *uuid, const char *parent, const char *type) {
        Device *d = device_new(uuid, DEVICE_KIND_MDEV);

        device_set_string(&d->parent, parent);
        device_set_string(&d->mdev_type, type);
        return d;
}

static void assert_log(Events *e, const char *const *expected) {
        g_assert_cmpuint(e->log->len, ==, g_strv_length((char **) expected));
        for (guint i = 0; i < e->log->len; i++)
                g_assert_cmpstr(e->log->pdata[i], ==, expected[i]);
        g_ptr_array_set_size(e->log, 0);
}

#define U1 "00000000-0000-0000-0000-000000000001"
#define U2 "00000000-0000-0000-0000-000000000002"

static void test_devices(void) {
        g_autoptr(Registry) r = registry_new();
        Events e = { g_ptr_array_new_with_free_func(g_free) };
        g_autoptr(GPtrArray) list = NULL;
        Device *changed;

        registry_listen(r, record, &e);
        registry_add_device(r, mdev(U2, "mtty", "mtty-2"));
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        assert_log(&e, (const char *[]) { "device-added:" U2, "device-added:" U1, NULL });
        g_assert_cmpuint(registry_device_count(r), ==, 2);

        /* Re-adding an equal device is silent; a different one is a change. */
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        assert_log(&e, (const char *[]) { NULL });
        changed = mdev(U1, "mtty", "mtty-1");
        device_set_string(&changed->driver, "mtty");
        registry_add_device(r, changed);
        assert_log(&e, (const char *[]) { "device-changed:" U1, NULL });
        g_assert_cmpstr(registry_get_device(r, U1)->driver, ==, "mtty");

        list = registry_list_devices(r);
        g_assert_cmpuint(list->len, ==, 2);
        g_assert_cmpstr(((Device *) list->pdata[0])->name, ==, U1);     /* sorted */
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-2"), ==, 1);
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-3"), ==, 0);

        g_assert_true(registry_remove_device(r, U2));
        g_assert_false(registry_remove_device(r, U2));
        assert_log(&e, (const char *[]) { "device-removed:" U2, NULL });
        g_assert_null(registry_get_device(r, U2));
        g_assert_cmpuint(registry_device_count(r), ==, 1);
        g_ptr_array_unref(e.log);
}

static void test_types(void) {
        g_autoptr(Registry) r = registry_new();
        Events e = { g_ptr_array_new_with_free_func(g_free) };
        MdevType *t;

        registry_listen(r, record, &e);
        registry_add_parent(r, parent_new("mtty"));
        registry_add_parent(r, parent_new("other"));
        t = mdev_type_new("mtty", "mtty-1");
        t->available_instances = 24;
        registry_add_type(r, t);
        registry_add_type(r, mdev_type_new("mtty", "mtty-2"));
        registry_add_type(r, mdev_type_new("other", "mtty-1"));
        assert_log(&e, (const char *[]) { "type-added:mtty/mtty-1", "type-added:mtty/mtty-2",
                                          "type-added:other/mtty-1", NULL });

        g_assert_cmpuint(registry_find_type(r, "mtty", "mtty-1")->available_instances, ==, 24);
        registry_set_available(r, "mtty/mtty-1", 24);
        assert_log(&e, (const char *[]) { NULL });
        registry_set_available(r, "mtty/mtty-1", 23);
        assert_log(&e, (const char *[]) { "type-changed:mtty/mtty-1", NULL });
        g_assert_cmpuint(registry_get_type(r, "mtty/mtty-1")->available_instances, ==, 23);

        /* A parent takes its types along, and only its own. */
        registry_remove_parent(r, "mtty");
        assert_log(&e, (const char *[]) { "type-removed:mtty/mtty-1", "type-removed:mtty/mtty-2", NULL });
        g_assert_null(registry_get_parent(r, "mtty"));
        g_assert_nonnull(registry_find_type(r, "other", "mtty-1"));
        g_ptr_array_unref(e.log);
}

/* Every listener hears every change, after it is made, in the order they
 * subscribed; the identity a listener derives is news of its own kind, so
 * a deriving listener needs no guard against its own echo. */
static void record_twice(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        Events *e = userdata;
        const Device *d = object;

        /* the change is visible to whoever hears of it */
        if (event == REGISTRY_DEVICE_IDENTITY_CHANGED)
                g_assert_cmpstr(registry_get_device(r, d->name)->migration_type, ==, "mdev:mtty-1");
        g_ptr_array_add(e->log, g_strdup_printf("second:%s", d->name));
}

static void test_listeners(void) {
        g_autoptr(Registry) r = registry_new();
        Events e = { g_ptr_array_new_with_free_func(g_free) };

        registry_listen(r, record, &e);
        registry_listen(r, record_twice, &e);
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        assert_log(&e, (const char *[]) { "device-added:" U1, "second:" U1, NULL });

        g_assert_true(registry_set_identity(r, &NODE_OF_DEVICE(U1), "mdev:mtty-1", "", "type-match"));
        assert_log(&e, (const char *[]) { "device-identity:" U1, "second:" U1, NULL });
        g_assert_false(registry_set_identity(r, &NODE_OF_DEVICE(U1), "mdev:mtty-1", "", "type-match"));
        assert_log(&e, (const char *[]) { NULL });

        registry_unlisten(r, record, &e);
        registry_set_device_busy(r, U1, "migration 1");
        assert_log(&e, (const char *[]) { "second:" U1, NULL });
        g_assert_cmpstr(registry_get_device(r, U1)->holder, ==, "migration 1");
        g_ptr_array_unref(e.log);
}

/* Each type's instances, counted as devices come, change and go; a
 * listener already sees the count the change leaves. */
static unsigned heard_count;

static void count_mtty_1(Registry *r, RegistryEvent event, const void *object, void *userdata) {
        heard_count = registry_count_instances(r, "mtty", "mtty-1");
}

static void test_count_instances(void) {
        g_autoptr(Registry) r = registry_new();
        Device *moved, *pci = device_new("0000:3b:00.1", DEVICE_KIND_PCI);

        registry_listen(r, count_mtty_1, NULL);
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        g_assert_cmpuint(heard_count, ==, 1);
        registry_add_device(r, mdev(U2, "mtty", "mtty-1"));
        g_assert_cmpuint(heard_count, ==, 2);
        /* not an mdev: counts for no type, whatever its fields say */
        device_set_string(&pci->parent, "mtty");
        device_set_string(&pci->mdev_type, "mtty-1");
        registry_add_device(r, pci);
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-1"), ==, 2);
        /* the same entry again, or another parent's type of that id: no change */
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        registry_add_device(r, mdev("00000000-0000-0000-0000-000000000003", "other", "mtty-1"));
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-1"), ==, 2);
        g_assert_cmpuint(registry_count_instances(r, "other", "mtty-1"), ==, 1);

        /* an entry replaced by one of another type moves between counts */
        moved = mdev(U2, "mtty", "mtty-2");
        registry_add_device(r, moved);
        g_assert_cmpuint(heard_count, ==, 1);
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-2"), ==, 1);

        g_assert_true(registry_remove_device(r, U1));
        g_assert_cmpuint(heard_count, ==, 0);
        g_assert_false(registry_remove_device(r, U1));
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-1"), ==, 0);
        g_assert_true(registry_remove_device(r, U2));
        g_assert_cmpuint(registry_count_instances(r, "mtty", "mtty-2"), ==, 0);
        g_assert_true(registry_remove_device(r, "0000:3b:00.1"));
        g_assert_cmpuint(registry_count_instances(r, "other", "mtty-1"), ==, 1);
}

/* What GetDevice() found holding a domain's device is its QEMU; when the
 * domain stops, that must not keep the device Busy. */
static void test_domain_forgets_holder(void) {
        g_autoptr(Registry) r = registry_new();
        Events e = { g_ptr_array_new_with_free_func(g_free) };
        g_autofree char *holder = NULL;
        const Device *d;

        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        registry_listen(r, record, &e);
        registry_set_device_domain(r, U1, "vm1");
        registry_set_device_held_by(r, U1, "domain vm1 (qemu pid 7)");
        d = registry_get_device(r, U1);
        g_assert_true(device_is_held(d));
        holder = device_describe_holder(d);
        g_assert_cmpstr(holder, ==, "domain vm1 (qemu pid 7)");
        assert_log(&e, (const char *[]) { "device-changed:" U1, "device-changed:" U1, NULL });

        /* the same domain again (a refresh after an event) keeps it */
        registry_set_device_domain(r, U1, "vm1");
        assert_log(&e, (const char *[]) { NULL });
        g_assert_cmpstr(registry_get_device(r, U1)->held_by, ==, "domain vm1 (qemu pid 7)");

        /* the domain stops: one change, nothing holds the device */
        registry_set_device_domain(r, U1, NULL);
        assert_log(&e, (const char *[]) { "device-changed:" U1, NULL });
        d = registry_get_device(r, U1);
        g_assert_cmpstr(d->domain, ==, "");
        g_assert_cmpstr(d->held_by, ==, "");
        g_assert_false(device_is_held(d));
        g_ptr_array_unref(e.log);
}

/* What was learned of a device's migration support survives a uevent
 * that replaces the entry, unless the driver changed: a driver bound anew
 * is asked again. */
static void test_migration_support(void) {
        g_autoptr(Registry) r = registry_new();
        Events e = { g_ptr_array_new_with_free_func(g_free) };
        Device *again;
        const Device *d;

        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        registry_listen(r, record, &e);
        d = registry_get_device(r, U1);
        g_assert_cmpint(d->migration_support, ==, MIGRATION_SUPPORT_UNKNOWN);
        g_assert_cmpstr(migration_support_to_string(d->migration_support), ==, "unknown");

        registry_set_device_migration(r, U1, MIGRATION_SUPPORT_SUPPORTED, 0x3);
        registry_set_device_migration(r, U1, MIGRATION_SUPPORT_SUPPORTED, 0x3);
        assert_log(&e, (const char *[]) { "device-changed:" U1, NULL });
        g_assert_cmpuint(registry_get_device(r, U1)->migration_flags, ==, 0x3);

        /* a uevent's fresh entry (unknown) keeps it: nothing changed */
        registry_add_device(r, mdev(U1, "mtty", "mtty-1"));
        assert_log(&e, (const char *[]) { NULL });
        g_assert_cmpint(registry_get_device(r, U1)->migration_support, ==, MIGRATION_SUPPORT_SUPPORTED);

        /* another driver: unknown again */
        again = mdev(U1, "mtty", "mtty-1");
        device_set_string(&again->driver, "other");
        registry_add_device(r, again);
        assert_log(&e, (const char *[]) { "device-changed:" U1, NULL });
        d = registry_get_device(r, U1);
        g_assert_cmpint(d->migration_support, ==, MIGRATION_SUPPORT_UNKNOWN);
        g_assert_cmpuint(d->migration_flags, ==, 0);

        /* no migration: flags count only when supported */
        registry_set_device_migration(r, U1, MIGRATION_SUPPORT_NONE, 0x2);
        assert_log(&e, (const char *[]) { "device-changed:" U1, NULL });
        d = registry_get_device(r, U1);
        g_assert_cmpint(d->migration_support, ==, MIGRATION_SUPPORT_NONE);
        g_assert_cmpuint(d->migration_flags, ==, 0);
        g_assert_cmpstr(migration_support_to_string(d->migration_support), ==, "none");
        g_assert_cmpstr(migration_support_to_string(MIGRATION_SUPPORT_SUPPORTED), ==, "supported");
        g_assert_null(migration_support_to_string(_MIGRATION_SUPPORT_MAX));
        registry_set_device_migration(r, "nope", MIGRATION_SUPPORT_NONE, 0);
        assert_log(&e, (const char *[]) { NULL });
        g_ptr_array_unref(e.log);
}

static void assert_sorted(GPtrArray *list, guint n) {
        g_assert_cmpuint(list->len, ==, n);
        for (guint i = 1; i < list->len; i++)
                g_assert_cmpint(strcmp(((Device *) list->pdata[i - 1])->name, ((Device *) list->pdata[i])->name), <, 0);
}

/* The listing is kept between calls: sorted again after a device comes
 * or goes, the new entry in place of the old when one replaces another. */
static void test_listing(void) {
        g_autoptr(Registry) r = registry_new();
        g_autoptr(GPtrArray) first = NULL, second = NULL, third = NULL, fourth = NULL;
        const char *names[] = { "00000000-0000-0000-0000-000000000005", U2, "00000000-0000-0000-0000-000000000009",
                                U1, "00000000-0000-0000-0000-000000000007" };
        Device *d;

        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                registry_add_device(r, mdev(names[i], "mtty", "mtty-1"));
        first = registry_list_devices(r);
        assert_sorted(first, 5);
        g_assert_cmpstr(((Device *) first->pdata[0])->name, ==, U1);

        /* a replacement: same listing, the live entry where the old one was */
        d = mdev(U2, "mtty", "mtty-2");
        registry_add_device(r, d);
        second = registry_list_devices(r);
        g_assert_true(second == first);
        g_assert_true(second->pdata[1] == d);
        g_assert_true(registry_get_device(r, U2) == d);

        /* a new device: a new listing; the one a caller holds is left alone */
        registry_add_device(r, mdev("00000000-0000-0000-0000-000000000003", "mtty", "mtty-1"));
        third = registry_list_devices(r);
        g_assert_true(third != first);
        assert_sorted(third, 6);
        g_assert_cmpuint(first->len, ==, 5);
        g_assert_cmpstr(((Device *) third->pdata[2])->name, ==, "00000000-0000-0000-0000-000000000003");

        g_assert_true(registry_remove_device(r, U1));
        fourth = registry_list_devices(r);
        assert_sorted(fourth, 5);
        g_assert_cmpstr(((Device *) fourth->pdata[0])->name, ==, U2);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/registry/devices", test_devices);
        g_test_add_func("/registry/listing", test_listing);
        g_test_add_func("/registry/types", test_types);
        g_test_add_func("/registry/listeners", test_listeners);
        g_test_add_func("/registry/count-instances", test_count_instances);
        g_test_add_func("/registry/domain-forgets-holder", test_domain_forgets_holder);
        g_test_add_func("/registry/migration-support", test_migration_support);
        return g_test_run();
}
