/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "iommu-facet.h"
#include "unaligned.h"
#include "util.h"

static uint64_t top_of(unsigned width) {
        return width >= 64 ? UINT64_MAX : (UINT64_C(1) << width) - 1;
}

static bool parse_hex(const char *s, uint64_t *ret) {
        if (!g_str_has_prefix(s, "0x") || !s[2])
                return false;
        return g_ascii_string_to_unsigned(s + 2, 16, 0, UINT64_MAX, ret, NULL);
}

static int parse_ranges(const char *value, IommuFacet *f) {
        g_auto(GStrv) parts = g_strsplit(value, ",", -1);
        unsigned n = g_strv_length(parts);

        if (n == 0 || n > IOMMU_FACET_MAX_RANGES)
                return -EINVAL;
        for (unsigned i = 0; i < n; i++) {
                g_auto(GStrv) se = g_strsplit(parts[i], "-", 3);
                IommuRange *r = &f->ranges[i];

                if (g_strv_length(se) != 2 || !parse_hex(se[0], &r->start) || !parse_hex(se[1], &r->end) ||
                    r->start > r->end || (i > 0 && r->start <= f->ranges[i - 1].end))
                        return -EINVAL;
        }
        f->n_ranges = n;
        return 0;
}

static int parse_field(IommuFacet *f, const char *key, const char *value) {
        uint64_t v;

        if (g_str_equal(key, "width")) {
                if (f->width || !g_ascii_string_to_unsigned(value, 10, 1, 64, &v, NULL))
                        return -EINVAL;
                f->width = v;
        } else if (g_str_equal(key, "ranges")) {
                if (f->n_ranges)
                        return -EINVAL;
                return parse_ranges(value, f);
        } else if (g_str_equal(key, "pgsizes")) {
                if (f->pgsizes || !parse_hex(value, &v) || v == 0)
                        return -EINVAL;
                f->pgsizes = v;
        } else if (g_str_equal(key, "dirty")) {
                if (f->dirty != IOMMU_DIRTY_UNKNOWN || (!g_str_equal(value, "yes") && !g_str_equal(value, "no")))
                        return -EINVAL;
                f->dirty = g_str_equal(value, "yes") ? IOMMU_DIRTY_YES : IOMMU_DIRTY_NO;
        } else
                return -ENOKEY;
        return 0;
}

int iommu_facet_parse(const char *text, IommuFacet *ret, char **ret_error) {
        g_auto(GStrv) fields = NULL;
        IommuFacet f = {};

        if (strlen(text) > IOMMU_FACET_TEXT_MAX)
                return errno_message(ret_error, EINVAL, "IOMMU facet longer than %d bytes", IOMMU_FACET_TEXT_MAX);
        if (g_str_equal(text, "none"))
                f.known = f.none = true;
        fields = g_strsplit(f.none ? "" : text, " ", -1);
        for (char **p = fields; *p; p++) {
                const char *eq = strchr(*p, '=');
                g_autofree char *key = eq ? g_strndup(*p, eq - *p) : NULL;
                int r = key ? parse_field(&f, key, eq + 1) : -EINVAL;

                if (r == -ENOKEY)
                        return errno_message(ret_error, EINVAL, "IOMMU facet: unknown field '%s' (known: width, "
                                             "ranges, pgsizes, dirty)", key);
                if (r < 0)
                        return errno_message(ret_error, EINVAL, "IOMMU facet: '%s' is not a valid field, or "
                                             "repeats one", *p);
                f.known = true;
        }
        if (f.width && f.n_ranges && f.ranges[f.n_ranges - 1].end > top_of(f.width))
                return errno_message(ret_error, EINVAL, "IOMMU facet: ranges go beyond its %u-bit width", f.width);
        *ret = f;
        return 0;
}

