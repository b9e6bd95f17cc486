/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <glib.h>

#include "migration/crc32c.h"
#include "migration/stream.h"

/* Not in crc32c.h: the portable path, whatever the CPU has. */
uint32_t crc32c_table(uint32_t crc, const void *data, size_t len);

#define HEAD 24u

/* ---- helpers ---- */

static void put16(uint8_t *p, uint16_t v) {
        p[0] = v;
        p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v) {
        put16(p, v);
        put16(p + 2, v >> 16);
}

static uint32_t get32(const uint8_t *p) {
        return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t) p[3] << 24;
}

static GBytes *random_bytes(size_t len) {
        uint8_t *p = g_malloc(len ?: 1);

        for (size_t i = 0; i < len; i++)
                p[i] = g_test_rand_int_range(0, 256);
        return g_bytes_new_take(p, len);
}

/* A record as written, or an event as read. */
typedef struct Rec {
        StreamEventType type;
        StreamRecordKind kind;
        GBytes *data;
} Rec;

static void rec_clear(void *p) {
        Rec *r = p;

        g_clear_pointer(&r->data, g_bytes_unref);
}

static GArray *recs_new(void) {
        GArray *a = g_array_new(false, true, sizeof(Rec));

        g_array_set_clear_func(a, rec_clear);
        return a;
}

static void recs_add(GArray *a, StreamRecordKind kind, size_t len) {
        Rec r = { STREAM_EVENT_DATA, kind, random_bytes(len) };

        g_array_append_val(a, r);
}

/* Header, the records in order with sequence numbers 0.., END with the
 * right totals. offsets[i] is where record i starts (the END record last). */
static GByteArray *build(const StreamHeader *h, GArray *recs, GArray *offsets) {
        GByteArray *out = g_byte_array_new();
        uint64_t total = 0;
        uint32_t seq = 0;

        g_assert_cmpint(stream_write_header(out, h), ==, 0);
        for (; seq < recs->len; seq++) {
                const Rec *r = &g_array_index(recs, Rec, seq);
                size_t len;
                const void *p = g_bytes_get_data(r->data, &len);

                if (offsets)
                        g_array_append_vals(offsets, &(guint) { out->len }, 1);
                g_assert_cmpint(stream_write_record(out, r->kind, seq, p, len), ==, 0);
                total += len;
        }
        if (offsets)
                g_array_append_vals(offsets, &(guint) { out->len }, 1);
        g_assert_cmpint(stream_write_end(out, seq, total, recs->len), ==, 0);
        return out;
}

/* 94 header bytes */
static const StreamHeader small_header = {
        .migration_type = (char *) "mtty-v1",
        .migration_version = (char *) "1.2",
        .device = (char *) "0000:3b:00.1",
        .iommu = (char *) "width=48 pgsizes=0x40201000 dirty=no",
        .migration_flags = 0x5,
        .expected_size = 1234,
};

static GByteArray *build_bare(void) {
        g_autoptr(GArray) recs = recs_new();

        return build(&small_header, recs, NULL);
}

typedef struct Outcome {
        GArray *events;         /* Rec, in order, HEADER and END included */
        StreamHeader header;
        bool have_header;
        int error;              /* the first error, or 0 */
        bool at_finish;         /* ... returned by stream_reader_finish() */
        char *message;
        uint64_t offset;
} Outcome;

static void outcome_clear(Outcome *o) {
        g_array_unref(o->events);
        stream_header_clear(&o->header);
        g_free(o->message);
}

static void copy_header(StreamHeader *to, const StreamHeader *from) {
        *to = (StreamHeader) {
                .migration_type = g_strdup(from->migration_type),
                .migration_version = g_strdup(from->migration_version),
                .device = g_strdup(from->device),
                .iommu = g_strdup(from->iommu),
                .migration_flags = from->migration_flags,
                .expected_size = from->expected_size,
        };
}

/* Takes events until NONE; false on error. */
static bool drain(StreamReader *reader, Outcome *o) {
        for (;;) {
                StreamEvent ev;
                int r = stream_reader_next(reader, &ev);
                Rec rec = {};

                if (r < 0) {
                        o->error = r;
                        g_assert_cmpint(ev.type, ==, STREAM_EVENT_NONE);
                        return false;
                }
                g_assert_cmpint(r, ==, 0);
                if (ev.type == STREAM_EVENT_NONE)
                        return true;
                rec.type = ev.type;
                if (ev.type == STREAM_EVENT_DATA) {
                        rec.kind = ev.kind;
                        rec.data = g_bytes_new(ev.data, ev.len);
                } else if (ev.type == STREAM_EVENT_HEADER) {
                        g_assert_false(o->have_header);
                        g_assert_nonnull(stream_reader_header(reader));
                        copy_header(&o->header, stream_reader_header(reader));
                        o->have_header = true;
                }
                g_array_append_val(o->events, rec);
        }
}

/* Feeds data in chunks of 'chunk' bytes (0: random sizes, small and
 * large), taking events after each push, then finishes. */
static void outcome_read(Outcome *o, const uint8_t *data, size_t len, size_t chunk) {
        g_autoptr(StreamReader) reader = stream_reader_new();
        size_t at = 0;

        *o = (Outcome) { .events = recs_new() };
        g_assert_null(stream_reader_header(reader));
        g_assert_null(stream_reader_error(reader));

        while (at < len) {
                size_t n = chunk;
                int r;

                if (n == 0)
                        n = g_test_rand_bit() ? (size_t) g_test_rand_int_range(1, 64)
                                              : (size_t) g_test_rand_int_range(1, 2 * STREAM_MAX_RECORD);
                n = MIN(n, len - at);
                r = stream_reader_push(reader, data + at, n);
                at += n;
                if (r < 0) {
                        o->error = r;
                        break;
                }
                if (!drain(reader, o))
                        break;
        }
        if (o->error == 0) {
                o->error = stream_reader_finish(reader);
                o->at_finish = o->error < 0;
        }
        o->offset = stream_reader_offset(reader);
        if (o->error < 0) {
                StreamEvent ev;

                g_assert_nonnull(stream_reader_error(reader));
                o->message = g_strdup(stream_reader_error(reader));
                /* Sticky: every call repeats the error. */
                g_assert_cmpint(stream_reader_next(reader, &ev), ==, o->error);
                g_assert_cmpint(ev.type, ==, STREAM_EVENT_NONE);
                g_assert_cmpint(stream_reader_push(reader, "x", 1), ==, o->error);
                g_assert_cmpint(stream_reader_finish(reader), ==, o->error);
                g_assert_cmpstr(stream_reader_error(reader), ==, o->message);
        } else
                g_assert_null(stream_reader_error(reader));
}

