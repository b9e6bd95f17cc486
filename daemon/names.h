/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* Syntax of the names clients hand us. Pure functions, no I/O.
 *
 * A device is named by its kernel name: an mdev UUID or a PCI address.
 * Both are accepted in any case and normalized to the kernel's lower-case
 * spelling, so "GetDevice 0000:3B:00.1" finds 0000:3b:00.1. */

bool name_is_uuid(const char *s);
bool name_is_pci_address(const char *s);
bool name_is_device(const char *s);

/* Lower-cased copy if s is a valid device name, else NULL. */
char *name_normalize_device(const char *s);

/* mdev parents are kernel device names (e.g. "mtty", "0000:65:00.0"),
 * type ids are "<driver>-<name>": both must be one sysfs path component. */
bool name_is_sysfs_component(const char *s);

/* A plain file name under a directory we own: no slash, no leading dot,
 * printable, not too long. */
bool name_is_plain_file(const char *s);