char *iommu_facet_format(const IommuFacet *f) {
        GString *s = g_string_new(NULL);

        if (!f->known)
                return g_string_free(s, FALSE);
        if (f->none)
                return g_string_free(g_string_append(s, "none"), FALSE);
        if (f->width)
                g_string_append_printf(s, " width=%u", f->width);
        for (unsigned i = 0; i < f->n_ranges; i++)
                g_string_append_printf(s, "%s0x%" PRIx64 "-0x%" PRIx64, i ? "," : " ranges=", f->ranges[i].start,
                                       f->ranges[i].end);
        if (f->pgsizes)
                g_string_append_printf(s, " pgsizes=0x%" PRIx64, f->pgsizes);
        if (f->dirty != IOMMU_DIRTY_UNKNOWN)
                g_string_append_printf(s, " dirty=%s", f->dirty == IOMMU_DIRTY_YES ? "yes" : "no");
        if (s->len > 0)
                g_string_erase(s, 0, 1);
        return g_string_free(s, FALSE);
}

int iommu_facet_canonicalize(const char *text, char **ret, char **ret_error) {
        IommuFacet f;
        int r = iommu_facet_parse(text, &f, ret_error);

        if (r < 0)
                return r;
        *ret = iommu_facet_format(&f);
        return 0;
}

static int compare_range(const void *a, const void *b) {
        const IommuRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

static int parse_reserved(const char *text, GArray *out) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

        for (char **l = lines; *l; l++) {
                g_auto(GStrv) w = g_strsplit_set(g_strstrip(*l), " \t", -1);
                IommuRange r;

                if (!**l)
                        continue;
                if (g_strv_length(w) != 3 || !parse_hex(w[0], &r.start) || !parse_hex(w[1], &r.end) ||
                    r.start > r.end)
                        return -EINVAL;
                if (!g_str_equal(w[2], "direct-relaxable"))
                        g_array_append_val(out, r);
        }
        g_array_sort(out, compare_range);
        return 0;
}

int iommu_facet_set_ranges(IommuFacet *f, unsigned width, const char *reserved_regions) {
        g_autoptr(GArray) reserved = g_array_new(FALSE, FALSE, sizeof(IommuRange));
        uint64_t cur = 0, top = top_of(width);
        bool done = false;
        unsigned n = 0;
        int r;

        if (width == 0 || width > 64)
                return -EINVAL;
        r = parse_reserved(reserved_regions ?: "", reserved);
        if (r < 0)
                return r;
        for (guint i = 0; i < reserved->len && !done; i++) {
                const IommuRange *res = &g_array_index(reserved, IommuRange, i);

                if (res->end < cur)
                        continue;
                if (res->start > top)
                        break;
                if (res->start > cur) {
                        if (n == IOMMU_FACET_MAX_RANGES)
                                return -E2BIG;
                        f->ranges[n++] = (IommuRange) { cur, res->start - 1 };
                }
                done = res->end >= top;
                cur = done ? top : res->end + 1;
        }
        if (!done) {
                if (n == IOMMU_FACET_MAX_RANGES)
                        return -E2BIG;
                f->ranges[n++] = (IommuRange) { cur, top };
        }
        f->n_ranges = n;
        f->width = width;
        f->known = true;
        return 0;
}

void iommu_facet_from_vtd(IommuFacet *f, uint64_t cap, uint64_t ecap) {
        /* VT-d: MGAW is cap[21:16] + 1; the page-table depths it supports
         * (SAGAW, cap[12:8]: 39, 48, 57 bits) bound what a domain maps;
         * SLLPS (cap[37:34]) adds 2M and 1G pages; second-stage
         * accessed/dirty bits (ecap SLADS, bit 45) work in scalable mode
         * (ecap SMTS, bit 43) only. */
        static const unsigned sagaw_width[] = { 30, 39, 48, 57, 64 };
        unsigned mgaw = ((cap >> 16) & 0x3f) + 1, sagaw = (cap >> 8) & 0x1f, sllps = (cap >> 34) & 0xf, width = 0;

        for (unsigned b = 0; b < G_N_ELEMENTS(sagaw_width); b++)
                if (sagaw & (1u << b))
                        width = sagaw_width[b];
        f->known = true;
        f->width = width ? MIN(mgaw, width) : mgaw;
        f->pgsizes = UINT64_C(1) << 12;
        if (sllps & 1)
                f->pgsizes |= UINT64_C(1) << 21;
        if (sllps & 2)
                f->pgsizes |= UINT64_C(1) << 30;
        f->dirty = ((ecap >> 43) & 1) && ((ecap >> 45) & 1) ? IOMMU_DIRTY_YES : IOMMU_DIRTY_NO;
}

