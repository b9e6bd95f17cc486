/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "registry.h"

/* Migration identities of devices. This is the type-match basis only:
 * with no better source, a device's migration type is its mdev type id,
 * or "vfio-pci:<driver>:<vendor>:<device>:<subvendor>:<subdevice>" for a
 * physical function, and state may move only between equal types. Pure. */

char *compat_migration_type(const Device *d);

/* NULL if state of source may go into target, else why not. */
char *compat_check(const Device *source, const Device *target);
/* The same for a stream whose header names migration_type. */
char *compat_check_stream(const char *migration_type, const Device *target);
