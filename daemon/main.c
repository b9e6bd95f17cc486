/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "bus/bus-objects.h"
#include "conffile.h"
#include "log.h"
#include "manager.h"
#include "util.h"


#define DEFAULT_LIBVIRT_URI "qemu:///system"

typedef struct Options {
        char *config_file;
        char *testbed;
        char *introspect;
        GPtrArray *rules_dirs;
        char *libvirt_uri;              /* NULL: the default */
        char *vdpa_replay;
        uint64_t prepared_timeout_usec;
        uint64_t idle_timeout_usec;
        int log_level;
        bool testbed_set, idle_set, log_level_set;
} Options;

static void options_clear(Options *o) {
        if (o->rules_dirs)
                g_ptr_array_unref(o->rules_dirs);
        g_free(o->config_file);
        g_free(o->testbed);
        g_free(o->introspect);
        g_free(o->libvirt_uri);
        g_free(o->vdpa_replay);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Options, options_clear);

/* A build without the testbed (-Dtestbed=false) still takes the option,
 * to refuse it with a reason, but does not offer it. */
#if HAVE_TESTBED
#define TESTBED_HELP                                                                            \
        "     --testbed=FILE|default\n"                                                          \
        "                          Serve simulated devices from FILE, or the built-in set,\n"    \
        "                          instead of the kernel's\n"
#else
#define TESTBED_HELP ""
#endif

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "The VFIO device migration service (org.vfiomig1 on the system bus).\n\n"
               "  -h --help                Show this help\n"
               "     --version            Show package version\n"
               "     --config=FILE        Read FILE instead of %s\n"
               TESTBED_HELP
               "     --idle-timeout=SEC   Exit after SEC seconds without clients' work (0: never;\n"
               "                          default 60 when activated by D-Bus or systemd, else 0)\n"
               "     --log-level=LEVEL    err, warning, notice, info or debug\n"
               "     --rules-dir=DIR      Read compatibility rules from DIR instead of\n"
               "                          %s and %s (repeatable)\n"
               "     --libvirt-uri=URI    Learn which libvirt domain holds which device from URI\n"
               "                          (default %s; empty: none)\n"
               "     --vdpa-replay=DIR    Describe vDPA devices with netlink answers recorded in\n"
               "                          DIR instead of asking the kernel (for tests)\n"
               "     --bus-introspect=PATH\n"
               "                          Write the D-Bus API's introspection XML to PATH and exit\n",
               program_invocation_short_name, VFIOMIG_CONFIG_FILE, VFIOMIG_RULES_DIR_VENDOR, VFIOMIG_RULES_DIR_LOCAL,
               DEFAULT_LIBVIRT_URI);
}

static int parse_seconds(const char *s, uint64_t *ret) {
        guint64 v;

        if (!g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64 / USEC_PER_SEC, &v, NULL))
                return -EINVAL;
        *ret = v * USEC_PER_SEC;
        return 0;
}