#define TYPE1_INFO_SIZE 24u             /* struct vfio_iommu_type1_info */
#define TYPE1_INFO_PGSIZES (1u << 0)
#define TYPE1_INFO_CAPS (1u << 1)
#define TYPE1_CAP_IOVA_RANGE 1
#define CAP_HEADER_SIZE 8u

/* The IOVA range capability: nr_iovas after the header, then the ranges. */
static int parse_iova_ranges(IommuFacet *f, const uint8_t *cap, size_t avail) {
        uint32_t n;

        if (avail < CAP_HEADER_SIZE + 8)
                return -EBADMSG;
        n = unaligned_read_le32(cap + CAP_HEADER_SIZE);
        if (n == 0 || n > IOMMU_FACET_MAX_RANGES || (avail - CAP_HEADER_SIZE - 8) / 16 < n)
                return -EBADMSG;
        for (uint32_t i = 0; i < n; i++) {
                const uint8_t *p = cap + CAP_HEADER_SIZE + 8 + 16 * i;

                f->ranges[i] = (IommuRange) { unaligned_read_le64(p), unaligned_read_le64(p + 8) };
        }
        qsort(f->ranges, n, sizeof(IommuRange), compare_range);
        for (uint32_t i = 0; i < n; i++)
                if (f->ranges[i].start > f->ranges[i].end || (i > 0 && f->ranges[i].start <= f->ranges[i - 1].end))
                        return -EBADMSG;
        f->n_ranges = n;
        /* the width the highest IOVA needs */
        f->width = 64 - __builtin_clzll(f->ranges[n - 1].end | 1);
        return 0;
}

int iommu_facet_from_type1_info(IommuFacet *f, const void *info, size_t len) {
        const uint8_t *p = info;
        IommuFacet g = *f;
        uint32_t flags, off;
        unsigned hops = 0;

        if (len < TYPE1_INFO_SIZE || unaligned_read_le32(p) > len)
                return -EBADMSG;
        flags = unaligned_read_le32(p + 4);
        if (flags & TYPE1_INFO_PGSIZES)
                g.pgsizes = unaligned_read_le64(p + 8);
        off = flags & TYPE1_INFO_CAPS ? unaligned_read_le32(p + 16) : 0;
        /* a chain that loops or leaves the buffer is the kernel's bug, not ours to follow */
        while (off != 0) {
                int r;

                if (off < TYPE1_INFO_SIZE || off > len - CAP_HEADER_SIZE || ++hops > 16)
                        return -EBADMSG;
                if (unaligned_read_le16(p + off) == TYPE1_CAP_IOVA_RANGE &&
                    (r = parse_iova_ranges(&g, p + off, len - off)) < 0)
                        return r;
                off = unaligned_read_le32(p + off + 4);
        }
        g.known = true;
        *f = g;
        return 0;
}

static char *page_sizes(uint64_t bitmap) {
        static const char units[] = "KMGTPE";
        GString *s = g_string_new(NULL);

        for (unsigned b = 0; b < 64; b++) {
                if (!(bitmap & (UINT64_C(1) << b)))
                        continue;
                if (s->len)
                        g_string_append_c(s, ',');
                if (b < 10)
                        g_string_append_printf(s, "%" PRIu64, UINT64_C(1) << b);
                else
                        g_string_append_printf(s, "%u%c", 1u << (b % 10), units[b / 10 - 1]);
        }
        return g_string_free(s, FALSE);
}

/* The first part of [s, e] that no range of t covers; false if none. */
static bool first_hole(const IommuFacet *t, uint64_t s, uint64_t e, IommuRange *ret) {
        uint64_t cur = s;

        for (unsigned i = 0; i < t->n_ranges; i++) {
                const IommuRange *r = &t->ranges[i];

                if (r->end < cur)
                        continue;
                if (r->start > cur) {
                        *ret = (IommuRange) { cur, MIN(e, r->start - 1) };
                        return true;
                }
                if (r->end >= e)
                        return false;
                cur = r->end + 1;
        }
        *ret = (IommuRange) { cur, e };
        return true;
}

typedef struct Findings {
        GString *bad;           /* what fails, "; "-separated */
        char *unknown;          /* the first field that cannot be judged */
} Findings;

