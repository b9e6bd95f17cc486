/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fsm.h"
#include "log.h"
#include "migration/drive.h"
#include "migration/worker-internal.h"
#include "vfiomig-names.h"

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

int worker_run(Worker *w) {
        int r;

        r = worker_journal(w, WORKER_RECORD_BEGIN);
        if (r >= 0 && w->kind == MIGRATION_MIGRATE)
                r = worker_run_migrate(w);
        else if (r >= 0 && w->kind == MIGRATION_SAVE)
                r = worker_run_save(w);
        else if (r >= 0)
                r = worker_run_load(w);

        if (r < 0)
                rollback(w);
        else
                success_outcomes(w);
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
                w->phase = g_strcmp0(w->error_name, VFIOMIG_ERROR_CANCELLED) == 0 ? MIGRATION_CANCELLED
                                                                                  : MIGRATION_FAILED;
        w->finished = true;
        g_mutex_unlock(&w->lock);
        worker_poke(w);
        return r;
}