static bool rec_equal(const Rec *a, const Rec *b) {
        if (a->type != b->type)
                return false;
        if (a->type != STREAM_EVENT_DATA)
                return true;
        return a->kind == b->kind && g_bytes_equal(a->data, b->data);
}

/* The events, if the reader delivered exactly recs between HEADER and END. */
static void assert_events(const Outcome *o, const StreamHeader *h, GArray *recs) {
        g_assert_cmpint(o->error, ==, 0);
        g_assert_cmpuint(o->events->len, ==, recs->len + 2);
        g_assert_cmpint(g_array_index(o->events, Rec, 0).type, ==, STREAM_EVENT_HEADER);
        for (guint i = 0; i < recs->len; i++)
                g_assert_true(rec_equal(&g_array_index(o->events, Rec, i + 1), &g_array_index(recs, Rec, i)));
        g_assert_cmpint(g_array_index(o->events, Rec, recs->len + 1).type, ==, STREAM_EVENT_END);

        g_assert_true(o->have_header);
        g_assert_cmpstr(o->header.migration_type, ==, h->migration_type ?: "");
        g_assert_cmpstr(o->header.migration_version, ==, h->migration_version ?: "");
        g_assert_cmpstr(o->header.device, ==, h->device ?: "");
        g_assert_cmpstr(o->header.iommu, ==, h->iommu ?: "");
        g_assert_cmpuint(o->header.migration_flags, ==, h->migration_flags);
        g_assert_cmpuint(o->header.expected_size, ==, h->expected_size);
}

/* The DATA events delivered are the first of recs, unaltered, and at most
 * max_data of them. */
static void assert_prefix(const Outcome *o, GArray *recs, guint max_data) {
        guint data = 0;

        for (guint i = 0; i < o->events->len; i++) {
                const Rec *e = &g_array_index(o->events, Rec, i);

                if (e->type != STREAM_EVENT_DATA)
                        continue;
                g_assert_cmpuint(data, <, recs->len);
                g_assert_true(rec_equal(e, &g_array_index(recs, Rec, data)));
                data++;
        }
        g_assert_cmpuint(data, <=, max_data);
}

static void assert_refused(const Outcome *o, int error, const char *fragment) {
        g_assert_cmpint(o->error, ==, error);
        g_assert_nonnull(o->message);
        if (fragment && !strstr(o->message, fragment))
                g_error("message \"%s\" lacks \"%s\"", o->message, fragment);
        /* END may only have gone out before bytes that came after it. */
        if (!strstr(o->message, "trailing data"))
                for (guint i = 0; i < o->events->len; i++)
                        g_assert_cmpint(g_array_index(o->events, Rec, i).type, !=, STREAM_EVENT_END);
}

static void assert_bad_whole(const uint8_t *data, size_t len, int error, const char *fragment) {
        Outcome o;

        outcome_read(&o, data, len, SIZE_MAX);
        assert_refused(&o, error, fragment);
        outcome_clear(&o);
}

/* Reads data whole and byte by byte, and refuses it. */
static void assert_bad(const uint8_t *data, size_t len, int error, const char *fragment) {
        Outcome o;

        assert_bad_whole(data, len, error, fragment);
        outcome_read(&o, data, len, 1);
        assert_refused(&o, error, fragment);
        outcome_clear(&o);
}

/* ---- crc32c ---- */

