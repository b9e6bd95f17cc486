/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include <glib.h>

#include "conffile.h"

#ifndef FUZZ_CORPUS_DIR
#error FUZZ_CORPUS_DIR
#endif

/* conffile.c reads the syntax GKeyFile reads: for every file both take,
 * the same sections and keys in the same order, and the same strings
 * and lists (escapes, blanks, separators). */
static void assert_same_as_gkeyfile(const char *text) {
        g_autoptr(GKeyFile) k = g_key_file_new();
        g_autoptr(GError) error = NULL;
        g_autoptr(ConfFile) c = conf_file_parse(text, "t.conf", &error);
        g_auto(GStrv) groups = NULL;
        const char *const *ours;
        gsize n;

        if (!c)
                return;         /* stricter than GKeyFile: nothing to compare */
        g_assert_true(g_key_file_load_from_data(k, text, -1, G_KEY_FILE_NONE, NULL));
        groups = g_key_file_get_groups(k, &n);
        ours = conf_file_groups(c);
        g_assert_cmpuint(g_strv_length((char **) ours), ==, n);
        for (gsize i = 0; i < n; i++) {
                g_auto(GStrv) keys = g_key_file_get_keys(k, groups[i], NULL, NULL);
                g_auto(GStrv) our_keys = conf_file_get_keys(c, groups[i]);

                g_assert_cmpstr(ours[i], ==, groups[i]);
                g_assert_true(conf_file_has_group(c, groups[i]));
                g_assert_cmpstrv(our_keys, keys);
                for (char **key = keys; *key; key++) {
                        g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL;
                        g_autofree char *theirs = g_key_file_get_string(k, groups[i], *key, &e1), *ours_s = NULL;
                        g_auto(GStrv) their_list = g_key_file_get_string_list(k, groups[i], *key, NULL, &e3);
                        g_auto(GStrv) our_list = conf_file_get_string_list(c, groups[i], *key, &e4);
                        bool ok = conf_file_get_string(c, groups[i], *key, NULL, &ours_s, &e2);

                        g_assert_true(conf_file_has_key(c, groups[i], *key));
                        g_assert_cmpint(ok, ==, e1 == NULL);
                        if (ok)
                                g_assert_cmpstr(ours_s, ==, g_strchomp(theirs));
                        g_assert_cmpint(our_list != NULL, ==, e3 == NULL);
                        if (our_list)
                                g_assert_cmpstrv(our_list, their_list);
                }
        }
}

static void test_values(void) {
        static const char *const values[] = {
                "", "b", " b ", "  b\t", "\\sb", "x\\n\\t\\r\\\\y", "x\\q", "x\\", "a;b;c", "a;b;", "a;;b", ";",
                "a\\;b;c", " a ; b ", "a\\sb;c", "\\;", "caf\xc3\xa9;\xe2\x82\xac", "a\\\\;b", "trailing \\s",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(values); i++) {
                g_autofree char *text = g_strdup_printf("# comment\n[G one]\nK=%s\n  Other key = %s\n\n[G two]\nK=x\n",
                                                        values[i], values[i]);

                assert_same_as_gkeyfile(text);
        }
}

static void test_corpus(void) {
        static const char *const dirs[] = { "conffile", "rules", "testbed" };

        for (size_t d = 0; d < G_N_ELEMENTS(dirs); d++) {
                g_autofree char *path = g_build_filename(FUZZ_CORPUS_DIR, dirs[d], NULL);
                g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
                const char *name;

                g_assert_nonnull(dir);
                while ((name = g_dir_read_name(dir))) {
                        g_autofree char *file = g_build_filename(path, name, NULL), *text = NULL;
                        gsize len;

                        g_assert_true(g_file_get_contents(file, &text, &len, NULL));
                        if (strlen(text) == len)
                                assert_same_as_gkeyfile(text);
                }
        }
}

