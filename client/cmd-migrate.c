/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "remote.h"
#include "vfiomig-names.h"

/* What we know of one job, from its properties and signals. */
typedef struct Job {
        Ctl *ctl;
        uint32_t id;
        char *path;
        char *owner;            /* the unique name of the vfiomigd that runs it */
        char *phase, *error, *error_name, *result;
        uint64_t bytes, expected, downtime;
        uint64_t phase_start_bytes;     /* bytes when the phase (or pre-copy round) began */
        unsigned phase_round;           /* the round phase_start_bytes belongs to */
        uint32_t rounds;
        double progress;
        int64_t stopcopy_seen;  /* monotonic usec when we saw phase stopcopy, 0 if not */
        GPtrArray *devices;     /* "name role outcome" */
        bool removed, gone, tty, shown_bar;
        bool cancelled;         /* by us, when the other host's end failed first */
} Job;

static void job_clear(Job *j) {
        g_free(j->path);
        g_free(j->owner);
        g_free(j->phase);
        g_free(j->error);
        g_free(j->error_name);
        g_free(j->result);
        if (j->devices)
                g_ptr_array_unref(j->devices);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Job, job_clear);

static void set(char **field, const char *value) {
        g_free(*field);
        *field = g_strdup(value);
}

static int read_devices(Job *j, sd_bus_message *m) {
        const char *name, *role, *outcome;
        int r;

        g_ptr_array_set_size(j->devices, 0);
        r = sd_bus_message_enter_container(m, 'a', "(sss)");
        while (r >= 0 && (r = sd_bus_message_read(m, "(sss)", &name, &role, &outcome)) > 0)
                g_ptr_array_add(j->devices, g_strdup_printf("%s\t%s\t%s", name, role, outcome));
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

/* One entry of a{sv}: the properties a job reports. */
static int read_property(Job *j, sd_bus_message *m, const char *name) {
        const char *contents, *s;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        if (g_str_equal(name, "Phase") || g_str_equal(name, "Error") || g_str_equal(name, "ErrorName")) {
                r = sd_bus_message_read(m, "s", &s);
                if (r >= 0)
                        set(g_str_equal(name, "Phase") ? &j->phase :
                            g_str_equal(name, "Error") ? &j->error : &j->error_name, s);
        } else if (g_str_equal(name, "BytesTransferred"))
                r = sd_bus_message_read(m, "t", &j->bytes);
        else if (g_str_equal(name, "BytesExpected"))
                r = sd_bus_message_read(m, "t", &j->expected);
        else if (g_str_equal(name, "DowntimeUsec"))
                r = sd_bus_message_read(m, "t", &j->downtime);
        else if (g_str_equal(name, "PrecopyRounds"))
                r = sd_bus_message_read(m, "u", &j->rounds);
        else if (g_str_equal(name, "Progress"))
                r = sd_bus_message_read(m, "d", &j->progress);
        else if (g_str_equal(name, "Devices"))
                r = read_devices(j, m);
        else
                r = sd_bus_message_skip(m, contents);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

static int read_properties(Job *j, sd_bus_message *m) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read(m, "s", &name);
                if (r >= 0)
                        r = read_property(j, m, name);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return r;
}

/* The line a terminal shows while a job runs. Pre-copy has no end to
 * measure against (the device keeps dirtying its state), so it counts the
 * round and what the round moved; stop-copy has one, the state's size the
 * device announced, and shows how far it is. */
char *progress_line(const char *phase, unsigned round, uint64_t phase_bytes, uint64_t total, uint64_t expected,
                    uint64_t bytes_at_phase_start) {
        g_autofree char *moved = format_bytes(phase_bytes), *all = format_bytes(total);

        if (g_strcmp0(phase, "precopy") == 0)
                return g_strdup_printf("pre-copy round %u: %s this round, %s in all", round, moved, all);
        if (g_strcmp0(phase, "stopcopy") == 0 && expected > bytes_at_phase_start) {
                uint64_t want = expected - bytes_at_phase_start;
                double f = MIN(1.0, (double) phase_bytes / (double) want);
                int filled = (int) (f * 20);

                return g_strdup_printf("stop-copy [%-20.*s] %3d%%: %s this phase, %s in all", filled,
                                       "====================", (int) (f * 100), moved, all);
        }
        return g_strdup_printf("%s: %s this phase, %s in all", phase ?: "starting", moved, all);
}

static void show_progress(Job *j) {
        g_autofree char *line = NULL;

        if (j->ctl->json || !j->tty || j->ctl->quiet)
                return;
        line = progress_line(j->phase, j->rounds, j->bytes - MIN(j->bytes, j->phase_start_bytes), j->bytes,
                             j->expected, j->phase_start_bytes);
        /* the line may shrink: clear what the last one left */
        fprintf(stderr, "\r%s\033[K", line);
        j->shown_bar = true;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        g_autofree char *old_phase = g_strdup(j->phase);
        uint64_t old_bytes = j->bytes;
        const char *interface;

        if (!j->path || !g_str_equal(sd_bus_message_get_path(m), j->path))
                return 0;
        if (sd_bus_message_read(m, "s", &interface) < 0 || !g_str_equal(interface, VFIOMIG_MIGRATION_INTERFACE))
                return 0;
        (void) read_properties(j, m);
        /* the news of a phase comes with what the phase moved until it was
         * sent: the phase began after what we knew before */
        if (g_strcmp0(old_phase, j->phase) != 0 || j->rounds != j->phase_round) {
                j->phase_start_bytes = old_bytes;
                j->phase_round = j->rounds;
        }
        if (!j->stopcopy_seen && g_strcmp0(j->phase, "stopcopy") == 0)
                j->stopcopy_seen = g_get_monotonic_time();
        if (!j->tty && !j->ctl->json && !j->ctl->quiet && j->phase && g_strcmp0(old_phase, j->phase) != 0)
                fprintf(stderr, "Migration %u: %s\n", j->id, j->phase);
        show_progress(j);
        return 0;
}

static int on_migration_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        const char *path, *result;
        uint32_t id;

        if (sd_bus_message_read(m, "uos", &id, &path, &result) < 0 || id != j->id)
                return 0;
        set(&j->result, result);
        j->removed = true;
        return 0;
}

