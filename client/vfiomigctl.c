/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "bus/bus-error.h"
#include "ctl.h"
#include "vfiomig-names.h"

static const struct {
        const char *verb;
        CommandFunc func;
} commands[] = {
        { "list",        cmd_list },
        { "types",       cmd_types },
        { "show",        cmd_show },
        { "refresh",     cmd_refresh },
        { "create-mdev", cmd_create_mdev },
        { "remove-mdev", cmd_remove_mdev },
        { "monitor",     cmd_monitor },
        { "migrate",     cmd_migrate },
        { "save",        cmd_save },
        { "load",        cmd_load },
        { "resume",      cmd_resume },
        { "migrations",  cmd_migrations },
        { "cancel",      cmd_cancel },
        { "wait",        cmd_wait },
        { "identity",    cmd_identity },
        { "compat",      cmd_compat },
        { "targets",     cmd_targets },
        { "probe",       cmd_probe },
        { "check-identity", cmd_check_identity },
        { "domain",      cmd_domain },
        { "states",      cmd_states },
        { "remove-state", cmd_remove_state },
        { "probes",      cmd_probes },
        { "forget-probe", cmd_forget_probe },
};

/* The options of the command line. --help, --version, --no-ask-password
 * and --no-legend go with every command; from ARG_JSON on, each has a
 * bit in the set of options a command takes. */
enum {
        ARG_VERSION = 0x100, ARG_NO_ASK_PASSWORD, ARG_NO_LEGEND, ARG_QUIET,
        ARG_JSON,
        ARG_NO_WAIT, ARG_NO_PRECOPY, ARG_MAX_ROUNDS, ARG_IO_TIMEOUT, ARG_TARGET_STATE, ARG_SOURCE_STATE,
        ARG_PAIR, ARG_ALLOW_NO_P2P, ARG_ALLOW_UNKNOWN, ARG_OVERWRITE, ARG_NO_PREFETCH,
        ARG_TYPE, ARG_TARGETS_VERSION, ARG_IOMMU, ARG_VDPA, ARG_INCLUDE_BUSY, ARG_EXISTING_ONLY, ARG_INCLUDE_UNKNOWN,
        ARG_ALL, ARG_PARENT, ARG_KIND, ARG_DOMAIN,
        ARG_SSH,
};
#define BIT(arg) (1u << ((arg) - ARG_JSON))

#define JOB_OPTIONS (BIT(ARG_JSON) | BIT(ARG_NO_WAIT) | BIT(ARG_IO_TIMEOUT))
#define PRECOPY_OPTIONS (BIT(ARG_NO_PRECOPY) | BIT(ARG_MAX_ROUNDS))

/* Which of them each command takes: an option that would not change what
 * a command does is a mistake to point out, not to ignore. */
