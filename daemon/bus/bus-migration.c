/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/bus-objects.h"
#include "bus/bus-util.h"
#include "log.h"
#include "migration/migration.h"
#include "names.h"
#include "bus/polkit.h"
#include "migration/recovery.h"
#include "migration/states.h"
#include "vfiomig-names.h"
#include "util.h"


/* ---- options ---- */

typedef struct Options {
        MigrationOptions o;
        GPtrArray *devices;     /* "SOURCE=TARGET" of a group migration */
        bool overwrite;
} Options;

static int opt_bool(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error) {
        Options *o = userdata;
        int b, r;

        r = sd_bus_message_read(m, "b", &b);
        if (r < 0)
                return r;
        if (g_str_equal(name, "precopy"))
                o->o.precopy = b;
        else if (g_str_equal(name, "allow-no-p2p"))
                o->o.allow_no_p2p = b;
        else if (g_str_equal(name, "allow-unknown"))
                o->o.allow_unknown = b;
        else if (g_str_equal(name, "prefetch"))
                o->o.prefetch = b;
        else
                o->overwrite = b;
        return 0;
}

static int opt_uint(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error) {
        Options *o = userdata;
        uint32_t u;
        int r;

        r = sd_bus_message_read(m, "u", &u);
        if (r < 0)
                return r;
        if (g_str_equal(name, "max-precopy-rounds"))
                o->o.max_precopy_rounds = u;
        else if (u == 0 || u > 24 * 3600)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "io-timeout must be 1 to 86400 seconds, not %u", u);
        else
                o->o.io_timeout_usec = u * USEC_PER_SEC;
        return 0;
}

static int opt_threshold(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error) {
        Options *o = userdata;

        return sd_bus_message_read(m, "t", &o->o.precopy_threshold);
}

static int opt_state(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error) {
        Options *o = userdata;
        const char *s;
        int r;

        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        if (!g_str_equal(s, "running") && !g_str_equal(s, "stop")) {
                g_autofree char *q = name_quote(s);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s must be \"running\" or \"stop\", not %s", name, q);
        }
        if (g_str_equal(name, "target-state"))
                o->o.target_running = g_str_equal(s, "running");
        else
                o->o.source_running = g_str_equal(s, "running");
        return 0;
}

static int opt_devices(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error) {
        Options *o = userdata;
        g_auto(GStrv) pairs = NULL;
        int r;

        r = sd_bus_message_read_strv(m, &pairs);
        if (r < 0)
                return r;
        for (char **p = pairs; p && *p; p++)
                g_ptr_array_add(o->devices, g_strdup(*p));
        return 0;
}

#define COMMON_OPTIONS \
        { "precopy", "b", opt_bool }, \
        { "max-precopy-rounds", "u", opt_uint }, \
        { "precopy-threshold", "t", opt_threshold }, \
        { "io-timeout", "u", opt_uint }

static const BusOption migrate_options[] = {
        COMMON_OPTIONS,
        { "target-state", "s", opt_state },
        { "devices", "as", opt_devices },
        { "allow-no-p2p", "b", opt_bool },
        { "allow-unknown", "b", opt_bool },
        {}
};

static const BusOption save_options[] = {
        COMMON_OPTIONS,
        { "source-state", "s", opt_state },
        { "overwrite", "b", opt_bool },
        {}
};

#define LOAD_OPTIONS \
        { "io-timeout", "u", opt_uint }, \
        { "target-state", "s", opt_state }, \
        { "allow-unknown", "b", opt_bool }

static const BusOption load_options[] = {
        LOAD_OPTIONS,
        {}
};

/* A stream that arrives while its source waits can go into the target
 * as it is verified (migrate to another host); a saved state cannot
 * gain from that. */
static const BusOption load_fd_options[] = {
        LOAD_OPTIONS,
        { "prefetch", "b", opt_bool },
        {}
};

