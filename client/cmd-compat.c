/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "vfiomig-names.h"

static int verdict_exit(const char *verdict) {
        /* like test(1): success means "yes, it can go there" */
        return g_str_equal(verdict, "compatible") ? EXIT_OK : EXIT_FAILED;
}

static int print_judgement(Ctl *ctl, const char *what, sd_bus_message *reply) {
        const char *verdict, *basis, *reason;

        if (sd_bus_message_read(reply, "sss", &verdict, &basis, &reason) < 0) {
                fprintf(stderr, "Failed to parse the verdict\n");
                return EXIT_FAILED;
        }
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();

                json_object_set_string_member(o, "verdict", verdict);
                json_object_set_string_member(o, "basis", basis);
                json_object_set_string_member(o, "reason", reason);
                json_print(json_node_init_object(json_node_alloc(), o));
        } else
                printf("%s: %s (basis: %s): %s\n", what, verdict, basis, reason);
        return verdict_exit(verdict);
}

/* type, version and basis of a device */
static int identity_of(Ctl *ctl, const char *device, char **type, char **version, char **basis) {
        g_autofree char *what = g_strdup_printf("get the identity of %s", device);
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autofree char *path = NULL;
        const char *t, *v;
        int code, r;

        code = ctl_call(ctl, "GetIdentity", &reply, what, "s", device);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "ss", &t, &v);
        if (r >= 0) {
                *type = g_strdup(t);
                *version = g_strdup(v);
        }
        sd_bus_message_unref(reply);
        if (r < 0 || !basis)
                return r < 0 ? EXIT_FAILED : EXIT_OK;
        if (sd_bus_path_encode(VFIOMIG_DEVICE_PATH_PREFIX, device, &path) < 0 ||
            sd_bus_get_property_string(ctl->bus, VFIOMIG_BUS_NAME, path, VFIOMIG_DEVICE_INTERFACE, "MigrationBasis",
                                       &error, basis) < 0) {
                sd_bus_error_free(&error);
                *basis = g_strdup("");
        }
        return EXIT_OK;
}

int cmd_identity(Ctl *ctl, int argc, char **argv) {
        g_autofree char *type = NULL, *version = NULL, *basis = NULL;
        int code;

        if (argc != 2)
                return ctl_usage_error("identity takes one DEVICE");
        code = identity_of(ctl, argv[1], &type, &version, &basis);
        if (code != EXIT_OK)
                return code;
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();

                json_object_set_string_member(o, "name", argv[1]);
                json_object_set_string_member(o, "type", type);
                json_object_set_string_member(o, "version", version);
                json_object_set_string_member(o, "basis", basis);
                json_print(json_node_init_object(json_node_alloc(), o));
        } else
                printf("   Type: %s\nVersion: %s\n  Basis: %s\n", type, *version ? version : "-", basis);
        return EXIT_OK;
}

int cmd_compat(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;
        sd_bus_message *reply = NULL;
        int code;

        if (argc != 3)
                return ctl_usage_error("compat takes SOURCE TARGET");
        what = g_strdup_printf("check %s -> %s", argv[1], argv[2]);
        code = ctl_call(ctl, "CheckCompatibility", &reply, what, "ss", argv[1], argv[2]);
        if (code != EXIT_OK)
                return code;
        code = print_judgement(ctl, what + 6, reply);
        sd_bus_message_unref(reply);
        return code;
}

int cmd_probe(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;
        sd_bus_message *reply = NULL;
        int code;

        if (argc != 3)
                return ctl_usage_error("probe takes SOURCE TARGET (devices, or PARENT/TYPE-ID for mdev types)");
        what = g_strdup_printf("probe %s -> %s", argv[1], argv[2]);
        code = ctl_call(ctl, "Probe", &reply, what, "ssa{sv}", argv[1], argv[2], 0);
        if (code != EXIT_OK)
                return code;
        code = print_judgement(ctl, what + 6, reply);
        sd_bus_message_unref(reply);
        return code;
}