static const struct {
        const char *verb;
        unsigned options;
} command_options[] = {
        { "list",        BIT(ARG_JSON) | BIT(ARG_PARENT) | BIT(ARG_TYPE) | BIT(ARG_KIND) | BIT(ARG_DOMAIN) },
        { "types",       BIT(ARG_JSON) | BIT(ARG_PARENT) },
        { "show",        BIT(ARG_JSON) },
        { "refresh",     BIT(ARG_JSON) },
        { "create-mdev", BIT(ARG_JSON) },
        { "remove-mdev", 0 },
        { "monitor",     BIT(ARG_JSON) },
        { "migrate",     JOB_OPTIONS | PRECOPY_OPTIONS | BIT(ARG_TARGET_STATE) | BIT(ARG_PAIR) |
                         BIT(ARG_ALLOW_NO_P2P) | BIT(ARG_ALLOW_UNKNOWN) | BIT(ARG_SSH) },
        { "save",        JOB_OPTIONS | PRECOPY_OPTIONS | BIT(ARG_SOURCE_STATE) | BIT(ARG_OVERWRITE) | BIT(ARG_SSH) },
        { "load",        JOB_OPTIONS | BIT(ARG_TARGET_STATE) | BIT(ARG_ALLOW_UNKNOWN) | BIT(ARG_NO_PREFETCH) },
        { "resume",      0 },
        { "migrations",  BIT(ARG_JSON) },
        { "cancel",      0 },
        { "wait",        BIT(ARG_JSON) },
        { "identity",    BIT(ARG_JSON) },
        { "compat",      BIT(ARG_JSON) },
        { "targets",     BIT(ARG_JSON) | BIT(ARG_TYPE) | BIT(ARG_TARGETS_VERSION) | BIT(ARG_IOMMU) | BIT(ARG_VDPA) |
                         BIT(ARG_INCLUDE_BUSY) |
                         BIT(ARG_EXISTING_ONLY) | BIT(ARG_INCLUDE_UNKNOWN) },
        { "probe",       BIT(ARG_JSON) },
        { "check-identity", BIT(ARG_JSON) },
        { "domain",      BIT(ARG_JSON) },
        { "states",      BIT(ARG_JSON) },
        { "remove-state", 0 },
        { "probes",      BIT(ARG_JSON) },
        { "forget-probe", BIT(ARG_ALL) },
};
G_STATIC_ASSERT(G_N_ELEMENTS(command_options) == G_N_ELEMENTS(commands));