static void options_clear(Options *o) {
        g_clear_pointer(&o->devices, g_ptr_array_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Options, options_clear);

static void options_init(Options *o) {
        migration_options_init(&o->o);
        o->devices = g_ptr_array_new_with_free_func(g_free);
}

/* ---- replies and objects ---- */

static Migration *find_migration(BusContext *c, const char *path) {
        g_autofree char *id = NULL;
        guint64 n;

        if (sd_bus_path_decode(path, VFIOMIG_MIGRATION_PATH_PREFIX, &id) <= 0 ||
            !g_ascii_string_to_unsigned(id, 10, 1, G_MAXUINT32, &n, NULL))
                return NULL;
        return jobs_lookup(c->jobs, (uint32_t) n);
}

static int reply_started(BusContext *c, sd_bus_message *msg, Migration *j) {
        uint32_t id = migration_get_id(j);
        const char *path = migration_get_path(j);
        int r;

        r = sd_bus_reply_method_return(msg, "uo", id, path);
        (void) sd_bus_emit_interfaces_added(c->bus, path, VFIOMIG_MIGRATION_INTERFACE, NULL);
        (void) sd_bus_emit_signal(c->bus, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE, "MigrationNew", "uo",
                                  id, path);
        return r;
}

static void emit_changed(void *userdata, Migration *j, bool final) {
        BusContext *c = userdata;
        const char *path = migration_get_path(j);
        g_auto(MigrationSnapshot) s = {};

        migration_snapshot(j, &s);
        (void) sd_bus_emit_properties_changed_strv(c->bus, path, VFIOMIG_MIGRATION_INTERFACE, NULL);
        (void) sd_bus_emit_signal(c->bus, path, VFIOMIG_MIGRATION_INTERFACE, "ProgressUpdate", "dt",
                                  migration_snapshot_progress(&s), s.bytes);
}

static void emit_forgotten(void *userdata, Migration *j) {
        BusContext *c = userdata;

        (void) sd_bus_emit_interfaces_removed(c->bus, migration_get_path(j), VFIOMIG_MIGRATION_INTERFACE, NULL);
}

static void emit_removed(void *userdata, Migration *j) {
        BusContext *c = userdata;

        (void) sd_bus_emit_signal(c->bus, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE, "MigrationRemoved",
                                  "uos", migration_get_id(j), migration_get_path(j),
                                  migration_phase_to_string(migration_get_phase(j)));
}

static const MigrationEvents bus_migration_events = {
        .changed = emit_changed,
        .ended = emit_removed,
        .forgotten = emit_forgotten,
};

/* ---- Manager methods ---- */

static int start(BusContext *c, sd_bus_message *msg, const MigrationRequest *req, sd_bus_error *error) {
        g_autofree char *why = NULL;
        Migration *j;
        int r;

        r = jobs_start(c->jobs, req, sd_bus_message_get_sender(msg), &j, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        return reply_started(c, msg, j);
}

/* org.vfiomig1.migrate with every device the call touches in the details,
 * so that a rule that allows some devices allows nothing else: "devices",
 * all of them, sources first; "sources" and "targets" where there are
 * any; "device" when there is only one; then key and value, if given
 * ("file", a saved state's name; "migration", a job's id). Returns as
 * polkit_verify() does. */
static int authorize_job(BusContext *c, sd_bus_message *msg, char **sources, char **targets, const char *key,
                         const char *value, sd_bus_error *error) {
        g_autofree char *s = sources && *sources ? g_strjoinv(",", sources) : NULL;
        g_autofree char *t = targets && *targets ? g_strjoinv(",", targets) : NULL;
        g_autofree char *all = s && t ? g_strjoin(",", s, t, NULL) : g_strdup(s ?: t ?: "");
        const char *details[11] = { "devices", all };
        size_t n = 2;

        if (s) {
                details[n++] = "sources";
                details[n++] = s;
        }
        if (t) {
                details[n++] = "targets";
                details[n++] = t;
        }
        if (*all && !strchr(all, ',')) {
                details[n++] = "device";
                details[n++] = all;
        }
        if (key) {
                details[n++] = key;
                details[n++] = value;
        }
        return polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE, details, c->polkit, error);
}

/* A call on one device that is neither source nor target. */
static int authorize(BusContext *c, sd_bus_message *msg, const char *device, sd_bus_error *error) {
        return polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE, (const char *[]) { "devices", device, "device", device, NULL },
                             c->polkit, error);
}

