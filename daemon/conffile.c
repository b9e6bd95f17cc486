/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "conffile.h"

struct ConfFile {
        GKeyFile *keyfile;
        char *filename;
        GHashTable *lines;      /* "group" or "group\nkey" -> line number */
};

G_DEFINE_QUARK(vfiomig-conf-file-error-quark, conf_file_error)

static char *line_key(const char *group, const char *key) {
        return key ? g_strconcat(group, "\n", key, NULL) : g_strdup(group);
}

void conf_file_free(ConfFile *c) {
        if (!c)
                return;
        if (c->keyfile)
                g_key_file_unref(c->keyfile);
        g_hash_table_destroy(c->lines);
        g_free(c->filename);
        g_free(c);
}

static bool scan_error(ConfFile *c, GError **error, unsigned line, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
static bool scan_error(ConfFile *c, GError **error, unsigned line, const char *format, ...) {
        g_autofree char *msg = NULL;
        va_list ap;

        va_start(ap, format);
        msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s:%u: %s", c->filename, line, msg);
        return false;
}

/* GKeyFile knows no line numbers and merges duplicates, so index the
 * text ourselves first, rejecting anything it would silently accept. */
static bool index_lines(ConfFile *c, const char *data, GError **error) {
        g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
        g_autofree char *group = NULL;

        for (unsigned n = 0; lines[n]; n++) {
                unsigned lineno = n + 1;
                const char *l = lines[n], *eq;
                g_autofree char *key = NULL, *k = NULL;

                while (g_ascii_isspace(*l))
                        l++;
                if (*l == '\0' || *l == '#')
                        continue;
                if (*l == '[') {
                        const char *end = strchr(l, ']');

                        if (!end || end == l + 1 || end[strspn(end + 1, " \t\r") + 1] != '\0')
                                return scan_error(c, error, lineno, "malformed section header: %s", l);
                        g_free(group);
                        group = g_strndup(l + 1, end - l - 1);
                        if (g_hash_table_contains(c->lines, group))
                                return scan_error(c, error, lineno, "duplicate section [%s] (first on line %u)",
                                                  group, GPOINTER_TO_UINT(g_hash_table_lookup(c->lines, group)));
                        g_hash_table_insert(c->lines, g_strdup(group), GUINT_TO_POINTER(lineno));
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq || eq == l)
                        return scan_error(c, error, lineno, "expected [section], key=value or # comment, got: %s", l);
                if (!group)
                        return scan_error(c, error, lineno, "key outside of any [section]");
                key = g_strstrip(g_strndup(l, eq - l));
                /* GKeyFile would refuse these without saying where */
                if (strpbrk(key, "[]") || !g_utf8_validate(key, -1, NULL))
                        return scan_error(c, error, lineno, "invalid key name: %s", key);
                k = line_key(group, key);
                if (g_hash_table_contains(c->lines, k))
                        return scan_error(c, error, lineno, "duplicate key %s in [%s] (first on line %u)", key, group,
                                          GPOINTER_TO_UINT(g_hash_table_lookup(c->lines, k)));
                g_hash_table_insert(c->lines, g_steal_pointer(&k), GUINT_TO_POINTER(lineno));
        }
        return true;
}

ConfFile *conf_file_parse(const char *data, const char *filename, GError **error) {
        g_autoptr(ConfFile) c = g_new0(ConfFile, 1);
        g_autoptr(GError) e = NULL;

        c->filename = g_strdup(filename);
        c->lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        if (!g_utf8_validate(data, -1, NULL)) {
                g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s: not valid UTF-8", filename);
                return NULL;
        }
        if (!index_lines(c, data, error))
                return NULL;
        c->keyfile = g_key_file_new();
        if (!g_key_file_load_from_data(c->keyfile, data, -1, G_KEY_FILE_NONE, &e)) {
                g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s: %s", filename, e->message);
                return NULL;
        }
        return g_steal_pointer(&c);
}

ConfFile *conf_file_load(const char *path, GError **error) {
        g_autofree char *data = NULL;
        gsize len;

        if (!g_file_get_contents(path, &data, &len, error))
                return NULL;
        if (strlen(data) != len) {
                g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s: contains a NUL byte", path);
                return NULL;
        }
        return conf_file_parse(data, path, error);
}

GKeyFile *conf_file_keyfile(ConfFile *c) {
        return c->keyfile;
}

const char *conf_file_name(ConfFile *c) {
        return c->filename;
}

unsigned conf_file_line(ConfFile *c, const char *group, const char *key) {
        g_autofree char *k = line_key(group, key);

        return GPOINTER_TO_UINT(g_hash_table_lookup(c->lines, k));
}

bool conf_file_error(ConfFile *c, GError **error, const char *group, const char *key,
                     const char *format, ...) {
        unsigned line = conf_file_line(c, group, key);
        g_autofree char *msg = NULL;
        va_list ap;

        if (line == 0)
                line = conf_file_line(c, group, NULL);
        va_start(ap, format);
        msg = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s:%u: [%s]%s%s: %s", c->filename, line, group,
                    key ? " " : "", key ? key : "", msg);
        return false;
}

