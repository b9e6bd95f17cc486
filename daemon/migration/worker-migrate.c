/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "fsm.h"
#include "util.h"
#include "vfio-uapi.h"
#include "vfiomig-names.h"
#include "migration/worker-internal.h"

/* Device to device: targets wait in RESUMING, sources go through
 * pre-copy (when all have it) and stop-copy, the data goes straight
 * from session to session. */

static WorkerDevice *target_of(Worker *w, unsigned pair) {
        return worker_dev(w, w->kind == MIGRATION_MIGRATE ? pair + w->pairs : pair);
}

static bool all_have(Worker *w, uint32_t flag) {
        for (guint i = 0; i < w->devices->len; i++)
                if (!(worker_dev(w, i)->flags & flag))
                        return false;
        return true;
}

static int copy_pair(Worker *w, unsigned pair, uint64_t limit, bool precopy) {
        WorkerDevice *s = worker_dev(w, pair), *t = target_of(w, pair);
        Xfer x = worker_xfer(w);
        bool dst_failed;
        int64_t n;

        n = xfer_copy(&x, &s->data, &t->data, limit, precopy, worker_progress, w, &dst_failed);
        if (n < 0)
                return worker_fail_device(w, (int) n, dst_failed ? t : s,
                                          dst_failed ? "writing the device state" : "reading the device state");
        return 0;
}

static int copy_precopy(Worker *w, unsigned pair, uint64_t limit, void *userdata) {
        return copy_pair(w, pair, limit, true);
}

/* Every pair's source to want, or every target's. */
static int drive_all(Worker *w, bool sources, uint32_t want) {
        for (unsigned p = 0; p < w->pairs; p++) {
                int r = worker_drive(w, sources ? worker_dev(w, p) : target_of(w, p), want);

                if (r < 0)
                        return r;
        }
        return 0;
}

int worker_run_migrate(Worker *w) {
        bool precopy = w->options.precopy && all_have(w, VFIO_MIGRATION_PRE_COPY);
        /* quiesce a group: everyone stops initiating P2P before anyone stops */
        bool quiesce = w->pairs > 1 && all_have(w, VFIO_MIGRATION_P2P);
        int r;

        worker_set_expected(w, worker_expected_bytes(w));
        r = drive_all(w, false, VFIO_STATE_RESUMING);
        if (r >= 0 && precopy) {
                worker_set_phase(w, MIGRATION_PRECOPY);
                r = drive_all(w, true, VFIO_STATE_PRE_COPY);
                if (r >= 0)
                        r = worker_precopy(w, copy_precopy, NULL);
        }
        if (r < 0)
                return r;

        worker_set_phase(w, MIGRATION_STOPCOPY);
        if (worker_cancelled(w))
                return worker_fail(w, -ECANCELED, VFIOMIG_ERROR_CANCELLED, "Cancelled");
        if (quiesce) {
                r = drive_all(w, true, precopy ? VFIO_STATE_PRE_COPY_P2P : VFIO_STATE_RUNNING_P2P);
                if (r < 0)
                        return r;
        }
        r = drive_all(w, true, VFIO_STATE_STOP_COPY);
        for (unsigned p = 0; r >= 0 && p < w->pairs; p++) {
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);

                r = copy_pair(w, p, UINT64_MAX, false);
                if (r < 0)
                        break;
                w->down_transfer_usec += now_usec(CLOCK_MONOTONIC) - t0;
                worker_close_session(worker_dev(w, p));
                r = worker_drive(w, worker_dev(w, p), VFIO_STATE_STOP);
        }
        if (r < 0)
                return r;

        worker_set_phase(w, MIGRATION_RESUMING);
        for (unsigned p = 0; p < w->pairs; p++) {
                WorkerDevice *t = target_of(w, p);

                worker_close_session(t);        /* end of data: the device checks it now */
                r = worker_drive(w, t, VFIO_STATE_STOP);
                if (r < 0)
                        return r;
        }
        /* The targets hold the state: from here on sources stay stopped. */
        r = worker_commit(w);
        if (r < 0)
                return r;
        worker_set_phase(w, MIGRATION_FINISHING);
        if (w->options.target_running) {
                r = drive_all(w, false, VFIO_STATE_RUNNING);
                if (r < 0)
                        return r;
        }
        worker_end_downtime(w);
        return 0;
}

