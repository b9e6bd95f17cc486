/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "migration/drive.h"
#include "fsm.h"
#include "migration/journal.h"
#include "log.h"
#include "migration/jobs-internal.h"
#include "migration/recovery.h"
#include "migration/states.h"
#include "vfio-uapi.h"

/* A source back to RUNNING; a target reset. */
static char *recover_device(DeviceHandle *h, bool source) {
        uint32_t flags = 0;

        if (!source)
                return drive_reset(h);
        (void) h->ops->get_flags(h, &flags);
        return drive_restore(h, flags);
}

int migration_resume_device(Jobs *jobs, const Device *d, char **ret_outcome, char **ret_error) {
        g_autoptr(DeviceHandle) h = NULL;
        g_autofree char *why = NULL;
        uint32_t st = VFIO_STATE_ERROR;
        int r;

        if (device_is_taken(d)) {
                g_autofree char *holder = device_describe_holder(d);

                *ret_error = g_strdup_printf("%s is held by %s", d->name, holder);
                return -EBUSY;
        }
        r = backend_open_device(jobs->env.backend, d, &h, &why);
        if (r < 0) {
                *ret_error = g_steal_pointer(&why) ?: g_strdup_printf("%s: %s", d->name, g_strerror(-r));
                return r;
        }
        *ret_outcome = recover_device(h, true);
        if (h->ops->get_state(h, &st) >= 0)
                registry_set_device_state(jobs->env.registry, d->name, fsm_state_to_string(st));
        if (st != VFIO_STATE_RUNNING) {
                *ret_error = g_strdup_printf("%s: %s", d->name, *ret_outcome);
                return -EIO;
        }
        return 0;
}

typedef enum RecoverGoal {
        RECOVER_RUNNING,        /* a source of a job that did not commit, or a target asked to run */
        RECOVER_RESET,          /* a target of a job that did not commit */
        RECOVER_STOP,           /* a committed job's source (or target) meant to stay stopped */
} RecoverGoal;

/* Puts one device where the job would have left it. */
static char *recover_to(DeviceHandle *h, RecoverGoal goal) {
        uint32_t st = VFIO_STATE_ERROR;

        if (goal == RECOVER_RESET)
                return drive_reset(h);
        (void) h->ops->get_state(h, &st);
        if (goal == RECOVER_STOP && st == VFIO_STATE_STOP)
                return g_strdup("left stopped, as the job asked");
        /* elsewhere a stopped device has no state to keep: not half-way */
        return recover_device(h, true);
}

static void recover_one(Jobs *jobs, const JournalEntry *e, const char *name, bool source, RecoverGoal goal) {
        const Device *d = registry_get_device(jobs->env.registry, name);
        g_autoptr(DeviceHandle) h = NULL;
        g_autofree char *why = NULL, *outcome = NULL;
        uint32_t st;
        int r;

        if (!d) {
                log_warning("Migration %u: %s %s is gone, nothing to restore", e->id, source ? "source" : "target",
                            name);
                return;
        }
        r = backend_open_device(jobs->env.backend, d, &h, &why);
        if (r < 0) {
                log_warning("Migration %u: cannot restore %s: %s", e->id, name, why ? why : g_strerror(-r));
                return;
        }
        outcome = recover_to(h, goal);
        if (h->ops->get_state(h, &st) >= 0)
                registry_set_device_state(jobs->env.registry, name, fsm_state_to_string(st));
        log_notice("Migration %u was interrupted by a daemon restart%s: %s %s %s", e->id,
                   e->committed ? " after its commit point" : "", source ? "source" : "target", name, outcome);
}

/* A job that committed moved the state: it is finished as it would have
 * been (targets to RUNNING if asked; a saved source to RUNNING if asked,
 * else it stays stopped). One that did not is rolled back. */
static void recover_entry(Jobs *jobs, const JournalEntry *e) {
        bool save = g_strcmp0(e->kind, "save") == 0;
        RecoverGoal source_goal = !e->committed ? RECOVER_RUNNING :
                                  save && e->source_running ? RECOVER_RUNNING : RECOVER_STOP;
        RecoverGoal target_goal = !e->committed ? RECOVER_RESET :
                                  e->target_running ? RECOVER_RUNNING : RECOVER_STOP;

        for (char **n = e->sources; n && *n; n++)
                recover_one(jobs, e, *n, true, source_goal);
        for (char **n = e->targets; n && *n; n++)
                recover_one(jobs, e, *n, false, target_goal);
}

void migration_recover_journal(Jobs *jobs) {
        g_autoptr(GPtrArray) entries = journal_load(jobs->runtime_dir);
        g_autofree char *states = states_dir(jobs->state_dir);

        states_sweep(states);
        for (guint i = 0; i < entries->len; i++) {
                JournalEntry *e = entries->pdata[i];

                recover_entry(jobs, e);
                journal_remove(jobs->runtime_dir, e->id);
                jobs_note_id(jobs, e->id);
        }
}
