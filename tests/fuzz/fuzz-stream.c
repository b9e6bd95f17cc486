/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stream reader against any bytes, pushed in pieces of any size.
 *
 * Input: two bytes that seed the piece sizes, then the stream. The same
 * stream is read twice, once in one push and once in pieces; both reads
 * must agree on every delivered record and on the verdict, since a
 * reader whose answer depends on how the socket happened to split the
 * bytes could pass a record in one run and refuse it in the next. */
#include <errno.h>

#include "migration/crc32c.h"
#include "fuzz.h"
#include "migration/stream.h"

typedef struct Outcome {
        GArray *records;        /* Rec */
        bool header, end;
        int error;              /* 0: finish() accepted the stream */
        uint64_t offset;
} Outcome;

typedef struct Rec {
        StreamRecordKind kind;
        size_t len;
        uint32_t crc;
} Rec;

/* Takes events until NONE; returns the reader's error or 0. */
static int drain(StreamReader *r, Outcome *o) {
        for (;;) {
                StreamEvent ev;
                int k = stream_reader_next(r, &ev);

                if (k < 0) {
                        check(k == -EBADMSG || k == -EPROTONOSUPPORT);
                        check(stream_reader_error(r) != NULL);
                        /* sticky: the caller cannot skip a bad record */
                        check(stream_reader_next(r, &ev) == k && ev.type == STREAM_EVENT_NONE);
                        return k;
                }
                switch (ev.type) {
                case STREAM_EVENT_NONE:
                        return 0;
                case STREAM_EVENT_HEADER:
                        check(!o->header && stream_reader_header(r));
                        o->header = true;
                        break;
                case STREAM_EVENT_DATA:
                        check(o->header && !o->end);
                        check(ev.kind == STREAM_RECORD_PRECOPY || ev.kind == STREAM_RECORD_STOPCOPY);
                        check(ev.len <= STREAM_MAX_RECORD);
                        g_array_append_val(o->records, ((Rec) { ev.kind, ev.len, crc32c(0, ev.data, ev.len) }));
                        break;
                case STREAM_EVENT_END:
                        check(o->header && !o->end);
                        o->end = true;
                        break;
                }
        }
}

static void read_stream(const uint8_t *data, size_t size, uint32_t seed, Outcome *o) {
        g_autoptr(StreamReader) r = stream_reader_new();
        size_t pos = 0;
        int k = 0;

        o->records = g_array_new(FALSE, FALSE, sizeof(Rec));
        while (pos < size && k == 0) {
                size_t n = size - pos;

                if (seed) {
                        /* mostly small pieces, now and then a big one */
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        n = MIN(n, (seed & 7) == 0 ? seed % 65536 + 1 : seed % 32 + 1);
                }
                k = stream_reader_push(r, data + pos, n);
                pos += n;
                if (k == 0)
                        k = drain(r, o);
        }
        if (k == 0)
                k = stream_reader_finish(r);
        if (k < 0) {
                check(stream_reader_error(r) != NULL);
                /* every later call repeats the first error */
                check(stream_reader_push(r, "x", 1) == k);
                check(stream_reader_finish(r) == k);
        } else
                check(o->end);
        o->error = k;
        o->offset = stream_reader_offset(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Outcome whole = {}, pieces = {};
        uint32_t seed;

        if (size < 2)
                return 0;
        seed = (uint32_t) data[0] << 8 | data[1] | 0x10000;    /* never 0 */
        data += 2;
        size -= 2;

        read_stream(data, size, 0, &whole);
        read_stream(data, size, seed, &pieces);

        check(whole.error == pieces.error);
        check(whole.records->len == pieces.records->len);
        for (guint i = 0; i < whole.records->len; i++) {
                Rec *a = &g_array_index(whole.records, Rec, i), *b = &g_array_index(pieces.records, Rec, i);

                check(a->kind == b->kind && a->len == b->len && a->crc == b->crc);
        }
        /* The refused unit is named at the same offset either way; only
         * bytes after END differ: arriving later, they are refused after
         * END was delivered, not instead of it. */
        if (!(pieces.end && pieces.error < 0))
                check(whole.offset == pieces.offset);
        g_array_unref(whole.records);
        g_array_unref(pieces.records);
        return 0;
}
