/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include <glib.h>

#include "iommu-facet.h"
#include "unaligned.h"
#include "unit-test.h"

/* The two hosts of the VM tier: VT-d with aw-bits=48 and 39 (their cap
 * registers as the 6.12 kernel shows them; an ecap without scalable
 * mode), and the MSI window every x86 group reserves. */
#define CAP_48 UINT64_C(0xd2008c222f0686)
#define CAP_39 UINT64_C(0xd2008c22260286)
#define ECAP_QEMU UINT64_C(0xf00f5e)
#define MSI "0x00000000fee00000 0x00000000feefffff msi\n"
#define HOST_48 "width=48 ranges=0x0-0xfedfffff,0xfef00000-0xffffffffffff pgsizes=0x40201000 dirty=no"
#define HOST_39 "width=39 ranges=0x0-0xfedfffff,0xfef00000-0x7fffffffff pgsizes=0x40201000 dirty=no"

static IommuFacet parse(const char *text) {
        g_autofree char *error = NULL;
        IommuFacet f = {};

        if (iommu_facet_parse(text, &f, &error) < 0)
                fail("'%s' refused: %s", text, error);
        return f;
}

static void test_canonical_forms(void) {
        static const char *const same[] = { "", "none", HOST_48, HOST_39, "width=64", "dirty=yes",
                                            "pgsizes=0x1000 dirty=no", "ranges=0x0-0xffffffffffffffff" };

        for (size_t i = 0; i < G_N_ELEMENTS(same); i++) {
                IommuFacet f = parse(same[i]);
                g_autofree char *back = iommu_facet_format(&f);

                if (g_strcmp0(back, same[i]) != 0)
                        fail("'%s' formats back as '%s'", same[i], back);
        }
        {
                g_autofree char *c = NULL, *error = NULL;

                /* any order and case of hex digits, one spelling out */
                g_assert_cmpint(iommu_facet_canonicalize("dirty=no pgsizes=0x40201000 ranges=0x0-0xFEDFFFFF,"
                                                         "0xfef00000-0xFFFFFFFFFFFF width=48", &c, &error), ==, 0);
                g_assert_cmpstr(c, ==, HOST_48);
        }
        g_assert_false(parse("").known);
        g_assert_true(parse("none").none);
}

static void test_refused(void) {
        static const char *const bad[] = {
                "width=0", "width=65", "width=48 width=48", "width=x", "width", "=48", "bogus=1", "none width=48",
                "ranges=0x10-0x1", "ranges=0x0-0x10,0x10-0x20", "ranges=0x20-0x30,0x0-0x10", "ranges=10-20",
                "ranges=0x0-", "ranges=", "ranges=0x0-0x1-0x2", "width=32 ranges=0x0-0x100000000",
                "pgsizes=0x0", "pgsizes=4096", "dirty=maybe", "dirty=yes dirty=no", " width=48", "width=48 ",
                "width=48  dirty=no",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *error = NULL;
                IommuFacet f = {};

                if (iommu_facet_parse(bad[i], &f, &error) != -EINVAL || !error)
                        fail("'%s' accepted", bad[i]);
        }
        {
                GString *big = g_string_new("ranges=");
                g_autofree char *error = NULL;
                IommuFacet f = {};

                for (unsigned i = 0; i <= IOMMU_FACET_MAX_RANGES; i++)
                        g_string_append_printf(big, "%s0x%x-0x%x", i ? "," : "", i * 16, i * 16 + 1);
                g_assert_cmpint(iommu_facet_parse(big->str, &f, &error), ==, -EINVAL);
                g_string_free(big, TRUE);
        }
}

/* What the kernel backend derives from sysfs, against what
 * VFIO_IOMMU_GET_INFO reported on the same two hosts. */
