/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The keyfile parser behind vfiomigd.conf, rules and testbed files
 * (daemon/conffile.c), driven as the daemon reads /etc/vfiomig/vfiomigd.conf
 * and then through every typed getter on every key the file has. */
#include "conffile.h"
#include "fuzz.h"

/* What parse_config() in daemon/main.c asks of [Daemon]. */
static void read_daemon_section(ConfFile *c) {
        static const char *const groups[] = { "Daemon", NULL };
        static const char *const keys[] = { "Testbed", "IdleTimeoutSec", "LogLevel", NULL };
        g_autoptr(GError) error = NULL;
        g_autofree char *testbed = NULL, *level = NULL;
        uint64_t idle = 0;

        if (!conf_file_check_groups(c, groups, &error) ||
            !conf_file_has_group(c, "Daemon") ||
            !conf_file_check_keys(c, "Daemon", keys, &error) ||
            !conf_file_get_string(c, "Daemon", "Testbed", "", &testbed, &error) ||
            !conf_file_get_uint64(c, "Daemon", "IdleTimeoutSec", 0, 0, G_MAXUINT64 / 1000000, &idle, &error) ||
            !conf_file_get_string(c, "Daemon", "LogLevel", "info", &level, &error))
                return;
        check(testbed && level && idle <= G_MAXUINT64 / 1000000);
}

static void read_every_key(ConfFile *c) {
        for (const char *const *g = conf_file_groups(c); *g; g++) {
                g_auto(GStrv) keys = conf_file_get_keys(c, *g);

                check(conf_file_line(c, *g, NULL) > 0);
                for (char **k = keys; k && *k; k++) {
                        g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;
                        g_autofree char *s = NULL;
                        uint64_t u = 0, size = 0;

                        check(conf_file_line(c, *g, *k) > 0);
                        if (conf_file_get_string(c, *g, *k, NULL, &s, &e1))
                                check(s && g_utf8_validate(s, -1, NULL));
                        else
                                check(e1 && !s);
                        if (conf_file_get_uint64(c, *g, *k, 0, 10, 1000, &u, &e2))
                                check(u >= 10 && u <= 1000);
                        else
                                check(e2 != NULL);
                        if (!conf_file_get_size(c, *g, *k, 0, &size, &e3))
                                check(e3 != NULL);
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = fuzz_text(data, size);
        g_autoptr(ConfFile) c = NULL;
        g_autoptr(GError) error = NULL;

        if (!text)
                return 0;
        c = conf_file_parse(text, "vfiomigd.conf", &error);
        check(!c == !!error);
        if (!c)
                return 0;
        read_daemon_section(c);
        read_every_key(c);
        return 0;
}
