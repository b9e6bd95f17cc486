/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <glib.h>

/* Which process holds a VFIO device open. The kernel answers a second
 * open of a group with EBUSY and names nobody; only /proc tells, and only
 * to a reader that may look at other processes' fds. A process with the
 * device's group or cdev node among its fds holds it (exact); one with
 * only an anon_inode:[vfio-device] fd (a device fd whose group fd was
 * closed) may hold it: before 6.18 nothing says which device that is.
 * Scanning reads every process's fds, so it runs only when a refused
 * open or a client asks. */

typedef struct Holder {
        pid_t pid;
        char *comm;
        bool exact;             /* false: a candidate only */
} Holder;

void holder_clear(Holder *h);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Holder, holder_clear);

/* nodes: the paths that name the device (its /dev/vfio/GROUP, its
 * /dev/vfio/devices/vfioN), NULL-terminated. proc: "/proc", or a test's
 * tree. Processes in skip (ours) do not count. 0 and *ret when found
 * (an exact holder before any candidate), -ENOENT when nobody is. */
int holders_find(const char *proc, const char *const *nodes, pid_t skip, Holder *ret);

/* "pid 7 (qemu-system-x86)", with "possibly " before a candidate; for a
 * device assigned to a domain, "domain NAME (qemu pid 7)". */
char *holder_describe(const Holder *h, const char *domain);
