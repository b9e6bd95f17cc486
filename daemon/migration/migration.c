/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "migration/admission.h"
#include "compat/compat-map.h"
#include "fsm.h"
#include "compat/identities.h"
#include "migration/journal.h"
#include "log.h"
#include "migration/migration.h"
#include "migration/states.h"
#include "util.h"
#include "vfio-uapi.h"
#include "vfiomig-names.h"

struct Migration {
        Worker w;                       /* the work, and what it reports */
        const MigrationEnv *env;
        const MigrationOwner *owner_ops;
        void *owner_userdata;
        char *path;
        char *source_label, *target_label;
        char *owner;                    /* unique bus name of the caller */
        char *temp_path, *final_path;   /* save into the state directory */
        bool overwrite;                 /* save: may replace final_path */
        char *state_name;               /* save, load by name */
        JournalFile *journal;           /* the worker's, while it runs */

        GThread *thread;
        uint64_t ended_usec;            /* CLOCK_MONOTONIC; 0 while running */
        int notify_fd;
        sd_event_source *notify_source;
        sd_event_source *idle_source;   /* the main loop has done what a wake-up asked */

        /* the worker waits before its downtime window until the main loop
         * has caught up with its changes (on_settle()) */
        GMutex settle_lock;
        GCond settled;
        uint64_t wakeups, caught_up, handling;

        /* the worker asks the main loop (which owns the map) for a verdict */
        GMutex ask_lock;
        GCond answered;
        bool asking;                                    /* a question is waiting */
        char *ask_type, *ask_version, *ask_iommu;       /* load: the stream's source */
        char *ask_source;                               /* migrate: a device of the job */
        char *ask_target;
        Verdict answer;
        char *answer_reason;
        bool ask_cancelled;
};

static WorkerDevice *dev(Migration *j, unsigned i) {
        return worker_dev(&j->w, i);
}

/* ---- the worker's hooks (worker thread) ---- */

static void on_changed(void *userdata, bool deferred) {
        Migration *j = userdata;
        uint64_t one = 1;

        if (deferred)
                return;         /* the window's changes, published together once it closes */
        g_mutex_lock(&j->settle_lock);
        j->wakeups++;
        g_mutex_unlock(&j->settle_lock);
        if (write(j->notify_fd, &one, sizeof(one)) < 0)
                log_debug("migration %u: cannot wake the main loop: %m", j->w.id);
}

static JournalEntry *journal_entry(Migration *j, bool committed) {
        g_autoptr(GStrvBuilder) s = g_strv_builder_new(), t = g_strv_builder_new();
        JournalEntry *e = g_new0(JournalEntry, 1);

        for (guint i = 0; i < j->w.devices->len; i++)
                g_strv_builder_add(dev(j, i)->source ? s : t, dev(j, i)->name);
        e->id = j->w.id;
        e->kind = g_strdup(migration_kind_to_string(j->w.kind));
        e->committed = committed;
        e->target_running = j->w.options.target_running;
        e->source_running = j->w.options.source_running;
        e->sources = g_strv_builder_end(s);
        e->targets = g_strv_builder_end(t);
        return e;
}

/* Everything the commit needs is made at BEGIN, before any device
 * changes state: the commit, in the downtime, is one byte. */
static int on_journal(void *userdata, WorkerRecord what, char **ret_error) {
        Migration *j = userdata;
        const char *dir = j->env->runtime_dir;
        g_autoptr(JournalEntry) e = NULL;
        int r;

        switch (what) {
        case WORKER_RECORD_BEGIN:
                e = journal_entry(j, false);
                r = journal_begin(dir, e, &j->journal);
                break;
        case WORKER_RECORD_COMMIT:
        case WORKER_RECORD_ABORT:
                r = j->journal ? journal_mark(j->journal, what == WORKER_RECORD_COMMIT) : -EBADF;
                break;
        default:
                r = journal_end(dir, j->w.id, g_steal_pointer(&j->journal));
                break;
        }
        if (r < 0)
                return errno_message(ret_error, r, "cannot record the migration in %s", dir);
        return 0;
}

/* Under ask_lock. */
static void clear_question(Migration *j) {
        j->asking = false;
        g_clear_pointer(&j->ask_type, g_free);
        g_clear_pointer(&j->ask_version, g_free);
        g_clear_pointer(&j->ask_iommu, g_free);
        g_clear_pointer(&j->ask_source, g_free);
        g_clear_pointer(&j->ask_target, g_free);
}

