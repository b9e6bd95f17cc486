/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "json-writer.h"

static const char *const strings[] = {
        "", "plain", "quote \" backslash \\ slash /", "tab\tnew\nline\rfeed\fback\b",
        "\x01\x02\x1e\x7f", "caf\xc3\xa9 \xe2\x82\xac",
};

static char *generate(JsonNode *root, bool pretty) {
        g_autoptr(JsonGenerator) g = json_generator_new();

        json_generator_set_pretty(g, pretty);
        json_generator_set_root(g, root);
        return json_generator_to_data(g, NULL);
}

/* The tree a listing would be, built with json-glib. */
static JsonNode *tree(guint rows) {
        g_autoptr(JsonArray) a = json_array_new();      /* the node takes a reference of its own */

        for (guint i = 0; i < rows; i++) {
                JsonObject *o = json_object_new();
                JsonArray *flags = json_array_new();

                json_object_set_string_member(o, "name", strings[i % G_N_ELEMENTS(strings)]);
                for (guint k = 0; k < i % 3; k++)
                        json_array_add_string_element(flags, k ? "p2p" : "stop-copy");
                json_object_set_array_member(o, "migration_flags", flags);
                json_object_set_int_member(o, "available_instances", (gint64) i * 1000 - 2);
                json_object_set_string_member(o, "last", strings[(i + 3) % G_N_ELEMENTS(strings)]);
                json_array_add_object_element(a, o);
        }
        return json_node_init_array(json_node_alloc(), a);
}

static char *written(guint rows, bool pretty) {
        static const char *const lists[] = { "", "stop-copy", "stop-copy,p2p" };
        g_autofree char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        JsonWriter w;

        json_writer_init(&w, f, pretty);
        json_writer_begin_array(&w);
        for (guint i = 0; i < rows; i++) {
                json_writer_begin_object(&w);
                json_writer_member_string(&w, "name", strings[i % G_N_ELEMENTS(strings)]);
                json_writer_member_list(&w, "migration_flags", lists[i % 3], ',');
                json_writer_key(&w, "available_instances");
                json_writer_int(&w, (int64_t) i * 1000 - 2);
                json_writer_member_string(&w, "last", strings[(i + 3) % G_N_ELEMENTS(strings)]);
                json_writer_end_object(&w);
        }
        json_writer_end_array(&w);
        fclose(f);
        return g_steal_pointer(&text);
}

/* What the writer writes is what json-glib generates for the same tree,
 * pretty and short, for no row, one and several. */
static void test_same_as_json_glib(void) {
        for (guint rows = 0; rows < 8; rows += 3)
                for (int pretty = 0; pretty < 2; pretty++) {
                        g_autoptr(JsonNode) root = tree(rows);
                        g_autofree char *expected = generate(root, pretty);
                        g_autofree char *got = written(rows, pretty);

                        g_assert_cmpstr(got, ==, expected);
                }
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/json-writer/same-as-json-glib", test_same_as_json_glib);
        return g_test_run();
}
