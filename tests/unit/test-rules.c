/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "registry.h"
#include "compat/rules.h"
#include "unit-test.h"

/* ---- helpers ---- */

static Device *pci(const char *name, const char *driver, const char *vendor, const char *device,
                   const char *subvendor, const char *subdevice) {
        Device *d = device_new(name, DEVICE_KIND_PCI);

#define SET(f, v) device_set_string(&d->f, v);
        SET(driver, driver);
        SET(vendor_id, vendor);
        SET(device_id, device);
        SET(subsystem_vendor_id, subvendor);
        SET(subsystem_device_id, subdevice);
#undef SET
        return d;
}

static Device *mdev(const char *name, const char *driver, const char *parent, const char *type) {
        Device *d = device_new(name, DEVICE_KIND_MDEV);

        device_set_string(&d->driver, driver);
        device_set_string(&d->parent, parent);
        device_set_string(&d->mdev_type, type);
        return d;
}

static Rules *parse_ok(const char *text, const char *filename) {
        Rules *r = rules_new();
        g_autoptr(GError) error = NULL;

        if (!rules_add_data(r, text, filename, &error))
                g_error("%s: expected to parse, got: %s\n--- text ---\n%s", filename,
                        error ? error->message : "(no error set)", text);
        g_assert_no_error(error);
        return r;
}

static const char *rule_name(const Rule *rule) {
        return rule ? rule->name : "(no rule)";
}

/* ---- good files ---- */

static const char full[] =
        "# every key\n"
        "[Rule full]\n"
        "Driver=mlx5_vfio_pci\n"
        "MdevType=mlx5_vfio_pci-x\n"
        "Vendor=0x15B3\n"
        "Device=101e\n"
        "SubsystemVendor=0X15b3\n"
        "SubsystemDevice=47\n"
        "Version=28.39.1010\n"
        "Compare=same-major\n"
        "Type=mlx5-cx7\n"
        "\n"
        "[Rule defaults]\n"
        "Driver=other\n"
        "Version=1\n";

/* IgnoreFacets= alone is a rule: the device keeps its own version. */
static void test_ignore_facets(void) {
        g_autoptr(Rules) r = parse_ok("[Rule relax]\nDriver=vfio-pci\nIgnoreFacets=iommu\n"
                                      "[Rule both]\nDriver=mtty\nVersion=2\nIgnoreFacets= iommu ;\n", "f.rules");
        const Rule *rule;

        rule = rules_match_type(r, "vfio-pci", "x");
        g_assert_nonnull(rule);
        g_assert_cmpstr(rule->version, ==, "");
        g_assert_cmpuint(rule->ignore_facets, ==, RULE_FACET_IOMMU);
        rule = rules_match_type(r, "mtty", "mtty-1");
        g_assert_nonnull(rule);
        g_assert_cmpstr(rule->version, ==, "2");
        g_assert_cmpuint(rule->ignore_facets, ==, RULE_FACET_IOMMU);
}

static void test_parse_good(void) {
        g_autoptr(Rules) r = parse_ok(full, "t.rules");
        g_autoptr(Device) d = NULL;
        const Rule *rule;

        g_assert_cmpuint(rules_count(r), ==, 2);

        /* read back through a device that matches every key of [Rule full] */
        d = mdev("00000000-0000-0000-0000-000000000001", "mlx5_vfio_pci", "p", "mlx5_vfio_pci-x");
        device_set_string(&d->vendor_id, "0x15b3");
        device_set_string(&d->device_id, "0x101e");
        device_set_string(&d->subsystem_vendor_id, "0x15b3");
        device_set_string(&d->subsystem_device_id, "0x0047");
        rule = rules_match(r, d);
        g_assert_nonnull(rule);
        g_assert_cmpstr(rule->name, ==, "t.rules:Rule full");
        g_assert_cmpstr(rule->driver, ==, "mlx5_vfio_pci");
        g_assert_cmpstr(rule->mdev_type, ==, "mlx5_vfio_pci-x");
        /* IDs normalized to the kernel's 0x%04x */
        g_assert_cmpstr(rule->vendor_id, ==, "0x15b3");
        g_assert_cmpstr(rule->device_id, ==, "0x101e");
        g_assert_cmpstr(rule->subsystem_vendor_id, ==, "0x15b3");
        g_assert_cmpstr(rule->subsystem_device_id, ==, "0x0047");
        g_assert_cmpstr(rule->version, ==, "28.39.1010");
        g_assert_cmpint(rule->compare, ==, RULE_COMPARE_SAME_MAJOR);
        g_assert_cmpstr(rule->type, ==, "mlx5-cx7");

        /* defaults: Compare=exact, Type empty, absent keys NULL */
        rule = rules_match_type(r, "other", "anything");
        g_assert_nonnull(rule);
        g_assert_cmpstr(rule->name, ==, "t.rules:Rule defaults");
        g_assert_cmpint(rule->compare, ==, RULE_COMPARE_EXACT);
        g_assert_cmpstr(rule->type, ==, "");
        g_assert_cmpstr(rule->version, ==, "1");
        g_assert_null(rule->mdev_type);
        g_assert_null(rule->vendor_id);
}

