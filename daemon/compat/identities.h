/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "backend/backend.h"
#include "compat/compat-map.h"
#include "compat/probe-cache.h"

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

typedef struct IdentitySync IdentitySync;

/* Loads the rules (rules_dirs NULL: the defaults) and makes the map,
 * empty; drivers are asked through the backend, probe results come from
 * probes. */
int identities_new(sd_event *event, Registry *registry, Backend *backend, ProbeCache *probes,
                   const char *const *rules_dirs, IdentitySync **ret);
void identities_free(IdentitySync *sync);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IdentitySync, identities_free);
/* Builds the map from the registry as it is, then follows its changes. */
void identities_start(IdentitySync *sync);

CompatMap *identities_map(IdentitySync *sync);
/* How long the build at start took. */
uint64_t identities_build_usec(IdentitySync *sync);
/* The CPU time (us) the last derivation of the nodes that changed took,
 * their places in the map included: what a hotplug event costs after
 * the registry has heard of it. */
uint64_t identities_last_derive_usec(IdentitySync *sync);

/* An identity received from elsewhere (a stream header, another host):
 * with a version, the target's driver or rules judge it; without, only
 * the type can match. */
Identity *identities_remote(const char *type, const char *version);
