/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <langinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* ---- colours: where systemd's tools print them, unless NO_COLOR ---- */

static const char *const color_codes[] = {
        [COLOR_NORMAL] = "",
        [COLOR_HEADER] = "\033[1m",
        [COLOR_GOOD] = "\033[32m",
        [COLOR_WARN] = "\033[33m",
        [COLOR_BAD] = "\033[31m",
        [COLOR_ERROR] = "\033[1;31m",
};
#define COLOR_RESET "\033[0m"

/* SYSTEMD_COLORS as systemd reads it: 1 on, 0 off, -1 unset or not a
 * value it knows. */
static int systemd_colors(void) {
        static const char *const on[] = { "1", "yes", "y", "true", "t", "on", "16", "256", "24bit" };
        static const char *const off[] = { "0", "no", "n", "false", "f", "off" };
        const char *e = getenv("SYSTEMD_COLORS");

        if (!e)
                return -1;
        for (size_t i = 0; i < G_N_ELEMENTS(on); i++)
                if (g_ascii_strcasecmp(e, on[i]) == 0)
                        return 1;
        for (size_t i = 0; i < G_N_ELEMENTS(off); i++)
                if (g_ascii_strcasecmp(e, off[i]) == 0)
                        return 0;
        return -1;
}

static bool decide_colors(int fd) {
        const char *term = getenv("TERM");
        int forced;

        /* set, whatever its value, means none: even SYSTEMD_COLORS=1
         * does not undo what the user asked of every program */
        if (getenv("NO_COLOR"))
                return false;
        forced = systemd_colors();
        if (forced >= 0)
                return forced;
        if (!term || g_str_equal(term, "dumb"))
                return false;
        return isatty(fd);
}

bool output_colors(FILE *f) {
        static int cached[3] = { -1, -1, -1 };  /* by fd: stdout and stderr */
        int fd = fileno(f);

        if (fd < 1 || fd > 2)
                return false;
        if (cached[fd] < 0)
                cached[fd] = decide_colors(fd);
        return cached[fd];
}

const char *color_on(FILE *f, Color color) {
        return output_colors(f) ? color_codes[color] : "";
}

const char *color_off(FILE *f, Color color) {
        return output_colors(f) && color != COLOR_NORMAL ? COLOR_RESET : "";
}

static void put_colored(const char *text, Color color) {
        fputs(color_on(stdout, color), stdout);
        fputs(text, stdout);
        fputs(color_off(stdout, color), stdout);
}

Color verdict_color(const char *verdict) {
        if (g_str_equal(verdict, "compatible"))
                return COLOR_GOOD;
        if (g_str_equal(verdict, "incompatible"))
                return COLOR_BAD;
        return g_str_equal(verdict, "unknown") ? COLOR_WARN : COLOR_NORMAL;
}

/* ---- tables ---- */

/* Empty cells print as "-" so columns stay readable and splittable. */
static const char *cell_text(const char *cell) {
        return *cell ? cell : "-";
}

typedef struct Column {
        Color (*color_of)(const char *cell);
        bool whole;
} Column;

struct Table {
        GPtrArray *rows;        /* of GStrv; row 0 is the header */
        guint columns;
        Column *column;
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
        t->column = g_new0(Column, t->columns);
        g_ptr_array_add(t->rows, header);
        return t;
}

static Column *column_named(Table *t, const char *header) {
        GStrv names = t->rows->pdata[0];

        for (guint c = 0; c < t->columns; c++)
                if (g_str_equal(names[c], header))
                        return &t->column[c];
        g_assert_not_reached();
}

void table_set_color(Table *t, const char *header, Color (*color_of)(const char *cell)) {
        column_named(t, header)->color_of = color_of;
}

void table_keep_whole(Table *t, const char *header) {
        column_named(t, header)->whole = true;
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

/* The width of the terminal stdout is, as systemd takes it: $COLUMNS,
 * else what the terminal says; 0 when stdout is no terminal, or its width
 * is not known. */
static guint terminal_columns(void) {
        const char *e = getenv("COLUMNS");
        struct winsize ws = {};
        guint64 n;

        if (!isatty(STDOUT_FILENO))
                return 0;
        if (e && g_ascii_string_to_unsigned(e, 10, 1, G_MAXUINT16, &n, NULL))
                return (guint) n;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
                return 0;
        return ws.ws_col;
}

/* Narrows the widest columns that may shrink, a character at a time, until
 * a row fits in columns characters or every one of them is down to its
 * header. */
static void fit_widths(Table *t, guint *width, guint columns) {
        GStrv header = t->rows->pdata[0];
        guint total = 2 * (t->columns - 1);

        for (guint c = 0; c < t->columns; c++)
                total += width[c];
        for (; total > columns; total--) {
                guint widest = t->columns;

                for (guint c = 0; c < t->columns; c++)
                        if (!t->column[c].whole && width[c] > (guint) g_utf8_strlen(header[c], -1) &&
                            (widest == t->columns || width[c] > width[widest]))
                                widest = c;
                if (widest == t->columns)
                        return;         /* it will not fit: let the terminal wrap */
                width[widest]--;
        }
}

/* cell, cut to width characters with an ellipsis at the end: "…" where
 * the locale can show it. */
static char *ellipsize(const char *cell, guint width) {
        const char *mark = g_str_equal(nl_langinfo(CODESET), "UTF-8") ? "…" : "...";
        guint mark_len = (guint) g_utf8_strlen(mark, -1);
        g_autofree char *kept = NULL;

        if (width <= mark_len)
                return g_utf8_substring(mark, 0, width);
        kept = g_utf8_substring(cell, 0, width - mark_len);
        return g_strconcat(kept, mark, NULL);
}

static void print_row(Table *t, GStrv row, const guint *width, bool header) {
        for (guint c = 0; c < t->columns; c++) {
                const char *cell = cell_text(row[c]);
                guint len = (guint) g_utf8_strlen(cell, -1);
                g_autofree char *cut = len > width[c] ? ellipsize(cell, width[c]) : NULL;
                Color color = header ? COLOR_HEADER : t->column[c].color_of ? t->column[c].color_of(cell)
                                                                           : COLOR_NORMAL;

                put_colored(cut ?: cell, color);
                /* Pad by characters, not bytes. */
                if (c + 1 < t->columns)
                        printf("%*s", (int) (width[c] - MIN(len, width[c]) + 2), "");
        }
        putchar('\n');
}

void table_print(Table *t, const char *noun_plural) {
        g_autofree guint *width = g_new0(guint, t->columns);
        bool tty = isatty(STDOUT_FILENO);
        guint columns = terminal_columns();

        for (guint r = 0; r < t->rows->len; r++)
                for (guint c = 0; c < t->columns; c++) {
                        const char *cell = cell_text(((GStrv) t->rows->pdata[r])[c]);

                        width[c] = MAX(width[c], (guint) g_utf8_strlen(cell, -1));
                }
        if (columns > 0)
                fit_widths(t, width, columns);
        for (guint r = legend ? 0 : 1; r < t->rows->len; r++)
                print_row(t, t->rows->pdata[r], width, r == 0);
        if (tty && legend)
                printf("\n%u %s listed.\n", t->rows->len - 1, noun_plural);
}

void table_free(Table *t) {
        if (!t)
                return;
        g_ptr_array_unref(t->rows);
        g_free(t->column);
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
