/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "bus-error.h"
#include "ctl.h"
#include "vfiomig-names.h"

static const struct {
        const char *verb;
        CommandFunc func;
} commands[] = {
        { "list",        cmd_list },
        { "types",       cmd_types },
        { "show",        cmd_show },
        { "create-mdev", cmd_create_mdev },
        { "remove-mdev", cmd_remove_mdev },
        { "monitor",     cmd_monitor },
        { "migrate",     cmd_migrate },
        { "save",        cmd_save },
        { "load",        cmd_load },
        { "migrations",  cmd_migrations },
        { "cancel",      cmd_cancel },
        { "wait",        cmd_wait },
        { "identity",    cmd_identity },
        { "compat",      cmd_compat },
        { "targets",     cmd_targets },
        { "probe",       cmd_probe },
};

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Inspect and manage VFIO devices through vfiomigd (org.vfiomig1).\n\n"
               "Commands:\n"
               "  list                        List VFIO devices\n"
               "  types                       List mdev types and available instances\n"
               "  show DEVICE                 Show properties of a device (UUID or PCI address)\n"
               "  create-mdev PARENT TYPE [UUID]\n"
               "                              Create an mdev; prints its UUID\n"
               "  remove-mdev UUID            Remove an mdev\n"
               "  monitor                     Print devices as they are added and removed\n"
               "  migrate SOURCE TARGET       Move a device's state into another device\n"
               "  save DEVICE NAME|-          Save a device's state under NAME, or to stdout\n"
               "  load DEVICE NAME|-          Load a saved state, or one from stdin\n"
               "  migrations                  List running migrations\n"
               "  cancel ID                   Cancel a migration\n"
               "  wait ID                     Wait for a migration to end\n"
               "  identity DEVICE             Show a device's migration type, version and basis\n"
               "  compat SOURCE TARGET        Whether SOURCE's state may go into TARGET\n"
               "  targets DEVICE | --type=TYPE [--version=VERSION]\n"
               "                              Where state of this identity may go (options\n"
               "                              --include-busy, --existing-only, --include-unknown)\n"
               "  probe SOURCE TARGET         Try a resume of SOURCE's pre-copy data on TARGET\n\n"
               "Options:\n"
               "  -h --help                   Show this help\n"
               "     --version                Show package version\n"
               "     --json                   Print JSON instead of tables\n"
               "     --no-ask-password        Do not ask for a password to authorize\n"
               "     --no-wait                Start a migration and print its ID\n"
               "     --no-precopy             Skip pre-copy: stop the source at once\n"
               "     --max-precopy-rounds=N   At most N pre-copy rounds\n"
               "     --io-timeout=SEC         Fail after SEC seconds without progress\n"
               "     --target-state=running|stop\n"
               "                              State of targets after migrate or load\n"
               "     --source-state=stop|running\n"
               "                              State of the source after save\n"
               "     --pair=SOURCE=TARGET     Migrate this pair together with the first\n"
               "     --allow-no-p2p           Let group members without P2P take part\n"
               "     --allow-unknown          Migrate or load where compatibility is unknown\n"
               "     --overwrite              Replace an existing saved state\n\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 3 no such device, type or\n"
               "migration, 4 not authorized, 5 busy or already exists, 6 vfiomigd unreachable.\n",
               program_invocation_short_name);
}

int ctl_usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_USAGE;
}

int ctl_exit_code_for_error(const sd_bus_error *error, int r) {
        if (error && sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                            SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED,
                                            "org.freedesktop.DBus.Error.Spawn.ChildExited"))
                return EXIT_UNREACHABLE;
        if (error && sd_bus_error_has_names(error, SD_BUS_ERROR_INVALID_ARGS, SD_BUS_ERROR_UNKNOWN_METHOD))
                return EXIT_USAGE;
        switch (abs(error && sd_bus_error_is_set(error) ? sd_bus_error_get_errno(error) : r)) {
        case ENODEV: case ESRCH:
                return EXIT_NOT_FOUND;
        case EACCES: case EPERM:
                return EXIT_DENIED;
        case EBUSY: case EEXIST:
                return EXIT_CONFLICT;
        case EINVAL:
                return EXIT_USAGE;
        case ECONNREFUSED: case ENOENT: case ENOTCONN: case ECONNRESET:
                return EXIT_UNREACHABLE;
        default:
                return EXIT_FAILED;
        }
}