/* Each match key on its own restricts the match: a device equal in every
 * field matches, one differing in just that field does not. */
static void test_each_match_key(void) {
        static const struct {
                const char *key, *value;
                const char *field;      /* which Device field to spoil */
        } keys[] = {
                { "Driver", "drv", "driver" },
                { "Vendor", "0x1234", "vendor_id" },
                { "Device", "0x5678", "device_id" },
                { "SubsystemVendor", "0x9abc", "subsystem_vendor_id" },
                { "SubsystemDevice", "0xdef0", "subsystem_device_id" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
                g_autofree char *text = g_strdup_printf("[Rule k]\n%s=%s\nVersion=1\n", keys[i].key, keys[i].value);
                g_autoptr(Rules) r = parse_ok(text, "k.rules");
                g_autoptr(Device) good = pci("0000:01:00.0", "drv", "0x1234", "0x5678", "0x9abc", "0xdef0");
                g_autoptr(Device) bad = device_copy(good);
                const char **f = NULL;

                if (g_str_equal(keys[i].field, "driver"))
                        f = &bad->driver;
                else if (g_str_equal(keys[i].field, "vendor_id"))
                        f = &bad->vendor_id;
                else if (g_str_equal(keys[i].field, "device_id"))
                        f = &bad->device_id;
                else if (g_str_equal(keys[i].field, "subsystem_vendor_id"))
                        f = &bad->subsystem_vendor_id;
                else
                        f = &bad->subsystem_device_id;
                device_set_string(f, g_str_equal(keys[i].field, "driver") ? "other-driver" : "0x0001");

                if (!rules_match(r, good))
                        fail("%s=%s: does not match a device with that value", keys[i].key,
                             keys[i].value);
                if (rules_match(r, bad))
                        fail("%s=%s: matches a device whose %s is %s", keys[i].key, keys[i].value,
                             keys[i].field, *f);
        }

        /* several keys: all must match */
        {
                g_autoptr(Rules) r = parse_ok("[Rule two]\nDriver=drv\nVendor=0x1234\nVersion=1\n", "k.rules");
                g_autoptr(Device) both = pci("0000:01:00.0", "drv", "0x1234", "0x0", "0x0", "0x0");
                g_autoptr(Device) driver_only = pci("0000:01:00.0", "drv", "0x4321", "0x0", "0x0", "0x0");
                g_autoptr(Device) vendor_only = pci("0000:01:00.0", "vfio-pci", "0x1234", "0x0", "0x0", "0x0");

                g_assert_nonnull(rules_match(r, both));
                g_assert_null(rules_match(r, driver_only));
                g_assert_null(rules_match(r, vendor_only));
        }
}

static void test_hex_ids(void) {
        static const char *const forms[] = { "0x15b3", "0x15B3", "0X15b3", "15b3", "15B3", "0x015b3" };
        static const char *const other[] = { "0x15b4", "15b", "0x1" };
        g_autoptr(Device) d = pci("0000:01:00.0", "vfio-pci", "0x15b3", "0x0001", "0x0000", "0x0000");

        for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
                g_autofree char *text = g_strdup_printf("[Rule h]\nVendor=%s\nVersion=1\n", forms[i]);
                g_autoptr(Rules) r = parse_ok(text, "h.rules");
                const Rule *rule = rules_match(r, d);

                if (!rule)
                        fail("Vendor=%s does not match a device's \"0x15b3\"", forms[i]);
                else if (g_strcmp0(rule->vendor_id, "0x15b3") != 0)
                        fail("Vendor=%s normalized to %s, want 0x15b3", forms[i], rule->vendor_id);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(other); i++) {
                g_autofree char *text = g_strdup_printf("[Rule h]\nVendor=%s\nVersion=1\n", other[i]);
                g_autoptr(Rules) r = parse_ok(text, "h.rules");

                if (rules_match(r, d))
                        fail("Vendor=%s matches a device's \"0x15b3\"", other[i]);
        }

        /* short forms on either side: Device=1 is the kernel's 0x0001 */
        {
                g_autoptr(Rules) r = parse_ok("[Rule h]\nDevice=1\nVersion=1\n", "h.rules");

                g_assert_nonnull(rules_match(r, d));
        }
        /* a device whose ID is missing or unparsable never matches an ID rule */
        {
                g_autoptr(Rules) r = parse_ok("[Rule h]\nVendor=0x15b3\nVersion=1\n", "h.rules");
                g_autoptr(Device) blank = pci("0000:01:00.0", "vfio-pci", "", "", "", "");
                g_autoptr(Device) junk = pci("0000:01:00.0", "vfio-pci", "zz", "", "", "");

                g_assert_null(rules_match(r, blank));
                g_assert_null(rules_match(r, junk));
        }
}

