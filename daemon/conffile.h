/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* A keyfile (GKeyFile's syntax) that remembers where each section and
 * key came from, so every error can say "file:line: ...". Stricter than
 * GKeyFile: duplicate sections or keys and stray lines are errors, not
 * silently merged. */

typedef struct ConfFile ConfFile;

#define CONF_FILE_ERROR (conf_file_error_quark())
GQuark conf_file_error_quark(void);

ConfFile *conf_file_parse(const char *data, const char *filename, GError **error);
ConfFile *conf_file_load(const char *path, GError **error);
void conf_file_free(ConfFile *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ConfFile, conf_file_free);

const char *conf_file_name(ConfFile *c);
/* The section names in the order of the file, NULL-terminated; valid
 * while c is. */
const char *const *conf_file_groups(ConfFile *c);
bool conf_file_has_group(ConfFile *c, const char *group);
bool conf_file_has_key(ConfFile *c, const char *group, const char *key);
/* The keys of a section in the order of the file; NULL if there is no
 * such section. */
char **conf_file_get_keys(ConfFile *c, const char *group);
/* Line of a section header (key == NULL) or a key; 0 if absent. */
unsigned conf_file_line(ConfFile *c, const char *group, const char *key);

/* Sets error to "file:line: [group] key: <message>". Returns false. */
bool conf_file_error(ConfFile *c, GError **error, const char *group, const char *key,
                     const char *format, ...) __attribute__((format(printf, 5, 6)));

/* Typed access; a missing key yields def (or an error if def is NULL for
 * strings). Bad values yield an error naming the line. On success the
 * string getter frees what *ret held before; on failure *ret is
 * untouched, so it can fill a struct field in place. */
bool conf_file_get_string(ConfFile *c, const char *group, const char *key,
                          const char *def, char **ret, GError **error);
bool conf_file_get_uint64(ConfFile *c, const char *group, const char *key,
                          uint64_t def, uint64_t min, uint64_t max, uint64_t *ret, GError **error);
/* A list separated by ';' (an escaped "\;" is part of an element, a
 * last empty element is dropped), as GKeyFile reads one; NULL if the key
 * is absent or, with error set, holds an invalid escape. */
/* conf_file_get_string() without a copy where none is needed: *ret is
 * the value as the file has it when that is the answer (no escapes, no
 * trailing blanks: most values), valid as long as c, or def itself when
 * the key is absent; otherwise a copy in *ret_copy, for the caller to
 * free. */
bool conf_file_get_string_view(ConfFile *c, const char *group, const char *key, const char *def,
                               const char **ret, char **ret_copy, GError **error);
char **conf_file_get_string_list(ConfFile *c, const char *group, const char *key, GError **error);
/* yes/no, true/false, on/off or 1/0, in any case. */
bool conf_file_get_bool(ConfFile *c, const char *group, const char *key, bool def, bool *ret, GError **error);
/* Accepts an optional K/M/G (binary) suffix. */
bool conf_file_get_size(ConfFile *c, const char *group, const char *key,
                        uint64_t def, uint64_t *ret, GError **error);

/* Every section must be in allowed (NULL-terminated). */
bool conf_file_check_groups(ConfFile *c, const char *const *allowed, GError **error);
/* Every key of group must be in allowed (NULL-terminated). */
bool conf_file_check_keys(ConfFile *c, const char *group, const char *const *allowed, GError **error);