/* Bit by bit, straight from the definition: the reference. */
static uint32_t crc_reference(uint32_t crc, const uint8_t *p, size_t len) {
        crc = ~crc;
        while (len--) {
                crc ^= *p++;
                for (unsigned k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
}

static void test_crc_vectors(void) {
        uint8_t buf[32];

        g_assert_cmphex(crc32c(0, "123456789", 9), ==, 0xE3069283);
        g_assert_cmphex(crc32c_table(0, "123456789", 9), ==, 0xE3069283);
        g_assert_cmphex(crc32c(0, "", 0), ==, 0);
        g_assert_cmphex(crc32c(0x12345678, NULL, 0), ==, 0x12345678);

        /* RFC 3720, B.4 */
        memset(buf, 0, sizeof buf);
        g_assert_cmphex(crc32c(0, buf, sizeof buf), ==, 0x8A9136AA);
        memset(buf, 0xff, sizeof buf);
        g_assert_cmphex(crc32c(0, buf, sizeof buf), ==, 0x62A8AB43);
        for (unsigned i = 0; i < sizeof buf; i++)
                buf[i] = i;
        g_assert_cmphex(crc32c(0, buf, sizeof buf), ==, 0x46DD794E);
        for (unsigned i = 0; i < sizeof buf; i++)
                buf[i] = 31 - i;
        g_assert_cmphex(crc32c(0, buf, sizeof buf), ==, 0x113FDB5C);

        g_test_message("crc32c implementation: %s", crc32c_implementation());
        g_assert_true(g_str_equal(crc32c_implementation(), "sse4.2") ||
                      g_str_equal(crc32c_implementation(), "table"));
}

static void test_crc_alignments(void) {
        g_autoptr(GBytes) bytes = random_bytes(300 + 16);
        const uint8_t *data = g_bytes_get_data(bytes, NULL);

        for (size_t align = 0; align < 16; align++)
                for (size_t len = 0; len <= 300; len++) {
                        uint32_t want = crc_reference(0, data + align, len);

                        g_assert_cmphex(crc32c(0, data + align, len), ==, want);
                        g_assert_cmphex(crc32c_table(0, data + align, len), ==, want);
                }
}

static void test_crc_chaining(void) {
        g_autoptr(GBytes) bytes = random_bytes(100000);
        const uint8_t *data = g_bytes_get_data(bytes, NULL);
        uint32_t whole = crc32c(0, data, 100000);

        g_assert_cmphex(whole, ==, crc_reference(0, data, 100000));
        for (unsigned i = 0; i < 200; i++) {
                size_t cut = i < 100 ? i : (size_t) g_test_rand_int_range(0, 100001);

                g_assert_cmphex(crc32c(crc32c(0, data, cut), data + cut, 100000 - cut), ==, whole);
                g_assert_cmphex(crc32c_table(crc32c_table(0, data, cut), data + cut, 100000 - cut), ==, whole);
        }
}

/* The hardware path has three-lane loops for long (3 x 8192) and short
 * (3 x 256) stretches: lengths around those edges, at odd alignments. */
static void test_crc_hw_vs_table(void) {
        static const size_t edges[] = { 767, 768, 769, 24575, 24576, 24577, 24576 + 768, 49152 + 767, 1 << 20 };
        g_autoptr(GBytes) bytes = random_bytes((1 << 20) + 64);
        const uint8_t *data = g_bytes_get_data(bytes, NULL);

        if (!g_str_equal(crc32c_implementation(), "sse4.2"))
                g_test_message("no SSE4.2: crc32c() is the table path, comparing it with itself");
        for (size_t i = 0; i < G_N_ELEMENTS(edges); i++)
                for (size_t align = 0; align < 9; align++) {
                        uint32_t want = crc32c_table(0, data + align, edges[i]);

                        g_assert_cmphex(crc32c(0, data + align, edges[i]), ==, want);
                        g_assert_cmphex(crc32c(0x89abcdef, data + align, edges[i]), ==,
                                        crc32c_table(0x89abcdef, data + align, edges[i]));
                }
        for (unsigned i = 0; i < 300; i++) {
                size_t align = g_test_rand_int_range(0, 64);
                size_t len = g_test_rand_int_range(0, i < 150 ? 4096 : (1 << 20));

                g_assert_cmphex(crc32c(0, data + align, len), ==, crc32c_table(0, data + align, len));
        }
        g_assert_cmphex(crc32c_table(0, data, 70000), ==, crc_reference(0, data, 70000));
}

/* ---- round trips ---- */

static void test_round_trip_empty(void) {
        static const StreamHeader empty = {};
        g_autoptr(GArray) recs = recs_new();
        g_autoptr(GByteArray) s = build(&empty, recs, NULL);
        Outcome o;

        /* 36-byte header (four empty strings), one 40-byte END record */
        g_assert_cmpuint(s->len, ==, 36 + 24 + 16);
        outcome_read(&o, s->data, s->len, SIZE_MAX);
        assert_events(&o, &empty, recs);
        g_assert_cmpuint(o.offset, ==, s->len);
        outcome_clear(&o);
}

static void test_round_trip_long_strings(void) {
        g_autofree char *type = g_strnfill(STREAM_MAX_STRING, 'a');
        g_autofree char *device = g_strnfill(STREAM_MAX_STRING, 'd');
        GString *version = g_string_new(NULL);
        g_autoptr(GArray) recs = recs_new();
        StreamHeader h = {
                .migration_type = type,
                .device = device,
                .migration_flags = 0xffffffff,
                .expected_size = UINT64_MAX,
        };
        Outcome o;

        /* The maximum in bytes, with multi-byte characters in it. */
        memcpy(type, "\xc3\xa9t\xc3\xa9", 6);
        /* The version is opaque: any byte but NUL. */
        for (unsigned i = 0; i < STREAM_MAX_STRING; i++)
                g_string_append_c(version, 1 + i % 255);
        h.migration_version = version->str;
        recs_add(recs, STREAM_RECORD_STOPCOPY, 3);

        g_autoptr(GByteArray) s = build(&h, recs, NULL);
        outcome_read(&o, s->data, s->len, SIZE_MAX);
        assert_events(&o, &h, recs);
        outcome_clear(&o);
        outcome_read(&o, s->data, s->len, 1);
        assert_events(&o, &h, recs);
        outcome_clear(&o);
        g_string_free(version, true);
}

static GArray *assorted(void) {
        static const size_t sizes[] = { 1, 0, 7, 4096, 65537, STREAM_MAX_RECORD, 24 };
        GArray *recs = recs_new();

        for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
                recs_add(recs, STREAM_RECORD_PRECOPY, sizes[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++)
                recs_add(recs, STREAM_RECORD_STOPCOPY, sizes[G_N_ELEMENTS(sizes) - 1 - i]);
        return recs;
}

static void test_round_trip_splits(void) {
        g_autoptr(GArray) recs = assorted();
        g_autoptr(GByteArray) s = build(&small_header, recs, NULL);
        static const size_t chunks[] = { SIZE_MAX, 1, 2, 3, 23, 24, 25, 4096, STREAM_MAX_RECORD + 24, 0, 0, 0, 0 };

        for (size_t i = 0; i < G_N_ELEMENTS(chunks); i++) {
                Outcome o;

                outcome_read(&o, s->data, s->len, chunks[i]);
                assert_events(&o, &small_header, recs);
                g_assert_cmpuint(o.offset, ==, s->len);
                outcome_clear(&o);
        }
}

static void test_many_records(void) {
        g_autoptr(GArray) recs = recs_new();
        Outcome o;

        for (unsigned i = 0; i < 2000; i++)
                recs_add(recs, i < 1500 ? STREAM_RECORD_PRECOPY : STREAM_RECORD_STOPCOPY,
                         g_test_rand_int_range(0, 300));
        g_autoptr(GByteArray) s = build(&small_header, recs, NULL);
        outcome_read(&o, s->data, s->len, 0);
        assert_events(&o, &small_header, recs);
        outcome_clear(&o);
}

/* The framing alone, payload from the caller's buffer, gives the same bytes. */
static void test_record_head(void) {
        g_autoptr(GByteArray) a = g_byte_array_new(), b = g_byte_array_new();
        uint8_t head[HEAD];

        g_assert_cmpint(stream_write_record(a, STREAM_RECORD_STOPCOPY, 7, "payload", 7), ==, 0);
        stream_write_record_head(head, STREAM_RECORD_STOPCOPY, 7, 7, crc32c(0, "payload", 7));
        g_byte_array_append(b, head, sizeof head);
        g_byte_array_append(b, (const uint8_t *) "payload", 7);
        g_assert_cmpmem(a->data, a->len, b->data, b->len);

        /* The documented layout, field by field. */
        g_assert_cmpuint(get32(head), ==, 2);
        g_assert_cmpuint(get32(head + 4), ==, 7);
        g_assert_cmpuint(get32(head + 8), ==, 7);
        g_assert_cmphex(get32(head + 12), ==, crc32c(0, "payload", 7));
        g_assert_cmphex(get32(head + 16), ==, crc32c(0, head, 16));
        g_assert_cmpuint(get32(head + 20), ==, 0);
}

static void test_header_layout(void) {
        g_autoptr(GByteArray) s = g_byte_array_new();

        g_byte_array_append(s, (const uint8_t *) "junk", 4);    /* appends, at any offset */
        g_assert_cmpint(stream_write_header(s, &small_header), ==, 0);
        const uint8_t *h = s->data + 4;
        size_t len = s->len - 4;

        g_assert_cmpmem(h, 8, "VFIOMIG\x01", 8);
        g_assert_cmpuint(h[8] | h[9] << 8, ==, 2);
        g_assert_cmpuint(h[10] | h[11] << 8, ==, len);
        g_assert_cmphex(get32(h + 12), ==, 5);
        g_assert_cmpuint(get32(h + 16), ==, 1234);
        g_assert_cmpuint(get32(h + 20), ==, 0);
        g_assert_cmpuint(h[24] | h[25] << 8, ==, 7);
        g_assert_cmpmem(h + 26, 7, "mtty-v1", 7);
        g_assert_cmpuint(len, ==, 24 + 2 + 7 + 2 + 3 + 2 + 12 + 2 + strlen(small_header.iommu) + 4);
        g_assert_cmpmem(h + len - 4 - strlen(small_header.iommu), strlen(small_header.iommu), small_header.iommu,
                        strlen(small_header.iommu));
        g_assert_cmphex(get32(h + len - 4), ==, crc32c(0, h, len - 4));
}

/* ---- writer refusals ---- */

static void test_writer_refuses(void) {
        g_autofree char *over = g_strnfill(STREAM_MAX_STRING + 1, 'x');
        g_autoptr(GByteArray) s = g_byte_array_new();
        g_autofree uint8_t *big = g_malloc0(STREAM_MAX_RECORD + 1);
        StreamHeader h;

        h = small_header, h.migration_type = over;
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.migration_version = over;
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.device = over;
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.migration_type = (char *) "\xff";
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.device = (char *) "a\xc3";
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.iommu = over;
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        h = small_header, h.iommu = (char *) "\xff";
        g_assert_cmpint(stream_write_header(s, &h), ==, -EINVAL);
        g_assert_cmpint(stream_write_record(s, STREAM_RECORD_PRECOPY, 0, big, STREAM_MAX_RECORD + 1), ==, -EINVAL);
        g_assert_cmpint(stream_write_record(s, STREAM_RECORD_END, 0, big, 16), ==, -EINVAL);
        g_assert_cmpint(stream_write_record(s, 0, 0, big, 1), ==, -EINVAL);
        g_assert_cmpuint(s->len, ==, 0);

        h = small_header, h.migration_version = (char *) "\xff\xfe";  /* opaque: fine */
        g_assert_cmpint(stream_write_header(s, &h), ==, 0);
}

/* ---- corruption ---- */

/* A small stream with all parts: header, PRECOPY, STOPCOPY, an empty
 * STOPCOPY, END. Every single bit flip anywhere must be refused, and no
 * record at or after the flip may be delivered. */
static void test_bit_flips(void) {
        g_autoptr(GArray) recs = recs_new();
        g_autoptr(GArray) offsets = g_array_new(false, false, sizeof(guint));
        guint flips = 0;

        recs_add(recs, STREAM_RECORD_PRECOPY, 5);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 9);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 0);
        g_autoptr(GByteArray) s = build(&small_header, recs, offsets);

        for (size_t pos = 0; pos < s->len; pos++) {
                guint record = 0;       /* records that end before pos */

                while (record < recs->len && g_array_index(offsets, guint, record + 1) <= pos)
                        record++;
                for (unsigned bit = 0; bit < 8; bit++)
                        for (size_t chunk = 1; chunk != 0; chunk = chunk == 1 ? SIZE_MAX : 0) {
                                Outcome o;

                                s->data[pos] ^= 1u << bit;
                                outcome_read(&o, s->data, s->len, chunk);
                                s->data[pos] ^= 1u << bit;

                                /* The version field may turn into another
                                 * version; everything else is corruption. */
                                assert_refused(&o, pos == 8 || pos == 9 ? -EPROTONOSUPPORT : -EBADMSG, NULL);
                                assert_prefix(&o, recs, record);
                                if (pos < g_array_index(offsets, guint, 0))
                                        g_assert_false(o.have_header);
                                outcome_clear(&o);
                                flips++;
                        }
        }
        g_test_message("%u bit flips in a %u-byte stream refused", flips, s->len);
}

static void test_truncation(void) {
        g_autoptr(GArray) recs = recs_new();
        g_autoptr(GArray) offsets = g_array_new(false, false, sizeof(guint));

        recs_add(recs, STREAM_RECORD_PRECOPY, 100);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 1);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 0);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 30);
        g_autoptr(GByteArray) s = build(&small_header, recs, offsets);

        for (size_t cut = 0; cut <= s->len; cut++)
                for (size_t chunk = 1; chunk != 0; chunk = chunk == 1 ? SIZE_MAX : 0) {
                        Outcome o;
                        guint complete = 0;

                        while (complete < recs->len && g_array_index(offsets, guint, complete + 1) <= cut)
                                complete++;
                        outcome_read(&o, s->data, cut, chunk);
                        if (cut == s->len)
                                assert_events(&o, &small_header, recs);
                        else {
                                assert_refused(&o, -EBADMSG, "truncated");
                                g_assert_true(o.at_finish);
                                assert_prefix(&o, recs, complete);
                                /* everything complete was delivered */
                                g_assert_cmpuint(o.events->len, ==, complete + (cut >= g_array_index(offsets, guint, 0)));
                        }
                        outcome_clear(&o);
                }
}

