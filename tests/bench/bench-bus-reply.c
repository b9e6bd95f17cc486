/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baseline of bench-compat.py's FindTargets: a bare sd-bus server
 * that owns org.vfiomig1 on a bus of its own (the same dbus-daemon and
 * policy) and answers FindTargets with the rows vfiomigd gave, read from
 * FILE (four tab-separated fields a line), without looking anything up.
 * What is left is the round trip and the marshalling of the same reply.
 * Prints "ready" once it owns the name; runs until killed.
 *
 *   bench-bus-reply FILE */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <systemd/sd-bus.h>

static void die(const char *what, int r) {
        fprintf(stderr, "bench-bus-reply: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static int method_find_targets(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        GPtrArray *rows = userdata;
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssss)");
        for (guint i = 0; r >= 0 && i < rows->len; i++) {
                char **f = rows->pdata[i];

                r = sd_bus_message_append(reply, "(ssss)", f[0], f[1], f[2], f[3]);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("FindTargets", "ssa{sv}", "a(ssss)", method_find_targets, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static GPtrArray *read_rows(const char *path) {
        g_autofree char *text = NULL;
        g_auto(GStrv) lines = NULL;
        GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);

        if (!g_file_get_contents(path, &text, NULL, NULL))
                die(path, -ENOENT);
        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
                char **f;

                if (!**l)
                        continue;
                f = g_strsplit(*l, "\t", 4);
                if (g_strv_length(f) != 4)
                        die(path, -EINVAL);
                g_ptr_array_add(rows, f);
        }
        return rows;
}

int main(int argc, char *argv[]) {
        g_autoptr(GPtrArray) rows = NULL;
        sd_bus *bus = NULL;
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: %s FILE\n", argv[0]);
                return EXIT_FAILURE;
        }
        rows = read_rows(argv[1]);
        r = sd_bus_open_system(&bus);
        if (r < 0)
                die("connecting to the bus", r);
        r = sd_bus_add_object_vtable(bus, NULL, "/org/vfiomig1", "org.vfiomig1.Manager", manager_vtable, rows);
        if (r < 0)
                die("adding the object", r);
        r = sd_bus_request_name(bus, "org.vfiomig1", 0);
        if (r < 0)
                die("owning org.vfiomig1", r);
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        die("processing", r);
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, UINT64_MAX);
                if (r < 0 && r != -EINTR)
                        die("waiting", r);
        }
}