/* Where the two differ, ours refuses, and says where. */
static void test_stricter(void) {
        static const struct {
                const char *text, *message;
        } bad[] = {
                { "[G]\nK=1\nK=2\n", "t.conf:3: duplicate key K in [G] (first on line 2)" },
                { "[G]\nK[de]=1\n", "t.conf:2: invalid key name: K[de]" },
                { "[G]\n[G]\n", "t.conf:2: duplicate section [G] (first on line 1)" },
                { "[G[x]\n", "t.conf:1: invalid section name: G[x" },
                { "[G\x01]\n", "t.conf:1: invalid section name" },
                { "[G]\nK\n", "t.conf:2: expected [section], key=value or # comment, got: K" },
                { "K=1\n", "t.conf:1: key outside of any [section]" },
        };
        g_autoptr(GString) many = g_string_new("[G]\n");

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autoptr(GError) error = NULL;
                g_autoptr(ConfFile) c = conf_file_parse(bad[i].text, "t.conf", &error);

                g_assert_null(c);
                g_assert_nonnull(strstr(error->message, bad[i].message));
        }

        /* a section of many keys finds a duplicate all the same */
        for (unsigned i = 0; i < 100; i++)
                g_string_append_printf(many, "K%u=%u\n", i, i);
        g_string_append(many, "K42=again\n");
        {
                g_autoptr(GError) error = NULL;
                g_autoptr(ConfFile) c = conf_file_parse(many->str, "t.conf", &error);

                g_assert_null(c);
                g_assert_nonnull(strstr(error->message, "t.conf:102: duplicate key K42 in [G] (first on line 44)"));
        }
}

static void test_lines(void) {
        g_autoptr(ConfFile) c = conf_file_parse("\n# x\n[A]\nk = 1\n\n[B]\n  j=2\nk=3\n", "t.conf", NULL);

        g_assert_nonnull(c);
        g_assert_cmpuint(conf_file_line(c, "A", NULL), ==, 3);
        g_assert_cmpuint(conf_file_line(c, "A", "k"), ==, 4);
        g_assert_cmpuint(conf_file_line(c, "B", "j"), ==, 7);
        g_assert_cmpuint(conf_file_line(c, "B", "k"), ==, 8);
        g_assert_cmpuint(conf_file_line(c, "B", "x"), ==, 0);
        g_assert_cmpuint(conf_file_line(c, "C", NULL), ==, 0);
        g_assert_false(conf_file_has_key(c, "A", "j"));
        g_assert_null(conf_file_get_string_list(c, "A", "j", NULL));
}

/* The view is what conf_file_get_string() gives, copied only where the
 * file's text is not that already. */
static void test_string_view(void) {
        g_autoptr(ConfFile) c = conf_file_parse("[G]\nPlain=abc def\nEscaped=a\\sb\nTrailing=x  \nEmpty=\n",
                                               "view", NULL);
        static const struct { const char *key; bool copied; } cases[] = {
                { "Plain", false }, { "Escaped", true }, { "Trailing", true }, { "Empty", false },
        };
        const char *def = "the default", *v;
        g_autofree char *copy = NULL;

        g_assert_nonnull(c);
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *expected = NULL;

                g_clear_pointer(&copy, g_free);
                g_assert_true(conf_file_get_string(c, "G", cases[i].key, NULL, &expected, NULL));
                g_assert_true(conf_file_get_string_view(c, "G", cases[i].key, NULL, &v, &copy, NULL));
                g_assert_cmpstr(v, ==, expected);
                g_assert_true((copy != NULL) == cases[i].copied);
        }
        g_clear_pointer(&copy, g_free);
        g_assert_true(conf_file_get_string_view(c, "G", "Absent", def, &v, &copy, NULL));
        g_assert_true(v == def);
        g_assert_null(copy);
        g_assert_false(conf_file_get_string_view(c, "G", "Absent", NULL, &v, &copy, NULL));
        g_assert_null(copy);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/conffile/values", test_values);
        g_test_add_func("/conffile/corpus", test_corpus);
        g_test_add_func("/conffile/stricter", test_stricter);
        g_test_add_func("/conffile/lines", test_lines);
        g_test_add_func("/conffile/string-view", test_string_view);
        return g_test_run();
}
