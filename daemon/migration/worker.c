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
#include "vfiomig-names.h"
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
        if (w->hooks->changed)
                w->hooks->changed(w->userdata);
}

int worker_fail(Worker *w, int r, const char *name, const char *format, ...) {
        va_list ap;

        g_mutex_lock(&w->lock);
        if (!w->error && r == -ECANCELED) {
                w->error = g_strdup("Cancelled");
                w->error_name = g_strdup(VFIOMIG_ERROR_CANCELLED);
        } else if (!w->error) {
                va_start(ap, format);
                w->error = g_strdup_vprintf(format, ap);
                va_end(ap);
                w->error_name = g_strdup(name);
        }
        g_mutex_unlock(&w->lock);
        return r < 0 ? r : -EIO;
}

int worker_fail_device(Worker *w, int r, WorkerDevice *d, const char *step) {
        if (r == -ETIMEDOUT)
                return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: no progress for %" PRIu64 " s",
                                   d->name, step, w->options.io_timeout_usec / USEC_PER_SEC);
        if (r == -EPIPE && !d->source)  /* it closed its end: the driver refused the data */
                return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: the device refused the data",
                                   d->name, step);
        return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s: %s", d->name, step, g_strerror(-r));
}

void worker_set_phase(Worker *w, MigrationPhase p) {
        g_mutex_lock(&w->lock);
        w->phase = p;
        g_mutex_unlock(&w->lock);
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
        if (signal)
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
        return (Xfer) { .cancel_fd = w->cancel_fd, .io_timeout_usec = w->options.io_timeout_usec };
}

WorkerDevice *worker_dev(Worker *w, unsigned i) {
        return w->devices->pdata[i];
}

void worker_close_session(WorkerDevice *d) {
        if (d->data.fd >= 0)
                close(d->data.fd);
        d->data = (XferEnd) { .fd = -1 };
}

void worker_end_downtime(Worker *w) {
        g_mutex_lock(&w->lock);
        if (w->down_start_usec)
                w->downtime_usec = now_usec(CLOCK_MONOTONIC) - w->down_start_usec;
        g_mutex_unlock(&w->lock);
}

/* ---- the walk ---- */

typedef struct Step {
        Worker *w;
        WorkerDevice *d;
        uint64_t t0;
} Step;

static void account_device_time(Step *s) {
        if (s->w->down_start_usec && !s->w->downtime_usec)
                s->w->down_device_usec += now_usec(CLOCK_MONOTONIC) - s->t0;
}

static void before_arc(void *userdata, uint32_t from, uint32_t to) {
        Step *s = userdata;

        if (s->d->source && fsm_state_is_running(from) && !fsm_state_is_running(to) && s->w->down_start_usec == 0)
                s->w->down_start_usec = now_usec(CLOCK_MONOTONIC);
        if (!s->d->source)
                s->d->touched = true;
        s->t0 = now_usec(CLOCK_MONOTONIC);
}

static int after_arc(void *userdata, uint32_t to, int fd) {
        Step *s = userdata;
        int r;

        account_device_time(s);
        if (fd >= 0) {
                worker_close_session(s->d);
                r = xfer_end_from_device(s->d->handle, fd, &s->d->data);
                if (r < 0) {
                        close(fd);
                        return worker_fail_device(s->w, r, s->d, "data fd");
                }
        }
        worker_report_state(s->w, s->d, to);
        return 0;
}

int worker_drive(Worker *w, WorkerDevice *d, uint32_t want) {
        static const DriveHooks hooks = { .before = before_arc, .arrived = after_arc };
        Step s = { .w = w, .d = d };
        uint32_t cur = d->state, arc, actual;
        int r;

        r = drive_walk(d->handle, d->flags, &cur, want, &hooks, &s, &arc);
        if (r >= 0)
                return 0;
        if (arc == VFIO_STATE_ERROR)
                return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: no way from %s to %s", d->name,
                                   fsm_state_to_string(d->state), fsm_state_to_string(want));
        if (cur == arc)
                return r;       /* the arc was taken; what failed after it has said so */
        account_device_time(&s);
        if (d->handle->ops->get_state(d->handle, &actual) >= 0)
                worker_report_state(w, d, actual);
        return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s: %s -> %s failed: %s (device now %s)", d->name,
                           fsm_state_to_string(cur), fsm_state_to_string(arc), g_strerror(-r),
                           fsm_state_to_string(d->state));
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

        if (r < 0 && what != WORKER_RECORD_END)
                return worker_fail(w, r, VFIOMIG_ERROR_DEVICE_FAILED, "%s", why);
        return 0;
}

int worker_precopy(Worker *w, WorkerMove move, void *userdata) {
        for (uint32_t round = 0; round < w->options.max_precopy_rounds; round++) {
                bool converged = true;

                if (worker_cancelled(w))
                        return worker_fail(w, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
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

int worker_commit(Worker *w) {
        bool cancel;

        g_mutex_lock(&w->lock);
        cancel = w->cancel_requested;
        w->committed = !cancel;
        g_mutex_unlock(&w->lock);
        if (cancel)
                return worker_fail(w, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
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
        g_free(w->error_name);
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
        if (w->committed || w->phase >= MIGRATION_FINISHING) {
                g_mutex_unlock(&w->lock);
                return -EBUSY;
        }
        if (!w->error) {
                w->error = g_strdup_printf("Cancelled by %s", who);
                w->error_name = g_strdup(VFIOMIG_ERROR_CANCELLED);
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
                .downtime_usec = w->downtime_usec, .error_name = g_strdup(w->error_name),
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
        g_clear_pointer(&s->error_name, g_free);
        g_clear_pointer(&s->error, g_free);
}

double migration_snapshot_progress(const MigrationSnapshot *s) {
        if (s->phase == MIGRATION_DONE)
                return 1.0;
        return s->expected ? MIN(1.0, (double) s->bytes / (double) s->expected) : 0.0;
}
