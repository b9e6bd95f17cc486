/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include <glib.h>

#include "unit-test.h"
#include "vdpa-facet.h"

#define BIT(n) (UINT64_C(1) << (n))
#define VERSION_1 BIT(32)
#define ACCESS_PLATFORM BIT(33)
#define MRG_RXBUF BIT(15)
#define MTU BIT(3)
#define MQ BIT(22)
#define CSUM BIT(0)

static VdpaFacet parse(const char *text) {
        g_autofree char *error = NULL;
        VdpaFacet f = {};

        if (vdpa_facet_parse(text, &f, &error) < 0)
                fail("'%s' refused: %s", text, error);
        return f;
}

static void test_canonical_forms(void) {
        static const char *const same[] = {
                "", "class=net", "class=blk offered=0x300000240 blk-size=512 queues=2",
                "class=net offered=0x300018020 negotiated=0x300008020 mtu=9000 vqp=1 legacy=no",
                "class=net offered=0x3f00ffff config=any", "class=virtio-77 offered=0x0", "class=net legacy=yes",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(same); i++) {
                VdpaFacet f = parse(same[i]);
                g_autofree char *back = vdpa_facet_format(&f);

                if (g_strcmp0(back, same[i]) != 0)
                        fail("'%s' formats back as '%s'", same[i], back);
        }
        {
                g_autofree char *c = NULL, *error = NULL;

                g_assert_cmpint(vdpa_facet_canonicalize("vqp=1 mtu=9000 offered=0x30001802A class=net", &c, &error),
                                ==, 0);
                g_assert_cmpstr(c, ==, "class=net offered=0x30001802a mtu=9000 vqp=1");
        }
        g_assert_false(parse("").known);
        g_assert_cmpuint(parse("class=blk").device_id, ==, VIRTIO_ID_BLOCK);
        g_assert_cmpuint(parse("class=virtio-20").device_id, ==, 20); /* "crypto" spelled as a number */
}

static void test_refused(void) {
        static const char *const bad[] = {
                "class=", "class=foo", "class=virtio-0", "class=net class=net", "offered=0x1", "class=net offered=1",
                "class=net offered=0x", "class=net offered=0x1 offered=0x1", "class=net mtu=0", "class=net mtu=-1",
                "class=net mtu=x", "class=net legacy=maybe", "class=net config=some", "class=net bogus=1",
                " class=net", "class=net ", "class=net  mtu=1", "class=net offered=0x1 negotiated=0x3",
                "class=net offered=0x10000000000000000",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *error = NULL;
                VdpaFacet f;

                if (vdpa_facet_parse(bad[i], &f, &error) != -EINVAL)
                        fail("'%s' accepted", bad[i]);
                if (!error || !g_str_has_prefix(error, "vDPA facet"))
                        fail("'%s' refused without a message saying what: %s", bad[i], error);
        }
        {
                g_autofree char *error = NULL, *longer = g_strnfill(600, 'x');
                VdpaFacet f;

                g_assert_cmpint(vdpa_facet_parse(longer, &f, &error), ==, -EINVAL);
        }
}

static void test_names(void) {
        g_autofree char *names = vdpa_features_to_names(VIRTIO_ID_NET, MRG_RXBUF | VERSION_1 | BIT(50));
        g_autofree char *blk = vdpa_features_to_names(VIRTIO_ID_BLOCK, BIT(6) | BIT(15));
        g_autofree char *other = vdpa_features_to_names(4, BIT(6) | ACCESS_PLATFORM);
        g_autofree char *net = vdpa_class_to_string(VIRTIO_ID_NET), *odd = vdpa_class_to_string(99);

        g_assert_cmpstr(names, ==, "VIRTIO_NET_F_MRG_RXBUF, VIRTIO_F_VERSION_1, feature bit 50");
        /* bit 15 is another feature in every class */
        g_assert_cmpstr(blk, ==, "VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_LIFETIME");
        g_assert_cmpstr(other, ==, "feature bit 6, VIRTIO_F_ACCESS_PLATFORM");
        g_assert_cmpstr(net, ==, "net");
        g_assert_cmpstr(odd, ==, "virtio-99");
        g_assert_cmpuint(vdpa_class_from_string("net"), ==, 1);
        g_assert_cmpuint(vdpa_class_from_string("virtio-x"), ==, 0);
        g_assert_null(vdpa_feature_name(VIRTIO_ID_NET, 64));
}

