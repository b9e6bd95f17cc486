/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bus-objects.h"
#include "bus-util.h"
#include "compat-map.h"
#include "crc32c.h"
#include "identities.h"
#include "fsm.h"
#include "journal.h"
#include "log.h"
#include "migration.h"
#include "names.h"
#include "states.h"
#include "util.h"
#include "vfio-uapi.h"
#include "vfiomig-names.h"

#define DEFAULT_MAX_ROUNDS      16
#define DEFAULT_THRESHOLD       (256 * 1024)
#define DEFAULT_IO_TIMEOUT      (30 * USEC_PER_SEC)
#define SIGNAL_INTERVAL_USEC    (100 * 1000)    /* ProgressUpdate at most 10/s */
#define PREFETCH_MAX            (64 * 1024 * 1024)
#define CHUNK                   (1024 * 1024)

static const char *const kind_names[_MIGRATION_KIND_MAX] = {
        [MIGRATION_MIGRATE] = "migrate", [MIGRATION_SAVE] = "save", [MIGRATION_LOAD] = "load",
};

static const char *const phase_names[_MIGRATION_PHASE_MAX] = {
        [MIGRATION_PREPARING] = "preparing", [MIGRATION_PRECOPY] = "precopy",
        [MIGRATION_STOPCOPY] = "stopcopy", [MIGRATION_RESUMING] = "resuming",
        [MIGRATION_FINISHING] = "finishing", [MIGRATION_DONE] = "done",
        [MIGRATION_FAILED] = "failed", [MIGRATION_CANCELLED] = "cancelled",
};

const char *migration_kind_to_string(MigrationKind k) {
        return k < _MIGRATION_KIND_MAX ? kind_names[k] : NULL;
}

const char *migration_phase_to_string(MigrationPhase p) {
        return p < _MIGRATION_PHASE_MAX ? phase_names[p] : NULL;
}

void migration_options_init(MigrationOptions *o) {
        *o = (MigrationOptions) {
                .precopy = true,
                .max_precopy_rounds = DEFAULT_MAX_ROUNDS,
                .precopy_threshold = DEFAULT_THRESHOLD,
                .target_running = true,
                .io_timeout_usec = DEFAULT_IO_TIMEOUT,
        };
}

/* ---- reporting (worker side) ---- */

static void poke(Migration *j) {
        uint64_t one = 1;

        if (write(j->notify_fd, &one, sizeof(one)) < 0)
                log_debug("migration %u: cannot wake the main loop: %m", j->id);
}

/* Records the first error only: later ones are consequences. Whatever
 * step a cancel interrupts, the job was cancelled. */
static int fail(Migration *j, int r, const char *name, const char *format, ...) G_GNUC_PRINTF(4, 5);
static int fail(Migration *j, int r, const char *name, const char *format, ...) {
        va_list ap;

        g_mutex_lock(&j->lock);
        if (!j->error && r == -ECANCELED) {
                j->error = g_strdup("Cancelled");
                j->error_name = g_strdup(VFIOMIG_ERROR_CANCELLED);
        } else if (!j->error) {
                va_start(ap, format);
                j->error = g_strdup_vprintf(format, ap);
                va_end(ap);
                j->error_name = g_strdup(name);
        }
        g_mutex_unlock(&j->lock);
        return r < 0 ? r : -EIO;
}

/* A device error, named after the device and the step. */
static int fail_device(Migration *j, int r, MigrationDevice *d, const char *step) {
        if (r == -ETIMEDOUT)
                return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: no progress for %" PRIu64 " s",
                            d->info->name, step, j->options.io_timeout_usec / USEC_PER_SEC);
        if (r == -EPIPE && !d->source)  /* it closed its end: the driver refused the data */
                return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: the device refused the data",
                            d->info->name, step);
        return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: %s", d->info->name, step, g_strerror(-r));
}

static void set_phase(Migration *j, MigrationPhase p) {
        g_mutex_lock(&j->lock);
        j->phase = p;
        g_mutex_unlock(&j->lock);
        log_debug("migration %u: %s", j->id, phase_names[p]);
        poke(j);
}

static void report_state(Migration *j, MigrationDevice *d, uint32_t state) {
        g_mutex_lock(&j->lock);
        d->state = state;
        g_mutex_unlock(&j->lock);
        poke(j);
}

static void set_outcome(Migration *j, MigrationDevice *d, const char *format, ...) G_GNUC_PRINTF(3, 4);
static void set_outcome(Migration *j, MigrationDevice *d, const char *format, ...) {
        va_list ap;

        g_mutex_lock(&j->lock);
        g_free(d->outcome);
        va_start(ap, format);
        d->outcome = g_strdup_vprintf(format, ap);
        va_end(ap);
        g_mutex_unlock(&j->lock);
}

static void on_progress(void *userdata, uint64_t delta) {
        Migration *j = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        bool signal;

        g_mutex_lock(&j->lock);
        j->bytes += delta;
        j->expected = MAX(j->expected, j->bytes);
        signal = now - j->last_signal_usec >= SIGNAL_INTERVAL_USEC;
        if (signal)
                j->last_signal_usec = now;
        g_mutex_unlock(&j->lock);
        if (signal)
                poke(j);
}

static bool cancelled(Migration *j) {
        struct pollfd p = { .fd = j->cancel_fd, .events = POLLIN };

        return poll(&p, 1, 0) > 0;
}

static Xfer xfer_for(Migration *j) {
        return (Xfer) { .cancel_fd = j->cancel_fd, .io_timeout_usec = j->options.io_timeout_usec };
}

static MigrationDevice *dev(Migration *j, unsigned i) {
        return j->devices->pdata[i];
}

static MigrationDevice *target_of(Migration *j, unsigned pair) {
        return dev(j, j->kind == MIGRATION_MIGRATE ? pair + j->pairs : pair);
}

/* ---- driving devices ---- */

static void close_session(MigrationDevice *d) {
        if (d->data.fd >= 0)
                close(d->data.fd);
        d->data = (XferEnd) { .fd = -1 };
}

/* Moves a device to want one arc at a time along the kernel's own path,
 * so a failure names the arc, sessions are picked up where they open,
 * and no blocked transition (STOP_COPY -> PRE_COPY*, which 6.12 does not
 * refuse but spins on) is ever requested. */
