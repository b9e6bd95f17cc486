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
        uint32_t st = VFIO_STATE_ERROR, flags = 0;
        int fd = -1;

        if (goal == RECOVER_RESET)
                return drive_reset(h);
        (void) h->ops->get_state(h, &st);
        if (goal == RECOVER_STOP && st == VFIO_STATE_STOP)
                return g_strdup("left stopped, as the job asked");
        /* a source whose session the job would have ended after the
         * targets ran */
        if (goal == RECOVER_STOP && st == VFIO_STATE_STOP_COPY && h->ops->get_flags(h, &flags) >= 0 &&
            drive_to(h, flags, VFIO_STATE_STOP, &fd) >= 0)
                return g_strdup("stopped, as the job asked (was stop-copy)");
        /* elsewhere a stopped device has no state to keep: not half-way */
        return recover_device(h, true);
}

typedef struct Member {
        const char *name;
        bool source;
        DeviceHandle *handle;   /* NULL: gone, or held by another */
        uint32_t state;
} Member;

static void member_clear(Member *m) {
        g_clear_pointer(&m->handle, device_handle_close);
}

static void open_member(Jobs *jobs, const JournalEntry *e, Member *m) {
        const Device *d = registry_get_device(jobs->env.registry, m->name);
        g_autofree char *why = NULL;
        int r;

        m->state = VFIO_STATE_ERROR;
        if (!d) {
                log_warning("Migration %u: %s %s is gone, nothing to restore", e->id, m->source ? "source" : "target",
                            m->name);
                return;
        }
        r = backend_open_device(jobs->env.backend, d, &m->handle, &why);
        if (r < 0) {
                log_warning("Migration %u: cannot restore %s: %s", e->id, m->name, why ? why : g_strerror(-r));
                return;
        }
        if (m->handle->ops->get_state(m->handle, &m->state) < 0)
                m->state = VFIO_STATE_ERROR;
}

static void recover_member(Jobs *jobs, const JournalEntry *e, bool committed, Member *m, RecoverGoal goal) {
        g_autofree char *outcome = NULL;
        uint32_t st;

        if (!m->handle)
                return;
        outcome = recover_to(m->handle, goal);
        if (m->handle->ops->get_state(m->handle, &st) >= 0)
                registry_set_device_state(jobs->env.registry, m->name, fsm_state_to_string(st));
        log_notice("Migration %u was interrupted by a daemon restart%s: %s %s %s", e->id,
                   committed ? " after its commit point" : "", m->source ? "source" : "target", m->name, outcome);
}

/* A committed job had all its data in and asked its targets to load it
 * (the commit is one byte, just before they leave RESUMING): those that
 * left RESUMING hold the state. One that did not, or that cannot be
 * looked at, holds nothing, and the state is only in the sources. */
static bool targets_hold_state(const Member *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!m[i].source && (!m[i].handle || m[i].state == VFIO_STATE_RESUMING ||
                                     m[i].state == VFIO_STATE_ERROR))
                        return false;
        return true;
}

/* A job whose targets hold the state is finished as it would have been
 * (targets to RUNNING if asked; a saved source to RUNNING if asked, else
 * it stays stopped). Any other is rolled back. */
static void recover_entry(Jobs *jobs, const JournalEntry *e) {
        bool save = g_strcmp0(e->kind, "save") == 0, committed;
        size_t ns = e->sources ? g_strv_length(e->sources) : 0, nt = e->targets ? g_strv_length(e->targets) : 0;
        g_autofree Member *m = g_new0(Member, ns + nt + 1);
        RecoverGoal source_goal, target_goal;

        for (size_t i = 0; i < ns + nt; i++) {
                m[i] = (Member) { .name = i < ns ? e->sources[i] : e->targets[i - ns], .source = i < ns };
                open_member(jobs, e, &m[i]);
        }
        committed = e->committed && targets_hold_state(m, ns + nt);
        if (e->committed && !committed)
                log_notice("Migration %u was interrupted by a daemon restart after its commit point, before its "
                           "targets held the state: rolling it back", e->id);
        source_goal = !committed ? RECOVER_RUNNING : save && e->source_running ? RECOVER_RUNNING : RECOVER_STOP;
        target_goal = !committed ? RECOVER_RESET : e->target_running ? RECOVER_RUNNING : RECOVER_STOP;
        for (size_t i = 0; i < ns + nt; i++) {
                recover_member(jobs, e, committed, &m[i], m[i].source ? source_goal : target_goal);
                member_clear(&m[i]);
        }
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
