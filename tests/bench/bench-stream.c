/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What framing costs: CRC32C alone (hardware and table, and ISA-L when
 * built with it), a stream written and read back through the real writer
 * and reader, and a plain memcpy of the same bytes in the same run.
 * Prints numbers, asserts none: timing depends on the machine. Exits
 * non-zero only if the stream does not read back.
 *
 *   bench-stream [MiB]      (default 1024, in 1 MiB records) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "migration/crc32c.h"
#include "migration/stream.h"

#if HAVE_ISAL
#include <isa-l/crc.h>
#endif

/* Not in crc32c.h: the portable path, whatever the CPU has. */
uint32_t crc32c_table(uint32_t crc, const void *data, size_t len);

#define MiB (1024u * 1024u)
#define RECORD MiB
/* Larger than the last-level cache, so that data comes from memory as it
 * would from a device or a socket, not from a warm cache. */
#define SOURCE (64u * MiB)
#define ROUNDS 3

static volatile uint32_t sink;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill_random(uint8_t *p, size_t len) {
        uint64_t x = 0x9E3779B97F4A7C15u;

        for (size_t i = 0; i + 8 <= len; i += 8) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                memcpy(p + i, &x, 8);
        }
}

typedef struct Bench {
        const uint8_t *src;
        uint8_t *dst;
        size_t total;           /* bytes per run */
} Bench;

/* The record at position i of a run, cycling through the source. */
static const uint8_t *record(const Bench *b, size_t i) {
        return b->src + (i * RECORD) % SOURCE;
}

typedef int (*run_fn)(const Bench *b, size_t total);

static int run_crc_hw(const Bench *b, size_t total) {
        uint32_t c = 0;

        for (size_t i = 0; i < total / RECORD; i++)
                c ^= crc32c(0, record(b, i), RECORD);
        sink = c;
        return 0;
}

static int run_crc_table(const Bench *b, size_t total) {
        uint32_t c = 0;

        for (size_t i = 0; i < total / RECORD; i++)
                c ^= crc32c_table(0, record(b, i), RECORD);
        sink = c;
        return 0;
}

#if HAVE_ISAL
/* ISA-L keeps the register as given: crc32_iscsi(p, n, ~0) ^ ~0 is
 * crc32c(0, p, n), checked before measuring. */
static int run_crc_isal(const Bench *b, size_t total) {
        uint32_t c = 0;

        for (size_t i = 0; i < total / RECORD; i++)
                c ^= ~crc32_iscsi((unsigned char *) record(b, i), RECORD, ~0u);
        sink = c;
        return 0;
}
#endif

/* Into one record-sized buffer, as read() into a bounce buffer would:
 * the framed path's buffers are that size too, so both stay in cache. */
static int run_memcpy(const Bench *b, size_t total) {
        for (size_t i = 0; i < total / RECORD; i++)
                memcpy(b->dst, record(b, i), RECORD);
        sink = b->dst[0];
        return 0;
}

/* Into a destination as large as the source: memory bandwidth only. */
static int run_memcpy_large(const Bench *b, size_t total) {
        for (size_t i = 0; i < total / RECORD; i++)
                memcpy(b->dst + (i * RECORD) % SOURCE, record(b, i), RECORD);
        sink = b->dst[0];
        return 0;
}

/* Takes the one DATA event a pushed record must give. */
static int take(StreamReader *reader, const uint8_t *want, size_t len) {
        StreamEvent ev;
        int r;

        r = stream_reader_next(reader, &ev);
        if (r < 0)
                return r;
        if (ev.type != STREAM_EVENT_DATA || ev.len != len || ev.data[len - 1] != want[len - 1])
                return -EBADMSG;
        sink = ev.data[0];
        return 0;
}

static int expect(StreamReader *reader, StreamEventType type) {
        StreamEvent ev;
        int r = stream_reader_next(reader, &ev);

        return r < 0 ? r : ev.type == type ? 0 : -EBADMSG;
}

/* Write and read back, record by record, as a sender and a receiver in
 * one process would: the writer's bytes go straight into the reader. */