/* The map is the main loop's: ask it and wait for the answer. */
static Verdict on_judge(void *userdata, const WorkerQuestion *q, char **ret_reason) {
        Migration *j = userdata;
        Verdict v;

        g_mutex_lock(&j->ask_lock);
        if (q->header) {
                j->ask_type = g_strdup(q->header->migration_type);
                j->ask_version = g_strdup(q->header->migration_version);
                j->ask_iommu = g_strdup(q->header->iommu);
        }
        j->ask_source = g_strdup(q->source);
        j->ask_target = g_strdup(q->target);
        j->asking = true;
        g_mutex_unlock(&j->ask_lock);
        on_changed(j, false);
        g_mutex_lock(&j->ask_lock);
        while (j->asking && !j->ask_cancelled)
                g_cond_wait(&j->answered, &j->ask_lock);
        v = j->asking ? VERDICT_UNKNOWN : j->answer;
        *ret_reason = j->asking ? g_strdup("cancelled") : g_steal_pointer(&j->answer_reason);
        clear_question(j);      /* a cancelled one is not worth a driver's time */
        g_mutex_unlock(&j->ask_lock);
        return v;
}

static int on_publish(void *userdata, char **ret_error) {
        Migration *j = userdata;
        int r;

        if (!j->temp_path)
                return 0;
        r = states_publish(j->temp_path, j->final_path, j->overwrite, ret_error);
        if (r >= 0)
                g_clear_pointer(&j->temp_path, g_free);
        return r;
}

/* The main loop answers a wake-up with D-Bus messages, and the registry
 * changes it makes have identities derived next: all of that must be
 * over before a source stops, not compete with the downtime window for
 * the CPUs. Bounded: a main loop busy with something else is not
 * waited for. */
#define SETTLE_MAX_USEC (5 * 1000)

static void on_settle(void *userdata) {
        Migration *j = userdata;
        gint64 deadline = g_get_monotonic_time() + SETTLE_MAX_USEC;

        g_mutex_lock(&j->settle_lock);
        while (j->caught_up < j->wakeups)
                if (!g_cond_wait_until(&j->settled, &j->settle_lock, deadline))
                        break;
        g_mutex_unlock(&j->settle_lock);
}

static const WorkerHooks worker_hooks = {
        .changed = on_changed,
        .journal = on_journal,
        .judge = on_judge,
        .publish = on_publish,
        .settle = on_settle,
};

static gpointer run_worker(gpointer userdata) {
        Migration *j = userdata;

        (void) worker_run(&j->w);
        return NULL;
}

/* ---- the main loop's side ---- */

/* The worker's side is on_judge(). Either question may reach a driver
 * (a stream's version new to it, or one whose driver was busy), here,
 * after the call that started the job has replied. */
static void answer_question(Migration *j) {
        g_autoptr(Identity) id = NULL;
        const Judgement *judgement;

        g_mutex_lock(&j->ask_lock);
        if (!j->asking) {
                g_mutex_unlock(&j->ask_lock);
                return;
        }
        if (j->ask_source) {
                judgement = compat_map_verdict(j->env->map, &NODE_OF_DEVICE(j->ask_source),
                                               &NODE_OF_DEVICE(j->ask_target));
                /* as the admission has it: a device without an identity cannot go */
                j->answer = judgement ? judgement->verdict : VERDICT_INCOMPATIBLE;
                j->answer_reason = g_strdup(judgement ? judgement->reason : "no identity");
        } else {
                id = identities_remote(j->ask_type, j->ask_version);
                free_and_strdup(&id->iommu, j->ask_iommu);
                judgement = compat_map_verdict_for(j->env->map, id, &NODE_OF_DEVICE(j->ask_target));
                j->answer = judgement ? judgement->verdict : VERDICT_UNKNOWN;
                j->answer_reason = g_strdup(judgement ? judgement->reason : "the target has no identity");
        }
        clear_question(j);
        g_cond_signal(&j->answered);
        g_mutex_unlock(&j->ask_lock);
}

static void sync_registry(Migration *j, const MigrationSnapshot *s) {
        Registry *reg = j->env->registry;

        for (unsigned i = 0; i < s->n_devices; i++) {
                registry_set_device_state(reg, s->devices[i].name, fsm_state_to_string(s->devices[i].state));
                if (s->finished)
                        registry_set_device_busy(reg, s->devices[i].name, NULL);
        }
}

