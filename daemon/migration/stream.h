/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* The vfiomig stream format: how a device's opaque migration data is
 * framed in files and sockets (not between two local devices, which copy
 * raw). Pure encoding and decoding; no I/O. See man org.vfiomig1(5),
 * "STREAM FORMAT", for the byte layout.
 *
 * A stream is a header (magic, format version, the source's identity,
 * migration flags, expected size, CRC32C) followed by records (kind,
 * length, sequence number, CRC32C, payload) and one END record carrying
 * totals. All integers little-endian. The reader releases a record's
 * payload only after its CRC matched, and reports anything after END as
 * corruption, so nothing unverified can reach a device. */

#define STREAM_MAGIC            "VFIOMIG\x01"   /* 8 bytes */
#define STREAM_FORMAT_VERSION   2       /* 1 (no IOMMU facet) is still read */
#define STREAM_MAX_RECORD       (4u * 1024 * 1024)   /* payload bytes per record */
#define STREAM_MAX_STRING       4096                 /* identity strings */

typedef enum StreamRecordKind {
        STREAM_RECORD_PRECOPY = 1,
        STREAM_RECORD_STOPCOPY = 2,
        STREAM_RECORD_END = 3,
} StreamRecordKind;

typedef struct StreamHeader {
        char *migration_type;   /* identity of the source (compat map) */
        char *migration_version;
        char *device;           /* source device name, informational */
        char *iommu;            /* the source's IOMMU facet; "" from a version 1 stream */
        uint32_t migration_flags;
        uint64_t expected_size; /* payload bytes expected in all; 0 unknown */
} StreamHeader;

void stream_header_clear(StreamHeader *h);

/* Writing. Each function appends its bytes to out and returns 0, or
 * -EINVAL (nothing appended) for what the reader would refuse: an
 * identity string over STREAM_MAX_STRING bytes, a migration type, device or
 * IOMMU facet that is not UTF-8 (NULL strings are written as empty), a payload over
 * STREAM_MAX_RECORD, a kind other than PRECOPY or STOPCOPY. */
int stream_write_header(GByteArray *out, const StreamHeader *h);
/* A record of payload len <= STREAM_MAX_RECORD; seq counts records from 0. */
int stream_write_record(GByteArray *out, StreamRecordKind kind, uint32_t seq, const void *payload, size_t len);
/* Only the framing of a record, for callers that send the payload from
 * their own buffer: 'crc' is crc32c over the payload. */
void stream_write_record_head(uint8_t out[24], StreamRecordKind kind, uint32_t seq, uint32_t len, uint32_t crc);
/* The END record with the totals of all data records before it. */
int stream_write_end(GByteArray *out, uint32_t seq, uint64_t total_bytes, uint64_t records);

/* Reading: feed bytes as they arrive, take events as they complete. */
typedef struct StreamReader StreamReader;

typedef enum StreamEventType {
        STREAM_EVENT_NONE,      /* need more input */
        STREAM_EVENT_HEADER,    /* header valid: see stream_reader_header() */
        STREAM_EVENT_DATA,      /* a verified record's payload */
        STREAM_EVENT_END,       /* END record valid; totals matched */
} StreamEventType;

typedef struct StreamEvent {
        StreamEventType type;
        StreamRecordKind kind;  /* DATA: PRECOPY or STOPCOPY */
        const uint8_t *data;    /* DATA: valid until the next reader call */
        size_t len;
} StreamEvent;

StreamReader *stream_reader_new(void);
void stream_reader_free(StreamReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StreamReader, stream_reader_free);

/* Appends input. -EBADMSG once the stream is known to be corrupt (also
 * for any byte pushed after the END event). The reader keeps only what
 * was pushed and not yet consumed: taking events until NONE after each
 * push bounds it to one record (head + STREAM_MAX_RECORD) plus one push;
 * -ENOBUFS (not sticky) if the caller let more than 4 GiB pile up. */
int stream_reader_push(StreamReader *r, const void *data, size_t len);
/* Next event, or STREAM_EVENT_NONE when more input is needed. -EBADMSG on
 * corruption (bad magic, CRC mismatch, bad length, wrong sequence, bytes
 * after END, totals that disagree), -EPROTONOSUPPORT for an unknown
 * format version. Returns 0 and fills ev (NONE included) or a negative
 * errno; after an error every call (push, next, finish) returns that
 * same error. END is withheld if bytes already follow it. */
int stream_reader_next(StreamReader *r, StreamEvent *ev);
/* At end of input: 0 if END was seen and nothing follows it, else
 * -EBADMSG (truncated). Call it only after next() returned NONE: the END
 * event alone does not prove that nothing follows. */
int stream_reader_finish(StreamReader *r);
const StreamHeader *stream_reader_header(StreamReader *r);
/* Why the stream was refused, naming the record and offset. */
const char *stream_reader_error(StreamReader *r);
/* Stream bytes verified and delivered as events; after an error, the
 * offset of the header or record that was refused. */
uint64_t stream_reader_offset(StreamReader *r);