static void test_truncation_messages(void) {
        g_autoptr(GArray) recs = recs_new();
        g_autoptr(GArray) offsets = g_array_new(false, false, sizeof(guint));
        guint hl;

        recs_add(recs, STREAM_RECORD_PRECOPY, 4096);
        g_autoptr(GByteArray) s = build(&small_header, recs, offsets);
        hl = g_array_index(offsets, guint, 0);

        assert_bad(s->data, 0, -EBADMSG, "truncated: empty input");
        assert_bad(s->data, 5, -EBADMSG, "truncated: end of input inside the header (5 bytes)");
        assert_bad(s->data, 20, -EBADMSG, "inside the header (20 of 94 bytes)");
        assert_bad(s->data, hl, -EBADMSG, "truncated: end of input after the header, before the END record");
        assert_bad(s->data, hl + 5, -EBADMSG, "inside the head of record 0 (5 of 24 bytes)");
        assert_bad(s->data, hl + 24 + 12, -EBADMSG, "truncated: end of input inside record 0 (12 of 4096 payload bytes)");
        assert_bad(s->data, hl + 24 + 4096, -EBADMSG, "after record 0, before the END record");
        assert_bad(s->data, s->len - 1, -EBADMSG, "inside the END record 1 (15 of 16 payload bytes)");
}

