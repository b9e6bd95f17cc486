/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "fsm.h"
#include "vfio-uapi.h"

/* Short aliases so the table below reads as a grid. */
#define ERR  VFIO_STATE_ERROR
#define STP  VFIO_STATE_STOP
#define RUN  VFIO_STATE_RUNNING
#define SCP  VFIO_STATE_STOP_COPY
#define RES  VFIO_STATE_RESUMING
#define RP2  VFIO_STATE_RUNNING_P2P
#define PRE  VFIO_STATE_PRE_COPY
#define PP2  VFIO_STATE_PRE_COPY_P2P

/* The first arc the kernel takes from a state (row) towards a requested
 * state (column) on a device with every optional feature. Userspace has
 * to predict it: which states a failed SET may leave the device in, and
 * whether a SET hands back a data fd, depend on the arcs actually walked.
 * ERR in a column other than ERROR means "blocked": leaving STOP_COPY for
 * PRE_COPY* would reopen precopy after the final data was produced, which
 * no driver supports. Columns are in enum order:
 *                               ERR  STP  RUN  SCP  RES  RP2  PRE  PP2 */
static const uint8_t next_hop[VFIO_STATE_MAX][VFIO_STATE_MAX] = {
        [ERR] = {                    ERR, ERR, ERR, ERR, ERR, ERR, ERR, ERR },
        [STP] = {                    ERR, STP, RP2, SCP, RES, RP2, RP2, RP2 },
        [RUN] = {                    ERR, RP2, RUN, RP2, RP2, RP2, PRE, RP2 },
        [SCP] = {                    ERR, STP, STP, SCP, STP, STP, ERR, ERR },
        [RES] = {                    ERR, STP, STP, STP, RES, STP, STP, STP },
        [RP2] = {                    ERR, STP, RUN, STP, STP, RP2, RUN, PP2 },
        [PRE] = {                    ERR, RUN, RUN, PP2, RUN, RUN, PRE, PP2 },
        [PP2] = {                    ERR, RP2, RP2, SCP, RP2, RP2, PRE, PP2 },
};

/* Migration flags a device must report for it to have the state. ERROR
 * needs nothing: any device can end up there. (The kernel encodes ERROR
 * as "needs every flag", which makes it unrequestable; we reject ERROR
 * as cur/want explicitly instead, with the same outcome.) */
static const uint32_t required_flags[VFIO_STATE_MAX] = {
        [ERR] = 0,
        [STP] = VFIO_MIGRATION_STOP_COPY,
        [RUN] = VFIO_MIGRATION_STOP_COPY,
        [SCP] = VFIO_MIGRATION_STOP_COPY,
        [RES] = VFIO_MIGRATION_STOP_COPY,
        [RP2] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P,
        [PRE] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY,
        [PP2] = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY,
};

static const char *const state_names[VFIO_STATE_MAX] = {
        [ERR] = "error",
        [STP] = "stop",
        [RUN] = "running",
        [SCP] = "stop-copy",
        [RES] = "resuming",
        [RP2] = "running-p2p",
        [PRE] = "pre-copy",
        [PP2] = "pre-copy-p2p",
};

const char *fsm_state_to_string(uint32_t state) {
        if (state >= VFIO_STATE_MAX)
                return NULL;
        return state_names[state];
}

