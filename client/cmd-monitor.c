/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "vfiomig-names.h"

/* vfiomigd exits when idle and enumerates silently when it comes back,
 * so the monitor keeps its own list of devices: when the daemon leaves,
 * it starts it again at once (a call activates it) and reports what
 * changed in between. */
typedef struct Monitor {
        Ctl *ctl;
        GHashTable *devices;    /* name -> object path */
} Monitor;

static void print_event(Monitor *mon, const char *event, const char *name, const char *path) {
        if (mon->ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();
                g_autoptr(JsonGenerator) g = json_generator_new();
                g_autoptr(JsonNode) n = NULL;
                g_autofree char *s = NULL;

                json_object_set_string_member(o, "event", event);
                json_object_set_string_member(o, "name", name);
                json_object_set_string_member(o, "path", path);
                n = json_node_init_object(json_node_alloc(), o);
                json_generator_set_root(g, n);  /* copies it */
                s = json_generator_to_data(g, NULL);
                puts(s);        /* one object per line */
        } else
                printf("%-8s %s\n", event, name);
        fflush(stdout);
}

static void device_added(Monitor *mon, const char *name, const char *path) {
        if (g_hash_table_replace(mon->devices, g_strdup(name), g_strdup(path)))
                print_event(mon, "added", name, path);
}

static void device_removed(Monitor *mon, const char *name) {
        g_autofree char *path = g_strdup(g_hash_table_lookup(mon->devices, name));

        if (g_hash_table_remove(mon->devices, name))
                print_event(mon, "removed", name, path);
}

/* Lists devices (activating the daemon if needed) and reports the
 * difference to what we knew. */
static int resync(Monitor *mon, bool report) {
        g_autoptr(GHashTable) now = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
        sd_bus_message *reply = NULL;
        const char *name, *s;
        GHashTableIter i;
        gpointer key;
        int r, code;

        code = ctl_call(mon->ctl, "ListDevices", &reply, "list devices", NULL);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_enter_container(reply, 'a', "(sssssssss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sssssssss)", &name, &s, &s, &s, &s, &s, &s, &s, &s)) > 0) {
                g_autofree char *path = NULL;

                g_hash_table_add(now, g_strdup(name));
                if (sd_bus_path_encode(VFIOMIG_DEVICE_PATH_PREFIX, name, &path) < 0)
                        continue;
                if (report)
                        device_added(mon, name, path);
                else
                        g_hash_table_replace(mon->devices, g_strdup(name), g_steal_pointer(&path));
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return EXIT_FAILED;

        g_hash_table_iter_init(&i, mon->devices);
        while (g_hash_table_iter_next(&i, &key, NULL))
                if (!g_hash_table_contains(now, key))
                        g_ptr_array_add(gone, g_strdup(key));
        for (guint k = 0; k < gone->len; k++)
                device_removed(mon, gone->pdata[k]);
        return EXIT_OK;
}

static int on_device_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Monitor *mon = userdata;
        const char *name, *path;

        if (sd_bus_message_read(m, "so", &name, &path) < 0)
                return 0;
        if (g_str_equal(sd_bus_message_get_member(m), "DeviceAdded"))
                device_added(mon, name, path);
        else
                device_removed(mon, name);
        return 0;
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Monitor *mon = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || *new_owner)
                return 0;
        if (resync(mon, true) != EXIT_OK)
                fprintf(stderr, "vfiomigd went away and could not be started again.\n");
        return 0;
}

int cmd_monitor(Ctl *ctl, int argc, char **argv) {
        static const char *const members[] = { "DeviceAdded", "DeviceRemoved" };
        g_autoptr(GHashTable) devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        Monitor mon = { .ctl = ctl, .devices = devices };
        int r, code;

        if (argc != 1)
                return ctl_usage_error("monitor takes no arguments");

        for (size_t i = 0; i < G_N_ELEMENTS(members); i++) {
                r = sd_bus_match_signal(ctl->bus, NULL, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                        VFIOMIG_MANAGER_INTERFACE, members[i], on_device_signal, &mon);
                if (r < 0) {
                        fprintf(stderr, "Failed to subscribe to %s: %s\n", members[i], strerror(-r));
                        return EXIT_FAILED;
                }
        }
        r = sd_bus_add_match(ctl->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                             "member='NameOwnerChanged',arg0='" VFIOMIG_BUS_NAME "'",
                             on_owner_changed, &mon);
        if (r < 0) {
                fprintf(stderr, "Failed to watch vfiomigd: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        /* Subscribed before listing, so nothing falls in between. */
        code = resync(&mon, false);
        if (code != EXIT_OK)
                return code;
        /* Tell whoever waits for us (a script, a test): from now on no event
         * is missed. */
        fprintf(stderr, "Monitoring vfiomigd device events.\n");

        for (;;) {
                r = sd_bus_process(ctl->bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(ctl->bus, UINT64_MAX);
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "Lost the bus connection: %s\n", strerror(-r));
                        return EXIT_UNREACHABLE;
                }
        }
}