static int drive(Migration *j, MigrationDevice *d, uint32_t want) {
        uint32_t path[FSM_MAX_PATH];
        size_t n;
        int r;

        r = fsm_path(d->state, want, d->flags, path, &n);
        if (r < 0)
                return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: no way from %s to %s", d->info->name,
                            fsm_state_to_string(d->state), fsm_state_to_string(want));
        for (size_t i = 0; i < n; i++) {
                g_autofree char *step = g_strdup_printf("%s -> %s", fsm_state_to_string(d->state),
                                                        fsm_state_to_string(path[i]));
                uint64_t t0;
                uint32_t actual;
                int fd = -1;

                if (d->source && fsm_state_is_running(d->state) && !fsm_state_is_running(path[i]) &&
                    j->down_start_usec == 0)
                        j->down_start_usec = now_usec(CLOCK_MONOTONIC);
                if (!d->source)
                        d->touched = true;
                t0 = now_usec(CLOCK_MONOTONIC);
                r = d->handle->ops->set_state(d->handle, path[i], &fd);
                if (j->down_start_usec && !j->downtime_usec)
                        j->down_device_usec += now_usec(CLOCK_MONOTONIC) - t0;
                if (r < 0) {
                        if (d->handle->ops->get_state(d->handle, &actual) >= 0)
                                report_state(j, d, actual);
                        return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s failed: %s (device now %s)",
                                    d->info->name, step, g_strerror(-r), fsm_state_to_string(d->state));
                }
                if (fd >= 0) {
                        close_session(d);
                        r = xfer_end_from_device(d->handle, fd, &d->data);
                        if (r < 0) {
                                close(fd);
                                return fail_device(j, r, d, "data fd");
                        }
                }
                report_state(j, d, path[i]);
        }
        return 0;
}

static bool all_have(Migration *j, uint32_t flag) {
        for (guint i = 0; i < j->devices->len; i++)
                if (!(dev(j, i)->flags & flag))
                        return false;
        return true;
}

static void end_downtime(Migration *j) {
        g_mutex_lock(&j->lock);
        if (j->down_start_usec)
                j->downtime_usec = now_usec(CLOCK_MONOTONIC) - j->down_start_usec;
        g_mutex_unlock(&j->lock);
}

/* ---- migrate ---- */

static int copy_pair(Migration *j, MigrationDevice *s, MigrationDevice *t, uint64_t limit, bool precopy) {
        Xfer x = xfer_for(j);
        bool dst_failed;
        int64_t n;

        n = xfer_copy(&x, &s->data, &t->data, limit, precopy, on_progress, j, &dst_failed);
        if (n < 0)
                return fail_device(j, (int) n, dst_failed ? t : s,
                                   dst_failed ? "writing the device state" : "reading the device state");
        return 0;
}

/* Pre-copy rounds until the initial data is through and what the devices
 * dirty meanwhile is small enough for stop-copy, or the round limit. */
static int precopy_rounds(Migration *j) {
        for (uint32_t round = 0; round < j->options.max_precopy_rounds; round++) {
                bool converged = true;

                if (cancelled(j))
                        return fail(j, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
                for (unsigned p = 0; p < j->pairs; p++) {
                        MigrationDevice *s = dev(j, p);
                        uint64_t initial, dirty;
                        int r;

                        r = s->handle->ops->precopy_info(s->handle, s->data.fd, &initial, &dirty);
                        if (r < 0)
                                return fail_device(j, r, s, "PRECOPY_INFO");
                        if (initial > 0 || dirty > j->options.precopy_threshold)
                                converged = false;
                        if (initial + dirty > 0) {
                                r = copy_pair(j, s, target_of(j, p), initial + dirty, true);
                                if (r < 0)
                                        return r;
                        }
                }
                if (converged)
                        break;
                g_mutex_lock(&j->lock);
                j->rounds++;
                g_mutex_unlock(&j->lock);
                poke(j);
        }
        return 0;
}

static uint64_t expected_bytes(Migration *j) {
        uint64_t total = 0;

        for (unsigned p = 0; p < j->pairs; p++) {
                MigrationDevice *s = dev(j, p);
                uint64_t size;

                if (s->source && s->handle->ops->data_size(s->handle, &size) >= 0)
                        total += size;
        }
        return total;
}

static void set_expected(Migration *j, uint64_t expected) {
        g_mutex_lock(&j->lock);
        j->expected = expected;
        g_mutex_unlock(&j->lock);
}

static int journal_update(Migration *j, bool committed);

/* The point of no return: from here the targets (or the stream) hold the
 * state and the job completes. A cancel that came first wins; one that
 * comes later is refused (migration_cancel sees committed). */
static int commit(Migration *j) {
        bool cancel;

        g_mutex_lock(&j->lock);
        cancel = j->cancel_requested;
        j->committed = !cancel;
        g_mutex_unlock(&j->lock);
        if (cancel)
                return fail(j, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
        return journal_update(j, true);
}

static int run_migrate(Migration *j) {
        bool precopy = j->options.precopy && all_have(j, VFIO_MIGRATION_PRE_COPY);
        /* quiesce a group: everyone stops initiating P2P before anyone stops */
        bool quiesce = j->pairs > 1 && all_have(j, VFIO_MIGRATION_P2P);
        int r;

        set_expected(j, expected_bytes(j));
        for (unsigned p = 0; p < j->pairs; p++) {
                r = drive(j, target_of(j, p), VFIO_STATE_RESUMING);
                if (r < 0)
                        return r;
        }
        if (precopy) {
                set_phase(j, MIGRATION_PRECOPY);
                for (unsigned p = 0; p < j->pairs; p++) {
                        r = drive(j, dev(j, p), VFIO_STATE_PRE_COPY);
                        if (r < 0)
                                return r;
                }
                r = precopy_rounds(j);
                if (r < 0)
                        return r;
        }

        set_phase(j, MIGRATION_STOPCOPY);
        if (cancelled(j))
                return fail(j, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
        for (unsigned p = 0; quiesce && p < j->pairs; p++) {
                r = drive(j, dev(j, p), precopy ? VFIO_STATE_PRE_COPY_P2P : VFIO_STATE_RUNNING_P2P);
                if (r < 0)
                        return r;
        }
        for (unsigned p = 0; p < j->pairs; p++) {
                r = drive(j, dev(j, p), VFIO_STATE_STOP_COPY);
                if (r < 0)
                        return r;
        }
        for (unsigned p = 0; p < j->pairs; p++) {
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);

                r = copy_pair(j, dev(j, p), target_of(j, p), UINT64_MAX, false);
                if (r < 0)
                        return r;
                j->down_transfer_usec += now_usec(CLOCK_MONOTONIC) - t0;
                close_session(dev(j, p));
                r = drive(j, dev(j, p), VFIO_STATE_STOP);
                if (r < 0)
                        return r;
        }

        set_phase(j, MIGRATION_RESUMING);
        for (unsigned p = 0; p < j->pairs; p++) {
                MigrationDevice *t = target_of(j, p);

                close_session(t);       /* end of data: the device checks it now */
                r = drive(j, t, VFIO_STATE_STOP);
                if (r < 0)
                        return r;
        }
        /* The targets hold the state: from here on sources stay stopped. */
        r = commit(j);
        if (r < 0)
                return r;
        set_phase(j, MIGRATION_FINISHING);
        for (unsigned p = 0; j->options.target_running && p < j->pairs; p++) {
                r = drive(j, target_of(j, p), VFIO_STATE_RUNNING);
                if (r < 0)
                        return r;
        }
        end_downtime(j);
        return 0;
}

/* ---- save ---- */

static int write_stream(Migration *j, const void *data, size_t len) {
        Xfer x = xfer_for(j);
        int r = xfer_write_all(&x, &j->stream, data, len);

        if (r < 0)
                return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "writing %s: %s", j->target_label, g_strerror(-r));
        return 0;
}

static int flush_stream(Migration *j) {
        Xfer x = xfer_for(j);
        int r = xfer_flush(&x, &j->stream);

        if (r < 0)
                return fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "writing %s: %s", j->target_label, g_strerror(-r));
        return 0;
}