static void test_payload_crc_message(void) {
        g_autoptr(GArray) recs = recs_new();
        g_autoptr(GArray) offsets = g_array_new(false, false, sizeof(guint));
        g_autofree char *want = NULL;
        guint at;

        recs_add(recs, STREAM_RECORD_PRECOPY, 10);
        recs_add(recs, STREAM_RECORD_PRECOPY, 4096);
        g_autoptr(GByteArray) s = build(&small_header, recs, offsets);
        at = g_array_index(offsets, guint, 1);
        s->data[at + HEAD + 4000] ^= 0x10;
        want = g_strdup_printf("record 1 at offset %u: payload CRC mismatch (stored 0x%08x, computed 0x%08x)", at,
                               get32(s->data + at + 12), crc32c(0, s->data + at + HEAD, 4096));

        Outcome o;
        outcome_read(&o, s->data, s->len, SIZE_MAX);
        assert_refused(&o, -EBADMSG, NULL);
        g_assert_cmpstr(o.message, ==, want);
        g_assert_cmpuint(o.offset, ==, at);
        assert_prefix(&o, recs, 1);
        g_assert_cmpuint(o.events->len, ==, 2);        /* HEADER, record 0 */
        outcome_clear(&o);
}

/* A reader that has no bytes yet, or only pushes of none, has no buffer
 * storage either: every call must still be defined (the sanitizer build
 * reports NULL pointer arithmetic here). */
static void test_empty_input(void) {
        static const uint8_t one = 0x01;
        StreamEvent ev;

        for (int pushes = 0; pushes < 3; pushes++) {
                g_autoptr(StreamReader) r = stream_reader_new();

                for (int i = 0; i < pushes; i++) {
                        g_assert_cmpint(stream_reader_push(r, NULL, 0), ==, 0);
                        g_assert_cmpint(stream_reader_push(r, &one, 0), ==, 0);
                        g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
                        g_assert_cmpint(ev.type, ==, STREAM_EVENT_NONE);
                }
                g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
                g_assert_cmpint(ev.type, ==, STREAM_EVENT_NONE);
                g_assert_null(stream_reader_header(r));
                g_assert_cmpuint(stream_reader_offset(r), ==, 0);
                g_assert_cmpint(stream_reader_finish(r), ==, -EBADMSG);
                g_assert_cmpstr(stream_reader_error(r), ==, "truncated: empty input, no stream header");
        }

        /* One byte that cannot start the magic: refused at once, and the
         * empty pushes after it change nothing. */
        g_autoptr(StreamReader) r = stream_reader_new();
        g_assert_cmpint(stream_reader_push(r, &one, 1), ==, 0);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, -EBADMSG);
        g_assert_cmpint(stream_reader_push(r, NULL, 0), ==, -EBADMSG);
        g_assert_cmpint(stream_reader_finish(r), ==, -EBADMSG);
        g_assert_cmpstr(stream_reader_error(r), ==, "not a vfiomig stream: bad magic");
        g_assert_cmpuint(stream_reader_offset(r), ==, 0);
}

static void test_bad_magic(void) {
        g_autoptr(GByteArray) s = build_bare();
        g_autoptr(StreamReader) r = stream_reader_new();
        StreamEvent ev;

        /* Known wrong from the first byte, without waiting for more. */
        g_assert_cmpint(stream_reader_push(r, "X", 1), ==, 0);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, -EBADMSG);
        g_assert_cmpstr(stream_reader_error(r), ==, "not a vfiomig stream: bad magic");

        for (size_t i = 0; i < 8; i++) {
                s->data[i] ^= 0x20;
                assert_bad(s->data, s->len, -EBADMSG, "bad magic");
                s->data[i] ^= 0x20;
        }
        s->data[7] = 2;
        assert_bad(s->data, s->len, -EBADMSG, "bad magic");
}