/* A vfiomigd that exits or crashes sends no MigrationRemoved: its leaving
 * the bus is the end we hear of. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (j->owner && g_str_equal(old_owner, j->owner))
                j->gone = true;
        return 0;
}

/* Subscribe before calling: the end of a quick job can come right after
 * the reply. */
static int subscribe(Job *j) {
        int r;

        r = sd_bus_add_match(j->ctl->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                             "member='NameOwnerChanged',arg0='" VFIOMIG_BUS_NAME "'",
                             on_owner_changed, j);
        if (r >= 0)
                r = sd_bus_match_signal(j->ctl->bus, NULL, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                "MigrationRemoved", on_migration_removed, j);
        if (r >= 0)
                r = sd_bus_add_match(j->ctl->bus, NULL,
                                     "type='signal',sender='" VFIOMIG_BUS_NAME "',"
                                     "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                                     "path_namespace='" VFIOMIG_MIGRATION_PATH_PREFIX "'",
                                     on_properties_changed, j);
        if (r < 0)
                fprintf(stderr, "Failed to subscribe to migration signals: %s\n", strerror(-r));
        return r;
}

/* What we saw of a job whose daemon is gone: its end is not ours to know. */
static void report_gone(Job *j) {
        g_autofree char *size = format_bytes(j->bytes);

        if (j->shown_bar)
                fputc('\n', stderr);
        fprintf(stderr, "vfiomigd left the bus during migration %u (last phase %s, %s moved); "
                "it rolls the job back as it exits or when it starts again.\n",
                j->id, j->phase ?: "unknown", size);
}

/* The bus and, for a move to another host, the remote command's output:
 * what ssh and vfiomigctl there print must be read as it comes, or a
 * full pipe stalls them, and the stream with them. */
static int wait_bus(Job *j, Remote *remote) {
        struct pollfd p[3];
        uint64_t until;
        int timeout = -1, events, r;
        unsigned n;

        if (!remote)
                return sd_bus_wait(j->ctl->bus, UINT64_MAX);
        events = sd_bus_get_events(j->ctl->bus);
        if (events < 0)
                return events;
        r = sd_bus_get_timeout(j->ctl->bus, &until);
        if (r < 0)
                return r;
        if (until != UINT64_MAX) {
                uint64_t now = (uint64_t) g_get_monotonic_time();

                timeout = until > now ? (int) MIN((until - now + 999) / 1000, (uint64_t) INT_MAX) : 0;
        }
        p[0] = (struct pollfd) { .fd = sd_bus_get_fd(j->ctl->bus), .events = (short) events };
        n = 1 + remote_poll_fds(remote, p + 1);
        if (poll(p, n, timeout) < 0)
                return errno == EINTR ? 0 : -errno;
        remote_dispatch(remote, p + 1, n - 1);
        return 0;
}

/* The command there failed while the job here runs: the stream has
 * nowhere to go, and the job here would learn it only at its next
 * write. */
static bool cancel_for_remote(Job *j) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* it may have ended on its own meanwhile: then nothing to do */
        r = sd_bus_call_method(j->ctl->bus, VFIOMIG_BUS_NAME, j->path, VFIOMIG_MIGRATION_INTERFACE, "Cancel",
                               &error, NULL, NULL);
        sd_bus_error_free(&error);
        return r >= 0;
}

/* Until the job's end; with remote, reading its output meanwhile. */
static int wait_removed(Job *j, Remote *remote) {
        bool asked = false;
        int r;

        while (!j->removed) {
                r = sd_bus_process(j->ctl->bus, NULL);
                if (r > 0)
                        continue;
                if (r == 0 && j->gone) {
                        /* everything it sent before leaving is processed */
                        report_gone(j);
                        return EXIT_UNREACHABLE;
                }
                if (r == 0 && remote && remote_ended(remote) && remote->status != EXIT_OK && !asked) {
                        j->cancelled = cancel_for_remote(j);
                        asked = true;
                        continue;
                }
                if (r == 0)
                        r = wait_bus(j, remote);
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "Lost the connection to vfiomigd: %s\n", strerror(-r));
                        return EXIT_UNREACHABLE;
                }
        }
        return EXIT_OK;
}

