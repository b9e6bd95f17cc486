/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "compat.h"
#include "manager.h"

/* Keeps every node's migration identity and the compatibility map
 * current: derives identities from the registry (vendor attributes,
 * learned flags) and the rules, at start for everything and afterwards
 * for each changed node alone.
 *
 * After start it listens to the registry itself, and derives later:
 * a changed node is queued and derived from an sd-event defer source
 * that runs before the next bus message, so that no D-Bus method (a
 * Migrate that learns a device's flags, say) asks drivers anything
 * before it has replied, and a burst of uevents is derived in one go. */

/* Loads the rules and builds the map from the registry as it is. */
int identities_start(Manager *m);
void identities_stop(Manager *m);

/* An identity received from elsewhere (a stream header, another host):
 * with a version, the target's driver or rules judge it; without, only
 * the type can match. */
Identity *identities_remote(const char *type, const char *version);