/* "SOURCE=TARGET" entries of the devices option, normalized. */
static int split_pairs(GPtrArray *pairs, GStrvBuilder *sources, GStrvBuilder *targets, sd_bus_error *error) {
        for (guint i = 0; i < pairs->len; i++) {
                g_auto(GStrv) st = g_strsplit(pairs->pdata[i], "=", 2);
                g_autofree char *s = st[0] ? name_normalize_device(st[0]) : NULL;
                g_autofree char *t = st[0] && st[1] ? name_normalize_device(st[1]) : NULL;

                if (!s || !t)
                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                                 "devices entry '%s' is not SOURCE=TARGET with two device names",
                                                 (char *) pairs->pdata[i]);
                g_strv_builder_add(sources, s);
                g_strv_builder_add(targets, t);
        }
        return 0;
}

int bus_method_migrate(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *source = NULL, *target = NULL;
        g_autoptr(GStrvBuilder) sb = g_strv_builder_new(), tb = g_strv_builder_new();
        g_auto(GStrv) sources = NULL, targets = NULL;
        g_auto(Options) o = {};
        int r;

        options_init(&o);
        r = bus_read_device_name(msg, &source, error);
        if (r >= 0)
                r = bus_read_device_name(msg, &target, error);
        if (r >= 0)
                r = bus_read_options(msg, migrate_options, &o, error);
        if (r < 0)
                return r;
        g_strv_builder_add(sb, source);
        g_strv_builder_add(tb, target);
        r = split_pairs(o.devices, sb, tb, error);
        if (r < 0)
                return r;
        sources = g_strv_builder_end(sb);
        targets = g_strv_builder_end(tb);

        r = authorize_job(c, msg, sources, targets, NULL, NULL, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;       /* polkit will answer, then we are called again */

        return start(c, msg, &(MigrationRequest) {
                .kind = MIGRATION_MIGRATE, .sources = sources, .targets = targets, .options = o.o,
        }, error);
}

static int read_file_name(sd_bus_message *msg, const char **ret, sd_bus_error *error) {
        int r = sd_bus_message_read(msg, "s", ret);

        if (r < 0)
                return r;
        if (!name_is_plain_file(*ret)) {
                g_autofree char *q = name_quote(*ret);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is not a plain file name (no '/', not starting with '.', "
                                         "at most %d printable ASCII bytes)", q, NAME_PLAIN_FILE_MAX);
        }
        return 0;
}

int bus_method_save(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *source = NULL, *dir = states_dir(c->state_dir), *path = NULL, *why = NULL;
        g_auto(Options) o = {};
        const char *name;
        int r;

        options_init(&o);
        r = bus_read_device_name(msg, &source, error);
        if (r >= 0)
                r = read_file_name(msg, &name, error);
        if (r >= 0)
                r = bus_read_options(msg, save_options, &o, error);
        if (r < 0)
                return r;

        /* Before anything is looked at: a caller polkit refuses learns
         * nothing of which saved states exist. */
        r = authorize_job(c, msg, (char *[]) { source, NULL }, NULL, "file", name, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        r = states_prepare(dir, name, o.overwrite, &path, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        return start(c, msg, &(MigrationRequest) {
                .kind = MIGRATION_SAVE, .sources = (char *[]) { source, NULL }, .stream_fd = -1,
                .stream_label = name, .state_name = name, .final_path = path, .overwrite = o.overwrite, .options = o.o,
        }, error);
}

int bus_method_load(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *target = NULL, *dir = states_dir(c->state_dir), *why = NULL;
        g_auto(Options) o = {};
        const char *name;
        int fd, r;

        options_init(&o);
        r = bus_read_device_name(msg, &target, error);
        if (r >= 0)
                r = read_file_name(msg, &name, error);
        if (r >= 0)
                r = bus_read_options(msg, load_options, &o, error);
        if (r < 0)
                return r;

        r = authorize_job(c, msg, NULL, (char *[]) { target, NULL }, "file", name, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        fd = states_open(dir, name, &why);
        if (fd < 0)
                return bus_error_set_errnof(error, fd, "%s", why);
        r = start(c, msg, &(MigrationRequest) {
                .kind = MIGRATION_LOAD, .targets = (char *[]) { target, NULL }, .stream_fd = fd,
                .stream_label = name, .state_name = name, .options = o.o,
        }, error);
        close(fd);
        return r;
}

/* ---- the saved-state store ---- */

int bus_method_list_states(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *dir = states_dir(c->state_dir), *why = NULL;
        g_autoptr(GPtrArray) states = NULL;
        sd_bus_message *reply = NULL;
        int r;

        /* As Save and Load: a caller polkit refuses learns nothing of
         * which saved states exist. */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE, NULL, c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;
        r = states_list(dir, &states, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(stsssstb)");
        for (guint i = 0; r >= 0 && i < states->len; i++) {
                const StateInfo *s = states->pdata[i];

                r = sd_bus_message_append(reply, "(stsssstb)", s->name, s->size, s->header.migration_type,
                                          s->header.migration_version, s->header.device, s->header.iommu,
                                          s->mtime_usec, s->complete);
        }
        return bus_send_array_reply(reply, r);
}

/* A state's name, or the name of a save's temporary file as ListStates()
 * lists it. */
static int read_state_name(sd_bus_message *msg, const char **ret, sd_bus_error *error) {
        g_autofree char *target = NULL;
        int r = sd_bus_message_read(msg, "s", ret);

        if (r < 0)
                return r;
        target = states_temp_target(*ret);
        if (!target && !name_is_plain_file(*ret)) {
                g_autofree char *q = name_quote(*ret);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is neither a saved state's name (no '/', not starting with '.', "
                                         "at most %d printable ASCII bytes) nor a temporary file's", q,
                                         NAME_PLAIN_FILE_MAX);
        }
        return 0;
}

int bus_method_remove_state(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *dir = states_dir(c->state_dir), *target = NULL, *why = NULL;
        const char *name;
        Migration *j;
        int r;

        r = read_state_name(msg, &name, error);
        if (r >= 0)
                r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;

        /* As Save and Load, and before anything is looked at */
        r = polkit_verify(msg, VFIOMIG_POLKIT_MIGRATE, (const char *[]) { "file", name, NULL }, c->polkit, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        /* A save's temporary file is its job's until the job ends. */
        target = states_temp_target(name);
        j = jobs_find_state_user(c->jobs, target ?: name);
        if (j)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "Saved state %s is in use by migration %u (%s)",
                                         target ?: name, migration_get_id(j),
                                         migration_kind_to_string(migration_get_kind(j)));
        r = states_remove(dir, name, &why);
        if (r < 0)
                return bus_error_set_errnof(error, r, "%s", why);
        log_info("Removed saved state %s (requested by %s)", name, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_fd(sd_bus_message *msg, BusContext *c, MigrationKind kind, sd_bus_error *error) {
        g_autofree char *device = NULL;
        g_auto(Options) o = {};
        int fd, r;

        options_init(&o);
        r = bus_read_device_name(msg, &device, error);
        if (r >= 0)
                r = sd_bus_message_read(msg, "h", &fd);
        if (r >= 0)
                r = bus_read_options(msg, kind == MIGRATION_SAVE ? save_options : load_fd_options, &o, error);
        if (r < 0)
                return r;

        r = authorize_job(c, msg, kind == MIGRATION_SAVE ? (char *[]) { device, NULL } : NULL,
                          kind == MIGRATION_LOAD ? (char *[]) { device, NULL } : NULL, NULL, NULL, error);
        if (r < 0)
                return r;
        if (r == 0)
                return 1;

        return start(c, msg, &(MigrationRequest) {
                .kind = kind,
                .sources = kind == MIGRATION_SAVE ? (char *[]) { device, NULL } : NULL,
                .targets = kind == MIGRATION_LOAD ? (char *[]) { device, NULL } : NULL,
                .stream_fd = fd, .stream_label = "fd", .options = o.o,
        }, error);
}

int bus_method_save_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_fd(msg, userdata, MIGRATION_SAVE, error);
}

int bus_method_load_fd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_fd(msg, userdata, MIGRATION_LOAD, error);
}

int bus_method_resume(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autofree char *device = NULL, *outcome = NULL, *why = NULL;
        const Device *d;
        int r;

        r = bus_read_device_name(msg, &device, error);
        if (r >= 0)
                r = bus_read_options(msg, NULL, NULL, error);
        if (r < 0)
                return r;

        r = authorize(c, msg, device, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        d = bus_lookup_device(c->registry, device, error);
        if (!d)
                return -ENODEV;
        r = migration_resume_device(c->jobs, d, &outcome, &why);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "%s", why);
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_NOT_MIGRATABLE, "%s", why);
        if (r < 0)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_DEVICE_FAILED, "%s", why);
        log_info("%s: %s (resume requested by %s)", device, outcome, sd_bus_message_get_sender(msg));
        return sd_bus_reply_method_return(msg, NULL);
}

int bus_method_list_migrations(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) jobs = jobs_list(c->jobs, false);
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(usssso)");
        for (guint i = 0; r >= 0 && i < jobs->len; i++) {
                Migration *j = jobs->pdata[i];

                r = sd_bus_message_append(reply, "(usssso)", migration_get_id(j),
                                          migration_kind_to_string(migration_get_kind(j)),
                                          migration_get_source_label(j), migration_get_target_label(j),
                                          migration_phase_to_string(migration_get_phase(j)), migration_get_path(j));
        }
        return bus_send_array_reply(reply, r);
}

/* ---- Migration objects ---- */

/* With the job's devices, as Migrate() would name them, so that a rule
 * that allows some devices lets cancel only their jobs. */
static int authorize_cancel(BusContext *c, Migration *j, sd_bus_message *msg, const char *id, sd_bus_error *error) {
        g_autoptr(GStrvBuilder) sb = g_strv_builder_new(), tb = g_strv_builder_new();
        g_auto(GStrv) sources = NULL, targets = NULL;
        g_auto(MigrationSnapshot) s = {};

        migration_snapshot(j, &s);
        for (unsigned i = 0; i < s.n_devices; i++)
                g_strv_builder_add(s.devices[i].source ? sb : tb, s.devices[i].name);
        sources = g_strv_builder_end(sb);
        targets = g_strv_builder_end(tb);
        return authorize_job(c, msg, sources, targets, "migration", id, error);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Migration *j = userdata;
        /* the object is the job; the context is what the vtable was registered with */
        BusContext *c = sd_bus_slot_get_userdata(sd_bus_get_current_slot(sd_bus_message_get_bus(msg)));
        const char *sender = sd_bus_message_get_sender(msg);
        uint32_t n = migration_get_id(j);
        g_autofree char *id = g_strdup_printf("%u", n);
        int r;

        /* The caller may cancel its own migration; anyone else needs polkit. */
        if (g_strcmp0(sender, migration_get_owner(j)) != 0) {
                r = authorize_cancel(c, j, msg, id, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 1;
        }
        r = migration_cancel(j, sender);
        if (r == -EBUSY && migration_has_ended(j))
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY, "Migration %u has ended (%s)", n,
                                         migration_phase_to_string(migration_get_phase(j)));
        if (r == -EBUSY)
                return sd_bus_error_setf(error, VFIOMIG_ERROR_BUSY,
                                         "Migration %u is finishing and can no longer be cancelled", n);
        if (r < 0)
                return bus_error_set_errnof(error, r, "Cannot cancel migration %u: %m", n);
        log_info("Migration %u: cancel requested by %s", n, sender);
        return sd_bus_reply_method_return(msg, NULL);
}

static int property_get_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", migration_get_id(userdata));
}