int ctl_send(Ctl *ctl, sd_bus_message *m, int r, sd_bus_message **reply, const char *what,
             sd_bus_error *ret_error) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int code = EXIT_OK;

        if (r >= 0)
                r = sd_bus_message_set_allow_interactive_authorization(m, ctl->ask_password);
        if (r >= 0)
                r = sd_bus_call(ctl->bus, m, 0, &error, reply);
        if (r < 0) {
                fprintf(stderr, "Failed to %s: %s\n", what,
                        sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                code = ctl_exit_code_for_error(&error, r);
        }
        if (ret_error)
                sd_bus_error_move(ret_error, &error);
        sd_bus_error_free(&error);
        sd_bus_message_unref(m);
        return code;
}

int ctl_call(Ctl *ctl, const char *method, sd_bus_message **reply, const char *what,
             const char *types, ...) {
        sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                           VFIOMIG_MANAGER_INTERFACE, method);
        if (r >= 0 && types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
        }
        return ctl_send(ctl, m, r, reply, what, NULL);
}

static int parse_argv(int argc, char *argv[], Ctl *ctl) {
        enum {
                ARG_VERSION = 0x100, ARG_JSON, ARG_NO_ASK_PASSWORD, ARG_NO_WAIT, ARG_NO_PRECOPY, ARG_MAX_ROUNDS,
                ARG_IO_TIMEOUT, ARG_TARGET_STATE, ARG_SOURCE_STATE, ARG_PAIR, ARG_ALLOW_NO_P2P, ARG_ALLOW_UNKNOWN,
                ARG_OVERWRITE,
        };
        static const struct option options[] = {
                { "help",               no_argument,       NULL, 'h' },
                { "version",            no_argument,       NULL, ARG_VERSION },
                { "json",               no_argument,       NULL, ARG_JSON },
                { "no-ask-password",    no_argument,       NULL, ARG_NO_ASK_PASSWORD },
                { "no-wait",            no_argument,       NULL, ARG_NO_WAIT },
                { "no-precopy",         no_argument,       NULL, ARG_NO_PRECOPY },
                { "max-precopy-rounds", required_argument, NULL, ARG_MAX_ROUNDS },
                { "io-timeout",         required_argument, NULL, ARG_IO_TIMEOUT },
                { "target-state",       required_argument, NULL, ARG_TARGET_STATE },
                { "source-state",       required_argument, NULL, ARG_SOURCE_STATE },
                { "pair",               required_argument, NULL, ARG_PAIR },
                { "allow-no-p2p",       no_argument,       NULL, ARG_ALLOW_NO_P2P },
                { "allow-unknown",      no_argument,       NULL, ARG_ALLOW_UNKNOWN },
                { "overwrite",          no_argument,       NULL, ARG_OVERWRITE },
                {}
        };
        guint64 v;
        int c;

        /* "+" stops at the verb; options may follow it too (see main) */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("vfiomigctl %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_JSON:
                        ctl->json = true;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        ctl->ask_password = false;
                        break;
                case ARG_NO_WAIT:
                        ctl->no_wait = true;
                        break;
                case ARG_NO_PRECOPY:
                        ctl->no_precopy = true;
                        break;
                case ARG_MAX_ROUNDS:
                        if (!g_ascii_string_to_unsigned(optarg, 10, 0, 1000000, &v, NULL)) {
                                ctl_usage_error("Invalid --max-precopy-rounds=%s", optarg);
                                return -EINVAL;
                        }
                        ctl->max_rounds = (int) v;
                        break;
                case ARG_IO_TIMEOUT:
                        if (!g_ascii_string_to_unsigned(optarg, 10, 1, 86400, &v, NULL)) {
                                ctl_usage_error("Invalid --io-timeout=%s: 1 to 86400 seconds", optarg);
                                return -EINVAL;
                        }
                        ctl->io_timeout = (uint32_t) v;
                        break;
                case ARG_TARGET_STATE:
                case ARG_SOURCE_STATE:
                        if (!g_str_equal(optarg, "running") && !g_str_equal(optarg, "stop")) {
                                ctl_usage_error("Invalid state '%s': running or stop", optarg);
                                return -EINVAL;
                        }
                        *(c == ARG_TARGET_STATE ? &ctl->target_state : &ctl->source_state) = optarg;
                        break;
                case ARG_PAIR:
                        if (!strchr(optarg, '=')) {
                                ctl_usage_error("Invalid --pair=%s: SOURCE=TARGET", optarg);
                                return -EINVAL;
                        }
                        g_ptr_array_add(ctl->group, optarg);
                        break;
                case ARG_ALLOW_NO_P2P:
                        ctl->allow_no_p2p = true;
                        break;
                case ARG_ALLOW_UNKNOWN:
                        ctl->allow_unknown = true;
                        break;
                case ARG_OVERWRITE:
                        ctl->overwrite = true;
                        break;
                default:
                        return -EINVAL;
                }
        return 1;
}