static void test_from_sysfs(void) {
        static const struct { uint64_t cap; const char *want; } hosts[] = { { CAP_48, HOST_48 }, { CAP_39, HOST_39 } };

        for (size_t i = 0; i < G_N_ELEMENTS(hosts); i++) {
                IommuFacet f = {};
                g_autofree char *text = NULL;

                iommu_facet_from_vtd(&f, hosts[i].cap, ECAP_QEMU);
                g_assert_cmpint(iommu_facet_set_ranges(&f, f.width, MSI), ==, 0);
                text = iommu_facet_format(&f);
                g_assert_cmpstr(text, ==, hosts[i].want);
        }
        {
                IommuFacet f = {};

                /* scalable mode with second-stage A/D bits: dirty tracking */
                iommu_facet_from_vtd(&f, CAP_48, ECAP_QEMU | (UINT64_C(1) << 43) | (UINT64_C(1) << 45));
                g_assert_cmpint(f.dirty, ==, IOMMU_DIRTY_YES);
                iommu_facet_from_vtd(&f, CAP_48, ECAP_QEMU | (UINT64_C(1) << 45));
                g_assert_cmpint(f.dirty, ==, IOMMU_DIRTY_NO);
        }
}

static void test_reserved_regions(void) {
        static const struct { const char *reserved; const char *want; int r; } cases[] = {
                { "", "width=32 ranges=0x0-0xffffffff", 0 },
                /* unsorted and overlapping, at both ends */
                { "0x100 0x1ff msi\n0x0 0xf reserved\n0x180 0x2ff direct\n0xfffff000 0xffffffff reserved\n",
                  "width=32 ranges=0x10-0xff,0x300-0xffffefff", 0 },
                /* what VFIO leaves mappable stays in */
                { "0x1000 0x1fff direct-relaxable\n", "width=32 ranges=0x0-0xffffffff", 0 },
                /* beyond the width: nothing to take out */
                { "0x100000000 0x1ffffffff reserved\n", "width=32 ranges=0x0-0xffffffff", 0 },
                { "0x0 0xffffffff reserved\n", "width=32", 0 },
                { "0x10 0x1 msi\n", NULL, -EINVAL },
                { "0x10 msi\n", NULL, -EINVAL },
                { "16 32 msi\n", NULL, -EINVAL },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                IommuFacet f = {};
                g_autofree char *text = NULL;
                int r = iommu_facet_set_ranges(&f, 32, cases[i].reserved);

                if (r != cases[i].r) {
                        fail("case %zu: %d, want %d", i, r, cases[i].r);
                        continue;
                }
                text = iommu_facet_format(&f);
                if (r == 0 && g_strcmp0(text, cases[i].want) != 0)
                        fail("case %zu: '%s', want '%s'", i, text, cases[i].want);
        }
        {
                IommuFacet f = {};

                g_assert_cmpint(iommu_facet_set_ranges(&f, 64, MSI), ==, 0);
                g_assert_cmpuint(f.ranges[1].end, ==, UINT64_MAX);
                g_assert_cmpint(iommu_facet_set_ranges(&f, 0, ""), ==, -EINVAL);
        }
}

/* struct vfio_iommu_type1_info and its capability chain as the 6.12
 * kernel fills it on the 48-bit host: IOVA ranges, then the migration
 * capability (skipped). */
static GByteArray *type1_info(uint64_t top, uint32_t cap_offset, uint32_t nr, uint32_t next) {
        GByteArray *b = g_byte_array_new();
        uint8_t z[112] = {};

        g_byte_array_append(b, z, sizeof z);
        unaligned_write_le32(b->data, b->len);
        unaligned_write_le32(b->data + 4, 3);                  /* PGSIZES | CAPS */
        unaligned_write_le64(b->data + 8, 0x40201000);
        unaligned_write_le32(b->data + 16, cap_offset);
        unaligned_write_le16(b->data + 24, 1);                 /* IOVA_RANGE */
        unaligned_write_le16(b->data + 26, 1);
        unaligned_write_le32(b->data + 28, next);
        unaligned_write_le32(b->data + 32, nr);
        unaligned_write_le64(b->data + 40, 0xfef00000);        /* out of order, as nothing promises order */
        unaligned_write_le64(b->data + 48, top);
        unaligned_write_le64(b->data + 56, 0);
        unaligned_write_le64(b->data + 64, 0xfedfffff);
        unaligned_write_le16(b->data + 72, 2);                 /* MIGRATION */
        unaligned_write_le32(b->data + 76, 0);
        return b;
}

