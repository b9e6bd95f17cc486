/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
                printf("%s: %s%s%s (basis: %s): %s\n", what, color_on(stdout, verdict_color(verdict)), verdict,
                       color_off(stdout, verdict_color(verdict)), basis, reason);
        return verdict_exit(verdict);
}

typedef struct DeviceIdentity {
        char *name;             /* as vfiomigd spells it: the user may not have */
        char *type, *version, *iommu, *vdpa, *basis;
} DeviceIdentity;

static void device_identity_clear(DeviceIdentity *id) {
        g_free(id->name);
        g_free(id->type);
        g_free(id->version);
        g_free(id->iommu);
        g_free(id->vdpa);
        g_free(id->basis);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(DeviceIdentity, device_identity_clear);

static char *device_property(Ctl *ctl, const char *path, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;

        if (sd_bus_get_property_string(ctl->bus, VFIOMIG_BUS_NAME, path, VFIOMIG_DEVICE_INTERFACE, name, &error,
                                       &value) < 0) {
                sd_bus_error_free(&error);
                return g_strdup("");
        }
        return value;
}

/* The identity of a device, from GetIdentityEx() and its object. */
static int identity_of(Ctl *ctl, const char *device, DeviceIdentity *ret) {
        g_autofree char *what = g_strdup_printf("get the identity of %s", device);
        sd_bus_message *reply = NULL;
        const char *s, *v;
        int code, r;

        code = ctl_call(ctl, "GetDevice", &reply, what, "s", device);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "o", &s);
        if (r >= 0) {
                ret->name = device_property(ctl, s, "Name");
                ret->basis = device_property(ctl, s, "MigrationBasis");
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return EXIT_FAILED;
        code = ctl_call(ctl, "GetIdentityEx", &reply, what, "s", device);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_enter_container(reply, 'a', "{ss}");
        while (r >= 0 && (r = sd_bus_message_read(reply, "{ss}", &s, &v)) > 0) {
                char **field = g_str_equal(s, "type") ? &ret->type : g_str_equal(s, "version") ? &ret->version :
                               g_str_equal(s, "iommu") ? &ret->iommu : g_str_equal(s, "vdpa") ? &ret->vdpa : NULL;

                if (field) {
                        g_free(*field);
                        *field = g_strdup(v);
                }
        }
        sd_bus_message_unref(reply);
        if (r < 0 || !ret->type || !ret->version || !ret->iommu)
                return EXIT_FAILED;
        if (!ret->vdpa)         /* a daemon from before vDPA */
                ret->vdpa = g_strdup("");
        return EXIT_OK;
}

int cmd_identity(Ctl *ctl, int argc, char **argv) {
        g_auto(DeviceIdentity) id = {};
        int code;

        if (argc != 2)
                return ctl_usage_error("identity takes one DEVICE");
        code = identity_of(ctl, argv[1], &id);
        if (code != EXIT_OK)
                return code;
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();

                json_object_set_string_member(o, "name", id.name);
                json_object_set_string_member(o, "type", id.type);
                json_object_set_string_member(o, "version", id.version);
                json_object_set_string_member(o, "iommu", id.iommu);
                json_object_set_string_member(o, "vdpa", id.vdpa);
                json_object_set_string_member(o, "basis", id.basis);
                json_print(json_node_init_object(json_node_alloc(), o));
        } else {
                printf("   Type: %s\nVersion: %s\n  IOMMU: %s\n", id.type, *id.version ? id.version : "-",
                       *id.iommu ? id.iommu : "-");
                if (*id.vdpa)
                        printf("   vDPA: %s\n", id.vdpa);
                printf("  Basis: %s\n", id.basis);
        }
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

static int append_flag(sd_bus_message *m, const char *name, bool value) {
        return value ? sd_bus_message_append(m, "{sv}", name, "b", 1) : 0;
}

int cmd_targets(Ctl *ctl, int argc, char **argv) {
        const char *device = argc == 2 ? argv[1] : NULL;
        g_auto(DeviceIdentity) id = {};
        g_autoptr(Table) t = NULL;
        g_autoptr(JsonArray) arr = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *kind, *name, *verdict, *basis;
        int r, code;

        if (argc > 2 || !!device == !!ctl->targets.type ||
            ((ctl->targets.version || ctl->targets.iommu || ctl->targets.vdpa) && !ctl->targets.type))
                return ctl_usage_error("targets takes DEVICE, or --type=TYPE [--version=VERSION] [--iommu=FACET] "
                                       "[--vdpa=FACET] (a source elsewhere); options --include-busy, --existing-only, "
                                       "--include-unknown");
        if (device) {
                code = identity_of(ctl, device, &id);
                if (code != EXIT_OK)
                        return code;
        } else {
                id.type = g_strdup(ctl->targets.type);
                id.version = g_strdup(ctl->targets.version ?: "");
                id.iommu = g_strdup(ctl->targets.iommu ?: "");
                id.vdpa = g_strdup(ctl->targets.vdpa ?: "");
        }

        r = sd_bus_message_new_method_call(ctl->bus, &m, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                           VFIOMIG_MANAGER_INTERFACE, "FindTargetsEx");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{ss}", 4, "type", id.type, "version", id.version, "iommu", id.iommu,
                                          "vdpa", id.vdpa);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = append_flag(m, "include-busy", ctl->targets.include_busy);
        if (r >= 0)
                r = append_flag(m, "existing-only", ctl->targets.existing_only);
        if (r >= 0)
                r = append_flag(m, "include-unknown", ctl->targets.include_unknown);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        code = ctl_send(ctl, m, r, &reply, "find targets", NULL);
        if (code != EXIT_OK)
                return code;

        t = table_new("KIND", "NAME", "VERDICT", "BASIS", NULL);
        table_keep_whole(t, "NAME");
        table_set_color(t, "VERDICT", verdict_color);
        arr = json_array_new();
        r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssss)", &kind, &name, &verdict, &basis)) > 0) {
                JsonObject *o;

                if (id.name && g_str_equal(name, id.name))
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
                json_print(json_node_init_array(json_node_alloc(), arr));
        else
                table_print(t, "targets");
        return EXIT_OK;
}
