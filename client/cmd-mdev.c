/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "ctl.h"

int cmd_create_mdev(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;
        sd_bus_message *reply = NULL;
        const char *uuid;
        int code;

        if (argc < 3 || argc > 4)
                return ctl_usage_error("create-mdev takes PARENT TYPE [UUID]");
        what = g_strdup_printf("create %s mdev on %s", argv[2], argv[1]);
        code = ctl_call(ctl, "CreateMdev", &reply, what, "sssa{sv}", argv[1], argv[2], argc == 4 ? argv[3] : "", 0);
        if (code != EXIT_OK)
                return code;
        if (sd_bus_message_read(reply, "s", &uuid) < 0) {
                sd_bus_message_unref(reply);
                fprintf(stderr, "Failed to parse the reply to CreateMdev\n");
                return EXIT_FAILED;
        }
        if (ctl->json) {
                g_autoptr(JsonObject) o = json_object_new();

                json_object_set_string_member(o, "name", uuid);
                json_print(json_node_init_object(json_node_alloc(), o));
        } else
                puts(uuid);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

int cmd_remove_mdev(Ctl *ctl, int argc, char **argv) {
        g_autofree char *what = NULL;

        if (argc != 2)
                return ctl_usage_error("remove-mdev takes exactly one UUID");
        what = g_strdup_printf("remove mdev %s", argv[1]);
        return ctl_call(ctl, "RemoveMdev", NULL, what, "sa{sv}", argv[1], 0);
}
