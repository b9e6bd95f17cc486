/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "conffile.h"
#include "backend/backend.h"
#include "backend/testbed-device.h"

/* The embedded default backend: simulated mdev parents, types and devices
 * described by a keyfile (see man vfiomig-testbed(5)). Parsing
 * validates the whole file before the registry sees any of it. */

/* The built-in description used by --testbed=default. */
extern const char testbed_default_conf[];

/* Validates all of c, then populates r; on error r is untouched.
 * Simulated device state persists under persist_dir (if not NULL), so it
 * survives a daemon restart as a real device's would. */
Backend *testbed_new(ConfFile *c, Registry *r, const char *persist_dir, GError **error);

/* The CPU time (main thread, us) the last CreateMdev or RemoveMdev took
 * here: the simulated device, the registry and every listener of it
 * (not the identity derived afterwards); 0 before the first. */
uint64_t testbed_last_hotplug_usec(Backend *s);

/* The simulated device behind a testbed device, or NULL. */
SimDevice *testbed_get_sim(Backend *s, const char *name);
