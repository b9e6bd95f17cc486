/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "migration/crc32c.h"
#include "migration/stream.h"
#include "unaligned.h"

/* Byte layout: see man org.vfiomig1(5), "STREAM FORMAT".
 *
 * Header: magic[8] version:u16 length:u16 flags:u32 expected_size:u64,
 *         then strings (u16 length + bytes): migration_type,
 *         migration_version, device, and from version 2 on the IOMMU
 *         facet; then CRC32C of all bytes before it. Version 1 streams
 *         (no facet) are still read.
 * Record: kind:u32 length:u32 seq:u32 payload_crc:u32 head_crc:u32
 *         reserved:u32, then the payload. head_crc covers bytes [0,16) so
 *         that a damaged length is refused before anything is allocated
 *         or waited for; reserved is outside it and must therefore be 0.
 * END:    a record of 16 payload bytes: data bytes:u64, data records:u64. */

#define HEADER_FIXED    24u
#define HEADER_STRINGS(version) ((version) >= 2 ? 4u : 3u)
#define HEADER_MIN(version) (HEADER_FIXED + HEADER_STRINGS(version) * 2 + 4)
#define HEADER_MAX      (HEADER_FIXED + 4 * (2 + STREAM_MAX_STRING) + 4)
#define HEAD_SIZE       24u
#define END_PAYLOAD     16u

G_STATIC_ASSERT(HEADER_MAX <= UINT16_MAX);
G_STATIC_ASSERT(sizeof(STREAM_MAGIC) - 1 == 8);

static bool is_data_kind(uint32_t kind) {
        return kind == STREAM_RECORD_PRECOPY || kind == STREAM_RECORD_STOPCOPY;
}

/* ---- writing ---- */

void stream_header_clear(StreamHeader *h) {
        if (!h)
                return;
        g_clear_pointer(&h->migration_type, g_free);
        g_clear_pointer(&h->migration_version, g_free);
        g_clear_pointer(&h->device, g_free);
        g_clear_pointer(&h->iommu, g_free);
        h->migration_flags = 0;
        h->expected_size = 0;
}

/* The identity strings are compared by the target, so refuse on the way
 * out what the reader would refuse on the way in. migration_version is
 * opaque to us (the kernel proposal only promises a string), so any bytes
 * but NUL pass; the other two must be UTF-8 since they end up on D-Bus. */
static int check_string(const char *s, bool utf8) {
        size_t len = strlen(s);

        if (len > STREAM_MAX_STRING)
                return -EINVAL;
        if (utf8 && !g_utf8_validate_len(s, len, NULL))
                return -EINVAL;
        return 0;
}

static void append_string(GByteArray *out, const char *s) {
        uint8_t len[2];

        unaligned_write_le16(len, strlen(s));
        g_byte_array_append(out, len, sizeof len);
        g_byte_array_append(out, (const uint8_t *) s, strlen(s));
}

int stream_write_header(GByteArray *out, const StreamHeader *h) {
        const char *type = h->migration_type ?: "", *version = h->migration_version ?: "",
                   *device = h->device ?: "", *iommu = h->iommu ?: "";
        uint8_t fixed[HEADER_FIXED], crc[4];
        size_t start = out->len, len;
        int r;

        if ((r = check_string(type, true)) < 0 ||
            (r = check_string(version, false)) < 0 ||
            (r = check_string(device, true)) < 0 ||
            (r = check_string(iommu, true)) < 0)
                return r;

        len = HEADER_MIN(STREAM_FORMAT_VERSION) + strlen(type) + strlen(version) + strlen(device) + strlen(iommu);
        memcpy(fixed, STREAM_MAGIC, 8);
        unaligned_write_le16(fixed + 8, STREAM_FORMAT_VERSION);
        unaligned_write_le16(fixed + 10, len);
        unaligned_write_le32(fixed + 12, h->migration_flags);
        unaligned_write_le64(fixed + 16, h->expected_size);
        g_byte_array_append(out, fixed, sizeof fixed);
        append_string(out, type);
        append_string(out, version);
        append_string(out, device);
        append_string(out, iommu);

        unaligned_write_le32(crc, crc32c(0, out->data + start, out->len - start));
        g_byte_array_append(out, crc, sizeof crc);
        g_assert(out->len - start == len);
        return 0;
}