/* Reads up to limit bytes of device data as records of one kind. */
static int save_records(Migration *j, MigrationDevice *s, StreamRecordKind kind, uint64_t limit, uint32_t *seq,
                        uint64_t *total, uint64_t *records) {
        g_autofree uint8_t *buf = g_malloc(CHUNK);
        Xfer x = xfer_for(j);

        while (limit > 0) {
                ssize_t n = xfer_read(&x, &s->data, buf, (size_t) MIN(limit, CHUNK));
                uint8_t head[24];
                int r;

                if (n == -ENOMSG || n == 0)
                        break;          /* end (of the data available for now) */
                if (n < 0)
                        return fail_device(j, (int) n, s, "reading the device state");
                stream_write_record_head(head, kind, (*seq)++, (uint32_t) n, crc32c(0, buf, (size_t) n));
                r = write_stream(j, head, sizeof(head));
                if (r >= 0)
                        r = write_stream(j, buf, (size_t) n);
                if (r < 0)
                        return r;
                limit -= MIN(limit, (uint64_t) n);
                *total += (uint64_t) n;
                (*records)++;
                on_progress(j, (uint64_t) n);
        }
        return 0;
}

/* The saved state appears under its name only when complete. */
static int publish_stream_file(Migration *j) {
        g_autofree char *why = NULL;
        int r;

        if (!j->temp_path)
                return 0;
        r = states_publish(j->temp_path, j->final_path, j->overwrite, &why);
        if (r < 0)
                return fail(j, r, r == -EEXIST ? VFIOMIG_ERROR_ALREADY_EXISTS : VFIOMIG_ERROR_DEVICE_FAILED, "%s", why);
        g_clear_pointer(&j->temp_path, g_free);
        return 0;
}

static int run_save(Migration *j) {
        MigrationDevice *s = dev(j, 0);
        bool precopy = j->options.precopy && (s->flags & VFIO_MIGRATION_PRE_COPY);
        g_autoptr(GByteArray) out = g_byte_array_new();
        uint64_t total = 0, records = 0;
        uint32_t seq = 0;
        int r;

        j->identity.expected_size = expected_bytes(j);
        set_expected(j, j->identity.expected_size);
        r = stream_write_header(out, &j->identity);
        if (r >= 0)
                r = write_stream(j, out->data, out->len);
        if (r < 0)
                return r;

        if (precopy) {
                set_phase(j, MIGRATION_PRECOPY);
                r = drive(j, s, VFIO_STATE_PRE_COPY);
                for (uint32_t round = 0; r >= 0 && round < j->options.max_precopy_rounds; round++) {
                        uint64_t initial, dirty;

                        r = s->handle->ops->precopy_info(s->handle, s->data.fd, &initial, &dirty);
                        if (r < 0) {
                                r = fail_device(j, r, s, "PRECOPY_INFO");
                                break;
                        }
                        if (initial == 0 && dirty <= j->options.precopy_threshold)
                                break;
                        r = save_records(j, s, STREAM_RECORD_PRECOPY, initial + dirty, &seq, &total, &records);
                        g_mutex_lock(&j->lock);
                        j->rounds++;
                        g_mutex_unlock(&j->lock);
                }
                if (r < 0)
                        return r;
        }

        set_phase(j, MIGRATION_STOPCOPY);
        r = drive(j, s, VFIO_STATE_STOP_COPY);
        if (r >= 0)
                r = save_records(j, s, STREAM_RECORD_STOPCOPY, UINT64_MAX, &seq, &total, &records);
        if (r < 0)
                return r;
        close_session(s);
        end_downtime(j);
        g_byte_array_set_size(out, 0);
        r = stream_write_end(out, seq, total, records);
        if (r >= 0)
                r = write_stream(j, out->data, out->len);
        if (r >= 0)
                r = flush_stream(j);
        if (r >= 0 && !j->stream.socket && fsync(j->stream.fd) < 0 && errno != EINVAL && errno != EROFS)
                r = fail(j, -errno, VFIOMIG_ERROR_DEVICE_FAILED, "writing %s: %m", j->target_label);
        if (r >= 0)
                r = publish_stream_file(j);
        if (r >= 0)
                r = commit(j);          /* the stream is whole */
        if (r < 0)
                return r;

        set_phase(j, MIGRATION_FINISHING);
        return drive(j, s, j->options.source_running ? VFIO_STATE_RUNNING : VFIO_STATE_STOP);
}

/* ---- load ---- */

/* Next verified stream event, reading as needed; at the end of input
 * checks that END was seen and nothing followed it. */
