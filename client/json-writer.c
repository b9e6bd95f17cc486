/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <string.h>

#include "json-writer.h"

/* The output is what json-glib's generator makes of the same tree, so a
 * listing written straight from a D-Bus reply looks like every other
 * verb's JSON: pretty is two spaces a level and "key" : value, and an
 * empty array stays on its line (test-json-writer compares the two).
 * Listings have no empty objects, which json-glib prints its own way. */

void json_writer_init(JsonWriter *w, FILE *f, bool pretty) {
        *w = (JsonWriter) { .f = f, .pretty = pretty };
}

static void indent(JsonWriter *w) {
        fputc('\n', w->f);
        for (unsigned i = 0; i < w->depth; i++)
                fputs("  ", w->f);
}

/* Before a value or a key: the comma and, pretty, the line. A value
 * after its key follows it on the same line. */
static void next_item(JsonWriter *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->depth == 0)
                return;
        if (w->count[w->depth - 1]++ > 0)
                fputc(',', w->f);
        if (w->pretty)
                indent(w);
}

static void open_level(JsonWriter *w, char c) {
        next_item(w);
        fputc(c, w->f);
        g_assert(w->depth < JSON_WRITER_MAX_DEPTH);
        w->count[w->depth++] = 0;
}

static void close_level(JsonWriter *w, char c) {
        bool empty = w->count[--w->depth] == 0;

        if (w->pretty && !empty)
                indent(w);
        fputc(c, w->f);
}

void json_writer_begin_array(JsonWriter *w) {
        open_level(w, '[');
}

void json_writer_end_array(JsonWriter *w) {
        close_level(w, ']');
}

void json_writer_begin_object(JsonWriter *w) {
        open_level(w, '{');
}

void json_writer_end_object(JsonWriter *w) {
        close_level(w, '}');
}

static void quoted(JsonWriter *w, const char *s, size_t len) {
        const char *run = s, *end = s + len;

        fputc('"', w->f);
        for (const char *p = s; p < end; p++) {
                unsigned char c = (unsigned char) *p;
                const char *esc = NULL;
                char hex[8];

                switch (c) {
                case '"': esc = "\\\""; break;
                case '\\': esc = "\\\\"; break;
                case '\b': esc = "\\b"; break;
                case '\f': esc = "\\f"; break;
                case '\n': esc = "\\n"; break;
                case '\r': esc = "\\r"; break;
                case '\t': esc = "\\t"; break;
                default:
                        if (c >= 0x20 && c != 0x7f)
                                continue;
                        snprintf(hex, sizeof(hex), "\\u%04x", c);
                        esc = hex;
                }
                fwrite(run, 1, p - run, w->f);
                fputs(esc, w->f);
                run = p + 1;
        }
        fwrite(run, 1, end - run, w->f);
        fputc('"', w->f);
}

void json_writer_key(JsonWriter *w, const char *key) {
        next_item(w);
        quoted(w, key, strlen(key));
        fputs(w->pretty ? " : " : ":", w->f);
        w->after_key = true;
}

void json_writer_string_len(JsonWriter *w, const char *s, size_t len) {
        next_item(w);
        quoted(w, s, len);
}

void json_writer_string(JsonWriter *w, const char *s) {
        json_writer_string_len(w, s, strlen(s));
}

void json_writer_int(JsonWriter *w, int64_t v) {
        next_item(w);
        fprintf(w->f, "%" PRId64, v);
}

void json_writer_member_string(JsonWriter *w, const char *key, const char *s) {
        json_writer_key(w, key);
        json_writer_string(w, s);
}

void json_writer_member_list(JsonWriter *w, const char *key, const char *list, char sep) {
        json_writer_key(w, key);
        json_writer_begin_array(w);
        while (*list) {
                const char *end = strchrnul(list, sep);

                json_writer_string_len(w, list, end - list);
                list = *end ? end + 1 : end;
        }
        json_writer_end_array(w);
}
