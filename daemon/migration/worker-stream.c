/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <unistd.h>

#include "iommu-facet.h"
#include "migration/crc32c.h"
#include "names.h"
#include "util.h"
#include "vfio-uapi.h"
#include "migration/worker-internal.h"

/* A device's state through a stream: save writes the stream format
 * (stream.h) with the source's identity in the header, load verifies a
 * stream before the target sees a byte of it where it can. */

#define PREFETCH_MAX (64 * 1024 * 1024)

/* ---- save ---- */

typedef struct Records {
        uint32_t seq;
        uint64_t total, count;
} Records;

static int write_stream(Worker *w, const void *data, size_t len) {
        Xfer x = worker_xfer(w);
        int r = xfer_write_all(&x, &w->stream, data, len);

        if (r < 0)
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "writing %s: %s", w->stream_label,
                                   g_strerror(-r));
        return 0;
}

static int flush_stream(Worker *w) {
        Xfer x = worker_xfer(w);
        int r = xfer_flush(&x, &w->stream);

        if (r < 0)
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "writing %s: %s", w->stream_label,
                                   g_strerror(-r));
        if (!w->stream.socket && fsync(w->stream.fd) < 0 && errno != EINVAL && errno != EROFS)
                return worker_fail(w, -errno, MIGRATION_ERROR_DEVICE, "writing %s: %s", w->stream_label,
                                   g_strerror(errno));
        return 0;
}

/* Reads up to limit bytes of device data as records of one kind. */
static int save_records(Worker *w, StreamRecordKind kind, uint64_t limit, Records *rec) {
        WorkerDevice *s = worker_dev(w, 0);
        uint8_t *buf = w->buf;
        Xfer x = worker_xfer(w);

        while (limit > 0) {
                ssize_t n = xfer_read(&x, &s->data, buf, (size_t) MIN(limit, w->buf_size));
                uint8_t head[24];
                int r;

                if (n == -ENOMSG || n == 0)
                        break;          /* end (of the data available for now) */
                if (n < 0)
                        return worker_fail_device(w, (int) n, s, "reading the device state");
                stream_write_record_head(head, kind, rec->seq++, (uint32_t) n, crc32c(0, buf, (size_t) n));
                r = write_stream(w, head, sizeof(head));
                if (r >= 0)
                        r = write_stream(w, buf, (size_t) n);
                if (r < 0)
                        return r;
                limit -= MIN(limit, (uint64_t) n);
                rec->total += (uint64_t) n;
                rec->count++;
                worker_progress(w, (uint64_t) n);
        }
        return 0;
}

static int save_precopy(Worker *w, unsigned pair, uint64_t limit, void *userdata) {
        return save_records(w, STREAM_RECORD_PRECOPY, limit, userdata);
}

static int write_bytes(Worker *w, GByteArray *out, int r) {
        return r < 0 ? r : write_stream(w, out->data, out->len);
}

int worker_run_save(Worker *w) {
        WorkerDevice *s = worker_dev(w, 0);
        bool precopy = w->options.precopy && (s->flags & VFIO_MIGRATION_PRE_COPY);
        g_autoptr(GByteArray) out = g_byte_array_new();
        Records rec = {};
        int r;

        w->identity.expected_size = worker_expected_bytes(w);
        worker_set_expected(w, w->identity.expected_size);
        r = write_bytes(w, out, stream_write_header(out, &w->identity));
        if (r >= 0 && precopy) {
                worker_set_phase(w, MIGRATION_PRECOPY);
                r = worker_drive(w, s, VFIO_STATE_PRE_COPY);
                if (r >= 0)
                        r = worker_precopy(w, save_precopy, &rec);
        }
        if (r < 0)
                return r;

        worker_set_phase(w, MIGRATION_STOPCOPY);
        /* the downtime: the source stops until its data is in the stream */
        r = worker_open_window(w);
        if (r >= 0)
                r = worker_drive(w, s, VFIO_STATE_STOP_COPY);
        worker_down_phase(w, DOWN_COPY);
        if (r >= 0) {
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);

                r = save_records(w, STREAM_RECORD_STOPCOPY, UINT64_MAX, &rec);
                worker_down_data(w, now_usec(CLOCK_MONOTONIC) - t0);
        }
        if (r < 0)
                return r;
        worker_close_session(s);
        worker_end_downtime(w);
        worker_quiet(w, false);
        g_byte_array_set_size(out, 0);
        r = write_bytes(w, out, stream_write_end(out, rec.seq, rec.total, rec.count));
        if (r >= 0)
                r = flush_stream(w);
        /* The stream is complete: a cancel that comes while it is
         * published would otherwise win over a state already in place
         * (replacing an older one, with overwrite). */
        if (r >= 0)
                r = worker_seal(w);
        if (r >= 0 && w->hooks->publish) {
                g_autofree char *why = NULL;

                r = w->hooks->publish(w->userdata, &why);
                if (r < 0)
                        r = worker_fail(w, r, r == -EEXIST ? MIGRATION_ERROR_ALREADY_EXISTS : MIGRATION_ERROR_DEVICE,
                                        "%s", why);
        }
        if (r >= 0)
                r = worker_commit(w);   /* the stream is whole */
        if (r < 0)
                return r;

        worker_set_phase(w, MIGRATION_FINISHING);
        return worker_drive(w, s, w->options.source_running ? VFIO_STATE_RUNNING : VFIO_STATE_STOP);
}

