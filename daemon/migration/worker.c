/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "migration/drive.h"
#include "fsm.h"
#include "log.h"
#include "util.h"
#include "vfio-uapi.h"
#include "migration/worker-internal.h"

#define DEFAULT_MAX_ROUNDS      16
#define DEFAULT_THRESHOLD       (256 * 1024)
#define DEFAULT_IO_TIMEOUT      (30 * USEC_PER_SEC)
#define SIGNAL_INTERVAL_USEC    (100 * 1000)    /* ProgressUpdate at most 10/s */

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

static const char *const down_phase_names[_DOWN_PHASE_MAX] = {
        [DOWN_STOP] = "stop", [DOWN_COPY] = "copy", [DOWN_COMMIT] = "commit", [DOWN_START] = "start",
};

static uint64_t sum(const uint64_t v[_DOWN_PHASE_MAX]) {
        uint64_t total = 0;

        for (unsigned p = 0; p < _DOWN_PHASE_MAX; p++)
                total += v[p];
        return total;
}

static uint64_t ours(uint64_t wall, uint64_t device, uint64_t data) {
        return wall - MIN(wall, device + data);
}

char *downtime_describe(const Downtime *d) {
        uint64_t wall = sum(d->wall), device = sum(d->device), data = sum(d->data);
        GString *s = g_string_new(NULL);
        const char *sep = "; window: ";

        g_string_append_printf(s, "downtime %" PRIu64 " us (devices %" PRIu64 " us, data %" PRIu64 " us, "
                               "vfiomigd %" PRIu64 " us)", wall, device, data, ours(wall, device, data));
        for (unsigned p = 0; p < _DOWN_PHASE_MAX; p++) {
                if (!(d->entered & (1u << p)))
                        continue;
                g_string_append_printf(s, "%s%s %" PRIu64 " us (vfiomigd %" PRIu64 " us)", sep, down_phase_names[p],
                                       d->wall[p], ours(d->wall[p], d->device[p], d->data[p]));
                sep = ", ";
        }
        return g_string_free(s, false);
}

void migration_options_init(MigrationOptions *o) {
        *o = (MigrationOptions) {
                .precopy = true,
                .max_precopy_rounds = DEFAULT_MAX_ROUNDS,
                .precopy_threshold = DEFAULT_THRESHOLD,
                .target_running = true,
                .prefetch = true,
                .io_timeout_usec = DEFAULT_IO_TIMEOUT,
        };
}

/* ---- reporting ---- */

void worker_poke(Worker *w) {
        w->poke_pending |= w->quiet;
        if (w->hooks->changed)
                w->hooks->changed(w->userdata, w->quiet);
}

int worker_open_window(Worker *w) {
        if (w->hooks->settle)
                w->hooks->settle(w->userdata);
        if (worker_cancelled(w))
                return worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled");
        worker_quiet(w, true);
        return 0;
}

void worker_quiet(Worker *w, bool quiet) {
        if (w->quiet == quiet)
                return;
        w->quiet = quiet;
        if (quiet || !w->poke_pending)
                return;
        w->poke_pending = false;
        log_debug("migration %u: %s", w->id, migration_phase_to_string(w->phase));
        worker_poke(w);
}

int worker_fail(Worker *w, int r, MigrationError class, const char *format, ...) {
        va_list ap;

        g_mutex_lock(&w->lock);
        if (!w->error && r == -ECANCELED) {
                w->error = g_strdup("Cancelled");
                w->error_class = MIGRATION_ERROR_CANCELLED;
        } else if (!w->error) {
                va_start(ap, format);
                w->error = g_strdup_vprintf(format, ap);
                va_end(ap);
                w->error_class = class;
        }
        g_mutex_unlock(&w->lock);
        return r < 0 ? r : -EIO;
}

int worker_fail_device(Worker *w, int r, WorkerDevice *d, const char *step) {
        if (r == -ETIMEDOUT)
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s: %s: no progress for %" PRIu64 " s",
                                   d->name, step, w->options.io_timeout_usec / USEC_PER_SEC);
        if (r == -EPIPE && !d->source)  /* it closed its end: the driver refused the data */
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s: %s: the device refused the data",
                                   d->name, step);
        return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s: %s: %s", d->name, step, g_strerror(-r));
}

