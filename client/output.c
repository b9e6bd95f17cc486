/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

static JsonStyle json_style = JSON_STYLE_AUTO;
static bool legend = true;

void output_set_json_style(JsonStyle style) {
        json_style = style;
}

void output_set_legend(bool on) {
        legend = on;
}

/* Empty cells print as "-" so columns stay readable and splittable. */
static const char *cell_text(const char *cell) {
        return *cell ? cell : "-";
}

struct Table {
        GPtrArray *rows;        /* of GStrv; row 0 is the header */
        guint columns;
};

static GStrv collect(const char *first, va_list ap) {
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();

        for (const char *s = first; s; s = va_arg(ap, const char *))
                g_strv_builder_add(b, s);
        return g_strv_builder_end(b);
}

Table *table_new(const char *first_header, ...) {
        Table *t = g_new0(Table, 1);
        va_list ap;
        GStrv header;

        va_start(ap, first_header);
        header = collect(first_header, ap);
        va_end(ap);
        t->rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);
        t->columns = g_strv_length(header);
        g_ptr_array_add(t->rows, header);
        return t;
}

void table_add_row(Table *t, const char *first, ...) {
        va_list ap;
        GStrv row;

        va_start(ap, first);
        row = collect(first, ap);
        va_end(ap);
        g_assert(g_strv_length(row) == t->columns);
        g_ptr_array_add(t->rows, row);
}

void table_print(Table *t, const char *noun_plural) {
        g_autofree guint *width = g_new0(guint, t->columns);
        bool tty = isatty(STDOUT_FILENO);

        for (guint r = 0; r < t->rows->len; r++)
                for (guint c = 0; c < t->columns; c++) {
                        const char *cell = cell_text(((GStrv) t->rows->pdata[r])[c]);

                        width[c] = MAX(width[c], (guint) g_utf8_strlen(cell, -1));
                }
        for (guint r = legend ? 0 : 1; r < t->rows->len; r++) {
                GStrv row = t->rows->pdata[r];

                for (guint c = 0; c < t->columns; c++) {
                        bool last = c + 1 == t->columns;
                        const char *cell = cell_text(row[c]);

                        /* Pad by characters, not bytes. */
                        fputs(cell, stdout);
                        if (!last)
                                printf("%*s", (int) (width[c] - g_utf8_strlen(cell, -1) + 2), "");
                }
                putchar('\n');
        }
        if (tty && legend)
                printf("\n%u %s listed.\n", t->rows->len - 1, noun_plural);
}

void table_free(Table *t) {
        if (!t)
                return;
        g_ptr_array_unref(t->rows);
        g_free(t);
}

bool output_json_pretty(FILE *f) {
        return json_style == JSON_STYLE_PRETTY || (json_style == JSON_STYLE_AUTO && isatty(fileno(f)));
}

/* Takes node: every caller builds it for this alone, and the generator
 * works on a copy. */
void json_print_to(FILE *f, JsonNode *node) {
        g_autoptr(JsonGenerator) g = json_generator_new();
        g_autoptr(JsonNode) n = node;
        g_autofree char *s = NULL;

        json_generator_set_pretty(g, output_json_pretty(f));
        json_generator_set_root(g, n);
        s = json_generator_to_data(g, NULL);
        fprintf(f, "%s\n", s);
}

void json_print(JsonNode *node) {
        json_print_to(stdout, node);
}

JsonNode *json_strv_node(char **strv) {
        g_autoptr(JsonArray) a = json_array_new();

        for (char **s = strv; s && *s; s++)
                json_array_add_string_element(a, *s);
        /* the node takes a reference of its own */
        return json_node_init_array(json_node_alloc(), a);
}

char *format_bytes(uint64_t bytes) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double) bytes;
        size_t u = 0;

        /* not g_format_size(): its non-breaking space, under every locale,
         * defeats grep "4.0 MiB" */
        if (bytes < 1024)
                return g_strdup_printf("%" G_GUINT64_FORMAT " B", bytes);
        while (v >= 1024 && u + 1 < G_N_ELEMENTS(units)) {
                v /= 1024;
                u++;
        }
        return g_strdup_printf("%.1f %s", v, units[u]);
}

char *cli_error_text(const char *message) {
        static const char *const cli_options[] = { "overwrite", "allow-unknown", "allow-no-p2p" };
        g_autoptr(GString) s = g_string_new(message);

        /* the daemon's hints name D-Bus options; ours are flags */
        for (size_t i = 0; i < G_N_ELEMENTS(cli_options); i++) {
                g_autofree char *dbus = g_strdup_printf("(option %s)", cli_options[i]);
                g_autofree char *flag = g_strdup_printf("(--%s)", cli_options[i]);

                g_string_replace(s, dbus, flag, 0);
        }
        return g_string_free(g_steal_pointer(&s), FALSE);
}

char *json_key(const char *property) {
        GString *s = g_string_new(NULL);

        /* one case for every verb's JSON: MigrationSupport as list has it */
        for (const char *p = property; *p; p++) {
                if (g_ascii_isupper(*p) && p != property)
                        g_string_append_c(s, '_');
                g_string_append_c(s, g_ascii_tolower(*p));
        }
        return g_string_free(s, FALSE);
}

char *migration_text(const char *support, const char *flags) {
        if (g_str_equal(support, "supported"))
                return g_strdup(flags);
        if (g_str_equal(support, "none"))
                return g_strdup("none (the driver has no VFIO migration)");
        return g_strdup(support);       /* "unknown", or what a newer daemon says */
}
