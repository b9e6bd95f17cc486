/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What framing costs: CRC32C alone (hardware and table, and ISA-L when
 * built with it), and a stream written and read back through the real
 * writer and reader next to a bare loop doing the same work per byte in
 * the same run: every CRC and every copy the framed path makes, without
 * the framing. Prints numbers, asserts none: timing depends on the
 * machine. Exits non-zero only if the stream does not read back.
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
#define HEAD 24u                /* a record head, before its payload in every buffer */
/* Larger than the last-level cache, so that data comes from memory as it
 * would from a device or a socket, not from a warm cache. */
#define SOURCE (64u * MiB)
#define ROUNDS 7

static volatile uint32_t sink;

/* Everything here runs on one thread and waits for nothing, so its CPU
 * time is its cost; unlike the wall clock, it does not count the time
 * other processes of a busy machine had the CPU. */
static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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
        uint8_t *dst;           /* SOURCE bytes */
        uint8_t *mid;           /* one record and its head */
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

/* Into one record-sized buffer, as read() into a bounce buffer would. */
static int run_memcpy(const Bench *b, size_t total) {
        for (size_t i = 0; i < total / RECORD; i++)
                memcpy(b->dst, record(b, i), RECORD);
        sink = b->dst[0];
        return 0;
}

/* The framed path's work per byte, done bare. The sender's CRC reads the
 * payload where it lies; the reader's push copies it behind the head it
 * got first, and the reader's CRC reads that copy. The full writer
 * copies the record into its output buffer before the push: one copy
 * more. Buffers are allocated per run, as a framed run allocates its
 * writer and reader, with the sizes those grow to (a record and a little
 * for the output, the next power of two for the reader): the first touch
 * of fresh pages is worth several per cent of a run on this machine.
 * Payloads sit HEAD bytes in, as theirs do. */
static int bare(const Bench *b, size_t total, bool full_writer) {
        g_autofree uint8_t *out = g_malloc(RECORD + 64), *in = g_malloc(2 * RECORD);

        for (size_t i = 0; i < total / RECORD; i++) {
                const uint8_t *p = record(b, i);
                uint32_t sent = crc32c(0, p, RECORD);

                if (full_writer) {
                        memcpy(out + HEAD, p, RECORD);
                        p = out + HEAD;
                }
                memcpy(in + HEAD, p, RECORD);
                if (crc32c(0, in + HEAD, RECORD) != sent)
                        return -EBADMSG;
        }
        sink = in[HEAD];
        return 0;
}

static int run_bare_head(const Bench *b, size_t total) {
        return bare(b, total, false);
}

static int run_bare_full(const Bench *b, size_t total) {
        return bare(b, total, true);
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
static int framed(size_t total, const Bench *b, bool own_buffer) {
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
                         * caller's buffer, as vfiomigd's save does. */
                        uint8_t head[HEAD];

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
        return framed(total, b, false);
}

static int run_framed_head(const Bench *b, size_t total) {
        return framed(total, b, true);
}

/* MB/s (10^6 bytes per second of CPU time) of one run. */
static double run_once(const Bench *b, const char *name, run_fn fn, size_t total) {
        double start = now();
        int r = fn(b, total);

        if (r < 0) {
                fprintf(stderr, "%s: %s\n", name, g_strerror(-r));
                exit(EXIT_FAILURE);
        }
        return total / 1e6 / (now() - start);
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

/* Sorts v. */
static void print_spread(const char *name, double *v, const char *unit) {
        qsort(v, ROUNDS, sizeof *v, compare_double);
        printf("%-36s min %8.2f  median %8.2f  max %8.2f %s\n", name, v[0], v[ROUNDS / 2], v[ROUNDS - 1], unit);
}

static void measure(const Bench *b, const char *name, run_fn fn, size_t total) {
        double mbs[ROUNDS];

        for (unsigned i = 0; i < ROUNDS; i++)
                mbs[i] = run_once(b, name, fn, total);
        print_spread(name, mbs, "MB/s");
}

/* The two take turns, the order alternating, so that what the machine
 * does meanwhile falls on both; the ratio is taken per pair. */
static void compare(const Bench *b, const char *name, run_fn fn, const char *base_name, run_fn base, size_t total,
                    const char *ratio_name) {
        double mbs[ROUNDS], base_mbs[ROUNDS], ratio[ROUNDS];

        for (unsigned i = 0; i < ROUNDS; i++) {
                if (i % 2)
                        mbs[i] = run_once(b, name, fn, total);
                base_mbs[i] = run_once(b, base_name, base, total);
                if (!(i % 2))
                        mbs[i] = run_once(b, name, fn, total);
                ratio[i] = mbs[i] / base_mbs[i];
        }
        print_spread(name, mbs, "MB/s");
        print_spread(base_name, base_mbs, "MB/s");
        qsort(ratio, ROUNDS, sizeof *ratio, compare_double);
        printf("RATIO %s: median %.3f  (min %.3f, max %.3f over %d pairs)\n", ratio_name, ratio[ROUNDS / 2],
               ratio[0], ratio[ROUNDS - 1], ROUNDS);
}

int main(int argc, char *argv[]) {
        size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024, total = mib * MiB;
        g_autofree uint8_t *src = g_malloc(SOURCE), *dst = g_malloc(SOURCE), *mid = g_malloc(RECORD + HEAD);
        Bench b = { src, dst, mid };

        if (mib == 0) {
                fprintf(stderr, "usage: %s [MiB]\n", argv[0]);
                return EXIT_FAILURE;
        }
        fill_random(src, SOURCE);
        memset(dst, 0, SOURCE);         /* fault the pages in before timing */
        memset(mid, 0, RECORD + HEAD);

        printf("crc32c implementation: %s; %zu MiB in %u KiB records, %d runs each, MB/s of CPU time\n",
               crc32c_implementation(), mib, RECORD / 1024, ROUNDS);
        measure(&b, "crc32c (crc32c())", run_crc_hw, total);
        /* The table path is several times slower: a quarter of the data. */
        measure(&b, "crc32c (table fallback)", run_crc_table, MAX(total / 4, RECORD));
#if HAVE_ISAL
        if ((~crc32_iscsi((unsigned char *) src, RECORD, ~0u)) != crc32c(0, src, RECORD)) {
                fprintf(stderr, "ISA-L crc32_iscsi disagrees with crc32c()\n");
                return EXIT_FAILURE;
        }
        measure(&b, "crc32c (ISA-L crc32_iscsi)", run_crc_isal, total);
#else
        printf("%-36s (not built: no libisal)\n", "crc32c (ISA-L crc32_iscsi)");
#endif
        measure(&b, "memcpy into a 1 MiB buffer", run_memcpy, total);
        /* vfiomigd's path: save CRCs its buffer and writes the head and
         * the payload from it; load pushes what it reads into the reader */
        compare(&b, "framed, head-only writer", run_framed_head, "bare: 2 CRC passes + 1 copy", run_bare_head,
                total, "framed-head-only/bare (2 CRC + 1 copy)");
        compare(&b, "framed, full writer", run_framed, "bare: 2 CRC passes + 2 copies", run_bare_full, total,
                "framed-full/bare (2 CRC + 2 copies)");
        return EXIT_SUCCESS;
}