static void test_first_match_in_file(void) {
        g_autoptr(Rules) r = parse_ok("[Rule specific]\nDriver=drv\nDevice=0x1\nVersion=2\n"
                                      "[Rule general]\nDriver=drv\nVersion=1\n"
                                      "[Rule late-specific]\nDriver=drv\nDevice=0x2\nVersion=3\n",
                                      "f.rules");
        g_autoptr(Device) d1 = pci("a", "drv", "0x1", "0x1", "0x0", "0x0");
        g_autoptr(Device) d2 = pci("b", "drv", "0x1", "0x2", "0x0", "0x0");

        g_assert_cmpuint(rules_count(r), ==, 3);
        g_assert_cmpstr(rule_name(rules_match(r, d1)), ==, "f.rules:Rule specific");
        /* [Rule general] comes first and wins, though a later rule is more specific */
        g_assert_cmpstr(rule_name(rules_match(r, d2)), ==, "f.rules:Rule general");
}

static void test_mdev_vs_pci(void) {
        g_autoptr(Rules) r = parse_ok("[Rule mtty2]\nDriver=mtty\nMdevType=mtty-2\nVersion=2\n"
                                      "[Rule any-mtty]\nDriver=mtty\nVersion=1\n",
                                      "m.rules");
        g_autoptr(Device) m2 = mdev("00000000-0000-0000-0000-000000000001", "mtty", "mtty", "mtty-2");
        g_autoptr(Device) m1 = mdev("00000000-0000-0000-0000-000000000002", "mtty", "mtty", "mtty-1");
        /* an mdev matches Driver= by its type id, like its type: its own
         * driver may differ from the one the type id names */
        g_autoptr(Device) own_driver = mdev("00000000-0000-0000-0000-000000000003", "vfio_mdev", "mtty", "mtty-2");
        g_autoptr(Device) other = mdev("00000000-0000-0000-0000-000000000004", "mtty", "mtty", "other-2");
        /* a PCI function does not have an mdev type, whatever the field holds */
        g_autoptr(Device) p = pci("0000:01:00.0", "mtty", "0x1", "0x1", "0x0", "0x0");

        device_set_string(&p->mdev_type, "mtty-2");
        g_assert_cmpstr(rule_name(rules_match(r, m2)), ==, "m.rules:Rule mtty2");
        g_assert_cmpstr(rule_name(rules_match(r, m1)), ==, "m.rules:Rule any-mtty");
        g_assert_cmpstr(rule_name(rules_match(r, own_driver)), ==, "m.rules:Rule mtty2");
        g_assert_null(rules_match(r, other));
        g_assert_cmpstr(rule_name(rules_match(r, p)), ==, "m.rules:Rule any-mtty");

        /* an ID rule never matches an mdev (mdevs have no PCI IDs) */
        {
                g_autoptr(Rules) ids = parse_ok("[Rule ids]\nVendor=0x1\nVersion=1\n", "i.rules");

                g_assert_null(rules_match(ids, m2));
                g_assert_nonnull(rules_match(ids, p));
        }
}

