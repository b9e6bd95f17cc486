/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "backend/devops.h"

/* The one walk along the VFIO state machine that jobs, probes and
 * recovery take: one arc at a time along the kernel's own path
 * (fsm_path()), so a failure names the arc, sessions are picked up where
 * they open, and no blocked transition (STOP_COPY -> PRE_COPY*, which
 * 6.12 does not refuse but spins on) is ever requested. */

typedef struct DriveHooks {
        /* Before SET from -> to; may be NULL. */
        void (*before)(void *userdata, uint32_t from, uint32_t to);
        /* The device is in to now; fd is the data session the arc opened
         * (owned by the callee), or -1. A negative return stops the walk. */
        int (*arrived)(void *userdata, uint32_t to, int fd);
} DriveHooks;

/* Walks a device from *state (where the caller knows it is) to want.
 * *state follows every arc taken. On a failed SET, *ret_arc is the
 * state that SET asked for; when there is no way at all (fsm_path()
 * refuses: -EINVAL), nothing is SET and *ret_arc is VFIO_STATE_ERROR.
 * hooks may be NULL: session fds are then closed. */
int drive_walk(DeviceHandle *h, uint32_t flags, uint32_t *state, uint32_t want, const DriveHooks *hooks,
               void *userdata, uint32_t *ret_arc);

/* drive_walk() from the state the device reports, keeping the last
 * session fd opened on the way in *ret_fd (closing one it replaces). */
int drive_to(DeviceHandle *h, uint32_t flags, uint32_t want, int *ret_fd);

/* After a failed or cancelled job, QEMU's rule: walk a source back to
 * RUNNING; if that fails, or no walk leads there, reset. Returns what
 * was done, for the job's outcome and the log. */
char *drive_restore(DeviceHandle *h, uint32_t flags);
/* A target that took part is reset: whatever it received is dropped. */
char *drive_reset(DeviceHandle *h);