static void test_unknown_version(void) {
        g_autoptr(GByteArray) s = build_bare();

        for (unsigned v = 0; v < 4; v++) {
                if (v >= 1 && v <= STREAM_FORMAT_VERSION)
                        continue;
                put16(s->data + 8, v);
                /* The rest need not even be there. */
                assert_bad(s->data, 10, -EPROTONOSUPPORT, "unsupported stream format version");
                assert_bad(s->data, s->len, -EPROTONOSUPPORT, "unsupported stream format version");
        }
        put16(s->data + 8, 0x100);
        assert_bad(s->data, s->len, -EPROTONOSUPPORT, "version 256");
}

/* Header from raw parts with a valid CRC, to show the reader checks
 * what the writer would never produce. */
static GByteArray *raw_header(const char *const strings[3], const size_t lens[3], size_t extra) {
        GByteArray *s = g_byte_array_new();
        uint8_t fixed[24] = "VFIOMIG\x01", b[4];

        put16(fixed + 8, 1);
        g_byte_array_append(s, fixed, sizeof fixed);
        for (unsigned i = 0; i < 3; i++) {
                put16(b, lens[i]);
                g_byte_array_append(s, b, 2);
                g_byte_array_append(s, (const uint8_t *) strings[i], lens[i]);
        }
        for (size_t i = 0; i < extra; i++)
                g_byte_array_append(s, (const uint8_t *) "", 1);
        put16(s->data + 10, s->len + 4);
        put32(b, crc32c(0, s->data, s->len));
        g_byte_array_append(s, b, 4);
        return s;
}

static void assert_raw_header(const char *const strings[3], const size_t lens[3], size_t extra,
                              int error, const char *fragment) {
        g_autoptr(GByteArray) s = raw_header(strings, lens, extra);
        Outcome o;

        stream_write_end(s, 0, 0, 0);
        if (error < 0) {
                assert_bad(s->data, s->len, error, fragment);
                return;
        }
        outcome_read(&o, s->data, s->len, SIZE_MAX);
        g_assert_cmpint(o.error, ==, 0);
        outcome_clear(&o);
}

static void test_header_strings(void) {
        g_autofree char *over = g_strnfill(STREAM_MAX_STRING + 1, 'x');
        const char *ok[3] = { "t", "v", "d" };
        const size_t ok_lens[3] = { 1, 1, 1 };

        assert_raw_header(ok, ok_lens, 0, 0, NULL);
        for (unsigned i = 0; i < 3; i++) {
                const char *s[3] = { "t", "v", "d" };
                size_t lens[3] = { 1, 1, 1 };

                s[i] = "a\0b", lens[i] = 3;
                assert_raw_header(s, lens, 0, -EBADMSG, "contains a NUL byte");
                s[i] = over, lens[i] = STREAM_MAX_STRING + 1;
                assert_raw_header(s, lens, 0, -EBADMSG, "exceeds the maximum 4096");
                s[i] = over, lens[i] = STREAM_MAX_STRING;
                assert_raw_header(s, lens, 0, 0, NULL);
                s[i] = "\xc3\x28", lens[i] = 2;
                assert_raw_header(s, lens, 0, i == 1 ? 0 : -EBADMSG, "not valid UTF-8");
        }
        assert_raw_header(ok, ok_lens, 1, -EBADMSG, "1 unexpected bytes after the device string");

        /* A header length outside what three strings can take. */
        g_autoptr(GByteArray) s = raw_header(ok, ok_lens, 0);
        put16(s->data + 10, 33);
        assert_bad(s->data, s->len, -EBADMSG, "header: length 33 out of range [34, 16420]");
        put16(s->data + 10, 16421);
        assert_bad(s->data, s->len, -EBADMSG, "header: length 16421 out of range");
        /* A string length that overruns, behind a valid CRC. */
        g_autoptr(GByteArray) t = raw_header(ok, ok_lens, 0);
        put16(t->data + 24 + 3 + 3, 5);
        put32(t->data + t->len - 4, crc32c(0, t->data, t->len - 4));
        assert_bad(t->data, t->len, -EBADMSG, "device string of 5 bytes overruns the header");
}

/* Version 2 added the IOMMU facet after the device string; a version 1
 * stream (the raw headers above) reads with none, and version 2 checks
 * its fourth string like the others. */
static void test_header_versions(void) {
        const char *ok[3] = { "t", "v", "d" };
        const size_t ok_lens[3] = { 1, 1, 1 };
        g_autoptr(GByteArray) v1 = raw_header(ok, ok_lens, 0);
        g_autoptr(GByteArray) v2 = g_byte_array_new();
        Outcome o;

        stream_write_end(v1, 0, 0, 0);
        outcome_read(&o, v1->data, v1->len, SIZE_MAX);
        g_assert_cmpint(o.error, ==, 0);
        g_assert_cmpstr(o.header.iommu, ==, "");
        outcome_clear(&o);

        g_assert_cmpint(stream_write_header(v2, &small_header), ==, 0);
        g_assert_cmpuint(v2->data[8], ==, 2);
        /* the facet string's length, then its bytes, end the header */
        g_assert_cmpuint(v2->data[v2->len - 4 - strlen(small_header.iommu) - 2], ==, strlen(small_header.iommu));
        v2->data[v2->len - 4 - 1] = 0;         /* a NUL in the facet, behind a valid CRC */
        put32(v2->data + v2->len - 4, crc32c(0, v2->data, v2->len - 4));
        stream_write_end(v2, 0, 0, 0);
        assert_bad(v2->data, v2->len, -EBADMSG, "IOMMU facet string contains a NUL byte");
        /* a version 2 header too short for four strings */
        put16(v2->data + 10, 35);
        assert_bad(v2->data, v2->len, -EBADMSG, "header: length 35 out of range [36, 16420]");
}

/* The example of man org.vfiomig1(5), "STREAM FORMAT", is what the
 * writer produces. */