/* The options of a command of its own ("targets --type=T --version=V",
 * whose --version is not the global one). Returns how many argv words
 * the option takes, 0 if it is not one. */
static int command_option(const char *verb, char **argv, int i, int argc) {
        static const char *const targets[] = { "--type", "--version", "--include-busy", "--existing-only",
                                               "--include-unknown", NULL };

        if (g_strcmp0(verb, "targets") != 0)
                return 0;
        for (const char *const *o = targets; *o; o++) {
                size_t n = strlen(*o);

                if (strncmp(argv[i], *o, n) != 0 || (argv[i][n] != '\0' && argv[i][n] != '='))
                        continue;
                /* --type T and --version V take the next word */
                if (argv[i][n] == '\0' && (g_str_equal(*o, "--type") || g_str_equal(*o, "--version")) &&
                    i + 1 < argc)
                        return 2;
                return 1;
        }
        return 0;
}

/* Global options are accepted after the verb as well ("list --json");
 * after "--" everything is an argument, and "-" alone is one too. */
static void split_options(int argc, char **argv, GPtrArray *opts, GPtrArray *args) {
        bool dashdash = false;
        const char *verb = NULL;

        g_ptr_array_add(opts, argv[0]);
        for (int i = 1; i < argc; i++) {
                int n = verb ? command_option(verb, argv, i, argc) : 0;

                if (n > 0) {
                        for (int k = 0; k < n; k++)
                                g_ptr_array_add(args, argv[i + k]);
                        i += n - 1;
                } else if (!dashdash && strcmp(argv[i], "--") == 0)
                        dashdash = true;
                else if (!dashdash && argv[i][0] == '-' && argv[i][1] != '\0')
                        g_ptr_array_add(opts, argv[i]);
                else {
                        if (!verb)
                                verb = argv[i];
                        g_ptr_array_add(args, argv[i]);
                }
        }
        g_ptr_array_add(opts, NULL);
        g_ptr_array_add(args, NULL);
}

int main(int argc, char *argv[]) {
        g_autoptr(GPtrArray) opts = g_ptr_array_new(), args = g_ptr_array_new(), group = g_ptr_array_new();
        Ctl ctl = { .ask_password = isatty(STDIN_FILENO), .max_rounds = -1, .group = group, .out = stdout };
        const char *verb;
        int r, code;

        split_options(argc, argv, opts, args);
        r = parse_argv((int) opts->len - 1, (char **) opts->pdata, &ctl);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return EXIT_OK;
        if (args->len < 2)
                return ctl_usage_error("Missing command. See '%s --help'.", program_invocation_short_name);

        verb = args->pdata[0];
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                if (strcmp(verb, commands[i].verb) != 0)
                        continue;
                vfiomig_bus_error_register();
                r = sd_bus_open_system(&ctl.bus);
                if (r < 0) {
                        fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                        return EXIT_UNREACHABLE;
                }
                code = commands[i].func(&ctl, (int) args->len - 1, (char **) args->pdata);
                sd_bus_flush_close_unref(ctl.bus);
                return code;
        }
        return ctl_usage_error("Unknown command '%s'. See '%s --help'.", verb, program_invocation_short_name);
}