static const struct option options[] = {
        { "help",               no_argument,       NULL, 'h' },
        { "version",            no_argument,       NULL, ARG_VERSION },
        { "no-ask-password",    no_argument,       NULL, ARG_NO_ASK_PASSWORD },
        { "json",               optional_argument, NULL, ARG_JSON },
        { "no-legend",          no_argument,       NULL, ARG_NO_LEGEND },
        { "quiet",              no_argument,       NULL, ARG_QUIET },
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
        { "no-prefetch",        no_argument,       NULL, ARG_NO_PREFETCH },
        { "type",               required_argument, NULL, ARG_TYPE },
        { "iommu",              required_argument, NULL, ARG_IOMMU },
        { "vdpa",               required_argument, NULL, ARG_VDPA },
        { "include-busy",       no_argument,       NULL, ARG_INCLUDE_BUSY },
        { "existing-only",      no_argument,       NULL, ARG_EXISTING_ONLY },
        { "include-unknown",    no_argument,       NULL, ARG_INCLUDE_UNKNOWN },
        { "all",                no_argument,       NULL, ARG_ALL },
        { "parent",             required_argument, NULL, ARG_PARENT },
        { "kind",               required_argument, NULL, ARG_KIND },
        { "domain",             required_argument, NULL, ARG_DOMAIN },
        { "ssh",                required_argument, NULL, ARG_SSH },
        {}
};

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Inspect and manage VFIO devices through vfiomigd (org.vfiomig1).\n\n"
               "Commands:\n"
               "  list                        List VFIO devices\n"
               "  types                       List mdev types and available instances\n"
               "  show DEVICE                 Show properties of a device (UUID or PCI address)\n"
               "  refresh DEVICE              Open a device to learn its migration flags (this\n"
               "                              resets a PCI function bound to vfio-pci)\n"
               "  create-mdev PARENT TYPE [UUID]\n"
               "                              Create an mdev; prints its UUID\n"
               "  remove-mdev UUID            Remove an mdev\n"
               "  monitor                     Print devices as they are added and removed\n"
               "  migrate SOURCE [[USER@]HOST:]TARGET\n"
               "                              Move a device's state into another device, here or\n"
               "                              on another host (through ssh)\n"
               "  save DEVICE NAME|-|[USER@]HOST:TARGET\n"
               "                              Save a device's state under NAME, to stdout, or into\n"
               "                              a device on another host\n"
               "  load DEVICE NAME|-          Load a saved state, or one from stdin\n"
               "  resume DEVICE               Set a stopped device that nothing holds running\n"
               "  migrations                  List running migrations\n"
               "  cancel ID                   Cancel a migration\n"
               "  wait ID                     Wait for a migration to end, or report how it ended\n"
               "  identity DEVICE             Show a device's migration identity and its basis\n"
               "  compat SOURCE TARGET        Whether SOURCE's state may go into TARGET\n"
               "  targets DEVICE | --type=TYPE [--version=VERSION] [--iommu=FACET] [--vdpa=FACET]\n"
               "                              Where state of this identity may go (options\n"
               "                              --include-busy, --existing-only, --include-unknown)\n"
               "  probe SOURCE TARGET         Try a resume of SOURCE's pre-copy data on TARGET\n"
               "  check-identity TARGET       Whether TARGET takes the identity on stdin (JSON, as\n"
               "                              'identity --json' prints it)\n"
               "  domain NAME                 A libvirt domain's devices: identity, holder, targets\n"
               "  states                      List saved states: size, source, date, complete\n"
               "  remove-state NAME           Remove a saved state\n"
               "  probes                      List the verdicts probes found\n"
               "  forget-probe SOURCE TARGET | --all\n"
               "                              Forget a probe's verdict (or all): the map judges\n"
               "                              the pair again without it\n\n"
               "Options may come before or after the command, and take a value as --opt=VALUE\n"
               "or as --opt VALUE. Each command refuses the options it does not take.\n\n"
               "Options:\n"
               "  -h --help                   Show this help\n"
               "  -V --version                Show package version (--version after targets: see\n"
               "                              above)\n"
               "     --no-ask-password        Do not ask for a password to authorize\n"
               "     --no-legend              Print tables without their header and footer\n"
               "  -q --quiet                  Jobs print nothing but what failed\n"
               "     --json[=pretty|short|off]\n"
               "                              Print JSON instead of text (every command but\n"
               "                              remove-mdev, resume, cancel, remove-state and\n"
               "                              forget-probe); bare --json is pretty on a terminal\n"
               "                              and short otherwise\n"
               "Options of migrate, save and load:\n"
               "     --no-wait                Start the job, print its ID and exit\n"
               "     --io-timeout=SEC         Fail after SEC seconds without progress\n"
               "Options of migrate and save:\n"
               "     --no-precopy             Skip pre-copy: stop the source at once\n"
               "     --max-precopy-rounds=N   At most N pre-copy rounds\n"
               "     --ssh=COMMAND            Reach HOST with COMMAND (default $VFIOMIG_SSH, ssh)\n"
               "Options of migrate and load:\n"
               "     --target-state=running|stop\n"
               "                              State of the targets afterwards\n"
               "     --allow-unknown          Go ahead where compatibility is unknown\n"
               "Options of migrate:\n"
               "     --pair=SOURCE=TARGET     Migrate this pair together with the first\n"
               "     --allow-no-p2p           Let group members without P2P take part\n"
               "Options of save:\n"
               "     --source-state=stop|running\n"
               "                              State of the source afterwards\n"
               "     --overwrite              Replace an existing saved state\n"
               "Options of load:\n"
               "     --no-prefetch            With -: write each record into the target as soon\n"
               "                              as it is verified, not after the first 64 MiB\n"
               "Options of forget-probe:\n"
               "     --all                    Forget every probe result\n"
               "Options of list and types:\n"
               "     --parent=PARENT          Only those of this parent (mdev parent, physical\n"
               "                              function or vDPA management device)\n"
               "Options of list:\n"
               "     --type=TYPE              Only devices of this mdev type (targets: see above)\n"
               "     --kind=mdev|pci|vdpa     Only devices of this kind\n"
               "     --domain=NAME            Only devices of this running libvirt domain\n\n"
               "Exit status: 0 success, 1 failure, 2 usage error, 3 no such device, type or\n"
               "migration, 4 not authorized, 5 busy or already exists, 6 vfiomigd unreachable\n"
               "or gone.\n",
               program_invocation_short_name);
}

