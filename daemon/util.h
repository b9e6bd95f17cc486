/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

/* Small sysfs helpers. All return -errno on failure. */

/* Reads a sysfs attribute, stripping the trailing newline. */
int sysfs_read(const char *dir, const char *attr, char **ret);
int sysfs_read_uint(const char *dir, const char *attr, unsigned *ret);
/* Writes value in one write(): the kernel's errno comes back unchanged. */
int sysfs_write(const char *dir, const char *attr, const char *value);
/* Last path component of the target of the symlink dir/link. */
int sysfs_link_basename(const char *dir, const char *link, char **ret);
bool sysfs_exists(const char *dir, const char *entry);

/* Replaces path atomically (a temporary file renamed over it) without
 * fsync: for runtime state that must survive a crash of this process,
 * not of the machine. The file is readable by its owner only (0600). */
int write_file_atomic(const char *path, const void *data, size_t len);

/* Replaces *p with a copy of s ("" for NULL). */
void free_and_strdup(char **p, const char *s);

#define USEC_PER_SEC ((uint64_t) 1000000)

uint64_t now_usec(int clock);

/* "stop-copy,p2p,pre-copy" <-> VFIO_MIGRATION_* bits. */
char *migration_flags_to_string(uint32_t flags, const char *sep);
char **migration_flags_to_strv(uint32_t flags);
/* The same joined by ",", from a table: nothing to free. */
const char *migration_flags_text(uint32_t flags);
int migration_flags_from_string(const char *s, uint32_t *ret);

/* For logic that reports to a caller: *ret_error = the message, returns
 * -|r|, so that "return errno_message(ret_error, EBUSY, ...);" is one
 * expression. The bus layer turns both into a D-Bus error. A NULL
 * ret_error asks for the errno only. */
int errno_message(char **ret_error, int r, const char *format, ...) G_GNUC_PRINTF(3, 4);
