/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The VFIO migration state machine as pure functions: which states a
 * device supports, the path the kernel takes between two states, which
 * arcs open a data session, and what to do after a failure. No I/O.
 *
 * States are VFIO_STATE_* (vfio-uapi.h); flags are VFIO_MIGRATION_*. */

#define FSM_MAX_PATH 8

/* "error", "stop", "running", "stop-copy", "resuming", "running-p2p",
 * "pre-copy", "pre-copy-p2p"; NULL for out-of-range values. */
const char *fsm_state_to_string(uint32_t state);
/* -EINVAL for unknown names */
int fsm_state_from_string(const char *s);

/* Whether a device with these flags has this state (ERROR: always). */
bool fsm_state_supported(uint32_t state, uint32_t flags);

/* The kernel's next step from cur towards want (vfio_mig_get_next_state
 * semantics: arcs through unsupported optional states are skipped).
 * -EINVAL if cur or want is unsupported, want is ERROR, or the transition
 * is blocked (STOP_COPY -> PRE_COPY*). cur == want yields want.
 * Check before every SET: since PRE_COPY support (6.2), kernels without
 * the posted fix that ends the skip loop on ERROR (6.12 included) do not
 * return -EINVAL for the blocked transitions on a PRE_COPY device but
 * spin forever in vfio_mig_get_next_state() holding the driver's state
 * mutex (soft lockup). */
int fsm_next_step(uint32_t cur, uint32_t want, uint32_t flags, uint32_t *ret);

/* Every step from cur to want, want last, cur excluded; *n == 0 if
 * cur == want. Same errors as fsm_next_step. */
int fsm_path(uint32_t cur, uint32_t want, uint32_t flags, uint32_t path[FSM_MAX_PATH], size_t *n);

/* Whether SET from -> to (a single arc) returns a new data fd. */
bool fsm_arc_opens_session(uint32_t from, uint32_t to);
/* Whether the device runs (executes, may DMA) in this state: RUNNING,
 * RUNNING_P2P, PRE_COPY, PRE_COPY_P2P. Downtime starts when a source
 * leaves these. */
bool fsm_state_is_running(uint32_t state);
/* PRE_COPY, PRE_COPY_P2P or STOP_COPY: a saving session is open. */
bool fsm_state_is_saving(uint32_t state);

typedef enum FsmRecovery {
        FSM_RECOVERY_NONE,      /* already where it should be */
        FSM_RECOVERY_SET,       /* SET *ret_state (the kernel walks the path) */
        FSM_RECOVERY_RESET,     /* only VFIO_DEVICE_RESET gets it out */
} FsmRecovery;

/* What brings a device that is in state `actual` back to `want` after a
 * failed or cancelled migration (want: RUNNING for a source, or for a
 * target whose load never started). ERROR, and states with no path to
 * want, need a reset; a SET that fails is followed by a reset (the
 * caller's job, as QEMU does). ret_state may be NULL; when not, it is set
 * to want whatever the verdict. actual == ERROR gives RESET even if want is
 * ERROR; unknown actual values (a newer kernel's state) give RESET. */
FsmRecovery fsm_recovery(uint32_t actual, uint32_t want, uint32_t flags, uint32_t *ret_state);