static void print_json(Job *j) {
        g_autoptr(JsonObject) o = json_object_new();
        JsonArray *devices = json_array_new();

        json_object_set_int_member(o, "id", j->id);
        json_object_set_string_member(o, "result", j->result ?: "");
        json_object_set_string_member(o, "error_name", j->error_name ?: "");
        json_object_set_string_member(o, "error", j->error ?: "");
        json_object_set_int_member(o, "bytes", (gint64) j->bytes);
        json_object_set_int_member(o, "downtime_usec", (gint64) j->downtime);
        json_object_set_int_member(o, "precopy_rounds", j->rounds);
        for (guint i = 0; i < j->devices->len; i++) {
                g_auto(GStrv) f = g_strsplit(j->devices->pdata[i], "\t", 3);
                JsonObject *d = json_object_new();

                json_object_set_string_member(d, "name", f[0]);
                json_object_set_string_member(d, "role", f[1]);
                json_object_set_string_member(d, "outcome", f[2]);
                json_array_add_object_element(devices, d);
        }
        json_object_set_array_member(o, "devices", devices);
        json_print_to(j->ctl->out, json_node_init_object(json_node_alloc(), o));
}

/* vfiomigd names its D-Bus option; say which of ours sets it. */
static void hint_allow_unknown(const char *error_name) {
        if (g_strcmp0(error_name, VFIOMIG_ERROR_COMPATIBILITY_UNKNOWN) == 0)
                fputs("Nothing says whether the target takes this state: --allow-unknown lets the job try.\n",
                      stderr);
}

/* A source must run; one that an earlier migration or save left stopped
 * is not vfiomigd's to start again unasked. Its object says so, not the
 * error's text. */
static void hint_resume_source(Ctl *ctl, const char *device) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        g_autofree char *state = NULL, *name = NULL;
        const char *path;

        if (sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE, "GetDevice",
                               &error, &reply, "s", device) >= 0 &&
            sd_bus_message_read(reply, "o", &path) >= 0 &&
            sd_bus_get_property_string(ctl->bus, VFIOMIG_BUS_NAME, path, VFIOMIG_DEVICE_INTERFACE, "MigrationState",
                                       &error, &state) >= 0 &&
            g_str_equal(state, "stop") &&
            sd_bus_get_property_string(ctl->bus, VFIOMIG_BUS_NAME, path, VFIOMIG_DEVICE_INTERFACE, "Name", &error,
                                       &name) >= 0)
                fprintf(stderr, "If nothing else uses it, 'vfiomigctl resume %s' sets it running again.\n", name);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
}

/* Busy: the sources of a migrate or save, the group's too, asked in turn. */
static void hint_resume(Ctl *ctl, const sd_bus_error *error, const char *method, const char *device) {
        if (!sd_bus_error_has_name(error, VFIOMIG_ERROR_BUSY) || g_str_has_prefix(method, "Load"))
                return;
        hint_resume_source(ctl, device);
        for (guint i = 0; i < ctl->group->len; i++) {
                g_autofree char *source = g_strndup(ctl->group->pdata[i], strcspn(ctl->group->pdata[i], "="));

                hint_resume_source(ctl, source);
        }
}

static int report(Job *j) {
        bool ok = g_strcmp0(j->result, "done") == 0;

        if (j->shown_bar)
                fputc('\n', stderr);
        if (j->ctl->json)
                print_json(j);
        else if (ok && !j->ctl->quiet) {
                g_autofree char *size = format_bytes(j->bytes);
                g_autofree char *downtime = j->downtime ? g_strdup_printf(", downtime %.3f ms",
                                                                           (double) j->downtime / 1000)
                                                        : g_strdup("");

                fprintf(stderr, "Migration %u done: %s%s, %u pre-copy round%s.\n", j->id, size, downtime,
                        j->rounds, j->rounds == 1 ? "" : "s");
        }
        else if (!ok) {
                g_autofree char *text = cli_error_text(j->error ?: "");

                fprintf(stderr, "%sMigration %u %s: %s%s\n", color_on(stderr, COLOR_ERROR), j->id,
                        j->result ?: "ended", text, color_off(stderr, COLOR_ERROR));
                for (guint i = 0; i < j->devices->len; i++) {
                        g_auto(GStrv) f = g_strsplit(j->devices->pdata[i], "\t", 3);

                        fprintf(stderr, "  %s %s: %s\n", f[1], f[0], f[2]);
                }
                hint_allow_unknown(j->error_name);
        }
        if (ok)
                return EXIT_OK;
        if (!j->error_name || !*j->error_name)
                return EXIT_FAILED;
        {
                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(j->error_name, j->error);

                return ctl_exit_code_for_error(&e, -EIO);
        }
}

/* Builds the options dictionary from the command line, which holds only
 * options that this command takes (see check_options()). */
