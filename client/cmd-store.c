/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* What vfiomigd keeps between calls: saved states and probe results. */

/* Local time, one word, so that a table row stays splittable; "-" for a
 * time that was never recorded. */
static char *date_text(uint64_t usec) {
        g_autoptr(GDateTime) t = usec ? g_date_time_new_from_unix_local((gint64) (usec / G_USEC_PER_SEC)) : NULL;

        return t ? g_date_time_format(t, "%Y-%m-%dT%H:%M:%S") : g_strdup("");
}

/* A state that is not complete is a save under way or one that broke off. */
static Color complete_color(const char *complete) {
        return g_str_equal(complete, "no") ? COLOR_WARN : COLOR_NORMAL;
}

static char *identity_text(const char *type, const char *version) {
        if (!*type)
                return g_strdup("");    /* no header to read (yet) */
        return *version ? g_strdup_printf("%s/%s", type, version) : g_strdup(type);
}

int cmd_states(Ctl *ctl, int argc, char **argv) {
        g_autoptr(Table) t = table_new("NAME", "SIZE", "SOURCE", "DATE", "COMPLETE", NULL);
        g_autoptr(JsonArray) arr = json_array_new();
        sd_bus_message *reply = NULL;
        const char *name, *type, *version, *device, *iommu;
        uint64_t size, mtime;
        int complete, r, code;

        if (argc != 1)
                return ctl_usage_error("states takes no arguments");
        table_keep_whole(t, "NAME");
        table_set_color(t, "COMPLETE", complete_color);
        code = ctl_call(ctl, "ListStates", &reply, "list saved states", NULL);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_enter_container(reply, 'a', "(stsssstb)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(stsssstb)", &name, &size, &type, &version, &device, &iommu,
                                                  &mtime, &complete)) > 0) {
                g_autofree char *size_text = g_strdup_printf("%" G_GUINT64_FORMAT, size);
                g_autofree char *source = identity_text(type, version), *date = date_text(mtime);
                JsonObject *o = json_object_new();

                json_object_set_string_member(o, "name", name);
                json_object_set_int_member(o, "size", (gint64) size);
                json_object_set_string_member(o, "type", type);
                json_object_set_string_member(o, "version", version);
                json_object_set_string_member(o, "device", device);
                json_object_set_string_member(o, "iommu", iommu);
                json_object_set_int_member(o, "modified_usec", (gint64) mtime);
                json_object_set_boolean_member(o, "complete", complete);
                json_array_add_object_element(arr, o);
                table_add_row(t, name, size_text, source, date, complete ? "yes" : "no", NULL);
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to parse the reply to ListStates\n");
                return EXIT_FAILED;
        }
        if (ctl->json)
                json_print(json_node_init_array(json_node_alloc(), arr));
        else
                table_print(t, "saved states");
        return EXIT_OK;
}

int cmd_remove_state(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;

        if (argc != 2)
                return ctl_usage_error("remove-state takes exactly one NAME");
        what = g_strdup_printf("remove saved state %s", argv[1]);
        return ctl_call(ctl, "RemoveState", NULL, what, "sa{sv}", argv[1], 0);
}

int cmd_probes(Ctl *ctl, int argc, char **argv) {
        g_autoptr(Table) t = table_new("SOURCE", "TARGET", "VERDICT", "DRIVERS", "KERNEL", "DATE", "REASON", NULL);
        g_autoptr(JsonArray) arr = json_array_new();
        sd_bus_message *reply = NULL;
        const char *st, *sv, *tt, *tv, *verdict, *reason, *drivers, *kernel;
        uint64_t when;
        int r, code;

        if (argc != 1)
                return ctl_usage_error("probes takes no arguments");
        table_set_color(t, "VERDICT", verdict_color);
        code = ctl_call(ctl, "ListProbes", &reply, "list probe results", NULL);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssst)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssssssst)", &st, &sv, &tt, &tv, &verdict, &reason,
                                                  &drivers, &kernel, &when)) > 0) {
                g_autofree char *source = identity_text(st, sv), *target = identity_text(tt, tv);
                g_autofree char *date = date_text(when);
                /* one word per cell, as every other column, for awk */
                g_auto(GStrv) pair = g_strsplit(drivers, " -> ", 2);
                g_autofree char *driver_pair = g_strjoinv("->", pair);
                JsonObject *o = json_object_new();

                json_object_set_string_member(o, "source_type", st);
                json_object_set_string_member(o, "source_version", sv);
                json_object_set_string_member(o, "target_type", tt);
                json_object_set_string_member(o, "target_version", tv);
                json_object_set_string_member(o, "verdict", verdict);
                json_object_set_string_member(o, "reason", reason);
                json_object_set_string_member(o, "drivers", drivers);
                json_object_set_string_member(o, "kernel", kernel);
                json_object_set_int_member(o, "time_usec", (gint64) when);
                json_array_add_object_element(arr, o);
                table_add_row(t, source, target, verdict, driver_pair, kernel, date, reason, NULL);
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to parse the reply to ListProbes\n");
                return EXIT_FAILED;
        }
        if (ctl->json)
                json_print(json_node_init_array(json_node_alloc(), arr));
        else
                table_print(t, "probe results");
        return EXIT_OK;
}

static int forget_all(Ctl *ctl) {
        sd_bus_message *reply = NULL;
        uint32_t n;
        int code;

        code = ctl_call(ctl, "ForgetAllProbes", &reply, "forget probe results", "a{sv}", 0);
        if (code != EXIT_OK)
                return code;
        if (sd_bus_message_read(reply, "u", &n) < 0)
                code = EXIT_FAILED;
        else
                printf("Forgot %u probe result%s.\n", n, n == 1 ? "" : "s");
        sd_bus_message_unref(reply);
        return code;
}

int cmd_forget_probe(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL, *source = NULL, *target = NULL;
        sd_bus_message *reply = NULL;
        const char *st, *sv, *tt, *tv;
        int code;

        if (ctl->forget_all != (argc == 1) || (argc != 1 && argc != 3))
                return ctl_usage_error("forget-probe takes SOURCE TARGET (devices, or PARENT/TYPE-ID for mdev "
                                       "types), or --all");
        if (ctl->forget_all)
                return forget_all(ctl);
        what = g_strdup_printf("forget the probe result %s -> %s", argv[1], argv[2]);
        code = ctl_call(ctl, "ForgetProbe", &reply, what, "ssa{sv}", argv[1], argv[2], 0);
        if (code != EXIT_OK)
                return code;
        if (sd_bus_message_read(reply, "ssss", &st, &sv, &tt, &tv) < 0)
                code = EXIT_FAILED;
        else {
                source = identity_text(st, sv);
                target = identity_text(tt, tv);
                printf("Forgot the probe result %s -> %s.\n", source, target);
        }
        sd_bus_message_unref(reply);
        return code;
}