static void fails(Findings *x, const char *format, ...) G_GNUC_PRINTF(2, 3);
static void fails(Findings *x, const char *format, ...) {
        va_list ap;

        if (x->bad->len)
                g_string_append(x->bad, "; ");
        va_start(ap, format);
        g_string_append_vprintf(x->bad, format, ap);
        va_end(ap);
}

static void cannot_judge(Findings *x, const char *what) {
        if (!x->unknown)
                x->unknown = g_strdup_printf("the target's IOMMU %s: not known", what);
}

static bool judge_width(const IommuFacet *src, const IommuFacet *tgt, Findings *x) {
        if (!src->width)
                return true;
        if (!tgt->width)
                cannot_judge(x, "address width");
        else if (tgt->width < src->width) {
                fails(x, "target IOMMU maps %u bits, source %u", tgt->width, src->width);
                return false;
        }
        return true;
}

static void judge_ranges(const IommuFacet *src, const IommuFacet *tgt, Findings *x) {
        IommuRange hole;

        if (!src->n_ranges)
                return;
        if (!tgt->n_ranges) {
                cannot_judge(x, "IOVA ranges");
                return;
        }
        for (unsigned i = 0; i < src->n_ranges; i++)
                if (first_hole(tgt, src->ranges[i].start, src->ranges[i].end, &hole)) {
                        fails(x, "target IOMMU cannot map IOVA 0x%" PRIx64 "-0x%" PRIx64 ", which the source's could",
                              hole.start, hole.end);
                        return;
                }
}

static void judge_pgsizes(const IommuFacet *src, const IommuFacet *tgt, Findings *x) {
        g_autofree char *missing = NULL, *had = NULL;

        if (!src->pgsizes)
                return;
        if (!tgt->pgsizes) {
                cannot_judge(x, "page sizes");
                return;
        }
        if (!(src->pgsizes & ~tgt->pgsizes))
                return;
        missing = page_sizes(src->pgsizes & ~tgt->pgsizes);
        had = page_sizes(tgt->pgsizes);
        fails(x, "target IOMMU lacks page sizes %s of the source's (it has %s)", missing, had);
}

static void judge_dirty(const IommuFacet *src, const IommuFacet *tgt, Findings *x) {
        if (src->dirty != IOMMU_DIRTY_YES)
                return;
        if (tgt->dirty == IOMMU_DIRTY_UNKNOWN)
                cannot_judge(x, "dirty tracking");
        else if (tgt->dirty == IOMMU_DIRTY_NO)
                fails(x, "target IOMMU has no dirty tracking, the source's had");
}

IommuVerdict iommu_facet_judge(const IommuFacet *src, const IommuFacet *tgt, char **ret_reason) {
        Findings x = { .bad = g_string_new(NULL) };
        IommuVerdict v;

        if (!src->known || src->none) {
                *ret_reason = g_strdup(src->none ? "the source has no IOMMU of its own" : "the source states no IOMMU");
                g_string_free(x.bad, TRUE);
                return IOMMU_VERDICT_COMPATIBLE;
        }
        if (!tgt->known || tgt->none) {
                *ret_reason = g_strdup(tgt->none ? "the target has no IOMMU translation of its own"
                                                 : "the target's IOMMU is not known");
                g_string_free(x.bad, TRUE);
                return tgt->none ? IOMMU_VERDICT_COMPATIBLE : IOMMU_VERDICT_UNKNOWN;
        }
        /* a narrower target also misses ranges: the width says it */
        if (judge_width(src, tgt, &x))
                judge_ranges(src, tgt, &x);
        judge_pgsizes(src, tgt, &x);
        judge_dirty(src, tgt, &x);

        if (x.bad->len) {
                v = IOMMU_VERDICT_INCOMPATIBLE;
                *ret_reason = g_string_free(x.bad, FALSE);
                g_free(x.unknown);
                return v;
        }
        g_string_free(x.bad, TRUE);
        if (x.unknown) {
                *ret_reason = x.unknown;
                return IOMMU_VERDICT_UNKNOWN;
        }
        *ret_reason = g_strdup("the target's IOMMU covers the source's");
        return IOMMU_VERDICT_COMPATIBLE;
}