void worker_set_phase(Worker *w, MigrationPhase p) {
        g_mutex_lock(&w->lock);
        w->phase = p;
        g_mutex_unlock(&w->lock);
        if (!w->quiet)
                log_debug("migration %u: %s", w->id, phase_names[p]);
        worker_poke(w);
}

void worker_report_state(Worker *w, WorkerDevice *d, uint32_t state) {
        g_mutex_lock(&w->lock);
        d->state = state;
        g_mutex_unlock(&w->lock);
        worker_poke(w);
}

void worker_set_outcome(Worker *w, WorkerDevice *d, char *outcome) {
        g_mutex_lock(&w->lock);
        g_free(d->outcome);
        d->outcome = outcome;
        g_mutex_unlock(&w->lock);
}

void worker_progress(void *userdata, uint64_t delta) {
        Worker *w = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        bool signal;

        g_mutex_lock(&w->lock);
        w->bytes += delta;
        w->expected = MAX(w->expected, w->bytes);
        signal = now - w->last_signal_usec >= SIGNAL_INTERVAL_USEC;
        if (signal)
                w->last_signal_usec = now;
        g_mutex_unlock(&w->lock);
        if (!signal)
                return;
        /* A stop-copy of gigabytes still shows progress, from its first
         * interval on, when a message costs it a thousandth. */
        if (w->quiet && w->down.open && now - w->down.begin_usec >= SIGNAL_INTERVAL_USEC && w->hooks->changed)
                w->hooks->changed(w->userdata, false);
        else
                worker_poke(w);
}

void worker_set_expected(Worker *w, uint64_t expected) {
        g_mutex_lock(&w->lock);
        w->expected = expected;
        g_mutex_unlock(&w->lock);
}

bool worker_cancelled(Worker *w) {
        struct pollfd p = { .fd = w->cancel_fd, .events = POLLIN };

        return poll(&p, 1, 0) > 0;
}

Xfer worker_xfer(Worker *w) {
        return (Xfer) {
                .cancel_fd = w->cancel_fd, .io_timeout_usec = w->options.io_timeout_usec,
                .buf = w->buf, .buf_size = w->buf_size,
        };
}

WorkerDevice *worker_dev(Worker *w, unsigned i) {
        return w->devices->pdata[i];
}

void worker_close_session(WorkerDevice *d) {
        if (d->data.fd >= 0)
                close(d->data.fd);
        d->data = (XferEnd) { .fd = -1 };
}

/* ---- the downtime window ---- */

static bool down_counting(const Worker *w) {
        return w->down.open && !w->down.closed;
}

static void open_downtime(Worker *w) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (w->down.open)
                return;
        w->down = (Downtime) { .begin_usec = now, .mark_usec = now, .phase = DOWN_STOP, .open = true,
                               .entered = 1u << DOWN_STOP };
}

static void close_phase(Worker *w, uint64_t now) {
        w->down.wall[w->down.phase] += now - w->down.mark_usec;
        w->down.mark_usec = now;
}

void worker_down_phase(Worker *w, DownPhase p) {
        if (!down_counting(w) || w->down.phase == p)
                return;
        close_phase(w, now_usec(CLOCK_MONOTONIC));
        w->down.phase = p;
        w->down.entered |= 1u << p;
}

void worker_down_data(Worker *w, uint64_t usec) {
        if (down_counting(w))
                w->down.data[w->down.phase] += usec;
}

void worker_end_downtime(Worker *w) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!down_counting(w))
                return;
        close_phase(w, now);
        w->down.closed = true;
        g_mutex_lock(&w->lock);
        w->downtime_usec = now - w->down.begin_usec;
        g_mutex_unlock(&w->lock);
}

/* ---- the walk ---- */

typedef struct Step {
        Worker *w;
        WorkerDevice *d;
        uint64_t t0;
        bool hook_failed;
} Step;

