/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "registry.h"

/* Migration support learned from one device, remembered for the devices
 * that share its driver and identity. The kernel tells a device's
 * migration flags only through an open device, and opening a vfio-pci
 * function resets it, so vfiomigd opens a device only when a call needs
 * it anyway (a migration, a probe, RefreshDevice()). What one open
 * learns, its siblings show at once.
 *
 * The key: for a PCI function its driver, vendor, device, subsystem
 * vendor and subsystem device ids; for an mdev its driver, parent and
 * type id. Devices of one key run the same driver on the same hardware,
 * so what one supports the others do.
 *
 * The rule:
 *  - a device joins the entry of its key when it is added (unknown), and
 *    gets what the entry knows;
 *  - when one member's support is learned, the entry remembers it and
 *    every member has it;
 *  - when the last member leaves (its driver is unbound, or it is
 *    removed), the entry is forgotten. A driver bound again may be
 *    another build of it (a reloaded module): the next open learns
 *    anew, and until then its devices are unknown.
 * Devices whose support is given from the start (the testbed's) are not
 * added (backend_add_device()): nothing is learned from them and they
 * take nothing.
 *
 * Pure: no I/O, and it does not touch the registry; its caller
 * (backend.c) does. */

typedef struct FlagCache FlagCache;

FlagCache *flag_cache_new(void);
void flag_cache_free(FlagCache *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlagCache, flag_cache_free);

/* The key of d as above: "pci/DRIVER/VENDOR/DEVICE/SUBVENDOR/SUBDEVICE"
 * or "mdev/DRIVER/PARENT/TYPE-ID" (none of these has a '/'). */
char *flag_cache_key(const Device *d);

/* d joins the entry of its key (leaving the one it was in, should its key
 * have changed). If d's support is unknown and the entry knows it, d gets
 * it. */
void flag_cache_add(FlagCache *c, Device *d);
/* name leaves its entry, which is forgotten if it was the last. Returns
 * whether name was a member. */
bool flag_cache_remove(FlagCache *c, const char *name);
/* What member name was found to support: its entry remembers it
 * (flags count only for SUPPORTED). Returns the entry's members, sorted,
 * name among them, for the caller to update; NULL if name is no member. */
char **flag_cache_learn(FlagCache *c, const char *name, MigrationSupport support, uint32_t flags);

/* What the entry of key knows; UNKNOWN when nothing or no entry. */
MigrationSupport flag_cache_lookup(FlagCache *c, const char *key, uint32_t *ret_flags);
/* How many entries there are. */
unsigned flag_cache_size(FlagCache *c);
