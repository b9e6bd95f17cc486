/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/devops.h"

/* The one walk along the VFIO state machine that jobs, probes and
 * recovery take, along the kernel's own path (fsm_path()). The kernel
 * steps through a path itself, so a walk asks in as few SETs as it
 * allows: one per stretch of the path that ends where a data session
 * opens (a driver refuses to open one in the middle of a request), or at
 * the state wanted. No blocked transition (STOP_COPY -> PRE_COPY*, which
 * 6.12 does not refuse but spins on) is ever requested, and a failure
 * names the arc the device stopped at. */

typedef struct DriveHooks {
        /* Before the SET that takes the device from `from` to `to`, maybe
         * through states between; may be NULL. */
        void (*before)(void *userdata, uint32_t from, uint32_t to);
        /* The device is in to now; fd is the data session the SET opened
         * (owned by the callee), or -1. A negative return stops the walk. */
        int (*arrived)(void *userdata, uint32_t to, int fd);
} DriveHooks;

/* Where a failed SET left the device, and which arc of the path it
 * failed on. */
typedef struct DriveFailure {
        uint32_t from, to;      /* the arc: VFIO_STATE_ERROR, ERROR when there was no way at all */
        uint32_t now;           /* the device's state (GET), VFIO_STATE_ERROR if unknown */
} DriveFailure;

/* Walks a device from *state (where the caller knows it is) to want.
 * *state follows every SET that succeeds. A failed SET (-errno) fills
 * *ret_failure, asking the device where it is: the arc is the one after
 * that state when the device stopped on the path, else the whole
 * request. When fsm_path() refuses (-EINVAL), nothing is SET and the arc
 * is ERROR -> ERROR. A hook's failure leaves *ret_failure alone. hooks
 * may be NULL: session fds are then closed. */
int drive_walk(DeviceHandle *h, uint32_t flags, uint32_t *state, uint32_t want, const DriveHooks *hooks,
               void *userdata, DriveFailure *ret_failure);

/* drive_walk() from the state the device reports, keeping the last
 * session fd opened on the way in *ret_fd (closing one it replaces). */
int drive_to(DeviceHandle *h, uint32_t flags, uint32_t want, int *ret_fd);

/* After a failed or cancelled job, QEMU's rule: SET a source back to
 * RUNNING; if that fails, or no walk leads there, reset. Returns what
 * was done, for the job's outcome and the log. */
char *drive_restore(DeviceHandle *h, uint32_t flags);
/* A target that took part is reset: whatever it received is dropped. */
char *drive_reset(DeviceHandle *h);
