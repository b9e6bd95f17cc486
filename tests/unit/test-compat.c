/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "compat/compat.h"
#include "names.h"
#include "compat/rules.h"
#include "vfio-uapi.h"
#include "util.h"
#include "unit-test.h"

#define F_SC  VFIO_MIGRATION_STOP_COPY
#define F_P2P VFIO_MIGRATION_P2P
#define F_PRE VFIO_MIGRATION_PRE_COPY

/* ---- helpers ---- */

static Device *pci(const char *driver, const char *vendor, const char *device, const char *subvendor,
                   const char *subdevice, uint32_t flags) {
        Device *d = device_new("0000:65:00.1", DEVICE_KIND_PCI);

#define SET(f, v) device_set_string(&d->f, v);
        SET(driver, driver);
        SET(vendor_id, vendor);
        SET(device_id, device);
        SET(subsystem_vendor_id, subvendor);
        SET(subsystem_device_id, subdevice);
#undef SET
        d->migration_flags = flags;
        return d;
}

static Device *mdev(const char *driver, const char *type, uint32_t flags) {
        Device *d = device_new("00000000-0000-0000-0000-000000000001", DEVICE_KIND_MDEV);

        device_set_string(&d->driver, driver);
        device_set_string(&d->parent, "mtty");
        device_set_string(&d->mdev_type, type);
        d->migration_flags = flags;
        return d;
}

static Rules *rules(const char *text) {
        Rules *r = rules_new();
        g_autoptr(GError) error = NULL;

        if (!rules_add_data(r, text, "t.rules", &error))
                g_error("rules do not parse: %s", error->message);
        return r;
}

static Identity *ident(const char *type, const char *version, Basis basis, RuleCompare cmp, uint32_t flags) {
        Identity *id = identity_new(type, version, basis);

        id->compare = cmp;
        id->flags = flags;
        return id;
}

static char *id_str(const Identity *id) {
        if (!id)
                return g_strdup("(null)");
        return g_strdup_printf("{type=%s version=%s basis=%s compare=%d flags=0x%x}", id->type, id->version,
                               basis_to_string(id->basis), id->compare, id->flags);
}

/* Checks an identity field by field, saying which case and which field. */
static void check_identity(const char *what, const Identity *got, const char *type, const char *version,
                           Basis basis, RuleCompare cmp, uint32_t flags) {
        g_autofree char *s = id_str(got);

        if (!got) {
                fail("%s: no identity", what);
                return;
        }
        if (g_strcmp0(got->type, type) != 0 || g_strcmp0(got->version, version) != 0 || got->basis != basis ||
            got->compare != cmp || got->flags != flags)
                fail("%s: got %s, want {type=%s version=%s basis=%s compare=%d flags=0x%x}", what, s,
                     type, version, basis_to_string(basis), cmp, flags);
}

static const char pci_type[] = "vfio-pci:mlx5_vfio_pci:0x15b3:0x101e:0x15b3:0x0047";

static const char cx7_rules[] =
        "[Rule cx7]\n"
        "Driver=mlx5_vfio_pci\n"
        "Vendor=0x15b3\n"
        "Device=0x101e\n"
        "Version=28.39.1010\n"
        "Compare=same-major\n"
        "Type=cx7\n"
        "\n"
        "[Rule cx7-untyped]\n"
        "Driver=mlx5_vfio_pci\n"
        "Vendor=0x15b3\n"
        "Version=27\n"
        "\n"
        "[Rule mtty2]\n"
        "Driver=mtty\n"
        "MdevType=mtty-2\n"
        "Version=2.0\n";

/* ---- strings ---- */

static void test_strings(void) {
        g_assert_cmpstr(basis_to_string(BASIS_VENDOR), ==, "vendor");
        g_assert_cmpstr(basis_to_string(BASIS_PROBE), ==, "probe");
        g_assert_cmpstr(basis_to_string(BASIS_RULE), ==, "rule");
        g_assert_cmpstr(basis_to_string(BASIS_TYPE_MATCH), ==, "type-match");
        g_assert_null(basis_to_string(_BASIS_MAX));
        g_assert_cmpstr(verdict_to_string(VERDICT_COMPATIBLE), ==, "compatible");
        g_assert_cmpstr(verdict_to_string(VERDICT_INCOMPATIBLE), ==, "incompatible");
        g_assert_cmpstr(verdict_to_string(VERDICT_UNKNOWN), ==, "unknown");
        g_assert_null(verdict_to_string(_VERDICT_MAX));
}

