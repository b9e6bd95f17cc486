/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conffile.h"
#include "heap.h"

/* The file is read once into a copy cut in place: each line ends where
 * it ended, each key where its name ends, and every group and entry
 * points into it, so that a file of 10,000 sections costs a few large
 * allocations rather than several per line. The syntax is GKeyFile's
 * (whose escapes and lists the getters follow), stricter: duplicate
 * sections or keys, stray lines and locale keys are errors, not merged
 * or ignored, and every error names its line. */

typedef struct ConfEntry {
        const char *key;
        const char *value;      /* raw: leading blanks dropped, escapes kept */
        unsigned line;
} ConfEntry;

typedef struct ConfGroup {
        const char *name;
        unsigned line;
        unsigned first, n;      /* its entries */
} ConfGroup;

struct ConfFile {
        char *filename;
        char *text;
        GArray *groups;         /* ConfGroup, in the order of the file */
        GArray *entries;        /* ConfEntry, a group's together */
        GHashTable *by_name;    /* group name -> index in groups + 1 */
        const char **names;     /* group names, in order, NULL-terminated */
        const ConfGroup *last;  /* the group looked up last: getters ask of one group in a row */
};

G_DEFINE_QUARK(vfiomig-conf-file-error-quark, conf_file_error)

void conf_file_free(ConfFile *c) {
        if (!c)
                return;
        g_array_unref(c->groups);
        g_array_unref(c->entries);
        g_hash_table_destroy(c->by_name);
        g_free(c->names);
        g_free(c->text);
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

static const ConfGroup *find_group(ConfFile *c, const char *group) {
        guint i;

        /* the name conf_file_groups() gave, mostly */
        if (c->last && (c->last->name == group || strcmp(c->last->name, group) == 0))
                return c->last;
        i = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_name, group));
        if (i == 0)
                return NULL;
        return c->last = &g_array_index(c->groups, ConfGroup, i - 1);
}

static const ConfEntry *find_entry(ConfFile *c, const char *group, const char *key) {
        const ConfGroup *g = find_group(c, group);

        for (unsigned i = 0; g && i < g->n; i++) {
                const ConfEntry *e = &g_array_index(c->entries, ConfEntry, g->first + i);

                /* most keys asked for are absent: their first letter tells */
                if (e->key[0] == key[0] && strcmp(e->key, key) == 0)
                        return e;
        }
        return NULL;
}

static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* A section header, cut in place: "[name]" and blanks. */
static bool parse_header(ConfFile *c, char *l, unsigned lineno, GError **error) {
        char *end = strchr(l, ']');
        ConfGroup g = { .name = l + 1, .line = lineno, .first = c->entries->len };
        guint first;

        if (!end || end == l + 1 || end[strspn(end + 1, " \t\r") + 1] != '\0')
                return scan_error(c, error, lineno, "malformed section header: %s", l);
        *end = '\0';
        if (strchr(g.name, '[') || has_control(g.name))
                return scan_error(c, error, lineno, "invalid section name: %s", g.name);
        first = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_name, g.name));
        if (first)
                return scan_error(c, error, lineno, "duplicate section [%s] (first on line %u)", g.name,
                                  g_array_index(c->groups, ConfGroup, first - 1).line);
        g_array_append_val(c->groups, g);
        g_hash_table_insert(c->by_name, (char *) g.name, GUINT_TO_POINTER(c->groups->len));
        return true;
}

/* "key = value", cut in place; keys seen in the current section so far
 * are in seen once there are many. */
