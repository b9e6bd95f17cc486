/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* RefreshDevice(): the daemon opens the device (which resets a vfio-pci
 * function) to learn what it supports, and says what it found. */
int cmd_refresh(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL, *support = NULL, *flags = NULL, *text = NULL;
        g_auto(GStrv) flagv = NULL;
        sd_bus_message *reply = NULL;
        const char *s;
        int r, code;

        if (argc != 2)
                return ctl_usage_error("refresh takes exactly one DEVICE (an mdev UUID or a PCI address)");
        what = g_strdup_printf("refresh %s", argv[1]);
        code = ctl_call(ctl, "RefreshDevice", &reply, what, "sa{sv}", argv[1], 0);
        if (code != EXIT_OK)
                return code;
        r = sd_bus_message_read(reply, "s", &s);
        if (r >= 0) {
                support = g_strdup(s);
                r = sd_bus_message_read_strv(reply, &flagv);    /* NULL for an empty array */
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                fprintf(stderr, "Failed to parse the reply to %s: %s\n", what, strerror(-r));
                return EXIT_FAILED;
        }
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();

                json_object_set_string_member(o, "device", argv[1]);
                json_object_set_string_member(o, "migration_support", support);
                json_object_set_member(o, "migration_flags", json_strv_node(flagv));
                json_print(json_node_init_object(json_node_alloc(), o));
        } else {
                flags = flagv ? g_strjoinv(" ", flagv) : g_strdup("");
                text = migration_text(support, flags);
                printf("%s: %s\n", argv[1], text);
        }
        return EXIT_OK;
}