static int property_get_kind(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", migration_kind_to_string(migration_get_kind(userdata)));
}

static int property_get_label(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", g_str_equal(property, "Source") ? migration_get_source_label(userdata)
                                                                                 : migration_get_target_label(userdata));
}

static int property_get_phase(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", migration_phase_to_string(migration_get_phase(userdata)));
}

static int property_get_counter(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_auto(MigrationSnapshot) s = {};

        migration_snapshot(userdata, &s);
        if (g_str_equal(property, "PrecopyRounds"))
                return sd_bus_message_append(reply, "u", s.rounds);
        return sd_bus_message_append(reply, "t", g_str_equal(property, "BytesTransferred") ? s.bytes :
                                                 g_str_equal(property, "BytesExpected") ? s.expected : s.downtime_usec);
}

static int property_get_progress(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_auto(MigrationSnapshot) s = {};

        migration_snapshot(userdata, &s);
        return sd_bus_message_append(reply, "d", migration_snapshot_progress(&s));
}

static int property_get_error(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_auto(MigrationSnapshot) s = {};

        migration_snapshot(userdata, &s);
        if (g_str_equal(property, "Error"))
                return sd_bus_message_append(reply, "s", s.error ?: "");
        /* the job's class of error, named by the one table */
        return sd_bus_message_append(reply, "s", s.error ? bus_error_name_for_errno(s.error_class) : "");
}