static int append_options(Ctl *ctl, sd_bus_message *m) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && ctl->no_precopy)
                r = sd_bus_message_append(m, "{sv}", "precopy", "b", 0);
        if (r >= 0 && ctl->max_rounds >= 0)
                r = sd_bus_message_append(m, "{sv}", "max-precopy-rounds", "u", (uint32_t) ctl->max_rounds);
        if (r >= 0 && ctl->io_timeout > 0)
                r = sd_bus_message_append(m, "{sv}", "io-timeout", "u", ctl->io_timeout);
        if (r >= 0 && ctl->target_state)
                r = sd_bus_message_append(m, "{sv}", "target-state", "s", ctl->target_state);
        if (r >= 0 && ctl->source_state)
                r = sd_bus_message_append(m, "{sv}", "source-state", "s", ctl->source_state);
        if (r >= 0 && ctl->overwrite)
                r = sd_bus_message_append(m, "{sv}", "overwrite", "b", 1);
        if (r >= 0 && ctl->allow_no_p2p)
                r = sd_bus_message_append(m, "{sv}", "allow-no-p2p", "b", 1);
        if (r >= 0 && ctl->allow_unknown)
                r = sd_bus_message_append(m, "{sv}", "allow-unknown", "b", 1);
        if (r >= 0 && ctl->no_prefetch)
                r = sd_bus_message_append(m, "{sv}", "prefetch", "b", 0);
        if (r >= 0 && ctl->group->len > 0) {
                g_ptr_array_add(ctl->group, NULL);
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "devices");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(m, (char **) ctl->group->pdata);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                g_ptr_array_remove_index(ctl->group, ctl->group->len - 1);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Starts a job with method(device, second, options), subscribed to its
 * signals unless --no-wait. */
static int job_start(Ctl *ctl, Job *j, const char *method, const char *device, char type, const void *second,
                     int (*options)(Ctl *ctl, sd_bus_message *m), const char *what) {
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        int r, code;

        j->tty = isatty(STDERR_FILENO) && !ctl->json;
        if (!ctl->no_wait && subscribe(j) < 0)
                return EXIT_FAILED;

        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                           VFIOMIG_MANAGER_INTERFACE, method);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", device);
        if (r >= 0)
                r = type == 'h' ? sd_bus_message_append(m, "h", *(const int *) second)
                                : sd_bus_message_append(m, "s", (const char *) second);
        if (r >= 0)
                r = options(ctl, m);
        code = ctl_send(ctl, m, r, &reply, what, &error);
        if (code != EXIT_OK) {
                hint_allow_unknown(error.name);
                hint_resume(ctl, &error, method, device);
                sd_bus_error_free(&error);
                return code;
        }
        r = sd_bus_message_read(reply, "uo", &j->id, &path);
        if (r >= 0) {
                j->path = g_strdup(path);
                j->owner = g_strdup(sd_bus_message_get_sender(reply));
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return EXIT_FAILED;
        if (!ctl->no_wait && !j->tty && !ctl->json && !ctl->quiet)
                fprintf(stderr, "Migration %u started (%s).\n", j->id, j->path);
        return EXIT_OK;
}

/* Starts a job with method(device, second, options) and follows it. */
static int run_job(Ctl *ctl, const char *method, const char *device, char type, const void *second,
                   const char *what) {
        g_auto(Job) j = { .ctl = ctl, .devices = g_ptr_array_new_with_free_func(g_free) };
        int code;

        code = job_start(ctl, &j, method, device, type, second, append_options, what);
        if (code != EXIT_OK)
                return code;
        if (ctl->no_wait) {
                if (ctl->json) {
                        g_autoptr(JsonObject) o = json_object_new();

                        json_object_set_int_member(o, "id", j.id);
                        json_object_set_string_member(o, "path", j.path);
                        json_print_to(ctl->out, json_node_init_object(json_node_alloc(), o));
                } else
                        fprintf(ctl->out, "%u\n", j.id);
                return EXIT_OK;
        }
        code = wait_removed(&j, NULL);
        return code != EXIT_OK ? code : report(&j);
}

static int run_remote(Ctl *ctl, const char *source, const RemoteTarget *rt);

int cmd_migrate(Ctl *ctl, int argc, char **argv) {
        g_auto(RemoteTarget) rt = {};
        g_autofree char *what = NULL;

        if (argc != 3)
                return ctl_usage_error("migrate takes SOURCE [[USER@]HOST:]TARGET");
        /* a mistyped PCI address such as 0000:3b:00.9 is no host "0000":
         * vfiomigd here says what is wrong with it */
        if (remote_target_parse(argv[2], true, &rt))
                return run_remote(ctl, argv[1], &rt);
        if (ctl->ssh)
                return ctl_usage_error("--ssh applies only to a target on another host, not %s", argv[2]);
        what = g_strdup_printf("migrate %s to %s", argv[1], argv[2]);
        return run_job(ctl, "Migrate", argv[1], 's', argv[2], what);
}

/* /dev/null swallows a stream the device gave up for nothing: its source
 * stops all the same. */
static bool is_dev_null(int fd) {
        struct stat st, null;

        return fstat(fd, &st) >= 0 && S_ISCHR(st.st_mode) && stat("/dev/null", &null) >= 0 &&
               st.st_rdev == null.st_rdev;
}

int cmd_save(Ctl *ctl, int argc, char **argv) {
        g_auto(RemoteTarget) rt = {};
        g_autofree char *what = NULL;
        int fd = STDOUT_FILENO;

        if (argc != 3)
                return ctl_usage_error("save takes DEVICE NAME (or - for standard output, or "
                                       "[USER@]HOST:TARGET for a device on another host)");
        /* the source stays stopped, as by a save here, unless
         * --source-state=running: a copy */
        if (remote_target_parse(argv[2], true, &rt))
                return run_remote(ctl, argv[1], &rt);
        if (ctl->ssh)
                return ctl_usage_error("--ssh applies only to a target on another host, not %s", argv[2]);
        what = g_strdup_printf("save %s", argv[1]);
        if (g_str_equal(argv[2], "-")) {
                if (isatty(fd))
                        return ctl_usage_error("Refusing to write the state of %s to a terminal: redirect standard "
                                               "output to a file or a pipe (vfiomigctl save %s - > FILE), or save "
                                               "it under a name (vfiomigctl save %s NAME)", argv[1], argv[1], argv[1]);
                if (is_dev_null(fd))
                        return ctl_usage_error("Refusing to write the state of %s to /dev/null, which would stop it "
                                               "for nothing: save it under a name (vfiomigctl save %s NAME) or to "
                                               "a file (vfiomigctl save %s - > FILE)", argv[1], argv[1], argv[1]);
                ctl->out = stderr;      /* stdout carries the stream */
                return run_job(ctl, "SaveFd", argv[1], 'h', &fd, what);
        }
        return run_job(ctl, "Save", argv[1], 's', argv[2], what);
}