void stream_write_record_head(uint8_t out[24], StreamRecordKind kind, uint32_t seq, uint32_t len, uint32_t crc) {
        unaligned_write_le32(out, kind);
        unaligned_write_le32(out + 4, len);
        unaligned_write_le32(out + 8, seq);
        unaligned_write_le32(out + 12, crc);
        unaligned_write_le32(out + 16, crc32c(0, out, 16));
        unaligned_write_le32(out + 20, 0);
}

static void append_record(GByteArray *out, StreamRecordKind kind, uint32_t seq, const void *payload, size_t len) {
        uint8_t head[HEAD_SIZE];

        stream_write_record_head(head, kind, seq, len, crc32c(0, payload, len));
        g_byte_array_append(out, head, sizeof head);
        if (len > 0)
                g_byte_array_append(out, payload, len);
}

int stream_write_record(GByteArray *out, StreamRecordKind kind, uint32_t seq, const void *payload, size_t len) {
        /* END has its own function: its payload is not the caller's. */
        if (!is_data_kind(kind))
                return -EINVAL;
        if (len > STREAM_MAX_RECORD || (!payload && len > 0))
                return -EINVAL;
        append_record(out, kind, seq, payload, len);
        return 0;
}

int stream_write_end(GByteArray *out, uint32_t seq, uint64_t total_bytes, uint64_t records) {
        uint8_t payload[END_PAYLOAD];

        unaligned_write_le64(payload, total_bytes);
        unaligned_write_le64(payload + 8, records);
        append_record(out, STREAM_RECORD_END, seq, payload, sizeof payload);
        return 0;
}

/* ---- reading ---- */

typedef enum ReaderState {
        READ_HEADER,
        READ_HEAD,              /* waiting for a record head */
        READ_PAYLOAD,           /* head verified, waiting for the payload */
        READ_DONE,              /* END delivered: nothing may follow */
} ReaderState;

struct StreamReader {
        /* Unconsumed input is buf->data[pos..]; consumed bytes are dropped
         * on the next push, so that a DATA event's pointer stays valid
         * until the next call and the buffer never holds more than the
         * unit in progress plus what the caller pushed since. */
        GByteArray *buf;
        size_t pos;
        uint64_t offset;        /* stream offset of buf->data[pos] */

        ReaderState state;
        StreamHeader header;
        bool have_header;

        /* The record in progress (READ_PAYLOAD): its head is still at pos. */
        uint32_t kind, len, payload_crc;

        uint64_t seq;           /* sequence number the next record must carry */
        bool stopcopy_seen;
        uint64_t data_bytes, data_records;

        int error;
        char *error_message;
};

StreamReader *stream_reader_new(void) {
        StreamReader *r = g_new0(StreamReader, 1);

        r->buf = g_byte_array_new();
        return r;
}

void stream_reader_free(StreamReader *r) {
        if (!r)
                return;
        g_byte_array_unref(r->buf);
        stream_header_clear(&r->header);
        g_free(r->error_message);
        g_free(r);
}

