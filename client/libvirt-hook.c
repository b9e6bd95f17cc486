/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfiomig-libvirt-hook: libvirt's qemu hook (in /etc/libvirt/hooks/qemu.d/).
 * libvirt runs it as "HOOK DOMAIN OPERATION SUBOPERATION EXTRA" with the
 * domain's XML on stdin, and for "migrate begin" and "restore begin"
 * takes what it prints as the XML to use (nothing: unchanged) and a
 * non-zero exit as a refusal, whose stderr it shows to its user. So
 * stdout gets XML or nothing, stderr one line, and a domain without
 * hostdevs costs nothing: no D-Bus at all. The hook never calls libvirt. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "libvirt/domain-xml.h"
#include "vfiomig-names.h"

enum { HOOK_IGNORE, HOOK_PREPARE, HOOK_ENSURE, HOOK_RELEASE };

/* What each libvirt operation asks of us. */
static int action_of(const char *op, const char *subop) {
        if ((g_str_equal(op, "migrate") || g_str_equal(op, "restore")) && g_str_equal(subop, "begin"))
                return HOOK_PREPARE;    /* the destination's first step */
        if (g_str_equal(op, "prepare") && g_str_equal(subop, "begin"))
                return HOOK_ENSURE;     /* what was prepared still exists */
        if ((g_str_equal(op, "release") || g_str_equal(op, "stopped")) && g_str_equal(subop, "end"))
                return HOOK_RELEASE;
        return HOOK_IGNORE;
}

/* All of stdin: libvirt writes the whole document before it waits. */
static char *read_stdin(size_t *ret_len) {
        GString *s = g_string_new(NULL);
        char buf[65536];
        ssize_t n;

        while ((n = read(STDIN_FILENO, buf, sizeof(buf))) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || s->len + (size_t) n > DOMAIN_XML_MAX) {
                        g_string_free(s, TRUE);
                        return NULL;
                }
                g_string_append_len(s, buf, n);
        }
        *ret_len = s->len;
        return g_string_free(s, FALSE);
}

static int refuse(const char *domain, const char *message) {
        g_autofree char *line = g_strdelimit(g_strdup(message), "\n", ' ');

        fprintf(stderr, "vfiomig: %s: %s\n", domain, line);
        return 1;
}

static int call(const char *domain, int action, const char *xml) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        const char *out = "";
        int r;

        r = sd_bus_open_system(&bus);
        if (r >= 0 && action == HOOK_RELEASE)
                r = sd_bus_call_method(bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                       "ReleaseDomain", &error, &reply, "sa{sv}", domain, 0);
        else if (r >= 0)
                r = sd_bus_call_method(bus, VFIOMIG_BUS_NAME, VFIOMIG_OBJECT_PATH, VFIOMIG_MANAGER_INTERFACE,
                                       "PrepareDomain", &error, &reply, "sa{sv}", xml, 1, "mdevs-only", "b",
                                       action == HOOK_ENSURE);
        if (r >= 0 && action != HOOK_RELEASE)
                r = sd_bus_message_read(reply, "s", &out);
        if (r < 0 && action != HOOK_RELEASE)
                r = refuse(domain, sd_bus_error_is_set(&error) ? error.message : strerror(-r));
        else if (r >= 0 && action == HOOK_PREPARE && *out)
                r = fputs(out, stdout) < 0 || fflush(stdout) != 0 ? refuse(domain, "cannot write the XML") : 0;
        else
                r = 0;          /* libvirt ignores what release and stopped say */
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return r;
}

int main(int argc, char *argv[]) {
        g_autoptr(DomainInfo) info = NULL;
        g_autofree char *xml = NULL, *why = NULL;
        size_t len = 0;
        int action;

        if (argc < 4) {
                fprintf(stderr, "%s is libvirt's qemu hook: DOMAIN OPERATION SUBOPERATION [EXTRA], the domain's XML "
                        "on stdin\n", program_invocation_short_name);
                return 1;
        }
        action = action_of(argv[2], argv[3]);
        xml = read_stdin(&len);
        if (action == HOOK_IGNORE)
                return 0;
        if (!xml)
                return action == HOOK_RELEASE ? 0 : refuse(argv[1], "cannot read the domain's XML from stdin");
        if (domain_xml_parse(xml, len, &info, &why) < 0)
                return action == HOOK_RELEASE ? 0 : refuse(argv[1], why);
        if (info->hostdevs->len == 0)
                return 0;
        return call(argv[1], action, xml);
}
