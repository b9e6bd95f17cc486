/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <string.h>

#include <glib.h>

/* Records a failure and goes on, so one run names every broken case (GLib's
 * own message keeps only the last one). */
#define fail(...)                                                       \
        do {                                                            \
                g_autofree char *msg_ = g_strdup_printf(__VA_ARGS__);   \
                g_test_message("FAIL: %s", msg_);                       \
                g_test_fail_printf("%s", msg_);                         \
        } while (0)

/* g_test_init() with --keep-going: a failed case must not hide the results
 * of the later ones. */
static inline void unit_test_init(int argc, char *argv[]) {
        static char **args;
        int n = argc + 1;

        args = g_new0(char *, argc + 2);
        memcpy(args, argv, sizeof(char *) * argc);
        args[argc] = (char *) "--keep-going";
        g_test_init(&n, &args, NULL);
}
