/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* Registers the org.vfiomig1.Error.* <-> errno map with sd-bus, so
 * sd_bus_error_get_errno() understands our errors on both sides. */
void vfiomig_bus_error_register(void);
