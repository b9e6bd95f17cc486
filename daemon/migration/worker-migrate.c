/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "fsm.h"
#include "log.h"
#include "migration/drive.h"
#include "util.h"
#include "vfio-uapi.h"
#include "migration/worker-internal.h"

/* Device to device: targets wait in RESUMING, sources go through
 * pre-copy (when all have it) and stop-copy, the data goes straight
 * from session to session.
 *
 * The downtime window, from the first source that stops until the last
 * target runs, holds only what cannot be done before or after it: the
 * sources' SETs to STOP_COPY, their last data, one byte of the journal
 * and the targets' SETs to RUNNING. The main loop hears of it all once
 * the targets run (worker_quiet()); the buffer and the journal's commit
 * were made ready when the job began; the sources leave STOP_COPY for
 * STOP after the targets run, as QEMU does. */

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

/* Every source's last data into its target, and the end of it: the
 * target's session is closed (its driver sees the end of the stream, and
 * checks what it got when it leaves RESUMING). The source's session waits
 * for the window to close. */
static int copy_stopcopy(Worker *w) {
        for (unsigned p = 0; p < w->pairs; p++) {
                uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                int r = copy_pair(w, p, UINT64_MAX, false);

                if (r >= 0)
                        worker_close_session(target_of(w, p));
                worker_down_data(w, now_usec(CLOCK_MONOTONIC) - t0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The targets load what they got and start, in one SET each where the
 * kernel walks RESUMING -> STOP -> RUNNING_P2P -> RUNNING itself. In a
 * group no target runs before every one has loaded: they wait in
 * RUNNING_P2P when the group is quiesced (each may be the target of
 * another's DMA then, none starts any), else in STOP. */
static int start_targets(Worker *w, bool quiesce) {
        int r;

        if (!w->options.target_running)
                return drive_all(w, false, VFIO_STATE_STOP);
        if (w->pairs > 1) {
                r = drive_all(w, false, quiesce ? VFIO_STATE_RUNNING_P2P : VFIO_STATE_STOP);
                if (r < 0)
                        return r;
        }
        return drive_all(w, false, VFIO_STATE_RUNNING);
}

/* The state has moved and the targets run: a source that does not reach
 * STOP stays stopped where it is, and the job is done all the same. */
static void stop_sources(Worker *w) {
        for (unsigned p = 0; p < w->pairs; p++) {
                WorkerDevice *s = worker_dev(w, p);
                uint32_t cur = s->state;
                DriveFailure f;
                int r;

                worker_close_session(s);
                r = drive_walk(s->handle, s->flags, &cur, VFIO_STATE_STOP, NULL, NULL, &f);
                if (r < 0) {
                        log_warning("migration %u: source %s: %s -> %s failed: %s; it stays stopped in %s", w->id,
                                    s->name, fsm_state_to_string(f.from), fsm_state_to_string(f.to), g_strerror(-r),
                                    fsm_state_to_string(f.now));
                        cur = f.now;
                }
                worker_report_state(w, s, cur);
        }
}

/* A pair whose verdict a busy driver left open was admitted on consent
 * to the unknown without asking that driver again: the call that starts
 * a job asks no driver anything before it has replied. The driver is
 * asked now, before the journal entry and before any device moves, so
 * that a refusal leaves every device as it was. */
int worker_ask_again(Worker *w) {
        for (unsigned p = 0; p < w->pairs; p++) {
                WorkerDevice *s = worker_dev(w, p), *t = target_of(w, p);
                g_autofree char *reason = NULL;
                Verdict v;

                if (!s->ask_again)
                        continue;
                v = w->hooks->judge(w->userdata, &(WorkerQuestion) { .source = s->name, .target = t->name }, &reason);
                if (worker_cancelled(w))
                        return worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled");
                if (v == VERDICT_INCOMPATIBLE)
                        return worker_fail(w, -EPROTONOSUPPORT, MIGRATION_ERROR_INCOMPATIBLE,
                                           "%s cannot go into %s: %s (its driver, busy before, was asked again as "
                                           "the job began)", s->name, t->name, reason);
                if (v == VERDICT_UNKNOWN && !w->options.allow_unknown)
                        return worker_fail(w, -ENOANO, MIGRATION_ERROR_COMPATIBILITY_UNKNOWN,
                                           "%s cannot go into %s: %s (option allow-unknown)", s->name, t->name, reason);
                log_debug("migration %u: %s -> %s asked again: %s", w->id, s->name, t->name, reason);
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
                return worker_fail(w, -ECANCELED, MIGRATION_ERROR_CANCELLED, "Cancelled");
        if (quiesce) {
                r = drive_all(w, true, precopy ? VFIO_STATE_PRE_COPY_P2P : VFIO_STATE_RUNNING_P2P);
                if (r < 0)
                        return r;
        }

        r = worker_open_window(w);
        if (r < 0)
                return r;
        r = drive_all(w, true, VFIO_STATE_STOP_COPY);
        worker_down_phase(w, DOWN_COPY);
        if (r >= 0)
                r = copy_stopcopy(w);
        if (r < 0)
                return r;
        worker_set_phase(w, MIGRATION_RESUMING);
        /* The data is all in: from here on a cancel is refused, and if
         * the daemon dies the journal has the targets finish what they
         * loaded, or the sources run again where a target did not. */
        worker_down_phase(w, DOWN_COMMIT);
        r = worker_commit(w);
        if (r < 0)
                return r;
        worker_set_phase(w, MIGRATION_FINISHING);
        worker_down_phase(w, DOWN_START);
        r = start_targets(w, quiesce);
        if (r < 0)
                return r;
        worker_end_downtime(w);
        worker_quiet(w, false);

        stop_sources(w);
        return 0;
}
