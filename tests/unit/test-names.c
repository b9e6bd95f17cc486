/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <glib.h>

#include "names.h"

static void test_uuid(void) {
        static const char *const good[] = {
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
                "83B8F4F2-509F-382F-3C1E-E6BFE0FA1001",
                "00000000-0000-0000-0000-000000000000",
        };
        static const char *const bad[] = {
                "", "83b8f4f2", "83b8f4f2-509f-382f-3c1e-e6bfe0fa100",     /* short */
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa10011",                   /* long */
                "83b8f4f2x509f-382f-3c1e-e6bfe0fa1001",                    /* dash */
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa100g",                    /* hex */
                "83b8f4f2509f382f3c1ee6bfe0fa1001",                        /* no dashes */
                "../../../../etc/passwd-aaaa-aaaa-aaaa",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
                g_assert_true(name_is_uuid(good[i]));
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_false(name_is_uuid(bad[i]));
        g_assert_false(name_is_uuid(NULL));
}

static void test_pci(void) {
        static const char *const good[] = {
                "0000:3b:00.1", "0000:00:1f.7", "ffff:ff:1f.0", "10000:e1:00.0", "0000:3B:00.1",
        };
        static const char *const bad[] = {
                "", "3b:00.1", "000:3b:00.1", "0000:3b:20.0" /* slot > 0x1f */, "0000:3b:00.8",
                "0000:3b:00", "0000:3b:00.1 ", "0000-3b-00.1", "0000:3b:000.1", "0000:3b:00.10",
                "123456789:00:00.0",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
                g_assert_true(name_is_pci_address(good[i]));
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                g_assert_false(name_is_pci_address(bad[i]));
}

static void test_normalize(void) {
        g_autofree char *a = name_normalize_device("0000:3B:00.1");
        g_autofree char *b = name_normalize_device("83B8F4F2-509F-382F-3C1E-E6BFE0FA1001");

        g_assert_cmpstr(a, ==, "0000:3b:00.1");
        g_assert_cmpstr(b, ==, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
        g_assert_null(name_normalize_device("mtty"));
        g_assert_null(name_normalize_device(""));
}

static void test_components(void) {
        g_assert_true(name_is_sysfs_component("mtty"));
        g_assert_true(name_is_sysfs_component("nvidia-35"));
        g_assert_true(name_is_sysfs_component("0000:65:00.0"));
        g_assert_false(name_is_sysfs_component(""));
        g_assert_false(name_is_sysfs_component("."));
        g_assert_false(name_is_sysfs_component(".."));
        g_assert_false(name_is_sysfs_component("a/b"));
        g_assert_false(name_is_sysfs_component("a b"));
        g_assert_false(name_is_sysfs_component("a\nb"));

        g_assert_true(name_is_plain_file("state-1.vfm"));
        g_assert_false(name_is_plain_file(".hidden"));
        g_assert_false(name_is_plain_file("../x"));
        g_assert_false(name_is_plain_file("/etc/passwd"));
        g_assert_false(name_is_plain_file("\xff\xfe"));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/names/uuid", test_uuid);
        g_test_add_func("/names/pci", test_pci);
        g_test_add_func("/names/normalize", test_normalize);
        g_test_add_func("/names/components", test_components);
        return g_test_run();
}