static bool parse_entry(ConfFile *c, char *l, unsigned lineno, GHashTable **seen, GError **error) {
        char *eq = strchr(l, '='), *kend;
        ConfGroup *g;
        ConfEntry e = { .line = lineno };

        if (!eq || eq == l)
                return scan_error(c, error, lineno, "expected [section], key=value or # comment, got: %s", l);
        if (c->groups->len == 0)
                return scan_error(c, error, lineno, "key outside of any [section]");
        g = &g_array_index(c->groups, ConfGroup, c->groups->len - 1);
        for (kend = eq; kend > l && g_ascii_isspace(kend[-1]); kend--)
                ;
        e.value = eq + 1;
        while (g_ascii_isspace(*e.value))
                e.value++;
        *kend = '\0';
        e.key = l;
        /* GKeyFile would take key[locale] as another key */
        if (strpbrk(e.key, "[]") || has_control(e.key))
                return scan_error(c, error, lineno, "invalid key name: %s", e.key);
        if (g->n == 16 && !*seen) {
                *seen = g_hash_table_new(g_str_hash, g_str_equal);
                for (unsigned i = 0; i < g->n; i++)
                        g_hash_table_add(*seen, (char *) g_array_index(c->entries, ConfEntry, g->first + i).key);
        }
        for (unsigned i = 0; !*seen && i < g->n; i++) {
                const ConfEntry *o = &g_array_index(c->entries, ConfEntry, g->first + i);

                if (strcmp(o->key, e.key) == 0)
                        return scan_error(c, error, lineno, "duplicate key %s in [%s] (first on line %u)", e.key,
                                          g->name, o->line);
        }
        if (*seen && !g_hash_table_add(*seen, (char *) e.key))
                return scan_error(c, error, lineno, "duplicate key %s in [%s] (first on line %u)", e.key, g->name,
                                  conf_file_line(c, g->name, e.key));
        g_array_append_val(c->entries, e);
        g->n++;
        return true;
}

static bool parse_lines(ConfFile *c, GError **error) {
        g_autoptr(GHashTable) seen = NULL;
        unsigned lineno = 1;

        for (char *p = c->text; *p; lineno++) {
                char *nl = strchr(p, '\n'), *l = p, *end = nl ? nl : p + strlen(p);

                p = nl ? nl + 1 : end;
                /* a line ends at \n, or at \r\n as GKeyFile reads it */
                if (end > l && end[-1] == '\r')
                        end--;
                *end = '\0';
                while (g_ascii_isspace(*l))
                        l++;
                if (*l == '\0' || *l == '#')
                        continue;
                if (*l == '[') {
                        g_clear_pointer(&seen, g_hash_table_unref);
                        if (!parse_header(c, l, lineno, error))
                                return false;
                } else if (!parse_entry(c, l, lineno, &seen, error))
                        return false;
        }
        return true;
}

/* Takes text, which it cuts. */
static ConfFile *parse_text(char *text, const char *filename, GError **error) {
        g_autoptr(ConfFile) c = g_new0(ConfFile, 1);
        guint lines = 1, sections = 1;

        c->filename = g_strdup(filename);
        c->text = text;
        /* room for every line as an entry and every "\n[" as a section:
         * no array grows by copying while a large file is read */
        for (const char *p = text; (p = strchr(p, '\n')); p++) {
                lines++;
                sections += p[1] == '[';
        }
        c->groups = g_array_sized_new(FALSE, FALSE, sizeof(ConfGroup), sections);
        c->entries = g_array_sized_new(FALSE, FALSE, sizeof(ConfEntry), lines);
        heap_populate(c->groups->data, sections * sizeof(ConfGroup));
        heap_populate(c->entries->data, lines * sizeof(ConfEntry));
        c->by_name = g_hash_table_new(g_str_hash, g_str_equal);
        if (!g_utf8_validate(text, -1, NULL)) {
                g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s: not valid UTF-8", filename);
                return NULL;
        }
        if (!parse_lines(c, error))
                return NULL;
        c->names = g_new(const char *, c->groups->len + 1);
        for (guint i = 0; i < c->groups->len; i++)
                c->names[i] = g_array_index(c->groups, ConfGroup, i).name;
        c->names[c->groups->len] = NULL;
        c->last = NULL;         /* the array moved while it grew */
        return g_steal_pointer(&c);
}

ConfFile *conf_file_parse(const char *data, const char *filename, GError **error) {
        return parse_text(g_strdup(data), filename, error);
}

/* g_file_get_contents(), into a buffer populated before the read: a
 * testbed of 10,000 devices is a megabyte, and a page fault per page
 * costs more than the read. Anything unusual goes to GLib, for its
 * errors as before. */