int cmd_load(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;
        int fd = STDIN_FILENO;

        if (argc != 3)
                return ctl_usage_error("load takes DEVICE NAME (or - for standard input)");
        what = g_strdup_printf("load %s", argv[1]);
        if (g_str_equal(argv[2], "-")) {
                if (isatty(fd) || is_dev_null(fd))
                        return ctl_usage_error("Refusing to read the state for %s from %s: redirect standard input "
                                               "from a saved stream (vfiomigctl load %s - < FILE)", argv[1],
                                               isatty(fd) ? "a terminal" : "/dev/null", argv[1]);
                return run_job(ctl, "LoadFd", argv[1], 'h', &fd, what);
        }
        if (ctl->no_prefetch)
                return ctl_usage_error("--no-prefetch applies to a stream on standard input (load %s -), not to "
                                       "the saved state %s, which is verified whole", argv[1], argv[2]);
        /* a saved state has a plain name; a path is a file of the user's */
        if (strchr(argv[2], '/'))
                return ctl_usage_error("%s is a path, and load takes the NAME of a saved state (see vfiomigctl "
                                       "states); to load that file: vfiomigctl load %s - < %s", argv[2], argv[1],
                                       argv[2]);
        return run_job(ctl, "Load", argv[1], 's', argv[2], what);
}

static bool phase_is_final(const char *phase) {
        return g_strv_contains((const char *const[]) { "done", "failed", "cancelled", NULL }, phase ?: "");
}

int cmd_resume(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;

        if (argc != 2)
                return ctl_usage_error("resume takes one DEVICE");
        what = g_strdup_printf("resume %s", argv[1]);
        return ctl_call(ctl, "Resume", NULL, what, "sa{sv}", argv[1], 0);
}

static int parse_id(const char *s, uint32_t *ret) {
        guint64 v;

        if (!g_ascii_string_to_unsigned(s, 10, 1, G_MAXUINT32, &v, NULL))
                return ctl_usage_error("'%s' is not a migration id", s);
        *ret = (uint32_t) v;
        return EXIT_OK;
}

int cmd_cancel(Ctl *ctl, int argc, char **argv) {
        g_autofree char *path = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        uint32_t id = 0;
        int r, code;

        if (argc != 2)
                return ctl_usage_error("cancel takes one migration ID");
        code = parse_id(argv[1], &id);
        if (code != EXIT_OK)
                return code;
        path = g_strdup_printf(VFIOMIG_MIGRATION_PATH_PREFIX "/%u", id);
        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, path, VFIOMIG_MIGRATION_INTERFACE, "Cancel");
        if (r >= 0)
                r = sd_bus_message_set_allow_interactive_authorization(m, ctl->ask_password);
        if (r >= 0)
                r = sd_bus_call(ctl->bus, m, 0, &error, NULL);
        sd_bus_message_unref(m);
        if (r >= 0)
                return EXIT_OK;
        if (sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_METHOD)) {
                fprintf(stderr, "No migration %u.\n", id);
                code = EXIT_NOT_FOUND;
        } else {
                fprintf(stderr, "Failed to cancel migration %u: %s\n", id,
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                code = ctl_exit_code_for_error(&error, r);
        }
        sd_bus_error_free(&error);
        return code;
}

int cmd_wait(Ctl *ctl, int argc, char **argv) {
        g_auto(Job) j = { .ctl = ctl, .devices = g_ptr_array_new_with_free_func(g_free) };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r, code;

        if (argc != 2)
                return ctl_usage_error("wait takes one migration ID");
        code = parse_id(argv[1], &j.id);
        if (code != EXIT_OK)
                return code;
        j.path = g_strdup_printf(VFIOMIG_MIGRATION_PATH_PREFIX "/%u", j.id);
        j.tty = isatty(STDERR_FILENO) && !ctl->json;
        if (subscribe(&j) < 0)
                return EXIT_FAILED;
        r = sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, j.path, "org.freedesktop.DBus.Properties", "GetAll",
                               &error, &reply, "s", VFIOMIG_MIGRATION_INTERFACE);
        if (r >= 0) {
                (void) read_properties(&j, reply);
                j.owner = g_strdup(sd_bus_message_get_sender(reply));
                sd_bus_message_unref(reply);
                /* vfiomigd keeps an ended job's object for a while, with
                 * its final properties: it has ended if its phase says so */
                if (phase_is_final(j.phase)) {
                        set(&j.result, j.phase);
                        j.removed = true;
                } else if (!j.tty && !ctl->json && !ctl->quiet)
                        /* where it stands, and that we follow it from now on */
                        fprintf(stderr, "Migration %u: %s\n", j.id, j.phase ?: "");
        } else if (!sd_bus_error_has_names(&error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                           SD_BUS_ERROR_UNKNOWN_METHOD)) {
                fprintf(stderr, "Failed to read migration %u: %s\n", j.id,
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                code = ctl_exit_code_for_error(&error, r);
                sd_bus_error_free(&error);
                return code;
        } else {
                /* It may have ended just now: its signals are queued then. */
                while (sd_bus_process(ctl->bus, NULL) > 0)
                        ;
                if (!j.removed) {
                        fprintf(stderr, "No migration %u.\n", j.id);
                        sd_bus_error_free(&error);
                        return EXIT_NOT_FOUND;
                }
        }
        sd_bus_error_free(&error);
        code = wait_removed(&j, NULL);
        return code != EXIT_OK ? code : report(&j);
}