static void test_match_type(void) {
        g_autoptr(Rules) r = parse_ok("[Rule ids]\nDriver=mtty\nVendor=0x1\nVersion=9\n"
                                      "[Rule mtty2]\nDriver=mtty\nMdevType=mtty-2\nVersion=2\nType=mt2\n"
                                      "[Rule type-only]\nMdevType=mtty-3\nVersion=3\n",
                                      "m.rules");
        const Rule *rule;

        rule = rules_match_type(r, "mtty", "mtty-2");
        g_assert_cmpstr(rule_name(rule), ==, "m.rules:Rule mtty2");     /* an ID rule cannot match a type */
        g_assert_cmpstr(rule->type, ==, "mt2");
        g_assert_null(rules_match_type(r, "mtty", "mtty-1"));
        g_assert_null(rules_match_type(r, "other", "mtty-2"));
        g_assert_cmpstr(rule_name(rules_match_type(r, "whatever", "mtty-3")), ==, "m.rules:Rule type-only");
        g_assert_cmpstr(rule_name(rules_match_type(r, "", "mtty-3")), ==, "m.rules:Rule type-only");
}

/* An mdev and its type always get the same rule, whatever driver the mdev
 * has; a type id without "-" falls back to the mdev's driver or the
 * parent's. */
static void test_mdev_matches_like_its_type(void) {
        g_autoptr(Rules) r = parse_ok("[Rule nv]\nDriver=nvidia\nVersion=1\n"
                                      "[Rule plain]\nDriver=plaindrv\nVersion=2\n"
                                      "[Rule gvt]\nDriver=i915\nMdevType=i915-GVTg_V5_4\nVersion=3\n",
                                      "t.rules");
        static const struct {
                const char *mdev_driver, *parent_driver, *type_id, *want;
        } cases[] = {
                { "nvidia-vgpu-vfio", "nvidia", "nvidia-35", "t.rules:Rule nv" },
                { "vfio_mdev", "nvidia", "nvidia-35", "t.rules:Rule nv" },
                { "i915", "i915", "i915-GVTg_V5_4", "t.rules:Rule gvt" },
                { "vfio_mdev", "i915", "i915-GVTg_V5_4", "t.rules:Rule gvt" },
                { "plaindrv", "plaindrv", "nodash", "t.rules:Rule plain" },
                { "vfio_mdev", "vfio_mdev", "plaindrv-x", "t.rules:Rule plain" },
                { "nvidia", "nvidia", "other-35", NULL },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(Device) d = mdev("00000000-0000-0000-0000-000000000001", cases[i].mdev_driver, "parent",
                                           cases[i].type_id);
                g_autofree char *type_driver = rules_mdev_driver(cases[i].type_id, cases[i].parent_driver);
                const char *as_device = rule_name(rules_match(r, d));
                const char *as_type = rule_name(rules_match_type(r, type_driver, cases[i].type_id));
                const char *want = rule_name(NULL);

                if (cases[i].want)
                        want = cases[i].want;
                if (!g_str_equal(as_device, want) || !g_str_equal(as_type, want))
                        fail("mdev of %s (driver %s, parent's %s): %s, its type %s; want %s", cases[i].type_id,
                             cases[i].mdev_driver, cases[i].parent_driver, as_device, as_type, want);
        }
}

