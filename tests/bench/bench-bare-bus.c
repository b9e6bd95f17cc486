/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baselines of bench-scale.py: the least a D-Bus service and a D-Bus
 * client do on this machine.
 *
 *   bench-bare-bus serve NAME
 *           connects to the system bus, takes NAME and answers (Peer.Ping)
 *           until SIGTERM: what vfiomigd's start-up, which ends the same
 *           way, and its idle memory compare with
 *   bench-bare-bus call N DESTINATION PATH INTERFACE METHOD
 *           calls a method that takes no arguments N times and prints each
 *           round trip in microseconds, one a line: the reply read off the
 *           socket and nothing made of it
 *
 * Built twice: bench-bare-bus with sd-bus alone, and bench-bare-glib with
 * GLib loaded and used as well, as vfiomigd uses both. */

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#if WITH_GLIB
#include <glib.h>
#endif

static int fail(const char *what, int r) {
        fprintf(stderr, "bench-bare-bus: %s: %s\n", what, strerror(-r));
        return EXIT_FAILURE;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int serve(const char *name) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sigset_t mask;
        int r;
#if WITH_GLIB
        /* what every GLib program has: its allocator and a table */
        GHashTable *names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        g_hash_table_add(names, g_strdup(name));
#endif

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = sd_event_default(&event);
        if (r < 0)
                return fail("event loop", r);
        r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r < 0)
                return fail("signal", r);
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail("system bus", r);
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return fail("attach", r);
        r = sd_bus_request_name(bus, name, 0);
        if (r < 0)
                return fail("request name", r);
        r = sd_event_loop(event);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
#if WITH_GLIB
        g_hash_table_unref(names);
#endif
        return r < 0 ? fail("loop", r) : EXIT_SUCCESS;
}

static int call(unsigned n, char *argv[]) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail("system bus", r);
        for (unsigned i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint64_t t0 = now_usec();

                r = sd_bus_call_method(bus, argv[0], argv[1], argv[2], argv[3], &error, &reply, NULL);
                if (r < 0) {
                        fprintf(stderr, "bench-bare-bus: %s: %s\n", argv[3], error.message ?: strerror(-r));
                        return EXIT_FAILURE;
                }
                printf("%" PRIu64 "\n", now_usec() - t0);
                sd_bus_message_unref(reply);
        }
        sd_bus_flush_close_unref(bus);
        return EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        if (argc == 3 && strcmp(argv[1], "serve") == 0)
                return serve(argv[2]);
        if (argc == 7 && strcmp(argv[1], "call") == 0)
                return call((unsigned) strtoul(argv[2], NULL, 10), argv + 3);
        fprintf(stderr, "usage: bench-bare-bus serve NAME | call N DESTINATION PATH INTERFACE METHOD\n");
        return EXIT_FAILURE;
}
