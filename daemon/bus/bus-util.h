/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <systemd/sd-bus.h>

#include "bus/bus-error.h"
#include "registry.h"

/* Helpers shared by the bus-* vtable modules. */

/* Reads a device name argument and normalizes it; on a malformed name sets
 * InvalidArgument quoting it (name_quote()). Returns 0 or -errno; *ret is g_free()d by
 * the caller. */
int bus_read_device_name(sd_bus_message *m, char **ret, sd_bus_error *error);

/* One known key of an a{sv} options argument. parse reads the variant's
 * value (the message is positioned inside the variant). */
typedef struct BusOption {
        const char *name;
        const char *signature;
        int (*parse)(sd_bus_message *m, const char *name, void *userdata, sd_bus_error *error);
} BusOption;

/* Reads a{sv}, rejecting unknown keys and wrong types with InvalidArgument
 * (quoting the key). */
int bus_read_options(sd_bus_message *m, const BusOption *table, void *userdata, sd_bus_error *error);

/* Appends a string as sd_bus_message_append_basic(m, 's', s) does, in
 * far less time when s is plain ASCII, as a listing's strings are: no
 * UTF-8 check byte by byte, one copy. Anything else takes the checked
 * way, and is refused as sd-bus refuses it. */
int bus_append_string(sd_bus_message *m, const char *s);

/* Closes the array a method's reply was built in, sends the reply and
 * drops it; r is how building went so far. */
int bus_send_array_reply(sd_bus_message *reply, int r);

/* Sets error from -errno r as "dev: what: strerror" with the name the
 * errno table (bus-error.h) gives r; returns r. */
int bus_error_device_errno(sd_bus_error *error, int r, const char *dev, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

/* The device, or NULL with NoSuchDevice naming it. */
const Device *bus_lookup_device(Registry *r, const char *name, sd_bus_error *error);

char *bus_device_path(const char *name);
char *bus_type_path(const char *key);