int cmd_migrations(Ctl *ctl, int argc, char **argv) {
        g_autoptr(Table) t = NULL;
        g_autoptr(JsonArray) a = NULL;
        sd_bus_message *reply = NULL;
        const char *kind, *source, *target, *phase, *path;
        uint32_t id;
        int r, code;

        if (argc != 1)
                return ctl_usage_error("migrations takes no arguments");
        code = ctl_call(ctl, "ListMigrations", &reply, "list migrations", NULL);
        if (code != EXIT_OK)
                return code;
        t = table_new("ID", "KIND", "SOURCE", "TARGET", "PHASE", NULL);
        table_keep_whole(t, "ID");
        a = json_array_new();
        r = sd_bus_message_enter_container(reply, 'a', "(usssso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(usssso)", &id, &kind, &source, &target, &phase, &path)) > 0) {
                g_autofree char *ids = g_strdup_printf("%u", id);
                JsonObject *o = json_object_new();

                json_object_set_int_member(o, "id", id);
                json_object_set_string_member(o, "kind", kind);
                json_object_set_string_member(o, "source", source);
                json_object_set_string_member(o, "target", target);
                json_object_set_string_member(o, "phase", phase);
                json_object_set_string_member(o, "path", path);
                json_array_add_object_element(a, o);
                table_add_row(t, ids, kind, source, target, phase, NULL);
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return EXIT_FAILED;
        if (ctl->json)
                json_print(json_node_init_array(json_node_alloc(), a));
        else
                table_print(t, "migrations");
        return EXIT_OK;
}

/* SaveFd's options for the sending half of a move to another host: those
 * of the target (its state, allow-unknown) go to the load there, and the
 * rest (overwrite, allow-no-p2p, pairs) were refused for a remote target. */
static int append_save_options(Ctl *ctl, sd_bus_message *m) {
        Ctl sending = *ctl;

        sending.target_state = NULL;
        sending.allow_unknown = false;
        return append_options(&sending, m);
}

/* vfiomigctl load on the other host, reading the stream from its stdin
 * and printing its outcome as JSON. */
static GStrv remote_load_words(Ctl *ctl, const RemoteTarget *rt) {
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        g_autofree char *timeout = ctl->io_timeout ? g_strdup_printf("--io-timeout=%u", ctl->io_timeout) : NULL;
        g_autofree char *state = ctl->target_state ? g_strdup_printf("--target-state=%s", ctl->target_state)
                                                   : NULL;

        g_strv_builder_add_many(b, "--json", "--no-ask-password", NULL);
        if (timeout)
                g_strv_builder_add(b, timeout);
        if (state)
                g_strv_builder_add(b, state);
        if (ctl->allow_unknown)
                g_strv_builder_add(b, "--allow-unknown");
        /* the source here waits for the target there: what arrives during
         * pre-copy goes into it then, not in the downtime */
        g_strv_builder_add(b, "--no-prefetch");
        g_strv_builder_add_many(b, "load", "--", rt->device, "-", NULL);
        return g_strv_builder_end(b);
}

/* How the remote load ended, from the JSON it printed. */
typedef struct RemoteOutcome {
        JsonParser *parser;
        JsonObject *o;                  /* NULL: it printed none */
        const char *result, *error_name, *error, *target;
} RemoteOutcome;

static void remote_outcome_clear(RemoteOutcome *ro) {
        g_clear_object(&ro->parser);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(RemoteOutcome, remote_outcome_clear);

static const char *string_member(JsonObject *o, const char *name) {
        JsonNode *n = o ? json_object_get_member(o, name) : NULL;

        return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
                ? json_node_get_string(n) : NULL;
}

static void remote_outcome_parse(const Remote *r, RemoteOutcome *ro) {
        JsonNode *root;
        JsonArray *devices;

        ro->parser = json_parser_new();
        if (!json_parser_load_from_data(ro->parser, r->out->str, -1, NULL))
                return;
        root = json_parser_get_root(ro->parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root))
                return;
        ro->o = json_node_get_object(root);
        ro->result = string_member(ro->o, "result");
        ro->error_name = string_member(ro->o, "error_name");
        ro->error = string_member(ro->o, "error");
        devices = json_object_has_member(ro->o, "devices") ? json_object_get_array_member(ro->o, "devices") : NULL;
        for (guint i = 0; devices && i < json_array_get_length(devices); i++) {
                JsonObject *d = json_array_get_object_element(devices, i);

                if (g_strcmp0(string_member(d, "role"), "target") == 0)
                        ro->target = string_member(d, "outcome");
        }
}