static void test_vendor_string_valid(void) {
        g_autofree char *max = g_strnfill(VENDOR_VERSION_MAX, 'v');
        g_autofree char *over = g_strnfill(VENDOR_VERSION_MAX + 1, 'v');
        const struct {
                const char *what, *s;
                bool want;
        } cases[] = {
                { "simple", "28.39.1010", true },
                { "one char", "x", true },
                { "printable range", " !~{}[]:;\"'", true },
                { "4096 chars", max, true },
                { "NULL", NULL, false },
                { "empty", "", false },
                { "4097 chars", over, false },
                { "newline inside", "28\n39", false },
                { "trailing newline", "28\n", false },
                { "tab", "28\t39", false },
                { "control byte", "\x01" "28", false },
                { "DEL", "28\x7f", false },
                { "UTF-8", "caf\xc3\xa9", false },
                { "high byte", "\xff", false },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                if (vendor_string_valid(cases[i].s) != cases[i].want)
                        fail("%s: vendor_string_valid() is %s", cases[i].what,
                             cases[i].want ? "false" : "true");
}

static void test_type_match_type(void) {
        g_autoptr(Device) p = pci("mlx5_vfio_pci", "0x15b3", "0x101e", "0x15b3", "0x0047", F_SC);
        g_autoptr(Device) m = mdev("mtty", "mtty-2", F_SC);
        g_autofree char *pt = compat_type_match_type(p), *mt = compat_type_match_type(m);

        g_assert_cmpstr(pt, ==, pci_type);
        g_assert_cmpstr(mt, ==, "mtty-2");
}

/* ---- identities ---- */

static void test_identity_vendor(void) {
        g_autoptr(Rules) r = rules(cx7_rules);
        g_autoptr(Device) p = pci("mlx5_vfio_pci", "0x15b3", "0x101e", "0x15b3", "0x0047", F_SC | F_PRE);
        g_autoptr(Device) m = mdev("mtty", "mtty-2", F_SC | F_P2P);
        g_autoptr(MdevType) t = mdev_type_new("mtty", "mtty-2");
        struct {
                const char *what;
                Identity *id;
                const char *type, *version;
                uint32_t flags;
        } cases[] = {
                /* both attributes: the vendor's type replaces the type-match (and rule) type */
                { "pci, type+version", identity_of_device(p, "mlx5-mig-v1", "fw-28.1", r, NULL), "mlx5-mig-v1",
                  "fw-28.1", F_SC | F_PRE },
                /* version alone: the type-match type, not the matching rule's Type= */
                { "pci, version alone", identity_of_device(p, NULL, "fw-28.1", r, NULL), pci_type, "fw-28.1",
                  F_SC | F_PRE },
                { "pci, no rules", identity_of_device(p, NULL, "fw-28.1", NULL, NULL), pci_type, "fw-28.1",
                  F_SC | F_PRE },
                { "mdev, type+version", identity_of_device(m, "mtty-mig", "1", r, NULL), "mtty-mig", "1",
                  F_SC | F_P2P },
                { "mdev, version alone", identity_of_device(m, NULL, "1", r, NULL), "mtty-2", "1", F_SC | F_P2P },
                /* an mdev type: its id; flags unknown */
                { "type, type+version", identity_of_type(t, "mtty", "mtty-mig", "1", r, NULL), "mtty-mig", "1", 0 },
                { "type, version alone", identity_of_type(t, "mtty", NULL, "1", r, NULL), "mtty-2", "1", 0 },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                check_identity(cases[i].what, cases[i].id, cases[i].type, cases[i].version, BASIS_VENDOR,
                               RULE_COMPARE_EXACT, cases[i].flags);
                identity_free(cases[i].id);
        }

        /* a type attribute without a version says nothing about versions: rule or type-match */
        {
                g_autoptr(Identity) id = identity_of_device(p, "mlx5-mig-v1", NULL, r, NULL);
                g_autoptr(Identity) id2 = identity_of_device(p, "mlx5-mig-v1", NULL, NULL, NULL);

                check_identity("pci, type alone, rule", id, "cx7", "28.39.1010", BASIS_RULE, RULE_COMPARE_SAME_MAJOR,
                               F_SC | F_PRE);
                check_identity("pci, type alone, no rule", id2, pci_type, "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT,
                               F_SC | F_PRE);
        }
        /* valid attributes: no warning */
        {
                char *warning = NULL;
                g_autoptr(Identity) id = identity_of_device(p, "mlx5-mig-v1", "fw-28.1", r, &warning);

                g_assert_null(warning);
                g_assert_cmpint(id->basis, ==, BASIS_VENDOR);
        }
}

static void test_identity_invalid_vendor(void) {
        g_autoptr(Rules) r = rules(cx7_rules);
        g_autoptr(Device) p = pci("mlx5_vfio_pci", "0x15b3", "0x101e", "0x15b3", "0x0047", F_SC);
        g_autoptr(Device) other = pci("vfio-pci", "0x8086", "0x1234", "0x8086", "0x0000", F_SC);
        g_autoptr(MdevType) t = mdev_type_new("mtty", "mtty-2");
        g_autofree char *over = g_strnfill(VENDOR_VERSION_MAX + 1, '7');
        g_autofree char *max = g_strnfill(VENDOR_VERSION_MAX, '7');
        g_autofree char *other_type = compat_type_match_type(other);
        const struct {
                const char *what, *s;
        } bad[] = {
                { "empty", "" },
                { "4097 chars", over },
                { "control byte", "28\x01" },
                { "newline inside", "28.1\n28.2" },
                { "non-ASCII", "28\xc3\xa9" },
                { "DEL", "\x7f" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                /* a bad version: rule if one matches, else type-match; the type attribute goes too */
                {
                        char *warning = NULL;
                        g_autoptr(Identity) id = identity_of_device(p, "mlx5-mig", bad[i].s, r, &warning);
                        g_autofree char *what = g_strdup_printf("bad version (%s), rule", bad[i].what);

                        check_identity(what, id, "cx7", "28.39.1010", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC);
                        if (!warning || !strstr(warning, "migration_version"))
                                fail("%s: warning is %s", what, warning ? warning : "NULL");
                        g_free(warning);
                }
                {
                        char *warning = NULL;
                        g_autoptr(Identity) id = identity_of_device(other, NULL, bad[i].s, r, &warning);
                        g_autofree char *what = g_strdup_printf("bad version (%s), no rule", bad[i].what);

                        check_identity(what, id, other_type, "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, F_SC);
                        if (!warning)
                                fail("%s: no warning", what);
                        g_free(warning);
                }
                {
                        char *warning = NULL;
                        g_autoptr(Identity) id = identity_of_type(t, "mtty", NULL, bad[i].s, r, &warning);
                        g_autofree char *what = g_strdup_printf("bad version (%s), type with rule", bad[i].what);

                        check_identity(what, id, "mtty-2", "2.0", BASIS_RULE, RULE_COMPARE_EXACT, 0);
                        if (!warning)
                                fail("%s: no warning", what);
                        g_free(warning);
                }
                /* a bad type with a good version: vendor, with the type-match type */
                {
                        char *warning = NULL;
                        g_autoptr(Identity) id = identity_of_device(p, bad[i].s, "fw-28.1", r, &warning);
                        g_autofree char *what = g_strdup_printf("bad type (%s)", bad[i].what);

                        check_identity(what, id, pci_type, "fw-28.1", BASIS_VENDOR, RULE_COMPARE_EXACT, F_SC);
                        if (!warning || !strstr(warning, "migration_type"))
                                fail("%s: warning is %s", what, warning ? warning : "NULL");
                        g_free(warning);
                }
        }

        /* 4096 characters are fine */
        {
                char *warning = NULL;
                g_autoptr(Identity) id = identity_of_device(p, max, max, r, &warning);

                check_identity("4096 chars", id, max, max, BASIS_VENDOR, RULE_COMPARE_EXACT, F_SC);
                g_assert_null(warning);
        }
        /* ret_warning may be NULL */
        {
                g_autoptr(Identity) id = identity_of_device(p, "", "", r, NULL);

                check_identity("no warning pointer", id, "cx7", "28.39.1010", BASIS_RULE, RULE_COMPARE_SAME_MAJOR,
                               F_SC);
        }
}

static void test_identity_rule(void) {
        g_autoptr(Rules) r = rules(cx7_rules);
        g_autoptr(Device) p = pci("mlx5_vfio_pci", "0x15b3", "0x101e", "0x15b3", "0x0047", F_SC | F_P2P);
        /* same vendor, other device: [Rule cx7-untyped], no Type= */
        g_autoptr(Device) p2 = pci("mlx5_vfio_pci", "0x15b3", "0x1021", "0x15b3", "0x0047", F_SC);
        g_autoptr(Device) m = mdev("mtty", "mtty-2", F_SC | F_PRE);
        g_autoptr(MdevType) t = mdev_type_new("mtty", "mtty-2");
        g_autoptr(Identity) a = identity_of_device(p, NULL, NULL, r, NULL);
        g_autoptr(Identity) b = identity_of_device(p2, NULL, NULL, r, NULL);
        g_autoptr(Identity) c = identity_of_device(m, NULL, NULL, r, NULL);
        g_autoptr(Identity) d = identity_of_type(t, "mtty", NULL, NULL, r, NULL);
        g_autoptr(Identity) e = identity_of_type(t, "not-mtty", NULL, NULL, r, NULL);
        g_autofree char *p2_type = compat_type_match_type(p2);

        check_identity("pci, rule with Type=", a, "cx7", "28.39.1010", BASIS_RULE, RULE_COMPARE_SAME_MAJOR,
                       F_SC | F_P2P);
        check_identity("pci, rule without Type=", b, p2_type, "27", BASIS_RULE, RULE_COMPARE_EXACT, F_SC);
        check_identity("mdev, rule", c, "mtty-2", "2.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC | F_PRE);
        check_identity("type, rule by its driver", d, "mtty-2", "2.0", BASIS_RULE, RULE_COMPARE_EXACT, 0);
        /* a type matches by the driver named in its id ("mtty-2"), as the
         * kernel named it; a virtual parent may have no driver at all */
        check_identity("type, parent's driver aside", e, "mtty-2", "2.0", BASIS_RULE, RULE_COMPARE_EXACT, 0);
}

static void test_identity_type_match(void) {
        g_autoptr(Rules) r = rules(cx7_rules);
        g_autoptr(Device) p = pci("vfio-pci", "0x8086", "0x1592", "0x8086", "0x0002", F_SC | F_PRE | F_P2P);
        g_autoptr(Device) m = mdev("mtty", "mtty-1", F_SC);
        g_autoptr(MdevType) t = mdev_type_new("mtty", "mtty-1");
        g_autoptr(Identity) a = identity_of_device(p, NULL, NULL, r, NULL);
        g_autoptr(Identity) b = identity_of_device(m, NULL, NULL, r, NULL);
        g_autoptr(Identity) c = identity_of_type(t, "mtty", NULL, NULL, NULL, NULL);
        g_autoptr(Identity) d = identity_of_device(m, NULL, NULL, NULL, NULL);
        char *warning = NULL;
        g_autoptr(Identity) e = identity_of_device(p, NULL, NULL, NULL, &warning);

        check_identity("pci", a, "vfio-pci:vfio-pci:0x8086:0x1592:0x8086:0x0002", "", BASIS_TYPE_MATCH,
                       RULE_COMPARE_EXACT, F_SC | F_PRE | F_P2P);
        check_identity("mdev", b, "mtty-1", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, F_SC);
        check_identity("type", c, "mtty-1", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, 0);
        check_identity("mdev, no rules", d, "mtty-1", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, F_SC);
        check_identity("pci, no rules", e, "vfio-pci:vfio-pci:0x8086:0x1592:0x8086:0x0002", "", BASIS_TYPE_MATCH,
                       RULE_COMPARE_EXACT, F_SC | F_PRE | F_P2P);
        g_assert_null(warning);
}

static void test_identity_copy(void) {
        g_autoptr(Identity) a = ident("t", "v", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC | F_PRE);
        g_autoptr(Identity) b = identity_copy(a);
        g_autoptr(Identity) n = identity_new("t", NULL, BASIS_TYPE_MATCH);

        check_identity("copy", b, "t", "v", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC | F_PRE);
        g_assert_true(a->type != b->type);
        g_assert_true(a->version != b->version);
        check_identity("NULL version", n, "t", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, 0);
}

static void test_class_key(void) {
        g_autoptr(Identity) base = ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC);
        g_autoptr(Identity) same = ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC);
        g_autoptr(Identity) copy = identity_copy(base);
        struct {
                const char *what;
                Identity *id;
        } differ[] = {
                { "type", ident("u", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC) },
                { "type prefix", ident("t1", ".0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC) },
                { "version", ident("t", "1.1", BASIS_RULE, RULE_COMPARE_EXACT, F_SC) },
                { "basis vendor", ident("t", "1.0", BASIS_VENDOR, RULE_COMPARE_EXACT, F_SC) },
                { "basis type-match", ident("t", "1.0", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, F_SC) },
                { "compare", ident("t", "1.0", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC) },
                { "flags", ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC | F_PRE) },
                { "no flags", ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, 0) },
                { "iommu", ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC) },
                { "ignored facets", ident("t", "1.0", BASIS_RULE, RULE_COMPARE_EXACT, F_SC) },
        };

        free_and_strdup(&differ[8].id->iommu, "width=48");
        differ[9].id->ignore_facets = RULE_FACET_IOMMU;

        g_assert_true(identity_equal(base, same));
        g_assert_true(identity_equal(base, copy));
        g_assert_cmpuint(identity_hash(base), ==, identity_hash(same));
        g_assert_cmpuint(identity_hash(base), ==, identity_hash(copy));
        for (size_t i = 0; i < G_N_ELEMENTS(differ); i++) {
                if (identity_equal(base, differ[i].id) || identity_equal(differ[i].id, base))
                        fail("identities differing in %s share the class", differ[i].what);
                for (size_t j = 0; j < i; j++)
                        if (identity_equal(differ[j].id, differ[i].id))
                                fail("identities differing in %s and in %s share a class",
                                     differ[i].what, differ[j].what);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(differ); i++)
                identity_free(differ[i].id);
}

/* ---- judging ---- */

typedef struct Judge {
        int vendor_result;
        unsigned vendor_calls;
        char *vendor_node, *vendor_version;
        bool probe_has;
        Verdict probe_verdict;
        unsigned probe_calls;
} Judge;

static int vendor_cb(void *userdata, const Node *target_node, const char *version) {
        Judge *j = userdata;

        j->vendor_calls++;
        g_free(j->vendor_node);
        j->vendor_node = g_strdup(target_node->name);
        g_free(j->vendor_version);
        j->vendor_version = g_strdup(version);
        return j->vendor_result;
}

static bool probe_cb(void *userdata, const Identity *source, const Identity *target, Judgement *ret) {
        Judge *j = userdata;

        j->probe_calls++;
        if (!j->probe_has)
                return false;
        *ret = (Judgement) { .verdict = j->probe_verdict, .basis = BASIS_PROBE,
                             .reason = g_strdup_printf("probe %s %s -> %s %s", source->type, source->version,
                                                       target->type, target->version) };
        return true;
}

#define NO_PROBE false, 0
#define PROBE(v) true, v
#define ANY_REASON NULL

typedef struct Side {
        const char *type, *version;
        Basis basis;
        RuleCompare cmp;
        uint32_t flags;
} Side;

static const struct JudgeCase {
        const char *what;
        Side src, tgt;
        int vendor_result;
        bool probe_has;
        Verdict probe_verdict;
        Verdict want;
        Basis want_basis;
        const char *reason;             /* substring, or NULL */
        unsigned want_vendor_calls;
} judge_cases[] = {
        /* types and flags first */
        { "different types", { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, { "B", "", BASIS_TYPE_MATCH, 0, F_SC },
          0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_TYPE_MATCH, "different migration types", 0 },
        { "different types, vendor target", { "A", "1", BASIS_VENDOR, 0, F_SC }, { "B", "1", BASIS_VENDOR, 0, F_SC },
          0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_VENDOR, "different migration types", 0 },
        { "different types, rule", { "A", "1", BASIS_RULE, 0, F_SC }, { "B", "1", BASIS_RULE, 0, F_SC },
          0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_RULE, "different migration types", 0 },
        { "target without STOP_COPY", { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, { "A", "", BASIS_TYPE_MATCH, 0, F_P2P },
          0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_TYPE_MATCH, "STOP_COPY", 0 },
        { "vendor target without STOP_COPY", { "A", "1", BASIS_VENDOR, 0, F_SC },
          { "A", "1", BASIS_VENDOR, 0, F_PRE | F_P2P }, 0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_VENDOR, "STOP_COPY", 0 },
        { "target flags unknown", { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, { "A", "", BASIS_TYPE_MATCH, 0, 0 },
          0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_TYPE_MATCH, "presumed", 0 },

        /* vendor */
        { "vendor accepts", { "A", "fw-1", BASIS_VENDOR, 0, F_SC }, { "A", "fw-2", BASIS_VENDOR, 0, F_SC },
          0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_VENDOR, "accepts version fw-1", 1 },
        { "vendor refuses", { "A", "fw-1", BASIS_VENDOR, 0, F_SC }, { "A", "fw-2", BASIS_VENDOR, 0, F_SC },
          -EINVAL, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_VENDOR, "Invalid argument", 1 },
        { "vendor refuses, other errno", { "A", "fw-1", BASIS_VENDOR, 0, F_SC }, { "A", "fw-2", BASIS_VENDOR, 0, F_SC },
          -EOPNOTSUPP, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_VENDOR, "fw-1", 1 },
        { "vendor target, rule source's version", { "A", "28.1", BASIS_RULE, 0, F_SC },
          { "A", "x", BASIS_VENDOR, 0, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_VENDOR, "28.1", 1 },
        { "vendor target, source without version", { "A", "", BASIS_TYPE_MATCH, 0, F_SC },
          { "A", "x", BASIS_VENDOR, 0, F_SC }, 0, NO_PROBE, VERDICT_UNKNOWN, BASIS_VENDOR, "has none", 0 },
        { "vendor wins over probe", { "A", "fw-1", BASIS_VENDOR, 0, F_SC }, { "A", "fw-2", BASIS_VENDOR, 0, F_SC },
          -EINVAL, PROBE(VERDICT_COMPATIBLE), VERDICT_INCOMPATIBLE, BASIS_VENDOR, "Invalid argument", 1 },

        /* probe */
        { "probe says compatible", { "A", "1", BASIS_RULE, 0, F_SC }, { "A", "2", BASIS_RULE, 0, F_SC },
          0, PROBE(VERDICT_COMPATIBLE), VERDICT_COMPATIBLE, BASIS_PROBE, "probe A 1 -> A 2", 0 },
        { "probe says incompatible", { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, { "A", "", BASIS_TYPE_MATCH, 0, F_SC },
          0, PROBE(VERDICT_INCOMPATIBLE), VERDICT_INCOMPATIBLE, BASIS_PROBE, "probe A  -> A ", 0 },
        { "probe, vendor source to type-match target", { "A", "1", BASIS_VENDOR, 0, F_SC },
          { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, 0, PROBE(VERDICT_COMPATIBLE), VERDICT_COMPATIBLE, BASIS_PROBE,
          "probe", 0 },
        { "probe, target without STOP_COPY", { "A", "", BASIS_TYPE_MATCH, 0, F_SC },
          { "A", "", BASIS_TYPE_MATCH, 0, F_P2P }, 0, PROBE(VERDICT_COMPATIBLE), VERDICT_INCOMPATIBLE,
          BASIS_TYPE_MATCH, "STOP_COPY", 0 },

        /* rules */
        { "rule exact, equal", { "A", "28.39", BASIS_RULE, RULE_COMPARE_EXACT, F_SC },
          { "A", "28.39", BASIS_RULE, RULE_COMPARE_EXACT, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_RULE,
          "matches", 0 },
        { "rule exact, differ", { "A", "28.39", BASIS_RULE, RULE_COMPARE_EXACT, F_SC },
          { "A", "28.40", BASIS_RULE, RULE_COMPARE_EXACT, F_SC }, 0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_RULE,
          "does not match", 0 },
        { "rule same-major", { "A", "28.39.1010", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC },
          { "A", "28.40", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_RULE,
          "same major", 0 },
        { "rule same-major, other major", { "A", "29.0", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC },
          { "A", "28.0", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC }, 0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_RULE,
          "does not match", 0 },
        /* the target's Compare= decides */
        { "rule, target exact, source same-major", { "A", "28.1", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC },
          { "A", "28.2", BASIS_RULE, RULE_COMPARE_EXACT, F_SC }, 0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_RULE,
          "exact", 0 },
        { "rule, target same-major, source exact", { "A", "28.1", BASIS_RULE, RULE_COMPARE_EXACT, F_SC },
          { "A", "28.2", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_RULE,
          "same major", 0 },
        { "rule target, source without version", { "A", "", BASIS_TYPE_MATCH, 0, F_SC },
          { "A", "28.1", BASIS_RULE, RULE_COMPARE_EXACT, F_SC }, 0, NO_PROBE, VERDICT_UNKNOWN, BASIS_TYPE_MATCH,
          ANY_REASON, 0 },


        /* type-match */
        { "type-match both", { "mtty-2", "", BASIS_TYPE_MATCH, 0, F_SC }, { "mtty-2", "", BASIS_TYPE_MATCH, 0, F_SC },
          0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_TYPE_MATCH, "presumed", 0 },
        { "type-match target, rule source", { "A", "28.1", BASIS_RULE, 0, F_SC }, { "A", "", BASIS_TYPE_MATCH, 0, F_SC },
          0, NO_PROBE, VERDICT_UNKNOWN, BASIS_TYPE_MATCH, ANY_REASON, 0 },
        { "type-match target, vendor source", { "A", "28.1", BASIS_VENDOR, 0, F_SC },
          { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, 0, NO_PROBE, VERDICT_UNKNOWN, BASIS_TYPE_MATCH, ANY_REASON, 0 },

        /* pre-copy */
        { "pre-copy source, target lacks it", { "A", "", BASIS_TYPE_MATCH, 0, F_SC | F_PRE },
          { "A", "", BASIS_TYPE_MATCH, 0, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_TYPE_MATCH,
          "without pre-copy", 0 },
        { "pre-copy source, vendor target lacks it", { "A", "1", BASIS_VENDOR, 0, F_SC | F_PRE },
          { "A", "1", BASIS_VENDOR, 0, F_SC | F_P2P }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_VENDOR,
          "without pre-copy", 1 },
};

/* A rule target compares the version of any source that has one: a remote
 * source's version arrives with basis vendor (identities_remote()). */
static const struct JudgeCase rule_target_cases[] = {
        { "rule target, vendor source, equal", { "A", "28.1", BASIS_VENDOR, 0, F_SC },
          { "A", "28.1", BASIS_RULE, RULE_COMPARE_EXACT, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_RULE,
          "matches", 0 },
        { "rule target, vendor source, same major", { "A", "28.1", BASIS_VENDOR, 0, F_SC },
          { "A", "28.7", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC }, 0, NO_PROBE, VERDICT_COMPATIBLE, BASIS_RULE,
          "matches", 0 },
        { "rule target, vendor source, differ", { "A", "27.1", BASIS_VENDOR, 0, F_SC },
          { "A", "28.1", BASIS_RULE, RULE_COMPARE_SAME_MAJOR, F_SC }, 0, NO_PROBE, VERDICT_INCOMPATIBLE, BASIS_RULE,
          "does not match", 0 },
};

/* Cases whose reason must NOT say "without pre-copy". */
static const struct {
        const char *what;
        uint32_t src_flags, tgt_flags;
} no_precopy_note[] = {
        { "target has pre-copy", F_SC | F_PRE, F_SC | F_PRE },
        { "target flags unknown", F_SC | F_PRE, 0 },
        { "source without pre-copy", F_SC, F_SC },
};

static void run_judge_cases(const struct JudgeCase *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const struct JudgeCase *c = &cases[i];
                Judge st = { .vendor_result = c->vendor_result, .probe_has = c->probe_has,
                             .probe_verdict = c->probe_verdict };
                JudgeOps ops = { vendor_cb, probe_cb, &st };
                g_autoptr(Identity) src = ident(c->src.type, c->src.version, c->src.basis, c->src.cmp, c->src.flags);
                g_autoptr(Identity) tgt = ident(c->tgt.type, c->tgt.version, c->tgt.basis, c->tgt.cmp, c->tgt.flags);
                Judgement j = compat_judge(src, tgt, &NODE_OF_DEVICE("tgt-node"), &ops);

                g_test_message("%s: %s/%s: %s", c->what, verdict_to_string(j.verdict), basis_to_string(j.basis),
                               j.reason);
                if (j.verdict != c->want || j.basis != c->want_basis)
                        fail("%s: got %s (basis %s), want %s (basis %s); reason: %s", c->what,
                             verdict_to_string(j.verdict), basis_to_string(j.basis), verdict_to_string(c->want),
                             basis_to_string(c->want_basis), j.reason);
                if (!j.reason || !*j.reason || (c->reason && !strstr(j.reason, c->reason)))
                        fail("%s: reason \"%s\" does not say \"%s\"", c->what, j.reason,
                             c->reason ? c->reason : "anything");
                if (st.vendor_calls != c->want_vendor_calls)
                        fail("%s: the vendor judge was called %u times, want %u", c->what, st.vendor_calls,
                             c->want_vendor_calls);
                if (st.vendor_calls > 0 && (g_strcmp0(st.vendor_node, "tgt-node") != 0 ||
                                            g_strcmp0(st.vendor_version, c->src.version) != 0))
                        fail("%s: the vendor judge got node %s version %s, want tgt-node and the source's %s",
                             c->what, st.vendor_node, st.vendor_version, c->src.version);
                if (!c->probe_has && j.basis == BASIS_PROBE)
                        fail("%s: basis probe without a probe result", c->what);
                judgement_clear(&j);
                g_assert_null(j.reason);
                g_free(st.vendor_node);
                g_free(st.vendor_version);
        }
}

static void test_judge_table(void) {
        run_judge_cases(judge_cases, G_N_ELEMENTS(judge_cases));

        for (size_t i = 0; i < G_N_ELEMENTS(no_precopy_note); i++) {
                Judge st = {};
                JudgeOps ops = { vendor_cb, probe_cb, &st };
                g_autoptr(Identity) src = ident("A", "", BASIS_TYPE_MATCH, 0, no_precopy_note[i].src_flags);
                g_autoptr(Identity) tgt = ident("A", "", BASIS_TYPE_MATCH, 0, no_precopy_note[i].tgt_flags);
                Judgement j = compat_judge(src, tgt, &NODE_OF_DEVICE("t"), &ops);

                if (j.verdict != VERDICT_COMPATIBLE || strstr(j.reason, "pre-copy"))
                        fail("%s: got %s: %s (want compatible, no pre-copy note)", no_precopy_note[i].what,
                             verdict_to_string(j.verdict), j.reason);
                judgement_clear(&j);
        }
        /* an incompatible verdict gets no pre-copy note */
        {
                Judge st = { .vendor_result = -EPERM };
                JudgeOps ops = { vendor_cb, probe_cb, &st };
                g_autoptr(Identity) src = ident("A", "1", BASIS_VENDOR, 0, F_SC | F_PRE);
                g_autoptr(Identity) tgt = ident("A", "1", BASIS_VENDOR, 0, F_SC);
                Judgement j = compat_judge(src, tgt, &NODE_OF_DEVICE("t"), &ops);

                g_assert_cmpint(j.verdict, ==, VERDICT_INCOMPATIBLE);
                g_assert_null(strstr(j.reason, "pre-copy"));
                judgement_clear(&j);
                g_free(st.vendor_node);
                g_free(st.vendor_version);
        }
}

static void test_judge_rule_target(void) {
        run_judge_cases(rule_target_cases, G_N_ELEMENTS(rule_target_cases));
}

/* A JudgeOps without a probe callback works. */
static void test_judge_no_probe_op(void) {
        Judge st = {};
        JudgeOps ops = { vendor_cb, NULL, &st };
        g_autoptr(Identity) src = ident("A", "", BASIS_TYPE_MATCH, 0, F_SC);
        g_autoptr(Identity) tgt = ident("A", "", BASIS_TYPE_MATCH, 0, F_SC);
        Judgement j = compat_judge(src, tgt, &NODE_OF_DEVICE("t"), &ops);

        g_assert_cmpint(j.verdict, ==, VERDICT_COMPATIBLE);
        g_assert_cmpint(j.basis, ==, BASIS_TYPE_MATCH);
        judgement_clear(&j);
}

/* The IOMMU facet: judged after the versions, relaxed by a rule of
 * either side, carried by copies and derived identities. */
static Judgement judge_iommu(const char *src_iommu, const char *tgt_iommu, unsigned src_ignore, unsigned tgt_ignore,
                             Basis basis) {
        Judge st = {};
        JudgeOps ops = { vendor_cb, probe_cb, &st };
        g_autoptr(Identity) src = ident("A", basis == BASIS_RULE ? "1.0" : "", basis, 0, F_SC);
        g_autoptr(Identity) tgt = ident("A", basis == BASIS_RULE ? "1.0" : "", basis, 0, F_SC);

        free_and_strdup(&src->iommu, src_iommu);
        free_and_strdup(&tgt->iommu, tgt_iommu);
        src->ignore_facets = src_ignore;
        tgt->ignore_facets = tgt_ignore;
        return compat_judge(src, tgt, &NODE_OF_DEVICE("t"), &ops);
}

static void test_judge_iommu(void) {
        static const struct {
                const char *src, *tgt;
                unsigned src_ignore, tgt_ignore;
                Basis basis;
                Verdict want;
                const char *reason;
        } cases[] = {
                { "width=48", "width=39", 0, 0, BASIS_TYPE_MATCH, VERDICT_INCOMPATIBLE,
                  "target IOMMU maps 39 bits, source 48" },
                { "width=48", "width=39", 0, 0, BASIS_RULE, VERDICT_INCOMPATIBLE, "maps 39 bits, source 48" },
                { "width=39", "width=48", 0, 0, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
                { "width=48", "width=48", 0, 0, BASIS_RULE, VERDICT_COMPATIBLE, "rule: version 1.0 matches" },
                /* a rule of either side lets the operator know better */
                { "width=48", "width=39", 0, RULE_FACET_IOMMU, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
                { "width=48", "width=39", RULE_FACET_IOMMU, 0, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
                /* what cannot be judged makes "compatible" unknown, and says both */
                { "width=48", "", 0, 0, BASIS_TYPE_MATCH, VERDICT_UNKNOWN, "presumed: same migration type A "
                  "(not verified); but the target's IOMMU is not known" },
                /* nothing stated, or no IOMMU of its own: nothing asked */
                { "", "width=39", 0, 0, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
                { "none", "", 0, 0, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
                /* not valid: states nothing (checked where identities come in) */
                { "width=99", "width=39", 0, 0, BASIS_TYPE_MATCH, VERDICT_COMPATIBLE, "presumed" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                Judgement j = judge_iommu(cases[i].src, cases[i].tgt, cases[i].src_ignore, cases[i].tgt_ignore,
                                          cases[i].basis);

                if (j.verdict != cases[i].want || !strstr(j.reason, cases[i].reason))
                        fail("case %zu (%s -> %s): %s '%s', want %s '%s'", i, cases[i].src, cases[i].tgt,
                             verdict_to_string(j.verdict), j.reason, verdict_to_string(cases[i].want),
                             cases[i].reason);
                judgement_clear(&j);
        }
        /* versions that already refuse keep their own reason */
        {
                Judge st = { .vendor_result = -EINVAL };
                JudgeOps ops = { vendor_cb, probe_cb, &st };
                g_autoptr(Identity) src = ident("A", "2", BASIS_VENDOR, 0, F_SC);
                g_autoptr(Identity) tgt = ident("A", "1", BASIS_VENDOR, 0, F_SC);
                Judgement j;

                free_and_strdup(&src->iommu, "width=48");
                free_and_strdup(&tgt->iommu, "width=39");
                j = compat_judge(src, tgt, &NODE_OF_DEVICE("t"), &ops);
                g_assert_cmpint(j.verdict, ==, VERDICT_INCOMPATIBLE);
                g_assert_nonnull(strstr(j.reason, "refuses version 2"));
                judgement_clear(&j);
                g_free(st.vendor_node);
                g_free(st.vendor_version);
        }
}

static void test_identity_iommu(void) {
        g_autoptr(Device) d = pci("vfio-pci", "0x1234", "0x11e8", "0x1af4", "0x1100", F_SC);
        g_autoptr(Rules) relax = rules("[Rule edu]\nVendor=0x1234\nDevice=0x11e8\nIgnoreFacets=iommu\n");
        g_autoptr(Identity) plain = NULL, relaxed = NULL, copy = NULL;

        device_set_string(&d->iommu, "width=48 dirty=no");
        plain = identity_of_device(d, NULL, NULL, NULL, NULL);
        g_assert_cmpstr(plain->iommu, ==, "width=48 dirty=no");
        g_assert_cmpuint(plain->ignore_facets, ==, 0);
        /* a rule without Version= relaxes the facet and keeps the device's own identity */
        relaxed = identity_of_device(d, NULL, NULL, relax, NULL);
        g_assert_cmpint(relaxed->basis, ==, BASIS_TYPE_MATCH);
        g_assert_cmpuint(relaxed->ignore_facets, ==, RULE_FACET_IOMMU);
        copy = identity_copy(relaxed);
        g_assert_true(identity_equal(copy, relaxed));
        g_assert_cmpstr(copy->iommu, ==, "width=48 dirty=no");
}

/* A device whose driver is known to have no migration shows no flags,
 * yet its identity says it lacks STOP_COPY, and a target like it is
 * refused; an unknown one (flags 0) is not. */
static void test_judge_not_migratable_target(void) {
        Judge st = {};
        JudgeOps ops = { vendor_cb, NULL, &st };
        g_autoptr(Device) none = mdev("mtty", "mtty-1", 0);
        g_autoptr(Device) unknown = mdev("mtty", "mtty-1", 0);
        g_autoptr(Identity) src = ident("mtty-1", "", BASIS_TYPE_MATCH, 0, F_SC);
        g_autoptr(Identity) a = NULL, b = NULL;
        Judgement j;

        none->migration_support = MIGRATION_SUPPORT_NONE;
        a = identity_of_device(none, NULL, NULL, NULL, NULL);
        b = identity_of_device(unknown, NULL, NULL, NULL, NULL);
        check_identity("none", a, "mtty-1", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, IDENTITY_FLAGS_NOT_MIGRATABLE);
        check_identity("unknown", b, "mtty-1", "", BASIS_TYPE_MATCH, RULE_COMPARE_EXACT, 0);

        j = compat_judge(src, a, &NODE_OF_DEVICE("t"), &ops);
        g_assert_cmpint(j.verdict, ==, VERDICT_INCOMPATIBLE);
        g_assert_nonnull(strstr(j.reason, "STOP_COPY"));
        judgement_clear(&j);
        j = compat_judge(src, b, &NODE_OF_DEVICE("t"), &ops);
        g_assert_cmpint(j.verdict, ==, VERDICT_COMPATIBLE);
        judgement_clear(&j);
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/compat/judge-iommu", test_judge_iommu);
        g_test_add_func("/compat/identity-iommu", test_identity_iommu);

        g_test_add_func("/compat/strings", test_strings);
        g_test_add_func("/compat/vendor-string-valid", test_vendor_string_valid);
        g_test_add_func("/compat/type-match-type", test_type_match_type);
        g_test_add_func("/compat/identity-vendor", test_identity_vendor);
        g_test_add_func("/compat/identity-invalid-vendor", test_identity_invalid_vendor);
        g_test_add_func("/compat/identity-rule", test_identity_rule);
        g_test_add_func("/compat/identity-type-match", test_identity_type_match);
        g_test_add_func("/compat/identity-copy", test_identity_copy);
        g_test_add_func("/compat/class-key", test_class_key);
        g_test_add_func("/compat/judge", test_judge_table);
        g_test_add_func("/compat/judge-no-probe-op", test_judge_no_probe_op);
        g_test_add_func("/compat/judge-rule-target", test_judge_rule_target);
        g_test_add_func("/compat/judge-not-migratable-target", test_judge_not_migratable_target);

        return g_test_run();
}