bool conf_file_get_string(ConfFile *c, const char *group, const char *key,
                          const char *def, char **ret, GError **error) {
        g_autofree char *v = NULL;

        if (!g_key_file_has_key(c->keyfile, group, key, NULL)) {
                if (!def)
                        return conf_file_error(c, error, group, NULL, "missing required key %s", key);
                v = g_strdup(def);
        } else {
                g_autoptr(GError) e = NULL;

                /* GLib returns the raw text and reports a bad escape only here */
                v = g_key_file_get_string(c->keyfile, group, key, &e);
                if (!v || e)
                        return conf_file_error(c, error, group, key, "invalid escape sequence");
                g_strchomp(v);  /* GKeyFile keeps trailing blanks */
        }
        g_free(*ret);
        *ret = g_steal_pointer(&v);
        return true;
}

bool conf_file_get_uint64(ConfFile *c, const char *group, const char *key,
                          uint64_t def, uint64_t min, uint64_t max, uint64_t *ret, GError **error) {
        g_autofree char *v = NULL;
        guint64 n;

        if (!g_key_file_has_key(c->keyfile, group, key, NULL)) {
                *ret = def;
                return true;
        }
        v = g_strstrip(g_key_file_get_value(c->keyfile, group, key, NULL));
        if (!(g_str_has_prefix(v, "0x") ? g_ascii_string_to_unsigned(v + 2, 16, min, max, &n, NULL)
                                        : g_ascii_string_to_unsigned(v, 10, min, max, &n, NULL)))
                return conf_file_error(c, error, group, key, "'%s' is not a number in [%" G_GUINT64_FORMAT
                                       ", %" G_GUINT64_FORMAT "]", v, (guint64) min, (guint64) max);
        *ret = n;
        return true;
}

bool conf_file_get_bool(ConfFile *c, const char *group, const char *key, bool def, bool *ret, GError **error) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        g_autofree char *v = NULL;

        if (!g_key_file_has_key(c->keyfile, group, key, NULL)) {
                *ret = def;
                return true;
        }
        v = g_strstrip(g_key_file_get_value(c->keyfile, group, key, NULL));
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
                if (g_ascii_strcasecmp(v, yes[i]) == 0 || g_ascii_strcasecmp(v, no[i]) == 0) {
                        *ret = g_ascii_strcasecmp(v, yes[i]) == 0;
                        return true;
                }
        return conf_file_error(c, error, group, key, "'%s' is not yes or no", v);
}

bool conf_file_get_size(ConfFile *c, const char *group, const char *key,
                        uint64_t def, uint64_t *ret, GError **error) {
        g_autofree char *v = NULL;
        unsigned shift = 0;
        guint64 n;
        size_t len;

        if (!g_key_file_has_key(c->keyfile, group, key, NULL)) {
                *ret = def;
                return true;
        }
        v = g_strstrip(g_key_file_get_value(c->keyfile, group, key, NULL));
        len = strlen(v);
        if (len > 0) {
                const char *suffixes = "KMGT";
                const char *s = strchr(suffixes, g_ascii_toupper(v[len - 1]));

                if (s) {
                        shift = 10 * (unsigned) (s - suffixes + 1);
                        v[--len] = '\0';
                }
        }
        if (!g_ascii_string_to_unsigned(v, 10, 0, G_MAXUINT64 >> shift, &n, NULL))
                return conf_file_error(c, error, group, key, "'%s' is not a size (bytes, or with K, M, G, T)", v);
        *ret = n << shift;
        return true;
}

bool conf_file_check_groups(ConfFile *c, const char *const *allowed, GError **error) {
        g_auto(GStrv) groups = g_key_file_get_groups(c->keyfile, NULL);

        for (char **g = groups; *g; g++)
                if (!g_strv_contains(allowed, *g))
                        return conf_file_error(c, error, *g, NULL, "unknown section");
        return true;
}

bool conf_file_check_keys(ConfFile *c, const char *group, const char *const *allowed, GError **error) {
        g_auto(GStrv) keys = g_key_file_get_keys(c->keyfile, group, NULL, NULL);

        for (char **k = keys; k && *k; k++)
                if (!g_strv_contains(allowed, *k)) {
                        g_autofree char *list = g_strjoinv(", ", (char **) allowed);

                        return conf_file_error(c, error, group, *k, "unknown key (known: %s)", list);
                }
        return true;
}