static int next_event(Migration *j, StreamReader *reader, uint8_t *buf, StreamEvent *ev, bool *eof) {
        Xfer x = xfer_for(j);

        for (;;) {
                ssize_t n;
                int r = stream_reader_next(reader, ev);

                if (r < 0)      /* a format version we do not know is not corruption */
                        return fail(j, r, r == -EPROTONOSUPPORT ? VFIOMIG_ERROR_INCOMPATIBLE
                                                                 : VFIOMIG_ERROR_STREAM_CORRUPT,
                                    "%s: %s", j->source_label, stream_reader_error(reader));
                if (ev->type != STREAM_EVENT_NONE || *eof)
                        return 0;
                n = xfer_read(&x, &j->stream, buf, CHUNK);
                if (n < 0)
                        return fail(j, (int) n, VFIOMIG_ERROR_DEVICE_FAILED, "reading %s: %s", j->source_label,
                                    g_strerror((int) -n));
                if (n == 0) {
                        *eof = true;
                        r = stream_reader_finish(reader);
                        if (r < 0)
                                return fail(j, r, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: %s", j->source_label,
                                            stream_reader_error(reader));
                        continue;
                }
                r = stream_reader_push(reader, buf, (size_t) n);
                if (r < 0)
                        return fail(j, r, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: %s", j->source_label,
                                    stream_reader_error(reader));
        }
}

/* The map is the main loop's: ask it and wait for the answer. */
static Verdict ask_verdict(Migration *j, const char *type, const char *version, char **ret_reason) {
        Verdict v;

        g_mutex_lock(&j->lock);
        j->ask_type = g_strdup(type);
        j->ask_version = g_strdup(version);
        g_mutex_unlock(&j->lock);
        poke(j);
        g_mutex_lock(&j->lock);
        while (j->ask_type && !j->cancel_requested)
                g_cond_wait(&j->answered, &j->lock);
        v = j->ask_type ? VERDICT_UNKNOWN : j->answer;
        *ret_reason = j->ask_type ? g_strdup("cancelled") : g_steal_pointer(&j->answer_reason);
        g_mutex_unlock(&j->lock);
        return v;
}