static void test_versions(void) {
        static const struct {
                RuleCompare cmp;
                const char *a, *b;
                bool want;
        } cases[] = {
                { RULE_COMPARE_EXACT, "28.39.1010", "28.39.1010", true },
                { RULE_COMPARE_EXACT, "28.39.1010", "28.39.1011", false },
                { RULE_COMPARE_EXACT, "28.39", "28.39.0", false },
                { RULE_COMPARE_EXACT, "1", "1", true },
                { RULE_COMPARE_EXACT, "a", "A", false },
                { RULE_COMPARE_SAME_MAJOR, "28.39.1010", "28.40", true },
                { RULE_COMPARE_SAME_MAJOR, "28.40", "28.39.1010", true },
                { RULE_COMPARE_SAME_MAJOR, "28", "28.1", true },
                { RULE_COMPARE_SAME_MAJOR, "28.1", "28", true },
                { RULE_COMPARE_SAME_MAJOR, "28", "28", true },
                { RULE_COMPARE_SAME_MAJOR, "29.0", "28.0", false },
                { RULE_COMPARE_SAME_MAJOR, "28.0", "29.0", false },
                { RULE_COMPARE_SAME_MAJOR, "2.0", "28.0", false },      /* a prefix is not a major */
                { RULE_COMPARE_SAME_MAJOR, "28", "280", false },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                bool got = rules_versions_compatible(cases[i].cmp, cases[i].a, cases[i].b);

                if (got != cases[i].want)
                        fail("%s: %s -> %s: got %s, want %s",
                             cases[i].cmp == RULE_COMPARE_EXACT ? "exact" : "same-major", cases[i].a,
                             cases[i].b, got ? "compatible" : "incompatible",
                             cases[i].want ? "compatible" : "incompatible");
        }
}

/* ---- malformed files ---- */

/* three lines, so the broken part of each case starts on line 4 */
#define GOOD "[Rule ok]\nDriver=good\nVersion=1\n"

typedef struct MalformedCase {
        const char *what, *text;
        unsigned line;
        const char *phrase;
} MalformedCase;

/* Each case must fail with "t.rules:LINE:" and the phrase, and add nothing. */
static void check_malformed(const MalformedCase *c, size_t n) {
        for (size_t i = 0; i < n; i++) {
                g_autoptr(Rules) r = parse_ok("[Rule before]\nDriver=before\nVersion=0\n", "before.rules");
                g_autoptr(GError) error = NULL;
                g_autofree char *prefix = g_strdup_printf("t.rules:%u:", c[i].line);
                bool ok = rules_add_data(r, c[i].text, "t.rules", &error);

                g_test_message("%s: %s", c[i].what, error ? error->message : "(no error)");
                if (ok || !error) {
                        fail("%s: accepted (ok=%d, error=%s)\n--- text ---\n%s", c[i].what, ok,
                             error ? error->message : "NULL", c[i].text);
                        continue;
                }
                if (!g_str_has_prefix(error->message, prefix))
                        fail("%s: error does not start with \"%s\": %s", c[i].what, prefix,
                             error->message);
                if (!strstr(error->message, c[i].phrase))
                        fail("%s: error does not say \"%s\": %s", c[i].what, c[i].phrase,
                             error->message);
                /* nothing of the broken file was added, not even [Rule ok] before the error */
                if (rules_count(r) != 1)
                        fail("%s: %u rules after the failed file (want just the 1 from before)",
                             c[i].what, rules_count(r));
                if (rules_match_type(r, "good", "x"))
                        fail("%s: [Rule ok] of the broken file was added", c[i].what);
        }
}