int fsm_state_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (uint32_t i = 0; i < VFIO_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

bool fsm_state_supported(uint32_t state, uint32_t flags) {
        if (state >= VFIO_STATE_MAX)
                return false;
        return (flags & required_flags[state]) == required_flags[state];
}

/* A state SET may name: known, present on this device, and not ERROR. */
static bool state_requestable(uint32_t state, uint32_t flags) {
        return state != VFIO_STATE_ERROR && fsm_state_supported(state, flags);
}

int fsm_next_step(uint32_t cur, uint32_t want, uint32_t flags, uint32_t *ret) {
        uint32_t next;

        assert(ret);

        /* cur == ERROR is refused too: the kernel's table has no way out
         * of ERROR (only VFIO_DEVICE_RESET leaves it). */
        if (!state_requestable(cur, flags) || !state_requestable(want, flags))
                return -EINVAL;

        /* Walk the full-feature table and drop the states this device
         * lacks: from an unsupported state the table gives the arc the
         * full-feature path would take next, so the device sees a direct
         * arc from cur to the next state it has. The walk is bounded: each
         * row leads closer to want, but never trust that blindly. */
        next = next_hop[cur][want];
        for (unsigned i = 0; next != VFIO_STATE_ERROR && !fsm_state_supported(next, flags); i++) {
                if (i >= VFIO_STATE_MAX)
                        return -ELOOP;
                next = next_hop[next][want];
        }

        /* Blocked arcs (STOP_COPY -> PRE_COPY*) come out as ERROR. Note that
         * kernels before the fix to this very loop spin forever on them
         * instead of returning -EINVAL: callers must never SET them. */
        if (next == VFIO_STATE_ERROR)
                return -EINVAL;

        *ret = next;
        return 0;
}

int fsm_path(uint32_t cur, uint32_t want, uint32_t flags, uint32_t path[FSM_MAX_PATH], size_t *n) {
        uint32_t steps[FSM_MAX_PATH];
        size_t k = 0;
        int r;

        assert(path);
        assert(n);

        /* Validate even when cur == want, so "no steps" always means a
         * legal no-op SET and never hides an unsupported state. */
        if (!state_requestable(cur, flags) || !state_requestable(want, flags))
                return -EINVAL;

        /* Fill a local buffer so a failure leaves the caller's untouched. */
        for (uint32_t s = cur; s != want; k++) {
                if (k >= FSM_MAX_PATH)
                        return -ELOOP;
                r = fsm_next_step(s, want, flags, &s);
                if (r < 0)
                        return r;
                steps[k] = s;
        }

        memcpy(path, steps, k * sizeof(steps[0]));
        *n = k;
        return 0;
}

bool fsm_arc_opens_session(uint32_t from, uint32_t to) {
        /* The arcs that start a saving or a resuming stream; moving within
         * the saving group (PRE_COPY -> PRE_COPY_P2P -> STOP_COPY) keeps
         * the fd that PRE_COPY got. */
        return (from == VFIO_STATE_RUNNING && to == VFIO_STATE_PRE_COPY) ||
               (from == VFIO_STATE_RUNNING_P2P && to == VFIO_STATE_PRE_COPY_P2P) ||
               (from == VFIO_STATE_STOP && to == VFIO_STATE_STOP_COPY) ||
               (from == VFIO_STATE_STOP && to == VFIO_STATE_RESUMING);
}

bool fsm_state_is_running(uint32_t state) {
        return state == VFIO_STATE_RUNNING || state == VFIO_STATE_RUNNING_P2P ||
               state == VFIO_STATE_PRE_COPY || state == VFIO_STATE_PRE_COPY_P2P;
}

bool fsm_state_is_saving(uint32_t state) {
        return state == VFIO_STATE_PRE_COPY || state == VFIO_STATE_PRE_COPY_P2P ||
               state == VFIO_STATE_STOP_COPY;
}

FsmRecovery fsm_recovery(uint32_t actual, uint32_t want, uint32_t flags, uint32_t *ret_state) {
        uint32_t path[FSM_MAX_PATH];
        size_t n;

        /* QEMU's rule after a failed or cancelled migration: SET the
         * recovery state and let the kernel walk the path; if that SET
         * fails too, reset the device. We only decide the first half here
         * and skip it when it cannot work: ERROR has no arc out, and an
         * actual state with no path to want (unknown to us, e.g. a state
         * from a newer kernel seen after a failed SET, or a want this
         * device lacks) would just fail the SET. ERROR is checked first so
         * that want == ERROR never yields NONE. */
        if (ret_state)
                *ret_state = want;

        if (actual == VFIO_STATE_ERROR)
                return FSM_RECOVERY_RESET;
        /* Leaving RESUMING makes the device check and load what it got:
         * after a failure that is incomplete or rejected data, and mtty on
         * 6.12 oopses on RESUMING -> STOP once the session's fd has been
         * closed. Only a reset abandons a RESUMING session safely. */
        if (actual == VFIO_STATE_RESUMING && want != VFIO_STATE_RESUMING)
                return FSM_RECOVERY_RESET;
        if (actual == want)
                return FSM_RECOVERY_NONE;
        if (fsm_path(actual, want, flags, path, &n) < 0)
                return FSM_RECOVERY_RESET;
        return FSM_RECOVERY_SET;
}