static int check_stream_identity(Migration *j, StreamReader *reader, MigrationDevice *t) {
        const StreamHeader *h = stream_reader_header(reader);
        g_autofree char *reason = NULL;
        Verdict v;

        /* The CRC says the bytes are the writer's, not that the writer was
         * honest: these strings may be written into drivers' attributes. */
        if (!vendor_string_valid(h->migration_type))
                return fail(j, -EBADMSG, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: the stream's migration type is not 1 to "
                            "4096 printable ASCII characters", j->source_label);
        if (*h->migration_version && !vendor_string_valid(h->migration_version))
                return fail(j, -EBADMSG, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: the stream's migration version is not "
                            "0 to 4096 printable ASCII characters", j->source_label);
        v = ask_verdict(j, h->migration_type, h->migration_version, &reason);
        if (cancelled(j))
                return fail(j, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
        if (v == VERDICT_INCOMPATIBLE || (v == VERDICT_UNKNOWN && !j->options.allow_unknown))
                return fail(j, -EPROTONOSUPPORT, VFIOMIG_ERROR_INCOMPATIBLE, "%s: state of a %s device%s%s cannot go "
                            "into %s: %s%s", j->source_label, h->migration_type, *h->migration_version ? " version " : "",
                            h->migration_version, t->info->name, reason,
                            v == VERDICT_UNKNOWN ? " (option allow-unknown)" : "");
        set_expected(j, h->expected_size);
        return 0;
}

/* The main loop's side of ask_verdict(). */
static void answer_question(Migration *j) {
        g_autoptr(Identity) id = NULL;
        const Judgement *judgement;
        const char *target;

        g_mutex_lock(&j->lock);
        if (!j->ask_type) {
                g_mutex_unlock(&j->lock);
                return;
        }
        id = identities_remote(j->ask_type, j->ask_version);
        target = dev(j, 0)->info->name;
        judgement = compat_map_verdict_for(j->manager->compat, id, target);
        j->answer = judgement ? judgement->verdict : VERDICT_UNKNOWN;
        j->answer_reason = g_strdup(judgement ? judgement->reason : "the target has no identity");
        g_clear_pointer(&j->ask_type, g_free);
        g_clear_pointer(&j->ask_version, g_free);
        g_cond_signal(&j->answered);
        g_mutex_unlock(&j->lock);
}

static int load_write(Migration *j, MigrationDevice *t, const void *data, size_t len) {
        Xfer x = xfer_for(j);
        int r = xfer_write_all(&x, &t->data, data, len);

        if (r < 0)
                return fail_device(j, r, t, "writing the device state");
        on_progress(j, len);
        return 0;
}

static int run_load(Migration *j) {
        MigrationDevice *t = dev(j, 0);
        g_autoptr(StreamReader) reader = stream_reader_new();
        g_autofree uint8_t *buf = g_malloc(CHUNK);
        g_autoptr(GQueue) prefetched = g_queue_new();
        uint64_t prefetch_bytes = 0;
        bool eof = false, end = false;
        StreamEvent ev;
        int r;

        /* The header first: nothing touches the device before we know the
         * stream is meant for it. */
        r = next_event(j, reader, buf, &ev, &eof);
        if (r >= 0 && ev.type != STREAM_EVENT_HEADER)
                r = fail(j, -EBADMSG, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: empty stream", j->source_label);
        if (r >= 0)
                r = check_stream_identity(j, reader, t);

        /* Verify as much as fits before the device sees a byte: a stream of
         * up to PREFETCH_MAX is checked whole, so a corrupt one loads
         * nothing at all. */
        while (r >= 0 && !end && prefetch_bytes < PREFETCH_MAX) {
                r = next_event(j, reader, buf, &ev, &eof);
                if (r >= 0 && ev.type == STREAM_EVENT_DATA) {
                        g_queue_push_tail(prefetched, g_bytes_new(ev.data, ev.len));
                        prefetch_bytes += ev.len;
                } else if (r >= 0 && ev.type == STREAM_EVENT_END)
                        end = true;
        }
        if (r < 0) {
                g_queue_free_full(g_steal_pointer(&prefetched), (GDestroyNotify) g_bytes_unref);
                return r;
        }

        set_phase(j, MIGRATION_RESUMING);
        r = drive(j, t, VFIO_STATE_RESUMING);
        for (GBytes *b; r >= 0 && (b = g_queue_pop_head(prefetched)); g_bytes_unref(b))
                r = load_write(j, t, g_bytes_get_data(b, NULL), g_bytes_get_size(b));
        g_queue_free_full(g_steal_pointer(&prefetched), (GDestroyNotify) g_bytes_unref);
        while (r >= 0 && !(end && eof)) {
                r = next_event(j, reader, buf, &ev, &eof);
                if (r >= 0 && ev.type == STREAM_EVENT_DATA)
                        r = load_write(j, t, ev.data, ev.len);
                else if (r >= 0 && ev.type == STREAM_EVENT_END)
                        end = true;
                else if (r >= 0 && eof && !end)
                        r = fail(j, -EBADMSG, VFIOMIG_ERROR_STREAM_CORRUPT, "%s: truncated", j->source_label);
        }
        if (r < 0)
                return r;

        close_session(t);
        r = drive(j, t, VFIO_STATE_STOP);
        if (r >= 0)
                r = commit(j);
        if (r < 0)
                return r;
        set_phase(j, MIGRATION_FINISHING);
        return j->options.target_running ? drive(j, t, VFIO_STATE_RUNNING) : 0;
}

/* ---- rollback and recovery ---- */

/* QEMU's rule: SET the recovery state; if that fails, reset. */
static char *restore_source(DeviceHandle *h, uint32_t flags) {
        uint32_t actual = VFIO_STATE_ERROR, want;
        FsmRecovery rec;
        int fd = -1, r;

        if (h->ops->get_state(h, &actual) < 0)
                actual = VFIO_STATE_ERROR;
        rec = fsm_recovery(actual, VFIO_STATE_RUNNING, flags, &want);
        if (rec == FSM_RECOVERY_NONE)
                return g_strdup("running");
        if (rec == FSM_RECOVERY_SET) {
                r = h->ops->set_state(h, want, &fd);
                if (fd >= 0)
                        close(fd);
                if (r >= 0)
                        return g_strdup_printf("restored to running (was %s)", fsm_state_to_string(actual));
                log_warning("%s: %s -> running failed: %s; resetting", h->name, fsm_state_to_string(actual),
                            g_strerror(-r));
        }
        r = h->ops->reset(h);
        if (r < 0)
                return g_strdup_printf("reset failed: %s (device left in %s)", g_strerror(-r),
                                       fsm_state_to_string(actual));
        return g_strdup_printf("reset to running (was %s)", fsm_state_to_string(actual));
}

static char *reset_target(DeviceHandle *h) {
        int r = h->ops->reset(h);

        return r < 0 ? g_strdup_printf("reset failed: %s", g_strerror(-r)) : g_strdup("reset");
}

/* Puts one device back after a daemon restart found it in a journal:
 * a source to RUNNING, a target reset. Returns what was done. */
static char *recover_device(DeviceHandle *h, bool source) {
        uint32_t flags = 0;

        if (!source)
                return reset_target(h);
        (void) h->ops->get_flags(h, &flags);
        return restore_source(h, flags);
}

static void rollback(Migration *j) {
        for (guint i = 0; i < j->devices->len; i++) {
                MigrationDevice *d = dev(j, i);
                g_autofree char *outcome = NULL;
                uint32_t state;

                close_session(d);
                if (!d->source && !d->touched) {
                        set_outcome(j, d, "untouched");
                        continue;
                }
                outcome = d->source ? restore_source(d->handle, d->flags) : reset_target(d->handle);
                if (d->handle->ops->get_state(d->handle, &state) >= 0)
                        report_state(j, d, state);
                set_outcome(j, d, "%s", outcome);
                log_notice("migration %u: %s %s: %s", j->id, d->source ? "source" : "target", d->info->name, outcome);
        }
}

static void success_outcomes(Migration *j) {
        for (guint i = 0; i < j->devices->len; i++) {
                MigrationDevice *d = dev(j, i);

                set_outcome(j, d, "%s", fsm_state_to_string(d->state));
        }
}

/* ---- the worker ---- */

static JournalEntry *journal_entry(Migration *j, bool committed) {
        g_autoptr(GStrvBuilder) s = g_strv_builder_new(), t = g_strv_builder_new();
        JournalEntry *e = g_new0(JournalEntry, 1);

        for (guint i = 0; i < j->devices->len; i++)
                g_strv_builder_add(dev(j, i)->source ? s : t, dev(j, i)->info->name);
        e->id = j->id;
        e->kind = g_strdup(kind_names[j->kind]);
        e->committed = committed;
        e->target_running = j->options.target_running;
        e->source_running = j->options.source_running;
        e->sources = g_strv_builder_end(s);
        e->targets = g_strv_builder_end(t);
        return e;
}

static int journal_update(Migration *j, bool committed) {
        g_autoptr(JournalEntry) e = journal_entry(j, committed);

        return journal_write(j->manager->runtime_dir, e);
}

static gpointer worker(gpointer userdata) {
        Migration *j = userdata;
        int r;

        r = journal_update(j, false);
        if (r < 0)
                r = fail(j, r, VFIOMIG_ERROR_DEVICE_FAILED, "cannot record the migration in %s",
                         j->manager->runtime_dir);
        else if (j->kind == MIGRATION_MIGRATE)
                r = run_migrate(j);
        else if (j->kind == MIGRATION_SAVE)
                r = run_save(j);
        else
                r = run_load(j);

        if (r < 0)
                rollback(j);
        else
                success_outcomes(j);
        if (j->temp_path)               /* not published: half a stream */
                (void) unlink(j->temp_path);
        for (guint i = 0; i < j->devices->len; i++) {
                close_session(dev(j, i));
                g_clear_pointer(&dev(j, i)->handle, device_handle_close);
        }
        xfer_end_close(&j->stream);
        journal_remove(j->manager->runtime_dir, j->id);

        g_mutex_lock(&j->lock);
        if (r >= 0)
                j->phase = MIGRATION_DONE;
        else
                j->phase = g_strcmp0(j->error_name, VFIOMIG_ERROR_CANCELLED) == 0 ? MIGRATION_CANCELLED
                                                                                  : MIGRATION_FAILED;
        j->finished = true;
        g_mutex_unlock(&j->lock);
        poke(j);
        return NULL;
}

/* ---- the main loop's side ---- */

static void sync_registry(Migration *j, bool release) {
        Registry *reg = j->manager->registry;

        for (guint i = 0; i < j->devices->len; i++) {
                MigrationDevice *d = dev(j, i);
                uint32_t state;

                g_mutex_lock(&j->lock);
                state = d->state;
                g_mutex_unlock(&j->lock);
                registry_set_device_state(reg, d->info->name, fsm_state_to_string(state));
                if (release)
                        registry_set_device_busy(reg, d->info->name, NULL);
        }
}

static void retire(Migration *j);

static int on_worker_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Migration *j = userdata;
        uint64_t count;
        bool finished;

        (void) read(fd, &count, sizeof(count));
        answer_question(j);
        g_mutex_lock(&j->lock);
        finished = j->finished;
        g_mutex_unlock(&j->lock);

        sync_registry(j, finished);
        bus_migration_emit_changed(j, finished);
        if (!finished)
                return 0;

        g_thread_join(j->thread);
        j->thread = NULL;
        {
                g_autofree char *name = NULL, *error = migration_get_error(j, &name);

                if (error)
                        log_notice("Migration %u %s: %s", j->id, phase_names[j->phase], error);
                else
                        log_info("Migration %u done: %s -> %s, %" PRIu64 " bytes, downtime %" PRIu64 " us "
                                 "(devices %" PRIu64 " us, data %" PRIu64 " us, vfiomigd %" PRIu64 " us)",
                                 j->id, j->source_label, j->target_label, j->bytes, j->downtime_usec,
                                 j->down_device_usec, j->down_transfer_usec,
                                 j->downtime_usec - MIN(j->downtime_usec, j->down_device_usec + j->down_transfer_usec));
        }
        retire(j);
        return 0;
}

Migration *migration_lookup(Manager *m, uint32_t id) {
        return g_hash_table_lookup(m->migrations, GUINT_TO_POINTER(id)) ?:
               g_hash_table_lookup(m->finished, GUINT_TO_POINTER(id));
}

static bool expired(Manager *m, Migration *j, uint64_t now) {
        return g_queue_get_length(m->finished_order) > MIGRATION_RETAIN_JOBS &&
               now >= j->ended_usec + MIGRATION_RETAIN_USEC;
}

static int on_retire_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Forgets the ended jobs that are both old and beyond the last few. */
static void prune_finished(Manager *m) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        Migration *j;
        int r;

        while ((j = g_queue_peek_head(m->finished_order)) && expired(m, j, now)) {
                g_queue_pop_head(m->finished_order);
                bus_migration_emit_forgotten(j);
                g_hash_table_remove(m->finished, GUINT_TO_POINTER(j->id));      /* frees j */
        }
        if (g_queue_get_length(m->finished_order) <= MIGRATION_RETAIN_JOBS)
                return;
        j = g_queue_peek_head(m->finished_order);
        if (m->retire_timer)
                r = sd_event_source_set_time(m->retire_timer, j->ended_usec + MIGRATION_RETAIN_USEC) ?:
                    sd_event_source_set_enabled(m->retire_timer, SD_EVENT_ONESHOT);
        else
                r = sd_event_add_time(m->event, &m->retire_timer, CLOCK_MONOTONIC,
                                      j->ended_usec + MIGRATION_RETAIN_USEC, USEC_PER_SEC, on_retire_timer, m);
        if (r < 0)
                log_warning_errno(r, "Cannot schedule forgetting ended migrations: %m");
}