/* ---- load ---- */

static int corrupt(Worker *w, int r, StreamReader *reader) {
        return worker_fail(w, r, MIGRATION_ERROR_STREAM_CORRUPT, "%s: %s", w->stream_label, stream_reader_error(reader));
}

/* Next verified stream event, reading as needed; at the end of input
 * checks that END was seen and nothing followed it. */
static int next_event(Worker *w, StreamReader *reader, uint8_t *buf, StreamEvent *ev, bool *eof) {
        Xfer x = worker_xfer(w);

        for (;;) {
                ssize_t n;
                int r = stream_reader_next(reader, ev);

                if (r == -EPROTONOSUPPORT)      /* a format version we do not know is not corruption */
                        return worker_fail(w, r, MIGRATION_ERROR_INCOMPATIBLE, "%s: %s", w->stream_label,
                                           stream_reader_error(reader));
                if (r < 0)
                        return corrupt(w, r, reader);
                if (ev->type != STREAM_EVENT_NONE || *eof)
                        return 0;
                n = xfer_read(&x, &w->stream, buf, w->buf_size);
                if (n < 0)
                        return worker_fail(w, (int) n, MIGRATION_ERROR_DEVICE, "reading %s: %s", w->stream_label,
                                           g_strerror((int) -n));
                if (n == 0) {
                        *eof = true;
                        r = stream_reader_finish(reader);
                } else
                        r = stream_reader_push(reader, buf, (size_t) n);
                if (r < 0)
                        return corrupt(w, r, reader);
        }
}

static int check_stream_identity(Worker *w, StreamReader *reader, WorkerDevice *t) {
        const StreamHeader *h = stream_reader_header(reader);
        g_autofree char *reason = NULL, *facet = NULL;
        Verdict v;

        /* The CRC says the bytes are the writer's, not that the writer was
         * honest: these strings may be written into drivers' attributes. */
        if (!vendor_string_valid(h->migration_type))
                return worker_fail(w, -EBADMSG, MIGRATION_ERROR_STREAM_CORRUPT, "%s: the stream's migration type is "
                                   "not 1 to 4096 printable ASCII characters", w->stream_label);
        if (*h->migration_version && !vendor_string_valid(h->migration_version))
                return worker_fail(w, -EBADMSG, MIGRATION_ERROR_STREAM_CORRUPT, "%s: the stream's migration version "
                                   "is not 0 to 4096 printable ASCII characters", w->stream_label);
        if (iommu_facet_canonicalize(h->iommu, &facet, &reason) < 0)
                return worker_fail(w, -EBADMSG, MIGRATION_ERROR_STREAM_CORRUPT, "%s: the stream's %s", w->stream_label,
                                   reason);
        v = w->hooks->judge(w->userdata, &(WorkerQuestion) { .header = h, .target = t->name }, &reason);
        if (worker_cancelled(w))
                return worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled");
        if (v == VERDICT_INCOMPATIBLE || (v == VERDICT_UNKNOWN && !w->options.allow_unknown))
                return worker_fail(w, v == VERDICT_UNKNOWN ? -ENOANO : -EPROTONOSUPPORT,
                                   v == VERDICT_UNKNOWN ? MIGRATION_ERROR_COMPATIBILITY_UNKNOWN
                                                        : MIGRATION_ERROR_INCOMPATIBLE,
                                   "%s: state of a %s device%s%s cannot go into %s: %s%s", w->stream_label,
                                   h->migration_type, *h->migration_version ? " version " : "",
                                   h->migration_version, t->name, reason,
                                   v == VERDICT_UNKNOWN ? " (option allow-unknown)" : "");
        worker_set_expected(w, h->expected_size);
        return 0;
}