static void test_malformed(void) {
        g_autofree char *long_version = g_strnfill(4097, '1');
        g_autofree char *long_text = g_strdup_printf(GOOD "[Rule long]\nDriver=x\nVersion=%s\n", long_version);
        const MalformedCase cases[] = {
                { "unknown key", GOOD "[Rule a]\nDriver=x\nVersion=1\nColour=red\n", 7, "unknown key" },
                { "no match key", GOOD "[Rule a]\nVersion=1\nCompare=exact\n", 4, "at least one of" },
                { "missing Version", GOOD "[Rule a]\nDriver=x\n", 4, "missing required key Version" },
                { "empty Version", GOOD "[Rule a]\nDriver=x\nVersion=\n", 6, "1 to 4096" },
                { "too long Version", long_text, 6, "1 to 4096" },
                { "bad Compare", GOOD "[Rule a]\nDriver=x\nVersion=1\nCompare=fuzzy\n", 7, "fuzzy" },
                { "unknown facet", GOOD "[Rule a]\nDriver=x\nIgnoreFacets=iommu;colour\n", 6, "'colour' is not a facet" },
                { "empty IgnoreFacets", GOOD "[Rule a]\nDriver=x\nIgnoreFacets=\n", 6, "empty" },
                { "IgnoreFacets, empty Version", GOOD "[Rule a]\nDriver=x\nIgnoreFacets=iommu\nVersion=\n", 7,
                  "1 to 4096" },
                { "bad hex ID", GOOD "[Rule a]\nVendor=0xzz15\nVersion=1\n", 5, "not a 16-bit hex ID" },
                { "hex ID out of range", GOOD "[Rule a]\nDevice=0x10000\nVersion=1\n", 5, "not a 16-bit hex ID" },
                { "bare 0x", GOOD "[Rule a]\nSubsystemVendor=0x\nVersion=1\n", 5, "not a 16-bit hex ID" },
                { "negative ID", GOOD "[Rule a]\nSubsystemDevice=-1\nVersion=1\n", 5, "not a 16-bit hex ID" },
                { "empty ID", GOOD "[Rule a]\nVendor=\nVersion=1\n", 5, "not a 16-bit hex ID" },
                { "empty Driver", GOOD "[Rule a]\nDriver=\nVersion=1\n", 5, "empty" },
                { "unknown section", GOOD "[Other a]\nDriver=x\nVersion=1\n", 4, "unknown section" },
                { "empty section name", GOOD "[Rule ]\nDriver=x\nVersion=1\n", 4, "unknown section" },
                { "no section name", GOOD "[Rule]\nDriver=x\nVersion=1\n", 4, "unknown section" },
                { "duplicate section", GOOD "\n[Rule ok]\nDriver=x\nVersion=1\n", 5, "duplicate section" },
                { "duplicate key", GOOD "[Rule a]\nDriver=x\nVersion=1\nDriver=y\n", 7, "duplicate key" },
                { "stray line", GOOD "[Rule a]\nDriver=x\njust some words\nVersion=1\n", 6, "expected [section]" },
                { "unclosed section", GOOD "[Rule a\nDriver=x\nVersion=1\n", 4, "malformed section header" },
                { "key before any section", "Driver=x\n" GOOD, 1, "outside" },
        };

        check_malformed(cases, G_N_ELEMENTS(cases));
}

/* What GKeyFile itself rejects, past conffile's own line scan, must be an
 * error naming the line too. */
static void test_malformed_keyfile(void) {
        const MalformedCase cases[] = {
                { "invalid escape", GOOD "[Rule a]\nDriver=x\nVersion=1\\q\n", 6, "escape" },
                { "bad key name", GOOD "[Rule a]\nDriver=x\nVer]sion=1\n", 6, "Ver]sion" },
        };

        check_malformed(cases, G_N_ELEMENTS(cases));
}

/* Version= and Type= become a device's migration identity: like the
 * drivers' attributes (vendor_string_valid()), 1 to 4096 printable ASCII
 * characters. GKeyFile unescapes \n and \t, so a file can smuggle control
 * characters in; the identity's class key (compat.h) relies on their
 * absence. */
static void test_malformed_values(void) {
        const MalformedCase cases[] = {
                { "newline in Version", GOOD "[Rule a]\nDriver=x\nVersion=28\\n1\n", 6, "Version" },
                { "tab in Version", GOOD "[Rule a]\nDriver=x\nVersion=28\\t1\n", 6, "Version" },
                { "control byte in Version", GOOD "[Rule a]\nDriver=x\nVersion=28\x1f" "1\n", 6, "Version" },
                { "non-ASCII Version", GOOD "[Rule a]\nDriver=x\nVersion=28\xc3\xa9\n", 6, "Version" },
                { "newline in Type", GOOD "[Rule a]\nDriver=x\nVersion=1\nType=a\\nb\n", 7, "Type" },
                { "control byte in Type", GOOD "[Rule a]\nDriver=x\nVersion=1\nType=a\x1f" "b\n", 7, "Type" },
        };

        check_malformed(cases, G_N_ELEMENTS(cases));
}

/* ---- directories ---- */

static void write_file(const char *dir, const char *name, const char *text) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autoptr(GError) error = NULL;

        if (!g_file_set_contents(path, text, -1, &error))
                g_error("writing %s: %s", path, error->message);
}

static void rm_rf(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *n;

        while (d && (n = g_dir_read_name(d))) {
                g_autofree char *p = g_build_filename(dir, n, NULL);

                if (g_remove(p) < 0)
                        g_error("removing %s: %s", p, g_strerror(errno));
        }
        if (g_rmdir(dir) < 0)
                g_error("removing %s: %s", dir, g_strerror(errno));
}

