/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What worker.c (the steps every kind shares) gives worker-migrate.c,
 * worker-stream.c (save and load) and worker-run.c (a job from start to
 * end): the worker's reporting, its walk and its pre-copy loop. Worker
 * thread only. */

#include "migration/worker.h"

#define WORKER_CHUNK (1024 * 1024)

/* Records the first error only (later ones are consequences); whatever
 * step a cancel interrupts, the job was cancelled. Returns r, or -EIO. */
int worker_fail(Worker *w, int r, MigrationError class, const char *format, ...) G_GNUC_PRINTF(4, 5);
/* A device error, named after the device and the step. */
int worker_fail_device(Worker *w, int r, WorkerDevice *d, const char *step);
void worker_set_phase(Worker *w, MigrationPhase p);
void worker_set_expected(Worker *w, uint64_t expected);
/* What the sources' STOP_COPY sessions will produce, as they estimate. */
uint64_t worker_expected_bytes(Worker *w);
void worker_progress(void *userdata, uint64_t delta);
bool worker_cancelled(Worker *w);
Xfer worker_xfer(Worker *w);
void worker_close_session(WorkerDevice *d);

/* The downtime window opens when the first source leaves a running
 * state (worker_drive() sees it); then its phases follow, and it closes
 * when the last target runs, or holds the state. */
void worker_down_phase(Worker *w, DownPhase p);
/* Time spent moving stop-copy data, inside the window. */
void worker_down_data(Worker *w, uint64_t usec);
void worker_end_downtime(Worker *w);

/* Tells the job that the status changed, for it to wake the main loop;
 * while quiet, deferred to when quiet ends. Quiet is for the downtime
 * window: the main loop would answer every change with D-Bus messages
 * and identity updates, on the CPUs the window needs. */
void worker_poke(Worker *w);
void worker_quiet(Worker *w, bool quiet);
/* Right before the window: lets the main loop finish what the last
 * changes set off, then goes quiet. -ECANCELED if a cancel came. */
int worker_open_window(Worker *w);
void worker_report_state(Worker *w, WorkerDevice *d, uint32_t state);
/* Takes outcome. */
void worker_set_outcome(Worker *w, WorkerDevice *d, char *outcome);
/* Through the job's journal hook; a failure to record BEGIN or COMMIT
 * fails the job. */
int worker_journal(Worker *w, WorkerRecord what);

/* Moves a device to want along the one walk (drive.h), picking up data
 * sessions and keeping the downtime's account. */
int worker_drive(Worker *w, WorkerDevice *d, uint32_t want);

/* Pre-copy rounds until the initial data is through and what the
 * devices dirty meanwhile is small enough for stop-copy, or the round
 * limit: move(pair, limit) moves up to limit bytes of each pair's
 * source session wherever the job sends them. */
typedef int (*WorkerMove)(Worker *w, unsigned pair, uint64_t limit, void *userdata);
int worker_precopy(Worker *w, WorkerMove move, void *userdata);

/* The point of no return for a cancel: one that came first wins
 * (-ECANCELED); one that comes later is refused. */
int worker_seal(Worker *w);
/* The commit: sealed, and recorded in the journal. */
int worker_commit(Worker *w);

/* Migrate: the pairs marked ask_again are judged once more, through the
 * judge hook, before anything moves; a refusal fails the job. */
int worker_ask_again(Worker *w);
int worker_run_migrate(Worker *w);
int worker_run_save(Worker *w);
int worker_run_load(Worker *w);