static char *read_file(const char *path, gsize *ret_len, GError **error) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char *data = NULL;
        struct stat st;
        gsize len = 0;

        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < G_MAXINT32) {
                data = g_malloc((gsize) st.st_size + 1);
                heap_populate(data, (gsize) st.st_size + 1);
                while (len < (gsize) st.st_size) {
                        ssize_t n = read(fd, data + len, (gsize) st.st_size - len);

                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                break;
                        len += (gsize) n;
                }
        }
        if (fd >= 0)
                close(fd);
        if (!data || len < (gsize) st.st_size) {
                g_free(data);
                return g_file_get_contents(path, &data, ret_len, error) ? data : NULL;
        }
        data[len] = '\0';
        *ret_len = len;
        return data;
}

ConfFile *conf_file_load(const char *path, GError **error) {
        g_autofree char *data = NULL;
        gsize len;

        data = read_file(path, &len, error);
        if (!data)
                return NULL;
        if (strlen(data) != len) {
                g_set_error(error, CONF_FILE_ERROR, EINVAL, "%s: contains a NUL byte", path);
                return NULL;
        }
        return parse_text(g_steal_pointer(&data), path, error);
}

const char *conf_file_name(ConfFile *c) {
        return c->filename;
}

const char *const *conf_file_groups(ConfFile *c) {
        return c->names;
}

bool conf_file_has_group(ConfFile *c, const char *group) {
        return find_group(c, group) != NULL;
}

bool conf_file_has_key(ConfFile *c, const char *group, const char *key) {
        return find_entry(c, group, key) != NULL;
}

char **conf_file_get_keys(ConfFile *c, const char *group) {
        const ConfGroup *g = find_group(c, group);
        char **keys;

        if (!g)
                return NULL;
        keys = g_new(char *, g->n + 1);
        for (unsigned i = 0; i < g->n; i++)
                keys[i] = g_strdup(g_array_index(c->entries, ConfEntry, g->first + i).key);
        keys[g->n] = NULL;
        return keys;
}

unsigned conf_file_line(ConfFile *c, const char *group, const char *key) {
        const ConfGroup *g;
        const ConfEntry *e;

        if (!key)
                return (g = find_group(c, group)) ? g->line : 0;
        return (e = find_entry(c, group, key)) ? e->line : 0;
}

/* A value as GKeyFile reads it: \s, \n, \t, \r and \\ are escapes,
 * anything else after a backslash is an error. With sep, a list: split
 * where sep stands unescaped, a last empty element dropped. */
static bool unescape(const char *raw, char sep, GPtrArray *out) {
        g_autoptr(GString) s = g_string_sized_new(strlen(raw));

        for (const char *p = raw; *p; p++) {
                if (sep && *p == sep) {
                        g_ptr_array_add(out, g_strdup(s->str));
                        g_string_truncate(s, 0);
                        continue;
                }
                if (*p != '\\') {
                        g_string_append_c(s, *p);
                        continue;
                }
                switch (*++p) {
                case 's': g_string_append_c(s, ' '); break;
                case 'n': g_string_append_c(s, '\n'); break;
                case 't': g_string_append_c(s, '\t'); break;
                case 'r': g_string_append_c(s, '\r'); break;
                case '\\': g_string_append_c(s, '\\'); break;
                default:
                        if (!sep || *p != sep)
                                return false;
                        g_string_append_c(s, sep);
                }
        }
        if (!sep || s->len > 0)
                g_ptr_array_add(out, g_string_free(g_steal_pointer(&s), FALSE));
        return true;
}

bool conf_file_get_string_view(ConfFile *c, const char *group, const char *key, const char *def,
                               const char **ret, char **ret_copy, GError **error) {
        const ConfEntry *e = find_entry(c, group, key);
        size_t len = e ? strlen(e->value) : 0;

        *ret_copy = NULL;
        if (!e && def) {
                *ret = def;
                return true;
        }
        /* as the file has it: no escapes, no blanks the getter would drop */
        if (e && !strchr(e->value, '\\') && (len == 0 || !g_ascii_isspace(e->value[len - 1]))) {
                *ret = e->value;
                return true;
        }
        if (!conf_file_get_string(c, group, key, def, ret_copy, error))
                return false;
        *ret = *ret_copy;
        return true;
}

