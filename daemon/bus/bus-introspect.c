/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>
#include <systemd/sd-id128.h>

#include "config.h"
#include "bus/bus-objects.h"
#include "log.h"
#include "vfiomig-names.h"

/* libsystemd 252 cannot render introspection without a peer, so the
 * daemon talks to itself: a server bus carrying the real vtables and a
 * client bus asking Introspect over a socketpair, in one thread. */

static const struct {
        const char *path, *interface;
        const sd_bus_vtable *vtable;
} exported[] = {
        { VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE, bus_manager_vtable },
        { VFIOMIG_DEVICE_PATH_PREFIX "/example", VFIOMIG_DEVICE_INTERFACE, bus_device_vtable },
        { VFIOMIG_TYPE_PATH_PREFIX "/example", VFIOMIG_TYPE_INTERFACE, bus_type_vtable },
        { VFIOMIG_MIGRATION_PATH_PREFIX "/1", VFIOMIG_MIGRATION_INTERFACE, bus_migration_vtable },
#if HAVE_TESTBED
        { VFIOMIG_OBJECT_PATH, VFIOMIG_TESTBED_INTERFACE, bus_testbed_vtable },
#endif
};

static void bus_unrefp(sd_bus **b) {
        sd_bus_flush_close_unref(*b);
}

static int peer_pair(sd_bus **server, sd_bus **client) {
        sd_id128_t id;
        int fds[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return -errno;
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_new(server);
        if (r >= 0)
                r = sd_bus_set_fd(*server, fds[0], fds[0]);
        if (r >= 0)
                r = sd_bus_set_server(*server, 1, id);
        if (r >= 0)
                r = sd_bus_set_anonymous(*server, 1);
        if (r >= 0)
                r = sd_bus_start(*server);
        if (r >= 0)
                r = sd_bus_new(client);
        if (r >= 0)
                r = sd_bus_set_fd(*client, fds[1], fds[1]);
        if (r >= 0)
                r = sd_bus_set_anonymous(*client, 1);
        if (r >= 0)
                r = sd_bus_start(*client);
        return r;
}

typedef struct Pending {
        GString *out;
        const char *interface;
        int done;
} Pending;

/* Keep only <interface name="org.vfiomig1.X"> ... </interface>. */
static int on_introspect(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        g_autofree char *open = g_strdup_printf("<interface name=\"%s\">", p->interface);
        const char *xml, *start, *end;
        int r;

        p->done = 1;
        r = sd_bus_message_read(reply, "s", &xml);
        if (r < 0)
                return r;
        start = strstr(xml, open);
        end = start ? strstr(start, "</interface>") : NULL;
        if (!end)
                return log_error_errno(ENOENT, "Introspection lacks %s", p->interface);
        g_string_append_printf(p->out, " %.*s</interface>\n", (int) (end - start), start);
        return 1;
}

int bus_introspect_to_file(const char *path) {
        __attribute__((cleanup(bus_unrefp))) sd_bus *server = NULL, *client = NULL;
        g_autoptr(GString) out = g_string_new(
                "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n"
                "\"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n");
        g_autoptr(GError) error = NULL;
        int r;

        r = peer_pair(&server, &client);
        if (r < 0)
                return log_error_errno(r, "Failed to set up introspection peers: %m");

        for (size_t i = 0; i < G_N_ELEMENTS(exported); i++) {
                Pending p = { .out = out, .interface = exported[i].interface };

                r = sd_bus_add_object_vtable(server, NULL, exported[i].path, exported[i].interface,
                                             exported[i].vtable, NULL);
                if (r >= 0)
                        r = sd_bus_call_method_async(client, NULL, NULL, exported[i].path,
                                                     "org.freedesktop.DBus.Introspectable", "Introspect",
                                                     on_introspect, &p, NULL);
                while (r >= 0 && !p.done) {
                        r = sd_bus_process(server, NULL);
                        if (r >= 0)
                                r = sd_bus_process(client, NULL);
                        if (r == 0)
                                r = sd_bus_wait(client, 10 * 1000);
                }
                if (r < 0)
                        return log_error_errno(r, "Failed to introspect %s: %m", exported[i].interface);
        }
        g_string_append(out, "</node>\n");

        if (!g_file_set_contents(path, out->str, out->len, &error))
                return log_error_errno(EIO, "Failed to write %s: %s", path, error->message);
        return 0;
}