static int on_retire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        prune_finished(userdata);
        return 0;
}

/* The job has ended: it leaves ListMigrations and says so, but keeps its
 * object, so that a client that comes late (wait after --no-wait) still
 * learns the outcome. */
static void retire(Migration *j) {
        Manager *m = j->manager;

        j->notify_source = sd_event_source_disable_unref(j->notify_source);
        j->ended_usec = now_usec(CLOCK_MONOTONIC);
        bus_migration_emit_removed(j);
        g_hash_table_steal(m->migrations, GUINT_TO_POINTER(j->id));
        g_hash_table_insert(m->finished, GUINT_TO_POINTER(j->id), j);
        g_queue_push_tail(m->finished_order, j);
        prune_finished(m);
}

void migration_free(Migration *j) {
        if (!j)
                return;
        if (j->thread) {
                /* Only at daemon exit: let the worker roll back first. */
                migration_cancel(j, "vfiomigd shutting down");
                g_thread_join(j->thread);
        }
        sd_event_source_disable_unref(j->notify_source);
        if (j->cancel_fd >= 0)
                close(j->cancel_fd);
        if (j->notify_fd >= 0)
                close(j->notify_fd);
        xfer_end_close(&j->stream);
        for (guint i = 0; j->devices && i < j->devices->len; i++) {
                MigrationDevice *d = dev(j, i);

                close_session(d);
                device_handle_close(d->handle);
                device_free(d->info);
                g_free(d->outcome);
                g_free(d);
        }
        if (j->devices)
                g_ptr_array_unref(j->devices);
        stream_header_clear(&j->identity);
        g_mutex_clear(&j->lock);
        g_cond_clear(&j->answered);
        g_free(j->ask_type);
        g_free(j->ask_version);
        g_free(j->answer_reason);
        g_free(j->path);
        g_free(j->source_label);
        g_free(j->target_label);
        g_free(j->owner);
        g_free(j->temp_path);
        g_free(j->final_path);
        g_free(j->error);
        g_free(j->error_name);
        g_free(j);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Migration, migration_free);

int migration_cancel(Migration *j, const char *who) {
        uint64_t one = 1;

        g_mutex_lock(&j->lock);
        if (j->committed || j->phase >= MIGRATION_FINISHING) {
                g_mutex_unlock(&j->lock);
                return -EBUSY;
        }
        if (!j->error) {
                j->error = g_strdup_printf("Cancelled by %s", who);
                j->error_name = g_strdup(VFIOMIG_ERROR_CANCELLED);
        }
        j->cancel_requested = true;
        g_cond_signal(&j->answered);
        g_mutex_unlock(&j->lock);
        if (write(j->cancel_fd, &one, sizeof(one)) < 0)
                return -errno;
        return 0;
}

MigrationPhase migration_get_phase(Migration *j) {
        MigrationPhase p;

        g_mutex_lock(&j->lock);
        p = j->phase;
        g_mutex_unlock(&j->lock);
        return p;
}

void migration_get_progress(Migration *j, uint64_t *bytes, uint64_t *expected, uint32_t *rounds,
                            uint64_t *downtime_usec) {
        g_mutex_lock(&j->lock);
        *bytes = j->bytes;
        *expected = j->expected;
        *rounds = j->rounds;
        *downtime_usec = j->downtime_usec;
        g_mutex_unlock(&j->lock);
}

double migration_progress(Migration *j) {
        uint64_t bytes, expected, downtime;
        uint32_t rounds;

        if (migration_get_phase(j) == MIGRATION_DONE)
                return 1.0;
        migration_get_progress(j, &bytes, &expected, &rounds, &downtime);
        return expected ? MIN(1.0, (double) bytes / (double) expected) : 0.0;
}

char *migration_get_error(Migration *j, char **ret_name) {
        char *e;

        g_mutex_lock(&j->lock);
        e = g_strdup(j->error);
        if (ret_name)
                *ret_name = g_strdup(j->error_name);
        g_mutex_unlock(&j->lock);
        return e;
}