/* The source after a save that succeeded while the load failed: stopped
 * with its state, which nothing else has now. Returns what became of it. */
static char *resume_source(Ctl *ctl, const char *source) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *outcome;
        int r;

        if (g_strcmp0(ctl->source_state, "running") == 0)
                return g_strdup("running");
        r = sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE, "Resume",
                               &error, NULL, "sa{sv}", source, 0);
        outcome = r >= 0 ? g_strdup("resumed to running (was stop)")
                         : g_strdup_printf("resume failed: %s (device left in stop; 'vfiomigctl resume %s')",
                                           sd_bus_error_is_set(&error) ? error.message : strerror(-r), source);
        sd_bus_error_free(&error);
        return outcome;
}

static const char *local_outcome(const Job *j, const char *role) {
        for (guint i = 0; j->devices && i < j->devices->len; i++) {
                const char *d = j->devices->pdata[i], *tab = strchr(d, '\t');

                /* empty until the job has ended */
                if (tab && g_str_has_prefix(tab + 1, role) && tab[1 + strlen(role)] == '\t')
                        return tab[2 + strlen(role)] ? tab + 2 + strlen(role) : NULL;
        }
        return NULL;
}

typedef enum { END_NONE, END_LOCAL, END_REMOTE, END_SSH } FailedEnd;

/* Which end broke the move. A load there that failed on a truncated or
 * damaged stream after the save here failed is the echo of our failure;
 * a save here that failed because the load there went away is the echo
 * of theirs. */
static FailedEnd failed_end(bool local_ok, const Remote *r, const RemoteOutcome *ro) {
        bool remote_ok = r->status == EXIT_OK && g_strcmp0(ro->result, "done") == 0;

        if (local_ok && remote_ok)
                return END_NONE;
        if (!ro->o && (r->status == 255 || r->status < 0))
                return END_SSH;
        if (!remote_ok && !(!local_ok && g_strcmp0(ro->error_name, VFIOMIG_ERROR_STREAM_CORRUPT) == 0))
                return END_REMOTE;
        return END_LOCAL;
}

static void print_remote_json(Ctl *ctl, const Job *j, const char *source, const RemoteTarget *rt, FailedEnd end,
                              const char *error_name, const char *error, const char *source_outcome,
                              const char *target_outcome, uint64_t downtime, const RemoteOutcome *ro) {
        static const char *const ends[] = { "", "local", "remote", "ssh" };
        g_autoptr(JsonObject) o = json_object_new();
        JsonArray *devices = json_array_new();
        JsonObject *d;

        json_object_set_int_member(o, "id", j->id);
        json_object_set_string_member(o, "host", rt->host);
        json_object_set_string_member(o, "result", end == END_NONE ? "done" : "failed");
        json_object_set_string_member(o, "failed_end", ends[end]);
        json_object_set_string_member(o, "error_name", error_name ?: "");
        json_object_set_string_member(o, "error", error ?: "");
        json_object_set_int_member(o, "bytes", (gint64) j->bytes);
        json_object_set_int_member(o, "downtime_usec", (gint64) downtime);
        json_object_set_int_member(o, "precopy_rounds", j->rounds);
        d = json_object_new();
        json_object_set_string_member(d, "name", source);
        json_object_set_string_member(d, "role", "source");
        json_object_set_string_member(d, "outcome", source_outcome ?: "");
        json_array_add_object_element(devices, d);
        d = json_object_new();
        json_object_set_string_member(d, "name", rt->text);
        json_object_set_string_member(d, "role", "target");
        json_object_set_string_member(d, "outcome", target_outcome ?: "");
        json_array_add_object_element(devices, d);
        json_object_set_array_member(o, "devices", devices);
        if (ro->o)
                json_object_set_object_member(o, "remote", json_object_ref(ro->o));
        json_print_to(ctl->out, json_node_init_object(json_node_alloc(), o));
}

/* One outcome for both ends: what failed where, what became of each
 * device, and the exit status of the end that failed. */
