/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* Registers the org.vfiomig1.Error.* <-> errno map with sd-bus, so
 * sd_bus_error_get_errno() understands our errors on both sides. */
void vfiomig_bus_error_register(void);

/* The D-Bus error for errno error (either sign), from the same table:
 * an org.vfiomig1.Error.*, AccessDenied for EPERM and EACCES, and
 * DeviceFailed for an errno the table does not name. sd-bus's own
 * errno mapping would answer System.Error.E* or unrelated freedesktop
 * names, which clients cannot know. */
const char *bus_error_name_for_errno(int error);

/* sd_bus_error_set_errnof(), with the name from bus_error_name_for_errno():
 * %m in format is error's description. Returns -abs(error). */
int bus_error_set_errnof(sd_bus_error *e, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* sd_bus_reply_method_errnof() with the same table, for a reply sent
 * outside the method's callback. */
int bus_reply_method_errnof(sd_bus_message *call, int error, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
