/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

/* JSON written as it is produced, for listings too long to build as a
 * tree first: the same text json-glib's generator would make of the
 * tree. The caller keeps to JSON's grammar (a key before each member's
 * value). */

#define JSON_WRITER_MAX_DEPTH 8

typedef struct JsonWriter {
        FILE *f;
        bool pretty;
        bool after_key;
        unsigned depth;
        unsigned count[JSON_WRITER_MAX_DEPTH];  /* items written at each open level */
} JsonWriter;

void json_writer_init(JsonWriter *w, FILE *f, bool pretty);
void json_writer_begin_array(JsonWriter *w);
void json_writer_end_array(JsonWriter *w);
void json_writer_begin_object(JsonWriter *w);
void json_writer_end_object(JsonWriter *w);
void json_writer_key(JsonWriter *w, const char *key);
void json_writer_string(JsonWriter *w, const char *s);
void json_writer_string_len(JsonWriter *w, const char *s, size_t len);
void json_writer_int(JsonWriter *w, int64_t v);
void json_writer_member_string(JsonWriter *w, const char *key, const char *s);
/* An array of the strings in list separated by sep: "a,b" -> ["a","b"],
 * "" -> []. */
void json_writer_member_list(JsonWriter *w, const char *key, const char *list, char sep);