static int fail(StreamReader *r, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(StreamReader *r, int error, const char *format, ...) {
        va_list ap;

        /* The first error sticks: every later call repeats it, so a caller
         * cannot skip over a bad record and carry on. */
        g_assert(error < 0 && r->error == 0);
        va_start(ap, format);
        r->error_message = g_strdup_vprintf(format, ap);
        va_end(ap);
        r->error = error;
        return error;
}

static int fail_trailing(StreamReader *r, size_t n) {
        return fail(r, -EBADMSG, "%zu byte%s of trailing data after the END record", n, n == 1 ? "" : "s");
}

static size_t available(const StreamReader *r) {
        return r->buf->len - r->pos;
}

static const uint8_t *input(const StreamReader *r) {
        /* A GByteArray that never held a byte has no storage, and even
         * NULL + 0 is undefined behaviour: hand out no pointer then. */
        if (available(r) == 0)
                return NULL;
        return r->buf->data + r->pos;
}

static void consume(StreamReader *r, size_t n) {
        r->pos += n;
        r->offset += n;
}

/* "record 3 at offset 4194328": the number is the position the record
 * must have, not the one its (perhaps damaged) head claims. */
static char *record_name(const StreamReader *r) {
        return g_strdup_printf("record %" PRIu64 " at offset %" PRIu64, r->seq, r->offset);
}

static int header_string(StreamReader *r, const uint8_t **p, const uint8_t *end, const char *what,
                         bool utf8, char **ret) {
        size_t len;

        if (end - *p < 2)
                return fail(r, -EBADMSG, "header: ends before the %s string", what);
        len = unaligned_read_le16(*p);
        *p += 2;
        if (len > STREAM_MAX_STRING)
                return fail(r, -EBADMSG, "header: %s string of %zu bytes exceeds the maximum %u",
                            what, len, STREAM_MAX_STRING);
        if ((size_t) (end - *p) < len)
                return fail(r, -EBADMSG, "header: %s string of %zu bytes overruns the header", what, len);
        if (memchr(*p, 0, len))
                return fail(r, -EBADMSG, "header: %s string contains a NUL byte", what);
        if (utf8 && !g_utf8_validate_len((const char *) *p, len, NULL))
                return fail(r, -EBADMSG, "header: %s string is not valid UTF-8", what);
        *ret = g_strndup((const char *) *p, len);
        *p += len;
        return 0;
}

static int parse_header_fields(StreamReader *r, unsigned version, const uint8_t *p, size_t len) {
        const uint8_t *end = p + len - 4;
        StreamHeader *h = &r->header;
        int k;

        h->migration_flags = unaligned_read_le32(p + 12);
        h->expected_size = unaligned_read_le64(p + 16);
        p += HEADER_FIXED;
        if ((k = header_string(r, &p, end, "migration type", true, &h->migration_type)) < 0 ||
            (k = header_string(r, &p, end, "migration version", false, &h->migration_version)) < 0 ||
            (k = header_string(r, &p, end, "device", true, &h->device)) < 0)
                return k;
        if (version >= 2 && (k = header_string(r, &p, end, "IOMMU facet", true, &h->iommu)) < 0)
                return k;
        if (!h->iommu)
                h->iommu = g_strdup("");
        /* No optional fields: anything else would be a writer bug, and a
         * later format bumps the version. */
        if (p != end)
                return fail(r, -EBADMSG, "header: %td unexpected bytes after the %s string", end - p,
                            version >= 2 ? "IOMMU facet" : "device");
        return 0;
}

static int read_header(StreamReader *r, StreamEvent *ev) {
        const uint8_t *p = input(r);
        size_t n = available(r);
        uint32_t stored, computed;
        unsigned version, len;
        int k;

        /* Magic and version come before the CRC: a stream of another
         * version may lay out (and checksum) its header differently, and a
         * file that is no stream at all deserves to be called that. */
        if (n == 0)
                return 0;
        if (memcmp(p, STREAM_MAGIC, MIN(n, 8u)) != 0)
                return fail(r, -EBADMSG, "not a vfiomig stream: bad magic");
        if (n < 10)
                return 0;
        version = unaligned_read_le16(p + 8);
        if (version < 1 || version > STREAM_FORMAT_VERSION)
                return fail(r, -EPROTONOSUPPORT, "unsupported stream format version %u (this reader knows 1 to %u)",
                            version, STREAM_FORMAT_VERSION);
        if (n < 12)
                return 0;
        len = unaligned_read_le16(p + 10);
        if (len < HEADER_MIN(version) || len > HEADER_MAX)
                return fail(r, -EBADMSG, "header: length %u out of range [%u, %u]", len, HEADER_MIN(version),
                            HEADER_MAX);
        if (n < len)
                return 0;

        stored = unaligned_read_le32(p + len - 4);
        computed = crc32c(0, p, len - 4);
        if (stored != computed)
                return fail(r, -EBADMSG, "header: CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                            stored, computed);
        if ((k = parse_header_fields(r, version, p, len)) < 0)
                return k;

        r->have_header = true;
        consume(r, len);
        r->state = READ_HEAD;
        ev->type = STREAM_EVENT_HEADER;
        return 0;
}

static int check_head(StreamReader *r, const uint8_t *p) {
        g_autofree char *name = record_name(r);
        uint32_t stored = unaligned_read_le32(p + 16), computed = crc32c(0, p, 16);
        uint32_t kind = unaligned_read_le32(p), len = unaligned_read_le32(p + 4), seq = unaligned_read_le32(p + 8), reserved = unaligned_read_le32(p + 20);

        if (stored != computed)
                return fail(r, -EBADMSG, "%s: head CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                            name, stored, computed);
        if (reserved != 0)
                return fail(r, -EBADMSG, "%s: reserved field is 0x%08" PRIx32 ", must be 0", name, reserved);
        if (kind != STREAM_RECORD_END && !is_data_kind(kind))
                return fail(r, -EBADMSG, "%s: unknown record kind %" PRIu32, name, kind);
        if (seq != r->seq)
                return fail(r, -EBADMSG, "%s: sequence number %" PRIu32 ", expected %" PRIu64, name, seq, r->seq);
        if (kind == STREAM_RECORD_END && len != END_PAYLOAD)
                return fail(r, -EBADMSG, "%s: END record with %" PRIu32 " payload bytes, must be %u",
                            name, len, END_PAYLOAD);
        if (len > STREAM_MAX_RECORD)
                return fail(r, -EBADMSG, "%s: payload length %" PRIu32 " exceeds the maximum %u",
                            name, len, STREAM_MAX_RECORD);
        /* Pre-copy data describes the running device; once stop-copy
         * data came, a device could only be handed stale state. */
        if (kind == STREAM_RECORD_PRECOPY && r->stopcopy_seen)
                return fail(r, -EBADMSG, "%s: PRECOPY record after a STOPCOPY record", name);
        return 0;
}

static int read_head(StreamReader *r) {
        const uint8_t *p = input(r);
        int k;

        if (available(r) < HEAD_SIZE)
                return 0;
        if ((k = check_head(r, p)) < 0)
                return k;
        r->kind = unaligned_read_le32(p);
        r->len = unaligned_read_le32(p + 4);
        r->payload_crc = unaligned_read_le32(p + 12);
        r->state = READ_PAYLOAD;
        return 0;
}

static int check_end(StreamReader *r, const uint8_t *payload) {
        g_autofree char *name = record_name(r);
        uint64_t bytes = unaligned_read_le64(payload), records = unaligned_read_le64(payload + 8);
        size_t trailing;

        if (bytes != r->data_bytes)
                return fail(r, -EBADMSG, "%s: END record says %" PRIu64 " data bytes, the records carried %" PRIu64,
                            name, bytes, r->data_bytes);
        if (records != r->data_records)
                return fail(r, -EBADMSG, "%s: END record says %" PRIu64 " data records, the stream had %" PRIu64,
                            name, records, r->data_records);
        trailing = available(r) - HEAD_SIZE - END_PAYLOAD;
        if (trailing > 0)
                return fail_trailing(r, trailing);
        return 0;
}

static int read_payload(StreamReader *r, StreamEvent *ev) {
        const uint8_t *payload;
        uint32_t computed;
        int k;

        if (available(r) < HEAD_SIZE + (size_t) r->len)
                return 0;
        payload = input(r) + HEAD_SIZE;

        computed = crc32c(0, payload, r->len);
        if (computed != r->payload_crc) {
                g_autofree char *name = record_name(r);

                return fail(r, -EBADMSG, "%s: payload CRC mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                            name, r->payload_crc, computed);
        }

        if (r->kind == STREAM_RECORD_END) {
                if ((k = check_end(r, payload)) < 0)
                        return k;
                r->state = READ_DONE;
                ev->type = STREAM_EVENT_END;
        } else {
                r->data_bytes += r->len;
                r->data_records++;
                r->stopcopy_seen |= r->kind == STREAM_RECORD_STOPCOPY;
                r->state = READ_HEAD;
                *ev = (StreamEvent) {
                        .type = STREAM_EVENT_DATA,
                        .kind = r->kind,
                        .data = payload,
                        .len = r->len,
                };
        }
        r->seq++;
        consume(r, HEAD_SIZE + r->len);
        return 0;
}

int stream_reader_push(StreamReader *r, const void *data, size_t len) {
        if (r->error < 0)
                return r->error;
        if (len == 0)
                return 0;
        if (r->state == READ_DONE)
                return fail_trailing(r, len);

        /* Drop what earlier events consumed; the pointers handed out with
         * them are void from this call on. */
        if (r->pos > 0) {
                g_byte_array_remove_range(r->buf, 0, r->pos);
                r->pos = 0;
        }
        /* GByteArray counts in guint; a caller that pushes gigabytes
         * without taking events gets an error, not a wrap-around. */
        if (len > G_MAXUINT - r->buf->len)
                return -ENOBUFS;
        g_byte_array_append(r->buf, data, len);
        return 0;
}

int stream_reader_next(StreamReader *r, StreamEvent *ev) {
        int k = 0;

        *ev = (StreamEvent) { .type = STREAM_EVENT_NONE };
        if (r->error < 0)
                return r->error;

        /* A head alone is no event: go on to its payload at once, so that
         * NONE really means "more input needed". */
        while (ev->type == STREAM_EVENT_NONE && k >= 0) {
                ReaderState before = r->state;

                switch (r->state) {
                case READ_HEADER:
                        k = read_header(r, ev);
                        break;
                case READ_HEAD:
                        k = read_head(r);
                        break;
                case READ_PAYLOAD:
                        k = read_payload(r, ev);
                        break;
                case READ_DONE:
                        return 0;
                }
                if (r->state == before && ev->type == STREAM_EVENT_NONE)
                        break;  /* no progress: need input */
        }
        return k;
}

static int fail_truncated(StreamReader *r) {
        size_t n = available(r);

        switch (r->state) {
        case READ_HEADER:
                if (n == 0)
                        return fail(r, -EBADMSG, "truncated: empty input, no stream header");
                if (n < 12)
                        return fail(r, -EBADMSG, "truncated: end of input inside the header (%zu bytes)", n);
                return fail(r, -EBADMSG, "truncated: end of input inside the header (%zu of %u bytes)",
                            n, unaligned_read_le16(input(r) + 10));
        case READ_HEAD:
                if (n == 0 && r->seq == 0)
                        return fail(r, -EBADMSG, "truncated: end of input after the header, before the END record");
                if (n == 0)
                        return fail(r, -EBADMSG, "truncated: end of input after record %" PRIu64 ", before the END record",
                                    r->seq - 1);
                return fail(r, -EBADMSG, "truncated: end of input inside the head of record %" PRIu64
                            " (%zu of %u bytes)", r->seq, n, HEAD_SIZE);
        case READ_PAYLOAD:
                return fail(r, -EBADMSG, "truncated: end of input inside %srecord %" PRIu64
                            " (%zu of %" PRIu32 " payload bytes)",
                            r->kind == STREAM_RECORD_END ? "the END " : "", r->seq, n - HEAD_SIZE, r->len);
        case READ_DONE:
                break;
        }
        g_assert_not_reached();
}

int stream_reader_finish(StreamReader *r) {
        StreamEvent ev;
        int k;

        if (r->error < 0)
                return r->error;
        if (r->state == READ_DONE)
                return 0;       /* trailing bytes were refused as they came */

        /* Whatever is still buffered gets parsed once more: corruption in
         * it is reported as such, and input the caller never took events
         * for is not blamed on the stream as truncation. */
        k = stream_reader_next(r, &ev);
        if (k < 0)
                return k;
        if (ev.type != STREAM_EVENT_NONE)
                return fail(r, -EBADMSG, "end of input with events not taken: "
                            "stream_reader_next() must return NONE before stream_reader_finish()");
        return fail_truncated(r);
}

const StreamHeader *stream_reader_header(StreamReader *r) {
        return r->have_header ? &r->header : NULL;
}

const char *stream_reader_error(StreamReader *r) {
        return r->error_message;
}

uint64_t stream_reader_offset(StreamReader *r) {
        return r->offset;
}