static char *rule_in(const char *dir, const char *file, const char *rule) {
        g_autofree char *path = g_build_filename(dir, file, NULL);

        return g_strdup_printf("%s:Rule %s", path, rule);
}

static void test_dirs_order_and_override(void) {
        g_autofree char *vendor = g_dir_make_tmp("vfiomig-rules-usr-XXXXXX", NULL);
        g_autofree char *local = g_dir_make_tmp("vfiomig-rules-etc-XXXXXX", NULL);
        const char *const dirs[] = { vendor, local, NULL };
        g_autoptr(Rules) r = rules_new();
        g_autoptr(Device) d = pci("0000:01:00.0", "drv", "0x15b3", "0x101e", "0x0", "0x0");
        g_autoptr(Device) d2 = pci("0000:01:00.1", "drv2", "0x15b3", "0x101f", "0x0", "0x0");
        g_autoptr(Device) d3 = pci("0000:01:00.2", "drv3", "0x15b3", "0x101f", "0x0", "0x0");
        g_autoptr(Device) d4 = pci("0000:01:00.3", "drv", "0x15b3", "0x1111", "0x0", "0x0");
        g_autofree char *want_local = rule_in(local, "50-cx7.rules", "local");
        g_autofree char *want_only = rule_in(local, "30-local-only.rules", "local-only");
        g_autofree char *want_late = rule_in(vendor, "90-late.rules", "late");

        g_assert_nonnull(vendor);
        g_assert_nonnull(local);
        /* written in reverse name order, so directory order cannot pass for name order */
        write_file(vendor, "90-late.rules", "[Rule late]\nDriver=drv\nVersion=90\n");
        write_file(vendor, "50-cx7.rules",
                   "[Rule vendor-a]\nDriver=drv\nDevice=0x101e\nVersion=50\n"
                   "[Rule vendor-b]\nDriver=drv3\nVersion=51\n");
        write_file(vendor, "20-early.rules", "[Rule early]\nDriver=drv\nDevice=0x9999\nVersion=20\n");
        /* these would match d4 first, were they read */
        write_file(vendor, "10-ignored.conf", "[Rule conf]\nDriver=drv\nVersion=10\n");
        write_file(vendor, ".05-hidden.rules", "[Rule hidden]\nDriver=drv\nVersion=5\n");
        /* the local 50-cx7.rules replaces the vendor's whole file: vendor-a and vendor-b are gone */
        write_file(local, "50-cx7.rules", "[Rule local]\nVendor=15B3\nDevice=101E\nVersion=28.1\n");
        write_file(local, "30-local-only.rules", "[Rule local-only]\nDriver=drv2\nVersion=30\n");

        g_assert_cmpuint(rules_load_dirs(r, dirs), ==, 4);     /* 20, 30, 50 (local), 90 */
        g_assert_cmpuint(rules_count(r), ==, 4);
        g_assert_cmpstr(rule_name(rules_match(r, d)), ==, want_local);
        g_assert_cmpstr(rules_match(r, d)->version, ==, "28.1");
        g_assert_cmpstr(rule_name(rules_match(r, d2)), ==, want_only);
        g_assert_cmpstr(rule_name(rules_match(r, d3)), ==, "(no rule)");        /* vendor-b went with its file */
        g_assert_cmpstr(rule_name(rules_match(r, d4)), ==, want_late);

        /* the other way round the vendor's file wins */
        {
                const char *const reversed[] = { local, vendor, NULL };
                g_autoptr(Rules) r2 = rules_new();
                g_autofree char *want_vendor = rule_in(vendor, "50-cx7.rules", "vendor-a");

                g_assert_cmpuint(rules_load_dirs(r2, reversed), ==, 4);
                g_assert_cmpuint(rules_count(r2), ==, 5);
                g_assert_cmpstr(rule_name(rules_match(r2, d)), ==, want_vendor);
        }
        /* missing directories are no error */
        {
                g_autofree char *missing = g_build_filename(local, "no-such-dir", NULL);
                const char *const some[] = { missing, local, NULL };
                g_autoptr(Rules) r3 = rules_new();

                g_assert_cmpuint(rules_load_dirs(r3, some), ==, 2);
        }
        rm_rf(vendor);
        rm_rf(local);
}

