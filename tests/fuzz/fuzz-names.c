/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device-name syntax (daemon/names.c): every name a client sends over
 * D-Bus goes through these before it reaches a path or the registry. */
#include "fuzz.h"
#include "names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *s = fuzz_text(data, size);
        g_autofree char *n = NULL, *nn = NULL;

        if (!s)
                return 0;
        n = name_normalize_device(s);
        check(!n == !name_is_device(s));
        if (n) {
                /* the kernel's spelling: lower case but for a vDPA name,
                 * which its creator chose; stable; still a name */
                check(g_ascii_strcasecmp(n, s) == 0);
                check(!name_is_vdpa(s) || g_str_equal(n, s));
                for (const char *p = n; *p && !name_is_vdpa(s); p++)
                        check(!g_ascii_isupper(*p));
                nn = name_normalize_device(n);
                check(nn && g_str_equal(n, nn));
                check(name_is_uuid(n) == name_is_uuid(s));
                check(name_is_sysfs_component(n));
        }
        /* a plain file name can be joined to a directory and stay in it */
        if (name_is_plain_file(s)) {
                check(name_is_sysfs_component(s));
                check(!strchr(s, '/') && s[0] != '.' && strlen(s) <= 255);
                check(g_utf8_validate(s, -1, NULL));
        }
        if (name_is_sysfs_component(s))
                check(*s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, ".."));
        return 0;
}