static void account_device_time(Step *s) {
        if (down_counting(s->w))
                s->w->down.device[s->w->down.phase] += now_usec(CLOCK_MONOTONIC) - s->t0;
}

static void before_set(void *userdata, uint32_t from, uint32_t to) {
        Step *s = userdata;

        if (s->d->source && fsm_state_is_running(from) && !fsm_state_is_running(to))
                open_downtime(s->w);
        if (!s->d->source)
                s->d->touched = true;
        s->t0 = now_usec(CLOCK_MONOTONIC);
}

static int after_set(void *userdata, uint32_t to, int fd) {
        Step *s = userdata;
        int r;

        account_device_time(s);
        if (fd >= 0) {
                worker_close_session(s->d);
                r = xfer_end_from_device(s->d->handle, fd, &s->d->data);
                if (r < 0) {
                        close(fd);
                        s->hook_failed = true;
                        return worker_fail_device(s->w, r, s->d, "data fd");
                }
        }
        worker_report_state(s->w, s->d, to);
        return 0;
}

int worker_drive(Worker *w, WorkerDevice *d, uint32_t want) {
        static const DriveHooks hooks = { .before = before_set, .arrived = after_set };
        Step s = { .w = w, .d = d };
        uint32_t cur = d->state;
        DriveFailure f;
        int r;

        r = drive_walk(d->handle, d->flags, &cur, want, &hooks, &s, &f);
        if (r >= 0 || s.hook_failed)
                return r;       /* a hook that failed has said why */
        if (f.to == VFIO_STATE_ERROR)
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s: no way from %s to %s", d->name,
                                   fsm_state_to_string(d->state), fsm_state_to_string(want));
        account_device_time(&s);
        worker_report_state(w, d, f.now);
        return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s: %s -> %s failed: %s (device now %s)", d->name,
                           fsm_state_to_string(f.from), fsm_state_to_string(f.to), g_strerror(-r),
                           fsm_state_to_string(f.now));
}

uint64_t worker_expected_bytes(Worker *w) {
        uint64_t total = 0;

        for (unsigned p = 0; p < w->pairs; p++) {
                WorkerDevice *s = worker_dev(w, p);
                uint64_t size;

                if (s->source && s->handle->ops->data_size(s->handle, &size) >= 0)
                        total += size;
        }
        return total;
}

/* ---- the steps every kind shares ---- */

int worker_journal(Worker *w, WorkerRecord what) {
        g_autofree char *why = NULL;
        int r = w->hooks->journal(w->userdata, what, &why);

        if (r < 0 && (what == WORKER_RECORD_BEGIN || what == WORKER_RECORD_COMMIT))
                return worker_fail(w, r, MIGRATION_ERROR_DEVICE, "%s", why);
        return 0;
}

int worker_precopy(Worker *w, WorkerMove move, void *userdata) {
        for (uint32_t round = 0; round < w->options.max_precopy_rounds; round++) {
                bool converged = true;

                if (worker_cancelled(w))
                        return worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled");
                for (unsigned p = 0; p < w->pairs; p++) {
                        WorkerDevice *s = worker_dev(w, p);
                        uint64_t initial, dirty;
                        int r;

                        r = s->handle->ops->precopy_info(s->handle, s->data.fd, &initial, &dirty);
                        if (r < 0)
                                return worker_fail_device(w, r, s, "PRECOPY_INFO");
                        if (initial > 0 || dirty > w->options.precopy_threshold)
                                converged = false;
                        if (initial + dirty > 0) {
                                r = move(w, p, initial + dirty, userdata);
                                if (r < 0)
                                        return r;
                        }
                }
                if (converged)
                        break;
                g_mutex_lock(&w->lock);
                w->rounds++;
                g_mutex_unlock(&w->lock);
                worker_poke(w);
        }
        return 0;
}

int worker_seal(Worker *w) {
        bool cancel;

        g_mutex_lock(&w->lock);
        cancel = w->cancel_requested;
        w->sealed = !cancel;
        g_mutex_unlock(&w->lock);
        return cancel ? worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled") : 0;
}