static void test_from_type1_info(void) {
        g_autoptr(GByteArray) good = type1_info(0xffffffffffff, 24, 2, 72), narrow = type1_info(0x7fffffffff, 24, 2, 72);
        IommuFacet f = { .dirty = IOMMU_DIRTY_NO };
        g_autofree char *text = NULL, *text39 = NULL;

        g_assert_cmpint(iommu_facet_from_type1_info(&f, good->data, good->len), ==, 0);
        text = iommu_facet_format(&f);
        g_assert_cmpstr(text, ==, HOST_48);
        g_assert_cmpint(iommu_facet_from_type1_info(&f, narrow->data, narrow->len), ==, 0);
        text39 = iommu_facet_format(&f);
        g_assert_cmpstr(text39, ==, HOST_39);

        /* what does not parse changes nothing */
        {
                static const struct { uint32_t cap_offset, nr, next; size_t len; } bad[] = {
                        { 200, 2, 0, 0 },       /* first cap beyond the buffer */
                        { 8, 2, 0, 0 },         /* inside the fixed part */
                        { 24, 2, 24, 0 },       /* a loop */
                        { 24, 5, 0, 0 },        /* more ranges than bytes */
                        { 24, 0, 0, 0 },        /* none */
                        { 24, 2, 0, 20 },       /* shorter than the fixed part */
                        { 24, 2, 0, 60 },       /* cut in the ranges */
                };

                for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                        g_autoptr(GByteArray) b = type1_info(0xffffffffffff, bad[i].cap_offset, bad[i].nr, bad[i].next);
                        IommuFacet g = {};
                        size_t len = bad[i].len ?: b->len;

                        unaligned_write_le32(b->data, len);
                        if (iommu_facet_from_type1_info(&g, b->data, len) != -EBADMSG || g.known)
                                fail("bad info %zu accepted", i);
                }
        }
        {
                g_autoptr(GByteArray) overlap = type1_info(0xffffffffffff, 24, 2, 72);
                IommuFacet g = {};

                unaligned_write_le64(overlap->data + 40, 0xfed00000);
                g_assert_cmpint(iommu_facet_from_type1_info(&g, overlap->data, overlap->len), ==, -EBADMSG);
        }
}

static void expect(const char *src, const char *tgt, IommuVerdict want, const char *reason_part) {
        IommuFacet s = parse(src), t = parse(tgt);
        g_autofree char *reason = NULL;
        IommuVerdict v = iommu_facet_judge(&s, &t, &reason);

        if (v != want)
                fail("'%s' -> '%s': verdict %d (%s), want %d", src, tgt, v, reason, want);
        else if (reason_part && !strstr(reason, reason_part))
                fail("'%s' -> '%s': reason '%s' lacks '%s'", src, tgt, reason, reason_part);
}