int ctl_usage_error(const char *format, ...) {
        va_list ap;

        fputs(color_on(stderr, COLOR_ERROR), stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "%s\n", color_off(stderr, COLOR_ERROR));
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
                g_autofree char *text = cli_error_text(sd_bus_error_is_set(&error) ? error.message : strerror(-r));

                fprintf(stderr, "%sFailed to %s: %s%s\n", color_on(stderr, COLOR_ERROR), what, text,
                        color_off(stderr, COLOR_ERROR));
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

static const char *option_name(int c) {
        if (c == ARG_TARGETS_VERSION)
                return "version";
        for (const struct option *o = options; o->name; o++)
                if (o->val == c)
                        return o->name;
        return "?";
}

static int parse_state(const char *value, const char **ret) {
        if (!g_str_equal(value, "running") && !g_str_equal(value, "stop"))
                return ctl_usage_error("Invalid state '%s': running or stop", value);
        *ret = value;
        return EXIT_OK;
}

/* One option and its value. Returns EXIT_OK, or EXIT_USAGE for a bad value. */
static int parse_option(Ctl *ctl, int c, const char *value) {
        guint64 v;

        switch (c) {
        case ARG_NO_ASK_PASSWORD:
                ctl->ask_password = false;
                break;
        case ARG_NO_LEGEND:
                output_set_legend(false);
                break;
        case 'q':
        case ARG_QUIET:
                ctl->quiet = true;
                break;
        case ARG_JSON:
                if (value && !g_str_equal(value, "pretty") && !g_str_equal(value, "short") &&
                    !g_str_equal(value, "off"))
                        return ctl_usage_error("Invalid --json=%s: pretty, short or off", value);
                ctl->json = !value || !g_str_equal(value, "off");
                output_set_json_style(!value ? JSON_STYLE_AUTO : g_str_equal(value, "pretty") ? JSON_STYLE_PRETTY
                                                                                             : JSON_STYLE_SHORT);
                break;
        case ARG_NO_WAIT:
                ctl->no_wait = true;
                break;
        case ARG_NO_PRECOPY:
                ctl->no_precopy = true;
                break;
        case ARG_MAX_ROUNDS:
                if (!g_ascii_string_to_unsigned(value, 10, 0, 1000000, &v, NULL))
                        return ctl_usage_error("Invalid --max-precopy-rounds=%s", value);
                ctl->max_rounds = (int) v;
                break;
        case ARG_IO_TIMEOUT:
                if (!g_ascii_string_to_unsigned(value, 10, 1, 86400, &v, NULL))
                        return ctl_usage_error("Invalid --io-timeout=%s: 1 to 86400 seconds", value);
                ctl->io_timeout = (uint32_t) v;
                break;
        case ARG_TARGET_STATE:
                return parse_state(value, &ctl->target_state);
        case ARG_SOURCE_STATE:
                return parse_state(value, &ctl->source_state);
        case ARG_PAIR:
                if (!strchr(value, '='))
                        return ctl_usage_error("Invalid --pair=%s: SOURCE=TARGET", value);
                g_ptr_array_add(ctl->group, (char *) value);
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
        case ARG_NO_PREFETCH:
                ctl->no_prefetch = true;
                break;
        case ARG_TYPE:
                ctl->targets.type = value;
                break;
        case ARG_TARGETS_VERSION:
                ctl->targets.version = value;
                break;
        case ARG_IOMMU:
                ctl->targets.iommu = value;
                break;
        case ARG_VDPA:
                ctl->targets.vdpa = value;
                break;
        case ARG_INCLUDE_BUSY:
                ctl->targets.include_busy = true;
                break;
        case ARG_EXISTING_ONLY:
                ctl->targets.existing_only = true;
                break;
        case ARG_INCLUDE_UNKNOWN:
                ctl->targets.include_unknown = true;
                break;
        case ARG_ALL:
                ctl->forget_all = true;
                break;
        case ARG_PARENT:
                ctl->filter.parent = value;
                break;
        case ARG_KIND:
                if (!g_str_equal(value, "mdev") && !g_str_equal(value, "pci") && !g_str_equal(value, "vdpa"))
                        return ctl_usage_error("Invalid --kind=%s: mdev, pci or vdpa", value);
                ctl->filter.kind = value;
                break;
        case ARG_DOMAIN:
                ctl->filter.domain = value;
                break;
        case ARG_SSH:
                ctl->ssh = value;
                break;
        default:
                g_assert_not_reached();
        }
        return EXIT_OK;
}

/* Options may come before or after the command, and take their value as
 * "--opt=V" or "--opt V". getopt returns the other words in order, as the
 * argument of option 1 ("-" in optstring), so the command is known by the
 * time an option after it is read; "--" ends the options. Puts the
 * command and its arguments into args and the options seen into *seen.
 * Returns 1 to go on, 0 after --help or --version, or an exit code < 0. */
static int parse_argv(int argc, char *argv[], Ctl *ctl, GPtrArray *args, unsigned *seen) {
        /* after "targets", --version V is the version of the identity to
         * look for, not a request for ours */
        struct option targets_options[G_N_ELEMENTS(options)];
        bool targets = false;
        int c;

        memcpy(targets_options, options, sizeof(options));
        for (struct option *o = targets_options; o->name; o++)
                if (g_str_equal(o->name, "version"))
                        *o = (struct option) { "version", required_argument, NULL, ARG_TARGETS_VERSION };

        while ((c = getopt_long(argc, argv, "-hVq", targets ? targets_options : options, NULL)) >= 0)
                switch (c) {
                case 1:
                        g_ptr_array_add(args, optarg);
                        if (args->len == 1)
                                targets = g_str_equal(optarg, "targets");
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                case ARG_VERSION:
                        printf("vfiomigctl %s\n", PACKAGE_VERSION);
                        return 0;
                case '?':
                        return -EXIT_USAGE;     /* getopt said why */
                default:
                        if (c >= ARG_JSON)
                                *seen |= BIT(c);
                        if (parse_option(ctl, c, optarg) != EXIT_OK)
                                return -EXIT_USAGE;
                }
        for (; optind < argc; optind++)
                g_ptr_array_add(args, argv[optind]);
        return 1;
}

/* Refuses the first option that the command does not take. */
static int check_options(const char *verb, unsigned seen) {
        for (size_t i = 0; i < G_N_ELEMENTS(command_options); i++) {
                unsigned extra;

                if (!g_str_equal(verb, command_options[i].verb))
                        continue;
                extra = seen & ~command_options[i].options;
                if (extra == 0)
                        return EXIT_OK;
                return ctl_usage_error("Option --%s does not apply to '%s'. See '%s --help'.",
                                       option_name(ARG_JSON + __builtin_ctz(extra)), verb,
                                       program_invocation_short_name);
        }
        g_assert_not_reached();         /* every command has its entry */
}

int main(int argc, char *argv[]) {
        g_autoptr(GPtrArray) args = g_ptr_array_new(), group = g_ptr_array_new();
        Ctl ctl = { .ask_password = isatty(STDIN_FILENO), .max_rounds = -1, .group = group, .out = stdout };
        unsigned seen = 0;
        const char *verb;
        int r, code;

        /* the character set alone, for the ellipsis: numbers print the
         * same under every locale */
        (void) setlocale(LC_CTYPE, "");
        r = parse_argv(argc, argv, &ctl, args, &seen);
        if (r <= 0)
                return -r;
        if (args->len < 1)
                return ctl_usage_error("Missing command. See '%s --help'.", program_invocation_short_name);

        verb = args->pdata[0];
        g_ptr_array_add(args, NULL);
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                if (strcmp(verb, commands[i].verb) != 0)
                        continue;
                code = check_options(verb, seen);
                if (code != EXIT_OK)
                        return code;
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