char **conf_file_get_string_list(ConfFile *c, const char *group, const char *key, GError **error) {
        const ConfEntry *e = find_entry(c, group, key);
        g_autoptr(GPtrArray) items = NULL;

        if (!e)
                return NULL;
        items = g_ptr_array_new_with_free_func(g_free);
        if (!unescape(e->value, ';', items)) {
                conf_file_error(c, error, group, key, "invalid escape sequence");
                return NULL;
        }
        g_ptr_array_set_free_func(items, NULL);
        g_ptr_array_add(items, NULL);
        return (char **) g_ptr_array_free(g_steal_pointer(&items), FALSE);
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
        const ConfEntry *e = find_entry(c, group, key);
        g_autofree char *v = NULL;

        if (!e) {
                if (!def)
                        return conf_file_error(c, error, group, NULL, "missing required key %s", key);
                v = g_strdup(def);
        } else if (!strchr(e->value, '\\'))
                v = g_strchomp(g_strdup(e->value));     /* blanks at the end are no part of it */
        else {
                g_autoptr(GPtrArray) one = g_ptr_array_new_with_free_func(g_free);

                if (!unescape(e->value, 0, one))
                        return conf_file_error(c, error, group, key, "invalid escape sequence");
                v = g_strchomp(g_ptr_array_steal_index(one, 0));
        }
        g_free(*ret);
        *ret = g_steal_pointer(&v);
        return true;
}

/* The raw value without blanks around it, or NULL. */
static char *get_value(ConfFile *c, const char *group, const char *key) {
        const ConfEntry *e = find_entry(c, group, key);

        return e ? g_strstrip(g_strdup(e->value)) : NULL;
}

bool conf_file_get_uint64(ConfFile *c, const char *group, const char *key,
                          uint64_t def, uint64_t min, uint64_t max, uint64_t *ret, GError **error) {
        g_autofree char *v = get_value(c, group, key);
        guint64 n;

        if (!v) {
                *ret = def;
                return true;
        }
        if (!(g_str_has_prefix(v, "0x") ? g_ascii_string_to_unsigned(v + 2, 16, min, max, &n, NULL)
                                        : g_ascii_string_to_unsigned(v, 10, min, max, &n, NULL)))
                return conf_file_error(c, error, group, key, "'%s' is not a number in [%" G_GUINT64_FORMAT
                                       ", %" G_GUINT64_FORMAT "]", v, (guint64) min, (guint64) max);
        *ret = n;
        return true;
}

bool conf_file_get_bool(ConfFile *c, const char *group, const char *key, bool def, bool *ret, GError **error) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        g_autofree char *v = get_value(c, group, key);

        if (!v) {
                *ret = def;
                return true;
        }
        for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
                if (g_ascii_strcasecmp(v, yes[i]) == 0 || g_ascii_strcasecmp(v, no[i]) == 0) {
                        *ret = g_ascii_strcasecmp(v, yes[i]) == 0;
                        return true;
                }
        return conf_file_error(c, error, group, key, "'%s' is not yes or no", v);
}

bool conf_file_get_size(ConfFile *c, const char *group, const char *key,
                        uint64_t def, uint64_t *ret, GError **error) {
        g_autofree char *v = get_value(c, group, key);
        unsigned shift = 0;
        guint64 n;
        size_t len;

        if (!v) {
                *ret = def;
                return true;
        }
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
        for (const char *const *g = c->names; *g; g++)
                if (!g_strv_contains(allowed, *g))
                        return conf_file_error(c, error, *g, NULL, "unknown section");
        return true;
}

bool conf_file_check_keys(ConfFile *c, const char *group, const char *const *allowed, GError **error) {
        const ConfGroup *g = find_group(c, group);

        for (unsigned i = 0; g && i < g->n; i++) {
                const char *key = g_array_index(c->entries, ConfEntry, g->first + i).key;

                if (!g_strv_contains(allowed, key)) {
                        g_autofree char *list = g_strjoinv(", ", (char **) allowed);

                        return conf_file_error(c, error, group, key, "unknown key (known: %s)", list);
                }
        }
        return true;
}
