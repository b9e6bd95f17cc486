/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "conffile.h"
#include "log.h"
#include "names.h"
#include "compat/rules.h"

struct Rules {
        GPtrArray *rules;       /* Rule, in the order they apply */
};

static void rule_free(Rule *r) {
        if (!r)
                return;
        g_free(r->name);
        g_free(r->driver);
        g_free(r->mdev_type);
        g_free(r->vendor_id);
        g_free(r->device_id);
        g_free(r->subsystem_vendor_id);
        g_free(r->subsystem_device_id);
        g_free(r->version);
        g_free(r->type);
        g_free(r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Rule, rule_free);

Rules *rules_new(void) {
        Rules *r = g_new0(Rules, 1);

        r->rules = g_ptr_array_new_with_free_func((GDestroyNotify) rule_free);
        return r;
}

void rules_free(Rules *r) {
        if (!r)
                return;
        g_ptr_array_unref(r->rules);
        g_free(r);
}

unsigned rules_count(const Rules *r) {
        return r->rules->len;
}

static const struct {
        const char *key;
        size_t offset;
        bool hex;               /* PCI IDs: 0x15b3 == 15B3 */
} match_keys[] = {
        { "Driver", G_STRUCT_OFFSET(Rule, driver), false },
        { "MdevType", G_STRUCT_OFFSET(Rule, mdev_type), false },
        { "Vendor", G_STRUCT_OFFSET(Rule, vendor_id), true },
        { "Device", G_STRUCT_OFFSET(Rule, device_id), true },
        { "SubsystemVendor", G_STRUCT_OFFSET(Rule, subsystem_vendor_id), true },
        { "SubsystemDevice", G_STRUCT_OFFSET(Rule, subsystem_device_id), true },
};

static const char *const rule_keys[] = {
        "Driver", "MdevType", "Vendor", "Device", "SubsystemVendor", "SubsystemDevice",
        "Version", "Compare", "Type", "IgnoreFacets", NULL
};

/* PCI IDs as the kernel prints them: 0x%04x */
static char *normalize_id(const char *s) {
        const char *hex = g_str_has_prefix(s, "0x") || g_str_has_prefix(s, "0X") ? s + 2 : s;
        guint64 v;

        if (!*hex || !g_ascii_string_to_unsigned(hex, 16, 0, 0xffff, &v, NULL))
                return NULL;
        return g_strdup_printf("0x%04" G_GINT64_MODIFIER "x", v);
}

/* IgnoreFacets=iommu: the operator knows that a facet does not matter
 * for these devices. */
static bool get_ignore_facets(ConfFile *c, const char *group, unsigned *ret, GError **error) {
        g_auto(GStrv) names = conf_file_get_string_list(c, group, "IgnoreFacets", NULL);

        *ret = 0;
        for (char **n = names; n && *n; n++) {
                g_strstrip(*n);
                if (g_str_equal(*n, "iommu"))
                        *ret |= RULE_FACET_IOMMU;
                else
                        return conf_file_error(c, error, group, "IgnoreFacets", "'%s' is not a facet (known: iommu)",
                                               *n);
        }
        if (names && !*ret)
                return conf_file_error(c, error, group, "IgnoreFacets", "empty");
        return true;
}

static bool parse_rule(ConfFile *c, const char *group, Rule **ret, GError **error) {
        g_autoptr(Rule) rule = g_new0(Rule, 1);
        g_autofree char *compare = NULL;
        bool any = false;

        if (!conf_file_check_keys(c, group, rule_keys, error))
                return false;
        rule->name = g_strdup_printf("%s:%s", conf_file_name(c), group);
        for (size_t i = 0; i < G_N_ELEMENTS(match_keys); i++) {
                char **field = G_STRUCT_MEMBER_P(rule, match_keys[i].offset);

                if (!conf_file_has_key(c, group, match_keys[i].key))
                        continue;
                if (!conf_file_get_string(c, group, match_keys[i].key, "", field, error))
                        return false;
                if (match_keys[i].hex) {
                        char *n = normalize_id(*field);

                        if (!n)
                                return conf_file_error(c, error, group, match_keys[i].key,
                                                       "'%s' is not a 16-bit hex ID", *field);
                        g_free(*field);
                        *field = n;
                }
                if (!**field)
                        return conf_file_error(c, error, group, match_keys[i].key, "empty");
                any = true;
        }
        if (!any)
                return conf_file_error(c, error, group, NULL, "a rule needs at least one of Driver, MdevType, "
                                       "Vendor, Device, SubsystemVendor, SubsystemDevice");
        if (!get_ignore_facets(c, group, &rule->ignore_facets, error) ||
            !conf_file_get_string(c, group, "Version", rule->ignore_facets ? "" : NULL, &rule->version, error) ||
            !conf_file_get_string(c, group, "Type", "", &rule->type, error) ||
            !conf_file_get_string(c, group, "Compare", "exact", &compare, error))
                return false;
        /* the map keys classes by these: printable ASCII only */
        if ((conf_file_has_key(c, group, "Version") || !rule->ignore_facets) &&
            !vendor_string_valid(rule->version))
                return conf_file_error(c, error, group, "Version", "must be 1 to 4096 printable ASCII characters");
        if (*rule->type && !vendor_string_valid(rule->type))
                return conf_file_error(c, error, group, "Type", "must be 1 to 4096 printable ASCII characters");
        if (g_str_equal(compare, "exact"))
                rule->compare = RULE_COMPARE_EXACT;
        else if (g_str_equal(compare, "same-major"))
                rule->compare = RULE_COMPARE_SAME_MAJOR;
        else
                return conf_file_error(c, error, group, "Compare", "'%s' is not exact or same-major", compare);
        *ret = g_steal_pointer(&rule);
        return true;
}

bool rules_add_data(Rules *r, const char *data, const char *filename, GError **error) {
        g_autoptr(ConfFile) c = conf_file_parse(data, filename, error);
        g_autoptr(GPtrArray) parsed = g_ptr_array_new_with_free_func((GDestroyNotify) rule_free);
        if (!c)
                return false;
        for (const char *const *g = conf_file_groups(c); *g; g++) {
                Rule *rule = NULL;

                if (!g_str_has_prefix(*g, "Rule ") || !(*g)[5])
                        return conf_file_error(c, error, *g, NULL, "unknown section (expected [Rule NAME])");
                if (!parse_rule(c, *g, &rule, error))
                        return false;
                g_ptr_array_add(parsed, rule);
        }
        for (guint i = 0; i < parsed->len; i++)
                g_ptr_array_add(r->rules, g_steal_pointer(&parsed->pdata[i]));
        return true;
}

/* name -> path, later directories replacing earlier ones */
static GHashTable *collect_files(const char *const *dirs) {
        GHashTable *files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

        for (const char *const *d = dirs; d && *d; d++) {
                g_autoptr(GDir) dir = g_dir_open(*d, 0, NULL);
                const char *n;

                while (dir && (n = g_dir_read_name(dir)))
                        if (g_str_has_suffix(n, ".rules") && n[0] != '.')
                                g_hash_table_replace(files, g_strdup(n), g_build_filename(*d, n, NULL));
        }
        return files;
}

unsigned rules_load_dirs(Rules *r, const char *const *dirs) {
        g_autoptr(GHashTable) files = collect_files(dirs);
        g_autoptr(GList) names = g_list_sort(g_hash_table_get_keys(files), (GCompareFunc) strcmp);
        unsigned loaded = 0;

        for (GList *l = names; l; l = l->next) {
                const char *path = g_hash_table_lookup(files, l->data);
                g_autofree char *data = NULL;
                g_autoptr(GError) error = NULL;
                gsize len;

                if (!g_file_get_contents(path, &data, &len, &error) || strlen(data) != len ||
                    !rules_add_data(r, data, path, &error)) {
                        log_warning("Ignoring rules file %s: %s", path, error ? error->message : "contains NUL");
                        continue;
                }
                loaded++;
        }
        return loaded;
}

static bool field_matches(const char *want, const char *have, bool hex) {
        g_autofree char *n = NULL;

        if (!want)
                return true;
        if (!hex)
                return g_strcmp0(want, have) == 0;
        n = have ? normalize_id(have) : NULL;
        return n && g_str_equal(want, n);
}

static const Rule *match(const Rules *r, const char *driver, const char *mdev_type, const Device *d) {
        for (guint i = 0; i < r->rules->len; i++) {
                const Rule *rule = r->rules->pdata[i];

                if (field_matches(rule->driver, driver, false) &&
                    field_matches(rule->mdev_type, mdev_type, false) &&
                    field_matches(rule->vendor_id, d ? d->vendor_id : NULL, true) &&
                    field_matches(rule->device_id, d ? d->device_id : NULL, true) &&
                    field_matches(rule->subsystem_vendor_id, d ? d->subsystem_vendor_id : NULL, true) &&
                    field_matches(rule->subsystem_device_id, d ? d->subsystem_device_id : NULL, true))
                        return rule;
        }
        return NULL;
}

char *rules_mdev_driver(const char *type_id, const char *fallback) {
        const char *dash = strrchr(type_id, '-');

        return dash ? g_strndup(type_id, dash - type_id) : g_strdup(fallback);
}

const Rule *rules_match(const Rules *r, const Device *d) {
        g_autofree char *driver = NULL;

        if (r->rules->len == 0)
                return NULL;    /* most hosts: no rule, and nothing to work out for one */
        if (d->kind != DEVICE_KIND_MDEV)
                return match(r, d->driver, NULL, d);
        /* as for its type: an mdev and its type must not part ways */
        driver = rules_mdev_driver(d->mdev_type, d->driver);
        return match(r, driver, d->mdev_type, d);
}

const Rule *rules_match_type(const Rules *r, const char *driver, const char *mdev_type) {
        return match(r, driver, mdev_type, NULL);
}

/* "28.39.1010" -> "28"; a version without a dot is all major */
static char *major(const char *v) {
        const char *dot = strchr(v, '.');

        return dot ? g_strndup(v, dot - v) : g_strdup(v);
}

bool rules_versions_compatible(RuleCompare cmp, const char *a, const char *b) {
        g_autofree char *ma = NULL, *mb = NULL;

        if (cmp == RULE_COMPARE_EXACT)
                return g_str_equal(a, b);
        ma = major(a);
        mb = major(b);
        return g_str_equal(ma, mb);
}
