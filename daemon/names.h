/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <limits.h>
#include <stdbool.h>

/* Syntax of the names clients hand us. Pure functions, no I/O.
 *
 * A device is named by its kernel name: an mdev UUID, a PCI address, or
 * a vDPA device's name. The first two are accepted in any case and
 * normalized to the kernel's lower-case spelling, so "GetDevice
 * 0000:3B:00.1" finds 0000:3b:00.1; a vDPA name is whatever its creator
 * chose ("vdpa0"), so it is taken as it is. */

bool name_is_uuid(const char *s);
bool name_is_pci_address(const char *s);
/* 1 to NAME_VDPA_MAX letters, digits, '_', '.', ':' or '-', starting with
 * a letter or digit, and not made only of hex digits and the separators
 * of UUIDs and PCI addresses: "0000:3b:00" is a mistyped PCI address,
 * not a vDPA device. */
#define NAME_VDPA_MAX 64
bool name_is_vdpa(const char *s);
bool name_is_device(const char *s);

/* The kernel's spelling if s is a valid device name, else NULL. */
char *name_normalize_device(const char *s);

/* mdev parents are kernel device names (e.g. "mtty", "0000:65:00.0"),
 * type ids are "<driver>-<name>": both must be one sysfs path component. */
bool name_is_sysfs_component(const char *s);

/* Save() writes a state under a temporary name, NAME between these
 * (mkstemp() fills in the X's), and renames it to NAME once complete;
 * states.c asserts that it builds that name of these lengths. */
#define NAME_SAVE_TEMP_PREFIX "."
#define NAME_SAVE_TEMP_SUFFIX ".XXXXXX.partial"
/* The longest plain file name: one byte more and the temporary name would
 * not fit in a directory entry (NAME_MAX). */
#define NAME_PLAIN_FILE_MAX ((int) (NAME_MAX - (sizeof(NAME_SAVE_TEMP_PREFIX NAME_SAVE_TEMP_SUFFIX) - 1)))

/* A plain file name under a directory we own: no slash, no leading dot,
 * printable ASCII, at most NAME_PLAIN_FILE_MAX bytes. */
bool name_is_plain_file(const char *s);

/* At most about this many bytes of a caller's string go into a message. */
#define NAME_QUOTE_MAX 64

/* s as an error message may echo it: in single quotes, with what is not
 * printable UTF-8 escaped (\n, \x01, \u200B), quotes and backslashes
 * escaped, and cut after NAME_QUOTE_MAX bytes of that with "..." and the
 * length of s, so that a reply to a 64 KiB argument stays one short line
 * and a terminal that shows it is not steered by it. */
char *name_quote(const char *s);

#define VENDOR_VERSION_MAX 4096

/* A migration_version or migration_type attribute we accept: 1 to 4096
 * printable ASCII characters (trailing newline already stripped). */
bool vendor_string_valid(const char *s);