static int load_write(Worker *w, WorkerDevice *t, const void *data, size_t len) {
        Xfer x = worker_xfer(w);
        int r = xfer_write_all(&x, &t->data, data, len);

        if (r < 0)
                return worker_fail_device(w, r, t, "writing the device state");
        worker_progress(w, len);
        return 0;
}

static void free_queue(GQueue *q) {
        g_queue_free_full(q, (GDestroyNotify) g_bytes_unref);
}

/* The header first: nothing touches the device before we know the
 * stream is meant for it. Then as much as fits is verified before the
 * device sees a byte: a stream of up to PREFETCH_MAX is checked whole,
 * so a corrupt one leaves the device untouched. Without the option
 * prefetch (a live stream: its source stops before the stream ends, and
 * what we hold back reaches the device in the source's downtime), the
 * device takes each record once its CRC and place are checked; a corrupt
 * stream still loads nothing, as the device leaves RESUMING only after
 * the END record, and the rollback resets it. */
static int prefetch(Worker *w, StreamReader *reader, uint8_t *buf, GQueue *prefetched, bool *eof, bool *end) {
        uint64_t bytes = 0, limit = w->options.prefetch ? PREFETCH_MAX : 0;
        StreamEvent ev;
        int r;

        r = next_event(w, reader, buf, &ev, eof);
        if (r >= 0 && ev.type != STREAM_EVENT_HEADER)
                r = worker_fail(w, -EBADMSG, MIGRATION_ERROR_STREAM_CORRUPT, "%s: empty stream", w->stream_label);
        if (r >= 0)
                r = check_stream_identity(w, reader, worker_dev(w, 0));
        while (r >= 0 && !*end && bytes < limit) {
                r = next_event(w, reader, buf, &ev, eof);
                if (r >= 0 && ev.type == STREAM_EVENT_DATA) {
                        g_queue_push_tail(prefetched, g_bytes_new(ev.data, ev.len));
                        bytes += ev.len;
                } else if (r >= 0 && ev.type == STREAM_EVENT_END)
                        *end = true;
        }
        return r;
}

int worker_run_load(Worker *w) {
        WorkerDevice *t = worker_dev(w, 0);
        g_autoptr(StreamReader) reader = stream_reader_new();
        uint8_t *buf = w->buf;
        GQueue *prefetched = g_queue_new();
        bool eof = false, end = false;
        StreamEvent ev;
        int r;

        r = prefetch(w, reader, buf, prefetched, &eof, &end);
        if (r >= 0) {
                worker_set_phase(w, MIGRATION_RESUMING);
                r = worker_drive(w, t, VFIO_STATE_RESUMING);
        }
        for (GBytes *b; r >= 0 && (b = g_queue_pop_head(prefetched)); g_bytes_unref(b))
                r = load_write(w, t, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
        free_queue(prefetched);
        while (r >= 0 && !(end && eof)) {
                r = next_event(w, reader, buf, &ev, &eof);
                if (r >= 0 && ev.type == STREAM_EVENT_DATA)
                        r = load_write(w, t, ev.data, ev.len);
                else if (r >= 0 && ev.type == STREAM_EVENT_END)
                        end = true;
                else if (r >= 0 && eof && !end)
                        r = worker_fail(w, -EBADMSG, MIGRATION_ERROR_STREAM_CORRUPT, "%s: truncated", w->stream_label);
        }
        if (r < 0)
                return r;

        /* The data is all in; the target checks it as it leaves RESUMING,
         * in the same SET that starts it (worker-migrate.c's commit). */
        worker_close_session(t);
        r = worker_commit(w);
        if (r < 0)
                return r;
        worker_set_phase(w, MIGRATION_FINISHING);
        return worker_drive(w, t, w->options.target_running ? VFIO_STATE_RUNNING : VFIO_STATE_STOP);
}