typedef struct TargetsArgs {
        const char *device, *type, *version;
        bool include_busy, existing_only, include_unknown;
} TargetsArgs;

static int parse_targets(int argc, char **argv, TargetsArgs *a) {
        enum { ARG_TYPE = 0x100, ARG_VERSION, ARG_BUSY, ARG_EXISTING, ARG_UNKNOWN };
        static const struct option options[] = {
                { "type",            required_argument, NULL, ARG_TYPE },
                { "version",         required_argument, NULL, ARG_VERSION },
                { "include-busy",    no_argument,       NULL, ARG_BUSY },
                { "existing-only",   no_argument,       NULL, ARG_EXISTING },
                { "include-unknown", no_argument,       NULL, ARG_UNKNOWN },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_TYPE:
                        a->type = optarg;
                        break;
                case ARG_VERSION:
                        a->version = optarg;
                        break;
                case ARG_BUSY:
                        a->include_busy = true;
                        break;
                case ARG_EXISTING:
                        a->existing_only = true;
                        break;
                case ARG_UNKNOWN:
                        a->include_unknown = true;
                        break;
                default:
                        return -1;
                }
        if (optind < argc)
                a->device = argv[optind++];
        if (optind != argc || !!a->device == !!a->type || (a->version && !a->type))
                return -1;
        return 0;
}

static int append_flag(sd_bus_message *m, const char *name, bool value) {
        return value ? sd_bus_message_append(m, "{sv}", name, "b", 1) : 0;
}

int cmd_targets(Ctl *ctl, int argc, char **argv) {
        TargetsArgs a = {};
        g_autofree char *type = NULL, *version = NULL;
        g_autoptr(Table) t = NULL;
        g_autoptr(JsonArray) arr = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *kind, *name, *verdict, *basis;
        int r, code;

        if (parse_targets(argc, argv, &a) < 0)
                return ctl_usage_error("targets takes DEVICE, or --type=TYPE [--version=VERSION] (a source "
                                       "elsewhere); options --include-busy, --existing-only, --include-unknown");
        if (a.device) {
                code = identity_of(ctl, a.device, &type, &version, NULL);
                if (code != EXIT_OK)
                        return code;
        } else {
                type = g_strdup(a.type);
                version = g_strdup(a.version ? a.version : "");
        }

        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                           VFIOMIG_MANAGER_INTERFACE, "FindTargets");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", type, version);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = append_flag(m, "include-busy", a.include_busy);
        if (r >= 0)
                r = append_flag(m, "existing-only", a.existing_only);
        if (r >= 0)
                r = append_flag(m, "include-unknown", a.include_unknown);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call(ctl->bus, m, 0, &error, &reply);
        sd_bus_message_unref(m);
        if (r < 0) {
                fprintf(stderr, "Failed to find targets: %s\n", sd_bus_error_is_set(&error) ? error.message : strerror(-r));
                code = ctl_exit_code_for_error(&error, r);
                sd_bus_error_free(&error);
                return code;
        }

        t = table_new("KIND", "NAME", "VERDICT", "BASIS", NULL);
        arr = json_array_new();
        r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssss)", &kind, &name, &verdict, &basis)) > 0) {
                JsonObject *o;

                if (a.device && g_str_equal(name, a.device))
                        continue;       /* not a target of itself */
                o = json_object_new();
                json_object_set_string_member(o, "kind", kind);
                json_object_set_string_member(o, "name", name);
                json_object_set_string_member(o, "verdict", verdict);
                json_object_set_string_member(o, "basis", basis);
                json_array_add_object_element(arr, o);
                table_add_row(t, kind, name, verdict, basis, NULL);
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return EXIT_FAILED;
        if (ctl->json)
                json_print(json_node_init_array(json_node_alloc(), g_steal_pointer(&arr)));
        else
                table_print(t, "targets");
        return EXIT_OK;
}
