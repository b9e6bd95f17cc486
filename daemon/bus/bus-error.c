/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus/bus-error.h"
#include "vfiomig-names.h"

/* More errnos for a name that already has its own: errno -> name only.
 * sd-bus takes the first entry of a name when it turns the name back into
 * an errno, so these come after all SD_BUS_ERROR_MAP() entries. */
#define ALSO(name, code) SD_BUS_ERROR_MAP(name, code)

/* The one table between errnos and the errors vfiomigd returns. Every
 * error a method sets from an errno goes through it (bus_error_set_errnof),
 * so no System.Error.E* name ever reaches a client. */
static const sd_bus_error_map vfiomig_errors[] = {
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NO_SUCH_DEVICE,    ENODEV),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NO_SUCH_MIGRATION, ESRCH),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_BUSY,              EBUSY),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NOT_MIGRATABLE,    EOPNOTSUPP),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_INCOMPATIBLE,      EPROTONOSUPPORT),
        /* an errno nothing else here produces, so it means only this */
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_COMPATIBILITY_UNKNOWN, ENOANO),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_DEVICE_FAILED,     EIO),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_STREAM_CORRUPT,    EBADMSG),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_CANCELLED,         ECANCELED),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_INVALID_ARGUMENT,  EINVAL),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_ALREADY_EXISTS,    EEXIST),

        /* what the kernel says when a device or attribute is not there */
        ALSO(VFIOMIG_ERROR_NO_SUCH_DEVICE,   ENOENT),
        ALSO(VFIOMIG_ERROR_NO_SUCH_DEVICE,   ENXIO),
        /* mdev_device_create() with no instances left; ENOSPC from older kernels */
        ALSO(VFIOMIG_ERROR_BUSY,             EUSERS),
        ALSO(VFIOMIG_ERROR_BUSY,             ENOSPC),
        /* VFIO_DEVICE_FEATURE without migration support */
        ALSO(VFIOMIG_ERROR_NOT_MIGRATABLE,   ENOTTY),
        /* a name the caller chose that no file can have or be reached by */
        ALSO(VFIOMIG_ERROR_INVALID_ARGUMENT, ENAMETOOLONG),
        ALSO(VFIOMIG_ERROR_INVALID_ARGUMENT, ELOOP),
        /* not EISDIR or ENOTDIR: names are checked before any path is
         * built, so those come from sysfs, where they are a driver's
         * refusal (DeviceFailed, the default) */
        /* a number beyond what the method takes */
        ALSO(VFIOMIG_ERROR_INVALID_ARGUMENT, ERANGE),
        /* EACCES first: sd-bus's own AccessDenied -> errno is EACCES */
        ALSO(SD_BUS_ERROR_ACCESS_DENIED,     EACCES),
        ALSO(SD_BUS_ERROR_ACCESS_DENIED,     EPERM),
        SD_BUS_ERROR_MAP_END
};

void vfiomig_bus_error_register(void) {
        /* Adding the same map twice is a no-op in sd-bus. */
        (void) sd_bus_error_add_map(vfiomig_errors);
}

const char *bus_error_name_for_errno(int error) {
        error = abs(error);
        for (const sd_bus_error_map *m = vfiomig_errors; m->name; m++)
                if (m->code == error)
                        return m->name;
        return VFIOMIG_ERROR_DEVICE_FAILED;
}

static int set_errnofv(sd_bus_error *e, int error, const char *format, va_list ap) {
        char *message = NULL;

        error = abs(error);
        if (error == 0)
                return 0;       /* as sd-bus does: no error to set */
        errno = error;          /* for %m */
        if (vasprintf(&message, format, ap) < 0)
                message = NULL;
        (void) sd_bus_error_set(e, bus_error_name_for_errno(error), message);
        free(message);
        return -error;
}

int bus_error_set_errnof(sd_bus_error *e, int error, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = set_errnofv(e, error, format, ap);
        va_end(ap);
        return r;
}

int bus_reply_method_errnof(sd_bus_message *call, int error, const char *format, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = set_errnofv(&e, error, format, ap);
        va_end(ap);
        if (r < 0)
                r = sd_bus_reply_method_error(call, &e);
        sd_bus_error_free(&e);
        return r;
}
