/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "bus-error.h"
#include "vfiomig-names.h"

static const sd_bus_error_map vfiomig_errors[] = {
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NO_SUCH_DEVICE,    ENODEV),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NO_SUCH_MIGRATION, ESRCH),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_BUSY,              EBUSY),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_NOT_MIGRATABLE,    EOPNOTSUPP),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_INCOMPATIBLE,      EPROTONOSUPPORT),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_DEVICE_FAILED,     EIO),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_STREAM_CORRUPT,    EBADMSG),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_CANCELLED,         ECANCELED),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_INVALID_ARGUMENT,  EINVAL),
        SD_BUS_ERROR_MAP(VFIOMIG_ERROR_ALREADY_EXISTS,    EEXIST),
        SD_BUS_ERROR_MAP_END
};

void vfiomig_bus_error_register(void) {
        /* Adding the same map twice is a no-op in sd-bus. */
        (void) sd_bus_error_add_map(vfiomig_errors);
}