/* The worker has ended: its downtime's account is ours to read. */
static void log_end(Migration *j, const MigrationSnapshot *s) {
        Worker *w = &j->w;
        g_autofree char *down = NULL;

        if (s->error) {
                log_notice("Migration %u %s: %s", w->id, migration_phase_to_string(s->phase), s->error);
                return;
        }
        down = downtime_describe(&w->down);
        log_info("Migration %u done: %s -> %s, %" PRIu64 " bytes, %s", w->id, j->source_label, j->target_label,
                 s->bytes, down);
}

static void retire(Migration *j);

/* At the lowest priority: everything the last wake-up set off (messages,
 * identities derived from the registry's changes) has run. */
static int on_main_loop_idle(sd_event_source *source, void *userdata) {
        Migration *j = userdata;

        g_mutex_lock(&j->settle_lock);
        j->caught_up = MAX(j->caught_up, j->handling);
        g_cond_broadcast(&j->settled);
        g_mutex_unlock(&j->settle_lock);
        return 0;
}

static int on_worker_notify(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Migration *j = userdata;
        g_auto(MigrationSnapshot) s = {};
        uint64_t count;

        (void) read(fd, &count, sizeof(count));
        g_mutex_lock(&j->settle_lock);
        j->handling = j->wakeups;
        g_mutex_unlock(&j->settle_lock);
        if (j->idle_source)
                (void) sd_event_source_set_enabled(j->idle_source, SD_EVENT_ONESHOT);
        answer_question(j);
        worker_snapshot(&j->w, &s);
        sync_registry(j, &s);
        j->owner_ops->changed(j->owner_userdata, j, s.finished);
        if (!s.finished)
                return 0;

        g_thread_join(j->thread);
        j->thread = NULL;
        if (j->temp_path)               /* not published: half a stream */
                (void) unlink(j->temp_path);
        log_end(j, &s);
        retire(j);
        return 0;
}

/* The job has ended: it leaves ListMigrations and says so, but keeps its
 * object, so that a client that comes late (wait after --no-wait) still
 * learns the outcome. */
static void retire(Migration *j) {
        j->notify_source = sd_event_source_disable_unref(j->notify_source);
        j->idle_source = sd_event_source_disable_unref(j->idle_source);
        j->ended_usec = now_usec(CLOCK_MONOTONIC);
        j->owner_ops->ended(j->owner_userdata, j);
}

/* ---- the job ---- */

void migration_free(Migration *j) {
        if (!j)
                return;
        if (j->thread) {
                /* Only at daemon exit: let the worker roll back first. */
                migration_cancel(j, "vfiomigd shutting down");
                g_thread_join(j->thread);
        }
        sd_event_source_disable_unref(j->notify_source);
        sd_event_source_disable_unref(j->idle_source);
        if (j->notify_fd >= 0)
                close(j->notify_fd);
        worker_clear(&j->w);
        g_mutex_clear(&j->ask_lock);
        g_cond_clear(&j->answered);
        g_mutex_clear(&j->settle_lock);
        g_cond_clear(&j->settled);
        clear_question(j);
        g_free(j->answer_reason);
        g_free(j->path);
        g_free(j->source_label);
        g_free(j->target_label);
        g_free(j->owner);
        g_free(j->temp_path);
        g_free(j->final_path);
        g_free(j->state_name);
        g_free(j);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Migration, migration_free);

int migration_cancel(Migration *j, const char *who) {
        int r = worker_cancel(&j->w, who);

        if (r == -EBUSY)
                return r;
        g_mutex_lock(&j->ask_lock);
        j->ask_cancelled = true;
        g_cond_signal(&j->answered);
        g_mutex_unlock(&j->ask_lock);
        return r;
}

uint32_t migration_get_id(Migration *j) {
        return j->w.id;
}

MigrationKind migration_get_kind(Migration *j) {
        return j->w.kind;
}

const char *migration_get_path(Migration *j) {
        return j->path;
}

const char *migration_get_owner(Migration *j) {
        return j->owner;
}

const char *migration_get_source_label(Migration *j) {
        return j->source_label;
}

const char *migration_get_target_label(Migration *j) {
        return j->target_label;
}

const char *migration_get_state_name(Migration *j) {
        return j->state_name;
}

bool migration_has_ended(Migration *j) {
        return j->ended_usec != 0;
}