static void test_man_page_example(void) {
        static const StreamHeader h = { .migration_type = (char *) "mtty", .migration_version = (char *) "1",
                                        .device = (char *) "mdev0", .iommu = (char *) "none",
                                        .migration_flags = 0x5, .expected_size = 3 };
        g_autoptr(GByteArray) want = g_byte_array_new(), got = g_byte_array_new();
        g_autofree char *page = NULL;
        g_auto(GStrv) lines = NULL;
        const char *example;

        g_assert_true(g_file_get_contents(STREAM_MAN_PAGE, &page, NULL, NULL));
        example = strstr(page, "# STREAM FORMAT");
        g_assert_nonnull(example);
        example = strstr(example, "## Example");
        g_assert_nonnull(example);
        lines = g_strsplit(example, "\n", -1);
        for (char **l = lines; *l; l++) {
                g_auto(GStrv) words = NULL;

                if (!g_regex_match_simple("^[0-9a-f]{8}: ", *l, 0, 0))
                        continue;
                words = g_strsplit(*l + 10, " ", 17);
                for (unsigned i = 0; i < 16 && words[i] && strlen(words[i]) == 2; i++) {
                        uint8_t b = (uint8_t) g_ascii_strtoull(words[i], NULL, 16);

                        g_byte_array_append(want, &b, 1);
                }
        }
        g_assert_cmpint(stream_write_header(got, &h), ==, 0);
        g_assert_cmpint(stream_write_record(got, STREAM_RECORD_STOPCOPY, 0, "abc", 3), ==, 0);
        g_assert_cmpint(stream_write_end(got, 1, 3, 1), ==, 0);
        g_assert_cmpmem(got->data, got->len, want->data, want->len);
}

/* Appends a record head with any fields and a valid head CRC. */
static void append_head(GByteArray *s, uint32_t kind, uint32_t len, uint32_t seq, uint32_t crc, uint32_t reserved) {
        uint8_t head[HEAD];

        stream_write_record_head(head, kind, seq, len, crc);
        put32(head + 20, reserved);
        g_byte_array_append(s, head, sizeof head);
}

static void test_record_length(void) {
        g_autoptr(GByteArray) s = g_byte_array_new();
        g_autoptr(StreamReader) r = stream_reader_new();
        g_autofree char *want = NULL;
        StreamEvent ev;

        stream_write_header(s, &small_header);
        want = g_strdup_printf("record 0 at offset %u: payload length 4194305 exceeds the maximum 4194304", s->len);
        append_head(s, STREAM_RECORD_PRECOPY, STREAM_MAX_RECORD + 1, 0, 0, 0);
        /* Refused on the head alone: no payload needs to arrive. */
        g_assert_cmpint(stream_reader_push(r, s->data, s->len), ==, 0);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
        g_assert_cmpint(ev.type, ==, STREAM_EVENT_HEADER);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, -EBADMSG);
        g_assert_cmpstr(stream_reader_error(r), ==, want);

        g_byte_array_set_size(s, 0);
        stream_write_header(s, &small_header);
        append_head(s, STREAM_RECORD_PRECOPY, UINT32_MAX, 0, 0, 0);
        assert_bad(s->data, s->len, -EBADMSG, "payload length 4294967295 exceeds");

        /* END must carry exactly its 16 bytes */
        for (uint32_t len = 0; len < 40; len += 8) {
                g_byte_array_set_size(s, 0);
                stream_write_header(s, &small_header);
                append_head(s, STREAM_RECORD_END, len, 0, crc32c(0, "", 0), 0);
                g_byte_array_set_size(s, s->len + len);
                memset(s->data + s->len - len, 0, len);
                assert_bad(s->data, s->len, -EBADMSG, len == 16 ? "payload CRC mismatch" : "END record with");
        }
}

static void test_record_kind_and_reserved(void) {
        g_autoptr(GByteArray) s = g_byte_array_new();
        static const uint32_t kinds[] = { 0, 4, 0x100, UINT32_MAX };

        for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
                g_byte_array_set_size(s, 0);
                stream_write_header(s, &small_header);
                append_head(s, kinds[i], 0, 0, 0, 0);
                stream_write_end(s, 1, 0, 1);
                assert_bad(s->data, s->len, -EBADMSG, "unknown record kind");
        }
        g_byte_array_set_size(s, 0);
        stream_write_header(s, &small_header);
        append_head(s, STREAM_RECORD_PRECOPY, 0, 0, 0, 1u << 31);
        stream_write_end(s, 1, 0, 1);
        assert_bad(s->data, s->len, -EBADMSG, "reserved field is 0x80000000, must be 0");
}

static void test_sequence(void) {
        static const uint32_t orders[][4] = {
                { 1, 0, 2, 3 },         /* swapped */
                { 0, 0, 1, 2 },         /* duplicated */
                { 1, 2, 3, 4 },         /* not from 0 */
                { 0, 2, 3, 4 },         /* gap */
                { 0, 1, 2, 2 },         /* END repeats */
                { 0, 1, 2, 4 },         /* END skips */
        };
        static const char *const payloads[] = { "a", "bb", "ccc" };

        for (size_t i = 0; i < G_N_ELEMENTS(orders); i++) {
                g_autoptr(GByteArray) s = g_byte_array_new();

                stream_write_header(s, &small_header);
                for (unsigned k = 0; k < 3; k++)
                        stream_write_record(s, STREAM_RECORD_PRECOPY, orders[i][k], payloads[k], k + 1);
                stream_write_end(s, orders[i][3], 6, 3);
                assert_bad(s->data, s->len, -EBADMSG, "sequence number");
        }

        /* A record really swapped in place: bytes of 1 before bytes of 0. */
        g_autoptr(GByteArray) a = g_byte_array_new(), b = g_byte_array_new(), s = g_byte_array_new();
        stream_write_record(a, STREAM_RECORD_PRECOPY, 0, "first", 5);
        stream_write_record(b, STREAM_RECORD_PRECOPY, 1, "second", 6);
        stream_write_header(s, &small_header);
        g_byte_array_append(s, b->data, b->len);
        g_byte_array_append(s, a->data, a->len);
        stream_write_end(s, 2, 11, 2);
        assert_bad(s->data, s->len, -EBADMSG, "record 0 at offset 94: sequence number 1, expected 0");
}