static int property_get_devices(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        g_auto(MigrationSnapshot) s = {};
        int r;

        migration_snapshot(userdata, &s);
        r = sd_bus_message_open_container(reply, 'a', "(sss)");
        for (unsigned i = 0; r >= 0 && i < s.n_devices; i++)
                r = sd_bus_message_append(reply, "(sss)", s.devices[i].name, s.devices[i].source ? "source" : "target",
                                          s.devices[i].outcome);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

#define CHANGING SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE

const sd_bus_vtable bus_migration_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "u", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Kind", "s", property_get_kind, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Source", "s", property_get_label, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Target", "s", property_get_label, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Phase", "s", property_get_phase, 0, CHANGING),
        SD_BUS_PROPERTY("BytesTransferred", "t", property_get_counter, 0, CHANGING),
        SD_BUS_PROPERTY("BytesExpected", "t", property_get_counter, 0, CHANGING),
        SD_BUS_PROPERTY("Progress", "d", property_get_progress, 0, CHANGING),
        SD_BUS_PROPERTY("PrecopyRounds", "u", property_get_counter, 0, CHANGING),
        SD_BUS_PROPERTY("DowntimeUsec", "t", property_get_counter, 0, CHANGING),
        SD_BUS_PROPERTY("Error", "s", property_get_error, 0, CHANGING),
        SD_BUS_PROPERTY("ErrorName", "s", property_get_error, 0, CHANGING),
        SD_BUS_PROPERTY("Devices", "a(sss)", property_get_devices, 0, CHANGING),
        SD_BUS_METHOD("Cancel", NULL, NULL, method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("ProgressUpdate", SD_BUS_ARGS("d", progress, "t", bytes), 0),
        SD_BUS_VTABLE_END
};

static int find_migration_object(sd_bus *bus, const char *path, const char *interface, void *userdata,
                                 void **found, sd_bus_error *error) {
        Migration *j = find_migration(userdata, path);

        if (!j)
                return 0;
        *found = j;
        return 1;
}

static int enumerate_migrations(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        BusContext *c = userdata;
        g_autoptr(GPtrArray) jobs = jobs_list(c->jobs, true);
        char **l = g_new0(char *, jobs->len + 1);

        for (guint i = 0; i < jobs->len; i++)
                l[i] = g_strdup(migration_get_path(jobs->pdata[i]));
        *nodes = l;
        return 0;
}

int bus_migration_register(BusContext *c) {
        int r;

        jobs_set_events(c->jobs, &bus_migration_events, c);
        r = sd_bus_add_fallback_vtable(c->bus, NULL, VFIOMIG_MIGRATION_PATH_PREFIX, VFIOMIG_MIGRATION_INTERFACE,
                                       bus_migration_vtable, find_migration_object, c);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(c->bus, NULL, VFIOMIG_MIGRATION_PATH_PREFIX, enumerate_migrations, c);
}
