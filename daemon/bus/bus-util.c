/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "bus/bus-util.h"
#include "names.h"
#include "vfiomig-names.h"

int bus_read_device_name(sd_bus_message *m, char **ret, sd_bus_error *error) {
        const char *name;
        char *normalized;
        int r;

        r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        normalized = name_normalize_device(name);
        if (!normalized) {
                g_autofree char *q = name_quote(name);

                return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                         "%s is not a device name (an mdev UUID, a PCI address like "
                                         "0000:3b:00.1, or a vDPA device name)", q);
        }
        *ret = normalized;
        return 0;
}

static const BusOption *find_option(const BusOption *table, const char *name) {
        for (; table && table->name; table++)
                if (strcmp(table->name, name) == 0)
                        return table;
        return NULL;
}

int bus_read_options(sd_bus_message *m, const BusOption *table, void *userdata, sd_bus_error *error) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const BusOption *o;
                const char *name;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;
                o = find_option(table, name);
                if (!o) {
                        g_autofree char *q = name_quote(name);

                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT, "Unknown option %s", q);
                }
                r = sd_bus_message_enter_container(m, 'v', o->signature);
                if (r == -ENXIO)        /* a known name: no quoting needed */
                        return sd_bus_error_setf(error, VFIOMIG_ERROR_INVALID_ARGUMENT,
                                                 "Option '%s' must be of type '%s'", name, o->signature);
                if (r < 0)
                        return r;
                r = o->parse(m, name, userdata, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_error_device_errno(sd_bus_error *error, int r, const char *dev, const char *format, ...) {
        g_autofree char *what = NULL;
        va_list ap;

        va_start(ap, format);
        what = g_strdup_vprintf(format, ap);
        va_end(ap);
        sd_bus_error_setf(error, bus_error_name_for_errno(r), "%s: %s: %s", dev, what, g_strerror(-r));
        return r;
}

static char *encode_path(const char *prefix, const char *id) {
        char *path = NULL;

        return sd_bus_path_encode(prefix, id, &path) < 0 ? NULL : path;
}

char *bus_device_path(const char *name) {
        return encode_path(VFIOMIG_DEVICE_PATH_PREFIX, name);
}

char *bus_type_path(const char *key) {
        return encode_path(VFIOMIG_TYPE_PATH_PREFIX, key);
}

static bool is_ascii(const char *s, size_t len) {
        const uint64_t high = UINT64_C(0x8080808080808080);
        size_t i = 0;

        for (; i + 8 <= len; i += 8) {
                uint64_t w;

                memcpy(&w, s + i, 8);
                if (w & high)
                        return false;
        }
        for (; i < len; i++)
                if (s[i] & 0x80)
                        return false;
        return true;
}

int bus_append_string(sd_bus_message *m, const char *s) {
        size_t len = strlen(s);
        char *p;
        int r;

        if (!is_ascii(s, len))
                return sd_bus_message_append_basic(m, 's', s);
        r = sd_bus_message_append_string_space(m, len, &p);
        if (r < 0)
                return r;
        memcpy(p, s, len);
        return 0;
}

int bus_send_array_reply(sd_bus_message *reply, int r) {
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

const Device *bus_lookup_device(Registry *r, const char *name, sd_bus_error *error) {
        const Device *d = registry_get_device(r, name);

        if (!d)
                sd_bus_error_setf(error, VFIOMIG_ERROR_NO_SUCH_DEVICE, "No device %s known to vfiomigd", name);
        return d;
}