/* ---- starting a job ---- */

/* From the registry only: nothing is opened before the request passed
 * every check that needs no device. */
static int add_device(Migration *j, const char *name, bool source, sd_bus_error *error) {
        const Device *info = bus_lookup_device(j->manager->registry, name, error);
        MigrationDevice *d;

        if (!info)
                return -ENODEV;
        if (info->busy)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s is held by %s", name, info->holder);
        for (guint i = 0; i < j->devices->len; i++)
                if (g_str_equal(dev(j, i)->info->name, name))
                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                                 "%s appears more than once in this migration", name);

        d = g_new0(MigrationDevice, 1);
        d->info = device_copy(info);
        d->source = source;
        d->data = (XferEnd) { .fd = -1 };
        g_ptr_array_add(j->devices, d);
        return 0;
}

static int open_device(Migration *j, MigrationDevice *d, sd_bus_error *error) {
        Manager *m = j->manager;
        const char *name = d->info->name;
        g_autofree char *why = NULL;
        bool source = d->source;
        int r;

        r = m->source->ops->open_device(m->source, d->info, &d->handle, &why);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s", why ? why : name);
        if (r < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_DEVICE_FAILED, "%s", why ? why : g_strerror(-r));
        r = d->handle->ops->get_flags(d->handle, &d->flags);
        if (r == -ENOTTY || (r >= 0 && !(d->flags & VFIO_MIGRATION_STOP_COPY)))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_NOT_MIGRATABLE, "%s does not support migration", name);
        if (r >= 0) {
                registry_set_device_flags(m->registry, name, d->flags);  /* the kernel backend learns them now */
                r = d->handle->ops->get_state(d->handle, &d->state);
        }
        if (r < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_DEVICE_FAILED, "%s: cannot query migration: %s",
                                         name, g_strerror(-r));
        /* A source must run; a target may also be stopped, e.g. the source
         * of an earlier migration taking its state back. */
        if (d->state != VFIO_STATE_RUNNING && (source || d->state != VFIO_STATE_STOP))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s is in state %s, not %s", name,
                                         fsm_state_to_string(d->state), source ? "running" : "running or stop");
        return 0;
}

static int check_compatibility(Migration *j, sd_bus_error *error) {
        for (unsigned p = 0; p < j->pairs && j->kind == MIGRATION_MIGRATE; p++) {
                const char *s = dev(j, p)->info->name, *t = target_of(j, p)->info->name;
                const Judgement *v = compat_map_verdict(j->manager->compat, s, t);

                if (!v || v->verdict == VERDICT_INCOMPATIBLE ||
                    (v->verdict == VERDICT_UNKNOWN && !j->options.allow_unknown))
                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INCOMPATIBLE, "%s cannot go into %s: %s%s", s, t,
                                                 v ? v->reason : "no identity",
                                                 v && v->verdict == VERDICT_UNKNOWN ? " (option allow-unknown)" : "");
        }
        return 0;
}

static int check_p2p(Migration *j, sd_bus_error *error) {
        if (j->pairs == 1 || j->options.allow_no_p2p)
                return 0;
        for (guint i = 0; i < j->devices->len; i++)
                if (!(dev(j, i)->flags & VFIO_MIGRATION_P2P))
                        return sd_bus_error_setf(error, VFIOMIG_ERROR_NOT_MIGRATABLE,
                                                 "%s does not support P2P states, so it cannot be quiesced with the "
                                                 "rest of the group (option allow-no-p2p)", dev(j, i)->info->name);
        return 0;
}

static void setup_identity(Migration *j) {
        MigrationDevice *d = dev(j, 0);

        j->identity.migration_type = g_strdup(d->info->migration_type);
        j->identity.migration_version = g_strdup(d->info->migration_version);
        j->identity.device = g_strdup(d->info->name);
        j->identity.migration_flags = d->flags;
}

static int open_stream(Migration *j, const MigrationRequest *req, sd_bus_error *error) {
        g_autofree char *why = NULL;
        int fd = req->stream_fd, r;

        if (req->final_path) {
                j->final_path = g_strdup(req->final_path);
                j->overwrite = req->overwrite;
                fd = states_create_temp(req->final_path, &j->temp_path, &why);
                if (fd < 0)
                        return bus_error_set_errnof(error, fd, "%s", why);
                r = xfer_end_from_client_fd(fd, true, &j->stream);
                close(fd);
        } else
                r = xfer_end_from_client_fd(fd, j->kind == MIGRATION_SAVE, &j->stream);
        if (r == -EBADF)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s is not open for %s",
                                         req->stream_label, j->kind == MIGRATION_SAVE ? "writing" : "reading");
        if (r < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "%s cannot carry a stream: %s",
                                         req->stream_label, g_strerror(-r));
        return 0;
}

#define LAST_ID_FILE "last-migration-id"

/* Ids stay unique across restarts of the daemon (not of the machine,
 * whose runtime directory starts empty): a client's "wait 7" must never
 * find another job 7. */
static uint32_t next_id(Manager *m) {
        g_autofree char *path = g_build_filename(m->runtime_dir, LAST_ID_FILE, NULL);
        g_autofree char *text = g_strdup_printf("%u\n", ++m->last_migration_id);
        int r = write_file_atomic(path, text, strlen(text));

        if (r < 0)
                log_warning_errno(r, "Cannot record the last migration id in %s: %m", path);
        return m->last_migration_id;
}

static void load_last_id(Manager *m) {
        g_autofree char *path = g_build_filename(m->runtime_dir, LAST_ID_FILE, NULL), *text = NULL;
        guint64 id;

        if (!g_file_get_contents(path, &text, NULL, NULL))
                return;
        if (g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, G_MAXUINT32 - 1, &id, NULL))
                m->last_migration_id = MAX(m->last_migration_id, (uint32_t) id);
        else
                log_warning("Ignoring %s: not a migration id", path);
}

static char *label(char **names) {
        return g_strjoinv(",", names);
}

