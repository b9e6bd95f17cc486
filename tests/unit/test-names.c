/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>

#include "names.h"
#include "unit-test.h"
#include "util.h"

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

        /* what GLib says of every one-character change, and of every length */
        for (size_t pos = 0; pos < 37; pos++)
                for (const char *c = "0aF-gz \x80"; *c; c++) {
                        char s[40] = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

                        s[pos] = *c;
                        g_assert_cmpint(name_is_uuid(s), ==, g_uuid_string_is_valid(s));
                        s[pos] = '\0';
                        g_assert_cmpint(name_is_uuid(s), ==, g_uuid_string_is_valid(s));
                }
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
        /* "mtty" could be a vDPA device: only the kernel knows */
        {
                g_autofree char *m = name_normalize_device("mtty");

                g_assert_cmpstr(m, ==, "mtty");
        }
        g_assert_null(name_normalize_device(""));
}

static void test_vdpa(void) {
        static const char *const good[] = { "vdpa0", "Vdpa-Net_1", "net.0", "n", "x:y", "fab0g" };
        static const char *const bad[] = {
                "", "-vdpa", ".vdpa", "vdpa/0", "vdpa 0", "vdpa\n", "vdp\xc3\xa4", "../x",
                /* made only of hex and separators: a mistyped UUID or PCI address */
                "0000:3b:00", "83b8f4f2-509f-382f-3c1e", "cafe", "0.1", "ab-cd", "a",
        };
        g_autofree char *longest = g_strnfill(NAME_VDPA_MAX, 'v'), *longer = g_strnfill(NAME_VDPA_MAX + 1, 'v');
        g_autofree char *kept = name_normalize_device("VDPA0");

        for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
                if (!name_is_vdpa(good[i]) || !name_is_device(good[i]))
                        fail("'%s' refused", good[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
                if (name_is_vdpa(bad[i]) || name_is_device(bad[i]))
                        fail("'%s' accepted", bad[i]);
        g_assert_true(name_is_vdpa(longest));
        g_assert_false(name_is_vdpa(longer));
        /* its creator chose the case */
        g_assert_cmpstr(kept, ==, "VDPA0");
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

/* Save() writes .NAME.XXXXXX.partial first: a name is plain only if that
 * still fits in a directory entry, so every accepted name can be saved. */
static void test_plain_file_length(void) {
        g_autofree char *longest = g_strnfill(NAME_PLAIN_FILE_MAX, 'a');
        g_autofree char *one_more = g_strnfill(NAME_PLAIN_FILE_MAX + 1, 'a');
        g_autofree char *temp = g_strconcat(NAME_SAVE_TEMP_PREFIX, longest, NAME_SAVE_TEMP_SUFFIX, NULL);

        g_assert_cmpint(NAME_PLAIN_FILE_MAX, >=, 200);
        g_assert_cmpuint(strlen(temp), ==, NAME_MAX);
        g_assert_true(name_is_plain_file(longest));
        g_assert_false(name_is_plain_file(one_more));
        for (int n = NAME_PLAIN_FILE_MAX + 1; n <= NAME_MAX; n++) {
                g_autofree char *s = g_strnfill(n, 'b');

                g_assert_false(name_is_plain_file(s));
        }
}

static void assert_quote(const char *s, const char *want) {
        g_autofree char *q = name_quote(s);

        g_assert_cmpstr(q, ==, want);
        g_assert_true(g_utf8_validate(q, -1, NULL));
}

static void test_quote(void) {
        g_autofree char *big = g_strnfill(65536, 'x');
        g_autofree char *prefix = g_strnfill(NAME_QUOTE_MAX, 'x');
        g_autofree char *want = g_strdup_printf("'%s'... (65536 bytes)", prefix);
        g_autofree char *exact = g_strnfill(NAME_QUOTE_MAX, 'y');
        g_autofree char *exact_quoted = g_strdup_printf("'%s'", exact);
        g_autofree char *escapes = g_strnfill(4096, '\001');
        g_autofree char *q = NULL;

        assert_quote("", "''");
        assert_quote("mtty-1", "'mtty-1'");
        assert_quote("it's a\\b", "'it\\'s a\\\\b'");
        assert_quote("a\nb\tc\033[2J", "'a\\nb\\tc\\x1b[2J'");
        assert_quote("gr\xc3\xbc\xc3\x9f", "'gr\xc3\xbc\xc3\x9f'");          /* printable UTF-8 stays */
        assert_quote("\xe2\x80\x8b\xc2\x85", "'\\u200B\\u0085'");           /* zero-width space, NEL */
        assert_quote("\xff\xfe" "a", "'\\xff\\xfea'");                      /* not UTF-8 */
        assert_quote(exact, exact_quoted);                                 /* the limit, not cut */
        assert_quote(big, want);

        /* Escapes count: many control bytes still make a short quote, and
         * a cut never splits a character. */
        q = name_quote(escapes);
        g_assert_cmpuint(strlen(q), <, NAME_QUOTE_MAX + 32);
        g_assert_true(g_str_has_prefix(q, "'\\x01\\x01"));
        g_assert_true(g_str_has_suffix(q, "'... (4096 bytes)"));
        g_clear_pointer(&q, g_free);
        {
                g_autoptr(GString) accents = g_string_new(NULL);

                for (int i = 0; i < 100; i++)
                        g_string_append(accents, "\xc3\xa9");
                q = name_quote(accents->str);
                g_assert_true(g_utf8_validate(q, -1, NULL));
                g_assert_true(g_str_has_suffix(q, "'... (200 bytes)"));
        }
}

/* The table ListDevices reads says what the joined list says, and
 * ignores bits it does not know, as the list does. */
static void test_flags_text(void) {
        for (uint32_t f = 0; f < 16; f++) {
                g_autofree char *joined = migration_flags_to_string(f | (f << 8), ",");
                uint32_t back = 0;

                g_assert_cmpstr(migration_flags_text(f | (f << 8)), ==, joined);
                g_assert_cmpint(migration_flags_from_string(joined, &back), ==, 0);
                g_assert_cmpuint(back, ==, f & 7);
        }
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/names/uuid", test_uuid);
        g_test_add_func("/names/pci", test_pci);
        g_test_add_func("/names/normalize", test_normalize);
        g_test_add_func("/names/vdpa", test_vdpa);
        g_test_add_func("/names/components", test_components);
        g_test_add_func("/names/plain-file-length", test_plain_file_length);
        g_test_add_func("/names/quote", test_quote);
        g_test_add_func("/names/flags-text", test_flags_text);
        return g_test_run();
}
