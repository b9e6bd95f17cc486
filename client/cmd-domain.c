/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "vfiomig-names.h"

/* vfiomigctl domain NAME: each hostdev of a libvirt domain, with the
 * identity the domain carries for it (or this host's), who holds it here,
 * and where its state could go. */

typedef struct Hostdev {
        char *key, *kind, *type, *version, *basis;
        uint32_t flags;
        bool recorded;
} Hostdev;

static void hostdev_free(Hostdev *h) {
        g_free(h->key);
        g_free(h->kind);
        g_free(h->type);
        g_free(h->version);
        g_free(h->basis);
        g_free(h);
}

/* "" when the device is not here. */
static char *holder_of(Ctl *ctl, const char *key) {
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path;
        char *holder = NULL;

        /* GetDevice() looks for who holds it, as show does */
        if (sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                               "GetDevice", &error, &reply, "s", key) < 0 ||
            sd_bus_message_read(reply, "o", &path) < 0 ||
            sd_bus_get_property_string(ctl->bus, VFIOMIG_BUS_NAME, path, VFIOMIG_DEVICE_INTERFACE, "Holder",
                                       &error, &holder) < 0)
                holder = NULL;
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return holder ?: g_strdup("");
}

/* The compatible nodes for this identity here; NULL when none can be
 * asked (no identity). */
static char **targets_of(Ctl *ctl, const Hostdev *h) {
        g_autoptr(GStrvBuilder) b = g_strv_builder_new();
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *kind, *name, *verdict, *basis;
        int r;

        if (!*h->type)
                return NULL;
        r = sd_bus_call_method(ctl->bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                               "FindTargets", &error, &reply, "ssa{sv}", h->type, h->version, 0);
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssss)", &kind, &name, &verdict, &basis)) > 0)
                if (!g_str_equal(name, h->key))
                        g_strv_builder_add(b, name);
        sd_bus_message_unref(reply);
        return g_strv_builder_end(b);
}

static GPtrArray *read_hostdevs(sd_bus_message *reply, int *ret) {
        GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify) hostdev_free);
        const char *key, *kind, *type, *version, *basis;
        uint32_t flags;
        int recorded, r;

        r = sd_bus_message_enter_container(reply, 'a', "(sssssub)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssssub)", &key, &kind, &type, &version, &basis, &flags,
                                                  &recorded)) > 0) {
                Hostdev *h = g_new0(Hostdev, 1);

                *h = (Hostdev) { g_strdup(key), g_strdup(kind), g_strdup(type), g_strdup(version), g_strdup(basis),
                                 flags, recorded };
                g_ptr_array_add(a, h);
        }
        *ret = r;
        return a;
}

static JsonObject *hostdev_json(const Hostdev *h, const char *holder, char **targets) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "device", h->key);
        json_object_set_string_member(o, "kind", h->kind);
        json_object_set_string_member(o, "migration_type", h->type);
        json_object_set_string_member(o, "migration_version", h->version);
        json_object_set_string_member(o, "basis", h->basis);
        json_object_set_boolean_member(o, "recorded", h->recorded);
        json_object_set_string_member(o, "holder", holder);
        if (targets)
                json_object_set_member(o, "targets", json_strv_node(targets));
        else
                json_object_set_null_member(o, "targets");
        return o;
}

int cmd_domain(Ctl *ctl, int argc, char **argv) {
        g_autoptr(GPtrArray) hostdevs = NULL;
        g_autoptr(Table) t = NULL;
        g_autoptr(JsonArray) arr = NULL;
        sd_bus_message *reply = NULL;
        int running, r, code;

        if (argc != 2)
                return ctl_usage_error("domain takes a libvirt domain's NAME");
        code = ctl_call(ctl, "GetDomain", &reply, "read the domain", "s", argv[1]);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "b", &running);
        hostdevs = r >= 0 ? read_hostdevs(reply, &r) : NULL;
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to parse the domain: %s\n", strerror(-r));
                return EXIT_FAILED;
        }

        t = table_new("DEVICE", "KIND", "TYPE", "VERSION", "BASIS", "FROM", "HOLDER", "TARGETS", NULL);
        table_keep_whole(t, "DEVICE");
        arr = json_array_new();
        for (guint i = 0; i < hostdevs->len; i++) {
                const Hostdev *h = hostdevs->pdata[i];
                g_autofree char *holder = holder_of(ctl, h->key), *joined = NULL;
                g_auto(GStrv) targets = targets_of(ctl, h);

                joined = targets ? g_strjoinv(",", targets) : g_strdup("");
                json_array_add_object_element(arr, hostdev_json(h, holder, targets));
                table_add_row(t, h->key, h->kind, h->type, h->version, h->basis,
                              h->recorded ? "domain" : *h->type ? "host" : "", holder, joined, NULL);
        }
        if (ctl->json) {
                JsonObject *o = json_object_new();

                json_object_set_string_member(o, "name", argv[1]);
                json_object_set_boolean_member(o, "running", running);
                json_object_set_array_member(o, "hostdevs", json_array_ref(arr));
                json_print(json_node_init_object(json_node_alloc(), o));
                json_object_unref(o);
        } else {
                printf("Domain %s (%s)\n", argv[1], running ? "running" : "not running");
                table_print(t, "hostdevs");
        }
        return EXIT_OK;
}
