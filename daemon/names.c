/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <string.h>

#include <glib.h>

#include "names.h"

bool name_is_uuid(const char *s) {
        /* 8-4-4-4-12 hex digits, as the kernel's uuid_parse() wants,
         * whatever version bits it holds (what g_uuid_string_is_valid()
         * checks, in a tenth of the time: start-up checks every device) */
        if (!s)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? s[i] != '-' : !g_ascii_isxdigit(s[i]))
                        return false;
        }
        return s[36] == '\0';
}

static bool hex_run(const char **p, size_t min, size_t max) {
        size_t n = 0;

        while (isxdigit((unsigned char) (*p)[n]))
                n++;
        if (n < min || n > max)
                return false;
        *p += n;
        return true;
}

bool name_is_pci_address(const char *s) {
        /* domain:bus:slot.function, e.g. 0000:3b:00.1; domains above 0xffff
         * exist behind VMD, so allow up to 8 digits there. */
        const char *p = s, *slot;

        if (!s)
                return false;
        if (!hex_run(&p, 4, 8) || *p++ != ':')
                return false;
        if (!hex_run(&p, 2, 2) || *p++ != ':')
                return false;
        slot = p;
        if (!hex_run(&p, 2, 2) || *p++ != '.')
                return false;
        if (g_ascii_xdigit_value(slot[0]) > 1)  /* slot <= 0x1f */
                return false;
        return p[0] >= '0' && p[0] <= '7' && p[1] == '\0';
}

bool name_is_vdpa(const char *s) {
        size_t n = s ? strlen(s) : 0;
        bool only_hex = true;

        if (n == 0 || n > NAME_VDPA_MAX || !g_ascii_isalnum(s[0]))
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!g_ascii_isalnum(s[i]) && !strchr("_.:-", s[i]))
                        return false;
                only_hex = only_hex && (g_ascii_isxdigit(s[i]) || strchr(".:-", s[i]));
        }
        return !only_hex;
}

bool name_is_device(const char *s) {
        return name_is_uuid(s) || name_is_pci_address(s) || name_is_vdpa(s);
}

char *name_normalize_device(const char *s) {
        if (name_is_uuid(s) || name_is_pci_address(s))
                return g_ascii_strdown(s, -1);
        return name_is_vdpa(s) ? g_strdup(s) : NULL;
}

bool name_is_sysfs_component(const char *s) {
        if (!s || !*s || strlen(s) > 255)
                return false;
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (const char *p = s; *p; p++)
                if (*p == '/' || !g_ascii_isgraph(*p))
                        return false;
        return true;
}

bool name_is_plain_file(const char *s) {
        if (!name_is_sysfs_component(s) || s[0] == '.')
                return false;
        if (strlen(s) > NAME_PLAIN_FILE_MAX)
                return false;
        return g_utf8_validate(s, -1, NULL);
}

static void quote_char(GString *q, const char *p, const char *next, gunichar c) {
        static const char escapes[] = "\\a\\b\\t\\n\\v\\f\\r";

        if (c == '\\' || c == '\'')
                g_string_append_printf(q, "\\%c", (char) c);
        else if (c >= '\a' && c <= '\r')
                g_string_append_len(q, escapes + 2 * (c - '\a'), 2);
        else if (c < 0x80 ? g_ascii_isprint((char) c) : g_unichar_isprint(c))
                g_string_append_len(q, p, next - p);
        else if (c < 0x80)
                g_string_append_printf(q, "\\x%02x", c);
        else
                g_string_append_printf(q, "\\u%04X", c);
}

char *name_quote(const char *s) {
        size_t len = strlen(s);
        const char *p = s, *end = s + len;
        GString *q = g_string_new("'");

        /* The limit counts what is written, escapes included: every
         * argument costs at most a few bytes more than NAME_QUOTE_MAX. */
        while (p < end && q->len <= NAME_QUOTE_MAX) {
                gunichar c = g_utf8_get_char_validated(p, end - p);

                if (c == (gunichar) -1 || c == (gunichar) -2) {
                        /* not UTF-8: each byte on its own */
                        g_string_append_printf(q, "\\x%02x", (unsigned char) *p++);
                        continue;
                }
                quote_char(q, p, g_utf8_next_char(p), c);
                p = g_utf8_next_char(p);
        }
        g_string_append_c(q, '\'');
        if (p < end)
                g_string_append_printf(q, "... (%zu bytes)", len);
        return g_string_free(q, FALSE);
}

bool vendor_string_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > VENDOR_VERSION_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}