typedef struct Case {
        const char *src, *tgt;
        VdpaVerdict verdict;
        const char *reason;     /* a part of it */
} Case;

static void check(const Case *c) {
        VdpaFacet s = parse(c->src), t = parse(c->tgt);
        g_autofree char *reason = NULL;
        VdpaVerdict v = vdpa_facet_judge(&s, &t, &reason);

        if (v != c->verdict || !reason || !strstr(reason, c->reason))
                fail("%s -> %s: verdict %d, reason '%s'; expected %d with '%s'", c->src, c->tgt, v, reason, c->verdict,
                     c->reason);
}

#define A "class=net offered=0x300000021"      /* CSUM MAC VERSION_1 ACCESS_PLATFORM */
#define B "class=net offered=0x300008029"      /* A + MTU + MRG_RXBUF */

static void test_judge_features(void) {
        static const Case cases[] = {
                /* before negotiation: everything offered counts */
                { A, B, VDPA_VERDICT_COMPATIBLE, "the target offers every feature the source offers" },
                { B, A, VDPA_VERDICT_INCOMPATIBLE, "target lacks VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF (the "
                                                   "source offers them)" },
                { A, A, VDPA_VERDICT_COMPATIBLE, "every feature" },
                /* after: only what the driver took */
                { B " negotiated=0x300000021", A, VDPA_VERDICT_COMPATIBLE, "source negotiated" },
                { B " negotiated=0x300008021", A, VDPA_VERDICT_INCOMPATIBLE,
                  "target lacks VIRTIO_NET_F_MRG_RXBUF (the source negotiated it)" },
                { A, "class=net", VDPA_VERDICT_UNKNOWN, "the target's features are not known" },
                /* a target known only by what its driver took offered at least that */
                { A " negotiated=0x300000021", "class=net negotiated=0x300000021", VDPA_VERDICT_COMPATIBLE,
                  "source negotiated" },
                { A " negotiated=0x300000021", "class=net negotiated=0x300000001", VDPA_VERDICT_UNKNOWN,
                  "the target's features are not known" },
                { "class=net", A, VDPA_VERDICT_UNKNOWN, "the source's features are not known" },
                /* a management device offers what its devices may */
                { B, "class=net offered=0x3ffffffff config=any", VDPA_VERDICT_COMPATIBLE, "every feature" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                check(&cases[i]);
}

static void test_judge_class_and_legacy(void) {
        static const Case cases[] = {
                { A, "class=blk offered=0x300000021", VDPA_VERDICT_INCOMPATIBLE, "target is a vDPA blk device, "
                                                                                 "source net" },
                { A, "", VDPA_VERDICT_UNKNOWN, "nothing is known of the target's vDPA device" },
                { "", A, VDPA_VERDICT_UNKNOWN, "nothing is known of the source's vDPA device" },
                /* a legacy driver needs a target that serves one */
                { "class=net offered=0x300000021 negotiated=0x21", A " legacy=yes", VDPA_VERDICT_COMPATIBLE, "every" },
                { "class=net offered=0x300000021 negotiated=0x21", A " legacy=no", VDPA_VERDICT_INCOMPATIBLE,
                  "the source's driver is legacy (no VIRTIO_F_VERSION_1) and the target serves only modern" },
                { "class=net offered=0x300000021 negotiated=0x21", A, VDPA_VERDICT_UNKNOWN,
                  "nothing says whether the target serves legacy drivers" },
                /* a device without VERSION_1 serves only legacy drivers */
                { "class=net offered=0x21", "class=net offered=0x121", VDPA_VERDICT_COMPATIBLE, "every" },
                /* a modern driver is no legacy one, whatever the target says */
                { A " negotiated=0x300000021", A " legacy=no", VDPA_VERDICT_COMPATIBLE, "every" },
                /* a legacy-only source cannot go where VERSION_1 is all there is */
                { "class=net offered=0x21", "class=net offered=0x100000021 legacy=no", VDPA_VERDICT_INCOMPATIBLE,
                  "legacy" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                check(&cases[i]);
}

static void test_judge_config(void) {
        static const Case cases[] = {
                { B " mtu=9000", B " mtu=9000", VDPA_VERDICT_COMPATIBLE, "every" },
                { B " mtu=1500", B " mtu=9000", VDPA_VERDICT_COMPATIBLE, "every" },
                { B " mtu=9000", B " mtu=1500", VDPA_VERDICT_INCOMPATIBLE, "target MTU 1500, source 9000" },
                { B " mtu=9000", B, VDPA_VERDICT_UNKNOWN, "the target's MTU is not known (source 9000)" },
                /* not negotiated: the guest never read it */
                { B " negotiated=0x300000021 mtu=9000", B " mtu=1500", VDPA_VERDICT_COMPATIBLE, "every" },
                /* a management device makes whichever MTU it is asked for */
                { B " mtu=9000", "class=net offered=0x3ffffffff config=any", VDPA_VERDICT_COMPATIBLE, "every" },
                { "class=net offered=0x300400021 vqp=4", "class=net offered=0x300400021 vqp=2",
                  VDPA_VERDICT_INCOMPATIBLE, "target virtqueue pairs 2, source 4" },
                /* the MAC is an address, not an identity: the facet has none */
                { "class=blk offered=0x300000040 blk-size=4096", "class=blk offered=0x300000040 blk-size=512",
                  VDPA_VERDICT_INCOMPATIBLE, "target block size 512, source 4096" },
                { "class=blk offered=0x300000040 blk-size=512", "class=blk offered=0x300000040 blk-size=512",
                  VDPA_VERDICT_COMPATIBLE, "every" },
                { "class=blk offered=0x300001000 queues=4", "class=blk offered=0x300001000 queues=8",
                  VDPA_VERDICT_COMPATIBLE, "every" },
                /* every failing field is named, features first */
                { B " mtu=9000", "class=net offered=0x300000029 mtu=1500", VDPA_VERDICT_INCOMPATIBLE,
                  "target lacks VIRTIO_NET_F_MRG_RXBUF (the source offers it); target MTU 1500, source 9000" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
                check(&cases[i]);
}

/* Compatibility is a subset order on features: every pair of random
 * masks agrees with the bit arithmetic. */
static void test_judge_subset_law(void) {
        GRand *rand = g_rand_new_with_seed(12);

        for (int i = 0; i < 2000; i++) {
                uint64_t s = ((uint64_t) g_rand_int(rand) << 32 | g_rand_int(rand)) | VERSION_1;
                uint64_t t = ((uint64_t) g_rand_int(rand) << 32 | g_rand_int(rand)) | VERSION_1;
                VdpaFacet fs = { .known = true, .device_id = VIRTIO_ID_NET, .has_offered = true, .offered = s };
                VdpaFacet ft = fs;
                g_autofree char *reason = NULL, *reason2 = NULL;

                if (i % 3 == 0)
                        t |= s; /* make supersets common */
                ft.offered = t;
                /* MTU and MQ ask for config the masks do not carry */
                fs.offered &= ~(MTU | MQ);
                ft.offered &= ~(MTU | MQ);
                g_assert_cmpint(vdpa_facet_judge(&fs, &ft, &reason), ==,
                                (fs.offered & ~ft.offered) ? VDPA_VERDICT_INCOMPATIBLE : VDPA_VERDICT_COMPATIBLE);
                g_assert_cmpint(vdpa_facet_judge(&fs, &fs, &reason2), ==, VDPA_VERDICT_COMPATIBLE);
        }
        g_rand_free(rand);
}

int main(int argc, char *argv[]) {
        unit_test_init(argc, argv);
        g_test_add_func("/vdpa-facet/canonical-forms", test_canonical_forms);
        g_test_add_func("/vdpa-facet/refused", test_refused);
        g_test_add_func("/vdpa-facet/names", test_names);
        g_test_add_func("/vdpa-facet/judge-features", test_judge_features);
        g_test_add_func("/vdpa-facet/judge-class-and-legacy", test_judge_class_and_legacy);
        g_test_add_func("/vdpa-facet/judge-config", test_judge_config);
        g_test_add_func("/vdpa-facet/judge-subset-law", test_judge_subset_law);
        return g_test_run();
}
