/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "vfiomig-names.h"

static int on_device_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Ctl *ctl = userdata;
        const char *event = g_str_equal(sd_bus_message_get_member(m), "DeviceAdded") ? "added" : "removed";
        const char *name, *path;

        if (sd_bus_message_read(m, "so", &name, &path) < 0)
                return 0;
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();
                g_autoptr(JsonGenerator) g = json_generator_new();
                g_autofree char *s = NULL;

                json_object_set_string_member(o, "event", event);
                json_object_set_string_member(o, "name", name);
                json_object_set_string_member(o, "path", path);
                json_generator_set_root(g, json_node_init_object(json_node_alloc(), o));
                s = json_generator_to_data(g, NULL);
                puts(s);        /* one object per line */
        } else
                printf("%-8s %s\n", event, name);
        fflush(stdout);
        return 0;
}

int cmd_monitor(Ctl *ctl, int argc, char **argv) {
        static const char *const members[] = { "DeviceAdded", "DeviceRemoved" };
        int r;

        if (argc != 1)
                return ctl_usage_error("monitor takes no arguments");

        for (size_t i = 0; i < G_N_ELEMENTS(members); i++) {
                r = sd_bus_match_signal(ctl->bus, NULL, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH,
                                        VFIOMIG_MANAGER_INTERFACE, members[i], on_device_signal, ctl);
                if (r < 0) {
                        fprintf(stderr, "Failed to subscribe to %s: %s\n", members[i], strerror(-r));
                        return EXIT_FAILED;
                }
        }
        /* The matches are installed: tell whoever waits for us (a script, a
         * test) that no event from now on is missed. */
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
