/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sys/mman.h>

#include "fsm.h"
#include "log.h"
#include "migration/drive.h"
#include "migration/worker-internal.h"

/* A job from beginning to end: the journal entry, the work of its kind
 * (worker-migrate.c, worker-stream.c), and a rollback or the outcomes. */

static void rollback(Worker *w) {
        for (guint i = 0; i < w->devices->len; i++) {
                WorkerDevice *d = worker_dev(w, i);
                uint32_t state;

                worker_close_session(d);
                if (!d->source && !d->touched) {
                        worker_set_outcome(w, d, g_strdup("untouched"));
                        continue;
                }
                worker_set_outcome(w, d, d->source ? drive_restore(d->handle, d->flags) : drive_reset(d->handle));
                if (d->handle->ops->get_state(d->handle, &state) >= 0)
                        worker_report_state(w, d, state);
                log_notice("migration %u: %s %s: %s", w->id, d->source ? "source" : "target", d->name, d->outcome);
        }
}

static void success_outcomes(Worker *w) {
        for (guint i = 0; i < w->devices->len; i++) {
                WorkerDevice *d = worker_dev(w, i);

                worker_set_outcome(w, d, g_strdup(fsm_state_to_string(d->state)));
        }
}

/* The job's buffer, in its own mapping: faulted in before the downtime
 * needs it, and given back to the kernel, not to malloc's arenas, when
 * the job ends. */
static int make_buffer(Worker *w) {
        void *p = mmap(NULL, WORKER_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

        if (p == MAP_FAILED)
                return worker_fail(w, -errno, MIGRATION_ERROR_DEVICE, "Cannot allocate a buffer: %s",
                                   g_strerror(errno));
        w->buf = p;
        w->buf_size = WORKER_CHUNK;
        return 0;
}

static void free_buffer(Worker *w) {
        if (w->buf)
                (void) munmap(w->buf, w->buf_size);
        w->buf = NULL;
        w->buf_size = 0;
}

int worker_run(Worker *w) {
        int r;

        r = make_buffer(w);
        if (r >= 0 && w->kind == MIGRATION_MIGRATE)
                r = worker_ask_again(w);        /* nothing to journal yet: nothing has moved */
        if (r >= 0)
                r = worker_journal(w, WORKER_RECORD_BEGIN);
        if (r >= 0 && w->kind == MIGRATION_MIGRATE)
                r = worker_run_migrate(w);
        else if (r >= 0 && w->kind == MIGRATION_SAVE)
                r = worker_run_save(w);
        else if (r >= 0)
                r = worker_run_load(w);

        worker_quiet(w, false);
        if (r < 0 && w->committed)
                (void) worker_journal(w, WORKER_RECORD_ABORT);
        if (r < 0)
                rollback(w);
        else
                success_outcomes(w);
        free_buffer(w);
        for (guint i = 0; i < w->devices->len; i++) {
                worker_close_session(worker_dev(w, i));
                g_clear_pointer(&worker_dev(w, i)->handle, device_handle_close);
        }
        xfer_end_close(&w->stream);
        (void) worker_journal(w, WORKER_RECORD_END);

        g_mutex_lock(&w->lock);
        if (r >= 0)
                w->phase = MIGRATION_DONE;
        else
                w->phase = w->error_class == MIGRATION_ERROR_CANCELLED ? MIGRATION_CANCELLED : MIGRATION_FAILED;
        w->finished = true;
        g_mutex_unlock(&w->lock);
        worker_poke(w);
        return r;
}