uint64_t migration_get_ended_usec(Migration *j) {
        return j->ended_usec;
}

MigrationPhase migration_get_phase(Migration *j) {
        MigrationPhase p;

        g_mutex_lock(&j->w.lock);
        p = j->w.phase;
        g_mutex_unlock(&j->w.lock);
        return p;
}

void migration_snapshot(Migration *j, MigrationSnapshot *ret) {
        worker_snapshot(&j->w, ret);
}

/* ---- starting a job ---- */

static int open_stream(Migration *j, const MigrationRequest *req, char **ret_error) {
        int fd = req->stream_fd, r;

        if (req->final_path) {
                j->final_path = g_strdup(req->final_path);
                j->overwrite = req->overwrite;
                fd = states_create_temp(req->final_path, &j->temp_path, ret_error);
                if (fd < 0)
                        return fd;
                r = xfer_end_from_client_fd(fd, true, &j->w.stream);
                close(fd);
        } else
                r = xfer_end_from_client_fd(fd, j->w.kind == MIGRATION_SAVE, &j->w.stream);
        if (r == -EBADF)
                return errno_message(ret_error, EINVAL, "%s is not open for %s", req->stream_label,
                            j->w.kind == MIGRATION_SAVE ? "writing" : "reading");
        if (r < 0)
                return errno_message(ret_error, EINVAL, "%s cannot carry a stream: %s", req->stream_label, g_strerror(-r));
        return 0;
}

static int prepare(Migration *j, const MigrationRequest *req, char **ret_error) {
        Admission a = { j->env->registry, j->env->backend, j->env->map };
        int r;

        r = admission_check(&a, &j->w, req->sources, req->targets, ret_error);
        if (r >= 0 && j->w.kind != MIGRATION_MIGRATE)
                r = open_stream(j, req, ret_error);
        return r;
}

int migration_prepare(const MigrationEnv *env, const MigrationRequest *req, const char *owner, Migration **ret,
                      char **ret_error) {
        g_autoptr(Migration) j = g_new0(Migration, 1);
        int r;

        j->env = env;
        j->owner = g_strdup(owner);
        j->notify_fd = -1;
        g_mutex_init(&j->ask_lock);
        g_cond_init(&j->answered);
        g_mutex_init(&j->settle_lock);
        g_cond_init(&j->settled);
        j->source_label = req->sources ? g_strjoinv(",", req->sources) : g_strdup(req->stream_label);
        j->target_label = req->targets ? g_strjoinv(",", req->targets) : g_strdup(req->stream_label);
        r = worker_init(&j->w, req->kind, &req->options, &worker_hooks, j);
        if (r < 0)
                return errno_message(ret_error, r, "Cannot create eventfd: %s", g_strerror(-r));
        j->w.pairs = g_strv_length(req->sources ? req->sources : req->targets);
        j->w.stream_label = g_strdup(req->stream_label);
        j->state_name = g_strdup(req->state_name);
        r = prepare(j, req, ret_error);
        if (r < 0)
                return r;

        j->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->notify_fd < 0)
                return errno_message(ret_error, errno, "Cannot create eventfd: %s", g_strerror(errno));
        r = sd_event_add_io(env->event, &j->notify_source, j->notify_fd, EPOLLIN, on_worker_notify, j);
        if (r >= 0)
                r = sd_event_add_defer(env->event, &j->idle_source, on_main_loop_idle, j);
        if (r >= 0)
                r = sd_event_source_set_priority(j->idle_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(j->idle_source, SD_EVENT_OFF);
        if (r < 0)
                return errno_message(ret_error, r, "Cannot watch the worker: %s", g_strerror(-r));
        *ret = g_steal_pointer(&j);
        return 0;
}

void migration_launch(Migration *j, uint32_t id, const MigrationOwner *owner, void *userdata) {
        g_autofree char *holder = g_strdup_printf("migration %u", id);

        j->w.id = id;
        j->path = g_strdup_printf(VFIOMIG_MIGRATION_PATH_PREFIX "/%u", id);
        j->owner_ops = owner;
        j->owner_userdata = userdata;
        for (guint i = 0; i < j->w.devices->len; i++)
                registry_set_device_busy(j->env->registry, dev(j, i)->name, holder);
        j->thread = g_thread_new("migration", run_worker, j);
        log_info("Migration %u started: %s %s -> %s", id, migration_kind_to_string(j->w.kind), j->source_label,
                 j->target_label);
}