int migration_start(Manager *m, const MigrationRequest *req, const char *owner, Migration **ret,
                    sd_bus_error *error) {
        g_autoptr(Migration) j = g_new0(Migration, 1);
        g_autofree char *holder = NULL;
        int r;

        j->manager = m;
        j->kind = req->kind;
        j->options = req->options;
        j->owner = g_strdup(owner);
        j->devices = g_ptr_array_new();
        j->stream.fd = j->cancel_fd = j->notify_fd = -1;
        g_mutex_init(&j->lock);
        g_cond_init(&j->answered);
        j->source_label = req->sources ? label(req->sources) : g_strdup(req->stream_label);
        j->target_label = req->targets ? label(req->targets) : g_strdup(req->stream_label);
        j->pairs = g_strv_length(req->sources ? req->sources : req->targets);

        for (char **s = req->sources; s && *s; s++) {
                r = add_device(j, *s, true, error);
                if (r < 0)
                        return r;
        }
        for (char **t = req->targets; t && *t; t++) {
                r = add_device(j, *t, false, error);
                if (r < 0)
                        return r;
        }
        r = check_compatibility(j, error);
        for (guint i = 0; r >= 0 && i < j->devices->len; i++)
                r = open_device(j, dev(j, i), error);
        if (r >= 0)
                r = check_p2p(j, error);
        if (r < 0)
                return r;
        if (j->kind != MIGRATION_MIGRATE) {
                r = open_stream(j, req, error);
                if (r < 0)
                        return r;
        }
        if (j->kind == MIGRATION_SAVE)
                setup_identity(j);

        j->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        j->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->cancel_fd < 0 || j->notify_fd < 0)
                return bus_error_set_errnof(error, errno, "Cannot create eventfd: %m");
        r = sd_event_add_io(m->event, &j->notify_source, j->notify_fd, EPOLLIN, on_worker_notify, j);
        if (r < 0)
                return bus_error_set_errnof(error, r, "Cannot watch the worker: %m");

        j->id = next_id(m);
        j->path = g_strdup_printf(VFIOMIG_MIGRATION_PATH_PREFIX "/%u", j->id);
        holder = g_strdup_printf("migration %u", j->id);
        for (guint i = 0; i < j->devices->len; i++)
                registry_set_device_busy(m->registry, dev(j, i)->info->name, holder);
        g_hash_table_insert(m->migrations, GUINT_TO_POINTER(j->id), j);
        j->thread = g_thread_new("migration", worker, j);
        log_info("Migration %u started: %s %s -> %s", j->id, kind_names[j->kind], j->source_label, j->target_label);
        *ret = g_steal_pointer(&j);
        return 0;
}

/* ---- resume ---- */

int migration_resume_device(Manager *m, const Device *d, char **ret_outcome, char **ret_error) {
        g_autoptr(DeviceHandle) h = NULL;
        g_autofree char *why = NULL;
        uint32_t st = VFIO_STATE_ERROR;
        int r;

        if (d->busy) {
                *ret_error = g_strdup_printf("%s is held by %s", d->name, d->holder);
                return -EBUSY;
        }
        r = m->source->ops->open_device(m->source, d, &h, &why);
        if (r < 0) {
                *ret_error = g_steal_pointer(&why) ?: g_strdup_printf("%s: %s", d->name, g_strerror(-r));
                return r;
        }
        *ret_outcome = recover_device(h, true);
        if (h->ops->get_state(h, &st) >= 0)
                registry_set_device_state(m->registry, d->name, fsm_state_to_string(st));
        if (st != VFIO_STATE_RUNNING) {
                *ret_error = g_strdup_printf("%s: %s", d->name, *ret_outcome);
                return -EIO;
        }
        return 0;
}

/* ---- after a crash ---- */

typedef enum RecoverGoal {
        RECOVER_RUNNING,        /* a source of a job that did not commit, or a target asked to run */
        RECOVER_RESET,          /* a target of a job that did not commit */
        RECOVER_STOP,           /* a committed job's source (or target) meant to stay stopped */
} RecoverGoal;

/* Puts one device where the job would have left it. */
static char *recover_to(DeviceHandle *h, RecoverGoal goal) {
        uint32_t st = VFIO_STATE_ERROR;

        if (goal == RECOVER_RESET)
                return reset_target(h);
        (void) h->ops->get_state(h, &st);
        if (goal == RECOVER_STOP && st == VFIO_STATE_STOP)
                return g_strdup("left stopped, as the job asked");
        /* elsewhere a stopped device has no state to keep: not half-way */
        return recover_device(h, true);
}

static void recover_one(Manager *m, const JournalEntry *e, const char *name, bool source, RecoverGoal goal) {
        const Device *d = registry_get_device(m->registry, name);
        g_autoptr(DeviceHandle) h = NULL;
        g_autofree char *why = NULL, *outcome = NULL;
        uint32_t st;
        int r;

        if (!d) {
                log_warning("Migration %u: %s %s is gone, nothing to restore", e->id, source ? "source" : "target",
                            name);
                return;
        }
        r = m->source->ops->open_device(m->source, d, &h, &why);
        if (r < 0) {
                log_warning("Migration %u: cannot restore %s: %s", e->id, name, why ? why : g_strerror(-r));
                return;
        }
        outcome = recover_to(h, goal);
        if (h->ops->get_state(h, &st) >= 0)
                registry_set_device_state(m->registry, name, fsm_state_to_string(st));
        log_notice("Migration %u was interrupted by a daemon restart%s: %s %s %s", e->id,
                   e->committed ? " after its commit point" : "", source ? "source" : "target", name, outcome);
}

/* A job that committed moved the state: it is finished as it would have
 * been (targets to RUNNING if asked; a saved source to RUNNING if asked,
 * else it stays stopped). One that did not is rolled back. */
static void recover_entry(Manager *m, const JournalEntry *e) {
        bool save = g_strcmp0(e->kind, "save") == 0;
        RecoverGoal source_goal = !e->committed ? RECOVER_RUNNING :
                                  save && e->source_running ? RECOVER_RUNNING : RECOVER_STOP;
        RecoverGoal target_goal = !e->committed ? RECOVER_RESET :
                                  e->target_running ? RECOVER_RUNNING : RECOVER_STOP;

        for (char **n = e->sources; n && *n; n++)
                recover_one(m, e, *n, true, source_goal);
        for (char **n = e->targets; n && *n; n++)
                recover_one(m, e, *n, false, target_goal);
}

void migration_recover_journal(Manager *m) {
        g_autoptr(GPtrArray) entries = journal_load(m->runtime_dir);
        g_autofree char *states = states_dir(m->state_dir);

        load_last_id(m);
        states_sweep(states);
        for (guint i = 0; i < entries->len; i++) {
                JournalEntry *e = entries->pdata[i];

                recover_entry(m, e);
                journal_remove(m->runtime_dir, e->id);
                m->last_migration_id = MAX(m->last_migration_id, e->id);
        }
}
