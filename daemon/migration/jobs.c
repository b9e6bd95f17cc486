/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "log.h"
#include "migration/jobs-internal.h"

/* The table of jobs: running ones, ended ones kept for clients that ask
 * late, and ids unique across restarts. */

Migration *jobs_lookup(Jobs *t, uint32_t id) {
        return g_hash_table_lookup(t->running, GUINT_TO_POINTER(id)) ?:
               g_hash_table_lookup(t->ended, GUINT_TO_POINTER(id));
}

static int compare_ids(gconstpointer a, gconstpointer b) {
        uint32_t x = migration_get_id(*(Migration *const *) a), y = migration_get_id(*(Migration *const *) b);

        return x < y ? -1 : x > y;
}

static void add_jobs(GPtrArray *a, GHashTable *jobs) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, jobs);
        while (g_hash_table_iter_next(&i, NULL, &v))
                g_ptr_array_add(a, v);
}

GPtrArray *jobs_list(Jobs *t, bool ended) {
        GPtrArray *a = g_ptr_array_new();

        add_jobs(a, t->running);
        if (ended)
                add_jobs(a, t->ended);
        g_ptr_array_sort(a, compare_ids);
        return a;
}

static bool expired(Jobs *t, Migration *j, uint64_t now) {
        return g_queue_get_length(t->ended_order) > MIGRATION_RETAIN_JOBS &&
               now >= migration_get_ended_usec(j) + MIGRATION_RETAIN_USEC;
}

static int on_retire_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Forgets the ended jobs that are both old and beyond the last few. */
static void prune_finished(Jobs *t) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        Migration *j;
        int r;

        while ((j = g_queue_peek_head(t->ended_order)) && expired(t, j, now)) {
                g_queue_pop_head(t->ended_order);
                if (t->events)
                        t->events->forgotten(t->events_userdata, j);
                g_hash_table_remove(t->ended, GUINT_TO_POINTER(migration_get_id(j)));      /* frees j */
        }
        if (g_queue_get_length(t->ended_order) <= MIGRATION_RETAIN_JOBS)
                return;
        j = g_queue_peek_head(t->ended_order);
        if (t->retire_timer)
                r = sd_event_source_set_time(t->retire_timer, migration_get_ended_usec(j) + MIGRATION_RETAIN_USEC) ?:
                    sd_event_source_set_enabled(t->retire_timer, SD_EVENT_ONESHOT);
        else
                r = sd_event_add_time(t->env.event, &t->retire_timer, CLOCK_MONOTONIC,
                                      migration_get_ended_usec(j) + MIGRATION_RETAIN_USEC, USEC_PER_SEC, on_retire_timer, t);
        if (r < 0)
                log_warning_errno(r, "Cannot schedule forgetting ended migrations: %m");
}

static int on_retire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        prune_finished(userdata);
        return 0;
}

/* The job has ended: it leaves the running ones (ListMigrations) and
 * says so, but stays in the table for a while. */
static void on_ended(void *userdata, Migration *j) {
        Jobs *t = userdata;
        uint32_t id = migration_get_id(j);

        if (t->events)
                t->events->ended(t->events_userdata, j);
        g_hash_table_steal(t->running, GUINT_TO_POINTER(id));
        g_hash_table_insert(t->ended, GUINT_TO_POINTER(id), j);
        g_queue_push_tail(t->ended_order, j);
        prune_finished(t);
}

static void on_changed(void *userdata, Migration *j, bool final) {
        Jobs *t = userdata;

        if (t->events)
                t->events->changed(t->events_userdata, j, final);
}

static const MigrationOwner owner = {
        .changed = on_changed,
        .ended = on_ended,
};

#define LAST_ID_FILE "last-migration-id"

/* Not across restarts of the machine, whose runtime directory starts
 * empty: a client's "wait 7" must never find another job 7. */
static uint32_t next_id(Jobs *t) {
        g_autofree char *path = g_build_filename(t->runtime_dir, LAST_ID_FILE, NULL);
        g_autofree char *text = g_strdup_printf("%u\n", ++t->last_id);
        int r = write_file_atomic(path, text, strlen(text));

        if (r < 0)
                log_warning_errno(r, "Cannot record the last migration id in %s: %m", path);
        return t->last_id;
}

static void load_last_id(Jobs *t) {
        g_autofree char *path = g_build_filename(t->runtime_dir, LAST_ID_FILE, NULL), *text = NULL;
        guint64 id;

        if (!g_file_get_contents(path, &text, NULL, NULL))
                return;
        if (g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, G_MAXUINT32 - 1, &id, NULL))
                jobs_note_id(t, (uint32_t) id);
        else
                log_warning("Ignoring %s: not a migration id", path);
}

void jobs_note_id(Jobs *t, uint32_t id) {
        t->last_id = MAX(t->last_id, id);
}

int jobs_new(sd_event *event, Registry *registry, Backend *backend, CompatMap *map, const char *runtime_dir,
             const char *state_dir, Jobs **ret) {
        Jobs *t = g_new0(Jobs, 1);

        t->runtime_dir = g_strdup(runtime_dir);
        t->state_dir = g_strdup(state_dir);
        t->env = (MigrationEnv) { sd_event_ref(event), registry, backend, map, t->runtime_dir };
        t->running = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) migration_free);
        t->ended = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) migration_free);
        t->ended_order = g_queue_new();
        load_last_id(t);
        *ret = t;
        return 0;
}

void jobs_free(Jobs *t) {
        if (!t)
                return;
        g_hash_table_destroy(t->running);      /* each rolls back first */
        sd_event_source_disable_unref(t->retire_timer);
        g_queue_free(t->ended_order);
        g_hash_table_destroy(t->ended);
        sd_event_unref(t->env.event);
        g_free(t->runtime_dir);
        g_free(t->state_dir);
        g_free(t);
}

void jobs_set_events(Jobs *t, const MigrationEvents *events, void *userdata) {
        t->events = events;
        t->events_userdata = userdata;
}

unsigned jobs_running(Jobs *t) {
        return g_hash_table_size(t->running);
}

int jobs_start(Jobs *t, const MigrationRequest *req, const char *owner_name, Migration **ret, char **ret_error) {
        Migration *j;
        int r;

        r = migration_prepare(&t->env, req, owner_name, &j, ret_error);
        if (r < 0)
                return r;
        migration_launch(j, next_id(t), &owner, t);
        g_hash_table_insert(t->running, GUINT_TO_POINTER(migration_get_id(j)), j);
        *ret = j;
        return 0;
}

Migration *jobs_find_state_user(Jobs *t, const char *name) {
        GHashTableIter i;
        gpointer v;

        g_hash_table_iter_init(&i, t->running);
        while (g_hash_table_iter_next(&i, NULL, &v))
                if (g_strcmp0(migration_get_state_name(v), name) == 0)
                        return v;
        return NULL;
}