static int conclude_remote(Ctl *ctl, Job *j, int local_code, const Remote *r, const char *source,
                           const RemoteTarget *rt, int64_t local_done, int64_t remote_done) {
        g_auto(RemoteOutcome) ro = {};
        g_autofree char *resumed = NULL, *why = NULL;
        bool local_ok = local_code == EXIT_OK && g_strcmp0(j->result, "done") == 0;
        const char *error_name = NULL, *error = NULL, *source_outcome, *target_outcome;
        uint64_t downtime = 0;
        FailedEnd end;
        int code = EXIT_OK;

        remote_outcome_parse(r, &ro);
        end = failed_end(local_ok, r, &ro);
        if (end != END_NONE && local_ok)
                /* the save here succeeded: the source stopped for nothing */
                resumed = resume_source(ctl, source);
        source_outcome = resumed ?: local_outcome(j, "source");
        if (!source_outcome && j->gone)
                source_outcome = "unknown (vfiomigd here left the bus; it sets the source running again as it "
                                 "exits or starts again)";
        target_outcome = ro.target ?: (end == END_SSH ? "unknown (ssh failed)" : "unknown");

        switch (end) {
        case END_NONE: {
                /* The source stopped at stop-copy (as we saw the phase, or
                 * as its downtime says) and the target ran when the load
                 * there told us so: an upper bound of the real downtime,
                 * by the time the end of the load takes to reach us. */
                int64_t stopped = local_done - (int64_t) j->downtime;

                if (j->stopcopy_seen && j->stopcopy_seen < stopped)
                        stopped = j->stopcopy_seen;
                downtime = (uint64_t) MAX(remote_done - stopped, 0);
                break;
        }
        case END_SSH:
                why = remote_describe_failure(r);
                error_name = VFIOMIG_ERROR_DEVICE_FAILED;
                error = why;
                code = EXIT_UNREACHABLE;
                break;
        case END_REMOTE:
                if (ro.error && *ro.error) {
                        error_name = ro.error_name;
                        error = ro.error;
                        {
                                sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(ro.error_name, ro.error);

                                code = ro.error_name && *ro.error_name ? ctl_exit_code_for_error(&e, -EIO)
                                                                       : EXIT_FAILED;
                        }
                } else {
                        why = remote_describe_failure(r);
                        error = why;
                        code = remote_exit_code(r);
                }
                break;
        case END_LOCAL:
                error_name = j->error_name;
                error = j->error && *j->error ? j->error
                        : j->gone              ? "vfiomigd left the bus"
                                               : j->result ?: "the job's end is unknown";
                if (local_code != EXIT_OK)
                        code = local_code;
                else if (j->error_name && *j->error_name) {
                        sd_bus_error e = SD_BUS_ERROR_MAKE_CONST(j->error_name, j->error);

                        code = ctl_exit_code_for_error(&e, -EIO);
                } else
                        code = EXIT_FAILED;
                break;
        }

        if (j->shown_bar)
                fputc('\n', stderr);
        if (ctl->json) {
                print_remote_json(ctl, j, source, rt, end, error_name, error, source_outcome, target_outcome,
                                  downtime, &ro);
                return code;
        }
        if (end == END_NONE) {
                g_autofree char *size = format_bytes(j->bytes);

                if (ctl->quiet)
                        return EXIT_OK;

                fprintf(stderr, "Migration %u to %s done: %s, downtime %.3f ms, %u pre-copy round%s.\n", j->id,
                        rt->text, size, (double) downtime / 1000, j->rounds, j->rounds == 1 ? "" : "s");
                return EXIT_OK;
        }
        fprintf(stderr, "Migration %u to %s failed%s%s: %s\n", j->id, rt->text,
                end == END_REMOTE ? " on " : end == END_LOCAL ? " on this host" : "",
                end == END_REMOTE ? rt->host : "", error);
        fprintf(stderr, "  source %s: %s\n", source, source_outcome ?: "unknown");
        fprintf(stderr, "  target %s: %s\n", rt->text, target_outcome);
        /* the other end's view, when it has one of its own */
        if (end != END_LOCAL && j->cancelled && g_strcmp0(j->error_name, VFIOMIG_ERROR_CANCELLED) == 0)
                fprintf(stderr, "  (on this host: cancelled, as %s had ended)\n", rt->host);
        else if (end != END_LOCAL && !local_ok && j->error && *j->error)
                fprintf(stderr, "  (on this host: %s)\n", j->error);
        if (end == END_LOCAL && ro.error && *ro.error)
                fprintf(stderr, "  (on %s: %s)\n", rt->host, ro.error);
        return code;
}

/* migrate or save into a device on another host: ask there whether the
 * target takes the source's identity, then stream SaveFd here into
 * "vfiomigctl load TARGET -" there. */
static int run_remote(Ctl *ctl, const char *source, const RemoteTarget *rt) {
        g_auto(Job) j = { .ctl = ctl, .devices = g_ptr_array_new_with_free_func(g_free) };
        g_auto(Remote) r = {};
        g_auto(GStrv) words = NULL;
        g_autofree char *what = NULL;
        int64_t local_done, remote_done;
        int fd, code;

        if (ctl->no_wait || ctl->group->len > 0 || ctl->allow_no_p2p || ctl->overwrite)
                return ctl_usage_error("--no-wait, --pair=, --allow-no-p2p and --overwrite do not apply to a "
                                       "target on another host (%s)", rt->text);
        code = remote_check_identity(ctl, source, rt);
        if (code != EXIT_OK)
                return code;

        words = remote_load_words(ctl, rt);
        code = remote_spawn(ctl, rt->host, (const char *const *) words, &r);
        if (code != EXIT_OK)
                return code;
        fd = r.in_fd;
        what = g_strdup_printf("send %s to %s", source, rt->text);
        code = job_start(ctl, &j, "SaveFd", source, 'h', &fd, append_save_options, what);
        /* vfiomigd holds its own copy now, if any: the load there sees the
         * end of the stream when the job here closes it */
        close(r.in_fd);
        r.in_fd = -1;
        if (code != EXIT_OK) {
                /* an empty stream: the load there fails, the target untouched */
                (void) remote_finish(&r);
                return code;
        }
        code = wait_removed(&j, &r);
        local_done = g_get_monotonic_time();
        if (remote_finish(&r) < 0) {
                fprintf(stderr, "Failed to read what %s said: %m\n", rt->host);
                return EXIT_FAILED;
        }
        remote_done = g_get_monotonic_time();
        return conclude_remote(ctl, &j, code, &r, source, rt, local_done, remote_done);
}