/* Runs rules_load_dirs with stderr (where the log goes) in a file. */
static unsigned load_capturing_log(Rules *r, const char *const *dirs, char **ret_log) {
        g_autoptr(GError) error = NULL;
        g_autofree char *path = NULL;
        int fd = g_file_open_tmp("vfiomig-rules-log-XXXXXX", &path, &error), saved;
        unsigned n;

        g_assert_no_error(error);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        g_assert_cmpint(dup2(fd, STDERR_FILENO), ==, STDERR_FILENO);
        n = rules_load_dirs(r, dirs);
        fflush(stderr);
        g_assert_cmpint(dup2(saved, STDERR_FILENO), ==, STDERR_FILENO);
        close(saved);
        close(fd);
        g_assert_true(g_file_get_contents(path, ret_log, NULL, NULL));
        g_unlink(path);
        return n;
}

static void test_dirs_broken_file(void) {
        g_autofree char *dir = g_dir_make_tmp("vfiomig-rules-XXXXXX", NULL);
        const char *const dirs[] = { dir, NULL };
        g_autoptr(Rules) r = rules_new();
        g_autofree char *log = NULL, *subdir = g_build_filename(dir, "40-a-directory.rules", NULL);
        g_autofree char *nul_path = g_build_filename(dir, "35-nul.rules", NULL);
        static const char nul_text[] = "[Rule n]\nDriver=nul\n\0Version=1\n";
        g_autoptr(Device) d = pci("0000:01:00.0", "bad", "0x1", "0x1", "0x0", "0x0");

        write_file(dir, "10-good.rules", "[Rule one]\nDriver=one\nVersion=1\n");
        /* a valid rule, then an error on line 6: none of the file may load */
        write_file(dir, "20-bad.rules", "[Rule fine]\nDriver=bad\nVersion=1\n\n[Rule broken]\nDriver=bad\n");
        write_file(dir, "30-good.rules", "[Rule three]\nDriver=three\nVersion=3\n");
        g_assert_true(g_file_set_contents(nul_path, nul_text, sizeof(nul_text) - 1, NULL));
        g_assert_cmpint(g_mkdir(subdir, 0755), ==, 0);          /* unreadable as a file */

        g_assert_cmpuint(load_capturing_log(r, dirs, &log), ==, 2);
        g_test_message("log:\n%s", log);
        g_assert_cmpuint(rules_count(r), ==, 2);
        g_assert_nonnull(rules_match_type(r, "one", "t"));
        g_assert_nonnull(rules_match_type(r, "three", "t"));
        g_assert_null(rules_match(r, d));
        g_assert_null(rules_match_type(r, "nul", "t"));
        /* the log names the file and the line */
        if (!strstr(log, "20-bad.rules:5:") || !strstr(log, "missing required key Version"))
                fail("the log does not name 20-bad.rules:5: and the error:\n%s", log);
        if (!strstr(log, "35-nul.rules"))
                fail("the log does not mention 35-nul.rules:\n%s", log);
        if (!strstr(log, "40-a-directory.rules"))
                fail("the log does not mention 40-a-directory.rules:\n%s", log);
        rm_rf(dir);
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);

        g_test_add_func("/rules/parse-good", test_parse_good);
        g_test_add_func("/rules/ignore-facets", test_ignore_facets);
        g_test_add_func("/rules/each-match-key", test_each_match_key);
        g_test_add_func("/rules/hex-ids", test_hex_ids);
        g_test_add_func("/rules/first-match-in-file", test_first_match_in_file);
        g_test_add_func("/rules/mdev-vs-pci", test_mdev_vs_pci);
        g_test_add_func("/rules/match-type", test_match_type);
        g_test_add_func("/rules/mdev-matches-like-its-type", test_mdev_matches_like_its_type);
        g_test_add_func("/rules/versions", test_versions);
        g_test_add_func("/rules/malformed", test_malformed);
        g_test_add_func("/rules/dirs-order-and-override", test_dirs_order_and_override);
        g_test_add_func("/rules/dirs-broken-file", test_dirs_broken_file);
        g_test_add_func("/rules/malformed-keyfile", test_malformed_keyfile);
        g_test_add_func("/rules/malformed-values", test_malformed_values);

        return g_test_run();
}