static int parse_argv(int argc, char *argv[], Options *o) {
        enum { ARG_VERSION = 0x100, ARG_CONFIG, ARG_TESTBED, ARG_IDLE, ARG_LOG_LEVEL, ARG_INTROSPECT, ARG_RULES_DIR,
               ARG_LIBVIRT_URI, ARG_VDPA_REPLAY };
        static const struct option options[] = {
                { "help",           no_argument,       NULL, 'h' },
                { "version",        no_argument,       NULL, ARG_VERSION },
                { "config",         required_argument, NULL, ARG_CONFIG },
                { "testbed",        required_argument, NULL, ARG_TESTBED },
                { "idle-timeout",   required_argument, NULL, ARG_IDLE },
                { "log-level",      required_argument, NULL, ARG_LOG_LEVEL },
                { "bus-introspect", required_argument, NULL, ARG_INTROSPECT },
                { "rules-dir",      required_argument, NULL, ARG_RULES_DIR },
                { "libvirt-uri",    required_argument, NULL, ARG_LIBVIRT_URI },
                { "vdpa-replay",    required_argument, NULL, ARG_VDPA_REPLAY },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vfiomigd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_CONFIG:
                        g_free(o->config_file);
                        o->config_file = g_strdup(optarg);
                        break;
                case ARG_TESTBED:
                        g_free(o->testbed);
                        o->testbed = g_strdup(optarg);
                        o->testbed_set = true;
                        break;
                case ARG_IDLE:
                        if (parse_seconds(optarg, &o->idle_timeout_usec) < 0)
                                return log_error_errno(EINVAL, "Invalid --idle-timeout=%s: expected seconds", optarg);
                        o->idle_set = true;
                        break;
                case ARG_LOG_LEVEL:
                        o->log_level = log_level_from_string(optarg);
                        if (o->log_level < 0)
                                return log_error_errno(EINVAL, "Invalid --log-level=%s", optarg);
                        o->log_level_set = true;
                        break;
                case ARG_INTROSPECT:
                        g_free(o->introspect);
                        o->introspect = g_strdup(optarg);
                        break;
                case ARG_RULES_DIR:
                        if (!o->rules_dirs)
                                o->rules_dirs = g_ptr_array_new_with_free_func(g_free);
                        g_ptr_array_add(o->rules_dirs, g_strdup(optarg));
                        break;
                case ARG_LIBVIRT_URI:
                        g_free(o->libvirt_uri);
                        o->libvirt_uri = g_strdup(optarg);
                        break;
                case ARG_VDPA_REPLAY:
                        g_free(o->vdpa_replay);
                        o->vdpa_replay = g_strdup(optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "%s takes no positional arguments", program_invocation_short_name);
        return 1;
}

/* Started by D-Bus or systemd activation, we may go away when idle: the
 * next call starts us again. Started by hand, we stay. */
static uint64_t default_idle_timeout_usec(void) {
        return getenv("DBUS_STARTER_BUS_TYPE") || getenv("INVOCATION_ID") ? 60 * USEC_PER_SEC : 0;
}

/* [Libvirt] URI= */
static int parse_libvirt(ConfFile *c, Options *o, GError **error) {
        static const char *const libvirt_keys[] = { "URI", "PreparedTimeoutSec", NULL };
        g_autofree char *uri = NULL;
        uint64_t timeout;

        if (!conf_file_has_group(c, "Libvirt"))
                return 0;
        if (!conf_file_check_keys(c, "Libvirt", libvirt_keys, error) ||
            !conf_file_get_string(c, "Libvirt", "URI", DEFAULT_LIBVIRT_URI, &uri, error) ||
            !conf_file_get_uint64(c, "Libvirt", "PreparedTimeoutSec", o->prepared_timeout_usec / USEC_PER_SEC, 1,
                                  G_MAXUINT64 / USEC_PER_SEC, &timeout, error))
                return -EINVAL;
        o->prepared_timeout_usec = timeout * USEC_PER_SEC;
        if (!o->libvirt_uri)
                o->libvirt_uri = g_steal_pointer(&uri);
        return 0;
}

/* [Daemon] Testbed=, IdleTimeoutSec=, LogLevel=; [Libvirt] URI=; the
 * command line wins. */
static int parse_config(Options *o) {
        static const char *const groups[] = { "Daemon", "Libvirt", NULL };
        static const char *const keys[] = { "Testbed", "IdleTimeoutSec", "LogLevel", NULL };
        const char *path = o->config_file ? o->config_file : VFIOMIG_CONFIG_FILE;
        g_autoptr(ConfFile) c = NULL;
        g_autoptr(GError) error = NULL;
        g_autofree char *testbed = NULL, *level = NULL;
        uint64_t idle;

        if (!o->idle_set)
                o->idle_timeout_usec = default_idle_timeout_usec();
        if (!o->config_file && !g_file_test(path, G_FILE_TEST_EXISTS))
                return 0;
        c = conf_file_load(path, &error);
        if (!c || !conf_file_check_groups(c, groups, &error) || parse_libvirt(c, o, &error) < 0)
                return log_error_errno(EINVAL, "Invalid configuration: %s", error->message);
        if (!conf_file_has_group(c, "Daemon"))
                return 0;
        if (!conf_file_check_keys(c, "Daemon", keys, &error) ||
            !conf_file_get_string(c, "Daemon", "Testbed", "", &testbed, &error) ||
            !conf_file_get_uint64(c, "Daemon", "IdleTimeoutSec", o->idle_timeout_usec / USEC_PER_SEC, 0,
                                  G_MAXUINT64 / USEC_PER_SEC, &idle, &error) ||
            !conf_file_get_string(c, "Daemon", "LogLevel", "info", &level, &error))
                return log_error_errno(EINVAL, "Invalid configuration: %s", error->message);

        if (!o->testbed_set && *testbed)
                o->testbed = g_steal_pointer(&testbed);
        if (!o->idle_set)
                o->idle_timeout_usec = idle * USEC_PER_SEC;
        if (!o->log_level_set) {
                o->log_level = log_level_from_string(level);
                if (o->log_level < 0) {
                        conf_file_error(c, &error, "Daemon", "LogLevel", "'%s' is not err, warning, notice, "
                                        "info or debug", level);
                        return log_error_errno(EINVAL, "Invalid configuration: %s", error->message);
                }
        }
        return 0;
}

static int run(int argc, char *argv[]) {
        g_auto(Options) o = { .log_level = LOG_INFO, .prepared_timeout_usec = 300 * USEC_PER_SEC };
        g_autoptr(Manager) m = NULL;
        sigset_t mask;
        int r;

        log_open();
        r = parse_argv(argc, argv, &o);
        if (r <= 0)
                return r;
        if (o.introspect)
                return bus_introspect_to_file(o.introspect);
        r = parse_config(&o);
        if (r < 0)
                return r;
        log_set_max_level(o.log_level);

        /* A client that closes its end of a stream must not kill us. */
        signal(SIGPIPE, SIG_IGN);

        /* One malloc arena for every thread. A job's threads would each get
         * an arena of their own, and what they free stays there: malloc
         * trims a thread arena's top only past a threshold it raises to
         * twice the largest block freed, so a 1 MiB copy buffer left 2 MiB
         * in each, and RSS grew by 3 MiB over the first jobs for good. In
         * the one arena, malloc_trim() when work ends (manager.c) gives it
         * all back, while a listing's large message still reuses the heap
         * from one call to the next rather than faulting in fresh pages. */
        (void) mallopt(M_ARENA_MAX, 1);

        /* sd-event delivers these as events; block them first. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        if (o.rules_dirs)
                g_ptr_array_add(o.rules_dirs, NULL);
        r = manager_new(&(ManagerOptions) {
                .testbed = o.testbed,
                .idle_timeout_usec = o.idle_timeout_usec,
                .rules_dirs = o.rules_dirs ? (char **) o.rules_dirs->pdata : NULL,
                .libvirt_uri = o.libvirt_uri ?: DEFAULT_LIBVIRT_URI,
                .vdpa_replay = o.vdpa_replay,
                .prepared_timeout_usec = o.prepared_timeout_usec,
        }, &m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(manager_get_event(m), NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(manager_get_event(m), NULL, SIGINT, NULL, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");
        r = manager_start(m);
        if (r < 0)
                return r;

        r = sd_event_loop(manager_get_event(m));
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        log_debug("Exiting");
        return 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