static int framed(const Bench *b, size_t total, bool own_buffer) {
        static const StreamHeader h = { .migration_type = (char *) "bench", .device = (char *) "bench" };
        g_autoptr(StreamReader) reader = stream_reader_new();
        g_autoptr(GByteArray) out = g_byte_array_sized_new(RECORD + 64);
        size_t n = total / RECORD;
        int r;

        stream_write_header(out, &h);
        stream_reader_push(reader, out->data, out->len);
        if ((r = expect(reader, STREAM_EVENT_HEADER)) < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                const uint8_t *p = record(b, i);

                g_byte_array_set_size(out, 0);
                if (own_buffer) {
                        /* Framing only; the payload goes from the
                         * caller's buffer, as a socket sender would. */
                        uint8_t head[24];

                        stream_write_record_head(head, STREAM_RECORD_STOPCOPY, i, RECORD, crc32c(0, p, RECORD));
                        stream_reader_push(reader, head, sizeof head);
                        r = stream_reader_push(reader, p, RECORD);
                } else {
                        stream_write_record(out, STREAM_RECORD_STOPCOPY, i, p, RECORD);
                        r = stream_reader_push(reader, out->data, out->len);
                }
                if (r < 0 || (r = take(reader, p, RECORD)) < 0)
                        return r;
        }

        g_byte_array_set_size(out, 0);
        stream_write_end(out, n, (uint64_t) n * RECORD, n);
        stream_reader_push(reader, out->data, out->len);
        if ((r = expect(reader, STREAM_EVENT_END)) < 0)
                return r;
        return stream_reader_finish(reader);
}

static int run_framed(const Bench *b, size_t total) {
        return framed(b, total, false);
}

static int run_framed_head(const Bench *b, size_t total) {
        return framed(b, total, true);
}

/* Best of a few rounds, in MB/s (10^6 bytes per second). */
static double measure(const Bench *b, const char *name, run_fn fn, size_t total) {
        double best = 0;

        for (unsigned round = 0; round < ROUNDS; round++) {
                double start = now(), mbs;
                int r = fn(b, total);

                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", name, g_strerror(-r));
                        exit(EXIT_FAILURE);
                }
                mbs = total / 1e6 / (now() - start);
                best = MAX(best, mbs);
        }
        printf("%-32s %9.0f MB/s   (%zu MiB x %d, best)\n", name, best, total / MiB, ROUNDS);
        return best;
}

int main(int argc, char *argv[]) {
        size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
        g_autofree uint8_t *src = g_malloc(SOURCE), *dst = g_malloc(SOURCE);
        Bench b = { src, dst, mib * MiB };
        double framed_mbs, head_mbs, raw_mbs;

        if (mib == 0) {
                fprintf(stderr, "usage: %s [MiB]\n", argv[0]);
                return EXIT_FAILURE;
        }
        fill_random(src, SOURCE);
        memset(dst, 0, SOURCE);         /* fault the pages in before timing */

        printf("crc32c implementation: %s; %zu MiB in %u KiB records\n",
               crc32c_implementation(), mib, RECORD / 1024);
        measure(&b, "crc32c (crc32c())", run_crc_hw, b.total);
        /* The table path is several times slower: a quarter of the data. */
        measure(&b, "crc32c (table fallback)", run_crc_table, MAX(b.total / 4, RECORD));
#if HAVE_ISAL
        if ((~crc32_iscsi((unsigned char *) src, RECORD, ~0u)) != crc32c(0, src, RECORD)) {
                fprintf(stderr, "ISA-L crc32_iscsi disagrees with crc32c()\n");
                return EXIT_FAILURE;
        }
        measure(&b, "crc32c (ISA-L crc32_iscsi)", run_crc_isal, b.total);
#else
        printf("%-32s (not built: no libisal)\n", "crc32c (ISA-L crc32_iscsi)");
#endif
        raw_mbs = measure(&b, "raw memcpy (1 MiB buffer)", run_memcpy, b.total);
        measure(&b, "raw memcpy (64 MiB buffer)", run_memcpy_large, b.total);
        framed_mbs = measure(&b, "framed write+read", run_framed, b.total);
        head_mbs = measure(&b, "framed, head-only writer", run_framed_head, b.total);
        printf("ratio framed/raw (1 MiB buffer): %.2f, head-only writer: %.2f\n",
               framed_mbs / raw_mbs, head_mbs / raw_mbs);
        return EXIT_SUCCESS;
}