int worker_commit(Worker *w) {
        int r = worker_seal(w);

        if (r < 0)
                return r;
        w->committed = true;
        return worker_journal(w, WORKER_RECORD_COMMIT);
}

/* ---- the job's side ---- */

int worker_init(Worker *w, MigrationKind kind, const MigrationOptions *o, const WorkerHooks *hooks,
                void *userdata) {
        *w = (Worker) {
                .kind = kind, .options = *o, .hooks = hooks, .userdata = userdata,
                .devices = g_ptr_array_new(), .stream = { .fd = -1 },
        };
        g_mutex_init(&w->lock);
        w->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return w->cancel_fd < 0 ? -errno : 0;
}

void worker_clear(Worker *w) {
        for (guint i = 0; w->devices && i < w->devices->len; i++) {
                WorkerDevice *d = worker_dev(w, i);

                worker_close_session(d);
                device_handle_close(d->handle);
                g_free(d->name);
                g_free(d->outcome);
                g_free(d);
        }
        g_clear_pointer(&w->devices, g_ptr_array_unref);
        xfer_end_close(&w->stream);
        if (w->cancel_fd >= 0)
                close(w->cancel_fd);
        w->cancel_fd = -1;
        stream_header_clear(&w->identity);
        g_mutex_clear(&w->lock);
        g_free(w->stream_label);
        g_free(w->error);
}

WorkerDevice *worker_add_device(Worker *w, const char *name, bool source, DeviceHandle *handle, uint32_t flags,
                                uint32_t state) {
        WorkerDevice *d = g_new0(WorkerDevice, 1);

        d->name = g_strdup(name);
        d->source = source;
        d->handle = handle;
        d->flags = flags;
        d->state = state;
        d->data = (XferEnd) { .fd = -1 };
        g_ptr_array_add(w->devices, d);
        return d;
}

int worker_cancel(Worker *w, const char *who) {
        uint64_t one = 1;

        g_mutex_lock(&w->lock);
        if (w->sealed || w->phase >= MIGRATION_FINISHING) {
                g_mutex_unlock(&w->lock);
                return -EBUSY;
        }
        if (!w->error) {
                w->error = g_strdup_printf("Cancelled by %s", who);
                w->error_class = MIGRATION_ERROR_CANCELLED;
        }
        w->cancel_requested = true;
        g_mutex_unlock(&w->lock);
        if (write(w->cancel_fd, &one, sizeof(one)) < 0)
                return -errno;
        return 0;
}

void worker_snapshot(Worker *w, MigrationSnapshot *ret) {
        g_mutex_lock(&w->lock);
        *ret = (MigrationSnapshot) {
                .phase = w->phase, .bytes = w->bytes, .expected = w->expected, .rounds = w->rounds,
                .downtime_usec = w->downtime_usec, .error_class = w->error_class,
                .error = g_strdup(w->error), .finished = w->finished,
                .devices = g_new0(MigrationSnapshotDevice, w->devices->len), .n_devices = w->devices->len,
        };
        for (guint i = 0; i < w->devices->len; i++) {
                WorkerDevice *d = worker_dev(w, i);

                ret->devices[i] = (MigrationSnapshotDevice) {
                        .name = g_strdup(d->name), .source = d->source, .state = d->state,
                        .outcome = g_strdup(d->outcome ?: ""),
                };
        }
        g_mutex_unlock(&w->lock);
}

void migration_snapshot_clear(MigrationSnapshot *s) {
        for (unsigned i = 0; i < s->n_devices; i++) {
                g_free(s->devices[i].name);
                g_free(s->devices[i].outcome);
        }
        g_clear_pointer(&s->devices, g_free);
        s->n_devices = 0;
        s->error_class = MIGRATION_ERROR_NONE;
        g_clear_pointer(&s->error, g_free);
}

double migration_snapshot_progress(const MigrationSnapshot *s) {
        if (s->phase == MIGRATION_DONE)
                return 1.0;
        return s->expected ? MIN(1.0, (double) s->bytes / (double) s->expected) : 0.0;
}
