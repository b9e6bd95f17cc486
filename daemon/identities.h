/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "compat.h"
#include "manager.h"

/* Keeps every node's migration identity and the compatibility map
 * current: derives identities from the registry (vendor attributes,
 * learned flags) and the rules, at start for everything and afterwards
 * for each registry change alone. */

/* Loads the rules and builds the map from the registry as it is. */
int identities_start(Manager *m);
void identities_stop(Manager *m);
/* Feed of registry changes (after the bus has announced them). */
void identities_on_registry(Manager *m, RegistryEvent event, const void *object);

/* "type:PARENT/TYPE-ID", the map's name for a type. */
char *identities_type_node(const char *key);

/* An identity received from elsewhere (a stream header, another host):
 * with a version, the target's driver or rules judge it; without, only
 * the type can match. */
Identity *identities_remote(const char *type, const char *version);