static void test_end_totals(void) {
        static const uint64_t totals[][2] = { { 7, 3 }, { 5, 2 }, { 6, 1 }, { 6, 3 }, { 0, 0 }, { UINT64_MAX, 2 } };

        for (size_t i = 0; i < G_N_ELEMENTS(totals); i++) {
                g_autoptr(GByteArray) s = g_byte_array_new();

                stream_write_header(s, &small_header);
                stream_write_record(s, STREAM_RECORD_PRECOPY, 0, "abc", 3);
                stream_write_record(s, STREAM_RECORD_STOPCOPY, 1, "def", 3);
                stream_write_end(s, 2, totals[i][0], totals[i][1]);
                assert_bad(s->data, s->len, -EBADMSG, totals[i][0] != 6 ? "data bytes" : "data records");
        }
}

static void test_trailing(void) {
        g_autoptr(GByteArray) s = build_bare();
        size_t len = s->len;

        /* Byte by byte, each byte is refused as it comes: the exact
         * count only shows when they come in one piece. */
        g_byte_array_append(s, (const uint8_t *) "\0", 1);
        assert_bad(s->data, s->len, -EBADMSG, "1 byte of trailing data after the END record");
        g_byte_array_set_size(s, len + 2);
        assert_bad(s->data, s->len, -EBADMSG, "trailing data after the END record");
        assert_bad_whole(s->data, s->len, -EBADMSG, "2 bytes of trailing data after the END record");
        /* A whole second stream after the first */
        g_autoptr(GByteArray) again = build_bare();
        g_byte_array_set_size(s, len);
        g_byte_array_append(s, again->data, again->len);
        assert_bad(s->data, s->len, -EBADMSG, "trailing data after the END record");

        /* After the END event: the next push is refused. */
        g_autoptr(StreamReader) r = stream_reader_new();
        StreamEvent ev;

        g_assert_cmpint(stream_reader_push(r, s->data, len), ==, 0);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
        g_assert_cmpint(ev.type, ==, STREAM_EVENT_HEADER);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
        g_assert_cmpint(ev.type, ==, STREAM_EVENT_END);
        g_assert_cmpint(stream_reader_next(r, &ev), ==, 0);
        g_assert_cmpint(ev.type, ==, STREAM_EVENT_NONE);
        g_assert_cmpint(stream_reader_push(r, "", 0), ==, 0);
        g_assert_cmpint(stream_reader_push(r, "xyz", 3), ==, -EBADMSG);
        g_assert_cmpstr(stream_reader_error(r), ==, "3 bytes of trailing data after the END record");
        g_assert_cmpint(stream_reader_finish(r), ==, -EBADMSG);
}

static void test_precopy_after_stopcopy(void) {
        g_autoptr(GArray) recs = recs_new();

        recs_add(recs, STREAM_RECORD_PRECOPY, 3);
        recs_add(recs, STREAM_RECORD_STOPCOPY, 3);
        recs_add(recs, STREAM_RECORD_PRECOPY, 3);
        g_autoptr(GByteArray) s = build(&small_header, recs, NULL);
        Outcome o;

        outcome_read(&o, s->data, s->len, SIZE_MAX);
        assert_refused(&o, -EBADMSG, "record 2 at offset 148: PRECOPY record after a STOPCOPY record");
        assert_prefix(&o, recs, 2);
        outcome_clear(&o);
}

static void test_finish_with_events_pending(void) {
        g_autoptr(GByteArray) s = build_bare();
        g_autoptr(StreamReader) r = stream_reader_new();

        g_assert_cmpint(stream_reader_push(r, s->data, s->len), ==, 0);
        g_assert_cmpint(stream_reader_finish(r), ==, -EBADMSG);
        g_assert_nonnull(strstr(stream_reader_error(r), "events not taken"));
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/stream/header-versions", test_header_versions);
        g_test_add_func("/stream/man-page-example", test_man_page_example);
        g_test_add_func("/crc32c/vectors", test_crc_vectors);
        g_test_add_func("/crc32c/alignments", test_crc_alignments);
        g_test_add_func("/crc32c/chaining", test_crc_chaining);
        g_test_add_func("/crc32c/hw-vs-table", test_crc_hw_vs_table);
        g_test_add_func("/stream/round-trip/empty", test_round_trip_empty);
        g_test_add_func("/stream/round-trip/long-strings", test_round_trip_long_strings);
        g_test_add_func("/stream/round-trip/splits", test_round_trip_splits);
        g_test_add_func("/stream/round-trip/many-records", test_many_records);
        g_test_add_func("/stream/layout/record-head", test_record_head);
        g_test_add_func("/stream/layout/header", test_header_layout);
        g_test_add_func("/stream/writer/refuses", test_writer_refuses);
        g_test_add_func("/stream/corrupt/bit-flips", test_bit_flips);
        g_test_add_func("/stream/corrupt/truncation", test_truncation);
        g_test_add_func("/stream/corrupt/truncation-messages", test_truncation_messages);
        g_test_add_func("/stream/corrupt/payload-crc-message", test_payload_crc_message);
        g_test_add_func("/stream/corrupt/empty-input", test_empty_input);
        g_test_add_func("/stream/corrupt/magic", test_bad_magic);
        g_test_add_func("/stream/corrupt/version", test_unknown_version);
        g_test_add_func("/stream/corrupt/header-strings", test_header_strings);
        g_test_add_func("/stream/corrupt/record-length", test_record_length);
        g_test_add_func("/stream/corrupt/kind-and-reserved", test_record_kind_and_reserved);
        g_test_add_func("/stream/corrupt/sequence", test_sequence);
        g_test_add_func("/stream/corrupt/end-totals", test_end_totals);
        g_test_add_func("/stream/corrupt/trailing", test_trailing);
        g_test_add_func("/stream/corrupt/precopy-after-stopcopy", test_precopy_after_stopcopy);
        g_test_add_func("/stream/finish-with-events-pending", test_finish_with_events_pending);

        return g_test_run();
}
