/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <systemd/sd-bus.h>

#include "bus/bus-util.h"

/* A bus that only makes messages: one end of a socket pair. */
static sd_bus *message_bus(int fds[2]) {
        sd_bus *bus = NULL;

        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), ==, 0);
        g_assert_cmpint(sd_bus_new(&bus), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(bus, fds[0], fds[0]), >=, 0);
        g_assert_cmpint(sd_bus_set_anonymous(bus, 1), >=, 0);
        g_assert_cmpint(sd_bus_start(bus), >=, 0);
        return bus;
}

/* The body as sd-bus prints it: every value, in order (the header
 * differs by its serial). */
static const char *dump(sd_bus_message *m) {
        static char *text[2];
        static int which;
        size_t len = 0;
        FILE *f;

        which = !which;
        g_free(text[which]);
        text[which] = NULL;
        f = open_memstream(&text[which], &len);
        g_assert_nonnull(f);
        g_assert_cmpint(sd_bus_message_rewind(m, 1), >=, 0);
        g_assert_cmpint(sd_bus_message_dump(m, f, SD_BUS_MESSAGE_DUMP_SUBTREE_ONLY), >=, 0);
        fclose(f);
        return text[which];
}

static sd_bus_message *new_message(sd_bus *bus) {
        sd_bus_message *m = NULL;

        g_assert_cmpint(sd_bus_message_new_signal(bus, &m, "/a", "org.example.A", "B"), >=, 0);
        return m;
}

/* What bus_append_string() appends, by either way, reads back as what
 * sd-bus appends, after strings of every alignment; it refuses what
 * sd-bus refuses. */
static void test_append_string(void) {
        static const char *const strings[] = {
                "", "p2p", "00000000-0000-4000-8000-000000000000", "stop-copy,p2p,pre-copy",
                "vm-\xc3\xa9t\xc3\xa9", "0123456789abcdef0123456789abcdef\xe2\x82\xac", "seven78",
        };
        int fds[2];
        sd_bus *bus = message_bus(fds);
        sd_bus_message *ours = new_message(bus), *theirs = new_message(bus), *bad = new_message(bus);

        g_assert_cmpint(sd_bus_message_open_container(ours, 'a', "(ss)"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(theirs, 'a', "(ss)"), >=, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++)
                for (size_t j = 0; j < G_N_ELEMENTS(strings); j++) {
                        g_assert_cmpint(sd_bus_message_open_container(ours, 'r', "ss"), >=, 0);
                        g_assert_cmpint(bus_append_string(ours, strings[i]), >=, 0);
                        g_assert_cmpint(bus_append_string(ours, strings[j]), >=, 0);
                        g_assert_cmpint(sd_bus_message_close_container(ours), >=, 0);
                        g_assert_cmpint(sd_bus_message_append(theirs, "(ss)", strings[i], strings[j]), >=, 0);
                }
        g_assert_cmpint(sd_bus_message_close_container(ours), >=, 0);
        g_assert_cmpint(sd_bus_message_close_container(theirs), >=, 0);
        g_assert_cmpint(sd_bus_message_seal(ours, 1, 0), >=, 0);
        g_assert_cmpint(sd_bus_message_seal(theirs, 1, 0), >=, 0);
        g_assert_cmpstr(dump(ours), ==, dump(theirs));
        g_assert_cmpuint(strlen(dump(ours)), >, 49 * 20);

        g_assert_cmpint(sd_bus_message_rewind(ours, 1), >=, 0);
        g_assert_cmpint(sd_bus_message_enter_container(ours, 'a', "(ss)"), >, 0);
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++)
                for (size_t j = 0; j < G_N_ELEMENTS(strings); j++) {
                        const char *a = NULL, *b = NULL;

                        g_assert_cmpint(sd_bus_message_read(ours, "(ss)", &a, &b), >, 0);
                        g_assert_cmpstr(a, ==, strings[i]);
                        g_assert_cmpstr(b, ==, strings[j]);
                }
        g_assert_cmpint(sd_bus_message_at_end(ours, 0), >, 0);

        g_assert_cmpint(bus_append_string(bad, "long enough to be read by words, then: \xc3("), ==, -EINVAL);
        sd_bus_message_unref(ours);
        sd_bus_message_unref(theirs);
        sd_bus_message_unref(bad);
        sd_bus_unref(bus);
        close(fds[1]);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/bus-util/append-string", test_append_string);
        return g_test_run();
}