static void test_judge(void) {
        /* equal and wider */
        expect(HOST_48, HOST_48, IOMMU_VERDICT_COMPATIBLE, "covers");
        expect(HOST_39, HOST_48, IOMMU_VERDICT_COMPATIBLE, "covers");
        /* narrower: both numbers named, and no second complaint about ranges */
        expect(HOST_48, HOST_39, IOMMU_VERDICT_INCOMPATIBLE, "target IOMMU maps 39 bits, source 48");
        {
                IommuFacet s = parse(HOST_48), t = parse(HOST_39);
                g_autofree char *reason = NULL;

                iommu_facet_judge(&s, &t, &reason);
                g_assert_null(strstr(reason, "IOVA"));
        }
        /* same width, a reserved region where the source had none */
        expect("width=32 ranges=0x0-0xffffffff", "width=32 ranges=0x0-0xfedfffff,0xfef00000-0xffffffff",
               IOMMU_VERDICT_INCOMPATIBLE, "cannot map IOVA 0xfee00000-0xfeefffff");
        /* disjoint reserved regions: each side lacks what the other maps */
        expect("width=32 ranges=0x0-0xfff,0x2000-0xffffffff", "width=32 ranges=0x0-0x1fff,0x3000-0xffffffff",
               IOMMU_VERDICT_INCOMPATIBLE, "0x2000-0x2fff");
        expect("width=32 ranges=0x0-0x1fff,0x3000-0xffffffff", "width=32 ranges=0x0-0xfff,0x2000-0xffffffff",
               IOMMU_VERDICT_INCOMPATIBLE, "0x1000-0x1fff");
        /* a target with fewer holes takes it */
        expect("width=32 ranges=0x0-0xfff,0x3000-0xffffffff", "width=32 ranges=0x0-0x1fff,0x2000-0xffffffff",
               IOMMU_VERDICT_COMPATIBLE, NULL);
        /* page sizes: a superset is fine, a missing size is named */
        expect("pgsizes=0x1000", "pgsizes=0x40201000", IOMMU_VERDICT_COMPATIBLE, NULL);
        expect("pgsizes=0x40201000", "pgsizes=0x1000", IOMMU_VERDICT_INCOMPATIBLE, "lacks page sizes 2M,1G");
        expect("pgsizes=0x201000", "pgsizes=0x40001000", IOMMU_VERDICT_INCOMPATIBLE, "2M of the source's (it has 4K,1G)");
        /* dirty tracking */
        expect("dirty=yes", "dirty=no", IOMMU_VERDICT_INCOMPATIBLE, "no dirty tracking");
        expect("dirty=no", "dirty=yes", IOMMU_VERDICT_COMPATIBLE, NULL);
        expect("dirty=yes", "dirty=yes", IOMMU_VERDICT_COMPATIBLE, NULL);
        expect("dirty=yes", "width=48", IOMMU_VERDICT_UNKNOWN, "dirty tracking: not known");
        /* every failing field is named */
        expect("width=48 pgsizes=0x40201000 dirty=yes", "width=39 pgsizes=0x1000 dirty=no", IOMMU_VERDICT_INCOMPATIBLE,
               "maps 39 bits, source 48; target IOMMU lacks page sizes 2M,1G of the source's (it has 4K); "
               "target IOMMU has no dirty tracking");
        /* an incompatibility outranks what cannot be judged */
        expect("width=48 dirty=yes", "width=39", IOMMU_VERDICT_INCOMPATIBLE, "39 bits");
        /* what the source does not state asks nothing */
        expect("", HOST_39, IOMMU_VERDICT_COMPATIBLE, "states no IOMMU");
        expect("width=39", "width=48", IOMMU_VERDICT_COMPATIBLE, NULL);
        expect("none", HOST_39, IOMMU_VERDICT_COMPATIBLE, "no IOMMU of its own");
        expect("none", "", IOMMU_VERDICT_COMPATIBLE, NULL);
        /* a target that says nothing, or less than the source */
        expect(HOST_48, "", IOMMU_VERDICT_UNKNOWN, "not known");
        expect(HOST_48, "dirty=no", IOMMU_VERDICT_UNKNOWN, "address width: not known");
        expect("ranges=0x0-0xff", "width=8", IOMMU_VERDICT_UNKNOWN, "IOVA ranges: not known");
        expect("pgsizes=0x1000", "width=8", IOMMU_VERDICT_UNKNOWN, "page sizes");
        /* an mdev of a virtual parent takes any guest's state */
        expect(HOST_48, "none", IOMMU_VERDICT_COMPATIBLE, "no IOMMU translation");
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/iommu-facet/canonical-forms", test_canonical_forms);
        g_test_add_func("/iommu-facet/refused", test_refused);
        g_test_add_func("/iommu-facet/from-sysfs", test_from_sysfs);
        g_test_add_func("/iommu-facet/reserved-regions", test_reserved_regions);
        g_test_add_func("/iommu-facet/from-type1-info", test_from_type1_info);
        g_test_add_func("/iommu-facet/judge", test_judge);
        return g_test_run();
}
